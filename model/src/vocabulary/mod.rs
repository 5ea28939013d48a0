//! The words a user reads about a cell: its status, every reason code and the notes on how
//! an answer counts, in Swedish and English. One vocabulary for every front end (the command-line tool, the web app through
//! `/api/vocabulary`, Flight SQL's `reason_sv`/`reason_en` columns, the regional report's
//! PDF and xlsx), so that they never disagree and a cell is never described as "too few"
//! unless it is.

use serde::{Deserialize, Serialize};

use crate::answer::{CellStatus, Reason};
use crate::breakdown::Breakdown;
use crate::catalog::Kind;
use crate::suggest::Suggestion;

pub mod names;
pub use names::{breakdown as breakdown_name, value_label, value_name, value_text};

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

    /// The Swedish or the English of a pair of words.
    pub fn pick<T>(self, sv: T, en: T) -> T {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

/// A template with its arguments in place of `{0}`, `{1}`, …
fn fill(template: &str, args: &[String]) -> String {
    args.iter().enumerate().fold(template.to_string(), |t, (i, a)| t.replace(&format!("{{{i}}}"), a))
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
    lang.pick(sv, en)
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
    /// Pooled rows (and home-region rows) are secure sums between the agents.
    SecureSum,
}

impl Note {
    pub const ALL: [Note; 3] = [Note::FollowupThrough, Note::CountedPerRegion, Note::SecureSum];

    pub fn name(self) -> &'static str {
        match self {
            Note::FollowupThrough => "followup_through",
            Note::CountedPerRegion => "counted_per_region",
            Note::SecureSum => "secure_sum",
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
        Note::SecureSum => (
            "Den sammanvägda raden (och i befolkningsperspektivet hemregionernas rader) är en säker summa mellan regionernas agenter: ingen regions del lämnade regionen, och totalen redovisas enligt förbundets skyddsregler",
            "The pooled row (and in the population perspective the home regions' rows) is a secure sum between the regions' agents: no region's part left the region, and the total is released under the federation's protection rules",
        ),
    };
    lang.pick(sv, en)
}

/// A note with its argument filled in.
pub fn note_with(n: Note, arg: &str, lang: Lang) -> String {
    fill(note(n, lang), &[arg.to_string()])
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

/// The template of a suggestion's words: `{0}`, `{1}`, … stand for its arguments (see
/// [`suggestion`]). Served to the web app as `suggest.<key>`, which fills them in the same way.
pub fn suggestion_template(key: &str, lang: Lang) -> Option<&'static str> {
    let (sv, en) = match key {
        "drop.kommun" => (
            "Fråga efter hela regionen i stället för per kommun: den cellen redovisas",
            "Ask for the whole region instead of by kommun (drop the kommun breakdown): that cell is released",
        ),
        "drop.time" => (
            "Fråga efter hela perioden {0} i stället för per {1}: den cellen redovisas",
            "Ask for the whole period {0} instead of by {1} (drop that breakdown): that cell is released",
        ),
        "drop.age_band" => ("Slå ihop åldersgrupperna (utan nedbrytning på ålder): den cellen redovisas", "Merge the age bands (drop the age breakdown): that cell is released"),
        "drop" => ("Fråga utan nedbrytning på {0}: den cellen redovisas", "Ask without the breakdown by {0}: that cell is released"),
        "whole_too_few" => (
            "För få även utan nedbrytningar under {0}: en längre period eller flera regioner sammanvägda kan ge ett värde (inte kontrollerat)",
            "Too few even without breakdowns in {0}: a longer period, or several regions pooled, may give a value (not checked)",
        ),
        "nothing_coarser" => (
            "Ingen grövre cell i frågan redovisas heller: fråga efter en längre period eller flera regioner sammanvägda (inte kontrollerat)",
            "No coarser cell of this question is released either: ask for a longer period or several regions pooled (not checked)",
        ),
        "pooled_nothing_coarser" => (
            "Det sammanvägda värdet behöver varje regions del av cellen, och ingen grövre cell redovisas i alla regioner: fråga efter en längre period eller färre nedbrytningar (inte kontrollerat)",
            "The pooled value needs every region's part of the cell, and no coarser cell is released in every region: ask for a longer period or fewer breakdowns (not checked)",
        ),
        "followup" => (
            "Utfallet följs i {0} dagar och data sträcker sig till {1}: indexhändelser efter {2} ingår inte, mer än {3} % av cellens tid; fråga efter en tidigare eller längre period (eller vänta på nyare data)",
            "The outcome is followed for {0} days and the data end on {1}: index events after {2} are left out, more than {3}% of this cell's time; ask for an earlier or longer period (or wait for newer data)",
        ),
        _ => return None,
    };
    Some(lang.pick(sv, en))
}

const SUGGESTION_KEYS: [&str; 8] = ["drop.kommun", "drop.time", "drop.age_band", "drop", "whole_too_few", "nothing_coarser", "pooled_nothing_coarser", "followup"];

/// A period as a reader writes it: 2021–2025.
pub fn period_text(period: &str) -> String {
    period.replace("..", "–")
}

/// A suggestion in words.
pub fn suggestion(s: &Suggestion, lang: Lang) -> String {
    let fill = |key: &str, args: &[String]| fill(suggestion_template(key, lang).unwrap_or(key), args);
    let date = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map(|d| format_date(d, lang)).unwrap_or_else(|_| d.to_string());
    match s {
        Suggestion::Drop { breakdown: Breakdown::Kommun, .. } => fill("drop.kommun", &[]),
        Suggestion::Drop { breakdown: Breakdown::AgeBand, .. } => fill("drop.age_band", &[]),
        Suggestion::Drop { breakdown: b @ (Breakdown::Year | Breakdown::Quarter | Breakdown::Month), period } => {
            fill("drop.time", &[period_text(period), breakdown_name(*b, lang).to_lowercase()])
        }
        Suggestion::Drop { breakdown, .. } => fill("drop", &[breakdown_name(*breakdown, lang).to_lowercase()]),
        Suggestion::WholeTooFew { period } => fill("whole_too_few", &[period_text(period)]),
        Suggestion::NothingCoarser => fill("nothing_coarser", &[]),
        Suggestion::PooledNothingCoarser => fill("pooled_nothing_coarser", &[]),
        Suggestion::FollowupIncomplete { days, data_end, through, percent } => {
            fill("followup", &[days.to_string(), date(data_end), date(through), percent.to_string()])
        }
        Suggestion::Text(t) => t.clone(),
    }
}

/// A suggestion as it travels (its code) in words.
pub fn suggestion_text(code: &str, lang: Lang) -> String {
    suggestion(&Suggestion::parse(code), lang)
}

/// Why an indicator could not be assessed in a report, by code (singular, plural).
pub fn unassessed(code: &str, lang: Lang) -> Option<(&'static str, &'static str)> {
    let (sv, en) = match code {
        "withheld" => (("ej redovisad av skyddsskäl", "ej redovisade av skyddsskäl"), ("withheld for protection", "withheld for protection")),
        "incomplete_followup" => (("ofullständig uppföljning", "ofullständig uppföljning"), ("follow-up not complete", "follow-up not complete")),
        "no_answer" => (("regionen svarade inte", "regionen svarade inte"), ("the region did not answer", "the region did not answer")),
        "distribution" => (("fördelning, visas i indikatorvyn", "fördelningar, visas i indikatorvyn"), ("a distribution, shown in the indicator view", "distributions, shown in the indicator view")),
        "failed" => (("frågan kunde inte besvaras", "frågorna kunde inte besvaras"), ("the question could not be answered", "the questions could not be answered")),
        _ => return None,
    };
    Some(lang.pick(sv, en))
}

/// What kind of refusal or failure an error is, as a heading for its details (the error
/// kinds' names as the HTTPS door's `kind` and the gRPC details carry them).
pub fn error_kind(kind: &str, lang: Lang) -> Option<&'static str> {
    let (sv, en) = match kind {
        "invalid" => ("Frågan är inte giltig", "The question is not valid"),
        "not_found" => ("Finns inte", "Not found"),
        "unauthenticated" => ("Inte inloggad med ett giltigt certifikat", "Not signed in with a valid certificate"),
        "permission_denied" => ("Ingen behörighet", "Not permitted"),
        "policy_refused" => ("Regionens policy tillåter inte frågan", "The region's policy does not allow the question"),
        "resource_exhausted" => ("Frågan är för stor", "The question is too large"),
        "audit_unavailable" => ("Loggen kan inte skrivas: inget svar lämnas", "The audit log cannot be written: no answer is given"),
        "disclosure_failed" => ("Röjandeskyddet kunde inte tillämpas: inget svar lämnas", "Disclosure control could not be applied: no answer is given"),
        "not_ready" => ("Inte redo ännu", "Not ready yet"),
        "unsupported" => ("Stöds inte", "Not supported"),
        "internal" => ("Internt fel", "Internal error"),
        "timeout" => ("Svaret dröjde för länge", "The answer took too long"),
        "rate_limited" => ("För många frågor just nu", "Too many questions right now"),
        _ => return None,
    };
    Some(lang.pick(sv, en))
}

