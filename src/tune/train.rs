//! Training and evaluation: speaker-disjoint folds, the logistic fit on clip windows, nested
//! selection per outer fold with every held-out clip replayed through the engine, the
//! leave-corpus-out lines, and the evaluation of a given model.

use super::dataset::RowProblem;
use super::extract::{engine_scores, extract_all, window_model};
use super::report::{AucFigure, Summary, TuneReport, by_intensity, nested_point, summarise};
use super::{Clip, ClipCall, ClipWindows, TuneError, TuneOptions, logistic, prior, roc, select};
use crate::detect::tone::{FEATURE_NAMES, N_FEATURES, OperatingPoint, ToneModel, feature_index};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Fold of each clip: speakers sorted by name and dealt round-robin into `k` folds, so no
/// speaker is ever on both sides. Clips without a speaker are their own group (by path).
pub fn speaker_folds(groups: &[String], k: usize) -> Vec<usize> {
    let mut names: Vec<&String> = groups.iter().collect();
    names.sort();
    names.dedup();
    let k = k.max(1);
    groups
        .iter()
        .map(|g| names.binary_search(&g).unwrap_or(0) % k)
        .collect()
}

/// The grouping key of a clip for folds.
pub(super) fn group_of(clip: &Clip) -> String {
    clip.row
        .speaker
        .clone()
        .unwrap_or_else(|| format!("file:{}", clip.row.path.display()))
}

/// Fits a model on the given clips' windows.
pub fn fit_model(
    windows: &[&ClipWindows],
    labels: &[bool],
    opts: &TuneOptions,
) -> Result<ToneModel, TuneError> {
    let n_pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let n_neg = (labels.len() as f64 - n_pos).max(1.0);
    let mut used = Vec::new();
    for name in &opts.features {
        let k = feature_index(name).ok_or_else(|| {
            TuneError::Fit(format!(
                "unknown feature {name:?} (known: {})",
                FEATURE_NAMES.join(", ")
            ))
        })?;
        if !used.contains(&k) {
            used.push(k);
        }
    }
    if used.is_empty() {
        used = (0..N_FEATURES).collect();
    }
    let mut rows = Vec::new();
    let mut ys = Vec::new();
    let mut ws = Vec::new();
    for (cw, &y) in windows.iter().zip(labels) {
        let ready: Vec<&[f32; N_FEATURES]> = cw
            .windows
            .iter()
            .chain(&cw.augmented)
            .flatten()
            .step_by(opts.train_stride.max(1))
            .collect();
        if ready.is_empty() {
            continue;
        }
        // Each clip weighs the same, and both classes weigh the same in total.
        let w = if y { 0.5 / n_pos } else { 0.5 / n_neg } / ready.len() as f64;
        for x in ready {
            rows.push(used.iter().map(|&k| f64::from(x[k])).collect::<Vec<f64>>());
            ys.push(y);
            ws.push(w);
        }
    }
    let fit = logistic::fit(&rows, &ys, &ws, opts.l2)
        .ok_or_else(|| TuneError::Fit("need scored windows of both classes".into()))?;
    let mut model = window_model(opts);
    model.features = used.iter().map(|&k| FEATURE_NAMES[k].to_owned()).collect();
    model.means = fit.means.iter().map(|v| *v as f32).collect();
    model.stds = fit.stds.iter().map(|v| *v as f32).collect();
    model.weights = fit.weights.iter().map(|v| *v as f32).collect();
    model.bias = fit.bias as f32;
    Ok(model)
}

/// Trains with speaker-disjoint cross-validation: out-of-fold scores for the report and the
/// threshold, then one model on everything.
pub fn train(
    clips: &[Clip],
    skipped: Vec<RowProblem>,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let (calls, windows) = extract_all(clips, opts)?;
    train_on_windows(clips, &calls, &windows, skipped, opts)
}

