//! Secure sums between agents, end to end (docs/secure-aggregation.md): pooled rows and home
//! regions' rows equal a central computation of the regions' parts, the release rules of
//! the region dimension hold for every released pooled cell, and the drop attack (the same
//! cells with two participant sets) is refused by the agents and on record in their audit
//! logs.

use std::path::Path;

use bytes::Bytes;
use futures::TryStreamExt;
use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_agent::engine::RawCell;
use norrsken_common::pki::{agent_dns_name, COORDINATOR_DNS_NAME};
use norrsken_model::catalog::Catalog;
use norrsken_model::comparison::{Comparison, ComparisonRow, RowKind};
use norrsken_model::query::{IndicatorQuery, Relay};

use crate::fixtures::{client_as, datalager, fetch, TempDir};

fn question(json: &str) -> IndicatorQuery {
    IndicatorQuery::decode_ticket(json.as_bytes()).unwrap().0
}

async fn ask(fed: &LocalFederation, q: &IndicatorQuery) -> Comparison {
    let mut client = client_as(&fed.coordinator_url(), &fed.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let (schema, batches) = fetch(&mut client, q.encode_ticket(None)).await.expect("the coordinator answers");
    Comparison::from_batches(&schema, &batches).expect("a comparison")
}

/// Every region's raw cells of a question (the central computation of the parts).
async fn parts(fed: &LocalFederation, q: &IndicatorQuery) -> Vec<(String, RawCell)> {
    let mut out = Vec::new();
    for a in &fed.agents {
        let engine = a.node.engine();
        let v = q.validate(&Catalog::embedded(), Some(engine.data_years())).unwrap();
        for c in engine.evaluate(&v).await.unwrap().cells {
            out.push((a.node.region.code.to_string(), c));
        }
    }
    out
}

fn labels(r: &ComparisonRow) -> Vec<String> {
    r.labels.iter().map(|l| l.clone().unwrap_or_default()).collect()
}

async fn run(client: &mut arrow_flight::FlightClient, body: Bytes) -> Result<Vec<Bytes>, arrow_flight::error::FlightError> {
    let stream = client.do_action(arrow_flight::Action::new("secure-sum", body)).await?;
    stream.try_collect::<Vec<Bytes>>().await
}

async fn start(dir: &Path, secure_sum: bool, perturbation: bool, min: Option<usize>) -> LocalFederation {
    let options = LocalOptions { perturbation, ledger: false, secure_sum, secure_sum_min: min, ..LocalOptions::default() };
    LocalFederation::start(datalager(), dir, &options).await.expect("start the federation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_and_home_rows_equal_the_central_sum_and_protect_every_withheld_part() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("secure-sum");
    let fed = start(tmp.path(), true, false, None).await;
    let k = 5i64;

    // Provider perspective: every released pooled cell is the exact sum of the regions'
    // parts, and its withheld parts could not be computed from it.
    let q = question(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","age_band"],"period":"2021..2025","options":{"totals":true}}"#);
    let c = ask(&fed, &q).await;
    assert!(c.meta.secure_sum, "pooled rows by secure sum");
    let truth = parts(&fed, &q).await;
    let (mut released, mut without_withheld_parts) = (0, 0);
    for p in c.rows.iter().filter(|r| r.kind == RowKind::Pooled) {
        let cell: Vec<&RawCell> = truth.iter().filter(|(_, t)| t.labels == labels(p)).map(|(_, t)| t).collect();
        let (units, num): (i64, i64) = (cell.iter().map(|t| t.units).sum(), cell.iter().map(|t| t.numerator).sum());
        let withheld: Vec<&ComparisonRow> =
            c.rows.iter().filter(|r| r.kind == RowKind::Region && r.labels == p.labels && r.status == "suppressed").collect();
        without_withheld_parts += usize::from(withheld.is_empty());
        if p.status == "suppressed" {
            continue;
        }
        released += 1;
        assert_eq!((p.numerator, p.denominator), (Some(num), Some(units)), "pooled {:?}", p.labels);
        // R2: never one withheld part; with several, the rest beside the largest is ≥ k.
        assert_ne!(withheld.len(), 1, "pooled {:?} released beside one withheld part", p.labels);
        if withheld.len() >= 2 {
            let sizes: Vec<i64> = withheld
                .iter()
                .map(|w| truth.iter().find(|(r, t)| *r == w.region && t.labels == labels(w)).map_or(0, |(_, t)| t.units))
                .collect();
            assert!(sizes.iter().sum::<i64>() - sizes.iter().max().unwrap() >= k, "{:?}: withheld parts {sizes:?}", p.labels);
        }
    }
    // Secondary suppression over the pooled table: no line of it (one sex across the age
    // bands and their total, one age band across the sexes and theirs) holds exactly one
    // withheld cell, which the line's other cells would give away.
    let pooled: Vec<&ComparisonRow> = c.rows.iter().filter(|r| r.kind == RowKind::Pooled).collect();
    for axis in 0..2 {
        let mut lines: std::collections::BTreeMap<Option<String>, usize> = std::collections::BTreeMap::new();
        for p in &pooled {
            let e = lines.entry(p.labels[1 - axis].clone()).or_default();
            *e += usize::from(p.status == "suppressed");
        }
        assert!(lines.values().all(|&n| n != 1), "a line of the pooled table with one withheld cell: {lines:?}");
    }
    // Without secure sums only the pooled cells without a withheld part are released.
    assert!(released > without_withheld_parts, "{released} pooled cells released, {without_withheld_parts} without a withheld part");

    // Population perspective: a home region's cell is released on its total, whatever its
    // residents' small parts at other agents; it equals the central sum.
    let questions: Vec<IndicatorQuery> = ["stroke_reperfusion", "diabetes_statin", "hf_hospitalisation_rate"]
        .iter()
        .map(|id| question(&format!(r#"{{"indicator":"{id}","breakdowns":["year"],"period":"2021..2025","options":{{"perspective":"population"}}}}"#)))
        .collect();
    let mut home_released = 0;
    for q in &questions {
        let secure = ask(&fed, q).await;
        assert!(secure.meta.secure_sum, "{}: home rows by secure sum", q.indicator);
        let truth = parts(&fed, q).await;
        for r in secure.rows.iter().filter(|r| r.kind == RowKind::Region && r.status != "suppressed") {
            let cell: Vec<&RawCell> = truth.iter().filter(|(_, t)| t.region == r.region && t.labels == labels(r)).map(|(_, t)| t).collect();
            let (num, den, _, _) = norrsken_agent::disclosure::components(c_kind(q), &sum_cells(&cell));
            assert_eq!((r.numerator, r.denominator), (num, den), "home {} {:?} of {}", r.region, r.labels, q.indicator);
            home_released += 1;
        }
    }
    fed.stop().await.unwrap();

    // The same questions without secure sums: a home cell is withheld when any agent withheld
    // its part, so fewer are released.
    let tmp2 = TempDir::new("secure-sum-off");
    let plain = start(tmp2.path(), false, false, None).await;
    let mut home_before = 0;
    for q in &questions {
        let before = ask(&plain, q).await;
        assert!(!before.meta.secure_sum);
        home_before += before.rows.iter().filter(|r| r.kind == RowKind::Region && r.status != "suppressed").count();
    }
    plain.stop().await.unwrap();
    assert!(home_released > home_before, "home cells released: {home_released} with secure sums, {home_before} without");
}

fn c_kind(q: &IndicatorQuery) -> norrsken_model::catalog::Kind {
    Catalog::embedded().get(&q.indicator, None).unwrap().kind
}

/// The sum of several regions' raw parts of one cell.
fn sum_cells(cells: &[&RawCell]) -> RawCell {
    let mut t = RawCell::empty("", vec![], None);
    for c in cells {
        t.units += c.units;
        t.persons += c.persons;
        t.numerator += c.numerator;
        t.numerator_persons += c.numerator_persons;
        t.population += c.population;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_union_keys_perturb_a_pooled_total_the_same_in_every_question() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("secure-sum-ckm");
    let fed = start(tmp.path(), true, true, None).await;
    let by_sex = ask(&fed, &question(r#"{"indicator":"diabetes_statin","breakdowns":["sex"],"period":"2024","options":{"totals":true}}"#)).await;
    let total = ask(&fed, &question(r#"{"indicator":"diabetes_statin","period":"2024"}"#)).await;
    let pooled = |c: &Comparison, l: Vec<Option<String>>| c.rows.iter().find(|r| r.kind == RowKind::Pooled && r.labels == l).cloned().unwrap();
    let a = pooled(&by_sex, vec![Some("total".into())]);
    let b = pooled(&total, vec![]);
    assert_eq!(a.status, "perturbed");
    assert_eq!((a.numerator, a.denominator), (b.numerator, b.denominator), "the same cell, the same noise");
    let truth = parts(&fed, &question(r#"{"indicator":"diabetes_statin","period":"2024"}"#)).await;
    let units: i64 = truth.iter().map(|(_, t)| t.units).sum();
    let d = b.denominator.unwrap();
    assert!((d - units).abs() <= 2, "perturbed {d} of {units}");
    // Quarters keep the rule of released parts (their lattice query is not a question yet),
    // and say so.
    let by_quarter = ask(&fed, &question(r#"{"indicator":"hip_fracture_surgery_24h","breakdowns":["quarter"],"period":"2023"}"#)).await;
    assert!(!by_quarter.meta.secure_sum);
    assert_eq!(by_quarter.rows.iter().filter(|r| r.kind == RowKind::Pooled).count(), 4, "four quarters");
    fed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_participant_set_for_the_same_cells_is_refused_and_audited() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("secure-sum-drop");
    // Agents that accept three participants, so the run ledger is what refuses.
    let fed = start(tmp.path(), true, false, Some(3)).await;
    let relay = Relay { requester_subject: "CN=analyst".into(), requester_role: "analyst".into(), ..Default::default() };
    let mut q = question(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2024"}"#);
    q.query_id = "drop-attack-1".into();
    let ticket = q.encode_ticket(Some(&relay));
    let body = |participants: &[&str]| {
        use base64::Engine as _;
        Bytes::from(serde_json::json!({"ticket": base64::engine::general_purpose::STANDARD.encode(&ticket), "participants": participants}).to_string())
    };
    let agent = &fed.agents[0];
    let region = agent.node.region.code;
    let mut client = client_as(&format!("https://{}", agent.server.addr), &fed.certs, "coordinator", &agent_dns_name(region)).await;
    let all = vec!["22", "23", "24", "25"];
    let first = run(&mut client, body(&all)).await.expect("the first run");
    assert_eq!(first.concat().len(), 3 * norrsken_model::secure::WORDS * 8, "three cells (female, male, total)");
    // The same run again is allowed (a retry), with the same masked vector.
    assert_eq!(run(&mut client, body(&all)).await.expect("a retry").concat(), first.concat());
    let without = vec!["22", "23", "24"];
    let refused = run(&mut client, body(&without)).await.expect_err("the drop attack is refused");
    assert!(refused.to_string().contains("participants"), "{refused}");
    // Too few participants for this agent's policy.
    assert!(run(&mut client, body(&["22", "23"])).await.is_err());
    // Both runs and the refusal are in the agent's audit log.
    let text: String = agent.node.base.audit.files().unwrap().iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect();
    let secure: Vec<&str> = text.lines().filter(|l| l.contains("\"secure_sum\"")).collect();
    assert!(secure.iter().filter(|l| l.contains("\"ok\"") && l.contains("\"query_id\":\"drop-attack-1\"")).count() >= 2, "{secure:?}");
    assert!(secure.iter().any(|l| l.contains("\"refused\"") && l.contains("drop-attack-1")), "{secure:?}");
    // A region without the coordinator's certificate may not ask.
    let mut other = client_as(&format!("https://{}", agent.server.addr), &fed.certs, "analyst", &agent_dns_name(region)).await;
    assert!(other.do_action(arrow_flight::Action::new("secure-sum", body(&all))).await.is_err());
    fed.stop().await.unwrap();
}
