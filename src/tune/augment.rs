//! What a phone line does to a caller's voice, as deterministic (seeded) transforms of PCM:
//! gain, fast and slow automatic gain control, noise-suppression-like gating, additive noise
//! (babble, street, office, mains hum) at a given SNR, G.711 A-law / mu-law, band limits and
//! packet loss with concealment. `tune` trains on clips seen clean and through random
//! [`Line`]s, and the calls report replays the development calls through named ones, so the
//! tone detector is judged on what real lines deliver, not on studio audio.
//!
//! Everything is a pure function of (samples, rate, seed): the same call under the same
//! condition gives the same bits on every machine. Over 600 lines because about 200 of them
//! are tests pinning each transform's level, SNR and determinism.

use super::dataset::{Biquad, Pass};
use crate::codec::Codec;
use crate::synth::Rng;

/// Block length the level-driven transforms (AGC, gate) work in, ms.
const BLOCK_MS: u32 = 10;
/// Packet length of the loss model, ms (what telephony RTP carries).
const PACKET_MS: u32 = 20;

/// How fast an automatic gain control follows the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgcSpeed {
    /// Attack 5 ms, release 150 ms: pumps within a word (handset AGCs, WebRTC's fast path).
    Fast,
    /// Attack 300 ms, release 3 s: levels a shouted passage down over a sentence or two.
    Slow,
}

/// Background noise kinds, all synthesised here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Six speech-shaped noise talkers, each switched on and off at syllable rate.
    Babble,
    /// Low rumble (brown noise) with slow swells of passing traffic.
    Street,
    /// Pink-ish ventilation noise with keyboard clicks.
    Office,
    /// 50 Hz mains hum with its harmonics (every other line gets 60 Hz).
    Hum,
}

/// One step of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// A fixed gain, dB.
    Gain {
        /// dB.
        db: f32,
    },
    /// Automatic gain control towards -20 dBFS (at most +24 dB of boost, 30 dB of cut).
    Agc(AgcSpeed),
    /// Noise-suppression-like gating: blocks near the tracked noise floor are attenuated by
    /// up to 20 dB.
    Gate,
    /// Additive noise at an SNR against the active speech level, dB.
    Noise {
        /// What noise.
        kind: NoiseKind,
        /// Speech over noise, dB.
        snr_db: f32,
    },
    /// A G.711 round trip.
    Codec(Codec),
    /// Band limit: 4th-order Butterworth high-pass and low-pass, Hz.
    BandLimit {
        /// High-pass edge, Hz.
        low_hz: f32,
        /// Low-pass edge, Hz.
        high_hz: f32,
    },
    /// Lost 20 ms packets (bursty, Gilbert model) concealed by repeating the last packet
    /// with fading gain, then silence.
    PacketLoss {
        /// Long-run share of lost packets, 0..1.
        rate: f32,
    },
}

/// A chain of transforms applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    /// The steps.
    pub steps: Vec<Transform>,
}

/// Names accepted by [`Line::named`], in report order.
pub const CONDITIONS: [&str; 9] = [
    "clean", "gain", "agc_fast", "agc_slow", "gate", "noise10", "alaw", "loss3", "random",
];

impl Line {
    /// The untouched line.
    pub fn clean() -> Self {
        Self::default()
    }

    /// A named report condition (see [`CONDITIONS`]); `seed` varies what a condition leaves
    /// open (the noise kind and gain of `noise10`, the whole chain of `random`).
    pub fn named(name: &str, seed: u64) -> Option<Self> {
        let mut rng = Rng::new(seed ^ 0x5eed_11e5);
        let steps = match name {
            "clean" => vec![],
            "gain" => vec![Transform::Gain {
                db: if rng.next_f32() < 0.5 { -12.0 } else { 10.0 },
            }],
            "agc_fast" => vec![Transform::Agc(AgcSpeed::Fast)],
            "agc_slow" => vec![Transform::Agc(AgcSpeed::Slow)],
            "gate" => vec![
                Transform::Noise {
                    kind: NoiseKind::Office,
                    snr_db: 25.0,
                },
                Transform::Gate,
            ],
            "noise10" => vec![Transform::Noise {
                kind: noise_kind(&mut rng),
                snr_db: 10.0,
            }],
            "alaw" => vec![Transform::Codec(Codec::Alaw)],
            "loss3" => vec![Transform::PacketLoss { rate: 0.03 }],
            "random" => return Some(Self::random(seed)),
            _ => return None,
        };
        Some(Self { steps })
    }

