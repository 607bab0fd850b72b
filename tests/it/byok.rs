//! Bring your own key: each project's provider key is stored encrypted, used only
//! for that project's calls, never shown, never logged, and rotatable.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::helpers::{
    ADMIN_TOKEN, DEFAULT_KEY, MASTER_KEYS, Options, TestApp, spawn_app, spawn_app_with,
};

async fn set_llm(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, project) = app
        .call(Method::PUT, "/v1/project/llm", Some(key), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    project
}

async fn run_once(app: &TestApp, key: &str, message: &str) -> Value {
    let accepted = app.submit(key, json!({"message": message})).await;
    app.wait_final(key, accepted["session_id"].as_str().expect("id"))
        .await
}

async fn key_status(app: &TestApp, key: &str) -> Value {
    let (_, project) = app.call(Method::GET, "/v1/project", Some(key), None).await;
    project["llm"]["key_status"].clone()
}

#[tokio::test]
async fn a_project_key_is_used_for_its_runs_only_and_never_shown() {
    let app = spawn_app().await;
    let (_, alice) = app.create_project("alice").await;
    let (_, bob) = app.create_project("bob").await;
    let secret = "sk-alice-0123456789abcdef";
    let project = set_llm(
        &app,
        &alice,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": secret}),
    )
    .await;
    assert_eq!(project["llm"]["has_provider_key"], true);
    assert_eq!(project["llm"]["provider"], "openai");
    assert_eq!(project["llm"]["model"], "gpt-4o");
    assert_eq!(project["llm"]["key_status"], "unchecked");
    assert!(!project.to_string().contains(secret));

    let session = run_once(&app, &alice, "hello").await;
    assert_eq!(session["status"], "succeeded", "{session}");
    assert_eq!(session["key_source"], "project");
    assert_eq!(session["model"], "gpt-4o");
    let session = run_once(&app, &bob, "hello").await;
    assert_eq!(session["key_source"], "default");

    let calls = app.stub.state.requests();
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    assert_eq!(calls[0].body["model"], "gpt-4o");
    assert_eq!(
        calls[1].authorization.as_deref(),
        Some(format!("Bearer {DEFAULT_KEY}").as_str())
    );
    assert_eq!(key_status(&app, &alice).await, "valid");

    // Stored only encrypted, under the active key id.
    let db = app.db().await;
    let stored: Vec<u8> = db
        .query_one("SELECT llm_api_key FROM projects WHERE name = 'alice'", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(&stored[..4], b"\x01\x02k1");
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Changing the key takes effect for the next run.
    set_llm(
        &app,
        &alice,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-alice-new-key-999"}),
    )
    .await;
    assert_eq!(key_status(&app, &alice).await, "unchecked");
    run_once(&app, &alice, "again").await;
    let last = app.stub.state.requests().pop().expect("a call");
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer sk-alice-new-key-999")
    );

    // Omitting api_key keeps the stored key.
    set_llm(
        &app,
        &alice,
        json!({"provider": "openai", "model": "gpt-4o-mini"}),
    )
    .await;
    run_once(&app, &alice, "kept").await;
    let last = app.stub.state.requests().pop().expect("a call");
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer sk-alice-new-key-999")
    );
    assert_eq!(last.body["model"], "gpt-4o-mini");

    // Deleting the configuration brings the default back.
    let (status, project) = app
        .call(Method::DELETE, "/v1/project/llm", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(project["llm"]["has_provider_key"], false);
    let session = run_once(&app, &alice, "default again").await;
    assert_eq!(session["key_source"], "default");
}

#[tokio::test]
async fn openrouter_calls_go_to_its_path_with_attribution_headers() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    set_llm(
        &app,
        &key,
        json!({"provider": "openrouter", "model": "anthropic/claude-sonnet-4", "api_key": "sk-or-v1-abc123"}),
    )
    .await;
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["provider"], "openrouter");
    let call = app.stub.state.requests().pop().expect("a call");
    assert_eq!(call.path, "/api/v1/chat/completions");
    assert_eq!(
        call.authorization.as_deref(),
        Some("Bearer sk-or-v1-abc123")
    );
    assert_eq!(call.body["model"], "anthropic/claude-sonnet-4");
    assert!(
        call.headers.contains_key("http-referer"),
        "{:?}",
        call.headers
    );
    assert_eq!(
        call.headers.get("x-title").map(String::as_str),
        Some("stewrd")
    );
}

