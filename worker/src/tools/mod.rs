//! The tool calls of one model answer. Server tools (the project's) run here,
//! concurrently (at most `MAX_TOOL_CALLS_IN_FLIGHT` of a run and
//! `STEWRD_TOOL_CONCURRENCY` of the worker at once; past
//! `MAX_TOOL_CALLS_PER_ANSWER` calls of one answer, the model gets an error
//! for each instead); client tools become pending calls the client answers through
//! `tool_outputs`; a call that cannot run (an unknown tool, arguments that are not
//! a JSON object) is answered at once with `{"error": …}`, so the model can go on.

mod server;

pub(crate) use server::Signing;

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::Value;
use stewrd_shared::{
    db::{run::ClaimedRun, step::NewToolStep},
    domain::{
        agent::{
            MAX_TOOL_CALLS_IN_FLIGHT, MAX_TOOL_CALLS_PER_ANSWER, ServerTool, ToolCall, error_output,
        },
        model::{Executor, StepStatus},
        text::storable,
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::Worker;

/// The steps of `calls`, numbered from `first_index`, in the order the model made
/// them. Server tools have run when this returns; client calls are pending.
pub(crate) async fn run_calls(
    worker: &Worker,
    run: &ClaimedRun,
    calls: &[ToolCall],
    server_tools: &[ServerTool],
    client_tools: &[String],
    first_index: i32,
    signing: &Signing,
) -> Vec<NewToolStep> {
    let in_flight = &Semaphore::new(MAX_TOOL_CALLS_IN_FLIGHT);
    let steps =
        calls
            .iter()
            .zip(first_index..)
            .enumerate()
            .map(|(position, (call, index))| async move {
                let started_at = OffsetDateTime::now_utc();
                let step = |executor, status, output: Option<String>, attempts| NewToolStep {
                    index,
                    tool_call_id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    executor,
                    status,
                    // Storable before anything holds it: a NUL would fail the
                    // commit (and the calls be made again), and the history the
                    // run goes on with must be what a resumed run reads back.
                    output: output.map(storable),
                    attempts,
                    started_at,
                };
                let Some(arguments) = parse_arguments(&call.arguments) else {
                    let output = error_output("the arguments are not a JSON object");
                    let executor = executor_of(call, client_tools);
                    return step(executor, StepStatus::Failed, Some(output), 0);
                };
                if client_tools.contains(&call.name) {
                    return step(Executor::Client, StepStatus::Pending, None, 0);
                }
                let Some(tool) = server_tools.iter().find(|t| t.name == call.name) else {
                    let output = error_output(&format!("there is no tool named `{}`", call.name));
                    return step(Executor::Server, StepStatus::Failed, Some(output), 0);
                };
                if position >= MAX_TOOL_CALLS_PER_ANSWER {
                    let output = error_output(&format!(
                        "this answer asked for {} tool calls; at most {MAX_TOOL_CALLS_PER_ANSWER} \
                     are made per answer, and this one was not",
                        calls.len()
                    ));
                    return step(Executor::Server, StepStatus::Failed, Some(output), 0);
                }
                // The run's turn, then the worker's: permits are only ever taken
                // in this order, and held for the call alone.
                // (Neither semaphore is ever closed: acquiring cannot fail.)
                let _run_turn = in_flight.acquire().await;
                let _worker_turn = worker.tool_permits.acquire().await;
                let timer = Instant::now();
                let result = server::call(worker, run, tool, call, arguments, signing).await;
                metrics::histogram!(names::STEP_DURATION, "type" => "tool_call")
                    .record(timer.elapsed().as_secs_f64());
                let status = if result.ok {
                    StepStatus::Succeeded
                } else {
                    StepStatus::Failed
                };
                step(
                    Executor::Server,
                    status,
                    Some(result.output),
                    result.attempts,
                )
            });
    join_all(steps).await
}

fn executor_of(call: &ToolCall, client_tools: &[String]) -> Executor {
    if client_tools.contains(&call.name) {
        Executor::Client
    } else {
        Executor::Server
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
