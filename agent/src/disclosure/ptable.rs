//! The perturbation table of the cell key method.
//!
//! For a count n the released value is n + d, where the deviation d is drawn, by the cell's
//! key in [0, 1), from a distribution p_n over -D..=D that
//! - keeps the released value outside 1..=js (n + d > js for n > js; zero stays zero),
//! - has mean zero (the noise is unbiased),
//! - has variance V where the support allows it, and
//! - has maximum entropy under these constraints: p(d) ∝ exp(mu·d - lambda·d²),
//!   the construction of the sdcTools `ptable` package used by SCB and Destatis.
//! Because the key is a deterministic function of the cell's persons, the same cell always
//! gets the same deviation, so asking again cannot average the noise away.

/// A perturbation table for parameters D, V and js.
#[derive(Debug, Clone, PartialEq)]
pub struct PTable {
    pub max_deviation: u32,
    pub variance: f64,
    pub js: u32,
    /// Rows for n = js+1 .. js+1+2D (the ones near the threshold); larger n use the last row.
    rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// Smallest deviation of the row.
    low: i64,
    /// Cumulative probabilities for deviations low, low+1, … (last is 1).
    cumulative: Vec<f64>,
}

fn moments(support: &[i64], mu: f64, lambda: f64) -> (Vec<f64>, f64, f64) {
    let logits: Vec<f64> = support.iter().map(|&d| mu * d as f64 - lambda * (d * d) as f64).collect();
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|x| x / total).collect();
    let mean = support.iter().zip(&p).map(|(&d, p)| d as f64 * p).sum::<f64>();
    let var = support.iter().zip(&p).map(|(&d, p)| (d as f64 - mean).powi(2) * p).sum::<f64>();
    (p, mean, var)
}

/// mu making the mean zero for a given lambda (the mean rises with mu).
fn zero_mean_mu(support: &[i64], lambda: f64) -> f64 {
    let (mut lo, mut hi) = (-60.0, 60.0);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if moments(support, mid, lambda).1 > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The maximum-entropy distribution on `support` with mean 0 and variance as close to `v`
/// as the support allows.
fn distribution(support: &[i64], v: f64) -> Vec<f64> {
    if support.iter().all(|&d| d >= 0) || support.iter().all(|&d| d <= 0) {
        // Only d = 0 has mean zero.
        return support.iter().map(|&d| if d == 0 { 1.0 } else { 0.0 }).collect();
    }
    // The variance falls as lambda rises; search lambda in a wide band.
    let var_at = |lambda: f64| {
        let mu = zero_mean_mu(support, lambda);
        moments(support, mu, lambda).2
    };
    let (mut lo, mut hi) = (-20.0, 60.0);
    if var_at(lo) < v {
        hi = lo; // the widest the support allows
    } else {
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if var_at(mid) > v {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let lambda = (lo + hi) / 2.0;
    let mu = zero_mean_mu(support, lambda);
    moments(support, mu, lambda).0
}

impl PTable {
    pub fn new(max_deviation: u32, variance: f64, js: u32) -> PTable {
        let d = max_deviation as i64;
        let first = js as i64 + 1;
        let mut rows = Vec::new();
        for n in first..=first + 2 * d {
            let low = (-d).max(first - n);
            let support: Vec<i64> = (low..=d).collect();
            let p = distribution(&support, variance);
            let mut acc = 0.0;
            let mut cumulative: Vec<f64> = p
                .iter()
                .map(|x| {
                    acc += x;
                    acc
                })
                .collect();
            if let Some(last) = cumulative.last_mut() {
                *last = 1.0;
            }
            rows.push(Row { low, cumulative });
        }
        PTable { max_deviation, variance, js, rows }
    }

    /// The deviation for count `n` with cell key `key` in [0, 1). Counts in 1..=js are never
    /// perturbed (they must have been withheld); zero stays zero.
    pub fn deviation(&self, n: i64, key: f64) -> i64 {
        if n <= self.js as i64 {
            return 0;
        }
        let i = ((n - self.js as i64 - 1) as usize).min(self.rows.len() - 1);
        let row = &self.rows[i];
        let pos = row.cumulative.iter().position(|&c| key < c).unwrap_or(row.cumulative.len() - 1);
        row.low + pos as i64
    }

    /// n plus its deviation.
    pub fn perturb(&self, n: i64, key: f64) -> i64 {
        n + self.deviation(n, key)
    }

    /// Mean and variance of the deviation for count n (for documentation and tests).
    pub fn row_moments(&self, n: i64) -> (f64, f64) {
        let i = ((n - self.js as i64 - 1).max(0) as usize).min(self.rows.len() - 1);
        let row = &self.rows[i];
        let mut prev = 0.0;
        let mut mean = 0.0;
        let mut sq = 0.0;
        for (j, c) in row.cumulative.iter().enumerate() {
            let p = c - prev;
            prev = *c;
            let d = (row.low + j as i64) as f64;
            mean += p * d;
            sq += p * d * d;
        }
        (mean, sq - mean * mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviations_are_unbiased_bounded_and_never_hit_the_forbidden_range() {
        let t = PTable::new(2, 1.0, 4);
        for n in 5..200 {
            let (mean, var) = t.row_moments(n);
            assert!(mean.abs() < 1e-6, "n={n}: mean {mean}");
            if n >= 7 {
                assert!((var - 1.0).abs() < 1e-6, "n={n}: variance {var}");
            }
            for i in 0..1000 {
                let key = i as f64 / 1000.0;
                let d = t.deviation(n, key);
                assert!(d.abs() <= 2);
                let released = n + d;
                assert!(released > 4, "n={n} key={key} released {released}");
            }
        }
        assert_eq!(t.perturb(0, 0.3), 0);
        // n = js + 1 can only move up or stay: mean zero forces it to stay.
        assert_eq!(t.row_moments(5), (0.0, 0.0));
    }

    #[test]
    fn the_deviation_follows_the_key_deterministically() {
        let t = PTable::new(2, 1.0, 4);
        let seen: std::collections::BTreeSet<i64> = (0..100).map(|i| t.deviation(50, i as f64 / 100.0)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![-2, -1, 0, 1, 2]);
        assert_eq!(t.deviation(50, 0.123), t.deviation(50, 0.123));
    }
}
