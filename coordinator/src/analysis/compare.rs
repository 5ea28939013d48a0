//! Each region against a comparator, with significance.
//!
//! - against the pooled value (all regions asked) or the recipe's target level: the
//!   comparison Fingertips publishes: significantly different at 95 % (99.8 %) when the
//!   comparator's value lies outside the region's 95 % (99.8 %) interval;
//! - against the other regions pooled (an independent comparator): significantly different
//!   when the interval of the difference (region − others, from both intervals by the
//!   method of variance estimates recovery) excludes zero.
//!
//! A count (`kind = count`) is not compared: it grows with the region's population, so
//! every region would differ from the sum of regions. Its rows carry `not_compared` and a
//! note saying so; its trend is an analysis of its own.
//!
//! The words: `better` / `worse` when the recipe says which direction is better, else
//! `higher` / `lower`; `similar` when not significant; `not_compared` with a note when a
//! value or the comparator is missing.

use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, ComparisonRow, Estimate, RowKind};
use norrsken_model::query::Comparator;
use norrsken_model::standard::{standard, standardise};

use super::{f, mover_difference, t, AnalysisError, Ctx, Point};
use crate::merge::{standardised_estimate, BandIndex};
use crate::stats::{estimate_at, standard_deviation, sum_of_squares, Level};

/// The comparator of one cell: its value and, where it has one, its intervals.
#[derive(Debug, Clone, Copy)]
struct Against {
    value: f64,
    ci95: Option<Estimate>,
    ci998: Option<Estimate>,
}

pub fn compare(ctx: &Ctx<'_>, c: &Comparison) -> Result<AnalysisTable, AnalysisError> {
    let against = ctx.spec.against;
    let mut table = ctx.table();
    let rows: Vec<&ComparisonRow> = c.rows.iter().filter(|r| ctx.takes_part(r)).collect();
    let index = BandIndex::new(&c.rows);
    for row in &rows {
        let point = ctx.point(row);
        let mut note: Option<String> = None;
        let comparator: Option<Against> = match (row.kind, against) {
            (RowKind::Pooled, _) => None,
            // A count depends on the region's size: against a sum of regions (or another
            // region) every region would differ. Counts are shown, not compared.
            (_, _) if ctx.kind == Kind::Count => {
                note = Some("count_not_compared".into());
                None
            }
            (_, Comparator::Target) => ctx.recipe.target.as_ref().map(|t| Against { value: t.value, ci95: None, ci998: None }),
            (_, Comparator::Pooled) => {
                let pooled = rows.iter().find(|p| p.kind == RowKind::Pooled && p.labels == row.labels && p.category == row.category);
                match pooled.and_then(|p| ctx.point(p)) {
                    Some(p) => Some(Against { value: p.value, ci95: Some(p.ci95), ci998: Some(p.ci998) }),
                    None => {
                        note = Some("pooled_withheld".into());
                        None
                    }
                }
            }
            (_, Comparator::Others) => match others(ctx, c, &index, row) {
                Some(p) => Some(Against { value: p.value, ci95: Some(p.ci95), ci998: Some(p.ci998) }),
                None => {
                    note = Some("others_unformable".into());
                    None
                }
            },
        };
        if point.is_none() {
            // Notes travel as codes (`withheld|<reasons>`); the vocabulary writes them.
            note = Some(if ctx.standardised { "no_standardised".into() } else { format!("withheld|{}", row.reasons.join(",")) });
        }
        let (sig95, sig998, difference) = match (point, comparator) {
            (Some(p), Some(a)) => {
                let verdict = |level: Level| -> &'static str {
                    let (ci, other) = if level == Level::P95 { (p.ci95, a.ci95) } else { (p.ci998, a.ci998) };
                    let significant = match (against, other) {
                        (Comparator::Others, Some(o)) => {
                            let d = mover_difference(ci, o);
                            d.lower > 0.0 || d.upper < 0.0
                        }
                        _ => a.value < ci.lower || a.value > ci.upper,
                    };
                    if significant { ctx.direction(p.value > a.value) } else { "similar" }
                };
                (Some(verdict(Level::P95)), Some(verdict(Level::P998)), Some(p.value - a.value))
            }
            (_, _) if row.kind == RowKind::Pooled => (None, None, None),
            _ => (Some("not_compared"), Some("not_compared"), None),
        };
        let mut values = ctx.lead(if row.kind == RowKind::Pooled { "pooled" } else { "region" }, row);
        values.extend([
            Value::Int(row.numerator),
            Value::Int(row.denominator),
            f(point.map(|p| p.value)),
            f(point.map(|p| p.ci95.lower)),
            f(point.map(|p| p.ci95.upper)),
            f(point.map(|p| p.ci998.lower)),
            f(point.map(|p| p.ci998.upper)),
            Value::Bool(Some(ctx.standardised)),
            t((row.kind == RowKind::Region).then_some(against.name())),
            f(comparator.map(|a| a.value)),
            f(comparator.and_then(|a| a.ci95).map(|e| e.lower)),
            f(comparator.and_then(|a| a.ci95).map(|e| e.upper)),
            f(difference),
            t(sig95),
            t(sig998),
            Value::text(row.status.clone()),
            Value::Text(if row.kind == RowKind::Region { note } else { None }),
        ]);
        table.rows.push(values);
    }
    let method = match against {
        Comparator::Others => "significant when the 95 % (99.8 %) interval of the difference between the region and the other regions pooled (MOVER, from both intervals) excludes zero",
        Comparator::Pooled => "significant when the pooled value lies outside the region's 95 % (99.8 %) interval (the Fingertips comparison)",
        Comparator::Target => "significant when the target level lies outside the region's 95 % (99.8 %) interval (the Fingertips comparison)",
    };
    table.meta.push(("method".into(), method.into()));
    Ok(table)
}

