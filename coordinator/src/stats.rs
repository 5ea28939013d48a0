//! Indicator values and 95 % confidence intervals from additive components.
//!
//! - proportion: Wilson score interval;
//! - rate and count: exact (Garwood) Poisson interval on the count;
//! - mean: Student's t on n - 1 degrees of freedom, from the released standard deviation;
//! - cost sum: the cost per patient (total cost / distinct patients), Student's t on the
//!   patients' costs.
//!
//! Intervals treat released values as exact: they do not widen for the cell key method's
//! noise (at most ±2 by default on counts, a fraction of the largest contribution on sums),
//! which matters only for small cells.

use norrsken_model::catalog::Kind;
use statrs::function::beta::beta_reg;
use statrs::function::gamma::gamma_lr;

/// 1 - confidence level.
pub const ALPHA: f64 = 0.05;

pub use norrsken_model::comparison::Estimate;

/// A two-sided confidence level: 95 % or 99.8 % (the two levels of funnel plots and of
/// Fingertips-style comparisons).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level(pub f64);

impl Level {
    pub const P95: Level = Level(0.95);
    pub const P998: Level = Level(0.998);

    /// 1 - level.
    pub fn alpha(self) -> f64 {
        1.0 - self.0
    }

    /// The standard normal quantile of 1 - α/2 (1.96 for 95 %, 3.09 for 99.8 %).
    pub fn z(self) -> f64 {
        if self == Level::P95 {
            return 1.959_963_984_540_054;
        }
        normal_quantile(1.0 - self.alpha() / 2.0)
    }

    pub fn percent(self) -> String {
        let p = self.0 * 100.0;
        if (p - p.round()).abs() < 1e-9 { format!("{p:.0} %") } else { format!("{p:.1} %") }
    }
}

/// The `p` quantile of the standard normal distribution.
pub fn normal_quantile(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * statrs::function::erf::erf_inv(2.0 * p - 1.0)
}

/// The standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}

/// Wilson score interval for x successes out of n (95 %).
pub fn wilson(x: f64, n: f64) -> Option<Estimate> {
    wilson_at(x, n, Level::P95)
}

/// Wilson score interval at a level.
pub fn wilson_at(x: f64, n: f64, level: Level) -> Option<Estimate> {
    if n <= 0.0 || x < 0.0 || x > n {
        return None;
    }
    let z = level.z();
    let p = x / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let lower = if x == 0.0 { 0.0 } else { (centre - half).max(0.0) };
    let upper = if x == n { 1.0 } else { (centre + half).min(1.0) };
    Some(Estimate { value: p, lower, upper })
}

/// Solves `f(x) = p` for an increasing `f` on `[lo, hi]` by bisection to the last bits of
/// a double (the quantiles below need no more: every step halves the interval).
fn solve_increasing(f: impl Fn(f64) -> f64, p: f64, mut lo: f64, mut hi: f64) -> f64 {
    // Widen until the root is inside.
    while f(hi) < p && hi < 1e15 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The `p` quantile of the Gamma(shape `a`, scale 1) distribution: the `x` with
/// `P(a, x) = p` (regularized lower incomplete gamma).
pub fn gamma_quantile(p: f64, a: f64) -> f64 {
    solve_increasing(|x| gamma_lr(a, x), p, 0.0, a.max(1.0) * 2.0 + 10.0)
}

/// The `p` quantile (p >= 0.5) of Student's t with `df` degrees of freedom, from the
/// regularized incomplete beta function: `P(T <= t) = 1 - I_{df/(df+t²)}(df/2, 1/2) / 2`.
///
/// Above 10,000 degrees of freedom the incomplete beta function loses digits, and the
/// Cornish-Fisher expansion around the normal quantile (Abramowitz and Stegun 26.7.5) is
/// exact to double precision instead.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if df >= 1e4 {
        let z = normal_quantile(p);
        let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
        return z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
            + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3));
    }
    let cdf = |t: f64| 1.0 - 0.5 * beta_reg(df / 2.0, 0.5, df / (df + t * t));
    solve_increasing(cdf, p, 0.0, 1000.0)
}

/// Exact (Garwood) Poisson interval for an observed count: the lower bound is the α/2
/// quantile of Gamma(x), the upper the 1-α/2 quantile of Gamma(x+1) (equivalently
/// χ²(α/2; 2x)/2 and χ²(1-α/2; 2x+2)/2), solved to double precision.
pub fn poisson(x: f64) -> Option<Estimate> {
    poisson_at(x, Level::P95)
}

