//! Disclosure control against an adaptive analyst: each class of attack that worked before
//! the cell key method covered every component, the canonical form, the dry-run ladder and
//! the release ledger, tried again; and a property test in which an attacker who knows the
//! rules and the perturbation's maximum deviation D solves everything released as interval
//! constraints (linear programming over the base cells) and must pin no count of 1..k-1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOutcome};
use norrsken_agent::disclosure::boxes::{CellBox, CellId, Space, ValueSet};
use norrsken_agent::engine::EngineOptions;
use norrsken_agent::node::AgentNode;
use norrsken_agent::disclosure::policy::Policy;
use norrsken_model::answer::{CellStatus, Reason, RegionAnswer, ReleasedCell};
use norrsken_model::catalog::Kind;
use norrsken_common::error::NodeError;
use norrsken_model::query::{IndicatorQuery, Relay, ValidatedQuery};
use norrsken_synth::rng::Rng;
use norrsken_synth::{generate, SynthOptions};

use crate::attacks::{ask, key_raw, key_rel, node, node_with_ledger, perturbing_policy, relay, truth, validate, with, Key};
use crate::federation::query;
use crate::fixtures::{client_as, federation, fetch, region_dir, TempDir};

const K: i64 = 5;
const D: f64 = 2.0;

/// What an attacker knows of one box: its value lies in [low, high].
#[derive(Debug, Clone, Copy)]
struct Bound {
    low: f64,
    high: f64,
}

/// Everything released so far, as interval constraints on boxes of one recipe's space.
struct Attacker {
    space: Space,
    known: BTreeMap<CellBox, Bound>,
}

impl Attacker {
    fn new(space: Space) -> Attacker {
        Attacker { space, known: BTreeMap::new() }
    }

    fn learn(&mut self, b: CellBox, low: f64, high: f64) {
        let e = self.known.entry(b).or_insert(Bound { low: 0.0, high: f64::INFINITY });
        e.low = e.low.max(low);
        e.high = e.high.min(high);
    }

    /// Reads one answer as the attacker does: released counts within ±D of the truth (and at
    /// least k, since released cells passed the minimum cell size), reason codes as bounds,
    /// cells of the question's grid missing from the answer as zeros.
    fn read(&mut self, q: &ValidatedQuery, answer: &RegionAnswer, value: impl Fn(&ReleasedCell) -> Option<i64>) {
        let k = answer.meta.min_cell_size as f64;
        let mut present = Vec::new();
        for c in &answer.cells {
            let id = CellId { labels: c.labels.clone(), category: c.category.clone() };
            let b = self.space.cell_box(q, &id).unwrap();
            if !c.labels.iter().any(|l| l == "total") {
                present.push(id);
            }
            match c.status {
                CellStatus::Suppressed => {
                    if c.reasons.contains(&Reason::BelowMinCell) {
                        // Fewer than k persons, possibly none: an answer shows the empty
                        // cells beside a small one like the small one.
                        self.learn(b, 0.0, f64::INFINITY);
                    } else if c.reasons.iter().all(|r| matches!(r, Reason::Secondary | Reason::Implied | Reason::PartWithheld)) {
                        // Not small: at least k persons, so at least k units.
                        self.learn(b, k, f64::INFINITY);
                    } else {
                        self.learn(b, 1.0, f64::INFINITY);
                    }
                }
                CellStatus::Released if !answer.meta.dry_run => {
                    let v = value(c).unwrap() as f64;
                    self.learn(b, v.max(k), v);
                }
                CellStatus::Perturbed if !answer.meta.dry_run => {
                    let v = value(c).unwrap() as f64;
                    self.learn(b, (v - D).max(k), v + D);
                }
                _ => self.learn(b, k, f64::INFINITY),
            }
        }
        if answer.meta.dry_run {
            return;
        }
        // Only the cells an answer lists hold anyone.
        for z in self.space.zero_boxes(q, &present).unwrap() {
            self.learn(z, 0.0, 0.0);
        }
    }

