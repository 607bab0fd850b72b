//! `web_fetch`, the built-in tool a run asks for with `{"type": "web_fetch"}`:
//! a GET against a fixture site on loopback, HTML given as Markdown, PDFs
//! and images kept as files, redirects followed with each hop checked, and
//! no private address reached when private addresses are disallowed.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use stewrd::stub::Reply;
use tokio::net::TcpListener;

use crate::{
    agent::{sent, steps},
    files::PNG,
    helpers::{Options, spawn_app_with},
};

const ARTICLE: &str = r#"<!doctype html><html><head><title>A post</title>
<style>body { color: red }</style></head><body><h1>Hello</h1>
<p>Some <b>bold</b> text and a <a href="/next">link</a>.</p><ul><li>one</li><li>two</li></ul>
</body></html>"#;

/// The fixture site: its address and the paths it was asked for.
struct Site {
    address: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Site {
    async fn start() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/{page}", get(page))
            .with_state(hits.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.address)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

async fn page(State(hits): State<Arc<Mutex<Vec<String>>>>, Path(page): Path<String>) -> Response {
    if let Ok(mut hits) = hits.lock() {
        hits.push(page.clone());
    }
    let typed = |kind: &'static str, body: Vec<u8>| {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, kind.parse().expect("a type"));
        (headers, body).into_response()
    };
    let moved = |to: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, to.parse().expect("a location"));
        (StatusCode::FOUND, headers).into_response()
    };
    match page.as_str() {
        "article" => typed("text/html; charset=utf-8", ARTICLE.as_bytes().to_vec()),
        "moved" => moved("/hop"),
        "hop" => moved("article"),
        "loop" => moved("/loop"),
        "doc.pdf" => typed("application/pdf", b"%PDF-1.4\n%fixture\n".to_vec()),
        "pixel.png" => typed("image/png", PNG.to_vec()),
        "big.txt" => typed("text/plain", "x".repeat(300_000).into_bytes()),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The output the model got for call `id` in its second request.
fn output(messages: &[Value], id: &str) -> String {
    messages
        .iter()
        .find(|m| m["tool_call_id"] == id)
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn web_fetch_gives_html_as_markdown_and_keeps_pdfs_and_images_as_files() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_FETCH_MAX_BYTES", "100000")
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "50ms"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    let fetch = |url: String| format!(r#"{{"url": "{url}"}}"#);
    let calls = [
        ("c1", fetch(site.url("moved"))),
        ("c2", fetch(site.url("doc.pdf"))),
        ("c3", fetch(site.url("pixel.png"))),
        ("c4", fetch(site.url("missing"))),
        ("c5", fetch(site.url("big.txt"))),
        ("c6", fetch(site.url("loop"))),
        ("c7", r#"{"url": "ftp://example.com/x"}"#.to_owned()),
    ];
    let named: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|(id, args)| (*id, "web_fetch", args.as_str()))
        .collect();
    app.stub
        .state
        .push([Reply::tool_calls(&named, 4), Reply::text("read", 4)]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "read these", "tools": [{"type": "web_fetch"}]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Offered as a function named web_fetch.
    let offered = &app.stub.state.requests()[0].body["tools"];
    assert_eq!(offered[0]["function"]["name"], "web_fetch", "{offered}");
    let second = sent(&app, 1);
    let article = output(&second, "c1");
    assert!(article.contains("# Hello"), "{article}");
    assert!(article.contains("**bold**"), "{article}");
    assert!(article.contains("[link](/next)"), "{article}");
    assert!(
        !article.contains("<p>") && !article.contains("color: red"),
        "{article}"
    );
    // Each hop was asked for once (the calls ran at once, in any order).
    let hits = site.hits();
    for hop in ["moved", "hop", "article"] {
        assert_eq!(
            hits.iter().filter(|h| *h == hop).count(),
            1,
            "{hop}: {hits:?}"
        );
    }
    let pdf: Value = serde_json::from_str(&output(&second, "c2")).expect("a file's description");
    assert_eq!(pdf["content_type"], "application/pdf", "{pdf}");
    let png: Value = serde_json::from_str(&output(&second, "c3")).expect("a file's description");
    assert_eq!(png["content_type"], "image/png");
    assert!(
        second
            .iter()
            .any(|m| m["role"] == "user" && m["content"][0]["type"] == "image_url"),
        "the image is shown"
    );
    assert!(output(&second, "c4").contains("answered HTTP 404"));
    let big = output(&second, "c5");
    assert!(
        big.contains("[the page was cut at 100000 bytes]"),
        "{}",
        &big[big.len() - 200..]
    );
    assert!(output(&second, "c6").contains("redirects more than"));
    assert!(output(&second, "c7").contains("must be an http:// or https:// URL"));
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["executor"], "builtin");
    assert_eq!(listed[1]["status"], "succeeded");
    assert_eq!(listed[4]["status"], "failed");
    let (_, files) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/files"),
            Some(&key),
            None,
        )
        .await;
    // The PDF, the image and the long text kept whole, named by their URLs.
    let mut names: Vec<&str> = files["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["big.txt", "doc.pdf", "pixel.png"], "{files}");
}

#[tokio::test]
async fn web_fetch_reaches_no_private_address_however_it_is_written() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_WEBHOOK_ALLOW_PRIVATE", "false")
            .env("STEWRD_TOOL_RETRY_SCHEDULE", "50ms"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    // A canary on loopback counts every connection it gets.
    let canary = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = canary.local_addr().expect("address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = canary.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
    ];
    let args: Vec<(String, String)> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| (format!("c{i}"), format!(r#"{{"url": "{url}"}}"#)))
        .collect();
    let named: Vec<(&str, &str, &str)> = args
        .iter()
        .map(|(id, a)| (id.as_str(), "web_fetch", a.as_str()))
        .collect();
    app.stub
        .state
        .push([Reply::tool_calls(&named, 4), Reply::text("none", 4)]);
    let accepted = app
        .submit(
            &key,
            json!({"message": "fetch", "tools": [{"type": "web_fetch"}]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let second = sent(&app, 1);
    for (i, url) in urls.iter().enumerate() {
        let given = output(&second, &format!("c{i}"));
        assert!(
            given.contains("refused") && given.contains("public internet"),
            "{url}: {given}"
        );
    }
    // The name is named, never what it resolved to.
    let localhost = output(&second, "c1");
    assert!(
        localhost.contains("localhost") && !localhost.contains("127.0.0.1"),
        "{localhost}"
    );
    assert_eq!(
        connections.load(Ordering::Relaxed),
        0,
        "the canary was reached"
    );
}

#[tokio::test]
async fn a_built_in_tool_is_asked_for_once_and_its_name_is_its_own() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    for (tools, param) in [
        (
            json!([{"type": "web_fetch"}, {"type": "web_fetch"}]),
            "tools[1]",
        ),
        (
            json!([{"type": "web_fetch"}, {"type": "function", "function": {"name": "web_fetch"}}]),
            "tools",
        ),
        (
            json!([{"type": "browser", "require_approval": "sometimes"}]),
            "tools[0].require_approval",
        ),
        (
            json!([{"type": "browser"}, {"type": "function", "function": {"name": "browser_click"}}]),
            "tools",
        ),
        (
            json!([{"type": "browser"}, {"type": "browser"}]),
            "tools[1]",
        ),
    ] {
        let (status, error) = app
            .call(
                reqwest::Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "x", "tools": tools})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
}
