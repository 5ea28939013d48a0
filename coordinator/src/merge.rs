//! Merges the regions' answers into one comparison: a row per region and cell, a pooled row
//! per cell computed exactly from the released components, values with confidence
//! intervals, and the status of every region.
//!
//! Pooled rows protect the regions (design invariant 6): a pooled cell is released only
//! when every region's cell it adds up was released; if any region withheld the cell, the
//! pooled cell is withheld too (`pooled_protection`), so "pooled minus the other regions"
//! cannot recover a withheld regional cell. Pooled values are sums of released values, so
//! they reveal nothing the regions did not release.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use norrsken_model::answer::{CellStatus, Reason, RegionAnswer};
use norrsken_common::audit::{Anchor, RegionPart};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::{Kind, Recipe};
pub use norrsken_model::comparison::{Comparison, ComparisonMeta, ComparisonRow, Estimate, RegionReport, RegionState, RowKind};
use norrsken_common::error::ErrorKind;
use norrsken_model::period::Period;
use norrsken_model::query::Perspective;

use norrsken_model::standard::{standardise, Standardised};
use norrsken_model::suggest::{drop_breakdown, first_droppable, pooled_nothing_coarser};

use crate::stats::{estimate, fay_feuer_at, Level};

/// A standardised value's estimate at a level, in the value's unit (per `rate_per` for rates).
pub fn standardised_estimate(kind: Kind, d: &Standardised, rate_per: f64, level: Level) -> Option<Estimate> {
    let e = fay_feuer_at(d, level)?;
    let k = if kind == Kind::Rate { rate_per } else { 1.0 };
    Some(Estimate { value: e.value * k, lower: e.lower * k, upper: e.upper * k })
}

/// The label of a margin (the model's).
pub use norrsken_model::breakdown::TOTAL;

/// The released (events, persons) of a comparison's rows by kind, region, labels and
/// category: built once, so finding every age total's bands is one lookup per band.
pub struct BandIndex<'r>(HashMap<(RowKind, &'r str, &'r [Option<String>], Option<&'r str>), (Option<i64>, Option<i64>)>);

impl<'r> BandIndex<'r> {
    pub fn new(rows: &'r [ComparisonRow]) -> BandIndex<'r> {
        BandIndex(rows.iter().map(|r| ((r.kind, r.region.as_str(), r.labels.as_slice(), r.category.as_deref()), (r.numerator, r.denominator))).collect())
    }

    /// The strata of the age total `row` (same kind and region): each band's released
    /// (events, persons), or None when a band is withheld or absent.
    pub fn strata(&self, row: &ComparisonRow, age: usize, bands: &[String]) -> Option<Vec<(f64, f64)>> {
        let mut labels = row.labels.clone();
        bands
            .iter()
            .map(|band| {
                labels[age] = Some(band.clone());
                let (n, d) = self.0.get(&(row.kind, row.region.as_str(), labels.as_slice(), row.category.as_deref()))?;
                Some(((*n)? as f64, (*d)? as f64))
            })
            .collect()
    }
}

/// Pooled standardised values, from the pooled age bands (released only where every
/// region released every band: the pooled rows' own rule).
fn standardise_pooled(recipe: &Recipe, breakdowns: &[Breakdown], id: &str, rows: &mut [ComparisonRow]) {
    let (Some(standard), Some(age)) = (norrsken_model::standard::standard(id), breakdowns.iter().position(|b| *b == Breakdown::AgeBand)) else {
        return;
    };
    let bands = recipe.age_bands.labels();
    let weights = standard.weights(&recipe.age_bands);
    let rate_per = recipe.rate_per.unwrap_or(1000) as f64;
    let index = BandIndex::new(rows);
    let values: Vec<(usize, Option<Standardised>)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == RowKind::Pooled && r.labels.get(age).and_then(|l| l.as_deref()) == Some(TOTAL) && r.numerator.is_some())
        .map(|(i, r)| (i, index.strata(r, age, &bands).and_then(|s| standardise(&s, &weights))))
        .collect();
    for (i, d) in values {
        let row = &mut rows[i];
        match d {
            Some(d) => {
                row.standardised = standardised_estimate(recipe.kind, &d, rate_per, Level::P95);
                row.std_parts = Some(d);
            }
            None => {
                if !row.reasons.iter().any(|r| r == Reason::NotStandardised.name()) {
                    row.reasons.push(Reason::NotStandardised.name().to_string());
                }
            }
        }
    }
}

