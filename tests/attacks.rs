//! The attack suite: each test names an attack from the disclosure-control reference and
//! asserts that the personal fact it targets is NOT recoverable from what an agent (or the
//! coordinator) releases. Ground truth comes from the engine's raw cells, which the engine
//! tests check against an independent computation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use norrsken_agent::config::{AgentConfig, DatalagerConfig, DatalagerKind};
use norrsken_agent::datalager::{FolderDatalager, FolderFormat};
use norrsken_agent::engine::{CellTable, Engine, EngineOptions, RawCell};
use norrsken_agent::node::AgentNode;
use norrsken_agent::disclosure::policy::{Approval, Policy};
use norrsken_agent::disclosure::protection::Protection;
use norrsken_model::answer::{CellStatus, Reason, RegionAnswer, ReleasedCell};
use norrsken_common::audit::AuditLog;
use norrsken_model::catalog::{Catalog, Kind};
use norrsken_model::cdm::CdmTable;
use norrsken_common::error::NodeError;
use norrsken_model::query::{IndicatorQuery, QueryOptions, Relay, ValidatedQuery};
use norrsken_common::tls::TlsFiles;
use norrsken_synth::rng::Rng;
use norrsken_synth::{generate, SynthOptions};

use crate::federation::{analyst, query, rows};
use crate::fixtures::{fetch, region_dir, TempDir};

const K: i64 = 5;

pub fn secret(dir: &Path) -> PathBuf {
    let p = dir.join("region.key");
    std::fs::write(&p, [42u8; 64]).unwrap();
    p
}

pub fn relay() -> Relay {
    Relay { requester_subject: "CN=analyst, O=test".into(), requester_role: "analyst".into(), ..Default::default() }
}

/// An agent over one region of the shared test datalager (or `dir`) with `policy`, its
/// audit log in a fresh temporary folder.
pub async fn node_at(dir: &Path, code: &str, policy: Policy) -> AgentNode {
    node_with_engine(dir, code, policy, EngineOptions::default()).await
}

/// The same with engine settings (memory, concurrency, cache).
pub async fn node_with_engine(dir: &Path, code: &str, policy: Policy, options: EngineOptions) -> AgentNode {
    node_with_ledger(dir, code, policy, options, None).await
}

