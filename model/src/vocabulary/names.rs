//! Names for codes: every value a breakdown can take (sex, education, care type, country of
//! birth, income quintile, kommun, the total), every breakdown, the value axis of each kind
//! of indicator, in Swedish and English. Codes travel; names are what a reader sees.
//!
//! Kommun names are SCB's list of Sweden's 290 kommuner (`model/data/kommuner.csv`: code,
//! name, county code), so a kommun outside Norra is named too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::Lang;
use crate::breakdown::{Breakdown, TOTAL, UNKNOWN};
use crate::catalog::Kind;

/// SCB's kommun list as shipped: `kod,namn,lan`.
const KOMMUNER_CSV: &str = include_str!("../../data/kommuner.csv");

/// One of Sweden's kommuner as SCB lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KommunName {
    pub code: &'static str,
    pub name: &'static str,
    /// The county (region) code: the code's first two digits.
    pub county: &'static str,
}

/// All 290 kommuner in code order.
pub fn kommuner() -> &'static [KommunName] {
    static LIST: OnceLock<Vec<KommunName>> = OnceLock::new();
    LIST.get_or_init(|| {
        KOMMUNER_CSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let mut f = l.split(',');
                Some(KommunName { code: f.next()?.trim(), name: f.next()?.trim(), county: f.next()?.trim() })
            })
            .collect()
    })
}

/// A kommun's name by its four-digit code.
pub fn kommun_name(code: &str) -> Option<&'static str> {
    static INDEX: OnceLock<BTreeMap<&'static str, &'static str>> = OnceLock::new();
    INDEX.get_or_init(|| kommuner().iter().map(|k| (k.code, k.name)).collect()).get(code).copied()
}

/// A breakdown's name as a column header or a choice ("Kön", "Sex").
pub fn breakdown(b: Breakdown, lang: Lang) -> &'static str {
    let (sv, en) = match b {
        Breakdown::Year => ("År", "Year"),
        Breakdown::Quarter => ("Kvartal", "Quarter"),
        Breakdown::Month => ("Månad", "Month"),
        Breakdown::Sex => ("Kön", "Sex"),
        Breakdown::AgeBand => ("Åldersgrupp", "Age band"),
        Breakdown::Kommun => ("Kommun", "Kommun (municipality)"),
        Breakdown::Education => ("Utbildning", "Education"),
        Breakdown::BirthCountry => ("Födelseland", "Country of birth"),
        Breakdown::IncomeQuintile => ("Inkomstkvintil", "Income quintile"),
        Breakdown::CareType => ("Vårdform", "Care type"),
        Breakdown::Arm => ("Grupp", "Group"),
        Breakdown::Measure => ("Mått", "Measure"),
    };
    lang.pick(sv, en)
}

