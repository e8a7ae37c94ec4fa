//! Asterisk AudioSocket (the `AudioSocket(uuid,host:port)` dialplan app, the `AudioSocket/`
//! channel driver, ARI externalMedia with `encapsulation=audiosocket`): its own protocol over
//! TCP, not a WebSocket. Type-length-value frames: a kind byte, a 16-bit **big-endian** length,
//! the payload. The UUID frame (16 raw bytes) comes first; audio is signed linear mono,
//! little-endian, at the rate its kind names (`0x10` 8 kHz, `0x11`–`0x18` 12 to 192 kHz, from
//! `res_audiosocket.c`); `0x03` is a DTMF digit, `0x00` a hangup, `0xff` an Asterisk-side error.
//!
//! [`FrameStream`] takes the bytes of the connection in any split and gives the same typed
//! [`ProviderEvent`]s the WebSocket adapters give, so the call runs through the one engine:
//! the call id is the UUID as text, one track (the caller), media time from sample counts. The
//! start is announced with the first audio frame, because only an audio frame's kind names the
//! rate. Bounded: a length over the cap is refused from the header alone, before any of the
//! payload is buffered; anything but the UUID first, a second UUID, or a rate that changes
//! mid-call ends the stream. Calls are reported as provider `asterisk`.

use super::{
    CallIdRule, Payload, ProtocolError, Provider, ProviderEvent, StreamStart, Track, call_id,
    check_rate, raw_frame, unknown_event,
};
use crate::codec::Codec;
use std::collections::BTreeMap;

const P: Provider = Provider::Asterisk;

/// Asterisk asks for the call to be hung up (also what it reads when we hang up).
pub const KIND_HANGUP: u8 = 0x00;
/// The connection's UUID: 16 raw bytes, the first frame.
pub const KIND_UUID: u8 = 0x01;
/// One DTMF digit, as one ASCII byte (Asterisk 2025 and later).
pub const KIND_DTMF: u8 = 0x03;
/// Audio, signed linear 8 kHz: what the dialplan app always sends.
pub const KIND_AUDIO: u8 = 0x10;
/// An Asterisk-side error (payload: an optional code, `0x01` = the caller hung up).
pub const KIND_ERROR: u8 = 0xff;

/// Bytes before the payload: kind, then the length.
pub const HEADER_BYTES: usize = 3;

/// The default cap on one frame's payload: 16 KiB is 1 s of the dialplan app's 8 kHz audio and
/// 170 ms at 48 kHz, against the 20 ms (320 to 1,920 bytes) Asterisk sends.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Audio kinds and their rates (`AST_AUDIOSOCKET_KIND_AUDIO` to `…_SLIN192`).
const AUDIO_KINDS: [(u8, u32); 9] = [
    (KIND_AUDIO, 8000),
    (0x11, 12000),
    (0x12, 16000),
    (0x13, 24000),
    (0x14, 32000),
    (0x15, 44_100),
    (0x16, 48000),
    (0x17, 96000),
    (0x18, 192_000),
];

/// The rates analysed: those of Asterisk's formats up to `slin48`, as on chan_websocket.
const RATES_HZ: [u32; 7] = [8000, 12000, 16000, 24000, 32000, 44_100, 48000];

/// The rate an audio kind carries.
fn rate_of(kind: u8) -> Option<u32> {
    AUDIO_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, r)| *r)
}

/// The audio kind for `rate_hz`, if AudioSocket has one.
pub fn audio_kind(rate_hz: u32) -> Option<u8> {
    AUDIO_KINDS
        .iter()
        .find(|(_, r)| *r == rate_hz)
        .map(|(k, _)| *k)
}

