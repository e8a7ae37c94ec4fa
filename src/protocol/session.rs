//! One media stream's provider-agnostic state: start/stop ordering, payload decoding into
//! per-track PCM, per-track media clocks from sample counts, and chunk reordering and gap
//! handling (Telnyx does not guarantee order).
//!
//! Decoded audio accumulates per track until the caller drains it with
//! [`Session::take_audio`]; buffers are reused, so steady-state media allocates nothing, and a
//! buffer that one large message grew is shrunk again once drained.
//!
//! What a peer can make a session hold is bounded in media time, not by the peer's choice of
//! chunk size: a chunk holds at most [`MAX_CHUNK_MS`], one gap is filled with at most
//! [`MAX_GAP_FILL_MS`] of silence, and a track never holds more filled silence than audio it was
//! actually sent, so no sequence of chunk counters amplifies input more than twofold.

use super::{MediaChunk, Payload, ProviderEvent, StreamStart};
use crate::codec::{Codec, CodecError};
use crate::event::Track;
use base64::Engine as _;

/// How many chunks may arrive ahead of a missing one before it is given up as lost.
pub const REORDER_WINDOW_CHUNKS: usize = 8;

/// The longest run of lost chunks filled with silence (5 s of 20 ms chunks). A longer jump in
/// the chunk counter is a discontinuity (a counter reset, or a hostile peer), not loss: the
/// track resynchronises on it without filling, so a forged counter cannot allocate unbounded
/// silence.
pub const MAX_GAP_FILL_CHUNKS: u64 = 250;

/// The most silence one gap is filled with, in media time at the stream's rate. The chunk
/// count alone does not bound it: the sender chooses the chunk size.
pub const MAX_GAP_FILL_MS: u64 = 1000;

/// The largest media chunk accepted, in media time at the stream's rate. Every provider
/// documents 20 ms inbound chunks (Exotel "varies" up to 100 ms); 1 s leaves room for a
/// provider's catch-up burst without letting one message carry minutes of audio.
pub const MAX_CHUNK_MS: u64 = 1000;

/// Scratch and ready buffers above this many samples (or bytes) are shrunk back once drained,
/// to a quarter of it: still above a steady 20 ms chunk at 48 kHz (960 samples), so steady
/// media never reallocates.
const SHRINK_ABOVE: usize = 4096;

/// Why a message broke the stream's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Media (or a second hello) before the start message. Fatal: close 1008.
    #[error("media before start")]
    MediaBeforeStart,
    /// A second start message on one stream. Fatal: close 1008.
    #[error("duplicate start (stream already started for call {call_id})")]
    DuplicateStart {
        /// The call already started.
        call_id: String,
    },
    /// A start message without a codec. Fatal: close 1003.
    #[error("start message names no codec")]
    NoCodec,
    /// The payload is not valid base64. Fatal: close 1007.
    #[error("media payload is not valid base64: {0}")]
    BadBase64(String),
    /// The payload does not decode with the stream's codec. Fatal: close 1007.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A media chunk for a track the start message did not announce is accepted; this is for a
    /// chunk larger than any provider sends. Fatal: close 1009.
    #[error("media chunk of {samples} samples exceeds the {max} sample limit")]
    ChunkTooLarge {
        /// Samples in the chunk.
        samples: usize,
        /// The limit.
        max: usize,
    },
}

/// What a message meant for the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing for the pipeline (hello, marks, acks, a buffered out-of-order chunk).
    Nothing,
    /// The stream started; [`Session::start`] has its description.
    Started,
    /// New audio is waiting in [`Session::take_audio`].
    Audio,
    /// A DTMF digit.
    Dtmf(String),
    /// The provider ended the stream.
    Stopped,
}

/// Per-track counters, for `call_ended` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Chunks received.
    pub chunks: u64,
    /// Chunks that never arrived (gaps filled with silence).
    pub missing_chunks: u64,
    /// Chunks that arrived after their slot was given up, or twice (dropped).
    pub late_chunks: u64,
    /// Samples delivered to the pipeline, gaps included: the track's media clock.
    pub samples: u64,
}

