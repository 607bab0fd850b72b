//! Secrets in transit: every hop (clients to the API, processes to Postgres and
//! to RabbitMQ) can run over TLS, misconfiguration is one clear line, and a
//! capture of the wire shows what TLS hides.

pub mod support;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use base64::Engine as _;

use self::support::{ConnectProxy, Recorder, TestCa, TlsBroker, TlsFront};
use crate::helpers::{
    DEFAULT_KEY, MASTER_KEYS, Options, PATIENCE, TestApp, cleanup, command_with, database_url,
    http_client, spawn_app_with, start_process, unique_name,
};

/// Debian's cluster serves TLS with this certificate (for `localhost`).
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// (encrypted, all) connections of stewrd's processes to the test's database,
/// as Postgres itself reports them in `pg_stat_ssl`.
async fn encrypted_connections(app: &TestApp) -> (i64, i64) {
    let row = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl AND s.version LIKE 'TLSv1.%'), count(*)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

/// Runs one message through `app` and returns the final session.
async fn run_one(app: &TestApp, message: &str) -> Value {
    let (_, key) = app.create_project("tls").await;
    let accepted = app.submit(&key, json!({"message": message})).await;
    let session_id = accepted["session_id"].as_str().expect("session id");
    let session = app.wait_final(&key, session_id).await;
    assert_eq!(session["status"], "succeeded", "{session}");
    session
}

#[tokio::test]
async fn with_sslmode_require_every_postgres_connection_is_encrypted() {
    let app = spawn_app_with(Options {
        database_url: Some(Box::new(|name| {
            format!("{}?sslmode=require", database_url(name))
        })),
        ..Options::default()
    })
    .await;
    run_one(&app, "hello over an encrypted database link").await;
    let (encrypted, all) = encrypted_connections(&app).await;
    // API: pool + LISTEN; worker: pool + LISTEN.
    assert!(all >= 4, "only {all} stewrd connections seen");
    assert_eq!(encrypted, all, "{all} connections, {encrypted} encrypted");
}

#[tokio::test]
async fn with_sslmode_disable_connections_stay_plain() {
    let app = spawn_app_with(Options {
        database_url: Some(Box::new(|name| {
            format!("{}?sslmode=disable", database_url(name))
        })),
        ..Options::default()
    })
    .await;
    run_one(&app, "hello over a plain database link").await;
    let (encrypted, all) = encrypted_connections(&app).await;
    assert!(all >= 4, "only {all} stewrd connections seen");
    assert_eq!(encrypted, 0, "sslmode=disable must not encrypt");
}

#[tokio::test]
async fn verify_full_checks_the_certificate_against_the_ca_and_host_name() {
    assert!(
        std::path::Path::new(SNAKEOIL).exists(),
        "{SNAKEOIL} is missing: Postgres has no TLS certificate"
    );
    let app = spawn_app_with(Options {
        database_url: Some(Box::new(|name| {
            format!(
                "postgres://postgres@localhost:5432/{name}?sslmode=verify-full&sslrootcert={SNAKEOIL}"
            )
        })),
        ..Options::default()
    })
    .await;
    run_one(&app, "hello over a verified database link").await;
    let (encrypted, all) = encrypted_connections(&app).await;
    assert!(all >= 4 && encrypted == all, "{encrypted} of {all}");
}

/// Starts `stewrd api` with `env` and returns its stderr once it has exited,
/// failing if it is still running after `PATIENCE` or exits cleanly.
async fn startup_error(env: &HashMap<String, String>) -> String {
    let (mut process, _) = start_process(env, &["api"], "api");
    let status = process.wait_exit().await;
    let logs = process.log_text();
    let status = status.unwrap_or_else(|| panic!("stewrd hung instead of failing:\n{logs}"));
    assert!(
        !status.success(),
        "stewrd started despite a bad setting:\n{logs}"
    );
    logs
}

