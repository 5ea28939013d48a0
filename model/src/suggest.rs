//! Suggestions for a withheld cell, in one place for the agent (a region's cells) and the
//! coordinator (pooled rows and home-region rows that add several agents' parts): a
//! suggestion names a coarser cell, the cell with one breakdown dropped, only when that
//! cell is released; otherwise it says what may help and that it is not checked.

use crate::breakdown::Breakdown;
use crate::period::Period;

/// The breakdowns a suggestion may drop, in the order they are suggested.
pub const DROP_ORDER: [Breakdown; 10] = [
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

/// The first breakdown in [`DROP_ORDER`] that `released` accepts.
pub fn first_droppable(released: impl Fn(Breakdown) -> bool) -> Option<Breakdown> {
    DROP_ORDER.into_iter().find(|b| released(*b))
}

/// "Drop breakdown `b`: that cell is released" (checked by the caller).
pub fn drop_breakdown(b: Breakdown, period: &Period) -> String {
    match b {
        Breakdown::Kommun => "use the region instead of kommun (drop the kommun breakdown): that cell is released".into(),
        Breakdown::Month | Breakdown::Quarter | Breakdown::Year => {
            format!("ask the whole period {period} instead of by {} (drop the {} breakdown): that cell is released", b.name(), b.name())
        }
        Breakdown::AgeBand => "merge the age bands (drop age_band): that cell is released".into(),
        other => format!("drop the {} breakdown: that cell is released", other.name()),
    }
}

/// No coarser cell of the question is released (or none is known to be).
pub fn nothing_coarser(whole: bool, period: &Period) -> String {
    if whole {
        format!("too few even without breakdowns in {period}: a longer period, or several regions pooled, may release it (not checked)")
    } else {
        "no coarser cell of this question is released either: ask a longer period or several regions pooled (not checked)".into()
    }
}

/// A row that adds several regions' parts, none of whose coarser cells is released in
/// every region.
pub fn pooled_nothing_coarser() -> String {
    "the pooled value needs every region's part of the cell, and no coarser cell is released in every region: ask a longer period or fewer breakdowns (not checked)".into()
}
