//! Simulates one person over the generated years: their register row, their care contacts
//! (in whichever region gave the care), diagnoses, procedures, dispensed drugs and
//! measurements.

mod care;
mod episodes;
mod intervention;
mod pathways;

pub use intervention::{Exposure, Intervention};

use crate::calendar::{age_at, civil_from_days, days_from_civil, days_in_year, micros_of_day, MICROS_PER_DAY, MICROS_PER_HOUR};
use crate::model::{self, RegionProfile};
use crate::rng::Rng;

/// Where a contact took place: its region (index into the run's region table) and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CareUnit {
    pub region: usize,
    pub place: &'static str,
    pub department: &'static str,
}

#[derive(Debug, Clone)]
pub struct PersonRow {
    pub person_id: i64,
    pub birth_year: i32,
    pub birth_month: i32,
    pub female: bool,
    pub kommun: &'static str,
    pub education: Option<&'static str>,
    pub birth_country: &'static str,
    pub income_quintile: Option<i32>,
    pub death_date: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct ContactRow {
    pub contact_id: i64,
    pub start: i64,
    pub end: i64,
    pub care_type: &'static str,
    pub acute: bool,
    pub profession: &'static str,
    pub unit: CareUnit,
    pub main_diagnosis: Option<&'static str>,
    pub cost: f64,
    pub secondary: Vec<&'static str>,
    pub procedures: Vec<(&'static str, i64)>,
}

#[derive(Debug, Clone)]
pub struct DrugRow {
    pub atc: &'static str,
    pub date: i32,
    pub packages: i32,
    pub ddd: f64,
}

#[derive(Debug, Clone)]
pub struct MeasurementRow {
    pub kind: &'static str,
    pub date: i32,
    pub value: f64,
    pub unit: &'static str,
}

/// Everything generated for one person.
#[derive(Debug, Clone)]
pub struct PersonHistory {
    pub person: PersonRow,
    pub home_region: usize,
    pub contacts: Vec<ContactRow>,
    pub drugs: Vec<DrugRow>,
    pub measurements: Vec<MeasurementRow>,
    /// What the intervention did, when the person joined it (the truth evaluations are
    /// checked against).
    pub exposure: Option<Exposure>,
}

/// The fixed context of a run: the regions simulated and the years.
pub struct World {
    /// County codes of every simulated region, in order.
    pub region_codes: Vec<&'static str>,
    pub profiles: Vec<RegionProfile>,
    pub first_year: i32,
    pub last_year: i32,
    /// The intervention, when one is simulated.
    pub intervention: Option<Intervention>,
}

impl World {
    fn region_index(&self, code: &str) -> Option<usize> {
        self.region_codes.iter().position(|c| *c == code)
    }
}

/// How a person enters the simulation.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// Alive on the first day of the first year, drawn from the kommun's age structure.
    Resident { share_65_plus: f64 },
    /// Born during the generated years.
    Newborn,
}

const BORDER_KOMMUNER: [&str; 4] = ["2583", "2518", "2521", "2584"];

fn year_factor(world: &World, year: i32) -> f64 {
    (year - world.first_year.max(2021)) as f64
}

struct Sim<'a> {
    world: &'a World,
    rng: Rng,
    person: PersonRow,
    home: usize,
    profile: RegionProfile,
    contacts: Vec<ContactRow>,
    drugs: Vec<DrugRow>,
    measurements: Vec<MeasurementRow>,
    /// First day after the person's life within the simulation (death or end of period).
    end_day: i32,
    next_contact: i64,
}

