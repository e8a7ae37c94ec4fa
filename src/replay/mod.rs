//! Offline runs of recorded calls through the live pipeline: WAV files (any rate; stereo =
//! caller left, agent right) and recorded provider streams (JSON Lines, one WebSocket text
//! message per line), with transcript sidecars. No replay-only decision logic: WAV audio goes
//! into [`CallPipeline`] in 20 ms chunks, provider streams through [`Call`] exactly as `serve`.

use crate::detect::TranscriptLine;
use crate::dsp::Baseline;
use crate::event::{Event, Track};
use crate::pipeline::{Call, CallInfo, CallPipeline, FrameStats, PipelineSettings, TracePoint};
use crate::protocol::Provider;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod wav;
pub use wav::{WavStream, read_wav};

/// A replay input could not be (fully) read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a readable WAV file.
    #[error("{path}: not a readable WAV file: {detail}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's description.
        detail: String,
    },
    /// The file holds no audio or no messages.
    #[error("{path}: empty input")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line of a JSON Lines input is bad.
    #[error("{path}:{line}: {detail}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// An input kind replay does not know.
    #[error("{path}: unsupported input (expected .wav or .jsonl)")]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
}

/// The outcome of one replayed call.
#[derive(Debug, Default)]
pub struct CallReport {
    /// The input file.
    pub input: PathBuf,
    /// Call id (provider call id, or the WAV's file stem).
    pub call_id: String,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Caller prosody trace (when asked for).
    pub trace: Vec<TracePoint>,
    /// The caller's baseline at the end.
    pub baseline: Option<Baseline>,
    /// Problems met on the way (the call still produced what it could).
    pub errors: Vec<ReplayError>,
    /// Media duration.
    pub duration_ms: u64,
}

/// The sidecar transcript for an input: `X.transcript.jsonl` beside `X.wav`, or beside
/// `X.<provider>.jsonl`.
pub fn sidecar_transcript(input: &Path) -> Option<PathBuf> {
    let name = input.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".wav")
        .or_else(|| name.strip_suffix(".jsonl"))?;
    let stem = Provider::ALL
        .iter()
        .find_map(|p| stem.strip_suffix(&format!(".{}", p.name())))
        .unwrap_or(stem);
    if stem.ends_with(".transcript") {
        return None;
    }
    let candidate = input.with_file_name(format!("{stem}.transcript.jsonl"));
    candidate.is_file().then_some(candidate)
}

/// Reads a transcript JSONL; bad lines are errors naming file and line.
pub fn read_transcript(path: &Path) -> Result<Vec<TranscriptLine>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line: TranscriptLine = serde_json::from_str(l).map_err(|e| ReplayError::Line {
            path: path.to_owned(),
            line: i + 1,
            detail: format!("bad transcript line: {e}"),
        })?;
        lines.push(line);
    }
    Ok(lines)
}

/// Replays one input through the pipeline.
pub fn replay_file(
    input: &Path,
    transcript: Option<&Path>,
    provider: Option<Provider>,
    settings: &Arc<PipelineSettings>,
    trace: bool,
) -> Result<CallReport, ReplayError> {
    let transcript_path = transcript
        .map(Path::to_path_buf)
        .or_else(|| sidecar_transcript(input));
    let lines = match &transcript_path {
        Some(p) => read_transcript(p)?,
        None => Vec::new(),
    };
    let ext = input
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut report = match ext.as_str() {
        "wav" => replay_wav(input, lines, settings, trace)?,
        "jsonl" | "json" => replay_jsonl(input, lines, provider, settings, trace)?,
        _ => {
            return Err(ReplayError::Unsupported {
                path: input.to_owned(),
            });
        }
    };
    report.input = input.to_owned();
    Ok(report)
}

