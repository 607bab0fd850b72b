//! The consumer loop: the one place that decides ack, nack and dead-letter.
//!
//! A delivery is acked right after its run is claimed in Postgres, not after the
//! provider answers: from then on the lease (kept alive by the heartbeat, taken
//! back by the reaper) protects the run, so no delivery is held for the length of
//! a provider call and RabbitMQ's `consumer_timeout` never matters.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures_util::{FutureExt, StreamExt};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable},
};
use stewrd_shared::{
    db::{
        DbError,
        run::{ClaimedRun, Unreadable, claim_next, claim_unreadable, fail_unclaimed_run},
    },
    id::RunId,
    metrics as names,
    model::FailureCode,
    queue::{self, JobMessage},
    retry::{backoff, pause},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, Span, field::Empty};

use crate::{Worker, db::Patience, run};

/// How long a worker waits before returning a message it could not claim, so a
/// failing message does not spin through its delivery limit in milliseconds.
const NACK_DELAY: Duration = Duration::from_secs(1);
/// How long handing runs back may take at the end of a drain.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker cancelled the consumer")]
    Cancelled,
}

/// Consumes until `shutdown`, reconnecting whenever the broker goes away, then
/// drains in-flight runs for up to `grace` and hands back the rest.
pub(crate) async fn consume(worker: Arc<Worker>, shutdown: CancellationToken, grace: Duration) {
    let permits = Arc::new(Semaphore::new(worker.config.worker.concurrency));
    let jobs = TaskTracker::new();
    let hand_back = CancellationToken::new();
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        match consume_connection(&worker, &permits, &jobs, &shutdown, &hand_back).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "worker lost the broker; reconnecting");
                pause(&shutdown, backoff(failures)).await;
            }
        }
    }
    drain(jobs, hand_back, grace).await;
}

/// One broker connection's life: returns `Ok` on shutdown, `Err` when it is lost.
async fn consume_connection(
    worker: &Arc<Worker>,
    permits: &Arc<Semaphore>,
    jobs: &TaskTracker,
    shutdown: &CancellationToken,
    hand_back: &CancellationToken,
) -> Result<(), ConsumeError> {
    let connection = worker.config.broker.connect("stewrd-worker").await?;
    queue::declare_topology(&connection, &worker.topology).await?;
    let channel = connection.create_channel().await?;
    let prefetch = u16::try_from(worker.config.worker.concurrency).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            worker.topology.jobs_queue().into(),
            format!("stewrd-worker-{}", worker.id).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %worker.topology.jobs_queue(), prefetch, "consuming");
    loop {
        // The permit comes first: a delivery is only taken when it can start at once.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let delivery = tokio::select! {
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(ConsumeError::Cancelled),
            },
            _ = shutdown.cancelled() => break,
        };
        jobs.spawn(handle(
            worker.clone(),
            delivery,
            permit,
            shutdown.clone(),
            hand_back.clone(),
        ));
    }
    // Closing returns the prefetched deliveries no job has started to the queue.
    let _ = channel.close(200, "worker stopping".into()).await;
    let _ = connection.close(200, "worker stopping".into()).await;
    Ok(())
}

async fn drain(jobs: TaskTracker, hand_back: CancellationToken, grace: Duration) {
    jobs.close();
    if jobs.is_empty() {
        return;
    }
    tracing::info!(
        in_flight = jobs.len(),
        grace_secs = grace.as_secs(),
        "draining"
    );
    if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
        tracing::warn!(
            remaining = jobs.len(),
            "grace period over; handing runs back"
        );
        hand_back.cancel();
        if tokio::time::timeout(HAND_BACK_TIMEOUT, jobs.wait())
            .await
            .is_err()
        {
            tracing::error!(
                remaining = jobs.len(),
                "could not hand every run back; their leases will expire and the reaper will requeue them"
            );
        }
    }
}

