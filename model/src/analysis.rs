//! What an analysis answers (the wire contract; the coordinator computes it, see
//! docs/analysis.md and docs/protocol.md): a table in long form whose `row` column says what
//! each row is, the region, the question's other breakdowns as key columns, then the
//! kind's own columns. Its schema follows from the kind and the question alone, so a
//! description (GetFlightInfo) names it before anything is computed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};

use crate::breakdown::Breakdown;
use crate::query::{AnalysisKind, AnalysisSpec};

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Float,
    Int,
    Bool,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Float(Option<f64>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(Some(s.into()))
    }
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => s.as_deref(),
            _ => None,
        }
    }
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(x) => *x,
            Value::Int(x) => x.map(|x| x as f64),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(x) => *x,
            _ => None,
        }
    }
}

use ColumnType::{Bool, Float, Int, Text};

/// The columns after the key columns, per kind.
pub fn kind_columns(kind: AnalysisKind) -> &'static [(&'static str, ColumnType)] {
    match kind {
        AnalysisKind::Compare => &[
            ("numerator", Int),
            ("denominator", Int),
            ("value", Float),
            ("ci_lower", Float),
            ("ci_upper", Float),
            ("ci998_lower", Float),
            ("ci998_upper", Float),
            ("standardised", Bool),
            ("comparator", Text),
            ("comparator_value", Float),
            ("comparator_lower", Float),
            ("comparator_upper", Float),
            ("difference", Float),
            ("significance", Text),
            ("significance_998", Text),
            ("status", Text),
            ("note", Text),
        ],
        AnalysisKind::Trend => &[
            ("year", Int),
            ("numerator", Int),
            ("denominator", Int),
            ("value", Float),
            ("ci_lower", Float),
            ("ci_upper", Float),
            ("standardised", Bool),
            ("status", Text),
            ("years", Int),
            ("model", Text),
            ("change", Float),
            ("change_lower", Float),
            ("change_upper", Float),
            ("change_unit", Text),
            ("yearly", Float),
            ("yearly_lower", Float),
            ("yearly_upper", Float),
            ("p_value", Float),
            ("dispersion", Float),
            ("flag", Text),
            ("note", Text),
        ],
        AnalysisKind::Equity => &[
            ("group", Text),
            ("rank", Int),
            ("numerator", Int),
            ("denominator", Int),
            ("value", Float),
            ("ci_lower", Float),
            ("ci_upper", Float),
            ("standardised", Bool),
            ("status", Text),
            ("ordered", Bool),
            ("from_group", Text),
            ("to_group", Text),
            ("abs_gap", Float),
            ("abs_gap_lower", Float),
            ("abs_gap_upper", Float),
            ("rel_gap", Float),
            ("rel_gap_lower", Float),
            ("rel_gap_upper", Float),
            ("sii", Float),
            ("sii_lower", Float),
            ("sii_upper", Float),
            ("rii", Float),
            ("rii_lower", Float),
            ("rii_upper", Float),
            ("note", Text),
        ],
        AnalysisKind::Funnel => &[
            ("unit", Text),
            ("unit_name", Text),
            ("numerator", Int),
            ("denominator", Int),
            ("precision", Float),
            ("value", Float),
            ("centre", Float),
            ("lower_95", Float),
            ("upper_95", Float),
            ("lower_998", Float),
            ("upper_998", Float),
            ("position", Text),
            ("significance", Text),
            ("status", Text),
            ("note", Text),
        ],
        // Rows: `region` and `pooled` (a cohort's before, after and change with a paired t
        // interval, its comparison group's, and the effect), then `fixed`, `random` and
        // `prediction` (the meta-analysis across the regions' effects).
        AnalysisKind::Evaluate => &[
            ("n", Int),
            ("before", Float),
            ("after", Float),
            ("change", Float),
            ("change_lower", Float),
            ("change_upper", Float),
            ("ratio", Float),
            ("ratio_lower", Float),
            ("ratio_upper", Float),
            ("comparison_n", Int),
            ("comparison_before", Float),
            ("comparison_change", Float),
            ("comparison_change_lower", Float),
            ("comparison_change_upper", Float),
            ("design", Text),
            ("effect", Float),
            ("effect_lower", Float),
            ("effect_upper", Float),
            ("effect_se", Float),
            ("weight", Float),
            ("tau2", Float),
            ("i2", Float),
            ("i2_lower", Float),
            ("i2_upper", Float),
            ("q", Float),
            ("q_p", Float),
            ("k", Int),
            ("consistency", Text),
            ("status", Text),
            ("note", Text),
        ],
    }
}

