//! What a `tune` run reports: scored clips, AUCs with intervals (pooled, per negative label,
//! per speaker, per intensity), the operating point, and how clip scores are summarised.

use super::dataset::RowProblem;
use super::roc::{self, RocPoint};
use super::{Clip, select};
use crate::detect::tone::ToneModel;
use serde::Serialize;
use std::collections::BTreeMap;

/// One scored clip in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredClip {
    /// The recording.
    pub path: String,
    /// Its label.
    pub label: String,
    /// Positive class.
    pub positive: bool,
    /// Speaker.
    pub speaker: Option<String>,
    /// Fold it was held out in (none when evaluating a given model).
    pub fold: Option<usize>,
    /// Its score.
    pub score: f64,
    /// Whether its speaker baseline was ready before it began.
    pub primed: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// Positives scored.
    pub n_pos: usize,
    /// Negatives scored.
    pub n_neg: usize,
    /// AUC over all scored clips.
    pub auc: f64,
    /// 95 % confidence interval of `auc` (DeLong; clips treated as independent, so with few
    /// speakers it is if anything too narrow).
    pub auc_ci95: Option<(f64, f64)>,
    /// AUC of positives against each negative label alone.
    pub auc_by_negative: BTreeMap<String, f64>,
    /// 95 % confidence intervals of `auc_by_negative`.
    pub auc_by_negative_ci95: BTreeMap<String, (f64, f64)>,
    /// AUC of positives against the `neutral` and `calm` negatives, when there are any.
    pub auc_neutral_calm: Option<f64>,
    /// 95 % confidence interval of `auc_neutral_calm`.
    pub auc_neutral_calm_ci95: Option<(f64, f64)>,
    /// AUC within each speaker that has both classes (rows with a `speaker`): a voice the
    /// model reads poorly stands out here, while the pooled AUC also mixes in how differently
    /// speakers score.
    pub auc_by_speaker: BTreeMap<String, f64>,
    /// AUC of the positives of each acted intensity against every negative.
    pub auc_by_intensity: BTreeMap<String, AucFigure>,
    /// Leave-corpus-out AUCs (`train->test`), when the clips come from several corpora.
    pub leave_corpus_out: BTreeMap<String, AucFigure>,
    /// Out-of-fold AUC of the population prior (clips heard without any baseline), when
    /// fitted.
    pub prior_auc: Option<AucFigure>,
    /// What each outer fold's inner cross-validation chose.
    pub chosen: Vec<select::Chosen>,
    /// What the selection on all clips chose for the model written.
    pub final_choice: Option<select::Chosen>,
    /// Reliability diagram of the out-of-fold (calibrated) clip scores.
    pub reliability: Vec<select::ReliabilityBin>,
    /// Expected calibration error of those scores.
    pub ece: f64,
    /// The operating point.
    pub operating_point: RocPoint,
    /// The rule that chose it.
    pub rule: String,
    /// The ROC curve.
    pub curve: Vec<RocPoint>,
    /// Folds used (0 when a given model was evaluated).
    pub folds: usize,
    /// Rows skipped, with reasons.
    #[serde(skip)]
    pub skipped: Vec<RowProblem>,
    /// Clips whose speaker baseline was not ready before they began.
    pub unprimed: usize,
    /// Every scored clip.
    #[serde(skip)]
    pub clips: Vec<ScoredClip>,
    /// The model (trained, or the one evaluated).
    #[serde(skip)]
    pub model: ToneModel,
}

impl TuneReport {
    /// The threshold sweep at fixed thresholds.
    pub fn sweep(&self) -> Vec<RocPoint> {
        let scores: Vec<f64> = self.clips.iter().map(|c| c.score).collect();
        let labels: Vec<bool> = self.clips.iter().map(|c| c.positive).collect();
        (1..20)
            .map(|k| roc::at_threshold(&scores, &labels, f64::from(k) * 0.05))
            .collect()
    }
}

/// What [`summarise`] derives from clip scores.
pub(super) struct Summary {
    pub(super) clips: Vec<ScoredClip>,
    pub(super) auc: f64,
    pub(super) auc_ci: Option<(f64, f64)>,
    pub(super) by: BTreeMap<String, f64>,
    pub(super) by_ci: BTreeMap<String, (f64, f64)>,
    pub(super) neutral_calm: Option<f64>,
    pub(super) neutral_calm_ci: Option<(f64, f64)>,
    pub(super) by_speaker: BTreeMap<String, f64>,
    pub(super) curve: Vec<RocPoint>,
}

