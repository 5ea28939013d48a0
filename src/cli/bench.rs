//! `norrsken bench`: the federation against DuckDB and a central PostgreSQL (BENCHMARKS.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use norrsken::bench::{run, BenchOptions};

#[derive(Args)]
pub struct BenchArgs {
    /// Working folder: datalager (generated once, then reused), certificates, logs, results.
    #[arg(long, default_value = "bench-run")]
    dir: PathBuf,
    /// Scale of the synthetic datalager (1.0 = the real populations, ~905,000 persons).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Repetitions per measurement (fewer when --budget-s runs out first; at least 3).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Time limit of one measurement series, in seconds.
    #[arg(long, default_value_t = 30.0)]
    budget_s: f64,
    /// Concurrent clients of the throughput runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    clients: Vec<usize>,
    /// Length of one throughput run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    load_s: f64,
    /// Agents of the national fan-out run (0 = skip the fan-out runs).
    #[arg(long, default_value_t = 21)]
    national_agents: usize,
    /// PostgreSQL superuser connection (libpq key=value, without dbname) for the central
    /// warehouse.
    #[arg(long, default_value = "host=127.0.0.1 user=postgres")]
    postgres: String,
    /// Database to load the central warehouse into (created with C collation).
    #[arg(long, default_value = "norrsken_bench")]
    postgres_database: String,
    /// Skip the PostgreSQL comparison.
    #[arg(long)]
    no_postgres: bool,
    /// Python with the duckdb package (pip install duckdb).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the DuckDB comparison.
    #[arg(long)]
    no_duckdb: bool,
    /// Only these indicators (comma-separated ids); default the whole catalog.
    #[arg(long, value_delimiter = ',')]
    indicators: Vec<String>,
    /// Each agent's engine memory pool, in MiB.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
    /// Folder with norrsken-agent and norrsken-coordinator; default: next to this program.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

pub fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?.parent().context("the program's folder")?.to_path_buf(),
    };
    let mut options = BenchOptions::full(args.dir.clone(), bin_dir);
    options.scale = args.scale;
    options.runs = args.runs.max(1);
    options.budget = Duration::from_secs_f64(args.budget_s.max(0.0));
    options.clients = args.clients;
    options.load_duration = Duration::from_secs_f64(args.load_s.max(0.1));
    options.national_agents = args.national_agents;
    options.postgres = (!args.no_postgres).then_some(args.postgres);
    options.postgres_database = args.postgres_database;
    options.duckdb_python = (!args.no_duckdb).then_some(args.python);
    options.indicators = args.indicators;
    if let Some(m) = args.memory_limit_mb {
        options.memory_limit_mb = m;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run(&options))?;
    let markdown = report.to_markdown();
    std::fs::write(args.dir.join("results.md"), &markdown)?;
    std::fs::write(args.dir.join("results.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("{markdown}");
    println!("Written to {0}/results.md and {0}/results.json.", args.dir.display());
    Ok(())
}

#[derive(Args)]
pub struct AvailabilityArgs {
    /// Working folder: the datalager (generated once, then reused) and the federation.
    #[arg(long, default_value = "availability-run")]
    dir: PathBuf,
    /// Scale of a datalager generated here (1.0 = the real populations, ~905,000 persons).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Use this datalager instead of generating one.
    #[arg(long)]
    datalager: Option<PathBuf>,
    /// Simulated analyst sessions (each: the web app's and a report's questions of three
    /// indicators, and random explorations).
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Random explorations per session.
    #[arg(long, default_value_t = 10)]
    explorations: usize,
    #[arg(long, default_value_t = 25)]
    seed: u64,
    /// Only these indicators (comma-separated ids); default the whole catalog.
    #[arg(long, value_delimiter = ',')]
    indicators: Vec<String>,
    /// Measure what secure sums between agents give instead: pooled and home-region cells
    /// released with and without them (docs/secure-aggregation.md).
    #[arg(long)]
    secure_sum: bool,
}

pub fn run_availability_cli(args: AvailabilityArgs) -> anyhow::Result<()> {
    let options = norrsken::bench::availability::AvailabilityOptions {
        dir: args.dir.clone(),
        scale: args.scale,
        datalager: args.datalager,
        sessions: args.sessions,
        explorations: args.explorations,
        seed: args.seed,
        indicators: args.indicators,
        quiet: false,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    if args.secure_sum {
        let (datalager, scale) = norrsken::bench::availability::datalager_in(&options)?;
        let report = runtime.block_on(norrsken::bench::pooled::run_pooled(&datalager, &args.dir.join("secure-sum"), scale, &options.indicators, false))?;
        let markdown = report.to_markdown();
        std::fs::write(args.dir.join("secure-sum.md"), &markdown)?;
        std::fs::write(args.dir.join("secure-sum.json"), serde_json::to_vec_pretty(&report)?)?;
        println!("{markdown}");
        println!("Written to {0}/secure-sum.md and {0}/secure-sum.json.", args.dir.display());
        if report.with.off_truth > 0 || report.with.beside_one_withheld > 0 {
            anyhow::bail!("a released pooled value was off the central sum, or released beside one withheld part");
        }
        return Ok(());
    }
    let report = runtime.block_on(norrsken::bench::availability::run_availability(&options))?;
    let markdown = report.to_markdown();
    std::fs::write(args.dir.join("availability.md"), &markdown)?;
    std::fs::write(args.dir.join("availability.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("{markdown}");
    println!("Written to {0}/availability.md and {0}/availability.json.", args.dir.display());
    if !report.standard_unchanged || report.standard.withheld_without_a_rule() > 0 {
        anyhow::bail!("the standard release changed with history, or a cell was withheld without a protection rule");
    }
    Ok(())
}
