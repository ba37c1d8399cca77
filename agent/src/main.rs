//! The `weir` binary: the agent and its CLI (see `weir::cli`).

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
