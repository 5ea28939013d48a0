//! Funnel plots (Spiegelhalter 2005): each unit's value against its precision (its
//! denominator: persons, person-years or patients) with 95 % and 99.8 % control limits
//! around a centre, and which units fall outside.
//!
//! - centre: the recipe's target level (`against = target`) or the units' pooled value
//!   (Σ numerators / Σ denominators of the units plotted);
//! - limits: exact binomial (shares) or Poisson (rates, on the expected count θ·N) with
//!   Spiegelhalter's interpolation between the discrete quantiles, normal for means
//!   (θ ± z·σ/√n with the units' pooled standard deviation);
//! - overdispersion: with at least 10 units, φ = mean of the squared z-scores after
//!   winsorising the top and bottom 10 %; when Iφ > I − 1 an additive random effect
//!   τ² = (Iφ − (I − 1)) / (Σwᵢ − Σwᵢ²/Σwᵢ), wᵢ = 1/sᵢ², widens the limits to
//!   θ ± z·√(sᵢ² + τ²), kept inside the value's scale (shares 0..1, rates and costs ≥ 0).
//!   With fewer units φ is not estimated and the table says so.

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, ComparisonRow, RowKind};
use norrsken_model::query::Comparator;
use statrs::distribution::{Binomial, DiscreteCDF, Poisson};

use super::{f, group_by_key, t, AnalysisError, Ctx};
use crate::merge::TOTAL;
use crate::stats::{standard_deviation, sum_of_squares, Level};

/// The smallest r in [0, hi] with cdf(r) ≥ p, interpolated (Spiegelhalter 2005, A.1).
fn interpolated_quantile(cdf: impl Fn(u64) -> f64, p: f64, hi: u64) -> f64 {
    let (mut lo, mut up) = (0u64, hi);
    if cdf(0) >= p {
        up = 0;
    }
    while lo + 1 < up {
        let mid = lo + (up - lo) / 2;
        if cdf(mid) >= p {
            up = mid;
        } else {
            lo = mid;
        }
    }
    let r = up;
    let f = cdf(r);
    let below = if r == 0 { 0.0 } else { cdf(r - 1) };
    let alpha = if f > below { (f - p) / (f - below) } else { 0.0 };
    r as f64 - alpha
}

/// The (lower, upper) control limits at `level` for precision `n` around `centre`, in the
/// value's scale before any `rate_per` scaling: shares and rates per person or person-year.
pub fn exact_limits(kind: Kind, centre: f64, n: f64, sd: Option<f64>, level: Level) -> Option<(f64, f64)> {
    let a = level.alpha() / 2.0;
    match kind {
        Kind::Proportion => {
            let trials = n.round() as u64;
            if trials == 0 || !(0.0..=1.0).contains(&centre) {
                return None;
            }
            let b = Binomial::new(centre, trials).ok()?;
            let q = |p| interpolated_quantile(|r| b.cdf(r), p, trials) / trials as f64;
            Some((q(a).max(0.0), q(1.0 - a).min(1.0)))
        }
        Kind::Rate | Kind::Count => {
            let lambda = centre * n;
            if !(lambda > 0.0) {
                return None;
            }
            let d = Poisson::new(lambda).ok()?;
            let hi = (lambda + 40.0 * lambda.sqrt() + 100.0) as u64;
            let q = |p| interpolated_quantile(|r| d.cdf(r), p, hi) / n;
            Some((q(a).max(0.0), q(1.0 - a)))
        }
        Kind::Mean | Kind::CostSum => {
            let s = sd? / n.sqrt();
            Some((centre - level.z() * s, centre + level.z() * s))
        }
    }
}

/// The standard error of a unit's value at the centre (per person or person-year).
fn unit_se(kind: Kind, centre: f64, n: f64, sd: Option<f64>) -> Option<f64> {
    match kind {
        Kind::Proportion => Some((centre * (1.0 - centre) / n).sqrt()),
        Kind::Rate | Kind::Count => Some((centre / n).sqrt()),
        Kind::Mean | Kind::CostSum => Some(sd? / n.sqrt()),
    }
}

/// The limits widened by an additive random effect τ²: centre ± z·√(sᵢ² + τ²), kept inside
/// the value's scale: shares within 0..1, rates, counts and costs at or above 0 (a limit
/// the scale cannot reach is the scale's end: a unit there is within it).
pub fn overdispersed_limits(kind: Kind, centre: f64, n: f64, sd: Option<f64>, tau2: f64, level: Level) -> Option<(f64, f64)> {
    let s = (unit_se(kind, centre, n, sd)?.powi(2) + tau2).sqrt();
    let (lo, hi) = (centre - level.z() * s, centre + level.z() * s);
    Some(match kind {
        Kind::Proportion => (lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)),
        Kind::Rate | Kind::Count | Kind::CostSum => (lo.max(0.0), hi),
        Kind::Mean => (lo, hi),
    })
}

