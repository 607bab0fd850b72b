//! Batched claims: one statement claims the runs of every message a worker has
//! at hand, and gives each message what a claim of its own would have.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use stewrd_shared::{
    db::{
        DbError,
        run::{Batch, Claim, claim_batch, claim_next},
    },
    domain::id::{ProjectId, RunId, WorkerId},
};

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    operator::{free_port, sample, text},
};

const LEASE: Duration = Duration::from_secs(30);

async fn submit_runs(app: &TestApp, key: &str, count: usize) -> Vec<RunId> {
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let accepted = app.submit(key, json!({"message": format!("m{i}")})).await;
        let id = accepted["run_id"].as_str().expect("run id");
        runs.push(id.parse().expect("uuid"));
    }
    runs
}

/// Each run's status and lease holder, and whether it still has an outbox row.
async fn rows(app: &TestApp, runs: &[RunId]) -> Vec<(String, Option<WorkerId>, bool)> {
    let db = app.db().await;
    let mut found = Vec::new();
    for id in runs {
        let row = db
            .query_one(
                "SELECT status, lease_owner, EXISTS (SELECT 1 FROM outbox WHERE run_id = $1)
                 FROM runs WHERE id = $1",
                &[id],
            )
            .await
            .expect("the run");
        found.push((row.get(0), row.get(1), row.get(2)));
    }
    found
}

fn claimed(batch: Batch) -> Vec<RunId> {
    match batch {
        Batch::Claimed { runs, unreadable } => {
            assert!(unreadable.is_empty(), "no row here is unreadable");
            runs.into_iter().map(|run| run.id).collect()
        }
        Batch::OneByOne => panic!("one project without a cap waits: the batch is set-based"),
    }
}

#[tokio::test]
async fn one_statement_claims_the_run_of_every_message_and_none_twice() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_runs(&app, &key, 6).await;
    // The last one waits out a retry's backoff: not due, not claimed.
    let later = runs[5];
    app.db()
        .await
        .execute(
            "UPDATE runs SET due_at = now() + interval '1 hour' WHERE id = $1",
            &[&later],
        )
        .await
        .expect("backoff set");
    let pool = app.pool().get().await.expect("a connection");
    let worker = WorkerId::new();
    // A duplicate message is in the batch too.
    let mut hints = runs.clone();
    hints.push(runs[0]);
    let taken = claimed(
        claim_batch(&pool, worker, LEASE, &hints)
            .await
            .expect("claim"),
    );
    let want: BTreeSet<RunId> = runs[..5].iter().copied().collect();
    assert_eq!(taken.len(), 5, "each run once, the duplicate is a spare");
    assert_eq!(taken.iter().copied().collect::<BTreeSet<_>>(), want);

    let owner = Some(worker);
    let after = rows(&app, &runs).await;
    for (status, holder, in_outbox) in &after[..5] {
        assert_eq!(status, "running");
        assert_eq!(*holder, owner, "leased to the claiming worker");
        assert!(!in_outbox, "a claimed run has no outbox row");
    }
    assert_eq!(after[5], ("queued".to_owned(), None, true), "not due yet");

    // The same messages again (a redelivery) claim nothing and take no lease.
    let again = claimed(
        claim_batch(&pool, WorkerId::new(), LEASE, &hints)
            .await
            .expect("claim"),
    );
    assert!(again.is_empty(), "claimed twice: {again:?}");
    assert_eq!(rows(&app, &runs).await, after);
}

#[tokio::test]
async fn a_batch_is_claimed_one_by_one_when_the_project_is_capped_or_two_projects_wait() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("capped").await;
    let capped = submit_runs(&app, &key, 2).await;
    let project_id: ProjectId = project.parse().expect("project id");
    let db = app.db().await;
    db.execute(
        "UPDATE projects SET max_concurrent_runs = 1 WHERE id = $1",
        &[&project_id],
    )
    .await
    .expect("capped");
    let pool = app.pool().get().await.expect("a connection");
    let batch = claim_batch(&pool, WorkerId::new(), LEASE, &capped)
        .await
        .expect("claim");
    assert!(
        matches!(batch, Batch::OneByOne),
        "a capped project's runs are counted one claim at a time: {batch:?}"
    );

    db.execute(
        "UPDATE projects SET max_concurrent_runs = NULL WHERE id = $1",
        &[&project_id],
    )
    .await
    .expect("uncapped");
    let (_, other_key) = app.create_project("other").await;
    let other = submit_runs(&app, &other_key, 1).await;
    let batch = claim_batch(&pool, WorkerId::new(), LEASE, &[capped[0], other[0]])
        .await
        .expect("claim");
    assert!(
        matches!(batch, Batch::OneByOne),
        "two projects wait: the fair claim ranks them: {batch:?}"
    );
    let statuses: Vec<String> = rows(&app, &[capped[0], capped[1], other[0]])
        .await
        .into_iter()
        .map(|(status, _, _)| status)
        .collect();
    assert_eq!(statuses, ["queued", "queued", "queued"], "nothing claimed");
}