/// The same with its release ledger at `ledger` (default: a fresh one).
pub async fn node_with_ledger(dir: &Path, code: &str, policy: Policy, options: EngineOptions, ledger: Option<PathBuf>) -> AgentNode {
    let dl = FolderDatalager::open(dir, FolderFormat::Parquet).unwrap();
    let protection = Protection::from_policy(policy).unwrap();
    let engine = Engine::open(&dl, code, &options).await.unwrap();
    let run = std::env::temp_dir().join(format!("norrsken-test-attack-node-{}-{}", std::process::id(), NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let config = AgentConfig {
        region: code.into(),
        listen: "127.0.0.1:0".into(),
        tls: TlsFiles { cert: "unused".into(), key: "unused".into(), ca: "unused".into(), crls: vec![] },
        allowed_clients: vec!["coordinator".into()],
        datalager: DatalagerConfig::folder(DatalagerKind::Parquet, dir),
        policy: "unused".into(),
        audit: norrsken::local::audit_config(&run, &format!("agent-{code}")),
        ledger,
        admins: vec![],
        catalog_dir: None,
        engine: options,
        telemetry: Default::default(),
        reload_poll_s: 0,
        secure_sum: None,
    };
    let audit = AuditLog::open(&config.audit, &format!("agent-{code}")).unwrap();
    AgentNode::new(config, Arc::new(Catalog::embedded()), engine, protection, audit).unwrap()
}

static NODES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn node(slug: &str, code: &str, policy: Policy) -> AgentNode {
    node_at(&region_dir(slug), code, policy).await
}

pub fn exact_policy() -> Policy {
    Policy::development(None)
}

pub fn perturbing_policy(tmp: &TempDir) -> Policy {
    Policy::development(Some(secret(tmp.path())))
}

pub fn validate(q: &IndicatorQuery) -> ValidatedQuery {
    q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
}

pub fn with(q: IndicatorQuery, f: impl FnOnce(&mut QueryOptions)) -> IndicatorQuery {
    let mut q = q;
    f(&mut q.options);
    q
}

pub async fn ask(node: &AgentNode, q: &IndicatorQuery) -> Result<RegionAnswer, NodeError> {
    node.answer(&validate(q), Some(&relay())).await.map(|(answer, _)| answer)
}

/// The engine's exact cells for a query (margins included).
pub async fn truth(node: &AgentNode, q: &IndicatorQuery) -> CellTable {
    node.engine().evaluate(&validate(q)).await.unwrap()
}

pub type Key = (Vec<String>, Option<String>);

pub fn key_raw(c: &RawCell) -> Key {
    (c.labels.clone(), c.category.clone())
}
pub fn key_rel(c: &ReleasedCell) -> Key {
    (c.labels.clone(), c.category.clone())
}

/// Every released count lies outside 1..k-1 and comes from a cell with at least k persons.
fn assert_no_small_released(answer: &RegionAnswer, table: &CellTable, what: &str) {
    let raw: BTreeMap<Key, &RawCell> = table.cells.iter().map(|c| (key_raw(c), c)).collect();
    for c in &answer.cells {
        if c.status == CellStatus::Suppressed {
            assert!(c.numerator.is_none() && c.denominator.is_none() && c.value_sum.is_none(), "{what}: withheld cell with values {c:?}");
            assert!(c.suggestion.is_some() && !c.reasons.is_empty(), "{what}: withheld without reason or suggestion {c:?}");
            continue;
        }
        for v in [c.numerator, c.denominator].into_iter().flatten() {
            assert!(v == 0 || v >= K, "{what}: released value {v} in 1..{}: {c:?}", K - 1);
        }
        let r = raw[&key_rel(c)];
        assert!(r.persons == 0 || r.persons >= K, "{what}: released a cell of {} persons: {c:?}", r.persons);
        if answer.meta.kind == "proportion" {
            assert!(r.numerator_persons == 0 || r.numerator_persons >= K, "{what}: numerator of {} persons released", r.numerator_persons);
            let complement = r.units - r.numerator;
            assert!(complement == 0 || complement >= K, "{what}: complement of {complement} released: {c:?}");
        }
    }
}

/// Independent check: is a withheld cell determined by the released cells of the answer,
/// through the lines (parts + total) of its margins and, for distributions, its categories?
/// Gaussian elimination over the withheld cells as unknowns.
fn derivable_withheld(answer: &RegionAnswer) -> Vec<Key> {
    let cells: Vec<&ReleasedCell> = answer.cells.iter().collect();
    let withheld: Vec<usize> = (0..cells.len()).filter(|&i| cells[i].status == CellStatus::Suppressed).collect();
    let col: BTreeMap<usize, usize> = withheld.iter().enumerate().map(|(c, &i)| (i, c)).collect();
    let index: BTreeMap<Key, usize> = cells.iter().enumerate().map(|(i, c)| (key_rel(c), i)).collect();
    let dims = answer.breakdowns.len();
    let mut eqs: Vec<Vec<f64>> = Vec::new();
    for d in 0..dims {
        let mut lines: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            if c.labels[d] != "total" {
                let mut t = c.labels.clone();
                t[d] = "total".into();
                lines.entry((t, c.category.clone())).or_default().push(i);
            }
        }
        for (total_key, parts) in lines {
            let Some(&t) = index.get(&total_key) else { continue };
            let mut row = vec![0.0; withheld.len()];
            for p in parts {
                if let Some(&c) = col.get(&p) {
                    row[c] += 1.0;
                }
            }
            if let Some(&c) = col.get(&t) {
                row[c] -= 1.0;
            }
            eqs.push(row);
        }
    }
    if answer.distribution {
        // The categories of a cell add up to its denominator, known when any row shows it.
        let mut by_cell: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            by_cell.entry(c.labels.clone()).or_default().push(i);
        }
        for members in by_cell.values() {
            if members.iter().any(|&i| cells[i].status != CellStatus::Suppressed) {
                let mut row = vec![0.0; withheld.len()];
                for &i in members {
                    if let Some(&c) = col.get(&i) {
                        row[c] = 1.0;
                    }
                }
                eqs.push(row);
            }
        }
    }
    // Reduced row echelon form.
    let n = withheld.len();
    let mut r = 0;
    let mut pivot_of = vec![None; n];
    for c in 0..n {
        let Some(p) = (r..eqs.len()).find(|&i| eqs[i][c].abs() > 1e-9) else { continue };
        eqs.swap(r, p);
        let pv = eqs[r][c];
        eqs[r].iter_mut().for_each(|x| *x /= pv);
        for i in 0..eqs.len() {
            if i != r && eqs[i][c].abs() > 1e-12 {
                let f = eqs[i][c];
                let pivot_row = eqs[r].clone();
                eqs[i].iter_mut().zip(pivot_row).for_each(|(x, y)| *x -= f * y);
            }
        }
        pivot_of[c] = Some(r);
        r += 1;
    }
    let mut out = Vec::new();
    for c in 0..n {
        if let Some(row) = pivot_of[c] {
            if eqs[row].iter().enumerate().all(|(j, x)| j == c || x.abs() < 1e-9) {
                out.push(key_rel(cells[withheld[c]]));
            }
        }
    }
    out
}

