//! ROC curves, AUC (with DeLong confidence intervals) and operating points over scored,
//! labelled items.
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

/// DeLong's variance of the AUC (DeLong, DeLong & Clarke-Pearson 1988): from each positive's
/// share of negatives it outscores and each negative's share of positives above it (ties count
/// half). `None` when a class has fewer than two items. Items are treated as independent, so
/// for clips that share speakers the true uncertainty is wider.
pub fn auc_variance(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let mut pos: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = Vec::new();
    for (&s, &l) in scores.iter().zip(labels) {
        if l { pos.push(s) } else { neg.push(s) }
    }
    let (m, n) = (pos.len(), neg.len());
    if m < 2 || n < 2 {
        return None;
    }
    pos.sort_by(f64::total_cmp);
    neg.sort_by(f64::total_cmp);
    // Items of `sorted` below `x` plus half of those equal to it.
    let below = |sorted: &[f64], x: f64| {
        let lt = sorted.partition_point(|&v| v < x);
        let le = sorted.partition_point(|&v| v <= x);
        lt as f64 + 0.5 * (le - lt) as f64
    };
    let v10: Vec<f64> = pos.iter().map(|&x| below(&neg, x) / n as f64).collect();
    let v01: Vec<f64> = neg
        .iter()
        .map(|&y| (m as f64 - below(&pos, y)) / m as f64)
        .collect();
    let auc = v10.iter().sum::<f64>() / m as f64;
    let s10 = v10.iter().map(|v| (v - auc).powi(2)).sum::<f64>() / (m - 1) as f64;
    let s01 = v01.iter().map(|v| (v - auc).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(s10 / m as f64 + s01 / n as f64)
}

/// A 95 % confidence interval for the AUC from [`auc_variance`], built on the logit scale so
/// it stays inside 0..1. A perfect (or perfectly reversed) ranking has zero variance and gives
/// the point itself, which on a handful of clips means "not measured" rather than "certain".
pub fn auc_ci95(scores: &[f64], labels: &[bool]) -> Option<(f64, f64)> {
    const Z95: f64 = 1.959_964;
    let a = auc(scores, labels)?;
    let var = auc_variance(scores, labels)?;
    if a <= 0.0 || a >= 1.0 || var <= 0.0 {
        return Some((a, a));
    }
    let logit = (a / (1.0 - a)).ln();
    let half = Z95 * var.sqrt() / (a * (1.0 - a));
    let back = |v: f64| 1.0 / (1.0 + (-v).exp());
    Some((back(logit - half), back(logit + half)))
}

/// Exact (Clopper-Pearson) 95 % interval of a rate observed as `k` events in `n` trials, e.g.
/// false handoffs over calm calls: with 0 of 12 the true rate may still be up to 26 %.
/// `None` when `n` is 0 or `k > n`.
pub fn rate_ci95(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 || k > n {
        return None;
    }
    // Both bounds by bisection on P(X <= j), which falls as p rises.
    let solve = |j: usize, target: f64| {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if binomial_cdf(n, j, mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let upper = if k == n { 1.0 } else { solve(k, 0.025) };
    // The lower bound is where P(X >= k) = 1 - P(X <= k - 1) reaches 2.5 %.
    let lower = if k == 0 { 0.0 } else { solve(k - 1, 0.975) };
    Some((lower, upper))
}

/// P(X <= j) for X ~ Binomial(n, p), summed in log space so a large `n` does not underflow.
fn binomial_cdf(n: usize, j: usize, p: f64) -> f64 {
    if p <= 0.0 || j >= n {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_choose = 0.0f64;
    let mut top = f64::NEG_INFINITY;
    let mut terms = Vec::with_capacity(j + 1);
    for i in 0..=j {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        let t = log_choose + i as f64 * lp + (n - i) as f64 * lq;
        top = top.max(t);
        terms.push(t);
    }
    (top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()).exp()
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
            let label = (state >> 33).is_multiple_of(2);
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
    fn delong_variance_matches_a_hand_computed_case() {
        // Positives 0.9, 0.6, 0.4 against negatives 0.5, 0.3, 0.2: AUC 8/9; the positives'
        // shares are 1, 1, 2/3 and the negatives' 2/3, 1, 1, so S10 = S01 = 1/27 and the
        // variance is 1/27/3 + 1/27/3 = 2/81.
        let scores = [0.9, 0.6, 0.4, 0.5, 0.3, 0.2];
        let labels = [true, true, true, false, false, false];
        assert!((auc(&scores, &labels).unwrap() - 8.0 / 9.0).abs() < 1e-12);
        let var = auc_variance(&scores, &labels).unwrap();
        assert!((var - 2.0 / 81.0).abs() < 1e-12, "{var}");
        let (lo, hi) = auc_ci95(&scores, &labels).unwrap();
        assert!(
            lo < 8.0 / 9.0 && 8.0 / 9.0 < hi && hi < 1.0 && lo > 0.0,
            "{lo} {hi}"
        );
    }

    #[test]
    fn delong_interval_narrows_with_more_data_and_handles_edges() {
        let make = |n: usize| {
            let mut state = 99u64;
            let (mut s, mut l) = (Vec::new(), Vec::new());
            for i in 0..n {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let label = i % 3 == 0;
                s.push(((state >> 40) % 100) as f64 / 100.0 + if label { 0.3 } else { 0.0 });
                l.push(label);
            }
            (s, l)
        };
        let (s1, l1) = make(60);
        let (s2, l2) = make(600);
        let w = |s: &[f64], l: &[bool]| {
            let (lo, hi) = auc_ci95(s, l).unwrap();
            hi - lo
        };
        assert!(w(&s2, &l2) < 0.5 * w(&s1, &l1));
        // Ties count half in the variance too: all-tied scores give AUC 0.5, variance 0.
        assert_eq!(
            auc_variance(&[0.5; 6], &[true, false, true, false, true, false]),
            Some(0.0)
        );
        // Perfect separation: the interval is the point.
        assert_eq!(
            auc_ci95(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]),
            Some((1.0, 1.0))
        );
        // Too few of a class.
        assert_eq!(auc_variance(&[0.9, 0.2, 0.1], &[true, false, false]), None);
    }

    #[test]
    fn rate_intervals_match_published_clopper_pearson_values() {
        // 0 of 12: upper bound 1 - 0.025^(1/12) = 0.2646.
        let (lo, hi) = rate_ci95(0, 12).unwrap();
        assert_eq!(lo, 0.0);
        assert!(
            (hi - (1.0 - 0.025f64.powf(1.0 / 12.0))).abs() < 1e-9,
            "{hi}"
        );
        // 5 of 10: 0.1871-0.8129 (standard tables).
        let (lo, hi) = rate_ci95(5, 10).unwrap();
        assert!(
            (lo - 0.1871).abs() < 1e-4 && (hi - 0.8129).abs() < 1e-4,
            "{lo} {hi}"
        );
        // 12 of 12 mirrors 0 of 12.
        let (lo, hi) = rate_ci95(12, 12).unwrap();
        assert!((lo - 0.025f64.powf(1.0 / 12.0)).abs() < 1e-9 && hi == 1.0);
        // Large n does not underflow: 500 of 1000 sits around 0.4685-0.5315.
        let (lo, hi) = rate_ci95(500, 1000).unwrap();
        assert!(
            (lo - 0.4685).abs() < 1e-3 && (hi - 0.5315).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(rate_ci95(1, 0), None);
        assert_eq!(rate_ci95(3, 2), None);
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
