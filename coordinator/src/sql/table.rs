//! One SQL table per indicator, over the federation's released cells.
//!
//! DataFusion plans the statement; this table says which of its predicates it takes
//! (`supports_filters_pushdown`) and, when scanned, asks the federation one indicator
//! question: the breakdown columns the statement reads become the breakdowns, equality and
//! IN predicates on breakdown columns the filters, predicates on `year` the period.
//! Everything else (ORDER BY, expressions, joins, sums over the released cells) DataFusion
//! runs over the answer. No SQL is parsed here, and every cell still comes from the
//! agents' protected answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use norrsken_model::vocabulary;
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Recipe;
use norrsken_model::comparison::Comparison;
use norrsken_common::error::NodeError;
use norrsken_model::query::IndicatorQuery;
use norrsken_common::service::federation::Federation;

/// A question's error as DataFusion carries it (the statement fails with its kind).
pub fn asked(e: NodeError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The measure columns after the breakdowns (`reason` and `suggestion` as codes, `_sv` and
/// `_en` in words from the shared vocabulary).
const MEASURES: [(&str, DataType); 14] = [
    ("numerator", DataType::Int64),
    ("denominator", DataType::Int64),
    ("value_sum", DataType::Float64),
    ("value", DataType::Float64),
    ("ci_lower", DataType::Float64),
    ("ci_upper", DataType::Float64),
    ("status", DataType::Utf8),
    ("reason", DataType::Utf8),
    ("reason_sv", DataType::Utf8),
    ("reason_en", DataType::Utf8),
    ("suggestion", DataType::Utf8),
    ("suggestion_sv", DataType::Utf8),
    ("suggestion_en", DataType::Utf8),
    ("partial", DataType::Boolean),
];

/// The SQL schema of a recipe's table: row kind, region, its breakdowns (year as an
/// integer), the measures.
pub fn table_schema(recipe: &Recipe) -> SchemaRef {
    let mut fields = vec![
        Field::new("row_kind", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("region_name", DataType::Utf8, false),
    ];
    for b in &recipe.breakdowns {
        fields.push(Field::new(b.name(), if *b == Breakdown::Year { DataType::Int64 } else { DataType::Utf8 }, true));
    }
    if recipe.is_distribution() {
        fields.push(Field::new("category", DataType::Utf8, true));
    }
    // What the numbers are: on the table and on its `value` column (which a projection
    // keeps), as `norrsken.*` metadata: the recipe, titles, kind, counting unit, what the
    // value is, the interval's method and how units are counted.
    let m = norrsken_model::comparison::ComparisonMeta::of_recipe(recipe);
    let described: std::collections::HashMap<String, String> = [
        ("recipe", m.recipe),
        ("title", m.title),
        ("title_sv", m.title_sv),
        ("kind", m.kind.name().to_string()),
        ("unit", m.unit),
        ("value", m.value),
        ("ci", m.ci),
        ("semantics", m.semantics),
    ]
    .into_iter()
    .map(|(k, v)| (format!("norrsken.{k}"), v))
    .collect();
    fields.extend(MEASURES.iter().map(|(n, t)| {
        let f = Field::new(*n, t.clone(), true);
        if *n == "value" { f.with_metadata(described.clone()) } else { f }
    }));
    Arc::new(Schema::new(fields).with_metadata(described))
}

/// What a statement's predicates say in the recipe's vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predicates {
    pub filters: BTreeMap<Breakdown, Vec<String>>,
    /// Inclusive year bounds.
    pub from: Option<i32>,
    pub to: Option<i32>,
}

fn column_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_of(&c.expr),
        Expr::TryCast(c) => column_of(&c.expr),
        _ => None,
    }
}

/// A literal argument as text.
pub fn literal_text(e: &Expr) -> Option<String> {
    literal_of(e)
}

fn literal_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            ScalarValue::Int64(Some(x)) => Some(x.to_string()),
            ScalarValue::Int32(Some(x)) => Some(x.to_string()),
            ScalarValue::Int16(Some(x)) => Some(x.to_string()),
            ScalarValue::Int8(Some(x)) => Some(x.to_string()),
            ScalarValue::UInt64(Some(x)) => Some(x.to_string()),
            ScalarValue::UInt32(Some(x)) => Some(x.to_string()),
            _ => None,
        },
        Expr::Cast(c) => literal_of(&c.expr),
        Expr::TryCast(c) => literal_of(&c.expr),
        _ => None,
    }
}

