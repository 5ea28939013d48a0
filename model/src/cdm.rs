//! The common data model (CDM): the tables an agent presents over its region's datalager.
//!
//! `docs/data-model.md` describes every table and column for people; this module is the
//! single definition in code. The synthetic generator writes exactly these schemas, the
//! agent's datalager backends expose them, and recipes query them by these names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Name of a CDM table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CdmTable {
    Persons,
    Contacts,
    Diagnoses,
    Procedures,
    Drugs,
    Measurements,
}

impl CdmTable {
    pub const ALL: [CdmTable; 6] = [
        CdmTable::Persons,
        CdmTable::Contacts,
        CdmTable::Diagnoses,
        CdmTable::Procedures,
        CdmTable::Drugs,
        CdmTable::Measurements,
    ];

    /// The table's name in SQL and its folder name in a Parquet/CSV datalager.
    pub fn name(self) -> &'static str {
        match self {
            CdmTable::Persons => "persons",
            CdmTable::Contacts => "contacts",
            CdmTable::Diagnoses => "diagnoses",
            CdmTable::Procedures => "procedures",
            CdmTable::Drugs => "drugs",
            CdmTable::Measurements => "measurements",
        }
    }

    pub fn from_name(name: &str) -> Option<CdmTable> {
        CdmTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Arrow schema every backend must present for this table.
    pub fn schema(self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, None);
        let f = |name: &str, dt: DataType, nullable: bool| Field::new(name, dt, nullable);
        let fields = match self {
            CdmTable::Persons => vec![
                f("person_id", DataType::Int64, false),
                f("birth_year", DataType::Int32, false),
                f("birth_month", DataType::Int32, false),
                f("sex", DataType::Utf8, false),
                f("kommun", DataType::Utf8, false),
                f("education", DataType::Utf8, true),
                f("birth_country", DataType::Utf8, false),
                f("income_quintile", DataType::Int32, true),
                f("death_date", DataType::Date32, true),
            ],
            CdmTable::Contacts => vec![
                f("contact_id", DataType::Int64, false),
                f("person_id", DataType::Int64, false),
                f("start_time", ts(), false),
                f("end_time", ts(), false),
                f("care_type", DataType::Utf8, false),
                f("acute", DataType::Boolean, false),
                f("profession", DataType::Utf8, false),
                f("care_unit", DataType::Utf8, false),
                f("home_kommun", DataType::Utf8, false),
                f("main_diagnosis", DataType::Utf8, true),
                f("cost_sek", DataType::Float64, true),
            ],
            CdmTable::Diagnoses => vec![
                f("contact_id", DataType::Int64, false),
                f("person_id", DataType::Int64, false),
                f("position", DataType::Int32, false),
                f("code", DataType::Utf8, false),
            ],
            CdmTable::Procedures => vec![
                f("contact_id", DataType::Int64, false),
                f("person_id", DataType::Int64, false),
                f("code", DataType::Utf8, false),
                f("performed_at", ts(), false),
            ],
            CdmTable::Drugs => vec![
                f("person_id", DataType::Int64, false),
                f("atc", DataType::Utf8, false),
                f("dispensed_date", DataType::Date32, false),
                f("packages", DataType::Int32, false),
                f("ddd", DataType::Float64, false),
            ],
            CdmTable::Measurements => vec![
                f("person_id", DataType::Int64, false),
                f("kind", DataType::Utf8, false),
                f("measured_at", DataType::Date32, false),
                f("value", DataType::Float64, false),
                f("unit", DataType::Utf8, false),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

impl std::fmt::Display for CdmTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Sex as recorded in the population register.
pub const SEXES: [&str; 2] = ["female", "male"];

/// Care types (vårdform).
pub const CARE_TYPES: [&str; 3] = ["inpatient", "specialist_outpatient", "primary_care"];

/// The two arms of a cohort recipe (breakdown `arm`).
pub const ARMS: [&str; 2] = ["exposed", "comparison"];
/// The three measures of a person in a cohort recipe (breakdown `measure`): the outcome in
/// the window before the index date, in the window after, and after minus before.
pub const MEASURES: [&str; 3] = ["before", "after", "change"];

/// Highest completed education (SUN 2000 levels, grouped).
/// `primary` = förgymnasial, `secondary` = gymnasial, `tertiary` = eftergymnasial.
/// A missing value is released as `unknown`.
pub const EDUCATION_LEVELS: [&str; 3] = ["primary", "secondary", "tertiary"];

/// Country-of-birth groups.
pub const BIRTH_COUNTRY_GROUPS: [&str; 4] = ["sweden", "nordic", "europe", "outside_europe"];

/// Kinds of clinical measurement and their units.
pub const MEASUREMENT_KINDS: [(&str, &str); 5] = [
    ("hba1c", "mmol/mol"),
    ("ldl", "mmol/L"),
    ("sbp", "mmHg"),
    ("dbp", "mmHg"),
    ("bmi", "kg/m2"),
];

/// Professions for contacts.
pub const PROFESSIONS: [&str; 3] = ["doctor", "nurse", "other"];

/// Name of the manifest file in a datalager folder.
pub const MANIFEST: &str = "manifest.json";

/// Describes a datalager folder: which region, which years, how it was made, and a data
/// version that changes whenever the data could differ. Written by `norrsken synth`;
/// region IT may write one for their own exports (see docs/data-model.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub generator: String,
    pub region: String,
    pub region_name: String,
    pub seed: u64,
    pub scale: f64,
    pub first_year: i32,
    pub last_year: i32,
    /// Rows per CDM table.
    pub rows: BTreeMap<String, u64>,
    pub data_version: String,
}

impl Manifest {
    pub const FORMAT: &'static str = "norrsken-datalager/1";

    /// Reads `manifest.json` from a datalager folder.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_round_trip() {
        for t in CdmTable::ALL {
            assert_eq!(CdmTable::from_name(t.name()), Some(t));
            assert!(t.schema().fields().len() >= 4);
        }
        assert_eq!(CdmTable::from_name("patients"), None);
    }
}
