//! The webhook dispatcher: takes due events from Postgres (the schedule lives
//! there, not in timers), signs and sends them, logs every attempt, and
//! schedules the next one: about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then every
//! few hours for 24 h, honoring `Retry-After` on 429 and 503. Any 2xx delivers;
//! 410 Gone stops the event.

pub(crate) mod send;

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use stewrd_shared::{
    db::{
        DbError, GenericClient,
        project::{ensure_webhook_secret, webhook_secrets},
        session::get_session,
        webhook::{
            AttemptResult, DueEvent, EventFate, freeze_payload, message_id, record_attempt,
            take_due_events,
        },
    },
    domain::id::ProjectId,
    runtime::config::WebhookSettings,
    secrets::{
        crypto::SecretField,
        signature::{generate_secret, sign},
    },
    view::{Detail, SessionOut},
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use send::WebhookClient;

use crate::Worker;

/// Attempts in flight per worker process.
const CONCURRENCY: usize = 64;
/// How often an idle dispatcher looks for due retries without being woken.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Largest body sent; a bigger output travels as a link to the session.
const MAX_BODY_BYTES: usize = 20 * 1024;

/// Sends due webhooks until `shutdown`.
pub(crate) async fn dispatch(
    worker: Arc<Worker>,
    client: WebhookClient,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let settings = &worker.config.webhook;
    // An attempt never outlives its lease: if this process dies, the event is due
    // again with the same id once the lease is over.
    let lease = settings.timeout + Duration::from_secs(5);
    loop {
        let free = permits.available_permits();
        let due = if free == 0 {
            Vec::new()
        } else {
            worker
                .db(|db| async move { take_due_events(&db, free as i64, lease).await })
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "cannot take due webhook events");
                    Vec::new()
                })
        };
        let full = due.len() == free && free > 0;
        for event in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let worker = worker.clone();
            let client = client.clone();
            tokio::spawn(async move {
                deliver(&worker, &client, event).await;
                drop(permit);
            });
        }
        if !full {
            tokio::select! {
                _ = worker.webhook_wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        } else if shutdown.is_cancelled() {
            return;
        }
    }
}

/// One attempt of one event. A failure to record it leaves the event leased:
/// it is tried again, with the same id, when the lease ends.
async fn deliver(worker: &Worker, client: &WebhookClient, event: DueEvent) {
    let span = tracing::info_span!(
        "webhook",
        event_id = %message_id(event.id),
        session_id = %event.session_id,
        run_id = %event.run_id,
        attempt = event.attempt,
    );
    if let Err(error) = attempt(worker, client, &event)
        .instrument(span.clone())
        .await
    {
        span.in_scope(
            || tracing::warn!(%error, "webhook attempt not recorded; it will be tried again"),
        );
    }
}

async fn attempt(worker: &Worker, client: &WebhookClient, event: &DueEvent) -> Result<(), DbError> {
    let db = worker.pool.get().await?;
    let started_at = OffsetDateTime::now_utc();
    let body = match &event.payload {
        Some(body) => body.clone(),
        None => match build_payload(worker, &db, event).await? {
            Some(body) => freeze_payload(&db, event.id, &body).await?,
            None => {
                let gone = failed_attempt("the session no longer exists", started_at);
                return record_attempt(&db, event, &gone, EventFate::Failed).await;
            }
        },
    };
    let timestamp = started_at.unix_timestamp();
    let id = message_id(event.id);
    let signatures = signatures(worker, &db, event.project_id, &id, timestamp, &body).await?;
    if signatures.is_empty() {
        // Never send unsigned: retry once the operator restores the master key.
        let unsigned = failed_attempt(
            "cannot sign: the project's webhook secret cannot be decrypted",
            started_at,
        );
        let fate = EventFate::RetryIn(next_wait(&worker.config.webhook, event.attempt, None));
        return record_attempt(&db, event, &unsigned, fate).await;
    }
    drop(db);
    let id = message_id(event.id);
    let sent = client
        .post(send::Signed {
            url: &event.url,
            id: &id,
            timestamp,
            signatures: &signatures,
            body,
            idempotency_key: None,
            timeout: None,
            max_body: send::MAX_RESPONSE_BYTES,
        })
        .await;
    let (result, fate) = judge(&worker.config.webhook, event, sent, started_at);
    let db = worker.pool.get().await?;
    record_attempt(&db, event, &result, fate).await?;
    let outcome = match fate {
        EventFate::Delivered => "delivered",
        EventFate::RetryIn(_) => "retry",
        EventFate::Stopped => "stopped",
        EventFate::Failed => "failed",
    };
    metrics::counter!(stewrd_shared::runtime::metrics::WEBHOOK_DELIVERIES, "outcome" => outcome)
        .increment(1);
    match fate {
        EventFate::Delivered => tracing::info!(status = result.status_code, "webhook delivered"),
        EventFate::RetryIn(wait) => tracing::warn!(
            status = result.status_code,
            error = result.error.as_deref().unwrap_or(""),
            retry_in_ms = wait.as_millis() as u64,
            "webhook not delivered; will retry"
        ),
        EventFate::Stopped => tracing::warn!("webhook receiver answered 410 Gone; event stopped"),
        EventFate::Failed => tracing::error!(
            error = result.error.as_deref().unwrap_or(""),
            "webhook retries exhausted"
        ),
    }
    Ok(())
}

