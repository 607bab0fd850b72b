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

/// Stores the results of a batch in one statement, each guarded by its lease
/// (a row whose run is no longer `running` under that worker and attempt is
/// not written, and not returned). One statement for the batch, not one a
/// result: Postgres compiles a table's CHECK constraints and its triggers'
/// `WHEN` clauses, and starts the plan of every CTE, once per statement, and
/// `runs` has ten CHECKs and four such triggers (`ExecConstraints` alone was
/// 9 % of Postgres's CPU with a statement a result). In the same statement:
/// each run's last step, its webhook event and what its call taught about the
/// project's key (the last of a project's results in the batch wins, as when
/// they were written one after the other in run id order).
static FINISH_RUNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::int[], $9::int[], $10::int[],
                                  $11::text[], $12::text[], $13::text[], $14::text[],
                                  $15::bytea[], $16::int[], $17::timestamptz[], $18::float8[])
                 AS i(id, worker, attempt, status, output, code, message, prompt,
                      completion, total, provider, model, key_source, learnt, used_own_key,
                      step_index, step_started, cost)
         ),
         final_runs AS (
             UPDATE runs SET status = i.status, output = i.output, error_code = i.code,
                 error_message = i.message,
                 prompt_tokens = CASE WHEN i.prompt IS NULL THEN runs.prompt_tokens
                                      ELSE coalesce(runs.prompt_tokens, 0) + i.prompt END,
                 completion_tokens = CASE WHEN i.completion IS NULL THEN runs.completion_tokens
                                          ELSE coalesce(runs.completion_tokens, 0) + i.completion END,
                 total_tokens = CASE WHEN i.total IS NULL THEN runs.total_tokens
                                     ELSE coalesce(runs.total_tokens, 0) + i.total END,
                 cost_usd = (SELECT CASE WHEN c IS NULL THEN runs.cost_usd
                                         ELSE coalesce(runs.cost_usd, 0) + c END
                             FROM stewrd_call_cost(i.provider, i.model, i.prompt, i.completion,
                                                   i.cost) c),
                 provider = i.provider, model = i.model, key_source = i.key_source,
                 step_count = runs.step_count + CASE WHEN i.step_index IS NULL THEN 0 ELSE 1 END,
                 finished_at = now(), lease_owner = NULL, lease_until = NULL
             FROM input i
             WHERE runs.id = i.id AND runs.status = 'running' AND runs.lease_owner = i.worker
               AND runs.attempts = i.attempt
             RETURNING runs.id, runs.attempts, runs.session_id, runs.project_id, runs.status,
                       runs.webhook_url
         ),
         -- The input row each written run came from: a run and its attempt (a
         -- worker may hold a stale attempt's result and the new attempt's in
         -- one batch, after its lease expired and it claimed the run again).
         written AS (
             SELECT f.id, f.project_id, i.model, i.output, i.prompt, i.completion, i.total,
                    i.learnt, i.used_own_key, i.step_index, i.step_started
             FROM final_runs f JOIN input i ON i.id = f.id AND i.attempt = f.attempts
         ),
         last_step AS (
             INSERT INTO run_steps (run_id, index, type, status, model, content,
                                    prompt_tokens, completion_tokens, total_tokens,
                                    started_at, finished_at)
             SELECT w.id, w.step_index, 'model_call', 'succeeded', w.model, w.output, w.prompt,
                    w.completion, w.total, w.step_started, now()
             FROM written w
             WHERE w.step_index IS NOT NULL
         ),
         {EVENT_FOR_STATUS_CHANGE},
         -- Of a project's results that used its stored key, the last in run id
         -- order: the one that would have been written last one by one.
         k AS (
             UPDATE projects p SET key_status = l.learnt
             FROM (SELECT DISTINCT ON (w.project_id) w.project_id, w.learnt
                   FROM written w JOIN projects q ON q.id = w.project_id
                   WHERE w.learnt IS NOT NULL AND q.llm_api_key = w.used_own_key
                   ORDER BY w.project_id, w.id DESC) l
             WHERE p.id = l.project_id AND p.key_status <> l.learnt
         )
         SELECT f.id, f.attempts, (SELECT count(*) FROM e WHERE e.run_id = f.id) AS events
         FROM final_runs f"
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

