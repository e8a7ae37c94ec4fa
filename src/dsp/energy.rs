//! Level measures: frame energy (dBFS), an A-weighted loudness-like level, and spectral tilt
//! (high band over low band, a vocal-effort cue).
//!
//! Loudness, tilt and the band cepstrum read the power spectrum the pitch tracker already
//! computed for the frame's analysis window, so they cost no extra FFT.

use super::ANALYSIS_RATE_HZ;

/// Level reported for digital silence, dB (also the floor of every level).
pub(crate) const FLOOR_DB: f32 = -100.0;

/// Lower edge of the tilt's low band, Hz (the telephone channel's lower edge).
const LOW_BAND_HZ: f32 = 300.0;
/// Boundary between the low and high band, Hz. Raised vocal effort shifts energy above it.
const SPLIT_HZ: f32 = 1000.0;
/// Upper edge of the high band, Hz (the telephone channel's upper edge).
const HIGH_BAND_HZ: f32 = 3400.0;

/// Band edges of the band cepstrum, Hz: eight bands over the telephone channel, narrower low
/// down where formants of raised effort move.
const CEPSTRUM_EDGES_HZ: [f32; CEPSTRUM_BANDS + 1] = [
    250.0, 500.0, 750.0, 1000.0, 1400.0, 1800.0, 2300.0, 2900.0, 3500.0,
];
/// Bands the cepstrum is taken over.
const CEPSTRUM_BANDS: usize = 8;
/// Cepstral coefficients kept (c1..c4; c0 is the level, which `energy` already measures).
pub const CEPSTRUM_LEN: usize = 4;

/// Power in dB of a mean square, floored at [`FLOOR_DB`].
pub(crate) fn power_db(mean_square: f32) -> f32 {
    (10.0 * mean_square.max(1e-10).log10()).max(FLOOR_DB)
}

/// Mean-square energy of `samples` in dBFS (a full-scale sine reads -3 dBFS).
pub(crate) fn energy_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return FLOOR_DB;
    }
    // Eight partial sums let the compiler vectorise (f32 addition is not associative).
    let mut acc = [0.0f32; 8];
    let chunks = samples.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * c[i];
        }
    }
    power_db((acc.iter().sum::<f32>() + tail) / samples.len() as f32)
}

/// Per-bin weights, built once per analyser.
#[derive(Debug)]
pub(crate) struct SpectralLevels {
    /// A-weighting power gain per bin of the one-sided spectrum, times the one-sided factor 2.
    a_weight: Vec<f32>,
    low: std::ops::Range<usize>,
    high: std::ops::Range<usize>,
    /// Bins of each cepstrum band.
    bands: [std::ops::Range<usize>; CEPSTRUM_BANDS],
    /// DCT-II basis, `dct[c][b]` for coefficient c+1 over band b, divided by the band count.
    dct: [[f32; CEPSTRUM_BANDS]; CEPSTRUM_LEN],
    /// Converts a one-sided weighted power sum into a mean square of the window.
    norm: f32,
}

/// Loudness and tilt of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Levels {
    /// A-weighted level, dB re full scale.
    pub loudness_db: f32,
    /// High band over low band, dB.
    pub tilt_db: f32,
    /// Spectral-shape coefficients c1..c4 (DCT of eight log band energies, dB): a coarse
    /// formant/effort envelope that level changes do not move.
    pub cepstrum: [f32; CEPSTRUM_LEN],
}

impl SpectralLevels {
    /// Weights for a one-sided spectrum of `fft_len` points over a window of `window_len`.
    pub(crate) fn new(fft_len: usize, window_len: usize) -> Self {
        let bins = fft_len / 2 + 1;
        let hz_per_bin = ANALYSIS_RATE_HZ as f32 / fft_len as f32;
        let a_weight = (0..bins)
            .map(|k| {
                let one_sided = if k == 0 || k == bins - 1 { 1.0 } else { 2.0 };
                one_sided * a_weight_power(k as f32 * hz_per_bin)
            })
            .collect();
        let bin = |hz: f32| (hz / hz_per_bin).round() as usize;
        let bands = std::array::from_fn(|b| {
            bin(CEPSTRUM_EDGES_HZ[b])..bin(CEPSTRUM_EDGES_HZ[b + 1]).min(bins)
        });
        let dct = std::array::from_fn(|c| {
            std::array::from_fn(|b| {
                let n = CEPSTRUM_BANDS as f32;
                (std::f32::consts::PI * (c + 1) as f32 * (b as f32 + 0.5) / n).cos() / n
            })
        });
        Self {
            a_weight,
            low: bin(LOW_BAND_HZ)..bin(SPLIT_HZ),
            high: bin(SPLIT_HZ)..bin(HIGH_BAND_HZ).min(bins),
            bands,
            dct,
            norm: 1.0 / (fft_len as f32 * window_len as f32),
        }
    }