/// Simulates one person. `person_id` must be unique across the whole run; all randomness
/// is drawn from a stream keyed by (seed, person_id), so a person's history does not depend
/// on which other persons or regions are generated.
pub fn simulate(world: &World, seed: u64, person_id: i64, home: usize, kommun: &'static str, entry: Entry) -> PersonHistory {
    let mut rng = Rng::for_stream(seed, person_id as u64);
    let profile = world.profiles[home];
    let start = days_from_civil(world.first_year, 1, 1);
    let end = days_from_civil(world.last_year + 1, 1, 1);

    let (birth_year, birth_month) = match entry {
        Entry::Resident { share_65_plus } => {
            let band = rng.weighted(&model::age_band_weights(share_65_plus));
            let age = (band as i64 * 5 + rng.range(0, 4)) as i32;
            let month = rng.range(1, 12) as i32;
            let year = if month > 1 { world.first_year - age - 1 } else { world.first_year - age };
            (year, month)
        }
        Entry::Newborn => {
            let day = rng.range(start as i64, end as i64 - 1) as i32;
            let (y, m, _) = civil_from_days(day);
            (y, m as i32)
        }
    };
    let age_start = world.first_year - birth_year;
    let female = rng.chance(if age_start >= 80 { 0.6 } else { 0.497 });

    let border = BORDER_KOMMUNER.contains(&kommun);
    let birth_country = *rng.pick(&[
        ("sweden", 1.0 - profile.foreign_born - if border { 0.12 } else { 0.025 }),
        ("nordic", if border { 0.12 } else { 0.025 }),
        ("europe", profile.foreign_born * 0.4),
        ("outside_europe", profile.foreign_born * 0.6),
    ]);
    let foreign = birth_country != "sweden";
    let education = if age_start < 20 || rng.chance(if foreign { 0.064 } else { 0.017 }) {
        None
    } else {
        let w: [f64; 3] = if birth_year < 1950 {
            [0.45, 0.35, 0.20]
        } else if birth_year < 1970 {
            [0.22, 0.45, 0.33]
        } else {
            [0.10, 0.45, 0.45]
        };
        Some(["primary", "secondary", "tertiary"][rng.weighted(&w)])
    };
    let income_quintile = if rng.chance(0.01) {
        None
    } else {
        let shift = match education {
            Some("tertiary") => 0.4,
            Some("primary") => -0.4,
            _ => 0.0,
        } + if (20..30).contains(&age_start) { -0.3 } else if age_start >= 65 { -0.2 } else { 0.0 }
            + if foreign { -0.3 } else { 0.0 };
        let z = rng.normal() + shift;
        Some([-0.8416, -0.2533, 0.2533, 0.8416].iter().filter(|&&c| z > c).count() as i32 + 1)
    };

    let person = PersonRow {
        person_id,
        birth_year,
        birth_month,
        female,
        kommun,
        education,
        birth_country,
        income_quintile,
        death_date: None,
    };
    let mut sim = Sim {
        world,
        rng,
        person,
        home,
        profile,
        contacts: Vec::new(),
        drugs: Vec::new(),
        measurements: Vec::new(),
        end_day: end,
        next_contact: 0,
    };
    sim.run();
    // The newer pathways from a stream of their own, so that nothing above changes.
    let mut pathway_rng = Rng::for_stream(seed ^ 0x7061_7468_7761_7973, person_id as u64);
    sim.pathways(&mut pathway_rng);
    // The intervention last, from a stream of its own: nothing above changes with it.
    let exposure = world.intervention.as_ref().and_then(|iv| {
        let mut rng = Rng::for_stream(seed ^ 0x6d6f_6269_6c65_7465, person_id as u64);
        sim.intervention(iv, &mut rng)
    });
    sim.trim_to_life();
    PersonHistory {
        person: sim.person,
        home_region: home,
        contacts: sim.contacts,
        drugs: sim.drugs,
        measurements: sim.measurements,
        exposure,
    }
}

#[derive(Default, Clone, Copy)]
struct Conditions {
    diabetes: Option<&'static str>,
    heart_failure: bool,
    copd: bool,
    schizophrenia: bool,
    on_statin: bool,
    on_raas: bool,
    on_bb: bool,
    hba1c_base: f64,
    sbp_base: f64,
    antipsychotic_adherence: f64,
}

