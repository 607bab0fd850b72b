//! `GET /v1/sessions/{id}` (with long-poll) and `GET /v1/sessions`.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::{
        run::{CancelOutcome, cancel_session},
        session::{get_session, get_session_status, list_sessions},
        webhook::{list_deliveries, retry_latest_event},
    },
    domain::{id::SessionId, model::RunStatus},
    runtime::metrics as names,
    view::{DeliveryOut, Detail, SessionOut},
};
use tokio::time::Instant;

use crate::{
    auth::ProjectAuth,
    error::ApiError,
    extract::QueryParams,
    openapi::responses::{BadKey, BadRequest, NotFound, Unavailable},
    state::AppState,
};

/// Longest long-poll.
const MAX_WAIT_SECS: u64 = 60;
const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", get(list))
        .route("/v1/sessions/{id}", get(show))
        .route("/v1/sessions/{id}/cancel", post(cancel))
        .route("/v1/sessions/{id}/deliveries", get(deliveries))
        .route("/v1/sessions/{id}/deliveries/retry", post(retry_delivery))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShowParams {
    /// Seconds to wait for a final status (0-60).
    #[serde(default)]
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
}

/// A session id from the path; a malformed one is as unknown as a missing one.
pub(crate) fn session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("session"))
}

#[utoipa::path(
    operation_id = "get_session",
    get,
    path = "/v1/sessions/{id}",
    tag = "sessions",
    summary = "A session, optionally waiting for its result",
    params(("id" = String, Path, description = "Session id"), ShowParams),
    responses((status = 200, description = "The session", body = SessionOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<ShowParams>,
) -> Result<Json<SessionOut>, ApiError> {
    let id = session_id(&id)?;
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::invalid(
            "invalid_value",
            "wait",
            format!("`wait` is at most {MAX_WAIT_SECS} seconds"),
        ));
    }
    if wait > 0 {
        wait_until_final(&state, &auth, id, Duration::from_secs(wait)).await?;
    }
    // Boxed, as the reads in the wait are: a future is as large as its largest
    // state, and a long-poll holds this one for the whole wait.
    Box::pin(load(&state, &auth, id)).await.map(Json)
}

async fn load(state: &AppState, auth: &ProjectAuth, id: SessionId) -> Result<SessionOut, ApiError> {
    let client = state.pool.get().await?;
    let record = get_session(&client, auth.project_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    SessionOut::from_record(&record, Detail::Full).ok_or_else(|| ApiError::not_found("session"))
}

/// A 404 unless the session exists and belongs to the caller's project.
async fn ensure_session(
    client: &stewrd_shared::db::Client,
    auth: &ProjectAuth,
    id: SessionId,
) -> Result<(), ApiError> {
    match get_session_status(client, auth.project_id, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("session")),
    }
}

/// Delivery attempts.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryList {
    data: Vec<DeliveryOut>,
}

/// Every webhook delivery attempt for the session's events, oldest first.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/deliveries",
    tag = "webhooks",
    summary = "Webhook delivery attempts",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Every attempt, oldest first", body = DeliveryList), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = session_id(&id)?;
    let client = state.pool.get().await?;
    ensure_session(&client, &auth, id).await?;
    let data = list_deliveries(&client, auth.project_id, id)
        .await?
        .into_iter()
        .map(DeliveryOut::from)
        .collect();
    Ok(Json(DeliveryList { data }))
}

/// The event made due again.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RetriedOut {
    event_id: String,
    status: &'static str,
}

/// Sends the session's latest event again (same `webhook-id`, fresh retry window).
#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/deliveries/retry",
    tag = "webhooks",
    summary = "Send the latest event again",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 202, description = "Due now, same webhook-id", body = RetriedOut), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 409, description = "The session has no webhook event", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn retry_delivery(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<RetriedOut>), ApiError> {
    let id = session_id(&id)?;
    let client = state.pool.get().await?;
    ensure_session(&client, &auth, id).await?;
    let event_id = retry_latest_event(&client, auth.project_id, id)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "no_webhook_event",
                "the session has no webhook event to send again",
            )
        })?;
    tracing::info!(session_id = %id, %event_id, "webhook delivery retried");
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(RetriedOut {
            event_id,
            status: "pending",
        }),
    ))
}

