//! The calling project: `GET /v1/project`, and its provider configuration
//! (`PUT`/`DELETE /v1/project/llm`). The provider key is write-only: it is
//! encrypted before it reaches a query, and only `has_provider_key` comes back.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post, put},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::project::{ProjectRow, get_project},
    domain::{
        id::ProjectId,
        limits::Limits,
        model::{KeyStatus, Provider},
    },
    ops::{self, LlmSettings, WebhookUrl},
    runtime::config::DefaultLlm,
};
use time::OffsetDateTime;

use crate::{
    auth::ProjectAuth,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadKey, BadRequest, TooLarge, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/project", get(show))
        .route("/v1/project/llm", put(put_llm).delete(delete_llm))
        .route("/v1/project/webhook", put(put_webhook))
        .route("/v1/project/webhook/secret", post(new_webhook_secret))
}

/// A project as clients and the operator see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectOut {
    pub(crate) id: ProjectId,
    pub(crate) name: String,
    pub(crate) llm: LlmOut,
    pub(crate) webhook: WebhookOut,
    pub(crate) rate_limit: RateLimitOut,
    /// Rate limit, caps and token budgets (`null`: none).
    pub(crate) limits: Limits,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

/// The provider configuration (never the key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LlmOut {
    /// The provider runs use: the project's own (with its key), or the default.
    pub(crate) provider: Provider,
    pub(crate) model: String,
    pub(crate) has_provider_key: bool,
    pub(crate) key_status: KeyStatus,
    /// Models runs fall back to, in order, when the model is not found, or
    /// unavailable or rate limited after its retries.
    pub(crate) fallback_models: Vec<String>,
}

/// Where events go.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookOut {
    pub(crate) url: Option<String>,
    pub(crate) has_secret: bool,
}

/// The project's own limit (`null`: the default).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RateLimitOut {
    pub(crate) requests_per_minute: Option<i32>,
}

impl ProjectOut {
    /// The view of `row`, filling unset choices with the operator's defaults.
    pub fn new(row: ProjectRow, default: &DefaultLlm) -> Self {
        let own = row.llm.has_key;
        Self {
            id: row.id,
            name: row.name,
            llm: LlmOut {
                provider: row.llm.provider.filter(|_| own).unwrap_or(default.provider),
                model: row
                    .llm
                    .model
                    .clone()
                    .unwrap_or_else(|| default.model.clone()),
                has_provider_key: own,
                key_status: row.llm.key_status.unwrap_or(KeyStatus::Unchecked),
                fallback_models: row.fallback_models,
            },
            webhook: WebhookOut {
                url: row.webhook_url,
                has_secret: row.has_webhook_secret,
            },
            rate_limit: RateLimitOut {
                requests_per_minute: row.limits.requests_per_minute,
            },
            limits: row.limits,
            created_at: row.created_at,
        }
    }
}

/// The body of `PUT …/llm`. `Debug` shows the key as `[REDACTED]`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutLlmIn {
    #[schema(value_type = Provider)]
    provider: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    model: String,
    /// Write-only; omitted keeps the stored key.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 512, pattern = r"^[\x21-\x7e]+$")]
    api_key: Option<SecretString>,
    /// Models runs fall back to, in order (at most 5); omitted keeps the
    /// stored ones, `[]` removes them.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fallback_models_schema)]
    fallback_models: Option<Vec<String>>,
}

impl PutLlmIn {
    /// The same request made from the dashboard's form.
    pub fn new(provider: &str, model: &str, api_key: Option<&str>) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            api_key: api_key.map(SecretString::from),
            fallback_models: None,
        }
    }
}

