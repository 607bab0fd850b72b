//! Validated inputs of the operator actions. Each `parse` is the one rule for
//! its value, whichever door (admin API, dashboard, CLI) the value came in by,
//! and its refusal names the field (`param`) and says what is accepted.

use secrecy::{ExposeSecret, SecretString};

use super::OpsError;
use crate::domain::limits::Limits;
use crate::{
    domain::{
        agent::ServerTool,
        llm::check_fallback_models,
        mcp::{McpServer, McpServerIn},
        model::Provider,
        text,
    },
    mcp::Headers,
    runtime::ssrf::check_webhook_url,
};

/// The longest project name and model name.
pub const MAX_LABEL_CHARS: usize = 200;
/// The longest provider key.
pub const MAX_KEY_CHARS: usize = 512;
/// The highest requests-per-minute limit.
pub const MAX_RATE_LIMIT: i64 = 1_000_000;

/// A project's name: 1 to 200 printable characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(text: &str) -> Result<Self, OpsError> {
        if !text::is_label(text, MAX_LABEL_CHARS) {
            return Err(OpsError::invalid(
                "name",
                format!("`name` must be 1 to {MAX_LABEL_CHARS} printable characters"),
            ));
        }
        Ok(Self(text.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The highest `max_concurrent_runs` and `max_queued_runs`.
pub const MAX_RUN_LIMIT: i64 = 1_000_000;
/// The highest token budget (per day or month).
pub const MAX_TOKEN_BUDGET: i64 = 1_000_000_000_000;
/// The highest budget in US dollars (per day or month, or one run's).
pub const MAX_USD_BUDGET: f64 = 1_000_000_000.0;

/// A project's limits as the operator sets them: every field is checked, and
/// a missing (`None`) field means no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitsInput(Limits);

/// One limit as given: a number (API; dollars may have cents) or a form's
/// text (dashboard, CLI).
#[derive(Clone, Copy, Debug)]
pub enum Given<'a> {
    Number(Option<i64>),
    Amount(Option<f64>),
    Text(&'a str),
}

/// The names of the limits, in the order [`LimitsInput::parse`] takes them.
pub const LIMIT_NAMES: [&str; 7] = [
    "requests_per_minute",
    "max_concurrent_runs",
    "max_queued_runs",
    "tokens_per_day",
    "tokens_per_month",
    "usd_per_day",
    "usd_per_month",
];

impl LimitsInput {
    /// Checks each limit of [`LIMIT_NAMES`], in that order.
    pub fn parse(given: [Given<'_>; 7]) -> Result<Self, OpsError> {
        let [rpm, concurrent, queued, day, month, usd_day, usd_month] = given;
        let count = |name: &str, value| -> Result<Option<i32>, OpsError> {
            bounded(name, value, MAX_RUN_LIMIT)
                .map(|value| value.and_then(|value| i32::try_from(value).ok()))
        };
        Ok(Self(Limits {
            requests_per_minute: match rpm {
                Given::Number(value) => RateLimit::parse(value)?,
                Given::Amount(_) => return Err(RateLimit::refusal()),
                Given::Text(text) => RateLimit::parse_text(text)?,
            }
            .requests_per_minute(),
            max_concurrent_runs: count("max_concurrent_runs", concurrent)?,
            max_queued_runs: count("max_queued_runs", queued)?,
            tokens_per_day: bounded("tokens_per_day", day, MAX_TOKEN_BUDGET)?,
            tokens_per_month: bounded("tokens_per_month", month, MAX_TOKEN_BUDGET)?,
            usd_per_day: dollars("usd_per_day", usd_day)?,
            usd_per_month: dollars("usd_per_month", usd_month)?,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.0
    }
}

/// A positive whole number up to `max`, or none.
fn bounded(name: &str, given: Given<'_>, max: i64) -> Result<Option<i64>, OpsError> {
    let refusal = || {
        OpsError::invalid(
            name,
            format!("`{name}` must be a whole number from 1 to {max}, or null for none"),
        )
    };
    let value = match given {
        Given::Number(value) => value,
        Given::Amount(_) => return Err(refusal()),
        Given::Text(text) => match text.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| refusal())?),
        },
    };
    match value {
        None => Ok(None),
        Some(value) if (1..=max).contains(&value) => Ok(Some(value)),
        Some(_) => Err(refusal()),
    }
}

/// An amount of US dollars above 0 and up to [`MAX_USD_BUDGET`], or none.
pub fn dollars(name: &str, given: Given<'_>) -> Result<Option<f64>, OpsError> {
    let refusal = || {
        OpsError::invalid(
            name,
            format!(
                "`{name}` must be a number of US dollars above 0 and up to {MAX_USD_BUDGET}, \
                 or null for none"
            ),
        )
    };
    let value = match given {
        Given::Amount(value) => value,
        #[allow(clippy::cast_precision_loss)]
        Given::Number(value) => value.map(|value| value as f64),
        Given::Text(text) => match text.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| refusal())?),
        },
    };
    match value {
        None => Ok(None),
        Some(value) if value > 0.0 && value <= MAX_USD_BUDGET => Ok(Some(value)),
        Some(_) => Err(refusal()),
    }
}

