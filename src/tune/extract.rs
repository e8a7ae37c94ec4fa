//! Streaming clips into what training and scoring need: every clip's call and its windows
//! (clean and through random phone lines), the engine's score of each held-out clip (checked
//! bit for bit against the batch windows), and the small thread pool both run on.

use super::{Clip, ClipCall, ClipWindows, TuneError, TuneOptions, augment, prior, stream};
use crate::detect::tone::{FEATURE_NAMES, MODEL_VERSION, OperatingPoint, Provenance, ToneModel};
use crate::pipeline::PipelineSettings;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A model that only fixes the window, for feature extraction.
pub(super) fn window_model(opts: &TuneOptions) -> ToneModel {
    ToneModel {
        version: MODEL_VERSION,
        features: vec![FEATURE_NAMES[0].to_owned()],
        means: vec![0.0],
        stds: vec![1.0],
        weights: vec![0.0],
        bias: 0.0,
        threshold: 0.5,
        window_ms: opts.window_ms,
        max_age_ms: opts.max_age_ms,
        min_speech_ms: opts.min_speech_ms,
        sustain_ms: opts.sustain_ms,
        operating_point: OperatingPoint::default(),
        provenance: Provenance::default(),
        prior: None,
    }
}

/// Every clip's call and its windows, on `opts.threads` threads (results in clip order).
pub fn extract_all(
    clips: &[Clip],
    opts: &TuneOptions,
) -> Result<(Vec<ClipCall>, Vec<ClipWindows>), TuneError> {
    let window = Arc::new(window_model(opts));
    let prior_window = Arc::new(prior::prior_window_model(&window));
    let bar = progress_bar(clips.len() as u64, opts.progress, "streaming clips");
    let results = parallel_map(clips.len(), opts.threads, &bar, |i| {
        let call = stream::clip_call(clips, i, &opts.live)?;
        let mut windows = stream::clip_windows(&call, &opts.live, &window)?;
        let rate = call.sample_rate_hz;
        let alone = &clips[i].audio.samples;
        if opts.prior {
            windows.prior = prior::prior_windows(alone, rate, &opts.live, &prior_window)?;
        }
        for copy in 0..opts.augment {
            let seed = ((i as u64) << 16) | copy as u64;
            let line = augment::Line::random(seed);
            let noisy = ClipCall {
                pcm: line.apply(&call.pcm, rate, seed),
                ..call.clone()
            };
            let w = stream::clip_windows(&noisy, &opts.live, &window)?;
            windows.augmented.extend(w.windows);
            if opts.prior {
                let noisy = line.apply(alone, rate, seed);
                let w = prior::prior_windows(&noisy, rate, &opts.live, &prior_window)?;
                windows.prior_augmented.extend(w);
            }
        }
        Ok((call, windows))
    });
    bar.finish_and_clear();
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().unzip())
}

/// Scores every clip's call through the engine, clip `i` with `models[fold_of(i)]`, and checks
/// each score against the batch windows' (they must agree: same analyser, same scorer).
pub(super) fn engine_scores(
    calls: &[ClipCall],
    windows: &[ClipWindows],
    models: &[Arc<ToneModel>],
    fold_of: &(dyn Fn(usize) -> usize + Sync),
    opts: &TuneOptions,
) -> Result<Vec<f64>, TuneError> {
    let bar = progress_bar(calls.len() as u64, opts.progress, "replaying clips");
    let results = parallel_map(calls.len(), opts.threads, &bar, |i| {
        let model = &models[fold_of(i)];
        let live = PipelineSettings {
            model: model.clone(),
            ..opts.live.clone()
        };
        let score = stream::live_clip_score(&calls[i], &live)?;
        let batch = windows[i].score(model);
        if score.to_bits() != batch.to_bits() {
            return Err(TuneError::Fit(format!(
                "clip {i}: the engine scored {score} but the batch windows {batch}; the two \
                 paths have drifted apart"
            )));
        }
        Ok(score)
    });
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// Runs `f(0..len)` on up to `threads` worker threads, in index order; a worker that panics
/// (a bug) turns its items into errors instead of taking the run down.
pub(super) fn parallel_map<R: Send>(
    len: usize,
    threads: usize,
    bar: &indicatif::ProgressBar,
    f: impl Fn(usize) -> Result<R, TuneError> + Sync,
) -> Vec<Result<R, TuneError>> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<R, TuneError>>> = Vec::new();
    results.resize_with(len, || None);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.clamp(1, 16))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= len {
                            break;
                        }
                        mine.push((i, f(i)));
                        bar.inc(1);
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            if let Ok(mine) = h.join() {
                for (i, r) in mine {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TuneError::Fit("a worker thread panicked".into()))))
        .collect()
}

pub(super) fn progress_bar(len: u64, show: bool, msg: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}
