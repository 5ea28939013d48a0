//! Prepared unit tables: what a recipe's units are depends only on the recipe, the
//! perspective and the region's data, not on the breakdowns an analyst asks for. So the
//! engine evaluates a recipe's unit query once per data version — every unit in the data's
//! whole period with its month, its region, a label for every breakdown the recipe allows
//! (as small integer codes), its numerator flag, value, category and record key, kept
//! sorted by person and unit — and answers each question from that table: the rows of the
//! question's period and filters, labelled with its breakdowns, go straight into the
//! [`MarginAggregator`]. A question's work is then proportional to the units in its scope,
//! not to the joins and labelling of the raw rows.
//!
//! The tables live in memory, reserved in the engine's memory pool, within the
//! `[engine] prepared_mb` budget (least recently used tables are dropped first; a table
//! larger than the budget is not kept and its questions take the unprepared path). A data
//! reload opens a new engine, so tables are rebuilt for the new data version on first use.
//! Rates' populations are still counted per question in SQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use norrsken_model::breakdown::Breakdown;
use norrsken_model::period::Period;
use norrsken_model::query::{Perspective, ValidatedQuery};

use super::margins::{typed, MarginAggregator};
use super::sql::{compile_rows, SqlContext};
use super::{classify, EngineError};

const NUM: u8 = 1;
const HAS_VALUE: u8 = 2;
const NO_CATEGORY: u16 = u16::MAX;

fn is_time(b: Breakdown) -> bool {
    matches!(b, Breakdown::Year | Breakdown::Quarter | Breakdown::Month)
}

/// One recipe's units under one perspective, for the whole data period.
pub struct PreparedUnits {
    /// The labelled dimensions after the region (the recipe's breakdowns but time).
    dims: Vec<Breakdown>,
    /// Label names by dimension; dimension 0 is the region.
    names: Vec<Vec<String>>,
    /// Label codes by dimension, by row.
    codes: Vec<Vec<u16>>,
    /// Months since year 0 (`year × 12 + month − 1`) of each unit's index date.
    month: Vec<u32>,
    person: Vec<i64>,
    unit: Vec<i64>,
    value: Vec<f64>,
    flags: Vec<u8>,
    /// Index among the recipe's sorted category codes (distributions).
    category: Vec<u16>,
    /// A rate's population: residents alive on 1 July of each data year, counted per
    /// month and label combination, with the same label codes.
    population: Option<Population>,
    /// Bytes held (reserved in the engine's pool while the table is kept).
    pub bytes: usize,
    /// How long building it took.
    pub build_ms: u64,
    _reservation: MemoryReservation,
}

/// A rate's population rows.
/// Residents are counted per month and label combination when the table is built: a
/// question adds up combinations, not residents.
struct Population {
    codes: Vec<Vec<u16>>,
    month: Vec<u32>,
    /// Residents of the combination.
    count: Vec<i64>,
    /// The sum of their record keys ([`super::cells::mix`] of the person ids).
    mix: Vec<i64>,
}

/// Label dictionaries shared by a table's unit and population rows.
struct Labels {
    dict: Vec<HashMap<String, u16>>,
    names: Vec<Vec<String>>,
}

impl Labels {
    fn code(&mut self, d: usize, name: &str) -> Result<u16, String> {
        if let Some(c) = self.dict[d].get(name) {
            return Ok(*c);
        }
        let c = u16::try_from(self.names[d].len()).map_err(|_| format!("more than {} labels of one breakdown", u16::MAX))?;
        self.dict[d].insert(name.to_string(), c);
        self.names[d].push(name.to_string());
        Ok(c)
    }
}

fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, String> {
    typed::<StringArray>(batch, name, &DataType::Utf8).map_err(|e| e.to_string())
}