    /// The smallest and largest value of `target` over everything known (a linear program
    /// over the base cells), or None when the constraints contradict each other.
    fn range(&self, target: &CellBox) -> Option<(f64, f64)> {
        let boxes: Vec<&CellBox> = self.known.keys().chain(std::iter::once(target)).collect();
        let dims = self.space.dimensions();
        // Classes of values per dimension: values named by exactly the same boxes.
        let mut class_of: Vec<BTreeMap<u32, usize>> = Vec::new();
        let mut counts = Vec::new();
        for d in 0..dims {
            let mut sig: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            let mut any_all = false;
            for (i, b) in boxes.iter().enumerate() {
                match &b.0[d] {
                    ValueSet::All => any_all = true,
                    ValueSet::Some(v) => v.iter().for_each(|x| sig.entry(*x).or_default().push(i)),
                }
            }
            let mut ids: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
            let mut map = BTreeMap::new();
            for (v, s) in sig {
                let n = ids.len();
                map.insert(v, *ids.entry(s).or_insert(n));
            }
            counts.push(ids.len() + usize::from(any_all || ids.is_empty()));
            class_of.push(map);
        }
        let atoms: usize = counts.iter().product();
        assert!(atoms <= 20_000, "the attacker's problem grew to {atoms} base cells");
        let members = |b: &CellBox| -> Vec<usize> {
            let mut out = vec![0usize];
            for d in 0..dims {
                let cs: Vec<usize> = match &b.0[d] {
                    ValueSet::All => (0..counts[d]).collect(),
                    ValueSet::Some(v) => v.iter().map(|x| class_of[d][x]).collect::<BTreeSet<_>>().into_iter().collect(),
                };
                let radix = counts[d];
                out = out.iter().flat_map(|base| cs.iter().map(move |c| base * radix + c)).collect();
            }
            out
        };
        let solve = |direction: OptimizationDirection| -> Option<f64> {
            let mut p = Problem::new(direction);
            let target_atoms: BTreeSet<usize> = members(target).into_iter().collect();
            let vars: Vec<microlp::Variable> = (0..atoms).map(|a| p.add_var(if target_atoms.contains(&a) { 1.0 } else { 0.0 }, (0.0, f64::INFINITY))).collect();
            for (b, bound) in &self.known {
                let expr: Vec<(microlp::Variable, f64)> = members(b).into_iter().map(|a| (vars[a], 1.0)).collect();
                if bound.high.is_finite() && bound.high == bound.low {
                    p.add_constraint(expr, ComparisonOp::Eq, bound.low);
                    continue;
                }
                if bound.low > 0.0 {
                    p.add_constraint(expr.clone(), ComparisonOp::Ge, bound.low);
                }
                if bound.high.is_finite() {
                    p.add_constraint(expr, ComparisonOp::Le, bound.high);
                }
            }
            match p.solve() {
                Ok(SolveOutcome::Solution(s)) => Some(s.objective()),
                Ok(SolveOutcome::Interrupted(_)) => None,
                Err(microlp::Error::Unbounded) => Some(f64::INFINITY),
                Err(_) => None,
            }
        };
        Some((solve(OptimizationDirection::Minimize)?, solve(OptimizationDirection::Maximize)?))
    }

    /// Whether everything known pins `target` to one integer.
    fn pins(&self, target: &CellBox) -> Option<i64> {
        let (low, high) = self.range(target).expect("what was released is consistent with the truth, so the constraints hold together");
        let (lo, hi) = ((low - 1e-6).ceil(), (high + 1e-6).floor());
        (hi.is_finite() && lo == hi).then_some(lo as i64)
    }
}

/// The released count of a cell for an attack on counts (units: events or persons).
fn units(kind: Kind) -> impl Fn(&ReleasedCell) -> Option<i64> {
    move |c| match kind {
        // Counts and cost sums carry their units (events, contacts) as numerator.
        Kind::Count | Kind::CostSum => c.numerator,
        _ => c.denominator,
    }
}

fn true_units(node_truth: &norrsken_agent::engine::CellTable) -> BTreeMap<Key, i64> {
    node_truth.cells.iter().map(|c| (key_raw(c), c.units)).collect()
}

/// Class 1: margins minus cells with reason-code bounds, for every kind. Every count and n
/// is perturbed, sums too; the sum of squares does not leave; an attacker solving the
/// margins and reason codes of one answer pins no withheld unit count of 1..k-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn margins_and_reason_codes_pin_no_small_count_of_any_kind() {
    let tmp = TempDir::new("class1");
    let agent = node("jamtland", "23", perturbing_policy(&tmp)).await;
    let (mut small_withheld, mut differs, mut shown) = (0, 0, 0);
    for (indicator, by) in [
        ("stroke_reperfusion", vec!["sex", "age_band"]),
        ("hf_hospitalisation_rate", vec!["age_band", "sex"]),
        ("stroke_admissions", vec!["kommun", "sex"]),
        ("diabetes_hba1c_mean", vec!["kommun", "sex"]),
        ("kpp_cost", vec!["care_type", "kommun"]),
    ] {
        let q = with(query(indicator, &by, "2021..2025"), |o| o.totals = true);
        let v = validate(&q);
        let answer = ask(&agent, &q).await.unwrap();
        let t = truth(&agent, &q).await;
        let exact = true_units(&t);
        let kind = v.recipe.kind;
        // Nothing exact: every released count, n and sum differs from the truth somewhere,
        // and no released value is the sum of squares.
        let released: Vec<&ReleasedCell> = answer.cells.iter().filter(|c| c.status != CellStatus::Suppressed).collect();
        assert!(!released.is_empty(), "{indicator}: nothing released: {:?}", answer.cells);
        assert!(released.iter().all(|c| c.status == CellStatus::Perturbed), "{indicator}: a cell released exactly");
        differs += released.iter().filter(|c| units(kind)(c) != Some(exact[&key_rel(c)])).count();
        shown += released.len();
        if matches!(kind, Kind::Mean | Kind::CostSum) {
            let raw: BTreeMap<Key, f64> = t.cells.iter().map(|c| (key_raw(c), c.value_sum)).collect();
            for c in &released {
                let s = c.value_sum.unwrap();
                assert!((s - raw[&key_rel(c)]).abs() > 1e-9, "{indicator} {:?}: the sum left exactly", c.labels);
                assert!(c.value_sd.is_some(), "{indicator}: a mean's spread is released instead of its sum of squares");
            }
        }
        assert!(answer.schema().field_with_name("value_sum_sq").is_err(), "no sum of squares in the answer");
        let mut attacker = Attacker::new(Space::of(&v.recipe));
        attacker.read(&v, &answer, units(kind));
        for c in answer.cells.iter().filter(|c| c.status == CellStatus::Suppressed) {
            let n = exact.get(&key_rel(c)).copied().unwrap_or(0);
            if (1..K).contains(&n) {
                small_withheld += 1;
                let b = attacker.space.cell_box(&v, &CellId { labels: c.labels.clone(), category: c.category.clone() }).unwrap();
                assert_eq!(attacker.pins(&b), None, "{indicator} {:?}: the count {n} is pinned", c.labels);
            }
        }
    }
    assert!(small_withheld > 10, "the tables must hold small withheld cells to mean anything ({small_withheld})");
    // The noise is zero for some cells (by the perturbation table, about two in five).
    assert!(differs * 3 >= shown, "only {differs} of {shown} released counts differ from the truth");
}

