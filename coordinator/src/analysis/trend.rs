//! Yearly values and the change per year, per region and pooled.
//!
//! - rates (and counts): Poisson log-linear regression on the year with the person-years as
//!   exposure; the change is a rate ratio per year;
//! - shares: logistic regression on the year; the change is an odds ratio per year;
//! - means and costs per patient: least squares weighted by 1/se² of each year's mean, se =
//!   sd/√n from the released spread; the change is a difference per year in the value's unit;
//! - standardised values: least squares on the log of the standardised value weighted by
//!   value²/variance; the change is a ratio per year.
//!
//! Overdispersion: the Pearson χ² over its degrees of freedom (years − 2); above 1 the
//! standard error is multiplied by its square root and the interval uses Student's t on
//! years − 2 degrees of freedom (quasi-likelihood), else the normal quantile. At least three
//! years with released values are needed. The flag: `improving` / `worsening` when the
//! interval of the change excludes no change and the recipe says which direction is
//! better (else `increasing` / `decreasing`), `no_significant_change` otherwise.

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, ComparisonRow};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::regression::{dot, glm, wls_coefficients, Family};
use super::{f, group_by_key, t, AnalysisError, Ctx, Point};
use crate::stats::{normal_cdf, t_quantile, Level};

/// A fitted trend: the change per year and its 95 % interval on the reported scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub model: &'static str,
    pub unit: &'static str,
    pub change: f64,
    pub lower: f64,
    pub upper: f64,
    pub p_value: f64,
    pub dispersion: f64,
    /// The change is a ratio (1 = no change) rather than a difference (0 = no change).
    pub ratio: bool,
}

impl Trend {
    /// The change per year on the value's own scale at the period's mean level `mean` (a
    /// share in procentenheter, a rate per its base, a mean in its unit), with its interval:
    /// the fitted curve's slope there. A ratio model's slope at a level m is m·ln(ratio)
    /// (rates, standardised values) or 100·m(1 − m)·ln(odds ratio) for a share.
    pub fn yearly(&self, kind: Kind, mean: f64) -> (f64, f64, f64) {
        if !self.ratio {
            return (self.change, self.lower, self.upper);
        }
        let at = |r: f64| match kind {
            Kind::Proportion if self.unit == "odds ratio per year" => 100.0 * mean * (1.0 - mean) * r.ln(),
            Kind::Proportion => 100.0 * mean * r.ln(),
            _ => mean * r.ln(),
        };
        (at(self.change), at(self.lower), at(self.upper))
    }
}

/// A slope `b` with standard error `se` and dispersion `phi` on `df` degrees of freedom, as
/// an interval and p-value (quasi-likelihood when `phi` > 1).
fn inference(b: f64, se: f64, phi: f64, df: f64) -> (f64, f64, f64) {
    let scaled = phi.is_finite() && phi > 1.0 && df >= 1.0;
    let se = if scaled { se * phi.sqrt() } else { se };
    let (q, p) = if scaled {
        let q = t_quantile(1.0 - Level::P95.alpha() / 2.0, df);
        let p = StudentsT::new(0.0, 1.0, df).map(|d| 2.0 * (1.0 - d.cdf((b / se).abs()))).unwrap_or(f64::NAN);
        (q, p)
    } else {
        (Level::P95.z(), 2.0 * (1.0 - normal_cdf((b / se).abs())))
    };
    (b - q * se, b + q * se, p)
}