/// How a predicate is taken: by the question, by the question and again by DataFusion, or
/// not at all (DataFusion filters the released cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Exact,
    Inexact,
    No,
}

/// Classifies one predicate and adds what it says to `p`; an error names the column and
/// the predicate the vocabulary cannot say.
pub fn take(recipe: &Recipe, e: &Expr, p: &mut Predicates) -> Result<Taken, String> {
    let breakdown_cols: Vec<String> = e.column_refs().iter().map(|c| c.name.clone()).filter(|n| Breakdown::parse(n).is_some_and(|b| recipe.allows(b))).collect();
    if breakdown_cols.is_empty() {
        return Ok(Taken::No);
    }
    let cannot = || {
        format!(
            "the predicate `{e}` on {} cannot be said in the recipe's vocabulary: use = or IN with the column's values{}",
            breakdown_cols.join(", "),
            if breakdown_cols.iter().any(|c| c == "year") { ", or =, IN, BETWEEN, <, <=, >, >= on year" } else { "" }
        )
    };
    let year = |v: &str| v.parse::<i32>().map_err(|_| format!("year {v:?} in `{e}` is not a year"));
    // The planner writes a short IN list as equalities joined by OR.
    if let Some((col, values)) = or_of_equalities(e) {
        let list = Expr::InList(datafusion::logical_expr::expr::InList {
            expr: Box::new(Expr::Column(datafusion::common::Column::from_name(col))),
            list: values.into_iter().map(|v| Expr::Literal(v, None)).collect(),
            negated: false,
        });
        return take(recipe, &list, p);
    }
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (col, lit, op) = match (column_of(left), literal_of(right), column_of(right), literal_of(left)) {
                (Some(c), Some(v), _, _) => (c, v, *op),
                (_, _, Some(c), Some(v)) => (c, v, op.swap().ok_or_else(cannot)?),
                _ => return Err(cannot()),
            };
            let b = Breakdown::parse(col).ok_or_else(cannot)?;
            match (b, op) {
                (Breakdown::Year, Operator::Eq) => {
                    let y = year(&lit)?;
                    p.from = Some(p.from.map_or(y, |f| f.max(y)));
                    p.to = Some(p.to.map_or(y, |t| t.min(y)));
                    Ok(Taken::Exact)
                }
                (Breakdown::Year, Operator::GtEq | Operator::Gt) => {
                    let y = year(&lit)? + i32::from(op == Operator::Gt);
                    p.from = Some(p.from.map_or(y, |f| f.max(y)));
                    Ok(Taken::Exact)
                }
                (Breakdown::Year, Operator::LtEq | Operator::Lt) => {
                    let y = year(&lit)? - i32::from(op == Operator::Lt);
                    p.to = Some(p.to.map_or(y, |t| t.min(y)));
                    Ok(Taken::Exact)
                }
                (b, Operator::Eq) if b.filterable() => {
                    add_filter(p, b, vec![lit]);
                    Ok(Taken::Exact)
                }
                _ => Err(cannot()),
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) if column_of(expr) == Some("year") => {
            let (lo, hi) = (literal_of(low).ok_or_else(cannot)?, literal_of(high).ok_or_else(cannot)?);
            let (lo, hi) = (year(&lo)?, year(&hi)?);
            p.from = Some(p.from.map_or(lo, |f| f.max(lo)));
            p.to = Some(p.to.map_or(hi, |t| t.min(hi)));
            Ok(Taken::Exact)
        }
        Expr::InList(list) if !list.negated => {
            let col = column_of(&list.expr).ok_or_else(cannot)?;
            let b = Breakdown::parse(col).ok_or_else(cannot)?;
            let values: Vec<String> = list.list.iter().map(literal_of).collect::<Option<_>>().ok_or_else(cannot)?;
            if b == Breakdown::Year {
                // The period spans the years named; DataFusion drops the years between.
                let years: Vec<i32> = values.iter().map(|v| year(v)).collect::<Result<_, _>>()?;
                let (lo, hi) = (*years.iter().min().ok_or_else(cannot)?, *years.iter().max().ok_or_else(cannot)?);
                p.from = Some(p.from.map_or(lo, |f| f.max(lo)));
                p.to = Some(p.to.map_or(hi, |t| t.min(hi)));
                return Ok(Taken::Inexact);
            }
            if !b.filterable() {
                return Err(cannot());
            }
            add_filter(p, b, values);
            Ok(Taken::Exact)
        }
        _ => Err(cannot()),
    }
}

