//! Domain vocabulary: statuses, providers, failure codes. Each enum maps to the
//! exact strings of the contract and of the database's CHECK constraints.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire and database spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        // Written by hand: the derive cannot see serde renames made inside a macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a run is in its life. `succeeded`, `failed` and `cancelled` are final:
    /// nothing ever moves a run out of them.
    RunStatus {
        Queued = "queued",
        Running = "running",
        RequiresAction = "requires_action",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

impl RunStatus {
    /// Final statuses are never left.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

string_enum!(
    /// An OpenAI-compatible chat-completions provider.
    Provider {
        OpenAi = "openai",
        OpenRouter = "openrouter",
    }
);

string_enum!(
    /// Whose provider key served a run.
    KeySource {
        Project = "project",
        Default = "default",
    }
);

string_enum!(
    /// What stewrd has learnt about a project's provider key from the provider's answers.
    KeyStatus {
        Unchecked = "unchecked",
        Valid = "valid",
        Invalid = "invalid",
        QuotaExhausted = "quota_exhausted",
    }
);

string_enum!(
    /// Why a run failed (the contract's failure codes).
    FailureCode {
        ProviderAuthFailed = "provider_auth_failed",
        ProviderBadRequest = "provider_bad_request",
        ProviderModelNotFound = "provider_model_not_found",
        ProviderInsufficientCredits = "provider_insufficient_credits",
        ProviderRateLimited = "provider_rate_limited",
        ProviderUnavailable = "provider_unavailable",
        ProviderTimeout = "provider_timeout",
        NoProviderConfigured = "no_provider_configured",
        DeliveryLimitExceeded = "delivery_limit_exceeded",
        Cancelled = "cancelled",
        MaxStepsExceeded = "max_steps_exceeded",
        MaxTotalTokensExceeded = "max_total_tokens_exceeded",
        RequiresActionExpired = "requires_action_expired",
        TokenBudgetExhausted = "token_budget_exhausted",
        /// A step's result holds what Postgres refuses to store (a value out
        /// of range, say): the run ends rather than make the step again.
        StepNotStorable = "step_not_storable",
        /// An MCP server's tools could not be listed at the run's first step.
        McpServerUnavailable = "mcp_server_unavailable",
        /// The final answer did not match `response_format`'s schema after
        /// `max_repairs` answers sent back.
        InvalidStructuredOutput = "invalid_structured_output",
        /// A budget in dollars (the project's, or the run's `max_cost_usd`)
        /// cannot hold the next call's worst case: the call is not made.
        CostBudgetExhausted = "cost_budget_exhausted",
        /// A budget in dollars applies and the model has no known price: the
        /// call is not made (never run unmetered).
        PriceUnknown = "price_unknown",
        /// The run asked for `browser` and no browser host is configured, or
        /// the host did not answer after retries.
        BrowserUnavailable = "browser_unavailable",
    }
);

string_enum!(
    /// A budget that can run out: a project's, in tokens or dollars, or a run's own.
    Budget {
        /// `tokens_per_day`, per UTC day.
        Day = "day",
        /// `tokens_per_month`, per UTC calendar month.
        Month = "month",
        /// `STEWRD_DEFAULT_KEY_TOKENS_PER_DAY`: the operator's key, per project and UTC day.
        DefaultKeyDay = "default_key_day",
        /// `usd_per_day`, per UTC day.
        UsdDay = "usd_day",
        /// `usd_per_month`, per UTC calendar month.
        UsdMonth = "usd_month",
        /// The run's own `max_cost_usd` (never renews).
        RunCost = "max_cost_usd",
    }
);

impl Budget {
    /// When the budget's period ends (and the budget is whole again), from `now`.
    pub fn renews_at(self, now: time::OffsetDateTime) -> time::OffsetDateTime {
        let today = now.to_offset(time::UtcOffset::UTC).date();
        let next = match self {
            Self::Day | Self::DefaultKeyDay | Self::UsdDay => today.next_day(),
            Self::RunCost => None,
            Self::Month | Self::UsdMonth => {
                let (year, month) = match today.month() {
                    time::Month::December => (today.year() + 1, time::Month::January),
                    month => (today.year(), month.next()),
                };
                time::Date::from_calendar_date(year, month, 1).ok()
            }
        };
        next.map_or(now, |date| date.midnight().assume_utc())
    }

    /// The limit's name, also the `reason` label of refusals.
    pub fn limit_name(self) -> &'static str {
        match self {
            Self::Day => "tokens_per_day",
            Self::Month => "tokens_per_month",
            Self::DefaultKeyDay => "default_key_tokens_per_day",
            Self::UsdDay => "usd_per_day",
            Self::UsdMonth => "usd_per_month",
            Self::RunCost => "max_cost_usd",
        }
    }

    /// The failure code (and submit refusal code) of a budget used up.
    pub fn failure_code(self) -> FailureCode {
        match self {
            Self::Day | Self::Month | Self::DefaultKeyDay => FailureCode::TokenBudgetExhausted,
            Self::UsdDay | Self::UsdMonth | Self::RunCost => FailureCode::CostBudgetExhausted,
        }
    }

    /// The refusal's words.
    pub fn exhausted_message(self) -> &'static str {
        match self {
            Self::Day => "the project's tokens_per_day budget is used up until 00:00 UTC",
            Self::Month => {
                "the project's tokens_per_month budget is used up until the month ends (UTC)"
            }
            Self::DefaultKeyDay => {
                "the project's daily token allowance on the default provider key is used up until 00:00 UTC; set a key of your own to go on"
            }
            Self::UsdDay => "the project's usd_per_day budget is used up until 00:00 UTC",
            Self::UsdMonth => {
                "the project's usd_per_month budget is used up until the month ends (UTC)"
            }
            Self::RunCost => "the run's max_cost_usd is used up",
        }
    }
}

