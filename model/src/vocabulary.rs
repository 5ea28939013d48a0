//! The words a user reads about a cell: its status, every reason code and the notes on how
//! an answer counts, in Swedish and English. One vocabulary for every front end (the command-line tool, the web app through
//! `/api/vocabulary`, Flight SQL's `reason_sv`/`reason_en` columns, the regional report's
//! PDF and xlsx), so that they never disagree and a cell is never described as "too few"
//! unless it is.

use serde::{Deserialize, Serialize};

use crate::answer::{CellStatus, Reason};
use crate::catalog::Kind;

/// A language of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Swedish: the default.
    #[default]
    Sv,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Sv, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == s)
    }
}

/// A reason in words.
pub fn reason(r: Reason, lang: Lang) -> &'static str {
    let (sv, en) = match r {
        Reason::BelowMinCell => ("för få personer i cellen, möjligen inga (under minsta cellstorlek)", "too few persons in the cell, possibly none (below the minimum cell size)"),
        Reason::Complement => ("nästan alla i cellen har utfallet: de som inte har det är för få", "almost everyone in the cell has the outcome: those who do not are too few"),
        Reason::Secondary => ("undertryckt för att en annan undertryckt cell inte ska kunna räknas fram", "withheld so that another withheld cell cannot be computed"),
        Reason::Dominance => ("en eller två personer står för nästan hela summan", "one or two persons make up nearly all of the sum"),
        Reason::Perturbed => ("brusad med cellnyckelmetoden", "perturbed with the cell key method"),
        Reason::Rounded => ("avrundad", "rounded"),
        Reason::PooledProtection => ("en region undertryckte sin del av cellen", "a region withheld its part of the cell"),
        Reason::Zero => ("nolla som regionens policy inte redovisar", "a zero the region's policy does not release"),
        Reason::Implied => (
            "skillnaden mot en större redovisad cell skulle gälla för få personer",
            "the difference to a larger released cell would concern too few persons",
        ),
        Reason::PartWithheld => ("ett av åren eller en av grupperna den består av är undertryckt", "one of the years or groups it is made of is withheld"),
        Reason::IncompleteFollowup => ("uppföljningstiden är ännu inte komplett", "the follow-up time is not yet complete"),
        Reason::NotStandardised => (
            "inte åldersstandardiserad: för få händelser eller en åldersgrupp undertryckt",
            "not age-standardised: too few events or an age band withheld",
        ),
    };
    match lang {
        Lang::Sv => sv,
        Lang::En => en,
    }
}

/// A status in words.
pub fn status(s: CellStatus, lang: Lang) -> &'static str {
    match (s, lang) {
        (CellStatus::Released, Lang::Sv) => "redovisad",
        (CellStatus::Released, Lang::En) => "released",
        (CellStatus::Perturbed, Lang::Sv) => "redovisad (brusad)",
        (CellStatus::Perturbed, Lang::En) => "released (perturbed)",
        (CellStatus::Suppressed, Lang::Sv) => "undertryckt",
        (CellStatus::Suppressed, Lang::En) => "withheld",
    }
}

/// A note an answer carries about how its cells were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Index events after a date (`{0}`) are left out: their follow-up is not complete.
    FollowupThrough,
    /// Pooled rows, and home-region rows in the population perspective, add each region's
    /// part: a patient treated in several regions counts once in each.
    CountedPerRegion,
}

impl Note {
    pub const ALL: [Note; 2] = [Note::FollowupThrough, Note::CountedPerRegion];

    pub fn name(self) -> &'static str {
        match self {
            Note::FollowupThrough => "followup_through",
            Note::CountedPerRegion => "counted_per_region",
        }
    }
}

