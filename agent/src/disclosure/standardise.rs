//! Direct age standardisation inside the agent (see docs/analysis.md).
//!
//! A standardised value is computed **only from released cells**: the age bands of the
//! answer as released (perturbed by the cell key method). An age total carries its value
//! only when the total itself is released, every one of its age bands is released (none
//! withheld for any reason: too few, complement, secondary, implied, dominance, follow-up)
//! and it holds at least `standardisation.min_events` events (default 10). So a
//! standardised value, its variance and its largest weight per person tell nothing the
//! released bands do not: solving them for a band gives back that band's released value,
//! and a withheld band is never inside one. Only the fixed, versioned standards of
//! `catalog/standards/` can be asked for, and the age bands may not be filtered.
//! Value, variance and the largest weight per person are rounded to 4, 3 and 3
//! significant digits.

use std::collections::HashMap;

use norrsken_model::answer::{CellStatus, Reason, ReleasedCell};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Kind;
use norrsken_model::query::ValidatedQuery;
use norrsken_model::standard::{round_significant, standard, standardise, Standardised};

use super::{DisclosureError, Settings};
use crate::engine::cells::TOTAL;

/// Puts the standardised value on every released age total of `cells` (the answer's
/// released cells), computed from its released age bands.
pub fn attach(v: &ValidatedQuery, s: &Settings<'_>, cells: &mut [ReleasedCell]) -> Result<(), DisclosureError> {
    let Some(id) = &v.options.standardise else { return Ok(()) };
    let standard = standard(id).ok_or_else(|| DisclosureError(format!("unknown standard population '{id}'")))?;
    let kind = v.recipe.kind;
    if !matches!(kind, Kind::Rate | Kind::Proportion) {
        return Err(DisclosureError(format!("a {} cannot be standardised", kind.name())));
    }
    let age = v.breakdowns.iter().position(|b| *b == Breakdown::AgeBand).ok_or_else(|| DisclosureError("a standardised question without age bands".into()))?;
    let bands = v.recipe.age_bands.labels();
    let weights = standard.weights(&v.recipe.age_bands);
    // Every band as released: its values, or None when withheld.
    let shown: HashMap<(String, Vec<String>), Option<(f64, f64)>> = cells
        .iter()
        .filter(|c| c.category.is_none())
        .map(|c| {
            let values = match (c.status, c.numerator, c.denominator) {
                (CellStatus::Suppressed, _, _) => None,
                (_, Some(n), Some(d)) => Some((n as f64, d as f64)),
                _ => None,
            };
            ((c.region.clone(), c.labels.clone()), values)
        })
        .collect();
    let min_events = (s.policy.standardisation.min_events as f64).max(1.0);
    for cell in cells.iter_mut() {
        if cell.labels.get(age).map(String::as_str) != Some(TOTAL) || cell.numerator.is_none() || cell.status == CellStatus::Suppressed {
            continue;
        }
        let mut strata = Vec::with_capacity(bands.len());
        let mut all_released = true;
        for band in &bands {
            let mut labels = cell.labels.clone();
            labels[age] = band.clone();
            match shown.get(&(cell.region.clone(), labels)) {
                Some(Some(values)) => strata.push(*values),
                // Withheld, for whatever reason.
                Some(None) => all_released = false,
                // A band without any unit: no events, no persons.
                None => strata.push((0.0, 0.0)),
            }
        }
        let value = if all_released { standardise(&strata, &weights) } else { None };
        match value.filter(|d| d.events >= min_events) {
            Some(d) => {
                cell.standardised = Some(Standardised {
                    value: round_significant(d.value, 4),
                    var: round_significant(d.var, 3),
                    wmax: round_significant(d.wmax, 3),
                    events: d.events,
                })
            }
            None => cell.reasons.push(Reason::NotStandardised),
        }
    }
    Ok(())
}
