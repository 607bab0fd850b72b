//! The `outbox` table: one row per queued run saying when its message is (next)
//! due to be published. See the migration for why a row outlives its publish.

use std::time::Duration;

use super::{DbError, GenericClient};
use crate::domain::id::RunId;

/// A message due to be published.
#[derive(Clone, Debug)]
pub struct DueMessage {
    pub run_id: RunId,
    /// The submitting request's id, carried in the message headers for tracing.
    pub request_id: Option<String>,
}

/// Takes up to `limit` due rows for publishing and pushes each one's next due
/// time `republish_after` (doubling with every publish, at most an hour) into
/// the future: if the run is still unclaimed by then, its message is presumed lost
/// and published again. Concurrent relays never take the same row.
pub async fn take_due(
    client: &impl GenericClient,
    limit: i64,
    republish_after: Duration,
) -> Result<Vec<DueMessage>, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox o
             SET available_at = now() + make_interval(
                     secs => least($2 * power(2, least(o.publishes, 12)), 3600)),
                 publishes = o.publishes + 1
             FROM (SELECT run_id FROM outbox WHERE available_at <= now()
                   ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE o.run_id = due.run_id
             RETURNING o.run_id, (SELECT request_id FROM runs WHERE id = o.run_id)",
        )
        .await?;
    client
        .query(&statement, &[&limit, &republish_after.as_secs_f64()])
        .await?
        .iter()
        .map(|row| {
            Ok(DueMessage {
                run_id: row.try_get("run_id")?,
                request_id: row.try_get("request_id")?,
            })
        })
        .collect()
}

/// Gives rows whose message the fast lane published and the broker confirmed
/// the relay's republish window (`republish_after`, counted as one publish), so
/// a run waiting longer than [`UNCLAIMED_REPUBLISH`] in a backlog is not
/// published a second time: each such duplicate cost a publish, a delivery and
/// a claim that found nothing (13,000 of them for 20,000 jobs in a throughput
/// run). Rows already claimed are gone; rows made due meanwhile (a failed
/// publish) or already republished are left alone. (Capped projects' waiting
/// runs are woken by their project's free-place mark, `place`, not by their
/// rows.) Only a run never claimed (`started_at` unset) still has the row the
/// fast lane published: a run claimed and put back within those 2 s (a
/// rate-limit wait) has a new row with its own due time, which must stay.
///
/// A claim whose message found its run not claimable makes the run's row due
/// now (`stewrd_take_batch`): its message is gone. Such a row must stay due,
/// even when that claim commits while this statement runs: locked rows are
/// skipped (they keep their fast-lane window, at worst one spare publish),
/// and a row is checked against the clock, not the statement's start, which
/// a row made due a moment after it is still later than.
///
/// [`UNCLAIMED_REPUBLISH`]: crate::queue::relay::UNCLAIMED_REPUBLISH
pub async fn settle(
    client: &impl GenericClient,
    run_ids: &[RunId],
    republish_after: Duration,
) -> Result<u64, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox o SET available_at = now() + make_interval(secs => $2),
                                 publishes = 1
             FROM runs r
             WHERE o.run_id IN (SELECT run_id FROM outbox WHERE run_id = ANY($1)
                                FOR UPDATE SKIP LOCKED)
               AND o.publishes = 0 AND o.available_at > clock_timestamp()
               AND r.id = o.run_id AND r.started_at IS NULL",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&run_ids, &republish_after.as_secs_f64()])
        .await?)
}

/// Makes rows whose publish failed due again after `delay`.
pub async fn retry_after(
    client: &impl GenericClient,
    run_ids: &[RunId],
    delay: Duration,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox SET available_at = now() + make_interval(secs => $2)
             WHERE run_id = ANY($1)",
        )
        .await?;
    client
        .execute(&statement, &[&run_ids, &delay.as_secs_f64()])
        .await?;
    Ok(())
}

/// Rows due now (published and unclaimed rows wait in the future).
pub async fn count_due(client: &impl GenericClient) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM outbox WHERE available_at <= now()",
            &[],
        )
        .await?
        .try_get(0)?)
}
