//! Cells and all their margins computed in the agent from the recipe's labelled rows.
//!
//! The SQL compilation ([`super::sql::compile`]) returns the same components with GROUPING
//! SETS: one aggregation per subset of the breakdowns, each with distinct counts of persons
//! (and, for cost sums, a window over every person of every margin cell). With three
//! breakdowns that is eight passes over the rows and millions of (cell, person) groups, which
//! at a region's full size takes seconds and gigabytes. Here DataFusion only produces the
//! labelled rows in scope (`region`, `b_<breakdown>`..., `person_id`, `unit_id`, `num`,
//! `value`); the agent keeps them compactly (32 bytes a row, reserved in the engine's memory
//! pool), orders them by person and walks each person once, adding what the person
//! contributes to every cell and margin cell they touch. Distinct persons, record-key sums
//! and the largest per-person contributions then need no large hash tables.
//!
//! A rate's population (residents alive on 1 July of each year) is additive: SQL counts it
//! per combination of labels, [`MarginAggregator::push_population`] takes those counts and
//! the margins are their sums.
//!
//! Distributions count each unit's category as the numerator of a (cell, category) pair,
//! for every category of the recipe.
//!
//! Used for every kind over a datalager whose rows are local (Parquet/CSV folders).
//! Warehouses that take the aggregate (PostgreSQL) use the SQL compilation; the tests hold
//! both to the same cells.

use ahash::AHashMap as HashMap;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::execution::memory_pool::MemoryReservation;
use norrsken_model::catalog::{Kind, Unit};
use norrsken_model::query::ValidatedQuery;

use super::cells::{mix, RawCell, TOTAL};