/// `c = v1 OR c = v2 OR ...` on one column, as (column, values).
fn or_of_equalities(e: &Expr) -> Option<(String, Vec<ScalarValue>)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (a, mut va) = or_of_equalities(left)?;
            let (b, vb) = or_of_equalities(right)?;
            (a == b).then(|| {
                va.extend(vb);
                (a, va)
            })
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (l, Expr::Literal(v, _)) | (Expr::Literal(v, _), l) => column_of(l).map(|c| (c.to_string(), vec![v.clone()])),
            _ => None,
        },
        _ => None,
    }
}

fn add_filter(p: &mut Predicates, b: Breakdown, values: Vec<String>) {
    match p.filters.get_mut(&b) {
        // Two predicates on one column: both hold.
        Some(old) => old.retain(|v| values.contains(v)),
        None => {
            p.filters.insert(b, values);
        }
    }
}

/// The question a scan asks: breakdowns from the columns read, filters and period from the
/// predicates.
///
/// An open period (`year >= 2023`, `year <= 2022`) ends or starts with the years every
/// region's data covers (`data_years`), when they are known.
pub fn question(recipe: &Recipe, schema: &Schema, projection: Option<&Vec<usize>>, filters: &[Expr], data_years: Option<(i32, i32)>) -> Result<IndicatorQuery, String> {
    let mut p = Predicates::default();
    for f in filters {
        take(recipe, f, &mut p)?;
    }
    let read: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
    let breakdowns: Vec<String> = recipe
        .breakdowns
        .iter()
        .filter(|b| read.iter().any(|&i| schema.field(i).name() == b.name()))
        .map(|b| b.name().to_string())
        .collect();
    if let Some((first, last)) = data_years {
        match (p.from, p.to) {
            (Some(_), None) => p.to = Some(last),
            (None, Some(_)) => p.from = Some(first),
            _ => {}
        }
    }
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return Err(format!(
            "{}: say which years, e.g. WHERE year = 2024, WHERE year BETWEEN 2021 AND 2025 or WHERE year >= 2023 (the period of the question)",
            recipe.key()
        ));
    };
    if from > to {
        return Err(format!("{}: the year predicates leave no year ({from} > {to})", recipe.key()));
    }
    Ok(IndicatorQuery {
        indicator: recipe.id.clone(),
        version: Some(recipe.version),
        breakdowns,
        filters: p.filters.into_iter().map(|(b, v)| (b.name().to_string(), v)).collect(),
        period: if from == to { from.to_string() } else { format!("{from}..{to}") },
        ..Default::default()
    })
}

/// A statement's question that no region answered is the statement's error, of the
/// regions' own kind (every region's policy refused it, say for too many breakdowns; every
/// region timed out), never an empty table; a region that did not answer while others did
/// shows as the `partial` rows.
pub fn no_region_answered(recipe: &Recipe, c: &Comparison) -> Option<NodeError> {
    use norrsken_model::comparison::RegionState;
    if c.regions.is_empty() || c.regions.iter().any(|r| r.status == RegionState::Ok) {
        return None;
    }
    let said: Vec<String> = c.regions.iter().map(|r| format!("{} ({}): {}", r.name, r.status.name(), r.message)).collect();
    let message = norrsken_model::text::bound(&format!("no region answered {}: {}", recipe.key(), said.join("; ")));
    Some(if c.regions.iter().all(|r| r.status == RegionState::PolicyRefused) {
        NodeError::PolicyRefused(message)
    } else if c.regions.iter().all(|r| r.status == RegionState::Timeout) {
        NodeError::Timeout(message)
    } else if c.regions.iter().all(|r| r.status == RegionState::Refused) {
        NodeError::PermissionDenied(message)
    } else {
        NodeError::NotReady(message)
    })
}

