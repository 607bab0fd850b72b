//! What the API and the worker share, by layer, each using only those below it:
//!
//! - `domain`: the vocabulary (ids, statuses, tools, usage, the provider
//!   choice), with no store, configuration or I/O;
//! - `runtime`: how a process runs (configuration, TLS, telemetry, metrics,
//!   retries, shutdown, the SSRF guard);
//! - `secrets`: encryption under the master keys, API keys, webhook
//!   signatures, redaction;
//! - `db`: the store (Postgres: the pool, migrations, one module per table),
//!   which makes no secrets and runs no use case;
//! - `files`: files' bytes, sealed, in the object store (the local disk or
//!   S3), with their rows;
//! - `mcp`: the MCP client (Streamable HTTP) and the sealing of the headers
//!   projects send their MCP servers;
//! - `queue`: RabbitMQ (topology, the outbox relay, live text);
//! - `view`: what clients see of the store's rows;
//! - `ops`: the operator's actions (creating projects and keys, rotating the
//!   master key), shared by the admin API, the dashboard and the CLI.
//!
//! No HTTP server and no consumer loop live here; those belong to `api` and `worker`.

pub mod db;
pub mod domain;
pub mod files;
pub mod mcp;
pub mod ops;
pub mod queue;
pub mod runtime;
pub mod secrets;
pub mod view;
