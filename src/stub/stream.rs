//! Streamed answers (`stream: true`): a completion sent as server-sent
//! `chat.completion.chunk` events, paced, the way OpenAI and OpenRouter send
//! them: a keep-alive comment, the text in pieces, tool calls with their
//! arguments spread over several chunks, the finish reason, usage in a last
//! chunk without choices, then `[DONE]`. A scripted reply can fail mid-stream
//! with an error chunk under HTTP 200, as OpenRouter does.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderValue, header::CONTENT_TYPE},
    response::Response,
};
use serde_json::{Value, json};

use super::{InFlight, Reply};

/// Written in place of a stamped piece's text, replaced as it is sent.
const STAMP: &str = "@@stamp@@";

/// How unscripted text is streamed.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    /// Pieces per answer (0: a piece per word).
    pub pieces: usize,
    pub pace: Duration,
    /// Each piece is the time it is written.
    pub stamped: bool,
}

/// The answer as a paced event stream. The call counts as in flight until the
/// last line is written; a client that goes away before is counted as dropped.
pub(super) fn respond(
    reply: &Reply,
    completion: &Value,
    shape: Shape,
    in_flight: InFlight,
) -> Response {
    let pace = reply.pace_ms.map_or(shape.pace, Duration::from_millis);
    let stamps = shape
        .stamped
        .then(|| vec![STAMP.to_owned(); shape.pieces.max(1)]);
    let explicit = reply.chunks.as_deref().or(stamps.as_deref());
    let lines = lines_of(completion, explicit, shape.pieces, reply.error_after);
    let body = futures_util::stream::unfold(
        (lines.into_iter(), in_flight, 0usize),
        move |(mut lines, in_flight, sent)| async move {
            let Some(line) = lines.next() else {
                in_flight.finish();
                return None;
            };
            // The first two lines (a comment, the role) go at once.
            if sent > 1 && !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            let line = if line.contains(STAMP) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                line.replace(STAMP, &format!("{:016} ", now.as_micros()))
            } else {
                line
            };
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (lines, in_flight, sent + 1),
            ))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// `text` in `pieces` pieces of about equal length (0: one per word, with its
/// space).
fn split(text: &str, pieces: usize) -> Vec<String> {
    if pieces == 0 {
        return text.split_inclusive(' ').map(str::to_owned).collect();
    }
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn data(chunk: &Value) -> String {
    format!("data: {chunk}\n\n")
}

/// Every line of the stream for `completion`.
fn lines_of(
    completion: &Value,
    explicit: Option<&[String]>,
    pieces: usize,
    error_after: Option<usize>,
) -> Vec<String> {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let chunk = |delta: Value, finish: Value| {
        data(&json!({
            "id": completion["id"], "object": "chat.completion.chunk", "model": completion["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }))
    };
    let mut lines = vec![
        ": stub processing\n\n".to_owned(),
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    ];
    let text = message["content"].as_str().unwrap_or_default();
    let parts = explicit.map_or_else(|| split(text, pieces), <[String]>::to_vec);
    for (i, part) in parts.iter().enumerate() {
        if error_after == Some(i) {
            lines.push(data(
                &json!({"error": {"code": 502, "message": "stub failed mid-stream"}}),
            ));
            return lines;
        }
        lines.push(chunk(json!({"content": part}), Value::Null));
    }
    for (index, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        lines.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"], "arguments": ""}}]}),
            Value::Null,
        ));
        let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
        for half in split(arguments, 2) {
            lines.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": half}}]}),
                Value::Null,
            ));
        }
    }
    lines.push(chunk(json!({}), choice["finish_reason"].clone()));
    lines.push(data(&json!({
        "id": completion["id"], "object": "chat.completion.chunk", "model": completion["model"],
        "choices": [], "usage": completion["usage"],
    })));
    lines.push("data: [DONE]\n\n".to_owned());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_into_the_pieces_asked_for_and_joins_back() {
        assert_eq!(split("a bc d", 0), ["a ", "bc ", "d"]);
        assert_eq!(split("abcdef", 3), ["ab", "cd", "ef"]);
        assert_eq!(split("ab", 5), ["a", "b"]);
        assert_eq!(split("héllo wörld", 4).concat(), "héllo wörld");
    }

    #[test]
    fn a_failing_stream_stops_at_its_error_chunk() {
        let completion = json!({"choices": [{"message": {"content": "one two three"}}]});
        let lines = lines_of(&completion, None, 0, Some(2));
        assert!(lines.last().is_some_and(|l| l.contains("\"error\"")));
        assert!(!lines.iter().any(|l| l.contains("[DONE]")));
    }
}
