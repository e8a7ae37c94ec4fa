//! Per-track prosody: voice activity, F0 and voicing, energy and loudness, vocal effort
//! (spectral tilt), speaking rate, F0 range/variability, pause ratio, and the speaker's own
//! mel-cepstrum articulation cues and the speaker's own baseline, every 20 ms hop (10 ms on
//! request).
//!
//! Pure and synchronous; everything is allocated in [`TrackAnalyzer::new`] (plus one set of
//! per-hop FFT buffers per thread, see `HopBuffers`), nothing per frame.
//! Media time comes from sample counts.
//!
//! # Analysis rate
//! Everything runs at one rate, [`ANALYSIS_RATE_HZ`] = 8 kHz. Telephone audio is 8 kHz and
//! band-limited to 300-3400 Hz, so a higher rate would only add samples with nothing in them
//! (and cost proportionally more), while a lower one would cut into the telephone band, where
//! the harmonics that carry F0 and the high band that carries vocal effort live. Wide-band input
//! (16/24/44.1/48 kHz) is brought down with rubato so every call is judged on the same band and
//! the same per-speaker statistics apply whatever the provider sends.
//!
//! # Frames
//! One [`Frame`] per hop (`hop_ms`, 20 or 10 ms). `t_ms` is the hop's start; energy and VAD
//! cover the hop itself, while F0, loudness and tilt come from a 40 ms window centred on the
//! hop's centre (enough for two periods at the 60 Hz floor). A frame is emitted once its window
//! and the pitch tracker's look-ahead (3 hops) are complete, about 90 ms after its start
//! with 20 ms hops. [`TrackAnalyzer::finish`] flushes the last ones at the end of a stream.
//!
//! Why 20 ms by default: it is the media streams' own packet size and webrtc-vad's frame, and
//! it halves the FFT work per second (the dominant cost per live call) with no loss measured:
//! on the shared data the 20 ms hop gives pitch errors as low as or lower than 10 ms (synthetic
//! GPE 0.00/0.39/1.94 % clean/10/5 dB, FDA 0.56 %) and the same tone AUC and call timings. A
//! 10 ms hop remains available for finer contours in offline work.
//!
//! Layout: `analyzer` (the per-track [`TrackAnalyzer`] that drives the rest), `resample` (to
//! 8 kHz), `vad` (webrtc-vad), `pitch` (F0 and voicing, whose FFT also feeds `energy`'s
//! loudness and tilt), `mfcc` (mel cepstrum on a tapered 32 ms FFT, speech frames only),
//! `rate` (syllable nuclei), `features` (sliding-window rate, F0 range, pause ratio),
//! `baseline` (the speaker's own normal), `csv` (the contract's feature CSV), `stage` (the
//! stages one by one for the benches). This file holds the settings and the frame types.

mod analyzer;
mod baseline;
mod csv;
mod energy;
mod features;
mod mfcc;
mod pitch;
mod rate;
mod resample;
#[doc(hidden)]
pub mod stage;
#[cfg(test)]
mod tests;
mod vad;

use serde::{Deserialize, Serialize};

pub use analyzer::{TrackAnalyzer, analyze, count_syllables};
pub use csv::write_features_csv;
pub use energy::CEPSTRUM_LEN;
pub use mfcc::MFCC_LEN;

/// The rate all analysis runs at, Hz (see the module docs for why).
pub const ANALYSIS_RATE_HZ: u32 = 8000;

/// DSP settings (`[dsp]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DspConfig {
    /// Hop between frames, ms (20, the default, or 10).
    pub hop_ms: u32,
    /// Seconds of the speaker's speech that form their baseline.
    pub baseline_speech_s: f32,
    /// Length of the sliding window for rate, F0 range/variability and pause ratio, s.
    pub window_s: f32,
    /// NCCF a frame's best period must reach to be voiced (0..1; lower = more voicing).
    pub voicing_threshold: f32,
    /// Pitch tracker cost per octave of F0 change between frames.
    pub octave_jump_cost: f32,
    /// Pitch tracker cost of a voiced/unvoiced flip.
    pub voicing_flip_cost: f32,
    /// Rise and fall (dB) that make a level peak a syllable nucleus.
    pub nucleus_prominence_db: f32,
    /// Minimum spacing of syllable nuclei, ms.
    pub nucleus_min_gap_ms: u32,
    /// Largest factor by which a frame's NCCF is raised to undo additive noise (1 = off).
    /// Noise of power N under a periodic signal of power S caps the NCCF at S / (S + N), so
    /// candidates are scaled by (S + N) / S, with N the tracked noise floor.
    pub noise_compensation: f32,
    /// NCCF bonus per octave of candidate F0, so the shortest good period wins over its
    /// multiples (sub-harmonics score as high as the true period).
    pub octave_bonus: f32,
}

