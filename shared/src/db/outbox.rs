//! The `outbox` table: one row per queued run saying when its message is (next)
//! due to be published. See the migration for why a row outlives its publish.

use std::time::Duration;

use time::OffsetDateTime;

use super::{DbError, GenericClient};
use crate::domain::id::RunId;

/// A message due to be published.
#[derive(Clone, Debug)]
pub struct DueMessage {
    pub run_id: RunId,
    /// The submitting request's id, carried in the message headers for tracing.
    pub request_id: Option<String>,
}

/// A row taken for publishing, and the state [`take_due`] left it in: only
/// that state is given the republish window once the broker confirms
/// ([`settle_taken`]).
#[derive(Clone, Debug)]
pub struct Taken {
    pub message: DueMessage,
    /// The row's publishes, this one counted.
    pub publishes: i32,
    /// The row's new due time.
    pub in_flight_until: OffsetDateTime,
}

/// Takes up to `limit` due rows for publishing and makes each due again after
/// `in_flight`, counting the publish: a relay that dies (or fails a statement)
/// before the broker has the message leaves the row due again that soon, for
/// any relay. Once the broker confirms, [`settle_taken`] gives the row the
/// republish window. Pushed straight to that window here, a message the relay
/// never sent left its run queued for five minutes and more with nothing to
/// wake it (a worker killed between this commit and its publish). Concurrent
/// relays never take the same row.
pub async fn take_due(
    client: &impl GenericClient,
    limit: i64,
    in_flight: Duration,
) -> Result<Vec<Taken>, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox o
             SET available_at = now() + make_interval(secs => $2),
                 publishes = o.publishes + 1
             FROM (SELECT run_id FROM outbox WHERE available_at <= now()
                   ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE o.run_id = due.run_id
             RETURNING o.run_id, (SELECT request_id FROM runs WHERE id = o.run_id),
                       o.publishes, o.available_at",
        )
        .await?;
    client
        .query(&statement, &[&limit, &in_flight.as_secs_f64()])
        .await?
        .iter()
        .map(|row| {
            Ok(Taken {
                message: DueMessage {
                    run_id: row.try_get("run_id")?,
                    request_id: row.try_get("request_id")?,
                },
                publishes: row.try_get("publishes")?,
                in_flight_until: row.try_get("available_at")?,
            })
        })
        .collect()
}

/// Gives rows [`take_due`] took, whose messages the broker confirmed, the
/// republish window: `republish_after`, doubling with every publish after the
/// first, at most an hour. Only a row still as `take_due` left it changes: one
/// claimed meanwhile is gone, one a claim made due (its message acked, its run
/// left queued) or another relay took again has changed, and stays as it is.
/// Locked rows are skipped: they keep their short window.
///
/// The rows are locked once, in a materialized CTE: written as `run_id IN
/// (SELECT … FOR UPDATE SKIP LOCKED)`, the planner rescanned that subquery
/// for every row it updated (4,000 rows took 17 s; a relay settling a
/// 100,000-run backlog's publishes ran for hours, publishing nothing).
pub async fn settle_taken(
    client: &impl GenericClient,
    taken: &[Taken],
    republish_after: Duration,
) -> Result<u64, DbError> {
    let run_ids: Vec<RunId> = taken.iter().map(|t| t.message.run_id).collect();
    let publishes: Vec<i32> = taken.iter().map(|t| t.publishes).collect();
    let until: Vec<OffsetDateTime> = taken.iter().map(|t| t.in_flight_until).collect();
    let statement = client
        .prepare_cached(
            "WITH settled AS MATERIALIZED (
                 SELECT o.run_id FROM outbox o
                 JOIN unnest($1::uuid[], $2::int[], $3::timestamptz[])
                      AS t(run_id, publishes, until)
                   ON o.run_id = t.run_id AND o.publishes = t.publishes
                  AND o.available_at = t.until
                 FOR UPDATE OF o SKIP LOCKED)
             UPDATE outbox o
             SET available_at = now() + make_interval(
                     secs => least($4 * power(2, least(o.publishes - 1, 12)), 3600))
             FROM settled WHERE o.run_id = settled.run_id",
        )
        .await?;
    Ok(client
        .execute(
            &statement,
            &[&run_ids, &publishes, &until, &republish_after.as_secs_f64()],
        )
        .await?)
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

/// Makes rows whose publish failed due again after `delay`. The rows are
/// locked in run id order, as claims lock theirs (`stewrd_take_batch`), so
/// the two never wait for each other in a cycle.
pub async fn retry_after(
    client: &impl GenericClient,
    run_ids: &[RunId],
    delay: Duration,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox SET available_at = now() + make_interval(secs => $2)
             WHERE run_id IN (SELECT run_id FROM outbox WHERE run_id = ANY($1)
                              ORDER BY run_id FOR UPDATE)",
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
