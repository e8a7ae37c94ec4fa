//! Unit tests of the analyser as a whole: synthetic voices, noise, levels, hops and baselines
//! through [`TrackAnalyzer`].

use super::*;
use std::f32::consts::PI;

/// Harmonics of `f0_hz` with 1/h amplitudes up to 3.6 kHz (a glottal-pulse-like buzz,
/// band-limited so it does not alias), peak `amp` of full scale.
fn buzz(f0_hz: f32, rate: u32, seconds: f32, amp: f32) -> Vec<i16> {
    let n = (rate as f32 * seconds) as usize;
    let top = ((3600.0f32).min(rate as f32 / 2.0 - 400.0) / f0_hz) as usize;
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (1..=top.max(1))
                .map(|h| (2.0 * PI * f0_hz * h as f32 * t).sin() / h as f32)
                .sum()
        })
        .collect();
    let peak = raw.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    raw.iter()
        .map(|x| (x / peak * amp * 32767.0) as i16)
        .collect()
}

fn sine(f_hz: f32, rate: u32, seconds: f32, amp: f32) -> Vec<i16> {
    (0..(rate as f32 * seconds) as usize)
        .map(|i| (amp * 32767.0 * (2.0 * PI * f_hz * i as f32 / rate as f32).sin()) as i16)
        .collect()
}

/// Deterministic white noise (xorshift), uniform, peak `amp`.
fn noise(n: usize, amp: f32, seed: u32) -> Vec<i16> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp * 32767.0) as i16
        })
        .collect()
}

/// The 10 ms hop: these tests index frames by 10 ms and cover the finer hop, which
/// also exercises pairing hops for the 20 ms VAD.
fn ten_ms() -> DspConfig {
    DspConfig {
        hop_ms: 10,
        ..DspConfig::default()
    }
}

fn frames(samples: &[i16], rate: u32) -> Vec<Frame> {
    analyze(samples, rate, &ten_ms()).unwrap()
}

/// Median F0 of voiced frames and the voiced fraction, skipping the first and last 100 ms.
fn f0_summary(fr: &[Frame]) -> (f32, f32) {
    let inner = &fr[10..fr.len() - 10];
    let mut f0: Vec<f32> = inner.iter().filter(|f| f.voiced).map(|f| f.f0_hz).collect();
    f0.sort_by(f32::total_cmp);
    let med = f0.get(f0.len() / 2).copied().unwrap_or(0.0);
    (med, f0.len() as f32 / inner.len() as f32)
}

#[test]
fn harmonic_buzz_f0_is_right_across_the_range() {
    // Up to 700 Hz: women's raised voices (fear, shouting) go well past 450 Hz.
    for f0 in [60.0, 85.0, 120.0, 200.0, 310.0, 450.0, 560.0, 700.0] {
        let fr = frames(&buzz(f0, 8000, 1.0, 0.5), 8000);
        assert_eq!(fr.len(), 100);
        let (med, voiced) = f0_summary(&fr);
        assert!(voiced > 0.97, "{f0} Hz: voiced {voiced}");
        assert!((med - f0).abs() / f0 < 0.01, "{f0} Hz: got {med}");
        // Every voiced frame, not just the median, is within 2 %.
        for f in fr[10..90].iter().filter(|f| f.voiced) {
            assert!((f.f0_hz - f0).abs() / f0 < 0.02, "{f0} Hz: frame {f:?}");
        }
    }
}

#[test]
fn pure_sines_at_the_range_edges() {
    for f0 in [60.0, 100.0, 450.0, 700.0] {
        let (med, voiced) = f0_summary(&frames(&sine(f0, 8000, 1.0, 0.3), 8000));
        assert!(voiced > 0.97, "{f0} Hz: voiced {voiced}");
        assert!((med - f0).abs() / f0 < 0.01, "{f0} Hz: got {med}");
    }
}

#[test]
fn silence_is_unvoiced_and_at_the_floor() {
    let fr = frames(&[0; 8000], 8000);
    assert_eq!(fr.len(), 100);
    assert!(
        fr.iter()
            .all(|f| !f.voiced && !f.vad && !f.speech && f.f0_hz == 0.0)
    );
    assert!(fr.iter().all(|f| f.energy_db <= -99.0));
}

