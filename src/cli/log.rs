//! Log output: human text or one JSON object per line, to stderr. Peers choose call ids,
//! stream ids and message text, so no field may forge a line or drive a terminal: the text
//! format escapes every control character in every field (newline, carriage return, ESC) and
//! JSON escapes them by construction. Colour only when stderr is a terminal, never into files.

use clap::ValueEnum;
use std::fmt::Write as _;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::MakeWriter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, ...).
    Json,
}

/// Installs the global subscriber (no-op when one is already set).
pub(crate) fn init(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    let _ =
        tracing::subscriber::set_global_default(subscriber(filter, format, ansi, std::io::stderr));
}

/// The subscriber `init` installs, writing to `writer`.
pub(crate) fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
        LogFormat::Text => Box::new(
            builder
                .with_ansi(ansi)
                .fmt_fields(
                    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                        let text = format!("{value:?}");
                        if field.name() == "message" {
                            write!(w, "{}", Escaped(&text))
                        } else {
                            write!(w, "{field}={}", Escaped(&text))
                        }
                    })
                    .delimited(" "),
                )
                .finish(),
        ),
    }
}

/// Writes `s` with every control character as a Rust escape (`\n`, `\u{1b}`).
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_forgery(format: LogFormat) -> String {
        let buf = Buf::default();
        let b = buf.clone();
        let sub = subscriber(
            tracing_subscriber::EnvFilter::new("info"),
            format,
            false,
            move || b.clone(),
        );
        let forged = "CA1\n2026-12-06T00:00:00Z  INFO call ended\r\u{1b}[31mred";
        tracing::subscriber::with_default(sub, || {
            tracing::info!(call_id = %forged, "call started: {forged}");
            tracing::warn!(call_id = forged, "second");
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn peer_strings_cannot_forge_lines_or_colour_in_text_logs() {
        let out = log_forgery(LogFormat::Text);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        assert!(out.contains(r"CA1\n2026"), "{out}");
        assert!(out.contains(r"\u{1b}[31mred"), "{out}");
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let out = log_forgery(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).expect(l);
            assert!(
                v["fields"]["call_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("CA1\n")
            );
        }
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }
}
