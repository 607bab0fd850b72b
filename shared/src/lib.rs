//! What the API and the worker share: configuration, ids and domain types, the
//! Postgres pool and tables, crypto, the queue topology and the outbox relay.
//!
//! No HTTP server and no consumer loop live here; those belong to `api` and `worker`.

pub mod agent;
pub mod config;
pub mod crypto;
pub mod db;
pub mod id;
pub mod listen;
pub mod llm;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ops;
pub mod queue;
pub mod redact;
pub mod retry;
pub mod rotation;
pub mod shutdown;
pub mod ssrf;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod token;
pub mod view;
pub mod webhook;
