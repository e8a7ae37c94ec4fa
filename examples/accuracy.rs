//! Pitch, voicing and speaking-rate accuracy of `warmline::dsp` against the shared data set.
//!
//! Run: `cargo run --release --example accuracy -- /work/shared/data`
//!
//! Alignment: a frame's F0 describes the 40 ms window centred on the hop's centre, so frame
//! `k` stands for time `k·hop + hop/2`. A reference value at time `t` is compared with the
//! frame whose centre is nearest, then shifted by a lag of −1, 0 or +1 frames; the table shows
//! lag 0 and the best lag for the real-voice sets.
//!
//! Real voices (FDA, PTDB-TUG, 16 kHz) are put on the telephone channel first: resampled to
//! 8 kHz, band-passed 300-3400 Hz, G.711 mu-law round trip.

use std::path::{Path, PathBuf};

use rubato::{FftFixedIn, Resampler};
use warmline::codec::Codec;
use warmline::dsp::{self, DspConfig, Frame};

fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    let s = r.samples::<i16>().map(|s| s.unwrap()).collect();
    (s, rate)
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

/// 16 kHz (or any rate) to the telephone channel at 8 kHz.
fn telephone(samples: &[i16], rate: u32) -> Vec<i16> {
    let x: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let y = if rate == 8000 {
        x
    } else {
        let mut r = FftFixedIn::<f32>::new(rate as usize, 8000, 1024, 1, 1).unwrap();
        let delay = r.output_delay();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut buf = vec![vec![0.0f32; r.output_frames_max()]];
        while pos < x.len() + 2048 {
            let need = r.input_frames_next();
            let mut chunk = vec![0.0f32; need];
            for (i, c) in chunk.iter_mut().enumerate() {
                *c = x.get(pos + i).copied().unwrap_or(0.0);
            }
            pos += need;
            let (_, n) = r.process_into_buffer(&[chunk], &mut buf, None).unwrap();
            out.extend_from_slice(&buf[0][..n]);
        }
        let len = x.len() * 8000 / rate as usize;
        out[delay..delay + len].to_vec()
    };
    // 300-3400 Hz: two 2nd-order Butterworth high-passes and two low-passes.
    let mut filters = [
        Biquad::highpass(300.0),
        Biquad::highpass(300.0),
        Biquad::lowpass(3400.0),
        Biquad::lowpass(3400.0),
    ];
    y.iter()
        .map(|&v| {
            let mut s = v;
            for f in &mut filters {
                s = f.run(s);
            }
            Codec::Mulaw.round_trip((s * 32768.0).clamp(-32768.0, 32767.0) as i16)
        })
        .collect()
}

struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    z: [f32; 2],
}

