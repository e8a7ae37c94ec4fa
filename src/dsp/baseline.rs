//! The speaker's own baseline: medians and MADs over their first `baseline_speech_s` seconds
//! of speech, then frozen.
//!
//! Only speech frames (VAD and the energy gate) are collected, so silence and line noise do not
//! drag the levels down; each track has its own analyser, so the other party cannot pollute it.
//! Once complete the baseline never moves: a caller who gets louder and higher later must read
//! as louder and higher, not as a new normal. From [`PROVISIONAL_SPEECH_S`] of speech a
//! provisional baseline (same statistics over what has been collected, refreshed every
//! [`REFRESH_FRAMES`] speech frames) fills the relative features while `baseline_ready` is false.

use super::features::semitones;
use super::{Baseline, CEPSTRUM_LEN, MFCC_LEN};

/// Speech needed before provisional relative values are given, s.
pub(crate) const PROVISIONAL_SPEECH_S: f32 = 2.0;
/// Speech frames between refreshes of the provisional baseline.
const REFRESH_FRAMES: usize = 100;
/// Smallest mel-cepstrum spread a baseline reports, dB: a synthetic or dead-flat voice must
/// not turn the z-scores into huge numbers.
const MFCC_SD_FLOOR_DB: f32 = 0.1;

/// Collects speech frames until the baseline is complete.
#[derive(Debug)]
pub(crate) struct BaselineTracker {
    target_frames: usize,
    provisional_frames: usize,
    hop_s: f32,
    f0_st: Vec<f32>,
    energy_db: Vec<f32>,
    loudness_db: Vec<f32>,
    tilt_db: Vec<f32>,
    cepstrum: Vec<[f32; CEPSTRUM_LEN]>,
    scratch: Vec<f32>,
    /// One cepstrum coefficient's values, for its median.
    column: Vec<f32>,
    /// Running sum and sum of squares of the mel cepstrum (mean and spread need no history).
    mfcc_sum: [f64; MFCC_LEN],
    mfcc_sq: [f64; MFCC_LEN],
    nuclei: usize,
    since_refresh: usize,
    current: Option<Baseline>,
    frozen: bool,
}

impl BaselineTracker {
    pub(crate) fn new(baseline_speech_s: f32, hop_s: f32) -> Self {
        let target_frames = ((baseline_speech_s.max(0.5) / hop_s).round() as usize).max(1);
        Self {
            target_frames,
            provisional_frames: ((PROVISIONAL_SPEECH_S / hop_s) as usize).min(target_frames),
            hop_s,
            f0_st: Vec::with_capacity(target_frames),
            energy_db: Vec::with_capacity(target_frames),
            loudness_db: Vec::with_capacity(target_frames),
            tilt_db: Vec::with_capacity(target_frames),
            cepstrum: Vec::with_capacity(target_frames),
            scratch: Vec::with_capacity(target_frames),
            column: Vec::with_capacity(target_frames),
            mfcc_sum: [0.0; MFCC_LEN],
            mfcc_sq: [0.0; MFCC_LEN],
            nuclei: 0,
            since_refresh: 0,
            current: None,
            frozen: false,
        }
    }

