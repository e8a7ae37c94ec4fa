//! Deterministic synthetic speech-like audio for fixtures, the demo, tests and benchmarks.
//!
//! A glottal-pulse source with a known F0 contour, shaped by three formant resonators and a
//! syllable envelope, with pauses between phrases. Each syllable gets its own vowel (its own
//! first two formants), so the spectrum moves the way speech does: a voice whose spectrum never
//! moved would give the caller a baseline no real voice has. An "agitated" segment raises F0,
//! level, vocal effort (less glottal roll-off, brighter upper formants) and syllable rate, the
//! way an angry caller's voice changes. No recorded audio is involved, so everything generated
//! here may be committed.

/// One stretch of synthetic speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Length, seconds.
    pub duration_s: f32,
    /// Median F0, Hz.
    pub f0_hz: f32,
    /// Level relative to full scale, dB (e.g. -26).
    pub level_db: f32,
    /// Syllables per second.
    pub rate_sps: f32,
    /// Extra high-band emphasis, 0..1 (vocal effort).
    pub effort: f32,
    /// Fraction of each phrase cycle that is pause, 0..1.
    pub pause_fraction: f32,
}

impl Segment {
    /// A calm stretch of speech.
    pub fn calm(duration_s: f32, f0_hz: f32) -> Self {
        Self {
            duration_s,
            f0_hz,
            level_db: -26.0,
            rate_sps: 4.0,
            effort: 0.0,
            pause_fraction: 0.3,
        }
    }

    /// The same voice, agitated: higher, louder, brighter, faster.
    pub fn agitated(duration_s: f32, f0_hz: f32) -> Self {
        Self {
            duration_s,
            f0_hz: f0_hz * 1.35,
            level_db: -18.0,
            rate_sps: 5.5,
            effort: 1.0,
            pause_fraction: 0.12,
        }
    }

    /// Silence.
    pub fn silence(duration_s: f32) -> Self {
        Self {
            duration_s,
            f0_hz: 0.0,
            level_db: -120.0,
            rate_sps: 0.0,
            effort: 0.0,
            pause_fraction: 1.0,
        }
    }
}