#[tokio::test]
async fn a_rejected_project_key_fails_its_run_and_is_never_replaced_by_the_default() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    set_llm(
        &app,
        &key,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-revoked-key-1"}),
    )
    .await;

    app.stub.state.push([Reply::error(
        401,
        "invalid_api_key",
        "Incorrect API key provided",
    )]);
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["error"]["code"], "provider_auth_failed");
    assert_eq!(session["error"]["message"], "Incorrect API key provided");
    assert_eq!(key_status(&app, &key).await, "invalid");
    let calls = app.stub.state.requests();
    assert_eq!(
        calls.len(),
        1,
        "a 401 is not retried, and the default key is never tried"
    );
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some("Bearer sk-revoked-key-1")
    );

    app.stub.state.push([Reply::error(
        429,
        "insufficient_quota",
        "You exceeded your current quota",
    )]);
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["error"]["code"], "provider_insufficient_credits");
    assert_eq!(key_status(&app, &key).await, "quota_exhausted");

    app.stub.state.push([Reply::error(
        402,
        "payment_required",
        "Insufficient credits",
    )]);
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["error"]["code"], "provider_insufficient_credits");
    assert!(
        app.stub
            .state
            .requests()
            .iter()
            .all(|c| c.authorization.as_deref() != Some(&format!("Bearer {DEFAULT_KEY}")))
    );

    // A replaced key starts unchecked and proves itself.
    set_llm(
        &app,
        &key,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-fresh-key-2"}),
    )
    .await;
    assert_eq!(key_status(&app, &key).await, "unchecked");
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["status"], "succeeded");
    assert_eq!(key_status(&app, &key).await, "valid");
}

#[tokio::test]
async fn with_no_key_anywhere_a_run_fails_with_no_provider_configured() {
    let app = spawn_app_with(Options::default().env("STEWRD_DEFAULT_API_KEY", "")).await;
    let (_, key) = app.create_project("acme").await;
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["status"], "failed");
    assert_eq!(session["error"]["code"], "no_provider_configured");
    assert_eq!(session["runs"][0]["attempts"], 1, "no retry loop");
    assert_eq!(app.stub.state.stats().calls, 0);
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_project_does_not_decrypt() {
    let app = spawn_app().await;
    let (_, alice) = app.create_project("alice").await;
    let (_, mallory) = app.create_project("mallory").await;
    set_llm(
        &app,
        &alice,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-alice-stolen-1"}),
    )
    .await;
    let db = app.db().await;
    db.execute(
        "UPDATE projects SET llm_provider = 'openai', llm_model = 'gpt-4o',
             llm_api_key = (SELECT llm_api_key FROM projects WHERE name = 'alice')
         WHERE name = 'mallory'",
        &[],
    )
    .await
    .expect("copy");
    let session = run_once(&app, &mallory, "use alice's key").await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "provider_auth_failed");
    assert!(
        session["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot be decrypted")
    );
    assert_eq!(key_status(&app, &mallory).await, "invalid");
    assert_eq!(
        app.stub.state.stats().calls,
        0,
        "nothing was sent with any key"
    );
}

#[tokio::test]
async fn bad_provider_configurations_get_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let long_key = "k".repeat(513);
    let cases = [
        (json!({"provider": "anthropic", "model": "m"}), "provider"),
        (json!({"provider": "openai", "model": ""}), "model"),
        (
            json!({"provider": "openai", "model": "m".repeat(201)}),
            "model",
        ),
        (
            json!({"provider": "openai", "model": "m", "api_key": ""}),
            "api_key",
        ),
        (
            json!({"provider": "openai", "model": "m", "api_key": "sk has space"}),
            "api_key",
        ),
        (
            json!({"provider": "openai", "model": "m", "api_key": long_key}),
            "api_key",
        ),
        // A zero-width space pasted with the key, and a non-ASCII letter.
        (
            json!({"provider": "openai", "model": "m", "api_key": "sk-proj-abc\u{200b}FAKEKEY123"}),
            "api_key",
        ),
        (
            json!({"provider": "openai", "model": "m", "api_key": "sk-proj-ümlautKEY123"}),
            "api_key",
        ),
        (
            json!({"provider": "openai", "model": "m", "key": "x"}),
            "key",
        ),
        (json!({"model": "m"}), "provider"),
    ];
    for (body, param) in cases {
        let (status, error) = app
            .call(
                Method::PUT,
                "/v1/project/llm",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["param"], param, "{body} → {error}");
        for secret in ["sk has space", "FAKEKEY123", "mlautKEY123"] {
            assert!(!error.to_string().contains(secret), "{error}");
        }
    }
    let (_, error) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(json!({"provider": "anthropic", "model": "m"})),
        )
        .await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("openai") && message.contains("openrouter"),
        "{message}"
    );
}

