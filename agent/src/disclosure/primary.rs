//! Stage 2 of the disclosure pipeline: the primary rules, applied to one cell on its own.
//!
//! A cell is withheld when it holds 1..k-1 persons (in its denominator or numerator, or for
//! rates 1..k-1 inhabitants), when its complement (denominator minus numerator) holds 1..k-1
//! units, when one or two persons dominate a cost sum, and (if the policy says so) when its
//! numerator is a true zero. The same rules apply to the *implied* cells between a cell and
//! a larger cell it lies in ([`super::implied`]).

use std::collections::BTreeSet;

use norrsken_model::answer::Reason;
use norrsken_model::catalog::Kind;

use super::policy::{DominanceRule, Policy};
use crate::engine::cells::RawCell;

/// Whether `n` is a small count at minimum cell size `k`: 1..k-1 (zero is not small).
pub fn small(n: i64, k: i64) -> bool {
    n >= 1 && n < k
}

/// The primary reasons for withholding one raw cell at minimum cell size `k` (empty when it
/// passes).
pub fn primary(kind: Kind, c: &RawCell, policy: &Policy, k: u32) -> BTreeSet<Reason> {
    let k = k as i64;
    let mut r = BTreeSet::new();
    match kind {
        Kind::Proportion => {
            if small(c.persons, k) || small(c.numerator_persons, k) {
                r.insert(Reason::BelowMinCell);
            }
            if small(c.units - c.numerator, k) {
                r.insert(Reason::Complement);
            }
            if c.numerator == 0 && !policy.release_zeros {
                r.insert(Reason::Zero);
            }
        }
        Kind::Rate => {
            if small(c.persons, k) || small(c.population, k) {
                r.insert(Reason::BelowMinCell);
            }
            if c.units == 0 && !policy.release_zeros {
                r.insert(Reason::Zero);
            }
        }
        Kind::Count | Kind::Mean => {
            if small(c.persons, k) {
                r.insert(Reason::BelowMinCell);
            }
        }
        Kind::CostSum => {
            if small(c.persons, k) {
                r.insert(Reason::BelowMinCell);
            }
            if dominated(c, policy) {
                r.insert(Reason::Dominance);
            }
        }
    }
    r
}

/// Whether one or two persons dominate a cell's sum under the policy's rule.
fn dominated(c: &RawCell, policy: &Policy) -> bool {
    if c.value_sum <= 0.0 {
        return false;
    }
    let d = &policy.dominance;
    match d.rule {
        DominanceRule::Nk => {
            let top = if d.n >= 2 { c.top1 + c.top2 } else { c.top1 };
            top > d.k / 100.0 * c.value_sum
        }
        DominanceRule::PPercent => c.value_sum - c.top1 - c.top2 < d.p / 100.0 * c.top1,
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::Dominance;
    use super::*;

    pub(crate) fn raw(persons: i64) -> RawCell {
        RawCell { units: persons, persons, ..RawCell::empty("23", vec![], None) }
    }

    fn cost_cell(persons: i64, sum: f64, top1: f64, top2: f64) -> RawCell {
        RawCell { value_sum: sum, top1, top2, ..raw(persons) }
    }

    #[test]
    fn both_dominance_rules() {
        let mut policy = Policy::development(None);
        let s = |p: &Policy| primary(Kind::CostSum, &cost_cell(10, 1000.0, 700.0, 200.0), p, 5);
        // (2, 85): 900 of 1000 is dominated.
        assert!(s(&policy).contains(&Reason::Dominance));
        policy.dominance = Dominance { rule: DominanceRule::Nk, n: 1, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance), "700 of 1000 is not above 85 %");
        // p = 10: the rest (100) is above 10 % of the largest (70): released.
        policy.dominance = Dominance { rule: DominanceRule::PPercent, n: 2, k: 85.0, p: 10.0 };
        assert!(!s(&policy).contains(&Reason::Dominance));
        policy.dominance.p = 20.0;
        assert!(s(&policy).contains(&Reason::Dominance), "the rest (100) is below 20 % of 700");
        assert!(primary(Kind::CostSum, &cost_cell(3, 1000.0, 400.0, 300.0), &policy, 5).contains(&Reason::BelowMinCell));
    }

    #[test]
    fn proportions_are_checked_on_both_sides() {
        let policy = Policy::development(None);
        let cell = |persons, numerator| RawCell { numerator, numerator_persons: numerator, ..raw(persons) };
        assert!(primary(Kind::Proportion, &cell(100, 50), &policy, 5).is_empty());
        assert_eq!(primary(Kind::Proportion, &cell(100, 3), &policy, 5), BTreeSet::from([Reason::BelowMinCell]));
        assert_eq!(primary(Kind::Proportion, &cell(100, 97), &policy, 5), BTreeSet::from([Reason::Complement]));
        assert!(primary(Kind::Proportion, &cell(100, 0), &policy, 5).is_empty(), "a zero is released by default");
        assert_eq!(primary(Kind::Proportion, &cell(100, 7), &policy, 10), BTreeSet::from([Reason::BelowMinCell]), "k = 10");
    }
}
