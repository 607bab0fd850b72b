//! A stub provider speaking OpenAI's chat-completions wire format over real HTTP:
//! the only thing stewrd's tests and `stewrd dev` ever fake. It answers
//! deterministically from the input, can be scripted with statuses, headers,
//! bodies and delays, and records what it received and how many calls were in
//! flight at once.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod stream;

/// One scripted answer, used once, in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reply {
    /// HTTP status; 200 when unset.
    pub status: Option<u16>,
    /// Extra response headers (e.g. `retry-after`).
    pub headers: BTreeMap<String, String>,
    /// The whole body; for a 200 without one, the usual completion is sent.
    pub body: Option<Value>,
    /// Wait this long before answering (overrides the default delay).
    pub delay_ms: Option<u64>,
    /// Streamed (`stream: true`): the text in exactly these pieces.
    pub chunks: Option<Vec<String>>,
    /// Streamed: an error chunk (HTTP 200) after this many pieces.
    pub error_after: Option<usize>,
    /// Streamed: the wait between pieces (overrides the default pace).
    pub pace_ms: Option<u64>,
}

impl Reply {
    /// An error answer with OpenAI's error body.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status: Some(status),
            body: Some(json!({"error": {"message": message, "type": code, "code": code}})),
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A completion that calls tools: `(id, name, arguments as JSON text)`,
    /// with `usage` of `tokens` in all.
    pub fn tool_calls(calls: &[(&str, &str, &str)], tokens: u64) -> Self {
        let calls: Vec<Value> = calls
            .iter()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        Self {
            body: Some(json!({
                "id": "chatcmpl-stub", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                             "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
                "usage": {"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens / 2,
                          "total_tokens": tokens},
            })),
            ..Self::default()
        }
    }

    /// A plain answer of `text`, with `usage` of `tokens` in all.
    pub fn text(text: &str, tokens: u64) -> Self {
        Self {
            body: Some(json!({
                "id": "chatcmpl-stub", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens / 2,
                          "total_tokens": tokens},
            })),
            ..Self::default()
        }
    }

    /// Delays the answer.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(delay.as_millis() as u64);
        self
    }

    /// Streamed, a plain answer in these pieces, `pace` apart.
    pub fn streamed(pieces: &[&str], pace: Duration, tokens: u64) -> Self {
        Self {
            chunks: Some(pieces.iter().map(|p| (*p).to_owned()).collect()),
            pace_ms: Some(pace.as_millis() as u64),
            ..Self::text(&pieces.concat(), tokens)
        }
    }

    /// Streamed, an error chunk after `pieces` (a provider failing mid-answer).
    pub fn failing_after(mut self, pieces: usize) -> Self {
        self.error_after = Some(pieces);
        self
    }
}

/// A request the stub received.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    pub path: String,
    /// The `Authorization` header as received (tests compare it with the key).
    pub authorization: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// Milliseconds since the stub started.
    pub at_ms: u64,
    /// Wall-clock arrival, for comparing with times stored in Postgres.
    #[serde(skip)]
    pub at: std::time::SystemTime,
}

/// The stub's shared state; tests in the same process read and script it directly.
pub struct StubState {
    started: Instant,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    record: AtomicBool,
    delay_ms: AtomicU64,
    /// Answers without a delay of their own wait up to this much more than
    /// `delay_ms`, call by call (see [`StubState::set_spread`]).
    spread_ms: AtomicU64,
    /// Unscripted, with tools offered: how many times the first tool is called
    /// before the answer (1: once, then its output is echoed).
    tool_rounds: AtomicUsize,
    /// Unscripted streams: pieces per answer (0: a piece per word) and the
    /// wait between them.
    stream_pieces: AtomicUsize,
    stream_pace_us: AtomicU64,
    /// Unscripted streams: each piece is the time it is written (for
    /// `stewrd bench stream`, which measures delivery latency with it).
    stamp_pieces: AtomicBool,
    calls: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Calls in flight and the most at once, by `Authorization` header (one
    /// provider key per project in the tenant tests).
    by_key: Mutex<HashMap<String, (usize, usize)>>,
    dropped: AtomicU64,
}

/// Counters, as `GET /_stub/stats` returns them.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StubStats {
    pub calls: u64,
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Calls whose client went away before the answer.
    pub dropped: u64,
}

