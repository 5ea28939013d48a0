//! Which cells can be computed from released ones: linear algebra over base cells.
//!
//! The released cells of every question so far (to any requester) are linear equations
//! over the base cells ("atoms": the finest pieces the boxes involved cut the space into);
//! cells shown empty fix their atoms at zero. A withheld cell is derivable exactly when its
//! vector lies in the span of the released vectors (Chin and Özsoyoğlu's Audit Expert).
//! [`Check`] keeps the released vectors in echelon form and, for each new cell a question
//! would release, tests whether releasing it would put a withheld cell ("target") in the
//! span. The test reads only which cells were asked and released, never their values, so
//! a refusal says nothing about the data (simulatable auditing, Kenthapadi, Mishra and
//! Nissim 2005).
//!
//! A second rule closes differencing by overlapping questions: when a new cell and a cell
//! released before differ in one dimension only and one contains the other (a filter with
//! one value less, a shorter period), their difference is a cell nobody asked for, and the
//! two together would give its value. The new cell is released only when that difference
//! is made of cells that were asked (released, withheld or shown empty), whose protection
//! the first rule governs.
//!
//! Arithmetic is modulo the prime 2^61 - 1, so it is exact; a rational dependency shows
//! up modulo the prime, and the rare false dependency only withholds more.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::boxes::{classes, contains, single_difference, CellBox};

const P: u64 = (1 << 61) - 1;

fn mul(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % P as u128) as u64
}
fn sub(a: u64, b: u64) -> u64 {
    if a >= b {
        a - b
    } else {
        a + P - b
    }
}
fn inv(a: u64) -> u64 {
    // Fermat: a^(p-2).
    let (mut base, mut exp, mut acc) = (a % P, P - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

/// A sparse vector over unknown atoms, sorted by atom.
type Sparse = Vec<(u32, u64)>;

/// The work is too large for the exact check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{atoms} base cells exceed the ledger's limit of {limit}")]
pub struct TooLarge {
    pub atoms: u64,
    pub limit: u64,
}

/// The outcome of checking a question's new cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Per candidate, whether it may be released.
    pub release: Vec<bool>,
    /// Targets already derivable from what was released before this question (indices into
    /// the targets given): nothing this answer withholds can hide them again.
    pub already_derivable: Vec<usize>,
}

struct Basis {
    /// Normalised rows (pivot coefficient 1) in insertion order, each zero at the pivots of
    /// the rows before it.
    rows: Vec<(u32, Sparse)>,
    scratch: Vec<u64>,
    mark: Vec<bool>,
}

impl Basis {
    fn new(unknowns: usize) -> Basis {
        Basis { rows: Vec::new(), scratch: vec![0; unknowns], mark: vec![false; unknowns] }
    }

    /// The vector reduced by every row: zero at every pivot. Empty when it lies in the span.
    fn reduce(&mut self, v: &Sparse) -> Sparse {
        let mut touched: Vec<u32> = Vec::with_capacity(v.len() * 2);
        for &(a, x) in v {
            self.scratch[a as usize] = x;
            if !self.mark[a as usize] {
                self.mark[a as usize] = true;
                touched.push(a);
            }
        }
        for (pivot, row) in &self.rows {
            let c = self.scratch[*pivot as usize];
            if c == 0 {
                continue;
            }
            for &(a, x) in row {
                let i = a as usize;
                self.scratch[i] = sub(self.scratch[i], mul(c, x));
                if !self.mark[i] {
                    self.mark[i] = true;
                    touched.push(a);
                }
            }
        }
        touched.sort_unstable();
        let mut out = Vec::new();
        for a in touched {
            let i = a as usize;
            if self.scratch[i] != 0 {
                out.push((a, self.scratch[i]));
            }
            self.scratch[i] = 0;
            self.mark[i] = false;
        }
        out
    }

    /// Adds a reduced, non-zero vector; returns its normalised form and pivot.
    fn insert(&mut self, reduced: Sparse) -> (u32, Sparse) {
        let (pivot, lead) = reduced[0];
        let f = inv(lead);
        let row: Sparse = reduced.into_iter().map(|(a, x)| (a, mul(x, f))).collect();
        self.rows.push((pivot, row.clone()));
        (pivot, row)
    }
}

fn coefficient(v: &Sparse, atom: u32) -> u64 {
    v.binary_search_by_key(&atom, |&(a, _)| a).map_or(0, |i| v[i].1)
}

/// `t - c · r` for sparse vectors.
fn subtract_multiple(t: &Sparse, c: u64, r: &Sparse) -> Sparse {
    let mut out = Vec::with_capacity(t.len() + r.len());
    let (mut i, mut j) = (0, 0);
    while i < t.len() || j < r.len() {
        let next = match (t.get(i), r.get(j)) {
            (Some(&(a, x)), Some(&(b, y))) if a == b => {
                i += 1;
                j += 1;
                (a, sub(x, mul(c, y)))
            }
            (Some(&(a, x)), Some(&(b, _))) if a < b => {
                i += 1;
                (a, x)
            }
            (Some(&(a, x)), None) => {
                i += 1;
                (a, x)
            }
            (_, Some(&(b, y))) => {
                j += 1;
                (b, sub(0, mul(c, y)))
            }
            (None, None) => unreachable!(),
        };
        if next.1 != 0 {
            out.push(next);
        }
    }
    out
}

/// Whether two non-zero vectors are multiples of each other.
fn proportional(a: &Sparse, b: &Sparse) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    if a.iter().zip(b).any(|(x, y)| x.0 != y.0) {
        return false;
    }
    let f = mul(b[0].1, inv(a[0].1));
    a.iter().zip(b).all(|(x, y)| mul(x.1, f) == y.1)
}