/// Attack: small-cell probe. A breakdown fine enough to isolate 1..k-1 persons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_cell_probe_finds_nothing_below_k() {
    let tmp = TempDir::new("small-cell");
    for policy in [exact_policy(), perturbing_policy(&tmp)] {
        let agent = node("norrbotten", "25", policy).await;
        let q = with(query("tonsillectomy_cold", &["kommun", "year"], "2021..2025"), |o| o.totals = true);
        let (answer, table) = (ask(&agent, &q).await.unwrap(), truth(&agent, &q).await);
        let small = table.cells.iter().filter(|c| c.persons >= 1 && c.persons < K).count();
        assert!(small > 10, "the probe must hit small cells to mean anything ({small})");
        assert_no_small_released(&answer, &table, "tonsillectomy by kommun and year");
        let below = answer.cells.iter().filter(|c| c.reasons.contains(&Reason::BelowMinCell)).count();
        assert!(below >= small, "every small cell is withheld as below_min_cell");
        // Every suggestion is true: a withheld kommun cell suggests the region only when the
        // region's cell is released; otherwise it says no coarser cell is.
        let by_labels: BTreeMap<&Vec<String>, &ReleasedCell> = answer.cells.iter().map(|c| (&c.labels, c)).collect();
        let mut region_hints = 0;
        for c in answer.cells.iter().filter(|c| c.status == CellStatus::Suppressed && c.labels[0] != "total") {
            let s = norrsken_model::suggest::Suggestion::parse(c.suggestion.as_deref().unwrap_or(""));
            if s.dropped() == Some(norrsken_model::breakdown::Breakdown::Kommun) {
                region_hints += 1;
                let coarser = vec!["total".to_string(), c.labels[1].clone()];
                assert_ne!(by_labels[&coarser].status, CellStatus::Suppressed, "{c:?}: suggests a withheld cell");
            } else {
                assert!(s.names_released_cell() || s == norrsken_model::suggest::Suggestion::NothingCoarser, "{c:?}");
            }
        }
        assert!(region_hints > 0, "some kommun cells can be asked for the region instead");
    }
}

/// Attack: complement. numerator = denominator - 1 gives away the one person without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complement_cells_are_withheld() {
    let agent = node("vasterbotten", "24", exact_policy()).await;
    let mut found = 0;
    for (indicator, by) in [("schizophrenia_antipsychotics", vec!["kommun"]), ("hip_fracture_surgery_24h", vec!["kommun", "sex"]), ("diabetes_statin", vec!["kommun", "age_band"])] {
        let q = query(indicator, &by, "2021..2025");
        let (answer, table) = (ask(&agent, &q).await.unwrap(), truth(&agent, &q).await);
        let released: BTreeMap<Key, &ReleasedCell> = answer.cells.iter().map(|c| (key_rel(c), c)).collect();
        for c in &table.cells {
            let complement = c.units - c.numerator;
            if complement >= 1 && complement < K && c.persons >= K && c.numerator_persons >= K {
                found += 1;
                if let Some(r) = released.get(&key_raw(c)) {
                    assert_eq!(r.status, CellStatus::Suppressed, "{indicator} {:?}: complement {complement} released", c.labels);
                    assert!(r.reasons.contains(&Reason::Complement), "{r:?}");
                }
            }
        }
        assert_no_small_released(&answer, &table, indicator);
    }
    assert!(found > 0, "the data must contain complement cells for the test to mean anything");
}

/// Attack: differencing through margins within one answer (a breakdown and its totals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn margins_in_one_answer_do_not_give_a_withheld_cell_away() {
    let tmp = TempDir::new("margins");
    for policy in [exact_policy(), perturbing_policy(&tmp)] {
        let agent = node("jamtland", "23", policy).await;
        for (indicator, by) in [
            ("stroke_reperfusion", vec!["sex", "age_band"]),
            ("diabetes_hba1c_over_70", vec!["education", "sex"]),
            ("hf_hospitalisation_rate", vec!["age_band", "kommun"]),
            ("diabetes_bp_bands", vec!["kommun", "age_band"]),
            ("kpp_cost", vec!["care_type", "kommun"]),
        ] {
            let q = with(query(indicator, &by, "2023..2025"), |o| o.totals = true);
            let answer = ask(&agent, &q).await.unwrap();
            assert!(answer.cells.iter().any(|c| c.labels.iter().any(|l| l == "total")), "{indicator}: margins released");
            let withheld = answer.cells.iter().filter(|c| c.status == CellStatus::Suppressed).count();
            assert!(withheld > 0 || indicator == "kpp_cost", "{indicator}: nothing withheld, the test would mean nothing");
            // An empty cell shown like a small one may be derivable as empty: no person in it.
            let t = truth(&agent, &q).await;
            let occupied = |k: &Key| t.cells.iter().any(|c| key_raw(c) == *k && c.units > 0);
            let exposed: Vec<Key> = derivable_withheld(&answer).into_iter().filter(occupied).collect();
            assert!(exposed.is_empty(), "{indicator} by {by:?}: withheld cells derivable from margins: {exposed:?}");
        }
    }
}