/// [`train`] on already extracted calls and windows: speaker-disjoint outer folds, each
/// fold's model selected, calibrated and thresholded inside its training side only
/// ([`select::fit_nested`]), every held-out clip replayed through the engine with its fold's
/// model; then the same selection on all clips for the model written.
pub fn train_on_windows(
    clips: &[Clip],
    calls: &[ClipCall],
    windows: &[ClipWindows],
    skipped: Vec<RowProblem>,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let groups: Vec<String> = clips.iter().map(group_of).collect();
    let mut distinct = groups.clone();
    distinct.sort();
    distinct.dedup();
    let k = opts
        .folds
        .unwrap_or(distinct.len().min(6))
        .clamp(2, distinct.len().max(2));
    let fold = speaker_folds(&groups, k);
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let mut fold_models = Vec::with_capacity(k);
    let mut chosen = Vec::with_capacity(k);
    for f in 0..k {
        let train_idx: Vec<usize> = (0..clips.len()).filter(|&i| fold[i] != f).collect();
        let (model, choice) = select::fit_nested(&train_idx, windows, &labels, &groups, opts)?;
        fold_models.push(Arc::new(model));
        chosen.push(choice);
    }
    // Every held-out clip is replayed through the engine with its fold's model.
    let scores = engine_scores(calls, windows, &fold_models, &|i| fold[i], opts)?;
    // Each clip decided at its own fold's threshold: an operating point no held-out clip chose.
    let called: Vec<bool> = (0..clips.len())
        .map(|i| scores[i] >= chosen[fold[i]].threshold)
        .collect();
    let all: Vec<usize> = (0..clips.len()).collect();
    let (mut model, final_choice) = select::fit_nested(&all, windows, &labels, &groups, opts)?;
    let primed: Vec<bool> = windows.iter().map(|w| w.primed).collect();
    let (reliability, ece) = select::reliability(&scores, &labels);
    let by_intensity = by_intensity(clips, &scores);
    let leave_corpus_out = leave_corpus_out(clips, calls, windows, &groups, opts)?;
    let mut prior_auc = None;
    if opts.prior {
        let mut o = opts.clone();
        o.l2 = final_choice.l2;
        prior_auc = Some(prior::out_of_fold_auc(windows, &labels, &fold, k, &o)?);
        model.prior = Some(prior::fit_prior(&all, windows, &labels, &o)?);
    }
    let Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    } = summarise(clips, scores, Some(&fold), &primed);
    let rule = format!(
        "nested: L2, Platt calibration and threshold (highest inner out-of-fold TPR with FPR <= \
         {}) chosen inside each training side; clip score = highest caller tone_score `replay` \
         reports inside the clip, streamed after the speaker's calm material",
        opts.max_fpr
    );
    let op = nested_point(&labels, &called, final_choice.threshold);
    model.operating_point = OperatingPoint {
        rule: rule.clone(),
        tpr: op.tpr,
        fpr: op.fpr,
    };
    model.provenance.folds = k;
    model.provenance.auc.insert("out_of_fold".into(), auc);
    if let Some((lo, hi)) = auc_ci {
        model
            .provenance
            .auc
            .insert("out_of_fold_ci95_low".into(), lo);
        model
            .provenance
            .auc
            .insert("out_of_fold_ci95_high".into(), hi);
    }
    if let Some(a) = nc {
        model.provenance.auc.insert("vs_neutral_calm".into(), a);
    }
    for (name, t) in &leave_corpus_out {
        model.provenance.auc.insert(format!("corpus {name}"), t.auc);
    }
    let (n_pos, n_neg) = roc::counts(&labels);
    Ok(TuneReport {
        n_pos,
        n_neg,
        auc,
        auc_ci95: auc_ci,
        auc_by_negative: by,
        auc_by_negative_ci95: by_ci,
        auc_neutral_calm: nc,
        auc_neutral_calm_ci95: nc_ci,
        auc_by_speaker: by_speaker,
        auc_by_intensity: by_intensity,
        leave_corpus_out,
        prior_auc,
        chosen,
        final_choice: Some(final_choice),
        reliability,
        ece,
        operating_point: op,
        rule,
        curve,
        folds: k,
        skipped,
        unprimed: primed.iter().filter(|p| !**p).count(),
        clips: scored,
        model,
    })
}