impl StubState {
    fn new(delay: Duration, record: bool) -> Self {
        Self {
            started: Instant::now(),
            script: Mutex::default(),
            requests: Mutex::default(),
            record: AtomicBool::new(record),
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            spread_ms: AtomicU64::new(0),
            tool_rounds: AtomicUsize::new(1),
            stream_pieces: AtomicUsize::new(0),
            stream_pace_us: AtomicU64::new(0),
            stamp_pieces: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            by_key: Mutex::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues scripted replies, used before the default answer.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.script).extend(replies);
    }

    /// Drops the scripted replies not used yet.
    pub fn clear(&self) {
        lock(&self.script).clear();
    }

    /// Sets how many tool calls an unscripted conversation with tools makes
    /// (one per model answer) before it answers.
    pub fn set_tool_rounds(&self, rounds: usize) {
        self.tool_rounds.store(rounds, Ordering::Relaxed);
    }

    /// Sets how unscripted streamed answers come: in `pieces` pieces (0: one
    /// per word), `pace` apart.
    pub fn set_streaming(&self, pieces: usize, pace: Duration) {
        self.stream_pieces.store(pieces, Ordering::Relaxed);
        self.stream_pace_us
            .store(pace.as_micros() as u64, Ordering::Relaxed);
    }

    /// Makes each piece of an unscripted streamed answer the wall-clock time it
    /// is written at (microseconds since the epoch, 16 digits and a space).
    pub fn set_stamping(&self, on: bool) {
        self.stamp_pieces.store(on, Ordering::Relaxed);
    }

    /// Sets the delay of unscripted answers.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Spreads the delays of answers that set none of their own over
    /// `delay ..= delay + spread`, call by call (a fixed stride through the
    /// range, no randomness): calls started together finish apart, as real
    /// model calls do, so their results come one at a time (`stewrd bench
    /// latency --call-spread-ms`).
    pub fn set_spread(&self, spread: Duration) {
        self.spread_ms
            .store(spread.as_millis() as u64, Ordering::Relaxed);
    }

    /// Every recorded request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// The most calls in flight at once with this `Authorization` header.
    pub fn max_in_flight_with(&self, authorization: &str) -> usize {
        lock(&self.by_key)
            .get(authorization)
            .map_or(0, |(_, max)| *max)
    }

    /// The counters.
    pub fn stats(&self) -> StubStats {
        StubStats {
            calls: self.calls.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stub.
pub struct Stub {
    pub state: Arc<StubState>,
    pub address: SocketAddr,
    stop: CancellationToken,
}

impl Stub {
    /// Serves on `listener` until dropped (or until `stop` for a CLI).
    pub async fn start(
        listener: TcpListener,
        delay: Duration,
        record: bool,
    ) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let state = Arc::new(StubState::new(delay, record));
        let stop = CancellationToken::new();
        let app = router(state.clone());
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await;
        });
        Ok(Self {
            state,
            address,
            stop,
        })
    }

    /// The base URL to configure as a provider's (`…/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Waits until stopped.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn router(state: Arc<StubState>) -> Router {
    Router::new()
        .route("/_stub/requests", get(requests))
        .route("/_stub/stats", get(stats))
        .route("/_stub/script", post(script))
        .route("/_stub/tools/pixel", post(pixel_tool))
        .fallback(complete)
        .with_state(state)
}

/// A 1×1 PNG.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A demo server tool for `stewrd dev` walk-throughs: answers every call
/// with an image (a tool artifact).
async fn pixel_tool() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/png"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"pixel.png\"",
            ),
        ],
        PIXEL,
    )
        .into_response()
}

async fn requests(State(state): State<Arc<StubState>>) -> Json<Vec<Recorded>> {
    Json(state.requests())
}

