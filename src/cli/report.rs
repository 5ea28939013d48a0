//! `norrsken report`: the web app's regional report from the command line, as PDF, xlsx or
//! JSON (by the file's extension). The same report: built by the coordinator crate's
//! [`report::build`] from the same questions, rendered by the same [`export`] functions.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use norrsken_common::error::NodeError;
use norrsken_common::service::federation::Federation;
use norrsken_model::federated::Federated;
use norrsken_model::query::IndicatorQuery;
use norrsken_present::export;
use norrsken_present::report::{self, OwnTable, ReportRequest};

use super::client::{ConnectArgs, Connection};
use super::render::Lang;

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The region: county code (24) or name (Västerbotten).
    #[arg(long, required_unless_present = "definition")]
    region: Option<String>,
    /// Indicator ids, comma separated.
    #[arg(long, value_delimiter = ',')]
    indicators: Vec<String>,
    /// A programme area (e.g. "Endokrina sjukdomar"): every indicator in it.
    #[arg(long)]
    area: Option<String>,
    /// The period, e.g. 2021..2025 (the trend needs at least three years).
    #[arg(long, required_unless_present = "definition")]
    period: Option<String>,
    /// A comment on the whole report, printed under the summary.
    #[arg(long)]
    comment: Option<String>,
    /// A comment on one indicator, `id=text` (repeatable).
    #[arg(long = "indicator-comment", value_name = "ID=TEXT")]
    indicator_comments: Vec<String>,
    /// Published comparison values (Riket, other regions) from a CSV file (docs/web.md,
    /// "Comparator file"), shown as their own rows.
    #[arg(long)]
    national: Option<PathBuf>,
    /// A saved report definition (JSON: region, indicators or area, period, comments), as
    /// `--save-definition` writes it; options given here override it.
    #[arg(long)]
    definition: Option<PathBuf>,
    /// Also write the report's definition (JSON) to this file, to run it again or share it.
    #[arg(long)]
    save_definition: Option<PathBuf>,
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

/// The federation over a Flight connection: the answer decoded once into its domain
/// value, an error read back with its kind.
#[derive(Debug)]
pub(super) struct FlightAsk<'a>(pub(super) &'a Connection);

#[tonic::async_trait]
impl Federation for FlightAsk<'_> {
    async fn ask(&self, q: IndicatorQuery) -> Result<Federated, NodeError> {
        let (schema, batches) = self.0.fetch_typed(q.encode_ticket(None)).await?;
        Federated::from_batches(&schema, &batches).map_err(|e| NodeError::Internal(format!("the coordinator's answer: {e}")))
    }
    async fn catalog(&self) -> Result<serde_json::Value, NodeError> {
        let bytes = self.0.action_typed("catalog").await?;
        serde_json::from_slice(&bytes).map_err(|e| NodeError::Internal(format!("the catalog: {e}")))
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
    let mut request = match &args.definition {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading --definition {}", path.display()))?;
            serde_json::from_str::<ReportRequest>(&text).with_context(|| format!("--definition {}: not a report definition", path.display()))?
        }
        None => ReportRequest::default(),
    };
    if let Some(r) = &args.region {
        request.region = r.clone();
    }
    if !args.indicators.is_empty() {
        request.indicators = args.indicators.clone();
    }
    if args.area.is_some() {
        request.area = args.area.clone();
    }
    if let Some(p) = &args.period {
        request.period = p.clone();
    }
    if args.comment.is_some() {
        request.comment = args.comment.clone();
    }
    for c in &args.indicator_comments {
        let Some((id, text)) = c.split_once('=') else { bail!("--indicator-comment '{c}': write it as ID=TEXT") };
        request.comments.insert(id.trim().to_string(), text.trim().to_string());
    }
    if let Some(path) = &args.national {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading --national {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        request.national = report::national::from_csv(&name, &text)?;
    }
    request.lang = if Lang::or_locale(args.lang) == Lang::Sv { report::Lang::Sv } else { report::Lang::En };
    if let Some(path) = &args.save_definition {
        // The definition without the own table: that stays with the analyst.
        std::fs::write(path, serde_json::to_vec_pretty(&request)?).with_context(|| format!("writing {}", path.display()))?;
    }
    request.own = own;
    let connection = args.connect.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let rep = runtime.block_on(report::build(&FlightAsk(&connection), &request))?;
    let bytes = match extension.as_str() {
        "pdf" => export::report_pdf::render(&rep)?,
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
