//! A project's tenant controls: its rate limit, caps and token budgets.

/// A project's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub requests_per_minute: Option<i32>,
    pub max_concurrent_runs: Option<i32>,
    pub max_queued_runs: Option<i32>,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
}

impl Limits {
    /// Whether a token budget of the project's own is set.
    pub fn has_budget(&self) -> bool {
        self.tokens_per_day.is_some() || self.tokens_per_month.is_some()
    }
}
