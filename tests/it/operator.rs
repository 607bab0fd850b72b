//! The operator's and integrator's surface: metrics, live events, OpenAPI.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for};

/// The value of the first sample of `name` whose labels include every `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

pub(crate) async fn text(app: &TestApp, url: &str) -> String {
    app.http
        .get(url)
        .send()
        .await
        .expect("metrics reachable")
        .text()
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn metrics_count_requests_and_runs_and_carry_no_secrets() {
    let app = spawn_app_with(Options::default().worker_metrics()).await;
    let (_, key) = app.create_project("acme").await;
    let secret_key = "sk-metrics-secret-123456";
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(json!({"provider": "openai", "model": "gpt-4o", "api_key": secret_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let prompt = "a very private prompt about the merger";
    let accepted = app.submit(&key, json!({"message": prompt})).await;
    let session_id = accepted["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &session_id).await;
    app.stub.state.push([
        Reply::error(503, "unavailable", "busy"),
        Reply::error(400, "bad", "no"),
    ]);
    let failed = app.submit(&key, json!({"message": "second"})).await;
    app.wait_final(&key, failed["session_id"].as_str().expect("id"))
        .await;

    let api = text(&app, &format!("{}/metrics", app.base)).await;
    assert_eq!(
        sample(
            &api,
            "stewrd_http_requests_total",
            &["route=\"/v1/agent\"", "status=\"202\"", "method=\"POST\""]
        ),
        Some(2.0),
        "{api}"
    );
    assert_eq!(sample(&api, "stewrd_runs_submitted_total", &[]), Some(2.0));
    assert!(
        sample(
            &api,
            "stewrd_http_request_duration_seconds_bucket",
            &["route=\"/v1/agent\""]
        )
        .is_some()
    );

    let worker_url = app.worker_metrics().await;
    let worker = wait_for(PATIENCE, || async {
        let body = text(&app, &worker_url).await;
        sample(&body, "stewrd_runs_finished_total", &["status=\"failed\""]).map(|_| body)
    })
    .await
    .expect("worker metrics");
    assert_eq!(
        sample(
            &worker,
            "stewrd_runs_finished_total",
            &["status=\"succeeded\""]
        ),
        Some(1.0),
        "{worker}"
    );
    assert_eq!(
        sample(
            &worker,
            "stewrd_runs_finished_total",
            &["status=\"failed\"", "code=\"provider_bad_request\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&worker, "stewrd_runs_started_total", &[]),
        Some(3.0),
        "two runs, one retry"
    );
    assert_eq!(
        sample(
            &worker,
            "stewrd_provider_retries_total",
            &["code=\"provider_unavailable\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &worker,
            "stewrd_provider_calls_total",
            &[
                "provider=\"openai\"",
                "status_class=\"2xx\"",
                "model=\"gpt-4o\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &worker,
            "stewrd_provider_calls_total",
            &["status_class=\"5xx\""]
        ),
        Some(1.0)
    );
    assert!(sample(&worker, "stewrd_run_queue_wait_seconds_count", &[]).is_some());
    assert!(sample(&worker, "stewrd_run_duration_seconds_count", &[]).is_some());
    assert_eq!(
        sample(&worker, "stewrd_worker_runs_in_flight", &[]),
        Some(0.0)
    );
    for body in [&api, &worker] {
        for secret in [secret_key, &secret_key[..12], prompt, &session_id, &key] {
            assert!(!body.contains(secret), "{secret} in the metrics");
        }
    }
}

pub(crate) type SseEvent = (String, String, Value);

/// Opens the event stream and forwards each event (event, id, data) as it
/// arrives; the channel closes when the stream ends.
pub(crate) fn stream_events(
    app: &TestApp,
    key: &str,
    session_id: &str,
    last_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<SseEvent> {
    stream_events_at(&app.http, &app.base, key, session_id, last_id)
}

/// [`stream_events`] from the API process at `base`.
pub(crate) fn stream_events_at(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    session_id: &str,
    last_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<SseEvent> {
    let mut request = http
        .get(format!("{base}/v1/sessions/{session_id}/events"))
        .bearer_auth(key)
        .timeout(PATIENCE);
    if let Some(last) = last_id {
        request = request.header("last-event-id", last);
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"]
                .to_str()
                .unwrap_or_default(),
            "text/event-stream"
        );
        let mut buffer = String::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_owned())
                };
                if let (Some(event), Some(id), Some(data)) =
                    (field("event"), field("id"), field("data"))
                {
                    let _ = tx.send((event, id, serde_json::from_str(&data).unwrap_or_default()));
                }
            }
        }
    });
    rx
}

pub(crate) async fn collect(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<SseEvent>,
) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    events
}

#[tokio::test]
async fn events_stream_each_status_change_until_final_and_resume() {
    let mut app = spawn_app_with(Options {
        workers: 0,
        stub_delay: Duration::from_millis(800),
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "watch me"})).await;
    let session_id = accepted["session_id"].as_str().expect("id").to_owned();

    let mut live = stream_events(&app, &key, &session_id, None);
    let first = tokio::time::timeout(PATIENCE, live.recv())
        .await
        .expect("an event")
        .expect("open");
    assert_eq!(first.0, "session.queued", "the current state comes at once");
    assert_eq!(first.2["status"], "queued");
    app.add_worker();
    let mut events = vec![first];
    events.extend(
        tokio::time::timeout(PATIENCE, collect(live))
            .await
            .expect("the stream ends"),
    );
    let names: Vec<_> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["session.queued", "session.running", "session.succeeded"],
        "{events:?}"
    );
    assert_eq!(events[2].2["output"], "Echo: watch me");
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e.1.parse().expect("a numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing: {ids:?}");

    // Resuming after any event gives exactly what came later (after "queued":
    // "running" too, which a snapshot of the current state would skip); after
    // the end, nothing.
    // (A replayed event carries the session as it is now, at its status.)
    let heads = |events: &[SseEvent]| -> Vec<(String, String, Value)> {
        events
            .iter()
            .map(|(name, id, data)| (name.clone(), id.clone(), data["status"].clone()))
            .collect()
    };
    for (seen, _) in events.iter().enumerate() {
        let resumed = collect(stream_events(
            &app,
            &key,
            &session_id,
            Some(&events[seen].1),
        ))
        .await;
        assert_eq!(
            heads(&resumed),
            heads(&events[seen + 1..]),
            "after {}",
            events[seen].0
        );
    }
    // An id that is not one of ours is refused; one past the retention is 410
    // (see `streaming::`).
    let refused = app
        .http
        .get(format!("{}/v1/sessions/{session_id}/events", app.base))
        .bearer_auth(&key)
        .header("last-event-id", "not-an-id")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: Value = refused.json().await.unwrap_or_default();
    assert_eq!(error["error"]["param"], "Last-Event-ID");
    // Another project sees nothing.
    let (_, other) = app.create_project("other").await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session_id}/events"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
