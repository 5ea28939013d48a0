//! Stage 5 of the disclosure pipeline: perturbation. Every count, unit count and sum a
//! released cell carries is perturbed by the cell key method ([`super::ptable`] for counts,
//! [`super::magnitude`] for sums and spreads, keys from [`super::record_key`]) unless the
//! policy releases the kind exactly; then optional rounding. The sum of squares never
//! leaves: a perturbed standard deviation does.

use norrsken_model::answer::{CellStatus, Reason, ReleasedCell};
use norrsken_model::catalog::Kind;

use super::magnitude;
use super::record_key::KeyStream;
use super::{DisclosureError, Settings};
use crate::engine::cells::RawCell;

/// Which cell key a component is perturbed with: the key of exactly the units it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOf {
    Units,
    Numerator,
    Population,
    Persons,
    /// The units' keys in the sum's and the spread's streams.
    Sum,
    Spread,
}

/// The keys a cell's (numerator, denominator, sum, spread) are perturbed with, given the key
/// of each set of units: an agent's own cell keys, or a pooled total's (the sum of the
/// agents' key parts, docs/secure-aggregation.md).
pub fn cell_keys(kind: Kind, key: impl Fn(KeyOf) -> f64) -> [f64; 4] {
    let (num, den) = match kind {
        Kind::Proportion => (KeyOf::Numerator, KeyOf::Units),
        Kind::Rate => (KeyOf::Units, KeyOf::Population),
        // Contacts and patients, each with the key of what it counts.
        Kind::CostSum => (KeyOf::Units, KeyOf::Persons),
        _ => (KeyOf::Units, KeyOf::Units),
    };
    [key(num), key(den), key(KeyOf::Sum), key(KeyOf::Spread)]
}

/// A cell's key of one set of units, as an integer in [0, 2^32) (the sum of its units'
/// record keys modulo 2^32).
pub fn key_part(c: &RawCell, keyer: &super::record_key::RecordKeyer, of: KeyOf) -> u32 {
    match of {
        KeyOf::Units => keyer.cell_key_int_in(KeyStream::Count, c.units_mix, c.units),
        KeyOf::Numerator => keyer.cell_key_int_in(KeyStream::Count, c.numerator_mix, c.numerator),
        KeyOf::Population => keyer.cell_key_int_in(KeyStream::Count, c.population_mix, c.population),
        KeyOf::Persons => keyer.cell_key_int_in(KeyStream::Count, c.persons_mix, c.persons),
        KeyOf::Sum => keyer.cell_key_int_in(KeyStream::Sum, c.units_mix, c.units),
        KeyOf::Spread => keyer.cell_key_int_in(KeyStream::Spread, c.units_mix, c.units),
    }
}

/// A key part as a fraction of 2^32, the form the perturbation tables read.
pub fn key_fraction(part: u32) -> f64 {
    part as f64 / 4_294_967_296.0
}

/// A cell's components as the region would release them: every count and sum perturbed by
/// the cell key method (unless the policy releases the kind exactly), the spread in place of
/// the sum of squares, optional rounding; whether anything was perturbed or rounded. Used
/// for released cells and for the age bands behind a standardised value.
pub fn released_components(kind: Kind, c: &RawCell, s: &Settings<'_>) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>, Vec<Reason>) {
    let keys = s.keyer.map(|keyer| cell_keys(kind, |of| key_fraction(key_part(c, keyer, of))));
    perturb_components(kind, c, s.policy, s.ptable, keys)
}

/// [`released_components`] with the cell's keys given (`None` when perturbation is off).
pub fn perturb_components(kind: Kind, c: &RawCell, policy: &super::policy::Policy, ptable: Option<&super::ptable::PTable>, keys: Option<[f64; 4]>) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>, Vec<Reason>) {
    let (mut num, mut den, mut sum, mut sd) = components(kind, c);
    let mut reasons_out = Vec::new();
    let exact = policy.exact(kind);
    if let (Some(t), Some([num_key, den_key, sum_key, spread_key]), false) = (ptable, keys, exact) {
        num = num.map(|n| t.perturb(n, num_key));
        den = den.map(|d| t.perturb(d, den_key));
        let m = policy.perturbation.magnitude;
        sum = sum.map(|x| magnitude::perturb_sum(x, c.top1, m, sum_key));
        sd = sd.map(|x| magnitude::perturb_spread(x, m, spread_key));
        reasons_out.push(Reason::Perturbed);
    }
    let base = policy.rounding_base as i64;
    if base > 1 && matches!(kind, Kind::Proportion | Kind::Rate | Kind::Count) {
        let round = |x: i64| ((x + base / 2) / base) * base;
        num = num.map(round);
        den = den.map(round);
        reasons_out.push(Reason::Rounded);
    }
    // A numerator never exceeds its denominator after perturbation.
    if kind == Kind::Proportion {
        if let (Some(n), Some(d)) = (num, den) {
            num = Some(n.min(d));
        }
    }
    (num, den, sum, sd, reasons_out)
}

