//! `norrsken indicators`: lists the indicator catalog.

use std::path::PathBuf;

use clap::Args;
use norrsken_common::catalog::Catalog;

#[derive(Args)]
pub struct IndicatorsArgs {
    /// Recipe folder instead of the built-in catalog.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Output format: table, json or markdown.
    #[arg(long, default_value = "table")]
    format: String,
}

pub fn run(args: IndicatorsArgs) -> anyhow::Result<()> {
    let catalog = Catalog::load(args.catalog.as_deref())?;
    match args.format.as_str() {
        "json" => {
            let all: Vec<_> = catalog.all().map(|r| r.as_ref()).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        "markdown" => print!("{}", catalog.to_markdown()),
        "table" => {
            println!("{:<30} {:>3} {:<11} {:<7} {:<20} {}", "indicator", "ver", "kind", "unit", "source", "title");
            for r in catalog.latest() {
                println!(
                    "{:<30} {:>3} {:<11} {:<7} {:<20} {}",
                    r.id,
                    r.version,
                    r.kind.name(),
                    r.unit.name(),
                    r.source.name(),
                    r.title.en
                );
            }
            println!("\ncatalog hash {}", catalog.hash());
        }
        other => anyhow::bail!("--format '{other}' must be table, json or markdown"),
    }
    Ok(())
}
