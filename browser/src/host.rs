//! The host's HTTP API and its browsers: one per run, opened on a worker's
//! `PUT` (restoring the state the worker kept), acted on one action at a time,
//! closed on `DELETE`, when idle, when it outgrows its memory, or when an
//! action outlives its deadline. At most `STEWRD_BROWSER_MAX_SESSIONS` are
//! open; a worker that finds none free is told `busy` and waits.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use stewrd_shared::{
    domain::browser::{ActionReply, ActionRequest, HostRefusal, OpenRequest},
    runtime::config::BrowserHostSettings,
};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::{
    cdp::Cdp,
    chromium::{self, Browser, Launch},
    page::{ActionError, Page},
    proxy::Egress,
};

/// How often idle and memory are checked.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// One run's browser.
struct Open {
    page: Page,
    egress: Egress,
    // Dropped last: the page's connection goes before the processes.
    browser: Browser,
}

/// A run's place on the host: its browser once opened, and what the watcher
/// reads without waiting for an action to finish.
struct Entry {
    open: tokio::sync::Mutex<Option<Open>>,
    group: AtomicI32,
    last_used: Mutex<Instant>,
    /// Killed by the watcher for its memory: the next answer says so.
    outgrew: AtomicBool,
}

impl Entry {
    fn touch(&self) {
        if let Ok(mut last) = self.last_used.lock() {
            *last = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|last| last.elapsed())
            .unwrap_or_default()
    }
}

struct Host {
    settings: BrowserHostSettings,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

type Shared = Arc<Host>;

/// Serves until `shutdown`; every browser is closed on the way out.
pub async fn serve(
    settings: BrowserHostSettings,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let left = chromium::kill_leftovers(&settings.dir);
    if left > 0 {
        tracing::warn!(
            processes = left,
            "killed browsers an earlier host left running"
        );
    }
    std::fs::create_dir_all(&settings.dir)?;
    let host = Arc::new(Host {
        settings,
        entries: Mutex::default(),
    });
    let watcher = tokio::spawn(watch(host.clone(), shutdown.clone()));
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/v1/browsers", get(list))
        .route("/v1/browsers/{run}", put(open).delete(close))
        .route("/v1/browsers/{run}/actions", post(act))
        .with_state(host.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    watcher.abort();
    let all: Vec<Arc<Entry>> = host
        .entries
        .lock()
        .map(|mut e| e.drain().map(|(_, v)| v).collect())
        .unwrap_or_default();
    for entry in all {
        entry.open.lock().await.take();
    }
    served
}

async fn health(State(host): State<Shared>) -> Json<Value> {
    let open = host.entries.lock().map(|e| e.len()).unwrap_or_default();
    Json(json!({"status": "ok", "sessions": open, "max_sessions": host.settings.max_sessions}))
}

/// The open browsers, with their memory (for operators and the bench).
async fn list(State(host): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = unauthorized(&host, &headers) {
        return refused;
    }
    let entries: Vec<(String, i32)> = host
        .entries
        .lock()
        .map(|e| {
            e.iter()
                .map(|(run, entry)| (run.clone(), entry.group.load(Ordering::Relaxed)))
                .collect()
        })
        .unwrap_or_default();
    let sessions: Vec<Value> = entries
        .into_iter()
        .map(|(run, group)| {
            json!({"run_id": run, "memory_bytes": if group > 0 { chromium::group_memory(group) } else { 0 }})
        })
        .collect();
    Json(json!({"sessions": sessions})).into_response()
}

/// Opens the run's browser unless it is open, restoring the state given.
async fn open(
    State(host): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
    Json(request): Json<OpenRequest>,
) -> Response {
    if let Some(refused) = unauthorized(&host, &headers) {
        return refused;
    }
    let entry = {
        let Ok(mut entries) = host.entries.lock() else {
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the host is stopping",
            );
        };
        match entries.get(&run) {
            Some(entry) => entry.clone(),
            None if entries.len() >= host.settings.max_sessions => {
                tracing::debug!(
                    run = %run,
                    holding = ?entries.keys().collect::<Vec<_>>(),
                    "every browser is in use; the run waits"
                );
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    &format!(
                        "all {} browsers of this host are in use",
                        host.settings.max_sessions
                    ),
                );
            }
            None => {
                let entry = Arc::new(Entry {
                    open: tokio::sync::Mutex::new(None),
                    group: AtomicI32::new(0),
                    last_used: Mutex::new(Instant::now()),
                    outgrew: AtomicBool::new(false),
                });
                entries.insert(run.clone(), entry.clone());
                entry
            }
        }
    };
    let mut open = entry.open.lock().await;
    entry.touch();
    if open.as_ref().is_some_and(|o| o.page.is_open()) {
        return Json(json!({"opened": false})).into_response();
    }
    open.take();
    match launch(&host.settings, &run).await {
        Ok(mut launched) => {
            if let Some(state) = &request.state {
                let restore =
                    launched
                        .page
                        .restore(state, &launched.egress, host.settings.allow_private);
                let _ = tokio::time::timeout(host.settings.action_timeout, restore).await;
            }
            entry
                .group
                .store(launched.browser.group().unwrap_or(0), Ordering::Relaxed);
            entry.outgrew.store(false, Ordering::Relaxed);
            *open = Some(launched);
            tracing::info!(run = %run, "opened a browser");
            Json(json!({"opened": true})).into_response()
        }
        Err(why) => {
            drop(open);
            forget(&host, &run, &entry);
            tracing::warn!(run = %run, error = %why, "cannot open a browser");
            refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &why)
        }
    }
}