/// Returns once a claim in the test's database waits for a lock (the project's).
async fn a_claim_waits_for_a_lock(db: &tokio_postgres::Client) {
    wait_for(PATIENCE, || async {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%stewrd_claim_next%'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        (waiting > 0).then_some(())
    })
    .await
    .expect("the second claim waits for the project's lock");
}

/// Two copies of one capped run's message (a freed place can wake a run twice,
/// see migration 0011) claimed at the same time: the second waits for the
/// project's lock, finds its run taken, and must fill the free place with the
/// project's next run, or that place stays empty until another run ends.
#[tokio::test]
async fn a_copy_claimed_while_its_run_was_taken_fills_a_capped_projects_next_place() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("capped").await;
    let project_id: ProjectId = project.parse().expect("project id");
    let runs = submit_runs(&app, &key, 2).await;
    let db = app.db().await;
    db.execute(
        "UPDATE projects SET max_concurrent_runs = 2 WHERE id = $1",
        &[&project_id],
    )
    .await
    .expect("capped");
    // The first copy's claim has taken the run and holds the project's lock.
    let mut first = app.db().await;
    let claiming = first.transaction().await.expect("a transaction");
    let taken: RunId = claiming
        .query_one(
            "SELECT id FROM stewrd_claim_next($1, 30, $2)",
            &[&WorkerId::new(), &runs[0]],
        )
        .await
        .expect("the first claim")
        .get(0);
    assert_eq!(taken, runs[0]);
    let pool = app.pool().get().await.expect("a connection");
    let second = claim_next(&pool, WorkerId::new(), LEASE, Some(runs[0]));
    let commit_once_waited_for = async {
        // The second copy read its run as queued and waits for the lock.
        a_claim_waits_for_a_lock(&db).await;
        claiming.commit().await.expect("the first claim commits");
    };
    let (second, ()) = tokio::join!(second, commit_once_waited_for);
    match second.expect("claim") {
        Claim::Claimed(run) => assert_eq!(run.id, runs[1], "the copy claims the next run"),
        other => panic!("the copy must fill the free place: {other:?}"),
    }
}

/// Two places freed together can both wake one run, when the relay has
/// published the first wake-up and pushed the run's outbox row back before the
/// second looked (see migration 0011). If that run is claimed before the second
/// wake-up is published, the wake-up must pass to the project's next waiting
/// run, not go with the claimed run's outbox row: that place would stay empty.
#[tokio::test]
async fn a_wake_up_owed_to_a_run_claimed_meanwhile_passes_to_the_next_waiting_run() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("capped").await;
    let project_id: ProjectId = project.parse().expect("project id");
    let runs = submit_runs(&app, &key, 3).await;
    let mut db = app.db().await;
    db.execute(
        "UPDATE projects SET max_concurrent_runs = 2 WHERE id = $1",
        &[&project_id],
    )
    .await
    .expect("capped");
    // In one transaction, so the relay publishes nothing meanwhile: every
    // message went out (outbox rows in the future), then the first run was
    // woken again and is claimed before that wake-up is published.
    let claiming = db.transaction().await.expect("a transaction");
    claiming
        .execute(
            "UPDATE outbox SET available_at = now() + interval '1 hour' WHERE run_id = ANY($1)",
            &[&runs],
        )
        .await
        .expect("published");
    claiming
        .execute(
            "UPDATE outbox SET available_at = '-infinity' WHERE run_id = $1",
            &[&runs[0]],
        )
        .await
        .expect("woken again");
    let taken: RunId = claiming
        .query_one(
            "SELECT id FROM stewrd_claim_next($1, 30, $2)",
            &[&WorkerId::new(), &runs[0]],
        )
        .await
        .expect("the claim")
        .get(0);
    assert_eq!(taken, runs[0]);
    let woken: Vec<RunId> = claiming
        .query(
            "SELECT run_id FROM outbox WHERE available_at = '-infinity'",
            &[],
        )
        .await
        .expect("outbox")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(woken, [runs[1]], "the next waiting run is woken");
    claiming.rollback().await.expect("rolled back");
}

