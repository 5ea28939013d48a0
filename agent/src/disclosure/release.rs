//! Stage 6 of the disclosure pipeline: the release. The question's cells, decided in the
//! lattice ([`super::lattice`], [`super::derived`]), become the cells sent: released cells
//! perturbed ([`super::perturb`]), withheld cells with their reasons and a checked
//! suggestion, outcome windows past the data's end withheld (`incomplete_followup`), margins
//! only when asked, no values at all in a dry run. What the release ledger records of the
//! answer is built here too.

use std::collections::HashMap;

use norrsken_common::answer::{Reason, ReleasedCell};
use norrsken_common::breakdown::Breakdown;
use norrsken_common::query::ValidatedQuery;

use super::ledger::{LedgerCell, Mark};
use super::lattice::Decision;
use super::perturb::release_cell;
use super::{DisclosureError, Settings};
use crate::engine::cells::{RawCell, TOTAL};

/// One cell of the question, decided.
#[derive(Debug, Clone)]
pub struct QuestionCell {
    /// The raw cell, labelled in the question's (canonical) breakdown order.
    pub raw: RawCell,
    /// The decision at the region's floor.
    pub floor: Decision,
    /// The decision at the minimum cell size applied (the floor, or a larger request).
    pub applied: Decision,
}

/// The cells to send and what the ledger records of them.
#[derive(Debug, Clone, Default)]
pub struct Released {
    pub cells: Vec<ReleasedCell>,
    pub ledger: Vec<LedgerCell>,
}

