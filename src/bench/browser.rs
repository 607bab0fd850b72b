//! `stewrd bench browser`: a browser host (this binary's `browser-host`, as a
//! child process) and a page on loopback. With 1, 2, 4, 8 and 12 browsers
//! open at once, each driven by its own client in a loop of snapshot, click
//! (a link), back and navigate: actions per second, p50 and p99 per action,
//! CPU per action of the host and of Chromium, memory per open browser; and
//! the browsers one host holds before an action's p50 is twice what it is
//! with one (how operators size hosts).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use axum::{Router, response::Html, routing::get};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    process::{Child, Command},
};

use super::{Options, fleet::cpu_ms, report::Report};

const LEVELS: [usize; 5] = [1, 2, 4, 8, 12];

/// A shop-like page: a heading, a form, a list of links.
fn page() -> String {
    let mut html = String::from(
        "<!doctype html><title>Bench shop</title><h1>Bench shop</h1>\
         <form><label>Email <input name=email></label><button>Buy</button></form><ul>",
    );
    for i in 0..40 {
        html.push_str(&format!("<li><a href=\"/item/{i}\">Item {i}</a></li>"));
    }
    html.push_str("</ul><a href=\"/next\">Next</a>");
    html
}

async fn start_site() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shop = page();
    let app = Router::new()
        .route("/page", get(move || async move { Html(shop.clone()) }))
        .route(
            "/next",
            get(|| async { Html("<!doctype html><title>Next</title><p>The next page</p>") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}

/// The host, and how to reach it.
struct Host {
    child: Child,
    url: String,
    token: String,
    dir: PathBuf,
}

impl Host {
    async fn start() -> anyhow::Result<Self> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let dir =
            std::env::temp_dir().join(format!("stewrd-bench-browsers-{}", std::process::id()));
        let mut child = Command::new(std::env::current_exe()?)
            .arg("browser-host")
            .env("STEWRD_BROWSER_HOST_LISTEN", "127.0.0.1:0")
            .env("STEWRD_BROWSER_HOST_TOKEN", &token)
            .env("STEWRD_BROWSER_DIR", &dir)
            .env("STEWRD_BROWSER_MAX_SESSIONS", "64")
            .env("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the browser host did not start"))?;
        let url = first
            .rsplit(' ')
            .next()
            .ok_or_else(|| anyhow::anyhow!("no address in {first:?}"))?
            .to_owned();
        Ok(Self {
            child,
            url,
            token,
            dir,
        })
    }

    /// CPU of the host process, and of every Chromium process it runs.
    fn cpu(&self) -> (f64, f64) {
        let host = self.child.id().map_or(0.0, cpu_ms);
        let marker = format!("--user-data-dir={}", self.dir.display());
        let chromium = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
            .map(cpu_ms)
            .sum();
        (host, chromium)
    }
}

