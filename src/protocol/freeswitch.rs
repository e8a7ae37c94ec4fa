//! FreeSWITCH `mod_audio_fork` (and jambonz `listen`, the same protocol): the first text frame
//! is the metadata JSON given to `uuid_audio_fork <uuid> start <url> <mix> <rate> <metadata>`,
//! then binary frames of L16 little-endian PCM: `mono` (the caller) and `mixed` (both sides in
//! one channel, read as the caller) are one channel, `stereo` is interleaved caller/agent.
//! There is no stop message: the socket closes. Later text frames (`send_text`, the stop
//! metadata) are skipped.
//!
//! The metadata must name the call (first of [`CALL_ID_FIELDS`]; jambonz sends `callSid`) and
//! may give `sampleRate` (`8000`, `"16k"`; default 8000) and `mixType`/`mix_type`
//! (`mono`, `mixed`, `stereo`; default mono). Its other string fields become custom parameters.
//! Handoffs reach FreeSWITCH through the signed webhook (no transfer API is called).
//!
//! The module asks for the WebSocket subprotocol `audio.drachtio.org` (its README's
//! `audiostream.drachtio.org` is stale; both are offered) and libwebsockets drops a connection
//! whose upgrade does not select it.

use super::{
    Adapter, AuthRule, CallIdRule, Payload, ProtocolError, Provider, ProviderEvent, ProviderSpec,
    RenderSpec, StreamStart, Track, WireMessage, call_id, check_rate,
};
use crate::codec::Codec;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const P: Provider = Provider::Freeswitch;

/// The rates `uuid_audio_fork` is asked for in practice (`8k` … `48k`); others are refused.
const RATES_HZ: [u32; 5] = [8000, 16000, 24000, 32000, 48000];

/// Fields of the metadata that name the call, in order of preference.
pub const CALL_ID_FIELDS: [&str; 5] = ["uuid", "callSid", "call_sid", "call_id", "callId"];

/// Frames rendered for fixtures are 20 ms, as FreeSWITCH's media bug delivers them.
pub const FRAME_MS: u32 = 20;

/// The documented first frame (a jambonz `listen` metadata object).
pub const SAMPLE_METADATA: &str = r#"{"callSid":"4a2b7c3e-9f1d-4e8a-b6c5-0d1e2f3a4b5c","from":"+15083084809","to":"+15083728299","callId":"4a2b7c3e-9f1d-4e8a-b6c5-0d1e2f3a4b5c","sampleRate":8000,"mixType":"stereo","tenant":"acme"}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "freeswitch",
    call_id: CallIdRule::GENERIC,
    usual_format: (Codec::L16, 8000),
    two_tracks: true,
    auth: AuthRule::Token { headers: &[] },
    subprotocols: &["audio.drachtio.org", "audiostream.drachtio.org"],
    transfer: None,
    detect: |head| {
        head.lines().next().is_some_and(|l| {
            (l.contains("\"mixType\"") || l.contains("\"mix_type\"")) && !l.contains("\"event\"")
        })
    },
    adapter: |connection_id| {
        Box::new(FreeswitchAdapter {
            fallback_call_id: (!connection_id.is_empty())
                .then(|| format!("freeswitch-{connection_id}")),
            ..FreeswitchAdapter::default()
        })
    },
    render,
    wire_codec: |_| Codec::L16,
    samples: &[SAMPLE_METADATA],
};

/// Adapter for one fork: remembers the format announced by the metadata frame.
#[derive(Debug, Default)]
pub struct FreeswitchAdapter {
    /// Rate and whether frames are stereo, once the metadata arrived.
    format: Option<(u32, bool)>,
    frames: u64,
    fallback_call_id: Option<String>,
}

fn malformed(detail: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        provider: P.name(),
        detail: detail.into(),
    }
}

/// `8000`, `"8000"`, `"8k"`, `"16k"`.
fn rate_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            match s.strip_suffix('k') {
                Some(k) => k.parse::<u64>().ok().map(|k| k * 1000),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

impl FreeswitchAdapter {
    fn metadata(
        &mut self,
        mut msg: Map<String, Value>,
    ) -> Result<ProviderEvent<'static>, ProtocolError> {
        let rate = ["sampleRate", "sample_rate", "rate"]
            .iter()
            .find_map(|k| msg.remove(*k))
            .map_or(Some(8000), |v| rate_of(&v));
        let rate = check_rate(P, rate, &RATES_HZ)?;
        let mix = ["mixType", "mix_type", "mix"]
            .iter()
            .find_map(|k| msg.remove(*k));
        let stereo = match mix.as_ref().and_then(Value::as_str) {
            None | Some("mono" | "mixed") => false,
            Some("stereo") => true,
            Some(other) => {
                return Err(malformed(format!(
                    "mixType {:?} (expected mono, mixed or stereo)",
                    other.chars().take(16).collect::<String>()
                )));
            }
        };
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
            _ => None,
        };
        let raw_id = CALL_ID_FIELDS
            .iter()
            .find_map(|k| msg.get(*k).and_then(text).filter(|v| !v.is_empty()))
            .or_else(|| self.fallback_call_id.clone())
            .ok_or_else(|| malformed("metadata names no call: add \"uuid\" (the channel uuid)"))?;
        let from = msg.get("from").and_then(text);
        let to = msg.get("to").and_then(text);
        let custom_parameters: BTreeMap<String, String> = msg
            .iter()
            .filter(|(k, _)| !CALL_ID_FIELDS.contains(&k.as_str()) && *k != "from" && *k != "to")
            .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
            .collect();
        let call_id = call_id(P, &SPEC.call_id, &raw_id)?;
        self.format = Some((rate, stereo));
        Ok(ProviderEvent::Start(StreamStart {
            call_id,
            stream_id: None,
            account_id: None,
            codec: Some(Codec::L16),
            sample_rate_hz: rate,
            channels: if stereo { 2 } else { 1 },
            tracks: if stereo {
                Track::ALL.to_vec()
            } else {
                vec![Track::Caller]
            },
            custom_parameters,
            from,
            to,
        }))
    }
}

