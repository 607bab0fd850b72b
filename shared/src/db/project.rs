//! The `projects` table: tenants and their provider and webhook configuration.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{DbError, GenericClient, limits::limits};
use crate::domain::{
    agent::ServerTool,
    id::ProjectId,
    limits::Limits,
    llm::ProjectLlm,
    mcp::McpServer,
    model::{KeyStatus, Provider},
};

/// A project as the API shows it (never with a secret).
#[derive(Clone, Debug)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub name: String,
    pub llm: ProjectLlm,
    pub webhook_url: Option<String>,
    pub has_webhook_secret: bool,
    /// Rate limit, caps and token budgets.
    pub limits: Limits,
    /// The server tools offered to the model on every run.
    pub server_tools: Vec<ServerTool>,
    /// The MCP servers whose tools are offered (header values not read).
    pub mcp_servers: Vec<McpServer>,
    /// The models its runs fall back to, in order.
    pub fallback_models: Vec<String>,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, name, llm_provider, llm_model, key_status, webhook_url, \
                       rate_limit_rpm, max_concurrent_runs, max_queued_runs, tokens_per_day, \
                       tokens_per_month, usd_per_day, usd_per_month, created_at, llm_api_key IS NOT NULL AS has_key, \
                       webhook_secret IS NOT NULL AS has_webhook_secret, server_tools, \
                       mcp_servers, fallback_models";

impl ProjectRow {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            llm: project_llm(row)?,
            webhook_url: row.try_get("webhook_url")?,
            has_webhook_secret: row.try_get("has_webhook_secret")?,
            limits: limits(row)?,
            // Written only by `set_server_tools` from checked tools: a value
            // that does not read back is corrupt, never "no tools".
            server_tools: serde_json::from_value(row.try_get("server_tools")?).map_err(|_| {
                DbError::Corrupt {
                    column: "server_tools",
                }
            })?,
            mcp_servers: serde_json::from_value(row.try_get("mcp_servers")?).map_err(|_| {
                DbError::Corrupt {
                    column: "mcp_servers",
                }
            })?,
            fallback_models: row
                .try_get::<_, Option<Vec<String>>>("fallback_models")?
                .unwrap_or_default(),
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Reads a project's provider choice: `llm_provider`, `llm_model`,
/// `key_status` and `has_key` of a row.
pub fn project_llm(row: &Row) -> Result<ProjectLlm, tokio_postgres::Error> {
    let provider: Option<String> = row.try_get("llm_provider")?;
    let key_status: String = row.try_get("key_status")?;
    Ok(ProjectLlm {
        provider: provider.as_deref().and_then(Provider::parse),
        model: row.try_get("llm_model")?,
        has_key: row.try_get("has_key")?,
        key_status: KeyStatus::parse(&key_status),
    })
}

/// Replaces a project's server tools.
pub async fn set_server_tools(
    client: &impl GenericClient,
    id: ProjectId,
    tools: &[ServerTool],
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET server_tools = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    );
    let tools = serde_json::to_value(tools).unwrap_or_default();
    let row = client.query_opt(&sql, &[&id, &tools]).await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// Replaces a project's MCP servers and their sealed header values.
pub async fn set_mcp_servers(
    client: &impl GenericClient,
    id: ProjectId,
    servers: &[McpServer],
    sealed_headers: Option<&[u8]>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET mcp_servers = $2, mcp_headers = $3, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let servers = serde_json::to_value(servers).unwrap_or_default();
    let row = client
        .query_opt(&sql, &[&id, &servers, &sealed_headers])
        .await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// A project's sealed MCP header values (`None`: none, or no such project).
pub async fn mcp_headers(
    client: &impl GenericClient,
    id: ProjectId,
) -> Result<Option<Vec<u8>>, DbError> {
    let row = client
        .query_opt("SELECT mcp_headers FROM projects WHERE id = $1", &[&id])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
}

/// Inserts a project with its (encrypted) webhook signing secret.
pub async fn insert_project(
    client: &impl GenericClient,
    id: ProjectId,
    name: &str,
    encrypted_webhook_secret: &[u8],
) -> Result<ProjectRow, DbError> {
    let sql = format!(
        "INSERT INTO projects (id, name, webhook_secret) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one(&sql, &[&id, &name, &encrypted_webhook_secret])
        .await?;
    ProjectRow::from_row(&row)
}

/// Sets (or clears) a project's webhook URL.
pub async fn set_webhook_url(
    client: &impl GenericClient,
    id: ProjectId,
    url: Option<&str>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET webhook_url = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client.query_opt(&sql, &[&id, &url]).await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// Replaces a project's webhook secret; the old one keeps signing for `overlap`
/// so receivers can switch without missing a delivery. False: no such project.
pub async fn rotate_webhook_secret(
    client: &impl GenericClient,
    id: ProjectId,
    encrypted_secret: &[u8],
    overlap: Duration,
) -> Result<bool, DbError> {
    let updated = client
        .execute(
            "UPDATE projects SET webhook_secret_previous = webhook_secret,
                 webhook_secret_previous_until = now() + make_interval(secs => $3),
                 webhook_secret = $2, updated_at = now()
             WHERE id = $1",
            &[&id, &encrypted_secret, &overlap.as_secs_f64()],
        )
        .await?;
    Ok(updated == 1)
}

/// Gives a project its first webhook secret if it has none (projects created
/// before webhooks existed). Returns the encrypted secret that stands.
pub async fn ensure_webhook_secret(
    client: &impl GenericClient,
    id: ProjectId,
    encrypted_secret: &[u8],
) -> Result<Vec<u8>, DbError> {
    let row = client
        .query_one(
            "UPDATE projects SET webhook_secret = coalesce(webhook_secret, $2) WHERE id = $1
             RETURNING webhook_secret",
            &[&id, &encrypted_secret],
        )
        .await?;
    Ok(row.try_get("webhook_secret")?)
}

/// The encrypted secrets that sign a project's webhooks now: the current one, and
/// the previous one while its overlap lasts.
pub async fn webhook_secrets(
    client: &impl GenericClient,
    id: ProjectId,
) -> Result<Option<(Option<Vec<u8>>, Option<Vec<u8>>)>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT webhook_secret,
                    CASE WHEN webhook_secret_previous_until > now()
                         THEN webhook_secret_previous END AS previous
             FROM projects WHERE id = $1",
        )
        .await?;
    match client.query_opt(&statement, &[&id]).await? {
        None => Ok(None),
        Some(row) => Ok(Some((
            row.try_get("webhook_secret")?,
            row.try_get("previous")?,
        ))),
    }
}

/// One project, or none.
pub async fn get_project(
    client: &impl GenericClient,
    id: ProjectId,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
    let statement = client.prepare_cached(&sql).await?;
    match client.query_opt(&statement, &[&id]).await? {
        Some(row) => Ok(Some(ProjectRow::from_row(&row)?)),
        None => Ok(None),
    }
}

/// Projects, newest first.
pub async fn list_projects(client: &impl GenericClient) -> Result<Vec<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects ORDER BY id DESC");
    let rows = client.query(&sql, &[]).await?;
    rows.iter().map(ProjectRow::from_row).collect()
}

/// Sets a project's provider and model, and its key when `encrypted_key` is
/// given (a new key starts `unchecked`); `None` keeps the stored key.
pub async fn set_project_llm(
    client: &impl GenericClient,
    id: ProjectId,
    provider: Provider,
    model: &str,
    encrypted_key: Option<&[u8]>,
    fallback_models: Option<&[String]>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET llm_provider = $2, llm_model = $3,
             llm_api_key = coalesce($4, llm_api_key),
             fallback_models = CASE WHEN $5::text[] IS NULL THEN fallback_models
                                    WHEN cardinality($5) = 0 THEN NULL ELSE $5 END,
             key_status = CASE WHEN $4::bytea IS NULL THEN key_status ELSE 'unchecked' END,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &id,
                &provider.as_str(),
                &model,
                &encrypted_key,
                &fallback_models,
            ],
        )
        .await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// Forgets a project's provider configuration and key: the default applies again.
