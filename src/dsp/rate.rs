//! Syllable nuclei for speaking rate: peaks of the (40 ms window) level contour that stand
//! out from the dips around them, sit in voiced speech, clear a level threshold, and are not
//! too close to the previous nucleus.
//!
//! A streaming hysteresis peak picker: a peak is confirmed once the level has fallen
//! `prominence_db` below it, and it counts only if it also rose that much above the preceding
//! dip. Confirmation comes a few frames after the peak itself, which the sliding windows
//! tolerate.

/// Rules for a nucleus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NucleusRules {
    /// Rise above the preceding dip and fall after the peak, dB.
    pub prominence_db: f32,
    /// Minimum spacing between nuclei, frames.
    pub min_gap_frames: u64,
}

/// The streaming peak picker.
#[derive(Debug)]
pub(crate) struct NucleusPicker {
    rules: NucleusRules,
    dip_db: f32,
    peak_db: f32,
    peak_frame: u64,
    peak_voiced: bool,
    prev_voiced: bool,
    last_nucleus: Option<u64>,
    started: bool,
}

impl NucleusPicker {
    pub(crate) fn new(rules: NucleusRules) -> Self {
        Self {
            rules,
            dip_db: 0.0,
            peak_db: 0.0,
            peak_frame: 0,
            peak_voiced: false,
            prev_voiced: false,
            last_nucleus: None,
            started: false,
        }
    }

    /// Adds frame `frame` with its level, voicing and the level a nucleus must reach. Returns
    /// `true` when a nucleus is confirmed (at an earlier frame).
    pub(crate) fn push(
        &mut self,
        frame: u64,
        level_db: f32,
        voiced: bool,
        threshold_db: f32,
    ) -> bool {
        let voiced_here = voiced || self.prev_voiced;
        if self.peak_frame + 1 == frame && voiced {
            // The frame after the peak is voiced: the peak sits at a voiced onset.
            self.peak_voiced |= voiced;
        }
        self.prev_voiced = voiced;
        if !self.started {
            self.started = true;
            self.reset(frame, level_db, voiced_here);
            return false;
        }
        let mut confirmed = false;
        if self.peak_db - level_db >= self.rules.prominence_db {
            let far_enough = self
                .last_nucleus
                .is_none_or(|last| self.peak_frame >= last + self.rules.min_gap_frames);
            if self.peak_db - self.dip_db >= self.rules.prominence_db
                && self.peak_db >= threshold_db
                && self.peak_voiced
                && far_enough
            {
                self.last_nucleus = Some(self.peak_frame);
                confirmed = true;
            }
            self.reset(frame, level_db, voiced_here);
        } else if level_db <= self.dip_db {
            self.reset(frame, level_db, voiced_here);
        } else if level_db > self.peak_db {
            self.peak_db = level_db;
            self.peak_frame = frame;
            self.peak_voiced = voiced_here;
        }
        confirmed
    }

    fn reset(&mut self, frame: u64, level_db: f32, voiced: bool) {
        self.dip_db = level_db;
        self.peak_db = level_db;
        self.peak_frame = frame;
        self.peak_voiced = voiced;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(levels: &[f32], voiced: bool) -> usize {
        let mut p = NucleusPicker::new(NucleusRules {
            prominence_db: 2.0,
            min_gap_frames: 8,
        });
        levels
            .iter()
            .enumerate()
            .filter(|(i, l)| p.push(*i as u64, **l, voiced, -40.0))
            .count()
    }

    #[test]
    fn counts_prominent_voiced_peaks_only() {
        // Four bumps of 10 dB, 20 frames apart, then silence.
        let mut levels: Vec<f32> = (0..80)
            .map(|i| -30.0 + 10.0 * (std::f32::consts::PI * (i % 20) as f32 / 20.0).sin())
            .collect();
        levels.extend([-60.0; 10]);
        assert_eq!(count(&levels, true), 4);
        assert_eq!(count(&levels, false), 0);
        // Ripples of 1 dB are not syllables.
        let flat: Vec<f32> = (0..80).map(|i| -30.0 + (i % 2) as f32).collect();
        assert_eq!(count(&flat, true), 0);
        // Peaks below the threshold are not syllables.
        let quiet: Vec<f32> = levels.iter().map(|l| l - 30.0).collect();
        assert_eq!(count(&quiet, true), 0);
    }

    #[test]
    fn close_peaks_count_once() {
        // Peaks every 4 frames, under the 8-frame minimum gap.
        let mut levels: Vec<f32> = (0..40)
            .map(|i| if i % 4 == 2 { -20.0 } else { -30.0 })
            .collect();
        levels.extend([-60.0; 4]);
        assert_eq!(count(&levels, true), 5);
    }
}
