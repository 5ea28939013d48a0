//! The analyses analysts publish, computed by the coordinator from a merged comparison
//! (released cells only, so an analysis adds no disclosure surface): each region against a
//! comparator with significance ([`compare`]), yearly trends ([`trend`]), equity gaps and
//! the slope and relative index of inequality ([`equity`]), funnel plots ([`funnel`]).
//! Plain Rust over [`Comparison`] rows; the wire form is [`AnalysisTable`]. Methods and
//! their sources: docs/analysis.md.

pub mod compare;
pub mod equity;
pub mod evaluate;
pub mod funnel;
pub mod meta;
pub mod regression;
pub mod trend;

use norrsken_model::analysis::{key_breakdowns, AnalysisTable, Value};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::{Better, Kind, Recipe};
use norrsken_model::comparison::{Comparison, ComparisonRow, Estimate, RowKind};
use norrsken_model::query::{AnalysisKind, AnalysisSpec};

use crate::merge::{standardised_estimate, TOTAL};
use crate::stats::{estimate_at, Level};

/// An analysis that cannot be computed at all (single rows that cannot are marked with a
/// note instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    #[error("{0}")]
    Unsupported(String),
}

/// Computes the analysis `spec` asks of comparison `c` of `recipe`.
pub fn analyse(spec: &AnalysisSpec, c: &Comparison, recipe: &Recipe) -> Result<AnalysisTable, AnalysisError> {
    if c.distribution {
        return Err(AnalysisError::Unsupported(format!("{} is a distribution; analyses need one value per cell", recipe.key())));
    }
    let ctx = Ctx::new(spec, c, recipe);
    let mut table = match spec.kind {
        AnalysisKind::Compare => compare::compare(&ctx, c)?,
        AnalysisKind::Trend => trend::trend(&ctx, c)?,
        AnalysisKind::Equity => equity::equity(&ctx, c)?,
        AnalysisKind::Funnel => funnel::funnel(&ctx, c)?,
        AnalysisKind::Evaluate => evaluate::evaluate(&ctx, c)?,
    };
    let m = &c.meta;
    let mut meta = vec![
        ("query_id", m.query_id.clone()),
        ("recipe", m.recipe.clone()),
        ("recipe_hash", m.recipe_hash.clone()),
        ("catalog_hash", m.catalog_hash.clone()),
        ("title", m.title.clone()),
        ("title_sv", m.title_sv.clone()),
        ("kind", m.kind.name().to_string()),
        ("value", m.value.clone()),
        ("axis_sv", m.axis_sv.clone()),
        ("axis_en", m.axis_en.clone()),
        ("semantics", m.semantics.clone()),
        ("perspective", m.perspective.clone()),
        ("period", m.period.clone()),
        ("pooled_label", m.pooled_label.clone()),
        ("partial", m.partial.to_string()),
        ("cached", m.cached.to_string()),
        ("regions", serde_json::to_string(&c.regions).unwrap_or_default()),
        ("against", spec.against.name().to_string()),
        ("better", recipe.better.map(|b| if b == Better::Higher { "higher" } else { "lower" }).unwrap_or("").to_string()),
    ];
    if let Some(t) = &recipe.target {
        meta.push(("target", t.value.to_string()));
        meta.push(("target_source", t.source.clone()));
    }
    if let Some(s) = &m.standard {
        meta.push(("standard", s.clone()));
    }
    if let Some(d) = &m.followup_through {
        meta.push(("followup_through", d.clone()));
    }
    meta.push(("counted_per_region", m.counted_per_region.to_string()));
    meta.push(("declaration_sv", c.quality_declaration(norrsken_model::vocabulary::Lang::Sv)));
    meta.push(("declaration_en", c.quality_declaration(norrsken_model::vocabulary::Lang::En)));
    table.meta.extend(meta.into_iter().map(|(k, v)| (k.to_string(), v)));
    if c.meta.partial {
        let missing: Vec<&str> = c.regions.iter().filter(|r| r.status != norrsken_model::comparison::RegionState::Ok).map(|r| r.name.as_str()).collect();
        table.meta.push(("partial_note".into(), format!("partial: {} did not answer; the pooled value and every comparison with it lack their part", missing.join(", "))));
    }
    table.meta.sort();
    Ok(table)
}

/// What every analysis needs to know about the question.
pub struct Ctx<'a> {
    pub spec: &'a AnalysisSpec,
    pub recipe: &'a Recipe,
    pub kind: Kind,
    pub rate_per: f64,
    pub better: Option<Better>,
    /// Values are the standardised values of age totals.
    pub standardised: bool,
    /// Position of the age band among the comparison's breakdowns (standardised questions).
    pub age: Option<usize>,
    pub breakdowns: Vec<Breakdown>,
    /// The key breakdowns and their positions among the comparison's breakdowns.
    pub keys: Vec<Breakdown>,
    key_pos: Vec<usize>,
    pub pooled_label: String,
}

