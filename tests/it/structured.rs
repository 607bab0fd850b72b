//! Output contracts: with a `json_schema` response format, the final answer
//! is checked against the schema, sent back with what failed at most
//! `max_repairs` times, and given parsed as `output_json`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    agent::{roles, sent, steps},
    helpers::{Options, spawn_app_with},
};

fn person() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {
        "type": "object", "required": ["name", "age"], "additionalProperties": false,
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}}})
}

#[tokio::test]
async fn an_answer_that_fails_the_schema_is_sent_back_until_it_matches() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::text("Ada, 36", 10),
        Reply::text(r#"{"name": "Ada", "age": "thirty-six"}"#, 10),
        Reply::text(r#"{"name": "Ada", "age": 36}"#, 10),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Who?", "response_format": person(), "max_repairs": 2}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output_json"], json!({"name": "Ada", "age": 36}));
    assert_eq!(done["usage"]["total_tokens"], 30, "every answer counted");
    // The model was sent each answer back with what failed.
    let second = sent(&app, 1);
    assert_eq!(roles(&second), ["user", "assistant", "user"]);
    assert_eq!(second[1]["content"], "Ada, 36");
    assert!(
        second[2]["content"]
            .as_str()
            .is_some_and(|c| c.contains("does not match") && c.contains("not JSON")),
        "{}",
        second[2]
    );
    let third = sent(&app, 2);
    assert_eq!(
        roles(&third),
        ["user", "assistant", "user", "assistant", "user"]
    );
    assert!(
        third[4]["content"]
            .as_str()
            .is_some_and(|c| c.contains("at /age")),
        "{}",
        third[4]
    );
    assert_eq!(third[0]["content"], "Who?");
    // The steps keep the answers sent back and why, then the answer.
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0]["rejected"].is_string());
    assert!(
        listed[1]["rejected"]
            .as_str()
            .is_some_and(|r| r.contains("/age"))
    );
    assert!(listed[2].get("rejected").is_none());
    assert_eq!(listed[2]["content"], r#"{"name": "Ada", "age": 36}"#);
}

#[tokio::test]
async fn past_max_repairs_the_run_fails_keeping_the_last_answer() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        Reply::text(r#"{"name": "Ada"}"#, 10),
        Reply::text(r#"{"name": "Ada", "age": -1}"#, 10),
        Reply::text("never asked", 10),
    ]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "Who?", "response_format": person(), "max_repairs": 1}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "invalid_structured_output");
    assert_eq!(done["output"], r#"{"name": "Ada", "age": -1}"#);
    assert!(done.get("output_json").is_none(), "{done}");
    assert_eq!(done["usage"]["total_tokens"], 20);
    assert_eq!(app.stub.state.stats().calls, 2);
    // A plain schema-free run is not checked at all.
    app.stub.state.clear();
    let accepted = app
        .submit(
            &key,
            json!({"message": "free text", "response_format": {"type": "text"}}),
        )
        .await;
    let free = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(free["status"], "succeeded", "{free}");
    assert!(free.get("output_json").is_none());
}

#[tokio::test]
async fn a_schema_that_cannot_check_answers_is_refused_at_submit() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    for (body, param) in [
        (
            json!({"message": "x", "response_format": {"type": "json_schema",
                   "json_schema": {"name": "p", "schema": {"type": "no such type"}}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"message": "x", "response_format": {"type": "json_schema",
                   "json_schema": {"name": "p"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"message": "x", "response_format": person(), "max_repairs": 11}),
            "max_repairs",
        ),
    ] {
        let (status, error) = app
            .call(Method::POST, "/v1/agent", Some(&key), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
}
