//! The provider calls' HTTP client: hyper-util's pooled HTTP/1 client over
//! rustls, driven directly rather than through reqwest. A call in flight holds
//! a connection of its own for as long as the model thinks (a second to many
//! minutes), so what a call's request carries is held that long too, ten
//! thousand times over in a busy worker: reqwest's request future keeps a copy
//! of the URL and headers for redirects and retries it never makes here, and
//! its connector wraps each connection again. Without them a call in flight
//! costs ~4 KiB less of worker memory (`bench slow`, BENCHMARKS.md, issue 32
//! part 9). What is left is hyper's own (its buffers and request channel per
//! connection).
//!
//! HTTP/1 only, by choice: a call holds its stream for minutes, and an HTTP/2
//! connection carries at most the server's stream limit (100–256 at the large
//! providers' edges), so one shared connection would queue a busy worker's
//! calls behind each other; reqwest offered h2 (object_store turns its feature
//! on) and would have. A connection per call in flight costs a handshake, once:
//! the pool keeps it for the next call.

use std::{
    error::Error as StdError,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    HeaderMap, Request, StatusCode, Uri,
    body::Incoming,
    header::{HeaderValue, USER_AGENT},
};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, proxy::Tunnel},
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::runtime::outbound::Chunks;
use tokio::{net::TcpStream, time::Instant};
use tower_service::Service;

use super::ProviderError;

/// How long an idle connection is kept for the next call to the same host.
const IDLE: Duration = Duration::from_secs(90);
/// TCP keepalive on provider connections: a call may wait many minutes for its
/// first byte, and a silently dead peer must not hold it until the timeout.
const KEEPALIVE: Duration = Duration::from_secs(15);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why the provider client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("STEWRD_PROVIDER_PROXY is not an http:// URL")]
    Proxy,
    #[error("cannot set up TLS for provider calls: {0}")]
    Tls(#[from] rustls::Error),
}

/// Sends provider calls; cheap to clone (the pool is shared).
#[derive(Clone)]
pub(super) struct Transport {
    client: Client<Timed<HttpsConnector<Route>>, Full<Bytes>>,
    timeout: Duration,
    user_agent: HeaderValue,
}

/// An answer whose head has come; its body is read under the call's deadline.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    deadline: Instant,
}

impl Transport {
    /// `timeout` bounds a whole call, from sending to the body's last byte;
    /// `connect_timeout` a connection's whole setup (TCP, the proxy's tunnel,
    /// TLS), and each address's share of the TCP connect; `proxy`, when set, is an
    /// HTTP proxy every call is tunnelled through (CONNECT), with its URL's
    /// user and password as Basic credentials.
    pub(super) fn new(
        timeout: Duration,
        connect_timeout: Duration,
        proxy: Option<&SecretString>,
        user_agent: &'static str,
    ) -> Result<Self, BuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(KEEPALIVE));
        http.set_keepalive_interval(Some(KEEPALIVE));
        http.set_keepalive_retries(Some(3));
        let route = match proxy {
            None => Route::Direct(http),
            Some(proxy) => Route::Tunnel(tunnel(proxy.expose_secret(), http)?),
        };
        let tls = stewrd_shared::runtime::tls::provider_client_config()?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(route);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_timer(TokioTimer::new())
            .build(Timed {
                inner: https,
                timeout: connect_timeout,
            });
        Ok(Self {
            client,
            timeout,
            user_agent: HeaderValue::from_static(user_agent),
        })
    }

    /// POSTs `body` to `url` with `headers`; the answer's head comes back, its
    /// body still to read.
    pub(super) async fn post(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, ProviderError> {
        let deadline = Instant::now() + self.timeout;
        let uri: Uri = url
            .parse()
            .map_err(|e| ProviderError::unreachable(format!("bad provider URL: {e}")))?;
        headers.insert(USER_AGENT, self.user_agent.clone());
        let mut request = Request::post(uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::unreachable(format!("bad provider request: {e}")))?;
        *request.headers_mut() = headers;
        let response = tokio::time::timeout_at(deadline, self.client.request(request))
            .await
            .map_err(|_| ProviderError::timed_out())?
            .map_err(|e| transport_error(&e))?;
        let (parts, body) = response.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            deadline,
        })
    }
}

