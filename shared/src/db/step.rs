//! The `run_steps` table: the committed steps of agent runs. Each model answer
//! is committed before any tool runs, each batch of tool results before the
//! next model call, every write guarded by the run's lease like a result. A step
//! in flight has no row, so after a crash a run resumes at its first missing step.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{DbError, GenericClient, parse_column, parse_optional_column};
use crate::domain::{
    agent::ToolCall,
    approval::{Approval, Verdict},
    file::FileId,
    id::{RunId, WorkerId},
    model::{Executor, Outcome, Provider, StepStatus, StepType, Wait},
    usage::Usage,
};

/// A committed step: a model call or a tool call, in a run's order.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    pub run_id: RunId,
    pub index: i32,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub kind: StepKind,
}

/// What a step is.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// A model answer (one that asked for tools, or an agent run's last).
    Model(ModelStep),
    /// One tool call the model asked for, and where it stands.
    Tool(ToolStep),
}

/// A model answer, as it came.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelStep {
    pub model: String,
    /// Its text (`None` when it only called tools).
    pub content: Option<String>,
    /// Its `tool_calls`, exactly as the provider wrote them.
    pub tool_calls: Option<Value>,
    pub usage: Option<Usage>,
    /// A final answer that did not match the run's schema: what failed (the
    /// model was sent it back with this).
    pub rejected: Option<String>,
}

/// One tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolStep {
    pub call: ToolCall,
    pub executor: Executor,
    /// The MCP server that ran it (`executor: mcp`).
    pub server: Option<String>,
    pub state: ToolState,
    pub attempts: i32,
    /// The files the call made (artifacts).
    pub files: Vec<FileId>,
    /// A person's decision on it, when it needed one.
    pub approval: Option<Approval>,
}

/// Where a tool call stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolState {
    /// Waiting for a person (the run is paused until every wait is answered).
    Awaiting(Wait),
    /// Approved and not made yet: the resumed run makes it, at its index.
    Approved,
    /// Answered: the output the model gets.
    Done { outcome: Outcome, output: String },
}

impl ToolState {
    /// The step's `status` as stored and shown.
    pub fn status(&self) -> StepStatus {
        match self {
            Self::Awaiting(_) | Self::Approved => StepStatus::Pending,
            Self::Done {
                outcome: Outcome::Succeeded,
                ..
            } => StepStatus::Succeeded,
            Self::Done {
                outcome: Outcome::Failed,
                ..
            } => StepStatus::Failed,
        }
    }

    /// The output, once answered.
    pub fn output(&self) -> Option<&str> {
        match self {
            Self::Awaiting(_) | Self::Approved => None,
            Self::Done { output, .. } => Some(output),
        }
    }
}

impl StepRow {
    /// The model answer, if this is one.
    pub fn model(&self) -> Option<&ModelStep> {
        match &self.kind {
            StepKind::Model(step) => Some(step),
            StepKind::Tool(_) => None,
        }
    }

    /// The tool call, if this is one.
    pub fn tool(&self) -> Option<&ToolStep> {
        match &self.kind {
            StepKind::Tool(step) => Some(step),
            StepKind::Model(_) => None,
        }
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        let kind = match parse_column(row, "type", StepType::parse)? {
            StepType::ModelCall => StepKind::Model(ModelStep {
                model: row
                    .try_get::<_, Option<String>>("model")?
                    .ok_or(DbError::Corrupt { column: "model" })?,
                content: row.try_get("content")?,
                tool_calls: row.try_get("tool_calls")?,
                usage: Usage::from_parts(
                    row.try_get("prompt_tokens")?,
                    row.try_get("completion_tokens")?,
                    row.try_get("total_tokens")?,
                ),
                rejected: row.try_get("rejected")?,
            }),
            StepType::ToolCall => StepKind::Tool(tool_step(row)?),
        };
        Ok(Self {
            run_id: row.try_get("run_id")?,
            index: row.try_get("index")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            kind,
        })
    }
}

fn tool_step(row: &Row) -> Result<ToolStep, DbError> {
    let text = |column: &'static str| -> Result<String, DbError> {
        row.try_get::<_, Option<String>>(column)?
            .ok_or(DbError::Corrupt { column })
    };
    let approval: Option<Approval> = row
        .try_get::<_, Option<Value>>("approval")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| DbError::Corrupt { column: "approval" })?;
    let state = match parse_column(row, "status", StepStatus::parse)? {
        StepStatus::Pending
            if approval
                .as_ref()
                .is_some_and(|a| a.decision == Verdict::Approved) =>
        {
            ToolState::Approved
        }
        StepStatus::Pending => ToolState::Awaiting(
            parse_optional_column(row, "waits_for", Wait::parse)?.ok_or(DbError::Corrupt {
                column: "waits_for",
            })?,
        ),
        status => ToolState::Done {
            outcome: if status == StepStatus::Succeeded {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            },
            output: row
                .try_get::<_, Option<String>>("output")?
                .unwrap_or_default(),
        },
    };
    Ok(ToolStep {
        call: ToolCall {
            id: text("tool_call_id")?,
            name: text("name")?,
            arguments: text("arguments")?,
        },
        executor: parse_column(row, "executor", Executor::parse)?,
        server: row.try_get("server")?,
        state,
        attempts: row.try_get("attempts")?,
        files: row
            .try_get::<_, Option<Vec<FileId>>>("files")?
            .unwrap_or_default(),
        approval,
    })
}