#[tokio::test]
async fn the_operator_manages_a_projects_provider_through_the_admin_api() {
    let app = spawn_app().await;
    let (project_id, key) = app.create_project("acme").await;
    let path = format!("/v1/admin/projects/{project_id}/llm");
    let (status, project) = app
        .call(
            Method::PUT,
            &path,
            Some(ADMIN_TOKEN),
            Some(json!({"provider": "openrouter", "model": "openai/gpt-4o", "api_key": "sk-or-admin-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["llm"]["has_provider_key"], true);
    let (_, shown) = app.call(Method::GET, &path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(shown["llm"]["provider"], "openrouter");
    assert!(!shown.to_string().contains("sk-or-admin-1"));
    let session = run_once(&app, &key, "hi").await;
    assert_eq!(session["provider"], "openrouter");
    // A project key cannot use the admin routes.
    let (status, _) = app.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, cleared) = app
        .call(Method::DELETE, &path, Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cleared["llm"]["has_provider_key"], false);
}

/// Everything a key could leak into: responses, every log line at trace level of
/// API and worker, and every column of every table.
#[tokio::test]
async fn a_provider_key_never_appears_in_responses_logs_or_the_database() {
    let mut app = spawn_app_with(Options::default().env("RUST_LOG", "trace")).await;
    let (project_id, key) = app.create_project("acme").await;
    // Letters, '/' and '+' (which URL-encode), and no digit run a log could hold.
    let first = "sk-leak1-QwErTy/UiOp+ZxCvBnMkJhG";
    let second = "sk-leak2-AsDfGh/JkLz+XcVbNmPoIuY";

    set_llm(
        &app,
        &key,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": first}),
    )
    .await;
    let ok = run_once(&app, &key, "hello").await;
    assert_eq!(ok["status"], "succeeded");
    // The provider quotes the key it rejects, as OpenAI does, also transformed:
    // upper-cased, URL-encoded, masked up to its 13th character, or straddling
    // the point where long messages are cut.
    let quotes = [
        first.to_owned(),
        first.to_uppercase(),
        first.replace('/', "%2F").replace('+', "%2B"),
        format!("sk-leak1-****{}", &first[12..]),
        format!("{}{first}", "x".repeat(957)),
    ];
    for quote in &quotes {
        app.stub.state.push([Reply::error(
            401,
            "invalid_api_key",
            &format!("Incorrect API key provided: {quote}"),
        )]);
        let failed = run_once(&app, &key, "again").await;
        assert_eq!(failed["error"]["code"], "provider_auth_failed");
        let message = failed["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("[redacted]"), "{message}");
    }

    // Rotate the master key with no downtime: add k2 first, rotate, drop k1.
    let rotated_ring = format!(
        "k2:{},{MASTER_KEYS}",
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
    );
    app.restart_api(&[("STEWRD_MASTER_KEYS", &rotated_ring)])
        .await;
    app.restart_workers(&[]).await;
    let output = app.run_command(&["rotate-master-key"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(
        report["moved"], 2,
        "the provider key and the webhook secret"
    );
    let rotation_output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    set_llm(
        &app,
        &key,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": second}),
    )
    .await;
    let ok = run_once(&app, &key, "after rotation").await;
    assert_eq!(ok["status"], "succeeded");
    let (_, admin_view) = app
        .call(
            Method::GET,
            &format!("/v1/admin/projects/{project_id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(admin_view["llm"]["has_provider_key"], true);

    // The stub did receive both keys: the test would see them if they leaked.
    let seen: Vec<_> = app
        .stub
        .state
        .requests()
        .into_iter()
        .filter_map(|c| c.authorization)
        .collect();
    assert!(
        seen.contains(&format!("Bearer {first}")) && seen.contains(&format!("Bearer {second}"))
    );

    let responses = app.responses_text();
    let logs = app.all_logs();
    assert!(logs.lines().count() > 200, "trace logging is on");
    let database = database_text(&app).await;
    let places = [
        ("a response", responses),
        ("the logs", logs),
        ("the database", database),
        ("the rotation output", rotation_output),
    ];
    for secret in [first, second] {
        assert_no_piece_of(secret, &places);
    }
}

/// Every row of every table, as text.
pub(crate) async fn database_text(app: &TestApp) -> String {
    let db = app.db().await;
    let mut database = String::new();
    let tables = db
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .expect("tables");
    for table in tables {
        let name: String = table.get(0);
        for row in db
            .query(&format!("SELECT t::text FROM \"{name}\" t"), &[])
            .await
            .expect("rows")
        {
            database.push_str(&row.get::<_, String>(0));
            database.push('\n');
        }
    }
    database
}

/// No eight characters of `secret` in a row, in any case or URL-encoded, nor
/// its hex, in any of the `(place, text)`.
pub(crate) fn assert_no_piece_of(secret: &str, places: &[(&str, String)]) {
    let lower = secret.to_lowercase();
    let encoded = lower.replace('/', "%2f").replace('+', "%2b");
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let mut needles: Vec<&str> = vec![&hex];
    for form in [&lower, &encoded] {
        needles.extend((0..=form.len() - 8).map(|i| &form[i..i + 8]));
    }
    for (place, text) in places {
        let text = text.to_lowercase();
        for needle in &needles {
            assert!(!text.contains(needle), "{needle} of {secret} in {place}");
        }
    }
}

async fn submit_batch(app: &TestApp, key: &str, n: usize) -> Vec<Value> {
    let submits = (0..n).map(|i| app.submit(key, json!({"message": format!("job {i}")})));
    futures_util::future::join_all(submits).await
}

#[tokio::test]
async fn jobs_keep_succeeding_while_the_master_key_is_rotated() {
    let mut app = spawn_app_with(
        Options::default()
            .env("STEWRD_SHUTDOWN_GRACE_SECS", "20")
            .env("STEWRD_LEASE_SECS", "3"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    set_llm(
        &app,
        &key,
        json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-rotate-me-123"}),
    )
    .await;
    app.stub
        .state
        .set_delay(std::time::Duration::from_millis(300));
    let mut sessions = Vec::new();
    sessions.extend(submit_batch(&app, &key, 10).await);

    // 1. Every process learns the new key first (it becomes the active one).
    let both = format!(
        "k2:{},{MASTER_KEYS}",
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
    );
    app.restart_workers(&[("STEWRD_MASTER_KEYS", &both)]).await;
    app.restart_api(&[]).await;
    sessions.extend(submit_batch(&app, &key, 10).await);
    // 2. Rotation moves the old ciphertext while jobs run.
    let output = app.run_command(&["rotate-master-key"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(
        report["moved"], 2,
        "provider key and webhook secret: {report}"
    );
    assert_eq!(report["active_key"], "k2");
    sessions.extend(submit_batch(&app, &key, 10).await);
    // 3. The old key is dropped everywhere.
    let only_new = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    app.restart_workers(&[("STEWRD_MASTER_KEYS", only_new)])
        .await;
    app.restart_api(&[]).await;
    sessions.extend(submit_batch(&app, &key, 10).await);

    for accepted in &sessions {
        let session = app
            .wait_final(&key, accepted["session_id"].as_str().expect("id"))
            .await;
        assert_eq!(session["status"], "succeeded", "{session}");
        assert_eq!(session["key_source"], "project");
    }
    let calls = app.stub.state.requests();
    assert!(
        calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some("Bearer sk-rotate-me-123"))
    );
    // A second rotation has nothing left to move.
    let output = app.run_command(&["rotate-master-key"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    assert_eq!(report["moved"], 0);
}
