//! Sliding-window features over the last `window_s` seconds: speaking rate (nuclei per second
//! of speech), F0 range (90th − 10th percentile) and variability (standard deviation), both in
//! semitones, and the pause ratio.
//!
//! Running sums and a semitone histogram make every update O(1) plus a scan of the
//! histogram's bins; the ring and histogram are allocated once.

/// F0 histogram reference, Hz (semitone 0).
const REF_HZ: f32 = 55.0;
/// Histogram resolution, bins per semitone.
const BINS_PER_ST: f32 = 4.0;
/// Histogram size: 0..40 semitones above 55 Hz covers 55..550 Hz.
const BINS: usize = 160;
/// Rate is reported once the window holds this much speech, s; before that the last value
/// stands (a rate over a few hundred ms of speech is noise).
const MIN_SPEECH_FOR_RATE_S: f32 = 1.0;

/// One frame's contribution.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    speech: bool,
    nucleus: bool,
    /// Semitones above [`REF_HZ`], when voiced.
    st: Option<f32>,
}

/// Window results.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct WindowStats {
    pub rate_sps: f32,
    pub f0_range_st: f32,
    pub f0_var_st: f32,
    pub pause_ratio: f32,
}

/// The window.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    ring: Vec<Slot>,
    next: usize,
    filled: usize,
    hop_s: f32,
    speech: usize,
    nuclei: usize,
    voiced: usize,
    sum_st: f64,
    sum_sq_st: f64,
    hist: Vec<u32>,
    last_rate_sps: f32,
}

/// Semitones above [`REF_HZ`].
pub(crate) fn semitones(f0_hz: f32) -> f32 {
    12.0 * (f0_hz / REF_HZ).log2()
}

impl SlidingWindow {
    pub(crate) fn new(window_frames: usize, hop_s: f32) -> Self {
        Self {
            ring: vec![Slot::default(); window_frames.max(1)],
            next: 0,
            filled: 0,
            hop_s,
            speech: 0,
            nuclei: 0,
            voiced: 0,
            sum_st: 0.0,
            sum_sq_st: 0.0,
            hist: vec![0; BINS],
            last_rate_sps: 0.0,
        }
    }

    fn bin(st: f32) -> usize {
        ((st * BINS_PER_ST) as usize).min(BINS - 1)
    }

    /// Adds a frame (evicting the oldest) and returns the window's features.
    pub(crate) fn push(&mut self, speech: bool, nucleus: bool, f0_hz: f32) -> WindowStats {
        let st = (f0_hz > 0.0).then(|| semitones(f0_hz).max(0.0));
        if self.filled == self.ring.len() {
            let old = self.ring[self.next];
            self.speech -= usize::from(old.speech);
            self.nuclei -= usize::from(old.nucleus);
            if let Some(s) = old.st {
                self.voiced -= 1;
                self.sum_st -= f64::from(s);
                self.sum_sq_st -= f64::from(s) * f64::from(s);
                self.hist[Self::bin(s)] -= 1;
            }
        } else {
            self.filled += 1;
        }
        self.ring[self.next] = Slot {
            speech,
            nucleus,
            st,
        };
        self.next = (self.next + 1) % self.ring.len();
        self.speech += usize::from(speech);
        self.nuclei += usize::from(nucleus);
        if let Some(s) = st {
            self.voiced += 1;
            self.sum_st += f64::from(s);
            self.sum_sq_st += f64::from(s) * f64::from(s);
            self.hist[Self::bin(s)] += 1;
        }
        let speech_s = self.speech as f32 * self.hop_s;
        if speech_s >= MIN_SPEECH_FOR_RATE_S {
            self.last_rate_sps = self.nuclei as f32 / speech_s;
        }
        let (f0_range_st, f0_var_st) = if self.voiced >= 2 {
            let n = self.voiced as f64;
            let mean = self.sum_st / n;
            let var = (self.sum_sq_st / n - mean * mean).max(0.0);
            let [p10, p90] = self.percentiles([0.1, 0.9]);
            ((p90 - p10).max(0.0), var.sqrt() as f32)
        } else {
            (0.0, 0.0)
        };
        WindowStats {
            rate_sps: self.last_rate_sps,
            f0_range_st,
            f0_var_st,
            pause_ratio: 1.0 - self.speech as f32 / self.filled as f32,
        }
    }

