//! The whole path: submit → Postgres → RabbitMQ → worker → provider → poll.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use stewrd::stub::Reply;

use crate::helpers::{DEFAULT_KEY, PATIENCE, spawn_app, wait_for};

#[tokio::test]
async fn a_submitted_message_comes_back_as_the_stub_answer() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;

    let accepted = app
        .submit(
            &key,
            json!({"message": "Summarize the latest AI news", "metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(accepted["status"], "queued");
    let session_id = accepted["session_id"].as_str().expect("session id");
    assert!(accepted["run_id"].is_string());
    assert!(
        accepted["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["output"], "Echo: Summarize the latest AI news");
    assert_eq!(session["provider"], "openai");
    assert_eq!(session["model"], "gpt-4o-mini");
    assert_eq!(session["key_source"], "default");
    assert_eq!(session["error"], serde_json::Value::Null);
    assert_eq!(session["usage"]["prompt_tokens"], 5);
    assert_eq!(session["usage"]["completion_tokens"], 6);
    assert_eq!(session["usage"]["total_tokens"], 11);
    assert_eq!(session["metadata"], json!({"team": "a"}));
    let messages = session["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Echo: Summarize the latest AI news");
    assert_eq!(session["runs"][0]["attempts"], 1);
    assert_eq!(session["runs"][0]["id"], accepted["run_id"]);

    // The provider got the default key, the model and the message.
    let calls = app.stub.state.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/v1/chat/completions");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {DEFAULT_KEY}").as_str())
    );
    assert_eq!(calls[0].body["model"], "gpt-4o-mini");

    // Exactly one result row, stored with the run.
    let db = app.db().await;
    let row = db
        .query_one("SELECT status, output, attempts FROM runs", &[])
        .await
        .expect("one run");
    assert_eq!(row.get::<_, String>("status"), "succeeded");
    assert_eq!(row.get::<_, i32>("attempts"), 1);
    let outbox: i64 = db
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(outbox, 0, "a claimed run leaves no outbox row behind");
}

#[tokio::test]
async fn the_second_message_sends_the_whole_history_to_the_provider() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let first = app
        .submit(
            &key,
            json!({"message": "My name is Ada.", "system": "Be brief."}),
        )
        .await;
    let session_id = first["session_id"].as_str().expect("id");
    app.wait_final(&key, session_id).await;

    let second = app
        .submit(
            &key,
            json!({"message": "What is my name?", "session_id": session_id}),
        )
        .await;
    assert_eq!(second["session_id"], first["session_id"]);
    assert_ne!(second["run_id"], first["run_id"]);
    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["output"], "Echo: What is my name?");
    assert_eq!(session["messages"].as_array().map(Vec::len), Some(4));
    assert_eq!(session["runs"].as_array().map(Vec::len), Some(2));

    let calls = app.stub.state.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ])
    );
}

#[tokio::test]
async fn a_session_answers_409_while_a_run_is_queued_or_running() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub
        .state
        .push([Reply::default().delayed(Duration::from_secs(2))]);
    let first = app.submit(&key, json!({"message": "slow one"})).await;
    let session_id = first["session_id"].as_str().expect("id");

    let (status, body) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "too soon", "session_id": session_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["type"], "conflict_error");
    assert_eq!(body["error"]["code"], "session_busy");

    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["status"], "succeeded");
    // The refused message left no trace.
    assert_eq!(session["runs"].as_array().map(Vec::len), Some(1));
    let again = app
        .submit(&key, json!({"message": "now", "session_id": session_id}))
        .await;
    assert_eq!(again["status"], "queued");
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_run_finishes() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.stub
        .state
        .push([Reply::default().delayed(Duration::from_millis(1500))]);
    let accepted = app.submit(&key, json!({"message": "wait for me"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");

    let started = Instant::now();
    let (status, session) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session_id}?wait=25"),
            Some(&key),
            None,
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["status"], "succeeded", "{session}");
    // Woken by the result's notification, not by the 25-second deadline.
    assert!(
        waited < Duration::from_secs(15),
        "long-poll took {waited:?}"
    );

    // Without `wait` the answer is immediate, whatever the status.
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session_id}?wait=61"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "wait");
}

#[tokio::test]
async fn a_redelivered_message_for_a_finished_run_does_not_call_the_provider_again() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "once"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let run_id = accepted["run_id"].as_str().expect("run id");
    app.wait_final(&key, session_id).await;
    assert_eq!(app.stub.state.stats().calls, 1);

    let duplicate = json!({"type": "run.v1", "run_id": run_id}).to_string();
    app.publish_job(duplicate.as_bytes()).await;
    let skipped = wait_for(PATIENCE, || async {
        let logs = app.all_logs();
        logs.lines()
            .any(|line| line.contains(run_id) && line.contains("nothing to do"))
            .then_some(())
    })
    .await;
    assert!(
        skipped.is_some(),
        "the duplicate was never consumed:\n{}",
        app.all_logs()
    );
    assert_eq!(
        app.stub.state.stats().calls,
        1,
        "the provider was called again"
    );
    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["runs"][0]["attempts"], 1);
}

#[tokio::test]
async fn sessions_are_listed_newest_first_with_a_cursor_and_a_status_filter() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let accepted = app.submit(&key, json!({"message": format!("m{n}")})).await;
        let id = accepted["session_id"].as_str().expect("id").to_owned();
        app.wait_final(&key, &id).await;
        ids.push(id);
    }
    let (status, page) = app
        .call(Method::GET, "/v1/sessions?limit=2", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let data = page["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], ids[2].as_str());
    assert_eq!(data[1]["id"], ids[1].as_str());
    assert!(data[0].get("messages").is_none());
    let cursor = page["next_cursor"].as_str().expect("a cursor");

    let (_, next) = app
        .call(
            Method::GET,
            &format!("/v1/sessions?limit=2&after={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(next["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(next["data"][0]["id"], ids[0].as_str());
    assert_eq!(next["next_cursor"], serde_json::Value::Null);

    let (_, failed) = app
        .call(Method::GET, "/v1/sessions?status=failed", Some(&key), None)
        .await;
    assert_eq!(failed["data"].as_array().map(Vec::len), Some(0));
    let (_, succeeded) = app
        .call(
            Method::GET,
            "/v1/sessions?status=succeeded",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(succeeded["data"].as_array().map(Vec::len), Some(3));
    let (status, bad) = app
        .call(Method::GET, "/v1/sessions?status=done", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["param"], "status");
}
