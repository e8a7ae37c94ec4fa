//! The tone score: caller frustration from prosody relative to the caller's own baseline, over
//! a short sliding window, through a logistic model file produced by `warmline tune`.
//!
//! [`ToneScorer`] keeps running sums over a ring of the caller's last `window_ms` of *speech*
//! (frames older than `max_age_ms` of media time leave it), so each hop costs O(1) and allocates
//! nothing. Pauses between sentences neither add to nor empty the window: the score holds through
//! them, so a sustain rule is not restarted by every breath, and a long silence still clears it; [`ToneModel`] turns the window's features into
//! `sigmoid(w·z + b)` with `z = (x − mean) / std`. Only frames that are speech *and* have an
//! established speaker baseline count, so a caller's normal voice — low, high, loud or fast —
//! sits near zero on every relative feature.
//!
//! The model file itself (format, validation, loading) is [`super::model`]; its items are
//! re-exported here so `detect::tone::ToneModel` keeps working. Over 600 lines because about
//! 270 of them are the scorer's tests (window, prior, ring, pauses), which read best beside it.

pub use super::model::{
    DEFAULT_MODEL_JSON, Linear, MODEL_VERSION, ModelError, OperatingPoint, PriorModel, Provenance,
    ToneModel, feature_index, sigmoid,
};
use crate::dsp::{CEPSTRUM_LEN, Frame, MFCC_LEN};
use serde::Serialize;
use std::sync::Arc;

/// Window features, in the order [`ToneScorer::features`] returns them.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "f0_rel_st",
    "f0_sd_st",
    "f0_high_frac",
    "energy_rel_db",
    "energy_sd_db",
    "energy_peak_frac",
    "loudness_rel_db",
    "tilt_rel_db",
    "rate_log_ratio",
    "f0_range_st",
    "voiced_frac",
    "pause_ratio",
    "cep1_rel",
    "cep2_rel",
    "cep3_rel",
    "cep4_rel",
    "mfcc1_spread",
    "mfcc2_spread",
    "mfcc3_spread",
    "mfcc4_spread",
    "mfcc5_spread",
    "mfcc6_spread",
    "mfcc7_spread",
    "mfcc8_spread",
    "mfcc9_spread",
    "mfcc10_spread",
    "mfcc11_spread",
    "mfcc12_spread",
];

/// How many window features there are.
pub const N_FEATURES: usize = 28;
/// Index of the first `mfccN_spread` feature: the window's standard deviation of mel
/// cepstrum coefficient N over its speech, relative to the speaker's baseline spread (1 = as
/// much articulation movement as their normal voice).
const MFCC_SPREAD_AT: usize = 16;

/// Semitones above baseline that count a voiced frame as "high" (`f0_high_frac`).
const F0_HIGH_ST: f32 = 4.0;
/// dB above baseline that count a speech frame as an energy peak (`energy_peak_frac`).
const ENERGY_PEAK_DB: f32 = 6.0;
/// Slots a new scorer starts with (see [`ToneScorer::grow`]).
const INITIAL_SLOTS: usize = 32;
/// Clamp for relative values, so one broken frame cannot dominate a window.
const REL_CLAMP: f32 = 24.0;
/// Features the population prior may use: the window's shape, which needs no baseline of the
/// caller's (spreads and ranges are the same on any speaker's scale, the share of voiced
/// frames and of pauses are ratios, the rate is taken against [`POPULATION_RATE_SPS`]).
pub const PRIOR_FEATURES: [&str; 6] = [
    "f0_sd_st",
    "energy_sd_db",
    "rate_log_ratio",
    "f0_range_st",
    "voiced_frac",
    "pause_ratio",
];

/// The speaking rate a caller is compared against before their own is known, syllables per
/// second (conversational English and German sit around 4–5).
pub const POPULATION_RATE_SPS: f32 = 4.5;

