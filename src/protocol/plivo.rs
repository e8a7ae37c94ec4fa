//! Plivo Audio Streaming: JSON text frames with camelCase fields and numeric `sequenceNumber` and
//! `chunk`, base64 L16 (Plivo's default) or mu-law per `start.mediaFormat`, `inbound`/`outbound`
//! tracks, media `timestamp` in unix epoch ms. There is no `connected` frame, `extra_headers`
//! carries the custom parameters (a `"k=v;k2=v2"` string or a JSON object), and the socket may
//! close without `stop`.

use super::Track;
use super::{
    Adapter, LenientParams, LenientString, LenientU64, ProtocolError, Provider, ProviderEvent,
    RenderSpec, StreamStart, WireMessage, audio_x_encoding, b64, channels, check_rate,
    codec_from_encoding, for_each_chunk, media_event, parse_as, parse_envelope,
    rate_from_content_type, tracks_from_names, unknown_event,
};
use super::{AuthRule, ProviderSpec};
use super::{CallIdRule, call_id as valid_call_id};
use super::{dtmf_event, missing};
use crate::codec::Codec;
use serde::Deserialize;
use serde_json::json;

const P: Provider = Provider::Plivo;

/// Call ids: `callId`: a UUID; checked with the generic rule.
pub const CALL_ID: CallIdRule = CallIdRule::GENERIC;

/// The documented `start` message (protocols.md §15).
pub const SAMPLE_START: &str = r#"{"event":"start","sequenceNumber":1,"start":{"callId":"12345678-1234-1234-1234-123456789abc","streamId":"87654321-4321-4321-4321-cba987654321","accountId":"MAXXXXXXXXXXXXXXXXXX","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}},"extra_headers":"tenant=acme;handofftoken=v13f9c"}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "plivo",
    call_id: CALL_ID,
    usual_format: (Codec::Mulaw, 8000),
    two_tracks: true,
    auth: AuthRule::Token { headers: &[] },
    subprotocols: &[],
    transfer: Some("plivo"),
    detect: |head| head.contains("\"streamId\""),
    adapter: |_| Box::new(PlivoAdapter),
    render,
    wire_codec: |c| c,
    samples: &[SAMPLE_START],
};

/// The sample rates the provider documents; others are refused at start. Plivo `contentType`: `audio/x-l16;rate=8000|16000` or `audio/x-mulaw;rate=8000`.
const RATES_HZ: [u32; 2] = [8000, 16000];

/// Plivo's content type when the `<Stream>` sets none.
const DEFAULT_CONTENT_TYPE: &str = "audio/x-l16;rate=8000";

/// The epoch base (ms) of rendered media timestamps: fixed so renders are deterministic.
pub const RENDER_EPOCH_MS: u64 = 1_705_312_200_000;

/// Adapter for one Plivo stream. Stateless: every message is self-describing.
#[derive(Debug, Default)]
pub struct PlivoAdapter;

#[derive(Deserialize)]
struct StartMsg {
    start: StartBody,
    #[serde(default)]
    extra_headers: LenientParams,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    call_id: LenientString,
    #[serde(default)]
    stream_id: LenientString,
    #[serde(default)]
    account_id: LenientString,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    sample_rate: LenientU64,
    #[serde(default)]
    channels: LenientU64,
}

impl Adapter for PlivoAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        let (event, env) = parse_envelope(P, text)?;
        match event.as_ref() {
            "media" => media_event(P, env, Track::Caller),
            "start" => {
                let m: StartMsg = parse_as(P, text)?;
                let format = m.start.media_format;
                // Plivo's documented default applies only when no encoding is named at all.
                let encoding = format
                    .as_ref()
                    .and_then(|f| f.encoding.as_deref())
                    .unwrap_or(DEFAULT_CONTENT_TYPE);
                let codec = codec_from_encoding(P, encoding)?;
                let rate = format
                    .as_ref()
                    .and_then(|f| f.sample_rate.0)
                    .or_else(|| rate_from_content_type(encoding).map(u64::from));
                let rate = check_rate(P, rate, &RATES_HZ)?;
                let call_id = m
                    .start
                    .call_id
                    .0
                    .ok_or_else(|| missing(P, "start without callId"))?;
                Ok(ProviderEvent::Start(StreamStart {
                    call_id: valid_call_id(P, &CALL_ID, &call_id)?,
                    stream_id: m.start.stream_id.0,
                    account_id: m.start.account_id.0,
                    codec: Some(codec),
                    sample_rate_hz: rate,
                    channels: channels(format.and_then(|f| f.channels.0)),
                    tracks: tracks_from_names(&m.start.tracks),
                    custom_parameters: m.extra_headers.0,
                    from: None,
                    to: None,
                }))
            }
            "dtmf" => dtmf_event(P, text),
            // Acks for what we sent, and Plivo's complaints about it; the stream goes on.
            "playedStream" | "played" => Ok(ProviderEvent::Ignored {
                kind: "playedStream",
            }),
            "clearedAudio" => Ok(ProviderEvent::Ignored {
                kind: "clearedAudio",
            }),
            "playFailed" => Ok(ProviderEvent::Ignored { kind: "playFailed" }),
            "error" => Ok(ProviderEvent::Ignored { kind: "error" }),
            // Plivo sends none, but a hello before start is harmless.
            "connected" => Ok(ProviderEvent::Connected { auth_token: None }),
            "stop" => Ok(ProviderEvent::Stop),
            other => Err(unknown_event(P, other)),
        }
    }
}

