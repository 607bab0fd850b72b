//! A project's tenant controls: its rate limit, caps and budgets.

/// A project's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub requests_per_minute: Option<i32>,
    pub max_concurrent_runs: Option<i32>,
    pub max_queued_runs: Option<i32>,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    /// US dollars per UTC day, at list (or the operator's) prices.
    pub usd_per_day: Option<f64>,
    /// US dollars per UTC calendar month.
    pub usd_per_month: Option<f64>,
}

impl Limits {
    /// Whether a budget of the project's own (tokens or dollars) is set.
    pub fn has_budget(&self) -> bool {
        self.tokens_per_day.is_some()
            || self.tokens_per_month.is_some()
            || self.usd_per_day.is_some()
            || self.usd_per_month.is_some()
    }
}
