//! `api`, `worker` and `dev`: the long-running commands.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use secrecy::SecretString;
use stewrd_shared::runtime::{
    config::{BrowserAccess, BrowserHostSettings, Config, LogFormat, StoreUrl},
    shutdown, telemetry,
};

/// Where `stewrd dev` keeps files unless `STEWRD_FILE_STORE` says otherwise.
const DEV_FILES: &str = ".stewrd/files";
/// Where `stewrd dev`'s stub provider listens (its demo tools are there too).
const DEV_STUB: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8089));
/// Where `stewrd dev`'s browser host keeps its browsers' profiles.
const DEV_BROWSERS: &str = ".stewrd/browsers";
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    process::{Child, Command},
};

use super::{DevKey, bind, check_broker, connect_db};
use crate::{listen, stub::Stub};

pub async fn api(config: Config) -> anyhow::Result<()> {
    let keys = config.master_keys()?;
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    let listener = bind(config.listen).await?;
    announce(&listener, &config)?;
    stewrd_api::serve(config, pool, keys, listener, shutdown::on_signal()).await?;
    Ok(())
}

pub async fn worker(config: Config) -> anyhow::Result<()> {
    let keys = config.master_keys()?;
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    if let Some(address) = config.metrics_listen {
        serve_metrics(address, &config).await?;
    }
    stewrd_worker::run(config, pool, keys, shutdown::on_signal()).await?;
    Ok(())
}

/// Browsers for runs, in a process of their own: no database, no master keys.
pub async fn browser_host() -> anyhow::Result<()> {
    let json = std::env::var("STEWRD_LOG_FORMAT").is_ok_and(|f| f.trim() == "json");
    telemetry::init(if json {
        LogFormat::Json
    } else {
        LogFormat::Pretty
    });
    let settings = BrowserHostSettings::from_env()?;
    if !on_path(&settings.chromium) {
        anyhow::bail!(
            "STEWRD_CHROMIUM: cannot find `{}` (install Debian's chromium, or name the executable)",
            settings.chromium
        );
    }
    let listener = bind(settings.listen).await?;
    println!(
        "stewrd browser host listening on http://{}",
        listener.local_addr()?
    );
    stewrd_browser::serve(settings, listener, shutdown::on_signal()).await?;
    Ok(())
}

/// Whether `program` names an executable (a path, or a name on `PATH`).
fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `stewrd dev`'s browser host: this binary's `browser-host` as a child
/// process on a free port, with a token of its own. None (runs asking for the
/// browser fail with `browser_unavailable`) when it cannot start.
async fn start_browser_host(config: &mut Config) -> Option<Child> {
    if config.browser.is_some() {
        return None;
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut child = Command::new(std::env::current_exe().ok()?)
        .arg("browser-host")
        .env("STEWRD_BROWSER_HOST_LISTEN", "127.0.0.1:0")
        .env("STEWRD_BROWSER_HOST_TOKEN", &token)
        .env("STEWRD_BROWSER_DIR", DEV_BROWSERS)
        .env(
            "STEWRD_WEBHOOK_ALLOW_PRIVATE",
            config.webhook_allow_private.to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let Some(url) = first.and_then(|line| line.rsplit(' ').next().map(str::to_owned)) else {
        tracing::warn!(
            "stewrd dev: no browser host (is Chromium installed?); runs asking for the browser fail"
        );
        return None;
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    tracing::info!(%url, "stewrd dev: a browser host runs beside");
    config.browser = Some(BrowserAccess {
        url: url.parse().ok()?,
        token: SecretString::from(token),
    });
    Some(child)
}

/// Migrate, then API and worker in one process; with no default key, a stub
/// provider stands in for OpenAI and OpenRouter.
pub async fn dev(mut config: Config) -> anyhow::Result<()> {
    super::apply_migrations(&config).await?;
    let keys = super::master_keys(&mut config, DevKey::CreateIfMissing)?;
    let _stub = match config.default_llm.api_key {
        Some(_) => None,
        None => Some(start_stub(&mut config).await?),
    };
    if config.files.store.is_none() {
        // Files on the local disk, beside the development master key.
        config.files.store = Some(StoreUrl::Local(DEV_FILES.into()));
    }
    if std::env::var_os("STEWRD_WEBHOOK_ALLOW_PRIVATE").is_none() {
        // A development machine's tools, webhooks and pages are on loopback.
        config.webhook_allow_private = true;
        tracing::warn!(
            "stewrd dev: webhooks, tools and fetches may reach private addresses \
             (set STEWRD_WEBHOOK_ALLOW_PRIVATE=false to refuse them)"
        );
    }
    let _browser_host = start_browser_host(&mut config).await;
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    let listener = bind(config.listen).await?;
    announce(&listener, &config)?;
    let shutdown = shutdown::on_signal();
    let (api, worker) = tokio::join!(
        stewrd_api::serve(
            config.clone(),
            pool.clone(),
            keys.clone(),
            listener,
            shutdown.clone()
        ),
        stewrd_worker::run(config, pool, keys, shutdown),
    );
    api?;
    worker?;
    Ok(())
}

async fn start_stub(config: &mut Config) -> anyhow::Result<Stub> {
    // A fixed port when free (README walk-throughs name its demo tool).
    let listener = match listen::listener(DEV_STUB) {
        Ok(listener) => listener,
        Err(_) => listen::listener(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("cannot start the stub provider")?,
    };
    let stub = Stub::start(listener, Duration::ZERO, false).await?;
    config.providers.openai = stub.base_url();
    config.providers.openrouter = format!("http://{}/api/v1", stub.address);
    config.default_llm.api_key = Some(SecretString::from("stub-provider-key"));
    let banner = format!(
        "NO STEWRD_DEFAULT_API_KEY SET: answers come from the built-in STUB provider at {}, \
         not from a real model. Set STEWRD_DEFAULT_API_KEY (or a project key) for real answers.",
        stub.base_url()
    );
    eprintln!("\n{}\n!!! {banner}\n{}\n", "!".repeat(80), "!".repeat(80));
    tracing::warn!("{banner}");
    Ok(stub)
}

/// Serves this process's `/metrics` on `address` (a worker has no other listener).
async fn serve_metrics(address: std::net::SocketAddr, config: &Config) -> anyhow::Result<()> {
    let listener = listen::listener(address)
        .with_context(|| format!("cannot listen on {address} (check STEWRD_METRICS_LISTEN)"))?;
    let app = stewrd_api::metrics_only(
        stewrd_shared::runtime::metrics::install(),
        config.metrics_token.clone(),
    );
    // The bound address, not the asked one: with port 0 the kernel picks it,
    // and tests read it here instead of racing for a free port.
    let address = listener.local_addr()?;
    tracing::info!(%address, "worker metrics listening");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

/// Prints the bound address on stdout (tests and scripts read it; port 0 works).
fn announce(listener: &TcpListener, config: &Config) -> anyhow::Result<()> {
    let scheme = if config.listen_tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "stewrd API listening on {scheme}://{}",
        listener.local_addr()?
    );
    Ok(())
}
