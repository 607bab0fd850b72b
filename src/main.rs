//! The `stewrd` binary: a thin CLI over the crates.

fn main() -> std::process::ExitCode {
    stewrd::cli::main()
}