fn failed_attempt(error: &str, started_at: OffsetDateTime) -> AttemptResult {
    AttemptResult {
        status_code: None,
        error: Some(error.to_owned()),
        duration_ms: 0,
        started_at,
    }
}

/// The fate of an attempt, and its delivery-log line.
fn judge(
    settings: &WebhookSettings,
    event: &DueEvent,
    sent: Result<send::Answer, send::Failure>,
    started_at: OffsetDateTime,
) -> (AttemptResult, EventFate) {
    let (status, retry_after, error, elapsed) = match sent {
        Ok(answer) => {
            let error = (!(200..300).contains(&answer.status))
                .then(|| format!("HTTP {}: {}", answer.status, answer.snippet()));
            (
                Some(answer.status),
                answer.retry_after,
                error,
                answer.elapsed,
            )
        }
        Err(failure) => (None, None, Some(failure.error), failure.elapsed),
    };
    let fate = match status {
        Some(200..=299) => EventFate::Delivered,
        Some(410) => EventFate::Stopped,
        _ => {
            let honored = retry_after.filter(|_| matches!(status, Some(429 | 503)));
            let wait = next_wait(settings, event.attempt, honored);
            if Duration::from_secs_f64(event.age_secs.max(0.0)) + wait > settings.window {
                EventFate::Failed
            } else {
                EventFate::RetryIn(wait)
            }
        }
    };
    let result = AttemptResult {
        status_code: status.map(i32::from),
        error,
        duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
        started_at,
    };
    (result, fate)
}

/// The schedule's wait after attempt `attempt` (its last step repeats), with ±10%
/// jitter; a receiver's `Retry-After` wins when longer.
fn next_wait(settings: &WebhookSettings, attempt: i32, retry_after: Option<Duration>) -> Duration {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(0);
    let step = settings
        .schedule
        .get(index)
        .or(settings.schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(5));
    let jittered = step.mul_f64(0.9 + 0.2 * rand::random::<f64>());
    retry_after.map_or(jittered, |wait| wait.max(jittered))
}

/// The body: the event type, its time, and the session as it stood when the run
/// ended (later runs left out), without messages. Too big: the output becomes a link.
async fn build_payload(
    worker: &Worker,
    db: &impl GenericClient,
    event: &DueEvent,
) -> Result<Option<String>, DbError> {
    let Some(mut record) = get_session(db, event.project_id, event.session_id).await? else {
        return Ok(None);
    };
    if let Some(end) = record.runs.iter().position(|run| run.id == event.run_id) {
        record.runs.truncate(end + 1);
    }
    let Some(session) = SessionOut::from_record(&record, Detail::WithoutMessages) else {
        return Ok(None);
    };
    let timestamp = event
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut payload = json!({"type": event.kind, "timestamp": timestamp, "data": session});
    let mut body = payload.to_string();
    if body.len() > MAX_BODY_BYTES {
        payload["data"]["output"] = Value::Null;
        payload["data"]["output_truncated"] = Value::Bool(true);
        payload["data"]["url"] = Value::String(format!(
            "{}/v1/sessions/{}",
            worker.config.public_url, event.session_id
        ));
        body = payload.to_string();
    }
    if body.len() > MAX_BODY_BYTES {
        payload["data"]["metadata"] = json!({});
        payload["data"]["metadata_truncated"] = Value::Bool(true);
        body = payload.to_string();
    }
    Ok(Some(body))
}

/// `v1,…` with the current secret, and with the previous one during its overlap.
/// Empty when no secret can be decrypted.
pub(crate) async fn signatures(
    worker: &Worker,
    db: &impl GenericClient,
    project_id: ProjectId,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, DbError> {
    let secrets = signing_secrets(worker, db, project_id).await?;
    Ok(sign_with(&secrets, id, timestamp, body))
}

/// The project's webhook secrets, decrypted: the current one (made now if the
/// project has none yet), and the previous one during its overlap.
pub(crate) async fn signing_secrets(
    worker: &Worker,
    db: &impl GenericClient,
    project_id: ProjectId,
) -> Result<Vec<SecretString>, DbError> {
    let (current, previous) = webhook_secrets(db, project_id).await?.unwrap_or_default();
    let current = match current {
        Some(current) => current,
        None => {
            let fresh = generate_secret();
            let encrypted = worker.master_keys.encrypt(
                fresh.expose_secret().as_bytes(),
                project_id,
                SecretField::WebhookSecret,
            );
            ensure_webhook_secret(db, project_id, &encrypted).await?
        }
    };
    let mut out = Vec::new();
    for stored in [Some(current), previous].into_iter().flatten() {
        match worker
            .master_keys
            .decrypt_text(&stored, project_id, SecretField::WebhookSecret)
        {
            Ok(secret) => out.push(secret),
            Err(error) => {
                tracing::error!(%error, project_id = %project_id, "cannot decrypt a webhook secret");
            }
        }
    }
    Ok(out)
}

/// The `webhook-signature` header for `body` under every secret.
pub(crate) fn sign_with(secrets: &[SecretString], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body.as_bytes()).ok())
        .collect::<Vec<_>>()
        .join(" ")
}
