//! The benchmark's machinery: percentiles, the central compilation (checked against the
//! agent's engine over the same files), and a small smoke run of `norrsken bench` itself
//! with real agent and coordinator processes, DuckDB and PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use norrsken::bench::central::{central_sql, compare, schema_of, AnswerCell, CentralCell};
use norrsken::bench::stats::{Latency, Repeat};
use norrsken::bench::{bench_queries, run, BenchOptions};
use norrsken_agent::datalager::{FolderDatalager, FolderFormat};
use norrsken_agent::engine::{Engine, EngineOptions};
use norrsken_model::catalog::{Catalog, Kind};
use norrsken_model::cdm::CdmTable;
use norrsken_model::geography::NORRA;

use crate::fixtures::{datalager, region_dir, TempDir};

#[test]
fn percentiles_use_the_nearest_rank() {
    let samples: Vec<f64> = (1..=20).map(f64::from).collect();
    let l = Latency::of(&samples).unwrap();
    assert_eq!((l.p50_ms, l.p95_ms, l.min_ms, l.max_ms, l.runs), (10.0, 19.0, 1.0, 20.0, 20));
    assert_eq!(Latency::of(&[7.0]).unwrap().p95_ms, 7.0);
    assert!(Latency::of(&[]).is_none());
}

#[test]
fn a_series_stops_at_its_budget_after_the_minimum() {
    let r = Repeat { runs: 1000, min_runs: 3, budget: Duration::from_millis(30) };
    let mut series = r.series();
    while series.wants_more() {
        let t = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        series.record(t);
    }
    assert!((3..10).contains(&series.samples().len()), "{} runs", series.samples().len());
    assert!(series.samples().iter().all(|&ms| ms >= 20.0), "{:?}", series.samples());
    let fast = Repeat { runs: 5, min_runs: 1, budget: Duration::from_secs(60) };
    let mut series = fast.series();
    while series.wants_more() {
        series.record(std::time::Instant::now());
    }
    assert_eq!(series.samples().len(), 5);
}

fn central_cells(batches: &[arrow::record_batch::RecordBatch], breakdowns: usize, distribution: bool) -> Vec<CentralCell> {
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use arrow::datatypes::{DataType, Float64Type, Int64Type};
    let mut out = Vec::new();
    for b in batches {
        let text = |i: usize| cast(b.column(i), &DataType::Utf8).unwrap();
        let int = |name: &str| cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
        let region = text(0);
        let labels: Vec<_> = (1..=breakdowns).map(text).collect();
        let category = distribution.then(|| text(breakdowns + 1));
        let (units, numerator, population) = (int("units"), int("numerator"), int("population"));
        let value_sum = cast(b.column_by_name("value_sum").unwrap(), &DataType::Float64).unwrap();
        for i in 0..b.num_rows() {
            out.push(CentralCell {
                region: region.as_string::<i32>().value(i).to_string(),
                labels: labels.iter().map(|l| l.as_string::<i32>().value(i).to_string()).collect(),
                category: category.as_ref().map(|c| c.as_string::<i32>().value(i).to_string()),
                units: units.as_primitive::<Int64Type>().value(i),
                numerator: numerator.as_primitive::<Int64Type>().value(i),
                value_sum: value_sum.as_primitive::<Float64Type>().value(i),
                population: population.as_primitive::<Int64Type>().value(i),
            });
        }
    }
    out
}

