//! End-to-end tests: the real `stewrd` binary against real Postgres and RabbitMQ,
//! with a stub provider on its own port. One binary, many modules.

mod agent;
mod agent_faults;
mod approvals;
mod byok;
mod claims;
mod cli;
mod cluster;
mod commits;
mod cost;
mod dashboard;
mod doors;
mod fallback;
mod faults;
mod files;
mod hardening;
mod helpers;
mod infra;
mod mcp;
mod mcp_faults;
mod openapi;
mod operator;
mod outage;
mod path;
mod provider;
mod receiver;
mod requests;
mod schema;
mod streaming;
mod structured;
mod tenants;
mod tls;
mod tool_answers;
mod topology;
mod web_fetch;
mod webhooks;
