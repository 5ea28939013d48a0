//! The PostgreSQL datalager: the same cells as the Parquet datalager, with the aggregate
//! computed in PostgreSQL (checked on the wire), and with a region's own, differently named
//! schema mapped onto the CDM.

use std::collections::BTreeMap;

use norrsken_agent::config::AgentConfig;
use norrsken_agent::datalager::postgres::{load_folder, PostgresDatalager, PostgresSettings};
use norrsken_agent::datalager::{FolderDatalager, FolderFormat, Mapping};
use norrsken_agent::engine::{Engine, EngineOptions, RawCell};
use norrsken_model::catalog::Catalog;
use norrsken_model::query::{IndicatorQuery, Perspective, QueryOptions};

use crate::federation::query;
use crate::fixtures::region_dir;
use crate::pgwire::PgProxy;

/// The machine's PostgreSQL (trust auth), as the tests and CI expect it.
pub const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable";

/// Drops the test's schemas when dropped.
pub struct Schemas(pub Vec<String>);

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(PG, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    for s in names {
                        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE")).await;
                    }
                }
            })
        })
        .join();
    }
}

pub async fn pg_client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG, tokio_postgres::NoTls)
        .await
        .expect("the tests need PostgreSQL on 127.0.0.1:5432 with trust auth and a database 'test'");
    tokio::spawn(conn);
    client
}

fn cells_by_key(cells: &[RawCell]) -> BTreeMap<(String, Vec<String>, Option<String>), &RawCell> {
    cells.iter().map(|c| ((c.region.clone(), c.labels.clone(), c.category.clone()), c)).collect()
}

fn assert_same(a: &[RawCell], b: &[RawCell], what: &str) {
    let (ka, kb) = (cells_by_key(a), cells_by_key(b));
    assert_eq!(ka.keys().collect::<Vec<_>>(), kb.keys().collect::<Vec<_>>(), "{what}: different cells");
    for (k, x) in &ka {
        let y = kb[k];
        assert_eq!(
            (x.units, x.persons, x.numerator, x.numerator_persons, x.population, x.units_mix, x.numerator_mix, x.population_mix),
            (y.units, y.persons, y.numerator, y.numerator_persons, y.population, y.units_mix, y.numerator_mix, y.population_mix),
            "{what}: cell {k:?}"
        );
        for (p, q) in [(x.value_sum, y.value_sum), (x.value_sum_sq, y.value_sum_sq), (x.top1, y.top1), (x.top2, y.top2)] {
            assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{what}: cell {k:?}: {p} vs {q}");
        }
    }
}

fn cases() -> Vec<IndicatorQuery> {
    vec![
        query("stroke_reperfusion", &["sex", "age_band"], "2021..2025"),
        query("hf_raas_bb", &["year", "education"], "2022..2024"),
        query("diabetes_bp_bands", &["year"], "2024..2025"),
        query("diabetes_hba1c_mean", &["kommun"], "2025"),
        query("hip_fracture_surgery_24h", &["quarter"], "2024"),
        query("kpp_cost", &["care_type", "sex"], "2023"),
        query("hf_hospitalisation_rate", &["year", "age_band"], "2021..2025"),
        query("osteoporosis_after_fracture", &[], "2021..2024"),
        query("tonsillectomy_cold", &["month"], "2023-01..2023-06"),
        IndicatorQuery { options: QueryOptions { perspective: Perspective::Population, ..Default::default() }, ..query("stroke_admissions", &["sex"], "2023") },
        IndicatorQuery {
            filters: [("sex".to_string(), vec!["female".to_string()])].into(),
            ..query("schizophrenia_antipsychotics", &["age_band"], "2021..2025")
        },
    ]
}

