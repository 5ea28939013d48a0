//! An independent computation of every catalog indicator in plain Rust over the rows of a
//! datalager, read with the Parquet reader (no DataFusion, no SQL). The engine's cells must
//! equal what this computes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::{Kind, Recipe, Unit};
use norrsken_model::query::{Perspective, ValidatedQuery};
use norrsken_synth::calendar::{civil_from_days, days_from_civil, MICROS_PER_DAY, MICROS_PER_HOUR};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub struct Person {
    pub birth_year: i32,
    pub birth_month: i32,
    pub sex: String,
    pub kommun: String,
    pub education: Option<String>,
    pub birth_country: String,
    pub income_quintile: Option<i32>,
    pub death_date: Option<i32>,
}

pub struct Contact {
    pub contact_id: i64,
    pub person_id: i64,
    pub start: i64,
    pub end: i64,
    pub care_type: String,
    pub acute: bool,
    pub main: Option<String>,
    pub cost: Option<f64>,
}

pub struct Procedure {
    pub contact_id: i64,
    pub person_id: i64,
    pub code: String,
    pub at: i64,
}

pub struct Drug {
    pub person_id: i64,
    pub atc: String,
    pub date: i32,
    pub packages: i32,
}

pub struct Measurement {
    pub person_id: i64,
    pub kind: String,
    pub date: i32,
    pub value: f64,
}

/// One region's datalager in memory.
pub struct Data {
    pub region: String,
    pub persons: HashMap<i64, Person>,
    pub contacts: Vec<Contact>,
    pub secondary: HashMap<i64, Vec<String>>,
    pub procedures: Vec<Procedure>,
    pub drugs: Vec<Drug>,
    pub measurements: Vec<Measurement>,
}

