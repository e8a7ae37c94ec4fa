//! Mel cepstrum of the frame's centre 32 ms: 20 triangular mel filters over 200-3600 Hz on a
//! Hann-windowed 256-point FFT, log, DCT-II, c1..c12.
//!
//! The tone model reads how much these move over a window (articulation dynamics), which
//! separates anger from other high-arousal speech better than levels do. It needs its own
//! tapered FFT: the pitch FFT is untapered (the NCCF needs the plain autocorrelation), and its
//! leakage smears exactly the band detail this is for. Computed only on frames loud enough to
//! be speech.

use std::sync::{Arc, OnceLock};

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

use super::ANALYSIS_RATE_HZ;
use super::energy::power_db;

/// Coefficients kept (c1..c12; c0 is the level, measured elsewhere).
pub const MFCC_LEN: usize = 12;
/// Samples analysed (32 ms at 8 kHz) and the FFT length.
pub(crate) const MFCC_WINDOW_LEN: usize = 256;
/// Triangular filters, spread evenly on the mel scale.
const FILTERS: usize = 20;
/// Lower and upper edge of the filterbank, Hz (inside the telephone channel).
const EDGES_HZ: (f32, f32) = (200.0, 3600.0);

/// FFT plan, taper, filterbank and DCT basis: immutable, built once per process and shared by
/// every track (one copy stays in cache instead of one per call fetched on every hop).
struct Tables {
    fft: Arc<dyn RealToComplex<f32>>,
    hann: Vec<f32>,
    /// Per filter: first bin and the triangle's weights from there.
    filters: Vec<(usize, Vec<f32>)>,
    /// DCT-II basis, `dct[c][j]` for coefficient c+1 over filter j.
    dct: [[f32; FILTERS]; MFCC_LEN],
    /// Converts a filter's power sum into a mean square of the window.
    norm: f32,
}

/// One track's buffers over the shared [`Tables`].
pub(crate) struct MelCepstrum {
    tables: &'static Tables,
    time: Vec<f32>,
    spec: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl std::fmt::Debug for MelCepstrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelCepstrum").finish_non_exhaustive()
    }
}

impl Tables {
    fn get() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(Tables::new)
    }

    fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(MFCC_WINDOW_LEN);
        let n = MFCC_WINDOW_LEN as f32;
        let hann = (0..MFCC_WINDOW_LEN)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n).cos())
            .collect();
        let bins = MFCC_WINDOW_LEN / 2 + 1;
        let hz_per_bin = ANALYSIS_RATE_HZ as f32 / n;
        let mel = |hz: f32| 2595.0 * (1.0 + hz / 700.0).log10();
        let hz_of_mel = |m: f32| 700.0 * (10f32.powf(m / 2595.0) - 1.0);
        let (m_lo, m_hi) = (mel(EDGES_HZ.0), mel(EDGES_HZ.1));
        let edge = |j: usize| hz_of_mel(m_lo + (m_hi - m_lo) * j as f32 / (FILTERS + 1) as f32);
        let filters = (0..FILTERS)
            .map(|j| {
                let (a, b, c) = (edge(j), edge(j + 1), edge(j + 2));
                let first = (a / hz_per_bin).floor() as usize + 1;
                let last = ((c / hz_per_bin).ceil() as usize).min(bins);
                let weights = (first..last)
                    .map(|k| {
                        let f = k as f32 * hz_per_bin;
                        if f <= b {
                            ((f - a) / (b - a)).max(0.0)
                        } else {
                            ((c - f) / (c - b)).max(0.0)
                        }
                    })
                    .collect();
                (first, weights)
            })
            .collect();
        let dct = std::array::from_fn(|c| {
            std::array::from_fn(|j| {
                let n = FILTERS as f32;
                2.0 * (std::f32::consts::PI * (c + 1) as f32 * (j as f32 + 0.5) / n).cos() / n
            })
        });
        Self {
            hann,
            filters,
            dct,
            norm: 2.0 / (n * n),
            fft,
        }
    }
}

impl MelCepstrum {
    pub(crate) fn new() -> Self {
        let tables = Tables::get();
        Self {
            time: tables.fft.make_input_vec(),
            spec: tables.fft.make_output_vec(),
            scratch: tables.fft.make_scratch_vec(),
            tables,
        }
    }

    /// c1..c12 of `window`'s centre [`MFCC_WINDOW_LEN`] samples (all of it when shorter).
    pub(crate) fn measure(&mut self, window: &[f32]) -> [f32; MFCC_LEN] {
        let t = self.tables;
        let skip = window.len().saturating_sub(MFCC_WINDOW_LEN) / 2;
        let x = &window[skip..window.len().min(skip + MFCC_WINDOW_LEN)];
        for ((t, &s), &w) in self.time.iter_mut().zip(x).zip(&t.hann) {
            *t = s * w;
        }
        self.time[x.len()..].iter_mut().for_each(|v| *v = 0.0);
        if t.fft
            .process_with_scratch(&mut self.time, &mut self.spec, &mut self.scratch)
            .is_err()
        {
            // Lengths are fixed at construction; an error would mean a bug.
            return [0.0; MFCC_LEN];
        }
        let mut band_db = [0.0f32; FILTERS];
        for (db, (first, weights)) in band_db.iter_mut().zip(&t.filters) {
            let e: f32 = self
                .spec
                .get(*first..*first + weights.len())
                .map_or(0.0, |s| {
                    s.iter().zip(weights).map(|(c, w)| c.norm_sqr() * w).sum()
                });
            *db = power_db(e * t.norm);
        }
        std::array::from_fn(|c| {
            t.dct[c]
                .iter()
                .zip(&band_db)
                .map(|(w, db)| w * db)
                .sum::<f32>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn harmonic(f0_hz: f32, slope: f32, amp: f32) -> Vec<f32> {
        (0..320)
            .map(|i| {
                (1..((3500.0 / f0_hz) as usize))
                    .map(|k| {
                        let f = f0_hz * k as f32;
                        amp * (k as f32).powf(-slope)
                            * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn level_does_not_move_it_and_spectral_shape_does() {
        let mut m = MelCepstrum::new();
        let loud = m.measure(&harmonic(125.0, 1.0, 0.1));
        let quiet = m.measure(&harmonic(125.0, 1.0, 0.01));
        for c in 0..MFCC_LEN {
            assert!((loud[c] - quiet[c]).abs() < 0.05, "{loud:?} {quiet:?}");
        }
        // A steeper roll-off puts more weight low: a higher c1.
        let steep = m.measure(&harmonic(125.0, 2.0, 0.1));
        assert!(steep[0] > loud[0] + 1.0, "{steep:?} {loud:?}");
    }

    #[test]
    fn silence_is_flat() {
        let mut m = MelCepstrum::new();
        // Every band sits at the level floor: no shape.
        assert!(m.measure(&[0.0; 320]).iter().all(|c| c.abs() < 1e-3));
    }
}
