//! The session page's live answer: the session's event stream for a signed-in
//! operator, the same feed as `GET /v1/sessions/{id}/events` (the page's script
//! joins the deltas and applies resets, as a client should).

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use stewrd_shared::{db::session::session_project, domain::id::SessionId};

use super::{Operator, failure};
use crate::{
    error::ApiError,
    feed::{Feed, Start},
    routes::events::sse,
    state::AppState,
};

pub(super) async fn events(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(session_id) = id.parse::<SessionId>() else {
        return failure(ApiError::not_found("session"));
    };
    let start = match Start::from_header(
        headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok()),
    ) {
        Ok(start) => start,
        Err(error) => return failure(error),
    };
    let project = async {
        let client = state.pool.get().await?;
        Ok::<_, ApiError>(session_project(&client, session_id).await?)
    };
    let project_id = match project.await {
        Ok(Some(project_id)) => project_id,
        Ok(None) => return failure(ApiError::not_found("session")),
        Err(error) => return failure(error),
    };
    match Feed::open(state.clone(), project_id, session_id, start).await {
        Ok(feed) => sse(&state, feed).into_response(),
        Err(error) => failure(error),
    }
}
