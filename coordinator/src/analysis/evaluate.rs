//! An evaluation across regions (docs/analysis.md, "Evaluations across regions"): a cohort
//! recipe's before/after change per region, against its comparison group where the recipe
//! has one, and a meta-analysis of the regions' effects.
//!
//! From released cells only (n, mean and spread of each arm and measure):
//!
//! - the paired change after − before: mean of the per-person changes with a t interval
//!   on n − 1 degrees of freedom (the `change` measure's own n and spread);
//! - the ratio of means after / before with a delta-method interval on the log scale, the
//!   covariance of a person's before and after values from the three spreads,
//!   cov = (s²_before + s²_after − s²_change) / 2;
//! - with a comparison group, the difference in differences: the exposed change minus the
//!   comparison change, with a Welch interval (Satterthwaite degrees of freedom). Persons
//!   chosen for high use fall back towards their usual level whatever is done (regression
//!   to the mean); a comparison group selected by the same criterion falls back alike, so
//!   the difference removes it. Without one, the effect is the change itself and the note
//!   says that it includes any regression to the mean;
//! - the meta-analysis of the regions' effects (REML τ², Hartung-Knapp interval, I² with
//!   its interval, the prediction interval for a new region; [`super::meta`]) and a
//!   plain-language verdict: `consistent` (the pooled effect and the prediction interval
//!   exclude no effect: a new region can expect an effect in the same direction),
//!   `varies` (the pooled effect excludes no effect, a new region might see none, and the
//!   regions differ: I² ≥ 50 % or Cochran's Q p < 0.10; the result may depend on local
//!   conditions), `uncertain` (as `varies` but without detectable differences: too few
//!   regions or too imprecise to say), `no_effect` (the pooled interval includes no effect)
//!   or `too_few_regions` (fewer than three regions with an effect).

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::comparison::{Comparison, ComparisonRow, RowKind};

use super::meta::{meta_analyse, Meta, Tau2};
use super::{f, group_by_key, t, AnalysisError, Ctx};
use crate::stats::{normal_quantile, t_quantile};

const LEVEL: f64 = 0.95;

/// One arm's released summary of one measure: n, mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: f64,
    pub mean: f64,
    pub sd: f64,
}

impl Summary {
    fn of(row: &ComparisonRow) -> Option<Summary> {
        let n = row.denominator.filter(|n| *n >= 2)? as f64;
        let sum = row.value_sum?;
        let sd = row.value_sd.filter(|s| s.is_finite() && *s >= 0.0)?;
        Some(Summary { n, mean: sum / n, sd })
    }
    fn se(&self) -> f64 {
        self.sd / self.n.sqrt()
    }
}

/// One arm's three measures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arm {
    pub before: Option<Summary>,
    pub after: Option<Summary>,
    pub change: Option<Summary>,
}

/// An estimate with its interval and standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
    pub se: f64,
}

impl Arm {
    /// The paired change with its t interval.
    pub fn change(&self) -> Option<Effect> {
        let c = self.change?;
        let se = c.se();
        let half = t_quantile(0.5 + LEVEL / 2.0, c.n - 1.0) * se;
        Some(Effect { value: c.mean, lower: c.mean - half, upper: c.mean + half, se })
    }

    /// The ratio of means after / before, with its delta-method interval on the log scale.
    pub fn ratio(&self) -> Option<Effect> {
        let (b, a, c) = (self.before?, self.after?, self.change?);
        if !(b.mean > 0.0 && a.mean > 0.0) {
            return None;
        }
        let n = c.n;
        let cov = (b.sd * b.sd + a.sd * a.sd - c.sd * c.sd) / 2.0;
        let var = a.sd * a.sd / (n * a.mean * a.mean) + b.sd * b.sd / (n * b.mean * b.mean) - 2.0 * cov / (n * a.mean * b.mean);
        if !(var.is_finite() && var >= 0.0) {
            return None;
        }
        let (r, se) = ((a.mean / b.mean).ln(), var.sqrt());
        let half = t_quantile(0.5 + LEVEL / 2.0, n - 1.0) * se;
        Some(Effect { value: r.exp(), lower: (r - half).exp(), upper: (r + half).exp(), se })
    }
}

