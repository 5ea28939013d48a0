//! The HTTPS front door: a JSON API with mutual TLS, called by Python's standard library
//! (ssl + urllib) as a browser or script would; answers equal the Flight answer, strangers
//! get no page.

use std::process::Command;

use norrsken_model::comparison::{Comparison, RowKind};
use serde_json::Value;

use crate::federation::{analyst, query};
use crate::fixtures::{federation, fetch, off_runtime};

const CLIENT: &str = r#"
import json, ssl, sys, urllib.request
base, certs, ticket = sys.argv[1], sys.argv[2], sys.argv[3]
def ctx(cert=True):
    c = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    # The development server certificate names coordinator.norrsken.local, the URL 127.0.0.1;
    # the chain is still verified against the CA.
    c.check_hostname = False
    if cert:
        c.load_cert_chain(f"{certs}/analyst.pem", f"{certs}/analyst.key")
    return c
out = {}
with urllib.request.urlopen(f"{base}/api/catalog", context=ctx()) as r:
    out["catalog"] = json.load(r)
with urllib.request.urlopen(f"{base}/api/whoami", context=ctx()) as r:
    out["whoami"] = json.load(r)
with urllib.request.urlopen(urllib.request.Request(f"{base}/api/query", data=ticket.encode(), method="POST"), context=ctx()) as r:
    out["query"] = json.load(r)
try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/api/query", data=b'{"indicator":"nope","period":"2024"}', method="POST"), context=ctx())
    out["bad"] = None
except urllib.error.HTTPError as e:
    out["bad"] = {"status": e.code, "body": json.load(e)}
try:
    urllib.request.urlopen(f"{base}/api/catalog", context=ctx(cert=False))
    out["no_certificate"] = None
except Exception as e:
    out["no_certificate"] = f"{type(e).__name__}: {e}"
json.dump(out, sys.stdout)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_api_answers_like_the_flight_api() {
    let f = federation();
    let base = f.federation.web_url().expect("the local coordinator serves HTTPS");
    let q = query("diabetes_statin", &["year"], "2023..2024");
    let ticket = serde_json::to_string(&q).unwrap();
    let output = off_runtime(|| Command::new("python3").args(["-c", CLIENT, &base]).arg(&f.certs).arg(&ticket).output().unwrap());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(out["catalog"]["recipes"].as_array().unwrap().iter().any(|r| r["id"] == "diabetes_statin"));
    assert_eq!(out["whoami"]["cn"], "analyst");
    assert_eq!(out["whoami"]["role"], "analyst");
    assert!(out["whoami"]["fingerprint"].as_str().unwrap().starts_with("sha256:"), "{}", out["whoami"]);
    // The comparison's rows and metadata, equal to the Flight answer.
    let mut client = analyst().await;
    let (s, b) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    let flight = Comparison::from_batches(&s, &b).unwrap();
    let rows = out["query"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), flight.rows.len());
    for r in flight.rows.iter().filter(|r| r.kind == RowKind::Region) {
        let row = rows.iter().find(|x| x["region"] == r.region.as_str() && x["year"] == r.labels[0].as_deref().unwrap()).unwrap();
        assert_eq!(row["numerator"].as_i64(), r.numerator);
        assert_eq!(row["value"].as_f64(), r.estimate.map(|e| e.value));
    }
    assert_eq!(out["query"]["metadata"]["norrsken.recipe"], "diabetes_statin@1");
    assert!(out["query"]["metadata"]["norrsken.audit_seq"].is_string(), "the answer names its audit record");
    // Errors map to HTTP codes and name the problem.
    assert_eq!(out["bad"]["status"], 404, "{}", out["bad"]);
    assert_eq!(out["bad"]["body"]["kind"], "not_found");
    // No certificate: no page.
    assert!(out["no_certificate"].is_string());
}

