//! The scenarios: each starts its own fleet (a throwaway database and queue
//! prefix, real API and worker processes), drives it, and adds its figures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    Options,
    fleet::{Fleet, cpu_ms, cpu_ms_of, rss_kib},
    limits as raw,
    load::{Progress, Request, closed_loop, open_loop},
    report::Report,
};

pub(super) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        // Before the API drops an idle connection (10 s): a request on one it
        // is closing would count as an error.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client without TLS settings always builds")
}

/// `POST /v1/agent` with a new session per request.
pub(super) fn submit(http: &reqwest::Client, base: &str, key: &str) -> Request {
    let (http, url, key) = (http.clone(), format!("{base}/v1/agent"), key.to_owned());
    Arc::new(move |i| {
        let request = http
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({"message": format!("benchmark job {i}")}));
        Box::pin(async move {
            let response = request.send().await.ok()?;
            if response.status().as_u16() != 202 {
                return None;
            }
            response.json::<Value>().await.ok()
        })
    })
}

/// Waits until `expected` runs are final, showing progress.
pub(super) async fn wait_finished(fleet: &Fleet, expected: u64, label: &str) -> anyhow::Result<()> {
    let db = fleet.db().await?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(label, expected, done.clone());
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        // Every run submitted so far is in the database (callers wait for the
        // 202s first), so the finished ones are those not open.
        let open = fleet.open_runs(&db).await?;
        let finished = expected.saturating_sub(u64::try_from(open).unwrap_or(u64::MAX));
        done.store(finished, Ordering::Relaxed);
        if finished >= expected {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "runs still unfinished after 15 minutes"
        );
        // Each poll costs Postgres a count of the open runs (15 ms with 9,000
        // queued on this machine): a quarter of a second is precise enough for
        // runs of a minute and keeps the bench's own share small.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress.finish();
    Ok(())
}

/// Reports how long the runs so far waited from their submit to their start
/// and to their final status: what the holds cost a run (the publish, claim
/// and result holds each wait only while work flows).
async fn report_waits(fleet: &Fleet, prefix: &str, report: &mut Report) -> anyhow::Result<()> {
    let db = fleet.db().await?;
    let row = db
        .query_one(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
                        extract(epoch FROM started_at - created_at)::float8 * 1000),
                    percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
                        extract(epoch FROM finished_at - created_at)::float8 * 1000)
               FROM runs",
            &[],
        )
        .await?;
    for (column, what) in [(0, "start"), (1, "final")] {
        let quantiles: Vec<f64> = row.try_get(column).unwrap_or_default();
        for (quantile, value) in ["p50", "p99"].iter().zip(quantiles) {
            report.add(format!("{what}_{prefix}_{quantile}_ms"), value, "ms", "");
        }
    }
    Ok(())
}

pub(super) struct CpuSnapshot(pub(super) Vec<(String, f64)>);

impl CpuSnapshot {
    /// Reports the CPU milliseconds per job each process spent since `self`,
    /// and the service's processes together (all but the bench's own).
    /// Returns Postgres's.
    pub(super) fn report_per_job(
        &self,
        after: &CpuSnapshot,
        jobs: u64,
        prefix: &str,
        report: &mut Report,
    ) -> f64 {
        let jobs = jobs.max(1) as f64;
        let (mut service, mut postgres) = (0.0, 0.0);
        for ((name, before), (_, after)) in self.0.iter().zip(&after.0) {
            let per_job = (after - before) / jobs;
            if name != "bench_client" {
                service += per_job;
            }
            if name == "postgres" {
                postgres = per_job;
            }
            report.add(format!("{prefix}cpu_ms_per_job_{name}"), per_job, "ms", "");
        }
        report.add(format!("{prefix}cpu_ms_per_job_service"), service, "ms", "");
        postgres
    }
}

