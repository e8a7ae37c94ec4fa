//! Provider wire protocols. Each provider is one file whose [`Adapter`] maps that provider's
//! WebSocket messages onto the provider-agnostic [`ProviderEvent`]; everything after the adapter
//! ([`session`], the pipeline) never sees provider JSON. Each file also renders the provider's
//! messages from PCM ([`twilio::render`] and its siblings), for fixtures, `demo` and the load
//! generator; a render parses back, through a [`session::Session`], to the same PCM after the
//! codec round trip.
//!
//! Pure: no sockets, no clock. Parsing borrows from the message where it can (the base64 payload
//! is not copied), and a media message is parsed once.

pub mod asterisk;
pub mod audiohook;
pub mod call_id;
pub mod exotel;
pub mod freeswitch;
pub mod plivo;
#[cfg(test)]
mod proptests;
mod provider;
pub mod session;
pub mod telnyx;
pub mod track;
pub mod twilio;
pub mod vonage;

pub use call_id::{CallId, CallIdError, CallIdRule};
pub use provider::{AuthRule, Provider, ProviderSpec};

use crate::codec::Codec;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
pub use track::Track;

/// What a provider's start message tells us about the stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStart {
    /// The provider's call id (Twilio `callSid`, Telnyx `call_control_id`, Plivo `callId`,
    /// Exotel `call_sid`, Vonage a header or generated).
    pub call_id: CallId,
    /// The provider's stream id, where it has one.
    pub stream_id: Option<String>,
    /// The provider account, where given.
    pub account_id: Option<String>,
    /// Codec of inbound media (never assumed; read from the start message).
    pub codec: Option<Codec>,
    /// Sample rate of inbound media.
    pub sample_rate_hz: u32,
    /// Channels (1 for every provider here).
    pub channels: u16,
    /// Tracks the provider will send.
    pub tracks: Vec<Track>,
    /// Custom parameters / extra headers.
    pub custom_parameters: BTreeMap<String, String>,
    /// Caller number, where given.
    pub from: Option<String>,
    /// Called number, where given.
    pub to: Option<String>,
}

/// A media payload as it came off the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    /// Base64 text (JSON providers).
    Base64(Cow<'a, str>),
    /// Raw bytes (Vonage binary frames).
    Raw(&'a [u8]),
    /// Raw bytes of two interleaved channels, caller first (FreeSWITCH stereo). The chunk's
    /// `track` is ignored.
    RawStereo(&'a [u8]),
}

/// One chunk of audio for one track.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaChunk<'a> {
    /// Which side.
    pub track: Track,
    /// The message's sequence number (counts all messages), where the provider sends one.
    pub sequence: Option<u64>,
    /// The per-track chunk counter, where the provider sends one. Used to reorder and spot gaps.
    pub chunk: Option<u64>,
    /// The provider's timestamp in ms (semantics differ per provider; informational only).
    pub timestamp_ms: Option<u64>,
    /// The audio.
    pub payload: Payload<'a>,
}

/// Everything a provider can tell us, provider-agnostic.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent<'a> {
    /// The socket-level hello (`connected`); Telnyx may carry its stream auth token here.
    Connected {
        /// In-band auth token, if the provider sends one.
        auth_token: Option<String>,
    },
    /// The stream started.
    Start(StreamStart),
    /// Audio.
    Media(MediaChunk<'a>),
    /// A DTMF digit.
    Dtmf {
        /// The digit.
        digit: String,
    },
    /// A mark / checkpoint echo.
    Mark {
        /// Its name.
        name: String,
    },
    /// The provider ended the stream.
    Stop,
    /// A known message warmline has no use for (playback acks, provider-side errors).
    Ignored {
        /// The provider's event name.
        kind: &'static str,
    },
}

/// Why a provider message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not valid JSON, or JSON of the wrong shape for its `event`. Fatal: close 1007.
    #[error("malformed {provider} message: {detail}")]
    Malformed {
        /// Provider name.
        provider: &'static str,
        /// serde's description, with line and column.
        detail: String,
    },
    /// A well-formed message with an `event` this adapter does not know. Recoverable: logged,
    /// counted and skipped (providers add events over time).
    #[error("unknown {provider} event {event:?}")]
    UnknownEvent {
        /// Provider name.
        provider: &'static str,
        /// The event name as sent (truncated to 64 bytes).
        event: String,
    },
    /// The start message names a codec warmline does not decode. Fatal: close 1003.
    #[error("unsupported codec {encoding:?} from {provider}")]
    UnsupportedCodec {
        /// Provider name.
        provider: &'static str,
        /// The encoding as sent.
        encoding: String,
    },
    /// A sample rate the provider does not document. Fatal: close 1003.
    #[error("unsupported sample rate {rate:?} from {provider}")]
    UnsupportedRate {
        /// Provider name.
        provider: &'static str,
        /// The rate as sent.
        rate: String,
    },
    /// A binary frame on a JSON-only protocol. Fatal: close 1003.
    #[error("binary frame on {provider}'s JSON protocol")]
    UnexpectedBinary {
        /// Provider name.
        provider: &'static str,
    },
    /// Binary audio before the stream's format is known (Vonage). Fatal: close 1008.
    #[error("binary audio before websocket:connected on {provider}")]
    BinaryBeforeStart {
        /// Provider name.
        provider: &'static str,
    },
    /// The start message's call id breaks the provider's [`CallIdRule`] (a newline, an escape,
    /// a `/`, a dot segment, too long). Fatal: close 1008.
    #[error("refused {provider} start: {reason}")]
    BadCallId {
        /// Provider name.
        provider: &'static str,
        /// What is wrong with it (never the id itself).
        reason: CallIdError,
    },
    /// `/v1/media/{provider}` with an unknown provider. HTTP 404.
    #[error("unknown provider {0:?} (expected {names})", names = provider_names())]
    UnknownProvider(String),
    /// A recorded stream whose first lines no adapter recognises.
    #[error(
        "no provider recognises this recording's first lines (expected {}); name one with --provider",
        provider_names()
    )]
    UnknownRecording,
}

