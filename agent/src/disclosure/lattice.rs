//! The lattice: every cell an allowed question can name, decided the same way whoever asks
//! and whatever was asked before.
//!
//! A cell is a combination of a *time block* and one value (or `total`) per breakdown. Time
//! blocks form a fixed hierarchy: the whole data period, its years, their quarters, their
//! months. A question's cells are looked up in the lattice of its recipe, data version,
//! perspective and minimum cell size:
//!
//! - its period is the whole data period, one year, one quarter or one month (a *block*),
//!   or several whole years (a *span*, decided from its years, [`super::derived`]);
//! - its breakdowns, and the breakdowns it filters on, are the lattice's dimensions: a
//!   filter on one value names that value's cells; a filter on several values names a
//!   *group* (decided from its values, [`super::derived`]).
//!
//! Cells are decided *coarsest first*, one **shape** at a time: a shape is a time level (the
//! whole period, years, quarters, months) and a set of breakdowns. A cell's decision reads
//! only its own shape and the coarser shapes whose cells it lies in: the primary rules
//! ([`super::primary`]), the implied cells between it and every coarser cell it lies in
//! ([`super::implied`]), then secondary suppression ([`super::secondary`]) over its shape
//! with every coarser cell *locked*: counted in the lines, never changed. So a cell gets
//! the same decision in every question that shows it (by sex alone, or by sex and age band,
//! for 2024 or broken down by year), and no question can change what another released.
//!
//! Shapes of quarters and months are decided one year at a time (their lines never cross a
//! year), with the years and the whole period locked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use norrsken_model::answer::Reason;
use norrsken_model::breakdown::{Breakdown, TimeGrain};
use norrsken_model::catalog::Kind;
use norrsken_model::period::Period;
use norrsken_model::query::ValidatedQuery;

use super::implied::{implied_small, same_cell};
use super::policy::Policy;
use super::primary::primary;
use super::secondary;
use super::DisclosureError;
use crate::engine::cells::{RawCell, TOTAL};

/// The time breakdowns, coarsest first: the lattice's first three label slots.
pub const TIME: [Breakdown; 3] = [Breakdown::Year, Breakdown::Quarter, Breakdown::Month];

/// Why a question cannot be placed in the lattice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the period {period} is not whole years, one quarter or one month: periods are building blocks of the data ({first}..{last}), so that two periods never differ by a few persons; ask whole years and break down by quarter or month"
    )]
    Period { period: String, first: i32, last: i32 },
}

/// Where a question's period sits in the time hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodShape {
    /// The whole data period.
    Full,
    /// One year, quarter or month: its time labels (year; year, quarter; year, quarter, month).
    Block(Vec<String>),
    /// Several whole years that are not the whole data period.
    Span(i32, i32),
}

/// The time slots of a time breakdown's label: `2024` → [2024]; `2024Q2` → [2024, 2024Q2];
/// `2024-05` → [2024, 2024Q2, 2024-05].
pub fn label_slots(grain: TimeGrain, label: &str) -> Option<Vec<String>> {
    let p = Period::parse(label).ok().filter(|p| p.grain == grain && p.first_year() == p.last_year())?;
    let s = p.first.labels();
    let n = level(grain);
    (grain == TimeGrain::Year || p.first == p.last || grain == TimeGrain::Quarter && p.months() == 3).then(|| s[..n].to_vec())
}

fn level(grain: TimeGrain) -> usize {
    match grain {
        TimeGrain::Year => 1,
        TimeGrain::Quarter => 2,
        TimeGrain::Month => 3,
    }
}

