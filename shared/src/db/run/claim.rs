//! Claiming a run for a worker, and the lease bookkeeping (heartbeat, reaper)
//! that lets any worker take over a dead worker's runs.

use std::time::Duration;

use super::{AgentSettings, Usage};
use crate::db::{DbError, GenericClient, project::ProjectLlm};
use crate::id::{ProjectId, RunId, SessionId, WorkerId};

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
    /// The client's tools and the loop's bounds.
    pub agent: AgentSettings,
    /// The project's server tools (a JSON array of `agent::ServerTool`).
    pub server_tools: serde_json::Value,
    /// The session's metadata, sent with every server tool call.
    pub session_metadata: serde_json::Value,
    /// Committed steps: more than 0 means the run resumes.
    pub step_count: i32,
    /// The attempt at which a step last committed: attempts since then count
    /// against `STEWRD_MAX_ATTEMPTS`, so a long agent run is not cut short by
    /// transient failures spread over many steps.
    pub progress_attempt: i32,
    /// Tokens used by the steps committed so far.
    pub usage_so_far: Option<Usage>,
}

impl ClaimedRun {
    /// Claims since the run last made progress (this one included).
    pub fn attempts_since_progress(&self) -> i32 {
        self.attempt - self.progress_attempt
    }

    /// Whether the model is offered any tool: the run keeps its steps as rows.
    pub fn is_agent(&self) -> bool {
        let has = |value: &serde_json::Value| value.as_array().is_some_and(|a| !a.is_empty());
        self.agent.tools.as_ref().is_some_and(has) || has(&self.server_tools)
    }
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
                           tools, tool_choice, response_format, max_steps, max_total_tokens, stream,
                           step_count, progress_attempt, prompt_tokens, completion_tokens,
                           total_tokens,
                           extract(epoch FROM deadline - now())::float8 AS seconds_left,
                           extract(epoch FROM rate_slot - now())::float8 AS slot_in,
                           extract(epoch FROM now() - created_at)::float8 AS age_secs
             ),
             d AS (DELETE FROM outbox WHERE run_id = $1 AND EXISTS (SELECT 1 FROM c))
             SELECT c.*, p.llm_provider, p.llm_model, p.key_status, p.llm_api_key,
                    p.llm_api_key IS NOT NULL AS has_key, p.rate_limit_rpm, p.server_tools,
                    s.metadata AS session_metadata
             FROM c JOIN projects p ON p.id = c.project_id JOIN sessions s ON s.id = c.session_id",
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
        agent: AgentSettings {
            tools: row.try_get("tools")?,
            tool_choice: row.try_get("tool_choice")?,
            response_format: row.try_get("response_format")?,
            max_steps: row.try_get("max_steps")?,
            max_total_tokens: row.try_get("max_total_tokens")?,
            stream: row.try_get("stream")?,
        },
        server_tools: row.try_get("server_tools")?,
        session_metadata: row.try_get("session_metadata")?,
        step_count: row.try_get("step_count")?,
        progress_attempt: row.try_get("progress_attempt")?,
        usage_so_far: Usage::from_parts(
            row.try_get("prompt_tokens")?,
            row.try_get("completion_tokens")?,
            row.try_get("total_tokens")?,
        ),
    }))
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
