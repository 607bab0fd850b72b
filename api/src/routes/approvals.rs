//! `POST /v1/sessions/{id}/approvals`: a person's decisions on the tool calls
//! a paused run waits to have approved. The run resumes the way tool outputs
//! resume it (`steps::resume_run`): every pending call decided in one request,
//! an approval pinned to the arguments it quotes.

use axum::{
    Json, Router,
    extract::{Path, State},
    middleware,
    routing::post,
};
use serde::Deserialize;
use stewrd_shared::{
    db::wait::{Answers, Decision},
    domain::approval::MAX_REASON_CHARS,
    view::SessionOut,
};

use super::{sessions::session_id, steps::resume_run};
use crate::{
    auth::ProjectAuth,
    detach::detached,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadKey, BadRequest, NotFound, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/sessions/{id}/approvals",
        // Like tool outputs: once begun, it commits and publishes.
        post(approvals).route_layer(middleware::from_fn(detached)),
    )
}

/// The body of `POST /v1/sessions/{id}/approvals`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsIn {
    /// One decision for every call awaiting approval, in one request.
    #[schema(min_items = 1)]
    decisions: Vec<DecisionIn>,
}

/// A decision on one call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    #[schema(min_length = 1, pattern = r"^[^\x00]*$")]
    tool_call_id: String,
    approve: bool,
    /// Required to approve: the `arguments_sha256` that `required_action`
    /// shows for the call (an approval holds only for those arguments).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    arguments_sha256: Option<String>,
    /// Why (given to the model with a denial); at most 1,000 characters kept.
    #[serde(default)]
    #[schema(max_length = 1000, pattern = r"^[^\x00]*$")]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/approvals",
    tag = "sessions",
    summary = "Approve or deny the tool calls a run in requires_action waits on; the run goes on",
    params(("id" = String, Path, description = "Session id")),
    request_body = ApprovalsIn,
    responses((status = 200, description = "The session, queued again", body = SessionOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 409, description = "The session is not waiting for approvals (`session_not_waiting`), or an approval quotes arguments that are not the call's (`approval_stale`)", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn approvals(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ApprovalsIn>,
) -> Result<Json<SessionOut>, ApiError> {
    let id = session_id(&id)?;
    let decisions: Vec<Decision> = body
        .decisions
        .into_iter()
        .map(|d| Decision {
            tool_call_id: d.tool_call_id,
            approve: d.approve,
            arguments_sha256: d.arguments_sha256,
            reason: d.reason,
        })
        .collect();
    check(&decisions)?;
    let by = format!("api_key:{}", auth.key_id);
    let session = resume_run(
        &state,
        auth.project_id,
        id,
        Answers::Decisions(&decisions, &by),
    )
    .await?;
    tracing::info!(session_id = %id, decisions = decisions.len(), "approvals decided");
    Ok(Json(session))
}

/// The decisions, each with what it needs: a hash to approve, a reason of
/// text (no NUL: it is stored and given to the model). The API's and the
/// dashboard's.
pub(crate) fn check(decisions: &[Decision]) -> Result<(), ApiError> {
    if decisions.is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "decisions",
            "`decisions` must decide every call awaiting approval",
        ));
    }
    for (i, d) in decisions.iter().enumerate() {
        if d.approve && d.arguments_sha256.is_none() {
            return Err(ApiError::invalid(
                "invalid_value",
                format!("decisions[{i}].arguments_sha256"),
                "an approval must quote the call's `arguments_sha256`",
            ));
        }
        if let Some(reason) = &d.reason
            && (reason.contains('\0') || reason.chars().count() > MAX_REASON_CHARS)
        {
            return Err(ApiError::invalid(
                "invalid_value",
                format!("decisions[{i}].reason"),
                format!("a reason is at most {MAX_REASON_CHARS} characters, without NUL"),
            ));
        }
    }
    Ok(())
}
