//! Analyses end to end: age standardisation at the agents (and the attacks on it), and
//! compare / trend / equity / funnel through the coordinator over Flight (JSON and
//! protobuf tickets), the command-line tool, and a region that does not answer.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow_flight::{FlightDescriptor, FlightInfo};
use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_model::analysis::{AnalysisTable, Value};
use norrsken_model::answer::{CellStatus, Reason};
use norrsken_model::catalog::Catalog;
use norrsken_model::comparison::{Comparison, RowKind};
use norrsken_common::pki::COORDINATOR_DNS_NAME;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator, IndicatorQuery, QueryError};
use norrsken_model::standard::{standard, standardise};

use crate::attacks::{ask, node, perturbing_policy, truth, validate, with};
use crate::federation::query;
use crate::fixtures::{client_as, datalager, fetch, off_runtime, TempDir};

const K: i64 = 5;

fn standardised(q: IndicatorQuery, standard: &str) -> IndicatorQuery {
    with(q, |o| o.standardise = Some(standard.into()))
}

/// The attacks on standardisation (the side door of issue 25: a standardised value's
/// interval solved for the largest weight per person, under two standards, gave back exact
/// small bands): a standardised value rests only on released bands, none withheld for any
/// reason; it is the released bands' value under both standards, so solving it gives back
/// nothing the bands do not show; weights cannot be chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standardisation_rests_only_on_released_or_large_bands() {
    let tmp = TempDir::new("std-attack");
    // The smallest region, split finely: many small bands.
    let agent = node("jamtland", "23", perturbing_policy(&tmp)).await;
    let (mut with_value, mut without, mut recomputed) = (0, 0, 0);
    // A rare outcome (small bands) and a common one, finely split. Both are proportions: the
    // events are the numerator, the persons the denominator.
    for base in [query("stroke_mortality_30d", &["sex", "year"], "2021..2025"), query("diabetes_statin", &["sex", "kommun"], "2025")] {
    let (esp, se) = (standardised(base.clone(), "esp2013"), standardised(base.clone(), "se2020"));
    let a_esp = ask(&agent, &esp).await.unwrap();
    let a_se = ask(&agent, &se).await.unwrap();
    let exact = truth(&agent, &esp).await;
    let v = validate(&esp);
    let age = v.breakdowns.iter().position(|b| *b == norrsken_model::breakdown::Breakdown::AgeBand).unwrap();
    let bands = v.recipe.age_bands.labels();
    let events = |labels: &[String]| exact.cells.iter().find(|c| c.labels == labels && c.category.is_none()).map_or(0, |c| c.numerator);
    for (cell_esp, cell_se) in a_esp.cells.iter().zip(&a_se.cells) {
        assert_eq!(cell_esp.labels, cell_se.labels);
        if cell_esp.labels[age] != "total" {
            assert!(cell_esp.standardised.is_none(), "a band carries no standardised value");
            continue;
        }
        let band_labels = |b: &str| {
            let mut l = cell_esp.labels.clone();
            l[age] = b.to_string();
            l
        };
        match (cell_esp.standardised, cell_se.standardised) {
            (Some(d_esp), Some(d_se)) => {
                with_value += 1;
                // 1. No band of 1..k-1 events behind a released standardised value.
                for b in &bands {
                    let x = events(&band_labels(b));
                    assert!(x == 0 || x >= K, "band {b} of {:?} has {x} events behind a standardised value", cell_esp.labels);
                }
                // 2. Every band behind a standardised value is released (none withheld for any
                //    reason), so solving the value or its largest weight per person for a band
                //    gives back that band's released value and nothing else.
                let released: Vec<Option<(f64, f64)>> = bands
                    .iter()
                    .map(|b| {
                        a_esp.cells.iter().find(|c| c.labels == band_labels(b)).and_then(|c| Some((c.numerator? as f64, c.denominator? as f64)))
                    })
                    .collect();
                for (i, b) in bands.iter().enumerate() {
                    let shown = a_esp.cells.iter().find(|c| c.labels == band_labels(b));
                    assert!(shown.is_none_or(|c| c.status != CellStatus::Suppressed && released[i].is_some()), "band {b} of {:?} is withheld behind a standardised value", cell_esp.labels);
                }
                // 3. The agent's value is the released bands' value, under both standards.
                for (id, d) in [("esp2013", d_esp), ("se2020", d_se)] {
                    let w = standard(id).unwrap().weights(&v.recipe.age_bands);
                    let strata: Vec<(f64, f64)> = released.iter().map(|r| r.unwrap_or((0.0, 0.0))).collect();
                    let x = standardise(&strata, &w).unwrap();
                    assert!((x.value - d.value).abs() <= 1e-3 * x.value.abs().max(1e-9), "{id}: {} vs {}", x.value, d.value);
                }
                recomputed += 1;
            }
            (None, None) => {
                without += 1;
                if cell_esp.status != CellStatus::Suppressed {
                    assert!(cell_esp.reasons.contains(&Reason::NotStandardised), "{cell_esp:?}");
                }
            }
            other => panic!("the two standards decide differently on {:?}: {other:?}", cell_esp.labels),
        }
    }
    }
    assert!(with_value > 0 && without > 0 && recomputed > 0, "with {with_value}, without {without}, recomputed {recomputed}");
    eprintln!("standardised age totals: {with_value} with a value ({recomputed} recomputed from released bands), {without} without");

    let base = query("stroke_mortality_30d", &["sex", "year"], "2021..2025");

    // 4. No weights travel in a question: an unknown standard and a weights field are refused.
    let err = standardised(base.clone(), "custom").validate(&Catalog::embedded(), None).unwrap_err();
    assert!(matches!(&err, QueryError::Invalid { field: "options.standardise", .. }), "{err}");
    assert!(err.to_string().contains("esp2013"), "{err}");
    let json = r#"{"indicator":"stroke_mortality_30d","period":"2023","options":{"standardise":"esp2013","weights":[0,0,1]}}"#;
    let err = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("weights"), "{err}");
    // Nor a filter on the strata.
    let filtered = with(standardised(base.clone(), "esp2013"), |_| {});
    let filtered = IndicatorQuery { filters: [("age_band".to_string(), vec!["80+".to_string()])].into(), ..filtered };
    let err = filtered.validate(&Catalog::embedded(), None).unwrap_err();
    assert!(err.to_string().contains("age_band"), "{err}");
    // A recipe that does not allow it.
    let err = standardised(query("kpp_cost", &[], "2024"), "esp2013").validate(&Catalog::embedded(), None).unwrap_err();
    assert!(err.to_string().contains("not age-standardised"), "{err}");

}