/// A note in words; `{0}` stands for its argument (a date).
pub fn note(n: Note, lang: Lang) -> &'static str {
    let (sv, en) = match n {
        Note::FollowupThrough => (
            "Indexhändelser t.o.m. {0} (uppföljningen komplett); senare händelser ingår inte",
            "Index events through {0} (follow-up complete); later ones are left out",
        ),
        Note::CountedPerRegion => (
            "Den sammanvägda raden, och i befolkningsperspektivet hemregionens rad, lägger ihop regionernas delar: en patient som vårdats i flera regioner räknas en gång i varje region (unika patienter över regiongränser räknas ännu inte)",
            "The pooled row, and in the population perspective the home region's row, add the regions' parts: a patient treated in several regions counts once in each region (distinct patients across regions are not yet counted)",
        ),
    };
    match lang {
        Lang::Sv => sv,
        Lang::En => en,
    }
}

/// A note with its argument filled in.
pub fn note_with(n: Note, arg: &str, lang: Lang) -> String {
    note(n, lang).replace("{0}", arg)
}

/// Reason codes (as they travel, comma-separated) in words, joined by "; ". Codes this
/// version does not know are shown as they are.
pub fn reasons_text(codes: &[impl AsRef<str>], lang: Lang) -> String {
    codes
        .iter()
        .map(|c| c.as_ref())
        .filter(|c| !c.is_empty())
        .map(|c| Reason::parse(c).map_or_else(|| c.to_string(), |r| reason(r, lang).to_string()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a value of an indicator kind is written: its decimals, and whether it is shown as a
/// percentage (a share 0.123 as 12.3 %). One rule for the command-line tool, the report's
/// PDF and xlsx, and the web app (served with the words, `format.<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NumberFormat {
    pub decimals: u8,
    pub percent: bool,
}

/// The format of a kind's values: shares with one decimal as percent, rates with two,
/// means with one, counts and costs as whole numbers.
pub fn number_format(kind: Kind) -> NumberFormat {
    match kind {
        Kind::Proportion => NumberFormat { decimals: 1, percent: true },
        Kind::Rate => NumberFormat { decimals: 2, percent: false },
        Kind::Mean => NumberFormat { decimals: 1, percent: false },
        Kind::Count | Kind::CostSum => NumberFormat { decimals: 0, percent: false },
    }
}

/// A number with `decimals` decimals as a reader of `lang` writes it: Swedish with a
/// decimal comma and a space between thousands (12 345,6), English with a point and commas
/// (12,345.6). Not finite: an empty string.
pub fn format_number(v: f64, decimals: u8, lang: Lang) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let text = format!("{:.*}", usize::from(decimals), v.abs());
    let (int, frac) = text.split_once('.').map_or((text.as_str(), ""), |(i, f)| (i, f));
    let (group, point) = match lang {
        Lang::Sv => (' ', ','),
        Lang::En => (',', '.'),
    };
    let mut out = String::new();
    // "-0" and "-0,0" are written without the sign.
    if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('−');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(group);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(point);
        out.push_str(frac);
    }
    out
}

/// A value of an indicator of `kind` as a reader of `lang` reads it (12,3 % / 12.3%).
pub fn format_value(kind: Kind, v: f64, lang: Lang) -> String {
    let f = number_format(kind);
    if f.percent {
        let n = format_number(v * 100.0, f.decimals, lang);
        match lang {
            Lang::Sv => format!("{n} %"),
            Lang::En => format!("{n}%"),
        }
    } else {
        format_number(v, f.decimals, lang)
    }
}

/// A date as a reader of `lang` writes it: "7 december 2026", "7 December 2026".
pub fn format_date(date: chrono::NaiveDate, lang: Lang) -> String {
    use chrono::Datelike;
    const SV: [&str; 12] = ["januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"];
    const EN: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    let month = date.month0() as usize;
    let name = match lang {
        Lang::Sv => SV[month],
        Lang::En => EN[month],
    };
    format!("{} {name} {}", date.day(), date.year())
}

