//! One call, provider-agnostic: audio per track and transcript lines in, contract events out.
//!
//! [`CallPipeline`] runs DSP and detection over decoded PCM; [`Call`] puts a provider adapter
//! and a [`Session`] in front of it, so the server and `replay` of recorded provider streams
//! drive exactly the same code. WAV replay feeds [`CallPipeline`] directly. Pure and
//! synchronous: media time comes from sample counts. Over 600 lines because about 200 of them
//! are its tests.

use crate::codec::Codec;
use crate::detect::playbook::Playbook;
use crate::detect::tone::ToneModel;
use crate::detect::{Detector, DetectorConfig, TranscriptLine};
use crate::dsp::{DspConfig, DspError, Frame, TrackAnalyzer};
use crate::event::{CallEnded, CallSource, CallStarted, Event, EventKind, Handoff, Track};
use crate::protocol::session::{Session, SessionError, Step};
use crate::protocol::{Adapter, CallId, ProtocolError, Provider, StreamStart};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Receives every call's decoded, in-order PCM (call id, track, samples): a recording or
/// debugging tap. Called on the call's task; keep it cheap.
pub type AudioTap = Arc<dyn Fn(&str, Track, &[i16]) + Send + Sync>;

/// What every call's pipeline is built from.
#[derive(Clone)]
pub struct PipelineSettings {
    /// DSP settings.
    pub dsp: DspConfig,
    /// Detector and policy settings.
    pub detector: DetectorConfig,
    /// The tone model, shared by all calls.
    pub model: Arc<ToneModel>,
    /// Optional tap on decoded audio.
    pub audio_tap: Option<AudioTap>,
    /// Keep speech the tone scorer finds angry out of the speaker's baseline while it is being
    /// collected (on by default; `tune` turns it off for its calm priming material, so a clip's
    /// features do not depend on the candidate model being scored).
    pub hold_baseline_on_tone: bool,
    /// `[[routing]]` and `[[pre_call]]` rules.
    pub playbook: Arc<Playbook>,
}

impl std::fmt::Debug for PipelineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSettings")
            .field("dsp", &self.dsp)
            .field("detector", &self.detector)
            .field("model", &self.model)
            .field("audio_tap", &self.audio_tap.is_some())
            .field("hold_baseline_on_tone", &self.hold_baseline_on_tone)
            .field("playbook", &self.playbook)
            .finish()
    }
}

impl PipelineSettings {
    /// The analyser of one track at `sample_rate_hz`, from these (validated) DSP settings: the
    /// only place a [`TrackAnalyzer`] is built for a call, so `serve`, `replay` and `tune`
    /// analyse every track alike.
    pub fn track_analyzer(&self, sample_rate_hz: u32) -> Result<TrackAnalyzer, DspError> {
        TrackAnalyzer::new(sample_rate_hz, &self.dsp)
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            dsp: DspConfig::default(),
            detector: DetectorConfig::default(),
            model: Arc::new(ToneModel::bundled()),
            audio_tap: None,
            hold_baseline_on_tone: true,
            playbook: Arc::default(),
        }
    }
}

/// Describes a call to start a pipeline for.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// Provider call id or replay name.
    pub call_id: CallId,
    /// The provider, or `wav` in replay.
    pub provider: CallSource,
    /// The stream's codec.
    pub codec: Codec,
    /// PCM rate.
    pub sample_rate_hz: u32,
    /// Tracks present.
    pub tracks: Vec<Track>,
    /// Provider stream id.
    pub stream_id: Option<String>,
    /// Custom parameters.
    pub custom_parameters: BTreeMap<String, String>,
}

/// Bounds on the transcript lines one call holds waiting for its media clock to reach their
/// `t_ms`. Live calls take them from `[server]`; replay of trusted files leaves them unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptLimits {
    /// Lines waiting.
    pub max_lines: usize,
    /// Text bytes of the lines waiting.
    pub max_bytes: usize,
}

impl TranscriptLimits {
    /// No bound (replay).
    pub const UNBOUNDED: Self = Self {
        max_lines: usize::MAX,
        max_bytes: usize::MAX,
    };
}

