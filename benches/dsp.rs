//! Speed of the prosody DSP, single thread: the whole per-frame path on 8 kHz audio (10 s of a
//! synthetic voice with noise and pauses, pushed repeatedly into one analyser, i.e. the steady
//! state of a call), and the per-stage split. Criterion reports time per
//! 10 s of audio; the real-time factor printed first is audio seconds per CPU second.
//!
//! Run: `cargo bench --bench dsp`

use std::f32::consts::PI;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use warmline::dsp::{DspConfig, Frame, TrackAnalyzer, stage};

const SECONDS: f32 = 10.0;

/// 10 s "speech" at `rate`: 180 ms syllables of a gliding harmonic voice with 120 ms gaps and
/// a 1 s pause every 3 s, over low white noise (~35 dB SNR).
fn voice(rate: u32) -> Vec<i16> {
    let n = (rate as f32 * SECONDS) as usize;
    let mut seed = 12345u32;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let in_pause = t % 3.0 > 2.0;
            let syl = t % 0.3;
            let env = if !in_pause && syl < 0.18 {
                (PI * syl / 0.18).sin()
            } else {
                0.0
            };
            let f0 = 140.0 + 30.0 * (2.0 * PI * 0.4 * t).sin();
            phase += 2.0 * PI * f0 / rate as f32;
            let v: f32 = (1..=20).map(|h| (h as f32 * phase).sin() / h as f32).sum();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed as f32 / u32::MAX as f32 - 0.5) * 0.006;
            ((0.25 * env * v + noise) * 32767.0) as i16
        })
        .collect()
}

/// This thread's CPU time, s (Linux `/proc/thread-self/schedstat`), so the real-time factor
/// is not diluted by other processes on a shared machine. `None` elsewhere.
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn full_path(c: &mut Criterion) {
    let x = voice(8000);
    let cfg = DspConfig::default();
    let mut frames: Vec<Frame> = Vec::with_capacity(1100);
    // Real-time factor over a longer run, printed once.
    let start = Instant::now();
    let cpu0 = thread_cpu_s();
    let reps = 30;
    // One analyser over 5 minutes: the steady state of a long call (the baseline's one-off
    // median computations over the first seconds of speech are amortised away).
    let mut a = TrackAnalyzer::new(8000, &cfg).unwrap();
    for _ in 0..reps {
        frames.clear();
        a.push(&x, &mut frames);
    }
    let wall = start.elapsed().as_secs_f64();
    let audio_s = f64::from(SECONDS) * f64::from(reps);
    for (what, secs) in [
        ("wall", Some(wall)),
        ("thread CPU", thread_cpu_s().zip(cpu0).map(|(b, a)| b - a)),
    ] {
        if let Some(secs) = secs {
            println!(
                "dsp full path, 8 kHz, {what} time: {:.0}x real time ({:.2} us per 10 ms of audio)",
                audio_s / secs,
                secs * 1e6 / (audio_s * 100.0)
            );
        }
    }

    let mut g = c.benchmark_group("dsp");
    g.throughput(Throughput::Elements(1000)); // 10 ms steps of audio per 10 s
    g.bench_function("full_path_8k_10s", |b| {
        let mut a = TrackAnalyzer::new(8000, &cfg).unwrap();
        b.iter(|| {
            frames.clear();
            a.push(black_box(&x), &mut frames);
            frames.len()
        })
    });
    let x16 = voice(16000);
    g.bench_function("full_path_16k_10s", |b| {
        let mut a = TrackAnalyzer::new(16000, &cfg).unwrap();
        b.iter(|| {
            frames.clear();
            a.push(black_box(&x16), &mut frames);
            frames.len()
        })
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let x8 = voice(8000);
    let x16 = voice(16000);
    let xf: Vec<f32> = x8.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut g = c.benchmark_group("dsp_stage");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("resample_16k_to_8k", |b| {
        b.iter(|| stage::Resample::new(16000).unwrap().run(black_box(&x16)))
    });
    g.bench_function("vad", |b| {
        let mut v = stage::Vad::default();
        b.iter(|| v.run(black_box(&x8)))
    });
    g.bench_function("pitch_every_hop", |b| {
        let mut p = stage::Pitch::default();
        b.iter(|| p.run(black_box(&xf)))
    });
    g.bench_function("energy_loudness_tilt", |b| {
        let mut e = stage::Energy::new(&xf[8000..8320]);
        b.iter(|| e.run(black_box(&xf)))
    });
    g.bench_function("mfcc_every_20ms_hop", |b| {
        let mut m = stage::Mfcc::default();
        b.iter(|| m.run(black_box(&xf)))
    });
    let levels: Vec<f32> = xf
        .chunks_exact(80)
        .map(|h| 10.0 * (h.iter().map(|v| v * v).sum::<f32>() / 80.0 + 1e-10).log10())
        .collect();
    let f0: Vec<f32> = levels
        .iter()
        .map(|&l| if l > -40.0 { 140.0 } else { 0.0 })
        .collect();
    g.bench_function("rate_and_windows", |b| {
        let mut r = stage::Rate::default();
        b.iter(|| r.run(black_box(&levels), black_box(&f0)))
    });
    g.finish();
}

criterion_group!(benches, full_path, stages);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
