//! How well each tone window feature alone separates anger, clean and under phone-line
//! conditions: which features survive gain control, noise and gating (issue #18).
//!
//! Run: `cargo run --release --example feature_auc -- ../shared/data/emotion/index.csv
//! [ravdess] [clean,agc_fast,noise10,gain,gate]`
//!
//! Every RAVDESS clip is streamed as `tune` streams it (the speaker's calm clips, then the
//! clip, as one call through the engine's analyser and tone scorer), the whole call sent
//! through the named line condition first (`tune::augment::Line::named`, seeded per clip).
//! The calm material is played twice (see `clip_means`). A clip's value of a feature is the
//! mean over the clip's scored windows (clips with none are counted and left out); the table gives
//! the AUC of that value for anger vs every other emotion, and (after `/`) vs neutral+calm.
//! 0.5 = no information; below 0.5 the feature points the other way.

use std::path::Path;
use std::sync::Arc;
use warmline::detect::tone::{FEATURE_NAMES, N_FEATURES, ToneModel};
use warmline::pipeline::PipelineSettings;
use warmline::tune::augment::Line;
use warmline::tune::dataset::{self, Negatives};
use warmline::tune::{self, ClipCall, roc, stream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let index = args
        .first()
        .map_or("../shared/data/emotion/index.csv", String::as_str);
    let corpus = args.get(1).map_or("ravdess", String::as_str);
    let conditions: Vec<String> = args
        .get(2)
        .map_or("clean,agc_fast,noise10,gain,gate", String::as_str)
        .split(',')
        .map(str::to_owned)
        .collect();
    let (rows, _) = dataset::read_emotion_index(Path::new(index), Some(corpus), Negatives::All)
        .unwrap_or_else(|e| panic!("{index}: {e}"));
    let (clips, problems) = tune::load_clips(rows, true);
    assert!(problems.is_empty(), "{problems:?}");
    let live = PipelineSettings::default();
    let window = Arc::new(ToneModel::bundled());
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let neutral_calm: Vec<bool> = clips
        .iter()
        .map(|c| c.row.positive || matches!(c.row.label.as_str(), "neutral" | "calm"))
        .collect();
    let calls: Vec<ClipCall> = (0..clips.len())
        .map(|i| stream::clip_call(&clips, i, &live).expect("clip call"))
        .collect();
    let mut table: Vec<Vec<(f64, f64)>> = Vec::new();
    for cond in &conditions {
        let means: Vec<[f64; N_FEATURES]> = std::thread::scope(|s| {
            let halves: Vec<_> = (0..2)
                .map(|part| {
                    let (calls, live, window) = (&calls, &live, &window);
                    s.spawn(move || {
                        (part..calls.len())
                            .step_by(2)
                            .map(|i| clip_means(&calls[i], cond, i as u64, live, window))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let parts: Vec<Vec<_>> = halves.into_iter().map(|h| h.join().unwrap()).collect();
            (0..calls.len()).map(|i| parts[i % 2][i / 2]).collect()
        });
        let scored: Vec<bool> = means.iter().map(|m| m[0].is_finite()).collect();
        eprintln!(
            "{cond}: {} of {} clips scored",
            scored.iter().filter(|s| **s).count(),
            scored.len()
        );
        let col = (0..N_FEATURES)
            .map(|k| {
                let keep = |sel: &[bool]| -> (Vec<f64>, Vec<bool>) {
                    means
                        .iter()
                        .zip(&labels)
                        .zip(sel.iter().zip(&scored))
                        .filter(|(_, (a, b))| **a && **b)
                        .map(|((m, l), _)| (m[k], *l))
                        .unzip()
                };
                let (xa, la) = keep(&vec![true; labels.len()]);
                let all = roc::auc(&xa, &la).unwrap_or(f64::NAN);
                let (xs, ls): (Vec<f64>, Vec<bool>) = keep(&neutral_calm);
                (all, roc::auc(&xs, &ls).unwrap_or(f64::NAN))
            })
            .collect();
        table.push(col);
        eprintln!("{cond} done");
    }
    print!("| feature |");
    for c in &conditions {
        print!(" {c} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(conditions.len()));
    for (k, name) in FEATURE_NAMES.iter().enumerate() {
        print!("| {name} |");
        for col in &table {
            print!(" {:.2} / {:.2} |", col[k].0, col[k].1);
        }
        println!();
    }
}

/// The mean of each window feature over the clip's scored windows, the call first sent
/// through `condition`.
fn clip_means(
    call: &ClipCall,
    condition: &str,
    seed: u64,
    live: &PipelineSettings,
    window: &Arc<ToneModel>,
) -> [f64; N_FEATURES] {
    let line = Line::named(condition, seed).expect("known condition");
    // The calm material is played twice: `clip_call` stops at the sample where the clean
    // baseline completes, and a line that costs a few speech frames (noise, a lower gain)
    // would otherwise leave the clip unscored.
    let split = (call.clip_start_ms * u64::from(call.sample_rate_hz) / 1000) as usize;
    let mut pcm = call.pcm[..split].to_vec();
    pcm.extend_from_slice(&call.pcm);
    let call = ClipCall {
        pcm: line.apply(&pcm, call.sample_rate_hz, seed),
        clip_start_ms: call.clip_start_ms * 2,
        ..call.clone()
    };
    let w = stream::clip_windows(&call, live, window).expect("windows");
    let mut sum = [f64::NAN; N_FEATURES];
    if w.windows.iter().flatten().next().is_some() {
        sum = [0.0; N_FEATURES];
    }
    let mut n = 0.0f64;
    for x in w.windows.iter().flatten() {
        for (s, v) in sum.iter_mut().zip(x) {
            *s += f64::from(*v);
        }
        n += 1.0;
    }
    sum.map(|s| s / n.max(1.0))
}