/// Attack: differencing across two answers: the total from one query minus the released
/// parts of a breakdown query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_query_and_a_breakdown_query_together_give_nothing_away() {
    let agent = node("jamtland", "23", exact_policy()).await;
    let mut tested = 0;
    for (indicator, b) in [("diabetes_hba1c_over_70", "education"), ("hf_raas_bb", "birth_country"), ("copd_spirometry", "income_quintile")] {
        let total_q = query(indicator, &[], "2024");
        let parts_q = query(indicator, &[b], "2024");
        let total = ask(&agent, &total_q).await.unwrap();
        let parts = ask(&agent, &parts_q).await.unwrap();
        assert_eq!(total.cells.len(), 1);
        let withheld: Vec<&ReleasedCell> = parts.cells.iter().filter(|c| c.status == CellStatus::Suppressed).collect();
        if withheld.is_empty() {
            continue;
        }
        tested += 1;
        assert_ne!(withheld.len(), 1, "{indicator} by {b}: a single withheld part = total - released parts");
        // The most the attacker learns is the sum of the withheld parts.
        let t = truth(&agent, &parts_q).await;
        let released_sum: i64 = parts.cells.iter().filter_map(|c| c.denominator).sum();
        let gap = total.cells[0].denominator.unwrap() - released_sum;
        for w in &withheld {
            let exact = t.cells.iter().find(|c| key_raw(c) == key_rel(w)).unwrap().units;
            assert!(gap > exact, "{indicator} by {b}: the gap {gap} pins the withheld cell ({exact})");
        }
    }
    assert!(tested > 0, "at least one breakdown must have a withheld part");
}

/// Attack: differencing across regions through the pooled row (pooled minus the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pooled_row_never_recovers_a_regional_cell() {
    let mut client = analyst().await;
    let mut tested = 0;
    for (indicator, by) in [("tonsillectomy_cold", vec!["age_band"]), ("sepsis_mortality_30d", vec!["sex"]), ("stroke_reperfusion", vec!["year"])] {
        let q = query(indicator, &by, "2021..2025");
        let (schema, batches) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
        let got = rows(&schema, &batches, &by);
        for r in got.iter().filter(|r| r.kind == "region" && r.status == "suppressed") {
            tested += 1;
            let pooled = got.iter().find(|p| p.kind == "pooled" && p.labels == r.labels).unwrap();
            assert_eq!(pooled.status, "suppressed", "{indicator} {:?}: pooled released while region {} withheld", r.labels, r.region);
            assert!(pooled.numerator.is_none() && pooled.denominator.is_none());
            assert_eq!(pooled.reason.as_deref(), Some("pooled_protection"));
        }
    }
    assert!(tested > 0, "some regional cell must be withheld for the test to mean anything");
}