fn provider_names() -> String {
    Provider::ALL.map(Provider::name).join(", ")
}

impl ProtocolError {
    /// Whether the stream can go on after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, ProtocolError::UnknownEvent { .. })
    }
}

/// A WebSocket message to send (rendering) or as received (replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// What to render: ids, codec and chunking, as a provider would send them.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSpec {
    /// Call id to put in the start message.
    pub call_id: String,
    /// Stream id to put in the start message.
    pub stream_id: String,
    /// Wire codec.
    pub codec: Codec,
    /// Wire sample rate (the PCM passed to render is at this rate).
    pub sample_rate_hz: u32,
    /// Chunk length in ms (20 for most providers; Exotel sends ~100).
    pub chunk_ms: u32,
    /// Custom parameters to include.
    pub custom_parameters: BTreeMap<String, String>,
    /// Whether to end with the provider's stop message (false: the socket just closes).
    pub send_stop: bool,
}

impl RenderSpec {
    /// A 20 ms, stop-terminated spec with the provider's usual codec.
    pub fn new(call_id: &str, codec: Codec, sample_rate_hz: u32) -> Self {
        Self {
            call_id: call_id.to_owned(),
            stream_id: format!("MZ{call_id}"),
            codec,
            sample_rate_hz,
            chunk_ms: 20,
            custom_parameters: BTreeMap::new(),
            send_stop: true,
        }
    }

    /// Samples per chunk at the spec's rate.
    pub fn chunk_samples(&self) -> usize {
        (self.sample_rate_hz as usize * self.chunk_ms as usize / 1000).max(1)
    }
}

/// An adapter for one stream of one provider. Holds whatever per-stream state the provider's
/// protocol needs (e.g. Vonage's content type from its first text frame).
pub trait Adapter: Send {
    /// Which provider.
    fn provider(&self) -> Provider;

    /// Parses one text frame.
    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError>;

    /// Parses one binary frame. JSON-only providers refuse it.
    fn parse_binary<'a>(&mut self, _bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(ProtocolError::UnexpectedBinary {
            provider: self.provider().name(),
        })
    }
}

// === shared parsing helpers for the adapters ===

