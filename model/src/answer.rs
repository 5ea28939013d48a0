//! What an agent answers: released cells with their disclosure status, and the Arrow form
//! they travel in (documented in docs/protocol.md).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::breakdown::Breakdown;
use crate::standard::Standardised;
use crate::catalog::Kind;
use crate::query::Perspective;

/// Whether a cell's values were released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Released exactly.
    Released,
    /// Released with the cell key method's deterministic noise (or rounding).
    Perturbed,
    /// Withheld: no values.
    Suppressed,
}

impl CellStatus {
    pub fn name(self) -> &'static str {
        match self {
            CellStatus::Released => "released",
            CellStatus::Perturbed => "perturbed",
            CellStatus::Suppressed => "suppressed",
        }
    }
    pub fn parse(s: &str) -> Option<CellStatus> {
        match s {
            "released" => Some(CellStatus::Released),
            "perturbed" => Some(CellStatus::Perturbed),
            "suppressed" => Some(CellStatus::Suppressed),
            _ => None,
        }
    }
}

/// Why a cell was withheld or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 1..k-1 persons in the numerator or denominator.
    BelowMinCell,
    /// Denominator minus numerator is 1..k-1 persons.
    Complement,
    /// Withheld so that another withheld cell cannot be recovered from margins.
    Secondary,
    /// One or two persons dominate a cost sum.
    Dominance,
    /// Released with cell key perturbation.
    Perturbed,
    /// Rounded to the policy's rounding base.
    Rounded,
    /// A pooled row withheld because a region withheld the same cell.
    PooledProtection,
    /// A true zero withheld by policy.
    Zero,
    /// The difference between this cell and a larger cell it lies in (its margin, the year
    /// around its quarter, a longer period, the group around one value) would hold 1..k-1
    /// persons: releasing both would give that small group away.
    Implied,
    /// A period of several years, or a group of several values, one of whose years or values
    /// is withheld.
    PartWithheld,
    /// The recipe's outcome window (e.g. 30 days) reaches past the data's last date for
    /// some of the cell's units: withheld, or released with this flag when the policy says so.
    IncompleteFollowup,
    /// An age total released without its standardised value: too few events in it to
    /// standardise (the policy's `standardisation.min_events`), or an age band withheld.
    NotStandardised,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::BelowMinCell => "below_min_cell",
            Reason::Complement => "complement",
            Reason::Secondary => "secondary",
            Reason::Dominance => "dominance",
            Reason::Perturbed => "perturbed",
            Reason::Rounded => "rounded",
            Reason::PooledProtection => "pooled_protection",
            Reason::Zero => "zero",
            Reason::Implied => "implied",
            Reason::PartWithheld => "part_withheld",
            Reason::IncompleteFollowup => "incomplete_followup",
            Reason::NotStandardised => "not_standardised",
        }
    }
    pub const ALL: [Reason; 12] = [
        Reason::BelowMinCell,
        Reason::Complement,
        Reason::Secondary,
        Reason::Dominance,
        Reason::Perturbed,
        Reason::Rounded,
        Reason::PooledProtection,
        Reason::Zero,
        Reason::Implied,
        Reason::PartWithheld,
        Reason::IncompleteFollowup,
        Reason::NotStandardised,
    ];
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// One cell as it leaves an agent. For each kind the components are (cost sums: `numerator`
/// contacts, `denominator` distinct patients, `value_sum` the total cost, `value_sd` the
/// spread of cost per patient):
/// proportion: `numerator`, `denominator` (units); rate: `numerator` (events), `denominator`
/// (inhabitant-years); mean and cost sum: `denominator` (n), `value_sum`, `value_sd`
/// (standard deviation of the values);
/// count: `numerator`. Withheld cells have no values. Under the cell key method every
/// count and sum is perturbed; the sum of squares never leaves the agent: means and cost
/// sums carry the cells' (perturbed, rounded) standard deviation `value_sd` instead.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedCell {
    /// County code.
    pub region: String,
    pub labels: Vec<String>,
    pub category: Option<String>,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value_sum: Option<f64>,
    pub value_sd: Option<f64>,
    pub status: CellStatus,
    pub reasons: Vec<Reason>,
    /// For a withheld cell: how to ask so that it can be released.
    pub suggestion: Option<String>,
    /// On an age total of a standardised question: the directly standardised value, from
    /// the age bands' perturbed counts (see docs/analysis.md).
    pub standardised: Option<Standardised>,
    /// The breakdowns of the question whose dropping gives a coarser cell this agent
    /// releases (the cell with that label replaced by its total), in the order suggestions
    /// try them: what lets the coordinator make a pooled row's suggestion true.
    pub released_without: Vec<Breakdown>,
}

