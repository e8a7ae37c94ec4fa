//! The `warmline` subcommands. Each is a thin shell over the library: argument parsing, file
//! I/O and printing. `anyhow` lives here and in `main.rs` only.

pub mod check_config;
mod deliver;
mod demo;
pub mod exit;
mod features;
mod feedback;
mod log;
mod outbox;
mod replay;
mod serve;
mod simulate;
pub mod tune;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// warmline: hear frustration on live calls and warm-transfer the caller to a human.
#[derive(Debug, Parser)]
#[command(
    name = "warmline",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 success (also when the reader of stdout goes away), 1 failure \
                  while running, 2 bad input (command line, config, a missing or invalid file)."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text or JSON (one object per line), to stderr.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: log::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: provider media streams in, handoffs out.
    Serve(serve::ServeArgs),
    /// Run recorded calls (WAV or provider JSONL) through the live pipeline, as fast as possible.
    Replay(replay::ReplayArgs),
    /// Print per-frame prosody of a WAV file as CSV.
    Features(features::FeaturesArgs),
    /// Evaluate the tone detector on labelled recordings, sweep thresholds, write a model file.
    Tune(tune::TuneArgs),
    /// Start a local gateway and stream a bundled example call into it as Twilio would.
    Demo(demo::DemoArgs),
    /// Open many concurrent provider media streams against a gateway and measure it.
    Simulate(simulate::SimulateArgs),
    /// Turn handoff feedback and review labels from the store into JSON-lines labels.
    ExportLabels(feedback::ExportLabelsArgs),
    /// Validate a config file and print the effective configuration, secrets masked.
    CheckConfig(check_config::CheckConfigArgs),
    /// Inspect the handoff outbox and retry failed deliveries.
    Outbox(outbox::OutboxArgs),
    /// Fleet mode: deliver the fleet's handoffs from NATS JetStream, without taking calls.
    Deliver(deliver::DeliverArgs),
}

pub use log::LogFormat;

/// Logs go to stderr ([`log`]); stdout is for results. The demo prints its own timeline, so its logs
/// default to warnings only.
pub fn init_tracing(cli: &Cli) {
    let quiet = matches!(
        cli.command,
        Command::Demo(_) | Command::Replay(_) | Command::Features(_) | Command::Simulate(_)
    );
    let default = match cli.verbose {
        0 if quiet => "warmline=warn",
        0 => "warmline=info",
        1 => "warmline=debug",
        _ => "warmline=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    log::init(filter, cli.log_format);
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Features(a) => features::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Tune(a) => tune::run(&a),
        Command::ExportLabels(a) => feedback::run(&a),
        Command::CheckConfig(a) => check_config::run(&a),
        Command::Outbox(a) => outbox::run(a),
        Command::Deliver(a) => deliver::run(a),
    }
}

pub(crate) use serve::shutdown_signal;

/// Reads the config file (or defaults) with secrets from the process environment.
pub(crate) fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(crate::config::Config::load(path, &env)?)
}

/// Pipeline settings from a config: loads the tone model file when one is named.
pub(crate) fn pipeline_settings(
    cfg: &crate::config::Config,
) -> anyhow::Result<crate::pipeline::PipelineSettings> {
    let model = match &cfg.detector.model {
        Some(p) => crate::detect::tone::ToneModel::load(p)?,
        None => crate::detect::tone::ToneModel::bundled(),
    };
    Ok(crate::pipeline::PipelineSettings {
        dsp: cfg.dsp.clone(),
        detector: cfg.detector.clone(),
        model: std::sync::Arc::new(model),
        audio_tap: None,
        hold_baseline_on_tone: true,
        playbook: std::sync::Arc::new(cfg.playbook()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed_and_simulate_takes_an_optional_wav_before_the_url() {
        Cli::command().debug_assert();
        for (argv, wav) in [
            (&["warmline", "simulate", "ws://127.0.0.1:1"][..], None),
            (
                &["warmline", "simulate", "a.wav", "ws://127.0.0.1:1"][..],
                Some("a.wav"),
            ),
        ] {
            let Command::Simulate(a) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not simulate");
            };
            assert_eq!(a.url(), "ws://127.0.0.1:1");
            assert_eq!(a.input().and_then(|p| p.to_str()), wav);
        }
    }
}
