//! Meta-analysis of per-region effects (docs/analysis.md, "Meta-analysis across regions"):
//! whether an effect seen in several regions is general.
//!
//! Inputs are one effect estimate y_i and its sampling variance v_i per region. Computed:
//!
//! - the fixed (common) effect: inverse-variance weights w_i = 1/v_i;
//! - Cochran's Q = Σ w_i (y_i − μ_FE)² on k − 1 degrees of freedom;
//! - the between-region variance τ² by DerSimonian and Laird (1986) and by restricted
//!   maximum likelihood (REML, Fisher scoring; Viechtbauer 2005);
//! - the random-effects estimate with weights 1/(v_i + τ²), its normal (Wald) interval and
//!   the Hartung and Knapp (2001) interval on t(k − 1);
//! - I² = τ² / (τ² + s²) with the typical within-region variance
//!   s² = (k − 1) Σw / ((Σw)² − Σw²) (Higgins and Thompson 2002; for DL this is (Q − df)/Q),
//!   and its interval from the test-based interval of H = √(Q/df) (Higgins and Thompson
//!   2002, appendix);
//! - the prediction interval for a new region, μ ± t(k − 2) √(τ² + SE²) (Higgins, Thompson
//!   and Spiegelhalter 2009; IntHout et al. 2016).

use crate::stats::{normal_quantile, t_quantile};

/// How τ² is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tau2 {
    DerSimonianLaird,
    Reml,
}

/// An estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// A meta-analysis of k effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub k: usize,
    /// The fixed (common) effect and its standard error.
    pub fixed: f64,
    pub fixed_se: f64,
    pub q: f64,
    /// P(χ²(k − 1) ≥ Q).
    pub q_p: f64,
    pub tau2: f64,
    pub method: Tau2,
    /// The random-effects estimate, its standard error and Wald interval.
    pub random: f64,
    pub random_se: f64,
    pub wald: Interval,
    /// The Hartung-Knapp interval (t on k − 1 degrees of freedom).
    pub hartung_knapp: Interval,
    pub hk_se: f64,
    /// I² (a share, 0..1) and H² with I²'s interval.
    pub i2: f64,
    pub h2: f64,
    pub i2_interval: (f64, f64),
    /// For a new region (None with fewer than three regions).
    pub prediction: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetaError {
    #[error("a meta-analysis needs at least two regions' effects; {0} given")]
    TooFew(usize),
    #[error("effect {index}: {problem}")]
    Invalid { index: usize, problem: String },
}

fn weighted_mean(y: &[f64], w: &[f64]) -> (f64, f64) {
    let sw: f64 = w.iter().sum();
    (y.iter().zip(w).map(|(y, w)| y * w).sum::<f64>() / sw, sw)
}

/// DerSimonian-Laird τ².
fn tau2_dl(y: &[f64], v: &[f64]) -> f64 {
    let w: Vec<f64> = v.iter().map(|v| 1.0 / v).collect();
    let (mu, sw) = weighted_mean(y, &w);
    let q: f64 = y.iter().zip(&w).map(|(y, w)| w * (y - mu).powi(2)).sum();
    let sw2: f64 = w.iter().map(|w| w * w).sum();
    ((q - (y.len() as f64 - 1.0)) / (sw - sw2 / sw)).max(0.0)
}

/// REML τ² by Fisher scoring from the DL value, truncated at zero.
fn tau2_reml(y: &[f64], v: &[f64]) -> f64 {
    let mut tau2 = tau2_dl(y, v);
    for _ in 0..1000 {
        let w: Vec<f64> = v.iter().map(|v| 1.0 / (v + tau2)).collect();
        let (mu, sw) = weighted_mean(y, &w);
        let sw2: f64 = w.iter().map(|w| w * w).sum();
        // The REML score and information for τ².
        let score: f64 = y.iter().zip(&w).map(|(y, w)| w * w * (y - mu).powi(2)).sum::<f64>() - sw + sw2 / sw;
        let sw3: f64 = w.iter().map(|w| w * w * w).sum();
        let info = sw2 - 2.0 * sw3 / sw + (sw2 / sw).powi(2);
        let next = (tau2 + score / info).max(0.0);
        let done = (next - tau2).abs() < 1e-12;
        tau2 = next;
        if done {
            break;
        }
    }
    tau2
}

/// The upper tail of χ²(df) at x.
fn chi2_upper(x: f64, df: f64) -> f64 {
    1.0 - statrs::function::gamma::gamma_lr(df / 2.0, x / 2.0)
}

