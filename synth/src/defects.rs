//! Known defects a synthetic datalager can carry, so that every data-quality check is tested
//! against a defect it must find (docs/data-quality.md): a region that stops coding a
//! diagnosis in one year, missing education in one kommun, a month of contacts loaded twice,
//! implausible HbA1c values, a kommun code that does not exist.
//!
//! Applied to the simulated histories before they are written, after everything else is
//! drawn: a defect changes only what it names.

use crate::person::PersonHistory;
use crate::SynthError;

/// One defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// Contacts at the region's units that start in the month are written twice (a load run
    /// twice); the copies have the negated contact id.
    DuplicateMonth { region: String, year: i32, month: u32 },
    /// Persons registered in the kommun have no education.
    MissingEducation { kommun: String },
    /// The region's contacts in the year whose main diagnosis starts with `prefix` carry
    /// R69 (unknown cause) instead.
    StopCoding { region: String, prefix: String, year: i32 },
    /// One in ten HbA1c values of the region's residents is recorded ten times too large (a
    /// unit mix-up).
    ImplausibleHba1c { region: String },
    /// Persons registered in kommun `from` carry the code `to`, which is no kommun.
    UnknownKommun { from: String, to: String },
}

impl Defect {
    /// Parses `duplicate-month:23:2024-03`, `missing-education:2480`,
    /// `stop-coding:22:I63:2024`, `implausible-hba1c:25`, `unknown-kommun:2309>2399`.
    pub fn parse(s: &str) -> Result<Defect, SynthError> {
        let err = |reason: &str| SynthError::Option { option: "--defect", reason: format!("'{s}': {reason}") };
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let region = |r: &str| -> Result<String, SynthError> {
            if ["22", "23", "24", "25"].contains(&r) {
                Ok(r.to_string())
            } else {
                Err(err(&format!("'{r}' is not a Norra county code (22, 23, 24, 25)")))
            }
        };
        let year = |y: &str| y.parse::<i32>().map_err(|_| err(&format!("'{y}' is not a year")));
        match parts.as_slice() {
            ["duplicate-month", r, ym] => {
                let (y, m) = ym.split_once('-').ok_or_else(|| err("the month is written YYYY-MM"))?;
                let m: u32 = m.parse().ok().filter(|m| (1..=12).contains(m)).ok_or_else(|| err("the month is written YYYY-MM"))?;
                Ok(Defect::DuplicateMonth { region: region(r)?, year: year(y)?, month: m })
            }
            ["missing-education", k] if k.len() == 4 && k.bytes().all(|b| b.is_ascii_digit()) => Ok(Defect::MissingEducation { kommun: k.to_string() }),
            ["stop-coding", r, prefix, y] if !prefix.is_empty() => Ok(Defect::StopCoding { region: region(r)?, prefix: prefix.to_string(), year: year(y)? }),
            ["implausible-hba1c", r] => Ok(Defect::ImplausibleHba1c { region: region(r)? }),
            ["unknown-kommun", pair] => {
                let (from, to) = pair.split_once('>').ok_or_else(|| err("write unknown-kommun:FROM>TO"))?;
                Ok(Defect::UnknownKommun { from: from.to_string(), to: to.to_string() })
            }
            _ => Err(err(
                "known defects: duplicate-month:REGION:YYYY-MM, missing-education:KOMMUN, stop-coding:REGION:PREFIX:YEAR, implausible-hba1c:REGION, unknown-kommun:FROM>TO",
            )),
        }
    }
}

/// Applies the defects to a chunk of histories. `codes` maps region index to county code.
pub fn apply(histories: &mut [PersonHistory], codes: &[&str], defects: &[Defect]) {
    use crate::calendar::{civil_from_days, MICROS_PER_DAY};
    let code_of = |i: usize| codes.get(i).copied().unwrap_or("");
    // The person row holds static strings: an unknown kommun code is leaked once per chunk
    // (defects are few and the generator runs once).
    let leaked: Vec<Option<&'static str>> = defects
        .iter()
        .map(|d| match d {
            Defect::UnknownKommun { to, .. } => Some(&*Box::leak(to.clone().into_boxed_str())),
            _ => None,
        })
        .collect();
    for h in histories.iter_mut() {
        for (d, code) in defects.iter().zip(&leaked) {
            match d {
                Defect::DuplicateMonth { region, year, month } => {
                    let copies: Vec<_> = h
                        .contacts
                        .iter()
                        .filter(|c| code_of(c.unit.region) == region && {
                            let (y, m, _) = civil_from_days(c.start.div_euclid(MICROS_PER_DAY) as i32);
                            y == *year && m == *month
                        })
                        .map(|c| {
                            let mut copy = c.clone();
                            copy.contact_id = -c.contact_id;
                            copy
                        })
                        .collect();
                    h.contacts.extend(copies);
                }
                Defect::MissingEducation { kommun } => {
                    if h.person.kommun == kommun.as_str() {
                        h.person.education = None;
                    }
                }
                Defect::StopCoding { region, prefix, year } => {
                    for c in h.contacts.iter_mut() {
                        let y = civil_from_days(c.start.div_euclid(MICROS_PER_DAY) as i32).0;
                        if code_of(c.unit.region) == region && y == *year && c.main_diagnosis.is_some_and(|m| m.starts_with(prefix.as_str())) {
                            c.main_diagnosis = Some("R69");
                        }
                    }
                }
                Defect::ImplausibleHba1c { region } => {
                    if code_of(h.home_region) == region && h.person.person_id % 10 == 3 {
                        for m in h.measurements.iter_mut().filter(|m| m.kind == "hba1c") {
                            m.value *= 10.0;
                        }
                    }
                }
                Defect::UnknownKommun { from, .. } => {
                    if let (true, Some(code)) = (h.person.kommun == from.as_str(), code) {
                        h.person.kommun = code;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defects_are_parsed_and_bad_ones_named() {
        assert_eq!(Defect::parse("duplicate-month:23:2024-03").unwrap(), Defect::DuplicateMonth { region: "23".into(), year: 2024, month: 3 });
        assert_eq!(Defect::parse("missing-education:2480").unwrap(), Defect::MissingEducation { kommun: "2480".into() });
        assert_eq!(Defect::parse("stop-coding:22:I63:2024").unwrap(), Defect::StopCoding { region: "22".into(), prefix: "I63".into(), year: 2024 });
        assert_eq!(Defect::parse("unknown-kommun:2309>2399").unwrap(), Defect::UnknownKommun { from: "2309".into(), to: "2399".into() });
        for bad in ["duplicate-month:23:2024-13", "implausible-hba1c:99", "shoe-size:42", "missing-education:Umeå"] {
            let e = Defect::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--defect") && e.contains(bad), "{e}");
        }
    }
}