pub(super) fn cpu_snapshot(fleet: &Fleet) -> CpuSnapshot {
    let mut figures = vec![("api".to_owned(), cpu_ms(fleet.api.id()))];
    let workers: f64 = fleet.workers.iter().map(|w| cpu_ms(w.id())).sum();
    figures.push(("worker".to_owned(), workers));
    figures.push(("postgres".to_owned(), cpu_ms_of("postgres")));
    figures.push(("rabbitmq".to_owned(), cpu_ms_of("beam.smp")));
    figures.push(("bench_client".to_owned(), cpu_ms(std::process::id())));
    CpuSnapshot(figures)
}

pub(super) async fn throughput(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    throughput_of(options, report, "", None).await
}

/// Throughput without a budget, with a token budget on the project, then
/// with a budget in dollars (each never reached: every model call is
/// reserved and settled, the dollars at the model's price), in the same
/// session: what a reservation costs per job.
pub(super) async fn budget(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    throughput_of(options, report, "unbudgeted_", None).await?;
    let tokens = json!({"tokens_per_day": 1_000_000_000_000_i64});
    throughput_of(options, report, "budgeted_", Some(tokens)).await?;
    let dollars = json!({"usd_per_day": 1_000_000_000.0});
    throughput_of(options, report, "usd_budgeted_", Some(dollars)).await
}

/// `jobs` one-call runs through the API, figures named with `prefix`; with
/// `limits`, the project has those (budgets it never reaches).
async fn throughput_of(
    options: &Options,
    report: &mut Report,
    prefix: &str,
    limits: Option<Value>,
) -> anyhow::Result<()> {
    let jobs = options.jobs.unwrap_or(20_000);
    let clients = options.clients.unwrap_or(64);
    let workers = options.workers.unwrap_or(1);
    eprintln!(
        "throughput: {jobs} jobs, {clients} clients, {workers} worker(s), provider at 0 ms{}",
        limits
            .as_ref()
            .map(|limits| format!(", limits {limits}"))
            .unwrap_or_default()
    );
    let fleet = Fleet::start(workers, Duration::ZERO, &[]).await?;
    let http = http_client();
    let (project, key) = fleet.project_with_id(&http).await?;
    if let Some(limits) = limits {
        fleet.set_limits(&http, &project, limits).await?;
    }
    let before = cpu_snapshot(&fleet);
    let started = Instant::now();
    let submitted = closed_loop(
        jobs,
        clients,
        false,
        submit(&http, &fleet.api_base, &key),
        "submitting",
    )
    .await;
    wait_finished(&fleet, submitted.ok, "finishing").await?;
    let elapsed = started.elapsed();
    let after = cpu_snapshot(&fleet);
    report.add(
        format!("{prefix}e2e_jobs_per_s"),
        submitted.ok as f64 / elapsed.as_secs_f64(),
        "jobs/s",
        ">= 1500 (aim >= 3000)",
    );
    report.add(
        format!("{prefix}submit_jobs_per_s"),
        submitted.ok as f64 / submitted.elapsed.as_secs_f64(),
        "jobs/s",
        "",
    );
    report.add(
        format!("{prefix}submit_errors"),
        submitted.errors as f64,
        "requests",
        "0",
    );
    before.report_per_job(&after, submitted.ok, prefix, report);
    fleet.stop().await;
    Ok(())
}

