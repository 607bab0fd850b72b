//! What the API answers to bad, foreign or unauthenticated requests.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, spawn_app};

fn assert_error_shape(body: &Value, kind: &str, code: &str) {
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"].get("param").is_some(), "{body}");
}

#[tokio::test]
async fn requests_without_a_valid_key_get_401() {
    let app = spawn_app().await;
    let (project_id, key) = app.create_project("acme").await;
    let body = Some(json!({"message": "hi"}));

    let (status, error) = app
        .call(Method::POST, "/v1/agent", None, body.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&error, "authentication_error", "missing_api_key");

    for bad in ["sk-stw_not-a-real-key", "nonsense", &key[..key.len() - 1]] {
        let (status, error) = app
            .call(Method::POST, "/v1/agent", Some(bad), body.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_error_shape(&error, "authentication_error", "invalid_api_key");
    }

    // A second key works; once revoked it is refused on the very next request.
    let (status, issued) = app
        .call(
            Method::POST,
            &format!("/v1/admin/projects/{project_id}/api-keys"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let second = issued["api_key"].as_str().expect("key");
    let (status, _) = app
        .call(Method::GET, "/v1/project", Some(second), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let key_id = issued["id"].as_str().expect("key id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/projects/{project_id}/api-keys/{key_id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = app
        .call(Method::GET, "/v1/project", Some(second), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&error, "authentication_error", "invalid_api_key");
    // The first key is untouched.
    let (status, project) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(project["id"], project_id.as_str());
    assert_eq!(project["name"], "acme");
    assert_eq!(project["llm"]["has_provider_key"], false);
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_token() {
    let app = spawn_app().await;
    let body = Some(json!({"name": "x"}));
    let (status, error) = app
        .call(Method::POST, "/v1/admin/projects", None, body.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&error, "authentication_error", "missing_admin_token");
    let (status, error) = app
        .call(
            Method::POST,
            "/v1/admin/projects",
            Some("wrong"),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&error, "authentication_error", "invalid_admin_token");
    // A project key is not an admin token.
    let (_, key) = app.create_project("acme").await;
    let (status, _) = app
        .call(Method::GET, "/v1/admin/projects", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, list) = app
        .call(Method::GET, "/v1/admin/projects", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn another_projects_session_is_a_404_identical_to_an_unknown_one() {
    let app = spawn_app().await;
    let (_, alice) = app.create_project("alice").await;
    let (_, mallory) = app.create_project("mallory").await;
    let accepted = app.submit(&alice, json!({"message": "private"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    app.wait_final(&alice, session_id).await;

    let path = format!("/v1/sessions/{session_id}");
    let (status, _, foreign) = app.call_raw(Method::GET, &path, Some(&mallory), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown_path = format!("/v1/sessions/{}", uuid::Uuid::now_v7());
    let (status, _, unknown) = app
        .call_raw(Method::GET, &unknown_path, Some(&mallory), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign, unknown,
        "a foreign session must be indistinguishable from a missing one"
    );
    let (status, _, malformed) = app
        .call_raw(Method::GET, "/v1/sessions/not-an-id", Some(&mallory), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(malformed, unknown);

    // Nor can another project append to it, or see it listed.
    let (status, error) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&mallory),
            Some(json!({"message": "hijack", "session_id": session_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&error, "not_found_error", "not_found");
    let (_, list) = app
        .call(Method::GET, "/v1/sessions", Some(&mallory), None)
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    let (status, own) = app.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn bad_bodies_get_400_in_the_error_shape_and_store_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("{\"message\": ", "invalid_json", None),
        ("", "invalid_json", None),
        ("[]", "invalid_body", None),
        ("{}", "missing_field", Some("message")),
        (
            "{\"message\": \"hi\", \"colour\": \"red\"}",
            "unknown_field",
            Some("colour"),
        ),
        ("{\"message\": 5}", "invalid_value", Some("message")),
        ("{\"message\": \"   \"}", "invalid_value", Some("message")),
        (
            "{\"message\": \"hi\", \"temperature\": 3}",
            "invalid_value",
            Some("temperature"),
        ),
        (
            "{\"message\": \"hi\", \"max_tokens\": 0}",
            "invalid_value",
            Some("max_tokens"),
        ),
        (
            "{\"message\": \"hi\", \"session_id\": \"nope\"}",
            "invalid_value",
            Some("session_id"),
        ),
        (
            "{\"message\": \"hi\", \"webhook_url\": \"ftp://x\"}",
            "invalid_value",
            Some("webhook_url"),
        ),
        (
            "{\"message\": \"hi\", \"metadata\": {\"a\": 1}}",
            "invalid_value",
            Some("metadata.a"),
        ),
        (
            "{\"message\": \"hi\", \"model\": \"\"}",
            "invalid_value",
            Some("model"),
        ),
    ];
    for (body, code, param) in cases {
        let (status, _, text) = app
            .call_raw(
                Method::POST,
                "/v1/agent",
                Some(&key),
                Some((*body).to_owned()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {text}");
        let error: Value = serde_json::from_str(&text).expect("a JSON error");
        assert_error_shape(&error, "invalid_request_error", code);
        if let Some(param) = param {
            assert_eq!(error["error"]["param"], *param, "{body} → {text}");
        }
    }
    let too_big = json!({"message": "x".repeat(2 * 1024 * 1024)}).to_string();
    let (status, _, text) = app
        .call_raw(Method::POST, "/v1/agent", Some(&key), Some(too_big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let error: Value = serde_json::from_str(&text).expect("a JSON error");
    assert_error_shape(&error, "invalid_request_error", "body_too_large");

    let db = app.db().await;
    let runs: i64 = db
        .query_one("SELECT count(*) FROM runs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(runs, 0, "a refused request stored a run");

    let (status, error) = app.call(Method::GET, "/v1/nowhere", Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&error, "not_found_error", "not_found");
}
