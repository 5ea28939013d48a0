//! A recipe's data-quality profile per region (docs/data-quality.md): "Finns data? Hur är
//! den definierad? Blev det som förväntat?" answered from ordinary, protected questions.
//!
//! Every check asks the federation an ordinary question of the recipe (by month, by year, by
//! kommun and education, the whole period), so it passes the same disclosure control,
//! ledger and audit as any question, and reads only the released, perturbed cells:
//!
//! - **volume by month** (temporal break): each month's volume against the median of the
//!   twelve before it; a jump no Poisson variation explains (|z| > 4 and over 20 % off:
//!   warning; |z| > 6 and over 30 %: critical), e.g. a month loaded twice;
//! - **volume by year** (coverage): each year against the median of the other years
//!   (|z| > 3 and 30 % off: warning; |z| > 4 and 50 %: critical), e.g. a diagnosis no
//!   longer coded;
//! - **education missing by kommun** (completeness): a kommun whose share of units without
//!   education lies more than halfway from the region's typical kommun to all missing
//!   (critical; a third of the way: warning), e.g. a kommun whose registry link failed;
//! - **unknown kommun codes** (conformance): the share of units registered in a code outside
//!   the vocabulary (no kommun of the regions; an agent labels them `unknown` and never
//!   releases the code itself): 0.5 % warning, 2 % critical;
//! - **plausibility**: the region's value over the period outside the recipe's plausible
//!   range (`[plausible]`), e.g. HbA1c recorded in the wrong unit (not for counts, whose
//!   range is per inhabitant-year, nor distributions).
//!
//! A withheld cell is not assessed; nothing here sees a cell the region did not release.

use std::collections::BTreeMap;

use norrsken_common::error::NodeError;
use norrsken_common::service::federation::Federation;
use norrsken_model::breakdown::{Breakdown, TOTAL, UNKNOWN};
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{Comparison, ComparisonRow, RowKind};
use norrsken_model::query::{IndicatorQuery, QueryOptions};
use serde::{Deserialize, Serialize};

/// What a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    VolumeMonth,
    VolumeYear,
    EducationMissing,
    UnknownKommun,
    Plausibility,
}

impl Check {
    pub const ALL: [Check; 5] = [Check::VolumeMonth, Check::VolumeYear, Check::EducationMissing, Check::UnknownKommun, Check::Plausibility];
    pub fn name(self) -> &'static str {
        match self {
            Check::VolumeMonth => "volume_month",
            Check::VolumeYear => "volume_year",
            Check::EducationMissing => "education_missing",
            Check::UnknownKommun => "unknown_kommun",
            Check::Plausibility => "plausibility",
        }
    }
}

/// How a check came out, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Ok,
    NotAssessed,
    Warning,
    Critical,
}

impl Band {
    pub fn name(self) -> &'static str {
        match self {
            Band::Ok => "ok",
            Band::NotAssessed => "not_assessed",
            Band::Warning => "warning",
            Band::Critical => "critical",
        }
    }
}

/// One thing a check found: where (`subject`: a month, a year, a kommun), what was seen and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: Check,
    pub region: String,
    pub region_name: String,
    pub subject: Option<String>,
    pub value: Option<f64>,
    pub expected: Option<f64>,
    pub band: Band,
}

/// A check's outcome in one region: its worst band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub check: Check,
    pub region: String,
    pub region_name: String,
    pub band: Band,
}

/// A recipe's quality profile over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityProfile {
    pub recipe: String,
    pub title: String,
    pub title_sv: String,
    pub period: String,
    pub outcomes: Vec<Outcome>,
    /// Warnings and critical findings, worst first.
    pub findings: Vec<Finding>,
    pub query_ids: Vec<String>,
}

impl QualityProfile {
    /// Whether any check warns.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// A band's limits: the Poisson z and the relative change a volume must both exceed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub z: f64,
    pub rel: f64,
}

/// Months: warning at |z| > 4 and 20 % off, critical at |z| > 6 and 30 % off.
pub const MONTH: (Limits, Limits) = (Limits { z: 4.0, rel: 0.2 }, Limits { z: 6.0, rel: 0.3 });
/// Years (five points, larger counts): warning at |z| > 3 and 30 % off, critical at |z| > 4
/// and 50 % off.
pub const YEAR: (Limits, Limits) = (Limits { z: 3.0, rel: 0.3 }, Limits { z: 4.0, rel: 0.5 });

