//! The vocabulary every layer speaks: ids, statuses and failure codes, the
//! tools a model is offered and the calls it makes, token usage, text rules,
//! and which provider and model serve a run. Nothing here reads the store, the
//! configuration or the network.

pub mod agent;
pub mod approval;
pub mod browser;
pub mod budget;
pub mod file;
pub mod id;
pub mod limits;
pub mod llm;
pub mod mcp;
pub mod model;
pub mod price;
pub mod structured;
pub mod text;
pub mod usage;
