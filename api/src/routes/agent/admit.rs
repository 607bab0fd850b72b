//! What a project's limits say about a new run, before it is stored: a used-up
//! budget (tokens or dollars) or a full queue refuses it with 429 and
//! `Retry-After`.

use std::time::Duration;

use stewrd_shared::{
    db::{
        GenericClient,
        limits::{exhausted_budget, queue_is_full},
    },
    domain::{
        llm::LlmChoice,
        model::{Budget, KeySource},
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;

use crate::{auth::ProjectAuth, error::ApiError, state::AppState};

/// How soon a client refused for a full queue is told to try again.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(2);

/// Whether this submit must run in a transaction: its queue check takes the
/// project's submit lock, which lasts until the commit.
pub(super) fn needs_lock(auth: &ProjectAuth) -> bool {
    auth.admission.max_queued_runs.is_some()
}

/// Refuses the run when a budget is used up or the queue is full; nothing is
/// asked of Postgres for a project without limits.
pub(super) async fn admit(
    client: &impl GenericClient,
    state: &AppState,
    auth: &ProjectAuth,
    choice: &LlmChoice,
) -> Result<(), ApiError> {
    let default_cap = state
        .config
        .default_llm
        .tokens_per_day
        .filter(|_| choice.key_source == KeySource::Default);
    if (auth.admission.budgeted || default_cap.is_some())
        && let Some(budget) = exhausted_budget(client, auth.project_id, default_cap).await?
    {
        return Err(budget_refusal(budget));
    }
    if let Some(max) = auth.admission.max_queued_runs
        && queue_is_full(client, auth.project_id, max).await?
    {
        metrics::counter!(names::LIMIT_REFUSALS, "reason" => "too_many_queued_runs", "stage" => "submit").increment(1);
        return Err(ApiError::over_limit(
            "too_many_queued_runs",
            format!(
                "the project already has {max} queued runs, its max_queued_runs; retry when some have started"
            ),
            QUEUE_FULL_RETRY,
        ));
    }
    Ok(())
}

fn budget_refusal(budget: Budget) -> ApiError {
    metrics::counter!(names::LIMIT_REFUSALS, "reason" => budget.limit_name(), "stage" => "submit")
        .increment(1);
    let now = OffsetDateTime::now_utc();
    let wait = (budget.renews_at(now) - now).unsigned_abs();
    ApiError::over_limit(
        budget.failure_code().as_str(),
        budget.exhausted_message(),
        wait,
    )
}
