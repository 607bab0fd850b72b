//! The lease heartbeat: while a run is in flight its lease is extended, so only
//! the runs of a dead (or cut-off) worker ever expire. Only runs a live task of
//! this process still works on are extended: a run whose task is gone (it
//! panicked, say) lets its lease lapse and the reaper takes it back.

use std::sync::Arc;

use stewrd_shared::db::run::extend_leases;
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Extends the lease of every run in flight here, three times per lease period,
/// in one statement each time.
pub(crate) async fn heartbeat(worker: Arc<Worker>, shutdown: CancellationToken) {
    let lease = worker.config.worker.lease;
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let running = worker.cancellations.running();
        if running.is_empty() {
            continue;
        }
        let id = worker.id;
        let result = worker
            .db(|client| async move { extend_leases(&client, id, &running, lease).await })
            .await;
        match result {
            Ok(extended) if extended > 0 => tracing::trace!(extended, "leases extended"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot extend leases"),
        }
    }
}
