//! A project's tenant controls on its dashboard page: the limits form (saved
//! through the same operator action as `PUT /v1/admin/projects/{id}/limits`)
//! and a chart of the tokens (and dollars) it used per day, drawn here as SVG so the page
//! needs no script and no outside resource.

use std::fmt::Write;

use stewrd_shared::{db::usage::UsageLine, domain::limits::Limits};
use time::{Date, Duration};

use super::html::esc;
use crate::routes::project::ProjectOut;

/// Days the chart shows, today the last.
pub(super) const CHART_DAYS: i64 = 30;

const WIDTH: i64 = 600;
const HEIGHT: i64 = 160;

pub(super) fn limits_card(view: &ProjectOut, csrf: &str) -> String {
    let Limits {
        requests_per_minute,
        max_concurrent_runs,
        max_queued_runs,
        tokens_per_day,
        tokens_per_month,
        usd_per_day,
        usd_per_month,
    } = view.limits;
    let field = |name: &str, label: &str, value: Option<i64>| {
        format!(
            r#"<div><label for="{name}">{label}</label><input id="{name}" name="{name}" type="number" min="1" value="{}" placeholder="none"></div>"#,
            value.map(|n| n.to_string()).unwrap_or_default()
        )
    };
    format!(
        r#"<div class="card" id="limits"><h2>Limits</h2><p class="muted">Empty: no limit (requests per minute: the default).</p>
<form method="post" action="/dashboard/projects/{id}/limits" class="row">{csrf}
{rpm}{concurrent}{queued}{day}{month}{usd_day}{usd_month}<button type="submit" id="limits-save">Save</button></form></div>
"#,
        id = view.id,
        rpm = field(
            "requests_per_minute",
            "Requests per minute",
            requests_per_minute.map(i64::from)
        ),
        concurrent = field(
            "max_concurrent_runs",
            "Runs at once",
            max_concurrent_runs.map(i64::from)
        ),
        queued = field(
            "max_queued_runs",
            "Queued runs",
            max_queued_runs.map(i64::from)
        ),
        day = field("tokens_per_day", "Tokens per day (UTC)", tokens_per_day),
        month = field(
            "tokens_per_month",
            "Tokens per month (UTC)",
            tokens_per_month
        ),
        usd_day = dollars("usd_per_day", "Dollars per day (UTC)", usd_per_day),
        usd_month = dollars("usd_per_month", "Dollars per month (UTC)", usd_per_month),
    )
}

/// A budget in dollars: cents allowed.
fn dollars(name: &str, label: &str, value: Option<f64>) -> String {
    format!(
        r#"<div><label for="{name}">{label}</label><input id="{name}" name="{name}" type="number" min="0.01" step="0.01" value="{}" placeholder="none"></div>"#,
        value.map(|n| n.to_string()).unwrap_or_default()
    )
}

/// Tokens per day over the last [`CHART_DAYS`] days ending `today`: one bar a
/// day (an empty day is a gap), each with its figures as a tooltip.
pub(super) fn usage_card(lines: &[UsageLine], today: Date, limits: &Limits) -> String {
    let first = today - Duration::days(CHART_DAYS - 1);
    let line = |day: Date| lines.iter().find(|line| line.date == Some(day));
    let tokens = |day: Date| line(day).map_or(0, |line| line.total_tokens);
    let spent = |day: Date| {
        line(day)
            .and_then(|line| line.cost_usd)
            .map(|c| format!(", ${c:.4}"))
            .unwrap_or_default()
    };
    let days: Vec<(Date, i64)> = (0..CHART_DAYS)
        .map(|offset| first + Duration::days(offset))
        .map(|day| (day, tokens(day)))
        .collect();
    let most = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let slot = WIDTH / CHART_DAYS;
    let mut bars = String::new();
    for (index, (day, count)) in (0_i64..).zip(&days) {
        let height = (count * (HEIGHT - 20) + most - 1) / most;
        let _ = write!(
            bars,
            r##"<rect class="bar" x="{x}" y="{y}" width="{w}" height="{height}" fill="#3b6fd8"><title>{day}: {count} tokens{cost}</title></rect>"##,
            cost = spent(*day),
            x = index * slot + 1,
            y = HEIGHT - height,
            w = slot - 2,
        );
    }
    let total: i64 = days.iter().map(|(_, n)| n).sum();
    let cost: Option<f64> = lines
        .iter()
        .filter_map(|line| line.cost_usd)
        .reduce(|a, b| a + b);
    let budget = [
        limits.tokens_per_day.map(|n| format!(", budget {n} a day")),
        limits.usd_per_day.map(|n| format!(", budget ${n} a day")),
    ]
    .into_iter()
    .flatten()
    .collect::<String>();
    format!(
        r#"<div class="card" id="usage"><h2>Usage</h2><p class="muted">Tokens per day, last {CHART_DAYS} days (UTC): {total} in all{cost}{budget}; today {today_count}{today_cost}.</p>
<svg id="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" width="100%" height="{HEIGHT}" role="img" aria-label="Tokens per day, last {CHART_DAYS} days">{bars}<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="currentColor"/></svg>
<p class="muted">{first} – {today}</p></div>
"#,
        cost = cost.map(|c| format!(", ${c:.4}")).unwrap_or_default(),
        today_count = tokens(today),
        today_cost = spent(today),
        first = esc(&first.to_string()),
    )
}
