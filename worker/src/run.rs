//! Processing one claimed run: choose the provider and key, build the
//! conversation, call, and store the result under the lease guard.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use stewrd_shared::{
    db::{
        DbError,
        run::{ClaimedRun, EarlierRun, RunOutcome, earlier_runs, finish_run, hand_back_run},
    },
    llm::{LlmChoice, choose_llm},
    model::{FailureCode, KeySource, RunStatus},
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
    let outcome = tokio::select! {
        outcome = decide(worker, &run, &choice) => outcome,
        _ = hand_back.cancelled() => None,
    };
    match outcome {
        Some(outcome) => record(worker, &run, &choice, &outcome, started).await,
        None => give_back(worker, &run).await,
    }
}

/// What became of the run; `None` when it cannot be decided now (Postgres lost
/// while loading the history) and must be run again.
async fn decide(worker: &Worker, run: &ClaimedRun, choice: &LlmChoice) -> Option<RunOutcome> {
    let max_attempts = i32::try_from(worker.config.worker.max_attempts).unwrap_or(i32::MAX);
    if run.attempt > max_attempts {
        return Some(failed(
            FailureCode::DeliveryLimitExceeded,
            format!("the run was started {max_attempts} times without finishing"),
        ));
    }
    if run.seconds_left <= 0.0 {
        return Some(failed(
            FailureCode::ProviderTimeout,
            "the run's deadline passed before it could finish",
        ));
    }
    let Some(key) = provider_key(worker, choice) else {
        return Some(failed(
            FailureCode::NoProviderConfigured,
            "no provider key: set one for the project (PUT /v1/project/llm) \
             or a default (STEWRD_DEFAULT_API_KEY)",
        ));
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
        ),
        Ok(Ok(completion)) => RunOutcome::Succeeded {
            output: completion.content,
            usage: completion.usage,
        },
        Ok(Err(error)) => failed(error.code, error.message),
    })
}

fn failed(code: FailureCode, message: impl Into<String>) -> RunOutcome {
    RunOutcome::Failed {
        code,
        message: message.into(),
    }
}

/// The key for this run's choice; `None` when there is none anywhere.
fn provider_key(worker: &Worker, choice: &LlmChoice) -> Option<SecretString> {
    match choice.key_source {
        KeySource::Default => worker.config.default_llm.api_key.clone(),
        // Project keys are stored encrypted and decrypted here once BYOK lands;
        // until then a project never has a key, so this is unreachable.
        KeySource::Project => None,
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

/// Stores the outcome, retrying through a short Postgres outage.
async fn record(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
    outcome: &RunOutcome,
    started: Instant,
) {
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
                return;
            }
            Ok(false) => {
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
