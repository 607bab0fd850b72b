//! The session event log over SSE: every event numbered in order, resumed
//! exactly after any id, from any API process, within the retention; and
//! streamed answers (`stream: true`) as deltas that join to the stored text.

use std::{collections::BTreeMap, time::Duration};

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
pub(crate) async fn replay(app: &TestApp, key: &str, session: &str) -> Vec<SseEvent> {
    collect(stream_events(app, key, session, Some("1000000000"))).await
}

pub(crate) fn names(events: &[SseEvent]) -> Vec<String> {
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

/// The retention sweep chooses its batch (5,000 rows) among the events that may
/// go. Every old session keeps its latest event for ever; a batch chosen among
/// all old events and filtered after was, once 5,000 such sessions existed,
/// made of kept events only, and the sweep never dropped anything again.
#[tokio::test]
async fn the_retention_sweep_goes_on_past_a_batch_of_kept_events() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "old"})).await;
    let session = accepted["session_id"].as_str().expect("id");
    app.wait_final(&key, session).await;
    let run_id: uuid::Uuid = accepted["run_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let db = app.db().await;
    db.execute(
        "UPDATE runs SET finished_at = now() - interval '2 hours' WHERE id = $1",
        &[&run_id],
    )
    .await
    .expect("finished long ago");
    // More old sessions than a batch, each with only its latest event; then,
    // stored after them, an old session with an event that may go.
    db.execute(
        "INSERT INTO session_events (session_id, seq, run_id, type, created_at)
         SELECT gen_random_uuid(), 1, $1, 'session.succeeded', now() - interval '2 hours'
         FROM generate_series(1, 5001)",
        &[&run_id],
    )
    .await
    .expect("kept events");
    let later = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO session_events (session_id, seq, run_id, type, created_at)
         VALUES ($1, 1, $2, 'session.running', now() - interval '2 hours'),
                ($1, 2, $2, 'session.succeeded', now() - interval '2 hours')",
        &[&later, &run_id],
    )
    .await
    .expect("events of the later session");
    let pool = app.pool().get().await.expect("a connection");
    let dropped = stewrd_shared::db::event_log::purge(&pool, Duration::from_secs(3600))
        .await
        .expect("the sweep");
    assert_eq!(dropped, 1, "the later session's first event goes");
    let left: Vec<i64> = db
        .query(
            "SELECT seq FROM session_events WHERE session_id = $1 ORDER BY seq",
            &[&later],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, [2], "its latest event stays");
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

/// What a client applying the events ends with: each step's text (by run and
/// step), joined from its deltas and dropped at a `run.reset`.
fn texts(events: &[SseEvent]) -> BTreeMap<(String, i64), String> {
    let mut texts: BTreeMap<(String, i64), String> = BTreeMap::new();
    for (name, _, data) in events {
        let key = || {
            (
                data["run_id"].as_str().unwrap_or_default().to_owned(),
                data["step"].as_i64().unwrap_or(-1),
            )
        };
        match name.as_str() {
            "run.delta" => texts
                .entry(key())
                .or_default()
                .push_str(data["text"].as_str().unwrap_or_default()),
            "run.reset" => {
                texts.remove(&key());
            }
            _ => {}
        }
    }
    texts
}

/// The one step's text of a single-step run.
fn joined(events: &[SseEvent]) -> String {
    texts(events).into_values().collect()
}

fn deltas(events: &[SseEvent]) -> usize {
    events.iter().filter(|e| e.0 == "run.delta").count()
}

const LONG: &str = "one two three four five six seven eight nine ten eleven twelve \
                    thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";

