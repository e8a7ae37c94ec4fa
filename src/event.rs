//! The contract's event objects: what `replay` prints, the server streams and logs record.
//!
//! Every event carries `event` (its kind), `call_id` and `t_ms` (media time from sample counts).

use crate::codec::Codec;
use crate::protocol::Provider;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::protocol::Track;

/// Where a call's audio came from: a provider's media stream, or a WAV file in `replay`.
/// Serialised as the contract's `provider` string (`twilio`, …, `wav`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallSource {
    /// A provider's stream (live, or a recorded provider JSONL in replay).
    Provider(Provider),
    /// PCM from a WAV file.
    Wav,
}

impl CallSource {
    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            CallSource::Provider(p) => p.name(),
            CallSource::Wav => "wav",
        }
    }

    /// The provider, when the call came from one.
    pub fn provider(self) -> Option<Provider> {
        match self {
            CallSource::Provider(p) => Some(p),
            CallSource::Wav => None,
        }
    }
}

impl From<Provider> for CallSource {
    fn from(p: Provider) -> Self {
        CallSource::Provider(p)
    }
}

impl std::fmt::Display for CallSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CallSource {
    type Err = crate::protocol::ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wav" => Ok(CallSource::Wav),
            other => other.parse().map(CallSource::Provider),
        }
    }
}

impl Serialize for CallSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for CallSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One event of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The provider's call id (Twilio `callSid`) or the replay input's name.
    pub call_id: String,
    /// Media time since the stream started, in milliseconds.
    pub t_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of event, serialised as `"event": "<snake_case name>"`.
// A handoff is far larger than the rest, but there is at most one per call; boxing it would
// only complicate every producer and consumer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The provider's start message was accepted.
    CallStarted(CallStarted),
    /// Periodic per-track prosody (at least once per second of speech).
    Prosody(Prosody),
    /// A signal crossed its threshold.
    Signal(SignalCrossing),
    /// The policy decided to hand the caller to a human. At most one per call.
    Handoff(Handoff),
    /// A handoff reached a target.
    HandoffDelivered(Delivery),
    /// A handoff could not be delivered after the configured attempts (kept in the outbox).
    HandoffFailed(Delivery),
    /// The stream ended (with or without a provider `stop`).
    CallEnded(CallEnded),
    /// A warm transfer's agent leg answered.
    HandoffConnected(TransferConnected),
    /// A warm transfer moved on: the agent did not answer, was busy or failed.
    HandoffFallback(TransferFallback),
    /// The caller hung up on hold before a human answered.
    HandoffAbandoned(TransferAbandoned),
}

/// Fields of `call_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStarted {
    /// `twilio`, `telnyx`, `plivo`, `exotel`, `vonage`, … or `wav` in replay.
    pub provider: CallSource,
    /// `pcmu`, `pcma`, `l16` or `l16be`.
    pub codec: Codec,
    /// The stream's sample rate.
    pub sample_rate_hz: u32,
    /// The tracks the provider announced.
    pub tracks: Vec<Track>,
    /// Provider stream id where it has one (Twilio `streamSid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// Custom parameters from the start message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_parameters: BTreeMap<String, String>,
}

/// Fields of `prosody`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prosody {
    /// Which speaker.
    pub track: Track,
    /// Median F0 over the last report interval; null when unvoiced.
    pub f0_hz: Option<f64>,
    /// Mean energy over the last report interval, dBFS.
    pub energy_db: f64,
    /// Speaking rate, syllables per second.
    pub rate_sps: f64,
    /// Tone (frustration) score, 0..1.
    pub tone_score: f64,
    /// Speech activity in the interval, 0..1.
    #[serde(default)]
    pub vad_ratio: f64,
    /// Semitones above the speaker's baseline F0 (null before the baseline is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f0_rel_st: Option<f64>,
    /// dB above the speaker's baseline energy (null before the baseline is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_rel_db: Option<f64>,
    /// Whether the speaker's baseline is established.
    #[serde(default)]
    pub baseline_ready: bool,
}