/// Attack: overlapping populations. Age ranges or ad-hoc filters that differ by one person
/// cannot be expressed; only the recipe's fixed bands and vocabulary values are accepted.
#[test]
fn overlapping_populations_are_inexpressible() {
    let catalog = Catalog::embedded();
    let tries = [
        (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"age_band":["41-64"]}}"#, "unknown value '41-64'"),
        (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"age":["41"]}}"#, "unknown breakdown 'age'"),
        (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"kommun":["not 2580"]}}"#, "unknown value 'not 2580'"),
        (r#"{"indicator":"stroke_reperfusion","period":"2023","filters":{"person_id":["1"]}}"#, "unknown breakdown 'person_id'"),
        (r#"{"indicator":"stroke_reperfusion","period":"2023-03-15..2023-06-01"}"#, "month must be 01 to 12"),
        (r#"{"indicator":"stroke_reperfusion","period":"2023","where":"age > 40"}"#, "unknown field `where`"),
    ];
    for (json, fragment) in tries {
        let e = IndicatorQuery::decode_ticket(json.as_bytes()).and_then(|(q, _)| q.validate(&catalog, None)).unwrap_err();
        assert!(e.to_string().contains(fragment), "{json}: {e}");
    }
}

/// Attack: averaging. The same cell, asked 1,000 times and inside different breakdowns,
/// always comes back with the same released value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_again_cannot_average_the_noise_away() {
    let tmp = TempDir::new("averaging");
    let agent = Arc::new(node("vasternorrland", "22", perturbing_policy(&tmp)).await);
    let q = query("stroke_admissions", &["sex"], "2023..2025");
    let first = ask(&agent, &q).await.unwrap();
    let female = |a: &RegionAnswer| a.cells.iter().find(|c| c.labels == ["female"]).unwrap().numerator.unwrap();
    let expected = female(&first);
    let exact = truth(&agent, &q).await.cells.iter().find(|c| c.labels == ["female"]).unwrap().units;
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let agent = agent.clone();
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            // Past the answer cache: the computation itself gives the same noise.
            let q = with(q, |o| o.no_cache = true);
            for _ in 0..250 {
                let (a, cached_from) = agent.answer(&validate(&q), Some(&relay())).await.unwrap();
                assert!(cached_from.is_none());
                seen.insert(a.cells.iter().find(|c| c.labels == ["female"]).unwrap().numerator.unwrap());
            }
            (worker, seen)
        }));
    }
    for t in tasks {
        let (_, seen) = t.await.unwrap();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![expected], "1,000 asks, one released value");
    }
    // The same persons inside other questions: a margin of a two-way table, and a filter that
    // keeps everyone.
    let two_way = ask(&agent, &with(query("stroke_admissions", &["sex", "age_band"], "2023..2025"), |o| o.totals = true)).await.unwrap();
    let margin = two_way.cells.iter().find(|c| c.labels == ["female", "total"]).unwrap();
    assert_eq!(margin.numerator, Some(expected), "the female margin of sex x age equals the female cell");
    let everyone = IndicatorQuery {
        filters: [("education".to_string(), ["primary", "secondary", "tertiary", "unknown"].map(String::from).to_vec())].into(),
        ..q.clone()
    };
    assert_eq!(female(&ask(&agent, &everyone).await.unwrap()), expected);
    assert!((expected - exact).abs() <= 2, "the deviation is at most D = 2");
}

/// Attack: isolation. Stacking breakdowns and filters until a cell holds one person: too
/// many dimensions are refused by policy, and what is allowed releases no small cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_by_stacking_is_refused_or_protected() {
    let agent = node("norrbotten", "25", exact_policy()).await;
    let deep = IndicatorQuery {
        filters: [("education".to_string(), vec!["tertiary".to_string()])].into(),
        ..query("hip_fracture_surgery_24h", &["kommun", "sex", "age_band"], "2025")
    };
    match ask(&agent, &deep).await {
        Err(NodeError::PolicyRefused(m)) => assert!(m.contains("at most 3"), "{m}"),
        other => panic!("four dimensions must be refused: {other:?}"),
    }
    let q = query("hip_fracture_surgery_24h", &["kommun", "sex", "age_band"], "2025");
    let (answer, table) = (ask(&agent, &q).await.unwrap(), truth(&agent, &q).await);
    assert!(table.cells.iter().any(|c| c.persons == 1), "the stack isolates single persons");
    assert_no_small_released(&answer, &table, "hip fracture by kommun, sex and age");
}

