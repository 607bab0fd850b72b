//! The HTTP API: authentication, validation, the session and project routes, and
//! the long-poll fan-out. `serve` runs it with its outbox relay and status listener.

mod auth;
mod dashboard;
mod detach;
mod error;
mod extract;
mod feed;
mod headers;
mod listener;
mod openapi;
mod request_id;
mod routes;
mod server;
mod startup;
mod state;
mod throttle;
mod watch;

pub use openapi::document as openapi_document;
pub use routes::health::metrics_only;
pub use startup::{router, serve};
pub use state::AppState;
pub use watch::SessionWatch;