/// A federation with the default protection (cell key method on, ledger off so the order
/// of tests does not matter).
struct Fed {
    #[allow(dead_code)]
    runtime: tokio::runtime::Runtime,
    federation: LocalFederation,
}

fn fed() -> &'static Fed {
    static FED: OnceLock<Fed> = OnceLock::new();
    FED.get_or_init(|| {
        norrsken_common::tls::install_crypto_provider();
        let dl = datalager().to_path_buf();
        off_runtime(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let dir = std::env::temp_dir().join(format!("norrsken-test-analysis-{}", std::process::id()));
            let options = LocalOptions { ledger: false, ..LocalOptions::default() };
            let federation = runtime.block_on(LocalFederation::start(&dl, &dir, &options)).unwrap();
            Fed { runtime, federation }
        })
    })
}

async fn client() -> arrow_flight::FlightClient {
    let f = fed();
    client_as(&f.federation.coordinator_url(), &f.federation.certs, "analyst", COORDINATOR_DNS_NAME).await
}

fn analysed(q: IndicatorQuery, kind: AnalysisKind, against: Comparator, dimension: Option<&str>, units: Option<&str>) -> IndicatorQuery {
    with(q, |o| o.analysis = Some(AnalysisSpec { kind, against, dimension: dimension.map(str::to_string), units: units.map(str::to_string) }))
}

async fn table(q: &IndicatorQuery) -> (Schema, AnalysisTable) {
    let mut c = client().await;
    let (schema, batches) = fetch(&mut c, q.encode_ticket(None)).await.unwrap();
    let t = AnalysisTable::from_batches(&schema, &batches).unwrap();
    (schema.as_ref().clone(), t)
}

fn text(t: &AnalysisTable, r: &[Value], c: &str) -> String {
    t.get(r, c).and_then(Value::as_text).unwrap_or_default().to_string()
}
fn num(t: &AnalysisTable, r: &[Value], c: &str) -> Option<f64> {
    t.get(r, c).and_then(Value::as_float)
}

