//! Predictable for everyone (issue 25): what one analyst asks, dry-runs or fails to ask
//! never changes what another gets. The scenarios measured on main before round 3, replayed
//! through two real federations (four agents and a coordinator each, over mutual TLS) that
//! share their regions' secrets: on the first, an analyst asks first; on the second, fresh,
//! nobody has asked anything. The victim's answers must be identical, cell by cell.

use std::path::Path;

use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_common::pki::COORDINATOR_DNS_NAME;
use norrsken_model::query::IndicatorQuery;

use crate::attacks::with;
use crate::federation::{query, rows, Row};
use crate::fixtures::{client_as, datalager, fetch, off_runtime, TempDir};

/// The coordinator's rows for a question, asked as `who`.
async fn ask(fed: &LocalFederation, who: &str, q: &IndicatorQuery) -> Result<Vec<Row>, tonic::Status> {
    let mut client = client_as(&fed.coordinator_url(), &fed.certs, who, COORDINATOR_DNS_NAME).await;
    let ticket = serde_json::to_vec(q).unwrap();
    let (schema, batches) = fetch(&mut client, ticket).await?;
    let by: Vec<&str> = q.breakdowns.iter().map(String::as_str).collect();
    Ok(rows(&schema, &batches, &by))
}

fn copy_secrets(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn what_one_analyst_asks_first_changes_nothing_for_another() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("history");
    let dl = datalager().to_path_buf();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    off_runtime(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            // The development default: the cell key method on, k = 5, the ledger on.
            let options = LocalOptions::default();
            let first = LocalFederation::start(&dl, &a_dir, &options).await.unwrap();
            copy_secrets(&a_dir.join("policies"), &b_dir.join("policies"));
            let fresh = LocalFederation::start(&dl, &b_dir, &options).await.unwrap();

            // The questions a victim asks: the standard comparisons and totals of a report.
            let victim: Vec<IndicatorQuery> = vec![
                query("copd_spirometry", &["sex"], "2023..2025"),
                query("copd_spirometry", &["sex"], "2021..2025"),
                query("diabetes_statin", &[], "2021..2025"),
                query("diabetes_statin", &["year"], "2021..2025"),
                query("diabetes_statin", &["sex", "year"], "2021..2025"),
                query("kpp_cost", &[], "2021..2025"),
                query("diabetes_hba1c_over_70", &[], "2021..2025"),
                with(query("diabetes_statin", &["age_band"], "2021..2025"), |o| o.standardise = Some("esp2013".into())),
            ];
            // What an attacker (another analyst) does first on the first federation: the
            // issue's questions, a free dry run of a large table, six monthly tables.
            let attacker: Vec<IndicatorQuery> = vec![
                query("copd_spirometry", &["sex"], "2021..2025"),
                query("copd_spirometry", &["sex", "kommun"], "2021..2025"),
                with(query("diabetes_statin", &["kommun", "age_band", "sex"], "2021..2025"), |o| o.dry_run = true),
                with(query("kpp_cost", &["kommun", "care_type"], "2021..2025"), |o| o.dry_run = true),
                query("stroke_admissions", &["month"], "2021"),
                query("stroke_admissions", &["month"], "2022"),
                query("stroke_admissions", &["month"], "2023"),
                query("stroke_admissions", &["month"], "2024"),
                query("stroke_admissions", &["month", "sex"], "2025"),
                query("kpp_cost", &["month", "sex"], "2024"),
                with(query("diabetes_statin", &["sex", "year"], "2021..2025"), |o| o.min_cell_size = Some(50)),
            ];
            // The two periods of eleven months are not asked at all: refused with the
            // reason and what to ask instead.
            for period in ["2024-01..2024-11", "2025-01..2025-11"] {
                let e = ask(&first, "analyst", &query("diabetes_statin", &["sex"], period)).await.unwrap_err();
                assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
                assert!(e.message().contains("whole years") && e.message().contains("--by month"), "{e}");
            }
            let before: Vec<Vec<Row>> = {
                let mut out = Vec::new();
                for q in &victim {
                    out.push(ask(&first, "region-admin-24", q).await.unwrap());
                }
                out
            };
            for q in &attacker {
                ask(&first, "analyst", q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
            }
            let mut withheld_somewhere = 0;
            for (i, q) in victim.iter().enumerate() {
                let after = ask(&first, "region-admin-24", &with(q.clone(), |o| o.no_cache = true)).await.unwrap();
                let alone = ask(&fresh, "region-admin-24", q).await.unwrap();
                assert_eq!(after, alone, "{q:?}: the victim's answer after the attacker's questions differs from a fresh federation's");
                assert_eq!(after, before[i], "{q:?}: the answer changed after the attacker's questions");
                withheld_somewhere += after.iter().filter(|r| r.status == "suppressed").count();
                // The standard totals are released for every region.
                if q.breakdowns.is_empty() {
                    assert!(after.iter().all(|r| r.status != "suppressed"), "{q:?}: a standard total is withheld: {after:?}");
                }
            }
            eprintln!("history: {} victim questions answered identically before, after and on a fresh federation ({withheld_somewhere} cells withheld by the rules alone)", victim.len());
            first.stop().await.unwrap();
            fresh.stop().await.unwrap();
        });
    });
}

/// The availability figure (`norrsken availability`) on the test datalager: simulated
/// analyst sessions; every standard-release cell of at least k persons is released unless a
/// protection rule withholds it (none for history), and the standard release asked after
/// the sessions equals the one asked before.
#[test]
fn availability_over_simulated_sessions() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("availability");
    let options = norrsken::bench::availability::AvailabilityOptions {
        dir: tmp.path().to_path_buf(),
        scale: 0.0,
        datalager: Some(datalager().to_path_buf()),
        sessions: 3,
        explorations: 6,
        seed: 7,
        indicators: vec![],
        quiet: true,
    };
    let report = off_runtime(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(norrsken::bench::availability::run_availability(&options)).unwrap()
    });
    eprintln!("{}", report.to_markdown());
    assert!(report.standard_unchanged, "the standard release changed over the sessions");
    assert_eq!(report.standard.withheld_without_a_rule(), 0, "{:?}", report.standard.withheld_by);
    assert_eq!(report.adhoc.withheld_without_a_rule(), 0, "{:?}", report.adhoc.withheld_by);
    assert!(report.standard.cells > 500 && report.adhoc.cells > 100, "{report:?}");
    assert!(report.standard.share() > 0.5, "{report:?}");
}
