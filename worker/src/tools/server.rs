//! One call of a project's server tool: a POST signed as a webhook is (the
//! project's secret, Standard Webhooks headers), with `Idempotency-Key:
//! <run_id>:<tool_call_id>` on every attempt, so a call repeated after a crash is
//! recognisable. 5xx, 429, a timeout or a refused connection is tried again
//! (`STEWRD_TOOL_RETRY_SCHEDULE`, honoring `Retry-After`), 4 attempts in all;
//! any other answer is final. No redirects; the answer is read up to 64 KiB.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stewrd_shared::{
    db::{DbError, run::ClaimedRun},
    domain::{
        agent::{MAX_TOOL_OUTPUT_BYTES, MAX_TOOL_RETRY_AFTER, ServerTool, ToolCall, error_output},
        model::Outcome,
    },
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::sync::OnceCell;

use super::{Answer, artifact};
use crate::{
    Worker,
    webhook::{WebhookClient, send, sign_with, signing_secrets},
};

/// Attempts of one call, the first included.
const ATTEMPTS: i32 = 4;

/// The project's signing secrets, read and decrypted once per claim, at its
/// first server tool call (not once per call: a step costs no extra query).
#[derive(Default)]
pub(super) struct Signing {
    secrets: OnceCell<Vec<SecretString>>,
}

impl Signing {
    async fn secrets(&self, worker: &Worker, run: &ClaimedRun) -> Result<&[SecretString], DbError> {
        let secrets = self
            .secrets
            .get_or_try_init(|| {
                worker.db(
                    |client| async move { signing_secrets(worker, &client, run.project_id).await },
                )
            })
            .await?;
        Ok(secrets)
    }
}

/// The `webhook-id` of a call: the same for every attempt of it.
fn message_id(run: &ClaimedRun, call: &ToolCall) -> String {
    let digest = Sha256::digest(format!("{}:{}", run.id, call.id).as_bytes());
    format!("msg_{}", stewrd_shared::domain::text::hex(&digest[..16]))
}

/// What every attempt of one call shares.
struct Target<'a> {
    worker: &'a Worker,
    run: &'a ClaimedRun,
    tool: &'a ServerTool,
    signing: &'a Signing,
    /// The `webhook-id`.
    id: String,
    idempotency_key: String,
}

/// Calls the tool, retrying what may succeed on another try.
pub(super) async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    tool: &ServerTool,
    call: &ToolCall,
    arguments: Value,
    signing: &Signing,
) -> Answer {
    let target = Target {
        worker,
        run,
        tool,
        signing,
        id: message_id(run, call),
        idempotency_key: format!("{}:{}", run.id, call.id),
    };
    let data = json!({
        "session_id": run.session_id, "run_id": run.id, "tool_call_id": call.id,
        "name": call.name, "arguments": arguments, "metadata": run.request.session_metadata,
    });
    let schedule = &worker.config.worker.tool_retry_schedule;
    let budget = time_budget(tool, schedule);
    let started = Instant::now();
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        let now = OffsetDateTime::now_utc();
        let body = json!({"type": "tool.call", "timestamp": now.format(&Rfc3339).unwrap_or_default(), "data": data})
            .to_string();
        let attempted = attempt_once(&target, now, body).await;
        let retry_after = match attempted {
            Attempt::Done { text, outcome } => {
                return Answer::Output {
                    text,
                    outcome,
                    attempts: attempt,
                    files: Vec::new(),
                };
            }
            Attempt::Answered(answer) => {
                let given = artifact::given(
                    worker,
                    run,
                    call,
                    &tool.name,
                    artifact::Answer {
                        body: &answer.body,
                        content_type: answer.content_type.as_deref(),
                        filename: answer.filename.as_deref(),
                        cut: answer.cut,
                    },
                )
                .await;
                return Answer::Output {
                    text: given.output,
                    outcome: Outcome::Succeeded,
                    attempts: attempt,
                    files: given.files,
                };
            }
            Attempt::Retry { error, after } => {
                last_error = error;
                after
            }
        };
        if attempt == ATTEMPTS {
            break;
        }
        let step = scheduled_wait(schedule, attempt);
        let wait = retry_after.map_or(step, |asked| asked.min(MAX_TOOL_RETRY_AFTER).max(step));
        if started.elapsed() + wait > budget {
            return Answer::Output {
                text: error_output(&format!(
                    "the tool asked to be called again in {} s, past this call's time budget \
                     of {} s; last: {last_error}",
                    wait.as_secs(),
                    budget.as_secs()
                )),
                outcome: Outcome::Failed,
                attempts: attempt,
                files: Vec::new(),
            };
        }
        tracing::warn!(tool = %tool.name, attempt, error = %last_error, retry_in_ms = wait.as_millis() as u64, "server tool call failed; will retry");
        tokio::time::sleep(wait).await;
    }
    Answer::Output {
        text: error_output(&format!(
            "the tool failed {ATTEMPTS} times; last: {last_error}"
        )),
        outcome: Outcome::Failed,
        attempts: ATTEMPTS,
        files: Vec::new(),
    }
}

