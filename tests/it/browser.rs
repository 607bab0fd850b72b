//! The browser tool, against real Chromium on a real `stewrd browser-host`
//! and a fixture site on loopback: snapshots whose refs act on the right
//! element, screenshots as files, one browser per run kept across pauses and
//! restored from its saved state, crashes of the worker or of the host that
//! cost at most one step (a cut-off click never made twice), the network
//! rules on the address actually connected to, and no Chromium outliving its
//! run. The stub reads refs from snapshots with `{{ref:<name>}}`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use stewrd::stub::Reply;
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    agent::{sent, steps},
    helpers::{Options, Process, TestApp, spawn_app_with, start_process, unique_name, wait_for},
};

const TOKEN: &str = "browser-host-test-token";

/// A running `stewrd browser-host`, in a folder of its own.
pub(crate) struct Host {
    pub process: Process,
    pub url: String,
    pub dir: std::path::PathBuf,
    env: HashMap<String, String>,
}

impl Host {
    pub(crate) fn start(changes: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("stewrd-test-browsers-{}", unique_name()));
        let mut env: HashMap<String, String> = [
            ("STEWRD_BROWSER_HOST_LISTEN", "127.0.0.1:0".to_owned()),
            ("STEWRD_BROWSER_HOST_TOKEN", TOKEN.to_owned()),
            ("STEWRD_BROWSER_DIR", dir.display().to_string()),
            ("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (name, value) in changes {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        let (process, url) = Self::spawn(&env);
        Self {
            process,
            url,
            dir,
            env,
        }
    }

    fn spawn(env: &HashMap<String, String>) -> (Process, String) {
        let (process, first) = start_process(env, &["browser-host"], "browser-host");
        let url = first
            .and_then(|line| line.rsplit(' ').next().map(str::to_owned))
            .unwrap_or_else(|| panic!("the browser host did not start:\n{}", process.log_text()));
        (process, url)
    }

    /// `kill -9`, then a new host on the same address and folder.
    pub(crate) fn kill_and_restart(&mut self) {
        self.process.kill();
        let port = self.url.rsplit(':').next().unwrap_or_default().to_owned();
        self.env.insert(
            "STEWRD_BROWSER_HOST_LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        );
        let (process, url) = Self::spawn(&self.env);
        self.process = process;
        self.url = url;
    }

    /// What a worker needs to reach it.
    pub(crate) fn options(&self, options: Options) -> Options {
        options
            .env("STEWRD_BROWSER_HOST_URL", &self.url)
            .env("STEWRD_BROWSER_HOST_TOKEN", TOKEN)
    }

    /// The browsers open on the host.
    pub(crate) async fn sessions(&self) -> Vec<Value> {
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/v1/browsers", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the host answers")
            .json()
            .await
            .expect("a list");
        listed["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// The processes (Chromium's) whose command line names this host's folder.
    pub(crate) fn chromium_processes(&self) -> Vec<u32> {
        chromium_processes_under(&self.dir)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.process.kill();
        // As the next host would at its start: its browsers killed, and their
        // folders removed (Chromium's own in /tmp too).
        stewrd_browser::chromium::kill_leftovers(&self.dir);
    }
}

pub(crate) fn chromium_processes_under(dir: &std::path::Path) -> Vec<u32> {
    let marker = format!("--user-data-dir={}", dir.display());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // A zombie has no command line and holds nothing.
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            (String::from_utf8_lossy(&cmdline).contains(&marker) && state != "Z").then_some(pid)
        })
        .collect()
}

/// The fixture site: a shop whose form POSTs are counted (and can be held),
/// pages that set and show state, a long page, a slow page.
#[derive(Default)]
pub(crate) struct SiteState {
    pub posts: AtomicUsize,
    pub bought: Mutex<Vec<String>>,
    /// While set, a POST to /buy is counted and then held.
    pub hold_posts: std::sync::atomic::AtomicBool,
    pub release: Notify,
    pub slow_hits: AtomicUsize,
    /// Cookies `/state` gave out (a new one to each browser that had none).
    pub cookies_issued: AtomicUsize,
    /// Every request's path and `Connection` header.
    pub seen: Mutex<Vec<(String, String)>>,
}

pub(crate) struct Site {
    pub address: SocketAddr,
    pub state: Arc<SiteState>,
}

impl Site {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(SiteState::default());
        let app = Router::new()
            .route("/buy", axum::routing::post(buy))
            .route("/{page}", get(page))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, state }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.address)
    }
}

