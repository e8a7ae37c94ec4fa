//! Bringing any input rate (8..=48 kHz) to the analysis rate, 8 kHz.
//!
//! rubato's `FftFixedInOut` wants whole chunks, while callers push whatever the network
//! delivered, so input goes through a fixed internal buffer. The resampler's group delay is
//! dropped from the front of the output, so output sample `i` sits at input time `i / 8000` s
//! and frame times stay true to the media clock. All buffers are sized in [`ToAnalysisRate::new`].

use rubato::{FftFixedInOut, Resampler};

use super::{ANALYSIS_RATE_HZ, DspError};

/// Converts a stream to [`ANALYSIS_RATE_HZ`]; a pass-through when it is already there.
pub(crate) struct ToAnalysisRate {
    inner: Option<Inner>,
}

struct Inner {
    resampler: FftFixedInOut<f32>,
    input: Vec<f32>,
    filled: usize,
    output: Vec<f32>,
    /// Output samples still to drop (the resampler's delay).
    skip: usize,
}

impl std::fmt::Debug for ToAnalysisRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToAnalysisRate")
            .field("resampling", &self.inner.is_some())
            .finish()
    }
}

impl ToAnalysisRate {
    /// A converter from `sample_rate_hz`.
    pub(crate) fn new(sample_rate_hz: u32) -> Result<Self, DspError> {
        if !(8000..=48000).contains(&sample_rate_hz) {
            return Err(DspError::UnsupportedRate { sample_rate_hz });
        }
        if sample_rate_hz == ANALYSIS_RATE_HZ {
            return Ok(Self { inner: None });
        }
        // About 10 ms per chunk (rubato rounds up to a whole number of rate-ratio periods), so
        // latency stays one hop for the common rates.
        let chunk_in = (sample_rate_hz / 100) as usize;
        let resampler = FftFixedInOut::<f32>::new(
            sample_rate_hz as usize,
            ANALYSIS_RATE_HZ as usize,
            chunk_in,
            1,
        )
        .map_err(|_| DspError::UnsupportedRate { sample_rate_hz })?;
        let input = vec![0.0; resampler.input_frames_max()];
        let output = vec![0.0; resampler.output_frames_max()];
        let skip = resampler.output_delay();
        Ok(Self {
            inner: Some(Inner {
                resampler,
                input,
                filled: 0,
                output,
                skip,
            }),
        })
    }

    /// Feeds `samples` (full-scale `i16`) and hands every analysis-rate sample, scaled to
    /// [-1, 1), to `sink` in order.
    pub(crate) fn process(&mut self, samples: &[i16], mut sink: impl FnMut(f32)) {
        let Some(inner) = self.inner.as_mut() else {
            for &s in samples {
                sink(f32::from(s) / 32768.0);
            }
            return;
        };
        for &s in samples {
            inner.input[inner.filled] = f32::from(s) / 32768.0;
            inner.filled += 1;
            if inner.filled == inner.input.len() {
                inner.filled = 0;
                let produced = match inner.resampler.process_into_buffer(
                    &[&inner.input[..]],
                    &mut [&mut inner.output[..]],
                    None,
                ) {
                    Ok((_, n)) => n,
                    // Buffers are sized from the resampler itself, so this cannot happen; a
                    // dropped chunk would only cost 10 ms of analysis.
                    Err(_) => 0,
                };
                let from = inner.skip.min(produced);
                inner.skip -= from;
                for &y in &inner.output[from..produced] {
                    sink(y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, f_hz: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (10000.0 * (2.0 * std::f32::consts::PI * f_hz * i as f32 / rate as f32).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn rejects_rates_outside_the_range() {
        assert!(ToAnalysisRate::new(7999).is_err());
        assert!(ToAnalysisRate::new(48001).is_err());
    }

    #[test]
    fn resampled_tone_keeps_frequency_length_and_phase() {
        for rate in [16000u32, 24000, 44100, 48000] {
            let n = rate as usize; // 1 s
            let input = tone(rate, 440.0, n);
            let mut r = ToAnalysisRate::new(rate).unwrap();
            let mut out = Vec::new();
            // Odd-sized pushes exercise the internal buffer.
            for chunk in input.chunks(333) {
                r.process(chunk, |y| out.push(y));
            }
            assert!(
                out.len() >= 7800 && out.len() <= 8000,
                "{rate}: {}",
                out.len()
            );
            // Compare against the ideal 8 kHz tone: same phase means the delay was removed.
            let ideal = tone(8000, 440.0, out.len());
            let err: f32 = out[400..7000]
                .iter()
                .zip(&ideal[400..7000])
                .map(|(a, b)| (a - f32::from(*b) / 32768.0).abs())
                .fold(0.0, f32::max);
            assert!(err < 0.02, "{rate}: max error {err}");
        }
    }

    #[test]
    fn pushing_in_pieces_equals_pushing_at_once() {
        let input = tone(16000, 300.0, 16000);
        let mut a = ToAnalysisRate::new(16000).unwrap();
        let mut b = ToAnalysisRate::new(16000).unwrap();
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        a.process(&input, |y| oa.push(y));
        for c in input.chunks(7) {
            b.process(c, |y| ob.push(y));
        }
        assert_eq!(oa, ob);
    }
}
