//! Telnyx Media Streaming: JSON text frames with snake_case fields, `stream_id` at the top level,
//! base64 RTP payloads (PCMU, PCMA or L16, read from `start.media_format`), `inbound`/`outbound`
//! tracks. Telnyx does not guarantee media order; the per-track `chunk` counter lets
//! [`super::session`] put it back. The stream auth token may arrive in-band in `connected`.

use super::Track;
use super::{
    Adapter, LenientParams, LenientString, LenientU64, MediaKeys, ProtocolError, Provider,
    ProviderEvent, RenderSpec, StreamStart, WireMessage, channels, check_rate, codec_from_encoding,
    media_event, parse_as, parse_envelope, render_media_strings, tracks_from_names, unknown_event,
};
use super::{AuthRule, ProviderSpec};
use super::{CallIdRule, call_id as valid_call_id};
use super::{dtmf_event, mark_event, missing};
use crate::codec::Codec;
use serde::Deserialize;
use serde_json::json;

const P: Provider = Provider::Telnyx;

/// Call ids: `call_control_id` (`v3:` + base64url); checked with the generic rule.
pub const CALL_ID: CallIdRule = CallIdRule::GENERIC;

/// The documented `connected` message (protocols.md §15).
pub const SAMPLE_CONNECTED: &str = r#"{"event":"connected","version":"1.0.0","connected":{"x-telnyx-streaming-auth-token":"tok_7c1f"}}"#;

/// The documented `start` message (protocols.md §15).
pub const SAMPLE_START: &str = r#"{"event":"start","sequence_number":"1","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","start":{"user_id":"3e6f995f-85f7-4705-9741-53b116d28237","call_control_id":"v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg","call_session_id":"ff55a038-6f5d-11ef-9692-02420aeffb1f","from":"+13122010094","to":"+13122123456","tags":["support"],"client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d","custom_parameters":{"tenant":"acme"},"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "telnyx",
    call_id: CALL_ID,
    usual_format: (Codec::Mulaw, 8000),
    two_tracks: true,
    auth: AuthRule::Token {
        headers: &["x-telnyx-streaming-auth-token"],
    },
    subprotocols: &[],
    transfer: Some("telnyx"),
    detect: |head| head.contains("\"stream_id\""),
    adapter: |_| Box::new(TelnyxAdapter),
    render,
    wire_codec,
    samples: &[SAMPLE_CONNECTED, SAMPLE_START],
};

/// The sample rates the provider documents; others are refused at start. Telnyx: 8 kHz G.711, 16 kHz L16, and 24 kHz as the bidirectional sampling rate.
const RATES_HZ: [u32; 3] = [8000, 16000, 24000];

/// Adapter for one Telnyx stream. Stateless: every message is self-describing.
#[derive(Debug, Default)]
pub struct TelnyxAdapter;

#[derive(Deserialize)]
struct ConnectedMsg {
    // Any shape: a hello with an odd body is still a hello (without a token).
    #[serde(default)]
    connected: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StartMsg {
    #[serde(default)]
    stream_id: LenientString,
    start: StartBody,
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default)]
    user_id: LenientString,
    #[serde(default)]
    call_control_id: LenientString,
    #[serde(default)]
    call_session_id: LenientString,
    #[serde(default)]
    from: LenientString,
    #[serde(default)]
    to: LenientString,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: LenientParams,
    media_format: MediaFormat,
}

#[derive(Deserialize)]
struct MediaFormat {
    encoding: String,
    #[serde(default)]
    sample_rate: LenientU64,
    #[serde(default)]
    channels: LenientU64,
}

impl Adapter for TelnyxAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        let (event, env) = parse_envelope(P, text)?;
        match event.as_ref() {
            "media" => media_event(P, env, Track::Caller),
            "connected" => {
                let m: ConnectedMsg = parse_as(P, text)?;
                let auth_token = m
                    .connected
                    .as_ref()
                    .and_then(|c| c.get("x-telnyx-streaming-auth-token"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                Ok(ProviderEvent::Connected { auth_token })
            }
            "start" => {
                let m: StartMsg = parse_as(P, text)?;
                let format = &m.start.media_format;
                let codec = wire_codec(codec_from_encoding(P, &format.encoding)?);
                let rate = check_rate(P, format.sample_rate.0, &RATES_HZ)?;
                // call_control_id is what the transfer API needs; the others only name the call.
                let call_id = m
                    .start
                    .call_control_id
                    .0
                    .or(m.start.call_session_id.0)
                    .or_else(|| m.stream_id.0.clone())
                    .ok_or_else(|| missing(P, "start without call_control_id"))?;
                Ok(ProviderEvent::Start(StreamStart {
                    call_id: valid_call_id(P, &CALL_ID, &call_id)?,
                    stream_id: m.stream_id.0,
                    account_id: m.start.user_id.0,
                    codec: Some(codec),
                    sample_rate_hz: rate,
                    channels: channels(format.channels.0),
                    tracks: tracks_from_names(&m.start.tracks),
                    custom_parameters: m.start.custom_parameters.0,
                    from: m.start.from.0,
                    to: m.start.to.0,
                }))
            }
            "dtmf" => dtmf_event(P, text),
            "mark" => mark_event(P, text),
            // A complaint about something we sent; the stream goes on.
            "error" => Ok(ProviderEvent::Ignored { kind: "error" }),
            "stop" => Ok(ProviderEvent::Stop),
            other => Err(unknown_event(P, other)),
        }
    }
}

