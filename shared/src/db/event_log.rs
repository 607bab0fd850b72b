//! The session event log (migration 0009): status changes and committed steps
//! numbered per session in commit order (written by triggers), `stream` rows
//! that open a streamed model call, and the text of each stream, checkpointed.
//! Event streams replay from here; only the live tail of deltas comes over the
//! broker.

use std::{collections::HashMap, time::Duration};

use super::{DbError, GenericClient, step::Lease};
use crate::domain::{
    id::{RunId, SessionId},
    model::RunStatus,
};

/// Event ids are `seq × DELTA_SPAN + offset`: a logged event is `seq × SPAN`,
/// a delta of the stream opened by event `seq` is numbered by the byte offset
/// its text ends at. Ids stay integers below 2^53 for nine million events a
/// session, and a stream's text may reach a gigabyte.
pub const DELTA_SPAN: i64 = 1_000_000_000;

/// The SSE id of a position: event `seq`, `offset` bytes into its stream.
pub fn event_id(seq: i64, offset: usize) -> String {
    (seq * DELTA_SPAN + i64::try_from(offset).unwrap_or(DELTA_SPAN - 1)).to_string()
}

/// Reads an id sent back as `Last-Event-ID`.
pub fn parse_event_id(text: &str) -> Option<(i64, usize)> {
    let id: i64 = text.trim().parse().ok()?;
    if id < DELTA_SPAN {
        return None;
    }
    Some((id / DELTA_SPAN, usize::try_from(id % DELTA_SPAN).ok()?))
}

/// What a log row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// `session.<status>`.
    Status(RunStatus),
    /// `run.step`: the step at `step` was committed (or its client result came).
    Step,
    /// `run.reset`: the step at `step` is being made again.
    Reset,
    /// A streamed model call for `step` began; its deltas follow. Never sent.
    Stream,
}

/// One row of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    pub seq: i64,
    pub run_id: RunId,
    pub kind: LogKind,
    pub step: Option<i32>,
}

fn kind_of(text: &str) -> Option<LogKind> {
    Some(match text {
        "run.step" => LogKind::Step,
        "run.reset" => LogKind::Reset,
        "stream" => LogKind::Stream,
        _ => LogKind::Status(RunStatus::parse(text.strip_prefix("session.")?)?),
    })
}

/// Events after `after`, oldest first, at most `limit`.
pub async fn events_after(
    client: &impl GenericClient,
    session_id: SessionId,
    after: i64,
    limit: i64,
) -> Result<Vec<LoggedEvent>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT seq, run_id, type, step FROM session_events
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .await?;
    client
        .query(&statement, &[&session_id, &after, &limit])
        .await?
        .iter()
        .map(|row| {
            Ok(LoggedEvent {
                seq: row.try_get("seq")?,
                run_id: row.try_get("run_id")?,
                kind: super::parse_column(row, "type", kind_of)?,
                step: row.try_get("step")?,
            })
        })
        .collect()
}

/// Where a client resuming after `seq` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumePoint {
    /// The event is kept: what follows it can be sent.
    Kept,
    /// The event was dropped by the retention sweep.
    Expired,
    /// No such event was ever written.
    Unknown,
}

/// Whether the stream can resume after event `seq` of `session_id`.
pub async fn resume_point(
    client: &impl GenericClient,
    session_id: SessionId,
    seq: i64,
) -> Result<ResumePoint, DbError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM session_events WHERE session_id = $1 AND seq = $2),
                    (SELECT max(seq) FROM session_events WHERE session_id = $1)",
            &[&session_id, &seq],
        )
        .await?;
    let kept: bool = row.try_get(0)?;
    let latest: Option<i64> = row.try_get(1)?;
    Ok(match (kept, latest) {
        (true, _) => ResumePoint::Kept,
        (false, Some(latest)) if seq < latest => ResumePoint::Expired,
        _ => ResumePoint::Unknown,
    })
}