async fn launch(settings: &BrowserHostSettings, run: &str) -> Result<Open, String> {
    let egress = Egress::start(settings.allow_private)
        .await
        .map_err(|e| format!("cannot start the egress proxy: {e}"))?;
    let browser = Browser::launch(Launch {
        executable: &settings.chromium,
        profile: settings.dir.join(profile_name(run)),
        proxy_port: egress.port,
    })
    .await
    .map_err(|e| e.to_string())?;
    let cdp = Cdp::connect(&browser.devtools, settings.action_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let page = Page::attach(cdp).await.map_err(|e| e.to_string())?;
    Ok(Open {
        page,
        egress,
        browser,
    })
}

/// A folder name from the run's id (whatever a caller sent, nothing but
/// letters, digits and dashes reaches the file system).
fn profile_name(run: &str) -> String {
    run.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect()
}

/// One action on the run's browser.
async fn act(
    State(host): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
    Json(request): Json<ActionRequest>,
) -> Response {
    if let Some(refused) = unauthorized(&host, &headers) {
        return refused;
    }
    let entry = host.entries.lock().ok().and_then(|e| e.get(&run).cloned());
    let Some(entry) = entry else {
        return no_browser();
    };
    let mut guard = entry.open.lock().await;
    entry.touch();
    let Some(open) = guard.as_mut() else {
        drop(guard);
        forget(&host, &run, &entry);
        return no_browser();
    };
    if !open.page.is_open() {
        guard.take();
        drop(guard);
        forget(&host, &run, &entry);
        if entry.outgrew.load(Ordering::Relaxed) {
            return Json(outgrown(&host.settings)).into_response();
        }
        return no_browser();
    }
    let settings = &host.settings;
    let acted = tokio::time::timeout(settings.action_timeout, async {
        let done = open
            .page
            .act(
                request.action,
                &request.arguments,
                &open.egress,
                settings.allow_private,
            )
            .await;
        let state = open.page.state().await.ok();
        (done, state)
    })
    .await;
    let reply = match acted {
        Ok((Ok(done), state)) => ActionReply {
            text: done.snapshot,
            png: done.png.map(|png| STANDARD.encode(png)),
            state,
            ..ActionReply::default()
        },
        Ok((Err(ActionError::Refused(why)), state)) => ActionReply {
            text: why,
            failed: true,
            state,
            ..ActionReply::default()
        },
        Ok((Err(ActionError::Browser(error)), _)) => {
            guard.take();
            drop(guard);
            forget(&host, &run, &entry);
            if entry.outgrew.load(Ordering::Relaxed) {
                return Json(outgrown(settings)).into_response();
            }
            tracing::warn!(run = %run, %error, "the browser failed during an action; closed");
            ActionReply {
                text: format!("the browser failed during the action ({error}) and was closed"),
                failed: true,
                lost: true,
                ..ActionReply::default()
            }
        }
        Err(_) => {
            guard.take();
            drop(guard);
            forget(&host, &run, &entry);
            tracing::warn!(run = %run, "an action outlived STEWRD_BROWSER_ACTION_SECS; closed");
            ActionReply {
                text: format!(
                    "the action did not finish in {} s; the browser was closed",
                    settings.action_timeout.as_secs()
                ),
                failed: true,
                lost: true,
                ..ActionReply::default()
            }
        }
    };
    Json(reply).into_response()
}

/// The answer to an action whose browser the watcher killed for its memory.
fn outgrown(settings: &BrowserHostSettings) -> ActionReply {
    ActionReply {
        text: format!(
            "the page used more than {} MiB of memory (STEWRD_BROWSER_MEMORY_MB); its browser \
             was closed",
            settings.memory_bytes >> 20
        ),
        failed: true,
        ..ActionReply::default()
    }
}

/// Closes the run's browser (none open is not an error).
async fn close(
    State(host): State<Shared>,
    Path(run): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&host, &headers) {
        return refused;
    }
    let entry = host.entries.lock().ok().and_then(|mut e| e.remove(&run));
    if let Some(entry) = entry {
        entry.open.lock().await.take();
        tracing::info!(run = %run, "closed a browser");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Removes `entry` from the table, if it is still the run's.
fn forget(host: &Host, run: &str, entry: &Arc<Entry>) {
    if let Ok(mut entries) = host.entries.lock()
        && entries.get(run).is_some_and(|e| Arc::ptr_eq(e, entry))
    {
        entries.remove(run);
    }
}

/// Closes browsers idle too long and kills those past their memory.
async fn watch(host: Shared, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let entries: Vec<(String, Arc<Entry>)> = host
            .entries
            .lock()
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (run, entry) in entries {
            let group = entry.group.load(Ordering::Relaxed);
            if group > 0 && chromium::group_memory(group) > host.settings.memory_bytes {
                tracing::warn!(run = %run, "a browser outgrew STEWRD_BROWSER_MEMORY_MB; killed");
                entry.outgrew.store(true, Ordering::Relaxed);
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
                continue;
            }
            if entry.idle_for() > host.settings.idle
                && let Ok(mut open) = entry.open.try_lock()
            {
                open.take();
                drop(open);
                forget(&host, &run, &entry);
                tracing::info!(run = %run, "closed an idle browser");
            }
        }
    }
}

fn unauthorized(host: &Host, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = host.settings.token.expose_secret();
    let equal: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    (!equal).then(|| {
        refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a browser host answers only its STEWRD_BROWSER_HOST_TOKEN",
        )
    })
}

fn no_browser() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "no_browser",
        "this run has no browser open here; open one",
    )
}

fn refusal(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(HostRefusal {
            error: error.to_owned(),
            message: message.to_owned(),
        }),
    )
        .into_response()
}
