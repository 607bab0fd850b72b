//! Fallback models: a run whose model is not found, or unavailable or rate
//! limited after its retries, goes on with the next model in the same
//! conversation (the stub refuses one whose tool calls and results do not
//! pair up, as OpenAI does); each step records its model and is priced as
//! its own.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    agent::{steps, tool, wait_status},
    helpers::{Options, TestApp, spawn_app_with},
    operator::{sample, text},
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Answers the paused run's one tool call.
async fn answer_tool(app: &TestApp, key: &str, session: &str, output: &str) {
    let paused = wait_status(app, key, session, "requires_action").await;
    let call = paused["required_action"]["tool_calls"][0]["id"]
        .as_str()
        .expect("a call")
        .to_owned();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/tool_outputs"),
            Some(key),
            Some(json!({"tool_outputs": [{"tool_call_id": call, "output": output}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_missing_model_hands_the_conversation_to_the_next_model_intact() {
    let app = spawn_app_with(Options::default().worker_metrics()).await;
    let (_, key) = app.create_project("fallback").await;
    app.stub.state.push([
        Reply::tool_calls(&[("call_1", "get_weather", r#"{"city":"Paris"}"#)], 100),
        Reply::error(404, "model_not_found", "The model `gpt-4o` does not exist"),
        Reply::text("Sunny in Paris.", 60),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "weather in Paris?", "model": "gpt-4o",
                   "fallback_models": ["gpt-4o-mini", "gpt-4.1-mini"],
                   "tools": [tool("get_weather")]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id");
    answer_tool(&app, &key, session, "sunny, 24C").await;
    let done = app.wait_final(&key, session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "Sunny in Paris.");
    assert_eq!(done["model"], "gpt-4o-mini", "the model that answered");

    // Each step records the model that made it.
    let run = accepted["run_id"].as_str().expect("run");
    let models: Vec<Value> = steps(&app, &key, session, run)
        .await
        .iter()
        .map(|s| s["model"].clone())
        .collect();
    assert_eq!(
        models,
        [json!("gpt-4o"), Value::Null, json!("gpt-4o-mini")],
        "model call, tool call, model call"
    );

    // The fallback got the conversation the missing model was sent, tool
    // call and result paired (the stub answers 400 otherwise), under its name.
    let requests = app.stub.state.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].body["model"], "gpt-4o");
    assert_eq!(requests[2].body["model"], "gpt-4o-mini");
    assert_eq!(requests[1].body["messages"], requests[2].body["messages"]);
    let roles: Vec<&str> = requests[2].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);
    assert_eq!(
        stewrd::stub::unpaired_tool_calls(&requests[2].body),
        None,
        "paired"
    );

    // Each call priced as its own model's: gpt-4o (2.50/10.00 per million)
    // for the first, gpt-4o-mini (0.15/0.60) for the last.
    let expected = 50.0 * 2.5e-6 + 50.0 * 10e-6 + 30.0 * 0.15e-6 + 30.0 * 0.6e-6;
    let cost = done["cost_usd"].as_f64().expect("a cost");
    assert!(close(cost, expected), "{cost} vs {expected}");
    let (_, usage) = app
        .call(
            Method::GET,
            "/v1/project/usage?group_by=model",
            Some(&key),
            None,
        )
        .await;
    let by_model: Vec<(String, i64)> = usage["data"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["model"].as_str().unwrap_or_default().to_owned(),
                l["total_tokens"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(by_model.contains(&("gpt-4o".to_owned(), 100)), "{usage}");
    assert!(
        by_model.contains(&("gpt-4o-mini".to_owned(), 60)),
        "{usage}"
    );

    let metrics = text(&app, &app.worker_metrics().await).await;
    assert_eq!(
        sample(
            &metrics,
            "stewrd_model_fallbacks_total",
            &[r#"code="provider_model_not_found""#]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_project_s_fallbacks_answer_a_rate_limit_after_its_retries_but_not_a_bad_request() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_MAX_ATTEMPTS", "2")
            .env("STEWRD_RETRY_BASE_MS", "20"),
    )
    .await;
    let (_, key) = app.create_project("project-fallback").await;
    let (status, project) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(
                json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-fallback-project-key",
                        "fallback_models": ["gpt-4.1-mini"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["llm"]["fallback_models"], json!(["gpt-4.1-mini"]));

    // Rate limited on every retry of gpt-4o: the project's fallback answers.
    app.stub.state.push([
        Reply::error(429, "rate_limit_exceeded", "slow down").header("retry-after", "0"),
        Reply::error(429, "rate_limit_exceeded", "slow down").header("retry-after", "0"),
        Reply::text("from the fallback", 20),
    ]);
    let accepted = app.submit(&key, json!({"message": "hello"})).await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["model"], "gpt-4.1-mini");
    let models: Vec<Value> = app
        .stub
        .state
        .requests()
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(
        models,
        [json!("gpt-4o"), json!("gpt-4o"), json!("gpt-4.1-mini")]
    );

    // A bad request would fail on any model: no fallback, one call.
    app.stub.state.push([Reply::error(
        400,
        "invalid_request_error",
        "bad temperature",
    )]);
    let accepted = app.submit(&key, json!({"message": "again"})).await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "provider_bad_request", "{done}");
    assert_eq!(app.stub.state.requests().len(), 4);

    // Checked where given.
    for bad in [json!(vec!["m"; 6]), json!([" "]), json!("gpt-4o")] {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "m", "fallback_models": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["param"], "fallback_models", "{body}");
    }
}
