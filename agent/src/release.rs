//! Turns the engine's raw cells into the cells an agent releases.

use norrsken_common::answer::{AnswerMeta, CellStatus, RegionAnswer, ReleasedCell};
use norrsken_common::catalog::Kind;
use norrsken_common::query::ValidatedQuery;

use crate::engine::{CellTable, RawCell};

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

/// Releases every cell exactly (no disclosure control).
pub fn release(v: &ValidatedQuery, table: &CellTable, meta: AnswerMeta) -> RegionAnswer {
    let kind = v.recipe.kind;
    let cells = table
        .cells
        .iter()
        .map(|c| {
            let (numerator, denominator, value_sum, value_sum_sq) = components(kind, c);
            ReleasedCell {
                region: c.region.clone(),
                labels: c.labels.clone(),
                category: c.category.clone(),
                numerator,
                denominator,
                value_sum,
                value_sum_sq,
                status: CellStatus::Released,
                reasons: Vec::new(),
                suggestion: None,
            }
        })
        .collect();
    RegionAnswer { meta, breakdowns: table.breakdowns.clone(), distribution: v.recipe.is_distribution(), cells }
}
