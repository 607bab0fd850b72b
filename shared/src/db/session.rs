//! The `sessions` table, read together with its runs for the API.

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{
    DbError, GenericClient,
    file::{AttachedFile, attached_files},
    run::{RUN_RECORD_COLUMNS, RunRecord},
    step::{StepRow, steps_of_runs},
};
use crate::domain::{
    file::FileId,
    id::{ProjectId, RunId, SessionId},
    model::RunStatus,
};

/// A session and its runs (all of them for one session, the latest for lists).
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub metadata: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Oldest first; never empty.
    pub runs: Vec<RunRecord>,
    /// The committed steps of its agent runs, by run and index.
    pub steps: Vec<StepRow>,
    /// The files attached to its messages.
    pub files: Vec<AttachedFile>,
}

impl SessionRecord {
    /// The run the session's status, output and error come from.
    pub fn latest_run(&self) -> Option<&RunRecord> {
        self.runs.last()
    }

    fn from_row(row: &Row, runs: Vec<RunRecord>) -> Result<Self, DbError> {
        Ok(Self {
            steps: Vec::new(),
            files: Vec::new(),
            id: row.try_get("session_id")?,
            metadata: row.try_get("metadata")?,
            created_at: row.try_get("session_created_at")?,
            updated_at: row.try_get("session_updated_at")?,
            runs,
        })
    }
}

/// One session of one project, with every run. Another project's session is
/// indistinguishable from a missing one.
pub async fn get_session(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<Option<SessionRecord>, DbError> {
    let sql = format!(
        "SELECT s.id AS session_id, s.metadata, s.created_at AS session_created_at,
                s.updated_at AS session_updated_at, {RUN_RECORD_COLUMNS}
         FROM sessions s JOIN runs r ON r.session_id = s.id
         WHERE s.id = $1 AND s.project_id = $2
         ORDER BY r.turn"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &[&session_id, &project_id])
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let runs: Vec<RunRecord> = rows
        .iter()
        .map(RunRecord::from_row)
        .collect::<Result<_, _>>()?;
    let agent_runs: Vec<RunId> = runs
        .iter()
        .filter(|run| run.step_count > 0)
        .map(|run| run.id)
        .collect();
    let steps = steps_of_runs(client, &agent_runs).await?;
    let attached: Vec<FileId> = runs.iter().flat_map(|run| run.files.clone()).collect();
    let files = attached_files(client, &attached).await?;
    let mut record = SessionRecord::from_row(first, runs)?;
    record.steps = steps;
    record.files = files;
    Ok(Some(record))
}

/// The status of a session's latest run, for long-polls.
pub async fn get_session_status(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<Option<RunStatus>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT r.status FROM sessions s JOIN runs r ON r.id = s.latest_run_id
             WHERE s.id = $1 AND s.project_id = $2",
        )
        .await?;
    match client
        .query_opt(&statement, &[&session_id, &project_id])
        .await?
    {
        Some(row) => Ok(Some(super::parse_column(&row, "status", RunStatus::parse)?)),
        None => Ok(None),
    }
}

/// A page of a project's sessions, newest first, each with its latest run only.
pub async fn list_sessions(
    client: &impl GenericClient,
    project_id: ProjectId,
    status: Option<RunStatus>,
    after: Option<SessionId>,
    limit: i64,
) -> Result<Vec<SessionRecord>, DbError> {
    let sql = format!(
        "SELECT s.id AS session_id, s.metadata, s.created_at AS session_created_at,
                s.updated_at AS session_updated_at, {RUN_RECORD_COLUMNS}
         FROM sessions s JOIN runs r ON r.id = s.latest_run_id
         WHERE s.project_id = $1 AND ($2::text IS NULL OR r.status = $2)
           AND ($3::uuid IS NULL OR s.id < $3)
         ORDER BY s.id DESC LIMIT $4"
    );
    let statement = client.prepare_cached(&sql).await?;
    client
        .query(
            &statement,
            &[&project_id, &status.map(RunStatus::as_str), &after, &limit],
        )
        .await?
        .iter()
        .map(|row| SessionRecord::from_row(row, vec![RunRecord::from_row(row)?]))
        .collect()
}

/// The project a session belongs to (for the operator's views).
pub async fn session_project(
    client: &impl GenericClient,
    session_id: SessionId,
) -> Result<Option<ProjectId>, DbError> {
    Ok(client
        .query_opt(
            "SELECT project_id FROM sessions WHERE id = $1",
            &[&session_id],
        )
        .await?
        .map(|row| row.try_get("project_id"))
        .transpose()?)
}

/// Sessions per latest-run status, per project.
pub async fn session_counts(
    client: &impl GenericClient,
) -> Result<Vec<(ProjectId, RunStatus, i64)>, DbError> {
    client
        .query(
            "SELECT s.project_id, r.status, count(*) AS sessions
             FROM sessions s JOIN runs r ON r.id = s.latest_run_id
             GROUP BY s.project_id, r.status",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("project_id")?,
                super::parse_column(row, "status", RunStatus::parse)?,
                row.try_get("sessions")?,
            ))
        })
        .collect()
}