/// The band of a volume against its expectation: Poisson z and the relative change.
pub fn volume_band(x: f64, expected: f64, (warn, critical): (Limits, Limits)) -> Band {
    if expected <= 0.0 {
        return Band::NotAssessed;
    }
    let z = ((x - expected) / expected.sqrt()).abs();
    let rel = (x / expected - 1.0).abs();
    if z > critical.z && rel > critical.rel {
        Band::Critical
    } else if z > warn.z && rel > warn.rel {
        Band::Warning
    } else {
        Band::Ok
    }
}

/// A row's volume: the count of what the recipe counts (a distribution's units: its
/// denominator).
fn volume(kind: Kind, r: &ComparisonRow) -> Option<f64> {
    match kind {
        Kind::Rate | Kind::Count | Kind::CostSum => r.numerator,
        Kind::Proportion | Kind::Mean => r.denominator,
    }
    .map(|n| n as f64)
}

/// The rows of regions whose labels are the totals except at `at` (and, in a cohort, the
/// measure `before`).
fn series<'a>(c: &'a Comparison, at: Option<usize>) -> Vec<&'a ComparisonRow> {
    let category = first_category(c);
    c.rows
        .iter()
        .filter(|r| r.kind == RowKind::Region && r.category == category)
        .filter(|r| {
            r.labels.iter().enumerate().all(|(i, l)| {
                let l = l.as_deref().unwrap_or("");
                if Some(i) == at {
                    l != TOTAL
                } else if c.breakdowns.get(i) == Some(&Breakdown::Measure) {
                    l == "before"
                } else {
                    l == TOTAL
                }
            })
        })
        .collect()
}

/// The category whose rows a check reads: none for a single value; for a distribution its
/// first category (every category's row carries the same units as its denominator).
fn first_category(c: &Comparison) -> Option<String> {
    c.rows.iter().find_map(|r| r.category.clone())
}

/// Each region's volumes by the time breakdown `by` (month or year labels, in the answer's
/// order; a withheld cell has none), keyed by region code and name.
fn over_time(c: &Comparison, by: Breakdown, kind: Kind) -> BTreeMap<(String, String), Vec<(String, Option<f64>)>> {
    let at = c.breakdowns.iter().position(|b| *b == by);
    let mut out: BTreeMap<(String, String), Vec<(String, Option<f64>)>> = BTreeMap::new();
    for r in series(c, at) {
        let label = at.and_then(|i| r.labels[i].clone()).unwrap_or_default();
        out.entry((r.region.clone(), r.region_name.clone())).or_default().push((label, volume(kind, r)));
    }
    out
}