const ERROR_KINDS: [&str; 13] = [
    "invalid", "not_found", "unauthenticated", "permission_denied", "policy_refused", "resource_exhausted", "audit_unavailable",
    "disclosure_failed", "not_ready", "unsupported", "internal", "timeout", "rate_limited",
];

const UNASSESSED: [&str; 5] = ["withheld", "incomplete_followup", "no_answer", "distribution", "failed"];
const CHANGE_UNITS: [&str; 4] = ["odds ratio per year", "rate ratio per year", "ratio per year", "difference per year"];

/// An analysis verdict in words, as the command line writes it: significance against a
/// comparator, a trend's assessment, a funnel plot's position.
pub fn verdict(code: &str, lang: Lang) -> Option<&'static str> {
    let (sv, en) = match code {
        "better" => ("signifikant bättre", "significantly better"),
        "worse" => ("signifikant sämre", "significantly worse"),
        "higher" => ("signifikant högre", "significantly higher"),
        "lower" => ("signifikant lägre", "significantly lower"),
        "similar" => ("ingen signifikant skillnad", "no significant difference"),
        "not_compared" => ("ej jämförd", "not compared"),
        "improving" => ("förbättras", "improving"),
        "worsening" => ("försämras", "worsening"),
        "increasing" => ("ökar", "increasing"),
        "decreasing" => ("minskar", "decreasing"),
        "no_significant_change" => ("ingen signifikant förändring", "no significant change"),
        "not_computed" => ("ej beräknad", "not computed"),
        "above_998" => ("över 99,8 %-gränsen", "above the 99.8 % limit"),
        "above_95" => ("över 95 %-gränsen", "above the 95 % limit"),
        "below_998" => ("under 99,8 %-gränsen", "below the 99.8 % limit"),
        "below_95" => ("under 95 %-gränsen", "below the 95 % limit"),
        "within" => ("inom gränserna", "within the limits"),
        "not_plotted" => ("ej ritad (ej redovisad)", "not plotted (withheld)"),
        _ => return None,
    };
    Some(lang.pick(sv, en))
}

