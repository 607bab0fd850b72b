//! Load generators: closed loop (C clients, each sending as soon as its last
//! answer came back) for maximum throughput, and open loop (a fixed arrival rate,
//! latency measured from each request's scheduled time, so a slow server cannot
//! hide its queueing: no coordinated omission). Plus a one-line progress display.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// What a load run saw.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Microseconds.
    pub latency: Histogram<u64>,
    /// Bodies of the successful answers (when kept).
    pub answers: Vec<serde_json::Value>,
}

impl Outcome {
    /// The figures of a finished run: every task has ended, so the shared
    /// histogram and answers are no one else's any more.
    fn collect(
        total: u64,
        errors: &AtomicU64,
        elapsed: Duration,
        latency: Arc<Mutex<Histogram<u64>>>,
        answers: Arc<Mutex<Vec<serde_json::Value>>>,
    ) -> Self {
        let errors = errors.load(Ordering::Relaxed);
        Self {
            ok: total - errors,
            errors,
            elapsed,
            latency: Arc::try_unwrap(latency)
                .map(|m| m.into_inner().expect("lock"))
                .unwrap_or_else(|_| histogram()),
            answers: Arc::try_unwrap(answers)
                .map(|m| m.into_inner().expect("lock"))
                .unwrap_or_default(),
        }
    }
}

/// Microseconds, from 1 µs to 2 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// One request: returns its answer (parsed) or `None` on error.
pub type Request = Arc<
    dyn Fn(u64) -> futures_util::future::BoxFuture<'static, Option<serde_json::Value>>
        + Send
        + Sync,
>;

/// `total` requests from `clients` concurrent clients.
pub async fn closed_loop(
    total: u64,
    clients: usize,
    keep: bool,
    request: Request,
    label: &str,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(histogram()));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let progress = Progress::start(label, total, done.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, done, errors, latency, answers, request) = (
                next.clone(),
                done.clone(),
                errors.clone(),
                latency.clone(),
                answers.clone(),
                request.clone(),
            );
            tokio::spawn(async move {
                let mut local = histogram();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let sent = Instant::now();
                    match request(i).await {
                        Some(answer) => {
                            let _ = local.record(sent.elapsed().as_micros() as u64);
                            if keep {
                                answers.lock().expect("lock").push(answer);
                            }
                        }
                        None => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let _ = latency.lock().expect("lock").add(&local);
            })
        })
        .collect();
    futures_util::future::join_all(tasks).await;
    progress.finish();
    Outcome::collect(total, &errors, started.elapsed(), latency, answers)
}

/// `rate` requests a second for `duration`, each on its own task at its
/// scheduled time; latency counts from the scheduled time.
pub async fn open_loop(rate: f64, duration: Duration, request: Request, label: &str) -> Outcome {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(histogram()));
    let progress = Progress::start(label, total, done.clone());
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (done, errors, latency, request) = (
            done.clone(),
            errors.clone(),
            latency.clone(),
            request.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ok = request(i).await.is_some();
            let micros = due.elapsed().as_micros() as u64;
            if ok {
                let _ = latency.lock().expect("lock").record(micros.max(1));
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    futures_util::future::join_all(tasks).await;
    progress.finish();
    Outcome::collect(total, &errors, started.elapsed(), latency, Arc::default())
}

/// A progress bar on stderr, redrawn four times a second.
pub struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(label: &str, total: u64, done: Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let label = label.to_owned();
        let flag = stop.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                draw(
                    &label,
                    done.load(Ordering::Relaxed),
                    total,
                    started.elapsed(),
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            draw(
                &label,
                done.load(Ordering::Relaxed),
                total,
                started.elapsed(),
            );
            eprintln!();
        });
        Self { stop, task }
    }

    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.task);
    }
}

fn draw(label: &str, done: u64, total: u64, elapsed: Duration) {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH) as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    eprint!(
        "\r  {label:<28} [{}{}] {done}/{total} {rate:>8.0}/s {:>6.1}s",
        "=".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        elapsed.as_secs_f64()
    );
    let _ = std::io::stderr().flush();
}
