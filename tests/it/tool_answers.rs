//! What a tool (or a provider) answers cannot make stewrd do a side effect
//! twice: answers Postgres cannot store, answers asking for more calls than a
//! worker should open, and answers asking for an unbounded wait.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    agent::{sent, server_tool, steps},
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    receiver::{Answer, Receiver},
};

/// Sets the project's server tools: `(name, url)`, 5 s timeout each.
async fn server_tools(app: &TestApp, key: &str, tools: &[(&str, &str)]) {
    let tools: Vec<Value> = tools
        .iter()
        .map(|(name, url)| {
            json!({"name": name, "parameters": {"type": "object"}, "url": url, "timeout_secs": 5})
        })
        .collect();
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/tools",
            Some(key),
            Some(json!({"tools": tools})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .call(Method::POST, "/v1/project/webhook/secret", Some(key), None)
        .await;
    assert!(status.is_success(), "{status}");
}

#[tokio::test]
async fn a_tool_answer_postgres_cannot_hold_is_stored_cleaned_and_the_tool_is_called_once() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
            .env("STEWRD_LEASE_SECS", "2"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let (text, binary) = (Receiver::start().await, Receiver::start().await);
    server_tools(&app, &key, &[("nul", &text.url()), ("gzip", &binary.url())]).await;
    // Said to be text, but holding what Postgres cannot: cleaned.
    text.script([Answer::bytes(b"ok \xff nul\x00 end").header("content-type", "text/plain")]);
    // A gzip stream: binary, NULs and all, kept as a file.
    binary.script([Answer::bytes(&[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x4b, 0x4c, 0x4a, 0x06, 0x00,
        0xc2, 0x41, 0x24, 0x35, 0x03, 0x00, 0x00, 0x00,
    ])
    .header("content-type", "application/gzip")]);
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "nul", "{}"), ("call_2", "gzip", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "go"})).await;
    let session = accepted["session_id"].as_str().expect("id");
    let done = app.wait_final(&key, session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Longer than a lease: a run whose commit failed would have been
    // claimed again by now, and its tools called again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(text.received().len(), 1, "the text tool is called once");
    assert_eq!(binary.received().len(), 1, "the binary tool is called once");
    assert_eq!(app.stub.state.requests().len(), 2, "two model calls");
    let messages = sent(&app, 1);
    assert_eq!(messages[2]["content"], "ok \u{FFFD} nul\u{FFFD} end");
    let kept: Value =
        serde_json::from_str(messages[3]["content"].as_str().unwrap_or_default()).expect("JSON");
    // What the bytes are (sniffed), not what the tool said.
    assert_eq!(kept["content_type"], "application/octet-stream", "{kept}");
    assert_eq!(kept["bytes"], 23, "{kept}");
}

#[tokio::test]
async fn a_step_postgres_refuses_fails_the_run_without_calling_anything_again() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
            .env("STEWRD_LEASE_SECS", "2"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tool.url()).await;
    // Two answers reporting two billion tokens each: their sum no longer fits
    // the run's count, and the second step's commit is refused.
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "lookup", "{}")], 2_000_000_000),
        Reply::tool_calls(&[("call_2", "lookup", "{}")], 2_000_000_000),
        Reply::text("never asked", 2),
    ]);
    let accepted = app.submit(&key, json!({"message": "go"})).await;
    let session = accepted["session_id"].as_str().expect("id");
    let done = app.wait_final(&key, session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "step_not_storable", "{done}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.stub.state.requests().len(),
        2,
        "each model call made once"
    );
    assert_eq!(tool.received().len(), 1, "the tool called once");
}

