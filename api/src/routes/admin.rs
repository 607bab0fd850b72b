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
    db::{
        DbError,
        api_key::{insert_api_key, revoke_api_key},
        project::{
            create_project_with_key, get_project, list_projects, project_name, set_rate_limit,
        },
    },
    id::{ApiKeyId, ProjectId},
    token::generate_api_key,
};
use time::OffsetDateTime;

use super::project::{ProjectOut, PutLlmIn, project_view, remove_llm, update_llm};
use crate::{auth::AdminAuth, error::ApiError, extract::JsonBody, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/projects", post(create_project).get(list))
        .route("/v1/admin/projects/{id}", get(show))
        .route(
            "/v1/admin/projects/{id}/llm",
            get(show).put(put_llm).delete(delete_llm),
        )
        .route("/v1/admin/projects/{id}/rate-limit", put(put_rate_limit))
        .route("/v1/admin/projects/{id}/api-keys", post(create_key))
        .route(
            "/v1/admin/projects/{id}/api-keys/{key_id}",
            delete(revoke_key),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProjectIn {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitIn {
    /// Requests per minute; `null` removes the project's own limit.
    requests_per_minute: Option<i64>,
}

#[derive(Serialize)]
struct CreatedProjectOut {
    project: ProjectOut,
    /// Shown this once.
    api_key: String,
}

#[derive(Serialize)]
struct ProjectList {
    data: Vec<ProjectOut>,
}

#[derive(Serialize)]
struct CreatedKeyOut {
    id: ApiKeyId,
    /// Shown this once.
    api_key: String,
    display_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

fn validate_project_name(name: &str) -> Result<&str, ApiError> {
    project_name(name).map_err(|why| ApiError::invalid("invalid_value", "name", why))
}

fn project_id(text: &str) -> Result<ProjectId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("project"))
}

async fn create_project(
    State(state): State<AppState>,
    _admin: AdminAuth,
    JsonBody(body): JsonBody<CreateProjectIn>,
) -> Result<(StatusCode, Json<CreatedProjectOut>), ApiError> {
    let name = validate_project_name(&body.name)?;
    let (project, key) = create_project_with_key(&state.pool, name, &state.master_keys).await?;
    tracing::info!(project_id = %project.id, "project created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedProjectOut {
            project: ProjectOut::new(project, &state.config.default_llm),
            api_key: key.secret.expose_secret().to_owned(),
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<ProjectList>, ApiError> {
    let client = state.pool.get().await.map_err(DbError::from)?;
    let data = list_projects(&client)
        .await?
        .into_iter()
        .map(|row| ProjectOut::new(row, &state.config.default_llm))
        .collect();
    Ok(Json(ProjectList { data }))
}

async fn show(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    project_view(&state, project_id(&id)?).await.map(Json)
}

async fn put_llm(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PutLlmIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    update_llm(&state, project_id(&id)?, body).await.map(Json)
}

async fn delete_llm(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    remove_llm(&state, project_id(&id)?).await.map(Json)
}

async fn create_key(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CreatedKeyOut>), ApiError> {
    let project_id = project_id(&id)?;
    let client = state.pool.get().await.map_err(DbError::from)?;
    if get_project(&client, project_id).await?.is_none() {
        return Err(ApiError::not_found("project"));
    }
    let key = generate_api_key();
    let row = insert_api_key(&client, project_id, &key).await?;
    tracing::info!(%project_id, key_id = %row.id, "API key issued");
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

async fn revoke_key(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project_id = project_id(&id)?;
    let key_id: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("API key"))?;
    let client = state.pool.get().await.map_err(DbError::from)?;
    if !revoke_api_key(&client, Some(project_id), key_id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.auth_cache.forget_project(project_id);
    tracing::info!(%project_id, %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn put_rate_limit(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RateLimitIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    let project_id = project_id(&id)?;
    let rpm = match body.requests_per_minute {
        None => None,
        Some(rpm @ 1..=1_000_000) => Some(rpm as i32),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "requests_per_minute",
                "`requests_per_minute` must be between 1 and 1000000, or null",
            ));
        }
    };
    let client = state.pool.get().await.map_err(DbError::from)?;
    let row = set_rate_limit(&client, project_id, rpm)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    tracing::info!(%project_id, requests_per_minute = rpm, "rate limit set");
    Ok(Json(ProjectOut::new(row, &state.config.default_llm)))
}
