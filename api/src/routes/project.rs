//! `GET /v1/project`: the calling project, never with a secret.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use stewrd_shared::{
    config::DefaultLlm,
    db::{
        DbError,
        project::{ProjectRow, get_project},
    },
    id::ProjectId,
    model::{KeyStatus, Provider},
};
use time::OffsetDateTime;

use crate::{auth::ProjectAuth, error::ApiError, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/project", get(show))
}

/// A project as clients and the operator see it.
#[derive(Debug, Serialize)]
pub struct ProjectOut {
    id: ProjectId,
    name: String,
    llm: LlmOut,
    webhook: WebhookOut,
    rate_limit: RateLimitOut,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct LlmOut {
    /// The provider runs use: the project's own, or the default.
    provider: Provider,
    model: String,
    has_provider_key: bool,
    key_status: KeyStatus,
}

#[derive(Debug, Serialize)]
struct WebhookOut {
    url: Option<String>,
    has_secret: bool,
}

#[derive(Debug, Serialize)]
struct RateLimitOut {
    requests_per_minute: Option<i32>,
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
            },
            webhook: WebhookOut {
                url: row.webhook_url,
                has_secret: false,
            },
            rate_limit: RateLimitOut {
                requests_per_minute: row.rate_limit_rpm,
            },
            created_at: row.created_at,
        }
    }
}

async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
) -> Result<Json<ProjectOut>, ApiError> {
    let client = state.pool.get().await.map_err(DbError::from)?;
    let row = get_project(&client, auth.project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    Ok(Json(ProjectOut::new(row, &state.config.default_llm)))
}
