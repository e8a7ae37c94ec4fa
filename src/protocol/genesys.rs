//! Genesys Cloud AudioHook v2 as a provider: the registry entry and the per-stream adapter
//! around [`super::audiohook::Session`] (which owns the protocol: sequence numbers, media
//! choice, replies, the upgrade signature).
//!
//! Genesys opens the socket, sends `open` offering PCMU 8 kHz media (stereo `external` +
//! `internal`, or `external` alone) and waits for `opened`; `ping` wants `pong`; `close` wants
//! `closed`. Those replies, and the `disconnect` that hands the call back to the Architect flow
//! when warmline decides a handoff (`outputVariables`: `action = "transfer"`, the handoff id and
//! the spoken summary), are queued here for the gateway to send ([`Adapter::take_reply`]).
//! Binary frames are PCMU, interleaved customer/agent when stereo.

use super::audiohook::{MAX_FRAME_BYTES, Session, SessionError};
use super::{
    Adapter, AuthRule, CallIdRule, Payload, ProtocolError, Provider, ProviderEvent, ProviderSpec,
    RenderSpec, StreamStart, Track, WireMessage, call_id,
};
use crate::codec::Codec;
use serde_json::json;
use std::collections::VecDeque;

const P: Provider = Provider::Genesys;

/// Replies a stream may have waiting; a client that pings faster than the gateway answers
/// loses the oldest pongs, never memory.
pub const MAX_QUEUED_REPLIES: usize = 16;

/// Frames rendered for fixtures: 100 ms, within what Genesys sends (20–100 ms).
pub const FRAME_MS: u32 = 100;

/// A documented `open` (stereo offered first, then customer only).
pub const SAMPLE_OPEN: &str = r#"{"version":"2","type":"open","seq":1,"serverseq":0,"id":"e160e428-53e2-487c-977d-96989bf5c99d","position":"PT0S","parameters":{"organizationId":"d7934305-0972-4844-938e-9060eef73d05","conversationId":"090eaa2f-72fa-480a-83e0-8667ff89c0ec","participant":{"id":"883efee8-3d6c-4537-b500-6d7ca4b92fa0","ani":"+1-555-555-1234","aniName":"John Doe","dnis":"+1-800-555-6789"},"media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000},{"type":"audio","format":"PCMU","channels":["external"],"rate":8000}],"language":"en-US"}}"#;

/// A documented `ping` (valid once open).
pub const SAMPLE_PING: &str = r#"{"version":"2","type":"ping","seq":2,"serverseq":1,"id":"e160e428-53e2-487c-977d-96989bf5c99d","position":"PT5S","parameters":{}}"#;

/// A documented `close`.
pub const SAMPLE_CLOSE: &str = r#"{"version":"2","type":"close","seq":3,"serverseq":2,"id":"e160e428-53e2-487c-977d-96989bf5c99d","position":"PT12S","parameters":{"reason":"end"}}"#;

/// The registry entry.
pub const SPEC: ProviderSpec = ProviderSpec {
    name: "genesys",
    call_id: CallIdRule::GENERIC,
    usual_format: (Codec::Mulaw, 8000),
    two_tracks: true,
    auth: AuthRule::AudioHook,
    subprotocols: &[],
    transfer: None,
    detect: |head| {
        head.lines()
            .next()
            .is_some_and(|l| l.contains("\"version\":\"2\"") && l.contains("\"type\":\"open\""))
    },
    adapter: |_| Box::new(GenesysAdapter::default()),
    render,
    wire_codec: |_| Codec::Mulaw,
    samples: &[SAMPLE_OPEN],
};

/// One AudioHook stream.
#[derive(Debug, Default)]
pub struct GenesysAdapter {
    session: Session,
    replies: VecDeque<String>,
    frames: u64,
}

impl GenesysAdapter {
    fn queue(&mut self, reply: String) {
        if self.replies.len() == MAX_QUEUED_REPLIES {
            self.replies.pop_front();
        }
        self.replies.push_back(reply);
    }
}

fn refused(e: SessionError) -> ProtocolError {
    match e {
        SessionError::NotOpen("audio") => ProtocolError::BinaryBeforeStart { provider: P.name() },
        e => ProtocolError::Malformed {
            provider: P.name(),
            detail: e.to_string(),
        },
    }
}