/// An integer column, or None when the batch has no such column.
fn ints(batch: &RecordBatch, name: &str) -> Result<Option<Int64Array>, String> {
    match batch.column_by_name(name) {
        Some(_) => typed::<Int64Array>(batch, name, &DataType::Int64).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// The region column and each dimension's label column (`b_<breakdown>`).
fn label_arrays(batch: &RecordBatch, dims: &[Breakdown]) -> Result<Vec<StringArray>, String> {
    std::iter::once("region".to_string()).chain(dims.iter().map(|b| format!("b_{}", b.name()))).map(|c| strings(batch, &c)).collect()
}

/// `YYYY-MM` as months since year 0.
fn month_of(label: &str) -> Option<u32> {
    let (y, m) = label.split_once('-')?;
    let (y, m): (u32, u32) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then(|| y * 12 + m - 1)
}

impl PreparedUnits {
    /// The question the table is built from: every unit of the data's years under `q`'s
    /// perspective, labelled by month and by every non-time breakdown the recipe allows.
    fn full_question(q: &ValidatedQuery, data_years: (i32, i32)) -> (ValidatedQuery, Vec<Breakdown>) {
        let dims: Vec<Breakdown> = q.recipe.breakdowns.iter().copied().filter(|b| !is_time(*b)).collect();
        let mut full = q.clone();
        full.query_id = String::new();
        full.breakdowns = std::iter::once(Breakdown::Month).chain(dims.iter().copied()).collect();
        full.filters = Default::default();
        full.period = Period::years(data_years.0, data_years.1);
        (full, dims)
    }

    /// Builds the table for `q`'s recipe and perspective; fails with ResourcesExhausted
    /// when the pool (or `limit` bytes) cannot hold it.
    pub async fn build(ctx: &SessionContext, q: &ValidatedQuery, region: &str, data_years: (i32, i32), limit: usize) -> Result<PreparedUnits, EngineError> {
        let started = std::time::Instant::now();
        let recipe = q.recipe.key();
        let (full, dims) = Self::full_question(q, data_years);
        let bad = |problem: String| EngineError::RecipeOutput { recipe: recipe.clone(), problem };
        let df = ctx.sql(&compile_rows(&full, &SqlContext { region })).await.map_err(|e| classify(&recipe, e))?;
        let mut categories: Vec<String> = q.recipe.categories.iter().map(|c| c.code.clone()).collect();
        categories.sort();
        let pool: Arc<dyn MemoryPool> = ctx.runtime_env().memory_pool.clone();
        let reservation = MemoryConsumer::new(format!("norrsken prepared units of {recipe}")).register(&pool);
        let n_dims = dims.len() + 1;
        let mut labels_of = Labels { dict: vec![HashMap::new(); n_dims], names: vec![Vec::new(); n_dims] };
        let mut codes: Vec<Vec<u16>> = vec![Vec::new(); n_dims];
        let (mut month, mut person, mut unit, mut value, mut flags, mut category) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let row_bytes = 4 + 8 + 8 + 8 + 1 + 2 + 2 * n_dims;
        let mut stream = df.execute_stream().await.map_err(|e| classify(&recipe, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| classify(&recipe, e))?;
            let n = batch.num_rows();
            let grow = n * row_bytes;
            if reservation.size() + grow > limit {
                return Err(EngineError::ResourcesExhausted { recipe: recipe.clone(), message: format!("prepared units over the {} MiB budget", limit >> 20) });
            }
            reservation.try_grow(grow).map_err(|e| classify(&recipe, e))?;
            let labels = label_arrays(&batch, &dims).map_err(bad)?;
            let months = strings(&batch, "b_month").map_err(bad)?;
            let persons = ints(&batch, "person_id").map_err(bad)?.ok_or_else(|| bad("no person_id".into()))?;
            let units = ints(&batch, "unit_id").map_err(bad)?.ok_or_else(|| bad("no unit_id".into()))?;
            let nums = ints(&batch, "num").map_err(bad)?;
            let values = match batch.column_by_name("value") {
                Some(_) => Some(typed::<Float64Array>(&batch, "value", &DataType::Float64).map_err(|e| bad(e.to_string()))?),
                None => None,
            };
            let cats = if categories.is_empty() { None } else { Some(strings(&batch, "category").map_err(bad)?) };
            for i in 0..n {
                for (d, l) in labels.iter().enumerate() {
                    if l.is_null(i) {
                        return Err(bad(format!("a row without a label for {}", if d == 0 { "region" } else { dims[d - 1].name() })));
                    }
                    codes[d].push(labels_of.code(d, l.value(i)).map_err(bad)?);
                }
                let m = (!months.is_null(i)).then(|| month_of(months.value(i))).flatten().ok_or_else(|| bad("a row without a month".into()))?;
                if persons.is_null(i) || units.is_null(i) {
                    return Err(bad("a row without person_id or unit_id".into()));
                }
                month.push(m);
                person.push(persons.value(i));
                unit.push(units.value(i));
                let mut f = 0;
                if nums.as_ref().is_some_and(|a| !a.is_null(i) && a.value(i) == 1) {
                    f |= NUM;
                }
                let v = match &values {
                    Some(a) if !a.is_null(i) => {
                        f |= HAS_VALUE;
                        a.value(i)
                    }
                    _ => 0.0,
                };
                value.push(v);
                flags.push(f);
                category.push(match &cats {
                    None => NO_CATEGORY,
                    Some(c) if c.is_null(i) => return Err(bad("a row without a category".into())),
                    Some(c) => categories.binary_search_by(|k| k.as_str().cmp(c.value(i))).map_err(|_| bad(format!("category '{}' is not the recipe's", c.value(i))))? as u16,
                });
            }
        }
        drop(stream);
        let population = if q.recipe.kind == norrsken_model::catalog::Kind::Rate {
            Some(Self::population(ctx, &full, region, &dims, &mut labels_of, &reservation, limit).await?)
        } else {
            None
        };
        // Sorted by person and unit, so that a question's rows reach the aggregator in the
        // order it walks them.
        let mut order: Vec<u32> = (0..person.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (person[i as usize], unit[i as usize], month[i as usize]));
        fn gather<T: Copy>(v: &[T], order: &[u32]) -> Vec<T> {
            order.iter().map(|&i| v[i as usize]).collect()
        }
        let bytes = reservation.size();
        Ok(PreparedUnits {
            codes: codes.iter().map(|c| gather(c, &order)).collect(),
            month: gather(&month, &order),
            person: gather(&person, &order),
            unit: gather(&unit, &order),
            value: gather(&value, &order),
            flags: gather(&flags, &order),
            category: gather(&category, &order),
            dims,
            names: labels_of.names,
            population,
            bytes,
            build_ms: started.elapsed().as_millis() as u64,
            _reservation: reservation,
        })
    }

    /// A rate's population rows, labelled like the units.
    async fn population(
        ctx: &SessionContext,
        full: &ValidatedQuery,
        region: &str,
        dims: &[Breakdown],
        labels_of: &mut Labels,
        reservation: &MemoryReservation,
        limit: usize,
    ) -> Result<Population, EngineError> {
        let recipe = full.recipe.key();
        let bad = |problem: String| EngineError::RecipeOutput { recipe: recipe.clone(), problem };
        let df = ctx.sql(&super::sql::compile_population_rows(full, &SqlContext { region })).await.map_err(|e| classify(&recipe, e))?;
        let mut stream = df.execute_stream().await.map_err(|e| classify(&recipe, e))?;
        // Residents per combination of month and label codes.
        let mut groups: HashMap<Vec<u32>, (i64, i64)> = HashMap::new();
        let mut key: Vec<u32> = Vec::with_capacity(dims.len() + 2);
        let row_bytes = 4 + 8 + 8 + 2 * (dims.len() + 1);
        let mut grown = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| classify(&recipe, e))?;
            let grow = batch.num_rows() * row_bytes;
            grown += grow;
            if reservation.size() + grow > limit {
                return Err(EngineError::ResourcesExhausted { recipe: recipe.clone(), message: format!("prepared population over the {} MiB budget", limit >> 20) });
            }
            reservation.try_grow(grow).map_err(|e| classify(&recipe, e))?;
            let labels = label_arrays(&batch, dims).map_err(bad)?;
            let months = strings(&batch, "b_month").map_err(bad)?;
            let persons = ints(&batch, "unit_id").map_err(bad)?.ok_or_else(|| bad("no unit_id".into()))?;
            for i in 0..batch.num_rows() {
                key.clear();
                key.push((!months.is_null(i)).then(|| month_of(months.value(i))).flatten().ok_or_else(|| bad("a resident without a year".into()))?);
                for l in &labels {
                    if l.is_null(i) {
                        return Err(bad("a resident without a label".into()));
                    }
                    key.push(labels_of.code(key.len() - 1, l.value(i)).map_err(bad)? as u32);
                }
                let e = groups.entry(key.clone()).or_insert((0, 0));
                e.0 += 1;
                e.1 += if persons.is_null(i) { 0 } else { super::cells::mix(persons.value(i)) };
            }
        }
        // What is kept is one row per combination, not per resident.
        reservation.shrink(grown.saturating_sub(groups.len() * row_bytes));
        let mut p = Population { codes: vec![Vec::with_capacity(groups.len()); dims.len() + 1], month: Vec::with_capacity(groups.len()), count: Vec::new(), mix: Vec::new() };
        for (key, (count, mix)) in groups {
            p.month.push(key[0]);
            for (d, c) in key[1..].iter().enumerate() {
                p.codes[d].push(*c as u16);
            }
            p.count.push(count);
            p.mix.push(mix);
        }
        Ok(p)
    }

    /// Whether the table holds the rate's population (the question needs no SQL then).
    pub fn has_population(&self) -> bool {
        self.population.is_some()
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.person.len()
    }

    /// Whether the table can answer `q` (its breakdowns and filters are among the labels).
    pub fn answers(&self, q: &ValidatedQuery) -> bool {
        q.breakdowns.len() < KEY && q.breakdowns.iter().all(|b| is_time(*b) || self.dims.contains(b)) && q.filters.keys().all(|b| self.dims.contains(b))
    }

    /// Pushes `q`'s rows (its period and filters, labelled with its breakdowns) into the
    /// aggregator, and a rate's population.
    pub fn select(&self, q: &ValidatedQuery, agg: &mut MarginAggregator) -> Result<(), super::margins::MarginError> {
        let (sy, sm) = q.period.start();
        let (ey, em) = q.period.end_exclusive();
        let from = (sy.max(0) as u32) * 12 + sm - 1;
        let to = (ey.max(0) as u32) * 12 + em - 1;
        // Filters as allowed codes per dimension.
        let mut allowed: Vec<(usize, Vec<bool>)> = Vec::new();
        for (b, values) in &q.filters {
            let Some(d) = self.dims.iter().position(|x| x == b).map(|p| p + 1) else { continue };
            allowed.push((d, self.names[d].iter().map(|n| values.contains(n)).collect()));
        }
        let parts: Vec<Part> = q
            .breakdowns
            .iter()
            .map(|b| match b {
                Breakdown::Year => Part::Year,
                Breakdown::Quarter => Part::Quarter,
                Breakdown::Month => Part::Month,
                b => Part::Label(self.dims.iter().position(|x| x == b).map_or(0, |p| p + 1)),
            })
            .collect();
        // A question asks each breakdown at most once: its parts fit the key.
        if parts.len() >= KEY {
            return Err(super::margins::MarginError::Rows(format!("{} breakdowns; a prepared table takes at most {}", parts.len(), KEY - 1)));
        }
        let mut cells = Cells { parts, names: &self.names, ids: ahash::AHashMap::new() };
        let selected: Vec<u32> = (0..self.rows() as u32)
            .filter(|&i| {
                let i = i as usize;
                let m = self.month[i];
                m >= from && m < to && allowed.iter().all(|(d, ok)| ok[self.codes[*d][i] as usize])
            })
            .collect();
        agg.reserve(selected.len())?;
        for &i in &selected {
            let i = i as usize;
            let cell = cells.of(self.month[i], &|d| self.codes[d][i], agg);
            let f = self.flags[i];
            let category = (self.category[i] != NO_CATEGORY).then_some(self.category[i]);
            agg.push_unit(cell, self.person[i], self.unit[i], f & NUM != 0, (f & HAS_VALUE != 0).then_some(self.value[i]), category);
        }
        if let Some(p) = &self.population {
            let mut counts: HashMap<u32, (i64, i64)> = HashMap::new();
            for i in 0..p.month.len() {
                let m = p.month[i];
                if m < from || m >= to || !allowed.iter().all(|(d, ok)| ok[p.codes[*d][i] as usize]) {
                    continue;
                }
                let cell = cells.of(m, &|d| p.codes[d][i], agg);
                let e = counts.entry(cell).or_insert((0, 0));
                e.0 += p.count[i];
                e.1 += p.mix[i];
            }
            for (cell, (n, mix)) in counts {
                agg.push_population_cell(cell, n, mix);
            }
        }
        Ok(())
    }
}