/// Builds the profile of `recipe` over `period` by asking the federation.
pub async fn profile(asker: &(impl Federation + ?Sized), recipe: &str, period: &str) -> Result<QualityProfile, NodeError> {
    let ask = |by: &[Breakdown]| IndicatorQuery {
        indicator: recipe.to_string(),
        breakdowns: by.iter().map(|b| b.name().to_string()).collect(),
        period: period.to_string(),
        options: QueryOptions { totals: true, ..QueryOptions::default() },
        ..IndicatorQuery::default()
    };
    let comparison = |f: norrsken_model::federated::Federated| f.comparison().ok_or_else(|| NodeError::Internal("the answer is not a comparison".into()));
    let whole = comparison(asker.ask(ask(&[])).await?)?;
    let meta = &whole.meta;
    let kind = meta.kind;
    let catalog = asker.catalog().await?;
    let entry = catalog["recipes"].as_array().and_then(|rs| rs.iter().find(|r| r["id"] == recipe)).cloned().unwrap_or_default();
    let allows = |b: Breakdown| entry["breakdowns"].as_array().is_some_and(|bs| bs.iter().any(|x| x == b.name()));
    let mut out = QualityProfile {
        recipe: meta.recipe.clone(),
        title: meta.title.clone(),
        title_sv: meta.title_sv.clone(),
        period: meta.period.clone(),
        outcomes: Vec::new(),
        findings: Vec::new(),
        query_ids: vec![meta.query_id.clone()],
    };
    let regions: Vec<(String, String)> = whole.regions.iter().map(|r| (r.region.clone(), r.name.clone())).collect();
    let mut worst: BTreeMap<(Check, String), Band> = BTreeMap::new();
    let mut note = |out: &mut QualityProfile, check: Check, region: &str, name: &str, subject: Option<String>, value: Option<f64>, expected: Option<f64>, band: Band| {
        let w = worst.entry((check, region.to_string())).or_insert(Band::Ok);
        *w = (*w).max(band);
        if band >= Band::Warning {
            out.findings.push(Finding { check, region: region.to_string(), region_name: name.to_string(), subject, value, expected, band });
        }
    };

    // Plausibility of the region's value over the period.
    // A count's range is per 1,000 inhabitant-years (no population in its answer) and a
    // distribution's is its first category's: neither is compared here.
    let plausible = match (kind, whole.distribution) {
        (Kind::Count, _) | (_, true) => (None, None),
        _ => (entry["plausible"]["min"].as_f64(), entry["plausible"]["max"].as_f64()),
    };
    for r in series(&whole, None) {
        let value = r.estimate.map(|e| e.value);
        let band = match (value, plausible) {
            (Some(v), (Some(lo), Some(hi))) if v < lo || v > hi => Band::Critical,
            (Some(_), (Some(_), Some(_))) => Band::Ok,
            _ => Band::NotAssessed,
        };
        let expected = plausible.0.zip(plausible.1).map(|(a, b)| (a + b) / 2.0);
        note(&mut out, Check::Plausibility, &r.region, &r.region_name, None, value, expected, band);
    }

    // Volume by month against the twelve months before.
    if allows(Breakdown::Month) {
        let c = comparison(asker.ask(ask(&[Breakdown::Month])).await?)?;
        out.query_ids.push(c.meta.query_id.clone());
        for ((region, name), mut months) in over_time(&c, Breakdown::Month, kind) {
            months.sort_by(|a, b| a.0.cmp(&b.0));
            for i in 0..months.len() {
                let before: Vec<f64> = months[i.saturating_sub(12)..i].iter().filter_map(|m| m.1).collect();
                let (Some(x), true) = (months[i].1, before.len() >= 6) else { continue };
                let expected = median(before).unwrap_or(0.0);
                let band = volume_band(x, expected, MONTH);
                note(&mut out, Check::VolumeMonth, &region, &name, Some(months[i].0.clone()), Some(x), Some(expected), band);
            }
        }
    }

    // Volume by year against the other years.
    if allows(Breakdown::Year) {
        let c = comparison(asker.ask(ask(&[Breakdown::Year])).await?)?;
        out.query_ids.push(c.meta.query_id.clone());
        for ((region, name), years) in over_time(&c, Breakdown::Year, kind) {
            for (i, (year, x)) in years.iter().enumerate() {
                let others: Vec<f64> = years.iter().enumerate().filter(|(j, _)| *j != i).filter_map(|(_, y)| y.1).collect();
                let (Some(x), true) = (*x, others.len() >= 2) else { continue };
                let expected = median(others).unwrap_or(0.0);
                let band = volume_band(x, expected, YEAR);
                note(&mut out, Check::VolumeYear, &region, &name, Some(year.clone()), Some(x), Some(expected), band);
            }
        }
    }

    // Education missing by kommun, and kommun codes that are no kommun.
    if allows(Breakdown::Kommun) {
        let by: Vec<Breakdown> = if allows(Breakdown::Education) { vec![Breakdown::Kommun, Breakdown::Education] } else { vec![Breakdown::Kommun] };
        let c = comparison(asker.ask(ask(&by)).await?)?;
        out.query_ids.push(c.meta.query_id.clone());
        let k_at = c.breakdowns.iter().position(|b| *b == Breakdown::Kommun);
        let e_at = c.breakdowns.iter().position(|b| *b == Breakdown::Education);
        let known = norrsken_model::geography::kommun_codes();
        let label = |r: &ComparisonRow, at: Option<usize>| at.and_then(|i| r.labels.get(i).cloned().flatten());
        let category = first_category(&c);
        let rows: Vec<&ComparisonRow> = c.rows.iter().filter(|r| r.kind == RowKind::Region && r.category == category).collect();
        // Per region: units in all and in kommun `unknown` (codes outside the vocabulary).
        let mut outside: BTreeMap<(String, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
        // Per (region, kommun): units in all and without education.
        let mut shares: BTreeMap<(String, String), BTreeMap<String, (Option<f64>, Option<f64>)>> = BTreeMap::new();
        for r in &rows {
            let (Some(k), e) = (label(r, k_at), label(r, e_at)) else { continue };
            if e.as_deref().is_none_or(|e| e == TOTAL) {
                let o = outside.entry((r.region.clone(), r.region_name.clone())).or_default();
                match k.as_str() {
                    TOTAL => o.0 = volume(kind, r),
                    UNKNOWN => o.1 = volume(kind, r),
                    // A label outside the vocabulary never leaves an agent; counted as unknown.
                    k if !known.contains(&k) => o.1 = Some(o.1.unwrap_or(0.0) + volume(kind, r).unwrap_or(0.0)),
                    _ => {}
                }
            }
                if k == TOTAL {
                continue;
            }
            let entry = shares.entry((r.region.clone(), r.region_name.clone())).or_default().entry(k).or_default();
            match e.as_deref() {
                Some(TOTAL) => entry.0 = volume(kind, r),
                Some(UNKNOWN) => entry.1 = volume(kind, r),
                _ => {}
            }
        }
        for (region, name) in &regions {
            let (total, unknown) = outside.get(&(region.clone(), name.clone())).copied().unwrap_or_default();
            let band = match total.filter(|t| *t > 0.0) {
                None => Band::NotAssessed,
                Some(t) => match unknown.unwrap_or(0.0) / t {
                    s if s >= 0.02 => Band::Critical,
                    s if s >= 0.005 => Band::Warning,
                    _ => Band::Ok,
                },
            };
            let share = total.filter(|t| *t > 0.0).map(|t| unknown.unwrap_or(0.0) / t);
            note(&mut out, Check::UnknownKommun, region, name, Some(UNKNOWN.to_string()), share, Some(0.0), band);
        }
        if e_at.is_some() {
            for ((region, name), kommuner) in shares {
                // Kommuner with a released total; a withheld unknown cell holds few units.
                let per: Vec<(String, f64)> = kommuner
                    .into_iter()
                    .filter_map(|(k, (total, unknown))| {
                        let t = total.filter(|t| *t >= 20.0)?;
                        Some((k, unknown.unwrap_or(0.0) / t))
                    })
                    .collect();
                let Some(typical) = median(per.iter().map(|p| p.1).collect()) else {
                    note(&mut out, Check::EducationMissing, &region, &name, None, None, None, Band::NotAssessed);
                    continue;
                };
                for (k, share) in per {
                    let band = if share > typical + 0.5 * (1.0 - typical) {
                        Band::Critical
                    } else if share > typical + (1.0 - typical) / 3.0 {
                        Band::Warning
                    } else {
                        Band::Ok
                    };
                    note(&mut out, Check::EducationMissing, &region, &name, Some(k), Some(share), Some(typical), band);
                }
            }
        }
    }
    out.outcomes = worst
        .into_iter()
        .map(|((check, region), band)| {
            let region_name = regions.iter().find(|(r, _)| *r == region).map(|(_, n)| n.clone()).unwrap_or_else(|| region.clone());
            Outcome { check, region, region_name, band }
        })
        .collect();
    out.findings.sort_by(|a, b| b.band.cmp(&a.band).then(a.check.cmp(&b.check)).then(a.region.cmp(&b.region)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_bands_follow_poisson_and_the_relative_change() {
        // A month loaded twice.
        assert_eq!(volume_band(2000.0, 1000.0, MONTH), Band::Critical);
        // Ordinary variation of a large count: 3 % off.
        assert_eq!(volume_band(1030.0, 1000.0, MONTH), Band::Ok);
        // A small count halving is within Poisson variation.
        assert_eq!(volume_band(5.0, 10.0, MONTH), Band::Ok);
        // A clear drop, 25 % off: a warning.
        assert_eq!(volume_band(750.0, 1000.0, MONTH), Band::Warning);
        assert_eq!(volume_band(5.0, 0.0, MONTH), Band::NotAssessed);
        // A diagnosis no longer coded: a year of 35 strokes falls to 5.
        assert_eq!(volume_band(5.0, 35.0, YEAR), Band::Critical);
        assert_eq!(volume_band(27.0, 35.0, YEAR), Band::Ok);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