async fn stats(State(state): State<Arc<StubState>>) -> Json<StubStats> {
    Json(state.stats())
}

async fn script(
    State(state): State<Arc<StubState>>,
    Json(replies): Json<Vec<Reply>>,
) -> StatusCode {
    state.push(replies);
    StatusCode::NO_CONTENT
}

/// Counts a call in flight; a call dropped before `finish` was abandoned by its
/// client. A streamed answer carries it until its last piece is written.
struct InFlight {
    state: Arc<StubState>,
    key: String,
    /// This call's number (0 for the first), for the spread of its delay.
    number: u64,
    finished: bool,
}

impl InFlight {
    fn enter(state: &Arc<StubState>, key: String) -> Self {
        let number = state.calls.fetch_add(1, Ordering::Relaxed);
        let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.max_in_flight.fetch_max(now, Ordering::Relaxed);
        {
            let mut by_key = lock(&state.by_key);
            let (now, max) = by_key.entry(key.clone()).or_default();
            *now += 1;
            *max = (*max).max(*now);
        }
        Self {
            state: state.clone(),
            key,
            number,
            finished: false,
        }
    }
}

impl InFlight {
    /// The answer is written whole.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some((now, _)) = lock(&self.state.by_key).get_mut(&self.key) {
            *now = now.saturating_sub(1);
        }
        if !self.finished {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn complete(
    State(state): State<Arc<StubState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST || !uri.path().ends_with("/chat/completions") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "not found"}})),
        )
            .into_response();
    }
    let key = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let in_flight = InFlight::enter(&state, key);
    // OpenRouter (under `/api/`) reports what each answer cost; OpenAI does not.
    let priced = uri.path().starts_with("/api/");
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if state.record.load(Ordering::Relaxed) {
        record(&state, &uri, &headers, &request);
    }
    // As OpenAI does: a conversation whose tool calls and results do not
    // pair up is refused, before any scripted answer is used.
    if let Some(problem) = unpaired_tool_calls(&request) {
        in_flight.finish();
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"message": problem, "type": "invalid_request_error",
                                   "param": "messages", "code": null}}),
            ),
        )
            .into_response();
    }
    let reply = fill_refs(
        lock(&state.script).pop_front().unwrap_or_default(),
        &request,
    );
    let delay = reply.delay_ms.unwrap_or_else(|| {
        let spread = state.spread_ms.load(Ordering::Relaxed);
        // A stride coprime with most spreads walks the whole range.
        let offset = in_flight
            .number
            .wrapping_mul(7_919)
            .checked_rem(spread.saturating_add(1))
            .unwrap_or(0);
        state
            .delay_ms
            .load(Ordering::Relaxed)
            .saturating_add(offset)
    });
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let streamed =
        request["stream"] == true && reply.status.is_none_or(|s| (200..300).contains(&s));
    if streamed {
        let pace = Duration::from_micros(state.stream_pace_us.load(Ordering::Relaxed));
        let pieces = state.stream_pieces.load(Ordering::Relaxed);
        let stamped = reply.body.is_none() && state.stamp_pieces.load(Ordering::Relaxed);
        let body = reply.body.clone().unwrap_or_else(|| {
            priced_if(
                priced,
                completion(&request, state.tool_rounds.load(Ordering::Relaxed)),
            )
        });
        let shape = stream::Shape {
            pieces,
            pace,
            stamped,
        };
        return stream::respond(&reply, &body, shape, in_flight);
    }
    in_flight.finish();
    respond(
        reply,
        &request,
        state.tool_rounds.load(Ordering::Relaxed),
        priced,
    )
}

