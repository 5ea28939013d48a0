//! The local engine's cells equal an independent computation in plain Rust over the same
//! rows, for every catalog indicator and several breakdowns, filters and perspectives.

use std::collections::BTreeMap;

use norrsken_agent::datalager::{FolderDatalager, FolderFormat};
use norrsken_agent::engine::{Engine, EngineOptions};
use norrsken_model::catalog::{Catalog, Kind};
use norrsken_model::query::{IndicatorQuery, Perspective, QueryOptions};

use crate::fixtures::region_dir;
use crate::reference::{self, Data, RefCell};

async fn engine(slug: &str, code: &str) -> Engine {
    let dl = FolderDatalager::open(&region_dir(slug), FolderFormat::Parquet).expect("open datalager");
    Engine::open(&dl, code, &EngineOptions::default()).await.expect("open engine")
}

fn query(indicator: &str, by: &[&str], period: &str, filters: &[(&str, &[&str])], perspective: Perspective) -> IndicatorQuery {
    IndicatorQuery {
        indicator: indicator.into(),
        breakdowns: by.iter().map(|s| s.to_string()).collect(),
        filters: filters.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
        period: period.into(),
        options: QueryOptions { perspective, ..Default::default() },
        ..Default::default()
    }
}

async fn compare(engine: &Engine, data: &Data, q: IndicatorQuery) -> usize {
    let catalog = Catalog::embedded();
    let v = q.validate_for_engine(&catalog, Some(engine.data_years())).expect("valid query");
    let table = engine.evaluate(&v).await.unwrap_or_else(|e| panic!("{}: {e}", v.recipe.key()));
    let expected = reference::cells(data, &v);
    let mut got = BTreeMap::new();
    for c in &table.cells {
        got.insert(
            (c.region.clone(), c.labels.clone(), c.category.clone()),
            RefCell {
                units: c.units,
                persons: c.persons,
                numerator: c.numerator,
                numerator_persons: c.numerator_persons,
                value_sum: c.value_sum,
                population: c.population,
            },
        );
    }
    let what = format!("{} by {:?} in {} ({:?})", v.recipe.key(), q.breakdowns, q.period, q.options.perspective);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "cells differ for {what}"
    );
    for (k, e) in &expected {
        let g = &got[k];
        assert_eq!(
            (g.units, g.persons, g.numerator, g.numerator_persons, g.population),
            (e.units, e.persons, e.numerator, e.numerator_persons, e.population),
            "{what}, cell {k:?}"
        );
        assert!((g.value_sum - e.value_sum).abs() <= 1e-6 * e.value_sum.abs().max(1.0), "{what}, cell {k:?}: {} vs {}", g.value_sum, e.value_sum);
    }
    got.len()
}

/// Every catalog indicator, by year and sex, equals the plain-Rust computation in two regions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_indicator_matches_the_independent_computation() {
    for (slug, code) in [("vasterbotten", "24"), ("jamtland", "23")] {
        let engine = engine(slug, code).await;
        let data = Data::load(&region_dir(slug), code);
        for recipe in Catalog::embedded().latest() {
            let n = compare(&engine, &data, query(&recipe.id, &["year", "sex"], "2021..2025", &[], Perspective::Provider)).await;
            assert!(n >= 5, "{}: only {n} cells in {slug}", recipe.id);
        }
    }
}

/// Finer breakdowns, filters, sub-year periods and the population perspective.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakdowns_filters_periods_and_perspectives_match() {
    let engine = engine("norrbotten", "25").await;
    let data = Data::load(&region_dir("norrbotten"), "25");
    let cases: Vec<IndicatorQuery> = vec![
        query("stroke_reperfusion", &["age_band", "kommun"], "2022..2024", &[], Perspective::Provider),
        query("stroke_mortality_30d", &["quarter"], "2023Q2..2024Q3", &[("sex", &["female"])], Perspective::Provider),
        query("hip_fracture_surgery_24h", &["month"], "2024-01..2024-12", &[], Perspective::Provider),
        query("hf_raas_bb", &["education", "age_band"], "2023", &[("age_band", &["65-79", "80+"])], Perspective::Provider),
        query("diabetes_hba1c_over_70", &["income_quintile", "year"], "2021..2025", &[], Perspective::Provider),
        query("diabetes_bp_bands", &["sex", "year"], "2022..2023", &[], Perspective::Provider),
        query("diabetes_hba1c_mean", &["birth_country"], "2025", &[], Perspective::Provider),
        query("kpp_cost", &["care_type", "year"], "2021..2025", &[("kommun", &["2580", "2584"])], Perspective::Provider),
        query("kpp_cost", &["age_band"], "2023", &[], Perspective::Population),
        query("hf_hospitalisation_rate", &["year", "age_band", "sex"], "2021..2025", &[], Perspective::Provider),
        query("hf_hospitalisation_rate", &["year"], "2022..2023", &[], Perspective::Population),
        query("stroke_admissions", &[], "2021..2025", &[], Perspective::Population),
        query("osteoporosis_after_fracture", &["kommun"], "2021..2024", &[], Perspective::Provider),
        query("tonsillectomy_cold", &["age_band"], "2021..2025", &[("birth_country", &["sweden"])], Perspective::Provider),
    ];
    for q in cases {
        compare(&engine, &data, q).await;
    }
    // The university hospital treats patients from the other regions: the population
    // perspective sorts them under their home regions.
    let nus = self::engine("vasterbotten", "24").await;
    let data = Data::load(&region_dir("vasterbotten"), "24");
    let regions = compare(&nus, &data, query("kpp_cost", &[], "2021..2025", &[], Perspective::Population)).await;
    assert_eq!(regions, 4, "Västerbotten's datalager holds care for residents of all four regions");
}