#[derive(Debug, Default)]
struct TrackState {
    /// Next expected chunk counter, once known.
    next_chunk: Option<u64>,
    /// Out-of-order chunks waiting for their turn: (chunk, pcm).
    pending: Vec<(u64, Vec<i16>)>,
    /// Decoded, in-order audio not yet taken.
    ready: Vec<i16>,
    /// Samples in the last in-order chunk (the size used to fill a gap).
    last_chunk_samples: usize,
    /// Samples of received audio delivered (gaps excluded): the budget for filled silence.
    received_samples: u64,
    /// Samples of silence filled into gaps so far.
    filled_samples: u64,
    stats: TrackStats,
}

/// One stream's state.
#[derive(Debug)]
pub struct Session {
    start: Option<StreamStart>,
    codec: Codec,
    tracks: [TrackState; 2],
    stopped: bool,
    /// Reused base64 scratch.
    bytes: Vec<u8>,
    /// Reused decode scratch.
    pcm: Vec<i16>,
    /// The largest chunk accepted, in samples ([`MAX_CHUNK_MS`] at the stream's rate).
    max_chunk_samples: usize,
    /// The most silence one gap is filled with, in samples ([`MAX_GAP_FILL_MS`]).
    max_fill_samples: usize,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session waiting for its start message.
    pub fn new() -> Self {
        Self {
            start: None,
            codec: Codec::Mulaw,
            tracks: Default::default(),
            stopped: false,
            bytes: Vec::with_capacity(1024),
            pcm: Vec::with_capacity(1024),
            max_chunk_samples: samples_in(MAX_CHUNK_MS, 8000),
            max_fill_samples: samples_in(MAX_GAP_FILL_MS, 8000),
        }
    }

    /// The start message, once received.
    pub fn start(&self) -> Option<&StreamStart> {
        self.start.as_ref()
    }

    /// Whether the provider sent stop.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Counters for a track.
    pub fn stats(&self, track: Track) -> TrackStats {
        self.tracks[track.index()].stats
    }

    /// Media time of a track in ms (samples delivered so far).
    pub fn media_ms(&self, track: Track) -> u64 {
        let rate = self
            .start
            .as_ref()
            .map_or(8000, |s| s.sample_rate_hz.max(1));
        self.tracks[track.index()].stats.samples * 1000 / u64::from(rate)
    }