impl Adapter for FreeswitchAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        let msg: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| super::malformed(P, &e))?;
        if self.format.is_some() {
            // `send_text` and the stop metadata: nothing for the detector.
            return Ok(ProviderEvent::Ignored { kind: "metadata" });
        }
        self.metadata(msg)
    }

    fn parse_binary<'a>(&mut self, bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        let Some((_, stereo)) = self.format else {
            return Err(ProtocolError::BinaryBeforeStart { provider: P.name() });
        };
        let payload = if stereo {
            Payload::RawStereo(bytes)
        } else {
            Payload::Raw(bytes)
        };
        Ok(super::raw_frame(&mut self.frames, payload))
    }
}

/// Renders a fork as FreeSWITCH sends it: the metadata frame (`uuid` = `spec.call_id`,
/// `sampleRate`, `mixType` stereo when `agent` is given, custom parameters), then 20 ms binary
/// L16 LE frames, interleaved caller/agent in stereo (the shorter side padded with silence).
/// `spec.codec` and `spec.send_stop` do not apply: FreeSWITCH sends L16 and just closes.
pub fn render(spec: &RenderSpec, caller: &[i16], agent: Option<&[i16]>) -> Vec<WireMessage> {
    let mut meta = Map::new();
    for (k, v) in &spec.custom_parameters {
        meta.insert(k.clone(), json!(v));
    }
    meta.insert("uuid".into(), json!(spec.call_id));
    meta.insert("sampleRate".into(), json!(spec.sample_rate_hz));
    meta.insert(
        "mixType".into(),
        json!(if agent.is_some() { "stereo" } else { "mono" }),
    );
    let mut out = vec![WireMessage::Text(Value::Object(meta).to_string())];
    let n = (spec.sample_rate_hz as usize * FRAME_MS as usize / 1000).max(1);
    let len = caller.len().max(agent.map_or(0, <[i16]>::len));
    let at = |pcm: &[i16], i: usize| pcm.get(i).copied().unwrap_or(0);
    for start in (0..len).step_by(n) {
        let end = (start + n).min(len);
        let mut wire = Vec::with_capacity((end - start) * 4);
        for i in start..end {
            wire.extend_from_slice(&at(caller, i).to_le_bytes());
            if let Some(agent) = agent {
                wire.extend_from_slice(&at(agent, i).to_le_bytes());
            }
        }
        out.push(WireMessage::Binary(wire));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::session::Session;

    fn adapter() -> Box<dyn Adapter> {
        P.adapter_for("c1")
    }

    #[test]
    fn the_documented_metadata_starts_a_stereo_stream() {
        let ProviderEvent::Start(s) = adapter().parse_text(SAMPLE_METADATA).unwrap() else {
            panic!()
        };
        assert_eq!(s.call_id, "4a2b7c3e-9f1d-4e8a-b6c5-0d1e2f3a4b5c");
        assert_eq!(
            (s.codec, s.sample_rate_hz, s.channels),
            (Some(Codec::L16), 8000, 2)
        );
        assert_eq!(s.tracks, Track::ALL.to_vec());
        assert_eq!(s.custom_parameters["tenant"], "acme");
        assert_eq!(s.from.as_deref(), Some("+15083084809"));
    }

    #[test]
    fn reads_rates_mix_types_and_names_the_call_from_the_connection() {
        let start = |text: &str| match adapter().parse_text(text) {
            Ok(ProviderEvent::Start(s)) => s,
            other => panic!("{other:?}"),
        };
        let s = start(r#"{"uuid":"u-1","sampleRate":"16k","mix_type":"mixed"}"#);
        assert_eq!((s.sample_rate_hz, s.tracks.len()), (16000, 1));
        let s = start(r#"{"some":"thing"}"#);
        assert_eq!(
            (s.call_id.as_str(), s.sample_rate_hz),
            ("freeswitch-c1", 8000)
        );
        assert!(matches!(
            P.adapter().parse_text(r#"{"some":"thing"}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            adapter().parse_text(r#"{"uuid":"u","mixType":"quad"}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            adapter().parse_text(r#"{"uuid":"u","sampleRate":"96k"}"#),
            Err(ProtocolError::UnsupportedRate { .. })
        ));
        assert!(matches!(
            adapter().parse_binary(&[0, 0]),
            Err(ProtocolError::BinaryBeforeStart { .. })
        ));
    }

    #[test]
    fn stereo_frames_split_into_caller_and_agent() {
        let mut a = adapter();
        let mut session = Session::new();
        session
            .apply(a.parse_text(SAMPLE_METADATA).unwrap())
            .unwrap();
        // caller 1, agent -1, caller 2, agent -2
        let frame: Vec<u8> = [1i16, -1, 2, -2]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        session.apply(a.parse_binary(&frame).unwrap()).unwrap();
        assert_eq!(&*session.take_audio(Track::Caller), &[1, 2]);
        assert_eq!(&*session.take_audio(Track::Agent), &[-1, -2]);
        assert!(matches!(
            a.parse_text(r#"{"type":"stop"}"#).unwrap(),
            ProviderEvent::Ignored { .. }
        ));
    }
}
