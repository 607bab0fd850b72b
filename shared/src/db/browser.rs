//! A run's browser state, sealed by the worker (the store never sees it in
//! the clear): written under the run's lease after every browser action, read
//! when a new browser must take the run on, removed when the run ends.

use crate::domain::id::RunId;

use super::{DbError, GenericClient, step::Lease};

/// Saves `sealed` as the run's browser state; `false` when the lease was lost
/// (a newer claim's state is not overwritten).
pub async fn save_state(
    client: &impl GenericClient,
    lease: Lease,
    sealed: &[u8],
) -> Result<bool, DbError> {
    let written = client
        .execute(
            "INSERT INTO browser_states (id, project_id, sealed)
             SELECT id, project_id, $4::bytea FROM runs
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
             ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, saved_at = now()",
            &[&lease.run_id, &lease.worker, &lease.attempt, &sealed],
        )
        .await?;
    Ok(written == 1)
}

/// The run's saved browser state, if any.
pub async fn saved_state(
    client: &impl GenericClient,
    run: RunId,
) -> Result<Option<Vec<u8>>, DbError> {
    let row = client
        .query_opt("SELECT sealed FROM browser_states WHERE id = $1", &[&run])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Forgets the run's browser state (the run is final).
pub async fn forget_state(client: &impl GenericClient, run: RunId) -> Result<(), DbError> {
    client
        .execute("DELETE FROM browser_states WHERE id = $1", &[&run])
        .await?;
    Ok(())
}

/// Which of `runs` no longer need a browser (final, or gone), their states
/// forgotten: the browsers a host still holds for them can be closed (a
/// worker that died between a run's end and its browser's close left them).
pub async fn ended_runs(
    client: &impl GenericClient,
    runs: &[RunId],
) -> Result<Vec<RunId>, DbError> {
    let rows = client
        .query(
            "WITH ended AS (
                 SELECT candidate FROM unnest($1::uuid[]) AS candidate
                 WHERE NOT EXISTS (
                     SELECT 1 FROM runs
                     WHERE id = candidate AND status IN ('queued', 'running', 'requires_action')
                 )
             ),
             forgotten AS (
                 DELETE FROM browser_states WHERE id IN (SELECT candidate FROM ended)
             )
             SELECT candidate FROM ended",
            &[&runs],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
