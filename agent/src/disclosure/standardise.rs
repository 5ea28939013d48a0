//! Direct age standardisation inside the agent (see docs/analysis.md).
//!
//! Why here: at the coordinator, from released age bands, a standardised value fails
//! wherever a band is withheld, which for small regions and rare outcomes is most of the
//! time. In the agent every band is at hand; but a weighted sum of exact counts with
//! weights a requester could choose (several standards, standards over filtered
//! populations) could be solved for single bands. So:
//!
//! - only the fixed, versioned standards of `catalog/standards/` can be asked for (no
//!   weights travel in a question), and the age bands may not be filtered;
//! - the value is computed from the bands' counts *as the region would release them*: each
//!   band perturbed by the cell key method with that band's own key (so two standards, or a
//!   standard and the released bands, combine the same perturbed values, never the exact
//!   ones); a region that releases the kind exactly does not standardise;
//! - an age total carries its value only when the total itself is released, it holds at
//!   least `standardisation.min_events` events (default 10) and, when the policy says
//!   `stratum_min_cell`, no band has 1..k-1 events;
//! - value, variance and the largest weight per person are rounded to 4, 3 and 3
//!   significant digits.

use std::collections::HashMap;

use norrsken_common::answer::{Reason, ReleasedCell};
use norrsken_common::breakdown::Breakdown;
use norrsken_common::catalog::Kind;
use norrsken_common::query::ValidatedQuery;
use norrsken_common::standard::{round_significant, standard, standardise, Standardised};

use super::{released_components, DisclosureError, Settings};
use crate::engine::cells::{CellTable, RawCell, TOTAL};

/// Why a standardised question is not answered by this region's policy (checked before
/// anything is evaluated).
pub fn refusal(v: &ValidatedQuery, s: &Settings<'_>) -> Option<String> {
    v.options.standardise.as_ref()?;
    (s.policy.exact(v.recipe.kind)).then(|| {
        format!(
            "this region releases {}s without the cell key method, so it does not age-standardise them: a weighted sum of exact counts could be solved for single age bands",
            v.recipe.kind.name()
        )
    })
}

/// Puts the standardised value on every released age total of `cells`, computed from the
/// raw `table`'s age bands as the region would release them.
pub fn attach(table: &CellTable, v: &ValidatedQuery, s: &Settings<'_>, cells: &mut [ReleasedCell]) -> Result<(), DisclosureError> {
    let Some(id) = &v.options.standardise else { return Ok(()) };
    let standard = standard(id).ok_or_else(|| DisclosureError(format!("unknown standard population '{id}'")))?;
    let kind = v.recipe.kind;
    if !matches!(kind, Kind::Rate | Kind::Proportion) {
        return Err(DisclosureError(format!("a {} cannot be standardised", kind.name())));
    }
    let age = v.breakdowns.iter().position(|b| *b == Breakdown::AgeBand).ok_or_else(|| DisclosureError("a standardised question without age bands".into()))?;
    let bands = v.recipe.age_bands.labels();
    let weights = standard.weights(&v.recipe.age_bands);
    let raw: HashMap<(&str, &[String]), &RawCell> = table.cells.iter().filter(|c| c.category.is_none()).map(|c| ((c.region.as_str(), c.labels.as_slice()), c)).collect();
    let k = s.admission.k as i64;
    let min_events = (s.policy.standardisation.min_events as f64).max(1.0);
    for cell in cells.iter_mut() {
        if cell.labels.get(age).map(String::as_str) != Some(TOTAL) || cell.numerator.is_none() {
            continue;
        }
        let mut strata = Vec::with_capacity(bands.len());
        let mut small_band = false;
        for band in &bands {
            let mut labels = cell.labels.clone();
            labels[age] = band.clone();
            let (x, n) = match raw.get(&(cell.region.as_str(), labels.as_slice())) {
                Some(r) => {
                    let true_events = if kind == Kind::Proportion { r.numerator } else { r.units };
                    small_band |= true_events >= 1 && true_events < k;
                    let (num, den, _, _, _) = released_components(kind, r, s);
                    (num.unwrap_or(0) as f64, den.unwrap_or(0) as f64)
                }
                // A band without any unit: no events, no persons.
                None => (0.0, 0.0),
            };
            strata.push((x, n));
        }
        let value = standardise(&strata, &weights);
        let enough = value.is_some_and(|d| d.events >= min_events) && !(small_band && s.policy.standardisation.stratum_min_cell);
        match value.filter(|_| enough) {
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