/// The signals the detector knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Caller tone (frustration from prosody).
    Tone,
    /// Explicit request for a human.
    HumanRequest,
    /// Negative sentiment in the caller's words.
    Sentiment,
    /// A configured high-stakes topic.
    Topic,
    /// The caller repeating a question or the agent repeating an answer.
    Loop,
    /// The agent reported low confidence.
    LowConfidence,
    /// The caller talking over the agent.
    Overtalk,
    /// Long dead air.
    Silence,
    /// A pre-call rule on the caller's stream-start attributes (VIP, open complaint, …).
    PreCall,
}

impl Signal {
    /// Every signal, in a fixed order.
    pub const ALL: [Signal; 9] = [
        Signal::Tone,
        Signal::HumanRequest,
        Signal::Sentiment,
        Signal::Topic,
        Signal::Loop,
        Signal::LowConfidence,
        Signal::Overtalk,
        Signal::Silence,
        Signal::PreCall,
    ];

    /// The contract's snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Tone => "tone",
            Signal::HumanRequest => "human_request",
            Signal::Sentiment => "sentiment",
            Signal::Topic => "topic",
            Signal::Loop => "loop",
            Signal::LowConfidence => "low_confidence",
            Signal::Overtalk => "overtalk",
            Signal::Silence => "silence",
            Signal::PreCall => "pre_call",
        }
    }
}

/// What backs a signal: the time span and, for transcript signals, the words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Start of the evidence, media ms.
    pub from_ms: u64,
    /// End of the evidence, media ms.
    pub to_ms: u64,
    /// The words that triggered a transcript signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The matched phrase, topic or earlier utterance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// Named numbers behind the value (e.g. `f0_rel_st`, `energy_rel_db`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
}

/// Fields of `signal`, and one entry of a handoff's `reasons`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalCrossing {
    /// Which signal.
    pub signal: Signal,
    /// Its value when it crossed.
    pub value: f64,
    /// The configured threshold it crossed.
    pub threshold: f64,
    /// What backs it.
    pub evidence: Evidence,
}

/// Fields of `handoff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// Unique, stable id; the `Idempotency-Key` of every delivery.
    pub handoff_id: String,
    /// Why, strongest first.
    pub reasons: Vec<SignalCrossing>,
    /// Combined evidence score, 0..1.
    pub score: f64,
    /// What a human reads in ten seconds.
    pub summary: Summary,
    /// Provider the call came from (for transfer targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<CallSource>,
    /// The routing rule that chose the human (absent: no `[[routing]]` configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Handed off by a pre-call rule, before the conversation.
    #[serde(default)]
    pub pre_call: bool,
}

/// The route of a handoff: which `[[routing]]` rule matched, its target, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The rule's name.
    pub name: String,
    /// Where the caller goes: a number, `sip:` URI, `client:NAME` or `queue:NAME`.
    pub target: String,
    /// The condition that matched (`reason:loop`, `topic:fraud`, `param:tier=vip`) or
    /// `default`.
    pub rule: String,
    /// Targets tried in order when `target` does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
}

/// The handoff summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What the caller wants, in words.
    pub caller_intent: String,
    /// What happened on the call so far.
    pub what_happened: String,
    /// Why the handoff is happening now.
    pub why_now: String,
    /// The last transcript lines.
    pub transcript_tail: Vec<TranscriptEntry>,
    /// How the caller sounds now versus their baseline.
    pub prosody: ProsodySummary,
    /// One short sentence to whisper to the human agent.
    pub whisper: String,
    /// The caller's stream-start attributes (Twilio `customParameters`, Telnyx
    /// `client_state`, …) that pre-call rules and routing look at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caller_attributes: BTreeMap<String, String>,
}

/// One transcript line as it appears in a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Media time of the line.
    pub t_ms: u64,
    /// Who said it.
    pub speaker: Track,
    /// What was said.
    pub text: String,
}

/// Caller prosody, baseline versus now, in numbers and words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProsodySummary {
    /// The caller's own normal voice.
    pub baseline: ProsodySnapshot,
    /// The last few seconds.
    pub now: ProsodySnapshot,
    /// e.g. "louder (+7 dB) and higher (+3 semitones) than their normal voice, speaking faster".
    pub description: String,
}