impl Default for TranscriptLimits {
    fn default() -> Self {
        Self::UNBOUNDED
    }
}

/// A transcript line refused because the call already holds as many waiting lines as allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "transcript line dropped: {lines} lines ({bytes} bytes) already wait for the media clock \
     (limits: {} lines, {} bytes)", .limits.max_lines, .limits.max_bytes
)]
pub struct TranscriptQueueFull {
    /// Lines waiting.
    pub lines: usize,
    /// Their text bytes.
    pub bytes: usize,
    /// The limits in force.
    pub limits: TranscriptLimits,
}

impl TranscriptQueueFull {
    fn check(
        limits: TranscriptLimits,
        lines: usize,
        bytes: usize,
        line: &TranscriptLine,
    ) -> Result<(), Self> {
        if lines >= limits.max_lines || bytes.saturating_add(line.text.len()) > limits.max_bytes {
            return Err(Self {
                lines,
                bytes,
                limits,
            });
        }
        Ok(())
    }
}

/// Counters a call ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Media chunks received.
    pub frames: u64,
    /// Chunks lost (gaps, late, undecodable).
    pub dropped_frames: u64,
}

/// DSP and detection for one call.
#[derive(Debug)]
pub struct CallPipeline {
    call_id: String,
    provider: CallSource,
    sample_rate_hz: u32,
    /// The DSP settings, for a track that shows up without being announced.
    dsp: DspConfig,
    /// [`PipelineSettings::hold_baseline_on_tone`].
    hold_baseline_on_tone: bool,
    analyzers: [Option<TrackAnalyzer>; 2],
    samples: [u64; 2],
    frames: Vec<Frame>,
    detector: Detector,
    /// Transcript lines waiting for the media clock to reach them, by time.
    transcript: VecDeque<(u64, TranscriptLine)>,
    /// Text bytes in `transcript`.
    transcript_bytes: usize,
    transcript_limits: TranscriptLimits,
    handoff: Option<Handoff>,
    ended: bool,
    /// Caller prosody every 50 ms, for replay plots (off unless asked for).
    trace: Option<Vec<TracePoint>>,
}

/// One point of the caller's prosody trace (replay plots).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TracePoint {
    /// Media ms.
    pub t_ms: u64,
    /// F0, 0 when unvoiced.
    pub f0_hz: f32,
    /// Energy, dBFS.
    pub energy_db: f32,
    /// Speaking rate.
    pub rate_sps: f32,
    /// Voice activity.
    pub vad: bool,
    /// Tone score.
    pub tone: f32,
}

impl CallPipeline {
    /// Starts a pipeline and returns it with its `call_started` event.
    pub fn new(info: CallInfo, settings: &PipelineSettings) -> Result<(Self, Event), DspError> {
        let mut analyzers = [None, None];
        for t in Track::ALL {
            if info.tracks.contains(&t) || t == Track::Caller {
                analyzers[t.index()] = Some(settings.track_analyzer(info.sample_rate_hz)?);
            }
        }
        let started = Event {
            call_id: info.call_id.to_string(),
            t_ms: 0,
            kind: EventKind::CallStarted(CallStarted {
                provider: info.provider,
                codec: info.codec,
                sample_rate_hz: info.sample_rate_hz,
                tracks: info.tracks.clone(),
                stream_id: info.stream_id.clone(),
                custom_parameters: info.custom_parameters.clone(),
            }),
        };
        let detector = Detector::for_call(
            &info.call_id,
            &settings.detector,
            settings.model.clone(),
            settings.playbook.clone(),
            &info.custom_parameters,
        );
        Ok((
            Self {
                call_id: info.call_id.into(),
                provider: info.provider,
                sample_rate_hz: info.sample_rate_hz,
                dsp: settings.dsp.clone(),
                hold_baseline_on_tone: settings.hold_baseline_on_tone,
                analyzers,
                samples: [0; 2],
                frames: Vec::with_capacity(64),
                detector,
                transcript: VecDeque::new(),
                transcript_bytes: 0,
                transcript_limits: TranscriptLimits::UNBOUNDED,
                handoff: None,
                ended: false,
                trace: None,
            },
            started,
        ))
    }

