//! Turns the engine's raw cells into the cells an agent releases.

use norrsken_common::catalog::Kind;

use crate::engine::RawCell;

/// The released components of a raw cell for its kind: (numerator, denominator, sum, sum of
/// squares). See `norrsken_common::answer::ReleasedCell`.
pub fn components(kind: Kind, c: &RawCell) -> (Option<i64>, Option<i64>, Option<f64>, Option<f64>) {
    match kind {
        Kind::Proportion => (Some(c.numerator), Some(c.units), None, None),
        Kind::Rate => (Some(c.units), Some(c.population), None, None),
        Kind::Count => (Some(c.units), None, None, None),
        Kind::Mean | Kind::CostSum => (None, Some(c.units), Some(c.value_sum), Some(c.value_sum_sq)),
    }
}

