//! Honest model selection: the L2 penalty, the calibration and the threshold of a model are
//! chosen only from its own training clips, by speaker-disjoint cross-validation inside them
//! (nested inside the outer folds that report the figures).
//!
//! Calibration is Platt's: a logistic fit of the label on the logit of the inner out-of-fold
//! clip scores. The model is `sigmoid(w·z + b)`, so `sigmoid(a·(w·z + b) + c)` is the same kind
//! of model (weights times `a`, bias `a·b + c`): the live engine needs nothing new, and a score
//! of 0.8 means "80 % of clips that peaked here were angry" on every call.

use super::{ClipWindows, TuneError, TuneOptions, fit_model, logistic, roc, speaker_folds};
use crate::detect::tone::ToneModel;

/// L2 penalties tried inside the training folds.
pub const L2_GRID: [f64; 4] = [0.03, 0.1, 0.3, 1.0];
/// Inner folds (at most; fewer when the training side has fewer speakers).
const INNER_FOLDS: usize = 5;
/// Logits are taken of scores kept this far from 0 and 1 (clip scores are rounded to 0.001).
const EDGE: f64 = 5e-4;

/// What the inner cross-validation chose.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Chosen {
    /// L2 penalty.
    pub l2: f64,
    /// Inner out-of-fold AUC at that penalty.
    pub inner_auc: f64,
    /// Platt slope on the raw logit.
    pub platt_a: f64,
    /// Platt offset.
    pub platt_c: f64,
    /// Threshold on the calibrated score (inner operating point).
    pub threshold: f64,
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(EDGE, 1.0 - EDGE);
    (p / (1.0 - p)).ln()
}

/// Platt's calibration of `scores` against `labels`: `(a, c)` with
/// `P(positive) = sigmoid(a·logit(score) + c)`; identity when the fit is degenerate.
pub fn platt(scores: &[f64], labels: &[bool]) -> (f64, f64) {
    let rows: Vec<Vec<f64>> = scores.iter().map(|s| vec![logit(*s)]).collect();
    let ws = vec![1.0 / scores.len().max(1) as f64; scores.len()];
    match logistic::fit(&rows, labels, &ws, 1e-3) {
        Some(f) if f.weights[0] > 0.0 && f.stds[0] > 0.0 => {
            let a = f.weights[0] / f.stds[0];
            (a, f.bias - a * f.means[0])
        }
        _ => (1.0, 0.0),
    }
}

/// `model` with Platt's `(a, c)` folded into its weights and bias.
pub fn calibrated(mut model: ToneModel, (a, c): (f64, f64)) -> ToneModel {
    for w in &mut model.weights {
        *w = (f64::from(*w) * a) as f32;
    }
    model.bias = (f64::from(model.bias) * a + c) as f32;
    model
}

/// A calibrated score, from a raw one.
pub fn apply(score: f64, (a, c): (f64, f64)) -> f64 {
    let m = a * logit(score) + c;
    1.0 / (1.0 + (-m).exp())
}