/// A project's own requests-per-minute limit, 1 to 1,000,000; `None` removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit(Option<i32>);

impl RateLimit {
    pub fn parse(requests_per_minute: Option<i64>) -> Result<Self, OpsError> {
        match requests_per_minute {
            None => Ok(Self(None)),
            Some(rpm @ 1..=MAX_RATE_LIMIT) => Ok(Self(i32::try_from(rpm).ok())),
            Some(_) => Err(Self::refusal()),
        }
    }

    /// The limit as a form sends it: empty removes it.
    pub fn parse_text(text: &str) -> Result<Self, OpsError> {
        match text.trim() {
            "" => Ok(Self(None)),
            text => Self::parse(Some(text.parse().map_err(|_| Self::refusal())?)),
        }
    }

    fn refusal() -> OpsError {
        OpsError::invalid(
            "requests_per_minute",
            format!(
                "`requests_per_minute` must be a whole number from 1 to {MAX_RATE_LIMIT}, or empty for none"
            ),
        )
    }

    pub fn requests_per_minute(self) -> Option<i32> {
        self.0
    }
}

/// A project's provider choice, and its key when one is given (`None` keeps
/// the stored key). `Debug` never shows the key.
#[derive(Debug)]
pub struct LlmSettings {
    pub provider: Provider,
    pub model: String,
    pub api_key: Option<SecretString>,
    /// The models runs fall back to (`None` keeps the stored ones; empty
    /// removes them).
    pub fallback_models: Option<Vec<String>>,
}

impl LlmSettings {
    /// The key, if given, must be visible ASCII (a pasted zero-width space would
    /// only fail later, far from the form); it is never repeated in a refusal.
    pub fn parse(
        provider: &str,
        model: &str,
        api_key: Option<SecretString>,
    ) -> Result<Self, OpsError> {
        let provider = Provider::parse(provider.trim()).ok_or_else(|| {
            OpsError::invalid("provider", "`provider` must be one of: openai, openrouter")
        })?;
        if !text::is_label(model, MAX_LABEL_CHARS) {
            return Err(OpsError::invalid(
                "model",
                format!("`model` must be 1 to {MAX_LABEL_CHARS} printable characters"),
            ));
        }
        if let Some(key) = &api_key
            && !text::is_visible_ascii(key.expose_secret(), MAX_KEY_CHARS)
        {
            return Err(OpsError::invalid(
                "api_key",
                format!(
                    "`api_key` must be 1 to {MAX_KEY_CHARS} visible ASCII characters \
                     (no spaces, accents or invisible characters such as a zero-width space)"
                ),
            ));
        }
        Ok(Self {
            provider,
            model: model.trim().to_owned(),
            api_key,
            fallback_models: None,
        })
    }

    /// With the models runs fall back to (checked).
    pub fn with_fallback_models(mut self, models: Option<&[String]>) -> Result<Self, OpsError> {
        self.fallback_models = models
            .map(check_fallback_models)
            .transpose()
            .map_err(|message| OpsError::invalid("fallback_models", message))?;
        Ok(self)
    }
}

