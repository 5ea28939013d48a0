//! `norrsken bench`: the federation measured against the central warehouses a region would
//! otherwise build, in one run (see BENCHMARKS.md).
//!
//! 1. The synthetic datalager at the asked scale (generated once, then reused).
//! 2. The numbers: four agents with the most permissive policy (no perturbation, the
//!    recipes' own minimum cell sizes) answer every catalog indicator through the
//!    coordinator; DuckDB over the same Parquet files and PostgreSQL holding every region's
//!    rows compute the same cells; every released cell must agree exactly.
//! 3. The times: four agents and a coordinator as separate processes with the default
//!    policy; per indicator the first answer after start (cold), repeated answers with the
//!    caches bypassed (warm) and from the cache (cached); DuckDB and PostgreSQL without and
//!    with an index on the main diagnosis.
//! 4. Exploration: each indicator with 8 different breakdown combinations, the caches
//!    bypassed, as a dashboard asks them; the same questions to DuckDB.
//! 5. Throughput with 1, 8 and 64 concurrent clients, cached and uncached.
//! 6. Prepared state: what building every recipe's prepared unit table costs an agent
//!    after a data reload (time, rows, memory).
//! 7. Fan-out: a query cached at the agents, asked through 4 and through 21 agents.
//! 8. Peak memory of every process.

pub mod availability;
pub mod central;
pub mod cluster;
pub mod load;
pub mod pooled;
mod report;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Catalog;
use norrsken_model::cdm::Manifest;
use norrsken_model::geography::{Region, NORRA, SWEDEN};
use norrsken_model::query::{IndicatorQuery, QueryOptions, ValidatedQuery};
use serde::Serialize;

use crate::client::fetch_with;
use crate::local::LocalOptions;
use central::{answer_cells, central_sql, compare, Agreement, CentralPostgres, DuckJob, DuckQuery};
use cluster::{Cluster, ClusterSpec};
use stats::{fmt_ms, Latency, Repeat};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Working folder: the datalager (`datalager/`), certificates, logs, results.
    pub dir: PathBuf,
    /// Scale of the synthetic datalager (1.0 = the real populations).
    pub scale: f64,
    pub seed: u64,
    /// Folder holding `norrsken`, `norrsken-agent` and `norrsken-coordinator`.
    pub bin_dir: PathBuf,
    /// Repetitions per measurement (fewer when `budget` runs out first, at least 3).
    pub runs: usize,
    /// Time limit of one measurement series.
    pub budget: Duration,
    /// Concurrent clients of the throughput runs.
    pub clients: Vec<usize>,
    /// Length of one throughput run.
    pub load_duration: Duration,
    /// Agents of the national fan-out run (0 = no fan-out runs).
    pub national_agents: usize,
    /// PostgreSQL superuser connection (libpq key=value, without dbname); none = skip.
    pub postgres: Option<String>,
    /// Database the central PostgreSQL warehouse is loaded into.
    pub postgres_database: String,
    /// Python with the duckdb package; none = skip DuckDB.
    pub duckdb_python: Option<String>,
    /// Indicators to measure (empty = the whole catalog).
    pub indicators: Vec<String>,
    /// Each agent's engine memory pool (MiB).
    pub memory_limit_mb: u64,
    /// Print progress to standard error.
    pub progress: bool,
}

impl BenchOptions {
    /// The defaults of `norrsken bench`: the real populations, 20 runs, 1/8/64 clients.
    pub fn full(dir: PathBuf, bin_dir: PathBuf) -> BenchOptions {
        BenchOptions {
            dir,
            scale: 1.0,
            seed: 1,
            bin_dir,
            runs: 20,
            budget: Duration::from_secs(30),
            clients: vec![1, 8, 64],
            load_duration: Duration::from_secs(10),
            national_agents: 21,
            postgres: Some("host=127.0.0.1 user=postgres".into()),
            postgres_database: "norrsken_bench".into(),
            duckdb_python: Some("python3".into()),
            indicators: Vec::new(),
            memory_limit_mb: norrsken_agent::engine::EngineOptions::default().memory_limit_mb,
            progress: true,
        }
    }
}