/// The released form of a cell that passed (see [`released_components`]).
pub(crate) fn release_cell(kind: Kind, c: &RawCell, s: &Settings<'_>) -> Result<ReleasedCell, DisclosureError> {
    let (num, den, sum, sd, reasons_out) = released_components(kind, c, s);
    let status = if reasons_out.is_empty() { CellStatus::Released } else { CellStatus::Perturbed };
    let exact = s.policy.exact(kind);
    let js = s.policy.js() as i64;
    for x in [num, den].into_iter().flatten() {
        if s.ptable.is_some() && !exact && x >= 1 && x <= js {
            return Err(DisclosureError(format!("released value {x} lies in 1..{js}")));
        }
    }
    Ok(ReleasedCell {
        region: c.region.clone(),
        labels: c.labels.clone(),
        category: c.category.clone(),
        numerator: num,
        denominator: den,
        value_sum: sum,
        value_sd: sd,
        status,
        reasons: reasons_out,
        suggestion: None,
        standardised: None,
        released_without: Vec::new(),
    })
}

/// The components of a raw cell for its kind before perturbation: (numerator, denominator,
/// sum, standard deviation). See `norrsken_model::answer::ReleasedCell`. A cost sum is
/// released per patient: the contacts as numerator, the distinct patients as denominator,
/// the total cost, and the spread of the patients' costs.
pub fn components(kind: Kind, c: &RawCell) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>) {
    match kind {
        Kind::Proportion => (Some(c.numerator), Some(c.units), None, None),
        Kind::Rate => (Some(c.units), Some(c.population), None, None),
        Kind::Count => (Some(c.units), None, None, None),
        Kind::Mean => (None, Some(c.units), Some(c.value_sum), magnitude::standard_deviation(c.units, c.value_sum, c.value_sum_sq)),
        Kind::CostSum => (Some(c.units), Some(c.persons), Some(c.value_sum), magnitude::standard_deviation(c.persons, c.value_sum, c.person_sum_sq)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::Policy;
    use super::super::ptable::PTable;
    use super::super::record_key::RecordKeyer;
    use super::super::policy::Admission;
    use super::*;

    fn cell(units: i64, numerator: i64) -> RawCell {
        RawCell {
            units,
            persons: units,
            numerator,
            numerator_persons: numerator,
            units_mix: 1234 * units,
            numerator_mix: 777 * numerator,
            ..RawCell::empty("22", vec![], None)
        }
    }

    #[test]
    fn released_counts_carry_the_cell_keys_noise_and_never_exceed_their_denominator() {
        let policy = Policy::development(Some("unused".into()));
        let table = PTable::new(2, 1.0, 4);
        let keyer = RecordKeyer::new(&[7u8; 64]).unwrap();
        let s = Settings { policy: &policy, admission: Admission { floor: 5, k: 5 }, ptable: Some(&table), keyer: Some(&keyer), data_end: chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap() };
        let mut differ = 0;
        for n in 5..200 {
            let (num, den, _, _, reasons) = released_components(Kind::Proportion, &cell(n, n), &s);
            let (num, den) = (num.unwrap(), den.unwrap());
            assert!((num - n).abs() <= 2 && (den - n).abs() <= 2, "{n}: {num}/{den}");
            assert!(num <= den, "{n}: {num} > {den}");
            assert_eq!(reasons, vec![Reason::Perturbed]);
            differ += usize::from(den != n);
            // The same cell always gets the same noise.
            assert_eq!(released_components(Kind::Proportion, &cell(n, n), &s).1, Some(den));
        }
        assert!(differ > 50, "only {differ} of 195 denominators perturbed");
        // Released exactly when the policy says so.
        let mut exact = policy.clone();
        exact.perturbation.exact = vec![Kind::Proportion];
        let s = Settings { policy: &exact, ..s };
        assert_eq!(released_components(Kind::Proportion, &cell(40, 10), &s).0, Some(10));
    }
}
