//! The regional report: for one region, a set of indicators and a period, each indicator's
//! comparison with the other regions (significance), its target, its yearly trend, and a
//! generated summary of the region's strengths and weaknesses.
//!
//! Built from ordinary indicator questions (a `compare` analysis against the other regions
//! and a `trend` analysis per indicator) asked through the one typed [`Federation`]
//! interface — the coordinator's query path in its process for the web app, a Flight
//! connection for `norrsken report` — so the report is
//! protected, merged and audited exactly as any other answer. The report itself is plain
//! data ([`Report`]); [`crate::export`] renders it as PDF and xlsx, the web app as a page.
//!
//! The analyst's own table ([`OwnTable`], an uploaded CSV) is carried into the report as its
//! own source; it is never part of a question and never reaches an agent.

pub mod national;
pub mod summary;

use std::collections::{BTreeMap, BTreeSet};
use norrsken_common::error::ErrorKind;
use norrsken_common::service::federation::Federation;
use norrsken_model::analysis::AnalysisTable;
use norrsken_model::catalog::Kind;
use norrsken_model::comparison::{RegionReport, RegionState};
use norrsken_common::error::NodeError;
use norrsken_model::geography::NORRA;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator, IndicatorQuery, QueryOptions};
use serde::{Deserialize, Serialize};

pub use national::NationalValue;
pub use summary::summarise;

/// The most indicators one report asks for (each costs two federated questions).
pub const MAX_INDICATORS: usize = 40;
/// Limits of the analyst's own table.
pub const MAX_OWN_ROWS: usize = 500;
pub const MAX_OWN_COLUMNS: usize = 20;
pub const MAX_OWN_CELL: usize = 200;

/// Report language: the vocabulary's (Swedish by default).
pub use norrsken_model::vocabulary::Lang;

/// What the analyst asks for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The region: county code (`24`), or its name.
    pub region: String,
    /// Indicator ids; empty when `area` chooses them.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// A programme area (Swedish or English name, case-insensitive): every indicator in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// The period, e.g. `2021..2025` (the trend needs three or more years).
    pub period: String,
    #[serde(default)]
    pub lang: Lang,
    /// The analyst's own aggregates, shown as their own source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<OwnTable>,
    /// A comment on the whole report (free text, shown under the summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Comments per indicator id (free text, shown in that indicator's section).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub comments: BTreeMap<String, String>,
    /// Published comparison values (Riket, other regions) from a comparator file, shown as
    /// their own rows, never mixed into pooled values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub national: Vec<NationalValue>,
}

/// The longest comment a report takes.
pub const MAX_COMMENT: usize = 2000;

/// An analyst's own table of aggregates (from an uploaded CSV).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnTable {
    /// What the table is (the file name by default).
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl OwnTable {
    /// Reads a CSV (first line = column names; comma or semicolon separated, as Swedish
    /// spreadsheets write it), naming the line and the problem when it cannot.
    pub fn from_csv(title: &str, text: &str) -> Result<OwnTable, ReportError> {
        let first = text.lines().next().unwrap_or("");
        let delimiter = if first.matches(';').count() > first.matches(',').count() { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(false).from_reader(text.as_bytes());
        let bad = |line: usize, reason: String| ReportError::OwnTable(format!("{title}, line {line}: {reason}"));
        let columns: Vec<String> = reader.headers().map_err(|e| bad(1, e.to_string()))?.iter().map(|s| s.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(i + 2, e.to_string()))?;
            rows.push(record.iter().map(|s| s.trim().to_string()).collect());
        }
        let table = OwnTable { title: title.to_string(), columns, rows };
        table.check()?;
        Ok(table)
    }

    /// Checks the table's shape and size.
    pub fn check(&self) -> Result<(), ReportError> {
        let bad = |reason: String| Err(ReportError::OwnTable(format!("{}: {reason}", norrsken_model::text::quote(&self.title))));
        if self.columns.is_empty() || self.columns.iter().all(|c| c.is_empty()) {
            return bad("no column names on the first line".into());
        }
        if self.columns.len() > MAX_OWN_COLUMNS {
            return bad(format!("{} columns; at most {MAX_OWN_COLUMNS}", self.columns.len()));
        }
        if self.rows.len() > MAX_OWN_ROWS {
            return bad(format!("{} rows; at most {MAX_OWN_ROWS}", self.rows.len()));
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != self.columns.len() {
                return bad(format!("row {} has {} values, the header {}", i + 1, row.len(), self.columns.len()));
            }
            if let Some(cell) = row.iter().find(|c| c.chars().count() > MAX_OWN_CELL) {
                return bad(format!("row {}: a value of {} characters; at most {MAX_OWN_CELL}", i + 1, cell.chars().count()));
            }
        }
        Ok(())
    }
}

