//! `GET /v1/sessions/{id}/events`: server-sent events. The current state at once,
//! then one event per status change until a final status, then the stream ends.
//! Event ids are `<run id>:<status>`, so a client reconnecting with
//! `Last-Event-ID` gets only what it has not seen. Streams are fed by the process's
//! one `LISTEN` connection, however many are open; keep-alive comments every 15 s.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{Path, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures_util::{Stream, StreamExt, stream};
use stewrd_shared::{
    db::{DbError, session::get_session},
    id::{ProjectId, SessionId},
    view::{Detail, SessionOut},
};

use super::sessions::session_id;
use crate::{
    auth::ProjectAuth,
    error::ApiError,
    openapi::responses::{BadKey, NotFound, Unavailable},
    state::AppState,
    watch::Subscription,
};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One server-sent event (the OpenAPI description of the stream's items).
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the stream in the OpenAPI document only"
)]
pub(crate) struct SessionEvent {
    /// `session.queued`, `session.running`, `session.succeeded`, `session.failed`
    /// or `session.cancelled`.
    event: String,
    /// `<run id>:<status>`; send it back as `Last-Event-ID` to resume.
    id: String,
    /// The session as JSON (without messages).
    data: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{id}/events", get(events))
}

/// The id of a session's current state.
fn state_id(session: &SessionOut) -> String {
    let run = session
        .runs
        .as_ref()
        .and_then(|runs| runs.last())
        .map(|run| run.id.to_string())
        .unwrap_or_default();
    format!("{run}:{}", session.status)
}

pub(crate) struct Feed {
    state: AppState,
    project_id: ProjectId,
    session_id: SessionId,
    subscription: Subscription,
    last_sent: Option<String>,
    done: bool,
}

impl Feed {
    async fn current(&self) -> Result<Option<SessionOut>, DbError> {
        let client = self.state.pool.get().await?;
        let record = get_session(&client, self.project_id, self.session_id).await?;
        Ok(record.and_then(|record| SessionOut::from_record(&record, Detail::WithoutMessages)))
    }

    /// The next event: the current state if not yet sent, else waits for a change.
    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if self.done {
                return None;
            }
            // Gone, or the database is unreachable: end; the client reconnects.
            let Ok(Some(session)) = self.current().await else {
                return None;
            };
            let id = state_id(&session);
            if self.last_sent.as_deref() != Some(id.as_str()) {
                self.done = session.status.is_final();
                self.last_sent = Some(id.clone());
                let data = serde_json::to_string(&session).unwrap_or_default();
                let event = Event::default()
                    .event(format!("session.{}", session.status))
                    .id(id)
                    .data(data);
                return Some((event, self));
            }
            if session.status.is_final() {
                // Resumed after the last event: nothing more will come.
                return None;
            }
            self.subscription.changed().await;
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = "sessions",
    summary = "Server-sent events: each status change until final",
    params(("id" = String, Path, description = "Session id"), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "An event stream: `session.<status>` events whose data is the session", content_type = "text/event-stream", body = SessionEvent), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let session_id = session_id(&id)?;
    // Subscribe before the first read, so no change can slip between the two.
    let subscription = state.watch.subscribe(session_id);
    let exists = {
        let client = state.pool.get().await?;
        get_session(&client, auth.project_id, session_id)
            .await?
            .is_some()
    };
    if !exists {
        return Err(ApiError::not_found("session"));
    }
    let last_sent = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let feed = Feed {
        state,
        project_id: auth.project_id,
        session_id,
        subscription,
        last_sent,
        done: false,
    };
    // A stopping process ends its streams; clients reconnect with Last-Event-ID.
    let stopping = feed.state.stopping.clone().cancelled_owned();
    let stream = stream::unfold(feed, |feed| async move {
        feed.next().await.map(|(event, feed)| (Ok(event), feed))
    })
    .take_until(stopping);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
