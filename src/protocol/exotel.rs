//! Exotel Stream/Voicebot applets ("AgentStream"): JSON text frames, snake_case in the reference
//! but camelCase on some applet paths (both are read), numbers often as strings, base64 PCM16 LE
//! mono by default (`encoding` `"base64"`, `"audio/x-l16"`, or mu-law on the Beta path), rate from
//! `media_format.sample_rate` (8, 16 or 24 kHz). Media normally carries no track: it is the caller.
//! Inbound chunks are about 100 ms.

use super::Track;
use super::{
    Adapter, LenientParams, LenientString, LenientU64, ProtocolError, Provider, ProviderEvent,
    RenderSpec, StreamStart, WireMessage, audio_x_encoding, b64, channels, check_rate,
    codec_from_encoding, for_each_chunk, media_event, parse_as, parse_envelope,
    rate_from_content_type, tracks_from_names, unknown_event,
};
use super::{AuthRule, ProviderSpec};
use super::{CallIdRule, call_id as valid_call_id};
use super::{dtmf_event, mark_event, missing};
use crate::codec::Codec;
use serde::Deserialize;
use serde_json::json;

const P: Provider = Provider::Exotel;

/// Call ids: `call_sid`: 32 hex digits; checked with the generic rule.
pub const CALL_ID: CallIdRule = CallIdRule::GENERIC;

/// The documented `connected` message (protocols.md §15).
pub const SAMPLE_CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;

/// The documented `start` message (protocols.md §15).
pub const SAMPLE_START: &str = r#"{"event":"start","sequence_number":"1","stream_sid":"b6a0d7f1c2e3","start":{"stream_sid":"b6a0d7f1c2e3","call_sid":"2f1e4c7a9b8d6e5f4a3b2c1d0e9f8a7b","account_sid":"acmecorp1","from":"+919876543210","to":"08047491899","custom_parameters":{"tenant":"acme","lang":"hi"},"media_format":{"encoding":"base64","sample_rate":"8000","bit_rate":"128kbps"}}}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "exotel",
    call_id: CALL_ID,
    usual_format: (Codec::L16, 8000),
    two_tracks: false,
    auth: AuthRule::Token { headers: &[] },
    subprotocols: &[],
    transfer: None,
    detect: |head| head.contains("\"stream_sid\""),
    adapter: |_| Box::new(ExotelAdapter),
    render,
    wire_codec: |c| c,
    samples: &[SAMPLE_CONNECTED, SAMPLE_START],
};

/// The sample rates the provider documents; others are refused at start. Exotel `?sample-rate=8000|16000|24000`.
const RATES_HZ: [u32; 3] = [8000, 16000, 24000];

/// Exotel's base-guide format (raw 16-bit PCM LE), used when the start names no encoding.
const DEFAULT_ENCODING: &str = "audio/x-l16";
/// Exotel's rate when the applet URL sets no `sample-rate`, used when the start names none.
const DEFAULT_RATE_HZ: u64 = 8000;

/// Adapter for one Exotel stream. Stateless: every message is self-describing.
#[derive(Debug, Default)]
pub struct ExotelAdapter;

#[derive(Deserialize)]
struct StartMsg {
    #[serde(default, alias = "streamSid")]
    stream_sid: LenientString,
    start: StartBody,
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default, alias = "streamSid")]
    stream_sid: LenientString,
    #[serde(default, alias = "callSid")]
    call_sid: LenientString,
    #[serde(default, alias = "accountSid")]
    account_sid: LenientString,
    #[serde(default)]
    from: LenientString,
    #[serde(default)]
    to: LenientString,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default, alias = "customParameters")]
    custom_parameters: LenientParams,
    #[serde(default, alias = "mediaFormat")]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize)]
struct MediaFormat {
    #[serde(default)]
    encoding: LenientString,
    #[serde(default, alias = "sampleRate")]
    sample_rate: LenientU64,
    #[serde(default)]
    channels: LenientU64,
}

