//! Claiming the next run for a worker, fairly across projects, and the lease bookkeeping (heartbeat, reaper)
//! that lets any worker take over a dead worker's runs.

use std::time::Duration;

use super::AgentSettings;
use crate::db::{
    DbError, GenericClient,
    limits::{LIMIT_COLUMNS, limits},
    project::project_llm,
};
use crate::domain::usage::Usage;
use crate::domain::{
    agent::{RunTools, ServerTool},
    file::FileId,
    id::{ProjectId, RunId, SessionId, WorkerId},
    limits::Limits,
    llm::ProjectLlm,
    mcp::{McpServer, McpTool},
};
use serde_json::Value;

/// A run a worker has claimed: everything needed to make the call, read in
/// the claim's statement: the lease it holds, what the client asked, where
/// the run stands, and the project as it was at the claim.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    pub id: RunId,
    pub session_id: SessionId,
    pub project_id: ProjectId,
    pub turn: i32,
    pub lease: ClaimLease,
    pub request: RunRequest,
    pub progress: Progress,
    pub project: ProjectSnapshot,
}

/// The claim itself: which attempt holds the run, and its clocks.
#[derive(Clone, Copy, Debug)]
pub struct ClaimLease {
    /// This claim's attempt number; with the worker id, the lease's identity.
    pub attempt: i32,
    /// Time left before the run's deadline (negative when past it).
    pub seconds_left: f64,
    /// Seconds until the call slot this run already reserved (negative: passed).
    pub slot_in: Option<f64>,
    /// Seconds since the run was submitted.
    pub age_secs: f64,
}

/// What the client asked for with its message.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub input: String,
    pub system: Option<String>,
    pub requested_model: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f64>,
    pub request_id: Option<String>,
    /// The client's tools and the loop's bounds.
    pub agent: AgentSettings,
    /// The session's metadata, sent with every server tool call.
    pub session_metadata: serde_json::Value,
    /// Files attached to the message.
    pub files: Vec<FileId>,
}

/// How far the run got before this claim.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Committed steps: more than 0 means the run resumes.
    pub step_count: i32,
    /// The attempt at which a step last committed: attempts since then count
    /// against `STEWRD_MAX_ATTEMPTS`, so a long agent run is not cut short by
    /// transient failures spread over many steps.
    pub progress_attempt: i32,
    /// Tokens used by the steps committed so far.
    pub usage_so_far: Option<Usage>,
    /// The MCP tools the run offers, once listed at its first step (then
    /// fixed for its life, whatever the servers list later).
    pub mcp_tools: Option<Vec<McpTool>>,
    /// Fallback models used so far: the run calls its requested (or the
    /// project's) model at 0, else the `fallbacks`th of its fallback models.
    pub fallbacks: usize,
}

/// The project as it stood when the run was claimed.
#[derive(Clone, Debug)]
pub struct ProjectSnapshot {
    pub llm: ProjectLlm,
    /// The project's encrypted provider key, decrypted only at the call.
    pub encrypted_key: Option<Vec<u8>>,
    /// The project's rate limit, caps and budgets.
    pub limits: Limits,
    /// The project's server tools.
    pub tools: Vec<ServerTool>,
    /// The project's MCP servers, and their header values sealed (opened
    /// only when a server is reached).
    pub mcp_servers: Vec<McpServer>,
    pub mcp_headers: Option<Vec<u8>>,
    /// The project's models to fall back to, for runs without their own.
    pub fallback_models: Vec<String>,
}

impl ClaimedRun {
    /// The models this run falls back to, in order: its own, else its
    /// project's (pinned on the run at its first fallback).
    pub fn fallback_models(&self) -> &[String] {
        if self.request.agent.fallback_models.is_empty() {
            &self.project.fallback_models
        } else {
            &self.request.agent.fallback_models
        }
    }

    /// Claims since the run last made progress (this one included).
    pub fn attempts_since_progress(&self) -> i32 {
        self.lease.attempt - self.progress.progress_attempt
    }
}

