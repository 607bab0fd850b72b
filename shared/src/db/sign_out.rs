//! The `dashboard_sign_outs` table: dashboard session cookies ended by a
//! sign-out before their expiry, by digest (a cookie is a bearer secret; the
//! table never holds one).

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{DbError, GenericClient};

fn digest(cookie: &str) -> Vec<u8> {
    Sha256::digest(cookie.as_bytes()).to_vec()
}

/// Ends the session of `cookie` (which would expire at `expires_at`).
pub async fn sign_out(
    client: &impl GenericClient,
    cookie: &str,
    expires_at: OffsetDateTime,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO dashboard_sign_outs (cookie_sha256, expires_at) VALUES ($1, $2)
             ON CONFLICT (cookie_sha256) DO NOTHING",
            &[&digest(cookie), &expires_at],
        )
        .await?;
    Ok(())
}

/// Whether the session of `cookie` was signed out.
pub async fn is_signed_out(client: &impl GenericClient, cookie: &str) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached("SELECT 1 FROM dashboard_sign_outs WHERE cookie_sha256 = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&digest(cookie)])
        .await?
        .is_some())
}

/// Forgets sign-outs of cookies that have expired anyway.
pub async fn forget_expired_sign_outs(client: &impl GenericClient) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "DELETE FROM dashboard_sign_outs WHERE expires_at < now()",
            &[],
        )
        .await?)
}
