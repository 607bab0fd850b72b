//! Slowing down whoever guesses the admin token. Each client gets ten wrong
//! tries for free; after that its wrong tries must wait, a wait that doubles
//! with every further failure (1 s, 2 s, 4 s … at most five minutes). A right
//! token resets the count, and so do fifteen quiet minutes.
//!
//! The right token is never refused: a 32-character random token cannot be
//! guessed, and refusing it would lock the operator out from behind any proxy
//! or NAT a guesser shares. Only wrong tries wait. A project's own API key
//! (`sk-stw_…`) sent to an admin route is a mistake, not a guess, and is not
//! counted. IPv6 clients are counted per /64 (one host holds a whole /64), and
//! a full table forgets its oldest entries, never everyone's.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Wrong tries before any wait.
const FREE_FAILURES: u32 = 10;
/// The longest wait between tries.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Clients remembered at once; past it the oldest are forgotten first.
const CAPACITY: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Whom failures are counted for: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl From<IpAddr> for Client {
    fn from(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// Recent admin-token failures by client.
#[derive(Clone, Default)]
pub struct AdminThrottle {
    failures: Arc<Mutex<HashMap<Client, Failures>>>,
}

/// How long a client with `count` failures waits after its last one.
fn wait_after(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(extra) => Duration::from_secs(1u64 << extra.min(16)).min(MAX_WAIT),
    }
}

impl AdminThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Client, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A wrong token from `address`: `Err(wait)` while the client must wait
    /// (the try is refused, and not counted again), else the failure is
    /// counted and `Ok`.
    pub fn wrong(&self, address: IpAddr) -> Result<(), Duration> {
        let client = Client::from(address);
        let mut failures = self.lock();
        if let Some(seen) = failures.get(&client).copied() {
            let since = seen.last.elapsed();
            if since >= FORGET_AFTER {
                failures.remove(&client);
            } else if let Some(left) = wait_after(seen.count).checked_sub(since)
                && !left.is_zero()
            {
                return Err(left);
            }
        }
        if failures.len() >= CAPACITY && !failures.contains_key(&client) {
            make_room(&mut failures);
        }
        let seen = failures.entry(client).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        seen.count = seen.count.saturating_add(1);
        seen.last = Instant::now();
        Ok(())
    }

    /// The right token from `address`: its failures are forgotten.
    pub fn right(&self, address: IpAddr) {
        self.lock().remove(&Client::from(address));
    }
}

/// Forgets what has expired, or else the client seen least recently.
fn make_room(failures: &mut HashMap<Client, Failures>) {
    failures.retain(|_, seen| seen.last.elapsed() < FORGET_AFTER);
    if failures.len() < CAPACITY {
        return;
    }
    if let Some(oldest) = failures
        .iter()
        .min_by_key(|(_, seen)| seen.last)
        .map(|(client, _)| *client)
    {
        failures.remove(&oldest);
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
            assert!(throttle.wrong(guesser).is_ok());
        }
        let wait = throttle.wrong(guesser).expect_err("the eleventh try waits");
        assert!(wait <= Duration::from_secs(1) && !wait.is_zero());
        assert!(
            throttle.wrong(operator).is_ok(),
            "other addresses are not slowed"
        );
        throttle.right(guesser);
        assert!(throttle.wrong(guesser).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(Client::from(a), Client::from(b));
        assert_ne!(Client::from(a), Client::from(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("mapped");
        assert_eq!(
            Client::from(mapped),
            Client::from(IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn a_full_table_forgets_its_oldest_client_not_everyone() {
        let throttle = AdminThrottle::default();
        let guesser: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..12 {
            let _ = throttle.wrong(guesser);
        }
        for i in 0..CAPACITY as u32 {
            let _ = throttle.wrong(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
        }
        // The guesser was seen first and is gone; but everyone else is kept.
        assert_eq!(throttle.lock().len(), CAPACITY);
        let recent: IpAddr = IpAddr::from((0x0a00_0000 + CAPACITY as u32 - 1).to_be_bytes());
        assert!(throttle.lock().contains_key(&Client::from(recent)));
    }
}
