//! Disclosure control: what an agent may release of the engine's raw cells.
//!
//! In order, per region in the answer:
//! 1. primary suppression: cells with 1..k-1 persons (numerator or denominator), proportions
//!    whose complement holds 1..k-1, cost sums dominated by one or two persons, and (when the
//!    policy says so) true zeros are withheld;
//! 2. secondary suppression over the cells and their margins (see [`secondary`]);
//! 3. the cell key method perturbs released counts (see [`ptable`]), then optional rounding;
//! 4. withheld cells get a reason code and a concrete coarsening suggestion; a dry run drops
//!    every value.
//!
//! Any inconsistency fails closed: the caller refuses to answer.

pub mod ptable;
pub mod secondary;

use std::collections::{BTreeMap, BTreeSet};

use norrsken_common::answer::{CellStatus, Reason, ReleasedCell};
use norrsken_common::breakdown::Breakdown;
use norrsken_common::catalog::Kind;
use norrsken_common::query::ValidatedQuery;

use crate::engine::{CellTable, RawCell};
use crate::policy::{DominanceRule, Policy};
use crate::record_key::RecordKeyer;
use crate::release::components;
use crate::sql::TOTAL;
use ptable::PTable;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DisclosureError(pub String);

/// What disclosure control needs besides the cells.
pub struct Settings<'a> {
    pub policy: &'a Policy,
    /// The minimum cell size to apply (policy floor, recipe and request combined).
    pub k: u32,
    /// The perturbation table and record keyer when the cell key method is on.
    pub ptable: Option<&'a PTable>,
    pub keyer: Option<&'a RecordKeyer>,
}

fn small(n: i64, k: i64) -> bool {
    n >= 1 && n < k
}

/// Primary suppression reasons for one raw cell.
fn primary(kind: Kind, c: &RawCell, s: &Settings<'_>) -> BTreeSet<Reason> {
    let k = s.k as i64;
    let mut r = BTreeSet::new();
    match kind {
        Kind::Proportion => {
            if small(c.persons, k) || small(c.numerator_persons, k) {
                r.insert(Reason::BelowMinCell);
            }
            if small(c.units - c.numerator, k) {
                r.insert(Reason::Complement);
            }
            if c.numerator == 0 && !s.policy.release_zeros {
                r.insert(Reason::Zero);
            }
        }
        Kind::Rate => {
            if small(c.persons, k) || small(c.population, k) {
                r.insert(Reason::BelowMinCell);
            }
            if c.units == 0 && !s.policy.release_zeros {
                r.insert(Reason::Zero);
            }
        }
        Kind::Count | Kind::Mean => {
            if small(c.persons, k) {
                r.insert(Reason::BelowMinCell);
            }
        }
        Kind::CostSum => {
            if small(c.persons, k) {
                r.insert(Reason::BelowMinCell);
            }
            if c.value_sum > 0.0 {
                let d = &s.policy.dominance;
                let dominated = match d.rule {
                    DominanceRule::Nk => {
                        let top = if d.n >= 2 { c.top1 + c.top2 } else { c.top1 };
                        top > d.k / 100.0 * c.value_sum
                    }
                    DominanceRule::PPercent => c.value_sum - c.top1 - c.top2 < d.p / 100.0 * c.top1,
                };
                if dominated {
                    r.insert(Reason::Dominance);
                }
            }
        }
    }
    r
}

/// A concrete way to ask so that a withheld cell can be released.
pub fn suggestion(v: &ValidatedQuery, labels: &[String], data_years: (i32, i32)) -> String {
    let active: Vec<Breakdown> =
        v.breakdowns.iter().zip(labels).filter(|(_, l)| l.as_str() != TOTAL).map(|(b, _)| *b).collect();
    let has = |b: Breakdown| active.contains(&b);
    if has(Breakdown::Kommun) {
        return "use the region instead of kommun (drop the kommun breakdown)".into();
    }
    if has(Breakdown::Month) {
        return "use quarter or year instead of month".into();
    }
    if has(Breakdown::Quarter) {
        return "use year instead of quarter".into();
    }
    if has(Breakdown::AgeBand) && active.len() > 1 {
        return "merge age bands (drop age_band) or drop another breakdown".into();
    }
    if active.len() > 1 {
        let names: Vec<&str> = active.iter().filter(|b| b.time_grain().is_none()).map(|b| b.name()).collect();
        return format!("drop one of the breakdowns ({})", names.join(", "));
    }
    if has(Breakdown::AgeBand) {
        return "merge age bands (drop age_band)".into();
    }
    if let Some(b) = active.first() {
        if b.time_grain().is_none() {
            return format!("drop the {} breakdown", b.name());
        }
    }
    let (first, last) = data_years;
    if v.period.first_year() > first || v.period.last_year() < last {
        return format!("widen the period (the data covers {first}..{last})");
    }
    "too few persons even for the whole period: ask for the pooled rows of several regions".into()
}

