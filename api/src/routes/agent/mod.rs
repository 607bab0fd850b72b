//! `POST /v1/agent`: store a message and queue its run; answer at once.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

mod admit;
mod input;

use std::time::Duration;

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stewrd_shared::{
    db::{
        DbError,
        file::files_by_id,
        idempotency::{KeyState, check_key, remember},
        outbox::{DueMessage, retry_after},
        project::get_project,
        run::{InsertRunError, NewRun, SessionTarget, insert_run},
    },
    domain::{
        file::{FileId, shown_as},
        id::{RunId, SessionId},
        llm::choose_llm,
        model::RunStatus,
    },
    queue::relay::UNCLAIMED_REPUBLISH,
    runtime::metrics as names,
};
use time::OffsetDateTime;

pub use self::input::CreateAgentIn;
use self::input::{agent_settings, validate};
use super::project::checked_webhook_url;
use crate::{
    auth::ProjectAuth,
    detach::detached,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadKey, BadRequest, NotFound, OverLimit, TooLarge, Unavailable},
    request_id::RequestId,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agent", post(create))
        .route_layer(middleware::from_fn(detached))
}

/// The 202 answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentOut {
    session_id: SessionId,
    run_id: RunId,
    status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// Files a message may carry at most.
const MAX_FILES: usize = 10;

/// The files attached to a message: each a ready file of the project, of a
/// kind a model reads (images, PDFs, text), none twice.
async fn attached_files(
    state: &AppState,
    auth: &ProjectAuth,
    ids: Option<&[FileId]>,
) -> Result<Vec<FileId>, ApiError> {
    let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
        return Ok(Vec::new());
    };
    let refuse = |message: String| ApiError::invalid("invalid_value", "files", message);
    if ids.len() > MAX_FILES {
        return Err(refuse(format!(
            "a message carries at most {MAX_FILES} files"
        )));
    }
    if let Some(twice) = ids
        .iter()
        .enumerate()
        .find(|(i, id)| ids[..*i].contains(id))
    {
        return Err(refuse(format!("`{}` is attached twice", twice.1)));
    }
    let client = state.pool.get().await?;
    let rows = files_by_id(&client, auth.project_id, ids).await?;
    if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|row| row.id == **id)) {
        return Err(refuse(format!("there is no file `{missing}`")));
    }
    if let Some(odd) = rows
        .iter()
        .find(|row| shown_as(&row.content_type).is_none())
    {
        return Err(refuse(format!(
            "`{}` is {}: a message carries images, PDFs and text files only",
            odd.id, odd.content_type
        )));
    }
    Ok(ids.to_vec())
}