/// Why a report cannot be made. Every variant names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("unknown region {}; the regions are {known}", norrsken_model::text::quote(.region))]
    UnknownRegion { region: String, known: String },
    #[error("unknown programme area {}; the areas are {known}", norrsken_model::text::quote(.area))]
    UnknownArea { area: String, known: String },
    #[error("unknown indicator {}", norrsken_model::text::quote(.0))]
    UnknownIndicator(String),
    #[error("no indicators: name them, or a programme area")]
    NoIndicators,
    #[error("{0} indicators; a report takes at most {MAX_INDICATORS}")]
    TooManyIndicators(usize),
    #[error("own table {0}")]
    OwnTable(String),
    #[error("comment {0}")]
    Comment(String),
    #[error("comparator file {0}")]
    National(String),
    #[error("catalog: {0}")]
    Catalog(String),
    /// The requester may not ask the report's questions (no role that queries, past their
    /// limit): the whole report is refused with the question's refusal.
    #[error("{0}")]
    Refused(NodeError),
}

/// A report error as the node error a door answers with (its kind decides the code).
impl From<ReportError> for NodeError {
    fn from(e: ReportError) -> NodeError {
        let invalid = |field: &'static str, e: &ReportError| NodeError::Query(norrsken_model::query::QueryError::Invalid { field, message: e.to_string() });
        match e {
            ReportError::UnknownRegion { region, known } => NodeError::Query(norrsken_model::query::QueryError::UnknownRegion { region, known }),
            ReportError::UnknownIndicator(id) => NodeError::Query(norrsken_model::query::QueryError::UnknownIndicator { id, known: "see GET /api/catalog".into() }),
            ReportError::UnknownArea { .. } => invalid("area", &e),
            ReportError::NoIndicators | ReportError::TooManyIndicators(_) => invalid("indicators", &e),
            ReportError::OwnTable(_) => invalid("own", &e),
            ReportError::Comment(_) => invalid("comments", &e),
            ReportError::National(_) => invalid("national", &e),
            ReportError::Catalog(_) => NodeError::Internal(e.to_string()),
            ReportError::Refused(e) => e,
        }
    }
}

/// Why one of the report's questions was not answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Unanswered {
    /// The requester may not ask it (no role that queries, past their limit): the report is
    /// refused, never answered with every section empty.
    Refused(NodeError),
    /// This question failed (a bad combination, every region down): its section says so.
    Failed(String),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Refused(e) => write!(f, "{e}"),
            Unanswered::Failed(m) => f.write_str(m),
        }
    }
}

/// How a question's error reads in the report: a refusal of the requester (no role that
/// queries, past their limit) refuses the whole report; anything else is that section's
/// failure.
pub fn unanswered(e: NodeError) -> Unanswered {
    match e.kind() {
        ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::RateLimited => Unanswered::Refused(e),
        _ => Unanswered::Failed(e.to_string()),
    }
}

/// One region's value of one indicator over the period, against the other regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionValue {
    pub region: String,
    pub region_name: String,
    /// `region` or `pooled`.
    pub row: String,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Against the other regions pooled: `better`/`worse` (or `higher`/`lower` without a
    /// better direction), `similar`, `not_compared`.
    pub significance: Option<String>,
    pub others_value: Option<f64>,
    pub status: String,
    pub note: Option<String>,
}

/// One year of one region's trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub region: String,
    pub region_name: String,
    pub row: String,
    pub year: i64,
    pub value: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub status: String,
}

/// A region's change per year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The model's change (a ratio per year for shares and rates: the detail).
    pub change: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub unit: Option<String>,
    /// The change per year on the value's scale (procentenheter for a share, per the rate's
    /// base for a rate), with its 95 % interval: what the report states.
    #[serde(default)]
    pub yearly: Option<f64>,
    #[serde(default)]
    pub yearly_lower: Option<f64>,
    #[serde(default)]
    pub yearly_upper: Option<f64>,
    /// `improving`, `worsening`, `increasing`, `decreasing`, `no_significant_change`, `not_computed`.
    pub flag: String,
    pub note: Option<String>,
}