/// Applies disclosure control to an evaluated query. `totals` says whether margin cells are
/// released (they are always used for protection).
pub fn protect(table: &CellTable, v: &ValidatedQuery, s: &Settings<'_>, data_years: (i32, i32)) -> Result<Vec<ReleasedCell>, DisclosureError> {
    let recipe = &v.recipe;
    let kind = recipe.kind;
    let distribution = recipe.is_distribution();
    let with_totals = v.options.totals;
    if s.policy.perturbation.enabled && (s.ptable.is_none() || s.keyer.is_none()) {
        return Err(DisclosureError("perturbation is on but its table or record keys are not available".into()));
    }
    let mut out = Vec::new();
    // Each region of the answer is its own table.
    let mut by_region: BTreeMap<&str, Vec<&RawCell>> = BTreeMap::new();
    for c in &table.cells {
        if c.numerator > c.units && kind == Kind::Proportion {
            return Err(DisclosureError(format!("cell {:?}: numerator above denominator", c.labels)));
        }
        if c.labels.len() != v.breakdowns.len() {
            return Err(DisclosureError(format!("cell {:?} does not match the breakdowns", c.labels)));
        }
        by_region.entry(c.region.as_str()).or_default().push(c);
    }
    for (region, raw) in by_region {
        // 1. Primary suppression.
        let reasons: Vec<BTreeSet<Reason>> = raw.iter().map(|c| primary(kind, c, s)).collect();
        // 2. Secondary suppression over cells, margins and (for distributions) categories.
        let mut cells: Vec<secondary::Cell> = raw
            .iter()
            .zip(&reasons)
            .map(|(c, r)| {
                let mut labels = c.labels.clone();
                if let Some(cat) = &c.category {
                    labels.push(cat.clone());
                }
                secondary::Cell {
                    labels,
                    size: if distribution { c.numerator_persons } else { c.persons },
                    withheld: !r.is_empty(),
                    virtual_cell: false,
                    protect: true,
                }
            })
            .collect();
        if distribution {
            // One denominator per cell: withheld for its own size when the persons are few.
            let mut seen = BTreeSet::new();
            for c in &raw {
                if seen.insert(c.labels.clone()) {
                    let mut labels = c.labels.clone();
                    labels.push(TOTAL.to_string());
                    let own = small(c.persons, s.k as i64);
                    cells.push(secondary::Cell { labels, size: c.persons, withheld: own, virtual_cell: true, protect: own });
                }
            }
        }
        let secondary_withheld: BTreeSet<usize> =
            secondary::protect(&mut cells).map_err(|e| DisclosureError(format!("region {region}: {e}")))?.into_iter().collect();

        // 3. Release.
        for (i, c) in raw.iter().enumerate() {
            let margin = c.labels.iter().any(|l| l == TOTAL);
            if margin && !with_totals {
                continue;
            }
            let mut why = reasons[i].clone();
            if secondary_withheld.contains(&i) || (cells[i].withheld && why.is_empty()) {
                why.insert(Reason::Secondary);
            }
            let withheld = cells[i].withheld;
            let (mut num, mut den, sum, sq) = components(kind, c);
            let mut status = CellStatus::Released;
            if withheld {
                out.push(ReleasedCell {
                    region: c.region.clone(),
                    labels: c.labels.clone(),
                    category: c.category.clone(),
                    numerator: None,
                    denominator: None,
                    value_sum: None,
                    value_sum_sq: None,
                    status: CellStatus::Suppressed,
                    reasons: why.into_iter().collect(),
                    suggestion: Some(suggestion(v, &c.labels, data_years)),
                });
                continue;
            }
            let mut reasons_out = Vec::new();
            if let (Some(t), Some(keyer)) = (s.ptable, s.keyer) {
                let perturbable = matches!(kind, Kind::Proportion | Kind::Rate | Kind::Count);
                if perturbable {
                    // Each count with the key of exactly the units it counts.
                    let (num_key, den_key) = match kind {
                        Kind::Proportion => (keyer.cell_key(c.numerator_mix, c.numerator), keyer.cell_key(c.units_mix, c.units)),
                        Kind::Rate => (keyer.cell_key(c.units_mix, c.units), keyer.cell_key(c.population_mix, c.population)),
                        _ => (keyer.cell_key(c.units_mix, c.units), 0.0),
                    };
                    num = num.map(|n| t.perturb(n, num_key));
                    den = den.map(|d| t.perturb(d, den_key));
                    status = CellStatus::Perturbed;
                    reasons_out.push(Reason::Perturbed);
                }
            }
            let base = s.policy.rounding_base as i64;
            if base > 1 && matches!(kind, Kind::Proportion | Kind::Rate | Kind::Count) {
                let round = |x: i64| ((x + base / 2) / base) * base;
                num = num.map(round);
                den = den.map(round);
                status = CellStatus::Perturbed;
                reasons_out.push(Reason::Rounded);
            }
            // A numerator never exceeds its denominator after perturbation.
            if kind == Kind::Proportion {
                if let (Some(n), Some(d)) = (num, den) {
                    num = Some(n.min(d));
                }
            }
            let js = s.policy.js() as i64;
            for x in [num, den].into_iter().flatten() {
                if s.ptable.is_some() && x >= 1 && x <= js {
                    return Err(DisclosureError(format!("released value {x} lies in 1..{js}")));
                }
            }
            out.push(ReleasedCell {
                region: c.region.clone(),
                labels: c.labels.clone(),
                category: c.category.clone(),
                numerator: num,
                denominator: den,
                value_sum: sum,
                value_sum_sq: sq,
                status,
                reasons: reasons_out,
                suggestion: None,
            });
        }
    }
    if v.options.dry_run {
        for c in &mut out {
            c.numerator = None;
            c.denominator = None;
            c.value_sum = None;
            c.value_sum_sq = None;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Dominance;

    fn cost_cell(persons: i64, sum: f64, top1: f64, top2: f64) -> RawCell {
        RawCell {
            region: "23".into(),
            labels: vec![],
            category: None,
            units: persons,
            persons,
            numerator: 0,
            numerator_persons: 0,
            value_sum: sum,
            value_sum_sq: 0.0,
            top1,
            top2,
            population: 0,
            units_mix: 0,
            numerator_mix: 0,
            population_mix: 0,
        }
    }

    #[test]
    fn both_dominance_rules() {
        let mut policy = Policy::development(None);
        let s = |p: &Policy| primary(Kind::CostSum, &cost_cell(10, 1000.0, 700.0, 200.0), &Settings { policy: p, k: 5, ptable: None, keyer: None });
        // (2, 85): 900 of 1000 is dominated.
        assert!(s(&policy).contains(&Reason::Dominance));
        policy.dominance = Dominance { rule: DominanceRule::Nk, n: 1, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance), "700 of 1000 is not above 85 %");
        // p = 10: the rest (100) is above 10 % of the largest (70): released.
        policy.dominance = Dominance { rule: DominanceRule::PPercent, n: 2, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance));
        policy.dominance.p = 20.0;
        assert!(s(&policy).contains(&Reason::Dominance), "the rest (100) is below 20 % of 700");
        assert!(primary(Kind::CostSum, &cost_cell(3, 1000.0, 400.0, 300.0), &Settings { policy: &policy, k: 5, ptable: None, keyer: None }).contains(&Reason::BelowMinCell));
    }

    /// Fail closed: with perturbation on and no record keys, nothing is released.
    #[test]
    fn without_record_keys_the_cell_key_method_refuses() {
        let dir = std::env::temp_dir().join(format!("norrsken-ckm-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("k");
        std::fs::write(&secret, [1u8; 64]).unwrap();
        let policy = Policy::development(Some(secret));
        let table = PTable::new(2, 1.0, 4);
        let catalog = norrsken_common::catalog::Catalog::embedded();
        let v = norrsken_common::query::IndicatorQuery { indicator: "stroke_admissions".into(), period: "2024".into(), ..Default::default() }
            .validate(&catalog, None)
            .unwrap();
        let cells = CellTable { recipe: v.recipe.clone(), breakdowns: vec![], cells: vec![cost_cell(20, 0.0, 0.0, 0.0)] };
        let settings = Settings { policy: &policy, k: 5, ptable: Some(&table), keyer: None };
        let e = protect(&cells, &v, &settings, (2021, 2025)).unwrap_err();
        assert!(e.to_string().contains("record keys"), "{e}");
        let keyer = RecordKeyer::new(&[1u8; 64]).unwrap();
        let settings = Settings { keyer: Some(&keyer), ..settings };
        assert!(protect(&cells, &v, &settings, (2021, 2025)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
