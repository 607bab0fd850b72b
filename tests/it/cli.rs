//! The commands as an operator runs them.

use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    MASTER_KEYS, Options, PATIENCE, cleanup, command_with, connect_db, database_url, spawn_app,
    spawn_app_with, start_process_in, stewrd, unique_name, wait_for,
};

#[tokio::test]
async fn migrate_creates_the_database_and_is_safe_to_run_concurrently_and_twice() {
    let name = unique_name();
    let run = || {
        stewrd()
            .arg("migrate")
            .env("DATABASE_URL", database_url(&name))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn migrate")
    };
    let children: Vec<_> = (0..3).map(|_| run()).collect();
    for child in children {
        let output = child.wait_with_output().expect("migrate ran");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let again = run().wait_with_output().expect("migrate ran");
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "database is up to date"
    );
    let db = connect_db(&database_url(&name)).await;
    let applied: i64 = db
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("migrations table")
        .get(0);
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count() as i64;
    assert_eq!(applied, files, "every migration applied exactly once");
    drop(db);
    cleanup(&name);
}

fn run_failing(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = stewrd()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("ran");
    assert!(!output.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line expected, got:\n{stderr}"
    );
    stderr
}

#[test]
fn a_command_that_cannot_work_says_which_setting_to_fix_in_one_line() {
    let line = run_failing(
        &["api"],
        &[
            ("STEWRD_MASTER_KEYS", MASTER_KEYS),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
        ],
    );
    assert!(line.contains("DATABASE_URL"), "{line}");
    let line = run_failing(&["worker"], &[("STEWRD_WORKER_CONCURRENCY", "0")]);
    assert!(line.contains("STEWRD_WORKER_CONCURRENCY"), "{line}");
    let line = run_failing(&["migrate"], &[("DATABASE_URL", "not a url at all")]);
    assert!(line.contains("DATABASE_URL"), "{line}");
    let line = run_failing(
        &["admin", "create-project", "--name", "x"],
        &[("STEWRD_LOG_FORMAT", "xml")],
    );
    assert!(line.contains("STEWRD_LOG_FORMAT"), "{line}");
}

