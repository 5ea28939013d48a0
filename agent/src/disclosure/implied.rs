//! Stage 3 of the disclosure pipeline: implied cells.
//!
//! When a cell lies inside a larger allowed cell (any of its margins over the breakdowns,
//! the quarter and year around its month, the whole data period around a year, a longer
//! period, the group of values around one value), releasing both gives away their
//! difference: the persons in the larger cell who are not in the smaller. That difference is
//! a cell too, although nobody asked for it, so the primary rules apply to it: when it holds
//! 1..k-1 persons (or units, numerator persons, complement, inhabitants) and the larger cell
//! is released, the smaller cell is withheld (reason `implied`). Every larger cell is
//! checked, not only the next one up, and the larger cell is always decided first (see
//! [`super::lattice`]), so the choice does not depend on which of the two anyone asked.
//!
//! When a larger cell is withheld and the smaller holds exactly the same units (its other
//! parts are empty, which an answer shows), the smaller is the same cell and would show the
//! larger's values, perturbed alike; it is withheld too (reason `secondary`).
//!
//! For person-based recipes the difference of two cells is not a sum of other cells (a
//! person counts once per cell), so this rule is what protects it; for event-based recipes
//! it repeats what the lines of [`super::secondary`] already protect.

use norrsken_model::catalog::Kind;

use super::primary::small;
use crate::engine::cells::RawCell;

/// The components whose difference is a count of persons or units, by kind.
fn components(kind: Kind, c: &RawCell) -> Vec<i64> {
    match kind {
        Kind::Proportion => vec![c.persons, c.units, c.numerator_persons, c.numerator, c.units - c.numerator],
        Kind::Rate => vec![c.persons, c.units, c.population],
        Kind::Count | Kind::Mean | Kind::CostSum => vec![c.persons, c.units],
    }
}

/// Whether the implied cell `larger - smaller` is small (1..k-1) in any component.
pub fn implied_small(kind: Kind, larger: &RawCell, smaller: &RawCell, k: u32) -> bool {
    let k = k as i64;
    components(kind, larger).iter().zip(components(kind, smaller)).any(|(l, s)| small(l - s, k))
}

/// Whether `smaller` holds exactly the units (and persons, inhabitants) of `larger`: the
/// same cell under another name.
pub fn same_cell(kind: Kind, larger: &RawCell, smaller: &RawCell) -> bool {
    let population = kind != Kind::Rate || larger.population == smaller.population;
    larger.units == smaller.units && larger.persons == smaller.persons && population && larger.units + larger.population > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(persons: i64, numerator: i64) -> RawCell {
        RawCell { units: persons, persons, numerator, numerator_persons: numerator, ..RawCell::empty("24", vec![], None) }
    }

    #[test]
    fn a_small_difference_in_any_component_is_implied_small() {
        // 100 persons in the year, 97 in its first three quarters: the fourth adds 3.
        assert!(implied_small(Kind::Proportion, &cell(100, 40), &cell(97, 40), 5));
        // Same persons, but 2 more in the numerator.
        assert!(implied_small(Kind::Proportion, &cell(100, 42), &cell(100, 40), 5));
        // The complement differs by 2 (persons differ by 10, numerators by 8).
        assert!(implied_small(Kind::Proportion, &cell(100, 48), &cell(90, 40), 5));
        // Large differences, or none at all, are not.
        assert!(!implied_small(Kind::Proportion, &cell(100, 50), &cell(80, 40), 5));
        assert!(!implied_small(Kind::Count, &cell(100, 0), &cell(100, 0), 5));
        // A rate's inhabitants count.
        let (mut a, mut b) = (cell(50, 0), cell(40, 0));
        a.population = 1000;
        b.population = 997;
        assert!(implied_small(Kind::Rate, &a, &b, 5));
    }

    #[test]
    fn the_same_units_are_the_same_cell() {
        assert!(same_cell(Kind::Count, &cell(30, 0), &cell(30, 0)));
        assert!(!same_cell(Kind::Count, &cell(30, 0), &cell(20, 0)));
        assert!(same_cell(Kind::Proportion, &cell(30, 9), &cell(30, 7)), "the same persons, whatever the numerator");
        assert!(!same_cell(Kind::Count, &cell(0, 0), &cell(0, 0)), "two empty cells show nothing");
    }
}
