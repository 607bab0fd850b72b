//! The ends of an attempt, each guarded by the lease: a result, a requeue,
//! and the two verdicts from outside a worker (a cancel, a dead letter).

use std::{sync::LazyLock, time::Duration};

use time::OffsetDateTime;

use super::ClaimedRun;
use crate::db::{DbError, GenericClient, coalesce, webhook::EVENT_FOR_STATUS_CHANGE};
use crate::domain::usage::Usage;
use crate::{
    db::notify,
    domain::{
        id::{ProjectId, RunId, SessionId, WorkerId},
        llm::LlmChoice,
        model::{FailureCode, KeySource, KeyStatus, RunStatus},
        text::storable,
    },
};

/// How a run ended in the worker.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// The model's last answer; `usage` is that call's (earlier steps' usage was
    /// added to the run as they committed).
    Succeeded {
        output: String,
        usage: Option<Usage>,
    },
    /// `output` is the text the run had when it stopped, if any.
    Failed {
        code: FailureCode,
        message: String,
        output: Option<String>,
    },
}

static FINISH_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = $4, output = $5, error_code = $6, error_message = $7,
                 prompt_tokens = CASE WHEN $8::int IS NULL THEN prompt_tokens
                                      ELSE coalesce(prompt_tokens, 0) + $8 END,
                 completion_tokens = CASE WHEN $9::int IS NULL THEN completion_tokens
                                          ELSE coalesce(completion_tokens, 0) + $9 END,
                 total_tokens = CASE WHEN $10::int IS NULL THEN total_tokens
                                     ELSE coalesce(total_tokens, 0) + $10 END,
                 cost_usd = (SELECT CASE WHEN c IS NULL THEN runs.cost_usd
                                         ELSE coalesce(runs.cost_usd, 0) + c END
                             FROM stewrd_call_cost($11, $12, $8, $9, $18) c),
                 provider = $11, model = $12, key_source = $13,
                 step_count = step_count + CASE WHEN $16::int IS NULL THEN 0 ELSE 1 END,
                 finished_at = now(), lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         last_step AS (
             INSERT INTO run_steps (run_id, index, type, status, model, content,
                                    prompt_tokens, completion_tokens, total_tokens,
                                    started_at, finished_at)
             SELECT id, $16, 'model_call', 'succeeded', $12, $5, $8, $9, $10, $17, now()
             FROM final_runs WHERE $16::int IS NOT NULL
         ),
         {EVENT_FOR_STATUS_CHANGE},
         k AS (
             UPDATE projects SET key_status = $14
             WHERE $14::text IS NOT NULL AND id = (SELECT project_id FROM final_runs)
               AND llm_api_key = $15 AND key_status <> $14
         )
         SELECT (SELECT count(*) FROM e) AS events FROM final_runs"
    )
});

/// What storing a result did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The lease was lost (taken over, cancelled): nothing was written.
    LeaseLost,
    /// Written; `webhook` says whether an event was queued for delivery.
    Written { webhook: bool },
}

/// One result to store: everything [`FINISH_RUN`] binds, owned, so results of
/// runs finishing together can be handed to one committer (see
/// [`finish_runs`]). No `Debug`: it holds the project's encrypted key to
/// compare against.
#[derive(Clone)]
pub struct ResultRow {
    run_id: RunId,
    worker: WorkerId,
    attempt: i32,
    status: &'static str,
    output: Option<String>,
    code: Option<&'static str>,
    message: Option<String>,
    usage: Option<Usage>,
    provider: &'static str,
    model: String,
    key_source: &'static str,
    learnt: Option<&'static str>,
    used_own_key: Option<Vec<u8>>,
    last_step: Option<(i32, OffsetDateTime)>,
}

