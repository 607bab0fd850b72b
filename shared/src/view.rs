//! The session as clients see it: the JSON of `GET /v1/sessions/{id}`, of session
//! lists, and of webhook payloads. One definition, so they never drift apart.

use serde::Serialize;
use time::OffsetDateTime;

use serde_json::{Value, json};

use crate::{
    db::{
        run::RunRecord,
        session::SessionRecord,
        step::{StepKind, StepRow, ToolState, ToolStep},
        webhook::DeliveryRow,
    },
    domain::{
        approval::{Approval, arguments_sha256},
        file::FileId,
        id::{RunId, SessionId},
        model::{
            EventType, Executor, FailureCode, KeySource, Provider, Role, RunStatus, StepStatus,
            StepType, Wait,
        },
        usage::Usage,
    },
};

/// A session.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionOut {
    pub id: SessionId,
    pub status: RunStatus,
    pub provider: Provider,
    pub model: String,
    pub key_source: KeySource,
    /// The latest run's answer.
    pub output: Option<String>,
    /// The latest run's answer parsed, when it had to match a `json_schema`
    /// response format (and did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_json: Option<Value>,
    /// The latest run's failure.
    pub error: Option<ErrorOut>,
    /// The latest run's token counts (the sum of its model calls).
    pub usage: Option<Usage>,
    /// What the latest run's model calls cost, in US dollars: the provider's
    /// reported cost (OpenRouter), else the tokens at the model's price;
    /// `null` when no price is known.
    pub cost_usd: Option<f64>,
    /// While the latest run waits for the client's tool outputs: what to answer.
    #[schema(value_type = Option<Object>)]
    pub required_action: Option<Value>,
    /// The conversation; left out of lists and webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageOut>>,
    /// Every run, oldest first; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunOut>>,
    /// The string map given with the messages.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Why a run failed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorOut {
    pub code: FailureCode,
    pub message: String,
}

/// One message of the conversation, in OpenAI's chat format.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    /// `user`, `assistant` or `tool`.
    pub role: Role,
    /// `null` for an assistant message that only calls tools.
    pub content: Option<String>,
    /// The tool calls of an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Value>,
    /// The call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The files a user message carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileRefOut>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A file a message carries.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FileRefOut {
    pub id: FileId,
    pub filename: String,
    pub content_type: String,
}

impl MessageOut {
    fn new(role: Role, content: Option<String>, at: OffsetDateTime) -> Self {
        Self {
            role,
            content,
            tool_calls: None,
            tool_call_id: None,
            files: None,
            created_at: at,
        }
    }
}

/// One run.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunOut {
    pub id: RunId,
    pub status: RunStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub error: Option<ErrorOut>,
    /// What its model calls cost, in US dollars (`null`: no price known).
    pub cost_usd: Option<f64>,
}

/// Which parts of a session to include.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Everything (`GET /v1/sessions/{id}`).
    Full,
    /// Without the messages (webhooks).
    WithoutMessages,
    /// The latest run's view only (lists).
    Summary,
}

fn error_of(run: &RunRecord) -> Option<ErrorOut> {
    run.error_code.map(|code| ErrorOut {
        code,
        message: run.error_message.clone().unwrap_or_default(),
    })
}

impl SessionOut {
    /// Builds the view; `None` for a record without runs (which cannot exist).
    pub fn from_record(record: &SessionRecord, detail: Detail) -> Option<Self> {
        let latest = record.latest_run()?;
        let updated_at = [latest.started_at, latest.finished_at]
            .into_iter()
            .flatten()
            .fold(record.updated_at, OffsetDateTime::max);
        let messages = (detail == Detail::Full).then(|| messages(record));
        let runs = (detail != Detail::Summary).then(|| {
            record
                .runs
                .iter()
                .map(|run| RunOut {
                    id: run.id,
                    status: run.status,
                    attempts: run.attempts,
                    created_at: run.created_at,
                    started_at: run.started_at,
                    finished_at: run.finished_at,
                    error: error_of(run),
                    cost_usd: run.cost_usd,
                })
                .collect()
        });
        Some(Self {
            id: record.id,
            status: latest.status,
            provider: latest.provider,
            model: latest.model.clone(),
            key_source: latest.key_source,
            output: latest.output.clone(),
            output_json: latest
                .output
                .as_deref()
                .filter(|_| latest.structured && latest.status == RunStatus::Succeeded)
                .and_then(|output| serde_json::from_str(output).ok()),
            error: error_of(latest),
            usage: latest.usage,
            cost_usd: latest.cost_usd,
            required_action: required_action(latest, &record.steps),
            messages,
            runs,
            metadata: record.metadata.clone(),
            created_at: record.created_at,
            updated_at,
        })
    }
}

