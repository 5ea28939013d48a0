//! Stage 6 of the disclosure pipeline: the release. The question's cells, decided in the
//! lattice ([`super::lattice`], [`super::derived`]), become the cells sent: released cells
//! perturbed ([`super::perturb`]), withheld cells with their reasons and a checked
//! suggestion, cells whose time is mostly past the last index date with complete
//! follow-up withheld (`incomplete_followup`; the engine leaves such index events out), margins
//! only when asked, no values at all in a dry run. What the release ledger records of the
//! answer is built here too.

use std::collections::HashMap;

use norrsken_model::answer::{Reason, ReleasedCell};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::query::ValidatedQuery;
use norrsken_model::suggest::{drop_breakdown, nothing_coarser, Suggestion, DROP_ORDER};

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

/// A cell's time span: its time label's, or the question's period.
fn cell_span(v: &ValidatedQuery, labels: &[String]) -> norrsken_model::period::Period {
    v.breakdowns
        .iter()
        .zip(labels)
        .find(|(b, l)| b.time_grain().is_some() && l.as_str() != TOTAL)
        .and_then(|(_, l)| norrsken_model::period::Period::parse(l).ok())
        .unwrap_or(v.period)
}

/// Follow-up per case: index events after the last date with complete follow-up are left
/// out of every cell (the engine censors them). A cell is withheld `incomplete_followup`
/// only when the days left out are more than the policy's share of its time span, so that
/// what remains no longer stands for the span (e.g. December of the last year for a 30-day
/// outcome); returns the follow-up days and that date then.
pub fn incomplete_followup(v: &ValidatedQuery, labels: &[String], max_share: f64) -> Option<(u32, chrono::NaiveDate)> {
    let through = v.followup_through()?;
    let days = v.recipe.follow_up_days?;
    (cell_span(v, labels).share_after(through) > max_share).then_some((days, through))
}

/// The breakdowns of the question whose dropping gives a coarser cell that is released
/// (decided by the same rules), in the order suggestions try them.
pub fn released_without(v: &ValidatedQuery, labels: &[String], released: impl Fn(&[String]) -> bool) -> Vec<Breakdown> {
    DROP_ORDER
        .into_iter()
        .filter(|b| {
            let Some(i) = v.breakdowns.iter().position(|x| x == b) else { return false };
            if labels[i] == TOTAL {
                return false;
            }
            let mut coarser = labels.to_vec();
            coarser[i] = TOTAL.to_string();
            released(&coarser)
        })
        .collect()
}

/// A concrete, checked way to ask so that a withheld cell can be released: dropping one of
/// its breakdowns, offered only when the coarser cell (the margin over that breakdown,
/// decided by the same rules) is released. When no coarser cell of the question is
/// released, it says so instead of promising.
pub fn suggestion(v: &ValidatedQuery, labels: &[String], without: &[Breakdown]) -> String {
    match without.first() {
        Some(b) => drop_breakdown(*b, &v.period),
        None => nothing_coarser(labels.iter().all(|l| l == TOTAL), &v.period),
    }
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
        if kind == norrsken_model::catalog::Kind::Proportion && raw.numerator > raw.units {
            return Err(DisclosureError(format!("cell {:?}: numerator above denominator", raw.labels)));
        }
        let margin = raw.labels.iter().any(|l| l == TOTAL);
        // Which coarser cells are released: for the suggestion, and for the coordinator's
        // suggestions on rows that add several regions' parts.
        let released = |coarser: &[String]| {
            index.get(&(raw.region.as_str(), coarser, &raw.category)).is_some_and(|x| {
                !x.applied.withheld && (s.policy.release_incomplete_followup || incomplete_followup(v, coarser, s.policy.followup_max_censored_share).is_none())
            })
        };
        let shown = !margin || v.options.totals;
        let withheld = c.applied.withheld;
        // An outcome window past the data's last date: withheld unless the policy releases
        // such cells flagged.
        let incomplete = incomplete_followup(v, &raw.labels, s.policy.followup_max_censored_share);
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
        let without = released_without(v, &raw.labels, released);
        if let (Some((days, through)), true) = (incomplete, dropped) {
            let mut cell = ReleasedCell::withheld(
                &raw.region,
                &raw.labels,
                raw.category.clone(),
                vec![Reason::IncompleteFollowup],
                Some(
                    Suggestion::FollowupIncomplete {
                        days,
                        data_end: s.data_end.to_string(),
                        through: through.to_string(),
                        percent: (s.policy.followup_max_censored_share * 100.0).round() as u32,
                    }
                    .code(),
                ),
            );
            cell.released_without = without;
            out.cells.push(cell);
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
            let mut cell = ReleasedCell::withheld(&raw.region, &raw.labels, raw.category.clone(), why.into_iter().collect(), Some(suggestion(v, &raw.labels, &without)));
            cell.released_without = without;
            out.cells.push(cell);
            continue;
        }
        let mut cell = release_cell(kind, raw, s)?;
        if incomplete.is_some() {
            cell.reasons.push(Reason::IncompleteFollowup);
        }
        cell.released_without = without;
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