/// How one question sits in the lattice, and what must be evaluated to decide it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The question in canonical form.
    pub question: ValidatedQuery,
    pub data_years: (i32, i32),
    pub period: PeriodShape,
    /// The lattice's dimensions after time: the question's breakdowns and filtered
    /// breakdowns, in canonical order.
    pub dims: Vec<Breakdown>,
    /// The finest time level the question needs: 0 the whole period, 1 years, 2 quarters,
    /// 3 months.
    pub depth: usize,
    /// The question's time breakdown, if any.
    pub time_breakdown: Option<Breakdown>,
    /// Filters naming several values (groups).
    pub groups: BTreeMap<Breakdown, BTreeSet<String>>,
    /// Filters naming one value.
    pub fixed: BTreeMap<Breakdown, String>,
}

impl Plan {
    /// Places a question (in canonical form) in the lattice of data covering `data_years`.
    pub fn of(q: &ValidatedQuery, data_years: (i32, i32)) -> Result<Plan, PlanError> {
        let p = q.period;
        let refuse = || PlanError::Period { period: p.to_string(), first: data_years.0, last: data_years.1 };
        let period = match p.grain {
            TimeGrain::Year if p.first_year() == data_years.0 && p.last_year() == data_years.1 => PeriodShape::Full,
            TimeGrain::Year if p.first_year() == p.last_year() => PeriodShape::Block(vec![format!("{}", p.first_year())]),
            TimeGrain::Year => PeriodShape::Span(p.first_year(), p.last_year()),
            TimeGrain::Quarter if p.months() == 3 => PeriodShape::Block(p.first.labels()[..2].to_vec()),
            TimeGrain::Month if p.months() == 1 => PeriodShape::Block(p.first.labels().to_vec()),
            _ => return Err(refuse()),
        };
        let time_breakdown = q.breakdowns.iter().copied().find(|b| b.time_grain().is_some());
        let period_level = match &period {
            PeriodShape::Full => 0,
            PeriodShape::Block(s) => s.len(),
            PeriodShape::Span(..) => 1,
        };
        let depth = period_level.max(time_breakdown.and_then(|b| b.time_grain()).map_or(0, level));
        let mut dims: Vec<Breakdown> = q.breakdowns.iter().copied().filter(|b| b.time_grain().is_none()).chain(q.filters.keys().copied()).collect();
        dims.sort();
        dims.dedup();
        let mut groups = BTreeMap::new();
        let mut fixed = BTreeMap::new();
        for (b, values) in &q.filters {
            if values.len() == 1 {
                fixed.insert(*b, values.iter().next().cloned().unwrap_or_default());
            } else {
                groups.insert(*b, values.clone());
            }
        }
        Ok(Plan { question: q.clone(), data_years, period, dims, depth, time_breakdown, groups, fixed })
    }

    /// Whether some of the question's cells are spans or groups, decided from the lattice's
    /// cells rather than looked up in it.
    pub fn derived(&self) -> bool {
        matches!(self.period, PeriodShape::Span(..)) || !self.groups.is_empty()
    }

    /// A question over the lattice: every breakdown (no filters), over `period`, with time
    /// broken down to `time` levels.
    fn lattice_query(&self, period: Period, time: usize) -> ValidatedQuery {
        let mut v = self.question.clone();
        v.breakdowns = TIME[..time].iter().copied().chain(self.dims.iter().copied()).collect();
        v.filters = BTreeMap::new();
        v.period = period;
        v.options = norrsken_model::query::QueryOptions { perspective: self.question.options.perspective, ..Default::default() };
        v
    }

    /// The evaluations the lattice needs: the whole data period by year (or not broken down
    /// by time when the question needs only the whole period), and, for quarters and months,
    /// the years the question covers by year, quarter and month.
    pub fn lattice_queries(&self) -> Vec<ValidatedQuery> {
        let (first, last) = self.data_years;
        let mut out = vec![self.lattice_query(Period::years(first, last), self.depth.min(1))];
        if self.depth >= 2 {
            let (a, b) = match &self.period {
                PeriodShape::Full => (first, last),
                PeriodShape::Span(a, b) => (*a, *b),
                PeriodShape::Block(s) => {
                    let y: i32 = s[0].parse().unwrap_or(first);
                    (y, y)
                }
            };
            out.push(self.lattice_query(Period::years(a, b), self.depth));
        }
        out
    }

