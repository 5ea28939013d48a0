//! Indicator values and 95 % confidence intervals from additive components.
//!
//! - proportion: Wilson score interval;
//! - rate and count: exact (Garwood) Poisson interval on the count;
//! - mean: Student's t on n - 1 degrees of freedom, from the released standard deviation;
//! - cost sum: t interval on the mean, scaled by n.
//!
//! Intervals treat released values as exact: they do not widen for the cell key method's
//! noise (at most ±2 by default on counts, a fraction of the largest contribution on sums),
//! which matters only for small cells.

use norrsken_common::catalog::Kind;
use statrs::distribution::{ChiSquared, ContinuousCDF, StudentsT};

/// 1 - confidence level.
pub const ALPHA: f64 = 0.05;
const Z: f64 = 1.959_963_984_540_054;

pub use norrsken_common::comparison::Estimate;

/// Wilson score interval for x successes out of n.
pub fn wilson(x: f64, n: f64) -> Option<Estimate> {
    if n <= 0.0 || x < 0.0 || x > n {
        return None;
    }
    let p = x / n;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Estimate { value: p, lower: (centre - half).max(0.0), upper: (centre + half).min(1.0) })
}

/// Exact Poisson interval for an observed count.
pub fn poisson(x: f64) -> Option<Estimate> {
    if x < 0.0 {
        return None;
    }
    let lower = if x == 0.0 { 0.0 } else { ChiSquared::new(2.0 * x).ok()?.inverse_cdf(ALPHA / 2.0) / 2.0 };
    let upper = ChiSquared::new(2.0 * x + 2.0).ok()?.inverse_cdf(1.0 - ALPHA / 2.0) / 2.0;
    Some(Estimate { value: x, lower, upper })
}

/// Mean with a t interval, from n, sum and the standard deviation of the values.
pub fn mean(n: f64, sum: f64, sd: Option<f64>) -> Option<Estimate> {
    if n < 1.0 {
        return None;
    }
    let m = sum / n;
    let Some(sd) = sd.filter(|_| n >= 2.0) else {
        return Some(Estimate { value: m, lower: f64::NAN, upper: f64::NAN });
    };
    let t = StudentsT::new(0.0, 1.0, n - 1.0).ok()?.inverse_cdf(1.0 - ALPHA / 2.0);
    let half = t * sd / n.sqrt();
    Some(Estimate { value: m, lower: m - half, upper: m + half })
}

/// The sum of squares behind n values with this sum and standard deviation (what pooling
/// adds up).
pub fn sum_of_squares(n: f64, sum: f64, sd: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    (n - 1.0).max(0.0) * sd * sd + sum * sum / n
}

/// The standard deviation of n values with this sum and sum of squares.
pub fn standard_deviation(n: f64, sum: f64, sum_sq: f64) -> Option<f64> {
    (n >= 2.0).then(|| ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt())
}

/// The value and interval of a row of the given kind. `rate_per` scales rates.
pub fn estimate(kind: Kind, numerator: Option<i64>, denominator: Option<i64>, sum: Option<f64>, sd: Option<f64>, rate_per: f64) -> Option<Estimate> {
    match kind {
        Kind::Proportion => wilson(numerator? as f64, denominator? as f64),
        Kind::Rate => {
            let pop = denominator? as f64;
            if pop <= 0.0 {
                return None;
            }
            let e = poisson(numerator? as f64)?;
            let k = rate_per / pop;
            Some(Estimate { value: e.value * k, lower: e.lower * k, upper: e.upper * k })
        }
        Kind::Count => poisson(numerator? as f64),
        Kind::Mean => mean(denominator? as f64, sum?, sd),
        Kind::CostSum => {
            let n = denominator? as f64;
            let m = mean(n, sum?, sd)?;
            Some(Estimate { value: sum?, lower: m.lower * n, upper: m.upper * n })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_published_values() {
        // 81 of 263 (Newcombe 1998 example 1 style check): 0.2553 to 0.3662.
        let e = wilson(81.0, 263.0).unwrap();
        assert!(close(e.lower, 0.2553, 5e-4) && close(e.upper, 0.3662, 5e-4), "{e:?}");
        let zero = wilson(0.0, 10.0).unwrap();
        assert_eq!(zero.lower, 0.0);
        assert!(close(zero.upper, 0.2775, 5e-4), "{zero:?}");
        assert!(wilson(3.0, 0.0).is_none());
        assert!(wilson(5.0, 3.0).is_none());
    }

    #[test]
    fn poisson_exact_matches_tables() {
        // Garwood intervals: x = 0: 0..3.689; x = 10: 4.795..18.390.
        let e = poisson(0.0).unwrap();
        assert!(close(e.upper, 3.689, 1e-3), "{e:?}");
        let e = poisson(10.0).unwrap();
        assert!(close(e.lower, 4.795, 1e-3) && close(e.upper, 18.390, 1e-3), "{e:?}");
        let r = estimate(Kind::Rate, Some(10), Some(2000), None, None, 1000.0).unwrap();
        assert!(close(r.value, 5.0, 1e-12) && close(r.lower, 2.3975, 1e-3), "{r:?}");
    }

    #[test]
    fn mean_uses_t() {
        // values 1..=5: mean 3, sd 1.5811, t(4) = 2.776 -> half width 1.963
        let (n, sum, sq) = (5.0, 15.0, 55.0);
        let sd = standard_deviation(n, sum, sq);
        let e = mean(n, sum, sd).unwrap();
        assert!(close(e.value, 3.0, 1e-12) && close(e.upper - e.value, 1.963, 1e-3), "{e:?}");
        assert!(close(sum_of_squares(n, sum, sd.unwrap()), 55.0, 1e-9));
        let c = estimate(Kind::CostSum, None, Some(5), Some(15.0), sd, 0.0).unwrap();
        assert!(close(c.value, 15.0, 1e-12) && close(c.upper, 5.0 * e.upper, 1e-9));
    }
}
