//! The handoff policy: per-signal gates (threshold, hysteresis release, minimum duration,
//! hold time) turn raw values into active signals; the weighted sum of active signals is the
//! score; a score held above the handoff threshold for the minimum duration — or an explicit
//! request for a human — decides the one handoff of the call, with every active signal as a
//! reason, strongest first.
//!
//! Pure and allocation-free on the per-frame path (evidence objects are built only when a
//! signal crosses or a handoff is decided). Tests drive it directly with `(t_ms, score)`.
//!
//! Size: ~550 lines of code; the rest is its tests.

use crate::detect::tone::ToneEvidence;
use crate::dsp::Frame;
use crate::event::{Event, EventKind, Evidence, Signal, SignalCrossing};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub use super::gate::{Edge, Gate, GateParams};

/// Float comparisons of summed weights (0.35 + 0.25 vs 0.6) tolerate this much.
pub(crate) const EPS: f64 = 1e-9;

/// Policy-wide settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyParams {
    /// Score at which the policy hands off.
    pub handoff_threshold: f64,
    /// A pending decision is dropped when the score falls below threshold minus this.
    pub release_margin: f64,
    /// How long the score must stay up before the handoff, ms.
    pub min_duration_ms: u64,
    /// An explicit human request hands off at once.
    pub immediate_human_request: bool,
}

/// How a transcript finding enters the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Levels the signal's gate (the weighted fusion).
    Level,
    /// Levels the gate and hands off at once: the signal's escalation rule was met.
    Escalate,
    /// Reported (a signal event), never scored: `route`/`flag` topics.
    Report,
}

/// A handoff decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// When.
    pub t_ms: u64,
    /// Combined score, 0..1.
    pub score: f64,
    /// Active signals, strongest first.
    pub reasons: Vec<SignalCrossing>,
    /// Taken on the immediate path (a signal whose role is `escalate` met its rule).
    pub immediate: bool,
    /// The signal that escalated, on the immediate path.
    pub escalated_by: Option<Signal>,
}

/// Running means of the caller's relative prosody over the current tone episode.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ToneAcc {
    frames: u32,
    voiced: u32,
    f0_st: f64,
    energy_db: f64,
    loudness_db: f64,
    tilt_db: f64,
    rate_ratio: f64,
}

impl ToneAcc {
    fn add(&mut self, f: &Frame) {
        // The frames the tone scorer counts: speech (VAD and above the noise floor) against a
        // complete baseline. VAD alone admits quiet frames that would drag the means down.
        if !f.rel.baseline_ready || !f.speech {
            return;
        }
        self.frames += 1;
        self.energy_db += f64::from(f.rel.energy_db);
        self.loudness_db += f64::from(f.rel.loudness_db);
        self.tilt_db += f64::from(f.rel.tilt_db);
        self.rate_ratio += f64::from(f.rel.rate_ratio);
        if f.voiced && f.f0_hz > 0.0 {
            self.voiced += 1;
            self.f0_st += f64::from(f.rel.f0_st);
        }
    }