    /// Semitone values (bin centres) below which fractions `qs` (ascending) of the voiced
    /// frames lie, from one scan of the histogram (a scan per fraction was most of this
    /// window's cost per frame).
    fn percentiles<const N: usize>(&self, qs: [f32; N]) -> [f32; N] {
        let mut out = [(BINS as f32 - 0.5) / BINS_PER_ST; N];
        let targets = qs.map(|q| (q * self.voiced as f32).ceil().max(1.0) as u32);
        let mut k = 0;
        let mut acc = 0;
        for (i, &c) in self.hist.iter().enumerate() {
            acc += c;
            while k < N && acc >= targets[k] {
                out[k] = (i as f32 + 0.5) / BINS_PER_ST;
                k += 1;
            }
            if k == N {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_pitch_has_no_range_and_a_fifth_apart_has_seven_semitones() {
        let mut w = SlidingWindow::new(100, 0.01);
        let mut s = WindowStats::default();
        for _ in 0..100 {
            s = w.push(true, false, 200.0);
        }
        assert!(s.f0_range_st < 0.3 && s.f0_var_st < 0.01, "{s:?}");
        for i in 0..100 {
            s = w.push(true, false, if i % 2 == 0 { 200.0 } else { 300.0 });
        }
        // 300/200 is 7.02 semitones; the histogram quantises to 0.25 st.
        assert!((s.f0_range_st - 7.02).abs() < 0.3, "{s:?}");
        assert!((s.f0_var_st - 3.51).abs() < 0.05, "{s:?}");
    }

    /// The single-scan percentiles against the plain per-fraction scan they replaced.
    #[test]
    fn one_scan_percentiles_equal_one_scan_per_fraction() {
        fn reference(w: &SlidingWindow, q: f32) -> f32 {
            let target = (q * w.voiced as f32).ceil().max(1.0) as u32;
            let mut acc = 0;
            for (i, &c) in w.hist.iter().enumerate() {
                acc += c;
                if acc >= target {
                    return (i as f32 + 0.5) / BINS_PER_ST;
                }
            }
            (BINS as f32 - 0.5) / BINS_PER_ST
        }
        let mut w = SlidingWindow::new(50, 0.02);
        let mut seed = 7u32;
        for i in 0..400 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Voiced 60..700 Hz (beyond the histogram's top too), with unvoiced runs.
            let f0 = if i % 7 < 2 {
                0.0
            } else {
                60.0 + (seed >> 8) as f32 % 640.0
            };
            w.push(true, false, f0);
            let got = w.percentiles([0.1, 0.9]);
            let want = [reference(&w, 0.1), reference(&w, 0.9)];
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "frame {i}");
        }
    }

    #[test]
    fn pause_ratio_and_rate_over_the_window() {
        let mut w = SlidingWindow::new(300, 0.01);
        let mut s = WindowStats::default();
        // 2 s of speech with a nucleus every 20 frames (5/s), then 1 s of pause.
        for i in 0..200 {
            s = w.push(true, i % 20 == 0, 150.0);
        }
        assert!((s.rate_sps - 5.0).abs() < 0.01, "{s:?}");
        for _ in 0..100 {
            s = w.push(false, false, 0.0);
        }
        assert!((s.pause_ratio - 1.0 / 3.0).abs() < 0.01, "{s:?}");
        assert!(
            (s.rate_sps - 5.0).abs() < 0.01,
            "rate is per second of speech: {s:?}"
        );
        // Old frames leave the window.
        for _ in 0..300 {
            s = w.push(false, false, 0.0);
        }
        assert_eq!(s.pause_ratio, 1.0);
        assert_eq!(s.f0_range_st, 0.0);
    }
}
