//! Outages of the machine's own RabbitMQ and Postgres. These stop services every
//! test shares, so they are ignored by default and run alone, one at a time, by
//! `scripts/test --all` (CI). Each prints the fault suite's tally line.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    infra::{BrokerSetting, BrokerStopped, restart_postgres},
};

pub(crate) async fn submit_many(app: &TestApp, key: &str, n: usize) -> Vec<String> {
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let accepted = app
            .submit(key, json!({"message": format!("job {i}")}))
            .await;
        runs.push(accepted["run_id"].as_str().expect("run id").to_owned());
    }
    runs
}

pub(crate) async fn open_runs(app: &TestApp, runs: &[String]) -> Option<i64> {
    let db = tokio::time::timeout(Duration::from_secs(2), app.db())
        .await
        .ok()?;
    Some(
        db.query_one(
            "SELECT count(*) FROM runs WHERE id::text = ANY($1) AND status <> 'succeeded'",
            &[&runs],
        )
        .await
        .ok()?
        .get(0),
    )
}

pub(crate) async fn wait_all_succeeded(
    app: &TestApp,
    runs: &[String],
    patience: Duration,
) -> Duration {
    let started = Instant::now();
    let done = wait_for(patience, || async {
        (open_runs(app, runs).await? == 0).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{:?} runs not succeeded after {patience:?}",
        open_runs(app, runs).await
    );
    started.elapsed()
}

/// What a client saw while the database went away: each request's status, and
/// the run id of each accepted submit.
pub(crate) type Seen = Vec<(u16, Option<String>)>;

/// Reads `probe_session` and submits a message in a loop, 10 ms apart, until
/// `stop`, as clients would while Postgres restarts or fails over.
pub(crate) fn probe(
    app: &TestApp,
    key: &str,
    probe_session: &str,
    stop: &tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Seen> {
    let stop = stop.clone();
    let http = app.http.clone();
    let base = app.base.clone();
    let key = key.to_owned();
    let probe_session = probe_session.to_owned();
    tokio::spawn(async move {
        let mut seen = Seen::new();
        while !stop.is_cancelled() {
            if let Ok(response) = http
                .get(format!("{base}/v1/sessions/{probe_session}"))
                .bearer_auth(&key)
                .send()
                .await
            {
                seen.push((response.status().as_u16(), None));
            }
            if let Ok(response) = http
                .post(format!("{base}/v1/agent"))
                .bearer_auth(&key)
                .json(&json!({"message": "while the database changes"}))
                .send()
                .await
            {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                seen.push((status, body["run_id"].as_str().map(str::to_owned)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

#[tokio::test]
#[ignore = "outage: stops shared services; run alone with scripts/test --all"]
async fn jobs_accepted_while_rabbitmq_is_down_all_run_once_it_is_back() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    let broker = tokio::task::spawn_blocking(BrokerStopped::new)
        .await
        .expect("stopped");
    let not_ready = wait_for(PATIENCE, || async {
        (readyz(&app).await == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    assert!(
        not_ready.is_some(),
        "/readyz did not report the broker down"
    );
    let runs = submit_many(&app, &key, 200).await;
    assert_eq!(app.stub.state.stats().calls, 0);
    tokio::task::spawn_blocking(move || broker.start())
        .await
        .expect("started");
    let recovered = wait_all_succeeded(&app, &runs, Duration::from_secs(60)).await;
    println!("recovered_in_ms={}", recovered.as_millis());
    let tally = app.tally(&runs).await;
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicated_results, 0);
    assert_eq!(tally.provider_calls, 200);
    // The API's own relay reconnects within its backoff (at most 5 s).
    let ready = wait_for(PATIENCE, || async {
        (readyz(&app).await == StatusCode::OK).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/readyz never recovered");
}

#[tokio::test]
#[ignore = "outage: stops shared services; run alone with scripts/test --all"]
async fn a_rabbitmq_restart_with_jobs_in_flight_loses_nothing() {
    let app = spawn_app_with(Options {
        stub_delay: Duration::from_secs(1),
        ..Options::default().env("STEWRD_WORKER_CONCURRENCY", "50")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_many(&app, &key, 200).await;
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight > 0).then_some(())
    })
    .await;
    tokio::task::spawn_blocking(|| BrokerStopped::new().start())
        .await
        .expect("restarted");
    let recovered = wait_all_succeeded(&app, &runs, Duration::from_secs(90)).await;
    println!("recovered_in_ms={}", recovered.as_millis());
    let tally = app.tally(&runs).await;
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicated_results, 0);
    assert!(
        app.all_logs().contains("lost the broker"),
        "the restart went unnoticed"
    );
}

#[tokio::test]
#[ignore = "outage: stops shared services; run alone with scripts/test --all"]
async fn a_postgres_restart_answers_503_never_500_and_loses_nothing() {
    let app = spawn_app_with(Options {
        stub_delay: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let mut runs = submit_many(&app, &key, 100).await;
    let probe_session = app.submit(&key, json!({"message": "probe"})).await;
    runs.push(probe_session["run_id"].as_str().expect("id").to_owned());
    let probe_id = probe_session["session_id"].as_str().expect("id").to_owned();
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight > 0).then_some(())
    })
    .await;

    // Hammer the API while Postgres restarts.
    let stop = tokio_util::sync::CancellationToken::new();
    let probing = probe(&app, &key, &probe_id, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("restarted");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let seen = probing.await.expect("probe");
    let unavailable = seen.iter().filter(|(s, _)| *s == 503).count();
    let errors: Vec<_> = seen
        .iter()
        .filter(|(s, _)| *s >= 500 && *s != 503)
        .collect();
    println!("probes={} answered_503={unavailable}", seen.len());
    assert!(
        errors.is_empty(),
        "5xx other than 503 during the restart: {errors:?}"
    );
    assert!(unavailable > 0, "the restart was never seen as a 503");
    runs.extend(
        seen.into_iter()
            .filter(|(s, _)| *s == 202)
            .filter_map(|(_, id)| id),
    );

    let recovered = wait_all_succeeded(&app, &runs, Duration::from_secs(90)).await;
    println!("recovered_in_ms={}", recovered.as_millis());
    let tally = app.tally(&runs).await;
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicated_results, 0);
    let (status, _) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// RabbitMQ closes a channel holding a delivery unacked past `consumer_timeout`.
/// A worker acks right after its claim, so a call twice as long as the timeout
/// neither dies nor runs twice, and the channel is never closed.
#[tokio::test]
#[ignore = "outage: stops shared services; run alone with scripts/test --all"]
async fn a_call_longer_than_the_consumer_timeout_runs_once() {
    let _timeout = BrokerSetting::set("consumer_timeout", 5_000);
    let _tick = BrokerSetting::set("channel_tick_interval", 1_000);
    // Started after the change: only channels opened afterwards get it.
    let app = spawn_app_with(Options {
        stub_delay: Duration::from_secs(10),
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_many(&app, &key, 3).await;
    // Only what happens once the calls are under way counts: a broker still
    // settling from the previous outage test may refuse the worker's very first
    // connection (seen once: INTERNAL_ERROR at connect), which is not this bug.
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight == 3).then_some(())
    })
    .await
    .expect("the three calls started");
    let lost = |logs: String| logs.matches("lost the broker").count();
    let lost_before_calls = lost(app.all_logs());
    wait_all_succeeded(&app, &runs, Duration::from_secs(60)).await;
    let tally = app.tally(&runs).await;
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.provider_calls, 3, "a run ran twice");
    assert_eq!(
        lost(app.all_logs()),
        lost_before_calls,
        "the broker closed the channel during the calls"
    );
}