/// Meta-analyses effects `y` with sampling variances `v` at confidence `level` (e.g. 0.95).
pub fn meta_analyse(y: &[f64], v: &[f64], method: Tau2, level: f64) -> Result<Meta, MetaError> {
    let k = y.len();
    if k < 2 || v.len() != k {
        return Err(MetaError::TooFew(k.min(v.len())));
    }
    for (index, (y, v)) in y.iter().zip(v).enumerate() {
        if !y.is_finite() {
            return Err(MetaError::Invalid { index, problem: format!("the effect {y} is not a number") });
        }
        if !(v.is_finite() && *v > 0.0) {
            return Err(MetaError::Invalid { index, problem: format!("the variance {v} is not positive") });
        }
    }
    let df = k as f64 - 1.0;
    let w: Vec<f64> = v.iter().map(|v| 1.0 / v).collect();
    let (fixed, sw) = weighted_mean(y, &w);
    let q: f64 = y.iter().zip(&w).map(|(y, w)| w * (y - fixed).powi(2)).sum();
    let tau2 = match method {
        Tau2::DerSimonianLaird => tau2_dl(y, v),
        Tau2::Reml => tau2_reml(y, v),
    };
    let ws: Vec<f64> = v.iter().map(|v| 1.0 / (v + tau2)).collect();
    let (random, sws) = weighted_mean(y, &ws);
    let random_se = (1.0 / sws).sqrt();
    let z = normal_quantile(0.5 + level / 2.0);
    let wald = Interval { estimate: random, lower: random - z * random_se, upper: random + z * random_se };
    let hk_q: f64 = y.iter().zip(&ws).map(|(y, w)| w * (y - random).powi(2)).sum::<f64>() / df;
    let hk_se = (hk_q / sws).sqrt();
    let t = t_quantile(0.5 + level / 2.0, df);
    let hartung_knapp = Interval { estimate: random, lower: random - t * hk_se, upper: random + t * hk_se };
    let sw2: f64 = w.iter().map(|w| w * w).sum();
    let s2 = df * sw / (sw * sw - sw2);
    let i2 = tau2 / (tau2 + s2);
    let h2 = (tau2 + s2) / s2;
    // Higgins and Thompson (2002): a test-based interval for ln H, H = √(Q/df).
    let i2_interval = if k > 2 && q > 0.0 {
        let ln_h = 0.5 * (q / df).ln();
        let kf = k as f64;
        let se = if q > kf {
            0.5 * (q.ln() - df.ln()) / ((2.0 * q).sqrt() - (2.0 * kf - 3.0).sqrt())
        } else {
            (1.0 / (2.0 * (kf - 2.0)) * (1.0 - 1.0 / (3.0 * (kf - 2.0).powi(2)))).sqrt()
        };
        let i2_of = |ln_h: f64| {
            let h2 = (2.0 * ln_h).exp();
            ((h2 - 1.0) / h2).max(0.0)
        };
        (i2_of(ln_h - z * se), i2_of(ln_h + z * se))
    } else {
        (0.0, 1.0)
    };
    let prediction = (k >= 3).then(|| {
        let t = t_quantile(0.5 + level / 2.0, k as f64 - 2.0);
        let half = t * (tau2 + random_se * random_se).sqrt();
        (random - half, random + half)
    });
    Ok(Meta {
        k,
        fixed,
        fixed_se: (1.0 / sw).sqrt(),
        q,
        q_p: chi2_upper(q, df),
        tau2,
        method,
        random,
        random_se,
        wald,
        hartung_knapp,
        hk_se,
        i2,
        h2,
        i2_interval,
        prediction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BCG vaccine trials (Colditz et al. 1994; metafor's `dat.bcg`): TB cases and
    /// non-cases among the vaccinated and the controls, as log risk ratios.
    fn bcg() -> (Vec<f64>, Vec<f64>) {
        let trials: [(f64, f64, f64, f64); 13] = [
            (4.0, 119.0, 11.0, 128.0),
            (6.0, 300.0, 29.0, 274.0),
            (3.0, 228.0, 11.0, 209.0),
            (62.0, 13536.0, 248.0, 12619.0),
            (33.0, 5036.0, 47.0, 5761.0),
            (180.0, 1361.0, 372.0, 1079.0),
            (8.0, 2537.0, 10.0, 619.0),
            (505.0, 87886.0, 499.0, 87892.0),
            (29.0, 7470.0, 45.0, 7232.0),
            (17.0, 1699.0, 65.0, 1600.0),
            (186.0, 50448.0, 141.0, 27197.0),
            (5.0, 2493.0, 3.0, 2338.0),
            (27.0, 16886.0, 29.0, 17825.0),
        ];
        trials
            .iter()
            .map(|(a, b, c, d)| (((a / (a + b)) / (c / (c + d))).ln(), 1.0 / a - 1.0 / (a + b) + 1.0 / c - 1.0 / (c + d)))
            .unzip()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Against metafor's published output for dat.bcg (Viechtbauer 2010, J Stat Softw 36(3)),
    /// printed to four decimals.
    #[test]
    fn the_bcg_trials_give_metafors_published_results() {
        let (y, v) = bcg();
        let reml = meta_analyse(&y, &v, Tau2::Reml, 0.95).unwrap();
        assert!(close(reml.q, 152.2330, 5e-5), "Q {}", reml.q);
        assert!(close(reml.tau2, 0.3132, 5e-5), "REML τ² {}", reml.tau2);
        assert!(close(reml.random, -0.7145, 5e-5), "{}", reml.random);
        assert!(close(reml.random_se, 0.1798, 5e-5), "{}", reml.random_se);
        assert!(close(reml.wald.lower, -1.0669, 5e-5) && close(reml.wald.upper, -0.3622, 5e-5), "{:?}", reml.wald);
        assert!(close(100.0 * reml.i2, 92.22, 5e-3), "I² {}", reml.i2);
        assert!(close(reml.h2, 12.86, 5e-3), "H² {}", reml.h2);
        let dl = meta_analyse(&y, &v, Tau2::DerSimonianLaird, 0.95).unwrap();
        assert!(close(dl.tau2, 0.3088, 5e-5), "DL τ² {}", dl.tau2);
        assert!(close(dl.random, -0.7141, 5e-5), "{}", dl.random);
        assert!(close(dl.random_se, 0.1787, 5e-5), "{}", dl.random_se);
        // For DL, I² is (Q − df)/Q.
        assert!(close(dl.i2, (dl.q - 12.0) / dl.q, 1e-12));
        assert!(dl.q_p < 1e-4);
    }

    /// Against an independent implementation to 1e-6: statsmodels 0.14.5
    /// `combine_effects(y, v, method_re="dl")` (DL τ², the random-effects estimate and SE, the
    /// fixed effect, its "wls" SE which is the Hartung-Knapp SE) and, for REML, a direct
    /// maximisation of the restricted log-likelihood with scipy (`minimize_scalar`, bounded,
    /// xatol 1e-14). Values printed to 10 decimals.
    #[test]
    fn the_bcg_trials_agree_with_an_independent_implementation_to_1e_6() {
        let (y, v) = bcg();
        let dl = meta_analyse(&y, &v, Tau2::DerSimonianLaird, 0.95).unwrap();
        for (what, got, want) in [
            ("Q", dl.q, 152.2330080824),
            ("fixed", dl.fixed, -0.4302851637),
            ("fixed SE", dl.fixed_se, 0.0404987517),
            ("DL τ²", dl.tau2, 0.3087602629),
            ("DL estimate", dl.random, -0.7141172221),
            ("DL SE", dl.random_se, 0.1787420895),
            ("DL Hartung-Knapp SE", dl.hk_se, 0.1806966283),
        ] {
            assert!(close(got, want, 1e-6), "{what}: {got} vs {want}");
        }
        let reml = meta_analyse(&y, &v, Tau2::Reml, 0.95).unwrap();
        for (what, got, want) in [("REML τ²", reml.tau2, 0.3132432611), ("REML estimate", reml.random, -0.7145323424), ("REML SE", reml.random_se, 0.1797815168)] {
            assert!(close(got, want, 1e-6), "{what}: {got} vs {want}");
        }
    }

    #[test]
    fn without_heterogeneity_random_equals_fixed_and_intervals_nest() {
        let y = [0.10, 0.12, 0.11, 0.09];
        let v = [0.04, 0.05, 0.03, 0.06];
        let m = meta_analyse(&y, &v, Tau2::Reml, 0.95).unwrap();
        assert_eq!(m.tau2, 0.0);
        assert!(close(m.random, m.fixed, 1e-12) && close(m.random_se, m.fixed_se, 1e-12));
        assert_eq!(m.i2, 0.0);
        let (lo, hi) = m.prediction.unwrap();
        assert!(lo < m.wald.lower && hi > m.wald.upper, "the prediction interval is wider");
        // Hartung-Knapp: the t-interval around the same estimate.
        assert!(close((m.hartung_knapp.lower + m.hartung_knapp.upper) / 2.0, m.random, 1e-12));
        assert!(meta_analyse(&[0.1], &[0.1], Tau2::Reml, 0.95).is_err());
        assert!(matches!(meta_analyse(&[0.1, 0.2], &[0.1, 0.0], Tau2::Reml, 0.95), Err(MetaError::Invalid { index: 1, .. })));
    }
}
