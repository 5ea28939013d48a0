//! An intervention with a known effect, for evaluations across regions (docs/analysis.md,
//! "Evaluations across regions"; docs/data-model.md): a mobile team for frail older
//! residents (mobilt närvårdsteam), started in every region on one date.
//!
//! - **Frailty**: a share of residents aged 70 or more at the start have, besides their
//!   other care, acute admissions for frailty-related causes at a personal rate (lognormal,
//!   about three a year), so care use varies between persons and over time.
//! - **Referral criterion** (the same as the cohort recipes' comparison group): an acute
//!   inpatient stay admitted within 90 days after another one's admission, counting every
//!   acute stay of the person. The earliest discharge from such a stay on or after the
//!   start, at 65 or older, is the person's index date. Persons are chosen at a high point of their
//!   use, so their use falls afterwards whatever is done (regression to the mean).
//! - **Uptake**: each such person joins with a fixed probability, independently of anything
//!   else (the comparison group is those who met the criterion and did not join). Joining is
//!   registered as procedure `code` on a contact with the team at the index time; the team
//!   visits every two weeks for 90 days.
//! - **Effect**: after the index date, each later frailty admission of a person who joined is
//!   avoided with the region's probability `effect`. What was avoided within the after
//!   window (and the team's own contacts and cost) is recorded per person, so the true
//!   effect on the treated in each region is known exactly ([`Exposure`]).

use super::*;

/// The intervention's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervention {
    /// Procedure code registered when a patient joins the team.
    pub code: &'static str,
    /// First day (days since 1970-01-01) a patient can join.
    pub start_day: i32,
    /// Share of persons who meet the criterion and join.
    pub uptake: f64,
    /// Per simulated region (in the world's order): the share of frailty admissions after
    /// joining that the team avoids.
    pub effect: Vec<f64>,
    /// Share of residents aged 70 or more at the start with the frailty process.
    pub frail_share: f64,
    /// The after window the truth is recorded for, in days (the cohort recipes' window).
    pub after_days: i32,
    /// Criterion: a second acute admission within this many days of another.
    pub within_days: i32,
    /// Youngest age at the index date.
    pub min_age: i32,
}

/// What joining did to one person, inside the after window: the true effect on the treated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    pub index_day: i32,
    pub avoided_stays: u32,
    pub avoided_days: f64,
    pub avoided_cost: f64,
    pub team_contacts: u32,
    pub team_cost: f64,
}

const FRAILTY_DIAGNOSES: [&str; 4] = ["R54", "E86", "N390", "R296"];

struct Stay {
    start: i64,
    end: i64,
}

