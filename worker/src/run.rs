//! Processing one claimed run: choose the provider and key, build the
//! conversation, respect the key's cool-down and the project's rate limit, call,
//! and then either store the result under the lease guard or put the run back in
//! the queue for a later attempt. No worker sleeps through a long wait: the run
//! goes back to Postgres with the time it is due.

use std::time::{Duration, Instant};

use backoff::{ExponentialBackoff, backoff::Backoff};
use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::{
    crypto::SecretField,
    db::{
        DbError,
        cooldown::{fingerprint, record_cooldown},
        ratelimit::reserve_slot,
        run::{
            ClaimedRun, EarlierRun, Finished, Requeue, RunOutcome, earlier_runs, finish_run,
            requeue_run,
        },
    },
    llm::{LlmChoice, choose_llm},
    metrics as names,
    model::{FailureCode, KeySource, KeyStatus, RunStatus},
    retry::{backoff, pause},
};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::{
    Worker,
    provider::{ChatMessage, ChatRequest},
};

/// How long the result commit keeps retrying through a Postgres outage. Past
/// that the lease has likely expired and the run will be run again anyway.
const COMMIT_PATIENCE: Duration = Duration::from_secs(60);
/// Waits up to this long happen in the worker; longer ones go back to the queue.
const SLEEP_AT_MOST: Duration = Duration::from_secs(2);
/// A deferred run is published this long before its slot, then sleeps to it.
const WAKE_EARLY: Duration = Duration::from_secs(1);

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
        retry_in_ms = requeue.delay.as_millis() as u64,
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
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "key cooling down; run deferred"
            );
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
                wait_ms = wait.as_millis() as u64,
                "over the project's rate limit; run deferred"
            );
            return verdict;
        }
    }
    call(worker, run, choice, &key, &key_id, &request).await
}

/// Waits here for a short wait; for a long one, returns the requeue that brings
/// the run back just before it ends.
async fn wait_or_defer(wait: Duration, rate_slot: Option<Duration>) -> Option<Verdict> {
    if wait <= SLEEP_AT_MOST {
        tokio::time::sleep(wait).await;
        return None;
    }
    Some(Verdict::Requeue(Requeue {
        delay: wait.saturating_sub(WAKE_EARLY),
        counts_as_attempt: false,
        rate_slot,
    }))
}

fn rate_limit(worker: &Worker, run: &ClaimedRun) -> Option<u32> {
    run.rate_limit_rpm
        .and_then(|rpm| u32::try_from(rpm).ok())
        .or(worker.config.worker.default_rate_limit_rpm)
}

async fn reserve(worker: &Worker, run: &ClaimedRun, rpm: u32) -> Result<Duration, DbError> {
    let client = worker.pool.get().await?;
    reserve_slot(
        &client,
        run.project_id,
        rpm,
        worker.config.worker.rate_limit_burst,
    )
    .await
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
    let delay = retry_delay(
        run.attempt,
        error.retry_after,
        settings.retry_base,
        settings.retry_max,
    );
    if error.code == FailureCode::ProviderRateLimited {
        share_cooldown(worker, key_id, delay).await;
    }
    let attempts_left = run.attempt < i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
    let time_left = delay.as_secs_f64() < run.seconds_left;
    if error.retryable && attempts_left && time_left {
        metrics::counter!(names::PROVIDER_RETRIES, "provider" => choice.provider.as_str(), "code" => error.code.as_str())
            .increment(1);
        tracing::warn!(
            code = %error.code,
            status = error.status,
            %message,
            retry_in_ms = delay.as_millis() as u64,
            "provider call failed; will retry"
        );
        return Verdict::Requeue(Requeue {
            delay,
            counts_as_attempt: true,
            rate_slot: None,
        });
    }
    Verdict::Finish(Decision {
        outcome: failed(error.code, message),
        key_status: error.key_verdict,
    })
}

