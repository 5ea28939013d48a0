//! Spans and groups: a question's cells that are not lattice cells but are made of them.
//!
//! A *span* (several whole years, not the whole data period) is made of its years; a
//! *group* (a filter naming several values of a breakdown) of its values.
//!
//! A **group** is released only when every lattice cell it is made of is released (else
//! reason `part_withheld`): it is then the sum of released cells and tells nothing they do
//! not.
//!
//! A **span** may pool withheld years — that is what a longer period is for — but only as
//! a group of at least k: which spans one combination of breakdown values releases is
//! decided from its years alone ([`released_spans`]): a span holding no withheld year, or
//! at least two whose units together reach k and are not all small, is a candidate, and
//! candidates are dropped (shortest first) until together with the released years and the
//! whole period they determine no withheld year. Spans are then protected along the
//! question's breakdowns by secondary suppression, with their years beside them.
//!
//! A person counts once in a span, however many of its years they appear in, so for
//! person-based recipes a span also carries what its years do not: how many persons
//! appear in more than one. There the implied cells are checked too: between the span and
//! each of its released years, and between the span and every longer span (and the span
//! without its group) it lies in ([`super::implied`]).
//!
//! Every rule reads only the question's canonical form and the data, so a span is decided
//! the same way whoever asks and whenever.

use std::collections::{BTreeMap, HashMap};

use norrsken_model::answer::Reason;
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Unit;

use super::implied::{implied_small, same_cell};
use super::lattice::{label_slots, Decision, Key, Lattice, PeriodShape, Plan, Rules};
use super::primary::primary;
use super::secondary;
use super::DisclosureError;
use crate::engine::cells::{RawCell, TOTAL};

/// A cell of the question: its labels in the question's (canonical) breakdown order.
pub type QKey = (String, Vec<String>, Option<String>);

/// The lattice cells a question cell is made of (one for a lattice cell).
pub fn parts(plan: &Plan, region: &str, labels: &[String], category: &Option<String>) -> Vec<Key> {
    let q = &plan.question;
    let label_of = |b: Breakdown| q.breakdowns.iter().position(|x| *x == b).map(|i| labels[i].as_str());
    // Time: the block of the time breakdown's label, else the period's blocks.
    let times: Vec<Vec<String>> = match plan.time_breakdown.and_then(|b| label_of(b).filter(|l| *l != TOTAL).map(|l| (b, l))) {
        Some((b, l)) => vec![b.time_grain().and_then(|g| label_slots(g, l)).unwrap_or_default()],
        None => match &plan.period {
            PeriodShape::Full => vec![vec![]],
            PeriodShape::Block(s) => vec![s.clone()],
            PeriodShape::Span(a, b) => (*a..=*b).map(|y| vec![y.to_string()]).collect(),
        },
    };
    // Dimensions: the label, the fixed filter value, or each value of a group.
    let mut combos: Vec<Vec<String>> = vec![vec![]];
    for d in &plan.dims {
        // A breakdown's label, or (its total, or not broken down) the filter's values.
        let choices: Vec<String> = if let Some(l) = label_of(*d).filter(|l| *l != TOTAL) {
            vec![l.to_string()]
        } else if let Some(v) = plan.fixed.get(d) {
            vec![v.clone()]
        } else if let Some(g) = plan.groups.get(d) {
            g.iter().cloned().collect()
        } else {
            vec![TOTAL.to_string()]
        };
        combos = combos.into_iter().flat_map(|c| choices.iter().map(move |x| [c.clone(), vec![x.clone()]].concat())).collect();
    }
    let mut out = Vec::with_capacity(times.len() * combos.len());
    for t in &times {
        for c in &combos {
            let mut l = t.clone();
            l.resize(3, TOTAL.to_string());
            l.extend(c.iter().cloned());
            out.push((region.to_string(), l, category.clone()));
        }
    }
    out
}