/// A trend model's change unit (`odds ratio per year`, as the trend table's `change_unit`
/// holds it) in words.
pub fn change_unit(unit: &str, lang: Lang) -> String {
    let sv = match unit {
        "odds ratio per year" => "oddskvot per år",
        "rate ratio per year" => "kvot mellan åren (incidenskvot) per år",
        "ratio per year" => "kvot per år",
        "difference per year" => "skillnad per år",
        other => return other.to_string(),
    };
    match lang {
        Lang::Sv => sv.to_string(),
        Lang::En => unit.to_string(),
    }
}

/// A change per year on a value's scale in words: "+1,2 procentenheter per år" for a share,
/// "−0,50 per år" otherwise (the value's own unit, as its label says).
pub fn yearly_change(kind: Kind, v: f64, lang: Lang) -> String {
    let sign = if v > 0.0 && format_number(v, 2, lang).chars().any(|c| c.is_ascii_digit() && c != '0') { "+" } else { "" };
    match kind {
        Kind::Proportion => {
            let n = format_number(v, 1, lang);
            match lang {
                Lang::Sv => format!("{sign}{n} procentenheter per år"),
                Lang::En => format!("{sign}{n} percentage points per year"),
            }
        }
        _ => {
            let d = number_format(kind).decimals.max(1);
            let n = format_number(v, d, lang);
            match lang {
                Lang::Sv => format!("{sign}{n} per år"),
                Lang::En => format!("{sign}{n} per year"),
            }
        }
    }
}

