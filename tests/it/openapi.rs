//! The OpenAPI document: generated from the code, complete, and checked against
//! the running API by schemathesis with every check on.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_openapi_document_describes_every_call_of_the_contract() {
    let app = spawn_app().await;
    let (status, document) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let expected = [
        ("post", "/v1/agent"),
        ("get", "/v1/sessions"),
        ("get", "/v1/sessions/{id}"),
        ("post", "/v1/sessions/{id}/cancel"),
        ("get", "/v1/sessions/{id}/events"),
        ("get", "/v1/sessions/{id}/deliveries"),
        ("post", "/v1/sessions/{id}/deliveries/retry"),
        ("post", "/v1/sessions/{id}/tool_outputs"),
        ("get", "/v1/sessions/{id}/runs/{run_id}/steps"),
        ("get", "/v1/project/tools"),
        ("put", "/v1/project/tools"),
        ("get", "/v1/admin/projects/{id}/tools"),
        ("put", "/v1/admin/projects/{id}/tools"),
        ("get", "/v1/project"),
        ("put", "/v1/project/llm"),
        ("delete", "/v1/project/llm"),
        ("put", "/v1/project/webhook"),
        ("post", "/v1/project/webhook/secret"),
        ("post", "/v1/admin/projects"),
        ("get", "/v1/admin/projects"),
        ("get", "/v1/admin/projects/{id}"),
        ("get", "/v1/admin/projects/{id}/llm"),
        ("put", "/v1/admin/projects/{id}/llm"),
        ("delete", "/v1/admin/projects/{id}/llm"),
        ("put", "/v1/admin/projects/{id}/rate-limit"),
        ("post", "/v1/admin/projects/{id}/api-keys"),
        ("delete", "/v1/admin/projects/{id}/api-keys/{key_id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in expected {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["project_key"]["scheme"], "bearer");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    let agent = &document["paths"]["/v1/agent"]["post"];
    assert_eq!(agent["security"][0]["project_key"], Value::Array(vec![]));
    for status in ["202", "400", "401", "404", "409", "413", "422", "503"] {
        assert!(
            agent["responses"][status].is_object(),
            "POST /v1/agent: {status} undocumented"
        );
    }
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["CreateAgentIn"]["additionalProperties"], false);
    assert_eq!(
        schemas["RunStatus"]["enum"],
        serde_json::json!([
            "queued",
            "running",
            "requires_action",
            "succeeded",
            "failed",
            "cancelled"
        ])
    );
    assert_eq!(
        schemas["ErrorResponse"]["required"],
        serde_json::json!(["error"])
    );
    // Never a secret, even in the schema of the key field.
    assert_eq!(
        schemas["ProjectOut"]["properties"]["llm"]["$ref"],
        "#/components/schemas/LlmOut"
    );
    assert!(schemas["LlmOut"]["properties"].get("api_key").is_none());

    // What generators need (the clients' types come from this document):
    // operation ids unique, a path parameter only where the path names it,
    // and file bytes as binary.
    let mut ids = std::collections::BTreeMap::<String, String>::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(other) = ids.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id} names {other} and {method} {path}");
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap_or_default();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name} is no path parameter"
                    );
                }
            }
        }
    }
    let content = &document["paths"]["/v1/files/{id}/content"]["get"]["responses"]["200"];
    let body = &content["content"]["application/octet-stream"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/Binary", "{content}");
    assert_eq!(schemas["Binary"]["format"], "binary");
}

/// Runs schemathesis (installed by `scripts/test --all` into `target/schemathesis`)
/// with every check on: project calls with a project key, admin calls with the
/// admin token, operations without. `schemathesis.toml` explains the one check
/// left out and the one status allowed.
#[tokio::test]
#[ignore = "slow: schemathesis; run by scripts/test --all"]
async fn schemathesis_finds_no_failure_with_every_check_on() {
    let root = env!("CARGO_MANIFEST_DIR");
    let schemathesis = format!("{root}/target/schemathesis/bin/schemathesis");
    assert!(
        std::path::Path::new(&schemathesis).exists(),
        "schemathesis is not installed: run scripts/test --all"
    );
    // Server tools the fuzzer sets point nowhere: fail their retries fast, so
    // every run ends well within a long-poll.
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "50ms")).await;
    let (_, key) = app.create_project("fuzzed").await;
    let document = format!("{}/openapi.json", app.base);
    let runs = [
        (
            "project calls",
            Some(key.as_str()),
            "^/v1/(agent|sessions|project)",
        ),
        ("admin calls", Some(ADMIN_TOKEN), "^/v1/admin"),
        ("operations", None, "^/(healthz|readyz|metrics)"),
    ];
    for (label, token, paths) in runs {
        let mut command = Command::new(&schemathesis);
        command
            .current_dir(root)
            .args([
                "run",
                &document,
                "--checks",
                "all",
                "--exclude-checks",
                "use_after_free",
            ])
            .args([
                "--include-path-regex",
                paths,
                "--max-examples",
                "50",
                "--seed",
                "1",
            ])
            .args(["--request-timeout", "30", "--no-color"]);
        if let Some(token) = token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        // Off the runtime thread: the stub provider answers on it meanwhile.
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("joined")
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&output.stdout);
        println!("{label}: {}", report.lines().last().unwrap_or_default());
        assert!(
            output.status.success(),
            "schemathesis found failures in {label}:\n{report}"
        );
    }
}
