//! Disclosure control: what an agent may release of the engine's raw cells.
//!
//! Questions arrive in canonical form ([`canonical`]). In order, per region in the answer:
//! 1. primary suppression: cells with 1..k-1 persons (numerator or denominator), proportions
//!    whose complement holds 1..k-1, cost sums dominated by one or two persons, and (when the
//!    policy says so) true zeros are withheld;
//! 2. cells the release ledger holds as withheld before ([`ledger`]) stay withheld;
//! 3. secondary suppression over the cells and their margins (see [`secondary`]);
//! 4. the ledger check: a cell whose release would, with everything released before to
//!    anyone, make a withheld cell derivable is withheld too (reason `ledger`, see [`span`]);
//! 5. a request's larger minimum cell size withholds more, never less;
//! 6. the cell key method perturbs every released count (see [`ptable`]), sum and spread
//!    (see [`magnitude`]), then optional rounding; the sum of squares never leaves;
//! 7. withheld cells get a reason code and a concrete coarsening suggestion; a dry run drops
//!    every value.
//!
//! Any inconsistency fails closed: the caller refuses to answer.

pub mod boxes;
pub mod canonical;
pub mod ledger;
pub mod magnitude;
pub mod policy;
pub mod protection;
pub mod ptable;
pub mod record_key;
pub mod secondary;
pub mod standardise;
pub mod span;

use std::collections::{BTreeMap, BTreeSet};

use norrsken_common::answer::{CellStatus, Reason, ReleasedCell};
use norrsken_common::breakdown::Breakdown;
use norrsken_common::catalog::Kind;
use norrsken_common::query::ValidatedQuery;

use crate::engine::cells::{CellTable, RawCell, TOTAL};
use policy::{Admission, DominanceRule, Policy};
use record_key::{KeyStream, RecordKeyer};
use boxes::{CellBox, CellId, Space, ValueSet};
use ledger::{LedgerCell, LedgerGuard, Mark, Release, SpaceKey};
use ptable::PTable;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DisclosureError(pub String);

/// What disclosure control needs besides the cells.
pub struct Settings<'a> {
    pub policy: &'a Policy,
    /// The minimum cell sizes: the floor the ledger protects and the one applied.
    pub admission: Admission,
    /// The perturbation table and record keyer when the cell key method is on.
    pub ptable: Option<&'a PTable>,
    pub keyer: Option<&'a RecordKeyer>,
    /// The last day the data covers (outcome windows past it are incomplete).
    pub data_end: chrono::NaiveDate,
}

/// The last day of a cell's time span: its time label's, or the period's.
fn cell_last_day(v: &ValidatedQuery, labels: &[String]) -> chrono::NaiveDate {
    let last = v
        .breakdowns
        .iter()
        .zip(labels)
        .find(|(b, l)| b.time_grain().is_some() && l.as_str() != TOTAL)
        .and_then(|(_, l)| norrsken_common::period::Period::parse(l).ok())
        .map_or(v.period.last, |p| p.last);
    let (y, m) = (last.year(), last.month());
    let next = if m == 12 { chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { chrono::NaiveDate::from_ymd_opt(y, m + 1, 1) };
    next.and_then(|d| d.pred_opt()).unwrap_or(chrono::NaiveDate::MAX)
}

/// Whether the recipe's outcome window of some of a cell's units reaches past the data.
fn incomplete_followup(v: &ValidatedQuery, labels: &[String], data_end: chrono::NaiveDate) -> Option<u32> {
    let days = v.recipe.follow_up_days.filter(|d| *d > 0)?;
    let last = cell_last_day(v, labels);
    (last + chrono::Duration::days(days as i64) > data_end).then_some(days)
}

/// The release ledger as one decision sees it.
pub struct LedgerView<'a> {
    pub guard: &'a LedgerGuard<'a>,
    pub data_version: &'a str,
}

