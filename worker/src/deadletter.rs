//! The dead-letter consumer: a message the work queue gave up on (past its
//! delivery limit, or unreadable) fails its run with `delivery_limit_exceeded`, so
//! pollers and webhooks still see an end. A run some live worker holds is left alone.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use stewrd_shared::{
    db::{DbError, run::fail_unclaimed_run},
    domain::model::FailureCode,
    queue::{self, JobMessage},
    runtime::retry::{backoff, pause},
};
use tokio_util::sync::CancellationToken;

use crate::{Worker, db::Patience};

/// Consumes the dead-letter queue until `shutdown`, reconnecting as needed.
pub(crate) async fn consume(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        match consume_connection(&worker, &shutdown).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "dead-letter consumer lost the broker; reconnecting");
                pause(&shutdown, backoff(failures)).await;
            }
        }
    }
}

async fn consume_connection(worker: &Worker, shutdown: &CancellationToken) -> lapin::Result<()> {
    let connection = worker.config.broker.connect("stewrd-dead-letter").await?;
    queue::declare_topology(&connection, &worker.topology).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            worker.topology.dead_letter_queue().into(),
            format!("stewrd-dead-letter-{}", worker.id).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            next = deliveries.next() => match next {
                Some(delivery) => delivery?,
                None => break,
            },
            _ = shutdown.cancelled() => break,
        };
        // Unsettled (shutting down mid-outage): left unacked, so it returns to the queue.
        if settle(worker, &delivery, shutdown).await {
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    }
    let _ = connection.close(200, "stopping".into()).await;
    Ok(())
}

/// Fails the message's run, waiting out a Postgres outage. False when it could
/// not be settled yet.
async fn settle(worker: &Worker, delivery: &Delivery, shutdown: &CancellationToken) -> bool {
    let run_id = match JobMessage::from_bytes(&delivery.data) {
        Ok(JobMessage::Run { run_id }) => run_id,
        // A room message names no run: its mark is republished anyway.
        Ok(JobMessage::Room { .. }) => return true,
        Err(_) => {
            tracing::error!(
                bytes = delivery.data.len(),
                "dropping an unreadable dead-lettered message"
            );
            return true;
        }
    };
    let message = "the job message was delivered too many times without being processed";
    let code = FailureCode::DeliveryLimitExceeded;
    let verdict = worker
        .db_patiently(
            Patience::UntilStopped(shutdown),
            "fail a dead-lettered run",
            |client| async move { fail_unclaimed_run(&client, run_id, None, code, message).await },
        )
        .await;
    match verdict {
        Ok(true) => {
            metrics::counter!(
                stewrd_shared::runtime::metrics::RUNS_FINISHED,
                "status" => "failed",
                "code" => code.as_str()
            )
            .increment(1);
            tracing::error!(%run_id, "run failed: its message exceeded the delivery limit");
            true
        }
        Ok(false) => {
            tracing::info!(%run_id, "dead-lettered message for a run that is final or held; ignored");
            true
        }
        // Stopping with Postgres still away: the message goes back.
        Err(DbError::Unavailable(_)) => false,
        Err(error) => {
            tracing::error!(%run_id, %error, "cannot fail a dead-lettered run");
            true
        }
    }
}