/// Where the region stands against the target level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetVerdict {
    /// The value is on the better side of the target.
    Meets,
    /// The whole interval is on the worse side.
    Misses,
    /// The value is on the worse side, the interval reaches the target.
    Uncertain,
    /// No value, or no better direction to judge by.
    NotAssessed,
}

/// Why the region's value of an indicator could not be assessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unassessed {
    /// The region's cell is withheld for protection (too few, secondary, …).
    Withheld,
    /// The follow-up time is not complete for the period.
    IncompleteFollowup,
    /// The region did not answer.
    NoAnswer,
    /// A distribution over categories: no single value to compare; shown in the web app's
    /// indicator view, left out of the report.
    Distribution,
    /// The question failed (its section says why).
    Failed,
}

impl Unassessed {
    pub const ALL: [Unassessed; 5] = [Unassessed::Withheld, Unassessed::IncompleteFollowup, Unassessed::NoAnswer, Unassessed::Distribution, Unassessed::Failed];

    /// The code the vocabulary names it by.
    pub fn code(self) -> &'static str {
        match self {
            Unassessed::Withheld => "withheld",
            Unassessed::IncompleteFollowup => "incomplete_followup",
            Unassessed::NoAnswer => "no_answer",
            Unassessed::Distribution => "distribution",
            Unassessed::Failed => "failed",
        }
    }

    /// In words, as "3 av 19 kunde inte bedömas: 2 ej redovisade av skyddsskäl, …" counts
    /// them (the vocabulary's).
    pub fn words(self, lang: Lang) -> &'static str {
        norrsken_model::vocabulary::unassessed(self.code(), lang).map_or(self.code(), |w| w.0)
    }

    /// Plural of [`Unassessed::words`] for counts above one.
    pub fn words_plural(self, lang: Lang) -> &'static str {
        norrsken_model::vocabulary::unassessed(self.code(), lang).map_or(self.code(), |w| w.1)
    }
}

/// One indicator's section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportIndicator {
    pub id: String,
    /// `id@version`.
    pub recipe: String,
    pub title: String,
    pub title_sv: String,
    /// What the indicator measures (unknown when its question failed).
    pub kind: Option<Kind>,
    /// What the value is, in words.
    pub value: String,
    /// The value's label in the report's language ("Andel (%)").
    #[serde(default)]
    pub axis: String,
    pub better: Option<String>,
    pub target: Option<f64>,
    pub target_source: Option<String>,
    /// Every region (and the pooled value), in the answer's order.
    pub regions: Vec<RegionValue>,
    pub trend: Vec<TrendPoint>,
    /// The report region's change per year.
    pub change: Option<Change>,
    /// The report region's row.
    pub focus: Option<RegionValue>,
    pub target_verdict: TargetVerdict,
    /// Regions that did not answer (the comparison is partial).
    pub missing: Vec<String>,
    /// Provenance: each region's state, data and policy version.
    pub sources: Vec<RegionReport>,
    pub query_ids: Vec<String>,
    /// Why this indicator has no numbers (a question was refused or failed).
    pub error: Option<String>,
    /// The last index date with complete follow-up, when index events after it inside the
    /// period were left out (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followup_through: Option<String>,
    /// Why the region's value could not be assessed (none when it has a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unassessed: Option<Unassessed>,
    /// The analyst's comment on this indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Published values for this indicator and period (Riket, other regions), as imported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub national: Vec<NationalValue>,
    /// The comparison's quality declaration (relevance, accuracy, timeliness, comparability)
    /// in the report's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration: Option<String>,
    /// A cohort recipe's evaluation: `regions` then hold each region's effect and the
    /// random-effects estimate (row `pooled`), and this the meta-analysis's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

/// The meta-analysis behind an evaluation's section (docs/analysis.md, "Evaluations across
/// regions").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `did` (against a comparison group) or `before_after`.
    pub design: String,
    /// `contacts`, `inpatient_stays`, `inpatient_days` or `cost`.
    pub outcome: String,
    /// `consistent`, `varies`, `uncertain`, `no_effect` or `too_few_regions`.
    pub consistency: String,
    pub i2: Option<f64>,
    pub i2_lower: Option<f64>,
    pub i2_upper: Option<f64>,
    pub q_p: Option<f64>,
    /// The prediction interval for a new region.
    pub prediction: Option<(f64, f64)>,
    /// Regions with an effect.
    pub k: i64,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub region: String,
    pub region_name: String,
    pub period: String,
    pub lang: Lang,
    /// When it was made (RFC 3339, UTC).
    pub generated: String,
    pub summary: Vec<String>,
    pub indicators: Vec<ReportIndicator>,
    pub own: Option<OwnTable>,
    /// True when any indicator lacks a region's part.
    pub partial: bool,
    /// The analyst's comment on the whole report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The last year every region's data covers, when known ("data t.o.m. 2025").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_through: Option<i32>,
}