#[test]
fn dc_offset_creates_no_voicing_and_no_energy() {
    let fr = frames(&[6000; 8000], 8000);
    assert!(fr.iter().all(|f| !f.voiced && f.f0_hz == 0.0), "DC voiced");
    // After the blocker settles (~25 ms time constant) the level is far below the offset's.
    assert!(fr[20..].iter().all(|f| f.energy_db < -60.0), "{:?}", fr[20]);
}

#[test]
fn clipping_keeps_f0() {
    let clipped: Vec<i16> = buzz(140.0, 8000, 1.0, 1.0)
        .iter()
        .map(|&s| (i32::from(s) * 8).clamp(-20000, 20000) as i16)
        .collect();
    let (med, voiced) = f0_summary(&frames(&clipped, 8000));
    assert!(voiced > 0.95 && (med - 140.0).abs() < 2.0, "{med} {voiced}");
}

#[test]
fn white_noise_is_unvoiced() {
    let fr = frames(&noise(16000, 0.3, 7), 8000);
    let voiced = fr.iter().filter(|f| f.voiced).count();
    assert!(voiced <= 2, "{voiced} of {} noise frames voiced", fr.len());
}

#[test]
fn a_20_db_level_jump_reads_as_20_db() {
    let mut x = buzz(150.0, 8000, 1.0, 0.05);
    x.extend(buzz(150.0, 8000, 1.0, 0.5));
    let fr = frames(&x, 8000);
    let before = fr[50].energy_db;
    let after = fr[150].energy_db;
    assert!((after - before - 20.0).abs() < 0.5, "{before} -> {after}");
    assert!((fr[150].loudness_db - fr[50].loudness_db - 20.0).abs() < 0.5);
    // The tilt of the same voice does not depend on level.
    assert!((fr[150].tilt_db - fr[50].tilt_db).abs() < 0.5);
}

/// "Speech": 200 ms syllables of buzz at `f0_hz` with 100 ms gaps.
fn talk(f0_hz: f32, seconds: f32, amp: f32) -> Vec<i16> {
    let syl = buzz(f0_hz, 8000, 0.2, amp);
    let mut out = Vec::new();
    while (out.len() as f32) < seconds * 8000.0 {
        // A smooth envelope so each syllable is one level peak.
        out.extend(
            syl.iter()
                .enumerate()
                .map(|(i, &s)| (f32::from(s) * (PI * i as f32 / syl.len() as f32).sin()) as i16),
        );
        out.extend(noise(800, 0.001, out.len() as u32));
    }
    out
}

#[test]
fn baseline_ignores_silence_and_is_frozen_once_complete() {
    let cfg = DspConfig {
        baseline_speech_s: 3.0,
        ..ten_ms()
    };
    let mut a = TrackAnalyzer::new(8000, &cfg).unwrap();
    let mut out = Vec::new();
    a.push(&noise(8000 * 5, 0.001, 3), &mut out);
    assert!(a.baseline().is_none());
    assert!(out.iter().all(|f| !f.rel.baseline_ready));
    a.push(&talk(130.0, 8.0, 0.3), &mut out);
    let b = a.baseline().expect("baseline after 8 s of talk");
    assert!((b.f0_hz - 130.0).abs() < 2.0, "{b:?}");
    // Silence would have dragged the median energy far below the syllables' level.
    let loud: Vec<f32> = out
        .iter()
        .filter(|f| f.speech)
        .map(|f| f.energy_db)
        .collect();
    assert!(b.energy_db > -35.0, "{b:?}");
    assert!(loud.len() > 300);
    // Syllables every 300 ms are 3.3/s of time, ~5/s of speech.
    assert!(b.rate_sps > 2.5 && b.rate_sps < 6.5, "{b:?}");
    // Angry later: louder, higher. The baseline must not follow.
    out.clear();
    a.push(&talk(200.0, 5.0, 0.9), &mut out);
    assert_eq!(a.baseline(), Some(b));
    // The loudest recent frame: the middle of a syllable.
    let last = out[out.len() - 100..]
        .iter()
        .filter(|f| f.voiced)
        .max_by(|a, b| a.energy_db.total_cmp(&b.energy_db))
        .unwrap();
    assert!(last.rel.baseline_ready);
    assert!(
        (last.rel.f0_st - 12.0 * (200.0f32 / b.f0_hz).log2()).abs() < 0.5,
        "{last:?}"
    );
    assert!(last.rel.energy_db > 5.0, "{last:?}");
}

