//! The session as clients see it: the JSON of `GET /v1/sessions/{id}`, of session
//! lists, and of webhook payloads. One definition, so they never drift apart.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    db::{
        run::{RunRecord, Usage},
        session::SessionRecord,
    },
    id::{RunId, SessionId},
    model::{FailureCode, KeySource, Provider, RunStatus},
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
    /// The latest run's failure.
    pub error: Option<ErrorOut>,
    /// The latest run's token counts.
    pub usage: Option<Usage>,
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

/// One message of the conversation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    /// `user` or `assistant`.
    #[schema(value_type = String)]
    pub role: &'static str,
    pub content: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
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
        let messages = (detail == Detail::Full).then(|| messages(&record.runs));
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
            error: error_of(latest),
            usage: latest.usage,
            messages,
            runs,
            metadata: record.metadata.clone(),
            created_at: record.created_at,
            updated_at,
        })
    }
}

/// Each run contributes its user message, and its answer once there is one.
fn messages(runs: &[RunRecord]) -> Vec<MessageOut> {
    let mut messages = Vec::with_capacity(runs.len() * 2);
    for run in runs {
        messages.push(MessageOut {
            role: "user",
            content: run.input.clone(),
            created_at: run.created_at,
        });
        if let Some(output) = &run.output {
            messages.push(MessageOut {
                role: "assistant",
                content: output.clone(),
                created_at: run.finished_at.unwrap_or(run.created_at),
            });
        }
    }
    messages
}
