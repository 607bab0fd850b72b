//! How a process runs: its configuration (read once at start-up), the
//! RabbitMQ nodes it reaches, TLS towards Postgres, RabbitMQ and clients, telemetry and metrics, retry pauses,
//! shutdown, and the guard on where outgoing requests may go (and the client that
//! applies it).

pub mod arrivals;
pub mod broker;
pub mod config;
pub mod metrics;
pub mod outbound;
pub mod retry;
pub mod setting;
pub mod shutdown;
pub mod ssrf;
pub mod telemetry;
pub mod tls;
