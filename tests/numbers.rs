//! Numbers an analyst can publish: cost per patient, follow-up windows, unit semantics,
//! truthful suggestions, ordered and labelled categories, Swedish titles.

use std::collections::BTreeMap;
use std::process::Command;

use norrsken_model::answer::{CellStatus, Reason, ReleasedCell};
use norrsken_model::comparison::{Comparison, RowKind};
use norrsken_model::query::IndicatorQuery;
use norrsken_model::suggest::Suggestion;

use crate::attacks::{ask, exact_policy, node, perturbing_policy, with};
use crate::federation::{analyst, query};
use crate::fixtures::{federation, fetch, TempDir};

async fn compare(q: &IndicatorQuery) -> Comparison {
    let mut client = analyst().await;
    let (schema, batches) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    Comparison::from_batches(&schema, &batches).unwrap()
}

/// KPP is a cost per patient: the value is the total cost over the distinct patients, with
/// the contacts and the total beside it, in every region row and the pooled rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpp_is_a_cost_per_patient() {
    let c = compare(&query("kpp_cost", &["care_type"], "2024")).await;
    assert!(c.meta.value.starts_with("cost per patient"), "{}", c.meta.value);
    let mut rows = 0;
    for r in c.rows.iter().filter(|r| r.status != "suppressed" && r.kind != RowKind::Missing) {
        let (contacts, patients, total) = (r.numerator.unwrap(), r.denominator.unwrap(), r.value_sum.unwrap());
        assert!(contacts >= patients, "{r:?}: a patient has at least one contact");
        let value = r.estimate.unwrap();
        assert!((value.value - total / patients as f64).abs() < 1e-6 * value.value, "{r:?}");
        assert!(value.lower < value.value && value.value < value.upper, "{r:?}");
        rows += 1;
    }
    assert!(rows >= 10, "{rows}");
    // Per patient is several times per contact (KPP: ~3,300 SEK a contact).
    let pooled = c.rows.iter().find(|r| r.kind == RowKind::Pooled && r.labels[0].as_deref() == Some("primary_care")).unwrap();
    let per_contact = pooled.value_sum.unwrap() / pooled.numerator.unwrap() as f64;
    assert!(pooled.estimate.unwrap().value > 2.0 * per_contact, "{pooled:?}");
}

/// Follow-up per case: index events whose outcome window runs past the data's last day
/// (31 December 2025) are left out of every cell, and the answer says through which date;
/// a cell is withheld `incomplete_followup` only when they take more than a tenth of its
/// time (December and the fourth quarter of 2025 for a 30-day outcome, not the year), or
/// flagged when the policy releases such cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_is_censored_per_case() {
    let agent = node("vasterbotten", "24", exact_policy()).await;
    let q = query("stroke_mortality_30d", &["month"], "2025");
    let answer = ask(&agent, &q).await.unwrap();
    // 30 days: index events through 1 December 2025 have their whole window.
    assert_eq!(answer.meta.followup_through.as_deref(), Some("2025-12-01"));
    let by_month: BTreeMap<&str, &ReleasedCell> = answer.cells.iter().map(|c| (c.labels[0].as_str(), c)).collect();
    // December keeps only the stays of 1 December: withheld for the window, or absent when
    // there were none (an empty cell is listed only beside a small one).
    if let Some(dec) = by_month.get("2025-12") {
        assert!(dec.status == CellStatus::Suppressed && dec.reasons.contains(&Reason::IncompleteFollowup), "{dec:?}");
    }
    for m in ["2025-09", "2025-10", "2025-11"] {
        assert!(!by_month[m].reasons.contains(&Reason::IncompleteFollowup), "{m}: {:?}", by_month[m]);
    }
    // The year 2025 is released: 30 of its 365 days are left out. Its count is the exact
    // count of stays admitted through 1 December (the independent reference, censored).
    let years = ask(&agent, &query("stroke_mortality_30d", &["year"], "2024..2025")).await.unwrap();
    let y = |l: &str| years.cells.iter().find(|c| c.labels[0] == l).unwrap().clone();
    assert!(y("2025").numerator.is_some() && !y("2025").reasons.contains(&Reason::IncompleteFollowup), "{:?}", y("2025"));
    let data = crate::fixtures::data("vasterbotten", "24");
    let v = crate::attacks::validate(&query("stroke_mortality_30d", &["year"], "2024..2025"));
    let reference = crate::reference::cells(&data, &v);
    let exact = reference.iter().find(|(k, _)| k.1 == vec!["2025".to_string()]).map(|(_, c)| c.units).unwrap();
    assert_eq!(y("2025").denominator, Some(exact), "the year's stays are those through 1 December");
    // Hand check of the rule on the reference: without censoring the year holds more stays.
    let mut uncensored = v.clone();
    uncensored.data_end = None;
    let all = crate::reference::cells(&data, &uncensored).iter().find(|(k, _)| k.1 == vec!["2025".to_string()]).map(|(_, c)| c.units).unwrap();
    assert!(all > exact, "December's stays after the 1st are left out: {all} vs {exact}");
    // A 2024 question ends before the edge: nothing is left out, no note.
    let a2024 = ask(&agent, &query("stroke_mortality_30d", &[], "2024")).await.unwrap();
    assert_eq!(a2024.meta.followup_through, None);
    // The fourth quarter: 30 of 92 days left out, withheld.
    let q4 = ask(&agent, &query("stroke_mortality_30d", &[], "2025Q4")).await.unwrap();
    assert!(q4.cells[0].reasons.contains(&Reason::IncompleteFollowup) && q4.cells[0].numerator.is_none(), "{:?}", q4.cells[0]);
    // Hip fracture surgery within 24 hours: one day, so December 2025 is released (index
    // events through 30 December).
    let hip = ask(&agent, &query("hip_fracture_surgery_24h", &[], "2025-12")).await.unwrap();
    assert_eq!(hip.meta.followup_through.as_deref(), Some("2025-12-30"));
    assert!(!hip.cells[0].reasons.contains(&Reason::IncompleteFollowup), "{:?}", hip.cells[0]);
    // A policy that releases such cells flags them instead.
    let mut policy = exact_policy();
    policy.release_incomplete_followup = true;
    let flagged = node("vasterbotten", "24", policy).await;
    let a = ask(&flagged, &q).await.unwrap();
    if let Some(dec) = a.cells.iter().find(|c| c.labels[0] == "2025-12") {
        assert!(dec.reasons.contains(&Reason::IncompleteFollowup), "{dec:?}");
    }
    // A 365-day outcome: the five years' total leaves out 2025, a fifth of its time, so it
    // is withheld for the window alone, or released flagged.
    let total = query("osteoporosis_after_fracture", &[], "2021..2025");
    let released = ask(&flagged, &total).await.unwrap();
    assert!(released.cells[0].numerator.is_some() && released.cells[0].reasons.contains(&Reason::IncompleteFollowup), "{:?}", released.cells[0]);
    let withheld = ask(&agent, &total).await.unwrap();
    let c = &withheld.cells[0];
    assert_eq!(c.reasons, [Reason::IncompleteFollowup], "{c:?}");
    assert!(matches!(Suggestion::parse(c.suggestion.as_deref().unwrap()), Suggestion::FollowupIncomplete { days: 365, .. }), "{c:?}");
}

