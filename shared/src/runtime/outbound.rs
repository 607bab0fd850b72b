//! Requests to addresses stewrd's users give it (webhooks, HTTP tools, MCP
//! servers): no redirects, no proxies, and a resolver that drops forbidden
//! addresses, so the SSRF guard applies to the addresses actually connected to
//! (DNS rebinding cannot slip a private address in after the URL was checked).
//! Literal IP hosts never reach a resolver: callers check URLs with
//! [`super::ssrf::parse_webhook_url`] before each request.

use std::{future::Future, net::SocketAddr, sync::Arc};

use bytes::Bytes;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf;

/// A client for user-given addresses, built from `builder` (timeouts, user
/// agent) with the guard on unless private addresses are allowed.
pub fn guarded(
    builder: reqwest::ClientBuilder,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = builder
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build()
}

/// The resolver's refusal, told apart from other connection errors by type.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Logs and errors are the project's to read: say no more than the API does.
        write!(f, "refused: the URL {}", ssrf::UrlRefusal::NotPublic)
    }
}

impl std::error::Error for Refused {}

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
                tracing::debug!(%host, reason = reason.unwrap_or("no address"), "outbound host refused");
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, wherever it sits in the error's causes.
pub fn refusal_in(error: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// An error with its causes, in one line ("timed out" for a timeout).
pub fn describe(error: &reqwest::Error) -> String {
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

/// A body read piece by piece: a reqwest response, or the provider client's
/// answer (which drives hyper directly, `worker/src/provider/transport.rs`).
pub trait Chunks {
    type Error;
    /// The next piece, or `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

impl Chunks for reqwest::Response {
    type Error = reqwest::Error;
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send {
        reqwest::Response::chunk(self)
    }
}

/// Reads a body up to `max` bytes, never more into memory, and says whether
/// there was more: every answer stewrd reads from outside (providers, tools,
/// pages, MCP servers, webhook receivers) is read through this one cap.
pub async fn read_at_most<C: Chunks>(
    response: &mut C,
    max: usize,
) -> Result<(Vec<u8>, bool), C::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}
