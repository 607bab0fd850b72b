//! A project's MCP servers: `PUT/GET /v1/project/mcp_servers` (and the same for
//! the operator under `/v1/admin/projects/{id}/mcp_servers`), and
//! `GET …/mcp_servers/{name}/tools`, which connects now and lists what the
//! model would be offered. Header values are sealed when saved and shown by
//! name only; saving does not connect.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stewrd_shared::{
    db::project::{get_project, mcp_headers},
    domain::{
        id::ProjectId,
        mcp::{McpServer, McpServerIn},
    },
    mcp,
    ops::{self, McpServers},
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
        .route("/v1/project/mcp_servers", get(show).put(replace))
        .route("/v1/project/mcp_servers/{name}/tools", get(tools))
        .route(
            "/v1/admin/projects/{id}/mcp_servers",
            get(admin_show).put(admin_replace),
        )
        .route(
            "/v1/admin/projects/{id}/mcp_servers/{name}/tools",
            get(admin_tools),
        )
}

/// The servers, replacing the project's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServersIn {
    /// At most 8.
    #[schema(max_items = 8)]
    servers: Vec<McpServerIn>,
}

/// The project's MCP servers (headers by name only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServersOut {
    servers: Vec<McpServer>,
}

/// A server's tools as the model would be offered them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpToolsOut {
    /// `{"name": "<server>__<tool>", "description", "parameters"}`.
    #[schema(value_type = Vec<Object>)]
    tools: Vec<Value>,
}

async fn servers_of(state: &AppState, id: ProjectId) -> Result<Json<McpServersOut>, ApiError> {
    let client = state.pool.get().await?;
    let project = get_project(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(Json(McpServersOut {
        servers: project.mcp_servers,
    }))
}

async fn set_servers(
    state: &AppState,
    id: ProjectId,
    body: McpServersIn,
) -> Result<Json<McpServersOut>, ApiError> {
    let servers = McpServers::check(body.servers, state.config.webhook_allow_private).await?;
    let client = state.pool.get().await?;
    let project = ops::set_mcp_servers(&client, &state.master_keys, id, &servers).await?;
    Ok(Json(McpServersOut {
        servers: project.mcp_servers,
    }))
}

/// Connects to the server now and lists its tools (`allowed_tools` applied).
async fn tools_of(
    state: &AppState,
    id: ProjectId,
    name: &str,
) -> Result<Json<McpToolsOut>, ApiError> {
    let client = state.pool.get().await?;
    let project = get_project(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    let server = project
        .mcp_servers
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found("MCP server"))?;
    let sealed = mcp_headers(&client, id).await?;
    drop(client);
    let headers = mcp::open_headers(&state.master_keys, id, sealed.as_deref()).map_err(|error| {
        tracing::error!(%error, project_id = %id, "cannot open the project's MCP header values");
        ApiError::bad_gateway(
            "mcp_server_error",
            "the server's header values cannot be read (see the operator's logs)",
        )
    })?;
    let endpoint = mcp::endpoint(server, &headers);
    let limit = state.config.worker.mcp_connect;
    let tools = mcp::tools_of(&state.mcp, server, &endpoint, limit)
        .await
        .map_err(|error| {
            ApiError::bad_gateway(
                "mcp_server_error",
                format!(
                    "the MCP server `{}`: {}",
                    server.name,
                    endpoint.scrub(&error.to_string())
                ),
            )
        })?;
    Ok(Json(McpToolsOut {
        tools: tools.iter().map(|t| t.shown()).collect(),
    }))
}

#[utoipa::path(
    operation_id = "get_project_mcp_servers",
    get,
    path = "/v1/project/mcp_servers",
    tag = "project",
    summary = "The project's MCP servers",
    responses((status = 200, description = "The servers (header values never shown)", body = McpServersOut), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<Json<McpServersOut>, ApiError> {
    servers_of(&state, auth.project_id).await
}

#[utoipa::path(
    operation_id = "put_project_mcp_servers",
    put,
    path = "/v1/project/mcp_servers",
    tag = "project",
    summary = "Replace the project's MCP servers",
    description = "Header values are stored sealed and never shown again; saving does not connect.",
    request_body = McpServersIn,
    responses((status = 200, description = "The servers", body = McpServersOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    auth: ProjectAuth,
    JsonBody(body): JsonBody<McpServersIn>,
) -> Result<Json<McpServersOut>, ApiError> {
    set_servers(&state, auth.project_id, body).await
}

#[utoipa::path(
    get,
    path = "/v1/project/mcp_servers/{name}/tools",
    tag = "project",
    summary = "Connect to an MCP server now and list its tools",
    params(("name" = String, Path, description = "The server's name")),
    responses((status = 200, description = "The tools the model would be offered", body = McpToolsOut), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 502, description = "The server could not be listed (`mcp_server_error`)", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn tools(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(name): Path<String>,
) -> Result<Json<McpToolsOut>, ApiError> {
    tools_of(&state, auth.project_id, &name).await
}

#[utoipa::path(
    operation_id = "admin_get_project_mcp_servers",
    get,
    path = "/v1/admin/projects/{id}/mcp_servers",
    tag = "admin",
    summary = "A project's MCP servers",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The servers", body = McpServersOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_show(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<McpServersOut>, ApiError> {
    servers_of(&state, project_id(&id)?).await
}

#[utoipa::path(
    operation_id = "admin_put_project_mcp_servers",
    put,
    path = "/v1/admin/projects/{id}/mcp_servers",
    tag = "admin",
    summary = "Replace a project's MCP servers",
    params(("id" = String, Path, description = "Project id")),
    request_body = McpServersIn,
    responses((status = 200, description = "The servers", body = McpServersOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_replace(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<McpServersIn>,
) -> Result<Json<McpServersOut>, ApiError> {
    set_servers(&state, project_id(&id)?, body).await
}

#[utoipa::path(
    get,
    path = "/v1/admin/projects/{id}/mcp_servers/{name}/tools",
    tag = "admin",
    summary = "Connect to a project's MCP server now and list its tools",
    params(("id" = String, Path, description = "Project id"), ("name" = String, Path, description = "The server's name")),
    responses((status = 200, description = "The tools the model would be offered", body = McpToolsOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 502, description = "The server could not be listed (`mcp_server_error`)", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_tools(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<McpToolsOut>, ApiError> {
    tools_of(&state, project_id(&id)?, &name).await
}