/// Exact Poisson interval at a level.
pub fn poisson_at(x: f64, level: Level) -> Option<Estimate> {
    if x < 0.0 || !x.is_finite() {
        return None;
    }
    let a = level.alpha();
    let lower = if x == 0.0 { 0.0 } else { gamma_quantile(a / 2.0, x) };
    let upper = gamma_quantile(1.0 - a / 2.0, x + 1.0);
    Some(Estimate { value: x, lower, upper })
}

/// Fay and Feuer's (1997) gamma interval for a directly standardised value: with
/// `y` = Σ wᵢxᵢ/nᵢ, `v` = Σ wᵢ²xᵢ/nᵢ² and `wm` = max wᵢ/nᵢ, the lower limit is the α/2 quantile
/// of Gamma(shape y²/v, scale v/y) and the upper the 1-α/2 quantile of Gamma(shape
/// (y+wm)²/(v+wm²), scale (v+wm²)/(y+wm)). It reduces to the exact Poisson interval when
/// there is one stratum, and keeps its coverage when events are few (Dobson's normal-based
/// limits do not below 10 events).
pub fn fay_feuer_at(s: &norrsken_model::standard::Standardised, level: Level) -> Option<Estimate> {
    let (y, v, wm) = (s.value, s.var, s.wmax);
    if !(y >= 0.0 && v >= 0.0 && wm > 0.0) || !y.is_finite() {
        return None;
    }
    let a = level.alpha();
    let lower = if y == 0.0 || v == 0.0 { 0.0 } else { gamma_quantile(a / 2.0, y * y / v) * v / y };
    let (yu, vu) = (y + wm, v + wm * wm);
    let upper = gamma_quantile(1.0 - a / 2.0, yu * yu / vu) * vu / yu;
    Some(Estimate { value: y, lower, upper })
}

/// The `p` quantile of the χ² distribution with `df` degrees of freedom.
pub fn chi2_quantile(p: f64, df: f64) -> f64 {
    2.0 * gamma_quantile(p, df / 2.0)
}

/// Mean with a t interval, from n, sum and the standard deviation of the values.
pub fn mean(n: f64, sum: f64, sd: Option<f64>) -> Option<Estimate> {
    mean_at(n, sum, sd, Level::P95)
}

/// Mean with a t interval at a level.
pub fn mean_at(n: f64, sum: f64, sd: Option<f64>, level: Level) -> Option<Estimate> {
    if n < 1.0 {
        return None;
    }
    let m = sum / n;
    let Some(sd) = sd.filter(|_| n >= 2.0) else {
        return Some(Estimate { value: m, lower: f64::NAN, upper: f64::NAN });
    };
    let t = t_quantile(1.0 - level.alpha() / 2.0, n - 1.0);
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
    estimate_at(kind, numerator, denominator, sum, sd, rate_per, Level::P95)
}

