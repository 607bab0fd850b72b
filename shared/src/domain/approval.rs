//! Approvals: a person's yes (or no) before a tool call is made. A call that
//! needs one waits as a step (`awaiting(approval)`); the decision is pinned to
//! the call's arguments by their SHA-256, so what runs is exactly what was
//! approved, and it is kept on the step for audit.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What a person decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approved,
    Denied,
}

/// A decision, as kept on the step and shown in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub decision: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub decided_at: OffsetDateTime,
    /// `api_key:<key id>` or `operator`.
    pub by: String,
}

/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 1000;

/// The hash a decision must quote: lowercase hex SHA-256 of the arguments
/// exactly as the model wrote them.
pub fn arguments_sha256(arguments: &str) -> String {
    super::text::hex(&Sha256::digest(arguments.as_bytes()))
}

/// What the model gets for a denied call.
pub fn denied_output(reason: Option<&str>) -> String {
    super::agent::error_output(&format!(
        "denied: {}",
        reason
            .filter(|r| !r.is_empty())
            .unwrap_or("no reason given")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_of_the_arguments_as_written() {
        assert_eq!(
            arguments_sha256("{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_ne!(
            arguments_sha256(r#"{"a":1}"#),
            arguments_sha256(r#"{"a": 1}"#)
        );
        assert_eq!(
            denied_output(Some("too risky")),
            r#"{"error":"denied: too risky"}"#
        );
    }
}