/// A gap between two groups' values on the value's scale: procentenheter for a share.
pub fn gap(kind: Kind, v: f64, lang: Lang) -> String {
    match kind {
        Kind::Proportion => {
            let n = format_number(v * 100.0, 1, lang);
            match lang {
                Lang::Sv => format!("{n} procentenheter"),
                Lang::En => format!("{n} percentage points"),
            }
        }
        _ => format_value(kind, v, lang),
    }
}

/// The template of an analysis note (why a row has no comparison or trend), by its code.
pub fn analysis_note_template(key: &str, lang: Lang) -> Option<&'static str> {
    let (sv, en) = match key {
        "count_not_compared" => (
            "Ett antal jämförs inte: det växer med regionens befolkning; jämför en andel eller ett antal per invånare, eller följ antalets utveckling",
            "A count is not compared: it grows with the region's population; compare a share or a rate, or follow the count's trend",
        ),
        "pooled_withheld" => ("Det sammanvägda värdet för cellen är undertryckt eller saknas", "The pooled value of this cell is withheld or has no value"),
        "others_unformable" => (
            "Övriga regioners värde kan inte bildas (en region undertryckte sin del, eller ingen annan region svarade)",
            "The other regions' value cannot be formed (a region withheld its part, or no other region answered)",
        ),
        "no_standardised" => ("Inget åldersstandardiserat värde för cellen", "No age-standardised value for this cell"),
        "withheld" => ("Ej redovisad: {0}", "Not released: {0}"),
        "years_missing" => ("{0} av {1} år saknar redovisat värde", "{0} of {1} years have no released value"),
        "too_few_years" => ("Ingen trend: färre än tre år med redovisade värden", "No trend: fewer than three years with released values"),
        "no_fit" => ("Ingen trend: modellen kan inte anpassas till värdena", "No trend: the model cannot be fitted to these values"),
        "regression_to_the_mean" => (
            "Utan jämförelsegrupp: förändringen innehåller den återgång mot det vanliga som sker när personer väljs ut för hög vårdkonsumtion (regression mot medelvärdet)",
            "No comparison group: the change includes the return to usual levels that follows selection for high care use (regression to the mean)",
        ),
        "no_effect_estimate" => ("Ingen effekt kan skattas: en grupp eller ett mått saknar redovisade värden", "No effect can be estimated: a group or a measure has no released values"),
        _ => return None,
    };
    Some(lang.pick(sv, en))
}