impl Adapter for GenesysAdapter {
    fn provider(&self) -> Provider {
        P
    }

    fn parse_text<'a>(&mut self, text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        use super::audiohook::Control;
        let (control, reply) = self.session.on_text(text).map_err(refused)?;
        if let Some(r) = reply {
            self.queue(r);
        }
        Ok(match control {
            Control::Opened {
                conversation_id,
                two_channels,
            } => ProviderEvent::Start(StreamStart {
                call_id: call_id(P, &SPEC.call_id, &conversation_id)?,
                stream_id: Some(self.session.id().to_owned()),
                account_id: None,
                codec: Some(Codec::Mulaw),
                sample_rate_hz: 8000,
                channels: if two_channels { 2 } else { 1 },
                tracks: if two_channels {
                    Track::ALL.to_vec()
                } else {
                    vec![Track::Caller]
                },
                ..StreamStart::default()
            }),
            Control::Closed => ProviderEvent::Stop,
            Control::Paused => ProviderEvent::Ignored { kind: "pause" },
            Control::Resumed => ProviderEvent::Ignored { kind: "resume" },
            Control::None => ProviderEvent::Ignored { kind: "control" },
        })
    }

    fn parse_binary<'a>(&mut self, bytes: &'a [u8]) -> Result<ProviderEvent<'a>, ProtocolError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(refused(SessionError::TooLarge(bytes.len())));
        }
        let payload = match self.session.two_channels() {
            None => return Err(refused(SessionError::NotOpen("audio"))),
            Some(true) => Payload::RawStereo(bytes),
            Some(false) => Payload::Raw(bytes),
        };
        Ok(super::raw_frame(&mut self.frames, payload))
    }

    fn take_reply(&mut self) -> Option<String> {
        self.replies.pop_front()
    }

    fn on_handoff(&mut self, handoff_id: &str, summary: &str) {
        if self.session.two_channels().is_some() {
            let r = self.session.handoff(handoff_id, summary);
            self.queue(r);
        }
    }
}