const SHOP: &str = r#"<!doctype html><html><head><title>Shop</title></head><body>
<h1>Welcome to the shop</h1>
<form method="post" action="/buy">
<label>Email <input name="email" type="text"></label>
<label>Size <select name="size"><option value="s">Small</option><option value="l">Large</option></select></label>
<button type="submit">Buy</button>
</form>
<a href="/other">Other page</a>
</body></html>"#;

/// Counts its visits in local storage (a browser without the stored count
/// starts again at 1).
const STATEFUL: &str = r#"<!doctype html><html><head><title>State</title></head><body>
<p id="out">reading</p>
<script>
const visits = Number(localStorage.getItem('visits') || 0) + 1;
localStorage.setItem('visits', String(visits));
document.getElementById('out').textContent = 'cookie=' + document.cookie + ' visits=' + visits;
</script></body></html>"#;

/// Shows the cookie and the stored count without counting.
const SHOWN: &str = r#"<!doctype html><html><head><title>Shown</title></head><body>
<p id="out">reading</p>
<script>
document.getElementById('out').textContent =
  'cookie=' + document.cookie + ' visits=' + localStorage.getItem('visits');
</script></body></html>"#;

const PROXIED: &str = r#"<!doctype html><html><head><title>Parts</title></head><body>
<img src="/part-img" alt="img">
<iframe src="/part-frame" title="frame"></iframe>
<p id="out">loading</p>
<script>
fetch('/part-fetch').then(r => r.text()).then(() => {
  const x = new XMLHttpRequest();
  x.open('GET', '/part-xhr');
  x.onload = () => { document.getElementById('out').textContent = 'all loaded'; };
  x.send();
});
</script></body></html>"#;