impl<'a> Ctx<'a> {
    pub fn new(spec: &'a AnalysisSpec, c: &Comparison, recipe: &'a Recipe) -> Ctx<'a> {
        let standardised = c.meta.standard.is_some();
        let keys = key_breakdowns(spec, &c.breakdowns, standardised);
        let key_pos = keys.iter().filter_map(|k| c.breakdowns.iter().position(|b| b == k)).collect();
        Ctx {
            spec,
            recipe,
            kind: recipe.kind,
            rate_per: recipe.rate_per.unwrap_or(1000) as f64,
            better: recipe.better,
            standardised,
            age: c.breakdowns.iter().position(|b| *b == Breakdown::AgeBand),
            breakdowns: c.breakdowns.clone(),
            keys,
            key_pos,
            pooled_label: c.meta.pooled_label.clone(),
        }
    }

    pub fn table(&self) -> AnalysisTable {
        AnalysisTable::new(self.spec.kind, self.keys.clone())
    }

    /// The row's labels at the key columns.
    pub fn key_of(&self, row: &ComparisonRow) -> Vec<Option<String>> {
        self.key_pos.iter().map(|&i| row.labels.get(i).cloned().flatten()).collect()
    }

    /// Position of a breakdown among the comparison's.
    pub fn position(&self, b: Breakdown) -> Option<usize> {
        self.breakdowns.iter().position(|x| *x == b)
    }

    /// Whether a row takes part: region and pooled rows; in a standardised question only age
    /// totals.
    pub fn takes_part(&self, row: &ComparisonRow) -> bool {
        row.kind != RowKind::Missing && (!self.standardised || self.age.and_then(|a| row.labels.get(a).cloned().flatten()).as_deref() == Some(TOTAL))
    }

    /// A row's value with its intervals, or None when it has none (withheld, or no
    /// standardised value).
    pub fn point(&self, row: &ComparisonRow) -> Option<Point> {
        if self.standardised {
            let d = row.std_parts?;
            let ci95 = standardised_estimate(self.kind, &d, self.rate_per, Level::P95)?;
            let ci998 = standardised_estimate(self.kind, &d, self.rate_per, Level::P998)?;
            return Some(Point { value: ci95.value, ci95, ci998, numerator: row.numerator, denominator: row.denominator, se: None });
        }
        let at = |level| estimate_at(self.kind, row.numerator, row.denominator, row.value_sum, row.value_sd, self.rate_per, level);
        let (ci95, ci998) = (at(Level::P95)?, at(Level::P998)?);
        if !ci95.value.is_finite() {
            return None;
        }
        Some(Point { value: ci95.value, ci95, ci998, numerator: row.numerator, denominator: row.denominator, se: mean_se(self.kind, row.denominator, row.value_sd) })
    }

    /// Leading values of a row: row kind, region, region name, key labels.
    pub fn lead(&self, what: &str, row: &ComparisonRow) -> Vec<Value> {
        let mut v = vec![Value::text(what), Value::text(row.region.clone()), Value::text(row.region_name.clone())];
        v.extend(self.key_of(row).into_iter().map(Value::Text));
        v
    }

    /// A row's counts, value, 95 % interval, whether standardised, and status.
    pub fn measures(&self, row: &ComparisonRow, p: Option<Point>) -> [Value; 7] {
        [
            Value::Int(row.numerator),
            Value::Int(row.denominator),
            f(p.map(|p| p.value)),
            f(p.map(|p| p.ci95.lower)),
            f(p.map(|p| p.ci95.upper)),
            Value::Bool(Some(self.standardised)),
            Value::text(row.status.clone()),
        ]
    }

    /// The rows taking part that `keep` accepts, grouped into series: one per region (and
    /// one for the pooled rows), in first-seen order.
    pub fn series<'r>(&self, c: &'r Comparison, keep: impl Fn(&ComparisonRow) -> bool) -> Vec<Vec<&'r ComparisonRow>> {
        let mut series: Vec<((RowKind, &str), Vec<&ComparisonRow>)> = Vec::new();
        for r in c.rows.iter().filter(|r| self.takes_part(r) && keep(r)) {
            let id = (r.kind, r.region.as_str());
            match series.iter_mut().find(|(k, _)| *k == id) {
                Some((_, v)) => v.push(r),
                None => series.push((id, vec![r])),
            }
        }
        series.into_iter().map(|(_, rows)| rows).collect()
    }

    /// Words for a significant difference in a direction (`higher` = the value is above).
    pub fn direction(&self, higher: bool) -> &'static str {
        match (self.better, higher) {
            (Some(Better::Higher), true) | (Some(Better::Lower), false) => "better",
            (Some(Better::Higher), false) | (Some(Better::Lower), true) => "worse",
            (None, true) => "higher",
            (None, false) => "lower",
        }
    }
}

