//! When a run is tried: the wait before a retry, short waits taken here and
//! long ones handed back to the queue, the project's rate-limit slot, and the
//! key's cool-down shared with every worker.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

use std::time::Duration;

use backoff::{ExponentialBackoff, backoff::Backoff};
use stewrd_shared::db::{
    DbError,
    cooldown::record_cooldown,
    ratelimit::reserve_slot,
    run::{ClaimedRun, Requeue},
};

use super::Verdict;
use crate::Worker;

/// Waits up to this long happen in the worker; longer ones go back to the queue.
const SLEEP_AT_MOST: Duration = Duration::from_secs(2);
/// A deferred run is published this long before its slot, then sleeps to it.
const WAKE_EARLY: Duration = Duration::from_secs(1);

/// Waits here for a short wait; for a long one, returns the requeue that brings
/// the run back just before it ends.
pub(super) async fn wait_or_defer(wait: Duration, rate_slot: Option<Duration>) -> Option<Verdict> {
    if wait <= SLEEP_AT_MOST {
        tokio::time::sleep(wait).await;
        return None;
    }
    Some(Verdict::Requeue(Requeue {
        delay: wait.saturating_sub(WAKE_EARLY),
        counts_as_attempt: false,
        rate_slot,
    }))
}

pub(super) fn rate_limit(worker: &Worker, run: &ClaimedRun) -> Option<u32> {
    run.project
        .limits
        .requests_per_minute
        .and_then(|rpm| u32::try_from(rpm).ok())
        .or(worker.config.worker.default_rate_limit_rpm)
}

pub(super) async fn reserve(
    worker: &Worker,
    run: &ClaimedRun,
    rpm: u32,
) -> Result<Duration, DbError> {
    let burst = worker.config.worker.rate_limit_burst;
    worker
        .db(|client| async move { reserve_slot(&client, run.project_id, rpm, burst).await })
        .await
}

/// The wait before the next attempt: what the provider asked for (plus up to 10%,
/// at most a second, so a crowd of retries does not land at once), else
/// exponential backoff with full jitter.
pub fn retry_delay(
    attempt: i32,
    retry_after: Option<Duration>,
    base: Duration,
    max: Duration,
) -> Duration {
    if let Some(wait) = retry_after {
        let spread = (wait / 10).min(Duration::from_secs(1));
        return wait + spread.mul_f64(rand::random::<f64>());
    }
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let ceiling = base.saturating_mul(1 << doublings).min(max);
    // Randomization 1.0 around the ceiling's half is uniform over [0, ceiling]: full jitter.
    let mut policy = ExponentialBackoff {
        current_interval: ceiling / 2,
        initial_interval: ceiling / 2,
        randomization_factor: 1.0,
        multiplier: 1.0,
        max_interval: max,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    policy.next_backoff().unwrap_or(ceiling).min(max)
}

/// Pauses the key in this worker at once and in every other through Postgres.
pub(super) async fn share_cooldown(worker: &Worker, key_id: &[u8; 16], pause: Duration) {
    worker.cooldowns.pause(*key_id, pause);
    let result = worker
        .db(|client| async move { record_cooldown(&client, key_id, pause).await })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "cannot share the key's cool-down");
    }
}

/// Wakes this process's relay when the run falls due (plus a little slack for
/// clock differences), instead of leaving it to the relay's idle poll.
pub(super) fn wake_relay_after(worker: &Worker, delay: Duration) {
    let wake = worker.relay_wake.clone();
    if delay.is_zero() {
        wake.notify_one();
    } else if delay <= Duration::from_secs(60) {
        tokio::spawn(async move {
            tokio::time::sleep(delay + Duration::from_millis(20)).await;
            wake.notify_one();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=8 {
            let ceiling = (base * (1 << (attempt - 1))).min(max);
            let delays: Vec<_> = (0..200)
                .map(|_| retry_delay(attempt, None, base, max))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            assert!(
                delays.iter().any(|d| *d < ceiling / 4),
                "attempt {attempt}: no low draws"
            );
            assert!(
                delays.iter().any(|d| *d > ceiling * 3 / 4),
                "attempt {attempt}: no high draws"
            );
        }
    }

    #[test]
    fn retry_after_is_honored_with_a_little_spread() {
        let base = Duration::from_secs(1);
        for _ in 0..100 {
            let delay = retry_delay(
                1,
                Some(Duration::from_secs(2)),
                base,
                Duration::from_secs(60),
            );
            assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_millis(2200));
            let long = retry_delay(
                1,
                Some(Duration::from_secs(120)),
                base,
                Duration::from_secs(60),
            );
            assert!(long >= Duration::from_secs(120) && long <= Duration::from_secs(121));
        }
    }
}
