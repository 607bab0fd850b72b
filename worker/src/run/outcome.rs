//! Where a run's attempt ends up: its result stored under the lease guard
//! (riding out a short Postgres outage), or the run put back in the queue.

use std::time::{Duration, Instant};

use stewrd_shared::{
    db::{
        DbError,
        run::{ClaimedRun, Finished, Requeue, ResultRow, RunOutcome, fall_back_run, requeue_run},
    },
    domain::{
        llm::LlmChoice,
        model::{FailureCode, RunStatus},
    },
    runtime::metrics as names,
};

use super::{Decision, millis, timing::wake_relay_after};
use crate::{
    Worker,
    db::{Outage, Patience},
};

/// How long the result commit keeps retrying through a Postgres outage. Past
/// that the lease has likely expired and the run will be run again anyway.
const COMMIT_PATIENCE: Duration = Duration::from_secs(60);

/// Stores the outcome (and what it taught about the key), retrying through a
/// short Postgres outage.
pub(super) async fn record(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    decision: &Decision,
    started: Instant,
) {
    let outcome = &decision.outcome;
    let row = ResultRow::new(
        run,
        worker.id,
        choice,
        outcome,
        decision.key_status,
        decision.last_step,
    );
    let mut stored = store(worker, &row).await;
    let unstorable;
    let mut outcome = outcome;
    if let Err(error) = &stored
        && error.is_data()
    {
        // Stored again, the same result would be refused again, and the run,
        // left to its lease, would make its last call again: it fails instead.
        tracing::error!(%error, "cannot store the result: Postgres refuses it; the run fails");
        unstorable = RunOutcome::Failed {
            code: FailureCode::StepNotStorable,
            message: format!("the result could not be stored: {}", error.server_message()),
            output: None,
        };
        outcome = &unstorable;
        let row = ResultRow::new(run, worker.id, choice, outcome, decision.key_status, None);
        stored = store(worker, &row).await;
    }
    match stored {
        Ok(Finished::Written { webhook }) => {
            log_outcome(outcome, started);
            let (status, code) = match outcome {
                RunOutcome::Succeeded { .. } => (RunStatus::Succeeded, ""),
                RunOutcome::Failed { code, .. } => (RunStatus::Failed, code.as_str()),
            };
            metrics::counter!(names::RUNS_FINISHED, "status" => status.as_str(), "code" => code)
                .increment(1);
            metrics::histogram!(names::RUN_DURATION).record(started.elapsed().as_secs_f64());
            worker.announcer.announce(run.session_id, status);
            if webhook {
                worker.webhook_wake.notify_one();
            }
        }
        Ok(Finished::LeaseLost) => {
            tracing::warn!("result dropped: the run was cancelled or taken over meanwhile");
        }
        Err(error) => {
            tracing::error!(%error, "cannot store the result; the run will be run again once its lease expires");
        }
    }
}

/// Writes a result in the next shared commit, riding out a short outage.
async fn store(worker: &Worker, row: &ResultRow) -> Result<Finished, DbError> {
    let mut outage = Outage::new(Patience::For(COMMIT_PATIENCE), "store a result");
    loop {
        let stored = worker.results.write(row.clone()).await;
        if !outage.wait_to_retry(&stored).await {
            return stored;
        }
    }
}

fn log_outcome(outcome: &RunOutcome, started: Instant) {
    let duration_ms = millis(started.elapsed());
    match outcome {
        RunOutcome::Succeeded { usage, .. } => tracing::info!(
            duration_ms,
            total_tokens = usage.map(|u| u.total_tokens),
            "run succeeded"
        ),
        RunOutcome::Failed { code, message, .. } => {
            tracing::warn!(duration_ms, %code, %message, "run failed");
        }
    }
}

pub(super) async fn put_back(worker: &Worker, run: &ClaimedRun, requeue: Requeue) {
    let result = worker
        .db(|client| async move { requeue_run(&client, run, worker.id, requeue).await })
        .await;
    match result {
        Ok(true) => {
            metrics::counter!(names::RUNS_REQUEUED).increment(1);
            worker.announcer.announce(run.session_id, RunStatus::Queued);
            tracing::debug!(delay_ms = millis(requeue.delay), "run back in the queue");
            wake_relay_after(worker, requeue.delay);
        }
        Ok(false) => tracing::info!("run was cancelled or taken over meanwhile"),
        Err(error) => tracing::warn!(%error, "cannot put the run back; its lease will expire"),
    }
}

/// Puts the run back to go on at once with its next model (`fall_back_run`).
pub(super) async fn fall_back(worker: &Worker, run: &ClaimedRun, left: &LlmChoice, model: &str) {
    let models = run.fallback_models();
    let result = worker
        .db(|client| async move { fall_back_run(&client, run, worker.id, model, models).await })
        .await;
    match result {
        Ok(true) => {
            tracing::warn!(from = %left.model, to = %model, "the model failed for good; the run goes on with its next fallback model");
            worker.announcer.announce(run.session_id, RunStatus::Queued);
            worker.relay_wake.notify_one();
        }
        Ok(false) => tracing::info!("run was cancelled or taken over meanwhile"),
        Err(error) => tracing::warn!(%error, "cannot put the run back; its lease will expire"),
    }
}
