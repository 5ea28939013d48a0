//! Chronic and background care of a simulated life: visits, drugs and measurements year by year.

use super::*;

impl Sim<'_> {
    pub(super) fn chronic_care(&mut self, year: i32, c: &mut Conditions) {
        let p = self.profile;
        let t = year_factor(self.world, year);
        let year_start = days_from_civil(year, 1, 1);
        let next_year = days_from_civil(year + 1, 1, 1);
        if let Some(dx) = c.diabetes {
            let visits = 1 + self.rng.poisson(1.0);
            let mut days: Vec<i32> = (0..visits).map(|_| self.random_day(year)).collect();
            days.sort_unstable();
            for &d in &days {
                if self.alive_on(d) {
                    let doctor = self.rng.chance(0.5);
                    let unit = self.primary_unit();
                    self.outpatient(unit, d, true, doctor, Some(dx));
                }
            }
            let hba1c_n = if self.rng.chance(0.92) { 1 + self.rng.poisson(0.8) } else { 0 };
            for _ in 0..hba1c_n {
                let d = self.random_day(year);
                let v = (c.hba1c_base + p.hba1c_trend * t + self.rng.gauss(0.0, 3.0)).max(25.0).round();
                self.measure("hba1c", d, v, "mmol/mol");
            }
            let bp_n = if self.rng.chance(0.9) { 1 + self.rng.poisson(0.5) } else { 0 };
            let mut bp_days: Vec<i32> = (0..bp_n).map(|_| self.random_day(year)).collect();
            bp_days.sort_unstable();
            bp_days.dedup();
            for d in bp_days {
                let sbp = (c.sbp_base + self.rng.gauss(0.0, 8.0)).round().clamp(90.0, 220.0);
                let dbp = (80.0 + 0.45 * (sbp - 137.0) + self.rng.gauss(0.0, 7.0)).round().clamp(45.0, 130.0);
                self.measure("sbp", d, sbp, "mmHg");
                self.measure("dbp", d, dbp, "mmHg");
            }
            if self.rng.chance(0.8) {
                let d = self.random_day(year);
                let ldl = (self.rng.gauss(3.1, 0.9) - if c.on_statin { 0.8 } else { 0.0 }).max(0.8);
                self.measure("ldl", d, (ldl * 10.0).round() / 10.0, "mmol/L");
                let bmi = self.rng.gauss(30.6, 5.7).clamp(16.0, 60.0);
                self.measure("bmi", d, (bmi * 10.0).round() / 10.0, "kg/m2");
            }
            let offset = year_start + self.rng.range(0, 60) as i32;
            if dx == "E109" {
                self.dispense_every("A10AB05", offset, next_year, 90, 100.0);
            } else if self.rng.chance(0.8) {
                self.dispense_every("A10BA02", offset, next_year, 90, 100.0);
            }
            if c.on_statin {
                let atc = if self.person.person_id % 3 == 0 { "C10AA01" } else { "C10AA05" };
                let offset = year_start + self.rng.range(0, 80) as i32;
                self.dispense_every(atc, offset, next_year, 90, 90.0);
            }
        }
        if c.heart_failure {
            let d = self.random_day(year);
            if self.alive_on(d) {
                let unit = self.specialised_unit("MED");
                self.outpatient(unit, d, false, true, Some("I509"));
            }
            let d = self.random_day(year);
            if self.alive_on(d) {
                let unit = self.primary_unit();
                let i = self.outpatient(unit, d, true, true, Some("I109"));
                self.contacts[i].secondary.push("I509");
            }
            let admissions = self.rng.poisson(p.hf_admissions * 1.5);
            for _ in 0..admissions {
                let d = self.random_day(year);
                if self.alive_on(d) {
                    let unit = self.home_unit("MED");
                    let los = 3 + self.rng.poisson(4.0) as i64;
                    self.inpatient(unit, d, true, "I509", los);
                }
            }
            let offset = year_start + self.rng.range(0, 60) as i32;
            if c.on_raas {
                let atc = if self.person.person_id % 4 == 0 { "C09CA01" } else { "C09AA05" };
                self.dispense_every(atc, offset, next_year, 90, 100.0);
            }
            if c.on_bb {
                self.dispense_every("C07AB07", offset + 5, next_year, 90, 100.0);
            }
        }
        if c.copd {
            let visits = 1 + self.rng.poisson(0.5);
            let mut first = None;
            for _ in 0..visits {
                let d = self.random_day(year);
                if self.alive_on(d) {
                    let unit = self.primary_unit();
                    let i = self.outpatient(unit, d, true, true, Some("J449"));
                    first.get_or_insert(i);
                }
            }
            if let Some(i) = first {
                if self.rng.chance(p.copd_spirometry) {
                    let at = self.contacts[i].start + 10 * 60_000_000;
                    self.contacts[i].procedures.push((model::SPIROMETRY, at));
                }
            }
            let offset = year_start + self.rng.range(0, 90) as i32;
            self.dispense_every("R03AL03", offset, next_year, 120, 30.0);
        }
        if c.schizophrenia {
            let visits = 2 + self.rng.poisson(3.0);
            for _ in 0..visits {
                let d = self.random_day(year);
                if self.alive_on(d) {
                    let unit = self.home_unit("PSY");
                    let doctor = self.rng.chance(0.5);
                    self.outpatient(unit, d, false, doctor, Some("F209"));
                }
            }
            // Adherence drifts a little from year to year.
            c.antipsychotic_adherence = (c.antipsychotic_adherence + self.rng.gauss(0.0, 0.05)).clamp(0.0, 1.0);
            let offset = year_start + self.rng.range(0, 120) as i32;
            if c.antipsychotic_adherence < p.antipsychotics {
                let atc = if self.person.person_id % 2 == 0 { "N05AH03" } else { "N05AX08" };
                self.dispense_every(atc, offset, next_year, 90, 90.0);
            } else if c.antipsychotic_adherence > 0.97 {
                self.dispense_every("N05AN01", offset, next_year, 90, 100.0);
            }
        }
    }

    pub(super) fn background_care(&mut self, year: i32, age: i32, c: &Conditions) {
        let rates = model::care_rates(age);
        let fertile = self.person.female && (20..=42).contains(&age);
        let n = self.rng.poisson(rates.inpatient);
        for _ in 0..n {
            let day = self.random_day(year);
            if !self.alive_on(day) {
                continue;
            }
            let (dx, dept, planned) = loop {
                let i = self.rng.weighted(&INPATIENT_WEIGHTS);
                let (dx, _, dept, planned) = model::INPATIENT_DIAGNOSES[i];
                if dx == "O800" && !fertile {
                    continue;
                }
                break (dx, dept, planned);
            };
            let acute = !self.rng.chance(planned);
            let unit = if acute { self.home_unit(dept) } else { self.specialised_unit(dept) };
            let los = 1 + self.rng.poisson(2.5) as i64;
            let i = self.inpatient(unit, day, acute, dx, los);
            let secondary = self.rng.poisson(1.0);
            for _ in 0..secondary {
                let s = *self.rng.pick(model::SECONDARY_DIAGNOSES);
                if !self.contacts[i].secondary.contains(&s) && Some(s) != self.contacts[i].main_diagnosis {
                    self.contacts[i].secondary.push(s);
                }
            }
            if let Some(d) = c.diabetes {
                if self.rng.chance(0.5) {
                    self.contacts[i].secondary.push(d);
                }
            }
            if c.heart_failure && self.rng.chance(0.5) {
                self.contacts[i].secondary.push("I509");
            }
            if self.rng.chance(0.4) {
                let code = *self.rng.pick(model::ORDINARY_PROCEDURES);
                let at = self.contacts[i].start + self.rng.range(1, 24) * MICROS_PER_HOUR;
                self.contacts[i].procedures.push((code, at));
            }
        }
        let specialist = self.rng.poisson(rates.specialist_doctor + rates.specialist_other);
        let doctor_share = rates.specialist_doctor / (rates.specialist_doctor + rates.specialist_other);
        for _ in 0..specialist {
            let day = self.random_day(year);
            if !self.alive_on(day) {
                continue;
            }
            let i = self.rng.weighted(&OUTPATIENT_WEIGHTS);
            let (dx, _, dept) = model::OUTPATIENT_DIAGNOSES[i];
            let unit = self.specialised_unit(dept);
            let doctor = self.rng.chance(doctor_share);
            let k = self.outpatient(unit, day, false, doctor, Some(dx));
            if self.rng.chance(0.3) {
                let s = *self.rng.pick(model::SECONDARY_DIAGNOSES);
                if Some(s) != self.contacts[k].main_diagnosis {
                    self.contacts[k].secondary.push(s);
                }
            }
            if self.rng.chance(0.1) {
                let code = *self.rng.pick(model::ORDINARY_PROCEDURES);
                let at = self.contacts[k].start + 10 * 60_000_000;
                self.contacts[k].procedures.push((code, at));
            }
        }
        let primary = self.rng.poisson(rates.primary_doctor + rates.primary_other);
        let doctor_share = rates.primary_doctor / (rates.primary_doctor + rates.primary_other);
        for _ in 0..primary {
            let day = self.random_day(year);
            if !self.alive_on(day) {
                continue;
            }
            let dx = *self.rng.pick(model::PRIMARY_DIAGNOSES);
            let unit = self.primary_unit();
            let doctor = self.rng.chance(doctor_share);
            self.outpatient(unit, day, true, doctor, dx);
        }
    }
}
