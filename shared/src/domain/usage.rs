//! What model calls used: the token counts a provider reports (and the cost,
//! where it reports one), read leniently so a strange report never costs a
//! second call.

/// Token counts reported by the provider.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(from = "ReportedUsage")]
pub struct Usage {
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub total_tokens: i32,
    /// What the call cost in USD, as OpenRouter reports it (`usage.cost`); never
    /// shown in a run's `usage` (the usage report sums it).
    #[serde(default, rename = "cost", skip_serializing)]
    #[schema(ignore)]
    pub cost_usd: Option<f64>,
}

/// `usage` as a provider wrote it, read leniently: a count that is not a
/// whole number in `0..=i32::MAX` (a float, a negative, 3e9) is clamped, not
/// refused. Refusing would fail the whole answer, and the call, paid for,
/// would be made again.
#[derive(serde::Deserialize)]
struct ReportedUsage {
    #[serde(default)]
    prompt_tokens: Option<serde_json::Value>,
    #[serde(default)]
    completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    total_tokens: Option<serde_json::Value>,
    #[serde(default)]
    cost: Option<serde_json::Value>,
}

/// A reported count as a column can hold it.
fn count(value: Option<&serde_json::Value>) -> Option<i32> {
    let number = value?.as_f64()?;
    // A float-to-int `as` saturates (and NaN, which JSON cannot hold, is 0).
    Some(number.clamp(0.0, f64::from(i32::MAX)) as i32)
}

impl From<ReportedUsage> for Usage {
    fn from(reported: ReportedUsage) -> Self {
        let prompt_tokens = count(reported.prompt_tokens.as_ref()).unwrap_or(0);
        let completion_tokens = count(reported.completion_tokens.as_ref()).unwrap_or(0);
        let total_tokens = count(reported.total_tokens.as_ref())
            .unwrap_or_else(|| prompt_tokens.saturating_add(completion_tokens));
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens,
            cost_usd: reported
                .cost
                .as_ref()
                .and_then(serde_json::Value::as_f64)
                .filter(|cost| cost.is_finite() && *cost >= 0.0),
        }
    }
}

impl Usage {
    /// The counts of three nullable columns, when all are there.
    pub fn from_parts(
        prompt: Option<i32>,
        completion: Option<i32>,
        total: Option<i32>,
    ) -> Option<Self> {
        Some(Self {
            prompt_tokens: prompt?,
            completion_tokens: completion?,
            total_tokens: total?,
            cost_usd: None,
        })
    }
}
