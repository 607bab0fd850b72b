//! The operator's API, behind `STEWRD_ADMIN_TOKEN`: projects and their API keys.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post, put},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::project::list_projects,
    domain::id::{ApiKeyId, ProjectId},
    ops::{self, ProjectName, RateLimit},
};
use time::OffsetDateTime;

use super::project::{ProjectOut, PutLlmIn, project_view, remove_llm, update_llm};
use crate::{
    auth::AdminAuth,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadAdminToken, BadRequest, NotFound, TooLarge, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/projects", post(create_project).get(list))
        .route("/v1/admin/projects/{id}", get(show))
        .route(
            "/v1/admin/projects/{id}/llm",
            get(show_llm).put(put_llm).delete(delete_llm),
        )
        .route("/v1/admin/projects/{id}/rate-limit", put(put_rate_limit))
        .route("/v1/admin/projects/{id}/api-keys", post(create_key))
        .route(
            "/v1/admin/projects/{id}/api-keys/{key_id}",
            delete(revoke_key),
        )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProjectIn {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitIn {
    /// Requests per minute; `null` removes the project's own limit.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    requests_per_minute: Option<i64>,
}

/// The new project and its first API key (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedProjectOut {
    project: ProjectOut,
    /// Shown this once.
    api_key: String,
}

/// Every project, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProjectList {
    data: Vec<ProjectOut>,
}

/// A new API key (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedKeyOut {
    id: ApiKeyId,
    /// Shown this once.
    api_key: String,
    display_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

pub(crate) fn project_id(text: &str) -> Result<ProjectId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("project"))
}

#[utoipa::path(
    post,
    path = "/v1/admin/projects",
    tag = "admin",
    summary = "Create a project and its first API key",
    request_body = CreateProjectIn,
    responses((status = 201, description = "Created", body = CreatedProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn create_project(
    State(state): State<AppState>,
    _admin: AdminAuth,
    JsonBody(body): JsonBody<CreateProjectIn>,
) -> Result<(StatusCode, Json<CreatedProjectOut>), ApiError> {
    let name = ProjectName::parse(&body.name)?;
    let (project, key) = ops::create_project(&state.pool, &state.master_keys, &name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedProjectOut {
            project: ProjectOut::new(project, &state.config.default_llm),
            api_key: key.secret.expose_secret().to_owned(),
        }),
    ))
}

#[utoipa::path(
    operation_id = "admin_list_projects",
    get,
    path = "/v1/admin/projects",
    tag = "admin",
    summary = "Every project",
    responses((status = 200, description = "Projects", body = ProjectList), (status = 401, response = inline(BadAdminToken)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<ProjectList>, ApiError> {
    let client = state.pool.get().await?;
    let data = list_projects(&client)
        .await?
        .into_iter()
        .map(|row| ProjectOut::new(row, &state.config.default_llm))
        .collect();
    Ok(Json(ProjectList { data }))
}

#[utoipa::path(
    operation_id = "admin_get_project",
    get,
    path = "/v1/admin/projects/{id}",
    tag = "admin",
    summary = "One project",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    project_view(&state, project_id(&id)?).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/admin/projects/{id}/llm",
    tag = "admin",
    summary = "A project's provider configuration (the project view)",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn show_llm(
    state: State<AppState>,
    admin: AdminAuth,
    id: Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    show(state, admin, id).await
}

#[utoipa::path(
    operation_id = "admin_put_project_llm",
    put,
    path = "/v1/admin/projects/{id}/llm",
    tag = "admin",
    summary = "Set a project's provider, model and key",
    request_body = PutLlmIn,
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn put_llm(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PutLlmIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    update_llm(&state, project_id(&id)?, body).await.map(Json)
}

#[utoipa::path(
    operation_id = "admin_delete_project_llm",
    delete,
    path = "/v1/admin/projects/{id}/llm",
    tag = "admin",
    summary = "Forget a project's provider configuration",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn delete_llm(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    remove_llm(&state, project_id(&id)?).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/v1/admin/projects/{id}/api-keys",
    tag = "admin",
    summary = "Issue another API key",
    params(("id" = String, Path, description = "Project id")),
    responses((status = 201, description = "The key, shown once", body = CreatedKeyOut), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CreatedKeyOut>), ApiError> {
    let client = state.pool.get().await?;
    let (row, key) = ops::issue_api_key(&client, project_id(&id)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyOut {
            id: row.id,
            api_key: key.secret.expose_secret().to_owned(),
            display_prefix: row.display_prefix,
            created_at: row.created_at,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/projects/{id}/api-keys/{key_id}",
    tag = "admin",
    summary = "Revoke an API key",
    params(("id" = String, Path, description = "Project id"), ("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "Revoked"), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    revoke_key_of(&state, project_id(&id)?, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a project's key and forgets this process's cached lookups of the
/// project at once (other processes hear of it from the database's trigger).
pub async fn revoke_key_of(
    state: &AppState,
    project_id: ProjectId,
    key_id: &str,
) -> Result<(), ApiError> {
    let key_id: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("API key"))?;
    let client = state.pool.get().await?;
    ops::revoke_api_key(&client, Some(project_id), key_id).await?;
    state.auth_cache.forget_project(project_id);
    Ok(())
}

#[utoipa::path(
    put,
    path = "/v1/admin/projects/{id}/rate-limit",
    tag = "admin",
    summary = "Set a project's requests-per-minute limit",
    request_body = RateLimitIn,
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn put_rate_limit(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RateLimitIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    let project_id = project_id(&id)?;
    let limit = RateLimit::parse(body.requests_per_minute)?;
    let client = state.pool.get().await?;
    let row = ops::set_rate_limit(&client, project_id, limit).await?;
    Ok(Json(ProjectOut::new(row, &state.config.default_llm)))
}