/// A word of an evaluation's table or text (`effect`, `design.did`, `outcome.cost`), or the
/// key itself when there is none.
pub fn evaluation_word<'a>(key: &'a str, lang: Lang) -> &'a str {
    let (sv, en) = match key {
        "region" => ("Region", "Region"),
        "n" => ("Antal", "n"),
        "before" => ("Före", "Before"),
        "after" => ("Efter", "After"),
        "change" => ("Förändring (95 % KI)", "Change (95% CI)"),
        "ratio" => ("Kvot efter/före", "Ratio after/before"),
        "comparison_n" => ("Antal, jämförelsegrupp", "n, comparison group"),
        "comparison_change" => ("Förändring, jämförelsegrupp", "Change, comparison group"),
        "effect" => ("Effekt (95 % KI)", "Effect (95% CI)"),
        "weight" => ("Vikt", "Weight"),
        "note" => ("Anmärkning", "Note"),
        "pooled" => ("sammanvägt", "pooled"),
        "fixed" => ("Metaanalys, fix effekt", "Meta-analysis, fixed effect"),
        "random" => ("Metaanalys, slumpeffekt", "Meta-analysis, random effects"),
        "prediction" => ("Prediktionsintervall för en ny region", "Prediction interval for a new region"),
        "regions" => ("regioner", "regions"),
        "days" => ("dagar", "days"),
        "outcome" => ("Utfall", "Outcome"),
        "outcome.contacts" => ("vårdkontakter per person", "care contacts per person"),
        "outcome.inpatient_stays" => ("vårdtillfällen i slutenvård per person", "inpatient stays per person"),
        "outcome.inpatient_days" => ("vårddagar per person", "days in hospital per person"),
        "outcome.cost" => ("KPP-kostnad per person (kr)", "KPP cost per person (SEK)"),
        "design.did" => (
            "Skillnad i skillnader: insatsgruppens förändring minus jämförelsegruppens (personer som uppfyllde samma kriterium utan insatsen); återgången mot medelvärdet tas bort",
            "Difference in differences: the intervention group's change minus the comparison group's (persons who met the same criterion without the intervention); regression to the mean is removed",
        ),
        "design.before_after" => (
            "Före och efter: insatsgruppens förändring; utan jämförelsegrupp innehåller den återgången mot medelvärdet",
            "Before and after: the intervention group's change; without a comparison group it includes regression to the mean",
        ),
        _ => return key,
    };
    lang.pick(sv, en)
}

/// The verdict of an evaluation's meta-analysis in plain language.
pub fn consistency_statement(code: &str, lang: Lang) -> &'static str {
    let (sv, en) = match code {
        "consistent" => (
            "Effekten är samstämmig mellan regionerna: även prediktionsintervallet för en ny region utesluter ingen effekt, så resultatet är troligen generellt.",
            "The effect is consistent across regions: even the prediction interval for a new region excludes no effect, so the result is likely general.",
        ),
        "varies" => (
            "Effekten är säkerställd i genomsnitt men varierar mellan regionerna: en ny region kan få ingen effekt, så resultatet kan bero på lokala förhållanden.",
            "The effect is established on average but varies between regions: a new region might see none, so the result may depend on local conditions.",
        ),
        "uncertain" => (
            "Effekten är säkerställd i genomsnitt, men med så få regioner eller så osäkra skattningar går det inte att säga om en ny region får den; regionerna skiljer sig inte påvisbart.",
            "The effect is established on average, but with so few regions or such uncertain estimates it cannot be said whether a new region would see it; the regions do not differ detectably.",
        ),
        "no_effect" => (
            "Ingen effekt är säkerställd över regionerna (det sammanvägda intervallet innehåller noll).",
            "No effect is established across the regions (the pooled interval includes zero).",
        ),
        "too_few_regions" => (
            "För få regioner med skattad effekt (minst tre behövs) för att bedöma om resultatet är generellt.",
            "Too few regions with an estimated effect (at least three are needed) to judge whether the result is general.",
        ),
        _ => ("", ""),
    };
    lang.pick(sv, en)
}

