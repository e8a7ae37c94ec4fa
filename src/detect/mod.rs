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
mod tests;