/// The cells to send and what the ledger records of them.
#[derive(Debug, Clone)]
pub struct Protected {
    pub cells: Vec<ReleasedCell>,
    pub release: Release,
    /// Withheld cells that the history had made derivable before this question (logged).
    pub already_derivable: usize,
}

fn small(n: i64, k: i64) -> bool {
    n >= 1 && n < k
}

/// Primary suppression reasons for one raw cell at minimum cell size `k`.
fn primary(kind: Kind, c: &RawCell, policy: &Policy, k: u32) -> BTreeSet<Reason> {
    let k = k as i64;
    let mut r = BTreeSet::new();
    match kind {
        Kind::Proportion => {
            if small(c.persons, k) || small(c.numerator_persons, k) {
                r.insert(Reason::BelowMinCell);
            }
            if small(c.units - c.numerator, k) {
                r.insert(Reason::Complement);
            }
            if c.numerator == 0 && !policy.release_zeros {
                r.insert(Reason::Zero);
            }
        }
        Kind::Rate => {
            if small(c.persons, k) || small(c.population, k) {
                r.insert(Reason::BelowMinCell);
            }
            if c.units == 0 && !policy.release_zeros {
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
                let d = &policy.dominance;
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
/// The breakdowns a suggestion may drop, in the order they are suggested.
const DROP_ORDER: [Breakdown; 10] = [
    Breakdown::Kommun,
    Breakdown::Month,
    Breakdown::Quarter,
    Breakdown::AgeBand,
    Breakdown::Education,
    Breakdown::IncomeQuintile,
    Breakdown::BirthCountry,
    Breakdown::CareType,
    Breakdown::Sex,
    Breakdown::Year,
];

/// A concrete, checked way to ask so that a withheld cell can be released: dropping one of
/// its breakdowns, offered only when the coarser cell (the margin over that breakdown,
/// which the agent computed with the same data) is released by the same decisions. When no
/// coarser question this agent can check releases the cell, it says so instead of
/// promising.
pub fn suggestion(v: &ValidatedQuery, labels: &[String], released: impl Fn(&[String]) -> bool) -> String {
    for b in DROP_ORDER {
        let Some(i) = v.breakdowns.iter().position(|x| *x == b) else { continue };
        if labels[i] == TOTAL {
            continue;
        }
        let mut coarser = labels.to_vec();
        coarser[i] = TOTAL.to_string();
        if released(&coarser) {
            return match b {
                Breakdown::Kommun => "use the region instead of kommun (drop the kommun breakdown): that cell is released".into(),
                Breakdown::Month | Breakdown::Quarter | Breakdown::Year => {
                    format!("ask the whole period {} instead of by {} (drop the {} breakdown): that cell is released", v.period, b.name(), b.name())
                }
                Breakdown::AgeBand => "merge the age bands (drop age_band): that cell is released".into(),
                other => format!("drop the {} breakdown: that cell is released", other.name()),
            };
        }
    }
    if labels.iter().all(|l| l == TOTAL) {
        return format!("too few even without breakdowns in {}: a longer period, or several regions pooled, may release it (not checked)", v.period);
    }
    "no coarser cell of this question is released either: ask a longer period or several regions pooled (not checked)".into()
}

/// The secondary-suppression cells of one region's raw cells (distributions get one
/// virtual denominator per cell), with their primary reasons at `k`.
fn suppression_cells(raw: &[&RawCell], reasons: &[BTreeSet<Reason>], distribution: bool, k: u32) -> Vec<secondary::Cell> {
    let k = k as i64;
    let mut cells: Vec<secondary::Cell> = raw
        .iter()
        .zip(reasons)
        .map(|(c, r)| {
            let mut labels = c.labels.clone();
            if let Some(cat) = &c.category {
                labels.push(cat.clone());
            }
            let size = if distribution { c.numerator_persons } else { c.persons };
            secondary::Cell {
                labels,
                size,
                withheld: !r.is_empty(),
                virtual_cell: false,
                protect: true,
                small: r.contains(&Reason::BelowMinCell),
                slack: size > k,
                fixed: false,
            }
        })
        .collect();
    if distribution {
        // One denominator per cell: withheld for its own size when the persons are few.
        let mut seen = BTreeSet::new();
        for c in raw {
            if seen.insert(c.labels.clone()) {
                let mut labels = c.labels.clone();
                labels.push(TOTAL.to_string());
                let own = small(c.persons, k);
                cells.push(secondary::Cell { labels, size: c.persons, withheld: own, virtual_cell: true, protect: own, small: own, slack: c.persons > k, fixed: false });
            }
        }
    }
    cells
}

/// The ledger box of a secondary-suppression cell (virtual denominators: every category).
fn box_of(space: &Space, v: &ValidatedQuery, cell: &secondary::Cell, distribution: bool) -> Result<CellBox, DisclosureError> {
    let (labels, category) = if distribution {
        let (last, rest) = cell.labels.split_last().ok_or_else(|| DisclosureError("a distribution cell without its category".into()))?;
        (rest.to_vec(), Some(last.clone()))
    } else {
        (cell.labels.clone(), None)
    };
    space.cell_box(v, &CellId { labels, category }).map_err(|e| DisclosureError(e.to_string()))
}

fn overlaps(a: &CellBox, b: &CellBox) -> bool {
    a.0.iter().zip(&b.0).all(|(x, y)| match (x, y) {
        (ValueSet::All, _) | (_, ValueSet::All) => true,
        (ValueSet::Some(p), ValueSet::Some(q)) => p.iter().any(|v| q.binary_search(v).is_ok()),
    })
}

/// The ledger's decision over one region's cells: which of the released (and shown) cells
/// may go, given the history. Returns the indices refused and the number of withheld cells
/// the history had already made derivable.
#[allow(clippy::too_many_arguments)]
fn ledger_check(
    space: &Space,
    history: Option<&ledger::History>,
    cell_boxes: &[CellBox],
    cells: &[secondary::Cell],
    shown: &[bool],
    zeros: &[CellBox],
    max_atoms: u64,
) -> (BTreeSet<usize>, usize) {
    let empty = ledger::History::default();
    let h = history.unwrap_or(&empty);
    let released: Vec<&CellBox> = h.released.iter().collect();
    let zeros: Vec<&CellBox> = h.zeros.iter().chain(zeros).collect();
    let mut targets: Vec<&CellBox> = h.targets.iter().filter(|t| !h.released.contains(*t)).collect();
    for (i, c) in cells.iter().enumerate() {
        if c.withheld && !h.released.contains(&cell_boxes[i]) {
            targets.push(&cell_boxes[i]);
        }
    }
    // Candidates: released cells the answer shows, coarse cells (more margins) first; a
    // distribution's denominator before its categories.
    let mut order: Vec<usize> = (0..cells.len()).filter(|&i| !cells[i].withheld && (shown[i] || cells[i].virtual_cell)).collect();
    let totals = |i: usize| cells[i].labels.iter().filter(|l| l.as_str() == TOTAL).count();
    order.sort_by(|&a, &b| (usize::MAX - totals(a), &cells[a].labels).cmp(&(usize::MAX - totals(b), &cells[b].labels)));
    let candidates: Vec<&CellBox> = order.iter().map(|&i| &cell_boxes[i]).collect();
    // Every cell of this answer was asked, and so was what earlier answers withheld for a
    // larger minimum cell size.
    let asked: Vec<&CellBox> = h.asked.iter().chain(cell_boxes.iter()).collect();
    let mut refused = BTreeSet::new();
    match span::check(space.dimensions(), &released, &zeros, &targets, &asked, &candidates, max_atoms) {
        Ok(outcome) => {
            for (pos, ok) in outcome.release.iter().enumerate() {
                if !ok {
                    refused.insert(order[pos]);
                }
            }
            (refused, outcome.already_derivable.len())
        }
        Err(e) => {
            // Conservative: nothing new that overlaps a withheld cell.
            tracing::warn!(error = %e, "release ledger: the exact check is too large; withholding every new cell that overlaps a withheld one");
            for &i in &order {
                let b = &cell_boxes[i];
                if !h.released.contains(b) && targets.iter().any(|t| overlaps(t, b)) {
                    refused.insert(i);
                }
            }
            (refused, 0)
        }
    }
}

/// Applies disclosure control to an evaluated query in canonical form. `totals` says
/// whether margin cells are released (they are always used for protection). With a ledger
/// the decision also reads what was released before; the caller records the returned
/// release before the answer leaves.
pub fn protect(table: &CellTable, v: &ValidatedQuery, s: &Settings<'_>, ledger: Option<&LedgerView<'_>>) -> Result<Protected, DisclosureError> {
    let recipe = &v.recipe;
    let kind = recipe.kind;
    let distribution = recipe.is_distribution();
    let with_totals = v.options.totals;
    let (floor, k) = (s.admission.floor, s.admission.k);
    if s.policy.perturbation.enabled && (s.ptable.is_none() || s.keyer.is_none()) {
        return Err(DisclosureError("perturbation is on but its table or record keys are not available".into()));
    }
    let space = Space::of(recipe);
    let mut out = Vec::new();
    let mut release = Release::default();
    let mut already_derivable = 0;
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
        let key = ledger.map(|l| SpaceKey {
            recipe: recipe.key(),
            data_version: l.data_version.to_string(),
            perspective: v.options.perspective.name().to_string(),
            region: region.to_string(),
        });
        let history = match (ledger, &key) {
            (Some(l), Some(key)) => l.guard.history(key),
            _ => None,
        };
        // 1. Primary suppression at the floor.
        let mut reasons: Vec<BTreeSet<Reason>> = raw.iter().map(|c| primary(kind, c, s.policy, floor)).collect();
        let mut cells = suppression_cells(&raw, &reasons, distribution, floor);
        let shown: Vec<bool> = cells.iter().map(|c| !c.virtual_cell && (with_totals || !c.labels.iter().any(|l| l == TOTAL))).collect();
        let cell_boxes: Vec<CellBox> = match ledger {
            Some(_) => cells.iter().map(|c| box_of(&space, v, c, distribution)).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        // What secondary suppression withholds of this table on its own: those cells say
        // `secondary`, cells withheld only because of the history say `ledger`, so that
        // asking again gives the same reasons.
        let natural: Vec<bool> = match history {
            Some(_) => {
                let mut alone = cells.clone();
                secondary::protect(&mut alone).map_err(|e| DisclosureError(format!("region {region}: {e}")))?;
                alone.iter().map(|c| c.withheld).collect()
            }
            None => vec![true; cells.len()],
        };
        // 2. What the ledger withheld before stays withheld; what it released is kept if it can be.
        if let Some(h) = history {
            for i in 0..cells.len() {
                if h.released.contains(&cell_boxes[i]) {
                    cells[i].fixed = true;
                } else if h.targets.contains(&cell_boxes[i]) && !cells[i].withheld {
                    if cells[i].virtual_cell {
                        // A withheld denominator withholds every category of its cell.
                        let prefix = cells[i].labels[..cells[i].labels.len() - 1].to_vec();
                        for c in cells.iter_mut() {
                            if !c.virtual_cell && !c.withheld && c.labels[..c.labels.len() - 1] == prefix[..] {
                                c.withheld = true;
                            }
                        }
                    } else {
                        cells[i].withheld = true;
                    }
                }
            }
        }
        // 3. Secondary suppression over cells, margins and (for distributions) categories.
        secondary::protect(&mut cells).map_err(|e| DisclosureError(format!("region {region}: {e}")))?;
        // 4. The ledger check against everything released before.
        if ledger.is_some() {
            let present: Vec<CellId> = raw.iter().map(|c| CellId { labels: c.labels.clone(), category: c.category.clone() }).collect();
            let zeros = space.zero_boxes(v, &present).map_err(|e| DisclosureError(e.to_string()))?;
            let (refused, derivable) = ledger_check(&space, history, &cell_boxes, &cells, &shown, &zeros, s.policy.ledger.max_atoms);
            already_derivable += derivable;
            for i in refused {
                if cells[i].virtual_cell {
                    let v = cells[i].clone();
                    for c in cells.iter_mut() {
                        if !c.virtual_cell && !c.withheld && c.labels[..c.labels.len() - 1] == v.labels[..v.labels.len() - 1] {
                            c.withheld = true;
                        }
                    }
                }
                cells[i].withheld = true;
            }
            for z in zeros {
                release.zeros.push((region.to_string(), z));
            }
        }
        let floor_withheld: Vec<bool> = cells.iter().map(|c| c.withheld).collect();
        // 5. A larger requested minimum cell size withholds more on top.
        if k > floor {
            let raised: Vec<BTreeSet<Reason>> = raw.iter().map(|c| primary(kind, c, s.policy, k)).collect();
            let mut more = suppression_cells(&raw, &raised, distribution, k);
            for (i, c) in more.iter_mut().enumerate() {
                c.withheld |= floor_withheld[i];
            }
            secondary::protect(&mut more).map_err(|e| DisclosureError(format!("region {region}: {e}")))?;
            for (i, c) in more.iter().enumerate() {
                // A withheld cell's reasons are those of the size applied.
                if i < reasons.len() && c.withheld {
                    reasons[i].extend(raised[i].iter().copied());
                }
                cells[i].withheld = c.withheld;
            }
        }

        // 6. Release.
        let index: std::collections::HashMap<(Vec<String>, Option<String>), usize> =
            raw.iter().enumerate().map(|(i, c)| ((c.labels.clone(), c.category.clone()), i)).collect();
        for (i, c) in raw.iter().enumerate() {
            let margin = c.labels.iter().any(|l| l == TOTAL);
            let withheld = cells[i].withheld;
            // An outcome window past the data's last date: withheld unless the policy
            // releases such cells flagged.
            let incomplete = incomplete_followup(v, &c.labels, s.data_end);
            let dropped = incomplete.is_some() && !withheld && !s.policy.release_incomplete_followup;
            if ledger.is_some() {
                let mark = if floor_withheld[i] {
                    Some(Mark::Target)
                } else if withheld || dropped {
                    Some(Mark::Withheld)
                } else if shown[i] {
                    Some(Mark::Released)
                } else {
                    None
                };
                if let Some(m) = mark {
                    release.cells.push(LedgerCell { region: region.to_string(), labels: c.labels.clone(), category: c.category.clone(), m });
                    match m {
                        Mark::Released => release.released.push((region.to_string(), cell_boxes[i].clone())),
                        Mark::Target => release.targets.push((region.to_string(), cell_boxes[i].clone())),
                        Mark::Withheld => release.withheld.push((region.to_string(), cell_boxes[i].clone())),
                    }
                }
            }
            if margin && !with_totals {
                continue;
            }
            if let (Some(days), true) = (incomplete, dropped) {
                let last_index = s.data_end - chrono::Duration::days(days as i64);
                out.push(ReleasedCell::withheld(
                    &c.region,
                    &c.labels,
                    c.category.clone(),
                    vec![Reason::IncompleteFollowup],
                    Some(format!(
                        "the outcome is followed for {days} days and the data end on {}: ask a period that ends by {} (or wait for newer data)",
                        s.data_end, last_index
                    )),
                ));
                continue;
            }
            let mut why = reasons[i].clone();
            if withheld && why.is_empty() {
                why.insert(if natural[i] || !floor_withheld[i] { Reason::Secondary } else { Reason::Ledger });
            }
            if incomplete.is_some() {
                why.insert(Reason::IncompleteFollowup);
            }
            if withheld {
                out.push(ReleasedCell::withheld(
                    &c.region,
                    &c.labels,
                    c.category.clone(),
                    why.into_iter().collect(),
                    Some(suggestion(v, &c.labels, |coarser| {
                        index.get(&(coarser.to_vec(), c.category.clone())).is_some_and(|&j| !cells[j].withheld && incomplete_followup(v, coarser, s.data_end).is_none())
                    })),
                ));
                continue;
            }
            let mut cell = release_cell(kind, c, s)?;
            if incomplete.is_some() {
                cell.reasons.push(Reason::IncompleteFollowup);
            }
            out.push(cell);
        }
        // Withheld virtual denominators of distributions are targets too.
        if ledger.is_some() {
            for (i, c) in cells.iter().enumerate().filter(|(_, c)| c.virtual_cell) {
                if floor_withheld[i] {
                    release.targets.push((region.to_string(), cell_boxes[i].clone()));
                } else if !c.withheld {
                    // Released with its categories' denominator column.
                    let shown_any = cells.iter().enumerate().any(|(j, x)| !x.virtual_cell && !x.withheld && shown[j] && x.labels[..x.labels.len() - 1] == c.labels[..c.labels.len() - 1]);
                    if shown_any {
                        release.released.push((region.to_string(), cell_boxes[i].clone()));
                    }
                }
            }
        }
    }
    if v.options.dry_run {
        for c in &mut out {
            c.numerator = None;
            c.denominator = None;
            c.value_sum = None;
            c.value_sd = None;
        }
    }
    Ok(Protected { cells: out, release, already_derivable })
}

/// A cell's components as the region would release them: every count and sum perturbed by
/// the cell key method (unless the policy releases the kind exactly), the spread in place of
/// the sum of squares, optional rounding; whether anything was perturbed or rounded. Used
/// for released cells and for the age bands behind a standardised value.
pub fn released_components(kind: Kind, c: &RawCell, s: &Settings<'_>) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>, Vec<Reason>) {
    let (mut num, mut den, mut sum, mut sd) = components(kind, c);
    let mut reasons_out = Vec::new();
    let exact = s.policy.exact(kind);
    if let (Some(t), Some(keyer), false) = (s.ptable, s.keyer, exact) {
        // Each count with the key of exactly the units it counts.
        let (num_key, den_key) = match kind {
            Kind::Proportion => (keyer.cell_key(c.numerator_mix, c.numerator), keyer.cell_key(c.units_mix, c.units)),
            Kind::Rate => (keyer.cell_key(c.units_mix, c.units), keyer.cell_key(c.population_mix, c.population)),
            // Contacts and patients, each with the key of what it counts.
            Kind::CostSum => (keyer.cell_key(c.units_mix, c.units), keyer.cell_key(c.persons_mix, c.persons)),
            _ => (keyer.cell_key(c.units_mix, c.units), keyer.cell_key(c.units_mix, c.units)),
        };
        num = num.map(|n| t.perturb(n, num_key));
        den = den.map(|d| t.perturb(d, den_key));
        let m = s.policy.perturbation.magnitude;
        sum = sum.map(|x| magnitude::perturb_sum(x, c.top1, m, keyer.cell_key_in(KeyStream::Sum, c.units_mix, c.units)));
        sd = sd.map(|x| magnitude::perturb_spread(x, m, keyer.cell_key_in(KeyStream::Spread, c.units_mix, c.units)));
        reasons_out.push(Reason::Perturbed);
    }
    let base = s.policy.rounding_base as i64;
    if base > 1 && matches!(kind, Kind::Proportion | Kind::Rate | Kind::Count) {
        let round = |x: i64| ((x + base / 2) / base) * base;
        num = num.map(round);
        den = den.map(round);
        reasons_out.push(Reason::Rounded);
    }
    // A numerator never exceeds its denominator after perturbation.
    if kind == Kind::Proportion {
        if let (Some(n), Some(d)) = (num, den) {
            num = Some(n.min(d));
        }
    }
    (num, den, sum, sd, reasons_out)
}

/// The released form of a cell that passed (see [`released_components`]).
fn release_cell(kind: Kind, c: &RawCell, s: &Settings<'_>) -> Result<ReleasedCell, DisclosureError> {
    let (num, den, sum, sd, reasons_out) = released_components(kind, c, s);
    let status = if reasons_out.is_empty() { CellStatus::Released } else { CellStatus::Perturbed };
    let exact = s.policy.exact(kind);
    let js = s.policy.js() as i64;
    for x in [num, den].into_iter().flatten() {
        if s.ptable.is_some() && !exact && x >= 1 && x <= js {
            return Err(DisclosureError(format!("released value {x} lies in 1..{js}")));
        }
    }
    Ok(ReleasedCell {
        region: c.region.clone(),
        labels: c.labels.clone(),
        category: c.category.clone(),
        numerator: num,
        denominator: den,
        value_sum: sum,
        value_sd: sd,
        status,
        reasons: reasons_out,
        suggestion: None,
        standardised: None,
    })
}

/// The components of a raw cell for its kind before perturbation: (numerator, denominator,
/// sum, standard deviation). See `norrsken_common::answer::ReleasedCell`. A cost sum is
/// released per patient: the contacts as numerator, the distinct patients as denominator,
/// the total cost, and the spread of the patients' costs.
pub fn components(kind: Kind, c: &RawCell) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>) {
    match kind {
        Kind::Proportion => (Some(c.numerator), Some(c.units), None, None),
        Kind::Rate => (Some(c.units), Some(c.population), None, None),
        Kind::Count => (Some(c.units), None, None, None),
        Kind::Mean => (None, Some(c.units), Some(c.value_sum), magnitude::standard_deviation(c.units, c.value_sum, c.value_sum_sq)),
        Kind::CostSum => (Some(c.units), Some(c.persons), Some(c.value_sum), magnitude::standard_deviation(c.persons, c.value_sum, c.person_sum_sq)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::policy::Dominance;

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
            persons_mix: 0,
            person_sum_sq: 0.0,
        }
    }

    #[test]
    fn both_dominance_rules() {
        let mut policy = Policy::development(None);
        let s = |p: &Policy| primary(Kind::CostSum, &cost_cell(10, 1000.0, 700.0, 200.0), p, 5);
        // (2, 85): 900 of 1000 is dominated.
        assert!(s(&policy).contains(&Reason::Dominance));
        policy.dominance = Dominance { rule: DominanceRule::Nk, n: 1, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance), "700 of 1000 is not above 85 %");
        // p = 10: the rest (100) is above 10 % of the largest (70): released.
        policy.dominance = Dominance { rule: DominanceRule::PPercent, n: 2, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance));
        policy.dominance.p = 20.0;
        assert!(s(&policy).contains(&Reason::Dominance), "the rest (100) is below 20 % of 700");
        assert!(primary(Kind::CostSum, &cost_cell(3, 1000.0, 400.0, 300.0), &policy, 5).contains(&Reason::BelowMinCell));
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
        let admission = Admission { floor: 5, k: 5 };
        let settings = Settings { policy: &policy, admission, ptable: Some(&table), keyer: None, data_end: chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap() };
        let e = protect(&cells, &v, &settings, None).unwrap_err();
        assert!(e.to_string().contains("record keys"), "{e}");
        let keyer = RecordKeyer::new(&[1u8; 64]).unwrap();
        let settings = Settings { keyer: Some(&keyer), ..settings };
        assert!(protect(&cells, &v, &settings, None).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