/// The attacker has teeth: given exact margins and cells (as an agent releasing a kind
/// exactly would give), it pins the withheld part.
#[test]
fn the_attacker_pins_what_exact_values_give_away() {
    let v = validate(&query("stroke_admissions", &["sex"], "2024"));
    let mut attacker = Attacker::new(Space::of(&v.recipe));
    let cell = |labels: &[&str]| attacker.space.cell_box(&v, &CellId { labels: labels.iter().map(|s| s.to_string()).collect(), category: None }).unwrap();
    let (total, female, male) = (cell(&["total"]), cell(&["female"]), cell(&["male"]));
    let others: Vec<CellBox> = norrsken_model::cdm::SEXES.iter().filter(|s| !["female", "male"].contains(s)).map(|s| cell(&[s])).collect();
    attacker.learn(total.clone(), 23.0, 23.0);
    attacker.learn(female.clone(), 20.0, 20.0);
    attacker.learn(male.clone(), 1.0, 4.0);
    for o in others {
        attacker.learn(o, 0.0, 0.0);
    }
    assert_eq!(attacker.pins(&male), Some(3), "exact: total minus female");
    // Perturbed by up to D, the same release leaves a range.
    let mut noisy = Attacker::new(Space::of(&v.recipe));
    noisy.known = attacker.known.clone();
    noisy.learn(total.clone(), 21.0, 25.0);
    noisy.known.insert(total, Bound { low: 21.0, high: 25.0 });
    noisy.known.insert(female, Bound { low: 18.0, high: 22.0 });
    assert_eq!(noisy.pins(&male), None);
}

/// Class 2: the same table in every spelling (breakdown order, a filter that keeps every
/// value, the period in quarters or months) gets the same cells with the same decisions
/// and values; the union of the spellings releases nothing one spelling withholds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_question_gets_the_same_cells() {
    let tmp = TempDir::new("class2");
    let agent = node("norrbotten", "25", perturbing_policy(&tmp)).await;
    let everyone: Vec<String> = ["primary", "secondary", "tertiary", "unknown"].map(String::from).to_vec();
    let base = with(query("stroke_admissions", &["sex", "age_band"], "2023..2024"), |o| o.totals = true);
    let spellings = vec![
        base.clone(),
        with(query("stroke_admissions", &["age_band", "sex"], "2023..2024"), |o| o.totals = true),
        IndicatorQuery { filters: [("education".to_string(), everyone.clone())].into(), ..base.clone() },
        IndicatorQuery { period: "2023Q1..2024Q4".into(), ..base.clone() },
        IndicatorQuery { period: "2023-01..2024-12".into(), ..base.clone() },
        with(query("stroke_admissions", &["age_band", "sex"], "2023Q1..2024Q4"), |o| o.totals = true),
    ];
    // Cells keyed by (sex, age band), whatever the order of the breakdowns.
    let mut seen: BTreeMap<(String, String), BTreeSet<(&'static str, Option<i64>)>> = BTreeMap::new();
    for (i, q) in spellings.iter().enumerate() {
        let answer = ask(&agent, &with(q.clone(), |o| o.no_cache = true)).await.unwrap();
        let sex_first = q.breakdowns[0] == "sex";
        for c in &answer.cells {
            let key = if sex_first { (c.labels[0].clone(), c.labels[1].clone()) } else { (c.labels[1].clone(), c.labels[0].clone()) };
            seen.entry(key).or_default().insert((c.status.name(), c.numerator));
        }
        assert!(!answer.cells.is_empty(), "spelling {i}");
    }
    let withheld = seen.values().filter(|s| s.iter().any(|(st, _)| *st == "suppressed")).count();
    assert!(withheld > 0, "the table must withhold cells to mean anything");
    for (cell, outcomes) in &seen {
        assert_eq!(outcomes.len(), 1, "cell {cell:?} differs between spellings: {outcomes:?}");
    }
}