/// A scripted answer's `{{ref:<name>}}` becomes the ref the conversation's
/// last tool result gives the element named `<name>` (a browser snapshot's
/// line `- <role> "<name>" … [ref=e12]`; `e0` when none): the stub reads a
/// snapshot as a model would, so scripts can act on elements whose refs are
/// known only once the page is open.
fn fill_refs(mut reply: Reply, request: &Value) -> Reply {
    let Some(text) = reply.body.as_ref().map(Value::to_string) else {
        return reply;
    };
    if !text.contains("{{ref:") {
        return reply;
    }
    let snapshot = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "tool"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let mut filled = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("{{ref:") {
        filled.push_str(&rest[..at]);
        let after = &rest[at + "{{ref:".len()..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let quoted = format!("\"{}\"", &after[..end]);
        let found = snapshot
            .lines()
            .find(|line| line.contains(&quoted) && line.contains("[ref="))
            .and_then(|line| line.split("[ref=").nth(1))
            .and_then(|r| r.split(']').next())
            .unwrap_or("e0");
        filled.push_str(found);
        rest = &after[end + 2..];
    }
    filled.push_str(rest);
    reply.body = serde_json::from_str(&filled).ok().or(reply.body);
    reply
}

/// What the stub charges OpenRouter clients per token, in USD.
pub const STUB_USD_PER_TOKEN: f64 = 0.000_002;

/// Adds OpenRouter's `usage.cost` to an unscripted answer.
fn priced_if(priced: bool, mut body: Value) -> Value {
    if priced && let Some(total) = body["usage"]["total_tokens"].as_u64() {
        body["usage"]["cost"] = json!(total as f64 * STUB_USD_PER_TOKEN);
    }
    body
}

fn record(state: &StubState, uri: &Uri, headers: &HeaderMap, body: &Value) {
    let text = |value: &HeaderValue| value.to_str().unwrap_or_default().to_owned();
    let recorded = Recorded {
        path: uri.path().to_owned(),
        authorization: headers.get("authorization").map(text),
        headers: headers
            .iter()
            .filter(|(name, _)| *name != "authorization")
            .map(|(name, value)| (name.as_str().to_owned(), text(value)))
            .collect(),
        body: body.clone(),
        at_ms: state.started.elapsed().as_millis() as u64,
        at: std::time::SystemTime::now(),
    };
    lock(&state.requests).push(recorded);
}

fn respond(reply: Reply, request: &Value, tool_rounds: usize, priced: bool) -> Response {
    let status = StatusCode::from_u16(reply.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    let body = reply.body.unwrap_or_else(|| {
        if status.is_success() {
            priced_if(priced, completion(request, tool_rounds))
        } else {
            json!({"error": {"message": format!("stub error {}", status.as_u16()), "type": "stub_error", "code": null}})
        }
    });
    let mut response = (status, Json(body)).into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// What is wrong with the pairing of the conversation's tool calls and their
/// results, if anything: each assistant message's tool calls must be answered,
/// each exactly once, by the `tool` messages right after it, and a `tool`
/// message must answer a call of that assistant message.
pub fn unpaired_tool_calls(request: &Value) -> Option<String> {
    let messages = request["messages"].as_array()?;
    let mut pending: Vec<&str> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        if message["role"] == "tool" {
            let id = message["tool_call_id"].as_str().unwrap_or_default();
            let Some(at) = pending.iter().position(|p| *p == id) else {
                return Some(format!(
                    "messages[{index}]: a message with role 'tool' must be a response to a \
                     preceding message with 'tool_calls' (no call {id:?} is waiting)"
                ));
            };
            pending.remove(at);
            continue;
        }
        if !pending.is_empty() {
            return Some(format!(
                "messages[{index}]: an assistant message with 'tool_calls' must be followed by \
                 tool messages responding to each 'tool_call_id' ({pending:?} unanswered)"
            ));
        }
        if let Some(calls) = message["tool_calls"].as_array() {
            pending = calls.iter().filter_map(|c| c["id"].as_str()).collect();
        }
    }
    (!pending.is_empty()).then(|| format!("tool calls {pending:?} are never answered"))
}

/// The deterministic answer: `Echo: ` and the last user message; usage counts words.
pub fn answer_to(last_user_message: &str) -> String {
    format!("Echo: {last_user_message}")
}

/// A message's text: its content, or the text parts of a message in parts (a
/// message with files), one per line, so the echo shows what the model read.
fn text_of(content: &Value) -> Option<String> {
    if let Some(text) = content.as_str() {
        return Some(text.to_owned());
    }
    let texts: Vec<&str> = content
        .as_array()?
        .iter()
        .filter(|part| part["type"] == "text")
        .filter_map(|part| part["text"].as_str())
        .collect();
    Some(texts.join("\n"))
}

/// A user message stewrd adds to show a tool's images (not the user's).
fn shows_images(message: &Value) -> bool {
    message["content"]
        .as_array()
        .is_some_and(|parts| !parts.is_empty() && parts.iter().all(|p| p["type"] == "image_url"))
}

/// Unscripted, with tools offered: the first tool is called `rounds` times,
/// one call per answer, then its last output is echoed, so the whole loop can
/// be tried with curl. Its arguments are none, except a `url` the tool takes:
/// the first URL of the user's message (so `web_fetch` can be shown).
fn tool_call(request: &Value, messages: &[Value], rounds: usize) -> Option<Value> {
    let tool = request["tools"].as_array()?.first()?;
    let name = tool["function"]["name"].as_str()?;
    let url = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .and_then(|text| {
            text.split_whitespace()
                .find(|word| word.starts_with("http://") || word.starts_with("https://"))
        })
        .filter(|_| {
            tool["function"]["parameters"]["properties"]
                .get("url")
                .is_some()
        });
    let arguments = url.map_or_else(|| "{}".to_owned(), |url| json!({"url": url}).to_string());
    let since_user = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] != "user" || shows_images(m));
    if since_user.filter(|m| m["role"] == "tool").count() >= rounds {
        return None;
    }
    let id = format!("call_stub_{}", messages.len());
    Some(json!({
        "id": "chatcmpl-stub", "object": "chat.completion", "model": request["model"],
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }))
}

