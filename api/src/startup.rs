//! Builds the router and runs the API until shutdown, draining open requests.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, middleware};
use stewrd_shared::{
    db::{Pool, coalesce::Coalescer},
    files::Files,
    queue::{Topology, deltas::DeltaHub, relay::Relay},
    runtime::config::Config,
    secrets::crypto::MasterKeyRing,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::AuthCache, extract::MAX_BODY_BYTES, headers, listener, request_id, routes, server,
    state::AppState, throttle::AdminThrottle, watch::SessionWatch,
};

/// Every route, with the request-id, default-header and body-limit layers.
pub fn router(state: AppState) -> Router {
    let https = state.config.listen_tls.is_some();
    Router::new()
        .merge(routes::agent::router())
        .merge(routes::sessions::router())
        .merge(routes::steps::router())
        .merge(routes::approvals::router())
        .merge(routes::tools::router())
        .merge(routes::mcp::router())
        .merge(routes::events::router())
        .merge(routes::project::router())
        .merge(routes::admin::router())
        .merge(routes::usage::router())
        .merge(routes::prices::router())
        .merge(routes::files::router(state.config.files.max_bytes))
        .merge(routes::health::router())
        .merge(crate::dashboard::router())
        .merge(crate::openapi::router())
        .fallback(routes::health::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(https, headers::defaults))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// Serves the API on `listener`, with an outbox relay and the status listener,
/// until `shutdown`; open requests get the grace period to finish.
pub async fn serve(
    config: Arc<Config>,
    pool: Pool,
    master_keys: Arc<MasterKeyRing>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let relay = Relay::new(
        pool.clone(),
        config.broker.clone(),
        Topology::new(&config.queue_prefix),
    )
    .hold_fast_lane(config.publish_hold);
    let background = CancellationToken::new();
    let (deltas, consume_deltas) = DeltaHub::new(
        config.broker.clone(),
        Topology::new(&config.queue_prefix),
        background.clone(),
    );
    let state = AppState {
        deltas,
        // A second commit at once, and no hold: a client waits on each submit.
        submits: Coalescer::start(
            pool.clone(),
            Duration::ZERO,
            Duration::ZERO,
            background.clone(),
        ),
        relay: relay.fast_lane(),
        broker_up: relay.broker_up(),
        watch: SessionWatch::default(),
        auth_cache: AuthCache::default(),
        admin_throttle: AdminThrottle::default(),
        metrics: stewrd_shared::runtime::metrics::install(),
        stopping: shutdown.clone(),
        files: match config.files.store {
            Some(_) => Some(
                Files::new(pool.clone(), master_keys.clone(), config.files.clone())
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        },
        mcp: Arc::new(stewrd_shared::mcp::client_for(&config).map_err(std::io::Error::other)?),
        pool,
        config: config.clone(),
        master_keys,
    };
    let tasks = TaskTracker::new();
    tasks.spawn(relay.run(background.clone()));
    tasks.spawn(consume_deltas);
    tasks.spawn(listener::listen(
        config.database.clone(),
        config.database_tls.clone(),
        state.watch.clone(),
        state.auth_cache.clone(),
        background.clone(),
    ));
    tasks.close();

    let address = listener.local_addr()?;
    let limits = server::Limits {
        header_read: config.http.header_read_timeout,
        max_connections: config.http.max_connections,
        grace: config.worker.shutdown_grace,
    };
    let tls = config.listen_tls.clone();
    tracing::info!(%address, https = tls.is_some(), "API listening");
    server::serve(listener, tls, router(state), limits, shutdown).await;
    background.cancel();
    tasks.wait().await;
    tracing::info!("API stopped");
    Ok(())
}
