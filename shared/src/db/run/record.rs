//! Runs as readers see them: the API's view and the conversation history.

use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::db::{DbError, GenericClient, parse_column, parse_optional_column};
use crate::domain::usage::Usage;
use crate::domain::{
    file::FileId,
    id::{RunId, SessionId},
    model::{FailureCode, KeySource, Provider, RunStatus},
};

/// An earlier run of the same session, for the conversation history.
#[derive(Clone, Debug)]
pub struct EarlierRun {
    pub id: RunId,
    /// Committed steps (an agent run's tool calls go into the history too).
    pub step_count: i32,
    pub input: String,
    pub output: Option<String>,
    pub system: Option<String>,
    pub status: RunStatus,
    /// Files attached to its message.
    pub files: Vec<FileId>,
}

/// The session's runs before `turn`, oldest first.
pub async fn earlier_runs(
    client: &impl GenericClient,
    session_id: SessionId,
    turn: i32,
) -> Result<Vec<EarlierRun>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT id, step_count, input, output, system, status, files FROM runs
             WHERE session_id = $1 AND turn < $2 ORDER BY turn",
        )
        .await?;
    client
        .query(&statement, &[&session_id, &turn])
        .await?
        .iter()
        .map(|row| {
            Ok(EarlierRun {
                id: row.try_get("id")?,
                step_count: row.try_get("step_count")?,
                input: row.try_get("input")?,
                output: row.try_get("output")?,
                system: row.try_get("system")?,
                status: parse_column(row, "status", RunStatus::parse)?,
                files: row
                    .try_get::<_, Option<Vec<FileId>>>("files")?
                    .unwrap_or_default(),
            })
        })
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
    /// What its model calls cost, in US dollars (`None`: no price known).
    pub cost_usd: Option<f64>,
    /// Committed steps; 0 for a run that offered no tools.
    pub step_count: i32,
    /// While `requires_action`: when the wait for the client's outputs ends.
    pub action_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// Files attached to its message.
    pub files: Vec<FileId>,
    /// Its answer must match a `json_schema` response format.
    pub structured: bool,
}

/// The run columns [`RunRecord::from_row`] reads, qualified by alias `r`.
pub const RUN_RECORD_COLUMNS: &str = "r.id AS run_id, r.turn, r.status, r.input, r.output, \
     r.provider, r.model, r.key_source, r.attempts, r.error_code, r.error_message, \
     r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost_usd, r.created_at AS run_created_at, \
     r.started_at, r.finished_at, r.step_count, r.action_expires_at, r.files, \
     coalesce(r.response_format ->> 'type' = 'json_schema', false) AS structured";

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
            usage: Usage::from_parts(prompt, completion, total),
            cost_usd: row.try_get("cost_usd")?,
            step_count: row.try_get("step_count")?,
            action_expires_at: row.try_get("action_expires_at")?,
            created_at: row.try_get("run_created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            files: row
                .try_get::<_, Option<Vec<FileId>>>("files")?
                .unwrap_or_default(),
            structured: row.try_get("structured")?,
        })
    }
}
