//! The OpenAI-compatible chat-completions client, shared by every job of a worker
//! process (one connection pool for thousands of concurrent calls).

mod error;
mod stream;
mod transport;

pub use error::{ProviderError, Retry, classify_status, retry_after};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stewrd_shared::{
    domain::{
        model::{Provider, Role},
        text::{storable, storable_json},
        usage::Usage,
    },
    runtime::{
        config::{ProviderUrls, WorkerSettings},
        outbound::read_at_most,
    },
};
pub use transport::BuildError;
use transport::{Answer, Transport};

/// Largest provider answer read; beyond it the call fails rather than eat memory.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Sent to OpenRouter, which credits traffic to the calling app.
const OPENROUTER_REFERER: &str = "https://github.com/stewrd/stewrd";
const OPENROUTER_TITLE: &str = "stewrd";

/// One chat message on the wire.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    /// `null` for an assistant message that only calls tools.
    pub content: Option<Content>,
    /// An assistant message's tool calls, exactly as the provider wrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A plain message (`system`, `user` or `assistant`).
    pub fn new(role: Role, content: &str) -> Self {
        Self {
            role,
            content: Some(Content::Text(content.to_owned())),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The assistant's answer as it came: its text, and its tool calls if any.
    pub fn assistant(content: Option<&str>, tool_calls: Option<&Value>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.map(|text| Content::Text(text.to_owned())),
            tool_calls: tool_calls.cloned(),
            tool_call_id: None,
        }
    }

    /// A user message of parts (its text, then the files it carries).
    pub fn user_parts(parts: Vec<Part>) -> Self {
        Self {
            role: Role::User,
            content: Some(Content::Parts(parts)),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The text of a message of text alone.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            Some(Content::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// A tool's result for one call.
    pub fn tool(tool_call_id: &str, output: &str) -> Self {
        Self {
            role: Role::Tool,
            content: Some(Content::Text(output.to_owned())),
            tool_calls: None,
            tool_call_id: Some(tool_call_id.to_owned()),
        }
    }
}

/// A message's content: text, or parts (text, images, files), in the
/// chat-completions shapes OpenAI and OpenRouter both take.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// One part of a message's content.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    /// An image, as a `data:` URL of its bytes.
    ImageUrl {
        image_url: ImageUrl,
    },
    /// A PDF, as a `data:` URL of its bytes.
    File {
        file: FileData,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileData {
    pub filename: String,
    pub file_data: String,
}

/// What an image part is counted as when a call's worst case is reserved:
/// OpenAI's most for one image at high detail (a 2048 px square: 16 tiles of
/// 170 tokens and 85), rounded up.
const IMAGE_TOKENS: usize = 3_000;

/// A chat-completions request. Tools, tool choice and response format go to
/// the provider as the client gave them.
#[derive(Clone, Debug, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Streams the answer (`stewrd`'s `stream: true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// OpenAI sends a streamed answer's usage only when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
}

impl ChatRequest {
    /// An upper bound of the prompt's tokens, in bytes: its messages and tools
    /// as sent (a token of the models' byte-level tokenizers is at least one
    /// byte; the JSON around each message covers its framing tokens), except
    /// that an image counts as [`IMAGE_TOKENS`] and a PDF as its bytes, not
    /// as the base64 text of their data URLs.
    pub fn prompt_bytes(&self) -> usize {
        let sent = serde_json::to_vec(&(&self.messages, &self.tools)).map_or(0, |v| v.len());
        let (urls, counted) = self
            .messages
            .iter()
            .filter_map(|m| match &m.content {
                Some(Content::Parts(parts)) => Some(parts),
                _ => None,
            })
            .flatten()
            .fold((0, 0), |(urls, counted), part| match part {
                Part::ImageUrl { image_url } => {
                    (urls + image_url.url.len(), counted + IMAGE_TOKENS)
                }
                Part::File { file } => (
                    urls + file.file_data.len(),
                    counted + file.file_data.len() / 4 * 3,
                ),
                Part::Text { .. } => (urls, counted),
            });
        sent.saturating_sub(urls) + counted
    }
}

/// A successful answer: text, tool calls, or both.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: Option<String>,
    /// The assistant message's `tool_calls` as written (a non-empty array).
    pub tool_calls: Option<Value>,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<error::ErrorBody>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

/// Calls providers over one shared HTTP client.
#[derive(Clone)]
pub struct ProviderClient {
    http: Transport,
    urls: ProviderUrls,
}

impl ProviderClient {
    /// A client with the worker's timeouts. Redirects are never followed (a key
    /// must not be replayed to another host) and a call is never replayed (it
    /// is paid for: the run's retries are ours, counted and backed off); the
    /// pool only resends a request that never left, when an idle connection it
    /// took turned out closed before the request was written. Proxy
    /// environment variables are ignored: only `STEWRD_PROVIDER_PROXY` sets a
    /// proxy.
    pub fn new(urls: ProviderUrls, settings: &WorkerSettings) -> Result<Self, BuildError> {
        Ok(Self {
            http: Transport::new(
                settings.provider_timeout,
                settings.provider_connect_timeout,
                settings.provider_proxy.as_ref(),
                concat!("stewrd/", env!("CARGO_PKG_VERSION")),
            )?,
            urls,
        })
    }

    /// One chat-completions call. The key goes only into the `Authorization`
    /// header, marked sensitive so that no HTTP-layer debug output shows it, and
    /// any failure's message has the key taken out before it leaves here. A
    /// streamed request hands its text to `on_text` piece by piece as it comes.
    pub async fn complete(
        &self,
        provider: Provider,
        key: &SecretString,
        request: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, ProviderError> {
        self.call(provider, key, request, on_text)
            .await
            .map_err(|error| error.redacted(key.expose_secret()))
    }

    async fn call(
        &self,
        provider: Provider,
        key: &SecretString,
        request: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, ProviderError> {
        let url = format!("{}/chat/completions", self.urls.base_url(provider));
        let body = serde_json::to_vec(request)
            .map_err(|e| ProviderError::unreachable(format!("cannot encode request: {e}")))?;
        let mut answer = self.http.post(&url, headers(provider, key)?, body).await?;
        let status = answer.status.as_u16();
        if request.stream && (200..300).contains(&status) {
            return stream::read(answer, on_text).await;
        }
        let body = read_capped(&mut answer).await?;
        if !(200..300).contains(&status) {
            return Err(classify_status(status, &answer.headers, &body));
        }
        parse_completion(&body)
    }
}

fn headers(provider: Provider, key: &SecretString) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    let mut auth =
        HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).map_err(|_| {
            ProviderError {
                key_verdict: Some(stewrd_shared::domain::model::KeyStatus::Invalid),
                ..ProviderError::unreachable("the provider key is not a valid HTTP header value")
            }
        })?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if provider == Provider::OpenRouter {
        headers.insert("http-referer", HeaderValue::from_static(OPENROUTER_REFERER));
        headers.insert("x-title", HeaderValue::from_static(OPENROUTER_TITLE));
    }
    Ok(headers)
}

async fn read_capped(answer: &mut Answer) -> Result<Vec<u8>, ProviderError> {
    let (body, more) = read_at_most(answer, MAX_BODY_BYTES).await?;
    if more {
        return Err(ProviderError::unreachable(format!(
            "the provider's answer is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(body)
}

/// Reads a 2xx body. A 200 can still be a failure: an `error` object, or no
/// choice with content.
fn parse_completion(body: &[u8]) -> Result<Completion, ProviderError> {
    let parsed: CompletionBody = serde_json::from_slice(body).map_err(|e| {
        ProviderError::empty_success(format!("the provider's answer is not a completion: {e}"))
    })?;
    if let Some(error) = parsed.error {
        return Err(ProviderError::empty_success(error.message.unwrap_or_else(
            || "the provider reported an error in a successful answer".to_owned(),
        )));
    }
    let message = parsed
        .choices
        .into_iter()
        .next()
        .and_then(|choice| choice.message)
        .ok_or_else(|| ProviderError::empty_success("the provider's answer has no choices"))?;
    let tool_calls = message
        .tool_calls
        .filter(|calls| calls.as_array().is_some_and(|a| !a.is_empty()));
    if message.content.is_none() && tool_calls.is_none() {
        return Err(ProviderError::empty_success(
            "the provider's answer has neither text nor tool calls",
        ));
    }
    Ok(Completion {
        content: message.content.map(storable),
        tool_calls: tool_calls.map(storable_json),
        usage: parsed.usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_counts_as_an_image_not_as_its_base64() {
        let request = |parts: Vec<Part>| ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![ChatMessage::user_parts(parts)],
            max_tokens: None,
            temperature: None,
            tools: Vec::new(),
            tool_choice: None,
            response_format: None,
            stream: false,
            stream_options: None,
        };
        let text = request(vec![Part::Text { text: "hi".into() }]).prompt_bytes();
        let image = Part::ImageUrl {
            image_url: ImageUrl {
                url: format!("data:image/png;base64,{}", "A".repeat(2_000_000)),
            },
        };
        let with_image = request(vec![Part::Text { text: "hi".into() }, image]).prompt_bytes();
        assert!(with_image < text + IMAGE_TOKENS + 100, "{with_image}");
        assert!(with_image >= text + IMAGE_TOKENS);
    }

    #[test]
    fn a_tool_calling_answer_keeps_its_calls_as_written() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,
                        "tool_calls":[{"id":"call_1","type":"function",
                                       "function":{"name":"f","arguments":"{oops"}}]},
                        "finish_reason":"tool_calls"}]}"#;
        let completion = parse_completion(body).expect("a completion");
        assert_eq!(completion.content, None);
        let calls = completion.tool_calls.expect("calls");
        assert_eq!(calls[0]["function"]["arguments"], "{oops");
        let neither = br#"{"choices":[{"message":{"role":"assistant","content":null}}]}"#;
        assert!(parse_completion(neither).is_err());
    }

    #[test]
    fn a_normal_answer_gives_its_content_and_usage() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],
                        "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let completion = parse_completion(body).expect("a completion");
        assert_eq!(completion.content.as_deref(), Some("hi"));
        assert_eq!(completion.usage.map(|u| u.total_tokens), Some(4));
    }

    #[test]
    fn a_200_with_an_error_or_no_choices_is_a_retryable_failure() {
        let with_error = br#"{"error":{"code":502,"message":"upstream died"},"choices":[]}"#;
        let error = parse_completion(with_error).expect_err("an error");
        assert!(error.retry.allowed());
        assert_eq!(error.message, "upstream died");
        let empty = parse_completion(br#"{"choices":[]}"#).expect_err("an error");
        assert!(empty.retry.allowed());
        assert!(parse_completion(b"not json").is_err());
    }

    #[test]
    fn the_authorization_header_is_sensitive_and_openrouter_gets_attribution() {
        let key = SecretString::from("sk-test-123");
        let map = headers(Provider::OpenRouter, &key).expect("headers");
        let auth = map.get(AUTHORIZATION).expect("auth header");
        assert!(auth.is_sensitive());
        assert!(format!("{map:?}").contains("Sensitive"));
        assert!(!format!("{map:?}").contains("sk-test-123"));
        assert!(map.contains_key("http-referer") && map.contains_key("x-title"));
        let openai = headers(Provider::OpenAi, &key).expect("headers");
        assert!(!openai.contains_key("x-title"));
    }
}