impl Adapter for ExotelAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        let (event, env) = parse_envelope(P, text)?;
        match event.as_ref() {
            "media" => media_event(P, env, Track::Caller),
            "connected" => Ok(ProviderEvent::Connected { auth_token: None }),
            "start" => {
                let m: StartMsg = parse_as(P, text)?;
                let format = m.start.media_format;
                let encoding = format
                    .as_ref()
                    .and_then(|f| f.encoding.0.clone())
                    .unwrap_or_else(|| DEFAULT_ENCODING.to_owned());
                let codec = codec_from_encoding(P, &encoding)?;
                // A missing (or unreadable) rate falls back to the content type, then to
                // Exotel's default; a readable one outside 8..48 kHz is refused.
                let rate = format
                    .as_ref()
                    .and_then(|f| f.sample_rate.0)
                    .or_else(|| rate_from_content_type(&encoding).map(u64::from))
                    .unwrap_or(DEFAULT_RATE_HZ);
                let rate = check_rate(P, Some(rate), &RATES_HZ)?;
                let call_id = m
                    .start
                    .call_sid
                    .0
                    .ok_or_else(|| missing(P, "start without call_sid"))?;
                Ok(ProviderEvent::Start(StreamStart {
                    call_id: valid_call_id(P, &CALL_ID, &call_id)?,
                    stream_id: m.start.stream_sid.0.or(m.stream_sid.0),
                    account_id: m.start.account_sid.0,
                    codec: Some(codec),
                    sample_rate_hz: rate,
                    channels: channels(format.and_then(|f| f.channels.0)),
                    tracks: tracks_from_names(&m.start.tracks),
                    custom_parameters: m.start.custom_parameters.0,
                    from: m.start.from.0,
                    to: m.start.to.0,
                }))
            }
            "dtmf" => dtmf_event(P, text),
            "mark" => mark_event(P, text),
            "clear" => Ok(ProviderEvent::Ignored { kind: "clear" }),
            "stop" => Ok(ProviderEvent::Stop),
            other => Err(unknown_event(P, other)),
        }
    }
}

