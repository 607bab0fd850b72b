//! Result commits, coalesced: runs finishing together share one transaction,
//! and a result that cannot be stored does not hold back the others.

use serde_json::json;

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    operator::{free_port, sample, text},
};

async fn backlog(app: &TestApp, key: &str, count: usize) -> Vec<String> {
    let mut sessions = Vec::with_capacity(count);
    for i in 0..count {
        let accepted = app.submit(key, json!({"message": format!("m{i}")})).await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    sessions
}

async fn metrics_app() -> (TestApp, String) {
    let port = free_port();
    let app = spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .env("STEWRD_METRICS_LISTEN", &format!("127.0.0.1:{port}")),
    )
    .await;
    (app, format!("http://127.0.0.1:{port}/metrics"))
}

#[tokio::test]
async fn runs_finishing_together_share_commits_and_each_result_is_stored_once() {
    let (mut app, metrics) = metrics_app().await;
    let (_, key) = app.create_project("acme").await;
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
    let body = text(&app, &metrics).await;
    let finished = sample(&body, "stewrd_runs_finished_total", &["succeeded"]).unwrap_or(0.0);
    let commits = sample(&body, "stewrd_result_commits_total", &[]).unwrap_or(0.0);
    assert_eq!(finished, 120.0, "each result stored and counted once");
    assert!(
        commits > 0.0 && commits < finished,
        "results of a backlog share commits: {commits} commits for {finished} results"
    );
}

#[tokio::test]
async fn results_postgres_refuses_do_not_hold_back_the_others_in_their_commit() {
    let (mut app, metrics) = metrics_app().await;
    let (_, key) = app.create_project("acme").await;
    // Postgres refuses the results of the runs whose message ends in 7.
    let db = app.db().await;
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
    let stored = wait_for(PATIENCE, || async {
        let row = db
            .query_one("SELECT count(*) FROM runs WHERE status = 'succeeded'", &[])
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 90).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the other 90 results were stored");
    let body = text(&app, &metrics).await;
    let commits = sample(&body, "stewrd_result_commits_total", &[]).unwrap_or(0.0);
    assert!(commits < 90.0, "the others still shared commits: {commits}");
    let refused = db
        .query_one(
            "SELECT count(*) FROM runs WHERE input LIKE '%7' AND status = 'running'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(
        refused.get::<_, i64>(0),
        10,
        "a refused result is not stored; its run waits for its lease"
    );
}
