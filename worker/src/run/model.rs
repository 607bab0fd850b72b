//! One model call of a run: the key's cool-down and the project's rate limit
//! first (a short wait here, a long one back to the queue), then the call, and a
//! failure turned into what to do next (retry later, or fail the run).

use std::time::{Duration, Instant};

use secrecy::SecretString;
use stewrd_shared::domain::usage::Usage;
use stewrd_shared::{
    db::run::{ClaimedRun, Requeue},
    domain::{
        llm::{LlmChoice, next_model},
        model::{FailureCode, KeyStatus},
    },
    runtime::metrics as names,
};

use super::{
    Decision, Verdict, failed, millis,
    stream::StreamSink,
    timing::{rate_limit, reserve, retry_delay, share_cooldown, wait_or_defer},
};
use crate::{
    Worker,
    provider::{ChatRequest, Completion, Retry},
};

/// Where the call stands in its run.
pub(super) struct CallContext<'a> {
    pub choice: &'a LlmChoice,
    pub key: &'a SecretString,
    /// The key's own cool-down (paused when the provider says the key is out
    /// of credit).
    pub key_id: &'a [u8; 16],
    /// The key's cool-down for this model (paused on a rate limit).
    pub model_key_id: &'a [u8; 16],
    /// The claim's first call may use the rate-limit slot it was requeued with.
    pub first: bool,
    /// When the run was claimed (its deadline counts from the claim's view).
    pub claimed: Instant,
    /// Claims since the run last made progress (this one included).
    pub attempts: i32,
}

/// Makes one model call (for step `step`, streamed if the run asked);
/// `Err` says what to do with the run instead.
pub(super) async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    request: &ChatRequest,
    context: &CallContext<'_>,
    step: i32,
) -> Result<Completion, Verdict> {
    wait_for_key(worker, context).await?;
    wait_for_slot(worker, run, context).await?;
    let seconds_left = run.lease.seconds_left - context.claimed.elapsed().as_secs_f64();
    if seconds_left <= 0.0 {
        return Err(failed(
            FailureCode::ProviderTimeout,
            "the run's deadline passed before it could finish",
        )
        .into());
    }
    let choice = context.choice;
    let mut sink = if run.request.agent.stream {
        Some(StreamSink::open(worker, run, step).await?)
    } else {
        None
    };
    let answer = {
        let mut on_text = |piece: &str| {
            if let Some(sink) = sink.as_mut() {
                sink.push(piece);
            }
        };
        let call = worker
            .provider
            .complete(choice.provider, context.key, request, &mut on_text);
        tokio::time::timeout(Duration::from_secs_f64(seconds_left), call).await
    };
    if let Some(sink) = sink {
        sink.finish().await;
    }
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
            return Err(failed(
                FailureCode::ProviderTimeout,
                "the run's deadline passed during the provider call",
            )
            .into());
        }
        Ok(Ok(completion)) => return Ok(counted(completion, request)),
        Ok(Err(error)) => error,
    };
    let settings = &worker.config.worker;
    let finish = Verdict::Finish(Decision {
        outcome: failed(error.code, error.message.clone()),
        key_status: error.key_verdict,
        last_step: None,
    });
    let Retry::After(asked) = error.retry else {
        return Err(fallback_after(run, error.code).unwrap_or(finish));
    };
    let delay = retry_delay(
        context.attempts,
        asked,
        settings.retry_base,
        settings.retry_max,
    );
    match error.code {
        FailureCode::ProviderRateLimited => {
            share_cooldown(worker, context.model_key_id, delay).await;
        }
        FailureCode::ProviderInsufficientCredits => {
            share_cooldown(worker, context.key_id, delay).await;
        }
        _ => {}
    }
    let attempts_left = context.attempts < i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
    if !(attempts_left && delay.as_secs_f64() < seconds_left) {
        return Err(fallback_after(run, error.code).unwrap_or(finish));
    }
    metrics::counter!(names::PROVIDER_RETRIES, "provider" => choice.provider.as_str(), "code" => error.code.as_str())
        .increment(1);
    tracing::warn!(
        code = %error.code,
        status = error.status,
        message = %error.message,
        retry_in_ms = millis(delay),
        "provider call failed; will retry"
    );
    Err(Verdict::Requeue(Requeue {
        delay,
        counts_as_attempt: true,
        rate_slot: None,
    }))
}