fn replay_wav(
    path: &Path,
    lines: Vec<TranscriptLine>,
    settings: &Arc<PipelineSettings>,
    trace: bool,
) -> Result<CallReport, ReplayError> {
    let mut wav = WavStream::open(path)?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("call");
    // A file name may hold anything; events, logs and outbox entries get a safe id.
    let call_id = crate::protocol::CallId::from_name(name);
    let rate = wav.sample_rate_hz();
    let channels = wav.channels();
    let chunk = chunk_samples(rate);
    let mut read_any = false;
    let report = drive(
        call_id.as_str(),
        rate,
        channels,
        lines,
        settings,
        trace,
        |e| ReplayError::Wav {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        |block| {
            let more = wav.read_block(chunk, block)?;
            read_any |= more;
            Ok(more)
        },
    )?;
    if !read_any {
        return Err(ReplayError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(report)
}

/// Samples per 20 ms chunk at `rate`, the size every driver feeds the pipeline in.
fn chunk_samples(rate: u32) -> usize {
    (rate as usize / 50).max(1)
}

/// Replays decoded PCM (one channel: the caller; two: caller and agent) through
/// [`CallPipeline`] in 20 ms chunks, as `warmline replay` does with a WAV file. `tune` scores
/// its clips through this very function, so its numbers are the ones replay prints.
pub fn replay_pcm(
    call_id: &str,
    rate: u32,
    channels: &[Vec<i16>],
    lines: Vec<TranscriptLine>,
    settings: &PipelineSettings,
    trace: bool,
) -> Result<CallReport, crate::dsp::DspError> {
    let chunk = chunk_samples(rate);
    let mut start = 0usize;
    drive(
        call_id,
        rate,
        channels.len(),
        lines,
        settings,
        trace,
        |e| e,
        |block| {
            let mut more = false;
            for (ch, out) in channels.iter().zip(block.iter_mut()) {
                out.clear();
                if let Some(s) = ch.get(start..(start + chunk).min(ch.len())) {
                    out.extend_from_slice(s);
                    more |= !s.is_empty();
                }
            }
            start += chunk;
            Ok(more)
        },
    )
}

/// The one loop that feeds PCM to [`CallPipeline`]: `next` fills one 20 ms block per channel
/// (caller first, then agent; a channel that ran out is left empty) and says whether there was
/// any audio; the transcript lines go in first, stamped with their own media time.
#[allow(clippy::too_many_arguments)]
fn drive<E>(
    call_id: &str,
    rate: u32,
    channels: usize,
    lines: Vec<TranscriptLine>,
    settings: &PipelineSettings,
    trace: bool,
    dsp_error: impl FnOnce(crate::dsp::DspError) -> E,
    mut next: impl FnMut(&mut [Vec<i16>]) -> Result<bool, E>,
) -> Result<CallReport, E> {
    let call_id = crate::protocol::CallId::from_name(call_id);
    let tracks: Vec<Track> = if channels == 2 {
        vec![Track::Caller, Track::Agent]
    } else {
        vec![Track::Caller]
    };
    let info = CallInfo {
        call_id: call_id.clone(),
        provider: crate::event::CallSource::Wav,
        codec: crate::codec::Codec::L16,
        sample_rate_hz: rate,
        tracks: tracks.clone(),
        stream_id: None,
        custom_parameters: Default::default(),
    };
    let (mut p, started) = CallPipeline::new(info, settings).map_err(dsp_error)?;
    if trace {
        p.enable_trace();
    }
    let mut events = vec![started];
    for line in lines {
        p.push_transcript(line, &mut events);
    }
    let mut block = vec![Vec::with_capacity(chunk_samples(rate)); tracks.len()];
    let mut frames = 0u64;
    while next(&mut block)? {
        for (samples, t) in block.iter().zip(&tracks) {
            if !samples.is_empty() {
                p.push_audio(*t, samples, &mut events);
                frames += 1;
            }
        }
    }
    p.finish(
        FrameStats {
            frames,
            dropped_frames: 0,
        },
        "end_of_input",
        &mut events,
    );
    Ok(CallReport {
        call_id: call_id.into(),
        duration_ms: p.now_ms(),
        trace: p.trace().to_vec(),
        baseline: p.caller_baseline(),
        events,
        ..Default::default()
    })
}

/// The provider of a recorded stream, from its first messages: each adapter's detection rule
/// is asked ([`Provider::detect`]); a recording none recognises is an error, not a guess.
pub fn detect_provider(text: &str) -> Result<Provider, crate::protocol::ProtocolError> {
    Provider::detect(text)
}

fn replay_jsonl(
    path: &Path,
    lines: Vec<TranscriptLine>,
    provider: Option<Provider>,
    settings: &Arc<PipelineSettings>,
    trace: bool,
) -> Result<CallReport, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Err(ReplayError::Empty {
            path: path.to_owned(),
        });
    }
    let provider = match provider {
        Some(p) => p,
        None => detect_provider(&text).map_err(|e| ReplayError::Line {
            path: path.to_owned(),
            line: 1,
            detail: e.to_string(),
        })?,
    };
    // A recording whose stream names no call (Vonage without headers) is named after its file.
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut call = Call::new(provider, settings.clone(), &stem);
    let mut events = Vec::new();
    for line in lines {
        call.push_transcript(line, &mut events);
    }
    let mut errors = Vec::new();
    let mut reason = "end_of_input";
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let started = call.pipeline().is_some();
        match call.on_text(l, &mut events) {
            Ok(_) => {}
            Err(e) if e.is_recoverable() => errors.push(ReplayError::Line {
                path: path.to_owned(),
                line: i + 1,
                detail: format!("skipped: {e}"),
            }),
            Err(e) => {
                errors.push(ReplayError::Line {
                    path: path.to_owned(),
                    line: i + 1,
                    detail: format!("{e} (the stream ends here, as a live call would be closed)"),
                });
                reason = "protocol_error";
                break;
            }
        }
        if trace
            && !started
            && let Some(p) = call.pipeline_mut()
        {
            p.enable_trace();
        }
        if call.is_stopped() {
            reason = "stop";
            break;
        }
    }
    call.finish(reason, &mut events);
    let call_id = call
        .start()
        .map(|s| s.call_id.to_string())
        .unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("call")
                .to_owned()
        });
    let p = call.pipeline();
    Ok(CallReport {
        call_id,
        duration_ms: p.map_or(0, CallPipeline::now_ms),
        trace: p.map(|p| p.trace().to_vec()).unwrap_or_default(),
        baseline: p.and_then(CallPipeline::caller_baseline),
        events,
        errors,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("a.transcript.jsonl");
        std::fs::write(&t, "").unwrap();
        assert_eq!(
            sidecar_transcript(&dir.path().join("a.wav")),
            Some(t.clone())
        );
        assert_eq!(
            sidecar_transcript(&dir.path().join("a.twilio.jsonl")),
            Some(t.clone())
        );
        assert_eq!(sidecar_transcript(&dir.path().join("b.wav")), None);
        assert_eq!(sidecar_transcript(&t), None);
    }

    #[test]
    fn corrupt_and_empty_wavs_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, "").unwrap();
        let err = read_wav(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.wav") && err.contains("empty"), "{err}");
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
        let err = read_wav(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.wav") && err.contains("WAV"), "{err}");
    }

    #[test]
    fn a_malformed_jsonl_line_is_named_and_the_call_still_ends() {
        let dir = tempfile::tempdir().unwrap();
        let pcm = crate::synth::speech(&[crate::synth::Segment::calm(1.0, 120.0)], 8000, 3);
        let msgs = Provider::Twilio.render(
            &crate::protocol::RenderSpec::new("CA1", crate::codec::Codec::Mulaw, 8000),
            &pcm,
            None,
        );
        let mut text: Vec<String> = msgs
            .iter()
            .filter_map(|m| match m {
                crate::protocol::WireMessage::Text(t) => Some(t.clone()),
                crate::protocol::WireMessage::Binary(_) => None,
            })
            .collect();
        text.insert(10, "{not json".into());
        let path = dir.path().join("call.twilio.jsonl");
        std::fs::write(&path, text.join("\n")).unwrap();
        let settings = Arc::new(PipelineSettings::default());
        let r = replay_file(&path, None, None, &settings, false).unwrap();
        assert_eq!(r.errors.len(), 1);
        let msg = r.errors[0].to_string();
        assert!(msg.contains("call.twilio.jsonl:11:"), "{msg}");
        assert!(matches!(
            r.events.last().map(|e| &e.kind),
            Some(crate::event::EventKind::CallEnded(_))
        ));
    }
}
