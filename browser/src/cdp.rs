//! A DevTools protocol (CDP) connection to one Chromium: commands sent over
//! its WebSocket, each answered by id, each with a deadline (a command
//! Chromium never answers must not hang an action: chromiumoxide#243), and
//! the events it sends, for who listens. Ours rather than chromiumoxide's:
//! the eighteen commands the tools use fit here, build in seconds, and do not
//! depend on a generated protocol older than Debian's Chromium (NOTES.md).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Why a command gave no result.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    /// The browser is gone (crashed, killed, or closed).
    #[error("the browser closed")]
    Closed,
    #[error("the browser did not answer {0} in time")]
    Timeout(String),
    /// Chromium refused the command (a node that is gone, bad parameters).
    #[error("{0}")]
    Refused(String),
}

/// An event Chromium sent, of the page session `session` (none: the browser's).
#[derive(Clone, Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
    pub session: Option<String>,
}

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One browser's DevTools connection.
pub struct Cdp {
    outgoing: mpsc::UnboundedSender<String>,
    waiting: Waiting,
    /// Only the reader holds the sender: when Chromium's side ends, every
    /// receiver learns it (a wait for an event never outlives the browser).
    events: broadcast::Receiver<Event>,
    next_id: AtomicU64,
    deadline: Duration,
    /// Set once Chromium's side of the connection ended.
    closed: Arc<AtomicBool>,
}

impl Cdp {
    /// Connects to `url` (the `ws://127.0.0.1:…/devtools/browser/…` Chromium
    /// printed); every command then gets `deadline` to be answered.
    pub async fn connect(url: &str, deadline: Duration) -> Result<Self, CdpError> {
        let (socket, _) = tokio::time::timeout(deadline, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| CdpError::Timeout("the DevTools connection".into()))?
            .map_err(|_| CdpError::Closed)?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queued) = mpsc::unbounded_channel::<String>();
        let waiting: Waiting = Arc::default();
        let (sent_events, events) = broadcast::channel(256);
        tokio::spawn(async move {
            while let Some(text) = queued.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let answers = waiting.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let ended = closed.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                dispatch(&answers, &sent_events, &value);
            }
            // Gone: every command still waiting learns it now.
            ended.store(true, Ordering::Release);
            if let Ok(mut waiting) = answers.lock() {
                waiting.clear();
            }
        });
        Ok(Self {
            outgoing,
            waiting,
            events,
            next_id: AtomicU64::new(1),
            deadline,
            closed,
        })
    }

    /// Sends `method` (to page session `session`, or to the browser) and waits
    /// for its result, at most the connection's deadline.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock().map_err(|_| CdpError::Closed)?;
            // Checked under the lock the reader clears it under: no command
            // waits out its deadline on a connection already gone.
            if !self.is_open() {
                return Err(CdpError::Closed);
            }
            waiting.insert(id, answer);
        }
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        if self.outgoing.send(command.to_string()).is_err() {
            self.forget(id);
            return Err(CdpError::Closed);
        }
        match tokio::time::timeout(self.deadline, answered).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(message))) => Err(CdpError::Refused(message)),
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => {
                self.forget(id);
                Err(CdpError::Timeout(method.to_owned()))
            }
        }
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.resubscribe()
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.outgoing.is_closed()
    }

    fn forget(&self, id: u64) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
    }
}

/// A message from Chromium: the answer to a command, or an event.
fn dispatch(waiting: &Waiting, events: &broadcast::Sender<Event>, value: &Value) {
    if let Some(id) = value.get("id").and_then(Value::as_u64) {
        let answer = waiting.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(answer) = answer {
            let result = match value.get("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("refused")
                    .to_owned()),
                None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = answer.send(result);
        }
        return;
    }
    if let Some(method) = value.get("method").and_then(Value::as_str) {
        let _ = events.send(Event {
            method: method.to_owned(),
            params: value.get("params").cloned().unwrap_or(Value::Null),
            session: value
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
}
