//! How the long-lived loops (relay, consumers, listeners, result commits) wait
//! before trying again after losing Postgres or RabbitMQ.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential backoff for reconnecting loops: 100 ms doubling to 5 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)).min(5_000))
}

/// Sleeps unless `stop` comes first.
pub async fn pause(stop: &CancellationToken, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_5_s() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(3200));
        assert_eq!(backoff(6), Duration::from_secs(5));
        assert_eq!(backoff(60), Duration::from_secs(5));
    }
}
