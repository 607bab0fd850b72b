//! The reaper: takes back runs whose lease expired (their worker died, hung or
//! lost Postgres) and queues them again. Any number of reapers may run; they never
//! take the same run.

use std::{sync::Arc, time::Duration};

use std::time::Instant;

use stewrd_shared::{
    db::{idempotency::forget_expired, outbox, run::requeue_expired_leases, webhook},
    metrics as names,
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Runs requeued per statement.
const BATCH: i64 = 500;

/// How often the outbox and webhook backlogs are counted for the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// How often expired idempotency keys are deleted.
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Sweeps every few seconds (at most half a lease apart); now and then it also
/// forgets idempotency keys older than 24 hours.
pub(crate) async fn reap(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut forgotten_at = Instant::now();
    let mut sampled_at = Instant::now();
    let period = (worker.config.worker.lease / 2).min(Duration::from_secs(5));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let result = match worker.pool.get().await {
            Ok(client) => requeue_expired_leases(&client, BATCH).await,
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(requeued) if !requeued.is_empty() => {
                metrics::counter!(names::LEASES_EXPIRED).increment(requeued.len() as u64);
                tracing::warn!(count = requeued.len(), runs = ?requeued, "requeued runs whose lease expired");
                worker.relay_wake.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reaper sweep failed"),
        }
        if sampled_at.elapsed() >= SAMPLE_EVERY {
            sampled_at = Instant::now();
            sample_backlogs(&worker).await;
        }
        if forgotten_at.elapsed() >= FORGET_EVERY {
            forgotten_at = Instant::now();
            if let Ok(client) = worker.pool.get().await {
                match forget_expired(&client).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "expired idempotency keys forgotten"),
                    Err(error) => tracing::warn!(%error, "cannot forget expired idempotency keys"),
                }
            }
        }
    }
}

/// Counts what is waiting: outbox rows due now, webhook events not yet delivered.
async fn sample_backlogs(worker: &Worker) {
    let Ok(client) = worker.pool.get().await else {
        return;
    };
    if let Ok(due) = outbox::count_due(&client).await {
        metrics::gauge!(names::OUTBOX_DUE).set(due as f64);
    }
    if let Ok(pending) = webhook::pending_events(&client).await {
        metrics::gauge!(names::WEBHOOK_BACKLOG).set(pending as f64);
    }
}
