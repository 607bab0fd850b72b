//! The session event log over SSE: every event numbered in order, resumed
//! exactly after any id, from any API process, within the retention; and
//! streamed answers (`stream: true`) as deltas that join to the stored text.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    agent::{submit_outputs, wait_status},
    helpers::{Options, PATIENCE, TestApp, spawn_app, spawn_app_with, wait_for},
    operator::{SseEvent, collect, stream_events},
    receiver::{Answer, Receiver},
};

/// Every event of the session after its first (`session.queued` of its first
/// run), through a fresh connection.
async fn replay(app: &TestApp, key: &str, session: &str) -> Vec<SseEvent> {
    collect(stream_events(app, key, session, Some("1000000000"))).await
}

fn names(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|(name, _, data)| match name.as_str() {
            "run.step" => format!(
                "run.step {} {}",
                data["step"]["index"], data["step"]["status"]
            ),
            _ => name.clone(),
        })
        .collect()
}

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}})
}

#[tokio::test]
async fn agent_runs_send_every_committed_step_in_order_and_resume_exactly() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/tools",
            Some(&key),
            Some(json!({"tools": [{"name": "lookup", "url": tools.url()}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tools.script([Answer::ok("found")]);
    app.stub.state.push([
        Reply::tool_calls(&[("call_s", "lookup", "{}"), ("call_c", "ask", "{}")], 2),
        Reply::text("done", 2),
    ]);
    let accepted = app
        .submit(&key, json!({"message": "go", "tools": [tool("ask")]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let live = stream_events(&app, &key, &session, None);
    wait_status(&app, &key, &session, "requires_action").await;
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_c", "yes")]).await;
    assert_eq!(status, StatusCode::OK);
    app.wait_final(&key, &session).await;

    let all = replay(&app, &key, &session).await;
    assert_eq!(
        names(&all),
        [
            "session.running",
            "run.step 0 \"succeeded\"",
            "run.step 1 \"succeeded\"",
            "run.step 2 \"succeeded\"",
            "session.requires_action",
            "run.step 2 \"succeeded\"",
            "session.queued",
            "session.running",
            "run.step 3 \"succeeded\"",
            "session.succeeded",
        ],
        "(a replayed step shows the step as it is now: the client's answer came)"
    );
    assert_eq!(all[1].2["step"]["type"], "model_call");
    assert_eq!(all[2].2["step"]["executor"], "server");
    assert_eq!(all[3].2["step"]["executor"], "client");
    assert_eq!(all[8].2["step"]["content"], "done");
    // The live stream (opened at the start) ends with the same events.
    let seen = tokio::time::timeout(PATIENCE, collect(live))
        .await
        .expect("the live stream ends");
    let tail = &all[all.len() - (seen.len() - 1)..];
    assert_eq!(
        seen[1..].iter().map(|e| &e.1).collect::<Vec<_>>(),
        tail.iter().map(|e| &e.1).collect::<Vec<_>>()
    );
    // From every id, exactly the events after it.
    for (i, event) in all.iter().enumerate() {
        let after = collect(stream_events(&app, &key, &session, Some(&event.1))).await;
        let ids: Vec<&String> = after.iter().map(|e| &e.1).collect();
        let expected: Vec<&String> = all[i + 1..].iter().map(|e| &e.1).collect();
        assert_eq!(ids, expected, "after {}", event.0);
    }
}

#[tokio::test]
async fn a_resume_works_through_another_api_process_and_says_410_past_the_retention() {
    let mut app = spawn_app_with(
        Options::default()
            .env("STEWRD_EVENT_RETENTION_SECS", "2")
            .env("STEWRD_BACKLOG_SAMPLE_SECS", "1"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "first"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &session).await;
    let first = replay(&app, &key, &session).await;
    assert_eq!(names(&first), ["session.running", "session.succeeded"]);
    // Another API process answers the same ids the same way.
    app.restart_api(&[]).await;
    let again = replay(&app, &key, &session).await;
    assert_eq!(
        again.iter().map(|e| &e.1).collect::<Vec<_>>(),
        first.iter().map(|e| &e.1).collect::<Vec<_>>()
    );
    // Past the retention the early events go: a resume from one of them is 410;
    // from the latest (kept, so numbering goes on) the stream just ends.
    let expired = wait_for(PATIENCE, || async {
        let response = app
            .http
            .get(format!("{}/v1/sessions/{session}/events", app.base))
            .bearer_auth(&key)
            .header("last-event-id", "1000000000")
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::GONE).then_some(response)
    })
    .await
    .expect("410 once the retention passed");
    let error: Value = expired.json().await.unwrap_or_default();
    assert_eq!(error["error"]["code"], "events_expired");
    let last = &first[first.len() - 1].1;
    assert!(
        collect(stream_events(&app, &key, &session, Some(last)))
            .await
            .is_empty()
    );
    // A new message continues the numbering after the kept event.
    let next = app
        .submit(&key, json!({"message": "second", "session_id": session}))
        .await;
    assert_eq!(next["status"], "queued");
    app.wait_final(&key, &session).await;
    let after = collect(stream_events(&app, &key, &session, Some(last))).await;
    assert_eq!(
        names(&after),
        ["session.queued", "session.running", "session.succeeded"]
    );
    let number = |id: &str| id.parse::<i64>().expect("numeric");
    assert!(number(&after[0].1) > number(last));
}