/// The central statement of every catalog indicator, run by DataFusion over the four
/// regions' files in schemas `norrsken_<code>`, gives exactly the agents' engines' cells
/// (margins aside): the benchmark's central warehouses answer the same question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_statement_gives_the_engines_cells() {
    let root = datalager();
    let ctx = SessionContext::new();
    for region in NORRA {
        let schema = schema_of(region.code);
        ctx.sql(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        for table in CdmTable::ALL {
            let path = root.join(region.slug).join(table.name());
            ctx.sql(&format!("CREATE EXTERNAL TABLE {schema}.{} STORED AS PARQUET LOCATION '{}/'", table.name(), path.display()))
                .await
                .unwrap();
        }
        ctx.sql(&format!("CREATE VIEW {schema}.residents AS SELECT * FROM {schema}.persons WHERE substr(kommun, 1, 2) = '{}'", region.code))
            .await
            .unwrap();
    }
    let mut engines = BTreeMap::new();
    for region in NORRA {
        let dl = FolderDatalager::open(&region_dir(region.slug), FolderFormat::Parquet).unwrap();
        engines.insert(region.code, Engine::open(&dl, region.code, &EngineOptions::default()).await.unwrap());
    }
    let years = engines["22"].data_years();
    let regions: Vec<String> = NORRA.iter().map(|r| r.code.to_string()).collect();
    let queries = bench_queries(&Catalog::embedded(), years, &[]).unwrap();
    assert_eq!(queries.len(), Catalog::embedded().latest().len());
    for (q, v) in &queries {
        let sql = central_sql(v, &regions).unwrap();
        let batches = ctx.sql(&sql).await.unwrap_or_else(|e| panic!("{}: {e}\n{sql}", q.indicator)).collect().await.unwrap();
        let central = central_cells(&batches, v.breakdowns.len(), v.recipe.is_distribution());
        // The engines' exact cells, as a fully released answer.
        let mut federation = Vec::new();
        for engine in engines.values() {
            let table = engine.evaluate(v).await.unwrap();
            for c in table.cells.iter().filter(|c| !c.labels.iter().any(|l| l == norrsken_agent::engine::sql::TOTAL)) {
                let (numerator, denominator) = match v.recipe.kind {
                    Kind::Proportion => (Some(c.numerator), Some(c.units)),
                    Kind::Rate => (Some(c.units), Some(c.population)),
                    Kind::Count => (Some(c.units), None),
                    Kind::Mean => (None, Some(c.units)),
                    Kind::CostSum => (Some(c.units), Some(c.persons)),
                };
                federation.push(AnswerCell {
                    region: c.region.clone(),
                    labels: c.labels.clone(),
                    category: c.category.clone(),
                    numerator,
                    denominator,
                    value_sum: Some(c.value_sum),
                    status: "released".into(),
                });
            }
        }
        let a = compare(v.recipe.kind, &federation, &central);
        assert!(a.agrees(), "{}: {:?}", q.indicator, a.mismatches);
        assert!(a.released > 0 && a.released == a.cells, "{}: {a:?}", q.indicator);
    }
}

/// The comparison notices a wrong value, a missing cell and a cell too many, and skips
/// withheld cells.
#[test]
fn the_comparison_finds_every_kind_of_difference() {
    let central = |region: &str, label: &str, units: i64, numerator: i64| CentralCell {
        region: region.into(),
        labels: vec![label.into()],
        category: None,
        units,
        numerator,
        value_sum: 0.0,
        population: 0,
    };
    let answer = |region: &str, label: &str, den: Option<i64>, num: Option<i64>, status: &str| AnswerCell {
        region: region.into(),
        labels: vec![label.into()],
        category: None,
        numerator: num,
        denominator: den,
        value_sum: None,
        status: status.into(),
    };
    let c = vec![central("22", "female", 40, 10), central("22", "male", 3, 1)];
    let same = vec![answer("22", "female", Some(40), Some(10), "released"), answer("22", "male", None, None, "suppressed")];
    let a = compare(Kind::Proportion, &same, &c);
    assert!(a.agrees() && a.released == 1 && a.withheld == 1, "{a:?}");
    let wrong = vec![answer("22", "female", Some(40), Some(11), "released"), answer("22", "male", None, None, "suppressed")];
    assert_eq!(compare(Kind::Proportion, &wrong, &c).mismatch_count, 1);
    let missing = vec![answer("22", "female", Some(40), Some(10), "released")];
    assert_eq!(compare(Kind::Proportion, &missing, &c).mismatch_count, 1);
    let extra = vec![same[0].clone(), same[1].clone(), answer("23", "female", Some(5), Some(1), "released")];
    assert_eq!(compare(Kind::Proportion, &extra, &c).mismatch_count, 1);
    // A rate's numerator is the central units, its denominator the population.
    let rate = vec![CentralCell { population: 1000, ..central("22", "female", 40, 0) }];
    assert!(compare(Kind::Rate, &[answer("22", "female", Some(1000), Some(40), "released")], &rate).agrees());
    assert!(!compare(Kind::Rate, &[answer("22", "female", Some(40), Some(1000), "released")], &rate).agrees());
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_norrsken-agent")).parent().unwrap().to_path_buf()
}