/// Class 3: two questions whose populations differ by one filter value (every education
/// level, and all but one), for means and cost sums: when the level left out holds 1..k-1
/// persons, one of the two is withheld (the group of the other levels holds the level
/// withheld beside the small one), whether the kind is perturbed or released exactly, so
/// their difference is never released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_filtered_questions_never_releases_a_small_group() {
    let tmp = TempDir::new("class3");
    let levels = ["primary", "secondary", "tertiary", "unknown"];
    let mut small_groups = 0;
    for exact in [false, true] {
        let mut policy = perturbing_policy(&tmp);
        if exact {
            policy.perturbation.exact = vec![Kind::Mean, Kind::CostSum];
        }
        let agent = node("jamtland", "23", policy).await;
        for indicator in ["diabetes_hba1c_mean", "kpp_cost"] {
            for kommun in ["2303", "2305", "2309", "2313", "2321"] {
                for drop in levels {
                    let all: Vec<String> = levels.iter().map(|s| s.to_string()).collect();
                    let rest: Vec<String> = levels.iter().filter(|l| **l != drop).map(|s| s.to_string()).collect();
                    let ask_with = |edu: Vec<String>| IndicatorQuery {
                        filters: [("kommun".to_string(), vec![kommun.to_string()]), ("education".to_string(), edu)].into(),
                        ..query(indicator, &[], "2024")
                    };
                    let (a, b) = (ask_with(all.clone()), ask_with(rest));
                    let group = IndicatorQuery { filters: [("kommun".to_string(), vec![kommun.to_string()]), ("education".to_string(), vec![drop.to_string()])].into(), ..query(indicator, &[], "2024") };
                    let true_n = truth(&agent, &group).await.cells.first().map_or(0, |c| c.persons);
                    if !(1..K).contains(&true_n) {
                        continue;
                    }
                    small_groups += 1;
                    let (ra, rb) = (ask(&agent, &a).await.unwrap(), ask(&agent, &b).await.unwrap());
                    let released = |r: &RegionAnswer| r.cells.first().is_some_and(|c| c.status != CellStatus::Suppressed);
                    assert!(
                        !(released(&ra) && released(&rb)),
                        "{indicator} kommun {kommun} without {drop} ({true_n} persons): both questions released: {:?} {:?}",
                        ra.cells,
                        rb.cells
                    );
                }
            }
        }
    }
    assert!(small_groups > 0, "some education level must hold a small group for the test to mean anything");
}

/// Class 4: dry runs with a stepped minimum cell size change a cell's status only at the
/// policy's ladder steps, so the flip point gives a range, never the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_over_the_ladder_are_no_oracle() {
    let tmp = TempDir::new("class4");
    let agent = node("vasternorrland", "22", perturbing_policy(&tmp)).await;
    let ladder = Policy::development(None).min_cell_ladder;
    let base = query("stroke_admissions", &["kommun"], "2024");
    let t = truth(&agent, &base).await;
    let persons: BTreeMap<Key, i64> = t.cells.iter().map(|c| (key_raw(c), c.persons)).collect();
    let mut status_at: BTreeMap<Key, Vec<Option<CellStatus>>> = BTreeMap::new();
    for k in 1..=50u32 {
        let q = with(base.clone(), |o| {
            o.dry_run = true;
            o.min_cell_size = Some(k);
        });
        let answer = ask(&agent, &q).await.unwrap();
        assert!(answer.meta.min_cell_size == 5 || ladder.contains(&answer.meta.min_cell_size), "k {k} applied as {}", answer.meta.min_cell_size);
        assert!(answer.cells.iter().all(|c| c.numerator.is_none() && c.denominator.is_none()), "a dry run carries no values");
        for c in &answer.cells {
            status_at.entry(key_rel(c)).or_insert_with(|| vec![None; 50])[k as usize - 1] = Some(c.status);
        }
    }
    let mut ranged = 0;
    let step = |k: usize| if k <= 5 { 5 } else { ladder.iter().copied().find(|s| *s as usize >= k).unwrap() as usize };
    for (key, statuses) in &status_at {
        // Every requested size gives the status of the ladder step it rounds up to.
        for k in 1..=50usize {
            assert_eq!(statuses[k - 1], statuses[step(k) - 1], "{key:?}: the status at k = {k} differs from its ladder step {}", step(k));
        }
        let n = persons.get(key).copied().unwrap_or(0);
        if (5..50).contains(&n) && statuses.iter().any(|s| *s == Some(CellStatus::Suppressed)) {
            ranged += 1;
        }
    }
    assert!(ranged > 0, "some cell must flip along the ladder for the test to mean anything");
}

/// Class 5: straight at an agent with the coordinator's key. A question without a relay
/// block is refused (in process and over Flight), and the answer schema has no sum of
/// squares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_only_relayed_questions() {
    let agent = node("vasterbotten", "24", crate::attacks::exact_policy()).await;
    let q = query("kpp_cost", &["care_type"], "2024");
    match agent.answer(&validate(&q), None).await {
        Err(NodeError::PermissionDenied(m)) => assert!(m.contains("relayed"), "{m}"),
        other => panic!("a question without a relay must be refused: {other:?}"),
    }
    assert!(agent.answer(&validate(&q), Some(&relay())).await.is_ok());
    let f = federation();
    let running = &f.federation.agents[2];
    let url = format!("https://{}", running.server.addr);
    let mut direct = client_as(&url, &f.certs, "coordinator", &norrsken_common::pki::agent_dns_name(&running.node.config.region)).await;
    let json = serde_json::to_vec(&query("kpp_cost", &["care_type"], "2024")).unwrap();
    let e = fetch(&mut direct, json).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("relayed"), "{e}");
    let relayed = query("kpp_cost", &["care_type"], "2024").encode_ticket(Some(&relay()));
    let (schema, _) = fetch(&mut direct, relayed).await.unwrap();
    assert!(schema.field_with_name("value_sum_sq").is_err() && schema.field_with_name("value_sd").is_ok());
}

