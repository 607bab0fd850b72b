//! Calls of a project's MCP servers' tools: `tools/call` with the run's
//! idempotency key (`<run_id>:<tool_call_id>`, in `_meta` and as an
//! `Idempotency-Key` header), within the server's `timeout_secs`, over the
//! worker's one session per server (`stewrd_shared::mcp`).
//!
//! Never twice: a call that did not reach the server is tried again, as
//! server tools are; a call whose answer was lost is made again only for a
//! tool the server says is read-only or idempotent; others give the model
//! "the outcome of this call is unknown". A call that timed out is never made
//! again (the server is told to stop). Before a call of a tool that may not be
//! repeated is sent, its mark is committed (see [`super::Toolbox::prepare`]),
//! so a worker that dies with it in flight never has it sent again.
//!
//! What a call gives: its text is the output; each image (or other binary
//! content) is an artifact file, shown to the model like a server tool's; an
//! `isError` result is the tool's error. Header values the server echoes back
//! are cut out of everything kept.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::future::join_all;
use serde_json::{Value, json};
use stewrd_shared::{
    db::run::ClaimedRun,
    domain::{
        agent::{ToolCall, error_output},
        file::content_type,
        mcp::{McpServer, McpTool},
        model::Outcome,
    },
    mcp::{self, Endpoint, Headers, McpError},
    runtime::metrics as names,
};
use tokio::sync::OnceCell;

use super::{Answer, artifact};
use crate::Worker;

/// Attempts of one call, the first included.
const ATTEMPTS: i32 = 4;
/// The longest pause between two listings of a server that did not answer.
const MAX_LIST_PAUSE: Duration = Duration::from_secs(2);

/// The project's MCP header values, opened once per claim, at the first call.
#[derive(Default)]
pub(super) struct Secrets {
    opened: OnceCell<Result<Headers, String>>,
}

impl Secrets {
    async fn endpoint(
        &self,
        worker: &Worker,
        run: &ClaimedRun,
        server: &McpServer,
    ) -> Result<Endpoint, String> {
        let headers = self
            .opened
            .get_or_init(|| async { open_headers(worker, run) })
            .await
            .as_ref()
            .map_err(Clone::clone)?;
        Ok(mcp::endpoint(server, headers))
    }
}

fn open_headers(worker: &Worker, run: &ClaimedRun) -> Result<Headers, String> {
    mcp::open_headers(
        &worker.master_keys,
        run.project_id,
        run.project.mcp_headers.as_deref(),
    )
    .map_err(|error| format!("the project's MCP header values cannot be read: {error}"))
}

/// Every server's tools, for the run to pin at its first step; each server
/// is tried for up to `STEWRD_MCP_CONNECT_SECS`. The error names the server.
pub(crate) async fn list_all(worker: &Worker, run: &ClaimedRun) -> Result<Vec<McpTool>, String> {
    let headers = open_headers(worker, run)?;
    let headers = &headers;
    let listings = join_all(run.project.mcp_servers.iter().map(|server| async move {
        let endpoint = mcp::endpoint(server, headers);
        (server, list_one(worker, server, &endpoint).await)
    }))
    .await;
    let mut tools: Vec<McpTool> = Vec::new();
    for (server, listing) in listings {
        let listed = listing.map_err(|error| {
            format!(
                "the MCP server `{}` could not be listed: {error}",
                server.name
            )
        })?;
        for tool in listed {
            if !tools.iter().any(|t| t.name == tool.name) {
                tools.push(tool);
            }
        }
    }
    Ok(tools)
}

async fn list_one(
    worker: &Worker,
    server: &McpServer,
    endpoint: &Endpoint,
) -> Result<Vec<McpTool>, McpError> {
    let deadline = Instant::now() + worker.config.worker.mcp_connect;
    let mut pause = Duration::from_millis(250);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match mcp::tools_of(&worker.mcp, server, endpoint, left).await {
            Ok(tools) => return Ok(tools),
            Err(error) if !worth_another_listing(&error) => return Err(error),
            Err(error) if Instant::now() + pause >= deadline => return Err(error),
            Err(error) => {
                tracing::warn!(server = %server.name, %error, "cannot list an MCP server's tools yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_LIST_PAUSE);
            }
        }
    }
}