/// Suggestions are true: one that names a coarser cell names one that is released, and no
/// cell is told it is too few for the whole period while that cell is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_name_only_cells_that_are_released() {
    let tmp = TempDir::new("suggestions");
    let agent = node("jamtland", "23", perturbing_policy(&tmp)).await;
    let mut checked = 0;
    for (indicator, by) in [("stroke_reperfusion", vec!["year"]), ("hip_fracture_surgery_24h", vec!["kommun", "sex"]), ("stroke_admissions", vec!["age_band", "year"])] {
        let q = with(query(indicator, &by, "2021..2024"), |o| o.totals = true);
        let answer = ask(&agent, &q).await.unwrap();
        let status: BTreeMap<Vec<String>, CellStatus> = answer.cells.iter().map(|c| (c.labels.clone(), c.status)).collect();
        let grand = status[&vec!["total".to_string(); by.len()]];
        for c in answer.cells.iter().filter(|c| c.status == CellStatus::Suppressed) {
            let s = Suggestion::parse(c.suggestion.as_deref().unwrap());
            if matches!(s, Suggestion::WholeTooFew { .. }) {
                assert_eq!(grand, CellStatus::Suppressed, "{indicator} {c:?}: the whole period is released");
            }
            if let Some(b) = s.dropped() {
                // The named coarser cell: this cell with one breakdown dropped.
                let i = by.iter().position(|x| *x == b.name()).unwrap_or_else(|| panic!("{s:?}"));
                let mut coarser = c.labels.clone();
                coarser[i] = "total".into();
                assert_ne!(status[&coarser], CellStatus::Suppressed, "{indicator} {c:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "some suggestion must name a released cell");
}

/// Every answer says what it counts, and a distribution's categories come in the recipe's
/// order with their labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_say_what_they_count_and_categories_keep_their_order() {
    let persons = compare(&query("diabetes_statin", &[], "2021..2025")).await;
    assert!(persons.meta.semantics.contains("counted once in the period"), "{}", persons.meta.semantics);
    let events = compare(&query("stroke_admissions", &[], "2024")).await;
    assert!(events.meta.semantics.starts_with("events"), "{}", events.meta.semantics);
    let bands = compare(&query("diabetes_bp_bands", &[], "2024")).await;
    let recipe = norrsken_model::catalog::Catalog::embedded().get("diabetes_bp_bands", None).unwrap().clone();
    let order: Vec<String> = recipe.categories.iter().map(|c| c.code.clone()).collect();
    let region25: Vec<String> = bands.rows.iter().filter(|r| r.region == "25").filter_map(|r| r.category.clone()).collect();
    assert_eq!(region25, order, "categories in the recipe's order");
    assert_eq!(bands.meta.categories.iter().map(|c| c.code.clone()).collect::<Vec<_>>(), order);
    assert!(bands.meta.categories.iter().all(|c| !c.sv.is_empty() && !c.en.is_empty()));
}

/// The command line prints Swedish titles and category labels with `--lang sv` (and from a
/// Swedish locale), English otherwise.
#[test]
fn the_cli_speaks_swedish_when_asked() {
    let f = federation();
    let certs = &f.certs;
    let run = |lang: &[&str], env_lang: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_norrsken"))
            .args(["query", "diabetes_bp_bands", "--period", "2024"])
            .args(lang)
            .env("NORRSKEN_COORDINATOR", f.federation.coordinator_url())
            .env("NORRSKEN_CERT", certs.join("analyst.pem"))
            .env("NORRSKEN_KEY", certs.join("analyst.key"))
            .env("NORRSKEN_CA", certs.join("ca.pem"))
            .env("LANG", env_lang)
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let recipe = norrsken_model::catalog::Catalog::embedded().get("diabetes_bp_bands", None).unwrap().clone();
    let sv = run(&["--lang", "sv"], "C");
    assert!(sv.contains(&recipe.title.sv), "{sv}");
    assert!(sv.contains(&recipe.categories[0].sv), "{sv}");
    assert!(run(&[], "sv_SE.UTF-8").contains(&recipe.title.sv));
    let en = run(&[], "C");
    assert!(en.contains(&recipe.title.en) && en.contains("counted:"), "{en}");
}

/// Every suggestion in a comparison is true: for each withheld row (a region's, the pooled
/// row, a home region's in the population perspective) whose suggestion names a coarser
/// cell, the coordinator is asked that coarser question and the row is released there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suggestion_in_region_pooled_and_population_rows_is_true() {
    use norrsken_model::query::Perspective;
    let dropped = |s: &Suggestion, by: &[&str]| s.dropped().and_then(|b| by.iter().position(|x| *x == b.name()));
    let (mut checked, mut pooled_checked, mut unchecked) = (0, 0, 0);
    for perspective in [Perspective::Provider, Perspective::Population] {
        for (indicator, by) in [("stroke_reperfusion", vec!["sex", "year"]), ("hip_fracture_surgery_24h", vec!["age_band", "sex"]), ("diabetes_statin", vec!["kommun", "sex"])] {
            // With the margins asked, every agent knows its coarser cells.
            let q = with(query(indicator, &by, "2021..2024"), |o| {
                o.perspective = perspective;
                o.totals = true;
            });
            let c = compare(&q).await;
            let mut coarser: BTreeMap<usize, Comparison> = BTreeMap::new();
            for r in c.rows.iter().filter(|r| r.status == "suppressed" && r.kind != RowKind::Missing) {
                let s = Suggestion::parse(r.suggestion.as_deref().unwrap_or_else(|| panic!("{indicator}: a withheld row without a suggestion {r:?}")));
                if !s.names_released_cell() {
                    let words = norrsken_model::vocabulary::suggestion(&s, norrsken_model::vocabulary::Lang::En);
                    assert!(words.contains("not checked"), "{indicator} {perspective:?}: a suggestion that neither names a released cell nor says it is not checked: {words}");
                    unchecked += 1;
                    continue;
                }
                let i = dropped(&s, &by).unwrap_or_else(|| panic!("{indicator}: which breakdown? {s:?}"));
                if !coarser.contains_key(&i) {
                    let fewer: Vec<&str> = by.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, b)| *b).collect();
                    coarser.insert(i, compare(&with(query(indicator, &fewer, "2021..2024"), |o| {
                        o.perspective = perspective;
                        o.totals = true;
                    }))
                    .await);
                }
                let labels: Vec<Option<String>> = r.labels.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| l.clone()).collect();
                let named = coarser[&i].rows.iter().find(|x| x.kind == r.kind && x.region == r.region && x.labels == labels && x.category == r.category);
                let named = named.unwrap_or_else(|| panic!("{indicator} {perspective:?}: the coarser row of {r:?} is missing"));
                assert_ne!(named.status, "suppressed", "{indicator} {perspective:?}: '{s:?}' on {:?} {} {:?}, but that cell is withheld: {named:?}", r.kind, r.region, r.labels);
                checked += 1;
                if r.kind == RowKind::Pooled {
                    pooled_checked += 1;
                }
            }
        }
    }
    assert!(checked > 0 && pooled_checked > 0, "suggestions checked: {checked}, of pooled rows {pooled_checked}, not checked {unchecked}");
}
