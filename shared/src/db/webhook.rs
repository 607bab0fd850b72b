//! The `webhook_events` and `webhook_attempts` tables. An event is written in the
//! statement that makes its run final (see [`EVENT_FOR_STATUS_CHANGE`]), so a crash
//! between the two cannot lose a callback; the dispatcher takes due events with
//! `SKIP LOCKED` and Postgres is the retry schedule.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{DbError, GenericClient, parse_column};
use crate::{
    db::notify,
    domain::{
        id::{ProjectId, RunId, SessionId},
        model::EventType,
        text::storable,
    },
};

/// A CTE named `e` that records the event of every run in the CTE `final_runs`
/// (columns `id, session_id, project_id, status, webhook_url`: runs that just
/// became final or paused in `requires_action`), typed `session.<status>`: sent to
/// the run's URL, else the project's; nothing when neither is set.
pub const EVENT_FOR_STATUS_CHANGE: &str = "
    e AS (
        INSERT INTO webhook_events (id, project_id, session_id, run_id, type, url)
        SELECT gen_random_uuid(), f.project_id, f.session_id, f.id, 'session.' || f.status,
               coalesce(f.webhook_url, p.webhook_url)
        FROM final_runs f JOIN projects p ON p.id = f.project_id
        WHERE coalesce(f.webhook_url, p.webhook_url) IS NOT NULL
        RETURNING id, run_id
    )";

/// An event due for an attempt.
#[derive(Clone, Debug)]
pub struct DueEvent {
    pub id: Uuid,
    pub project_id: ProjectId,
    pub session_id: SessionId,
    pub run_id: RunId,
    pub kind: EventType,
    pub url: String,
    pub payload: Option<String>,
    /// This attempt's number.
    pub attempt: i32,
    pub created_at: OffsetDateTime,
    /// Seconds since the retry window opened.
    pub age_secs: f64,
}

/// Takes up to `limit` due events; each is leased for `lease` (if the dispatcher
/// dies mid-attempt, the event is due again after it, with the same id).
pub async fn take_due_events(
    client: &impl GenericClient,
    limit: i64,
    lease: Duration,
) -> Result<Vec<DueEvent>, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE webhook_events e
             SET attempts = e.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
             FROM (SELECT id FROM webhook_events
                   WHERE status = 'pending' AND next_attempt_at <= now()
                   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE e.id = due.id
             RETURNING e.id, e.project_id, e.session_id, e.run_id, e.type, e.url, e.payload,
                       e.attempts, e.created_at,
                       extract(epoch FROM now() - e.window_started_at)::float8 AS age_secs",
        )
        .await?;
    client
        .query(&statement, &[&limit, &lease.as_secs_f64()])
        .await?
        .iter()
        .map(|row| {
            Ok(DueEvent {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                session_id: row.try_get("session_id")?,
                run_id: row.try_get("run_id")?,
                kind: parse_column(row, "type", EventType::parse)?,
                url: row.try_get("url")?,
                payload: row.try_get("payload")?,
                attempt: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
                age_secs: row.try_get("age_secs")?,
            })
        })
        .collect()
}

/// Stores the body of an event's first attempt, so that retries send it again
/// byte for byte. Returns the body that stands (another dispatcher may have won).
pub async fn freeze_payload(
    client: &impl GenericClient,
    id: Uuid,
    payload: &str,
) -> Result<String, DbError> {
    let row = client
        .query_one(
            "UPDATE webhook_events SET payload = coalesce(payload, $2) WHERE id = $1
             RETURNING payload",
            &[&id, &payload],
        )
        .await?;
    Ok(row.try_get("payload")?)
}

/// What became of an event after an attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventFate {
    /// A 2xx answer.
    Delivered,
    /// 410 Gone: the receiver asked us to stop.
    Stopped,
    /// The retry window is over.
    Failed,
    /// Try again after this long.
    RetryIn(Duration),
}