/// One result to store: a row of what [`FINISH_RUNS`] binds, owned, so results
/// of runs finishing together can be handed to one committer and stored in one
/// statement. No `Debug`: it holds the project's encrypted key to compare
/// against.
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
    Ok(store_results(client, std::slice::from_ref(row)).await?[0])
}

/// Stores `rows` in one statement ([`FINISH_RUNS`]); answers in the order given.
async fn store_results(
    client: &impl GenericClient,
    rows: &[ResultRow],
) -> Result<Vec<Finished>, DbError> {
    // Bound in run id order (rows are then locked in that order when the plan
    // walks the input; the heartbeat and the reaper skip locked rows anyway).
    let mut order: Vec<&ResultRow> = rows.iter().collect();
    order.sort_by_key(|row| row.run_id);
    let ids: Vec<RunId> = order.iter().map(|row| row.run_id).collect();
    let workers: Vec<WorkerId> = order.iter().map(|row| row.worker).collect();
    let attempts: Vec<i32> = order.iter().map(|row| row.attempt).collect();
    let statuses: Vec<&str> = order.iter().map(|row| row.status).collect();
    let outputs: Vec<Option<&str>> = order.iter().map(|row| row.output.as_deref()).collect();
    let codes: Vec<Option<&str>> = order.iter().map(|row| row.code).collect();
    let messages: Vec<Option<&str>> = order.iter().map(|row| row.message.as_deref()).collect();
    let usage = |count: fn(Usage) -> i32| -> Vec<Option<i32>> {
        order.iter().map(|row| row.usage.map(count)).collect()
    };
    let prompt = usage(|u| u.prompt_tokens);
    let completion = usage(|u| u.completion_tokens);
    let total = usage(|u| u.total_tokens);
    let providers: Vec<&str> = order.iter().map(|row| row.provider).collect();
    let models: Vec<&str> = order.iter().map(|row| row.model.as_str()).collect();
    let key_sources: Vec<&str> = order.iter().map(|row| row.key_source).collect();
    let learnt: Vec<Option<&str>> = order.iter().map(|row| row.learnt).collect();
    let own_keys: Vec<Option<&[u8]>> = order
        .iter()
        .map(|row| row.used_own_key.as_deref())
        .collect();
    let step_index: Vec<Option<i32>> = order
        .iter()
        .map(|row| row.last_step.map(|(index, _)| index))
        .collect();
    let step_started: Vec<Option<OffsetDateTime>> = order
        .iter()
        .map(|row| row.last_step.map(|(_, started)| started))
        .collect();
    let costs: Vec<Option<f64>> = order
        .iter()
        .map(|row| row.usage.and_then(|u| u.cost_usd))
        .collect();
    let statement = client.prepare_cached(&FINISH_RUNS).await?;
    let written = client
        .query(
            &statement,
            &[
                &ids,
                &workers,
                &attempts,
                &statuses,
                &outputs,
                &codes,
                &messages,
                &prompt,
                &completion,
                &total,
                &providers,
                &models,
                &key_sources,
                &learnt,
                &own_keys,
                &step_index,
                &step_started,
                &costs,
            ],
        )
        .await?;
    // By run and attempt: a stale attempt's result beside the run's current
    // one is not the one written.
    let mut events = std::collections::HashMap::with_capacity(written.len());
    for row in &written {
        events.insert(
            (
                row.try_get::<_, RunId>("id")?,
                row.try_get::<_, i32>("attempts")?,
            ),
            row.try_get::<_, i64>("events")?,
        );
    }
    Ok(rows
        .iter()
        .map(|row| match events.get(&(row.run_id, row.attempt)) {
            None => Finished::LeaseLost,
            Some(&count) => Finished::Written { webhook: count > 0 },
        })
        .collect())
}

/// Results of runs finishing together share a commit.
impl coalesce::Write for ResultRow {
    const LABEL: &'static str = "result";
    type Output = Finished;

    async fn many(
        client: &mut deadpool_postgres::Client,
        rows: &[Self],
    ) -> Result<Vec<Finished>, DbError> {
        // One statement, so all or none commit: on an error nothing is
        // stored, and the committer stores them one by one.
        store_results(&*client, rows).await
    }

    async fn one(&self, client: &deadpool_postgres::Client) -> Result<Finished, DbError> {
        store_result(client, self).await
    }
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
