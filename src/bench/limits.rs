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
    let script = std::env::temp_dir().join(format!("stewrd-lifecycle-{}.sql", std::process::id()));
    std::fs::write(&script, LIFECYCLE)?;
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database_url)
        .output()
        .context("pgbench is needed for the raw Postgres limit")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    // Each pgbench transaction is one job's whole life (three statements, three commits).
    text.lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|tps| tps.parse().ok())
        .with_context(|| {
            format!(
                "unexpected pgbench output: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
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
