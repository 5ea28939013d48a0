//! The synthetic datalager: deterministic, plausible, and different between regions.

use std::collections::BTreeMap;
use std::path::Path;

use norrsken_agent::datalager::{FolderDatalager, FolderFormat};
use norrsken_agent::engine::{Engine, EngineOptions};
use norrsken_model::catalog::{Catalog, Kind};
use norrsken_model::cdm::{CdmTable, Manifest};
use norrsken_model::geography::NORRA;
use norrsken_model::query::IndicatorQuery;
use norrsken_synth::{generate, SynthOptions};

use crate::fixtures::{datalager, TempDir, TEST_SCALE};
use crate::reference::Data;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for region in NORRA {
        for table in CdmTable::ALL {
            let p = dir.join(region.slug).join(table.name()).join("part-0.parquet");
            if let Ok(bytes) = std::fs::read(&p) {
                out.insert(format!("{}/{}", region.slug, table.name()), bytes);
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let (a, b, c) = (TempDir::new("synth-a"), TempDir::new("synth-b"), TempDir::new("synth-c"));
    let opts = |out: &Path, seed: u64, threads: usize| SynthOptions { out: out.to_path_buf(), scale: 0.01, seed, threads, ..Default::default() };
    generate(&opts(a.path(), 7, 1)).unwrap();
    generate(&opts(b.path(), 7, 3)).unwrap();
    generate(&opts(c.path(), 8, 2)).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.len(), 24);
    assert_eq!(fa, fb, "same seed and scale, different thread counts: identical bytes");
    for (k, v) in &fa {
        assert_ne!(Some(v), fc.get(k), "{k} must differ with another seed");
    }
    // A region generated alone is byte-identical to the same region generated with the others.
    let d = TempDir::new("synth-d");
    generate(&SynthOptions { regions: vec!["jamtland".into()], ..opts(d.path(), 7, 2) }).unwrap();
    let fd = files(d.path());
    assert_eq!(fd.len(), 6);
    for (k, v) in &fd {
        assert_eq!(Some(v), fa.get(k), "{k}");
    }
}

#[test]
fn bad_options_are_refused_with_the_option_named() {
    let t = TempDir::new("synth-bad");
    let e = generate(&SynthOptions { out: t.path().into(), scale: 0.0, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("--scale"), "{e}");
    let e = generate(&SynthOptions { out: t.path().into(), regions: vec!["Skåne".into()], ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("'Skåne' is not a region the generator covers"), "{e}");
    let e = generate(&SynthOptions { out: t.path().into(), regions: vec!["Atlantis".into()], ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("'Atlantis' is not a region"), "{e}");
    assert!(norrsken_synth::parse_years("2025..2021").is_err());
    assert_eq!(norrsken_synth::parse_years("2021..2025").unwrap(), (2021, 2025));
}

#[test]
fn manifests_count_rows_and_populations_follow_the_scale() {
    let dir = datalager();
    for region in NORRA {
        let m = Manifest::read(&dir.join(region.slug)).unwrap();
        assert_eq!(m.region, region.code);
        let data = Data::load(&dir.join(region.slug), region.code);
        assert_eq!(m.rows["persons"], data.persons.len() as u64);
        assert_eq!(m.rows["contacts"], data.contacts.len() as u64);
        // Residents alive mid-2023 are close to the scaled real population.
        let residents = data.population_on_july_first(2023).len() as f64;
        let expected = region.population() as f64 * TEST_SCALE;
        assert!((residents / expected - 1.0).abs() < 0.06, "{}: {residents} vs {expected}", region.name);
        // Volumes per inhabitant-year near the national figures.
        let years = 5.0;
        let inpatient = data.contacts.iter().filter(|c| c.care_type == "inpatient" && data.persons[&c.person_id].kommun.starts_with(region.code)).count() as f64;
        let rate = inpatient / (residents * years);
        assert!((0.10..0.20).contains(&rate), "{}: {rate} inpatient stays per inhabitant-year", region.name);
        // Everyone with a contact is in the person register, with a home kommun.
        assert!(data.contacts.iter().all(|c| data.persons.contains_key(&c.person_id)));
    }
}

/// Each indicator's region-level value lies in its documented range, and regions differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_indicator_is_plausible_and_regions_differ() {
    let catalog = Catalog::embedded();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for region in NORRA {
        let dir = datalager().join(region.slug);
        let dl = FolderDatalager::open(&dir, FolderFormat::Parquet).unwrap();
        let engine = Engine::open(&dl, region.code, &EngineOptions::default()).await.unwrap();
        let data = Data::load(&dir, region.code);
        let inhabitant_years: usize = (2021..=2025).map(|y| data.population_on_july_first(y).len()).sum();
        for recipe in catalog.latest() {
            let q = IndicatorQuery { indicator: recipe.id.clone(), period: "2021..2025".into(), ..Default::default() };
            let v = q.validate(&catalog, None).unwrap();
            let t = engine.evaluate(&v).await.unwrap();
            let value = match recipe.kind {
                Kind::Proportion => {
                    let c = match recipe.categories.first() {
                        Some(first) => t.cells.iter().find(|c| c.category.as_deref() == Some(&first.code)).unwrap(),
                        None => &t.cells[0],
                    };
                    c.numerator as f64 / c.units as f64
                }
                Kind::Rate => t.cells[0].units as f64 * 1000.0 / t.cells[0].population as f64,
                Kind::Mean => t.cells[0].value_sum / t.cells[0].units as f64,
                // Cost per patient over the whole period.
                Kind::CostSum => t.cells[0].value_sum / t.cells[0].persons as f64,
                Kind::Count => t.cells[0].units as f64 * 1000.0 / inhabitant_years as f64,
            };
            let p = recipe.plausible.expect("every recipe documents its plausible range");
            assert!(value >= p.min && value <= p.max, "{} in {}: {value} outside {}..{}", recipe.id, region.name, p.min, p.max);
            values.entry(recipe.id.clone()).or_default().push(value);
        }
    }
    for (id, v) in values {
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        assert!(hi - lo > 1e-9 && (hi - lo) / hi.abs() > 0.01, "{id}: regions do not differ: {v:?}");
    }
}

/// `norrsken synth --scale 1.0` writes exactly the row counts docs/data-model.md states.
#[test]
fn scale_one_row_counts_match_the_data_model_doc() {
    let doc = include_str!("../docs/data-model.md");
    let section = doc.split("### Volumes at scale 1.0").nth(1).expect("volumes section");
    let out = TempDir::new("scale-one");
    let manifests = generate(&SynthOptions { out: out.path().into(), scale: 1.0, seed: 1, ..Default::default() }).unwrap();
    for m in manifests {
        let line = section
            .lines()
            .find(|l| l.starts_with(&format!("| {} ", m.region)))
            .unwrap_or_else(|| panic!("no row for region {}", m.region));
        let numbers: Vec<u64> = line.split('|').skip(2).filter_map(|c| c.trim().replace(',', "").parse().ok()).collect();
        let generated: Vec<u64> = ["persons", "contacts", "diagnoses", "procedures", "drugs", "measurements"].iter().map(|t| m.rows[*t]).collect();
        assert_eq!(numbers, generated, "docs/data-model.md row for region {}", m.region);
    }
}
