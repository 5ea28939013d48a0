//! What an evaluation produces: the raw cells of a query, before disclosure control, and
//! the public mixing of unit ids from which cell keys are computed.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Recipe;
use norrsken_model::geography;
use norrsken_model::query::ValidatedQuery;

/// The label of a margin (the model's).
pub use norrsken_model::breakdown::TOTAL;

const PRIME: i64 = 2_147_483_647;
const MULTIPLIER: i64 = 48_271;

/// The public mixing of a unit id, in [0, 2^31 - 1): a cell carries the sum of its units'
/// mixed ids, from which disclosure control derives the cell key with the region's secret
/// (see `crate::disclosure::record_key`).
pub fn mix(unit_id: i64) -> i64 {
    (unit_id.rem_euclid(PRIME) * MULTIPLIER) % PRIME
}

/// The SQL expression of [`mix`] over a BIGINT column (ids are non-negative).
pub fn mix_sql(column: &str) -> String {
    format!("((({column}) % {PRIME}) * {MULTIPLIER}) % {PRIME}")
}

/// The additive components of one cell, before disclosure control. Counts are exact and
/// never leave the agent in this form.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCell {
    /// County code the cell belongs to (the agent's region, or the patient's home region in
    /// the population perspective).
    pub region: String,
    /// One label per breakdown of the query, in query order.
    pub labels: Vec<String>,
    /// Outcome category for distribution recipes.
    pub category: Option<String>,
    /// Units in the cell (the denominator of a proportion, the events of a rate or count,
    /// the n of a mean or cost sum).
    pub units: i64,
    /// Distinct persons among the units.
    pub persons: i64,
    /// Units meeting the numerator (proportions).
    pub numerator: i64,
    pub numerator_persons: i64,
    pub value_sum: f64,
    pub value_sum_sq: f64,
    /// Largest and second-largest per-person contribution to `value_sum` (cost sums).
    pub top1: f64,
    pub top2: f64,
    /// Inhabitants (rates): residents alive on 1 July, summed over the period's years.
    pub population: i64,
    /// Sums of the mixed unit ids of the units, the numerator's units and the population
    /// (see `record_key`): with the counts they give the cell keys.
    pub units_mix: i64,
    pub numerator_mix: i64,
    pub population_mix: i64,
    /// Sum of the mixed ids of the cell's distinct persons (their cell key).
    pub persons_mix: i64,
    /// Sum over persons of the square of the person's value sum (cost sums: the spread of
    /// cost per patient).
    pub person_sum_sq: f64,
}

impl RawCell {
    /// A cell that holds nobody (every component zero): the start of a fixture, or a cell
    /// synthesised for presence hiding.
    pub fn empty(region: &str, labels: Vec<String>, category: Option<String>) -> RawCell {
        RawCell {
            region: region.to_string(),
            labels,
            category,
            units: 0,
            persons: 0,
            numerator: 0,
            numerator_persons: 0,
            value_sum: 0.0,
            value_sum_sq: 0.0,
            top1: 0.0,
            top2: 0.0,
            population: 0,
            units_mix: 0,
            numerator_mix: 0,
            population_mix: 0,
            persons_mix: 0,
            person_sum_sq: 0.0,
        }
    }
}

/// The cells of one evaluated query.
#[derive(Debug, Clone)]
pub struct CellTable {
    pub recipe: Arc<Recipe>,
    pub breakdowns: Vec<Breakdown>,
    pub cells: Vec<RawCell>,
}

impl CellTable {
    /// The cells as an Arrow batch (for `norrsken eval` and tests).
    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut fields = vec![Field::new("region", DataType::Utf8, false)];
        fields.extend(self.breakdowns.iter().map(|b| Field::new(b.name(), DataType::Utf8, false)));
        let distribution = self.recipe.is_distribution();
        if distribution {
            fields.push(Field::new("category", DataType::Utf8, false));
        }
        let ints = ["units", "persons", "numerator", "numerator_persons", "population"];
        let floats = ["value_sum", "value_sum_sq"];
        fields.extend(ints.iter().map(|n| Field::new(*n, DataType::Int64, false)));
        fields.extend(floats.iter().map(|n| Field::new(*n, DataType::Float64, false)));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.region.as_str())))];
        for i in 0..self.breakdowns.len() {
            columns.push(Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.labels[i].as_str()))));
        }
        if distribution {
            columns.push(Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.category.as_deref().unwrap_or("")))));
        }
        let int_of = |name: &str, c: &RawCell| match name {
            "units" => c.units,
            "persons" => c.persons,
            "numerator" => c.numerator,
            "numerator_persons" => c.numerator_persons,
            _ => c.population,
        };
        for n in ints {
            columns.push(Arc::new(Int64Array::from_iter_values(self.cells.iter().map(|c| int_of(n, c)))));
        }
        columns.push(Arc::new(Float64Array::from_iter_values(self.cells.iter().map(|c| c.value_sum))));
        columns.push(Arc::new(Float64Array::from_iter_values(self.cells.iter().map(|c| c.value_sum_sq))));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch.column_by_name(name).ok_or_else(|| format!("no column '{name}'"))
}