#[test]
fn a_quiet_line_still_gives_speech_and_a_baseline() {
    // RAVDESS-like calm speech sits near -48 dBFS RMS; a line 12 dB quieter puts its syllables
    // near -60 dBFS. With the absolute floor at -60 dBFS half of such a caller's speech was
    // not speech and their baseline never completed (issue #18, the `gain` line condition).
    let syl = buzz(130.0, 8000, 0.2, 0.004);
    let mut x = Vec::new();
    while x.len() < 8000 * 16 {
        x.extend(
            syl.iter()
                .enumerate()
                .map(|(i, &s)| (f32::from(s) * (PI * i as f32 / syl.len() as f32).sin()) as i16),
        );
        x.extend(noise(800, 0.00005, x.len() as u32));
    }
    let cfg = DspConfig {
        baseline_speech_s: 3.0,
        ..DspConfig::default()
    };
    let mut a = TrackAnalyzer::new(8000, &cfg).unwrap();
    let mut out = Vec::new();
    a.push(&x, &mut out);
    let speech: Vec<&Frame> = out.iter().filter(|f| f.speech).collect();
    let levels: Vec<f32> = speech.iter().map(|f| f.energy_db).collect();
    assert!(
        speech.len() * 10 > out.len() * 5,
        "{} of {} frames speech; levels {levels:?}",
        speech.len(),
        out.len()
    );
    let b = a.baseline().expect("a quiet caller still gets a baseline");
    assert!((b.f0_hz - 130.0).abs() < 3.0, "{b:?}");
}

#[test]
fn resampled_input_gives_the_same_f0() {
    for f0 in [95.0, 220.0] {
        let (base, _) = f0_summary(&frames(&buzz(f0, 8000, 1.0, 0.5), 8000));
        for rate in [16000, 44100, 48000] {
            let fr = frames(&buzz(f0, rate, 1.0, 0.5), rate);
            assert_eq!(fr.len(), 100, "{rate}");
            let (med, voiced) = f0_summary(&fr);
            assert!(voiced > 0.95, "{rate}: {voiced}");
            assert!((med - base).abs() / base < 0.005, "{rate}: {med} vs {base}");
        }
    }
}

#[test]
fn rejects_bad_settings() {
    assert!(matches!(
        TrackAnalyzer::new(96000, &ten_ms()),
        Err(DspError::UnsupportedRate {
            sample_rate_hz: 96000
        })
    ));
    let cfg = DspConfig {
        hop_ms: 15,
        ..DspConfig::default()
    };
    assert!(matches!(
        TrackAnalyzer::new(8000, &cfg),
        Err(DspError::UnsupportedHop { hop_ms: 15 })
    ));
}

#[test]
fn twenty_ms_hops_are_the_default_and_work() {
    let cfg = DspConfig::default();
    assert_eq!(cfg.hop_ms, 20);
    let fr = analyze(&buzz(180.0, 8000, 1.0, 0.5), 8000, &cfg).unwrap();
    assert_eq!(fr.len(), 50);
    assert_eq!(fr[1].t_ms, 20);
    let voiced: Vec<&Frame> = fr[5..45].iter().filter(|f| f.voiced).collect();
    assert!(voiced.len() >= 38);
    assert!(voiced.iter().all(|f| (f.f0_hz - 180.0).abs() < 3.0));
}

#[test]
fn streaming_in_small_pieces_matches_one_push() {
    let x = talk(160.0, 3.0, 0.4);
    let mut a = TrackAnalyzer::new(8000, &ten_ms()).unwrap();
    let mut pieces = Vec::new();
    for c in x.chunks(160) {
        a.push(c, &mut pieces);
    }
    a.finish(&mut pieces);
    assert_eq!(pieces, frames(&x, 8000));
}

#[test]
fn csv_has_the_contract_header_and_empty_f0_when_unvoiced() {
    let mut x = vec![0i16; 4000];
    x.extend(buzz(200.0, 8000, 0.5, 0.5));
    let mut buf = Vec::new();
    write_features_csv(&x, 8000, &ten_ms(), &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("t_ms,vad,voiced,f0_hz,energy_db,rate_sps,")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 100);
    assert_eq!(&rows[10][..4], &["100", "0", "0", ""]);
    assert_eq!(rows[80][2], "1");
    let f0: f32 = rows[80][3].parse().unwrap();
    assert!((f0 - 200.0).abs() < 2.0);
}

#[test]
fn analyzer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<TrackAnalyzer>();
}
