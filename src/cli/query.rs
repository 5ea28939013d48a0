//! `norrsken query`: asks the coordinator for a cross-region comparison.

use std::path::PathBuf;

use anyhow::{bail, Context};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use clap::Args;
use norrsken_common::query::{IndicatorQuery, QueryOptions};

use super::client::ConnectArgs;
use super::eval::{parse_filters, parse_perspective, split_indicator};
use super::render::{comparison_table, Lang};

#[derive(Args)]
pub struct QueryArgs {
    /// Indicator id (see `norrsken indicators`), optionally id@version.
    indicator: String,
    /// Breakdowns, comma-separated (e.g. sex,age_band).
    #[arg(long = "by", value_delimiter = ',')]
    by: Vec<String>,
    /// Period, e.g. 2023..2025, 2024Q1..2024Q2 or 2024-01..2024-06.
    #[arg(long)]
    period: String,
    /// Regions to ask (county codes or names), comma-separated; default all.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Filters as breakdown=value[,value...]; repeatable.
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Ask for a larger minimum cell size than the regions' floors.
    #[arg(long)]
    min_cell_size: Option<u32>,
    /// provider (default) or population.
    #[arg(long, default_value = "provider")]
    perspective: String,
    /// Only report how many cells would be withheld and why.
    #[arg(long)]
    dry_run: bool,
    /// Bypass the coordinator's result cache.
    #[arg(long)]
    no_cache: bool,
    /// Also return the margins (each breakdown summed over, labelled `total`).
    #[arg(long)]
    totals: bool,
    /// Answer within this many seconds, without the regions that have not answered by then
    /// (the coordinator's agent_timeout_ms is the longest).
    #[arg(long)]
    deadline: Option<f64>,
    /// Language of titles and category labels: sv or en (default: from the locale).
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    /// table (default), csv, json or parquet.
    #[arg(long, default_value = "table")]
    format: String,
    /// Write to a file instead of standard output (required for parquet).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Writes batches in a machine format.
pub fn write_batches(format: &str, schema: &SchemaRef, batches: &[RecordBatch], out: Option<&PathBuf>) -> anyhow::Result<()> {
    let mut sink: Box<dyn std::io::Write + Send> = match out {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout()),
    };
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut sink);
            for b in batches {
                w.write(b)?;
            }
        }
        "json" => {
            let mut w = arrow::json::ArrayWriter::new(&mut sink);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            writeln!(sink)?;
        }
        "parquet" => {
            if out.is_none() {
                bail!("--format parquet needs --out FILE");
            }
            let mut w = parquet::arrow::ArrowWriter::try_new(sink, schema.clone(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
        other => bail!("--format '{other}' must be table, csv, json or parquet"),
    }
    Ok(())
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let (indicator, version) = split_indicator(&args.indicator)?;
    let query = IndicatorQuery {
        indicator,
        version,
        breakdowns: args.by.clone(),
        filters: parse_filters(&args.filters)?,
        period: args.period.clone(),
        regions: args.regions.clone(),
        options: QueryOptions {
            min_cell_size: args.min_cell_size,
            perspective: parse_perspective(&args.perspective)?,
            dry_run: args.dry_run,
            no_cache: args.no_cache,
            totals: args.totals,
            deadline_ms: match args.deadline {
                Some(s) if s.is_finite() && s > 0.0 && s <= 3_600.0 => Some((s * 1000.0).round() as u32),
                Some(s) => bail!("--deadline {s}: give seconds between 0 and 3600"),
                None => None,
            },
        },
        ..Default::default()
    };
    let connection = args.connect.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (schema, batches) = runtime.block_on(connection.fetch(query.encode_ticket(None)))?;
    match args.format.as_str() {
        "table" => {
            let text = comparison_table(&schema, &batches, Lang::or_locale(args.lang));
            match &args.out {
                Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
                None => print!("{text}"),
            }
        }
        f => write_batches(f, &schema, &batches, args.out.as_ref())?,
    }
    if schema.metadata().get("norrsken.partial").map(String::as_str) == Some("true") && args.format != "table" {
        eprintln!("warning: partial result, not every region answered (see the norrsken.regions metadata)");
    }
    Ok(())
}
