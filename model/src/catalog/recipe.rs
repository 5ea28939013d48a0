//! A recipe: what one indicator counts, in the catalog's types.

use super::*;

/// What an indicator measures, which decides its additive components and its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// numerator / denominator, both counts of units.
    Proportion,
    /// events per `rate_per` inhabitant-years; the denominator is the resident population.
    Rate,
    /// mean of a value per unit.
    Mean,
    /// number of units.
    Count,
    /// sum of a cost in SEK.
    CostSum,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Person => "person",
            Unit::Event => "event",
        }
    }
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Vardforlopp => "vardforlopp",
            Source::Npo => "npo",
            Source::Primarvardskvalitet => "primarvardskvalitet",
            Source::Kpp => "kpp",
            Source::Evaluation => "evaluation",
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Proportion, Kind::Rate, Kind::Mean, Kind::Count, Kind::CostSum];

    /// The kind of a name (`proportion`, `cost_sum`).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Proportion => "proportion",
            Kind::Rate => "rate",
            Kind::Mean => "mean",
            Kind::Count => "count",
            Kind::CostSum => "cost_sum",
        }
    }
}

/// What one counted unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Distinct persons: a person counts once per cell.
    Person,
    /// Events (episodes, contacts, operations): each counts.
    Event,
}

/// Where the indicator's definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Nationella vårdförlopp (standardised clinical pathways).
    Vardforlopp,
    /// Nationellt programområde (national programme area) indicators.
    Npo,
    /// PrimärvårdsKvalitet (SKR's primary-care quality indicators).
    Primarvardskvalitet,
    /// Kostnad per patient (cost per patient).
    Kpp,
    /// A shared evaluation between regions (a cohort recipe: an intervention's effect).
    Evaluation,
}

/// Swedish and English text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub sv: String,
    pub en: String,
}

/// One value of a distribution indicator's outcome (e.g. a blood-pressure band).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub sv: String,
    pub en: String,
}

/// The range a region-level value is expected to lie in (checked on synthetic data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plausible {
    pub min: f64,
    pub max: f64,
}


/// Which direction of an indicator's value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// A published target level for an indicator's value, and where it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// In the value's own scale: a share as a fraction (0.75 for 75 %), a rate per
    /// `rate_per`, a mean in its unit.
    pub value: f64,
    /// Who publishes the target, the document and year.
    pub source: String,
}

/// A validated recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    pub id: String,
    pub version: u32,
    pub source: Source,
    pub kind: Kind,
    pub unit: Unit,
    pub min_cell_size: u32,
    pub breakdowns: Vec<Breakdown>,
    /// Youngest age (at the index date) the recipe counts.
    pub min_age: u32,
    pub age_bands: AgeBands,
    pub period_attribute: String,
    pub value_unit: Option<String>,
    pub rate_per: Option<u32>,
    /// Days after the index date the outcome is followed (an outcome window).
    pub follow_up_days: Option<u32>,
    /// Which direction of the value is better, when the recipe says.
    pub better: Option<Better>,
    /// A published target level, when there is one.
    pub target: Option<Target>,
    /// Whether the value may be directly age-standardised (rates and shares whose age
    /// structure differs between regions).
    pub age_standardisation: bool,
    /// The unit query. Trusted catalog text, never requester input; see docs/catalog.md for
    /// the columns it must return.
    pub sql: String,
    pub title: Text,
    pub description: Text,
    pub population: Text,
    pub numerator: Option<Text>,
    pub categories: Vec<Category>,
    pub plausible: Option<Plausible>,
    /// The national programme area (nationellt programområde) the indicator belongs to, for
    /// finding it in the catalog and choosing a report's indicators.
    pub area: Option<Text>,
    /// A cohort recipe's definition (its unit query is compiled from it).
    pub cohort: Option<Cohort>,
    /// SHA-256 of the recipe file, hex.
    pub hash: String,
    /// The file the recipe came from.
    pub file: String,
}

impl Recipe {
    /// What one unit of the answer is, in words: persons counted once in the period, events,
    /// inhabitant-years or patients. `years` is the number of years the question spans.
    pub fn unit_semantics(&self, years: i32) -> String {
        let several = years > 1;
        match (self.kind, self.unit) {
            (Kind::Rate, _) => format!(
                "events per {} inhabitant-years: each event counts, the denominator sums the residents of each year of the period",
                self.rate_per.unwrap_or(1000)
            ),
            (Kind::CostSum, _) => "cost per patient: each patient counts once in a cell, with the cost of all their contacts in it; contacts count as events".to_string(),
            (_, Unit::Person) if several => {
                "persons counted once in the period: a person in the population in any of its years counts once in a cell (not once per year)".to_string()
            }
            (_, Unit::Person) => "persons: each person counts once in a cell".to_string(),
            (_, Unit::Event) => "events: every event counts, so a person with two counts twice".to_string(),
        }
    }

    /// The last index date whose outcome window ends inside data that end on `data_end`:
    /// index events after it lack part of their follow-up and are left out of every cell
    /// (censored at the data's edge). None for recipes without an outcome window.
    pub fn followup_complete_through(&self, data_end: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
        let days = self.follow_up_days.filter(|d| *d > 0)?;
        data_end.checked_sub_signed(chrono::Duration::days(days as i64))
    }

    pub fn allows(&self, b: Breakdown) -> bool {
        self.breakdowns.contains(&b)
    }
    /// `id@version`, the form used in logs and metadata.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
    /// Whether the answer has one row per outcome category.
    pub fn is_distribution(&self) -> bool {
        !self.categories.is_empty()
    }
}
