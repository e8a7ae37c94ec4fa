//! The detector's settings (`[detector]` and its sub-tables in the config file): per-signal
//! weights, thresholds and timings, with defaults for every key and a `validate` that names the
//! offending key. The defaults are listed in the [`super`] module docs.
//!
//! Size: one file because it is the whole `[detector]` section (types, defaults, validation),
//! read alongside `warmline.example.toml`; it is declarations, not logic.

use super::loops;
use super::policy::GateParams;
use super::text;
use super::topics;
use super::transcript::{TranscriptParams, TranscriptRules};
use crate::event::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Detector and policy settings (`[detector]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Tone model file produced by `warmline tune`; the bundled default when unset.
    pub model: Option<PathBuf>,
    /// How active signals combine into a handoff (`[detector.policy]`).
    pub policy: PolicyConfig,
    /// The caller's tone (`[detector.tone]`).
    pub tone: ToneConfig,
    /// Explicit requests for a human (`[detector.human_request]`).
    pub human_request: HumanRequestConfig,
    /// Negative words (`[detector.sentiment]`).
    pub sentiment: SentimentConfig,
    /// High-stakes topics (`[detector.topic]`).
    pub topic: TopicConfig,
    /// Repeats (`[detector.loop]`).
    #[serde(rename = "loop")]
    pub loops: LoopConfig,
    /// The agent's own confidence (`[detector.low_confidence]`).
    pub low_confidence: LowConfidenceConfig,
    /// The caller talking over the agent (`[detector.overtalk]`).
    pub overtalk: OvertalkConfig,
    /// Dead air (`[detector.silence]`).
    pub silence: SilenceConfig,
    /// Per-signal roles (`[detector.signals.<name>] role = ...`); signals not listed keep
    /// the playbook default ([`default_role`]).
    pub signals: BTreeMap<String, SignalRoleConfig>,
    /// Where handoff ids come from: set by the caller (the gateway picks random ids), never
    /// read from the file.
    #[serde(skip)]
    pub handoff_ids: super::policy::HandoffIds,
    /// The transcript rules compiled from the fields above, once per configuration and shared
    /// by its calls. Never read from the file.
    /// (Public only so that `..Default::default()` works outside this module.)
    #[serde(skip)]
    #[doc(hidden)]
    pub compiled: CompiledRules,
}

/// A [`TranscriptRules`] built on first use. Derived data: every two compare equal, and a
/// clone starts empty, so a clone that is then edited compiles its own rules.
#[derive(Default)]
pub struct CompiledRules(OnceLock<Arc<TranscriptRules>>);

impl Clone for CompiledRules {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for CompiledRules {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "compiled"
        } else {
            "not compiled"
        })
    }
}

/// What a signal (or a topic) does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Hands off at once when its escalation rule is met (and weighs in like `weight` below it).
    Escalate,
    /// Adds its weight to the combined score (the fusion).
    Weight,
    /// Never hands off on its own; only chooses the route of a handoff.
    Route,
    /// Dashboard and review only.
    Flag,
}

impl Role {
    /// Whether the signal adds its weight to the score.
    pub fn weighs(self) -> bool {
        matches!(self, Role::Escalate | Role::Weight)
    }
}

/// `[detector.signals.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRoleConfig {
    /// The signal's role.
    pub role: Role,
}

/// The playbook's role for a signal: explicit requests, topics (per topic, see
/// [`topics::default_role`]), caller loops, strong negative sentiment and sustained low agent
/// confidence escalate; tone, overtalk and silence weigh in.
pub fn default_role(s: Signal) -> Role {
    match s {
        Signal::HumanRequest
        | Signal::Topic
        | Signal::Loop
        | Signal::Sentiment
        | Signal::LowConfidence
        | Signal::PreCall => Role::Escalate,
        Signal::Tone | Signal::Overtalk | Signal::Silence => Role::Weight,
    }
}

/// `[detector.policy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Weighted score (sum of the weights of active signals, capped at 1) that hands off.
    pub handoff_threshold: f64,
    /// A pending handoff is dropped when the score falls below threshold minus this.
    pub release_margin: f64,
    /// How long the score must stay at the threshold, ms.
    pub min_duration_ms: u64,
    /// An explicit request for a human hands off at once.
    pub immediate_human_request: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            handoff_threshold: 0.6,
            release_margin: 0.1,
            min_duration_ms: 500,
            immediate_human_request: true,
        }
    }
}