    /// A random line as a caller might reach us through: acoustic noise (60 %, 5–30 dB SNR),
    /// a gain of ±12 dB, AGC (50 %, fast or slow), noise suppression (30 %), a band limit
    /// (50 %), A-law or mu-law, packet loss (30 %, 1–5 %).
    pub fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa11);
        let mut steps = Vec::new();
        if rng.next_f32() < 0.6 {
            steps.push(Transform::Noise {
                kind: noise_kind(&mut rng),
                snr_db: 5.0 + 25.0 * rng.next_f32(),
            });
        }
        steps.push(Transform::Gain {
            db: -12.0 + 24.0 * rng.next_f32(),
        });
        if rng.next_f32() < 0.5 {
            steps.push(Transform::Agc(if rng.next_f32() < 0.5 {
                AgcSpeed::Fast
            } else {
                AgcSpeed::Slow
            }));
        }
        if rng.next_f32() < 0.3 {
            steps.push(Transform::Gate);
        }
        if rng.next_f32() < 0.5 {
            steps.push(Transform::BandLimit {
                low_hz: 200.0 + 200.0 * rng.next_f32(),
                high_hz: 3000.0 + 600.0 * rng.next_f32(),
            });
        }
        steps.push(Transform::Codec(if rng.next_f32() < 0.5 {
            Codec::Alaw
        } else {
            Codec::Mulaw
        }));
        if rng.next_f32() < 0.3 {
            steps.push(Transform::PacketLoss {
                rate: 0.01 + 0.04 * rng.next_f32(),
            });
        }
        Self { steps }
    }

    /// The line's PCM from `pcm` (mono, `rate_hz`); `seed` drives the noise and the losses.
    pub fn apply(&self, pcm: &[i16], rate_hz: u32, seed: u64) -> Vec<i16> {
        if self.steps.is_empty() {
            return pcm.to_vec();
        }
        let rate_hz = rate_hz.max(1);
        let mut x: Vec<f32> = pcm.iter().map(|s| f32::from(*s) / 32768.0).collect();
        for (k, step) in self.steps.iter().enumerate() {
            let seed = seed
                .wrapping_add(k as u64)
                .wrapping_mul(0x2545_f491_4f6c_dd1d);
            match *step {
                Transform::Gain { db } => gain(&mut x, db),
                Transform::Agc(speed) => agc(&mut x, rate_hz, speed),
                Transform::Gate => gate(&mut x, rate_hz),
                Transform::Noise { kind, snr_db } => add_noise(&mut x, rate_hz, kind, snr_db, seed),
                Transform::Codec(codec) => {
                    for v in x.iter_mut() {
                        *v = f32::from(codec.round_trip(to_i16(*v))) / 32768.0;
                    }
                }
                Transform::BandLimit { low_hz, high_hz } => {
                    band_limit(&mut x, rate_hz, low_hz, high_hz)
                }
                Transform::PacketLoss { rate } => packet_loss(&mut x, rate_hz, rate, seed),
            }
        }
        x.into_iter().map(to_i16).collect()
    }

    /// A short description, e.g. `noise(babble, 10 dB) > agc(fast)`.
    pub fn describe(&self) -> String {
        if self.steps.is_empty() {
            return "clean".into();
        }
        let names: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s {
                Transform::Gain { db } => format!("gain({db:+.1} dB)"),
                Transform::Agc(s) => format!("agc({s:?})").to_lowercase(),
                Transform::Gate => "gate".into(),
                Transform::Noise { kind, snr_db } => {
                    format!("noise({kind:?}, {snr_db:.0} dB)").to_lowercase()
                }
                Transform::Codec(c) => c.name().into(),
                Transform::BandLimit { low_hz, high_hz } => {
                    format!("band({low_hz:.0}-{high_hz:.0} Hz)")
                }
                Transform::PacketLoss { rate } => format!("loss({:.1} %)", rate * 100.0),
            })
            .collect();
        names.join(" > ")
    }
}

