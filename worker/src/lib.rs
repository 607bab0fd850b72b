//! The worker: consumes job messages, claims runs in Postgres, calls the provider,
//! stores results. Besides the consumer, each worker process runs the lease
//! heartbeat, the reaper, an outbox relay and the dead-letter consumer, so a fleet
//! of identical workers needs nothing else to keep every promise.

mod acks;
mod announce;
mod cancel;
mod consumer;
mod control;
mod cooldown;
mod db;
mod deadletter;
mod housekeeping;
mod lease;
pub mod provider;
mod reaper;
pub mod run;
mod tools;
mod webhook;

use std::{sync::Arc, time::Duration};

use stewrd_shared::{
    db::{Pool, coalesce::Coalescer, run::ResultRow},
    domain::id::WorkerId,
    files::Files,
    mcp::McpClient,
    queue::{Topology, deltas::DeltaPublisher, relay::Relay},
    runtime::config::Config,
    secrets::crypto::MasterKeyRing,
};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::provider::ProviderClient;

/// How long a result commit runs before a second may start beside it: at a
/// moderate rate the results that finish meanwhile share the next commit
/// (with the claim hold and the result hold, `STEWRD_RESULT_HOLD_MS`, a job at
/// 500/s costs Postgres about a quarter less, BENCHMARKS.md, issue 32 parts 5,
/// 6 and 11), and a commit that hangs on a lock or a silent connection holds
/// the others back no longer than this.
const RESULT_SECOND_COMMIT_AFTER: Duration = Duration::from_millis(50);

/// Everything a job needs, shared by all jobs of one process.
pub struct Worker {
    /// This process's identity on the leases it takes.
    pub id: WorkerId,
    pub config: Arc<Config>,
    pub pool: Pool,
    /// Decrypts project provider keys, just before each call.
    pub master_keys: Arc<MasterKeyRing>,
    pub provider: ProviderClient,
    pub topology: Topology,
    /// Wakes this process's relay after a run is put back in the outbox.
    pub relay_wake: Arc<Notify>,
    /// Wakes this process's webhook dispatcher after an event is recorded.
    pub webhook_wake: Arc<Notify>,
    /// Tells long-polls about finished runs, batched.
    announcer: announce::Announcer,
    /// Stores results, coalesced into shared commits.
    results: Coalescer<ResultRow>,
    /// Runs in flight here, for cancellation.
    cancellations: cancel::Cancellations,
    /// Keys paused after a 429, as every worker learnt it.
    cooldowns: cooldown::Cooldowns,
    /// Signed outgoing calls (webhooks and server tools): no redirects, the
    /// SSRF guard on the addresses connected to.
    hooks: webhook::WebhookClient,
    /// Streamed text on its way to the API processes' clients.
    deltas: DeltaPublisher,
    /// Server tool calls in flight here, all runs together
    /// (`STEWRD_TOOL_CONCURRENCY`).
    tool_permits: tokio::sync::Semaphore,
    /// Files (inputs sent to models, artifacts tools make), when a store is set.
    files: Option<Files>,
    /// MCP servers' sessions, one per server and set of headers, shared by
    /// every run here; guarded as webhooks are.
    mcp: McpClient,
    /// `web_fetch`'s GETs, guarded as webhooks are.
    fetcher: reqwest::Client,
    /// The browser host's client, when `STEWRD_BROWSER_HOST_URL` is set.
    browsers: Option<tools::browser::Browsers>,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the provider HTTP client: {0}")]
    Provider(#[from] provider::BuildError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Files(#[from] stewrd_shared::files::store::StoreError),
}

/// Runs a worker until `shutdown`, then drains: in-flight runs get
/// `STEWRD_SHUTDOWN_GRACE_SECS` to finish and are handed back to the queue after that.
pub async fn run(
    config: Arc<Config>,
    pool: Pool,
    master_keys: Arc<MasterKeyRing>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let topology = Topology::new(&config.queue_prefix);
    let relay = Relay::new(pool.clone(), config.broker.clone(), topology.clone());
    let (announcer, announcements) = announce::Announcer::new();
    let background = CancellationToken::new();
    let results = Coalescer::start(
        pool.clone(),
        RESULT_SECOND_COMMIT_AFTER,
        config.worker.result_hold,
        background.clone(),
    );
    let (deltas, publish_deltas) =
        DeltaPublisher::new(config.broker.clone(), topology.clone(), background.clone());
    let files = match config.files.store {
        Some(_) => Some(Files::new(
            pool.clone(),
            master_keys.clone(),
            config.files.clone(),
        )?),
        None => None,
    };
    let worker = Arc::new(Worker {
        files,
        id: WorkerId::new(),
        provider: ProviderClient::new(config.providers.clone(), &config.worker)?,
        relay_wake: relay.waker(),
        webhook_wake: Arc::new(Notify::new()),
        topology,
        pool,
        master_keys,
        announcer,
        results,
        cancellations: cancel::Cancellations::default(),
        cooldowns: cooldown::Cooldowns::default(),
        hooks: webhook::WebhookClient::new(&config.webhook, config.webhook_allow_private)?,
        mcp: stewrd_shared::mcp::client_for(&config)?,
        fetcher: tools::fetch::client(config.webhook_allow_private)?,
        browsers: config
            .browser
            .clone()
            .map(tools::browser::Browsers::new)
            .transpose()?,
        deltas,
        tool_permits: tokio::sync::Semaphore::new(config.worker.tool_concurrency),
        config,
    });
    stewrd_shared::runtime::metrics::install();
    tracing::info!(
        worker_id = %worker.id,
        concurrency = worker.config.worker.concurrency,
        "worker started"
    );

    // Background duties outlive the consumer's drain: leases must keep beating
    // while in-flight runs finish.
    let tasks = TaskTracker::new();
    tasks.spawn(relay.run(background.clone()));
    tasks.spawn(publish_deltas);
    tasks.spawn(lease::heartbeat(worker.clone(), background.clone()));
    tasks.spawn(reaper::reap(worker.clone(), background.clone()));
    tasks.spawn(housekeeping::run(worker.clone(), background.clone()));
    tasks.spawn(deadletter::consume(worker.clone(), background.clone()));
    tasks.spawn(control::listen(worker.clone(), background.clone()));
    tasks.spawn(announce::run(
        worker.pool.clone(),
        announcements,
        background.clone(),
    ));
    tasks.spawn(webhook::dispatch(
        worker.clone(),
        worker.hooks.clone(),
        background.clone(),
    ));
    tasks.close();

    let grace = worker.config.worker.shutdown_grace;
    consumer::consume(worker.clone(), shutdown, grace).await;

    background.cancel();
    tasks.wait().await;
    tracing::info!(worker_id = %worker.id, "worker stopped");
    Ok(())
}
