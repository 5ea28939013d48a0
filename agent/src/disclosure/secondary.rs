//! Secondary suppression: no withheld cell may be recoverable from the released cells of the
//! same answer by adding and subtracting margins.
//!
//! A table's cells carry labels per breakdown, `total` in a margin. Along each breakdown,
//! a line of cells (the other labels fixed) adds up to its `total` cell; for distributions
//! the categories of a cell add up to the cell's denominator. Two passes run until nothing
//! changes:
//!
//! 1. the leaf rule: a line with exactly one withheld cell gives it away (total minus the
//!    rest), so the smallest released cell of that line is withheld too;
//! 2. the linear audit: with the withheld cells as unknowns and every line as an equation,
//!    a withheld cell whose unit vector lies in the row space of the equations is
//!    determined; the smallest released cell on one of its lines is withheld.
//!
//! A third rule keeps reason codes from closing an interval: a line whose withheld cells are
//! all small (1..k-1) would give away their sum, and with the bound 1..k-1 each one could
//! be pinned; such a line gets a withheld partner that is not small.
//!
//! Choices are deterministic: cells with room above k first (so that "withheld and at least
//! k" bounds nothing tightly), then the smallest count, then the labels in order. Cells of
//! coarser tables that were decided before (see [`super::lattice`]) take part as *locked*
//! cells: their lines and their status count, but they are never chosen, so a finer table
//! can never change what a coarser one released.
//! Margins the query did not ask for are treated as if published (another query can ask for
//! them), so a total query and a breakdown query together cannot give a withheld cell away.

use std::collections::BTreeMap;

use super::DisclosureError;

/// One cell for suppression purposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Labels per breakdown (`total` in margins); for distributions the category is the last
    /// label, with `total` for the cell's denominator.
    pub labels: Vec<String>,
    /// Persons (or units) in the cell: the smaller, the sooner it is chosen.
    pub size: i64,
    pub withheld: bool,
    /// A stand-in that is never released itself (a distribution's denominator): it is known
    /// when any of its categories is released; withholding it withholds all its categories.
    pub virtual_cell: bool,
    /// Whether this cell must stay underivable (real withheld cells; a virtual denominator
    /// only when it was withheld for its own size).
    pub protect: bool,
    /// Withheld for 1..k-1 persons.
    pub small: bool,
    /// More than k persons: withholding it bounds nothing tightly.
    pub slack: bool,
    /// Decided in a coarser table: never chosen, its status is given.
    pub locked: bool,
    /// Holds nobody, shown like a small cell so that a line's small cells cannot be
    /// counted: protected where withholding more can, left as it is where only locked
    /// cells give it away.
    pub empty: bool,
}

const TOTAL: &str = "total";

/// The lines (groups) of a table: for each dimension, the cells sharing all other labels.
/// Dimensions `additive` marks false have no lines (a person counted once in a year and once
/// in the whole period is not a sum: the years of persons do not add up to the period).
fn lines(cells: &[Cell], additive: &[bool]) -> Vec<(Vec<usize>, usize)> {
    let dims = cells.first().map_or(0, |c| c.labels.len());
    let index: BTreeMap<&[String], usize> = cells.iter().enumerate().map(|(i, c)| (c.labels.as_slice(), i)).collect();
    let mut out = Vec::new();
    for d in 0..dims {
        if !additive.get(d).copied().unwrap_or(true) {
            continue;
        }
        let mut groups: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            if c.labels[d] == TOTAL {
                continue;
            }
            let key: Vec<&str> = c.labels.iter().enumerate().map(|(j, l)| if j == d { "" } else { l.as_str() }).collect();
            groups.entry(key).or_default().push(i);
        }
        for (key, parts) in groups {
            let mut total_labels: Vec<String> = key.iter().map(|s| s.to_string()).collect();
            total_labels[d] = TOTAL.to_string();
            if let Some(&t) = index.get(total_labels.as_slice()) {
                out.push((parts, t));
            }
        }
    }
    out
}

/// The order in which released cells are chosen for secondary suppression.
fn choice_key(c: &Cell) -> (bool, i64, &Vec<String>) {
    (!c.slack, c.size, &c.labels)
}

/// The released cell of `members` chosen first; locked cells are never chosen (nor a virtual
/// denominator whose categories are locked).
fn smallest_released(cells: &[Cell], members: impl Iterator<Item = usize>) -> Option<usize> {
    members.filter(|&i| !cells[i].withheld && !cells[i].locked).min_by(|&a, &b| choice_key(&cells[a]).cmp(&choice_key(&cells[b])))
}

fn same_cell(a: &Cell, b: &Cell) -> bool {
    a.labels[..a.labels.len() - 1] == b.labels[..b.labels.len() - 1]
}