impl Sim<'_> {
    /// Adds frailty admissions and, for a person who meets the criterion and joins, the
    /// team's contacts; returns the person's exposure when they joined.
    pub(super) fn intervention(&mut self, iv: &Intervention, rng: &mut Rng) -> Option<Exposure> {
        let w = self.world;
        let first = days_from_civil(w.first_year, 1, 1);
        let last = days_from_civil(w.last_year + 1, 1, 1);
        // Frailty admissions (planned, not yet added: those after joining may be avoided).
        let mut planned: Vec<(i32, i64)> = Vec::new();
        if self.age(first) >= 70 && rng.chance(iv.frail_share) {
            let rate = rng.lognormal(2.5, 0.6);
            let mut day = first as f64;
            loop {
                day += -(1.0 - rng.f64()).ln() * 365.0 / rate;
                if day >= last as f64 {
                    break;
                }
                planned.push((day as i32, 2 + rng.poisson(4.0) as i64));
            }
        }
        // Every acute stay the region's own datalager will hold (at its units, while alive;
        // an end after death is cut at death, as when the history is trimmed).
        let life_end = micros_of_day(self.end_day);
        let home = self.home;
        let mut stays: Vec<Stay> = self
            .contacts
            .iter()
            .filter(|c| c.care_type == "inpatient" && c.acute && c.unit.region == home && c.start < life_end)
            .map(|c| Stay { start: c.start, end: c.end.min(life_end - 1) })
            .collect();
        // A frailty stay's times are drawn when it is added; to decide the criterion before
        // adding, its admission hour is drawn here.
        let times: Vec<(i64, i64)> = planned
            .iter()
            .map(|&(day, los)| {
                let start = micros_of_day(day) + rng.range(0, 23) * MICROS_PER_HOUR + rng.range(0, 59) * 60_000_000;
                (start, start + los * MICROS_PER_DAY + rng.range(1, 8) * MICROS_PER_HOUR)
            })
            .collect();
        stays.extend(times.iter().filter(|t| t.0 < life_end).map(|&(start, end)| Stay { start, end: end.min(life_end - 1) }));
        // The criterion as the recipe's SQL states it: a stay with another admission in the
        // `within_days` before its own; the index is the earliest discharge among them on
        // or after the team's start.
        let within = iv.within_days as i64 * MICROS_PER_DAY;
        let since = micros_of_day(iv.start_day);
        let index = stays
            .iter()
            .filter(|s| s.end >= since && stays.iter().any(|e| e.start < s.start && e.start >= s.start - within))
            .map(|s| s.end)
            .min();
        let mut joined = None;
        if let Some(at) = index {
            let day = at.div_euclid(MICROS_PER_DAY);
            let day = day as i32;
            // The engine's age: years since birth, one less before the birth month.
            let (y, m, _) = civil_from_days(day);
            let age = y - self.person.birth_year - if (m as i32) < self.person.birth_month { 1 } else { 0 };
            // Drawn for everyone who meets the criterion, so that uptake is independent of
            // when and whether they qualify.
            let joins = rng.chance(iv.uptake);
            if day >= iv.start_day && age >= iv.min_age && day < self.end_day && joins {
                joined = Some(at);
            }
        }
        let effect = iv.effect.get(self.home).copied().unwrap_or(0.0);
        let window_end = joined.map(|at| at + iv.after_days as i64 * MICROS_PER_DAY);
        let mut exposure = joined.map(|at| Exposure {
            index_day: at.div_euclid(MICROS_PER_DAY) as i32,
            avoided_stays: 0,
            avoided_days: 0.0,
            avoided_cost: 0.0,
            team_contacts: 0,
            team_cost: 0.0,
        });
        for (i, &(day, los)) in planned.iter().enumerate() {
            let (start, end) = times[i];
            let avoided = joined.is_some_and(|at| start >= at) && rng.chance(effect);
            let dx = FRAILTY_DIAGNOSES[rng.range(0, FRAILTY_DIAGNOSES.len() as i64 - 1) as usize];
            let unit = self.home_unit("MED");
            let cost = self.cost(unit, model::COST_INPATIENT_PER_DAY * los as f64, 0.35, 0.05);
            let alive = day < self.end_day;
            if avoided {
                if let (Some(e), Some(until)) = (exposure.as_mut(), window_end) {
                    if alive && start < until {
                        e.avoided_stays += 1;
                        e.avoided_days += (end - start) as f64 / MICROS_PER_DAY as f64;
                        e.avoided_cost += cost;
                    }
                }
                continue;
            }
            self.add_stay(unit, start, end, true, dx, cost);
        }
        if let (Some(at), Some(e)) = (joined, exposure.as_mut()) {
            // The first contact at the index time carries the code; then a visit every two
            // weeks through the after window.
            let mut t = at;
            let mut opening = true;
            while t < at + iv.after_days as i64 * MICROS_PER_DAY && t.div_euclid(MICROS_PER_DAY) < self.end_day as i64 {
                let unit = self.primary_unit();
                let cost = self.cost(unit, model::COST_PRIMARY_VISIT * if opening { 1.5 } else { 0.8 }, 0.3, 0.0);
                let procedures = if opening { vec![(iv.code, t)] } else { Vec::new() };
                self.add_contact(ContactRow {
                    contact_id: 0,
                    start: t,
                    end: t + MICROS_PER_HOUR,
                    care_type: "primary_care",
                    acute: false,
                    profession: if opening { "doctor" } else { "nurse" },
                    unit,
                    main_diagnosis: Some("Z515"),
                    cost,
                    secondary: Vec::new(),
                    procedures,
                });
                e.team_contacts += 1;
                e.team_cost += cost;
                opening = false;
                t += 14 * MICROS_PER_DAY;
            }
        }
        exposure
    }
}
