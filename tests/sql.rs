//! Flight SQL end to end with a real client from PyPI (adbc-driver-flightsql, run by
//! tests/sql_client.py): metadata, statements, prepared statements, joins, filters, the
//! period from year predicates, refusals, partial answers, and the audit record of every
//! statement; numbers equal the Flight answer for the same question.

use std::process::Command;
use std::time::Duration;

use norrsken::pki_dev::{CertSpec, CertificateAuthority};
use norrsken_model::comparison::{Comparison, RowKind};
use serde_json::Value;

use crate::federation::{analyst, coordinator_with, query};
use crate::fixtures::{federation, fetch, off_runtime, TempDir};

fn rows<'a>(out: &'a Value, key: &str) -> &'a Vec<Value> {
    out[key].as_array().unwrap_or_else(|| panic!("{key}: {}", out[key]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_reaches_the_federation_through_flight_sql() {
    let f = federation();
    let sql_url = f.federation.sql_url().expect("the local coordinator serves Flight SQL");
    // Certificates the coordinator must refuse: another CA's, and a stranger's from ours.
    let tmp = TempDir::new("sql-client");
    let other = CertificateAuthority::generate("Some other CA", 2).unwrap().issue(&CertSpec::new("analyst", "analyst", false, true, 30)).unwrap();
    std::fs::write(tmp.path().join("other-ca.pem"), &other.cert_pem).unwrap();
    std::fs::write(tmp.path().join("other-ca.key"), &other.key_pem).unwrap();
    let dev_ca = CertificateAuthority::load(&f.certs.join("ca.pem"), &f.certs.join("ca.key")).unwrap();
    let stranger = dev_ca.issue(&CertSpec::new("stranger", "stranger", false, true, 30)).unwrap();
    std::fs::write(tmp.path().join("stranger.pem"), &stranger.cert_pem).unwrap();
    std::fs::write(tmp.path().join("stranger.key"), &stranger.key_pem).unwrap();
    // A coordinator whose region 22 does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = coordinator_with(closed, 2_000).await;
    let partial_url = format!("grpc+tls://{}", down.sql.as_ref().unwrap().addr);

    // The coordinator knows the years of the regions' data once it has their versions.
    let t0 = std::time::Instant::now();
    while f.federation.coordinator.node.service.data_years().is_none() && t0.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let years = f.federation.coordinator.node.service.data_years().expect("the agents' data years");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql_client.py");
    let output = off_runtime(|| {
        Command::new("python3")
            .arg(&script)
            .env("NORRSKEN_SQL", &sql_url)
            .env("NORRSKEN_SQL_PARTIAL", &partial_url)
            .env("NORRSKEN_CERTS", &f.certs)
            .env("NORRSKEN_OTHER", tmp.path())
            .env("NORRSKEN_SERVER_NAME", norrsken_common::pki::COORDINATOR_DNS_NAME)
            .env("NORRSKEN_SQL_EXAMPLES", serde_json::to_string(&documented_examples()).unwrap())
            .output()
            .unwrap()
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    // Every SQL example printed anywhere (README, docs, the demo) works, or is one the docs
    // show as refused and is refused with an error.
    let examples = out["examples"].as_array().unwrap();
    assert!(examples.len() >= 8, "examples found: {examples:?}");
    for e in examples {
        let sql = e["sql"].as_str().unwrap();
        if documented_refusal(sql) {
            assert!(e["error"].is_string(), "a documented refusal answered: {e}");
        } else {
            assert!(e["error"].is_null(), "a documented example failed: {e}");
            assert!(e["rows"].as_u64().unwrap() > 0, "a documented example returned no rows: {e}");
        }
    }

    // Metadata.
    assert_eq!(out["catalogs"], serde_json::json!(["norrsken"]));
    let schemas = out["schemas"].as_object().unwrap();
    for s in ["indicators", "vardforlopp", "npo", "primarvardskvalitet", "kpp", "reference"] {
        assert!(schemas.contains_key(s), "schema {s}: {schemas:?}");
    }
    let all: Vec<&str> = schemas["indicators"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(all.contains(&"stroke_reperfusion") && all.contains(&"stroke_reperfusion_v1"), "{all:?}");
    assert_eq!(schemas["reference"], serde_json::json!(["codes", "indicators", "kommuner", "regions", "standard_populations"]));
    let columns: Vec<&str> = out["table_columns"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for c in ["region", "year", "kommun", "numerator", "denominator", "value", "ci_lower", "ci_upper", "status", "reason", "reason_sv", "reason_en", "suggestion", "suggestion_sv", "suggestion_en", "partial"] {
        assert!(columns.contains(&c), "{c}: {columns:?}");
    }
    assert!(out["table_types"].to_string().contains("VIEW"), "{}", out["table_types"]);
    assert_eq!(out["vendor_name"], "Norrsken");

    // Numbers equal the Flight answer for the same question.
    let mut client = analyst().await;
    let (s, b) = fetch(&mut client, query("diabetes_statin", &["year"], "2023..2024").encode_ticket(None)).await.unwrap();
    let flight = Comparison::from_batches(&s, &b).unwrap();
    let region_rows: Vec<_> = flight.rows.iter().filter(|r| r.kind == RowKind::Region).collect();
    for key in ["statement", "prepared"] {
        let got = rows(&out, key);
        assert_eq!(got.len(), region_rows.len(), "{key}");
        for r in &region_rows {
            let year: i64 = r.labels[0].as_deref().unwrap().parse().unwrap();
            let row = got.iter().find(|x| x["region"] == r.region.as_str() && x["year"] == year).unwrap_or_else(|| panic!("{key}: {} {year}", r.region));
            assert_eq!(row["numerator"].as_i64(), r.numerator, "{key}");
            assert_eq!(row["denominator"].as_i64(), r.denominator, "{key}");
            match (row["value"].as_f64(), r.estimate) {
                (Some(v), Some(e)) => assert!((v - e.value).abs() < 1e-12),
                (None, None) => {}
                other => panic!("{key}: {other:?}"),
            }
        }
    }
    // A join of two indicators by region and year.
    let join = rows(&out, "join");
    assert_eq!(join.len(), 5, "four regions and the pooled row: {join:?}");
    for j in join {
        let r = flight.rows.iter().find(|r| r.region == j["region"].as_str().unwrap() && r.labels[0].as_deref() == Some("2024")).unwrap();
        assert_eq!(j["statin"].as_f64(), r.estimate.map(|e| e.value));
    }
    // A filter on kommun: only that kommun's cells.
    let kommun = rows(&out, "kommun");
    assert!(!kommun.is_empty() && kommun.iter().all(|k| k["kommun"] == "2480"), "{kommun:?}");
    // Sums over released cells run in DataFusion.
    let released: i64 = region_rows.iter().filter(|r| r.labels[0].as_deref() == Some("2024") && r.status != "suppressed").filter_map(|r| r.numerator).sum();
    assert_eq!(rows(&out, "sum")[0]["n"].as_i64(), Some(released));

    // The analyses as table functions.
    let compare = rows(&out, "compare");
    assert_eq!(compare.len(), 4, "{compare:?}");
    assert!(compare.iter().all(|r| ["better", "worse", "similar", "not_compared"].contains(&r["significance"].as_str().unwrap())), "{compare:?}");
    assert_eq!(rows(&out, "equity").len(), 5);

    // What cannot be said, and what is refused.
    let age = out["age_range"].as_str().unwrap();
    assert!(age.contains("age_band") && age.contains("cannot be said"), "{age}");
    assert!(out["no_year"].as_str().unwrap().contains("WHERE year"), "{}", out["no_year"]);
    // Units, method and semantics in the schema; kommun names by joining the reference table.
    let md = &out["value_metadata"];
    assert_eq!(md["norrsken.kind"], "proportion", "{md}");
    assert!(md["norrsken.ci"].as_str().unwrap_or("").contains("Wilson") && md["norrsken.value"].as_str().is_some_and(|v| !v.is_empty()), "{md}");
    assert!(md["norrsken.semantics"].as_str().is_some_and(|v| !v.is_empty()), "{md}");
    let names = rows(&out, "kommun_names");
    assert!(!names.is_empty() && names.iter().all(|r| r["name"] == "Umeå" && r["region_name"] == "Västerbotten"), "{names:?}");
    // `SELECT *` asks every breakdown: an error naming the policy's limit, not 0 rows.
    let star = out["select_star"].as_str().unwrap_or_else(|| panic!("SELECT * must fail: {}", out["select_star"]));
    assert!(star.contains("no region answered") && star.contains("allows at most"), "{star}");
    // `year >= 2023` (the README's example) runs to the last year of the data.
    let from_year = rows(&out, "from_year");
    let seen: std::collections::BTreeSet<i64> = from_year.iter().filter_map(|r| r["year"].as_i64()).collect();
    assert_eq!(seen, (2023..=i64::from(years.1)).collect(), "{from_year:?}");
    for key in ["update", "ddl"] {
        let m = out[key].as_str().unwrap_or_else(|| panic!("{key} was accepted"));
        assert!(m.contains("read-only"), "{key}: {m}");
    }
    assert!(out["no_certificate"].is_string(), "a client without a certificate must be refused");
    assert!(out["other_ca"].is_string(), "a certificate from another CA must be refused");
    let stranger = out["stranger"].as_str().unwrap();
    assert!(stranger.contains("stranger"), "{stranger}");

    // A region down: the SQL answer carries the partial marking.
    let partial = &rows(&out, "partial")[0];
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["regions"], 3);
    // The region that did not answer is a row of its own, saying so.
    let all = rows(&out, "partial_rows");
    let missing: Vec<&Value> = all.iter().filter(|r| r["row_kind"] == "missing").collect();
    assert_eq!(missing.len(), 1, "{all:?}");
    assert_eq!((missing[0]["region"].as_str(), missing[0]["partial"].as_bool()), (Some("22"), Some(true)), "{missing:?}");
    assert!(missing[0]["status"].as_str().is_some_and(|s| s != "ok"), "{missing:?}");
    down.server.stop(Duration::from_secs(5)).await.unwrap();

    // Every statement is audited, naming the indicator queries it became.
    let files = norrsken_common::audit::log_files(&f.federation.dir.join("audit").join("coordinator")).unwrap();
    let records = norrsken::audit_review::records(&files).unwrap();
    let join_record = records
        .iter()
        .find(|r| r.event.kind == "sql" && r.event.sql.as_deref().is_some_and(|s| s.contains("JOIN diabetes_hba1c_over_70")))
        .expect("an sql record of the join");
    assert_eq!(join_record.event.queries.len(), 2, "{:?}", join_record.event);
    assert_eq!(join_record.event.requester.as_ref().map(|w| w.cn.as_str()), Some("analyst"));
    for id in &join_record.event.queries {
        assert!(records.iter().any(|r| r.event.kind == "query" && r.event.query_id.as_deref() == Some(id.as_str())), "query {id} has its own record");
    }
    // A statement the vocabulary cannot say is the caller's error: recorded as invalid.
    assert!(records.iter().any(|r| r.event.kind == "sql" && r.event.outcome == "invalid" && r.event.sql.as_deref().is_some_and(|s| s.contains("age_band > '65'"))));
}

/// `norrsken query --format xlsx`: the comparison with number formats and withheld cells
/// named, and a provenance sheet; read back with openpyxl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_exports_to_a_spreadsheet() {
    let f = federation();
    let tmp = TempDir::new("xlsx");
    let file = tmp.path().join("statins.xlsx");
    let certs = &f.certs;
    let out = off_runtime(|| {
        Command::new(env!("CARGO_BIN_EXE_norrsken"))
            .args(["query", "diabetes_statin", "--by", "year,education", "--period", "2023..2024", "--lang", "en", "--format", "xlsx", "--out"])
            .arg(&file)
            .env("NORRSKEN_COORDINATOR", f.federation.coordinator_url())
            .env("NORRSKEN_CERT", certs.join("analyst.pem"))
            .env("NORRSKEN_KEY", certs.join("analyst.key"))
            .env("NORRSKEN_CA", certs.join("ca.pem"))
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
ws = wb["Comparison"]
rows = [[c.value for c in r] for r in ws.iter_rows()]
fmt = {}
for r in ws.iter_rows(min_row=2):
    for c in r:
        if isinstance(c.value, float):
            fmt[c.number_format] = fmt.get(c.number_format, 0) + 1
prov = {r[0].value: r[1].value for r in wb["Provenance"].iter_rows() if r[0].value}
json.dump({"sheets": wb.sheetnames, "rows": rows, "formats": fmt, "provenance": prov, "filter": ws.auto_filter.ref, "fit": bool(ws.sheet_properties.pageSetUpPr.fitToPage) and ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0}, sys.stdout, default=str)
"#;
    let out = Command::new("python3").args(["-c", read]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let x: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["sheets"], serde_json::json!(["Comparison", "Provenance"]));
    let rows = x["rows"].as_array().unwrap();
    let header: Vec<&str> = rows[0].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(&header[..4], ["Row", "Region", "Year", "Education"]);
    assert!(x["filter"].as_str().is_some_and(|f| f.starts_with("A1:")), "a filter on the header row: {}", x["filter"]);
    assert_eq!(x["fit"], true, "printed fitted to the page width");
    assert!(rows.iter().any(|r| r[3] == "Post-secondary"), "codes written as names");
    assert!(x["formats"]["0.0%"].as_u64().unwrap() > 0, "{}", x["formats"]);
    // Values equal the Flight answer; withheld cells say so.
    let mut client = analyst().await;
    let (s, b) = fetch(&mut client, query("diabetes_statin", &["year", "education"], "2023..2024").encode_ticket(None)).await.unwrap();
    let flight = Comparison::from_batches(&s, &b).unwrap();
    assert_eq!(rows.len(), flight.rows.len() + 1);
    let vcol = header.iter().position(|h| *h == "Share (%)").unwrap();
    let mut withheld = 0;
    for (row, r) in rows[1..].iter().zip(&flight.rows) {
        match r.estimate {
            Some(e) => assert!((row[vcol].as_f64().unwrap() - e.value).abs() < 1e-12),
            None if r.status == "suppressed" => {
                assert_eq!(row[vcol], "not released");
                withheld += 1;
            }
            None => {}
        }
    }
    eprintln!("xlsx: {} rows, {withheld} withheld", rows.len() - 1);
    let prov = &x["provenance"];
    assert_eq!(prov["Catalog hash"], flight.meta.catalog_hash.as_str());
    assert!(prov["Indicator"].as_str().unwrap().contains("diabetes_statin@1"));
    assert!(prov["Partial"].as_str().unwrap().starts_with("no"));
    assert!(rows.iter().any(|r| r[0] == "Region" && r[1] == "Västerbotten"));
}

/// Examples the docs show as refused: every breakdown at once, a recursive query.
fn documented_refusal(sql: &str) -> bool {
    let upper = sql.to_uppercase();
    upper.starts_with("SELECT *") || upper.contains("RECURSIVE")
}

/// Every SQL statement the documentation and the demo print: fenced `sql` blocks, inline
/// code that is a whole statement, and the strings the Python and R examples execute.
fn documented_examples() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("src/cli/demo.rs")];
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let statement = |s: &str| {
        let u = s.to_uppercase();
        (u.starts_with("SELECT ") || u.starts_with("WITH ")) && u.contains(" FROM ") && !s.contains('…')
    };
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Fenced blocks.
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```sql") {
            let block = &rest[start + 6..];
            let end = block.find("```").unwrap_or(block.len());
            let body: String = block[..end].lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
            out.extend(body.split(';').map(squash).filter(|s| statement(s)));
            rest = &block[end..];
        }
        // Inline code spans (outside fenced blocks: those start with a fence).
        for (i, span) in text.split('`').enumerate() {
            if i % 2 == 1 && statement(&squash(span)) {
                out.push(squash(span));
            }
        }
        // Strings the client examples execute.
        for marker in ["execute(\"", "execute(\\\"", "read_adbc(con, \""] {
            for (i, part) in text.split(marker).enumerate() {
                if i == 0 {
                    continue;
                }
                let end = part.find(['"', '\\']).unwrap_or(part.len());
                let s = squash(&part[..end]);
                if statement(&s) {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