pub(super) async fn latency(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let seconds = Duration::from_secs(options.seconds.unwrap_or(20));
    let mut fleet = Fleet::start(options.workers.unwrap_or(1), Duration::ZERO, &[]).await?;
    let spread = Duration::from_millis(options.call_spread_ms.unwrap_or(0));
    fleet.stub.state.set_spread(spread);
    let http = http_client();
    let key = fleet.project(&http).await?;
    eprintln!(
        "latency: open loop at 500 jobs/s for {}s (calls take 0 to {} ms)",
        seconds.as_secs(),
        spread.as_millis()
    );
    let before = cpu_snapshot(&fleet);
    let at_500 = open_loop(
        500.0,
        seconds,
        submit(&http, &fleet.api_base, &key),
        "submit @ 500/s",
    )
    .await;
    report.latency(
        "submit_at_500_per_s",
        &at_500,
        ["", "", "<= 10 (aim <= 5)", "", ""],
    );
    wait_finished(&fleet, at_500.ok, "draining").await?;
    // What a job costs at a moderate rate, against its cost at saturation
    // (the burst below): batching pays off only when there is a batch.
    let postgres_at_500 =
        before.report_per_job(&cpu_snapshot(&fleet), at_500.ok, "at_500_per_s_", report);
    report_waits(&fleet, "at_500_per_s", report).await?;

    // The maximum is what the whole system sustains end to end: submitting faster
    // than jobs finish only grows a queue.
    eprintln!("latency: measuring the maximum end-to-end rate (closed loop)");
    let before = cpu_snapshot(&fleet);
    let started = Instant::now();
    let burst = closed_loop(
        10_000,
        64,
        true,
        submit(&http, &fleet.api_base, &key),
        "max rate",
    )
    .await;
    wait_finished(&fleet, at_500.ok + burst.ok, "draining").await?;
    let max_rate = burst.ok as f64 / started.elapsed().as_secs_f64();
    report.add("e2e_max_per_s", max_rate, "jobs/s", "");
    let postgres_at_max = before.report_per_job(&cpu_snapshot(&fleet), burst.ok, "at_max_", report);
    let rate = (max_rate * 0.8).floor();
    let at_80 = open_loop(
        rate,
        seconds,
        submit(&http, &fleet.api_base, &key),
        "submit @ 80% of max",
    )
    .await;
    report.add("submit_at_80pct_rate", rate, "jobs/s", "");
    report.latency("submit_at_80pct", &at_80, [""; 5]);
    wait_finished(&fleet, at_500.ok + burst.ok + at_80.ok, "draining").await?;

    let sessions: Arc<Vec<String>> = Arc::new(
        burst
            .answers
            .iter()
            .filter_map(|a| a["session_id"].as_str().map(str::to_owned))
            .collect(),
    );
    anyhow::ensure!(!sessions.is_empty(), "no sessions to poll");
    let poll: Request = {
        let (http, base, key, sessions) = (
            http.clone(),
            fleet.api_base.clone(),
            key.clone(),
            sessions.clone(),
        );
        Arc::new(move |i| {
            let id = &sessions[i as usize % sessions.len()];
            let request = http
                .get(format!("{base}/v1/sessions/{id}"))
                .bearer_auth(&key);
            Box::pin(async move {
                let response = request.send().await.ok()?;
                response.status().is_success().then_some(Value::Null)
            })
        })
    };
    let polled = open_loop(2_000.0, Duration::from_secs(10), poll, "poll @ 2000/s").await;
    report.latency(
        "poll_at_2000_per_s",
        &polled,
        ["", "", "<= 5 (aim <= 2)", "", ""],
    );
    // The floor under the poll's latency on this host: the same HTTP stack,
    // router and middleware, the same client and rate, no key check and no
    // Postgres (`/healthz` answers from memory).
    let health: Request = {
        let (http, base) = (http.clone(), fleet.api_base.clone());
        Arc::new(move |_| {
            let request = http.get(format!("{base}/healthz"));
            Box::pin(async move {
                let response = request.send().await.ok()?;
                response.status().is_success().then_some(Value::Null)
            })
        })
    };
    let floor = open_loop(
        2_000.0,
        Duration::from_secs(10),
        health.clone(),
        "healthz @ 2000/s",
    )
    .await;
    report.latency("floor_healthz_at_2000_per_s", &floor, [""; 5]);
    // And under the submit's: the same client at the submit's rate. A submit
    // is this round trip plus a commit (the pgbench figure below).
    let floor = open_loop(500.0, seconds, health, "healthz @ 500/s").await;
    report.latency("floor_healthz_at_500_per_s", &floor, [""; 5]);

    // The same ratio with no stewrd involved: pgbench living a job's three
    // commits at 500/s and as fast as it goes. Every statement at a moderate
    // rate wakes a sleeping backend, which costs more than the statement on
    // some hosts; our ratio reads against this one.
    // The worker stops first, so its chores do not count; the idle API's and any
    // autovacuum's still do (a few statements a second against 500).
    eprintln!("latency: pgbench's job lifecycle at 500/s and at saturation");
    fleet.stop_workers();
    let url = fleet.database_url.clone();
    let (raw_at_500, raw_at_max, commits) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok((
                raw::lifecycle_cpu_ms(&url, 8, 10, Some(500))?,
                raw::lifecycle_cpu_ms(&url, 32, 10, None)?,
                raw::commit_latency(&url, 500, 10)?,
            ))
        })
        .await
        .context("pgbench")??;
    report.add(
        "postgres_cpu_ratio_at_500_to_max",
        postgres_at_500 / postgres_at_max.max(f64::EPSILON),
        "x",
        "<= 1.2",
    );
    report.add(
        "raw_pg_lifecycle_at_500_per_s_cpu_ms",
        raw_at_500,
        "ms",
        "(pgbench, 3 commits)",
    );
    report.add("raw_pg_lifecycle_at_max_cpu_ms", raw_at_max, "ms", "");
    report.add(
        "raw_pg_cpu_ratio_at_500_to_max",
        raw_at_500 / raw_at_max.max(f64::EPSILON),
        "x",
        "",
    );
    report.latency(
        "raw_pg_commit_at_500_per_s",
        &commits,
        ["(pgbench, 1 row)", "", "", "", ""],
    );
    fleet.stop().await;
    Ok(())
}