/// One region's outcome for a query.
#[derive(Debug, Clone)]
pub struct RegionOutcome {
    pub region: String,
    pub name: String,
    pub state: RegionState,
    pub message: String,
    pub answer: Option<RegionAnswer>,
    pub duration_ms: u64,
    pub attempts: u32,
    /// What kind of error the agent answered with, when it refused or failed.
    pub error: Option<ErrorKind>,
    /// The agent's audit record of its answer, as the answer named it.
    pub record: Option<Anchor>,
    /// No answer came before the coordinator stopped waiting (the plan's deadline passed).
    pub waited_out: bool,
}

impl RegionOutcome {
    /// A region that was not asked (its circuit is open).
    pub fn not_asked(region: &str, name: &str, why: String) -> RegionOutcome {
        RegionOutcome {
            region: region.to_string(),
            name: name.to_string(),
            state: RegionState::Unavailable,
            message: why,
            answer: None,
            duration_ms: 0,
            attempts: 0,
            error: None,
            record: None,
            waited_out: false,
        }
    }

    /// A region whose answer the requester stopped waiting for at `deadline` (its own).
    pub fn waited_out(region: &str, name: &str, deadline: std::time::Duration, message: String) -> RegionOutcome {
        RegionOutcome {
            state: RegionState::Timeout,
            duration_ms: deadline.as_millis() as u64,
            attempts: 1,
            waited_out: true,
            ..RegionOutcome::not_asked(region, name, message)
        }
    }

    /// A region whose call failed in the coordinator itself.
    pub fn failed(region: &str, name: &str, message: String) -> RegionOutcome {
        RegionOutcome { state: RegionState::Error, attempts: 1, error: Some(ErrorKind::Internal), ..RegionOutcome::not_asked(region, name, message) }
    }

    /// The region's part as the coordinator's audit record keeps it.
    pub fn part(&self) -> RegionPart {
        RegionPart {
            region: self.region.clone(),
            status: self.state.name().to_string(),
            message: norrsken_model::text::bound(&self.message),
            attempts: Some(self.attempts),
            record: self.record.clone(),
        }
    }
}

/// Everything a merge needs besides the regions' outcomes.
#[derive(Debug, Clone)]
pub struct MergeInput<'a> {
    pub recipe: &'a Recipe,
    pub breakdowns: &'a [Breakdown],
    /// (county code, name) of the configured regions, in display order.
    pub order: &'a [(String, String)],
    pub pooled_label: &'a str,
    pub query_id: &'a str,
    pub catalog_hash: &'a str,
    pub perspective: Perspective,
    pub period: Period,
    pub dry_run: bool,
    /// The standard population of a standardised question.
    pub standard: Option<&'a str>,
    /// The secure sum of the pooled cells, when one ran.
    pub secure: Option<&'a Secure>,
}

/// A secure sum's outcome for a question (see [`crate::secure`]).
#[derive(Debug)]
pub enum Secure {
    /// Every pooled cell decided on its total.
    Decided(crate::secure::Decisions),
    /// Not completed (a region did not take part): pooled cells add released parts.
    Failed(norrsken_model::secure::SecureError),
}

/// Replaces a pooled row's (or a home region's row's) values by the federation's decision
/// on its secure total.
fn apply_secure(row: &mut ComparisonRow, d: &norrsken_agent::disclosure::pooled::PooledRelease, kind: Kind, rate_per: f64) {
    use norrsken_agent::disclosure::pooled::PooledRelease;
    row.partial = false;
    row.std_parts = None;
    row.standardised = None;
    match d {
        PooledRelease::Released { numerator, denominator, value_sum, value_sd, reasons } => {
            row.numerator = *numerator;
            row.denominator = *denominator;
            row.value_sum = *value_sum;
            row.value_sd = *value_sd;
            row.estimate = estimate(kind, *numerator, *denominator, *value_sum, *value_sd, rate_per);
            row.status = if !reasons.is_empty() { CellStatus::Perturbed } else { CellStatus::Released }.name().to_string();
            row.reasons = reasons.iter().map(|r| r.name().to_string()).collect();
            row.suggestion = None;
        }
        PooledRelease::Withheld(reasons) => {
            row.numerator = None;
            row.denominator = None;
            row.value_sum = None;
            row.value_sd = None;
            row.estimate = None;
            row.status = CellStatus::Suppressed.name().to_string();
            row.reasons = reasons.iter().map(|r| r.name().to_string()).collect();
        }
    }
}

