//! What a project used, from `usage_daily` (kept by a trigger on `runs`, so it
//! matches the runs' own counts): by UTC day or by model, over a range of days.

use time::Date;

use super::{DbError, GenericClient};
use crate::domain::id::ProjectId;

/// How a usage report is grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Model,
}

/// One line of a report: a day or a model.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageLine {
    /// The day (grouped by day).
    pub date: Option<Date>,
    /// The model (grouped by model).
    pub model: Option<String>,
    /// Runs that reached a final status.
    pub runs: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// What the provider reported the calls cost; `None` when it reported nothing.
    pub cost_usd: Option<f64>,
}

/// The project's usage from `from` to `to` (UTC days, both included), in order
/// of day or of model.
pub async fn usage_report(
    client: &impl GenericClient,
    project_id: ProjectId,
    from: Date,
    to: Date,
    group_by: GroupBy,
) -> Result<Vec<UsageLine>, DbError> {
    let (key, select) = match group_by {
        GroupBy::Day => ("day", "day AS date, NULL::text AS model"),
        GroupBy::Model => ("model", "NULL::date AS date, model"),
    };
    let statement = client
        .prepare_cached(&format!(
            "SELECT {select}, sum(runs)::bigint AS runs,
                    sum(prompt_tokens)::bigint AS prompt_tokens,
                    sum(completion_tokens)::bigint AS completion_tokens,
                    sum(total_tokens)::bigint AS total_tokens, sum(cost_usd) AS cost_usd
             FROM usage_daily
             WHERE project_id = $1 AND day BETWEEN $2 AND $3
             GROUP BY {key} ORDER BY {key}"
        ))
        .await?;
    client
        .query(&statement, &[&project_id, &from, &to])
        .await?
        .iter()
        .map(|row| {
            Ok(UsageLine {
                date: row.try_get("date")?,
                model: row.try_get("model")?,
                runs: row.try_get("runs")?,
                prompt_tokens: row.try_get("prompt_tokens")?,
                completion_tokens: row.try_get("completion_tokens")?,
                total_tokens: row.try_get("total_tokens")?,
                cost_usd: row.try_get("cost_usd")?,
            })
        })
        .collect()
}