    /// What the lattice depends on besides the data, the policy and the sizes: the recipe,
    /// the perspective, the dimensions and the evaluations (for quarters and months, which
    /// years).
    pub fn lattice_key(&self) -> String {
        let dims: Vec<&str> = self.dims.iter().map(|b| b.name()).collect();
        let years = self.lattice_queries().iter().map(|q| q.period.to_string()).collect::<Vec<_>>().join("+");
        format!("{}|{}|{}|{}|{}", self.question.recipe.key(), self.question.options.perspective.name(), dims.join(","), self.depth, years)
    }

    /// The question's own evaluation, for spans and groups.
    pub fn derived_query(&self) -> ValidatedQuery {
        let mut v = self.question.clone();
        v.options = norrsken_model::query::QueryOptions { perspective: self.question.options.perspective, ..Default::default() };
        v
    }

    /// The larger cells a span or group lies in that are not lattice cells, as questions:
    /// every longer span (for the whole data period only when the question also has groups)
    /// and, for a span, the span without each group. Person-based recipes check the implied
    /// cells against them ([`super::derived`]).
    pub fn partner_queries(&self) -> Vec<ValidatedQuery> {
        let mut out = Vec::new();
        let base = self.derived_query();
        let (first, last) = self.data_years;
        if let PeriodShape::Span(a, b) = self.period {
            for x in first..=a {
                for y in b..=last {
                    if (x, y) == (a, b) || ((x, y) == (first, last) && self.groups.is_empty()) {
                        continue;
                    }
                    out.push(ValidatedQuery { period: Period::years(x, y), ..base.clone() });
                }
            }
            for d in self.groups.keys() {
                let mut v = base.clone();
                v.filters.remove(d);
                out.push(v);
            }
        }
        out
    }

    /// The time slots of the question's period (empty for the whole data period).
    pub fn period_slots(&self) -> Option<&[String]> {
        match &self.period {
            PeriodShape::Full => Some(&[]),
            PeriodShape::Block(s) => Some(s),
            PeriodShape::Span(..) => None,
        }
    }
}

/// A lattice cell: its region, its labels (year, quarter, month, then the plan's
/// dimensions; `total` where summed over) and its category (distributions).
pub type Key = (String, Vec<String>, Option<String>);

/// What was decided for one cell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub withheld: bool,
    pub reasons: BTreeSet<Reason>,
}

/// The raw cells of one lattice, keyed by their lattice labels.
#[derive(Debug, Clone, Default)]
pub struct Lattice {
    pub cells: HashMap<Key, RawCell>,
}

/// How many leading time slots are set (the time level), if the labels are a prefix.
fn time_level(labels: &[String]) -> Option<usize> {
    let set: Vec<bool> = labels[..3].iter().map(|l| l != TOTAL).collect();
    match set.as_slice() {
        [false, false, false] => Some(0),
        [true, false, false] => Some(1),
        [true, true, false] => Some(2),
        [true, true, true] => Some(3),
        _ => None,
    }
}

/// A cell synthesised for presence hiding: it holds nobody.
pub fn is_empty(c: &RawCell) -> bool {
    c.units == 0 && c.population == 0 && c.numerator == 0 && c.persons == 0
}