impl ResultRow {
    /// The result of `run`'s attempt by `worker`: `outcome`, what the call
    /// taught about the project's own key (`learnt`; stored only if that key
    /// was used and is still the stored one) and, for an agent run, its last
    /// model answer as its last step (`last_step`: its index and when the call
    /// began).
    pub fn new(
        run: &ClaimedRun,
        worker: WorkerId,
        choice: &LlmChoice,
        outcome: &RunOutcome,
        learnt: Option<KeyStatus>,
        last_step: Option<(i32, OffsetDateTime)>,
    ) -> Self {
        let used_own_key = (choice.key_source == KeySource::Project)
            .then(|| run.project.encrypted_key.clone())
            .flatten();
        let learnt = learnt
            .filter(|status| used_own_key.is_some() && run.project.llm.key_status != Some(*status))
            .map(KeyStatus::as_str);
        let (status, output, code, message, usage) = match outcome {
            RunOutcome::Succeeded { output, usage } => (
                RunStatus::Succeeded,
                Some(output.clone()),
                None,
                None,
                *usage,
            ),
            RunOutcome::Failed {
                code,
                message,
                output,
            } => (
                RunStatus::Failed,
                output.clone(),
                Some(code.as_str()),
                Some(message.clone()),
                None,
            ),
        };
        Self {
            run_id: run.id,
            worker,
            attempt: run.lease.attempt,
            status: status.as_str(),
            // Texts from outside (a model, a tool, a provider's error) made
            // storable here too, whatever produced them.
            output: output.map(storable),
            code,
            message: message.map(storable),
            usage,
            provider: choice.provider.as_str(),
            model: choice.model.clone(),
            key_source: choice.key_source.as_str(),
            learnt,
            used_own_key,
            last_step,
        }
    }

    async fn store(
        &self,
        client: &impl GenericClient,
        statement: &tokio_postgres::Statement,
    ) -> Result<Finished, DbError> {
        let usage = self.usage;
        let rows = client
            .query(
                statement,
                &[
                    &self.run_id,
                    &self.worker,
                    &self.attempt,
                    &self.status,
                    &self.output,
                    &self.code,
                    &self.message,
                    &usage.map(|u| u.prompt_tokens),
                    &usage.map(|u| u.completion_tokens),
                    &usage.map(|u| u.total_tokens),
                    &self.provider,
                    &self.model,
                    &self.key_source,
                    &self.learnt,
                    &self.used_own_key,
                    &self.last_step.map(|(index, _)| index),
                    &self.last_step.map(|(_, started)| started),
                    &usage.and_then(|u| u.cost_usd),
                ],
            )
            .await?;
        match rows.first() {
            None => Ok(Finished::LeaseLost),
            Some(row) => Ok(Finished::Written {
                webhook: row.try_get::<_, i64>("events")? > 0,
            }),
        }
    }
}

/// Writes a run's result, guarded by the lease: if the lease was lost (taken over,
/// cancelled) nothing is written and `LeaseLost` comes back, so a run never gets
/// two results. In the same statement: the webhook event (if any URL applies), the
/// key status and the last step (see [`ResultRow::new`]). Waking long-polls is
/// left to the caller, outside the commit: a notifying commit is serialized with
/// every other one.
pub async fn finish_run(
    client: &impl GenericClient,
    run: &ClaimedRun,
    worker: WorkerId,
    choice: &LlmChoice,
    outcome: &RunOutcome,
    learnt: Option<KeyStatus>,
    last_step: Option<(i32, OffsetDateTime)>,
) -> Result<Finished, DbError> {
    let row = ResultRow::new(run, worker, choice, outcome, learnt, last_step);
    store_result(client, &row).await
}

/// Stores one result on its own (see [`finish_run`]).
async fn store_result(client: &impl GenericClient, row: &ResultRow) -> Result<Finished, DbError> {
    let statement = client.prepare_cached(&FINISH_RUN).await?;
    row.store(client, &statement).await
}

/// Results of runs finishing together share a commit.
impl coalesce::Write for ResultRow {
    const LABEL: &'static str = "result";
    type Output = Finished;