/// The run's next model, when it has one and the failure is one a fallback
/// answers: the model not found, or unavailable or rate limited after its
/// retries. Any other failure (a bad request, a bad key, no credit) would
/// fail on the next model too, and fails the run.
fn fallback_after(run: &ClaimedRun, code: FailureCode) -> Option<Verdict> {
    if !matches!(
        code,
        FailureCode::ProviderModelNotFound
            | FailureCode::ProviderUnavailable
            | FailureCode::ProviderRateLimited
    ) {
        return None;
    }
    let model = next_model(run.fallback_models(), run.progress.fallbacks)?;
    metrics::counter!(names::MODEL_FALLBACKS, "code" => code.as_str()).increment(1);
    Some(Verdict::FallBack {
        model: model.to_owned(),
    })
}

/// A completion with usage: when the provider reported none (a stream that
/// ended without its usage chunk), it is counted from the text, one token for
/// every 4 bytes (UTF-8) of the request and of the answer: over rather than
/// under for most text, so budgets stay enforced.
fn counted(mut completion: Completion, request: &ChatRequest) -> Completion {
    if completion.usage.is_some() {
        return completion;
    }
    let tokens = |bytes: usize| i32::try_from(bytes.div_ceil(4)).unwrap_or(i32::MAX);
    let prompt = serde_json::to_vec(&(&request.messages, &request.tools)).map_or(0, |v| v.len());
    let answer = completion.content.as_ref().map_or(0, String::len)
        + completion
            .tool_calls
            .as_ref()
            .map_or(0, |calls| calls.to_string().len());
    let (prompt_tokens, completion_tokens) = (tokens(prompt), tokens(answer));
    tracing::warn!(
        prompt_tokens,
        completion_tokens,
        "the provider reported no usage; counted from the text"
    );
    completion.usage = Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
        cost_usd: None,
    });
    completion
}

/// The key's shared cool-downs (after a 429 any worker saw): the key's own,
/// and the key's for this model.
async fn wait_for_key(worker: &Worker, context: &CallContext<'_>) -> Result<(), Verdict> {
    let paused = [context.key_id, context.model_key_id]
        .into_iter()
        .filter_map(|id| worker.cooldowns.paused_for(id))
        .max();
    let Some(wait) = paused else {
        return Ok(());
    };
    metrics::counter!(names::RATE_LIMIT_WAITS, "reason" => "key_cooldown").increment(1);
    match wait_or_defer(wait, None).await {
        None => Ok(()),
        Some(verdict) => {
            tracing::debug!(wait_ms = millis(wait), "key cooling down; run deferred");
            Err(verdict)
        }
    }
}

/// The project's rate-limit slot for this call.
async fn wait_for_slot(
    worker: &Worker,
    run: &ClaimedRun,
    context: &CallContext<'_>,
) -> Result<(), Verdict> {
    let Some(rpm) = rate_limit(worker, run) else {
        return Ok(());
    };
    let reserved = run.lease.slot_in.filter(|_| context.first);
    let wait = match reserved {
        Some(seconds) => Duration::from_secs_f64(seconds.max(0.0)),
        None => reserve(worker, run, rpm).await.map_err(|error| {
            tracing::warn!(%error, "cannot reserve a rate-limit slot");
            Verdict::HandBack
        })?,
    };
    if !wait.is_zero() {
        metrics::counter!(names::RATE_LIMIT_WAITS, "reason" => "project_limit").increment(1);
    }
    match wait_or_defer(wait, Some(wait)).await {
        None => Ok(()),
        Some(verdict) => {
            tracing::debug!(
                wait_ms = millis(wait),
                "over the project's rate limit; run deferred"
            );
            Err(verdict)
        }
    }
}

/// What a successful call taught about the key.
pub(super) const KEY_WORKS: Option<KeyStatus> = Some(KeyStatus::Valid);