/// The trend of yearly points `(year, numerator, denominator, point)` of `kind`.
pub fn fit(kind: Kind, standardised: bool, points: &[(f64, Point)]) -> Option<Trend> {
    if points.len() < 3 {
        return None;
    }
    let weighted = |ys: Vec<f64>, ws: Vec<f64>, log: bool| -> Option<Trend> {
        let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
        let (ca, cb) = wls_coefficients(&xs, &ws)?;
        let (a, b) = (dot(&ca, &ys), dot(&cb, &ys));
        let se = cb.iter().zip(&ws).map(|(c, w)| c * c / w).sum::<f64>().sqrt();
        let df = (points.len() - 2) as f64;
        let phi = xs.iter().zip(&ys).zip(&ws).map(|((x, y), w)| w * (y - a - b * x).powi(2)).sum::<f64>() / df;
        let (lo, hi, p) = inference(b, se, phi, df);
        Some(if log {
            Trend { model: "weighted least squares on the log of the standardised value", unit: "ratio per year", change: b.exp(), lower: lo.exp(), upper: hi.exp(), p_value: p, dispersion: phi, ratio: true }
        } else {
            Trend { model: "weighted least squares (1/se²)", unit: "difference per year", change: b, lower: lo, upper: hi, p_value: p, dispersion: phi, ratio: false }
        })
    };
    if standardised {
        let z = Level::P95.z();
        let mut ys = Vec::new();
        let mut ws = Vec::new();
        for (_, p) in points {
            // The log scale's variance from the interval: ((ln u - ln l) / 2z)².
            if !(p.value > 0.0 && p.ci95.lower > 0.0) {
                return None;
            }
            let se = (p.ci95.upper.ln() - p.ci95.lower.ln()) / (2.0 * z);
            ys.push(p.value.ln());
            ws.push(1.0 / (se * se));
        }
        return weighted(ys, ws, true);
    }
    match kind {
        Kind::Rate | Kind::Count | Kind::Proportion => {
            let family = if kind == Kind::Proportion { Family::Binomial } else { Family::Poisson };
            let pts: Option<Vec<(f64, f64, f64)>> = points
                .iter()
                .map(|(year, p)| Some((*year, p.numerator? as f64, if kind == Kind::Count { 1.0 } else { p.denominator? as f64 })))
                .collect();
            let fit = glm(family, &pts?)?;
            let (lo, hi, p) = inference(fit.slope, fit.se, fit.dispersion, fit.df);
            let (model, unit) = if family == Family::Binomial {
                ("logistic regression on the year (quasi-binomial when overdispersed)", "odds ratio per year")
            } else {
                ("Poisson log-linear regression on the year, person-years as exposure (quasi-Poisson when overdispersed)", "rate ratio per year")
            };
            Some(Trend { model, unit, change: fit.slope.exp(), lower: lo.exp(), upper: hi.exp(), p_value: p, dispersion: fit.dispersion, ratio: true })
        }
        Kind::Mean | Kind::CostSum => {
            let ys = points.iter().map(|p| p.1.value).collect();
            let ws: Option<Vec<f64>> = points
                .iter()
                .map(|(_, p)| {
                    let se = p.se();
                    (se > 0.0).then(|| 1.0 / (se * se))
                })
                .collect();
            weighted(ys, ws?, false)
        }
    }
}