/// `norrsken bench` end to end on a small datalager: agents and coordinator as processes,
/// numbers checked against DuckDB and PostgreSQL, every phase measured, the report written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_benchmark_run_checks_and_measures_everything() {
    let tmp = TempDir::new("bench");
    let database = format!("norrsken_bench_smoke_{}", std::process::id());
    let mut options = BenchOptions::full(tmp.path().to_path_buf(), bin_dir());
    options.scale = 0.01;
    options.runs = 2;
    options.budget = Duration::from_secs(2);
    options.clients = vec![1, 4];
    options.load_duration = Duration::from_millis(500);
    options.national_agents = 6;
    options.postgres = Some("host=127.0.0.1 port=5432 user=postgres sslmode=disable".into());
    options.postgres_database = database.clone();
    options.progress = false;
    let report = run(&options).await;
    let (client, conn) = tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {database}")).await.unwrap();
    let report = report.unwrap();

    assert!(report.synth.is_some(), "the datalager was generated for the run");
    assert_eq!(report.indicators.len(), Catalog::embedded().latest().len());
    for r in &report.indicators {
        assert_eq!(r.error, None, "{}", r.indicator);
        for (who, a) in [("DuckDB", &r.agreement_duckdb), ("PostgreSQL", &r.agreement_postgres)] {
            let a = a.as_ref().unwrap_or_else(|| panic!("{}: no check against {who}", r.indicator));
            assert!(a.agrees(), "{} vs {who}: {:?}", r.indicator, a.mismatches);
        }
        assert!(r.cold_ms > 0.0 && r.cells > 0, "{}", r.indicator);
        for (what, l) in [("warm", r.warm), ("cached", r.cached), ("DuckDB", r.duckdb), ("PostgreSQL", r.postgres), ("indexed PostgreSQL", r.postgres_indexed)] {
            assert_eq!(l.map(|l| l.runs), Some(2), "{} {what}", r.indicator);
        }
        assert!(r.warm_slowest_agent.is_some(), "{}", r.indicator);
    }
    let released: usize = report.indicators.iter().filter_map(|r| r.agreement_duckdb.as_ref()).map(|a| a.released).sum();
    assert!(released > 50, "only {released} released cells compared");
    assert_eq!(report.throughput.len(), 4);
    for t in &report.throughput {
        assert!(t.queries > 0, "{t:?}");
        if t.mode == "cached" {
            assert_eq!(t.errors, 0, "{t:?}");
        }
    }
    assert_eq!(report.fan_out.iter().map(|f| f.agents).collect::<Vec<_>>(), vec![4, 6]);
    assert_eq!(report.peak_rss.len(), 5);
    assert!(report.peak_rss.iter().all(|(_, b)| b.is_some_and(|b| b > 1024 * 1024)), "{:?}", report.peak_rss);
    // Exploration: up to 8 breakdown combinations per indicator, each timed in the
    // federation and in DuckDB.
    let explored = report.exploration.len();
    assert!(explored >= 5 * report.indicators.len() && explored <= 8 * report.indicators.len(), "{explored} exploration questions");
    for e in &report.exploration {
        assert!(e.federation_ms.is_some() && e.duckdb_ms.is_some(), "{e:?}");
    }
    // Prepared state: every recipe's table built in each of the four regions.
    assert_eq!(report.prepared.len(), 4 * report.indicators.len());
    assert!(report.prepared.iter().all(|p| p.build_ms > 0.0 && p.bytes >= p.rows), "{:?}", report.prepared);
    assert!(report.prepared.iter().filter(|p| p.indicator == "kpp_cost").all(|p| p.rows > 1000), "{:?}", report.prepared);
    let md = report.to_markdown();
    for heading in ["| indicator | cells | cold |", "| indicator | questions |", "| region | tables |", "| mode | clients |", "| agents | runs |", "| process | peak RSS MiB |", "stroke_reperfusion"] {
        assert!(md.contains(heading), "{heading} missing in\n{md}");
    }
}