/// A prosody summary at one point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProsodySnapshot {
    /// Median F0.
    pub f0_hz: Option<f64>,
    /// Energy, dBFS.
    pub energy_db: Option<f64>,
    /// Syllables per second.
    pub rate_sps: Option<f64>,
    /// Tone score.
    pub tone_score: Option<f64>,
}

/// Fields of `handoff_delivered` / `handoff_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Which handoff.
    pub handoff_id: String,
    /// `webhook`, `twilio`, `telnyx`, `vonage` or `plivo`.
    pub target: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Last HTTP status (null when there was no answer).
    pub status: Option<u16>,
    /// Last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Fields of `handoff_connected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferConnected {
    /// Which handoff.
    pub handoff_id: String,
    /// The agent target that answered.
    pub target: String,
    /// Wall time from the handoff decision to the agent answering.
    pub time_to_agent_ms: u64,
    /// Provider that carried the transfer.
    #[serde(default)]
    pub provider: String,
}

/// Fields of `handoff_fallback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferFallback {
    /// Which handoff.
    pub handoff_id: String,
    /// The target that did not answer.
    pub from: String,
    /// The next target, or `queue`, `voicemail` or `bot`.
    pub to: String,
    /// `no_answer`, `busy`, `failed` or `timeout`.
    pub reason: String,
    /// Provider that carried the transfer.
    #[serde(default)]
    pub provider: String,
}

/// Fields of `handoff_abandoned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferAbandoned {
    /// Which handoff.
    pub handoff_id: String,
    /// Wall time from the handoff decision to the caller hanging up.
    pub waited_ms: u64,
    /// Provider that carried the transfer.
    #[serde(default)]
    pub provider: String,
}

/// Fields of `call_ended`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnded {
    /// Media duration of the longest track.
    pub duration_ms: u64,
    /// Whether a handoff was decided.
    pub handoff: bool,
    /// Media frames (chunks) received, all tracks.
    pub frames: u64,
    /// Frames lost to gaps, reordering or undecodable payloads.
    pub dropped_frames: u64,
    /// Why the stream ended: `stop`, `closed`, `idle_timeout`, `shutdown`, `error`, `end_of_input`.
    #[serde(default)]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_provider_and_codec_render_the_contract_strings() {
        let started = CallStarted {
            provider: Provider::Telnyx.into(),
            codec: Codec::Mulaw,
            sample_rate_hz: 8000,
            tracks: vec![Track::Caller],
            stream_id: None,
            custom_parameters: BTreeMap::new(),
        };
        let json = serde_json::to_value(&started).unwrap();
        assert_eq!(json["provider"], "telnyx");
        assert_eq!(json["codec"], "pcmu");
        assert_eq!(json["tracks"][0], "caller");
        assert_eq!(
            serde_json::from_value::<CallStarted>(json).unwrap(),
            started
        );
        for (source, name) in [
            (CallSource::Wav, "wav"),
            (Provider::Vonage.into(), "vonage"),
        ] {
            let text = serde_json::to_string(&source).unwrap();
            assert_eq!(text, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<CallSource>(&text).unwrap(), source);
        }
        assert!(serde_json::from_str::<CallSource>("\"skype\"").is_err());
        for c in [Codec::Mulaw, Codec::Alaw, Codec::L16, Codec::L16Be] {
            let text = serde_json::to_string(&c).unwrap();
            assert_eq!(text, format!("\"{}\"", c.name()));
            assert_eq!(serde_json::from_str::<Codec>(&text).unwrap(), c);
        }
    }

    #[test]
    fn events_serialise_with_the_contract_field_names() {
        let e = Event {
            call_id: "CA1".into(),
            t_ms: 20,
            kind: EventKind::CallEnded(CallEnded {
                duration_ms: 20,
                handoff: false,
                frames: 1,
                dropped_frames: 0,
                reason: "stop".into(),
            }),
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "call_ended");
        assert_eq!(v["call_id"], "CA1");
        assert_eq!(v["t_ms"], 20);
        assert_eq!(v["duration_ms"], 20);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn signal_names_match_serde() {
        for s in Signal::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }
}
