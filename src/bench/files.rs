//! `stewrd bench files`: files through stewrd (multipart upload, sealing,
//! the store, the row; download and unsealing) against the same bytes written
//! to and read from the same store directly, in objects of the size stewrd
//! writes (the raw limit of the run); then fifty 32 MiB uploads at once, for
//! the API's memory per upload.
//!
//! The store is the local disk (a temporary directory) unless
//! `STEWRD_FILE_STORE` and its S3 settings are set for the bench.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde_json::Value;
use stewrd_shared::{
    domain::{file::FileId, id::ProjectId},
    files::store::{Blobs, CHUNKS_PER_SEGMENT},
    secrets::seal::CHUNK,
};

use super::{
    Options,
    fleet::{Fleet, cpu_ms_of, rss_kib},
    report::Report,
    scenarios::{CpuSnapshot, cpu_snapshot, http_client},
};

const MIB: usize = 1 << 20;
/// The plaintext stewrd puts in one object; the raw phase writes objects of this size.
const OBJECT: usize = CHUNK * CHUNKS_PER_SEGMENT as usize;
/// Each file of the throughput phase.
const FILE_BYTES: usize = 8 * MIB;
/// The memory phase: this many uploads of the largest file at once.
const AT_ONCE: usize = 50;
const LARGEST: usize = 32 * MIB;
/// How the bench sends a body: in pieces of this size.
const PIECE: usize = 64 * 1024;

/// One MiB of bytes that do not compress, repeated to make any size.
fn pattern() -> Bytes {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    Bytes::from(bytes)
}

/// `size` bytes of `pattern` as a stream of pieces (never held whole).
fn body(pattern: &Bytes, size: usize) -> reqwest::Body {
    let pattern = pattern.clone();
    let pieces = (0..size).step_by(PIECE).map(move |start| {
        let at = start % MIB;
        let len = PIECE.min(size - start).min(MIB - at);
        Ok::<_, std::io::Error>(pattern.slice(at..at + len))
    });
    reqwest::Body::wrap_stream(stream::iter(pieces))
}

/// Uploads `size` bytes; returns the file's id.
async fn upload(
    http: &reqwest::Client,
    fleet: &Fleet,
    key: &str,
    pattern: &Bytes,
    size: usize,
) -> anyhow::Result<String> {
    let part = reqwest::multipart::Part::stream_with_length(body(pattern, size), size as u64)
        .file_name("bench.bin");
    let response = http
        .post(format!("{}/v1/files", fleet.api_base))
        .bearer_auth(key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await?;
    ensure!(
        response.status() == reqwest::StatusCode::CREATED,
        "upload answered {}",
        response.status()
    );
    let file: Value = response.json().await?;
    file["id"].as_str().map(str::to_owned).context("no file id")
}

/// Downloads a file, counting its bytes.
async fn download(
    http: &reqwest::Client,
    fleet: &Fleet,
    key: &str,
    id: &str,
) -> anyhow::Result<u64> {
    let mut response = http
        .get(format!("{}/v1/files/{id}/content", fleet.api_base))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?;
    let mut bytes = 0;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
    }
    Ok(bytes)
}

/// Runs `count` jobs over `clients` at once; returns the seconds taken.
async fn timed<F, Fut, T>(count: usize, clients: usize, job: F) -> anyhow::Result<(f64, Vec<T>)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let results: Vec<anyhow::Result<T>> = stream::iter(0..count)
        .map(job)
        .buffer_unordered(clients)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    Ok((seconds, results.into_iter().collect::<Result<_, _>>()?))
}

/// CPU by process: the fleet's, the store's (`weed` when S3 is SeaweedFS).
fn cpu(fleet: &Fleet) -> CpuSnapshot {
    let mut snapshot = cpu_snapshot(fleet);
    snapshot.0.push(("weed".to_owned(), cpu_ms_of("weed")));
    snapshot
}

/// Adds `<prefix>_mb_s` and CPU ms per MiB by process.
fn figures(
    report: &mut Report,
    prefix: &str,
    seconds: f64,
    bytes: usize,
    (before, after): (&CpuSnapshot, &CpuSnapshot),
) -> f64 {
    let mib = bytes as f64 / MIB as f64;
    let rate = bytes as f64 / 1e6 / seconds.max(1e-6);
    report.add(format!("{prefix}_mb_s"), rate, "MB/s", "");
    for ((name, before), (_, after)) in before.0.iter().zip(&after.0) {
        if matches!(name.as_str(), "worker" | "rabbitmq") {
            continue;
        }
        report.add(
            format!("{prefix}_cpu_ms_per_mib_{name}"),
            (after - before) / mib,
            "ms",
            "",
        );
    }
    rate
}

