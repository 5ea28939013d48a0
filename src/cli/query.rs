//! `norrsken query`: asks the coordinator for a cross-region comparison.

use std::path::PathBuf;

use anyhow::{bail, Context};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use clap::Args;
use norrsken_model::query::{IndicatorQuery, QueryOptions};

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
    /// Period: whole years (2023..2025, 2024), one quarter (2024Q2) or one month (2024-05).
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
    /// Directly age-standardise to a standard population: esp2013 (European Standard
    /// Population 2013) or se2020 (Sweden's population 2020).
    #[arg(long)]
    standardise: Option<String>,
    /// Answer within this many seconds, without the regions that have not answered by then
    /// (the coordinator's agent_timeout_ms is the longest).
    #[arg(long)]
    deadline: Option<f64>,
    /// Language of titles and category labels: sv or en (default: from the locale).
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    /// table (default), csv, json, parquet or xlsx (a spreadsheet with a provenance sheet).
    #[arg(long, default_value = "table")]
    format: String,
    /// Write to a file instead of standard output (required for parquet and xlsx).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Writes batches in a machine format.
pub fn write_batches(format: &str, schema: &SchemaRef, batches: &[RecordBatch], out: Option<&PathBuf>, lang: norrsken_model::vocabulary::Lang) -> anyhow::Result<()> {
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
        "xlsx" => {
            let Some(path) = out else { bail!("--format xlsx needs --out FILE") };
            drop(sink);
            let bytes = norrsken_present::export::answer_xlsx(schema, batches, lang)?;
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        other => bail!("--format '{other}' must be table, csv, json, parquet or xlsx"),
    }
    Ok(())
}

impl QueryArgs {
    /// The question these options ask.
    pub fn to_query(&self) -> anyhow::Result<IndicatorQuery> {
        let (indicator, version) = split_indicator(&self.indicator)?;
        Ok(IndicatorQuery {
            indicator,
            version,
            breakdowns: self.by.clone(),
            filters: parse_filters(&self.filters)?,
            period: self.period.clone(),
            regions: self.regions.clone(),
            options: QueryOptions {
                min_cell_size: self.min_cell_size,
                perspective: parse_perspective(&self.perspective)?,
                dry_run: self.dry_run,
                no_cache: self.no_cache,
                totals: self.totals,
                deadline_ms: match self.deadline {
                    Some(s) if s.is_finite() && s > 0.0 && s <= 3_600.0 => Some((s * 1000.0).round() as u32),
                    Some(s) => bail!("--deadline {s}: give seconds between 0 and 3600"),
                    None => None,
                },
                standardise: self.standardise.clone(),
                analysis: None,
            },
            ..Default::default()
        })
    }

    pub fn connection(&self) -> anyhow::Result<super::client::Connection> {
        self.connect.resolve()
    }

    pub fn format(&self) -> &str {
        &self.format
    }

    pub fn out(&self) -> Option<&PathBuf> {
        self.out.as_ref()
    }

    pub fn lang(&self) -> Lang {
        Lang::or_locale(self.lang)
    }

    /// Prints a text table or writes it to `--out`.
    pub fn emit(&self, text: &str) -> anyhow::Result<()> {
        match &self.out {
            Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
            None => {
                print!("{text}");
                Ok(())
            }
        }
    }
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let query = args.to_query()?;
    let connection = args.connection()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (schema, batches) = runtime.block_on(connection.fetch(query.encode_ticket(None)))?;
    match args.format() {
        "table" => args.emit(&comparison_table(&schema, &batches, args.lang()))?,
        f => write_batches(f, &schema, &batches, args.out(), args.lang().words())?,
    }
    if schema.metadata().get("norrsken.partial").map(String::as_str) == Some("true") && args.format != "table" {
        eprintln!("warning: partial result, not every region answered (see the norrsken.regions metadata)");
    }
    Ok(())
}