/// Handles one delivery: claim, ack, run.
async fn handle(
    worker: Arc<Worker>,
    delivery: Delivery,
    _permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
) {
    let request_id = header_text(&delivery, "x-request-id");
    let run_id = match JobMessage::from_bytes(&delivery.data) {
        Ok(JobMessage::Run { run_id }) => run_id,
        Err(error) => {
            tracing::warn!(%error, "unreadable job message; dead-lettering it");
            let reject = BasicNackOptions {
                requeue: false,
                multiple: false,
            };
            let _ = delivery.nack(reject).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "run",
        run_id = Empty,
        session_id = Empty,
        attempt = Empty,
        // The message names a run, but a claim takes whichever is fairest next.
        woken_by = %run_id,
        request_id = request_id.as_deref().unwrap_or("-"),
    );
    async move {
        let claimed = match claim(&worker, run_id, &shutdown).await {
            Ok(claimed) => Ok(claimed),
            Err(error) => {
                tracing::warn!(%error, "a claim failed; claiming again step by step");
                claim_around_poison(&worker, run_id).await
            }
        };
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                // Give it back; past the delivery limit the queue dead-letters it.
                tracing::warn!(%error, "cannot claim the run; returning its message");
                tokio::time::sleep(NACK_DELAY).await;
                let requeue = BasicNackOptions {
                    requeue: true,
                    multiple: false,
                };
                let _ = delivery.nack(requeue).await;
                return;
            }
        };
        if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
            // The claim stands; a redelivery will find the lease and be skipped.
            tracing::debug!(%error, "ack failed");
        }
        let Some(run) = claimed else {
            metrics::counter!(names::EMPTY_CLAIMS).increment(1);
            tracing::debug!("nothing to do: no run is due, or every waiting project is at its cap");
            return;
        };
        Span::current().record("run_id", tracing::field::display(run.id));
        if run.id != run_id {
            // The message's own run was given a new message (see `claim_next`).
            worker.relay_wake.notify_one();
        }
        // A panic must not strand the run: its lease would be kept by nobody
        // and the session would stay busy until the lease ran out.
        let processed = AssertUnwindSafe(run::process(&worker, &run, &hand_back))
            .catch_unwind()
            .await;
        if processed.is_err() {
            run::recover_from_panic(&worker, &run).await;
        }
    }
    .instrument(span)
    .await;
}

/// Claims the next run (messages are wake-ups: see `claim_next`), waiting out
/// a Postgres outage (the message stays unacked meanwhile, and with every
/// permit busy the consumer takes no more).
async fn claim(
    worker: &Worker,
    hint: RunId,
    shutdown: &CancellationToken,
) -> Result<Option<ClaimedRun>, DbError> {
    let lease = worker.config.worker.lease;
    worker
        .db_patiently(
            Patience::UntilStopped(shutdown),
            "claim a run",
            |client| async move { claim_next(&client, worker.id, lease, Some(hint)).await },
        )
        .await
}

/// After a claim failed for another reason than an outage: claims and reads in
/// separate statements, so a run whose row cannot be read is named and failed
/// (`delivery_limit_exceeded`) instead of failing every claim behind it (the
/// fair claim would pick it again and again).
async fn claim_around_poison(worker: &Worker, hint: RunId) -> Result<Option<ClaimedRun>, DbError> {
    let lease = worker.config.worker.lease;
    for _ in 0..3 {
        let claimed =
            worker
                .db(|client| async move {
                    claim_unreadable(&client, worker.id, lease, Some(hint)).await
                })
                .await?;
        let poisoned = match claimed {
            Unreadable::Nothing => return Ok(None),
            Unreadable::Claimed(run) => return Ok(Some(*run)),
            Unreadable::Poisoned(run_id) => run_id,
        };
        tracing::error!(%poisoned, "a run's stored data cannot be read; failing it");
        worker
            .db(|client| async move {
                fail_unclaimed_run(
                    &client,
                    poisoned,
                    Some(worker.id),
                    FailureCode::DeliveryLimitExceeded,
                    "the run's stored data cannot be read, so no worker can process it",
                )
                .await
            })
            .await?;
        worker.webhook_wake.notify_one();
    }
    Ok(None)
}

fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
