//! What an attacker's review found, each fixed with a test: crashing code,
//! hostile input, slow clients, guessing, races.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Options, PATIENCE, TestApp, command_with, spawn_app, spawn_app_with, wait_for,
};

/// Every eight-character piece of `secret`, lower-cased: none may appear anywhere.
fn pieces(secret: &str) -> Vec<String> {
    let lower = secret.to_lowercase();
    (0..=lower.len() - 8)
        .map(|i| lower[i..i + 8].to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_whose_task_panics_is_not_stranded_and_the_panic_prints_no_key() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_FAULT_PANIC_ON_INPUT", "explode")
            .env("STEWRD_MAX_ATTEMPTS", "2")
            .env("STEWRD_RETRY_BASE_MS", "50")
            // Far beyond the test's patience: only the worker itself can free the run.
            .env("STEWRD_LEASE_SECS", "120"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let provider_key = "sk-panic-QwErTyUiOpAsDfGhJkLzXc";
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/project/llm",
            Some(&key),
            Some(json!({"provider": "openai", "model": "gpt-4o", "api_key": provider_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let doomed = app.submit(&key, json!({"message": "explode"})).await;
    let fine = app.submit(&key, json!({"message": "still fine"})).await;
    let doomed_id = doomed["session_id"].as_str().expect("id");
    let session = app.wait_final(&key, doomed_id).await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["error"]["code"], "delivery_limit_exceeded");
    let other = app
        .wait_final(&key, fine["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(other["status"], "succeeded", "other runs go on: {other}");

    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT lease_owner IS NULL AS released, attempts FROM runs WHERE id::text = $1",
            &[&doomed["run_id"].as_str().expect("run id")],
        )
        .await
        .expect("the run");
    assert!(row.get::<_, bool>("released"), "the lease is released");
    // The session takes a new message: it is not left busy.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": "again", "session_id": doomed_id})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let logs = app.all_logs();
    let panics = logs.matches("panic (its message is withheld").count();
    assert_eq!(panics, 2, "one logged panic per attempt:\n{logs}");
    let lower = logs.to_lowercase();
    for piece in pieces(provider_key) {
        assert!(!lower.contains(&piece), "{piece} of the key in the logs");
    }
}

/// The HTTP series `/metrics` shows: one line per label set and bucket.
async fn http_series(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let (status, _, body) = app.call_raw(Method::GET, "/metrics", token, None).await;
    assert_eq!(status, StatusCode::OK);
    body.lines()
        .filter(|line| line.starts_with("stewrd_http_"))
        .filter_map(|line| Some(line.rsplit_once(' ')?.0.to_owned()))
        .collect()
}

async fn send(app: &TestApp, method: &str, path: &str) {
    let method = Method::from_bytes(method.as_bytes()).expect("a method token");
    let response = app
        .http
        .request(method, format!("{}{path}", app.base))
        .send()
        .await
        .expect("an answer");
    assert!(response.status().is_client_error(), "{path}");
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = spawn_app().await;
    // One request of each kind the loop sends, so their series exist already.
    send(&app, "BREW", "/healthz").await;
    send(&app, "GET", "/no-such-page").await;
    send(&app, "BREW", "/no-such-page").await;
    http_series(&app, None).await; // and the series of `/metrics` itself
    let before = http_series(&app, None).await;
    for i in 0..1_000u32 {
        let method = format!("M{i}{}", "X".repeat((i % 7) as usize * 300));
        let path = format!("/random/{i}/{}", uuid::Uuid::new_v4());
        send(&app, &method, "/healthz").await;
        send(&app, &method, &path).await;
        send(&app, "GET", &path).await;
    }
    let after = http_series(&app, None).await;
    let added: Vec<_> = after.iter().filter(|s| !before.contains(s)).collect();
    assert!(
        added.is_empty(),
        "3,000 invented requests added series: {added:#?}"
    );
}

#[tokio::test]
async fn with_a_metrics_token_metrics_answer_only_its_bearer_on_api_and_worker() {
    let token = "metrics-token-0123456789abcdef-XYZ";
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_METRICS_TOKEN", token)
            .worker_metrics(),
    )
    .await;
    for presented in [None, Some("wrong-token")] {
        let (status, _, body) = app.call_raw(Method::GET, "/metrics", presented, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(error["error"]["code"], "invalid_metrics_token");
        assert!(!body.contains("stewrd_"), "{body}");
    }
    assert!(!http_series(&app, Some(token)).await.is_empty());

    let worker_url = app.worker_metrics().await;
    let answer = |bearer: Option<&'static str>| {
        let mut request = app.http.get(&worker_url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let response = request.send().await.ok()?;
            Some((response.status(), response.text().await.unwrap_or_default()))
        }
    };
    let (status, _) = wait_for(PATIENCE, || answer(None))
        .await
        .expect("worker metrics up");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A run gives the worker something to report.
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "hi"})).await;
    app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    let (status, body) = answer(Some(token)).await.expect("an answer");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("stewrd_runs_finished_total"), "{body}");
}