    async fn many(
        client: &mut deadpool_postgres::Client,
        rows: &[Self],
    ) -> Result<Vec<Finished>, DbError> {
        finish_runs(client, rows).await
    }

    async fn one(&self, client: &deadpool_postgres::Client) -> Result<Finished, DbError> {
        store_result(client, self).await
    }
}

/// Stores the results of several runs in one transaction (one commit, the
/// statements pipelined on one connection), each guarded by its lease as in
/// [`finish_run`]; answers in the order given. All or none commit: on an error
/// nothing is stored, and the caller may store them one by one.
async fn finish_runs(
    client: &mut deadpool_postgres::Client,
    rows: &[ResultRow],
) -> Result<Vec<Finished>, DbError> {
    let statement = client.prepare_cached(&FINISH_RUN).await?;
    // In run id order, the order the lease heartbeat locks the same rows in:
    // locked in different orders, the two would deadlock.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].run_id);
    let transaction = client.transaction().await?;
    let stored = futures_util::future::join_all(
        order
            .iter()
            .map(|&i| rows[i].store(&transaction, &statement)),
    )
    .await;
    let mut finished = vec![Finished::LeaseLost; rows.len()];
    for (&i, result) in order.iter().zip(stored) {
        finished[i] = result?;
    }
    transaction.commit().await?;
    Ok(finished)
}

/// How a claimed run goes back to the queue.
#[derive(Clone, Copy, Debug)]
pub struct Requeue {
    /// When its message is published again.
    pub delay: Duration,
    /// Whether the attempt just made counts against `STEWRD_MAX_ATTEMPTS`
    /// (a provider failure does; a shutdown or a rate-limit wait does not).
    pub counts_as_attempt: bool,
    /// A call slot reserved for the run, from now.
    pub rate_slot: Option<Duration>,
}

impl Requeue {
    /// Back to the queue at once, the attempt not counted (a worker stopping).
    pub const HAND_BACK: Requeue = Requeue {
        delay: Duration::ZERO,
        counts_as_attempt: false,
        rate_slot: None,
    };
}

/// Puts a claimed run back in the queue, guarded by the lease like a result.
pub async fn requeue_run(
    client: &impl GenericClient,
    run: &ClaimedRun,
    worker: WorkerId,
    requeue: Requeue,
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "WITH u AS (
                 UPDATE runs SET status = 'queued', attempts = attempts - $4,
                                 lease_owner = NULL, lease_until = NULL,
                                 rate_slot = now() + make_interval(secs => $5),
                                 due_at = now() + make_interval(secs => $6)
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING id
             )
             INSERT INTO outbox (run_id, available_at)
             SELECT id, now() + make_interval(secs => $6) FROM u
             ON CONFLICT (run_id) DO UPDATE SET available_at = EXCLUDED.available_at
             RETURNING run_id",
        )
        .await?;
    let uncounted = i32::from(!requeue.counts_as_attempt);
    let rows = client
        .query(
            &statement,
            &[
                &run.id,
                &worker,
                &run.lease.attempt,
                &uncounted,
                &requeue.rate_slot.map(|slot| slot.as_secs_f64()),
                &requeue.delay.as_secs_f64(),
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Puts a claimed run back in the queue, due now, to go on with its next
/// model (`model`, the `fallbacks + 1`th of `fallback_models`, which are
/// pinned on the run so a later change of the project's cannot shift them).
/// Its committed steps stay: the conversation goes on unchanged. The new
/// model starts with its own retries (the switch counts as progress).
pub async fn fall_back_run(
    client: &impl GenericClient,
    run: &ClaimedRun,
    worker: WorkerId,
    model: &str,
    fallback_models: &[String],
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "WITH u AS (
                 UPDATE runs SET status = 'queued', model = $4, fallbacks = fallbacks + 1,
                                 fallback_models = coalesce(fallback_models, $5),
                                 progress_attempt = attempts,
                                 lease_owner = NULL, lease_until = NULL, due_at = now()
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING id
             )
             INSERT INTO outbox (run_id, available_at)
             SELECT id, now() FROM u
             ON CONFLICT (run_id) DO UPDATE SET available_at = EXCLUDED.available_at
             RETURNING run_id",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &run.id,
                &worker,
                &run.lease.attempt,
                &model,
                &fallback_models,
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

static CANCEL_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = 'cancelled', error_code = 'cancelled',
                             error_message = 'cancelled by request', finished_at = now(),
                             lease_owner = NULL, lease_until = NULL
             WHERE id = (SELECT latest_run_id FROM sessions WHERE id = $1 AND project_id = $2)
               AND status IN ('queued', 'running', 'requires_action')
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         d AS (DELETE FROM outbox WHERE run_id IN (SELECT id FROM final_runs)),
         {EVENT_FOR_STATUS_CHANGE}
         SELECT f.id, pg_notify($5, f.session_id::text || ' cancelled'),
                pg_notify($3, f.id::text), (SELECT pg_notify($4, '') FROM e LIMIT 1)
         FROM final_runs f"
    )
});