const STEP_COLUMNS: &str = "run_id, index, type, status, model, content, tool_calls, \
     prompt_tokens, completion_tokens, total_tokens, tool_call_id, name, arguments, executor, \
     output, waits_for, attempts, files, server, approval, rejected, started_at, finished_at";

/// The committed steps of `runs`, by run (in the order given) and index.
pub async fn steps_of_runs(
    client: &impl GenericClient,
    runs: &[RunId],
) -> Result<Vec<StepRow>, DbError> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let statement = client
        .prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM run_steps s
             JOIN unnest($1::uuid[]) WITH ORDINALITY AS r(id, position) ON r.id = s.run_id
             ORDER BY r.position, s.index"
        ))
        .await?;
    client
        .query(&statement, &[&runs])
        .await?
        .iter()
        .map(StepRow::from_row)
        .collect()
}

/// The lease a step is written under: the same guard as a result's.
#[derive(Clone, Copy, Debug)]
pub struct Lease {
    pub run_id: RunId,
    pub worker: WorkerId,
    pub attempt: i32,
}

/// A model answer to commit.
#[derive(Clone, Debug)]
pub struct NewModelStep<'a> {
    pub index: i32,
    /// Who answered: the call is priced as this model's.
    pub provider: Provider,
    pub model: &'a str,
    pub content: Option<&'a str>,
    pub tool_calls: Option<&'a Value>,
    pub usage: Option<Usage>,
    /// An answer that did not match the run's schema: what failed.
    pub rejected: Option<&'a str>,
    pub started_at: OffsetDateTime,
}

/// A tool call's step to commit: answered, or waiting for a person.
#[derive(Clone, Debug)]
pub struct NewToolStep {
    pub index: i32,
    pub call: ToolCall,
    pub executor: Executor,
    /// The MCP server that ran it.
    pub server: Option<String>,
    pub state: ToolState,
    pub attempts: i32,
    /// The files the call made (artifacts).
    pub files: Vec<FileId>,
    /// The approval it waited for (its step is written already, at `index`,
    /// and is completed in place).
    pub approval: Option<Approval>,
    pub started_at: OffsetDateTime,
}

/// Commits a model answer that asks for tools (or a final answer sent back
/// for not matching the run's schema): the step, and its usage added to the
/// run's. False: the lease was lost (cancelled, taken over); nothing written.
pub async fn commit_model_step(
    client: &impl GenericClient,
    lease: Lease,
    step: &NewModelStep<'_>,
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "WITH u AS (
                 UPDATE runs SET step_count = step_count + 1, progress_attempt = attempts,
                     prompt_tokens = coalesce(prompt_tokens, 0) + coalesce($7, 0),
                     completion_tokens = coalesce(completion_tokens, 0) + coalesce($8, 0),
                     total_tokens = coalesce(total_tokens, 0) + coalesce($9, 0),
                     cost_usd = (SELECT CASE WHEN c IS NULL THEN runs.cost_usd
                                             ELSE coalesce(runs.cost_usd, 0) + c END
                                 FROM stewrd_call_cost($14, $5, $7, $8, $12) c)
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING id
             )
             INSERT INTO run_steps (run_id, index, type, status, model, content, tool_calls,
                                    prompt_tokens, completion_tokens, total_tokens,
                                    started_at, finished_at, rejected)
             SELECT id, $4, 'model_call', 'succeeded', $5, $6, $10, $7, $8, $9, $11, now(), $13
             FROM u",
        )
        .await?;
    let written = client
        .execute(
            &statement,
            &[
                &lease.run_id,
                &lease.worker,
                &lease.attempt,
                &step.index,
                &step.model,
                &step.content,
                &step.usage.map(|u| u.prompt_tokens),
                &step.usage.map(|u| u.completion_tokens),
                &step.usage.map(|u| u.total_tokens),
                &step.tool_calls,
                &step.started_at,
                &step.usage.and_then(|u| u.cost_usd),
                &step.rejected,
                &step.provider.as_str(),
            ],
        )
        .await?;
    Ok(written == 1)
}

/// What committing tool steps did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolsCommitted {
    /// The lease was lost: nothing was written.
    LeaseLost,
    /// Written; the run goes on.
    Written,
    /// Written, and the run now waits for the client's outputs; `webhook` says
    /// whether a `session.requires_action` event was queued.
    Paused { webhook: bool },
}