/// `POST /v1/agent` with a raw body and an `Idempotency-Key`.
async fn submit_raw(
    app: &TestApp,
    key: &str,
    idempotency_key: &str,
    body: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/agent", app.base))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .body(body.to_owned())
        .send()
        .await
        .expect("an answer")
}

#[tokio::test]
async fn trailing_bytes_are_refused_and_idempotency_compares_requests_as_parsed() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    for body in [r#"{"message":"a"} x"#, r#"{"message":"b"} y"#] {
        let response = submit_raw(&app, &key, "order-1", body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(error["error"]["code"], "invalid_json", "{error}");
    }
    let db = app.db().await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM runs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0, "nothing was stored");

    let first = submit_raw(&app, &key, "order-2", r#"{"message":"a","max_tokens":5}"#).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: serde_json::Value = first.json().await.expect("JSON");
    // The same request written differently is a replay of the first answer.
    let again = submit_raw(
        &app,
        &key,
        "order-2",
        r#" { "max_tokens": 5.0, "message": "a" } "#,
    )
    .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again: serde_json::Value = again.json().await.expect("JSON");
    assert_eq!(again["session_id"], first["session_id"]);
    // Another request under the same key is refused.
    let other = submit_raw(&app, &key, "order-2", r#"{"message":"b","max_tokens":5}"#).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn answers_with_secrets_are_never_cached_and_the_dashboard_runs_only_its_own_script() {
    let app = spawn_app().await;
    let no_store = |headers: &reqwest::header::HeaderMap| {
        headers.get("cache-control").map(|v| v.as_bytes().to_vec()) == Some(b"no-store".to_vec())
    };
    let (status, headers, body) = app
        .call_raw(
            Method::POST,
            "/v1/admin/projects",
            Some(ADMIN_TOKEN),
            Some(json!({"name": "acme"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        body.contains("sk-stw_") && no_store(&headers),
        "{headers:?}"
    );
    let created: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let (project, key) = (
        created["project"]["id"].as_str().expect("id"),
        created["api_key"].as_str().expect("key"),
    );
    let (_, headers, body) = app
        .call_raw(
            Method::POST,
            &format!("/v1/admin/projects/{project}/api-keys"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert!(
        body.contains("sk-stw_") && no_store(&headers),
        "{headers:?}"
    );
    let (_, headers, body) = app
        .call_raw(Method::POST, "/v1/project/webhook/secret", Some(key), None)
        .await;
    assert!(body.contains("whsec_") && no_store(&headers), "{headers:?}");

    // The dashboard's policy names its one inline script by hash, and nothing else runs.
    let page = app
        .http
        .get(format!("{}/dashboard/login", app.base))
        .send()
        .await
        .expect("login page");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let html = page.text().await.unwrap_or_default();
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("an inline script");
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src"))
        .unwrap_or_default();
    assert_eq!(script_src, format!("script-src 'sha256-{hash}'"), "{csp}");
}

#[tokio::test]
async fn a_short_admin_token_stops_the_api_and_guessing_slows_only_wrong_tokens() {
    // Outside `stewrd dev`, a short token is refused at start-up, in one line.
    let mut env = std::collections::HashMap::new();
    env.insert("STEWRD_ADMIN_TOKEN".to_owned(), "short-token".to_owned());
    let output = command_with(&env, &["api"]).output().expect("ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("STEWRD_ADMIN_TOKEN") && !stderr.contains("short-token"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let app = spawn_app().await;
    let admin = |token: String| {
        let app = &app;
        async move {
            app.call_raw(Method::GET, "/v1/admin/projects", Some(&token), None)
                .await
        }
    };
    // A project's own key sent to an admin route is a mistake, not a guess:
    // twenty of them count for nothing.
    let (_, key) = app.create_project("acme").await;
    for _ in 0..20 {
        assert_eq!(admin(key.clone()).await.0, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..10 {
        assert_eq!(
            admin("a-guess-of-the-token".into()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Past ten guesses, wrong tokens wait…
    let (status, headers, body) = admin("another-guess".into()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(body.contains("too_many_attempts"), "{body}");
    for _ in 0..40 {
        assert_eq!(
            admin("yet-another-guess".into()).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // …but after fifty, the right token is answered at once, on the API and
    // on the dashboard's sign-in form.
    assert_eq!(admin(ADMIN_TOKEN.into()).await.0, StatusCode::OK);
    for _ in 0..12 {
        let _ = admin("a-guess-of-the-token".into()).await;
    }
    let form = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/dashboard/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    // The right token cleared the count: a wrong one is merely wrong again.
    assert_eq!(
        admin("one-more-guess".into()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The 429 is in the document, on every admin call and on the sign-in.
    let (_, document) = app.call(Method::GET, "/openapi.json", None, None).await;
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/v1/admin")) {
        for (method, operation) in item.as_object().expect("item") {
            assert!(
                operation["responses"].get("429").is_some(),
                "{method} {path} documents no 429"
            );
        }
    }
    assert!(document["paths"]["/dashboard/login"]["post"]["responses"]["429"].is_object());
}

/// Opens a raw connection to the API and sends `request` as it is.
async fn raw(app: &TestApp, request: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    socket.write_all(request.as_bytes()).await.expect("write");
    socket
}

/// Everything the API sends on `socket` until it hangs up.
async fn read_all(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the API never hung up");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads from `socket` until `needle` arrives.
async fn read_until(socket: &mut tokio::net::TcpStream, needle: &str) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let found = tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "closed before {needle:?}");
            seen.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(found.is_ok(), "{needle:?} never came");
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_open_connections_are_capped() {
    let app = spawn_app_with(Options {
        workers: 0,
        ..Options::default()
            .env("STEWRD_HEADER_READ_TIMEOUT_SECS", "1")
            .env("STEWRD_BODY_READ_TIMEOUT_SECS", "1")
            .env("STEWRD_MAX_CONNECTIONS", "4")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    // Half the headers, then silence: the API hangs up without answering.
    let mut slow = raw(&app, "GET /healthz HTTP/1.1\r\nHost: stewrd\r\nX-Slow: ").await;
    let answer = read_all(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // Headers, then half the body: 408 in the contract's shape.
    let mut trickle = raw(
        &app,
        &format!(
            "POST /v1/agent HTTP/1.1\r\nHost: stewrd\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"message\":"
        ),
    )
    .await;
    let answer = read_all(&mut trickle).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // Four event streams fill the four connections (no worker: the run stays queued).
    let accepted = app.submit(&key, json!({"message": "wait"})).await;
    let session = accepted["session_id"].as_str().expect("id");
    let stream = format!(
        "GET /v1/sessions/{session}/events HTTP/1.1\r\nHost: stewrd\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut socket = raw(&app, &stream).await;
        read_until(&mut socket, "event: session.queued").await;
        streams.push(socket);
    }
    // A fifth connection waits for a free one...
    let mut fifth = raw(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: stewrd\r\nConnection: close\r\n\r\n",
    )
    .await;
    let early = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        fifth.read(&mut byte).await
    })
    .await;
    assert!(early.is_err(), "a fifth connection was served: {early:?}");
    // ...and is served as soon as one closes.
    drop(streams.pop());
    let answer = read_all(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn sigterm_ends_open_streams_and_long_polls_within_the_grace_period() {
    let mut app = spawn_app_with(Options {
        workers: 0,
        ..Options::default().env("STEWRD_SHUTDOWN_GRACE_SECS", "2")
    })
    .await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "stays queued"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let mut stream = raw(
        &app,
        &format!(
            "GET /v1/sessions/{session}/events HTTP/1.1\r\nHost: stewrd\r\nAuthorization: Bearer {key}\r\n\r\n"
        ),
    )
    .await;
    read_until(&mut stream, "event: session.queued").await;
    let mut poll = raw(
        &app,
        &format!(
            "GET /v1/sessions/{session}?wait=60 HTTP/1.1\r\nHost: stewrd\r\nAuthorization: Bearer {key}\r\n\r\n"
        ),
    )
    .await;
    // Both are waiting (stream and long-poll) before the stop.
    let waiting = wait_for(PATIENCE, || async {
        let (_, _, metrics) = app.call_raw(Method::GET, "/metrics", None, None).await;
        metrics
            .lines()
            .any(|line| line == "stewrd_api_waiting_clients 2")
            .then_some(())
    })
    .await;
    assert!(waiting.is_some(), "the long-poll never started waiting");
    app.api.terminate();
    let exited = app.api.wait_exit().await;
    assert!(
        exited.is_some_and(|status| status.success()),
        "the API did not stop: {exited:?}"
    );
    // The long-poll was answered with the state at the stop; the stream ended.
    let answer = read_all(&mut poll).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"queued\""),
        "{answer}"
    );
    read_all(&mut stream).await;
}

#[tokio::test]
async fn submits_whose_client_hangs_up_at_once_all_start_within_seconds() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    // Many at once, so that most wait for a database connection when their
    // client is already gone.
    let submits = (0..200).map(|i| {
        let body = format!("{{\"message\": \"gone {i}\"}}");
        let request = format!(
            "POST /v1/agent HTTP/1.1\r\nHost: stewrd\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let app = &app;
        async move {
            let mut socket = raw(app, &request).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut socket).await;
        }
    });
    futures_util::future::join_all(submits).await;
    let db = app.db().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_one(sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    // Each submit sent whole is stored, whether or not its client waited for
    // the answer, and runs at once: none waits for a safety net of minutes.
    let settled = wait_for(std::time::Duration::from_secs(20), || async {
        let done = count("SELECT count(*) FROM runs WHERE status = 'succeeded'").await;
        (done == 200).then_some(())
    })
    .await;
    let stored = count("SELECT count(*) FROM runs").await;
    let done = count("SELECT count(*) FROM runs WHERE status = 'succeeded'").await;
    assert!(
        settled.is_some(),
        "{stored} of 200 stored, {done} ran within seconds"
    );
}

#[tokio::test]
async fn signing_out_of_the_dashboard_ends_the_session_for_every_copy_of_its_cookie() {
    let app = spawn_app().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = browser
        .post(format!("{}/dashboard/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let dashboard = |cookie: String| {
        let browser = browser.clone();
        let url = format!("{}/dashboard", app.base);
        async move {
            let answer = browser
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("an answer");
            (answer.status(), answer.text().await.unwrap_or_default())
        }
    };
    let (status, page) = dashboard(cookie.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-out form's CSRF token")
        .to_owned();
    let copy = cookie.clone();
    let signed_out = browser
        .post(format!("{}/dashboard/logout", app.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    // The browser dropped its cookie; a copy taken before is refused too.
    let (status, _) = dashboard(copy).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a signed-out cookie still works"
    );
}

/// Thousands of streaming and long-poll clients reconnecting at once (after
/// an API restart, or a load balancer's failover) all wait in the API's
/// accept queue. With tokio's default backlog (1,024) the connections past
/// it had their SYNs dropped and waited for the kernel's retransmit (1 s,
/// 3 s, 7 s …). The API is frozen so that it accepts nothing: every
/// connection the kernel completes stays queued, and the queue's size is
/// what the test sees.
#[tokio::test]
async fn a_burst_of_two_thousand_connections_waits_in_the_api_s_accept_queue() {
    const BURST: usize = 2_000;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read net.core.somaxconn")
        .trim()
        .parse()
        .expect("net.core.somaxconn is a number");
    assert!(
        somaxconn > BURST,
        "net.core.somaxconn is {somaxconn}: this machine caps every listen queue below the burst"
    );
    let mut app = spawn_app_with(Options {
        workers: 0,
        ..Default::default()
    })
    .await;
    let address: std::net::SocketAddr = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the API's address");
    app.api.freeze();
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connects: Vec<_> = (0..BURST)
        .map(|_| {
            let connected = connected.clone();
            tokio::spawn(async move {
                // From a loopback address of the test's own: 2,000 source
                // ports held on 127.0.0.1 made the ports other tests had
                // picked as free for their processes (to bind a moment
                // later) taken (a worker's metrics listener: "Address
                // already in use").
                let stream = async {
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)))?;
                    socket.connect(address).await
                }
                .await;
                connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stream
            })
        })
        .collect();
    let all = wait_for(PATIENCE, || {
        let done = connected.load(std::sync::atomic::Ordering::Relaxed);
        async move { (done == BURST).then_some(()) }
    })
    .await;
    app.api.thaw();
    assert!(
        all.is_some(),
        "only {} of {BURST} connections completed while the API accepted nothing",
        connected.load(std::sync::atomic::Ordering::Relaxed)
    );
    // Queued, not refused: the API serves the last of them once it runs.
    let mut streams = Vec::with_capacity(BURST);
    for connect in connects {
        streams.push(
            connect
                .await
                .expect("connect task")
                .expect("a queued connection"),
        );
    }
    let mut last = streams.pop().expect("a connection");
    tokio::io::AsyncWriteExt::write_all(
        &mut last,
        b"GET /healthz HTTP/1.1\r\nHost: stewrd\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send a request over a queued connection");
    let mut answer = Vec::new();
    tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut last, &mut answer),
    )
    .await
    .expect("an answer within the test's patience")
    .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a queued connection's request was not served: {answer}"
    );
}

/// A statement Postgres refuses answers 500 `internal_error`, and the log says
/// which failure it was (SQLSTATE, constraint, table) without Postgres's
/// DETAIL, which quotes the failing row: the message's text reaches neither
/// the log nor the answer.
#[tokio::test]
async fn a_refused_statement_is_logged_without_the_values_postgres_quotes() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    app.db()
        .await
        .batch_execute(
            "ALTER TABLE runs ADD CONSTRAINT no_canary CHECK (position('canary' IN input) = 0)",
        )
        .await
        .expect("a constraint the submit will break");
    let private = "canary-7f3a9 a private note";
    let (status, _, body) = app
        .call_raw(
            Method::POST,
            "/v1/agent",
            Some(&key),
            Some(json!({"message": private}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(error["error"]["code"], "internal_error", "{body}");
    let logged = wait_for(PATIENCE, || async {
        let logs = app.all_logs();
        logs.contains("internal error").then_some(logs)
    })
    .await
    .expect("the failure is logged");
    assert!(
        logged.contains("SQLSTATE 23514, constraint no_canary, table runs"),
        "the log says which failure it was:\n{logged}"
    );
    for place in [&logged, &body, &app.responses_text()] {
        assert!(!place.contains("canary-7f3a9"), "the row's values: {place}");
    }
}
