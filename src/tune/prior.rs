//! The population prior (issue #18, "angry from the first word"): the tone score a caller gets
//! before their own baseline is ready, from window features that need no baseline
//! ([`PRIOR_FEATURES`]). Its training windows are each clip heard alone, from a fresh analyser
//! (no baseline at all), through the same [`ToneScorer`] the engine runs; it is fitted with the
//! class balance of the main model and Platt-calibrated on clip peaks, so its score reads as a
//! probability against the same threshold.

use super::{ClipWindows, TuneError, TuneOptions, logistic, roc, select};
use crate::detect::tone::{
    FEATURE_NAMES, N_FEATURES, PRIOR_FEATURES, PriorModel, ToneModel, ToneScorer, feature_index,
};
use crate::pipeline::PipelineSettings;
use std::sync::Arc;

/// A window model whose (zero-weight) prior makes the scorer collect pre-baseline windows.
pub fn prior_window_model(window: &ToneModel) -> ToneModel {
    ToneModel {
        prior: Some(PriorModel {
            features: vec![PRIOR_FEATURES[0].to_owned()],
            means: vec![0.0],
            stds: vec![1.0],
            weights: vec![0.0],
            bias: 0.0,
        }),
        ..window.clone()
    }
}

/// The pre-baseline windows of `pcm` streamed alone from a fresh analyser, one per hop (`None`
/// until the window holds enough speech, and from where the baseline would be ready).
pub fn prior_windows(
    pcm: &[i16],
    rate_hz: u32,
    live: &PipelineSettings,
    window: &Arc<ToneModel>,
) -> Result<Vec<Option<[f32; N_FEATURES]>>, TuneError> {
    let mut analyzer = live
        .track_analyzer(rate_hz)
        .map_err(|source| TuneError::Dsp {
            at: "prior clip".into(),
            source,
        })?;
    let mut scorer = ToneScorer::new(window.clone());
    let mut frames = Vec::new();
    let mut out = Vec::with_capacity(pcm.len() / 160 + 1);
    let mut take = |frames: &[crate::dsp::Frame], out: &mut Vec<_>| {
        for f in frames {
            scorer.update(f);
            out.push(if scorer.on_prior() {
                scorer.features()
            } else {
                None
            });
        }
    };
    for chunk in pcm.chunks((rate_hz as usize / 50).max(1)) {
        frames.clear();
        analyzer.push(chunk, &mut frames);
        take(&frames, &mut out);
    }
    frames.clear();
    analyzer.finish(&mut frames);
    take(&frames, &mut out);
    Ok(out)
}

fn prior_columns() -> Vec<usize> {
    PRIOR_FEATURES
        .iter()
        .filter_map(|n| feature_index(n))
        .collect()
}

/// A clip's prior score under `prior`: its highest window score (0 without windows).
pub fn clip_prior_score(windows: &ClipWindows, prior: &PriorModel) -> f64 {
    let linear = prior.linear();
    windows
        .prior
        .iter()
        .flatten()
        .map(|x| f64::from(linear.score(x)))
        .fold(0.0, f64::max)
}

/// Fits the prior on the clips `idx` (their clean and augmented pre-baseline windows), each
/// clip weighing the same and both classes the same in total, then Platt-calibrates it on
/// those clips' peak scores.
pub fn fit_prior(
    idx: &[usize],
    windows: &[ClipWindows],
    labels: &[bool],
    opts: &TuneOptions,
) -> Result<PriorModel, TuneError> {
    let cols = prior_columns();
    let n_pos = idx.iter().filter(|&&i| labels[i]).count().max(1) as f64;
    let n_neg = (idx.len() as f64 - n_pos).max(1.0);
    let (mut rows, mut ys, mut ws) = (Vec::new(), Vec::new(), Vec::new());
    for &i in idx {
        let ready: Vec<&[f32; N_FEATURES]> = windows[i]
            .prior
            .iter()
            .chain(&windows[i].prior_augmented)
            .flatten()
            .step_by(opts.train_stride.max(1))
            .collect();
        let y = labels[i];
        let w = if y { 0.5 / n_pos } else { 0.5 / n_neg } / ready.len().max(1) as f64;
        for x in ready {
            rows.push(cols.iter().map(|&k| f64::from(x[k])).collect::<Vec<f64>>());
            ys.push(y);
            ws.push(w);
        }
    }
    let fit = logistic::fit(&rows, &ys, &ws, opts.l2)
        .ok_or_else(|| TuneError::Fit("prior: need pre-baseline windows of both classes".into()))?;
    let raw = PriorModel {
        features: cols.iter().map(|&k| FEATURE_NAMES[k].to_owned()).collect(),
        means: fit.means.iter().map(|v| *v as f32).collect(),
        stds: fit.stds.iter().map(|v| *v as f32).collect(),
        weights: fit.weights.iter().map(|v| *v as f32).collect(),
        bias: fit.bias as f32,
    };
    let scores: Vec<f64> = idx
        .iter()
        .map(|&i| clip_prior_score(&windows[i], &raw))
        .collect();
    let sub: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
    let (a, c) = select::platt(&scores, &sub);
    Ok(PriorModel {
        weights: raw
            .weights
            .iter()
            .map(|w| (f64::from(*w) * a) as f32)
            .collect(),
        bias: (f64::from(raw.bias) * a + c) as f32,
        ..raw
    })
}

/// Out-of-fold AUC of the prior (each fold's prior fitted on the other folds), with its
/// interval: how well a caller is read before their baseline exists.
pub fn out_of_fold_auc(
    windows: &[ClipWindows],
    labels: &[bool],
    fold: &[usize],
    k: usize,
    opts: &TuneOptions,
) -> Result<super::AucFigure, TuneError> {
    let mut scores = vec![0.0; windows.len()];
    for f in 0..k {
        let train: Vec<usize> = (0..windows.len()).filter(|&i| fold[i] != f).collect();
        let prior = fit_prior(&train, windows, labels, opts)?;
        for i in (0..windows.len()).filter(|&i| fold[i] == f) {
            scores[i] = clip_prior_score(&windows[i], &prior);
        }
    }
    let (n_pos, n_neg) = roc::counts(labels);
    Ok(super::AucFigure {
        auc: roc::auc(&scores, labels).unwrap_or(f64::NAN),
        ci95: roc::auc_ci95(&scores, labels),
        n_pos,
        n_neg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Segment, speech};

    #[test]
    fn a_clip_heard_without_baseline_gives_prior_windows_only_until_it_is_ready() {
        let live = PipelineSettings::default();
        let window = Arc::new(prior_window_model(&live.model));
        let pcm = speech(&[Segment::agitated(4.0, 140.0)], 8000, 3);
        let w = prior_windows(&pcm, 8000, &live, &window).unwrap();
        let n = w.iter().flatten().count();
        assert!(n > 50, "{n} pre-baseline windows");
        // Without a prior the same scorer collects nothing before the baseline.
        let plain = Arc::new(ToneModel {
            prior: None,
            ..(*live.model).clone()
        });
        assert_eq!(
            prior_windows(&pcm, 8000, &live, &plain)
                .unwrap()
                .iter()
                .flatten()
                .count(),
            0
        );
    }
}