impl<'a> Sim<'a> {
    fn birth_day(&self) -> i32 {
        days_from_civil(self.person.birth_year, self.person.birth_month as u32, 1)
    }

    fn age(&self, day: i32) -> i32 {
        age_at(self.person.birth_year, self.person.birth_month as u32, day)
    }

    fn alive_on(&self, day: i32) -> bool {
        day >= self.birth_day() && day < self.end_day
    }

    fn die(&mut self, day: i32) {
        if day < self.end_day {
            self.end_day = day + 1;
            self.person.death_date = Some(day);
        }
    }

    fn home_unit(&self, department: &'static str) -> CareUnit {
        CareUnit { region: self.home, place: model::home_hospital(self.person.kommun), department }
    }

    fn primary_unit(&self) -> CareUnit {
        CareUnit { region: self.home, place: "VC", department: self.person.kommun }
    }

    /// Where ordinary specialised care happens: mostly at home, sometimes at the university
    /// hospital (highly specialised care), occasionally in another region (visitors).
    fn specialised_unit(&mut self, department: &'static str) -> CareUnit {
        let nus = self.world.region_index(model::UNIVERSITY_HOSPITAL_REGION);
        if let Some(nus) = nus {
            if nus != self.home && self.rng.chance(0.02) {
                return CareUnit { region: nus, place: model::UNIVERSITY_HOSPITAL, department };
            }
        }
        if self.world.region_codes.len() > 1 && self.rng.chance(0.005) {
            let mut other = self.rng.range(0, self.world.region_codes.len() as i64 - 2) as usize;
            if other >= self.home {
                other += 1;
            }
            let place = model::main_hospital(self.world.region_codes[other]);
            return CareUnit { region: other, place, department };
        }
        self.home_unit(department)
    }

    fn cost(&mut self, unit: CareUnit, base: f64, sigma: f64, outlier: f64) -> f64 {
        let level = self.world.profiles[unit.region].cost_level;
        let mut c = self.rng.lognormal(base, sigma) * level;
        if self.rng.chance(outlier) {
            c *= self.rng.range(3, 8) as f64;
        }
        c.round()
    }

    fn add_contact(&mut self, mut c: ContactRow) -> usize {
        // Contact ids are person_id * 10 000 + a sequence number; nobody gets near 10 000
        // contacts in the generated years, but the id space must never overlap.
        self.next_contact = self.next_contact.min(9_999);
        c.contact_id = self.person.person_id * 10_000 + self.next_contact;
        self.next_contact += 1;
        self.contacts.push(c);
        self.contacts.len() - 1
    }

    fn inpatient(&mut self, unit: CareUnit, day: i32, acute: bool, dx: &'static str, los_days: i64) -> usize {
        let hour = if acute { self.rng.range(0, 23) } else { self.rng.range(7, 10) };
        let start = micros_of_day(day) + hour * MICROS_PER_HOUR + self.rng.range(0, 59) * 60_000_000;
        let end = start + los_days * MICROS_PER_DAY + self.rng.range(1, 8) * MICROS_PER_HOUR;
        let cost = self.cost(unit, model::COST_INPATIENT_PER_DAY * los_days.max(1) as f64, 0.35, 0.05);
        self.add_stay(unit, start, end, acute, dx, cost)
    }

    /// An inpatient stay whose times and cost are drawn.
    fn add_stay(&mut self, unit: CareUnit, start: i64, end: i64, acute: bool, dx: &'static str, cost: f64) -> usize {
        self.add_contact(ContactRow {
            contact_id: 0,
            start,
            end,
            care_type: "inpatient",
            acute,
            profession: "doctor",
            unit,
            main_diagnosis: Some(dx),
            cost,
            secondary: Vec::new(),
            procedures: Vec::new(),
        })
    }

