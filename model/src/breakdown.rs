//! The fixed vocabulary of breakdowns (dimensions a cell can be split by) and their values.
//!
//! Requesters never send SQL or free text: a breakdown is one of these names and a filter
//! value must be one of the breakdown's listed values. This is what makes overlapping or
//! ad-hoc populations inexpressible.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cdm::{ARMS, BIRTH_COUNTRY_GROUPS, CARE_TYPES, EDUCATION_LEVELS, MEASURES, SEXES};
use crate::geography;

/// A dimension a cell can be split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    Year,
    Quarter,
    Month,
    Sex,
    AgeBand,
    Kommun,
    Education,
    BirthCountry,
    IncomeQuintile,
    CareType,
    /// A cohort recipe's arm: exposed or comparison.
    Arm,
    /// A cohort recipe's measure: before, after or change.
    Measure,
}

/// How fine a time breakdown or period bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeGrain {
    Month,
    Quarter,
    Year,
}

impl TimeGrain {
    pub fn name(self) -> &'static str {
        match self {
            TimeGrain::Month => "month",
            TimeGrain::Quarter => "quarter",
            TimeGrain::Year => "year",
        }
    }
}

/// How fine a geographic breakdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Geography {
    Kommun,
    Region,
}

impl Breakdown {
    pub const ALL: [Breakdown; 12] = [
        Breakdown::Year,
        Breakdown::Quarter,
        Breakdown::Month,
        Breakdown::Sex,
        Breakdown::AgeBand,
        Breakdown::Kommun,
        Breakdown::Education,
        Breakdown::BirthCountry,
        Breakdown::IncomeQuintile,
        Breakdown::CareType,
        Breakdown::Arm,
        Breakdown::Measure,
    ];

    /// The name used in queries, recipes, policies and result columns.
    pub fn name(self) -> &'static str {
        match self {
            Breakdown::Year => "year",
            Breakdown::Quarter => "quarter",
            Breakdown::Month => "month",
            Breakdown::Sex => "sex",
            Breakdown::AgeBand => "age_band",
            Breakdown::Kommun => "kommun",
            Breakdown::Education => "education",
            Breakdown::BirthCountry => "birth_country",
            Breakdown::IncomeQuintile => "income_quintile",
            Breakdown::CareType => "care_type",
            Breakdown::Arm => "arm",
            Breakdown::Measure => "measure",
        }
    }

    pub fn parse(name: &str) -> Option<Breakdown> {
        let name = name.trim();
        Breakdown::ALL.into_iter().find(|b| b.name() == name)
    }

    /// All breakdown names, for error messages.
    pub fn all_names() -> String {
        Breakdown::ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    }

    /// The time grain, for the three time breakdowns.
    pub fn time_grain(self) -> Option<TimeGrain> {
        match self {
            Breakdown::Year => Some(TimeGrain::Year),
            Breakdown::Quarter => Some(TimeGrain::Quarter),
            Breakdown::Month => Some(TimeGrain::Month),
            _ => None,
        }
    }

    /// Whether a filter on this breakdown is accepted (time is chosen with the period instead).
    pub fn filterable(self) -> bool {
        self.time_grain().is_none()
    }

    /// The values a filter on this breakdown may name. `age_bands` are the recipe's bands.
    /// Time breakdowns have no fixed list (see [`crate::period`]).
    pub fn allowed_values(self, age_bands: &AgeBands) -> Vec<String> {
        let owned = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Breakdown::Sex => owned(&SEXES),
            Breakdown::AgeBand => age_bands.labels(),
            // A unit registered in a code outside the vocabulary (another county's kommun, or
            // a code that does not exist) is labelled `unknown`.
            Breakdown::Kommun => {
                let mut v = owned(&geography::kommun_codes());
                v.push(UNKNOWN.to_string());
                v
            }
            Breakdown::Education => {
                let mut v = owned(&EDUCATION_LEVELS);
                v.push(UNKNOWN.to_string());
                v
            }
            Breakdown::BirthCountry => owned(&BIRTH_COUNTRY_GROUPS),
            Breakdown::IncomeQuintile => {
                let mut v: Vec<String> = (1..=5).map(|q| q.to_string()).collect();
                v.push(UNKNOWN.to_string());
                v
            }
            Breakdown::CareType => owned(&CARE_TYPES),
            Breakdown::Arm => owned(&ARMS),
            Breakdown::Measure => owned(&MEASURES),
            Breakdown::Year | Breakdown::Quarter | Breakdown::Month => Vec::new(),
        }
    }
}

impl fmt::Display for Breakdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The label of a margin: the cell summed over a breakdown.
pub const TOTAL: &str = "total";

/// Label for a missing attribute (education, income quintile).
pub const UNKNOWN: &str = "unknown";

/// A recipe's fixed age bands, given by their lower bounds. The first bound is the
/// youngest age the recipe counts. `[18, 45, 65, 80]` means 18-44, 45-64, 65-79, 80+.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgeBands(pub Vec<u32>);

impl AgeBands {
    pub fn labels(&self) -> Vec<String> {
        let mut labels = Vec::with_capacity(self.0.len());
        for (i, &lower) in self.0.iter().enumerate() {
            match self.0.get(i + 1) {
                Some(next) => labels.push(format!("{lower}-{}", next - 1)),
                None => labels.push(format!("{lower}+")),
            }
        }
        labels
    }

    /// Index of the band an age falls in; `None` below the first bound.
    pub fn band_of(&self, age: i64) -> Option<usize> {
        self.0.iter().rposition(|&lower| age >= lower as i64)
    }

    /// Checks the bounds: at least one, strictly increasing, below 120.
    pub fn validate(&self) -> Result<(), String> {
        for w in self.0.windows(2) {
            if w[1] <= w[0] {
                return Err(format!("age band bounds must increase strictly, but {} follows {}", w[1], w[0]));
            }
        }
        if let Some(&last) = self.0.last() {
            if last >= 120 {
                return Err(format!("age band bound {last} must be below 120"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_band_labels_and_lookup_agree() {
        let bands = AgeBands(vec![0, 18, 45, 65, 80]);
        assert_eq!(bands.labels(), ["0-17", "18-44", "45-64", "65-79", "80+"]);
        assert_eq!(bands.band_of(0), Some(0));
        assert_eq!(bands.band_of(17), Some(0));
        assert_eq!(bands.band_of(18), Some(1));
        assert_eq!(bands.band_of(79), Some(3));
        assert_eq!(bands.band_of(104), Some(4));
        let adults = AgeBands(vec![50, 65, 80]);
        assert_eq!(adults.labels(), ["50-64", "65-79", "80+"]);
        assert_eq!(adults.band_of(49), None);
    }

    #[test]
    fn bad_age_bands_are_rejected() {
        assert!(AgeBands(vec![18, 18]).validate().is_err());
        assert!(AgeBands(vec![65, 45]).validate().is_err());
        assert!(AgeBands(vec![50, 130]).validate().is_err());
        assert!(AgeBands(vec![50, 65, 80]).validate().is_ok());
    }

    #[test]
    fn breakdown_names_round_trip() {
        for b in Breakdown::ALL {
            assert_eq!(Breakdown::parse(b.name()), Some(b));
        }
        assert_eq!(Breakdown::parse("age"), None);
    }
}