/// The question's breakdowns that become key columns: the analysis's own dimension (a
/// trend's year, an equity analysis's groups, a funnel's kommun) and a standardised
/// question's age bands are not keys.
pub fn key_breakdowns(spec: &AnalysisSpec, breakdowns: &[Breakdown], standardised: bool) -> Vec<Breakdown> {
    let own = match spec.kind {
        AnalysisKind::Compare => None,
        AnalysisKind::Trend => Some(Breakdown::Year),
        AnalysisKind::Equity => spec.dimension.as_deref().and_then(Breakdown::parse),
        AnalysisKind::Funnel => (spec.units.as_deref() == Some("kommun")).then_some(Breakdown::Kommun),
        AnalysisKind::Evaluate => None,
    };
    let cohort = |b: Breakdown| spec.kind == AnalysisKind::Evaluate && matches!(b, Breakdown::Arm | Breakdown::Measure);
    breakdowns.iter().copied().filter(|b| Some(*b) != own && !cohort(*b) && !(standardised && *b == Breakdown::AgeBand)).collect()
}

/// The columns of an analysis table.
pub fn columns(kind: AnalysisKind, keys: &[Breakdown]) -> Vec<(String, ColumnType)> {
    let mut cols = vec![("row".to_string(), Text), ("region".to_string(), Text), ("region_name".to_string(), Text)];
    cols.extend(keys.iter().map(|b| (b.name().to_string(), Text)));
    cols.extend(kind_columns(kind).iter().map(|(n, t)| (n.to_string(), *t)));
    cols
}

fn data_type(t: ColumnType) -> DataType {
    match t {
        Text => DataType::Utf8,
        Float => DataType::Float64,
        Int => DataType::Int64,
        Bool => DataType::Boolean,
    }
}

/// The Arrow schema of an analysis table, without metadata.
pub fn analysis_schema(kind: AnalysisKind, keys: &[Breakdown]) -> Schema {
    Schema::new(
        columns(kind, keys)
            .into_iter()
            .enumerate()
            .map(|(i, (name, t))| Field::new(name, data_type(t), i >= 3))
            .collect::<Vec<_>>(),
    )
}

/// An analysis result: rows of values in [`columns`] order, and `norrsken.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisTable {
    pub kind: AnalysisKind,
    pub keys: Vec<Breakdown>,
    pub rows: Vec<Vec<Value>>,
    /// Metadata without the `norrsken.` prefix (method, comparator, standard, notes...).
    pub meta: Vec<(String, String)>,
}

/// A table that cannot be built or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisTableError {
    #[error("analysis row {row} has {got} values for {expected} columns")]
    Width { row: usize, got: usize, expected: usize },
    #[error("analysis column '{column}' holds a value of another type in row {row}")]
    Type { column: String, row: usize },
    #[error("the analysis table lacks '{0}'")]
    Missing(String),
    #[error("arrow: {0}")]
    Arrow(String),
}

impl AnalysisTable {
    pub fn new(kind: AnalysisKind, keys: Vec<Breakdown>) -> AnalysisTable {
        AnalysisTable { kind, keys, rows: Vec::new(), meta: Vec::new() }
    }

    pub fn columns(&self) -> Vec<(String, ColumnType)> {
        columns(self.kind, &self.keys)
    }

    /// A column's position (as in [`columns`], without building the list).
    pub fn index_of(&self, column: &str) -> Option<usize> {
        match column {
            "row" => Some(0),
            "region" => Some(1),
            "region_name" => Some(2),
            _ => self.keys.iter().position(|b| b.name() == column).map(|i| 3 + i).or_else(|| {
                kind_columns(self.kind).iter().position(|(n, _)| *n == column).map(|j| 3 + self.keys.len() + j)
            }),
        }
    }