impl Lattice {
    /// Hides which cells are empty where it would tell something: in every line (the cells
    /// of one shape that differ in one breakdown, or in the time block under one parent)
    /// that holds a cell of 1..k-1 persons, the values of that breakdown the line lacks
    /// are added as empty cells, withheld like the small one. So a withheld cell of too few
    /// persons may hold none, and a requester cannot count how many groups a small cell's
    /// persons are spread over (which, with the bounds reason codes give, could pin them).
    /// The values are those the region's data hold at all (the coarsest cell of each value
    /// over the whole period), so the added cells are the same in every question.
    pub fn with_empty_siblings(&self, rules: &Rules<'_>) -> Lattice {
        let mut out = self.clone();
        // The values of each slot: per region, time blocks under each parent and the values
        // of each breakdown (from the cells of one value over the whole period).
        let mut values: HashMap<(String, usize, Vec<String>), BTreeSet<String>> = HashMap::new();
        for (region, labels, _) in self.cells.keys() {
            let (level, mask) = shape(labels);
            if mask == 0 && level >= 1 {
                values.entry((region.clone(), level - 1, labels[..level - 1].to_vec())).or_default().insert(labels[level - 1].clone());
            }
            if level == 0 && mask.count_ones() == 1 {
                let d = mask.trailing_zeros() as usize;
                values.entry((region.clone(), 3 + d, vec![])).or_default().insert(labels[3 + d].clone());
            }
        }
        let small: Vec<&Key> = self.cells.iter().filter(|(_, c)| primary(rules.kind, c, rules.policy, rules.k).contains(&Reason::BelowMinCell)).map(|(k, _)| k).collect();
        for key in small {
            let (region, labels, category) = key;
            let (level, mask) = shape(labels);
            let mut slots: Vec<usize> = (0..labels.len() - 3).filter(|d| mask & (1 << d) != 0).map(|d| 3 + d).collect();
            if level >= 1 {
                slots.push(level - 1);
            }
            for slot in slots {
                let mut total = labels.clone();
                total[slot] = TOTAL.to_string();
                if slot < 3 {
                    for t in total.iter_mut().take(3).skip(slot) {
                        *t = TOTAL.to_string();
                    }
                }
                if !self.cells.contains_key(&(region.clone(), total, category.clone())) {
                    continue;
                }
                let vocabulary = if slot < 3 { values.get(&(region.clone(), slot, labels[..slot].to_vec())) } else { values.get(&(region.clone(), slot, vec![])) };
                for v in vocabulary.into_iter().flatten() {
                    let mut sibling = labels.clone();
                    sibling[slot] = v.clone();
                    let k = (region.clone(), sibling.clone(), category.clone());
                    if !out.cells.contains_key(&k) && !self.known_empty(rules.kind, &k) {
                        out.cells.insert(k, RawCell::empty(region, sibling, category.clone()));
                    }
                }
            }
        }
        out
    }

    /// Whether an answer already shows the (absent) cell `key` empty: along one of its
    /// breakdowns (or time), another cell holds all of the line's units.
    fn known_empty(&self, kind: Kind, key: &Key) -> bool {
        let (region, labels, category) = key;
        parents(labels).into_iter().any(|p| {
            let Some(total) = self.cells.get(&(region.clone(), p.clone(), category.clone())) else { return false };
            // The slot that differs, and the siblings along it.
            let slot = (0..labels.len()).find(|&i| labels[i] != p[i]).unwrap_or(0);
            self.cells.iter().any(|((r, l, c), cell)| {
                r == region && c == category && l[slot] != labels[slot] && l[slot] != TOTAL && (0..l.len()).all(|i| i == slot || l[i] == labels[i]) && same_cell(kind, total, cell)
            })
        })
    }

    /// Builds the lattice from the evaluations of [`Plan::lattice_queries`], in order. Cells
    /// that are not in the time hierarchy (a quarter without its year) are dropped, so are
    /// the years of the second evaluation (the first holds them).
    pub fn from_evaluations(plan: &Plan, tables: &[Vec<RawCell>]) -> Lattice {
        let mut cells = HashMap::new();
        for (i, table) in tables.iter().enumerate() {
            let time = if i == 0 { plan.depth.min(1) } else { plan.depth };
            for c in table {
                let mut labels: Vec<String> = c.labels[..time].to_vec();
                labels.resize(3, TOTAL.to_string());
                labels.extend(c.labels[time..].iter().cloned());
                let Some(level) = time_level(&labels) else { continue };
                if i > 0 && level < 2 {
                    continue;
                }
                let key = (c.region.clone(), labels.clone(), c.category.clone());
                cells.insert(key, RawCell { labels, ..c.clone() });
            }
        }
        Lattice { cells }
    }
}