/// A question that, with an earlier one, would give a withheld cell away: the total of all
/// age bands but one, after the one was withheld. The total of the other bands is a group
/// that holds the band withheld beside the small one, so it is withheld (`part_withheld`)
/// whoever asks, before or after the first question, on a fresh agent or one restarted on
/// the first one's ledger: the same answer either way. An edited ledger stops the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_would_give_a_withheld_band_away_is_withheld_for_everyone_in_any_order() {
    let tmp = TempDir::new("ledger-restart");
    let dir = region_dir("norrbotten");
    let ledger = tmp.path().join("ledger.jsonl");
    let policy = perturbing_policy(&tmp);
    // Find a year and sex where one age band is small: asked by age band, it is withheld.
    let first = node_with_ledger(&dir, "25", policy.clone(), EngineOptions::default(), Some(ledger.clone())).await;
    let mut found = None;
    'search: for year in ["2021", "2022", "2023", "2024", "2025"] {
        for sex in ["female", "male"] {
            let q = with(IndicatorQuery { filters: [("sex".to_string(), vec![sex.to_string()])].into(), ..query("stroke_admissions", &["age_band"], year) }, |o| o.totals = true);
            let t = truth(&first, &q).await;
            if let Some(small) = t.cells.iter().find(|c| c.labels[0] != "total" && (1..K).contains(&c.persons)) {
                let others: Vec<String> = t.cells.iter().filter(|c| c.labels[0] != "total" && c.labels != small.labels).map(|c| c.labels[0].clone()).collect();
                let rest: i64 = t.cells.iter().filter(|c| others.contains(&c.labels[0])).map(|c| c.persons).sum();
                if others.len() >= 2 && rest >= 3 * K {
                    found = Some((q, year, sex, small.labels[0].clone(), others));
                    break 'search;
                }
            }
        }
    }
    let (q1, year, sex, band, others) = found.expect("a small age band next to large ones");
    // The other bands together: their total is the first total minus the withheld band.
    let q2 = IndicatorQuery {
        filters: [("sex".to_string(), vec![sex.to_string()]), ("age_band".to_string(), others.clone())].into(),
        ..query("stroke_admissions", &[], year)
    };
    let fresh = node_at_fresh(&dir, policy.clone(), tmp.path()).await;
    let alone = ask(&fresh, &q2).await.unwrap();
    assert_eq!(alone.cells[0].status, CellStatus::Suppressed, "{:?}", alone.cells[0]);
    assert!(alone.cells[0].reasons.contains(&Reason::PartWithheld), "{:?}", alone.cells[0]);
    let a1 = ask(&first, &q1).await.unwrap();
    let withheld = a1.cells.iter().find(|c| c.labels[0] == band).unwrap();
    assert_eq!(withheld.status, CellStatus::Suppressed);
    assert!(a1.cells.iter().any(|c| c.labels[0] == "total" && c.status != CellStatus::Suppressed), "the total is released");
    let a1_fresh = ask(&fresh, &q1).await.unwrap();
    assert_eq!(a1.cells, a1_fresh.cells, "the first question is answered alike after the second");
    drop(first);
    let restarted = node_with_ledger(&dir, "25", policy, EngineOptions::default(), Some(ledger.clone())).await;
    assert_eq!(restarted.ledger().len(), 1, "the ledger kept its record");
    let a2 = ask(&restarted, &q2).await.unwrap();
    assert_eq!(a2.cells, alone.cells, "the answer does not depend on the first question");
    // The withheld band itself stays withheld however it is asked.
    let q3 = IndicatorQuery { filters: [("sex".to_string(), vec![sex.to_string()]), ("age_band".to_string(), vec![band.clone()])].into(), ..query("stroke_admissions", &[], year) };
    assert_eq!(ask(&restarted, &q3).await.unwrap().cells[0].status, CellStatus::Suppressed);
    // An edited ledger stops the agent.
    drop(restarted);
    let text = std::fs::read_to_string(&ledger).unwrap().replacen("\"m\":\"t\"", "\"m\":\"r\"", 1);
    std::fs::write(&ledger, text).unwrap();
    let broken = std::panic::AssertUnwindSafe(node_with_ledger(&dir, "25", perturbing_policy(&tmp), EngineOptions::default(), Some(ledger)));
    let outcome = futures::FutureExt::catch_unwind(broken).await;
    assert!(outcome.is_err(), "an agent must not start on an edited ledger");
}

async fn node_at_fresh(dir: &Path, policy: Policy, tmp: &Path) -> AgentNode {
    let path: PathBuf = tmp.join(format!("fresh-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    node_with_ledger(dir, "25", policy, EngineOptions::default(), Some(path)).await
}

/// The per-requester budget: a requester who has received the budget's worth of distinct
/// cells of a recipe and data version is refused more; asking again what they have, or
/// another requester asking, still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requesters_budget_of_cells_is_enforced() {
    let tmp = TempDir::new("budget");
    let mut policy = perturbing_policy(&tmp);
    policy.ledger.budget_cells = 3;
    let agent = node("vasterbotten", "24", policy).await;
    let total = query("stroke_admissions", &[], "2024");
    let by_sex = query("stroke_admissions", &["sex"], "2023");
    assert_eq!(ask(&agent, &total).await.unwrap().cells.len(), 1);
    let two = ask(&agent, &by_sex).await.unwrap();
    assert_eq!(two.cells.iter().filter(|c| c.status != CellStatus::Suppressed).count(), 2, "{:?}", two.cells);
    match ask(&agent, &query("stroke_admissions", &[], "2022")).await {
        Err(NodeError::PolicyRefused(m)) => assert!(m.contains("budget"), "{m}"),
        other => panic!("the budget must refuse: {other:?}"),
    }
    assert!(ask(&agent, &with(by_sex.clone(), |o| o.no_cache = true)).await.is_ok(), "nothing new: no cost");
    let wide = with(query("stroke_admissions", &["age_band", "sex"], "2023"), |o| o.totals = true);
    let other = Relay { requester_subject: "CN=analyst-2, O=test".into(), requester_role: "analyst".into(), ..Default::default() };
    assert!(agent.answer(&validate(&query("stroke_admissions", &["age_band"], "2023")), Some(&other)).await.is_ok());
    // A dry run releases no values and costs nothing.
    assert!(ask(&agent, &with(wide, |o| o.dry_run = true)).await.is_ok());
}

/// A small random-number source for the questions.
struct Dice(Rng);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0.range(0, n as i64 - 1) as u64
    }
}

