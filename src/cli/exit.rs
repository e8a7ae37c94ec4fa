//! Exit status of the `warmline` binary, as Unix tools have it: a closed pipe downstream
//! (`warmline features x.wav | head`) ends the run quietly, and the status tells bad input
//! from a failure while running, so scripts can tell "fix your file" from "retry".

use std::io::ErrorKind;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// The run failed while working (a network peer, the disk, the server).
pub const FAILED: u8 = 1;
/// Bad input: the command line, a config file, or an input file that is missing, unreadable or
/// invalid. The same status clap gives a usage error.
pub const BAD_INPUT: u8 = 2;

/// What the binary does with an error that ended a subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reader of stdout went away: nothing to say, nothing wrong with us.
    QuietPipe,
    /// Report it and exit with this status.
    Report(u8),
}

/// Classifies an error by what is in its chain.
pub fn classify(err: &anyhow::Error) -> Outcome {
    let mut input = false;
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::BrokenPipe => return Outcome::QuietPipe,
                ErrorKind::NotFound
                | ErrorKind::PermissionDenied
                | ErrorKind::InvalidData
                | ErrorKind::InvalidInput
                | ErrorKind::UnexpectedEof => input = true,
                _ => {}
            }
        }
        // serde_json's writer errors hide the io::Error from `source()`.
        if let Some(j) = cause.downcast_ref::<serde_json::Error>()
            && j.io_error_kind() == Some(ErrorKind::BrokenPipe)
        {
            return Outcome::QuietPipe;
        }
        input |= cause.is::<crate::config::ConfigError>()
            || cause.is::<crate::bridge::ConfigError>()
            || cause.is::<crate::detect::DetectorConfigError>()
            || cause.is::<crate::detect::tone::ModelError>()
            || cause.is::<crate::detect::playbook::PlaybookError>()
            || cause.is::<crate::replay::ReplayError>()
            || cause.is::<crate::protocol::CallIdError>()
            || cause.is::<crate::codec::CodecError>()
            || cause.is::<crate::dsp::DspError>()
            || matches!(
                cause.downcast_ref::<crate::tune::TuneError>(),
                Some(crate::tune::TuneError::Labels { .. } | crate::tune::TuneError::Model(_))
            );
    }
    Outcome::Report(if input { BAD_INPUT } else { FAILED })
}

/// The process exit code for a finished run.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => match classify(&e) {
            Outcome::QuietPipe => ExitCode::from(OK),
            Outcome::Report(code) => {
                eprintln!("warmline: error: {e:#}");
                ExitCode::from(code)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_quiet() {
        let e = Err::<(), _>(std::io::Error::from(ErrorKind::BrokenPipe))
            .context("writing CSV")
            .unwrap_err();
        assert_eq!(classify(&e), Outcome::QuietPipe);
        // As `serde_json::to_writer` into a closed stdout reports it (`replay | head`).
        let json = serde_json::Error::io(std::io::Error::from(ErrorKind::BrokenPipe));
        let e = anyhow::Error::new(json).context("writing events");
        assert_eq!(classify(&e), Outcome::QuietPipe);
    }

    #[test]
    fn bad_input_and_failures_get_different_statuses() {
        let missing = Err::<(), _>(std::io::Error::from(ErrorKind::NotFound))
            .context("reading x.wav")
            .unwrap_err();
        assert_eq!(classify(&missing), Outcome::Report(BAD_INPUT));
        let cfg = crate::config::ConfigError::Invalid {
            key: "server.max_calls".into(),
            reason: "must be at least 1".into(),
        };
        let cfg = anyhow::Error::new(cfg).context("loading warmline.toml");
        assert_eq!(classify(&cfg), Outcome::Report(BAD_INPUT));
        let refused = Err::<(), _>(std::io::Error::from(ErrorKind::ConnectionRefused))
            .context("connecting")
            .unwrap_err();
        assert_eq!(classify(&refused), Outcome::Report(FAILED));
    }
}