/// The difference in differences `exposed − comparison` of two arms' changes, with a
/// Welch interval.
pub fn difference_in_differences(exposed: &Arm, comparison: &Arm) -> Option<Effect> {
    let (e, c) = (exposed.change?, comparison.change?);
    let (ve, vc) = (e.sd * e.sd / e.n, c.sd * c.sd / c.n);
    let se = (ve + vc).sqrt();
    if !(se > 0.0) {
        return None;
    }
    let df = (ve + vc).powi(2) / (ve * ve / (e.n - 1.0) + vc * vc / (c.n - 1.0));
    let half = t_quantile(0.5 + LEVEL / 2.0, df.max(1.0)) * se;
    let d = e.mean - c.mean;
    Some(Effect { value: d, lower: d - half, upper: d + half, se })
}

/// The verdict of a meta-analysis in a code the vocabulary words.
pub fn consistency(m: &Meta) -> &'static str {
    let Some((lo, hi)) = m.prediction else { return "too_few_regions" };
    if m.hartung_knapp.lower <= 0.0 && m.hartung_knapp.upper >= 0.0 {
        "no_effect"
    } else if lo > 0.0 || hi < 0.0 {
        // The prediction interval holds the pooled estimate, so it lies on the same side.
        "consistent"
    } else if m.i2 >= 0.5 || m.q_p < 0.10 {
        // A new region might see none, and the regions differ: local conditions matter.
        "varies"
    } else {
        // A new region might see none, but only because four numbers say little.
        "uncertain"
    }
}

/// One unit's (a region's or the pooled row's) arms, read from its rows.
fn arms(ctx: &Ctx<'_>, rows: &[&ComparisonRow]) -> (Arm, Arm, Vec<String>) {
    let (arm_at, measure_at) = (ctx.position(Breakdown::Arm), ctx.position(Breakdown::Measure));
    let (mut exposed, mut comparison) = (Arm::default(), Arm::default());
    let mut withheld = Vec::new();
    for r in rows {
        let label = |at: Option<usize>| at.and_then(|i| r.labels.get(i).cloned().flatten());
        let arm = match label(arm_at).as_deref() {
            None | Some("exposed") => &mut exposed,
            Some("comparison") => &mut comparison,
            Some(_) => continue,
        };
        let Some(measure) = label(measure_at) else { continue };
        let s = Summary::of(r);
        if s.is_none() && !r.reasons.is_empty() {
            withheld.extend(r.reasons.iter().cloned());
        }
        match measure.as_str() {
            "before" => arm.before = s,
            "after" => arm.after = s,
            "change" => arm.change = s,
            _ => {}
        }
    }
    withheld.sort();
    withheld.dedup();
    (exposed, comparison, withheld)
}

