//! Postgres notifications: every channel stewrd uses, what its payload holds,
//! and the one parser of those payloads. Each process keeps one `LISTEN`
//! connection (`listen.rs`); notifications are small wake-ups, never the truth,
//! so a lost one only delays something that Postgres still knows.

use std::time::Duration;

use super::{DbError, GenericClient};
use crate::domain::{
    id::{ProjectId, RunId, SessionId},
    model::RunStatus,
};

/// Status changes, for long-polls and event streams. Payload: one
/// [`session_line`] per change, newline-separated (workers batch them).
pub const SESSION: &str = "stewrd_session";
/// A project or one of its API keys changed (written by the triggers of
/// migration 0007): evict cached key lookups. Payload: the project id.
pub const AUTH: &str = "stewrd_auth";
/// A run was cancelled: its worker aborts the call. Payload: the run id.
pub const CANCEL: &str = "stewrd_cancel";
/// A webhook event fell due: wake a dispatcher. Payload: empty.
pub const WEBHOOK: &str = "stewrd_webhook";
/// A provider key is cooling down after a 429. Payload:
/// `"<32 hex digits of the key's fingerprint> <seconds>"` (written in SQL by
/// `db::cooldown::record_cooldown`).
pub const COOLDOWN: &str = "stewrd_cooldown";

/// The longest wait a cool-down notification is believed for.
const MAX_COOLDOWN: Duration = Duration::from_secs(86_400);

/// One line of a [`SESSION`] payload. SQL that notifies writes the same form:
/// `session_id::text || ' ' || status`.
pub fn session_line(session_id: SessionId, status: RunStatus) -> String {
    format!("{session_id} {status}")
}

/// Sends `lines` (joined [`session_line`]s and [`changed_line`]s) on
/// [`SESSION`]. Prepared once per connection: a statement sent as text is
/// parsed and planned anew, in a round trip of its own, at every call (workers
/// send 1.4 of these a job at 500 jobs/s).
pub async fn send_session_lines(client: &impl GenericClient, lines: &str) -> Result<(), DbError> {
    let statement = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
    client.execute(&statement, &[&SESSION, &lines]).await?;
    Ok(())
}

/// A [`SESSION`] line for a change that is not a status (a step, a stream):
/// readers take only the session id.
pub fn changed_line(session_id: SessionId) -> String {
    format!("{session_id} changed")
}

/// What a notification says, read from its channel and payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// These sessions changed status.
    Sessions(Vec<SessionId>),
    /// This project's keys or settings changed.
    Project(ProjectId),
    /// This run was cancelled.
    Cancel(RunId),
    /// A webhook event is due.
    WebhookDue,
    /// Calls with this key wait this long.
    Cooldown {
        fingerprint: [u8; 16],
        wait: Duration,
    },
}

/// Reads a notification; `None` for an unknown channel or a payload that does
/// not parse (a wake-up lost, never a crash).
pub fn parse(channel: &str, payload: &str) -> Option<Notification> {
    match channel {
        SESSION => Some(Notification::Sessions(
            payload
                .lines()
                .filter_map(|line| line.split(' ').next()?.parse().ok())
                .collect(),
        )),
        AUTH => payload.parse().ok().map(Notification::Project),
        CANCEL => payload.parse().ok().map(Notification::Cancel),
        WEBHOOK => Some(Notification::WebhookDue),
        COOLDOWN => {
            let (hex, seconds) = payload.split_once(' ')?;
            let seconds: f64 = seconds.parse().ok()?;
            if !(seconds.is_finite() && seconds > 0.0) {
                return None;
            }
            Some(Notification::Cooldown {
                fingerprint: decode_fingerprint(hex)?,
                wait: Duration::from_secs_f64(seconds.min(MAX_COOLDOWN.as_secs_f64())),
            })
        }
        _ => None,
    }
}

/// Parses 32 hex digits.
fn decode_fingerprint(hex: &str) -> Option<[u8; 16]> {
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
    fn session_lines_parse_back_and_garbage_is_skipped() {
        let (a, b) = (SessionId::new(), SessionId::new());
        let payload = format!(
            "{}\nnot-a-session running\n{}",
            session_line(a, RunStatus::Running),
            session_line(b, RunStatus::Succeeded)
        );
        assert_eq!(
            parse(SESSION, &payload),
            Some(Notification::Sessions(vec![a, b]))
        );
    }

    #[test]
    fn a_cooldown_payload_gives_the_key_and_the_wait_and_garbage_is_ignored() {
        let hex = "0102030405060708090a0b0c0d0e0f10";
        let Some(Notification::Cooldown { fingerprint, wait }) =
            parse(COOLDOWN, &format!("{hex} 2.5"))
        else {
            panic!("a cool-down");
        };
        assert_eq!(fingerprint[0], 1);
        assert_eq!(fingerprint[15], 16);
        assert_eq!(wait, Duration::from_millis(2500));
        assert_eq!(parse(COOLDOWN, "zz 3"), None);
        assert_eq!(parse(COOLDOWN, &format!("{hex} soon")), None);
        assert_eq!(parse(COOLDOWN, &format!("{hex} -1")), None);
        assert_eq!(parse(COOLDOWN, "12 3"), None);
        assert_eq!(parse("stewrd_other", ""), None);
    }
}