#[tokio::test]
async fn one_answer_makes_at_most_128_calls_and_a_run_at_most_16_at_once() {
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")).await;
    let (_, key) = app.create_project("acme").await;
    let (_, other_key) = app.create_project("neighbour").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tool.url()).await;
    tool.answer_by_default(Answer::ok("found").delayed(Duration::from_millis(200)));
    let calls: Vec<(String, &str, &str)> = (0..1500)
        .map(|i| (format!("call_{i}"), "lookup", "{}"))
        .collect();
    let calls: Vec<(&str, &str, &str)> =
        calls.iter().map(|(i, n, a)| (i.as_str(), *n, *a)).collect();
    app.stub
        .state
        .push([Reply::tool_calls(&calls, 10), Reply::text("done", 2)]);
    let accepted = app.submit(&key, json!({"message": "fan out"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    // While the calls run: the worker's descriptors stay few, and another
    // project's run goes through.
    let worker = app.workers[0].pid();
    let mut most_descriptors = 0;
    wait_for(PATIENCE, || {
        most_descriptors = most_descriptors.max(descriptors(worker));
        async { (!tool.received().is_empty()).then_some(()) }
    })
    .await
    .expect("the calls begin");
    let neighbour = app.submit(&other_key, json!({"message": "hello"})).await;
    let neighbour = app
        .wait_final(&other_key, neighbour["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(neighbour["status"], "succeeded", "{neighbour}");
    assert!(
        tool.received().len() < 128,
        "the neighbour finished while the fan-out was still running"
    );
    let done = loop {
        most_descriptors = most_descriptors.max(descriptors(worker));
        let (_, session) = app
            .call(
                Method::GET,
                &format!("/v1/sessions/{session}?wait=1"),
                Some(&key),
                None,
            )
            .await;
        if session["status"] != "queued" && session["status"] != "running" {
            break session;
        }
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(tool.received().len(), 128, "128 calls made, no more");
    assert!(
        tool.max_in_flight() <= 16,
        "{} calls at once",
        tool.max_in_flight()
    );
    assert!(
        most_descriptors < 120,
        "the worker held {most_descriptors} descriptors"
    );
    let listed = steps(&app, &key, &session, &run).await;
    let tool_steps: Vec<&Value> = listed.iter().filter(|s| s["type"] == "tool_call").collect();
    assert_eq!(tool_steps.len(), 1500, "every call is answered");
    let refused = tool_steps
        .iter()
        .filter(|s| {
            s["output"]
                .as_str()
                .unwrap_or_default()
                .contains("at most 128")
        })
        .count();
    assert_eq!(refused, 1500 - 128);
}

/// Open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[tokio::test]
async fn a_tools_retry_after_is_capped_by_its_time_budget_in_both_forms() {
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")).await;
    let (_, key) = app.create_project("acme").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tool.url()).await;
    for retry_after in ["999999", "Wed, 21 Oct 2099 07:28:00 GMT"] {
        tool.script([Answer::status(429).header("retry-after", retry_after)]);
        app.stub.state.push([
            Reply::tool_calls(&[("call_1", "lookup", "{}")], 2),
            Reply::text("gave up", 2),
        ]);
        let before = tool.received().len();
        let accepted = app.submit(&key, json!({"message": "go"})).await;
        let session = accepted["session_id"].as_str().expect("id");
        let done = app.wait_final(&key, session).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            tool.received().len(),
            before + 1,
            "{retry_after}: one attempt"
        );
        let requests = app.stub.state.requests();
        let messages = requests[requests.len() - 1].body["messages"].clone();
        let output = messages[2]["content"].as_str().unwrap_or_default();
        assert!(output.contains("time budget"), "{retry_after}: {output}");
    }
}

#[tokio::test]
async fn every_text_from_outside_is_stored_with_its_nul_replaced_and_acted_on_once() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
            .env("STEWRD_WEBHOOK_SCHEDULE", "30s")
            .env("STEWRD_LEASE_SECS", "2"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "lookup", &tool.url()).await;
    // A model's tool call: a name and arguments with NULs.
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("call_1", "lookup", "{\"q\":\"a\\u0000b\"}"),
                ("call_2", "look\u{0}up", "{}"),
            ],
            4,
        ),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "go"})).await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(tool.received().len(), 1);
    // A provider's error with a NUL in its words: the run fails once.
    let calls = app.stub.state.requests().len();
    app.stub.state.push([Reply::error(
        400,
        "invalid_request_error",
        "bad\u{0}request",
    )]);
    let hook = Receiver::start().await;
    hook.answer_by_default(Answer {
        status: 500,
        raw: Some(b"down\x00 for\xff maintenance".to_vec()),
        ..Answer::default()
    });
    let accepted = app
        .submit(&key, json!({"message": "fail", "webhook_url": hook.url()}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let failed = app.wait_final(&key, &session).await;
    assert_eq!(failed["error"]["code"], "provider_bad_request", "{failed}");
    assert_eq!(failed["error"]["message"], "bad\u{FFFD}request", "{failed}");
    // A webhook receiver's answer with a NUL: its attempt is recorded, and
    // the event waits for its schedule instead of being sent again at once.
    let attempts = wait_for(PATIENCE, || async {
        let (_, log) = app
            .call(
                Method::GET,
                &format!("/v1/sessions/{session}/deliveries"),
                Some(&key),
                None,
            )
            .await;
        log["data"].as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await
    .expect("the attempt is recorded");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("down\u{FFFD} for\u{FFFD} maintenance"),
        "{attempts:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "the webhook is not sent again at once"
    );
    assert_eq!(
        app.stub.state.requests().len(),
        calls + 1,
        "the provider is called once"
    );
    // What the API takes from clients refuses a NUL with a 400.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "x", "metadata": {"k": "a\u{0}b"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