/// Renders a call as Plivo sends it: `start` first (no `connected`), interleaved `media` per
/// track (numeric `sequenceNumber` and per-track `chunk` from 1, `timestamp` epoch ms as a
/// string from [`RENDER_EPOCH_MS`]), `extra_headers` as a `k=v;…` string, then `{"event":"stop"}`
/// only if `spec.send_stop` (Plivo often just closes).
pub fn render(spec: &RenderSpec, caller: &[i16], agent: Option<&[i16]>) -> Vec<WireMessage> {
    let mut out = Vec::new();
    let mut seq = 1u64;
    let extra_headers = spec
        .custom_parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    let tracks: &[&str] = if agent.is_some() {
        &["inbound", "outbound"]
    } else {
        &["inbound"]
    };
    out.push(WireMessage::Text(
        json!({"event":"start","sequenceNumber":seq,
            "start":{"callId":spec.call_id,"streamId":spec.stream_id,
            "accountId":"MAXXXXXXXXXXXXXXXXXX","tracks":tracks,
            "mediaFormat":{"encoding":audio_x_encoding(spec.codec),"sampleRate":spec.sample_rate_hz}},
            "extra_headers":extra_headers})
        .to_string(),
    ));
    let mut chunk_no = [0u64; 2];
    for_each_chunk(spec, caller, agent, |track, i, wire| {
        seq += 1;
        let c = &mut chunk_no[track.index()];
        *c += 1;
        let name = if track == Track::Caller {
            "inbound"
        } else {
            "outbound"
        };
        let timestamp_ms = RENDER_EPOCH_MS + i * u64::from(spec.chunk_ms);
        out.push(WireMessage::Text(
            json!({"event":"media","sequenceNumber":seq,"streamId":spec.stream_id,
                "media":{"track":name,"timestamp":timestamp_ms.to_string(),"chunk":*c,
                "payload":b64(wire)},"extra_headers":extra_headers})
            .to_string(),
        ));
    });
    if spec.send_stop {
        out.push(WireMessage::Text(json!({"event":"stop"}).to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Payload;

    // protocols.md §15.3
    const START: &str = super::SAMPLE_START;
    const MEDIA: &str = r#"{"event":"media","sequenceNumber":2,"streamId":"87654321-4321-4321-4321-cba987654321","media":{"track":"inbound","timestamp":"1705312200020","chunk":1,"payload":"/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w=="},"extra_headers":"tenant=acme;handofftoken=v13f9c"}"#;
    const DTMF: &str = r#"{"event":"dtmf","sequenceNumber":40,"streamId":"87654321-4321-4321-4321-cba987654321","dtmf":{"digit":"5"}}"#;
    const PLAYED: &str = r#"{"event":"playedStream","streamId":"87654321-4321-4321-4321-cba987654321","name":"tts-utt-3"}"#;
    const CLEARED: &str = r#"{"event":"clearedAudio","sequenceNumber":77,"streamId":"87654321-4321-4321-4321-cba987654321"}"#;
    const STOP: &str = r#"{"event":"stop"}"#;

    fn start(text: &str) -> StreamStart {
        match PlivoAdapter.parse_text(text) {
            Ok(ProviderEvent::Start(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_reference_start_with_extra_headers() {
        let s = start(START);
        assert_eq!(s.call_id, "12345678-1234-1234-1234-123456789abc");
        assert_eq!(
            s.stream_id.as_deref(),
            Some("87654321-4321-4321-4321-cba987654321")
        );
        assert_eq!(s.account_id.as_deref(), Some("MAXXXXXXXXXXXXXXXXXX"));
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::Mulaw), 8000));
        assert_eq!(s.tracks, vec![Track::Caller]);
        assert_eq!(s.custom_parameters["tenant"], "acme");
        assert_eq!(s.custom_parameters["handofftoken"], "v13f9c");
    }

    #[test]
    fn extra_headers_as_a_json_object_keep_numbers_as_numbers() {
        let s = start(&START.replace(
            r#""tenant=acme;handofftoken=v13f9c""#,
            r#"{"tenant":"acme","userId":12345}"#,
        ));
        assert_eq!(s.custom_parameters["tenant"], "acme");
        assert_eq!(s.custom_parameters["userId"], "12345");
    }

    #[test]
    fn l16_is_the_default_and_rates_come_from_the_start() {
        let l16 = START.replace(
            r#""encoding":"audio/x-mulaw","sampleRate":8000"#,
            r#""encoding":"audio/x-l16","sampleRate":16000"#,
        );
        let s = start(&l16);
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 16000));
        let content_type = START.replace(
            r#""encoding":"audio/x-mulaw","sampleRate":8000"#,
            r#""encoding":"audio/x-l16;rate=16000""#,
        );
        let s = start(&content_type);
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 16000));
        let none = START.replace(
            r#","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}"#,
            "",
        );
        let s = start(&none);
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 8000));
        let no_rate = START.replace(r#","sampleRate":8000"#, "");
        assert!(matches!(
            PlivoAdapter.parse_text(&no_rate),
            Err(ProtocolError::UnsupportedRate { .. })
        ));
    }

    #[test]
    fn parses_media_dtmf_acks_stop() {
        let ProviderEvent::Media(m) = PlivoAdapter.parse_text(MEDIA).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.track, m.sequence, m.chunk, m.timestamp_ms),
            (Track::Caller, Some(2), Some(1), Some(1_705_312_200_020))
        );
        let Payload::Base64(p) = &m.payload else {
            panic!()
        };
        assert!(crate::protocol::unb64(p).iter().all(|&b| b == 0xff));
        assert_eq!(
            PlivoAdapter.parse_text(DTMF).unwrap(),
            ProviderEvent::Dtmf { digit: "5".into() }
        );
        assert_eq!(
            PlivoAdapter.parse_text(PLAYED).unwrap(),
            ProviderEvent::Ignored {
                kind: "playedStream"
            }
        );
        assert_eq!(
            PlivoAdapter
                .parse_text(&PLAYED.replace("playedStream", "played"))
                .unwrap(),
            ProviderEvent::Ignored {
                kind: "playedStream"
            }
        );
        assert_eq!(
            PlivoAdapter.parse_text(CLEARED).unwrap(),
            ProviderEvent::Ignored {
                kind: "clearedAudio"
            }
        );
        assert_eq!(PlivoAdapter.parse_text(STOP).unwrap(), ProviderEvent::Stop);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            PlivoAdapter.parse_text(r#"{"event":"startStream"}"#),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        assert!(matches!(
            PlivoAdapter.parse_text(&START.replace("audio/x-mulaw", "audio/opus")),
            Err(ProtocolError::UnsupportedCodec { .. })
        ));
        assert!(matches!(
            PlivoAdapter.parse_text(r#"{"event":"start","start":{"tracks":["inbound"]}}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            PlivoAdapter.parse_text("[1,2]"),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn renders_epoch_timestamps_and_stops_only_when_asked() {
        let mut spec = RenderSpec::new("c1", Codec::L16, 8000);
        spec.custom_parameters
            .insert("tenant".into(), "acme".into());
        spec.send_stop = false;
        let pcm = vec![100i16; 320];
        let msgs = render(&spec, &pcm, None);
        assert_eq!(msgs.len(), 1 + 2);
        let WireMessage::Text(last) = &msgs[2] else {
            panic!()
        };
        let ProviderEvent::Media(m) = PlivoAdapter.parse_text(last).unwrap() else {
            panic!()
        };
        assert_eq!(m.timestamp_ms, Some(RENDER_EPOCH_MS + 20));
        assert_eq!(m.chunk, Some(2));
        let WireMessage::Text(first) = &msgs[0] else {
            panic!()
        };
        assert_eq!(start(first).custom_parameters["tenant"], "acme");
        spec.send_stop = true;
        let msgs = render(&spec, &pcm, None);
        assert_eq!(
            msgs.last(),
            Some(&WireMessage::Text(r#"{"event":"stop"}"#.into()))
        );
    }
}
