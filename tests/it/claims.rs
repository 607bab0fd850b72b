//! Batched claims: one statement claims the runs of every message a worker has
//! at hand, and gives each message what a claim of its own would have.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use stewrd_shared::{
    db::{
        DbError, outbox,
        run::{Batch, Claim, claim_batch, claim_next, claim_room},
    },
    domain::id::{ProjectId, RunId, WorkerId},
    queue::JobMessage,
};

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for, wait_succeeded},
    operator::{sample, text},
};

const LEASE: Duration = Duration::from_secs(30);
/// A project's claim lock (`stewrd_claim_next`'s advisory lock), held or freed
/// by a test with the project's id as `$1`.
const CLAIM_LOCK: &str = "SELECT pg_advisory_lock(1937006964, hashtext($1::uuid::text))";
const CLAIM_UNLOCK: &str = "SELECT pg_advisory_unlock(1937006964, hashtext($1::uuid::text))";

/// An app whose claims the test makes itself: no worker takes its runs.
async fn app_without_workers() -> TestApp {
    spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await
}

/// Starts a worker whose lock waits end after 2 s, so a claim meeting a lock
/// the test holds fails instead of waiting.
fn start_worker_with_short_lock_waits(app: &mut TestApp) {
    let url = format!("{}?options=-c%20lock_timeout%3D2s", app.db_url);
    app.env.insert("DATABASE_URL".to_owned(), url);
    app.start_worker();
}

/// Waits until `run`'s outbox row has been published once.
async fn published_once(db: &tokio_postgres::Client, run: RunId) -> bool {
    wait_for(PATIENCE, || async {
        let publishes: i32 = db
            .query_one("SELECT publishes FROM outbox WHERE run_id = $1", &[&run])
            .await
            .expect("an outbox row")
            .get(0);
        (publishes == 1).then_some(())
    })
    .await
    .is_some()
}

/// How many of `runs` have succeeded.
async fn count_succeeded(app: &TestApp, runs: &[RunId]) -> usize {
    let statuses = rows(app, runs).await;
    statuses
        .iter()
        .filter(|(status, ..)| status == "succeeded")
        .count()
}

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
    let app = app_without_workers().await;
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
async fn a_batch_is_claimed_one_by_one_when_a_project_is_capped() {
    let app = app_without_workers().await;
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

    // Beside another project, the capped one is still counted claim by claim.
    let (_, other_key) = app.create_project("other").await;
    let other = submit_runs(&app, &other_key, 1).await;
    let batch = claim_batch(&pool, WorkerId::new(), LEASE, &[other[0]])
        .await
        .expect("claim");
    assert!(
        matches!(batch, Batch::OneByOne),
        "a capped project is ranked: {batch:?}"
    );
    let statuses: Vec<String> = rows(&app, &[capped[0], capped[1], other[0]])
        .await
        .into_iter()
        .map(|(status, _, _)| status)
        .collect();
    assert_eq!(statuses, ["queued", "queued", "queued"], "nothing claimed");
}

/// Whether each run's outbox row is due now (its message is to be published).
async fn message_due(app: &TestApp, runs: &[RunId]) -> Vec<bool> {
    let db = app.db().await;
    let mut due = Vec::new();
    for id in runs {
        let row = db
            .query_one(
                "SELECT coalesce(bool_and(available_at <= now()), false)
                 FROM outbox WHERE run_id = $1",
                &[id],
            )
            .await
            .expect("the outbox");
        due.push(row.get(0));
    }
    due
}

/// An app without workers and project A with `runs` queued runs, the first
/// two claimed by the returned worker (A waits alone then: its own two).
async fn two_of_a_running(
    runs: usize,
) -> (TestApp, stewrd_shared::db::Client, WorkerId, Vec<RunId>) {
    let app = app_without_workers().await;
    let pool = app.pool().get().await.expect("a connection");
    let worker = WorkerId::new();
    let (_, key) = app.create_project("a").await;
    let a = submit_runs(&app, &key, runs).await;
    let running = claimed(
        claim_batch(&pool, worker, LEASE, &a[..2])
            .await
            .expect("claim"),
    );
    assert_eq!(running.len(), 2, "A alone: its own two");
    (app, pool, worker, a)
}

#[tokio::test]
async fn with_two_projects_waiting_one_statement_serves_the_one_with_fewer_running_first() {
    let (mut app, pool, worker, a) = two_of_a_running(6).await;
    // B: two queued and none running.
    let (_, b_key) = app.create_project("b").await;
    let b = submit_runs(&app, &b_key, 2).await;
    // The API's relay would take rows the claims make due before the checks
    // read them: the submits are done.
    app.api.kill();
    app.db()
        .await
        .execute(
            "UPDATE outbox SET available_at = now() + interval '5 minutes'
             WHERE run_id = ANY($1)",
            &[&[&a[2..], &b[..]].concat()],
        )
        .await
        .expect("every message published");

    // Two of A's messages: both claims go to B, which has none running, and
    // A's two runs get messages of their own again.
    let taken = claimed(
        claim_batch(&pool, worker, LEASE, &a[2..4])
            .await
            .expect("claim"),
    );
    assert_eq!(
        taken.iter().copied().collect::<BTreeSet<_>>(),
        b.iter().copied().collect::<BTreeSet<_>>(),
        "B first, in one statement"
    );
    let a_left = rows(&app, &a[2..]).await;
    assert!(
        a_left
            .iter()
            .all(|(status, _, in_outbox)| status == "queued" && *in_outbox),
        "A's runs still queued, each with its outbox row: {a_left:?}"
    );
    assert_eq!(
        message_due(&app, &a[2..]).await,
        [true, true, false, false],
        "the two hinted runs get a message now, the others keep theirs"
    );

    // Only A waits now: its hinted runs are its own claims, and B's messages,
    // whose runs run, are spares.
    let taken = claimed(
        claim_batch(&pool, worker, LEASE, &[a[2], a[3], b[0], b[1]])
            .await
            .expect("claim"),
    );
    assert_eq!(
        taken.iter().copied().collect::<BTreeSet<_>>(),
        a[2..4].iter().copied().collect::<BTreeSet<_>>(),
        "A's own hinted runs, nothing twice"
    );
}