/// The question cells a lattice cell is (none when it is not one of the question's; two
/// when the question breaks a one-year period down by year: the year and the total).
pub fn question_labels(plan: &Plan, key: &Key) -> Vec<Vec<String>> {
    let q = &plan.question;
    let labels = &key.1;
    let level = labels[..3].iter().take_while(|l| l.as_str() != TOTAL).count();
    // A span's question cells are derived, but for its time breakdown's blocks.
    let span_period;
    let period: &[String] = match (&plan.period, plan.period_slots()) {
        (_, Some(p)) => p,
        (PeriodShape::Span(a, b), None) => {
            let inside = labels[0].parse::<i32>().is_ok_and(|y| (*a..=*b).contains(&y));
            if plan.time_breakdown.is_none() || !plan.groups.is_empty() || !inside {
                return vec![];
            }
            span_period = vec![labels[0].clone()];
            &span_period
        }
        _ => return vec![],
    };
    let spanning = matches!(plan.period, PeriodShape::Span(..));
    if labels[level.min(3)..3].iter().any(|l| l != TOTAL) {
        return vec![];
    }
    let prefix = &labels[..level];
    // The labels of the time breakdown (if any) this cell can take.
    let mut times: Vec<Option<String>> = Vec::new();
    match plan.time_breakdown {
        Some(b) => {
            let tl = b.time_grain().map_or(0, |g| match g {
                norrsken_model::breakdown::TimeGrain::Year => 1,
                norrsken_model::breakdown::TimeGrain::Quarter => 2,
                norrsken_model::breakdown::TimeGrain::Month => 3,
            });
            if level == tl && prefix.len() >= period.len() && prefix[..period.len()] == *period {
                times.push(Some(prefix[tl - 1].clone()));
            }
            if prefix == period && !spanning {
                times.push(None);
            }
        }
        None if prefix == period => times.push(None),
        None => {}
    }
    if times.is_empty() {
        return vec![];
    }
    // The other breakdowns' labels; a fixed filter's value must match, and a breakdown
    // filtered to one value shows it both as the value and as the total.
    let mut by_dim: BTreeMap<Breakdown, Vec<String>> = BTreeMap::new();
    for (i, d) in plan.dims.iter().enumerate() {
        let l = &labels[3 + i];
        if let Some(v) = plan.fixed.get(d) {
            if l != v {
                return vec![];
            }
            by_dim.insert(*d, vec![v.clone(), TOTAL.to_string()]);
        } else {
            by_dim.insert(*d, vec![l.clone()]);
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for t in times {
        let mut combos: Vec<Vec<String>> = vec![vec![]];
        for b in &q.breakdowns {
            let options = if b.time_grain().is_some() { vec![t.clone().unwrap_or_else(|| TOTAL.to_string())] } else { by_dim.get(b).cloned().unwrap_or_else(|| vec![TOTAL.to_string()]) };
            combos = combos.into_iter().flat_map(|c| options.iter().map(move |o| [c.clone(), vec![o.clone()]].concat())).collect();
        }
        out.extend(combos);
    }
    out
}

/// What deciding a question's own cells needs.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub lattice: &'a Lattice,
    pub decided: &'a HashMap<Key, Decision>,
    /// The question's evaluation.
    pub cells: &'a [RawCell],
    /// The evaluations of [`Plan::partner_queries`], in order (person-based recipes).
    pub partners: &'a [Vec<RawCell>],
    pub unit: Unit,
}

/// The cells of a question with spans or groups: its evaluation's, the empty lattice cells
/// of its grid shown like small ones ([`Lattice::with_empty_siblings`]), and in every line
/// of spans or groups that holds a small one, the empty siblings shown alike.
pub fn question_cells(inputs: &Inputs<'_>, rules: &Rules<'_>) -> Vec<RawCell> {
    let plan = inputs.plan;
    let mut cells: HashMap<QKey, RawCell> = inputs.cells.iter().map(|c| ((c.region.clone(), c.labels.clone(), c.category.clone()), c.clone())).collect();
    for (key, c) in &inputs.lattice.cells {
        if super::lattice::is_empty(c) {
            for labels in question_labels(plan, key) {
                cells.entry((key.0.clone(), labels.clone(), key.2.clone())).or_insert_with(|| RawCell { labels, ..c.clone() });
            }
        }
    }
    // The values each breakdown of the question takes in its evaluation.
    let n = plan.question.breakdowns.len();
    let mut values: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); n];
    for (_, labels, _) in cells.keys() {
        for (i, l) in labels.iter().enumerate() {
            if l != TOTAL {
                values[i].insert(l.clone());
            }
        }
    }
    let small: Vec<QKey> = cells
        .iter()
        .filter(|(k, c)| parts(plan, &k.0, &k.1, &k.2).len() > 1 && primary(rules.kind, c, rules.policy, rules.k).contains(&Reason::BelowMinCell))
        .map(|(k, _)| k.clone())
        .collect();
    for (region, labels, category) in small {
        for i in 0..n {
            if labels[i] == TOTAL {
                continue;
            }
            let mut total = labels.clone();
            total[i] = TOTAL.to_string();
            if !cells.contains_key(&(region.clone(), total, category.clone())) {
                continue;
            }
            for v in &values[i] {
                let mut sibling = labels.clone();
                sibling[i] = v.clone();
                let key = (region.clone(), sibling.clone(), category.clone());
                if !cells.contains_key(&key) && !known_empty(&cells, rules.kind, &key) {
                    cells.insert(key, RawCell::empty(&region, sibling, category.clone()));
                }
            }
        }
    }
    let mut out: Vec<RawCell> = cells.into_values().collect();
    out.sort_by(|a, b| (&a.region, &a.labels, &a.category).cmp(&(&b.region, &b.labels, &b.category)));
    out
}