pub fn evaluate(ctx: &Ctx<'_>, c: &Comparison) -> Result<AnalysisTable, AnalysisError> {
    let Some(cohort) = ctx.recipe.cohort.as_ref() else {
        return Err(AnalysisError::Unsupported(format!("{} is not a cohort recipe", ctx.recipe.key())));
    };
    let has_comparison = cohort.comparison.is_some();
    let mut table = ctx.table();
    // Rows of the total over every other breakdown but the keys: the arms and measures
    // are read per row; margins over arm or measure are not used.
    let keep = |r: &&ComparisonRow| {
        let not_total = |b: Breakdown| ctx.position(b).is_none_or(|i| r.labels.get(i).cloned().flatten().is_some_and(|l| l != crate::merge::TOTAL));
        ctx.takes_part(r) && not_total(Breakdown::Measure) && (!has_comparison || not_total(Breakdown::Arm))
    };
    let rows: Vec<&ComparisonRow> = c.rows.iter().filter(keep).collect();
    for (_, group) in group_by_key(ctx, rows.into_iter()) {
        let mut units: Vec<(&ComparisonRow, Vec<&ComparisonRow>)> = Vec::new();
        for r in &group {
            match units.iter_mut().find(|(first, _)| first.kind == r.kind && first.region == r.region) {
                Some((_, v)) => v.push(r),
                None => units.push((r, vec![r])),
            }
        }
        // Regions first (in the comparison's order), the pooled row after them.
        units.sort_by_key(|(first, _)| first.kind == RowKind::Pooled);
        let mut effects: Vec<(usize, Effect)> = Vec::new();
        for (first, rows) in &units {
            let (exposed, comparison, withheld) = arms(ctx, rows);
            let change = exposed.change();
            let ratio = exposed.ratio();
            let comparison_change = comparison.change();
            let (design, effect) = if has_comparison {
                ("did", difference_in_differences(&exposed, &comparison))
            } else {
                ("before_after", change)
            };
            let mut notes = Vec::new();
            if effect.is_none() {
                notes.push(if withheld.is_empty() { "no_effect_estimate".to_string() } else { format!("withheld|{}", withheld.join(",")) });
            }
            if !has_comparison {
                notes.push("regression_to_the_mean".to_string());
            }
            if let (Some(e), RowKind::Region) = (effect, first.kind) {
                if e.se > 0.0 {
                    effects.push((table.rows.len(), e));
                }
            }
            let status = if effect.is_some() { "estimated" } else { "not_estimated" };
            let what = if first.kind == RowKind::Pooled { "pooled" } else { "region" };
            let mut m = empty_measures();
            let mut set = |column: &str, v: Value| m[kind_index(column)] = v;
            set("n", Value::Int(exposed.change.map(|s| s.n as i64)));
            set("before", f(exposed.before.map(|s| s.mean)));
            set("after", f(exposed.after.map(|s| s.mean)));
            for (prefix, e) in [("change", change), ("ratio", ratio), ("comparison_change", comparison_change), ("effect", effect)] {
                set(prefix, f(e.map(|e| e.value)));
                set(&format!("{prefix}_lower"), f(e.map(|e| e.lower)));
                set(&format!("{prefix}_upper"), f(e.map(|e| e.upper)));
            }
            set("comparison_n", Value::Int(comparison.change.map(|s| s.n as i64)));
            set("comparison_before", f(comparison.before.map(|s| s.mean)));
            set("design", Value::text(design));
            set("effect_se", f(effect.map(|e| e.se)));
            set("status", Value::text(status));
            set("note", t((!notes.is_empty()).then(|| notes.join("; ")).as_deref()));
            let mut row = ctx.lead(what, first);
            row.extend(m);
            table.rows.push(row);
        }
        let Some((first_unit, _)) = units.first() else { continue };
        // The meta-analysis rows stand for the regions together: the pooled row's label.
        let pooled = units.iter().find(|(r, _)| r.kind == RowKind::Pooled).map(|(r, _)| *r);
        let lead_row = pooled.unwrap_or(first_unit);
        let y: Vec<f64> = effects.iter().map(|(_, e)| e.value).collect();
        let v: Vec<f64> = effects.iter().map(|(_, e)| e.se * e.se).collect();
        let meta = match meta_analyse(&y, &v, Tau2::Reml, LEVEL) {
            Ok(m) => m,
            Err(_) => {
                let mut row = meta_lead(ctx, "random", lead_row);
                let mut empty = empty_measures();
                let k = kind_index("k");
                empty[k] = Value::Int(Some(effects.len() as i64));
                empty[kind_index("consistency")] = Value::text("too_few_regions");
                empty[kind_index("status")] = Value::text("not_estimated");
                row.extend(empty);
                table.rows.push(row);
                continue;
            }
        };
        // Each region's share of the random-effects weight.
        let weights: Vec<f64> = v.iter().map(|v| 1.0 / (v + meta.tau2)).collect();
        let total: f64 = weights.iter().sum();
        for ((index, _), w) in effects.iter().zip(&weights) {
            table.rows[*index][3 + ctx.keys.len() + kind_index("weight")] = f(Some(100.0 * w / total));
        }
        let verdict = consistency(&meta);
        let z = normal_quantile(0.5 + LEVEL / 2.0);
        let rows = [
            ("fixed", meta.fixed, meta.fixed - z * meta.fixed_se, meta.fixed + z * meta.fixed_se, meta.fixed_se),
            ("random", meta.random, meta.hartung_knapp.lower, meta.hartung_knapp.upper, meta.hk_se),
        ];
        for (what, value, lower, upper, se) in rows {
            let mut row = meta_lead(ctx, what, lead_row);
            let mut m = empty_measures();
            m[kind_index("design")] = Value::text(if has_comparison { "did" } else { "before_after" });
            m[kind_index("effect")] = f(Some(value));
            m[kind_index("effect_lower")] = f(Some(lower));
            m[kind_index("effect_upper")] = f(Some(upper));
            m[kind_index("effect_se")] = f(Some(se));
            m[kind_index("tau2")] = f(Some(meta.tau2));
            m[kind_index("i2")] = f(Some(meta.i2));
            m[kind_index("i2_lower")] = f(Some(meta.i2_interval.0));
            m[kind_index("i2_upper")] = f(Some(meta.i2_interval.1));
            m[kind_index("q")] = f(Some(meta.q));
            m[kind_index("q_p")] = f(Some(meta.q_p));
            m[kind_index("k")] = Value::Int(Some(meta.k as i64));
            m[kind_index("consistency")] = Value::text(verdict);
            m[kind_index("status")] = Value::text("estimated");
            row.extend(m);
            table.rows.push(row);
        }
        if let Some((lower, upper)) = meta.prediction {
            let mut row = meta_lead(ctx, "prediction", lead_row);
            let mut m = empty_measures();
            m[kind_index("effect")] = f(Some(meta.random));
            m[kind_index("effect_lower")] = f(Some(lower));
            m[kind_index("effect_upper")] = f(Some(upper));
            m[kind_index("k")] = Value::Int(Some(meta.k as i64));
            m[kind_index("consistency")] = Value::text(verdict);
            m[kind_index("status")] = Value::text("estimated");
            row.extend(m);
            table.rows.push(row);
        }
    }
    table.meta.extend([
        ("method".to_string(), "reml+hartung_knapp".to_string()),
        ("design".to_string(), if has_comparison { "did" } else { "before_after" }.to_string()),
        ("outcome".to_string(), cohort.outcome.name().to_string()),
        ("before_days".to_string(), cohort.before_days.to_string()),
        ("after_days".to_string(), cohort.after_days.to_string()),
        ("washout_days".to_string(), cohort.washout_days.to_string()),
    ]);
    Ok(table)
}