    /// A value by column name.
    pub fn get<'a>(&self, row: &'a [Value], column: &str) -> Option<&'a Value> {
        row.get(self.index_of(column)?)
    }

    /// The rows of a `compare` table, typed (none for another kind): readers take fields,
    /// not column names.
    pub fn compare_rows(&self) -> Vec<CompareRow> {
        if self.kind != AnalysisKind::Compare {
            return Vec::new();
        }
        self.rows
            .iter()
            .map(|r| {
                let c = Cells { t: self, r };
                CompareRow {
                    row: c.text("row").unwrap_or_default(),
                    region: c.text("region").unwrap_or_default(),
                    region_name: c.text("region_name").unwrap_or_default(),
                    numerator: c.int("numerator"),
                    denominator: c.int("denominator"),
                    value: c.float("value"),
                    ci_lower: c.float("ci_lower"),
                    ci_upper: c.float("ci_upper"),
                    comparator_value: c.float("comparator_value"),
                    significance: c.text("significance"),
                    status: c.text("status").unwrap_or_default(),
                    note: c.text("note"),
                }
            })
            .collect()
    }

    /// The rows of a `trend` table, typed (none for another kind): yearly values
    /// (`row` = region or pooled, with `year`) and each region's fitted change (`row` =
    /// `trend`).
    pub fn trend_rows(&self) -> Vec<TrendRow> {
        if self.kind != AnalysisKind::Trend {
            return Vec::new();
        }
        self.rows
            .iter()
            .map(|r| {
                let c = Cells { t: self, r };
                TrendRow {
                    row: c.text("row").unwrap_or_default(),
                    region: c.text("region").unwrap_or_default(),
                    region_name: c.text("region_name").unwrap_or_default(),
                    year: c.int("year"),
                    value: c.float("value"),
                    ci_lower: c.float("ci_lower"),
                    ci_upper: c.float("ci_upper"),
                    status: c.text("status").unwrap_or_default(),
                    change: c.float("change"),
                    change_lower: c.float("change_lower"),
                    change_upper: c.float("change_upper"),
                    change_unit: c.text("change_unit"),
                    yearly: c.float("yearly"),
                    yearly_lower: c.float("yearly_lower"),
                    yearly_upper: c.float("yearly_upper"),
                    flag: c.text("flag"),
                    note: c.text("note"),
                }
            })
            .collect()
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn schema(&self) -> SchemaRef {
        let mut md: HashMap<String, String> = self.meta.iter().map(|(k, v)| (format!("norrsken.{k}"), v.clone())).collect();
        md.insert("norrsken.analysis".into(), self.kind.name().into());
        Arc::new(analysis_schema(self.kind, &self.keys).with_metadata(md))
    }

    pub fn to_record_batch(&self) -> Result<RecordBatch, AnalysisTableError> {
        let cols = self.columns();
        for (i, r) in self.rows.iter().enumerate() {
            if r.len() != cols.len() {
                return Err(AnalysisTableError::Width { row: i, got: r.len(), expected: cols.len() });
            }
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.len());
        for (c, (name, t)) in cols.iter().enumerate() {
            let wrong = |row| AnalysisTableError::Type { column: name.clone(), row };
            let array: ArrayRef = match t {
                Text => Arc::new(
                    self.rows.iter().enumerate().map(|(i, r)| if let Value::Text(v) = &r[c] { Ok(v.clone()) } else { Err(wrong(i)) }).collect::<Result<StringArray, _>>()?,
                ),
                Float => Arc::new(
                    self.rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| if let Value::Float(v) = &r[c] { Ok(v.filter(|x| x.is_finite())) } else { Err(wrong(i)) })
                        .collect::<Result<Float64Array, _>>()?,
                ),
                Int => Arc::new(self.rows.iter().enumerate().map(|(i, r)| if let Value::Int(v) = &r[c] { Ok(*v) } else { Err(wrong(i)) }).collect::<Result<Int64Array, _>>()?),
                Bool => Arc::new(
                    self.rows.iter().enumerate().map(|(i, r)| if let Value::Bool(v) = &r[c] { Ok(*v) } else { Err(wrong(i)) }).collect::<Result<BooleanArray, _>>()?,
                ),
            };
            arrays.push(array);
        }
        RecordBatch::try_new(self.schema(), arrays).map_err(|e| AnalysisTableError::Arrow(e.to_string()))
    }

    /// Reads an analysis table back (the command-line tool and other readers).
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<AnalysisTable, AnalysisTableError> {
        let md = schema.metadata();
        let kind = md.get("norrsken.analysis").and_then(|k| AnalysisKind::parse(k)).ok_or_else(|| AnalysisTableError::Missing("norrsken.analysis".into()))?;
        let fixed: Vec<&str> = kind_columns(kind).iter().map(|(n, _)| *n).collect();
        let keys: Vec<Breakdown> = schema
            .fields()
            .iter()
            .skip(3)
            .filter(|f| !fixed.contains(&f.name().as_str()))
            .map(|f| Breakdown::parse(f.name()).ok_or_else(|| AnalysisTableError::Missing(format!("breakdown '{}'", f.name()))))
            .collect::<Result<_, _>>()?;
        let mut table = AnalysisTable::new(kind, keys);
        table.meta = md.iter().filter_map(|(k, v)| k.strip_prefix("norrsken.").map(|k| (k.to_string(), v.clone()))).filter(|(k, _)| k != "analysis").collect();
        table.meta.sort();
        let cols = table.columns();
        for b in batches {
            let mut arrays = Vec::with_capacity(cols.len());
            for (name, _) in &cols {
                arrays.push(b.column_by_name(name).ok_or_else(|| AnalysisTableError::Missing(name.clone()))?.clone());
            }
            for i in 0..b.num_rows() {
                let mut row = Vec::with_capacity(cols.len());
                for ((name, t), a) in cols.iter().zip(&arrays) {
                    let missing = || AnalysisTableError::Type { column: name.clone(), row: i };
                    let null = a.is_null(i);
                    row.push(match t {
                        Text => Value::Text((!null).then(|| a.as_string_opt::<i32>().map(|s| s.value(i).to_string())).flatten()).check(null, missing)?,
                        Float => Value::Float((!null).then(|| a.as_primitive_opt::<Float64Type>().map(|s| s.value(i))).flatten()).check(null, missing)?,
                        Int => Value::Int((!null).then(|| a.as_primitive_opt::<Int64Type>().map(|s| s.value(i))).flatten()).check(null, missing)?,
                        Bool => Value::Bool((!null).then(|| a.as_boolean_opt().map(|s| s.value(i))).flatten()).check(null, missing)?,
                    });
                }
                table.rows.push(row);
            }
        }
        Ok(table)
    }
}

