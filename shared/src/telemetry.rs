//! Logging set-up: one subscriber for every command, pretty or JSON, filtered by
//! `RUST_LOG`. Logs go to stderr so that commands which print results (such as
//! `admin create-project`) keep stdout clean.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// What is logged when `RUST_LOG` is unset: our own crates at info, chatty
/// libraries at warn.
const DEFAULT_FILTER: &str = "info,lapin=warn,amq_protocol=warn,tokio_postgres=warn,hyper=warn";

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let layer = fmt::layer().with_writer(std::io::stderr);
    // A second init (tests embedding the app) keeps the first subscriber.
    let _ = match format {
        LogFormat::Pretty => registry.with(layer.with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    // The innermost span carries the ids (request, run, session).
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
}
