//! The dashboard, driven in headless Chromium by `tests/browser/dashboard.js`
//! (playwright-core; `scripts/test` installs Chromium and the package if missing).

use std::process::Command;

use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

#[tokio::test]
async fn an_operator_sets_a_provider_key_in_the_dashboard_and_it_is_never_shown_again() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/browser/node_modules/playwright-core"
        ))
        .exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run it through scripts/test, which installs them"
    );
    let app = spawn_app().await;
    // Streamed answers come a word every 150 ms, slow enough to watch.
    app.stub
        .state
        .set_streaming(0, std::time::Duration::from_millis(150));
    let (_, key) = app.create_project("Browser Co").await;
    let provider_key = "sk-or-browser-SECRET-0123456789abcdef";
    let shots = format!("{root}/target/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let mut command = Command::new("node");
    command
        .arg("tests/browser/dashboard.js")
        .current_dir(root)
        .env("BASE", &app.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PROJECT_NAME", "Browser Co")
        .env("PROJECT_KEY", &key)
        .env("PROVIDER_KEY", provider_key)
        .env("SHOTS", &shots);
    // Off the test's runtime thread: the stub provider answers on it meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no report from the browser: {stdout}"));

    assert!(
        seen["before"]
            .as_str()
            .unwrap_or_default()
            .contains("no key"),
        "{seen}"
    );
    assert!(
        seen["after"]
            .as_str()
            .unwrap_or_default()
            .contains("key set"),
        "{seen}"
    );
    assert_eq!(seen["provider"], "OpenRouter", "{seen}");
    assert_eq!(seen["model"], "anthropic/claude-sonnet-4");
    assert_eq!(
        seen["key_field_after_save"], "",
        "the key field is write-only"
    );
    assert_eq!(seen["session_status"], "succeeded");
    assert_eq!(seen["session_output"], "Echo: Hello from the browser test");
    assert_eq!(seen["session_page_has_output"], true);
    // The live answer: part of it while running, then all of it.
    let output = seen["streamed_output"].as_str().unwrap_or_default();
    let partial = seen["live_partial"].as_str().unwrap_or_default();
    assert!(
        output.starts_with(partial) && partial.len() < output.len(),
        "{seen}"
    );
    assert_eq!(seen["live_status_while_partial"], "running", "{seen}");
    assert_eq!(seen["live_final"], output, "{seen}");
    // Limits saved through the form are the project's (the same action as the API).
    assert_eq!(seen["limits_shown"]["max_concurrent_runs"], "3", "{seen}");
    assert_eq!(seen["limits_stored"]["max_concurrent_runs"], 3, "{seen}");
    assert_eq!(seen["limits_stored"]["tokens_per_day"], 123_456, "{seen}");
    // The chart: a bar per day for 30 days, today's (the last) holding the
    // tokens of the two runs above, the others empty.
    let bars = seen["chart_bars"].as_array().expect("bars");
    assert_eq!(bars.len(), 30, "{seen}");
    let today = bars.last().expect("today");
    assert!(
        today["height"].as_f64().unwrap_or_default() > 0.0,
        "{today}"
    );
    let (_, usage) = app
        .call(reqwest::Method::GET, "/v1/project/usage", Some(&key), None)
        .await;
    let tokens = usage["data"][0]["total_tokens"].as_i64().expect("tokens");
    let dollars = usage["data"][0]["cost_usd"].as_f64().expect("dollars");
    assert!(
        today["title"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!(": {tokens} tokens, ${dollars:.4}")),
        "{today} vs {usage}"
    );
    assert!(bars[..29].iter().all(|bar| bar["height"] == 0), "{seen}");
    let png = std::fs::read(format!("{shots}/8-usage-chart.png")).expect("the chart's screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 100,
        "a real image of the chart"
    );
    assert!(
        seen["responses_seen"].as_u64().unwrap_or_default() >= 6,
        "{seen}"
    );
    assert_eq!(
        seen["key_seen"], false,
        "the key came back in a page or response"
    );
    assert_eq!(seen["key_prefix_seen"], false);

    // The key typed into the form is the one the provider received.
    let call = app.stub.state.requests().pop().expect("a provider call");
    assert_eq!(call.path, "/api/v1/chat/completions");
    assert_eq!(
        call.authorization.as_deref(),
        Some(format!("Bearer {provider_key}").as_str())
    );
    for page in [
        "1-sign-in",
        "2-projects",
        "3-llm-edit",
        "4-llm-saved",
        "5-project-with-session",
        "6-session",
        "7-live-answer",
        "9-project-limits-and-usage",
    ] {
        assert!(
            std::path::Path::new(&format!("{shots}/{page}.png")).exists(),
            "{page}"
        );
    }
    // The dashboard itself stays unreachable without signing in.
    let response = app
        .http
        .get(format!("{}/dashboard/projects/x", app.base))
        .send()
        .await
        .expect("request");
    assert!(
        response.url().path().ends_with("/dashboard/login"),
        "{}",
        response.url()
    );
}