#[tokio::test]
async fn a_project_whose_runs_are_not_due_is_passed_over_for_the_next_with_fewest_running() {
    let (app, pool, worker, a) = two_of_a_running(4).await;
    // B: none running and one run in a retry's backoff; C: none running and
    // three due.
    let (_, b_key) = app.create_project("b").await;
    let b = submit_runs(&app, &b_key, 1).await;
    let (_, c_key) = app.create_project("c").await;
    let c = submit_runs(&app, &c_key, 3).await;
    let db = app.db().await;
    db.execute(
        "UPDATE runs SET due_at = now() + interval '1 hour' WHERE id = $1",
        &[&b[0]],
    )
    .await
    .expect("backoff set");

    // B ranks first but has nothing due: its claim goes on to C, as one
    // claim at a time would, not back to A's own messages.
    let taken = claimed(
        claim_batch(&pool, worker, LEASE, &a[2..])
            .await
            .expect("claim"),
    );
    assert_eq!(
        taken.iter().copied().collect::<BTreeSet<_>>(),
        c[..2].iter().copied().collect::<BTreeSet<_>>(),
        "C's two oldest"
    );
    let left = rows(&app, &[a[2], a[3], b[0], c[2]]).await;
    assert!(
        left.iter()
            .all(|(status, _, in_outbox)| status == "queued" && *in_outbox),
        "the others still queued, each with its outbox row: {left:?}"
    );
}

