//! Command-line parsing and the top-level error report: a command that cannot
//! work exits non-zero with one line on stderr naming what to fix.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::commands;

/// stewrd: durable, bring-your-own-key AI agent jobs over HTTP.
#[derive(Debug, Parser)]
#[command(name = "stewrd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything local in one process: migrate, API, worker, relay (and a stub
    /// provider when no default provider key is set).
    Dev,
    /// The HTTP API only.
    Api,
    /// One worker process; run several to scale out.
    Worker,
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Re-encrypt every stored secret under the active (first) master key.
    RotateMasterKey,
    /// Print the OpenAPI document (what `GET /openapi.json` serves), for
    /// clients' generated types; needs no database.
    Openapi,
    /// Measure throughput, latency and footprint against real Postgres and RabbitMQ
    /// (in a throwaway database and queue prefix), and print the figures.
    Bench {
        #[arg(value_enum)]
        scenario: crate::bench::Scenario,
        /// Jobs to submit (per scenario default otherwise).
        #[arg(long)]
        jobs: Option<u64>,
        /// Concurrent clients.
        #[arg(long)]
        clients: Option<usize>,
        /// Worker processes.
        #[arg(long)]
        workers: Option<usize>,
        /// Seconds of open-loop load.
        #[arg(long)]
        seconds: Option<u64>,
        /// `latency`: the stub's answers take 0 to this many milliseconds,
        /// call by call, so results come apart as real calls' do (default 0:
        /// every answer at once).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600_000))]
        call_spread_ms: Option<u64>,
    },
    /// Browsers for agent runs (Chromium, one per run), for workers to reach
    /// at `STEWRD_BROWSER_HOST_URL`; reads no database and no master key.
    BrowserHost,
    /// The stub provider alone (OpenAI-compatible, for local use and tests).
    StubProvider {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// Delay of every unscripted answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a project; prints its id and first API key (shown this once).
    CreateProject {
        #[arg(long)]
        name: String,
    },
    /// Issue another API key for a project (shown this once).
    CreateKey {
        #[arg(long)]
        project: String,
    },
    /// Revoke an API key by its id.
    RevokeKey {
        #[arg(long)]
        key: String,
    },
}

/// Parses the command line, runs the command, reports failure in one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stewrd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stewrd: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, down to Postgres's own message and
/// without its DETAIL and HINT: those quote the values a statement carried
/// (a failing row, a duplicate key), and run over several lines.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        if let Some(db) = cause.downcast_ref::<tokio_postgres::error::DbError>() {
            parts.push(format!("{}: {}", db.severity(), db.message()));
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}
