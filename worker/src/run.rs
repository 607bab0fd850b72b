//! Processing one claimed run: choose the provider and key, build the
//! conversation, call, and store the result under the lease guard.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::{
    crypto::SecretField,
    db::{
        DbError,
        project::record_key_status,
        run::{ClaimedRun, EarlierRun, RunOutcome, earlier_runs, finish_run, hand_back_run},
    },
    llm::{LlmChoice, choose_llm},
    model::{FailureCode, KeySource, KeyStatus, RunStatus},
    relay::{backoff, pause},
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

/// Runs a claimed run to its end, or hands it back when `hand_back` fires.
pub async fn process(worker: &Worker, run: ClaimedRun, hand_back: &CancellationToken) {
    let span = Span::current();
    span.record("session_id", tracing::field::display(run.session_id));
    span.record("attempt", run.attempt);
    let choice = choose_llm(
        &run.project_llm,
        run.requested_model.as_deref(),
        &worker.config.default_llm,
    );
    let started = Instant::now();
    let decision = tokio::select! {
        decision = decide(worker, &run, &choice) => decision,
        _ = hand_back.cancelled() => None,
    };
    match decision {
        Some(decision) => {
            if record(worker, &run, &choice, &decision.outcome, started).await {
                learn_key_status(worker, &run, &choice, decision.key_status).await;
            }
        }
        None => give_back(worker, &run).await,
    }
}

/// How a run ended, and what that taught us about the project's key.
struct Decision {
    outcome: RunOutcome,
    key_status: Option<KeyStatus>,
}

impl From<RunOutcome> for Decision {
    fn from(outcome: RunOutcome) -> Self {
        Self {
            outcome,
            key_status: None,
        }
    }
}

/// What became of the run; `None` when it cannot be decided now (Postgres lost
/// while loading the history) and must be run again.
async fn decide(worker: &Worker, run: &ClaimedRun, choice: &LlmChoice) -> Option<Decision> {
    let max_attempts = i32::try_from(worker.config.worker.max_attempts).unwrap_or(i32::MAX);
    if run.attempt > max_attempts {
        return Some(
            failed(
                FailureCode::DeliveryLimitExceeded,
                format!("the run was started {max_attempts} times without finishing"),
            )
            .into(),
        );
    }
    if run.seconds_left <= 0.0 {
        return Some(
            failed(
                FailureCode::ProviderTimeout,
                "the run's deadline passed before it could finish",
            )
            .into(),
        );
    }
    let key = match provider_key(worker, run, choice) {
        Ok(key) => key,
        Err(decision) => return Some(decision),
    };
    let request = match conversation(worker, run, choice).await {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "cannot load the session history");
            return None;
        }
    };
    let deadline = Duration::from_secs_f64(run.seconds_left);
    let call = worker.provider.complete(choice.provider, &key, &request);
    Some(match tokio::time::timeout(deadline, call).await {
        Err(_) => failed(
            FailureCode::ProviderTimeout,
            "the run's deadline passed during the provider call",
        )
        .into(),
        Ok(Ok(completion)) => Decision {
            outcome: RunOutcome::Succeeded {
                output: completion.content,
                usage: completion.usage,
            },
            key_status: Some(KeyStatus::Valid),
        },
        Ok(Err(error)) => Decision {
            outcome: failed(error.code, scrub(&error.message, &key)),
            key_status: error.key_verdict,
        },
    })
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
) -> Result<SecretString, Decision> {
    let no_key = || {
        Decision::from(failed(
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
                    Decision {
                        outcome: failed(
                            FailureCode::ProviderAuthFailed,
                            format!("the project's provider key cannot be decrypted ({error}); set it again with PUT /v1/project/llm"),
                        ),
                        key_status: Some(KeyStatus::Invalid),
                    }
                })
        }
    }
}

/// Providers sometimes quote the key they rejected; such a message never
/// leaves the worker with the key in it.
fn scrub(message: &str, key: &SecretString) -> String {
    let key = key.expose_secret();
    if key.len() < 8 {
        return message.to_owned();
    }
    let mut scrubbed = message.replace(key, "[redacted]");
    let head = &key[..key.len().min(12)];
    if scrubbed.contains(head) {
        scrubbed = scrubbed.replace(head, "[redacted]");
    }
    scrubbed
}

/// Stores what the call taught about a project's own key, when it changed.
async fn learn_key_status(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    learnt: Option<KeyStatus>,
) {
    let (KeySource::Project, Some(learnt), Some(stored)) =
        (choice.key_source, learnt, run.encrypted_key.as_deref())
    else {
        return;
    };
    if run.project_llm.key_status == Some(learnt) {
        return;
    }
    let result = match worker.pool.get().await {
        Ok(client) => record_key_status(&client, run.project_id, stored, learnt).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(()) => {
            tracing::info!(project_id = %run.project_id, key_status = %learnt, "provider key status learnt")
        }
        Err(error) => tracing::warn!(%error, "cannot record the provider key status"),
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

/// Stores the outcome, retrying through a short Postgres outage. True when this
/// worker's result is the run's result.
async fn record(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    outcome: &RunOutcome,
    started: Instant,
) -> bool {
    let give_up = Instant::now() + COMMIT_PATIENCE;
    let never = CancellationToken::new();
    let mut failures = 0;
    loop {
        let result = match worker.pool.get().await {
            Ok(client) => finish_run(&client, run, worker.id, choice, outcome).await,
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(true) => {
                log_outcome(outcome, started);
                return true;
            }
            Ok(false) => {
                tracing::warn!("result dropped: the run was cancelled or taken over meanwhile");
                return false;
            }
            Err(DbError::Unavailable(reason)) if Instant::now() < give_up => {
                failures += 1;
                tracing::warn!(%reason, "cannot store the result yet; retrying");
                pause(&never, backoff(failures)).await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot store the result; the run will be run again once its lease expires");
                return false;
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

async fn give_back(worker: &Worker, run: &ClaimedRun) {
    let result = match worker.pool.get().await {
        Ok(client) => hand_back_run(&client, run, worker.id).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(_) => {
            tracing::info!("run handed back to the queue");
            worker.relay_wake.notify_one();
        }
        Err(error) => tracing::warn!(%error, "cannot hand the run back; its lease will expire"),
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
    fn a_quoted_key_is_scrubbed_from_provider_messages() {
        let key = SecretString::from("sk-proj-abcdefghijklmnop");
        let message = "Incorrect API key provided: sk-proj-abcdefghijklmnop. Also sk-proj-abcd****";
        let scrubbed = scrub(message, &key);
        assert!(!scrubbed.contains("sk-proj-abcdefghijklmnop"), "{scrubbed}");
        assert!(!scrubbed.contains("sk-proj-abcd"), "{scrubbed}");
        assert_eq!(scrub("plain failure", &key), "plain failure");
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
}
