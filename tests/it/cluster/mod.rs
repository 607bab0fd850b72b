//! Beyond one machine: a RabbitMQ cluster losing a node, Postgres failing over to
//! its standby, and several API processes behind one address. Each starts its
//! own servers on their own ports, so they share nothing with other tests; they
//! are slow and heavy (three brokers on two cores), so they run alone after the
//! rest in `scripts/test --all`, beside the outage tests.

mod postgres;
mod rabbit;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use self::{postgres::PgPair, rabbit::RabbitCluster};
use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    outage::wait_all_succeeded,
};

async fn final_count(app: &TestApp, runs: &[String]) -> i64 {
    let db = app.db().await;
    db.query_one(
        "SELECT count(*) FROM runs WHERE id::text = ANY($1)
         AND status IN ('succeeded', 'failed', 'cancelled')",
        &[&runs],
    )
    .await
    .expect("count final")
    .get(0)
}

/// Submits `n` jobs `gap` apart, pushing each run id into `runs` as it is
/// accepted, so a fault can strike while some are still being submitted.
async fn submit_paced(
    app: &TestApp,
    key: &str,
    n: usize,
    gap: Duration,
    runs: &std::sync::Mutex<Vec<String>>,
) {
    for i in 0..n {
        let accepted = app
            .submit(key, json!({"message": format!("job {i}")}))
            .await;
        let run_id = accepted["run_id"].as_str().expect("run id").to_owned();
        runs.lock().expect("runs").push(run_id);
        tokio::time::sleep(gap).await;
    }
}

fn snapshot(runs: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    runs.lock().expect("runs").clone()
}

/// Every stewrd process is still the one the test started.
fn none_restarted(app: &mut TestApp) {
    assert!(app.api.running(), "the API exited");
    for (i, worker) in app.workers.iter_mut().enumerate() {
        assert!(worker.running(), "worker {i} exited");
    }
}

#[tokio::test]
#[ignore = "cluster: starts three RabbitMQ nodes; run alone with scripts/test --all"]
async fn losing_the_broker_node_with_the_queue_leader_loses_no_job() {
    let mut cluster = RabbitCluster::start(3).await;
    let mut app = spawn_app_with(Options {
        workers: 3,
        stub_delay: Duration::from_secs(1),
        ..Options::default()
            .env("AMQP_URL", &cluster.amqp_url())
            .env("STEWRD_WORKER_CONCURRENCY", "10")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let jobs_queue = format!("{}.jobs", app.name);

    // Replicated on every node, led where the processes connected first.
    let (leader, members) = cluster.queue_members(1, &jobs_queue).await;
    assert_eq!(members.len(), 3, "{jobs_queue}: {members:?}");
    let dead_queue = format!("{}.jobs.dead", app.name);
    let (_, dead_members) = cluster.queue_members(1, &dead_queue).await;
    assert_eq!(dead_members.len(), 3, "{dead_queue}: {dead_members:?}");
    let connections = cluster.connections_by_node(1).await;
    let busiest = connections
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, _)| node.clone())
        .expect("connections");
    assert_eq!(
        leader, busiest,
        "the leader and most connections should share a node: {connections:?}"
    );
    let victim = cluster.index_of(&leader).expect("leader is a node");
    println!("leader={leader} connections={connections:?}");

    let runs = std::sync::Mutex::new(Vec::new());
    let total = 500;
    let started = Instant::now();
    let chaos = async {
        wait_for(PATIENCE, || async {
            let accepted = snapshot(&runs);
            (final_count(&app, &accepted).await >= 100).then_some(())
        })
        .await
        .expect("100 runs final before the fault");
        cluster.kill(victim).await;
        let killed_at = started.elapsed();
        wait_for(Duration::from_secs(90), || async {
            let accepted = snapshot(&runs);
            (final_count(&app, &accepted).await >= 200).then_some(())
        })
        .await
        .expect("200 runs final with a node down");
        cluster.restart(victim).await;
        (killed_at, started.elapsed())
    };
    let ((killed_at, restarted_at), ()) = tokio::join!(
        chaos,
        submit_paced(&app, &key, total, Duration::from_millis(15), &runs)
    );
    let runs = snapshot(&runs);
    wait_all_succeeded(&app, &runs, Duration::from_secs(120)).await;
    let tally = app.tally(&runs).await;
    println!(
        "JEPSEN broker_node_loss accepted={} final={} lost={} duplicated_results={} \
         provider_calls={} killed_at_ms={} restarted_at_ms={} all_final_ms={}",
        tally.accepted,
        tally.final_runs,
        tally.lost,
        tally.duplicated_results,
        tally.provider_calls,
        killed_at.as_millis(),
        restarted_at.as_millis(),
        started.elapsed().as_millis(),
    );
    assert_eq!(tally.accepted, total);
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicated_results, 0);
    assert_eq!(
        tally.provider_calls, total as u64,
        "a model call was paid twice"
    );
    assert!(
        app.all_logs().contains("lost the broker"),
        "no worker noticed the node go"
    );
    none_restarted(&mut app);
}