    /// Adds a frame. Only speech frames count; `nucleus` marks a syllable nucleus confirmed
    /// at this frame.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        speech: bool,
        f0_hz: f32,
        energy_db: f32,
        loudness_db: f32,
        tilt_db: f32,
        cepstrum: [f32; CEPSTRUM_LEN],
        mfcc: &[f32; MFCC_LEN],
        nucleus: bool,
    ) {
        if self.frozen {
            return;
        }
        self.nuclei += usize::from(nucleus);
        if !speech {
            return;
        }
        if f0_hz > 0.0 {
            self.f0_st.push(semitones(f0_hz));
        }
        self.energy_db.push(energy_db);
        self.loudness_db.push(loudness_db);
        self.tilt_db.push(tilt_db);
        self.cepstrum.push(cepstrum);
        for ((sum, sq), &c) in self.mfcc_sum.iter_mut().zip(&mut self.mfcc_sq).zip(mfcc) {
            let c = f64::from(c);
            *sum += c;
            *sq += c * c;
        }
        self.since_refresh += 1;
        let n = self.energy_db.len();
        if n >= self.target_frames {
            self.current = Some(self.compute());
            self.frozen = true;
        } else if n >= self.provisional_frames && self.since_refresh >= REFRESH_FRAMES
            || n == self.provisional_frames
        {
            self.current = Some(self.compute());
            self.since_refresh = 0;
        }
    }

    /// Speech frames that complete the baseline.
    pub(crate) fn target_frames(&self) -> usize {
        self.target_frames
    }

    /// The complete, frozen baseline.
    pub(crate) fn complete(&self) -> Option<&Baseline> {
        if self.frozen {
            self.current.as_ref()
        } else {
            None
        }
    }

    /// The complete baseline or, from two seconds of speech, a provisional one.
    pub(crate) fn current(&self) -> Option<&Baseline> {
        self.current.as_ref()
    }

    fn compute(&mut self) -> Baseline {
        let speech_s = self.energy_db.len() as f32 * self.hop_s;
        let (f0_med_st, f0_mad_st) = median_mad(&self.f0_st, &mut self.scratch);
        let (energy_db, energy_mad_db) = median_mad(&self.energy_db, &mut self.scratch);
        let (loudness_db, _) = median_mad(&self.loudness_db, &mut self.scratch);
        let (tilt_db, _) = median_mad(&self.tilt_db, &mut self.scratch);
        let mut cepstrum = [0.0f32; CEPSTRUM_LEN];
        for (c, out) in cepstrum.iter_mut().enumerate() {
            // One coefficient at a time through a reused buffer: no allocation once warm.
            let mut column = std::mem::take(&mut self.column);
            column.clear();
            column.extend(self.cepstrum.iter().map(|v| v[c]));
            *out = median_mad(&column, &mut self.scratch).0;
            self.column = column;
        }
        let n = self.energy_db.len().max(1) as f64;
        let mfcc_mean = std::array::from_fn(|c| (self.mfcc_sum[c] / n) as f32);
        let mfcc_sd = std::array::from_fn(|c| {
            let m = self.mfcc_sum[c] / n;
            ((self.mfcc_sq[c] / n - m * m).max(0.0).sqrt() as f32).max(MFCC_SD_FLOOR_DB)
        });
        Baseline {
            f0_hz: if self.f0_st.is_empty() {
                0.0
            } else {
                55.0 * (f0_med_st / 12.0).exp2()
            },
            f0_mad_st,
            energy_db,
            energy_mad_db,
            loudness_db,
            tilt_db,
            rate_sps: if speech_s > 0.0 {
                self.nuclei as f32 / speech_s
            } else {
                0.0
            },
            speech_s,
            cepstrum,
            mfcc_mean,
            mfcc_sd,
        }
    }
}

/// Median and median absolute deviation of `values`, using `scratch` (capacity reserved by the
/// caller, so this does not allocate). (0, 0) for no values.
fn median_mad(values: &[f32], scratch: &mut Vec<f32>) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    scratch.clear();
    scratch.extend_from_slice(values);
    let med = median_in_place(scratch);
    for v in scratch.iter_mut() {
        *v = (*v - med).abs();
    }
    let mad = median_in_place(scratch);
    (med, mad)
}

fn median_in_place(v: &mut [f32]) -> f32 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_are_robust_to_outliers() {
        let mut s = Vec::with_capacity(8);
        let (m, d) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0], &mut s);
        assert_eq!((m, d), (3.0, 1.0));
        assert_eq!(median_mad(&[], &mut s), (0.0, 0.0));
    }

    /// One speech frame of a steady voice whose mel cepstrum alternates between 1 and 3 dB
    /// (mean 2, spread 1), with a syllable nucleus every 20 frames.
    fn normal_voice(b: &mut BaselineTracker, i: usize) {
        let mfcc = [if i.is_multiple_of(2) { 1.0 } else { 3.0 }; MFCC_LEN];
        b.push(
            true,
            120.0,
            -20.0,
            -22.0,
            -5.0,
            [0.0; CEPSTRUM_LEN],
            &mfcc,
            i.is_multiple_of(20),
        );
    }

    #[test]
    fn ignores_silence_freezes_and_gives_provisional_values_from_two_seconds() {
        let mut b = BaselineTracker::new(4.0, 0.01);
        // Lots of silence first: must not count.
        for _ in 0..1000 {
            b.push(
                false,
                0.0,
                -90.0,
                -90.0,
                0.0,
                [0.0; CEPSTRUM_LEN],
                &[0.0; MFCC_LEN],
                false,
            );
        }
        assert!(b.current().is_none());
        for i in 0..200 {
            normal_voice(&mut b, i);
        }
        let prov = *b.current().unwrap();
        assert!(b.complete().is_none());
        assert!(
            (prov.f0_hz - 120.0).abs() < 0.1 && prov.energy_db == -20.0,
            "{prov:?}"
        );
        for i in 0..200 {
            normal_voice(&mut b, i);
        }
        let done = *b.complete().unwrap();
        assert_eq!(done.energy_db, -20.0);
        assert!((done.rate_sps - 5.0).abs() < 0.01, "{done:?}");
        assert!((done.speech_s - 4.0).abs() < 1e-3);
        for c in 0..MFCC_LEN {
            assert!((done.mfcc_mean[c] - 2.0).abs() < 1e-4, "{done:?}");
            assert!((done.mfcc_sd[c] - 1.0).abs() < 1e-4, "{done:?}");
        }
        // Later shouting moves nothing.
        for _ in 0..1000 {
            b.push(
                true,
                300.0,
                -5.0,
                -5.0,
                5.0,
                [0.0; CEPSTRUM_LEN],
                &[0.0; MFCC_LEN],
                true,
            );
        }
        assert_eq!(*b.complete().unwrap(), done);
    }
}
