//! Runs paused for a person (`requires_action`), one way whatever they wait
//! for: the wait is written with its steps (`step::commit_tool_steps`), shown
//! by `view`, cancelled with the session (`run::cancel_session`), expired here
//! when nobody answered, and resumed here by the answers (the same path as a
//! submit: the run `queued` with its outbox row, in one transaction).

use std::{sync::LazyLock, time::Duration};

use super::{Client, DbError, GenericClient, webhook::EVENT_FOR_STATUS_CHANGE};
use crate::{
    db::notify,
    domain::{
        id::{ProjectId, RunId, SessionId},
        model::{RunStatus, Wait},
    },
};

/// The answer to one waiting tool call: its output.
#[derive(Clone, Debug)]
pub struct Answer {
    pub tool_call_id: String,
    pub output: String,
}

/// Why the answers were not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no such session")]
    SessionNotFound,
    /// The session's latest run is not paused (its status).
    #[error("the session is {0}, not requires_action")]
    NotWaiting(RunStatus),
    /// The answers do not answer every waiting call exactly once.
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Answers every call of the session's paused run that waits for `wait`, and
/// queues the run again (due after `publish_delay`: the caller publishes it
/// itself when it can), with a fresh deadline. All or nothing, in one
/// transaction.
pub async fn resume(
    client: &mut Client,
    project_id: ProjectId,
    session_id: SessionId,
    wait: Wait,
    answers: &[Answer],
    deadline: Duration,
    publish_delay: Duration,
) -> Result<RunId, ResumeError> {
    let transaction = client.transaction().await.map_err(DbError::from)?;
    let run = transaction
        .query_opt(
            "SELECT r.id, r.status FROM sessions s JOIN runs r ON r.id = s.latest_run_id
             WHERE s.id = $1 AND s.project_id = $2 FOR UPDATE OF r",
            &[&session_id, &project_id],
        )
        .await
        .map_err(DbError::from)?
        .ok_or(ResumeError::SessionNotFound)?;
    let run_id: RunId = run.try_get("id").map_err(DbError::from)?;
    let status = super::parse_column(&run, "status", RunStatus::parse)?;
    if status != RunStatus::RequiresAction {
        return Err(ResumeError::NotWaiting(status));
    }
    let pending: Vec<String> = transaction
        .query(
            "SELECT tool_call_id FROM run_steps
             WHERE run_id = $1 AND status = 'pending' AND waits_for = $2 ORDER BY index",
            &[&run_id, &wait.as_str()],
        )
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(DbError::from)?;
    check_answers(&pending, answers)?;
    let ids: Vec<&str> = answers.iter().map(|o| o.tool_call_id.as_str()).collect();
    let texts: Vec<&str> = answers.iter().map(|o| o.output.as_str()).collect();
    transaction
        .execute(
            "UPDATE run_steps s SET status = 'succeeded', output = x.o, finished_at = now()
             FROM unnest($2::text[], $3::text[]) AS x(c, o)
             WHERE s.run_id = $1 AND s.tool_call_id = x.c AND s.status = 'pending'",
            &[&run_id, &ids, &texts],
        )
        .await
        .map_err(DbError::from)?;
    transaction
        .execute(
            "WITH u AS (
                 UPDATE runs SET status = 'queued', action_expires_at = NULL,
                                 progress_attempt = attempts,
                                 deadline = now() + make_interval(secs => $2)
                 WHERE id = $1 RETURNING id, session_id
             ),
             o AS (
                 INSERT INTO outbox (run_id, available_at)
                 SELECT id, now() + make_interval(secs => $3) FROM u
                 ON CONFLICT (run_id) DO UPDATE SET available_at = EXCLUDED.available_at
             )
             SELECT pg_notify($4, session_id::text || ' queued') FROM u",
            &[
                &run_id,
                &deadline.as_secs_f64(),
                &publish_delay.as_secs_f64(),
                &notify::SESSION,
            ],
        )
        .await
        .map_err(DbError::from)?;
    transaction.commit().await.map_err(DbError::from)?;
    Ok(run_id)
}

/// Every pending call answered exactly once, nothing else.
fn check_answers(pending: &[String], outputs: &[Answer]) -> Result<(), ResumeError> {
    for (i, output) in outputs.iter().enumerate() {
        let id = &output.tool_call_id;
        if outputs[..i].iter().any(|o| &o.tool_call_id == id) {
            return Err(ResumeError::Mismatch(format!(
                "`tool_outputs` answers `{id}` twice"
            )));
        }
        if !pending.contains(id) {
            return Err(ResumeError::Mismatch(format!(
                "`{id}` is not a pending tool call of this run"
            )));
        }
    }
    if let Some(missing) = pending
        .iter()
        .find(|id| !outputs.iter().any(|o| &o.tool_call_id == *id))
    {
        return Err(ResumeError::Mismatch(format!(
            "`tool_outputs` must answer every pending call in one request; `{missing}` is missing"
        )));
    }
    Ok(())
}

static EXPIRE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs r SET status = 'failed', error_code = 'requires_action_expired',
                 error_message = 'the tool outputs did not arrive in time',
                 output = (SELECT content FROM run_steps
                           WHERE run_id = r.id AND type = 'model_call'
                           ORDER BY index DESC LIMIT 1),
                 finished_at = now(), action_expires_at = NULL
             FROM (SELECT id FROM runs
                   WHERE status = 'requires_action' AND action_expires_at < now()
                   ORDER BY action_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE r.id = due.id
             RETURNING r.id, r.session_id, r.project_id, r.status, r.webhook_url
         ),
         {EVENT_FOR_STATUS_CHANGE}
         SELECT f.id, pg_notify($2, f.session_id::text || ' ' || f.status),
                (SELECT pg_notify($3, '') FROM e LIMIT 1)
         FROM final_runs f"
    )
});

/// Fails paused runs whose wait is over (`requires_action_expired`), at most
/// `limit` at a time; several sweepers never take the same run.
pub async fn expire_paused_runs(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<RunId>, DbError> {
    let statement = client.prepare_cached(&EXPIRE).await?;
    client
        .query(&statement, &[&limit, &notify::SESSION, &notify::WEBHOOK])
        .await?
        .iter()
        .map(|row| Ok(row.try_get("id")?))
        .collect()
}

/// Runs paused for a person, in every project.
pub async fn count_paused(client: &impl GenericClient) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM runs WHERE status = 'requires_action'",
            &[],
        )
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(ids: &[&str]) -> Vec<Answer> {
        ids.iter()
            .map(|id| Answer {
                tool_call_id: (*id).to_owned(),
                output: "x".to_owned(),
            })
            .collect()
    }

    #[test]
    fn every_pending_call_must_be_answered_exactly_once() {
        let pending = ["call_a".to_owned(), "call_b".to_owned()];
        assert!(check_answers(&pending, &outputs(&["call_b", "call_a"])).is_ok());
        for (sent, says) in [
            (&["call_a"][..], "missing"),
            (&["call_a", "call_b", "call_c"][..], "not a pending"),
            (&["call_a", "call_a", "call_b"][..], "twice"),
        ] {
            let error = check_answers(&pending, &outputs(sent)).expect_err("refused");
            assert!(error.to_string().contains(says), "{sent:?}: {error}");
        }
    }
}