/// `[detector.tone]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToneConfig {
    /// Weight in the score (the default alone reaches the handoff threshold).
    pub weight: f64,
    /// Overrides the model's threshold.
    pub threshold: Option<f64>,
    /// The tone stops counting below threshold minus this.
    pub release_margin: f64,
    /// How long the score must stay up before the tone counts, ms.
    pub min_duration_ms: u64,
}

impl Default for ToneConfig {
    fn default() -> Self {
        Self {
            weight: 0.6,
            threshold: None,
            release_margin: 0.05,
            min_duration_ms: 500,
        }
    }
}

/// `[detector.human_request]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumanRequestConfig {
    /// Weight in the score.
    pub weight: f64,
    /// How long a request keeps counting, ms.
    pub hold_ms: u64,
    /// Interim (non-final) caller lines may raise it too (faster, less certain).
    pub on_interim: bool,
}

impl Default for HumanRequestConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            hold_ms: 120_000,
            on_interim: false,
        }
    }
}

/// `[detector.sentiment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentimentConfig {
    /// Weight in the score.
    pub weight: f64,
    /// Smoothed negativity (0..1) at which it counts.
    pub threshold: f64,
    /// It stops counting below threshold minus this.
    pub release_margin: f64,
    /// Weight of the newest caller line in the smoothed mood (0..1].
    pub smoothing: f64,
    /// How long it counts after the last negative line, ms.
    pub hold_ms: u64,
    /// A caller line at or below this valence (−1..0) is strongly negative.
    pub strong_valence: f64,
    /// Strongly negative caller lines (within `hold_ms` of each other) that escalate; one
    /// suffices while the caller's tone is rising.
    pub strong_lines: u32,
}

impl Default for SentimentConfig {
    fn default() -> Self {
        Self {
            weight: 0.35,
            threshold: 0.3,
            release_margin: 0.05,
            smoothing: 0.6,
            hold_ms: 30_000,
            strong_valence: -0.55,
            strong_lines: 2,
        }
    }
}

/// `[detector.topic]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Weight in the score.
    pub weight: f64,
    /// How long a mention counts, ms.
    pub hold_ms: u64,
    /// Topic name → phrases (replaces the built-in list when set).
    pub topics: BTreeMap<String, Vec<String>>,
    /// More topics on top of `topics`.
    pub extra: BTreeMap<String, Vec<String>>,
    /// Topic name → role, over the playbook defaults (fraud, security, legal and safety
    /// escalate; sales routes; the rest weigh in).
    pub roles: BTreeMap<String, Role>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            weight: 0.25,
            hold_ms: 120_000,
            topics: topics::default_topics(),
            extra: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// `[detector.loop]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopConfig {
    /// Weight in the score.
    pub weight: f64,
    /// Stem-set cosine similarity at which two lines say the same thing.
    pub similarity: f64,
    /// Shared content stems needed unless the line says it repeats ("I said…").
    pub min_shared_stems: usize,
    /// Times something must be said to count (2 = once repeated).
    pub min_repeats: u32,
    /// How far back an earlier line may be, ms.
    pub window_ms: u64,
    /// How long a loop counts, ms.
    pub hold_ms: u64,
    /// Also the agent giving the same answer again.
    pub agent: bool,
    /// Times the caller must have asked the same thing for a loop to escalate (3 = the second
    /// unresolved repeat).
    pub escalate_repeats: u32,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            weight: 0.25,
            similarity: 0.6,
            min_shared_stems: 2,
            min_repeats: 2,
            window_ms: 120_000,
            hold_ms: 60_000,
            agent: true,
            escalate_repeats: 3,
        }
    }
}

/// `[detector.low_confidence]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LowConfidenceConfig {
    /// Weight in the score.
    pub weight: f64,
    /// An agent line below this confidence is low.
    pub below: f64,
    /// Low lines among the last `window_lines` agent lines that count.
    pub min_lines: u32,
    /// Agent lines (with a confidence) looked at.
    pub window_lines: u32,
    /// How long it counts after the last agent line, ms.
    pub hold_ms: u64,
    /// Consecutive agent lines below `below` that escalate.
    pub escalate_after: u32,
}

