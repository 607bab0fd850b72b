//! MCP calls under `kill -9`, counted as RabbitMQ's Jepsen suite reports:
//! accepted, final, lost; calls of a tool with no hints sent more than once
//! (never allowed); calls of a read-only tool sent again after their answer
//! was lost (allowed, and counted); calls sent after their step was
//! committed (never allowed, whatever the tool).

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::{
    helpers::{Options, spawn_app_with},
    mcp::{McpFixture, connect},
};

#[derive(Debug)]
struct McpTally {
    accepted: usize,
    final_runs: usize,
    lost: usize,
    duplicated_non_idempotent_calls: usize,
    repeated_idempotent_calls: usize,
    calls_after_commit: usize,
    unknown_outcomes: usize,
}

#[tokio::test]
#[ignore = "slow: kills workers for about a minute; run by scripts/test --all"]
async fn killing_workers_every_two_seconds_never_sends_a_call_twice_unless_the_tool_allows_it() {
    let mut app = spawn_app_with(Options {
        workers: 3,
        stub_delay: Duration::from_millis(500),
        ..Options::default()
            .env("STEWRD_LEASE_SECS", "3")
            .env("STEWRD_MAX_ATTEMPTS", "50")
            .env("STEWRD_WORKER_CONCURRENCY", "15")
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")
    })
    .await;
    let server = McpFixture::start(&[]).await;
    // Unscripted, the stub calls the first tool offered once, with no
    // arguments, then echoes its output: one project's only tool has no
    // hints, the other's is read-only. Each sleeps half a second.
    let (_, plain) = app.create_project("plain").await;
    connect(
        &app,
        &plain,
        json!([{"name": "w", "url": server.url(), "allowed_tools": ["slow"]}]),
    )
    .await;
    let (_, safe) = app.create_project("safe").await;
    connect(
        &app,
        &safe,
        json!([{"name": "r", "url": server.url(), "allowed_tools": ["slow_lookup"]}]),
    )
    .await;
    let mut runs = Vec::new();
    for i in 0..300 {
        let key = if i % 2 == 0 { &plain } else { &safe };
        let accepted = app
            .submit(key, json!({"message": format!("mcp job {i}")}))
            .await;
        runs.push(accepted["run_id"].as_str().expect("run").to_owned());
    }
    let kills = app.kill_workers_until_done(Duration::from_secs(150)).await;
    let db = app.db().await;
    // What the server ran, by key; when each step was committed, by key.
    let mut sent: HashMap<String, (String, Vec<f64>)> = HashMap::new();
    for call in server.calls().await {
        if call.get("cancelled").is_some() {
            continue;
        }
        let key = call["idempotency_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let tool = call["tool"].as_str().unwrap_or_default().to_owned();
        let at = call["at"].as_f64().unwrap_or_default();
        sent.entry(key).or_insert((tool, Vec::new())).1.push(at);
    }
    let mut committed: HashMap<String, f64> = HashMap::new();
    let mut unknown_outcomes = 0;
    for row in db
        .query(
            "SELECT run_id::text || ':' || tool_call_id,
                    extract(epoch FROM finished_at)::float8, output
             FROM run_steps WHERE run_id::text = ANY($1) AND type = 'tool_call'
             AND status <> 'pending'",
            &[&runs],
        )
        .await
        .expect("steps")
    {
        committed.insert(row.get(0), row.get(1));
        let output: Option<String> = row.get(2);
        if output.is_some_and(|o| o.contains("the outcome of this call is unknown")) {
            unknown_outcomes += 1;
        }
    }
    // What a run that is not final was left as, so a failure says where it stuck.
    for row in db
        .query(
            "SELECT r.id::text, r.status, r.attempts, (r.lease_until - now())::text,
                    (r.due_at - now())::text, (o.available_at - now())::text, o.publishes
             FROM runs r LEFT JOIN outbox o ON o.run_id = r.id
             WHERE r.id::text = ANY($1) AND r.status NOT IN ('succeeded', 'failed', 'cancelled')",
            &[&runs],
        )
        .await
        .expect("runs not final")
    {
        println!(
            "not final: run={} status={} attempts={} lease_in={:?} due_in={:?} outbox_in={:?} publishes={:?}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i32>(2),
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
            row.get::<_, Option<String>>(5),
            row.get::<_, Option<i32>>(6),
        );
    }
    let final_runs: i64 = db
        .query_one(
            "SELECT count(*) FROM runs WHERE id::text = ANY($1)
             AND status IN ('succeeded', 'failed', 'cancelled')",
            &[&runs],
        )
        .await
        .expect("count")
        .get(0);
    let final_runs = usize::try_from(final_runs).unwrap_or(0);
    let extra = |tool: &str| -> usize {
        sent.values()
            .filter(|(t, _)| t == tool)
            .map(|(_, times)| times.len() - 1)
            .sum()
    };
    let calls_after_commit = sent
        .iter()
        .map(|(key, (_, times))| {
            committed
                .get(key)
                .map_or(0, |at| times.iter().filter(|t| *t > at).count())
        })
        .sum();
    let tally = McpTally {
        accepted: runs.len(),
        final_runs,
        lost: runs.len() - final_runs,
        duplicated_non_idempotent_calls: extra("slow"),
        repeated_idempotent_calls: extra("slow_lookup"),
        calls_after_commit,
        unknown_outcomes,
    };
    println!(
        "accepted={} final={} lost={} duplicated_non_idempotent_calls={} repeated_idempotent_calls={} calls_after_commit={} unknown_outcomes={} calls={} kills={kills}",
        tally.accepted,
        tally.final_runs,
        tally.lost,
        tally.duplicated_non_idempotent_calls,
        tally.repeated_idempotent_calls,
        tally.calls_after_commit,
        tally.unknown_outcomes,
        sent.values().map(|(_, t)| t.len()).sum::<usize>(),
    );
    assert!(kills >= 3, "the runs finished before the faults began");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.duplicated_non_idempotent_calls, 0, "{tally:?}");
    assert_eq!(tally.calls_after_commit, 0, "{tally:?}");
    let succeeded: i64 = db
        .query_one(
            "SELECT count(*) FROM runs WHERE id::text = ANY($1) AND status = 'succeeded'",
            &[&runs],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(succeeded, 300, "{tally:?}");
    // Every call either answered or was given to the model as unknown.
    assert_eq!(committed.len(), 300, "{tally:?}");
}