/// The last day of a cell's time span: its time label's, or the period's.
fn cell_last_day(v: &ValidatedQuery, labels: &[String]) -> chrono::NaiveDate {
    let last = v
        .breakdowns
        .iter()
        .zip(labels)
        .find(|(b, l)| b.time_grain().is_some() && l.as_str() != TOTAL)
        .and_then(|(_, l)| norrsken_common::period::Period::parse(l).ok())
        .map_or(v.period.last, |p| p.last);
    let (y, m) = (last.year(), last.month());
    let next = if m == 12 { chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { chrono::NaiveDate::from_ymd_opt(y, m + 1, 1) };
    next.and_then(|d| d.pred_opt()).unwrap_or(chrono::NaiveDate::MAX)
}

/// Whether the recipe's outcome window of some of a cell's units reaches past the data.
pub fn incomplete_followup(v: &ValidatedQuery, labels: &[String], data_end: chrono::NaiveDate) -> Option<u32> {
    let days = v.recipe.follow_up_days.filter(|d| *d > 0)?;
    let last = cell_last_day(v, labels);
    (last + chrono::Duration::days(days as i64) > data_end).then_some(days)
}

/// The breakdowns a suggestion may drop, in the order they are suggested.
const DROP_ORDER: [Breakdown; 10] = [
    Breakdown::Kommun,
    Breakdown::Month,
    Breakdown::Quarter,
    Breakdown::AgeBand,
    Breakdown::Education,
    Breakdown::IncomeQuintile,
    Breakdown::BirthCountry,
    Breakdown::CareType,
    Breakdown::Sex,
    Breakdown::Year,
];

/// A concrete, checked way to ask so that a withheld cell can be released: dropping one of
/// its breakdowns, offered only when the coarser cell (the margin over that breakdown,
/// decided by the same rules) is released. When no coarser cell of the question is
/// released, it says so instead of promising.
pub fn suggestion(v: &ValidatedQuery, labels: &[String], released: impl Fn(&[String]) -> bool) -> String {
    for b in DROP_ORDER {
        let Some(i) = v.breakdowns.iter().position(|x| *x == b) else { continue };
        if labels[i] == TOTAL {
            continue;
        }
        let mut coarser = labels.to_vec();
        coarser[i] = TOTAL.to_string();
        if released(&coarser) {
            return match b {
                Breakdown::Kommun => "use the region instead of kommun (drop the kommun breakdown): that cell is released".into(),
                Breakdown::Month | Breakdown::Quarter | Breakdown::Year => {
                    format!("ask the whole period {} instead of by {} (drop the {} breakdown): that cell is released", v.period, b.name(), b.name())
                }
                Breakdown::AgeBand => "merge the age bands (drop age_band): that cell is released".into(),
                other => format!("drop the {} breakdown: that cell is released", other.name()),
            };
        }
    }
    if labels.iter().all(|l| l == TOTAL) {
        return format!("too few even without breakdowns in {}: a longer period, or several regions pooled, may release it (not checked)", v.period);
    }
    "no coarser cell of this question is released either: ask a longer period or several regions pooled (not checked)".into()
}

/// The cells a question releases, from its decided cells (in any order).
pub fn release(v: &ValidatedQuery, cells: &[QuestionCell], s: &Settings<'_>) -> Result<Released, DisclosureError> {
    let kind = v.recipe.kind;
    let mut order: Vec<&QuestionCell> = cells.iter().collect();
    order.sort_by(|a, b| (&a.raw.region, &a.raw.labels, &a.raw.category).cmp(&(&b.raw.region, &b.raw.labels, &b.raw.category)));
    let index: HashMap<(&str, &[String], &Option<String>), &QuestionCell> =
        order.iter().map(|c| ((c.raw.region.as_str(), c.raw.labels.as_slice(), &c.raw.category), *c)).collect();
    let mut out = Released::default();
    for c in order {
        let raw = &c.raw;
        if raw.labels.len() != v.breakdowns.len() {
            return Err(DisclosureError(format!("cell {:?} does not match the breakdowns", raw.labels)));
        }
        if kind == norrsken_common::catalog::Kind::Proportion && raw.numerator > raw.units {
            return Err(DisclosureError(format!("cell {:?}: numerator above denominator", raw.labels)));
        }
        let margin = raw.labels.iter().any(|l| l == TOTAL);
        let shown = !margin || v.options.totals;
        let withheld = c.applied.withheld;
        // An outcome window past the data's last date: withheld unless the policy releases
        // such cells flagged.
        let incomplete = incomplete_followup(v, &raw.labels, s.data_end);
        let dropped = incomplete.is_some() && !withheld && !s.policy.release_incomplete_followup;
        let m = if c.floor.withheld {
            Some(Mark::Target)
        } else if withheld || dropped {
            Some(Mark::Withheld)
        } else if shown {
            Some(Mark::Released)
        } else {
            None
        };
        if let Some(m) = m {
            out.ledger.push(LedgerCell { region: raw.region.clone(), labels: raw.labels.clone(), category: raw.category.clone(), m });
        }
        if !shown {
            continue;
        }
        if let (Some(days), true) = (incomplete, dropped) {
            let last_index = s.data_end - chrono::Duration::days(days as i64);
            out.cells.push(ReleasedCell::withheld(
                &raw.region,
                &raw.labels,
                raw.category.clone(),
                vec![Reason::IncompleteFollowup],
                Some(format!(
                    "the outcome is followed for {days} days and the data end on {}: ask a period that ends by {} (or wait for newer data)",
                    s.data_end, last_index
                )),
            ));
            continue;
        }
        if withheld {
            let mut why = c.applied.reasons.clone();
            if why.is_empty() {
                why.insert(Reason::Secondary);
            }
            if incomplete.is_some() {
                why.insert(Reason::IncompleteFollowup);
            }
            let released = |coarser: &[String]| {
                index
                    .get(&(raw.region.as_str(), coarser, &raw.category))
                    .is_some_and(|x| !x.applied.withheld && incomplete_followup(v, coarser, s.data_end).is_none())
            };
            out.cells.push(ReleasedCell::withheld(&raw.region, &raw.labels, raw.category.clone(), why.into_iter().collect(), Some(suggestion(v, &raw.labels, released))));
            continue;
        }
        let mut cell = release_cell(kind, raw, s)?;
        if incomplete.is_some() {
            cell.reasons.push(Reason::IncompleteFollowup);
        }
        out.cells.push(cell);
    }
    if v.options.dry_run {
        for c in &mut out.cells {
            c.numerator = None;
            c.denominator = None;
            c.value_sum = None;
            c.value_sd = None;
        }
    }
    Ok(out)
}
