//! What the coordinator answers: a comparison of the regions, one row per region and cell,
//! the pooled rows and the regions that did not answer, with where the numbers came from.
//! This is the one wire contract of a comparison (documented in docs/protocol.md): the
//! coordinator writes it, the command-line tool, the benchmark and every other front door
//! read it with [`Comparison::from_batches`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::breakdown::Breakdown;
use crate::catalog::{Kind, Recipe};

/// How a region's part of a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    Ok,
    Timeout,
    Unavailable,
    /// The agent refused the requester (identity or role).
    Refused,
    /// The region's disclosure policy does not answer this question.
    PolicyRefused,
    Error,
}

impl RegionState {
    pub fn name(self) -> &'static str {
        match self {
            RegionState::Ok => "ok",
            RegionState::Timeout => "timeout",
            RegionState::Unavailable => "unavailable",
            RegionState::Refused => "refused",
            RegionState::PolicyRefused => "policy_refused",
            RegionState::Error => "error",
        }
    }
}

/// A region's status as reported with every answer (`norrsken.regions` metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionReport {
    pub region: String,
    pub name: String,
    pub status: RegionState,
    pub message: String,
    pub data_version: Option<String>,
    pub policy_version: Option<String>,
    pub cells: usize,
    pub cells_withheld: usize,
    pub cells_perturbed: usize,
    pub duration_ms: u64,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKind {
    Region,
    Pooled,
    /// A region that did not answer.
    Missing,
}

impl RowKind {
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Region => "region",
            RowKind::Pooled => "pooled",
            RowKind::Missing => "missing",
        }
    }
    pub fn parse(s: &str) -> Option<RowKind> {
        [RowKind::Region, RowKind::Pooled, RowKind::Missing].into_iter().find(|k| k.name() == s)
    }
}

/// An estimate and its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    pub kind: RowKind,
    pub region: String,
    pub region_name: String,
    pub labels: Vec<Option<String>>,
    pub category: Option<String>,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value_sum: Option<f64>,
    /// Standard deviation of the values (means and cost sums; not on the wire).
    pub value_sd: Option<f64>,
    pub estimate: Option<Estimate>,
    /// released / perturbed / suppressed, or the region's state for a missing region.
    pub status: String,
    pub reasons: Vec<String>,
    pub suggestion: Option<String>,
    /// True when a region asked did not answer, so this row lacks its part.
    pub partial: bool,
    /// The directly age-standardised value with its 95 % interval (Fay-Feuer gamma), in the
    /// value's unit, on an age total of a standardised question.
    pub standardised: Option<Estimate>,
    /// What that value was computed from (per person or person-year; not on the wire).
    pub std_parts: Option<crate::standard::Standardised>,
}

/// A distribution category: code and labels, in the recipe's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryLabel {
    pub code: String,
    pub en: String,
    pub sv: String,
}

/// Where a comparison came from (its `norrsken.*` schema metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonMeta {
    pub query_id: String,
    /// `id@version`.
    pub recipe: String,
    pub recipe_hash: String,
    pub catalog_hash: String,
    pub title: String,
    /// The Swedish title.
    pub title_sv: String,
    /// A distribution's categories in their order (empty otherwise).
    pub categories: Vec<CategoryLabel>,
    pub kind: Kind,
    /// `person` or `event`.
    pub unit: String,
    /// What the value column holds, in words.
    pub value: String,
    /// The value's axis label in Swedish and English ("Andel (%)", "Share (%)"), from the
    /// vocabulary.
    pub axis_sv: String,
    pub axis_en: String,
    /// The interval method.
    pub ci: String,
    /// What one unit is, in words (persons once in the period, events, inhabitant-years).
    pub semantics: String,
    pub perspective: String,
    pub period: String,
    pub pooled_label: String,
    pub partial: bool,
    pub dry_run: bool,
    pub cached: bool,
    /// The standard population of a standardised comparison (`esp2013`, `se2020`).
    pub standard: Option<String>,
    /// The last index date with complete follow-up when it falls inside the period: index
    /// events after it are left out of every cell (`YYYY-MM-DD`; the earliest of the
    /// regions' when their data end differently).
    pub followup_through: Option<String>,
    /// Pooled rows (and home-region rows in the population perspective) add the regions'
    /// parts, so a person or patient seen in several regions counts once in each: true for
    /// recipes counting persons or patients.
    pub counted_per_region: bool,
    /// The pooled rows (and the home regions' rows in the population perspective) are secure
    /// sums between the agents, released by the federation's policy on their totals
    /// (docs/secure-aggregation.md); false when they add the regions' released parts.
    pub secure_sum: bool,
}