/// A word of a data-quality profile: a check's name (`check.volume_month`), a band
/// (`band.critical`) or a heading, or the key itself when there is none.
pub fn quality_word<'a>(key: &'a str, lang: Lang) -> &'a str {
    let (sv, en) = match key {
        "check.volume_month" => ("Volym per månad (tidsbrott)", "Volume by month (temporal break)"),
        "check.volume_year" => ("Volym per år (täckning)", "Volume by year (coverage)"),
        "check.education_missing" => ("Utbildning saknas per kommun (fullständighet)", "Education missing by kommun (completeness)"),
        "check.unknown_kommun" => ("Kommunkoder som inte finns (överensstämmelse)", "Kommun codes that do not exist (conformance)"),
        "check.plausibility" => ("Värdet inom rimligt intervall (rimlighet)", "Value within its plausible range (plausibility)"),
        "band.ok" => ("utan anmärkning", "no remark"),
        "band.not_assessed" => ("ej bedömd", "not assessed"),
        "band.warning" => ("varning", "warning"),
        "band.critical" => ("kritisk", "critical"),
        "check" => ("Kontroll", "Check"),
        "findings" => ("Avvikelser", "Findings"),
        "no_findings" => ("Inga avvikelser: varje kontroll är utan anmärkning eller kunde inte bedömas.", "No findings: every check has no remark or could not be assessed."),
        "subject" => ("Gäller", "Where"),
        "value" => ("Värde", "Value"),
        "expected" => ("Förväntat", "Expected"),
        "band" => ("Bedömning", "Assessment"),
        _ => return key,
    };
    lang.pick(sv, en)
}

const QUALITY_WORDS: [&str; 16] = [
    "check.volume_month", "check.volume_year", "check.education_missing", "check.unknown_kommun", "check.plausibility", "band.ok", "band.not_assessed",
    "band.warning", "band.critical", "check", "findings", "no_findings", "subject", "value", "expected", "band",
];

const EVALUATION_WORDS: [&str; 24] = [
    "region", "n", "before", "after", "change", "ratio", "comparison_n", "comparison_change", "effect", "weight", "note", "pooled", "fixed", "random",
    "prediction", "regions", "days", "outcome", "outcome.contacts", "outcome.inpatient_stays", "outcome.inpatient_days", "outcome.cost", "design.did",
    "design.before_after",
];
const CONSISTENCY: [&str; 5] = ["consistent", "varies", "uncertain", "no_effect", "too_few_regions"];