/// One random question over the allowed vocabulary: breakdowns in any order, filters
/// (sometimes one that keeps every value), periods in years or quarters, totals, dry runs
/// and raised minimum cell sizes.
fn random_question(rng: &mut Dice) -> IndicatorQuery {
    let dims = ["sex", "age_band", "education", "income_quintile"];
    let values: BTreeMap<&str, Vec<&str>> = [
        ("sex", vec!["female", "male"]),
        ("age_band", vec!["0-44", "45-64", "65-79", "80+"]),
        ("education", vec!["primary", "secondary", "tertiary", "unknown"]),
        ("income_quintile", vec!["1", "2", "3", "4", "5", "unknown"]),
    ]
    .into();
    let mut chosen: Vec<&str> = dims.iter().copied().filter(|_| rng.below(3) == 0).collect();
    chosen.truncate(2);
    // Shuffle the order.
    if chosen.len() == 2 && rng.below(2) == 0 {
        chosen.swap(0, 1);
    }
    let mut breakdowns: Vec<String> = chosen.iter().map(|s| s.to_string()).collect();
    let years = [2023, 2024, 2025];
    let first = years[rng.below(3) as usize];
    let last = years[(rng.below(3) as usize).max(years.iter().position(|y| *y == first).unwrap())];
    let quarters = rng.below(4) == 0;
    let period = if quarters { format!("{first}Q1..{last}Q4") } else if first == last { format!("{first}") } else { format!("{first}..{last}") };
    if rng.below(4) == 0 && breakdowns.len() < 2 {
        breakdowns.push("year".into());
    }
    let mut filters = BTreeMap::new();
    if breakdowns.len() < 3 && rng.below(3) == 0 {
        let free: Vec<&str> = dims.iter().copied().filter(|d| !chosen.contains(d)).collect();
        let d = free[rng.below(free.len() as u64) as usize];
        let vs = &values[d];
        let picked: Vec<String> = if rng.below(4) == 0 {
            // Every value: a filter that filters nothing.
            vs.iter().map(|s| s.to_string()).collect()
        } else {
            let mut p: Vec<String> = vs.iter().filter(|_| rng.below(2) == 0).map(|s| s.to_string()).collect();
            if p.is_empty() {
                p.push(vs[0].to_string());
            }
            p
        };
        filters.insert(d.to_string(), picked);
    }
    let mut q = IndicatorQuery { indicator: "stroke_admissions".into(), breakdowns, filters, period, ..Default::default() };
    q.options.totals = rng.below(2) == 0;
    q.options.dry_run = rng.below(6) == 0;
    if rng.below(6) == 0 {
        q.options.min_cell_size = Some([6, 10, 20][rng.below(3) as usize]);
    }
    q
}

/// What a question released, comparable across runs: every cell's labels, status, values,
/// reasons and suggestion (the query id aside).
fn released_cells(a: &RegionAnswer) -> Vec<String> {
    let mut out: Vec<String> = a.cells.iter().map(|c| format!("{c:?}")).collect();
    out.push(format!("k={} dry={} data={} policy={}", a.meta.min_cell_size, a.meta.dry_run, a.meta.data_version, a.meta.policy_version));
    out
}

/// The answer a naive agent would give (the control): exact values, the primary rule and
/// secondary suppression within each answer only, empty cells simply left out.
fn naive_answer(v: &ValidatedQuery, table: &norrsken_agent::engine::CellTable) -> RegionAnswer {
    use norrsken_agent::disclosure::secondary::{protect, Cell};
    let k = v.options.min_cell_size.map_or(K, |m| (m as i64).max(K));
    let mut cells: Vec<Cell> = table
        .cells
        .iter()
        .map(|c| {
            let small = (1..k).contains(&c.persons);
            Cell { labels: c.labels.clone(), size: c.persons, withheld: small, virtual_cell: false, protect: true, small, slack: c.persons > k, locked: false, empty: false }
        })
        .collect();
    protect(&mut cells).unwrap();
    let out = table
        .cells
        .iter()
        .zip(&cells)
        .filter(|(c, _)| v.options.totals || !c.labels.iter().any(|l| l == "total"))
        .map(|(c, s)| {
            let value = (!s.withheld && !v.options.dry_run).then_some(c.units);
            ReleasedCell {
                region: c.region.clone(),
                labels: c.labels.clone(),
                category: None,
                numerator: value,
                denominator: None,
                value_sum: None,
                value_sd: None,
                status: if s.withheld { CellStatus::Suppressed } else { CellStatus::Released },
                reasons: if !s.withheld {
                    vec![]
                } else if s.small {
                    vec![Reason::BelowMinCell]
                } else {
                    vec![Reason::Secondary]
                },
                suggestion: None,
                standardised: None,
                released_without: Vec::new(),
            }
        })
        .collect();
    RegionAnswer {
        meta: norrsken_model::answer::AnswerMeta { min_cell_size: k as u32, dry_run: v.options.dry_run, ..Default::default() },
        breakdowns: v.breakdowns.clone(),
        distribution: false,
        cells: out,
    }
}

