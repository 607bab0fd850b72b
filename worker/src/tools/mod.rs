//! The one place that knows kinds of tool. A run's [`Toolbox`] is made once per
//! claim from what the claim decoded (the client's tools and the project's
//! server tools); it offers their definitions to the conversation and answers
//! the calls of one model answer with one `match` on the kind. The run loop,
//! the conversation, the step store and the API see only definitions offered
//! and [`Answer`]s given: an output, or a wait for a person.
//!
//! How to add a kind: a file here holding what a call of it does (as
//! `server.rs` does for HTTP tools), a variant of [`Kind`] (with the
//! `Executor` its steps show), the arm that calls it in [`Toolbox::answer_one`],
//! and where its tools come from in [`Toolbox::load`].
//!
//! Approvals: a call of a tool that requires one is not made until a person
//! decides. [`Toolbox::asking`] gives the steps that wait for it (the run
//! pauses, and the model answer's other calls wait with them, unwritten); once
//! decided, a denied call's step holds its answer and an approved one is made
//! by [`Toolbox::answer`] like any other, at the index it waited at, with the
//! arguments its step holds (the ones approved).
//!
//! Bounds: at most `MAX_TOOL_CALLS_PER_ANSWER` calls of one answer are made
//! (past it, the model gets an error for each), at most
//! `MAX_TOOL_CALLS_IN_FLIGHT` of a run and `STEWRD_TOOL_CONCURRENCY` of the
//! worker at once. A call that cannot run (an unknown tool, arguments that are
//! not a JSON object) is answered at once with `{"error": …}`, so the model
//! can go on.