/// A claim can take a run whose submit committed while the claim ran (here:
/// while it waited for a capped project's lock). Its statement's joins, as of
/// its start, cannot see that run's session; the claim used to fail to read
/// the run it had taken, which then stayed claimed by nobody until its lease
/// ran out.
#[tokio::test]
async fn a_run_whose_submit_commits_during_its_claim_is_claimed_and_read() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (project, key) = app.create_project("capped").await;
    let project_id: ProjectId = project.parse().expect("project id");
    let first_run = submit_runs(&app, &key, 1).await[0];
    let db = app.db().await;
    db.execute(
        "UPDATE projects SET max_concurrent_runs = 2 WHERE id = $1",
        &[&project_id],
    )
    .await
    .expect("capped");
    // A submit has begun (a copy of the first run in a session of its own)
    // and not committed yet.
    let mut submitter = app.db().await;
    let submit = submitter.transaction().await.expect("a transaction");
    let late: RunId = submit
        .query_one(
            "WITH s AS (
                 INSERT INTO sessions
                 SELECT (jsonb_populate_record(s, jsonb_build_object(
                     'id', gen_random_uuid(), 'metadata', '{\"k\": \"v\"}'::jsonb))).*
                 FROM sessions s WHERE id = (SELECT session_id FROM runs WHERE id = $1)
                 RETURNING id
             )
             INSERT INTO runs
             SELECT (jsonb_populate_record(r, jsonb_build_object(
                 'id', gen_random_uuid(), 'session_id', (SELECT id FROM s),
                 'created_at', now(), 'due_at', now()))).*
             FROM runs r WHERE id = $1
             RETURNING id",
            &[&first_run],
        )
        .await
        .expect("the late run")
        .get(0);
    // The first claim has taken the first run and holds the project's lock.
    let mut first = app.db().await;
    let claiming = first.transaction().await.expect("a transaction");
    claiming
        .query_one(
            "SELECT id FROM stewrd_claim_next($1, 30, $2)",
            &[&WorkerId::new(), &first_run],
        )
        .await
        .expect("the first claim");
    let pool = app.pool().get().await.expect("a connection");
    let worker = WorkerId::new();
    let second = claim_next(&pool, worker, LEASE, Some(first_run));
    let commit_while_it_waits = async {
        a_claim_waits_for_a_lock(&db).await;
        submit.commit().await.expect("the submit commits");
        claiming.commit().await.expect("the first claim commits");
    };
    let (second, ()) = tokio::join!(second, commit_while_it_waits);
    match second.expect("the claim reads the run it took") {
        Claim::Claimed(run) => {
            assert_eq!(run.id, late);
            assert_eq!(
                run.request.session_metadata,
                json!({"k": "v"}),
                "its session is read"
            );
        }
        other => panic!("the late run must be claimed and read: {other:?}"),
    }
    assert_eq!(
        rows(&app, &[late]).await,
        [("running".to_owned(), Some(worker), false)]
    );
}

/// A value the client cannot convert is a data error: the caller gives up on
/// the row instead of waiting for an outage to end.
#[tokio::test]
async fn a_value_the_client_cannot_convert_is_not_an_outage() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let db = app.db().await;
    let row = db
        .query_one("SELECT NULL::int4 AS nothing, 'text' AS word", &[])
        .await
        .expect("a row");
    let refused = [
        row.try_get::<_, i32>("nothing").expect_err("a null"),
        row.try_get::<_, i32>("word").expect_err("a wrong type"),
        row.try_get::<_, i32>("absent").expect_err("no such column"),
    ];
    for error in refused {
        let error = DbError::from(error);
        assert!(matches!(error, DbError::Query(_)), "{error:?}");
    }
}

#[tokio::test]
async fn a_run_another_claim_holds_is_left_to_it_without_waiting() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_runs(&app, &key, 2).await;
    let held = runs[0];
    // Another claim has the first run's row locked and has not committed.
    let mut other = app.db().await;
    let claiming = other.transaction().await.expect("a transaction");
    claiming
        .execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&held])
        .await
        .expect("locked");
    let pool = app.pool().get().await.expect("a connection");
    let batch = tokio::time::timeout(
        Duration::from_secs(10),
        claim_batch(&pool, WorkerId::new(), LEASE, &runs),
    )
    .await
    .expect("a batch never waits for another claim's lock")
    .expect("claim");
    assert_eq!(claimed(batch), [runs[1]], "only the run nobody holds");
    claiming.rollback().await.expect("rolled back");
    // The other claim gave it up: its run is queued with a message due now,
    // since the batch's caller acks the message it came with.
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT r.status, o.available_at <= now()
             FROM runs r JOIN outbox o ON o.run_id = r.id WHERE r.id = $1",
            &[&held],
        )
        .await
        .expect("queued with an outbox row");
    assert_eq!(row.get::<_, String>(0), "queued");
    assert!(row.get::<_, bool>(1), "its outbox row is due at once");
}

#[tokio::test]
async fn a_worker_claims_a_backlog_in_batches_and_runs_each_once() {
    let port = free_port();
    let mut app = spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .env("STEWRD_METRICS_LISTEN", &format!("127.0.0.1:{port}")),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_runs(&app, &key, 120).await;
    app.start_worker();
    let db = app.db().await;
    let done = wait_for(PATIENCE, || async {
        let row = db
            .query_one("SELECT count(*) FROM runs WHERE status = 'succeeded'", &[])
            .await
            .ok()?;
        (row.get::<_, i64>(0) == runs.len() as i64).then_some(())
    })
    .await;
    assert!(done.is_some(), "every run succeeded");
    assert_eq!(
        app.stub.state.stats().calls,
        runs.len() as u64,
        "one model call per run"
    );
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let body = text(&app, &metrics).await;
    let batch = sample(&body, "stewrd_claims_total", &["statement=\"batch\""]).unwrap_or(0.0);
    let single = sample(&body, "stewrd_claims_total", &["statement=\"single\""]).unwrap_or(0.0);
    assert_eq!(batch + single, runs.len() as f64, "each run claimed once");
    assert!(
        batch >= runs.len() as f64 / 2.0,
        "most of a waiting backlog is claimed in batches: {batch} of {}",
        runs.len()
    );
}
