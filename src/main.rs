//! The `tidings` binary: parse the command line, set up logging, dispatch.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tidings::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon says what it does; one-shot commands speak only of trouble.
    let default = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_env("TIDINGS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    tidings::cli::run(cli)
}
