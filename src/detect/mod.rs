//! Frustration detection: the caller's tone from prosody ([`tone`]), transcript signals
//! ([`transcript`]: human request, sentiment, topics, loops, low confidence), conversation
//! dynamics ([`dynamics`]: overtalk, silence), and the [`policy`] that turns evidence into at
//! most one explainable handoff with a [`summary`].
//!
//! Pure and deterministic: input is DSP frames and transcript lines stamped with media time;
//! nothing on the per-frame path allocates except the events it emits.
//!
//! # Policy in one paragraph
//! Each signal has a gate (threshold, hysteresis release, minimum duration, hold time) and a
//! weight. The score is the sum of the weights of the active signals, capped at 1. A score at or
//! above `policy.handoff_threshold` held for `policy.min_duration_ms` hands off; an explicit
//! request for a human hands off at once. With the defaults, sustained angry tone alone (0.6)
//! hands off, as do sentiment + topic (0.35 + 0.25); a topic plus a loop (0.5) does not.
//!
//! # Roles (the escalation playbook)
//! Each signal has a role (`[detector.signals.<name>] role`, topics per topic in
//! `[detector.topic.roles]`): `escalate` hands off at once when the signal's own rule is met
//! and weighs in below it, `weight` only weighs in, `route` and `flag` are reported (events,
//! routing, review) but carry no weight. Playbook defaults: a request for a human; fraud,
//! security, legal and safety topics; the caller's second unresolved repeat (the same thing
//! asked `loop.escalate_repeats` = 3 times); strong negative sentiment (`strong_lines` caller
//! lines at or below `strong_valence`, or one while the tone is rising); and
//! `low_confidence.escalate_after` agent lines in a row below `below` all escalate. `sales`
//! only routes; tone, overtalk and silence weigh in.
//!
//! # Configuration (defaults)
//! ```toml
//! [detector]
//! # model = "models/default.json"
//! [detector.policy]
//! handoff_threshold = 0.6
//! release_margin = 0.1
//! min_duration_ms = 500
//! immediate_human_request = true
//! [detector.tone]
//! weight = 0.6
//! # threshold = 0.5          # overrides the model's
//! release_margin = 0.05
//! min_duration_ms = 500
//! [detector.human_request]
//! weight = 1.0
//! hold_ms = 120000
//! on_interim = false
//! [detector.sentiment]
//! weight = 0.35
//! threshold = 0.3            # smoothed negativity 0..1
//! release_margin = 0.05
//! smoothing = 0.6            # weight of the newest caller line
//! hold_ms = 30000
//! strong_valence = -0.55     # a caller line this negative (-1..0) is strongly negative
//! strong_lines = 2           # such lines within hold_ms that escalate
//! [detector.topic]
//! weight = 0.25
//! hold_ms = 120000
//! # topics = { cancel = ["cancel", "unsubscribe"], ... }   # replaces the built-in list
//! [detector.topic.extra]
//! # billing = ["charged twice", "overcharged"]
//! [detector.topic.roles]
//! # cancel = "escalate"      # over the defaults: fraud/security/legal/safety escalate, sales routes
//! [detector.loop]
//! weight = 0.25
//! similarity = 0.6
//! min_shared_stems = 2
//! min_repeats = 2
//! window_ms = 120000
//! hold_ms = 60000
//! agent = true
//! escalate_repeats = 3       # the caller's second unresolved repeat
//! [detector.low_confidence]
//! weight = 0.3
//! below = 0.5
//! min_lines = 2
//! window_lines = 4
//! hold_ms = 60000
//! escalate_after = 3         # agent lines in a row below `below`
//! [detector.overtalk]
//! weight = 0.25
//! min_overlap_ms = 800       # shorter overlaps are backchannels ("mhm")
//! window_ms = 30000
//! min_episodes = 2
//! hangover_ms = 150
//! [detector.silence]
//! weight = 0.15
//! min_silence_ms = 8000
//! [detector.signals]
//! # loop = { role = "weight" }   # escalate | weight | route | flag
//! ```
//!
//! Size: ~400 lines of code (the `Detector` that wires signals, policy and summary together, one
//! type on purpose) after 90 lines of module docs; the rest is its end-to-end unit tests.

mod config;
pub mod dynamics;
pub mod gate;
pub mod human;
pub mod loops;
pub mod model;
pub mod playbook;
pub mod policy;
pub mod prosody;
pub mod sentiment;
pub mod summary;
pub mod text;
pub mod tone;
pub mod topics;
pub mod transcript;
#[cfg(test)]
mod triggers;