async fn page(
    State(state): State<Arc<SiteState>>,
    Path(page): Path<String>,
    headers: HeaderMap,
) -> Response {
    let connection = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Ok(mut seen) = state.seen.lock() {
        seen.push((page.clone(), connection));
    }
    match page.as_str() {
        "shop" => Html(SHOP).into_response(),
        "other" => Html("<!doctype html><title>Other</title><p>The other page</p>").into_response(),
        // One fault-test run's shop: a form whose POST names the run's job.
        job if job.starts_with("job-") => Html(format!(
            r#"<!doctype html><title>{job}</title><form method="post" action="/buy">
<input type="hidden" name="email" value="{job}"><button type="submit">Buy</button></form>"#
        ))
        .into_response(),
        "state" => {
            let mut answer = HeaderMap::new();
            let has_cookie = headers
                .get(header::COOKIE)
                .and_then(|c| c.to_str().ok())
                .is_some_and(|c| c.contains("sid="));
            if !has_cookie {
                let issued = state.cookies_issued.fetch_add(1, Ordering::SeqCst) + 1;
                answer.insert(
                    header::SET_COOKIE,
                    format!("sid={issued}; Max-Age=3600; Path=/")
                        .parse()
                        .expect("a cookie"),
                );
            }
            (answer, Html(STATEFUL)).into_response()
        }
        "slow" => {
            state.slow_hits.fetch_add(1, Ordering::SeqCst);
            if state.hold_posts.load(Ordering::SeqCst) {
                state.release.notified().await;
            }
            Html(SHOWN).into_response()
        }
        "long" => {
            let links: String = (0..6000)
                .map(|i| format!("<a href=\"/other?{i}\">Link number {i}</a>\n"))
                .collect();
            Html(format!("<!doctype html><title>Long</title>{links}")).into_response()
        }
        "parts" => Html(PROXIED).into_response(),
        // A session cookie the page cannot read and a token in local storage
        // it does not show: both only in the browser's state.
        "secret" => (
            [(
                header::SET_COOKIE,
                "session=ck-SeCrEt-QwErTyUiOp; HttpOnly; Max-Age=3600; Path=/",
            )],
            Html(
                "<!doctype html><title>Signed in</title><p>Welcome back</p>\
                 <script>localStorage.setItem('token', 'ls-SeCrEt-AsDfGhJkL');</script>",
            ),
        )
            .into_response(),
        // Takes 1.5 GB at once and holds its load event back (an image that
        // comes late): the host's watcher finds it before the page loads.
        "hog" => Html(
            r#"<!doctype html><title>Hog</title><img src="/late-img" alt="late"><script>
const kept = [];
for (let i = 0; i < 15; i++) kept.push(new Uint8Array(100 << 20).fill(i + 1));
window.kept = kept;
</script>"#,
        )
        .into_response(),
        // Its script never ends: the renderer answers nothing more.
        "spin" => Html("<!doctype html><title>Spin</title><script>while (true) {}</script>")
            .into_response(),
        "late-img" => {
            tokio::time::sleep(Duration::from_secs(20)).await;
            StatusCode::NOT_FOUND.into_response()
        }
        "part-frame" => Html("<p>frame</p>").into_response(),
        "part-img" => (
            [(header::CONTENT_TYPE, "image/png")],
            crate::files::PNG.to_vec(),
        )
            .into_response(),
        "part-fetch" | "part-xhr" => "ok".into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn buy(
    State(state): State<Arc<SiteState>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.posts.fetch_add(1, Ordering::SeqCst);
    let email = form.get("email").cloned().unwrap_or_default();
    let size = form.get("size").cloned().unwrap_or_default();
    if let Ok(mut bought) = state.bought.lock() {
        bought.push(format!("{email}/{size}"));
    }
    if state.hold_posts.load(Ordering::SeqCst) {
        state.release.notified().await;
    }
    Html(format!(
        "<!doctype html><title>Thanks</title><p>Thanks {email}, size {size}</p>"
    ))
    .into_response()
}

/// The output the model got for call `id`, in the request that followed it.
fn output_of(app: &TestApp, id: &str) -> String {
    app.stub
        .state
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .find(|m| m["tool_call_id"] == id)
        .and_then(|m| m["content"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn call(
    id: &'static str,
    name: &'static str,
    arguments: String,
) -> (&'static str, &'static str, String) {
    (id, name, arguments)
}

fn script(calls: &[(&'static str, &'static str, String)]) -> Reply {
    let named: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|(id, name, args)| (*id, *name, args.as_str()))
        .collect();
    Reply::tool_calls(&named, 4)
}

async fn submit_browser_run(app: &TestApp, key: &str, extra: &[Value]) -> (String, String) {
    let mut tools = vec![json!({"type": "browser"})];
    tools.extend(extra.iter().cloned());
    let accepted = app
        .submit(key, json!({"message": "use the browser", "tools": tools}))
        .await;
    (
        accepted["session_id"]
            .as_str()
            .expect("a session")
            .to_owned(),
        accepted["run_id"].as_str().expect("a run").to_owned(),
    )
}

/// A scripted `browser_navigate` to `url`.
fn navigate(id: &'static str, url: &str) -> (&'static str, &'static str, String) {
    call(id, "browser_navigate", json!({"url": url}).to_string())
}

/// A client tool that pauses the run (its call waits for the client).
fn ask_person() -> Value {
    json!({"type": "function", "function": {"name": "ask_person",
        "parameters": {"type": "object", "properties": {}}}})
}

/// Waits until the session's run pauses for its client tool.
async fn wait_paused(app: &TestApp, key: &str, session: &str) {
    let paused = wait_for(Duration::from_secs(30), || async {
        let (_, body) = app
            .call(
                reqwest::Method::GET,
                &format!("/v1/sessions/{session}"),
                Some(key),
                None,
            )
            .await;
        (body["status"] == "requires_action").then_some(())
    })
    .await;
    assert!(paused.is_some(), "the run never paused");
}

/// Waits until none of the host's Chromium processes is left.
async fn no_chromium_left(host: &Host) {
    let closed = wait_for(Duration::from_secs(20), || async {
        host.chromium_processes().is_empty().then_some(())
    })
    .await;
    assert!(closed.is_some(), "left: {:?}", host.chromium_processes());
}

#[tokio::test]
async fn snapshots_give_refs_that_act_on_the_right_element_and_screenshots_are_files() {
    let host = Host::start(&[]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("shop"))]),
        script(&[call(
            "c2",
            "browser_type",
            r#"{"ref": "{{ref:Email}}", "text": "ann@example.com"}"#.to_owned(),
        )]),
        script(&[call(
            "c3",
            "browser_select",
            r#"{"ref": "{{ref:Size}}", "values": ["Large"]}"#.to_owned(),
        )]),
        script(&[call(
            "c4",
            "browser_click",
            r#"{"ref": "{{ref:Buy}}"}"#.to_owned(),
        )]),
        script(&[
            call("c5", "browser_screenshot", "{}".to_owned()),
            call("c6", "browser_click", r#"{"ref": "e999999"}"#.to_owned()),
            call("c7", "browser_back", "{}".to_owned()),
        ]),
        script(&[
            navigate("c8", &site.url("long")),
            call("c9", "browser_press", r#"{"key": "NoSuchKey"}"#.to_owned()),
        ]),
        Reply::text("bought", 4),
    ]);
    let (session, run) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // Offered as the contract names them.
    let offered: Vec<String> = app.stub.state.requests()[0].body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect();
    for name in [
        "browser_navigate",
        "browser_snapshot",
        "browser_click",
        "browser_type",
        "browser_select",
        "browser_press",
        "browser_back",
        "browser_screenshot",
    ] {
        assert!(offered.iter().any(|o| o == name), "{name}: {offered:?}");
    }
    // The snapshot's format: URL and title first, one element a line.
    let shop = output_of(&app, "c1");
    assert!(
        shop.starts_with(&format!(
            "Page URL: {}\nPage title: Shop\n",
            site.url("shop")
        )),
        "{shop}"
    );
    assert!(shop.contains("- heading \"Welcome to the shop\""), "{shop}");
    assert!(
        shop.lines()
            .any(|l| l.trim_start().starts_with("- textbox \"Email\" [ref=e") && l.ends_with(']')),
        "{shop}"
    );
    assert!(
        shop.lines()
            .any(|l| l.trim_start().starts_with("- button \"Buy\" [ref=e")),
        "{shop}"
    );
    assert!(
        shop.lines()
            .any(|l| l.trim_start().starts_with("- link \"Other page\" [ref=e")),
        "{shop}"
    );
    // Each action answers with the new snapshot; the refs acted on the
    // elements they name.
    assert!(output_of(&app, "c2").contains("textbox \"Email\" value=\"ann@example.com\""));
    assert!(
        output_of(&app, "c3").contains("value=\"Large\""),
        "{}",
        output_of(&app, "c3")
    );
    let thanks = output_of(&app, "c4");
    assert!(
        thanks.contains("Thanks ann@example.com, size l"),
        "{thanks}"
    );
    assert_eq!(site.state.posts.load(Ordering::SeqCst), 1);
    assert_eq!(
        *site.state.bought.lock().expect("bought"),
        ["ann@example.com/l"]
    );
    // A screenshot is a PNG file, shown to the model as an image.
    let shot: Value = serde_json::from_str(&output_of(&app, "c5")).expect("a file's description");
    assert_eq!(shot["content_type"], "image/png", "{shot}");
    assert_eq!(shot["filename"], "screenshot.png");
    let after_shot = sent(&app, 5);
    assert!(
        after_shot
            .iter()
            .any(|m| m["role"] == "user" && m["content"][0]["type"] == "image_url"),
        "the screenshot is shown"
    );
    let bytes = app
        .http
        .get(format!(
            "{}/v1/files/{}/content",
            app.base,
            shot["file_id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("an answer")
        .bytes()
        .await
        .expect("the bytes");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    // The dashboard's session page shows the screenshot as an image.
    let (browser, cookie) = crate::helpers::operator_cookie(&app).await;
    let page = browser
        .get(format!("{}/dashboard/sessions/{session}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("the page");
    let image = format!(
        r#"<img class="screenshot" src="/dashboard/files/{}/content""#,
        shot["file_id"].as_str().unwrap_or_default()
    );
    assert!(page.contains(&image), "{page}");
    // A ref the last snapshot did not give is refused, and nothing is clicked.
    let stale = output_of(&app, "c6");
    assert!(
        stale.contains("not a ref of the page's last snapshot"),
        "{stale}"
    );
    // Back: the shop again (its form posted once, not again).
    assert!(
        output_of(&app, "c7").contains("Page title: Shop"),
        "{}",
        output_of(&app, "c7")
    );
    assert_eq!(site.state.posts.load(Ordering::SeqCst), 1);
    // A snapshot is cut to 64 KiB, at a line.
    let long = output_of(&app, "c8");
    assert!(long.len() <= 64 * 1024, "{}", long.len());
    assert!(
        long.ends_with("[the snapshot was cut at 64 KiB]"),
        "{}",
        &long[long.len() - 100..]
    );
    assert!(output_of(&app, "c9").contains("is not a key this tool can press"));
    let listed = steps(&app, &key, &session, &run).await;
    assert_eq!(listed[1]["executor"], "builtin", "{listed:?}");
    assert_eq!(listed[1]["name"], "browser_navigate", "{listed:?}");
    // The run is final: its browser is closed, no Chromium left.
    let closed = wait_for(Duration::from_secs(20), || async {
        (host.sessions().await.is_empty() && host.chromium_processes().is_empty()).then_some(())
    })
    .await;
    assert!(closed.is_some(), "left: {:?}", host.chromium_processes());
    let saved: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM browser_states", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(saved, 0, "a final run's browser state is forgotten");
}

#[tokio::test]
async fn a_worker_killed_mid_click_never_clicks_twice_and_reads_are_made_again() {
    let host = Host::start(&[]);
    let mut app = spawn_app_with(
        host.options(
            Options::default()
                .env("STEWRD_LEASE_SECS", "2")
                .env("STEWRD_RETRY_BASE_MS", "100"),
        ),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("shop"))]),
        script(&[call(
            "c2",
            "browser_type",
            r#"{"ref": "{{ref:Email}}", "text": "bob@example.com"}"#.to_owned(),
        )]),
        script(&[call(
            "c3",
            "browser_click",
            r#"{"ref": "{{ref:Buy}}"}"#.to_owned(),
        )]),
        script(&[call("c4", "browser_snapshot", "{}".to_owned())]),
        Reply::text("done", 4),
    ]);
    site.state.hold_posts.store(true, Ordering::SeqCst);
    let (session, run) = submit_browser_run(&app, &key, &[]).await;
    // The click reached the shop: the worker dies before its answer.
    let posted = wait_for(Duration::from_secs(30), || async {
        (site.state.posts.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert!(posted.is_some(), "the click never reached the shop");
    app.kill_and_replace_worker(0);
    site.state.hold_posts.store(false, Ordering::SeqCst);
    site.state.release.notify_waiters();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Counted as the fault suites count: one POST, the click's outcome unknown.
    assert_eq!(
        site.state.posts.load(Ordering::SeqCst),
        1,
        "the click was made twice"
    );
    let click = output_of(&app, "c3");
    assert!(
        click.contains("the outcome of this action is unknown"),
        "{click}"
    );
    // The next read is made (in whichever browser the run has now).
    assert!(
        output_of(&app, "c4").starts_with("Page URL: "),
        "{}",
        output_of(&app, "c4")
    );
    let listed = steps(&app, &key, &session, &run).await;
    let clicks = listed
        .iter()
        .filter(|s| s["name"] == "browser_click" && s["type"] == "tool_call")
        .count();
    assert_eq!(clicks, 1, "{listed:?}");
}

#[tokio::test]
async fn a_browser_host_killed_mid_action_gives_the_run_a_new_browser_with_its_state() {
    let mut host = Host::start(&[]);
    let app =
        spawn_app_with(host.options(Options::default().env("STEWRD_RETRY_BASE_MS", "300"))).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("state"))]),
        script(&[navigate("c2", &site.url("slow"))]),
        Reply::text("done", 4),
    ]);
    site.state.hold_posts.store(true, Ordering::SeqCst);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let reached = wait_for(Duration::from_secs(30), || async {
        (site.state.slow_hits.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert!(reached.is_some(), "the second navigation never started");
    let before = host.chromium_processes();
    assert!(!before.is_empty());
    host.kill_and_restart();
    site.state.hold_posts.store(false, Ordering::SeqCst);
    site.state.release.notify_waiters();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The first page set a cookie and local storage; the new browser had both.
    let first = output_of(&app, "c1");
    assert!(first.contains("cookie=sid=1 visits=1"), "{first}");
    let second = output_of(&app, "c2");
    // (It went back to the first page, which counted a second visit and gave
    // no new cookie: the restored one came with the request.)
    assert!(second.contains("cookie=sid=1 visits=2"), "{second}");
    assert_eq!(site.state.cookies_issued.load(Ordering::SeqCst), 1);
    assert!(
        second.starts_with(&format!("Page URL: {}", site.url("slow"))),
        "{second}"
    );
    // The navigation (a read) was made again: twice in all.
    assert_eq!(site.state.slow_hits.load(Ordering::SeqCst), 2);
    // Nothing of the killed host's browser lives on.
    let alive: Vec<u32> = before
        .iter()
        .copied()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .filter(|pid| host.chromium_processes().contains(pid))
        .collect();
    assert!(alive.is_empty(), "left from the killed host: {alive:?}");
}

#[tokio::test]
async fn an_idle_browser_is_closed_and_the_resumed_run_gets_its_state_back() {
    let host = Host::start(&[("STEWRD_BROWSER_IDLE_SECS", "1")]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("state"))]),
        script(&[call("c2", "ask_person", "{}".to_owned())]),
        script(&[call("c3", "browser_snapshot", "{}".to_owned())]),
        Reply::text("done", 4),
    ]);
    let person = ask_person();
    let (session, _) = submit_browser_run(&app, &key, &[person]).await;
    wait_paused(&app, &key, &session).await;
    // Idle past STEWRD_BROWSER_IDLE_SECS: closed, processes gone.
    let closed = wait_for(Duration::from_secs(20), || async {
        (host.sessions().await.is_empty() && host.chromium_processes().is_empty()).then_some(())
    })
    .await;
    assert!(closed.is_some(), "the idle browser was not closed");
    let (status, body) = crate::agent::submit_outputs(&app, &key, &session, &[("c2", "yes")]).await;
    assert!(status.is_success(), "{body}");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // A new browser, on the same page, with the same cookie and storage (the
    // page's script found the visit it had recorded).
    let snapshot = output_of(&app, "c3");
    assert!(
        snapshot.starts_with(&format!("Page URL: {}", site.url("state"))),
        "{snapshot}"
    );
    assert!(snapshot.contains("cookie=sid=1 visits=2"), "{snapshot}");
    assert_eq!(site.state.cookies_issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_request_of_a_page_goes_through_the_egress_proxy() {
    let host = Host::start(&[]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("parts"))]),
        script(&[call("c2", "browser_snapshot", "{}".to_owned())]),
        Reply::text("done", 4),
    ]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let seen = site.state.seen.lock().expect("seen").clone();
    for part in ["parts", "part-img", "part-frame", "part-fetch", "part-xhr"] {
        let requests: Vec<&(String, String)> = seen.iter().filter(|(p, _)| p == part).collect();
        assert!(!requests.is_empty(), "{part} was never asked for: {seen:?}");
        // The proxy forwards one request per connection (`Connection:
        // close`); Chromium's own connections keep alive.
        assert!(
            requests
                .iter()
                .all(|(_, connection)| connection.eq_ignore_ascii_case("close")),
            "{part} did not come through the proxy: {seen:?}"
        );
    }
}