impl ComparisonMeta {
    /// The description of a recipe's comparison; the caller fills in the query's fields.
    pub fn of_recipe(r: &Recipe) -> ComparisonMeta {
        let ci = match r.kind {
            Kind::Proportion => "95% Wilson score",
            Kind::Rate | Kind::Count => "95% exact Poisson",
            Kind::Mean => "95% Student t",
            Kind::CostSum => "95% Student t on the patients' costs",
        };
        let value = match r.kind {
            Kind::Proportion => "share (numerator / denominator)".to_string(),
            Kind::Rate => format!("events per {} inhabitant-years", r.rate_per.unwrap_or(1000)),
            Kind::Mean => format!("mean ({})", r.value_unit.clone().unwrap_or_default()),
            Kind::Count => "count".to_string(),
            Kind::CostSum => format!(
                "cost per patient ({}): total cost / distinct patients; numerator = contacts, denominator = patients, value_sum = total cost",
                r.value_unit.clone().unwrap_or_default()
            ),
        };
        ComparisonMeta {
            query_id: String::new(),
            recipe: r.key(),
            recipe_hash: r.hash.clone(),
            catalog_hash: String::new(),
            title: r.title.en.clone(),
            title_sv: r.title.sv.clone(),
            categories: r.categories.iter().map(|c| CategoryLabel { code: c.code.clone(), en: c.en.clone(), sv: c.sv.clone() }).collect(),
            kind: r.kind,
            unit: r.unit.name().to_string(),
            value,
            axis_sv: crate::vocabulary::value_label(r.kind, r.rate_per, r.value_unit.as_deref(), crate::vocabulary::Lang::Sv),
            axis_en: crate::vocabulary::value_label(r.kind, r.rate_per, r.value_unit.as_deref(), crate::vocabulary::Lang::En),
            ci: ci.to_string(),
            semantics: r.unit_semantics(1),
            perspective: String::new(),
            period: String::new(),
            pooled_label: String::new(),
            partial: false,
            dry_run: false,
            cached: false,
            standard: None,
            followup_through: None,
            counted_per_region: r.unit == crate::catalog::Unit::Person || r.kind == Kind::CostSum,
            secure_sum: false,
        }
    }
}

/// A whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub meta: ComparisonMeta,
    pub breakdowns: Vec<Breakdown>,
    /// Rows carry a `category` (distribution recipes).
    pub distribution: bool,
    pub rows: Vec<ComparisonRow>,
    pub regions: Vec<RegionReport>,
}