pub(super) async fn slow(
    options: &Options,
    delay_ms: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let jobs = options.jobs.unwrap_or(10_000);
    eprintln!("slow: {jobs} jobs into one worker, provider at {delay_ms} ms");
    let concurrency = [("STEWRD_WORKER_CONCURRENCY", (jobs * 2).to_string())];
    let mut fleet = Fleet::start(0, Duration::from_millis(delay_ms), &concurrency).await?;
    let http = http_client();
    let key = fleet.project(&http).await?;
    // An idle worker's footprint, measured before any job exists.
    fleet.add_worker()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = rss_kib(fleet.workers[0].id());
    fleet.stop_workers();
    // The burst waits in the queue; then one worker takes it all at once.
    let submitted = closed_loop(
        jobs,
        64,
        false,
        submit(&http, &fleet.api_base, &key),
        "queueing",
    )
    .await;
    // The worker is not running, so its CPU all falls in the drain; the bench's
    // own process is the stub here, answering every call.
    let before = cpu_snapshot(&fleet);
    let started = Instant::now();
    fleet.add_worker()?;
    let pid = fleet.workers[0].id();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // The starts alone: CPU by process while the stub's count of calls goes
    // from a tenth of the jobs to six tenths, before most of them end.
    let label = format!("slow_{delay_ms}ms");
    let stub = fleet.stub.state.clone();
    let calls = |share: u64| {
        let stub = stub.clone();
        async move {
            while stub.stats().calls < jobs * share / 10
                && started.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    calls(1).await;
    let (from, from_at) = (cpu_snapshot(&fleet), Instant::now());
    calls(6).await;
    let start_span = from_at.elapsed();
    from.report_per_job(
        &cpu_snapshot(&fleet),
        jobs / 2,
        &format!("{label}_start_"),
        report,
    );
    report.add(
        format!("{label}_starts_per_s"),
        (jobs / 2) as f64 / start_span.as_secs_f64(),
        "calls/s",
        "",
    );
    wait_finished(&fleet, submitted.ok, "draining").await?;
    sampler.abort();
    let drained = started.elapsed();
    before.report_per_job(&cpu_snapshot(&fleet), jobs, &format!("{label}_"), report);
    let peak_kib = peak.load(Ordering::Relaxed);
    let in_flight = fleet.stub.state.stats().max_in_flight as u64;
    report.add(
        format!("{label}_max_in_flight"),
        in_flight as f64,
        "calls",
        ">= 10000 (aim >= 20000)",
    );
    report.add(
        format!("{label}_worker_idle_rss"),
        idle_kib as f64 / 1024.0,
        "MiB",
        "<= 30 (aim <= 15)",
    );
    report.add(
        format!("{label}_worker_peak_rss"),
        peak_kib as f64 / 1024.0,
        "MiB",
        "",
    );
    report.add(
        format!("{label}_kib_per_in_flight"),
        peak_kib.saturating_sub(idle_kib) as f64 / in_flight.max(1) as f64,
        "KiB",
        "<= 48 (aim <= 24)",
    );
    report.add(format!("{label}_drain_s"), drained.as_secs_f64(), "s", "");
    fleet.stop().await;
    Ok(())
}

pub(super) async fn longpoll(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let clients = options.clients.unwrap_or(10_000) as u64;
    eprintln!("longpoll: {clients} clients waiting on one API process");
    let mut fleet = Fleet::start(0, Duration::ZERO, &[]).await?;
    let http = http_client();
    let key = fleet.project(&http).await?;
    let queued = closed_loop(
        clients,
        64,
        true,
        submit(&http, &fleet.api_base, &key),
        "queueing",
    )
    .await;
    let before_kib = rss_kib(fleet.api.id());
    let answered = Arc::new(AtomicU64::new(0));
    let waiting: Vec<_> = queued
        .answers
        .iter()
        .filter_map(|a| a["session_id"].as_str().map(str::to_owned))
        .map(|id| {
            let request = http
                .get(format!("{}/v1/sessions/{id}?wait=60", fleet.api_base))
                .bearer_auth(&key)
                .timeout(Duration::from_secs(90));
            let answered = answered.clone();
            tokio::spawn(async move {
                let session: Value = request.send().await.ok()?.json().await.ok()?;
                answered.fetch_add(1, Ordering::Relaxed);
                (session["status"] == "succeeded").then_some(())
            })
        })
        .collect();
    // Give every request time to arrive and settle into its wait.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let held = waiting.len() as u64 - answered.load(Ordering::Relaxed);
    let held_kib = rss_kib(fleet.api.id());
    fleet.add_worker()?;
    let results = futures_util::future::join_all(waiting).await;
    let woken = results.iter().filter(|r| matches!(r, Ok(Some(())))).count();
    report.add(
        "longpoll_clients_held",
        held as f64,
        "clients",
        ">= 10000 (aim >= 50000)",
    );
    report.add(
        "longpoll_api_kib_per_client",
        held_kib.saturating_sub(before_kib) as f64 / held.max(1) as f64,
        "KiB",
        "",
    );
    report.add(
        "longpoll_answered_succeeded",
        woken as f64,
        "clients",
        "all",
    );
    fleet.stop().await;
    Ok(())
}

pub(super) async fn limits(report: &mut Report) -> anyhow::Result<()> {
    eprintln!("limits: pgbench job lifecycle (3 commits) and raw RabbitMQ");
    let fleet = Fleet::start(0, Duration::ZERO, &[]).await?;
    let url = fleet.database_url.clone();
    let tps = tokio::task::spawn_blocking(move || raw::pgbench_lifecycle(&url, 32, 10))
        .await
        .context("pgbench")??;
    report.add(
        "raw_pg_job_lifecycles_per_s",
        tps,
        "jobs/s",
        "(3 commits each, 32 clients)",
    );
    let queue = format!("{}.raw", fleet.name);
    let (published, round_trip) = raw::rabbitmq_round_trip(&fleet.amqp_url, &queue, 50_000).await?;
    report.add(
        "raw_rabbitmq_publish_confirm_per_s",
        published,
        "msg/s",
        "(4 channels x 64 unconfirmed)",
    );
    report.add(
        "raw_rabbitmq_publish_consume_ack_per_s",
        round_trip,
        "msg/s",
        "",
    );
    fleet.stop().await;
    Ok(())
}