/// Renders a session as Genesys sends it: `open` (conversation = `spec.call_id`, stereo media
/// offered when `agent` is given), 100 ms PCMU frames (interleaved customer/agent in stereo, the
/// shorter side padded with silence), then `close` when `spec.send_stop`. `spec.codec` does not
/// apply: AudioHook is PCMU.
pub fn render(spec: &RenderSpec, caller: &[i16], agent: Option<&[i16]>) -> Vec<WireMessage> {
    let session = format!("s-{}", spec.call_id);
    let channels = if agent.is_some() {
        json!(["external", "internal"])
    } else {
        json!(["external"])
    };
    let open = json!({"version": "2", "type": "open", "seq": 1, "serverseq": 0, "id": session,
        "position": "PT0S", "parameters": {"conversationId": spec.call_id,
        "media": [{"type": "audio", "format": "PCMU", "channels": channels, "rate": 8000}]}});
    let mut out = vec![WireMessage::Text(open.to_string())];
    let n = (8000 * FRAME_MS as usize / 1000).max(1);
    let len = caller.len().max(agent.map_or(0, <[i16]>::len));
    let at = |pcm: &[i16], i: usize| pcm.get(i).copied().unwrap_or(0);
    let mut pcm = Vec::with_capacity(n * 2);
    for start in (0..len).step_by(n) {
        pcm.clear();
        for i in start..(start + n).min(len) {
            pcm.push(at(caller, i));
            if let Some(agent) = agent {
                pcm.push(at(agent, i));
            }
        }
        let mut wire = Vec::with_capacity(pcm.len());
        Codec::Mulaw.encode_into(&pcm, &mut wire);
        out.push(WireMessage::Binary(wire));
    }
    if spec.send_stop {
        let close = json!({"version": "2", "type": "close", "seq": 2, "serverseq": 1,
            "id": session, "parameters": {"reason": "end"}});
        out.push(WireMessage::Text(close.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::session::{Session as MediaSession, Step};

    fn reply_type(r: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        v["type"].as_str().unwrap().to_owned()
    }

    #[test]
    fn open_starts_a_stereo_call_and_is_answered_opened_with_the_chosen_media() {
        let mut a = GenesysAdapter::default();
        let ProviderEvent::Start(s) = a.parse_text(SAMPLE_OPEN).unwrap() else {
            panic!()
        };
        assert_eq!(s.call_id, "090eaa2f-72fa-480a-83e0-8667ff89c0ec");
        assert_eq!(
            (s.codec, s.sample_rate_hz, s.channels),
            (Some(Codec::Mulaw), 8000, 2)
        );
        assert_eq!(s.tracks, Track::ALL.to_vec());
        let opened: serde_json::Value = serde_json::from_str(&a.take_reply().unwrap()).unwrap();
        assert_eq!(opened["type"], "opened");
        assert_eq!(opened["clientseq"], 1);
        assert_eq!(
            opened["parameters"]["media"][0]["channels"],
            json!(["external", "internal"])
        );
        assert!(a.take_reply().is_none());

        assert_eq!(
            a.parse_text(SAMPLE_PING).unwrap(),
            ProviderEvent::Ignored { kind: "control" }
        );
        assert_eq!(reply_type(&a.take_reply().unwrap()), "pong");
        a.on_handoff("h-1", "Caller is angry about a double charge.");
        let d: serde_json::Value = serde_json::from_str(&a.take_reply().unwrap()).unwrap();
        assert_eq!(d["type"], "disconnect");
        assert_eq!(d["parameters"]["outputVariables"]["handoff_id"], "h-1");
        assert_eq!(a.parse_text(SAMPLE_CLOSE).unwrap(), ProviderEvent::Stop);
        assert_eq!(reply_type(&a.take_reply().unwrap()), "closed");
    }

    #[test]
    fn audio_before_open_and_bad_control_are_refused_and_replies_are_bounded() {
        let mut a = GenesysAdapter::default();
        assert!(matches!(
            a.parse_binary(&[0xff; 160]),
            Err(ProtocolError::BinaryBeforeStart { .. })
        ));
        assert!(matches!(
            a.parse_text("{not json"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            a.parse_text(SAMPLE_PING),
            Err(ProtocolError::Malformed { .. })
        ));
        a.on_handoff("h", "s");
        assert!(a.take_reply().is_none(), "no disconnect before open");
        a.parse_text(SAMPLE_OPEN).unwrap();
        for _ in 0..100 {
            a.parse_text(SAMPLE_PING).unwrap();
        }
        let mut n = 0;
        while a.take_reply().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED_REPLIES);
        assert!(a.parse_binary(&vec![0u8; MAX_FRAME_BYTES + 2]).is_err());
    }

    #[test]
    fn a_rendered_stereo_session_parses_back_to_both_tracks() {
        let caller: Vec<i16> = (0..1600)
            .map(|i| ((i % 80) * 300 - 12_000) as i16)
            .collect();
        let agent: Vec<i16> = (0..1200).map(|i| ((i % 40) * 200 - 4000) as i16).collect();
        let spec = RenderSpec::new("conv-1", Codec::Mulaw, 8000);
        let msgs = render(&spec, &caller, Some(&agent));
        assert!((SPEC.detect)(&match &msgs[0] {
            WireMessage::Text(t) => t.clone(),
            WireMessage::Binary(_) => panic!(),
        }));
        let mut a = GenesysAdapter::default();
        let mut s = MediaSession::new();
        let mut got = [Vec::new(), Vec::new()];
        for m in &msgs {
            let ev = match m {
                WireMessage::Text(t) => a.parse_text(t).unwrap(),
                WireMessage::Binary(b) => a.parse_binary(b).unwrap(),
            };
            if matches!(s.apply(ev).unwrap(), Step::Audio | Step::Stopped) {
                for t in Track::ALL {
                    got[t.index()].extend_from_slice(&s.take_audio(t));
                }
            }
        }
        let round = |pcm: &[i16]| -> Vec<i16> {
            let mut w = Vec::new();
            Codec::Mulaw.encode_into(pcm, &mut w);
            let mut back = Vec::new();
            Codec::Mulaw.decode_into(&w, &mut back).unwrap();
            back
        };
        assert_eq!(got[Track::Caller.index()], round(&caller));
        let mut padded = agent.clone();
        padded.resize(caller.len(), 0);
        assert_eq!(got[Track::Agent.index()], round(&padded));
    }
}