/// The Arrow schema of a comparison, without metadata.
pub fn comparison_schema(breakdowns: &[Breakdown], distribution: bool) -> Schema {
    let mut fields = vec![
        Field::new("row_kind", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("region_name", DataType::Utf8, false),
    ];
    fields.extend(breakdowns.iter().map(|b| Field::new(b.name(), DataType::Utf8, true)));
    if distribution {
        fields.push(Field::new("category", DataType::Utf8, true));
    }
    fields.extend([
        Field::new("numerator", DataType::Int64, true),
        Field::new("denominator", DataType::Int64, true),
        Field::new("value_sum", DataType::Float64, true),
        Field::new("value", DataType::Float64, true),
        Field::new("ci_lower", DataType::Float64, true),
        Field::new("ci_upper", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("suggestion", DataType::Utf8, true),
        Field::new("partial", DataType::Boolean, false),
        Field::new("std_value", DataType::Float64, true),
        Field::new("std_lower", DataType::Float64, true),
        Field::new("std_upper", DataType::Float64, true),
    ]);
    Schema::new(fields)
}

/// The columns every comparison has (the others are its breakdowns).
const FIXED: [&str; 17] = [
    "row_kind", "region", "region_name", "category", "numerator", "denominator", "value_sum", "value", "ci_lower", "ci_upper", "status",
    "reason", "suggestion", "partial", "std_value", "std_lower", "std_upper",
];

const PREFIX: &str = "norrsken.";

impl Comparison {
    /// A one-line quality declaration by SCB's components (relevance, accuracy, timeliness,
    /// comparability), from what the answer itself says: the recipe and perspective, how
    /// many cells were withheld and whether values are perturbed, the follow-up's edge and
    /// the data versions, and whether every region answered with the same recipe.
    pub fn quality_declaration(&self, lang: crate::vocabulary::Lang) -> String {
        let m = &self.meta;
        let sv = lang == crate::vocabulary::Lang::Sv;
        let answered: Vec<&RegionReport> = self.regions.iter().filter(|r| r.status == RegionState::Ok).collect();
        let cells: usize = answered.iter().map(|r| r.cells).sum();
        let withheld: usize = answered.iter().map(|r| r.cells_withheld).sum();
        let perturbed = self.rows.iter().any(|r| r.status == "perturbed");
        let perspective = match (m.perspective.as_str(), sv) {
            ("population", true) => "befolkningsperspektiv",
            ("population", false) => "population perspective",
            (_, true) => "vårdgivarperspektiv",
            (_, false) => "provider perspective",
        };
        let relevance = if sv {
            format!("Relevans: {} i {perspective}, {}", m.title_sv, crate::vocabulary::period_text(&m.period))
        } else {
            format!("Relevance: {} in the {perspective}, {}", m.title, crate::vocabulary::period_text(&m.period))
        };
        let accuracy = match (sv, perturbed) {
            (true, true) => format!("Tillförlitlighet: {withheld} av {cells} regionceller ej redovisade; redovisade värden brusade med cellnyckelmetoden (högst ±2)"),
            (true, false) => format!("Tillförlitlighet: {withheld} av {cells} regionceller ej redovisade; redovisade värden exakta"),
            (false, true) => format!("Accuracy: {withheld} of {cells} regional cells withheld; released values perturbed by the cell key method (at most ±2)"),
            (false, false) => format!("Accuracy: {withheld} of {cells} regional cells withheld; released values exact"),
        };
        let versions: Vec<String> = answered.iter().filter_map(|r| r.data_version.as_ref().map(|v| format!("{} {}", r.name, v.chars().take(8).collect::<String>()))).collect();
        let timeliness = match (&m.followup_through, sv) {
            (Some(d), true) => format!("Aktualitet: uppföljning komplett t.o.m. {d}; datalager {}", versions.join(", ")),
            (Some(d), false) => format!("Timeliness: follow-up complete through {d}; data {}", versions.join(", ")),
            (None, true) => format!("Aktualitet: datalager {}", versions.join(", ")),
            (None, false) => format!("Timeliness: data {}", versions.join(", ")),
        };
        let missing: Vec<&str> = self.regions.iter().filter(|r| r.status != RegionState::Ok).map(|r| r.name.as_str()).collect();
        let comparability = match (missing.is_empty(), sv) {
            (true, true) => format!("Jämförbarhet: samma receptversion i alla {} regioner", answered.len()),
            (true, false) => format!("Comparability: the same recipe version in all {} regions", answered.len()),
            (false, true) => format!("Jämförbarhet: ofullständigt, {} svarade inte", missing.join(", ")),
            (false, false) => format!("Comparability: partial, {} did not answer", missing.join(", ")),
        };
        format!("{relevance}. {accuracy}. {timeliness}. {comparability}.")
    }

    /// Schema metadata keys (`norrsken.*`).
    pub fn metadata(&self) -> HashMap<String, String> {
        let m = &self.meta;
        let mut md = HashMap::new();
        let mut put = |k: &str, v: String| {
            md.insert(format!("{PREFIX}{k}"), v);
        };
        put("query_id", m.query_id.clone());
        put("recipe", m.recipe.clone());
        put("recipe_hash", m.recipe_hash.clone());
        put("catalog_hash", m.catalog_hash.clone());
        put("title", m.title.clone());
        put("title_sv", m.title_sv.clone());
        put("categories", serde_json::to_string(&m.categories).unwrap_or_default());
        put("kind", m.kind.name().to_string());
        put("unit", m.unit.clone());
        put("value", m.value.clone());
        put("axis_sv", m.axis_sv.clone());
        put("axis_en", m.axis_en.clone());
        put("ci", m.ci.clone());
        put("semantics", m.semantics.clone());
        put("perspective", m.perspective.clone());
        put("period", m.period.clone());
        put("pooled_label", m.pooled_label.clone());
        put("partial", m.partial.to_string());
        put("dry_run", m.dry_run.to_string());
        put("cached", m.cached.to_string());
        if let Some(id) = &m.standard {
            put("standard", id.clone());
            if let Some(s) = crate::standard::standard(id) {
                put("standard_title", s.title.clone());
                put("standard_source", s.source.clone());
            }
            put(
                "standard_method",
                "direct age standardisation over the recipe's age bands, computed by each region's agent from its age bands as released (cell key method); 95% Fay-Feuer gamma interval".to_string(),
            );
        }
        if let Some(d) = &m.followup_through {
            put("followup_through", d.clone());
        }
        put("counted_per_region", m.counted_per_region.to_string());
        put("secure_sum", m.secure_sum.to_string());
        put("regions", serde_json::to_string(&self.regions).unwrap_or_default());
        put("declaration_sv", self.quality_declaration(crate::vocabulary::Lang::Sv));
        put("declaration_en", self.quality_declaration(crate::vocabulary::Lang::En));
        md
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(comparison_schema(&self.breakdowns, self.distribution).with_metadata(self.metadata()))
    }

    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let rows = &self.rows;
        let text = |f: &dyn Fn(&ComparisonRow) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
        let mut columns: Vec<ArrayRef> = vec![
            text(&|r| r.kind.name().to_string()),
            text(&|r| r.region.clone()),
            text(&|r| r.region_name.clone()),
        ];
        for i in 0..self.breakdowns.len() {
            columns.push(Arc::new(rows.iter().map(|r| r.labels.get(i).cloned().flatten()).collect::<StringArray>()));
        }
        if self.distribution {
            columns.push(Arc::new(rows.iter().map(|r| r.category.clone()).collect::<StringArray>()));
        }
        columns.push(Arc::new(rows.iter().map(|r| r.numerator).collect::<Int64Array>()));
        columns.push(Arc::new(rows.iter().map(|r| r.denominator).collect::<Int64Array>()));
        columns.push(Arc::new(rows.iter().map(|r| r.value_sum).collect::<Float64Array>()));
        let est = |f: fn(&Estimate) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(|r| r.estimate.as_ref().map(f).filter(|v| v.is_finite())).collect::<Float64Array>())
        };
        columns.push(est(|e| e.value));
        columns.push(est(|e| e.lower));
        columns.push(est(|e| e.upper));
        columns.push(text(&|r| r.status.clone()));
        columns.push(Arc::new(rows.iter().map(|r| (!r.reasons.is_empty()).then(|| r.reasons.join(","))).collect::<StringArray>()));
        columns.push(Arc::new(rows.iter().map(|r| r.suggestion.clone()).collect::<StringArray>()));
        columns.push(Arc::new(rows.iter().map(|r| Some(r.partial)).collect::<BooleanArray>()));
        let std = |f: fn(&Estimate) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(|r| r.standardised.as_ref().map(f).filter(|v| v.is_finite())).collect::<Float64Array>())
        };
        columns.push(std(|e| e.value));
        columns.push(std(|e| e.lower));
        columns.push(std(|e| e.upper));
        RecordBatch::try_new(self.schema(), columns)
    }

    /// Reads a comparison back from its schema (with metadata) and batches.
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Comparison, ComparisonError> {
        let md = schema.metadata();
        let get = |k: &str| md.get(&format!("{PREFIX}{k}")).cloned().ok_or_else(|| ComparisonError::MissingMetadata(format!("{PREFIX}{k}")));
        let flag = |k: &str| get(k).map(|v| v == "true");
        let kind_name = get("kind")?;
        let kind = crate::answer::kind_of(&kind_name).ok_or_else(|| ComparisonError::Value { column: "norrsken.kind".into(), value: kind_name.clone() })?;
        let meta = ComparisonMeta {
            query_id: get("query_id")?,
            recipe: get("recipe")?,
            recipe_hash: get("recipe_hash")?,
            catalog_hash: get("catalog_hash")?,
            title: get("title")?,
            title_sv: get("title_sv")?,
            categories: serde_json::from_str(&get("categories")?).map_err(|e| ComparisonError::Value { column: "norrsken.categories".into(), value: e.to_string() })?,
            kind,
            unit: get("unit")?,
            value: get("value")?,
            axis_sv: get("axis_sv").unwrap_or_default(),
            axis_en: get("axis_en").unwrap_or_default(),
            ci: get("ci")?,
            semantics: get("semantics")?,
            perspective: get("perspective")?,
            period: get("period")?,
            pooled_label: get("pooled_label")?,
            partial: flag("partial")?,
            dry_run: flag("dry_run")?,
            cached: flag("cached")?,
            standard: md.get(&format!("{PREFIX}standard")).cloned(),
            followup_through: md.get(&format!("{PREFIX}followup_through")).cloned(),
            counted_per_region: md.get(&format!("{PREFIX}counted_per_region")).is_some_and(|v| v == "true"),
            secure_sum: md.get(&format!("{PREFIX}secure_sum")).is_some_and(|v| v == "true"),
        };
        let regions: Vec<RegionReport> =
            serde_json::from_str(&get("regions")?).map_err(|e| ComparisonError::Value { column: "norrsken.regions".into(), value: e.to_string() })?;
        let mut breakdowns = Vec::new();
        for f in schema.fields() {
            if !FIXED.contains(&f.name().as_str()) {
                breakdowns.push(Breakdown::parse(f.name()).ok_or_else(|| ComparisonError::Value { column: f.name().clone(), value: "not a breakdown".into() })?);
            }
        }
        let distribution = schema.field_with_name("category").is_ok();
        let mut rows = Vec::new();
        for b in batches {
            let missing = |name: &str| ComparisonError::Column(name.to_string());
            let text = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| missing(name));
            let ints = |name: &str| b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| missing(name));
            let floats = |name: &str| b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Float64Type>()).ok_or_else(|| missing(name));
            let (kinds, region, names) = (text("row_kind")?, text("region")?, text("region_name")?);
            let labels: Vec<&StringArray> = breakdowns.iter().map(|x| text(x.name())).collect::<Result<_, _>>()?;
            let category = if distribution { Some(text("category")?) } else { None };
            let (num, den, sum) = (ints("numerator")?, ints("denominator")?, floats("value_sum")?);
            let (value, lo, hi) = (floats("value")?, floats("ci_lower")?, floats("ci_upper")?);
            let (status, reason, suggestion) = (text("status")?, text("reason")?, text("suggestion")?);
            let (std_value, std_lo, std_hi) = (floats("std_value")?, floats("std_lower")?, floats("std_upper")?);
            let partial = b.column_by_name("partial").and_then(|c| c.as_boolean_opt()).ok_or_else(|| missing("partial"))?;
            let s = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            let n = |a: &Int64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
            let f = |a: &Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
            for i in 0..b.num_rows() {
                let kind = RowKind::parse(kinds.value(i)).ok_or_else(|| ComparisonError::Value { column: "row_kind".into(), value: kinds.value(i).to_string() })?;
                let estimate = f(value, i).map(|v| Estimate { value: v, lower: f(lo, i).unwrap_or(f64::NAN), upper: f(hi, i).unwrap_or(f64::NAN) });
                rows.push(ComparisonRow {
                    kind,
                    region: region.value(i).to_string(),
                    region_name: names.value(i).to_string(),
                    labels: labels.iter().map(|l| s(l, i)).collect(),
                    category: category.and_then(|c| s(c, i)),
                    numerator: n(num, i),
                    denominator: n(den, i),
                    value_sum: f(sum, i),
                    value_sd: None,
                    estimate,
                    status: status.value(i).to_string(),
                    reasons: s(reason, i).map(|r| r.split(',').map(str::to_string).collect()).unwrap_or_default(),
                    suggestion: s(suggestion, i),
                    partial: !partial.is_null(i) && partial.value(i),
                    standardised: f(std_value, i).map(|v| Estimate { value: v, lower: f(std_lo, i).unwrap_or(f64::NAN), upper: f(std_hi, i).unwrap_or(f64::NAN) }),
                    std_parts: None,
                });
            }
        }
        Ok(Comparison { meta, breakdowns, distribution, rows, regions })
    }
}