/// The `media_format.encoding` Telnyx uses for `codec`.
fn encoding_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Mulaw => "PCMU",
        Codec::Alaw => "PCMA",
        Codec::L16 | Codec::L16Be => "L16",
    }
}

/// The codec Telnyx's `L16` really is on the wire: RTP payload, so big-endian.
fn wire_codec(codec: Codec) -> Codec {
    match codec {
        Codec::L16 => Codec::L16Be,
        c => c,
    }
}

/// Renders a call as Telnyx sends it: `connected`, `start` (`spec.codec` as `PCMU`/`PCMA`/`L16`),
/// interleaved `media` per track (string counters; `chunk` per track from 1, `timestamp` the
/// per-stream ms counter), then `stop` if `spec.send_stop`.
pub fn render(spec: &RenderSpec, caller: &[i16], agent: Option<&[i16]>) -> Vec<WireMessage> {
    let spec = &RenderSpec {
        codec: wire_codec(spec.codec),
        ..spec.clone()
    };
    let mut out = Vec::new();
    let mut seq = 1u64;
    let ids = (
        "3e6f995f-85f7-4705-9741-53b116d28237",
        format!("v3:{}", spec.call_id),
    );
    out.push(WireMessage::Text(
        json!({"event":"connected","version":"1.0.0"}).to_string(),
    ));
    let tracks: &[&str] = if agent.is_some() {
        &["inbound", "outbound"]
    } else {
        &["inbound"]
    };
    out.push(WireMessage::Text(
        json!({"event":"start","sequence_number":seq.to_string(),"stream_id":spec.stream_id,
            "start":{"user_id":ids.0,"call_control_id":spec.call_id,"call_session_id":ids.1,
            "from":"+13122010094","to":"+13122123456","tags":[],"client_state":null,
            "tracks":tracks,"custom_parameters":spec.custom_parameters,
            "media_format":{"encoding":encoding_name(spec.codec),
            "sample_rate":spec.sample_rate_hz,"channels":1}}})
        .to_string(),
    ));
    let keys = MediaKeys {
        sequence: "sequence_number",
        stream: "stream_id",
    };
    render_media_strings(spec, caller, agent, &keys, &mut seq, &mut out);
    if spec.send_stop {
        seq += 1;
        out.push(WireMessage::Text(
            json!({"event":"stop","sequence_number":seq.to_string(),"stream_id":spec.stream_id,
                "stop":{"user_id":ids.0,"call_control_id":spec.call_id}})
            .to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Payload;

    // protocols.md §15.2
    const CONNECTED: &str = super::SAMPLE_CONNECTED;
    const START: &str = super::SAMPLE_START;
    const MEDIA: &str = r#"{"event":"media","sequence_number":"4","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w=="}}"#;
    const DTMF: &str = r#"{"event":"dtmf","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","sequence_number":"30","occurred_at":"2026-01-15T10:30:26.028Z","dtmf":{"digit":"1"}}"#;
    const MARK: &str = r#"{"event":"mark","sequence_number":"61","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","mark":{"name":"tts-utt-3"}}"#;
    const ERROR: &str = r#"{"event":"error","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","payload":{"code":100003,"title":"malformed_frame","detail":"The frame could not be parsed"}}"#;
    const STOP: &str = r#"{"event":"stop","sequence_number":"500","stream_id":"32de0dea-53cb-4b21-89a4-9e1819c043bc","stop":{"user_id":"3e6f995f-85f7-4705-9741-53b116d28237","call_control_id":"v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"}}"#;

    #[test]
    fn connected_carries_the_in_band_auth_token() {
        assert_eq!(
            TelnyxAdapter.parse_text(CONNECTED).unwrap(),
            ProviderEvent::Connected {
                auth_token: Some("tok_7c1f".into())
            }
        );
        assert_eq!(
            TelnyxAdapter
                .parse_text(r#"{"event":"connected","version":"1.0.0"}"#)
                .unwrap(),
            ProviderEvent::Connected { auth_token: None }
        );
        assert_eq!(
            TelnyxAdapter
                .parse_text(r#"{"event":"connected","connected":"yes"}"#)
                .unwrap(),
            ProviderEvent::Connected { auth_token: None }
        );
    }

    #[test]
    fn parses_the_reference_start() {
        let ProviderEvent::Start(s) = TelnyxAdapter.parse_text(START).unwrap() else {
            panic!()
        };
        assert_eq!(
            s.call_id,
            "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
        );
        assert_eq!(
            s.stream_id.as_deref(),
            Some("32de0dea-53cb-4b21-89a4-9e1819c043bc")
        );
        assert_eq!(
            (s.codec, s.sample_rate_hz, s.channels),
            (Some(Codec::Mulaw), 8000, 1)
        );
        assert_eq!(s.tracks, vec![Track::Caller]);
        assert_eq!(s.custom_parameters["tenant"], "acme");
        assert_eq!(s.from.as_deref(), Some("+13122010094"));
        assert_eq!(s.to.as_deref(), Some("+13122123456"));
    }

    #[test]
    fn every_encoding_spelling_is_read_and_unknown_ones_refused() {
        for (enc, codec) in [
            ("PCMU", Codec::Mulaw),
            ("audio/x-mulaw", Codec::Mulaw),
            ("PCMA", Codec::Alaw),
            ("L16", Codec::L16Be),
        ] {
            let msg = START.replace(r#""encoding":"PCMU""#, &format!(r#""encoding":"{enc}""#));
            let ProviderEvent::Start(s) = TelnyxAdapter.parse_text(&msg).unwrap() else {
                panic!()
            };
            assert_eq!(s.codec, Some(codec), "{enc}");
        }
        for enc in ["OPUS", "G722", "AMR-WB"] {
            let msg = START.replace(r#""encoding":"PCMU""#, &format!(r#""encoding":"{enc}""#));
            assert!(matches!(
                TelnyxAdapter.parse_text(&msg),
                Err(ProtocolError::UnsupportedCodec { .. })
            ));
        }
        let rate = START.replace(r#""sample_rate":8000"#, r#""sample_rate":"16000""#);
        let ProviderEvent::Start(s) = TelnyxAdapter.parse_text(&rate).unwrap() else {
            panic!()
        };
        assert_eq!(s.sample_rate_hz, 16000);
    }

    #[test]
    fn parses_media_dtmf_mark_error_stop() {
        let ProviderEvent::Media(m) = TelnyxAdapter.parse_text(MEDIA).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.track, m.sequence, m.chunk, m.timestamp_ms),
            (Track::Caller, Some(4), Some(2), Some(20))
        );
        // The doc's fixture payload is mu-law silence (its length is not exactly 160).
        let Payload::Base64(p) = &m.payload else {
            panic!()
        };
        assert!(crate::protocol::unb64(p).iter().all(|&b| b == 0xff));
        let outbound = MEDIA.replace(r#""track":"inbound""#, r#""track":"outbound""#);
        let ProviderEvent::Media(m) = TelnyxAdapter.parse_text(&outbound).unwrap() else {
            panic!()
        };
        assert_eq!(m.track, Track::Agent);
        assert_eq!(
            TelnyxAdapter.parse_text(DTMF).unwrap(),
            ProviderEvent::Dtmf { digit: "1".into() }
        );
        assert_eq!(
            TelnyxAdapter.parse_text(MARK).unwrap(),
            ProviderEvent::Mark {
                name: "tts-utt-3".into()
            }
        );
        assert_eq!(
            TelnyxAdapter.parse_text(ERROR).unwrap(),
            ProviderEvent::Ignored { kind: "error" }
        );
        let error_key = ERROR.replace(r#""payload":"#, r#""error":"#);
        assert_eq!(
            TelnyxAdapter.parse_text(&error_key).unwrap(),
            ProviderEvent::Ignored { kind: "error" }
        );
        assert_eq!(TelnyxAdapter.parse_text(STOP).unwrap(), ProviderEvent::Stop);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            TelnyxAdapter.parse_text(r#"{"event":"streaming.bogus"}"#),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        assert!(matches!(
            TelnyxAdapter.parse_text(r#"{"event":"media","media":{"track":"inbound"}}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            TelnyxAdapter.parse_text(&MEDIA.replace("inbound", "sideways")),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            TelnyxAdapter.parse_binary(&[0xff; 160]),
            Err(ProtocolError::UnexpectedBinary { .. })
        ));
    }
}