/// Renders a call as Exotel sends it: `connected`, snake_case `start` (rate as a string, as
/// Exotel does), `media` chunks of `spec.chunk_ms` (use 100 for realism) with string counters,
/// `timestamp` the ms at the chunk's end, no track (Exotel streams the caller only, so `agent`
/// is not rendered), then `stop` if `spec.send_stop`.
pub fn render(spec: &RenderSpec, caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    let mut out = Vec::new();
    let mut seq = 1u64;
    out.push(WireMessage::Text(
        json!({"event":"connected","protocol":"Call","version":"1.0.0"}).to_string(),
    ));
    let bit_rate = format!(
        "{}kbps",
        spec.sample_rate_hz as usize * spec.codec.bytes_per_sample() * 8 / 1000
    );
    out.push(WireMessage::Text(
        json!({"event":"start","sequence_number":seq.to_string(),"stream_sid":spec.stream_id,
            "start":{"stream_sid":spec.stream_id,"call_sid":spec.call_id,
            "account_sid":"acmecorp1","from":"+919876543210","to":"08047491899",
            "custom_parameters":spec.custom_parameters,
            "media_format":{"encoding":audio_x_encoding(spec.codec),
            "sample_rate":spec.sample_rate_hz.to_string(),"bit_rate":bit_rate}}})
        .to_string(),
    ));
    let mut chunk_no = 0u64;
    for_each_chunk(spec, caller, None, |_, i, wire| {
        seq += 1;
        chunk_no += 1;
        out.push(WireMessage::Text(
            json!({"event":"media","sequence_number":seq.to_string(),"stream_sid":spec.stream_id,
                "media":{"chunk":chunk_no.to_string(),
                "timestamp":((i + 1) * u64::from(spec.chunk_ms)).to_string(),"payload":b64(wire)}})
            .to_string(),
        ));
    });
    if spec.send_stop {
        seq += 1;
        out.push(WireMessage::Text(
            json!({"event":"stop","sequence_number":seq.to_string(),"stream_sid":spec.stream_id,
                "stop":{"call_sid":spec.call_id,"account_sid":"acmecorp1","reason":"callended"}})
            .to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Payload;

    // protocols.md §15.4 (the media payload is generated: 320 zero bytes).
    const CONNECTED: &str = super::SAMPLE_CONNECTED;
    const START: &str = super::SAMPLE_START;
    const DTMF: &str = r#"{"event":"dtmf","sequence_number":"33","stream_sid":"b6a0d7f1c2e3","dtmf":{"digit":"9","duration":"120"}}"#;
    const MARK: &str = r#"{"event":"mark","sequence_number":"60","stream_sid":"b6a0d7f1c2e3","mark":{"name":"tts-utt-3"}}"#;
    const STOP: &str = r#"{"event":"stop","sequence_number":"301","stream_sid":"b6a0d7f1c2e3","stop":{"call_sid":"2f1e4c7a9b8d6e5f4a3b2c1d0e9f8a7b","account_sid":"acmecorp1","reason":"callended"}}"#;

    fn media() -> String {
        format!(
            r#"{{"event":"media","sequence_number":"2","stream_sid":"b6a0d7f1c2e3","media":{{"chunk":"1","timestamp":"100","payload":"{}"}}}}"#,
            b64(&[0u8; 320])
        )
    }

    fn start(text: &str) -> StreamStart {
        match ExotelAdapter.parse_text(text) {
            Ok(ProviderEvent::Start(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_reference_start_as_pcm16() {
        let s = start(START);
        assert_eq!(s.call_id, "2f1e4c7a9b8d6e5f4a3b2c1d0e9f8a7b");
        assert_eq!(s.stream_id.as_deref(), Some("b6a0d7f1c2e3"));
        assert_eq!(s.account_id.as_deref(), Some("acmecorp1"));
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 8000));
        assert_eq!(s.tracks, vec![Track::Caller]);
        assert_eq!(s.custom_parameters["lang"], "hi");
        assert_eq!(s.from.as_deref(), Some("+919876543210"));
        assert_eq!(s.to.as_deref(), Some("08047491899"));
    }

    #[test]
    fn reads_camel_case_and_every_encoding_spelling() {
        let camel = r#"{"event":"start","sequenceNumber":"1","streamSid":"s1","start":{"streamSid":"s1","callSid":"c1","accountSid":"a1","customParameters":{"tenant":"acme"},"mediaFormat":{"encoding":"audio/x-l16","sampleRate":16000}}}"#;
        let s = start(camel);
        assert_eq!(
            (
                s.call_id.as_str(),
                s.stream_id.as_deref(),
                s.account_id.as_deref()
            ),
            ("c1", Some("s1"), Some("a1"))
        );
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 16000));
        assert_eq!(s.custom_parameters["tenant"], "acme");
        for (enc, codec, rate) in [
            ("audio/x-mulaw;rate=8000", Codec::Mulaw, 8000),
            ("audio/L16;rate=16000", Codec::L16, 16000),
            ("audio/x-l16", Codec::L16, 24000),
        ] {
            let msg = START.replace(r#""encoding":"base64""#, &format!(r#""encoding":"{enc}""#));
            let msg = if rate == 24000 {
                msg.replace(r#""sample_rate":"8000""#, r#""sample_rate":"24000""#)
            } else {
                msg.replace(r#","sample_rate":"8000""#, "")
            };
            let s = start(&msg);
            assert_eq!((s.codec, s.sample_rate_hz), (Some(codec), rate), "{enc}");
        }
        let odd_rate = START.replace(r#""sample_rate":"8000""#, r#""sample_rate":"96000""#);
        assert!(matches!(
            ExotelAdapter.parse_text(&odd_rate),
            Err(ProtocolError::UnsupportedRate { .. })
        ));
    }

    #[test]
    fn parses_connected_media_dtmf_mark_clear_stop() {
        assert_eq!(
            ExotelAdapter.parse_text(CONNECTED).unwrap(),
            ProviderEvent::Connected { auth_token: None }
        );
        let text = media();
        let ProviderEvent::Media(m) = ExotelAdapter.parse_text(&text).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.track, m.sequence, m.chunk, m.timestamp_ms),
            (Track::Caller, Some(2), Some(1), Some(100))
        );
        let Payload::Base64(p) = &m.payload else {
            panic!()
        };
        assert_eq!(crate::protocol::unb64(p), vec![0u8; 320]);
        assert_eq!(
            ExotelAdapter.parse_text(DTMF).unwrap(),
            ProviderEvent::Dtmf { digit: "9".into() }
        );
        assert_eq!(
            ExotelAdapter.parse_text(MARK).unwrap(),
            ProviderEvent::Mark {
                name: "tts-utt-3".into()
            }
        );
        assert_eq!(
            ExotelAdapter
                .parse_text(r#"{"event":"clear","stream_sid":"b6a0d7f1c2e3"}"#)
                .unwrap(),
            ProviderEvent::Ignored { kind: "clear" }
        );
        assert_eq!(ExotelAdapter.parse_text(STOP).unwrap(), ProviderEvent::Stop);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            ExotelAdapter.parse_text(r#"{"event":"hangup"}"#),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        assert!(matches!(
            ExotelAdapter.parse_text(&START.replace("base64", "audio/opus")),
            Err(ProtocolError::UnsupportedCodec { .. })
        ));
        assert!(matches!(
            ExotelAdapter.parse_text(&START.replace("call_sid", "call_id")),
            Err(ProtocolError::Malformed { .. })
        ));
    }
}