/// Checks the candidates of one question, in order, against what was released before.
///
/// - `released`: cells released before (to anyone);
/// - `zeros`: cells shown empty (before or by this question);
/// - `targets`: withheld cells (before or in this question) that must stay underivable;
/// - `asked`: other cells asked before or in this question (withheld for a larger minimum
///   cell size, margins not shown);
/// - `candidates`: the cells this question would release, in the order to decide them.
///
/// A candidate is released unless releasing it (after the ones accepted before it) would
/// make a target derivable, or would with one released cell give away a cell nobody asked
/// for; a refused candidate becomes a target itself.
pub fn check(dims: usize, released: &[&CellBox], zeros: &[&CellBox], targets: &[&CellBox], asked: &[&CellBox], candidates: &[&CellBox], max_atoms: u64) -> Result<Outcome, TooLarge> {
    let all: Vec<&CellBox> = released.iter().chain(zeros).chain(targets).chain(candidates).chain(asked).copied().collect();
    let cl = classes(dims, &all);
    let atoms = cl.counts.iter().try_fold(1u64, |acc, &c| acc.checked_mul(c as u64)).unwrap_or(u64::MAX);
    if atoms > max_atoms {
        return Err(TooLarge { atoms, limit: max_atoms });
    }
    // Mixed-radix atom numbers.
    let enumerate = |box_classes: &[Vec<u32>]| -> Vec<u64> {
        let mut out = vec![0u64];
        for (d, cs) in box_classes.iter().enumerate() {
            let radix = cl.counts[d] as u64;
            let mut next = Vec::with_capacity(out.len() * cs.len());
            for base in &out {
                for &c in cs {
                    next.push(base * radix + c as u64);
                }
            }
            out = next;
        }
        out
    };
    let n_released = released.len();
    let n_zero = zeros.len();
    let n_target = targets.len();
    let n_candidate = candidates.len();
    // Atoms known to be zero.
    let mut zero_atom = vec![false; atoms as usize];
    for b in &cl.boxes[n_released..n_released + n_zero] {
        for a in enumerate(b) {
            zero_atom[a as usize] = true;
        }
    }
    // Unknown atoms are numbered densely.
    let mut unknown_index: Vec<u32> = vec![u32::MAX; atoms as usize];
    let mut unknowns = 0u32;
    for (a, z) in zero_atom.iter().enumerate() {
        if !z {
            unknown_index[a] = unknowns;
            unknowns += 1;
        }
    }
    let vector = |b: &[Vec<u32>]| -> Sparse {
        let mut v: Sparse = enumerate(b).into_iter().filter(|a| !zero_atom[*a as usize]).map(|a| (unknown_index[a as usize], 1)).collect();
        v.sort_unstable();
        v
    };
    let released_v: Vec<Sparse> = cl.boxes[..n_released].iter().map(|b| vector(b)).collect();
    let t0 = n_released + n_zero;
    let target_v: Vec<Sparse> = cl.boxes[t0..t0 + n_target].iter().map(|b| vector(b)).collect();
    let candidate_v: Vec<Sparse> = cl.boxes[t0 + n_target..t0 + n_target + n_candidate].iter().map(|b| vector(b)).collect();
    let mut basis = Basis::new(unknowns as usize);
    for v in &released_v {
        let r = basis.reduce(v);
        if !r.is_empty() {
            basis.insert(r);
        }
    }
    let mut residuals: Vec<Sparse> = Vec::with_capacity(n_target + candidate_v.len());
    let mut already_derivable = Vec::new();
    for (i, t) in target_v.iter().enumerate() {
        let r = basis.reduce(t);
        if r.is_empty() {
            already_derivable.push(i);
        }
        residuals.push(r);
    }
    // Cells asked (for the difference rule), with a hash per dimension to find the cells
    // that differ from a candidate in one dimension quickly.
    let dim_hash = |b: &CellBox| -> Vec<u64> {
        b.0.iter()
            .map(|s| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                s.hash(&mut h);
                h.finish()
            })
            .collect()
    };
    let asked_all: Vec<&CellBox> = all.clone();
    let mut known: Vec<(&CellBox, Vec<u64>)> = released.iter().map(|b| (*b, dim_hash(b))).collect();
    let mut covered_cache: HashMap<CellBox, bool> = HashMap::new();
    let mut covered = |d: &CellBox| -> bool {
        if let Some(&c) = covered_cache.get(d) {
            return c;
        }
        let classes_of: Vec<Vec<u32>> = (0..dims).map(|k| cl.of_set(k, &d.0[k])).collect();
        let target = vector(&classes_of);
        let ok = if target.is_empty() {
            true
        } else {
            let mut local = Basis::new(unknowns as usize);
            let mut seen = HashSet::new();
            for b in asked_all.iter().filter(|b| contains(d, b)) {
                if !seen.insert(*b) {
                    continue;
                }
                let classes_b: Vec<Vec<u32>> = (0..dims).map(|k| cl.of_set(k, &b.0[k])).collect();
                let r = local.reduce(&vector(&classes_b));
                if !r.is_empty() {
                    local.insert(r);
                }
            }
            local.reduce(&target).is_empty()
        };
        covered_cache.insert(d.clone(), ok);
        ok
    };
    let mut release = Vec::with_capacity(candidate_v.len());
    for (ci, c) in candidate_v.iter().enumerate() {
        let r = basis.reduce(c);
        if r.is_empty() {
            // Nothing new: already known.
            release.push(true);
            continue;
        }
        let exposes = residuals.iter().any(|t| !t.is_empty() && proportional(&r, t));
        let cand = candidates[ci];
        let h = dim_hash(cand);
        let differencing = !exposes
            && known.iter().any(|(k, kh)| {
                kh.iter().zip(&h).filter(|(x, y)| x != y).count() == 1 && single_difference(k, cand).is_some_and(|d| !covered(&d))
            });
        if exposes || differencing {
            release.push(false);
            residuals.push(r);
            continue;
        }
        let (pivot, row) = basis.insert(r);
        for t in residuals.iter_mut() {
            let c = coefficient(t, pivot);
            if c != 0 {
                *t = subtract_multiple(t, c, &row);
            }
        }
        known.push((cand, h));
        release.push(true);
    }
    Ok(Outcome { release, already_derivable })
}