fn noise_kind(rng: &mut Rng) -> NoiseKind {
    match (rng.next_f32() * 4.0) as u32 {
        0 => NoiseKind::Babble,
        1 => NoiseKind::Street,
        2 => NoiseKind::Office,
        _ => NoiseKind::Hum,
    }
}

fn to_i16(v: f32) -> i16 {
    if v.is_finite() {
        (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
    } else {
        0
    }
}

fn db_to_amp(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Multiplies by a gain in dB (saturation happens at the final conversion to 16 bits, as on a
/// real line).
pub fn gain(x: &mut [f32], db: f32) {
    let g = db_to_amp(db);
    x.iter_mut().for_each(|v| *v *= g);
}

/// Mean power of each `BLOCK_MS` block, dBFS (−120 for silence).
fn block_levels_db(x: &[f32], rate_hz: u32) -> Vec<f32> {
    let n = block_len(rate_hz, BLOCK_MS);
    x.chunks(n)
        .map(|b| {
            let p = b.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / b.len() as f64;
            (10.0 * p.max(1e-12).log10()) as f32
        })
        .collect()
}

fn block_len(rate_hz: u32, ms: u32) -> usize {
    (rate_hz as usize * ms as usize / 1000).max(1)
}

/// Applies one gain (dB) per block, interpolated linearly across each block so gain steps do
/// not click.
fn apply_block_gains(x: &mut [f32], rate_hz: u32, gains_db: &[f32]) {
    let n = block_len(rate_hz, BLOCK_MS);
    let mut prev = gains_db.first().copied().map_or(1.0, db_to_amp);
    for (b, block) in x.chunks_mut(n).enumerate() {
        let g = gains_db.get(b).copied().map_or(1.0, db_to_amp);
        let len = block.len() as f32;
        for (i, v) in block.iter_mut().enumerate() {
            *v *= prev + (g - prev) * (i as f32 + 1.0) / len;
        }
        prev = g;
    }
}

/// Automatic gain control: a gain that moves the block level towards -20 dBFS, quickly when
/// it has to come down (attack) and slowly when it may go up (release). It only adapts on
/// blocks loud enough to be speech and holds through pauses, as line AGCs with a speech gate
/// do: an angry passage is levelled down, a quiet talker brought up.
pub fn agc(x: &mut [f32], rate_hz: u32, speed: AgcSpeed) {
    const TARGET_DBFS: f32 = -20.0;
    const GATE_DBFS: f32 = -50.0;
    let (attack_ms, release_ms) = match speed {
        AgcSpeed::Fast => (5.0f32, 150.0f32),
        AgcSpeed::Slow => (300.0, 3000.0),
    };
    let block = BLOCK_MS as f32;
    let a_att = 1.0 - (-block / attack_ms).exp();
    let a_rel = 1.0 - (-block / release_ms).exp();
    let levels = block_levels_db(x, rate_hz);
    let mut g_db = 0.0f32;
    let gains: Vec<f32> = levels
        .iter()
        .map(|&level| {
            if level > GATE_DBFS {
                let want = (TARGET_DBFS - level).clamp(-30.0, 24.0);
                let a = if want < g_db { a_att } else { a_rel };
                g_db += a * (want - g_db);
            }
            g_db
        })
        .collect();
    apply_block_gains(x, rate_hz, &gains);
}

/// Noise-suppression-like gating: the noise floor is tracked as the running minimum of the
/// block level (rising 1 dB/s when nothing lower comes), and blocks within 6 dB of it are cut
/// by 20 dB, fading in up to 12 dB above it; the gain opens in 5 ms and closes in 50 ms, as
/// the suppressors in handsets and conferencing stacks do (they eat word onsets, quiet
/// syllables and breathy endings).
pub fn gate(x: &mut [f32], rate_hz: u32) {
    const CUT_DB: f32 = -20.0;
    let block = BLOCK_MS as f32;
    let rise_db = block / 1000.0;
    let (a_open, a_close) = (
        1.0 - (-block / 5.0f32).exp(),
        1.0 - (-block / 50.0f32).exp(),
    );
    let levels = block_levels_db(x, rate_hz);
    let mut floor_db = levels.first().copied().unwrap_or(-120.0);
    let mut g_db = 0.0f32;
    let gains: Vec<f32> = levels
        .iter()
        .map(|&level| {
            floor_db = (floor_db + rise_db).min(level);
            let above = level - floor_db;
            let want = if above <= 6.0 {
                CUT_DB
            } else if above >= 12.0 {
                0.0
            } else {
                CUT_DB * (12.0 - above) / 6.0
            };
            let a = if want > g_db { a_open } else { a_close };
            g_db += a * (want - g_db);
            g_db
        })
        .collect();
    apply_block_gains(x, rate_hz, &gains);
}

/// The active speech level of `x`, as mean power of the blocks within 40 dB of the loudest
/// and above the quietest tenth: pauses do not count, so an SNR means the same on a call that
/// is half silence and on a clip that is all speech.
pub fn active_power(x: &[f32], rate_hz: u32) -> f64 {
    let levels = block_levels_db(x, rate_hz);
    if levels.is_empty() {
        return 0.0;
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let max = sorted[sorted.len() - 1];
    let low = sorted[sorted.len() / 10] + 3.0;
    let keep = |l: f32| l > max - 40.0 && l > low;
    let (sum, n) = levels
        .iter()
        .filter(|l| keep(**l))
        .fold((0.0f64, 0usize), |(s, n), l| {
            (s + 10f64.powf(f64::from(*l) / 10.0), n + 1)
        });
    if n == 0 {
        10f64.powf(f64::from(max) / 10.0)
    } else {
        sum / n as f64
    }
}

/// Adds synthesised noise `snr_db` below the active speech level.
pub fn add_noise(x: &mut [f32], rate_hz: u32, kind: NoiseKind, snr_db: f32, seed: u64) {
    let speech = active_power(x, rate_hz);
    let noise = noise(kind, x.len(), rate_hz, seed);
    let p = noise
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        / noise.len().max(1) as f64;
    if p <= 0.0 || speech <= 0.0 {
        return;
    }
    let g = (speech / p / 10f64.powf(f64::from(snr_db) / 10.0)).sqrt() as f32;
    for (v, n) in x.iter_mut().zip(&noise) {
        *v += g * n;
    }
}

/// Roughly Gaussian noise, unit variance (Irwin–Hall of four uniforms).
fn gauss(rng: &mut Rng) -> f32 {
    let s: f32 = (0..4).map(|_| rng.next_f32()).sum();
    (s - 2.0) * 3f32.sqrt()
}

/// One-pole low-pass coefficient for a corner at `f_hz`.
fn one_pole(f_hz: f32, rate_hz: u32) -> f32 {
    1.0 - (-2.0 * std::f32::consts::PI * f_hz / rate_hz as f32).exp()
}

/// Noise of `kind`, `len` samples (any scale; [`add_noise`] sets the level).
pub fn noise(kind: NoiseKind, len: usize, rate_hz: u32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let rate = rate_hz as f32;
    let mut out = vec![0.0f32; len];
    match kind {
        NoiseKind::Babble => {
            // Speech-shaped: flat to ~500 Hz then falling (two one-pole stages), gated on and
            // off at syllable rate per talker, so the sum has the dips babble has.
            let a = one_pole(600.0, rate_hz);
            let syllable = (rate * 0.2) as usize;
            for _ in 0..6 {
                let (mut l1, mut l2, mut env, mut target) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                let smooth = one_pole(8.0, rate_hz);
                for (i, o) in out.iter_mut().enumerate() {
                    if i % syllable.max(1) == 0 {
                        target = if rng.next_f32() < 0.7 {
                            0.3 + rng.next_f32()
                        } else {
                            0.0
                        };
                    }
                    env += smooth * (target - env);
                    l1 += a * (gauss(&mut rng) - l1);
                    l2 += a * (l1 - l2);
                    *o += env * l2;
                }
            }
        }
        NoiseKind::Street => {
            // Brown rumble plus a broadband swell every ~8 s (a passing car).
            let (mut brown, mut hiss) = (0.0f32, 0.0f32);
            let a = one_pole(1500.0, rate_hz);
            let period = rate * (6.0 + 4.0 * rng.next_f32());
            for (i, o) in out.iter_mut().enumerate() {
                brown = 0.995 * brown + 0.1 * gauss(&mut rng);
                hiss += a * (gauss(&mut rng) - hiss);
                let phase = (i as f32 % period) / period;
                let swell = (std::f32::consts::PI * phase).sin().powi(4);
                *o = brown + (0.2 + 1.5 * swell) * hiss;
            }
        }
        NoiseKind::Office => {
            // Pink-ish (Kellet's economy filter) plus a key click ~6 times a second.
            let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
            let mut click = 0.0f32;
            for o in out.iter_mut() {
                let w = gauss(&mut rng);
                b0 = 0.99765 * b0 + w * 0.099_046;
                b1 = 0.96300 * b1 + w * 0.296_516_4;
                b2 = 0.57000 * b2 + w * 1.052_691_3;
                if rng.next_f32() < 6.0 / rate {
                    click = 4.0;
                }
                click *= 0.99;
                *o = 0.3 * (b0 + b1 + b2 + w * 0.1848) + click * gauss(&mut rng);
            }
        }
        NoiseKind::Hum => {
            let f0 = if rng.next_f32() < 0.5 { 50.0 } else { 60.0 };
            let phase: Vec<f32> = (0..40)
                .map(|_| rng.next_f32() * std::f32::consts::TAU)
                .collect();
            for (i, o) in out.iter_mut().enumerate() {
                let t = i as f32 / rate;
                *o = (1..=40)
                    .take_while(|k| (*k as f32) * f0 < rate / 2.0)
                    .map(|k| {
                        let w = 2.0 * std::f32::consts::PI * f0 * k as f32;
                        (w * t + phase[k - 1]).sin() / k as f32
                    })
                    .sum();
            }
        }
    }
    out
}

/// Band limit with 4th-order Butterworth edges (two biquads each side).
pub fn band_limit(x: &mut [f32], rate_hz: u32, low_hz: f32, high_hz: f32) {
    let nyquist = rate_hz as f32 / 2.0;
    for (kind, f_hz) in [(Pass::High, low_hz), (Pass::Low, high_hz)] {
        if !(f_hz > 0.0 && f_hz < nyquist * 0.98) {
            continue;
        }
        for q in [0.5412, 1.3066] {
            Biquad::new(kind, f_hz, q, rate_hz as f32).run(x);
        }
    }
}

/// Loses 20 ms packets at a long-run `rate` in bursts (Gilbert model: a loss is followed by
/// another with probability 0.3) and conceals each the way simple jitter buffers do: the last
/// good packet repeated at 0.7× per consecutive loss, silence from the fourth.
pub fn packet_loss(x: &mut [f32], rate_hz: u32, rate: f32, seed: u64) {
    const STAY_LOST: f32 = 0.3;
    let rate = rate.clamp(0.0, 0.9);
    let to_lost = rate * (1.0 - STAY_LOST) / (1.0 - rate);
    let n = block_len(rate_hz, PACKET_MS);
    let mut rng = Rng::new(seed);
    let mut last: Vec<f32> = vec![0.0; n];
    let mut lost_run = 0u32;
    for packet in x.chunks_mut(n) {
        let lost = rng.next_f32() < if lost_run > 0 { STAY_LOST } else { to_lost };
        if lost {
            lost_run += 1;
            let g = if lost_run <= 3 {
                0.7f32.powi(lost_run as i32)
            } else {
                0.0
            };
            for (v, l) in packet.iter_mut().zip(&last) {
                *v = g * l;
            }
        } else {
            lost_run = 0;
            last[..packet.len()].copy_from_slice(packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Segment, speech};

    const RATE: u32 = 8000;

    fn voice() -> Vec<i16> {
        speech(
            &[
                Segment::calm(2.0, 120.0),
                Segment::silence(0.5),
                Segment::agitated(2.0, 120.0),
            ],
            RATE,
            7,
        )
    }

    fn to_f(x: &[i16]) -> Vec<f32> {
        x.iter().map(|s| f32::from(*s) / 32768.0).collect()
    }

    fn power_db(x: &[f32]) -> f64 {
        let p = x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64;
        10.0 * p.max(1e-12).log10()
    }

    #[test]
    fn every_condition_is_deterministic_and_keeps_the_length() {
        let pcm = voice();
        for name in CONDITIONS {
            let line = Line::named(name, 3).unwrap();
            let a = line.apply(&pcm, RATE, 11);
            assert_eq!(a.len(), pcm.len(), "{name}");
            assert_eq!(a, line.apply(&pcm, RATE, 11), "{name}");
        }
        assert_eq!(Line::clean().apply(&pcm, RATE, 1), pcm);
        assert!(Line::named("carrier pigeon", 1).is_none());
        // Random lines differ with the seed and stay describable.
        let descriptions: std::collections::BTreeSet<String> =
            (0..20).map(|s| Line::random(s).describe()).collect();
        assert!(descriptions.len() > 10, "{descriptions:?}");
    }

    #[test]
    fn gain_moves_the_level_by_its_db() {
        let mut x = to_f(&voice());
        let before = power_db(&x);
        gain(&mut x, -12.0);
        assert!((power_db(&x) - before + 12.0).abs() < 0.01);
    }

    #[test]
    fn agc_levels_a_loud_and_a_quiet_talker_towards_the_same_level() {
        // Three times the clip (13.5 s): the slow AGC needs a few seconds to settle.
        let long = to_f(&voice().repeat(3));
        let quiet = {
            let mut x = long.clone();
            gain(&mut x, -20.0);
            x
        };
        let loud = long;
        let spread_before = power_db(&loud) - power_db(&quiet);
        for speed in [AgcSpeed::Fast, AgcSpeed::Slow] {
            let (mut q, mut l) = (quiet.clone(), loud.clone());
            agc(&mut q, RATE, speed);
            agc(&mut l, RATE, speed);
            let spread = (power_db(&l) - power_db(&q)).abs();
            assert!(
                spread < spread_before / 2.0,
                "{speed:?}: {spread:.1} dB apart (was {spread_before:.1})"
            );
        }
        // The fast one also flattens the calm-to-agitated rise within the clip more.
        let loud = to_f(&voice());
        let half = loud.len() / 2;
        let rise = |x: &[f32]| power_db(&x[half..]) - power_db(&x[..half]);
        let (mut f, mut s) = (loud.clone(), loud.clone());
        agc(&mut f, RATE, AgcSpeed::Fast);
        agc(&mut s, RATE, AgcSpeed::Slow);
        assert!(rise(&f) < rise(&loud) && rise(&f) < rise(&s) + 0.5);
    }

    #[test]
    fn the_gate_cuts_the_noise_floor_and_keeps_speech() {
        let mut x = to_f(&voice());
        add_noise(&mut x, RATE, NoiseKind::Office, 20.0, 5);
        let mut gated = x.clone();
        gate(&mut gated, RATE);
        // The pause (2.0–2.5 s) is noise only: cut by well over 10 dB.
        let pause = 2_050 * RATE as usize / 1000..2_450 * RATE as usize / 1000;
        let cut = power_db(&x[pause.clone()]) - power_db(&gated[pause]);
        assert!(cut > 6.0, "pause cut by {cut:.1} dB");
        // Speech loses little.
        let speech = 3_000 * RATE as usize / 1000..4_000 * RATE as usize / 1000;
        let loss = power_db(&x[speech.clone()]) - power_db(&gated[speech]);
        assert!(loss < 2.0, "speech cut by {loss:.1} dB");
    }

    #[test]
    fn noise_is_added_at_the_asked_snr_against_active_speech() {
        let clean = to_f(&voice());
        let speech = active_power(&clean, RATE);
        for kind in [
            NoiseKind::Babble,
            NoiseKind::Street,
            NoiseKind::Office,
            NoiseKind::Hum,
        ] {
            let mut x = clean.clone();
            add_noise(&mut x, RATE, kind, 10.0, 9);
            let n: Vec<f32> = x.iter().zip(&clean).map(|(a, b)| a - b).collect();
            let p = n.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n.len() as f64;
            let snr = 10.0 * (speech / p).log10();
            assert!((snr - 10.0).abs() < 0.1, "{kind:?}: {snr:.2} dB");
        }
        // Active level ignores pauses: padding with silence does not change it much.
        let mut padded = clean.clone();
        padded.extend(std::iter::repeat_n(0.0, clean.len()));
        let ratio = active_power(&padded, RATE) / speech;
        assert!((0.8..1.25).contains(&ratio), "{ratio}");
    }

    #[test]
    fn noises_have_their_character() {
        let len = 4 * RATE as usize;
        let band = |x: &[f32], lo: f32, hi: f32| {
            let mut y = x.to_vec();
            band_limit(&mut y, RATE, lo, hi);
            power_db(&y)
        };
        // Street is rumble-heavy, office and babble are not dominated by the lowest band.
        let street = noise(NoiseKind::Street, len, RATE, 1);
        assert!(band(&street, 0.0, 200.0) > band(&street, 1000.0, 3000.0));
        let babble = noise(NoiseKind::Babble, len, RATE, 1);
        assert!(band(&babble, 200.0, 1000.0) > band(&babble, 2000.0, 3800.0) + 6.0);
        // Hum is periodic at 50 or 60 Hz.
        let hum = noise(NoiseKind::Hum, len, RATE, 1);
        let lag50 = (RATE / 50) as usize;
        let lag60 = (RATE / 60) as usize;
        let periodic = |lag: usize| {
            hum.iter()
                .zip(&hum[lag..])
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / (hum.len() - lag) as f32
        };
        let rms = (hum.iter().map(|v| v * v).sum::<f32>() / hum.len() as f32).sqrt();
        assert!(periodic(lag50).min(periodic(lag60)) < 0.05 * rms);
    }

    #[test]
    fn g711_round_trips_stay_close_and_differ_between_laws() {
        let pcm = voice();
        let a = Line::named("alaw", 0).unwrap().apply(&pcm, RATE, 0);
        let u = Line {
            steps: vec![Transform::Codec(Codec::Mulaw)],
        }
        .apply(&pcm, RATE, 0);
        assert_ne!(a, u);
        let x = to_f(&pcm);
        for y in [to_f(&a), to_f(&u)] {
            let err: Vec<f32> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
            let snr = power_db(&x) - power_db(&err);
            assert!(snr > 25.0, "quantisation SNR {snr:.1} dB");
        }
    }

    #[test]
    fn band_limit_removes_what_lies_outside() {
        let tone = |f: f32| -> Vec<f32> {
            (0..RATE as usize)
                .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / RATE as f32).sin())
                .collect()
        };
        for (f, inside) in [(100.0, false), (1000.0, true), (3800.0, false)] {
            let mut x = tone(f);
            let before = power_db(&x);
            band_limit(&mut x, RATE, 300.0, 3400.0);
            let drop = before - power_db(&x[800..]);
            assert_eq!(drop < 1.0, inside, "{f} Hz dropped {drop:.1} dB");
        }
    }

    #[test]
    fn packet_loss_loses_about_the_rate_and_conceals_with_repeats() {
        let x: Vec<f32> = (0..60 * RATE as usize)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut y = x.clone();
        packet_loss(&mut y, RATE, 0.03, 4);
        let n = (RATE / 50) as usize;
        let changed = x.chunks(n).zip(y.chunks(n)).filter(|(a, b)| a != b).count();
        let share = changed as f64 / (x.len() / n) as f64;
        assert!((0.02..0.04).contains(&share), "lost {share:.3}");
        // A lost packet right after a good one is that packet at 0.7.
        let lost: Vec<bool> = x.chunks(n).zip(y.chunks(n)).map(|(a, b)| a != b).collect();
        let k = (1..lost.len()).find(|&k| lost[k] && !lost[k - 1]).unwrap();
        for i in 0..n {
            assert!((y[k * n + i] - 0.7 * x[(k - 1) * n + i]).abs() < 1e-6);
        }
    }
}
