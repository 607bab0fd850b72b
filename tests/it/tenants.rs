//! Tenant controls: fair claims across projects, `max_concurrent_runs` across
//! workers, `max_queued_runs` under a race, token budgets (the project's and the
//! default key's), and usage that matches the runs' own counts.

use std::{collections::HashMap, time::Duration};

use futures_util::{StreamExt, stream};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::{Reply, STUB_USD_PER_TOKEN};
use time::OffsetDateTime;

use crate::{
    agent::{tool, wait_status},
    helpers::{ADMIN_TOKEN, Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    operator::text,
};

/// Sets a project's limits through the admin API; asserts the answer shows them.
pub async fn set_limits(app: &TestApp, project: &str, limits: Value) -> Value {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/admin/projects/{project}/limits"),
            Some(ADMIN_TOKEN),
            Some(limits.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (name, value) in limits.as_object().expect("an object") {
        assert_eq!(&body["limits"][name], value, "{body}");
    }
    body
}

/// Gives a project a provider key of its own (so the stub can tell it apart).
pub async fn own_key(app: &TestApp, key: &str, provider: &str, provider_key: &str) {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(key),
            Some(json!({"provider": provider, "model": "gpt-4o-mini", "api_key": provider_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Submits without asserting the answer: status, `Retry-After`, body.
pub async fn try_submit(app: &TestApp, key: &str, body: Value) -> (StatusCode, Option<u64>, Value) {
    let (status, headers, text) = app
        .call_raw(Method::POST, "/v1/agent", Some(key), Some(body.to_string()))
        .await;
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Submits `count` messages with `clients` at once; returns the session ids.
async fn submit_many(app: &TestApp, key: &str, count: usize, clients: usize) -> Vec<String> {
    stream::iter(0..count)
        .map(|i| async move {
            let accepted = app.submit(key, json!({"message": format!("m{i}")})).await;
            accepted["session_id"].as_str().expect("id").to_owned()
        })
        .buffer_unordered(clients)
        .collect()
        .await
}

/// Queue waits (started − created, ms) of the given sessions' runs, once all started.
async fn queue_waits(app: &TestApp, sessions: &[String]) -> Vec<f64> {
    let db = app.db().await;
    let ids: Vec<uuid::Uuid> = sessions.iter().map(|s| s.parse().expect("uuid")).collect();
    wait_for(Duration::from_secs(120), || async {
        let rows = db
            .query(
                "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS wait
                 FROM runs WHERE session_id = ANY($1) AND started_at IS NOT NULL",
                &[&ids],
            )
            .await
            .expect("query");
        (rows.len() == ids.len()).then(|| rows.iter().map(|r| r.get::<_, f64>("wait")).collect())
    })
    .await
    .expect("every run started")
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs of each project started in `[from, to)`.
async fn started_between(
    app: &TestApp,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> HashMap<String, i64> {
    app.db()
        .await
        .query(
            "SELECT project_id::text AS project, count(*) AS n FROM runs
             WHERE started_at >= $1 AND started_at < $2 GROUP BY project_id",
            &[&from, &to],
        )
        .await
        .expect("query")
        .iter()
        .map(|row| (row.get("project"), row.get("n")))
        .collect()
}

#[tokio::test]
#[ignore = "slow: fills the queue with 5,000 runs and watches a minute of sharing; run by scripts/test --all"]
async fn a_deep_backlog_delays_another_project_by_a_few_claims_and_backlogs_share_equally() {
    // 2 workers × 8 runs at once, a 200 ms provider: 80 runs/s, so A's 5,000
    // take about a minute to drain.
    let app = spawn_app_with(
        Options {
            workers: 2,
            stub_delay: Duration::from_millis(200),
            ..Options::default()
        }
        .env("STEWRD_WORKER_CONCURRENCY", "8"),
    )
    .await;
    let (a_id, a) = app.create_project("a").await;
    let (b_id, b) = app.create_project("b").await;
    let (c_id, c) = app.create_project("c").await;

    // B alone: what its 50 runs wait for with the workers to itself.
    let alone = submit_many(&app, &b, 50, 50).await;
    let alone_waits = queue_waits(&app, &alone).await;
    for session in &alone {
        app.wait_final(&b, session).await;
    }

    // A's backlog, then B's 50 again.
    let backlog = submit_many(&app, &a, 5_000, 32).await;
    let a_queued_before_b: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM runs WHERE status = 'queued' AND project_id = $1::text::uuid",
            &[&a_id],
        )
        .await
        .expect("count")
        .get(0);
    let with_backlog = submit_many(&app, &b, 50, 50).await;
    let waits = queue_waits(&app, &with_backlog).await;

    // Then B and C get backlogs too, and the three share the workers.
    submit_many(&app, &b, 2_000, 32).await;
    submit_many(&app, &c, 2_000, 32).await;
    let from = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_secs(60)).await; // the measured minute, not a wait for a condition
    let to = OffsetDateTime::now_utc();
    let started = started_between(&app, from, to).await;
    let total: i64 = started.values().sum();
    let share = |id: &str| started.get(id).copied().unwrap_or(0) as f64 / total as f64;
    let rate = total as f64 / (to - from).as_seconds_f64();
    let a_drain_s = a_queued_before_b as f64 / rate;
    let (p50, p99) = (percentile(&waits, 50.0), percentile(&waits, 99.0));
    let alone_p99 = percentile(&alone_waits, 99.0);
    println!(
        "FAIRNESS b_wait_p50_ms={p50:.0} b_wait_p99_ms={p99:.0} a_drain_s={a_drain_s:.1} share_a={:.3} share_b={:.3} share_c={:.3} (b alone p99 {alone_p99:.0} ms, {rate:.0} runs/s, A queued ahead of B {a_queued_before_b})",
        share(&a_id),
        share(&b_id),
        share(&c_id),
    );
    assert!(
        backlog.len() == 5_000 && a_queued_before_b > 1_000,
        "A had a backlog"
    );
    assert!(
        p99 <= 4.0 * alone_p99 + 250.0,
        "B waited p99 {p99:.0} ms behind A's backlog, {alone_p99:.0} ms alone"
    );
    assert!(
        p99 < a_drain_s * 1000.0 / 10.0,
        "B's p99 wait {p99:.0} ms is not far below A's drain time {a_drain_s:.1} s"
    );
    for (name, id) in [("a", &a_id), ("b", &b_id), ("c", &c_id)] {
        let share = share(id);
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.15 / 3.0,
            "project {name} had {share:.3} of the minute's runs: {started:?}"
        );
    }
}

#[tokio::test]
async fn max_concurrent_runs_holds_across_three_workers() {
    let app = spawn_app_with(Options {
        workers: 3,
        stub_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let (capped_id, capped) = app.create_project("capped").await;
    let (_, free) = app.create_project("free").await;
    own_key(&app, &capped, "openai", "sk-capped-project-key-0001").await;
    own_key(&app, &free, "openai", "sk-free-project-key-00002").await;
    set_limits(&app, &capped_id, json!({"max_concurrent_runs": 3})).await;

    let (capped_sessions, free_sessions) = tokio::join!(
        submit_many(&app, &capped, 30, 30),
        submit_many(&app, &free, 30, 30)
    );
    for session in &capped_sessions {
        assert_eq!(
            app.wait_final(&capped, session).await["status"],
            "succeeded"
        );
    }
    for session in &free_sessions {
        assert_eq!(app.wait_final(&free, session).await["status"], "succeeded");
    }
    let capped_most = app
        .stub
        .state
        .max_in_flight_with("Bearer sk-capped-project-key-0001");
    let free_most = app
        .stub
        .state
        .max_in_flight_with("Bearer sk-free-project-key-00002");
    println!("most calls at once: capped {capped_most}, uncapped {free_most}");
    assert_eq!(capped_most, 3, "the cap is reached and never passed");
    assert!(
        free_most > 3,
        "another project is not held to it: {free_most}"
    );
}

#[tokio::test]
async fn max_queued_runs_refuses_beyond_it_under_a_race_and_spares_what_was_accepted() {
    let mut app = spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .worker_metrics(),
    )
    .await;
    let (project, key) = app.create_project("queue").await;
    set_limits(&app, &project, json!({"max_queued_runs": 10})).await;

    let answers: Vec<(StatusCode, Option<u64>, Value)> = stream::iter(0..50)
        .map(|i| {
            let (app, key) = (&app, &key);
            async move { try_submit(app, key, json!({"message": format!("race {i}")})).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::ACCEPTED)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(accepted.len(), 10, "exactly the limit is accepted");
    for (status, retry_after, body) in answers.iter().filter(|(s, ..)| *s != StatusCode::ACCEPTED) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "too_many_queued_runs", "{body}");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        assert!(
            retry_after.is_some_and(|s| s >= 1),
            "Retry-After: {retry_after:?}"
        );
    }
    let queued: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM runs WHERE status = 'queued'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(queued, 10);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"stewrd_limit_refusals_total{reason="too_many_queued_runs",stage="submit"} 40"#
        ),
        "{metrics}"
    );

    // Those accepted all finish; then the queue takes runs again.
    app.start_worker();
    for body in &accepted {
        let session = body["session_id"].as_str().expect("id");
        assert_eq!(app.wait_final(&key, session).await["status"], "succeeded");
    }
    let (status, _, body) = try_submit(&app, &key, json!({"message": "after"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The seconds from now until `renews` (what a `Retry-After` should say).
fn seconds_until(renews: OffsetDateTime) -> i64 {
    (renews - OffsetDateTime::now_utc()).whole_seconds()
}

/// How the sessions' runs ended, by status; a failure must be `refusal`
/// (counted under its code) and have cost nothing.
pub async fn outcomes(
    app: &TestApp,
    key: &str,
    sessions: &[String],
    refusal: &str,
) -> HashMap<String, usize> {
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for session in sessions {
        let done = app.wait_final(key, session).await;
        let outcome = match done["status"].as_str() {
            Some("failed") => {
                assert_eq!(done["error"]["code"], refusal, "{done}");
                assert!(done["cost_usd"].is_null(), "no call, no cost: {done}");
                refusal.to_owned()
            }
            other => other.unwrap_or_default().to_owned(),
        };
        *by_status.entry(outcome).or_default() += 1;
    }
    by_status
}

#[tokio::test]
async fn token_budgets_are_reserved_so_concurrent_runs_never_spend_past_them() {
    let app = spawn_app_with(Options::default().worker_metrics()).await;
    let (project, key) = app.create_project("budget").await;
    // Twenty runs at once, each call up to 100 tokens (`max_tokens`) and
    // using all of them, against a budget of 500. Checked before each call
    // only (as it was), all twenty would run: 2,000 tokens. Reserved, a call
    // is made only while its worst case (prompt bytes + 100) fits beside the
    // others in flight, so the spend never passes 500.
    set_limits(&app, &project, json!({"tokens_per_day": 500})).await;
    app.stub.state.push(
        (0..20).map(|_| Reply::text("a hundred tokens", 100).delayed(Duration::from_millis(500))),
    );
    let mut sessions = Vec::new();
    for i in 0..20 {
        let accepted = app
            .submit(
                &key,
                json!({"message": format!("job {i}"), "max_tokens": 100}),
            )
            .await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    let by_status = outcomes(&app, &key, &sessions, "token_budget_exhausted").await;
    let (_, usage) = app
        .call(Method::GET, "/v1/project/usage", Some(&key), None)
        .await;
    let used = usage["data"][0]["total_tokens"].as_i64().expect("tokens");
    let succeeded = by_status.get("succeeded").copied().unwrap_or(0);
    println!(
        "used={used} of 500, succeeded={succeeded}, calls={}",
        app.stub.state.stats().calls
    );
    assert!(
        used <= 500,
        "the budget was overspent: {used} ({by_status:?})"
    );
    assert!(succeeded >= 2, "{by_status:?}");
    assert_eq!(i64::try_from(succeeded).unwrap_or(0) * 100, used);
    assert_eq!(
        app.stub.state.stats().calls,
        u64::try_from(succeeded).unwrap_or(0),
        "no call beyond the budget"
    );
    assert_eq!(
        by_status
            .get("token_budget_exhausted")
            .copied()
            .unwrap_or(0)
            + succeeded,
        20
    );
    // Every reservation was settled by the usage it reserved for (or by its
    // run's end): none is left to hold the budget.
    let left: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM runs WHERE reserved_tokens IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    app.stub.state.clear();
    // Used up: at the budget, a submit is refused (429) until the day ends (UTC).
    set_limits(&app, &project, json!({"tokens_per_day": used})).await;

    // A submit now is refused until the day ends (UTC).
    let (status, retry_after, body) = try_submit(&app, &key, json!({"message": "more"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "token_budget_exhausted", "{body}");
    let tomorrow = OffsetDateTime::now_utc().date().next_day().expect("a date");
    let expected = seconds_until(tomorrow.midnight().assume_utc());
    let retry_after = retry_after.expect("Retry-After") as i64;
    assert!(
        (retry_after - expected).abs() <= 5,
        "{retry_after} vs {expected}"
    );

    // A monthly budget says so until the month ends.
    set_limits(&app, &project, json!({"tokens_per_month": 150})).await;
    let (status, retry_after, body) = try_submit(&app, &key, json!({"message": "more"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let today = OffsetDateTime::now_utc().date();
    let next_month = match today.month() {
        time::Month::December => {
            time::Date::from_calendar_date(today.year() + 1, time::Month::January, 1)
        }
        month => time::Date::from_calendar_date(today.year(), month.next(), 1),
    }
    .expect("a date");
    let expected = seconds_until(next_month.midnight().assume_utc());
    let retry_after = retry_after.expect("Retry-After") as i64;
    assert!(
        (retry_after - expected).abs() <= 5,
        "{retry_after} vs {expected}"
    );

    // Lifting the budget lets the project go on.
    set_limits(&app, &project, json!({})).await;
    let accepted = app.submit(&key, json!({"message": "again"})).await;
    let session = accepted["session_id"].as_str().expect("id");
    assert_eq!(app.wait_final(&key, session).await["status"], "succeeded");

    let api_metrics = text(&app, &format!("{}/metrics", app.base)).await;
    assert!(
        api_metrics
            .contains(r#"stewrd_limit_refusals_total{reason="tokens_per_day",stage="submit"} 1"#),
        "{api_metrics}"
    );
    let worker_metrics = text(&app, &app.worker_metrics().await).await;
    // One refusal per run the budget could not hold.
    assert_eq!(
        crate::operator::sample(
            &worker_metrics,
            "stewrd_limit_refusals_total",
            &[r#"reason="tokens_per_day""#, r#"stage="claim""#]
        ),
        Some(by_status["token_budget_exhausted"] as f64),
        "{worker_metrics}"
    );
    assert!(
        worker_metrics.contains(r#"stewrd_tokens_total{type="prompt"}"#),
        "{worker_metrics}"
    );
}

#[tokio::test]
async fn an_agent_run_stops_at_the_step_after_its_budget_is_used_up() {
    let app = spawn_app_with(Options::default()).await;
    let (project, key) = app.create_project("agent-budget").await;
    set_limits(&app, &project, json!({"tokens_per_day": 400})).await;
    // The first model call asks for a tool and uses 360 tokens: what is left
    // cannot hold the second call's worst case (its prompt and max_tokens
    // 100), which is never made.
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "get_weather", "{}")], 360),
        Reply::text("never sent", 5),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "m", "tools": [tool("get_weather")], "max_tokens": 100}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id");
    let paused = wait_status(&app, &key, session, "requires_action").await;
    let run = paused["run_id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/tool_outputs"),
            Some(&key),
            Some(json!({"tool_outputs": [{"tool_call_id": "call_1", "output": "sunny"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body} {run}");
    let done = app.wait_final(&key, session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "token_budget_exhausted", "{done}");
    assert_eq!(
        app.stub.state.stats().calls,
        1,
        "the second step was not paid for"
    );
}

#[tokio::test]
async fn the_default_key_budget_caps_projects_without_a_key_of_their_own_only() {
    let app =
        spawn_app_with(Options::default().env("STEWRD_DEFAULT_KEY_TOKENS_PER_DAY", "100")).await;
    let (_, shared) = app.create_project("on-the-default-key").await;
    let (_, own) = app.create_project("with-its-own-key").await;
    own_key(&app, &own, "openai", "sk-own-key-of-the-project-03").await;
    // Each call's worst case (39 bytes of prompt + max_tokens 10) fits; the
    // provider reports 50 tokens each: two calls use the cap up.
    app.stub
        .state
        .push((0..5).map(|_| Reply::text("fifty tokens", 50)));
    for message in ["one", "two"] {
        let accepted = app
            .submit(&shared, json!({"message": message, "max_tokens": 10}))
            .await;
        let session = accepted["session_id"].as_str().expect("id");
        assert_eq!(
            app.wait_final(&shared, session).await["status"],
            "succeeded"
        );
    }
    let (status, retry_after, body) = try_submit(&app, &shared, json!({"message": "three"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "token_budget_exhausted", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("default provider key"),
        "{body}"
    );
    assert!(retry_after.is_some());
    for message in ["one", "two", "three"] {
        let accepted = app.submit(&own, json!({"message": message})).await;
        let session = accepted["session_id"].as_str().expect("id");
        assert_eq!(app.wait_final(&own, session).await["status"], "succeeded");
    }
}

/// The usage lines of a report, by their key (`date` or `model`).
async fn report(app: &TestApp, path: &str, token: &str) -> HashMap<String, Value> {
    let (status, body) = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|line| {
            let key = line["date"]
                .as_str()
                .or(line["model"].as_str())
                .expect("a key");
            (key.to_owned(), line.clone())
        })
        .collect()
}

#[tokio::test]
async fn usage_by_day_and_by_model_matches_the_runs_own_usage() {
    let app = spawn_app_with(Options::default()).await;
    let (project, key) = app.create_project("usage").await;
    own_key(&app, &key, "openrouter", "sk-or-usage-project-key-04").await;
    let (_, openai) = app.create_project("usage-openai").await;
    app.stub.state.set_tool_rounds(2);
    let mut sessions = Vec::new();
    for (message, model) in [
        ("one two three", "openai/gpt-4o-mini"),
        ("four five", "anthropic/claude-3.5-haiku"),
        ("six", "openai/gpt-4o-mini"),
    ] {
        let accepted = app
            .submit(&key, json!({"message": message, "model": model}))
            .await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    // An agent run: three model calls (two ask for the client's tool), all counted.
    let agent = app
        .submit(
            &key,
            json!({"message": "weather?", "model": "openai/gpt-4o-mini", "tools": [tool("get_weather")]}),
        )
        .await;
    let agent_session = agent["session_id"].as_str().expect("id").to_owned();
    for round in 0..2 {
        let paused = wait_status(&app, &key, &agent_session, "requires_action").await;
        let call = paused["required_action"]["tool_calls"][0]["id"]
            .as_str()
            .expect("a call")
            .to_owned();
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/sessions/{agent_session}/tool_outputs"),
                Some(&key),
                Some(json!({"tool_outputs": [{"tool_call_id": call, "output": format!("round {round}")}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    sessions.push(agent_session);

    let mut by_model: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
    for session in &sessions {
        let done = app.wait_final(&key, session).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let usage = &done["usage"];
        let line = by_model
            .entry(done["model"].as_str().expect("model").to_owned())
            .or_default();
        line.0 += 1;
        line.1 += usage["prompt_tokens"].as_i64().expect("tokens");
        line.2 += usage["completion_tokens"].as_i64().expect("tokens");
        line.3 += usage["total_tokens"].as_i64().expect("tokens");
    }
    let plain = app
        .submit(&openai, json!({"message": "no cost here"}))
        .await;
    app.wait_final(&openai, plain["session_id"].as_str().expect("id"))
        .await;

    let today = OffsetDateTime::now_utc().date().to_string();
    for path in [
        "/v1/project/usage?group_by=model".to_owned(),
        format!("/v1/admin/projects/{project}/usage?group_by=model&from={today}&to={today}"),
    ] {
        let token = if path.starts_with("/v1/admin") {
            ADMIN_TOKEN
        } else {
            key.as_str()
        };
        let lines = report(&app, &path, token).await;
        assert_eq!(lines.len(), by_model.len(), "{lines:?}");
        for (model, (runs, prompt, completion, total)) in &by_model {
            let line = &lines[model];
            assert_eq!(line["runs"], *runs, "{model}: {line}");
            assert_eq!(line["prompt_tokens"], *prompt, "{model}: {line}");
            assert_eq!(line["completion_tokens"], *completion, "{model}: {line}");
            assert_eq!(line["total_tokens"], *total, "{model}: {line}");
            let cost = line["cost_usd"]
                .as_f64()
                .expect("OpenRouter reports a cost");
            assert!(
                (cost - *total as f64 * STUB_USD_PER_TOKEN).abs() < 1e-9,
                "{line}"
            );
        }
    }
    let days = report(&app, "/v1/project/usage", &key).await;
    let day = &days[&today];
    let totals: i64 = by_model.values().map(|line| line.3).sum();
    assert_eq!(day["total_tokens"], totals, "{day}");
    assert_eq!(day["runs"], sessions.len(), "{day}");
    let openai_day = &report(&app, "/v1/project/usage", &openai).await[&today];
    assert_eq!(openai_day["runs"], 1);
    // OpenAI reports no cost: the tokens at gpt-4o-mini's list price.
    let expected = openai_day["prompt_tokens"].as_f64().expect("tokens") * 0.15e-6
        + openai_day["completion_tokens"].as_f64().expect("tokens") * 0.6e-6;
    let cost = openai_day["cost_usd"].as_f64().expect("a cost");
    assert!((cost - expected).abs() < 1e-12, "{openai_day}");

    for (query, param) in [
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("group_by=week", "group_by"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "from"),
        ("sort=asc", "sort"),
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/v1/project/usage?{query}"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
    let (status, _) = app
        .call(
            Method::GET,
            "/v1/admin/projects/00000000-0000-0000-0000-000000000000/usage",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = PATIENCE;
}

#[tokio::test]
async fn limits_are_checked_and_shown_in_the_project() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("limits").await;
    let all = json!({"requests_per_minute": 600, "max_concurrent_runs": 4, "max_queued_runs": 100,
                     "tokens_per_day": 100000, "tokens_per_month": 2000000,
                     "usd_per_day": 2.5, "usd_per_month": 40.0});
    set_limits(&app, &project, all.clone()).await;
    let (_, shown) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert_eq!(shown["limits"], all, "{shown}");
    assert_eq!(shown["rate_limit"]["requests_per_minute"], 600);
    for (body, param) in [
        (json!({"max_concurrent_runs": 0}), "max_concurrent_runs"),
        (json!({"max_queued_runs": -1}), "max_queued_runs"),
        (json!({"tokens_per_day": 1.5}), "tokens_per_day"),
        (json!({"usd_per_day": 0}), "usd_per_day"),
        (json!({"usd_per_month": -3.5}), "usd_per_month"),
        (
            json!({"tokens_per_month": 1_000_000_000_001_i64}),
            "tokens_per_month",
        ),
        (json!({"requests_per_minute": 0}), "requests_per_minute"),
        (json!({"tokens": 5}), "tokens"),
    ] {
        let (status, answer) = app
            .call(
                Method::PUT,
                &format!("/v1/admin/projects/{project}/limits"),
                Some(ADMIN_TOKEN),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
    }
    // A refused change changed nothing; an empty body removes every limit.
    let (_, shown) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert_eq!(shown["limits"], all);
    set_limits(&app, &project, json!({})).await;
    let (_, shown) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert!(
        shown["limits"]
            .as_object()
            .expect("limits")
            .values()
            .all(Value::is_null),
        "{shown}"
    );
}

/// Reservations of one project take turns: twelve made at the same instant
/// from twelve connections against room for two fit exactly two.
#[tokio::test]
async fn reservations_made_at_once_never_share_the_last_room() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("race").await;
    set_limits(&app, &project, json!({"tokens_per_day": 1000})).await;
    let mut runs = Vec::new();
    for i in 0..50 {
        let accepted = app.submit(&key, json!({"message": format!("r{i}")})).await;
        runs.push(accepted["run_id"].as_str().expect("run").to_owned());
    }
    // As if fifty workers held them (reservations are made under a lease).
    app.db()
        .await
        .execute(
            "UPDATE runs SET status = 'running', lease_owner = gen_random_uuid(),
                 lease_until = now() + interval '1 hour'
             WHERE project_id::text = $1",
            &[&project],
        )
        .await
        .expect("running");
    // Twelve connections at once (the suite shares Postgres's 100).
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(app.db().await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let attempts = clients.into_iter().zip(runs).map(|(client, run)| {
        let (start, project) = (start.clone(), project.clone());
        async move {
            let statement = client
                .prepare(
                    "SELECT stewrd_reserve_call($1::text::uuid, $2::text::uuid, 300, 100, \
                     'default', NULL, 'openai', 'gpt-4o-mini') AS refused",
                )
                .await
                .expect("prepared");
            start.wait().await;
            let row = client
                .query_one(&statement, &[&project, &run])
                .await
                .expect("reserved or refused");
            row.get::<_, Option<String>>(0)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let reserved = answers.iter().filter(|a| a.is_none()).count();
    let waiting = answers
        .iter()
        .filter(|a| a.as_deref() == Some("wait:day"))
        .count();
    assert_eq!((reserved, waiting), (2, 10), "{answers:?}");
}