    /// Starts recording the caller's prosody trace (observation only; decisions are unchanged).
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The recorded trace.
    pub fn trace(&self) -> &[TracePoint] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// The caller's baseline, once established.
    pub fn caller_baseline(&self) -> Option<crate::dsp::Baseline> {
        self.analyzers[Track::Caller.index()]
            .as_ref()
            .and_then(TrackAnalyzer::baseline)
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Media time of a track, ms.
    pub fn media_ms(&self, track: Track) -> u64 {
        self.samples[track.index()] * 1000 / u64::from(self.sample_rate_hz.max(1))
    }

    /// Media time of the call: the furthest track.
    pub fn now_ms(&self) -> u64 {
        Track::ALL
            .iter()
            .map(|t| self.media_ms(*t))
            .max()
            .unwrap_or(0)
    }

    /// The handoff, once decided.
    pub fn handoff(&self) -> Option<&Handoff> {
        self.handoff.as_ref()
    }

    /// The detector (latest scores).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Feeds PCM of one track.
    pub fn push_audio(&mut self, track: Track, samples: &[i16], out: &mut Vec<Event>) {
        let i = track.index();
        if self.analyzers[i].is_none() {
            // A track the start message did not announce: analyse it anyway.
            // Built from the same settings as the announced tracks (it used to take the DSP
            // defaults, ignoring the configured hop and thresholds).
            match TrackAnalyzer::new(self.sample_rate_hz, &self.dsp) {
                Ok(a) => self.analyzers[i] = Some(a),
                Err(_) => return,
            }
        }
        let Some(analyzer) = self.analyzers[i].as_mut() else {
            return;
        };
        self.frames.clear();
        analyzer.push(samples, &mut self.frames);
        self.samples[i] += samples.len() as u64;
        let first = out.len();
        self.feed_frames(track, out);
        self.release_transcript(self.now_ms(), out);
        self.note_handoff(&mut out[first..]);
    }

    /// Runs the frames in `self.frames` (of `track`) through the detector.
    fn feed_frames(&mut self, track: Track, out: &mut Vec<Event>) {
        let baseline = self.analyzers[track.index()]
            .as_ref()
            .and_then(TrackAnalyzer::baseline);
        for k in 0..self.frames.len() {
            let f = self.frames[k];
            self.release_transcript(f.t_ms, out);
            self.detector.on_frame(track, &f, baseline.as_ref(), out);
            if track == Track::Caller
                && f.t_ms.is_multiple_of(50)
                && let Some(trace) = self.trace.as_mut()
            {
                let tone = self.detector.scores().get(&crate::event::Signal::Tone);
                trace.push(TracePoint {
                    t_ms: f.t_ms,
                    f0_hz: f.f0_hz,
                    energy_db: f.energy_db,
                    rate_sps: f.rate_sps,
                    vad: f.vad,
                    tone: tone.copied().unwrap_or(0.0) as f32,
                });
            }
        }
        // Acts from the next chunk on (these frames are in the baseline already): 20 ms late.
        if self.hold_baseline_on_tone
            && baseline.is_none()
            && let Some(a) = self.analyzers[track.index()].as_mut()
        {
            a.hold_baseline(self.detector.tone_holds_baseline(track));
        }
    }

    /// Bounds the lines this call holds waiting for the media clock (default: unbounded).
    pub fn set_transcript_limits(&mut self, limits: TranscriptLimits) {
        self.transcript_limits = limits;
    }

    /// Lines and text bytes waiting for the media clock.
    pub fn pending_transcript(&self) -> (usize, usize) {
        (self.transcript.len(), self.transcript_bytes)
    }

    /// Queues a transcript line; it takes effect when the media clock reaches its `t_ms`
    /// (immediately when it has none or its time has passed). A line that would wait is dropped
    /// when the call already holds its limit of waiting lines.
    pub fn try_push_transcript(
        &mut self,
        mut line: TranscriptLine,
        out: &mut Vec<Event>,
    ) -> Result<(), TranscriptQueueFull> {
        let now = self.now_ms();
        let t = *line.t_ms.get_or_insert(now);
        if t > now {
            TranscriptQueueFull::check(
                self.transcript_limits,
                self.transcript.len(),
                self.transcript_bytes,
                &line,
            )?;
        }
        self.transcript_bytes += line.text.len();
        let pos = self.transcript.partition_point(|(lt, _)| *lt <= t);
        self.transcript.insert(pos, (t, line));
        let first = out.len();
        self.release_transcript(now, out);
        self.note_handoff(&mut out[first..]);
        Ok(())
    }

    /// [`Self::try_push_transcript`] for trusted input (replay), where nothing is bounded.
    pub fn push_transcript(&mut self, line: TranscriptLine, out: &mut Vec<Event>) {
        if let Err(e) = self.try_push_transcript(line, out) {
            tracing::warn!(call_id = %self.call_id, "{e}");
        }
    }

    fn release_transcript(&mut self, now_ms: u64, out: &mut Vec<Event>) {
        while self.transcript.front().is_some_and(|(t, _)| *t <= now_ms) {
            if let Some((t, line)) = self.transcript.pop_front() {
                self.transcript_bytes -= line.text.len();
                self.detector.on_transcript(t, &line, out);
            }
        }
    }

    /// Stamps new handoffs with the provider (transfer targets depend on it) and keeps the first.
    fn note_handoff(&mut self, new: &mut [Event]) {
        for e in new {
            if let EventKind::Handoff(h) = &mut e.kind {
                h.provider.get_or_insert(self.provider);
                if self.handoff.is_none() {
                    self.handoff = Some(h.clone());
                }
            }
        }
    }

    /// Ends the call: releases queued transcript, lets the detector conclude, emits `call_ended`.
    /// Idempotent.
    pub fn finish(&mut self, stats: FrameStats, reason: &str, out: &mut Vec<Event>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let first = out.len();
        // The analysers hold the last few frames back for look-ahead: release them.
        for t in Track::ALL {
            self.frames.clear();
            if let Some(a) = self.analyzers[t.index()].as_mut() {
                a.finish(&mut self.frames);
            }
            self.feed_frames(t, out);
        }
        let now = self.now_ms();
        while let Some((t, line)) = self.transcript.pop_front() {
            self.transcript_bytes -= line.text.len();
            self.detector.on_transcript(t.min(now), &line, out);
        }
        self.detector.finish(now, out);
        self.note_handoff(&mut out[first..]);
        out.push(Event {
            call_id: self.call_id.clone(),
            t_ms: now,
            kind: EventKind::CallEnded(CallEnded {
                duration_ms: now,
                handoff: self.handoff.is_some(),
                frames: stats.frames,
                dropped_frames: stats.dropped_frames,
                reason: reason.to_owned(),
            }),
        });
    }
}

/// Why a call's stream was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The provider message could not be read.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The message broke the stream's rules.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The stream's format cannot be analysed.
    #[error(transparent)]
    Dsp(#[from] DspError),
}

impl CallError {
    /// Whether the stream may continue after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, CallError::Protocol(e) if e.is_recoverable())
    }

