//! Per-track `prosody` reports: one per second of media, summarising the interval's frames
//! (median F0, mean speech energy, rate, tone score, speech ratio, and the speaker's distance
//! from their own baseline), plus the caller's last few reports for the handoff summary.
//!
//! The F0 buffer is allocated once; nothing is allocated per frame.

use crate::dsp::{Baseline, Frame};
use crate::event::{Prosody, Track};

/// Report interval, ms.
pub const INTERVAL_MS: u64 = 1000;
/// F0 values kept per interval (100 at a 10 ms hop; extra frames are not needed for a median).
const F0_CAP: usize = 256;
/// Reports kept for "how the caller sounds now".
const RECENT: usize = 5;

/// Accumulates one track's frames into reports.
#[derive(Debug)]
pub struct ProsodyAcc {
    start_ms: Option<u64>,
    frames: u32,
    speech: u32,
    f0: Vec<f32>,
    power_speech: f64,
    power_all: f64,
    rate_sps: f32,
    tone: f32,
    rel_frames: u32,
    rel_voiced: u32,
    rel_f0_st: f64,
    rel_energy_db: f64,
}

impl Default for ProsodyAcc {
    fn default() -> Self {
        Self {
            start_ms: None,
            frames: 0,
            speech: 0,
            f0: Vec::with_capacity(F0_CAP),
            power_speech: 0.0,
            power_all: 0.0,
            rate_sps: 0.0,
            tone: 0.0,
            rel_frames: 0,
            rel_voiced: 0,
            rel_f0_st: 0.0,
            rel_energy_db: 0.0,
        }
    }
}

impl ProsodyAcc {
    /// Whether the interval is complete at `t_ms` (report before adding that frame).
    pub fn due(&self, t_ms: u64) -> bool {
        self.start_ms
            .is_some_and(|s| t_ms >= s + INTERVAL_MS && self.frames > 0)
    }

    /// Adds one frame with its tone score.
    pub fn push(&mut self, f: &Frame, tone: f32) {
        self.start_ms.get_or_insert(f.t_ms);
        self.frames += 1;
        let power = 10f64.powf(f64::from(f.energy_db) / 10.0);
        self.power_all += power;
        self.tone = tone;
        if f.vad {
            self.speech += 1;
            self.power_speech += power;
            self.rate_sps = f.rate_sps;
            if f.rel.baseline_ready {
                self.rel_frames += 1;
                self.rel_energy_db += f64::from(f.rel.energy_db);
            }
        }
        if f.voiced && f.f0_hz > 0.0 {
            if self.f0.len() < F0_CAP {
                self.f0.push(f.f0_hz);
            }
            if f.rel.baseline_ready {
                self.rel_voiced += 1;
                self.rel_f0_st += f64::from(f.rel.f0_st);
            }
        }
    }

    /// Whether anything was accumulated.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The report of the interval so far; starts a new interval.
    pub fn take(&mut self, track: Track, baseline: Option<&Baseline>) -> Prosody {
        let n = f64::from(self.frames.max(1));
        let f0_hz = median(&mut self.f0).map(f64::from);
        let energy_db = if self.speech > 0 {
            10.0 * (self.power_speech / f64::from(self.speech))
                .max(1e-12)
                .log10()
        } else {
            10.0 * (self.power_all / n).max(1e-12).log10()
        };
        let ready = baseline.is_some() || self.rel_frames > 0;
        let f0_rel_st = match (f0_hz, baseline) {
            (Some(f), Some(b)) if b.f0_hz > 0.0 => Some(12.0 * (f / f64::from(b.f0_hz)).log2()),
            (Some(_), None) if self.rel_voiced > 0 => {
                Some(self.rel_f0_st / f64::from(self.rel_voiced))
            }
            _ => None,
        };
        let energy_rel_db = match baseline {
            Some(b) if self.speech > 0 => Some(energy_db - f64::from(b.energy_db)),
            None if self.rel_frames > 0 => Some(self.rel_energy_db / f64::from(self.rel_frames)),
            _ => None,
        };
        let p = Prosody {
            track,
            f0_hz: f0_hz.map(round1),
            energy_db: round1(energy_db),
            rate_sps: round1(f64::from(self.rate_sps)),
            tone_score: round3(f64::from(self.tone)),
            vad_ratio: round3(f64::from(self.speech) / n),
            f0_rel_st: f0_rel_st.map(round1),
            energy_rel_db: energy_rel_db.map(round1),
            baseline_ready: ready,
        };
        self.reset();
        p
    }