    /// Decoded in-order audio of a track since the last call; the buffer is kept for reuse
    /// (shrunk back when one burst grew it far beyond a steady chunk).
    pub fn take_audio(&mut self, track: Track) -> AudioGuard<'_> {
        AudioGuard {
            buf: &mut self.tracks[track.index()].ready,
        }
    }

    /// Samples the session's buffers can hold without reallocating, all tracks and scratch
    /// included: what a peer has made it keep (for tests and fuzzing oracles).
    pub fn capacity_samples(&self) -> usize {
        let pending: usize = self
            .tracks
            .iter()
            .flat_map(|t| t.pending.iter().map(|(_, p)| p.capacity()))
            .sum();
        let ready: usize = self.tracks.iter().map(|t| t.ready.capacity()).sum();
        pending + ready + self.pcm.capacity() + self.bytes.capacity() / 2
    }

    /// Applies one provider event.
    pub fn apply(&mut self, event: ProviderEvent<'_>) -> Result<Step, SessionError> {
        match event {
            ProviderEvent::Connected { .. }
            | ProviderEvent::Mark { .. }
            | ProviderEvent::Ignored { .. } => Ok(Step::Nothing),
            ProviderEvent::Start(start) => {
                if let Some(s) = &self.start {
                    return Err(SessionError::DuplicateStart {
                        call_id: s.call_id.clone(),
                    });
                }
                self.codec = start.codec.ok_or(SessionError::NoCodec)?;
                self.max_chunk_samples = samples_in(MAX_CHUNK_MS, start.sample_rate_hz);
                self.max_fill_samples = samples_in(MAX_GAP_FILL_MS, start.sample_rate_hz);
                self.start = Some(start);
                Ok(Step::Started)
            }
            ProviderEvent::Media(chunk) => self.media(chunk),
            ProviderEvent::Dtmf { digit } => Ok(Step::Dtmf(digit)),
            ProviderEvent::Stop => {
                self.stopped = true;
                self.flush_pending();
                Ok(Step::Stopped)
            }
        }
    }

    /// Gives up on any missing chunks and releases what is buffered (end of stream).
    pub fn flush_pending(&mut self) {
        for t in &mut self.tracks {
            t.release_pending(self.max_fill_samples);
        }
    }

    fn media(&mut self, chunk: MediaChunk<'_>) -> Result<Step, SessionError> {
        if self.start.is_none() {
            return Err(SessionError::MediaBeforeStart);
        }
        let step = self.media_inner(chunk);
        // One oversized message must not keep its buffers for the rest of the call.
        shrink(&mut self.pcm);
        shrink(&mut self.bytes);
        step
    }

    fn media_inner(&mut self, chunk: MediaChunk<'_>) -> Result<Step, SessionError> {
        let max_fill = self.max_fill_samples;
        self.pcm.clear();
        match &chunk.payload {
            Payload::Base64(text) => {
                self.bytes.clear();
                base64::engine::general_purpose::STANDARD
                    .decode_vec(text.as_bytes(), &mut self.bytes)
                    .map_err(|e| SessionError::BadBase64(e.to_string()))?;
                self.codec.decode_into(&self.bytes, &mut self.pcm)?;
            }
            Payload::Raw(bytes) => self.codec.decode_into(bytes, &mut self.pcm)?,
        }
        if self.pcm.len() > self.max_chunk_samples {
            return Err(SessionError::ChunkTooLarge {
                samples: self.pcm.len(),
                max: self.max_chunk_samples,
            });
        }
        let t = &mut self.tracks[chunk.track.index()];
        t.stats.chunks += 1;
        let Some(n) = chunk.chunk else {
            // No counter: arrival order is the only order there is.
            t.append(&self.pcm);
            return Ok(Step::Audio);
        };
        let expected = *t.next_chunk.get_or_insert(n);
        if n < expected || t.pending.iter().any(|(c, _)| *c == n) {
            t.stats.late_chunks += 1;
            return Ok(Step::Nothing);
        }
        if n > expected {
            t.pending.push((n, self.pcm.clone()));
            if t.pending.len() < REORDER_WINDOW_CHUNKS {
                return Ok(Step::Nothing);
            }
            // The window is full: the missing chunks are lost. Release in order.
            t.release_pending(max_fill);
            return Ok(Step::Audio);
        }
        t.deliver(n, &self.pcm, max_fill);
        // Anything buffered that is now in sequence follows.
        while let Some(pos) = t.pending.iter().position(|(c, _)| Some(*c) == t.next_chunk) {
            let (c, pcm) = t.pending.swap_remove(pos);
            t.deliver(c, &pcm, max_fill);
        }
        Ok(Step::Audio)
    }
}

/// Samples in `ms` of media at `rate_hz`.
fn samples_in(ms: u64, rate_hz: u32) -> usize {
    usize::try_from(ms.saturating_mul(u64::from(rate_hz.max(1))) / 1000).unwrap_or(usize::MAX)
}

/// Releases the capacity of a drained buffer that grew far beyond a steady chunk.
fn shrink<T>(buf: &mut Vec<T>) {
    if buf.capacity() > SHRINK_ABOVE && buf.len() <= SHRINK_ABOVE / 4 {
        buf.shrink_to(SHRINK_ABOVE / 4);
    }
}

impl TrackState {
    fn append(&mut self, pcm: &[i16]) {
        self.ready.extend_from_slice(pcm);
        self.last_chunk_samples = pcm.len();
        self.stats.samples += pcm.len() as u64;
        self.received_samples += pcm.len() as u64;
    }

    /// Gives up on the chunks missing before the buffered ones and delivers those in order.
    fn release_pending(&mut self, max_fill: usize) {
        self.pending.sort_by_key(|(c, _)| *c);
        let pending = std::mem::take(&mut self.pending);
        for (c, pcm) in pending {
            self.deliver(c, &pcm, max_fill);
        }
    }

