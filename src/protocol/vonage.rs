//! Vonage Voice API WebSocket: a first text frame `websocket:connected` whose `content-type`
//! (`audio/l16;rate=16000`) fixes the format and whose other fields are the NCCO's custom
//! headers, then binary frames of raw L16 LE mono (20 ms each) from the caller, plus occasional
//! JSON text events (`websocket:dtmf`, acks). There is no stop message: the socket closes.
//!
//! Unlike the JSON providers, binary frames do not describe themselves, so this adapter keeps
//! the format from `websocket:connected`.
//!
//! The call id comes from the first connected-frame field of [`CALL_ID_FIELDS`] present (put the
//! call's `uuid` in the NCCO `headers`; it is what Vonage's transfer API takes). Without one, the
//! adapter's fallback is used ([`VonageAdapter::with_fallback_call_id`]; the server passes one
//! per connection); with neither, the stream is refused with a message saying what to add.

use super::Track;
use super::{
    Adapter, MediaChunk, Payload, ProtocolError, Provider, ProviderEvent, RenderSpec, StreamStart,
    WireMessage, check_rate, codec_from_encoding, rate_from_content_type, unknown_event,
};
use super::{AuthRule, ProviderSpec};
use super::{CallIdRule, call_id as valid_call_id};
use crate::codec::Codec;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const P: Provider = Provider::Vonage;

/// Call ids: the call `uuid` header, or `vonage-<connection id>`; checked with the generic rule.
pub const CALL_ID: CallIdRule = CallIdRule::GENERIC;

/// The documented `connected` message (protocols.md §15).
pub const SAMPLE_CONNECTED: &str = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","tenant":"acme","attempt":2}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "vonage",
    call_id: CALL_ID,
    usual_format: (Codec::L16, 16000),
    two_tracks: false,
    auth: AuthRule::Token { headers: &[] },
    subprotocols: &[],
    transfer: Some("vonage"),
    detect: |head| head.contains("\"websocket:connected\""),
    adapter: |connection_id| {
        Box::new(if connection_id.is_empty() {
            VonageAdapter::default()
        } else {
            VonageAdapter::with_fallback_call_id(format!("vonage-{connection_id}"))
        })
    },
    render,
    wire_codec: |c| c,
    samples: &[SAMPLE_CONNECTED],
};

/// The sample rates the provider documents; others are refused at start. Vonage `content-type` `audio/l16;rate=8000|16000`; 24 kHz is undocumented but offered.
const RATES_HZ: [u32; 3] = [8000, 16000, 24000];

/// Connected-frame fields that name the call, in order of preference.
pub const CALL_ID_FIELDS: [&str; 5] = [
    "uuid",
    "call_uuid",
    "call_id",
    "callId",
    "conversation_uuid",
];

/// Vonage frames are always 20 ms.
pub const FRAME_MS: u32 = 20;

/// Adapter for one Vonage stream: remembers the format announced by `websocket:connected`.
#[derive(Debug, Default)]
pub struct VonageAdapter {
    format: Option<(Codec, u32)>,
    frames: u64,
    samples: u64,
    fallback_call_id: Option<String>,
}

impl VonageAdapter {
    /// An adapter that names the call `call_id` when the connected frame carries no id (the
    /// server passes something unique per connection).
    pub fn with_fallback_call_id(call_id: impl Into<String>) -> Self {
        Self {
            fallback_call_id: Some(call_id.into()),
            ..Self::default()
        }
    }
}

fn malformed(detail: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        provider: P.name(),
        detail: detail.into(),
    }
}

/// A header value as text: strings as they are, numbers and booleans as their JSON text.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

impl VonageAdapter {
    fn connected(
        &mut self,
        mut msg: Map<String, Value>,
    ) -> Result<ProviderEvent<'static>, ProtocolError> {
        let content_type = ["content-type", "content_type", "contentType"]
            .iter()
            .find_map(|k| msg.remove(*k))
            .ok_or_else(|| malformed("websocket:connected without content-type"))?;
        let Value::String(content_type) = content_type else {
            return Err(malformed("content-type is not a string"));
        };
        let codec = codec_from_encoding(P, &content_type)?;
        let rate = check_rate(
            P,
            rate_from_content_type(&content_type).map(u64::from),
            &RATES_HZ,
        )?;
        msg.remove("event");
        // Custom headers arrive flat; some integrations nest them under `headers`.
        let mut params = BTreeMap::new();
        if let Some(Value::Object(nested)) = msg.remove("headers") {
            params.extend(
                nested
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), value_text(v)?))),
            );
        }
        params.extend(
            msg.iter()
                .filter_map(|(k, v)| Some((k.clone(), value_text(v)?))),
        );
        let call_id = CALL_ID_FIELDS
            .iter()
            .find_map(|k| params.get(*k).filter(|v| !v.is_empty()).cloned())
            .or_else(|| self.fallback_call_id.clone())
            .ok_or_else(|| {
                malformed(
                    "websocket:connected names no call: put the call's uuid in the NCCO \
                     websocket headers",
                )
            })?;
        let stream_id = params.get("conversation_uuid").cloned();
        let from = params.get("from").cloned();
        let to = params.get("to").cloned();
        self.format = Some((codec, rate));
        Ok(ProviderEvent::Start(StreamStart {
            call_id: valid_call_id(P, &CALL_ID, &call_id)?,
            stream_id,
            account_id: None,
            codec: Some(codec),
            sample_rate_hz: rate,
            channels: 1,
            tracks: vec![Track::Caller],
            custom_parameters: params,
            from,
            to,
        }))
    }
}