/// A standardised comparison against the pooled value: JSON and protobuf tickets give the
/// same table, the description names its schema, values equal the comparison's
/// standardised values, and the flags follow the documented test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standardised_comparison_flags_significance_by_the_documented_test() {
    let q = analysed(standardised(query("diabetes_statin", &["sex"], "2021..2025"), "esp2013"), AnalysisKind::Compare, Comparator::Pooled, None, None);
    let (schema, t) = table(&q).await;
    // JSON ticket: the same rows.
    let json = serde_json::to_vec(&q).unwrap();
    let mut c = client().await;
    let (s2, b2) = fetch(&mut c, json).await.unwrap();
    assert_eq!(AnalysisTable::from_batches(&s2, &b2).unwrap().rows, t.rows);
    // The description (GetFlightInfo) names the same columns.
    let info: FlightInfo = c.get_flight_info(FlightDescriptor::new_cmd(q.encode_ticket(None))).await.unwrap();
    let described: Schema = info.try_decode_schema().unwrap();
    assert_eq!(described.fields(), schema.fields());
    assert_eq!(t.meta("standard"), Some("esp2013"));
    // The same question without the analysis: its standardised values.
    let plain = with(q.clone(), |o| o.analysis = None);
    let (ps, pb) = fetch(&mut c, plain.encode_ticket(None)).await.unwrap();
    let comparison = Comparison::from_batches(&ps, &pb).unwrap();
    let regions: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "region").collect();
    assert_eq!(regions.len(), 12, "four regions × (two sexes and their total)");
    let mut flagged = BTreeMap::new();
    for r in &regions {
        let (region, sex) = (text(&t, r, "region"), text(&t, r, "sex"));
        let c_row = comparison
            .rows
            .iter()
            .find(|x| x.kind == RowKind::Region && x.region == region && x.labels[0].as_deref() == Some(sex.as_str()) && x.labels[1].as_deref() == Some("total"))
            .unwrap();
        let sig = text(&t, r, "significance");
        *flagged.entry(sig.clone()).or_insert(0) += 1;
        match (c_row.standardised, num(&t, r, "value")) {
            (Some(e), Some(v)) => {
                assert!((e.value - v).abs() < 1e-9 * v.max(1.0), "{region} {sex}: {} vs {v}", e.value);
                let (lo, hi, comp) = (num(&t, r, "ci_lower").unwrap(), num(&t, r, "ci_upper").unwrap(), num(&t, r, "comparator_value"));
                match comp {
                    Some(p) => {
                        let outside = p < lo || p > hi;
                        assert_eq!(outside, sig != "similar", "{region} {sex}: pooled {p} vs {lo}-{hi}: {sig}");
                        // Statins in diabetes: higher is better.
                        if outside {
                            assert_eq!(sig, if v > p { "better" } else { "worse" });
                        }
                    }
                    None => assert_eq!(sig, "not_compared"),
                }
                // 99.8 % is wider: significant there only if at 95 %.
                if text(&t, r, "significance_998") != "similar" && text(&t, r, "significance_998") != "not_compared" {
                    assert_ne!(sig, "similar");
                }
            }
            (None, None) => assert_eq!(sig, "not_compared"),
            other => panic!("{region} {sex}: {other:?}"),
        }
    }
    assert!(flagged.keys().any(|k| k != "not_compared"), "{flagged:?}");
    eprintln!("standardised comparison flags: {flagged:?}");
}

