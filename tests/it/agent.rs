//! Agent runs: a run is a loop of model calls and tool calls. Client tools pause
//! the run in `requires_action` until the client answers; the project's server
//! tools are called by stewrd, signed; every step is committed before the next.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    byok::{assert_no_piece_of, database_text},
    doors::Dashboard,
    helpers::{ADMIN_TOKEN, Options, PATIENCE, TestApp, spawn_app, spawn_app_with, wait_for},
    operator::{sample, stream_events, text},
    receiver::{Answer, Receiver},
};

/// A client tool definition.
pub fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": format!("the {name} tool"),
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
}

/// Long-polls until the session is in `status`.
pub async fn wait_status(app: &TestApp, key: &str, session: &str, status: &str) -> Value {
    wait_for(PATIENCE, || async {
        let (_, body) = app
            .call(
                Method::GET,
                &format!("/v1/sessions/{session}?wait=5"),
                Some(key),
                None,
            )
            .await;
        (body["status"] == status).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("session {session} never became {status}"))
}

pub async fn submit_outputs(
    app: &TestApp,
    key: &str,
    session: &str,
    outputs: &[(&str, &str)],
) -> (StatusCode, Value) {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|(id, output)| json!({"tool_call_id": id, "output": output}))
        .collect();
    app.call(
        Method::POST,
        &format!("/v1/sessions/{session}/tool_outputs"),
        Some(key),
        Some(json!({"tool_outputs": outputs})),
    )
    .await
}

