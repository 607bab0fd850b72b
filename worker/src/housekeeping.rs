//! Slow chores of every worker: counting the outbox and webhook backlogs and the
//! paused runs for the metrics, removing the bytes of deleted files and of
//! uploads cut off, closing browsers of runs that ended, forgetting
//! idempotency keys older than 24 hours, and dropping events past their
//! retention.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use stewrd_shared::{
    db::{
        event_log, file, idempotency::forget_expired, outbox, sign_out::forget_expired_sign_outs,
        wait, webhook,
    },
    runtime::metrics as names,
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// How often expired idempotency keys and events are deleted (events more
/// often when their retention is shorter).
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Samples the backlogs, and now and then forgets expired idempotency keys.
pub(crate) async fn run(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(worker.config.worker.backlog_sample_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forgotten_at = Instant::now();
    let mut purged_at = Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        sample_backlogs(&worker).await;
        clean_files(&worker).await;
        crate::tools::browser::sweep(&worker).await;
        if forgotten_at.elapsed() >= FORGET_EVERY {
            forgotten_at = Instant::now();
            forget_idempotency_keys(&worker).await;
            forget_sign_outs(&worker).await;
        }
        let retention = worker.config.worker.event_retention;
        if purged_at.elapsed() >= FORGET_EVERY.min(retention) {
            purged_at = Instant::now();
            purge_events(&worker, retention).await;
        }
    }
}

/// Counts what is waiting: outbox rows due now, webhook events not yet delivered,
/// runs paused for tool outputs.
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
    if let Ok(paused) = wait::count_paused(&client).await {
        metrics::gauge!(names::RUNS_AWAITING_OUTPUTS).set(paused as f64);
    }
}

async fn purge_events(worker: &Worker, retention: Duration) {
    let Ok(client) = worker.pool.get().await else {
        return;
    };
    match event_log::purge(&client, retention).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "events past their retention dropped"),
        Err(error) => tracing::warn!(%error, "cannot drop old events"),
    }
}

/// Removes the bytes of deleted files and of uploads cut off (by their
/// client, or a crash) for longer than `STEWRD_FILE_ABANDON_SECS`, then their rows.
async fn clean_files(worker: &Worker) {
    let Some(files) = &worker.files else { return };
    let Ok(client) = worker.pool.get().await else {
        return;
    };
    let stale = worker.config.files.abandon_after;
    let leftovers = match file::leftovers(&client, stale, 100).await {
        Ok(leftovers) => leftovers,
        Err(error) => {
            tracing::warn!(%error, "cannot list files to clean up");
            return;
        }
    };
    drop(client);
    for leftover in &leftovers {
        match files.clean(leftover).await {
            Ok(()) => tracing::debug!(file_id = %leftover.id, "file's bytes removed"),
            Err(error) => {
                tracing::warn!(%error, file_id = %leftover.id, "cannot remove a file's bytes yet");
            }
        }
    }
}

async fn forget_sign_outs(worker: &Worker) {
    let Ok(client) = worker.pool.get().await else {
        return;
    };
    if let Err(error) = forget_expired_sign_outs(&client).await {
        tracing::warn!(%error, "cannot forget expired dashboard sign-outs");
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