    /// A short stable name for logs and metrics (`malformed`, `bad_base64`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Protocol(e) => match e {
                ProtocolError::Malformed { .. } => "malformed",
                ProtocolError::UnknownEvent { .. } => "unknown_event",
                ProtocolError::UnsupportedCodec { .. } => "unsupported_codec",
                ProtocolError::UnsupportedRate { .. } => "unsupported_rate",
                ProtocolError::UnexpectedBinary { .. } => "unexpected_binary",
                ProtocolError::BinaryBeforeStart { .. } => "binary_before_start",
                ProtocolError::BadCallId { .. } => "bad_call_id",
                _ => "protocol",
            },
            CallError::Session(e) => match e {
                SessionError::MediaBeforeStart => "media_before_start",
                SessionError::DuplicateStart { .. } => "duplicate_start",
                SessionError::NoCodec => "no_codec",
                SessionError::BadBase64(_) => "bad_base64",
                SessionError::Codec(_) => "bad_payload",
                SessionError::ChunkTooLarge { .. } => "chunk_too_large",
            },
            CallError::Dsp(_) => "unsupported_format",
        }
    }

    /// The WebSocket close code for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            CallError::Protocol(ProtocolError::UnsupportedCodec { .. })
            | CallError::Protocol(ProtocolError::UnsupportedRate { .. })
            | CallError::Protocol(ProtocolError::UnexpectedBinary { .. })
            | CallError::Session(SessionError::NoCodec)
            | CallError::Dsp(_) => 1003,
            CallError::Session(SessionError::MediaBeforeStart)
            | CallError::Session(SessionError::DuplicateStart { .. })
            | CallError::Protocol(ProtocolError::BinaryBeforeStart { .. })
            | CallError::Protocol(ProtocolError::BadCallId { .. }) => 1008,
            CallError::Session(SessionError::ChunkTooLarge { .. }) => 1009,
            _ => 1007,
        }
    }
}