impl Value {
    /// A value read from a non-null slot must have been read.
    fn check(self, null: bool, err: impl Fn() -> AnalysisTableError) -> Result<Value, AnalysisTableError> {
        let empty = matches!(&self, Value::Text(None) | Value::Float(None) | Value::Int(None) | Value::Bool(None));
        if empty && !null {
            return Err(err());
        }
        Ok(self)
    }
}

/// The schema an analysis of a validated question answers with.
pub fn schema_for(spec: &AnalysisSpec, breakdowns: &[Breakdown], standardised: bool) -> Schema {
    analysis_schema(spec.kind, &key_breakdowns(spec, breakdowns, standardised))
}

/// One row's cells by column name: the one place the typed rows read names.
struct Cells<'a> {
    t: &'a AnalysisTable,
    r: &'a [Value],
}

impl Cells<'_> {
    fn text(&self, c: &str) -> Option<String> {
        self.t.get(self.r, c).and_then(Value::as_text).map(str::to_string)
    }
    fn float(&self, c: &str) -> Option<f64> {
        self.t.get(self.r, c).and_then(Value::as_float)
    }
    fn int(&self, c: &str) -> Option<i64> {
        self.t.get(self.r, c).and_then(Value::as_int)
    }
}

/// A row of a `compare` table: a region's (or the pooled) value against its comparator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompareRow {
    /// `region` or `pooled`.
    pub row: String,
    pub region: String,
    pub region_name: String,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    pub comparator_value: Option<f64>,
    /// `better`, `worse`, `similar` or `not_compared`.
    pub significance: Option<String>,
    pub status: String,
    pub note: Option<String>,
}

