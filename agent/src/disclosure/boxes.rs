//! Cells as boxes over a recipe's base dimensions: the name of a cell however it is asked
//! (the release ledger counts a requester's budget in boxes; the attack tests reason in them).
//!
//! Every cell any question can name is a Cartesian product ("box") of value sets: for each
//! dimension (the period's months, each non-time breakdown the recipe allows and, for
//! distributions, the outcome category) the set of values the cell covers. A breakdown the
//! question does not split by covers every value (or the filter's values); a `total` label
//! covers the whole line. Two questions that name the same persons' cell name the same box,
//! whatever their spelling, so the ledger can tell what was released before.
//!
//! A region's cells never mix regions, so each region's boxes form their own space.
//!
//! An answer also says which cells are empty: a cell of the question's grid that is not in
//! the answer holds nobody. [`Space::zero_boxes`] lists those as boxes known to be zero.

use std::collections::BTreeSet;

use norrsken_model::breakdown::{Breakdown, TimeGrain};
use norrsken_model::catalog::Recipe;
use norrsken_model::period::{MonthIndex, Period};
use norrsken_model::query::ValidatedQuery;

/// The label of a margin (the model's).
pub use norrsken_model::breakdown::TOTAL;

/// The values a box covers in one dimension (sorted codes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueSet {
    All,
    Some(Vec<u32>),
}

impl ValueSet {
    fn one(code: u32) -> ValueSet {
        ValueSet::Some(vec![code])
    }
    pub fn contains(&self, code: u32) -> bool {
        match self {
            ValueSet::All => true,
            ValueSet::Some(v) => v.binary_search(&code).is_ok(),
        }
    }
}

/// A cell as a product of value sets, one per dimension of its [`Space`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellBox(pub Vec<ValueSet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    #[error("label '{label}' is not a value of '{dimension}' for {recipe}")]
    UnknownLabel { dimension: String, label: String, recipe: String },
    #[error("a cell has {got} labels where the question has {expected} breakdowns")]
    Shape { got: usize, expected: usize },
}

/// One dimension of a recipe's space.
#[derive(Debug, Clone)]
enum Dim {
    /// Months, coded as [`MonthIndex`] values.
    Time,
    /// A non-time breakdown with its vocabulary (codes are indices into it).
    Breakdown(Breakdown, Vec<String>),
    /// A distribution's categories.
    Category(Vec<String>),
}

/// The base dimensions of one recipe.
#[derive(Debug, Clone)]
pub struct Space {
    recipe: String,
    dims: Vec<Dim>,
}

/// A cell of an answer: its labels in the question's breakdown order and its category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellId {
    pub labels: Vec<String>,
    pub category: Option<String>,
}

impl Space {
    pub fn of(recipe: &Recipe) -> Space {
        let mut dims = vec![Dim::Time];
        let mut breakdowns: Vec<Breakdown> = recipe.breakdowns.iter().copied().filter(|b| b.time_grain().is_none()).collect();
        breakdowns.sort();
        breakdowns.dedup();
        for b in breakdowns {
            dims.push(Dim::Breakdown(b, b.allowed_values(&recipe.age_bands)));
        }
        if recipe.is_distribution() {
            dims.push(Dim::Category(recipe.categories.iter().map(|c| c.code.clone()).collect()));
        }
        Space { recipe: recipe.key(), dims }
    }

    pub fn dimensions(&self) -> usize {
        self.dims.len()
    }

    fn code(&self, dim: usize, label: &str) -> Result<u32, BoxError> {
        let (name, vocab) = match &self.dims[dim] {
            Dim::Breakdown(b, v) => (b.name().to_string(), v),
            Dim::Category(v) => ("category".to_string(), v),
            Dim::Time => unreachable!("time labels are coded as months"),
        };
        vocab
            .iter()
            .position(|v| v == label)
            .map(|i| i as u32)
            .ok_or_else(|| BoxError::UnknownLabel { dimension: name, label: label.to_string(), recipe: self.recipe.clone() })
    }