/// Writes a contacts file with one extreme cost into a copy of a region's datalager.
fn datalager_with_extreme_cost(tmp: &TempDir, slug: &str) -> (PathBuf, i64) {
    let src = region_dir(slug);
    let dst = tmp.path().join(slug);
    for table in CdmTable::ALL {
        let from = src.join(table.name());
        let to = dst.join(table.name());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    // A Jämtland resident of Östersund, with one inpatient stay of 25 million SEK in March 2024.
    let data = crate::fixtures::data(slug, "23");
    let (&person, _) = data.persons.iter().filter(|(_, p)| p.kommun == "2380" && p.death_date.is_none() && p.birth_year < 1990).min_by_key(|(id, _)| **id).unwrap();
    let start = norrsken_synth::calendar::days_from_civil(2024, 3, 10) as i64 * norrsken_synth::calendar::MICROS_PER_DAY;
    let col = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let batch = RecordBatch::try_new(
        CdmTable::Contacts.schema(),
        vec![
            Arc::new(Int64Array::from(vec![person * 10_000 + 9_999])),
            Arc::new(Int64Array::from(vec![person])),
            Arc::new(TimestampMicrosecondArray::from(vec![start])),
            Arc::new(TimestampMicrosecondArray::from(vec![start + 40 * norrsken_synth::calendar::MICROS_PER_DAY])),
            col(vec!["inpatient"]),
            Arc::new(BooleanArray::from(vec![true])),
            col(vec!["doctor"]),
            col(vec!["23-OST-MED"]),
            col(vec!["2380"]),
            col(vec!["C910"]),
            Arc::new(Float64Array::from(vec![25_000_000.0])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dst.join("contacts").join("part-1.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    (dst, person)
}

/// Attack: dominance. One extreme-cost patient in a cost cell would reveal their cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_extreme_cost_patient_withholds_the_cost_cell() {
    let tmp = TempDir::new("dominance");
    let (dir, _) = datalager_with_extreme_cost(&tmp, "jamtland");
    let agent = node_at(&dir, "23", exact_policy()).await;
    let q = IndicatorQuery {
        filters: [("care_type".to_string(), vec!["inpatient".to_string()])].into(),
        ..query("kpp_cost", &["kommun", "month"], "2024-03")
    };
    let (answer, table) = (ask(&agent, &q).await.unwrap(), truth(&agent, &q).await);
    let cell = table.cells.iter().find(|c| c.labels == ["2380", "2024-03"]).unwrap();
    assert!(cell.persons >= K, "the cell passes the size threshold ({} persons)", cell.persons);
    assert!(cell.top1 >= 25_000_000.0 && cell.top1 > 0.85 * cell.value_sum);
    let released = answer.cells.iter().find(|c| c.labels == ["2380", "2024-03"]).unwrap();
    assert_eq!(released.status, CellStatus::Suppressed);
    assert!(released.reasons.contains(&Reason::Dominance), "{released:?}");
    assert!(released.value_sum.is_none());
    // Without the extreme stay the same cell is not dominated (it may still be withheld to
    // protect a neighbour).
    let plain = node("jamtland", "23", exact_policy()).await;
    let a = ask(&plain, &q).await.unwrap();
    let c = a.cells.iter().find(|c| c.labels == ["2380", "2024-03"]).unwrap();
    assert!(!c.reasons.contains(&Reason::Dominance), "{c:?}");
}

/// Policy: a request for k below the floor gets the floor; a larger k is applied; an
/// unapproved indicator is refused; a policy with an error stops the agent naming the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_policy_is_the_floor() {
    let agent = node("jamtland", "23", exact_policy()).await;
    let base = query("tonsillectomy_cold", &["kommun"], "2021..2025");
    let lowered = ask(&agent, &with(base.clone(), |o| o.min_cell_size = Some(2))).await.unwrap();
    assert_eq!(lowered.meta.min_cell_size, 5, "asking for k = 2 gets the floor 5");
    let table = truth(&agent, &base).await;
    assert_no_small_released(&lowered, &table, "k below the floor");
    let raised = ask(&agent, &with(base.clone(), |o| o.min_cell_size = Some(20))).await.unwrap();
    assert_eq!(raised.meta.min_cell_size, 20);
    for c in raised.cells.iter().filter(|c| c.status != CellStatus::Suppressed) {
        let r = table.cells.iter().find(|r| key_raw(r) == key_rel(c)).unwrap();
        assert!(r.persons >= 20 && r.numerator_persons >= 20 || r.numerator_persons == 0, "{r:?}");
    }

    let mut only_stroke = exact_policy();
    only_stroke.indicators = vec![Approval { id: "stroke_reperfusion".into(), versions: vec![1] }];
    let strict = node("jamtland", "23", only_stroke).await;
    match ask(&strict, &query("hip_fracture_surgery_24h", &[], "2024")).await {
        Err(NodeError::PolicyRefused(m)) => assert!(m.contains("not approved indicator hip_fracture_surgery_24h@1"), "{m}"),
        other => panic!("an unapproved indicator must be refused: {other:?}"),
    }
    assert!(ask(&strict, &query("stroke_reperfusion", &[], "2024")).await.is_ok());

    let mut others_only = exact_policy();
    others_only.requesters.names = vec!["someone-else".into()];
    let closed = node("jamtland", "23", others_only).await;
    match ask(&closed, &query("stroke_reperfusion", &[], "2024")).await {
        Err(NodeError::PolicyRefused(m)) => assert!(m.contains("does not answer requester 'analyst'"), "{m}"),
        other => panic!("a requester the region does not serve must be refused: {other:?}"),
    }

    let mut rounding = exact_policy();
    rounding.rounding_base = 5;
    let rounded = node("jamtland", "23", rounding).await;
    let a = ask(&rounded, &query("stroke_admissions", &["sex", "age_band"], "2021..2025")).await.unwrap();
    for c in a.cells.iter().filter(|c| c.status != CellStatus::Suppressed) {
        assert_eq!(c.numerator.unwrap() % 5, 0, "{c:?}");
        assert!(c.reasons.contains(&Reason::Rounded));
    }

    let mut by_region = exact_policy();
    by_region.finest_geography = norrsken_model::breakdown::Geography::Region;
    by_region.finest_time = norrsken_model::breakdown::TimeGrain::Year;
    let coarse = node("jamtland", "23", by_region).await;
    for q in [query("stroke_reperfusion", &["kommun"], "2024"), query("stroke_reperfusion", &["quarter"], "2024"), query("stroke_reperfusion", &[], "2024Q2")] {
        assert!(matches!(ask(&coarse, &q).await, Err(NodeError::PolicyRefused(_))), "{q:?}");
    }

    // A policy file with an error stops the agent with the line named.
    let tmp = TempDir::new("bad-policy");
    let bad = tmp.path().join("policy.toml");
    std::fs::write(&bad, "version = \"1\"\nmin_cell_size = 5\nmax_dimensions = \"three\"\n\n[[indicators]]\nid = \"*\"\n").unwrap();
    let f = crate::fixtures::federation();
    let mut config = norrsken::local::agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    config.policy = bad.clone();
    config.audit = norrsken::local::audit_config(tmp.path(), "agent-23");
    let e = norrsken_agent::server::start(config).await.err().expect("the agent must not start");
    assert!(e.to_string().contains("line 3"), "{e}");
}

/// Fail closed: an unreadable secret stops the agent and is refused on reload (the unit
/// tests of `disclosure` show a query refused when record keys are missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_failures_refuse() {
    let tmp = TempDir::new("fail-closed");
    let mut policy = Policy::development(Some(tmp.path().join("missing.key")));
    policy.version = "missing-secret".into();
    let e = Protection::from_policy(policy).unwrap_err();
    assert!(e.to_string().contains("missing.key"), "{e}");

    let policy_file = tmp.path().join("policy.toml");
    std::fs::write(&policy_file, "version = \"x\"\n[[indicators]]\nid = \"*\"\n[perturbation]\nenabled = true\nsecret_file = \"nowhere.key\"\n").unwrap();
    let f = crate::fixtures::federation();
    let mut config = norrsken::local::agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    config.policy = policy_file.clone();
    config.audit = norrsken::local::audit_config(tmp.path(), "agent-23");
    let e = norrsken_agent::server::start(config).await.err().expect("no secret, no agent");
    assert!(e.to_string().contains("nowhere.key"), "{e}");

    // A reload to a policy whose secret cannot be read is refused; the old policy stays.
    let agent = node("jamtland", "23", perturbing_policy(&tmp)).await;
    assert!(agent.reload_policy().is_err());
    assert!(ask(&agent, &query("stroke_admissions", &["sex"], "2024")).await.unwrap().cells.iter().all(|c| c.status != CellStatus::Released));
}

/// A dry run says how many cells would be withheld and why, without values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_without_values() {
    let agent = node("jamtland", "23", exact_policy()).await;
    let q = with(query("tonsillectomy_cold", &["kommun"], "2021..2025"), |o| o.dry_run = true);
    let a = ask(&agent, &q).await.unwrap();
    assert!(a.meta.dry_run);
    assert!(a.cells.iter().all(|c| c.numerator.is_none() && c.denominator.is_none()));
    assert!(a.cells.iter().any(|c| c.status == CellStatus::Suppressed && c.reasons.contains(&Reason::BelowMinCell)));
}

/// Property: for random small datalagers and random allowed queries, no released cell lies
/// in 1..k-1 and no withheld cell is derivable from the released cells of the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_no_small_released_cell_and_no_derivable_withheld_cell() {
    let tmp = TempDir::new("property");
    let catalog = Catalog::embedded();
    let recipes = catalog.latest();
    let mut rng = Rng::for_stream(2026, 11);
    let mut checked = 0;
    for seed in [11u64, 12, 13] {
        let out = tmp.path().join(format!("dl-{seed}"));
        let scale = 0.004 + rng.f64() * 0.006;
        generate(&SynthOptions { out: out.clone(), scale, seed, regions: vec!["23".into()], ..Default::default() }).unwrap();
        let perturb = seed % 2 == 0;
        let policy = if perturb { perturbing_policy(&tmp) } else { exact_policy() };
        let agent = node_at(&out.join("jamtland"), "23", policy).await;
        for _ in 0..12 {
            let recipe = &recipes[rng.range(0, recipes.len() as i64 - 1) as usize];
            let mut pool: Vec<&str> = recipe.breakdowns.iter().map(|b| b.name()).filter(|b| !["quarter", "month"].contains(b)).collect();
            let mut by = Vec::new();
            for _ in 0..rng.range(1, 2) {
                if pool.is_empty() {
                    break;
                }
                let i = rng.range(0, pool.len() as i64 - 1) as usize;
                by.push(pool.remove(i));
            }
            let first = rng.range(2021, 2025) as i32;
            let period = format!("{first}..{}", rng.range(first as i64, 2025));
            let q = with(query(&recipe.id, &by, &period), |o| o.totals = true);
            let what = format!("seed {seed}, {} by {by:?} in {period}", recipe.id);
            let (answer, table) = (ask(&agent, &q).await.unwrap_or_else(|e| panic!("{what}: {e}")), truth(&agent, &q).await);
            assert_no_small_released(&answer, &table, &what);
            let occupied = |k: &Key| table.cells.iter().any(|c| key_raw(c) == *k && c.units > 0);
            let exposed: Vec<Key> = derivable_withheld(&answer).into_iter().filter(occupied).collect();
            assert!(exposed.is_empty(), "{what}: derivable withheld cells {exposed:?}");
            if recipe.kind == Kind::Proportion {
                for c in answer.cells.iter().filter(|c| c.status != CellStatus::Suppressed) {
                    assert!(c.numerator <= c.denominator, "{what}: numerator above denominator {c:?}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 36);
}

/// The derivability check itself finds a withheld cell that margins give away.
#[test]
fn the_derivability_check_catches_a_lone_withheld_cell() {
    let cell = |sex: &str, n: Option<i64>| ReleasedCell {
        region: "23".into(),
        labels: vec![sex.into()],
        category: None,
        numerator: n,
        denominator: n,
        value_sum: None,
        value_sd: None,
        status: if n.is_some() { CellStatus::Released } else { CellStatus::Suppressed },
        reasons: vec![],
        suggestion: None,
        standardised: None,
        released_without: Vec::new(),
    };
    let answer = RegionAnswer {
        meta: Default::default(),
        breakdowns: vec![norrsken_model::breakdown::Breakdown::Sex],
        distribution: false,
        cells: vec![cell("female", Some(97)), cell("male", None), cell("total", Some(100))],
    };
    assert_eq!(derivable_withheld(&answer), vec![(vec!["male".to_string()], None)]);
    let safe = RegionAnswer { cells: vec![cell("female", None), cell("male", None), cell("total", Some(100))], ..answer };
    assert!(derivable_withheld(&safe).is_empty());
}

/// A policy is reloaded without a restart; a policy that does not load leaves the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_reloads_and_a_broken_one_is_refused() {
    let tmp = TempDir::new("reload");
    let file = tmp.path().join("policy.toml");
    std::fs::write(&file, "version = \"v1\"\n[[indicators]]\nid = \"*\"\n[perturbation]\nenabled = false\n").unwrap();
    let dl = FolderDatalager::open(&region_dir("jamtland"), FolderFormat::Parquet).unwrap();
    let protection = Protection::load(&file).unwrap();
    let engine = Engine::open(&dl, "23", &EngineOptions::default()).await.unwrap();
    let mut config = norrsken::local::agent_config("23", &region_dir("jamtland"), &crate::fixtures::federation().federation.dir, "127.0.0.1:0");
    config.policy = file.clone();
    config.audit = norrsken::local::audit_config(tmp.path(), "agent-23");
    let audit = AuditLog::open(&config.audit, "agent-23").unwrap();
    let agent = AgentNode::new(config, Arc::new(Catalog::embedded()), engine, protection, audit).unwrap();
    let q = query("stroke_admissions", &["sex"], "2024");
    assert_eq!(ask(&agent, &q).await.unwrap().meta.policy_version, "v1");
    let key = secret(tmp.path());
    std::fs::write(&file, format!("version = \"v2\"\nmin_cell_size = 8\n[[indicators]]\nid = \"*\"\n[perturbation]\nsecret_file = {:?}\n", key.display().to_string())).unwrap();
    assert_eq!(agent.reload_policy().unwrap(), "v2");
    let a = ask(&agent, &q).await.unwrap();
    assert_eq!((a.meta.policy_version.as_str(), a.meta.min_cell_size), ("v2", 8));
    assert!(a.cells.iter().all(|c| c.status != CellStatus::Released), "perturbation is now on");
    std::fs::write(&file, "version = \"v3\"\nmin_cell_size = -1\n").unwrap();
    let e = agent.reload_policy().unwrap_err().to_string();
    assert!(e.contains("line 2"), "{e}");
    assert_eq!(ask(&agent, &q).await.unwrap().meta.policy_version, "v2", "the old policy stays in force");
}