/// Why the rows could not be aggregated.
#[derive(Debug, thiserror::Error)]
pub enum MarginError {
    /// The recipe's rows do not have the expected shape (a recipe bug, not bad input).
    #[error("{0}")]
    Rows(String),
    /// The rows need more memory than the engine's pool grants.
    #[error(transparent)]
    Memory(#[from] datafusion::error::DataFusionError),
}

/// One labelled row, kept compactly.
#[derive(Clone, Copy)]
struct Row {
    person: i64,
    unit: i64,
    value: f64,
    cell: u32,
    /// Index of the unit's category among the recipe's categories sorted by code
    /// (distributions), [`NO_CATEGORY`] otherwise.
    category: u16,
    /// Bit 0: meets the numerator; bit 1: has a value.
    flags: u8,
}

const NO_CATEGORY: u16 = u16::MAX;

const NUM: u8 = 1;
const HAS_VALUE: u8 = 2;

/// What one person (or one unit, when de-duplicating) adds to one cell.
#[derive(Default, Clone, Copy)]
struct Contribution {
    units: i64,
    units_mix: i64,
    numerator: i64,
    numerator_mix: i64,
    value_sum: f64,
    value_sum_sq: f64,
    has_value: bool,
}

impl Contribution {
    fn add_unit(&mut self, unit: i64, num: bool, value: Option<f64>) {
        let key = mix(unit);
        self.units += 1;
        self.units_mix += key;
        if num {
            self.numerator += 1;
            self.numerator_mix += key;
        }
        if let Some(v) = value {
            self.value_sum += v;
            self.value_sum_sq += v * v;
            self.has_value = true;
        }
    }
}

/// A cell's running totals.
#[derive(Default, Clone, Copy)]
struct Totals {
    c: Contribution,
    persons: i64,
    numerator_persons: i64,
    /// Persons with a value, and the two largest per-person value sums among them.
    valued_persons: i64,
    top1: f64,
    top2: f64,
    population: i64,
    population_mix: i64,
    /// Sum of the persons' mixed ids (a person-level cell key) and of the squares of their
    /// value sums (the spread of per-person costs).
    persons_mix: i64,
    person_sum_sq: f64,
}

impl Contribution {
    fn absorb(&mut self, o: &Contribution) {
        self.units += o.units;
        self.units_mix += o.units_mix;
        self.numerator += o.numerator;
        self.numerator_mix += o.numerator_mix;
        self.value_sum += o.value_sum;
        self.value_sum_sq += o.value_sum_sq;
        self.has_value |= o.has_value;
    }
}

impl Totals {
    /// Adds what one person contributes to the cell.
    fn add_person(&mut self, person: i64, c: &Contribution, top: bool) {
        self.c.absorb(c);
        self.persons += 1;
        self.persons_mix += mix(person);
        if c.numerator > 0 {
            self.numerator_persons += 1;
        }
        if top && c.has_value {
            let s = c.value_sum;
            self.person_sum_sq += s * s;
            match self.valued_persons {
                0 => self.top1 = s,
                _ if s > self.top1 => (self.top1, self.top2) = (s, self.top1),
                1 => self.top2 = s,
                _ if s > self.top2 => self.top2 = s,
                _ => {}
            }
            self.valued_persons += 1;
        }
    }
}

/// A unit's mark in one cell (person-based recipes): whether any of its rows there meets
/// the numerator, its largest value and its largest category (by code).
#[derive(Default, Clone, Copy)]
struct UnitMark {
    num: bool,
    value: Option<f64>,
    category: u16,
}

impl UnitMark {
    fn of(r: &Row) -> UnitMark {
        UnitMark { num: r.flags & NUM != 0, value: (r.flags & HAS_VALUE != 0).then_some(r.value), category: r.category }
    }
    fn absorb(&mut self, o: &UnitMark) {
        self.num |= o.num;
        self.category = self.category.max(o.category);
        self.value = match (self.value, o.value) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Per-cell accumulators of one person (or unit), reset after each: a slot per cell of the
/// query, and the list of cells touched.
struct Scratch<T> {
    slot: Vec<u32>,
    touched: Vec<(u32, T)>,
}

impl<T: Default> Scratch<T> {
    fn new(cells: usize) -> Scratch<T> {
        Scratch { slot: vec![u32::MAX; cells], touched: Vec::new() }
    }
    fn entry(&mut self, cell: u32) -> &mut T {
        let s = &mut self.slot[cell as usize];
        if *s == u32::MAX {
            *s = self.touched.len() as u32;
            self.touched.push((cell, T::default()));
        }
        let i = *s as usize;
        &mut self.touched[i].1
    }
    /// The touched cells and their accumulators; the scratch is empty afterwards.
    fn drain(&mut self) -> impl Iterator<Item = (u32, T)> + '_ {
        for (cell, _) in &self.touched {
            self.slot[*cell as usize] = u32::MAX;
        }
        self.touched.drain(..)
    }
}

/// Collects labelled rows batch by batch, then computes every cell and margin cell.
pub struct MarginAggregator {
    kind: Kind,
    /// The recipe's category codes, sorted (distributions; empty otherwise).
    categories: Vec<String>,
    per_person_unit: bool,
    breakdowns: usize,
    /// Fine cells (region and every label) by their key bytes.
    fine_ids: HashMap<Box<[u8]>, u32>,
    /// Region and labels of each fine cell.
    fine_labels: Vec<Vec<String>>,
    /// Population and its record-key sum by fine cell (rates).
    population: HashMap<u32, (i64, i64)>,
    rows: Vec<Row>,
    reservation: MemoryReservation,
    key: Vec<u8>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef, MarginError> {
    batch.column_by_name(name).ok_or_else(|| MarginError::Rows(format!("no column '{name}'")))
}

/// Column `name` of `batch` cast to `to` (shared with [`super::prepared`]).
pub(super) fn typed<T: Clone + 'static>(batch: &RecordBatch, name: &str, to: &DataType) -> Result<T, MarginError> {
    let a = cast(column(batch, name)?, to).map_err(|e| MarginError::Rows(format!("column '{name}': {e}")))?;
    a.as_any().downcast_ref::<T>().cloned().ok_or_else(|| MarginError::Rows(format!("column '{name}' is not {to}")))
}

impl MarginAggregator {
    /// An aggregator for `q` holding its rows under
    /// `reservation`.
    pub fn new(q: &ValidatedQuery, reservation: MemoryReservation) -> MarginAggregator {
        let mut categories: Vec<String> = q.recipe.categories.iter().map(|c| c.code.clone()).collect();
        categories.sort();
        MarginAggregator {
            kind: q.recipe.kind,
            categories,
            per_person_unit: q.recipe.unit == Unit::Person,
            breakdowns: q.breakdowns.len(),
            fine_ids: HashMap::new(),
            fine_labels: Vec::new(),
            population: HashMap::new(),
            rows: Vec::new(),
            reservation,
            key: Vec::new(),
        }
    }