/// A provider stream in front of a pipeline: the one path live calls and recorded provider
/// streams both take.
pub struct Call {
    adapter: Box<dyn Adapter>,
    provider: Provider,
    session: Session,
    pipeline: Option<CallPipeline>,
    settings: Arc<PipelineSettings>,
    /// Lines posted before the start message, applied once the pipeline exists.
    early_transcript: Vec<TranscriptLine>,
    transcript_limits: TranscriptLimits,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("provider", &self.provider)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call waiting for its provider's start message. `connection_id` names the call when the
    /// provider's stream does not (a Vonage socket without a call id in its headers).
    pub fn new(provider: Provider, settings: Arc<PipelineSettings>, connection_id: &str) -> Self {
        Self {
            adapter: provider.adapter_for(connection_id),
            provider,
            session: Session::new(),
            pipeline: None,
            settings,
            early_transcript: Vec::new(),
            transcript_limits: TranscriptLimits::UNBOUNDED,
        }
    }

    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The start message, once received.
    pub fn start(&self) -> Option<&StreamStart> {
        self.session.start()
    }

    /// The pipeline, once started.
    pub fn pipeline(&self) -> Option<&CallPipeline> {
        self.pipeline.as_ref()
    }

    /// Whether the provider has sent stop.
    pub fn is_stopped(&self) -> bool {
        self.session.is_stopped()
    }

    /// Frame counters so far.
    pub fn stats(&self) -> FrameStats {
        let mut s = FrameStats::default();
        for t in Track::ALL {
            let ts = self.session.stats(t);
            s.frames += ts.chunks;
            s.dropped_frames += ts.missing_chunks + ts.late_chunks;
        }
        s
    }

    /// The pipeline, once started (mutable, e.g. to enable tracing).
    pub fn pipeline_mut(&mut self) -> Option<&mut CallPipeline> {
        self.pipeline.as_mut()
    }

    /// Chunks received on a track so far.
    pub fn stats_track_chunks(&self, track: Track) -> u64 {
        self.session.stats(track).chunks
    }

    /// Counters of one track.
    pub fn track_stats(&self, track: Track) -> crate::protocol::session::TrackStats {
        self.session.stats(track)
    }

    /// Handles a text frame.
    pub fn on_text(&mut self, text: &str, out: &mut Vec<Event>) -> Result<Step, CallError> {
        let ev = self.adapter.parse_text(text)?;
        self.on_event(ev, out)
    }