fn read(dir: &Path, table: &str) -> Vec<RecordBatch> {
    let path = dir.join(table).join("part-0.parquet");
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

fn s(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(name).unwrap();
    if c.is_null(i) {
        None
    } else {
        Some(c.as_string::<i32>().value(i).to_string())
    }
}

fn i64_(b: &RecordBatch, name: &str, i: usize) -> i64 {
    b.column_by_name(name).unwrap().as_primitive::<Int64Type>().value(i)
}

fn i32_(b: &RecordBatch, name: &str, i: usize) -> Option<i32> {
    let c = b.column_by_name(name).unwrap();
    (!c.is_null(i)).then(|| c.as_primitive::<Int32Type>().value(i))
}

fn ts(b: &RecordBatch, name: &str, i: usize) -> i64 {
    b.column_by_name(name).unwrap().as_primitive::<TimestampMicrosecondType>().value(i)
}

fn date(b: &RecordBatch, name: &str, i: usize) -> Option<i32> {
    let c = b.column_by_name(name).unwrap();
    (!c.is_null(i)).then(|| c.as_primitive::<Date32Type>().value(i))
}

fn f64_(b: &RecordBatch, name: &str, i: usize) -> Option<f64> {
    let c = b.column_by_name(name).unwrap();
    (!c.is_null(i)).then(|| c.as_primitive::<Float64Type>().value(i))
}

impl Data {
    pub fn load(dir: &Path, region: &str) -> Data {
        let mut persons = HashMap::new();
        for b in read(dir, "persons") {
            for i in 0..b.num_rows() {
                persons.insert(
                    i64_(&b, "person_id", i),
                    Person {
                        birth_year: i32_(&b, "birth_year", i).unwrap(),
                        birth_month: i32_(&b, "birth_month", i).unwrap(),
                        sex: s(&b, "sex", i).unwrap(),
                        kommun: s(&b, "kommun", i).unwrap(),
                        education: s(&b, "education", i),
                        birth_country: s(&b, "birth_country", i).unwrap(),
                        income_quintile: i32_(&b, "income_quintile", i),
                        death_date: date(&b, "death_date", i),
                    },
                );
            }
        }
        let mut contacts = Vec::new();
        for b in read(dir, "contacts") {
            for i in 0..b.num_rows() {
                contacts.push(Contact {
                    contact_id: i64_(&b, "contact_id", i),
                    person_id: i64_(&b, "person_id", i),
                    start: ts(&b, "start_time", i),
                    end: ts(&b, "end_time", i),
                    care_type: s(&b, "care_type", i).unwrap(),
                    acute: b.column_by_name("acute").unwrap().as_boolean().value(i),
                    main: s(&b, "main_diagnosis", i),
                    cost: f64_(&b, "cost_sek", i),
                });
            }
        }
        let mut secondary: HashMap<i64, Vec<String>> = HashMap::new();
        for b in read(dir, "diagnoses") {
            for i in 0..b.num_rows() {
                secondary.entry(i64_(&b, "contact_id", i)).or_default().push(s(&b, "code", i).unwrap());
            }
        }
        let mut procedures = Vec::new();
        for b in read(dir, "procedures") {
            for i in 0..b.num_rows() {
                procedures.push(Procedure {
                    contact_id: i64_(&b, "contact_id", i),
                    person_id: i64_(&b, "person_id", i),
                    code: s(&b, "code", i).unwrap(),
                    at: ts(&b, "performed_at", i),
                });
            }
        }
        let mut drugs = Vec::new();
        for b in read(dir, "drugs") {
            for i in 0..b.num_rows() {
                drugs.push(Drug {
                    person_id: i64_(&b, "person_id", i),
                    atc: s(&b, "atc", i).unwrap(),
                    date: date(&b, "dispensed_date", i).unwrap(),
                    packages: i32_(&b, "packages", i).unwrap(),
                });
            }
        }
        let mut measurements = Vec::new();
        for b in read(dir, "measurements") {
            for i in 0..b.num_rows() {
                measurements.push(Measurement {
                    person_id: i64_(&b, "person_id", i),
                    kind: s(&b, "kind", i).unwrap(),
                    date: date(&b, "measured_at", i).unwrap(),
                    value: f64_(&b, "value", i).unwrap(),
                });
            }
        }
        Data { region: region.to_string(), persons, contacts, secondary, procedures, drugs, measurements }
    }

    fn resident(&self, person: i64) -> bool {
        self.persons.get(&person).is_some_and(|p| p.kommun.starts_with(&self.region))
    }

    /// Inhabitants counted on 1 July of `year`.
    pub fn population_on_july_first(&self, year: i32) -> Vec<i64> {
        let july = days_from_civil(year, 7, 1);
        self.persons
            .iter()
            .filter(|(_, p)| p.kommun.starts_with(&self.region))
            .filter(|(_, p)| p.birth_year < year || (p.birth_year == year && p.birth_month <= 7))
            .filter(|(_, p)| p.death_date.map_or(true, |d| d >= july))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// One counted unit as a recipe defines it.
#[derive(Debug, Clone)]
pub struct RefUnit {
    pub unit_id: i64,
    pub person_id: i64,
    pub index: i64,
    pub numerator: bool,
    pub category: Option<&'static str>,
    pub value: f64,
    pub care_type: Option<String>,
    /// A cohort recipe's arm and measure.
    pub arm: Option<&'static str>,
    pub measure: Option<&'static str>,
}

fn unit(unit_id: i64, person_id: i64, index: i64) -> RefUnit {
    RefUnit { unit_id, person_id, index, numerator: false, category: None, value: 0.0, care_type: None, arm: None, measure: None }
}

/// The mobile team's cohort as docs/catalog.md defines it: residents who joined (their first
/// XMT01) and residents who met the criterion (an acute stay admitted within 90 days after
/// another acute admission; index = the earliest such discharge from 2023 on) without
/// joining; per person
/// the outcome in the 90 days before and after the index.
fn mobile_team(d: &Data, outcome: impl Fn(&Contact) -> f64) -> Vec<RefUnit> {
    let day = MICROS_PER_DAY;
    let mut exposed: BTreeMap<i64, i64> = BTreeMap::new();
    for p in d.procedures.iter().filter(|p| p.code == "XMT01") {
        let e = exposed.entry(p.person_id).or_insert(p.at);
        *e = (*e).min(p.at);
    }
    let mut stays: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let mut by_person: HashMap<i64, Vec<&Contact>> = HashMap::new();
    for c in &d.contacts {
        if c.care_type == "inpatient" && c.acute {
            stays.entry(c.person_id).or_default().push((c.start, c.end));
        }
        by_person.entry(c.person_id).or_default().push(c);
    }
    let mut cohort: Vec<(i64, i64, &'static str)> = exposed.iter().map(|(p, t)| (*p, *t, "exposed")).collect();
    for (p, ss) in &stays {
        if exposed.contains_key(p) {
            continue;
        }
        let since = days_from_civil(2023, 1, 1) as i64 * day;
        let index = ss.iter().filter(|s| s.1 >= since && ss.iter().any(|e| e.0 < s.0 && e.0 >= s.0 - 90 * day)).map(|s| s.1).min();
        if let Some(t) = index {
            cohort.push((*p, t, "comparison"));
        }
    }
    let mut out = Vec::new();
    for (p, t, arm) in cohort.into_iter().filter(|(p, _, _)| d.resident(*p)) {
        let sum = |from: i64, to: i64| by_person.get(&p).map_or(0.0, |cs| cs.iter().filter(|c| c.start >= from && c.start < to).map(|c| outcome(c)).sum::<f64>());
        let (before, after) = (sum(t - 90 * day, t), sum(t, t + 90 * day));
        // One unit id per person: the three measures share it.
        for (measure, value) in [("before", before), ("after", after), ("change", after - before)] {
            out.push(RefUnit { value, arm: Some(arm), measure: Some(measure), ..unit(p, p, t) });
        }
    }
    out
}

fn year_of_micros(t: i64) -> i32 {
    civil_from_days(t.div_euclid(MICROS_PER_DAY) as i32).0
}

fn day_of(t: i64) -> i32 {
    t.div_euclid(MICROS_PER_DAY) as i32
}

fn main_in(c: &Contact, lo: &str, hi: &str) -> bool {
    c.main.as_deref().is_some_and(|m| m >= lo && m < hi)
}

fn main_starts(c: &Contact, prefixes: &[&str]) -> bool {
    c.main.as_deref().is_some_and(|m| prefixes.iter().any(|p| m.starts_with(p)))
}

/// person -> first contact time over the whole datalager, contacts matching `pred`, residents only.
fn first_per_person(d: &Data, pred: impl Fn(&Contact) -> bool) -> BTreeMap<i64, i64> {
    let mut out: BTreeMap<i64, i64> = BTreeMap::new();
    for c in d.contacts.iter().filter(|c| pred(c) && d.resident(c.person_id)) {
        let e = out.entry(c.person_id).or_insert(c.start);
        *e = (*e).min(c.start);
    }
    out
}

/// (person, year) -> first contact time, over contacts matching `pred`, residents only.
fn first_per_person_year(d: &Data, pred: impl Fn(&Contact) -> bool) -> BTreeMap<(i64, i32), i64> {
    let mut out: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for c in d.contacts.iter().filter(|c| pred(c) && d.resident(c.person_id)) {
        let e = out.entry((c.person_id, year_of_micros(c.start))).or_insert(c.start);
        *e = (*e).min(c.start);
    }
    out
}

fn dispensed_years(d: &Data, pred: impl Fn(&str) -> bool) -> BTreeSet<(i64, i32)> {
    d.drugs.iter().filter(|x| x.packages > 0 && pred(&x.atc)).map(|x| (x.person_id, civil_from_days(x.date).0)).collect()
}

fn died_within_30(d: &Data, c: &Contact) -> bool {
    d.persons[&c.person_id].death_date.is_some_and(|dd| dd <= day_of(c.start) + 30)
}

/// Latest measurement of a kind per (person, year) among residents, ties broken by value.
fn latest(d: &Data, kind: &str) -> BTreeMap<(i64, i32), (i32, f64)> {
    let mut out: BTreeMap<(i64, i32), (i32, f64)> = BTreeMap::new();
    for m in d.measurements.iter().filter(|m| m.kind == kind && d.resident(m.person_id)) {
        let key = (m.person_id, civil_from_days(m.date).0);
        let e = out.entry(key).or_insert((m.date, m.value));
        if (m.date, m.value) > *e {
            *e = (m.date, m.value);
        }
    }
    out
}

/// The units of an indicator, written from the recipe's documented definition.
pub fn units(d: &Data, id: &str) -> Vec<RefUnit> {
    let mut out = Vec::new();
    match id {
        "stroke_reperfusion" => {
            let treated: BTreeSet<i64> =
                d.procedures.iter().filter(|p| p.code == "DT016" || p.code == "AAL10").map(|p| p.contact_id).collect();
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient" && c.acute && main_starts(c, &["I63"])) {
                out.push(RefUnit { numerator: treated.contains(&c.contact_id), ..unit(c.contact_id, c.person_id, c.start) });
            }
        }
        "stroke_mortality_30d" | "stroke_admissions" => {
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient" && c.acute && main_starts(c, &["I61", "I63", "I64"])) {
                out.push(RefUnit { numerator: died_within_30(d, c), ..unit(c.contact_id, c.person_id, c.start) });
            }
        }
        "sepsis_mortality_30d" => {
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient") {
                let r651 = d.secondary.get(&c.contact_id).is_some_and(|v| v.iter().any(|x| x == "R651"));
                if main_starts(c, &["A40", "A41"]) || r651 {
                    out.push(RefUnit { numerator: died_within_30(d, c), ..unit(c.contact_id, c.person_id, c.start) });
                }
            }
        }
        "hf_raas_bb" => {
            let hf_contacts: Vec<&Contact> = d
                .contacts
                .iter()
                .filter(|c| {
                    main_starts(c, &["I50"]) || d.secondary.get(&c.contact_id).is_some_and(|v| v.iter().any(|x| x.starts_with("I50")))
                })
                .collect();
            let mut first: BTreeMap<(i64, i32), i64> = BTreeMap::new();
            for c in hf_contacts.into_iter().filter(|c| d.resident(c.person_id)) {
                let e = first.entry((c.person_id, year_of_micros(c.start))).or_insert(c.start);
                *e = (*e).min(c.start);
            }
            let raas = dispensed_years(d, |a| a.starts_with("C09"));
            let bb = dispensed_years(d, |a| a.starts_with("C07"));
            for ((p, y), t) in first {
                out.push(RefUnit { numerator: raas.contains(&(p, y)) && bb.contains(&(p, y)), ..unit(p, p, t) });
            }
        }
        "copd_spirometry" => {
            let spiro: BTreeSet<(i64, i32)> =
                d.procedures.iter().filter(|p| p.code == "AF031").map(|p| (p.person_id, year_of_micros(p.at))).collect();
            for ((p, y), t) in first_per_person_year(d, |c| main_starts(c, &["J44"])) {
                out.push(RefUnit { numerator: spiro.contains(&(p, y)), ..unit(p, p, t) });
            }
        }
        "diabetes_hba1c_over_70" | "diabetes_hba1c_mean" => {
            let diabetes = first_per_person_year(d, |c| main_in(c, "E10", "E15"));
            for ((p, y), (day, v)) in latest(d, "hba1c") {
                if diabetes.contains_key(&(p, y)) {
                    let t = day as i64 * MICROS_PER_DAY;
                    if id == "diabetes_hba1c_mean" {
                        out.push(RefUnit { value: v, ..unit(p * 10_000 + y as i64, p, t) });
                    } else {
                        out.push(RefUnit { numerator: v > 70.0, ..unit(p, p, t) });
                    }
                }
            }
        }
        "diabetes_bp_bands" => {
            let diabetes = first_per_person_year(d, |c| main_in(c, "E10", "E15"));
            let dbp: HashMap<(i64, i32), Vec<f64>> = d.measurements.iter().filter(|m| m.kind == "dbp").fold(HashMap::new(), |mut acc, m| {
                acc.entry((m.person_id, m.date)).or_default().push(m.value);
                acc
            });
            let mut best: BTreeMap<(i64, i32), (i32, f64, f64)> = BTreeMap::new();
            for m in d.measurements.iter().filter(|m| m.kind == "sbp" && d.resident(m.person_id)) {
                for &dv in dbp.get(&(m.person_id, m.date)).into_iter().flatten() {
                    let key = (m.person_id, civil_from_days(m.date).0);
                    let cand = (m.date, m.value, dv);
                    let e = best.entry(key).or_insert(cand);
                    if cand > *e {
                        *e = cand;
                    }
                }
            }
            for ((p, y), (day, sbp, dbp)) in best {
                if diabetes.contains_key(&(p, y)) {
                    let category = if sbp <= 140.0 && dbp <= 85.0 {
                        "target"
                    } else if sbp >= 150.0 || dbp >= 90.0 {
                        "high"
                    } else {
                        "elevated"
                    };
                    out.push(RefUnit { category: Some(category), ..unit(p * 10_000 + y as i64, p, day as i64 * MICROS_PER_DAY) });
                }
            }
        }
        "diabetes_statin" => {
            let statin = dispensed_years(d, |a| a.starts_with("C10AA"));
            for ((p, y), t) in first_per_person_year(d, |c| main_in(c, "E10", "E15")) {
                out.push(RefUnit { numerator: statin.contains(&(p, y)), ..unit(p, p, t) });
            }
        }
        "hip_fracture_surgery_24h" => {
            let mut first_op: HashMap<i64, i64> = HashMap::new();
            for p in d.procedures.iter().filter(|p| p.code.starts_with("NFB") || p.code.starts_with("NFJ")) {
                let e = first_op.entry(p.contact_id).or_insert(p.at);
                *e = (*e).min(p.at);
            }
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient" && c.acute && main_in(c, "S720", "S723")) {
                let ok = first_op.get(&c.contact_id).is_some_and(|&t| t <= c.start + 24 * MICROS_PER_HOUR);
                out.push(RefUnit { numerator: ok, ..unit(c.contact_id, c.person_id, c.start) });
            }
        }
        "osteoporosis_after_fracture" => {
            let fractures = first_per_person_year(d, |c| main_in(c, "S720", "S723") || main_starts(c, &["S525", "S422", "S320", "S220"]));
            for ((p, _), t) in fractures {
                let treated = d.drugs.iter().any(|x| {
                    x.person_id == p && x.atc.starts_with("M05B") && x.packages > 0 && {
                        let dt = x.date as i64 * MICROS_PER_DAY;
                        dt >= t && dt < t + 365 * MICROS_PER_DAY
                    }
                });
                out.push(RefUnit { numerator: treated, ..unit(p, p, t) });
            }
        }
        "tonsillectomy_cold" => {
            let cold: BTreeSet<i64> = d.procedures.iter().filter(|p| p.code == "ZXE00").map(|p| p.contact_id).collect();
            for p in d.procedures.iter().filter(|p| p.code == "EMB10") {
                out.push(RefUnit { numerator: cold.contains(&p.contact_id), ..unit(p.contact_id, p.person_id, p.at) });
            }
        }
        "schizophrenia_antipsychotics" => {
            let ap = dispensed_years(d, |a| a.starts_with("N05A") && !a.starts_with("N05AN"));
            for ((p, y), t) in first_per_person_year(d, |c| main_starts(c, &["F20"])) {
                out.push(RefUnit { numerator: ap.contains(&(p, y)), ..unit(p, p, t) });
            }
        }
        "kpp_cost" => {
            for c in d.contacts.iter().filter(|c| c.cost.is_some()) {
                out.push(RefUnit { value: c.cost.unwrap_or(0.0), care_type: Some(c.care_type.clone()), ..unit(c.contact_id, c.person_id, c.start) });
            }
        }
        "hf_hospitalisation_rate" => {
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient" && c.acute && main_starts(c, &["I50"])) {
                out.push(unit(c.contact_id, c.person_id, c.start));
            }
        }
        "stroke_reperfusion_episodes" => {
            let treated: BTreeSet<i64> =
                d.procedures.iter().filter(|p| p.code == "DT016" || p.code == "AAL10").map(|p| p.contact_id).collect();
            let mut stays: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
            for c in d.contacts.iter().filter(|c| c.care_type == "inpatient" && c.acute && main_starts(c, &["I63"])) {
                stays.entry(c.person_id).or_default().push((c.start, c.contact_id));
            }
            for (p, mut list) in stays {
                list.sort();
                // A stay starting within a day of the previous one belongs to its episode.
                let mut episodes: Vec<Vec<(i64, i64)>> = Vec::new();
                let mut previous: Option<i64> = None;
                for (start, id) in list {
                    match previous {
                        Some(prev) if prev >= start - MICROS_PER_DAY => episodes.last_mut().unwrap().push((start, id)),
                        _ => episodes.push(vec![(start, id)]),
                    }
                    previous = Some(start);
                }
                for e in episodes {
                    let first = e.iter().map(|x| x.0).min().unwrap();
                    let id = e.iter().map(|x| x.1).min().unwrap();
                    out.push(RefUnit { numerator: e.iter().any(|x| treated.contains(&x.1)), ..unit(id, p, first) });
                }
            }
        }
        "hip_oa_first_line" => {
            let main: HashMap<i64, &Contact> = d.contacts.iter().map(|c| (c.contact_id, c)).collect();
            for op in d.procedures.iter().filter(|p| p.code.starts_with("NFB") && main.get(&p.contact_id).is_some_and(|c| main_starts(c, &["M16"]))) {
                let first_line = d.procedures.iter().any(|q| q.person_id == op.person_id && q.code == "QX001" && q.at < op.at && q.at >= op.at - 730 * MICROS_PER_DAY);
                out.push(RefUnit { numerator: first_line, ..unit(op.contact_id, op.person_id, op.at) });
            }
        }
        "ra_dmard_early" => {
            for (p, t) in first_per_person(d, |c| main_starts(c, &["M05", "M06"])) {
                let from = day_of(t) as i64 * MICROS_PER_DAY;
                let treated = d.drugs.iter().any(|x| {
                    x.person_id == p
                        && x.packages > 0
                        && (x.atc == "L04AX03" || x.atc == "L01BA01" || x.atc.starts_with("L04AB") || x.atc.starts_with("L04AC"))
                        && {
                            let dt = x.date as i64 * MICROS_PER_DAY;
                            dt >= from && dt < t + 90 * MICROS_PER_DAY
                        }
                });
                out.push(RefUnit { numerator: treated, ..unit(p, p, t) });
            }
        }
        "cli_amputation_1y" => {
            for (p, t) in first_per_person(d, |c| main_starts(c, &["I702"])) {
                let amputated = d.procedures.iter().any(|q| q.person_id == p && (q.code.starts_with("NGQ") || q.code.starts_with("NFQ")) && q.at >= t && q.at < t + 365 * MICROS_PER_DAY);
                out.push(RefUnit { numerator: amputated, ..unit(p, p, t) });
            }
        }
        "dementia_basic_investigation" => {
            for (p, t) in first_per_person(d, |c| main_in(c, "F00", "F04") || main_starts(c, &["G30"])) {
                let tested = d.measurements.iter().any(|m| {
                    m.person_id == p && m.kind == "mmse" && {
                        let dt = m.date as i64 * MICROS_PER_DAY;
                        dt >= t - 180 * MICROS_PER_DAY && dt < t + 30 * MICROS_PER_DAY
                    }
                });
                out.push(RefUnit { numerator: tested, ..unit(p, p, t) });
            }
        }
        "mobile_team_inpatient" => out = mobile_team(d, |c| if c.care_type == "inpatient" { 1.0 } else { 0.0 }),
        "mobile_team_cost" => out = mobile_team(d, |c| c.cost.unwrap_or(0.0)),
        other => panic!("no reference for {other}"),
    }
    out
}