/// Returns once a claim in the test's database waits for a lock (the
/// project's advisory lock). The claim's statement is matched by its start:
/// `pg_stat_activity` cuts a query's text at `track_activity_query_size`
/// (1 KiB), before the claim function's name.
async fn a_claim_waits_for_a_lock(db: &tokio_postgres::Client) {
    wait_for(PATIENCE, || async {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event = 'advisory'
                   AND query LIKE 'SELECT c.id, c.session_id,%'",
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

/// The project's free-place mark, if any: its generation and whether it is due.
async fn mark_of(db: &tokio_postgres::Client, project: ProjectId) -> Option<(i64, bool)> {
    db.query_opt(
        "SELECT generation, available_at <= now() FROM free_places WHERE project_id = $1",
        &[&project],
    )
    .await
    .expect("free_places")
    .map(|row| (row.get(0), row.get(1)))
}

/// A capped project with `queued` runs (workers off), capped at `cap`.
async fn capped_project(app: &TestApp, queued: usize, cap: i32) -> (ProjectId, Vec<RunId>) {
    let (project, key) = app.create_project("capped").await;
    let project: ProjectId = project.parse().expect("project id");
    let runs = submit_runs(app, &key, queued).await;
    app.db()
        .await
        .execute(
            "UPDATE projects SET max_concurrent_runs = $2 WHERE id = $1",
            &[&project, &cap],
        )
        .await
        .expect("capped");
    (project, runs)
}

/// Level-triggered wake-ups: a room claim fills a free place and leaves the
/// mark due for the next; the claim that finds the project full (or without
/// work) deletes it.
#[tokio::test]
async fn room_claims_fill_free_places_until_one_finds_the_project_full() {
    let mut app = app_without_workers().await;
    let (project, runs) = capped_project(&app, 3, 2).await;
    // The API's relay would take rows the claims make due before the checks
    // read them: the submits are done.
    app.api.kill();
    let db = app.db().await;
    db.execute("SELECT stewrd_mark_free_place($1)", &[&project])
        .await
        .expect("marked");
    let pool = app.pool().get().await.expect("a connection");
    for expected in &runs[..2] {
        match claim_room(&pool, WorkerId::new(), LEASE, project).await {
            Ok(Claim::Claimed(run)) => assert_eq!(run.id, *expected, "the oldest first"),
            other => panic!("a free place is filled: {other:?}"),
        }
        let (_, due) = mark_of(&db, project).await.expect("the mark stays");
        assert!(due, "due again: there may be more room");
    }
    assert!(matches!(
        claim_room(&pool, WorkerId::new(), LEASE, project).await,
        Ok(Claim::Nothing)
    ));
    assert_eq!(mark_of(&db, project).await, None, "full: the mark goes");
    assert!(matches!(
        claim_room(&pool, WorkerId::new(), LEASE, project).await,
        Ok(Claim::Nothing)
    ));
}

/// A place freed while a room claim found the project full keeps its mark:
/// the claim deletes only the generation it read.
#[tokio::test]
async fn a_place_freed_while_a_room_claim_finds_no_room_keeps_its_mark() {
    let mut app = app_without_workers().await;
    let (project, runs) = capped_project(&app, 2, 1).await;
    // The API's relay would take rows the claims make due before the checks
    // read them: the submits are done.
    app.api.kill();
    let pool = app.pool().get().await.expect("a connection");
    let db = app.db().await;
    db.execute("SELECT stewrd_mark_free_place($1)", &[&project])
        .await
        .expect("marked");
    let Ok(Claim::Claimed(running)) = claim_room(&pool, WorkerId::new(), LEASE, project).await
    else {
        panic!("the first place is filled");
    };
    assert_eq!(running.id, runs[0]);
    // The running run finishes, in a transaction not yet committed: its
    // trigger has bumped the mark's generation.
    let mut finishing = app.db().await;
    let finish = finishing.transaction().await.expect("a transaction");
    finish
        .execute(
            "UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1",
            &[&runs[0]],
        )
        .await
        .expect("finished");
    // A room claim meanwhile sees the place taken, and would delete the mark.
    let claim = claim_room(&pool, WorkerId::new(), LEASE, project);
    let commit_while_it_waits = async {
        assert!(
            lock_waiters_reach(&db, "stewrd_claim_room", 1).await,
            "the room claim waits for the mark's row"
        );
        finish.commit().await.expect("the run finishes");
    };
    let (claimed, ()) = tokio::join!(claim, commit_while_it_waits);
    assert!(matches!(claimed, Ok(Claim::Nothing)), "{claimed:?}");
    let (_, due) = mark_of(&db, project)
        .await
        .expect("the mark of the place freed meanwhile survives");
    assert!(due);
    match claim_room(&pool, WorkerId::new(), LEASE, project).await {
        Ok(Claim::Claimed(run)) => assert_eq!(run.id, runs[1], "the freed place is filled"),
        other => panic!("{other:?}"),
    }
}

/// A claim can take a run whose submit committed while the claim ran (here:
/// while it waited for a capped project's lock, then took the project's
/// oldest queued run). Its statement's joins, as of
/// its start, cannot see that run's session; the claim used to fail to read
/// the run it had taken, which then stayed claimed by nobody until its lease
/// ran out.
#[tokio::test]
async fn a_run_whose_submit_commits_during_its_claim_is_claimed_and_read() {
    let app = app_without_workers().await;
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
    // A claim for no run in particular waits for the project's lock, then
    // takes the project's oldest queued run: the late one.
    let second = claim_next(&pool, worker, LEASE, None);
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
    let app = app_without_workers().await;
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
    let app = app_without_workers().await;
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
/// Two projects' backlogs, B's queued behind A's: the batches serve B through
/// A's messages, and a run claimed in another message's place starts at once,
/// in its first attempt (not after its lease ran out, by the reaper).
async fn a_worker_claims_two_backlogs_in_batches_and_runs_each_once() {
    let mut app = spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .worker_metrics(),
    )
    .await;
    let (_, a) = app.create_project("a").await;
    let (_, b) = app.create_project("b").await;
    let mut runs = submit_runs(&app, &a, 100).await;
    runs.extend(submit_runs(&app, &b, 20).await);
    app.start_worker();
    let db = app.db().await;
    assert!(
        wait_succeeded(&db, runs.len() as i64).await,
        "every run succeeded"
    );
    let retried: i64 = db
        .query_one("SELECT count(*) FROM runs WHERE attempts <> 1", &[])
        .await
        .expect("attempts")
        .get(0);
    assert_eq!(retried, 0, "every run started by the claim that took it");
    assert_eq!(
        app.stub.state.stats().calls,
        runs.len() as u64,
        "one model call per run"
    );
    let metrics = app.worker_metrics().await;
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

/// While messages are flowing, a message that arrives alone waits up to
/// `STEWRD_CLAIM_HOLD_MS` for others: two runs submitted one after the other,
/// each answered before the next is sent, share one claim statement (without
/// the hold the first is claimed alone the moment it arrives). A message after
/// a quiet spell has no company coming and is claimed at once, the first one
/// and one sent after a pause longer than the hold: each starts before a hold
/// would have ended (held, it would start a whole hold after its submit).
#[tokio::test]
async fn a_message_waits_for_company_only_while_messages_are_flowing() {
    let hold = Duration::from_secs(1); // the most allowed
    let app = spawn_app_with(
        Options::default()
            .worker_metrics()
            .env("STEWRD_CLAIM_HOLD_MS", &hold.as_millis().to_string()),
    )
    .await;
    let (_, key) = app.create_project("p").await;
    let db = app.db().await;
    let not_held = |run: RunId| {
        let db = &db;
        async move {
            let waited: f64 = db
                .query_one(
                    "SELECT extract(epoch FROM started_at - created_at)::float8 FROM runs
                     WHERE id = $1",
                    &[&run],
                )
                .await
                .expect("the run's start")
                .get(0);
            assert!(
                waited < hold.as_secs_f64(),
                "a message after a quiet spell is claimed at once, not held: \
                 it started {waited:.3} s after its submit"
            );
        }
    };
    // The worker consumes before the first submit, so the first run's wait
    // is the claim's alone.
    let consuming = wait_for(PATIENCE, || async {
        app.all_logs().contains("consuming queue=").then_some(())
    })
    .await;
    assert!(consuming.is_some(), "the worker is consuming");
    let first = submit_runs(&app, &key, 1).await[0];
    assert!(wait_succeeded(&db, 1).await, "the first run succeeded");
    not_held(first).await;
    submit_runs(&app, &key, 2).await;
    assert!(wait_succeeded(&db, 3).await, "the two runs succeeded");
    // A quiet spell longer than the hold (the behaviour is about time: this
    // pause is what is tested, not a wait for something to happen).
    tokio::time::sleep(hold + Duration::from_millis(500)).await;
    let last = submit_runs(&app, &key, 1).await[0];
    assert!(wait_succeeded(&db, 4).await, "the last run succeeded");
    not_held(last).await;
    let body = text(&app, &app.worker_metrics().await).await;
    let batch = sample(&body, "stewrd_claims_total", &["statement=\"batch\""]).unwrap_or(0.0);
    let single = sample(&body, "stewrd_claims_total", &["statement=\"single\""]).unwrap_or(0.0);
    assert_eq!(
        (batch, single),
        (2.0, 2.0),
        "the first and the last run claimed alone, the two by one batch statement"
    );
}

/// While submits are flowing, the API holds a new run's message up to
/// `STEWRD_PUBLISH_HOLD_MS` for others to share its publish: the second and
/// third of three runs submitted back to back start no sooner than half a
/// hold after the second's submit (without the hold each is published the
/// moment it commits, and starts at once). A submit after a quiet spell has no company
/// coming and is published at once: the first of the three, and one sent
/// after a pause longer than the hold. The claim hold is off, so what is
/// measured is the publish's alone.
#[tokio::test]
async fn a_new_run_s_message_waits_for_company_only_while_submits_are_flowing() {
    let hold = Duration::from_secs(1); // the most allowed
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_PUBLISH_HOLD_MS", &hold.as_millis().to_string())
            .env("STEWRD_CLAIM_HOLD_MS", "0"),
    )
    .await;
    let (_, key) = app.create_project("p").await;
    let db = app.db().await;
    // How long after `since`'s submit `run` started.
    let waited = |run: RunId, since: RunId| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT extract(epoch FROM r.started_at - s.created_at)::float8
                 FROM runs r, runs s WHERE r.id = $1 AND s.id = $2",
                &[&run, &since],
            )
            .await
            .expect("the run's start")
            .get::<_, f64>(0)
        }
    };
    let consuming = wait_for(PATIENCE, || async {
        app.all_logs().contains("consuming queue=").then_some(())
    })
    .await;
    assert!(consuming.is_some(), "the worker is consuming");
    // Three back to back, each answered before the next is sent: the first
    // comes after a quiet spell, the other two while submits flow.
    let runs = submit_runs(&app, &key, 3).await;
    assert!(wait_succeeded(&db, 3).await, "the three runs succeeded");
    let first_waited = waited(runs[0], runs[0]).await;
    assert!(
        first_waited < hold.as_secs_f64() / 2.0,
        "a submit after a quiet spell is published at once, not held: \
         it started {first_waited:.3} s after its submit"
    );
    // Measured from the second's submit, which began the hold: the third's
    // own submit may come late on a loaded machine.
    for &run in &runs[1..] {
        let held = waited(run, runs[1]).await;
        assert!(
            held >= hold.as_secs_f64() / 2.0,
            "while submits flow a message waits for company: \
             one started {held:.3} s after the second's submit"
        );
    }
    // A quiet spell longer than the hold (the behaviour is about time: this
    // pause is what is tested, not a wait for something to happen).
    tokio::time::sleep(hold + Duration::from_millis(500)).await;
    let last = submit_runs(&app, &key, 1).await[0];
    assert!(wait_succeeded(&db, 4).await, "the last run succeeded");
    let last_waited = waited(last, last).await;
    assert!(
        last_waited < hold.as_secs_f64() / 2.0,
        "a submit after a pause longer than the hold is published at once: \
         it started {last_waited:.3} s after its submit"
    );
}

