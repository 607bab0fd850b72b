//! The webhook HTTP client: no redirects, no proxies, a per-attempt timeout, a
//! capped response read, and a resolver that drops forbidden addresses, so the
//! SSRF guard applies to the addresses actually connected to (DNS rebinding
//! cannot slip a private address in after the URL was checked).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap, HeaderValue},
};
use stewrd_shared::runtime::{config::WebhookSettings, ssrf};

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

/// The resolver's refusal, told apart from other connection errors by type.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The delivery log is the project's to read: say no more than the API does.
        write!(f, "refused: the URL {}", ssrf::UrlRefusal::NotPublic)
    }
}

impl std::error::Error for Refused {}

/// Sends webhooks.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| ssrf::forbidden_reason(address.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let reason = found.first().and_then(|a| ssrf::forbidden_reason(a.ip()));
                tracing::debug!(%host, reason = reason.unwrap_or("no address"), "webhook host refused");
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl WebhookClient {
    pub fn new(settings: &WebhookSettings, allow_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("stewrd-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            http: builder.build()?,
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
        let mut response = post.send().await.map_err(|e| match refusal_in(&e) {
            Some(refused) => Failure {
                refused: true,
                ..fail(refused.to_string())
            },
            None => fail(error_chain(&e)),
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
        let mut read = Vec::new();
        let mut cut = false;
        while let Ok(Some(chunk)) = response.chunk().await {
            read.extend_from_slice(&chunk);
            if read.len() > max_body {
                cut = true;
                break;
            }
        }
        read.truncate(max_body);
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

/// The resolver's refusal, wherever it sits in the error's causes.
fn refusal_in(error: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

fn error_chain(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
