//! The `stewrd` command: subcommands that compose the `api`, `worker` and
//! `shared` crates, and the stub provider used by `stewrd dev` and the tests.

mod bench;
pub mod cli;
mod commands;
pub mod listen;
pub mod stub;