/// The released cells of a comparison as rows of the recipe's table.
pub fn to_table(recipe: &Recipe, schema: &SchemaRef, c: &Comparison) -> Result<RecordBatch, String> {
    // A region that did not answer is a row of its own (row_kind `missing`, its state as
    // the status, why in the suggestion, partial), not a region that vanished: one per year
    // of the question's period, so that the statement's year predicates keep it.
    let years: Vec<i64> = norrsken_model::period::Period::parse(&c.meta.period).map(|p| (p.first_year()..=p.last_year()).map(i64::from).collect()).unwrap_or_default();
    let year_at = c.breakdowns.iter().position(|b| *b == Breakdown::Year);
    let rows: Vec<(&norrsken_model::comparison::ComparisonRow, Option<i64>)> = c
        .rows
        .iter()
        .flat_map(|r| {
            if r.kind == norrsken_model::comparison::RowKind::Missing {
                years.iter().map(|y| (r, Some(*y))).collect::<Vec<_>>()
            } else {
                let year = year_at.and_then(|i| r.labels.get(i)?.as_deref()?.parse::<i64>().ok());
                vec![(r, year)]
            }
        })
        .collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let label = |r: &norrsken_model::comparison::ComparisonRow| -> Option<String> {
            let i = c.breakdowns.iter().position(|b| b.name() == name)?;
            r.labels.get(i).cloned().flatten()
        };
        let array: ArrayRef = match name {
            "row_kind" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(r, _)| r.kind.name()))),
            "region" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(r, _)| r.region.as_str()))),
            "region_name" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(r, _)| r.region_name.as_str()))),
            "category" => Arc::new(rows.iter().map(|(r, _)| r.category.clone()).collect::<StringArray>()),
            "numerator" => Arc::new(rows.iter().map(|(r, _)| r.numerator).collect::<Int64Array>()),
            "denominator" => Arc::new(rows.iter().map(|(r, _)| r.denominator).collect::<Int64Array>()),
            "value_sum" => Arc::new(rows.iter().map(|(r, _)| r.value_sum).collect::<Float64Array>()),
            "value" => Arc::new(rows.iter().map(|(r, _)| r.estimate.map(|e| e.value).filter(|v| v.is_finite())).collect::<Float64Array>()),
            "ci_lower" => Arc::new(rows.iter().map(|(r, _)| r.estimate.map(|e| e.lower).filter(|v| v.is_finite())).collect::<Float64Array>()),
            "ci_upper" => Arc::new(rows.iter().map(|(r, _)| r.estimate.map(|e| e.upper).filter(|v| v.is_finite())).collect::<Float64Array>()),
            "status" => Arc::new(rows.iter().map(|(r, _)| Some(r.status.clone())).collect::<StringArray>()),
            "reason" => Arc::new(rows.iter().map(|(r, _)| (!r.reasons.is_empty()).then(|| r.reasons.join(","))).collect::<StringArray>()),
            "reason_sv" | "reason_en" => {
                let lang = if name == "reason_sv" { vocabulary::Lang::Sv } else { vocabulary::Lang::En };
                Arc::new(rows.iter().map(|(r, _)| (!r.reasons.is_empty()).then(|| vocabulary::reasons_text(&r.reasons, lang))).collect::<StringArray>())
            }
            "suggestion" => Arc::new(rows.iter().map(|(r, _)| r.suggestion.clone()).collect::<StringArray>()),
            "suggestion_sv" | "suggestion_en" => {
                let lang = if name == "suggestion_sv" { vocabulary::Lang::Sv } else { vocabulary::Lang::En };
                Arc::new(rows.iter().map(|(r, _)| r.suggestion.as_deref().map(|s| vocabulary::suggestion_text(s, lang))).collect::<StringArray>())
            }
            "partial" => Arc::new(rows.iter().map(|(r, _)| Some(r.partial || r.kind == norrsken_model::comparison::RowKind::Missing)).collect::<BooleanArray>()),
            "year" => Arc::new(rows.iter().map(|(_, year)| *year).collect::<Int64Array>()),
            _ => Arc::new(rows.iter().map(|(r, _)| label(r)).collect::<StringArray>()),
        };
        columns.push(array);
    }
    let _ = recipe;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// An indicator as a table.
#[derive(Debug)]
pub struct IndicatorTable {
    pub recipe: Arc<Recipe>,
    pub schema: SchemaRef,
    pub asker: Arc<dyn Federation>,
}

