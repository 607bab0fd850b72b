//! Tenant controls over HTTP: what a project used (`GET /v1/project/usage`, and
//! the operator's view of any project), and the operator setting its limits
//! (`PUT /v1/admin/projects/{id}/limits`, through the same action as the
//! dashboard and the CLI).

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{get, put},
};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::usage::{GroupBy, UsageLine, usage_report},
    domain::id::ProjectId,
    ops::{self, Given, LimitsInput},
};
use time::{
    Date, Duration, OffsetDateTime, format_description::BorrowedFormatItem,
    macros::format_description,
};

use super::{admin::project_id, project::ProjectOut};
use crate::{
    auth::{AdminAuth, ProjectAuth},
    error::ApiError,
    extract::{JsonBody, QueryParams},
    openapi::responses::{BadAdminToken, BadKey, BadRequest, NotFound, TooLarge, Unavailable},
    state::AppState,
};

/// The longest range a usage report covers, in days.
pub const MAX_USAGE_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
pub const DEFAULT_USAGE_DAYS: i64 = 30;

const DAY: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/project/usage", get(project_usage))
        .route("/v1/admin/projects/{id}/usage", get(admin_usage))
        .route("/v1/admin/projects/{id}/limits", put(put_limits))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// First UTC day, `YYYY-MM-DD` (default: 29 days before `to`).
    #[serde(default)]
    #[param(format = Date)]
    from: Option<String>,
    /// Last UTC day, included (default: today).
    #[serde(default)]
    #[param(format = Date)]
    to: Option<String>,
    /// `day` (default) or `model`.
    #[serde(default)]
    #[param(pattern = "^(day|model)$")]
    group_by: Option<String>,
}

/// A project's usage: one line per day or per model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageOut {
    data: Vec<UsageLineOut>,
}

/// One day's or one model's usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UsageLineOut {
    /// The UTC day (`group_by=day`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    date: Option<String>,
    /// The model (`group_by=model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Runs that ended (succeeded, failed or cancelled).
    runs: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    /// What the calls cost in US dollars: OpenRouter's reported cost, else the
    /// tokens at the model's price (`GET /v1/admin/prices`); `null` while no
    /// call had a known price.
    cost_usd: Option<f64>,
}

impl From<UsageLine> for UsageLineOut {
    fn from(line: UsageLine) -> Self {
        Self {
            date: line.date.and_then(|date| date.format(DAY).ok()),
            model: line.model,
            runs: line.runs,
            prompt_tokens: line.prompt_tokens,
            completion_tokens: line.completion_tokens,
            total_tokens: line.total_tokens,
            cost_usd: line.cost_usd,
        }
    }
}

/// A checked usage query.
#[derive(Clone, Copy, Debug)]
pub struct UsageQuery {
    pub from: Date,
    pub to: Date,
    pub group_by: GroupBy,
}

impl UsageQuery {
    /// The last `days` days, today included, by day.
    pub fn last_days(days: i64) -> Self {
        let to = OffsetDateTime::now_utc().date();
        Self {
            from: to - Duration::days(days - 1),
            to,
            group_by: GroupBy::Day,
        }
    }

    fn parse(params: &UsageParams) -> Result<Self, ApiError> {
        let day = |name: &'static str, text: &Option<String>| -> Result<Option<Date>, ApiError> {
            text.as_deref()
                .map(|text| {
                    Date::parse(text, DAY).map_err(|_| {
                        ApiError::invalid(
                            "invalid_value",
                            name,
                            format!("`{name}` must be a date as YYYY-MM-DD"),
                        )
                    })
                })
                .transpose()
        };
        let to = day("to", &params.to)?.unwrap_or_else(|| OffsetDateTime::now_utc().date());
        let from = day("from", &params.from)?.unwrap_or_else(|| {
            to.checked_sub(Duration::days(DEFAULT_USAGE_DAYS - 1))
                .unwrap_or(Date::MIN)
        });
        if from > to {
            return Err(ApiError::invalid(
                "invalid_value",
                "from",
                "`from` must not be after `to`",
            ));
        }
        if (to - from).whole_days() >= MAX_USAGE_DAYS {
            return Err(ApiError::invalid(
                "invalid_value",
                "from",
                format!("a report covers at most {MAX_USAGE_DAYS} days"),
            ));
        }
        let group_by = match params.group_by.as_deref() {
            None | Some("day") => GroupBy::Day,
            Some("model") => GroupBy::Model,
            Some(_) => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "group_by",
                    "`group_by` must be day or model",
                ));
            }
        };
        Ok(Self { from, to, group_by })
    }
}

