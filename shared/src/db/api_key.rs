//! The `api_keys` table: hashes of project API keys.

use time::OffsetDateTime;

use super::{
    DbError, GenericClient,
    limits::{ADMISSION_COLUMNS, Admission},
    project::project_llm,
};
use crate::{
    domain::{
        id::{ApiKeyId, ProjectId},
        llm::ProjectLlm,
    },
    secrets::token::NewApiKey,
};

/// Who a valid key belongs to, and what the submit path needs of the project.
#[derive(Clone, Debug)]
pub struct KeyOwner {
    pub key_id: ApiKeyId,
    pub project_id: ProjectId,
    pub hash: Vec<u8>,
    pub llm: ProjectLlm,
    /// What a submit of the project must check first.
    pub admission: Admission,
}

/// A key as lists show it.
#[derive(Clone, Debug)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub display_prefix: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Stores a new key's hash.
pub async fn insert_api_key(
    client: &impl GenericClient,
    project_id: ProjectId,
    key: &NewApiKey,
) -> Result<ApiKeyRow, DbError> {
    let row = client
        .query_one(
            "INSERT INTO api_keys (id, project_id, display_prefix, hash) VALUES ($1, $2, $3, $4)
             RETURNING created_at",
            &[
                &key.id,
                &project_id,
                &key.display_prefix,
                &key.hash.as_slice(),
            ],
        )
        .await?;
    Ok(ApiKeyRow {
        id: key.id,
        project_id,
        display_prefix: key.display_prefix.clone(),
        created_at: row.try_get("created_at")?,
        revoked_at: None,
    })
}

/// The owner of the unrevoked key with this hash. Revocation takes effect on the
/// next request: nothing is cached.
pub async fn find_key_owner(
    client: &impl GenericClient,
    hash: &[u8; 32],
) -> Result<Option<KeyOwner>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT k.id, k.project_id, k.hash, p.llm_provider, p.llm_model, p.key_status,
                    p.llm_api_key IS NOT NULL AS has_key, {ADMISSION_COLUMNS}
             FROM api_keys k JOIN projects p ON p.id = k.project_id
             WHERE k.hash = $1 AND k.revoked_at IS NULL"
        ))
        .await?;
    let Some(row) = client.query_opt(&statement, &[&hash.as_slice()]).await? else {
        return Ok(None);
    };
    Ok(Some(KeyOwner {
        key_id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        hash: row.try_get("hash")?,
        llm: project_llm(&row)?,
        admission: Admission::from_row(&row)?,
    }))
}

/// Revokes a key of a project; false when there is no such unrevoked key.
pub async fn revoke_api_key(
    client: &impl GenericClient,
    project_id: Option<ProjectId>,
    key_id: ApiKeyId,
) -> Result<bool, DbError> {
    let revoked = client
        .execute(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND revoked_at IS NULL",
            &[&key_id, &project_id],
        )
        .await?;
    Ok(revoked == 1)
}

/// A project's keys, newest first (hashes never leave the database layer).
pub async fn list_api_keys(
    client: &impl GenericClient,
    project_id: ProjectId,
) -> Result<Vec<ApiKeyRow>, DbError> {
    client
        .query(
            "SELECT id, project_id, display_prefix, created_at, revoked_at FROM api_keys
             WHERE project_id = $1 ORDER BY id DESC",
            &[&project_id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ApiKeyRow {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                display_prefix: row.try_get("display_prefix")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect()
}
