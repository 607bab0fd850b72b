//! The agent side of a session: a run's steps, and the client's tool outputs
//! that resume a run waiting in `requires_action`.

use axum::{
    Json, Router,
    extract::{Path, State},
    middleware,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::{
        outbox::{DueMessage, retry_after},
        session::get_session,
        wait::{Answer, Answers, ResumeError, resume},
    },
    domain::{
        agent::MAX_TOOL_OUTPUT_BYTES,
        id::{ProjectId, RunId, SessionId},
        model::Wait,
    },
    queue::relay::UNCLAIMED_REPUBLISH,
    view::{Detail, SessionOut, StepOut},
};

use super::sessions::session_id;
use crate::{
    auth::ProjectAuth,
    detach::detached,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadKey, BadRequest, NotFound, TooLarge, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}/runs/{run_id}/steps", get(steps))
        .route(
            "/v1/sessions/{id}/tool_outputs",
            // Like a submit: once begun, it commits and publishes whatever the client does.
            post(tool_outputs).route_layer(middleware::from_fn(detached)),
        )
}

/// A run's steps, in order.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StepList {
    data: Vec<StepOut>,
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/runs/{run_id}/steps",
    tag = "sessions",
    summary = "A run's committed steps: model calls and tool calls",
    params(("id" = String, Path, description = "Session id"), ("run_id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The steps, in order", body = StepList), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn steps(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path((id, run_id)): Path<(String, String)>,
) -> Result<Json<StepList>, ApiError> {
    let id = session_id(&id)?;
    let run_id: RunId = run_id.parse().map_err(|_| ApiError::not_found("run"))?;
    let client = state.pool.get().await?;
    let record = get_session(&client, auth.project_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let run = record
        .runs
        .iter()
        .find(|run| run.id == run_id)
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(StepList {
        data: StepOut::of_run(run, &record.steps),
    }))
}

/// The body of `POST /v1/sessions/{id}/tool_outputs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOutputsIn {
    /// One output for every pending call, in one request.
    #[schema(min_items = 1)]
    tool_outputs: Vec<ToolOutputIn>,
}

/// The output of one tool call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolOutputIn {
    #[schema(min_length = 1, pattern = r"^[^\x00]*$")]
    tool_call_id: String,
    /// At most 64 KiB.
    #[schema(max_length = 65536, pattern = r"^[^\x00]*$")]
    output: String,
}

#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/tool_outputs",
    tag = "sessions",
    summary = "Answer the pending tool calls of a run in requires_action; the run goes on",
    params(("id" = String, Path, description = "Session id")),
    request_body = ToolOutputsIn,
    responses((status = 200, description = "The session, queued again", body = SessionOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 409, description = "The session is not waiting for tool outputs", body = crate::error::ErrorResponse), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn tool_outputs(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ToolOutputsIn>,
) -> Result<Json<SessionOut>, ApiError> {
    let id = session_id(&id)?;
    if body.tool_outputs.is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "tool_outputs",
            "`tool_outputs` must answer every pending call",
        ));
    }
    if let Some(i) = body
        .tool_outputs
        .iter()
        .position(|o| o.output.len() > MAX_TOOL_OUTPUT_BYTES)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            format!("tool_outputs[{i}].output"),
            format!("a tool output is at most {MAX_TOOL_OUTPUT_BYTES} bytes"),
        ));
    }
    let answers: Vec<Answer> = body
        .tool_outputs
        .into_iter()
        .map(|o| Answer {
            tool_call_id: o.tool_call_id,
            output: o.output,
        })
        .collect();
    let session = resume_run(&state, auth.project_id, id, Answers::Outputs(&answers)).await?;
    tracing::info!(session_id = %id, "tool outputs received; run queued");
    Ok(Json(session))
}

/// Resumes the session's paused run with `answers` (the one way every wait
/// is answered), publishes it, and returns the session as it now stands.
pub(crate) async fn resume_run(
    state: &AppState,
    project_id: ProjectId,
    id: SessionId,
    answers: Answers<'_>,
) -> Result<SessionOut, ApiError> {
    let fast = state.relay.open();
    let delay = if fast {
        UNCLAIMED_REPUBLISH
    } else {
        std::time::Duration::ZERO
    };
    let mut client = state.pool.get().await?;
    let (field, taken) = match answers.wait() {
        Wait::Client => ("tool_outputs", "tool outputs"),
        Wait::Approval => ("decisions", "decisions"),
    };
    let run_id = resume(
        &mut client,
        project_id,
        id,
        answers,
        state.config.worker.run_deadline,
        delay,
    )
    .await
    .map_err(|error| match error {
        ResumeError::SessionNotFound => ApiError::not_found("session"),
        ResumeError::NotWaiting(status) => ApiError::conflict(
            "session_not_waiting",
            format!("the session is {status}: only a session in requires_action takes {taken}"),
        ),
        ResumeError::OtherWait(wait) => ApiError::conflict(
            "session_not_waiting",
            format!(
                "the session's run waits for `{}`, not for {taken}",
                wait.action()
            ),
        ),
        ResumeError::Mismatch(message) => ApiError::invalid("invalid_value", field, message),
        ResumeError::Stale(message) => ApiError::conflict("approval_stale", message),
        ResumeError::Db(error) => error.into(),
    })?;
    let message = DueMessage {
        run_id,
        request_id: None,
    };
    if fast && !state.relay.publish(message) {
        retry_after(&client, &[run_id], std::time::Duration::ZERO).await?;
    }
    let record = get_session(&client, project_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    tracing::info!(session_id = %id, %run_id, "{taken} taken; run queued");
    SessionOut::from_record(&record, Detail::Full).ok_or_else(|| ApiError::not_found("session"))
}