/// Parquet and PostgreSQL give identical cells, and PostgreSQL received aggregate SQL:
/// the rows that came back over the connection are the cells, not the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gives_the_parquet_cells_with_the_aggregate_pushed_down() {
    let schema = format!("norrsken_t{}_23", std::process::id());
    let _drop = Schemas(vec![schema.clone()]);
    let counts = load_folder(PG, &schema, &region_dir("jamtland"), false).await.unwrap();
    assert!(counts.iter().any(|(t, n)| t.name() == "contacts" && *n > 10_000));

    let proxy = PgProxy::start("127.0.0.1:5432").await;
    let settings = PostgresSettings {
        url: format!("host=127.0.0.1 port={} user=postgres dbname=test sslmode=disable", proxy.port),
        password_file: None,
        password: None,
        schema: schema.clone(),
    };
    let pg = PostgresDatalager::open(&settings, Mapping::new()).await.unwrap();
    let pg_engine = Engine::open(&pg, "23", &EngineOptions::default()).await.unwrap();
    let folder = FolderDatalager::open(&region_dir("jamtland"), FolderFormat::Parquet).unwrap();
    let parquet_engine = Engine::open(&folder, "23", &EngineOptions::default()).await.unwrap();
    assert_eq!(pg_engine.data_version(), parquet_engine.data_version(), "the manifest travels with the load");
    assert_eq!(pg_engine.data_years(), (2021, 2025));

    let catalog = Catalog::embedded();
    for q in cases() {
        let v = q.validate_for_engine(&catalog, Some((2021, 2025))).unwrap();
        let what = format!("{} by {:?}", v.recipe.key(), q.breakdowns);
        let expected = parquet_engine.evaluate(&v).await.unwrap();
        proxy.take();
        let got = pg_engine.evaluate(&v).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let wire = proxy.take();
        assert_same(&expected.cells, &got.cells, &what);
        let aggregate = wire.statements.iter().find(|s| s.to_uppercase().contains("GROUP BY"));
        assert!(aggregate.is_some(), "{what}: PostgreSQL received no aggregate; it received {:?}", wire.statements);
        assert!(
            wire.data_rows <= got.cells.len() as u64 + 2,
            "{what}: {} rows crossed the connection for {} cells: the aggregate was not pushed down. SQL: {:?}",
            wire.data_rows,
            got.cells.len(),
            wire.statements
        );
        assert!(!wire.statements.iter().any(|s| s.contains("SELECT *") && !s.to_uppercase().contains("GROUP BY")), "{what}: a bare SELECT of rows: {:?}", wire.statements);
    }
}

/// A region's own schema (Swedish names, other codes) mapped onto the CDM in the agent's
/// config, from the worked example in deploy/examples/agent-postgres-mapped.toml.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_unlike_schema_gives_the_same_answers() {
    let base = format!("norrsken_t{}_base", std::process::id());
    let dw = format!("norrsken_t{}_dw", std::process::id());
    let _drop = Schemas(vec![base.clone(), dw.clone()]);
    load_folder(PG, &base, &region_dir("jamtland"), false).await.unwrap();
    // The region's warehouse as in the worked example (docs/deploy.md).
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/unlike-warehouse.sql")).unwrap();
    let script = script.replace("dw.", &format!("{dw}.")).replace("CREATE SCHEMA dw", &format!("CREATE SCHEMA {dw}")).replace("cdm.", &format!("{base}."));
    pg_client().await.batch_execute(&script).await.unwrap();

    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/agent-postgres-mapped.toml")).unwrap();
    let mut config: AgentConfig = toml::from_str(&example).unwrap();
    config.validate().unwrap();
    let mut d = config.datalager.clone();
    d.url = Some(PG.into());
    d.password_file = None;
    d.schema = Some(dw.clone());
    assert!(d.tables.len() >= 5, "the example maps the tables");
    let mapped = PostgresDatalager::open(&d.postgres_settings().unwrap(), d.tables.clone()).await.unwrap();
    let mapped_engine = Engine::open(&mapped, "23", &EngineOptions::default()).await.unwrap();
    let folder = FolderDatalager::open(&region_dir("jamtland"), FolderFormat::Parquet).unwrap();
    let parquet_engine = Engine::open(&folder, "23", &EngineOptions::default()).await.unwrap();
    let catalog = Catalog::embedded();
    for q in cases() {
        let v = q.validate_for_engine(&catalog, Some((2021, 2025))).unwrap();
        let what = format!("mapped {} by {:?}", v.recipe.key(), q.breakdowns);
        let expected = parquet_engine.evaluate(&v).await.unwrap();
        let got = mapped_engine.evaluate(&v).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_same(&expected.cells, &got.cells, &what);
    }
}