/// The latest event of a session (0 before its first).
pub async fn latest_seq(
    client: &impl GenericClient,
    session_id: SessionId,
) -> Result<i64, DbError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM session_events WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The text so far of the streams opened by events `seqs`.
pub async fn stream_texts(
    client: &impl GenericClient,
    session_id: SessionId,
    seqs: &[i64],
) -> Result<HashMap<i64, String>, DbError> {
    if seqs.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = client
        .prepare_cached(
            "SELECT seq, text FROM stream_texts WHERE session_id = $1 AND seq = ANY($2)",
        )
        .await?;
    client
        .query(&statement, &[&session_id, &seqs])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Opens a stream for the run's next step (a `run.reset` first if that step
/// streamed before). `None` when the lease is gone.
pub async fn open_stream(
    client: &impl GenericClient,
    lease: Lease,
) -> Result<Option<i64>, DbError> {
    let statement = client
        .prepare_cached("SELECT stewrd_open_stream($1, $2, $3)")
        .await?;
    let row = client
        .query_one(&statement, &[&lease.run_id, &lease.worker, &lease.attempt])
        .await?;
    Ok(row.try_get(0)?)
}

/// Stores a stream's text so far (only ever longer: a late checkpoint cannot
/// cut a newer one).
pub async fn checkpoint(
    client: &impl GenericClient,
    session_id: SessionId,
    seq: i64,
    text: &str,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE stream_texts SET text = $3, updated_at = now()
             WHERE session_id = $1 AND seq = $2 AND length(text) <= length($3)",
        )
        .await?;
    client
        .execute(&statement, &[&session_id, &seq, &text])
        .await?;
    Ok(())
}

/// Rows dropped per statement of the retention sweep.
const PURGE_BATCH: i64 = 5_000;

/// Drops events (and stream texts) of runs that ended more than `retention`
/// ago, keeping each session's latest event so its numbering goes on. Returns
/// how many events went.
///
/// A batch is chosen among the rows that may go: chosen among all old rows
/// and filtered after, the batch could be made only of rows that stay (every
/// old session keeps one event for ever), and once the first 5,000 old rows
/// were such, the sweep dropped nothing again.
pub async fn purge(client: &impl GenericClient, retention: Duration) -> Result<u64, DbError> {
    let seconds = retention.as_secs_f64();
    let events = client
        .execute(
            "DELETE FROM session_events
             WHERE ctid = ANY (ARRAY (
                       SELECT e.ctid FROM session_events e JOIN runs r ON r.id = e.run_id
                       WHERE e.created_at < now() - make_interval(secs => $1)
                         AND r.finished_at < now() - make_interval(secs => $1)
                         AND EXISTS (SELECT 1 FROM session_events l
                                     WHERE l.session_id = e.session_id AND l.seq > e.seq)
                       LIMIT $2))",
            &[&seconds, &PURGE_BATCH],
        )
        .await?;
    client
        .execute(
            "DELETE FROM stream_texts
             WHERE ctid = ANY (ARRAY (
                       SELECT t.ctid FROM stream_texts t
                       WHERE t.updated_at < now() - make_interval(secs => $1)
                         AND NOT EXISTS (SELECT 1 FROM session_events e
                                         WHERE e.session_id = t.session_id AND e.seq = t.seq)
                       LIMIT $2))",
            &[&seconds, &PURGE_BATCH],
        )
        .await?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_events_and_the_deltas_between_them() {
        assert_eq!(event_id(3, 0), "3000000000");
        assert_eq!(parse_event_id("3000000042"), Some((3, 42)));
        assert_eq!(parse_event_id(&event_id(7, 0)), Some((7, 0)));
        let number = |id: String| id.parse::<i64>().expect("a number");
        assert!(number(event_id(3, 999)) < number(event_id(4, 0)));
        for bad in ["", "x", "-1", "12", "999999999", "1e9"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_logged_type_reads_back() {
        assert_eq!(
            kind_of("session.running"),
            Some(LogKind::Status(RunStatus::Running))
        );
        assert_eq!(kind_of("run.step"), Some(LogKind::Step));
        assert_eq!(kind_of("run.reset"), Some(LogKind::Reset));
        assert_eq!(kind_of("stream"), Some(LogKind::Stream));
        assert_eq!(kind_of("session.nope"), None);
    }
}