pub fn trend(ctx: &Ctx<'_>, c: &Comparison) -> Result<AnalysisTable, AnalysisError> {
    let year_pos = ctx.position(Breakdown::Year).ok_or_else(|| AnalysisError::Unsupported("a trend needs the year breakdown".into()))?;
    let mut table = ctx.table();
    let series = ctx.series(c, |r| r.labels.get(year_pos).cloned().flatten().and_then(|y| y.parse::<i32>().ok()).is_some());
    let mut models = std::collections::BTreeSet::new();
    for rows in &series {
        for (_, mut cells) in group_by_key(ctx, rows.iter().copied()) {
            let year = |r: &ComparisonRow| r.labels[year_pos].as_deref().and_then(|y| y.parse::<i32>().ok()).unwrap_or(0);
            cells.sort_by_key(|r| year(r));
            let mut points = Vec::new();
            for r in &cells {
                let p = ctx.point(r);
                let mut v = ctx.lead("year", r);
                v.push(Value::Int(Some(year(r) as i64)));
                v.extend(ctx.measures(r, p));
                v.extend([
                    Value::Int(None),
                    t(None),
                    f(None),
                    f(None),
                    f(None),
                    t(None),
                    f(None),
                    f(None),
                    f(None),
                    f(None),
                    f(None),
                    t(None),
                    t(None),
                ]);
                table.rows.push(v);
                if let Some(p) = p {
                    points.push((year(r) as f64, p));
                }
            }
            let Some(first) = cells.first() else { continue };
            let mut notes = Vec::new();
            if points.len() < cells.len() {
                notes.push(format!("years_missing|{}|{}", cells.len() - points.len(), cells.len()));
            }
            let fitted = if points.len() < 3 {
                notes.push("too_few_years".into());
                None
            } else {
                let fitted = fit(ctx.kind, ctx.standardised, &points);
                if fitted.is_none() {
                    notes.push("no_fit".into());
                }
                fitted
            };
            let flag = match &fitted {
                None => "not_computed",
                Some(tr) => {
                    let null = if tr.ratio { 1.0 } else { 0.0 };
                    if tr.lower > null || tr.upper < null {
                        let up = tr.change > null;
                        match ctx.direction(up) {
                            "better" => "improving",
                            "worse" => "worsening",
                            "higher" => "increasing",
                            _ => "decreasing",
                        }
                    } else {
                        "no_significant_change"
                    }
                }
            };
            if let Some(tr) = &fitted {
                models.insert(tr.model);
            }
            let mean = points.iter().map(|(_, p)| p.value).sum::<f64>() / points.len().max(1) as f64;
            let yearly = fitted.as_ref().map(|t| t.yearly(ctx.kind, mean));
            let mut v = ctx.lead("trend", first);
            v.extend([
                Value::Int(None),
                Value::Int(None),
                Value::Int(None),
                f(None),
                f(None),
                f(None),
                Value::Bool(Some(ctx.standardised)),
                t(None),
                Value::Int(Some(points.len() as i64)),
                t(fitted.as_ref().map(|t| t.model)),
                f(fitted.as_ref().map(|t| t.change)),
                f(fitted.as_ref().map(|t| t.lower)),
                f(fitted.as_ref().map(|t| t.upper)),
                t(fitted.as_ref().map(|t| t.unit)),
                f(yearly.map(|y| y.0)),
                f(yearly.map(|y| y.1)),
                f(yearly.map(|y| y.2)),
                f(fitted.as_ref().map(|t| t.p_value)),
                f(fitted.as_ref().map(|t| t.dispersion)),
                Value::text(flag),
                Value::Text((!notes.is_empty()).then(|| notes.join("; "))),
            ]);
            table.rows.push(v);
        }
    }
    table.meta.push(("method".into(), models.into_iter().collect::<Vec<_>>().join("; ")));
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::comparison::Estimate;

    fn point(x: i64, n: i64) -> Point {
        let e = crate::stats::estimate(Kind::Rate, Some(x), Some(n), None, None, 1000.0).unwrap();
        Point { value: e.value, ci95: e, ci998: e, numerator: Some(x), denominator: Some(n), se: None }
    }

    #[test]
    fn the_yearly_change_is_on_the_values_scale() {
        // A share at 50 % with an odds ratio of e^0.1 per year rises 100·0.25·0.1 = 2.5
        // procentenheter per year; a rate of 10 per 1000 with a ratio of e^0.05, 0.5 per year.
        let or = Trend { model: "", unit: "odds ratio per year", change: 0.1f64.exp(), lower: 0.05f64.exp(), upper: 0.15f64.exp(), p_value: 0.0, dispersion: 1.0, ratio: true };
        let (y, lo, hi) = or.yearly(Kind::Proportion, 0.5);
        assert!((y - 2.5).abs() < 1e-9 && (lo - 1.25).abs() < 1e-9 && (hi - 3.75).abs() < 1e-9, "{y} {lo} {hi}");
        let rr = Trend { unit: "rate ratio per year", change: 0.05f64.exp(), lower: 1.0, upper: 0.1f64.exp(), ..or.clone() };
        let (y, lo, _) = rr.yearly(Kind::Rate, 10.0);
        assert!((y - 0.5).abs() < 1e-9 && lo.abs() < 1e-12, "{y} {lo}");
        let diff = Trend { unit: "difference per year", change: -3.0, lower: -4.0, upper: -2.0, ratio: false, ..or };
        assert_eq!(diff.yearly(Kind::Mean, 50.0), (-3.0, -4.0, -2.0));
    }

    #[test]
    fn a_steady_rise_is_significant_and_flat_noise_is_not() {
        let rising: Vec<(f64, Point)> = (0..5).map(|i| (2021.0 + i as f64, point((200.0 * 1.15f64.powi(i)).round() as i64, 10_000))).collect();
        let tr = fit(Kind::Rate, false, &rising).unwrap();
        assert!(tr.lower > 1.0 && (tr.change - 1.15).abs() < 0.01, "{tr:?}");
        let flat: Vec<(f64, Point)> = [200, 190, 210, 195, 205].iter().enumerate().map(|(i, &x)| (2021.0 + i as f64, point(x, 10_000))).collect();
        let tr = fit(Kind::Rate, false, &flat).unwrap();
        assert!(tr.lower < 1.0 && tr.upper > 1.0 && tr.p_value > 0.05, "{tr:?}");
        // Two years: no trend.
        assert!(fit(Kind::Rate, false, &flat[..2]).is_none());
    }

    #[test]
    fn overdispersion_widens_the_interval() {
        // Same slope, but year-to-year swings far beyond Poisson noise.
        let calm: Vec<(f64, Point)> = [100, 110, 121, 133, 146].iter().enumerate().map(|(i, &x)| (i as f64, point(x, 10_000))).collect();
        let wild: Vec<(f64, Point)> = [100, 160, 90, 190, 146].iter().enumerate().map(|(i, &x)| (i as f64, point(x, 10_000))).collect();
        let (a, b) = (fit(Kind::Rate, false, &calm).unwrap(), fit(Kind::Rate, false, &wild).unwrap());
        assert!(a.dispersion < 1.0 && b.dispersion > 3.0, "{a:?} {b:?}");
        assert!((b.upper / b.lower).ln() > 2.0 * (a.upper / a.lower).ln());
    }

    #[test]
    fn a_means_weight_is_its_spread_over_root_n_not_its_t_interval() {
        // Four yearly means of 10 values each, sd 2, falling by 1 a year: se = 2/√10 per
        // year, so the slope's se = (2/√10)/√5 (x = 0..3) and, the fit exact, its 95 %
        // half-width 1.959964·0.282843 = 0.554362. From the t interval's width (t₉ = 2.262) the
        // se would be 15 % too large.
        let p = |v: f64| {
            let ci95 = crate::stats::mean_at(10.0, 10.0 * v, Some(2.0), Level::P95).unwrap();
            let ci998 = crate::stats::mean_at(10.0, 10.0 * v, Some(2.0), Level::P998).unwrap();
            Point { value: v, ci95, ci998, numerator: Some(10), denominator: Some(10), se: crate::analysis::mean_se(Kind::Mean, Some(10), Some(2.0)) }
        };
        let pts: Vec<(f64, Point)> = (0..4).map(|i| (i as f64, p(50.0 - i as f64))).collect();
        assert!((pts[0].1.se() - 2.0 / 10f64.sqrt()).abs() < 1e-12);
        assert!(super::super::standard_error(pts[0].1.ci95) > 1.15 * pts[0].1.se());
        let tr = fit(Kind::Mean, false, &pts).unwrap();
        assert!((tr.change + 1.0).abs() < 1e-9, "{tr:?}");
        assert!(((tr.upper - tr.change) - 0.554362).abs() < 1e-6, "{tr:?}");
    }

    #[test]
    fn means_trend_as_a_difference_per_year() {
        let p = |v: f64| Point { value: v, ci95: Estimate { value: v, lower: v - Level::P95.z(), upper: v + Level::P95.z() }, ci998: Estimate { value: v, lower: v - 3.0, upper: v + 3.0 }, numerator: None, denominator: Some(100), se: Some(1.0) };
        let pts: Vec<(f64, Point)> = (0..4).map(|i| (i as f64, p(50.0 - 2.0 * i as f64))).collect();
        let tr = fit(Kind::Mean, false, &pts).unwrap();
        assert!((tr.change + 2.0).abs() < 1e-9 && !tr.ratio && tr.upper < 0.0, "{tr:?}");
        // se of the slope with unit se per year at x = 0..3: 1/sqrt(Σ(x - x̄)²) = 1/sqrt(5).
        assert!(((tr.upper - tr.change) - Level::P95.z() / 5f64.sqrt()).abs() < 1e-9);
    }
}
