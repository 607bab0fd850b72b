//! What an attacker's review found, each fixed with a test: crashing code,
//! hostile input, slow clients, guessing, races.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Options, spawn_app_with};

/// Every eight-character piece of `secret`, lower-cased: none may appear anywhere.
fn pieces(secret: &str) -> Vec<String> {
    let lower = secret.to_lowercase();
    (0..=lower.len() - 8)
        .map(|i| lower[i..i + 8].to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_whose_task_panics_is_not_stranded_and_the_panic_prints_no_key() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_FAULT_PANIC_ON_INPUT", "explode")
            .env("STEWRD_MAX_ATTEMPTS", "2")
            .env("STEWRD_RETRY_BASE_MS", "50")
            // Far beyond the test's patience: only the worker itself can free the run.
            .env("STEWRD_LEASE_SECS", "120"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let provider_key = "sk-panic-QwErTyUiOpAsDfGhJkLzXc";
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(json!({"provider": "openai", "model": "gpt-4o", "api_key": provider_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let doomed = app.submit(&key, json!({"message": "explode"})).await;
    let fine = app.submit(&key, json!({"message": "still fine"})).await;
    let doomed_id = doomed["session_id"].as_str().expect("id");
    let session = app.wait_final(&key, doomed_id).await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "delivery_limit_exceeded");
    let other = app
        .wait_final(&key, fine["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(other["status"], "succeeded", "other runs go on: {other}");

    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT lease_owner IS NULL AS released, attempts FROM runs WHERE id::text = $1",
            &[&doomed["run_id"].as_str().expect("run id")],
        )
        .await
        .expect("the run");
    assert!(row.get::<_, bool>("released"), "the lease is released");
    // The session takes a new message: it is not left busy.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "again", "session_id": doomed_id})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let logs = app.all_logs();
    let panics = logs.matches("panic (its message is withheld").count();
    assert_eq!(panics, 2, "one logged panic per attempt:\n{logs}");
    let lower = logs.to_lowercase();
    for piece in pieces(provider_key) {
        assert!(!lower.contains(&piece), "{piece} of the key in the logs");
    }
}