/// A worker has one result commit in flight, and a second once the first has
/// run long: a result whose commit waits on a lock (held here by the test)
/// does not hold back the results of other runs.
#[tokio::test]
async fn a_result_commit_that_waits_on_a_lock_does_not_hold_back_other_results() {
    let app = spawn_app_with(Options {
        stub_delay: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let (_, a) = app.create_project("a").await;
    let (_, b) = app.create_project("b").await;
    let db = app.db().await;
    let status = |run: RunId| {
        let db = &db;
        async move {
            let row = db
                .query_one("SELECT status FROM runs WHERE id = $1", &[&run])
                .await
                .ok()?;
            Some(row.get::<_, String>(0))
        }
    };
    let held = submit_runs(&app, &a, 1).await[0];
    let running = wait_for(PATIENCE, || async {
        (status(held).await? == "running").then_some(())
    })
    .await;
    assert!(running.is_some(), "the first run is running");
    // The first run's result will wait on this lock until the test commits.
    let mut locker = app.db().await;
    let lock = locker.transaction().await.expect("begin");
    lock.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&held])
        .await
        .expect("lock the first run");
    let other = submit_runs(&app, &b, 1).await[0];
    let done = wait_for(PATIENCE, || async {
        (status(other).await? == "succeeded").then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "another project's run succeeded while the first run's result waited"
    );
    assert_eq!(status(held).await.as_deref(), Some("running"), "still held");
    lock.commit().await.expect("release");
    let released = wait_for(PATIENCE, || async {
        (status(held).await? == "succeeded").then_some(())
    })
    .await;
    assert!(released.is_some(), "the first run succeeded once released");
}

/// Many projects waiting: a claim ranks a window of them (the message's
/// project and those after it, and the shared cursor's), not every one, so
/// what it reads does not grow with the number of waiting projects; and the
/// cursor brings every waiting project into some claim's window, so a flood
/// whose messages all come first hides nobody.
#[tokio::test]
async fn with_many_projects_waiting_a_claim_reads_a_window_and_the_cursor_hides_nobody() {
    let app = app_without_workers().await;
    // The flood: created first (the lowest project id), its runs queued first.
    let (_, flood_key) = app.create_project("flood").await;
    let flood = submit_runs(&app, &flood_key, 450).await;
    let mut others = Vec::new();
    for i in 0..250 {
        // Two runs each: a project served once still waits, and stays in
        // the windows that found it; only the cursor's moving shows the rest.
        let (project, key) = app.create_project(&format!("p{i}")).await;
        submit_runs(&app, &key, 2).await;
        others.push(project.parse::<ProjectId>().expect("project id"));
    }
    let db = app.db().await;
    // What one claim reads (EXPLAIN's buffers count the function's own
    // statements; the first claim on the connection warms its plans): with
    // 251 projects waiting, ranking them all read ~1,500.
    let claim = "SELECT project_id FROM stewrd_claim_next(gen_random_uuid(), 30, $1)";
    for hint in &flood[..2] {
        db.query_opt(claim, &[hint]).await.expect("claimed");
    }
    let buffers = buffers_read(&db, claim, &[&flood[2]]).await;
    println!("one claim with 251 projects waiting read {buffers} buffers");
    assert!(buffers < 800, "{buffers} buffers for one claim");
    // Every message names the flood's runs, in order (as its 450 messages,
    // queued first, would): the cursor brings every other project into the
    // claims' windows, and each is served in its turn.
    for hint in &flood[3..] {
        db.query_opt(claim, &[hint]).await.expect("claimed");
    }
    let served: BTreeSet<ProjectId> = db
        .query(
            "SELECT DISTINCT project_id FROM runs WHERE status = 'running'",
            &[],
        )
        .await
        .expect("served")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let hidden = others.iter().filter(|p| !served.contains(p)).count();
    assert_eq!(
        hidden, 0,
        "{hidden} of 250 projects never claimed in 447 claims"
    );
}

/// The shared buffers one statement reads (EXPLAIN's count includes what a
/// function it calls reads).
async fn buffers_read(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    let plan: serde_json::Value = db
        .query_one(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"),
            params,
        )
        .await
        .expect("explained")
        .get(0);
    let top = &plan[0]["Plan"];
    top["Shared Hit Blocks"].as_i64().unwrap_or(0) + top["Shared Read Blocks"].as_i64().unwrap_or(0)
}

/// Claims take each project's oldest run, and its index entry stays until a
/// vacuum. The list of waiting projects probes each project's first entry
/// in the queued runs' index: oldest first, that entry was a claimed run's,
/// and every probe walked through all the runs its project had claimed since
/// the last vacuum (`bench backlog`, 1,000 projects: 420 buffers per list of
/// 32, growing as the drain went on). Newest first, it lands on a queued run.
#[tokio::test]
async fn listing_waiting_projects_does_not_walk_the_runs_claimed_since_the_last_vacuum() {
    let app = app_without_workers().await;
    let mut keys = Vec::new();
    for i in 0..32 {
        keys.push(app.create_project(&format!("p{i}")).await.1);
    }
    // Submitted in turns, as a busy service's projects are: a project's
    // runs lie on different heap pages, as they do in a real backlog.
    for _ in 0..12 {
        for key in &keys {
            submit_runs(&app, key, 1).await;
        }
    }
    let db = app.db().await;
    let list = "SELECT stewrd_waiting_projects('00000000-0000-0000-0000-000000000000', 32)";
    // The first call on the connection plans; the second is the baseline.
    buffers_read(&db, list, &[]).await;
    let before = buffers_read(&db, list, &[]).await;
    // The ten oldest runs of every project claimed, as claims take them.
    let claimed = db
        .execute(
            "UPDATE runs SET status = 'running', attempts = attempts + 1,
                             lease_owner = gen_random_uuid(),
                             lease_until = now() + interval '30 seconds', started_at = now()
             WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (
                                              PARTITION BY project_id ORDER BY created_at) AS n
                                          FROM runs WHERE status = 'queued') oldest
                          WHERE n <= 10)",
            &[],
        )
        .await
        .expect("claimed");
    assert_eq!(claimed, 320);
    let after = buffers_read(&db, list, &[]).await;
    println!("listing 32 waiting projects read {before} buffers, then {after} after 320 claims");
    // Walking the claimed entries costs a heap page for each of them: 320.
    assert!(
        after <= before + 32,
        "{before} buffers, then {after} after 320 claims"
    );
}