    /// Starts a new interval; keeps the F0 buffer and the last speaking rate.
    fn reset(&mut self) {
        self.start_ms = None;
        self.frames = 0;
        self.speech = 0;
        self.f0.clear();
        self.power_speech = 0.0;
        self.power_all = 0.0;
        self.tone = 0.0;
        self.rel_frames = 0;
        self.rel_voiced = 0;
        self.rel_f0_st = 0.0;
        self.rel_energy_db = 0.0;
    }
}

fn median(v: &mut [f32]) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        return Some(m);
    }
    let lower = v[..mid].iter().copied().fold(f32::MIN, f32::max);
    Some((lower + m) / 2.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One report as kept for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Median F0, if voiced.
    pub f0_hz: Option<f64>,
    /// Speech energy, dBFS.
    pub energy_db: f64,
    /// Syllables per second.
    pub rate_sps: f64,
    /// Tone score.
    pub tone_score: f64,
    /// Speech ratio.
    pub vad_ratio: f64,
}

/// The caller's last reports.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    ring: [Snapshot; RECENT],
    len: usize,
    next: usize,
}

impl Recent {
    /// Remembers a report.
    pub fn push(&mut self, p: &Prosody) {
        self.ring[self.next] = Snapshot {
            f0_hz: p.f0_hz,
            energy_db: p.energy_db,
            rate_sps: p.rate_sps,
            tone_score: p.tone_score,
            vad_ratio: p.vad_ratio,
        };
        self.next = (self.next + 1) % RECENT;
        self.len = (self.len + 1).min(RECENT);
    }

    /// Reports with speech in them (at least a fifth of the interval), oldest first.
    pub fn speech(&self) -> impl Iterator<Item = &Snapshot> {
        let start = (self.next + RECENT - self.len) % RECENT;
        (0..self.len)
            .map(move |i| &self.ring[(start + i) % RECENT])
            .filter(|s| s.vad_ratio >= 0.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t_ms: u64, vad: bool, f0_hz: f32, energy_db: f32) -> Frame {
        Frame {
            t_ms,
            vad,
            voiced: f0_hz > 0.0,
            f0_hz,
            energy_db,
            rate_sps: 4.0,
            ..Default::default()
        }
    }

    #[test]
    fn one_report_per_second_with_median_f0_and_speech_energy() {
        let mut acc = ProsodyAcc::default();
        let mut reports = Vec::new();
        for i in 0..250u64 {
            let t = i * 10;
            // Half speech at −20 dBFS with F0 100..199 Hz, half silence at −60 dBFS.
            let f = if i % 2 == 0 {
                frame(t, true, 100.0 + (i % 100) as f32, -20.0)
            } else {
                frame(t, false, 0.0, -60.0)
            };
            if acc.due(t) {
                reports.push(acc.take(Track::Caller, None));
            }
            acc.push(&f, 0.25);
        }
        assert_eq!(reports.len(), 2);
        let r = &reports[0];
        assert_eq!(r.energy_db, -20.0);
        assert_eq!(r.vad_ratio, 0.5);
        assert_eq!(r.tone_score, 0.25);
        assert_eq!(r.f0_hz, Some(149.0));
        assert!(!r.baseline_ready);
        assert_eq!(r.f0_rel_st, None);
    }

    #[test]
    fn relative_to_baseline() {
        let mut acc = ProsodyAcc::default();
        for i in 0..100 {
            acc.push(&frame(i * 10, true, 200.0, -14.0), 0.0);
        }
        let b = Baseline {
            f0_hz: 100.0,
            energy_db: -20.0,
            ..Default::default()
        };
        let r = acc.take(Track::Caller, Some(&b));
        assert_eq!(r.f0_rel_st, Some(12.0));
        assert_eq!(r.energy_rel_db, Some(6.0));
        assert!(r.baseline_ready);
        assert!(acc.is_empty());
    }

    #[test]
    fn unvoiced_interval_has_null_f0() {
        let mut acc = ProsodyAcc::default();
        acc.push(&frame(0, false, 0.0, -60.0), 0.0);
        assert_eq!(acc.take(Track::Agent, None).f0_hz, None);
    }
}
