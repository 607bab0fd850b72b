//! Shared cool-downs: when a provider answers 429 for a model on a key, every
//! worker pauses calls of that model with that key until the reset time (and
//! when it says the key itself is out of credit, every call with the key).
//! Rows are keyed by a fingerprint of the key (or of key and model), never the key.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{DbError, GenericClient};
use crate::db::notify;

/// Identifies a key without revealing it (16 bytes of a domain-separated SHA-256).
pub fn fingerprint(key: &SecretString) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"stewrd key fingerprint v1\0")
        .chain_update(key.expose_secret().as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Identifies a key's use for one model: providers (OpenAI, OpenRouter,
/// LiteLLM) rate-limit per model, and one key usually serves many, so a 429
/// from one model pauses that model on that key only.
pub fn model_fingerprint(key: &SecretString, model: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"stewrd key and model fingerprint v1\0")
        .chain_update(key.expose_secret().as_bytes())
        .chain_update(b"\0")
        .chain_update(model.as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Pauses the key for `pause` (never shortening an existing pause) and tells
/// every worker.
pub async fn record_cooldown(
    client: &impl GenericClient,
    fingerprint: &[u8; 16],
    pause: Duration,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "WITH c AS (
                 INSERT INTO key_cooldowns AS k (fingerprint, paused_until)
                 VALUES ($1, now() + make_interval(secs => $2))
                 ON CONFLICT (fingerprint) DO UPDATE
                     SET paused_until = greatest(k.paused_until, EXCLUDED.paused_until)
                 RETURNING fingerprint, paused_until
             )
             SELECT pg_notify($3, encode(fingerprint, 'hex') || ' ' ||
                    extract(epoch FROM paused_until - now())::text)
             FROM c",
        )
        .await?;
    client
        .query(
            &statement,
            &[
                &fingerprint.as_slice(),
                &pause.as_secs_f64(),
                &notify::COOLDOWN,
            ],
        )
        .await?;
    Ok(())
}

/// Cool-downs still running: fingerprint and seconds left.
pub async fn active_cooldowns(client: &impl GenericClient) -> Result<Vec<(Vec<u8>, f64)>, DbError> {
    let rows = client
        .query(
            "SELECT fingerprint, extract(epoch FROM paused_until - now())::float8 AS left_secs
             FROM key_cooldowns WHERE paused_until > now()",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("fingerprint")?, row.try_get("left_secs")?)))
        .collect()
}
