//! The `warmline` binary: parses the command line, sets up logging, dispatches.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = warmline::cli::Cli::parse();
    warmline::cli::init_tracing(&cli);
    warmline::cli::exit::exit_code(warmline::cli::run(cli))
}