impl Report {
    /// The indicators that could not be assessed, counted by why, in a fixed order.
    pub fn unassessed(&self) -> Vec<(Unassessed, Vec<&ReportIndicator>)> {
        Unassessed::ALL
            .into_iter()
            .map(|u| (u, self.indicators.iter().filter(|i| i.unassessed == Some(u)).collect::<Vec<_>>()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}

/// Finds a region by code or name (case-insensitive).
pub fn find_region(asked: &str) -> Result<&'static norrsken_model::geography::Region, ReportError> {
    let a = asked.trim().to_lowercase();
    NORRA.iter().find(|r| r.code == a || r.name.to_lowercase() == a || r.slug == a || r.iso.to_lowercase() == a).ok_or_else(|| ReportError::UnknownRegion {
        region: asked.to_string(),
        known: NORRA.iter().map(|r| format!("{} {}", r.code, r.name)).collect::<Vec<_>>().join(", "),
    })
}

/// The indicators a request names, checked against the catalog, in catalog order for an
/// area and in the asked order otherwise.
pub fn resolve_indicators(request: &ReportRequest, catalog: &serde_json::Value) -> Result<Vec<String>, ReportError> {
    let recipes = catalog["recipes"].as_array().ok_or_else(|| ReportError::Catalog("no recipes".into()))?;
    let id_of = |r: &serde_json::Value| r["id"].as_str().unwrap_or("").to_string();
    let mut ids: Vec<String> = Vec::new();
    if let Some(area) = request.area.as_deref().filter(|a| !a.trim().is_empty()) {
        let a = area.trim().to_lowercase();
        let matches = |r: &serde_json::Value| ["sv", "en"].iter().any(|l| r["area"][l].as_str().is_some_and(|s| s.to_lowercase() == a));
        ids.extend(recipes.iter().filter(|r| matches(r)).map(id_of));
        if ids.is_empty() {
            let known: BTreeSet<&str> = recipes.iter().filter_map(|r| r["area"]["sv"].as_str()).collect();
            return Err(ReportError::UnknownArea { area: area.to_string(), known: known.into_iter().collect::<Vec<_>>().join(", ") });
        }
    }
    for id in &request.indicators {
        let id = id.trim();
        if !recipes.iter().any(|r| r["id"] == id) {
            return Err(ReportError::UnknownIndicator(id.to_string()));
        }
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_string());
        }
    }
    if ids.is_empty() {
        return Err(ReportError::NoIndicators);
    }
    if ids.len() > MAX_INDICATORS {
        return Err(ReportError::TooManyIndicators(ids.len()));
    }
    Ok(ids)
}

/// The two questions of one indicator's section.
pub fn questions(indicator: &str, period: &str) -> [IndicatorQuery; 2] {
    let ask = |breakdowns: Vec<String>, kind: AnalysisKind| IndicatorQuery {
        indicator: indicator.to_string(),
        breakdowns,
        period: period.to_string(),
        options: QueryOptions {
            analysis: Some(AnalysisSpec { kind, against: Comparator::Others, dimension: None, units: None }),
            ..QueryOptions::default()
        },
        ..IndicatorQuery::default()
    };
    [ask(vec![], AnalysisKind::Compare), ask(vec!["year".into()], AnalysisKind::Trend)]
}