fn label(b: Breakdown, recipe: &Recipe, p: &Person, year: i32, month: u32, age: i64, u: &RefUnit) -> Option<String> {
    Some(match b {
        Breakdown::Year => year.to_string(),
        Breakdown::Quarter => format!("{year}Q{}", (month - 1) / 3 + 1),
        Breakdown::Month => format!("{year}-{month:02}"),
        Breakdown::Sex => p.sex.clone(),
        Breakdown::AgeBand => recipe.age_bands.labels()[recipe.age_bands.band_of(age)?].clone(),
        Breakdown::Kommun if norrsken_model::geography::find_kommun(&p.kommun).is_some() => p.kommun.clone(),
        Breakdown::Kommun => "unknown".into(),
        Breakdown::Education => p.education.clone().unwrap_or_else(|| "unknown".into()),
        Breakdown::BirthCountry => p.birth_country.clone(),
        Breakdown::IncomeQuintile => p.income_quintile.map_or("unknown".into(), |q| q.to_string()),
        Breakdown::CareType => u.care_type.clone()?,
        Breakdown::Arm => u.arm?.to_string(),
        Breakdown::Measure => u.measure?.to_string(),
    })
}

/// The expected components of one cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefCell {
    pub units: i64,
    pub persons: i64,
    pub numerator: i64,
    pub numerator_persons: i64,
    pub value_sum: f64,
    pub population: i64,
}

