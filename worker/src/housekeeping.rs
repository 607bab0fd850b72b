//! Slow chores of every worker: counting the outbox and webhook backlogs for the
//! metrics, and forgetting idempotency keys older than 24 hours.

use std::{sync::Arc, time::Duration};

use stewrd_shared::{
    db::{idempotency::forget_expired, outbox, webhook},
    metrics as names,
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// How often the outbox and webhook backlogs are counted for the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// How often expired idempotency keys are deleted (every 40th sample).
const FORGET_EVERY_SAMPLES: u32 = 40;

/// Samples the backlogs, and now and then forgets expired idempotency keys.
pub(crate) async fn run(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 1u32.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        sample_backlogs(&worker).await;
        if round % FORGET_EVERY_SAMPLES == 0 {
            forget_idempotency_keys(&worker).await;
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

async fn forget_idempotency_keys(worker: &Worker) {
    let Ok(client) = worker.pool.get().await else {
        return;
    };
    match forget_expired(&client).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "expired idempotency keys forgotten"),
        Err(error) => tracing::warn!(%error, "cannot forget expired idempotency keys"),
    }
}