/// Stops the session's queued or running run; 409 when it is already final.
#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/cancel",
    tag = "sessions",
    summary = "Stop the queued or running message",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Cancelled", body = SessionOut), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 409, description = "Already final", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<SessionOut>, ApiError> {
    let id = session_id(&id)?;
    let outcome = {
        let client = state.pool.get().await?;
        cancel_session(&client, auth.project_id, id).await?
    };
    match outcome {
        CancelOutcome::Cancelled(run_id) => {
            metrics::counter!(names::RUNS_FINISHED, "status" => "cancelled", "code" => "cancelled")
                .increment(1);
            tracing::info!(session_id = %id, %run_id, "run cancelled");
            load(&state, &auth, id).await.map(Json)
        }
        CancelOutcome::AlreadyFinal => Err(ApiError::conflict(
            "session_not_active",
            "the session has no queued or running message to cancel",
        )),
        CancelOutcome::NotFound => Err(ApiError::not_found("session")),
    }
}

/// Returns once the session is final or waits for tool outputs, `wait` has
/// passed or the process stops.
/// Subscribes before reading, so a change between the read and the wait still
/// wakes it.
async fn wait_until_final(
    state: &AppState,
    auth: &ProjectAuth,
    id: SessionId,
    wait: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + wait;
    let mut subscription = state.watch.subscribe(id);
    loop {
        // Boxed: only the wait's own state is held while it waits (see `show`).
        let status = Box::pin(async {
            let client = state.pool.get().await?;
            get_session_status(&client, auth.project_id, id).await
        })
        .await?;
        match status {
            None => return Err(ApiError::not_found("session")),
            // A run waiting for the client's tools answers too: the client must act.
            Some(status) if status.is_final() || status == RunStatus::RequiresAction => {
                return Ok(());
            }
            Some(_) => {}
        }
        // Answer with what there is at the deadline, or at once when stopping.
        tokio::select! {
            () = subscription.changed() => {}
            () = tokio::time::sleep_until(deadline) => return Ok(()),
            () = state.stopping.cancelled() => return Ok(()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only sessions whose latest run has this status.
    #[serde(default)]
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Sessions per page (1-100, default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(format = Uuid)]
    after: Option<String>,
}

/// A page of sessions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionPage {
    data: Vec<SessionOut>,
    next_cursor: Option<SessionId>,
}

#[utoipa::path(
    operation_id = "list_sessions",
    get,
    path = "/v1/sessions",
    tag = "sessions",
    summary = "The project's sessions, newest first",
    params(ListParams),
    responses((status = 200, description = "A page", body = SessionPage), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: ProjectAuth,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<SessionPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "invalid_value",
                "status",
                "`status` must be queued, running, succeeded, failed or cancelled",
            )
        })?),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_value",
            "limit",
            format!("`limit` must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match params.after.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<SessionId>().map_err(|_| {
            ApiError::invalid(
                "invalid_value",
                "after",
                "`after` must be a cursor from next_cursor",
            )
        })?),
    };
    let client = state.pool.get().await?;
    let mut records = list_sessions(&client, auth.project_id, status, after, limit + 1).await?;
    let more = records.len() as i64 > limit;
    records.truncate(limit as usize);
    let data: Vec<SessionOut> = records
        .iter()
        .filter_map(|record| SessionOut::from_record(record, Detail::Summary))
        .collect();
    let next_cursor = more.then(|| data.last().map(|s| s.id)).flatten();
    Ok(Json(SessionPage { data, next_cursor }))
}
