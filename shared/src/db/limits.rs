//! A project's tenant controls as stored (`projects` columns) and the questions
//! asked of them: is a token budget used up, is the queue full. The claim's own
//! checks (fair order, `max_concurrent_runs`) live in `stewrd_claim_next`.

use tokio_postgres::Row;

use super::{DbError, GenericClient};
use crate::domain::{
    id::{ProjectId, RunId},
    limits::Limits,
    model::{Budget, KeySource, Provider},
};

/// The columns [`limits`] reads.
pub const LIMIT_COLUMNS: &str = "rate_limit_rpm, max_concurrent_runs, max_queued_runs, \
     tokens_per_day, tokens_per_month, usd_per_day, usd_per_month";

/// Reads a project's limits from the columns of [`LIMIT_COLUMNS`].
pub fn limits(row: &Row) -> Result<Limits, tokio_postgres::Error> {
    Ok(Limits {
        requests_per_minute: row.try_get("rate_limit_rpm")?,
        max_concurrent_runs: row.try_get("max_concurrent_runs")?,
        max_queued_runs: row.try_get("max_queued_runs")?,
        tokens_per_day: row.try_get("tokens_per_day")?,
        tokens_per_month: row.try_get("tokens_per_month")?,
        usd_per_day: row.try_get("usd_per_day")?,
        usd_per_month: row.try_get("usd_per_month")?,
    })
}

/// What a submit must check before storing a run, read with the API key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Admission {
    pub max_queued_runs: Option<i32>,
    /// The project has a budget of its own (tokens or dollars).
    pub budgeted: bool,
}

impl Admission {
    /// Reads `max_queued_runs` and `budgeted` from a row.
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            max_queued_runs: row.try_get("max_queued_runs")?,
            budgeted: row.try_get("budgeted")?,
        })
    }
}

/// The select-list expressions `Admission::from_row` reads, on `projects p`.
pub const ADMISSION_COLUMNS: &str = "p.max_queued_runs, \
     (p.tokens_per_day IS NOT NULL OR p.tokens_per_month IS NOT NULL \
      OR p.usd_per_day IS NOT NULL OR p.usd_per_month IS NOT NULL) AS budgeted";

/// Which budget of the project is used up, if any. `default_key_cap` is the
/// operator's daily cap on the default key; it applies only while the project
/// has no key of its own.
pub async fn exhausted_budget(
    client: &impl GenericClient,
    project_id: ProjectId,
    default_key_cap: Option<i64>,
) -> Result<Option<Budget>, DbError> {
    let statement = client
        .prepare_cached("SELECT stewrd_exhausted_budget($1, $2) AS budget")
        .await?;
    let row = client
        .query_one(&statement, &[&project_id, &default_key_cap])
        .await?;
    let budget: Option<String> = row.try_get("budget")?;
    Ok(budget.as_deref().and_then(Budget::parse))
}

/// Takes the project's submit lock (until the transaction ends) and says
/// whether its queue already holds `max` runs. Submits of one project with
/// `max_queued_runs` take turns here, so the count is never exceeded; claims
/// only lower it and need no lock.
pub async fn queue_is_full(
    transaction: &impl GenericClient,
    project_id: ProjectId,
    max: i32,
) -> Result<bool, DbError> {
    let lock = transaction
        .prepare_cached("SELECT pg_advisory_xact_lock(1937011057, hashtext($1::uuid::text))")
        .await?;
    transaction.execute(&lock, &[&project_id]).await?;
    // A new statement, so a new snapshot: it sees every submit that held the lock.
    let count = transaction
        .prepare_cached(
            "SELECT count(*) AS queued FROM runs WHERE project_id = $1 AND status = 'queued'",
        )
        .await?;
    let queued: i64 = transaction
        .query_one(&count, &[&project_id])
        .await?
        .try_get("queued")?;
    Ok(queued >= i64::from(max))
}

/// What reserving a model call's worst case against the budgets gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: the call may be made.
    Reserved,
    /// The call cannot fit in this budget even alone: it is not made.
    Exhausted(Budget),
    /// It fits once calls in flight of other runs are counted: try later.
    Wait(Budget),
    /// A budget in dollars applies and the model has no known price.
    PriceUnknown,
}

/// One model call about to be made, as [`reserve_call`] reserves it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub project: ProjectId,
    pub run: RunId,
    /// Its worst case: the prompt's tokens (over-estimated) and its output limit.
    pub prompt_tokens: i64,
    pub output_tokens: i64,
    pub key_source: KeySource,
    /// The operator's daily cap on the default key, when it applies.
    pub default_key_cap: Option<i64>,
    /// Whose price it is charged at.
    pub provider: Provider,
    pub model: &'a str,
}

/// Reserves `call`'s worst case against its project's budgets (tokens and
/// dollars) and its run's `max_cost_usd`, across workers
/// (`stewrd_reserve_call`); its counted usage settles it.
pub async fn reserve_call(
    client: &impl GenericClient,
    call: Call<'_>,
) -> Result<Reservation, DbError> {
    let statement = client
        .prepare_cached("SELECT stewrd_reserve_call($1, $2, $3, $4, $5, $6, $7, $8) AS refused")
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &call.project,
                &call.run,
                &call.prompt_tokens,
                &call.output_tokens,
                &call.key_source.as_str(),
                &call.default_key_cap,
                &call.provider.as_str(),
                &call.model,
            ],
        )
        .await?;
    let refused: Option<String> = row.try_get("refused")?;
    let budget = |name: &str| {
        Budget::parse(name).ok_or(DbError::Corrupt {
            column: "stewrd_reserve_call",
        })
    };
    Ok(match refused.as_deref() {
        None => Reservation::Reserved,
        Some("price_unknown") => Reservation::PriceUnknown,
        Some(text) => match text.strip_prefix("wait:") {
            Some(name) => Reservation::Wait(budget(name)?),
            None => Reservation::Exhausted(budget(text)?),
        },
    })
}
