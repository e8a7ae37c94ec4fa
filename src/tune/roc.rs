//! ROC curves, AUC and operating points over scored, labelled items.
//!
//! Convention: an item is called positive when `score >= threshold`. Each curve point sits
//! halfway between two adjacent distinct scores, so a threshold taken from it does not hinge
//! on a float comparison with an observed score.

use serde::Serialize;

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    /// Call positive when the score is at or above this.
    pub threshold: f64,
    /// True-positive rate (recall).
    pub tpr: f64,
    /// False-positive rate.
    pub fpr: f64,
    /// Precision (1 when nothing is called positive).
    pub precision: f64,
    /// Positives called positive.
    pub tp: usize,
    /// Negatives called positive.
    pub fp: usize,
}

/// Positives and negatives in `labels`.
pub fn counts(labels: &[bool]) -> (usize, usize) {
    let n_pos = labels.iter().filter(|l| **l).count();
    (n_pos, labels.len() - n_pos)
}

/// The ROC curve from (0, 0) to (1, 1), one point per distinct score plus the origin.
/// Empty when either class is missing or the lengths differ.
pub fn roc(scores: &[f64], labels: &[bool]) -> Vec<RocPoint> {
    let (n_pos, n_neg) = counts(labels);
    if scores.len() != labels.len() || n_pos == 0 || n_neg == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let point = |threshold: f64, tp: usize, fp: usize| RocPoint {
        threshold,
        tpr: tp as f64 / n_pos as f64,
        fpr: fp as f64 / n_neg as f64,
        precision: if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
        tp,
        fp,
    };
    let top = scores[order[0]];
    let mut out = vec![point(top + margin(top), 0, 0)];
    let (mut tp, mut fp) = (0, 0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let threshold = match order.get(i) {
            Some(&next) => 0.5 * (s + scores[next]),
            None => s - margin(s),
        };
        out.push(point(threshold, tp, fp));
    }
    out
}

fn margin(s: f64) -> f64 {
    1e-6 * s.abs().max(1.0)
}

/// Area under the ROC curve (ties count half), or `None` when a class is missing.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let curve = roc(scores, labels);
    if curve.is_empty() {
        return None;
    }
    Some(
        curve
            .windows(2)
            .map(|w| (w[1].fpr - w[0].fpr) * 0.5 * (w[1].tpr + w[0].tpr))
            .sum(),
    )
}

/// The operating point with the highest TPR whose FPR is at most `max_fpr`; among equals the
/// one with the lowest FPR, then the highest threshold.
pub fn operating_point(curve: &[RocPoint], max_fpr: f64) -> Option<RocPoint> {
    curve
        .iter()
        .filter(|p| p.fpr <= max_fpr + 1e-12)
        .copied()
        .reduce(|best, p| {
            let better = p.tpr > best.tpr
                || (p.tpr == best.tpr && p.fpr < best.fpr)
                || (p.tpr == best.tpr && p.fpr == best.fpr && p.threshold > best.threshold);
            if better { p } else { best }
        })
}

/// TPR, FPR and precision at a given threshold.
pub fn at_threshold(scores: &[f64], labels: &[bool], threshold: f64) -> RocPoint {
    let (n_pos, n_neg) = counts(labels);
    let tp = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| **l && **s >= threshold)
        .count();
    let fp = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| !**l && **s >= threshold)
        .count();
    RocPoint {
        threshold,
        tpr: tp as f64 / n_pos.max(1) as f64,
        fpr: fp as f64 / n_neg.max(1) as f64,
        precision: if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
        tp,
        fp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_separation_has_auc_one_and_a_clean_operating_point() {
        let scores = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1];
        let labels = [true, true, true, false, false, false];
        assert_eq!(auc(&scores, &labels), Some(1.0));
        let op = operating_point(&roc(&scores, &labels), 0.05).unwrap();
        assert_eq!((op.tpr, op.fpr, op.precision), (1.0, 0.0, 1.0));
        assert!(
            (op.threshold - 0.5).abs() < 1e-12,
            "midway between 0.7 and 0.3"
        );
        assert_eq!(at_threshold(&scores, &labels, op.threshold).tp, 3);
    }

    #[test]
    fn reversed_scores_have_auc_zero() {
        let scores = [0.1, 0.2, 0.8, 0.9];
        let labels = [true, true, false, false];
        assert_eq!(auc(&scores, &labels), Some(0.0));
    }

    #[test]
    fn all_ties_give_one_half() {
        let scores = [0.5; 8];
        let labels = [true, false, true, false, false, true, false, false];
        assert_eq!(auc(&scores, &labels), Some(0.5));
        let curve = roc(&scores, &labels);
        assert_eq!(curve.len(), 2);
    }

    #[test]
    fn ties_across_classes_count_half() {
        // Pairs: (0.8 vs 0.5) win, (0.8 vs 0.2) win, (0.5 vs 0.5) half, (0.5 vs 0.2) win.
        let scores = [0.8, 0.5, 0.5, 0.2];
        let labels = [true, true, false, false];
        assert_eq!(auc(&scores, &labels), Some(3.5 / 4.0));
    }

    #[test]
    fn interleaved_scores_match_pair_counting() {
        // A deterministic pseudo-random mix; AUC must equal the Mann-Whitney pair count.
        let mut state = 12345u64;
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..200 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let label = (state >> 33) % 2 == 0;
            let s = ((state >> 40) % 50) as f64 / 50.0 + if label { 0.1 } else { 0.0 };
            scores.push(s);
            labels.push(label);
        }
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for i in 0..scores.len() {
            for j in 0..scores.len() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    wins += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        let a = auc(&scores, &labels).unwrap();
        assert!((a - wins / pairs).abs() < 1e-12);
        assert!(a > 0.55 && a < 0.8, "{a}");
    }

    #[test]
    fn missing_class_has_no_auc() {
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert!(roc(&[0.1, 0.2], &[false, false]).is_empty());
    }

    #[test]
    fn operating_point_respects_the_fpr_cap() {
        let scores = [0.95, 0.9, 0.85, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];
        let labels = [
            true, false, true, true, false, true, false, false, false, false,
        ];
        let curve = roc(&scores, &labels);
        let op = operating_point(&curve, 0.0).unwrap();
        assert_eq!((op.tp, op.fp), (1, 0));
        let op = operating_point(&curve, 0.2).unwrap();
        assert_eq!((op.tp, op.fp), (3, 1));
        let op = operating_point(&curve, 1.0).unwrap();
        assert_eq!(op.tpr, 1.0);
        assert_eq!(op.fp, 2, "lowest FPR reaching full recall");
    }
}