    fn label_columns(&self, batch: &RecordBatch) -> Result<Vec<StringArray>, MarginError> {
        let mut names = vec!["region".to_string()];
        // The breakdown columns follow `region` in the order of the query.
        let schema = batch.schema();
        names.extend(schema.fields().iter().map(|f| f.name()).filter(|n| n.starts_with("b_")).cloned());
        if names.len() != self.breakdowns + 1 {
            return Err(MarginError::Rows(format!("{} breakdown columns for {} breakdowns", names.len() - 1, self.breakdowns)));
        }
        names.iter().map(|n| typed::<StringArray>(batch, n, &DataType::Utf8)).collect()
    }

    /// Adds one batch of labelled rows.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), MarginError> {
        let labels = self.label_columns(batch)?;
        let person = typed::<Int64Array>(batch, "person_id", &DataType::Int64)?;
        let unit = typed::<Int64Array>(batch, "unit_id", &DataType::Int64)?;
        let num = match batch.column_by_name("num") {
            Some(_) => Some(typed::<Int64Array>(batch, "num", &DataType::Int64)?),
            None => None,
        };
        let value = match batch.column_by_name("value") {
            Some(_) => Some(typed::<Float64Array>(batch, "value", &DataType::Float64)?),
            None => None,
        };
        let category = match self.categories.is_empty() {
            true => None,
            false => Some(typed::<StringArray>(batch, "category", &DataType::Utf8)?),
        };
        let before = self.rows.capacity();
        self.rows.reserve(batch.num_rows());
        let grown = (self.rows.capacity() - before) * std::mem::size_of::<Row>();
        self.reservation.try_grow(grown)?;
        for i in 0..batch.num_rows() {
            let cell = self.fine_cell(&labels, i)?;
            if person.is_null(i) || unit.is_null(i) {
                return Err(MarginError::Rows("a row without person_id or unit_id".into()));
            }
            let mut flags = 0;
            if num.as_ref().is_some_and(|n| !n.is_null(i) && n.value(i) == 1) {
                flags |= NUM;
            }
            let v = match &value {
                Some(a) if !a.is_null(i) => {
                    flags |= HAS_VALUE;
                    a.value(i)
                }
                _ => 0.0,
            };
            let category = match &category {
                None => NO_CATEGORY,
                Some(c) if c.is_null(i) => return Err(MarginError::Rows("a row without a category".into())),
                Some(c) => match self.categories.binary_search_by(|k| k.as_str().cmp(c.value(i))) {
                    Ok(k) => k as u16,
                    Err(_) => {
                        return Err(MarginError::Rows(format!(
                            "category '{}', which is not one of the recipe's ({})",
                            c.value(i),
                            self.categories.join(", ")
                        )))
                    }
                },
            };
            self.rows.push(Row { person: person.value(i), unit: unit.value(i), value: v, cell, category, flags });
        }
        Ok(())
    }

