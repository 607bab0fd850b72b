//! Runs paused for a person (`requires_action`), one way whatever they wait
//! for: the wait is written with its steps (`step::commit_tool_steps`), shown
//! by `view`, cancelled with the session (`run::cancel_session`), expired here
//! when nobody answered, and resumed here by the answers (the same path as a
//! submit: the run `queued` with its outbox row, in one transaction): the
//! client's tool outputs, or a person's decisions on calls awaiting approval.

use std::{sync::LazyLock, time::Duration};

use super::{Client, DbError, GenericClient, webhook::EVENT_FOR_STATUS_CHANGE};
use crate::{
    db::notify,
    domain::{
        approval::{MAX_REASON_CHARS, arguments_sha256, denied_output},
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

/// A person's decision on one call awaiting approval.
#[derive(Clone, Debug)]
pub struct Decision {
    pub tool_call_id: String,
    pub approve: bool,
    /// Of the arguments approved (required to approve).
    pub arguments_sha256: Option<String>,
    pub reason: Option<String>,
}

/// What resumes a paused run: one answer for every call it waits for.
#[derive(Clone, Copy, Debug)]
pub enum Answers<'a> {
    /// The client's tool outputs.
    Outputs(&'a [Answer]),
    /// Decisions on the calls awaiting approval, and who made them
    /// (`api_key:<id>` or `operator`).
    Decisions(&'a [Decision], &'a str),
}

impl Answers<'_> {
    /// What these answers answer.
    pub fn wait(self) -> Wait {
        match self {
            Self::Outputs(_) => Wait::Client,
            Self::Decisions(..) => Wait::Approval,
        }
    }
}

/// Why the answers were not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no such session")]
    SessionNotFound,
    /// The session's latest run is not paused (its status).
    #[error("the session is {0}, not requires_action")]
    NotWaiting(RunStatus),
    /// The run waits, but for another kind of answer.
    #[error("the run waits for {0:?}")]
    OtherWait(Wait),
    /// The answers do not answer every waiting call exactly once.
    #[error("{0}")]
    Mismatch(String),
    /// An approval quotes arguments that are not the call's.
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Answers every call of the session's paused run that waits for what
/// `answers` answer, and queues the run again (due after `publish_delay`: the
/// caller publishes it itself when it can), with a fresh deadline. All or
/// nothing, in one transaction, under the run's row lock: of two answers at
/// once, the second finds the run queued.
pub async fn resume(
    client: &mut Client,
    project_id: ProjectId,
    session_id: SessionId,
    answers: Answers<'_>,
    deadline: Duration,
    publish_delay: Duration,
) -> Result<RunId, ResumeError> {
    let wait = answers.wait();
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
    // (An approved call stays pending until it is made: it waits no more.)
    let pending: Vec<(String, String)> = transaction
        .query(
            "SELECT tool_call_id, arguments FROM run_steps
             WHERE run_id = $1 AND status = 'pending' AND waits_for = $2 AND approval IS NULL
             ORDER BY index",
            &[&run_id, &wait.as_str()],
        )
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)?;
    if pending.is_empty() {
        let other = match wait {
            Wait::Client => Wait::Approval,
            Wait::Approval => Wait::Client,
        };
        return Err(ResumeError::OtherWait(other));
    }
    match answers {
        Answers::Outputs(outputs) => {
            let ids: Vec<&str> = outputs.iter().map(|o| o.tool_call_id.as_str()).collect();
            check_answers(&pending, &ids, "tool_outputs")?;
            let texts: Vec<&str> = outputs.iter().map(|o| o.output.as_str()).collect();
            transaction
                .execute(
                    "UPDATE run_steps s SET status = 'succeeded', output = x.o, finished_at = now()
                     FROM unnest($2::text[], $3::text[]) AS x(c, o)
                     WHERE s.run_id = $1 AND s.tool_call_id = x.c AND s.status = 'pending'",
                    &[&run_id, &ids, &texts],
                )
                .await
                .map_err(DbError::from)?;
        }
        Answers::Decisions(decisions, by) => {
            let ids: Vec<&str> = decisions.iter().map(|d| d.tool_call_id.as_str()).collect();
            check_answers(&pending, &ids, "decisions")?;
            check_hashes(&pending, decisions)?;
            let approve: Vec<bool> = decisions.iter().map(|d| d.approve).collect();
            let reasons: Vec<Option<String>> = decisions
                .iter()
                .map(|d| {
                    d.reason
                        .as_deref()
                        .map(|r| r.chars().take(MAX_REASON_CHARS).collect())
                })
                .collect();
            let denied: Vec<String> = reasons
                .iter()
                .map(|r| denied_output(r.as_deref()))
                .collect();
            transaction
                .execute(
                    "UPDATE run_steps s
                     SET approval = jsonb_build_object(
                             'decision', CASE WHEN x.ok THEN 'approved' ELSE 'denied' END,
                             'reason', x.r, 'decided_at', now(), 'by', $6::text),
                         status = CASE WHEN x.ok THEN 'pending' ELSE 'failed' END,
                         output = CASE WHEN x.ok THEN NULL ELSE x.o END,
                         finished_at = CASE WHEN x.ok THEN NULL ELSE now() END
                     FROM unnest($2::text[], $3::bool[], $4::text[], $5::text[]) AS x(c, ok, r, o)
                     WHERE s.run_id = $1 AND s.tool_call_id = x.c AND s.status = 'pending'",
                    &[&run_id, &ids, &approve, &reasons, &denied, &by],
                )
                .await
                .map_err(DbError::from)?;
        }
    }
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

/// Every pending call (id, arguments) answered exactly once, nothing else;
/// `field` names the answers in the message.
fn check_answers(
    pending: &[(String, String)],
    ids: &[&str],
    field: &str,
) -> Result<(), ResumeError> {
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(ResumeError::Mismatch(format!(
                "`{field}` answers `{id}` twice"
            )));
        }
        if !pending.iter().any(|(p, _)| p == id) {
            return Err(ResumeError::Mismatch(format!(
                "`{id}` is not a pending tool call of this run"
            )));
        }
    }
    if let Some((missing, _)) = pending.iter().find(|(p, _)| !ids.contains(&p.as_str())) {
        return Err(ResumeError::Mismatch(format!(
            "`{field}` must answer every pending call in one request; `{missing}` is missing"
        )));
    }
    Ok(())
}

