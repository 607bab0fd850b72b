//! The client: one MCP session per server and set of headers, kept for the
//! process's life and shared by every call to it (an `initialize` per call
//! doubled the requests and made servers keep thousands of sessions); a
//! session the server forgot (404 on `Mcp-Session-Id`) is initialised again
//! and the request made once more, as it was never processed.
//!
//! A call has a deadline; past it, or when its future is dropped (a run
//! cancelled or handed back), the server is sent `notifications/cancelled`
//! for it. Errors say whether the request may have reached the server, which
//! is what decides if it may be made again.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::{
    StatusCode,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::wire::{self, Events, Reply};
use crate::runtime::{metrics as names, outbound, ssrf};
use crate::secrets::redact::redact;

/// The protocol version asked for; the server may answer another it speaks.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Sessions kept before the table is emptied (a worker serves many projects).
const MAX_SESSIONS: usize = 4096;
/// How long a notification (cancel, initialized) may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// `tools/list` pages followed at most.
const MAX_PAGES: usize = 50;

/// A server as the client reaches it: its URL and the headers sent with
/// every request (values marked sensitive: never printed by `Debug`).
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub headers: HeaderMap,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Endpoint {
    /// `url`, with `headers` (name, value) made sensitive; a pair HTTP cannot
    /// carry is left out (configuration checks them before they are stored).
    pub fn new<'a>(url: &str, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                value.set_sensitive(true);
                map.insert(name, value);
            }
        }
        Self {
            url: url.to_owned(),
            headers: map,
        }
    }

    /// `text` with every header value cut out as provider keys are
    /// (`secrets::redact`: any long enough piece, in any case, plain or
    /// percent-encoded): a server that echoes a credential back (in an error,
    /// in a tool's output) never gets it shown, stored or logged. Values of
    /// under 4 characters are no secret and are left.
    pub fn scrub(&self, text: &str) -> String {
        self.headers
            .values()
            .filter_map(|value| value.to_str().ok())
            .filter(|value| value.len() >= 4)
            .fold(text.to_owned(), |text, value| redact(&text, value))
    }

    /// Which sessions this endpoint may share: the URL and the headers' digest.
    fn key(&self) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.url.as_bytes());
        for (name, value) in &self.headers {
            digest.update([0]);
            digest.update(name.as_str().as_bytes());
            digest.update([0]);
            digest.update(value.as_bytes());
        }
        digest.finalize().into()
    }
}

/// Why a request failed. Never holds a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// The request did not reach the server (a refused connection, a name
    /// that does not resolve, a 429, no session to send it in): it may be
    /// made again.
    #[error("the server could not be reached: {0}")]
    NotSent(String),
    /// The URL or what it resolves to is not allowed.
    #[error("{0}")]
    Refused(String),
    /// Sent, and the answer never came whole: the outcome is unknown.
    #[error("the answer was lost: {0}")]
    Lost(String),
    /// No answer within the limit (the server was told to stop).
    #[error("no answer within {0} s")]
    TimedOut(u64),
    /// An HTTP status other than the above.
    #[error("the server answered HTTP {status}{detail}")]
    Status { status: u16, detail: String },
    /// A JSON-RPC error.
    #[error("the server answered error {code}: {message}")]
    Rpc { code: i64, message: String },
    /// An answer that is not MCP.
    #[error("the server's answer is not MCP: {0}")]
    Protocol(String),
}

/// A request's own failure, or the session it used is gone.
enum Failed {
    Expired,
    Error(McpError),
}

impl From<McpError> for Failed {
    fn from(error: McpError) -> Self {
        Self::Error(error)
    }
}

#[derive(Clone, Debug)]
struct Session {
    id: Option<String>,
    protocol: String,
}

type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// How requests travel: the guarded HTTP client and its bounds.
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
    allow_private: bool,
    /// The largest answer read, in bytes.
    max_answer: usize,
}

/// MCP over Streamable HTTP, for a whole process.
pub struct McpClient {
    transport: Transport,
    sessions: Mutex<HashMap<[u8; 32], Slot>>,
    next_id: AtomicU64,
}