/// What a claim reads of its run (`c`), its project and its session. Left
/// joins: a claimed run whose project or session is missing fails to read (and
/// is failed as unreadable) instead of vanishing while it holds a lease; and a
/// batch's row of nulls (see [`claim_batch`]) comes through.
fn claim_select(source: &str) -> String {
    format!(
        "SELECT c.id, c.session_id, c.project_id, c.turn, c.attempts, c.input, c.system,
                c.requested_model, c.max_tokens, c.temperature, c.request_id,
                c.tools, c.tool_choice, c.response_format, c.max_steps, c.max_total_tokens,
                c.stream, c.step_count, c.progress_attempt, c.prompt_tokens, c.files, c.max_repairs,
                c.max_cost_usd, c.fallback_models AS run_fallback_models, c.fallbacks,
                p.fallback_models,
                c.completion_tokens, c.total_tokens, c.cost_usd, c.mcp_tools,
                extract(epoch FROM c.deadline - now())::float8 AS seconds_left,
                extract(epoch FROM c.rate_slot - now())::float8 AS slot_in,
                extract(epoch FROM now() - c.created_at)::float8 AS age_secs,
                p.llm_provider, p.llm_model, p.key_status, p.llm_api_key,
                p.llm_api_key IS NOT NULL AS has_key, p.server_tools, p.mcp_servers,
                p.mcp_headers, {LIMIT_COLUMNS},
                s.metadata AS session_metadata
         FROM {source}
         LEFT JOIN projects p ON p.id = c.project_id LEFT JOIN sessions s ON s.id = c.session_id"
    )
}

/// Claims the next run for `worker`, whichever message woke it: in the waiting
/// project with the fewest runs in flight, the message's run (`hint`) if it is
/// there, else the oldest due one; projects at their `max_concurrent_runs` are
/// passed over (see `stewrd_claim_next`). The claim deletes the run's outbox
/// row, and makes the hint's due at once when it took another run (the caller
/// then wakes its relay).
///
/// One statement claims and reads. A run it claimed but could not read is read
/// again on its own (see [`read_claimed`]); if the claim itself fails for
/// another reason than an outage, see [`claim_unreadable`].
pub async fn claim_next(
    client: &impl GenericClient,
    worker: WorkerId,
    lease: Duration,
    hint: Option<RunId>,
) -> Result<Claim, DbError> {
    let statement = client
        .prepare_cached(&claim_select("stewrd_claim_next($1, $2, $3) c"))
        .await?;
    let claimed = client
        .query_opt(&statement, &[&worker, &lease.as_secs_f64(), &hint])
        .await;
    let row = match claimed {
        Ok(Some(row)) => row,
        Ok(None) => return Ok(Claim::Nothing),
        Err(error) => {
            locks_released(client).await;
            return Err(error.into());
        }
    };
    match claimed_run(&row) {
        Ok(run) => Ok(Claim::Claimed(Box::new(run))),
        Err(_) => read_claimed(client, worker, row.try_get("id")?).await,
    }
}

/// Claims for a room message: `project`'s oldest due run, if it has a free
/// place (see `stewrd_claim_room`; the mark is due again after a claim, and
/// gone when the claim found no room or no work). Claimed in one statement and
/// read in another, like [`claim_unreadable`]: room claims are few, and a run
/// no claim can read is then named and failed, not met by every room message.
pub async fn claim_room(
    client: &impl GenericClient,
    worker: WorkerId,
    lease: Duration,
    project: ProjectId,
) -> Result<Claim, DbError> {
    let statement = client
        .prepare_cached("SELECT id FROM stewrd_claim_room($1, $2, $3)")
        .await?;
    match client
        .query_opt(&statement, &[&worker, &lease.as_secs_f64(), &project])
        .await?
    {
        Some(row) => read_claimed(client, worker, row.try_get("id")?).await,
        None => Ok(Claim::Nothing),
    }
}

/// Waits, after a claim failed, until its transaction's row locks are gone.
/// Postgres sends a statement's error before it aborts the transaction, so a
/// claim on another connection right after could still find the runs locked,
/// take the failed claim for a live one (`SKIP LOCKED`) and leave them to their
/// outbox rows' republish. The next statement on the same connection runs only
/// once the abort is done.
async fn locks_released(client: &impl GenericClient) {
    let _ = client.query_opt("SELECT 1", &[]).await;
}

