//! The `runs` table: submit, claim, finish, and the lease bookkeeping that lets
//! any worker take over a dead worker's runs. Every transition is one conditional
//! statement; whoever's statement matches no row lost the race and backs off.

use std::{sync::LazyLock, time::Duration};

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{
    DbError, GenericClient, parse_column, parse_optional_column, project::ProjectLlm,
    webhook::EVENT_FOR_FINAL_RUN,
};
use crate::{
    id::{ProjectId, RunId, SessionId, WorkerId},
    llm::LlmChoice,
    model::{FailureCode, KeySource, KeyStatus, Provider, RunStatus},
    notify,
};

/// Which session a new run belongs to.
pub enum SessionTarget<'a> {
    /// Start a session with this id.
    New {
        id: SessionId,
        metadata: &'a serde_json::Value,
    },
    /// Append to an existing session of the same project.
    Existing {
        id: SessionId,
        metadata: Option<&'a serde_json::Value>,
    },
}

/// A user message to store and queue.
pub struct NewRun<'a> {
    pub id: RunId,
    pub project_id: ProjectId,
    pub session: SessionTarget<'a>,
    pub input: &'a str,
    pub system: Option<&'a str>,
    pub requested_model: Option<&'a str>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f64>,
    pub webhook_url: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub choice: &'a LlmChoice,
    pub deadline: Duration,
    /// When the run's outbox row falls due: now for the relay to publish it, or
    /// after the republish window when the API publishes it itself (fast lane).
    pub publish_delay: Duration,
}

/// Why a run could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertRunError {
    #[error("no such session")]
    SessionNotFound,
    #[error("the session already has a queued or running run")]
    SessionBusy,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The run, its outbox row and the session change go in one statement: one
/// round trip and one commit, and a 202 is only ever sent for a stored run.
const INSERT_RUN_TAIL: &str = "
    r AS (
        INSERT INTO runs (id, session_id, project_id, turn, status, input, system,
                          requested_model, max_tokens, temperature, webhook_url, request_id,
                          provider, model, key_source, deadline)
        SELECT $3, s.id, $2, s.run_count, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
               now() + make_interval(secs => $15)
        FROM s
        RETURNING id, created_at
    ),
    o AS (INSERT INTO outbox (run_id, available_at)
          SELECT id, now() + make_interval(secs => $16) FROM r)
    SELECT created_at FROM r";

/// Stores a run (creating or appending to its session) and its outbox row.
/// Returns the run's creation time.
pub async fn insert_run(
    client: &impl GenericClient,
    run: &NewRun<'_>,
) -> Result<OffsetDateTime, InsertRunError> {
    let (session_id, metadata, head) = match run.session {
        SessionTarget::New { id, metadata } => (
            id,
            Some(metadata),
            "WITH s AS (
                 INSERT INTO sessions (id, project_id, latest_run_id, metadata)
                 VALUES ($1, $2, $3, coalesce($4, '{}'::jsonb))
                 RETURNING id, run_count
             ),",
        ),
        SessionTarget::Existing { id, metadata } => (
            id,
            metadata,
            "WITH s AS (
                 UPDATE sessions SET latest_run_id = $3, run_count = run_count + 1,
                                     updated_at = now(), metadata = coalesce($4, metadata)
                 WHERE id = $1 AND project_id = $2
                 RETURNING id, run_count
             ),",
        ),
    };
    let statement = client
        .prepare_cached(&format!("{head}{INSERT_RUN_TAIL}"))
        .await
        .map_err(DbError::from)?;
    let result = client
        .query_opt(
            &statement,
            &[
                &session_id,
                &run.project_id,
                &run.id,
                &metadata,
                &run.input,
                &run.system,
                &run.requested_model,
                &run.max_tokens,
                &run.temperature,
                &run.webhook_url,
                &run.request_id,
                &run.choice.provider.as_str(),
                &run.choice.model,
                &run.choice.key_source.as_str(),
                &run.deadline.as_secs_f64(),
                &run.publish_delay.as_secs_f64(),
            ],
        )
        .await
        .map_err(DbError::from);
    match result {
        Ok(Some(row)) => Ok(row.try_get("created_at").map_err(DbError::from)?),
        Ok(None) => Err(InsertRunError::SessionNotFound),
        Err(error) if error.violates("runs_one_active_per_session") => {
            Err(InsertRunError::SessionBusy)
        }
        Err(error) => Err(error.into()),
    }
}