    /// The fine cell of row `i`, interned.
    fn fine_cell(&mut self, labels: &[StringArray], i: usize) -> Result<u32, MarginError> {
        if let Some(d) = labels.iter().position(|l| l.is_null(i)) {
            let what = if d == 0 { "a region (a person with no kommun?)".to_string() } else { format!("a value for breakdown {d}") };
            return Err(MarginError::Rows(format!("a row without {what}")));
        }
        Ok(self.intern(labels.iter().map(|l| l.value(i))))
    }

    /// Interns a combination of labels (region first, then the breakdowns in the query's
    /// order) as a fine cell; the labels are copied only for a new cell.
    fn intern<'a>(&mut self, labels: impl Iterator<Item = &'a str> + Clone) -> u32 {
        self.key.clear();
        for l in labels.clone() {
            self.key.extend_from_slice(l.as_bytes());
            self.key.push(0);
        }
        match self.fine_ids.get(self.key.as_slice()) {
            Some(id) => *id,
            None => {
                let id = self.fine_labels.len() as u32;
                self.fine_ids.insert(self.key.clone().into_boxed_slice(), id);
                self.fine_labels.push(labels.map(str::to_string).collect());
                id
            }
        }
    }

    /// The recipe's category codes in the order [`MarginAggregator::push_unit`] indexes them.
    pub fn category_codes(&self) -> &[String] {
        &self.categories
    }

    /// The fine cell of a combination of labels (region first, then the breakdowns in the
    /// query's order), interned; for callers that label rows themselves
    /// ([`super::prepared`]).
    pub fn cell(&mut self, labels: &[&str]) -> u32 {
        self.intern(labels.iter().copied())
    }

    /// Makes room for `n` more rows, counted against the engine's pool.
    pub fn reserve(&mut self, n: usize) -> Result<(), MarginError> {
        let before = self.rows.capacity();
        self.rows.reserve(n);
        self.reservation.try_grow((self.rows.capacity() - before) * std::mem::size_of::<Row>())?;
        Ok(())
    }

    /// Adds one labelled unit row of fine cell `cell` (from [`MarginAggregator::cell`]);
    /// `category` indexes [`MarginAggregator::category_codes`]. Call
    /// [`MarginAggregator::reserve`] first.
    pub fn push_unit(&mut self, cell: u32, person: i64, unit: i64, num: bool, value: Option<f64>, category: Option<u16>) {
        let mut flags = if num { NUM } else { 0 };
        if value.is_some() {
            flags |= HAS_VALUE;
        }
        self.rows.push(Row { person, unit, value: value.unwrap_or(0.0), cell, category: category.unwrap_or(NO_CATEGORY), flags });
    }

    /// Adds a rate's population of fine cell `cell`.
    pub fn push_population_cell(&mut self, cell: u32, population: i64, mix: i64) {
        let e = self.population.entry(cell).or_insert((0, 0));
        e.0 += population;
        e.1 += mix;
    }

    /// Adds a rate's population counted per combination of labels: `region`,
    /// `b_<breakdown>`..., `population`, `population_mix`.
    pub fn push_population(&mut self, batch: &RecordBatch) -> Result<(), MarginError> {
        let labels = self.label_columns(batch)?;
        let population = typed::<Int64Array>(batch, "population", &DataType::Int64)?;
        let mixes = typed::<Int64Array>(batch, "population_mix", &DataType::Int64)?;
        for i in 0..batch.num_rows() {
            let cell = self.fine_cell(&labels, i)?;
            let value = |a: &Int64Array| if a.is_null(i) { 0 } else { a.value(i) };
            self.push_population_cell(cell, value(&population), value(&mixes));
        }
        Ok(())
    }

