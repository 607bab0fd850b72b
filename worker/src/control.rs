//! The worker's notification listener: cancellations, key cool-downs and new
//! webhook events reach every worker through one Postgres `LISTEN` connection.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use stewrd_shared::db::{
    cooldown,
    notify::{self, Notification},
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Listens until `shutdown`. On every (re)connect the running cool-downs are
/// re-read, so a worker that starts (or reconnects) during one still honors it.
pub(crate) async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) {
    let on_connect = {
        let worker = worker.clone();
        move || -> BoxFuture<'static, ()> {
            let worker = worker.clone();
            Box::pin(async move {
                let result = worker
                    .db(|client| async move { cooldown::active_cooldowns(&client).await })
                    .await;
                match result {
                    Ok(active) => {
                        for (fingerprint, seconds) in active {
                            if let Ok(fingerprint) = <[u8; 16]>::try_from(fingerprint.as_slice()) {
                                worker.cooldowns.pause(
                                    fingerprint,
                                    std::time::Duration::from_secs_f64(seconds.max(0.0)),
                                );
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read running cool-downs"),
                }
            })
        }
    };
    let on_notify = |channel: &str, payload: &str| match notify::parse(channel, payload) {
        Some(Notification::Cancel(run_id)) => worker.cancellations.cancel(run_id),
        Some(Notification::Cooldown { fingerprint, wait }) => {
            worker.cooldowns.pause(fingerprint, wait);
        }
        Some(Notification::WebhookDue) => worker.webhook_wake.notify_one(),
        _ => {}
    };
    stewrd_shared::db::listen::listen(
        worker.config.database.clone(),
        worker.config.database_tls.clone(),
        &[notify::CANCEL, notify::COOLDOWN, notify::WEBHOOK],
        shutdown,
        on_connect,
        on_notify,
    )
    .await;
}
