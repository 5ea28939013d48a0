//! The words a user reads about a cell: its status, every reason code and the notes on how
//! an answer counts, in Swedish and English. One vocabulary for every front end (the command-line tool, the web app through
//! `/api/vocabulary`, Flight SQL's `reason_sv`/`reason_en` columns, the regional report's
//! PDF and xlsx), so that they never disagree and a cell is never described as "too few"
//! unless it is.

use serde::{Deserialize, Serialize};

use crate::answer::{CellStatus, Reason};

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
    }
}
