//! `warmline replay`

use crate::event::EventKind;
use crate::protocol::Provider;
use crate::replay::{CallReport, replay_file};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// JSON Lines, one event per line (the contract's event objects).
    Json,
    /// A readable timeline per call.
    Text,
}

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// TOML configuration (detector model and thresholds, DSP settings).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write an SVG per call: F0 and energy against the caller's baseline, speaking rate, tone
    /// score with its threshold, signals and the handoff. With several inputs, FILE's stem gets
    /// the call's name appended.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Transcript JSONL for a single input (default: the sidecar X.transcript.jsonl).
    #[arg(long, value_name = "FILE.jsonl")]
    transcript: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Provider format of .jsonl inputs (default: detected from the first messages).
    #[arg(long, value_name = "NAME")]
    provider: Option<String>,
    /// Parallel jobs (default: number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Recordings: .wav (any rate; stereo = caller left, agent right) or .jsonl provider streams.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(args.config.as_deref())?;
    let settings = Arc::new(super::pipeline_settings(&cfg)?);
    if args.transcript.is_some() && args.inputs.len() > 1 {
        anyhow::bail!(
            "--transcript names one transcript, but {} inputs were given (use sidecar files)",
            args.inputs.len()
        );
    }
    let provider: Option<Provider> = args.provider.as_deref().map(str::parse).transpose()?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, args.inputs.len().max(1));
    let trace = args.plot.is_some();
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<CallReport, crate::replay::ReplayError>>>> =
        args.inputs
            .iter()
            .map(|_| std::sync::Mutex::new(None))
            .collect();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = args.inputs.get(i) else {
                        break;
                    };
                    let r = replay_file(
                        input,
                        args.transcript.as_deref(),
                        provider,
                        &settings,
                        trace,
                    );
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let many = args.inputs.len() > 1;
    for slot in results {
        let r = slot.into_inner().ok().flatten();
        let report = match r {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                eprintln!("warmline replay: {e}");
                failed = true;
                continue;
            }
            None => continue,
        };
        for e in &report.errors {
            eprintln!("warmline replay: {e}");
            failed = true;
        }
        match args.format {
            Format::Json => {
                for e in &report.events {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
            }
            Format::Text => {
                out.write_all(timeline(&report, settings.model.threshold).as_bytes())?
            }
        }
        if let Some(plot) = &args.plot {
            let path = if many {
                per_call_path(plot, &report.call_id)
            } else {
                plot.clone()
            };
            crate::plot::write_call_svg(&path, &report, f64::from(settings.model.threshold))
                .with_context(|| format!("writing plot {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn per_call_path(plot: &Path, call: &str) -> PathBuf {
    let stem = plot.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
    let safe = crate::protocol::token_safe(call);
    plot.with_file_name(format!("{stem}-{safe}.svg"))
}

fn clock(t_ms: u64) -> String {
    format!(
        "{:02}:{:02}.{:01}",
        t_ms / 60_000,
        (t_ms / 1000) % 60,
        (t_ms % 1000) / 100
    )
}

/// A readable timeline of one call.
pub(crate) fn timeline(r: &CallReport, tone_threshold: f32) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "== {} ({})", r.call_id, r.input.display());
    for e in &r.events {
        let t = clock(e.t_ms);
        match &e.kind {
            EventKind::CallStarted(c) => {
                let tracks: Vec<&str> = c.tracks.iter().map(|t| t.name()).collect();
                let _ = writeln!(
                    s,
                    "{t}  call started: {} {} {} Hz, tracks {}",
                    c.provider,
                    c.codec,
                    c.sample_rate_hz,
                    tracks.join("+")
                );
            }
            EventKind::Prosody(p) => {
                let f0 = p
                    .f0_hz
                    .map_or("   -  ".to_owned(), |f| format!("{f:4.0} Hz"));
                let bar_len = (p.tone_score * 20.0).round() as usize;
                let mark = if p.tone_score >= f64::from(tone_threshold) {
                    " !"
                } else {
                    ""
                };
                let rel = match (p.f0_rel_st, p.energy_rel_db) {
                    (Some(f), Some(e)) => format!(" ({f:+.1} st, {e:+.1} dB vs baseline)"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "{t}  {:<6} F0 {f0}  {:5.1} dBFS  {:3.1} syl/s{rel}  tone {:.2} {}{mark}",
                    p.track.name(),
                    p.energy_db,
                    p.rate_sps,
                    p.tone_score,
                    "#".repeat(bar_len)
                );
            }
            EventKind::Signal(sig) => {
                let quote = sig
                    .evidence
                    .text
                    .as_deref()
                    .map(|q| format!(" \"{q}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "{t}  SIGNAL {} = {:.2} (threshold {:.2}){quote}",
                    sig.signal.name(),
                    sig.value,
                    sig.threshold
                );
            }
            EventKind::Handoff(h) => {
                let _ = writeln!(s, "{t}  >>> HANDOFF {} score {:.2}", h.handoff_id, h.score);
                for reason in &h.reasons {
                    let _ = writeln!(
                        s,
                        "          because {} = {:.2} >= {:.2} ({}..{})",
                        reason.signal.name(),
                        reason.value,
                        reason.threshold,
                        clock(reason.evidence.from_ms),
                        clock(reason.evidence.to_ms)
                    );
                }
                let _ = writeln!(s, "          intent: {}", h.summary.caller_intent);
                let _ = writeln!(s, "          why now: {}", h.summary.why_now);
                let _ = writeln!(s, "          voice: {}", h.summary.prosody.description);
                let _ = writeln!(s, "          whisper: \"{}\"", h.summary.whisper);
            }
            EventKind::HandoffDelivered(d) | EventKind::HandoffFailed(d) => {
                let _ = writeln!(
                    s,
                    "{t}  delivery {} to {}: attempts {}",
                    d.handoff_id, d.target, d.attempts
                );
            }
            // Replay never transfers a call.
            EventKind::HandoffConnected(_)
            | EventKind::HandoffFallback(_)
            | EventKind::HandoffAbandoned(_) => {}
            EventKind::CallEnded(c) => {
                let _ = writeln!(
                    s,
                    "{t}  call ended ({}): {} frames, {} dropped, handoff: {}",
                    c.reason,
                    c.frames,
                    c.dropped_frames,
                    if c.handoff { "yes" } else { "no" }
                );
            }
        }
    }
    s
}
