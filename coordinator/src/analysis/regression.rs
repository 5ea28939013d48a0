//! Straight-line fits: weighted least squares as linear combinations of the observations
//! (so the variance of any coefficient follows from the observations' variances), and
//! two-parameter generalised linear models (Poisson log-linear with an exposure offset,
//! binomial logistic) by iteratively reweighted least squares.

/// The weights `ca`, `cb` with intercept = Σ caᵢyᵢ and slope = Σ cbᵢyᵢ for the weighted
/// least-squares line through `(x, y)` with weights `w`; None when x does not vary.
pub fn wls_coefficients(x: &[f64], w: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for (&xi, &wi) in x.iter().zip(w) {
        s0 += wi;
        s1 += wi * xi;
        s2 += wi * xi * xi;
    }
    let det = s0 * s2 - s1 * s1;
    if !(det.abs() > 1e-12 * s0.max(1.0) * s2.max(1.0)) {
        return None;
    }
    let ca = x.iter().zip(w).map(|(&xi, &wi)| wi * (s2 - s1 * xi) / det).collect();
    let cb = x.iter().zip(w).map(|(&xi, &wi)| wi * (s0 * xi - s1) / det).collect();
    Some((ca, cb))
}

/// Σ cᵢyᵢ.
pub fn dot(c: &[f64], y: &[f64]) -> f64 {
    c.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// The model family of a trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Family {
    /// Counts with exposure: log μ = a + b·t + log(exposure).
    Poisson,
    /// Successes of trials: logit p = a + b·t.
    Binomial,
}

/// The mean and variance of an observation with linear predictor `eta` and exposure or
/// trials `n`.
fn mean_variance(family: Family, eta: f64, n: f64) -> (f64, f64) {
    match family {
        Family::Poisson => {
            let mu = n * eta.exp();
            (mu, mu)
        }
        Family::Binomial => {
            let pr = 1.0 / (1.0 + (-eta).exp());
            (n * pr, n * pr * (1.0 - pr))
        }
    }
}

/// A fitted slope with its model-based standard error and the Pearson dispersion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub intercept: f64,
    pub slope: f64,
    pub se: f64,
    /// Pearson χ² / (k - 2); NaN with two points.
    pub dispersion: f64,
    pub df: f64,
}

/// Fits `family` to points `(t, y, n)`: y events in exposure n (Poisson) or y successes of
/// n trials (binomial). None when the fit does not exist (all zero, all successes, fewer
/// than two distinct t) or does not converge.
pub fn glm(family: Family, points: &[(f64, f64, f64)]) -> Option<Fit> {
    let k = points.len();
    if k < 2 || points.iter().any(|p| !(p.2 > 0.0) || p.1 < 0.0) {
        return None;
    }
    let total_y: f64 = points.iter().map(|p| p.1).sum();
    let total_n: f64 = points.iter().map(|p| p.2).sum();
    if total_y <= 0.0 || (family == Family::Binomial && total_y >= total_n) {
        return None;
    }
    let tbar = points.iter().map(|p| p.0).sum::<f64>() / k as f64;
    let ts: Vec<f64> = points.iter().map(|p| p.0 - tbar).collect();
    let p0 = total_y / total_n;
    let (mut a, mut b) = match family {
        Family::Poisson => (p0.ln(), 0.0),
        Family::Binomial => ((p0 / (1.0 - p0)).ln(), 0.0),
    };
    let mut converged = false;
    let mut info = (0.0, 0.0, 0.0);
    for _ in 0..100 {
        let (mut z, mut w) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for (p, &t) in points.iter().zip(&ts) {
            let eta = a + b * t;
            let (mu, var) = mean_variance(family, eta, p.2);
            if !(var > 1e-300) || !mu.is_finite() {
                return None;
            }
            z.push(eta + (p.1 - mu) / var);
            w.push(var);
        }
        let (ca, cb) = wls_coefficients(&ts, &w)?;
        let (na, nb) = (dot(&ca, &z), dot(&cb, &z));
        let s0: f64 = w.iter().sum();
        let s1: f64 = w.iter().zip(&ts).map(|(w, t)| w * t).sum();
        let s2: f64 = w.iter().zip(&ts).map(|(w, t)| w * t * t).sum();
        info = (s0, s1, s2);
        let step = (na - a).abs() + (nb - b).abs();
        a = na;
        b = nb;
        if !a.is_finite() || !b.is_finite() {
            return None;
        }
        if step < 1e-12 {
            converged = true;
            break;
        }
    }
    if !converged {
        return None;
    }
    let (s0, s1, s2) = info;
    let det = s0 * s2 - s1 * s1;
    let se = (s0 / det).sqrt();
    let mut chi2 = 0.0;
    for (p, &t) in points.iter().zip(&ts) {
        let (mu, var) = mean_variance(family, a + b * t, p.2);
        chi2 += (p.1 - mu).powi(2) / var;
    }
    let df = (k - 2) as f64;
    Some(Fit { intercept: a - b * tbar, slope: b, se, dispersion: if df > 0.0 { chi2 / df } else { f64::NAN }, df })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_least_squares_is_a_linear_combination() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let w = [1.0, 2.0, 1.0, 3.0];
        let y: Vec<f64> = x.iter().map(|x| 2.0 + 0.5 * x).collect();
        let (ca, cb) = wls_coefficients(&x, &w).unwrap();
        assert!((dot(&ca, &y) - 2.0).abs() < 1e-12 && (dot(&cb, &y) - 0.5).abs() < 1e-12);
        assert!(wls_coefficients(&[1.0, 1.0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn poisson_and_logistic_fits_match_an_independent_solution() {
        // Exact exponential data: the slope is recovered exactly and nothing is left over.
        let pts: Vec<(f64, f64, f64)> = (0..5).map(|t| (2021.0 + t as f64, 100.0 * 1.1f64.powi(t), 1000.0)).collect();
        let fit = glm(Family::Poisson, &pts).unwrap();
        assert!((fit.slope - 1.1f64.ln()).abs() < 1e-10, "{fit:?}");
        assert!(fit.dispersion < 1e-12);
        // Reference by Newton's method in double precision (Python, written separately):
        // y = 12, 19, 15, 27, 30 of n = 200, 210, 190, 220, 205 at t = 0..4:
        // logistic slope 0.2319802, se 0.0759609; Poisson slope 0.2084483, se 0.0719142.
        let pts: Vec<(f64, f64, f64)> = [(12.0, 200.0), (19.0, 210.0), (15.0, 190.0), (27.0, 220.0), (30.0, 205.0)]
            .iter()
            .enumerate()
            .map(|(t, &(y, n))| (t as f64, y, n))
            .collect();
        let l = glm(Family::Binomial, &pts).unwrap();
        assert!((l.slope - 0.2319802).abs() < 1e-6 && (l.se - 0.0759609).abs() < 1e-6, "{l:?}");
        let p = glm(Family::Poisson, &pts).unwrap();
        assert!((p.slope - 0.2084483).abs() < 1e-6 && (p.se - 0.0719142).abs() < 1e-6, "{p:?}");
        // No events: no fit, not a panic.
        assert!(glm(Family::Poisson, &[(0.0, 0.0, 10.0), (1.0, 0.0, 10.0)]).is_none());
    }
}