#[tokio::test]
#[ignore = "cluster: starts a Postgres primary and standby; run alone with scripts/test --all"]
async fn a_postgres_failover_answers_503_never_500_and_loses_nothing() {
    let pair = PgPair::start().await;
    let mut app = spawn_app_with(Options {
        workers: 2,
        stub_delay: Duration::from_millis(500),
        database_url: Some(pair.database_url()),
        inspect_with_database_url: true,
        ..Options::default().env("STEWRD_WORKER_CONCURRENCY", "20")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let mut runs = crate::outage::submit_many(&app, &key, 100).await;
    let probe_session = app.submit(&key, json!({"message": "probe"})).await;
    runs.push(probe_session["run_id"].as_str().expect("id").to_owned());
    let probe_id = probe_session["session_id"].as_str().expect("id");
    wait_for(PATIENCE, || async {
        (final_count(&app, &runs).await >= 20).then_some(())
    })
    .await
    .expect("20 runs final before the failover");

    let stop = tokio_util::sync::CancellationToken::new();
    let probing = crate::outage::probe(&app, &key, probe_id, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    pair.crash_primary().await;
    // Some requests meet no writable server at all before the promotion.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.promote_standby().await;
    let promoted_at = started.elapsed();
    let writable = wait_for(PATIENCE, || async {
        let (status, body) = app
            .call(
                reqwest::Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "after the promotion"})),
            )
            .await;
        (status == StatusCode::ACCEPTED).then(|| body["run_id"].as_str().map(str::to_owned))
    })
    .await;
    let writable_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let seen = probing.await.expect("probe");
    let after = writable.expect("the API never took writes after the promotion");
    runs.extend(after);
    let unavailable = seen.iter().filter(|(s, _)| *s == 503).count();
    let errors: Vec<_> = seen
        .iter()
        .filter(|(s, _)| *s >= 500 && *s != 503)
        .collect();
    assert!(
        errors.is_empty(),
        "5xx other than 503 during the failover: {errors:?}"
    );
    assert!(unavailable > 0, "the failover was never seen as a 503");
    runs.extend(
        seen.iter()
            .filter(|(s, _)| *s == 202)
            .filter_map(|(_, id)| id.clone()),
    );
    let during = seen.iter().filter(|(s, _)| *s == 202).count();

    wait_all_succeeded(&app, &runs, Duration::from_secs(90)).await;
    let tally = app.tally(&runs).await;
    println!(
        "JEPSEN postgres_failover accepted={} final={} lost={} duplicated_results={} \
         provider_calls={} probes={} answered_503={unavailable} accepted_during={during} \
         promoted_at_ms={} writable_at_ms={}",
        tally.accepted,
        tally.final_runs,
        tally.lost,
        tally.duplicated_results,
        tally.provider_calls,
        seen.len(),
        promoted_at.as_millis(),
        writable_at.as_millis(),
    );
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicated_results, 0);
    assert_eq!(
        tally.provider_calls,
        runs.len() as u64,
        "a model call was paid twice"
    );
    none_restarted(&mut app);
}

/// A primary demoted while it stays up (as a managed service's switchover
/// does): its pooled connections stay open but every write through them fails.
/// The pools must drop them and find the promoted standby by themselves.
#[tokio::test]
#[ignore = "cluster: starts a Postgres primary and standby; run alone with scripts/test --all"]
async fn connections_to_a_primary_turned_read_only_are_dropped_for_the_writable_host() {
    let pair = PgPair::start().await;
    let mut app = spawn_app_with(Options {
        database_url: Some(pair.database_url()),
        inspect_with_database_url: true,
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    // Every pool holds connections to the primary.
    let before = crate::outage::submit_many(&app, &key, 20).await;
    wait_all_succeeded(&app, &before, PATIENCE).await;

    pair.on_primary("ALTER SYSTEM SET default_transaction_read_only = on")
        .await;
    pair.on_primary("SELECT pg_reload_conf()").await;
    // A claim there refuses outright rather than finding nothing: a run committed
    // on the new primary would be missing here, and its message acked as spare.
    let old_primary = crate::helpers::connect_db(&format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        pair.primary_port, app.name
    ))
    .await;
    let refused = old_primary
        .query(
            "SELECT id FROM stewrd_claim_next(gen_random_uuid(), 30, gen_random_uuid())",
            &[],
        )
        .await
        .expect_err("a claim on a read-only server");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{refused}"
    );
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "to a read-only primary"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    pair.promote_standby().await;

    let statuses = std::sync::Mutex::new(Vec::new());
    let accepted = wait_for(PATIENCE, || async {
        let (status, body) = app
            .call(
                reqwest::Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "after the switchover"})),
            )
            .await;
        statuses.lock().expect("statuses").push(status.as_u16());
        (status == StatusCode::ACCEPTED).then_some(body)
    })
    .await;
    let statuses = statuses.into_inner().expect("statuses");
    let accepted = accepted.unwrap_or_else(|| {
        panic!(
            "the API never wrote to the promoted standby: {} answers, the last {:?}",
            statuses.len(),
            statuses.last()
        )
    });
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 503),
        "answers other than 202 and 503: {statuses:?}"
    );
    // The worker's pool moved too: the new run is claimed and finished there.
    let session = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(session["status"], "succeeded", "{session}");
    none_restarted(&mut app);
}

