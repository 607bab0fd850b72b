//! The raw limits of this machine, measured in the same run so a reader sees our
//! figures as a fraction of what Postgres and RabbitMQ themselves can do: a
//! pgbench script living a job's three commits (insert queued, claim, finish), and
//! RabbitMQ publishing with confirms and consuming with acks, no stewrd involved.

use std::{process::Command, sync::Arc, time::Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Confirmation,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use tokio::sync::Semaphore;

/// A job's life in three commits, as stewrd does it.
const LIFECYCLE: &str = "\\set payload random(1, 1000000)
INSERT INTO jobs (status, body) VALUES ('queued', 'message ' || :payload) RETURNING id \\gset
UPDATE jobs SET status = 'running', started_at = now() WHERE id = :id AND status = 'queued';
UPDATE jobs SET status = 'succeeded', output = 'answer', finished_at = now() WHERE id = :id AND status = 'running';
";

/// Jobs per second pgbench sustains with `clients` connections for `seconds`.
pub fn pgbench_lifecycle(database_url: &str, clients: u32, seconds: u32) -> anyhow::Result<f64> {
    Ok(lifecycles(database_url, clients, seconds, None)?.per_s)
}

/// Postgres CPU milliseconds per job lifecycle, at `rate` lifecycles a second
/// (open loop) or as fast as `clients` connections go: what Postgres itself
/// charges for the same three commits at a moderate rate and at saturation.
pub fn lifecycle_cpu_ms(
    database_url: &str,
    clients: u32,
    seconds: u32,
    rate: Option<u32>,
) -> anyhow::Result<f64> {
    let before = super::fleet::cpu_ms_of("postgres");
    let run = lifecycles(database_url, clients, seconds, rate)?;
    // Backends that exited are counted in the postmaster's children's time.
    let after = super::fleet::cpu_ms_of("postgres");
    Ok((after - before) / run.done.max(1) as f64)
}

/// What one pgbench run of [`LIFECYCLE`] did.
struct Lifecycles {
    per_s: f64,
    done: u64,
}

fn lifecycles(
    database_url: &str,
    clients: u32,
    seconds: u32,
    rate: Option<u32>,
) -> anyhow::Result<Lifecycles> {
    let text = pgbench(database_url, LIFECYCLE, clients, seconds, rate, None)?;
    // Each pgbench transaction is one job's whole life (three statements, three commits).
    let figure = |prefix: &str, index: usize| -> Option<f64> {
        text.lines()
            .find(|line| line.starts_with(prefix))?
            .split_whitespace()
            .nth(index)?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    let unexpected = || format!("unexpected pgbench output: {text}");
    let per_s = figure("tps = ", 2).with_context(unexpected)?;
    let done = figure("number of transactions actually processed: ", 5).with_context(unexpected)?;
    Ok(Lifecycles {
        per_s,
        done: done as u64,
    })
}

/// One row inserted and committed: the least Postgres does for a durable submit.
const COMMIT: &str = "\\set payload random(1, 1000000)
INSERT INTO jobs (status, body) VALUES ('queued', 'message ' || :payload);
";

/// One-row commits at `rate` a second for `seconds`, open loop, each one's
/// latency counted from when it was due (as pgbench's `-R` counts, and as the
/// bench counts submits): the floor that Postgres and this host's disk put
/// under a durable submit's latency.
pub fn commit_latency(
    database_url: &str,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<super::load::Outcome> {
    // pgbench writes a log per thread, named after the prefix; a directory of
    // our own holds them.
    let logs = std::env::temp_dir().join(format!("stewrd-commits-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let ran = pgbench(
        database_url,
        COMMIT,
        8,
        seconds,
        Some(rate),
        Some(&logs.join("log")),
    );
    let read = ran.and_then(|_| read_latencies(&logs));
    let _ = std::fs::remove_dir_all(&logs);
    let latency = read?;
    if latency.is_empty() {
        bail!("pgbench logged no commits");
    }
    Ok(super::load::Outcome {
        ok: latency.len(),
        errors: 0,
        elapsed: std::time::Duration::from_secs(seconds.into()),
        latency,
        answers: Vec::new(),
    })
}

/// The latencies in pgbench's per-transaction logs in `logs`: a line per
/// transaction, its third field the latency in µs.
fn read_latencies(logs: &std::path::Path) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut latency = super::load::histogram();
    for entry in std::fs::read_dir(logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for micros in text
            .lines()
            .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        {
            latency.record(micros.max(1))?;
        }
    }
    Ok(latency)
}

/// Runs `script` with pgbench on a fresh `jobs` table, returning what it
/// printed; with `log`, each transaction is logged to files named after it.
fn pgbench(
    database_url: &str,
    script: &str,
    clients: u32,
    seconds: u32,
    rate: Option<u32>,
    log: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let setup = Command::new("psql")
        .args([database_url, "-qc"])
        .arg(
            "DROP TABLE IF EXISTS jobs; CREATE TABLE jobs (id bigserial PRIMARY KEY, status text NOT NULL, \
             body text, output text, started_at timestamptz, finished_at timestamptz)",
        )
        .status()
        .context("psql is needed for the raw Postgres limit")?;
    if !setup.success() {
        bail!("cannot create the pgbench table");
    }
    let file = std::env::temp_dir().join(format!("stewrd-pgbench-{}.sql", std::process::id()));
    std::fs::write(&file, script)?;
    let mut pgbench = Command::new("pgbench");
    pgbench.args([
        "-n",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
    ]);
    if let Some(rate) = rate {
        pgbench.args(["-R", &rate.to_string()]);
    }
    if let Some(log) = log {
        pgbench
            .arg("-l")
            .arg(format!("--log-prefix={}", log.display()));
    }
    let output = pgbench
        .arg("-f")
        .arg(&file)
        .arg(database_url)
        .output()
        .context("pgbench is needed for the raw Postgres limit")?;
    let _ = std::fs::remove_file(&file);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Raw RabbitMQ: `messages` persistent messages published on 4 channels with 64
/// unconfirmed each, into a quorum queue, while a consumer acks each one. Returns
/// (publish-and-confirm per second, end to end per second).
pub async fn rabbitmq_round_trip(
    amqp_url: &str,
    queue: &str,
    messages: u64,
) -> anyhow::Result<(f64, f64)> {
    let connection = stewrd_shared::runtime::broker::Broker::at(amqp_url)?
        .connect("stewrd-bench-raw")
        .await?;
    let setup = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    setup
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    let consume = connection.create_channel().await?;
    consume.basic_qos(256, BasicQosOptions::default()).await?;
    let mut deliveries = consume
        .basic_consume(
            queue.into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut received = 0;
        while received < messages {
            match deliveries.next().await {
                Some(Ok(delivery)) => {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                    received += 1;
                }
                _ => break,
            }
        }
        started.elapsed()
    });
    let body = [b'x'; 150];
    let mut publishers = Vec::new();
    for lane in 0..4u64 {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let window = Arc::new(Semaphore::new(64));
        let queue = queue.to_owned();
        publishers.push(tokio::spawn(async move {
            let mut confirms = Vec::new();
            for _ in (lane..messages).step_by(4) {
                let permit = window.clone().acquire_owned().await.ok()?;
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .ok()?;
                confirms.push(tokio::spawn(async move {
                    let ok = matches!(confirm.await, Ok(Confirmation::Ack(None)));
                    drop(permit);
                    ok
                }));
            }
            let results = futures_util::future::join_all(confirms).await;
            Some(results.into_iter().all(|r| r.unwrap_or(false)))
        }));
    }
    let all_confirmed = futures_util::future::join_all(publishers)
        .await
        .into_iter()
        .all(|r| matches!(r, Ok(Some(true))));
    let published = started.elapsed();
    let consumed = consumer.await?;
    let _ = setup
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = connection.close(200, "bench done".into()).await;
    if !all_confirmed {
        bail!("RabbitMQ did not confirm every raw publish");
    }
    let rate = |elapsed: std::time::Duration| messages as f64 / elapsed.as_secs_f64();
    Ok((rate(published), rate(consumed)))
}