impl Default for LowConfidenceConfig {
    fn default() -> Self {
        Self {
            weight: 0.3,
            below: 0.5,
            min_lines: 2,
            window_lines: 4,
            hold_ms: 60_000,
            escalate_after: 3,
        }
    }
}

/// `[detector.overtalk]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OvertalkConfig {
    /// Weight in the score.
    pub weight: f64,
    /// Overlap an interruption must last, ms (shorter ones are backchannels like "mhm").
    pub min_overlap_ms: u64,
    /// Episodes are counted over this window, ms.
    pub window_ms: u64,
    /// Episodes in the window that count.
    pub min_episodes: u32,
    /// A track stays speaking this long after its last voice frame, ms.
    pub hangover_ms: u64,
}

impl Default for OvertalkConfig {
    fn default() -> Self {
        Self {
            weight: 0.25,
            min_overlap_ms: 800,
            window_ms: 30_000,
            min_episodes: 2,
            hangover_ms: 150,
        }
    }
}

/// `[detector.silence]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    /// Weight in the score.
    pub weight: f64,
    /// Dead air on both tracks (after someone has spoken) that counts, ms.
    pub min_silence_ms: u64,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        Self {
            weight: 0.15,
            min_silence_ms: 8000,
        }
    }
}

/// A detector setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectorConfigError {
    /// A value outside its range.
    #[error("detector.{key} = {value} is out of range (expected {expected})")]
    OutOfRange {
        /// The key under `[detector]`, e.g. `policy.handoff_threshold`.
        key: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
    /// A role for a signal that does not exist.
    #[error("detector.signals.{name}: no such signal (known: {known})")]
    UnknownSignal {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// A topic whose phrases are all stopwords (it could never match).
    #[error("detector.topic: topic {topic:?} has no phrase with a content word")]
    EmptyTopic {
        /// The topic.
        topic: String,
    },
}

const HOUR_MS: u64 = 3_600_000;

impl DetectorConfig {
    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), DetectorConfigError> {
        fn range(
            key: &'static str,
            v: f64,
            lo: f64,
            hi: f64,
            expected: &'static str,
        ) -> Result<(), DetectorConfigError> {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(DetectorConfigError::OutOfRange {
                    key,
                    value: v.to_string(),
                    expected,
                })
            }
        }
        fn ms(key: &'static str, v: u64, lo: u64) -> Result<(), DetectorConfigError> {
            if (lo..=HOUR_MS).contains(&v) {
                Ok(())
            } else {
                Err(DetectorConfigError::OutOfRange {
                    key,
                    value: v.to_string(),
                    expected: if lo == 0 {
                        "0..=3600000 ms"
                    } else {
                        "1..=3600000 ms"
                    },
                })
            }
        }
        fn count(
            key: &'static str,
            v: u64,
            lo: u64,
            hi: u64,
            expected: &'static str,
        ) -> Result<(), DetectorConfigError> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(DetectorConfigError::OutOfRange {
                    key,
                    value: v.to_string(),
                    expected,
                })
            }
        }
        const UNIT: &str = "0..=1";
        const OPEN_UNIT: &str = "0 < x <= 1";
        let p = &self.policy;
        if p.handoff_threshold <= 0.0 {
            return Err(DetectorConfigError::OutOfRange {
                key: "policy.handoff_threshold",
                value: p.handoff_threshold.to_string(),
                expected: OPEN_UNIT,
            });
        }
        range(
            "policy.handoff_threshold",
            p.handoff_threshold,
            0.0,
            1.0,
            OPEN_UNIT,
        )?;
        range(
            "policy.release_margin",
            p.release_margin,
            0.0,
            p.handoff_threshold,
            "0..=handoff_threshold",
        )?;
        ms("policy.min_duration_ms", p.min_duration_ms, 0)?;
        let t = &self.tone;
        range("tone.weight", t.weight, 0.0, 1.0, UNIT)?;
        if let Some(th) = t.threshold {
            range("tone.threshold", th, 0.0, 1.0, UNIT)?;
        }
        range("tone.release_margin", t.release_margin, 0.0, 1.0, UNIT)?;
        ms("tone.min_duration_ms", t.min_duration_ms, 0)?;
        let h = &self.human_request;
        range("human_request.weight", h.weight, 0.0, 1.0, UNIT)?;
        ms("human_request.hold_ms", h.hold_ms, 1)?;
        let s = &self.sentiment;
        range("sentiment.weight", s.weight, 0.0, 1.0, UNIT)?;
        range("sentiment.threshold", s.threshold, 0.01, 1.0, "0.01..=1")?;
        range(
            "sentiment.release_margin",
            s.release_margin,
            0.0,
            s.threshold,
            "0..=threshold",
        )?;
        range("sentiment.smoothing", s.smoothing, 0.01, 1.0, "0.01..=1")?;
        ms("sentiment.hold_ms", s.hold_ms, 1)?;
        range(
            "sentiment.strong_valence",
            s.strong_valence,
            -1.0,
            -0.01,
            "-1..=-0.01",
        )?;
        count(
            "sentiment.strong_lines",
            u64::from(s.strong_lines),
            1,
            20,
            "1..=20",
        )?;
        let tp = &self.topic;
        range("topic.weight", tp.weight, 0.0, 1.0, UNIT)?;
        ms("topic.hold_ms", tp.hold_ms, 1)?;
        for (name, phrases) in tp.topics.iter().chain(&tp.extra) {
            let any = phrases.iter().any(|ph| {
                text::tokenize(ph)
                    .tokens
                    .iter()
                    .any(|x| !text::is_stopword(&x.word) || text::is_negation(&x.word))
            });
            if !any {
                return Err(DetectorConfigError::EmptyTopic {
                    topic: name.clone(),
                });
            }
        }
        let l = &self.loops;
        range("loop.weight", l.weight, 0.0, 1.0, UNIT)?;
        range("loop.similarity", l.similarity, 0.05, 1.0, "0.05..=1")?;
        count(
            "loop.min_shared_stems",
            l.min_shared_stems as u64,
            1,
            20,
            "1..=20",
        )?;
        count(
            "loop.min_repeats",
            u64::from(l.min_repeats),
            2,
            20,
            "2..=20",
        )?;
        ms("loop.window_ms", l.window_ms, 1)?;
        ms("loop.hold_ms", l.hold_ms, 1)?;
        count(
            "loop.escalate_repeats",
            u64::from(l.escalate_repeats),
            2,
            20,
            "2..=20",
        )?;
        let lc = &self.low_confidence;
        range("low_confidence.weight", lc.weight, 0.0, 1.0, UNIT)?;
        range("low_confidence.below", lc.below, 0.0, 1.0, UNIT)?;
        count(
            "low_confidence.window_lines",
            u64::from(lc.window_lines),
            1,
            100,
            "1..=100",
        )?;
        count(
            "low_confidence.min_lines",
            u64::from(lc.min_lines),
            1,
            u64::from(lc.window_lines),
            "1..=window_lines",
        )?;
        ms("low_confidence.hold_ms", lc.hold_ms, 1)?;
        count(
            "low_confidence.escalate_after",
            u64::from(lc.escalate_after),
            1,
            100,
            "1..=100",
        )?;
        let o = &self.overtalk;
        range("overtalk.weight", o.weight, 0.0, 1.0, UNIT)?;
        ms("overtalk.min_overlap_ms", o.min_overlap_ms, 10)?;
        ms("overtalk.window_ms", o.window_ms, 1000)?;
        count(
            "overtalk.min_episodes",
            u64::from(o.min_episodes),
            1,
            100,
            "1..=100",
        )?;
        count(
            "overtalk.hangover_ms",
            o.hangover_ms,
            0,
            2000,
            "0..=2000 ms",
        )?;
        let si = &self.silence;
        range("silence.weight", si.weight, 0.0, 1.0, UNIT)?;
        ms("silence.min_silence_ms", si.min_silence_ms, 1000)?;
        for name in self.signals.keys() {
            if signal_named(name).is_none() {
                return Err(DetectorConfigError::UnknownSignal {
                    name: name.clone(),
                    known: Signal::ALL.map(Signal::name).join(", "),
                });
            }
        }
        Ok(())
    }

    /// The role of a signal: configured, else the playbook default.
    pub fn role(&self, s: Signal) -> Role {
        self.signals
            .get(s.name())
            .map_or_else(|| default_role(s), |r| r.role)
    }

    /// The role of a topic: configured, else the playbook default.
    pub fn topic_role(&self, topic: &str) -> Role {
        self.topic
            .roles
            .get(topic)
            .copied()
            .unwrap_or_else(|| topics::default_role(topic))
    }

    /// The transcript rules of this configuration, compiled on first use and then shared: every
    /// call of a gateway reads the same lexicon and topic stems. Edit the configuration before
    /// the first call (or edit a clone).
    pub fn transcript_rules(&self) -> Arc<TranscriptRules> {
        Arc::clone(
            self.compiled
                .0
                .get_or_init(|| Arc::new(TranscriptRules::new(self.transcript_params()))),
        )
    }

    pub(super) fn transcript_params(&self) -> TranscriptParams {
        let mut topics = self.topic.topics.clone();
        for (k, v) in &self.topic.extra {
            topics
                .entry(k.clone())
                .or_default()
                .extend(v.iter().cloned());
        }
        TranscriptParams {
            human_request_on_interim: self.human_request.on_interim,
            sentiment_smoothing: self.sentiment.smoothing,
            loops: loops::LoopParams {
                similarity: self.loops.similarity,
                window_ms: self.loops.window_ms,
                min_shared: self.loops.min_shared_stems,
            },
            agent_loops: self.loops.agent,
            min_repeats: self.loops.min_repeats,
            low_confidence_below: self.low_confidence.below as f32,
            low_confidence_window: self.low_confidence.window_lines as usize,
            low_confidence_escalate_after: self.low_confidence.escalate_after,
            loop_escalate_repeats: self.loops.escalate_repeats,
            strong_valence: self.sentiment.strong_valence,
            strong_lines: self.sentiment.strong_lines,
            strong_window_ms: self.sentiment.hold_ms,
            topic_roles: topics
                .keys()
                .map(|t| (t.clone(), self.topic_role(t)))
                .collect(),
            topics,
        }
    }

    /// The gates in [`Signal::ALL`] order, with the tone threshold from the model.
    pub(super) fn gates(&self, model_threshold: f64) -> [GateParams; 9] {
        let tone_threshold = self.tone.threshold.unwrap_or(model_threshold);
        let occurrence = |threshold: f64, hold_ms: u64, weight: f64| GateParams {
            threshold,
            release: threshold,
            min_duration_ms: 0,
            hold_ms,
            weight,
        };
        // `route` and `flag` signals are reported but carry no weight.
        let w = |s: Signal, weight: f64| if self.role(s).weighs() { weight } else { 0.0 };
        let s = &self.sentiment;
        let silence_s = self.silence.min_silence_ms as f64 / 1000.0;
        [
            GateParams {
                threshold: tone_threshold,
                release: (tone_threshold - self.tone.release_margin).max(0.0),
                min_duration_ms: self.tone.min_duration_ms,
                hold_ms: 0,
                weight: w(Signal::Tone, self.tone.weight),
            },
            occurrence(
                1.0,
                self.human_request.hold_ms,
                w(Signal::HumanRequest, self.human_request.weight),
            ),
            GateParams {
                threshold: s.threshold,
                release: s.threshold - s.release_margin,
                min_duration_ms: 0,
                hold_ms: s.hold_ms,
                weight: w(Signal::Sentiment, s.weight),
            },
            occurrence(1.0, self.topic.hold_ms, w(Signal::Topic, self.topic.weight)),
            occurrence(
                f64::from(self.loops.min_repeats),
                self.loops.hold_ms,
                w(Signal::Loop, self.loops.weight),
            ),
            occurrence(
                f64::from(self.low_confidence.min_lines),
                self.low_confidence.hold_ms,
                w(Signal::LowConfidence, self.low_confidence.weight),
            ),
            occurrence(
                f64::from(self.overtalk.min_episodes),
                0,
                w(Signal::Overtalk, self.overtalk.weight),
            ),
            occurrence(silence_s, 0, w(Signal::Silence, self.silence.weight)),
            // `pre_call` only ever escalates (or lowers thresholds); it holds for the call.
            occurrence(1.0, 0, 0.0),
        ]
    }
}

/// The signal with the contract name `name`.
pub fn signal_named(name: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| s.name() == name)
}
