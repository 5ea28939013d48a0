//! Suggestions for a withheld cell, in one place for the agent (a region's cells) and the
//! coordinator (pooled rows and home-region rows that add several agents' parts): a
//! suggestion names a coarser cell, the cell with one breakdown dropped, only when that
//! cell is released; otherwise it says what may help and that it is not checked.
//!
//! A suggestion travels as a short code (`drop|kommun|2021..2025`), never as a sentence:
//! every front end writes it in the reader's language from the one vocabulary
//! (`vocabulary::suggestion`).

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

/// What a withheld cell's reader may do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suggestion {
    /// Drop breakdown `b` (asked over `period`): that coarser cell is released (checked).
    Drop { breakdown: Breakdown, period: String },
    /// Too few even without breakdowns over `period` (not checked what helps).
    WholeTooFew { period: String },
    /// No coarser cell of the question is released either (not checked what helps).
    NothingCoarser,
    /// A row that adds several regions' parts, none of whose coarser cells is released in
    /// every region.
    PooledNothingCoarser,
    /// The outcome is followed for `days` days and the data end on `data_end`: index events
    /// after `through` are left out, more than `percent` % of the cell's time.
    FollowupIncomplete { days: u32, data_end: String, through: String, percent: u32 },
    /// A text that is not a suggestion code (a region's own message), shown as it is.
    Text(String),
}

impl Suggestion {
    /// The code as it travels.
    pub fn code(&self) -> String {
        match self {
            Suggestion::Drop { breakdown, period } => format!("drop|{}|{period}", breakdown.name()),
            Suggestion::WholeTooFew { period } => format!("whole_too_few|{period}"),
            Suggestion::NothingCoarser => "nothing_coarser".into(),
            Suggestion::PooledNothingCoarser => "pooled_nothing_coarser".into(),
            Suggestion::FollowupIncomplete { days, data_end, through, percent } => format!("followup|{days}|{data_end}|{through}|{percent}"),
            Suggestion::Text(t) => t.clone(),
        }
    }

    /// Reads a code; anything else is a [`Suggestion::Text`].
    pub fn parse(code: &str) -> Suggestion {
        let parts: Vec<&str> = code.split('|').collect();
        let parsed = match parts.as_slice() {
            ["drop", b, period] => Breakdown::parse(b).map(|breakdown| Suggestion::Drop { breakdown, period: period.to_string() }),
            ["whole_too_few", period] => Some(Suggestion::WholeTooFew { period: period.to_string() }),
            ["nothing_coarser"] => Some(Suggestion::NothingCoarser),
            ["pooled_nothing_coarser"] => Some(Suggestion::PooledNothingCoarser),
            ["followup", days, end, through, pct] => match (days.parse(), pct.parse()) {
                (Ok(days), Ok(percent)) => Some(Suggestion::FollowupIncomplete { days, data_end: end.to_string(), through: through.to_string(), percent }),
                _ => None,
            },
            _ => None,
        };
        parsed.unwrap_or_else(|| Suggestion::Text(code.to_string()))
    }

    /// Whether the suggestion names a coarser cell that is released (checked by whoever
    /// made it).
    pub fn names_released_cell(&self) -> bool {
        matches!(self, Suggestion::Drop { .. })
    }

    /// The breakdown whose dropping is suggested.
    pub fn dropped(&self) -> Option<Breakdown> {
        match self {
            Suggestion::Drop { breakdown, .. } => Some(*breakdown),
            _ => None,
        }
    }
}

/// The first breakdown in [`DROP_ORDER`] that `released` accepts.
pub fn first_droppable(released: impl Fn(Breakdown) -> bool) -> Option<Breakdown> {
    DROP_ORDER.into_iter().find(|b| released(*b))
}

/// "Drop breakdown `b`: that cell is released" (checked by the caller), as its code.
pub fn drop_breakdown(b: Breakdown, period: &Period) -> String {
    Suggestion::Drop { breakdown: b, period: period.to_string() }.code()
}

/// No coarser cell of the question is released (or none is known to be), as its code.
pub fn nothing_coarser(whole: bool, period: &Period) -> String {
    if whole {
        Suggestion::WholeTooFew { period: period.to_string() }.code()
    } else {
        Suggestion::NothingCoarser.code()
    }
}

/// A row that adds several regions' parts, none of whose coarser cells is released in
/// every region, as its code.
pub fn pooled_nothing_coarser() -> String {
    Suggestion::PooledNothingCoarser.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_as_written() {
        let all = [
            Suggestion::Drop { breakdown: Breakdown::Kommun, period: "2021..2025".into() },
            Suggestion::WholeTooFew { period: "2024".into() },
            Suggestion::NothingCoarser,
            Suggestion::PooledNothingCoarser,
            Suggestion::FollowupIncomplete { days: 365, data_end: "2025-12-31".into(), through: "2024-12-31".into(), percent: 10 },
            Suggestion::Text("Norrbotten did not answer".into()),
        ];
        for s in all {
            assert_eq!(Suggestion::parse(&s.code()), s);
        }
        assert_eq!(Suggestion::parse("drop|nonsense|2024"), Suggestion::Text("drop|nonsense|2024".into()));
    }
}