/// The wait before the next attempt: what the provider asked for (plus up to 10%,
/// at most a second, so a crowd of retries does not land at once), else
/// exponential backoff with full jitter.
pub fn retry_delay(
    attempt: i32,
    retry_after: Option<Duration>,
    base: Duration,
    max: Duration,
) -> Duration {
    if let Some(wait) = retry_after {
        let spread = (wait / 10).min(Duration::from_secs(1));
        return wait + spread.mul_f64(rand::random::<f64>());
    }
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let ceiling = base.saturating_mul(1 << doublings).min(max);
    // Randomization 1.0 around the ceiling's half is uniform over [0, ceiling]: full jitter.
    let mut policy = ExponentialBackoff {
        current_interval: ceiling / 2,
        initial_interval: ceiling / 2,
        randomization_factor: 1.0,
        multiplier: 1.0,
        max_interval: max,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    policy.next_backoff().unwrap_or(ceiling).min(max)
}

/// Pauses the key in this worker at once and in every other through Postgres.
async fn share_cooldown(worker: &Worker, key_id: &[u8; 16], pause: Duration) {
    worker.cooldowns.pause(*key_id, pause);
    let result = match worker.pool.get().await {
        Ok(client) => record_cooldown(&client, key_id, pause).await,
        Err(error) => Err(error.into()),
    };
    if let Err(error) = result {
        tracing::warn!(%error, "cannot share the key's cool-down");
    }
}

fn failed(code: FailureCode, message: impl Into<String>) -> RunOutcome {
    RunOutcome::Failed {
        code,
        message: message.into(),
    }
}

/// The key for this run, decrypted only now. A project with a key of its own is
/// never served with the default one: a key that cannot be decrypted fails the
/// run (and marks the key invalid) instead.
fn provider_key(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
) -> Result<SecretString, Verdict> {
    let no_key = || {
        Verdict::from(failed(
            FailureCode::NoProviderConfigured,
            "no provider key: set one for the project (PUT /v1/project/llm) \
             or a default (STEWRD_DEFAULT_API_KEY)",
        ))
    };
    match choice.key_source {
        KeySource::Default => worker.config.default_llm.api_key.clone().ok_or_else(no_key),
        KeySource::Project => {
            let stored = run.encrypted_key.as_deref().ok_or_else(no_key)?;
            worker
                .master_keys
                .decrypt_text(stored, run.project_id, SecretField::ProviderKey)
                .map_err(|error| {
                    tracing::error!(%error, project_id = %run.project_id, "cannot decrypt the project's provider key");
                    Verdict::Finish(Decision {
                        outcome: failed(
                            FailureCode::ProviderAuthFailed,
                            format!("the project's provider key cannot be decrypted ({error}); set it again with PUT /v1/project/llm"),
                        ),
                        key_status: Some(KeyStatus::Invalid),
                    })
                })
        }
    }
}

/// The whole conversation: the effective system prompt, every answered exchange
/// of the session, then this run's message.
async fn conversation(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
) -> Result<ChatRequest, DbError> {
    let earlier = if run.turn > 1 {
        let client = worker.pool.get().await?;
        earlier_runs(&client, run.session_id, run.turn).await?
    } else {
        Vec::new()
    };
    Ok(ChatRequest {
        model: choice.model.clone(),
        messages: build_messages(&earlier, run.system.as_deref(), &run.input),
        max_tokens: run.max_tokens,
        temperature: run.temperature,
    })
}

/// Only answered exchanges enter the history: a failed or cancelled message is
/// shown in the session but was never answered, so the model does not see it.
/// The latest system prompt given in the session applies.
fn build_messages(earlier: &[EarlierRun], system: Option<&str>, input: &str) -> Vec<ChatMessage> {
    let system = system.or_else(|| earlier.iter().rev().find_map(|run| run.system.as_deref()));
    let mut messages = Vec::with_capacity(earlier.len() * 2 + 2);
    if let Some(system) = system {
        messages.push(ChatMessage::new("system", system));
    }
    for run in earlier {
        if let (RunStatus::Succeeded, Some(output)) = (run.status, &run.output) {
            messages.push(ChatMessage::new("user", &run.input));
            messages.push(ChatMessage::new("assistant", output));
        }
    }
    messages.push(ChatMessage::new("user", input));
    messages
}

/// Stores the outcome (and what it taught about the key), retrying through a
/// short Postgres outage.
async fn record(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    decision: &Decision,
    started: Instant,
) {
    let outcome = &decision.outcome;
    let give_up = Instant::now() + COMMIT_PATIENCE;
    let never = CancellationToken::new();
    let mut failures = 0;
    loop {
        let result = match worker.pool.get().await {
            Ok(client) => {
                finish_run(
                    &client,
                    run,
                    worker.id,
                    choice,
                    outcome,
                    decision.key_status,
                )
                .await
            }
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(Finished::Written { webhook }) => {
                log_outcome(outcome, started);
                let (status, code) = match outcome {
                    RunOutcome::Succeeded { .. } => ("succeeded", ""),
                    RunOutcome::Failed { code, .. } => ("failed", code.as_str()),
                };
                metrics::counter!(names::RUNS_FINISHED, "status" => status, "code" => code)
                    .increment(1);
                metrics::histogram!(names::RUN_DURATION).record(started.elapsed().as_secs_f64());
                let status = match outcome {
                    RunOutcome::Succeeded { .. } => RunStatus::Succeeded,
                    RunOutcome::Failed { .. } => RunStatus::Failed,
                };
                worker.announcer.announce(run.session_id, status);
                if webhook {
                    worker.webhook_wake.notify_one();
                }
                return;
            }
            Ok(Finished::LeaseLost) => {
                tracing::warn!("result dropped: the run was cancelled or taken over meanwhile");
                return;
            }
            Err(DbError::Unavailable(reason)) if Instant::now() < give_up => {
                failures += 1;
                tracing::warn!(%reason, "cannot store the result yet; retrying");
                pause(&never, backoff(failures)).await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot store the result; the run will be run again once its lease expires");
                return;
            }
        }
    }
}

fn log_outcome(outcome: &RunOutcome, started: Instant) {
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        RunOutcome::Succeeded { usage, .. } => tracing::info!(
            duration_ms,
            total_tokens = usage.map(|u| u.total_tokens),
            "run succeeded"
        ),
        RunOutcome::Failed { code, message } => {
            tracing::warn!(duration_ms, %code, %message, "run failed")
        }
    }
}