impl McpClient {
    /// A client whose connections are guarded as webhooks' are (unless
    /// private addresses are allowed), reading answers up to `max_answer` bytes.
    pub fn new(
        connect_timeout: Duration,
        max_answer: usize,
        allow_private: bool,
    ) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("stewrd-mcp/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            transport: Transport {
                http: outbound::guarded(builder, allow_private)?,
                allow_private,
                max_answer,
            },
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Every tool the server lists, following its pages, within `limit`.
    pub async fn list_tools(
        &self,
        endpoint: &Endpoint,
        limit: Duration,
    ) -> Result<Vec<Value>, McpError> {
        let seconds = limit.as_secs().max(1);
        let listing = async {
            let mut tools = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let params = match &cursor {
                    Some(cursor) => json!({"cursor": cursor}),
                    None => json!({}),
                };
                let page = self.ask(endpoint, "tools/list", params, None).await?;
                tools.extend(page["tools"].as_array().cloned().unwrap_or_default());
                cursor = page["nextCursor"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned);
                if cursor.is_none() {
                    return Ok(tools);
                }
            }
            Err(McpError::Protocol(format!(
                "tools/list went on past {MAX_PAGES} pages"
            )))
        };
        tokio::time::timeout(limit, listing)
            .await
            .unwrap_or(Err(McpError::TimedOut(seconds)))
    }

    /// `tools/call` of `tool` with `arguments`, marked with `idempotency_key`
    /// (`_meta` and an `Idempotency-Key` header), within `limit`: its result.
    pub async fn call_tool(
        &self,
        endpoint: &Endpoint,
        tool: &str,
        arguments: Value,
        idempotency_key: &str,
        limit: Duration,
    ) -> Result<Value, McpError> {
        let params = json!({"name": tool, "arguments": arguments,
                            "_meta": {"io.stewrd/idempotency_key": idempotency_key}});
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| McpError::Protocol("the idempotency key is not a header value".into()))?;
        let seconds = limit.as_secs().max(1);
        tokio::time::timeout(limit, self.ask(endpoint, "tools/call", params, Some(key)))
            .await
            .unwrap_or(Err(McpError::TimedOut(seconds)))
    }

    /// A request in the endpoint's session (initialised first if need be;
    /// again, and the request made once more, if the server forgot it).
    async fn ask(
        &self,
        endpoint: &Endpoint,
        method: &str,
        params: Value,
        idempotency_key: Option<HeaderValue>,
    ) -> Result<Value, McpError> {
        let slot = self.slot(endpoint);
        for _ in 0..2 {
            // No session: this request never left.
            let session = self
                .session(endpoint, &slot)
                .await
                .map_err(|error| match error {
                    McpError::Refused(_) | McpError::NotSent(_) => error,
                    other => McpError::NotSent(format!("no session: {other}")),
                })?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let message = wire::request(id, method, &params);
            // Dropped before the answer (a deadline, a cancelled run): the
            // server is told to stop.
            let guard = CancelOnDrop::new(&self.transport, endpoint, &session, id);
            let asked = self
                .transport
                .post(
                    endpoint,
                    Some(&session),
                    &message,
                    idempotency_key.clone(),
                    id,
                )
                .await;
            guard.disarm();
            match asked {
                Ok(reply) => return reply_value(reply, endpoint),
                Err(Failed::Expired) => forget(&slot, &session).await,
                Err(Failed::Error(error)) => return Err(error),
            }
        }
        Err(McpError::Protocol(
            "the server forgot the session it had just opened".into(),
        ))
    }

    fn slot(&self, endpoint: &Endpoint) -> Slot {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.entry(endpoint.key()).or_default().clone()
    }

    /// The endpoint's session, opened now if there is none.
    async fn session(&self, endpoint: &Endpoint, slot: &Slot) -> Result<Session, McpError> {
        let mut held = slot.lock().await;
        if let Some(session) = held.as_ref() {
            return Ok(session.clone());
        }
        let session = self.initialize(endpoint).await?;
        *held = Some(session.clone());
        Ok(session)
    }

    async fn initialize(&self, endpoint: &Endpoint) -> Result<Session, McpError> {
        metrics::counter!(names::MCP_INITIALIZES).increment(1);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = wire::request(
            id,
            "initialize",
            &json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "stewrd", "version": env!("CARGO_PKG_VERSION")}}),
        );
        let response = self
            .transport
            .send(endpoint, None, &message, None, NOTIFY_TIMEOUT * 6)
            .await?;
        let session_id = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply = self
            .transport
            .read_reply(endpoint, response, id)
            .await
            .map_err(|failed| match failed {
                Failed::Expired => McpError::Protocol("initialize answered 404".into()),
                Failed::Error(error) => error,
            })?;
        let result = reply_value(reply, endpoint)?;
        let session = Session {
            id: session_id,
            protocol: result["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL_VERSION)
                .to_owned(),
        };
        let initialized = wire::notification("notifications/initialized", &json!({}));
        self.transport
            .notify(endpoint, &session, &initialized)
            .await?;
        Ok(session)
    }
}