pub(super) async fn files(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let count = usize::try_from(options.jobs.unwrap_or(64))?;
    let clients = options.clients.unwrap_or(4);
    let local = std::env::temp_dir().join(format!("stewrd-bench-files-{}", uuid::Uuid::new_v4()));
    let mut env = vec![("STEWRD_FILE_QUOTA_BYTES", (1u64 << 40).to_string())];
    if std::env::var_os("STEWRD_FILE_STORE").is_none() {
        env.push(("STEWRD_FILE_STORE", format!("file://{}", local.display())));
    }
    eprintln!(
        "files: {count} files of {} MiB over {clients} clients, through stewrd and directly; \
         then {AT_ONCE} uploads of {} MiB at once",
        FILE_BYTES / MIB,
        LARGEST / MIB
    );
    let fleet = Fleet::start(0, Duration::ZERO, &env).await?;
    let result = measure(&fleet, count, clients, report).await;
    fleet.stop().await;
    let _ = std::fs::remove_dir_all(&local);
    result
}

async fn measure(
    fleet: &Fleet,
    count: usize,
    clients: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let http = http_client();
    let key = fleet.project(&http).await?;
    let blobs = Blobs::open(&fleet.config()?.files)?;
    let pattern = pattern();
    let total = count * FILE_BYTES;

    // The raw limit: the same bytes to the same store, in objects of stewrd's size.
    let raw_project = ProjectId::new();
    let raw_files: Vec<FileId> = (0..count).map(|_| FileId::new()).collect();
    let write_raw = |i: usize| {
        let (blobs, pattern, file) = (blobs.clone(), pattern.clone(), raw_files[i]);
        async move {
            for index in 0..FILE_BYTES / OBJECT {
                let piece = pattern[..OBJECT].to_vec();
                blobs
                    .put_segment(raw_project, file, u32::try_from(index)?, piece)
                    .await?;
            }
            anyhow::Ok(())
        }
    };
    let before = cpu(fleet);
    let (seconds, _) = timed(count, clients, write_raw).await?;
    let raw_put = figures(
        report,
        "files_raw_put",
        seconds,
        total,
        (&before, &cpu(fleet)),
    );
    let read_raw = |i: usize| {
        let (blobs, file) = (blobs.clone(), raw_files[i]);
        async move {
            for index in 0..FILE_BYTES / OBJECT {
                blobs
                    .read_segment(raw_project, file, u32::try_from(index)?, 0..OBJECT as u64)
                    .await?;
            }
            anyhow::Ok(())
        }
    };
    let before = cpu(fleet);
    let (seconds, _) = timed(count, clients, read_raw).await?;
    let raw_get = figures(
        report,
        "files_raw_get",
        seconds,
        total,
        (&before, &cpu(fleet)),
    );

    // Through stewrd.
    let before = cpu(fleet);
    let (seconds, ids) = timed(count, clients, |_| {
        upload(&http, fleet, &key, &pattern, FILE_BYTES)
    })
    .await?;
    let up = figures(
        report,
        "files_upload",
        seconds,
        total,
        (&before, &cpu(fleet)),
    );
    report.add("files_upload_of_raw", up / raw_put, "ratio", ">= 0.7");
    let before = cpu(fleet);
    let (seconds, sizes) = timed(count, clients, |i| download(&http, fleet, &key, &ids[i])).await?;
    ensure!(
        sizes.iter().all(|&s| s == FILE_BYTES as u64),
        "a download came back short"
    );
    let down = figures(
        report,
        "files_download",
        seconds,
        total,
        (&before, &cpu(fleet)),
    );
    report.add("files_download_of_raw", down / raw_get, "ratio", ">= 0.7");

    // Memory: many of the largest uploads at once.
    let api = fleet.api.id();
    let idle_kib = rss_kib(api);
    let peak = Arc::new(AtomicU64::new(idle_kib));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(api), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (seconds, _) = timed(AT_ONCE, AT_ONCE, |_| {
        upload(&http, fleet, &key, &pattern, LARGEST)
    })
    .await?;
    sampler.abort();
    let growth_kib = peak.load(Ordering::Relaxed).saturating_sub(idle_kib);
    report.add(
        "files_at_once_mb_s",
        (AT_ONCE * LARGEST) as f64 / 1e6 / seconds,
        "MB/s",
        "",
    );
    report.add(
        "files_api_rss_idle_mib",
        idle_kib as f64 / 1024.0,
        "MiB",
        "",
    );
    report.add(
        "files_api_rss_growth_per_upload_mib",
        growth_kib as f64 / 1024.0 / AT_ONCE as f64,
        "MiB",
        "<= 1",
    );
    for file in raw_files {
        let _ = blobs.remove(raw_project, file).await;
    }
    // What went through stewrd (an S3 bucket outlives the bench's database).
    for row in fleet
        .db()
        .await?
        .query("SELECT project_id, id FROM files", &[])
        .await?
    {
        let _ = blobs.remove(row.get(0), row.get(1)).await;
    }
    Ok(())
}