pub async fn clear_project_llm(
    client: &impl GenericClient,
    id: ProjectId,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET llm_provider = NULL, llm_model = NULL, llm_api_key = NULL,
             fallback_models = NULL, key_status = 'unchecked', updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client.query_opt(&sql, &[&id]).await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// Sets (or, with `None`, removes) a project's own requests-per-minute limit.
pub async fn set_rate_limit(
    client: &impl GenericClient,
    id: ProjectId,
    rpm: Option<i32>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET rate_limit_rpm = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client.query_opt(&sql, &[&id, &rpm]).await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}

/// Replaces all of a project's limits at once (`None`: no limit). A cap
/// raised or lifted may leave free places: the project is marked (`place`)
/// in the same statement, so its waiting runs are claimed.
pub async fn set_limits(
    client: &impl GenericClient,
    id: ProjectId,
    limits: &Limits,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "WITH u AS (
             UPDATE projects SET rate_limit_rpm = $2, max_concurrent_runs = $3,
                                 max_queued_runs = $4, tokens_per_day = $5,
                                 tokens_per_month = $6, usd_per_day = $7,
                                 usd_per_month = $8, updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}
         ),
         m AS (SELECT stewrd_mark_free_place(id) FROM u)
         SELECT u.*, (SELECT count(*) FROM m) AS marked FROM u"
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &id,
                &limits.requests_per_minute,
                &limits.max_concurrent_runs,
                &limits.max_queued_runs,
                &limits.tokens_per_day,
                &limits.tokens_per_month,
                &limits.usd_per_day,
                &limits.usd_per_month,
            ],
        )
        .await?;
    row.map(|row| ProjectRow::from_row(&row)).transpose()
}