/// The current window's feature values, for explanations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ToneEvidence {
    /// Mean F0 of voiced frames, semitones above the baseline.
    pub f0_rel_st: f32,
    /// F0 spread over voiced frames, semitones.
    pub f0_sd_st: f32,
    /// Mean energy of speech frames, dB above the baseline.
    pub energy_rel_db: f32,
    /// Mean loudness of speech frames, dB above the baseline.
    pub loudness_rel_db: f32,
    /// Mean spectral tilt of speech frames, dB above the baseline (vocal effort).
    pub tilt_rel_db: f32,
    /// Speaking rate over the baseline rate (geometric mean).
    pub rate_ratio: f32,
    /// Voiced share of speech frames.
    pub voiced_frac: f32,
    /// Share of the window's time span without scored speech.
    pub pause_ratio: f32,
    /// Scored speech in the window, ms.
    pub speech_ms: u32,
    /// The score these features gave.
    pub score: f32,
}

/// One hop's contribution to the window.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    t_ms: u64,
    dur_ms: u32,
    voiced: bool,
    f0_st: f32,
    energy_db: f32,
    loudness_db: f32,
    tilt_db: f32,
    log_rate: f32,
    f0_range_st: f32,
    cepstrum: [f32; CEPSTRUM_LEN],
    mfcc_z: [f32; MFCC_LEN],
}

/// Running sums over the window's slots.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    speech_ms: f64,
    n_speech: f64,
    n_voiced: f64,
    f0: f64,
    f0_sq: f64,
    f0_high: f64,
    energy: f64,
    energy_sq: f64,
    energy_peak: f64,
    loudness: f64,
    tilt: f64,
    log_rate: f64,
    f0_range: f64,
    cepstrum: [f64; CEPSTRUM_LEN],
    mfcc_z: [f64; MFCC_LEN],
    mfcc_z_sq: [f64; MFCC_LEN],
}

impl Sums {
    fn apply(&mut self, s: &Slot, sign: f64) {
        self.speech_ms += sign * f64::from(s.dur_ms);
        self.n_speech += sign;
        let e = f64::from(s.energy_db);
        self.energy += sign * e;
        self.energy_sq += sign * e * e;
        if s.energy_db > ENERGY_PEAK_DB {
            self.energy_peak += sign;
        }
        self.loudness += sign * f64::from(s.loudness_db);
        self.tilt += sign * f64::from(s.tilt_db);
        self.log_rate += sign * f64::from(s.log_rate);
        self.f0_range += sign * f64::from(s.f0_range_st);
        for (sum, c) in self.cepstrum.iter_mut().zip(&s.cepstrum) {
            *sum += sign * f64::from(*c);
        }
        for ((sum, sq), &z) in self
            .mfcc_z
            .iter_mut()
            .zip(&mut self.mfcc_z_sq)
            .zip(&s.mfcc_z)
        {
            let z = f64::from(z);
            *sum += sign * z;
            *sq += sign * z * z;
        }
        if s.voiced {
            let f = f64::from(s.f0_st);
            self.n_voiced += sign;
            self.f0 += sign * f;
            self.f0_sq += sign * f * f;
            if s.f0_st > F0_HIGH_ST {
                self.f0_high += sign;
            }
        }
    }
}

/// Scores one track's frames.
#[derive(Debug)]
pub struct ToneScorer {
    model: Arc<ToneModel>,
    linear: Linear,
    /// The population prior, scoring the window until the caller's baseline is ready.
    prior: Option<Linear>,
    /// Whether the window holds pre-baseline frames (scored by `prior`).
    on_prior: bool,
    /// Ring of the window's slots; `head` is the oldest, `len` how many are live. It starts
    /// small and doubles when full, up to `max_slots`: at 20 ms hops a window needs half the
    /// slots it needs at 10 ms, and a track that never speaks needs almost none.
    ring: Vec<Slot>,
    max_slots: usize,
    head: usize,
    len: usize,
    sums: Sums,
    /// Pushes since the sums were last recomputed from the ring (bounds float drift).
    since_recompute: usize,
    last_t_ms: Option<u64>,
    score: f32,
}

