//! Pitch and speaking-rate accuracy of `warmline::dsp` on the shared data, so a regression in
//! the tracker or the nucleus picker fails a test. Bounds are the targets; the full
//! table comes from `cargo run --release --example accuracy`.

use std::path::Path;

use warmline::dsp::{self, DspConfig, Frame};

use crate::common::data_dir;

fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    (r.samples::<i16>().map(|s| s.unwrap()).collect(), rate)
}

fn read_f0(path: &Path) -> Vec<(f64, f32)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.trim().split(',');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// (gross errors, frames voiced in both, voicing errors, frames). Reference time `t` is
/// compared with the frame whose centre (`t_ms + hop_ms / 2`) is nearest.
fn score(frames: &[Frame], reference: &[(f64, f32)]) -> (usize, usize, usize, usize) {
    let hop_s = match frames {
        [a, b, ..] => (b.t_ms - a.t_ms) as f64 / 1000.0,
        _ => 0.01,
    };
    let (mut gross, mut both, mut vde, mut n) = (0, 0, 0, 0);
    for &(t, f_ref) in reference {
        let k = ((t - hop_s / 2.0) / hop_s).round() as i64;
        let Some(f) = usize::try_from(k).ok().and_then(|k| frames.get(k)) else {
            continue;
        };
        n += 1;
        vde += usize::from((f_ref > 0.0) != f.voiced);
        if f_ref > 0.0 && f.voiced {
            both += 1;
            gross += usize::from((f.f0_hz - f_ref).abs() / f_ref > 0.2);
        }
    }
    (gross, both, vde, n)
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

#[test]
fn synthetic_pitch_gpe_and_vde_within_bounds() {
    // Pooled over the low, high and sweep contours, as the targets are stated.
    let root = data_dir().join("pitch/synthetic");
    let cfg = DspConfig::default();
    for (cond, max_gpe, max_vde) in [
        ("clean", 1.0, 3.0),
        ("snr10", 1.0, 5.0),
        ("snr05", 3.0, 8.0),
    ] {
        let (mut g, mut both, mut v, mut n) = (0, 0, 0, 0);
        for kind in ["low", "high", "sweep"] {
            let wav = root.join(format!("syn_{kind}_{cond}.wav"));
            let (s, rate) = read_wav(&wav);
            let frames = dsp::analyze(&s, rate, &cfg).unwrap();
            let (gi, bi, vi, ni) = score(&frames, &read_f0(&wav.with_extension("f0.csv")));
            assert!(bi > 200, "{kind}_{cond}: only {bi} voiced frames compared");
            (g, both, v, n) = (g + gi, both + bi, v + vi, n + ni);
        }
        let (gpe, vde) = (pct(g, both), pct(v, n));
        eprintln!("{cond}: GPE {gpe:.2} % VDE {vde:.2} %");
        assert!(gpe <= max_gpe, "{cond}: GPE {gpe:.2} % > {max_gpe}");
        assert!(vde <= max_vde, "{cond}: VDE {vde:.2} % > {max_vde}");
    }
}

#[test]
fn fda_real_voices_gpe_within_bounds() {
    // 16 kHz input goes through the analyser's own resampler; the FDA reference is on a
    // 15 ms grid.
    let root = data_dir().join("pitch/fda");
    let cfg = DspConfig::default();
    let (mut g, mut both) = (0, 0);
    for name in ["rl001", "rl005", "rl010", "sb001", "sb005", "sb010"] {
        let wav = root.join(format!("{name}.wav"));
        let (s, rate) = read_wav(&wav);
        let frames = dsp::analyze(&s, rate, &cfg).unwrap();
        let (gi, bi, _, _) = score(&frames, &read_f0(&wav.with_extension("f0.csv")));
        g += gi;
        both += bi;
    }
    assert!(both > 300, "only {both} voiced frames compared");
    let gpe = pct(g, both);
    eprintln!("FDA: GPE {gpe:.2} % over {both} frames");
    assert!(gpe <= 3.0, "FDA GPE {gpe:.2} %");
}

#[test]
fn speaking_rate_tracks_true_syllable_rate() {
    let root = data_dir();
    let index = std::fs::read_to_string(root.join("rate/index.csv")).unwrap();
    let cfg = DspConfig::default();
    let (mut est, mut truth, mut abs_err) = (Vec::new(), Vec::new(), 0.0);
    for line in index.lines().skip(1) {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() < 3 {
            continue;
        }
        let syllables: f64 = fields[fields.len() - 2].parse().unwrap();
        let duration_s: f64 = fields[fields.len() - 1].parse().unwrap();
        let (s, rate) = read_wav(&root.join(fields[0]));
        let n = dsp::count_syllables(&s, rate, &cfg).unwrap() as f64;
        est.push(n / duration_s);
        truth.push(syllables / duration_s);
        abs_err += (n - syllables).abs();
    }
    assert!(est.len() >= 20);
    let n = est.len() as f64;
    let (mx, my) = (est.iter().sum::<f64>() / n, truth.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in est.iter().zip(&truth) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let r = sxy / (sxx * syy).sqrt();
    let mae = abs_err / n;
    assert!(r >= 0.97, "Pearson r {r:.3}");
    assert!(mae <= 1.0, "syllable-count MAE {mae:.2}");
}