impl ReleasedCell {
    /// A withheld cell: no values, its reasons and a suggestion.
    pub fn withheld(region: &str, labels: &[String], category: Option<String>, reasons: Vec<Reason>, suggestion: Option<String>) -> ReleasedCell {
        ReleasedCell {
            region: region.to_string(),
            labels: labels.to_vec(),
            category,
            numerator: None,
            denominator: None,
            value_sum: None,
            value_sd: None,
            status: CellStatus::Suppressed,
            reasons,
            suggestion,
            standardised: None,
            released_without: Vec::new(),
        }
    }

    pub fn reasons_text(&self) -> Option<String> {
        (!self.reasons.is_empty()).then(|| self.reasons.iter().map(|r| r.name()).collect::<Vec<_>>().join(","))
    }
}

/// Where an answer came from; carried as Arrow schema metadata (`norrsken.*` keys).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnswerMeta {
    pub query_id: String,
    /// The answering agent's region (county code).
    pub region: String,
    pub data_version: String,
    pub policy_version: String,
    /// `id@version`.
    pub recipe: String,
    pub recipe_hash: String,
    pub catalog_hash: String,
    pub kind: String,
    pub perspective: String,
    pub period: String,
    /// The minimum cell size that was applied.
    pub min_cell_size: u32,
    pub dry_run: bool,
    /// The last index date with complete follow-up, when it falls inside the period: index
    /// events after it are left out of the cells (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followup_through: Option<String>,
}

const META_PREFIX: &str = "norrsken.";

impl AnswerMeta {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = HashMap::new();
        if let Some(obj) = value.as_object() {
            for (k, v) in obj {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(format!("{META_PREFIX}{k}"), text);
            }
        }
        out
    }

    pub fn from_metadata(md: &HashMap<String, String>) -> Result<AnswerMeta, AnswerError> {
        let get = |k: &str| md.get(&format!("{META_PREFIX}{k}")).cloned().ok_or_else(|| AnswerError::MissingMetadata(format!("{META_PREFIX}{k}")));
        Ok(AnswerMeta {
            query_id: get("query_id")?,
            region: get("region")?,
            data_version: get("data_version")?,
            policy_version: get("policy_version")?,
            recipe: get("recipe")?,
            recipe_hash: get("recipe_hash")?,
            catalog_hash: get("catalog_hash")?,
            kind: get("kind")?,
            perspective: get("perspective")?,
            period: get("period")?,
            min_cell_size: get("min_cell_size")?.parse().map_err(|e: std::num::ParseIntError| AnswerError::Value { column: "norrsken.min_cell_size".into(), value: e.to_string() })?,
            dry_run: get("dry_run")? == "true",
            followup_through: md.get(&format!("{META_PREFIX}followup_through")).cloned(),
        })
    }
}

/// An agent's whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionAnswer {
    pub meta: AnswerMeta,
    pub breakdowns: Vec<Breakdown>,
    pub distribution: bool,
    pub cells: Vec<ReleasedCell>,
}