/// Rates carry the population denominator; other kinds have the components they need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_fit_each_kind() {
    let engine = engine("vasternorrland", "22").await;
    let catalog = Catalog::embedded();
    for recipe in catalog.latest() {
        let v = query(&recipe.id, &[], "2021..2025", &[], Perspective::Provider).validate(&catalog, None).unwrap();
        let t = engine.evaluate(&v).await.unwrap();
        let c = &t.cells[0];
        match recipe.kind {
            Kind::Rate => assert!(c.population > 10_000 && c.units > 0, "{}: {c:?}", recipe.id),
            Kind::Proportion => assert!(c.numerator <= c.units && c.units > 0, "{}: {c:?}", recipe.id),
            Kind::Mean | Kind::CostSum => assert!(c.value_sum > 0.0 && c.value_sum_sq > 0.0, "{}: {c:?}", recipe.id),
            Kind::Count => assert!(c.units > 0, "{}: {c:?}", recipe.id),
        }
        if recipe.kind == Kind::CostSum {
            assert!(c.top1 >= c.top2 && c.top1 > 0.0 && c.top1 <= c.value_sum, "{c:?}");
        }
    }
}

/// Unknown names and values never reach the engine: validation names them.
#[tokio::test]
async fn the_engine_only_accepts_validated_queries() {
    let engine = engine("jamtland", "23").await;
    let catalog = Catalog::embedded();
    let bad = query("stroke_reperfusion", &["age_band"], "2019..2020", &[], Perspective::Provider);
    let e = bad.validate(&catalog, Some(engine.data_years())).unwrap_err();
    assert!(e.to_string().contains("outside the data held (2021..2025)"), "{e}");
}

/// Where the agent aggregates the labelled rows itself (files), its cells and margins equal
/// the GROUPING SETS compilation a warehouse runs, in every component: distinct persons,
/// record-key sums, value sums and the largest per-person contributions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_aggregation_equals_the_sql_aggregation() {
    let engine = engine("vasterbotten", "24").await;
    let catalog = Catalog::embedded();
    let mut cases = Vec::new();
    for recipe in catalog.latest() {
        cases.push(query(&recipe.id, &["year", "sex"], "2021..2025", &[], Perspective::Provider));
    }
    cases.extend([
        query("kpp_cost", &["year", "kommun", "care_type"], "2021..2025", &[], Perspective::Provider),
        query("kpp_cost", &["age_band"], "2024", &[("sex", &["male"])], Perspective::Population),
        query("kpp_cost", &[], "2023Q1..2023Q2", &[], Perspective::Provider),
        query("diabetes_statin", &["education", "age_band", "sex"], "2022..2024", &[], Perspective::Population),
        query("copd_spirometry", &["kommun"], "2021..2025", &[], Perspective::Provider),
        query("diabetes_hba1c_mean", &["income_quintile", "birth_country"], "2025", &[], Perspective::Provider),
        query("stroke_admissions", &["month"], "2024-01..2024-06", &[], Perspective::Population),
    ]);
    let mut checked = 0;
    for q in cases {
        let v = q.validate_for_engine(&catalog, Some(engine.data_years())).expect("valid query");
        let what = format!("{} by {:?} in {} ({:?})", v.recipe.key(), q.breakdowns, q.period, q.options.perspective);
        let own = engine.evaluate(&v).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let in_sql = engine.evaluate_in_sql(&v).await.unwrap_or_else(|e| panic!("{what} in SQL: {e}"));
        checked += same_cells(&what, &own.cells, &in_sql.cells);
    }
    assert!(checked > 1000, "only {checked} cells compared");
}

