//! Data quality end to end (docs/data-quality.md): a synthetic datalager with known defects,
//! four agents and a coordinator with the default protection, and `norrsken quality` for the
//! recipes the defects touch. Each defect must be found by its check, in its region and at
//! its month, year or kommun; the clean datalager must give no finding for the same recipes.


use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_present::quality::{Band, Check, QualityProfile};
use norrsken_synth::defects::Defect;
use norrsken_synth::{generate, SynthOptions};

use crate::fixtures::{federation, norrsken_as_analyst, TempDir, TEST_SCALE, TEST_SEED};

/// `norrsken quality` against a coordinator, as JSON (and the table in Swedish, checked to
/// name every finding's check).
fn profile(url: &str, certs: &std::path::Path, indicator: &str, period: &str) -> QualityProfile {
    let run = |format: &str| norrsken_as_analyst(url, certs, &["quality", indicator, "--period", period, "--format", format, "--lang", "sv"]);
    let out = run("json");
    assert!(out.status.success(), "{indicator}: {}", String::from_utf8_lossy(&out.stderr));
    let p: QualityProfile = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let table = run("table");
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    for f in &p.findings {
        let key = format!("check.{}", f.check.name());
        let words = norrsken_model::vocabulary::quality_word(&key, norrsken_model::vocabulary::Lang::Sv);
        assert!(table.contains(words) && table.contains("kritisk"), "{table}");
    }
    p
}

