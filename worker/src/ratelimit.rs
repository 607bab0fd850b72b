//! What a worker checks before each provider call: the key's shared cool-down (an
//! in-process copy of `key_cooldowns`, kept current by notifications, so the check
//! costs no round trip) and the project's rate-limit slot (`db/ratelimit.rs`).

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

    /// Reads a notification payload: `"<hex fingerprint> <seconds>"`.
    pub fn apply_notification(&self, payload: &str) {
        let mut parts = payload.split(' ');
        let (Some(hex), Some(seconds)) = (parts.next(), parts.next()) else {
            return;
        };
        let (Some(fingerprint), Ok(seconds)) = (decode_fingerprint(hex), seconds.parse::<f64>())
        else {
            return;
        };
        if seconds.is_finite() && seconds > 0.0 {
            self.pause(fingerprint, Duration::from_secs_f64(seconds.min(86_400.0)));
        }
    }
}

/// Parses 32 hex digits.
pub fn decode_fingerprint(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
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

    #[test]
    fn a_notification_payload_pauses_the_key_and_garbage_is_ignored() {
        let cooldowns = Cooldowns::default();
        let hex = "0102030405060708090a0b0c0d0e0f10";
        cooldowns.apply_notification(&format!("{hex} 2.5"));
        let fingerprint = decode_fingerprint(hex).expect("hex");
        let left = cooldowns.paused_for(&fingerprint).expect("paused");
        assert!(left > Duration::from_secs(2) && left <= Duration::from_millis(2500));
        cooldowns.apply_notification("zz 3");
        cooldowns.apply_notification(&format!("{hex} soon"));
        assert_eq!(decode_fingerprint("12"), None);
    }
}