pub(super) fn summarise(
    clips: &[Clip],
    scores: Vec<f64>,
    folds_of: Option<&[usize]>,
    primed: &[bool],
) -> Summary {
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let scored: Vec<ScoredClip> = clips
        .iter()
        .enumerate()
        .map(|(i, c)| ScoredClip {
            path: c.row.path.display().to_string(),
            label: c.row.label.clone(),
            positive: c.row.positive,
            speaker: c.row.speaker.clone(),
            fold: folds_of.map(|f| f[i]),
            score: scores[i],
            primed: primed[i],
        })
        .collect();
    let auc = roc::auc(&scores, &labels).unwrap_or(f64::NAN);
    let auc_ci = roc::auc_ci95(&scores, &labels);
    let mut by = BTreeMap::new();
    let mut by_ci = BTreeMap::new();
    let negative_labels: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter(|c| !c.row.positive)
        .map(|c| c.row.label.as_str())
        .collect();
    let subset_auc = |keep: &dyn Fn(&Clip) -> bool| {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(&scores)
            .filter(|(c, _)| c.row.positive || keep(c))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        (roc::auc(&s, &l), roc::auc_ci95(&s, &l))
    };
    for neg in negative_labels {
        let (a, ci) = subset_auc(&|c: &Clip| c.row.label == neg);
        if let Some(a) = a {
            by.insert(neg.to_owned(), a);
        }
        if let Some(ci) = ci {
            by_ci.insert(neg.to_owned(), ci);
        }
    }
    let (nc, nc_ci) = subset_auc(&|c: &Clip| matches!(c.row.label.as_str(), "neutral" | "calm"));
    let speakers: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter_map(|c| c.row.speaker.as_deref())
        .collect();
    let mut by_speaker = BTreeMap::new();
    for sp in speakers {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(&scores)
            .filter(|(c, _)| c.row.speaker.as_deref() == Some(sp))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        if let Some(a) = roc::auc(&s, &l) {
            by_speaker.insert(sp.to_owned(), a);
        }
    }
    let curve = roc::roc(&scores, &labels);
    Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    }
}

/// TPR/FPR of per-clip decisions, reported at `threshold` (the written model's).
pub(super) fn nested_point(labels: &[bool], called: &[bool], threshold: f64) -> RocPoint {
    let (n_pos, n_neg) = roc::counts(labels);
    let tp = labels
        .iter()
        .zip(called)
        .filter(|(l, c)| **l && **c)
        .count();
    let fp = labels
        .iter()
        .zip(called)
        .filter(|(l, c)| !**l && **c)
        .count();
    RocPoint {
        threshold,
        tpr: tp as f64 / n_pos.max(1) as f64,
        fpr: fp as f64 / n_neg.max(1) as f64,
        precision: if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            1.0
        },
        tp,
        fp,
    }
}

/// AUC (with its interval) of the positives of each intensity against every negative.
pub(super) fn by_intensity(clips: &[Clip], scores: &[f64]) -> BTreeMap<String, AucFigure> {
    let levels: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter(|c| c.row.positive)
        .filter_map(|c| c.row.intensity.as_deref())
        .collect();
    let mut out = BTreeMap::new();
    for level in levels {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(scores)
            .filter(|(c, _)| !c.row.positive || c.row.intensity.as_deref() == Some(level))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        if let Some(auc) = roc::auc(&s, &l) {
            let (n_pos, n_neg) = roc::counts(&l);
            out.insert(
                level.to_owned(),
                AucFigure {
                    auc,
                    ci95: roc::auc_ci95(&s, &l),
                    n_pos,
                    n_neg,
                },
            );
        }
    }
    out
}

/// An AUC with its 95 % interval and the counts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucFigure {
    /// AUC.
    pub auc: f64,
    /// DeLong 95 % interval.
    pub ci95: Option<(f64, f64)>,
    /// Positives.
    pub n_pos: usize,
    /// Negatives.
    pub n_neg: usize,
}
