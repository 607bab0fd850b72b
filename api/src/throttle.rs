//! Slowing down whoever guesses the admin token. Each client address gets ten
//! wrong tries for free; after that it must wait before the next one, a wait
//! that doubles with every further failure (1 s, 2 s, 4 s … at most five
//! minutes). A right token resets the count, and so do fifteen quiet minutes.
//! While an address must wait, even the right token is refused, so a guess
//! learns nothing. Behind a proxy every client shares the proxy's address:
//! there, guessing from one client slows the operator down too.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Wrong tries before any wait.
const FREE_FAILURES: u32 = 10;
/// The longest wait between tries.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at once; past it the oldest memories start over.
const CAPACITY: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Recent admin-token failures by client address.
#[derive(Clone, Default)]
pub struct AdminThrottle {
    failures: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

/// How long an address with `count` failures waits after its last one.
fn wait_after(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(extra) => Duration::from_secs(1u64 << extra.min(16)).min(MAX_WAIT),
    }
}

impl AdminThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` while `address` must wait before it may try again.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let mut failures = self.lock();
        let Some(seen) = failures.get(&address).copied() else {
            return Ok(());
        };
        let since = seen.last.elapsed();
        if since >= FORGET_AFTER {
            failures.remove(&address);
            return Ok(());
        }
        match wait_after(seen.count).checked_sub(since) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `address`.
    pub fn failed(&self, address: IpAddr) {
        let mut failures = self.lock();
        if failures.len() >= CAPACITY {
            failures.retain(|_, seen| seen.last.elapsed() < FORGET_AFTER);
            if failures.len() >= CAPACITY {
                failures.clear();
            }
        }
        let seen = failures.entry(address).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        seen.count = seen.count.saturating_add(1);
        seen.last = Instant::now();
    }

    /// The right token from `address`: its failures are forgotten.
    pub fn succeeded(&self, address: IpAddr) {
        self.lock().remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_are_free_then_the_wait_doubles_up_to_five_minutes() {
        assert_eq!(wait_after(9), Duration::ZERO);
        assert_eq!(wait_after(10), Duration::from_secs(1));
        assert_eq!(wait_after(11), Duration::from_secs(2));
        assert_eq!(wait_after(14), Duration::from_secs(16));
        assert_eq!(wait_after(40), MAX_WAIT);
        let throttle = AdminThrottle::default();
        let (guesser, operator) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        for _ in 0..10 {
            assert!(throttle.check(guesser).is_ok());
            throttle.failed(guesser);
        }
        let wait = throttle.check(guesser).expect_err("the eleventh try waits");
        assert!(wait <= Duration::from_secs(1) && !wait.is_zero());
        assert!(
            throttle.check(operator).is_ok(),
            "other addresses are not slowed"
        );
        throttle.succeeded(guesser);
        assert!(throttle.check(guesser).is_ok());
    }
}