#[derive(Default, Clone)]
struct Acc {
    numerator: Option<i64>,
    denominator: Option<i64>,
    value_sum: Option<f64>,
    value_sum_sq: Option<f64>,
    withheld: bool,
    perturbed: bool,
    reasons: BTreeSet<String>,
    suggestion: Option<String>,
    /// The agent's standardised value, and how many parts the cell adds up (a home region's
    /// cell of several agents has no one standardised value).
    std: Option<Standardised>,
    parts: u32,
    /// Breakdowns whose dropping gives a coarser cell released in every part added so far
    /// (None before the first part), and the agents the parts came from.
    without: Option<BTreeSet<Breakdown>>,
    agents: BTreeSet<String>,
}

fn add_i(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, None) => x,
        (None, y) => y,
    }
}

fn add_f(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Acc {
    /// Adds a released cell; its standard deviation becomes a sum of squares to pool.
    fn add_released(&mut self, n: Option<i64>, d: Option<i64>, s: Option<f64>, sd: Option<f64>) {
        let sq = match (d, s, sd) {
            (Some(n), Some(sum), Some(sd)) => Some(crate::stats::sum_of_squares(n as f64, sum, sd)),
            _ => None,
        };
        self.add_values(n, d, s, sq);
    }

    /// The standard deviation of the values added so far.
    fn sd(&self) -> Option<f64> {
        crate::stats::standard_deviation(self.denominator? as f64, self.value_sum?, self.value_sum_sq?)
    }

    /// Adds parts' knowledge of released coarser cells: a coarser cell of a sum of parts is
    /// released when it is released in every part.
    fn add_without(&mut self, without: impl IntoIterator<Item = Breakdown>, agents: impl IntoIterator<Item = String>) {
        let w: BTreeSet<Breakdown> = without.into_iter().collect();
        self.without = Some(match self.without.take() {
            None => w,
            Some(old) => old.intersection(&w).copied().collect(),
        });
        self.agents.extend(agents);
    }

    /// A true suggestion for a withheld cell that adds the parts of several agents: a
    /// coarser cell when it is released in the part of every agent that answered.
    fn parts_suggestion(&self, answering: usize, period: &Period) -> String {
        let everywhere = self.agents.len() >= answering;
        match self.without.as_ref().filter(|_| everywhere).and_then(|w| first_droppable(|b| w.contains(&b))) {
            Some(b) => drop_breakdown(b, period),
            None => pooled_nothing_coarser(),
        }
    }

    fn add_values(&mut self, n: Option<i64>, d: Option<i64>, s: Option<f64>, sq: Option<f64>) {
        self.numerator = add_i(self.numerator, n);
        self.denominator = add_i(self.denominator, d);
        self.value_sum = add_f(self.value_sum, s);
        self.value_sum_sq = add_f(self.value_sum_sq, sq);
    }
}

type CellKey = (Vec<String>, Option<String>);

/// Merges region outcomes into one comparison.
pub fn merge(input: &MergeInput<'_>, outcomes: &[RegionOutcome]) -> Comparison {
    let MergeInput { recipe, breakdowns, order, pooled_label, query_id, catalog_hash, perspective, period, dry_run, standard, secure } = input.clone();
    let missing: Vec<&RegionOutcome> = outcomes.iter().filter(|o| o.state != RegionState::Ok).collect();
    let partial = !missing.is_empty();
    let name_of = |code: &str| order.iter().find(|(c, _)| c == code).map_or_else(|| code.to_string(), |(_, n)| n.clone());
    let rank = |code: &str| order.iter().position(|(c, _)| c == code).unwrap_or(usize::MAX);

    // Region rows: cells keyed by (region, labels, category); in the population perspective
    // several agents contribute to one home region.
    let mut per_region: BTreeMap<(usize, String), BTreeMap<CellKey, Acc>> = BTreeMap::new();
    let mut reports = Vec::new();
    for o in outcomes {
        let mut report = RegionReport {
            region: o.region.clone(),
            name: o.name.clone(),
            status: o.state,
            message: o.message.clone(),
            data_version: None,
            policy_version: None,
            cells: 0,
            cells_withheld: 0,
            cells_perturbed: 0,
            duration_ms: o.duration_ms,
            attempts: o.attempts,
        };
        if let Some(a) = &o.answer {
            report.data_version = Some(a.meta.data_version.clone());
            report.policy_version = Some(a.meta.policy_version.clone());
            report.cells = a.cells.len();
            for c in &a.cells {
                match c.status {
                    CellStatus::Suppressed => report.cells_withheld += 1,
                    CellStatus::Perturbed => report.cells_perturbed += 1,
                    CellStatus::Released => {}
                }
                let acc = per_region
                    .entry((rank(&c.region), c.region.clone()))
                    .or_default()
                    .entry((c.labels.clone(), c.category.clone()))
                    .or_default();
                acc.add_released(c.numerator, c.denominator, c.value_sum, c.value_sd);
                acc.add_without(c.released_without.iter().copied(), [o.region.clone()]);
                acc.parts += 1;
                acc.std = c.standardised;
                match c.status {
                    CellStatus::Suppressed => acc.withheld = true,
                    CellStatus::Perturbed => acc.perturbed = true,
                    CellStatus::Released => {}
                }
                acc.reasons.extend(c.reasons.iter().map(|r| r.name().to_string()));
                if acc.suggestion.is_none() {
                    acc.suggestion = c.suggestion.clone();
                }
            }
        }
        reports.push(report);
    }
    reports.sort_by_key(|r| rank(&r.region));

    let kind = recipe.kind;
    let rate_per = recipe.rate_per.unwrap_or(1000) as f64;
    let population_view = perspective == Perspective::Population;
    let make_row = |kind_of_row: RowKind, region: &str, name: &str, key: &CellKey, acc: &Acc, partial: bool| -> ComparisonRow {
        let status = if acc.withheld {
            CellStatus::Suppressed
        } else if acc.perturbed {
            CellStatus::Perturbed
        } else {
            CellStatus::Released
        };
        let std_parts = acc.std.filter(|_| !acc.withheld && !dry_run && acc.parts == 1);
        let (n, d, s, sd) = if acc.withheld || dry_run {
            (None, None, None, None)
        } else {
            (acc.numerator, acc.denominator, acc.value_sum, acc.sd())
        };
        ComparisonRow {
            kind: kind_of_row,
            region: region.to_string(),
            region_name: name.to_string(),
            labels: key.0.iter().cloned().map(Some).collect(),
            category: key.1.clone(),
            numerator: n,
            denominator: d,
            value_sum: s,
            value_sd: sd,
            estimate: estimate(kind, n, d, s, sd, rate_per),
            status: status.name().to_string(),
            reasons: acc.reasons.iter().cloned().collect(),
            suggestion: if acc.withheld { acc.suggestion.clone() } else { None },
            partial,
            standardised: std_parts.as_ref().and_then(|d| standardised_estimate(kind, d, rate_per, Level::P95)),
            std_parts,
        }
    };

    let mut rows = Vec::new();
    let mut pooled: BTreeMap<CellKey, Acc> = BTreeMap::new();
    let answering = outcomes.iter().filter(|o| o.state == RegionState::Ok).count();
    if population_view {
        // A home region's cell adds the parts of several agents: only a coarser cell
        // released in every agent's part is released.
        for acc in per_region.values_mut().flat_map(|cells| cells.values_mut()).filter(|a| a.withheld) {
            acc.suggestion = Some(acc.parts_suggestion(answering, &period));
        }
    }
    for ((_, region), cells) in &per_region {
        for (key, acc) in cells {
            // In the population perspective a home region's row lacks the parts of agents that
            // did not answer.
            rows.push(make_row(RowKind::Region, region, &name_of(region), key, acc, population_view && partial));
            let p = pooled.entry(key.clone()).or_default();
            p.add_values(acc.numerator, acc.denominator, acc.value_sum, acc.value_sum_sq);
            p.add_without(acc.without.clone().unwrap_or_default(), acc.agents.iter().cloned());
            p.perturbed |= acc.perturbed;
            if acc.withheld {
                p.withheld = true;
            } else if acc.perturbed {
                p.reasons.insert(Reason::Perturbed.name().to_string());
            }
        }
    }
    if answering > 0 {
        for acc in pooled.values_mut().filter(|a| a.withheld) {
            acc.reasons = [Reason::PooledProtection.name().to_string()].into_iter().collect();
            acc.suggestion = Some(acc.parts_suggestion(answering, &period));
        }
        for (key, acc) in &pooled {
            rows.push(make_row(RowKind::Pooled, pooled_label, pooled_label, key, acc, partial));
        }
    }
    for o in &missing {
        rows.push(ComparisonRow {
            kind: RowKind::Missing,
            region: o.region.clone(),
            region_name: o.name.clone(),
            labels: vec![None; breakdowns.len()],
            category: None,
            numerator: None,
            denominator: None,
            value_sum: None,
            value_sd: None,
            estimate: None,
            status: o.state.name().to_string(),
            reasons: Vec::new(),
            suggestion: Some(o.message.clone()),
            partial: true,
            standardised: None,
            std_parts: None,
        });
    }
    let secure = match secure {
        Some(Secure::Decided(d)) => Some(d),
        _ => None,
    };
    if let Some(decisions) = secure {
        for row in rows.iter_mut() {
            let region = match (row.kind, population_view) {
                (RowKind::Pooled, _) => None,
                (RowKind::Region, true) => Some(row.region.clone()),
                _ => continue,
            };
            let cell = norrsken_model::secure::SumCell { region, labels: row.labels.iter().map(|l| l.clone().unwrap_or_default()).collect(), category: row.category.clone() };
            if let Some(d) = decisions.get(&cell) {
                apply_secure(row, d, kind, rate_per);
            }
        }
    }
    if let Some(id) = standard {
        standardise_pooled(recipe, breakdowns, id, &mut rows);
    }
    // Region rows in configured order, then pooled, then missing; cells sorted within.
    // Categories in the recipe's order, not alphabetically.
    let category_rank = |c: &Option<String>| c.as_ref().map(|c| recipe.categories.iter().position(|x| &x.code == c).unwrap_or(usize::MAX));
    rows.sort_by(|a, b| {
        let ka = (a.kind, rank(&a.region), &a.labels, category_rank(&a.category));
        let kb = (b.kind, rank(&b.region), &b.labels, category_rank(&b.category));
        ka.cmp(&kb)
    });
    let mut meta = ComparisonMeta::of_recipe(recipe);
    meta.query_id = query_id.to_string();
    meta.catalog_hash = catalog_hash.to_string();
    meta.perspective = perspective.name().to_string();
    meta.period = period.to_string();
    meta.semantics = recipe.unit_semantics(period.last_year() - period.first_year() + 1);
    meta.pooled_label = pooled_label.to_string();
    meta.partial = partial;
    meta.dry_run = dry_run;
    meta.standard = standard.map(str::to_string);
    meta.followup_through = outcomes.iter().filter_map(|o| o.answer.as_ref()?.meta.followup_through.clone()).min();
    meta.secure_sum = secure.is_some();
    Comparison { meta, breakdowns: breakdowns.to_vec(), distribution: recipe.is_distribution(), rows, regions: reports }
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::answer::{AnswerMeta, ReleasedCell};
    use norrsken_model::catalog::Catalog;

    fn cell(region: &str, sex: &str, n: i64, d: i64, status: CellStatus) -> ReleasedCell {
        let withheld = status == CellStatus::Suppressed;
        ReleasedCell {
            region: region.into(),
            labels: vec![sex.into()],
            category: None,
            numerator: (!withheld).then_some(n),
            denominator: (!withheld).then_some(d),
            value_sum: None,
            value_sd: None,
            status,
            reasons: if withheld { vec![Reason::BelowMinCell] } else { vec![] },
            suggestion: withheld.then(|| "merge".to_string()),
            standardised: None,
            released_without: Vec::new(),
        }
    }

    fn ok(region: &str, cells: Vec<ReleasedCell>) -> RegionOutcome {
        RegionOutcome {
            region: region.into(),
            name: region.into(),
            state: RegionState::Ok,
            message: String::new(),
            answer: Some(RegionAnswer {
                meta: AnswerMeta { region: region.into(), data_version: "v".into(), ..Default::default() },
                breakdowns: vec![Breakdown::Sex],
                distribution: false,
                cells,
            }),
            duration_ms: 1,
            attempts: 1,
            error: None,
            record: None,
            waited_out: false,
        }
    }

    fn order() -> Vec<(String, String)> {
        ["22", "23", "24", "25"].iter().map(|c| (c.to_string(), format!("R{c}"))).collect()
    }

    fn run(recipe: &Recipe, outcomes: &[RegionOutcome]) -> Comparison {
        let order = order();
        let input = MergeInput {
            recipe,
            breakdowns: &[Breakdown::Sex],
            order: &order,
            pooled_label: "Norra",
            query_id: "q",
            catalog_hash: "h",
            perspective: Perspective::Provider,
            period: Period::years(2023, 2023),
            dry_run: false,
            standard: None,
            secure: None,
        };
        merge(&input, outcomes)
    }

    #[test]
    fn pooled_rows_add_components_exactly() {
        let recipe = Catalog::embedded().get("stroke_reperfusion", None).unwrap().clone();
        let outcomes = vec![
            ok("24", vec![cell("24", "female", 10, 50, CellStatus::Released), cell("24", "male", 12, 60, CellStatus::Released)]),
            ok("25", vec![cell("25", "female", 5, 40, CellStatus::Released), cell("25", "male", 8, 45, CellStatus::Released)]),
        ];
        let c = run(&recipe, &outcomes);
        let pooled: Vec<&ComparisonRow> = c.rows.iter().filter(|r| r.kind == RowKind::Pooled).collect();
        assert_eq!(pooled.len(), 2);
        assert_eq!((pooled[0].numerator, pooled[0].denominator), (Some(15), Some(90)));
        assert!((pooled[0].estimate.unwrap().value - 15.0 / 90.0).abs() < 1e-12);
        assert!(!c.meta.partial);
        assert_eq!(c.rows[0].region, "24");
    }

    #[test]
    fn a_withheld_region_cell_withholds_the_pooled_cell_and_a_missing_region_marks_partial() {
        let recipe = Catalog::embedded().get("stroke_reperfusion", None).unwrap().clone();
        let mut outcomes = vec![
            ok("24", vec![cell("24", "female", 10, 50, CellStatus::Released), cell("24", "male", 0, 0, CellStatus::Suppressed)]),
            ok("25", vec![cell("25", "female", 5, 40, CellStatus::Released), cell("25", "male", 8, 45, CellStatus::Released)]),
        ];
        outcomes.push(RegionOutcome {
            region: "23".into(),
            name: "R23".into(),
            state: RegionState::Timeout,
            message: "no answer within 2 s".into(),
            answer: None,
            duration_ms: 2000,
            attempts: 1,
            error: None,
            record: None,
            waited_out: true,
        });
        let c = run(&recipe, &outcomes);
        let male = c.rows.iter().find(|r| r.kind == RowKind::Pooled && r.labels[0].as_deref() == Some("male")).unwrap();
        assert_eq!(male.status, "suppressed");
        assert_eq!(male.numerator, None);
        assert!(male.reasons.contains(&"pooled_protection".to_string()));
        assert!(male.partial && c.meta.partial);
        let missing = c.rows.iter().find(|r| r.kind == RowKind::Missing).unwrap();
        assert_eq!((missing.region.as_str(), missing.status.as_str()), ("23", "timeout"));
        let batch = c.to_record_batch().unwrap();
        assert_eq!(batch.num_rows(), c.rows.len());
        assert_eq!(batch.schema().metadata()["norrsken.partial"], "true");
    }
}