/// One benchmark query per recipe: its indicator over the whole data period, by year and
/// the two most used breakdowns it allows (KPP by year, kommun and care type as in the
/// issue's reference figures; a cohort by year and sex, with its arms and measures).
pub fn bench_queries(catalog: &Catalog, years: (i32, i32), only: &[String]) -> anyhow::Result<Vec<(IndicatorQuery, ValidatedQuery)>> {
    let mut out = Vec::new();
    for recipe in catalog.latest() {
        if !only.is_empty() && !only.contains(&recipe.id) {
            continue;
        }
        let preferred: &[Breakdown] = if recipe.allows(Breakdown::CareType) {
            &[Breakdown::Year, Breakdown::Kommun, Breakdown::CareType]
        } else if recipe.cohort.is_some() {
            // A cohort is asked by arm and measure too.
            &[Breakdown::Year, Breakdown::Sex]
        } else {
            &[Breakdown::Year, Breakdown::Sex, Breakdown::AgeBand]
        };
        let breakdowns: Vec<String> = preferred.iter().filter(|b| recipe.allows(**b)).map(|b| b.name().to_string()).collect();
        let q = IndicatorQuery {
            indicator: recipe.id.clone(),
            version: Some(recipe.version),
            breakdowns,
            period: format!("{}..{}", years.0, years.1),
            ..Default::default()
        };
        let v = q.validate(catalog, Some(years)).map_err(|e| anyhow!("benchmark query for {}: {e}", recipe.id))?;
        out.push((q, v));
    }
    if out.is_empty() {
        bail!("no indicator to measure (asked for {})", only.join(", "));
    }
    Ok(out)
}

/// The exploration series: per indicator, up to 8 different breakdown combinations over
/// the whole period, as a dashboard asks them (comparison, by sex, by age, by year...).
pub fn exploration_queries(catalog: &Catalog, years: (i32, i32), only: &[String]) -> anyhow::Result<Vec<(IndicatorQuery, ValidatedQuery)>> {
    use Breakdown::*;
    let shapes: &[&[Breakdown]] = &[
        &[],
        &[Year],
        &[Sex],
        &[AgeBand],
        &[Year, Sex],
        &[Education],
        &[IncomeQuintile],
        &[Kommun],
        &[BirthCountry],
        &[Sex, AgeBand],
        &[CareType],
        &[Year, CareType],
        &[Quarter],
    ];
    let mut out = Vec::new();
    for recipe in catalog.latest() {
        if !only.is_empty() && !only.contains(&recipe.id) {
            continue;
        }
        for shape in shapes.iter().filter(|s| s.iter().all(|b| recipe.allows(*b))).take(8) {
            let q = IndicatorQuery {
                indicator: recipe.id.clone(),
                version: Some(recipe.version),
                breakdowns: shape.iter().map(|b| b.name().to_string()).collect(),
                period: format!("{}..{}", years.0, years.1),
                ..Default::default()
            };
            let v = q.validate(catalog, Some(years)).map_err(|e| anyhow!("exploration query for {}: {e}", recipe.id))?;
            out.push((q, v));
        }
    }
    Ok(out)
}

/// One question of the exploration series.
#[derive(Debug, Clone, Serialize)]
pub struct ExplorationResult {
    pub indicator: String,
    pub breakdowns: Vec<String>,
    /// Federation, caches bypassed (median of its runs).
    pub federation_ms: Option<f64>,
    /// DuckDB on the pooled Parquet files (median of its runs).
    pub duckdb_ms: Option<f64>,
}

/// Building one recipe's prepared unit table in one region's agent.
#[derive(Debug, Clone, Serialize)]
pub struct PreparedBuild {
    pub region: String,
    pub indicator: String,
    pub rows: usize,
    pub bytes: usize,
    pub build_ms: f64,
}

