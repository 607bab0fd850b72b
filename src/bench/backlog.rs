//! `stewrd bench backlog`: what one job costs while a worker drains a deep
//! backlog, at 10k, 100k and 1M queued runs, for one project and for 1,000
//! projects. A user with a million queued runs (a batch, a tenant's flood, a
//! provider's outage) must not pay for the depth on every job.
//!
//! The backlog is seeded in SQL (copies of one run submitted through the API,
//! each with its session and its outbox row, as a submit writes them, with
//! time-ordered ids as submits make), so the relay publishes a message per run
//! as it would have; the table also holds as many finished runs as the
//! deepest backlog, a service's history. Then one worker drains a sample of
//! the backlog, and the CPU of every process and Postgres's buffer reads
//! (`pg_stat_database` of the bench's database: shared buffers hit and read)
//! are divided by the jobs it finished. Where `pg_stat_statements` is loaded,
//! the statements that read the most buffers per job are printed too.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use stewrd_shared::queue::relay::UNCLAIMED_REPUBLISH;

use super::{
    Options,
    fleet::{Fleet, WORKER_APPLICATION_NAME},
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
    // A UUIDv7 for a time, as `Uuid::now_v7` makes for a submitted run
    // (Postgres 15 has no such function): the time's milliseconds, then
    // random bits, version 7.
    db.batch_execute(
        "CREATE FUNCTION bench_uuid_v7(at timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
             SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                 PLACING substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3)
                 FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
         $$",
    )
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
    // A service's table holds its history besides its backlog: as many
    // finished runs as the deepest backlog measured. Without them the
    // shallow depths ran on a table of 10,000 rows, whose indexes are a
    // level shallower than at 100,000 (`bt_metap`), and each of a job's ~15
    // index reads and inserts a buffer cheaper: a cost of the table's size,
    // which any service has after its first day, not of the backlog's depth.
    let deepest = *depths.last().context("no depth")?;
    seed(&db, projects, deepest, Seeded::Finished).await?;
    for depth in depths {
        let queued = queued_runs(&db).await?;
        seed(&db, projects, depth - queued, Seeded::Queued).await?;
        // The relay publishes a message per seeded run before the clock starts.
        wait_settled(&db).await?;
        // Vacuumed after the relay's publishes, not only analyzed, so the
        // drain pays for its jobs and not for the seeding's leftovers: the
        // first pass over a million rows inserted at once (autovacuum's, run
        // during the drain, or the first reads' hint bits), and the outbox
        // index entries that each publish and settle left dead (100,000 at
        // a 100k depth, at the start of the index the relay reads for due
        // rows: every `take_due` walked them, 2,400 buffers a call). A flood
        // that arrives over time is vacuumed as it comes.
        db.execute("VACUUM ANALYZE", &[]).await?;
        let calls_before = fleet.stub.state.stats().calls;
        let before = cpu_snapshot(&fleet);
        let blocks_before = blocks(&db).await?;
        let statements = statements_reset(&db).await;
        let started = Instant::now();
        fleet.add_worker()?;
        // At most half the backlog, so the depth holds while measured.
        let drained = drain(&fleet, calls_before, sample.min(depth as u64 / 2)).await?;
        let elapsed = started.elapsed();
        // Read before the worker stops: a dead process has no CPU figure.
        let after = cpu_snapshot(&fleet);
        fleet.stop_workers();
        // A backend reports its buffer counts at most once a second, and at
        // exit: the killed worker's backends have reported all once gone.
        wait_workers_gone(&db).await?;
        let blocks_after = blocks(&db).await?;
        let jobs = drained.max(1) as f64;
        let name = format!("{prefix}_{}k", depth / 1_000);
        let statement_buffers = if statements {
            Some(print_statements(&db, &name, jobs).await?)
        } else {
            None
        };
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
        if let Some(buffers) = statement_buffers {
            report.add(
                format!("{name}_pg_statement_buffers_per_job"),
                buffers,
                "blocks",
                "",
            );
        }
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

/// What [`seed`] adds.
#[derive(Clone, Copy, PartialEq)]
enum Seeded {
    /// Queued runs, with their outbox rows due now.
    Queued,
    /// Runs that succeeded before the backlog came: the table's history.
    Finished,
}

/// Adds `count` runs, copies of the template each in a session of its own,
/// spread over the bench's projects.
async fn seed(
    db: &tokio_postgres::Client,
    projects: i64,
    count: i64,
    kind: Seeded,
) -> anyhow::Result<()> {
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
    let mut replaced = vec![
        ("id", "x.run_id"),
        ("session_id", "x.session_id"),
        ("project_id", "x.project_id"),
        ("created_at", "x.created_at"),
        ("due_at", "now()"),
    ];
    if kind == Seeded::Finished {
        replaced.extend([
            ("status", "'succeeded'"),
            ("output", "'Echo: a job of the backlog'"),
            ("attempts", "1"),
            ("started_at", "x.created_at"),
            ("finished_at", "x.created_at"),
        ]);
    }
    let run_copy = copy_of(db, "runs", "r", &replaced).await?;
    // Submitted runs are a time line: ids are UUIDv7 (time first) and
    // `created_at` grows, so a backlog's index entries lie in the order it
    // is drained. The copies keep that, at 10,000 submits a second: a
    // backlog after the newest run there is, the history before now (random
    // v4 ids and one `created_at` for all spread a drain's reads over every
    // page of each index: a cost no submitted backlog has).
    let span = i32::try_from(count)?;
    let start: std::time::SystemTime = db
        .query_one(
            match kind {
                Seeded::Queued => {
                    "SELECT greatest(now() - make_interval(secs => $1::int / 10000.0),
                                     max(created_at)) FROM runs"
                }
                Seeded::Finished => "SELECT now() - make_interval(secs => $1::int / 10000.0)",
            },
            &[&span],
        )
        .await?
        .get(0);
    let what = match kind {
        Seeded::Queued => "queued",
        Seeded::Finished => "finished",
    };
    let mut left = count;
    while left > 0 {
        let batch = left.min(SEED_BATCH);
        db.batch_execute("BEGIN").await?;
        db.execute(
            "CREATE TEMP TABLE seeded ON COMMIT DROP AS
             SELECT bench_uuid_v7(at) AS run_id, bench_uuid_v7(at) AS session_id, at AS created_at,
                    project_id
             FROM (SELECT $3::timestamptz + make_interval(secs => ($4::int + g) / 10000.0) AS at,
                          (SELECT id FROM bench_projects WHERE n = g % $1::int) AS project_id
                   FROM generate_series(1, $2::int) g) x",
            &[
                &i32::try_from(projects)?,
                &i32::try_from(batch)?,
                &start,
                &i32::try_from(count - left)?,
            ],
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
        if kind == Seeded::Queued {
            db.execute(
                "INSERT INTO outbox (run_id, available_at) SELECT run_id, now() FROM seeded",
                &[],
            )
            .await?;
        }
        db.batch_execute("COMMIT").await?;
        left -= batch;
        eprintln!("  seeded {} of {count} {what} runs", count - left);
    }
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

/// Waits until the relay has published every seeded run and settled its
/// row (given the republish window once the broker confirmed it). Waiting
/// for the publishes alone left the last seconds' settles to the drain:
/// a statement over the last ~60,000 rows, half the buffers of a 5,000-job
/// drain at 100k (pg_stat_statements), charged to jobs that did not cause it
/// (a run submitted through the API is settled within seconds of its submit).
async fn wait_settled(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    // A row taken for publishing is due again within UNCLAIMED_REPUBLISH;
    // a settled one only after the republish window (minutes).
    let unsettled_within = 2.0 * UNCLAIMED_REPUBLISH.as_secs_f64();
    loop {
        let unsettled: i64 = db
            .query_one(
                "SELECT count(*) FROM outbox
                 WHERE available_at < now() + make_interval(secs => $1)",
                &[&unsettled_within],
            )
            .await?
            .get(0);
        if unsettled == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{unsettled} runs still unpublished or unsettled"
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

/// Waits until the stopped worker's connections are gone (each backend
/// reports its last counts as it exits).
async fn wait_workers_gone(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&WORKER_APPLICATION_NAME],
            )
            .await?
            .get(0);
        if connected == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stopped worker's {connected} connections did not close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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

/// Starts counting statements afresh in the bench's database, if the server
/// loads `pg_stat_statements`; false when it does not (the figures are then
/// the totals above only).
async fn statements_reset(db: &tokio_postgres::Client) -> bool {
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         SELECT pg_stat_statements_reset(0, \
             (SELECT oid FROM pg_database WHERE datname = current_database()), 0);",
    )
    .await
    .is_ok()
}

/// Prints where a drain's buffers went: the statements that touched the most
/// shared buffers, per job. Returns the shared buffers of all statements per
/// job, counted as each statement ends (`pg_stat_database` has autovacuum's
/// reads too, and the API's backends report theirs up to a second late).
/// The bench's own queries are among them, and small.
async fn print_statements(
    db: &tokio_postgres::Client,
    name: &str,
    jobs: f64,
) -> anyhow::Result<f64> {
    let rows = db
        .query(
            "SELECT calls, shared_blks_hit + shared_blks_read, total_exec_time,
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 110),
                    sum(shared_blks_hit + shared_blks_read) OVER ()::bigint
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY 2 DESC",
            &[],
        )
        .await?;
    let total: i64 = rows.first().map_or(0, |row| row.get(4));
    eprintln!("  {name}: statements by shared buffers (per job: calls, buffers, ms)");
    for row in rows.iter().take(12) {
        let (calls, blocks, ms, query): (i64, i64, f64, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        eprintln!(
            "  {:>8.3} {:>8.2} {:>8.4}  {query}",
            calls as f64 / jobs,
            blocks as f64 / jobs,
            ms / jobs
        );
    }
    Ok(total as f64 / jobs)
}
