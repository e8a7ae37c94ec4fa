//! What the adapters share: the one-pass media envelope of the JSON providers, the chunking of
//! the renderers, and the validation of start messages (call id, codec, rate, tracks). An adapter
//! file holds only what is particular to its provider.

use super::{
    CallId, CallIdRule, LenientU64, MediaChunk, Payload, ProtocolError, Provider, ProviderEvent,
    RenderSpec, Track, WireMessage,
};
use crate::codec::Codec;
use serde::Deserialize;
use std::borrow::Cow;

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

/// The `audio/x-…` encoding names (Twilio, Exotel, Plivo). A provider that sends only some of
/// these codecs still has the others named in its style, so a render with any codec round-trips.
pub(crate) fn audio_x_encoding(codec: Codec) -> &'static str {
    match codec {
        Codec::Mulaw => "audio/x-mulaw",
        Codec::Alaw => "audio/x-alaw",
        Codec::L16 | Codec::L16Be => "audio/x-l16",
    }
}

/// How a provider spells the envelope keys of its `media` messages.
pub(crate) struct MediaKeys {
    /// `sequenceNumber` or `sequence_number`.
    pub sequence: &'static str,
    /// `streamSid` or `stream_id`.
    pub stream: &'static str,
}

/// Appends the interleaved `media` messages of a stream that counts chunks per track and stamps
/// them in ms since the start, every number a string (Twilio, Telnyx); `seq` continues from its
/// value and ends at the last message's.
pub(crate) fn render_media_strings(
    spec: &RenderSpec,
    caller: &[i16],
    agent: Option<&[i16]>,
    keys: &MediaKeys,
    seq: &mut u64,
    out: &mut Vec<WireMessage>,
) {
    let mut chunk_no = [0u64; 2];
    for_each_chunk(spec, caller, agent, |track, i, wire| {
        *seq += 1;
        let c = &mut chunk_no[track.index()];
        *c += 1;
        let name = if track == Track::Caller {
            "inbound"
        } else {
            "outbound"
        };
        let mut msg = serde_json::Map::new();
        msg.insert("event".into(), "media".into());
        msg.insert(keys.sequence.into(), seq.to_string().into());
        msg.insert(keys.stream.into(), spec.stream_id.clone().into());
        msg.insert(
            "media".into(),
            serde_json::json!({"track":name,"chunk":c.to_string(),
                "timestamp":(i * u64::from(spec.chunk_ms)).to_string(),"payload":b64(wire)}),
        );
        out.push(WireMessage::Text(
            serde_json::Value::Object(msg).to_string(),
        ));
    });
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

#[derive(Deserialize)]
struct DtmfMsg {
    dtmf: DtmfBody,
}

#[derive(Deserialize)]
struct DtmfBody {
    #[serde(default)]
    digit: super::lenient::LenientString,
}

#[derive(Deserialize)]
struct MarkMsg {
    mark: MarkBody,
}

#[derive(Deserialize)]
struct MarkBody {
    #[serde(default)]
    name: super::lenient::LenientString,
}

/// `{"event":"dtmf","dtmf":{"digit":"5"}}`, as the JSON providers send a key press.
pub(crate) fn dtmf_event(
    provider: Provider,
    text: &str,
) -> Result<ProviderEvent<'_>, ProtocolError> {
    let m: DtmfMsg = parse_as(provider, text)?;
    let digit = m
        .dtmf
        .digit
        .0
        .ok_or_else(|| missing(provider, "dtmf without digit"))?;
    Ok(ProviderEvent::Dtmf { digit })
}

/// `{"event":"mark","mark":{"name":"…"}}`: a marker we sent, played back.
pub(crate) fn mark_event(
    provider: Provider,
    text: &str,
) -> Result<ProviderEvent<'_>, ProtocolError> {
    let m: MarkMsg = parse_as(provider, text)?;
    let name = m
        .mark
        .name
        .0
        .ok_or_else(|| missing(provider, "mark without name"))?;
    Ok(ProviderEvent::Mark { name })
}

/// A message that parsed but lacks what it must carry.
pub(crate) fn missing(provider: Provider, detail: &str) -> ProtocolError {
    ProtocolError::Malformed {
        provider: provider.name(),
        detail: detail.to_owned(),
    }
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