/// [`estimate`] at a level.
pub fn estimate_at(kind: Kind, numerator: Option<i64>, denominator: Option<i64>, sum: Option<f64>, sd: Option<f64>, rate_per: f64, level: Level) -> Option<Estimate> {
    match kind {
        Kind::Proportion => wilson_at(numerator? as f64, denominator? as f64, level),
        Kind::Rate => {
            let pop = denominator? as f64;
            if pop <= 0.0 {
                return None;
            }
            let e = poisson_at(numerator? as f64, level)?;
            let k = rate_per / pop;
            Some(Estimate { value: e.value * k, lower: e.lower * k, upper: e.upper * k })
        }
        Kind::Count => poisson_at(numerator? as f64, level),
        Kind::Mean => mean_at(denominator? as f64, sum?, sd, level),
        // Cost per patient: the denominator counts the distinct patients.
        Kind::CostSum => mean_at(denominator? as f64, sum?, sd, level),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn fay_feuer_matches_the_dsrtest_vignette() {
        // dsrTest vignette (birth order 5+ example): per 100,000 DSR 75.52901, 95 % gamma
        // interval 67.70212 to 188.30017.
        let counts = [0.0, 8.0, 63.0, 112.0, 262.0, 295.0];
        let pop = [327.0, 30666.0, 123419.0, 149919.0, 104088.0, 34392.0];
        let std = [319933.0, 931318.0, 786511.0, 488235.0, 237863.0, 61313.0];
        let total: f64 = std.iter().sum();
        let w: Vec<f64> = std.iter().map(|s| s / total).collect();
        let strata: Vec<(f64, f64)> = counts.iter().zip(pop).map(|(&x, n)| (x, n)).collect();
        let d = norrsken_model::standard::standardise(&strata, &w).unwrap();
        let e = fay_feuer_at(&d, Level::P95).unwrap();
        let k = 1e5;
        assert!(close(e.value * k, 75.52901, 1e-4), "{e:?}");
        assert!(close(e.lower * k, 67.70212, 1e-4), "{e:?}");
        assert!(close(e.upper * k, 188.30017, 1e-4), "{e:?}");
        // One stratum: the exact Poisson interval.
        let one = norrsken_model::standard::standardise(&[(7.0, 1.0)], &[1.0]).unwrap();
        let (f, p) = (fay_feuer_at(&one, Level::P95).unwrap(), poisson(7.0).unwrap());
        assert!(close(f.lower, p.lower, 1e-9) && close(f.upper, p.upper, 1e-9), "{f:?} {p:?}");
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

    /// Against mpmath (30 digits): the boundaries where an early-stopping search went wrong
    /// (counts 125 to 153) and far beyond.
    #[test]
    fn poisson_intervals_hold_to_their_definition_for_every_count() {
        let table = [
            (1.0, 0.025_317_807_984_3, 5.571_643_390_94),
            (5.0, 1.623_486_390_12, 11.668_332_079_3),
            (100.0, 81.363_991_250_9, 121.626_793_792),
            (124.0, 103.136_784_511, 147.844_314_089),
            (125.0, 104.048_899_073, 148.931_856_947),
            (129.0, 107.700_828_722, 153.278_596_607),
            (140.0, 117.770_571_233, 165.205_490_401),
            (153.0, 129.717_175_252, 179.255_384_103),
            (154.0, 130.638_035_308, 180.334_272_984),
            (1000.0, 938.973_018_408, 1063.952_136_02),
        ];
        for (x, lo, hi) in table {
            let e = poisson(x).unwrap();
            assert!(close(e.lower, lo, 1e-8 * lo.max(1.0)) && close(e.upper, hi, 1e-8 * hi), "{x}: {e:?}");
        }
        // Coverage of the definition itself at every count up to 2,000.
        for x in 1..=2000 {
            let e = poisson(x as f64).unwrap();
            assert!((gamma_lr(x as f64, e.lower) - 0.025).abs() < 1e-10, "{x}");
            assert!((gamma_lr(x as f64 + 1.0, e.upper) - 0.975).abs() < 1e-10, "{x}");
        }
    }

    /// Against mpmath: t quantiles for small and very large degrees of freedom.
    #[test]
    fn t_quantiles_hold_for_every_n() {
        let table = [
            (1.0, 12.706_204_736_175),
            (4.0, 2.776_445_105_197_8),
            (10.0, 2.228_138_851_986_3),
            (100.0, 1.983_971_518_523_6),
            (1000.0, 1.962_339_080_826_4),
            (100_000.0, 1.959_987_707_534_6),
            (10_000_000.0, 1.959_964_221_767_2),
        ];
        for (df, t) in table {
            assert!(close(t_quantile(0.975, df), t, 1e-9), "{df}: {}", t_quantile(0.975, df));
        }
    }

    #[test]
    fn mean_uses_t() {
        // values 1..=5: mean 3, sd 1.5811, t(4) = 2.776 -> half width 1.963
        let (n, sum, sq) = (5.0, 15.0, 55.0);
        let sd = standard_deviation(n, sum, sq);
        let e = mean(n, sum, sd).unwrap();
        assert!(close(e.value, 3.0, 1e-12) && close(e.upper - e.value, 1.963, 1e-3), "{e:?}");
        assert!(close(sum_of_squares(n, sum, sd.unwrap()), 55.0, 1e-9));
        // Cost per patient: the same interval on the patients' costs.
        let c = estimate(Kind::CostSum, Some(9), Some(5), Some(15.0), sd, 0.0).unwrap();
        assert!(close(c.value, 3.0, 1e-12) && close(c.upper, e.upper, 1e-9));
    }
}
