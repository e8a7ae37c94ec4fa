//! The analysis stages one by one, for the per-stage split in `benches/dsp.rs`. Not a stable
//! API; [`TrackAnalyzer`] is the way to use them together.

use super::energy::{SpectralLevels, energy_dbfs};
use super::features::SlidingWindow;
use super::pitch::{self, Candidates, PitchParams, PitchTracker, WINDOW_LEN, WindowAnalysis};
use super::rate::{NucleusPicker, NucleusRules};
use super::resample::ToAnalysisRate;
use super::vad::VoiceDetector;
use super::{DspError, mfcc};

/// Input rate to 8 kHz.
#[derive(Debug)]
pub struct Resample(ToAnalysisRate);

impl Resample {
    /// A converter from `sample_rate_hz`.
    pub fn new(sample_rate_hz: u32) -> Result<Self, DspError> {
        ToAnalysisRate::new(sample_rate_hz).map(Self)
    }
    /// Converts `samples`; returns the sum of the output (so nothing is optimised away).
    pub fn run(&mut self, samples: &[i16]) -> f32 {
        let mut acc = 0.0;
        self.0.process(samples, |y| acc += y.iter().sum::<f32>());
        acc
    }
}

/// webrtc-vad on 10 ms hops of 8 kHz audio.
#[derive(Debug)]
pub struct Vad(VoiceDetector);

impl Default for Vad {
    fn default() -> Self {
        Self(VoiceDetector::new())
    }
}

impl Vad {
    /// Speech hops in `samples`.
    pub fn run(&mut self, samples: &[i16]) -> usize {
        samples
            .chunks_exact(80)
            .filter(|h| self.0.is_speech(h))
            .count()
    }
}

/// Window FFT, NCCF candidates and the Viterbi tracker on every 10 ms hop (no gating).
#[derive(Debug)]
pub struct Pitch {
    window: WindowAnalysis,
    tracker: PitchTracker,
    cands: Candidates,
}

impl Default for Pitch {
    fn default() -> Self {
        Self {
            window: WindowAnalysis::new(),
            tracker: PitchTracker::new(PitchParams::default()),
            cands: Candidates::default(),
        }
    }
}

impl Pitch {
    /// Tracks `x` (8 kHz, ±1); returns the sum of the decided F0s.
    pub fn run(&mut self, x: &[f32]) -> f32 {
        let mut acc = 0.0;
        for w in x.windows(WINDOW_LEN).step_by(80) {
            self.window.load(w);
            self.window.candidates(&mut self.cands);
            acc += self.tracker.push(&self.cands, 0.0).unwrap_or(0.0);
        }
        acc
    }
}

/// Hop energy plus loudness and tilt from an (already computed) power spectrum.
#[derive(Debug)]
pub struct Energy {
    window: WindowAnalysis,
    levels: SpectralLevels,
}

impl Energy {
    /// Levels over the spectrum of `window` (one 40 ms window).
    pub fn new(window: &[f32]) -> Self {
        let mut w = WindowAnalysis::new();
        w.load(window);
        Self {
            window: w,
            levels: SpectralLevels::new(pitch::FFT_LEN, WINDOW_LEN),
        }
    }
    /// Energy of every hop of `x` and loudness/tilt once per hop; returns a sum.
    pub fn run(&mut self, x: &[f32]) -> f32 {
        x.chunks_exact(80)
            .map(|h| {
                let l = self.levels.measure(self.window.power());
                energy_dbfs(h) + l.loudness_db + l.tilt_db
            })
            .sum()
    }
}

/// The mel cepstrum (its own tapered 256-point FFT) on every 20 ms hop.
#[derive(Debug)]
pub struct Mfcc(mfcc::MelCepstrum);

impl Default for Mfcc {
    fn default() -> Self {
        Self(mfcc::MelCepstrum::new())
    }
}

impl Mfcc {
    /// c1..c12 of every 20 ms hop's 40 ms window of `x`; returns a sum.
    pub fn run(&mut self, x: &[f32]) -> f32 {
        x.windows(WINDOW_LEN)
            .step_by(160)
            .map(|w| self.0.measure(w).iter().sum::<f32>())
            .sum()
    }
}

/// Nucleus picking plus the sliding-window statistics, per frame.
#[derive(Debug)]
pub struct Rate {
    picker: NucleusPicker,
    stats: SlidingWindow,
    frame: u64,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            picker: NucleusPicker::new(NucleusRules {
                prominence_db: 2.0,
                min_gap_frames: 10,
            }),
            stats: SlidingWindow::new(400, 0.01),
            frame: 0,
        }
    }
}

impl Rate {
    /// Runs over per-frame levels (dB) and F0s (0 = unvoiced); returns the nuclei found.
    pub fn run(&mut self, levels_db: &[f32], f0_hz: &[f32]) -> usize {
        let mut n = 0;
        for (&l, &f) in levels_db.iter().zip(f0_hz) {
            let nucleus = self.picker.push(self.frame, l, f > 0.0, -50.0);
            self.frame += 1;
            n += usize::from(nucleus);
            self.stats.push(l > -50.0, nucleus, f);
        }
        n
    }
}
