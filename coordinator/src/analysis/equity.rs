//! Equity gaps between the groups of one breakdown, per region and pooled, side by side.
//!
//! - Ordered dimensions (education: primary → tertiary; income quintile 1 → 5; age band,
//!   youngest → oldest) compare the first group with the last; unordered ones (sex, country
//!   of birth) compare the group with the least favourable value with the most favourable
//!   (by the recipe's `better`, else the lowest with the highest). `unknown` is not a group.
//! - Absolute gap = value(to) − value(from), relative gap = value(to) / value(from), with
//!   intervals from both groups' intervals (MOVER; on the log scale for the ratio).
//! - Slope and relative index of inequality (Low and Low 2004; PHE Fingertips): with at
//!   least three ordered groups, all released, a line is fitted by least squares weighted
//!   by each group's share of the denominator, against the midpoint of the group's
//!   cumulative share (its ridit). SII = the fitted difference between the top and the
//!   bottom of the order; RII = their ratio. Rates are fitted on the log scale (SII =
//!   e^(a+b) − e^a, RII = e^b), other values untransformed (RII = (a+b)/a), as PHE's
//!   `phe_sii` does. Intervals: the fit is a linear combination of the group values, so its
//!   variance follows from each group's standard error (sd/√n for means and costs, else
//!   the interval width / 2·1.96) by the delta method (PHE simulates instead; both use the
//!   same standard errors).

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::breakdown::{Breakdown, UNKNOWN};
use norrsken_model::catalog::{Better, Kind};
use norrsken_model::cdm::EDUCATION_LEVELS;
use norrsken_model::comparison::{Comparison, ComparisonRow, Estimate};

use super::regression::{dot, wls_coefficients};
use super::{f, group_by_key, mover_difference, mover_ratio, t, AnalysisError, Ctx, Point};
use crate::merge::TOTAL;
use crate::stats::Level;

/// The slope and relative index of inequality with 95 % intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inequality {
    pub sii: Estimate,
    pub rii: Estimate,
}

/// SII and RII of ordered groups `(denominator, value, standard error)`, least advantaged
/// first; `log` fits on the log scale. None with fewer than three groups or a value that
/// the scale cannot take.
pub fn slope_index(groups: &[(f64, f64, f64)], log: bool) -> Option<Inequality> {
    if groups.len() < 3 || groups.iter().any(|g| !(g.0 > 0.0) || !g.1.is_finite() || !(g.2 >= 0.0) || (log && g.1 <= 0.0)) {
        return None;
    }
    let total: f64 = groups.iter().map(|g| g.0).sum();
    let shares: Vec<f64> = groups.iter().map(|g| g.0 / total).collect();
    let mut cum = 0.0;
    let ridits: Vec<f64> = shares
        .iter()
        .map(|a| {
            let r = cum + a / 2.0;
            cum += a;
            r
        })
        .collect();
    let (y, se): (Vec<f64>, Vec<f64>) = groups.iter().map(|g| if log { (g.1.ln(), g.2 / g.1) } else { (g.1, g.2) }).unzip();
    let (ca, cb) = wls_coefficients(&ridits, &shares)?;
    let (a, b) = (dot(&ca, &y), dot(&cb, &y));
    let z = Level::P95.z();
    let sd = |g: &[f64]| g.iter().zip(&se).map(|(g, s)| (g * s).powi(2)).sum::<f64>().sqrt();
    let around = |v: f64, s: f64| Estimate { value: v, lower: v - z * s, upper: v + z * s };
    let exp = |e: Estimate| Estimate { value: e.value.exp(), lower: e.lower.exp(), upper: e.upper.exp() };
    if log {
        let (top, bottom) = ((a + b).exp(), a.exp());
        let g: Vec<f64> = ca.iter().zip(&cb).map(|(ca, cb)| top * (ca + cb) - bottom * ca).collect();
        Some(Inequality { sii: around(top - bottom, sd(&g)), rii: exp(around(b, sd(&cb))) })
    } else {
        if !(a > 0.0 && a + b > 0.0) {
            return Some(Inequality { sii: around(b, sd(&cb)), rii: Estimate { value: f64::NAN, lower: f64::NAN, upper: f64::NAN } });
        }
        let g: Vec<f64> = ca.iter().zip(&cb).map(|(ca, cb)| (ca + cb) / (a + b) - ca / a).collect();
        let log_rii = around(((a + b) / a).ln(), sd(&g));
        Some(Inequality { sii: around(b, sd(&cb)), rii: exp(log_rii) })
    }
}

