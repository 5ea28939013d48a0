//! `norrsken eval`: runs one recipe against a local datalager and prints the raw cells.
//! Region IT use it to check a recipe on their own data; nothing leaves the machine and no
//! disclosure control is applied, so the output is for the region's own eyes only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use arrow::util::pretty::pretty_format_batches;
use clap::Args;
use norrsken_agent::config::AgentConfig;
use norrsken_agent::datalager::{Datalager, FolderDatalager, FolderFormat};
use norrsken_agent::engine::{Engine, EngineOptions};
use norrsken_model::catalog::Catalog;
use norrsken_model::cdm::Manifest;
use norrsken_model::geography;
use norrsken_model::query::{IndicatorQuery, Perspective, QueryOptions};

#[derive(Args)]
pub struct EvalArgs {
    /// Indicator id (see `norrsken indicators`), optionally id@version.
    indicator: String,
    /// Datalager folder of one region (Parquet sub-folders per CDM table).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    datalager: Option<PathBuf>,
    /// Or the agent's configuration file: evaluate on the datalager it names (PostgreSQL,
    /// mapped tables), for the region it is configured for.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The folder holds CSV files instead of Parquet.
    #[arg(long)]
    csv: bool,
    /// Region (county code or name); default from the datalager's manifest.json.
    #[arg(long)]
    region: Option<String>,
    /// Breakdowns, comma-separated (e.g. year,sex,age_band).
    #[arg(long = "by", value_delimiter = ',')]
    by: Vec<String>,
    /// Period, e.g. 2023..2025, 2024Q1..2024Q2 or 2024-01..2024-06; default all data years.
    #[arg(long)]
    period: Option<String>,
    /// Filters as breakdown=value[,value...]; repeatable.
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// provider (default) or population.
    #[arg(long, default_value = "provider")]
    perspective: String,
    /// Recipe folder instead of the built-in catalog.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Print the SQL the engine runs instead of running it.
    #[arg(long)]
    sql: bool,
    /// Aggregate the cells and margins in SQL (GROUPING SETS), as a warehouse that takes the
    /// aggregate does, instead of in the agent (for comparison; the cells are the same).
    #[arg(long)]
    aggregate_in_sql: bool,
}

pub fn parse_filters(filters: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("filter '{f}' must look like breakdown=value[,value...]");
        };
        out.entry(k.trim().to_string()).or_default().extend(v.split(',').map(|s| s.trim().to_string()));
    }
    Ok(out)
}

pub fn parse_perspective(s: &str) -> anyhow::Result<Perspective> {
    match s {
        "provider" => Ok(Perspective::Provider),
        "population" => Ok(Perspective::Population),
        other => bail!("perspective '{other}' must be 'provider' or 'population'"),
    }
}

/// Splits `id@version`.
pub fn split_indicator(s: &str) -> anyhow::Result<(String, Option<u32>)> {
    match s.split_once('@') {
        Some((id, v)) => Ok((id.to_string(), Some(v.parse().with_context(|| format!("version in '{s}' is not a number"))?))),
        None => Ok((s.to_string(), None)),
    }
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let catalog = Catalog::load(args.catalog.as_deref())?;
    let (indicator, version) = split_indicator(&args.indicator)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (datalager, region): (Box<dyn Datalager>, String) = match (&args.config, &args.datalager) {
            (Some(config), _) => {
                let config = AgentConfig::load(Some(config))?;
                (norrsken_agent::datalager::open(&config.datalager, &config.region).await?, config.region)
            }
            (None, Some(folder)) => {
                let format = if args.csv { FolderFormat::Csv } else { FolderFormat::Parquet };
                let datalager = FolderDatalager::open(folder, format)?;
                let region = match (&args.region, Manifest::read(folder)) {
                    (Some(r), _) => geography::find_region(r).map(|r| r.code.to_string()).unwrap_or_else(|| r.clone()),
                    (None, Ok(m)) => m.region,
                    (None, Err(e)) => bail!("give --region: {e}"),
                };
                (Box::new(datalager), region)
            }
            (None, None) => bail!("give --datalager <folder> or --config <agent.toml>"),
        };
        let engine = Engine::open(datalager.as_ref(), &region, &EngineOptions::default()).await?;
        let (first, last) = engine.data_years();
        let query = IndicatorQuery {
            indicator,
            version,
            breakdowns: args.by.clone(),
            filters: parse_filters(&args.filters)?,
            period: args.period.clone().unwrap_or_else(|| format!("{first}..{last}")),
            options: QueryOptions { perspective: parse_perspective(&args.perspective)?, ..Default::default() },
            ..Default::default()
        };
        let validated = query.validate_for_engine(&catalog, Some(engine.data_years()))?;
        if args.sql {
            println!("{}", engine.sql(&validated));
            return Ok(());
        }
        let started = std::time::Instant::now();
        let table = if args.aggregate_in_sql { engine.evaluate_in_sql(&validated).await? } else { engine.evaluate(&validated).await? };
        let batch = table.to_record_batch()?;
        println!("{}", pretty_format_batches(&[batch])?);
        eprintln!(
            "{} cells for {} in region {} ({}), data version {}, {:.0} ms. Raw counts: not disclosure-controlled.",
            table.cells.len(),
            validated.recipe.key(),
            region,
            validated.period,
            engine.data_version(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    })
}