/// One attempt's result, for the delivery log.
#[derive(Clone, Debug)]
pub struct AttemptResult {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub started_at: OffsetDateTime,
}

/// Logs the attempt and moves the event on, in one statement.
pub async fn record_attempt(
    client: &impl GenericClient,
    event: &DueEvent,
    result: &AttemptResult,
    fate: EventFate,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "WITH a AS (
                 INSERT INTO webhook_attempts
                     (event_id, attempt, attempted_at, url, status_code, error, duration_ms,
                      next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7,
                         CASE WHEN $8 = 'pending' THEN now() + make_interval(secs => $9) END)
             )
             UPDATE webhook_events SET status = $8,
                 next_attempt_at = CASE WHEN $8 = 'pending'
                                        THEN now() + make_interval(secs => $9)
                                        ELSE next_attempt_at END,
                 finished_at = CASE WHEN $8 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .await?;
    let (status, retry_in) = match fate {
        EventFate::Delivered => ("delivered", 0.0),
        EventFate::Stopped => ("stopped", 0.0),
        EventFate::Failed => ("failed", 0.0),
        EventFate::RetryIn(wait) => ("pending", wait.as_secs_f64()),
    };
    client
        .execute(
            &statement,
            &[
                &event.id,
                &event.attempt,
                &result.started_at,
                &event.url,
                &result.status_code,
                // A receiver's words, made storable: a NUL refused here would
                // leave the attempt unrecorded and the event sent again at once.
                &result.error.clone().map(storable),
                &result.duration_ms,
                &status,
                &retry_in,
            ],
        )
        .await?;
    Ok(())
}

/// One delivery attempt (shown by `view::DeliveryOut`).
#[derive(Clone, Debug)]
pub struct DeliveryRow {
    pub event_id: String,
    pub kind: EventType,
    pub attempt: i32,
    pub attempted_at: OffsetDateTime,
    pub url: String,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// The `webhook-id` of an event.
pub fn message_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// Every attempt for a session's events, oldest first.
pub async fn list_deliveries(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<Vec<DeliveryRow>, DbError> {
    let rows = client
        .query(
            "SELECT e.id AS event_id, e.type, a.attempt, a.attempted_at, a.url, a.status_code,
                    a.error, a.duration_ms, a.next_attempt_at
             FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id
             WHERE e.session_id = $1 AND e.project_id = $2
             ORDER BY a.id",
            &[&session_id, &project_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryRow {
                event_id: message_id(row.try_get("event_id")?),
                kind: parse_column(row, "type", EventType::parse)?,
                attempt: row.try_get("attempt")?,
                attempted_at: row.try_get("attempted_at")?,
                url: row.try_get("url")?,
                status_code: row.try_get("status_code")?,
                error: row.try_get("error")?,
                duration_ms: row.try_get("duration_ms")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
            })
        })
        .collect()
}

/// Makes the session's latest event due now, with a fresh retry window, and wakes
/// the dispatchers. `None` when the session has no event.
pub async fn retry_latest_event(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<Option<String>, DbError> {
    let row = client
        .query_opt(
            "WITH r AS (
                 UPDATE webhook_events SET status = 'pending', next_attempt_at = now(),
                                           window_started_at = now(), finished_at = NULL
                 WHERE id = (SELECT id FROM webhook_events
                             WHERE session_id = $1 AND project_id = $2
                             ORDER BY created_at DESC LIMIT 1)
                 RETURNING id
             )
             SELECT id, pg_notify($3, '') FROM r",
            &[&session_id, &project_id, &notify::WEBHOOK],
        )
        .await?;
    row.map(|row| Ok(message_id(row.try_get("id")?)))
        .transpose()
}

/// Events still waiting for delivery (for metrics and tests).
pub async fn pending_events(client: &impl GenericClient) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE status = 'pending'",
            &[],
        )
        .await?
        .try_get(0)?)
}