/// Builds the report: checks the request, asks every indicator's two questions (in turn,
/// so a report is no heavier on the agents than an analyst asking them one by one), and
/// writes the summary.
pub async fn build(asker: &(impl Federation + ?Sized), request: &ReportRequest) -> Result<Report, ReportError> {
    let region = find_region(&request.region)?;
    if let Some(own) = &request.own {
        own.check()?;
    }
    let catalog = asker.catalog().await.map_err(unanswered).map_err(|e| match e {
        Unanswered::Refused(e) => ReportError::Refused(e),
        Unanswered::Failed(m) => ReportError::Catalog(m),
    })?;
    let ids = resolve_indicators(request, &catalog)?;
    national::check(&request.national)?;
    for c in request.comment.iter().chain(request.comments.values()) {
        if c.chars().count() > MAX_COMMENT {
            return Err(ReportError::Comment(format!("of {} characters; at most {MAX_COMMENT}", c.chars().count())));
        }
    }
    if let Some(id) = request.comments.keys().find(|k| !ids.contains(k)) {
        return Err(ReportError::Comment(format!("on {}, which is not among the report's indicators", norrsken_model::text::quote(id))));
    }
    let recipe_of = |id: &str| catalog["recipes"].as_array().and_then(|rs| rs.iter().find(|r| r["id"] == id)).cloned().unwrap_or_default();
    let mut indicators = Vec::with_capacity(ids.len());
    for id in &ids {
        let recipe = recipe_of(id);
        let mut s = if recipe["categories"].as_array().is_some_and(|c| !c.is_empty()) {
            distribution_section(id, &recipe, request.lang)
        } else if recipe["cohort"].is_object() {
            evaluation_section(asker, id, &request.period, region.code, request.lang).await.map_err(ReportError::Refused)?
        } else {
            section(asker, id, &request.period, region.code, request.lang).await.map_err(ReportError::Refused)?
        };
        s.comment = request.comments.get(id).filter(|c| !c.trim().is_empty()).cloned();
        s.national = request.national.iter().filter(|v| &v.indicator == id && v.period == request.period).cloned().collect();
        indicators.push(s);
    }
    let partial = indicators.iter().any(|i| !i.missing.is_empty());
    let mut report = Report {
        region: region.code.to_string(),
        region_name: region.name.to_string(),
        period: request.period.clone(),
        lang: request.lang,
        generated: chrono_now(),
        summary: Vec::new(),
        indicators,
        own: request.own.clone(),
        partial,
        comment: request.comment.clone().filter(|c| !c.trim().is_empty()),
        data_through: asker.data_years().map(|(_, last)| last),
    };
    report.summary = summarise(&report);
    Ok(report)
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An empty section of indicator `id`.
fn blank(id: &str) -> ReportIndicator {
    ReportIndicator {
        id: id.to_string(),
        recipe: String::new(),
        title: id.to_string(),
        title_sv: id.to_string(),
        kind: None,
        value: String::new(),
        axis: String::new(),
        better: None,
        target: None,
        target_source: None,
        regions: Vec::new(),
        trend: Vec::new(),
        change: None,
        focus: None,
        target_verdict: TargetVerdict::NotAssessed,
        missing: Vec::new(),
        sources: Vec::new(),
        query_ids: Vec::new(),
        error: None,
        followup_through: None,
        unassessed: None,
        comment: None,
        national: Vec::new(),
        declaration: None,
        evaluation: None,
    }
}

/// A distribution's section: no single value to compare, so the report names it and leaves
/// it to the web app's indicator view, without asking.
fn distribution_section(id: &str, recipe: &serde_json::Value, lang: Lang) -> ReportIndicator {
    let mut out = blank(id);
    out.recipe = format!("{id}@{}", recipe["version"]);
    out.title = recipe["title"]["en"].as_str().unwrap_or(id).to_string();
    out.title_sv = recipe["title"]["sv"].as_str().unwrap_or(id).to_string();
    out.kind = recipe["kind"].as_str().and_then(Kind::parse);
    if let Some(kind) = out.kind {
        out.axis = norrsken_model::vocabulary::value_label(kind, None, recipe["value_unit"].as_str(), lang);
    }
    out.unassessed = Some(Unassessed::Distribution);
    out
}

/// One indicator's section; a question the requester may not ask refuses the report.
async fn section(asker: &(impl Federation + ?Sized), id: &str, period: &str, focus: &str, lang: Lang) -> Result<ReportIndicator, NodeError> {
    let [compare_q, trend_q] = questions(id, period);
    let mut out = blank(id);
    let Some(compare) = first(asker, &compare_q, &mut out).await? else { return Ok(out) };
    describe(&mut out, &compare, id, lang);
    let meta = |t: &AnalysisTable, k: &str| t.meta(k).filter(|s| !s.is_empty()).map(str::to_string);
    for r in compare.compare_rows() {
        out.regions.push(RegionValue {
            region: r.region,
            region_name: r.region_name,
            row: r.row,
            numerator: r.numerator,
            denominator: r.denominator,
            value: r.value,
            lower: r.ci_lower,
            upper: r.ci_upper,
            significance: r.significance,
            others_value: r.comparator_value,
            status: r.status,
            note: r.note,
        });
    }
    out.focus = out.regions.iter().find(|r| r.row == "region" && r.region == focus).cloned();
    out.target_verdict = target_verdict(out.focus.as_ref(), out.target, out.better.as_deref());
    out.unassessed = match &out.focus {
        None => Some(Unassessed::NoAnswer),
        Some(f) if f.value.is_some() => None,
        Some(f) if f.note.as_deref().is_some_and(|n| n.contains("incomplete_followup")) => Some(Unassessed::IncompleteFollowup),
        Some(_) => Some(Unassessed::Withheld),
    };
    let pooled = out.regions.iter().find(|r| r.row == "pooled").map(|r| r.region.clone());
    match read(asker, &trend_q).await {
        Ok(trend) => {
            out.query_ids.extend(meta(&trend, "query_id"));
            for r in trend.trend_rows() {
                if r.row == "trend" {
                    if r.region == focus {
                        out.change = Some(Change {
                            change: r.change,
                            lower: r.change_lower,
                            upper: r.change_upper,
                            unit: r.change_unit,
                            yearly: r.yearly,
                            yearly_lower: r.yearly_lower,
                            yearly_upper: r.yearly_upper,
                            flag: r.flag.unwrap_or_else(|| "not_computed".into()),
                            note: r.note,
                        });
                    }
                    continue;
                }
                let Some(year) = r.year else { continue };
                out.trend.push(TrendPoint {
                    row: if Some(&r.region) == pooled.as_ref() { "pooled".into() } else { "region".into() },
                    region: r.region,
                    region_name: r.region_name,
                    year,
                    value: r.value,
                    lower: r.ci_lower,
                    upper: r.ci_upper,
                    status: r.status,
                });
            }
        }
        Err(Unanswered::Refused(e)) => return Err(e),
        Err(Unanswered::Failed(e)) => out.error = Some(format!("trend: {e}")),
    }
    Ok(out)
}

/// A cohort recipe's section: its evaluation across the regions. The regions' rows carry
/// each region's effect with its interval (the chart draws them as a forest plot), the
/// `pooled` row the random-effects estimate; no trend.
async fn evaluation_section(asker: &(impl Federation + ?Sized), id: &str, period: &str, focus: &str, lang: Lang) -> Result<ReportIndicator, NodeError> {
    use norrsken_model::analysis::Value;
    use norrsken_model::vocabulary::evaluation_word;
    let q = IndicatorQuery {
        indicator: id.to_string(),
        period: period.to_string(),
        options: QueryOptions { analysis: Some(AnalysisSpec { kind: AnalysisKind::Evaluate, against: Comparator::Pooled, dimension: None, units: None }), ..QueryOptions::default() },
        ..IndicatorQuery::default()
    };
    let mut out = blank(id);
    let Some(t) = first(asker, &q, &mut out).await? else { return Ok(out) };
    describe(&mut out, &t, id, lang);
    let meta = |k: &str| t.meta(k).filter(|s| !s.is_empty()).map(str::to_string);
    // The value is the effect on the cohort's outcome.
    out.kind = Some(Kind::Mean);
    let outcome = meta("outcome").unwrap_or_default();
    out.value = format!("{}: {}", evaluation_word("effect", Lang::En), evaluation_word(&format!("outcome.{outcome}"), Lang::En));
    out.axis = format!("{} · {}", evaluation_word("effect", lang), evaluation_word(&format!("outcome.{outcome}"), lang));
    let text = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_text).map(str::to_string);
    let num = |r: &[Value], c: &str| t.get(r, c).and_then(Value::as_float);
    for r in &t.rows {
        let row = text(r, "row").unwrap_or_default();
        let (kind, name) = match row.as_str() {
            "region" => ("region", text(r, "region_name").unwrap_or_default()),
            "random" => ("pooled", evaluation_word("random", lang).to_string()),
            _ => continue,
        };
        out.regions.push(RegionValue {
            region: text(r, "region").unwrap_or_default(),
            region_name: name,
            row: kind.into(),
            numerator: None,
            denominator: t.get(r, "n").and_then(Value::as_int),
            value: num(r, "effect"),
            lower: num(r, "effect_lower"),
            upper: num(r, "effect_upper"),
            significance: None,
            others_value: None,
            status: text(r, "status").unwrap_or_default(),
            note: text(r, "note"),
        });
    }
    if let Some(r) = t.rows.iter().find(|r| text(r, "row").as_deref() == Some("random")) {
        let prediction = t.rows.iter().find(|p| text(p, "row").as_deref() == Some("prediction")).and_then(|p| Some((num(p, "effect_lower")?, num(p, "effect_upper")?)));
        out.evaluation = Some(Evaluation {
            design: meta("design").unwrap_or_default(),
            outcome,
            consistency: text(r, "consistency").unwrap_or_default(),
            i2: num(r, "i2"),
            i2_lower: num(r, "i2_lower"),
            i2_upper: num(r, "i2_upper"),
            q_p: num(r, "q_p"),
            prediction,
            k: t.get(r, "k").and_then(Value::as_int).unwrap_or(0),
        });
    }
    out.focus = out.regions.iter().find(|r| r.row == "region" && r.region == focus).cloned();
    out.unassessed = match &out.focus {
        None => Some(Unassessed::NoAnswer),
        Some(f) if f.value.is_some() => None,
        Some(_) => Some(Unassessed::Withheld),
    };
    Ok(out)
}