/// Commits a step's tool calls in one statement. When any waits for a
/// person, the run moves to `requires_action` (its lease released: no worker
/// holds a paused run) until `wait_timeout` has passed: the one place a wait
/// is written. An approved call's step, written while it waited, is
/// completed in place (and logged again: the event log's rows are by index).
pub async fn commit_tool_steps(
    client: &impl GenericClient,
    lease: Lease,
    steps: &[NewToolStep],
    wait_timeout: Duration,
) -> Result<ToolsCommitted, DbError> {
    let pause = steps
        .iter()
        .any(|s| matches!(s.state, ToolState::Awaiting(_)))
        .then_some(wait_timeout);
    let statement = client
        .prepare_cached(&format!(
            "WITH u AS (
                 UPDATE runs SET step_count = step_count + $4, progress_attempt = attempts,
                     status = CASE WHEN $5::float8 IS NULL THEN status ELSE 'requires_action' END,
                     lease_owner = CASE WHEN $5::float8 IS NULL THEN lease_owner END,
                     lease_until = CASE WHEN $5::float8 IS NULL THEN lease_until END,
                     action_expires_at = now() + make_interval(secs => $5)
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING id, session_id, project_id, status, webhook_url
             ),
             -- Only a pause is an event; a run that goes on announces nothing.
             final_runs AS (SELECT * FROM u WHERE status = 'requires_action'),
             steps AS (
                 INSERT INTO run_steps (run_id, index, type, status, tool_call_id, name,
                                        arguments, executor, output, attempts, started_at,
                                        finished_at, waits_for, files, server)
                 SELECT f.id, x.i, 'tool_call', x.s, x.c, x.n, x.a, x.e, x.o, x.t, x.b,
                        CASE WHEN x.s = 'pending' THEN NULL ELSE now() END, x.w,
                        nullif(string_to_array(x.fs, ','), '{{}}')::uuid[], x.sv
                 FROM u f,
                      unnest($6::int[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::text[], $13::int[], $14::timestamptz[],
                             $15::text[], $16::text[], $17::text[])
                          AS x(i, s, c, n, a, e, o, t, b, w, fs, sv)
                 ON CONFLICT (run_id, index) DO UPDATE
                     SET status = EXCLUDED.status, output = EXCLUDED.output,
                         attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at,
                         finished_at = EXCLUDED.finished_at, files = EXCLUDED.files
                     WHERE run_steps.status = 'pending' AND run_steps.approval IS NOT NULL
                 RETURNING index
             ),
             again AS (
                 SELECT stewrd_log_event(f.session_id, f.id, 'run.step', x.i)
                 FROM u f, unnest($6::int[], $18::bool[]) AS x(i, again)
                 WHERE x.again AND EXISTS (SELECT 1 FROM steps)
             ),
             {events}
             SELECT (SELECT count(*) FROM e) AS events, (SELECT count(*) FROM again) AS again
             FROM u",
            events = super::webhook::EVENT_FOR_STATUS_CHANGE,
        ))
        .await?;
    let column = |f: fn(&NewToolStep) -> String| steps.iter().map(f).collect::<Vec<_>>();
    let rows = client
        .query(
            &statement,
            &[
                &lease.run_id,
                &lease.worker,
                &lease.attempt,
                // Steps written while they waited were counted then.
                &i32::try_from(steps.iter().filter(|s| s.approval.is_none()).count())
                    .unwrap_or(i32::MAX),
                &pause.map(|p| p.as_secs_f64()),
                &steps.iter().map(|s| s.index).collect::<Vec<_>>(),
                &column(|s| s.state.status().as_str().to_owned()),
                &column(|s| s.call.id.clone()),
                &column(|s| s.call.name.clone()),
                &column(|s| s.call.arguments.clone()),
                &column(|s| s.executor.as_str().to_owned()),
                &steps
                    .iter()
                    .map(|s| s.state.output().map(str::to_owned))
                    .collect::<Vec<_>>(),
                &steps.iter().map(|s| s.attempts).collect::<Vec<_>>(),
                &steps.iter().map(|s| s.started_at).collect::<Vec<_>>(),
                &steps
                    .iter()
                    .map(|s| match s.state {
                        ToolState::Awaiting(wait) => Some(wait.as_str()),
                        // Kept: the answer of a wait shows what it waited for.
                        ToolState::Approved | ToolState::Done { .. } => {
                            s.approval.as_ref().map(|_| Wait::Approval.as_str())
                        }
                    })
                    .collect::<Vec<_>>(),
                // Each step's files as one text (arrays of arrays do not unnest by row).
                &steps
                    .iter()
                    .map(|s| {
                        s.files
                            .iter()
                            .map(|f| f.0.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect::<Vec<_>>(),
                &steps.iter().map(|s| s.server.clone()).collect::<Vec<_>>(),
                &steps
                    .iter()
                    .map(|s| s.approval.is_some())
                    .collect::<Vec<_>>(),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(ToolsCommitted::LeaseLost);
    };
    if pause.is_none() {
        return Ok(ToolsCommitted::Written);
    }
    Ok(ToolsCommitted::Paused {
        webhook: row.try_get::<_, i64>("events")? > 0,
    })
}