/// What a batched claim gave.
#[derive(Debug)]
pub enum Batch {
    /// The runs claimed, no more than the hints: a hint's own run, or (with
    /// several projects waiting) another project's run claimed in its place,
    /// which the caller starts under a hint whose run is not among them. A
    /// hint whose run is not claimed is a spare (its run is taken, not due, or
    /// given a new message). `unreadable`: runs claimed whose rows cannot be
    /// read, which the caller fails (no worker could ever process them).
    Claimed {
        runs: Vec<ClaimedRun>,
        unreadable: Vec<RunId>,
    },
    /// The batch cannot be claimed in one statement (a waiting project is
    /// capped): claim hint by hint with [`claim_next`].
    OneByOne,
}

/// Claims the runs of several messages in one statement where that gives each
/// message what [`claim_next`] would (see `stewrd_claim_batch`): one plpgsql
/// call, one scan of the waiting projects and one commit for the batch.
pub async fn claim_batch(
    client: &impl GenericClient,
    worker: WorkerId,
    lease: Duration,
    hints: &[RunId],
) -> Result<Batch, DbError> {
    let statement = client
        .prepare_cached(&claim_select("stewrd_claim_batch($1, $2, $3) c"))
        .await?;
    let rows = match client
        .query(&statement, &[&worker, &lease.as_secs_f64(), &hints])
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            locks_released(client).await;
            return Err(error.into());
        }
    };
    let mut runs = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in &rows {
        let Some(id) = row.try_get::<_, Option<RunId>>("id")? else {
            return Ok(Batch::OneByOne);
        };
        match claimed_run(row) {
            Ok(run) => runs.push(run),
            Err(_) => match read_claimed(client, worker, id).await {
                Ok(Claim::Claimed(run)) => runs.push(*run),
                Ok(Claim::Nothing) => {}
                Ok(Claim::Poisoned(id)) => unreadable.push(id),
                // Postgres went away: the runs read so far still start; this
                // one keeps its lease until the reaper puts it back, as after
                // a worker's crash.
                Err(error) => tracing::warn!(%error, run_id = %id, "cannot read a claimed run"),
            },
        }
    }
    Ok(Batch::Claimed { runs, unreadable })
}

/// What a claim gave.
#[derive(Debug)]
pub enum Claim {
    /// Nothing can start now: no run is due, or every waiting project is at its cap.
    Nothing,
    /// The run claimed, read.
    Claimed(Box<ClaimedRun>),
    /// This run is claimed by the worker but its row cannot be read: it can
    /// never be processed, and the caller fails it.
    Poisoned(RunId),
}

/// After [`claim_next`] failed on a data error: claims in one statement and
/// reads in another, so a run whose row no claim can read (the fair claim
/// would pick it again and again) is named, and failed, instead of blocking
/// every claim behind it.
pub async fn claim_unreadable(
    client: &impl GenericClient,
    worker: WorkerId,
    lease: Duration,
    hint: Option<RunId>,
) -> Result<Claim, DbError> {
    let Some(row) = client
        .query_opt(
            "SELECT id FROM stewrd_claim_next($1, $2, $3)",
            &[&worker, &lease.as_secs_f64(), &hint],
        )
        .await?
    else {
        return Ok(Claim::Nothing);
    };
    read_claimed(client, worker, row.try_get("id")?).await
}

/// Reads a run `worker` has claimed, in a statement of its own. A claim's joins
/// read the project and session as of the claim statement's start, but the
/// claim function takes the run it finds later (after waiting for a capped
/// project's lock, say): a run submitted meanwhile is claimed while its session
/// reads as missing. A new statement sees what the claim saw; a row that still
/// cannot be read is poisoned.
async fn read_claimed(
    client: &impl GenericClient,
    worker: WorkerId,
    id: RunId,
) -> Result<Claim, DbError> {
    let read = client
        .query_opt(
            &claim_select("(SELECT * FROM runs WHERE id = $1 AND lease_owner = $2) c"),
            &[&id, &worker],
        )
        .await;
    match read.map_err(DbError::from) {
        Ok(Some(row)) => match claimed_run(&row) {
            Ok(run) => Ok(Claim::Claimed(Box::new(run))),
            Err(DbError::Unavailable(why)) => Err(DbError::Unavailable(why)),
            Err(_) => Ok(Claim::Poisoned(id)),
        },
        // Not ours any more (cancelled meanwhile): nothing to process.
        Ok(None) => Ok(Claim::Nothing),
        Err(DbError::Unavailable(why)) => Err(DbError::Unavailable(why)),
        Err(_) => Ok(Claim::Poisoned(id)),
    }
}