/// A section's first question: its table, or none with the section marked failed (a refused
/// question is the report's error).
async fn first(asker: &(impl Federation + ?Sized), q: &IndicatorQuery, out: &mut ReportIndicator) -> Result<Option<AnalysisTable>, NodeError> {
    match read(asker, q).await {
        Ok(t) => Ok(Some(t)),
        Err(Unanswered::Refused(e)) => Err(e),
        Err(Unanswered::Failed(e)) => {
            out.error = Some(e);
            out.unassessed = Some(Unassessed::Failed);
            Ok(None)
        }
    }
}

/// A section's description from its first table: the recipe and its titles, the value and
/// its axis, direction and target, the follow-up's edge, the quality declaration, the query
/// id and each region's state.
fn describe(out: &mut ReportIndicator, t: &AnalysisTable, id: &str, lang: Lang) {
    let meta = |k: &str| t.meta(k).filter(|s| !s.is_empty()).map(str::to_string);
    out.recipe = meta("recipe").unwrap_or_default();
    out.title = meta("title").unwrap_or_else(|| id.to_string());
    out.title_sv = meta("title_sv").unwrap_or_else(|| out.title.clone());
    out.kind = meta("kind").and_then(|k| Kind::parse(&k));
    out.value = meta("value").unwrap_or_default();
    out.axis = meta(if lang == Lang::Sv { "axis_sv" } else { "axis_en" }).unwrap_or_default();
    out.better = meta("better");
    out.target = meta("target").and_then(|s| s.parse().ok());
    out.target_source = meta("target_source");
    out.followup_through = meta("followup_through");
    out.declaration = meta(if lang == Lang::Sv { "declaration_sv" } else { "declaration_en" });
    out.query_ids.extend(meta("query_id"));
    out.sources = meta("regions").and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    out.missing = out.sources.iter().filter(|r| r.status != RegionState::Ok).map(|r| r.name.clone()).collect();
}

