//! Weighted, L2-regularised logistic regression on standardised features, fitted by Newton's
//! method (deterministic: fixed start, fixed iteration order, no randomness).

// Dense linear algebra over small matrices reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

/// A fitted model, in the units of the raw features.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// Per-feature mean used for standardising.
    pub means: Vec<f64>,
    /// Per-feature standard deviation used for standardising (> 0).
    pub stds: Vec<f64>,
    /// Weights on the standardised features.
    pub weights: Vec<f64>,
    /// Bias.
    pub bias: f64,
}

impl Logistic {
    /// The linear predictor `w·z + b` for one row.
    pub fn margin(&self, x: &[f64]) -> f64 {
        self.bias
            + x.iter()
                .zip(&self.means)
                .zip(&self.stds)
                .zip(&self.weights)
                .map(|(((x, m), s), w)| w * (x - m) / s)
                .sum::<f64>()
    }

    /// The probability of the positive class for one row.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let m = self.margin(x);
        if m >= 0.0 {
            1.0 / (1.0 + (-m).exp())
        } else {
            let e = m.exp();
            e / (1.0 + e)
        }
    }
}

/// Fits `P(y) = sigmoid(w·z + b)` with sample weights and an L2 penalty `l2 · |w|²/2` (the bias
/// is not penalised). Rows must all have the same length; returns `None` without rows, without
/// both classes, or when the system is degenerate.
pub fn fit(
    rows: &[Vec<f64>],
    labels: &[bool],
    sample_weights: &[f64],
    l2: f64,
) -> Option<Logistic> {
    let n = rows.len();
    if n == 0 || labels.len() != n || sample_weights.len() != n {
        return None;
    }
    let d = rows[0].len();
    if rows.iter().any(|r| r.len() != d) {
        return None;
    }
    let w_pos: f64 = (0..n)
        .filter(|&i| labels[i])
        .map(|i| sample_weights[i])
        .sum();
    let w_all: f64 = sample_weights.iter().sum();
    if w_pos <= 0.0 || w_pos >= w_all {
        return None;
    }
    let mut means = vec![0.0; d];
    let mut stds = vec![0.0; d];
    for (r, sw) in rows.iter().zip(sample_weights) {
        for k in 0..d {
            means[k] += sw * r[k];
        }
    }
    means.iter_mut().for_each(|m| *m /= w_all);
    for (r, sw) in rows.iter().zip(sample_weights) {
        for k in 0..d {
            stds[k] += sw * (r[k] - means[k]).powi(2);
        }
    }
    // A constant feature gets std 1 so it standardises to 0 and carries no weight.
    stds.iter_mut().for_each(|s| {
        *s = (*s / w_all).sqrt();
        if s.is_nan() || *s <= 1e-9 {
            *s = 1.0;
        }
    });
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| (0..d).map(|k| (r[k] - means[k]) / stds[k]).collect())
        .collect();
    // Parameters: weights 0..d, bias at d. Penalty scaled by total weight so `l2` does not
    // depend on how many rows there are.
    let p = d + 1;
    let lambda = l2 * w_all;
    let mut beta = vec![0.0; p];
    beta[d] = (w_pos / (w_all - w_pos)).ln();
    for _ in 0..100 {
        let mut grad = vec![0.0; p];
        let mut hess = vec![vec![0.0; p]; p];
        for i in 0..n {
            let zi = &z[i];
            let m = beta[d] + (0..d).map(|k| beta[k] * zi[k]).sum::<f64>();
            let mu = 1.0 / (1.0 + (-m).exp());
            let y = if labels[i] { 1.0 } else { 0.0 };
            let sw = sample_weights[i];
            let r = sw * (mu - y);
            let h = sw * (mu * (1.0 - mu)).max(1e-12);
            for a in 0..p {
                let za = if a == d { 1.0 } else { zi[a] };
                grad[a] += r * za;
                for b in a..p {
                    let zb = if b == d { 1.0 } else { zi[b] };
                    hess[a][b] += h * za * zb;
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                hess[a][b] = hess[b][a];
            }
        }
        for k in 0..d {
            grad[k] += lambda * beta[k];
            hess[k][k] += lambda;
        }
        let step = solve(hess, grad)?;
        let mut max_step: f64 = 0.0;
        for k in 0..p {
            // Damped so a separable problem walks rather than jumps to huge weights.
            let s = step[k].clamp(-5.0, 5.0);
            beta[k] -= s;
            max_step = max_step.max(s.abs());
        }
        if max_step < 1e-9 {
            break;
        }
    }
    if beta.iter().any(|b| !b.is_finite()) {
        return None;
    }
    Some(Logistic {
        means,
        stds,
        weights: beta[..d].to_vec(),
        bias: beta[d],
    })
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            if f != 0.0 {
                for k in col..n {
                    a[row][k] -= f * a[col][k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_separable_toy_problem() {
        // Positive when 2·x0 − x1 > 1; x2 is noise; x3 is constant.
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut s = 7u64;
        for _ in 0..400 {
            let mut r = Vec::new();
            for _ in 0..3 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                r.push(((s >> 33) % 1000) as f64 / 250.0 - 2.0);
            }
            r.push(3.0);
            labels.push(2.0 * r[0] - r[1] > 1.0);
            rows.push(r);
        }
        let w = vec![1.0; rows.len()];
        let m = fit(&rows, &labels, &w, 1e-3).unwrap();
        let correct = rows
            .iter()
            .zip(&labels)
            .filter(|(r, l)| (m.predict(r) >= 0.5) == **l)
            .count();
        assert!(correct >= 396, "{correct}/400");
        // Direction of the boundary: w0/σ0 ≈ −2·w1/σ1, noise weight small, constant unused.
        let (a, b) = (m.weights[0] / m.stds[0], m.weights[1] / m.stds[1]);
        assert!(a > 0.0 && b < 0.0 && (a / -b - 2.0).abs() < 0.3, "{a} {b}");
        assert!(m.weights[2].abs() < 0.15 * m.weights[0].abs());
        assert_eq!(m.weights[3], 0.0);
    }

    #[test]
    fn is_deterministic_and_honours_weights() {
        let rows: Vec<Vec<f64>> = (0..20).map(|i| vec![i as f64]).collect();
        let labels: Vec<bool> = (0..20).map(|i| i >= 10 || i == 3).collect();
        let w = vec![1.0; 20];
        let a = fit(&rows, &labels, &w, 0.1).unwrap();
        assert_eq!(a, fit(&rows, &labels, &w, 0.1).unwrap());
        // Weighting the negatives up lowers the predicted probability everywhere.
        let heavy: Vec<f64> = labels.iter().map(|l| if *l { 1.0 } else { 5.0 }).collect();
        let b = fit(&rows, &labels, &heavy, 0.1).unwrap();
        assert!(b.predict(&[10.0]) < a.predict(&[10.0]));
    }

    #[test]
    fn refuses_single_class_or_empty_input() {
        assert!(fit(&[], &[], &[], 0.1).is_none());
        assert!(fit(&[vec![1.0], vec![2.0]], &[true, true], &[1.0, 1.0], 0.1).is_none());
    }
}