/// A claim's statements find runs by key, and PL/pgSQL keeps their plans for
/// the connection's life. A batch's plan made while `runs` was small and not
/// yet analyzed (a new deployment, a worker started on an empty queue) read
/// the whole table, and kept reading it as the table grew, until the next
/// analyze (`auto_explain` in `bench latency`: `Seq Scan on runs` in the
/// batch's lock and update). The claim functions turn sequential scans off
/// for their own statements, so their plans use the indexes whatever the
/// table's size was when they were made.
#[tokio::test]
async fn a_claim_planned_while_runs_was_small_does_not_scan_it_once_it_is_large() {
    let app = app_without_workers().await;
    let (_, key) = app.create_project("acme").await;
    let queued = submit_runs(&app, &key, 1).await;
    let seed = app.db().await;
    let copies = |count: i32, output: usize| {
        format!(
            "CREATE TEMP TABLE copies AS
                 SELECT gen_random_uuid() AS run_id, gen_random_uuid() AS session_id
                 FROM generate_series(1, {count});
             INSERT INTO sessions
                 SELECT (jsonb_populate_record(s, jsonb_build_object(
                             'id', c.session_id, 'latest_run_id', c.run_id))).*
                 FROM sessions s, copies c
                 WHERE s.id = (SELECT session_id FROM runs WHERE id = '{run}');
             INSERT INTO runs
                 SELECT (jsonb_populate_record(r, jsonb_build_object(
                             'id', c.run_id, 'session_id', c.session_id,
                             'status', 'succeeded', 'output', repeat('x', {output}),
                             'finished_at', now()))).*
                 FROM runs r, copies c WHERE r.id = '{run}';
             DROP TABLE copies;",
            run = queued[0]
        )
    };
    // Finished runs, each with its session: a few hundred small ones when
    // the worker's plans are made, then thousands, four to a page.
    seed.batch_execute(&copies(300, 10))
        .await
        .expect("300 runs");
    // As autovacuum does soon after a start: statistics of the small table.
    seed.batch_execute("ANALYZE runs").await.expect("analyzed");
    let db = app.db().await;
    // The plans a busy worker ends with: generic ones, made now.
    db.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    // A full batch: 128 hints (none of them queued).
    let claim = "SELECT count(*) FROM stewrd_claim_batch(gen_random_uuid(), 30,
                     array_append(ARRAY(SELECT gen_random_uuid()
                                        FROM generate_series(1, 127)), $1::uuid))";
    let strangers = RunId::new();
    db.query_one(claim, &[&strangers]).await.expect("planned");
    seed.batch_execute(&copies(20_000, 1500))
        .await
        .expect("20,000 runs");
    let buffers = buffers_read(&db, claim, &[&strangers]).await;
    println!("a batch of 128 hints read {buffers} buffers with 20,301 runs");
    // An index probe per hint is about three buffers; a scan of `runs`
    // reads its 5,000 pages.
    assert!(
        buffers < 1_000,
        "{buffers} buffers for a batch of 128 hints"
    );
}

/// A message whose run is queued but cannot be claimed when it arrives (not
/// due yet: a run put back with a delay; or held by another transaction) is
/// acked all the same. The run's outbox row then falls due when the run can
/// be claimed, not at the relay's republish window (300 s and more), which
/// had left such a run queued for minutes with no message.
#[tokio::test]
async fn a_message_that_claims_nothing_leaves_its_run_a_message_when_it_can_be_claimed() {
    let app = app_without_workers().await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_runs(&app, &key, 3).await;
    let db = app.db().await;
    // As after a delayed put-back whose row the relay published: the run
    // is due in 60 s, its next publish five minutes out.
    db.execute(
        "UPDATE runs SET due_at = now() + interval '60 seconds' WHERE id = ANY($1)",
        &[&runs],
    )
    .await
    .expect("delayed");
    db.execute(
        "UPDATE outbox SET available_at = now() + interval '300 seconds' WHERE run_id = ANY($1)",
        &[&runs],
    )
    .await
    .expect("published");
    let due_with_the_run = "SELECT o.available_at <= r.due_at AND o.available_at > now()
                            FROM runs r JOIN outbox o ON o.run_id = r.id WHERE r.id = $1";
    // One message at a time (`stewrd_claim_next`)…
    let claimed = db
        .query(
            "SELECT id FROM stewrd_claim_next(gen_random_uuid(), 30, $1)",
            &[&runs[0]],
        )
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "a run not due is not claimed");
    let row = db
        .query_one(due_with_the_run, &[&runs[0]])
        .await
        .expect("an outbox row");
    assert!(row.get::<_, bool>(0), "its row falls due with the run");
    // …and a batch of them (`stewrd_claim_batch`).
    let pool = app.pool().get().await.expect("a connection");
    let batch = claim_batch(&pool, WorkerId::new(), LEASE, &runs[1..2])
        .await
        .expect("claim");
    assert!(claimed_or_none(batch).is_empty());
    let row = db
        .query_one(due_with_the_run, &[&runs[1]])
        .await
        .expect("an outbox row");
    assert!(row.get::<_, bool>(0), "its row falls due with the run");
    // Due, but held by another transaction: its row is due at once.
    db.execute("UPDATE runs SET due_at = now() WHERE id = $1", &[&runs[2]])
        .await
        .expect("due");
    let mut other = app.db().await;
    let holding = other.transaction().await.expect("a transaction");
    holding
        .execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&runs[2]])
        .await
        .expect("locked");
    let claimed = db
        .query(
            "SELECT id FROM stewrd_claim_next(gen_random_uuid(), 30, $1)",
            &[&runs[2]],
        )
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "a held run is left to its holder");
    holding.rollback().await.expect("rolled back");
    let due: bool = db
        .query_one(
            "SELECT available_at <= now() FROM outbox WHERE run_id = $1",
            &[&runs[2]],
        )
        .await
        .expect("an outbox row")
        .get(0);
    assert!(due, "a held run's row is due at once");
}

/// A batch that serves another project through a hint acks the hint's
/// message, so the hint's outbox row must fall due now. The relay may hold
/// that row at the moment, settling a confirmed publish five minutes out: the
/// claim waits for it and makes the row due after. It used to skip the row,
/// which left the run queued with no message for five minutes (the MCP
/// kill -9 test lost a run in 300 that way now and then).
#[tokio::test]
async fn a_hint_served_through_another_project_gets_a_message_even_while_the_relay_holds_its_row() {
    let (mut app, pool, worker, a) = two_of_a_running(3).await;
    let (_, b_key) = app.create_project("b").await;
    let b = submit_runs(&app, &b_key, 1).await;
    // The API's relay would take rows the claims make due before the checks
    // read them: the submits are done.
    app.api.kill();
    let db = app.db().await;
    db.execute(
        "UPDATE outbox SET available_at = now() + interval '5 minutes'
         WHERE run_id = ANY($1)",
        &[&[a[2], b[0]].as_slice()],
    )
    .await
    .expect("every message published");
    // The relay settles A's run: its row is locked until it commits.
    let mut relay = app.db().await;
    let settling = relay.transaction().await.expect("a transaction");
    settling
        .execute(
            "SELECT 1 FROM outbox WHERE run_id = $1 FOR UPDATE",
            &[&a[2]],
        )
        .await
        .expect("locked");
    let hint = a[2];
    let claim = tokio::spawn(async move { claim_batch(&pool, worker, LEASE, &[hint]).await });
    let waited = wait_for(PATIENCE, || async {
        (claim.is_finished() || lock_waiters(&db, "").await > 0).then_some(())
    })
    .await;
    assert!(waited.is_some(), "the claim neither ended nor waited");
    settling
        .execute(
            "UPDATE outbox SET available_at = now() + interval '5 minutes' WHERE run_id = $1",
            &[&a[2]],
        )
        .await
        .expect("settled");
    settling.commit().await.expect("committed");
    let taken = claimed(claim.await.expect("the claim's task").expect("claim"));
    assert_eq!(taken, [b[0]], "B, with none running, is served first");
    assert_eq!(
        message_due(&app, &a[2..]).await,
        [true],
        "A's run, its message acked, has its row due after the relay's"
    );
}