/// Spiegelhalter's overdispersion from the units' (value, n): (φ, τ²); None below 10 units.
pub fn overdispersion(kind: Kind, centre: f64, units: &[(f64, f64)], sd: Option<f64>) -> Option<(f64, f64)> {
    let i = units.len();
    if i < 10 {
        return None;
    }
    let mut z: Vec<f64> = Vec::with_capacity(i);
    let mut w: Vec<f64> = Vec::with_capacity(i);
    for &(y, n) in units {
        let s = unit_se(kind, centre, n, sd)?;
        if !(s > 0.0) {
            return None;
        }
        z.push((y - centre) / s);
        w.push(1.0 / (s * s));
    }
    let mut sorted = z.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        let pos = q * (i - 1) as f64;
        let (k, frac) = (pos.floor() as usize, pos - pos.floor());
        sorted[k] + frac * (sorted[(k + 1).min(i - 1)] - sorted[k])
    };
    let (lo, hi) = (pct(0.1), pct(0.9));
    let phi = z.iter().map(|z| z.clamp(lo, hi).powi(2)).sum::<f64>() / i as f64;
    let sw: f64 = w.iter().sum();
    let sw2: f64 = w.iter().map(|w| w * w).sum();
    let tau2 = ((i as f64 * phi - (i as f64 - 1.0)) / (sw - sw2 / sw)).max(0.0);
    Some((phi, tau2))
}

