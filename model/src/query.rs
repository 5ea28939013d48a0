//! The indicator query: its JSON and protobuf forms (the Flight ticket) and its validation
//! against the catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::breakdown::Breakdown;
use crate::catalog::{Catalog, Kind, Recipe};
use crate::period::{Period, PeriodError};
use crate::proto;
use crate::text::{bound, quote};

/// Largest ticket accepted, in bytes. Real queries are a few hundred bytes.
pub const MAX_TICKET_BYTES: usize = 16 * 1024;

/// Where a cell is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Perspective {
    /// Vårdgivarperspektiv: every agent counts the care its region gave, whoever the patient.
    #[default]
    Provider,
    /// Befolkningsperspektiv: units are counted under the patient's home region, wherever
    /// the care was given.
    Population,
}

impl Perspective {
    pub fn name(self) -> &'static str {
        match self {
            Perspective::Provider => "provider",
            Perspective::Population => "population",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryOptions {
    /// Asks for a larger minimum cell size than the recipe's and the regions' floors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cell_size: Option<u32>,
    #[serde(default)]
    pub perspective: Perspective,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
    /// Also release the margins: each breakdown summed over (label `total`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub totals: bool,
    /// Answer within this many milliseconds (partially when a region is slow); the
    /// coordinator's `agent_timeout_ms` bounds it. Not part of the question's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u32>,
    /// Directly age-standardise to this standard population (`esp2013`, `se2020`): the
    /// answer gains the age bands and, on each age total, the standardised value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardise: Option<String>,
    /// An analysis of the comparison (the coordinator computes it; agents never see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// What an analysis asks (see docs/analysis.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    pub kind: AnalysisKind,
    /// What each value is compared with (compare, funnel).
    #[serde(default)]
    pub against: Comparator,
    /// The breakdown whose groups an equity analysis compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// A funnel plot's units: `region` (default) or `kommun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Each region against the pooled value, the other regions or the target, with significance.
    Compare,
    /// Yearly values, the change per year and its significance.
    Trend,
    /// Gaps between the groups of one breakdown, and the slope and relative index of inequality.
    Equity,
    /// Value against precision with control limits.
    Funnel,
    /// A cohort recipe's effect per region (before/after, and against its comparison group)
    /// and a meta-analysis across regions.
    Evaluate,
}

impl AnalysisKind {
    pub const ALL: [AnalysisKind; 5] = [AnalysisKind::Compare, AnalysisKind::Trend, AnalysisKind::Equity, AnalysisKind::Funnel, AnalysisKind::Evaluate];

    pub fn name(self) -> &'static str {
        match self {
            AnalysisKind::Compare => "compare",
            AnalysisKind::Trend => "trend",
            AnalysisKind::Equity => "equity",
            AnalysisKind::Funnel => "funnel",
            AnalysisKind::Evaluate => "evaluate",
        }
    }
    pub fn parse(s: &str) -> Option<AnalysisKind> {
        AnalysisKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What values are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// The pooled value of every region asked.
    #[default]
    Pooled,
    /// The pooled value of the other regions.
    Others,
    /// The recipe's published target level.
    Target,
}

impl Comparator {
    pub fn name(self) -> &'static str {
        match self {
            Comparator::Pooled => "pooled",
            Comparator::Others => "others",
            Comparator::Target => "target",
        }
    }
    pub fn parse(s: &str) -> Option<Comparator> {
        [Comparator::Pooled, Comparator::Others, Comparator::Target].into_iter().find(|k| k.name() == s)
    }
}

/// An indicator query as a requester writes it (JSON form; the protobuf form maps 1:1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_id: String,
    pub indicator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default)]
    pub breakdowns: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Vec<String>>,
    pub period: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    #[serde(default)]
    pub options: QueryOptions,
}

/// Who asked, as the coordinator authenticated them; travels to agents with the query.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Relay {
    pub requester_subject: String,
    pub requester_fingerprint: String,
    pub requester_role: String,
    pub catalog_hash: String,
    #[serde(default)]
    pub traceparent: String,
    /// The coordinator's audit chain head when it relayed the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayer_head: Option<crate::anchor::Anchor>,
}