/// A refused URL, a refusal of the request or a JSON-RPC error will not mend
/// by waiting; a server down, restarting or overloaded may.
fn worth_another_listing(error: &McpError) -> bool {
    match error {
        McpError::Refused(_) | McpError::Rpc { .. } => false,
        McpError::Status { status, .. } => matches!(status, 404 | 408 | 500..),
        _ => true,
    }
}

/// What to do after a failed attempt.
enum Next {
    Retry,
    Final(String),
    Unknown,
}

fn next(error: &McpError, repeatable: bool) -> Next {
    match error {
        McpError::NotSent(_) => Next::Retry,
        McpError::TimedOut(seconds) => Next::Final(format!(
            "no answer within {seconds} s; the server was told to stop, and the call is not made again"
        )),
        McpError::Refused(_) | McpError::Rpc { .. } => Next::Final(error.to_string()),
        McpError::Status { status, .. } if *status < 500 => Next::Final(error.to_string()),
        _ if repeatable => Next::Retry,
        _ => Next::Unknown,
    }
}

fn outcome_of(text: String, outcome: Outcome, attempts: i32) -> Answer {
    metrics::counter!(names::MCP_CALLS, "outcome" => outcome.as_str()).increment(1);
    Answer::Output {
        text,
        outcome,
        attempts,
        files: Vec::new(),
    }
}

/// The answer for a call whose request was sent and whose answer was lost.
pub(super) fn unknown(why: &str, attempts: i32) -> Answer {
    metrics::counter!(names::MCP_CALLS, "outcome" => "unknown").increment(1);
    Answer::Output {
        text: error_output(&format!(
            "the outcome of this call is unknown: {why}; it was sent, and is not made again"
        )),
        outcome: Outcome::Failed,
        attempts,
        files: Vec::new(),
    }
}

/// Calls `tool` for `call`, retrying only what may not have reached the
/// server (or, for a repeatable tool, what may have).
pub(super) async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    tool: &McpTool,
    call: &ToolCall,
    arguments: Value,
    secrets: &Secrets,
) -> Answer {
    let Some(server) = run
        .project
        .mcp_servers
        .iter()
        .find(|s| s.name == tool.server)
    else {
        return outcome_of(
            error_output(&format!(
                "the MCP server `{}` is no longer connected to the project",
                tool.server
            )),
            Outcome::Failed,
            0,
        );
    };
    let endpoint = match secrets.endpoint(worker, run, server).await {
        Ok(endpoint) => endpoint,
        Err(error) => return outcome_of(error_output(&error), Outcome::Failed, 0),
    };
    let key = format!("{}:{}", run.id, call.id);
    let limit = Duration::from_secs(u64::from(server.timeout_secs));
    let schedule = &worker.config.worker.tool_retry_schedule;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let answered = worker
            .mcp
            .call_tool(&endpoint, &tool.tool, arguments.clone(), &key, limit)
            .await;
        let error = match answered {
            Ok(result) => return given(worker, run, call, tool, &endpoint, &result, attempt).await,
            Err(error) => error,
        };
        match next(&error, tool.repeatable) {
            Next::Retry => last = error.to_string(),
            Next::Final(text) => return outcome_of(error_output(&text), Outcome::Failed, attempt),
            Next::Unknown => return unknown(&error.to_string(), attempt),
        }
        if attempt < ATTEMPTS {
            let wait = super::server::scheduled_wait(schedule, attempt);
            tracing::warn!(server = %server.name, tool = %tool.tool, attempt, error = %last, "MCP call failed; will retry");
            tokio::time::sleep(wait).await;
        }
    }
    outcome_of(
        error_output(&format!("the call failed {ATTEMPTS} times; last: {last}")),
        Outcome::Failed,
        ATTEMPTS,
    )
}