/// A small deterministic PRNG (xorshift), so fixtures are identical everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new(freq_hz: f32, bw_hz: f32, rate_hz: f32) -> Self {
        let r = (-std::f32::consts::PI * bw_hz / rate_hz).exp();
        let theta = 2.0 * std::f32::consts::PI * freq_hz / rate_hz;
        Self {
            a1: 2.0 * r * theta.cos(),
            a2: -r * r,
            gain: 1.0 - r,
            y1: 0.0,
            y2: 0.0,
        }
    }
    /// Moves the resonance, keeping the filter state (used at syllable boundaries, where the
    /// envelope is silent, so no click is heard).
    fn retune(&mut self, freq_hz: f32, bw_hz: f32, rate_hz: f32) {
        let fresh = Self::new(freq_hz, bw_hz, rate_hz);
        self.a1 = fresh.a1;
        self.a2 = fresh.a2;
        self.gain = fresh.gain;
    }

    fn tick(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// First and second formants of the vowels syllables are drawn from, Hz (adult averages for
/// /i e æ ɑ o u ʌ/).
const VOWELS: [(f32, f32); 7] = [
    (300.0, 2300.0),
    (450.0, 2000.0),
    (650.0, 1750.0),
    (700.0, 1200.0),
    (500.0, 900.0),
    (350.0, 850.0),
    (600.0, 1200.0),
];

/// One-pole low-pass on the glottal pulses of a relaxed voice: its spectrum falls off towards
/// the high harmonics, as a real source does.
const GLOTTAL_ROLLOFF_CALM: f32 = 0.85;
/// The same at full vocal effort: sharper glottal closures keep more high-frequency energy,
/// which is most of what makes a raised voice sound pressed (and what real anger shows in
/// the spectral features the tone model reads).
const GLOTTAL_ROLLOFF_EFFORT: f32 = 0.5;

/// Renders segments at `sample_rate_hz` as 16-bit PCM.
pub fn speech(segments: &[Segment], sample_rate_hz: u32, seed: u64) -> Vec<i16> {
    let rate = sample_rate_hz as f32;
    let total: usize = segments
        .iter()
        .map(|s| (s.duration_s * rate) as usize)
        .sum();
    let mut out = Vec::with_capacity(total);
    let mut rng = Rng::new(seed);
    let mut formants = [
        Resonator::new(650.0, 90.0, rate),
        Resonator::new(1200.0, 110.0, rate),
        Resonator::new(2500.0, 160.0, rate),
    ];
    // Vowels come from their own generator, so the noise sequence does not depend on them.
    let mut vowel_rng = Rng::new(seed ^ 0x5EED_F0F0);
    let mut syllable: i64 = -1;
    let mut glottal = 0.0f32;
    let mut phase = 0.0f32;
    let mut t_total = 0.0f32;
    for seg in segments {
        let n = (seg.duration_s * rate) as usize;
        let amp = 10f32.powf(seg.level_db / 20.0) * 32767.0 * 50.0;
        for i in 0..n {
            let t = i as f32 / rate;
            t_total += 1.0 / rate;
            if seg.f0_hz <= 0.0 {
                out.push(0);
                continue;
            }
            // Phrases of ~2.5 s with a pause at the end; syllables inside.
            let phrase_s = 2.5;
            let in_phrase = (t % phrase_s) / phrase_s;
            let speaking = in_phrase < 1.0 - seg.pause_fraction;
            let syl = (std::f32::consts::PI * seg.rate_sps * t).sin().abs();
            // A new syllable starts where the envelope touches zero: give it a vowel.
            let k = (seg.rate_sps * t) as i64;
            if k != syllable {
                syllable = k;
                let pick =
                    ((vowel_rng.next_f32() * VOWELS.len() as f32) as usize).min(VOWELS.len() - 1);
                let (f1, f2) = VOWELS[pick];
                formants[0].retune(f1, 90.0, rate);
                formants[1].retune(f2, 110.0, rate);
            }
            let env = if speaking { syl.powf(1.5) } else { 0.0 };
            // F0: slow declination and a syllable-rate wiggle, deterministic.
            let f0 = seg.f0_hz
                * (1.0 + 0.06 * (2.0 * std::f32::consts::PI * 0.7 * t_total).sin()
                    - 0.04 * in_phrase);
            phase += f0 / rate;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            let noise = (rng.next_f32() - 0.5) * 0.02;
            // The glottal pulse loses its high harmonics less the harder the voice pushes.
            let a =
                GLOTTAL_ROLLOFF_CALM + (GLOTTAL_ROLLOFF_EFFORT - GLOTTAL_ROLLOFF_CALM) * seg.effort;
            glottal = (1.0 - a) * pulse + a * glottal;
            let src = glottal + noise;
            let mut y = 0.0;
            for (k, f) in formants.iter_mut().enumerate() {
                let w = match k {
                    0 => 1.0,
                    1 => 0.6 + 0.4 * seg.effort,
                    _ => 0.25 + 0.75 * seg.effort,
                };
                y += w * f.tick(src);
            }
            let s = (y * env * amp).clamp(-32767.0, 32767.0);
            out.push(s as i16);
        }
    }
    out
}

/// The bundled example: 24 s of calm speech, then 12 s agitated, at 8 kHz.
pub fn example_escalating_call() -> Vec<i16> {
    speech(
        &[
            Segment::silence(0.5),
            Segment::calm(23.5, 120.0),
            Segment::agitated(12.0, 120.0),
        ],
        8000,
        7,
    )
}

/// Transcript lines of the bundled example, as sidecar JSONL.
pub fn example_transcript() -> &'static str {
    concat!(
        r#"{"t_ms":2000,"speaker":"caller","text":"Hi, I'm calling about a charge on my bill.","final":true}"#,
        "\n",
        r#"{"t_ms":6000,"speaker":"agent","text":"I can help with billing. Could you confirm your account number?","final":true,"confidence":0.92}"#,
        "\n",
        r#"{"t_ms":11000,"speaker":"caller","text":"Sure, it's 4 4 1 9. There's a charge I don't recognise.","final":true}"#,
        "\n",
        r#"{"t_ms":16000,"speaker":"agent","text":"I see a charge from last week. Is there anything else I can help with?","final":true,"confidence":0.55}"#,
        "\n",
        r#"{"t_ms":21000,"speaker":"caller","text":"I want to dispute that charge and cancel my plan.","final":true}"#,
        "\n",
        r#"{"t_ms":26000,"speaker":"agent","text":"I see a charge from last week. Is there anything else I can help with?","final":true,"confidence":0.41}"#,
        "\n",
        r#"{"t_ms":29000,"speaker":"caller","text":"This is ridiculous! I said I want to cancel!","final":true}"#,
        "\n",
        r#"{"t_ms":33000,"speaker":"caller","text":"Just get me a real person, now.","final":true}"#,
        "\n",
    )
}