/// The Arrow schema of an agent answer (without metadata).
pub fn agent_answer_schema(breakdowns: &[Breakdown], distribution: bool) -> Schema {
    let mut fields = vec![Field::new("region", DataType::Utf8, false)];
    fields.extend(breakdowns.iter().map(|b| Field::new(b.name(), DataType::Utf8, false)));
    if distribution {
        fields.push(Field::new("category", DataType::Utf8, false));
    }
    fields.extend([
        Field::new("numerator", DataType::Int64, true),
        Field::new("denominator", DataType::Int64, true),
        Field::new("value_sum", DataType::Float64, true),
        Field::new("value_sd", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("suggestion", DataType::Utf8, true),
        Field::new("std_value", DataType::Float64, true),
        Field::new("std_var", DataType::Float64, true),
        Field::new("std_wmax", DataType::Float64, true),
        Field::new("std_events", DataType::Float64, true),
        Field::new("released_without", DataType::Utf8, true),
    ]);
    Schema::new(fields)
}

impl RegionAnswer {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(agent_answer_schema(&self.breakdowns, self.distribution).with_metadata(self.meta.to_metadata()))
    }

    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let cells = &self.cells;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.region.as_str())))];
        for i in 0..self.breakdowns.len() {
            columns.push(Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.labels.get(i).map_or("", |s| s.as_str())))));
        }
        if self.distribution {
            columns.push(Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.category.as_deref().unwrap_or("")))));
        }
        columns.push(Arc::new(cells.iter().map(|c| c.numerator).collect::<Int64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.denominator).collect::<Int64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.value_sum).collect::<Float64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.value_sd).collect::<Float64Array>()));
        columns.push(Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.status.name()))));
        columns.push(Arc::new(cells.iter().map(|c| c.reasons_text()).collect::<StringArray>()));
        columns.push(Arc::new(cells.iter().map(|c| c.suggestion.clone()).collect::<StringArray>()));
        columns.push(Arc::new(cells.iter().map(|c| c.standardised.map(|s| s.value)).collect::<Float64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.standardised.map(|s| s.var)).collect::<Float64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.standardised.map(|s| s.wmax)).collect::<Float64Array>()));
        columns.push(Arc::new(cells.iter().map(|c| c.standardised.map(|s| s.events)).collect::<Float64Array>()));
        columns.push(Arc::new(
            cells.iter().map(|c| (!c.released_without.is_empty()).then(|| c.released_without.iter().map(|b| b.name()).collect::<Vec<_>>().join(","))).collect::<StringArray>(),
        ));
        RecordBatch::try_new(self.schema(), columns)
    }

    /// Reads an answer back from its batches (the schema's metadata gives `meta`).
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<RegionAnswer, AnswerError> {
        let meta = AnswerMeta::from_metadata(schema.metadata())?;
        let fixed = ["region", "category", "numerator", "denominator", "value_sum", "value_sd", "status", "reason", "suggestion", "std_value", "std_var", "std_wmax", "std_events", "released_without"];
        let mut breakdowns = Vec::new();
        for f in schema.fields() {
            if fixed.contains(&f.name().as_str()) {
                continue;
            }
            breakdowns.push(Breakdown::parse(f.name()).ok_or_else(|| AnswerError::Value { column: f.name().clone(), value: "an unexpected column".into() })?);
        }
        let distribution = schema.field_with_name("category").is_ok();
        let mut cells = Vec::new();
        for b in batches {
            let missing = |name: &str| AnswerError::Column(name.to_string());
            let text = |name: &str| -> Result<&StringArray, AnswerError> { b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| missing(name)) };
            let ints = |name: &str| -> Result<&Int64Array, AnswerError> { b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| missing(name)) };
            let floats = |name: &str| -> Result<&Float64Array, AnswerError> { b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Float64Type>()).ok_or_else(|| missing(name)) };
            let region = text("region")?;
            let labels: Vec<&StringArray> = breakdowns.iter().map(|bd| text(bd.name())).collect::<Result<_, _>>()?;
            let category = if distribution { Some(text("category")?) } else { None };
            let (num, den) = (ints("numerator")?, ints("denominator")?);
            let (sum, sq) = (floats("value_sum")?, floats("value_sd")?);
            let (status, reason, suggestion) = (text("status")?, text("reason")?, text("suggestion")?);
            let std = [floats("std_value")?, floats("std_var")?, floats("std_wmax")?, floats("std_events")?];
            // Absent in answers of agents older than the column: no coarser cell is known.
            let without = b.column_by_name("released_without").and_then(|c| c.as_string_opt::<i32>());
            let opt_i = |a: &Int64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
            let opt_f = |a: &Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
            let opt_s = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            for i in 0..b.num_rows() {
                let st = CellStatus::parse(status.value(i)).ok_or_else(|| AnswerError::Value { column: "status".into(), value: status.value(i).to_string() })?;
                let reasons = match opt_s(reason, i) {
                    Some(r) if !r.is_empty() => {
                        r.split(',').map(|x| Reason::parse(x).ok_or_else(|| AnswerError::Value { column: "reason".into(), value: x.to_string() })).collect::<Result<Vec<_>, _>>()?
                    }
                    _ => Vec::new(),
                };
                cells.push(ReleasedCell {
                    region: region.value(i).to_string(),
                    labels: labels.iter().map(|l| l.value(i).to_string()).collect(),
                    category: category.map(|c| c.value(i).to_string()),
                    numerator: opt_i(num, i),
                    denominator: opt_i(den, i),
                    value_sum: opt_f(sum, i),
                    value_sd: opt_f(sq, i),
                    status: st,
                    reasons,
                    suggestion: opt_s(suggestion, i),
                    standardised: match std.map(|a| opt_f(a, i)) {
                        [Some(value), Some(var), Some(wmax), Some(events)] => Some(Standardised { value, var, wmax, events }),
                        _ => None,
                    },
                    released_without: match without.and_then(|a| opt_s(a, i)) {
                        Some(list) => list
                            .split(',')
                            .filter(|x| !x.is_empty())
                            .map(|x| Breakdown::parse(x).ok_or_else(|| AnswerError::Value { column: "released_without".into(), value: x.to_string() }))
                            .collect::<Result<Vec<_>, _>>()?,
                        None => Vec::new(),
                    },
                });
            }
        }
        Ok(RegionAnswer { meta, breakdowns, distribution, cells })
    }
}