#[tokio::test]
async fn pages_reach_no_private_address_however_it_is_written() {
    let host = Host::start(&[("STEWRD_WEBHOOK_ALLOW_PRIVATE", "false")]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    // A canary on loopback counts every connection made to it.
    let canary = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = canary.local_addr().expect("address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = canary.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://127.1:{port}/"),
        format!("https://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fe80::1]/".to_owned(),
    ];
    let ids: Vec<String> = (0..urls.len()).map(|i| format!("n{i}")).collect();
    let calls: Vec<(&str, &str, String)> = ids
        .iter()
        .zip(&urls)
        .map(|(id, url)| {
            (
                id.as_str(),
                "browser_navigate",
                json!({"url": url}).to_string(),
            )
        })
        .collect();
    let named: Vec<(&str, &str, &str)> =
        calls.iter().map(|(i, n, a)| (*i, *n, a.as_str())).collect();
    app.stub
        .state
        .push([Reply::tool_calls(&named, 4), Reply::text("done", 4)]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    for (id, url) in ids.iter().zip(&urls) {
        let output = output_of(&app, id);
        assert!(output.contains("refused"), "{url}: {output}");
        // The error names the URL, never an address a name resolved to.
        assert!(
            output.contains(&url.replace('"', "\\\"")),
            "{url}: {output}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a private address was reached"
    );
}

#[tokio::test]
async fn runs_wait_for_a_free_browser_and_no_chromium_outlives_its_run() {
    let host = Host::start(&[("STEWRD_BROWSER_MAX_SESSIONS", "1")]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    // Unscripted, the stub calls the first tool offered (browser_navigate)
    // with the message's URL, then echoes the page.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let accepted = app
            .submit(
                &key,
                json!({"message": format!("open {}", site.url("other")),
                       "tools": [{"type": "browser"}]}),
            )
            .await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    for session in &sessions {
        let done = app.wait_final(&key, session).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(
            done["output"]
                .as_str()
                .unwrap_or_default()
                .contains("The other page"),
            "{done}"
        );
    }
    no_chromium_left(&host).await;
    // They took turns: each had its own browser, and runs that found the
    // host's one taken waited (they were not failed).
    let logs = host.process.log_text();
    assert_eq!(logs.matches("opened a browser").count(), 4, "{logs}");
    assert!(
        app.all_logs()
            .contains("every browser of the host is in use; the step waits"),
        "no run waited for a browser"
    );
}

#[tokio::test]
async fn a_page_eating_memory_is_killed_and_the_model_told_and_the_run_goes_on() {
    let host = Host::start(&[("STEWRD_BROWSER_MEMORY_MB", "900")]);
    let app = spawn_app_with(host.options(Options::default())).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("hog"))]),
        script(&[navigate("c2", &site.url("other"))]),
        Reply::text("done", 4),
    ]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let hog = output_of(&app, "c1");
    assert!(hog.contains("used more than 900 MiB"), "{hog}");
    // A new browser for the next action.
    let other = output_of(&app, "c2");
    assert!(other.contains("The other page"), "{other}");
    no_chromium_left(&host).await;
}

