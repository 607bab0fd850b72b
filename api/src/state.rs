//! What every handler shares.

use std::sync::{Arc, atomic::AtomicBool};

use stewrd_shared::{config::Config, crypto::MasterKeyRing, db::Pool};
use tokio::sync::Notify;

use crate::watch::SessionWatch;

/// The application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    /// Encrypts provider keys (and webhook secrets) before they are stored.
    pub master_keys: Arc<MasterKeyRing>,
    /// Wakes the in-process outbox relay after a submit commits.
    pub relay_wake: Arc<Notify>,
    /// Whether the relay holds a live broker channel.
    pub broker_up: Arc<AtomicBool>,
    /// Long-poll waiters.
    pub watch: SessionWatch,
}