    fn values(&self, into: &mut BTreeMap<String, f64>) {
        if self.frames > 0 {
            let n = f64::from(self.frames);
            into.insert("energy_rel_db".into(), round2(self.energy_db / n));
            into.insert("loudness_rel_db".into(), round2(self.loudness_db / n));
            into.insert("tilt_rel_db".into(), round2(self.tilt_db / n));
            into.insert("rate_ratio".into(), round2(self.rate_ratio / n));
        }
        if self.voiced > 0 {
            into.insert(
                "f0_rel_st".into(),
                round2(self.f0_st / f64::from(self.voiced)),
            );
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The policy of one call.
#[derive(Debug)]
pub struct Policy {
    call_id: String,
    params: PolicyParams,
    gates: [Gate; 9],
    evidence: [Option<Evidence>; 9],
    rises: [u32; 9],
    tone_acc: ToneAcc,
    /// The tone scorer's window when the score was last offered with it: what the score
    /// actually rests on (the caller's last seconds of speech, through pauses).
    tone_window: Option<ToneEvidence>,
    pending_since: Option<u64>,
    decided_ms: Option<u64>,
    now_ms: u64,
    handoff_ids: HandoffIds,
}

/// Where a policy's handoff ids come from. The choice is the caller's: the live gateway wants
/// ids nobody can predict (a receiver deduplicates by them, so a guessable id lets a squatter
/// claim a victim's later handoff); replay and tests want the same id on every run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HandoffIds {
    /// `ho_` + 16 hex of SHA-256 over the call id and the decision time: reproducible.
    #[default]
    Derived,
    /// `ho_` + 128 random bits in hex, drawn from the OS at decision time.
    Random,
}

fn idx(s: Signal) -> usize {
    match s {
        Signal::Tone => 0,
        Signal::HumanRequest => 1,
        Signal::Sentiment => 2,
        Signal::Topic => 3,
        Signal::Loop => 4,
        Signal::LowConfidence => 5,
        Signal::Overtalk => 6,
        Signal::Silence => 7,
        Signal::PreCall => 8,
    }
}

impl Policy {
    /// A policy; `gates` in [`Signal::ALL`] order.
    pub fn new(call_id: &str, params: PolicyParams, gates: [GateParams; 9]) -> Self {
        Self {
            call_id: call_id.to_owned(),
            params,
            gates: gates.map(Gate::new),
            evidence: Default::default(),
            rises: [0; 9],
            tone_acc: ToneAcc::default(),
            tone_window: None,
            pending_since: None,
            decided_ms: None,
            now_ms: 0,
            handoff_ids: HandoffIds::Derived,
        }
    }

    /// The same policy with handoff ids from `ids`.
    pub fn with_handoff_ids(mut self, ids: HandoffIds) -> Self {
        self.handoff_ids = ids;
        self
    }

    /// A signal's gate.
    pub fn gate(&self, s: Signal) -> &Gate {
        &self.gates[idx(s)]
    }

    /// Times a signal became active.
    pub fn rises(&self, s: Signal) -> u32 {
        self.rises[idx(s)]
    }

    /// Whether a handoff was decided.
    pub fn handed_off(&self) -> bool {
        self.decided_ms.is_some()
    }

    /// Latest media time seen.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The weighted sum of active signals, 0..1.
    pub fn score(&self) -> f64 {
        self.gates
            .iter()
            .filter(|g| g.is_active())
            .map(|g| g.params().weight)
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }

    /// Current value of each signal: levels as they are, occurrence signals while they count.
    pub fn fill_scores(&self, scores: &mut BTreeMap<Signal, f64>) {
        for s in Signal::ALL {
            let g = &self.gates[idx(s)];
            let v = if g.params().hold_ms > 0 && !g.is_active() && is_occurrence(s) {
                0.0
            } else {
                g.value()
            };
            if let Some(slot) = scores.get_mut(&s) {
                *slot = v;
            } else {
                scores.insert(s, v);
            }
        }
    }

    /// The caller's tone score for one frame. `frame` supplies relative prosody for evidence;
    /// `window`, when given, is the scorer's window behind the score, which the evidence then
    /// reports instead of the per-frame means.
    pub fn on_tone(
        &mut self,
        t_ms: u64,
        score: f32,
        frame: Option<&Frame>,
        window: Option<ToneEvidence>,
        out: &mut Vec<Event>,
    ) -> Option<Decision> {
        if window.is_some() {
            self.tone_window = window;
        }
        self.now_ms = self.now_ms.max(t_ms);
        let i = idx(Signal::Tone);
        let was_pending = self.gates[i].pending_since().is_some();
        let edge = self.gates[i].level(t_ms, f64::from(score));
        if !was_pending && self.gates[i].pending_since().is_some() {
            self.tone_acc = ToneAcc::default();
        }
        if let Some(f) = frame
            && self.gates[i].pending_since().is_some()
        {
            self.tone_acc.add(f);
        }
        if edge == Edge::Rose {
            let ev = self.tone_evidence(t_ms);
            self.rose(Signal::Tone, t_ms, ev, out);
        }
        self.evaluate(t_ms, None)
    }

    fn tone_evidence(&self, t_ms: u64) -> Evidence {
        let g = &self.gates[idx(Signal::Tone)];
        let mut ev = Evidence {
            from_ms: g.since_ms(),
            to_ms: t_ms,
            ..Default::default()
        };
        match &self.tone_window {
            Some(w) => {
                let v = &mut ev.values;
                v.insert("f0_rel_st".into(), round2(f64::from(w.f0_rel_st)));
                v.insert("energy_rel_db".into(), round2(f64::from(w.energy_rel_db)));
                v.insert(
                    "loudness_rel_db".into(),
                    round2(f64::from(w.loudness_rel_db)),
                );
                v.insert("tilt_rel_db".into(), round2(f64::from(w.tilt_rel_db)));
                v.insert("rate_ratio".into(), round2(f64::from(w.rate_ratio)));
                v.insert("voiced_frac".into(), round2(f64::from(w.voiced_frac)));
                v.insert("pause_ratio".into(), round2(f64::from(w.pause_ratio)));
                v.insert(
                    "window_speech_s".into(),
                    round2(f64::from(w.speech_ms) / 1000.0),
                );
            }
            None => self.tone_acc.values(&mut ev.values),
        }
        ev.values.insert("peak".into(), round2(g.peak()));
        ev.values.insert(
            "duration_s".into(),
            round2(t_ms.saturating_sub(g.since_ms()) as f64 / 1000.0),
        );
        ev
    }

    /// A level signal computed per slot or frame (overtalk, silence): evidence is built only
    /// when it crosses, from `from_ms` and the named `values`.
    pub fn on_level(
        &mut self,
        s: Signal,
        t_ms: u64,
        value: f64,
        from_ms: u64,
        values: &[(&str, f64)],
        out: &mut Vec<Event>,
    ) -> Option<Decision> {
        self.now_ms = self.now_ms.max(t_ms);
        if self.gates[idx(s)].level(t_ms, value) == Edge::Rose {
            let ev = Evidence {
                from_ms,
                to_ms: t_ms,
                values: values
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), round2(*v)))
                    .collect(),
                ..Default::default()
            };
            self.rose(s, t_ms, ev, out);
        }
        self.evaluate(t_ms, None)
    }

    /// A transcript signal's new value with its evidence (a human request, topic, loop,
    /// sentiment level, low-confidence count); `entry` says whether it escalates.
    pub fn on_line(
        &mut self,
        s: Signal,
        t_ms: u64,
        value: f64,
        evidence: Evidence,
        entry: Entry,
        out: &mut Vec<Event>,
    ) -> Option<Decision> {
        self.now_ms = self.now_ms.max(t_ms);
        let i = idx(s);
        if entry == Entry::Report {
            out.push(Event {
                call_id: self.call_id.clone(),
                t_ms,
                kind: EventKind::Signal(SignalCrossing {
                    signal: s,
                    value: round4(value),
                    threshold: self.gates[i].params().threshold,
                    evidence,
                }),
            });
            return self.evaluate(t_ms, None);
        }
        let escalate = entry == Entry::Escalate
            && (s != Signal::HumanRequest || self.params.immediate_human_request);
        // Evidence is only built per line, not per frame: the copy is cheap enough here.
        let escalation_evidence = escalate.then(|| evidence.clone());
        let was_active = self.gates[i].is_active();
        let edge = self.gates[i].level(t_ms, value);
        if edge == Edge::Rose {
            self.rose(s, t_ms, evidence, out);
        } else if was_active
            && self.gates[i].is_active()
            && value >= self.gates[i].params().threshold
        {
            // Keep the newest words, but the episode's start.
            let from_ms = self.evidence[i]
                .as_ref()
                .map_or(evidence.from_ms, |e| e.from_ms);
            self.evidence[i] = Some(Evidence {
                from_ms: from_ms.min(evidence.from_ms),
                ..evidence
            });
        }
        if let Some(evidence) = escalation_evidence {
            self.escalated(i, s, t_ms, value, evidence, out);
        }
        self.evaluate(t_ms, escalate.then_some(s))
    }

    /// An escalation rule was met: the signal counts now (its rule is stricter than its gate
    /// except for loops configured below it) with the newest evidence.
    fn escalated(
        &mut self,
        i: usize,
        s: Signal,
        t_ms: u64,
        value: f64,
        evidence: Evidence,
        out: &mut Vec<Event>,
    ) {
        if !self.gates[i].is_active() {
            self.gates[i].force(t_ms, value);
            self.rose(s, t_ms, evidence.clone(), out);
        }
        let from_ms = self.evidence[i]
            .as_ref()
            .map_or(evidence.from_ms, |e| e.from_ms);
        self.evidence[i] = Some(Evidence {
            from_ms: from_ms.min(evidence.from_ms),
            ..evidence
        });
    }

    /// Time passes (every frame): holds run out, a pending decision may mature.
    pub fn tick(&mut self, t_ms: u64) -> Option<Decision> {
        self.now_ms = self.now_ms.max(t_ms);
        let now = self.now_ms;
        for g in &mut self.gates {
            g.tick(now);
        }
        self.evaluate(now, None)
    }

    fn rose(&mut self, s: Signal, t_ms: u64, evidence: Evidence, out: &mut Vec<Event>) {
        let i = idx(s);
        self.rises[i] += 1;
        let g = &self.gates[i];
        out.push(Event {
            call_id: self.call_id.clone(),
            t_ms,
            kind: EventKind::Signal(SignalCrossing {
                signal: s,
                value: round4(g.value()),
                threshold: g.params().threshold,
                evidence: evidence.clone(),
            }),
        });
        self.evidence[i] = Some(evidence);
    }

    fn evaluate(&mut self, t_ms: u64, escalated_by: Option<Signal>) -> Option<Decision> {
        if self.decided_ms.is_some() {
            return None;
        }
        let t_ms = t_ms.max(self.now_ms);
        if escalated_by.is_some() {
            return Some(self.decide(t_ms, escalated_by));
        }
        let score = self.score();
        let p = self.params;
        if score >= p.handoff_threshold - EPS {
            let since = *self.pending_since.get_or_insert(t_ms);
            if t_ms.saturating_sub(since) >= p.min_duration_ms {
                return Some(self.decide(t_ms, None));
            }
        } else if score < p.handoff_threshold - p.release_margin - EPS {
            self.pending_since = None;
        }
        None
    }

    fn decide(&mut self, t_ms: u64, escalated_by: Option<Signal>) -> Decision {
        self.decided_ms = Some(t_ms);
        let mut reasons: Vec<(f64, SignalCrossing)> = Vec::new();
        for s in Signal::ALL {
            let i = idx(s);
            let g = &self.gates[i];
            if !g.is_active() {
                continue;
            }
            let mut evidence = if s == Signal::Tone {
                self.tone_evidence(t_ms)
            } else {
                self.evidence[i].clone().unwrap_or_default()
            };
            if !is_occurrence(s) {
                evidence.to_ms = t_ms;
            }
            if s == Signal::Tone {
                evidence.values.insert("current".into(), round2(g.value()));
            }
            let threshold = g.params().threshold;
            let ratio = if threshold > 0.0 {
                g.peak() / threshold
            } else {
                1.0
            };
            // The escalating signal leads; the rest strongest first.
            let lead = if Some(s) == escalated_by { 1e6 } else { 0.0 };
            reasons.push((
                lead + g.params().weight * 1000.0 + ratio.min(999.0),
                SignalCrossing {
                    signal: s,
                    value: round4(g.peak()),
                    threshold,
                    evidence,
                },
            ));
        }
        reasons.sort_by(|a, b| b.0.total_cmp(&a.0));
        // An escalation is as certain as an explicit request for a human.
        let score = match escalated_by {
            Some(Signal::HumanRequest) => self
                .score()
                .max(self.gates[idx(Signal::HumanRequest)].params().weight),
            Some(_) => 1.0,
            None => self.score(),
        };
        Decision {
            t_ms,
            score: round4(score.min(1.0)),
            reasons: reasons.into_iter().map(|(_, r)| r).collect(),
            immediate: escalated_by.is_some(),
            escalated_by,
        }
    }

    /// The handoff id of a decision at `t_ms`, from the policy's [`HandoffIds`]. Called once
    /// per decision; the id travels with the handoff event from then on.
    pub fn handoff_id(&self, t_ms: u64) -> String {
        match self.handoff_ids {
            HandoffIds::Derived => handoff_id(&self.call_id, t_ms),
            HandoffIds::Random => random_handoff_id(&self.call_id, t_ms),
        }
    }
}