/// The name of a breakdown's value (`female` → "Kvinnor"), or `None` when the code has no
/// name (an age band, a year: they are their own names).
pub fn value_name(b: Breakdown, code: &str, lang: Lang) -> Option<String> {
    if code == TOTAL {
        return Some(lang.pick("Totalt", "Total").to_string());
    }
    if code == UNKNOWN {
        return Some(lang.pick("Uppgift saknas", "Not known").to_string());
    }
    let fixed = |sv: &'static str, en: &'static str| Some(lang.pick(sv, en).to_string());
    match (b, code) {
        (Breakdown::Sex, "female") => fixed("Kvinnor", "Women"),
        (Breakdown::Sex, "male") => fixed("Män", "Men"),
        (Breakdown::Education, "primary") => fixed("Förgymnasial", "Primary (below upper secondary)"),
        (Breakdown::Education, "secondary") => fixed("Gymnasial", "Upper secondary"),
        (Breakdown::Education, "tertiary") => fixed("Eftergymnasial", "Post-secondary"),
        (Breakdown::CareType, "inpatient") => fixed("Slutenvård", "Inpatient care"),
        (Breakdown::CareType, "specialist_outpatient") => fixed("Specialiserad öppenvård", "Specialist outpatient care"),
        (Breakdown::CareType, "primary_care") => fixed("Primärvård", "Primary care"),
        (Breakdown::Arm, "exposed") => fixed("Insatsgrupp", "Intervention group"),
        (Breakdown::Arm, "comparison") => fixed("Jämförelsegrupp", "Comparison group"),
        (Breakdown::Measure, "before") => fixed("Före", "Before"),
        (Breakdown::Measure, "after") => fixed("Efter", "After"),
        (Breakdown::Measure, "change") => fixed("Förändring", "Change"),
        (Breakdown::BirthCountry, "sweden") => fixed("Sverige", "Sweden"),
        (Breakdown::BirthCountry, "nordic") => fixed("Norden utom Sverige", "Nordic countries except Sweden"),
        (Breakdown::BirthCountry, "europe") => fixed("Europa utom Norden", "Europe except the Nordic countries"),
        (Breakdown::BirthCountry, "outside_europe") => fixed("Utanför Europa", "Outside Europe"),
        (Breakdown::IncomeQuintile, q) => {
            let n: u8 = q.parse().ok().filter(|n| (1..=5).contains(n))?;
            let note = match (n, lang) {
                (1, Lang::Sv) => " (lägst)",
                (1, Lang::En) => " (lowest)",
                (5, Lang::Sv) => " (högst)",
                (5, Lang::En) => " (highest)",
                _ => "",
            };
            Some(format!("{} {n}{note}", lang.pick("Kvintil", "Quintile")))
        }
        (Breakdown::Kommun, k) => kommun_name(k).map(str::to_string),
        (Breakdown::AgeBand, band) => Some(format!("{} {}", band.replace('-', "–"), lang.pick("år", "years"))),
        (Breakdown::Quarter, q) => {
            let (y, n) = q.split_once('Q')?;
            Some(match lang {
                Lang::Sv => format!("kvartal {n} {y}"),
                Lang::En => format!("Q{n} {y}"),
            })
        }
        (Breakdown::Month, m) => {
            let (y, n) = m.split_once('-')?;
            let n: usize = n.parse().ok().filter(|n| (1..=12).contains(n))?;
            Some(format!("{} {y}", month_name(n - 1, lang)))
        }
        _ => None,
    }
}

/// A value's name, or the code itself where the code is its own name (a year).
pub fn value_text(b: Breakdown, code: &str, lang: Lang) -> String {
    value_name(b, code, lang).unwrap_or_else(|| code.to_string())
}

/// The month's name, 0-based.
pub fn month_name(month0: usize, lang: Lang) -> &'static str {
    const SV: [&str; 12] = ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"];
    const EN: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    match lang {
        Lang::Sv => SV[month0 % 12],
        Lang::En => EN[month0 % 12],
    }
}

/// Every (breakdown, code) pair that has a name, for the web app and the SQL reference
/// table: sex, education, care type, country of birth, income quintile, the total and the
/// unknown value, and every kommun.
pub fn named_values() -> Vec<(Breakdown, String)> {
    use crate::cdm::{BIRTH_COUNTRY_GROUPS, CARE_TYPES, EDUCATION_LEVELS, SEXES};
    let mut out = Vec::new();
    let mut add = |b: Breakdown, codes: &mut dyn Iterator<Item = String>| out.extend(codes.map(|c| (b, c)));
    add(Breakdown::Sex, &mut SEXES.iter().map(|s| s.to_string()));
    add(Breakdown::Education, &mut EDUCATION_LEVELS.iter().map(|s| s.to_string()).chain([UNKNOWN.to_string()]));
    add(Breakdown::CareType, &mut CARE_TYPES.iter().map(|s| s.to_string()));
    add(Breakdown::Arm, &mut crate::cdm::ARMS.iter().map(|s| s.to_string()));
    add(Breakdown::Measure, &mut crate::cdm::MEASURES.iter().map(|s| s.to_string()));
    add(Breakdown::BirthCountry, &mut BIRTH_COUNTRY_GROUPS.iter().map(|s| s.to_string()));
    add(Breakdown::IncomeQuintile, &mut (1..=5).map(|q| q.to_string()).chain([UNKNOWN.to_string()]));
    add(Breakdown::Kommun, &mut kommuner().iter().map(|k| k.code.to_string()).chain([UNKNOWN.to_string()]));
    out
}