type Key = (String, Vec<String>, Option<String>);

/// A cell and every margin it adds to: each subset of its labels replaced by 'total'.
fn with_margins(cell: &(String, Vec<String>)) -> Vec<(String, Vec<String>)> {
    let n = cell.1.len();
    (0..(1u32 << n))
        .map(|mask| {
            let labels = (0..n).map(|i| if mask & (1 << i) != 0 { cell.1[i].clone() } else { "total".to_string() }).collect();
            (cell.0.clone(), labels)
        })
        .collect()
}

/// Computes every cell of a validated query in plain Rust.
pub fn cells(d: &Data, q: &ValidatedQuery) -> BTreeMap<Key, RefCell> {
    let recipe = &q.recipe;
    let (sy, sm) = q.period.start();
    let (ey, em) = q.period.end_exclusive();
    let start = days_from_civil(sy, sm, 1) as i64 * MICROS_PER_DAY;
    let end = days_from_civil(ey, em, 1) as i64 * MICROS_PER_DAY;
    // Follow-up per case: an index event whose outcome window of `follow_up_days` ends after
    // the data's last day (31 December of its last year) is left out.
    let censor = match (recipe.follow_up_days.filter(|d| *d > 0), q.data_end) {
        (Some(days), Some(end)) => {
            use chrono::Datelike;
            let last = days_from_civil(end.year(), end.month(), end.day());
            Some((last - days as i32 + 1) as i64 * MICROS_PER_DAY)
        }
        _ => None,
    };

    let labelled = |p: &Person, t: i64, u: &RefUnit| -> Option<(String, Vec<String>)> {
        let (y, m, _) = civil_from_days(day_of(t));
        let age = (y - p.birth_year - if (m as i32) < p.birth_month { 1 } else { 0 }) as i64;
        if age < recipe.min_age as i64 {
            return None;
        }
        for (b, values) in &q.filters {
            if !values.contains(&label(*b, recipe, p, y, m, age, u)?) {
                return None;
            }
        }
        let labels = q.breakdowns.iter().map(|b| label(*b, recipe, p, y, m, age, u)).collect::<Option<Vec<_>>>()?;
        let region = match q.options.perspective {
            Perspective::Provider => d.region.clone(),
            Perspective::Population => p.kommun[..2].to_string(),
        };
        Some((region, labels))
    };

    // Units per cell (and per margin cell, where some breakdowns read 'total'),
    // deduplicated for person-based recipes.
    let mut per_cell: BTreeMap<(String, Vec<String>), BTreeMap<i64, RefUnit>> = BTreeMap::new();
    let mut event_cells: BTreeMap<(String, Vec<String>), Vec<RefUnit>> = BTreeMap::new();
    for u in units(d, &recipe.id) {
        if u.index < start || u.index >= end || censor.is_some_and(|c| u.index >= c) {
            continue;
        }
        let p = &d.persons[&u.person_id];
        if recipe.kind == Kind::Rate && q.options.perspective == Perspective::Provider && !p.kommun.starts_with(&d.region) {
            continue;
        }
        let Some(fine) = labelled(p, u.index, &u) else { continue };
        for key in with_margins(&fine) {
            if recipe.unit == Unit::Person {
                let e = per_cell.entry(key).or_default().entry(u.unit_id).or_insert_with(|| u.clone());
                e.numerator |= u.numerator;
                // A unit counted once in a cell carries its largest value (as the engine).
                e.value = e.value.max(u.value);
            } else {
                event_cells.entry(key).or_default().push(u.clone());
            }
        }
    }
    for (k, v) in per_cell {
        event_cells.insert(k, v.into_values().collect());
    }

    let mut out: BTreeMap<Key, RefCell> = BTreeMap::new();
    for ((region, labels), us) in event_cells {
        let persons: BTreeSet<i64> = us.iter().map(|u| u.person_id).collect();
        if recipe.is_distribution() {
            for c in &recipe.categories {
                let inside: Vec<&RefUnit> = us.iter().filter(|u| u.category == Some(c.code.as_str())).collect();
                let np: BTreeSet<i64> = inside.iter().map(|u| u.person_id).collect();
                out.insert(
                    (region.clone(), labels.clone(), Some(c.code.clone())),
                    RefCell {
                        units: us.len() as i64,
                        persons: persons.len() as i64,
                        numerator: inside.len() as i64,
                        numerator_persons: np.len() as i64,
                        ..Default::default()
                    },
                );
            }
        } else {
            let num: Vec<&RefUnit> = us.iter().filter(|u| u.numerator).collect();
            let np: BTreeSet<i64> = num.iter().map(|u| u.person_id).collect();
            out.insert(
                (region, labels, None),
                RefCell {
                    units: us.len() as i64,
                    persons: persons.len() as i64,
                    numerator: if recipe.kind == Kind::Proportion { num.len() as i64 } else { 0 },
                    numerator_persons: if recipe.kind == Kind::Proportion { np.len() as i64 } else { 0 },
                    value_sum: us.iter().map(|u| u.value).sum(),
                    population: 0,
                },
            );
        }
    }
    if recipe.kind == Kind::Rate {
        for year in q.period.first_year()..=q.period.last_year() {
            for id in d.population_on_july_first(year) {
                let p = &d.persons[&id];
                let t = days_from_civil(year, 7, 1) as i64 * MICROS_PER_DAY;
                let Some(fine) = labelled(p, t, &unit(0, id, t)) else { continue };
                for (_, labels) in with_margins(&(d.region.clone(), fine.1)) {
                    out.entry((d.region.clone(), labels, None)).or_default().population += 1;
                }
            }
        }
    }
    out
}