/// The messages of the stub's `index`th request, as (role, content, tool_call_id).
pub(crate) fn sent(app: &TestApp, index: usize) -> Vec<Value> {
    app.stub.state.requests()[index].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn roles(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) async fn steps(app: &TestApp, key: &str, session: &str, run: &str) -> Vec<Value> {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}/runs/{run}/steps"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn client_tools_pause_the_run_and_their_outputs_resume_it_with_the_calls_paired() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let hook = Receiver::start().await;
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("call_w", "get_weather", r#"{"city":"Paris"}"#),
                ("call_t", "get_time", r#"{"city":"Paris"}"#),
            ],
            10,
        ),
        Reply::tool_calls(&[("call_w2", "get_weather", r#"{"city":"Rome"}"#)], 10),
        Reply::text("Sunny in Paris at noon, rainy in Rome.", 10),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Weather in Paris and Rome?", "tools": [tool("get_weather"), tool("get_time")],
                   "webhook_url": hook.url()}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();

    // Paused: GET shows the two pending calls, a webhook announces them.
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    let action = &paused["required_action"];
    assert_eq!(action["type"], "submit_tool_outputs");
    assert_eq!(action["run_id"], run.as_str());
    assert!(action["expires_at"].is_string(), "{action}");
    let calls = action["tool_calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_w");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    let announced = wait_for(PATIENCE, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json()["type"] == "session.requires_action")
    })
    .await
    .expect("a session.requires_action webhook");
    assert_eq!(
        announced.json()["data"]["required_action"]["tool_calls"][1]["id"],
        "call_t"
    );
    // So does the event stream's current state.
    let (event, _, data) =
        tokio::time::timeout(PATIENCE, stream_events(&app, &key, &session, None).recv())
            .await
            .expect("an event in time")
            .expect("an event");
    assert_eq!(event, "session.requires_action");
    assert_eq!(data["required_action"]["tool_calls"][0]["id"], "call_w");
    // A new message waits for this run to end.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "also", "session_id": session})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Answered (in another order): the run goes on with both results, in the model's order.
    let (status, body) = submit_outputs(
        &app,
        &key,
        &session,
        &[("call_t", "12:00"), ("call_w", "sunny")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        ["queued", "running", "requires_action"]
            .contains(&body["status"].as_str().unwrap_or_default())
    );
    wait_status(&app, &key, &session, "requires_action").await;
    let second = sent(&app, 1);
    assert_eq!(roles(&second), ["user", "assistant", "tool", "tool"]);
    assert_eq!(second[1]["content"], Value::Null);
    assert_eq!(second[1]["tool_calls"][0]["id"], "call_w");
    assert_eq!(second[1]["tool_calls"][1]["id"], "call_t");
    assert_eq!(
        (
            second[2]["tool_call_id"].clone(),
            second[2]["content"].clone()
        ),
        (json!("call_w"), json!("sunny"))
    );
    assert_eq!(
        (
            second[3]["tool_call_id"].clone(),
            second[3]["content"].clone()
        ),
        (json!("call_t"), json!("12:00"))
    );
    assert!(
        app.stub.state.requests()[0].body["tools"]
            .as_array()
            .is_some_and(|t| t.len() == 2)
    );

    // A second round, then the answer.
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_w2", "rainy")]).await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "Sunny in Paris at noon, rainy in Rome.");
    assert_eq!(
        done["usage"]["total_tokens"], 30,
        "the sum of the three model calls"
    );
    assert_eq!(
        roles(&sent(&app, 2)),
        ["user", "assistant", "tool", "tool", "assistant", "tool"]
    );
    let messages = done["messages"].as_array().expect("messages");
    assert_eq!(
        roles(messages),
        [
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    assert_eq!(messages[2]["tool_call_id"], "call_w");
    let listed = steps(&app, &key, &session, &run).await;
    let kinds: Vec<_> = listed
        .iter()
        .map(|s| s["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "model_call",
            "tool_call",
            "tool_call",
            "model_call",
            "tool_call",
            "model_call"
        ]
    );
    assert_eq!(listed[1]["executor"], "client");
    assert_eq!(listed[1]["output"], "sunny");
    assert_eq!(listed[0]["usage"]["total_tokens"], 10);

    // The next message carries the whole history, every call paired with its result.
    app.stub.state.push([Reply::text("You're welcome.", 4)]);
    app.submit(&key, json!({"message": "Thanks!", "session_id": session}))
        .await;
    app.wait_final(&key, &session).await;
    let history = sent(&app, 3);
    assert_eq!(
        roles(&history),
        [
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "user"
        ]
    );
    assert_eq!(
        history[6]["content"],
        "Sunny in Paris at noon, rainy in Rome."
    );
    assert!(history[7]["content"] == "Thanks!");
    // Outputs for a run no longer waiting: 409.
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_w2", "late")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// Gives the project a server tool at `url`, and a webhook secret to verify with.
pub(crate) async fn server_tool(app: &TestApp, key: &str, name: &str, url: &str) -> String {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/tools",
            Some(key),
            Some(json!({"tools": [{"name": name, "description": "looks it up",
                                   "parameters": {"type": "object"}, "url": url, "timeout_secs": 5}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tools"][0]["name"], name);
    let (_, secret) = app
        .call(Method::POST, "/v1/project/webhook/secret", Some(key), None)
        .await;
    secret["secret"].as_str().expect("secret").to_owned()
}

#[tokio::test]
async fn server_tools_are_called_signed_once_per_call_and_their_output_reaches_the_model() {
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "200ms")).await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    let hook = Receiver::start().await;
    let secret = server_tool(&app, &key, "lookup", &tools.url()).await;
    tools.script([Answer::ok(r#"{"temperature": 21}"#)]);
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "lookup", r#"{"city":"Paris"}"#)], 6),
        Reply::text("21 degrees.", 6),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "How warm?", "metadata": {"ticket": "42"}, "webhook_url": hook.url()}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let received = tools.received();
    assert_eq!(received.len(), 1);
    let call = &received[0];
    assert!(
        call.verifies_with(&secret),
        "the call is signed with the project's secret"
    );
    assert_eq!(call.header("idempotency-key"), format!("{run}:call_1"));
    let body = call.json();
    assert_eq!(body["type"], "tool.call");
    assert_eq!(body["data"]["session_id"], session.as_str());
    assert_eq!(body["data"]["run_id"], run.as_str());
    assert_eq!(body["data"]["tool_call_id"], "call_1");
    assert_eq!(body["data"]["name"], "lookup");
    assert_eq!(body["data"]["arguments"], json!({"city": "Paris"}));
    assert_eq!(body["data"]["metadata"], json!({"ticket": "42"}));
    // The model was offered the tool and got its output.
    let first = &app.stub.state.requests()[0].body;
    assert_eq!(first["tools"][0]["function"]["name"], "lookup");
    let second = sent(&app, 1);
    assert_eq!(roles(&second), ["user", "assistant", "tool"]);
    assert_eq!(second[2]["content"], r#"{"temperature": 21}"#);
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["executor"], "server");
    assert_eq!(listed[1]["status"], "succeeded");
    assert_eq!(listed[1]["attempts"], 1);
    // A run that never paused announces only its end: a server tool step is
    // no event.
    wait_for(PATIENCE, || async {
        (!hook.received().is_empty()).then_some(())
    })
    .await
    .expect("the final webhook");
    let types: Vec<Value> = hook
        .received()
        .iter()
        .map(|r| r.json()["type"].clone())
        .collect();
    assert_eq!(types, ["session.succeeded"]);
}

#[tokio::test]
async fn server_tool_failures_are_retried_or_given_to_the_model_as_errors() {
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")).await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tools.url()).await;
    let run = |reply_after: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.stub.state.push([
                Reply::tool_calls(&[("call_x", "lookup", r#"{"q":1}"#)], 2),
                Reply::text(reply_after, 2),
            ]);
            let accepted = app.submit(&key, json!({"message": "go"})).await;
            let session = accepted["session_id"].as_str().expect("id").to_owned();
            let done = app.wait_final(&key, &session).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            let requests = app.stub.state.requests();
            let last = requests.last().expect("a call");
            let messages = last.body["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            messages.last().cloned().unwrap_or_default()
        }
    };

    // 500, then 429 with Retry-After: 1, then 200: three attempts, one key.
    tools.script([
        Answer::status(500),
        Answer::status(429).header("retry-after", "1"),
        Answer::ok("found it"),
    ]);
    let result = run("ok").await;
    assert_eq!(result["content"], "found it");
    let received = tools.received();
    assert_eq!(received.len(), 3);
    let keys: Vec<_> = received
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    assert!(
        received[2].at - received[1].at >= Duration::from_secs(1),
        "Retry-After honored"
    );

    // A 4xx is final: one attempt, the model gets the error.
    tools.script([Answer::status(404)]);
    let result = run("ok").await;
    let error: Value =
        serde_json::from_str(result["content"].as_str().unwrap_or_default()).expect("JSON");
    assert!(
        error["error"].as_str().is_some_and(|e| e.contains("404")),
        "{error}"
    );
    assert_eq!(tools.received().len(), 4);

    // A redirect is not followed.
    let other = Receiver::start().await;
    tools.script([Answer::status(302).header("location", &other.url())]);
    let result = run("ok").await;
    assert!(
        result["content"]
            .as_str()
            .is_some_and(|c| c.contains("302")),
        "{result}"
    );
    assert!(other.received().is_empty(), "the redirect was followed");

    // Always failing: 4 attempts, then the error.
    tools.script((0..4).map(|_| Answer::status(503)));
    let result = run("ok").await;
    assert!(
        result["content"]
            .as_str()
            .is_some_and(|c| c.contains("failed 4 times")),
        "{result}"
    );

    // A big answer is cut to 64 KiB (and kept whole as a file).
    tools.script([Answer::ok(&"x".repeat(100 * 1024))]);
    let result = run("ok").await;
    let content = result["content"].as_str().unwrap_or_default();
    assert!(
        content.starts_with(&"x".repeat(64 * 1024)),
        "{}",
        content.len()
    );
    assert!(
        !content[64 * 1024..].contains('x'),
        "{}",
        &content[64 * 1024..]
    );
    assert!(content.contains("file_"), "{}", &content[64 * 1024..]);

    // Arguments that are not a JSON object, and a tool that does not exist: no call.
    let before = tools.received().len();
    app.stub.state.push([
        Reply::tool_calls(
            &[("call_a", "lookup", "{not json"), ("call_b", "nope", "{}")],
            2,
        ),
        Reply::text("done", 2),
    ]);
    let accepted = app.submit(&key, json!({"message": "bad calls"})).await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(
        tools.received().len(),
        before,
        "neither call reached the tool"
    );
    let last = sent(&app, app.stub.state.requests().len() - 1);
    assert!(
        last[2]["content"]
            .as_str()
            .is_some_and(|c| c.contains("not a JSON object"))
    );
    assert!(
        last[3]["content"]
            .as_str()
            .is_some_and(|c| c.contains("no tool named"))
    );
}

#[tokio::test]
async fn the_server_calls_of_one_step_run_at_once() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "slow", &tools.url()).await;
    tools.script([
        Answer::ok("for $tool_call_id").delayed(Duration::from_secs(2)),
        Answer::ok("for $tool_call_id").delayed(Duration::from_secs(2)),
    ]);
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "slow", "{}"), ("c2", "slow", "{}")], 2),
        Reply::text("both", 2),
    ]);
    let accepted = app.submit(&key, json!({"message": "two at once"})).await;
    app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    let received = tools.received();
    assert_eq!(received.len(), 2);
    let first_answer = received[0]
        .answered
        .lock()
        .expect("lock")
        .expect("answered");
    assert!(
        received[1].at < first_answer,
        "the second call began before the first ended"
    );
    let last = sent(&app, 1);
    // Each result is paired with its own call, in the model's order.
    let pair = |m: &Value| (m["tool_call_id"].clone(), m["content"].clone());
    assert_eq!(pair(&last[2]), (json!("c1"), json!("for c1")));
    assert_eq!(pair(&last[3]), (json!("c2"), json!("for c2")));
}

#[tokio::test]
async fn in_a_mixed_step_server_tools_run_and_only_client_calls_are_pending() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tools.url()).await;
    tools.script([Answer::ok("server says hi")]);
    app.stub.state.push([
        Reply::tool_calls(
            &[("c_server", "lookup", "{}"), ("c_client", "ask_user", "{}")],
            2,
        ),
        Reply::text("all answered", 2),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "mixed", "tools": [tool("ask_user")]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    let pending = paused["required_action"]["tool_calls"]
        .as_array()
        .expect("calls");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], "c_client");
    assert_eq!(
        tools.received().len(),
        1,
        "the server tool ran before the pause"
    );
    let (status, _) = submit_outputs(&app, &key, &session, &[("c_client", "user says hi")]).await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded");
    let last = sent(&app, 1);
    assert_eq!(roles(&last), ["user", "assistant", "tool", "tool"]);
    assert_eq!(last[2]["content"], "server says hi");
    assert_eq!(last[3]["content"], "user says hi");
    assert_eq!(
        tools.received().len(),
        1,
        "a committed server call is never made again"
    );
}

#[tokio::test]
async fn max_steps_max_total_tokens_and_the_action_timeout_end_a_run() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_REQUIRES_ACTION_TIMEOUT_SECS", "1")
            .env("STEWRD_LEASE_SECS", "2"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "again", &tools.url()).await;

    // A model that calls tools for ever stops at max_steps, keeping its last text.
    let mut forever = Reply::tool_calls(&[("c", "again", "{}")], 10);
    if let Some(body) = forever.body.as_mut() {
        body["choices"][0]["message"]["content"] = json!("still thinking");
    }
    app.stub.state.push((0..3).map(|_| forever.clone()));
    let accepted = app
        .submit(&key, json!({"message": "loop", "max_steps": 3}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "max_steps_exceeded");
    assert_eq!(done["output"], "still thinking");
    assert_eq!(app.stub.state.stats().calls, 3);

    // max_total_tokens is reserved: a call is made only if its worst case
    // (the prompt's bytes plus max_tokens) fits what is left, so the run
    // stops before it could pass the bound, never after.
    app.stub.state.push((0..8).map(|_| forever.clone()));
    let accepted = app
        .submit(
            &key,
            json!({"message": "tokens", "max_total_tokens": 1500, "max_tokens": 10}),
        )
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["error"]["code"], "max_total_tokens_exceeded", "{done}");
    let used = done["usage"]["total_tokens"].as_i64().expect("usage");
    assert!((10..=1500).contains(&used), "{done}");
    let calls = app.stub.state.stats().calls - 3;
    assert_eq!(i64::try_from(calls).unwrap_or(0) * 10, used, "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could use up to")),
        "{done}"
    );
    // A first call that cannot fit (no max_tokens: the model's output limit)
    // is never made.
    let before = app.stub.state.stats().calls;
    let accepted = app
        .submit(&key, json!({"message": "tokens", "max_total_tokens": 25}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["error"]["code"], "max_total_tokens_exceeded", "{done}");
    assert_eq!(app.stub.state.stats().calls, before);
    app.stub.state.clear();
    // Without max_tokens, a model whose output limit (16,384) would not fit
    // is asked for at most what is left, not refused.
    app.stub.state.push([Reply::text("short", 40)]);
    let accepted = app
        .submit(&key, json!({"message": "tokens", "max_total_tokens": 2000}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let asked = app.stub.state.requests().last().expect("a call").body["max_tokens"]
        .as_i64()
        .expect("max_tokens sent");
    assert!((1800..2000).contains(&asked), "{asked}");

    // Nobody answers the client's call: the run fails once the wait is over.
    app.stub
        .state
        .push([Reply::tool_calls(&[("c", "ask", "{}")], 2)]);
    let accepted = app
        .submit(&key, json!({"message": "wait", "tools": [tool("ask")]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["error"]["code"], "requires_action_expired", "{done}");
    let (status, _) = submit_outputs(&app, &key, &session, &[("c", "too late")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bad_agent_input_gets_400_naming_the_field() {
    let app = spawn_app().await;
    let (project, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tools.url()).await;
    let many: Vec<Value> = (0..65).map(|i| tool(&format!("t{i}"))).collect();
    let cases = [
        (
            json!({"message": "m", "tools": [tool("bad name")]}),
            "tools[0].function.name",
        ),
        (
            json!({"message": "m", "tools": [tool("a"), tool("a")]}),
            "tools[1].function.name",
        ),
        (
            json!({"message": "m", "tools": [tool("lookup")]}),
            "tools[0].function.name",
        ),
        (json!({"message": "m", "tools": many}), "tools"),
        (
            json!({"message": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}),
            "tools[0].function.parameters",
        ),
        (json!({"message": "m", "max_steps": 0}), "max_steps"),
        (json!({"message": "m", "max_steps": 101}), "max_steps"),
        (
            json!({"message": "m", "max_total_tokens": 0}),
            "max_total_tokens",
        ),
        (
            json!({"message": "m", "tool_choice": "always"}),
            "tool_choice",
        ),
        (
            json!({"message": "m", "tool_choice": {"type": "function", "function": {"name": "ghost"}}}),
            "tool_choice",
        ),
        (
            json!({"message": "m", "response_format": {"type": "yaml"}}),
            "response_format",
        ),
    ];
    for (body, param) in cases {
        let (status, error) = app
            .call(Method::POST, "/v1/agent", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["param"], param, "{body} -> {error}");
    }
    // Server tool definitions, through the project's and the operator's doors.
    let bad_tools = [
        (
            json!({"tools": [{"name": "x y", "url": tools.url()}]}),
            "tools[0].name",
        ),
        (
            json!({"tools": [{"name": "a", "url": "ftp://x"}]}),
            "tools[0].url",
        ),
        (
            json!({"tools": [{"name": "a", "url": tools.url(), "parameters": 3}]}),
            "tools[0].parameters",
        ),
        (
            json!({"tools": [{"name": "a", "url": tools.url(), "timeout_secs": 0}]}),
            "tools[0].timeout_secs",
        ),
    ];
    for (body, param) in bad_tools {
        let (status, error) = app
            .call(
                Method::PUT,
                "/v1/project/tools",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["param"], param, "{body} -> {error}");
        let (status, admin_error) = app
            .call(
                Method::PUT,
                &format!("/v1/admin/projects/{project}/tools"),
                Some(ADMIN_TOKEN),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(admin_error["error"]["message"], error["error"]["message"]);
    }
    // Tool outputs: for a session not waiting, of another project, malformed.
    let accepted = app.submit(&key, json!({"message": "plain"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &session).await;
    let (status, _) = submit_outputs(&app, &key, &session, &[("x", "y")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, other) = app.create_project("other").await;
    let (status, _) = submit_outputs(&app, &other, &session, &[("x", "y")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stub.state.push([Reply::tool_calls(
        &[("c1", "ask", "{}"), ("c2", "ask", "{}")],
        2,
    )]);
    let accepted = app
        .submit(&key, json!({"message": "ask", "tools": [tool("ask")]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    for outputs in [
        &[("c1", "a")][..],
        &[("c1", "a"), ("c2", "b"), ("c3", "c")][..],
        &[("c1", "a"), ("c1", "a"), ("c2", "b")][..],
    ] {
        let (status, error) = submit_outputs(&app, &key, &session, outputs).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{outputs:?}");
        assert_eq!(error["error"]["param"], "tool_outputs", "{error}");
    }
    let (status, error) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/tool_outputs"),
            Some(&key),
            Some(json!({"tool_outputs": [{"tool_call_id": "c1"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    // Nothing was taken: both calls still pend.
    let (_, still) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(still["status"], "requires_action");
    assert_eq!(
        still["required_action"]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn cancel_drops_an_in_flight_tool_call_and_model_call_and_ends_a_paused_run() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "slow", &tools.url()).await;

    // A server tool in flight: its connection is dropped, nothing is written after.
    tools.script([Answer::ok("too late").delayed(Duration::from_secs(30))]);
    app.stub
        .state
        .push([Reply::tool_calls(&[("c", "slow", "{}")], 2)]);
    let accepted = app.submit(&key, json!({"message": "slow tool"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    wait_for(PATIENCE, || async {
        (!tools.received().is_empty()).then_some(())
    })
    .await
    .expect("the tool was called");
    assert_eq!(app.cancel(&key, &session).await, StatusCode::OK);
    let dropped = wait_for(Duration::from_secs(5), || async {
        (tools.dropped() == 1).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the tool's connection was not dropped");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "cancelled");
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(
        listed.len(),
        1,
        "only the model's answer was committed: {listed:?}"
    );

    // The second model call in flight: dropped too.
    tools.script([Answer::ok("fast")]);
    app.stub.state.push([
        Reply::tool_calls(&[("c", "slow", "{}")], 2),
        Reply::text("never seen", 2).delayed(Duration::from_secs(30)),
    ]);
    let accepted = app.submit(&key, json!({"message": "slow model"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight == 1 && app.stub.state.stats().calls == 3).then_some(())
    })
    .await
    .expect("the second model call is in flight");
    assert_eq!(app.cancel(&key, &session).await, StatusCode::OK);
    let dropped = wait_for(Duration::from_secs(5), || async {
        (app.stub.state.stats().dropped == 1).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the model call was not dropped");
    assert_eq!(app.wait_final(&key, &session).await["status"], "cancelled");

    // A paused run: cancelled, and its outputs refused after.
    app.stub
        .state
        .push([Reply::tool_calls(&[("c", "ask", "{}")], 2)]);
    let accepted = app
        .submit(&key, json!({"message": "ask", "tools": [tool("ask")]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    assert_eq!(app.cancel(&key, &session).await, StatusCode::OK);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["required_action"], Value::Null);
    let (status, _) = submit_outputs(&app, &key, &session, &[("c", "x")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The session takes a new message, and its history leaves the cancelled run out.
    app.stub.state.push([Reply::text("fresh", 2)]);
    app.submit(&key, json!({"message": "again", "session_id": session}))
        .await;
    app.wait_final(&key, &session).await;
    let last = sent(&app, app.stub.state.requests().len() - 1);
    assert_eq!(roles(&last), ["user"]);
}

#[tokio::test]
async fn both_providers_get_tools_tool_choice_and_response_format_as_given() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let format =
        json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}});
    let choice = json!({"type": "function", "function": {"name": "get_weather"}});
    for provider in ["openai", "openrouter"] {
        let (status, _) = app
            .call(
                Method::PUT,
                "/v1/project/llm",
                Some(&key),
                Some(json!({"provider": provider, "model": "m", "api_key": "sk-provider-key-123"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        app.stub.state.push([Reply::text("{}", 2)]);
        let accepted = app
            .submit(
                &key,
                json!({"message": "m", "tools": [tool("get_weather")], "tool_choice": choice,
                       "response_format": format}),
            )
            .await;
        app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
            .await;
        let request = app.stub.state.requests().pop().expect("a call");
        let expected_path = if provider == "openai" {
            "/v1/chat/completions"
        } else {
            "/api/v1/chat/completions"
        };
        assert_eq!(request.path, expected_path);
        assert_eq!(request.body["tools"], json!([tool("get_weather")]));
        assert_eq!(request.body["tool_choice"], choice);
        assert_eq!(request.body["response_format"], format);
    }
}

#[tokio::test]
async fn tool_schemas_with_extreme_numbers_are_kept_as_written() {
    // jsonb would store 1.7976931348623157e308 as 309 digits that serde_json
    // then refuses: the project (and every call on it) would answer 503.
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    let parameters = json!({"type": "object", "properties": {"x": {"type": "number",
        "maximum": 1.797_693_134_862_315_7e308, "minimum": -1e-300,
        "multipleOf": 12_345_678_901_234_567_890_u64}}});
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/tools",
            Some(&key),
            Some(json!({"tools": [{"name": "lookup", "url": receiver.url(),
                                   "parameters": parameters}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/v1/project/tools", "/v1/project"] {
        let (status, body) = app.call(Method::GET, path, Some(&key), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, listed) = app
        .call(Method::GET, "/v1/project/tools", Some(&key), None)
        .await;
    assert_eq!(listed["tools"][0]["parameters"], parameters);
    let client = json!({"type": "function", "function": {"name": "ask", "parameters": parameters}});
    app.stub.state.push([Reply::text("fine", 2)]);
    let accepted = app
        .submit(&key, json!({"message": "m", "tools": [client]}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let offered = &app.stub.state.requests()[0].body["tools"];
    assert_eq!(offered[0]["function"]["parameters"], parameters);
    assert_eq!(offered[1]["function"]["parameters"], parameters);
}

#[tokio::test]
async fn the_dashboard_session_page_shows_the_calls_and_the_steps() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::tool_calls(&[("call_w", "get_weather", r#"{"city":"Oslo"}"#)], 4),
        Reply::text("Cold.", 4),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Weather?", "tools": [tool("get_weather")]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_w", "minus <b>4</b>")]).await;
    assert_eq!(status, StatusCode::OK);
    app.wait_final(&key, &session).await;
    let dashboard = Dashboard::sign_in(&app).await;
    let (status, page) = dashboard
        .get(&format!("/dashboard/sessions/{session}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<h2>Steps</h2>"), "{page}");
    assert!(
        page.contains("→ get_weather({&quot;city&quot;:&quot;Oslo&quot;})"),
        "the assistant's call is shown: {page}"
    );
    assert!(
        page.contains("tool · call_w"),
        "the tool result names its call"
    );
    assert!(
        page.contains("minus &lt;b&gt;4&lt;/b&gt;") && !page.contains("<b>4</b>"),
        "the output is shown, escaped"
    );
    assert!(page.contains(">tool_call<") && page.contains(">client<"));
}

#[tokio::test]
async fn a_tool_using_run_shows_no_provider_key_webhook_secret_or_api_key() {
    let app = spawn_app_with(
        Options::default()
            .env("RUST_LOG", "trace")
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "50ms"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let provider_key = "sk-toolleak-QwErTy/UiOp+ZxCvBnM";
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(json!({"provider": "openai", "model": "m", "api_key": provider_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let tools = Receiver::start().await;
    let hook = Receiver::start().await;
    let secret = server_tool(&app, &key, "lookup", &tools.url()).await;
    // A failing attempt, and a provider error quoting the key, on the way.
    tools.script([Answer::status(503), Answer::ok(r#"{"found": true}"#)]);
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("call_s", "lookup", r#"{"id":"7"}"#),
                ("call_c", "ask_user", "{}"),
            ],
            4,
        ),
        Reply::error(500, "server_error", &format!("upstream saw {provider_key}")),
        Reply::text("done", 2),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Order 7?", "tools": [tool("ask_user")], "webhook_url": hook.url()}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_c", "yes")]).await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    steps(&app, &key, &session, &run).await;
    wait_for(PATIENCE, || async {
        (hook.received().len() >= 2).then_some(())
    })
    .await
    .expect("the pause and the end announced");
    assert_eq!(
        tools.received().len(),
        2,
        "the server tool was retried once"
    );

    // Everything that left stewrd for a tool, a webhook or the provider
    // (but the provider's own Authorization header).
    let mut traffic = String::new();
    for received in tools.received().into_iter().chain(hook.received()) {
        traffic.push_str(&format!("{:?} {}\n", received.headers, received.body));
    }
    for request in app.stub.state.requests() {
        let headers: Vec<_> = request
            .headers
            .iter()
            .filter(|(name, _)| name.as_str() != "authorization")
            .collect();
        traffic.push_str(&format!("{headers:?} {} {}\n", request.path, request.body));
    }
    let responses = app.responses_text();
    let logs = app.all_logs();
    let database = database_text(&app).await;
    assert_no_piece_of(
        provider_key,
        &[
            ("a response", responses),
            ("the logs", logs.clone()),
            ("the database", database.clone()),
            ("what was sent", traffic.clone()),
        ],
    );
    // The webhook secret and the API key were shown once, when made: nowhere else.
    let secret_part = secret.strip_prefix("whsec_").expect("whsec_");
    let key_part = key.strip_prefix("sk-stw_").expect("sk-stw_");
    for hidden in [secret_part, key_part] {
        assert_no_piece_of(
            hidden,
            &[
                ("the logs", logs.clone()),
                ("the database", database.clone()),
                ("what was sent", traffic.clone()),
            ],
        );
    }
}

#[tokio::test]
async fn metrics_count_steps_by_type_and_outcome_and_the_runs_awaiting_outputs() {
    let app = spawn_app_with(
        Options::default()
            .worker_metrics()
            .env("STEWRD_BACKLOG_SAMPLE_SECS", "1"),
    )
    .await;
    let metrics = app.worker_metrics().await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tools.url()).await;
    app.stub.state.push([
        Reply::tool_calls(
            &[("call_s", "lookup", "{}"), ("call_c", "get_weather", "{}")],
            4,
        ),
        Reply::text("done", 2),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "m", "tools": [tool("get_weather")]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    let awaiting = |wanted: f64| {
        let (app, metrics) = (&app, &metrics);
        async move {
            wait_for(PATIENCE, || async {
                let body = text(app, metrics).await;
                (sample(&body, "stewrd_runs_awaiting_tool_outputs", &[]) == Some(wanted))
                    .then_some(body)
            })
            .await
            .unwrap_or_else(|| panic!("the gauge never showed {wanted}"))
        }
    };
    let paused = awaiting(1.0).await;
    assert_eq!(sample(&paused, "stewrd_runs_paused_total", &[]), Some(1.0));
    submit_outputs(&app, &key, &session, &[("call_c", "sunny")]).await;
    app.wait_final(&key, &session).await;
    let body = awaiting(0.0).await;
    let steps = |kind: &str, outcome: &str| {
        sample(
            &body,
            "stewrd_steps_total",
            &[
                &format!("type=\"{kind}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!(steps("model_call", "succeeded"), Some(2.0), "{body}");
    assert_eq!(
        steps("tool_call", "succeeded"),
        Some(1.0),
        "the server tool"
    );
    assert_eq!(steps("tool_call", "pending"), Some(1.0), "the client tool");
    let timed = |kind: &str| {
        sample(
            &body,
            "stewrd_step_duration_seconds_count",
            &[&format!("type=\"{kind}\"")],
        )
    };
    assert_eq!(timed("model_call"), Some(2.0));
    assert_eq!(timed("tool_call"), Some(1.0), "the server call's latency");
}

#[tokio::test]
async fn the_unscripted_stub_calls_the_first_tool_as_often_as_told_then_echoes() {
    // What `stewrd dev` and the README walk-through rely on (one round), and
    // what `stewrd bench agent` sets (several).
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    for rounds in [1, 2] {
        app.stub.state.set_tool_rounds(rounds);
        let accepted = app
            .submit(
                &key,
                json!({"message": "Weather?", "tools": [tool("get_weather"), tool("get_time")]}),
            )
            .await;
        let session = accepted["session_id"].as_str().expect("id").to_owned();
        for round in 1..=rounds {
            let paused = wait_status(&app, &key, &session, "requires_action").await;
            let calls = &paused["required_action"]["tool_calls"];
            assert_eq!(calls.as_array().map(Vec::len), Some(1), "{paused}");
            assert_eq!(calls[0]["function"]["name"], "get_weather");
            let id = calls[0]["id"].as_str().expect("id").to_owned();
            let (status, _) =
                submit_outputs(&app, &key, &session, &[(&id, &format!("sunny {round}"))]).await;
            assert_eq!(status, StatusCode::OK);
        }
        let done = app.wait_final(&key, &session).await;
        assert_eq!(done["output"], format!("Echo: sunny {rounds}"), "{done}");
    }
}

#[tokio::test]
async fn server_tool_urls_are_refused_on_private_addresses_when_set_and_when_called() {
    let app = spawn_app_with(Options::default().env("STEWRD_WEBHOOK_ALLOW_PRIVATE", "false")).await;
    let (project_id, key) = app.create_project("acme").await;
    let canary = Receiver::start().await;
    let port = canary.address.port();
    let forms = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://no-such-host.invalid/".to_owned(),
    ];
    for url in &forms {
        let body = json!({"tools": [{"name": "lookup", "url": url}]});
        for path in [
            "/v1/project/tools".to_owned(),
            format!("/v1/admin/projects/{project_id}/tools"),
        ] {
            let token = if path.starts_with("/v1/admin") {
                ADMIN_TOKEN
            } else {
                key.as_str()
            };
            let (status, error) = app
                .call(Method::PUT, &path, Some(token), Some(body.clone()))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {url}: {error}");
            assert_eq!(error["error"]["param"], "tools[0].url", "{error}");
        }
    }
    // At call time: a URL written straight into the database (as a DNS change
    // after the check would make it) is refused, at once and for good; the
    // model gets the refusal as the tool's output.
    let db = app.db().await;
    let tools = json!([{"name": "lookup", "url": format!("http://localhost:{port}/"),
                        "parameters": {"type": "object"}, "timeout_secs": 5}]);
    db.execute(
        "UPDATE projects SET server_tools = $1::text::json",
        &[&tools.to_string()],
    )
    .await
    .expect("update");
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "lookup", "{}")], 2),
        Reply::text("could not look it up", 2),
    ]);
    let accepted = app.submit(&key, json!({"message": "sneak"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["status"], "failed");
    assert_eq!(listed[1]["attempts"], 1, "a refusal is not retried");
    assert!(
        listed[1]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{}",
        listed[1]
    );
    assert!(canary.received().is_empty(), "the canary was reached");
}

#[tokio::test]
async fn tools_that_cannot_be_read_fail_the_run_instead_of_offering_none() {
    let mut app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let tool = json!({"type": "function", "function": {"name": "get_weather",
                      "parameters": {"type": "object"}}});
    let accepted = app
        .submit(&key, json!({"message": "weather?", "tools": [tool]}))
        .await;
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    // A stored value no worker can read (not one the API would ever write).
    app.db()
        .await
        .execute(
            "UPDATE runs SET tools = '{\"type\": \"function\"}' WHERE id::text = $1",
            &[&run],
        )
        .await
        .expect("corrupt the tools");
    app.add_worker();
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        app.stub.state.requests().is_empty(),
        "the model was never called without the run's tools"
    );
}