/// What the value of an indicator of `kind` is, as an axis or column label: "Andel (%)",
/// "Händelser per 1 000 invånarår", "Medelvärde (mmol/mol)", "Kostnad per patient (kr)".
pub fn value_label(kind: Kind, rate_per: Option<u32>, unit: Option<&str>, lang: Lang) -> String {
    let unit = unit.filter(|u| !u.is_empty()).map(|u| if u == "SEK" && lang == Lang::Sv { "kr" } else { u });
    match kind {
        Kind::Proportion => lang.pick("Andel (%)", "Share (%)").to_string(),
        Kind::Rate => {
            let per = super::format_number(f64::from(rate_per.unwrap_or(1000)), 0, lang);
            match lang {
                Lang::Sv => format!("Händelser per {per} invånarår"),
                Lang::En => format!("Events per {per} inhabitant-years"),
            }
        }
        Kind::Mean => with_unit(lang.pick("Medelvärde", "Mean"), unit),
        Kind::Count => lang.pick("Antal", "Count").to_string(),
        Kind::CostSum => with_unit(lang.pick("Kostnad per patient", "Cost per patient"), unit),
    }
}

fn with_unit(label: &str, unit: Option<&str>) -> String {
    match unit {
        Some(u) => format!("{label} ({u})"),
        None => label.to_string(),
    }
}

/// The words of [`super::to_json`]: `breakdown.<name>` and `value.<breakdown>.<code>`.
pub(super) fn add_json(words: &mut serde_json::Map<String, serde_json::Value>, lang: Lang) {
    for b in Breakdown::ALL {
        words.insert(format!("breakdown.{}", b.name()), breakdown(b, lang).into());
        words.insert(format!("value.{}.{TOTAL}", b.name()), value_text(b, TOTAL, lang).into());
    }
    for (b, code) in named_values() {
        words.insert(format!("value.{}.{code}", b.name()), value_text(b, &code, lang).into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scb_list_has_every_kommun_and_agrees_with_the_geography() {
        let all = kommuner();
        assert_eq!(all.len(), 290);
        let mut per_county: BTreeMap<&str, usize> = BTreeMap::new();
        for k in all {
            assert_eq!(k.code.len(), 4, "{k:?}");
            assert_eq!(&k.code[..2], k.county, "{k:?}");
            *per_county.entry(k.county).or_default() += 1;
        }
        assert_eq!(per_county["01"], 26);
        assert_eq!(per_county["14"], 49);
        assert_eq!(per_county["24"], 15);
        for k in crate::geography::NORRA.iter().flat_map(|r| r.kommuner.iter()) {
            assert_eq!(kommun_name(k.code), Some(k.name), "{}", k.code);
        }
        assert_eq!(kommun_name("0180"), Some("Stockholm"));
        assert_eq!(kommun_name("9999"), None);
    }

    #[test]
    fn codes_have_names_in_both_languages() {
        assert_eq!(value_text(Breakdown::Sex, "female", Lang::Sv), "Kvinnor");
        assert_eq!(value_text(Breakdown::Education, "primary", Lang::Sv), "Förgymnasial");
        assert_eq!(value_text(Breakdown::CareType, "inpatient", Lang::Sv), "Slutenvård");
        assert_eq!(value_text(Breakdown::Kommun, "2480", Lang::En), "Umeå");
        assert_eq!(value_text(Breakdown::IncomeQuintile, "1", Lang::Sv), "Kvintil 1 (lägst)");
        assert_eq!(value_text(Breakdown::Education, "unknown", Lang::Sv), "Uppgift saknas");
        assert_eq!(value_text(Breakdown::AgeBand, "65-79", Lang::Sv), "65–79 år");
        assert_eq!(value_text(Breakdown::Month, "2024-03", Lang::Sv), "mars 2024");
        assert_eq!(value_text(Breakdown::Year, "2024", Lang::Sv), "2024");
        assert_eq!(value_text(Breakdown::Quarter, "2024Q2", Lang::Sv), "kvartal 2 2024");
        assert_eq!(value_text(Breakdown::Sex, TOTAL, Lang::Sv), "Totalt");
        for (b, code) in named_values() {
            for lang in Lang::ALL {
                let name = value_name(b, &code, lang).unwrap_or_else(|| panic!("{b} {code} has no name"));
                assert_ne!(name, code, "{b} {code}");
            }
        }
        assert_eq!(value_label(Kind::Rate, Some(1000), None, Lang::Sv), "Händelser per 1 000 invånarår");
        assert_eq!(value_label(Kind::CostSum, None, Some("SEK"), Lang::Sv), "Kostnad per patient (kr)");
        assert_eq!(value_label(Kind::Proportion, None, None, Lang::En), "Share (%)");
    }
}
