//! The Streamable HTTP transport's messages: JSON-RPC requests and
//! notifications POSTed to the server, and its answer to a request, which
//! comes as one JSON body or as a server-sent event stream that may carry
//! notifications (progress, logs) and requests of its own before it.

use serde_json::{Value, json};

/// A request of `method` with `id`.
pub fn request(id: u64, method: &str, params: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification (no answer expected).
pub fn notification(method: &str, params: &Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// What the answer to request `id` said.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Result(Value),
    Error { code: i64, message: String },
}

/// Request `id`'s answer among `message` (one message, or a batch of them).
pub fn reply_in(message: &Value, id: u64) -> Option<Reply> {
    if let Some(batch) = message.as_array() {
        return batch.iter().find_map(|m| reply_in(m, id));
    }
    if message["id"].as_u64() != Some(id) || message.get("method").is_some() {
        return None;
    }
    if let Some(error) = message.get("error") {
        return Some(Reply::Error {
            code: error["code"].as_i64().unwrap_or(0),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Some(Reply::Result(
        message.get("result").cloned().unwrap_or(Value::Null),
    ))
}

/// Reads server-sent events as their bytes arrive: `push` a piece, then take
/// the data of each whole event.
#[derive(Default)]
pub struct Events {
    pending: Vec<u8>,
    data: String,
}

impl Events {
    /// Takes more of the stream; returns the data of the events it completed.
    pub fn push(&mut self, piece: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(piece);
        let mut done = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    done.push(std::mem::take(&mut self.data));
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
            // `event:`, `id:`, `retry:` and comments change nothing here.
        }
        done
    }

    /// Bytes held while waiting for the end of a line or an event.
    pub fn held(&self) -> usize {
        self.pending.len() + self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_found_among_notifications_and_split_events() {
        let mut events = Events::default();
        let stream = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n\
                      : a comment\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\n\
                      data: \"result\":{\"content\":[]}}\n\n";
        let (first, second) = stream.as_bytes().split_at(30);
        let mut seen = events.push(first);
        seen.extend(events.push(second));
        assert_eq!(seen.len(), 2);
        let replies: Vec<_> = seen
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|m| reply_in(&m, 7))
            .collect();
        assert_eq!(replies, [Reply::Result(json!({"content": []}))]);
        assert_eq!(events.held(), 0);
    }

    #[test]
    fn errors_and_batches_are_read_and_other_ids_ignored() {
        let batch = json!([{"jsonrpc": "2.0", "id": 1, "result": {}},
                           {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}}]);
        assert_eq!(
            reply_in(&batch, 2),
            Some(Reply::Error {
                code: -32602,
                message: "bad".into()
            })
        );
        assert_eq!(reply_in(&batch, 3), None);
        // A server's request to the client carries an id too: not an answer.
        let asks = json!({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"});
        assert_eq!(reply_in(&asks, 1), None);
    }
}