/// One client's browser: acts in a loop until `until`, timing each action.
async fn drive(
    http: reqwest::Client,
    host: (String, String),
    run: String,
    site: String,
    until: Instant,
) -> Vec<f64> {
    let (base, token) = host;
    let act = |action: &'static str, arguments: Value| {
        let request = http
            .post(format!("{base}/v1/browsers/{run}/actions"))
            .bearer_auth(&token)
            .json(&json!({"action": action, "arguments": arguments}));
        async move {
            let started = Instant::now();
            let sent = request.send().await;
            let reply: Value = match sent {
                Ok(answer) => match answer.json().await {
                    Ok(reply) => reply,
                    Err(error) => {
                        eprintln!("browser: {action}: {error}");
                        return None;
                    }
                },
                Err(error) => {
                    eprintln!("browser: {action}: {error}");
                    return None;
                }
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if reply["failed"] == true {
                eprintln!("browser: {action} failed: {}", reply["text"]);
                return None;
            }
            match reply["text"].as_str() {
                Some(text) => Some((ms, text.to_owned())),
                None => {
                    eprintln!("browser: {action}: {reply}");
                    None
                }
            }
        }
    };
    let mut timings = Vec::new();
    let shop = format!("{site}/page");
    while Instant::now() < until {
        let Some((ms, _)) = act("navigate", json!({"url": shop})).await else {
            break;
        };
        timings.push(ms);
        let Some((ms, snapshot)) = act("snapshot", json!({})).await else {
            break;
        };
        timings.push(ms);
        let next = snapshot
            .lines()
            .find(|l| l.contains("link \"Next\""))
            .and_then(|l| l.split("[ref=").nth(1))
            .and_then(|r| r.split(']').next())
            .unwrap_or("e0")
            .to_owned();
        let Some((ms, _)) = act("click", json!({"ref": next})).await else {
            break;
        };
        timings.push(ms);
        let Some((ms, _)) = act("back", json!({})).await else {
            break;
        };
        timings.push(ms);
    }
    timings
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

pub(super) async fn browser(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let seconds = options.seconds.unwrap_or(8);
    eprintln!("browser: {seconds} s at each of {LEVELS:?} browsers open at once");
    let site = start_site().await?;
    let host = Host::start().await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut single_p50 = None;
    let (mut holds, mut doubled) = (0, false);
    for level in LEVELS {
        let runs: Vec<String> = (0..level).map(|i| format!("bench-{level}-{i}")).collect();
        for run in &runs {
            http.put(format!("{}/v1/browsers/{run}", host.url))
                .bearer_auth(&host.token)
                .json(&json!({}))
                .send()
                .await?
                .error_for_status()?;
        }
        let (host_before, chromium_before) = host.cpu();
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let clients: Vec<_> = runs
            .iter()
            .map(|run| {
                tokio::spawn(drive(
                    http.clone(),
                    (host.url.clone(), host.token.clone()),
                    run.clone(),
                    site.clone(),
                    until,
                ))
            })
            .collect();
        let mut timings: Vec<f64> = Vec::new();
        for client in clients {
            timings.extend(client.await.unwrap_or_default());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (host_after, chromium_after) = host.cpu();
        let listed: Value = http
            .get(format!("{}/v1/browsers", host.url))
            .bearer_auth(&host.token)
            .send()
            .await?
            .json()
            .await?;
        let memory: Vec<f64> = listed["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["memory_bytes"].as_f64())
            .collect();
        for run in &runs {
            let _ = http
                .delete(format!("{}/v1/browsers/{run}", host.url))
                .bearer_auth(&host.token)
                .send()
                .await;
        }
        timings.sort_by(f64::total_cmp);
        let actions = timings.len().max(1) as f64;
        let p50 = quantile(&timings, 0.5);
        report.add(
            format!("browser_{level}_actions_per_s"),
            timings.len() as f64 / elapsed,
            "actions/s",
            "",
        );
        report.add(format!("browser_{level}_action_p50_ms"), p50, "ms", "");
        report.add(
            format!("browser_{level}_action_p99_ms"),
            quantile(&timings, 0.99),
            "ms",
            "",
        );
        report.add(
            format!("browser_{level}_cpu_ms_per_action_host"),
            (host_after - host_before) / actions,
            "ms",
            "",
        );
        report.add(
            format!("browser_{level}_cpu_ms_per_action_chromium"),
            (chromium_after - chromium_before) / actions,
            "ms",
            "",
        );
        report.add(
            format!("browser_{level}_mib_per_browser"),
            memory.iter().sum::<f64>() / memory.len().max(1) as f64 / 1_048_576.0,
            "MiB",
            "proportional set size",
        );
        let single = *single_p50.get_or_insert(p50);
        doubled |= p50 >= 2.0 * single;
        if !doubled {
            holds = level;
        }
    }
    report.add(
        "browser_sessions_before_p50_doubles",
        holds as f64,
        "browsers",
        "",
    );
    drop(host);
    Ok(())
}