    fn outpatient(&mut self, unit: CareUnit, day: i32, primary: bool, doctor: bool, dx: Option<&'static str>) -> usize {
        let start = micros_of_day(day) + self.rng.range(8, 16) * MICROS_PER_HOUR + self.rng.range(0, 3) * 15 * 60_000_000;
        let end = start + self.rng.range(2, 4) * 15 * 60_000_000;
        let (base, care_type) = if primary {
            (model::COST_PRIMARY_VISIT, "primary_care")
        } else {
            (model::COST_SPECIALIST_VISIT, "specialist_outpatient")
        };
        let base = if doctor { base } else { base * 0.6 };
        let cost = self.cost(unit, base, 0.45, 0.03);
        let profession = if doctor { "doctor" } else if self.rng.chance(0.7) { "nurse" } else { "other" };
        self.add_contact(ContactRow {
            contact_id: 0,
            start,
            end,
            care_type,
            acute: false,
            profession,
            unit,
            main_diagnosis: dx,
            cost,
            secondary: Vec::new(),
            procedures: Vec::new(),
        })
    }

    fn random_day(&mut self, year: i32) -> i32 {
        let first = days_from_civil(year, 1, 1);
        first + self.rng.range(0, days_in_year(year) as i64 - 1) as i32
    }

    fn dispense_every(&mut self, atc: &'static str, from: i32, until: i32, interval: i64, ddd: f64) {
        let mut day = from;
        while day < until && day < self.end_day {
            let correction = self.rng.chance(0.01);
            self.drugs.push(DrugRow { atc, date: day, packages: 1, ddd });
            if correction {
                // A dispensing corrected the same day (ANTAL < 0), as in Läkemedelsregistret.
                self.drugs.push(DrugRow { atc, date: day, packages: -1, ddd: -ddd });
                self.drugs.push(DrugRow { atc, date: day, packages: 1, ddd });
            }
            day += (interval + self.rng.range(-10, 10)) as i32;
        }
    }

    fn measure(&mut self, kind: &'static str, day: i32, value: f64, unit: &'static str) {
        if self.alive_on(day) {
            self.measurements.push(MeasurementRow { kind, date: day, value, unit });
        }
    }

    fn run(&mut self) {
        let w = self.world;
        let start = days_from_civil(w.first_year, 1, 1);
        let mut cond = self.initial_conditions(start);
        for year in w.first_year..=w.last_year {
            let year_start = days_from_civil(year, 1, 1);
            if year_start >= self.end_day {
                break;
            }
            let age = self.age(days_from_civil(year, 7, 1)).max(0);
            // Background mortality decided first; events below may bring death forward.
            let mut hazard = model::mortality(age, self.person.female);
            if cond.heart_failure {
                hazard *= 2.0;
            }
            if cond.diabetes.is_some() {
                hazard *= 1.3;
            }
            if self.rng.chance(hazard) {
                let day = self.random_day(year);
                if day >= self.birth_day() {
                    self.die(day);
                }
            }
            self.incident_conditions(&mut cond, age);
            self.acute_events(year, age, &cond);
            self.chronic_care(year, &mut cond);
            self.background_care(year, age, &cond);
        }
        self.trim_to_life();
    }

    /// Drops what lies after death (treatment started before a later death stops at it).
    fn trim_to_life(&mut self) {
        let end = self.end_day;
        let end_micros = micros_of_day(end);
        self.drugs.retain(|d| d.date < end);
        self.measurements.retain(|m| m.date < end);
        self.contacts.retain(|c| c.start < end_micros);
        for c in &mut self.contacts {
            c.end = c.end.min(end_micros - 1);
            c.procedures.retain(|(_, at)| *at < end_micros);
        }
    }

