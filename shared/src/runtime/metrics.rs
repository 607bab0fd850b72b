//! Prometheus metrics: one recorder per process, the metric names in one place, and
//! label values kept bounded. No label ever carries a key, a prompt, an output or a
//! session id; the one user-chosen label value (the model name) is capped.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle;

pub const HTTP_REQUESTS: &str = "stewrd_http_requests_total";
pub const HTTP_DURATION: &str = "stewrd_http_request_duration_seconds";
pub const RUNS_SUBMITTED: &str = "stewrd_runs_submitted_total";
pub const RUNS_STARTED: &str = "stewrd_runs_started_total";
pub const RUNS_FINISHED: &str = "stewrd_runs_finished_total";
pub const RUNS_REQUEUED: &str = "stewrd_runs_requeued_total";
pub const LEASES_EXPIRED: &str = "stewrd_leases_expired_total";
pub const QUEUE_WAIT: &str = "stewrd_run_queue_wait_seconds";
pub const RUN_DURATION: &str = "stewrd_run_duration_seconds";
pub const PROVIDER_CALLS: &str = "stewrd_provider_calls_total";
pub const PROVIDER_RETRIES: &str = "stewrd_provider_retries_total";
pub const RATE_LIMIT_WAITS: &str = "stewrd_rate_limit_waits_total";
pub const RUNS_IN_FLIGHT: &str = "stewrd_worker_runs_in_flight";
pub const OUTBOX_DUE: &str = "stewrd_outbox_due";
pub const WEBHOOK_BACKLOG: &str = "stewrd_webhook_backlog";
pub const WEBHOOK_DELIVERIES: &str = "stewrd_webhook_deliveries_total";
pub const WAITING_CLIENTS: &str = "stewrd_api_waiting_clients";
pub const STEPS: &str = "stewrd_steps_total";
pub const STEP_DURATION: &str = "stewrd_step_duration_seconds";
pub const RUNS_PAUSED: &str = "stewrd_runs_paused_total";
pub const RUNS_AWAITING_OUTPUTS: &str = "stewrd_runs_awaiting_tool_outputs";
/// Submits and runs refused by a project's limit, by `reason` (a fixed set:
/// `too_many_queued_runs`, `tokens_per_day`, `tokens_per_month`,
/// `default_key_tokens_per_day`, `usd_per_day`, `usd_per_month`,
/// `max_cost_usd`, `price_unknown`) and `stage` (`submit`, `claim`, `step`).
pub const LIMIT_REFUSALS: &str = "stewrd_limit_refusals_total";
/// Tokens the provider reported, by `type` (`prompt`, `completion`). Per
/// project is in `GET /v1/admin/projects/{id}/usage`, never a label.
pub const TOKENS: &str = "stewrd_tokens_total";
/// Claims that found a project at its `max_concurrent_runs` only, or nothing due.
pub const EMPTY_CLAIMS: &str = "stewrd_empty_claims_total";
/// Runs claimed, by the `statement` that claimed them: `batch` (one statement
/// for all the messages a worker had at hand) or `single`.
pub const CLAIMS: &str = "stewrd_claims_total";
/// Commits of coalesced writes, by `write` (`result`, `submit`): fewer than
/// the writes when concurrent ones share a commit (see `db::coalesce`).
pub const COMMITS: &str = "stewrd_commits_total";
/// MCP sessions opened (`initialize` requests): about one per server and
/// worker, however many calls.
pub const MCP_INITIALIZES: &str = "stewrd_mcp_initializes_total";
/// MCP tool calls, by `outcome`: `succeeded`, `failed` (an error the model
/// is given), `unknown` (sent, answer lost, not repeated).
pub const MCP_CALLS: &str = "stewrd_mcp_calls_total";
/// Runs that went on with their next fallback model, by the failure `code`
/// of the model they left.
pub const MODEL_FALLBACKS: &str = "stewrd_model_fallbacks_total";

/// Latency buckets (seconds) for every histogram: from half a millisecond to the
/// longest provider calls.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 1800.0,
];
/// Distinct model names reported before the rest are counted as `other`.
const MAX_MODELS: usize = 100;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once) and keeps its histograms trimmed.
/// Must be called inside a tokio runtime.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .expect("the Prometheus recorder is installed once per process");
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// The model name as a label value: the first hundred names seen are reported as
/// themselves, later ones as `other`, so a client cannot blow up the series count.
pub fn model_label(model: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let clean: String = model
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._/:".contains(*c))
        .take(64)
        .collect();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(&clean) || (seen.len() < MAX_MODELS && seen.insert(clean.clone())) {
        clean
    } else {
        "other".to_owned()
    }
}

/// A provider answer as a label value: `2xx`, `4xx`, `5xx`, or `none` (no answer).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_cleaned_and_capped() {
        assert_eq!(model_label("openai/gpt-4o"), "openai/gpt-4o");
        assert_eq!(model_label("bad\\nname {x}"), "badnnamex");
        for i in 0..200 {
            model_label(&format!("m{i}"));
        }
        assert_eq!(model_label("brand-new-model"), "other");
        assert_eq!(model_label("openai/gpt-4o"), "openai/gpt-4o");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "none");
    }
}
