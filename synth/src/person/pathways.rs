//! The newer clinical pathways of a simulated life: hip osteoarthritis, rheumatoid
//! arthritis, critical limb ischaemia and dementia. Drawn from a random stream of their own
//! and added after everything else, so the rest of a person's history (and every id in it)
//! is the same as without them.

use super::*;

impl Sim<'_> {
    /// Onset and care of the four pathways, year by year while alive.
    pub(super) fn pathways(&mut self, rng: &mut Rng) {
        let w = self.world;
        let levels = model::pathway_levels(w.region_codes[self.home]);
        let (mut hip, mut ra, mut cli, mut dementia) = (false, false, false, false);
        for year in w.first_year..=w.last_year {
            let year_start = days_from_civil(year, 1, 1);
            if year_start >= self.end_day {
                break;
            }
            let age = self.age(days_from_civil(year, 7, 1)).max(0);
            let day = year_start + rng.range(0, days_in_year(year) as i64 - 1) as i32;
            if !self.alive_on(day) {
                continue;
            }
            let female = self.person.female;
            let hip_incidence = match age {
                0..=44 => 0.0,
                45..=54 => 0.002,
                55..=64 => 0.005,
                65..=79 => 0.009,
                _ => 0.011,
            } * if female { 1.2 } else { 1.0 };
            if !hip && rng.chance(hip_incidence) {
                hip = true;
                self.hip_osteoarthritis(rng, day, levels.hip_first_line);
            }
            let ra_incidence = if age >= 18 { 0.0005 * if female { 2.2 } else { 1.0 } } else { 0.0 };
            if !ra && rng.chance(ra_incidence) {
                ra = true;
                self.rheumatoid_arthritis(rng, day, levels.ra_dmard_90d);
            }
            let cli_incidence = match age {
                0..=54 => 0.0,
                55..=69 => 0.0008,
                _ => 0.002,
            };
            if !cli && rng.chance(cli_incidence) {
                cli = true;
                self.critical_limb_ischaemia(rng, day, levels.cli_amputation);
            }
            let dementia_incidence = match age {
                0..=64 => 0.0,
                65..=74 => 0.004,
                75..=84 => 0.015,
                _ => 0.035,
            };
            if !dementia && rng.chance(dementia_incidence) {
                dementia = true;
                self.dementia(rng, day, levels.dementia_mmse);
            }
        }
    }

    /// A visit in primary care on `day`, with its cost drawn from the pathway's stream.
    fn pathway_visit(&mut self, rng: &mut Rng, unit: CareUnit, day: i32, primary: bool, doctor: bool, dx: &'static str) -> Option<usize> {
        if !self.alive_on(day) {
            return None;
        }
        let start = micros_of_day(day) + rng.range(8, 16) * MICROS_PER_HOUR;
        let (base, care_type) = if primary { (model::COST_PRIMARY_VISIT, "primary_care") } else { (model::COST_SPECIALIST_VISIT, "specialist_outpatient") };
        let cost = (rng.lognormal(if doctor { base } else { base * 0.6 }, 0.45) * self.world.profiles[unit.region].cost_level).round();
        Some(self.add_contact(ContactRow {
            contact_id: 0,
            start,
            end: start + 45 * 60_000_000,
            care_type,
            acute: false,
            profession: if doctor { "doctor" } else { "other" },
            unit,
            main_diagnosis: Some(dx),
            cost,
            secondary: Vec::new(),
            procedures: Vec::new(),
        }))
    }

    fn hip_osteoarthritis(&mut self, rng: &mut Rng, day: i32, first_line: f64) {
        let primary = self.primary_unit();
        self.pathway_visit(rng, primary, day, true, true, model::HIP_OA);
        // First-line treatment: a structured physiotherapy programme in primary care.
        if rng.chance(first_line) {
            let at = day + rng.range(14, 90) as i32;
            if let Some(i) = self.pathway_visit(rng, primary, at, true, false, model::HIP_OA) {
                let t = self.contacts[i].start;
                self.contacts[i].procedures.push((model::HIP_FIRST_LINE, t));
            }
        }
        // A total hip replacement for about a third, one to two years later.
        if rng.chance(0.35) {
            let op = day + rng.range(365, 700) as i32;
            if self.alive_on(op) {
                let unit = self.home_unit("ORT");
                let start = micros_of_day(op) + rng.range(7, 10) * MICROS_PER_HOUR;
                let cost = (rng.lognormal(model::COST_INPATIENT_PER_DAY * 4.0, 0.3) * self.world.profiles[unit.region].cost_level).round();
                self.add_contact(ContactRow {
                    contact_id: 0,
                    start,
                    end: start + 4 * MICROS_PER_DAY,
                    care_type: "inpatient",
                    acute: false,
                    profession: "doctor",
                    unit,
                    main_diagnosis: Some(model::HIP_OA),
                    cost,
                    secondary: Vec::new(),
                    procedures: vec![(model::HIP_REPLACEMENT, start + 2 * MICROS_PER_HOUR)],
                });
            }
        }
    }

    fn rheumatoid_arthritis(&mut self, rng: &mut Rng, day: i32, dmard_90d: f64) {
        let unit = self.home_unit("REU");
        self.pathway_visit(rng, unit, day, false, true, model::RA);
        let start = if rng.chance(dmard_90d) { day + rng.range(3, 85) as i32 } else if rng.chance(0.7) { day + rng.range(100, 400) as i32 } else { return };
        let mut d = start;
        while d < self.end_day && d < start + 3 * 365 {
            self.drugs.push(DrugRow { atc: model::METHOTREXATE, date: d, packages: 1, ddd: 90.0 });
            d += 90 + rng.range(-10, 10) as i32;
        }
    }

    fn critical_limb_ischaemia(&mut self, rng: &mut Rng, day: i32, amputation: f64) {
        let unit = self.home_unit("KIR");
        self.pathway_visit(rng, unit, day, false, true, model::CLI);
        if rng.chance(amputation) {
            let op = day + rng.range(14, 330) as i32;
            if self.alive_on(op) {
                let unit = self.home_unit("KIR");
                let start = micros_of_day(op) + rng.range(0, 23) * MICROS_PER_HOUR;
                let cost = (rng.lognormal(model::COST_INPATIENT_PER_DAY * 9.0, 0.35) * self.world.profiles[unit.region].cost_level).round();
                self.add_contact(ContactRow {
                    contact_id: 0,
                    start,
                    end: start + 9 * MICROS_PER_DAY,
                    care_type: "inpatient",
                    acute: true,
                    profession: "doctor",
                    unit,
                    main_diagnosis: Some(model::CLI),
                    cost,
                    secondary: Vec::new(),
                    procedures: vec![(model::AMPUTATION_LOWER_LEG, start + 6 * MICROS_PER_HOUR)],
                });
            }
        }
    }

    fn dementia(&mut self, rng: &mut Rng, day: i32, mmse: f64) {
        let primary = self.primary_unit();
        // The basic investigation: a cognitive test (MMSE) before the diagnosis.
        if rng.chance(mmse) {
            let test = day - rng.range(7, 150) as i32;
            let score = 14.0 + rng.range(0, 12) as f64;
            self.measure("mmse", test, score, "points");
        }
        self.pathway_visit(rng, primary, day, true, true, model::DEMENTIA);
    }
}