/// A run a worker has claimed: everything needed to make the call.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    pub id: RunId,
    pub session_id: SessionId,
    pub project_id: ProjectId,
    pub turn: i32,
    /// This claim's attempt number; with the worker id, the lease's identity.
    pub attempt: i32,
    pub input: String,
    pub system: Option<String>,
    pub requested_model: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f64>,
    pub request_id: Option<String>,
    /// Time left before the run's deadline (negative when past it).
    pub seconds_left: f64,
    pub project_llm: ProjectLlm,
    /// The project's encrypted provider key, decrypted only at the call.
    pub encrypted_key: Option<Vec<u8>>,
    /// The project's own requests-per-minute limit.
    pub rate_limit_rpm: Option<i32>,
    /// Seconds until the call slot this run already reserved (negative: passed).
    pub slot_in: Option<f64>,
    /// Seconds since the run was submitted.
    pub age_secs: f64,
}

/// Claims a queued run, or a running one whose lease expired, for `worker`.
/// `None` means there is nothing to do: finished, cancelled, or leased by a live
/// worker. The claim also deletes the run's outbox row: it has arrived.
pub async fn claim_run(
    client: &impl GenericClient,
    run_id: RunId,
    worker: WorkerId,
    lease: Duration,
) -> Result<Option<ClaimedRun>, DbError> {
    let statement = client
        .prepare_cached(
            "WITH c AS (
                 UPDATE runs SET status = 'running', attempts = attempts + 1, lease_owner = $2,
                                 lease_until = now() + make_interval(secs => $3),
                                 started_at = coalesce(started_at, now())
                 WHERE id = $1
                   AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
                 RETURNING id, session_id, project_id, turn, attempts, input, system,
                           requested_model, max_tokens, temperature, request_id,
                           extract(epoch FROM deadline - now())::float8 AS seconds_left,
                           extract(epoch FROM rate_slot - now())::float8 AS slot_in,
                           extract(epoch FROM now() - created_at)::float8 AS age_secs
             ),
             d AS (DELETE FROM outbox WHERE run_id = $1 AND EXISTS (SELECT 1 FROM c))
             SELECT c.*, p.llm_provider, p.llm_model, p.key_status, p.llm_api_key,
                    p.llm_api_key IS NOT NULL AS has_key, p.rate_limit_rpm
             FROM c JOIN projects p ON p.id = c.project_id",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&run_id, &worker, &lease.as_secs_f64()])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ClaimedRun {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        project_id: row.try_get("project_id")?,
        turn: row.try_get("turn")?,
        attempt: row.try_get("attempts")?,
        input: row.try_get("input")?,
        system: row.try_get("system")?,
        requested_model: row.try_get("requested_model")?,
        max_tokens: row.try_get("max_tokens")?,
        temperature: row.try_get("temperature")?,
        request_id: row.try_get("request_id")?,
        seconds_left: row.try_get("seconds_left")?,
        project_llm: ProjectLlm::from_row(&row)?,
        encrypted_key: row.try_get("llm_api_key")?,
        rate_limit_rpm: row.try_get("rate_limit_rpm")?,
        slot_in: row.try_get("slot_in")?,
        age_secs: row.try_get("age_secs")?,
    }))
}

/// An earlier run of the same session, for the conversation history.
#[derive(Clone, Debug)]
pub struct EarlierRun {
    pub input: String,
    pub output: Option<String>,
    pub system: Option<String>,
    pub status: RunStatus,
}