/// The groups of a dimension in order, and whether the order means advantage.
fn order(ctx: &Ctx<'_>, dimension: Breakdown) -> (Vec<String>, bool) {
    match dimension {
        Breakdown::Education => (EDUCATION_LEVELS.iter().map(|s| s.to_string()).collect(), true),
        Breakdown::IncomeQuintile => ((1..=5).map(|q| q.to_string()).collect(), true),
        Breakdown::AgeBand => (ctx.recipe.age_bands.labels(), true),
        other => (other.allowed_values(&ctx.recipe.age_bands), false),
    }
}

pub fn equity(ctx: &Ctx<'_>, c: &Comparison) -> Result<AnalysisTable, AnalysisError> {
    let dimension = ctx.spec.dimension.as_deref().and_then(Breakdown::parse).ok_or_else(|| AnalysisError::Unsupported("an equity analysis names its dimension".into()))?;
    let pos = ctx.position(dimension).ok_or_else(|| AnalysisError::Unsupported(format!("the comparison has no {dimension} breakdown")))?;
    let (groups, ordered) = order(ctx, dimension);
    let mut table = ctx.table();
    // Series: a region (or the pooled rows), then its key labels.
    let series = ctx.series(c, |r| r.labels.get(pos).cloned().flatten().is_some_and(|l| l != TOTAL && l != UNKNOWN));
    let log = ctx.kind == Kind::Rate;
    for rows in &series {
        for (_, cells) in group_by_key(ctx, rows.iter().copied()) {
            let mut points: Vec<(usize, &ComparisonRow, Option<Point>)> = cells
                .iter()
                .filter_map(|r| {
                    let label = r.labels[pos].as_deref()?;
                    Some((groups.iter().position(|g| g == label)?, *r, ctx.point(r)))
                })
                .collect();
            points.sort_by_key(|p| p.0);
            let Some(first) = points.first().map(|p| p.1) else { continue };
            for (rank, r, p) in &points {
                let mut v = ctx.lead("group", r);
                v.extend([Value::text(groups[*rank].clone()), Value::Int(Some(*rank as i64 + 1))]);
                v.extend(ctx.measures(r, *p));
                v.push(Value::Bool(Some(ordered)));
                v.extend([t(None), t(None)]);
                v.extend(std::iter::repeat_n(Value::Float(None), 12));
                v.push(t(None));
                table.rows.push(v);
            }
            // The ends: first and last in order, or least and most favourable.
            let valued: Vec<(usize, Point)> = points.iter().filter_map(|(i, _, p)| p.map(|p| (*i, p))).collect();
            let mut notes = Vec::new();
            let ends = if ordered {
                let (lo, hi) = (points.first(), points.last());
                match (lo, hi) {
                    (Some((i, _, Some(a))), Some((j, _, Some(b)))) if i != j => Some(((*i, *a), (*j, *b))),
                    _ => {
                        notes.push(format!("no gap: the first and last {dimension} groups need released values"));
                        None
                    }
                }
            } else if valued.len() >= 2 {
                let favourable = |p: &Point| if ctx.better == Some(Better::Lower) { -p.value } else { p.value };
                let lo = valued.iter().min_by(|a, b| favourable(&a.1).total_cmp(&favourable(&b.1))).copied();
                let hi = valued.iter().max_by(|a, b| favourable(&a.1).total_cmp(&favourable(&b.1))).copied();
                lo.zip(hi)
            } else {
                notes.push(format!("no gap: fewer than two {dimension} groups have released values"));
                None
            };
            if valued.len() < points.len() {
                notes.push(format!("{} of {} groups withheld", points.len() - valued.len(), points.len()));
            }
            let abs = ends.map(|((_, a), (_, b))| mover_difference(b.ci95, a.ci95));
            let rel = ends.and_then(|((_, a), (_, b))| mover_ratio(b.ci95, a.ci95));
            let inequality = if !ordered {
                None
            } else if points.len() < 3 {
                notes.push("no SII/RII: fewer than three groups".into());
                None
            } else if valued.len() < points.len() {
                notes.push("no SII/RII: every group needs a released value".into());
                None
            } else {
                let input: Vec<(f64, f64, f64)> = points
                    .iter()
                    .filter_map(|(_, r, p)| {
                        let p = p.as_ref()?;
                        Some((r.denominator.map(|d| d as f64).unwrap_or(f64::NAN), p.value, p.se()))
                    })
                    .collect();
                let out = slope_index(&input, log);
                if out.is_none() {
                    notes.push("no SII/RII: a group's denominator or value cannot be used".into());
                }
                out
            };
            let mut v = ctx.lead("gap", first);
            v.extend([t(None), Value::Int(None), Value::Int(None), Value::Int(None)]);
            v.extend([f(None), f(None), f(None), Value::Bool(Some(ctx.standardised)), t(None), Value::Bool(Some(ordered))]);
            v.extend([
                t(ends.map(|((i, _), _)| groups[i].as_str())),
                t(ends.map(|(_, (j, _))| groups[j].as_str())),
                f(abs.map(|e| e.value)),
                f(abs.map(|e| e.lower)),
                f(abs.map(|e| e.upper)),
                f(rel.map(|e| e.value)),
                f(rel.map(|e| e.lower)),
                f(rel.map(|e| e.upper)),
                f(inequality.map(|e| e.sii.value)),
                f(inequality.map(|e| e.sii.lower)),
                f(inequality.map(|e| e.sii.upper)),
                f(inequality.map(|e| e.rii.value)),
                f(inequality.map(|e| e.rii.lower)),
                f(inequality.map(|e| e.rii.upper)),
                Value::Text((!notes.is_empty()).then(|| notes.join("; "))),
            ]);
            table.rows.push(v);
        }
    }
    table.meta.push(("dimension".into(), dimension.name().into()));
    table.meta.push((
        "method".into(),
        format!(
            "gaps: {} with MOVER intervals; SII/RII (Low and Low 2004, PHE): least squares weighted by denominator share against ridits, {}, delta-method 95 % intervals",
            if ordered { "last group minus (divided by) first group in order" } else { "most minus (divided by) least favourable group" },
            if log { "on the log scale" } else { "untransformed" }
        ),
    ));
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn slope_index_matches_phe_examples() {
        // PHEindicatormethods phe_sii test data (life expectancy by deprivation decile).
        let pop = [13837.0, 14519.0, 14940.0, 14599.0, 12311.0, 13196.0, 13335.0, 13388.0, 13685.0, 11779.0];
        let le = [70.56313911, 72.61347473, 75.06710359, 75.20662276, 76.23469045, 75.21801932, 77.09240397, 79.84156222, 80.81329918, 82.73763832];
        let g: Vec<(f64, f64, f64)> = pop.iter().zip(le).map(|(&p, v)| (p, v, 0.5)).collect();
        assert!(close(slope_index(&g, false).unwrap().sii.value, 11.68886, 1e-5));
        let pop = [21675.0, 20065.0, 19750.0, 24713.0, 20112.0, 19618.0, 22408.0, 19752.0, 18939.0, 19312.0];
        let le = [70.54853186, 71.57155734, 72.48698671, 73.51985519, 73.14605425, 76.15898712, 78.65444871, 80.56476961, 80.85486627, 79.9711253];
        let g: Vec<(f64, f64, f64)> = pop.iter().zip(le).map(|(&p, v)| (p, v, 0.5)).collect();
        assert!(close(slope_index(&g, false).unwrap().sii.value, 12.54785, 1e-5));
        // Rates on the log scale (2010 quintiles): SII -14.03684, RII 0.9010655.
        let pop = [1434002.0, 1450590.0, 1453827.0, 1440980.0, 1457780.0];
        let rate = [150.2200205, 131.0221747, 127.4954973, 130.494241, 135.4664241];
        let g: Vec<(f64, f64, f64)> = pop.iter().zip(rate).map(|(&p, v)| (p, v, 1.0)).collect();
        let r = slope_index(&g, true).unwrap();
        assert!(close(r.sii.value, -14.03684, 1e-5) && close(r.rii.value, 0.9010655, 1e-7), "{r:?}");
        assert!(r.sii.lower < r.sii.value && r.sii.value < r.sii.upper && r.rii.lower < r.rii.value);
        // Fewer than three groups: none.
        assert!(slope_index(&g[..2], true).is_none());
    }

    #[test]
    fn slope_index_interval_widens_with_the_groups_errors() {
        let g = |se: f64| -> Vec<(f64, f64, f64)> { vec![(100.0, 0.2, se), (100.0, 0.3, se), (100.0, 0.4, se)] };
        let (narrow, wide) = (slope_index(&g(0.01), false).unwrap(), slope_index(&g(0.05), false).unwrap());
        assert!(close(narrow.sii.value, 0.3, 1e-12));
        assert!(wide.sii.upper - wide.sii.lower > 4.0 * (narrow.sii.upper - narrow.sii.lower) * 0.99);
        // Linear in the values: var = Σ cbᵢ² seᵢ², cb = (xᵢ - x̄)/Σ(x - x̄)² with equal shares:
        // ridits 1/6, 1/2, 5/6 → cb = (-1.5, 0, 1.5), sd = 0.01·√4.5.
        let sd = 0.01 * 4.5f64.sqrt();
        assert!(close(narrow.sii.upper - narrow.sii.value, Level::P95.z() * sd, 1e-12));
    }
}