fn found(p: &QualityProfile, check: Check, region: &str, subject: Option<&str>) -> bool {
    p.findings.iter().any(|f| f.check == check && f.region == region && f.band == Band::Critical && (subject.is_none() || f.subject.as_deref() == subject))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_defect_is_found_by_its_check_and_clean_data_gives_none() {
    crate::fixtures::telemetry();
    let tmp = TempDir::new("quality");
    let dl = tmp.path().join("datalager");
    let defects = ["duplicate-month:23:2024-03", "missing-education:2480", "stop-coding:22:I63:2024", "implausible-hba1c:25", "unknown-kommun:2309>2399"]
        .iter()
        .map(|d| Defect::parse(d).unwrap())
        .collect();
    generate(&SynthOptions { out: dl.clone(), scale: TEST_SCALE, seed: TEST_SEED, defects, ..Default::default() }).unwrap();
    let fed = LocalFederation::start(&dl, &tmp.path().join("run"), &LocalOptions { ledger: false, ..LocalOptions::default() }).await.unwrap();
    let (url, certs) = (fed.coordinator_url(), fed.certs.clone());

    let kpp = profile(&url, &certs, "kpp_cost", "2021..2025");
    assert!(found(&kpp, Check::VolumeMonth, "23", Some("2024-03")), "the month loaded twice: {:#?}", kpp.findings);
    assert!(found(&kpp, Check::EducationMissing, "24", Some("2480")), "Umeå without education: {:#?}", kpp.findings);
    assert!(found(&kpp, Check::UnknownKommun, "23", Some("unknown")), "a kommun code that does not exist: {:#?}", kpp.findings);
    // Nothing else in the regions without those defects (Umeå residents treated there carry
    // the same register row, without education: the defect shows there too).
    let elsewhere = |f: &&norrsken_present::quality::Finding| (f.region == "22" || f.region == "25") && !(f.check == Check::EducationMissing && f.subject.as_deref() == Some("2480"));
    assert!(!kpp.findings.iter().any(|f| elsewhere(&f)), "{:#?}", kpp.findings);
    let stroke = profile(&url, &certs, "stroke_admissions", "2021..2025");
    assert!(found(&stroke, Check::VolumeYear, "22", Some("2024")), "I63 no longer coded in 2024: {:#?}", stroke.findings);
    let hba1c = profile(&url, &certs, "diabetes_hba1c_mean", "2021..2025");
    assert!(found(&hba1c, Check::Plausibility, "25", None), "HbA1c in the wrong unit: {:#?}", hba1c.findings);
    assert!(!hba1c.findings.iter().any(|f| f.check == Check::Plausibility && f.region != "25"), "{:#?}", hba1c.findings);
    // Every answer carries a quality declaration: how many cells were withheld, that values
    // are perturbed, the data versions, whether every region answered.
    let out = norrsken_as_analyst(&url, &certs, &["query", "kpp_cost", "--by", "sex", "--period", "2021..2025", "--lang", "sv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Relevans: Kostnad per patient (KPP) i vårdgivarperspektiv")
            && text.contains("brusade med cellnyckelmetoden")
            && text.contains("Jämförbarhet: samma receptversion i alla 4 regioner"),
        "{text}"
    );
    fed.stop().await.unwrap();

    // The clean datalager: the same recipes, no finding.
    let shared = federation();
    for indicator in ["kpp_cost", "stroke_admissions", "diabetes_hba1c_mean"] {
        let p = profile(&shared.federation.coordinator_url(), &shared.certs, indicator, "2021..2025");
        assert!(p.clean(), "{indicator} on clean data: {:#?}", p.findings);
        assert!(p.outcomes.iter().any(|o| o.band == Band::Ok), "{indicator}: checks ran");
    }
}

/// A copy of a generated region folder's tables and manifest into `to` (replacing it).
fn copy_region(from: &std::path::Path, to: &std::path::Path) {
    for table in ["persons", "contacts", "diagnoses", "procedures", "drugs", "measurements"] {
        let _ = std::fs::remove_dir_all(to.join(table));
        crate::audit::copy_dir(&from.join(table), &to.join(table));
    }
    std::fs::copy(from.join("manifest.json"), to.join("manifest.json")).unwrap();
}

/// Release over release: a reloaded data version with a month loaded twice is compared with
/// the version before it, and the agent's health names the recipes and the year whose
/// volume changed (band and whole per cent, never a count); the clean years show nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_version_is_compared_with_the_one_before() {
    let f = federation();
    let tmp = TempDir::new("release-check");
    let (clean, broken) = (tmp.path().join("clean"), tmp.path().join("broken"));
    let options = |out: &std::path::Path, defects: Vec<Defect>| SynthOptions { out: out.to_path_buf(), scale: 0.03, seed: 5, regions: vec!["23".into()], defects, ..Default::default() };
    generate(&options(&clean, vec![])).unwrap();
    generate(&options(&broken, vec![Defect::parse("duplicate-month:23:2024-03").unwrap()])).unwrap();
    let live = tmp.path().join("live");
    copy_region(&clean.join("jamtland"), &live);
    let mut config = norrsken::local::agent_config("23", &live, &f.federation.dir, "127.0.0.1:0");
    config.audit = norrsken::local::audit_config(tmp.path(), "agent-23");
    let agent = norrsken_agent::server::start(config).await.unwrap();
    let url = format!("https://{}", agent.server.addr);
    let mut client = crate::fixtures::client_as(&url, &f.certs, "coordinator", &norrsken_common::pki::agent_dns_name("23")).await;
    async fn health(client: &mut arrow_flight::FlightClient) -> serde_json::Value {
        let body: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(client.do_action(arrow_flight::Action::new("health", "")).await.unwrap()).await.unwrap();
        serde_json::from_slice(&body.concat()).unwrap()
    }
    assert!(health(&mut client).await["release_check"].is_null(), "no reload yet");
    // The version in force is profiled once its tables are built.
    let mut baseline = serde_json::Value::Null;
    for _ in 0..600 {
        baseline = health(&mut client).await["release_baseline"].clone();
        if baseline.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(baseline.is_string(), "the version in force is profiled");

    copy_region(&broken.join("jamtland"), &live);
    let reloaded = agent.reload_all().await.unwrap();
    assert!(reloaded.contains("data "), "{reloaded}");
    let check = health(&mut client).await["release_check"].clone();
    let changes = check["changes"].as_array().unwrap_or_else(|| panic!("{check}"));
    assert!(check["recipes_compared"].as_u64().unwrap() > 10, "{check}");
    let kpp: Vec<&serde_json::Value> = changes.iter().filter(|c| c["recipe"] == "kpp_cost").collect();
    assert_eq!(kpp.len(), 1, "{check}");
    assert_eq!(kpp[0]["year"], 2024);
    assert!(kpp[0]["change_pct"].as_i64().unwrap() >= 6 && kpp[0]["band"] == "warning", "a twelfth more contacts in 2024: {check}");
    assert!(changes.iter().all(|c| c["year"] == 2024), "only the year with the doubled month: {check}");
    assert!(changes.iter().all(|c| c.get("units").is_none() && c.get("count").is_none()), "no counts: {check}");
    agent.stop(std::time::Duration::from_secs(5)).await.unwrap();
}