/// Builds every bench recipe's prepared table in each region's engine (in this process,
/// the engine as an agent opens it after a data reload) and reports what each cost.
async fn prepared_builds(options: &BenchOptions, agents: &[(String, PathBuf)], queries: &[(IndicatorQuery, ValidatedQuery)]) -> anyhow::Result<Vec<PreparedBuild>> {
    use norrsken_agent::datalager::{FolderDatalager, FolderFormat};
    use norrsken_agent::engine::{Engine, EngineOptions};
    let mut out = Vec::new();
    for (region, folder) in agents {
        say(options, &format!("prepared tables of region {region}"));
        let dl = FolderDatalager::open(folder, FolderFormat::Parquet).map_err(|e| anyhow!("{e}"))?;
        let engine = Engine::open(&dl, region, &EngineOptions { memory_limit_mb: options.memory_limit_mb, ..EngineOptions::default() }).await.map_err(|e| anyhow!("{e}"))?;
        for (q, v) in queries {
            let start = Instant::now();
            let table = engine.prepare(v).await.map_err(|e| anyhow!("{e}"))?;
            out.push(PreparedBuild {
                region: region.clone(),
                indicator: q.indicator.clone(),
                rows: table.as_ref().map_or(0, |t| t.rows()),
                bytes: table.as_ref().map_or(0, |t| t.bytes),
                build_ms: stats::ms(start.elapsed()),
            });
        }
    }
    Ok(out)
}

fn ticket(q: &IndicatorQuery, no_cache: bool) -> Vec<u8> {
    IndicatorQuery { options: QueryOptions { no_cache, ..q.options.clone() }, ..q.clone() }.encode_ticket(None)
}