/// Asserts two evaluations give the same cells in every component; returns how many.
pub fn same_cells(what: &str, own: &[norrsken_agent::engine::RawCell], other: &[norrsken_agent::engine::RawCell]) -> usize {
    let key = |c: &norrsken_agent::engine::RawCell| (c.region.clone(), c.labels.clone(), c.category.clone());
    assert_eq!(own.iter().map(key).collect::<Vec<_>>(), other.iter().map(key).collect::<Vec<_>>(), "{what}: different cells");
    for (a, b) in own.iter().zip(other) {
        assert_eq!(
            (a.units, a.persons, a.numerator, a.numerator_persons, a.population, a.units_mix, a.numerator_mix, a.population_mix),
            (b.units, b.persons, b.numerator, b.numerator_persons, b.population, b.units_mix, b.numerator_mix, b.population_mix),
            "{what}: cell {:?}",
            key(a)
        );
        for (x, y) in [(a.value_sum, b.value_sum), (a.value_sum_sq, b.value_sum_sq), (a.top1, b.top1), (a.top2, b.top2)] {
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{what}: cell {:?}: {x} vs {y}", key(a));
        }
    }
    own.len()
}

/// A recipe's prepared unit table (built once per data version and perspective) answers
/// every breakdown, filter, period grain and perspective exactly as the recipe's SQL does;
/// with a budget too small to hold it, questions take the SQL path and answer the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_unit_tables_answer_exactly_as_the_recipe_sql() {
    let engine = engine("jamtland", "23").await;
    let catalog = Catalog::embedded();
    let mut cases = Vec::new();
    for recipe in catalog.latest() {
        cases.push(query(&recipe.id, &["year", "sex"], "2021..2025", &[], Perspective::Provider));
        cases.push(query(&recipe.id, &["age_band"], "2023..2024", &[], Perspective::Population));
    }
    cases.extend([
        query("kpp_cost", &["care_type", "quarter"], "2024", &[("sex", &["female"])], Perspective::Provider),
        query("diabetes_statin", &["education", "income_quintile"], "2022..2024", &[("sex", &["male", "female"]), ("age_band", &["65-79", "80+"])], Perspective::Provider),
        query("stroke_reperfusion", &["kommun"], "2024Q2..2025Q1", &[], Perspective::Population),
        query("stroke_admissions", &["month", "sex"], "2024-03..2024-08", &[("birth_country", &["sweden"])], Perspective::Provider),
        query("diabetes_bp_bands", &["sex", "birth_country"], "2025", &[], Perspective::Provider),
        query("hf_hospitalisation_rate", &["sex", "age_band"], "2021..2025", &[("education", &["primary"])], Perspective::Provider),
        query("hip_fracture_surgery_24h", &[], "2021..2024", &[("kommun", &["2309", "2380"])], Perspective::Provider),
    ]);
    let mut checked = 0;
    for q in &cases {
        let v = q.validate_for_engine(&catalog, Some(engine.data_years())).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        let what = format!("{} by {:?} in {} with {:?} ({:?})", v.recipe.key(), q.breakdowns, q.period, q.filters, q.options.perspective);
        let prepared = engine.evaluate(&v).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let unprepared = engine.evaluate_unprepared(&v).await.unwrap_or_else(|e| panic!("{what} unprepared: {e}"));
        checked += same_cells(&what, &prepared.cells, &unprepared.cells);
    }
    assert!(checked > 500, "only {checked} cells compared");
    let stats = engine.prepared_stats();
    assert!(stats.tables >= catalog.latest().len(), "every recipe prepared in one perspective at least: {stats:?}");
    assert!(stats.rows > 10_000 && stats.bytes > 0, "{stats:?}");

    // A budget of 1 MiB holds no table of any size: the same answers, nothing kept.
    let folder = region_dir("jamtland");
    let small = EngineOptions { prepared_mb: 1, ..EngineOptions::default() };
    let tight = Engine::open(&FolderDatalager::open(&folder, FolderFormat::Parquet).unwrap(), "23", &small).await.unwrap();
    let q = query("kpp_cost", &["year", "care_type"], "2021..2025", &[], Perspective::Provider).validate(&catalog, Some(tight.data_years())).unwrap();
    same_cells("kpp_cost over a 1 MiB budget", &tight.evaluate(&q).await.unwrap().cells, &engine.evaluate(&q).await.unwrap().cells);
    assert_eq!(tight.prepared_stats().tables, 0, "{:?}", tight.prepared_stats());
}