async fn set_provider(app: &TestApp, key: &str, provider: &str) {
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(key),
            Some(json!({"provider": provider, "model": "m", "api_key": "sk-stream-test-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn streamed_answers_arrive_as_deltas_that_join_to_the_stored_output() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(20));
    for provider in ["openai", "openrouter"] {
        set_provider(&app, &key, provider).await;
        let accepted = app
            .submit(&key, json!({"message": LONG, "stream": true}))
            .await;
        let session = accepted["session_id"].as_str().expect("id").to_owned();
        let live = stream_events(&app, &key, &session, None);
        let seen = tokio::time::timeout(PATIENCE, collect(live))
            .await
            .expect("the stream ends");
        let done = app.wait_final(&key, &session).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let output = done["output"].as_str().expect("output").to_owned();
        assert_eq!(output, format!("Echo: {LONG}"));
        assert_eq!(joined(&seen), output, "{provider}: {seen:?}");
        assert!(deltas(&seen) > 5, "{provider}: streamed in pieces");
        assert!(
            done["usage"]["total_tokens"].as_i64() > Some(0),
            "usage kept"
        );
        let ids: Vec<i64> = seen.iter().map(|e| e.1.parse().unwrap_or(0)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(seen.last().map(|e| e.0.as_str()), Some("session.succeeded"));
        let request = app.stub.state.requests().pop().expect("a call");
        assert_eq!(request.body["stream"], true);
        assert_eq!(
            request.body["stream_options"]["include_usage"], true,
            "{provider}: usage is asked of every provider"
        );
    }
    // Without `stream`, no delta: the same run, one answer.
    let plain = app.submit(&key, json!({"message": LONG})).await;
    let session = plain["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &session).await;
    let all = replay(&app, &key, &session).await;
    assert_eq!(names(&all), ["session.running", "session.succeeded"]);
    assert_ne!(
        app.stub.state.requests().pop().expect("a call").body["stream"],
        true
    );
}

#[tokio::test]
async fn a_resume_from_any_delta_gives_exactly_the_rest_through_another_api_process() {
    let mut app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(10));
    let accepted = app
        .submit(&key, json!({"message": LONG, "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let seen = tokio::time::timeout(PATIENCE, collect(stream_events(&app, &key, &session, None)))
        .await
        .expect("the stream ends");
    let output = app.wait_final(&key, &session).await["output"]
        .as_str()
        .expect("output")
        .to_owned();
    app.restart_api(&[]).await;
    for (i, event) in seen.iter().enumerate() {
        let rest = collect(stream_events(&app, &key, &session, Some(&event.1))).await;
        // Text: what came up to here, then the rest, is the whole answer
        // (replayed text may come in other pieces).
        assert_eq!(
            format!("{}{}", joined(&seen[..=i]), joined(&rest)),
            output,
            "after {} {}",
            event.0,
            event.1
        );
        // Everything else: exactly the events that followed.
        let others = |events: &[SseEvent]| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.0 != "run.delta")
                .map(|e| e.1.clone())
                .collect()
        };
        assert_eq!(others(&rest), others(&seen[i + 1..]), "after {}", event.1);
        let numbers: Vec<i64> = rest.iter().map(|e| e.1.parse().unwrap_or(0)).collect();
        assert!(
            numbers
                .iter()
                .all(|n| *n > event.1.parse::<i64>().unwrap_or(0))
        );
    }
}

#[tokio::test]
async fn a_late_joiner_gets_the_state_then_the_text_so_far_then_the_live_tail() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(60));
    let accepted = app
        .submit(&key, json!({"message": LONG, "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let mut first = stream_events(&app, &key, &session, None);
    let mut early = Vec::new();
    while deltas(&early) < 6 {
        let event = tokio::time::timeout(PATIENCE, first.recv())
            .await
            .expect("an event")
            .expect("open");
        early.push(event);
    }
    // Mid-answer, a second client with no Last-Event-ID, and a third resuming
    // after the first client's last delta while the run is still streaming.
    let resumed = stream_events(&app, &key, &session, Some(&early[early.len() - 1].1));
    let late = tokio::time::timeout(PATIENCE, collect(stream_events(&app, &key, &session, None)))
        .await
        .expect("the late stream ends");
    let resumed = tokio::time::timeout(PATIENCE, collect(resumed))
        .await
        .expect("the resumed stream ends");
    assert_eq!(late[0].0, "session.running", "the current state first");
    assert_eq!(late[1].0, "run.delta", "then the text so far");
    assert!(
        late[1].2["text"].as_str().unwrap_or_default().len() > 1,
        "{:?}",
        late[1]
    );
    let output = app.wait_final(&key, &session).await["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert_eq!(joined(&late), output);
    assert!(deltas(&late) > 2, "then live deltas");
    assert_eq!(format!("{}{}", joined(&early), joined(&resumed)), output);
    assert!(
        !resumed.iter().any(|e| e.0 == "session.running"),
        "nothing twice"
    );
}

#[tokio::test]
async fn a_retried_stream_sends_run_reset_and_a_client_applying_it_ends_exact() {
    let app = spawn_app_with(Options::default().env("STEWRD_RETRY_BASE_MS", "50")).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::streamed(
            &["The ", "first ", "try ", "dies"],
            Duration::from_millis(20),
            4,
        )
        .failing_after(3),
        Reply::streamed(&["A ", "whole ", "answer."], Duration::from_millis(20), 4),
    ]);
    let accepted = app
        .submit(&key, json!({"message": "x", "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let seen = tokio::time::timeout(PATIENCE, collect(stream_events(&app, &key, &session, None)))
        .await
        .expect("the stream ends");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["output"], "A whole answer.");
    let reset = seen
        .iter()
        .position(|e| e.0 == "run.reset")
        .expect("a run.reset");
    assert_eq!(seen[reset].2["step"], 0);
    assert!(
        deltas(&seen[..reset]) > 0 && deltas(&seen[reset..]) > 0,
        "deltas before and after the reset: {seen:?}"
    );
    assert_eq!(joined(&seen), "A whole answer.");
    // Replayed from the start, the same.
    assert_eq!(
        joined(&replay(&app, &key, &session).await),
        "A whole answer."
    );
}

#[tokio::test]
async fn cancel_mid_stream_drops_the_call_ends_the_stream_and_keeps_the_partial_text() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(100));
    let accepted = app
        .submit(&key, json!({"message": LONG, "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let mut live = stream_events(&app, &key, &session, None);
    let mut seen = Vec::new();
    while deltas(&seen) < 3 {
        seen.push(
            tokio::time::timeout(PATIENCE, live.recv())
                .await
                .expect("an event")
                .expect("open"),
        );
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for(Duration::from_secs(1), || async {
        (app.stub.state.stats().dropped == 1).then_some(())
    })
    .await
    .expect("the provider connection is dropped");
    seen.extend(
        tokio::time::timeout(PATIENCE, collect(live))
            .await
            .expect("the stream ends"),
    );
    assert_eq!(seen.last().map(|e| e.0.as_str()), Some("session.cancelled"));
    let partial = joined(&seen);
    let whole = format!("Echo: {LONG}");
    assert!(!partial.is_empty() && whole.starts_with(&partial) && partial != whole);
    // The text written before the cancel stays: a replay ends with it too.
    let replayed = wait_for(PATIENCE, || async {
        let text = joined(&replay(&app, &key, &session).await);
        (text.len() >= partial.len()).then_some(text)
    })
    .await
    .expect("the partial text replays");
    assert!(whole.starts_with(&replayed));
}

#[tokio::test]
async fn a_worker_killed_mid_stream_resets_the_step_and_the_retry_streams_it_whole() {
    let mut app = spawn_app_with(Options {
        workers: 1,
        ..Options::default()
            .env("STEWRD_LEASE_SECS", "2")
            .env("STEWRD_MAX_ATTEMPTS", "50")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(100));
    let accepted = app
        .submit(&key, json!({"message": LONG, "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let mut live = stream_events(&app, &key, &session, None);
    let mut seen = Vec::new();
    while deltas(&seen) < 4 {
        seen.push(
            tokio::time::timeout(PATIENCE, live.recv())
                .await
                .expect("an event")
                .expect("open"),
        );
    }
    app.stub.state.set_streaming(0, Duration::from_millis(5));
    app.kill_and_replace_worker(0);
    seen.extend(
        tokio::time::timeout(PATIENCE, collect(live))
            .await
            .expect("the stream ends"),
    );
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let reset = seen
        .iter()
        .position(|e| e.0 == "run.reset")
        .unwrap_or_else(|| panic!("a run.reset: {:?}", names(&seen)));
    assert!(deltas(&seen[reset..]) > 0, "new deltas after the reset");
    assert_eq!(joined(&seen), done["output"].as_str().unwrap_or_default());
    assert_eq!(
        app.stub.state.stats().calls,
        2,
        "the killed call, and its retry"
    );
}

#[tokio::test]
async fn a_streamed_agent_run_streams_each_model_call_and_sends_every_step() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "ask", r#"{"city": "Oslo", "days": 3}"#)], 4),
        Reply::streamed(&["Cold ", "in ", "Oslo."], Duration::from_millis(10), 4),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Weather?", "stream": true, "tools": [tool("ask")]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let paused = wait_status(&app, &key, &session, "requires_action").await;
    // The call's arguments, streamed in pieces, arrive whole.
    assert_eq!(
        paused["required_action"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city": "Oslo", "days": 3}"#
    );
    let (status, _) = submit_outputs(&app, &key, &session, &[("call_1", "-4")]).await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["output"], "Cold in Oslo.");
    let all = replay(&app, &key, &session).await;
    let steps: Vec<i64> = all
        .iter()
        .filter(|e| e.0 == "run.step")
        .map(|e| e.2["step"]["index"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(steps, [0, 1, 1, 2], "each step, and the client's result");
    let by_step = texts(&all);
    assert_eq!(
        by_step.get(&(run.clone(), 2)).map(String::as_str),
        Some("Cold in Oslo."),
        "{by_step:?}"
    );
    assert!(
        by_step.get(&(run, 0)).is_none_or(String::is_empty),
        "the tool-calling answer has no text"
    );
}

#[tokio::test]
async fn a_stream_that_ends_without_usage_is_counted_from_its_text() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    set_provider(&app, &key, "openrouter").await;
    let mut reply = Reply::streamed(&["Hello ", "wörld"], Duration::ZERO, 4);
    if let Some(body) = reply.body.as_mut().and_then(Value::as_object_mut) {
        body.remove("usage");
    }
    app.stub.state.push([reply]);
    let accepted = app
        .submit(&key, json!({"message": "hi", "stream": true}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // "Hello wörld" is 12 bytes: 3 tokens at 4 bytes a token.
    assert_eq!(done["usage"]["completion_tokens"], 3, "{done}");
    assert!(done["usage"]["prompt_tokens"].as_i64() > Some(0), "{done}");
    let request = app.stub.state.requests().pop().expect("a call");
    assert_eq!(request.body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_forged_last_event_id_inside_a_character_resumes_at_that_character() {
    use stewrd_shared::db::event_log::{event_id, parse_event_id};
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_streaming(0, Duration::from_millis(5));
    let accepted = app
        .submit(&key, json!({"message": "été à Noël", "stream": true}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let seen = tokio::time::timeout(PATIENCE, collect(stream_events(&app, &key, &session, None)))
        .await
        .expect("the stream ends");
    let output = app.wait_final(&key, &session).await["output"]
        .as_str()
        .expect("output")
        .to_owned();
    let delta = seen.iter().find(|e| e.0 == "run.delta").expect("a delta");
    let (seq, _) = parse_event_id(&delta.1).expect("our id");
    // "Echo: été…": byte 7 is the middle of the first "é".
    assert!(!output.is_char_boundary(7));
    let forged = event_id(seq, 7);
    let rest = tokio::time::timeout(
        PATIENCE,
        collect(stream_events(&app, &key, &session, Some(&forged))),
    )
    .await
    .expect("the resumed stream ends: it does not stall");
    assert_eq!(joined(&rest), output[6..], "from the whole character on");
}

#[tokio::test]
async fn a_replayed_running_event_shows_the_session_as_it_was_then() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "hello"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded");
    let all = replay(&app, &key, &session).await;
    let running = all
        .iter()
        .find(|e| e.0 == "session.running")
        .expect("a running event");
    let data = &running.2;
    assert_eq!(data["status"], "running", "{data}");
    assert_eq!(
        data["output"],
        Value::Null,
        "no finished answer in a running event: {data}"
    );
    assert_eq!(data["usage"], Value::Null, "{data}");
    assert_eq!(data["runs"][0]["status"], "running", "{data}");
    assert_eq!(data["runs"][0]["finished_at"], Value::Null, "{data}");
    let succeeded = all.last().expect("the last event");
    assert_eq!(succeeded.2["output"], done["output"]);
}
