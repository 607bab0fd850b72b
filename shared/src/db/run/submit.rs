//! Submitting: a run, its outbox row and its session in one statement.

use std::time::Duration;

use time::OffsetDateTime;

use crate::db::{DbError, GenericClient, coalesce};
use crate::domain::{
    agent::RunTools,
    file::FileId,
    id::{ProjectId, RunId, SessionId},
    llm::LlmChoice,
};

/// What makes a run an agent run, as the client asked (checked by the API).
#[derive(Clone, Debug, Default)]
pub struct AgentSettings {
    /// The client's tools (stored as the definitions it gave) and the
    /// built-in tools asked for.
    pub tools: RunTools,
    pub tool_choice: Option<serde_json::Value>,
    pub response_format: Option<serde_json::Value>,
    /// Model calls at most.
    pub max_steps: i32,
    pub max_total_tokens: Option<i32>,
    /// US dollars the run may spend at most (its calls reserved against it).
    pub max_cost_usd: Option<f64>,
    /// The run's own models to fall back to, in order (empty: the project's).
    pub fallback_models: Vec<String>,
    /// Final answers sent back for not matching `response_format`'s schema, at most.
    pub max_repairs: i32,
    /// Stream the answers (`run.delta` events).
    pub stream: bool,
}

/// Which session a new run belongs to.
pub enum SessionTarget {
    /// Start a session with this id.
    New {
        id: SessionId,
        metadata: serde_json::Value,
    },
    /// Append to an existing session of the same project.
    Existing {
        id: SessionId,
        metadata: Option<serde_json::Value>,
    },
}

/// A user message to store and queue. Owned, so concurrent submits of new
/// sessions can be handed to one committer (see [`coalesce::Write`]).
pub struct NewRun {
    pub id: RunId,
    pub project_id: ProjectId,
    pub session: SessionTarget,
    pub input: String,
    pub system: Option<String>,
    pub requested_model: Option<String>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f64>,
    pub webhook_url: Option<String>,
    pub request_id: Option<String>,
    pub choice: LlmChoice,
    /// The agent settings: the client's tools and how the loop is bounded.
    pub agent: AgentSettings,
    /// Files attached to the message (checked by the API).
    pub files: Vec<FileId>,
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
                          provider, model, key_source, deadline,
                          tools, tool_choice, response_format, max_steps, max_total_tokens,
                          stream, files, max_repairs, max_cost_usd, fallback_models)
        SELECT $3, s.id, $2, s.run_count, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
               now() + make_interval(secs => $15), $17, $18, $19, $20, $21, $22,
               CASE WHEN cardinality($23::uuid[]) > 0 THEN $23 END, $24, $25,
               CASE WHEN cardinality($26::text[]) > 0 THEN $26 END
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
    run: &NewRun,
) -> Result<OffsetDateTime, InsertRunError> {
    match insert(client, run).await {
        Ok(Some(created_at)) => Ok(created_at),
        Ok(None) => Err(InsertRunError::SessionNotFound),
        Err(error) if error.violates("runs_one_active_per_session") => {
            Err(InsertRunError::SessionBusy)
        }
        Err(error) => Err(error.into()),
    }
}

/// [`insert_run`]'s statement: `None` when the session is not there.
async fn insert(
    client: &impl GenericClient,
    run: &NewRun,
) -> Result<Option<OffsetDateTime>, DbError> {
    let (session_id, metadata, head) = match &run.session {
        SessionTarget::New { id, metadata } => (
            *id,
            Some(metadata),
            "WITH s AS (
                 INSERT INTO sessions (id, project_id, latest_run_id, metadata)
                 VALUES ($1, $2, $3, coalesce($4, '{}'::jsonb))
                 RETURNING id, run_count
             ),",
        ),
        SessionTarget::Existing { id, metadata } => (
            *id,
            metadata.as_ref(),
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
                &run.agent.tools.encode(),
                &run.agent.tool_choice,
                &run.agent.response_format,
                &run.agent.max_steps,
                &run.agent.max_total_tokens,
                &run.agent.stream,
                &run.files,
                &run.agent.max_repairs,
                &run.agent.max_cost_usd,
                &run.agent.fallback_models,
            ],
        )
        .await?;
    Ok(match result {
        Some(row) => Some(row.try_get("created_at")?),
        None => None,
    })
}

/// Concurrent submits share a commit (the API sends those of new sessions,
/// which cannot be busy).
impl coalesce::Write for NewRun {
    const LABEL: &'static str = "submit";
    type Output = Result<OffsetDateTime, InsertRunError>;

    async fn many(
        client: &mut deadpool_postgres::Client,
        runs: &[Self],
    ) -> Result<Vec<Self::Output>, DbError> {
        let transaction = client.transaction().await?;
        let inserted =
            futures_util::future::join_all(runs.iter().map(|run| insert(&transaction, run))).await;
        let mut created = Vec::with_capacity(runs.len());
        for result in inserted {
            // Any error (a busy session among them) aborted the transaction:
            // the caller writes them one by one.
            created.push(result?.ok_or(InsertRunError::SessionNotFound));
        }
        transaction.commit().await?;
        Ok(created)
    }

    async fn one(&self, client: &deadpool_postgres::Client) -> Result<Self::Output, DbError> {
        match insert_run(client, self).await {
            Err(InsertRunError::Db(error)) => Err(error),
            other => Ok(other),
        }
    }
}