impl Chunks for Answer {
    type Error = ProviderError;

    /// The body's next piece, or `None` at its end, by the call's deadline.
    async fn chunk(&mut self) -> Result<Option<Bytes>, ProviderError> {
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| ProviderError::timed_out())?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(transport_error(&e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// A tunnel through the HTTP proxy at `url` (checked when the settings were
/// read); its user and password, if any, become Basic credentials.
fn tunnel(url: &str, http: HttpConnector) -> Result<Tunnel<HttpConnector>, BuildError> {
    let parsed = url::Url::parse(url).map_err(|_| BuildError::Proxy)?;
    if parsed.scheme() != "http" || parsed.host_str().is_none() {
        return Err(BuildError::Proxy);
    }
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Err(BuildError::Proxy);
    };
    let address: Uri = format!("http://{host}:{port}")
        .parse()
        .map_err(|_| BuildError::Proxy)?;
    let tunnel = Tunnel::new(address, http);
    if parsed.username().is_empty() {
        return Ok(tunnel);
    }
    let user = percent_decode(parsed.username());
    let password = percent_decode(parsed.password().unwrap_or_default());
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut auth =
        HeaderValue::try_from(format!("Basic {credentials}")).map_err(|_| BuildError::Proxy)?;
    auth.set_sensitive(true);
    Ok(tunnel.with_auth(auth))
}

/// A URL's user or password as written before it was percent-encoded.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where a provider connection goes: straight to the provider, or through a
/// proxy's tunnel.
#[derive(Clone)]
enum Route {
    Direct(HttpConnector),
    Tunnel(Tunnel<HttpConnector>),
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

impl Service<Uri> for Route {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Route::Direct(http) => http.poll_ready(cx).map_err(Into::into),
            Route::Tunnel(tunnel) => tunnel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self {
            Route::Direct(http) => {
                let connecting = http.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Route::Tunnel(tunnel) => {
                let connecting = tunnel.call(with_port(destination));
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// `destination` with its port written out: the tunnel asks for port 443
/// when none is given, which is wrong for an `http://` provider (port 80).
fn with_port(destination: Uri) -> Uri {
    let (Some(host), None) = (destination.host(), destination.port_u16()) else {
        return destination;
    };
    let port = if destination.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let scheme = destination.scheme_str().unwrap_or("https");
    format!("{scheme}://{host}:{port}/")
        .parse()
        .unwrap_or(destination)
}

/// Bounds a connection's whole setup (TCP, the proxy's `CONNECT`, the TLS
/// handshake) by the connect timeout, as reqwest did: hyper-util's own bound
/// covers only the TCP connect, so a proxy or a peer that stalls after it
/// would hold the call until the whole call's timeout (45 minutes).
#[derive(Clone)]
struct Timed<C> {
    inner: C,
    timeout: Duration,
}

impl<C> Service<Uri> for Timed<C>
where
    C: Service<Uri>,
    C::Response: Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let connecting = self.inner.call(destination);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connecting to the provider took longer than the connect timeout",
                )
                .into()),
            }
        })
    }
}

/// A transport failure says nothing about the key; the chain of causes names
/// at most the host. A connection attempt that ran out of time is a timeout,
/// as the whole call's would be.
fn transport_error(error: &(dyn StdError + 'static)) -> ProviderError {
    let mut detail = error.to_string();
    let mut source = error.source();
    let mut timed_out = false;
    while let Some(cause) = source {
        timed_out |= cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut);
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    if timed_out {
        ProviderError::timed_out()
    } else {
        ProviderError::unreachable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_is_asked_for_the_scheme_s_port_when_the_url_names_none() {
        let port = |url: &str| with_port(url.parse().expect("a URI")).to_string();
        assert_eq!(
            port("http://gateway.internal/v1"),
            "http://gateway.internal:80/"
        );
        assert_eq!(
            port("https://api.openai.com/v1"),
            "https://api.openai.com:443/"
        );
        assert_eq!(port("http://[::1]/v1"), "http://[::1]:80/");
        assert_eq!(port("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1");
    }
}
