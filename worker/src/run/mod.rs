//! Processing one claimed run: choose the provider and key, build the
//! conversation, respect the key's cool-down and the project's rate limit, call,
//! and then either store the result under the lease guard or put the run back in
//! the queue for a later attempt. No worker sleeps through a long wait: the run
//! goes back to Postgres with the time it is due.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

mod agent;
mod conversation;
mod key;
mod model;
mod outcome;
mod stream;
mod timing;

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use stewrd_shared::{
    db::{
        cooldown::{fingerprint, model_fingerprint},
        run::{ClaimedRun, Requeue, RunOutcome},
    },
    domain::{
        llm::{LlmChoice, choose_llm, next_model},
        model::{FailureCode, KeyStatus, RunStatus},
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Span;

pub use self::timing::retry_delay;
use self::{
    key::provider_key,
    model::CallContext,
    outcome::{fall_back, put_back, record},
};
use crate::Worker;

/// A duration in whole milliseconds, for logs.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What to do with a claimed run.
enum Verdict {
    /// Store this outcome (and what it taught about the key).
    Finish(Decision),
    /// Back to the queue, due after a wait.
    Requeue(Requeue),
    /// Back to the queue at once (stopping, or Postgres lost mid-way).
    HandBack,
    /// Cancelled meanwhile: nothing to write.
    Cancelled,
    /// Committed as waiting for the client's tool outputs; `webhook` says
    /// whether a `session.requires_action` event was queued.
    Paused { webhook: bool },
    /// A step's commit found the lease gone (cancelled, taken over): stop here.
    LeaseLost,
    /// The model failed for good (not found, or unavailable or rate limited
    /// after its retries): go on with this next model, same conversation.
    FallBack { model: String },
}

/// How a run ended, and what that taught about the project's key.
struct Decision {
    outcome: RunOutcome,
    key_status: Option<KeyStatus>,
    /// An agent run's last answer becomes its last step: its index and start.
    last_step: Option<(i32, OffsetDateTime)>,
}

impl From<RunOutcome> for Verdict {
    fn from(outcome: RunOutcome) -> Self {
        Self::Finish(Decision {
            outcome,
            key_status: None,
            last_step: None,
        })
    }
}

/// Counts a run in flight for the gauge, for as long as it lives (also when its
/// task unwinds).
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> Self {
        let gauge = metrics::gauge!(names::RUNS_IN_FLIGHT);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Runs a claimed run to its end, or back to the queue.
pub async fn process(worker: &Worker, run: &ClaimedRun, hand_back: &CancellationToken) {
    let span = Span::current();
    span.record("session_id", tracing::field::display(run.session_id));
    span.record("attempt", run.lease.attempt);
    let registration = worker.cancellations.register(run.id);
    metrics::counter!(names::RUNS_STARTED).increment(1);
    if run.lease.attempt == 1 {
        metrics::histogram!(names::QUEUE_WAIT).record(run.lease.age_secs.max(0.0));
    }
    let _in_flight = InFlight::enter();
    worker
        .announcer
        .announce(run.session_id, RunStatus::Running);
    let mut choice = choose_llm(
        &run.project.llm,
        run.request.requested_model.as_deref(),
        worker.config.default_llm.provider,
        &worker.config.default_llm.model,
    );
    if let Some(fallback) = run
        .progress
        .fallbacks
        .checked_sub(1)
        .and_then(|used| next_model(run.fallback_models(), used))
    {
        choice.model = fallback.to_owned();
    }
    let started = Instant::now();
    let verdict = tokio::select! {
        verdict = decide(worker, run, &choice) => verdict,
        _ = hand_back.cancelled() => Verdict::HandBack,
        _ = registration.token.cancelled() => Verdict::Cancelled,
    };
    match verdict {
        Verdict::Finish(decision) => {
            record(worker, run, &choice, &decision, started).await;
            crate::tools::browser::ended(worker, run).await;
        }
        Verdict::Requeue(requeue) => put_back(worker, run, requeue).await,
        Verdict::HandBack => put_back(worker, run, Requeue::HAND_BACK).await,
        Verdict::Cancelled => {
            tracing::info!("run cancelled; provider call abandoned");
            crate::tools::browser::ended(worker, run).await;
        }
        Verdict::Paused { webhook } => {
            metrics::counter!(names::RUNS_PAUSED).increment(1);
            tracing::info!("run waits for the client's tool outputs");
            worker
                .announcer
                .announce(run.session_id, RunStatus::RequiresAction);
            if webhook {
                worker.webhook_wake.notify_one();
            }
        }
        Verdict::LeaseLost => {
            tracing::warn!("step dropped: the run was cancelled or taken over meanwhile");
        }
        Verdict::FallBack { model } => fall_back(worker, run, &choice, &model).await,
    }
    if run.project.limits.max_concurrent_runs.is_some() {
        // Its place is free: the database marked the project (trigger
        // `free_place`); publish the room message now, not at the relay's poll.
        worker.relay_wake.notify_one();
    }
}

/// After the run's task panicked: back to the queue with the attempt counted
/// and a backoff, so a run that always panics ends at the attempt limit
/// (`delivery_limit_exceeded`) instead of holding its lease for ever.
pub async fn recover_from_panic(worker: &Worker, run: &ClaimedRun) {
    let settings = &worker.config.worker;
    let requeue = Requeue {
        delay: retry_delay(
            run.lease.attempt,
            None,
            settings.retry_base,
            settings.retry_max,
        ),
        counts_as_attempt: true,
        rate_slot: None,
    };
    tracing::error!(
        retry_in_ms = millis(requeue.delay),
        "the run's task panicked; the run goes back to the queue"
    );
    put_back(worker, run, requeue).await;
}

async fn decide(worker: &Worker, run: &ClaimedRun, choice: &LlmChoice) -> Verdict {
    let claimed = Instant::now();
    let max_attempts = i32::try_from(worker.config.worker.max_attempts).unwrap_or(i32::MAX);
    let attempts = run.attempts_since_progress();
    if attempts > max_attempts {
        return failed(
            FailureCode::DeliveryLimitExceeded,
            format!("the run was started {max_attempts} times without progress"),
        )
        .into();
    }
    if run.lease.seconds_left <= 0.0 {
        return failed(
            FailureCode::ProviderTimeout,
            "the run's deadline passed before it could finish",
        )
        .into();
    }
    let key = match provider_key(worker, run, choice) {
        Ok(key) => key,
        Err(verdict) => return verdict,
    };
    if worker.config.worker.panic_on_input.as_deref() == Some(run.request.input.as_str()) {
        // Fault injection for tests; the text holds the key as the real bug did.
        panic!("injected fault with key {}", key.expose_secret());
    }
    let history = match conversation::load(worker, run).await {
        Ok(history) => history,
        Err(error) => {
            // Back later, with a backoff and the attempt counted: an outage
            // passes, and a history that never reads ends at the attempt limit
            // instead of being claimed again and again.
            let settings = &worker.config.worker;
            let delay = retry_delay(attempts, None, settings.retry_base, settings.retry_max);
            tracing::warn!(%error, retry_in_ms = millis(delay), "cannot load the session history");
            return Verdict::Requeue(Requeue {
                delay,
                counts_as_attempt: true,
                rate_slot: None,
            });
        }
    };
    let key_id = fingerprint(&key);
    let model_key_id = model_fingerprint(&key, &choice.model);
    let context = CallContext {
        choice,
        key: &key,
        key_id: &key_id,
        model_key_id: &model_key_id,
        first: true,
        claimed,
        attempts,
    };
    agent::Loop::new(worker, run, context, history).run().await
}

fn failed(code: FailureCode, message: impl Into<String>) -> RunOutcome {
    RunOutcome::Failed {
        code,
        message: message.into(),
        output: None,
    }
}