/// A row of a `trend` table: a yearly value, or (`row` = `trend`) a region's change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrendRow {
    /// `region`, `pooled` or `trend`.
    pub row: String,
    pub region: String,
    pub region_name: String,
    pub year: Option<i64>,
    pub value: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    pub status: String,
    pub change: Option<f64>,
    pub change_lower: Option<f64>,
    pub change_upper: Option<f64>,
    pub change_unit: Option<String>,
    /// The change per year on the value's scale (procentenheter for a share, per the rate's
    /// base for a rate), at the period's mean level, with its 95 % interval.
    pub yearly: Option<f64>,
    pub yearly_lower: Option<f64>,
    pub yearly_upper: Option<f64>,
    /// `improving`, `worsening`, `no_significant_change`, `not_computed`.
    pub flag: Option<String>,
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn typed_rows_read_the_columns_by_their_place() {
        let mut t = AnalysisTable::new(AnalysisKind::Compare, vec![]);
        let row: Vec<Value> = t
            .columns()
            .iter()
            .map(|(name, ty)| match (name.as_str(), ty) {
                ("row", _) => Value::text("region"),
                ("region", _) => Value::text("24"),
                ("value", _) => Value::Float(Some(0.25)),
                ("numerator", _) => Value::Int(Some(25)),
                ("significance", _) => Value::text("better"),
                (_, Text) => Value::Text(None),
                (_, Float) => Value::Float(None),
                (_, Int) => Value::Int(None),
                (_, Bool) => Value::Bool(None),
            })
            .collect();
        t.rows.push(row);
        let rows = t.compare_rows();
        assert_eq!((rows[0].region.as_str(), rows[0].value, rows[0].numerator, rows[0].significance.as_deref()), ("24", Some(0.25), Some(25), Some("better")));
        assert!(t.trend_rows().is_empty(), "a compare table has no trend rows");
    }

    use super::*;

    #[test]
    fn every_kind_round_trips_through_arrow() {
        for kind in AnalysisKind::ALL {
            let mut t = AnalysisTable::new(kind, vec![Breakdown::Sex]);
            let row: Vec<Value> = t
                .columns()
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| match ty {
                    Text => Value::text(format!("v{i}")),
                    Float => Value::Float(if i % 2 == 0 { Some(i as f64 / 3.0) } else { None }),
                    Int => Value::Int(Some(i as i64)),
                    Bool => Value::Bool(Some(i % 2 == 0)),
                })
                .collect();
            t.rows.push(row);
            for (i, (name, _)) in t.columns().iter().enumerate() {
                assert_eq!(t.index_of(name), Some(i), "{name}");
            }
            t.meta.push(("method".into(), "m".into()));
            let batch = t.to_record_batch().unwrap();
            let back = AnalysisTable::from_batches(&batch.schema(), &[batch.clone()]).unwrap();
            assert_eq!(back, t, "{}", kind.name());
            // A row of the wrong width or type is an error, not a panic.
            let mut bad = t.clone();
            bad.rows[0].pop();
            assert!(matches!(bad.to_record_batch(), Err(AnalysisTableError::Width { .. })));
            let mut bad = t.clone();
            bad.rows[0][0] = Value::Float(Some(1.0));
            assert!(matches!(bad.to_record_batch(), Err(AnalysisTableError::Type { .. })));
        }
    }

    #[test]
    fn keys_leave_out_the_analysis_dimension() {
        let spec = |kind, dimension: Option<&str>| AnalysisSpec { kind, against: Default::default(), dimension: dimension.map(str::to_string), units: None };
        let b = [Breakdown::Sex, Breakdown::Education, Breakdown::Year, Breakdown::AgeBand];
        assert_eq!(key_breakdowns(&spec(AnalysisKind::Trend, None), &b, false), [Breakdown::Sex, Breakdown::Education, Breakdown::AgeBand]);
        assert_eq!(key_breakdowns(&spec(AnalysisKind::Equity, Some("education")), &b, true), [Breakdown::Sex, Breakdown::Year]);
        assert_eq!(key_breakdowns(&spec(AnalysisKind::Compare, None), &b, false), b);
    }
}