impl Adapter for VonageAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        // Text frames are rare (hello, DTMF, acks): a generic parse is cheap enough.
        let mut msg: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| super::malformed(P, &e))?;
        let event = match msg.remove("event") {
            Some(Value::String(e)) => e,
            Some(_) => return Err(malformed("\"event\" is not a string")),
            None => return Err(malformed("no \"event\" field")),
        };
        match event.as_str() {
            "websocket:connected" => self.connected(msg),
            "websocket:dtmf" => {
                let digit = msg
                    .get("digit")
                    .or_else(|| msg.get("dtmf").and_then(|d| d.get("digit")))
                    .and_then(value_text)
                    .ok_or_else(|| malformed("websocket:dtmf without digit"))?;
                Ok(ProviderEvent::Dtmf { digit })
            }
            "websocket:cleared" => Ok(ProviderEvent::Ignored {
                kind: "websocket:cleared",
            }),
            "websocket:notify" => Ok(ProviderEvent::Ignored {
                kind: "websocket:notify",
            }),
            other => Err(unknown_event(P, other)),
        }
    }

    fn parse_binary<'a>(&mut self, bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        let Some((codec, rate)) = self.format else {
            return Err(ProtocolError::BinaryBeforeStart { provider: P.name() });
        };
        let timestamp_ms = self.samples * 1000 / u64::from(rate);
        self.frames += 1;
        self.samples += (bytes.len() / codec.bytes_per_sample()) as u64;
        Ok(ProviderEvent::Media(MediaChunk {
            track: Track::Caller,
            sequence: Some(self.frames),
            // The socket keeps order, and Vonage numbers nothing.
            chunk: None,
            timestamp_ms: Some(timestamp_ms),
            payload: Payload::Raw(bytes),
        }))
    }
}

/// The `content-type` for `codec` at `rate`. Vonage sends L16 only; G.711 is named as a content
/// type so a render with it still round-trips.
fn content_type(codec: Codec, rate_hz: u32) -> String {
    let base = match codec {
        Codec::L16 | Codec::L16Be => "audio/l16",
        Codec::Mulaw => "audio/pcmu",
        Codec::Alaw => "audio/pcma",
    };
    format!("{base};rate={rate_hz}")
}