impl Default for DspConfig {
    fn default() -> Self {
        Self {
            hop_ms: 20,
            baseline_speech_s: 8.0,
            window_s: 4.0,
            voicing_threshold: 0.5,
            octave_jump_cost: 0.35,
            voicing_flip_cost: 0.25,
            nucleus_prominence_db: 2.0,
            nucleus_min_gap_ms: 60,
            noise_compensation: 1.4,
            octave_bonus: 0.02,
        }
    }
}

/// A settings or input problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DspError {
    /// Input rate outside 8 kHz..=48 kHz.
    #[error("unsupported input sample rate {sample_rate_hz} Hz (8000..=48000)")]
    UnsupportedRate {
        /// The rate given.
        sample_rate_hz: u32,
    },
    /// A hop that is not 10 or 20 ms.
    #[error("unsupported hop {hop_ms} ms (10 or 20)")]
    UnsupportedHop {
        /// The hop given.
        hop_ms: u32,
    },
}

/// Features relative to the speaker's own baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Relative {
    /// Whether the baseline is complete (frozen). While false, the fields below are 0 until the
    /// speaker has 2 s of speech, then provisional values against the partial baseline.
    pub baseline_ready: bool,
    /// Semitones above the baseline median F0 (0 when unvoiced).
    pub f0_st: f32,
    /// dB above the baseline speech energy.
    pub energy_db: f32,
    /// dB above the baseline loudness.
    pub loudness_db: f32,
    /// dB of spectral tilt above baseline (positive = more high-band energy = more effort).
    pub tilt_db: f32,
    /// Speaking rate over the baseline rate.
    pub rate_ratio: f32,
    /// Band cepstrum (spectral shape) minus the baseline's, dB.
    pub cepstrum: [f32; CEPSTRUM_LEN],
    /// Mel cepstrum as z-scores against the baseline's mean and spread per coefficient, so a
    /// window's spread of these reads as "times the speaker's normal articulation movement".
    pub mfcc_z: [f32; MFCC_LEN],
}

/// One hop (20 ms by default) of one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Frame {
    /// Start of the hop, media ms.
    pub t_ms: u64,
    /// Voice activity (webrtc-vad).
    pub vad: bool,
    /// Speech for the statistics: VAD and the energy gate (above the noise floor).
    pub speech: bool,
    /// Voiced (periodic) speech.
    pub voiced: bool,
    /// F0 in Hz, 0 when unvoiced.
    pub f0_hz: f32,
    /// Frame energy, dBFS.
    pub energy_db: f32,
    /// Loudness-like perceptual level (A-weighted-ish), dB.
    pub loudness_db: f32,
    /// High-band over low-band energy, dB (vocal effort).
    pub tilt_db: f32,
    /// Syllables per second over the sliding window.
    pub rate_sps: f32,
    /// F0 range (90th minus 10th percentile) over the window, semitones.
    pub f0_range_st: f32,
    /// F0 standard deviation over the window, semitones.
    pub f0_var_st: f32,
    /// Fraction of the window without speech.
    pub pause_ratio: f32,
    /// A syllable nucleus was confirmed at this frame (it peaked a few frames earlier).
    pub nucleus: bool,
    /// Relative to the speaker's baseline.
    pub rel: Relative,
    /// Spectral shape: c1..c4 of the DCT of eight log band energies over 250-3500 Hz, dB.
    pub cepstrum: [f32; CEPSTRUM_LEN],
    /// Mel cepstrum c1..c12 of the analysis window, dB.
    pub mfcc: [f32; MFCC_LEN],
}

/// The speaker's normal voice, from their first seconds of speech.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Baseline {
    /// Median F0 of voiced frames.
    pub f0_hz: f32,
    /// MAD of F0, semitones.
    pub f0_mad_st: f32,
    /// Median energy of speech frames, dBFS.
    pub energy_db: f32,
    /// MAD of energy, dB.
    pub energy_mad_db: f32,
    /// Median loudness of speech frames.
    pub loudness_db: f32,
    /// Median tilt of speech frames.
    pub tilt_db: f32,
    /// Speaking rate, syllables per second.
    pub rate_sps: f32,
    /// Seconds of speech it was taken over.
    pub speech_s: f32,
    /// Median band cepstrum of speech frames, dB.
    pub cepstrum: [f32; CEPSTRUM_LEN],
    /// Mean mel cepstrum of speech frames, dB.
    pub mfcc_mean: [f32; MFCC_LEN],
    /// Standard deviation of the mel cepstrum over speech frames, dB (floored at 0.1 dB).
    pub mfcc_sd: [f32; MFCC_LEN],
}