/// What `cancel_session` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The session's queued or running run is now cancelled.
    Cancelled(RunId),
    /// The session's latest run was already final.
    AlreadyFinal,
    /// No such session for this project.
    NotFound,
}

/// Cancels a session's queued or running run. `cancelled` is final: the worker's
/// result guard (`status = 'running'`) then fails, so a late result is dropped;
/// workers are told to abort the call.
pub async fn cancel_session(
    client: &impl GenericClient,
    project_id: ProjectId,
    session_id: SessionId,
) -> Result<CancelOutcome, DbError> {
    let statement = client.prepare_cached(&CANCEL_SESSION).await?;
    let rows = client
        .query(
            &statement,
            &[
                &session_id,
                &project_id,
                &notify::CANCEL,
                &notify::WEBHOOK,
                &notify::SESSION,
            ],
        )
        .await?;
    if let Some(row) = rows.first() {
        return Ok(CancelOutcome::Cancelled(row.try_get("id")?));
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM sessions WHERE id = $1 AND project_id = $2",
            &[&session_id, &project_id],
        )
        .await?
        .is_some();
    Ok(if exists {
        CancelOutcome::AlreadyFinal
    } else {
        CancelOutcome::NotFound
    })
}

static FAIL_UNCLAIMED_RUN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH final_runs AS (
             UPDATE runs SET status = 'failed', error_code = $2, error_message = $3,
                             finished_at = now(), lease_owner = NULL, lease_until = NULL
             WHERE id = $1
               AND (status = 'queued'
                    OR (status = 'running' AND (lease_until < now() OR lease_owner = $6)))
             RETURNING id, session_id, project_id, status, webhook_url
         ),
         d AS (DELETE FROM outbox WHERE run_id IN (SELECT id FROM final_runs)),
         {EVENT_FOR_STATUS_CHANGE}
         SELECT pg_notify($5, session_id::text || ' ' || status),
                (SELECT pg_notify($4, '') FROM e LIMIT 1)
         FROM final_runs"
    )
});

/// Fails a run no live worker holds (queued, or running on an expired lease), or
/// one `holder` claimed: the dead-letter consumer's verdict on a message that
/// could not be processed, and a worker's on a run whose row cannot be read.
/// Returns whether the run was failed.
pub async fn fail_unclaimed_run(
    client: &impl GenericClient,
    run_id: RunId,
    holder: Option<WorkerId>,
    code: FailureCode,
    message: &str,
) -> Result<bool, DbError> {
    let statement = client.prepare_cached(&FAIL_UNCLAIMED_RUN).await?;
    let rows = client
        .query(
            &statement,
            &[
                &run_id,
                &code.as_str(),
                &message,
                &notify::WEBHOOK,
                &notify::SESSION,
                &holder,
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}