/// An agent answer that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer lacks the metadata key '{0}'")]
    MissingMetadata(String),
    #[error("the answer lacks the column '{0}' (or it has another type)")]
    Column(String),
    #[error("the answer's '{column}' holds {value}")]
    Value { column: String, value: String },
}

/// Parses the perspective name used in metadata.
pub fn perspective_of(name: &str) -> Perspective {
    if name == "population" {
        Perspective::Population
    } else {
        Perspective::Provider
    }
}

/// Parses a kind name used in metadata.
pub fn kind_of(name: &str) -> Option<Kind> {
    [Kind::Proportion, Kind::Rate, Kind::Mean, Kind::Count, Kind::CostSum].into_iter().find(|k| k.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_round_trips_through_arrow() {
        let answer = RegionAnswer {
            meta: AnswerMeta { query_id: "q1".into(), region: "25".into(), min_cell_size: 5, kind: "proportion".into(), ..Default::default() },
            breakdowns: vec![Breakdown::Sex],
            distribution: false,
            cells: vec![
                ReleasedCell {
                    region: "25".into(),
                    labels: vec!["female".into()],
                    category: None,
                    numerator: Some(12),
                    denominator: Some(40),
                    value_sum: None,
                    value_sd: None,
                    status: CellStatus::Perturbed,
                    reasons: vec![Reason::Perturbed],
                    suggestion: None,
                    standardised: None,
                    released_without: vec![Breakdown::Sex],
                },
                ReleasedCell {
                    region: "25".into(),
                    labels: vec!["male".into()],
                    category: None,
                    numerator: None,
                    denominator: None,
                    value_sum: None,
                    value_sd: None,
                    status: CellStatus::Suppressed,
                    reasons: vec![Reason::BelowMinCell, Reason::Complement],
                    suggestion: Some("drop sex".into()),
                    standardised: None,
                    released_without: Vec::new(),
                },
            ],
        };
        let batch = answer.to_record_batch().unwrap();
        let back = RegionAnswer::from_batches(batch.schema().as_ref(), &[batch.clone()]).unwrap();
        assert_eq!(back, answer);
    }
}
