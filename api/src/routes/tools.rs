//! A project's server tools: `PUT/GET /v1/project/tools`, and the same for the
//! operator under `/v1/admin/projects/{id}/tools`. Both go through the same
//! operator action, whose checks include the webhook URL checks for each URL.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::project::get_project,
    domain::{agent::ServerTool, id::ProjectId},
    ops::{self, ServerTools},
};

use super::admin::project_id;
use crate::{
    auth::{AdminAuth, ProjectAuth},
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadAdminToken, BadKey, BadRequest, NotFound, TooLarge, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/project/tools", get(show).put(replace))
        .route(
            "/v1/admin/projects/{id}/tools",
            get(admin_show).put(admin_replace),
        )
}

/// The server tools, in the order offered to the model.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolsIn {
    /// At most 32; replaces the project's tools.
    #[schema(max_items = 32)]
    tools: Vec<ServerTool>,
}

/// The project's server tools.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolsOut {
    tools: Vec<ServerTool>,
}

async fn tools_of(state: &AppState, id: ProjectId) -> Result<Json<ToolsOut>, ApiError> {
    let client = state.pool.get().await?;
    let project = get_project(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(Json(ToolsOut {
        tools: project.server_tools,
    }))
}

async fn set_tools(
    state: &AppState,
    id: ProjectId,
    body: ToolsIn,
) -> Result<Json<ToolsOut>, ApiError> {
    let tools = ServerTools::check(body.tools, state.config.webhook_allow_private).await?;
    let client = state.pool.get().await?;
    let project = ops::set_server_tools(&client, id, &tools).await?;
    Ok(Json(ToolsOut {
        tools: project.server_tools,
    }))
}

#[utoipa::path(
    operation_id = "get_project_tools",
    get,
    path = "/v1/project/tools",
    tag = "project",
    summary = "The project's server tools",
    responses((status = 200, description = "The tools", body = ToolsOut), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<Json<ToolsOut>, ApiError> {
    tools_of(&state, auth.project_id).await
}

#[utoipa::path(
    operation_id = "put_project_tools",
    put,
    path = "/v1/project/tools",
    tag = "project",
    summary = "Replace the project's server tools",
    request_body = ToolsIn,
    responses((status = 200, description = "The tools", body = ToolsOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    auth: ProjectAuth,
    JsonBody(body): JsonBody<ToolsIn>,
) -> Result<Json<ToolsOut>, ApiError> {
    set_tools(&state, auth.project_id, body).await
}

#[utoipa::path(
    operation_id = "admin_get_project_tools",
    get,
    path = "/v1/admin/projects/{id}/tools",
    tag = "admin",
    summary = "A project's server tools",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The tools", body = ToolsOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_show(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ToolsOut>, ApiError> {
    tools_of(&state, project_id(&id)?).await
}

#[utoipa::path(
    operation_id = "admin_put_project_tools",
    put,
    path = "/v1/admin/projects/{id}/tools",
    tag = "admin",
    summary = "Replace a project's server tools",
    params(("id" = String, Path, description = "Project id")),
    request_body = ToolsIn,
    responses((status = 200, description = "The tools", body = ToolsOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_replace(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ToolsIn>,
) -> Result<Json<ToolsOut>, ApiError> {
    set_tools(&state, project_id(&id)?, body).await
}
