//! `POST /v1/agent`: store a message and queue its run; answer at once.

use std::collections::BTreeMap;

use axum::{Extension, Json, Router, extract::State, http::StatusCode, routing::post};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::{
        DbError,
        run::{InsertRunError, NewRun, SessionTarget, insert_run},
    },
    id::{RunId, SessionId},
    llm::choose_llm,
    model::RunStatus,
};
use time::OffsetDateTime;

use super::project::validated_webhook_url;
use crate::{
    auth::ProjectAuth, error::ApiError, extract::JsonBody, request_id::RequestId, state::AppState,
};

/// Metadata limits, as Stripe's: enough for ids and tags, not for payloads.
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;
const MAX_MODEL_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/agent", post(create))
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentIn {
    message: String,
    #[serde(default)]
    session_id: Option<SessionId>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
}

/// The 202 answer.
#[derive(Debug, Serialize)]
pub struct AgentOut {
    session_id: SessionId,
    run_id: RunId,
    status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

async fn create(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Extension(request_id): Extension<RequestId>,
    JsonBody(body): JsonBody<CreateAgentIn>,
) -> Result<(StatusCode, Json<AgentOut>), ApiError> {
    validate(&body)?;
    let webhook_url = match body.webhook_url.as_deref() {
        None => None,
        Some(text) => Some(validated_webhook_url(&state, "webhook_url", text).await?),
    };
    let metadata = body.metadata.as_ref().map(|m| serde_json::json!(m));
    let empty = serde_json::json!({});
    let (session_id, session) = match body.session_id {
        Some(id) => (
            id,
            SessionTarget::Existing {
                id,
                metadata: metadata.as_ref(),
            },
        ),
        None => {
            let id = SessionId::new();
            let metadata = metadata.as_ref().unwrap_or(&empty);
            (id, SessionTarget::New { id, metadata })
        }
    };
    let choice = choose_llm(&auth.llm, body.model.as_deref(), &state.config.default_llm);
    let run = NewRun {
        id: RunId::new(),
        project_id: auth.project_id,
        session,
        input: &body.message,
        system: body.system.as_deref(),
        requested_model: body.model.as_deref(),
        max_tokens: body.max_tokens.map(|n| n as i32),
        temperature: body.temperature,
        webhook_url: webhook_url.as_deref(),
        request_id: Some(&request_id.0),
        choice: &choice,
        deadline: state.config.worker.run_deadline,
    };
    let client = state.pool.get().await.map_err(DbError::from)?;
    let created_at = insert_run(&client, &run).await.map_err(|error| match error {
        InsertRunError::SessionNotFound => ApiError::not_found("session"),
        InsertRunError::SessionBusy => ApiError::conflict(
            "session_busy",
            "the session already has a queued or running message; wait for it to finish or cancel it",
        ),
        InsertRunError::Db(error) => error.into(),
    })?;
    drop(client);
    state.relay_wake.notify_one();
    tracing::info!(%session_id, run_id = %run.id, "run queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(AgentOut {
            session_id,
            run_id: run.id,
            status: RunStatus::Queued,
            created_at,
        }),
    ))
}

fn validate(body: &CreateAgentIn) -> Result<(), ApiError> {
    if body.message.trim().is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "message",
            "`message` must not be empty",
        ));
    }
    if let Some(model) = &body.model {
        if model.trim().is_empty()
            || model.chars().count() > MAX_MODEL_CHARS
            || model.chars().any(char::is_control)
        {
            return Err(ApiError::invalid(
                "invalid_value",
                "model",
                format!("`model` must be 1 to {MAX_MODEL_CHARS} printable characters"),
            ));
        }
    }
    if let Some(metadata) = &body.metadata {
        validate_metadata(metadata)?;
    }
    if let Some(max_tokens) = body.max_tokens {
        if !(1..=1_000_000).contains(&max_tokens) {
            return Err(ApiError::invalid(
                "invalid_value",
                "max_tokens",
                "`max_tokens` must be between 1 and 1000000",
            ));
        }
    }
    if let Some(temperature) = body.temperature {
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                "invalid_value",
                "temperature",
                "`temperature` must be between 0 and 2",
            ));
        }
    }
    Ok(())
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(ApiError::invalid(
            "invalid_value",
            "metadata",
            format!("`metadata` holds at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(ApiError::invalid(
                "invalid_value",
                "metadata",
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(ApiError::invalid(
                "invalid_value",
                format!("metadata.{key}"),
                format!("metadata values are at most {MAX_METADATA_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}
