//! What a provider's answer means: which failure code, whether to try again and
//! when, and what it says about the key. Pure functions over status, headers and
//! body, so every case is unit-tested without a network.

use std::time::{Duration, SystemTime};

use hyper::header::HeaderMap;
use serde::Deserialize;
use stewrd_shared::{
    domain::{
        model::{FailureCode, KeyStatus},
        text,
    },
    runtime::config::parse_duration,
    secrets::redact::redact,
};

/// The longest wait an answer's `Retry-After` is read as (in either form).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Longest provider message kept in a run's error.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// Whether another attempt at a failed call may succeed, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// No: it would fail the same way (a bad key, a bad request).
    Never,
    /// Yes, after the wait the provider asked for, if it asked.
    After(Option<Duration>),
}

impl Retry {
    /// Whether another attempt may succeed.
    pub fn allowed(self) -> bool {
        matches!(self, Self::After(_))
    }
}

/// A failed provider call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// The contract's failure code.
    pub code: FailureCode,
    /// The provider's own words (never the key), or ours when it said nothing.
    pub message: String,
    /// Whether and when to try again.
    pub retry: Retry,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// What the answer proves about the key, if anything.
    pub key_verdict: Option<KeyStatus>,
}

impl ProviderError {
    fn new(code: FailureCode, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code,
            message: message.into(),
            retry: if retryable {
                Retry::After(None)
            } else {
                Retry::Never
            },
            status: None,
            key_verdict: None,
        }
    }

    /// This error as it may leave the provider client: every piece of `key` the
    /// provider quoted taken out first, then cut to a readable length (cutting
    /// first could leave a piece of the key straddling the cut unrecognised).
    pub fn redacted(mut self, key: &str) -> Self {
        self.message = text::cut(redact(&self.message, key), MAX_MESSAGE_CHARS);
        self
    }

    /// The request never got an answer (connection refused, reset, TLS, DNS).
    pub fn unreachable(detail: impl Into<String>) -> Self {
        Self::new(FailureCode::ProviderUnavailable, detail, true)
    }

    /// The provider did not answer in time.
    pub fn timed_out() -> Self {
        Self::new(
            FailureCode::ProviderTimeout,
            "the provider did not answer in time",
            true,
        )
    }

    /// A 200 that carries no usable completion (OpenRouter reports mid-generation
    /// failures this way).
    pub fn empty_success(detail: impl Into<String>) -> Self {
        Self::new(FailureCode::ProviderUnavailable, detail, true)
    }
}

/// The error object of OpenAI and OpenRouter bodies. OpenRouter's `code` is a
/// number, OpenAI's a string: read it as either.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

impl ErrorBody {
    /// Parses `{"error": {...}}`, or nothing.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|envelope| envelope.error)
    }

    fn code_text(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Whether the provider says the account is out of money, not just busy.
    fn says_quota(&self) -> bool {
        [self.code_text(), self.kind.clone()]
            .into_iter()
            .flatten()
            .any(|text| text.contains("insufficient_quota") || text.contains("billing"))
    }
}

/// Classifies a non-2xx answer.
pub fn classify_status(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    use FailureCode::*;
    let parsed = ErrorBody::parse(body).unwrap_or_default();
    let provider_message = parsed
        .message
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("the provider answered HTTP {status}"));
    let retry_after = retry_after(headers);
    let (code, retryable, verdict) = match status {
        401 | 403 => (ProviderAuthFailed, false, Some(KeyStatus::Invalid)),
        402 => (
            ProviderInsufficientCredits,
            retry_after.is_some(),
            Some(KeyStatus::QuotaExhausted),
        ),
        404 => (ProviderModelNotFound, false, None),
        429 if parsed.says_quota() => (
            ProviderInsufficientCredits,
            false,
            Some(KeyStatus::QuotaExhausted),
        ),
        429 => (ProviderRateLimited, true, None),
        408 => (ProviderTimeout, true, None),
        409 | 500..=599 => (ProviderUnavailable, true, None),
        _ => (ProviderBadRequest, false, None),
    };
    ProviderError {
        retry: if retryable {
            Retry::After(retry_after)
        } else {
            Retry::Never
        },
        status: Some(status),
        key_verdict: verdict,
        ..ProviderError::new(code, provider_message, retryable)
    }
}