/// The session's runs before `turn`, oldest first.
pub async fn earlier_runs(
    client: &impl GenericClient,
    session_id: SessionId,
    turn: i32,
) -> Result<Vec<EarlierRun>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT input, output, system, status FROM runs
             WHERE session_id = $1 AND turn < $2 ORDER BY turn",
        )
        .await?;
    client
        .query(&statement, &[&session_id, &turn])
        .await?
        .iter()
        .map(|row| {
            Ok(EarlierRun {
                input: row.try_get("input")?,
                output: row.try_get("output")?,
                system: row.try_get("system")?,
                status: parse_column(row, "status", RunStatus::parse)?,
            })
        })
        .collect()
}

/// Token counts reported by the provider.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Usage {
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub total_tokens: i32,
}

/// How a run ended in the worker.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    Succeeded {
        output: String,
        usage: Option<Usage>,
    },
    Failed {
        code: FailureCode,
        message: String,
    },
}

static FINISH_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = $4, output = $5, error_code = $6, error_message = $7,
                             prompt_tokens = $8, completion_tokens = $9, total_tokens = $10,
                             provider = $11, model = $12, key_source = $13,
                             finished_at = now(), lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         {EVENT_FOR_FINAL_RUN},
         k AS (
             UPDATE projects SET key_status = $14
             WHERE $14::text IS NOT NULL AND id = (SELECT project_id FROM final_runs)
               AND llm_api_key = $15 AND key_status <> $14
         )
         SELECT (SELECT count(*) FROM e) AS events FROM final_runs"
    )
});

/// What storing a result did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The lease was lost (taken over, cancelled): nothing was written.
    LeaseLost,
    /// Written; `webhook` says whether an event was queued for delivery.
    Written { webhook: bool },
}

/// Writes a run's result, guarded by the lease: if the lease was lost (taken over,
/// cancelled) nothing is written and `false` comes back, so a run never gets two
/// results. In the same statement: the webhook event (if any URL applies) and what
/// the call taught about the project's own key (`learnt`; only if that key was
/// used and is still the stored one). Waking long-polls is left to the caller,
/// outside the commit: a notifying commit is serialized with every other one.
pub async fn finish_run(
    client: &impl GenericClient,
    run: &ClaimedRun,
    worker: WorkerId,
    choice: &LlmChoice,
    outcome: &RunOutcome,
    learnt: Option<KeyStatus>,
) -> Result<Finished, DbError> {
    let used_own_key = (choice.key_source == KeySource::Project)
        .then_some(run.encrypted_key.as_deref())
        .flatten();
    let learnt = learnt
        .filter(|status| used_own_key.is_some() && run.project_llm.key_status != Some(*status))
        .map(KeyStatus::as_str);
    let statement = client.prepare_cached(&FINISH_RUN).await?;
    let (status, output, code, message, usage) = match outcome {
        RunOutcome::Succeeded { output, usage } => (
            RunStatus::Succeeded,
            Some(output.as_str()),
            None,
            None,
            *usage,
        ),
        RunOutcome::Failed { code, message } => (
            RunStatus::Failed,
            None,
            Some(code.as_str()),
            Some(message.as_str()),
            None,
        ),
    };
    let rows = client
        .query(
            &statement,
            &[
                &run.id,
                &worker,
                &run.attempt,
                &status.as_str(),
                &output,
                &code,
                &message,
                &usage.map(|u| u.prompt_tokens),
                &usage.map(|u| u.completion_tokens),
                &usage.map(|u| u.total_tokens),
                &choice.provider.as_str(),
                &choice.model,
                &choice.key_source.as_str(),
                &learnt,
                &used_own_key,
            ],
        )
        .await?;
    match rows.first() {
        None => Ok(Finished::LeaseLost),
        Some(row) => Ok(Finished::Written {
            webhook: row.try_get::<_, i64>("events")? > 0,
        }),
    }
}

