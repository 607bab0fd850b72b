//! `stewrd bench stream`: many streamed runs watched at once. One API process,
//! one worker; every run's event stream is open before the worker starts; the
//! stub writes 50 pieces a second per run, each piece the time it was written,
//! so each client measures how long a piece took from the stub to it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{
    Options,
    fleet::{Fleet, rss_kib},
    load::closed_loop,
    report::Report,
    scenarios::{cpu_snapshot, http_client},
};

/// Pieces per second of each run.
const PIECES_PER_SECOND: u64 = 50;

fn now_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(0)
}

/// What the clients saw.
struct Seen {
    latency: Mutex<Histogram<u64>>,
    deltas: AtomicU64,
    finished: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Seen {
    /// One `run.delta`: every stamp in its text is a piece's write time.
    fn delta(&self, data: &str) {
        let now = now_micros();
        let text = serde_json::from_str::<Value>(data).unwrap_or_default();
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        for stamp in text["text"].as_str().unwrap_or_default().split_whitespace() {
            if let Ok(stamp) = stamp.parse::<u64>() {
                let _ = latency.record(now.saturating_sub(stamp).max(1));
            }
        }
        drop(latency);
        self.deltas.fetch_add(1, Ordering::Relaxed);
        let at = Instant::now();
        self.first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(at);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

/// Reads one session's event stream to its end.
async fn watch(http: reqwest::Client, url: String, key: String, seen: Arc<Seen>) {
    let Ok(mut response) = http.get(url).bearer_auth(key).send().await else {
        return;
    };
    let mut pending = String::new();
    let mut event = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                match event.as_str() {
                    "run.delta" => seen.delta(data.trim()),
                    "session.succeeded" => {
                        seen.finished.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
}

pub(super) async fn stream(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let runs = options.clients.unwrap_or(1_000) as u64;
    let seconds = options.seconds.unwrap_or(10);
    eprintln!(
        "stream: {runs} streamed runs watched at once, {PIECES_PER_SECOND} pieces/s each for {seconds} s"
    );
    let concurrency = [("STEWRD_WORKER_CONCURRENCY", (runs * 2).to_string())];
    let mut fleet = Fleet::start(0, Duration::ZERO, &concurrency).await?;
    let pieces = usize::try_from(seconds * PIECES_PER_SECOND)?;
    fleet
        .stub
        .state
        .set_streaming(pieces, Duration::from_millis(1000 / PIECES_PER_SECOND));
    fleet.stub.state.set_stamping(true);
    let http = http_client();
    let key = fleet.project(&http).await?;
    let url = format!("{}/v1/agent", fleet.api_base);
    let submit = {
        let (http, key) = (http.clone(), key.clone());
        Arc::new(move |i: u64| {
            let request = http
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"message": format!("stream {i}"), "stream": true}));
            let answer: futures_util::future::BoxFuture<'static, Option<Value>> =
                Box::pin(async move {
                    let response = request.send().await.ok()?;
                    if response.status().as_u16() != 202 {
                        return None;
                    }
                    response.json::<Value>().await.ok()
                });
            answer
        })
    };
    let queued = closed_loop(runs, 64, true, submit, "queueing").await;
    let before_kib = rss_kib(fleet.api.id());
    let seen = Arc::new(Seen {
        latency: Mutex::new(
            Histogram::new_with_bounds(1, 120_000_000, 3).context("histogram bounds")?,
        ),
        deltas: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        first: Mutex::new(None),
        last: Mutex::new(None),
    });
    let watchers: Vec<_> = queued
        .answers
        .iter()
        .filter_map(|a| a["session_id"].as_str().map(str::to_owned))
        .map(|id| {
            let url = format!("{}/v1/sessions/{id}/events", fleet.api_base);
            tokio::spawn(watch(http.clone(), url, key.clone(), seen.clone()))
        })
        .collect();
    // Let every stream connect and send its first (queued) state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held_kib = rss_kib(fleet.api.id());
    let before = cpu_snapshot(&fleet);
    fleet.add_worker()?;
    let deadline = tokio::time::timeout(
        Duration::from_secs(seconds * 6 + 60),
        futures_util::future::join_all(watchers),
    )
    .await;
    let after = cpu_snapshot(&fleet);
    anyhow::ensure!(deadline.is_ok(), "some streams never ended");
    let deltas = seen.deltas.load(Ordering::Relaxed);
    let window = match (
        *seen.first.lock().unwrap_or_else(|p| p.into_inner()),
        *seen.last.lock().unwrap_or_else(|p| p.into_inner()),
    ) {
        (Some(first), Some(last)) => last.duration_since(first),
        _ => Duration::ZERO,
    };
    report.add("stream_clients", queued.ok as f64, "streams", "1000");
    report.add(
        "stream_runs_finished",
        seen.finished.load(Ordering::Relaxed) as f64,
        "runs",
        "all",
    );
    report.add("stream_deltas", deltas as f64, "deltas", "");
    report.add(
        "stream_deltas_per_s",
        deltas as f64 / window.as_secs_f64().max(0.001),
        "deltas/s",
        ">= 50000",
    );
    let latency = seen
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (name, quantile) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        report.add(
            format!("stream_delta_latency_{name}_ms"),
            latency.value_at_quantile(quantile) as f64 / 1000.0,
            "ms",
            if name == "p99" { "<= 50" } else { "" },
        );
    }
    report.add(
        "stream_delta_latency_max_ms",
        latency.max() as f64 / 1000.0,
        "ms",
        "",
    );
    for ((name, before), (_, after)) in before.0.iter().zip(&after.0) {
        report.add(
            format!("cpu_ms_per_1000_deltas_{name}"),
            (after - before) / (deltas.max(1) as f64 / 1000.0),
            "ms",
            "",
        );
    }
    report.add(
        "stream_api_kib_per_open_stream",
        held_kib.saturating_sub(before_kib) as f64 / queued.ok.max(1) as f64,
        "KiB",
        "",
    );
    fleet.stop().await;
    Ok(())
}
