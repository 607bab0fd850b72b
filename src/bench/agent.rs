//! `stewrd bench agent`: runs of five model calls, four of which call a server
//! tool that answers at once (0 ms model). Steps per second end to end, CPU per
//! step by process, and the Postgres commits a step costs.

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::{Router, routing::post};
use serde_json::json;
use tokio::net::TcpListener;

use super::{
    Options,
    fleet::Fleet,
    load::closed_loop,
    report::Report,
    scenarios::{cpu_snapshot, http_client, submit, wait_finished},
};

/// Model calls per run; all but the last call the tool.
const MODEL_CALLS: u64 = 5;
const TOOL_CALLS: u64 = MODEL_CALLS - 1;

/// A server tool that answers every call at once.
async fn start_tool() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new().route("/tool", post(|| async { r#"{"stock": 7}"# }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}/tool"))
}

/// Transactions committed in the benchmark's database so far. Postgres
/// publishes these counters about once a second, so read after a pause.
async fn commits(fleet: &Fleet) -> anyhow::Result<i64> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = fleet.db().await?;
    Ok(db
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0))
}

pub(super) async fn agent(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let runs = options.jobs.unwrap_or(2_000);
    let clients = options.clients.unwrap_or(64);
    let workers = options.workers.unwrap_or(1);
    eprintln!(
        "agent: {runs} runs of {MODEL_CALLS} model calls and {TOOL_CALLS} server tool calls, {clients} clients, {workers} worker(s)"
    );
    let allow_private = [("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned())];
    let fleet = Fleet::start(workers, Duration::ZERO, &allow_private).await?;
    fleet
        .stub
        .state
        .set_tool_rounds(usize::try_from(TOOL_CALLS)?);
    let http = http_client();
    let key = fleet.project(&http).await?;
    let tool = start_tool().await?;
    let set = http
        .put(format!("{}/v1/project/tools", fleet.api_base))
        .bearer_auth(&key)
        .json(&json!({"tools": [{"name": "stock", "url": tool}]}))
        .send()
        .await?;
    anyhow::ensure!(set.status().is_success(), "cannot set the server tool");
    let commits_before = commits(&fleet).await?;
    let before = cpu_snapshot(&fleet);
    let started = Instant::now();
    let submitted = closed_loop(
        runs,
        clients,
        false,
        submit(&http, &fleet.api_base, &key),
        "submitting",
    )
    .await;
    wait_finished(&fleet, submitted.ok, "finishing").await?;
    let elapsed = started.elapsed();
    let after = cpu_snapshot(&fleet);
    let commits_after = commits(&fleet).await?;
    let db = fleet.db().await?;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                    (SELECT count(*) FROM run_steps)
             FROM runs",
            &[],
        )
        .await
        .context("counting steps")?;
    let (succeeded, step_rows): (i64, i64) = (row.get(0), row.get(1));
    let steps = submitted.ok * (MODEL_CALLS + TOOL_CALLS);
    report.add("agent_runs_succeeded", succeeded as f64, "runs", "all");
    report.add("agent_step_rows", step_rows as f64, "rows", "9 per run");
    report.add(
        "agent_steps_per_s",
        steps as f64 / elapsed.as_secs_f64(),
        "steps/s",
        "",
    );
    report.add(
        "agent_runs_per_s",
        submitted.ok as f64 / elapsed.as_secs_f64(),
        "runs/s",
        "",
    );
    report.add(
        "agent_submit_errors",
        submitted.errors as f64,
        "requests",
        "0",
    );
    report.add(
        "agent_commits_per_step",
        (commits_after - commits_before) as f64 / steps.max(1) as f64,
        "commits",
        "",
    );
    for ((name, before), (_, after)) in before.0.iter().zip(&after.0) {
        report.add(
            format!("cpu_ms_per_step_{name}"),
            (after - before) / steps.max(1) as f64,
            "ms",
            "",
        );
    }
    fleet.stop().await;
    Ok(())
}