/// The relay's settle puts a fast-lane row off by the republish window only
/// while the row is still in its fast-lane window: a row a claim made due
/// after the settle began (its message acked, its run left queued) stays due.
/// The settle compared the row with its own start: here a transaction begun
/// before the claim, in production a statement that waited for the claim's
/// lock and checked the row again after.
#[tokio::test]
async fn a_row_made_due_while_the_relay_settles_stays_due() {
    let mut app = app_without_workers().await;
    let (_, key) = app.create_project("acme").await;
    let run = submit_runs(&app, &key, 1).await[0];
    let db = app.db().await;
    // The relay settles the fast-lane publish once; then the row is put
    // back in its fast-lane window, which nothing else will settle.
    assert!(
        published_once(&db, run).await,
        "the relay settles its fast-lane publish"
    );
    // From here the test plays the relay: the API's would take the row once
    // it is due, before the check reads it.
    app.api.kill();
    db.execute(
        "UPDATE outbox SET available_at = now() + interval '2 seconds', publishes = 0
         WHERE run_id = $1",
        &[&run],
    )
    .await
    .expect("in its fast-lane window");
    let mut relay = app.pool().get().await.expect("a connection");
    let settling = relay.transaction().await.expect("a transaction");
    settling.execute("SELECT now()", &[]).await.expect("begun");
    // A claim passes the run over and makes its row due: its message is gone.
    db.execute(
        "UPDATE outbox SET available_at = now() WHERE run_id = $1",
        &[&run],
    )
    .await
    .expect("due");
    let put_off = outbox::settle(&settling, &[run], Duration::from_secs(300))
        .await
        .expect("settle");
    settling.commit().await.expect("committed");
    assert_eq!(put_off, 0, "nothing put off");
    assert_eq!(message_due(&app, &[run]).await, [true], "the row stays due");
}

fn claimed_or_none(batch: Batch) -> Vec<RunId> {
    match batch {
        Batch::Claimed { runs, .. } => runs.into_iter().map(|run| run.id).collect(),
        Batch::OneByOne => Vec::new(),
    }
}

/// Backends of the test's database running `function` (or any statement,
/// for "") and waiting for a lock (a row's, or an advisory one).
async fn lock_waiters(db: &tokio_postgres::Client, function: &str) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'
           AND strpos(query, $1) > 0",
        &[&function],
    )
    .await
    .expect("activity")
    .get(0)
}

/// Whether `count` backends running `function` come to wait for a lock.
async fn lock_waiters_reach(db: &tokio_postgres::Client, function: &str, count: i64) -> bool {
    wait_for(PATIENCE, || async {
        (lock_waiters(db, function).await >= count).then_some(())
    })
    .await
    .is_some()
}

/// Sets runs' status as a worker's claim or result would: `running` with a
/// lease, or a final status.
async fn set_status(db: &tokio_postgres::Client, status: &str, runs: &[RunId]) {
    db.execute(
        "UPDATE runs SET status = $1, lease_owner = gen_random_uuid(),
                         lease_until = now() + interval '30 seconds', attempts = 1,
                         finished_at = CASE WHEN $1 = 'running' THEN NULL ELSE now() END
         WHERE id = ANY($2)",
        &[&status, &runs],
    )
    .await
    .expect("status set");
}

