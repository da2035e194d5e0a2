//! The `switchboard` command: the CLI over `switchboard-core` and the local stack.

mod cli;
mod cmd;
pub mod console;
pub mod lambda;
mod logging;
mod output;
mod paths;

use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Parses the command line, runs the command, and maps the result to an exit
/// code: 0 ok, 1 failure, 2 usage (from clap).
pub fn run() -> ExitCode {
    // Started by the Lambda runtime (as `bootstrap`, with no arguments).
    let cli = if lambda::detected() && std::env::args_os().len() == 1 {
        Cli::parse_from(["switchboard", "lambda"])
    } else {
        Cli::parse()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cmd::dispatch(cli));
    // Stop every task (and with them every gateway), then let go of the
    // embedding model while ONNX Runtime is still whole.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    switchboard_core::discovery::embedder::release_shared_models();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