/// Withholds cell `i`; for a virtual denominator, every category of its cell. Returns the
/// real cells newly withheld.
fn withhold(cells: &mut [Cell], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if cells[i].virtual_cell {
        let v = cells[i].clone();
        for (j, c) in cells.iter_mut().enumerate() {
            if !c.virtual_cell && !c.withheld && !c.locked && same_cell(c, &v) {
                c.withheld = true;
                out.push(j);
            }
        }
    } else {
        cells[i].withheld = true;
        out.push(i);
    }
    refresh_virtual(cells);
    out
}

/// Whether each unknown is determined by the equations (Gaussian elimination over the
/// unknowns; the constants do not matter for determinacy).
pub fn determined(equations: &[Vec<f64>], unknowns: usize) -> Vec<bool> {
    let mut rows: Vec<Vec<f64>> = equations.iter().filter(|r| r.iter().any(|x| *x != 0.0)).cloned().collect();
    let mut pivots: Vec<(usize, usize)> = Vec::new(); // (row, column)
    let mut r = 0;
    for c in 0..unknowns {
        let Some(p) = (r..rows.len()).max_by(|&a, &b| rows[a][c].abs().total_cmp(&rows[b][c].abs())) else { break };
        if rows[p][c].abs() < 1e-9 {
            continue;
        }
        rows.swap(r, p);
        let pv = rows[r][c];
        for x in rows[r].iter_mut() {
            *x /= pv;
        }
        for i in 0..rows.len() {
            if i != r && rows[i][c].abs() > 1e-12 {
                let f = rows[i][c];
                for j in 0..unknowns {
                    rows[i][j] -= f * rows[r][j];
                }
            }
        }
        pivots.push((r, c));
        r += 1;
        if r == rows.len() {
            break;
        }
    }
    // In reduced row echelon form, unknown c is determined iff it is a pivot column whose
    // row has no other non-zero entry.
    let mut out = vec![false; unknowns];
    for (row, c) in pivots {
        out[c] = rows[row].iter().enumerate().all(|(j, x)| j == c || x.abs() < 1e-9);
    }
    out
}

/// The equations of a table over its withheld cells, sparse: each line says its parts sum to
/// its total.
fn equations(lines: &[(Vec<usize>, usize)], unknown: &BTreeMap<usize, usize>) -> Vec<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    for (parts, total) in lines {
        let mut row: BTreeMap<usize, f64> = BTreeMap::new();
        for &p in parts {
            if let Some(&u) = unknown.get(&p) {
                *row.entry(u).or_default() += 1.0;
            }
        }
        if let Some(&u) = unknown.get(total) {
            *row.entry(u).or_default() -= 1.0;
        }
        let row: Vec<(usize, f64)> = row.into_iter().filter(|(_, x)| *x != 0.0).collect();
        if !row.is_empty() {
            out.push(row);
        }
    }
    out
}