/// How a claimed run goes back to the queue.
#[derive(Clone, Copy, Debug)]
pub struct Requeue {
    /// When its message is published again.
    pub delay: Duration,
    /// Whether the attempt just made counts against `STEWRD_MAX_ATTEMPTS`
    /// (a provider failure does; a shutdown or a rate-limit wait does not).
    pub counts_as_attempt: bool,
    /// A call slot reserved for the run, from now.
    pub rate_slot: Option<Duration>,
}

impl Requeue {
    /// Back to the queue at once, the attempt not counted (a worker stopping).
    pub const HAND_BACK: Requeue = Requeue {
        delay: Duration::ZERO,
        counts_as_attempt: false,
        rate_slot: None,
    };
}

/// Puts a claimed run back in the queue, guarded by the lease like a result.
pub async fn requeue_run(
    client: &impl GenericClient,
    run: &ClaimedRun,
    worker: WorkerId,
    requeue: Requeue,
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "WITH u AS (
                 UPDATE runs SET status = 'queued', attempts = attempts - $4,
                                 lease_owner = NULL, lease_until = NULL,
                                 rate_slot = now() + make_interval(secs => $5)
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING id
             )
             INSERT INTO outbox (run_id, available_at)
             SELECT id, now() + make_interval(secs => $6) FROM u
             ON CONFLICT (run_id) DO UPDATE SET available_at = EXCLUDED.available_at
             RETURNING run_id",
        )
        .await?;
    let uncounted = i32::from(!requeue.counts_as_attempt);
    let rows = client
        .query(
            &statement,
            &[
                &run.id,
                &worker,
                &run.attempt,
                &uncounted,
                &requeue.rate_slot.map(|slot| slot.as_secs_f64()),
                &requeue.delay.as_secs_f64(),
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

static CANCEL_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = 'cancelled', error_code = 'cancelled',
                             error_message = 'cancelled by request', finished_at = now(),
                             lease_owner = NULL, lease_until = NULL
             WHERE id = (SELECT latest_run_id FROM sessions WHERE id = $1 AND project_id = $2)
               AND status IN ('queued', 'running')
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         d AS (DELETE FROM outbox WHERE run_id IN (SELECT id FROM final_runs)),
         {EVENT_FOR_FINAL_RUN}
         SELECT f.id, pg_notify($5, f.session_id::text || ' cancelled'),
                pg_notify($3, f.id::text), (SELECT pg_notify($4, '') FROM e LIMIT 1)
         FROM final_runs f"
    )
});

/// What `cancel_session` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The session's queued or running run is now cancelled.
    Cancelled(RunId),
    /// The session's latest run was already final.
    AlreadyFinal,
    /// No such session for this project.
    NotFound,
}

/// Cancels a session's queued or running run. `cancelled` is final: the worker's
/// result guard (`status = 'running'`) then fails, so a late result is dropped;
/// workers are told to abort the call.
pub async fn cancel_session(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<CancelOutcome, DbError> {
    let statement = client.prepare_cached(&CANCEL_SESSION).await?;
    let rows = client
        .query(
            &statement,
            &[
                &session_id,
                &project_id,
                &notify::CANCEL,
                &notify::WEBHOOK,
                &notify::SESSION,
            ],
        )
        .await?;
    if let Some(row) = rows.first() {
        return Ok(CancelOutcome::Cancelled(row.try_get("id")?));
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM sessions WHERE id = $1 AND project_id = $2",
            &[&session_id, &project_id],
        )
        .await?
        .is_some();
    Ok(if exists {
        CancelOutcome::AlreadyFinal
    } else {
        CancelOutcome::NotFound
    })
}

static FAIL_UNCLAIMED_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = 'failed', error_code = $2, error_message = $3,
                             finished_at = now(), lease_owner = NULL, lease_until = NULL
             WHERE id = $1
               AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         d AS (DELETE FROM outbox WHERE run_id IN (SELECT id FROM final_runs)),
         {EVENT_FOR_FINAL_RUN}
         SELECT pg_notify($5, session_id::text || ' ' || status),
                (SELECT pg_notify($4, '') FROM e LIMIT 1)
         FROM final_runs"
    )
});