impl Biquad {
    fn new(f: f32, high: bool) -> Self {
        let w = 2.0 * std::f32::consts::PI * f / 8000.0;
        let (sn, cs) = w.sin_cos();
        let alpha = sn / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let a0 = 1.0 + alpha;
        let b = if high {
            [(1.0 + cs) / 2.0, -(1.0 + cs), (1.0 + cs) / 2.0]
        } else {
            [(1.0 - cs) / 2.0, 1.0 - cs, (1.0 - cs) / 2.0]
        };
        Self {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [-2.0 * cs / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }
    fn highpass(f: f32) -> Self {
        Self::new(f, true)
    }
    fn lowpass(f: f32) -> Self {
        Self::new(f, false)
    }
    fn run(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

#[derive(Default, Clone, Copy)]
struct Score {
    both_voiced: usize,
    gross: usize,
    cents_sum: f64,
    fine: usize,
    frames: usize,
    voicing_errors: usize,
}

impl Score {
    fn add(&mut self, o: Score) {
        self.both_voiced += o.both_voiced;
        self.gross += o.gross;
        self.cents_sum += o.cents_sum;
        self.fine += o.fine;
        self.frames += o.frames;
        self.voicing_errors += o.voicing_errors;
    }
    fn gpe(&self) -> f64 {
        100.0 * self.gross as f64 / self.both_voiced.max(1) as f64
    }
    fn vde(&self) -> f64 {
        100.0 * self.voicing_errors as f64 / self.frames.max(1) as f64
    }
    fn cents(&self) -> f64 {
        self.cents_sum / self.fine.max(1) as f64
    }
}

/// Compares frames with a reference; reference time `t` maps to the frame whose centre is
/// nearest, plus `lag` frames.
fn score(frames: &[Frame], reference: &[(f64, f32)], hop_s: f64, lag: i64) -> Score {
    let mut s = Score::default();
    for &(t, f_ref) in reference {
        let k = ((t - hop_s / 2.0) / hop_s).round() as i64 + lag;
        let Some(f) = usize::try_from(k).ok().and_then(|k| frames.get(k)) else {
            continue;
        };
        s.frames += 1;
        let ref_voiced = f_ref > 0.0;
        if ref_voiced != f.voiced {
            s.voicing_errors += 1;
        }
        if ref_voiced && f.voiced {
            s.both_voiced += 1;
            let rel = (f.f0_hz - f_ref).abs() / f_ref;
            if rel > 0.2 {
                s.gross += 1;
            } else {
                s.fine += 1;
                s.cents_sum += f64::from(1200.0 * (f.f0_hz / f_ref).log2().abs());
            }
        }
    }
    s
}

fn wavs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    v.sort();
    v
}

fn f0_path(wav: &Path) -> PathBuf {
    wav.with_extension("f0.csv")
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data".into()),
    );
    let cfg = DspConfig::default();
    let hop_s = f64::from(cfg.hop_ms) / 1000.0;
    let verbose = std::env::var_os("VERBOSE").is_some();

    println!("## Pitch, synthetic telephone set (lag 0, frame centre)");
    println!("| condition | GPE % | VDE % | fine error (cents) | frames |");
    println!("|---|---|---|---|---|");
    for cond in ["clean", "snr20", "snr10", "snr05"] {
        let mut total = Score::default();
        for kind in ["low", "high", "sweep"] {
            let wav = root.join(format!("pitch/synthetic/syn_{kind}_{cond}.wav"));
            if !wav.is_file() {
                continue;
            }
            let (s, rate) = read_wav(&wav);
            let frames = dsp::analyze(&s, rate, &cfg).unwrap();
            let sc = score(&frames, &read_f0(&f0_path(&wav)), hop_s, 0);
            if verbose {
                println!(
                    "  {kind}_{cond}: GPE {:.2} VDE {:.2} cents {:.1}",
                    sc.gpe(),
                    sc.vde(),
                    sc.cents()
                );
            }
            total.add(sc);
        }
        println!(
            "| {cond} | {:.2} | {:.2} | {:.1} | {} |",
            total.gpe(),
            total.vde(),
            total.cents(),
            total.frames
        );
    }

    println!();
    println!("## Pitch, real voices on the telephone channel (8 kHz, 300-3400 Hz, mu-law)");
    println!("| set | lag (frames) | GPE % | VDE % | fine error (cents) | frames |");
    println!("|---|---|---|---|---|---|");
    for set in ["fda", "ptdb_tug"] {
        let dir = root.join("pitch").join(set);
        let mut per_lag = [Score::default(); 3];
        for wav in wavs(&dir) {
            let (s, rate) = read_wav(&wav);
            let tel = telephone(&s, rate);
            let frames = dsp::analyze(&tel, 8000, &cfg).unwrap();
            let reference = read_f0(&f0_path(&wav));
            for (i, lag) in [-1i64, 0, 1].into_iter().enumerate() {
                per_lag[i].add(score(&frames, &reference, hop_s, lag));
            }
            if verbose {
                let sc = score(&frames, &reference, hop_s, 0);
                println!(
                    "  {}: GPE {:.2} VDE {:.2}",
                    wav.display(),
                    sc.gpe(),
                    sc.vde()
                );
            }
        }
        for (i, lag) in [-1i64, 0, 1].into_iter().enumerate() {
            let t = per_lag[i];
            println!(
                "| {set} | {lag:+} | {:.2} | {:.2} | {:.1} | {} |",
                t.gpe(),
                t.vde(),
                t.cents(),
                t.frames
            );
        }
    }

    println!();
    println!("## Speaking rate (rate/ set)");
    let index = std::fs::read_to_string(root.join("rate/index.csv")).unwrap();
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
        if verbose {
            println!("  {}: true {syllables} est {n}", fields[0]);
        }
        est.push(n / duration_s);
        truth.push(syllables / duration_s);
        abs_err += (n - syllables).abs();
    }
    println!("| files | Pearson r (syll/s) | MAE (syllables) |");
    println!("|---|---|---|");
    println!(
        "| {} | {:.3} | {:.2} |",
        est.len(),
        pearson(&est, &truth),
        abs_err / est.len() as f64
    );
}
