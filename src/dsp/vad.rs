//! Voice activity: the one place that touches `webrtc_vad::Vad` (libfvad through FFI).
//!
//! The wrapper validates frame lengths before calling in (libfvad rejects anything but 10, 20
//! or 30 ms, and the binding indexes `buffer[0]`, so an empty slice would panic), maps the
//! binding's `Err(())` to "no speech", and makes the detector `Send` so a
//! [`TrackAnalyzer`](super::TrackAnalyzer) can live in a tokio task.

use webrtc_vad::{SampleRate, Vad, VadMode};

/// libfvad at the analysis rate, owned by exactly one analyser.
pub(crate) struct VoiceDetector {
    vad: Vad,
    /// Samples per accepted frame (10, 20 or 30 ms at 8 kHz).
    valid_lens: [usize; 3],
}

// SAFETY: `Vad` holds a `*mut Fvad` that it alone owns (created in `fvad_new`, freed in its
// `Drop`). libfvad's state is plain heap memory with no thread-local storage and no thread
// affinity, so moving the owner to another thread is sound. `VoiceDetector` is deliberately
// not `Sync`: every call goes through `&mut self`, so the state is never touched by two threads
// at once.
#[allow(unsafe_code)]
unsafe impl Send for VoiceDetector {}

impl std::fmt::Debug for VoiceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDetector").finish_non_exhaustive()
    }
}

impl VoiceDetector {
    /// A detector for 8 kHz frames. Mode "aggressive" (2): the telephone channel carries
    /// line noise and codec hiss that the lenient modes call speech.
    pub(crate) fn new() -> Self {
        Self {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate8kHz, VadMode::Aggressive),
            valid_lens: [80, 160, 240],
        }
    }

    /// Whether `frame` (8 kHz, 10/20/30 ms) holds speech. A frame of any other length, or
    /// one libfvad rejects, counts as no speech rather than an error: a VAD glitch must never
    /// stop a call's analysis.
    pub(crate) fn is_speech(&mut self, frame: &[i16]) -> bool {
        if !self.valid_lens.contains(&frame.len()) {
            return false;
        }
        self.vad.is_voice_segment(frame).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_lengths_without_panicking() {
        let mut v = VoiceDetector::new();
        assert!(!v.is_speech(&[]));
        assert!(!v.is_speech(&[1000; 79]));
        assert!(!v.is_speech(&[1000; 100]));
    }

    #[test]
    fn silence_is_not_speech_and_a_voice_like_tone_is() {
        let mut v = VoiceDetector::new();
        let silence = [0i16; 160];
        assert!(!v.is_speech(&silence));
        // Harmonic buzz at 150 Hz, a few hundred ms so the detector's state settles.
        let mut speech = 0;
        for k in 0..50 {
            let frame: Vec<i16> = (0..160)
                .map(|i| {
                    let t = (k * 160 + i) as f32 / 8000.0;
                    let s: f32 = (1..12)
                        .map(|h| {
                            (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32
                        })
                        .sum();
                    (s * 6000.0) as i16
                })
                .collect();
            speech += usize::from(v.is_speech(&frame));
        }
        assert!(speech > 40, "{speech}/50 frames speech");
    }

    #[test]
    fn is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<VoiceDetector>();
    }
}