/// A timestamp (RFC 3339, as answers and reports carry it) as its date in words; the text
/// itself when it is not one.
pub fn format_timestamp(ts: &str, lang: Lang) -> String {
    chrono::DateTime::parse_from_rfc3339(ts).map(|t| format_date(t.date_naive(), lang)).unwrap_or_else(|_| ts.to_string())
}

/// The whole vocabulary as `{ "sv": { "reason.<code>": …, "status.<name>": … }, "en": … }`,
/// for the web app.
pub fn to_json() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for lang in Lang::ALL {
        let mut words = serde_json::Map::new();
        for r in Reason::ALL {
            words.insert(format!("reason.{}", r.name()), reason(r, lang).into());
        }
        for s in [CellStatus::Released, CellStatus::Perturbed, CellStatus::Suppressed] {
            words.insert(format!("status.{}", s.name()), status(s, lang).into());
        }
        for n in Note::ALL {
            words.insert(format!("note.{}", n.name()), note(n, lang).into());
        }
        for k in Kind::ALL {
            words.insert(format!("format.{}", k.name()), serde_json::to_value(number_format(k)).unwrap_or_default());
        }
        out.insert(lang.code().into(), words.into());
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_words_in_both_languages_and_only_too_few_says_too_few() {
        for r in Reason::ALL {
            for lang in Lang::ALL {
                assert!(!reason(r, lang).is_empty(), "{r:?} {lang:?}");
            }
            assert_ne!(reason(r, Lang::Sv), reason(r, Lang::En), "{r:?} is not translated");
            // "Too few persons in the cell" describes the cell's own size: only below_min_cell.
            let says_too_few = reason(r, Lang::En).starts_with("too few");
            assert_eq!(says_too_few, r == Reason::BelowMinCell, "{r:?}: {}", reason(r, Lang::En));
        }
        assert_eq!(reasons_text(&["secondary", "incomplete_followup"], Lang::Sv), format!("{}; {}", reason(Reason::Secondary, Lang::Sv), reason(Reason::IncompleteFollowup, Lang::Sv)));
        assert_eq!(reasons_text(&["from_the_future"], Lang::En), "from_the_future");
        let json = to_json();
        assert_eq!(json["sv"]["status.suppressed"], "undertryckt");
        assert_eq!(json["en"]["reason.part_withheld"].as_str().unwrap(), reason(Reason::PartWithheld, Lang::En));
        assert_eq!(json["sv"]["format.count"]["decimals"], 0);
        assert_eq!(json["en"]["format.proportion"]["percent"], true);
    }

    #[test]
    fn numbers_are_written_as_each_language_writes_them() {
        assert_eq!(format_value(Kind::Proportion, 0.1234, Lang::Sv), "12,3 %");
        assert_eq!(format_value(Kind::Proportion, 0.1234, Lang::En), "12.3%");
        assert_eq!(format_value(Kind::CostSum, 81234.4, Lang::Sv), "81 234");
        assert_eq!(format_value(Kind::CostSum, 81234.4, Lang::En), "81,234");
        assert_eq!(format_value(Kind::Count, 1000.0, Lang::Sv), "1 000", "a count has no decimals");
        assert_eq!(format_value(Kind::Rate, 3.14159, Lang::Sv), "3,14");
        assert_eq!(format_value(Kind::Mean, 1234567.26, Lang::En), "1,234,567.3");
        assert_eq!(format_value(Kind::Rate, -0.001, Lang::Sv), "0,00");
        assert_eq!(format_value(Kind::Rate, -2.5, Lang::Sv), "−2,50");
        assert_eq!(format_value(Kind::Rate, f64::NAN, Lang::Sv), "");
        assert_eq!(format_number(999.0, 0, Lang::Sv), "999");
        assert_eq!(format_timestamp("2026-12-07T09:19:59Z", Lang::Sv), "7 december 2026");
        assert_eq!(format_timestamp("2026-05-01T00:00:00Z", Lang::En), "1 May 2026");
        assert_eq!(format_timestamp("not a date", Lang::Sv), "not a date");
    }
}