    /// The cells: every combination of labels that occurs, and every margin (labels
    /// replaced by `total`), each with its region.
    pub fn finish(mut self) -> Result<Vec<RawCell>, MarginError> {
        let n = self.breakdowns;
        let masks = 1usize << n;
        // Margin cells: mask bit i set = breakdown i kept, clear = total.
        let mut cell_ids: HashMap<Vec<Option<u32>>, u32> = HashMap::new();
        let mut cell_keys: Vec<Vec<Option<u32>>> = Vec::new();
        // Labels by dimension, interned so that margin keys are small.
        let mut dict: Vec<HashMap<String, u32>> = vec![HashMap::new(); n + 1];
        let mut names: Vec<Vec<String>> = vec![Vec::new(); n + 1];
        let table_bytes = self.fine_labels.len() * masks * std::mem::size_of::<u32>();
        self.reservation.try_grow(table_bytes)?;
        let mut margin_of: Vec<u32> = Vec::with_capacity(self.fine_labels.len() * masks);
        for labels in &self.fine_labels {
            let codes: Vec<u32> = labels
                .iter()
                .enumerate()
                .map(|(d, l)| {
                    let next = names[d].len() as u32;
                    *dict[d].entry(l.clone()).or_insert_with(|| {
                        names[d].push(l.clone());
                        next
                    })
                })
                .collect();
            for mask in 0..masks {
                let key: Vec<Option<u32>> = std::iter::once(Some(codes[0]))
                    .chain((0..n).map(|i| (mask & (1 << i) != 0).then_some(codes[i + 1])))
                    .collect();
                let next = cell_keys.len() as u32;
                let id = *cell_ids.entry(key.clone()).or_insert_with(|| {
                    cell_keys.push(key);
                    next
                });
                margin_of.push(id);
            }
        }
        drop(cell_ids);

        // Rows of one person together; within them a unit's rows (person-based recipes) and
        // rows of the same fine cell, which are merged before they are fanned out.
        // The walk below needs a person's rows together (and a unit's, when units count
        // once); rows of one cell may come in several runs, since every run is absorbed into
        // the same per-person (per-unit) accumulators before they are counted. Rows that
        // arrive grouped (a prepared table is kept sorted by person and unit) are not sorted
        // again.
        if self.per_person_unit {
            if !self.rows.is_sorted_by_key(|r| (r.person, r.unit)) {
                self.rows.sort_unstable_by_key(|r| (r.person, r.unit, r.cell));
            }
        } else if !self.rows.is_sorted_by_key(|r| r.person) {
            self.rows.sort_unstable_by_key(|r| (r.person, r.cell));
        }
        let cells_count = cell_keys.len();
        self.reservation.try_grow(cells_count * (std::mem::size_of::<Totals>() + 2 * std::mem::size_of::<u32>()))?;
        let mut totals = vec![Totals::default(); cells_count];
        for (&fine, &(population, mixes)) in &self.population {
            let base = fine as usize * masks;
            for &m in &margin_of[base..base + masks] {
                totals[m as usize].population += population;
                totals[m as usize].population_mix += mixes;
            }
        }
        let mut person_cells: Scratch<Contribution> = Scratch::new(cells_count);
        let mut unit_cells: Scratch<UnitMark> = Scratch::new(cells_count);
        // Distributions: the same per (cell, category), at index cell × categories + category.
        let k = self.categories.len();
        self.reservation.try_grow(cells_count * k * (std::mem::size_of::<Totals>() + std::mem::size_of::<u32>()))?;
        let mut category_totals = vec![Totals::default(); cells_count * k];
        let mut person_categories: Scratch<Contribution> = Scratch::new(cells_count * k);
        let sub = |m: u32, category: u16| m as usize * k + category as usize;
        let top = matches!(self.kind, Kind::CostSum | Kind::Mean);
        let rows = &self.rows;
        let run_end = |from: usize, to: usize, same: &dyn Fn(&Row) -> bool| (from..to).find(|&k| !same(&rows[k])).unwrap_or(to);
        let mut start = 0;
        while start < rows.len() {
            let person = rows[start].person;
            let end = run_end(start, rows.len(), &|r| r.person == person);
            if self.per_person_unit {
                // A unit counts once per cell: it meets the numerator if any of its rows
                // does there, and carries its largest value.
                let mut u = start;
                while u < end {
                    let unit = rows[u].unit;
                    let unit_end = run_end(u, end, &|r| r.unit == unit);
                    let mut f = u;
                    while f < unit_end {
                        let cell = rows[f].cell;
                        let cell_end = run_end(f, unit_end, &|r| r.cell == cell);
                        let mut mark = UnitMark::default();
                        for r in &rows[f..cell_end] {
                            mark.absorb(&UnitMark::of(r));
                        }
                        let base = cell as usize * masks;
                        for &m in &margin_of[base..base + masks] {
                            unit_cells.entry(m).absorb(&mark);
                        }
                        f = cell_end;
                    }
                    for (m, mark) in unit_cells.drain() {
                        person_cells.entry(m).add_unit(unit, mark.num, mark.value);
                        if k > 0 {
                            person_categories.entry(sub(m, mark.category) as u32).add_unit(unit, false, None);
                        }
                    }
                    u = unit_end;
                }
            } else {
                let mut f = start;
                while f < end {
                    let cell = rows[f].cell;
                    let cell_end = run_end(f, end, &|r| r.cell == cell);
                    let mut c = Contribution::default();
                    for r in &rows[f..cell_end] {
                        c.add_unit(r.unit, r.flags & NUM != 0, (r.flags & HAS_VALUE != 0).then_some(r.value));
                    }
                    let base = cell as usize * masks;
                    for &m in &margin_of[base..base + masks] {
                        person_cells.entry(m).absorb(&c);
                        if k > 0 {
                            for r in &rows[f..cell_end] {
                                person_categories.entry(sub(m, r.category) as u32).add_unit(r.unit, false, None);
                            }
                        }
                    }
                    f = cell_end;
                }
            }
            for (m, c) in person_cells.drain() {
                totals[m as usize].add_person(person, &c, top);
            }
            for (i, c) in person_categories.drain() {
                category_totals[i as usize].add_person(person, &c, false);
            }
            start = end;
        }

        let label = |d: usize, code: Option<u32>| code.map_or_else(|| TOTAL.to_string(), |c| names[d][c as usize].clone());
        let mut cells = Vec::with_capacity(cell_keys.len() * k.max(1));
        for (m, (key, t)) in cell_keys.iter().zip(&totals).enumerate() {
            let (value_sum, value_sum_sq) = match self.kind {
                Kind::Mean | Kind::CostSum => (t.c.value_sum, t.c.value_sum_sq),
                _ => (0.0, 0.0),
            };
            let cell = RawCell {
                region: label(0, key[0]),
                labels: (1..=n).map(|d| label(d, key[d])).collect(),
                category: None,
                units: t.c.units,
                persons: t.persons,
                numerator: t.c.numerator,
                numerator_persons: t.numerator_persons,
                value_sum,
                value_sum_sq,
                top1: t.top1,
                top2: t.top2,
                population: t.population,
                units_mix: t.c.units_mix,
                numerator_mix: t.c.numerator_mix,
                population_mix: t.population_mix,
                // Only cost sums release their persons (cost per patient).
                persons_mix: if self.kind == Kind::CostSum { t.persons_mix } else { 0 },
                person_sum_sq: if self.kind == Kind::CostSum { t.person_sum_sq } else { 0.0 },
            };
            if k == 0 {
                cells.push(cell);
                continue;
            }
            // A distribution's cell per category: the cell's units, the category's as numerator.
            for (c, code) in self.categories.iter().enumerate() {
                let ct = &category_totals[sub(m as u32, c as u16)];
                cells.push(RawCell {
                    category: Some(code.clone()),
                    numerator: ct.c.units,
                    numerator_persons: ct.persons,
                    numerator_mix: ct.c.units_mix,
                    ..cell.clone()
                });
            }
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    use super::*;

    fn validated(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    fn reservation(bytes: usize) -> MemoryReservation {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(bytes));
        MemoryConsumer::new("test").register(&pool)
    }

    /// Rows of (person, unit, sex, extra column) in region 24.
    fn batch(rows: &[(i64, i64, &str)], extra: (&str, ArrayRef)) -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("region", Arc::new(StringArray::from(vec!["24"; rows.len()]))),
            ("b_sex", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
            ("person_id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)))),
            ("unit_id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)))),
            extra,
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn cell<'a>(cells: &'a [RawCell], sex: &str) -> &'a RawCell {
        cells.iter().find(|c| c.labels == [sex]).unwrap_or_else(|| panic!("no cell {sex}"))
    }

    #[test]
    fn cost_sums_count_persons_once_per_cell_and_keep_the_two_largest_persons() {
        let q = validated(r#"{"indicator":"kpp_cost","breakdowns":["sex"],"period":"2023"}"#);
        let rows = [(1, 10, "male"), (1, 11, "male"), (2, 12, "female"), (3, 13, "male")];
        let values: ArrayRef = Arc::new(Float64Array::from(vec![100.0, 50.0, 70.0, 120.0]));
        let mut agg = MarginAggregator::new(&q, reservation(1 << 20));
        // Two batches: a person's rows may arrive in different batches.
        agg.push(&batch(&rows[..2], ("value", values.slice(0, 2)))).unwrap();
        agg.push(&batch(&rows[2..], ("value", values.slice(2, 2)))).unwrap();
        let cells = agg.finish().unwrap();
        assert_eq!(cells.len(), 3, "male, female and the total");
        let male = cell(&cells, "male");
        assert_eq!((male.units, male.persons, male.value_sum, male.top1, male.top2), (3, 2, 270.0, 150.0, 120.0));
        assert_eq!(male.value_sum_sq, 100.0 * 100.0 + 50.0 * 50.0 + 120.0 * 120.0);
        let female = cell(&cells, "female");
        assert_eq!((female.units, female.persons, female.top1, female.top2), (1, 1, 70.0, 0.0));
        let total = cell(&cells, TOTAL);
        assert_eq!((total.units, total.persons, total.value_sum, total.top1, total.top2), (4, 3, 340.0, 150.0, 120.0));
        assert_eq!(total.units_mix, mix(10) + mix(11) + mix(12) + mix(13));
        assert!(cells.iter().all(|c| c.region == "24" && c.numerator == 0));
    }

    #[test]
    fn a_person_unit_counts_once_per_cell_and_meets_the_numerator_if_any_row_does() {
        let q = validated(r#"{"indicator":"diabetes_statin","breakdowns":["sex"],"period":"2023"}"#);
        // Person 1 has two rows in the same cell, one meeting the numerator; person 2 none.
        let rows = [(1, 1, "male"), (1, 1, "male"), (2, 2, "male"), (3, 3, "female")];
        let num: ArrayRef = Arc::new(Int64Array::from(vec![0, 1, 0, 1]));
        let mut agg = MarginAggregator::new(&q, reservation(1 << 20));
        agg.push(&batch(&rows, ("num", num))).unwrap();
        let cells = agg.finish().unwrap();
        let male = cell(&cells, "male");
        assert_eq!((male.units, male.persons, male.numerator, male.numerator_persons), (2, 2, 1, 1));
        assert_eq!((male.units_mix, male.numerator_mix), (mix(1) + mix(2), mix(1)));
        let total = cell(&cells, TOTAL);
        assert_eq!((total.units, total.numerator, total.numerator_mix), (3, 2, mix(1) + mix(3)));
        assert_eq!((total.value_sum, total.top1), (0.0, 0.0), "no values for a proportion");
    }

    #[test]
    fn rows_beyond_the_memory_pool_are_refused() {
        let q = validated(r#"{"indicator":"stroke_admissions","breakdowns":["sex"],"period":"2023"}"#);
        let rows: Vec<(i64, i64, &str)> = (0..1000).map(|i| (i, i, "male")).collect();
        let mut agg = MarginAggregator::new(&q, reservation(1024));
        let dummy: ArrayRef = Arc::new(Int64Array::from(vec![0; rows.len()]));
        let e = agg.push(&batch(&rows, ("unused", dummy))).err().expect("refused");
        assert!(matches!(e, MarginError::Memory(_)), "{e}");
    }

    #[test]
    fn a_distribution_gives_every_category_of_every_cell() {
        let q = validated(r#"{"indicator":"diabetes_bp_bands","breakdowns":["sex"],"period":"2023"}"#);
        let codes: Vec<String> = {
            let mut c: Vec<String> = q.recipe.categories.iter().map(|c| c.code.clone()).collect();
            c.sort();
            c
        };
        assert!(codes.len() >= 2, "{codes:?}");
        // Three events of two persons, all in the first category but one in the second.
        let rows = [(1, 10, "male"), (1, 11, "male"), (2, 12, "female")];
        let category: ArrayRef = Arc::new(StringArray::from(vec![codes[0].as_str(), codes[1].as_str(), codes[0].as_str()]));
        let mut agg = MarginAggregator::new(&q, reservation(1 << 20));
        agg.push(&batch(&rows, ("category", category))).unwrap();
        let cells = agg.finish().unwrap();
        assert_eq!(cells.len(), 3 * codes.len(), "male, female and total, each with every category");
        let of = |sex: &str, code: &str| cells.iter().find(|c| c.labels == [sex] && c.category.as_deref() == Some(code)).unwrap().clone();
        let (m0, m1) = (of("male", &codes[0]), of("male", &codes[1]));
        assert_eq!((m0.units, m0.persons, m0.numerator, m0.numerator_persons, m0.numerator_mix), (2, 1, 1, 1, mix(10)));
        assert_eq!((m1.numerator, m1.numerator_mix, m1.units_mix), (1, mix(11), mix(10) + mix(11)));
        let t0 = of(TOTAL, &codes[0]);
        assert_eq!((t0.units, t0.persons, t0.numerator, t0.numerator_persons), (3, 2, 2, 2));
        if let Some(other) = codes.get(2) {
            assert_eq!(of(TOTAL, other).numerator, 0, "a category without units is still a cell");
        }
        // A category the recipe does not have is refused, naming it.
        let mut agg = MarginAggregator::new(&q, reservation(1 << 20));
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["purple"]));
        let e = agg.push(&batch(&rows[..1], ("category", bad))).err().expect("refused");
        assert!(e.to_string().contains("'purple'"), "{e}");
    }

    #[test]
    fn a_rates_population_adds_up_into_the_margins_and_cells_without_events_stay() {
        let q = validated(r#"{"indicator":"hf_hospitalisation_rate","breakdowns":["sex"],"period":"2023"}"#);
        let mut agg = MarginAggregator::new(&q, reservation(1 << 20));
        let dummy: ArrayRef = Arc::new(Int64Array::from(vec![0]));
        agg.push(&batch(&[(1, 100, "male")], ("unused", dummy))).unwrap();
        let population = RecordBatch::try_from_iter(vec![
            ("region", Arc::new(StringArray::from(vec!["24", "24"])) as ArrayRef),
            ("b_sex", Arc::new(StringArray::from(vec!["male", "female"]))),
            ("population", Arc::new(Int64Array::from(vec![1000, 1200]))),
            ("population_mix", Arc::new(Int64Array::from(vec![7, 11]))),
        ])
        .unwrap();
        agg.push_population(&population).unwrap();
        let cells = agg.finish().unwrap();
        let female = cell(&cells, "female");
        assert_eq!((female.units, female.persons, female.population, female.population_mix), (0, 0, 1200, 11));
        let total = cell(&cells, TOTAL);
        assert_eq!((total.units, total.persons, total.population, total.population_mix, total.units_mix), (1, 1, 2200, 18, mix(100)));
    }
}