/// The property test of issue 25: random small datalagers, random sequences of allowed
/// questions (breakdowns in any order, filters of one or several values or of every value,
/// periods of one or several years written in years or quarters, totals, dry runs, raised
/// minimum cell sizes, three requesters), replayed in another random order on a fresh agent
/// and backwards on the first agent (its ledger and history already full): every answer is
/// identical in every order. And an attacker who knows D and the rules, and solves every
/// release as interval constraints (linear programming over the base cells), pins no count
/// of 1..k-1. The control: the same questions answered by a naive agent (exact values,
/// protection within each answer only) let the same attacker pin small counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_answers_never_depend_on_history_and_the_adaptive_attacker_pins_nothing() {
    let tmp = TempDir::new("adaptive");
    let mut rng = Dice(Rng::for_stream(0x5eed_13, 13));
    let (trials, questions) = (8, 30);
    let mut targets_checked = 0;
    let mut implied_withheld = 0;
    let mut control_pins = 0;
    let mut compared = 0;
    let requesters: Vec<Relay> = ["analyst", "analyst-2", "region-admin-23"]
        .iter()
        .map(|cn| Relay { requester_subject: format!("CN={cn}, O=test"), requester_role: "analyst".into(), ..Default::default() })
        .collect();
    for trial in 0..trials {
        let seed = 1_000 + rng.below(1_000_000);
        let out = tmp.path().join(format!("dl-{trial}"));
        generate(&SynthOptions { out: out.clone(), scale: 0.02, seed, regions: vec!["23".into()], ..Default::default() }).unwrap();
        let dir = out.join("jamtland");
        let first = node_with_ledger(&dir, "23", perturbing_policy(&tmp), EngineOptions::default(), Some(out.join("ledger-a.jsonl"))).await;
        let second = node_with_ledger(&dir, "23", perturbing_policy(&tmp), EngineOptions::default(), Some(out.join("ledger-b.jsonl"))).await;
        let asked: Vec<(IndicatorQuery, usize)> = (0..questions).map(|_| (random_question(&mut rng), rng.below(3) as usize)).collect();
        async fn answer(node: &AgentNode, asked: &[(IndicatorQuery, usize)], requesters: &[Relay], i: usize, fresh: bool) -> Result<RegionAnswer, NodeError> {
            let (q, who) = &asked[i];
            let q = with(q.clone(), |o| o.no_cache = fresh);
            node.answer(&validate(&q), Some(&requesters[*who])).await.map(|(a, _)| a)
        }
        // In the order asked, on the first agent.
        let mut in_order = Vec::new();
        for i in 0..questions {
            in_order.push(answer(&first, &asked, &requesters, i, false).await);
        }
        // In a random order, on a fresh agent; backwards on the first, uncached.
        let mut order: Vec<usize> = (0..questions).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut shuffled: Vec<Option<Result<RegionAnswer, NodeError>>> = (0..questions).map(|_| None).collect();
        for &i in &order {
            shuffled[i] = Some(answer(&second, &asked, &requesters, i, false).await);
        }
        let mut backwards: Vec<Option<Result<RegionAnswer, NodeError>>> = (0..questions).map(|_| None).collect();
        for i in (0..questions).rev() {
            backwards[i] = Some(answer(&first, &asked, &requesters, i, true).await);
        }
        let outcome = |r: &Result<RegionAnswer, NodeError>| match r {
            Ok(a) => released_cells(a),
            Err(e) => vec![format!("refused: {e}")],
        };
        for i in 0..questions {
            let a = outcome(&in_order[i]);
            assert_eq!(a, outcome(shuffled[i].as_ref().unwrap()), "trial {trial}: question {i} {:?} differs in another order", asked[i].0);
            assert_eq!(a, outcome(backwards[i].as_ref().unwrap()), "trial {trial}: question {i} {:?} differs asked backwards", asked[i].0);
            compared += 1;
        }
        // The attacker reads everything released, and the control's naive answers.
        let space = || Space::of(&validate(&query("stroke_admissions", &[], "2024")).recipe);
        let (mut attacker, mut control_attacker) = (Attacker::new(space()), Attacker::new(space()));
        let (mut withheld, mut control_withheld): (BTreeMap<CellBox, i64>, BTreeMap<CellBox, i64>) = Default::default();
        for (i, result) in in_order.iter().enumerate() {
            let (q, _) = &asked[i];
            let v = validate(q);
            let table = truth(&first, q).await;
            let t = true_units(&table);
            let control = naive_answer(&v, &table);
            let answers = match result {
                Ok(a) => vec![(a, &mut attacker, &mut withheld), (&control, &mut control_attacker, &mut control_withheld)],
                Err(NodeError::PolicyRefused(_)) => vec![(&control, &mut control_attacker, &mut control_withheld)],
                Err(e) => panic!("trial {trial}: {q:?}: {e}"),
            };
            for (a, attacker, withheld) in answers {
                attacker.read(&v, a, units(Kind::Count));
                for c in a.cells.iter().filter(|c| c.status == CellStatus::Suppressed) {
                    if c.reasons.iter().any(|r| matches!(r, Reason::Implied | Reason::PartWithheld)) {
                        implied_withheld += 1;
                    }
                    let b = attacker.space.cell_box(&v, &CellId { labels: c.labels.clone(), category: None }).unwrap();
                    withheld.insert(b, t.get(&key_rel(c)).copied().unwrap_or(0));
                }
            }
        }
        for (b, n) in withheld.iter().filter(|(_, n)| (1..K).contains(*n)) {
            targets_checked += 1;
            assert_eq!(attacker.pins(b), None, "trial {trial} (seed {seed}): a withheld count of {n} is pinned: {b:?}");
        }
        for (b, n) in control_withheld.iter().filter(|(_, n)| (1..K).contains(*n)) {
            if let Some(p) = control_attacker.pins(b) {
                assert_eq!(p, *n, "a pinned value is the truth");
                control_pins += 1;
            }
        }
    }
    eprintln!(
        "history independence: {compared} answers identical in three orders; adaptive attacker: {targets_checked} small withheld counts over {trials} datalagers x {questions} questions, none pinned \
         ({implied_withheld} cells withheld as implied or with a withheld part); the naive control: {control_pins} pinned"
    );
    assert!(targets_checked > 50, "the random questions must withhold small cells to mean anything ({targets_checked})");
    assert!(control_pins > 0, "a naive agent must let the attacker pin something, or the attacker has no teeth");
}