pub fn funnel(ctx: &Ctx<'_>, c: &Comparison) -> Result<AnalysisTable, AnalysisError> {
    let kommun = ctx.spec.units.as_deref() == Some("kommun");
    let unit_pos = if kommun { Some(ctx.position(Breakdown::Kommun).ok_or_else(|| AnalysisError::Unsupported("a funnel of kommuner needs the kommun breakdown".into()))?) } else { None };
    if ctx.spec.against == Comparator::Others {
        return Err(AnalysisError::Unsupported("a funnel plot's centre is the pooled value or the target, not the other regions".into()));
    }
    let kind = ctx.kind;
    let scale = if kind == Kind::Rate { ctx.rate_per } else { 1.0 };
    let mut table = ctx.table();
    let units: Vec<&ComparisonRow> = c
        .rows
        .iter()
        .filter(|r| r.kind == RowKind::Region && ctx.takes_part(r))
        .filter(|r| unit_pos.is_none_or(|p| r.labels.get(p).cloned().flatten().is_some_and(|l| l != TOTAL)))
        .collect();
    let mut notes_meta = Vec::new();
    for (_, rows) in group_by_key(ctx, units.into_iter()) {
        // The units' values per person or person-year, and their pooled centre.
        let valued: Vec<(&ComparisonRow, f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                let n = r.denominator? as f64;
                let y = match kind {
                    Kind::Mean | Kind::CostSum => r.value_sum? / n,
                    Kind::Count => r.numerator? as f64,
                    _ => r.numerator? as f64 / n,
                };
                (n > 0.0).then_some((*r, y, n))
            })
            .collect();
        let (num, den): (f64, f64) = valued.iter().fold((0.0, 0.0), |(x, m), (r, y, n)| (x + if matches!(kind, Kind::Mean | Kind::CostSum) { y * n } else { r.numerator.unwrap_or(0) as f64 }, m + n));
        let sd = if matches!(kind, Kind::Mean | Kind::CostSum) {
            let (mut s, mut sq) = (0.0, 0.0);
            for (r, y, n) in &valued {
                s += y * n;
                sq += sum_of_squares(*n, y * n, r.value_sd.unwrap_or(0.0));
            }
            standard_deviation(den, s, sq)
        } else {
            None
        };
        let centre = match (ctx.spec.against, &ctx.recipe.target) {
            (Comparator::Target, Some(t)) => t.value / scale,
            _ if den > 0.0 => num / den,
            _ => continue,
        };
        let disp = overdispersion(kind, centre, &valued.iter().map(|(_, y, n)| (*y, *n)).collect::<Vec<_>>(), sd);
        let tau2 = disp.map(|d| d.1).filter(|t| *t > 0.0);
        let limits = |n: f64, level: Level| -> Option<(f64, f64)> {
            match tau2 {
                Some(tau2) => overdispersed_limits(kind, centre, n, sd, tau2, level),
                None => exact_limits(kind, centre, n, sd, level),
            }
        };
        for r in &rows {
            let unit = match unit_pos {
                Some(p) => r.labels[p].clone().unwrap_or_default(),
                None => r.region.clone(),
            };
            let name = match unit_pos {
                Some(_) => norrsken_model::geography::find_kommun(&unit).map_or(unit.clone(), |k| k.name.to_string()),
                None => r.region_name.clone(),
            };
            let found = valued.iter().find(|(x, _, _)| std::ptr::eq(*x, *r));
            let (l95, l998) = match found {
                Some((_, _, n)) => (limits(*n, Level::P95), limits(*n, Level::P998)),
                None => (None, None),
            };
            let (position, significance) = match (found, l95, l998) {
                (Some((_, y, _)), Some(a), Some(b)) => {
                    let high = *y > centre;
                    let pos = if *y > b.1 {
                        "above_998"
                    } else if *y > a.1 {
                        "above_95"
                    } else if *y < b.0 {
                        "below_998"
                    } else if *y < a.0 {
                        "below_95"
                    } else {
                        "within"
                    };
                    (pos, if pos == "within" { "similar" } else { ctx.direction(high) })
                }
                _ => ("not_plotted", "not_compared"),
            };
            let mut v = ctx.lead("unit", r);
            v.extend([
                Value::text(unit),
                Value::text(name),
                Value::Int(r.numerator),
                Value::Int(r.denominator),
                f(found.map(|(_, _, n)| *n)),
                f(found.map(|(_, y, _)| y * scale)),
                f(Some(centre * scale)),
                f(l95.map(|l| l.0 * scale)),
                f(l95.map(|l| l.1 * scale)),
                f(l998.map(|l| l.0 * scale)),
                f(l998.map(|l| l.1 * scale)),
                Value::text(position),
                Value::text(significance),
                Value::text(r.status.clone()),
                t(found.is_none().then_some("withheld: not plotted")),
            ]);
            table.rows.push(v);
        }
        // The limit curves over the range of precision, for drawing.
        let (min_n, max_n) = valued.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, _, n)| (lo.min(*n), hi.max(*n)));
        if let Some(first) = rows.first().filter(|_| max_n > 0.0) {
            let (from, to) = ((min_n * 0.5).max(1.0), max_n * 1.2);
            for k in 0..=40 {
                let n = from * (to / from).powf(k as f64 / 40.0);
                let (a, b) = (limits(n, Level::P95), limits(n, Level::P998));
                let mut v = ctx.lead("limit", first);
                v.extend([t(None), t(None), Value::Int(None), Value::Int(None), f(Some(n)), f(None), f(Some(centre * scale))]);
                v.extend([f(a.map(|l| l.0 * scale)), f(a.map(|l| l.1 * scale)), f(b.map(|l| l.0 * scale)), f(b.map(|l| l.1 * scale))]);
                v.extend([t(None), t(None), t(None), t(None)]);
                table.rows.push(v);
            }
        }
        notes_meta.push(match disp {
            None => format!("{} units: overdispersion not estimated (needs at least 10 units); exact limits", valued.len()),
            Some((phi, tau2)) if tau2 > 0.0 => format!("{} units: φ = {phi:.3}, τ² = {:.4e}; limits widened by the additive random effect", valued.len(), tau2 * scale * scale),
            Some((phi, _)) => format!("{} units: φ = {phi:.3}, no overdispersion beyond chance; exact limits", valued.len()),
        });
    }
    table.meta.push(("overdispersion".into(), notes_meta.join("; ")));
    table.meta.push((
        "method".into(),
        format!(
            "Spiegelhalter (2005) funnel plot: centre = {}; {} limits at 95 % and 99.8 %",
            if ctx.spec.against == Comparator::Target { "the recipe's target" } else { "the units' pooled value" },
            match kind {
                Kind::Proportion => "exact binomial (interpolated)",
                Kind::Rate | Kind::Count => "exact Poisson (interpolated)",
                _ => "normal",
            }
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
    fn exact_limits_match_an_independent_computation() {
        // mpmath at 30 digits, Spiegelhalter's interpolation (written separately):
        let cases = [
            (Kind::Proportion, 0.3, 20.0, [0.0014773166882814952, 0.08117650598067584, 0.487255146595147, 0.6136996793479672]),
            (Kind::Proportion, 0.8, 50.0, [0.6008559023249624, 0.672906116647942, 0.8955951779877309, 0.9452238567924922]),
            (Kind::Proportion, 0.05, 200.0, [0.0065421579428305695, 0.019584215202106722, 0.07970798541588549, 0.10117787615598921]),
            (Kind::Rate, 0.01, 1000.0, [0.0012205293158961343, 0.003775187947688403, 0.016159950673344785, 0.02066200083599504]),
            (Kind::Rate, 0.004, 5000.0, [0.0014338374215540838, 0.002241000207689768, 0.005749153734008053, 0.00694270571475971]),
        ];
        for (kind, centre, n, want) in cases {
            let (l998, u998) = exact_limits(kind, centre, n, None, Level::P998).unwrap();
            let (l95, u95) = exact_limits(kind, centre, n, None, Level::P95).unwrap();
            for (got, want) in [l998, l95, u95, u998].iter().zip(want) {
                assert!(close(*got, want, 1e-9), "{kind:?} {centre} {n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn exact_limits_approach_phe_normal_limits_at_large_n() {
        // PHEindicatormethods funnel limits for p = 0.80642448 (normal approximation):
        // n = 110000: 95 % 80.408963-80.875933, 99.8 % 80.274317-81.010578 (percent);
        // n = 1008: 95 % 78.203374-83.081521.
        let p = 0.80642448;
        let (l, u) = exact_limits(Kind::Proportion, p, 110000.0, None, Level::P95).unwrap();
        assert!(close(l * 100.0, 80.408963, 0.005) && close(u * 100.0, 80.875933, 0.005), "{l} {u}");
        let (l, u) = exact_limits(Kind::Proportion, p, 110000.0, None, Level::P998).unwrap();
        assert!(close(l * 100.0, 80.274317, 0.005) && close(u * 100.0, 81.010578, 0.005), "{l} {u}");
        let (l, u) = exact_limits(Kind::Proportion, p, 1008.0, None, Level::P95).unwrap();
        assert!(close(l * 100.0, 78.203374, 0.2) && close(u * 100.0, 83.081521, 0.2), "{l} {u}");
    }

    #[test]
    fn overdispersed_limits_stay_inside_the_scale() {
        // A small kommun at 5 of 5 around a centre of 0.8 with τ² = 0.05: s = √(0.8·0.2/5 +
        // 0.05) = √0.082 = 0.286356; 95 %: 0.8 ± 0.561248 → 0.238752 to 1.361248, kept at
        // 1; 99.8 %: 0.8 ± 0.884908 → -0.084908 to 1.684908, kept at 0 and 1.
        let (l, u) = overdispersed_limits(Kind::Proportion, 0.8, 5.0, None, 0.05, Level::P95).unwrap();
        assert!(close(l, 0.8 - Level::P95.z() * 0.082f64.sqrt(), 1e-12) && close(l, 0.238752, 1e-6) && u == 1.0, "{l} {u}");
        let (l, u) = overdispersed_limits(Kind::Proportion, 0.8, 5.0, None, 0.05, Level::P998).unwrap();
        assert!(l == 0.0 && u == 1.0, "{l} {u}");
        // A large unit keeps both limits.
        let (l, u) = overdispersed_limits(Kind::Proportion, 0.8, 10_000.0, None, 0.0001, Level::P95).unwrap();
        let s = (0.16f64 / 10_000.0 + 0.0001).sqrt();
        assert!(close(l, 0.8 - Level::P95.z() * s, 1e-12) && close(u, 0.8 + Level::P95.z() * s, 1e-12), "{l} {u}");
        // Rates: the lower limit at 0, the upper unbounded.
        let (l, u) = overdispersed_limits(Kind::Rate, 0.002, 100.0, None, 0.00001, Level::P998).unwrap();
        assert!(l == 0.0 && close(u, 0.002 + Level::P998.z() * (0.002f64 / 100.0 + 0.00001).sqrt(), 1e-12), "{l} {u}");
    }

    #[test]
    fn overdispersion_needs_ten_units_and_detects_spread() {
        let centre = 0.2;
        let calm: Vec<(f64, f64)> = (0..12).map(|i| (0.2 + if i % 2 == 0 { 0.01 } else { -0.01 }, 1000.0)).collect();
        let (phi, tau2) = overdispersion(Kind::Proportion, centre, &calm, None).unwrap();
        assert!(phi < 1.0 && tau2 == 0.0, "{phi} {tau2}");
        let wild: Vec<(f64, f64)> = (0..12).map(|i| (0.2 + if i % 2 == 0 { 0.08 } else { -0.08 }, 1000.0)).collect();
        let (phi, tau2) = overdispersion(Kind::Proportion, centre, &wild, None).unwrap();
        // z = 0.08 / sqrt(0.16/1000) = 6.32 for every unit: φ = 40, τ² = (12·40 − 11)/(12w − w) = 469/(11w), w = 6250.
        assert!(close(phi, 40.0, 1e-9) && close(tau2, 469.0 / (11.0 * 6250.0), 1e-12), "{phi} {tau2}");
        assert!(overdispersion(Kind::Proportion, centre, &wild[..9], None).is_none());
    }
}