/// A cell's shape: its time level and which dimensions it is broken down by (a bit each).
fn shape(labels: &[String]) -> (usize, u32) {
    let level = time_level(labels).unwrap_or(0);
    let mask = labels[3..].iter().enumerate().filter(|(_, l)| l.as_str() != TOTAL).fold(0u32, |m, (i, _)| m | (1 << i));
    (level, mask)
}

/// The labels of the cells one step coarser: one breakdown summed over, or the time block's
/// parent (month to quarter, quarter to year, year to the whole period).
fn parents(labels: &[String]) -> Vec<Vec<String>> {
    let (level, mask) = shape(labels);
    let mut out = Vec::new();
    if level > 0 {
        let mut p = labels.to_vec();
        p[level - 1] = TOTAL.to_string();
        out.push(p);
    }
    for d in 0..labels.len() - 3 {
        if mask & (1 << d) != 0 {
            let mut p = labels.to_vec();
            p[3 + d] = TOTAL.to_string();
            out.push(p);
        }
    }
    out
}

/// The labels of every coarser cell a cell lies in: each shorter time prefix combined with
/// each subset of its breakdowns.
fn ancestors(labels: &[String]) -> Vec<Vec<String>> {
    let (level, mask) = shape(labels);
    let dims = labels.len() - 3;
    let mut out = Vec::new();
    for l in 0..=level {
        let mut sub = mask;
        loop {
            if (l, sub) != (level, mask) {
                let mut a: Vec<String> = labels.to_vec();
                for slot in a.iter_mut().take(3).skip(l) {
                    *slot = TOTAL.to_string();
                }
                for d in 0..dims {
                    if sub & (1 << d) == 0 {
                        a[3 + d] = TOTAL.to_string();
                    }
                }
                out.push(a);
            }
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & mask;
        }
    }
    out
}

/// What the decisions need besides the cells.
pub struct Rules<'a> {
    pub kind: Kind,
    pub distribution: bool,
    pub policy: &'a Policy,
    /// The minimum cell size applied.
    pub k: u32,
    /// Whether each unit is a person counted once per cell (then time does not add up: a
    /// person in three years counts once in the period).
    pub persons: bool,
}

impl Rules<'_> {
    /// Which label positions have additive lines: the first `time` positions are time,
    /// additive only for event-based recipes; the rest are breakdowns.
    pub fn additive(&self, time: usize) -> Vec<bool> {
        (0..time).map(|_| !self.persons).collect()
    }
}

/// The size secondary suppression orders cells by.
pub(crate) fn size_of(c: &RawCell, distribution: bool) -> i64 {
    if distribution {
        c.numerator_persons
    } else {
        c.persons
    }
}

