//! Result commits, coalesced: runs finishing together share one transaction,
//! and a result that cannot be stored does not hold back the others.

use reqwest::Method;
use serde_json::json;
use stewrd_shared::domain::id::RunId;

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for, wait_succeeded},
    operator::{sample, text},
};

async fn backlog(app: &TestApp, key: &str, count: usize) -> Vec<String> {
    let mut sessions = Vec::with_capacity(count);
    for i in 0..count {
        let accepted = app.submit(key, json!({"message": format!("m{i}")})).await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    sessions
}

/// Each result takes Postgres 10 ms longer to store (a slower database), so
/// results pile up while commits are in flight, however loaded the machine.
async fn slow_results(db: &tokio_postgres::Client) {
    db.batch_execute(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE UPDATE ON runs FOR EACH ROW
         WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION slow();",
    )
    .await
    .expect("trigger");
}

async fn metrics_app() -> TestApp {
    spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .worker_metrics(),
    )
    .await
}

#[tokio::test]
async fn runs_finishing_together_share_commits_and_each_result_is_stored_once() {
    let mut app = metrics_app().await;
    let (_, key) = app.create_project("acme").await;
    slow_results(&app.db().await).await;
    let sessions = backlog(&app, &key, 120).await;
    app.start_worker();
    for session in &sessions {
        let done = app.wait_final(&key, session).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(
            done["output"]
                .as_str()
                .is_some_and(|o| o.starts_with("Echo")),
            "{done}"
        );
    }
    assert_eq!(app.stub.state.stats().calls, 120, "one model call per run");
    let body = text(&app, &app.worker_metrics().await).await;
    let finished = sample(&body, "stewrd_runs_finished_total", &["succeeded"]).unwrap_or(0.0);
    let commits = sample(&body, "stewrd_commits_total", &["write=\"result\""]).unwrap_or(0.0);
    assert_eq!(finished, 120.0, "each result stored and counted once");
    assert!(
        commits > 0.0 && commits < finished,
        "results of a backlog share commits: {commits} commits for {finished} results"
    );
}

/// While results are flowing, a result commit waits up to
/// `STEWRD_RESULT_HOLD_MS` for others: the second run's result, held, shares
/// its commit with the third's, which is only submitted once the second's
/// model call has been answered (without the hold the second commits alone
/// first). A result after a quiet spell has no company coming and commits at
/// once, the first one and one after a pause longer than the hold: each run
/// finishes before a hold would have ended.
#[tokio::test]
async fn a_result_waits_for_company_only_while_results_are_flowing() {
    let hold = std::time::Duration::from_secs(1); // the most allowed
    let app = spawn_app_with(
        Options::default()
            .worker_metrics()
            .env("STEWRD_RESULT_HOLD_MS", &hold.as_millis().to_string())
            // Each run claimed on its own, so results come apart.
            .env("STEWRD_CLAIM_HOLD_MS", "0"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let db = app.db().await;
    let calls = |count: u64| {
        let app = &app;
        wait_for(PATIENCE, move || async move {
            (app.stub.state.stats().calls >= count).then_some(())
        })
    };
    let not_held = |accepted: serde_json::Value| {
        let db = &db;
        async move {
            let waited: f64 = db
                .query_one(
                    "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM runs
                     WHERE session_id = $1::text::uuid",
                    &[&accepted["session_id"].as_str().expect("session id")],
                )
                .await
                .expect("the run's times")
                .get(0);
            assert!(
                waited < hold.as_secs_f64(),
                "a result after a quiet spell commits at once, not held: \
                 {waited:.3} s from claim to stored"
            );
        }
    };
    let first = app.submit(&key, json!({"message": "alone"})).await;
    assert!(wait_succeeded(&db, 1).await, "the first run succeeded");
    not_held(first).await;
    app.submit(&key, json!({"message": "second"})).await;
    assert!(calls(2).await.is_some(), "the second run's call answered");
    app.submit(&key, json!({"message": "third"})).await;
    assert!(wait_succeeded(&db, 3).await, "the two runs succeeded");
    // A quiet spell longer than the hold (the behaviour is about time: this
    // pause is what is tested, not a wait for something to happen).
    tokio::time::sleep(hold + std::time::Duration::from_millis(500)).await;
    let last = app.submit(&key, json!({"message": "after a pause"})).await;
    assert!(wait_succeeded(&db, 4).await, "the last run succeeded");
    not_held(last).await;
    let body = text(&app, &app.worker_metrics().await).await;
    let commits = sample(&body, "stewrd_commits_total", &["write=\"result\""]).unwrap_or(0.0);
    assert_eq!(
        commits, 3.0,
        "the first and the last result committed alone, the second and third in one commit"
    );
}

#[tokio::test]
async fn results_postgres_refuses_do_not_hold_back_the_others_in_their_commit() {
    let mut app = metrics_app().await;
    let (_, key) = app.create_project("acme").await;
    // Postgres refuses the results of the runs whose message ends in 7.
    let db = app.db().await;
    slow_results(&db).await;
    db.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused'; END $$;
         CREATE TRIGGER refuse BEFORE UPDATE ON runs FOR EACH ROW
         WHEN (NEW.status = 'succeeded' AND NEW.input LIKE '%7') EXECUTE FUNCTION refuse();",
    )
    .await
    .expect("trigger");
    backlog(&app, &key, 100).await;
    app.start_worker();
    // The others stored; the refused ones claimed, refused, and left to their
    // leases (not stored, not lost).
    let counts = "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                         count(*) FILTER (WHERE status = 'running' AND input LIKE '%7')
                  FROM runs";
    let settled = wait_for(PATIENCE, || async {
        let row = db.query_one(counts, &[]).await.ok()?;
        let seen = (row.get::<_, i64>(0), row.get::<_, i64>(1));
        (seen == (90, 10)).then_some(())
    })
    .await;
    assert!(settled.is_some(), "the other 90 results were stored");
    assert!(
        app.all_logs()
            .contains("a shared commit failed; writing one by one"),
        "a refused result was in a shared commit"
    );
}

#[tokio::test]
async fn concurrent_submits_share_commits_and_each_answer_is_a_stored_run() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let answers = futures_util::future::join_all(
        (0..200).map(|i| app.submit(&key, json!({"message": format!("m{i}")}))),
    )
    .await;
    let db = app.db().await;
    for answer in &answers {
        let run: RunId = answer["run_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let stored = db
            .query_one(
                "SELECT count(*) FROM runs r JOIN outbox o ON o.run_id = r.id
                 WHERE r.id = $1 AND r.status = 'queued'",
                &[&run],
            )
            .await
            .expect("count");
        assert_eq!(
            stored.get::<_, i64>(0),
            1,
            "a 202 names a stored, queued run"
        );
    }
    let (_, _, body) = app.call_raw(Method::GET, "/metrics", None, None).await;
    let commits = sample(&body, "stewrd_commits_total", &["write=\"submit\""]).unwrap_or(0.0);
    assert!(
        commits > 0.0 && commits < 200.0,
        "concurrent submits share commits: {commits} commits for 200"
    );
}