/// The wait a provider asked for: `Retry-After` (seconds or an HTTP date), else
/// the longer of OpenAI's `x-ratelimit-reset-requests` / `-tokens` (`6m0s`, `20ms`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = header("retry-after") {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<f64>()
            && seconds.is_finite()
            && seconds >= 0.0
        {
            return Some(Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(
                when.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_RETRY_AFTER),
            );
        }
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .into_iter()
        .filter_map(|name| header(name).and_then(parse_duration))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    fn classify(status: u16, body: &str) -> ProviderError {
        classify_status(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn client_errors_are_final_and_mapped_to_their_codes() {
        use FailureCode::*;
        for (status, code) in [
            (400, ProviderBadRequest),
            (401, ProviderAuthFailed),
            (403, ProviderAuthFailed),
            (404, ProviderModelNotFound),
            (413, ProviderBadRequest),
            (422, ProviderBadRequest),
            (402, ProviderInsufficientCredits),
        ] {
            let error = classify(status, "");
            assert_eq!(error.code, code, "HTTP {status}");
            assert_eq!(
                error.retry,
                Retry::Never,
                "HTTP {status} must not be retried"
            );
        }
    }

    #[test]
    fn busy_and_broken_providers_are_retried() {
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(
                classify(status, "").retry.allowed(),
                "HTTP {status} must be retried"
            );
        }
        assert_eq!(classify(429, "").code, FailureCode::ProviderRateLimited);
        assert_eq!(classify(503, "").code, FailureCode::ProviderUnavailable);
        assert_eq!(classify(408, "").code, FailureCode::ProviderTimeout);
    }

    #[test]
    fn a_quota_429_is_not_a_rate_limit() {
        let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let error = classify(429, body);
        assert_eq!(error.code, FailureCode::ProviderInsufficientCredits);
        assert_eq!(error.retry, Retry::Never);
        assert_eq!(error.key_verdict, Some(KeyStatus::QuotaExhausted));
        assert_eq!(error.message, "You exceeded your current quota");
    }

    #[test]
    fn a_402_with_retry_after_may_be_retried() {
        let error = classify_status(402, &headers(&[("retry-after", "3")]), b"");
        assert_eq!(error.retry, Retry::After(Some(Duration::from_secs(3))));
    }

    #[test]
    fn rejected_keys_are_marked_invalid() {
        assert_eq!(classify(401, "").key_verdict, Some(KeyStatus::Invalid));
        assert_eq!(classify(403, "").key_verdict, Some(KeyStatus::Invalid));
        assert_eq!(classify(500, "").key_verdict, None);
    }

    #[test]
    fn the_providers_message_is_kept_from_either_error_shape() {
        let openrouter = r#"{"error":{"code":402,"message":"Insufficient credits","metadata":{}}}"#;
        assert_eq!(classify(402, openrouter).message, "Insufficient credits");
        assert_eq!(
            classify(502, "<html>").message,
            "the provider answered HTTP 502"
        );
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_openai_resets() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after(&headers(&[("retry-after", &later)])).unwrap_or_default();
        assert!(wait > Duration::from_secs(27) && wait <= Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-reset-tokens", "20ms"),
            ])),
            Some(Duration::from_secs(360))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(5_000);
        let body = format!(r#"{{"error":{{"message":"{long}"}}}}"#);
        assert_eq!(
            classify(400, &body)
                .redacted("sk-none")
                .message
                .chars()
                .count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn a_key_straddling_the_cut_is_redacted_before_it() {
        let key = "sk-proj-0123456789abcdefghij";
        let message = format!("{}{key} is wrong", "x".repeat(MAX_MESSAGE_CHARS - 10));
        let body = serde_json::json!({"error": {"message": message}}).to_string();
        let error = classify(401, &body).redacted(key);
        assert!(!error.message.contains("sk-proj-01"), "{}", error.message);
        assert!(error.message.ends_with("x[redacted]…"), "{}", error.message);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_wait_header_is_read_without_panicking(value in "[ -~]{0,40}", name in 0..3usize) {
            let name = ["retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"][name];
            if let Ok(value) = HeaderValue::from_str(&value) {
                let mut map = HeaderMap::new();
                map.insert(name, value);
                if let Some(wait) = retry_after(&map) {
                    proptest::prop_assert!(wait <= Duration::from_secs(86_400 * 7));
                }
            }
        }

        #[test]
        fn any_answer_is_classified_and_only_busy_ones_are_retried(
            status in 100..600u16,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let error = classify_status(status, &HeaderMap::new(), &body);
            let busy = matches!(status, 408 | 409 | 429 | 500..=599);
            if status != 429 {
                proptest::prop_assert_eq!(error.retry.allowed(), busy, "HTTP {}", status);
            }
            proptest::prop_assert_eq!(error.status, Some(status));
        }

        #[test]
        fn a_redacted_error_never_holds_the_key(key in "[!-~]{8,64}", before in "\\PC{0,1200}") {
            let body = serde_json::json!({"error": {"message": format!("{before}{key}")}}).to_string();
            let error = classify(401, &body).redacted(&key);
            proptest::prop_assert!(!error.message.contains(&key[..8]));
            proptest::prop_assert!(error.message.chars().count() <= MAX_MESSAGE_CHARS + 1);
        }
    }
}