/// The secondary-suppression cells for `keys` (of one region): real cells with their
/// decisions, locked where `locked` says or where `copy` says the cell is a copy of a locked
/// one (withholding it protects nothing), and for distributions one virtual denominator per
/// cell. Returns the cells and, for each real cell, its key.
pub(crate) fn suppression_cells_with(
    keys: &[(&Key, bool)],
    raw: &HashMap<Key, RawCell>,
    decided: &HashMap<Key, Decision>,
    distribution: bool,
    k: u32,
    copy: impl Fn(&Key) -> bool,
) -> (Vec<secondary::Cell>, Vec<Key>) {
    let k = k as i64;
    let mut cells = Vec::with_capacity(keys.len());
    let mut index = Vec::with_capacity(keys.len());
    let mut denominators: BTreeMap<Vec<String>, (i64, bool)> = BTreeMap::new();
    for (key, locked) in keys {
        let locked = &(*locked || copy(key));
        let c = &raw[*key];
        let d = decided.get(*key).cloned().unwrap_or_default();
        let mut labels = key.1.clone();
        if let Some(cat) = &key.2 {
            labels.push(cat.clone());
            let e = denominators.entry(key.1.clone()).or_insert((c.persons, true));
            e.1 &= *locked;
        }
        let size = size_of(c, distribution);
        cells.push(secondary::Cell {
            labels,
            size,
            withheld: d.withheld,
            virtual_cell: false,
            protect: true,
            small: d.reasons.contains(&Reason::BelowMinCell),
            slack: size > k,
            locked: *locked,
            empty: is_empty(c),
        });
        index.push((*key).clone());
    }
    for (labels, (persons, locked)) in denominators {
        let mut labels = labels;
        labels.push(TOTAL.to_string());
        let own = super::primary::small(persons, k);
        cells.push(secondary::Cell { labels, size: persons, withheld: own, virtual_cell: true, protect: own, small: own, slack: persons > k, locked, empty: false });
    }
    (cells, index)
}

