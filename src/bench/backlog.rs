//! `stewrd bench backlog`: what one job costs while a worker drains a deep
//! backlog, at 10k, 100k and 1M queued runs, for one project and for 1,000
//! projects. A user with a million queued runs (a batch, a tenant's flood, a
//! provider's outage) must not pay for the depth on every job.
//!
//! The backlog is seeded in SQL (copies of one run submitted through the API,
//! each with its session and its outbox row, as a submit writes them), so the
//! relay publishes a message per run as it would have; then one worker drains
//! a sample of it and the CPU of every process and Postgres's buffer reads
//! (`pg_stat_database` of the bench's database: shared buffers hit and read)
//! are divided by the jobs it finished.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::{
    Options,
    fleet::Fleet,
    report::Report,
    scenarios::{cpu_snapshot, http_client},
};

/// The depths measured, in queued runs.
const DEPTHS: [i64; 3] = [10_000, 100_000, 1_000_000];
/// Runs seeded per statement (bounded transactions, a progress line each).
const SEED_BATCH: i64 = 50_000;

pub(super) async fn backlog(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    for projects in [1, 1_000] {
        backlog_of(options, report, projects).await?;
    }
    Ok(())
}

async fn backlog_of(options: &Options, report: &mut Report, projects: i64) -> anyhow::Result<()> {
    let sample = options.jobs.unwrap_or(20_000);
    let depths: Vec<i64> = match options.seconds {
        // `--seconds` stands for "a quick look": the first two depths only.
        Some(_) => DEPTHS[..2].to_vec(),
        None => DEPTHS.to_vec(),
    };
    eprintln!(
        "backlog: {projects} project(s), depths {depths:?}, {sample} jobs (at most half the \
         backlog) drained at each"
    );
    let mut fleet = Fleet::start(0, Duration::ZERO, &[]).await?;
    let http = http_client();
    let (project, key) = fleet.project_with_id(&http).await?;
    let template = http
        .post(format!("{}/v1/agent", fleet.api_base))
        .bearer_auth(&key)
        .json(&json!({"message": "a job of the backlog"}))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let template = template["run_id"]
        .as_str()
        .context("the template run was not accepted")?
        .to_owned();
    let db = fleet.db().await?;
    // The template as submitted (queued): the copies are made from these,
    // not from the run itself, which the first depth's worker runs.
    db.batch_execute(&format!(
        "CREATE TABLE bench_template_runs AS SELECT * FROM runs WHERE id = '{template}';
         CREATE TABLE bench_template_sessions AS
             SELECT * FROM sessions WHERE latest_run_id = '{template}';"
    ))
    .await?;
    db.execute(
        "CREATE TABLE bench_projects AS
         SELECT $1::text::uuid AS id, 0 AS n
         UNION ALL
         SELECT gen_random_uuid(), g FROM generate_series(1, $2::int - 1) g",
        &[&project, &i32::try_from(projects)?],
    )
    .await?;
    db.execute(
        "INSERT INTO projects (id, name, webhook_secret)
         SELECT b.id, 'bench ' || b.n, p.webhook_secret
         FROM bench_projects b, projects p WHERE p.id = $1::text::uuid AND b.n > 0",
        &[&project],
    )
    .await?;
    let prefix = if projects == 1 {
        "one_project".to_owned()
    } else {
        format!("{projects}_projects")
    };
    for depth in depths {
        let queued = queued_runs(&db).await?;
        seed(&db, projects, depth - queued).await?;
        // The relay publishes a message per seeded run before the clock starts.
        wait_published(&db).await?;
        let calls_before = fleet.stub.state.stats().calls;
        let before = cpu_snapshot(&fleet);
        let blocks_before = blocks(&db).await?;
        let started = Instant::now();
        fleet.add_worker()?;
        // At most half the backlog, so the depth holds while measured.
        let drained = drain(&fleet, calls_before, sample.min(depth as u64 / 2)).await?;
        let elapsed = started.elapsed();
        // Read before the worker stops: a dead process has no CPU figure.
        let after = cpu_snapshot(&fleet);
        fleet.stop_workers();
        let blocks_after = blocks(&db).await?;
        let jobs = drained.max(1) as f64;
        let name = format!("{prefix}_{}k", depth / 1_000);
        report.add(
            format!("{name}_jobs_per_s"),
            jobs / elapsed.as_secs_f64(),
            "jobs/s",
            "",
        );
        before.report_per_job(&after, drained, &format!("{name}_"), report);
        report.add(
            format!("{name}_pg_buffers_per_job"),
            (blocks_after - blocks_before) as f64 / jobs,
            "blocks",
            "",
        );
    }
    fleet.stop().await;
    Ok(())
}