/// A `tools/call` result as the model gets it: its text (kept whole as a file
/// past 64 KiB), and each binary content kept as a file and described.
async fn given(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    tool: &McpTool,
    endpoint: &Endpoint,
    result: &Value,
    attempts: i32,
) -> Answer {
    let mut texts: Vec<String> = Vec::new();
    let mut made = Vec::new();
    for content in result["content"].as_array().into_iter().flatten() {
        match content_bytes(content) {
            Some(Ok((bytes, kind))) => {
                let filename = format!(
                    "{}-{}-{}.{}",
                    tool.tool,
                    call.id,
                    made.len() + 1,
                    extension(kind)
                );
                match artifact::keep(worker, run, call, made.len() + 1, &filename, bytes).await {
                    Ok(file) => {
                        texts.push(artifact::described(&file));
                        made.push(file.id);
                    }
                    Err(why) => texts.push(error_output(&format!(
                        "a file the tool gave could not be kept: {why}"
                    ))),
                }
            }
            Some(Err(why)) => texts.push(error_output(why)),
            None => texts.extend(content_text(content)),
        }
    }
    if texts.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        texts.push(structured.to_string());
    }
    let text = endpoint.scrub(&texts.join("\n"));
    if result["isError"].as_bool() == Some(true) {
        let answer = outcome_of(error_output(&text), Outcome::Failed, attempts);
        return with_files(answer, made);
    }
    let kept = artifact::given(
        worker,
        run,
        call,
        &tool.name,
        artifact::Answer {
            body: text.as_bytes(),
            content_type: Some(content_type::TEXT),
            filename: None,
            cut: false,
        },
    )
    .await;
    let answer = outcome_of(kept.output, Outcome::Succeeded, attempts);
    with_files(answer, kept.files.into_iter().chain(made).collect())
}

fn with_files(answer: Answer, made: Vec<stewrd_shared::domain::file::FileId>) -> Answer {
    match answer {
        Answer::Output {
            text,
            outcome,
            attempts,
            ..
        } => Answer::Output {
            text,
            outcome,
            attempts,
            files: made,
        },
        other => other,
    }
}

/// The bytes of an image, audio or blob resource content, and their type.
fn content_bytes(content: &Value) -> Option<Result<(Vec<u8>, &str), &'static str>> {
    let (data, kind) = match content["type"].as_str() {
        Some("image" | "audio") => (content["data"].as_str()?, content["mimeType"].as_str()),
        Some("resource") => (
            content["resource"]["blob"].as_str()?,
            content["resource"]["mimeType"].as_str(),
        ),
        _ => return None,
    };
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(|bytes| (bytes, kind.unwrap_or(content_type::BINARY)))
            .map_err(|_| "the tool gave content that is not base64"),
    )
}

/// The text of a text content, an embedded text resource, or a resource link.
fn content_text(content: &Value) -> Option<String> {
    match content["type"].as_str()? {
        "text" => content["text"].as_str().map(str::to_owned),
        "resource" => content["resource"]["text"].as_str().map(str::to_owned),
        "resource_link" => Some(
            json!({"resource_link": content["uri"], "name": content["name"],
                   "mimeType": content["mimeType"]})
            .to_string(),
        ),
        _ => None,
    }
}

fn extension(kind: &str) -> &'static str {
    match kind {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_never_reached_the_server_or_may_be_repeated_is_tried_again() {
        let lost = McpError::Lost("cut".into());
        assert!(matches!(next(&lost, true), Next::Retry));
        assert!(matches!(next(&lost, false), Next::Unknown));
        assert!(matches!(
            next(&McpError::NotSent("refused".into()), false),
            Next::Retry
        ));
        assert!(matches!(next(&McpError::TimedOut(5), true), Next::Final(_)));
        let server_error = McpError::Status {
            status: 502,
            detail: String::new(),
        };
        assert!(matches!(next(&server_error, false), Next::Unknown));
        let refused = McpError::Status {
            status: 401,
            detail: String::new(),
        };
        assert!(matches!(next(&refused, true), Next::Final(_)));
    }

    #[test]
    fn contents_are_read_as_text_or_bytes() {
        let image = json!({"type": "image", "data": "iVBORw0=", "mimeType": "image/png"});
        let (bytes, kind) = content_bytes(&image).and_then(Result::ok).expect("bytes");
        assert_eq!((bytes.len(), kind), (5, "image/png"));
        assert!(content_bytes(&json!({"type": "image", "data": "%%"})).is_some_and(|r| r.is_err()));
        assert_eq!(
            content_text(&json!({"type": "text", "text": "hi"})).as_deref(),
            Some("hi")
        );
        assert!(content_bytes(&json!({"type": "text", "text": "hi"})).is_none());
    }
}