impl Transport {
    /// POSTs a notification; the server answers 202 (any 2xx will do).
    async fn notify(
        &self,
        endpoint: &Endpoint,
        session: &Session,
        message: &Value,
    ) -> Result<(), McpError> {
        let response = self
            .send(endpoint, Some(session), message, None, NOTIFY_TIMEOUT)
            .await?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(McpError::Status {
                status: status.as_u16(),
                detail: String::new(),
            })
        }
    }

    /// POSTs a request and reads its answer.
    async fn post(
        &self,
        endpoint: &Endpoint,
        session: Option<&Session>,
        message: &Value,
        idempotency_key: Option<HeaderValue>,
        id: u64,
    ) -> Result<Reply, Failed> {
        let response = self
            .send(endpoint, session, message, idempotency_key, Duration::MAX)
            .await?;
        if response.status() == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
            return Err(Failed::Expired);
        }
        self.read_reply(endpoint, response, id).await
    }

    /// Sends one POST (checking the URL first: a literal address never
    /// reaches the guarded resolver) and returns the response's head.
    async fn send(
        &self,
        endpoint: &Endpoint,
        session: Option<&Session>,
        message: &Value,
        idempotency_key: Option<HeaderValue>,
        timeout: Duration,
    ) -> Result<reqwest::Response, McpError> {
        ssrf::parse_webhook_url(&endpoint.url, self.allow_private)
            .map_err(|refusal| McpError::Refused(format!("refused: the URL {refusal}")))?;
        let mut headers = endpoint.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(session) = session {
            if let Some(id) = session
                .id
                .as_deref()
                .and_then(|i| HeaderValue::from_str(i).ok())
            {
                headers.insert(SESSION_HEADER, id);
            }
            if let Ok(version) = HeaderValue::from_str(&session.protocol) {
                headers.insert(VERSION_HEADER, version);
            }
        }
        if let Some(key) = idempotency_key {
            headers.insert("idempotency-key", key);
        }
        let mut request = self
            .http
            .post(&endpoint.url)
            .headers(headers)
            .body(message.to_string());
        if timeout != Duration::MAX {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|error| {
            let text = endpoint.scrub(&outbound::describe(&error));
            if let Some(refused) = outbound::refusal_in(&error) {
                McpError::Refused(refused.to_string())
            } else if error.is_connect() {
                McpError::NotSent(text)
            } else {
                McpError::Lost(text)
            }
        })?;
        match response.status() {
            // Not a 503: a proxy answers it also when the server went away
            // after it got the request.
            StatusCode::TOO_MANY_REQUESTS => Err(McpError::NotSent("HTTP 429".into())),
            _ => Ok(response),
        }
    }

    /// Reads the answer to request `id`: one JSON body, or the events of a
    /// stream until the one that answers it.
    async fn read_reply(
        &self,
        endpoint: &Endpoint,
        mut response: reqwest::Response,
        id: u64,
    ) -> Result<Reply, Failed> {
        let status = response.status();
        if !status.is_success() {
            let body = read_capped(&mut response, 512).await.unwrap_or_default();
            let detail = endpoint.scrub(&String::from_utf8_lossy(&body));
            let detail = if detail.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", detail.trim())
            };
            return Err(McpError::Status {
                status: status.as_u16(),
                detail,
            }
            .into());
        }
        let streamed = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let lost =
            |error: reqwest::Error| McpError::Lost(endpoint.scrub(&outbound::describe(&error)));
        if !streamed {
            let body = read_capped(&mut response, self.max_answer)
                .await
                .map_err(lost)?;
            let message: Value = serde_json::from_slice(&body)
                .map_err(|_| McpError::Protocol("the answer is not JSON".into()))?;
            return wire::reply_in(&message, id).ok_or_else(|| {
                McpError::Protocol("the answer is not the request's".into()).into()
            });
        }
        let mut events = Events::default();
        while let Some(piece) = response.chunk().await.map_err(lost)? {
            for data in events.push(&piece) {
                if let Some(reply) = serde_json::from_str::<Value>(&data)
                    .ok()
                    .and_then(|message| wire::reply_in(&message, id))
                {
                    return Ok(reply);
                }
            }
            if events.held() > self.max_answer {
                return Err(McpError::Protocol(format!(
                    "an event is larger than {} bytes",
                    self.max_answer
                ))
                .into());
            }
        }
        Err(McpError::Lost("the stream ended before the answer".into()).into())
    }
}

/// A reply's result, or its error (with the endpoint's header values cut out).
fn reply_value(reply: Reply, endpoint: &Endpoint) -> Result<Value, McpError> {
    match reply {
        Reply::Result(value) => Ok(value),
        Reply::Error { code, message } => Err(McpError::Rpc {
            code,
            message: endpoint.scrub(&message),
        }),
    }
}

/// Forgets `session` if the slot still holds it (another task may have
/// opened a new one already).
async fn forget(slot: &Slot, session: &Session) {
    let mut held = slot.lock().await;
    if held.as_ref().is_some_and(|s| s.id == session.id) {
        *held = None;
    }
}

/// Up to `cap` bytes of a body (more is an error for JSON answers).
async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    outbound::read_at_most(response, cap)
        .await
        .map(|(body, _)| body)
}

/// Sends `notifications/cancelled` for a request whose answer will not be
/// read: its future dropped (a deadline passed, the run cancelled or handed
/// back) before the answer came.
struct CancelOnDrop {
    cancel: Option<(Transport, Endpoint, Session, u64)>,
}

impl CancelOnDrop {
    fn new(transport: &Transport, endpoint: &Endpoint, session: &Session, id: u64) -> Self {
        Self {
            cancel: Some((transport.clone(), endpoint.clone(), session.clone(), id)),
        }
    }

    /// The answer came (or the request failed): nothing to cancel.
    fn disarm(mut self) {
        self.cancel = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((transport, endpoint, session, id)) = self.cancel.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let message = wire::notification(
                "notifications/cancelled",
                &json!({"requestId": id, "reason": "stewrd stopped waiting for this call"}),
            );
            if let Err(error) = transport.notify(&endpoint, &session, &message).await {
                tracing::debug!(%error, "cannot tell the MCP server a call was cancelled");
            }
        });
    }
}