#[tokio::test]
async fn misconfigured_tls_fails_at_once_with_one_line_naming_the_setting() {
    let name = unique_name();
    let other_ca = TestCa::new(&["localhost"]);
    let mut base: HashMap<String, String> = [
        ("DATABASE_URL", database_url(&name)),
        (
            "AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
        ),
        ("STEWRD_QUEUE_PREFIX", name.clone()),
        ("STEWRD_LISTEN", "127.0.0.1:0".to_owned()),
        ("STEWRD_MASTER_KEYS", MASTER_KEYS.to_owned()),
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let migrated = command_with(&base, &["migrate"]).output().expect("migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    base.insert("RUST_LOG".into(), "warn".into());

    let pg = |rest: &str| format!("postgres://postgres@{rest}");
    // (settings changed, the setting the line must name, what it must say)
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![(
                "DATABASE_URL",
                pg(&format!(
                    "127.0.0.1:5432/{name}?sslmode=verify-full&sslrootcert={SNAKEOIL}"
                )),
            )],
            "DATABASE_URL",
            "not valid for name",
        ),
        (
            vec![
                (
                    "DATABASE_URL",
                    pg(&format!("localhost:5432/{name}?sslmode=verify-ca")),
                ),
                ("STEWRD_DATABASE_CA_FILE", other_ca.ca_file.clone()),
            ],
            "STEWRD_DATABASE_CA_FILE",
            "UnknownIssuer",
        ),
        (
            // Postgres never speaks TLS on its Unix socket.
            vec![(
                "DATABASE_URL",
                format!("host=/var/run/postgresql user=postgres dbname={name} sslmode=require"),
            )],
            "DATABASE_URL",
            "server does not support TLS",
        ),
        (
            vec![("STEWRD_DATABASE_CA_FILE", "/nonexistent/ca.pem".into())],
            "STEWRD_DATABASE_CA_FILE",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            vec![(
                "DATABASE_URL",
                format!("{}?sslmode=verify-everything", database_url(&name)),
            )],
            "DATABASE_URL",
            "sslmode must be",
        ),
        (
            // A TLS client against the plain AMQP listener.
            vec![("AMQP_URL", "amqps://guest:guest@127.0.0.1:5672/%2f".into())],
            "AMQP_URL",
            "corrupt message",
        ),
        (
            vec![("STEWRD_AMQP_CA_FILE", other_ca.key_file.clone())],
            "STEWRD_AMQP_CA_FILE",
            "holds no PEM certificate",
        ),
        (
            vec![("STEWRD_TLS_CERT", other_ca.cert_file.clone())],
            "STEWRD_TLS_KEY",
            "must be set with STEWRD_TLS_CERT",
        ),
        (
            vec![
                ("STEWRD_TLS_CERT", other_ca.cert_file.clone()),
                ("STEWRD_TLS_KEY", other_ca.cert_file.clone()),
            ],
            "STEWRD_TLS_KEY",
            "no PEM private key",
        ),
        (
            vec![
                ("STEWRD_TLS_CERT", other_ca.ca_file.clone()),
                ("STEWRD_TLS_KEY", other_ca.key_file.clone()),
            ],
            "STEWRD_TLS_KEY",
            "does not match",
        ),
    ];
    for (changes, setting, cause) in cases {
        let mut env = base.clone();
        for (key, value) in &changes {
            env.insert((*key).to_owned(), value.clone());
        }
        let logs = startup_error(&env).await;
        let errors: Vec<&str> = logs
            .lines()
            .filter(|line| line.starts_with("stewrd:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{changes:?}: expected one error line:\n{logs}"
        );
        assert!(
            errors[0].contains(setting) && errors[0].contains(cause),
            "{changes:?}: the line should name {setting} and say {cause:?}:\n{logs}"
        );
        assert!(!logs.contains("panicked"), "{logs}");
        assert!(
            !logs.contains("guest:guest"),
            "a URL password reached the log:\n{logs}"
        );
    }
    cleanup(&name);
}

#[tokio::test]
async fn the_api_serves_https_to_clients_that_trust_its_ca_and_no_others() {
    let ca = TestCa::new(&["localhost", "127.0.0.1"]);
    let app = spawn_app_with(
        Options {
            trust: Some(ca.ca_pem.clone()),
            ..Options::default()
        }
        .env("STEWRD_TLS_CERT", &ca.cert_file)
        .env("STEWRD_TLS_KEY", &ca.key_file),
    )
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    // Submit and poll to the end, over HTTPS (wait_final long-polls).
    let session = run_one(&app, "hello over https").await;
    assert_eq!(session["output"], "Echo: hello over https");
    // Browsers are told to keep to HTTPS.
    let (_, headers, _) = app.call_raw(Method::GET, "/healthz", None, None).await;
    let hsts = headers
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap_or_default());
    assert!(
        hsts.is_some_and(|v| v.starts_with("max-age=")),
        "{headers:?}"
    );

    // A client with the usual public CAs, and one trusting another CA: refused.
    let stranger = TestCa::new(&["localhost", "127.0.0.1"]);
    for client in [http_client(None), http_client(Some(&stranger.ca_pem))] {
        let error = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect_err("an untrusted certificate must be refused");
        let chain = format!("{:?}", anyhow_chain(&error));
        assert!(
            error.is_connect() && chain.contains("certificate"),
            "{chain}"
        );
    }
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = app.base.replacen("https://", "http://", 1);
    let answer = http_client(None)
        .get(format!("{plain}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        answer
            .as_ref()
            .map_or(true, |r| r.status() != StatusCode::OK),
        "{answer:?}"
    );
}

/// The causes of an error, outermost first.
fn anyhow_chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain
}