/// Trend, equity and funnel through the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trend_equity_and_funnel_answer_every_region_side_by_side() {
    // Trend: yearly values equal the comparison by year; one trend row per region and pooled.
    let q = analysed(query("diabetes_statin", &[], "2021..2025"), AnalysisKind::Trend, Comparator::Pooled, None, None);
    let (_, t) = table(&q).await;
    let trends: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "trend").collect();
    assert_eq!(trends.len(), 5, "four regions and the pooled value");
    for r in &trends {
        let flag = text(&t, r, "flag");
        assert!(["improving", "worsening", "no_significant_change"].contains(&flag.as_str()), "{flag}: {} {:?}", text(&t, r, "note"), t.rows);
        let (c, lo, hi) = (num(&t, r, "change").unwrap(), num(&t, r, "change_lower").unwrap(), num(&t, r, "change_upper").unwrap());
        assert!(lo < c && c < hi);
        assert_eq!(flag == "no_significant_change", lo <= 1.0 && hi >= 1.0);
        assert_eq!(text(&t, r, "change_unit"), "odds ratio per year");
        assert_eq!(t.get(r, "years").and_then(Value::as_int), Some(5));
    }
    let mut c = client().await;
    let by_year = query("diabetes_statin", &["year"], "2021..2025");
    let (s, b) = fetch(&mut c, by_year.encode_ticket(None)).await.unwrap();
    let comparison = Comparison::from_batches(&s, &b).unwrap();
    for r in t.rows.iter().filter(|r| text(&t, r, "row") == "year") {
        let year = t.get(r, "year").and_then(Value::as_int).unwrap().to_string();
        let row = comparison.rows.iter().find(|x| x.region == text(&t, r, "region") && x.labels[0].as_deref() == Some(year.as_str())).unwrap();
        assert_eq!(row.estimate.map(|e| e.value), num(&t, r, "value"));
    }

    // Equity by education: the gap is the last group's value minus the first's.
    let q = analysed(query("diabetes_statin", &[], "2021..2025"), AnalysisKind::Equity, Comparator::Pooled, Some("education"), None);
    let (_, t) = table(&q).await;
    let gaps: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "gap").collect();
    assert_eq!(gaps.len(), 5);
    let mut with_sii = 0;
    for g in &gaps {
        let region = text(&t, g, "region");
        let value_of = |group: &str| t.rows.iter().find(|r| text(&t, r, "row") == "group" && text(&t, r, "region") == region && text(&t, r, "group") == group).and_then(|r| num(&t, r, "value"));
        let (Some(a), Some(b)) = (value_of("primary"), value_of("tertiary")) else {
            assert!(num(&t, g, "abs_gap").is_none() && !text(&t, g, "note").is_empty());
            continue;
        };
        assert_eq!((text(&t, g, "from_group").as_str(), text(&t, g, "to_group").as_str()), ("primary", "tertiary"));
        assert!((num(&t, g, "abs_gap").unwrap() - (b - a)).abs() < 1e-12);
        assert!((num(&t, g, "rel_gap").unwrap() - b / a).abs() < 1e-12);
        if let Some(sii) = num(&t, g, "sii") {
            let (lo, hi) = (num(&t, g, "sii_lower").unwrap(), num(&t, g, "sii_upper").unwrap());
            assert!(lo < sii && sii < hi, "{region}: {lo} {sii} {hi}");
            assert!(num(&t, g, "rii").unwrap() > 0.0);
            with_sii += 1;
        }
    }
    assert!(with_sii >= 1, "the pooled rows at least have an SII");

    // Funnel of kommuner against the target: ordered limits, positions that follow them.
    let q = analysed(query("diabetes_statin", &[], "2021..2025"), AnalysisKind::Funnel, Comparator::Pooled, None, Some("kommun"));
    let (_, t) = table(&q).await;
    let units: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "unit").collect();
    assert!(units.len() >= 30, "{} kommuner", units.len());
    assert!(t.meta("overdispersion").unwrap().contains("φ ="), "{:?}", t.meta("overdispersion"));
    let (x, n) = units.iter().fold((0i64, 0i64), |(x, n), u| match num(&t, u, "value") {
        Some(_) => (x + t.get(u, "numerator").and_then(Value::as_int).unwrap(), n + t.get(u, "denominator").and_then(Value::as_int).unwrap()),
        None => (x, n),
    });
    let pooled = x as f64 / n as f64;
    let mut outside = 0;
    for u in &units {
        let Some(v) = num(&t, u, "value") else { continue };
        let (l998, l95, centre, u95, u998) = (
            num(&t, u, "lower_998").unwrap(),
            num(&t, u, "lower_95").unwrap(),
            num(&t, u, "centre").unwrap(),
            num(&t, u, "upper_95").unwrap(),
            num(&t, u, "upper_998").unwrap(),
        );
        assert!(l998 <= l95 && l95 <= centre && centre <= u95 && u95 <= u998);
        assert!((centre - pooled).abs() < 1e-12, "the units' pooled value is the centre");
        let pos = text(&t, u, "position");
        let expect = if v > u998 { "above_998" } else if v > u95 { "above_95" } else if v < l998 { "below_998" } else if v < l95 { "below_95" } else { "within" };
        assert_eq!(pos, expect);
        outside += usize::from(pos != "within");
    }
    eprintln!("funnel: {} kommuner, {outside} outside the 95 % limits", units.len());
    assert!(t.rows.iter().filter(|r| text(&t, r, "row") == "limit").count() > 10);

    // Refusals name the field: a target the recipe does not have; others in a funnel.
    let mut c = client().await;
    let bad = analysed(query("stroke_mortality_30d", &[], "2024"), AnalysisKind::Compare, Comparator::Target, None, None);
    let e = fetch(&mut c, bad.encode_ticket(None)).await.unwrap_err();
    assert!(e.message().contains("options.analysis.against") && e.message().contains("target"), "{}", e.message());
    let bad = analysed(query("stroke_mortality_30d", &[], "2024"), AnalysisKind::Equity, Comparator::Pooled, Some("kommun"), None);
    let e = fetch(&mut c, bad.encode_ticket(None)).await.unwrap_err();
    assert!(e.message().contains("options.analysis.dimension"), "{}", e.message());
}