#[tokio::test]
async fn an_action_past_its_deadline_closes_the_browser_and_the_run_goes_on() {
    let host = Host::start(&[("STEWRD_BROWSER_ACTION_SECS", "2")]);
    let app =
        spawn_app_with(host.options(Options::default().env("STEWRD_RETRY_BASE_MS", "50"))).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("spin"))]),
        script(&[navigate("c2", &site.url("other"))]),
        Reply::text("done", 4),
    ]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // A read: made again in a new browser, each time cut at the deadline.
    let spun = output_of(&app, "c1");
    assert!(spun.contains("did not finish in 2 s"), "{spun}");
    let other = output_of(&app, "c2");
    assert!(other.contains("The other page"), "{other}");
    no_chromium_left(&host).await;
}

/// A browser's state holds a site's session: it is sealed in the database
/// and reaches no log (API, worker and host at trace level) and no response.
#[tokio::test]
async fn a_browser_state_reaches_no_log_response_or_plain_column() {
    let host = Host::start(&[("RUST_LOG", "trace")]);
    let app = spawn_app_with(host.options(Options::default().env("RUST_LOG", "trace"))).await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    app.stub.state.push([
        script(&[navigate("c1", &site.url("secret"))]),
        script(&[call("c2", "ask_person", "{}".to_owned())]),
    ]);
    let person = ask_person();
    let (session, _) = submit_browser_run(&app, &key, &[person]).await;
    wait_paused(&app, &key, &session).await;
    assert!(output_of(&app, "c1").contains("Welcome back"));
    // The state is kept (sealed) while the run waits.
    let sealed: Vec<u8> = app
        .db()
        .await
        .query_one("SELECT sealed FROM browser_states", &[])
        .await
        .expect("a saved state")
        .get(0);
    assert!(sealed.len() > 40);
    let database = crate::byok::database_text(&app).await;
    let responses = app.responses_text();
    let places = [
        ("the logs", app.all_logs()),
        ("the host's logs", host.process.log_text()),
        ("the database", database),
        ("a response", responses),
    ];
    // Nor any eight characters of them, nor their hex (a bytea column).
    for secret in ["ck-SeCrEt-QwErTyUiOp", "ls-SeCrEt-AsDfGhJkL"] {
        crate::byok::assert_no_piece_of(secret, &places);
    }
    assert!(app.all_logs().contains(" TRACE "), "trace logging is on");
    assert!(host.process.log_text().contains("opened a browser"));
}