// The proxies must keep forwarding while the harness blocks on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_end_to_end_over_amqps_and_the_broker_link_shows_nothing() {
    let ca = TestCa::new(&["localhost"]);
    let broker = TlsBroker::start(&ca).await;
    let capture = Recorder::start(SocketAddr::from(([127, 0, 0, 1], broker.port))).await;
    let url = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        capture.address.port()
    );
    let app = spawn_app_with(
        Options::default()
            .env("AMQP_URL", &url)
            .env("STEWRD_AMQP_CA_FILE", &ca.ca_file),
    )
    .await;
    let session = run_one(&app, "hello over amqps").await;
    let run_id = session["runs"][0]["id"].as_str().expect("a run id");
    // The node has no plain listener: the job went over TLS. And on the wire, neither the
    // job message (the run id) nor the AMQP password is readable.
    assert!(capture.len() > 1000, "only {} bytes crossed", capture.len());
    assert!(!capture.saw(run_id), "the job message crossed in clear");
    assert!(
        !capture.saw("guest"),
        "the AMQP credentials crossed in clear"
    );

    // The same broker with the wrong CA, or under a name its certificate lacks: refused.
    let stranger = TestCa::new(&["localhost"]);
    let mut env = app.env.clone();
    env.insert("RUST_LOG".into(), "warn".into());
    env.insert("STEWRD_AMQP_CA_FILE".into(), stranger.ca_file.clone());
    let logs = startup_error(&env).await;
    assert!(
        logs.contains("UnknownIssuer") && logs.contains("AMQP_URL"),
        "{logs}"
    );
    env.insert("STEWRD_AMQP_CA_FILE".into(), ca.ca_file.clone());
    env.insert(
        "AMQP_URL".into(),
        format!("amqps://guest:guest@127.0.0.1:{}/%2f", broker.port),
    );
    let logs = startup_error(&env).await;
    assert!(
        logs.contains("not valid for name") && logs.contains("AMQP_URL"),
        "{logs}"
    );
}

/// What crossed the API and Postgres links while a key was set and one message
/// answered, each link through a recording proxy.
struct Capture {
    api: Recorder,
    postgres: Recorder,
}

const SECRET_KEY: &str = "sk-wire-test-7f3a9c2e51d84b06";
const PROMPT: &str = "the launch code is 0000-wire-test";