    /// Delivers chunk `n`, filling any gap before it with silence so the media clock keeps time.
    /// The fill is at most `max_fill` samples, and never more silence in total than audio
    /// received: the chunk counter and the chunk size are both the sender's choice.
    fn deliver(&mut self, n: u64, pcm: &[i16], max_fill: usize) {
        let expected = self.next_chunk.unwrap_or(n);
        if n > expected && n - expected <= MAX_GAP_FILL_CHUNKS {
            let missing = n - expected;
            self.stats.missing_chunks += missing;
            let budget = self.received_samples.saturating_sub(self.filled_samples);
            // invariant: missing <= MAX_GAP_FILL_CHUNKS, so this fits in usize.
            let fill = (missing as usize)
                .saturating_mul(self.last_chunk_samples.max(pcm.len()))
                .min(max_fill)
                .min(usize::try_from(budget).unwrap_or(usize::MAX));
            self.ready.resize(self.ready.len() + fill, 0);
            self.stats.samples += fill as u64;
            self.filled_samples += fill as u64;
        }
        self.append(pcm);
        self.next_chunk = Some(n.saturating_add(1));
    }
}

/// Borrowed view of a track's ready audio; clears it (keeping capacity) when dropped.
#[derive(Debug)]
pub struct AudioGuard<'a> {
    buf: &'a mut Vec<i16>,
}

impl std::ops::Deref for AudioGuard<'_> {
    type Target = [i16];
    fn deref(&self) -> &[i16] {
        self.buf
    }
}

