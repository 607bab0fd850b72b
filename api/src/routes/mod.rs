//! One module per resource, each with its own `router()`.

pub mod admin;
pub mod agent;
pub mod approvals;
pub mod events;
pub mod files;
pub mod health;
pub mod mcp;
pub mod prices;
pub mod project;
pub mod sessions;
pub mod steps;
pub mod tools;
pub mod usage;