/// A worker that dies between a run's end and its browser's close leaves
/// the browser open: every worker closes, now and then, the browsers of
/// runs that ended, and only those.
#[tokio::test]
async fn browsers_of_runs_that_ended_are_closed_by_the_sweep() {
    let host = Host::start(&[]);
    let app =
        spawn_app_with(host.options(Options::default().env("STEWRD_BACKLOG_SAMPLE_SECS", "1")))
            .await;
    let (_, key) = app.create_project("acme").await;
    let ended = app.submit(&key, json!({"message": "done soon"})).await;
    let ended_session = ended["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &ended_session).await;
    app.stub
        .state
        .push([script(&[call("c1", "ask_person", "{}".to_owned())])]);
    let person = ask_person();
    let paused = app
        .submit(&key, json!({"message": "wait", "tools": [person]}))
        .await;
    let paused_session = paused["session_id"].as_str().expect("id").to_owned();
    wait_paused(&app, &key, &paused_session).await;
    // Browsers left open on the host for both runs (as a dead worker would).
    let client = reqwest::Client::new();
    for run in [&ended["run_id"], &paused["run_id"]] {
        let opened = client
            .put(format!(
                "{}/v1/browsers/{}",
                host.url,
                run.as_str().unwrap_or_default()
            ))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("an answer");
        assert!(opened.status().is_success());
    }
    let swept = wait_for(Duration::from_secs(20), || async {
        let open: Vec<Value> = host.sessions().await;
        (open.len() == 1).then_some(open)
    })
    .await
    .expect("the ended run's browser was never closed");
    assert_eq!(swept[0]["run_id"], paused["run_id"], "{swept:?}");
}

#[tokio::test]
async fn without_a_browser_host_a_browser_run_fails_with_browser_unavailable() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([Reply::text("never", 4)]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "browser_unavailable", "{done}");
    // A host that does not answer: retried, then the same failure.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_BROWSER_HOST_URL", &url)
            .env("STEWRD_BROWSER_HOST_TOKEN", TOKEN)
            .env("STEWRD_RETRY_BASE_MS", "50"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    app.stub.state.push([
        script(&[call("c1", "browser_snapshot", "{}".to_owned())]),
        Reply::text("never", 4),
    ]);
    let (session, _) = submit_browser_run(&app, &key, &[]).await;
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "browser_unavailable", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4 attempts"),
        "{done}"
    );
}