/// The command-line tool prints the flags in words; a region that does not answer makes
/// the analysis partial and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_flags_in_words_and_a_missing_region_is_named() {
    let f = fed();
    let certs = &f.federation.certs;
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_norrsken"))
            .args(args)
            .env("NORRSKEN_COORDINATOR", f.federation.coordinator_url())
            .env("NORRSKEN_CERT", certs.join("analyst.pem"))
            .env("NORRSKEN_KEY", certs.join("analyst.key"))
            .env("NORRSKEN_CA", certs.join("ca.pem"))
            .env("LANG", "C")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let out = off_runtime(|| run(&["compare", "diabetes_statin", "--period", "2021..2025", "--standardise", "esp2013"]));
    assert!(out.contains("age-standardised to esp2013") && out.contains("compared with the pooled value"), "{out}");
    assert!(["significantly better", "significantly worse", "no significant difference"].iter().any(|w| out.contains(w)), "{out}");
    let out = off_runtime(|| run(&["equity", "diabetes_statin", "--period", "2021..2025", "--dimension", "education"]));
    assert!(out.contains("tertiary vs primary") && out.contains("SII"), "{out}");
    let out = off_runtime(|| run(&["trend", "diabetes_statin", "--period", "2021..2025"]));
    assert!(out.contains("odds ratio per year") && out.contains("2025"), "{out}");
    let out = off_runtime(|| run(&["funnel", "stroke_reperfusion", "--period", "2021..2025", "--against", "target"]));
    assert!(out.contains("overdispersion not estimated"), "{out}");
    let json = off_runtime(|| run(&["compare", "hf_raas_bb", "--period", "2024", "--against", "target", "--format", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(rows.as_array().unwrap().iter().any(|r| r["comparator"] == "target" && r["comparator_value"] == 0.65), "{json}");

    // Region 22 down: the analysis is partial and names it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let coordinator = crate::federation::coordinator_with_federation(&f.federation, closed, 2_000).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut c = client_as(&url, certs, "analyst", COORDINATOR_DNS_NAME).await;
    let q = analysed(query("diabetes_statin", &[], "2021..2025"), AnalysisKind::Compare, Comparator::Others, None, None);
    let (s, b) = fetch(&mut c, q.encode_ticket(None)).await.unwrap();
    let t = AnalysisTable::from_batches(&s, &b).unwrap();
    assert_eq!(t.meta("partial"), Some("true"));
    assert!(t.meta("partial_note").unwrap().contains("Västernorrland"), "{:?}", t.meta("partial_note"));
    assert!(t.rows.iter().all(|r| text(&t, r, "region") != "22"));
    assert!(t.rows.iter().any(|r| text(&t, r, "row") == "region" && text(&t, r, "significance") != "not_compared"));
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
}

/// The side door through analyses (issue 25): every trend, equity and funnel number the
/// coordinator releases is computed from the released comparison alone. Each analysis is
/// asked of the federation (the cell key method on), the comparison it rests on is asked
/// on its own, and the analysis recomputed from that comparison by the same code gives the
/// same table; a unit whose cell is withheld carries no value in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyses_rest_only_on_released_cells() {
    let catalog = Catalog::embedded();
    let mut checked = 0;
    let mut withheld_units = 0;
    for (indicator, period, kind, dimension, units) in [
        ("stroke_reperfusion", "2021..2025", AnalysisKind::Trend, None, None),
        ("diabetes_statin", "2021..2025", AnalysisKind::Trend, None, None),
        ("diabetes_hba1c_over_70", "2021..2025", AnalysisKind::Equity, Some("education"), None),
        ("diabetes_statin", "2021..2025", AnalysisKind::Equity, Some("birth_country"), None),
        ("stroke_reperfusion", "2021..2025", AnalysisKind::Funnel, None, Some("kommun")),
        ("hip_fracture_surgery_24h", "2021..2023", AnalysisKind::Funnel, None, None),
    ] {
        let q = analysed(query(indicator, &[], period), kind, Comparator::Pooled, dimension, units);
        let (_, released) = table(&q).await;
        // The comparison the analysis rests on: the question without the analysis, with the
        // breakdowns the analysis adds.
        let v = validate(&q);
        let spec = v.options.analysis.clone().unwrap();
        let mut plain = q.clone();
        plain.options.analysis = None;
        plain.breakdowns = v.breakdowns.iter().map(|b| b.name().to_string()).collect();
        let mut c = client().await;
        let (s, b) = fetch(&mut c, plain.encode_ticket(None)).await.unwrap();
        let comparison = Comparison::from_batches(&s, &b).unwrap();
        let recipe = catalog.get(indicator, None).unwrap();
        let again = norrsken_coordinator::analysis::analyse(&spec, &comparison, &recipe).unwrap();
        assert_eq!(again.rows, released.rows, "{indicator} {kind:?}: the analysis is not the released comparison's");
        // Withheld units show no value.
        for row in comparison.rows.iter().filter(|r| r.status == CellStatus::Suppressed.name()) {
            withheld_units += 1;
            assert!(row.estimate.is_none() && row.numerator.is_none(), "{indicator}: a withheld row carries a value: {row:?}");
        }
        checked += 1;
    }
    eprintln!("analyses: {checked} trend, equity and funnel tables recomputed from their released comparisons ({withheld_units} withheld units carry no value)");
    assert!(withheld_units > 0, "some unit must be withheld for the test to mean anything");
}

/// A count is not tested against the sum of regions (or the others): each region's row
/// keeps its value, is `not_compared` and says why; equity gaps and funnel plots of a count
/// are refused with the reason; its trend is computed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_is_shown_not_compared_against_a_sum() {
    for against in [Comparator::Pooled, Comparator::Others] {
        let (_, t) = table(&analysed(query("stroke_admissions", &[], "2021..2025"), AnalysisKind::Compare, against, None, None)).await;
        let regions: Vec<&Vec<Value>> = t.rows.iter().filter(|r| text(&t, r, "row") == "region").collect();
        assert_eq!(regions.len(), 4, "{against:?}");
        for r in regions {
            assert!(num(&t, r, "value").is_some_and(|v| v > 0.0), "{against:?}: the count is shown");
            assert_eq!(text(&t, r, "significance"), "not_compared", "{against:?}");
            assert_eq!(text(&t, r, "note"), "count_not_compared", "{against:?}");
            assert!(norrsken_model::vocabulary::analysis_note(&text(&t, r, "note"), norrsken_model::vocabulary::Lang::En).contains("A count is not compared"));
            assert!(num(&t, r, "comparator_value").is_none(), "{against:?}: no sum of regions as comparator");
        }
    }
    for (kind, dimension, what) in [(AnalysisKind::Equity, Some("sex"), "equity gaps"), (AnalysisKind::Funnel, None, "a funnel plot")] {
        let by: &[&str] = if dimension.is_some() { &["sex"] } else { &[] };
        let q = analysed(query("stroke_admissions", by, "2021..2025"), kind, Comparator::Pooled, dimension, None);
        let mut c = client().await;
        let e = fetch(&mut c, q.encode_ticket(None)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains("is a count") && e.message().contains(what), "{e}");
    }
    let (_, t) = table(&analysed(query("stroke_admissions", &["year"], "2021..2025"), AnalysisKind::Trend, Comparator::Pooled, None, None)).await;
    assert!(t.rows.iter().any(|r| text(&t, r, "row") == "trend" && num(&t, r, "change").is_some()), "a count's trend is computed");
}
