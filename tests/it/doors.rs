//! One implementation per operator action: the admin API, the dashboard and the
//! CLI refuse the same bad input in the same words, because all three call the
//! same action.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app};

/// A signed-in dashboard: its session cookie and its forms' CSRF token.
pub(crate) struct Dashboard<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

impl<'a> Dashboard<'a> {
    pub(crate) async fn sign_in(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let signed_in = client
            .post(format!("{}/dashboard/login", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={ADMIN_TOKEN}"))
            .send()
            .await
            .expect("sign in");
        let cookie = signed_in
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let page = client
            .get(format!("{}/dashboard", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("projects page")
            .text()
            .await
            .unwrap_or_default();
        let csrf = page
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a CSRF token")
            .to_owned();
        Self { app, cookie, csrf }
    }

    /// Gets a page; returns the status and the page.
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.app.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("page");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// Posts a form; returns the status and the page.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut body = format!("csrf={}", self.csrf);
        for (name, value) in fields {
            body.push_str(&format!("&{name}={}", encode(value)));
        }
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.app.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("form posted");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The message of an API error answer.
fn message(error: &Value) -> String {
    error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The CLI's one line of refusal.
fn cli_refusal(app: &TestApp, args: &[&str]) -> String {
    let output = app.run_command(args);
    assert!(!output.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[tokio::test]
async fn the_same_bad_input_gets_the_same_refusal_from_api_dashboard_and_cli() {
    let app = spawn_app().await;
    let (project, _) = app.create_project("acme").await;
    let dashboard = Dashboard::sign_in(&app).await;
    let unknown_project = "01a23300-0000-7000-8000-000000000000";
    let unknown_key = "01a23300-0000-7000-8000-000000000001";

    // Project names.
    for name in ["   ", &"n".repeat(201), "tab\there"] {
        let (status, error) = app
            .call(
                Method::POST,
                "/v1/admin/projects",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(error["error"]["param"], "name");
        let refusal = message(&error);
        let (_, page) = dashboard
            .post("/dashboard/projects", &[("name", name)])
            .await;
        assert!(page.contains(&refusal), "dashboard, {name:?}: {refusal}");
        let line = cli_refusal(&app, &["admin", "create-project", "--name", name]);
        assert!(line.contains(&refusal), "CLI, {name:?}: {line}");
    }

    // A key for a project that does not exist: 404 everywhere, nothing written.
    let (status, error) = app
        .call(
            Method::POST,
            &format!("/v1/admin/projects/{unknown_project}/api-keys"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refusal = message(&error);
    let (status, page) = dashboard
        .post(&format!("/dashboard/projects/{unknown_project}/keys"), &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains(&refusal), "{page}");
    let line = cli_refusal(&app, &["admin", "create-key", "--project", unknown_project]);
    assert!(line.contains(&refusal), "{line}");

    // Revoking a key that does not exist.
    let (status, error) = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/projects/{project}/api-keys/{unknown_key}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refusal = message(&error);
    let (_, page) = dashboard
        .post(
            &format!("/dashboard/projects/{project}/keys/{unknown_key}/revoke"),
            &[],
        )
        .await;
    assert!(page.contains(&refusal), "{page}");
    let line = cli_refusal(&app, &["admin", "revoke-key", "--key", unknown_key]);
    assert!(line.contains(&refusal), "{line}");

    // Rate limits out of range (the dashboard took any number of at least 1).
    for rpm in [0i64, 1_000_001, 2_147_483_648] {
        let (status, error) = app
            .call(
                Method::PUT,
                &format!("/v1/admin/projects/{project}/rate-limit"),
                Some(ADMIN_TOKEN),
                Some(json!({"requests_per_minute": rpm})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rpm}");
        let refusal = message(&error);
        let (_, page) = dashboard
            .post(
                &format!("/dashboard/projects/{project}/limits"),
                &[("requests_per_minute", &rpm.to_string())],
            )
            .await;
        assert!(page.contains(&refusal), "dashboard, {rpm}: {refusal}");
    }
    // Limits: the same refusal, by the API's body or the dashboard's form.
    for (name, bad) in [
        ("max_concurrent_runs", 0_i64),
        ("max_queued_runs", 1_000_001),
        ("tokens_per_day", -5),
        ("tokens_per_month", 1_000_000_000_001),
    ] {
        let (status, error) = app
            .call(
                Method::PUT,
                &format!("/v1/admin/projects/{project}/limits"),
                Some(ADMIN_TOKEN),
                Some(json!({ name: bad })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(error["error"]["param"], name, "{error}");
        let refusal = message(&error);
        let (_, page) = dashboard
            .post(
                &format!("/dashboard/projects/{project}/limits"),
                &[(name, &bad.to_string())],
            )
            .await;
        assert!(page.contains(&refusal), "dashboard, {name}: {refusal}");
    }
    let db = app.db().await;
    let untouched: i64 = db
        .query_one(
            "SELECT count(*) FROM projects WHERE max_concurrent_runs IS NULL
               AND max_queued_runs IS NULL AND tokens_per_day IS NULL AND tokens_per_month IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(untouched, 1, "no refused limit was stored");
    let stored: Option<i32> = db
        .query_one("SELECT rate_limit_rpm FROM projects", &[])
        .await
        .expect("the project")
        .get(0);
    assert_eq!(stored, None, "no refused limit was stored");

    // A rotated webhook secret keeps signing for the same 24 h either way.
    let (_, key) = app.create_project("second").await;
    let (status, _) = app
        .call(Method::POST, "/v1/project/webhook/secret", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    dashboard
        .post(
            &format!("/dashboard/projects/{project}/webhook/secret"),
            &[],
        )
        .await;
    let overlaps: Vec<f64> = db
        .query(
            "SELECT extract(epoch FROM webhook_secret_previous_until - now())::float8 FROM projects",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(overlaps.len(), 2);
    assert!(
        overlaps.iter().all(|s| (86_300.0..=86_400.0).contains(s)),
        "{overlaps:?}"
    );
}