/// The other regions' value of a region's cell: their released components added up, or
/// their age bands added up and standardised; None when any of them withheld it.
fn others(ctx: &Ctx<'_>, c: &Comparison, index: &BandIndex<'_>, row: &ComparisonRow) -> Option<Point> {
    let same = |r: &&ComparisonRow| r.kind == RowKind::Region && r.region != row.region && r.labels == row.labels && r.category == row.category;
    let peers: Vec<&ComparisonRow> = c.rows.iter().filter(same).collect();
    if peers.is_empty() {
        return None;
    }
    if ctx.standardised {
        let age = ctx.age?;
        let standard = standard(c.meta.standard.as_deref()?)?;
        let bands = ctx.recipe.age_bands.labels();
        let mut strata = vec![(0.0, 0.0); bands.len()];
        for p in &peers {
            for (acc, (x, n)) in strata.iter_mut().zip(index.strata(p, age, &bands)?) {
                acc.0 += x;
                acc.1 += n;
            }
        }
        let d = standardise(&strata, &standard.weights(&ctx.recipe.age_bands))?;
        let ci95 = standardised_estimate(ctx.kind, &d, ctx.rate_per, Level::P95)?;
        let ci998 = standardised_estimate(ctx.kind, &d, ctx.rate_per, Level::P998)?;
        return Some(Point { value: ci95.value, ci95, ci998, numerator: None, denominator: None, se: None });
    }
    let (mut num, mut den, mut sum, mut sq) = (0i64, 0i64, 0.0, 0.0);
    let means = matches!(ctx.kind, Kind::Mean | Kind::CostSum);
    for p in &peers {
        num += if means { p.numerator.unwrap_or(0) } else { p.numerator? };
        den += p.denominator?;
        if means {
            let (s, sd) = (p.value_sum?, p.value_sd?);
            sum += s;
            sq += sum_of_squares(p.denominator? as f64, s, sd);
        }
    }
    let sd = if means { standard_deviation(den as f64, sum, sq) } else { None };
    let at = |level| estimate_at(ctx.kind, Some(num), Some(den), Some(sum), sd, ctx.rate_per, level);
    let (ci95, ci998) = (at(Level::P95)?, at(Level::P998)?);
    Some(Point { value: ci95.value, ci95, ci998, numerator: Some(num), denominator: Some(den), se: super::mean_se(ctx.kind, Some(den), sd) })
}