    fn initial_conditions(&mut self, day: i32) -> Conditions {
        let age = self.age(day).max(0);
        let female = self.person.female;
        let sex = if female { 0.8 } else { 1.25 };
        let mut c = Conditions::default();
        let diabetes_prev = match age {
            0..=17 => 0.002,
            18..=44 => 0.012,
            45..=64 => 0.065,
            65..=79 => 0.13,
            _ => 0.14,
        } * sex;
        if self.rng.chance(diabetes_prev) {
            c.diabetes = Some(if age < 30 || self.rng.chance(0.1) { "E109" } else { "E119" });
        }
        let hf = match age {
            0..=44 => 0.0005,
            45..=64 => 0.007,
            65..=79 => 0.04,
            _ => 0.11,
        } * sex;
        c.heart_failure = self.rng.chance(hf);
        let copd = match age {
            0..=39 => 0.0,
            40..=64 => 0.02,
            _ => 0.06,
        };
        c.copd = self.rng.chance(copd);
        c.schizophrenia = age >= 18 && self.rng.chance(0.004);
        self.treatment_choices(&mut c, age);
        c
    }

    fn treatment_choices(&mut self, c: &mut Conditions, age: i32) {
        let p = self.profile;
        c.on_statin = self.rng.chance(p.diabetes_statin * if age < 40 { 0.4 } else { 1.05 });
        c.on_raas = self.rng.chance(p.hf_raas);
        c.on_bb = self.rng.chance(p.hf_bb * if c.on_raas { 1.05 } else { 0.85 });
        let type1 = if c.diabetes == Some("E109") { 6.0 } else { 0.0 };
        c.hba1c_base = 36.0 + self.rng.lognormal((p.hba1c_mean - 38.0 + type1).max(4.0), 0.6);
        c.sbp_base = self.rng.gauss(p.sbp_mean, 13.0);
        c.antipsychotic_adherence = self.rng.f64();
    }

    fn incident_conditions(&mut self, c: &mut Conditions, age: i32) {
        if c.diabetes.is_none() && age >= 30 && self.rng.chance(if age >= 45 { 0.005 } else { 0.001 }) {
            c.diabetes = Some("E119");
        }
        if !c.heart_failure && age >= 60 && self.rng.chance(if age >= 80 { 0.02 } else { 0.006 }) {
            c.heart_failure = true;
        }
        if !c.copd && age >= 45 && self.rng.chance(0.002) {
            c.copd = true;
        }
    }

}

static INPATIENT_WEIGHTS: [f64; 20] = {
    let mut w = [0.0; 20];
    let mut i = 0;
    while i < 20 {
        w[i] = model::INPATIENT_DIAGNOSES[i].1;
        i += 1;
    }
    w
};

static OUTPATIENT_WEIGHTS: [f64; 20] = {
    let mut w = [0.0; 20];
    let mut i = 0;
    while i < 20 {
        w[i] = model::OUTPATIENT_DIAGNOSES[i].1;
        i += 1;
    }
    w
};

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let codes = vec!["22", "23", "24", "25"];
        World {
            profiles: codes.iter().map(|c| model::profile(c)).collect(),
            region_codes: codes,
            first_year: 2021,
            last_year: 2025,
            intervention: None,
        }
    }

    #[test]
    fn a_history_is_consistent() {
        let w = world();
        for id in 1..2000 {
            let h = simulate(&w, 42, 2500000000 + id, 3, "2580", Entry::Resident { share_65_plus: 0.22 });
            let end = days_from_civil(2026, 1, 1);
            let death = h.person.death_date.unwrap_or(end);
            let birth = days_from_civil(h.person.birth_year, h.person.birth_month as u32, 1);
            for c in &h.contacts {
                let day = c.start.div_euclid(MICROS_PER_DAY) as i32;
                assert!(day >= birth && day <= death, "contact outside life");
                assert!(c.end >= c.start);
                assert!(c.contact_id / 10_000 == h.person.person_id);
                for (_, at) in &c.procedures {
                    assert!(*at >= c.start);
                }
            }
            let mut ids: Vec<i64> = h.contacts.iter().map(|c| c.contact_id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), h.contacts.len());
        }
    }
}
