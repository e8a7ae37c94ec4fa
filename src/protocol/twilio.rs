//! Twilio Media Streams: JSON text frames, base64 mu-law 8 kHz, `inbound`/`outbound` tracks.
//! Numbers (`sequenceNumber`, `chunk`, `timestamp`) arrive as strings.

use super::CallIdRule;
use super::Track;
use super::{
    Adapter, LenientParams, LenientU64, MediaKeys, ProtocolError, Provider, ProviderEvent,
    RenderSpec, StreamStart, WireMessage, audio_x_encoding, call_id, channels, check_rate,
    codec_from_encoding, media_event, parse_as, parse_envelope, render_media_strings,
    tracks_from_names, unknown_event,
};
use super::{AuthRule, ProviderSpec};
use super::{dtmf_event, mark_event};
use crate::codec::Codec;
use serde::Deserialize;
use serde_json::json;

const P: Provider = Provider::Twilio;

/// `CallSid` is `CA` + 32 hex digits (34 bytes); the generic charset up to 64 bytes is accepted
/// so recordings and tests with readable ids still play.
pub const CALL_ID: CallIdRule = CallIdRule {
    max_bytes: 64,
    ..CallIdRule::GENERIC
};

/// The documented `start` message (protocols.md §15).
pub const SAMPLE_START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","start":{"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","accountSid":"AC00000000000000000000000000000001","callSid":"CA00000000000000000000000000000002","tracks":["inbound"],"customParameters":{"tenant":"acme","handoff_token":"v1.3f9c"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "twilio",
    call_id: CALL_ID,
    usual_format: (Codec::Mulaw, 8000),
    two_tracks: true,
    auth: AuthRule::TwilioSignature,
    subprotocols: &[],
    transfer: Some("twilio"),
    detect: |head| head.contains("\"streamSid\""),
    adapter: |_| Box::new(TwilioAdapter),
    render,
    wire_codec: |c| c,
    samples: &[SAMPLE_START],
};

/// The sample rates the provider documents; others are refused at start. Twilio Media Streams are always 8 kHz mu-law.
const RATES_HZ: [u32; 1] = [8000];

/// Adapter for one Twilio stream. Stateless: every message is self-describing.
#[derive(Debug, Default)]
pub struct TwilioAdapter;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartMsg {
    #[serde(default)]
    stream_sid: Option<String>,
    start: StartBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    stream_sid: Option<String>,
    #[serde(default)]
    account_sid: Option<String>,
    call_sid: String,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: LenientParams,
    media_format: MediaFormat,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: String,
    #[serde(default)]
    sample_rate: LenientU64,
    #[serde(default)]
    channels: LenientU64,
}

impl Adapter for TwilioAdapter {
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
                let codec = codec_from_encoding(P, &m.start.media_format.encoding)?;
                let rate = check_rate(P, m.start.media_format.sample_rate.0, &RATES_HZ)?;
                Ok(ProviderEvent::Start(StreamStart {
                    call_id: call_id(P, &CALL_ID, &m.start.call_sid)?,
                    stream_id: m.start.stream_sid.or(m.stream_sid),
                    account_id: m.start.account_sid,
                    codec: Some(codec),
                    sample_rate_hz: rate,
                    channels: channels(m.start.media_format.channels.0),
                    tracks: tracks_from_names(&m.start.tracks),
                    custom_parameters: m.start.custom_parameters.0,
                    from: None,
                    to: None,
                }))
            }
            "dtmf" => dtmf_event(P, text),
            "mark" => mark_event(P, text),
            "stop" => Ok(ProviderEvent::Stop),
            other => Err(unknown_event(P, other)),
        }
    }
}

