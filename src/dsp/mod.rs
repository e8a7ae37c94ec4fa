//! Per-track prosody: voice activity, F0 and voicing, energy and loudness, vocal effort
//! (spectral tilt), speaking rate, F0 range/variability, pause ratio, and the speaker's own
//! baseline, every 10 ms hop.
//!
//! Pure and synchronous; everything is allocated in [`TrackAnalyzer::new`], nothing per frame.
//! Media time comes from sample counts.
//!
//! (Interface settled; the analysis itself is being filled in.)

use serde::{Deserialize, Serialize};

/// DSP settings (`[dsp]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DspConfig {
    /// Hop between frames, ms (10 or 20).
    pub hop_ms: u32,
    /// Seconds of the speaker's speech that form their baseline.
    pub baseline_speech_s: f32,
}

impl Default for DspConfig {
    fn default() -> Self {
        Self {
            hop_ms: 10,
            baseline_speech_s: 8.0,
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
    /// Whether the baseline is established (otherwise the fields below are 0).
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
}

/// One 10 ms hop of one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Frame {
    /// Start of the hop, media ms.
    pub t_ms: u64,
    /// Voice activity (webrtc-vad).
    pub vad: bool,
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
    /// Relative to the speaker's baseline.
    pub rel: Relative,
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
}

/// Analyses one track.
#[derive(Debug)]
pub struct TrackAnalyzer {
    hop_samples: usize,
    hop_ms: u32,
    acc: Vec<f32>,
    t_ms: u64,
}

impl TrackAnalyzer {
    /// An analyser for PCM at `sample_rate_hz`.
    pub fn new(sample_rate_hz: u32, cfg: &DspConfig) -> Result<Self, DspError> {
        if !(8000..=48000).contains(&sample_rate_hz) {
            return Err(DspError::UnsupportedRate { sample_rate_hz });
        }
        if cfg.hop_ms != 10 && cfg.hop_ms != 20 {
            return Err(DspError::UnsupportedHop { hop_ms: cfg.hop_ms });
        }
        let hop_samples = (sample_rate_hz * cfg.hop_ms / 1000) as usize;
        Ok(Self {
            hop_samples,
            hop_ms: cfg.hop_ms,
            acc: Vec::with_capacity(hop_samples),
            t_ms: 0,
        })
    }

    /// Feeds samples; appends one [`Frame`] per completed hop to `out`.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<Frame>) {
        for &s in samples {
            self.acc.push(f32::from(s) / 32768.0);
            if self.acc.len() == self.hop_samples {
                let e = self.acc.iter().map(|x| x * x).sum::<f32>() / self.hop_samples as f32;
                let energy_db = 10.0 * (e + 1e-10).log10();
                out.push(Frame {
                    t_ms: self.t_ms,
                    vad: energy_db > -50.0,
                    energy_db,
                    loudness_db: energy_db,
                    ..Default::default()
                });
                self.acc.clear();
                self.t_ms += u64::from(self.hop_ms);
            }
        }
    }

    /// The speaker's baseline, once established.
    pub fn baseline(&self) -> Option<Baseline> {
        None
    }
}

/// Writes the contract's per-frame CSV (placeholder until the full feature set lands).
pub fn write_features_csv<W: std::io::Write>(
    samples: &[i16],
    sample_rate_hz: u32,
    cfg: &DspConfig,
    mut out: W,
) -> std::io::Result<()> {
    let mut a = TrackAnalyzer::new(sample_rate_hz, cfg).map_err(std::io::Error::other)?;
    let mut frames = Vec::new();
    a.push(samples, &mut frames);
    writeln!(out, "t_ms,vad,voiced,f0_hz,energy_db,rate_sps")?;
    for f in frames {
        writeln!(
            out,
            "{},{},{},,{:.2},{:.2}",
            f.t_ms,
            u8::from(f.vad),
            u8::from(f.voiced),
            f.energy_db,
            f.rate_sps
        )?;
    }
    out.flush()
}