/// The leading values of a meta-analysis row: the pooled label and name, the group's key
/// labels.
fn meta_lead(ctx: &Ctx<'_>, what: &str, like: &ComparisonRow) -> Vec<Value> {
    let name = if like.kind == RowKind::Pooled { like.region_name.clone() } else { ctx.pooled_label.clone() };
    let mut v = vec![Value::text(what), Value::text(ctx.pooled_label.clone()), Value::text(name)];
    v.extend(ctx.key_of(like).into_iter().map(Value::Text));
    v
}

fn kind_index(column: &str) -> usize {
    use norrsken_model::query::AnalysisKind;
    norrsken_model::analysis::kind_columns(AnalysisKind::Evaluate).iter().position(|(n, _)| *n == column).unwrap_or(0)
}

/// A row of empty values of the evaluation's own columns.
fn empty_measures() -> Vec<Value> {
    use norrsken_model::analysis::ColumnType;
    use norrsken_model::query::AnalysisKind;
    norrsken_model::analysis::kind_columns(AnalysisKind::Evaluate)
        .iter()
        .map(|(_, ty)| match ty {
            ColumnType::Text => Value::Text(None),
            ColumnType::Float => Value::Float(None),
            ColumnType::Int => Value::Int(None),
            ColumnType::Bool => Value::Bool(None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: f64, mean: f64, sd: f64) -> Option<Summary> {
        Some(Summary { n, mean, sd })
    }

    #[test]
    fn the_paired_change_ratio_and_difference_in_differences() {
        // 100 persons: 2.0 stays before, 1.0 after; sd 1.0 and 0.9, change sd 1.1.
        let exposed = Arm { before: s(100.0, 2.0, 1.0), after: s(100.0, 1.0, 0.9), change: s(100.0, -1.0, 1.1) };
        let c = exposed.change().unwrap();
        let t = t_quantile(0.975, 99.0);
        assert!((c.value + 1.0).abs() < 1e-12 && (c.upper - (-1.0 + t * 0.11)).abs() < 1e-12, "{c:?}");
        // cov = (1 + 0.81 − 1.21)/2 = 0.3; var(log R) = 0.81/100 + 1/(100·4) − 2·0.3/(100·2).
        let r = exposed.ratio().unwrap();
        let var: f64 = 0.81 / 100.0 + 1.0 / 400.0 - 0.6 / 200.0;
        assert!((r.value - 0.5).abs() < 1e-12 && (r.se - var.sqrt()).abs() < 1e-12, "{r:?}");
        assert!(r.lower < 0.5 && r.upper > 0.5);
        // A comparison group that falls back by 0.6 without the intervention.
        let comparison = Arm { before: s(80.0, 2.0, 1.0), after: s(80.0, 1.4, 1.0), change: s(80.0, -0.6, 1.2) };
        let d = difference_in_differences(&exposed, &comparison).unwrap();
        assert!((d.value + 0.4).abs() < 1e-12, "{d:?}");
        let se = (1.21f64 / 100.0 + 1.44 / 80.0).sqrt();
        assert!((d.se - se).abs() < 1e-12);
        // Welch's df lies between the smaller n − 1 and the sum of both.
        let half = d.upper - d.value;
        assert!(half > 1.96 * se && half < t_quantile(0.975, 79.0) * se, "{half}");
        assert!(difference_in_differences(&exposed, &Arm::default()).is_none());
    }

    #[test]
    fn the_verdict_follows_the_pooled_and_the_prediction_interval() {
        let m = |y: &[f64], v: &[f64]| meta_analyse(y, v, Tau2::Reml, 0.95).unwrap();
        assert_eq!(consistency(&m(&[-0.40, -0.42, -0.38, -0.41], &[0.002, 0.002, 0.003, 0.002])), "consistent");
        assert_eq!(consistency(&m(&[-0.60, -0.55, -0.25, -0.50], &[0.002, 0.002, 0.003, 0.002])), "varies");
        assert_eq!(consistency(&m(&[-0.05, 0.04, 0.01, -0.02], &[0.01, 0.01, 0.01, 0.01])), "no_effect");
        // Alike regions, but each so imprecise that a new region's interval reaches zero.
        let alike = m(&[-0.30, -0.26, -0.34, -0.28], &[0.03, 0.03, 0.03, 0.03]);
        assert!(alike.i2 < 0.5 && alike.prediction.unwrap().1 > 0.0, "{alike:?}");
        assert_eq!(consistency(&alike), "uncertain");
        assert_eq!(consistency(&m(&[-0.4, -0.5], &[0.01, 0.01])), "too_few_regions");
    }
}