/// An analysis note as it travels (`key|arg|…`, several joined by `; `) in words.
pub fn analysis_note(code: &str, lang: Lang) -> String {
    code.split("; ")
        .map(|one| {
            let mut parts = one.split('|');
            let key = parts.next().unwrap_or("");
            match analysis_note_template(key, lang) {
                None => one.to_string(),
                Some(t) => {
                    // A withheld row's argument is its reason codes, written in words.
                    let args: Vec<String> = parts.map(|a| if key == "withheld" { reasons_text(&a.split(',').collect::<Vec<_>>(), lang) } else { a.to_string() }).collect();
                    fill(t, &args)
                }
            }
        })
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

/// How an evaluation's values of an outcome are written: counts of care per person with two
/// decimals (an effect is often a tenth of a stay), costs in whole kronor.
pub fn outcome_format(outcome: &str) -> NumberFormat {
    match outcome {
        "cost" => NumberFormat { decimals: 0, percent: false },
        _ => NumberFormat { decimals: 2, percent: false },
    }
}

/// A value of an evaluation's outcome, written as [`outcome_format`] says.
pub fn format_outcome(outcome: &str, v: f64, lang: Lang) -> String {
    format_number(v, outcome_format(outcome).decimals, lang)
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
    format!("{} {} {}", date.day(), names::month_name(date.month0() as usize, lang), date.year())
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
        for o in ["contacts", "inpatient_stays", "inpatient_days", "cost"] {
            words.insert(format!("format.outcome.{o}"), serde_json::to_value(outcome_format(o)).unwrap_or_default());
        }
        for key in SUGGESTION_KEYS {
            words.insert(format!("suggest.{key}"), suggestion_template(key, lang).unwrap_or(key).into());
        }
        names::add_json(&mut words, lang);
        for code in UNASSESSED {
            words.insert(format!("unassessed.{code}"), unassessed(code, lang).map_or(code, |w| w.0).into());
        }
        for kind in ERROR_KINDS {
            words.insert(format!("error.{kind}"), error_kind(kind, lang).unwrap_or(kind).into());
        }
        for key in ["withheld", "regression_to_the_mean", "no_effect_estimate"] {
            words.insert(format!("anote.{key}"), analysis_note_template(key, lang).unwrap_or(key).into());
        }
        for key in QUALITY_WORDS {
            words.insert(format!("quality.{key}"), quality_word(key, lang).into());
        }
        for key in EVALUATION_WORDS {
            words.insert(format!("evaluation.{key}"), evaluation_word(key, lang).into());
        }
        for code in CONSISTENCY {
            words.insert(format!("consistency.{code}"), consistency_statement(code, lang).into());
        }
        for code in CHANGE_UNITS {
            words.insert(format!("change_unit.{code}"), change_unit(code, lang).into());
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
    fn suggestions_are_written_from_their_codes() {
        let drop = crate::suggest::drop_breakdown(Breakdown::Kommun, &crate::period::Period::years(2021, 2025));
        assert_eq!(suggestion_text(&drop, Lang::Sv), "Fråga efter hela regionen i stället för per kommun: den cellen redovisas");
        let year = Suggestion::Drop { breakdown: Breakdown::Year, period: "2021..2025".into() };
        assert_eq!(suggestion(&year, Lang::Sv), "Fråga efter hela perioden 2021–2025 i stället för per år: den cellen redovisas");
        let sex = Suggestion::Drop { breakdown: Breakdown::Sex, period: "2024".into() };
        assert_eq!(suggestion(&sex, Lang::En), "Ask without the breakdown by sex: that cell is released");
        let f = Suggestion::FollowupIncomplete { days: 365, data_end: "2025-12-31".into(), through: "2024-12-31".into(), percent: 10 };
        assert!(suggestion(&f, Lang::Sv).contains("365 dagar och data sträcker sig till 31 december 2025"), "{}", suggestion(&f, Lang::Sv));
        assert_eq!(suggestion_text("Norrbotten: timeout", Lang::Sv), "Norrbotten: timeout");
        assert_eq!(analysis_note("withheld|below_min_cell; years_missing|2|5", Lang::Sv), format!("Ej redovisad: {}; 2 av 5 år saknar redovisat värde", reason(Reason::BelowMinCell, Lang::Sv)));
        assert_eq!(analysis_note("something else", Lang::Sv), "something else");
        assert_eq!(yearly_change(Kind::Proportion, 1.25, Lang::Sv), "+1,2 procentenheter per år");
        assert_eq!(yearly_change(Kind::Rate, -0.5, Lang::En), "−0.50 per year");
        assert_eq!(gap(Kind::Proportion, 0.053, Lang::Sv), "5,3 procentenheter");
        assert_eq!(change_unit("odds ratio per year", Lang::Sv), "oddskvot per år");
        for key in SUGGESTION_KEYS {
            assert_ne!(suggestion_template(key, Lang::Sv), suggestion_template(key, Lang::En), "{key}");
        }
        let json = to_json();
        assert_eq!(json["sv"]["value.sex.female"], "Kvinnor");
        assert_eq!(json["sv"]["value.kommun.2480"], "Umeå");
        assert_eq!(json["sv"]["breakdown.care_type"], "Vårdform");
        assert!(json["sv"]["suggest.drop.time"].as_str().unwrap().contains("{1}"));
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