/// For each corpus with both classes while the others together have both: a model selected
/// on the other corpora (nested, as always) scoring this one through the engine. Keys read
/// `train->test`.
pub(super) fn leave_corpus_out(
    clips: &[Clip],
    calls: &[ClipCall],
    windows: &[ClipWindows],
    groups: &[String],
    opts: &TuneOptions,
) -> Result<BTreeMap<String, AucFigure>, TuneError> {
    let corpora: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter_map(|c| c.row.corpus.as_deref())
        .collect();
    let mut out = BTreeMap::new();
    if corpora.len() < 2 {
        return Ok(out);
    }
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    for test in &corpora {
        let is_test = |i: usize| clips[i].row.corpus.as_deref() == Some(*test);
        let train: Vec<usize> = (0..clips.len()).filter(|&i| !is_test(i)).collect();
        let held: Vec<usize> = (0..clips.len()).filter(|&i| is_test(i)).collect();
        let both = |idx: &[usize]| {
            let p = idx.iter().filter(|&&i| labels[i]).count();
            p > 0 && p < idx.len()
        };
        if !both(&train) || !both(&held) {
            continue;
        }
        let (model, _) = select::fit_nested(&train, windows, &labels, groups, opts)?;
        let held_calls: Vec<ClipCall> = held.iter().map(|&i| calls[i].clone()).collect();
        let held_windows: Vec<ClipWindows> = held.iter().map(|&i| windows[i].clone()).collect();
        let s = engine_scores(&held_calls, &held_windows, &[Arc::new(model)], &|_| 0, opts)?;
        let l: Vec<bool> = held.iter().map(|&i| labels[i]).collect();
        let train_names: Vec<&str> = corpora.iter().filter(|c| *c != test).copied().collect();
        if let Some(auc) = roc::auc(&s, &l) {
            let (n_pos, n_neg) = roc::counts(&l);
            out.insert(
                format!("{}->{test}", train_names.join("+")),
                AucFigure {
                    auc,
                    ci95: roc::auc_ci95(&s, &l),
                    n_pos,
                    n_neg,
                },
            );
        }
    }
    Ok(out)
}

/// Evaluates a given model (no training): its own threshold is the operating point.
pub fn evaluate(
    clips: &[Clip],
    skipped: Vec<RowProblem>,
    model: &ToneModel,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let mut o = opts.clone();
    o.window_ms = model.window_ms;
    o.min_speech_ms = model.min_speech_ms;
    o.max_age_ms = model.max_age_ms;
    let (calls, windows) = extract_all(clips, &o)?;
    let models = [Arc::new(model.clone())];
    let scores = engine_scores(&calls, &windows, &models, &|_| 0, &o)?;
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let op = roc::at_threshold(&scores, &labels, f64::from(model.threshold));
    let primed: Vec<bool> = windows.iter().map(|w| w.primed).collect();
    let (reliability, ece) = select::reliability(&scores, &labels);
    let by_int = by_intensity(clips, &scores);
    let Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    } = summarise(clips, scores, None, &primed);
    let (n_pos, n_neg) = roc::counts(&labels);
    Ok(TuneReport {
        n_pos,
        n_neg,
        auc,
        auc_ci95: auc_ci,
        auc_by_negative: by,
        auc_by_negative_ci95: by_ci,
        auc_neutral_calm: nc,
        auc_neutral_calm_ci95: nc_ci,
        auc_by_speaker: by_speaker,
        auc_by_intensity: by_int,
        leave_corpus_out: BTreeMap::new(),
        prior_auc: None,
        chosen: Vec::new(),
        final_choice: None,
        reliability,
        ece,
        operating_point: op,
        rule: "the model's own threshold".into(),
        curve,
        folds: 0,
        skipped,
        unprimed: primed.iter().filter(|p| !**p).count(),
        clips: scored,
        model: model.clone(),
    })
}

pub(super) fn check_classes(clips: &[Clip]) -> Result<(), TuneError> {
    let pos = clips.iter().filter(|c| c.row.positive).count();
    if pos == 0 || pos == clips.len() {
        return Err(TuneError::NothingUsable(format!(
            "{pos} positive and {} negative recordings; need both",
            clips.len() - pos
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_speaker_disjoint_and_deterministic() {
        let groups: Vec<String> = ["s3", "s1", "s2", "s1", "s4", "s3", "s5", "s2", "s1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let a = speaker_folds(&groups, 3);
        assert_eq!(a, speaker_folds(&groups, 3));
        for i in 0..groups.len() {
            for j in 0..groups.len() {
                if groups[i] == groups[j] {
                    assert_eq!(a[i], a[j], "speaker {} split across folds", groups[i]);
                }
            }
        }
        // Sorted speakers s1..s5 dealt round-robin: s1→0, s2→1, s3→2, s4→0, s5→1.
        assert_eq!(a, vec![2, 0, 1, 0, 0, 2, 1, 1, 0]);
        // Order of rows does not matter.
        let mut rev = groups.clone();
        rev.reverse();
        let mut b = speaker_folds(&rev, 3);
        b.reverse();
        assert_eq!(a, b);
    }
}
