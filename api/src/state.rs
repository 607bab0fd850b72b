//! What every handler shares.

use std::sync::{Arc, atomic::AtomicBool};

use stewrd_shared::{
    db::{Pool, coalesce::Coalescer, run::NewRun},
    files::Files,
    mcp::McpClient,
    queue::{deltas::DeltaHub, relay::FastLane},
    runtime::config::Config,
    secrets::crypto::MasterKeyRing,
};

use tokio_util::sync::CancellationToken;

use crate::{auth::AuthCache, throttle::AdminThrottle, watch::SessionWatch};

/// The application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    /// Encrypts provider keys (and webhook secrets) before they are stored.
    pub master_keys: Arc<MasterKeyRing>,
    /// Publishes a committed run at once through the in-process relay.
    pub relay: FastLane,
    /// Stores concurrent submits of new sessions in shared commits.
    pub submits: Coalescer<NewRun>,
    /// Whether the relay holds a live broker channel.
    pub broker_up: Arc<AtomicBool>,
    /// Long-poll waiters.
    pub watch: SessionWatch,
    /// Live deltas of streamed answers, for event streams.
    pub deltas: DeltaHub,
    /// Recently checked API keys.
    pub auth_cache: AuthCache,
    /// Recent wrong admin tokens, by client address.
    pub admin_throttle: AdminThrottle,
    /// This process's metrics, for `/metrics`.
    pub metrics: stewrd_shared::runtime::metrics::PrometheusHandle,
    /// Cancelled when the process stops: long-polls answer and event streams end.
    pub stopping: CancellationToken,
    /// Files, when a store is set (`STEWRD_FILE_STORE`).
    pub files: Option<Files>,
    /// Reaches projects' MCP servers (to list their tools on request).
    pub mcp: Arc<McpClient>,
}
