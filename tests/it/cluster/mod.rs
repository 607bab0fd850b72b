//! Beyond one machine: a RabbitMQ cluster losing a node, Postgres failing over to
//! its standby, and several API processes behind one address. Each starts its
//! own servers on their own ports, so they share nothing with other tests; they
//! are slow and heavy (three brokers on two cores), so they run alone after the
//! rest in `scripts/test --all`, beside the outage tests.

mod rabbit;

use std::time::{Duration, Instant};

use serde_json::json;

use self::rabbit::RabbitCluster;
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