/// The synthetic datalager's generation, when this run generated it.
#[derive(Debug, Clone, Serialize)]
pub struct SynthRun {
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// What the run measured for one indicator.
#[derive(Debug, Clone, Serialize)]
pub struct IndicatorResult {
    pub indicator: String,
    pub kind: String,
    pub breakdowns: Vec<String>,
    pub period: String,
    /// Region cells in the answer.
    pub cells: usize,
    pub cold_ms: f64,
    pub warm: Option<Latency>,
    /// The slowest agent's call as the coordinator timed it, over the warm runs.
    pub warm_slowest_agent: Option<Latency>,
    pub cached: Option<Latency>,
    pub duckdb_first_ms: Option<f64>,
    pub duckdb: Option<Latency>,
    pub postgres: Option<Latency>,
    pub postgres_indexed: Option<Latency>,
    pub agreement_duckdb: Option<Agreement>,
    pub agreement_postgres: Option<Agreement>,
    /// Why the federation did not answer (the indicator's other figures are then missing).
    pub error: Option<String>,
}

/// One fan-out measurement.
#[derive(Debug, Clone, Serialize)]
pub struct FanOut {
    pub agents: usize,
    pub latency: Option<Latency>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub started: String,
    pub machine: String,
    pub versions: BTreeMap<String, String>,
    pub scale: f64,
    pub persons: u64,
    pub contacts: u64,
    pub synth: Option<SynthRun>,
    pub indicators: Vec<IndicatorResult>,
    pub exploration: Vec<ExplorationResult>,
    pub prepared: Vec<PreparedBuild>,
    pub throughput: Vec<load::LoadResult>,
    pub fan_out: Vec<FanOut>,
    /// Peak resident memory per process of the timing federation (bytes).
    pub peak_rss: Vec<(String, Option<u64>)>,
    pub memory_limit_mb: u64,
    pub seconds: f64,
}

fn say(options: &BenchOptions, what: &str) {
    if options.progress {
        eprintln!("[bench] {what}");
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or_else(String::new, |kb| format!(", {:.0} GiB RAM", kb as f64 / 1024.0 / 1024.0));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_default();
    format!("{cores} cores{mem}; {cpu}")
}

/// Makes sure the datalager at the asked scale and seed is there; generates it otherwise
/// (with `norrsken synth`, timed, its peak memory read while it runs).
fn ensure_datalager(options: &BenchOptions, datalager: &Path) -> anyhow::Result<Option<SynthRun>> {
    let fresh = NORRA.iter().all(|r| {
        Manifest::read(&datalager.join(r.slug)).is_ok_and(|m| (m.scale - options.scale).abs() < 1e-12 && m.seed == options.seed)
    });
    if fresh {
        say(options, &format!("reusing the datalager in {}", datalager.display()));
        return Ok(None);
    }
    say(options, &format!("generating the scale-{} datalager in {} ...", options.scale, datalager.display()));
    let bin = options.bin_dir.join("norrsken");
    let start = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args(["synth", "--quiet", "--out"])
        .arg(datalager)
        .args(["--scale", &options.scale.to_string(), "--seed", &options.seed.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut peak = None;
    let status = loop {
        if let Some(p) = cluster::peak_rss_of(child.id()) {
            peak = Some(p);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        bail!("norrsken synth failed ({status})");
    }
    Ok(Some(SynthRun { seconds: start.elapsed().as_secs_f64(), peak_rss_bytes: peak }))
}

/// Asks every query once through a fresh federation with the most permissive policy and
/// returns each answer's region cells, or why there was none.
async fn permissive_answers(
    options: &BenchOptions,
    agents: &[(String, PathBuf)],
    queries: &[(IndicatorQuery, ValidatedQuery)],
) -> anyhow::Result<Vec<Result<Vec<central::AnswerCell>, String>>> {
    let spec = ClusterSpec {
        bin_dir: options.bin_dir.clone(),
        dir: options.dir.join("federation"),
        agents: agents.to_vec(),
        policy: LocalOptions { perturbation: false, min_cell_size: 1, ..LocalOptions::default() },
        coordinator_cache: false,
        agent_cache: false,
        memory_limit_mb: options.memory_limit_mb,
    };
    let cluster = Cluster::start(&spec)?;
    let result = async {
        let mut client = cluster.connection.client().await?;
        let mut out = Vec::new();
        for (q, v) in queries {
            let answer = match fetch_with(&mut client, ticket(q, true)).await {
                Ok((_, batches)) => answer_cells(&batches, v).map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("{e:#}")),
            };
            if let Err(e) = &answer {
                say(options, &format!("{} was not answered: {e}", q.indicator));
            }
            out.push(answer);
        }
        anyhow::Ok(out)
    }
    .await;
    cluster.stop()?;
    result
}

/// The slowest agent call of an answer, from its `norrsken.regions` metadata.
fn slowest_agent_ms(schema: &arrow::datatypes::Schema) -> Option<f64> {
    let regions: serde_json::Value = serde_json::from_str(schema.metadata().get("norrsken.regions")?).ok()?;
    regions.as_array()?.iter().filter_map(|r| r["duration_ms"].as_f64()).reduce(f64::max)
}

/// Times every query through a fresh federation with the default policy: cold, warm
/// (caches bypassed), cached; then the throughput runs. Returns the per-query times, the
/// throughput results and every process's peak memory.
async fn time_federation(
    options: &BenchOptions,
    agents: &[(String, PathBuf)],
    queries: &[(IndicatorQuery, ValidatedQuery)],
    results: &mut [IndicatorResult],
    exploration: &[(IndicatorQuery, ValidatedQuery)],
    explored: &mut [ExplorationResult],
) -> anyhow::Result<(Vec<load::LoadResult>, Vec<(String, Option<u64>)>)> {
    let spec = ClusterSpec {
        bin_dir: options.bin_dir.clone(),
        dir: options.dir.join("federation"),
        agents: agents.to_vec(),
        policy: LocalOptions::default(),
        coordinator_cache: true,
        agent_cache: true,
        memory_limit_mb: options.memory_limit_mb,
    };
    let cluster = Cluster::start(&spec)?;
    let repeat = Repeat { runs: options.runs, min_runs: 3.min(options.runs), budget: options.budget };
    let outcome = async {
        // The agents build every recipe's prepared tables at load; "cold" is the first answer
        // once they say they are ready, as an analyst's first question after a nightly reload.
        let (ready, builds) = cluster.wait_prepared(Duration::from_secs(1800)).await?;
        say(options, &format!("agents' prepared tables ready {:.1} s after start ({})", ready.as_secs_f64(), builds.iter().map(|(r, ms)| format!("{r}: {:.1} s", *ms as f64 / 1000.0)).collect::<Vec<_>>().join(", ")));
        let mut client = cluster.connection.client().await?;
        for ((q, _), r) in queries.iter().zip(results.iter_mut()) {
            say(options, &format!("timing {} through the federation", q.indicator));
            let timed = async {
                let start = Instant::now();
                let (_, batches) = fetch_with(&mut client, ticket(q, true)).await?;
                r.cold_ms = stats::ms(start.elapsed());
                r.cells = batches.iter().map(|b| b.num_rows()).sum();
                let mut slowest = Vec::new();
                let mut warm = repeat.series();
                while warm.wants_more() {
                    let t = Instant::now();
                    let (schema, _) = fetch_with(&mut client, ticket(q, true)).await?;
                    warm.record(t);
                    slowest.extend(slowest_agent_ms(&schema));
                }
                r.warm = Latency::of(warm.samples());
                r.warm_slowest_agent = Latency::of(&slowest);
                fetch_with(&mut client, ticket(q, false)).await?;
                let mut cached = repeat.series();
                while cached.wants_more() {
                    let t = Instant::now();
                    fetch_with(&mut client, ticket(q, false)).await?;
                    cached.record(t);
                }
                r.cached = Latency::of(cached.samples());
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = timed {
                say(options, &format!("{} failed: {e:#}", q.indicator));
                r.error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        say(options, &format!("exploration: {} questions, caches bypassed", exploration.len()));
        for ((q, _), r) in exploration.iter().zip(explored.iter_mut()) {
            let mut samples = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                match fetch_with(&mut client, ticket(q, true)).await {
                    Ok(_) => samples.push(stats::ms(t.elapsed())),
                    Err(e) => {
                        say(options, &format!("exploration {} by {:?} failed: {e:#}", q.indicator, q.breakdowns));
                        break;
                    }
                }
            }
            r.federation_ms = Latency::of(&samples).map(|l| l.p50_ms);
        }
        let mut throughput = Vec::new();
        for (mode, no_cache) in [("cached", false), ("uncached", true)] {
            let tickets: Arc<Vec<Vec<u8>>> = Arc::new(queries.iter().map(|(q, _)| ticket(q, no_cache)).collect());
            for &clients in &options.clients {
                say(options, &format!("throughput: {clients} client(s), {mode}"));
                let result = load::run(&cluster.connection, tickets.clone(), clients, options.load_duration, mode).await;
                throughput.push(result);
            }
        }
        anyhow::Ok(throughput)
    }
    .await;
    let peaks = cluster.peak_rss();
    cluster.stop()?;
    Ok((outcome?, peaks))
}

/// A query answered from the agents' caches (the coordinator's is off), through `n` agents.
async fn fan_out(options: &BenchOptions, agents: &[(String, PathBuf)], q: &IndicatorQuery) -> anyhow::Result<FanOut> {
    say(options, &format!("fan-out through {} agents", agents.len()));
    let spec = ClusterSpec {
        bin_dir: options.bin_dir.clone(),
        dir: options.dir.join(format!("fan-out-{}", agents.len())),
        agents: agents.to_vec(),
        policy: LocalOptions::default(),
        coordinator_cache: false,
        agent_cache: true,
        memory_limit_mb: options.memory_limit_mb,
    };
    let cluster = Cluster::start(&spec)?;
    let repeat = Repeat { runs: options.runs.max(1) * 5, min_runs: 3, budget: options.budget };
    let outcome = async {
        let mut client = cluster.connection.client().await?;
        fetch_with(&mut client, ticket(q, false)).await?;
        let mut series = repeat.series();
        while series.wants_more() {
            let t = Instant::now();
            fetch_with(&mut client, ticket(q, false)).await?;
            series.record(t);
        }
        anyhow::Ok(FanOut { agents: agents.len(), latency: Latency::of(series.samples()) })
    }
    .await;
    cluster.stop()?;
    outcome
}

/// `n` agents: the four Norra regions on their own datalagers, then other Swedish regions,
/// each on a copy of a Norra datalager (hard links to the same files under `shared`, with
/// a manifest naming the region, since an agent refuses another region's datalager).
fn national_agents(n: usize, datalager: &Path, shared: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = NORRA.iter().map(|r| (r.code.to_string(), datalager.join(r.slug))).collect();
    for (i, region) in SWEDEN.iter().filter(|r| !NORRA.contains(r)).enumerate() {
        if out.len() >= n {
            break;
        }
        let source = datalager.join(NORRA[i % NORRA.len()].slug);
        let target = shared.join(region.slug);
        link_datalager(&source, &target, region)?;
        out.push((region.code.to_string(), target));
    }
    out.truncate(n);
    Ok(out)
}

/// Makes `target` a datalager of `region` holding the files of `source` (hard links).
fn link_datalager(source: &Path, target: &Path, region: &Region) -> anyhow::Result<()> {
    for table in norrsken_model::cdm::CdmTable::ALL {
        let (from, to) = (source.join(table.name()), target.join(table.name()));
        std::fs::create_dir_all(&to)?;
        for entry in std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))? {
            let file = entry?.path();
            let link = to.join(file.file_name().unwrap_or_default());
            if link.exists() {
                std::fs::remove_file(&link)?;
            }
            std::fs::hard_link(&file, &link).with_context(|| format!("linking {} to {}", file.display(), link.display()))?;
        }
    }
    let mut manifest = Manifest::read(source).map_err(|e| anyhow!(e))?;
    manifest.region = region.code.to_string();
    manifest.region_name = region.name.to_string();
    std::fs::write(target.join(norrsken_model::cdm::MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.dir)?;
    let datalager = options.dir.join("datalager");
    let synth = ensure_datalager(options, &datalager)?;
    let manifests: Vec<Manifest> = NORRA.iter().map(|r| Manifest::read(&datalager.join(r.slug)).map_err(|e| anyhow!(e))).collect::<anyhow::Result<_>>()?;
    let rows = |t: &str| manifests.iter().map(|m| m.rows.get(t).copied().unwrap_or(0)).sum::<u64>();
    let years = (manifests[0].first_year, manifests[0].last_year);
    let catalog = Catalog::embedded();
    let queries = bench_queries(&catalog, years, &options.indicators)?;
    let exploration = exploration_queries(&catalog, years, &options.indicators)?;
    let mut explored: Vec<ExplorationResult> = exploration
        .iter()
        .map(|(q, _)| ExplorationResult { indicator: q.indicator.clone(), breakdowns: q.breakdowns.clone(), federation_ms: None, duckdb_ms: None })
        .collect();
    let agents: Vec<(String, PathBuf)> = NORRA.iter().map(|r| (r.code.to_string(), datalager.join(r.slug))).collect();
    let regions: Vec<String> = agents.iter().map(|(r, _)| r.clone()).collect();
    let statements: Vec<String> = queries.iter().map(|(_, v)| central_sql(v, &regions)).collect::<anyhow::Result<_>>()?;
    std::fs::write(
        options.dir.join("central.sql"),
        queries.iter().zip(&statements).map(|((q, _), s)| format!("-- {}\n{s};\n", q.indicator)).collect::<String>(),
    )?;

    let mut versions = BTreeMap::new();
    versions.insert("norrsken".to_string(), format!("Norrsken {}", env!("CARGO_PKG_VERSION")));
    versions.insert("engine".to_string(), "DataFusion 55.2 (Arrow 59)".to_string());
    let mut results: Vec<IndicatorResult> = queries
        .iter()
        .map(|(q, v)| IndicatorResult {
            indicator: q.indicator.clone(),
            kind: v.recipe.kind.name().to_string(),
            breakdowns: q.breakdowns.clone(),
            period: q.period.clone(),
            cells: 0,
            cold_ms: 0.0,
            warm: None,
            warm_slowest_agent: None,
            cached: None,
            duckdb_first_ms: None,
            duckdb: None,
            postgres: None,
            postgres_indexed: None,
            agreement_duckdb: None,
            agreement_postgres: None,
            error: None,
        })
        .collect();

    say(options, "asking every indicator with the most permissive policy, to check the numbers");
    let answers = permissive_answers(options, &agents, &queries).await?;
    for (r, a) in results.iter_mut().zip(&answers) {
        if let Err(e) = a {
            r.error = Some(e.clone());
        }
    }
    let repeat = Repeat { runs: options.runs, min_runs: 3.min(options.runs), budget: options.budget };

    if let Some(python) = &options.duckdb_python {
        say(options, "DuckDB over the same Parquet files");
        let job = DuckJob {
            regions: agents.iter().map(|(r, p)| (r.clone(), std::path::absolute(p).unwrap_or_else(|_| p.clone()))).collect(),
            tables: central::cdm_tables(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            runs: repeat.runs,
            min_runs: repeat.min_runs,
            budget_s: repeat.budget.as_secs_f64(),
            queries: queries.iter().zip(&statements).map(|((q, _), sql)| DuckQuery { id: q.indicator.clone(), sql: sql.clone() }).collect(),
        };
        let out = central::run_duckdb(python, &options.dir, &job)?;
        versions.insert("duckdb".to_string(), out.engine.clone());
        for (((q, v), r), answer) in queries.iter().zip(results.iter_mut()).zip(&answers) {
            let d = out.results.get(&q.indicator).ok_or_else(|| anyhow!("DuckDB gave no result for {}", q.indicator))?;
            if let Ok(answer) = answer {
                r.agreement_duckdb = Some(compare(v.recipe.kind, answer, &d.cells(v)?));
            }
            r.duckdb_first_ms = Some(d.first_ms);
            r.duckdb = Latency::of(&d.times_ms);
        }
        say(options, "DuckDB: the exploration questions");
        let dir = options.dir.join("exploration");
        std::fs::create_dir_all(&dir)?;
        let id = |i: usize, q: &IndicatorQuery| format!("{i}:{}:{}", q.indicator, q.breakdowns.join(","));
        let sql: Vec<String> = exploration.iter().map(|(_, v)| central_sql(v, &regions)).collect::<anyhow::Result<_>>()?;
        let explore_job = DuckJob {
            runs: 3,
            min_runs: 1,
            queries: exploration.iter().zip(&sql).enumerate().map(|(i, ((q, _), sql))| DuckQuery { id: id(i, q), sql: sql.clone() }).collect(),
            ..job
        };
        let out = central::run_duckdb(python, &dir, &explore_job)?;
        for (i, ((q, _), r)) in exploration.iter().zip(explored.iter_mut()).enumerate() {
            r.duckdb_ms = out.results.get(&id(i, q)).and_then(|d| Latency::of(&d.times_ms)).map(|l| l.p50_ms);
        }
    }

    if let Some(admin) = &options.postgres {
        say(options, "PostgreSQL holding every region's rows");
        let pg = CentralPostgres::prepare(admin, &options.postgres_database, &agents, &|m| say(options, m)).await?;
        versions.insert("postgresql".to_string(), format!("PostgreSQL {}", pg.version));
        for indexed in [false, true] {
            pg.main_diagnosis_index(indexed).await?;
            for (((q, v), sql), (r, answer)) in queries.iter().zip(&statements).zip(results.iter_mut().zip(&answers)) {
                say(options, &format!("PostgreSQL{} {}", if indexed { " (indexed)" } else { "" }, q.indicator));
                let cells = pg.run(sql, v).await.with_context(|| format!("PostgreSQL on {}", q.indicator))?;
                if let (false, Ok(answer)) = (indexed, answer) {
                    r.agreement_postgres = Some(compare(v.recipe.kind, answer, &cells));
                }
                let mut series = repeat.series();
                while series.wants_more() {
                    let t = Instant::now();
                    pg.run(sql, v).await?;
                    series.record(t);
                }
                let latency = Latency::of(series.samples());
                if indexed {
                    r.postgres_indexed = latency;
                } else {
                    r.postgres = latency;
                }
            }
        }
    }

    let disagreements: Vec<String> = results
        .iter()
        .flat_map(|r| {
            [("DuckDB", &r.agreement_duckdb), ("PostgreSQL", &r.agreement_postgres)]
                .into_iter()
                .filter_map(move |(who, a)| a.as_ref().filter(|a| !a.agrees()).map(|a| format!("{} vs {who}: {}", r.indicator, a.mismatches.join("; "))))
        })
        .collect();
    if !disagreements.is_empty() {
        bail!("the federation's numbers differ from the central computation, so nothing is timed:\n{}", disagreements.join("\n"));
    }

    let prepared = prepared_builds(options, &agents, &queries).await?;
    let (throughput, peak_rss) = time_federation(options, &agents, &queries, &mut results, &exploration, &mut explored).await?;
    let mut fan = Vec::new();
    if options.national_agents > 0 {
        let q = &queries.iter().find(|(q, _)| q.indicator == "stroke_reperfusion").unwrap_or(&queries[0]).0;
        for n in [NORRA.len(), options.national_agents] {
            let agents = national_agents(n, &datalager, &options.dir.join("national"))?;
            fan.push(fan_out(options, &agents, q).await?);
        }
    }
    Ok(BenchReport {
        started: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: machine(),
        versions,
        scale: options.scale,
        persons: rows("persons"),
        contacts: rows("contacts"),
        synth,
        indicators: results,
        exploration: explored,
        prepared,
        throughput,
        fan_out: fan,
        peak_rss,
        memory_limit_mb: options.memory_limit_mb,
        seconds: started.elapsed().as_secs_f64(),
    })
}

