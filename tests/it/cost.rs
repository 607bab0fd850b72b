//! The cost guard: prices (the list and the operator's), `cost_usd` on runs,
//! sessions and usage, money budgets reserved across workers so concurrent
//! runs cannot overspend them, a run's own `max_cost_usd`, and `price_unknown`
//! when a money budget meets a model without a price.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;
use time::OffsetDateTime;

use crate::{
    helpers::{ADMIN_TOKEN, Options, TestApp, spawn_app_with},
    tenants::{outcomes, set_limits, try_submit},
};

/// Sets prices through the admin API; answers the whole table.
async fn put_prices(app: &TestApp, prices: Value) -> Value {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/admin/prices",
            Some(ADMIN_TOKEN),
            Some(json!({ "prices": prices })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The price of `model` on `provider` in a table as the API shows it.
fn price_of<'a>(table: &'a Value, provider: &str, model: &str) -> Option<&'a Value> {
    table["prices"]
        .as_array()
        .expect("prices")
        .iter()
        .find(|p| p["provider"] == provider && p["model"] == model)
}

/// Dollars per token for a price per million tokens.
fn per_token(per_mtok: f64) -> f64 {
    per_mtok / 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn prices_are_the_list_merged_with_the_operator_s() {
    let app = spawn_app_with(Options::default()).await;
    let (status, listed) = app
        .call(Method::GET, "/v1/admin/prices", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mini = price_of(&listed, "openai", "gpt-4o-mini").expect("a list price");
    assert_eq!(mini["input_per_mtok"], 0.15, "{mini}");
    assert_eq!(mini["output_per_mtok"], 0.6, "{mini}");
    assert_eq!(mini["source"], "list");
    let count = listed["prices"].as_array().expect("prices").len();

    // Merged by provider and model: one replaced, one added, the rest kept.
    let table = put_prices(
        &app,
        json!([
            {"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": 0.2, "output_per_mtok": 0.8},
            {"provider": "openrouter", "model": "anthropic/claude-3.5-haiku", "input_per_mtok": 0.8, "output_per_mtok": 4},
        ]),
    )
    .await;
    assert_eq!(table["prices"].as_array().expect("prices").len(), count + 1);
    let mini = price_of(&table, "openai", "gpt-4o-mini").expect("kept");
    assert_eq!(
        (mini["input_per_mtok"].as_f64(), mini["source"].as_str()),
        (Some(0.2), Some("operator"))
    );
    assert_eq!(
        price_of(&table, "openai", "gpt-4o").expect("kept")["source"],
        "list"
    );
    let (_, shown) = app
        .call(Method::GET, "/v1/admin/prices", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(shown, table);

    for (bad, param) in [
        (
            json!({"prices": [{"provider": "anthropic", "model": "m", "input_per_mtok": 1, "output_per_mtok": 1}]}),
            "prices[0].provider",
        ),
        (
            json!({"prices": [{"provider": "openai", "model": "", "input_per_mtok": 1, "output_per_mtok": 1}]}),
            "prices[0].model",
        ),
        (
            json!({"prices": [{"provider": "openai", "model": "m", "input_per_mtok": -1, "output_per_mtok": 1}]}),
            "prices[0].input_per_mtok",
        ),
        (
            json!({"prices": [{"provider": "openai", "model": "m", "input_per_mtok": 1, "output_per_mtok": 1e12}]}),
            "prices[0].output_per_mtok",
        ),
    ] {
        let (status, body) = app
            .call(
                Method::PUT,
                "/v1/admin/prices",
                Some(ADMIN_TOKEN),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["param"], param, "{bad}: {body}");
    }
    let (status, _) = app
        .call(Method::GET, "/v1/admin/prices", Some("not-the-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_run_costs_its_tokens_at_the_model_s_price_and_unknown_prices_cost_null() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("cost").await;
    app.stub.state.push([Reply::text("priced", 300)]);
    let accepted = app
        .submit(&key, json!({"message": "what does it cost"}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // gpt-4o-mini's list price: 150 prompt and 150 answer tokens.
    let expected = 150.0 * per_token(0.15) + 150.0 * per_token(0.6);
    let cost = done["cost_usd"].as_f64().expect("a cost");
    assert!(close(cost, expected), "{cost} vs {expected}");
    assert!(close(
        done["runs"][0]["cost_usd"].as_f64().expect("a cost"),
        expected
    ));
    let (_, usage) = app
        .call(Method::GET, "/v1/project/usage", Some(&key), None)
        .await;
    assert!(
        close(
            usage["data"][0]["cost_usd"].as_f64().expect("a cost"),
            expected
        ),
        "{usage}"
    );

    // A model stewrd has no price for, with no money budget: run, cost unknown.
    app.stub.state.push([Reply::text("unpriced", 300)]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "and this", "model": "mystery-model-7"}),
        )
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["cost_usd"].is_null(), "{done}");
}

#[tokio::test]
async fn money_budgets_are_reserved_so_concurrent_runs_never_spend_past_them() {
    let app = spawn_app_with(Options::default()).await;
    let (project, key) = app.create_project("dollars").await;
    // $0.001 a token: each answer below (100 tokens) costs $0.10, and a call's
    // worst case (its prompt's bytes plus max_tokens of 100) about $0.16.
    put_prices(
        &app,
        json!([{"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": 1000, "output_per_mtok": 1000}]),
    )
    .await;
    let budget = 0.5;
    set_limits(&app, &project, json!({"usd_per_day": budget})).await;
    // Twenty at once: checked before each call only, all twenty would run
    // ($2.00). Reserved, a call starts only while its worst case fits beside
    // the others in flight.
    app.stub
        .state
        .push((0..20).map(|_| Reply::text("ten cents", 100).delayed(Duration::from_millis(500))));
    let mut sessions = Vec::new();
    for i in 0..20 {
        let accepted = app
            .submit(
                &key,
                json!({"message": format!("job {i}"), "max_tokens": 100}),
            )
            .await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    let by_status = outcomes(&app, &key, &sessions, "cost_budget_exhausted").await;
    let (_, usage) = app
        .call(Method::GET, "/v1/project/usage", Some(&key), None)
        .await;
    let spent = usage["data"][0]["cost_usd"].as_f64().expect("spent");
    let succeeded = by_status.get("succeeded").copied().unwrap_or(0);
    let calls = app.stub.state.stats().calls;
    println!("spent=${spent} of ${budget}, succeeded={succeeded}, calls={calls}");
    assert!(
        spent <= budget + 1e-9,
        "overspent: ${spent} ({by_status:?})"
    );
    assert!(succeeded >= 2, "{by_status:?}");
    assert!(close(spent, succeeded as f64 * 0.1), "{spent}");
    assert_eq!(calls, succeeded as u64, "no call beyond the budget");
    assert_eq!(by_status["cost_budget_exhausted"] + succeeded, 20);
    let left: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM runs WHERE reserved_usd IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "every reservation settled");

    // Spent: a submit is refused until the day ends (UTC).
    set_limits(&app, &project, json!({"usd_per_day": spent})).await;
    let (status, retry_after, body) = try_submit(&app, &key, json!({"message": "more"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "cost_budget_exhausted", "{body}");
    let tomorrow = OffsetDateTime::now_utc().date().next_day().expect("a date");
    let until = (tomorrow.midnight().assume_utc() - OffsetDateTime::now_utc()).whole_seconds();
    let retry_after = i64::try_from(retry_after.expect("Retry-After")).expect("seconds");
    assert!((retry_after - until).abs() <= 5, "{retry_after} vs {until}");
    // And a monthly budget the same way.
    set_limits(&app, &project, json!({"usd_per_month": spent})).await;
    let (status, _, body) = try_submit(&app, &key, json!({"message": "more"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "cost_budget_exhausted", "{body}");
}

#[tokio::test]
async fn a_money_budget_never_runs_a_model_without_a_price() {
    let app = spawn_app_with(Options::default()).await;
    let (project, key) = app.create_project("unpriced").await;
    set_limits(&app, &project, json!({"usd_per_month": 100.0})).await;
    let accepted = app
        .submit(&key, json!({"message": "hi", "model": "mystery-model-7"}))
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "price_unknown", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("mystery-model-7") && m.contains("/v1/admin/prices")),
        "{done}"
    );
    assert_eq!(app.stub.state.stats().calls, 0, "never run unmetered");

    // Given a price, the same model runs (a dated snapshot priced as its model).
    put_prices(
        &app,
        json!([{"provider": "openai", "model": "mystery-model-7", "input_per_mtok": 1, "output_per_mtok": 2}]),
    )
    .await;
    app.stub.state.push([Reply::text("priced now", 20)]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "hi", "model": "mystery-model-7-2026-01-31"}),
        )
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let expected = 10.0 * per_token(1.0) + 10.0 * per_token(2.0);
    assert!(
        close(done["cost_usd"].as_f64().expect("cost"), expected),
        "{done}"
    );
}

#[tokio::test]
async fn max_cost_usd_stops_a_run_before_the_call_that_could_pass_it() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("capped").await;
    // $0.0001 a token: each answer (100 tokens) $0.01; a call's worst case
    // (prompt bytes plus max_tokens) about $0.03 and growing with the history.
    put_prices(
        &app,
        json!([{"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": 100, "output_per_mtok": 100}]),
    )
    .await;
    // Every answer fails its schema and is sent back (up to 10 times): only
    // the cap stops it.
    app.stub
        .state
        .push((0..12).map(|_| Reply::text("not json", 100)));
    let cap = 0.05;
    let accepted = app
        .submit(
            &key,
            json!({
                "message": "give me json", "max_tokens": 100, "max_cost_usd": cap,
                "max_steps": 20, "max_repairs": 10,
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            }),
        )
        .await;
    let done = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "cost_budget_exhausted", "{done}");
    let calls = app.stub.state.stats().calls;
    let cost = done["cost_usd"].as_f64().expect("a cost");
    assert!((1..11).contains(&calls), "{calls} calls");
    assert!(close(cost, calls as f64 * 0.01), "{cost} for {calls} calls");
    assert!(cost <= cap, "{cost} > {cap}");

    for (bad, why) in [
        (json!(0), "zero"),
        (json!(-1), "negative"),
        (json!("1"), "a string"),
    ] {
        let (status, _, body) =
            try_submit(&app, &key, json!({"message": "m", "max_cost_usd": bad})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"]["param"], "max_cost_usd", "{why}: {body}");
    }
}
