//! Processing one claimed run: choose the provider and key, build the
//! conversation, respect the key's cool-down and the project's rate limit, call,
//! and then either store the result under the lease guard or put the run back in
//! the queue for a later attempt. No worker sleeps through a long wait: the run
//! goes back to Postgres with the time it is due.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

mod conversation;
mod key;
mod outcome;
mod timing;

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::{
    db::{
        cooldown::fingerprint,
        run::{ClaimedRun, Requeue, RunOutcome},
    },
    llm::{LlmChoice, choose_llm},
    metrics as names,
    model::{FailureCode, KeyStatus, RunStatus},
};
use tokio_util::sync::CancellationToken;
use tracing::Span;

pub use self::timing::retry_delay;
use self::{
    conversation::conversation,
    key::provider_key,
    outcome::{put_back, record},
    timing::{rate_limit, reserve, share_cooldown, wait_or_defer},
};
use crate::{
    Worker,
    provider::{ChatRequest, Retry},
};

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
}

/// How a run ended, and what that taught about the project's key.
struct Decision {
    outcome: RunOutcome,
    key_status: Option<KeyStatus>,
}

impl From<RunOutcome> for Verdict {
    fn from(outcome: RunOutcome) -> Self {
        Self::Finish(Decision {
            outcome,
            key_status: None,
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
    span.record("attempt", run.attempt);
    let registration = worker.cancellations.register(run.id);
    metrics::counter!(names::RUNS_STARTED).increment(1);
    if run.attempt == 1 {
        metrics::histogram!(names::QUEUE_WAIT).record(run.age_secs.max(0.0));
    }
    let _in_flight = InFlight::enter();
    worker
        .announcer
        .announce(run.session_id, RunStatus::Running);
    let choice = choose_llm(
        &run.project_llm,
        run.requested_model.as_deref(),
        &worker.config.default_llm,
    );
    let started = Instant::now();
    let verdict = tokio::select! {
        verdict = decide(worker, run, &choice) => verdict,
        _ = hand_back.cancelled() => Verdict::HandBack,
        _ = registration.token.cancelled() => Verdict::Cancelled,
    };
    match verdict {
        Verdict::Finish(decision) => record(worker, run, &choice, &decision, started).await,
        Verdict::Requeue(requeue) => put_back(worker, run, requeue).await,
        Verdict::HandBack => put_back(worker, run, Requeue::HAND_BACK).await,
        Verdict::Cancelled => tracing::info!("run cancelled; provider call abandoned"),
    }
}

/// After the run's task panicked: back to the queue with the attempt counted
/// and a backoff, so a run that always panics ends at the attempt limit
/// (`delivery_limit_exceeded`) instead of holding its lease for ever.
pub async fn recover_from_panic(worker: &Worker, run: &ClaimedRun) {
    let settings = &worker.config.worker;
    let requeue = Requeue {
        delay: retry_delay(run.attempt, None, settings.retry_base, settings.retry_max),
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
    let max_attempts = i32::try_from(worker.config.worker.max_attempts).unwrap_or(i32::MAX);
    if run.attempt > max_attempts {
        return failed(
            FailureCode::DeliveryLimitExceeded,
            format!("the run was started {max_attempts} times without finishing"),
        )
        .into();
    }
    if run.seconds_left <= 0.0 {
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
    if worker.config.worker.panic_on_input.as_deref() == Some(run.input.as_str()) {
        // Fault injection for tests; the text holds the key as the real bug did.
        panic!("injected fault with key {}", key.expose_secret());
    }
    let request = match conversation(worker, run, choice).await {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "cannot load the session history");
            return Verdict::HandBack;
        }
    };
    let key_id = fingerprint(&key);
    if let Some(wait) = worker.cooldowns.paused_for(&key_id) {
        metrics::counter!(names::RATE_LIMIT_WAITS, "reason" => "key_cooldown").increment(1);
        if let Some(verdict) = wait_or_defer(wait, None).await {
            tracing::debug!(wait_ms = millis(wait), "key cooling down; run deferred");
            return verdict;
        }
    }
    if let Some(rpm) = rate_limit(worker, run) {
        let wait = match run.slot_in {
            Some(seconds) => Duration::from_secs_f64(seconds.max(0.0)),
            None => match reserve(worker, run, rpm).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::warn!(%error, "cannot reserve a rate-limit slot");
                    return Verdict::HandBack;
                }
            },
        };
        if !wait.is_zero() {
            metrics::counter!(names::RATE_LIMIT_WAITS, "reason" => "project_limit").increment(1);
        }
        if let Some(verdict) = wait_or_defer(wait, Some(wait)).await {
            tracing::debug!(
                wait_ms = millis(wait),
                "over the project's rate limit; run deferred"
            );
            return verdict;
        }
    }
    call(worker, run, choice, &key, &key_id, &request).await
}

/// Makes the call; a retryable failure goes back to the queue after a backoff
/// while attempts and the deadline allow.
async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    key: &SecretString,
    key_id: &[u8; 16],
    request: &ChatRequest,
) -> Verdict {
    let deadline = Duration::from_secs_f64(run.seconds_left);
    let call = worker.provider.complete(choice.provider, key, request);
    let answer = tokio::time::timeout(deadline, call).await;
    let status = match &answer {
        Ok(Ok(_)) => Some(200),
        Ok(Err(error)) => error.status,
        Err(_) => None,
    };
    metrics::counter!(
        names::PROVIDER_CALLS,
        "provider" => choice.provider.as_str(),
        "status_class" => names::status_class(status),
        "model" => names::model_label(&choice.model)
    )
    .increment(1);
    let error = match answer {
        Err(_) => {
            return failed(
                FailureCode::ProviderTimeout,
                "the run's deadline passed during the provider call",
            )
            .into();
        }
        Ok(Ok(completion)) => {
            return Verdict::Finish(Decision {
                outcome: RunOutcome::Succeeded {
                    output: completion.content,
                    usage: completion.usage,
                },
                key_status: Some(KeyStatus::Valid),
            });
        }
        Ok(Err(error)) => error,
    };
    let message = error.message;
    let settings = &worker.config.worker;
    let finish = Verdict::Finish(Decision {
        outcome: failed(error.code, message.clone()),
        key_status: error.key_verdict,
    });
    let Retry::After(asked) = error.retry else {
        return finish;
    };
    let delay = retry_delay(run.attempt, asked, settings.retry_base, settings.retry_max);
    if error.code == FailureCode::ProviderRateLimited {
        share_cooldown(worker, key_id, delay).await;
    }
    let attempts_left = run.attempt < i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
    let time_left = delay.as_secs_f64() < run.seconds_left;
    if attempts_left && time_left {
        metrics::counter!(names::PROVIDER_RETRIES, "provider" => choice.provider.as_str(), "code" => error.code.as_str())
            .increment(1);
        tracing::warn!(
            code = %error.code,
            status = error.status,
            %message,
            retry_in_ms = millis(delay),
            "provider call failed; will retry"
        );
        return Verdict::Requeue(Requeue {
            delay,
            counts_as_attempt: true,
            rate_slot: None,
        });
    }
    finish
}

fn failed(code: FailureCode, message: impl Into<String>) -> RunOutcome {
    RunOutcome::Failed {
        code,
        message: message.into(),
    }
}