use crate::dsp::{Baseline, Frame};
use crate::event::{Event, EventKind, Evidence, Handoff, Signal, Track};
pub use config::{
    CompiledRules, DetectorConfig, DetectorConfigError, HumanRequestConfig, LoopConfig,
    LowConfidenceConfig, OvertalkConfig, PolicyConfig, Role, SentimentConfig, SignalRoleConfig,
    SilenceConfig, ToneConfig, TopicConfig, default_role, signal_named,
};
use dynamics::{Dynamics, DynamicsParams};
use playbook::Playbook;
use policy::{Decision, Entry, Policy, PolicyParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use tone::{ToneModel, ToneScorer};
use transcript::{Finding, TranscriptSignals};

/// One transcript line (live: `POST /v1/calls/{id}/transcript`; replay: sidecar JSONL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptLine {
    /// Media time of the line; live lines without it are stamped with the call's media clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ms: Option<u64>,
    /// Who said it.
    pub speaker: Track,
    /// What was said.
    pub text: String,
    /// Final (not an interim hypothesis).
    #[serde(rename = "final", default = "yes")]
    pub is_final: bool,
    /// Agent-reported confidence (0..1) where the agent reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

fn yes() -> bool {
    true
}

/// One call's detector.
#[derive(Debug)]
pub struct Detector {
    call_id: String,
    tone: [ToneScorer; 2],
    scores: BTreeMap<Signal, f64>,
    prosody: [prosody::ProsodyAcc; 2],
    recent_caller: prosody::Recent,
    baseline: [Option<Baseline>; 2],
    dynamics: Dynamics,
    policy: Policy,
    transcript: TranscriptSignals,
    findings: Vec<Finding>,
    /// Each signal's role, in [`Signal::ALL`] order.
    roles: [Role; 9],
    /// Routing and pre-call rules.
    playbook: Arc<Playbook>,
    /// The caller's stream-start attributes (bounded, see [`MAX_ATTRIBUTES`]).
    attributes: BTreeMap<String, String>,
    /// Events decided before the first media (a pre-call handoff), emitted with the first.
    pending: Vec<Event>,
}

/// Stream-start attributes kept per call, and the longest key or value kept: they come from
/// the provider and end up in every summary.
pub const MAX_ATTRIBUTES: usize = 32;
/// See [`MAX_ATTRIBUTES`].
pub const MAX_ATTRIBUTE_CHARS: usize = 128;

impl Detector {
    /// A detector for one call, without routing or pre-call rules.
    pub fn new(call_id: &str, cfg: &DetectorConfig, model: Arc<ToneModel>) -> Self {
        Self::for_call(call_id, cfg, model, Arc::default(), &BTreeMap::new())
    }

    /// A detector for one call with the playbook's routing and pre-call rules applied to the
    /// caller's stream-start `params`: a matching `handoff` rule decides the handoff before any
    /// media (it is emitted with the first event), `lower_thresholds` lowers the handoff
    /// threshold for this call.
    pub fn for_call(
        call_id: &str,
        cfg: &DetectorConfig,
        model: Arc<ToneModel>,
        playbook: Arc<Playbook>,
        params: &BTreeMap<String, String>,
    ) -> Self {
        let attributes: BTreeMap<String, String> = params
            .iter()
            .take(MAX_ATTRIBUTES)
            .map(|(k, v)| {
                let cut = |s: &str| s.chars().take(MAX_ATTRIBUTE_CHARS).collect::<String>();
                (cut(k), cut(v))
            })
            .collect();
        let mut handoff_threshold = cfg.policy.handoff_threshold;
        let mut pre_call = None;
        for (rule, matched) in playbook.pre_call_matches(&attributes) {
            let name = rule.name.clone().unwrap_or_else(|| matched.to_owned());
            match rule.action {
                playbook::PreCallAction::Handoff => {
                    pre_call.get_or_insert(name);
                }
                playbook::PreCallAction::LowerThresholds => {
                    handoff_threshold =
                        handoff_threshold.min(cfg.policy.handoff_threshold * rule.threshold_scale);
                }
            }
        }
        let threshold = f64::from(model.threshold);
        let policy = Policy::new(
            call_id,
            PolicyParams {
                handoff_threshold,
                release_margin: cfg.policy.release_margin.min(handoff_threshold / 2.0),
                min_duration_ms: cfg.policy.min_duration_ms,
                immediate_human_request: cfg.policy.immediate_human_request,
            },
            cfg.gates(threshold),
        )
        .with_handoff_ids(cfg.handoff_ids);
        let mut scores = BTreeMap::new();
        policy.fill_scores(&mut scores);
        let mut d = Self {
            call_id: call_id.to_owned(),
            tone: [ToneScorer::new(model.clone()), ToneScorer::new(model)],
            scores,
            prosody: Default::default(),
            recent_caller: prosody::Recent::default(),
            baseline: [None; 2],
            dynamics: Dynamics::new(DynamicsParams {
                hangover_ms: cfg.overtalk.hangover_ms,
                overtalk_min_ms: cfg.overtalk.min_overlap_ms,
                overtalk_window_ms: cfg.overtalk.window_ms,
            }),
            policy,
            transcript: TranscriptSignals::with_rules(cfg.transcript_rules()),
            findings: Vec::with_capacity(8),
            roles: Signal::ALL.map(|s| cfg.role(s)),
            playbook,
            attributes,
            pending: Vec::new(),
        };
        if let Some(rule) = pre_call {
            let mut out = Vec::new();
            let ev = Evidence {
                matched: Some(rule),
                values: BTreeMap::new(),
                ..Evidence::default()
            };
            if let Some(decision) =
                d.policy
                    .on_line(Signal::PreCall, 0, 1.0, ev, Entry::Escalate, &mut out)
            {
                d.emit_handoff(decision, &mut out);
            }
            d.pending = out;
        }
        d
    }

    /// Whether `track`'s tone is high enough that its speech must stay out of the speaker's
    /// baseline ([`ToneScorer::holds_baseline`]).
    pub fn tone_holds_baseline(&self, track: Track) -> bool {
        self.tone[track.index()].holds_baseline()
    }

    /// Feeds one DSP frame of one track.
    pub fn on_frame(
        &mut self,
        track: Track,
        frame: &Frame,
        baseline: Option<&Baseline>,
        out: &mut Vec<Event>,
    ) {
        let score = self.tone[track.index()].push(frame);
        self.on_scored_frame(track, frame, baseline, score, out);
    }

    /// Feeds one frame whose tone score is already known (what [`Detector::on_frame`] does
    /// after the scorer; tests and offline tools use it to supply scores directly).
    pub fn on_scored_frame(
        &mut self,
        track: Track,
        frame: &Frame,
        baseline: Option<&Baseline>,
        tone_score: f32,
        out: &mut Vec<Event>,
    ) {
        self.flush_pending(out);
        let i = track.index();
        if let Some(b) = baseline {
            self.baseline[i] = Some(*b);
        }
        let acc = &mut self.prosody[i];
        if acc.due(frame.t_ms) {
            let p = acc.take(track, self.baseline[i].as_ref());
            if track == Track::Caller {
                self.recent_caller.push(&p);
            }
            out.push(Event {
                call_id: self.call_id.clone(),
                t_ms: frame.t_ms,
                kind: EventKind::Prosody(p),
            });
        }
        acc.push(frame, tone_score);

        let mut decision = None;
        if track == Track::Caller {
            // The window behind the score is only worth describing near the threshold.
            let scorer = &self.tone[i];
            let window = (tone_score >= scorer.threshold() * 0.75)
                .then(|| scorer.evidence())
                .filter(|w| w.speech_ms > 0);
            decision = self
                .policy
                .on_tone(frame.t_ms, tone_score, Some(frame), window, out);
        }
        let Self {
            dynamics, policy, ..
        } = self;
        dynamics.push(track, frame.t_ms, frame.vad, |l| {
            let d = policy.on_level(
                Signal::Overtalk,
                l.t_ms,
                f64::from(l.overtalk_episodes),
                l.overtalk_from_ms,
                &[("overlap_s", l.overlap_s)],
                out,
            );
            decision = decision.take().or(d);
            let silence_s = l.silence_ms as f64 / 1000.0;
            let d = policy.on_level(
                Signal::Silence,
                l.t_ms,
                silence_s,
                l.silence_from_ms,
                &[("silence_s", silence_s)],
                out,
            );
            decision = decision.take().or(d);
        });
        let d = self.policy.tick(frame.t_ms);
        if let Some(d) = decision.or(d) {
            self.emit_handoff(d, out);
        }
        self.policy.fill_scores(&mut self.scores);
        if track == Track::Caller
            && let Some(s) = self.scores.get_mut(&Signal::Tone)
        {
            // f32 → f64 would show 0.699999988 in `GET /v1/calls`.
            *s = (f64::from(tone_score) * 10_000.0).round() / 10_000.0;
        }
    }

    /// Feeds one transcript line at media time `t_ms`.
    pub fn on_transcript(&mut self, t_ms: u64, line: &TranscriptLine, out: &mut Vec<Event>) {
        self.flush_pending(out);
        let mut findings = std::mem::take(&mut self.findings);
        findings.clear();
        let tone = self.policy.gate(Signal::Tone);
        let tone_rising = tone.is_active() || tone.pending_since().is_some();
        self.transcript
            .on_line(t_ms, line, tone_rising, &mut findings);
        let roles = self.roles;
        let role = |s: Signal| roles[Signal::ALL.iter().position(|x| *x == s).unwrap_or(0)];
        // Escalations are applied last so that the immediate handoff lists what else the same
        // line raised; a human request last of all.
        findings.sort_by_key(|f| {
            (
                f.escalates && role(f.signal) == Role::Escalate,
                f.signal == Signal::HumanRequest,
            )
        });
        let mut decision = None;
        for f in findings.drain(..) {
            let entry = if f.report_only {
                Entry::Report
            } else if f.escalates && role(f.signal) == Role::Escalate {
                Entry::Escalate
            } else {
                Entry::Level
            };
            let d = self
                .policy
                .on_line(f.signal, t_ms, f.value, f.evidence, entry, out);
            decision = decision.or(d);
        }
        self.findings = findings;
        let d = self.policy.tick(t_ms);
        if let Some(d) = decision.or(d) {
            self.emit_handoff(d, out);
        }
        let tone = self.scores.get(&Signal::Tone).copied();
        self.policy.fill_scores(&mut self.scores);
        if let (Some(t), Some(s)) = (tone, self.scores.get_mut(&Signal::Tone)) {
            *s = t;
        }
    }

    /// The stream ended at `t_ms`: reports the last partial prosody interval. No handoff is
    /// decided after the end.
    pub fn finish(&mut self, t_ms: u64, out: &mut Vec<Event>) {
        self.flush_pending(out);
        for track in Track::ALL {
            let i = track.index();
            if self.prosody[i].is_empty() {
                continue;
            }
            let p = self.prosody[i].take(track, self.baseline[i].as_ref());
            if track == Track::Caller {
                self.recent_caller.push(&p);
            }
            out.push(Event {
                call_id: self.call_id.clone(),
                t_ms,
                kind: EventKind::Prosody(p),
            });
        }
    }

    /// Latest value of each signal (for `GET /v1/calls`).
    pub fn scores(&self) -> &BTreeMap<Signal, f64> {
        &self.scores
    }

    /// Whether a handoff was decided.
    pub fn handed_off(&self) -> bool {
        self.policy.handed_off()
    }

    /// The combined score now, 0..1.
    pub fn score(&self) -> f64 {
        self.policy.score()
    }

    fn flush_pending(&mut self, out: &mut Vec<Event>) {
        if !self.pending.is_empty() {
            out.append(&mut self.pending);
        }
    }

    /// The caller's stream-start attributes as kept.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    fn emit_handoff(&mut self, d: Decision, out: &mut Vec<Event>) {
        let stats = self.transcript.stats();
        let topics: Vec<String> = stats.topics.iter().map(|(t, _, _)| t.clone()).collect();
        let route = self.playbook.route(&playbook::CallFacts {
            reasons: &d.reasons,
            topics: &topics,
            params: &self.attributes,
        });
        let mut summary = summary::build(&summary::SummaryInput {
            decision: &d,
            stats,
            baseline: self.baseline[Track::Caller.index()].as_ref(),
            recent: &self.recent_caller,
            overtalk_total: self.dynamics.total_overtalk(),
        });
        if let Some(r) = &route {
            summary.why_now.push_str(&format!(
                " Routed to {} ({}) by {}.",
                r.name, r.target, r.rule
            ));
        }
        summary.caller_attributes = self.attributes.clone();
        let pre_call = d.escalated_by == Some(Signal::PreCall);
        out.push(Event {
            call_id: self.call_id.clone(),
            t_ms: d.t_ms,
            kind: EventKind::Handoff(Handoff {
                handoff_id: self.policy.handoff_id(d.t_ms),
                reasons: d.reasons,
                score: d.score,
                summary,
                provider: None,
                route,
                pre_call,
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::Relative;
    use crate::event::{Handoff, SignalCrossing};
    use std::collections::BTreeSet;

    /// A transcript line: (t_ms, speaker, text, agent confidence).
    type Line = (u64, Track, &'static str, Option<f32>);
    /// A span of caller tone: (from_ms, to_ms, score).
    type Tone = (u64, u64, f32);

    const C: Track = Track::Caller;
    const A: Track = Track::Agent;

    fn model() -> Arc<ToneModel> {
        let mut m = ToneModel::bundled();
        m.threshold = 0.5;
        Arc::new(m)
    }

    fn baseline() -> Baseline {
        Baseline {
            f0_hz: 200.0,
            energy_db: -30.0,
            rate_sps: 4.0,
            speech_s: 8.0,
            ..Default::default()
        }
    }

    /// A caller frame: calm speech, angry speech (+3 semitones, +7 dB, 20 % faster) or quiet.
    fn caller_frame(t_ms: u64, speech: bool, angry: bool) -> Frame {
        let (f0, energy, rate, rel_st, rel_db) = match (speech, angry) {
            (true, true) => (200.0 * 2f32.powf(3.0 / 12.0), -23.0, 4.8, 3.0, 7.0),
            (true, false) => (200.0, -30.0, 4.0, 0.0, 0.0),
            _ => (0.0, -60.0, 4.0, 0.0, 0.0),
        };
        Frame {
            t_ms,
            vad: speech,
            speech,
            voiced: speech,
            f0_hz: f0,
            energy_db: energy,
            loudness_db: energy,
            rate_sps: rate,
            rel: Relative {
                baseline_ready: true,
                f0_st: rel_st,
                energy_db: rel_db,
                loudness_db: rel_db,
                tilt_db: 0.0,
                rate_ratio: rate / 4.0,
                ..Relative::default()
            },
            ..Default::default()
        }
    }

    /// Runs a call of `duration_ms`: caller frames every 10 ms (speaking for 2 s after each of
    /// their lines and during tone spans), lines released at their time.
    fn run(cfg: &DetectorConfig, lines: &[Line], tone: &[Tone], duration_ms: u64) -> Vec<Event> {
        let mut d = Detector::new("CA-test", cfg, model());
        let mut out = Vec::new();
        let mut next = 0;
        let b = baseline();
        let mut t = 0;
        while t < duration_ms {
            while next < lines.len() && lines[next].0 <= t {
                let (lt, speaker, text, confidence) = lines[next];
                let line = TranscriptLine {
                    t_ms: Some(lt),
                    speaker,
                    text: text.to_owned(),
                    is_final: true,
                    confidence,
                };
                d.on_transcript(lt, &line, &mut out);
                next += 1;
            }
            let span = tone.iter().find(|(a, z, _)| t >= *a && t < *z);
            let talking = lines
                .iter()
                .any(|(lt, s, _, _)| *s == C && t >= *lt && t < lt + 2000);
            let score = span.map_or(0.1, |s| s.2);
            let f = caller_frame(
                t,
                talking || span.is_some(),
                span.is_some_and(|s| s.2 >= 0.5),
            );
            d.on_scored_frame(C, &f, Some(&b), score, &mut out);
            t += 10;
        }
        d.finish(duration_ms, &mut out);
        assert_eq!(d.handed_off(), handoffs(&out).len() == 1);
        out
    }

    fn signals(out: &[Event]) -> BTreeSet<Signal> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Signal(s) => Some(s.signal),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tone_evidence_describes_the_scorers_window() {
        // A toy model that scores raised energy, through the real scorer (`on_frame`).
        let model = Arc::new(ToneModel {
            features: vec!["energy_rel_db".into()],
            means: vec![0.0],
            stds: vec![1.0],
            weights: vec![1.0],
            bias: -4.0,
            threshold: 0.9,
            ..ToneModel::bundled()
        });
        let mut d = Detector::new("CA", &DetectorConfig::default(), model);
        let mut out = Vec::new();
        // Calm for 10 s, then +7 dB in 1.5 s phrases with 1 s pauses.
        for k in 0..3000u64 {
            let t = k * 10;
            let speech = t < 10_000 || (t - 10_000) % 2500 < 1500;
            let f = caller_frame(t, speech, t >= 10_000);
            d.on_frame(Track::Caller, &f, Some(&baseline()), &mut out);
        }
        let h = handoffs(&out);
        assert_eq!(h.len(), 1);
        let tone = h[0]
            .1
            .reasons
            .iter()
            .find(|r| r.signal == Signal::Tone)
            .expect("tone is a reason");
        let v = &tone.evidence.values;
        assert_eq!(v["energy_rel_db"], 7.0, "{v:?}");
        assert_eq!(v["f0_rel_st"], 3.0, "{v:?}");
        assert!(v["window_speech_s"] >= 0.5, "{v:?}");
    }

    fn handoffs(out: &[Event]) -> Vec<(u64, &Handoff)> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Handoff(h) => Some((e.t_ms, h)),
                _ => None,
            })
            .collect()
    }

    struct Row {
        name: &'static str,
        lines: &'static [Line],
        tone: &'static [Tone],
        signals: &'static [Signal],
        handoff: bool,
    }

    const ROWS: &[Row] = &[
        Row {
            name: "get me a human",
            lines: &[(2000, C, "Ugh, get me a human.", None)],
            tone: &[],
            signals: &[Signal::HumanRequest],
            handoff: true,
        },
        Row {
            name: "representative please",
            lines: &[(2000, C, "representative please", None)],
            tone: &[],
            signals: &[Signal::HumanRequest],
            handoff: true,
        },
        Row {
            name: "cancel, then asks again in other words",
            lines: &[
                (1000, C, "I want to cancel my subscription", None),
                (4000, A, "I can help you with your account settings.", None),
                (8000, C, "I said I want to cancel", None),
            ],
            tone: &[],
            signals: &[Signal::Topic, Signal::Loop],
            handoff: false,
        },
        Row {
            name: "this is ridiculous with rising tone",
            lines: &[(3000, C, "This is ridiculous!", None)],
            tone: &[(3000, 6000, 0.8)],
            signals: &[Signal::Sentiment, Signal::Tone],
            handoff: true,
        },
        Row {
            name: "I don't need a representative",
            lines: &[(2000, C, "I don't need a representative", None)],
            tone: &[],
            signals: &[],
            handoff: false,
        },
        Row {
            name: "no I do not want an agent",
            lines: &[(2000, C, "no I do not want an agent, thanks", None)],
            tone: &[],
            signals: &[],
            handoff: false,
        },
        Row {
            name: "agent gives the same answer three times",
            lines: &[
                (1000, C, "Where is my refund?", None),
                (
                    2000,
                    A,
                    "Your refund will arrive in five business days.",
                    None,
                ),
                (5000, C, "It has been two weeks already.", None),
                (
                    6000,
                    A,
                    "The refund arrives within five business days.",
                    None,
                ),
                (9000, C, "That is what you said last time.", None),
                (
                    10_000,
                    A,
                    "Your refund will arrive in five business days.",
                    None,
                ),
            ],
            tone: &[],
            signals: &[Signal::Loop],
            handoff: false,
        },
        Row {
            name: "low confidence agent lines",
            lines: &[
                (
                    1000,
                    C,
                    "Can I change the billing address on my card?",
                    None,
                ),
                (
                    2000,
                    A,
                    "I think you might be able to do that online.",
                    Some(0.42),
                ),
                (5000, C, "Where online?", None),
                (6000, A, "Possibly in the settings page.", Some(0.31)),
            ],
            tone: &[],
            signals: &[Signal::LowConfidence],
            handoff: false,
        },
        Row {
            name: "one loud word",
            lines: &[(2000, C, "Hey!", None)],
            tone: &[(2000, 2300, 0.9)],
            signals: &[],
            handoff: false,
        },
        Row {
            name: "calm call with happy words",
            lines: &[
                (1000, C, "Hi, I'd like to check my balance please.", None),
                (3000, A, "Sure, your balance is forty dollars.", Some(0.95)),
                (
                    6000,
                    C,
                    "Great, thank you so much, that was really helpful!",
                    None,
                ),
                (8000, A, "You're welcome, have a wonderful day.", Some(0.97)),
            ],
            tone: &[],
            signals: &[],
            handoff: false,
        },
        Row {
            name: "cancel and angry words together",
            lines: &[(
                2000,
                C,
                "I want to cancel, this is absolutely ridiculous!",
                None,
            )],
            tone: &[],
            signals: &[Signal::Topic, Signal::Sentiment],
            handoff: true,
        },
        Row {
            name: "many triggers, one handoff",
            lines: &[
                (1000, C, "I want to cancel. This is useless!", None),
                (2000, C, "Get me a human!", None),
                (3000, C, "Representative! Operator!", None),
                (4000, C, "I said I want to cancel!", None),
                (5000, C, "I will call my lawyer.", None),
            ],
            tone: &[(500, 9000, 0.9)],
            signals: &[
                Signal::Tone,
                Signal::HumanRequest,
                Signal::Sentiment,
                Signal::Topic,
                Signal::Loop,
            ],
            handoff: true,
        },
    ];

    #[test]
    fn transcript_scenarios() {
        let cfg = DetectorConfig::default();
        let mut failures = Vec::new();
        for row in ROWS {
            let out = run(&cfg, row.lines, row.tone, 12_000);
            let got = signals(&out);
            let want: BTreeSet<Signal> = row.signals.iter().copied().collect();
            let h = handoffs(&out);
            if got != want || h.len() != usize::from(row.handoff) {
                failures.push(format!(
                    "{}: signals {got:?} (want {want:?}), handoffs {} (want {})",
                    row.name,
                    h.len(),
                    usize::from(row.handoff)
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn handoff_explains_itself() {
        let cfg = DetectorConfig {
            tone: ToneConfig {
                weight: 0.3,
                ..Default::default()
            },
            ..Default::default()
        };
        let lines = [
            (1000, C, "I want to cancel my subscription", None),
            (4000, A, "Let me look into that for you.", None),
            (6000, C, "No. Get me a human.", None),
        ];
        let out = run(&cfg, &lines, &[(1000, 9000, 0.8)], 10_000);
        let h = handoffs(&out);
        assert_eq!(h.len(), 1);
        let (t_ms, h) = h[0];
        assert_eq!(t_ms, 6000);
        assert_eq!(h.handoff_id, policy::handoff_id("CA-test", 6000));
        assert_eq!(h.score, 1.0);
        let order: Vec<Signal> = h.reasons.iter().map(|r| r.signal).collect();
        assert_eq!(order, [Signal::HumanRequest, Signal::Tone, Signal::Topic]);
        let tone: &SignalCrossing = &h.reasons[1];
        assert_eq!(tone.threshold, 0.5);
        assert_eq!(tone.evidence.from_ms, 1000);
        assert_eq!(tone.evidence.to_ms, 6000);
        assert_eq!(tone.evidence.values["f0_rel_st"], 3.0);
        assert_eq!(tone.evidence.values["energy_rel_db"], 7.0);
        assert_eq!(
            h.reasons[0].evidence.matched.as_deref(),
            Some("get me a human")
        );
        let s = &h.summary;
        assert_eq!(
            s.caller_intent,
            "cancel (\"I want to cancel my subscription\")"
        );
        assert_eq!(
            s.whisper,
            "Caller wants to cancel, asked for a human, sounds angry."
        );
        assert_eq!(
            s.why_now,
            "Caller asked for a human (\"get me a human\") at 0:06."
        );
        assert_eq!(s.transcript_tail.len(), 3);
        assert_eq!(s.transcript_tail[2].text, "No. Get me a human.");
        assert_eq!(s.prosody.baseline.f0_hz, Some(200.0));
        assert_eq!(s.prosody.now.energy_db, Some(-23.0));
        assert_eq!(
            s.prosody.description,
            "louder (+7 dB) and higher (+3.0 semitones) than their normal voice, speaking 20 % faster"
        );
        assert!(
            s.what_happened.contains("caller raised cancel"),
            "{}",
            s.what_happened
        );
        // The events serialise with the contract's names.
        let event = out
            .iter()
            .find(|e| matches!(e.kind, EventKind::Handoff(_)))
            .unwrap();
        let v = serde_json::to_value(event).unwrap();
        assert_eq!(v["event"], "handoff");
        assert_eq!(v["reasons"][0]["signal"], "human_request");
        assert!(v["summary"]["transcript_tail"].is_array());
    }

    #[test]
    fn interim_lines_are_ignored_unless_configured() {
        let line = TranscriptLine {
            t_ms: Some(1000),
            speaker: C,
            text: "get me a human".into(),
            is_final: false,
            confidence: None,
        };
        let mut d = Detector::new("CA", &DetectorConfig::default(), model());
        let mut out = Vec::new();
        d.on_transcript(1000, &line, &mut out);
        assert!(out.is_empty() && !d.handed_off());
        let mut cfg = DetectorConfig::default();
        cfg.human_request.on_interim = true;
        let mut d = Detector::new("CA", &cfg, model());
        d.on_transcript(1000, &line, &mut out);
        assert!(d.handed_off());
    }

    #[test]
    fn without_transcript_the_intent_is_unknown() {
        let out = run(&DetectorConfig::default(), &[], &[(1000, 5000, 0.9)], 6000);
        let h = handoffs(&out);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.summary.caller_intent, "unknown (no transcript)");
        assert_eq!(h[0].1.summary.whisper, "Caller sounds angry.");
        // Tone counts after 0.5 s, the score holds 0.5 s.
        assert_eq!(h[0].0, 2000);
    }

    #[test]
    fn prosody_reports_every_second_per_track() {
        let out = run(
            &DetectorConfig::default(),
            &[(0, C, "hello there", None)],
            &[],
            5000,
        );
        let reports: Vec<&Event> = out
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Prosody(_)))
            .collect();
        assert_eq!(reports.len(), 5);
        let EventKind::Prosody(p) = &reports[0].kind else {
            unreachable!()
        };
        assert_eq!(reports[0].t_ms, 1000);
        assert_eq!(p.f0_hz, Some(200.0));
        assert_eq!(p.vad_ratio, 1.0);
        assert_eq!(p.f0_rel_st, Some(0.0));
        assert!(p.baseline_ready);
    }

    /// Both tracks: `caller` and `agent` speech spans.
    fn two_tracks(
        caller: &[(u64, u64)],
        agent: &[(u64, u64)],
        duration_ms: u64,
    ) -> (Vec<Event>, Detector) {
        let mut d = Detector::new("CA2", &DetectorConfig::default(), model());
        let mut out = Vec::new();
        let on = |spans: &[(u64, u64)], t: u64| spans.iter().any(|(a, z)| t >= *a && t < *z);
        let mut t = 0;
        while t < duration_ms {
            d.on_scored_frame(
                C,
                &caller_frame(t, on(caller, t), false),
                None,
                0.1,
                &mut out,
            );
            d.on_scored_frame(
                A,
                &caller_frame(t, on(agent, t), false),
                None,
                0.0,
                &mut out,
            );
            t += 10;
        }
        (out, d)
    }

    #[test]
    fn overtalk_counts_interruptions_not_backchannels() {
        // Three "mhm"s, then two real interruptions.
        let agent = [(0, 20_000)];
        let caller = [
            (1000, 1300),
            (2500, 2900),
            (4000, 4400),
            (8000, 10_000),
            (14_000, 16_000),
        ];
        let (out, d) = two_tracks(&caller, &agent, 20_000);
        assert_eq!(signals(&out), BTreeSet::from([Signal::Overtalk]));
        let e = out
            .iter()
            .find(|e| matches!(e.kind, EventKind::Signal(_)))
            .unwrap();
        assert!((14_790..=14_830).contains(&e.t_ms), "{}", e.t_ms);
        assert_eq!(d.scores()[&Signal::Overtalk], 2.0);
        assert!(!d.handed_off());
    }

    #[test]
    fn silence_after_the_call_started() {
        let (out, d) = two_tracks(&[(1000, 3000)], &[(3500, 5000)], 15_000);
        assert_eq!(signals(&out), BTreeSet::from([Signal::Silence]));
        let e = out
            .iter()
            .find(|e| matches!(e.kind, EventKind::Signal(_)))
            .unwrap();
        // Dead air from 5.0 s; counts at 8 s of it.
        assert!((12_990..=13_020).contains(&e.t_ms), "{}", e.t_ms);
        assert!(d.scores()[&Signal::Silence] >= 9.9);
    }

    #[test]
    fn config_defaults_validate_and_bad_values_name_the_key() {
        let cfg = DetectorConfig::default();
        cfg.validate().unwrap();
        let parsed: DetectorConfig = toml::from_str(
            "model = \"m.json\"\n[policy]\nhandoff_threshold = 0.7\n[loop]\nagent = false\n[topic.extra]\nbilling = [\"charged twice\"]\n",
        )
        .unwrap();
        assert_eq!(parsed.policy.handoff_threshold, 0.7);
        assert!(!parsed.loops.agent);
        assert_eq!(parsed.topic.topics, topics::default_topics());
        parsed.validate().unwrap();
        assert!(toml::from_str::<DetectorConfig>("[policy]\nbogus = 1\n").is_err());

        let mut bad = DetectorConfig::default();
        bad.sentiment.threshold = 1.5;
        let e = bad.validate().unwrap_err();
        assert!(
            e.to_string().contains("detector.sentiment.threshold"),
            "{e}"
        );
        let mut bad = DetectorConfig::default();
        bad.policy.handoff_threshold = 0.0;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("policy.handoff_threshold")
        );
        let mut bad = DetectorConfig::default();
        bad.topic.extra.insert("empty".into(), vec!["the a".into()]);
        assert!(matches!(
            bad.validate(),
            Err(DetectorConfigError::EmptyTopic { .. })
        ));
    }

    proptest::proptest! {
        /// Transcript text comes from the network: any text, any speaker, any confidence.
        #[test]
        fn any_transcript_line_is_safe(
            text in "\\PC{0,300}",
            caller in proptest::bool::ANY,
            is_final in proptest::bool::ANY,
            confidence in proptest::option::of(proptest::num::f32::ANY),
            t_ms in 0u64..u64::MAX / 2,
        ) {
            let mut d = Detector::new("CA", &DetectorConfig::default(), model());
            let mut out = Vec::new();
            let line = TranscriptLine {
                t_ms: Some(t_ms),
                speaker: if caller { C } else { A },
                text,
                is_final,
                confidence,
            };
            d.on_transcript(t_ms, &line, &mut out);
            d.on_transcript(t_ms, &line, &mut out);
            d.finish(t_ms, &mut out);
            proptest::prop_assert!(handoffs(&out).len() <= 1);
        }
    }

    #[test]
    fn documented_defaults_match_the_code() {
        let doc: String = include_str!("mod.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .map(|l| format!("{l}\n"))
            .collect();
        let table: toml::Table = toml::from_str(&doc).unwrap();
        let section = table["detector"].clone();
        let parsed: DetectorConfig = section.try_into().unwrap();
        assert_eq!(parsed, DetectorConfig::default());
        let back: DetectorConfig =
            toml::from_str(&toml::to_string(&DetectorConfig::default()).unwrap()).unwrap();
        assert_eq!(back, DetectorConfig::default());
    }

    #[test]
    fn scores_hold_every_signal() {
        let d = Detector::new("CA", &DetectorConfig::default(), model());
        assert_eq!(d.scores().len(), Signal::ALL.len());
    }
}