/// A value and its 95 % and 99.8 % intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub value: f64,
    pub ci95: Estimate,
    pub ci998: Estimate,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    /// The standard error from its source where the value has one: a mean's or a cost per
    /// patient's released spread, sd/√n (its t interval is wider than ±1.96·se at small n).
    pub se: Option<f64>,
}

impl Point {
    /// The value's standard error: from its source (sd/√n) where known, else from the 95 %
    /// interval's width.
    pub fn se(&self) -> f64 {
        self.se.unwrap_or_else(|| standard_error(self.ci95))
    }
}

/// The standard error of a mean or a cost per patient from its released spread: sd/√n.
pub fn mean_se(kind: Kind, n: Option<i64>, sd: Option<f64>) -> Option<f64> {
    match kind {
        Kind::Mean | Kind::CostSum => {
            let n = n.filter(|n| *n > 0)? as f64;
            sd.filter(|s| s.is_finite() && *s >= 0.0).map(|s| s / n.sqrt())
        }
        _ => None,
    }
}

/// The standard error a 95 % interval implies: its width / (2 · 1.96) (as PHE derives it);
/// for values whose interval is not ±1.96·se (a mean's t interval) use [`Point::se`].
pub fn standard_error(e: Estimate) -> f64 {
    (e.upper - e.lower) / (2.0 * Level::P95.z())
}

/// The interval of a difference `a - b` of independent estimates from their intervals
/// (the method of variance estimates recovery, Newcombe 1998 method 10 for proportions,
/// Zou and Donner 2008 in general).
pub fn mover_difference(a: Estimate, b: Estimate) -> Estimate {
    let d = a.value - b.value;
    Estimate {
        value: d,
        lower: d - ((a.value - a.lower).powi(2) + (b.upper - b.value).powi(2)).sqrt(),
        upper: d + ((a.upper - a.value).powi(2) + (b.value - b.lower).powi(2)).sqrt(),
    }
}

/// The interval of a ratio `a / b` of independent positive estimates (MOVER on the log
/// scale); None when a value or a lower limit is not positive.
pub fn mover_ratio(a: Estimate, b: Estimate) -> Option<Estimate> {
    if !(a.value > 0.0 && b.value > 0.0 && a.lower > 0.0 && b.lower > 0.0) {
        return None;
    }
    let ln = |e: Estimate| Estimate { value: e.value.ln(), lower: e.lower.ln(), upper: e.upper.ln() };
    let d = mover_difference(ln(a), ln(b));
    Some(Estimate { value: d.value.exp(), lower: d.lower.exp(), upper: d.upper.exp() })
}

/// Groups rows by their key labels, in first-seen order.
pub fn group_by_key<'r>(ctx: &Ctx<'_>, rows: impl Iterator<Item = &'r ComparisonRow>) -> Vec<(Vec<Option<String>>, Vec<&'r ComparisonRow>)> {
    let mut out: Vec<(Vec<Option<String>>, Vec<&ComparisonRow>)> = Vec::new();
    for r in rows {
        let k = ctx.key_of(r);
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some((_, v)) => v.push(r),
            None => out.push((k, vec![r])),
        }
    }
    out
}

pub fn f(x: Option<f64>) -> Value {
    Value::Float(x.filter(|v| v.is_finite()))
}
pub fn t(x: Option<&str>) -> Value {
    Value::Text(x.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mover_reduces_to_the_sum_of_variances_for_symmetric_intervals() {
        let a = Estimate { value: 10.0, lower: 7.0, upper: 13.0 };
        let b = Estimate { value: 4.0, lower: 0.0, upper: 8.0 };
        let d = mover_difference(a, b);
        assert!((d.value - 6.0).abs() < 1e-12 && (d.lower - 1.0).abs() < 1e-12 && (d.upper - 11.0).abs() < 1e-12, "{d:?}");
        // Newcombe (1998) example: 56/70 vs 48/80, Wilson limits -> difference 0.2000,
        // 0.0524 to 0.3339.
        let p1 = crate::stats::wilson(56.0, 70.0).unwrap();
        let p2 = crate::stats::wilson(48.0, 80.0).unwrap();
        let d = mover_difference(p1, p2);
        assert!((d.lower - 0.0524).abs() < 5e-4 && (d.upper - 0.3339).abs() < 5e-4, "{d:?}");
        assert!(mover_ratio(a, b).is_none());
    }
}