/// The usage report of one project (the API's and the dashboard's).
pub async fn usage_of(
    state: &AppState,
    project_id: ProjectId,
    query: UsageQuery,
) -> Result<Vec<UsageLine>, ApiError> {
    let client = state.pool.get().await?;
    Ok(usage_report(&client, project_id, query.from, query.to, query.group_by).await?)
}

async fn report(
    state: &AppState,
    project_id: ProjectId,
    params: &UsageParams,
) -> Result<Json<UsageOut>, ApiError> {
    let query = UsageQuery::parse(params)?;
    let data = usage_of(state, project_id, query)
        .await?
        .into_iter()
        .map(UsageLineOut::from)
        .collect();
    Ok(Json(UsageOut { data }))
}

#[utoipa::path(
    get,
    path = "/v1/project/usage",
    tag = "project",
    summary = "What the project used, by UTC day or by model",
    params(UsageParams),
    responses((status = 200, description = "Usage", body = UsageOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn project_usage(
    State(state): State<AppState>,
    auth: ProjectAuth,
    QueryParams(params): QueryParams<UsageParams>,
) -> Result<Json<UsageOut>, ApiError> {
    report(&state, auth.project_id, &params).await
}

#[utoipa::path(
    get,
    path = "/v1/admin/projects/{id}/usage",
    tag = "admin",
    summary = "What a project used, by UTC day or by model",
    params(("id" = String, Path, description = "Project id"), UsageParams),
    responses((status = 200, description = "Usage", body = UsageOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn admin_usage(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<UsageParams>,
) -> Result<Json<UsageOut>, ApiError> {
    let project_id = project_id(&id)?;
    // A 404 for a project that does not exist, not an empty report.
    super::project::project_view(&state, project_id).await?;
    report(&state, project_id, &params).await
}

/// The body of `PUT …/limits`: every limit at once; a missing or `null` one is
/// no limit.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsIn {
    /// Model calls per minute, across all workers.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    requests_per_minute: Option<i64>,
    /// Runs in flight at once, across all workers.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    max_concurrent_runs: Option<i64>,
    /// Queued runs at most; a submit beyond it gets 429 `too_many_queued_runs`.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    max_queued_runs: Option<i64>,
    /// Tokens per UTC day; then 429 `token_budget_exhausted`.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000000000_i64)]
    tokens_per_day: Option<i64>,
    /// Tokens per UTC calendar month.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000000000_i64)]
    tokens_per_month: Option<i64>,
    /// US dollars per UTC day (cents allowed); then 429 `cost_budget_exhausted`.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    usd_per_day: Option<f64>,
    /// US dollars per UTC calendar month.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    usd_per_month: Option<f64>,
}

#[utoipa::path(
    put,
    path = "/v1/admin/projects/{id}/limits",
    tag = "admin",
    summary = "Set a project's limits: rate, caps and budgets in tokens and dollars",
    request_body = LimitsIn,
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 404, response = inline(NotFound)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn put_limits(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<LimitsIn>,
) -> Result<Json<ProjectOut>, ApiError> {
    let project_id = project_id(&id)?;
    let limits = LimitsInput::parse([
        Given::Number(body.requests_per_minute),
        Given::Number(body.max_concurrent_runs),
        Given::Number(body.max_queued_runs),
        Given::Number(body.tokens_per_day),
        Given::Number(body.tokens_per_month),
        Given::Amount(body.usd_per_day),
        Given::Amount(body.usd_per_month),
    ])?;
    let client = state.pool.get().await?;
    let row = ops::set_limits(&client, project_id, &limits).await?;
    state.auth_cache.forget_project(project_id);
    Ok(Json(ProjectOut::new(row, &state.config.default_llm)))
}