/// Providers send numbers as strings or numbers; accept both. Values that are not a
/// non-negative integer (negative, `"abc"`, `1e400`) read as absent rather than failing the
/// message: counters are advisory. Objects, arrays and booleans are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LenientU64(pub Option<u64>);

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor: `untagged` would buffer every value first, and this runs
        // three times per media message.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientU64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientU64, E> {
                Ok(LenientU64(Some(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientU64, E> {
                Ok(LenientU64(u64::try_from(v).ok()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientU64, E> {
                // `as` saturates; a fraction of a counter is still that counter.
                Ok(LenientU64((v.is_finite() && v >= 0.0).then_some(v as u64)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LenientU64, E> {
                Ok(LenientU64(v.trim().parse().ok()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LenientU64, E> {
                Ok(LenientU64(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<LenientU64, E> {
                Ok(LenientU64(None))
            }
            fn visit_some<D2: serde::Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<LenientU64, D2::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_any(V)
    }
}

/// An id or name that should be a string but may arrive as a number. Anything else reads as
/// absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LenientString(pub Option<String>);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LenientString(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

/// Custom parameters in every shape providers use: a JSON object (values that are not strings
/// keep their JSON text, so numbers stay numbers), a list of `{"name","value"}` pairs (Telnyx's
/// request shape), or a `"k=v;k2=v2"` string (Plivo `extra_headers`). Never fails: parameters
/// are informational.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LenientParams(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for LenientParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        let text = |v: Value| match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        let mut out = BTreeMap::new();
        match Value::deserialize(d)? {
            Value::Object(map) => {
                for (k, v) in map {
                    if let Some(v) = text(v) {
                        out.insert(k, v);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    let Value::Object(mut pair) = item else {
                        continue;
                    };
                    let name = pair.remove("name").and_then(text);
                    let value = pair.remove("value").and_then(text);
                    if let (Some(k), Some(v)) = (name, value) {
                        out.insert(k, v);
                    }
                }
            }
            Value::String(s) => out = parse_kv_pairs(&s),
            _ => {}
        }
        Ok(LenientParams(out))
    }
}

/// Parses `"k=v;k2=v2"`; pieces without `=` are kept with an empty value.
pub(crate) fn parse_kv_pairs(s: &str) -> BTreeMap<String, String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

/// The part of a JSON provider message that media needs, read in one pass: media is >99 % of
/// traffic, so it must not be parsed twice. Other events are parsed again as their own type.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_opt_str")]
    pub event: Option<Cow<'a, str>>,
    // Two fields rather than an alias: an alias makes a message carrying both spellings a
    // duplicate-field error.
    #[serde(rename = "sequenceNumber", default)]
    pub sequence_camel: LenientU64,
    #[serde(rename = "sequence_number", default)]
    pub sequence_snake: LenientU64,
    #[serde(borrow, default)]
    pub media: Option<MediaBody<'a>>,
}

/// `media{track, chunk, timestamp, payload}`: the same shape at Twilio, Telnyx, Plivo and Exotel.
#[derive(Deserialize)]
pub(crate) struct MediaBody<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_opt_str")]
    pub track: Option<Cow<'a, str>>,
    #[serde(default)]
    pub chunk: LenientU64,
    #[serde(default)]
    pub timestamp: LenientU64,
    #[serde(borrow, default, deserialize_with = "borrowed_opt_str")]
    pub payload: Option<Cow<'a, str>>,
}

/// An optional string that borrows from the message when it has no escapes. serde's own
/// `Option<Cow<str>>` always copies (`borrow` reaches only a `Cow` that is the field itself):
/// that was three allocations per media message, the payload among them.
fn borrowed_opt_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// Parses the envelope and takes out its event name.
pub(crate) fn parse_envelope<'a>(
    provider: Provider,
    text: &'a str,
) -> Result<(Cow<'a, str>, Envelope<'a>), ProtocolError> {
    let mut env: Envelope<'a> = parse_as(provider, text)?;
    let event = env.event.take().ok_or_else(|| ProtocolError::Malformed {
        provider: provider.name(),
        detail: "no \"event\" field".into(),
    })?;
    Ok((event, env))
}

/// Turns an envelope whose event is `media` into a media chunk. `untracked` is the track of
/// media without a `track` field (providers that stream the caller only).
pub(crate) fn media_event<'a>(
    provider: Provider,
    env: Envelope<'a>,
    untracked: Track,
) -> Result<ProviderEvent<'a>, ProtocolError> {
    let malformed = |detail: String| ProtocolError::Malformed {
        provider: provider.name(),
        detail,
    };
    let media = env
        .media
        .ok_or_else(|| malformed("media message without a \"media\" object".into()))?;
    let payload = media
        .payload
        .ok_or_else(|| malformed("media message without a payload".into()))?;
    let track = match media.track.as_deref() {
        None => untracked,
        Some(t) => track_from_name(t).ok_or_else(|| {
            malformed(format!(
                "unknown media track {:?}",
                t.chars().take(32).collect::<String>()
            ))
        })?,
    };
    Ok(ProviderEvent::Media(MediaChunk {
        track,
        sequence: env.sequence_camel.0.or(env.sequence_snake.0),
        chunk: media.chunk.0,
        timestamp_ms: media.timestamp.0,
        payload: Payload::Base64(payload),
    }))
}

/// Tracks named in a start message; the caller alone when none are named.
pub(crate) fn tracks_from_names(names: &[String]) -> Vec<Track> {
    let mut tracks: Vec<Track> = Vec::with_capacity(2);
    for name in names {
        let found: &[Track] = match name.as_str() {
            "both" | "both_tracks" => &Track::ALL,
            other => match track_from_name(other) {
                Some(Track::Caller) => &[Track::Caller],
                Some(Track::Agent) => &[Track::Agent],
                None => &[],
            },
        };
        for t in found {
            if !tracks.contains(t) {
                tracks.push(*t);
            }
        }
    }
    if tracks.is_empty() {
        tracks.push(Track::Caller);
    }
    tracks
}

/// Splits `caller` (and `agent`) into chunks of `spec.chunk_samples()` and calls `emit` for each
/// non-empty one, interleaved chunk by chunk as a provider sends both tracks: `(track, index
/// from 0, wire bytes in spec.codec)`. Shared by the JSON renderers.
pub(crate) fn for_each_chunk(
    spec: &RenderSpec,
    caller: &[i16],
    agent: Option<&[i16]>,
    mut emit: impl FnMut(Track, u64, &[u8]),
) {
    let n = spec.chunk_samples();
    let chunks = caller.len().max(agent.map_or(0, <[i16]>::len)).div_ceil(n);
    let mut wire = Vec::with_capacity(n * spec.codec.bytes_per_sample());
    for i in 0..chunks {
        for (track, pcm) in [(Track::Caller, Some(caller)), (Track::Agent, agent)] {
            let Some(pcm) = pcm else { continue };
            let Some(samples) = pcm.get(i * n..((i + 1) * n).min(pcm.len())) else {
                continue;
            };
            if samples.is_empty() {
                continue;
            }
            wire.clear();
            spec.codec.encode_into(samples, &mut wire);
            emit(track, i as u64, &wire);
        }
    }
}

/// The next binary frame of a stream that numbers frames itself (mod_audio_fork,
/// chan_websocket): caller audio, `sequence` counted from 1.
pub(crate) fn raw_frame<'a>(frames: &mut u64, payload: Payload<'a>) -> ProviderEvent<'a> {
    *frames += 1;
    ProviderEvent::Media(MediaChunk {
        track: Track::Caller,
        sequence: Some(*frames),
        chunk: None,
        timestamp_ms: None,
        payload,
    })
}

/// Parses the message as `T`, mapping serde errors to [`ProtocolError::Malformed`].
pub(crate) fn parse_as<'a, T: Deserialize<'a>>(
    provider: Provider,
    text: &'a str,
) -> Result<T, ProtocolError> {
    serde_json::from_str(text).map_err(|e| malformed(provider, &e))
}

pub(crate) fn malformed(provider: Provider, e: &serde_json::Error) -> ProtocolError {
    ProtocolError::Malformed {
        provider: provider.name(),
        detail: e.to_string(),
    }
}

pub(crate) fn unknown_event(provider: Provider, event: &str) -> ProtocolError {
    let mut end = event.len().min(64);
    while !event.is_char_boundary(end) {
        end -= 1;
    }
    ProtocolError::UnknownEvent {
        provider: provider.name(),
        event: event[..end].to_owned(),
    }
}

/// Maps an encoding name from any provider (`audio/x-mulaw`, `PCMU`, `audio/L16;rate=16000`,
/// `audio/x-l16`, `base64` …) to a codec. `base64` is Exotel's legacy name for its PCM16 stream.
pub(crate) fn codec_from_encoding(
    provider: Provider,
    encoding: &str,
) -> Result<Codec, ProtocolError> {
    let base = encoding
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "audio/x-mulaw" | "audio/mulaw" | "audio/pcmu" | "pcmu" | "mulaw" | "ulaw"
        | "g711_ulaw" => Ok(Codec::Mulaw),
        "audio/x-alaw" | "audio/alaw" | "audio/pcma" | "pcma" | "alaw" | "g711_alaw" => {
            Ok(Codec::Alaw)
        }
        "audio/l16" | "audio/x-l16" | "l16" | "linear16" | "slin" | "pcm16" | "raw" | "base64" => {
            Ok(Codec::L16)
        }
        _ => Err(ProtocolError::UnsupportedCodec {
            provider: provider.name(),
            encoding: encoding.chars().take(64).collect(),
        }),
    }
}

/// Reads `rate=N` from a content type such as `audio/l16;rate=16000`.
pub(crate) fn rate_from_content_type(content_type: &str) -> Option<u32> {
    content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("rate="))
        .find_map(|r| r.trim().parse().ok())
}

/// Validates the call id of a start message against the adapter's rule.
pub(crate) fn call_id(
    provider: Provider,
    rule: &CallIdRule,
    raw: &str,
) -> Result<CallId, ProtocolError> {
    CallId::parse(rule, raw).map_err(|reason| ProtocolError::BadCallId {
        provider: provider.name(),
        reason,
    })
}

/// Validates a sample rate from a start message against the rates the provider documents
/// (`documented_hz`): any other rate is refused, not resampled (an odd rate costs megabytes of
/// resampler state per call).
pub(crate) fn check_rate(
    provider: Provider,
    rate: Option<u64>,
    documented_hz: &[u32],
) -> Result<u32, ProtocolError> {
    match rate.and_then(|r| u32::try_from(r).ok()) {
        Some(r) if documented_hz.contains(&r) => Ok(r),
        _ => Err(ProtocolError::UnsupportedRate {
            provider: provider.name(),
            rate: rate.map_or_else(|| "missing".to_owned(), |r| r.to_string()),
        }),
    }
}

/// Maps provider track names (`inbound`, `inbound_track`, `outbound`, …) to a track.
pub(crate) fn track_from_name(name: &str) -> Option<Track> {
    match name {
        "inbound" | "inbound_track" | "caller" | "external" => Some(Track::Caller),
        "outbound" | "outbound_track" | "agent" | "internal" => Some(Track::Agent),
        _ => None,
    }
}

/// Base64 of `bytes` (standard alphabet, padded), for renderers.
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `channels` from a start message; mono when absent or absurd.
pub(crate) fn channels(n: Option<u64>) -> u16 {
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Decodes standard base64 (tests).
#[cfg(test)]
pub(crate) fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::session::{Session, Step};
    use super::*;

    /// Every codec and rate each provider really offers.
    const SUPPORTED: &[(Provider, Codec, u32)] = &[
        (Provider::Twilio, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Alaw, 8000),
        (Provider::Telnyx, Codec::L16Be, 8000),
        (Provider::Telnyx, Codec::L16Be, 16000),
        (Provider::Plivo, Codec::L16, 8000),
        (Provider::Plivo, Codec::L16, 16000),
        (Provider::Plivo, Codec::Mulaw, 8000),
        (Provider::Exotel, Codec::L16, 8000),
        (Provider::Exotel, Codec::L16, 16000),
        (Provider::Exotel, Codec::L16, 24000),
        (Provider::Exotel, Codec::Mulaw, 8000),
        (Provider::Vonage, Codec::L16, 8000),
        (Provider::Vonage, Codec::L16, 16000),
        (Provider::Freeswitch, Codec::L16, 8000),
        (Provider::Freeswitch, Codec::L16, 16000),
        (Provider::Asterisk, Codec::Mulaw, 8000),
        (Provider::Asterisk, Codec::Alaw, 8000),
        (Provider::Asterisk, Codec::L16, 16000),
    ];

    /// A chirp over most of the i16 range, `len` samples, different per seed.
    fn signal(len: usize, seed: f32) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = i as f32;
                (((t * (0.01 + seed * 0.003) + t * t * 1e-6).sin()) * 30000.0) as i16
            })
            .collect()
    }

    /// Feeds rendered messages through a fresh adapter and session; returns the start and the
    /// audio of both tracks.
    fn run(provider: Provider, msgs: &[WireMessage]) -> (StreamStart, [Vec<i16>; 2], bool) {
        let mut adapter = provider.adapter();
        let mut session = Session::new();
        let mut audio = [Vec::new(), Vec::new()];
        let mut stopped = false;
        for m in msgs {
            let ev = match m {
                WireMessage::Text(t) => adapter.parse_text(t),
                WireMessage::Binary(b) => adapter.parse_binary(b),
            }
            .unwrap();
            if session.apply(ev).unwrap() == Step::Stopped {
                stopped = true;
            }
            for t in Track::ALL {
                audio[t.index()].extend_from_slice(&session.take_audio(t));
            }
        }
        session.flush_pending();
        for t in Track::ALL {
            audio[t.index()].extend_from_slice(&session.take_audio(t));
        }
        (session.start().cloned().unwrap(), audio, stopped)
    }

    #[test]
    fn render_parse_session_reproduces_the_pcm_for_every_provider_and_codec() {
        for &(provider, codec, rate) in SUPPORTED {
            let mut spec = RenderSpec::new("call-7", codec, rate);
            spec.custom_parameters
                .insert("tenant".into(), "acme".into());
            if provider == Provider::Exotel {
                spec.chunk_ms = 100;
            }
            // Not a whole number of chunks, so the short last chunk is exercised.
            let caller = signal(rate as usize * 3 / 2 + 37, 1.0);
            let agent = signal(rate as usize, 2.0);
            let two_tracks = provider.spec().two_tracks;
            let msgs = provider.render(&spec, &caller, two_tracks.then_some(&agent[..]));
            let (start, audio, stopped) = run(provider, &msgs);
            let what = format!("{provider} {codec:?} {rate}");
            assert_eq!(start.call_id, "call-7", "{what}");
            assert_eq!(start.codec, Some(codec), "{what}");
            assert_eq!(start.sample_rate_hz, rate, "{what}");
            assert_eq!(start.custom_parameters["tenant"], "acme", "{what}");
            let expect: Vec<i16> = caller.iter().map(|&s| codec.round_trip(s)).collect();
            let got = &audio[Track::Caller.index()];
            if provider == Provider::Vonage {
                // Whole 20 ms frames: the tail is padded with silence.
                assert_eq!(got.len() % (rate as usize / 50), 0, "{what}");
                assert!(got[expect.len()..].iter().all(|&s| s == 0), "{what}");
                assert_eq!(&got[..expect.len()], &expect[..], "{what}");
            } else {
                assert_eq!(got, &expect, "{what}");
            }
            // Vonage and FreeSWITCH have no stop message: the socket just closes.
            if !matches!(provider, Provider::Vonage | Provider::Freeswitch) {
                assert!(stopped, "{what}");
            }
            if two_tracks {
                assert_eq!(start.tracks, Track::ALL.to_vec(), "{what}");
                let expect: Vec<i16> = agent.iter().map(|&s| codec.round_trip(s)).collect();
                let got = &audio[Track::Agent.index()];
                // Stereo frames pad the shorter side with silence.
                assert!(got[expect.len()..].iter().all(|&s| s == 0), "{what}");
                assert_eq!(&got[..expect.len()], &expect[..], "{what}");
            } else {
                assert!(audio[Track::Agent.index()].is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn renders_with_any_codec_still_round_trip() {
        // Codecs a provider does not offer are named in its style rather than mislabelled.
        for provider in Provider::ALL {
            for codec in [Codec::Mulaw, Codec::Alaw, Codec::L16] {
                let spec = RenderSpec::new("c", codec, 8000);
                let caller = signal(800, 3.0);
                let (start, audio, _) = run(provider, &provider.render(&spec, &caller, None));
                // Telnyx's L16 is an RTP payload: big-endian on its wire; FreeSWITCH sends L16.
                let on_wire = (provider.spec().wire_codec)(codec);
                assert_eq!(start.codec, Some(on_wire), "{provider} {codec:?}");
                let expect: Vec<i16> = caller.iter().map(|&s| on_wire.round_trip(s)).collect();
                assert_eq!(audio[0], expect, "{provider} {codec:?}");
            }
        }
    }

    #[test]
    fn every_registered_provider_is_complete_and_round_trips_its_fixtures() {
        for provider in Provider::ALL {
            let spec = provider.spec();
            assert_eq!(spec.name.parse::<Provider>().unwrap(), provider);
            assert!(!spec.samples.is_empty(), "{provider} documents no sample");
            for sample in spec.samples {
                let parsed = provider.adapter_for("c1").parse_text(sample);
                assert!(parsed.is_ok(), "{provider}: {sample}: {parsed:?}");
            }
            let (codec, rate) = spec.usual_format;
            let caller = signal(rate as usize, 1.0);
            let agent = signal(rate as usize, 2.0);
            let msgs = provider.render(
                &RenderSpec::new("c-1", codec, rate),
                &caller,
                spec.two_tracks.then_some(&agent[..]),
            );
            let head: Vec<&str> = msgs
                .iter()
                .filter_map(|m| match m {
                    WireMessage::Text(t) => Some(t.as_str()),
                    WireMessage::Binary(_) => None,
                })
                .take(4)
                .collect();
            assert_eq!(Provider::detect(&head.join("\n")).unwrap(), provider);
            let (start, audio, _) = run(provider, &msgs);
            assert_eq!(start.call_id, "c-1", "{provider}");
            assert_eq!(start.codec, Some((spec.wire_codec)(codec)), "{provider}");
            assert_eq!(start.sample_rate_hz, rate, "{provider}");
            assert!(audio[0].len() >= caller.len(), "{provider}");
            let agent_heard = !audio[1].is_empty();
            assert_eq!(agent_heard, spec.two_tracks, "{provider}");
        }
        assert!(matches!(
            Provider::detect("{\"hello\":1}\n"),
            Err(ProtocolError::UnknownRecording)
        ));
    }

    #[test]
    fn every_provider_refuses_an_unsafe_call_id_at_start() {
        let long = "a".repeat(129);
        for provider in Provider::ALL {
            for bad in [
                "CA1\n2026-12-06 INFO forged",
                "\u{1b}[31mCA1",
                "..",
                "v3:a/b",
                &long,
            ] {
                let spec = RenderSpec::new(bad, Codec::L16, 8000);
                let mut a = provider.adapter();
                let err = provider
                    .render(&spec, &[0; 160], None)
                    .iter()
                    .find_map(|m| match m {
                        WireMessage::Text(t) => a.parse_text(t).err(),
                        WireMessage::Binary(b) => a.parse_binary(b).err(),
                    })
                    .unwrap_or_else(|| panic!("{provider} accepted {bad:?}"));
                assert!(
                    matches!(err, ProtocolError::BadCallId { .. }),
                    "{provider} {bad:?}: {err}"
                );
                assert!(!err.to_string().contains("forged"), "{err}");
            }
            // The documented forms pass.
            let spec = RenderSpec::new("12345678-1234-1234-1234-123456789abc", Codec::L16, 8000);
            let (start, _, _) = run(provider, &provider.render(&spec, &[0; 160], None));
            assert_eq!(start.call_id, "12345678-1234-1234-1234-123456789abc");
        }
        let twilio_long = "C".repeat(65);
        let spec = RenderSpec::new(&twilio_long, Codec::Mulaw, 8000);
        let msgs = Provider::Twilio.render(&spec, &[0; 160], None);
        let WireMessage::Text(start) = &msgs[1] else {
            panic!()
        };
        assert!(matches!(
            Provider::Twilio.adapter().parse_text(start),
            Err(ProtocolError::BadCallId { .. })
        ));
    }

    #[test]
    fn lenient_numbers_and_params() {
        let n = |s: &str| serde_json::from_str::<LenientU64>(s).unwrap().0;
        assert_eq!(n("7"), Some(7));
        assert_eq!(n("\" 7 \""), Some(7));
        assert_eq!(n("-3"), None);
        assert_eq!(n("1e300"), Some(u64::MAX));
        assert_eq!(n("\"x\""), None);
        assert_eq!(n("null"), None);
        assert!(serde_json::from_str::<LenientU64>("[1]").is_err());
        let p = |s: &str| serde_json::from_str::<LenientParams>(s).unwrap().0;
        assert_eq!(p(r#""a=1; b = 2;;c""#).len(), 3);
        assert_eq!(p(r#""a=1;b=2""#)["b"], "2");
        assert_eq!(
            p(r#"[{"name":"k","value":"v"},{"name":"n","value":5},3]"#),
            BTreeMap::from([("k".into(), "v".into()), ("n".into(), "5".into())])
        );
        assert_eq!(
            p(r#"{"a":1.5,"b":true,"c":null,"d":{"x":1}}"#)["d"],
            r#"{"x":1}"#
        );
        assert!(p("42").is_empty());
    }
}