/// An approval holds only for the arguments it quotes: the call's.
fn check_hashes(pending: &[(String, String)], decisions: &[Decision]) -> Result<(), ResumeError> {
    for decision in decisions.iter().filter(|d| d.approve) {
        let arguments = pending
            .iter()
            .find(|(id, _)| *id == decision.tool_call_id)
            .map(|(_, arguments)| arguments.as_str())
            .unwrap_or_default();
        if decision.arguments_sha256.as_deref() != Some(arguments_sha256(arguments).as_str()) {
            return Err(ResumeError::Stale(format!(
                "the approval of `{}` quotes arguments that are not the call's (`arguments_sha256` \
                 must be that of the arguments `required_action` shows)",
                decision.tool_call_id
            )));
        }
    }
    Ok(())
}

static EXPIRE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs r SET status = 'failed', error_code = 'requires_action_expired',
                 error_message = 'nobody answered the run''s waiting tool calls in time',
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

    fn pending() -> Vec<(String, String)> {
        vec![
            ("call_a".to_owned(), "{}".to_owned()),
            ("call_b".to_owned(), r#"{"to":"x"}"#.to_owned()),
        ]
    }

    #[test]
    fn every_pending_call_must_be_answered_exactly_once() {
        assert!(check_answers(&pending(), &["call_b", "call_a"], "tool_outputs").is_ok());
        for (sent, says) in [
            (&["call_a"][..], "missing"),
            (&["call_a", "call_b", "call_c"][..], "not a pending"),
            (&["call_a", "call_a", "call_b"][..], "twice"),
        ] {
            let error = check_answers(&pending(), sent, "decisions").expect_err("refused");
            assert!(error.to_string().contains(says), "{sent:?}: {error}");
        }
    }

    #[test]
    fn an_approval_holds_only_for_the_arguments_it_quotes() {
        let decide = |hash: Option<&str>, approve: bool| Decision {
            tool_call_id: "call_b".into(),
            approve,
            arguments_sha256: hash.map(str::to_owned),
            reason: None,
        };
        let right = arguments_sha256(r#"{"to":"x"}"#);
        assert!(check_hashes(&pending(), &[decide(Some(&right), true)]).is_ok());
        assert!(
            check_hashes(&pending(), &[decide(None, false)]).is_ok(),
            "a no needs none"
        );
        let other = arguments_sha256("{}");
        for wrong in [None, Some(other.as_str())] {
            assert!(matches!(
                check_hashes(&pending(), &[decide(wrong, true)]),
                Err(ResumeError::Stale(_))
            ));
        }
    }
}