/// One frame off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `0x00`.
    Hangup,
    /// `0x01`: the 16 raw bytes of the UUID.
    Uuid(&'a [u8; 16]),
    /// `0x03`: a DTMF digit.
    Dtmf(char),
    /// `0x10`–`0x18`: little-endian 16-bit samples at `rate_hz`.
    Audio {
        /// The rate the kind names.
        rate_hz: u32,
        /// The samples, as sent.
        pcm: &'a [u8],
    },
    /// `0xff`: the payload is Asterisk's error code, if any.
    Error(&'a [u8]),
    /// A kind this decoder does not know (a later Asterisk may add some, as it added DTMF).
    Unknown(u8),
}

impl Frame<'_> {
    fn name(&self) -> &'static str {
        match self {
            Frame::Hangup => "hangup",
            Frame::Uuid(_) => "UUID",
            Frame::Dtmf(_) => "DTMF",
            Frame::Audio { .. } => "audio",
            Frame::Error(_) => "error",
            Frame::Unknown(_) => "unknown",
        }
    }
}

/// Why the byte stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A header announced a payload over the cap (refused before any of it is buffered).
    #[error(
        "AudioSocket frame of kind 0x{kind:02x} announces {len_bytes} bytes, over the {max_bytes}-byte limit"
    )]
    TooLong {
        /// The frame's kind.
        kind: u8,
        /// The length its header announced.
        len_bytes: usize,
        /// The cap.
        max_bytes: usize,
    },
    /// A frame that breaks the protocol (wrong order, wrong size, unsupported rate).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

fn malformed(detail: impl Into<String>) -> FrameError {
    FrameError::Protocol(ProtocolError::Malformed {
        provider: P.name(),
        detail: detail.into(),
    })
}

/// Reads one frame from the front of `bytes`: `Ok(None)` until the whole frame is there, else
/// the frame and how many bytes it took. A header over `max_payload_bytes` is refused at once.
pub fn parse_frame(
    bytes: &[u8],
    max_payload_bytes: usize,
) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let [kind, hi, lo, rest @ ..] = bytes else {
        return Ok(None);
    };
    let (kind, len) = (*kind, usize::from(u16::from_be_bytes([*hi, *lo])));
    if len > max_payload_bytes {
        return Err(FrameError::TooLong {
            kind,
            len_bytes: len,
            max_bytes: max_payload_bytes,
        });
    }
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    let frame = match kind {
        KIND_HANGUP => Frame::Hangup,
        KIND_UUID => Frame::Uuid(
            payload
                .try_into()
                .map_err(|_| malformed(format!("UUID frame of {len} bytes (16 expected)")))?,
        ),
        KIND_DTMF => match payload {
            [d] if matches!(d, b'0'..=b'9' | b'A'..=b'D' | b'a'..=b'd' | b'*' | b'#') => {
                Frame::Dtmf(char::from(d.to_ascii_uppercase()))
            }
            _ => return Err(malformed("DTMF frame is not one digit (0-9, A-D, * or #)")),
        },
        KIND_ERROR => Frame::Error(payload),
        k => match rate_of(k) {
            Some(rate_hz) => Frame::Audio {
                rate_hz,
                pcm: payload,
            },
            None => Frame::Unknown(k),
        },
    };
    Ok(Some((frame, HEADER_BYTES + len)))
}