/// [`determined`] over sparse equations, one connected group of unknowns at a time (unknowns
/// that share no equation cannot determine each other), so a large sparse table is solved as
/// many small systems.
pub fn determined_sparse(equations: &[Vec<(usize, f64)>], unknowns: usize) -> Vec<bool> {
    let mut parent: Vec<usize> = (0..unknowns).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for row in equations {
        let first = row[0].0;
        for &(u, _) in &row[1..] {
            let (a, b) = (find(&mut parent, first), find(&mut parent, u));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for u in 0..unknowns {
        let r = find(&mut parent, u);
        groups.entry(r).or_default().push(u);
    }
    let mut rows_of: BTreeMap<usize, Vec<&Vec<(usize, f64)>>> = BTreeMap::new();
    for row in equations {
        let r = find(&mut parent, row[0].0);
        rows_of.entry(r).or_default().push(row);
    }
    let mut out = vec![false; unknowns];
    for (root, members) in groups {
        let Some(rows) = rows_of.get(&root) else { continue };
        let local: BTreeMap<usize, usize> = members.iter().enumerate().map(|(i, &u)| (u, i)).collect();
        let dense: Vec<Vec<f64>> = rows
            .iter()
            .map(|row| {
                let mut d = vec![0.0; members.len()];
                for &(u, x) in row.iter() {
                    d[local[&u]] += x;
                }
                d
            })
            .collect();
        for (i, det) in determined(&dense, members.len()).into_iter().enumerate() {
            out[members[i]] = det;
        }
    }
    out
}

/// Refreshes virtual cells: known iff a category at the same labels is released.
fn refresh_virtual(cells: &mut [Cell]) {
    let n = cells.len();
    for i in 0..n {
        if !cells[i].virtual_cell {
            continue;
        }
        let any_released = (0..n).any(|j| !cells[j].virtual_cell && !cells[j].withheld && same_cell(&cells[j], &cells[i]));
        cells[i].withheld = !any_released;
    }
}

/// The smallest released cell on the lines reachable from cell `i` through withheld cells:
/// the only lines whose equations can determine `i`.
fn smallest_connected(cells: &[Cell], lines: &[(Vec<usize>, usize)], i: usize) -> Option<usize> {
    let mut reached = vec![false; cells.len()];
    let mut used = vec![false; lines.len()];
    reached[i] = true;
    let mut queue = vec![i];
    let mut released = Vec::new();
    while let Some(c) = queue.pop() {
        for (l, (parts, total)) in lines.iter().enumerate() {
            if used[l] || !(parts.contains(&c) || *total == c) {
                continue;
            }
            used[l] = true;
            for m in parts.iter().copied().chain(std::iter::once(*total)) {
                if !cells[m].withheld {
                    released.push(m);
                } else if !reached[m] {
                    reached[m] = true;
                    queue.push(m);
                }
            }
        }
    }
    smallest_released(cells, released.into_iter())
}

/// Withholds more cells until no withheld cell can be derived. Returns the indices withheld
/// here (secondary suppression). A locked cell that only other locked cells give away is
/// left as it is: nothing this table releases gives it away, so withholding more here
/// cannot help (see docs/disclosure-control.md, "What is not protected"). Fails when an
/// unlocked cell cannot be protected.
pub fn protect(cells: &mut [Cell]) -> Result<Vec<usize>, DisclosureError> {
    protect_along(cells, &[])
}

/// [`protect`] with lines only along the dimensions `additive` marks (all when it is
/// shorter than the labels).
pub fn protect_along(cells: &mut [Cell], additive: &[bool]) -> Result<Vec<usize>, DisclosureError> {
    let lines = lines(cells, additive);
    let mut added = Vec::new();
    // Locked cells that only other locked cells give away (see below).
    let mut accepted = std::collections::BTreeSet::new();
    refresh_virtual(cells);
    for _round in 0..10_000 {
        // 1. The leaf rule.
        let mut changed = false;
        for (parts, total) in &lines {
            let members = || parts.iter().copied().chain(std::iter::once(*total));
            let withheld = members().filter(|&i| cells[i].withheld).count();
            // Withheld cells that are all small give away their sum's bounds.
            let all_small = withheld >= 1 && members().filter(|&i| cells[i].withheld).all(|i| cells[i].small);
            if withheld == 1 || all_small {
                if let Some(i) = smallest_released(cells, members()) {
                    added.extend(withhold(cells, i));
                    changed = true;
                }
            }
        }
        if changed {
            continue;
        }
        // 2. The linear audit.
        let unknown: BTreeMap<usize, usize> =
            cells.iter().enumerate().filter(|(_, c)| c.withheld).enumerate().map(|(u, (i, _))| (i, u)).collect();
        if unknown.is_empty() {
            return Ok(added);
        }
        let eqs = equations(&lines, &unknown);
        let det = determined_sparse(&eqs, unknown.len());
        let mut fixed_one = false;
        for (&i, &u) in &unknown {
            if !det[u] || !cells[i].protect || accepted.contains(&i) {
                continue;
            }
            let choice = lines
                .iter()
                .filter(|(parts, total)| parts.contains(&i) || *total == i)
                .filter_map(|(parts, total)| smallest_released(cells, parts.iter().copied().chain(std::iter::once(*total))))
                .min_by(|&a, &b| choice_key(&cells[a]).cmp(&choice_key(&cells[b])));
            // Every line through the cell may already be withheld while other lines still give
            // it away through the withheld cells they share: then the smallest released cell on
            // any line connected to it through withheld cells.
            match choice.or_else(|| smallest_connected(cells, &lines, i)) {
                Some(j) => {
                    added.extend(withhold(cells, j));
                    fixed_one = true;
                    break;
                }
                // Only locked cells (decided in coarser tables) give it away: nothing this
                // table releases does, and withholding more here cannot change that.
                None if cells[i].locked || cells[i].empty => {
                    accepted.insert(i);
                }
                None => {
                    if std::env::var("NORRSKEN_DEBUG_SECONDARY").is_ok() {
                        for (parts, total) in lines.iter().filter(|(p, t)| p.contains(&i) || *t == i) {
                            let show = |j: usize| format!("{:?} w={} l={} v={} sz={}", cells[j].labels, cells[j].withheld, cells[j].locked, cells[j].virtual_cell, cells[j].size);
                            eprintln!("LINE total {}", show(*total));
                            for p in parts {
                                eprintln!("   part {}", show(*p));
                            }
                        }
                    }
                    return Err(DisclosureError(format!("cell {:?} cannot be protected by withholding more cells", cells[i].labels)));
                }
            }
        }
        if !fixed_one {
            return Ok(added);
        }
    }
    Err(DisclosureError("secondary suppression did not settle".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(labels: &[&str], size: i64, withheld: bool) -> Cell {
        Cell { labels: labels.iter().map(|s| s.to_string()).collect(), size, withheld, virtual_cell: false, protect: true, small: withheld, slack: size > 5, locked: false, empty: false }
    }

    #[test]
    fn a_lone_withheld_part_takes_the_next_smallest_with_it() {
        let mut cells = vec![cell(&["female"], 97, false), cell(&["male"], 3, true), cell(&["total"], 100, false)];
        let added = protect(&mut cells).unwrap();
        assert_eq!(added, vec![0], "female must go too, or male = total - female");
    }

    #[test]
    fn two_dimensional_tables_need_a_rectangle() {
        // 2 x 3 table with margins; one small cell.
        let mut cells = Vec::new();
        for (s, sizes) in [("f", [20, 30, 2]), ("m", [25, 35, 40])] {
            for (a, n) in ["a", "b", "c"].iter().zip(sizes) {
                cells.push(cell(&[s, a], n, n < 5));
            }
            cells.push(cell(&[s, "total"], sizes.iter().sum(), false));
        }
        for a in ["a", "b", "c", "total"] {
            cells.push(cell(&["total", a], 100, false));
        }
        protect(&mut cells).unwrap();
        let withheld: Vec<&Vec<String>> = cells.iter().filter(|c| c.withheld).map(|c| &c.labels).collect();
        assert!(withheld.len() >= 4, "{withheld:?}");
        // No withheld cell is determined by the lines.
        let lines = lines(&cells, &[]);
        let unknown: BTreeMap<usize, usize> = cells.iter().enumerate().filter(|(_, c)| c.withheld).enumerate().map(|(u, (i, _))| (i, u)).collect();
        let det = determined_sparse(&equations(&lines, &unknown), unknown.len());
        assert!(det.iter().all(|d| !d), "{withheld:?}");
    }

    /// Random three-dimensional tables with margins (like year × kommun × care type with
    /// many sparse cells): protection always succeeds and leaves no withheld cell derivable.
    #[test]
    fn sparse_three_dimensional_tables_can_always_be_protected() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..1000 {
            let (na, nb, nc) = (1 + next(3) as usize, 2 + next(5) as usize, 1 + next(3) as usize);
            // Sizes of the inner cells; zero means the cell does not exist.
            let mut size = BTreeMap::new();
            for a in 0..na {
                for b in 0..nb {
                    for c in 0..nc {
                        let n = match next(4) {
                            0 => 0,
                            1 => 1 + next(4) as i64,
                            _ => 1 + next(60) as i64,
                        };
                        if n > 0 {
                            size.insert((a, b, c), n);
                        }
                    }
                }
            }
            let label = |x: Option<usize>| x.map_or(TOTAL.to_string(), |x| x.to_string());
            let mut margins: BTreeMap<(Option<usize>, Option<usize>, Option<usize>), i64> = BTreeMap::new();
            for (&(a, b, c), &n) in &size {
                for ma in [Some(a), None] {
                    for mb in [Some(b), None] {
                        for mc in [Some(c), None] {
                            *margins.entry((ma, mb, mc)).or_default() += n;
                        }
                    }
                }
            }
            let mut cells: Vec<Cell> = margins
                .iter()
                .map(|(&(a, b, c), &n)| Cell {
                    labels: vec![label(a), label(b), label(c)],
                    size: n,
                    withheld: n < 5,
                    virtual_cell: false,
                    protect: n < 5,
                    small: n < 5,
                    slack: n > 5,
                    locked: false,
                    empty: false,
                })
                .collect();
            protect(&mut cells).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let unknown: BTreeMap<usize, usize> = cells.iter().enumerate().filter(|(_, c)| c.withheld).enumerate().map(|(u, (i, _))| (i, u)).collect();
            let det = determined_sparse(&equations(&lines(&cells, &[]), &unknown), unknown.len());
            for (&i, &u) in &unknown {
                assert!(!(det[u] && cells[i].protect), "round {round}: {:?} is derivable", cells[i].labels);
            }
        }
    }

    #[test]
    fn the_audit_finds_what_the_leaf_rule_misses() {
        // x1 + x2 = s1, x2 + x3 = s2, x1 + x3 = s3 determine all three.
        let eqs = vec![vec![1.0, 1.0, 0.0], vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 1.0]];
        assert_eq!(determined(&eqs, 3), vec![true, true, true]);
        let eqs = vec![vec![1.0, 1.0, 0.0], vec![0.0, 1.0, 1.0]];
        assert_eq!(determined(&eqs, 3), vec![false, false, false]);
        let eqs = vec![vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 1.0]];
        assert_eq!(determined(&eqs, 3), vec![false, false, true]);
    }
}
