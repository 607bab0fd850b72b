//! `stewrd rotate-master-key`: re-encrypts every stored secret under the active
//! master key, in batches, while the API and workers keep running. Each row is
//! replaced only if it still holds the ciphertext that was read, so a key set
//! concurrently (already under the active key) is never overwritten.

use crate::{
    db::{DbError, Pool},
    domain::id::ProjectId,
    secrets::crypto::{CryptoError, MasterKeyRing, SecretField},
};

/// Rows read per batch.
const BATCH: i64 = 200;

/// Every encrypted column: its table, the column, and the field its
/// ciphertexts are bound to (always with the row's project).
struct SecretColumn {
    table: &'static str,
    column: &'static str,
    /// The column holding the project a ciphertext is bound to.
    project: &'static str,
    field: SecretField,
}

const SECRET_COLUMNS: &[SecretColumn] = &[
    SecretColumn {
        table: "projects",
        column: "llm_api_key",
        project: "id",
        field: SecretField::ProviderKey,
    },
    SecretColumn {
        table: "projects",
        column: "webhook_secret",
        project: "id",
        field: SecretField::WebhookSecret,
    },
    SecretColumn {
        table: "projects",
        column: "webhook_secret_previous",
        project: "id",
        field: SecretField::WebhookSecret,
    },
    SecretColumn {
        table: "projects",
        column: "mcp_headers",
        project: "id",
        field: SecretField::McpHeaders,
    },
    SecretColumn {
        table: "browser_states",
        column: "sealed",
        project: "project_id",
        field: SecretField::BrowserState,
    },
    // Files' data keys: re-wrapped, the bytes never touched.
    SecretColumn {
        table: "files",
        column: "wrapped_key",
        project: "project_id",
        field: SecretField::FileKey,
    },
];

/// What a rotation did.
#[derive(Debug, Default)]
pub struct RotationReport {
    /// Secrets looked at.
    pub examined: u64,
    /// Secrets re-encrypted under the active key.
    pub moved: u64,
    /// Secrets that could not be decrypted with any key of the ring.
    pub failed: Vec<(ProjectId, &'static str, CryptoError)>,
}

/// Re-encrypts every secret not already under the active key.
pub async fn rotate_secrets(pool: &Pool, keys: &MasterKeyRing) -> Result<RotationReport, DbError> {
    let mut report = RotationReport::default();
    for secret in SECRET_COLUMNS {
        rotate_column(pool, keys, secret, &mut report).await?;
    }
    Ok(report)
}

async fn rotate_column(
    pool: &Pool,
    keys: &MasterKeyRing,
    secret: &SecretColumn,
    report: &mut RotationReport,
) -> Result<(), DbError> {
    let SecretColumn {
        table,
        column,
        project,
        field,
    } = secret;
    let mut after: Option<uuid::Uuid> = None;
    loop {
        let client = pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT id, {project} AS project_id, {column} AS secret FROM {table}
                     WHERE {column} IS NOT NULL AND ($1::uuid IS NULL OR id > $1)
                     ORDER BY id LIMIT $2"
                ),
                &[&after, &BATCH],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.try_get("id")?);
        for row in &rows {
            let id: uuid::Uuid = row.try_get("id")?;
            let project_id: ProjectId = row.try_get("project_id")?;
            let stored: Vec<u8> = row.try_get("secret")?;
            report.examined += 1;
            if !keys.needs_rotation(&stored) {
                continue;
            }
            let plain = match keys.decrypt(&stored, project_id, *field) {
                Ok(plain) => plain,
                Err(error) => {
                    report.failed.push((project_id, column, error));
                    continue;
                }
            };
            let fresh = keys.encrypt(&plain, project_id, *field);
            let replaced = client
                .execute(
                    &format!("UPDATE {table} SET {column} = $3 WHERE id = $1 AND {column} = $2"),
                    &[&id, &stored, &fresh],
                )
                .await?;
            report.moved += replaced;
        }
    }
    Ok(())
}
