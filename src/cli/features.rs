//! `warmline features`

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Hop between frames in ms: 20 (as the live pipeline) or 10 (finer contours).
    #[arg(long, default_value_t = 20, value_name = "N")]
    hop_ms: u32,
    /// A WAV file (any rate; the left channel of a stereo file is analysed).
    #[arg(value_name = "INPUT.wav")]
    input: PathBuf,
}

pub(crate) fn run(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let (rate, channels) = crate::replay::read_wav(&args.input)?;
    let cfg = crate::dsp::DspConfig {
        hop_ms: args.hop_ms,
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    crate::dsp::write_features_csv(&channels[0], rate, &cfg, out)
        .with_context(|| format!("analysing {}", args.input.display()))?;
    Ok(ExitCode::SUCCESS)
}