/// Shows one project.
pub async fn project_view(state: &AppState, id: ProjectId) -> Result<ProjectOut, ApiError> {
    let client = state.pool.get().await?;
    let row = get_project(&client, id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(ProjectOut::new(row, &state.config.default_llm))
}

/// Validates and stores a project's provider configuration.
pub async fn update_llm(
    state: &AppState,
    id: ProjectId,
    body: PutLlmIn,
) -> Result<ProjectOut, ApiError> {
    let settings = LlmSettings::parse(&body.provider, &body.model, body.api_key)?
        .with_fallback_models(body.fallback_models.as_deref())?;
    let client = state.pool.get().await?;
    let row = ops::set_llm(&client, &state.master_keys, id, &settings).await?;
    // This process forgets its cached view of the project at once; the others
    // hear of the change from the database's trigger.
    state.auth_cache.forget_project(id);
    Ok(ProjectOut::new(row, &state.config.default_llm))
}

/// Forgets a project's provider configuration and key.
pub async fn remove_llm(state: &AppState, id: ProjectId) -> Result<ProjectOut, ApiError> {
    let client = state.pool.get().await?;
    let row = ops::clear_llm(&client, id).await?;
    state.auth_cache.forget_project(id);
    Ok(ProjectOut::new(row, &state.config.default_llm))
}

/// The body of `PUT /v1/project/webhook`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWebhookIn {
    /// `http(s)://…`, or `null` to stop sending events.
    #[schema(format = "uri", max_length = 2048)]
    url: Option<String>,
}

/// A new signing secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookSecretOut {
    secret: String,
}

/// Checks a webhook URL (form, and every address it resolves to) as the API
/// does for both the project's URL and a message's `webhook_url`.
pub async fn checked_webhook_url(
    state: &AppState,
    param: &'static str,
    text: &str,
) -> Result<WebhookUrl, ApiError> {
    Ok(WebhookUrl::check(param, text, state.config.webhook_allow_private).await?)
}

#[utoipa::path(
    put,
    path = "/v1/project/webhook",
    tag = "project",
    summary = "Set or clear the project's webhook URL",
    request_body = PutWebhookIn,
    responses((status = 200, description = "The project", body = ProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn put_webhook(
    State(state): State<AppState>,
    auth: ProjectAuth,
    JsonBody(body): JsonBody<PutWebhookIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    let url = match body.url.as_deref() {
        None => None,
        Some(text) => Some(checked_webhook_url(&state, "url", text).await?),
    };
    let client = state.pool.get().await?;
    let row = ops::set_webhook_url(&client, auth.project_id, url.as_ref()).await?;
    Ok(Json(ProjectOut::new(row, &state.config.default_llm)))
}

/// Makes a new signing secret; the previous one keeps signing for 24 hours.
#[utoipa::path(
    post,
    path = "/v1/project/webhook/secret",
    tag = "project",
    summary = "A new signing secret, shown once",
    responses((status = 201, description = "The new secret; the previous one keeps signing for 24 h", body = WebhookSecretOut), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn new_webhook_secret(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<(axum::http::StatusCode, Json<WebhookSecretOut>), ApiError> {
    let client = state.pool.get().await?;
    let secret = ops::rotate_webhook_secret(&client, &state.master_keys, auth.project_id).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(WebhookSecretOut {
            secret: secret.expose_secret().to_owned(),
        }),
    ))
}

#[utoipa::path(
    operation_id = "get_project",
    get,
    path = "/v1/project",
    tag = "project",
    summary = "The calling project",
    responses((status = 200, description = "The project", body = ProjectOut), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<Json<ProjectOut>, ApiError> {
    project_view(&state, auth.project_id).await.map(Json)
}

#[utoipa::path(
    operation_id = "put_project_llm",
    put,
    path = "/v1/project/llm",
    tag = "project",
    summary = "Set the provider, model and (write-only) key",
    request_body = PutLlmIn,
    responses((status = 200, description = "The project", body = ProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn put_llm(
    State(state): State<AppState>,
    auth: ProjectAuth,
    JsonBody(body): JsonBody<PutLlmIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    update_llm(&state, auth.project_id, body).await.map(Json)
}

#[utoipa::path(
    operation_id = "delete_project_llm",
    delete,
    path = "/v1/project/llm",
    tag = "project",
    summary = "Forget the provider configuration and key",
    responses((status = 200, description = "The project", body = ProjectOut), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn delete_llm(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<Json<ProjectOut>, ApiError> {
    remove_llm(&state, auth.project_id).await.map(Json)
}
