//! The operator's actions, once. The admin API, the dashboard and the CLI all
//! call these, with inputs parsed by `input`, so the same bad input gets the
//! same refusal whichever door it came in by, and a rule changes in one place.
//! Callers add only what belongs to them: the API's answer shape, the
//! dashboard's page, the CLI's JSON, an API process evicting its key cache.

pub mod input;
pub mod rotation;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use self::input::{
    Given, LIMIT_NAMES, LimitsInput, LlmSettings, McpServers, ProjectName, RateLimit, ServerTools,
    WebhookUrl, dollars,
};
use crate::{
    db::{
        DbError, GenericClient, Pool,
        api_key::{self, ApiKeyRow},
        project::{self, ProjectRow},
    },
    domain::id::{ApiKeyId, ProjectId},
    secrets::{
        crypto::{MasterKeyRing, SecretField},
        signature::generate_secret,
        token::{NewApiKey, generate_api_key},
    },
};

/// How long a replaced webhook secret keeps signing alongside the new one, so
/// receivers can switch without missing a delivery.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// An input that cannot be used; `param` names it.
    #[error("{message}")]
    Invalid { param: String, message: String },
    /// No such thing (`project`, `API key`).
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl OpsError {
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

fn found<T>(row: Option<T>, what: &'static str) -> Result<T, OpsError> {
    row.ok_or(OpsError::NotFound(what))
}

/// Creates a project with its webhook secret and first API key (shown once).
pub async fn create_project(
    pool: &Pool,
    keys: &MasterKeyRing,
    name: &ProjectName,
) -> Result<(ProjectRow, NewApiKey), OpsError> {
    let id = ProjectId::new();
    let secret = generate_secret();
    let encrypted = keys.encrypt(
        secret.expose_secret().as_bytes(),
        id,
        SecretField::WebhookSecret,
    );
    let mut client = pool.get().await.map_err(DbError::from)?;
    let transaction = client.transaction().await.map_err(DbError::from)?;
    let project = project::insert_project(&transaction, id, name.as_str(), &encrypted).await?;
    let key = generate_api_key();
    api_key::insert_api_key(&transaction, project.id, &key).await?;
    transaction.commit().await.map_err(DbError::from)?;
    tracing::info!(project_id = %project.id, "project created");
    Ok((project, key))
}

/// Issues another API key for a project (shown once).
pub async fn issue_api_key(
    client: &impl GenericClient,
    project_id: ProjectId,
) -> Result<(ApiKeyRow, NewApiKey), OpsError> {
    found(project::get_project(client, project_id).await?, "project")?;
    let key = generate_api_key();
    let row = api_key::insert_api_key(client, project_id, &key).await?;
    tracing::info!(%project_id, key_id = %row.id, "API key issued");
    Ok((row, key))
}

/// Revokes an API key (of `project_id`, when given).
pub async fn revoke_api_key(
    client: &impl GenericClient,
    project_id: Option<ProjectId>,
    key_id: ApiKeyId,
) -> Result<(), OpsError> {
    if !api_key::revoke_api_key(client, project_id, key_id).await? {
        return Err(OpsError::NotFound("API key"));
    }
    tracing::info!(project_id = ?project_id, %key_id, "API key revoked");
    Ok(())
}

/// Sets or removes a project's own rate limit.
pub async fn set_rate_limit(
    client: &impl GenericClient,
    project_id: ProjectId,
    limit: RateLimit,
) -> Result<ProjectRow, OpsError> {
    let rpm = limit.requests_per_minute();
    let row = project::set_rate_limit(client, project_id, rpm).await?;
    tracing::info!(%project_id, requests_per_minute = rpm, "rate limit set");
    found(row, "project")
}

/// Replaces a project's limits: rate limit, caps and token budgets.
pub async fn set_limits(
    client: &impl GenericClient,
    project_id: ProjectId,
    limits: &LimitsInput,
) -> Result<ProjectRow, OpsError> {
    let row = project::set_limits(client, project_id, limits.limits()).await?;
    tracing::info!(%project_id, limits = ?limits.limits(), "limits set");
    found(row, "project")
}

/// Sets a project's provider and model, and its key when one is given (stored
/// encrypted, bound to the project).
pub async fn set_llm(
    client: &impl GenericClient,
    keys: &MasterKeyRing,
    project_id: ProjectId,
    settings: &LlmSettings,
) -> Result<ProjectRow, OpsError> {
    let encrypted = settings.api_key.as_ref().map(|key| {
        keys.encrypt(
            key.expose_secret().as_bytes(),
            project_id,
            SecretField::ProviderKey,
        )
    });
    let row = project::set_project_llm(
        client,
        project_id,
        settings.provider,
        &settings.model,
        encrypted.as_deref(),
        settings.fallback_models.as_deref(),
    )
    .await?;
    tracing::info!(%project_id, provider = %settings.provider, key_replaced = encrypted.is_some(), "provider configuration set");
    found(row, "project")
}

/// Forgets a project's provider configuration and key: the default applies.
pub async fn clear_llm(
    client: &impl GenericClient,
    project_id: ProjectId,
) -> Result<ProjectRow, OpsError> {
    let row = project::clear_project_llm(client, project_id).await?;
    tracing::info!(%project_id, "provider configuration removed");
    found(row, "project")
}

/// Sets or clears a project's webhook URL.
pub async fn set_webhook_url(
    client: &impl GenericClient,
    project_id: ProjectId,
    url: Option<&WebhookUrl>,
) -> Result<ProjectRow, OpsError> {
    let row = project::set_webhook_url(client, project_id, url.map(WebhookUrl::as_str)).await?;
    tracing::info!(%project_id, set = url.is_some(), "webhook URL set");
    found(row, "project")
}

/// Replaces a project's server tools (checked by [`input::check_server_tools`]).
pub async fn set_server_tools(
    client: &impl GenericClient,
    project_id: ProjectId,
    tools: &input::ServerTools,
) -> Result<ProjectRow, OpsError> {
    let row = project::set_server_tools(client, project_id, tools.as_slice()).await?;
    tracing::info!(%project_id, count = tools.as_slice().len(), "server tools set");
    found(row, "project")
}

/// Replaces a project's MCP servers, their header values sealed under the
/// master key ring (checked by [`McpServers::check`]).
pub async fn set_mcp_servers(
    client: &impl GenericClient,
    keys: &MasterKeyRing,
    project_id: ProjectId,
    servers: &McpServers,
) -> Result<ProjectRow, OpsError> {
    let sealed = crate::mcp::seal_headers(keys, project_id, servers.headers());
    let row =
        project::set_mcp_servers(client, project_id, servers.shown(), sealed.as_deref()).await?;
    tracing::info!(%project_id, count = servers.shown().len(), "MCP servers set");
    found(row, "project")
}

/// A new webhook signing secret (shown once); the previous one keeps signing
/// for [`SECRET_OVERLAP`].
pub async fn rotate_webhook_secret(
    client: &impl GenericClient,
    keys: &MasterKeyRing,
    project_id: ProjectId,
) -> Result<SecretString, OpsError> {
    let secret = generate_secret();
    let encrypted = keys.encrypt(
        secret.expose_secret().as_bytes(),
        project_id,
        SecretField::WebhookSecret,
    );
    if !project::rotate_webhook_secret(client, project_id, &encrypted, SECRET_OVERLAP).await? {
        return Err(OpsError::NotFound("project"));
    }
    tracing::info!(%project_id, "webhook secret rotated");
    Ok(secret)
}
