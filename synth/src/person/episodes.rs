//! Acute episodes of a simulated life: strokes, fractures and what follows them.

use super::*;

impl Sim<'_> {
    pub(super) fn acute_events(&mut self, year: i32, age: i32, c: &Conditions) {
        let p = self.profile;
        let t = year_factor(self.world, year);
        let male = if self.person.female { 1.0 } else { 1.2 };
        // Stroke.
        let stroke = match age {
            0..=44 => 0.0002,
            45..=64 => 0.0015,
            65..=79 => 0.006,
            _ => 0.015,
        } * male;
        if self.rng.chance(stroke) {
            let day = self.random_day(year);
            if self.alive_on(day) {
                self.stroke(day, age, year, t, c);
            }
        }
        // Hip fracture (50+) and other fragility fractures.
        if age >= 50 {
            let sexf = if self.person.female { 1.6 } else { 0.7 };
            let hip = match age {
                50..=64 => 0.0008,
                65..=79 => 0.004,
                _ => 0.02,
            } * sexf;
            if self.rng.chance(hip) {
                let day = self.random_day(year);
                if self.alive_on(day) {
                    self.hip_fracture(day, age, t);
                }
            }
            let wrist = if age < 65 { 0.003 } else { 0.005 } * if self.person.female { 1.8 } else { 0.5 };
            for (dx, rate) in [("S525", wrist), ("S422", if age >= 65 { 0.0015 } else { 0.0004 }), ("S320", if age >= 65 { 0.001 } else { 0.0003 })] {
                if self.rng.chance(rate) {
                    let day = self.random_day(year);
                    if self.alive_on(day) {
                        self.other_fracture(day, dx);
                    }
                }
            }
        }
        // Sepsis.
        let sepsis = match age {
            0..=64 => 0.0005,
            65..=79 => 0.003,
            _ => 0.008,
        };
        if self.rng.chance(sepsis) {
            let day = self.random_day(year);
            if self.alive_on(day) {
                let dx = *self.rng.pick(&[("A419", 0.7), ("A410", 0.2), ("A400", 0.1)]);
                let unit = self.home_unit("MED");
                let los = 4 + self.rng.poisson(5.0) as i64;
                let i = self.inpatient(unit, day, true, dx, los);
                if self.rng.chance(0.4) {
                    self.contacts[i].secondary.push("R651");
                }
                let m = p.sepsis_mortality * if age >= 80 { 1.6 } else if age < 65 { 0.5 } else { 1.0 };
                if self.rng.chance(m) {
                    let d = day + self.rng.range(1, 30) as i32;
                    self.die(d);
                }
            }
        }
        // Tonsil surgery, mostly children and young adults.
        let tonsil = match age {
            3..=12 => 0.003,
            13..=30 => 0.0015,
            _ => 0.0,
        };
        if self.rng.chance(tonsil) {
            let day = self.random_day(year);
            if self.alive_on(day) {
                let dx = *self.rng.pick(&[("J350", 0.4), ("J351", 0.4), ("J353", 0.2)]);
                let unit = self.home_unit("ONH");
                let i = self.outpatient(unit, day, false, true, Some(dx));
                let at = self.contacts[i].start + 30 * 60_000_000;
                let cold = (p.tonsil_cold + p.tonsil_cold_trend * t).min(0.97);
                let technique = if self.rng.chance(cold) { model::TECHNIQUE_COLD } else { model::TECHNIQUE_HOT };
                self.contacts[i].procedures.push((model::TONSILLECTOMY, at));
                self.contacts[i].procedures.push((technique, at));
                self.contacts[i].cost = self.cost(unit, 14_000.0, 0.2, 0.0);
                let bleed = if technique == model::TECHNIQUE_HOT { 0.08 } else { 0.04 };
                if self.rng.chance(bleed) {
                    let d = day + self.rng.range(3, 12) as i32;
                    if self.alive_on(d) {
                        self.inpatient(unit, d, true, "T810", 2);
                    }
                }
            }
        }
    }

    fn stroke(&mut self, day: i32, age: i32, year: i32, t: f64, c: &Conditions) {
        let p = self.profile;
        let dx = *self.rng.pick(&[("I639", 0.85), ("I619", 0.12), ("I64", 0.03)]);
        let unit = self.home_unit("MED");
        let los = 3 + self.rng.poisson(5.0) as i64;
        let i = self.inpatient(unit, day, true, dx, los);
        let start = self.contacts[i].start;
        if self.rng.chance(0.6) {
            self.contacts[i].secondary.push("I109");
        }
        if c.diabetes.is_some() {
            self.contacts[i].secondary.push(c.diabetes.unwrap_or("E119"));
        }
        if dx == "I639" {
            let mut share = p.reperfusion + p.reperfusion_trend * t;
            if age >= 80 {
                share *= 0.75;
            }
            if self.person.female {
                share *= 0.95;
            }
            if self.rng.chance(share) {
                let thrombectomy = self.rng.chance(p.thrombectomy_share);
                let at_nus = self.world.region_codes[self.home] == model::UNIVERSITY_HOSPITAL_REGION
                    && model::home_hospital(self.person.kommun) == model::UNIVERSITY_HOSPITAL;
                if !thrombectomy || self.rng.chance(0.5) {
                    let at = start + self.rng.range(20, 90) * 60_000_000;
                    self.contacts[i].procedures.push((model::THROMBOLYSIS, at));
                }
                if thrombectomy {
                    let at = start + self.rng.range(90, 240) * 60_000_000;
                    if at_nus {
                        self.contacts[i].procedures.push((model::THROMBECTOMY, at));
                    } else if let Some(nus) = self.world.region_index(model::UNIVERSITY_HOSPITAL_REGION) {
                        // Transferred to Umeå for thrombectomy: a contact in Västerbotten's datalager.
                        let nus_unit = CareUnit { region: nus, place: model::UNIVERSITY_HOSPITAL, department: "NEU" };
                        let j = self.inpatient(nus_unit, day, true, "I639", 1);
                        self.contacts[j].start = at - 30 * 60_000_000;
                        self.contacts[j].end = self.contacts[j].start + 30 * MICROS_PER_HOUR;
                        self.contacts[j].procedures.push((model::THROMBECTOMY, at));
                    }
                }
            }
        }
        let base = match dx {
            "I619" => 0.30,
            "I64" => 0.20,
            _ => p.stroke_mortality,
        };
        let m = base * if age >= 80 { 1.8 } else if age < 65 { 0.4 } else { 1.0 };
        if self.rng.chance(m) {
            let d = day + self.rng.range(1, 30) as i32;
            self.die(d);
        } else {
            let d = day + 80 + self.rng.range(0, 20) as i32;
            if self.alive_on(d) {
                let unit = self.home_unit("MED");
                self.outpatient(unit, d, false, true, Some("I693"));
            }
        }
        let _ = year;
    }

    fn hip_fracture(&mut self, day: i32, age: i32, t: f64) {
        let p = self.profile;
        let dx = *self.rng.pick(&[("S720", 0.55), ("S721", 0.40), ("S722", 0.05)]);
        let unit = self.home_unit("ORT");
        let los = 5 + self.rng.poisson(4.0) as i64;
        let i = self.inpatient(unit, day, true, dx, los);
        let start = self.contacts[i].start;
        if self.rng.chance(0.97) {
            let within = (p.hip_surgery_24h + p.hip_surgery_24h_trend * t).min(0.95);
            let hours = if self.rng.chance(within) { self.rng.range(3, 23) } else { self.rng.range(25, 72) };
            let code = if dx == "S720" && age > 70 { model::HIP_ARTHROPLASTY } else { model::HIP_FIXATION };
            self.contacts[i].procedures.push((code, start + hours * MICROS_PER_HOUR));
        }
        if self.rng.chance(if age >= 90 { 0.12 } else { 0.08 }) {
            let d = day + self.rng.range(2, 30) as i32;
            self.die(d);
        }
        self.osteoporosis_treatment(day, p.osteoporosis_treatment);
    }

    fn other_fracture(&mut self, day: i32, dx: &'static str) {
        let unit = self.home_unit("ORT");
        if dx == "S320" && self.rng.chance(0.5) {
            let los = 2 + self.rng.poisson(3.0) as i64;
            self.inpatient(unit, day, true, dx, los);
        } else {
            self.outpatient(unit, day, false, true, Some(dx));
        }
        let p = self.profile.osteoporosis_treatment * 0.8;
        self.osteoporosis_treatment(day, p);
    }

    fn osteoporosis_treatment(&mut self, day: i32, p: f64) {
        if self.rng.chance(p) {
            let from = day + self.rng.range(14, 300) as i32;
            self.dispense_every("M05BA04", from, from + 3 * 365, 90, 90.0);
        }
    }
}