pub(crate) mod artifact;
pub(crate) mod browser;
pub(crate) mod fetch;
pub(crate) mod mcp;
mod server;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use futures_util::future::join_all;
use serde_json::Value;
use stewrd_shared::{
    db::{
        DbError,
        mcp::{Marked, mark_sent},
        run::ClaimedRun,
        step::{Lease, NewToolStep, ToolState},
    },
    domain::{
        agent::{
            Builtin, ClientTool, MAX_TOOL_CALLS_IN_FLIGHT, MAX_TOOL_CALLS_PER_ANSWER, ServerTool,
            ToolCall, error_output,
        },
        approval::Approval,
        browser::Action,
        file::FileId,
        mcp::McpTool,
        model::{Executor, FailureCode, Outcome, RequireApproval, Wait},
        text::storable,
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use self::server::Signing;
use crate::Worker;

/// What a call gave.
pub(crate) enum Answer {
    /// The output the model gets, how the call ended, the attempts made, and
    /// the files it made (artifacts: an image among them is shown to the model).
    Output {
        text: String,
        outcome: Outcome,
        attempts: i32,
        files: Vec<FileId>,
    },
    /// Nothing yet: the call waits for a person, and the run pauses.
    Await(Wait),
}

impl Answer {
    /// An error the model gets, after `attempts` attempts.
    fn failed(message: &str, attempts: i32) -> Self {
        Self::Output {
            text: error_output(message),
            outcome: Outcome::Failed,
            attempts,
            files: Vec::new(),
        }
    }

    /// An error the model gets at once, no attempt made.
    fn refused(message: &str) -> Self {
        Self::failed(message, 0)
    }
}

/// The kinds of tool; the one `match` on them is in [`Toolbox::answer_one`].
enum Kind {
    /// The client's own: answered by the client through `tool_outputs`.
    Client,
    /// A project's server tool: a signed POST to its URL.
    Http(ServerTool),
    /// A tool of one of the project's MCP servers, as the run pinned it.
    Mcp(McpTool),
    /// A built-in tool the run asked for (`web_fetch`, the browser's actions).
    Builtin(Builtin),
}

impl Kind {
    /// Who its steps say ran it.
    fn executor(&self) -> Executor {
        match self {
            Self::Client => Executor::Client,
            Self::Http(_) => Executor::Server,
            Self::Mcp(_) => Executor::Mcp,
            Self::Builtin(_) => Executor::Builtin,
        }
    }

    /// The MCP server its steps name.
    fn server(&self) -> Option<String> {
        match self {
            Self::Mcp(tool) => Some(tool.server.clone()),
            Self::Client | Self::Http(_) | Self::Builtin(_) => None,
        }
    }

    /// Whether a call (of function `name`) must be marked sent before it
    /// leaves: its effect may not be repeated, and nothing else would tell a
    /// resumed run it was made.
    fn marked_before_sending(&self, name: &str) -> bool {
        match self {
            Self::Mcp(tool) => !tool.repeatable,
            Self::Builtin(Builtin::Browser { .. }) => {
                !Action::from_name(name).is_some_and(Action::only_reads)
            }
            // A fetch only reads.
            Self::Client | Self::Http(_) | Self::Builtin(Builtin::WebFetch) => false,
        }
    }

    /// What the model gets for a call marked sent by an earlier attempt that
    /// stopped before its answer was stored.
    fn unknown(&self) -> Answer {
        let why = "a worker sent it and stopped before its answer was stored";
        match self {
            Self::Builtin(Builtin::Browser { .. }) => browser::unknown(why, 0),
            _ => mcp::unknown(why, 0),
        }
    }
}

/// One tool offered to the model.
struct Tool {
    name: String,
    /// Its definition as the model is offered it.
    offered: Value,
    kind: Kind,
    /// Whether its calls wait for a person's yes.
    approval: RequireApproval,
}

/// A call of the last model answer that has no answer yet.
pub(crate) struct Call {
    pub(crate) call: ToolCall,
    /// Its place in the model's answer (past `MAX_TOOL_CALLS_PER_ANSWER`,
    /// the model gets an error for it).
    pub(crate) position: usize,
    /// Approved while it waited: the index of its step, and the decision.
    pub(crate) approved: Option<(i32, Approval)>,
}

/// A run's tools, for one claim.
pub(crate) struct Toolbox {
    tools: Vec<Tool>,
    /// Server tool calls are signed with the project's secrets, decrypted at
    /// the first one.
    signing: Signing,
    /// MCP calls carry the project's header values, opened at the first one.
    mcp: mcp::Secrets,
    /// The run's browser is open on the host (this claim made sure of it).
    browser_open: AtomicBool,
    /// Browser actions of one answer are made one at a time, in the model's
    /// order (they act on one page): taken first, in that order.
    browser_turn: tokio::sync::Mutex<()>,
}

/// What was made durable before a step's calls leave.
#[derive(Default)]
pub(crate) struct Prepared {
    /// Calls an earlier attempt marked sent and never answered: their outcome
    /// is unknown, and they are not sent again.
    sent_before: Vec<String>,
}

/// Why a step's calls cannot be made now.
pub(crate) enum Unprepared {
    /// The run is no longer this worker's.
    LeaseLost,
    Db(DbError),
    /// What the calls need is not there (no browser host): the run fails.
    Fail(FailureCode, String),
}

impl Toolbox {
    /// The run's tools: the client's, the built-ins it asked for, then the
    /// project's server tools, then the MCP tools the run pinned.
    pub(crate) fn load(run: &ClaimedRun, pinned: &[McpTool]) -> Self {
        let client = run
            .request
            .agent
            .tools
            .client
            .iter()
            .map(|tool: &ClientTool| Tool {
                name: tool.name.clone(),
                offered: tool.definition.clone(),
                kind: Kind::Client,
                approval: RequireApproval::Never,
            });
        let server = run.project.tools.iter().map(|tool| Tool {
            name: tool.name.clone(),
            offered: tool.as_function(),
            kind: Kind::Http(tool.clone()),
            approval: tool.require_approval,
        });
        // Pinned with the run, asked for as the project says now (a server
        // no longer connected is refused when called).
        let mcp = pinned.iter().map(|tool| Tool {
            name: tool.name.clone(),
            offered: tool.as_function(),
            kind: Kind::Mcp(tool.clone()),
            approval: run
                .project
                .mcp_servers
                .iter()
                .find(|server| server.name == tool.server)
                .map_or(RequireApproval::Never, |server| server.require_approval),
        });
        let builtins = run.request.agent.tools.builtins.iter().flat_map(|builtin| {
            builtin
                .as_functions()
                .into_iter()
                .map(|(name, offered)| Tool {
                    name: name.to_owned(),
                    offered,
                    kind: Kind::Builtin(*builtin),
                    approval: builtin.approval(),
                })
        });
        let mut tools: Vec<Tool> = Vec::new();
        for tool in client.chain(builtins).chain(server).chain(mcp) {
            // A name offered twice would be answered by the first alone.
            if !tools.iter().any(|t| t.name == tool.name) {
                tools.push(tool);
            }
        }
        Self {
            tools,
            signing: Signing::default(),
            mcp: mcp::Secrets::default(),
            browser_open: AtomicBool::new(false),
            browser_turn: tokio::sync::Mutex::new(()),
        }
    }

    /// What the run's tools need that this worker lacks (a browser host), as
    /// the failure the run ends with.
    pub(crate) fn missing(&self, worker: &Worker) -> Option<(FailureCode, String)> {
        let wants_browser = self
            .tools
            .iter()
            .any(|t| matches!(t.kind, Kind::Builtin(Builtin::Browser { .. })));
        (wants_browser && worker.browsers.is_none()).then(|| {
            (
                FailureCode::BrowserUnavailable,
                "the run asks for the browser and this server has no browser host \
                 (STEWRD_BROWSER_HOST_URL)"
                    .to_owned(),
            )
        })
    }

    /// Makes ready what `calls` need and commits what must be durable before
    /// they are made: the run's browser opened (before anything is marked, so
    /// a step that must wait for one has sent nothing), then the marks of the
    /// calls that may not be made twice. Calls an earlier attempt marked come
    /// back in [`Prepared`] and are not sent again.
    pub(crate) async fn prepare(
        &self,
        worker: &Worker,
        run: &ClaimedRun,
        lease: Lease,
        calls: &[Call],
    ) -> Result<Prepared, Unprepared> {
        let made: Vec<(&ToolCall, &Tool)> = calls
            .iter()
            .filter(|c| c.position < MAX_TOOL_CALLS_PER_ANSWER)
            .map(|c| &c.call)
            .filter(|call| parse_arguments(&call.arguments).is_some())
            .filter_map(|call| Some((call, self.tools.iter().find(|t| t.name == call.name)?)))
            .collect();
        let browses = made
            .iter()
            .any(|(_, t)| matches!(t.kind, Kind::Builtin(Builtin::Browser { .. })));
        if browses && !self.browser_open.load(Ordering::Acquire) {
            browser::open_when_free(worker, run)
                .await
                .map_err(|why| Unprepared::Fail(FailureCode::BrowserUnavailable, why))?;
            self.browser_open.store(true, Ordering::Release);
        }
        let marked: Vec<String> = made
            .iter()
            .filter(|(call, tool)| tool.kind.marked_before_sending(&call.name))
            .map(|(call, _)| call.id.clone())
            .collect();
        if marked.is_empty() {
            return Ok(Prepared::default());
        }
        let written = worker
            .db(|client| async move {
                mark_sent(&client, lease, &marked)
                    .await
                    .map(|m| (m, marked))
            })
            .await
            .map_err(Unprepared::Db)?;
        match written {
            (Marked::LeaseLost, _) => Err(Unprepared::LeaseLost),
            (Marked::Now(now), wanted) => Ok(Prepared {
                sent_before: wanted.into_iter().filter(|c| !now.contains(c)).collect(),
            }),
        }
    }

    /// The steps of the calls that must wait for a person's yes before any
    /// call of `calls` is made (none: the calls can be made now), numbered
    /// from `first_index` in the model's order.
    pub(crate) fn asking(&self, calls: &[Call], first_index: i32) -> Vec<NewToolStep> {
        let started_at = OffsetDateTime::now_utc();
        calls
            .iter()
            .filter(|c| c.approved.is_none() && c.position < MAX_TOOL_CALLS_PER_ANSWER)
            .filter(|c| parse_arguments(&c.call.arguments).is_some())
            .filter_map(|c| {
                let tool = self.tools.iter().find(|t| t.name == c.call.name)?;
                (tool.approval == RequireApproval::Always).then_some((c, tool))
            })
            .zip(first_index..)
            .map(|((c, tool), index)| {
                step(
                    index,
                    &c.call,
                    Some(tool),
                    Answer::Await(Wait::Approval),
                    started_at,
                    None,
                )
            })
            .collect()
    }

    /// Whether the model is offered any tool (an agent run, whose steps are rows).
    pub(crate) fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The definitions the model is offered, in order.
    pub(crate) fn offered(&self) -> Vec<Value> {
        self.tools.iter().map(|t| t.offered.clone()).collect()
    }

    /// The steps of `calls`, in the order the model made them: made (at
    /// once, in parallel within the bounds) or waiting for the client. An
    /// approved call keeps the index it waited at; the others are numbered
    /// from `first_index`.
    pub(crate) async fn answer(
        &self,
        worker: &Worker,
        run: &ClaimedRun,
        calls: &[Call],
        first_index: i32,
        prepared: &Prepared,
    ) -> Vec<NewToolStep> {
        let in_flight = &Semaphore::new(MAX_TOOL_CALLS_IN_FLIGHT);
        let mut next = first_index..;
        let numbered: Vec<(&Call, i32)> = calls
            .iter()
            .map(|c| match &c.approved {
                Some((index, _)) => (c, *index),
                None => (c, next.next().unwrap_or(i32::MAX)),
            })
            .collect();
        let steps = numbered.into_iter().map(|(c, index)| {
            let (call, position) = (&c.call, c.position);
            let approval = c.approved.as_ref().map(|(_, approval)| approval.clone());
            async move {
                let started_at = OffsetDateTime::now_utc();
                let tool = self.tools.iter().find(|t| t.name == call.name);
                let answer = if position >= MAX_TOOL_CALLS_PER_ANSWER {
                    Answer::refused(&format!(
                        "this answer asked for {} tool calls; at most \
                         {MAX_TOOL_CALLS_PER_ANSWER} are made per answer, and this one was not",
                        calls.len()
                    ))
                } else if prepared.sent_before.contains(&call.id) {
                    tool.map_or_else(|| Answer::refused("not made"), |t| t.kind.unknown())
                } else {
                    self.answer_one(worker, run, tool, call, in_flight).await
                };
                step(index, call, tool, answer, started_at, approval)
            }
        });
        join_all(steps).await
    }

    /// One call: refused, made, or waiting.
    async fn answer_one(
        &self,
        worker: &Worker,
        run: &ClaimedRun,
        tool: Option<&Tool>,
        call: &ToolCall,
        in_flight: &Semaphore,
    ) -> Answer {
        let Some(arguments) = parse_arguments(&call.arguments) else {
            return Answer::refused("the arguments are not a JSON object");
        };
        let Some(tool) = tool else {
            return Answer::refused(&format!("there is no tool named `{}`", call.name));
        };
        match &tool.kind {
            Kind::Client => Answer::Await(Wait::Client),
            Kind::Http(server_tool) => {
                let made = server::call(worker, run, server_tool, call, arguments, &self.signing);
                in_turn(worker, in_flight, made).await
            }
            Kind::Mcp(mcp_tool) => {
                let made = mcp::call(worker, run, mcp_tool, call, arguments, &self.mcp);
                in_turn(worker, in_flight, made).await
            }
            Kind::Builtin(Builtin::WebFetch) => {
                let made = fetch::call(worker, run, call, arguments);
                in_turn(worker, in_flight, made).await
            }
            Kind::Builtin(Builtin::Browser { .. }) => {
                let _page_turn = self.browser_turn.lock().await;
                let made = browser::call(worker, run, call, arguments);
                in_turn(worker, in_flight, made).await
            }
        }
    }
}

/// Makes a call in its turn: the run's, then the worker's. Permits are only
/// ever taken in this order, and held for the call alone (neither semaphore
/// is ever closed: acquiring cannot fail). `made` starts only once both are held.
async fn in_turn(
    worker: &Worker,
    in_flight: &Semaphore,
    made: impl Future<Output = Answer>,
) -> Answer {
    let _run_turn = in_flight.acquire().await;
    let _worker_turn = worker.tool_permits.acquire().await;
    let timer = Instant::now();
    let answer = made.await;
    metrics::histogram!(names::STEP_DURATION, "type" => "tool_call")
        .record(timer.elapsed().as_secs_f64());
    answer
}

/// The step a call's answer makes. Its output is made storable before
/// anything holds it: a NUL would fail the commit (and the calls be made
/// again), and the history the run goes on with must be what a resumed run
/// reads back.
fn step(
    index: i32,
    call: &ToolCall,
    tool: Option<&Tool>,
    answer: Answer,
    started_at: OffsetDateTime,
    approval: Option<Approval>,
) -> NewToolStep {
    let (state, attempts, files) = match answer {
        Answer::Output {
            text,
            outcome,
            attempts,
            files,
        } => (
            ToolState::Done {
                outcome,
                output: storable(text),
            },
            attempts,
            files,
        ),
        Answer::Await(wait) => (ToolState::Awaiting(wait), 0, Vec::new()),
    };
    NewToolStep {
        index,
        call: call.clone(),
        // An unknown tool's call is told apart from a client's: stewrd answered it.
        executor: tool.map_or(Executor::Server, |t| t.kind.executor()),
        server: tool.and_then(|t| t.kind.server()),
        state,
        attempts,
        files,
        approval,
        started_at,
    }
}

/// The model's arguments as a JSON object (empty text counts as `{}`).
fn parse_arguments(text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        return Some(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_object_is_a_call_s_arguments() {
        assert!(parse_arguments(r#"{"city":"Paris"}"#).is_some());
        assert!(parse_arguments("  ").is_some());
        for bad in ["{oops", "[1]", "\"text\"", "3"] {
            assert!(parse_arguments(bad).is_none(), "{bad}");
        }
    }
}