/// Whether the answer already shows the absent cell `key` empty: along one of its labels,
/// another cell holds all the units of the line's total.
fn known_empty(cells: &HashMap<QKey, RawCell>, kind: norrsken_model::catalog::Kind, key: &QKey) -> bool {
    let (region, labels, category) = key;
    (0..labels.len()).filter(|&j| labels[j] != TOTAL).any(|j| {
        let mut t = labels.clone();
        t[j] = TOTAL.to_string();
        let Some(total) = cells.get(&(region.clone(), t, category.clone())) else { return false };
        cells.iter().any(|((r, l, c), cell)| {
            r == region && c == category && l[j] != labels[j] && l[j] != TOTAL && (0..l.len()).all(|i| i == j || l[i] == labels[i]) && same_cell(kind, total, cell)
        })
    })
}

/// Decides the cells of a question with spans or groups (`inputs.cells` as given by
/// [`question_cells`]).
pub fn decide(inputs: &Inputs<'_>, rules: &Rules<'_>, forced: &HashMap<QKey, Decision>) -> Result<HashMap<QKey, Decision>, DisclosureError> {
    let plan = inputs.plan;
    let persons = inputs.unit == Unit::Person;
    let raw: HashMap<QKey, &RawCell> = inputs.cells.iter().map(|c| ((c.region.clone(), c.labels.clone(), c.category.clone()), c)).collect();
    let partners: Vec<HashMap<QKey, &RawCell>> =
        inputs.partners.iter().map(|t| t.iter().map(|c| ((c.region.clone(), c.labels.clone(), c.category.clone()), c)).collect()).collect();
    let mut decided: HashMap<QKey, Decision> = HashMap::new();
    let mut atoms: HashMap<QKey, bool> = HashMap::new();
    // The spans each combination of breakdown values may release.
    let mut spans: HashMap<(String, Vec<String>, Option<String>), std::collections::BTreeSet<(i32, i32)>> = HashMap::new();
    let mut keys: Vec<&QKey> = raw.keys().collect();
    keys.sort();
    for key in keys {
        let c = raw[key];
        let ps = parts(plan, &key.0, &key.1, &key.2);
        if ps.len() == 1 {
            // A lattice cell under its question's name.
            let d = inputs.decided.get(&ps[0]).cloned().unwrap_or_default();
            decided.insert(key.clone(), d);
            atoms.insert(key.clone(), true);
            continue;
        }
        if super::lattice::is_empty(c) {
            decided.insert(key.clone(), Decision { withheld: true, reasons: std::collections::BTreeSet::from([Reason::BelowMinCell]) });
            atoms.insert(key.clone(), false);
            continue;
        }
        let mut reasons = primary(rules.kind, c, rules.policy, rules.k);
        let mut withheld = !reasons.is_empty();
        if let Some(f) = forced.get(key).filter(|f| f.withheld) {
            withheld = true;
            reasons.extend(f.reasons.iter().copied());
        }
        // A span of years without groups may pool withheld years (see `spans`); any other
        // derived cell needs all its parts released.
        let pooled_span = match (&plan.period, plan.groups.is_empty(), span_of(plan, key)) {
            (PeriodShape::Span(..), true, Some((a, b))) => Some(spans.entry((key.0.clone(), ps[0].1[3..].to_vec(), key.2.clone())).or_insert_with(|| {
                released_spans(inputs, rules, &key.0, &ps[0].1[3..], &key.2)
            }).contains(&(a, b))),
            _ => None,
        };
        match pooled_span {
            Some(true) => {}
            Some(false) => {
                withheld = true;
                reasons.insert(Reason::PartWithheld);
            }
            None => {
                if ps.iter().any(|p| inputs.decided.get(p).is_some_and(|d| d.withheld)) {
                    withheld = true;
                    reasons.insert(Reason::PartWithheld);
                }
            }
        }
        for p in &ps {
            if persons && !inputs.decided.get(p).is_some_and(|d| d.withheld) {
                if let Some(part) = inputs.lattice.cells.get(p) {
                    if implied_small(rules.kind, c, part, rules.k) {
                        withheld = true;
                        reasons.insert(Reason::Implied);
                    }
                }
            }
        }
        if persons {
            // The larger cells: longer spans and the span without a group (evaluated), the
            // whole period and a block without a group (lattice cells).
            for p in &partners {
                if let Some(larger) = p.get(key) {
                    if implied_small(rules.kind, larger, c, rules.k) {
                        withheld = true;
                        reasons.insert(Reason::Implied);
                    }
                }
            }
            for larger in lattice_supersets(plan, key) {
                if let Some(l) = inputs.lattice.cells.get(&larger) {
                    let larger_withheld = inputs.decided.get(&larger).is_some_and(|d| d.withheld);
                    if !larger_withheld && implied_small(rules.kind, l, c, rules.k) {
                        withheld = true;
                        reasons.insert(Reason::Implied);
                    } else if larger_withheld && same_cell(rules.kind, l, c) {
                        withheld = true;
                        reasons.insert(Reason::Secondary);
                    }
                }
            }
        }
        decided.insert(key.clone(), Decision { withheld, reasons });
        atoms.insert(key.clone(), false);
    }
    secondary_over_derived(inputs, rules, &raw, &atoms, &mut decided)?;
    Ok(decided)
}