async fn capture_a_run(tls: bool) -> Capture {
    let postgres = Recorder::start(SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let port = postgres.address.port();
    let sslmode = if tls { "require" } else { "disable" };
    let ca = TestCa::new(&["localhost", "127.0.0.1"]);
    let mut options = Options {
        trust: tls.then(|| ca.ca_pem.clone()),
        database_url: Some(Box::new(move |name| {
            format!("postgres://postgres@127.0.0.1:{port}/{name}?sslmode={sslmode}")
        })),
        ..Options::default()
    };
    if tls {
        options = options
            .env("STEWRD_TLS_CERT", &ca.cert_file)
            .env("STEWRD_TLS_KEY", &ca.key_file);
    }
    let app = spawn_app_with(options).await;
    let (_, project_key) = app.create_project("wire").await;

    let api_address: SocketAddr = app
        .base
        .rsplit('/')
        .next()
        .and_then(|authority| authority.parse().ok())
        .expect("the API's address");
    let api = Recorder::start(api_address).await;
    let scheme = if tls { "https" } else { "http" };
    let through = format!("{scheme}://127.0.0.1:{}", api.address.port());
    let client = http_client(tls.then_some(ca.ca_pem.as_str()));
    let send = |method: Method, path: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{through}{path}"))
            .bearer_auth(&project_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("request through the proxy");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = send(
        Method::PUT,
        "/v1/project/llm",
        Some(json!({"provider": "openai", "model": "gpt-4o", "api_key": SECRET_KEY})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, accepted) =
        send(Method::POST, "/v1/agent", Some(json!({"message": PROMPT}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let session_id = accepted["session_id"].as_str().expect("session id");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, session) = send(
            Method::GET,
            &format!("/v1/sessions/{session_id}?wait=10"),
            None,
        )
        .await;
        if session["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{session}");
    }
    // The key did reach the provider, so it crossed the API link.
    let call = app.stub.state.requests().pop().expect("a provider call");
    assert_eq!(
        call.authorization.as_deref(),
        Some(&*format!("Bearer {SECRET_KEY}"))
    );
    assert!(
        api.len() > 0 && postgres.len() > 0,
        "the proxies carried nothing"
    );
    Capture { api, postgres }
}

// The proxies must keep forwarding while the harness blocks on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_of_a_tls_run_shows_no_key_and_no_prompt() {
    let wire = capture_a_run(true).await;
    assert!(
        !wire.api.saw(SECRET_KEY),
        "the provider key crossed the API link in clear"
    );
    assert!(
        !wire.api.saw(PROMPT),
        "the prompt crossed the API link in clear"
    );
    assert!(
        !wire.postgres.saw(PROMPT),
        "the prompt crossed the Postgres link in clear"
    );
    assert!(
        !wire.postgres.saw(SECRET_KEY),
        "the key crossed the Postgres link in clear"
    );
}

// The proxies must keep forwarding while the harness blocks on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_capture_of_a_plain_run_shows_them() {
    let wire = capture_a_run(false).await;
    assert!(
        wire.api.saw(SECRET_KEY),
        "the capture should see a plain-text key"
    );
    assert!(
        wire.postgres.saw(PROMPT),
        "the capture should see a plain-text prompt"
    );
    // Even in clear, Postgres only ever receives the key encrypted.
    assert!(
        !wire.postgres.saw(SECRET_KEY),
        "the key reached Postgres unencrypted"
    );
}

/// An app whose one worker calls the stub provider as `https://localhost`
/// (a TLS front with a certificate of `ca`), trusting `ca` alone when
/// `trusted`, through `proxy` when given.
async fn app_with_provider_over_tls(
    ca: &TestCa,
    trusted: bool,
    proxy: Option<&str>,
) -> (TestApp, TlsFront) {
    let mut app = spawn_app_with(
        Options {
            workers: 0,
            ..Options::default()
        }
        .env("STEWRD_RETRY_BASE_MS", "50"),
    )
    .await;
    let front = TlsFront::start(ca, app.stub.address).await;
    let base_url = format!("https://localhost:{}/v1", front.address.port());
    app.env
        .insert("STEWRD_OPENAI_BASE_URL".to_owned(), base_url);
    if trusted {
        app.env
            .insert("SSL_CERT_FILE".to_owned(), ca.ca_file.clone());
    }
    if let Some(proxy) = proxy {
        app.env
            .insert("STEWRD_PROVIDER_PROXY".to_owned(), proxy.to_owned());
    }
    app.start_worker();
    (app, front)
}

// The TLS front and the proxy must keep forwarding while the harness blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_go_over_verified_tls_through_the_proxy_with_its_credentials() {
    let ca = TestCa::new(&["localhost"]);
    let proxy = ConnectProxy::start().await;
    let proxy_url = format!("http://stewrd:p%40ss%20word@{}", proxy.address);
    let (app, front) = app_with_provider_over_tls(&ca, true, Some(&proxy_url)).await;
    let session = run_one(&app, PROMPT).await;
    assert_eq!(session["output"], format!("Echo: {PROMPT}"), "{session}");
    assert_eq!(app.stub.state.stats().calls, 1);

    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "one tunnel for one call: {heads:?}");
    let expected = format!("CONNECT localhost:{} HTTP/1.1\r\n", front.address.port());
    assert!(heads[0].starts_with(&expected), "{heads:?}");
    let credentials = base64::engine::general_purpose::STANDARD.encode("stewrd:p@ss word");
    let authorization = format!("proxy-authorization: basic {credentials}\r\n");
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains(&authorization.to_ascii_lowercase()),
        "no Basic credentials from the proxy URL: {heads:?}"
    );
    assert!(
        !proxy.saw(DEFAULT_KEY),
        "the provider key crossed the proxy in clear"
    );
    assert!(!proxy.saw(PROMPT), "the prompt crossed the proxy in clear");
    assert!(
        !proxy.saw("chat/completions"),
        "the request crossed the proxy in clear"
    );
}

// The TLS front must keep forwarding while the harness blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_certificate_is_not_trusted_never_gets_a_request() {
    let ca = TestCa::new(&["localhost"]);
    let (app, _front) = app_with_provider_over_tls(&ca, false, None).await;
    let (_, key) = app.create_project("untrusted").await;
    let accepted = app.submit(&key, json!({"message": PROMPT})).await;
    let session = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(
        session["error"]["code"], "provider_unavailable",
        "{session}"
    );
    let message = session["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{session}");
    assert!(!message.contains(DEFAULT_KEY), "{session}");
    assert_eq!(app.stub.state.stats().calls, 0, "the stub was called");
}