/// Why a query was not accepted. Every variant names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("malformed ticket: {}", bound(.0))]
    MalformedTicket(String),
    #[error("{field} of {size} bytes is larger than the {max}-byte limit")]
    TooLarge { field: &'static str, size: usize, max: usize },
    #[error("the query has no '{0}'")]
    MissingField(&'static str),
    #[error("unknown indicator {}; the catalog has: {known}", quote(id))]
    UnknownIndicator { id: String, known: String },
    #[error("indicator {} has no version {version}; the catalog has version(s) {known}", quote(id))]
    UnknownVersion { id: String, version: u32, known: String },
    #[error("unknown breakdown {}; known breakdowns: {known}", quote(name))]
    UnknownBreakdown { name: String, known: String },
    #[error("breakdown {} is not allowed for {indicator}; allowed: {allowed}", quote(breakdown))]
    BreakdownNotAllowed { breakdown: String, indicator: String, allowed: String },
    #[error("breakdown {} is asked for twice", quote(.0))]
    DuplicateBreakdown(String),
    #[error("only one time breakdown at a time, got {0}")]
    SeveralTimeBreakdowns(String),
    #[error("filter on {} is not allowed for {indicator}; filters may name: {allowed}", quote(breakdown))]
    FilterNotAllowed { breakdown: String, indicator: String, allowed: String },
    #[error("filter on {}: choose time with the period, not a filter", quote(.0))]
    TimeFilter(String),
    #[error("filter on {} lists no values", quote(breakdown))]
    EmptyFilter { breakdown: String },
    #[error("filter on {}: unknown value {}; allowed: {allowed}", quote(breakdown), quote(value))]
    UnknownFilterValue { breakdown: String, value: String, allowed: String },
    #[error(transparent)]
    Period(#[from] PeriodError),
    #[error("period {period} lies outside the data held ({first}..{last})")]
    PeriodOutOfRange { period: String, first: i32, last: i32 },
    #[error(
        "period {period} is not whole years, one quarter or one month: periods are the data's building blocks, so that two questions never differ by a few persons; ask whole years and break down by quarter or month (e.g. --period {year} --by month)"
    )]
    PeriodNotABlock { period: String, year: i32 },
    #[error("{indicator} is a rate per inhabitant-year: the period must cover whole years, got {period}")]
    RateNeedsWholeYears { indicator: String, period: String },
    #[error("unknown region {}; configured regions: {known}", quote(region))]
    UnknownRegion { region: String, known: String },
    #[error("query_id {} is not valid: use up to 64 letters, digits, '-' or '_'", quote(.0))]
    InvalidQueryId(String),
    #[error("min_cell_size {0} is not valid: use 1 to 1000")]
    InvalidMinCellSize(u32),
    #[error("{field}: {}", bound(message))]
    Invalid { field: &'static str, message: String },
}

impl QueryError {
    /// True for errors that mean "no such thing" rather than "badly formed".
    pub fn is_not_found(&self) -> bool {
        matches!(self, QueryError::UnknownIndicator { .. } | QueryError::UnknownVersion { .. })
    }
}

impl IndicatorQuery {
    /// Decodes a Flight ticket: JSON when it starts with `{`, else protobuf.
    /// Returns the query and the relay block (only agents trust the latter).
    pub fn decode_ticket(bytes: &[u8]) -> Result<(IndicatorQuery, Option<Relay>), QueryError> {
        if bytes.len() > MAX_TICKET_BYTES {
            return Err(QueryError::TooLarge { field: "ticket", size: bytes.len(), max: MAX_TICKET_BYTES });
        }
        if bytes.is_empty() {
            return Err(QueryError::MalformedTicket("the ticket is empty".into()));
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first == Some(b'{') {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| QueryError::MalformedTicket(format!("JSON ticket is not UTF-8: {e}")))?;
            let q: IndicatorQuery = serde_json::from_str(text)
                .map_err(|e| QueryError::MalformedTicket(format!("JSON ticket: {e}")))?;
            check_query_id(&q.query_id)?;
            return Ok((q, None));
        }
        let p = proto::IndicatorQuery::decode(bytes)
            .map_err(|e| QueryError::MalformedTicket(format!("protobuf ticket: {e}")))?;
        if let Some(a) = p.options.as_ref().and_then(|o| o.analysis.as_ref()) {
            if AnalysisKind::parse(&a.kind).is_none() {
                return Err(QueryError::Invalid { field: "options.analysis.kind", message: format!("{} is not compare, trend, equity, funnel or evaluate", quote(&a.kind)) });
            }
            if !a.against.is_empty() && Comparator::parse(&a.against).is_none() {
                return Err(QueryError::Invalid { field: "options.analysis.against", message: format!("{} is not pooled, others or target", quote(&a.against)) });
            }
        }
        let (q, relay) = IndicatorQuery::from_proto(p);
        check_query_id(&q.query_id)?;
        Ok((q, relay))
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings, maps and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Encodes as a protobuf ticket, with an optional relay block.
    pub fn encode_ticket(&self, relay: Option<&Relay>) -> Vec<u8> {
        self.to_proto(relay).encode_to_vec()
    }

    pub fn from_proto(p: proto::IndicatorQuery) -> (IndicatorQuery, Option<Relay>) {
        let options = p.options.unwrap_or_default();
        let perspective = match proto::Perspective::try_from(options.perspective) {
            Ok(proto::Perspective::Population) => Perspective::Population,
            _ => Perspective::Provider,
        };
        let relay = p.relay.map(|r| Relay {
            requester_subject: r.requester_subject,
            requester_fingerprint: r.requester_fingerprint,
            requester_role: r.requester_role,
            catalog_hash: r.catalog_hash,
            traceparent: r.traceparent,
            relayer_head: (!r.relayer_hash.is_empty()).then_some(crate::anchor::Anchor { seq: r.relayer_seq, hash: r.relayer_hash }),
        });
        let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in p.filters {
            filters.entry(f.breakdown).or_default().extend(f.values);
        }
        let q = IndicatorQuery {
            query_id: p.query_id,
            indicator: p.indicator_id,
            version: (p.indicator_version != 0).then_some(p.indicator_version),
            breakdowns: p.breakdowns,
            filters,
            period: p.period,
            regions: p.regions,
            options: QueryOptions {
                min_cell_size: (options.min_cell_size != 0).then_some(options.min_cell_size),
                perspective,
                dry_run: options.dry_run,
                no_cache: options.no_cache,
                totals: options.totals,
                deadline_ms: (options.deadline_ms != 0).then_some(options.deadline_ms),
                standardise: (!options.standardise.is_empty()).then_some(options.standardise),
                analysis: options.analysis.map(|a| AnalysisSpec {
                    // An unknown kind is refused by validation (it names the field).
                    kind: AnalysisKind::parse(&a.kind).unwrap_or(AnalysisKind::Compare),
                    against: Comparator::parse(&a.against).unwrap_or_default(),
                    dimension: (!a.dimension.is_empty()).then_some(a.dimension),
                    units: (!a.units.is_empty()).then_some(a.units),
                }),
            },
        };
        (q, relay)
    }

    pub fn to_proto(&self, relay: Option<&Relay>) -> proto::IndicatorQuery {
        proto::IndicatorQuery {
            query_id: self.query_id.clone(),
            indicator_id: self.indicator.clone(),
            indicator_version: self.version.unwrap_or(0),
            breakdowns: self.breakdowns.clone(),
            filters: self
                .filters
                .iter()
                .map(|(k, v)| proto::Filter { breakdown: k.clone(), values: v.clone() })
                .collect(),
            period: self.period.clone(),
            regions: self.regions.clone(),
            options: Some(proto::QueryOptions {
                min_cell_size: self.options.min_cell_size.unwrap_or(0),
                perspective: match self.options.perspective {
                    Perspective::Provider => proto::Perspective::Provider as i32,
                    Perspective::Population => proto::Perspective::Population as i32,
                },
                dry_run: self.options.dry_run,
                no_cache: self.options.no_cache,
                totals: self.options.totals,
                deadline_ms: self.options.deadline_ms.unwrap_or(0),
                standardise: self.options.standardise.clone().unwrap_or_default(),
                analysis: self.options.analysis.as_ref().map(|a| proto::Analysis {
                    kind: a.kind.name().to_string(),
                    against: a.against.name().to_string(),
                    dimension: a.dimension.clone().unwrap_or_default(),
                    units: a.units.clone().unwrap_or_default(),
                }),
            }),
            relay: relay.map(|r| proto::Relay {
                requester_subject: r.requester_subject.clone(),
                requester_fingerprint: r.requester_fingerprint.clone(),
                requester_role: r.requester_role.clone(),
                catalog_hash: r.catalog_hash.clone(),
                traceparent: r.traceparent.clone(),
                relayer_seq: r.relayer_head.as_ref().map_or(0, |a| a.seq),
                relayer_hash: r.relayer_head.as_ref().map(|a| a.hash.clone()).unwrap_or_default(),
            }),
        }
    }

    /// Checks the query against the catalog: the recipe exists, breakdowns and filters are
    /// the recipe's, values come from the fixed vocabulary and the period lies within
    /// `data_years` when given.
    pub fn validate(&self, catalog: &Catalog, data_years: Option<(i32, i32)>) -> Result<ValidatedQuery, QueryError> {
        self.validate_with(catalog, data_years, true)
    }

    /// [`IndicatorQuery::validate`] for evaluating a recipe on one's own datalager (region
    /// IT's `norrsken eval`, the engine's tests): any period of whole months, not only the
    /// building blocks a question to the federation may name.
    pub fn validate_for_engine(&self, catalog: &Catalog, data_years: Option<(i32, i32)>) -> Result<ValidatedQuery, QueryError> {
        self.validate_with(catalog, data_years, false)
    }

    fn validate_with(&self, catalog: &Catalog, data_years: Option<(i32, i32)>, blocks: bool) -> Result<ValidatedQuery, QueryError> {
        check_query_id(&self.query_id)?;
        if self.indicator.trim().is_empty() {
            return Err(QueryError::MissingField("indicator"));
        }
        let recipe = catalog.get(&self.indicator, self.version).ok_or_else(|| {
            if catalog.versions(&self.indicator).is_empty() {
                QueryError::UnknownIndicator { id: self.indicator.clone(), known: catalog.ids().join(", ") }
            } else {
                QueryError::UnknownVersion {
                    id: self.indicator.clone(),
                    version: self.version.unwrap_or(0),
                    known: join(catalog.versions(&self.indicator)),
                }
            }
        })?;
        let allowed = || recipe.breakdowns.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");

        let mut breakdowns = Vec::new();
        for name in &self.breakdowns {
            let b = Breakdown::parse(name).ok_or_else(|| QueryError::UnknownBreakdown {
                name: name.clone(),
                known: Breakdown::all_names(),
            })?;
            if !recipe.allows(b) {
                return Err(QueryError::BreakdownNotAllowed {
                    breakdown: b.name().into(),
                    indicator: recipe.key(),
                    allowed: allowed(),
                });
            }
            if breakdowns.contains(&b) {
                return Err(QueryError::DuplicateBreakdown(b.name().into()));
            }
            breakdowns.push(b);
        }
        let times: Vec<&str> = breakdowns.iter().filter(|b| b.time_grain().is_some()).map(|b| b.name()).collect();
        if times.len() > 1 {
            return Err(QueryError::SeveralTimeBreakdowns(times.join(" and ")));
        }

        let mut filters = BTreeMap::new();
        for (name, values) in &self.filters {
            let b = Breakdown::parse(name).ok_or_else(|| QueryError::UnknownBreakdown {
                name: name.clone(),
                known: Breakdown::all_names(),
            })?;
            if !b.filterable() {
                return Err(QueryError::TimeFilter(b.name().into()));
            }
            if !recipe.allows(b) {
                return Err(QueryError::FilterNotAllowed {
                    breakdown: b.name().into(),
                    indicator: recipe.key(),
                    allowed: recipe
                        .breakdowns
                        .iter()
                        .filter(|b| b.filterable())
                        .map(|b| b.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if values.is_empty() {
                return Err(QueryError::EmptyFilter { breakdown: b.name().into() });
            }
            let vocabulary = b.allowed_values(&recipe.age_bands);
            let mut set = BTreeSet::new();
            for v in values {
                if !vocabulary.iter().any(|a| a == v) {
                    return Err(QueryError::UnknownFilterValue {
                        breakdown: b.name().into(),
                        value: v.clone(),
                        allowed: vocabulary.join(", "),
                    });
                }
                set.insert(v.clone());
            }
            filters.insert(b, set);
        }

        if self.period.trim().is_empty() {
            return Err(QueryError::MissingField("period"));
        }
        let period = Period::parse(&self.period)?;
        if let Some((first, last)) = data_years {
            if !period.contains_years(first, last) {
                return Err(QueryError::PeriodOutOfRange { period: period.to_string(), first, last });
            }
        }
        if blocks && !period.is_building_block() {
            return Err(QueryError::PeriodNotABlock { period: period.to_string(), year: period.first_year() });
        }
        if recipe.kind == Kind::Rate && !period.is_whole_years() {
            return Err(QueryError::RateNeedsWholeYears { indicator: recipe.key(), period: period.to_string() });
        }
        if let Some(k) = self.options.min_cell_size {
            if !(1..=1000).contains(&k) {
                return Err(QueryError::InvalidMinCellSize(k));
            }
        }
        let mut options = self.options.clone();
        if let Some(id) = &options.standardise {
            let invalid = |message: String| QueryError::Invalid { field: "options.standardise", message };
            if crate::standard::standard(id).is_none() {
                let known: Vec<&str> = crate::standard::standards().iter().map(|s| s.id.as_str()).collect();
                return Err(invalid(format!("{} is not a standard population; available: {}", quote(id), known.join(", "))));
            }
            if !recipe.age_standardisation {
                return Err(invalid(format!("{} is not age-standardised (its recipe does not allow it)", recipe.key())));
            }
            if filters.contains_key(&Breakdown::AgeBand) {
                return Err(invalid("a standardised value covers every age band: do not filter on age_band".into()));
            }
            // The age bands are the strata; their totals carry the standardised values.
            if !breakdowns.contains(&Breakdown::AgeBand) {
                breakdowns.push(Breakdown::AgeBand);
            }
            options.totals = true;
        }
        if let Some(a) = &options.analysis {
            analysis_breakdowns(a, &recipe, &mut breakdowns)?;
        }
        // A cohort's measures (and arms) are never summed together: every question of a
        // cohort recipe is asked by them.
        // A question that filters on one measure is one slice of such a question (as an
        // agent answers it, and as its release ledger replays it).
        if let Some(c) = &recipe.cohort {
            let arm = c.comparison.is_some().then_some(Breakdown::Arm);
            let measure = (!filters.contains_key(&Breakdown::Measure)).then_some(Breakdown::Measure);
            for b in arm.into_iter().chain(measure) {
                if !breakdowns.contains(&b) {
                    breakdowns.push(b);
                }
            }
        }
        Ok(ValidatedQuery {
            query_id: self.query_id.clone(),
            recipe: recipe.clone(),
            breakdowns,
            filters,
            period,
            regions: self.regions.clone(),
            options,
            data_end: data_years.and_then(|(_, last)| chrono::NaiveDate::from_ymd_opt(last, 12, 31)),
        })
    }
}

/// Checks an analysis against the recipe and adds the breakdown it needs (a trend needs
/// years, an equity analysis its dimension, a funnel of kommuner the kommun), so that the
/// question asked of the agents is complete.
fn analysis_breakdowns(a: &AnalysisSpec, recipe: &Recipe, breakdowns: &mut Vec<Breakdown>) -> Result<(), QueryError> {
    let invalid = |field: &'static str, message: String| QueryError::Invalid { field, message };
    if recipe.is_distribution() {
        return Err(invalid("options.analysis", format!("{} is a distribution over categories; analyses need one value per cell", recipe.key())));
    }
    if recipe.kind == Kind::Count && matches!(a.kind, AnalysisKind::Equity | AnalysisKind::Funnel) {
        let what = if a.kind == AnalysisKind::Equity { "equity gaps" } else { "a funnel plot" };
        return Err(invalid(
            "options.analysis.kind",
            format!("{} is a count: {what} would compare counts of groups or regions of different size; ask a rate or a share, or the count's trend", recipe.key()),
        ));
    }
    if a.against == Comparator::Target && recipe.target.is_none() {
        return Err(invalid("options.analysis.against", format!("{} has no published target level", recipe.key())));
    }
    let need = |b: Breakdown, field: &'static str, breakdowns: &mut Vec<Breakdown>| -> Result<(), QueryError> {
        if !recipe.allows(b) {
            return Err(invalid(field, format!("{} does not allow the breakdown {b}", recipe.key())));
        }
        if !breakdowns.contains(&b) {
            breakdowns.push(b);
        }
        Ok(())
    };
    match a.kind {
        AnalysisKind::Compare => {}
        AnalysisKind::Trend => {
            if let Some(t) = breakdowns.iter().find(|b| b.time_grain().is_some() && **b != Breakdown::Year) {
                return Err(invalid("options.analysis", format!("a trend is yearly: ask year, not {t}")));
            }
            need(Breakdown::Year, "options.analysis", breakdowns)?;
        }
        AnalysisKind::Equity => {
            let name = a.dimension.as_deref().unwrap_or("");
            let b = Breakdown::parse(name)
                .filter(|b| matches!(b, Breakdown::Sex | Breakdown::AgeBand | Breakdown::Education | Breakdown::IncomeQuintile | Breakdown::BirthCountry))
                .ok_or_else(|| invalid("options.analysis.dimension", format!("{} is not sex, age_band, education, income_quintile or birth_country", quote(name))))?;
            need(b, "options.analysis.dimension", breakdowns)?;
        }
        AnalysisKind::Funnel if a.against == Comparator::Others => {
            return Err(invalid("options.analysis.against", "a funnel plot's centre is the pooled value or the target, not the other regions".into()));
        }
        AnalysisKind::Evaluate if recipe.cohort.is_none() => {
            return Err(invalid("options.analysis.kind", format!("{} is not a cohort recipe; an evaluation needs one (its [cohort] table)", recipe.key())));
        }
        AnalysisKind::Evaluate => {}
        AnalysisKind::Funnel => match a.units.as_deref().unwrap_or("region") {
            "region" => {}
            "kommun" => need(Breakdown::Kommun, "options.analysis.units", breakdowns)?,
            other => return Err(invalid("options.analysis.units", format!("{} is not region or kommun", quote(other)))),
        },
    }
    Ok(())
}

/// A query id is checked as soon as a ticket is decoded, before any node logs it: empty
/// (the coordinator assigns one) or up to 64 letters, digits, '-' or '_'.
pub fn check_query_id(id: &str) -> Result<(), QueryError> {
    if !id.is_empty() && (id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
        return Err(QueryError::InvalidQueryId(id.to_string()));
    }
    Ok(())
}

fn join(v: Vec<u32>) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// A query checked against the catalog, in typed form.
#[derive(Debug, Clone)]
pub struct ValidatedQuery {
    pub query_id: String,
    pub recipe: Arc<Recipe>,
    /// In the order asked for; result columns follow this order.
    pub breakdowns: Vec<Breakdown>,
    pub filters: BTreeMap<Breakdown, BTreeSet<String>>,
    pub period: Period,
    pub regions: Vec<String>,
    pub options: QueryOptions,
    /// The last day of the data the question is asked of (the end of its last year), when
    /// validated against a datalager; index events whose outcome window runs past it are
    /// left out ([`ValidatedQuery::followup_through`]).
    pub data_end: Option<chrono::NaiveDate>,
}

impl ValidatedQuery {
    /// The last index date with complete follow-up, when the recipe has an outcome window
    /// and the question was validated against a datalager: index events after it are left
    /// out of the question's cells.
    pub fn followup_through(&self) -> Option<chrono::NaiveDate> {
        self.recipe.followup_complete_through(self.data_end?)
    }

    /// The last index date with complete follow-up when it falls inside the question's
    /// period (the question's last days are censored); None when the whole period has it.
    pub fn censored_through(&self) -> Option<chrono::NaiveDate> {
        let through = self.followup_through()?;
        (through < self.period.last_day()).then_some(through)
    }

    /// The query in its canonical form: what it asks, independent of id, spelling of the
    /// period, order of filter values and transport. Used for cache keys and audit.
    pub fn normalized(&self) -> IndicatorQuery {
        IndicatorQuery {
            query_id: String::new(),
            indicator: self.recipe.id.clone(),
            version: Some(self.recipe.version),
            breakdowns: self.breakdowns.iter().map(|b| b.name().to_string()).collect(),
            filters: self.filters.iter().map(|(b, v)| (b.name().to_string(), v.iter().cloned().collect())).collect(),
            period: self.period.to_string(),
            regions: self.regions.clone(),
            options: QueryOptions { no_cache: false, deadline_ms: None, ..self.options.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::embedded()
    }

    fn q(json: &str) -> Result<ValidatedQuery, QueryError> {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes())?;
        q.validate(&catalog(), Some((2021, 2025)))
    }

    #[test]
    fn json_and_protobuf_tickets_decode_to_the_same_query() {
        let json = r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","age_band"],
            "filters":{"sex":["female"]},"period":"2023..2025","options":{"min_cell_size":10}}"#;
        let (from_json, relay) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        assert!(relay.is_none());
        let relay = Relay { requester_subject: "CN=analyst".into(), ..Default::default() };
        let bytes = from_json.encode_ticket(Some(&relay));
        let (from_proto, relay_back) = IndicatorQuery::decode_ticket(&bytes).unwrap();
        assert_eq!(from_json, from_proto);
        assert_eq!(relay_back.unwrap().requester_subject, "CN=analyst");
        let v = from_json.validate(&catalog(), None).unwrap();
        assert_eq!(v.breakdowns, [Breakdown::Sex, Breakdown::AgeBand]);
        assert_eq!(v.options.min_cell_size, Some(10));
    }

    #[test]
    fn bad_queries_name_the_problem() {
        let cases = [
            (r#"{"indicator":"nope","period":"2023"}"#, "unknown indicator 'nope'"),
            (r#"{"indicator":"stroke_reperfusion","version":99,"period":"2023"}"#, "has no version 99"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","breakdowns":["shoe"]}"#, "unknown breakdown 'shoe'"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","breakdowns":["care_type"]}"#, "not allowed"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","breakdowns":["sex","sex"]}"#, "twice"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","breakdowns":["year","month"]}"#, "one time breakdown"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"sex":["x"]}}"#, "unknown value 'x'"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"age_band":["41-64"]}}"#, "unknown value '41-64'"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"year":["2023"]}}"#, "with the period"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"sex":[]}}"#, "lists no values"),
            (r#"{"indicator":"stroke_reperfusion","period":"2019..2020"}"#, "outside the data held"),
            (r#"{"indicator":"stroke_reperfusion","period":"2025..2023"}"#, "before the start"),
            (r#"{"indicator":"stroke_reperfusion"}"#, "missing field `period`"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","sql":"DROP"}"#, "unknown field `sql`"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023""#, "malformed ticket"),
            (r#"{"indicator":"hf_hospitalisation_rate","period":"2023Q1..2023Q2"}"#, "whole years"),
            (r#"{"indicator":"stroke_reperfusion","period":"2023","query_id":"a b"}"#, "query_id"),
        ];
        for (json, fragment) in cases {
            let e = q(json).unwrap_err();
            assert!(e.to_string().contains(fragment), "{json}: {e}");
        }
    }

    #[test]
    fn garbage_and_oversized_tickets_are_refused() {
        assert!(matches!(IndicatorQuery::decode_ticket(&[0xff, 0xff, 0xff]), Err(QueryError::MalformedTicket(_))));
        assert!(matches!(IndicatorQuery::decode_ticket(b""), Err(QueryError::MalformedTicket(_))));
        let big = vec![b' '; MAX_TICKET_BYTES + 1];
        assert!(matches!(IndicatorQuery::decode_ticket(&big), Err(QueryError::TooLarge { field: "ticket", .. })));
        let good = IndicatorQuery { indicator: "x".into(), period: "2023".into(), ..Default::default() };
        let bytes = good.encode_ticket(None);
        let truncated = &bytes[..bytes.len() - 2];
        assert!(matches!(IndicatorQuery::decode_ticket(truncated), Err(QueryError::MalformedTicket(_))));
    }

    #[test]
    fn normalized_form_ignores_spelling() {
        let a = q(r#"{"query_id":"a","indicator":"stroke_reperfusion","period":"2023..2023","filters":{"sex":["male","female"]}}"#).unwrap();
        let b = q(r#"{"query_id":"b","indicator":"stroke_reperfusion","version":1,"period":"2023","filters":{"sex":["female","male"]}}"#).unwrap();
        assert_eq!(a.normalized(), b.normalized());
    }

    #[test]
    fn standardisation_and_analyses_complete_the_question_or_name_the_field() {
        let v = q(r#"{"indicator":"stroke_mortality_30d","breakdowns":["sex"],"period":"2023","options":{"standardise":"esp2013"}}"#).unwrap();
        assert_eq!(v.breakdowns, [Breakdown::Sex, Breakdown::AgeBand]);
        assert!(v.options.totals);
        let field = |json: &str| match q(json) {
            Err(QueryError::Invalid { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(field(r#"{"indicator":"stroke_mortality_30d","period":"2023","options":{"standardise":"who2000"}}"#), "options.standardise");
        assert_eq!(field(r#"{"indicator":"kpp_cost","period":"2023","options":{"standardise":"esp2013"}}"#), "options.standardise");
        let v = q(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2021..2025","options":{"analysis":{"kind":"trend"}}}"#).unwrap();
        assert_eq!(v.breakdowns, [Breakdown::Sex, Breakdown::Year]);
        let v = q(r#"{"indicator":"stroke_reperfusion","period":"2021..2025","options":{"analysis":{"kind":"equity","dimension":"education"}}}"#).unwrap();
        assert_eq!(v.breakdowns, [Breakdown::Education]);
        let v = q(r#"{"indicator":"stroke_reperfusion","period":"2021..2025","options":{"analysis":{"kind":"funnel","units":"kommun","against":"target"}}}"#).unwrap();
        assert_eq!(v.breakdowns, [Breakdown::Kommun]);
        assert_eq!(field(r#"{"indicator":"stroke_reperfusion","period":"2023","options":{"analysis":{"kind":"equity","dimension":"kommun"}}}"#), "options.analysis.dimension");
        assert_eq!(field(r#"{"indicator":"stroke_reperfusion","period":"2023","options":{"analysis":{"kind":"funnel","against":"others"}}}"#), "options.analysis.against");
        assert_eq!(field(r#"{"indicator":"stroke_mortality_30d","period":"2023","options":{"analysis":{"kind":"compare","against":"target"}}}"#), "options.analysis.against");
        assert_eq!(field(r#"{"indicator":"diabetes_bp_bands","period":"2023","options":{"analysis":{"kind":"compare"}}}"#), "options.analysis");
        // JSON and protobuf carry the same analysis; an unknown kind in protobuf names the field.
        let (json_q, _) = IndicatorQuery::decode_ticket(br#"{"indicator":"stroke_reperfusion","period":"2023","options":{"standardise":"se2020","analysis":{"kind":"compare","against":"others"}}}"#).unwrap();
        let (proto_q, _) = IndicatorQuery::decode_ticket(&json_q.encode_ticket(None)).unwrap();
        assert_eq!(json_q, proto_q);
        let mut p = json_q.to_proto(None);
        p.options.as_mut().unwrap().analysis.as_mut().unwrap().kind = "histogram".into();
        match IndicatorQuery::decode_ticket(&prost::Message::encode_to_vec(&p)) {
            Err(QueryError::Invalid { field, .. }) => assert_eq!(field, "options.analysis.kind"),
            other => panic!("{other:?}"),
        }
    }
}