/// What an asked breakdown reads: a time grain of the row's month, or a label dimension.
enum Part {
    Year,
    Quarter,
    Month,
    Label(usize),
}

/// A question's fine cells by their codes, interned in the aggregator with their labels.
/// The codes (region and each part, 16 bits each: months since year 0 fit) form a
/// fixed-size key, so that the lookup per row does not allocate.
struct Cells<'a> {
    parts: Vec<Part>,
    names: &'a [Vec<String>],
    ids: ahash::AHashMap<[u16; KEY], u32>,
}

/// The region and at most one time grain and every label breakdown of the vocabulary.
const KEY: usize = 12;

impl Cells<'_> {
    /// The fine cell of a row in month `m` whose label code in dimension d is `code(d)`.
    fn of(&mut self, m: u32, code: &dyn Fn(usize) -> u16, agg: &mut MarginAggregator) -> u32 {
        let mut key = [0u16; KEY];
        key[0] = code(0);
        for (slot, p) in key[1..].iter_mut().zip(&self.parts) {
            *slot = match p {
                Part::Year => (m / 12) as u16,
                Part::Quarter => (m / 3) as u16,
                Part::Month => m as u16,
                Part::Label(d) => code(*d),
            };
        }
        if let Some(c) = self.ids.get(&key) {
            return *c;
        }
        let mut labels: Vec<String> = vec![self.names[0][code(0) as usize].clone()];
        for p in &self.parts {
            labels.push(match p {
                Part::Year => (m / 12).to_string(),
                Part::Quarter => format!("{}Q{}", m / 12, (m % 12) / 3 + 1),
                Part::Month => format!("{}-{:02}", m / 12, m % 12 + 1),
                Part::Label(d) => self.names[*d][code(*d) as usize].clone(),
            });
        }
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        let c = agg.cell(&refs);
        self.ids.insert(key, c);
        c
    }
}