/// Queued runs now.
async fn queued_runs(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one("SELECT count(*) FROM runs WHERE status = 'queued'", &[])
        .await?
        .get(0))
}

/// Adds `count` queued runs, copies of the template each in a session of its
/// own, spread over the bench's projects, with their outbox rows due now.
async fn seed(db: &tokio_postgres::Client, projects: i64, count: i64) -> anyhow::Result<()> {
    let session_copy = copy_of(
        db,
        "sessions",
        "s",
        &[
            ("id", "x.session_id"),
            ("project_id", "x.project_id"),
            ("latest_run_id", "x.run_id"),
        ],
    )
    .await?;
    let run_copy = copy_of(
        db,
        "runs",
        "r",
        &[
            ("id", "x.run_id"),
            ("session_id", "x.session_id"),
            ("project_id", "x.project_id"),
            ("created_at", "now()"),
            ("due_at", "now()"),
        ],
    )
    .await?;
    let mut left = count;
    while left > 0 {
        let batch = left.min(SEED_BATCH);
        db.batch_execute("BEGIN").await?;
        db.execute(
            "CREATE TEMP TABLE seeded ON COMMIT DROP AS
             SELECT gen_random_uuid() AS run_id, gen_random_uuid() AS session_id,
                    (SELECT id FROM bench_projects WHERE n = g % $1::int) AS project_id
             FROM generate_series(1, $2::int) g",
            &[&i32::try_from(projects)?, &i32::try_from(batch)?],
        )
        .await?;
        db.execute(
            &format!(
                "INSERT INTO sessions {session_copy} FROM seeded x, bench_template_sessions s"
            ),
            &[],
        )
        .await?;
        db.execute(
            &format!("INSERT INTO runs {run_copy} FROM seeded x, bench_template_runs r"),
            &[],
        )
        .await?;
        db.execute(
            "INSERT INTO outbox (run_id, available_at) SELECT run_id, now() FROM seeded",
            &[],
        )
        .await?;
        db.batch_execute("COMMIT").await?;
        left -= batch;
        eprintln!("  seeded {} of {count}", count - left);
    }
    // Vacuumed, not only analyzed, so the drain pays for its jobs and not for
    // the first pass over a million rows inserted at once: autovacuum's, run
    // during the drain and counted as the jobs' CPU, or with autovacuum off
    // the first reads' (a flood that arrives over time is vacuumed as it comes).
    db.execute("VACUUM ANALYZE", &[]).await?;
    Ok(())
}

/// `(columns) SELECT values` copying a row of `table` (aliased `alias`) with
/// some columns replaced: the column list read from the catalog, so a column
/// added by a later migration is copied too.
async fn copy_of(
    db: &tokio_postgres::Client,
    table: &str,
    alias: &str,
    replaced: &[(&str, &str)],
) -> anyhow::Result<String> {
    let columns: Vec<String> = db
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let values: Vec<String> = columns
        .iter()
        .map(|column| {
            replaced
                .iter()
                .find(|(name, _)| name == column)
                .map_or_else(
                    || format!("{alias}.\"{column}\""),
                    |(_, value)| (*value).to_owned(),
                )
        })
        .collect();
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    Ok(format!(
        "({}) SELECT {}",
        quoted.join(", "),
        values.join(", ")
    ))
}

/// Waits until no outbox row waits for its first publish.
async fn wait_published(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let unpublished: i64 = db
            .query_one(
                "SELECT count(*) FROM outbox WHERE publishes = 0 AND available_at <= now()",
                &[],
            )
            .await?
            .get(0);
        if unpublished == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{unpublished} runs still unpublished"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the worker made `sample` provider calls (one per job) since
/// `calls_before`; returns how many. Counted at the stub, in this process:
/// counting runs in Postgres would cost it more the deeper the backlog, and
/// be charged to the figures.
async fn drain(fleet: &Fleet, calls_before: u64, sample: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let done = fleet.stub.state.stats().calls - calls_before;
        if done >= sample {
            return Ok(done);
        }
        anyhow::ensure!(Instant::now() < deadline, "only {done} of {sample} drained");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Shared buffers hit and read in the bench's database so far.
async fn blocks(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0))
}
