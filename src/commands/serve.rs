//! `api`, `worker` and `dev`: the long-running commands.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use secrecy::SecretString;
use stewrd_shared::{config::Config, db, shutdown};
use tokio::net::TcpListener;

use super::{bind, check_broker, connect_db};
use crate::stub::Stub;

pub async fn api(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    let listener = bind(config.listen).await?;
    announce(&listener)?;
    stewrd_api::serve(config, pool, listener, shutdown::on_signal()).await?;
    Ok(())
}

pub async fn worker(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    stewrd_worker::run(config, pool, shutdown::on_signal()).await?;
    Ok(())
}

/// Migrate, then API and worker in one process; with no default key, a stub
/// provider stands in for OpenAI and OpenRouter.
pub async fn dev(mut config: Config) -> anyhow::Result<()> {
    db::migrate::migrate(&config.database)
        .await
        .context("cannot migrate the database (check DATABASE_URL)")?;
    let _stub = match config.default_llm.api_key {
        Some(_) => None,
        None => Some(start_stub(&mut config).await?),
    };
    let config = Arc::new(config);
    let pool = connect_db(&config).await?;
    check_broker(&config).await?;
    let listener = bind(config.listen).await?;
    announce(&listener)?;
    let shutdown = shutdown::on_signal();
    let (api, worker) = tokio::join!(
        stewrd_api::serve(config.clone(), pool.clone(), listener, shutdown.clone()),
        stewrd_worker::run(config, pool, shutdown),
    );
    api?;
    worker?;
    Ok(())
}

async fn start_stub(config: &mut Config) -> anyhow::Result<Stub> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot start the stub provider")?;
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

/// Prints the bound address on stdout (tests and scripts read it; port 0 works).
fn announce(listener: &TcpListener) -> anyhow::Result<()> {
    println!("stewrd API listening on http://{}", listener.local_addr()?);
    Ok(())
}