impl ToneScorer {
    /// A scorer for one track.
    pub fn new(model: Arc<ToneModel>) -> Self {
        // Room for the window's speech at the finest hop (10 ms), plus the frame being added.
        let max_slots = (model.window_ms as usize).div_ceil(10) + 2;
        Self {
            linear: model.linear(),
            prior: model.prior.as_ref().map(PriorModel::linear),
            on_prior: false,
            model,
            ring: vec![Slot::default(); INITIAL_SLOTS.min(max_slots)],
            max_slots,
            head: 0,
            len: 0,
            sums: Sums::default(),
            since_recompute: 0,
            last_t_ms: None,
            score: 0.0,
        }
    }

    /// Feeds one frame; returns the current score, 0..1 (0 until the window holds
    /// `min_speech_ms` of speech with a ready baseline). A frame without speech leaves the score
    /// where it was, unless it ages speech out of the window.
    pub fn push(&mut self, frame: &Frame) -> f32 {
        // Most hops of a pause leave the window as it was: the score stands.
        if !self.update(frame) {
            return self.score;
        }
        let linear = match (self.on_prior, &self.prior) {
            (false, _) => &self.linear,
            (true, Some(prior)) => prior,
            (true, None) => return 0.0,
        };
        self.score = match self.features() {
            Some(x) => linear.score(&x),
            None => 0.0,
        };
        self.score
    }

    /// Whether the current score comes from the population prior (the caller's baseline is
    /// not ready yet).
    pub fn on_prior(&self) -> bool {
        self.on_prior
    }

    /// Whether the caller sounds angry enough that what they say now must not become their
    /// "normal" voice: the score is at three quarters of the threshold or above (the bar the
    /// detector uses for the tone evidence window).
    pub fn holds_baseline(&self) -> bool {
        self.score >= 0.75 * self.model.threshold
    }

    /// The last score [`push`](Self::push) returned.
    pub fn score(&self) -> f32 {
        self.score
    }

    /// The model's threshold.
    pub fn threshold(&self) -> f32 {
        self.model.threshold
    }

    /// The model in use.
    pub fn model(&self) -> &Arc<ToneModel> {
        &self.model
    }

