//! Asterisk `chan_websocket` (Asterisk 20.16, 21.11, 22.6, 23 and later): control in text
//! frames, either JSON (`{"event":"MEDIA_START",…}`) or the plain form (`MEDIA_START
//! channel_id:… format:slin16 …`), media in binary frames in the channel's format (`ulaw`,
//! `alaw`, `slin`, `slin16`, … up to `slin48`; slin is host order, little-endian). One
//! channel: the caller. `HANGUP` ends the stream; back-pressure and status events are skipped.
//! Handoffs reach Asterisk through the signed webhook (the dialplan or ARI app moves the call).

use super::{
    Adapter, AuthRule, CallIdRule, Payload, ProtocolError, Provider, ProviderEvent, ProviderSpec,
    RenderSpec, StreamStart, Track, WireMessage, call_id, check_rate, unknown_event,
};
use crate::codec::Codec;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const P: Provider = Provider::Asterisk;

/// The rates of Asterisk's formats up to `slin48` (`slin44` is 44.1 kHz); others are refused.
const RATES_HZ: [u32; 7] = [8000, 12000, 16000, 24000, 32000, 44_100, 48000];

/// The documented `MEDIA_START`, JSON form.
pub const SAMPLE_MEDIA_START: &str = r#"{"event":"MEDIA_START","connection_id":"1761245643.1","channel":"WebSocket/connection1/0x5140001a0040","channel_id":"1761245643.1","format":"ulaw","optimal_frame_size":160,"ptime":20}"#;
/// The same in the plain-text form.
pub const SAMPLE_MEDIA_START_PLAIN: &str = "MEDIA_START connection_id:1761245643.1 channel:WebSocket/connection1/0x5140001a0040 channel_id:1761245643.1 format:slin16 optimal_frame_size:640 ptime:20";

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "asterisk",
    call_id: CallIdRule::GENERIC,
    usual_format: (Codec::Mulaw, 8000),
    two_tracks: false,
    auth: AuthRule::Token { headers: &[] },
    subprotocols: &[],
    transfer: Some("asterisk"),
    detect: |head| head.contains("MEDIA_START"),
    adapter: |_| Box::new(AsteriskAdapter::default()),
    render,
    wire_codec: |c| match c {
        Codec::L16Be => Codec::L16,
        c => c,
    },
    samples: &[
        SAMPLE_MEDIA_START,
        SAMPLE_MEDIA_START_PLAIN,
        r#"{"event":"DTMF_END","digit":"5"}"#,
        "MEDIA_XOFF",
        r#"{"event":"HANGUP"}"#,
    ],
};

/// Adapter for one channel: remembers the format of `MEDIA_START`.
#[derive(Debug, Default)]
pub struct AsteriskAdapter {
    format: Option<Codec>,
    frames: u64,
}

fn malformed(detail: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        provider: P.name(),
        detail: detail.into(),
    }
}

/// `ulaw` → mu-law 8 kHz, `slin16` → L16 16 kHz, ….
fn format_of(name: &str) -> Result<(Codec, Option<u64>), ProtocolError> {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "ulaw" | "mulaw" => Ok((Codec::Mulaw, Some(8000))),
        "alaw" => Ok((Codec::Alaw, Some(8000))),
        "slin" => Ok((Codec::L16, Some(8000))),
        other => match other.strip_prefix("slin").map(str::parse::<u64>) {
            // slin44 is 44.1 kHz.
            Some(Ok(44)) => Ok((Codec::L16, Some(44_100))),
            Some(Ok(k)) => Ok((Codec::L16, Some(k * 1000))),
            _ => Err(ProtocolError::UnsupportedCodec {
                provider: P.name(),
                encoding: other.chars().take(64).collect(),
            }),
        },
    }
}

/// A control message as (event, fields), from either form.
fn control(text: &str) -> Result<(String, Map<String, Value>), ProtocolError> {
    if text.trim_start().starts_with('{') {
        let mut msg: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| super::malformed(P, &e))?;
        return match msg.remove("event").or_else(|| msg.remove("type")) {
            Some(Value::String(e)) => Ok((e, msg)),
            _ => Err(malformed("no \"event\" field")),
        };
    }
    let mut words = text.split_whitespace();
    let event = words
        .next()
        .ok_or_else(|| malformed("empty control message"))?;
    let fields = words
        .filter_map(|w| w.split_once(':'))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    Ok((event.to_owned(), fields))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

