//! `GET /v1/sessions/{id}/events`: server-sent events, every event of the
//! session in order (`feed.rs`): status changes, committed steps, resets and
//! streamed text. Without `Last-Event-ID` the current state comes first; with it,
//! exactly what followed that event. The stream ends once the session's latest
//! run is final and its events are sent.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{Path, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures_util::{Stream, StreamExt, stream};

use super::sessions::session_id;
use crate::{
    auth::ProjectAuth,
    error::ApiError,
    feed::{Feed, Start},
    openapi::responses::{BadKey, BadRequest, NotFound, Unavailable},
    state::AppState,
};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One server-sent event (the OpenAPI description of the stream's items).
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the stream in the OpenAPI document only"
)]
pub(crate) struct SessionEvent {
    /// `session.<status>` (data: the session without messages, at that status),
    /// `run.step` (`{"run_id", "step": {…as in /steps…}}`), `run.reset`
    /// (`{"run_id", "step"}`: drop that step's deltas so far) or `run.delta`
    /// (`{"run_id", "step", "text"}`, only for runs submitted with `stream: true`).
    event: String,
    /// Increasing within the session (a whole number); send it back as
    /// `Last-Event-ID` to resume just after it.
    id: String,
    /// JSON.
    data: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{id}/events", get(events))
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = "sessions",
    summary = "Server-sent events: every event of the session, resumable",
    params(("id" = String, Path, description = "Session id"), ("Last-Event-ID" = Option<String>, Header, description = "Resume just after this event (kept 24 h after its run ends)", pattern = "^[0-9]{10,16}$")),
    responses((status = 200, description = "An event stream (`session.<status>`, `run.step`, `run.reset`, `run.delta`)", content_type = "text/event-stream", body = SessionEvent), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 410, description = "The events after `Last-Event-ID` are past their retention", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let session_id = session_id(&id)?;
    let start = Start::from_header(
        headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok()),
    )?;
    let feed = Feed::open(state.clone(), auth.project_id, session_id, start).await?;
    Ok(sse(&state, feed))
}

/// The stream of a feed: ended at once when the process stops (clients
/// reconnect with `Last-Event-ID`), keep-alive comments every 15 s.
pub(crate) fn sse(
    state: &AppState,
    feed: Feed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let stopping = state.stopping.clone().cancelled_owned();
    let stream = stream::unfold(feed, |feed| async move {
        feed.next().await.map(|(event, feed)| (Ok(event), feed))
    })
    .take_until(stopping);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
