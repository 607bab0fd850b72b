//! A webhook receiver (and server-tool endpoint) on its own port: records every
//! request and answers from a script (statuses, headers, bodies, delays), then
//! 200; counts requests whose client hung up before the answer.

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    pub body: String,
    /// Bytes sent as they are instead of `body` (a binary or broken answer).
    pub raw: Option<Vec<u8>>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// 200 with this body (a server tool's output); `$tool_call_id` in it
    /// becomes the id of the call answered.
    pub fn ok(body: &str) -> Self {
        Self {
            status: 200,
            body: body.to_owned(),
            ..Self::default()
        }
    }

    /// 200 with exactly these bytes.
    pub fn bytes(body: &[u8]) -> Self {
        Self {
            status: 200,
            raw: Some(body.to_vec()),
            ..Self::default()
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// Wall-clock arrival, for comparing with times stored in Postgres.
    pub at_wall: std::time::SystemTime,
    /// When the answer was sent (`None`: not yet, or the client hung up first).
    pub answered: Arc<Mutex<Option<Instant>>>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// Whether the Standard Webhooks library (not our own code) accepts the
    /// signature with `secret` (`whsec_…`).
    pub fn verifies_with(&self, secret: &str) -> bool {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::try_from(name.as_str()),
                reqwest::header::HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        standardwebhooks::Webhook::new(secret)
            .and_then(|hook| hook.verify(self.body.as_bytes(), &headers))
            .is_ok()
    }
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Answer>>,
    /// The answer once the script is used up (200 when unset).
    default: Mutex<Option<Answer>>,
    received: Mutex<Vec<Received>>,
    dropped: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a request whose client went away before its answer, and the
/// requests in flight.
struct Pending<'a>(&'a Inner, bool);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if !self.1 {
            self.0
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A running receiver.
pub struct Receiver {
    pub address: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let address = listener.local_addr().expect("address");
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(receive).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/stewrd", self.address)
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.script.lock().expect("lock").extend(answers);
    }

    /// The answer given once the script is used up.
    pub fn answer_by_default(&self, answer: Answer) {
        *self.inner.default.lock().expect("lock") = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// The most requests in flight at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.inner
            .max_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests whose client hung up before the answer.
    pub fn dropped(&self) -> usize {
        self.inner
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Received {
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        at_wall: std::time::SystemTime::now(),
        answered: Arc::default(),
    };
    let answered = received.answered.clone();
    inner.received.lock().expect("lock").push(received);
    let now = inner
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    inner
        .max_in_flight
        .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    let mut pending = Pending(&inner, false);
    let answer = inner
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .or_else(|| inner.default.lock().expect("lock").clone())
        .unwrap_or_else(|| Answer::status(200));
    tokio::time::sleep(answer.delay).await;
    pending.1 = true;
    *answered.lock().expect("lock") = Some(Instant::now());
    let call_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["data"]["tool_call_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = match answer.raw {
        Some(bytes) => (status, bytes).into_response(),
        None => (status, answer.body.replace("$tool_call_id", &call_id)).into_response(),
    };
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