/// Fails a run no live worker holds (queued, or running on an expired lease): the
/// dead-letter consumer's verdict on a message that could not be processed.
/// Returns whether the run was failed.
pub async fn fail_unclaimed_run(
    client: &impl GenericClient,
    run_id: RunId,
    code: FailureCode,
    message: &str,
) -> Result<bool, DbError> {
    let statement = client.prepare_cached(&FAIL_UNCLAIMED_RUN).await?;
    let rows = client
        .query(
            &statement,
            &[
                &run_id,
                &code.as_str(),
                &message,
                &notify::WEBHOOK,
                &notify::SESSION,
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Extends the leases `worker` holds on `runs`: one statement per heartbeat,
/// however many runs are in flight.
pub async fn extend_leases(
    client: &impl GenericClient,
    worker: WorkerId,
    runs: &[RunId],
    lease: Duration,
) -> Result<u64, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE runs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = ANY($2) AND status = 'running' AND lease_owner = $1",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&worker, &runs, &lease.as_secs_f64()])
        .await?)
}

/// Puts runs whose lease expired (their worker died or lost Postgres) back in the
/// queue, at most `limit` at a time. Several reapers never take the same run.
pub async fn requeue_expired_leases(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<RunId>, DbError> {
    let statement = client
        .prepare_cached(
            "WITH expired AS (
                 SELECT id FROM runs WHERE status = 'running' AND lease_until < now()
                 ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED
             ),
             requeued AS (
                 UPDATE runs r SET status = 'queued', lease_owner = NULL, lease_until = NULL
                 FROM expired WHERE r.id = expired.id
                 RETURNING r.id
             )
             INSERT INTO outbox (run_id) SELECT id FROM requeued
             ON CONFLICT (run_id) DO UPDATE SET available_at = now()
             RETURNING run_id",
        )
        .await?;
    client
        .query(&statement, &[&limit])
        .await?
        .iter()
        .map(|row| Ok(row.try_get("run_id")?))
        .collect()
}

/// A run as the API shows it.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: RunId,
    pub turn: i32,
    pub status: RunStatus,
    pub input: String,
    pub output: Option<String>,
    pub provider: Provider,
    pub model: String,
    pub key_source: KeySource,
    pub attempts: i32,
    pub error_code: Option<FailureCode>,
    pub error_message: Option<String>,
    pub usage: Option<Usage>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// The run columns [`RunRecord::from_row`] reads, qualified by alias `r`.
pub const RUN_RECORD_COLUMNS: &str = "r.id AS run_id, r.turn, r.status, r.input, r.output, \
     r.provider, r.model, r.key_source, r.attempts, r.error_code, r.error_message, \
     r.prompt_tokens, r.completion_tokens, r.total_tokens, r.created_at AS run_created_at, \
     r.started_at, r.finished_at";

impl RunRecord {
    /// Reads the columns of [`RUN_RECORD_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, DbError> {
        let prompt: Option<i32> = row.try_get("prompt_tokens")?;
        let completion: Option<i32> = row.try_get("completion_tokens")?;
        let total: Option<i32> = row.try_get("total_tokens")?;
        Ok(Self {
            id: row.try_get("run_id")?,
            turn: row.try_get("turn")?,
            status: parse_column(row, "status", RunStatus::parse)?,
            input: row.try_get("input")?,
            output: row.try_get("output")?,
            provider: parse_column(row, "provider", Provider::parse)?,
            model: row.try_get("model")?,
            key_source: parse_column(row, "key_source", KeySource::parse)?,
            attempts: row.try_get("attempts")?,
            error_code: parse_optional_column(row, "error_code", FailureCode::parse)?,
            error_message: row.try_get("error_message")?,
            usage: match (prompt, completion, total) {
                (Some(prompt_tokens), Some(completion_tokens), Some(total_tokens)) => Some(Usage {
                    prompt_tokens,
                    completion_tokens,
                    total_tokens,
                }),
                _ => None,
            },
            created_at: row.try_get("run_created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}