    /// The months of a time label at a grain, within the period.
    fn label_months(&self, period: &Period, grain: TimeGrain, label: &str) -> Result<Vec<u32>, BoxError> {
        let unit = Period::parse(label).ok().filter(|p| p.grain == grain).ok_or_else(|| BoxError::UnknownLabel {
            dimension: "time".into(),
            label: label.to_string(),
            recipe: self.recipe.clone(),
        })?;
        let first = unit.first.0.max(period.first.0);
        let last = unit.last.0.min(period.last.0);
        Ok((first..=last).map(|m| m as u32).collect())
    }

    /// The box of one cell of a question.
    pub fn cell_box(&self, q: &ValidatedQuery, cell: &CellId) -> Result<CellBox, BoxError> {
        if cell.labels.len() != q.breakdowns.len() {
            return Err(BoxError::Shape { got: cell.labels.len(), expected: q.breakdowns.len() });
        }
        let label_of = |b: Breakdown| q.breakdowns.iter().position(|x| *x == b).map(|i| cell.labels[i].as_str());
        let mut sets = Vec::with_capacity(self.dims.len());
        for (d, dim) in self.dims.iter().enumerate() {
            let set = match dim {
                Dim::Time => {
                    let time = q.breakdowns.iter().find_map(|b| b.time_grain().map(|g| (*b, g)));
                    match time.and_then(|(b, g)| label_of(b).filter(|l| *l != TOTAL).map(|l| (g, l))) {
                        Some((grain, label)) => ValueSet::Some(self.label_months(&q.period, grain, label)?),
                        None => ValueSet::Some((q.period.first.0..=q.period.last.0).map(|m| m as u32).collect()),
                    }
                }
                Dim::Breakdown(b, vocabulary) => match label_of(*b).filter(|l| *l != TOTAL) {
                    Some(label) => ValueSet::one(self.code(d, label)?),
                    None => match q.filters.get(b) {
                        Some(values) => {
                            let mut codes = values.iter().map(|v| self.code(d, v)).collect::<Result<Vec<_>, _>>()?;
                            codes.sort_unstable();
                            ValueSet::Some(codes)
                        }
                        // Every value of the vocabulary, named: a difference of two boxes is
                        // then a box again.
                        None => ValueSet::Some((0..vocabulary.len() as u32).collect()),
                    },
                },
                Dim::Category(vocabulary) => match cell.category.as_deref().filter(|c| *c != TOTAL) {
                    Some(c) => ValueSet::one(self.code(d, c)?),
                    None => ValueSet::Some((0..vocabulary.len() as u32).collect()),
                },
            };
            sets.push(set);
        }
        Ok(CellBox(sets))
    }

    /// The labels each breakdown of the question can take (its time units, its vocabulary
    /// or its filter) and the categories: the grid of the question's inner cells.
    fn grid(&self, q: &ValidatedQuery) -> Vec<Vec<String>> {
        let mut axes = Vec::new();
        for b in &q.breakdowns {
            let values = match b.time_grain() {
                Some(grain) => time_units(&q.period, grain),
                None => match q.filters.get(b) {
                    Some(f) => f.iter().cloned().collect(),
                    None => self
                        .dims
                        .iter()
                        .find_map(|d| match d {
                            Dim::Breakdown(x, v) if x == b => Some(v.clone()),
                            _ => None,
                        })
                        .unwrap_or_default(),
                },
            };
            axes.push(values);
        }
        axes
    }