/// The UUID in its usual text form (`8-4-4-4-12`, lower-case hex).
pub fn uuid_text(uuid: &[u8; 16]) -> String {
    let h = hex::encode(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The 16 bytes of a UUID in text form (hyphens optional), as the dialplan app parses it.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// One frame on the wire: header and payload (the length is capped at `u16::MAX` bytes; longer
/// payloads are cut, which no caller here sends).
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A call as Asterisk sends it: the UUID frame, `caller` as audio frames of `chunk_ms` at
/// `rate_hz` (which must have an audio kind), then a hangup frame if `hangup`.
pub fn render(
    uuid: &[u8; 16],
    rate_hz: u32,
    chunk_ms: u32,
    caller: &[i16],
    hangup: bool,
) -> Option<Vec<Vec<u8>>> {
    let kind = audio_kind(rate_hz)?;
    let n = (rate_hz as usize * chunk_ms as usize / 1000).max(1);
    let mut out = vec![frame(KIND_UUID, uuid)];
    let mut wire = Vec::with_capacity(n * 2);
    for samples in caller.chunks(n) {
        wire.clear();
        Codec::L16.encode_into(samples, &mut wire);
        out.push(frame(kind, &wire));
    }
    if hangup {
        out.push(frame(KIND_HANGUP, &[]));
    }
    Some(out)
}

/// One AudioSocket connection's bytes, in, as typed events, out. Holds at most one partial
/// frame plus what one [`FrameStream::push`] adds.
#[derive(Debug)]
pub struct FrameStream {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already read.
    consumed: usize,
    max_payload_bytes: usize,
    /// The UUID, once its frame arrived.
    uuid: Option<[u8; 16]>,
    /// The audio rate, once the start was announced.
    rate_hz: Option<u32>,
    frames: u64,
    /// A hangup, an error frame or a refused frame ended the stream.
    done: bool,
}

impl FrameStream {
    /// A connection's stream, refusing frames whose payload is over `max_payload_bytes`.
    pub fn new(max_payload_bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(1024),
            consumed: 0,
            max_payload_bytes: max_payload_bytes.min(usize::from(u16::MAX)),
            uuid: None,
            rate_hz: None,
            frames: 0,
            done: false,
        }
    }

    /// Appends received bytes. Read [`FrameStream::next_event`] until it returns `None` before
    /// the next push: what is held is then at most one partial frame.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes of a frame not yet complete (a connection that ends now ends inside a frame).
    pub fn partial_bytes(&self) -> usize {
        if self.done {
            0
        } else {
            self.buf.len() - self.consumed
        }
    }

    /// Bytes the stream's buffer holds room for: what a peer has made it keep.
    pub fn capacity_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// The next event from the bytes pushed so far; `None` when more bytes are needed or the
    /// stream has ended. An error ends the stream, except an unknown kind after the UUID
    /// ([`ProtocolError::UnknownEvent`]: the frame is skipped, its length is trusted).
    pub fn next_event(&mut self) -> Option<Result<ProviderEvent<'_>, FrameError>> {
        if self.done {
            return None;
        }
        let (frame, len) = match parse_frame(&self.buf[self.consumed..], self.max_payload_bytes) {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let event = match (frame, self.uuid) {
            (Frame::Uuid(u), None) => {
                self.uuid = Some(*u);
                Ok(ProviderEvent::Ignored { kind: "uuid" })
            }
            (Frame::Uuid(_), Some(_)) => Err(malformed("a second UUID frame")),
            (f, None) => Err(malformed(format!(
                "{} frame before the UUID frame (the UUID must come first)",
                f.name()
            ))),
            (Frame::Audio { rate_hz, pcm }, Some(uuid)) => match self.rate_hz {
                // Announced first; the frame stays unread and comes back as media next.
                None => {
                    let start = start(&uuid, rate_hz);
                    self.done = start.is_err();
                    self.rate_hz = Some(rate_hz);
                    return Some(start);
                }
                Some(r) if r != rate_hz => Err(malformed(format!(
                    "audio at {rate_hz} Hz after audio at {r} Hz (the rate may not change)"
                ))),
                Some(_) => Ok(raw_frame(&mut self.frames, Payload::Raw(pcm))),
            },
            (Frame::Dtmf(d), _) => Ok(ProviderEvent::Dtmf {
                digit: d.to_string(),
            }),
            // An error frame ends the audio as a hangup does (its usual code, 0x01, is the
            // caller hanging up).
            (Frame::Hangup | Frame::Error(_), _) => {
                self.done = true;
                Ok(ProviderEvent::Stop)
            }
            (Frame::Unknown(k), _) => Err(FrameError::Protocol(unknown_event(
                P,
                &format!("AudioSocket kind 0x{k:02x}"),
            ))),
        };
        self.consumed += len;
        if let Err(FrameError::Protocol(e)) = &event {
            self.done |= !e.is_recoverable();
        }
        Some(event)
    }
}

/// The start of a call whose first audio is at `rate_hz`.
fn start(uuid: &[u8; 16], rate_hz: u32) -> Result<ProviderEvent<'static>, FrameError> {
    let rate = check_rate(P, Some(u64::from(rate_hz)), &RATES_HZ)?;
    Ok(ProviderEvent::Start(StreamStart {
        call_id: call_id(P, &CallIdRule::GENERIC, &uuid_text(uuid))?,
        stream_id: None,
        account_id: None,
        codec: Some(Codec::L16),
        sample_rate_hz: rate,
        channels: 1,
        tracks: vec![Track::Caller],
        custom_parameters: BTreeMap::new(),
        from: None,
        to: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::session::{Session, Step};
    use proptest::collection::vec;
    use proptest::prelude::*;

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a,
        0xbc,
    ];
    const UUID_TEXT: &str = "12345678-1234-1234-1234-123456789abc";

    /// The documented layout, written out byte by byte: UUID, two 20 ms slin frames, a DTMF
    /// digit, a hangup.
    fn documented_call() -> Vec<u8> {
        let mut b = vec![0x01, 0x00, 0x10];
        b.extend_from_slice(&UUID);
        for s in [1i16, -2] {
            b.extend_from_slice(&[0x10, 0x01, 0x40]);
            b.extend(std::iter::repeat_n(s.to_le_bytes(), 160).flatten());
        }
        b.extend_from_slice(&[0x03, 0x00, 0x01, b'5']);
        b.extend_from_slice(&[0x00, 0x00, 0x00]);
        b
    }

    /// Pushes `pieces` in turn, reading every event after each; events in `Debug` form.
    fn events(pieces: &[&[u8]]) -> Vec<String> {
        let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
        let mut out = Vec::new();
        for p in pieces {
            s.push(p);
            while let Some(ev) = s.next_event() {
                out.push(format!("{ev:?}"));
            }
        }
        out
    }

    #[test]
    fn the_documented_frames_become_typed_events() {
        let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
        s.push(&documented_call());
        assert_eq!(
            s.next_event(),
            Some(Ok(ProviderEvent::Ignored { kind: "uuid" }))
        );
        let Some(Ok(ProviderEvent::Start(start))) = s.next_event() else {
            panic!("the first audio frame announces the start")
        };
        assert_eq!(start.call_id.as_str(), UUID_TEXT);
        assert_eq!(
            (start.codec, start.sample_rate_hz, start.tracks.as_slice()),
            (Some(Codec::L16), 8000, &[Track::Caller][..])
        );
        for (n, sample) in [(1, 1i16), (2, -2)] {
            let Some(Ok(ProviderEvent::Media(m))) = s.next_event() else {
                panic!("audio frame {n}")
            };
            assert_eq!((m.track, m.sequence), (Track::Caller, Some(n)));
            let Payload::Raw(pcm) = m.payload else {
                panic!()
            };
            assert_eq!(pcm.len(), 320);
            assert_eq!(&pcm[..2], &sample.to_le_bytes());
        }
        assert_eq!(
            s.next_event(),
            Some(Ok(ProviderEvent::Dtmf { digit: "5".into() }))
        );
        assert_eq!(s.next_event(), Some(Ok(ProviderEvent::Stop)));
        assert_eq!(s.next_event(), None);
        assert_eq!(s.partial_bytes(), 0);
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let bytes = documented_call();
        let whole = events(&[&bytes]);
        assert_eq!(whole.len(), 6);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(events(&[a, b]), whole, "split at {cut}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(events(&bytewise), whole);
    }

    #[test]
    fn the_rate_comes_from_the_audio_kind() {
        for (kind, rate) in [(0x11, 12000), (0x12, 16000), (0x15, 44_100), (0x16, 48000)] {
            let mut b = frame(KIND_UUID, &UUID);
            b.extend(frame(kind, &[0; 64]));
            let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
            s.push(&b);
            s.next_event();
            let Some(Ok(ProviderEvent::Start(start))) = s.next_event() else {
                panic!("0x{kind:02x}")
            };
            assert_eq!(start.sample_rate_hz, rate);
        }
        // 96 and 192 kHz are AudioSocket kinds warmline does not analyse.
        let mut b = frame(KIND_UUID, &UUID);
        b.extend(frame(0x17, &[0; 64]));
        let ev = events(&[&b]);
        assert!(ev[1].contains("UnsupportedRate"), "{ev:?}");
        assert_eq!(ev.len(), 2, "the stream ends there");
    }

    #[test]
    fn refusals_are_specific_and_end_the_stream() {
        let refused = |bytes: Vec<u8>, what: &str| {
            let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
            s.push(&bytes);
            let err = loop {
                match s.next_event() {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break e,
                    None => panic!("{what}: accepted"),
                }
            };
            assert!(s.next_event().is_none(), "{what}: the stream ended");
            err.to_string()
        };
        let audio = frame(KIND_AUDIO, &[0; 320]);
        let e = refused(audio.clone(), "audio first");
        assert!(e.contains("audio frame before the UUID frame"), "{e}");
        let e = refused(
            [frame(0x42, &[1]), frame(KIND_UUID, &UUID)].concat(),
            "junk",
        );
        assert!(e.contains("unknown frame before the UUID"), "{e}");
        let e = refused(frame(KIND_UUID, &UUID[..15]), "short UUID");
        assert!(e.contains("UUID frame of 15 bytes"), "{e}");
        let two = [frame(KIND_UUID, &UUID), frame(KIND_UUID, &UUID)].concat();
        assert!(refused(two, "two UUIDs").contains("a second UUID frame"));
        let changed = [
            frame(KIND_UUID, &UUID),
            audio.clone(),
            frame(0x12, &[0; 640]),
        ]
        .concat();
        let e = refused(changed, "rate change");
        assert!(
            e.contains("audio at 16000 Hz after audio at 8000 Hz"),
            "{e}"
        );
        let dtmf = [frame(KIND_UUID, &UUID), frame(KIND_DTMF, b"x")].concat();
        assert!(refused(dtmf, "bad DTMF").contains("DTMF frame is not one digit"));
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        let mut s = FrameStream::new(1000);
        s.push(&frame(KIND_UUID, &UUID));
        s.next_event();
        // Only the header of a 40,000-byte frame has arrived.
        s.push(&[KIND_AUDIO, 0x9c, 0x40]);
        assert_eq!(
            s.next_event(),
            Some(Err(FrameError::TooLong {
                kind: KIND_AUDIO,
                len_bytes: 40_000,
                max_bytes: 1000
            }))
        );
        s.push(&[0; 4096]);
        assert_eq!(s.next_event(), None);
        assert_eq!(s.partial_bytes(), 0, "nothing more is buffered");
    }

    #[test]
    fn an_unknown_kind_after_the_uuid_is_skipped() {
        let b = [
            frame(KIND_UUID, &UUID),
            frame(0x42, &[7; 9]),
            frame(KIND_AUDIO, &[0; 320]),
        ]
        .concat();
        let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
        s.push(&b);
        s.next_event();
        match s.next_event() {
            Some(Err(FrameError::Protocol(e))) => {
                assert!(e.is_recoverable());
                assert!(e.to_string().contains("AudioSocket kind 0x42"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.next_event(), Some(Ok(ProviderEvent::Start(_)))));
        assert!(matches!(s.next_event(), Some(Ok(ProviderEvent::Media(_)))));
    }

    #[test]
    fn an_error_frame_ends_the_audio_like_a_hangup() {
        let b = [
            frame(KIND_UUID, &UUID),
            frame(KIND_AUDIO, &[0; 320]),
            frame(KIND_ERROR, &[0x01]),
            frame(KIND_AUDIO, &[0; 320]),
        ]
        .concat();
        let ev = events(&[&b]);
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[3], "Ok(Stop)");
    }

    #[test]
    fn a_render_reads_back_to_the_same_pcm_through_a_session() {
        for rate in [8000, 16000] {
            let caller: Vec<i16> = (0..rate as i32 + 37)
                .map(|i| ((i * 37) % 60_000 - 30_000) as i16)
                .collect();
            let frames = render(&UUID, rate, 20, &caller, true).unwrap();
            let mut s = FrameStream::new(MAX_PAYLOAD_BYTES);
            let mut session = Session::new();
            let mut heard = Vec::new();
            let mut stopped = false;
            s.push(&frames.concat());
            while let Some(ev) = s.next_event() {
                stopped |= session.apply(ev.unwrap()).unwrap() == Step::Stopped;
                heard.extend_from_slice(&session.take_audio(Track::Caller));
            }
            assert!(stopped);
            assert_eq!(heard, caller, "{rate}");
            assert_eq!(session.start().unwrap().call_id.as_str(), UUID_TEXT);
        }
        assert_eq!(parse_uuid(UUID_TEXT), Some(UUID));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        assert!(render(&UUID, 11025, 20, &[0; 10], false).is_none());
    }

    /// Bytes in arbitrary pieces, with or without a valid UUID and start in front.
    fn feed(prefix: bool, pieces: &[Vec<u8>]) {
        const CAP: usize = 4096;
        let mut s = FrameStream::new(CAP);
        let mut session = Session::new();
        let (mut sent, mut audio, mut largest) = (0usize, 0usize, 0usize);
        let head = [frame(KIND_UUID, &UUID), frame(KIND_AUDIO, &[0; 2])].concat();
        let pieces = prefix.then_some(&head).into_iter().chain(pieces);
        for p in pieces {
            sent += p.len();
            largest = largest.max(p.len());
            s.push(p);
            while let Some(ev) = s.next_event() {
                if let Ok(ev) = ev {
                    let _ = session.apply(ev);
                }
                audio += session.take_audio(Track::Caller).len();
            }
            // L16 is two bytes a sample; nothing is filled in (no chunk counters).
            assert!(audio <= sent / 2, "{audio} samples from {sent} bytes");
            assert!(s.partial_bytes() < HEADER_BYTES + CAP);
            assert!(
                s.capacity_bytes() <= 2 * (HEADER_BYTES + CAP + largest) + 1024,
                "{} bytes held after {sent}",
                s.capacity_bytes()
            );
        }
    }

    /// Frames of any kind and length (the length field sometimes lying).
    fn frames() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                Just(KIND_AUDIO),
                Just(0x12),
                Just(KIND_DTMF),
                Just(KIND_UUID),
                Just(KIND_HANGUP),
                any::<u8>()
            ],
            vec(any::<u8>(), 0..700),
            any::<Option<u16>>(),
        )
            .prop_map(|(kind, payload, lie)| {
                let mut f = frame(kind, &payload);
                if let Some(len) = lie {
                    f[1..3].copy_from_slice(&len.to_be_bytes());
                }
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_in_any_split_stay_within_the_bounds(
            prefix in any::<bool>(),
            pieces in vec(vec(any::<u8>(), 0..2000), 0..12),
        ) {
            feed(prefix, &pieces);
        }

        #[test]
        fn frames_of_any_kind_and_length_stay_within_the_bounds(
            frames in vec(frames(), 0..24),
            cuts in vec(1usize..900, 1..8),
        ) {
            // The frames concatenated, then cut into pieces of the chosen sizes, cycled.
            let bytes = frames.concat();
            let mut pieces = Vec::new();
            let mut rest = &bytes[..];
            for n in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                pieces.push(a.to_vec());
                rest = b;
            }
            feed(true, &pieces);
        }
    }
}