/// `ho_` + first 16 hex of SHA-256(`call_id` NUL `t_ms`).
pub fn handoff_id(call_id: &str, t_ms: u64) -> String {
    let mut h = Sha256::new();
    h.update(call_id.as_bytes());
    h.update([0u8]);
    h.update(t_ms.to_string().as_bytes());
    let digest = h.finalize();
    format!("ho_{}", &hex::encode(digest)[..16])
}

/// `ho_` + 32 hex digits from the OS random source. Should the OS refuse (it does not on any
/// supported platform), the bits are SHA-256 over the derived id and the address of a fresh
/// allocation and the clock: still not reproducible from the call id and time alone.
pub fn random_handoff_id(call_id: &str, t_ms: u64) -> String {
    let mut bits = [0u8; 16];
    if getrandom::fill(&mut bits).is_err() {
        let mut h = Sha256::new();
        h.update(handoff_id(call_id, t_ms).as_bytes());
        let probe = Box::new(0u8);
        h.update(format!("{:p}", &*probe).as_bytes());
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        bits.copy_from_slice(&h.finalize()[..16]);
    }
    format!("ho_{}", hex::encode(bits))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Signals made of discrete transcript occurrences (their value means nothing once expired).
fn is_occurrence(s: Signal) -> bool {
    matches!(
        s,
        Signal::HumanRequest | Signal::Topic | Signal::Loop | Signal::LowConfidence
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(threshold: f64, release: f64, min_ms: u64, hold_ms: u64, weight: f64) -> GateParams {
        GateParams {
            threshold,
            release,
            min_duration_ms: min_ms,
            hold_ms,
            weight,
        }
    }

    fn policy() -> Policy {
        let mut g = [gate(1.0, 1.0, 0, 60_000, 0.25); 9];
        g[idx(Signal::Tone)] = gate(0.5, 0.45, 1000, 0, 0.6);
        g[idx(Signal::HumanRequest)] = gate(1.0, 1.0, 0, 60_000, 1.0);
        g[idx(Signal::Sentiment)] = gate(0.3, 0.25, 0, 30_000, 0.35);
        Policy::new(
            "CA1",
            PolicyParams {
                handoff_threshold: 0.6,
                release_margin: 0.1,
                min_duration_ms: 500,
                immediate_human_request: true,
            },
            g,
        )
    }

    /// Feeds tone scores every 10 ms from `from` to `to`; returns the first decision.
    fn tone(
        p: &mut Policy,
        from: u64,
        to: u64,
        score: f32,
        out: &mut Vec<Event>,
    ) -> Option<Decision> {
        let mut d = None;
        let mut t = from;
        while t < to {
            let r = p.on_tone(t, score, None, None, out);
            d = d.or(r);
            t += 10;
        }
        d
    }

    #[test]
    fn a_short_tone_spike_does_not_count() {
        let mut p = policy();
        let mut out = Vec::new();
        assert!(tone(&mut p, 0, 2000, 0.1, &mut out).is_none());
        assert!(tone(&mut p, 2000, 2300, 0.9, &mut out).is_none());
        assert!(tone(&mut p, 2300, 6000, 0.1, &mut out).is_none());
        assert!(out.is_empty());
        assert!(!p.handed_off());
    }

    #[test]
    fn sustained_tone_alone_hands_off_after_both_durations() {
        let mut p = policy();
        let mut out = Vec::new();
        let d = tone(&mut p, 0, 5000, 0.8, &mut out).unwrap();
        // Tone counts after 1000 ms, the score must then hold 500 ms.
        assert_eq!(d.t_ms, 1500);
        assert_eq!(out.len(), 1);
        let EventKind::Signal(s) = &out[0].kind else {
            panic!()
        };
        assert_eq!((s.signal, out[0].t_ms), (Signal::Tone, 1000));
        assert_eq!(s.evidence.from_ms, 0);
        assert_eq!(d.reasons[0].signal, Signal::Tone);
        assert_eq!(d.reasons[0].evidence.to_ms, 1500);
        assert!(p.handed_off());
        // At most one decision.
        assert!(tone(&mut p, 5000, 9000, 0.9, &mut out).is_none());
    }

    #[test]
    fn hysteresis_keeps_tone_through_small_dips() {
        let mut p = policy();
        let mut out = Vec::new();
        tone(&mut p, 0, 600, 0.6, &mut out);
        // 0.47 is below the threshold but above the release: the episode continues.
        tone(&mut p, 600, 800, 0.47, &mut out);
        tone(&mut p, 800, 1100, 0.6, &mut out);
        assert!(p.gate(Signal::Tone).is_active());
        assert_eq!(p.gate(Signal::Tone).since_ms(), 0);
        // Below the release: it stops and must start over.
        tone(&mut p, 1100, 1200, 0.3, &mut out);
        assert!(!p.gate(Signal::Tone).is_active());
        tone(&mut p, 1200, 2100, 0.6, &mut out);
        assert!(!p.gate(Signal::Tone).is_active());
    }

    #[test]
    fn human_request_is_immediate_and_first() {
        let mut p = policy();
        let mut out = Vec::new();
        let ev = Evidence {
            from_ms: 4000,
            to_ms: 4000,
            text: Some("get me a human".into()),
            ..Default::default()
        };
        p.on_line(
            Signal::Sentiment,
            3000,
            0.4,
            Evidence::default(),
            Entry::Level,
            &mut out,
        );
        let d = p
            .on_line(
                Signal::HumanRequest,
                4000,
                1.0,
                ev,
                Entry::Escalate,
                &mut out,
            )
            .unwrap();
        assert!(d.immediate);
        assert_eq!(d.t_ms, 4000);
        assert_eq!(d.score, 1.0);
        let order: Vec<Signal> = d.reasons.iter().map(|r| r.signal).collect();
        assert_eq!(order, [Signal::HumanRequest, Signal::Sentiment]);
    }

    #[test]
    fn combined_weak_signals_need_the_minimum_duration_and_expire() {
        let mut p = policy();
        let mut out = Vec::new();
        // Sentiment (0.35) + topic (0.25) = 0.6, decided 500 ms later.
        p.on_line(
            Signal::Sentiment,
            1000,
            0.5,
            Evidence::default(),
            Entry::Level,
            &mut out,
        );
        assert!(
            p.on_line(
                Signal::Topic,
                1000,
                1.0,
                Evidence::default(),
                Entry::Level,
                &mut out,
            )
            .is_none()
        );
        assert!(p.tick(1400).is_none());
        let d = p.tick(1500).unwrap();
        assert_eq!(d.reasons.len(), 2);
        assert_eq!(d.reasons[0].signal, Signal::Sentiment);
        assert!((d.score - 0.6).abs() < 1e-9);

        // A lone sentiment expires after its hold.
        let mut p = policy();
        p.on_line(
            Signal::Sentiment,
            1000,
            0.5,
            Evidence::default(),
            Entry::Level,
            &mut out,
        );
        assert!(p.gate(Signal::Sentiment).is_active());
        p.tick(30_999);
        assert!(p.gate(Signal::Sentiment).is_active());
        p.tick(31_000);
        assert!(!p.gate(Signal::Sentiment).is_active());
    }

    #[test]
    fn handoff_ids_are_stable_and_distinct() {
        let a = handoff_id("CA1", 1500);
        assert_eq!(a, handoff_id("CA1", 1500));
        assert_ne!(a, handoff_id("CA1", 1510));
        assert_ne!(a, handoff_id("CA2", 1500));
        assert!(a.starts_with("ho_") && a.len() == 19);
    }

    #[test]
    fn live_handoff_ids_are_random_128_bit_hex() {
        let p = policy().with_handoff_ids(HandoffIds::Random);
        let a = p.handoff_id(1500);
        let b = p.handoff_id(1500);
        assert_eq!(a.len(), 3 + 32, "{a}");
        assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        // Same call, same time: a different id (the derived one would repeat).
        assert_ne!(a, b);
        assert_ne!(a, handoff_id(&p.call_id, 1500));
        assert_eq!(policy().handoff_id(1500), handoff_id(&p.call_id, 1500));
        assert!(a.starts_with("ho_"));
    }
}