    /// Boxes an answer shows to be empty: the cells of the question's grid that it does not
    /// hold. `present` are the inner cells (no `total` label) the answer holds, released or
    /// withheld. Values no present cell has become one box per breakdown; combinations of
    /// present values that are missing become one box each.
    pub fn zero_boxes(&self, q: &ValidatedQuery, present: &[CellId]) -> Result<Vec<CellBox>, BoxError> {
        let axes = self.grid(q);
        let distribution = self.dims.iter().any(|d| matches!(d, Dim::Category(_)));
        let inner: BTreeSet<&Vec<String>> = present.iter().filter(|c| !c.labels.iter().any(|l| l == TOTAL)).map(|c| &c.labels).collect();
        let mut out = Vec::new();
        if axes.is_empty() {
            if inner.is_empty() && present.is_empty() {
                out.push(self.cell_box(q, &CellId { labels: vec![], category: None })?);
            }
            return Ok(out);
        }
        // Per breakdown, the values present.
        let mut seen: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); axes.len()];
        for labels in &inner {
            for (i, l) in labels.iter().enumerate() {
                seen[i].insert(l.as_str());
            }
        }
        // Values of an axis no present cell has: each is a whole slice of zeros.
        for (i, axis) in axes.iter().enumerate() {
            for value in axis.iter().filter(|v| !seen[i].contains(v.as_str())) {
                let mut labels = vec![TOTAL.to_string(); axes.len()];
                labels[i] = value.clone();
                out.push(self.cell_box(q, &CellId { labels, category: None })?);
            }
        }
        // Missing combinations of present values.
        let present_axes: Vec<Vec<&str>> = seen.iter().map(|s| s.iter().copied().collect()).collect();
        if present_axes.iter().all(|a| !a.is_empty()) {
            let mut index = vec![0usize; present_axes.len()];
            'combos: loop {
                let labels: Vec<String> = index.iter().enumerate().map(|(i, &j)| present_axes[i][j].to_string()).collect();
                if !inner.contains(&labels) {
                    out.push(self.cell_box(q, &CellId { labels, category: None })?);
                }
                for i in (0..index.len()).rev() {
                    index[i] += 1;
                    if index[i] < present_axes[i].len() {
                        continue 'combos;
                    }
                    index[i] = 0;
                }
                break;
            }
        }
        // Distributions list every category of a present cell, so no category is missing.
        let _ = distribution;
        Ok(out)
    }
}

/// The labels of a period's units at a grain: `2023`, `2023Q1`, `2023-01`.
pub fn time_units(period: &Period, grain: TimeGrain) -> Vec<String> {
    let mut out = Vec::new();
    let mut m = period.first.0;
    while m <= period.last.0 {
        let mi = MonthIndex(m);
        let (label, next) = match grain {
            TimeGrain::Year => (format!("{}", mi.year()), MonthIndex::new(mi.year() + 1, 1).0),
            TimeGrain::Quarter => (format!("{}Q{}", mi.year(), mi.quarter()), MonthIndex::new(mi.year(), (mi.quarter() - 1) * 3 + 1).0 + 3),
            TimeGrain::Month => (format!("{}-{:02}", mi.year(), mi.month()), m + 1),
        };
        out.push(label);
        m = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    fn v(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    fn id(labels: &[&str]) -> CellId {
        CellId { labels: labels.iter().map(|s| s.to_string()).collect(), category: None }
    }

    #[test]
    fn the_same_cell_is_the_same_box_however_it_is_asked() {
        let a = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","year"],"period":"2023..2024"}"#);
        let b = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["year"],"filters":{"sex":["female"]},"period":"2023Q1..2024Q4"}"#);
        let space = Space::of(&a.recipe);
        let x = space.cell_box(&a, &id(&["female", "2024"])).unwrap();
        let y = space.cell_box(&b, &id(&["2024"])).unwrap();
        assert_eq!(x, y);
        // The margin over sex in the first question is the whole period and every sex.
        let total = space.cell_box(&a, &id(&["total", "total"])).unwrap();
        assert_eq!(total.0[0], ValueSet::Some((MonthIndex::new(2023, 1).0 as u32..=MonthIndex::new(2024, 12).0 as u32).collect()));
        assert!(matches!(space.cell_box(&a, &id(&["shoe", "2024"])), Err(BoxError::UnknownLabel { .. })));
    }

    #[test]
    fn missing_cells_are_zero_boxes() {
        let q = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","year"],"period":"2023..2024"}"#);
        let space = Space::of(&q.recipe);
        let present = [id(&["female", "2023"]), id(&["female", "2024"]), id(&["male", "2023"])];
        let zeros = space.zero_boxes(&q, &present).unwrap();
        assert!(zeros.contains(&space.cell_box(&q, &id(&["male", "2024"])).unwrap()), "{zeros:?}");
        // Sexes with no cell at all are a zero slice.
        let sexes = norrsken_model::cdm::SEXES.len();
        assert_eq!(zeros.len(), 1 + sexes - 2, "{zeros:?}");
    }
}
