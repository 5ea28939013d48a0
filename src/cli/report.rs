//! `norrsken report`: the web app's regional report from the command line, as PDF, xlsx or
//! JSON (by the file's extension). The same report: built by the coordinator crate's
//! [`report::build`] from the same questions, rendered by the same [`export`] functions.

use std::path::PathBuf;

use anyhow::{bail, Context};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use clap::Args;
use norrsken_common::query::IndicatorQuery;
use norrsken_coordinator::export;
use norrsken_coordinator::report::{self, Ask, OwnTable, ReportRequest, Unanswered};

use super::client::{ConnectArgs, Connection};
use super::render::Lang;

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The region: county code (24) or name (Västerbotten).
    #[arg(long)]
    region: String,
    /// Indicator ids, comma separated.
    #[arg(long, value_delimiter = ',')]
    indicators: Vec<String>,
    /// A programme area (e.g. "Endokrina sjukdomar"): every indicator in it.
    #[arg(long)]
    area: Option<String>,
    /// The period, e.g. 2021..2025 (the trend needs at least three years).
    #[arg(long)]
    period: String,
    /// The analyst's own aggregates (CSV, first line = column names), shown as their own
    /// source; read here, never sent to the coordinator or the agents.
    #[arg(long)]
    own: Option<PathBuf>,
    /// The report's language (default from the locale).
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    /// Where to write it: .pdf, .xlsx or .json.
    #[arg(long)]
    out: PathBuf,
}

struct FlightAsk<'a>(&'a Connection);

impl Ask for FlightAsk<'_> {
    async fn ask(&self, q: &IndicatorQuery) -> Result<(SchemaRef, Vec<RecordBatch>), Unanswered> {
        self.0.fetch(q.encode_ticket(None)).await.map_err(|e| Unanswered::Failed(format!("{e:#}")))
    }
    async fn catalog(&self) -> Result<serde_json::Value, Unanswered> {
        let bytes = self.0.action("catalog").await.map_err(|e| Unanswered::Failed(format!("{e:#}")))?;
        serde_json::from_slice(&bytes).map_err(|e| Unanswered::Failed(e.to_string()))
    }
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let extension = args.out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    if !["pdf", "xlsx", "json"].contains(&extension.as_str()) {
        bail!("--out {}: the file must end in .pdf, .xlsx or .json", args.out.display());
    }
    let own = match &args.own {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading --own {}", path.display()))?;
            let title = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            Some(OwnTable::from_csv(&title, &text)?)
        }
        None => None,
    };
    let request = ReportRequest {
        region: args.region.clone(),
        indicators: args.indicators.clone(),
        area: args.area.clone(),
        period: args.period.clone(),
        lang: if Lang::or_locale(args.lang) == Lang::Sv { report::Lang::Sv } else { report::Lang::En },
        own,
    };
    let connection = args.connect.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let rep = runtime.block_on(report::build(&FlightAsk(&connection), &request))?;
    let bytes = match extension.as_str() {
        "pdf" => export::report_pdf::render(&rep),
        "xlsx" => export::xlsx::report(&rep)?,
        _ => serde_json::to_vec_pretty(&rep)?,
    };
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "Wrote {} ({} indicators, {}{}).",
        args.out.display(),
        rep.indicators.len(),
        rep.region_name,
        if rep.partial { "; PARTIAL: a region did not answer some questions" } else { "" }
    );
    Ok(())
}