#[utoipa::path(
    post,
    path = "/v1/agent",
    tag = "sessions",
    summary = "Submit a message; answers at once",
    request_body = CreateAgentIn,
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x20-\x7e]{1,255}$", description = "Same key and body within 24 h: the same answer")),
    responses((status = 202, description = "Stored and queued", body = AgentOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 409, description = "The session already has a queued or running message, or the Idempotency-Key is in use", body = crate::error::ErrorResponse), (status = 413, response = inline(TooLarge)), (status = 422, description = "Idempotency-Key reused with another body", body = crate::error::ErrorResponse), (status = 429, response = inline(OverLimit)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateAgentIn>,
) -> Result<Response, ApiError> {
    validate(&body)?;
    let idempotency_key = idempotency_key(&headers)?;
    // Only a run naming tools needs the project's server tools to be checked against.
    let server_tools = if body.tools.is_some() || body.tool_choice.is_some() {
        let client = state.pool.get().await?;
        get_project(&client, auth.project_id)
            .await?
            .map(|project| project.server_tools)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let agent = agent_settings(&body, &server_tools)?;
    let files = attached_files(&state, &auth, body.files.as_deref()).await?;
    let webhook_url = match body.webhook_url.as_deref() {
        None => None,
        Some(text) => Some(checked_webhook_url(&state, "webhook_url", text).await?),
    };
    let metadata = body.metadata.as_ref().map(|m| serde_json::json!(m));
    let (session_id, session) = match body.session_id {
        Some(id) => (id, SessionTarget::Existing { id, metadata }),
        None => {
            let id = SessionId::new();
            let metadata = metadata.unwrap_or_else(|| serde_json::json!({}));
            (id, SessionTarget::New { id, metadata })
        }
    };
    let default = &state.config.default_llm;
    let choice = choose_llm(
        &auth.llm,
        body.model.as_deref(),
        default.provider,
        &default.model,
    );
    let fast = state.relay.open();
    let run = NewRun {
        id: RunId::new(),
        project_id: auth.project_id,
        session,
        input: body.message.clone(),
        system: body.system.clone(),
        requested_model: body.model.clone(),
        // Validated to 1..=1,000,000 above.
        max_tokens: body.max_tokens.and_then(|n| i32::try_from(n).ok()),
        temperature: body.temperature,
        webhook_url: webhook_url.as_ref().map(|url| url.as_str().to_owned()),
        request_id: Some(request_id.0.clone()),
        choice: choice.clone(),
        agent,
        files,
        deadline: state.config.worker.run_deadline,
        publish_delay: if fast {
            UNCLAIMED_REPUBLISH
        } else {
            Duration::ZERO
        },
    };
    let run_id = run.id;
    let mut client = state.pool.get().await?;
    let answer = if idempotency_key.is_none() && !admit::needs_lock(&auth) {
        admit::admit(&client, &state, &auth, &choice).await?;
        let created_at = if matches!(run.session, SessionTarget::New { .. }) {
            // Shares a commit with the submits arriving meanwhile; the
            // connection goes back first, as the committer needs one.
            drop(client);
            state.submits.write(run).await?.map_err(insert_error)?
        } else {
            insert_run(&client, &run).await.map_err(insert_error)?
        };
        accepted(session_id, run_id, created_at)
    } else {
        let transaction = client.transaction().await.map_err(DbError::from)?;
        let idempotency = match idempotency_key {
            None => None,
            Some(key) => {
                let hash = fingerprint(&body);
                match check_key(&transaction, auth.project_id, &key, &hash).await? {
                    KeyState::Busy => {
                        return Err(ApiError::conflict(
                            "idempotency_key_in_use",
                            "another request with this Idempotency-Key is in progress; retry shortly",
                        ));
                    }
                    KeyState::Mismatch => {
                        return Err(ApiError::unprocessable(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with a different request body",
                        ));
                    }
                    KeyState::Replay { status, response } => {
                        return Ok(replay(status, response));
                    }
                    KeyState::Fresh => Some((key, hash)),
                }
            }
        };
        admit::admit(&transaction, &state, &auth, &choice).await?;
        let created_at = insert_run(&transaction, &run).await.map_err(insert_error)?;
        let answer = accepted(session_id, run_id, created_at);
        if let Some((key, hash)) = idempotency {
            let body = serde_json::to_value(&answer).unwrap_or_default();
            remember(&transaction, auth.project_id, &key, &hash, 202, &body).await?;
        }
        transaction.commit().await.map_err(DbError::from)?;
        answer
    };
    let message = DueMessage {
        run_id,
        request_id: Some(request_id.0.clone()),
    };
    if fast && !state.relay.publish(message) {
        // The lane is full: let the relay's slow path publish it now. The run
        // is stored either way (its outbox row falls due on its own), so a
        // failure here is not the client's.
        if let Err(error) = publish_soon(&state, run_id).await {
            tracing::warn!(%error, %run_id, "the relay will publish the run at its republish time");
        }
    }
    metrics::counter!(names::RUNS_SUBMITTED).increment(1);
    tracing::info!(%session_id, %run_id, "run queued");
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

async fn publish_soon(state: &AppState, run_id: RunId) -> Result<(), DbError> {
    let client = state.pool.get().await?;
    retry_after(&client, &[run_id], Duration::ZERO).await
}

fn accepted(session_id: SessionId, run_id: RunId, created_at: OffsetDateTime) -> AgentOut {
    AgentOut {
        session_id,
        run_id,
        status: RunStatus::Queued,
        created_at,
    }
}

fn insert_error(error: InsertRunError) -> ApiError {
    match error {
        InsertRunError::SessionNotFound => ApiError::not_found("session"),
        InsertRunError::SessionBusy => ApiError::conflict(
            "session_busy",
            "the session already has a queued or running message; wait for it to finish or cancel it",
        ),
        InsertRunError::Db(error) => error.into(),
    }
}

/// The stored answer to a repeated request, marked as a replay.
fn replay(status: i32, response: serde_json::Value) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::ACCEPTED);
    let mut reply = (status, Json(response)).into_response();
    reply
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    reply
}

/// The `Idempotency-Key` header, if sent: 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(ApiError::invalid(
            "invalid_value",
            "Idempotency-Key",
            "`Idempotency-Key` must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 of the request as parsed, not as sent: the same request with its
/// fields in another order, other spacing or `5.0` for `5` is the same request,
/// and bytes that parsing ignores cannot make two requests look alike.
fn fingerprint(body: &CreateAgentIn) -> [u8; 32] {
    Sha256::digest(serde_json::to_vec(body).unwrap_or_default()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    #[test]
    fn the_same_request_sent_differently_has_the_same_fingerprint() {
        let of =
            |body: &str| fingerprint(&parse_json::<CreateAgentIn>(body.as_bytes()).expect("valid"));
        let a = of(r#"{"message":"hi","max_tokens":5,"metadata":{"a":"1","b":"2"}}"#);
        let b = of(r#"{ "metadata": {"b":"2","a":"1"}, "max_tokens": 5.0, "message": "hi" }"#);
        let c = of(r#"{"message":"hi!","max_tokens":5,"metadata":{"a":"1","b":"2"}}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