/// The years a question cell covers when it is a span total (its time label `total`, or no
/// time breakdown).
fn span_of(plan: &Plan, key: &QKey) -> Option<(i32, i32)> {
    let PeriodShape::Span(a, b) = plan.period else { return None };
    let time_total = match plan.time_breakdown {
        Some(tb) => plan.question.breakdowns.iter().position(|x| *x == tb).is_some_and(|i| key.1[i] == TOTAL),
        None => true,
    };
    time_total.then_some((a, b))
}

/// Which spans of several years (not the whole period) one combination of breakdown values
/// releases, decided from its years alone (so the same whoever asks, whichever span):
///
/// - a span whose years are all released is a candidate; so is one holding at least two
///   withheld years (of people: empty years shown like small ones do not count) that
///   together hold at least k units and are not all small — it then shows their sum, a
///   group of at least k, and no single year;
/// - together the candidates, the whole period (when released) and the released years may
///   not determine any withheld year, nor (two nested candidates) leave a difference of one
///   withheld year, of withheld years holding 1..k-1 units or of only small ones: the
///   shortest candidate (then the earliest) is dropped until none does.
fn released_spans(inputs: &Inputs<'_>, rules: &Rules<'_>, region: &str, dims: &[String], category: &Option<String>) -> std::collections::BTreeSet<(i32, i32)> {
    let (first, last) = inputs.plan.data_years;
    let key = |time: &str| -> Key {
        let mut l = vec![time.to_string(), TOTAL.to_string(), TOTAL.to_string()];
        l.extend(dims.iter().cloned());
        (region.to_string(), l, category.clone())
    };
    // Per year: withheld (and holding someone), small, units.
    let mut withheld: std::collections::BTreeMap<i32, (bool, i64)> = std::collections::BTreeMap::new();
    for y in first..=last {
        let k = key(&y.to_string());
        let (Some(c), Some(d)) = (inputs.lattice.cells.get(&k), inputs.decided.get(&k)) else { continue };
        if d.withheld && !super::lattice::is_empty(c) {
            withheld.insert(y, (d.reasons.contains(&Reason::BelowMinCell), c.units));
        }
    }
    let whole_released = !inputs.decided.get(&key(TOTAL)).is_some_and(|d| d.withheld) && inputs.lattice.cells.contains_key(&key(TOTAL));
    let k = rules.k as i64;
    let part = |a: i32, b: i32| -> Vec<i32> { withheld.keys().copied().filter(|y| (a..=b).contains(y)).collect() };
    let acceptable = |w: &[i32]| -> bool {
        w.is_empty() || (w.len() >= 2 && w.iter().map(|y| withheld[y].1).sum::<i64>() >= k && !w.iter().all(|y| withheld[y].0))
    };
    let mut candidates: Vec<(i32, i32)> = Vec::new();
    for a in first..=last {
        for b in a + 1..=last {
            if (a, b) != (first, last) && acceptable(&part(a, b)) {
                candidates.push((a, b));
            }
        }
    }
    // Drop order: shortest first, then earliest.
    candidates.sort_by_key(|&(a, b)| (std::cmp::Reverse(b - a), std::cmp::Reverse(a)));
    let unknowns: Vec<i32> = withheld.keys().copied().collect();
    loop {
        let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
        let row = |w: &[i32]| -> Vec<(usize, f64)> { w.iter().filter_map(|y| unknowns.iter().position(|u| u == y)).map(|i| (i, 1.0)).collect() };
        for &(a, b) in &candidates {
            let r = row(&part(a, b));
            if !r.is_empty() {
                rows.push(r);
            }
        }
        if whole_released {
            let r = row(&unknowns);
            if !r.is_empty() {
                rows.push(r);
            }
        }
        let determined = super::secondary::determined_sparse(&rows, unknowns.len()).into_iter().any(|d| d);
        // Nested candidates (and the whole period) whose difference is not acceptable.
        let mut bad_pair = None;
        let mut wider: Vec<(i32, i32)> = candidates.clone();
        if whole_released {
            wider.push((first, last));
        }
        'pairs: for &(a, b) in candidates.iter().rev() {
            for &(c, d) in &wider {
                if (c, d) != (a, b) && c <= a && b <= d {
                    let (inner, outer) = (part(a, b), part(c, d));
                    let diff: Vec<i32> = outer.into_iter().filter(|y| !inner.contains(y)).collect();
                    if !acceptable(&diff) {
                        bad_pair = Some((a, b));
                        break 'pairs;
                    }
                }
            }
        }
        if !determined && bad_pair.is_none() {
            break;
        }
        // Drop the shortest (then earliest) candidate holding a withheld year, or the inner
        // span of the bad pair.
        let drop = bad_pair.or_else(|| candidates.iter().rev().find(|(a, b)| !part(*a, *b).is_empty()).copied());
        match drop {
            Some(d) => candidates.retain(|c| *c != d),
            None => break,
        }
    }
    candidates.into_iter().collect()
}