/// A table being built or kept, and when it was last used.
struct Entry {
    table: Arc<tokio::sync::OnceCell<Option<Arc<PreparedUnits>>>>,
    used: AtomicU64,
}

/// The engine's prepared tables, by recipe and perspective, within a byte budget.
pub struct PreparedCache {
    budget: usize,
    entries: Mutex<HashMap<(String, Perspective), Entry>>,
    clock: AtomicU64,
}

/// How far building every recipe's prepared tables at load has come: the tables to build
/// (recipe × perspective), those built, skipped (over the budget, or no prepared tables for
/// this datalager) and failed, and whether it is done.
#[derive(Debug, Default)]
pub struct PrepareProgress {
    pub total: AtomicU64,
    pub built: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    /// 0 not started, 1 building, 2 ready.
    state: std::sync::atomic::AtomicU8,
    pub ms: AtomicU64,
}

impl PrepareProgress {
    pub fn start(&self, total: usize) {
        self.total.store(total as u64, Ordering::Relaxed);
        self.state.store(1, Ordering::Release);
    }

    pub fn finish(&self, ms: u64) {
        self.ms.store(ms, Ordering::Relaxed);
        self.state.store(2, Ordering::Release);
    }

    /// `not_started`, `building` or `ready`.
    pub fn state(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            0 => "not_started",
            1 => "building",
            _ => "ready",
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == 2
    }