impl SessionOut {
    /// The session as it stood at a status event of run `run_id` (without
    /// messages), for events replayed later: runs after it left out, that run
    /// at `status`, and while `status` is not final what only came later (its
    /// output, error, usage, end, and a pause that has been answered since)
    /// left out too. A client rebuilding state from replayed events never sees
    /// a finished answer in a `session.running`.
    pub fn at_status(record: &SessionRecord, run_id: RunId, status: RunStatus) -> Option<Self> {
        let end = record.runs.iter().position(|run| run.id == run_id)?;
        let still = record.runs.len() == end + 1 && record.runs[end].status == status;
        if still {
            return Self::from_record(record, Detail::WithoutMessages);
        }
        let mut runs = record.runs[..=end].to_vec();
        if let Some(run) = runs.last_mut() {
            run.status = status;
            if !status.is_final() {
                run.output = None;
                run.error_code = None;
                run.error_message = None;
                run.usage = None;
                run.cost_usd = None;
                run.finished_at = None;
            }
        }
        let past = SessionRecord {
            id: record.id,
            metadata: record.metadata.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            runs,
            steps: Vec::new(),
            files: Vec::new(),
        };
        let mut view = Self::from_record(&past, Detail::WithoutMessages)?;
        view.required_action = None;
        Some(view)
    }
}

/// Each run contributes its user message, then its answer once there is one:
/// for an agent run every committed step (assistant messages with their tool
/// calls, and one tool message per answered call), else the output.
fn messages(record: &SessionRecord) -> Vec<MessageOut> {
    let (runs, steps) = (&record.runs, &record.steps);
    let mut messages = Vec::with_capacity(runs.len() * 2 + steps.len());
    for run in runs {
        let files: Vec<FileRefOut> = run
            .files
            .iter()
            .filter_map(|id| record.files.iter().find(|f| f.id == *id))
            .map(|file| FileRefOut {
                id: file.id,
                filename: file.filename.clone(),
                content_type: file.content_type.clone(),
            })
            .collect();
        messages.push(MessageOut {
            files: (!files.is_empty()).then_some(files),
            ..MessageOut::new(Role::User, Some(run.input.clone()), run.created_at)
        });
        if run.step_count == 0 {
            if let Some(output) = &run.output {
                let at = run.finished_at.unwrap_or(run.created_at);
                messages.push(MessageOut::new(Role::Assistant, Some(output.clone()), at));
            }
            continue;
        }
        for step in steps.iter().filter(|s| s.run_id == run.id) {
            let at = step.finished_at.unwrap_or(step.started_at);
            match &step.kind {
                StepKind::Model(answer) => messages.push(MessageOut {
                    tool_calls: answer
                        .tool_calls
                        .clone()
                        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty())),
                    ..MessageOut::new(Role::Assistant, answer.content.clone(), at)
                }),
                StepKind::Tool(tool) => {
                    if let Some(output) = tool.state.output() {
                        messages.push(MessageOut {
                            tool_call_id: Some(tool.call.id.clone()),
                            ..MessageOut::new(Role::Tool, Some(output.to_owned()), at)
                        });
                    }
                }
            }
        }
    }
    messages
}