impl IndicatorTable {
    pub fn new(recipe: Arc<Recipe>, asker: Arc<dyn Federation>) -> IndicatorTable {
        IndicatorTable { schema: table_schema(&recipe), recipe, asker }
    }
}

#[tonic::async_trait]
impl TableProvider for IndicatorTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        let mut p = Predicates::default();
        filters
            .iter()
            .map(|f| match take(&self.recipe, f, &mut p) {
                Ok(Taken::Exact) => Ok(TableProviderFilterPushDown::Exact),
                Ok(Taken::Inexact) => Ok(TableProviderFilterPushDown::Inexact),
                Ok(Taken::No) => Ok(TableProviderFilterPushDown::Unsupported),
                Err(m) => Err(DataFusionError::Plan(m)),
            })
            .collect()
    }

    async fn scan(&self, _state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], _limit: Option<usize>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let q = question(&self.recipe, &self.schema, projection, filters, self.asker.data_years()).map_err(DataFusionError::Plan)?;
        let comparison = self
            .asker
            .ask(q)
            .await
            .map_err(asked)?
            .comparison()
            .ok_or_else(|| DataFusionError::Internal("an indicator question answered with an analysis".into()))?;
        if let Some(e) = no_region_answered(&self.recipe, &comparison) {
            return Err(asked(e));
        }
        let batch = to_table(&self.recipe, &self.schema, &comparison).map_err(DataFusionError::Execution)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use norrsken_model::catalog::Catalog;

    #[test]
    fn predicates_become_filters_and_period_or_name_what_cannot_be_said() {
        let catalog = Catalog::embedded();
        let recipe = catalog.get("stroke_reperfusion", None).unwrap();
        let schema = table_schema(recipe);
        let filters = vec![col("kommun").eq(lit("2480")), col("year").between(lit(2021i64), lit(2023i64)), col("sex").in_list(vec![lit("female"), lit("male")], false), col("value").gt(lit(0.2))];
        let proj: Vec<usize> = ["region", "sex", "value"].iter().map(|n| schema.index_of(n).unwrap()).collect();
        let q = question(recipe, &schema, Some(&proj), &filters, None).unwrap();
        assert_eq!(q.breakdowns, ["sex"]);
        assert_eq!(q.period, "2021..2023");
        assert_eq!(q.filters["kommun"], ["2480"]);
        assert_eq!(q.filters["sex"], ["female", "male"]);
        let mut p = Predicates::default();
        assert_eq!(take(recipe, &col("value").gt(lit(0.2)), &mut p), Ok(Taken::No));
        assert_eq!(take(recipe, &col("year").in_list(vec![lit(2021i64), lit(2024i64)], false), &mut p), Ok(Taken::Inexact));
        assert_eq!((p.from, p.to), (Some(2021), Some(2024)));
        // A short IN list as the planner writes it.
        let mut p = Predicates::default();
        assert_eq!(take(recipe, &col("sex").eq(lit("female")).or(col("sex").eq(lit("male"))), &mut p), Ok(Taken::Exact));
        assert_eq!(p.filters[&Breakdown::Sex], ["female", "male"]);
        let err = take(recipe, &col("age_band").gt(lit("65")), &mut Predicates::default()).unwrap_err();
        assert!(err.contains("age_band") && err.contains("age_band > Utf8(\"65\")"), "{err}");
        let err = question(recipe, &schema, None, &[], None).unwrap_err();
        assert!(err.contains("WHERE year"), "{err}");
        let err = question(recipe, &schema, None, &[col("year").gt_eq(lit(2025i64)), col("year").lt(lit(2024i64))], None).unwrap_err();
        assert!(err.contains("no year"), "{err}");
        // An open period is completed with the years the regions' data covers, when known.
        let open = [col("year").gt_eq(lit(2023i64))];
        assert!(question(recipe, &schema, None, &open, None).unwrap_err().contains("year >= 2023"));
        assert_eq!(question(recipe, &schema, None, &open, Some((2019, 2025))).unwrap().period, "2023..2025");
        assert_eq!(question(recipe, &schema, None, &[col("year").lt(lit(2021i64))], Some((2019, 2025))).unwrap().period, "2019..2020");
        assert_eq!(question(recipe, &schema, None, &[], Some((2019, 2025))).unwrap_err().contains("WHERE year"), true, "no year at all is still an error");
    }
}
