//! The reaper: takes back runs whose lease expired (their worker died, hung or
//! lost Postgres) and queues them again, and fails runs whose wait for the
//! client's tool outputs ran out. Any number of reapers may run; they never take
//! the same run.

use std::{sync::Arc, time::Duration};

use stewrd_shared::{
    db::{run::requeue_expired_leases, wait::expire_paused_runs},
    runtime::metrics as names,
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Runs requeued per statement.
const BATCH: i64 = 500;

/// Sweeps every few seconds (at most half a lease apart).
pub(crate) async fn reap(worker: Arc<Worker>, shutdown: CancellationToken) {
    let period = (worker.config.worker.lease / 2).min(Duration::from_secs(5));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let result = worker
            .db(|client| async move { requeue_expired_leases(&client, BATCH).await })
            .await;
        match result {
            Ok(requeued) if !requeued.is_empty() => {
                metrics::counter!(names::LEASES_EXPIRED).increment(requeued.len() as u64);
                tracing::warn!(count = requeued.len(), runs = ?requeued, "requeued runs whose lease expired");
                worker.relay_wake.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reaper sweep failed"),
        }
        let expired = worker
            .db(|client| async move { expire_paused_runs(&client, BATCH).await })
            .await;
        match expired {
            Ok(runs) if !runs.is_empty() => {
                tracing::warn!(count = runs.len(), runs = ?runs, "runs failed: their tool outputs never came");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "expiry sweep failed"),
        }
    }
}