/// How long one call may take, attempts and the waits between them together:
/// every attempt its timeout, and the schedule's waits. A `Retry-After` asking
/// for more than what is left ends the call instead of holding a worker's slot.
fn time_budget(tool: &ServerTool, schedule: &[Duration]) -> Duration {
    let attempts = u32::try_from(ATTEMPTS).unwrap_or(4);
    let waits = (1..ATTEMPTS)
        .map(|attempt| scheduled_wait(schedule, attempt))
        .sum::<Duration>();
    Duration::from_secs(u64::from(tool.timeout_secs)) * attempts + waits
}

/// The schedule's wait after attempt `attempt` (its last step repeats): every
/// kind of tool call that is tried again waits by it.
pub(super) fn scheduled_wait(schedule: &[Duration], attempt: i32) -> Duration {
    schedule
        .get(usize::try_from(attempt - 1).unwrap_or(0))
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(1))
}

enum Attempt {
    /// A final answer: the output and how the call ended.
    Done { text: String, outcome: Outcome },
    /// A 2xx answer: its body becomes the model's output (or a file).
    Answered(send::Answer),
    Retry {
        error: String,
        after: Option<Duration>,
    },
}

async fn attempt_once(target: &Target<'_>, now: OffsetDateTime, body: String) -> Attempt {
    let Target {
        worker,
        run,
        tool,
        signing,
        id,
        idempotency_key,
    } = target;
    let timestamp = now.unix_timestamp();
    let signatures = match signing.secrets(worker, run).await {
        Ok(secrets) if !secrets.is_empty() => sign_with(secrets, id, timestamp, &body),
        Ok(_) => {
            return retry(
                "cannot sign: the project's webhook secret cannot be decrypted",
                None,
            );
        }
        Err(error) => return retry(&format!("cannot sign: {error}"), None),
    };
    let client: &WebhookClient = &worker.hooks;
    let sent = client
        .post(send::Signed {
            url: &tool.url,
            id,
            timestamp,
            signatures: &signatures,
            body,
            idempotency_key: Some(idempotency_key),
            timeout: Some(Duration::from_secs(u64::from(tool.timeout_secs))),
            // The whole answer when it may become a file, else what the model gets.
            max_body: if worker.files.is_some() {
                usize::try_from(worker.config.files.max_bytes).unwrap_or(usize::MAX)
            } else {
                MAX_TOOL_OUTPUT_BYTES
            },
        })
        .await;
    match sent {
        Ok(answer) if (200..300).contains(&answer.status) => Attempt::Answered(answer),
        Ok(answer) if answer.status == 429 || answer.status >= 500 => {
            let error = format!("HTTP {}: {}", answer.status, answer.snippet());
            retry(&error, answer.retry_after)
        }
        Ok(answer) => Attempt::Done {
            text: error_output(&format!(
                "the tool answered HTTP {}: {}",
                answer.status,
                answer.snippet()
            )),
            outcome: Outcome::Failed,
        },
        // The SSRF guard's refusal will not change on another try.
        Err(failure) if failure.refused => Attempt::Done {
            text: error_output(&failure.error),
            outcome: Outcome::Failed,
        },
        Err(failure) => retry(&failure.error, None),
    }
}

fn retry(error: &str, after: Option<Duration>) -> Attempt {
    Attempt::Retry {
        error: error.to_owned(),
        after,
    }
}