/// A webhook URL that passed the SSRF check (its form, and every address its
/// host resolves to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// `param` names the field in the refusal (`url`, `webhook_url`).
    pub async fn check(
        param: &'static str,
        text: &str,
        allow_private: bool,
    ) -> Result<Self, OpsError> {
        check_webhook_url(text, allow_private)
            .await
            .map(|url| Self(url.to_string()))
            .map_err(|refusal| OpsError::invalid(param, format!("`{param}` {refusal}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A project's server tools, checked: their form, and each URL as a webhook's.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerTools(Vec<ServerTool>);

impl ServerTools {
    pub async fn check(tools: Vec<ServerTool>, allow_private: bool) -> Result<Self, OpsError> {
        ServerTool::check_form(&tools)
            .map_err(|refusal| OpsError::invalid(refusal.param, refusal.message))?;
        let mut checked = Vec::with_capacity(tools.len());
        for (i, tool) in tools.into_iter().enumerate() {
            let url = WebhookUrl::check("url", &tool.url, allow_private)
                .await
                .map_err(|refusal| {
                    OpsError::invalid(format!("tools[{i}].url"), refusal.to_string())
                })?;
            checked.push(ServerTool {
                url: url.into_string(),
                ..tool
            });
        }
        Ok(Self(checked))
    }

    pub fn as_slice(&self) -> &[ServerTool] {
        &self.0
    }
}

/// A project's MCP servers, checked: their form, and each URL as a
/// webhook's. Holds the header values (secrets) until they are sealed.
pub struct McpServers {
    shown: Vec<McpServer>,
    headers: Headers,
}

impl McpServers {
    pub async fn check(servers: Vec<McpServerIn>, allow_private: bool) -> Result<Self, OpsError> {
        McpServerIn::check_form(&servers)
            .map_err(|refusal| OpsError::invalid(refusal.param, refusal.message))?;
        let mut shown = Vec::with_capacity(servers.len());
        let mut headers = Headers::new();
        for (i, server) in servers.into_iter().enumerate() {
            let url = WebhookUrl::check("url", &server.url, allow_private)
                .await
                .map_err(|refusal| {
                    OpsError::invalid(format!("servers[{i}].url"), refusal.to_string())
                })?;
            shown.push(server.shown(url.into_string()));
            headers.insert(server.name, server.headers);
        }
        Ok(Self { shown, headers })
    }

    /// The servers as stored and shown.
    pub fn shown(&self) -> &[McpServer] {
        &self.shown
    }

    /// Their header values, by server.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServers")
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(error: OpsError) -> String {
        match error {
            OpsError::Invalid { param, .. } => param,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn each_input_has_one_rule_and_names_its_field() {
        assert_eq!(
            ProjectName::parse("  acme ").map(|n| n.0).ok(),
            Some("acme".to_owned())
        );
        assert_eq!(param(ProjectName::parse(" ").expect_err("refused")), "name");
        assert_eq!(
            param(ProjectName::parse(&"n".repeat(201)).expect_err("refused")),
            "name"
        );
        assert_eq!(RateLimit::parse(Some(600)).ok(), Some(RateLimit(Some(600))));
        assert_eq!(RateLimit::parse_text("").ok(), Some(RateLimit(None)));
        for bad in ["0", "-1", "1000001", "2147483648", "ten", "1.5"] {
            assert_eq!(
                param(RateLimit::parse_text(bad).expect_err("refused")),
                "requests_per_minute",
                "{bad}"
            );
        }
        let limits = LimitsInput::parse([
            Given::Number(Some(60)),
            Given::Text("3"),
            Given::Number(None),
            Given::Text(" 1000 "),
            Given::Text(""),
            Given::Amount(Some(2.5)),
            Given::Text("0.75"),
        ])
        .expect("valid");
        assert_eq!(limits.limits().usd_per_day, Some(2.5));
        assert_eq!(limits.limits().usd_per_month, Some(0.75));
        assert_eq!(limits.limits().max_concurrent_runs, Some(3));
        assert_eq!(limits.limits().tokens_per_day, Some(1000));
        assert_eq!(limits.limits().tokens_per_month, None);
        for (at, bad) in [
            (1, "0"),
            (2, "-4"),
            (3, "1.5"),
            (4, "1000000000001"),
            (2, "lots"),
            (5, "0"),
            (6, "-1"),
            (5, "NaN"),
            (6, "inf"),
            (5, "2000000000"),
        ] {
            let mut given = [Given::Text(""); 7];
            given[at] = Given::Text(bad);
            assert_eq!(
                param(LimitsInput::parse(given).expect_err("refused")),
                LIMIT_NAMES[at],
                "{bad}"
            );
        }
        let key = |k: &str| Some(SecretString::from(k));
        assert!(LlmSettings::parse("openai", "gpt-4o", key("sk-abc")).is_ok());
        assert_eq!(
            param(LlmSettings::parse("anthropic", "m", None).expect_err("refused")),
            "provider"
        );
        assert_eq!(
            param(LlmSettings::parse("openai", " ", None).expect_err("refused")),
            "model"
        );
        let refused =
            LlmSettings::parse("openai", "m", key("sk-\u{200b}SECRET")).expect_err("refused");
        assert!(!refused.to_string().contains("SECRET"));
        assert_eq!(param(refused), "api_key");
    }
}