impl Adapter for AsteriskAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, frame: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        let (event, mut f) = control(frame)?;
        match event.as_str() {
            "MEDIA_START" => {
                let format = f
                    .remove("format")
                    .and_then(|v| text(&v))
                    .ok_or_else(|| malformed("MEDIA_START without format"))?;
                let (codec, rate) = format_of(&format)?;
                let rate = check_rate(P, rate, &RATES_HZ)?;
                let raw_id = ["channel_id", "connection_id"]
                    .iter()
                    .find_map(|k| f.get(*k).and_then(text))
                    .ok_or_else(|| malformed("MEDIA_START without channel_id"))?;
                let call_id = call_id(P, &SPEC.call_id, &raw_id)?;
                let custom_parameters: BTreeMap<String, String> = f
                    .iter()
                    .filter(|(k, _)| *k != "channel_id")
                    .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                    .collect();
                self.format = Some(codec);
                Ok(ProviderEvent::Start(StreamStart {
                    call_id,
                    stream_id: f.get("connection_id").and_then(text),
                    account_id: None,
                    codec: Some(codec),
                    sample_rate_hz: rate,
                    channels: 1,
                    tracks: vec![Track::Caller],
                    custom_parameters,
                    from: None,
                    to: None,
                }))
            }
            "DTMF_END" => {
                let digit = f
                    .get("digit")
                    .and_then(text)
                    .ok_or_else(|| malformed("DTMF_END without digit"))?;
                Ok(ProviderEvent::Dtmf { digit })
            }
            "HANGUP" => Ok(ProviderEvent::Stop),
            "MEDIA_XOFF" => Ok(ProviderEvent::Ignored { kind: "MEDIA_XOFF" }),
            "MEDIA_XON" => Ok(ProviderEvent::Ignored { kind: "MEDIA_XON" }),
            "STATUS" => Ok(ProviderEvent::Ignored { kind: "STATUS" }),
            "QUEUE_DRAINED" => Ok(ProviderEvent::Ignored {
                kind: "QUEUE_DRAINED",
            }),
            "MEDIA_BUFFERING_COMPLETED" => Ok(ProviderEvent::Ignored {
                kind: "MEDIA_BUFFERING_COMPLETED",
            }),
            "MEDIA_MARK_PROCESSED" => Ok(ProviderEvent::Ignored {
                kind: "MEDIA_MARK_PROCESSED",
            }),
            other => Err(unknown_event(P, other)),
        }
    }

    fn parse_binary<'a>(&mut self, bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        if self.format.is_none() {
            return Err(ProtocolError::BinaryBeforeStart { provider: P.name() });
        }
        Ok(super::raw_frame(&mut self.frames, Payload::Raw(bytes)))
    }
}

/// The `format` Asterisk names for `codec` at `rate_hz`.
fn format_name(codec: Codec, rate_hz: u32) -> String {
    match codec {
        Codec::Mulaw => "ulaw".into(),
        Codec::Alaw => "alaw".into(),
        Codec::L16 | Codec::L16Be if rate_hz == 8000 => "slin".into(),
        Codec::L16 | Codec::L16Be if rate_hz == 44_100 => "slin44".into(),
        Codec::L16 | Codec::L16Be => format!("slin{}", rate_hz / 1000),
    }
}

/// Renders a channel as Asterisk sends it: `MEDIA_START` (JSON form, `channel_id` =
/// `spec.call_id`, custom parameters as extra fields), binary frames of `spec.chunk_ms` in the channel's format (L16 always little
/// endian), then `HANGUP` if `spec.send_stop`. One channel: `agent` is not used.
pub fn render(spec: &RenderSpec, caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    let codec = (SPEC.wire_codec)(spec.codec);
    let n = spec.chunk_samples();
    let mut start = json!({"event":"MEDIA_START","connection_id":spec.stream_id,
        "channel":"WebSocket/warmline/0x1","channel_id":spec.call_id,
        "format":format_name(codec, spec.sample_rate_hz),
        "optimal_frame_size":n * codec.bytes_per_sample(),"ptime":spec.chunk_ms});
    // Channel variables a dialplan adds arrive as extra fields: custom parameters.
    if let Value::Object(fields) = &mut start {
        for (k, v) in &spec.custom_parameters {
            fields.entry(k.clone()).or_insert_with(|| json!(v));
        }
    }
    let mut out = vec![WireMessage::Text(start.to_string())];
    for samples in caller.chunks(n) {
        let mut wire = Vec::with_capacity(samples.len() * codec.bytes_per_sample());
        codec.encode_into(samples, &mut wire);
        out.push(WireMessage::Binary(wire));
    }
    if spec.send_stop {
        out.push(WireMessage::Text(json!({"event":"HANGUP"}).to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_media_start_parse() {
        let ProviderEvent::Start(s) = AsteriskAdapter::default()
            .parse_text(SAMPLE_MEDIA_START)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.call_id, "1761245643.1");
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::Mulaw), 8000));
        assert_eq!(s.custom_parameters["ptime"], "20");
        let ProviderEvent::Start(s) = AsteriskAdapter::default()
            .parse_text(SAMPLE_MEDIA_START_PLAIN)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((s.codec, s.sample_rate_hz), (Some(Codec::L16), 16000));
        assert_eq!(s.call_id, "1761245643.1");
    }

    #[test]
    fn control_events_and_refusals() {
        let mut a = AsteriskAdapter::default();
        assert!(matches!(
            a.parse_binary(&[0xff; 160]),
            Err(ProtocolError::BinaryBeforeStart { .. })
        ));
        a.parse_text(SAMPLE_MEDIA_START).unwrap();
        assert!(matches!(
            a.parse_binary(&[0xff; 160]).unwrap(),
            ProviderEvent::Media(_)
        ));
        assert_eq!(
            a.parse_text("DTMF_END digit:7").unwrap(),
            ProviderEvent::Dtmf { digit: "7".into() }
        );
        assert_eq!(a.parse_text("HANGUP").unwrap(), ProviderEvent::Stop);
        assert!(matches!(
            a.parse_text("MEDIA_XOFF").unwrap(),
            ProviderEvent::Ignored { .. }
        ));
        assert!(matches!(
            a.parse_text("FROB x:1"),
            Err(ProtocolError::UnknownEvent { .. })
        ));
        assert!(matches!(
            AsteriskAdapter::default()
                .parse_text(r#"{"event":"MEDIA_START","channel_id":"c","format":"opus"}"#),
            Err(ProtocolError::UnsupportedCodec { .. })
        ));
        assert!(matches!(
            AsteriskAdapter::default()
                .parse_text(r#"{"event":"MEDIA_START","channel_id":"c","format":"slin96"}"#),
            Err(ProtocolError::UnsupportedRate { .. })
        ));
        assert!(matches!(
            AsteriskAdapter::default().parse_text("MEDIA_START channel_id:a\u{1b}b format:ulaw"),
            Err(ProtocolError::BadCallId { .. })
        ));
    }
}