/// The bundled example's files, in memory: (file name, bytes). `examples/make_fixtures.rs`
/// writes them under `fixtures/demo/`; a test checks the committed copies are current.
pub fn example_files() -> Vec<(&'static str, Vec<u8>)> {
    let pcm = example_escalating_call();
    let mut wav = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // Writing to memory cannot fail for a valid spec.
    if let Ok(mut w) = hound::WavWriter::new(&mut wav, spec) {
        for s in &pcm {
            let _ = w.write_sample(*s);
        }
        let _ = w.finalize();
    }
    let mut jsonl = String::new();
    let spec = crate::protocol::RenderSpec::new(
        "CAexample000000000000000000000001",
        crate::codec::Codec::Mulaw,
        8000,
    );
    for m in crate::protocol::Provider::Twilio.render(&spec, &pcm, None) {
        if let crate::protocol::WireMessage::Text(t) = m {
            jsonl.push_str(&t);
            jsonl.push('\n');
        }
    }
    vec![
        ("escalating.wav", wav.into_inner()),
        (
            "escalating.transcript.jsonl",
            example_transcript().as_bytes().to_vec(),
        ),
        ("escalating.twilio.jsonl", jsonl.into_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = speech(&[Segment::calm(1.0, 120.0)], 8000, 1);
        let b = speech(&[Segment::calm(1.0, 120.0)], 8000, 1);
        assert_eq!(a, b);
        assert_eq!(a.len(), 8000);
        assert!(a.iter().any(|&s| s.unsigned_abs() > 1000));
    }

    #[test]
    fn the_spectrum_moves_like_speech_and_effort_brightens_it() {
        use crate::dsp::{DspConfig, TrackAnalyzer};
        let mut a = TrackAnalyzer::new(8000, &DspConfig::default()).unwrap();
        let mut frames = Vec::new();
        a.push(&speech(&[Segment::calm(12.0, 120.0)], 8000, 5), &mut frames);
        let b = a.baseline().expect("12 s of speech make a baseline");
        // Vowels change syllable by syllable: the low mel-cepstral coefficients move by dB,
        // as in real speech, not by the 0.1 dB floor of a fixed spectrum.
        assert!(b.mfcc_sd[..4].iter().all(|&sd| sd > 1.0), "{:?}", b.mfcc_sd);
        // The agitated voice has more high-band energy than the calm one (vocal effort).
        let tilt = |seg: Segment| {
            let mut a = TrackAnalyzer::new(8000, &DspConfig::default()).unwrap();
            let mut f = Vec::new();
            a.push(&speech(&[seg], 8000, 5), &mut f);
            let t: Vec<f32> = f.iter().filter(|f| f.speech).map(|f| f.tilt_db).collect();
            t.iter().sum::<f32>() / t.len().max(1) as f32
        };
        let (calm, hot) = (
            tilt(Segment::calm(6.0, 120.0)),
            tilt(Segment::agitated(6.0, 120.0)),
        );
        assert!(
            hot > calm + 3.0,
            "tilt calm {calm:.1} dB, agitated {hot:.1} dB"
        );
    }

    #[test]
    fn agitated_is_louder() {
        let rms = |v: &[i16]| {
            (v.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let calm = speech(&[Segment::calm(5.0, 120.0)], 8000, 1);
        let hot = speech(&[Segment::agitated(5.0, 120.0)], 8000, 1);
        let ratio_db = 20.0 * (rms(&hot) / rms(&calm)).log10();
        assert!(ratio_db > 6.0, "{ratio_db}");
    }

    #[test]
    fn example_transcript_parses() {
        for line in example_transcript().lines() {
            let _: crate::detect::TranscriptLine = serde_json::from_str(line).unwrap();
        }
    }
}