async fn read(asker: &(impl Federation + ?Sized), q: &IndicatorQuery) -> Result<AnalysisTable, Unanswered> {
    asker.ask(q.clone()).await.map_err(unanswered)?.analysis().ok_or_else(|| Unanswered::Failed("the answer is not an analysis table".into()))
}

/// The region's value against the target level.
pub fn target_verdict(focus: Option<&RegionValue>, target: Option<f64>, better: Option<&str>) -> TargetVerdict {
    let (Some(f), Some(target)) = (focus, target) else { return TargetVerdict::NotAssessed };
    let (Some(v), Some(lo), Some(hi)) = (f.value, f.lower, f.upper) else { return TargetVerdict::NotAssessed };
    let higher_better = match better {
        Some("higher") => true,
        Some("lower") => false,
        _ => return TargetVerdict::NotAssessed,
    };
    let meets = if higher_better { v >= target } else { v <= target };
    let misses = if higher_better { hi < target } else { lo > target };
    if meets {
        TargetVerdict::Meets
    } else if misses {
        TargetVerdict::Misses
    } else {
        TargetVerdict::Uncertain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: f64, lo: f64, hi: f64) -> RegionValue {
        RegionValue {
            region: "24".into(),
            region_name: "Västerbotten".into(),
            row: "region".into(),
            numerator: None,
            denominator: None,
            value: Some(v),
            lower: Some(lo),
            upper: Some(hi),
            significance: None,
            others_value: None,
            status: "released".into(),
            note: None,
        }
    }

    #[test]
    fn the_target_verdict_follows_the_better_direction_and_the_interval() {
        assert_eq!(target_verdict(Some(&value(0.2, 0.18, 0.22)), Some(0.15), Some("higher")), TargetVerdict::Meets);
        assert_eq!(target_verdict(Some(&value(0.1, 0.08, 0.12)), Some(0.15), Some("higher")), TargetVerdict::Misses);
        assert_eq!(target_verdict(Some(&value(0.14, 0.10, 0.18)), Some(0.15), Some("higher")), TargetVerdict::Uncertain);
        assert_eq!(target_verdict(Some(&value(0.1, 0.08, 0.12)), Some(0.15), Some("lower")), TargetVerdict::Meets);
        assert_eq!(target_verdict(Some(&value(0.2, 0.18, 0.22)), Some(0.15), Some("lower")), TargetVerdict::Misses);
        assert_eq!(target_verdict(Some(&value(0.2, 0.18, 0.22)), Some(0.15), None), TargetVerdict::NotAssessed);
        assert_eq!(target_verdict(Some(&value(0.2, 0.18, 0.22)), None, Some("higher")), TargetVerdict::NotAssessed);
    }

    #[test]
    fn regions_are_found_by_code_or_name_and_unknown_ones_named() {
        assert_eq!(find_region("24").unwrap().name, "Västerbotten");
        assert_eq!(find_region("norrbotten").unwrap().code, "25");
        assert_eq!(find_region("Jämtland Härjedalen").unwrap().code, "23");
        let e = find_region("Skåne").unwrap_err().to_string();
        assert!(e.contains("Skåne") && e.contains("24 Västerbotten"), "{e}");
    }

    #[test]
    fn indicators_come_from_the_list_or_the_area_and_unknown_ones_are_named() {
        let catalog = serde_json::json!({"recipes": [
            {"id": "a", "area": {"sv": "Endokrina sjukdomar", "en": "Endocrine diseases"}},
            {"id": "b", "area": {"sv": "Psykisk hälsa", "en": "Mental health"}},
            {"id": "c", "area": {"sv": "Endokrina sjukdomar", "en": "Endocrine diseases"}},
        ]});
        let req = |ids: &[&str], area: Option<&str>| ReportRequest {
            region: "24".into(),
            indicators: ids.iter().map(|s| s.to_string()).collect(),
            area: area.map(String::from),
            period: "2021..2025".into(),
            ..Default::default()
        };
        assert_eq!(resolve_indicators(&req(&[], Some("endocrine diseases")), &catalog).unwrap(), ["a", "c"]);
        assert_eq!(resolve_indicators(&req(&["b", "a"], Some("Endokrina sjukdomar")), &catalog).unwrap(), ["a", "c", "b"]);
        assert_eq!(resolve_indicators(&req(&["c", "b"], None), &catalog).unwrap(), ["c", "b"]);
        assert_eq!(resolve_indicators(&req(&[], None), &catalog), Err(ReportError::NoIndicators));
        assert!(resolve_indicators(&req(&["zz"], None), &catalog).unwrap_err().to_string().contains("zz"));
        let e = resolve_indicators(&req(&[], Some("Kirurgi")), &catalog).unwrap_err().to_string();
        assert!(e.contains("Kirurgi") && e.contains("Psykisk hälsa"), "{e}");
    }

    #[test]
    fn an_own_table_is_read_from_csv_with_either_separator_and_bad_ones_are_named() {
        let t = OwnTable::from_csv("egna.csv", "Mått;Värde\nVäntetid (dagar);12\nBesök;340\n").unwrap();
        assert_eq!(t.columns, ["Mått", "Värde"]);
        assert_eq!(t.rows[1], ["Besök", "340"]);
        let t = OwnTable::from_csv("own.csv", "a,b\n1,2\n").unwrap();
        assert_eq!(t.rows, [["1", "2"]]);
        let e = OwnTable::from_csv("own.csv", "a,b\n1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("own.csv") && e.contains("line 2"), "{e}");
        let e = OwnTable::from_csv("own.csv", "").unwrap_err().to_string();
        assert!(e.contains("no column names"), "{e}");
        let big = format!("a\n{}", "1\n".repeat(MAX_OWN_ROWS + 1));
        assert!(OwnTable::from_csv("own.csv", &big).unwrap_err().to_string().contains("rows"));
    }
}