    /// For the agent's health: state, counts and the build's time.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let done = get(&self.built) + get(&self.skipped) + get(&self.failed);
        serde_json::json!({
            "state": self.state(),
            "total": get(&self.total),
            "done": done,
            "built": get(&self.built),
            "skipped": get(&self.skipped),
            "failed": get(&self.failed),
            "ms": get(&self.ms),
        })
    }
}

/// What the cache holds, for metrics and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedStats {
    pub tables: usize,
    pub rows: usize,
    pub bytes: usize,
}

impl PreparedCache {
    pub fn new(budget_mb: u64) -> PreparedCache {
        PreparedCache { budget: usize::try_from(budget_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX), entries: Mutex::new(HashMap::new()), clock: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Perspective), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The table for `q`, built on first use (one build per key at a time); None when it
    /// cannot be held (over the budget or the pool), so the question takes the unprepared
    /// path.
    pub async fn get(&self, ctx: &SessionContext, q: &ValidatedQuery, region: &str, data_years: (i32, i32)) -> Result<Option<Arc<PreparedUnits>>, EngineError> {
        let key = (q.recipe.key(), q.options.perspective);
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let cell = {
            let mut entries = self.lock();
            let e = entries.entry(key.clone()).or_insert_with(|| Entry { table: Arc::new(tokio::sync::OnceCell::new()), used: AtomicU64::new(now) });
            e.used.store(now, Ordering::Relaxed);
            e.table.clone()
        };
        let budget = self.budget;
        let table = cell
            .get_or_try_init(|| async move {
                match PreparedUnits::build(ctx, q, region, data_years, budget).await {
                    Ok(t) => {
                        tracing::info!(recipe = %q.recipe.key(), rows = t.rows(), mib = t.bytes >> 20, ms = t.build_ms, "prepared the recipe's units");
                        Ok(Some(Arc::new(t)))
                    }
                    Err(EngineError::ResourcesExhausted { message, .. }) => {
                        tracing::info!(recipe = %q.recipe.key(), %message, "not preparing the recipe's units: answered per question");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?
            .clone();
        if table.is_some() {
            self.evict(&key);
        }
        Ok(table)
    }

    /// Drops the least recently used tables (never `keep`) until the rest fit the budget.
    fn evict(&self, keep: &(String, Perspective)) {
        let mut entries = self.lock();
        loop {
            let held: usize = entries.values().filter_map(|e| e.table.get().cloned().flatten()).map(|t| t.bytes).sum();
            if held <= self.budget {
                return;
            }
            let oldest = entries
                .iter()
                .filter(|(k, e)| *k != keep && e.table.get().is_some_and(|t| t.is_some()))
                .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    entries.remove(&k);
                }
                None => return,
            }
        }
    }

    pub fn stats(&self) -> PreparedStats {
        let entries = self.lock();
        let tables: Vec<Arc<PreparedUnits>> = entries.values().filter_map(|e| e.table.get().cloned().flatten()).collect();
        PreparedStats { tables: tables.len(), rows: tables.iter().map(|t| t.rows()).sum(), bytes: tables.iter().map(|t| t.bytes).sum() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_read_from_their_labels() {
        assert_eq!(month_of("2024-01"), Some(2024 * 12));
        assert_eq!(month_of("2024-12"), Some(2024 * 12 + 11));
        assert_eq!(month_of("2024-13"), None);
        assert_eq!(month_of("2024"), None);
    }
}
