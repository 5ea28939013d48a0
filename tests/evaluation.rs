//! Evaluations across regions end to end (docs/analysis.md, "Evaluations across regions"):
//! a synthetic datalager with a mobile team whose effect is known per region, four agents
//! and a coordinator with the default protection, and the cohort recipes' evaluation asked
//! over Flight and with the command-line tool. The estimates must hold the true effects in
//! their intervals, the comparison group must show the regression to the mean that a
//! before/after design would count as an effect, and the meta-analysis must find the
//! regions' different effects heterogeneous. The cohort questions obey the disclosure rules.

use std::process::Command;

use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_common::pki::COORDINATOR_DNS_NAME;
use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::answer::CellStatus;
use norrsken_model::geography::NORRA;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator, IndicatorQuery};
use norrsken_synth::{generate, InterventionSettings, InterventionTruth, SynthOptions};

use crate::attacks::{ask, node_at, node_with_ledger, perturbing_policy, truth, with};
use norrsken_agent::engine::EngineOptions;
use crate::federation::query;
use crate::fixtures::{client_as, fetch, norrsken_as_analyst, off_runtime, TempDir};

const K: i64 = 5;

fn evaluate(indicator: &str, period: &str) -> IndicatorQuery {
    with(query(indicator, &[], period), |o| o.analysis = Some(AnalysisSpec { kind: AnalysisKind::Evaluate, against: Comparator::Pooled, dimension: None, units: None }))
}

fn text(t: &AnalysisTable, r: &[Value], c: &str) -> String {
    t.get(r, c).and_then(Value::as_text).unwrap_or_default().to_string()
}
fn num(t: &AnalysisTable, r: &[Value], c: &str) -> f64 {
    t.get(r, c).and_then(Value::as_float).unwrap_or(f64::NAN)
}

/// A datalager where many older residents are frail, so that every region's cohort is
/// large enough to estimate an effect, with the given share of frailty admissions the team
/// avoids per region.
fn intervention_datalager(tmp: &TempDir, effects: [(&str, f64); 4]) -> std::path::PathBuf {
    // Telemetry first: every node of the test run records into the test exporters.
    crate::fixtures::telemetry();
    let out = tmp.path().join("datalager");
    let effects = effects.map(|(c, e)| (c.to_string(), e)).to_vec();
    let intervention = InterventionSettings { frail_share: 0.6, effects, ..InterventionSettings::default() };
    generate(&SynthOptions { out: out.clone(), scale: 0.25, seed: 7, intervention: Some(intervention), ..Default::default() }).unwrap();
    out
}