/// Counted as the other fault suites count: accepted, final, lost, and
/// clicks made twice (a POST of one run's form reaching the site twice).
#[derive(Debug)]
struct BrowserTally {
    accepted: usize,
    final_runs: usize,
    lost: usize,
    succeeded: usize,
    duplicated_clicks: usize,
    clicks: usize,
    unknown_outcomes: usize,
    host_kills: usize,
    worker_kills: usize,
    chromium_left: usize,
}

#[tokio::test]
#[ignore = "slow: kills workers and the browser host for about a minute; run by scripts/test --all"]
async fn killing_workers_and_the_host_never_clicks_twice_and_leaves_no_chromium() {
    let mut host = Host::start(&[]);
    let mut app = spawn_app_with(
        host.options(Options {
            workers: 2,
            ..Options::default()
                .env("STEWRD_LEASE_SECS", "3")
                .env("STEWRD_MAX_ATTEMPTS", "50")
                .env("STEWRD_RETRY_BASE_MS", "300")
        }),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let site = Site::start().await;
    // Unscripted, the stub opens the message's URL, clicks the page's first
    // button once, and echoes the answer.
    let mut sessions = Vec::new();
    for i in 0..24 {
        let accepted = app
            .submit(
                &key,
                json!({"message": format!("open {} and click", site.url(&format!("job-{i}"))),
                       "tools": [{"type": "browser"}]}),
            )
            .await;
        sessions.push(accepted["session_id"].as_str().expect("id").to_owned());
    }
    let db = app.db().await;
    let (mut worker_kills, mut host_kills) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        if open == 0 || std::time::Instant::now() > deadline {
            break;
        }
        if (worker_kills + host_kills) % 3 == 2 {
            host.kill_and_restart();
            host_kills += 1;
        } else {
            app.kill_and_replace_worker(worker_kills % 2);
            worker_kills += 1;
        }
    }
    let mut tally = BrowserTally {
        accepted: sessions.len(),
        final_runs: 0,
        lost: 0,
        succeeded: 0,
        duplicated_clicks: 0,
        clicks: 0,
        unknown_outcomes: 0,
        host_kills,
        worker_kills,
        chromium_left: 0,
    };
    // A run whose outbox row a relay took just before its process was
    // killed gets its message at the relay's republish window (300 s): the
    // at-least-once net, which a kill every two seconds does reach.
    for session in &sessions {
        let done = app
            .wait_final_within(&key, session, Duration::from_secs(360))
            .await;
        match done["status"].as_str() {
            Some("succeeded") => {
                tally.final_runs += 1;
                tally.succeeded += 1;
            }
            Some("failed" | "cancelled") => tally.final_runs += 1,
            _ => tally.lost += 1,
        }
        if done["output"]
            .as_str()
            .unwrap_or_default()
            .contains("the outcome of this action is unknown")
        {
            tally.unknown_outcomes += 1;
        }
    }
    let bought = site.state.bought.lock().expect("bought").clone();
    tally.clicks = bought.len();
    for i in 0..sessions.len() {
        let job = format!("job-{i}/");
        if bought.iter().filter(|b| **b == job).count() > 1 {
            tally.duplicated_clicks += 1;
        }
    }
    let gone = wait_for(Duration::from_secs(20), || async {
        host.chromium_processes().is_empty().then_some(())
    })
    .await;
    tally.chromium_left = host.chromium_processes().len();
    eprintln!("browser fault tally: {tally:?}");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.final_runs, tally.accepted, "{tally:?}");
    assert_eq!(tally.duplicated_clicks, 0, "{tally:?}: {bought:?}");
    assert!(tally.worker_kills > 0 && tally.host_kills > 0, "{tally:?}");
    assert!(gone.is_some(), "{tally:?}");
}
