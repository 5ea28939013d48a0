//! The release of a pooled total computed by a secure sum between agents
//! (docs/secure-aggregation.md): the coordinator applies this with the federation's policy
//! to the exact total it learned, never to a region's part.
//!
//! - **R1**: the total passes the primary rules as a central agent's cell would (at least k
//!   persons, complement, dominance with the sum of each region's two largest
//!   contributions as an upper bound of the union's two largest).
//! - **R2** (differencing against the released parts, where the parts are released, i.e.
//!   the pooled row of the provider perspective and the pooled row over home regions): with
//!   no withheld part the total is released; with one, the total minus the released parts
//!   would be that part, so the total is withheld; with two or more, the withheld parts
//!   together, less the largest of them (bounded by the square root of the sum of their
//!   squares), must hold at least k units in every released count, so that neither the
//!   public nor a withholding region (which knows its own part) can compute a part.
//! - Then the cell key method perturbs the total with the union's cell keys (the sums of the
//!   agents' key parts), exactly as a central agent holding every unit would.

use norrsken_model::answer::Reason;
use norrsken_model::catalog::Kind;

use super::perturb::{cell_keys, key_fraction, perturb_components, KeyOf};
use super::policy::Policy;
use super::primary::primary;
use super::ptable::PTable;
use crate::engine::cells::RawCell;

/// A pooled total as the secure sum gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledTotal {
    /// The union's components (top1 holds the sum of each part's two largest contributions).
    pub raw: RawCell,
    /// The union's key parts per set of units (sums modulo 2^32).
    pub keys: [u32; 6],
    /// How many regions withhold their part, and the withheld parts' released-count
    /// components (numerator, denominator) summed and summed in squares.
    pub withheld: u32,
    pub withheld_num: (i64, i64),
    pub withheld_den: (i64, i64),
}

impl PooledTotal {
    fn key(&self, of: KeyOf) -> u32 {
        self.keys[of as usize]
    }
}

/// What may be released of a pooled total.
#[derive(Debug, Clone, PartialEq)]
pub enum PooledRelease {
    Released { numerator: Option<i64>, denominator: Option<i64>, value_sum: Option<f64>, value_sd: Option<f64>, reasons: Vec<Reason> },
    Withheld(Vec<Reason>),
}

/// The rules of the module documentation. `parts_released`: the regions' parts are
/// released beside the total (R2 applies).
pub fn release_pooled(kind: Kind, t: &PooledTotal, policy: &Policy, k: u32, ptable: Option<&PTable>, parts_released: bool) -> PooledRelease {
    let reasons: Vec<Reason> = primary(kind, &t.raw, policy, k).into_iter().collect();
    if !reasons.is_empty() {
        return PooledRelease::Withheld(reasons);
    }
    if parts_released && t.withheld > 0 && !withheld_parts_protected(kind, t, k) {
        return PooledRelease::Withheld(vec![Reason::PooledProtection]);
    }
    let keys = ptable.map(|_| cell_keys(kind, |of| key_fraction(t.key(of))));
    let (numerator, denominator, value_sum, value_sd, reasons) = perturb_components(kind, &t.raw, policy, ptable, keys);
    PooledRelease::Released { numerator, denominator, value_sum, value_sd, reasons }
}

/// R2: the withheld parts together, less the largest, hold at least k in every released
/// count (never with a single withheld part).
pub fn withheld_parts_protected(kind: Kind, t: &PooledTotal, k: u32) -> bool {
    if t.withheld < 2 {
        return false;
    }
    let (has_num, has_den) = match kind {
        Kind::Proportion | Kind::Rate | Kind::CostSum => (true, true),
        Kind::Count => (true, false),
        Kind::Mean => (false, true),
    };
    let enough = |(sum, sum_sq): (i64, i64)| sum as f64 - (sum_sq.max(0) as f64).sqrt() >= k as f64;
    (!has_num || t.withheld_num.0 == 0 || enough(t.withheld_num)) && (!has_den || t.withheld_den.0 == 0 || enough(t.withheld_den))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(units: i64, numerator: i64, withheld: u32, wnum: (i64, i64), wden: (i64, i64)) -> PooledTotal {
        PooledTotal {
            raw: RawCell { units, persons: units, numerator, numerator_persons: numerator, ..RawCell::empty("", vec![], None) },
            keys: [11, 22, 33, 44, 55, 66],
            withheld,
            withheld_num: wnum,
            withheld_den: wden,
        }
    }

    fn released(r: &PooledRelease) -> bool {
        matches!(r, PooledRelease::Released { .. })
    }

    #[test]
    fn the_release_rules_of_a_pooled_total() {
        let policy = Policy::development(None);
        let p = |t: &PooledTotal, parts: bool| release_pooled(Kind::Proportion, t, &policy, 5, None, parts);
        // R1: a small total is withheld whatever its parts.
        assert!(matches!(p(&total(4, 2, 0, (0, 0), (0, 0)), true), PooledRelease::Withheld(r) if r.contains(&Reason::BelowMinCell)));
        // No withheld part: released exactly (perturbation off here).
        assert_eq!(
            p(&total(100, 40, 0, (0, 0), (0, 0)), true),
            PooledRelease::Released { numerator: Some(40), denominator: Some(100), value_sum: None, value_sd: None, reasons: vec![] }
        );
        // One withheld part (3 of 103): the total minus the released parts would be it.
        let one = total(103, 41, 1, (1, 1), (3, 9));
        assert_eq!(p(&one, true), PooledRelease::Withheld(vec![Reason::PooledProtection]));
        // ... unless the parts are not released (a home region's total).
        assert!(released(&p(&one, false)));
        // Two small withheld parts (3 + 2): their sum less the largest is below k.
        assert!(!released(&p(&total(105, 40, 2, (0, 0), (5, 13)), true)));
        // Four withheld parts of 4 (an insider knows its own 4; the other three hold 12).
        assert!(released(&p(&total(116, 40, 4, (0, 0), (16, 64)), true)));
        // A large secondary-withheld part beside a small one: 40 + 3, less the largest 40.
        assert!(!released(&p(&total(143, 40, 2, (0, 0), (43, 1609)), true)));
    }

    #[test]
    fn the_union_keys_perturb_the_total_like_a_central_cell() {
        let mut policy = Policy::development(None);
        policy.perturbation.enabled = true;
        let table = PTable::new(2, 1.0, 4);
        let t = total(100, 40, 0, (0, 0), (0, 0));
        let r = release_pooled(Kind::Proportion, &t, &policy, 5, Some(&table), true);
        let expect_num = table.perturb(40, key_fraction(22));
        let expect_den = table.perturb(100, key_fraction(11));
        assert_eq!(r, PooledRelease::Released { numerator: Some(expect_num.min(expect_den)), denominator: Some(expect_den), value_sum: None, value_sd: None, reasons: vec![Reason::Perturbed] });
    }
}
