//! The `projects` table: tenants and their provider and webhook configuration.

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{DbError, GenericClient, Pool, api_key::insert_api_key};
use crate::{
    id::ProjectId,
    model::{KeyStatus, Provider},
    token::{NewApiKey, generate_api_key},
};

/// A project as the API shows it (never with a secret).
#[derive(Clone, Debug)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub name: String,
    pub llm: ProjectLlm,
    pub webhook_url: Option<String>,
    pub rate_limit_rpm: Option<i32>,
    pub created_at: OffsetDateTime,
}

/// A project's own provider configuration.
#[derive(Clone, Debug, Default)]
pub struct ProjectLlm {
    /// The provider the project chose, if any.
    pub provider: Option<Provider>,
    /// The model the project chose, if any.
    pub model: Option<String>,
    /// Whether the project stored a key of its own.
    pub has_key: bool,
    /// What the provider's answers said about that key.
    pub key_status: Option<KeyStatus>,
}

const COLUMNS: &str = "id, name, llm_provider, llm_model, key_status, webhook_url, \
                       rate_limit_rpm, created_at, llm_api_key IS NOT NULL AS has_key";

impl ProjectRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            llm: ProjectLlm::from_row(row)?,
            webhook_url: row.try_get("webhook_url")?,
            rate_limit_rpm: row.try_get("rate_limit_rpm")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl ProjectLlm {
    /// Reads `llm_provider`, `llm_model`, `key_status` and `has_key` from a row.
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let provider: Option<String> = row.try_get("llm_provider")?;
        let key_status: String = row.try_get("key_status")?;
        Ok(Self {
            provider: provider.as_deref().and_then(Provider::parse),
            model: row.try_get("llm_model")?,
            has_key: row.try_get("has_key")?,
            key_status: KeyStatus::parse(&key_status),
        })
    }
}

/// Inserts a project.
pub async fn insert_project(
    client: &impl GenericClient,
    id: ProjectId,
    name: &str,
) -> Result<ProjectRow, DbError> {
    let sql = format!("INSERT INTO projects (id, name) VALUES ($1, $2) RETURNING {COLUMNS}");
    let row = client.query_one(&sql, &[&id, &name]).await?;
    Ok(ProjectRow::from_row(&row)?)
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
    Ok(rows
        .iter()
        .map(ProjectRow::from_row)
        .collect::<Result<_, _>>()?)
}

/// Sets a project's provider and model, and its key when `encrypted_key` is
/// given (a new key starts `unchecked`); `None` keeps the stored key.
pub async fn set_project_llm(
    client: &impl GenericClient,
    id: ProjectId,
    provider: Provider,
    model: &str,
    encrypted_key: Option<&[u8]>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET llm_provider = $2, llm_model = $3,
             llm_api_key = coalesce($4, llm_api_key),
             key_status = CASE WHEN $4::bytea IS NULL THEN key_status ELSE 'unchecked' END,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&id, &provider.as_str(), &model, &encrypted_key])
        .await?;
    row.map(|row| ProjectRow::from_row(&row))
        .transpose()
        .map_err(Into::into)
}

/// Forgets a project's provider configuration and key: the default applies again.
pub async fn clear_project_llm(
    client: &impl GenericClient,
    id: ProjectId,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET llm_provider = NULL, llm_model = NULL, llm_api_key = NULL,
             key_status = 'unchecked', updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = client.query_opt(&sql, &[&id]).await?;
    row.map(|row| ProjectRow::from_row(&row))
        .transpose()
        .map_err(Into::into)
}

/// Records what a provider's answer said about a key, unless the key was replaced
/// (or re-encrypted) meanwhile: `encrypted_key` is the ciphertext that was used.
pub async fn record_key_status(
    client: &impl GenericClient,
    id: ProjectId,
    encrypted_key: &[u8],
    status: KeyStatus,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE projects SET key_status = $3
             WHERE id = $1 AND llm_api_key = $2 AND key_status <> $3",
        )
        .await?;
    client
        .execute(&statement, &[&id, &encrypted_key, &status.as_str()])
        .await?;
    Ok(())
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
    row.map(|row| ProjectRow::from_row(&row))
        .transpose()
        .map_err(Into::into)
}

/// A valid project name (trimmed), or why not.
pub fn project_name(name: &str) -> Result<&str, &'static str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err("`name` must be 1 to 200 printable characters");
    }
    Ok(name)
}

/// Creates a project and its first API key in one transaction.
pub async fn create_project_with_key(
    pool: &Pool,
    name: &str,
) -> Result<(ProjectRow, NewApiKey), DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let project = insert_project(&transaction, ProjectId::new(), name).await?;
    let key = generate_api_key();
    insert_api_key(&transaction, project.id, &key).await?;
    transaction.commit().await?;
    Ok((project, key))
}