impl Drop for AudioGuard<'_> {
    fn drop(&mut self) {
        self.buf.clear();
        shrink(self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MediaChunk, Payload};
    use std::borrow::Cow;

    fn start() -> ProviderEvent<'static> {
        ProviderEvent::Start(StreamStart {
            call_id: "CA1".into(),
            codec: Some(Codec::L16),
            sample_rate_hz: 8000,
            channels: 1,
            tracks: vec![Track::Caller],
            ..Default::default()
        })
    }

    fn chunk(n: u64, value: i16) -> ProviderEvent<'static> {
        sized_chunk(n, value, 4)
    }

    fn sized_chunk(n: u64, value: i16, samples: usize) -> ProviderEvent<'static> {
        let bytes: Vec<u8> = std::iter::repeat_n(value.to_le_bytes(), samples)
            .flatten()
            .collect();
        ProviderEvent::Media(MediaChunk {
            track: Track::Caller,
            sequence: None,
            chunk: Some(n),
            timestamp_ms: None,
            payload: Payload::Base64(Cow::Owned(crate::protocol::b64(&bytes))),
        })
    }

    fn drain(s: &mut Session) -> Vec<i16> {
        s.take_audio(Track::Caller).to_vec()
    }

    #[test]
    fn media_before_start_and_duplicate_start_are_refused() {
        let mut s = Session::new();
        assert_eq!(s.apply(chunk(1, 1)), Err(SessionError::MediaBeforeStart));
        assert_eq!(s.apply(start()), Ok(Step::Started));
        assert!(matches!(
            s.apply(start()),
            Err(SessionError::DuplicateStart { .. })
        ));
    }

    #[test]
    fn reorders_within_the_window() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        s.apply(chunk(1, 1)).unwrap();
        assert_eq!(s.apply(chunk(3, 3)).unwrap(), Step::Nothing);
        assert_eq!(s.apply(chunk(2, 2)).unwrap(), Step::Audio);
        assert_eq!(drain(&mut s), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
        let st = s.stats(Track::Caller);
        assert_eq!(
            (st.chunks, st.missing_chunks, st.late_chunks, st.samples),
            (3, 0, 0, 12)
        );
    }

    #[test]
    fn a_lost_chunk_becomes_silence_and_keeps_the_clock() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        s.apply(chunk(1, 1)).unwrap();
        for n in 3..3 + REORDER_WINDOW_CHUNKS as u64 {
            s.apply(chunk(n, 5)).unwrap();
        }
        let audio = drain(&mut s);
        assert_eq!(audio.len(), 4 * (2 + REORDER_WINDOW_CHUNKS));
        assert_eq!(&audio[4..8], &[0, 0, 0, 0]);
        assert_eq!(s.stats(Track::Caller).missing_chunks, 1);
        // The lost chunk arriving now is late and dropped.
        assert_eq!(s.apply(chunk(2, 2)).unwrap(), Step::Nothing);
        assert_eq!(s.stats(Track::Caller).late_chunks, 1);
        assert_eq!(s.media_ms(Track::Caller), 4 * 10 * 1000 / 8000);
    }

    #[test]
    fn stop_flushes_what_is_waiting() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        s.apply(chunk(1, 1)).unwrap();
        s.apply(chunk(3, 3)).unwrap();
        drain(&mut s);
        assert_eq!(s.apply(ProviderEvent::Stop).unwrap(), Step::Stopped);
        assert_eq!(drain(&mut s), [0, 0, 0, 0, 3, 3, 3, 3]);
    }

    #[test]
    fn bad_payloads_are_specific_errors() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        let bad = ProviderEvent::Media(MediaChunk {
            track: Track::Caller,
            sequence: None,
            chunk: None,
            timestamp_ms: None,
            payload: Payload::Base64(Cow::Borrowed("@@@")),
        });
        assert!(matches!(s.apply(bad), Err(SessionError::BadBase64(_))));
        let odd = ProviderEvent::Media(MediaChunk {
            track: Track::Caller,
            sequence: None,
            chunk: None,
            timestamp_ms: None,
            payload: Payload::Raw(&[1, 2, 3]),
        });
        assert!(matches!(
            s.apply(odd),
            Err(SessionError::Codec(CodecError::OddL16Length {
                len_bytes: 3
            }))
        ));
    }

    #[test]
    fn one_gap_is_filled_with_at_most_a_second_whatever_the_chunk_size() {
        // Before: 249 missing chunks x 8,000 samples each = 2 M samples of silence.
        let mut s = Session::new();
        s.apply(start()).unwrap();
        s.apply(sized_chunk(1, 1, 8000)).unwrap();
        s.apply(sized_chunk(250, 1, 8000)).unwrap();
        s.apply(ProviderEvent::Stop).unwrap();
        assert_eq!(drain(&mut s).len(), 8000 + 8000 + 8000);
        assert_eq!(s.stats(Track::Caller).missing_chunks, 248);
        assert_eq!(s.media_ms(Track::Caller), 3000);
    }

    #[test]
    fn filled_silence_never_exceeds_the_audio_received() {
        // Tiny chunks with counter jumps: each jump may only spend what was received.
        let mut s = Session::new();
        s.apply(start()).unwrap();
        let mut n = 1;
        for _ in 0..50 {
            s.apply(chunk(n, 1)).unwrap();
            n += MAX_GAP_FILL_CHUNKS;
        }
        s.apply(ProviderEvent::Stop).unwrap();
        let audio = drain(&mut s);
        let received = 50 * 4;
        assert!(audio.len() <= 2 * received, "{} samples", audio.len());
    }

    #[test]
    fn a_chunk_longer_than_a_second_is_refused() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        assert_eq!(
            s.apply(sized_chunk(1, 1, 8001)),
            Err(SessionError::ChunkTooLarge {
                samples: 8001,
                max: 8000
            })
        );
        assert_eq!(s.apply(sized_chunk(1, 1, 8000)), Ok(Step::Audio));
    }

    #[test]
    fn buffers_grown_by_one_burst_are_released_once_drained() {
        let mut s = Session::new();
        s.apply(start()).unwrap();
        s.apply(sized_chunk(1, 1, 8000)).unwrap();
        assert!(s.capacity_samples() > 16_000);
        drain(&mut s);
        s.apply(chunk(2, 1)).unwrap();
        drain(&mut s);
        // Ready, decode and base64 scratch each back to at most a quarter of SHRINK_ABOVE.
        assert!(
            s.capacity_samples() <= 3 * SHRINK_ABOVE / 4,
            "{} samples kept",
            s.capacity_samples()
        );
    }
}
