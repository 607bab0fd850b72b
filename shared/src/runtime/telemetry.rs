//! Logging set-up: one subscriber for every command, pretty or JSON, filtered by
//! `RUST_LOG`. Logs go to stderr so that commands which print results (such as
//! `admin create-project`) keep stdout clean.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::runtime::config::LogFormat;

/// What is logged when `RUST_LOG` is unset: our own crates at info, chatty
/// libraries at warn.
const DEFAULT_FILTER: &str = "info,lapin=warn,amq_protocol=warn,tokio_postgres=warn,hyper=warn";

/// Installs the global subscriber and the panic hook. Safe to call once per process.
pub fn init(format: LogFormat) {
    log_panics_without_their_message();
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

/// Replaces the default panic hook, which prints the panic's message: that text
/// can quote whatever the failing code held (a slicing panic quotes the whole
/// string it cut, a provider key included). The log gets where it happened, in
/// the span it happened in (the run's ids), and never the message.
fn log_panics_without_their_message() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".to_owned());
        let thread = std::thread::current();
        tracing::error!(
            %location,
            thread = thread.name().unwrap_or("unnamed"),
            "panic (its message is withheld: it may quote a secret)"
        );
    }));
}
