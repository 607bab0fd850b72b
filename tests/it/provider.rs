//! Provider calls that survive the real world: classification, retries with
//! backoff and `Retry-After`, timeouts, rate limits across workers, the shared
//! cool-down, and cancellation.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::helpers::{ADMIN_TOKEN, Options, PATIENCE, TestApp, spawn_app_with, wait_for};

/// Retries come back fast in tests.
fn fast_retries() -> Options {
    Options::default().env("STEWRD_RETRY_BASE_MS", "50")
}

async fn run_once(app: &TestApp, key: &str, message: &str) -> Value {
    let accepted = app.submit(key, json!({"message": message})).await;
    app.wait_final(key, accepted["session_id"].as_str().expect("id"))
        .await
}

#[tokio::test]
async fn busy_or_broken_answers_are_retried_until_one_succeeds() {
    let app = spawn_app_with(fast_retries()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::error(500, "server_error", "boom"),
        Reply::error(502, "bad_gateway", "model down"),
        Reply::error(429, "rate_limit_exceeded", "slow down"),
        Reply {
            body: Some(json!({"error": {"code": 502, "message": "upstream died mid-stream"}})),
            ..Reply::default()
        },
    ]);
    let session = run_once(&app, &key, "persist").await;
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["output"], "Echo: persist");
    assert_eq!(session["runs"][0]["attempts"], 5);
    assert_eq!(app.stub.state.stats().calls, 5);
}

#[tokio::test]
async fn final_answers_are_tried_exactly_once_and_mapped_to_their_codes() {
    let app = spawn_app_with(fast_retries()).await;
    let (_, key) = app.create_project("acme").await;
    let cases = [
        (
            Reply::error(400, "invalid_request_error", "bad"),
            "provider_bad_request",
        ),
        (
            Reply::error(401, "invalid_api_key", "who are you"),
            "provider_auth_failed",
        ),
        (
            Reply::error(403, "forbidden", "region"),
            "provider_auth_failed",
        ),
        (
            Reply::error(404, "model_not_found", "no such model"),
            "provider_model_not_found",
        ),
        (
            Reply::error(413, "too_large", "too long"),
            "provider_bad_request",
        ),
        (
            Reply::error(422, "unprocessable", "nope"),
            "provider_bad_request",
        ),
        (
            Reply::error(402, "payment_required", "no credits"),
            "provider_insufficient_credits",
        ),
        (
            Reply::error(429, "insufficient_quota", "You exceeded your current quota"),
            "provider_insufficient_credits",
        ),
        // A redirect is never followed: the key must not be replayed elsewhere.
        (
            Reply {
                status: Some(302),
                ..Reply::default()
            }
            .header("location", "/v1/chat/completions"),
            "provider_bad_request",
        ),
    ];
    for (reply, code) in cases {
        let before = app.stub.state.stats().calls;
        let status = reply.status;
        app.stub.state.push([reply]);
        let session = run_once(&app, &key, "once").await;
        assert_eq!(session["status"], "failed", "{status:?}: {session}");
        assert_eq!(session["error"]["code"], code, "{status:?}: {session}");
        assert_eq!(session["runs"][0]["attempts"], 1, "{status:?}");
        assert_eq!(
            app.stub.state.stats().calls - before,
            1,
            "{status:?} was retried"
        );
    }
    // The provider's own words are kept.
    app.stub.state.push([Reply::error(
        404,
        "model_not_found",
        "The model `gpt-9` does not exist",
    )]);
    let session = run_once(&app, &key, "which model").await;
    assert_eq!(
        session["error"]["message"],
        "The model `gpt-9` does not exist"
    );
}

#[tokio::test]
async fn retry_after_is_honored_before_the_next_attempt() {
    let app = spawn_app_with(fast_retries()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::error(429, "rate_limit_exceeded", "wait a second").header("retry-after", "1"),
        Reply::error(503, "unavailable", "busy").header("retry-after", "1"),
    ]);
    let session = run_once(&app, &key, "patience").await;
    assert_eq!(session["status"], "succeeded", "{session}");
    let calls = app.stub.state.requests();
    assert_eq!(calls.len(), 3);
    for pair in calls.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(
            gap >= 1000,
            "attempts only {gap} ms apart despite Retry-After: 1"
        );
    }
}