/// Fits the model of the clips `idx` (indices into `windows`, `labels`, `groups`): L2 chosen
/// by inner speaker-disjoint cross-validation among `idx` only, then calibrated and given its
/// threshold from the inner out-of-fold scores at that L2. Falls back to `opts.l2` and no
/// calibration when the clips hold fewer than two speakers.
pub fn fit_nested(
    idx: &[usize],
    windows: &[ClipWindows],
    labels: &[bool],
    groups: &[String],
    opts: &TuneOptions,
) -> Result<(ToneModel, Chosen), TuneError> {
    let sub_groups: Vec<String> = idx.iter().map(|&i| groups[i].clone()).collect();
    let mut distinct = sub_groups.clone();
    distinct.sort();
    distinct.dedup();
    let sub_labels: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
    let fit_on = |members: &[usize], l2: f64| {
        let w: Vec<&ClipWindows> = members.iter().map(|&i| &windows[i]).collect();
        let l: Vec<bool> = members.iter().map(|&i| labels[i]).collect();
        let o = TuneOptions { l2, ..opts.clone() };
        fit_model(&w, &l, &o)
    };
    let k = distinct.len().min(INNER_FOLDS);
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    if k >= 2 {
        let fold = speaker_folds(&sub_groups, k);
        for l2 in L2_GRID {
            let mut scores = vec![0.0; idx.len()];
            for f in 0..k {
                let train: Vec<usize> = (0..idx.len())
                    .filter(|&j| fold[j] != f)
                    .map(|j| idx[j])
                    .collect();
                let Ok(model) = fit_on(&train, l2) else {
                    continue;
                };
                for j in (0..idx.len()).filter(|&j| fold[j] == f) {
                    scores[j] = windows[idx[j]].score(&model);
                }
            }
            let auc = roc::auc(&scores, &sub_labels).unwrap_or(0.0);
            if best.as_ref().is_none_or(|(_, b, _)| auc > *b) {
                best = Some((l2, auc, scores));
            }
        }
    }
    let model = match &best {
        Some((l2, _, _)) => fit_on(idx, *l2)?,
        None => fit_on(idx, opts.l2)?,
    };
    let Some((l2, inner_auc, scores)) = best else {
        let threshold = f64::from(model.threshold);
        return Ok((
            model,
            Chosen {
                l2: opts.l2,
                inner_auc: f64::NAN,
                platt_a: 1.0,
                platt_c: 0.0,
                threshold,
            },
        ));
    };
    let (a, c) = platt(&scores, &sub_labels);
    let cal: Vec<f64> = scores.iter().map(|s| apply(*s, (a, c))).collect();
    let threshold = roc::operating_point(&roc::roc(&cal, &sub_labels), opts.max_fpr)
        .map_or(0.5, |p| p.threshold.clamp(0.0, 1.0));
    let mut model = calibrated(model, (a, c));
    model.threshold = threshold as f32;
    Ok((
        model,
        Chosen {
            l2,
            inner_auc,
            platt_a: a,
            platt_c: c,
            threshold,
        },
    ))
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    /// Mean predicted probability of the clips in the bin.
    pub predicted: f64,
    /// Share of them that were positive.
    pub observed: f64,
    /// Clips in the bin.
    pub n: usize,
}

/// Reliability diagram of probabilities `scores` (10 equal-width bins; empty bins left out)
/// and the expected calibration error (bin-size-weighted |observed − predicted|).
pub fn reliability(scores: &[f64], labels: &[bool]) -> (Vec<ReliabilityBin>, f64) {
    let mut sums = [(0.0f64, 0usize, 0usize); 10];
    for (s, l) in scores.iter().zip(labels) {
        let b = ((s.clamp(0.0, 1.0) * 10.0) as usize).min(9);
        sums[b].0 += s;
        sums[b].1 += usize::from(*l);
        sums[b].2 += 1;
    }
    let bins: Vec<ReliabilityBin> = sums
        .iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(s, p, n)| ReliabilityBin {
            predicted: s / *n as f64,
            observed: *p as f64 / *n as f64,
            n: *n,
        })
        .collect();
    let total = scores.len().max(1) as f64;
    let ece = bins
        .iter()
        .map(|b| b.n as f64 / total * (b.observed - b.predicted).abs())
        .sum();
    (bins, ece)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_maps_overconfident_scores_to_observed_rates() {
        // Scores of 0.9 are right only half the time, 0.1 never: calibration pulls 0.9 down.
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            scores.push(0.9);
            labels.push(i % 2 == 0);
            scores.push(0.1);
            labels.push(false);
        }
        let ac = platt(&scores, &labels);
        let hi = apply(0.9, ac);
        assert!((hi - 0.5).abs() < 0.05, "{hi}");
        assert!(apply(0.1, ac) < 0.05);
        let (bins, ece) = reliability(
            &scores.iter().map(|s| apply(*s, ac)).collect::<Vec<_>>(),
            &labels,
        );
        assert_eq!(bins.len(), 2);
        assert!(ece < 0.05, "{ece}");
        let (_, raw_ece) = reliability(&scores, &labels);
        assert!(raw_ece > 0.15, "{raw_ece}");
    }

    #[test]
    fn a_calibrated_model_scores_what_apply_says() {
        let mut m = ToneModel::bundled();
        m.bias = 0.3;
        let x = [0.5f32; crate::detect::tone::N_FEATURES];
        let raw = f64::from(m.score(&x));
        let ac = (0.7, -0.4);
        let cal = f64::from(calibrated(m, ac).score(&x));
        assert!(
            (cal - apply(raw, ac)).abs() < 1e-4,
            "{cal} vs {}",
            apply(raw, ac)
        );
    }
}