#[tokio::test]
async fn the_api_refuses_to_start_on_an_unmigrated_database_or_without_a_broker() {
    let app = spawn_app().await;
    let line = run_failing(
        &["api"],
        &[
            ("STEWRD_MASTER_KEYS", MASTER_KEYS),
            ("DATABASE_URL", &database_url(&app.name)),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
            ("STEWRD_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(line.contains("AMQP_URL"), "{line}");
    let line = run_failing(
        &["worker"],
        &[
            ("STEWRD_MASTER_KEYS", MASTER_KEYS),
            ("DATABASE_URL", &database_url("postgres")),
        ],
    );
    assert!(line.contains("stewrd migrate"), "{line}");
}

/// A command Postgres refuses says so in one line, with Postgres's message
/// and not its DETAIL, which quotes the failing row.
#[tokio::test]
async fn a_command_postgres_refuses_says_why_without_the_values_it_carried() {
    let app = spawn_app().await;
    app.db()
        .await
        .batch_execute(
            "ALTER TABLE projects ADD CONSTRAINT no_canary CHECK (position('canary' IN name) = 0)",
        )
        .await
        .expect("a constraint the command will break");
    let line = run_failing(
        &["admin", "create-project", "--name", "canary-5d2e1 private"],
        &[
            ("DATABASE_URL", &database_url(&app.name)),
            ("STEWRD_MASTER_KEYS", MASTER_KEYS),
        ],
    );
    assert!(
        line.contains("violates check constraint \"no_canary\""),
        "{line}"
    );
    assert!(!line.contains("canary-5d2e1"), "{line}");
}

#[tokio::test]
async fn admin_create_project_prints_a_key_that_works() {
    let app = spawn_app().await;
    let output = stewrd()
        .args(["admin", "create-project", "--name", "from the shell"])
        .env("DATABASE_URL", database_url(&app.name))
        .env("STEWRD_MASTER_KEYS", MASTER_KEYS)
        .output()
        .expect("ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let key = printed["api_key"].as_str().expect("api_key");
    assert!(key.starts_with("sk-stw_") && key.len() >= 7 + 43, "{key}");
    let (status, project) = app.call(Method::GET, "/v1/project", Some(key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(project["id"], printed["project_id"]);
    assert_eq!(project["name"], "from the shell");

    // The key is stored only as a hash and a short prefix.
    let db = app.db().await;
    let row = db
        .query_one("SELECT display_prefix, hash FROM api_keys", &[])
        .await
        .expect("one key");
    let prefix: String = row.get("display_prefix");
    let hash: Vec<u8> = row.get("hash");
    assert_eq!(prefix, key[..11]);
    assert_eq!(hash.len(), 32);
    let everything = format!(
        "{:?}",
        db.query("SELECT * FROM api_keys", &[]).await.expect("rows")
    );
    assert!(!everything.contains(&key[11..]));

    let created = stewrd()
        .args([
            "admin",
            "create-key",
            "--project",
            printed["project_id"].as_str().unwrap_or_default(),
        ])
        .env("DATABASE_URL", database_url(&app.name))
        .env("STEWRD_MASTER_KEYS", MASTER_KEYS)
        .output()
        .expect("ran");
    let issued: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let second = issued["api_key"].as_str().expect("second key");
    let revoked = stewrd()
        .args([
            "admin",
            "revoke-key",
            "--key",
            issued["key_id"].as_str().unwrap_or_default(),
        ])
        .env("DATABASE_URL", database_url(&app.name))
        .env("STEWRD_MASTER_KEYS", MASTER_KEYS)
        .output()
        .expect("ran");
    assert!(revoked.status.success());
    let (status, _) = app
        .call(Method::GET, "/v1/project", Some(second), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn json_logs_carry_the_request_id_from_the_api_into_the_worker() {
    let app = spawn_app_with(Options::default().env("STEWRD_LOG_FORMAT", "json")).await;
    let (_, key) = app.create_project("acme").await;
    let (status, headers, body) = app
        .call_raw(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "trace me"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request_id = headers["x-request-id"].to_str().expect("id").to_owned();
    let accepted: Value = serde_json::from_str(&body).expect("json");
    let run_id = accepted["run_id"].as_str().expect("run id");
    app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;

    let found = crate::helpers::wait_for(PATIENCE, || async {
        app.workers[0]
            .log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "run succeeded")
    })
    .await
    .expect("a JSON 'run succeeded' line from the worker");
    assert_eq!(found["span"]["run_id"], run_id, "{found}");
    assert_eq!(found["span"]["request_id"], request_id.as_str(), "{found}");
    assert_eq!(
        found["span"]["session_id"], accepted["session_id"],
        "{found}"
    );
    // Every API line is JSON too.
    let api_logs = app.api.log_text();
    assert!(
        api_logs
            .lines()
            .all(|line| serde_json::from_str::<Value>(line).is_ok()),
        "{api_logs}"
    );
}

#[tokio::test]
async fn dev_runs_everything_in_one_process_with_the_stub_when_no_key_is_set() {
    let name = unique_name();
    let env: std::collections::HashMap<String, String> = [
        ("DATABASE_URL".to_owned(), database_url(&name)),
        ("STEWRD_QUEUE_PREFIX".to_owned(), name.clone()),
        ("STEWRD_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("STEWRD_ADMIN_TOKEN".to_owned(), "dev-token".to_owned()),
    ]
    .into_iter()
    .collect();
    // In a scratch directory: without STEWRD_MASTER_KEYS, dev writes .stewrd/master.key there.
    let scratch = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let (mut dev, first_line) = start_process_in(Some(&scratch), &env, &["dev"], "api");
    let base = first_line
        .and_then(|line| line.rsplit(' ').next().map(str::to_owned))
        .expect("dev printed its address");
    let announced = wait_for(PATIENCE, || async {
        dev.log_text().contains("STUB provider").then_some(())
    })
    .await;
    assert!(
        announced.is_some(),
        "dev must say loudly that it uses the stub"
    );
    stewrd_shared::runtime::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/admin/projects"))
        .bearer_auth("dev-token")
        .json(&json!({"name": "dev"}))
        .send()
        .await
        .expect("create project")
        .json()
        .await
        .expect("json");
    let key = created["api_key"].as_str().expect("key");
    let accepted: Value = http
        .post(format!("{base}/v1/agent"))
        .bearer_auth(key)
        .json(&json!({"message": "hello dev"}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let session_id = accepted["session_id"].as_str().expect("id");
    let session: Value = http
        .get(format!("{base}/v1/sessions/{session_id}?wait=20"))
        .bearer_auth(key)
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["output"], "Echo: hello dev");
    // In the README's order.
    readme_approvals_walk_through(&http, &base, key, &dev.log_text()).await;
    readme_web_fetch_walk_through(&http, &base, key).await;
    readme_files_walk_through(&http, &base, key, &dev.log_text(), &scratch).await;
    readme_mcp_walk_through(&http, &base, key).await;
    dev.terminate();
    let status = dev.wait_exit().await.expect("dev stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let key_file = scratch.join(".stewrd/master.key");
    let metadata = std::fs::metadata(&key_file).expect("dev created its master key");
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777,
        0o600
    );

    // The README's shell commands, in the same folder, use that key (and say so).
    for args in [
        &["admin", "create-project", "--name", "from the shell"][..],
        &["rotate-master-key"][..],
    ] {
        let output = command_with(&env, args)
            .current_dir(&scratch)
            .output()
            .expect("ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(".stewrd/master.key"), "{args:?}: {stderr}");
    }
    // Elsewhere, without the setting, they still stop with one line naming it.
    let elsewhere = std::env::temp_dir().join(format!("{name}-elsewhere"));
    std::fs::create_dir_all(&elsewhere).expect("scratch dir");
    let output = command_with(&env, &["admin", "create-project", "--name", "x"])
        .current_dir(&elsewhere)
        .output()
        .expect("ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("STEWRD_MASTER_KEYS"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&elsewhere);
    let _ = std::fs::remove_dir_all(&scratch);
    cleanup(&name);
}

/// The README's Files walk-through against `stewrd dev`: files kept in
/// `.stewrd/files` with nothing set, and the stub's image tool making one
/// artifact in a run that ends.
async fn readme_files_walk_through(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    log: &str,
    scratch: &std::path::Path,
) {
    let part = reqwest::multipart::Part::bytes(b"Quarterly numbers: 42, 17, 8\n".to_vec())
        .file_name("notes.txt");
    let file: Value = http
        .post(format!("{base}/v1/files"))
        .bearer_auth(key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    assert_eq!(file["content_type"], "text/plain; charset=utf-8", "{file}");
    assert!(
        scratch
            .join(".stewrd/files")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "dev keeps files in .stewrd/files"
    );
    // The stub's address, as dev announced it.
    let stub = log
        .split("STUB provider at ")
        .nth(1)
        .and_then(|rest| rest.split("/v1").next())
        .expect("the stub's address");
    let set = http
        .put(format!("{base}/v1/project/tools"))
        .bearer_auth(key)
        .json(&json!({"tools": [{"name": "draw", "url": format!("{stub}/_stub/tools/pixel")}]}))
        .send()
        .await
        .expect("tools");
    assert!(set.status().is_success(), "{}", set.status());
    let accepted: Value = http
        .post(format!("{base}/v1/agent"))
        .bearer_auth(key)
        .json(&json!({"message": "Draw something", "files": [file["id"]]}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let session_id = accepted["session_id"].as_str().expect("id");
    let session: Value = http
        .get(format!("{base}/v1/sessions/{session_id}?wait=20"))
        .bearer_auth(key)
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(session["status"], "succeeded", "{session}");
    let files: Value = http
        .get(format!("{base}/v1/sessions/{session_id}/files"))
        .bearer_auth(key)
        .send()
        .await
        .expect("files")
        .json()
        .await
        .expect("json");
    let kinds: Vec<(&str, &str)> = files["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["purpose"].as_str().unwrap_or_default(),
                f["content_type"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("artifact", "image/png"),
            ("input", "text/plain; charset=utf-8")
        ],
        "{files}"
    );
}

/// The README's MCP walk-through against `stewrd dev`: a real MCP server
/// connected with a header, its tools listed, and the stub calling the one
/// offered in a run whose step shows the server.
async fn readme_mcp_walk_through(http: &reqwest::Client, base: &str, key: &str) {
    let server = crate::mcp::McpFixture::start(&[]).await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let answer = request.send().await.expect("an answer");
            assert!(answer.status().is_success(), "{}", answer.status());
            answer.json::<Value>().await.expect("json")
        }
    };
    let servers = call(
        reqwest::Method::PUT,
        "/v1/project/mcp_servers",
        Some(json!({"servers": [{"name": "docs", "url": server.url(),
            "headers": {"Authorization": "Bearer my-token"}, "allowed_tools": ["ping"],
            "timeout_secs": 30}]})),
    )
    .await;
    assert_eq!(servers["servers"][0]["headers"], json!(["Authorization"]));
    let tools = call(
        reqwest::Method::GET,
        "/v1/project/mcp_servers/docs/tools",
        None,
    )
    .await;
    assert_eq!(tools["tools"][0]["name"], "docs__ping", "{tools}");
    call(
        reqwest::Method::PUT,
        "/v1/project/tools",
        Some(json!({"tools": []})),
    )
    .await;
    let accepted = call(
        reqwest::Method::POST,
        "/v1/agent",
        Some(json!({"message": "Ping the docs server"})),
    )
    .await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let run_id = accepted["run_id"].as_str().expect("run");
    let session = call(
        reqwest::Method::GET,
        &format!("/v1/sessions/{session_id}?wait=20"),
        None,
    )
    .await;
    assert_eq!(session["status"], "succeeded", "{session}");
    let steps = call(
        reqwest::Method::GET,
        &format!("/v1/sessions/{session_id}/runs/{run_id}/steps"),
        None,
    )
    .await;
    let step = &steps["data"][1];
    assert_eq!(
        (
            &step["name"],
            &step["executor"],
            &step["server"],
            &step["output"]
        ),
        (
            &json!("docs__ping"),
            &json!("mcp"),
            &json!("docs"),
            &json!("pong")
        ),
        "{steps}"
    );
}

/// The README's approvals walk-through against `stewrd dev`: the stub's image
/// tool waits for a yes, the approval quoting the hash the README shows.
async fn readme_approvals_walk_through(http: &reqwest::Client, base: &str, key: &str, log: &str) {
    let stub = log
        .split("STUB provider at ")
        .nth(1)
        .and_then(|rest| rest.split("/v1").next())
        .expect("the stub's address");
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let answer = request.send().await.expect("an answer");
            let status = answer.status();
            (status, answer.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, _) = send(
        reqwest::Method::PUT,
        "/v1/project/tools".into(),
        Some(
            json!({"tools": [{"name": "draw", "url": format!("{stub}/_stub/tools/pixel"),
                               "require_approval": "always"}]}),
        ),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_, accepted) = send(
        reqwest::Method::POST,
        "/v1/agent".into(),
        Some(json!({"message": "Draw something"})),
    )
    .await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let (_, paused) = send(
        reqwest::Method::GET,
        format!("/v1/sessions/{session_id}?wait=30"),
        None,
    )
    .await;
    let sha = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    assert_eq!(
        paused["required_action"]["tool_calls"],
        json!([{"id": "call_stub_1", "name": "draw", "executor": "server",
                "arguments": "{}", "arguments_sha256": sha}]),
        "{paused}"
    );
    let (status, decided) = send(
        reqwest::Method::POST,
        format!("/v1/sessions/{session_id}/approvals"),
        Some(
            json!({"decisions": [{"tool_call_id": "call_stub_1", "approve": true,
                                   "arguments_sha256": sha}]}),
        ),
    )
    .await;
    assert!(status.is_success(), "{status}: {decided}");
    let (_, done) = send(
        reqwest::Method::GET,
        format!("/v1/sessions/{session_id}?wait=30"),
        None,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

/// The README's web_fetch example against `stewrd dev`: the stub passes the
/// message's URL, a page of dev's own, whose text the run echoes.
async fn readme_web_fetch_walk_through(http: &reqwest::Client, base: &str, key: &str) {
    let accepted: Value = http
        .post(format!("{base}/v1/agent"))
        .bearer_auth(key)
        .json(&json!({"message": format!("What does {base}/healthz say?"),
                      "tools": [{"type": "web_fetch"}]}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let session_id = accepted["session_id"].as_str().expect("id");
    let session: Value = http
        .get(format!("{base}/v1/sessions/{session_id}?wait=30"))
        .bearer_auth(key)
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["output"], r#"Echo: {"status":"ok"}"#, "{session}");
}