#[tokio::test]
async fn attempts_stop_at_the_maximum_with_the_last_error() {
    let app = spawn_app_with(fast_retries().env("STEWRD_MAX_ATTEMPTS", "3")).await;
    let (_, key) = app.create_project("acme").await;
    app.stub
        .state
        .push((0..5).map(|_| Reply::error(503, "unavailable", "still down")));
    let session = run_once(&app, &key, "doomed").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["error"]["code"], "provider_unavailable");
    assert_eq!(session["error"]["message"], "still down");
    assert_eq!(session["runs"][0]["attempts"], 3);
    assert_eq!(app.stub.state.stats().calls, 3);
}

#[tokio::test]
async fn an_answer_that_stalls_after_its_head_fails_as_a_timeout() {
    let app = spawn_app_with(
        fast_retries()
            .env("STEWRD_MAX_ATTEMPTS", "1")
            .env("STEWRD_PROVIDER_TIMEOUT_SECS", "1"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    // The head and a first piece at once, the rest a minute later.
    app.stub.state.push([Reply::streamed(
        &["the start ", "and the end"],
        Duration::from_secs(60),
        4,
    )]);
    let accepted = app
        .submit(&key, json!({"message": "stall", "stream": true}))
        .await;
    let session = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "provider_timeout", "{session}");
    assert_eq!(app.stub.state.stats().calls, 1);
}

#[tokio::test]
async fn a_proxy_that_never_opens_its_tunnel_fails_the_call_at_the_connect_timeout() {
    // Accepts, reads nothing, answers nothing: the TCP connect succeeds and
    // the tunnel never opens.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = silent.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let app = spawn_app_with(
        fast_retries()
            .env("STEWRD_MAX_ATTEMPTS", "1")
            .env("STEWRD_PROVIDER_CONNECT_TIMEOUT_SECS", "1")
            .env("STEWRD_PROVIDER_TIMEOUT_SECS", "600")
            .env("STEWRD_PROVIDER_PROXY", &format!("http://{proxy}")),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let session = run_once(&app, &key, "through a dead proxy").await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "provider_timeout", "{session}");
    assert_eq!(app.stub.state.stats().calls, 0);
    held.abort();
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_fails_as_a_timeout() {
    let app = spawn_app_with(
        fast_retries()
            .env("STEWRD_MAX_ATTEMPTS", "2")
            .env("STEWRD_PROVIDER_TIMEOUT_SECS", "1"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.set_delay(Duration::from_secs(5));
    let session = run_once(&app, &key, "slow").await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "provider_timeout");
    assert_eq!(session["runs"][0]["attempts"], 2);
    // The caller gave up: the stub saw both calls abandoned.
    let dropped = wait_for(PATIENCE, || async {
        (app.stub.state.stats().dropped == 2).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "{:?}", app.stub.state.stats());
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_then_fails_as_unavailable() {
    let app = spawn_app_with(
        fast_retries()
            .env("STEWRD_MAX_ATTEMPTS", "2")
            .env("STEWRD_OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let session = run_once(&app, &key, "anyone there").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["error"]["code"], "provider_unavailable");
    assert_eq!(session["runs"][0]["attempts"], 2);
}

/// Calls whose arrival falls in any half-open window of `window` ms.
fn busiest_window(times_ms: &[u64], window: u64) -> usize {
    times_ms
        .iter()
        .map(|start| {
            times_ms
                .iter()
                .filter(|t| **t >= *start && **t < start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn set_rate_limit(app: &TestApp, project_id: &str, rpm: u32) {
    let (status, project) = app
        .call(
            Method::PUT,
            &format!("/v1/admin/projects/{project_id}/rate-limit"),
            Some(ADMIN_TOKEN),
            Some(json!({"requests_per_minute": rpm})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["rate_limit"]["requests_per_minute"], rpm);
}

/// 100 jobs of a project limited to 600/min, on three workers: the calls the stub
/// sees never exceed the rate plus the burst in any window, and another project's
/// jobs are not held up.
#[tokio::test]
async fn a_project_rate_limit_holds_across_all_workers() {
    let mut app = spawn_app_with(Options {
        workers: 3,
        ..Options::default().env("STEWRD_RATE_LIMIT_BURST", "5")
    })
    .await;
    let (limited_id, limited) = app.create_project("limited").await;
    let (_, free) = app.create_project("free").await;
    set_rate_limit(&app, &limited_id, 600).await;
    let mut limited_sessions = Vec::new();
    for i in 0..100 {
        limited_sessions.push(
            app.submit(&limited, json!({"message": format!("limited {i}")}))
                .await,
        );
    }
    let started = Instant::now();
    for i in 0..10 {
        let session = run_once(&app, &free, &format!("free {i}")).await;
        assert_eq!(session["status"], "succeeded");
    }
    let free_done = started.elapsed();
    for accepted in &limited_sessions {
        let id = accepted["session_id"].as_str().expect("id");
        let session = app.wait_final(&limited, id).await;
        assert_eq!(session["status"], "succeeded", "{session}");
        assert_eq!(
            session["runs"][0]["attempts"], 1,
            "waiting for the limit is not an attempt"
        );
    }
    let all_done = started.elapsed();
    assert!(
        free_done < all_done / 2,
        "the free project waited: {free_done:?} of {all_done:?}"
    );

    let times: Vec<u64> = app
        .stub
        .state
        .requests()
        .iter()
        .filter(|c| {
            c.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .starts_with("limited")
        })
        .map(|c| c.at_ms)
        .collect();
    assert_eq!(times.len(), 100);
    // 600/min is 10 a second; the burst allows 5 at once.
    for (window_ms, limit) in [(1_000, 10 + 5), (3_000, 30 + 5), (6_000, 60 + 5)] {
        let busiest = busiest_window(&times, window_ms);
        assert!(
            busiest <= limit,
            "{busiest} calls in {window_ms} ms (limit {limit})"
        );
    }
    // Spread out, not bunched: 100 calls at 10/s take at least 9 s after the burst.
    let span = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    assert!(span >= 9_000, "100 calls within {span} ms");
    drop(app.workers.pop());
}

/// The issue's own numbers: 60/min, 100 queued jobs, 3 workers, any 60 s window.
/// Slow (over a minute): run by CI with the ignored tests.
#[tokio::test]
#[ignore = "slow: a full minute of rate-limited calls"]
async fn a_limit_of_60_a_minute_holds_over_a_full_minute() {
    let app = spawn_app_with(Options {
        workers: 3,
        ..Options::default().env("STEWRD_RATE_LIMIT_BURST", "5")
    })
    .await;
    let (limited_id, limited) = app.create_project("limited").await;
    let (_, free) = app.create_project("free").await;
    set_rate_limit(&app, &limited_id, 60).await;
    for i in 0..100 {
        app.submit(&limited, json!({"message": format!("limited {i}")}))
            .await;
    }
    for i in 0..10 {
        let session = run_once(&app, &free, &format!("free {i}")).await;
        assert_eq!(session["status"], "succeeded");
    }
    // Wait for 70 limited calls: at 60 a minute after a burst of 5 they span
    // more than a minute, so some 60 s window holds the limit's full weight.
    let limited_calls = || {
        app.stub
            .state
            .requests()
            .iter()
            .filter(|c| {
                c.body["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("limited")
            })
            .map(|c| c.at_ms)
            .collect::<Vec<u64>>()
    };
    let times = wait_for(Duration::from_secs(150), || async {
        Some(limited_calls()).filter(|times| times.len() >= 70)
    })
    .await
    .unwrap_or_else(|| panic!("only {} limited calls", limited_calls().len()));
    let busiest = busiest_window(&times, 60_000);
    assert!(busiest <= 60 + 5, "{busiest} calls in one minute");
}

#[tokio::test]
async fn a_429_seen_by_one_worker_pauses_every_worker_using_that_key() {
    // One call at a time per worker, 100 ms each: without the shared pause the
    // other workers would keep calling straight through it.
    let app = spawn_app_with(Options {
        workers: 3,
        stub_delay: Duration::from_millis(100),
        ..fast_retries().env("STEWRD_WORKER_CONCURRENCY", "1")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let first_reply = Reply::error(429, "rate_limit_exceeded", "slow down")
        .header("retry-after", "2")
        .delayed(Duration::ZERO);
    app.stub.state.push([first_reply]);
    let mut sessions = Vec::new();
    for i in 0..30 {
        sessions.push(
            app.submit(&key, json!({"message": format!("job {i}")}))
                .await,
        );
    }
    for accepted in &sessions {
        let session = app
            .wait_final(&key, accepted["session_id"].as_str().expect("id"))
            .await;
        assert_eq!(session["status"], "succeeded");
    }
    let calls = app.stub.state.requests();
    let first = calls[0].at_ms;
    assert_eq!(calls.len(), 31);
    // Allow the few milliseconds a notification takes to reach the other workers.
    let during: Vec<u64> = calls
        .iter()
        .map(|c| c.at_ms)
        .filter(|t| *t > first + 200 && *t < first + 2_000)
        .collect();
    assert!(
        during.is_empty(),
        "calls during the cool-down at {during:?} (429 at {first})"
    );
    assert!(
        calls.iter().any(|c| c.at_ms >= first + 2_000),
        "calls resumed after it"
    );
}

#[tokio::test]
async fn cancelling_a_running_session_aborts_the_provider_call() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub
        .state
        .push([Reply::default().delayed(Duration::from_secs(30))]);
    let accepted = app.submit(&key, json!({"message": "take your time"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let in_flight = wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight == 1).then_some(())
    })
    .await;
    assert!(in_flight.is_some(), "the call never started");

    let started = Instant::now();
    let (status, session) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session_id}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "cancelled");
    assert_eq!(session["error"]["code"], "cancelled");
    let dropped = wait_for(Duration::from_secs(2), || async {
        (app.stub.state.stats().dropped == 1).then_some(())
    })
    .await;
    assert!(
        dropped.is_some(),
        "the provider call was not aborted within 2 s"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // It stays cancelled, and cancelling again is a conflict.
    let (status, error) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session_id}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["status"], "cancelled");
    assert_eq!(app.stub.state.stats().calls, 1);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{}/cancel", uuid::Uuid::now_v7()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_queued_run_cancelled_before_any_worker_sees_it_never_calls_the_provider() {
    let mut app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "never mind"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let run_id = accepted["run_id"].as_str().expect("run id").to_owned();
    let (status, session) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session_id}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["status"], "cancelled");
    app.add_worker();
    let skipped = wait_for(PATIENCE, || async {
        app.all_logs()
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("nothing to do"))
            .then_some(())
    })
    .await;
    assert!(
        skipped.is_some(),
        "the worker never consumed the message:\n{}",
        app.all_logs()
    );
    assert_eq!(app.stub.state.stats().calls, 0);
    // A new message may follow a cancelled one.
    let next = app
        .submit(&key, json!({"message": "again", "session_id": session_id}))
        .await;
    assert_eq!(next["status"], "queued");
}

#[tokio::test]
async fn a_late_result_never_overwrites_cancelled() {
    use stewrd_shared::{
        db::run::{Claim, Finished, RunOutcome, claim_next, finish_run},
        domain::{
            id::{RunId, WorkerId},
            llm::LlmChoice,
            model::{KeySource, Provider},
        },
    };
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "race"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let run_id: RunId = accepted["run_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");

    // Play a worker: claim the run with the real claim statement.
    let pool = app.pool().get().await.expect("a connection");
    let worker = WorkerId::new();
    let Claim::Claimed(claimed) = claim_next(&pool, worker, Duration::from_secs(30), None)
        .await
        .expect("claim")
    else {
        panic!("the queued run is claimed");
    };
    assert_eq!(claimed.id, run_id, "the only queued run");
    assert_eq!(app.cancel(&key, session_id).await, StatusCode::OK);
    let choice = LlmChoice {
        provider: Provider::OpenAi,
        model: "gpt-4o-mini".into(),
        key_source: KeySource::Default,
    };
    let outcome = RunOutcome::Succeeded {
        output: "too late".into(),
        usage: None,
    };
    let written = finish_run(&pool, &claimed, worker, &choice, &outcome, None, None)
        .await
        .expect("statement ran");
    assert_eq!(
        written,
        Finished::LeaseLost,
        "a late result was written over cancelled"
    );
    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["status"], "cancelled");
    assert_eq!(session["output"], Value::Null);
}

/// Results finishing together are stored in one statement, each under its own
/// lease: a result whose lease was lost (its session cancelled), and a stale
/// attempt's result beside its run's current one, are refused while the others
/// in the same batch are written, each with its own usage, error and webhook
/// event, whatever order the batch came in.
#[tokio::test]
async fn a_batch_of_results_writes_each_under_its_own_lease() {
    use stewrd_shared::{
        db::{
            coalesce::Write,
            run::{Claim, Finished, ResultRow, RunOutcome, claim_next},
        },
        domain::{
            id::WorkerId,
            llm::LlmChoice,
            model::{FailureCode, KeySource, Provider},
            usage::Usage,
        },
    };
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let hook = crate::receiver::Receiver::start().await;
    let hooked = app
        .submit(&key, json!({"message": "one", "webhook_url": hook.url()}))
        .await;
    let plain = app.submit(&key, json!({"message": "two"})).await;
    let late = app.submit(&key, json!({"message": "three"})).await;
    let mut pool = app.pool().get().await.expect("a connection");
    let worker = WorkerId::new();
    let mut claimed = Vec::new();
    for _ in 0..3 {
        let Claim::Claimed(run) = claim_next(&pool, worker, Duration::from_secs(30), None)
            .await
            .expect("claim")
        else {
            panic!("three queued runs are claimed");
        };
        claimed.push(*run);
    }
    let run_of = |accepted: &Value| {
        let id = accepted["run_id"].as_str().expect("id");
        claimed
            .iter()
            .find(|run| run.id.to_string() == id)
            .expect("claimed")
            .clone()
    };
    let (hooked_run, plain_run, late_run) = (run_of(&hooked), run_of(&plain), run_of(&late));
    let late_session = late["session_id"].as_str().expect("id");
    assert_eq!(app.cancel(&key, late_session).await, StatusCode::OK);
    let choice = LlmChoice {
        provider: Provider::OpenAi,
        model: "gpt-4o-mini".into(),
        key_source: KeySource::Default,
    };
    let usage = Usage {
        prompt_tokens: 3,
        completion_tokens: 4,
        total_tokens: 7,
        cost_usd: None,
    };
    let succeeded = |output: &str| RunOutcome::Succeeded {
        output: output.into(),
        usage: Some(usage),
    };
    let failed = RunOutcome::Failed {
        code: FailureCode::ProviderUnavailable,
        message: "the provider said no".into(),
        output: None,
    };
    // The same run's result from an attempt before this one (a worker that
    // lost its lease and claimed the run again holds both).
    let mut stale_run = hooked_run.clone();
    stale_run.lease.attempt -= 1;
    let rows = [
        ResultRow::new(
            &late_run,
            worker,
            &choice,
            &succeeded("too late"),
            None,
            None,
        ),
        ResultRow::new(
            &hooked_run,
            worker,
            &choice,
            &succeeded("first"),
            None,
            None,
        ),
        ResultRow::new(&plain_run, worker, &choice, &failed, None, None),
        ResultRow::new(&stale_run, worker, &choice, &succeeded("stale"), None, None),
    ];
    let written = ResultRow::many(&mut pool, &rows)
        .await
        .expect("the batch is stored");
    assert_eq!(
        written,
        [
            Finished::LeaseLost,
            Finished::Written { webhook: true },
            Finished::Written { webhook: false },
            Finished::LeaseLost,
        ],
        "each result answered under its own lease, in the batch's order"
    );
    let session = |accepted: &Value| accepted["session_id"].as_str().expect("id").to_owned();
    let first = app.wait_final(&key, &session(&hooked)).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["output"], "first");
    assert_eq!(first["usage"]["total_tokens"], 7, "{first}");
    let second = app.wait_final(&key, &session(&plain)).await;
    assert_eq!(second["status"], "failed", "{second}");
    assert_eq!(second["error"]["code"], "provider_unavailable", "{second}");
    let third = app.wait_final(&key, late_session).await;
    assert_eq!(third["status"], "cancelled", "{third}");
    assert_eq!(third["output"], Value::Null);
    let events: Vec<(String, i64)> = app
        .db()
        .await
        .query(
            "SELECT r.input, count(e.id) FROM runs r LEFT JOIN webhook_events e ON e.run_id = r.id
             GROUP BY r.input ORDER BY r.input",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        events,
        [
            ("one".to_owned(), 1),
            ("three".to_owned(), 0),
            ("two".to_owned(), 0)
        ],
        "one webhook event, for the run with a URL"
    );
}

/// Postgres cannot store U+0000: an answer holding one must still be stored
/// once, not called again after every lease expiry.
#[tokio::test]
async fn an_answer_holding_a_nul_is_stored_once_with_a_replacement_character() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([Reply::text("half\u{0}way", 4)]);
    let accepted = app.submit(&key, json!({"message": "m"})).await;
    let session = app
        .wait_final_within(
            &key,
            accepted["session_id"].as_str().expect("id"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["output"], "half\u{FFFD}way");
    assert_eq!(
        app.stub.state.stats().calls,
        1,
        "the provider was called once"
    );
}

#[tokio::test]
async fn a_429_for_one_model_does_not_pause_another_model_on_the_same_key() {
    let app = spawn_app_with(fast_retries()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub
        .state
        .push([Reply::error(429, "rate_limit_exceeded", "slow down").header("retry-after", "120")]);
    app.submit(&key, json!({"message": "busy", "model": "busy-model"}))
        .await;
    wait_for(PATIENCE, || async {
        (!app.stub.state.requests().is_empty()).then_some(())
    })
    .await
    .expect("the first call");
    // Another model on the same (default) key goes at once; the paused model
    // would wait out its two minutes.
    let calm = app
        .submit(&key, json!({"message": "calm", "model": "calm-model"}))
        .await;
    let calm = app
        .wait_final(&key, calm["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(calm["status"], "succeeded", "{calm}");
    // A key out of credit pauses every model on it.
    app.stub
        .state
        .push([Reply::error(402, "insufficient_credits", "top up").header("retry-after", "2")]);
    let before = app.stub.state.requests().len();
    let broke = app
        .submit(&key, json!({"message": "pay", "model": "calm-model"}))
        .await;
    wait_for(PATIENCE, || async {
        (app.stub.state.requests().len() > before).then_some(())
    })
    .await
    .expect("the 402");
    let refused_at = app.stub.state.requests()[before].at_ms;
    let other = app
        .submit(&key, json!({"message": "other", "model": "other-model"}))
        .await;
    let other = app
        .wait_final(&key, other["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(other["status"], "succeeded", "{other}");
    let called_at = app
        .stub
        .state
        .requests()
        .iter()
        .filter(|r| r.body["model"] == "other-model")
        .map(|r| r.at_ms)
        .next()
        .expect("the other model's call");
    assert!(
        called_at >= refused_at + 1_800,
        "another model called {} ms after the key ran out of credit",
        called_at - refused_at
    );
    app.wait_final(&key, broke["session_id"].as_str().expect("id"))
        .await;
}