/// The averaging attack (issue 25): noise that differs between two questions could be
/// averaged away over many pairs of questions whose difference is the same small cell. For
/// small withheld cells (1..4 persons) of tables by two breakdowns, every pair of allowed
/// questions whose difference is exactly that cell is enumerated — the cell's margin (or a
/// group of values holding it) against the group without it, along each of its breakdowns,
/// and each span of years ending or starting at its year against the span without it — and
/// both are asked. The vocabulary allows many such pairs; in none are both released, so
/// there is nothing to average: the attacker's interval stays what the reason code says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_averaging_attack_finds_no_pair_of_released_questions_around_a_small_cell() {
    let tmp = TempDir::new("averaging");
    let agent = node("jamtland", "23", perturbing_policy(&tmp)).await;
    let recipe = validate(&query("stroke_admissions", &[], "2024")).recipe;
    let vocabulary = |b: &str| norrsken_model::breakdown::Breakdown::parse(b).unwrap().allowed_values(&recipe.age_bands);
    let (mut small_cells, mut pairs, mut both_released) = (0, 0, 0);
    for (a, b) in [("sex", "age_band"), ("education", "age_band")] {
        let base = query("stroke_admissions", &[a, b], "2024");
        let answer = ask(&agent, &base).await.unwrap();
        let t = truth(&agent, &base).await;
        let small: Vec<Vec<String>> = answer
            .cells
            .iter()
            .filter(|c| c.status == CellStatus::Suppressed && !c.labels.iter().any(|l| l == "total"))
            .filter(|c| t.cells.iter().any(|x| x.labels == c.labels && (1..K).contains(&x.persons)))
            .map(|c| c.labels.clone())
            .take(4)
            .collect();
        for labels in small {
            small_cells += 1;
            let filters = |dim: &str, values: Vec<String>, other: &str, other_value: &str| -> BTreeMap<String, Vec<String>> {
                [(dim.to_string(), values), (other.to_string(), vec![other_value.to_string()])].into()
            };
            let mut questions: Vec<(IndicatorQuery, IndicatorQuery)> = Vec::new();
            // Along each breakdown: every group holding the value against the group without it.
            for (dim, value, other, other_value) in [(a, &labels[0], b, &labels[1]), (b, &labels[1], a, &labels[0])] {
                let rest: Vec<String> = vocabulary(dim).into_iter().filter(|v| v != value).collect();
                for mask in 1u32..(1 << rest.len()) {
                    let without: Vec<String> = rest.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, v)| v.clone()).collect();
                    let with_it: Vec<String> = without.iter().cloned().chain(std::iter::once(value.clone())).collect();
                    let q = |vs: Vec<String>| IndicatorQuery { filters: filters(dim, vs, other, other_value), ..query("stroke_admissions", &[], "2024") };
                    questions.push((q(with_it), q(without)));
                }
            }
            // Along time: spans ending or starting at 2024 against the span without it.
            let both = |p: &str| IndicatorQuery { filters: [(a.to_string(), vec![labels[0].clone()]), (b.to_string(), vec![labels[1].clone()])].into(), ..query("stroke_admissions", &[], p) };
            for first in 2021..=2023 {
                questions.push((both(&format!("{first}..2024")), both(&if first == 2023 { "2023".to_string() } else { format!("{first}..2023") })));
            }
            questions.push((both("2024..2025"), both("2025")));
            for (larger, smaller) in questions {
                pairs += 1;
                let released = |r: Result<RegionAnswer, NodeError>| r.ok().and_then(|a| a.cells.first().filter(|c| c.status != CellStatus::Suppressed).and_then(|c| c.numerator));
                if let (Some(x), Some(y)) = (released(ask(&agent, &larger).await), released(ask(&agent, &smaller).await)) {
                    both_released += 1;
                    eprintln!("both released around {labels:?}: {larger:?} {x} and {smaller:?} {y}");
                }
            }
        }
    }
    eprintln!("averaging attack: {small_cells} small withheld cells, {pairs} pairs of allowed questions whose difference is one of them, {both_released} with both released");
    assert!(small_cells >= 4 && pairs > 50, "the tables must hold small cells with many isolating pairs ({small_cells} cells, {pairs} pairs)");
    assert_eq!(both_released, 0, "a pair of released questions isolates a small cell: averaging such pairs would estimate it");
}
