//! Durable steps under `kill -9`, counted as the fault suite counts: accepted,
//! final, lost, and model or tool calls made again after their result was
//! committed (a call in flight at the crash may be made once more; a committed
//! one never).

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use serde_json::json;
use stewrd::stub::Reply;
use time::OffsetDateTime;

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, wait_for},
    receiver::{Answer, Receiver},
};

/// What the agent fault tests count.
#[derive(Debug)]
struct AgentTally {
    accepted: usize,
    final_runs: usize,
    lost: usize,
    duplicated_model_calls: usize,
    duplicated_tool_calls: usize,
}

fn wall(at: OffsetDateTime) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::from_nanos(u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0))
}

/// Counts, for `runs` (by id; each the only run of its session, its message
/// unique), how many are final and how many model and tool calls arrived after
/// the step they would make had already been committed. Prints the line.
async fn tally(app: &TestApp, tools: &Receiver, runs: &[(String, String)]) -> AgentTally {
    let db = app.db().await;
    let ids: Vec<&str> = runs.iter().map(|(id, _)| id.as_str()).collect();
    let final_runs: i64 = db
        .query_one(
            "SELECT count(*) FROM runs WHERE id::text = ANY($1)
             AND status IN ('succeeded', 'failed', 'cancelled')",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0);
    // Committed model calls by (run, how many came before), tool results by key.
    let mut model_commits: HashMap<(String, usize), SystemTime> = HashMap::new();
    let mut tool_commits: HashMap<String, SystemTime> = HashMap::new();
    for row in db
        .query(
            "SELECT run_id::text, type, tool_call_id, finished_at,
                    row_number() OVER (PARTITION BY run_id, type ORDER BY index) - 1 AS nth
             FROM run_steps WHERE run_id::text = ANY($1) AND status <> 'pending'",
            &[&ids],
        )
        .await
        .expect("steps")
    {
        let run: String = row.get(0);
        let kind: String = row.get(1);
        let finished: OffsetDateTime = row.get(3);
        if kind == "model_call" {
            let nth: i64 = row.get(4);
            model_commits.insert((run, usize::try_from(nth).unwrap_or(0)), wall(finished));
        } else {
            let call: String = row.get(2);
            tool_commits.insert(format!("{run}:{call}"), wall(finished));
        }
    }
    let run_of: HashMap<&str, &str> = runs
        .iter()
        .map(|(id, message)| (message.as_str(), id.as_str()))
        .collect();
    let mut duplicated_model_calls = 0;
    for request in app.stub.state.requests() {
        let messages = request.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(run) = messages
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .and_then(|message| run_of.get(message))
        else {
            continue;
        };
        let before = messages.iter().filter(|m| m["role"] == "assistant").count();
        if model_commits
            .get(&((*run).to_owned(), before))
            .is_some_and(|committed| request.at > *committed)
        {
            duplicated_model_calls += 1;
        }
    }
    let duplicated_tool_calls = tools
        .received()
        .iter()
        .filter(|call| {
            tool_commits
                .get(call.header("idempotency-key"))
                .is_some_and(|committed| call.at_wall > *committed)
        })
        .count();
    let tally = AgentTally {
        accepted: runs.len(),
        final_runs: usize::try_from(final_runs).unwrap_or(0),
        lost: runs.len() - usize::try_from(final_runs).unwrap_or(0),
        duplicated_model_calls,
        duplicated_tool_calls,
    };
    println!(
        "accepted={} final={} lost={} duplicated_model_calls={} duplicated_tool_calls={} model_calls={} tool_calls={}",
        tally.accepted,
        tally.final_runs,
        tally.lost,
        tally.duplicated_model_calls,
        tally.duplicated_tool_calls,
        app.stub.state.stats().calls,
        tools.received().len(),
    );
    tally
}

async fn with_server_tool(app: &TestApp, key: &str, tools: &Receiver) {
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            "/v1/project/tools",
            Some(key),
            Some(json!({"tools": [{"name": "lookup", "url": tools.url(), "timeout_secs": 60}]})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
}

fn agent_options(workers: usize) -> Options {
    Options {
        workers,
        ..Options::default()
            .env("STEWRD_LEASE_SECS", "3")
            .env("STEWRD_MAX_ATTEMPTS", "50")
    }
}

#[tokio::test]
async fn a_worker_killed_during_the_second_model_call_resumes_without_repeating_the_first() {
    let mut app = spawn_app_with(agent_options(1)).await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    with_server_tool(&app, &key, &tools).await;
    tools.answer_by_default(Answer::ok("looked up $tool_call_id"));
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "lookup", "{}")], 4),
        // In flight when the worker dies.
        Reply::tool_calls(&[("c2", "lookup", "{}")], 4).delayed(Duration::from_secs(60)),
        // The resumed call.
        Reply::tool_calls(&[("c2", "lookup", "{}")], 4),
        Reply::text("three steps done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "three steps"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().calls == 2).then_some(())
    })
    .await
    .expect("the second model call is in flight");
    app.kill_and_replace_worker(0);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "three steps done");
    let first_step_calls = app
        .stub
        .state
        .requests()
        .iter()
        .filter(|r| r.body["messages"].as_array().is_some_and(|m| m.len() == 1))
        .count();
    assert_eq!(
        first_step_calls, 1,
        "the committed first model call was made again"
    );
    assert_eq!(
        tools.received().len(),
        2,
        "each committed tool call made once"
    );
    let tally = tally(&app, &tools, &[(run, "three steps".to_owned())]).await;
    assert_eq!(
        (
            tally.lost,
            tally.duplicated_model_calls,
            tally.duplicated_tool_calls
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_worker_killed_during_a_server_tool_call_calls_it_again_with_the_same_key() {
    let mut app = spawn_app_with(agent_options(1)).await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    with_server_tool(&app, &key, &tools).await;
    tools.script([Answer::ok("slow").delayed(Duration::from_secs(60))]);
    tools.answer_by_default(Answer::ok("fast"));
    app.stub.state.push([
        Reply::tool_calls(&[("c1", "lookup", "{}")], 4),
        Reply::text("after the tool", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "tool crash"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    wait_for(PATIENCE, || async {
        (!tools.received().is_empty()).then_some(())
    })
    .await
    .expect("the tool call is in flight");
    app.kill_and_replace_worker(0);
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let received = tools.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("idempotency-key"), format!("{run}:c1"));
    assert_eq!(received[1].header("idempotency-key"), format!("{run}:c1"));
    assert_eq!(
        app.stub.state.stats().calls,
        2,
        "the model answer before the tool was committed"
    );
    let last = app.stub.state.requests().pop().expect("a call");
    assert_eq!(last.body["messages"][2]["content"], "fast");
    let tally = tally(&app, &tools, &[(run, "tool crash".to_owned())]).await;
    assert_eq!(
        (
            tally.lost,
            tally.duplicated_model_calls,
            tally.duplicated_tool_calls
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn killing_workers_every_two_seconds_loses_no_tool_run_and_repeats_no_committed_step() {
    let mut app = spawn_app_with(Options {
        stub_delay: Duration::from_secs(1),
        ..agent_options(3).env("STEWRD_WORKER_CONCURRENCY", "15")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let tools = Receiver::start().await;
    with_server_tool(&app, &key, &tools).await;
    // Unscripted, the stub calls the first tool once, then echoes its output.
    tools.answer_by_default(
        Answer::ok("result of $tool_call_id").delayed(Duration::from_millis(500)),
    );
    let mut runs = Vec::new();
    for i in 0..200 {
        let message = format!("agent job {i}");
        let accepted = app.submit(&key, json!({"message": message})).await;
        runs.push((
            accepted["run_id"].as_str().expect("run").to_owned(),
            message,
        ));
    }
    let kills = app.kill_workers_until_done(Duration::from_secs(150)).await;
    let db = app.db().await;
    let tally = tally(&app, &tools, &runs).await;
    println!("kills={kills}");
    assert!(kills >= 3, "the runs finished before the faults began");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.duplicated_model_calls, 0, "{tally:?}");
    assert_eq!(tally.duplicated_tool_calls, 0, "{tally:?}");
    let outputs: i64 = db
        .query_one(
            "SELECT count(*) FROM runs WHERE status = 'succeeded' AND output LIKE 'Echo: result of %'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(outputs, 200, "every run answered with its tool's result");
}