    /// Forgets the window (the baseline lives in the DSP and is kept).
    pub fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.sums = Sums::default();
        self.since_recompute = 0;
        self.last_t_ms = None;
        self.score = 0.0;
        self.on_prior = false;
    }

    /// Adds a frame to the window without scoring it (what [`push`](Self::push) does first);
    /// returns whether the window changed.
    pub fn update(&mut self, frame: &Frame) -> bool {
        let dur_ms = match self.last_t_ms {
            Some(prev) if frame.t_ms > prev => (frame.t_ms - prev).min(1000) as u32,
            _ => 10,
        };
        self.last_t_ms = Some(frame.t_ms);
        // Age out what is older than `max_age_ms`, whatever the frame is.
        let max_age_ms = u64::from(self.model.max_age_ms);
        let mut changed = false;
        while self.len > 0 && self.ring[self.head].t_ms + max_age_ms <= frame.t_ms {
            self.pop_oldest();
            changed = true;
        }
        let rel = &frame.rel;
        if !frame.speech || !rel.baseline_ready && self.prior.is_none() {
            return changed;
        }
        // The prior's window and the baseline's measure different things: the first ready
        // frame starts the window afresh.
        if rel.baseline_ready && self.on_prior {
            while self.len > 0 {
                self.pop_oldest();
            }
        }
        self.on_prior = !rel.baseline_ready;
        let slot = if self.on_prior {
            prior_slot(frame, dur_ms)
        } else {
            Slot {
                t_ms: frame.t_ms,
                dur_ms,
                voiced: frame.voiced && frame.f0_hz > 0.0,
                f0_st: clamp(rel.f0_st),
                energy_db: clamp(rel.energy_db),
                loudness_db: clamp(rel.loudness_db),
                tilt_db: clamp(rel.tilt_db),
                log_rate: if rel.rate_ratio > 0.0 && rel.rate_ratio.is_finite() {
                    rel.rate_ratio.clamp(0.2, 5.0).ln()
                } else {
                    0.0
                },
                f0_range_st: clamp(frame.f0_range_st).max(0.0),
                cepstrum: rel.cepstrum.map(clamp),
                mfcc_z: rel.mfcc_z.map(clamp),
            }
        };
        // Keep the most recent `window_ms` of speech (and never overrun the ring, which only
        // happens when media time stalls or runs backwards).
        let window_ms = f64::from(self.model.window_ms);
        while self.len > 0 && self.sums.speech_ms + f64::from(dur_ms) > window_ms + 0.5 {
            self.pop_oldest();
        }
        if self.len >= self.ring.len() {
            self.grow();
        }
        while self.len >= self.ring.len() {
            self.pop_oldest();
        }
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = slot;
        self.len += 1;
        self.sums.apply(&slot, 1.0);
        self.since_recompute += 1;
        if self.since_recompute >= self.ring.len() {
            self.recompute();
        }
        true
    }

    /// Doubles the ring (up to `max_slots`), laying the live slots out from index 0.
    fn grow(&mut self) {
        let new_len = (self.ring.len() * 2).clamp(1, self.max_slots);
        if new_len <= self.ring.len() {
            return;
        }
        let mut ring = Vec::with_capacity(new_len);
        ring.extend((0..self.len).map(|k| self.ring[(self.head + k) % self.ring.len()]));
        ring.resize(new_len, Slot::default());
        self.ring = ring;
        self.head = 0;
    }

    fn pop_oldest(&mut self) {
        let oldest = self.ring[self.head];
        self.sums.apply(&oldest, -1.0);
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        if self.len == 0 {
            // Exact zero, whatever rounding the running sums collected.
            self.sums = Sums::default();
        }
    }

    fn recompute(&mut self) {
        let mut sums = Sums::default();
        for k in 0..self.len {
            sums.apply(&self.ring[(self.head + k) % self.ring.len()], 1.0);
        }
        self.sums = sums;
        self.since_recompute = 0;
    }

    /// The window's features in [`FEATURE_NAMES`] order, once it holds enough speech.
    pub fn features(&self) -> Option<[f32; N_FEATURES]> {
        let s = &self.sums;
        if s.speech_ms + 0.5 < f64::from(self.model.min_speech_ms) || s.n_speech < 1.0 {
            return None;
        }
        let mean = |sum: f64, n: f64| if n >= 1.0 { sum / n } else { 0.0 };
        let sd = |sum: f64, sq: f64, n: f64| {
            if n >= 2.0 {
                let m = sum / n;
                (sq / n - m * m).max(0.0).sqrt()
            } else {
                0.0
            }
        };
        let mut x = [0.0f64; N_FEATURES];
        let head = [
            mean(s.f0, s.n_voiced),
            sd(s.f0, s.f0_sq, s.n_voiced),
            mean(s.f0_high, s.n_voiced),
            mean(s.energy, s.n_speech),
            sd(s.energy, s.energy_sq, s.n_speech),
            mean(s.energy_peak, s.n_speech),
            mean(s.loudness, s.n_speech),
            mean(s.tilt, s.n_speech),
            mean(s.log_rate, s.n_speech),
            mean(s.f0_range, s.n_speech),
            mean(s.n_voiced, s.n_speech),
            self.pause_ratio(),
            mean(s.cepstrum[0], s.n_speech),
            mean(s.cepstrum[1], s.n_speech),
            mean(s.cepstrum[2], s.n_speech),
            mean(s.cepstrum[3], s.n_speech),
        ];
        x[..MFCC_SPREAD_AT].copy_from_slice(&head);
        for c in 0..MFCC_LEN {
            x[MFCC_SPREAD_AT + c] = sd(s.mfcc_z[c], s.mfcc_z_sq[c], s.n_speech);
        }
        Some(x.map(|v| v as f32))
    }

    /// Share of the window's span (oldest to newest speech) that was not speech.
    fn pause_ratio(&self) -> f64 {
        if self.len == 0 {
            return 1.0;
        }
        let oldest = self.ring[self.head];
        let newest = self.ring[(self.head + self.len - 1) % self.ring.len()];
        let span_ms = (newest.t_ms + u64::from(newest.dur_ms)).saturating_sub(oldest.t_ms) as f64;
        if span_ms > 0.0 {
            (1.0 - self.sums.speech_ms / span_ms).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The current window's feature values, for explanations (zeros before it is scored).
    pub fn evidence(&self) -> ToneEvidence {
        let Some(x) = self.features() else {
            return ToneEvidence {
                pause_ratio: 1.0,
                rate_ratio: 1.0,
                ..ToneEvidence::default()
            };
        };
        ToneEvidence {
            f0_rel_st: x[0],
            f0_sd_st: x[1],
            energy_rel_db: x[3],
            loudness_rel_db: x[6],
            tilt_rel_db: x[7],
            rate_ratio: x[8].exp(),
            voiced_frac: x[10],
            pause_ratio: x[11],
            speech_ms: self.sums.speech_ms.round().max(0.0) as u32,
            score: self.score,
        }
    }
}

/// A pre-baseline frame's slot: only what [`PRIOR_FEATURES`] read, on absolute scales (F0 in
/// semitones re 200 Hz, energy in dBFS, rate against [`POPULATION_RATE_SPS`]); their spreads,
/// ranges and ratios need no baseline.
fn prior_slot(frame: &Frame, dur_ms: u32) -> Slot {
    let voiced = frame.voiced && frame.f0_hz > 0.0;
    let finite = |v: f32, lim: f32| {
        if v.is_finite() {
            v.clamp(-lim, lim)
        } else {
            0.0
        }
    };
    Slot {
        t_ms: frame.t_ms,
        dur_ms,
        voiced,
        f0_st: if voiced {
            finite(12.0 * (frame.f0_hz / 200.0).log2(), REL_CLAMP)
        } else {
            0.0
        },
        energy_db: finite(frame.energy_db, 120.0),
        log_rate: if frame.rate_sps > 0.0 && frame.rate_sps.is_finite() {
            (frame.rate_sps / POPULATION_RATE_SPS).clamp(0.2, 5.0).ln()
        } else {
            0.0
        },
        f0_range_st: clamp(frame.f0_range_st).max(0.0),
        ..Slot::default()
    }
}

fn clamp(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(-REL_CLAMP, REL_CLAMP)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::model::tests::toy_model;
    use crate::dsp::Relative;

    fn frame(t_ms: u64, speech: bool, f0_st: f32, energy_db: f32, tilt_db: f32) -> Frame {
        Frame {
            t_ms,
            vad: speech,
            speech,
            voiced: speech,
            f0_hz: if speech { 150.0 } else { 0.0 },
            energy_db: -20.0 + energy_db,
            rel: Relative {
                baseline_ready: true,
                f0_st,
                energy_db,
                loudness_db: energy_db,
                tilt_db,
                rate_ratio: 1.0,
                ..Relative::default()
            },
            ..Frame::default()
        }
    }

    #[test]
    fn raised_voice_after_baseline_crosses_threshold_and_constant_loud_voice_does_not() {
        let model = Arc::new(toy_model());
        // Speaker A: normal voice for 10 s (relative ~0), then 4 dB higher F0, 9 dB louder and
        // 4 dB more tilt, with pauses every half second.
        let mut a = ToneScorer::new(model.clone());
        let mut before = 0.0f32;
        let mut after = 1.0f32;
        for k in 0..2000u64 {
            let t = k * 10;
            let speech = (k % 50) < 40;
            let jitter = ((k * 7919) % 13) as f32 / 13.0 - 0.5;
            let (f0, e, tilt) = if t < 10_000 {
                (jitter, jitter, 0.3 * jitter)
            } else {
                (4.0 + jitter, 9.0 + jitter, 4.0)
            };
            let s = a.push(&frame(t, speech, f0, e, tilt));
            if t < 10_000 {
                before = before.max(s);
            } else if t > 13_000 {
                after = after.min(s);
            }
        }
        assert!(before < model.threshold, "baseline speech scored {before}");
        assert!(after > model.threshold, "raised voice scored only {after}");
        let ev = a.evidence();
        assert!(ev.energy_rel_db > 8.0 && ev.f0_rel_st > 3.0, "{ev:?}");

        // Speaker B talks loudly all the time: 20 dB louder in absolute terms, but that is their
        // baseline, so relative features stay near zero.
        let mut b = ToneScorer::new(model.clone());
        let mut top = 0.0f32;
        for k in 0..2000u64 {
            let mut f = frame(k * 10, (k % 50) < 40, 0.2, 0.3, 0.1);
            f.energy_db = 0.0;
            f.loudness_db = 0.0;
            top = top.max(b.push(&f));
        }
        assert!(
            top < model.threshold,
            "loud-but-constant speaker scored {top}"
        );
    }

    #[test]
    fn nothing_scores_before_the_baseline_or_enough_speech() {
        let mut s = ToneScorer::new(Arc::new(toy_model()));
        for k in 0..300u64 {
            let mut f = frame(k * 10, true, 10.0, 20.0, 8.0);
            f.rel.baseline_ready = false;
            assert_eq!(s.push(&f), 0.0);
        }
        s.reset();
        // 400 ms of speech is under min_speech_ms.
        for k in 0..40u64 {
            assert_eq!(s.push(&frame(k * 10, true, 10.0, 20.0, 8.0)), 0.0);
        }
        assert!(s.push(&frame(400, true, 10.0, 20.0, 8.0)) == 0.0);
        for k in 41..60u64 {
            s.push(&frame(k * 10, true, 10.0, 20.0, 8.0));
        }
        assert!(s.score() > 0.9);
    }

    /// The toy model with a prior that reads a wide F0 and energy spread as anger.
    fn toy_with_prior() -> ToneModel {
        ToneModel {
            prior: Some(PriorModel {
                features: vec!["f0_sd_st".into(), "energy_sd_db".into()],
                means: vec![1.0, 3.0],
                stds: vec![1.0, 2.0],
                weights: vec![2.0, 2.0],
                bias: -3.0,
            }),
            ..toy_model()
        }
    }

    /// A frame before the baseline is ready, F0 and energy swinging by `swing`.
    fn unready(k: u64, swing: f32) -> Frame {
        let up = k % 20 < 10;
        let mut f = frame(k * 10, true, 0.0, 0.0, 0.0);
        f.rel = Relative::default();
        f.f0_hz = if up {
            150.0 * (swing / 12.0).exp2()
        } else {
            150.0
        };
        f.energy_db = if up { -20.0 + swing } else { -20.0 };
        f
    }

    #[test]
    fn a_caller_angry_from_the_first_word_is_scored_by_the_prior() {
        let model = Arc::new(toy_with_prior());
        let mut s = ToneScorer::new(model.clone());
        // Wide swings from the first word: the prior scores them before any baseline.
        let mut top = 0.0f32;
        for k in 0..200u64 {
            top = top.max(s.push(&unready(k, 8.0)));
        }
        assert!(s.on_prior());
        assert!(top > model.threshold, "prior scored {top}");
        assert!(s.holds_baseline());
        // A steady voice before the baseline scores low from the same prior.
        let mut calm = ToneScorer::new(model.clone());
        for k in 0..200u64 {
            calm.push(&unready(k, 0.5));
        }
        assert!(
            calm.score() < 0.2 && !calm.holds_baseline(),
            "{}",
            calm.score()
        );
        // Once the baseline is ready the window starts afresh on the main model.
        s.push(&frame(2000, true, 0.0, 0.0, 0.0));
        assert!(!s.on_prior());
        assert_eq!(
            s.evidence().speech_ms,
            0,
            "one frame is under min_speech_ms"
        );
        assert_eq!(s.score(), 0.0);
        // Without a prior nothing is scored before the baseline (the old behaviour).
        let mut plain = ToneScorer::new(Arc::new(toy_model()));
        for k in 0..200u64 {
            assert_eq!(plain.push(&unready(k, 8.0)), 0.0);
        }
    }

    #[test]
    fn a_prior_that_needs_a_baseline_is_refused() {
        let mut m = toy_with_prior();
        if let Some(p) = m.prior.as_mut() {
            p.features[0] = "energy_rel_db".into();
        }
        let e = ToneModel::from_json(&serde_json::to_string(&m).unwrap(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a baseline"), "{e}");
    }

    #[test]
    fn running_sums_match_a_fresh_window() {
        let model = Arc::new(toy_model());
        let mut long = ToneScorer::new(model.clone());
        let frames: Vec<Frame> = (0..5000u64)
            .map(|k| {
                let v = ((k * 2654435761) % 1000) as f32 / 100.0 - 5.0;
                frame(k * 10, k % 7 != 0, v, -v, v * 0.5)
            })
            .collect();
        for f in &frames {
            long.push(f);
        }
        // A fresh scorer over just the last window must agree.
        let mut fresh = ToneScorer::new(model);
        // The window holds the last 300 speech frames (3 s); 400 frames hold that many.
        for f in &frames[frames.len() - 400..] {
            fresh.push(f);
        }
        let (a, b) = (long.features().unwrap(), fresh.features().unwrap());
        for i in 0..N_FEATURES {
            assert!(
                (a[i] - b[i]).abs() < 1e-4,
                "{}: {} vs {}",
                FEATURE_NAMES[i],
                a[i],
                b[i]
            );
        }
    }

    #[test]
    fn the_score_holds_through_a_pause_and_a_long_silence_clears_it() {
        let model = Arc::new(toy_model());
        let mut s = ToneScorer::new(model.clone());
        // 2 s of raised voice, then a 3 s pause between sentences.
        for k in 0..200u64 {
            s.push(&frame(k * 10, true, 5.0, 10.0, 4.0));
        }
        let raised = s.score();
        assert!(raised > model.threshold, "raised voice scored {raised}");
        for k in 200..500u64 {
            assert_eq!(s.push(&frame(k * 10, false, 0.0, -30.0, 0.0)), raised);
        }
        // Calm speech after the pause displaces the raised voice from the window gradually.
        for k in 500..520u64 {
            s.push(&frame(k * 10, true, 0.0, 0.0, 0.0));
        }
        assert!(s.score() > model.threshold && s.score() <= raised);
        // A silence longer than `max_age_ms` empties the window.
        for k in 520..1200u64 {
            s.push(&frame(k * 10, false, 0.0, -30.0, 0.0));
        }
        assert_eq!(s.score(), 0.0);
        assert_eq!(s.evidence().speech_ms, 0);
    }

    #[test]
    fn twenty_ms_hops_fill_the_same_window() {
        let mut s = ToneScorer::new(Arc::new(toy_model()));
        for k in 0..400u64 {
            s.push(&frame(k * 20, true, 1.0, 1.0, 1.0));
        }
        assert_eq!(s.evidence().speech_ms, 3000);
        assert!((s.evidence().pause_ratio).abs() < 1e-6);
    }

    #[test]
    fn the_ring_holds_what_the_hop_needs_and_survives_a_stalled_clock() {
        let model = Arc::new(toy_model());
        // A silent track keeps the small initial ring.
        let mut quiet = ToneScorer::new(model.clone());
        for k in 0..1000u64 {
            quiet.push(&frame(k * 20, false, 0.0, -30.0, 0.0));
        }
        assert_eq!(quiet.ring.len(), INITIAL_SLOTS);
        // 3 s of speech at 20 ms hops is 150 slots; at 10 ms, 300 (the ceiling, 302).
        let mut at20 = ToneScorer::new(model.clone());
        for k in 0..1000u64 {
            at20.push(&frame(k * 20, true, 1.0, 1.0, 1.0));
        }
        assert!(
            (150..=256).contains(&at20.ring.len()),
            "{}",
            at20.ring.len()
        );
        assert_eq!(at20.evidence().speech_ms, 3000);
        let mut at10 = ToneScorer::new(model.clone());
        for k in 0..1000u64 {
            at10.push(&frame(k * 10, true, 1.0, 1.0, 1.0));
        }
        assert_eq!(at10.ring.len(), 302);
        assert_eq!(at10.evidence().speech_ms, 3000);
        // Media time that stops moving cannot overrun the ring: the oldest slots give way.
        let mut stalled = ToneScorer::new(model);
        for _ in 0..1000 {
            stalled.push(&frame(5000, true, 1.0, 1.0, 1.0));
        }
        assert!(stalled.len <= stalled.ring.len() && stalled.ring.len() <= 302);
        assert!(stalled.features().is_some());
    }
}
