//! What each subcommand does. Start-up failures carry the name of the setting to
//! fix; `cli::main` prints them on one line.

mod admin;
mod dev_key;
mod serve;

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use stewrd_shared::{
    db::{
        self, Pool,
        migrate::{MigrateReport, SchemaError, pending_migrations},
    },
    ops::rotation::rotate_secrets,
    runtime::{config::Config, telemetry},
};
use tokio::net::TcpListener;

use self::dev_key::{DevKey, master_keys};
use crate::{cli::Command, stub::Stub};

/// Runs one subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    stewrd_shared::runtime::tls::install_crypto_provider();
    match command {
        Command::StubProvider { listen, delay_ms } => return stub_provider(listen, delay_ms).await,
        Command::BrowserHost => return serve::browser_host().await,
        Command::Openapi => {
            // Written, not printed: a closed pipe (`| head`) is an error, not a panic.
            let document = serde_json::to_string_pretty(&stewrd_api::openapi_document())?;
            let mut out = std::io::stdout().lock();
            return std::io::Write::write_all(&mut out, format!("{document}\n").as_bytes())
                .context("cannot write the document");
        }
        Command::Bench {
            scenario,
            jobs,
            clients,
            workers,
            seconds,
            call_spread_ms,
        } => {
            let options = crate::bench::Options {
                jobs,
                clients,
                workers,
                seconds,
                call_spread_ms,
            };
            return crate::bench::run(scenario, options).await;
        }
        _ => {}
    }
    let mut config = Config::from_env()?;
    telemetry::init(config.log_format);
    match command {
        Command::Migrate => migrate(&config).await,
        Command::Api => {
            config.check_admin_token_strength()?;
            serve::api(config).await
        }
        Command::Worker => serve::worker(config).await,
        Command::Dev => serve::dev(config).await,
        Command::Admin { command } => admin::run(&mut config, command).await,
        Command::RotateMasterKey => rotate_master_key(&mut config).await,
        Command::StubProvider { .. }
        | Command::Bench { .. }
        | Command::Openapi
        | Command::BrowserHost => Ok(()),
    }
}

async fn rotate_master_key(config: &mut Config) -> anyhow::Result<()> {
    let keys = master_keys(config, DevKey::UseIfPresent)?;
    let pool = connect_db(config).await?;
    let report = rotate_secrets(&pool, &keys).await?;
    println!(
        "{}",
        serde_json::json!({
            "active_key": keys.active_id(),
            "examined": report.examined,
            "moved": report.moved,
            "failed": report.failed.len(),
        })
    );
    if !report.failed.is_empty() {
        for (project, column, error) in &report.failed {
            tracing::error!(%project, column, %error, "secret not re-encrypted");
        }
        bail!(
            "{} secret(s) could not be decrypted with any key in STEWRD_MASTER_KEYS; keep the old keys until they are fixed",
            report.failed.len()
        );
    }
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let report = apply_migrations(config).await?;
    if report.applied.is_empty() && report.functions.is_empty() {
        println!("database is up to date");
    }
    if !report.applied.is_empty() {
        println!(
            "applied {} migration(s): {}",
            report.applied.len(),
            report.applied.join(", ")
        );
    }
    if !report.functions.is_empty() {
        println!(
            "applied {} stored function(s): {}",
            report.functions.len(),
            report.functions.join(", ")
        );
    }
    Ok(())
}

/// Brings the schema up to date (`stewrd migrate`, and `stewrd dev` first).
pub(crate) async fn apply_migrations(config: &Config) -> anyhow::Result<MigrateReport> {
    match db::migrate::migrate(&config.database, &config.database_tls).await {
        // Not a connection problem: no hint about DATABASE_URL.
        Err(edited @ SchemaError::Edited(_)) => Err(edited.into()),
        migrated => migrated.with_context(|| db_hint(config, "cannot migrate the database")),
    }
}

/// Connects to Postgres and checks the schema is current.
async fn connect_db(config: &Config) -> anyhow::Result<Pool> {
    let pool = db::connect(config)
        .await
        .with_context(|| db_hint(config, "cannot reach Postgres"))?;
    let client = pool
        .get()
        .await
        .with_context(|| db_hint(config, "cannot reach Postgres"))?;
    let pending = pending_migrations(&client).await?;
    if !pending.is_empty() {
        bail!(
            "the database is not migrated ({} pending): run `stewrd migrate`",
            pending.len()
        );
    }
    Ok(pool)
}

/// `what` failed, with the settings to check: a TLS failure's cause is usually in
/// `sslmode` or the CA file.
pub(crate) fn db_hint(config: &Config, what: &str) -> String {
    format!(
        "{what} (check DATABASE_URL; {})",
        config.database_tls.describe()
    )
}

/// Checks RabbitMQ answers, so a wrong `AMQP_URL` fails at start-up.
async fn check_broker(config: &Config) -> anyhow::Result<()> {
    let connection = config
        .broker
        .connect("stewrd-startup-check")
        .await
        // lapin repeats its cause in its own message; one copy is enough.
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| {
            if config.broker.tls() {
                "cannot reach RabbitMQ (check AMQP_URL and STEWRD_AMQP_CA_FILE)"
            } else {
                "cannot reach RabbitMQ (check AMQP_URL)"
            }
        })?;
    let _ = connection.close(200, "ok".into()).await;
    Ok(())
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    crate::listen::listener(address)
        .with_context(|| format!("cannot listen on {address} (check STEWRD_LISTEN)"))
}

async fn stub_provider(listen: SocketAddr, delay_ms: u64) -> anyhow::Result<()> {
    let listener = crate::listen::listener(listen)
        .with_context(|| format!("cannot listen on {listen} (check --listen)"))?;
    let stub = Stub::start(listener, Duration::from_millis(delay_ms), true).await?;
    println!("stub provider listening on {}", stub.base_url());
    let shutdown = stewrd_shared::runtime::shutdown::on_signal();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = stub.stopped() => {}
    }
    Ok(())
}