#[cfg(test)]
mod tests {
    use super::super::boxes::ValueSet;
    use super::*;

    /// A one-dimensional box over values.
    fn b(values: &[u32]) -> CellBox {
        CellBox(vec![ValueSet::Some(values.to_vec())])
    }

    #[test]
    fn a_total_and_the_other_parts_give_a_withheld_part_away() {
        let (a, bb, c, total) = (b(&[1]), b(&[2]), b(&[3]), b(&[1, 2, 3]));
        // a withheld; total and b released: c would expose a.
        let out = check(1, &[&total, &bb], &[], &[&a], &[], &[&c], 1000).unwrap();
        assert_eq!(out.release, vec![false]);
        // With c shown empty, a is already derivable.
        let out = check(1, &[&total, &bb], &[&c], &[&a], &[], &[], 1000).unwrap();
        assert_eq!(out.already_derivable, vec![0]);
        // Without the total, c is harmless.
        let out = check(1, &[&bb], &[], &[&a], &[], &[&c], 1000).unwrap();
        assert_eq!(out.release, vec![true]);
    }

    #[test]
    fn a_refused_candidate_is_protected_in_turn() {
        // x1 + x2 = s1 released; x2 + x3, then x3: after x2+x3 is released, x3 would give
        // x2 and so x1 (the target).
        let (x1, x2, x3) = (b(&[1]), b(&[2]), b(&[3]));
        let s1 = b(&[1, 2]);
        let s2 = b(&[2, 3]);
        let out = check(1, &[&s1], &[], &[&x1], &[], &[&s2, &x3, &x2], 1000).unwrap();
        assert_eq!(out.release, vec![true, false, false]);
    }