/// Renders a call as Twilio sends it: `connected`, `start`, interleaved 20 ms `media` per track
/// (chunk counters per track, timestamps in ms since start), then `stop`.
pub fn render(spec: &RenderSpec, caller: &[i16], agent: Option<&[i16]>) -> Vec<WireMessage> {
    let mut out = Vec::new();
    let mut seq = 1u64;
    out.push(WireMessage::Text(
        json!({"event":"connected","protocol":"Call","version":"1.0.0"}).to_string(),
    ));
    let tracks: &[&str] = if agent.is_some() {
        &["inbound", "outbound"]
    } else {
        &["inbound"]
    };
    out.push(WireMessage::Text(
        json!({"event":"start","sequenceNumber":seq.to_string(),"streamSid":spec.stream_id,
            "start":{"streamSid":spec.stream_id,"accountSid":"AC00000000000000000000000000000000",
            "callSid":spec.call_id,"tracks":tracks,"customParameters":spec.custom_parameters,
            "mediaFormat":{"encoding":audio_x_encoding(spec.codec),"sampleRate":spec.sample_rate_hz,"channels":1}}})
        .to_string(),
    ));
    let keys = MediaKeys {
        sequence: "sequenceNumber",
        stream: "streamSid",
    };
    render_media_strings(spec, caller, agent, &keys, &mut seq, &mut out);
    if spec.send_stop {
        seq += 1;
        out.push(WireMessage::Text(
            json!({"event":"stop","sequenceNumber":seq.to_string(),"streamSid":spec.stream_id,
                "stop":{"accountSid":"AC00000000000000000000000000000000","callSid":spec.call_id}})
            .to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Payload;
    use std::borrow::Cow;

    const START: &str = super::SAMPLE_START;

    #[test]
    fn parses_the_reference_start() {
        let ev = TwilioAdapter.parse_text(START).unwrap();
        let ProviderEvent::Start(s) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(s.call_id, "CA00000000000000000000000000000002");
        assert_eq!(s.codec, Some(Codec::Mulaw));
        assert_eq!(s.sample_rate_hz, 8000);
        assert_eq!(s.tracks, vec![Track::Caller]);
        assert_eq!(s.custom_parameters["tenant"], "acme");
    }

    #[test]
    fn parses_media_dtmf_mark_stop() {
        let media = r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"outbound","chunk":"7","timestamp":"5","payload":"//8="}}"#;
        let ProviderEvent::Media(m) = TwilioAdapter.parse_text(media).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.track, m.sequence, m.chunk, m.timestamp_ms),
            (Track::Agent, Some(2), Some(7), Some(5))
        );
        assert_eq!(m.payload, Payload::Base64(Cow::Borrowed("//8=")));
        let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"57","dtmf":{"track":"inbound_track","digit":"0"}}"#;
        assert_eq!(
            TwilioAdapter.parse_text(dtmf).unwrap(),
            ProviderEvent::Dtmf { digit: "0".into() }
        );
        let mark = r#"{"event":"mark","sequenceNumber":"88","streamSid":"MZ1","mark":{"name":"tts-utt-3"}}"#;
        assert_eq!(
            TwilioAdapter.parse_text(mark).unwrap(),
            ProviderEvent::Mark {
                name: "tts-utt-3".into()
            }
        );
        let stop = r#"{"event":"stop","sequenceNumber":"412","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA2"}}"#;
        assert_eq!(TwilioAdapter.parse_text(stop).unwrap(), ProviderEvent::Stop);
    }

    #[test]
    fn media_fields_borrow_from_the_message_unless_escaped() {
        let plain = r#"{"event":"media","media":{"track":"inbound","chunk":"1","payload":"//8="}}"#;
        let ProviderEvent::Media(m) = TwilioAdapter.parse_text(plain).unwrap() else {
            panic!()
        };
        assert!(matches!(m.payload, Payload::Base64(Cow::Borrowed("//8="))));
        // JSON may escape '/': the payload is then unescaped into its own string.
        let escaped =
            r#"{"event":"media","media":{"track":"inbound","chunk":"1","payload":"\/\/8="}}"#;
        let ProviderEvent::Media(m) = TwilioAdapter.parse_text(escaped).unwrap() else {
            panic!()
        };
        assert!(
            matches!(&m.payload, Payload::Base64(Cow::Owned(p)) if p == "//8="),
            "{:?}",
            m.payload
        );
        let not_a_string = r#"{"event":"media","media":{"track":7,"payload":"//8="}}"#;
        assert!(matches!(
            TwilioAdapter.parse_text(not_a_string),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            TwilioAdapter.parse_text("{nope"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            TwilioAdapter.parse_text(r#"{"event":"bogus"}"#),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        let opus = START.replace("audio/x-mulaw", "audio/opus");
        assert!(matches!(
            TwilioAdapter.parse_text(&opus),
            Err(ProtocolError::UnsupportedCodec { .. })
        ));
        assert!(matches!(
            TwilioAdapter.parse_binary(&[1, 2]),
            Err(ProtocolError::UnexpectedBinary { .. })
        ));
        let media_no_payload = r#"{"event":"media","media":{"track":"inbound"}}"#;
        assert!(matches!(
            TwilioAdapter.parse_text(media_no_payload),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn render_then_parse_round_trips() {
        let spec = RenderSpec::new("CA1", Codec::Mulaw, 8000);
        let caller: Vec<i16> = (0..800).map(|i| (i * 37 % 2000) as i16).collect();
        let msgs = render(&spec, &caller, Some(&caller[..400]));
        // connected, start, 5 caller + 3 agent chunks (last agent chunk of 80 samples), stop
        assert_eq!(msgs.len(), 2 + 5 + 3 + 1);
        let mut a = TwilioAdapter;
        for m in &msgs {
            let WireMessage::Text(t) = m else { panic!() };
            a.parse_text(t).unwrap();
        }
    }
}
