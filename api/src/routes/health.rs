//! Liveness and readiness.

use std::{sync::atomic::Ordering, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use stewrd_shared::runtime::metrics::PrometheusHandle;

use crate::{auth::metrics_allowed, error::ApiError, state::AppState};

/// How long readiness waits for Postgres.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Prometheus text exposition of this process's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Open unless `STEWRD_METRICS_TOKEN` is set; then that token is required as a bearer.",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String), (status = 401, description = "`STEWRD_METRICS_TOKEN` is set and was not sent", body = crate::error::ErrorResponse)),
    security((), ("metrics_token" = []))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<([(header::HeaderName, &'static str); 1], String), ApiError> {
    if !metrics_allowed(&headers, state.config.metrics_token.as_ref()) {
        return Err(metrics_refusal());
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

/// `/metrics` alone, for a process with no API (a worker): the same exposition
/// behind the same token.
pub fn metrics_only(handle: PrometheusHandle, token: Option<SecretString>) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move {
            if !metrics_allowed(&headers, token.as_ref()) {
                return metrics_refusal().into_response();
            }
            handle.render().into_response()
        }),
    )
}

/// The answer to a `/metrics` request without the metrics token.
fn metrics_refusal() -> ApiError {
    ApiError::unauthorized(
        "invalid_metrics_token",
        "send STEWRD_METRICS_TOKEN as `Authorization: Bearer …`",
    )
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process is up", body = Object))
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Postgres answers and the relay holds a broker channel: 200, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: Postgres and RabbitMQ reachable",
    responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Postgres or RabbitMQ unreachable", body = Object))
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = tokio::time::timeout(PROBE_TIMEOUT, async {
        let client = state.pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let rabbitmq = state.broker_up.load(Ordering::Relaxed);
    let status = if postgres && rabbitmq {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "up" } else { "down" };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
            "postgres": word(postgres),
            "rabbitmq": word(rabbitmq),
        })),
    )
}

/// Any unknown route.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