/// The web app in a real browser (tests/web_ui.py: Playwright from PyPI driving Debian's
/// Chromium with the analyst's client certificate) against a federation of its own with the
/// default protection (perturbation and the release ledger on): what the pages show equals
/// the Flight answer; the report prints and downloads; strangers get no page; with an agent
/// stopped the partial marking is visible. Screenshots go to `<target>/tmp/web-ui/`.
#[test]
fn the_web_app_in_a_real_browser() {
    use norrsken::local::{LocalFederation, LocalOptions};
    use norrsken::pki_dev::{CertSpec, CertificateAuthority};
    use norrsken_common::pki::COORDINATOR_DNS_NAME;
    use norrsken_model::query::IndicatorQuery;

    use crate::fixtures::{client_as, datalager, TempDir};

    norrsken_common::tls::install_crypto_provider();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let tmp = TempDir::new("web-ui");
    // A certificate from another CA, with the analyst's name.
    let other = tmp.path().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let other_ca = CertificateAuthority::generate("Some other CA", 2).unwrap();
    let stranger = other_ca.issue(&CertSpec::new("analyst", "analyst", false, true, 2)).unwrap();
    std::fs::write(other.join("analyst.pem"), stranger.cert_pem).unwrap();
    std::fs::write(other.join("analyst.key"), stranger.key_pem).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut fed = runtime.block_on(LocalFederation::start(datalager(), tmp.path(), &LocalOptions::default())).unwrap();
    let base = fed.web_url().expect("the coordinator serves the web app");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web_ui.py");
    let run = |phase: &str| -> Value {
        let output = Command::new("python3").arg(script).arg(phase).arg(&base).arg(&fed.certs).arg(&other).arg(&out).output().unwrap();
        assert!(output.status.success(), "web_ui.py {phase}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
    };
    let ui = run("main");
    assert_eq!(ui["page_errors"], serde_json::json!([]), "no script errors");

    // WCAG 2 A/AA (axe-core): no violations on the catalog, the indicator view or a report.
    for page in ["axe_catalog", "axe_indicator", "axe_report", "axe_evaluation", "axe_quality"] {
        assert_eq!(ui[page], serde_json::json!([]), "{page}: {}", ui[page]);
    }

    // An evaluation across regions: a row per region in the table, no error; each effect
    // drawn has its interval.
    let ev = &ui["evaluation"];
    assert_eq!(ev["errors"].as_u64(), Some(0), "{ev}");
    let rows = ev["rows"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["data"]["row"] == "region").count(), 4, "{ev}");
    let estimated = rows.iter().filter(|r| r["data"]["row"] == "region" && r["data"].get("effect").is_some()).count() as u64;
    assert!(ev["effects"].as_u64().unwrap() >= estimated, "every region with an effect is a mark: {ev}");

    // Data quality: five checks, each with a band for the four regions; the clean test
    // datalager has no finding.
    let quality = &ui["quality"];
    assert_eq!(quality["errors"].as_u64(), Some(0), "{quality}");
    let rows = quality["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{quality}");
    assert!(rows.iter().all(|r| r["cells"].as_array().unwrap().len() == 5), "a check and four regions: {quality}");
    assert_eq!(quality["findings"].as_array().unwrap().len(), 0, "{quality}");
    assert!(quality["ok_text"].as_str().unwrap().starts_with("Inga avvikelser"), "{quality}");
    assert_eq!(quality["nav"], "page");

    // Catalog: every recipe, searchable by title and programme area.
    let recipes = fed.coordinator.node.base.catalog.latest().len() as u64;
    assert_eq!(ui["catalog_cards"].as_u64(), Some(recipes));
    assert!(ui["catalog_stroke"].as_u64().unwrap() >= 3 && ui["catalog_stroke"].as_u64().unwrap() < recipes, "{}", ui["catalog_stroke"]);
    assert_eq!(ui["catalog_area"].as_u64(), Some(4), "the four diabetes recipes are in Endokrina sjukdomar");
    assert!(ui["who"].as_str().unwrap().contains("analyst"), "{}", ui["who"]);

    // The indicator view's chart: one mark per region, an interval for each released row
    // (and the pooled one), the target line.
    assert_eq!(ui["compare_dots"].as_u64(), Some(4), "{}", ui["cells_plain"]);
    assert_eq!(ui["compare_pooled"].as_u64(), Some(1));
    assert_eq!(ui["compare_intervals"].as_u64(), Some(5));
    assert_eq!(ui["compare_target"].as_u64(), Some(1), "hip_fracture_surgery_24h has a target");
    assert_eq!(ui["funnel_dots"].as_u64(), Some(4), "one funnel dot per region");
    assert_eq!(ui["trend_rows"].as_array().unwrap().len(), 5, "a change per year for four regions and the pooled value");
    assert!(!ui["equity_rows"].as_array().unwrap().is_empty());
    assert_eq!(ui["partial_banners"].as_u64(), Some(0));
    assert!(ui["std_header"].as_str().unwrap().contains("Åldersstandardiserat"), "{}", ui["std_header"]);
    assert_eq!(ui["std_errors"].as_u64(), Some(0));
    assert!((1..=4).contains(&ui["std_dots"].as_u64().unwrap()), "standardised values drawn: {}", ui["std_dots"]);
    let prov = ui["provenance"].as_str().unwrap();
    assert!(prov.contains("hip_fracture_surgery_24h@1") && prov.contains("Västerbotten") && prov.contains("Alla tillfrågade regioner svarade"), "{prov}");
    let cached_ms = ui["cached_view_ms"].as_u64().expect("the cached view's time");
    let reload_ms = ui["reload_view_ms"].as_u64().expect("the reloaded view's time");

    // The table's values equal the Flight answer for the same question.
    let flight = |q: IndicatorQuery| {
        runtime.block_on(async {
            let mut client = client_as(&fed.coordinator_url(), &fed.certs, "analyst", COORDINATOR_DNS_NAME).await;
            let (s, b) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
            Comparison::from_batches(&s, &b).unwrap()
        })
    };
    let check = |shown: &Value, c: &Comparison| {
        let rows = shown.as_array().unwrap();
        assert_eq!(rows.len(), c.rows.len(), "one table row per cell");
        for r in &c.rows {
            let labels = r.labels.iter().map(|l| l.clone().unwrap_or_default()).collect::<Vec<_>>().join("|");
            let tr = rows
                .iter()
                .find(|x| x["data"]["region"] == r.region.as_str() && x["data"]["labels"] == labels.as_str() && x["data"]["kind"] == r.kind.name())
                .unwrap_or_else(|| panic!("no row for {} {labels}", r.region));
            assert_eq!(tr["data"]["numerator"].as_str().map(|s| s.parse::<i64>().unwrap()), r.numerator, "{} {labels}", r.region);
            assert_eq!(tr["data"]["denominator"].as_str().map(|s| s.parse::<i64>().unwrap()), r.denominator);
            assert_eq!(tr["data"]["value"].as_str().map(|s| s.parse::<f64>().unwrap()), r.estimate.map(|e| e.value));
            assert_eq!(tr["data"]["status"], r.status.as_str());
            if r.status == "suppressed" {
                let cells: Vec<&str> = tr["cells"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
                let n = cells.len();
                assert!(!cells[n - 2].is_empty(), "a withheld cell shows its reasons in words: {cells:?}");
                assert!(!cells[n - 2].contains("below_min_cell"), "reasons in words, not codes: {cells:?}");
                let words = norrsken_model::vocabulary::suggestion_text(r.suggestion.as_deref().unwrap_or_default(), norrsken_model::vocabulary::Lang::Sv);
                assert_eq!(cells[n - 1], words, "and its suggestion, in words");
            }
        }
    };
    let question = |indicator: &str, by: &[&str], period: &str| IndicatorQuery {
        indicator: indicator.into(),
        breakdowns: by.iter().map(|s| s.to_string()).collect(),
        period: period.into(),
        ..Default::default()
    };
    check(&ui["cells_plain"], &flight(question("hip_fracture_surgery_24h", &[], "2021..2023")));
    let by_kommun = flight(question("stroke_reperfusion", &["kommun"], "2024"));
    check(&ui["cells_kommun"], &by_kommun);
    let withheld = ui["cells_kommun"].as_array().unwrap().iter().filter(|r| r["data"]["status"] == "suppressed").count();
    assert!(withheld > 0, "small kommuner are withheld");
    assert!(ui["cells_kommun"].as_array().unwrap().iter().any(|r| r["cells"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("för få personer"))));
    assert!(ui["csv_head"].as_str().unwrap().starts_with("row_kind,region,region_name"), "{}", ui["csv_head"]);
    assert_eq!(ui["lang_en"]["html"], "en");
    assert_eq!(ui["lang_en"]["h2"], "Comparison of the regions");
    assert_eq!(ui["first_tab"], "skip", "the first Tab reaches the skip link");

    // The report: the region named, a summary, one page per indicator and the own table; the
    // printed page and the downloaded PDF both have 1 + 2 + 1 pages.
    assert_eq!(ui["report_sections"].as_u64(), Some(4), "two indicators, the own table and the provenance appendix");
    assert!(ui["report_heading"].as_str().unwrap().contains("Västerbotten"));
    assert!(ui["report_summary"].as_array().unwrap().len() >= 4, "{}", ui["report_summary"]);
    assert!(ui["report_own"].as_str().unwrap().contains("MARKER-OWN-7431"));
    for pdf in ["report-print", "report-download"] {
        assert_eq!(ui[pdf]["pages"].as_u64(), Some(5), "{pdf}: {}", ui[pdf]["text"]);
        assert!(ui[pdf]["first_page"].as_str().unwrap().contains("Västerbotten"), "{pdf}: {}", ui[pdf]["first_page"]);
        assert!(ui[pdf]["text"].as_str().unwrap().contains("MARKER-OWN-7431"), "{pdf} carries the own table");
    }
    let sheets: Vec<&str> = ui["report_xlsx_sheets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(sheets, ["Sammanfattning", "Jämförelse", "Trend", "Egen källa", "Ursprung"]);
    assert_eq!(ui["report_xlsx_filter"], true, "every table sheet has a filter and prints fitted to the page width: {}", ui["report_xlsx_filter"]);
    // Swedish throughout: no code value and no English sentence on any page, and no page
    // wider than the screen at 1280 and 390 px.
    assert_eq!(ui["swedish"], serde_json::json!({}), "codes or English in the Swedish app");
    assert_eq!(ui["overflow"], serde_json::json!({}), "pages wider than the screen");
    assert!(ui["kommun_view"]["charts"].as_u64().unwrap() >= 2, "one ranked chart per region: {}", ui["kommun_view"]);
    assert_eq!(ui["kommun_view"]["pooled_rows"], 0, "no pooled row per kommun");
    assert!(ui["kommun_view"]["withheld_marks"].as_u64().unwrap() > 0, "withheld kommuner are marked in the chart: {}", ui["kommun_view"]);
    assert!(ui["kommun_view"]["note"].as_str().unwrap().contains("celler ej redovisade"), "{}", ui["kommun_view"]);
    assert!(ui["withheld_alternative"].as_bool().unwrap(), "a withheld breakdown offers a released alternative");
    // Combined equity dimensions: education gaps for women and for men, named.
    let combined: Vec<String> = ui["equity_combined"].as_array().unwrap().iter().map(|r| r["cells"][0].as_str().unwrap().to_string()).collect();
    assert!(combined.iter().any(|c| c.contains("Västerbotten · Kvinnor")) && combined.iter().any(|c| c.contains("Västerbotten · Män")), "{combined:?}");
    // A saved report definition: the link opens the same report, comments included.
    assert!(ui["report_link"].as_str().unwrap().contains("comment="), "{}", ui["report_link"]);
    assert_eq!(ui["report_from_link"]["sections"], 3, "two indicators and the appendix (the own table stays with the analyst): {}", ui["report_from_link"]);
    assert!(ui["report_from_link"]["comment"].as_str().unwrap().contains("MARKER-COMMENT-55"), "{}", ui["report_from_link"]);
    // A national comparator file: its rows are shown, marked as published, not pooled.
    assert!(ui["national"]["rows"].as_u64().unwrap() >= 1 && ui["national"]["marks"].as_u64().unwrap() >= 1, "{}", ui["national"]);
    assert!(ui["national"]["text"].as_str().unwrap().contains("Riket (Socialstyrelsen"), "{}", ui["national"]);
    // The own table never reached an agent.
    for region in ["22", "23", "24", "25"] {
        let dir = fed.dir.join("audit").join(format!("agent-{region}"));
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            assert!(!text.contains("MARKER-OWN-7431"), "the own table reached agent {region}");
        }
    }
    // Strangers get no page: the TLS handshake fails before any HTTP.
    for stranger in ["no_certificate", "other_ca"] {
        let r = &ui[stranger];
        assert_eq!(r["app"], false, "{stranger}: {r}");
        let why = format!("{}{}", r["error"].as_str().unwrap_or(""), r["page"].as_str().unwrap_or(""));
        assert!(why.contains("ERR_") || why.contains("unknown ca") || why.contains("certificate"), "{stranger}: {r}");
    }

    // The same report from the command line, as PDF and xlsx.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_norrsken"))
            .arg("report")
            .args(args)
            .args(["--lang", "sv", "--coordinator", &fed.coordinator_url()])
            .arg("--cert")
            .arg(fed.certs.join("analyst.pem"))
            .arg("--key")
            .arg(fed.certs.join("analyst.key"))
            .arg("--ca")
            .arg(fed.certs.join("ca.pem"))
            .output()
            .unwrap()
    };
    // Every indicator of the catalog for Västerbotten 2021–2025: what cannot be assessed is
    // listed with its reason on page one; ids and hashes only in the appendix; no cut cell.
    let all: Vec<String> = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".v1.toml")).map(String::from))
        .collect();
    let pdf = out.join("cli-report.pdf");
    let done = cli(&["--region", "24", "--indicators", &all.join(","), "--period", "2021..2025", "--comment", "MARKER-COMMENT-88", "--out", pdf.to_str().unwrap()]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let read = Command::new("python3")
        .args(["-c", "import sys, json; from pypdf import PdfReader; r = PdfReader(sys.argv[1]); print(json.dumps([p.extract_text() for p in r.pages]))"])
        .arg(&pdf)
        .output()
        .unwrap();
    let pages: Vec<String> = serde_json::from_slice(&read.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&read.stderr)));
    let first = &pages[0];
    assert!(first.contains("Regionrapport: Västerbotten") && first.contains("Sammanfattning"), "{first}");
    assert!(first.contains("kunde inte bedömas") && first.contains("fördelning"), "page one lists what could not be assessed and why: {first}");
    assert!(first.contains("MARKER-COMMENT-88"), "the report's comment: {first}");
    let appendix = pages.iter().position(|p| p.contains("Bilaga: ursprung")).unwrap_or_else(|| panic!("no appendix: {pages:?}"));
    assert!(appendix > 1, "the appendix comes after page one and the indicators");
    let hexy = |w: &str| w.len() >= 16 && w.chars().all(|c| c.is_ascii_hexdigit());
    for (n, page) in pages[..appendix].iter().enumerate() {
        assert!(!page.contains('…'), "page {}: a cut cell: {page}", n + 1);
        assert!(!page.contains("@1"), "page {}: a recipe id before the appendix: {page}", n + 1);
        assert!(!page.split(|c: char| !c.is_ascii_alphanumeric() && c != '-').any(|w| hexy(w) || (w.len() == 36 && w.matches('-').count() == 4)), "page {}: a hash or query id before the appendix: {page}", n + 1);
        assert!(!page.contains("InvalidArgument") && !page.contains("this cell"), "page {}: a raw error or English note: {page}", n + 1);
    }
    assert!(pages[appendix..].concat().contains("@1"), "the appendix names the recipes");
    let xlsx = out.join("cli-report.xlsx");
    assert!(cli(&["--region", "Västerbotten", "--area", "Endokrina sjukdomar", "--period", "2023..2025", "--out", xlsx.to_str().unwrap()]).status.success());
    assert!(std::fs::read(&xlsx).unwrap().starts_with(b"PK"), "an xlsx is a zip file");
    let bad = cli(&["--region", "Skåne", "--indicators", "stroke_reperfusion", "--period", "2021..2025", "--out", pdf.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("Skåne") && err.contains("24 Västerbotten"), "{err}");

    // One agent stopped: the partial marking is visible.
    let stopped = fed.agents.remove(3);
    let name = stopped.node.region.name;
    runtime.block_on(stopped.stop(std::time::Duration::from_secs(5))).unwrap();
    let ui = run("partial");
    assert_eq!(ui["page_errors"], serde_json::json!([]));
    assert!(ui["partial_banners"].as_u64().unwrap() >= 2, "the banner at the top and in the provenance footer");
    assert!(ui["partial_text"].as_str().unwrap().contains(name), "{}", ui["partial_text"]);
    runtime.block_on(fed.stop()).unwrap();
    eprintln!("web app screenshots in {} (a view drawn again in {cached_ms} ms; after a page load, from the coordinator's cache, in {reload_ms} ms)", out.display());
}