    /// Levels from the power spectrum `|X_k|^2` (unnormalised realfft output) of the window.
    pub(crate) fn measure(&self, power: &[f32]) -> Levels {
        // Four partial sums let the compiler vectorise (f32 addition is not associative).
        let mut acc = [0.0f32; 4];
        for (p, w) in power.chunks_exact(4).zip(self.a_weight.chunks_exact(4)) {
            for i in 0..4 {
                acc[i] += p[i] * w[i];
            }
        }
        let tail = power.len() / 4 * 4;
        let weighted = acc.iter().sum::<f32>()
            + power[tail..]
                .iter()
                .zip(&self.a_weight[tail..])
                .map(|(p, w)| p * w)
                .sum::<f32>();
        let low = band_sum(power, &self.low);
        let high = band_sum(power, &self.high);
        let tilt_db = if low + high > 0.0 {
            10.0 * ((high + 1e-12) / (low + 1e-12)).log10()
        } else {
            0.0
        };
        let mut band_db = [0.0f32; CEPSTRUM_BANDS];
        for (db, band) in band_db.iter_mut().zip(&self.bands) {
            *db = power_db(band_sum(power, band) * self.norm);
        }
        let cepstrum = std::array::from_fn(|c| {
            self.dct[c]
                .iter()
                .zip(&band_db)
                .map(|(w, db)| w * db)
                .sum::<f32>()
        });
        Levels {
            loudness_db: power_db(weighted * self.norm),
            tilt_db,
            cepstrum,
        }
    }
}

fn band_sum(power: &[f32], band: &std::ops::Range<usize>) -> f32 {
    let Some(s) = power.get(band.clone()) else {
        return 0.0;
    };
    let mut acc = [0.0f32; 4];
    for c in s.chunks_exact(4) {
        for i in 0..4 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + s[s.len() / 4 * 4..].iter().sum::<f32>()
}

/// IEC 61672 A-weighting as a power gain (0 dB at 1 kHz).
fn a_weight_power(f_hz: f32) -> f32 {
    let f2 = f_hz * f_hz;
    let num = 12194.0f32.powi(2) * f2 * f2;
    let den = (f2 + 20.6f32.powi(2))
        * ((f2 + 107.7f32.powi(2)) * (f2 + 737.9f32.powi(2))).sqrt()
        * (f2 + 12194.0f32.powi(2));
    let r = num / den;
    r * r * 10f32.powf(0.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    fn power_spectrum(x: &[f32], n: usize) -> Vec<f32> {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let mut buf = vec![0.0; n];
        buf[..x.len()].copy_from_slice(x);
        let mut spec = fft.make_output_vec();
        fft.process(&mut buf, &mut spec).unwrap();
        spec.iter().map(|c| c.norm_sqr()).collect()
    }

    fn sine(f: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin())
            .collect()
    }

    #[test]
    fn full_scale_sine_is_minus_3_dbfs_and_silence_is_the_floor() {
        assert!((energy_dbfs(&sine(440.0, 1.0, 800)) + 3.01).abs() < 0.05);
        assert_eq!(energy_dbfs(&[0.0; 80]), FLOOR_DB);
        assert_eq!(energy_dbfs(&[]), FLOOR_DB);
    }

    #[test]
    fn a_weighting_is_zero_db_at_1khz_and_cuts_lows() {
        assert!((10.0 * a_weight_power(1000.0).log10()).abs() < 0.05);
        assert!((10.0 * a_weight_power(100.0).log10() + 19.1).abs() < 0.3);
    }

    #[test]
    fn loudness_of_a_1khz_tone_matches_its_energy_and_tilt_sees_the_band() {
        let lv = SpectralLevels::new(512, 320);
        let x = sine(1000.0, 0.5, 320);
        let m = lv.measure(&power_spectrum(&x, 512));
        assert!((m.loudness_db - energy_dbfs(&x)).abs() < 0.5, "{m:?}");
        let lo = lv.measure(&power_spectrum(&sine(500.0, 0.5, 320), 512));
        let hi = lv.measure(&power_spectrum(&sine(2000.0, 0.5, 320), 512));
        assert!(lo.tilt_db < -15.0 && hi.tilt_db > 15.0, "{lo:?} {hi:?}");
        // A 200 Hz tone is quieter A-weighted than its energy says.
        let low = sine(200.0, 0.5, 320);
        let ml = lv.measure(&power_spectrum(&low, 512));
        assert!(ml.loudness_db < energy_dbfs(&low) - 8.0, "{ml:?}");
    }

    /// Harmonics of 125 Hz up to the band edge, the k-th with amplitude k^-slope.
    fn harmonic(slope: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (1..28)
                    .map(|k| {
                        let f = 125.0 * k as f32;
                        amp * (k as f32).powf(-slope)
                            * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn band_cepstrum_ignores_level_and_sees_spectral_shape() {
        let lv = SpectralLevels::new(512, 320);
        let loud = lv.measure(&power_spectrum(&harmonic(1.0, 0.1, 320), 512));
        let quiet = lv.measure(&power_spectrum(&harmonic(1.0, 0.01, 320), 512));
        for c in 0..CEPSTRUM_LEN {
            assert!(
                (loud.cepstrum[c] - quiet.cepstrum[c]).abs() < 0.05,
                "{loud:?} {quiet:?}"
            );
        }
        // A steeper roll-off (less vocal effort) has more low-band weight: a higher c1.
        let steep = lv.measure(&power_spectrum(&harmonic(2.0, 0.1, 320), 512));
        assert!(
            steep.cepstrum[0] > loud.cepstrum[0] + 1.0,
            "{steep:?} {loud:?}"
        );
    }
}
