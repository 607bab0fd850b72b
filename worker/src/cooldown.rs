//! Key cool-downs as this worker knows them: an in-process copy of
//! `key_cooldowns` (`db/cooldown.rs`), kept current by notifications, so the
//! check before each provider call costs no round trip.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Key fingerprint → end of its pause.
#[derive(Clone, Default)]
pub struct Cooldowns {
    until: Arc<Mutex<HashMap<[u8; 16], Instant>>>,
}

impl Cooldowns {
    /// Notes a pause (never shortening one).
    pub fn pause(&self, fingerprint: [u8; 16], pause: Duration) {
        let end = Instant::now() + pause;
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let entry = until.entry(fingerprint).or_insert(end);
        *entry = (*entry).max(end);
        until.retain(|_, end| *end > Instant::now());
    }

    /// How long calls with this key must still wait, if at all.
    pub fn paused_for(&self, fingerprint: &[u8; 16]) -> Option<Duration> {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until
            .get(fingerprint)
            .and_then(|end| end.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_applies_to_its_key_only_and_ends() {
        let cooldowns = Cooldowns::default();
        cooldowns.pause([1; 16], Duration::from_millis(50));
        assert!(cooldowns.paused_for(&[1; 16]).is_some());
        assert!(cooldowns.paused_for(&[2; 16]).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cooldowns.paused_for(&[1; 16]).is_none());
    }
}