/// A comparison that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComparisonError {
    #[error("the comparison lacks the metadata key '{0}'")]
    MissingMetadata(String),
    #[error("the comparison lacks the column '{0}' (or it has another type)")]
    Column(String),
    #[error("the comparison's '{column}' holds '{value}'")]
    Value { column: String, value: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn a_comparison_round_trips_through_arrow() {
        let catalog = Catalog::embedded();
        let recipe = catalog.get("stroke_reperfusion", None).unwrap();
        let mut meta = ComparisonMeta::of_recipe(recipe);
        meta.query_id = "q".into();
        meta.pooled_label = "Norra".into();
        meta.partial = true;
        let row = |kind, region: &str, status: &str| ComparisonRow {
            kind,
            region: region.into(),
            region_name: region.into(),
            labels: vec![Some("female".into())],
            category: None,
            numerator: Some(3),
            denominator: Some(10),
            value_sum: None,
            value_sd: None,
            estimate: Some(Estimate { value: 0.3, lower: 0.1, upper: 0.6 }),
            status: status.into(),
            reasons: vec!["perturbed".into()],
            suggestion: None,
            partial: false,
            standardised: Some(Estimate { value: 0.25, lower: 0.05, upper: 0.7 }),
            std_parts: None,
        };
        let c = Comparison {
            meta,
            breakdowns: vec![Breakdown::Sex],
            distribution: false,
            rows: vec![row(RowKind::Region, "25", "perturbed"), row(RowKind::Pooled, "Norra", "perturbed")],
            regions: vec![RegionReport {
                region: "25".into(),
                name: "Norrbotten".into(),
                status: RegionState::PolicyRefused,
                message: "no".into(),
                data_version: None,
                policy_version: None,
                cells: 0,
                cells_withheld: 0,
                cells_perturbed: 0,
                duration_ms: 3,
                attempts: 1,
            }],
        };
        let batch = c.to_record_batch().unwrap();
        let back = Comparison::from_batches(batch.schema().as_ref(), &[batch]).unwrap();
        assert_eq!(back.meta, c.meta);
        assert_eq!(back.rows, c.rows);
        assert_eq!(back.regions, c.regions);
        assert!(Comparison::from_batches(&Schema::empty(), &[]).is_err());
    }
}