/// Decides every cell of a lattice, coarsest shape first. `forced` cells are withheld
/// whatever the rules say (a request's larger minimum cell size is decided on top of the
/// region's floor this way).
pub fn decide(lattice: &Lattice, rules: &Rules<'_>, forced: &HashMap<Key, Decision>) -> Result<HashMap<Key, Decision>, DisclosureError> {
    let mut decided: HashMap<Key, Decision> = HashMap::with_capacity(lattice.cells.len());
    // Shapes (and, below years, the year) in the order they are decided.
    let mut groups: BTreeMap<(usize, u32, u32, String, String), Vec<&Key>> = BTreeMap::new();
    for key in lattice.cells.keys() {
        let (level, mask) = shape(&key.1);
        let year = if level >= 2 { key.1[0].clone() } else { String::new() };
        groups.entry((level, mask.count_ones(), mask, key.0.clone(), year)).or_default().push(key);
    }
    // The cells one step finer than each cell, to find its copies (finer cells with the same
    // units: their other parts are empty).
    let mut children: HashMap<Key, Vec<&Key>> = HashMap::new();
    for key in lattice.cells.keys() {
        for p in parents(&key.1) {
            children.entry((key.0.clone(), p, key.2.clone())).or_default().push(key);
        }
    }
    // Cells by region and shape, for the context of finer shapes.
    let mut by_shape: HashMap<(String, usize, u32), Vec<&Key>> = HashMap::new();
    for key in lattice.cells.keys() {
        let (level, mask) = shape(&key.1);
        by_shape.entry((key.0.clone(), level, mask)).or_default().push(key);
    }
    for ((level, _, mask, region, year), mut interior) in groups {
        interior.sort();
        // 1. Primary and implied rules, and what a larger request or the floor forces.
        for key in &interior {
            let c = &lattice.cells[*key];
            if is_empty(c) {
                // An empty cell shown like a small one (see [`Lattice::with_empty_siblings`]).
                decided.insert((*key).clone(), Decision { withheld: true, reasons: BTreeSet::from([Reason::BelowMinCell]) });
                continue;
            }
            let mut reasons = primary(rules.kind, c, rules.policy, rules.k);
            let mut withheld = !reasons.is_empty();
            if let Some(f) = forced.get(*key) {
                if f.withheld {
                    withheld = true;
                    reasons.extend(f.reasons.iter().copied());
                }
            }
            // Its copies lie in the larger cells their own labels name, so those count too.
            let mut class: Vec<&Key> = vec![*key];
            let mut i = 0;
            while i < class.len() {
                for child in children.get(class[i]).map(Vec::as_slice).unwrap_or(&[]) {
                    if same_cell(rules.kind, c, &lattice.cells[*child]) && !class.contains(child) {
                        class.push(child);
                    }
                }
                i += 1;
            }
            let mut larger: Vec<Vec<String>> = class.iter().flat_map(|m| ancestors(&m.1)).collect();
            larger.sort();
            larger.dedup();
            for a in larger {
                let akey = (key.0.clone(), a, key.2.clone());
                if class.contains(&&akey) {
                    continue;
                }
                let Some(parent) = lattice.cells.get(&akey) else { continue };
                // A larger cell withheld (and protected) gives nothing away with this one;
                // one not decided yet (a copy's larger cell) counts as released.
                let parent_released = !decided.get(&akey).is_some_and(|d| d.withheld);
                if parent_released && implied_small(rules.kind, parent, c, rules.k) {
                    withheld = true;
                    reasons.insert(Reason::Implied);
                } else if !parent_released && same_cell(rules.kind, parent, c) {
                    withheld = true;
                    reasons.insert(Reason::Secondary);
                }
            }
            decided.insert((*key).clone(), Decision { withheld, reasons });
        }
        // 2. Secondary suppression over the shape, coarser cells locked.
        let mut keys: Vec<(&Key, bool)> = Vec::new();
        for ((r, l, m), members) in &by_shape {
            if *r != region || *l > level || (m & !mask) != 0 || (*l, *m) == (level, mask) {
                continue;
            }
            for k in members {
                if *l >= 2 && k.1[0] != year {
                    continue;
                }
                keys.push((k, true));
            }
        }
        keys.sort();
        keys.extend(interior.iter().map(|k| (*k, false)));
        let locked: std::collections::HashSet<&Key> = keys.iter().filter(|(_, l)| *l).map(|(k, _)| *k).collect();
        let copy = |k: &Key| {
            let c = &lattice.cells[k];
            parents(&k.1).into_iter().any(|p| {
                let pk = (k.0.clone(), p, k.2.clone());
                locked.contains(&pk) && same_cell(rules.kind, &lattice.cells[&pk], c)
            })
        };
        let (mut cells, index) = suppression_cells_with(&keys, &lattice.cells, &decided, rules.distribution, rules.k, copy);
        secondary::protect_along(&mut cells, &rules.additive(3)).map_err(|e| DisclosureError(format!("region {region}: {e}")))?;
        for (i, key) in index.iter().enumerate() {
            if keys[i].1 {
                continue;
            }
            let d = decided.get_mut(key).ok_or_else(|| DisclosureError("a decided cell went missing".into()))?;
            if cells[i].withheld && !d.withheld {
                d.withheld = true;
                d.reasons.insert(Reason::Secondary);
            }
        }
    }
    Ok(decided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    fn v(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        let v = q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap();
        super::super::canonical::Canonical::of(&v).query
    }

    #[test]
    fn periods_are_blocks_or_spans_of_years() {
        let plan = |json: &str| Plan::of(&v(json), (2021, 2025));
        let p = plan(r#"{"indicator":"stroke_admissions","period":"2021..2025"}"#).unwrap();
        assert_eq!((p.period.clone(), p.depth), (PeriodShape::Full, 0));
        let p = plan(r#"{"indicator":"stroke_admissions","period":"2024","breakdowns":["month"]}"#).unwrap();
        assert_eq!((p.period.clone(), p.depth), (PeriodShape::Block(vec!["2024".into()]), 3));
        assert_eq!(p.lattice_queries().len(), 2);
        let p = plan(r#"{"indicator":"stroke_admissions","period":"2024Q2"}"#).unwrap();
        assert_eq!(p.period, PeriodShape::Block(vec!["2024".into(), "2024Q2".into()]));
        let p = plan(r#"{"indicator":"stroke_admissions","period":"2022..2024","filters":{"sex":["female"],"age_band":["65-79","80+"]}}"#).unwrap();
        assert_eq!(p.period, PeriodShape::Span(2022, 2024));
        assert!(p.derived());
        assert_eq!(p.dims, vec![Breakdown::Sex, Breakdown::AgeBand]);
        assert_eq!(p.fixed.get(&Breakdown::Sex).map(String::as_str), Some("female"));
        // Longer spans: 2021..2024, 2022..2025, 2021..2025 (the whole period: there are
        // groups), and the span without its group.
        assert_eq!(p.partner_queries().len(), 4);
        // Other periods are refused by validation, and by the plan too.
        for bad in ["2024-01..2024-11", "2024Q1..2024Q3", "2023-07..2024-06"] {
            let (q, _) = IndicatorQuery::decode_ticket(format!(r#"{{"indicator":"stroke_admissions","period":"{bad}"}}"#).as_bytes()).unwrap();
            let e = q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap_err();
            assert!(e.to_string().contains("whole years"), "{e}");
            let mut v = v(r#"{"indicator":"stroke_admissions","period":"2024"}"#);
            v.period = Period::parse(bad).unwrap();
            assert!(Plan::of(&v, (2021, 2025)).unwrap_err().to_string().contains("whole years"));
        }
    }

    #[test]
    fn ancestors_are_every_coarser_cell() {
        let labels: Vec<String> = ["2024", "2024Q2", "total", "female", "80+"].iter().map(|s| s.to_string()).collect();
        let a = ancestors(&labels);
        // 3 time levels (whole, year, quarter) x 4 subsets of two breakdowns, less itself.
        assert_eq!(a.len(), 11);
        assert!(a.contains(&["total", "total", "total", "total", "total"].iter().map(|s| s.to_string()).collect()));
        assert!(a.contains(&["2024", "total", "total", "female", "80+"].iter().map(|s| s.to_string()).collect()));
    }

    fn raw(labels: &[&str], persons: i64) -> (Key, RawCell) {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let c = RawCell { units: persons, persons, ..RawCell::empty("24", labels.clone(), None) };
        (("24".into(), labels, None), c)
    }

    /// Years by sex, with the whole period: a small cell in one year is protected within its
    /// year and along its sex's years, and the coarser cells keep the decisions they had on
    /// their own.
    #[test]
    fn coarser_shapes_are_decided_first_and_never_changed() {
        let mut cells = HashMap::new();
        let sizes = [("2023", 40, 3), ("2024", 50, 45), ("2025", 60, 55)];
        let (mut f_all, mut m_all) = (0, 0);
        for (y, f, m) in sizes {
            for (sex, n) in [("female", f), ("male", m), ("total", f + m)] {
                let (k, c) = raw(&[y, "total", "total", sex], n);
                cells.insert(k, c);
            }
            f_all += f;
            m_all += m;
        }
        for (sex, n) in [("female", f_all), ("male", m_all), ("total", f_all + m_all)] {
            let (k, c) = raw(&["total", "total", "total", sex], n);
            cells.insert(k, c);
        }
        let lattice = Lattice { cells };
        let policy = Policy::development(None);
        let rules = Rules { kind: Kind::Count, distribution: false, policy: &policy, k: 5, persons: false };
        let d = decide(&lattice, &rules, &HashMap::new()).unwrap();
        let at = |l: &[&str]| d[&("24".to_string(), l.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None)].clone();
        assert!(at(&["2023", "total", "total", "male"]).reasons.contains(&Reason::BelowMinCell));
        assert!(at(&["2023", "total", "total", "female"]).withheld, "the other sex of 2023 goes too");
        // The totals by year, by sex and overall were decided before and stay released.
        for l in [["2023", "total", "total", "total"], ["total", "total", "total", "male"], ["total", "total", "total", "total"]] {
            assert!(!at(&l).withheld, "{l:?}");
        }
        // Along the male years, another year is withheld so 2023 is not the rest.
        let male_years = ["2024", "2025"].iter().filter(|y| at(&[y, "total", "total", "male"]).withheld).count();
        assert_eq!(male_years, 1);
    }
}
