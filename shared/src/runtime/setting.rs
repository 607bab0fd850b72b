//! A setting that cannot be used: what configuration and the TLS set-up it
//! reads both answer with, in one line naming the variable to fix.

/// A setting that could not be used; the message names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub name: &'static str,
    /// What is wrong with it, never its (possibly secret) value.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}