/// Renders a call as Vonage sends it: the `websocket:connected` text frame (content type from
/// `spec`, `uuid` = `spec.call_id`, custom parameters as headers), then binary frames of exactly
/// [`FRAME_MS`] (`spec.chunk_ms` is ignored; the last frame is padded with silence). Vonage sends
/// one mono stream and no stop, so `agent` and `spec.send_stop` are not used.
pub fn render(spec: &RenderSpec, caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    let mut hello = Map::new();
    hello.insert("event".into(), json!("websocket:connected"));
    hello.insert(
        "content-type".into(),
        json!(content_type(spec.codec, spec.sample_rate_hz)),
    );
    for (k, v) in &spec.custom_parameters {
        hello.insert(k.clone(), json!(v));
    }
    hello.insert("uuid".into(), json!(spec.call_id));
    let mut out = vec![WireMessage::Text(Value::Object(hello).to_string())];
    let n = (spec.sample_rate_hz as usize * FRAME_MS as usize / 1000).max(1);
    let mut padded = vec![0i16; n];
    for samples in caller.chunks(n) {
        let frame = if samples.len() == n {
            samples
        } else {
            padded[..samples.len()].copy_from_slice(samples);
            &padded[..]
        };
        let mut wire = Vec::with_capacity(n * spec.codec.bytes_per_sample());
        spec.codec.encode_into(frame, &mut wire);
        out.push(WireMessage::Binary(wire));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTED: &str = super::SAMPLE_CONNECTED;

    fn start(a: &mut VonageAdapter, text: &str) -> StreamStart {
        match a.parse_text(text) {
            Ok(ProviderEvent::Start(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connected_fixes_the_format_and_binary_frames_are_caller_audio() {
        let mut a = VonageAdapter::default();
        assert_eq!(
            a.parse_binary(&[0; 640]),
            Err(ProtocolError::BinaryBeforeStart { provider: "vonage" })
        );
        let s = start(&mut a, CONNECTED);
        assert_eq!(s.call_id, "63f61863-4a51-4f6b-86e1-46edebcf9356");
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 16000));
        assert_eq!(s.tracks, vec![Track::Caller]);
        assert_eq!(s.custom_parameters["tenant"], "acme");
        assert_eq!(s.custom_parameters["attempt"], "2");
        let frame = [7u8; 640];
        for k in 0..2u64 {
            let ProviderEvent::Media(m) = a.parse_binary(&frame).unwrap() else {
                panic!()
            };
            assert_eq!(m.track, Track::Caller);
            assert_eq!(m.payload, Payload::Raw(&frame));
            assert_eq!((m.sequence, m.timestamp_ms), (Some(k + 1), Some(k * 20)));
        }
    }

    #[test]
    fn the_call_id_falls_back_through_headers_then_the_given_id() {
        let mut a = VonageAdapter::default();
        let s = start(
            &mut a,
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","headers":{"conversation_uuid":"CON-1"}}"#,
        );
        assert_eq!((s.call_id.as_str(), s.sample_rate_hz), ("CON-1", 8000));
        let bare = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}"#;
        let s = start(&mut VonageAdapter::with_fallback_call_id("conn-42"), bare);
        assert_eq!(s.call_id, "conn-42");
        // The server names each connection; two connections never share a call id.
        let named = |conn: &str| match Provider::Vonage.adapter_for(conn).parse_text(bare) {
            Ok(ProviderEvent::Start(s)) => s.call_id,
            other => panic!("{other:?}"),
        };
        let (one, two) = (named("1a2b-1"), named("1a2b-2"));
        assert_eq!(
            (one.as_str(), two.as_str()),
            ("vonage-1a2b-1", "vonage-1a2b-2")
        );
        // Without any name the stream is refused with what to fix.
        let e = VonageAdapter::default().parse_text(bare).unwrap_err();
        assert!(e.to_string().contains("uuid"), "{e}");
    }

    #[test]
    fn dtmf_and_acks() {
        let mut a = VonageAdapter::default();
        assert_eq!(
            a.parse_text(r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#)
                .unwrap(),
            ProviderEvent::Dtmf { digit: "5".into() }
        );
        assert_eq!(
            a.parse_text(r#"{"event":"websocket:dtmf","dtmf":{"digit":7}}"#)
                .unwrap(),
            ProviderEvent::Dtmf { digit: "7".into() }
        );
        assert_eq!(
            a.parse_text(r#"{"event":"websocket:cleared"}"#).unwrap(),
            ProviderEvent::Ignored {
                kind: "websocket:cleared"
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let mut a = VonageAdapter::default();
        for bad in [
            "not json",
            "[]",
            r#"{"content-type":"audio/l16;rate=8000"}"#,
        ] {
            assert!(
                matches!(a.parse_text(bad), Err(ProtocolError::Malformed { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            a.parse_text(r#"{"event":"websocket:connected","content-type":"audio/l16"}"#),
            Err(ProtocolError::UnsupportedRate { .. })
        ));
        assert!(matches!(
            a.parse_text(
                r#"{"event":"websocket:connected","content-type":"audio/opus;rate=16000"}"#
            ),
            Err(ProtocolError::UnsupportedCodec { .. })
        ));
        assert!(matches!(
            a.parse_text(r#"{"event":"websocket:bogus"}"#),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        // Nothing above set the format.
        assert!(matches!(
            a.parse_binary(&[0; 4]),
            Err(ProtocolError::BinaryBeforeStart { .. })
        ));
    }

    #[test]
    fn renders_exact_20_ms_frames() {
        let spec = RenderSpec::new("u1", Codec::L16, 16000);
        let pcm: Vec<i16> = (0..700).map(|i| i as i16).collect();
        let msgs = render(&spec, &pcm, None);
        assert_eq!(msgs.len(), 1 + 3);
        for m in &msgs[1..] {
            let WireMessage::Binary(b) = m else { panic!() };
            assert_eq!(b.len(), 640);
        }
        let WireMessage::Text(hello) = &msgs[0] else {
            panic!()
        };
        assert_eq!(start(&mut VonageAdapter::default(), hello).call_id, "u1");
    }
}
