//! Temporary driver for `warmline tune` until the lead wires it into the CLI.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: warmline::cli::tune::TuneArgs,
}

fn main() -> anyhow::Result<()> {
    warmline::cli::tune::run(&Cli::parse().args)
}
