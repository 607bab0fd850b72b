//! The webhook HTTP client: a guarded outbound client (no redirects, no
//! proxies, forbidden addresses dropped at resolution: `runtime::outbound`), a
//! per-attempt timeout and a capped response read.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap, HeaderValue};
use stewrd_shared::runtime::{config::WebhookSettings, outbound, ssrf};

use crate::provider::retry_after;

/// Response bytes of a webhook receiver read before the rest is ignored.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Characters of a failing response body kept in the delivery log.
const SNIPPET_CHARS: usize = 200;

/// A signed request: a webhook event, or a server tool call.
pub struct Signed<'a> {
    pub url: &'a str,
    /// `webhook-id`.
    pub id: &'a str,
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signatures: &'a str,
    pub body: String,
    /// Sent as `Idempotency-Key` (tool calls: the same on every attempt).
    pub idempotency_key: Option<&'a str>,
    /// This attempt's limit, when not the webhook default.
    pub timeout: Option<Duration>,
    /// Response bytes read at most (the rest is ignored and `Answer::cut` set).
    pub max_body: usize,
}

/// What an attempt got back.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `Content-Type`, as the receiver said.
    pub content_type: Option<String>,
    /// The file name of `Content-Disposition`, if the receiver gave one.
    pub filename: Option<String>,
    /// The body, read up to the request's `max_body`.
    pub body: Vec<u8>,
    /// The body went on past `max_body`.
    pub cut: bool,
    pub elapsed: Duration,
}

/// A failed attempt (no answer), for the delivery log.
pub struct Failure {
    pub error: String,
    pub elapsed: Duration,
    /// The SSRF guard refused the URL or every address it resolved to: not a
    /// failure another try would mend while the name resolves as it does.
    pub refused: bool,
}

/// Sends webhooks.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl WebhookClient {
    pub fn new(settings: &WebhookSettings, allow_private: bool) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("stewrd-webhooks/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            http: outbound::guarded(builder, allow_private)?,
            allow_private,
        })
    }

    /// POSTs `body` with the Standard Webhooks headers.
    pub async fn post(&self, request: Signed<'_>) -> Result<Answer, Failure> {
        let Signed {
            url,
            id,
            timestamp,
            signatures,
            body,
            idempotency_key,
            timeout,
            max_body,
        } = request;
        let started = Instant::now();
        let fail = |error: String| Failure {
            error,
            elapsed: started.elapsed(),
            refused: false,
        };
        // Literal addresses never reach the resolver: check them here.
        ssrf::parse_webhook_url(url, self.allow_private).map_err(|refusal| Failure {
            refused: true,
            ..fail(format!("refused: the URL {refusal}"))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let header = |value: &str| HeaderValue::from_str(value).map_err(|e| fail(e.to_string()));
        headers.insert("webhook-id", header(id)?);
        headers.insert("webhook-timestamp", header(&timestamp.to_string())?);
        headers.insert("webhook-signature", header(signatures)?);
        if let Some(key) = idempotency_key {
            headers.insert("idempotency-key", header(key)?);
        }
        let mut post = self.http.post(url).headers(headers).body(body);
        if let Some(timeout) = timeout {
            post = post.timeout(timeout);
        }
        let mut response = post
            .send()
            .await
            .map_err(|e| match outbound::refusal_in(&e) {
                Some(refused) => Failure {
                    refused: true,
                    ..fail(refused.to_string())
                },
                None => fail(outbound::describe(&e)),
            })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let filename = header(CONTENT_DISPOSITION).and_then(|d| disposition_filename(&d));
        // A receiver's answer that breaks off is logged as read so far: none.
        let (read, cut) = outbound::read_at_most(&mut response, max_body)
            .await
            .unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            content_type,
            filename,
            body: read,
            cut,
            elapsed: started.elapsed(),
        })
    }
}

impl Answer {
    /// The start of the body, for the delivery log.
    pub fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(SNIPPET_CHARS)
            .collect()
    }
}

/// The `filename="…"` of a `Content-Disposition` value, if any.
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let part = part.trim();
        let name = part.strip_prefix("filename=")?;
        let name = name.trim_matches('"').trim();
        (!name.is_empty()).then(|| name.to_owned())
    })
}