/// Several API processes on one database, reached in turn as a load balancer
/// would spread requests.
struct Apis {
    bases: Vec<String>,
    turn: std::sync::atomic::AtomicUsize,
}

impl Apis {
    fn next(&self) -> &str {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.bases[turn % self.bases.len()]
    }
}

#[tokio::test]
#[ignore = "cluster: three API processes and three workers; run alone with scripts/test --all"]
async fn long_poll_sse_and_cancel_work_through_any_of_three_api_processes() {
    let mut app = spawn_app_with(Options {
        workers: 3,
        ..Options::default()
    })
    .await;
    let (second, second_base) = crate::helpers::start_api(&app.env);
    let (third, third_base) = crate::helpers::start_api(&app.env);
    let apis = Apis {
        bases: vec![app.base.clone(), second_base, third_base],
        turn: std::sync::atomic::AtomicUsize::new(0),
    };
    let (_, key) = app.create_project("acme").await;
    let submit = |base: String, message: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let (status, accepted) = app
                .call_at(
                    &base,
                    reqwest::Method::POST,
                    "/v1/agent",
                    Some(key),
                    Some(json!({"message": message})),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            accepted["session_id"].as_str().expect("id").to_owned()
        }
    };

    // Long-poll: the wait ends when the run does, however far the process that
    // holds the poll is from the one that took the message and the worker that
    // ran it (Postgres notifies every API process).
    for _ in 0..apis.bases.len() {
        app.stub
            .state
            .push([stewrd::stub::Reply::default().delayed(Duration::from_secs(1))]);
        let session = submit(apis.next().to_owned(), "poll me").await;
        let waited = Instant::now();
        let (status, polled) = app
            .call_at(
                apis.next(),
                reqwest::Method::GET,
                &format!("/v1/sessions/{session}?wait=30"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{polled}");
        assert_eq!(polled["status"], "succeeded", "{polled}");
        // Woken, not timed out: far less than the 30 s asked for.
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "the long-poll was not woken: {:?}",
            waited.elapsed()
        );
    }

    // SSE: a stream opened on another process sees the run live to its end.
    for _ in 0..apis.bases.len() {
        app.stub
            .state
            .push([stewrd::stub::Reply::default().delayed(Duration::from_secs(1))]);
        let session = submit(apis.next().to_owned(), "stream me").await;
        let events = crate::operator::collect(crate::operator::stream_events_at(
            &app.http,
            apis.next(),
            &key,
            &session,
            None,
        ))
        .await;
        let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(
            names.last().copied(),
            Some("session.succeeded"),
            "{names:?}"
        );
        assert!(names.contains(&"session.running"), "{names:?}");
    }

    // Cancel: asked of one process, heard by the worker holding the call (it
    // drops the provider connection), and seen from a third.
    app.stub
        .state
        .push([stewrd::stub::Reply::default().delayed(Duration::from_secs(60))]);
    let session = submit(apis.next().to_owned(), "cancel me").await;
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight == 1).then_some(())
    })
    .await
    .expect("the call started");
    let (status, cancelled) = app
        .call_at(
            apis.next(),
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let dropped = wait_for(PATIENCE, || async {
        (app.stub.state.stats().dropped == 1).then_some(())
    })
    .await;
    assert!(dropped.is_some(), "the worker never dropped the call");
    let (status, seen) = app
        .call_at(
            apis.next(),
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["status"], "cancelled", "{seen}");
    none_restarted(&mut app);
    drop((second, third));
}

/// A listener whose accept queue is full, so connecting to it hangs as it does
/// to a machine that died without a word (its packets dropped, no refusal).
async fn black_hole() -> (tokio::net::TcpListener, std::net::TcpStream, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let port = listener.local_addr().expect("address").port();
    let filler = std::net::TcpStream::connect(("127.0.0.1", port)).expect("fill the queue");
    (listener, filler, port)
}

/// The first host of `DATABASE_URL` drops every packet: each connection gives
/// up on it after the connect timeout and goes on to the next, instead of
/// spending the pool's whole budget (or the OS's two minutes) on it.
#[tokio::test]
#[ignore = "cluster: several database hosts; run alone with scripts/test --all"]
async fn a_database_host_that_drops_packets_is_passed_over_for_the_next() {
    let (_listener, _filler, dead) = black_hole().await;
    let app = spawn_app_with(Options {
        database_url: Some(Box::new(move |name| {
            format!(
                "postgres://postgres@127.0.0.1:{dead},127.0.0.1:5432/{name}?target_session_attrs=read-write"
            )
        })),
        ..Options::default()
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app
        .submit(&key, json!({"message": "past the dead host"}))
        .await;
    let session = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(session["status"], "succeeded", "{session}");
}