/// A federation over `dl` with the default protection (the ledger off).
async fn federation(dl: &std::path::Path, tmp: &TempDir) -> (LocalFederation, arrow_flight::FlightClient) {
    norrsken_common::tls::install_crypto_provider();
    let federation = LocalFederation::start(dl, &tmp.path().join("run"), &LocalOptions { ledger: false, ..LocalOptions::default() }).await.unwrap();
    let client = client_as(&federation.coordinator_url(), &federation.certs, "analyst", COORDINATOR_DNS_NAME).await;
    (federation, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_recovers_the_known_effects_and_finds_them_heterogeneous() {
    let tmp = TempDir::new("evaluation");
    // The team avoids most frailty admissions, except in Jämtland Härjedalen.
    let dl = intervention_datalager(&tmp, [("25", 0.8), ("24", 0.7), ("23", 0.2), ("22", 0.75)]);
    let (federation, mut client) = federation(&dl, &tmp).await;
    let truths: Vec<(String, InterventionTruth)> = NORRA.iter().map(|r| (r.code.to_string(), InterventionTruth::read(&dl.join(r.slug)).unwrap())).collect();

    for (indicator, truth_of) in [
        ("mobile_team_inpatient", (|t: &InterventionTruth| t.stays_effect) as fn(&InterventionTruth) -> f64),
        ("mobile_team_cost", |t: &InterventionTruth| t.cost_effect),
    ] {
        let (schema, batches) = fetch(&mut client, evaluate(indicator, "2023..2025").encode_ticket(None)).await.unwrap();
        let t = AnalysisTable::from_batches(&schema, &batches).unwrap();
        assert_eq!(t.kind, AnalysisKind::Evaluate);
        assert_eq!(t.meta("design"), Some("did"), "{indicator}");
        let regions: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "region").collect();
        assert_eq!(regions.len(), 4, "{indicator}: one row per region");
        for r in &regions {
            let region = text(&t, r, "region");
            let truth = &truths.iter().find(|(c, _)| *c == region).unwrap().1;
            let known = truth_of(truth);
            let (effect, lower, upper) = (num(&t, r, "effect"), num(&t, r, "effect_lower"), num(&t, r, "effect_upper"));
            let what = format!("{indicator} in {region}: effect {effect:.3} ({lower:.3} to {upper:.3}), known {known:.3} over {} who joined", truth.exposed);
            assert!(t.get(r, "n").and_then(Value::as_int).unwrap_or(0) >= 30, "{what}: too few who joined");
            assert!(lower <= known && known <= upper, "{what}: the interval misses the known effect");
            // The comparison group's use falls too (chosen at a high point): regression to the
            // mean, which the difference in differences removes.
            if indicator == "mobile_team_inpatient" {
                let fallback = num(&t, r, "comparison_change");
                assert!(fallback < 0.0 && num(&t, r, "comparison_change_upper") < 0.0, "{what}: the comparison group falls back ({fallback})");
                assert!(num(&t, r, "change") < effect, "{what}: the naive change counts the fall-back as effect");
            }
        }
        let random = t.rows.iter().find(|r| text(&t, r, "row") == "random").unwrap_or_else(|| panic!("{indicator}: no meta-analysis row"));
        assert_eq!(t.get(random, "k").and_then(Value::as_int), Some(4));
        let weights: f64 = regions.iter().map(|r| num(&t, r, "weight")).sum();
        assert!((weights - 100.0).abs() < 1e-6, "weights {weights}");
        let prediction = t.rows.iter().find(|r| text(&t, r, "row") == "prediction").unwrap();
        assert!(num(&t, prediction, "effect_lower") < num(&t, random, "effect_lower"), "the prediction interval is wider");
        if indicator == "mobile_team_inpatient" {
            let (i2, q_p) = (num(&t, random, "i2"), num(&t, random, "q_p"));
            assert!(q_p < 0.05 && i2 > 0.5, "{indicator}: heterogeneity not found: I² {i2}, Q p {q_p}");
            assert_eq!(text(&t, random, "consistency"), "varies", "{indicator}");
        }
    }

    // The command-line tool, in Swedish.
    let certs = federation.certs.clone();
    let url = federation.coordinator_url();
    let out = norrsken_as_analyst(&url, &certs, &["evaluate", "mobile_team_inpatient", "--period", "2023..2025", "--lang", "sv"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Skillnad i skillnader") && stdout.contains("Metaanalys, slumpeffekt") && stdout.contains("varierar mellan regionerna"), "{stdout}");
    assert!(stdout.contains("Jämtland Härjedalen"), "{stdout}");

    // A regional report with the evaluation as its page: each region's effect, the pooled
    // effect, the verdict; in the summary too; and as a PDF.
    for out in ["report.json", "report.pdf"] {
        let path = tmp.path().join(out);
        let path_arg = path.to_string_lossy().to_string();
        let run = norrsken_as_analyst(
            &url,
            &certs,
            &["report", "--region", "23", "--indicators", "mobile_team_inpatient,stroke_reperfusion", "--period", "2023..2025", "--lang", "sv", "--out", &path_arg],
        );
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        if out.ends_with(".json") {
            let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let section = &report["indicators"][0];
            assert_eq!(section["evaluation"]["consistency"], "varies", "{section}");
            assert_eq!(section["evaluation"]["design"], "did");
            let rows = section["regions"].as_array().unwrap();
            assert_eq!(rows.iter().filter(|r| r["row"] == "region" && r["value"].is_number()).count(), 4, "{section}");
            assert_eq!(rows.iter().filter(|r| r["row"] == "pooled").count(), 1, "the random-effects estimate");
            assert_eq!(section["focus"]["region"], "23");
            assert!(report["indicators"][1]["evaluation"].is_null(), "an ordinary indicator has no evaluation");
            // Every section carries its quality declaration, by SCB's four components.
            for i in 0..2 {
                let d = report["indicators"][i]["declaration"].as_str().unwrap_or_default();
                assert!(["Relevans:", "Tillförlitlighet:", "Aktualitet:", "Jämförbarhet: samma receptversion i alla 4 regioner"].iter().all(|w| d.contains(w)), "{d}");
            }
            let summary = report["summary"].to_string();
            assert!(summary.contains("Utvärdering") && summary.contains("varierar mellan regionerna"), "{summary}");
        } else {
            let text = off_runtime(|| {
                Command::new("python3").args(["-c", "import sys, pypdf; print(''.join(p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages))"]).arg(&path).output().unwrap()
            });
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(text.contains("Effekt per region och sammanvägd effekt") && text.contains("Metaanalys, slumpeffekt"), "{text}");
        }
    }
    federation.stop().await.unwrap();
}

/// The same effect in every region: no heterogeneity found, and a new region can expect the
/// effect too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_effect_everywhere_is_found_consistent() {
    let tmp = TempDir::new("evaluation-alike");
    let dl = intervention_datalager(&tmp, [("25", 0.7), ("24", 0.7), ("23", 0.7), ("22", 0.7)]);
    let (federation, mut client) = federation(&dl, &tmp).await;
    let (schema, batches) = fetch(&mut client, evaluate("mobile_team_inpatient", "2023..2025").encode_ticket(None)).await.unwrap();
    let t = AnalysisTable::from_batches(&schema, &batches).unwrap();
    let random = t.rows.iter().find(|r| text(&t, r, "row") == "random").unwrap();
    let (i2, q_p) = (num(&t, random, "i2"), num(&t, random, "q_p"));
    assert!(q_p > 0.05, "heterogeneity found where there is none: I² {i2}, Q p {q_p}");
    assert_eq!(text(&t, random, "consistency"), "consistent");
    assert!(num(&t, random, "effect_upper") < 0.0);
    federation.stop().await.unwrap();
}

/// A cohort question obeys the disclosure rules like any other: no released cell of 1..k-1
/// persons, and every value perturbed by the cell key method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohort_questions_release_no_small_cell() {
    crate::fixtures::telemetry();
    let tmp = TempDir::new("cohort-attack");
    let out = tmp.path().join("dl");
    let intervention = InterventionSettings { frail_share: 0.3, ..InterventionSettings::default() };
    generate(&SynthOptions { out: out.clone(), scale: 0.01, seed: 3, regions: vec!["23".into()], intervention: Some(intervention), ..Default::default() }).unwrap();
    let agent = node_at(&out.join("jamtland"), "23", perturbing_policy(&tmp)).await;
    let mut small = 0;
    for (indicator, by) in [("mobile_team_inpatient", vec!["sex", "age_band"]), ("mobile_team_cost", vec!["year"]), ("mobile_team_inpatient", vec![])] {
        let q = with(query(indicator, &by, "2023..2025"), |o| o.totals = true);
        let answer = ask(&agent, &q).await.unwrap();
        let exact = truth(&agent, &q).await;
        for c in &answer.cells {
            let raw = exact.cells.iter().find(|r| r.labels == c.labels).unwrap();
            if (1..K).contains(&(raw.units as i64)) {
                small += 1;
                assert_eq!(c.status, CellStatus::Suppressed, "{indicator} by {by:?}: a cell of {} persons released: {c:?}", raw.units);
            }
            if c.status != CellStatus::Suppressed {
                assert!(c.denominator.unwrap_or(0) >= K, "{c:?}");
            }
        }
    }
    assert!(small > 0, "the fine cohort cells include small ones");

    // The release ledger records each measure's slice, and an agent opened again on that
    // ledger replays it and answers the same.
    let ledger = tmp.path().join("ledger");
    let q = query("mobile_team_cost", &["sex"], "2023..2025");
    let first = node_with_ledger(&out.join("jamtland"), "23", perturbing_policy(&tmp), EngineOptions::default(), Some(ledger.clone())).await;
    let a = ask(&first, &q).await.unwrap();
    drop(first);
    let again = node_with_ledger(&out.join("jamtland"), "23", perturbing_policy(&tmp), EngineOptions::default(), Some(ledger)).await;
    let b = ask(&again, &q).await.unwrap();
    assert_eq!(a.cells, b.cells, "the same answer after the ledger's replay");
    assert_eq!(a.breakdowns, b.breakdowns);
}