/// `stewrd_claim_next` for `hint` on a connection of its own, in a task: the
/// runs it claimed.
fn spawn_claim_next(
    app: &TestApp,
    hint: RunId,
) -> tokio::task::JoinHandle<Result<Vec<RunId>, tokio_postgres::Error>> {
    let url = app.db_url.clone();
    tokio::spawn(async move {
        let client = crate::helpers::connect_db(&url).await;
        let rows = client
            .query(
                "SELECT id FROM stewrd_claim_next($1, 30, $2)",
                &[&WorkerId::new(), &hint],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    })
}

/// Makes every delete of an outbox row wait, once done, until the hold is
/// opened (`HOLD_OPEN`), and puts every outbox row out of its window (each
/// message published). The hold is the test connection's advisory lock.
async fn close_a_hold_after_outbox_deletes(db: &tokio_postgres::Client) {
    db.batch_execute(
        "CREATE FUNCTION hold_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN OLD; END $$;
         CREATE TRIGGER hold AFTER DELETE ON outbox
         FOR EACH ROW EXECUTE FUNCTION hold_after_delete();
         UPDATE outbox SET available_at = now() + interval '5 minutes';
         SELECT pg_advisory_lock(4242);",
    )
    .await
    .expect("a hold after each outbox delete, closed");
}

const HOLD_OPEN: &str = "SELECT pg_advisory_unlock(4242)";

/// Two batched claims that hold crossed copies of two messages (each took the
/// run the other left) both end: they lock their outbox rows in one order,
/// so the second waits for the first. Each used to delete its own run's row
/// and then wait for the other's: a deadlock, which Postgres broke after a
/// second by failing one claim. A trigger holds each claim right after its
/// delete until both have got that far (or the second waits for the first).
#[tokio::test]
async fn two_claims_holding_crossed_messages_both_end_without_a_deadlock() {
    let app = app_without_workers().await;
    let (_, key) = app.create_project("acme").await;
    let runs = submit_runs(&app, &key, 2).await;
    let db = app.db().await;
    close_a_hold_after_outbox_deletes(&db).await;
    let mut claims = Vec::new();
    for (waiting, taken) in [(1, runs[0]), (2, runs[1])] {
        let client = app.db().await;
        let hints = runs.clone();
        claims.push(tokio::spawn(async move {
            client
                .query(
                    "SELECT id FROM stewrd_take_batch($1, $2, $3, $4, '{}')",
                    &[&WorkerId::new(), &30.0_f64, &hints, &[taken].as_slice()],
                )
                .await
                .map(|rows| rows.len())
        }));
        assert!(
            lock_waiters_reach(&db, "stewrd_take_batch", waiting).await,
            "claim {waiting} waits for the hold or a row"
        );
    }
    db.execute(HOLD_OPEN, &[]).await.expect("the hold open");
    for claim in claims {
        let taken = claim.await.expect("the claim's task");
        assert_eq!(taken.expect("no deadlock"), 1, "each claim takes its run");
    }
    for (status, owner, has_row) in rows(&app, &runs).await {
        assert_eq!(status, "running");
        assert!(owner.is_some(), "leased");
        assert!(!has_row, "its outbox row gone");
    }
}

/// The same for single claims: each serves the other's message (its run's
/// project had more running when the claim ranked the projects), so each
/// takes a run whose row the other must make due. Both end.
#[tokio::test]
async fn two_single_claims_each_serving_the_others_message_both_end_without_a_deadlock() {
    let app = app_without_workers().await;
    let (_, key_1) = app.create_project("one").await;
    let (_, key_2) = app.create_project("two").await;
    // Project two has a run running, so the first claim serves project one.
    let busy = submit_runs(&app, &key_2, 1).await[0];
    let pool = app.pool().get().await.expect("a connection");
    let Ok(Claim::Claimed(_)) = claim_next(&pool, WorkerId::new(), LEASE, Some(busy)).await else {
        panic!("project two's run is claimed");
    };
    let ones = submit_runs(&app, &key_1, 3).await;
    let two = submit_runs(&app, &key_2, 1).await[0];
    let db = app.db().await;
    close_a_hold_after_outbox_deletes(&db).await;
    // Two's message: project one has fewer running; its oldest run is taken.
    let first = spawn_claim_next(&app, two);
    assert!(
        lock_waiters_reach(&db, "stewrd_claim_next", 1).await,
        "the first claim waits for the hold"
    );
    // Meanwhile project two's running run ends and one's other two start.
    set_status(&db, "succeeded", &[busy]).await;
    set_status(&db, "running", &ones[1..]).await;
    // One's message (its run still queued, as far as this claim can see):
    // project two has fewer running now; its run is taken.
    let second = spawn_claim_next(&app, ones[0]);
    assert!(
        lock_waiters_reach(&db, "stewrd_claim_next", 2).await,
        "the second claim waits for the hold or a row"
    );
    db.execute(HOLD_OPEN, &[]).await.expect("the hold open");
    let first = first.await.expect("the first claim's task");
    let second = second.await.expect("the second claim's task");
    assert_eq!(first.expect("no deadlock"), [ones[0]], "one's oldest run");
    assert_eq!(second.expect("no deadlock"), [two], "two's run");
}

/// Two single claims ranking two capped projects the other way round both
/// end: a claim waits only for its first project's lock, and passes over a
/// later one another claim holds. Each used to wait for the second lock while
/// holding the first: a deadlock when both found their first project full.
#[tokio::test]
async fn two_claims_ranking_capped_projects_the_other_way_round_both_end() {
    let app = app_without_workers().await;
    let (one, one_runs) = capped_project(&app, 3, 2).await;
    let (two, two_runs) = capped_project(&app, 4, 2).await;
    let db = app.db().await;
    // Two has one running: the first claim ranks one first, then two.
    set_status(&db, "running", &two_runs[1..2]).await;
    let project_lock = "SELECT pg_advisory_lock(1937006964, hashtext(id::text))
                        FROM unnest($1::uuid[]) AS id";
    db.execute(project_lock, &[&[one, two].as_slice()])
        .await
        .expect("both projects' claims held");
    let first = spawn_claim_next(&app, one_runs[0]);
    assert!(
        lock_waiters_reach(&db, "stewrd_claim_next", 1).await,
        "the first claim waits for one's lock"
    );
    // Two's run ends and one's starts: the second claim ranks two first.
    set_status(&db, "succeeded", &two_runs[1..2]).await;
    set_status(&db, "running", &one_runs[1..2]).await;
    let second = spawn_claim_next(&app, two_runs[0]);
    assert!(
        lock_waiters_reach(&db, "stewrd_claim_next", 2).await,
        "the second claim waits for two's lock"
    );
    // Both full by the time each counts under its first lock.
    set_status(&db, "running", &[one_runs[2], two_runs[2], two_runs[3]]).await;
    db.execute("SELECT pg_advisory_unlock_all()", &[])
        .await
        .expect("the projects' claims free");
    for claim in [first, second] {
        let claimed = claim.await.expect("the claim's task").expect("no deadlock");
        assert!(claimed.is_empty(), "both projects are full: {claimed:?}");
    }
}

/// A claim that passes over a capped project because another claim holds its
/// lock, and claims nothing, gives its message back: the hint's outbox row
/// falls due now, so the run is offered again (that project may have room).
#[tokio::test]
async fn a_claim_that_passes_over_a_locked_project_gives_its_message_back() {
    let mut app = app_without_workers().await;
    let (one, one_runs) = capped_project(&app, 3, 2).await;
    let (two, two_runs) = capped_project(&app, 2, 2).await;
    // The API's relay would take rows the claims make due before the checks
    // read them: the submits are done.
    app.api.kill();
    let db = app.db().await;
    // Two has one running: the claim ranks one first, then two.
    set_status(&db, "running", &two_runs[1..]).await;
    db.execute(
        "UPDATE outbox SET available_at = now() + interval '5 minutes'",
        &[],
    )
    .await
    .expect("every message published");
    for project in [one, two] {
        db.execute(CLAIM_LOCK, &[&project]).await.expect("held");
    }
    let hint = one_runs[0];
    let claim = spawn_claim_next(&app, hint);
    assert!(
        lock_waiters_reach(&db, "stewrd_claim_next", 1).await,
        "the claim waits for one's lock"
    );
    // One fills up meanwhile; two's lock stays taken.
    set_status(&db, "running", &one_runs[1..]).await;
    db.execute(CLAIM_UNLOCK, &[&one])
        .await
        .expect("one's lock free");
    let claimed = tokio::time::timeout(PATIENCE, claim)
        .await
        .expect("the claim does not wait for a second lock")
        .expect("the claim's task")
        .expect("claim");
    assert!(claimed.is_empty(), "nothing claimed: {claimed:?}");
    assert_eq!(
        message_due(&app, &[hint]).await,
        [true],
        "the message comes back"
    );
}

/// A room claim that fails returns its message: redelivered, it fills the
/// free place as soon as claims work again, instead of leaving the place to
/// the relay's next publish of the mark (up to five minutes out). The first
/// tries fail on a lock timeout: the test holds the project's claim lock.
#[tokio::test]
async fn a_room_claim_that_fails_returns_its_message() {
    let mut app = app_without_workers().await;
    let (project, key) = app.create_project("capped").await;
    let project: ProjectId = project.parse().expect("project id");
    let accepted = app.submit(&key, json!({"message": "hi"})).await;
    let session = accepted["session_id"].as_str().expect("session id");
    let run: RunId = accepted["run_id"]
        .as_str()
        .expect("run id")
        .parse()
        .expect("uuid");
    let db = app.db().await;
    // The run's own message is gone and its row far out: only a room
    // message can start it.
    assert!(
        published_once(&db, run).await,
        "the API publishes the run's message"
    );
    app.purge_jobs().await;
    db.execute(
        "UPDATE outbox SET available_at = now() + interval '5 minutes'",
        &[],
    )
    .await
    .expect("the run's message gone");
    db.execute(
        "UPDATE projects SET max_concurrent_runs = 1 WHERE id = $1",
        &[&project],
    )
    .await
    .expect("capped");
    db.execute("SELECT stewrd_mark_free_place($1)", &[&project])
        .await
        .expect("marked");
    db.execute(CLAIM_LOCK, &[&project])
        .await
        .expect("the project's claims held");
    // The worker's lock waits are short: its room claim fails on the lock.
    start_worker_with_short_lock_waits(&mut app);
    // One room message, and no other: the mark's next publish is far out.
    let published = wait_for(PATIENCE, || async {
        let publishes: i32 = db
            .query_one("SELECT publishes FROM free_places", &[])
            .await
            .expect("the mark")
            .get(0);
        (publishes == 1).then_some(())
    })
    .await;
    assert!(published.is_some(), "the relay publishes the mark");
    db.execute(
        "UPDATE free_places SET available_at = now() + interval '5 minutes'",
        &[],
    )
    .await
    .expect("the mark put off");
    let failed = wait_for(PATIENCE, || async {
        app.workers[0]
            .log_text()
            .contains("error=database error (SQLSTATE 55P03)")
            .then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "the room claim fails:\n{}",
        app.all_logs()
    );
    db.execute(CLAIM_UNLOCK, &[&project])
        .await
        .expect("claims free");
    let session = app.wait_final(&key, session).await;
    assert_eq!(session["status"], "succeeded", "{session}");
}

/// A batch acked in one frame never settles an earlier message still being
/// claimed. The room message comes first and its claim waits on the project's
/// lock (held by the test) while the runs' messages after it are claimed and
/// acked; the room claim fails, its message is returned, and once the lock is
/// free it fills the place. Settled by a run's `multiple` ack instead, it
/// would be settled twice when its claim fails: RabbitMQ closes the channel
/// (406 unknown delivery tag) and the worker reconnects, again and again.
#[tokio::test]
async fn a_batch_acked_at_once_leaves_an_earlier_message_being_claimed_alone() {
    let mut app = app_without_workers().await;
    let (capped, capped_key) = app.create_project("capped").await;
    let capped: ProjectId = capped.parse().expect("project id");
    let accepted = app.submit(&capped_key, json!({"message": "hi"})).await;
    let session = accepted["session_id"].as_str().expect("session id");
    let (_, key) = app.create_project("busy").await;
    let runs = submit_runs(&app, &key, 4).await;
    let db = app.db().await;
    // Every message the API published is dropped and its row put far out:
    // only the messages the test publishes start these runs.
    let published = wait_for(PATIENCE, || async {
        let waiting: i64 = db
            .query_one("SELECT count(*) FROM outbox WHERE publishes = 0", &[])
            .await
            .expect("the outbox")
            .get(0);
        (waiting == 0).then_some(())
    })
    .await;
    assert!(published.is_some(), "the API publishes the runs' messages");
    app.purge_jobs().await;
    let put_off = [
        "UPDATE outbox SET available_at = now() + interval '5 minutes'",
        "UPDATE projects SET max_concurrent_runs = 1 WHERE name = 'capped'",
    ];
    for statement in put_off {
        db.execute(statement, &[]).await.expect("set up");
    }
    db.execute("SELECT stewrd_mark_free_place($1)", &[&capped])
        .await
        .expect("marked");
    db.execute(
        "UPDATE free_places SET available_at = now() + interval '5 minutes'",
        &[],
    )
    .await
    .expect("the mark put off");
    db.execute(CLAIM_LOCK, &[&capped])
        .await
        .expect("the project's claims held");
    // The room message has the lowest delivery tag; the runs' come after it.
    app.publish_job(&JobMessage::Room { project_id: capped }.to_bytes())
        .await;
    for &run_id in &runs {
        app.publish_job(&JobMessage::Run { run_id }.to_bytes())
            .await;
    }
    start_worker_with_short_lock_waits(&mut app);
    // A run after the room message is claimed and acked while the room's
    // claim cannot go on (the runs' claims may wait on the same lock too:
    // the capped project is owed the next place).
    let one = wait_for(PATIENCE, || async {
        (count_succeeded(&app, &runs).await > 0).then_some(())
    })
    .await;
    assert!(
        one.is_some(),
        "a run after the room message runs:\n{}",
        app.all_logs()
    );
    db.execute(CLAIM_UNLOCK, &[&capped])
        .await
        .expect("claims free");
    let session = app.wait_final(&capped_key, session).await;
    assert_eq!(session["status"], "succeeded", "{session}");
    let all = wait_for(PATIENCE, || async {
        (count_succeeded(&app, &runs).await == runs.len()).then_some(())
    })
    .await;
    assert!(all.is_some(), "every run runs:\n{}", app.all_logs());
    let logs = app.all_logs();
    assert!(
        !logs.contains("unknown delivery tag"),
        "a tag settled twice:\n{logs}"
    );
}

/// A relay draining a backlog settles every row it published in the last
/// second in one statement. Written with a `FOR UPDATE` subquery, that
/// statement rescanned the subquery for every row it updated: 4,000 rows took
/// 17 s, and a 100,000-run backlog's settle ran for hours (found by `bench
/// backlog`). 20,000 rows now settle in one pass, each with its window.
#[tokio::test]
async fn a_relay_settles_twenty_thousand_published_rows_in_one_pass() {
    let mut app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    // The API's relay would take the rows too.
    app.api.kill();
    let db = app.db().await;
    // Rows without runs (the outbox has no foreign key to them since 0007).
    db.batch_execute(
        "INSERT INTO outbox (run_id) SELECT gen_random_uuid() FROM generate_series(1, 20000)",
    )
    .await
    .expect("seed the outbox");
    let pool = app.pool();
    let client = pool.get().await.expect("a connection");
    // The plan a relay's prepared statement runs after its fifth execution
    // (the first ones get a plan for their own arguments, which was fine).
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    let taken = outbox::take_due(&client, 20_000, Duration::from_secs(5))
        .await
        .expect("take");
    assert_eq!(taken.len(), 20_000);
    let settled = tokio::time::timeout(
        PATIENCE,
        outbox::settle_taken(&client, &taken, Duration::from_secs(300)),
    )
    .await
    .expect("settled in one pass, not one per row")
    .expect("settle");
    assert_eq!(settled, 20_000);
    let windowed: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox WHERE available_at > now() + interval '200 seconds'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(windowed, 20_000);
}