string_enum!(
    /// What a webhook event announces (its `type`).
    EventType {
        SessionRequiresAction = "session.requires_action",
        SessionSucceeded = "session.succeeded",
        SessionFailed = "session.failed",
        SessionCancelled = "session.cancelled",
    }
);

string_enum!(
    /// What a step of an agent run is.
    StepType {
        ModelCall = "model_call",
        ToolCall = "tool_call",
    }
);

string_enum!(
    /// Where a committed step stands: a client's tool call is `pending` until
    /// its output arrives.
    StepStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
);

string_enum!(
    /// Who runs a tool: stewrd (a project's server tool), the client, or a
    /// project's MCP server.
    Executor {
        Server = "server",
        Client = "client",
        Mcp = "mcp",
        /// stewrd's own tools (`web_fetch`).
        Builtin = "builtin",
    }
);

string_enum!(
    /// Whether a tool's calls wait for a person's yes before they are made.
    #[derive(Default)]
    RequireApproval {
        #[default]
        Never = "never",
        Always = "always",
    }
);

string_enum!(
    /// What a paused run waits for: a tool call a person must answer. One
    /// state of a step (`pending`, with this wait), written, shown, expired,
    /// cancelled and resumed the same way whatever the wait.
    Wait {
        /// The client's own tool: its output (`submit_tool_outputs`).
        Client = "client",
        /// A person's yes or no before the call is made (`approve_tool_calls`).
        Approval = "approval",
    }
);

impl Wait {
    /// The `required_action.type` a session shows while runs wait for this.
    pub fn action(self) -> &'static str {
        match self {
            Self::Client => "submit_tool_outputs",
            Self::Approval => "approve_tool_calls",
        }
    }
}

string_enum!(
    /// How a tool call ended: its output is the result, or an error the model
    /// is told about.
    Outcome {
        Succeeded = "succeeded",
        Failed = "failed",
    }
);

string_enum!(
    /// Who speaks a message of a conversation (OpenAI's chat roles).
    Role {
        System = "system",
        User = "user",
        Assistant = "assistant",
        Tool = "tool",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_spelling() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn only_succeeded_failed_and_cancelled_are_final() {
        let finals: Vec<_> = RunStatus::ALL.iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [
                &RunStatus::Succeeded,
                &RunStatus::Failed,
                &RunStatus::Cancelled
            ]
        );
    }

    #[test]
    fn serde_uses_the_contract_spelling() {
        let json = serde_json::to_string(&FailureCode::ProviderAuthFailed).unwrap_or_default();
        assert_eq!(json, "\"provider_auth_failed\"");
        let provider: Provider = serde_json::from_str("\"openrouter\"").unwrap_or(Provider::OpenAi);
        assert_eq!(provider, Provider::OpenRouter);
    }
}
