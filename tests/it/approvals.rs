//! Approvals: a call of a tool that requires one waits for a person's yes,
//! pinned to the arguments it quotes, decided once, never orphaned.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stewrd::stub::Reply;

use crate::{
    agent::{sent, steps, submit_outputs, tool, wait_status},
    doors::Dashboard,
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    mcp::{McpFixture, connect},
    operator::stream_events,
    receiver::{Answer, Receiver},
};

const TRANSFER_ARGS: &str = r#"{"to": "bob", "amount": 5}"#;

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Two server tools: `transfer` requires approval, `lookup` does not.
async fn tools(app: &TestApp, key: &str, transfer: &Receiver, lookup: &Receiver) {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/tools",
            Some(key),
            Some(json!({"tools": [
                {"name": "transfer", "url": transfer.url(), "require_approval": "always",
                 "timeout_secs": 60},
                {"name": "lookup", "url": lookup.url()}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tools"][0]["require_approval"], "always");
    assert_eq!(body["tools"][1]["require_approval"], "never");
}

async fn decide(app: &TestApp, key: &str, session: &str, decisions: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/v1/sessions/{session}/approvals"),
        Some(key),
        Some(json!({ "decisions": decisions })),
    )
    .await
}

/// The decision approving `c1` with `TRANSFER_ARGS`.
fn approve_c1() -> Value {
    json!([{"tool_call_id": "c1", "approve": true, "arguments_sha256": sha256(TRANSFER_ARGS)}])
}

fn options() -> Options {
    Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
}

/// Submits a run whose first answer calls `transfer` and `lookup`.
async fn transfer_run(app: &TestApp, key: &str, extra: Value) -> (String, String) {
    app.stub.state.push([
        Reply::tool_calls(
            &[("c1", "transfer", TRANSFER_ARGS), ("c2", "lookup", "{}")],
            4,
        ),
        Reply::text("done", 4),
    ]);
    let mut body = json!({"message": "pay bob"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let accepted = app.submit(key, body).await;
    (
        accepted["session_id"].as_str().expect("id").to_owned(),
        accepted["run_id"].as_str().expect("run").to_owned(),
    )
}

#[tokio::test]
async fn a_call_waits_for_approval_and_runs_once_with_the_arguments_approved() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup, hook) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    tools(&app, &key, &transfer, &lookup).await;
    transfer.answer_by_default(Answer::ok("sent"));
    lookup.answer_by_default(Answer::ok("found"));
    let (session, run) = transfer_run(&app, &key, json!({"webhook_url": hook.url()})).await;
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    let action = &paused["required_action"];
    assert_eq!(action["type"], "approve_tool_calls", "{action}");
    assert_eq!(action["run_id"], run.as_str());
    assert!(action["expires_at"].is_string());
    assert_eq!(
        action["tool_calls"],
        json!([{"id": "c1", "name": "transfer", "executor": "server",
                "arguments": TRANSFER_ARGS, "arguments_sha256": sha256(TRANSFER_ARGS)}])
    );
    // The webhook and the event stream carry it.
    let announced = wait_for(PATIENCE, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json()["type"] == "session.requires_action")
    })
    .await
    .expect("a session.requires_action webhook");
    assert_eq!(
        announced.json()["data"]["required_action"]["type"],
        "approve_tool_calls"
    );
    let (event, _, data) =
        tokio::time::timeout(PATIENCE, stream_events(&app, &key, &session, None).recv())
            .await
            .expect("an event in time")
            .expect("an event");
    assert_eq!(event, "session.requires_action");
    assert_eq!(data["required_action"]["tool_calls"][0]["id"], "c1");
    // Nothing of that step was made, not even the call needing no approval.
    assert!(transfer.received().is_empty());
    assert!(lookup.received().is_empty());
    // Arguments other than the call's: stale. A call not pending: named.
    let (status, error) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c1", "approve": true, "arguments_sha256": sha256("{}")}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "approval_stale");
    let (status, error) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c2", "approve": false}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["param"], "decisions");
    let (status, error) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c1", "approve": true}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["param"], "decisions[0].arguments_sha256");
    // Client tool outputs are not what it waits for.
    let (status, error) = submit_outputs(&app, &key, &session, &[("c1", "x")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(transfer.received().is_empty());
    let (status, body) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c1", "approve": true, "arguments_sha256": sha256(TRANSFER_ARGS),
                "reason": "bob is known"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Made once, with the arguments approved and the call's key.
    let received = transfer.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].json()["data"]["arguments"],
        json!({"to": "bob", "amount": 5})
    );
    assert_eq!(received[0].header("idempotency-key"), format!("{run}:c1"));
    assert_eq!(lookup.received().len(), 1);
    // A second decision finds nothing waiting.
    let (status, error) = decide(&app, &key, &session, approve_c1()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "session_not_waiting");
    assert_eq!(transfer.received().len(), 1);
    // The model got both results, in its order; the step keeps the decision.
    let second = sent(&app, 1);
    assert_eq!(
        (&second[2]["tool_call_id"], &second[2]["content"]),
        (&json!("c1"), &json!("sent"))
    );
    assert_eq!(second[3]["content"], "found");
    let listed = steps(&app, &key, &session, &run).await;
    let step = listed
        .iter()
        .find(|s| s["tool_call_id"] == "c1")
        .expect("c1's step");
    assert_eq!(step["status"], "succeeded");
    assert_eq!(step["output"], "sent");
    assert_eq!(step["approval"]["decision"], "approved");
    assert_eq!(step["approval"]["reason"], "bob is known");
    assert!(
        step["approval"]["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("api_key:")),
        "{step}"
    );
    assert!(step["approval"]["decided_at"].is_string());
    let indexes: Vec<i64> = listed.iter().filter_map(|s| s["index"].as_i64()).collect();
    assert_eq!(indexes, [0, 1, 2, 3], "one step per call, in order");
    // The event log tells the wait, then the call's result once it is made.
    let events = crate::streaming::replay(&app, &key, &session).await;
    assert_eq!(
        crate::streaming::names(&events),
        [
            "session.running",
            "run.step 0 \"succeeded\"",
            "run.step 1 \"succeeded\"",
            "session.requires_action",
            "session.queued",
            "session.running",
            "run.step 1 \"succeeded\"",
            "run.step 2 \"succeeded\"",
            "run.step 3 \"succeeded\"",
            "session.succeeded",
        ],
        "(a replayed step shows the step as it is now)"
    );
}

#[tokio::test]
async fn a_denied_call_gives_the_model_the_reason_and_every_call_is_decided_at_once() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    lookup.answer_by_default(Answer::ok("found"));
    app.stub.state.push([
        Reply::tool_calls(
            &[
                ("c1", "transfer", TRANSFER_ARGS),
                ("c2", "lookup", "{}"),
                ("c3", "transfer", r#"{"to": "eve"}"#),
            ],
            4,
        ),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "pay"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    assert_eq!(
        paused["required_action"]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (status, error) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c1", "approve": false}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("c3") && m.contains("missing")),
        "{error}"
    );
    let (status, body) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c3", "approve": false, "reason": "eve is not a payee"},
               {"tool_call_id": "c1", "approve": false}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        transfer.received().is_empty(),
        "a denied call is never made"
    );
    assert_eq!(lookup.received().len(), 1, "the held call is made after");
    let second = sent(&app, 1);
    let output = |id: &str| {
        second
            .iter()
            .find(|m| m["tool_call_id"] == id)
            .map(|m| m["content"].clone())
            .unwrap_or_default()
    };
    assert_eq!(output("c3"), r#"{"error":"denied: eve is not a payee"}"#);
    assert_eq!(output("c1"), r#"{"error":"denied: no reason given"}"#);
    assert_eq!(output("c2"), "found");
    let listed = steps(&app, &key, &session, &run).await;
    let denied = listed
        .iter()
        .find(|s| s["tool_call_id"] == "c3")
        .expect("c3's step");
    assert_eq!(denied["status"], "failed");
    assert_eq!(denied["approval"]["decision"], "denied");
    assert_eq!(denied["approval"]["reason"], "eve is not a payee");
}

#[tokio::test]
async fn approvals_come_before_the_clients_tools_on_the_same_wait() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    transfer.answer_by_default(Answer::ok("sent"));
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "transfer", TRANSFER_ARGS), ("c2", "ask", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app
        .submit(&key, json!({"message": "pay", "tools": [tool("ask")]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let first = wait_status(&app, &key, &session, "requires_action").await;
    assert_eq!(first["required_action"]["type"], "approve_tool_calls");
    let (status, body) = decide(&app, &key, &session, approve_c1()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = wait_for(PATIENCE, || async {
        let (_, body) = app
            .call(
                Method::GET,
                &format!("/v1/sessions/{session}?wait=5"),
                Some(&key),
                None,
            )
            .await;
        (body["required_action"]["type"] == "submit_tool_outputs").then_some(body)
    })
    .await
    .expect("then the client's tool is asked for");
    assert_eq!(second["required_action"]["tool_calls"][0]["id"], "c2");
    assert_eq!(transfer.received().len(), 1, "the approved call was made");
    let (status, body) = submit_outputs(&app, &key, &session, &[("c2", "yes")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(transfer.received().len(), 1);
}

#[tokio::test]
async fn five_identical_approvals_at_once_make_one_call() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    transfer.answer_by_default(Answer::ok("sent"));
    lookup.answer_by_default(Answer::ok("found"));
    let (session, _) = transfer_run(&app, &key, json!({})).await;
    wait_status(&app, &key, &session, "requires_action").await;
    let decisions = approve_c1();
    let answers = futures_util::future::join_all(
        (0..5).map(|_| decide(&app, &key, &session, decisions.clone())),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409, 409], "{answers:?}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(transfer.received().len(), 1);
}

#[tokio::test]
async fn a_worker_killed_after_the_decision_makes_the_approved_call_with_the_same_key() {
    let mut app = spawn_app_with(options().env("STEWRD_LEASE_SECS", "2")).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    // The first attempt hangs until the worker dies; the next answers.
    transfer.script([Answer::ok("slow").delayed(Duration::from_secs(60))]);
    transfer.answer_by_default(Answer::ok("sent"));
    lookup.answer_by_default(Answer::ok("found"));
    let (session, run) = transfer_run(&app, &key, json!({})).await;
    wait_status(&app, &key, &session, "requires_action").await;
    // A crash while paused changes nothing: the pause is a row.
    app.kill_and_replace_worker(0);
    let (status, body) = decide(&app, &key, &session, approve_c1()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for(PATIENCE, || async {
        (!transfer.received().is_empty()).then_some(())
    })
    .await
    .expect("the approved call is made");
    app.kill_and_replace_worker(0);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let received = transfer.received();
    assert_eq!(received.len(), 2, "once cut off, once answered");
    for call in &received {
        assert_eq!(call.header("idempotency-key"), format!("{run}:c1"));
        assert_eq!(
            call.json()["data"]["arguments"],
            json!({"to": "bob", "amount": 5})
        );
    }
    let listed = steps(&app, &key, &session, &run).await;
    let step = listed
        .iter()
        .find(|s| s["tool_call_id"] == "c1")
        .expect("c1's step");
    assert_eq!(
        (&step["status"], &step["output"]),
        (&json!("succeeded"), &json!("sent"))
    );
    assert_eq!(step["approval"]["decision"], "approved");
    assert_eq!(app.stub.state.stats().calls, 2, "no model call made again");
}

#[tokio::test]
async fn no_approval_outlives_its_run() {
    let app = spawn_app_with(options().env("STEWRD_REQUIRES_ACTION_TIMEOUT_SECS", "2")).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    // Cancelled while waiting: a later decision is refused.
    app.stub
        .state
        .push([Reply::tool_calls(&[("c1", "transfer", TRANSFER_ARGS)], 4)]);
    let accepted = app.submit(&key, json!({"message": "pay"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    wait_status(&app, &key, &session, "requires_action").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = decide(&app, &key, &session, approve_c1()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "session_not_waiting");
    // Unanswered: the run fails when the wait is over.
    let (session, _) = transfer_run(&app, &key, json!({})).await;
    wait_status(&app, &key, &session, "requires_action").await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "requires_action_expired");
    let (status, error) = decide(&app, &key, &session, approve_c1()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "session_not_waiting");
    assert!(transfer.received().is_empty());
    assert!(lookup.received().is_empty());
}

#[tokio::test]
async fn an_mcp_server_that_requires_approval_waits_for_it() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let server = McpFixture::start(&[]).await;
    connect(
        &app,
        &key,
        json!([{"name": "docs", "url": server.url(), "require_approval": "always"}]),
    )
    .await;
    let arguments = r#"{"text": "approved note"}"#;
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "docs__add_note", arguments)], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "note"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    let call = &paused["required_action"]["tool_calls"][0];
    assert_eq!(call["executor"], "mcp", "{paused}");
    assert!(server.messages("tools/call").await.is_empty());
    let (status, body) = decide(
        &app,
        &key,
        &session,
        json!([{"tool_call_id": "c1", "approve": true, "arguments_sha256": call["arguments_sha256"]}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(server.notes().await, [json!("approved note")]);
}

#[tokio::test]
async fn the_operator_approves_from_the_dashboard() {
    let app = spawn_app_with(options()).await;
    let (_, key) = app.create_project("acme").await;
    let (transfer, lookup) = (Receiver::start().await, Receiver::start().await);
    tools(&app, &key, &transfer, &lookup).await;
    transfer.answer_by_default(Answer::ok("sent"));
    lookup.answer_by_default(Answer::ok("found"));
    let (session, run) = transfer_run(&app, &key, json!({})).await;
    wait_status(&app, &key, &session, "requires_action").await;
    let dashboard = Dashboard::sign_in(&app).await;
    let (status, page) = dashboard
        .get(&format!("/dashboard/sessions/{session}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Waiting for approval"), "{page}");
    assert!(
        page.contains(r#"<td class="mono">transfer</td><td>server</td>"#),
        "{page}"
    );
    assert!(page.contains(&sha256(TRANSFER_ARGS)));
    let path = format!("/dashboard/sessions/{session}/approvals");
    let fields = [
        ("call.0", "c1"),
        ("sha256.0", &sha256(TRANSFER_ARGS)[..]),
        ("decision", "approve"),
    ];
    // Without the form's token: refused.
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("call.0=c1&decision=approve")
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        forged.status(),
        StatusCode::SEE_OTHER,
        "to the sign-in page"
    );
    assert!(transfer.received().is_empty());
    let (status, _) = dashboard.post(&path, &fields).await;
    assert_eq!(status, StatusCode::OK, "back on the session page");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(transfer.received().len(), 1);
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["approval"]["by"], "operator");
    let (_, page) = dashboard
        .get(&format!("/dashboard/sessions/{session}"))
        .await;
    assert!(page.contains("approved by operator"), "{page}");
    assert!(!page.contains("Waiting for approval"));
}
