//! MCP servers as tool sources, against a real MCP server no one here wrote:
//! the official Python SDK's, serving `tests/mcp/server.py` over Streamable
//! HTTP on loopback (`scripts/test` installs the SDK and names its
//! interpreter in `STEWRD_TEST_MCP_PYTHON`). The fixture records every
//! message and every tool run, so the tests count what the server saw.

use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    agent::{sent, server_tool, steps},
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    receiver::{Answer, Receiver},
};

/// A running fixture server.
pub struct McpFixture {
    /// Killed when the fixture is dropped.
    _child: tokio::process::Child,
    pub port: u16,
    http: reqwest::Client,
}

fn python() -> String {
    std::env::var("STEWRD_TEST_MCP_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/mcp/venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

impl McpFixture {
    /// Starts the server with `args` (`--json`, `--page-size N`) and waits
    /// for its `READY <port>` line.
    pub async fn start(args: &[&str]) -> Self {
        let script = format!("{}/tests/mcp/server.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(python())
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the MCP fixture starts (scripts/test installs its SDK)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the MCP fixture is ready in time")
            .expect("its stdout")
            .expect("a READY line");
        let port = ready
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .expect("READY <port>");
        Self {
            _child: child,
            port,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    async fn get(&self, path: &str) -> Vec<Value> {
        self.http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .expect("the fixture answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Every JSON-RPC message the server received.
    pub async fn log(&self) -> Vec<Value> {
        self.get("/log").await
    }

    /// The messages of `method`.
    pub async fn messages(&self, method: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|m| m["method"] == method)
            .collect()
    }

    /// Every tool run's start (and cancellation).
    pub async fn calls(&self) -> Vec<Value> {
        self.get("/calls").await
    }

    /// The runs of `tool` that started.
    pub async fn started(&self, tool: &str) -> Vec<Value> {
        self.calls()
            .await
            .into_iter()
            .filter(|c| c["tool"] == tool && c.get("cancelled").is_none())
            .collect()
    }

    pub async fn notes(&self) -> Vec<Value> {
        self.get("/notes").await
    }

    async fn post(&self, path: &str) {
        let status = self
            .http
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .expect("the fixture answers")
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    /// Forgets every session (as a restart would).
    pub async fn expire(&self) {
        self.post("/expire").await;
    }

    /// Stops listing `tool`.
    pub async fn hide(&self, tool: &str) {
        self.post(&format!("/hide?tool={tool}")).await;
    }
}

/// Connects `servers` (JSON as the API takes them) to the project.
pub async fn connect(app: &TestApp, key: &str, servers: Value) -> Value {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/mcp_servers",
            Some(key),
            Some(json!({ "servers": servers })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// One server named `docs` at the fixture.
async fn docs(app: &TestApp, key: &str, server: &McpFixture, timeout_secs: u32) {
    connect(
        app,
        key,
        json!([{"name": "docs", "url": server.url(), "timeout_secs": timeout_secs}]),
    )
    .await;
}

/// Submits `message` and waits for the session to be final.
async fn run(app: &TestApp, key: &str, message: &str) -> (Value, String) {
    let accepted = app.submit(key, json!({"message": message})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    (app.wait_final(key, &session).await, run)
}

/// The names of the tools offered in model request `index`.
fn offered(app: &TestApp, index: usize) -> Vec<String> {
    app.stub.state.requests()[index].body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn options() -> Options {
    Options::default()
        .env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
        .env("STEWRD_MCP_CONNECT_SECS", "3")
}

#[tokio::test]
async fn servers_are_configured_with_secret_headers_and_listed_on_request() {
    let app = spawn_app_with(options()).await;
    let (project, key) = app.create_project("acme").await;
    let server = McpFixture::start(&["--page-size", "3"]).await;
    let secret = "Bearer mcp-secret-Zq81xKc";
    let body = connect(
        &app,
        &key,
        json!([{"name": "docs", "url": server.url(), "headers": {"Authorization": secret},
                "allowed_tools": ["lookup", "add_note", "picture", "whoami", "fail", "slow",
                                  "slow_lookup", "set_flag", "not_there"]},
               {"name": "down", "url": "http://127.0.0.1:9/mcp", "timeout_secs": 5,
                "require_approval": "never"}]),
    )
    .await;
    assert_eq!(
        body["servers"][0],
        json!({"name": "docs", "url": server.url(), "headers": ["Authorization"],
               "allowed_tools": ["lookup", "add_note", "picture", "whoami", "fail", "slow",
                                 "slow_lookup", "set_flag", "not_there"],
               "timeout_secs": 60, "require_approval": "never"})
    );
    // Saving did not connect.
    assert!(server.log().await.is_empty());
    let (_, again) = app
        .call(Method::GET, "/v1/project/mcp_servers", Some(&key), None)
        .await;
    assert_eq!(again, body);
    let (_, admin) = app
        .call(
            Method::GET,
            &format!("/v1/admin/projects/{project}/mcp_servers"),
            Some(crate::helpers::ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(admin, body);
    // Listing follows every page, applies allowed_tools and sends the headers.
    let (status, tools) = app
        .call(
            Method::GET,
            "/v1/project/mcp_servers/docs/tools",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tools}");
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "docs__lookup",
            "docs__set_flag",
            "docs__add_note",
            "docs__slow",
            "docs__slow_lookup",
            "docs__picture",
            "docs__fail",
            "docs__whoami"
        ]
    );
    assert_eq!(tools["tools"][0]["parameters"]["required"], json!(["key"]));
    let lists = server.messages("tools/list").await;
    assert_eq!(lists.len(), 3, "three pages");
    assert!(
        lists
            .iter()
            .all(|m| m["headers"]["authorization"] == secret)
    );
    // A server that does not answer: 502, saying what went wrong.
    let (status, error) = app
        .call(
            Method::GET,
            "/v1/project/mcp_servers/down/tools",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["code"], "mcp_server_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`down`")),
        "{error}"
    );
    let (status, _) = app
        .call(
            Method::GET,
            "/v1/project/mcp_servers/nope/tools",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad input names its field.
    for (servers, param) in [
        (
            json!([{"name": "Docs", "url": server.url()}]),
            "servers[0].name",
        ),
        (
            json!([{"name": "a", "url": server.url()}, {"name": "a", "url": server.url()}]),
            "servers[1].name",
        ),
        (
            json!([{"name": "a", "url": server.url(), "headers": {"Mcp-Session-Id": "x"}}]),
            "servers[0].headers",
        ),
        (
            json!([{"name": "a", "url": "ftp://x/mcp"}]),
            "servers[0].url",
        ),
        (
            json!([{"name": "a", "url": server.url(), "timeout_secs": 0}]),
            "servers[0].timeout_secs",
        ),
        (
            json!(
                (0..9)
                    .map(|i| json!({"name": format!("s{i}"), "url": server.url()}))
                    .collect::<Vec<_>>()
            ),
            "servers",
        ),
    ] {
        let (status, error) = app
            .call(
                Method::PUT,
                "/v1/project/mcp_servers",
                Some(&key),
                Some(json!({ "servers": servers })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{servers}: {error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    // The header value was never shown, stored in clear or logged.
    let responses = app.responses_text();
    crate::byok::assert_no_piece_of(
        secret,
        &[
            ("a response", responses),
            ("the logs", app.all_logs()),
            ("the database", crate::byok::database_text(&app).await),
        ],
    );
}

#[tokio::test]
async fn a_run_pins_the_tools_listed_at_its_first_step_and_calls_them_with_its_key() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&["--page-size", "3"]).await;
    docs(&app, &key, &server, 60).await;
    let http_tool = Receiver::start().await;
    server_tool(&app, &key, "weather", &http_tool.url()).await;
    http_tool.script([Answer::ok("sunny")]);
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("c1", "docs__lookup", r#"{"key": "a"}"#),
                ("c2", "weather", "{}"),
            ],
            4,
        ),
        // Late, so the tool is hidden before this call is made.
        Reply::tool_calls(&[("c3", "docs__lookup", r#"{"key": "b"}"#)], 4)
            .delayed(std::time::Duration::from_secs(2)),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "look"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    // Hidden after the run listed it: the run still offers it.
    wait_for(PATIENCE, || async {
        (!server.started("lookup").await.is_empty()).then_some(())
    })
    .await
    .expect("the first call reached the server");
    server.hide("lookup").await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let first = offered(&app, 0);
    assert!(first.contains(&"docs__lookup".to_owned()), "{first:?}");
    assert!(first.contains(&"weather".to_owned()));
    assert_eq!(offered(&app, 1), first);
    assert_eq!(offered(&app, 2), first);
    assert_eq!(server.messages("tools/list").await.len(), 3, "listed once");
    // The calls carried the run's key, in _meta and as a header.
    let calls = server.started("lookup").await;
    assert_eq!(calls.len(), 1, "the hidden tool's second call is refused");
    assert_eq!(calls[0]["idempotency_key"], format!("{run}:c1"));
    assert_eq!(calls[0]["meta_key"], format!("{run}:c1"));
    assert_eq!(calls[0]["arguments"], json!({"key": "a"}));
    let second = sent(&app, 1);
    assert_eq!(second[2]["content"], "value-of-a");
    assert_eq!(second[3]["content"], "sunny");
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["executor"], "mcp");
    assert_eq!(listed[1]["server"], "docs");
    assert_eq!(listed[1]["status"], "succeeded");
    assert_eq!(listed[2]["executor"], "server");
    assert!(listed[2].get("server").is_none());
    // The hidden tool's call is the server's error, given to the model.
    assert_eq!(listed[4]["status"], "failed", "{}", listed[4]);
    assert!(
        listed[4]["output"]
            .as_str()
            .is_some_and(|o| o.contains("Unknown tool")),
        "{}",
        listed[4]
    );
    // One session for the whole run.
    assert_eq!(server.messages("initialize").await.len(), 1);
}

#[tokio::test]
async fn a_server_that_cannot_be_listed_fails_the_run_naming_it() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    connect(
        &app,
        &key,
        json!([{"name": "gone", "url": "http://127.0.0.1:9/mcp"}]),
    )
    .await;
    let (done, _) = run(&app, &key, "anything").await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "mcp_server_unavailable");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`gone`")),
        "{done}"
    );
    assert!(app.stub.state.requests().is_empty(), "no model call");
}

#[tokio::test]
async fn results_become_text_files_or_errors_the_model_is_given() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&["--json"]).await;
    docs(&app, &key, &server, 60).await;
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("c1", "docs__picture", "{}"),
                ("c2", "docs__fail", r#"{"reason": "no such page"}"#),
                ("c3", "docs__add_note", r#"{"text": "first"}"#),
            ],
            4,
        ),
        Reply::tool_calls(&[("c4", "docs__add_note", r#"{"text": "second"}"#)], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "go"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let second = sent(&app, 1);
    let picture: Value =
        serde_json::from_str(second[2]["content"].as_str().unwrap_or_default()).expect("JSON");
    assert_eq!(picture["content_type"], "image/png", "{picture}");
    assert_eq!(second[5]["role"], "user", "the image is shown");
    assert_eq!(second[5]["content"][0]["type"], "image_url");
    assert!(
        second[3]["content"]
            .as_str()
            .is_some_and(|c| c.contains("no such page") && c.contains("error")),
        "{}",
        second[3]
    );
    assert_eq!(second[4]["content"], "noted 1");
    let (_, files) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}/files"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(files["data"][0]["id"], picture["file_id"]);
    assert_eq!(files["data"][0]["purpose"], "artifact");
    assert_eq!(server.notes().await, [json!("first"), json!("second")]);
}

#[tokio::test]
async fn an_expired_session_is_initialised_again_and_the_call_made_once() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    docs(&app, &key, &server, 60).await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__add_note", r#"{"text": "one"}"#)], 4),
        Reply::text("first done", 4),
    ]);
    let (done, _) = run(&app, &key, "first").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    server.expire().await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__add_note", r#"{"text": "two"}"#)], 4),
        Reply::text("second done", 4),
    ]);
    let (done, _) = run(&app, &key, "second").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(server.notes().await, [json!("one"), json!("two")]);
    assert_eq!(server.messages("initialize").await.len(), 2);
    let calls = server.messages("tools/call").await;
    assert_eq!(
        calls.len(),
        2,
        "the refused request was not a call: {calls:?}"
    );
}

#[tokio::test]
async fn a_call_past_its_limit_is_cancelled_at_the_server_and_never_made_again() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    docs(&app, &key, &server, 1).await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__slow_lookup", r#"{"seconds": 30}"#)], 4),
        Reply::text("done", 4),
    ]);
    let (done, run_id) = run(&app, &key, "slow").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let output = &sent(&app, 1)[2]["content"];
    assert!(
        output
            .as_str()
            .is_some_and(|o| o.contains("no answer within 1 s")),
        "{output}"
    );
    let cancels = wait_for(PATIENCE, || async {
        let cancels = server.messages("notifications/cancelled").await;
        (!cancels.is_empty()).then_some(cancels)
    })
    .await
    .expect("the server was told to stop");
    let calls = server.messages("tools/call").await;
    assert_eq!(
        calls.len(),
        1,
        "a timed-out call is not made again, even read-only"
    );
    assert_eq!(cancels[0]["params"]["requestId"], calls[0]["id"]);
    assert_eq!(calls[0]["idempotency_key"], format!("{run_id}:c1"));
}

#[tokio::test]
async fn a_lost_answer_is_repeated_only_for_a_tool_that_says_it_may_be() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    docs(&app, &key, &server, 60).await;
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("c1", "docs__slow", r#"{"seconds": 30}"#),
                ("c2", "docs__slow_lookup", r#"{"seconds": 30}"#),
            ],
            4,
        ),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "cut"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_for(PATIENCE, || async {
        let started = server.calls().await.len();
        (started >= 2).then_some(())
    })
    .await
    .expect("both calls running at once");
    // Their streams end without an answer: the session is gone.
    server.expire().await;
    // The repeated read-only call is cut again each time (four attempts in
    // all), so the run can end.
    for attempt in 2..=4 {
        wait_for(PATIENCE, || async {
            (server.started("slow_lookup").await.len() >= attempt).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("attempt {attempt} of the read-only call is made"));
        server.expire().await;
    }
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(server.started("slow").await.len(), 1, "never sent twice");
    let given = sent(&app, 1);
    assert!(
        given[2]["content"]
            .as_str()
            .is_some_and(|c| c.contains("the outcome of this call is unknown")),
        "{}",
        given[2]
    );
    assert!(
        given[3]["content"]
            .as_str()
            .is_some_and(|c| c.contains("failed 4 times")),
        "{}",
        given[3]
    );
    // Each attempt of the read-only call carried the same key.
    let keys: Vec<Value> = server
        .started("slow_lookup")
        .await
        .iter()
        .map(|c| c["idempotency_key"].clone())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[tokio::test]
async fn cancelling_a_run_cancels_its_calls_at_the_server() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    docs(&app, &key, &server, 60).await;
    app.stub.state.push([Reply::tool_calls(
        &[("c1", "docs__slow", r#"{"seconds": 30}"#)],
        4,
    )]);
    let accepted = app.submit(&key, json!({"message": "cancel me"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_for(PATIENCE, || async {
        (!server.started("slow").await.is_empty()).then_some(())
    })
    .await
    .expect("the call is running");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = wait_for(PATIENCE, || async {
        server
            .calls()
            .await
            .into_iter()
            .find(|c| c["cancelled"] == true)
    })
    .await
    .expect("the server stopped the call");
    assert_eq!(cancelled["tool"], "slow");
    let cancels = server.messages("notifications/cancelled").await;
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0]["params"]["requestId"], cancelled["request_id"]);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "cancelled");
}

#[tokio::test]
async fn one_session_serves_every_call_of_a_worker() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    docs(&app, &key, &server, 60).await;
    for i in 0..5 {
        app.stub.state.push([
            Reply::tool_calls(
                &[
                    ("c1", "docs__lookup", r#"{"key": "x"}"#),
                    ("c2", "docs__set_flag", r#"{"key": "k", "value": "v"}"#),
                ],
                4,
            ),
            Reply::text(&format!("done {i}"), 4),
        ]);
        let (done, _) = run(&app, &key, &format!("run {i}")).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    assert_eq!(server.messages("tools/call").await.len(), 10);
    assert_eq!(server.messages("tools/list").await.len(), 5, "one per run");
    assert_eq!(server.messages("initialize").await.len(), 1);
}

#[tokio::test]
async fn header_values_reach_the_server_and_nowhere_else() {
    let app = spawn_app_with(options().env("RUST_LOG", "trace").worker_metrics()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    let secret = "Bearer mcp-Hx71QmPz-team";
    let team = "team-Vb28LpWq";
    connect(
        &app,
        &key,
        json!([{"name": "docs", "url": server.url(),
                "headers": {"Authorization": secret, "X-Team": team}}]),
    )
    .await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__whoami", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "who"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run_id = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let calls = server.messages("tools/call").await;
    assert_eq!(calls[0]["headers"]["authorization"], secret);
    assert_eq!(calls[0]["headers"]["x-team"], team);
    // The tool echoed them: what stewrd keeps and shows has them cut out.
    let echoed = sent(&app, 1)[2]["content"].clone();
    assert!(
        echoed.as_str().is_some_and(|e| e.contains("[redacted]")),
        "{echoed}"
    );
    steps(&app, &key, &session, &run_id).await;
    let mut sent_to_model = String::new();
    for request in app.stub.state.requests() {
        sent_to_model.push_str(&request.body.to_string());
    }
    let responses = app.responses_text();
    // Counted by outcome, one session opened.
    let metrics = crate::operator::text(&app, &app.worker_metrics().await).await;
    let sample = |name: &str, labels: &[&str]| crate::operator::sample(&metrics, name, labels);
    assert_eq!(
        sample("stewrd_mcp_calls_total", &["outcome=\"succeeded\""]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample("stewrd_mcp_initializes_total", &[]), Some(1.0));
    let places = [
        ("a response", responses),
        ("the logs", app.all_logs()),
        ("the database", crate::byok::database_text(&app).await),
        ("what the model was sent", sent_to_model),
        ("the worker's metrics", metrics.clone()),
    ];
    crate::byok::assert_no_piece_of(secret, &places);
    crate::byok::assert_no_piece_of(team, &places);
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_header_values() {
    let mut app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    let secret = "Bearer rotated-Tw52Nd";
    connect(
        &app,
        &key,
        json!([{"name": "docs", "url": server.url(), "headers": {"Authorization": secret}}]),
    )
    .await;
    let new_key = "k2:AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=";
    app.env.insert(
        "STEWRD_MASTER_KEYS".into(),
        format!("{new_key},{}", crate::helpers::MASTER_KEYS),
    );
    let rotated = app.run_command(&["rotate-master-key"]);
    assert!(rotated.status.success(), "{rotated:?}");
    // Only the new key from now on: the headers were re-sealed under it.
    app.restart_workers(&[("STEWRD_MASTER_KEYS", new_key)])
        .await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__whoami", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let (done, _) = run(&app, &key, "who").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let calls = server.messages("tools/call").await;
    assert_eq!(calls[0]["headers"]["authorization"], secret);
}

#[tokio::test]
async fn the_dashboard_shows_a_projects_servers_without_header_values_and_mcp_steps() {
    let app = spawn_app_with(options()).await;
    let (project, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    let secret = "Bearer dash-Kq93Lm";
    connect(
        &app,
        &key,
        json!([{"name": "docs", "url": server.url(), "headers": {"Authorization": secret},
                "allowed_tools": ["lookup"]}]),
    )
    .await;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__lookup", r#"{"key": "a"}"#)], 4),
        Reply::text("done", 4),
    ]);
    let (done, _) = run(&app, &key, "look").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let session = done["id"].as_str().expect("id").to_owned();
    let (browser, cookie) = crate::helpers::operator_cookie(&app).await;
    let page = |path: String| {
        let (browser, cookie) = (browser.clone(), cookie.clone());
        let url = format!("{}{path}", app.base);
        async move {
            let answer = browser
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("an answer");
            assert_eq!(answer.status(), StatusCode::OK);
            answer.text().await.unwrap_or_default()
        }
    };
    let project_page = page(format!("/dashboard/projects/{project}")).await;
    let row = format!(
        r#"<tr><td class="mono">docs</td><td class="mono">{}</td><td class="mono">Authorization</td><td>lookup</td>"#,
        server.url()
    );
    assert!(project_page.contains(&row), "{project_page}");
    assert!(!project_page.contains("dash-Kq93Lm"));
    let session_page = page(format!("/dashboard/sessions/{session}")).await;
    assert!(
        session_page.contains(r#"<td class="mono">docs__lookup</td><td>mcp · docs</td>"#),
        "{session_page}"
    );
    assert!(session_page.contains("value-of-a"));
}
