//! Frustration detection: the caller's tone from prosody ([`tone`]), transcript signals,
//! conversation dynamics, and the policy that turns evidence into at most one explainable
//! handoff with a summary.
//!
//! Pure and deterministic: input is DSP frames and transcript lines stamped with media time.
//!
//! (Interface settled; transcript signals, dynamics, policy and summary are being filled in.)

pub mod tone;

use crate::dsp::{Baseline, Frame};
use crate::event::{Event, EventKind, Prosody, Signal, Track};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tone::{ToneModel, ToneScorer};

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

/// Detector and policy settings (`[detector]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Tone model file produced by `warmline tune`; the bundled default when unset.
    pub model: Option<PathBuf>,
}


/// One call's detector.
#[derive(Debug)]
pub struct Detector {
    call_id: String,
    tone: [ToneScorer; 2],
    scores: BTreeMap<Signal, f64>,
    last_prosody_ms: [u64; 2],
}

impl Detector {
    /// A detector for one call.
    pub fn new(call_id: &str, _cfg: &DetectorConfig, model: Arc<ToneModel>) -> Self {
        Self {
            call_id: call_id.to_owned(),
            tone: [ToneScorer::new(model.clone()), ToneScorer::new(model)],
            scores: BTreeMap::new(),
            last_prosody_ms: [0; 2],
        }
    }

    /// Feeds one DSP frame of one track.
    pub fn on_frame(
        &mut self,
        track: Track,
        frame: &Frame,
        _baseline: Option<&Baseline>,
        out: &mut Vec<Event>,
    ) {
        let score = self.tone[track.index()].push(frame);
        if track == Track::Caller {
            self.scores.insert(Signal::Tone, f64::from(score));
        }
        if frame.t_ms >= self.last_prosody_ms[track.index()] + 1000 {
            self.last_prosody_ms[track.index()] = frame.t_ms;
            out.push(Event {
                call_id: self.call_id.clone(),
                t_ms: frame.t_ms,
                kind: EventKind::Prosody(Prosody {
                    track,
                    f0_hz: (frame.f0_hz > 0.0).then_some(f64::from(frame.f0_hz)),
                    energy_db: f64::from(frame.energy_db),
                    rate_sps: f64::from(frame.rate_sps),
                    tone_score: f64::from(score),
                    vad_ratio: 0.0,
                    f0_rel_st: None,
                    energy_rel_db: None,
                    baseline_ready: frame.rel.baseline_ready,
                }),
            });
        }
    }

    /// Feeds one transcript line at media time `t_ms`.
    pub fn on_transcript(&mut self, _t_ms: u64, _line: &TranscriptLine, _out: &mut Vec<Event>) {}

    /// The stream ended at `t_ms`.
    pub fn finish(&mut self, _t_ms: u64, _out: &mut Vec<Event>) {}

    /// Latest value of each signal (for `GET /v1/calls`).
    pub fn scores(&self) -> &BTreeMap<Signal, f64> {
        &self.scores
    }

    /// Whether a handoff was decided.
    pub fn handed_off(&self) -> bool {
        false
    }
}

impl DetectorConfig {
    /// Checks values; on error returns (key below `detector.`, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}
