//! The `idempotency_keys` table: the first answer to an `Idempotency-Key`, kept
//! for 24 hours. Used inside the transaction that stores the run, under a
//! transaction-scoped advisory lock, so a key is either fresh, replayed, or busy.

use super::{DbError, GenericClient};
use crate::domain::id::ProjectId;

/// What a key says about a request.
#[derive(Debug)]
pub enum KeyState {
    /// Unknown (or expired): go ahead, then `remember` the answer.
    Fresh,
    /// Seen with this body: answer this again.
    Replay {
        status: i32,
        response: serde_json::Value,
    },
    /// Seen with another body.
    Mismatch,
    /// Another request with this key is being handled right now.
    Busy,
}

/// Locks the key for this transaction and reports its state.
pub async fn check_key(
    client: &impl GenericClient,
    project_id: ProjectId,
    key: &str,
    request_hash: &[u8; 32],
) -> Result<KeyState, DbError> {
    let locked: bool = client
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))",
            &[&project_id.to_string(), &key],
        )
        .await?
        .try_get(0)?;
    if !locked {
        return Ok(KeyState::Busy);
    }
    let row = client
        .query_opt(
            "SELECT request_hash, status, response FROM idempotency_keys
             WHERE project_id = $1 AND key = $2 AND created_at > now() - interval '24 hours'",
            &[&project_id, &key],
        )
        .await?;
    let Some(row) = row else {
        return Ok(KeyState::Fresh);
    };
    let stored: Vec<u8> = row.try_get("request_hash")?;
    if stored != request_hash {
        return Ok(KeyState::Mismatch);
    }
    Ok(KeyState::Replay {
        status: row.try_get("status")?,
        response: row.try_get("response")?,
    })
}

/// Stores the answer given to a fresh key (replacing an expired one).
pub async fn remember(
    client: &impl GenericClient,
    project_id: ProjectId,
    key: &str,
    request_hash: &[u8; 32],
    status: i32,
    response: &serde_json::Value,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (project_id, key) DO UPDATE
                 SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
                     response = EXCLUDED.response, created_at = now()",
            &[
                &project_id,
                &key,
                &request_hash.as_slice(),
                &status,
                response,
            ],
        )
        .await?;
    Ok(())
}

/// Forgets answers older than 24 hours; returns how many.
pub async fn forget_expired(client: &impl GenericClient) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'",
            &[],
        )
        .await?)
}
