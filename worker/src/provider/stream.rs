//! Reading a streamed completion (`stream: true`): server-sent `data:` lines of
//! `chat.completion.chunk`s until `[DONE]`. Text arrives in
//! `choices[0].delta.content` and is handed on piece by piece; tool calls arrive
//! keyed by `index`, id and name in their first piece and `arguments` spread
//! over many; usage in a last chunk without choices. Comment lines (OpenRouter's
//! `: OPENROUTER PROCESSING`) are skipped; an `error` chunk under HTTP 200 is a
//! failure that may be retried.

use serde::Deserialize;
use serde_json::{Value, json};
use stewrd_shared::{
    domain::{text::storable, usage::Usage},
    runtime::outbound::Chunks,
};

use super::{Completion, MAX_BODY_BYTES, ProviderError, transport::Answer};

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<super::error::ErrorBody>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallPiece>,
}

#[derive(Deserialize)]
struct ToolCallPiece {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionPiece>,
}

#[derive(Deserialize)]
struct FunctionPiece {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// A tool call being put together.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer so far.
#[derive(Default)]
struct Assembly {
    content: Option<String>,
    calls: Vec<PartialCall>,
    usage: Option<Usage>,
    finished: bool,
    done: bool,
}

impl Assembly {
    /// Takes one line; text pieces go to `on_text`.
    fn line(
        &mut self,
        line: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), ProviderError> {
        let Some(data) = line.strip_prefix("data:") else {
            // Comments, `event:`, `id:` and blank lines carry nothing we use.
            return Ok(());
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            ProviderError::empty_success(format!("the provider sent a chunk that is not JSON: {e}"))
        })?;
        if let Some(error) = chunk.error {
            return Err(ProviderError::empty_success(error.message.unwrap_or_else(
                || "the provider reported an error in the middle of its answer".to_owned(),
            )));
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        if choice.finish_reason.is_some() {
            self.finished = true;
        }
        let Some(delta) = choice.delta else {
            return Ok(());
        };
        if let Some(text) = delta.content.filter(|t| !t.is_empty()).map(storable) {
            on_text(&text);
            self.content.get_or_insert_with(String::new).push_str(&text);
        }
        for piece in delta.tool_calls {
            if self.calls.len() <= piece.index {
                self.calls
                    .resize_with(piece.index + 1, PartialCall::default);
            }
            let call = &mut self.calls[piece.index];
            if let Some(id) = piece.id {
                call.id = id;
            }
            if let Some(function) = piece.function {
                if let Some(name) = function.name.map(storable) {
                    call.name.push_str(&name);
                }
                if let Some(arguments) = function.arguments.map(storable) {
                    call.arguments.push_str(&arguments);
                }
            }
        }
        Ok(())
    }

    fn completion(self) -> Result<Completion, ProviderError> {
        if !(self.done || self.finished) {
            return Err(ProviderError::unreachable(
                "the provider's stream ended before its answer did",
            ));
        }
        let calls: Vec<Value> = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        let tool_calls = (!calls.is_empty()).then_some(Value::Array(calls));
        if self.content.is_none() && tool_calls.is_none() {
            return Err(ProviderError::empty_success(
                "the provider's answer has neither text nor tool calls",
            ));
        }
        Ok(Completion {
            content: self.content,
            tool_calls,
            usage: self.usage,
        })
    }
}

/// Reads a 2xx streamed answer to its end.
pub(super) async fn read(
    mut answer: Answer,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Completion, ProviderError> {
    let mut assembly = Assembly::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = answer.chunk().await? {
        total += chunk.len();
        if total > MAX_BODY_BYTES {
            return Err(ProviderError::unreachable(format!(
                "the provider's answer is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            assembly.line(line.trim_end_matches(['\r', '\n']), on_text)?;
        }
        if assembly.done {
            break;
        }
    }
    if !pending.is_empty() {
        let line = String::from_utf8_lossy(&pending).into_owned();
        assembly.line(line.trim_end(), on_text)?;
    }
    assembly.completion()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> (Result<Completion, ProviderError>, Vec<String>) {
        let mut assembly = Assembly::default();
        let mut pieces = Vec::new();
        for line in lines {
            if let Err(error) = assembly.line(line, &mut |t| pieces.push(t.to_owned())) {
                return (Err(error), pieces);
            }
        }
        (assembly.completion(), pieces)
    }

    #[test]
    fn text_pieces_are_handed_on_and_usage_comes_last() {
        let (completion, pieces) = feed(&[
            ": OPENROUTER PROCESSING",
            r#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"data: {"choices":[{"delta":{"content":"Hel"}}]}"#,
            "",
            r#"data:{"choices":[{"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#,
            "data: [DONE]",
        ]);
        assert_eq!(pieces, ["Hel", "lo"]);
        let completion = completion.expect("a completion");
        assert_eq!(completion.content.as_deref(), Some("Hello"));
        assert_eq!(completion.usage.map(|u| u.total_tokens), Some(3));
    }

    #[test]
    fn tool_calls_are_put_together_by_index() {
        let (completion, _) = feed(&[
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "data: [DONE]",
        ]);
        let calls = completion.expect("a completion").tool_calls.expect("calls");
        assert_eq!(calls[0]["id"], "call_a");
        assert_eq!(calls[0]["function"]["arguments"], r#"{"x":1}"#);
        assert_eq!(calls[1]["function"]["name"], "g");
    }

    #[test]
    fn an_error_chunk_or_an_early_end_is_a_retryable_failure() {
        let (error, pieces) = feed(&[
            r#"data: {"choices":[{"delta":{"content":"par"}}]}"#,
            r#"data: {"error":{"code":502,"message":"upstream died"}}"#,
        ]);
        let error = error.expect_err("a failure");
        assert_eq!(error.message, "upstream died");
        assert!(error.retry.allowed());
        assert_eq!(pieces, ["par"]);
        let (cut, _) = feed(&[r#"data: {"choices":[{"delta":{"content":"par"}}]}"#]);
        assert!(cut.expect_err("cut short").retry.allowed());
        let (garbage, _) = feed(&["data: {not json"]);
        assert!(garbage.is_err());
    }
}