/// Wakes this process's relay when the run falls due (plus a little slack for
/// clock differences), instead of leaving it to the relay's idle poll.
fn wake_relay_after(worker: &Worker, delay: Duration) {
    let wake = worker.relay_wake.clone();
    if delay.is_zero() {
        wake.notify_one();
    } else if delay <= Duration::from_secs(60) {
        tokio::spawn(async move {
            tokio::time::sleep(delay + Duration::from_millis(20)).await;
            wake.notify_one();
        });
    }
}

async fn put_back(worker: &Worker, run: &ClaimedRun, requeue: Requeue) {
    let result = match worker.pool.get().await {
        Ok(client) => requeue_run(&client, run, worker.id, requeue).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(true) => {
            metrics::counter!(names::RUNS_REQUEUED).increment(1);
            worker.announcer.announce(run.session_id, RunStatus::Queued);
            tracing::debug!(
                delay_ms = requeue.delay.as_millis() as u64,
                "run back in the queue"
            );
            wake_relay_after(worker, requeue.delay);
        }
        Ok(false) => tracing::info!("run was cancelled or taken over meanwhile"),
        Err(error) => tracing::warn!(%error, "cannot put the run back; its lease will expire"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(
        input: &str,
        output: Option<&str>,
        status: RunStatus,
        system: Option<&str>,
    ) -> EarlierRun {
        EarlierRun {
            input: input.into(),
            output: output.map(Into::into),
            system: system.map(Into::into),
            status,
        }
    }

    #[test]
    fn the_history_holds_answered_exchanges_then_the_new_message() {
        let history = [
            earlier("hi", Some("hello"), RunStatus::Succeeded, Some("be brief")),
            earlier("lost", None, RunStatus::Failed, None),
            earlier("again", Some("yes"), RunStatus::Succeeded, None),
        ];
        let messages = build_messages(&history, None, "now");
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(messages[0].content, "be brief");
        assert_eq!(messages[5].content, "now");
        assert!(messages.iter().all(|m| m.content != "lost"));
    }

    #[test]
    fn a_new_system_prompt_replaces_the_old_one() {
        let history = [earlier(
            "hi",
            Some("hello"),
            RunStatus::Succeeded,
            Some("old"),
        )];
        let messages = build_messages(&history, Some("new"), "now");
        assert_eq!(messages[0].content, "new");
        assert_eq!(messages.iter().filter(|m| m.role == "system").count(), 1);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=8 {
            let ceiling = (base * (1 << (attempt - 1))).min(max);
            let delays: Vec<_> = (0..200)
                .map(|_| retry_delay(attempt, None, base, max))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            assert!(
                delays.iter().any(|d| *d < ceiling / 4),
                "attempt {attempt}: no low draws"
            );
            assert!(
                delays.iter().any(|d| *d > ceiling * 3 / 4),
                "attempt {attempt}: no high draws"
            );
        }
    }

    #[test]
    fn retry_after_is_honored_with_a_little_spread() {
        let base = Duration::from_secs(1);
        for _ in 0..100 {
            let delay = retry_delay(
                1,
                Some(Duration::from_secs(2)),
                base,
                Duration::from_secs(60),
            );
            assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_millis(2200));
            let long = retry_delay(
                1,
                Some(Duration::from_secs(120)),
                base,
                Duration::from_secs(60),
            );
            assert!(long >= Duration::from_secs(120) && long <= Duration::from_secs(121));
        }
    }
}