    #[test]
    fn two_dimensional_tables_need_the_rectangle() {
        // 2 x 2 table with margins released; one withheld inner cell is derivable; with
        // the whole rectangle withheld it is not.
        let cell = |r: u32, c: u32| CellBox(vec![ValueSet::Some(vec![r]), ValueSet::Some(vec![c])]);
        // Margins name both values: `All` would also cover values never named.
        let row = |r: u32| CellBox(vec![ValueSet::Some(vec![r]), ValueSet::Some(vec![0, 1])]);
        let col = |c: u32| CellBox(vec![ValueSet::Some(vec![0, 1]), ValueSet::Some(vec![c])]);
        let (r0, r1, c0, c1) = (row(0), row(1), col(0), col(1));
        let (a, bb, c, d) = (cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1));
        let released = [&r0, &r1, &c0, &c1];
        // Margins alone leave the whole rectangle free; any one inner cell fixes all four.
        let out = check(2, &released, &[], &[&a, &bb, &c, &d], &[], &[], 1000).unwrap();
        assert!(out.already_derivable.is_empty());
        let out = check(2, &released, &[], &[&a, &bb, &c], &[], &[&d], 1000).unwrap();
        assert_eq!(out.release, vec![false]);
        // With only a withheld, d gives b = c1 - d and so a = r0 - b.
        let out = check(2, &released, &[], &[&a], &[], &[&d], 1000).unwrap();
        assert_eq!(out.release, vec![false]);
        // d refused becomes a target; c would give a = c0 - c.
        let out = check(2, &released, &[], &[&a], &[], &[&d, &c], 1000).unwrap();
        assert_eq!(out.release, vec![false, false]);
        let _ = bb;
    }

    #[test]
    fn values_never_named_stay_unknown_until_shown_empty() {
        // A margin over every value also covers values no cell names.
        let all = CellBox(vec![ValueSet::All]);
        let (a, bb, rest_zero) = (b(&[1]), b(&[2]), CellBox(vec![ValueSet::Some(vec![3])]));
        let out = check(1, &[&all], &[], &[&a], &[], &[&bb], 1000).unwrap();
        assert_eq!(out.release, vec![true], "a = all - b - (values never named)");
        let _ = rest_zero;
    }

    #[test]
    fn a_filter_with_one_value_less_would_give_the_value_away() {
        let (all, most, last) = (b(&[1, 2, 3]), b(&[1, 2]), b(&[3]));
        // Nobody asked for value 3 alone: the second question is refused.
        let out = check(1, &[&all], &[], &[], &[], &[&most], 1000).unwrap();
        assert_eq!(out.release, vec![false]);
        // Once value 3 was asked (released, withheld or empty), the rest is the first rule's.
        let out = check(1, &[&all, &last], &[], &[], &[], &[&most], 1000).unwrap();
        assert_eq!(out.release, vec![true]);
        let out = check(1, &[&all], &[], &[&last], &[], &[&most], 1000).unwrap();
        assert_eq!(out.release, vec![false], "value 3 withheld: the first rule refuses");
        let out = check(1, &[&all], &[&last], &[], &[], &[&most], 1000).unwrap();
        assert_eq!(out.release, vec![true], "value 3 shown empty");
        // Within one answer the parts of a line are asked.
        let (one, two) = (b(&[1]), b(&[2]));
        let out = check(1, &[], &[], &[], &[], &[&all, &one, &two, &last], 1000).unwrap();
        assert_eq!(out.release, vec![true; 4]);
    }

    #[test]
    fn too_many_atoms_is_reported() {
        let boxes: Vec<CellBox> = (0..40).map(|i| CellBox(vec![ValueSet::Some(vec![i]), ValueSet::Some(vec![i])])).collect();
        let refs: Vec<&CellBox> = boxes.iter().collect();
        assert!(check(2, &refs, &[], &[], &[], &[], 1000).is_err());
    }
}