fn ints(batch: &RecordBatch, name: &str) -> Result<Int64Array, String> {
    let a = cast(column(batch, name)?, &DataType::Int64).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| format!("column '{name}' is not an integer"))
}

fn floats(batch: &RecordBatch, name: &str) -> Result<Float64Array, String> {
    let a = cast(column(batch, name)?, &DataType::Float64).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<Float64Array>().cloned().ok_or_else(|| format!("column '{name}' is not a number"))
}

fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let a = cast(column(batch, name)?, &DataType::Utf8).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| format!("column '{name}' is not text"))
}

pub(crate) fn read_cells(batch: &RecordBatch, q: &ValidatedQuery, out: &mut Vec<RawCell>) -> Result<(), String> {
    let region = strings(batch, "region")?;
    let labels: Vec<StringArray> = q.breakdowns.iter().map(|b| strings(batch, &format!("b_{}", b.name()))).collect::<Result<_, _>>()?;
    let category = if q.recipe.is_distribution() { Some(strings(batch, "category")?) } else { None };
    let (units, persons, numerator, numerator_persons) =
        (ints(batch, "units")?, ints(batch, "persons")?, ints(batch, "numerator")?, ints(batch, "numerator_persons")?);
    let (population, units_mix, numerator_mix, population_mix) =
        (ints(batch, "population")?, ints(batch, "units_mix")?, ints(batch, "numerator_mix")?, ints(batch, "population_mix")?);
    let (value_sum, value_sum_sq, top1, top2) =
        (floats(batch, "value_sum")?, floats(batch, "value_sum_sq")?, floats(batch, "top1")?, floats(batch, "top2")?);
    let (persons_mix, person_sum_sq) = (ints(batch, "persons_mix")?, floats(batch, "person_sum_sq")?);
    let int = |a: &Int64Array, i: usize| if a.is_null(i) { 0 } else { a.value(i) };
    let float = |a: &Float64Array, i: usize| if a.is_null(i) { 0.0 } else { a.value(i) };
    for i in 0..batch.num_rows() {
        if region.is_null(i) {
            return Err("a cell without a region (a person with no kommun?)".into());
        }
        let code = region.value(i);
        if geography::find_region(code).is_none() && code.len() != 2 {
            return Err(format!("a cell with region '{code}'"));
        }
        let mut ls = Vec::with_capacity(labels.len());
        for (b, l) in q.breakdowns.iter().zip(&labels) {
            if l.is_null(i) {
                return Err(format!("a cell without a value for '{}'", b.name()));
            }
            ls.push(l.value(i).to_string());
        }
        out.push(RawCell {
            region: code.to_string(),
            labels: ls,
            category: category.as_ref().map(|c| c.value(i).to_string()),
            units: int(&units, i),
            persons: int(&persons, i),
            numerator: int(&numerator, i),
            numerator_persons: int(&numerator_persons, i),
            value_sum: float(&value_sum, i),
            value_sum_sq: float(&value_sum_sq, i),
            top1: float(&top1, i),
            top2: float(&top2, i),
            population: int(&population, i),
            units_mix: int(&units_mix, i),
            numerator_mix: int(&numerator_mix, i),
            population_mix: int(&population_mix, i),
            persons_mix: int(&persons_mix, i),
            person_sum_sq: float(&person_sum_sq, i),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_mix_matches() {
        assert_eq!(mix_sql("unit_id"), "(((unit_id) % 2147483647) * 48271) % 2147483647");
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 48_271);
        assert_eq!(mix(2_147_483_647), 0);
    }
}