/// Unscripted, when the browser is offered and the message asks to "click":
/// once the page's snapshot has come, its first button is clicked (once), so
/// a browser run that acts needs no script (the browser fault test's runs).
fn click_the_button(request: &Value, messages: &[Value]) -> Option<Value> {
    let offered = request["tools"]
        .as_array()?
        .iter()
        .any(|t| t["function"]["name"] == "browser_click");
    let asked = messages
        .iter()
        .rposition(|m| m["role"] == "user" && !shows_images(m))?;
    if !offered || !messages[asked]["content"].as_str()?.contains("click") {
        return None;
    }
    let since = &messages[asked + 1..];
    let clicked = since.iter().any(|m| {
        m["tool_calls"].as_array().is_some_and(|calls| {
            calls
                .iter()
                .any(|c| c["function"]["name"] == "browser_click")
        })
    });
    let last = since.iter().rev().find(|m| !shows_images(m))?;
    if clicked || last["role"] != "tool" {
        return None;
    }
    let button = last["content"]
        .as_str()?
        .lines()
        .find(|line| line.trim_start().starts_with("- button "))?;
    let reference = button.split("[ref=").nth(1)?.split(']').next()?;
    let id = format!("call_stub_{}", messages.len());
    Some(json!({
        "id": "chatcmpl-stub", "object": "chat.completion", "model": request["model"],
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {
                "name": "browser_click", "arguments": json!({"ref": reference}).to_string()}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }))
}

fn completion(request: &Value, tool_rounds: usize) -> Value {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    if let Some(call) = click_the_button(request, &messages) {
        return call;
    }
    if let Some(call) = tool_call(request, &messages, tool_rounds) {
        return call;
    }
    // After a tool's result, echo the result; else the last user message.
    let last = messages.iter().rev().find(|m| !shows_images(m));
    let echoed = match last {
        Some(m) if m["role"] == "tool" => m["content"].as_str().map(str::to_owned),
        _ => messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| text_of(&m["content"])),
    };
    let content = answer_to(echoed.as_deref().unwrap_or_default());
    let words = |text: &str| text.split_whitespace().count() as u64;
    let prompt: u64 = messages
        .iter()
        .map(|m| words(m["content"].as_str().unwrap_or_default()))
        .sum();
    let completion_tokens = words(&content);
    json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens},
    })
}