    /// Handles a binary frame.
    pub fn on_binary(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<Step, CallError> {
        let ev = self.adapter.parse_binary(bytes)?;
        self.on_event(ev, out)
    }

    /// Handles an event parsed outside the provider's adapter: AudioSocket's TCP frames
    /// ([`crate::protocol::audiosocket::FrameStream`]) are not WebSocket messages.
    pub fn on_event(
        &mut self,
        ev: crate::protocol::ProviderEvent<'_>,
        out: &mut Vec<Event>,
    ) -> Result<Step, CallError> {
        let from = out.len();
        let step = self.apply(ev, out);
        self.note_handoffs(&out[from..]);
        step
    }

    /// A text frame the provider expects back on the media socket (AudioHook's `opened`,
    /// `pong`, `closed`, and the `disconnect` that carries a handoff), oldest first. The live
    /// driver sends them after each message; replay has no one to send them to.
    pub fn take_reply(&mut self) -> Option<String> {
        self.adapter.take_reply()
    }

    /// Tells the adapter of a handoff among `events`, for providers that move calls in-band.
    fn note_handoffs(&mut self, events: &[Event]) {
        for e in events {
            if let EventKind::Handoff(h) = &e.kind {
                self.adapter.on_handoff(&h.handoff_id, &h.summary.whisper);
            }
        }
    }

    fn apply(
        &mut self,
        ev: crate::protocol::ProviderEvent<'_>,
        out: &mut Vec<Event>,
    ) -> Result<Step, CallError> {
        let step = self.session.apply(ev)?;
        match &step {
            Step::Started => {
                let Some(start) = self.session.start() else {
                    return Ok(step);
                };
                let info = CallInfo {
                    call_id: start.call_id.clone(),
                    provider: self.provider.into(),
                    codec: start.codec.ok_or(SessionError::NoCodec)?,
                    sample_rate_hz: start.sample_rate_hz,
                    tracks: start.tracks.clone(),
                    stream_id: start.stream_id.clone(),
                    custom_parameters: start.custom_parameters.clone(),
                };
                let (mut pipeline, started) = CallPipeline::new(info, &self.settings)?;
                pipeline.set_transcript_limits(self.transcript_limits);
                out.push(started);
                self.pipeline = Some(pipeline);
                for line in std::mem::take(&mut self.early_transcript) {
                    self.push_transcript(line, out);
                }
            }
            Step::Audio | Step::Stopped => self.drain_audio(out),
            Step::Nothing | Step::Dtmf(_) => {}
        }
        Ok(step)
    }

    fn drain_audio(&mut self, out: &mut Vec<Event>) {
        let Some(p) = self.pipeline.as_mut() else {
            return;
        };
        for t in Track::ALL {
            let audio = self.session.take_audio(t);
            if !audio.is_empty() {
                if let Some(tap) = &self.settings.audio_tap {
                    tap(p.call_id(), t, &audio);
                }
                p.push_audio(t, &audio, out);
            }
        }
    }

    /// Bounds the transcript lines this call holds (before its start, and waiting for the media
    /// clock); the default is unbounded, for replay of trusted files.
    pub fn set_transcript_limits(&mut self, limits: TranscriptLimits) {
        self.transcript_limits = limits;
        if let Some(p) = self.pipeline.as_mut() {
            p.set_transcript_limits(limits);
        }
    }

    /// Applies a transcript line (queued until the stream starts), within the call's limits.
    pub fn try_push_transcript(
        &mut self,
        line: TranscriptLine,
        out: &mut Vec<Event>,
    ) -> Result<(), TranscriptQueueFull> {
        match self.pipeline.as_mut() {
            Some(p) => {
                let from = out.len();
                let r = p.try_push_transcript(line, out);
                self.note_handoffs(&out[from..]);
                r
            }
            None => {
                let bytes = self.early_transcript.iter().map(|l| l.text.len()).sum();
                TranscriptQueueFull::check(
                    self.transcript_limits,
                    self.early_transcript.len(),
                    bytes,
                    &line,
                )?;
                self.early_transcript.push(line);
                Ok(())
            }
        }
    }

    /// [`Self::try_push_transcript`] for trusted input (replay), where nothing is bounded.
    pub fn push_transcript(&mut self, line: TranscriptLine, out: &mut Vec<Event>) {
        if let Err(e) = self.try_push_transcript(line, out) {
            tracing::warn!("{e}");
        }
    }

    /// Ends the call (idempotent); `reason` goes into `call_ended`.
    pub fn finish(&mut self, reason: &str, out: &mut Vec<Event>) {
        self.session.flush_pending();
        self.drain_audio(out);
        let stats = self.stats();
        if let Some(p) = self.pipeline.as_mut() {
            p.finish(stats, reason, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RenderSpec, WireMessage};

    /// An 8 kHz L16 call that announces only the caller.
    fn caller_only_wav_call() -> CallInfo {
        CallInfo {
            call_id: crate::protocol::CallId::from_name("c"),
            provider: crate::event::CallSource::Wav,
            codec: crate::codec::Codec::L16,
            sample_rate_hz: 8000,
            tracks: vec![Track::Caller],
            stream_id: None,
            custom_parameters: BTreeMap::new(),
        }
    }

    /// A track the start message did not announce is analysed with the configured DSP, not the
    /// defaults (it used to get `DspConfig::default()`: an 8 s baseline instead of 1 s here).
    #[test]
    fn an_unannounced_track_is_analysed_with_the_configured_dsp() {
        let settings = PipelineSettings {
            dsp: DspConfig {
                baseline_speech_s: 1.0,
                ..DspConfig::default()
            },
            ..PipelineSettings::default()
        };
        let info = caller_only_wav_call();
        let (mut p, _) = CallPipeline::new(info, &settings).unwrap();
        let pcm = crate::synth::speech(&[crate::synth::Segment::calm(4.0, 110.0)], 8000, 5);
        let mut out = Vec::new();
        for chunk in pcm.chunks(160) {
            p.push_audio(Track::Agent, chunk, &mut out);
        }
        let agent_ready = out.iter().any(|e| {
            matches!(&e.kind, EventKind::Prosody(pr) if pr.track == Track::Agent && pr.baseline_ready)
        });
        assert!(
            agent_ready,
            "the agent's baseline follows baseline_speech_s = 1"
        );
    }

    /// Issue #18: before the baseline is ready the caller is scored by the model's population
    /// prior (flagged `baseline_ready: false`), and speech the prior finds angry stays out of
    /// the baseline. Here the prior finds everything angry, so no baseline forms while it
    /// holds; with the hold off the same call gets its baseline.
    #[test]
    fn a_caller_angry_from_the_first_word_is_scored_and_kept_out_of_the_baseline() {
        let mut model = ToneModel::bundled();
        model.prior = Some(crate::detect::tone::PriorModel {
            features: vec!["voiced_frac".into()],
            means: vec![0.5],
            stds: vec![0.2],
            weights: vec![0.0],
            bias: 10.0,
        });
        let run = |hold: bool| {
            let settings = PipelineSettings {
                model: Arc::new(model.clone()),
                hold_baseline_on_tone: hold,
                ..PipelineSettings::default()
            };
            let info = caller_only_wav_call();
            let (mut p, _) = CallPipeline::new(info, &settings).unwrap();
            let pcm =
                crate::synth::speech(&[crate::synth::Segment::agitated(16.0, 130.0)], 8000, 5);
            let mut out = Vec::new();
            for chunk in pcm.chunks(160) {
                p.push_audio(Track::Caller, chunk, &mut out);
            }
            (p.caller_baseline(), out)
        };
        let (held, out) = run(true);
        // 16 s of speech: the first 8 s are held out, so no baseline yet; the hold is bounded
        // (one baseline's worth), so it forms later rather than never.
        assert!(held.is_none(), "angry speech became the baseline");
        let early = out
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Prosody(pr) if pr.track == Track::Caller => Some(pr),
                _ => None,
            })
            .find(|pr| pr.tone_score > 0.9)
            .expect("the prior scores the caller");
        assert!(!early.baseline_ready);
        let (free, _) = run(false);
        assert!(free.is_some(), "without the hold the baseline forms");
    }

    #[test]
    fn a_rendered_twilio_call_runs_start_to_end() {
        let pcm: Vec<i16> = (0..16000)
            .map(|i| ((i as f32 * 0.1).sin() * 8000.0) as i16)
            .collect();
        let msgs = Provider::Twilio.render(&RenderSpec::new("CA9", Codec::Mulaw, 8000), &pcm, None);
        let mut call = Call::new(
            Provider::Twilio,
            Arc::new(PipelineSettings::default()),
            "c1",
        );
        let mut out = Vec::new();
        for m in &msgs {
            let WireMessage::Text(t) = m else { panic!() };
            call.on_text(t, &mut out).unwrap();
        }
        call.finish("stop", &mut out);
        call.finish("stop", &mut out);
        assert!(matches!(
            out.first().map(|e| &e.kind),
            Some(EventKind::CallStarted(_))
        ));
        let ended: Vec<_> = out
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CallEnded(_)))
            .collect();
        assert_eq!(ended.len(), 1);
        let EventKind::CallEnded(c) = &ended[0].kind else {
            unreachable!()
        };
        assert_eq!((c.duration_ms, c.frames, c.dropped_frames), (2000, 100, 0));
        assert_eq!(ended[0].call_id, "CA9");
    }

    fn line(t_ms: u64, text: &str) -> TranscriptLine {
        TranscriptLine {
            t_ms: Some(t_ms),
            speaker: Track::Caller,
            text: text.to_owned(),
            is_final: true,
            confidence: None,
        }
    }

    fn started_call(limits: TranscriptLimits) -> Call {
        let mut call = Call::new(
            Provider::Twilio,
            Arc::new(PipelineSettings::default()),
            "c1",
        );
        call.set_transcript_limits(limits);
        let msgs =
            Provider::Twilio.render(&RenderSpec::new("CA1", Codec::Mulaw, 8000), &[0; 160], None);
        let WireMessage::Text(start) = &msgs[1] else {
            panic!("rendered start")
        };
        call.on_text(start, &mut Vec::new()).unwrap();
        call
    }

    #[test]
    fn lines_waiting_for_the_media_clock_are_bounded_in_count_and_bytes() {
        // Issue #16: 10,000 x 16 KiB lines with future t_ms all waited, 153 MB per call.
        let limits = TranscriptLimits {
            max_lines: 4,
            max_bytes: 100,
        };
        let mut call = started_call(limits);
        let mut out = Vec::new();
        for k in 0..4 {
            call.try_push_transcript(line(60_000 + k, "hello"), &mut out)
                .unwrap();
        }
        let full = call.try_push_transcript(line(61_000, "one more"), &mut out);
        assert_eq!(
            full,
            Err(TranscriptQueueFull {
                lines: 4,
                bytes: 20,
                limits
            })
        );
        let pipeline = call.pipeline().unwrap();
        assert_eq!(pipeline.pending_transcript(), (4, 20));
        // A line due now does not wait, so it is never refused.
        call.try_push_transcript(line(0, "now"), &mut out).unwrap();
        // Bytes: one long line fills the budget.
        let mut call = started_call(limits);
        call.try_push_transcript(line(60_000, &"x".repeat(90)), &mut out)
            .unwrap();
        assert!(
            call.try_push_transcript(line(60_001, &"y".repeat(11)), &mut out)
                .is_err()
        );
        // Finishing releases (and accounts for) every waiting line.
        call.finish("stop", &mut out);
        assert_eq!(call.pipeline().unwrap().pending_transcript(), (0, 0));
    }

    #[test]
    fn lines_before_the_start_are_bounded_too() {
        let limits = TranscriptLimits {
            max_lines: 2,
            max_bytes: 1000,
        };
        let mut call = Call::new(
            Provider::Twilio,
            Arc::new(PipelineSettings::default()),
            "c1",
        );
        call.set_transcript_limits(limits);
        let mut out = Vec::new();
        call.try_push_transcript(line(1, "a"), &mut out).unwrap();
        call.try_push_transcript(line(2, "b"), &mut out).unwrap();
        assert!(call.try_push_transcript(line(3, "c"), &mut out).is_err());
    }
}