/// The lattice cells a derived cell lies in without being made of them: with a span and no
/// group, the whole data period; with groups and a block or the whole period, the cell
/// without each group (when no other group remains).
fn lattice_supersets(plan: &Plan, key: &QKey) -> Vec<Key> {
    let mut out = Vec::new();
    let single = |plan: &Plan| -> Option<Key> {
        let ps = parts(plan, &key.0, &key.1, &key.2);
        (ps.len() == 1).then(|| ps[0].clone())
    };
    if matches!(plan.period, PeriodShape::Span(..)) && plan.groups.is_empty() {
        let mut whole = plan.clone();
        whole.period = PeriodShape::Full;
        out.extend(single(&whole));
    }
    if !matches!(plan.period, PeriodShape::Span(..)) && plan.groups.len() == 1 {
        let mut without = plan.clone();
        if let Some(d) = without.groups.keys().next().copied() {
            without.groups.clear();
            // The group's breakdown summed over.
            without.fixed.remove(&d);
            let ps = parts(&without, &key.0, &key.1, &key.2);
            if ps.len() == 1 {
                out.push(ps[0].clone());
            }
        }
    }
    out
}

/// Secondary suppression over the derived cells of one question, coarsest first along the
/// question's breakdowns, lattice cells locked: a span or group withheld cannot be computed
/// from the released ones beside it.
fn secondary_over_derived(
    inputs: &Inputs<'_>,
    rules: &Rules<'_>,
    raw: &HashMap<QKey, &RawCell>,
    atoms: &HashMap<QKey, bool>,
    decided: &mut HashMap<QKey, Decision>,
) -> Result<(), DisclosureError> {
    let plan = inputs.plan;
    // A span total without a time breakdown gets its years beside it (a leading time label),
    // so that "the span is the sum of its years" is a line too.
    // (Events only: a person counts once in a span, so a span is not the sum of its years.)
    let extend = matches!(plan.period, PeriodShape::Span(..)) && plan.time_breakdown.is_none() && plan.groups.is_empty() && inputs.unit == Unit::Event;
    let ext = |k: &QKey, t: &str| -> QKey {
        if extend {
            (k.0.clone(), [vec![t.to_string()], k.1.clone()].concat(), k.2.clone())
        } else {
            k.clone()
        }
    };
    let mut owned: HashMap<QKey, RawCell> = HashMap::new();
    let mut status: HashMap<QKey, Decision> = HashMap::new();
    let mut atom: HashMap<QKey, bool> = HashMap::new();
    for (k, c) in raw {
        let e = ext(k, TOTAL);
        owned.insert(e.clone(), RawCell { labels: e.1.clone(), ..(*c).clone() });
        status.insert(e.clone(), decided.get(k).cloned().unwrap_or_default());
        atom.insert(e, atoms.get(k).copied().unwrap_or(true));
    }
    if let (true, PeriodShape::Span(a, b)) = (extend, &plan.period) {
        for y in *a..=*b {
            let mut year = plan.clone();
            year.period = PeriodShape::Block(vec![y.to_string()]);
            for (lk, c) in &inputs.lattice.cells {
                for labels in question_labels(&year, lk) {
                    let e = (lk.0.clone(), [vec![y.to_string()], labels].concat(), lk.2.clone());
                    owned.insert(e.clone(), RawCell { labels: e.1.clone(), ..c.clone() });
                    status.insert(e.clone(), inputs.decided.get(lk).cloned().unwrap_or_default());
                    atom.insert(e, true);
                }
            }
        }
    }
    let mask = |labels: &[String]| labels.iter().enumerate().filter(|(_, l)| l.as_str() != TOTAL).fold(0u32, |m, (i, _)| m | (1 << i));
    let mut shapes: BTreeMap<(String, u32, u32), Vec<&QKey>> = BTreeMap::new();
    for (k, a) in &atom {
        if !a {
            let m = mask(&k.1);
            shapes.entry((k.0.clone(), m.count_ones(), m)).or_default().push(k);
        }
    }
    for ((region, _, m), mut interior) in shapes {
        interior.sort();
        // Locked: every lattice cell, and the derived cells of coarser shapes.
        let mut keys: Vec<(&QKey, bool)> = owned
            .keys()
            .filter(|k| k.0 == region && (atom[*k] || { let km = mask(&k.1); (km & !m) == 0 && km != m }))
            .map(|k| (k, true))
            .collect();
        keys.sort();
        keys.extend(interior.iter().map(|k| (*k, false)));
        // With the years beside it, a span whose years are all released is their sum,
        // known: it cannot be withheld to protect anything.
        let known = |k: &QKey| {
            extend && {
                let q: QKey = (k.0.clone(), k.1[1..].to_vec(), k.2.clone());
                let ps = parts(plan, &q.0, &q.1, &q.2);
                ps.len() > 1 && ps.iter().all(|p| !inputs.decided.get(p).is_some_and(|d| d.withheld))
            }
        };
        let (mut cells, index) = super::lattice::suppression_cells_with(&keys, &owned, &status, rules.distribution, rules.k, known);
        // For persons, no lines along time (a span is not the sum of its years).
        let time = if extend { Some(0) } else { plan.time_breakdown.and_then(|tb| plan.question.breakdowns.iter().position(|b| *b == tb)) };
        let additive: Vec<bool> = (0..cells.first().map_or(0, |c| c.labels.len())).map(|i| Some(i) != time || !rules.persons).collect();
        secondary::protect_along(&mut cells, &additive).map_err(|e| DisclosureError(format!("region {region}: {e}")))?;
        for (i, key) in index.iter().enumerate() {
            if keys[i].1 || !cells[i].withheld {
                continue;
            }
            if let Some(d) = status.get_mut(key) {
                if !d.withheld {
                    d.withheld = true;
                    d.reasons.insert(Reason::Secondary);
                }
            }
        }
    }
    // Back to the question's labels.
    for (k, d) in decided.iter_mut() {
        if let Some(x) = status.get(&ext(k, TOTAL)) {
            *d = x.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::{IndicatorQuery, ValidatedQuery};

    fn plan(json: &str) -> Plan {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        let v: ValidatedQuery = q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap();
        Plan::of(&super::super::canonical::Canonical::of(&v).query, (2021, 2025)).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_span_is_made_of_its_years_and_a_group_of_its_values() {
        let p = plan(r#"{"indicator":"stroke_admissions","breakdowns":["sex"],"period":"2023..2024","filters":{"age_band":["65-79","80+"]}}"#);
        let ps = parts(&p, "24", &s(&["female"]), &None);
        // Dimensions in canonical order: sex, age_band.
        assert_eq!(ps.len(), 4);
        assert!(ps.contains(&("24".into(), s(&["2023", "total", "total", "female", "80+"]), None)));
        // A year of a year breakdown over a span is a lattice cell.
        let p = plan(r#"{"indicator":"stroke_admissions","breakdowns":["year"],"period":"2022..2024"}"#);
        assert_eq!(parts(&p, "24", &s(&["2023"]), &None), vec![("24".to_string(), s(&["2023", "total", "total"]), None)]);
        assert_eq!(parts(&p, "24", &s(&["total"]), &None).len(), 3);
    }

    #[test]
    fn lattice_cells_map_back_to_the_question() {
        let p = plan(r#"{"indicator":"stroke_admissions","breakdowns":["quarter","sex"],"period":"2024","filters":{"education":["primary"]}}"#);
        let key = |l: &[&str]| ("24".to_string(), s(l), None);
        // Dimensions: sex, education (fixed to primary).
        assert_eq!(question_labels(&p, &key(&["2024", "2024Q3", "total", "male", "primary"])), vec![s(&["2024Q3", "male"])]);
        assert_eq!(question_labels(&p, &key(&["2024", "total", "total", "total", "primary"])), vec![s(&["total", "total"])]);
        assert!(question_labels(&p, &key(&["2024", "2024Q3", "total", "male", "tertiary"])).is_empty(), "another education");
        assert!(question_labels(&p, &key(&["2023", "2023Q3", "total", "male", "primary"])).is_empty(), "another year");
        assert!(question_labels(&p, &key(&["total", "total", "total", "male", "primary"])).is_empty(), "the whole period");
        // A one-year period broken down by year: the year is also the total.
        let p = plan(r#"{"indicator":"stroke_admissions","breakdowns":["year"],"period":"2024"}"#);
        assert_eq!(question_labels(&p, &key(&["2024", "total", "total"])), vec![s(&["2024"]), s(&["total"])]);
    }

    /// Which spans pool withheld years: a span with no withheld year, or with two or more
    /// holding k units together that are not all small; never one that, with the others,
    /// would give a withheld year away.
    #[test]
    fn spans_pool_withheld_years_only_as_groups_that_cannot_be_split() {
        let p = plan(r#"{"indicator":"stroke_admissions","period":"2022..2024"}"#);
        let policy = super::super::policy::Policy::development(None);
        let rules = Rules { kind: norrsken_model::catalog::Kind::Count, distribution: false, policy: &policy, k: 5, persons: false };
        // Years: 2021 40 released, 2022 3 (small), 2023 8 (withheld beside it), 2024 30,
        // 2025 25; the whole period released.
        let mut lattice = Lattice::default();
        let mut decided = HashMap::new();
        let year = |y: &str| -> Key { ("24".to_string(), s(&[y, "total", "total"]), None) };
        for (y, units, withheld, small) in [("2021", 40, false, false), ("2022", 3, true, true), ("2023", 8, true, false), ("2024", 30, false, false), ("2025", 25, false, false), ("total", 106, false, false)] {
            let mut c = RawCell::empty("24", s(&[y, "total", "total"]), None);
            (c.units, c.persons) = (units, units);
            lattice.cells.insert(year(y), c);
            let reasons = if small { [Reason::BelowMinCell].into() } else if withheld { [Reason::Secondary].into() } else { Default::default() };
            decided.insert(year(y), Decision { withheld, reasons });
        }
        let inputs = Inputs { plan: &p, lattice: &lattice, decided: &decided, cells: &[], partners: &[], unit: Unit::Event };
        let spans = released_spans(&inputs, &rules, "24", &[], &None);
        // No withheld year: released.
        assert!(spans.contains(&(2024, 2025)));
        // Both withheld years (11 units, not all small): released as a group.
        assert!(spans.contains(&(2021, 2023)) && spans.contains(&(2022, 2024)) && spans.contains(&(2022, 2025)));
        // One withheld year alone: never.
        for one in [(2021, 2022), (2023, 2024), (2023, 2025)] {
            assert!(!spans.contains(&one), "{one:?} would give a withheld year away: {spans:?}");
        }
        // And no two released spans differ by exactly one withheld year (2021..2023 and
        // 2022..2023 would give 2021 — released, so fine; 2021..2024 less 2021..2023 is 2024).
        for a in &spans {
            for b in &spans {
                if b.0 <= a.0 && a.1 <= b.1 && a != b {
                    let diff: Vec<i32> = (b.0..=b.1).filter(|y| !(a.0..=a.1).contains(y) && [2022, 2023].contains(y)).collect();
                    assert_ne!(diff.len(), 1, "{a:?} inside {b:?} gives {diff:?} away");
                }
            }
        }
    }
}
