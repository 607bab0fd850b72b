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

/// Every encrypted column of `projects`, with the field its ciphertexts are bound to.
const SECRET_COLUMNS: &[(&str, SecretField)] = &[
    ("llm_api_key", SecretField::ProviderKey),
    ("webhook_secret", SecretField::WebhookSecret),
    ("webhook_secret_previous", SecretField::WebhookSecret),
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
    for &(column, field) in SECRET_COLUMNS {
        let mut after: Option<ProjectId> = None;
        loop {
            let client = pool.get().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT id, {column} AS secret FROM projects
                         WHERE {column} IS NOT NULL AND ($1::uuid IS NULL OR id > $1)
                         ORDER BY id LIMIT $2"
                    ),
                    &[&after, &BATCH],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.try_get("id")?);
            for row in &rows {
                let id: ProjectId = row.try_get("id")?;
                let stored: Vec<u8> = row.try_get("secret")?;
                report.examined += 1;
                if !keys.needs_rotation(&stored) {
                    continue;
                }
                let plain = match keys.decrypt(&stored, id, field) {
                    Ok(plain) => plain,
                    Err(error) => {
                        report.failed.push((id, column, error));
                        continue;
                    }
                };
                let fresh = keys.encrypt(&plain, id, field);
                let replaced = client
                    .execute(
                        &format!(
                            "UPDATE projects SET {column} = $3 WHERE id = $1 AND {column} = $2"
                        ),
                        &[&id, &stored, &fresh],
                    )
                    .await?;
                report.moved += replaced;
            }
        }
    }
    Ok(report)
}