/// While `run` waits for a person: what to answer (`submit_tool_outputs` for
/// the client's tools), the calls waiting, and until when.
fn required_action(run: &RunRecord, steps: &[StepRow]) -> Option<Value> {
    if run.status != RunStatus::RequiresAction {
        return None;
    }
    let waiting: Vec<(Wait, &ToolStep)> = steps
        .iter()
        .filter(|s| s.run_id == run.id)
        .filter_map(StepRow::tool)
        .filter_map(|tool| match tool.state {
            ToolState::Awaiting(wait) => Some((wait, tool)),
            ToolState::Approved | ToolState::Done { .. } => None,
        })
        .collect();
    let wait = waiting.first().map_or(Wait::Client, |(wait, _)| *wait);
    let calls: Vec<Value> = waiting
        .iter()
        .filter(|(w, _)| *w == wait)
        .map(|(_, tool)| match wait {
            Wait::Client => tool.call.to_json(),
            // What a person approves: the call as it will be made, and the
            // hash the decision must quote.
            Wait::Approval => json!({
                "id": tool.call.id, "name": tool.call.name, "executor": tool.executor,
                "arguments": tool.call.arguments,
                "arguments_sha256": arguments_sha256(&tool.call.arguments),
            }),
        })
        .collect();
    let expires_at = run.action_expires_at.and_then(|at| {
        at.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    Some(
        json!({"type": wait.action(), "run_id": run.id, "expires_at": expires_at,
                "tool_calls": calls}),
    )
}

/// One step of a run, as `GET /v1/sessions/{id}/runs/{run_id}/steps` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StepOut {
    pub index: i32,
    #[serde(rename = "type")]
    pub kind: StepType,
    pub status: StepStatus,
    /// A model call's model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A model call's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// A model call's tool calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<Executor>,
    /// The MCP server that ran the call (`executor: mcp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// A person's decision on the call, when it needed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// A final answer sent back for not matching the run's schema: what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl StepOut {
    /// The steps of `run`: its rows, or for a run that offered no tools its one
    /// model call, once answered.
    pub fn of_run(run: &RunRecord, steps: &[StepRow]) -> Vec<Self> {
        if run.step_count == 0 {
            let answered = run.status == RunStatus::Succeeded;
            return answered
                .then(|| Self {
                    index: 0,
                    kind: StepType::ModelCall,
                    status: StepStatus::Succeeded,
                    model: Some(run.model.clone()),
                    content: run.output.clone(),
                    usage: run.usage,
                    tool_calls: None,
                    tool_call_id: None,
                    name: None,
                    arguments: None,
                    executor: None,
                    server: None,
                    output: None,
                    attempts: None,
                    approval: None,
                    rejected: None,
                    started_at: run.started_at.unwrap_or(run.created_at),
                    finished_at: run.finished_at,
                })
                .into_iter()
                .collect();
        }
        steps
            .iter()
            .filter(|s| s.run_id == run.id)
            .map(Self::of_step)
            .collect()
    }

    /// One committed step.
    pub fn of_step(step: &StepRow) -> Self {
        let common = Self {
            index: step.index,
            kind: StepType::ModelCall,
            status: StepStatus::Succeeded,
            model: None,
            content: None,
            usage: None,
            tool_calls: None,
            tool_call_id: None,
            name: None,
            arguments: None,
            executor: None,
            server: None,
            output: None,
            attempts: None,
            approval: None,
            rejected: None,
            started_at: step.started_at,
            finished_at: step.finished_at,
        };
        match &step.kind {
            StepKind::Model(answer) => Self {
                model: Some(answer.model.clone()),
                content: answer.content.clone(),
                usage: answer.usage,
                tool_calls: answer.tool_calls.clone(),
                rejected: answer.rejected.clone(),
                ..common
            },
            StepKind::Tool(tool) => Self {
                kind: StepType::ToolCall,
                status: tool.state.status(),
                tool_call_id: Some(tool.call.id.clone()),
                name: Some(tool.call.name.clone()),
                arguments: Some(tool.call.arguments.clone()),
                executor: Some(tool.executor),
                server: tool.server.clone(),
                output: tool.state.output().map(str::to_owned),
                attempts: Some(tool.attempts),
                approval: tool.approval.clone(),
                ..common
            },
        }
    }
}

/// One delivery attempt as `GET /v1/sessions/{id}/deliveries` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    pub url: String,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(row: DeliveryRow) -> Self {
        Self {
            event_id: row.event_id,
            kind: row.kind,
            attempt: row.attempt,
            attempted_at: row.attempted_at,
            url: row.url,
            status_code: row.status_code,
            error: row.error,
            duration_ms: row.duration_ms,
            next_attempt_at: row.next_attempt_at,
        }
    }
}
