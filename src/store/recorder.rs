//! Builds features-only call records from the gateway's event stream (so the call path knows
//! nothing about the store): prosody reports become a downsampled caller track, signal
//! crossings the topics and the peak score, the handoff its row; `call_ended` writes the
//! record. Pure: [`Recorder::on_event`] returns what to write.

use super::{CallRecord, TonePoint};
use crate::detect::{DetectorConfig, Role};
use crate::event::{Event, EventKind, Signal, Track};
use std::collections::{BTreeMap, HashMap};

/// Caller track points kept per call: one every [`TONE_STEP_MS`], at most this many.
pub const MAX_TONE_POINTS: usize = 240;
/// Downsampling step of the caller track.
pub const TONE_STEP_MS: u64 = 5000;
/// Calls tracked at once; beyond it the oldest open record is dropped (its call still runs).
pub const MAX_OPEN_CALLS: usize = 20_000;

#[derive(Debug, Default)]
struct Open {
    provider: String,
    attributes: BTreeMap<String, String>,
    tone: Vec<TonePoint>,
    active: BTreeMap<Signal, f64>,
    peak_score: f64,
    min_confidence: Option<f64>,
    topics: Vec<String>,
    flagged: Vec<String>,
    signals: Vec<String>,
    handoff: Option<(String, String, serde_json::Value)>,
    seq: u64,
}

/// A write the recorder asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A handoff was decided: `(handoff_id, call_id, first reason, event JSON)`.
    Handoff(String, String, String, serde_json::Value),
    /// A handoff's outcome changed.
    Outcome(String, &'static str),
    /// A call ended.
    Call(Box<CallRecord>),
}

/// Per-call accumulation.
#[derive(Debug)]
pub struct Recorder {
    weights: BTreeMap<Signal, f64>,
    topic_roles: DetectorConfig,
    open: HashMap<String, Open>,
    seq: u64,
}

impl Recorder {
    /// A recorder that scores like the detector configured by `cfg`.
    pub fn new(cfg: &DetectorConfig) -> Self {
        let w = |s: Signal, x: f64| (s, if cfg.role(s).weighs() { x } else { 0.0 });
        let weights = [
            w(Signal::Tone, cfg.tone.weight),
            w(Signal::HumanRequest, cfg.human_request.weight),
            w(Signal::Sentiment, cfg.sentiment.weight),
            w(Signal::Topic, cfg.topic.weight),
            w(Signal::Loop, cfg.loops.weight),
            w(Signal::LowConfidence, cfg.low_confidence.weight),
            w(Signal::Overtalk, cfg.overtalk.weight),
            w(Signal::Silence, cfg.silence.weight),
        ]
        .into_iter()
        .collect();
        Self {
            weights,
            topic_roles: cfg.clone(),
            open: HashMap::new(),
            seq: 0,
        }
    }

    /// Calls being recorded.
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// Takes one event; returns the write it makes, if any.
    pub fn on_event(&mut self, e: &Event, now_unix_ms: i64) -> Option<Write> {
        if let EventKind::CallStarted(s) = &e.kind {
            if self.open.len() >= MAX_OPEN_CALLS {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, o)| o.seq)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.open.remove(&k);
                }
            }
            self.seq += 1;
            self.open.insert(
                e.call_id.clone(),
                Open {
                    provider: s.provider.to_string(),
                    attributes: s
                        .custom_parameters
                        .iter()
                        .take(crate::detect::MAX_ATTRIBUTES)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    seq: self.seq,
                    ..Open::default()
                },
            );
            return None;
        }
        if let EventKind::HandoffFailed(d) = &e.kind {
            return Some(Write::Outcome(d.handoff_id.clone(), "failed"));
        }
        let o = self.open.get_mut(&e.call_id)?;
        match &e.kind {
            EventKind::Prosody(p) if p.track == Track::Caller => {
                let due = o
                    .tone
                    .last()
                    .is_none_or(|l| e.t_ms >= l.t_ms + TONE_STEP_MS);
                if due && o.tone.len() < MAX_TONE_POINTS {
                    o.tone.push(TonePoint {
                        t_ms: e.t_ms,
                        tone: p.tone_score,
                        f0_rel_st: p.f0_rel_st,
                        energy_rel_db: p.energy_rel_db,
                    });
                }
                // A tone below threshold ends its contribution.
                if p.tone_score < 0.5 {
                    o.active.remove(&Signal::Tone);
                }
                None
            }
            EventKind::Signal(s) => {
                let name = s.signal.name().to_owned();
                if !o.signals.contains(&name) {
                    o.signals.push(name);
                }
                if s.signal == Signal::Topic {
                    let topic = s
                        .evidence
                        .matched
                        .as_deref()
                        .and_then(|m| m.split(':').next())
                        .unwrap_or("")
                        .to_owned();
                    let role = self.topic_roles.topic_role(&topic);
                    let list = if role.weighs() {
                        &mut o.topics
                    } else {
                        &mut o.flagged
                    };
                    if !topic.is_empty() && !list.contains(&topic) && list.len() < 16 {
                        list.push(topic);
                    }
                    if role == Role::Flag || role == Role::Route {
                        return None;
                    }
                }
                if s.signal == Signal::LowConfidence
                    && let Some(c) = s.evidence.values.get("last_confidence")
                {
                    o.min_confidence = Some(o.min_confidence.map_or(*c, |m| m.min(*c)));
                }
                o.active.insert(
                    s.signal,
                    self.weights.get(&s.signal).copied().unwrap_or(0.0),
                );
                let score: f64 = o.active.values().sum::<f64>().min(1.0);
                o.peak_score = o.peak_score.max(score);
                None
            }
            EventKind::Handoff(h) => {
                o.peak_score = o.peak_score.max(h.score);
                let reason = h
                    .reasons
                    .first()
                    .map_or("unknown", |r| r.signal.name())
                    .to_owned();
                let json = serde_json::to_value(e).ok()?;
                o.handoff = Some((h.handoff_id.clone(), reason.clone(), json.clone()));
                Some(Write::Handoff(
                    h.handoff_id.clone(),
                    e.call_id.clone(),
                    reason,
                    json,
                ))
            }
            EventKind::CallEnded(c) => {
                let o = self.open.remove(&e.call_id)?;
                let (handoff_id, reason, summary) = match o.handoff {
                    Some((id, reason, json)) => {
                        (Some(id), Some(reason), json.get("summary").cloned())
                    }
                    None => (None, None, None),
                };
                Some(Write::Call(Box::new(CallRecord {
                    call_id: e.call_id.clone(),
                    provider: o.provider,
                    ended_unix_ms: now_unix_ms,
                    duration_ms: c.duration_ms,
                    handoff_id,
                    reason,
                    peak_score: (o.peak_score * 1000.0).round() / 1000.0,
                    min_confidence: o.min_confidence,
                    topics: o.topics,
                    flagged: o.flagged,
                    signals: o.signals,
                    tone: o.tone,
                    attributes: o.attributes,
                    summary,
                })))
            }
            _ => None,
        }
    }
}