/// Reads a claimed run. Its tools are decoded here, once: a stored value no
/// worker can read makes the run unreadable (and failed), never a run
/// silently offered no tools.
fn claimed_run(row: &tokio_postgres::Row) -> Result<ClaimedRun, DbError> {
    let mut usage_so_far = Usage::from_parts(
        row.try_get("prompt_tokens")?,
        row.try_get("completion_tokens")?,
        row.try_get("total_tokens")?,
    );
    if let Some(usage) = usage_so_far.as_mut() {
        usage.cost_usd = row.try_get("cost_usd")?;
    }
    let client_tools = RunTools::decode(row.try_get::<_, Option<Value>>("tools")?.as_ref())
        .ok_or(DbError::Corrupt { column: "tools" })?;
    let server_tools: Vec<ServerTool> = serde_json::from_value(row.try_get("server_tools")?)
        .map_err(|_| DbError::Corrupt {
            column: "server_tools",
        })?;
    let mcp_servers: Vec<McpServer> =
        serde_json::from_value(row.try_get("mcp_servers")?).map_err(|_| DbError::Corrupt {
            column: "mcp_servers",
        })?;
    let mcp_tools: Option<Vec<McpTool>> = row
        .try_get::<_, Option<Value>>("mcp_tools")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| DbError::Corrupt {
            column: "mcp_tools",
        })?;
    Ok(ClaimedRun {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        project_id: row.try_get("project_id")?,
        turn: row.try_get("turn")?,
        lease: ClaimLease {
            attempt: row.try_get("attempts")?,
            seconds_left: row.try_get("seconds_left")?,
            slot_in: row.try_get("slot_in")?,
            age_secs: row.try_get("age_secs")?,
        },
        request: RunRequest {
            input: row.try_get("input")?,
            system: row.try_get("system")?,
            requested_model: row.try_get("requested_model")?,
            max_tokens: row.try_get("max_tokens")?,
            temperature: row.try_get("temperature")?,
            request_id: row.try_get("request_id")?,
            agent: AgentSettings {
                tools: client_tools,
                tool_choice: row.try_get("tool_choice")?,
                response_format: row.try_get("response_format")?,
                max_steps: row.try_get("max_steps")?,
                max_total_tokens: row.try_get("max_total_tokens")?,
                max_repairs: row.try_get("max_repairs")?,
                max_cost_usd: row.try_get("max_cost_usd")?,
                fallback_models: row
                    .try_get::<_, Option<Vec<String>>>("run_fallback_models")?
                    .unwrap_or_default(),
                stream: row.try_get("stream")?,
            },
            session_metadata: row.try_get("session_metadata")?,
            files: row
                .try_get::<_, Option<Vec<FileId>>>("files")?
                .unwrap_or_default(),
        },
        progress: Progress {
            step_count: row.try_get("step_count")?,
            progress_attempt: row.try_get("progress_attempt")?,
            usage_so_far,
            mcp_tools,
            fallbacks: usize::try_from(row.try_get::<_, i16>("fallbacks")?).unwrap_or(0),
        },
        project: ProjectSnapshot {
            llm: project_llm(row)?,
            encrypted_key: row.try_get("llm_api_key")?,
            limits: limits(row)?,
            tools: server_tools,
            mcp_servers,
            mcp_headers: row.try_get("mcp_headers")?,
            fallback_models: row
                .try_get::<_, Option<Vec<String>>>("fallback_models")?
                .unwrap_or_default(),
        },
    })
}

/// Extends the leases `worker` holds on `runs`: one statement per heartbeat,
/// however many runs are in flight. A run whose row another transaction holds
/// is skipped this beat (it is most likely having its result stored): waiting
/// for it while holding the others could deadlock with a commit storing
/// several results, and the next beat comes well within the lease.
pub async fn extend_leases(
    client: &impl GenericClient,
    worker: WorkerId,
    runs: &[RunId],
    lease: Duration,
) -> Result<u64, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE runs r SET lease_until = now() + make_interval(secs => $3)
             FROM (SELECT id FROM runs
                   WHERE id = ANY($2) AND status = 'running' AND lease_owner = $1
                   FOR UPDATE SKIP LOCKED) AS free
             WHERE r.id = free.id",
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
                 UPDATE runs r SET status = 'queued', lease_owner = NULL, lease_until = NULL, due_at = now()
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
