//! `norrsken indicators`: lists the indicator catalog.

use std::path::PathBuf;

use clap::Args;
use norrsken_model::catalog::{Catalog, Recipe};

use super::client::ConnectArgs;
use super::render::Lang;

#[derive(Args)]
pub struct IndicatorsArgs {
    /// Recipe folder instead of the built-in catalog.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Language of the titles: sv or en (default: from the locale).
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    /// Output format: table, json or markdown.
    #[arg(long, default_value = "table")]
    format: String,
    /// Ask the coordinator for its catalog (given --coordinator or NORRSKEN_COORDINATOR);
    /// otherwise the built-in catalog is listed.
    #[command(flatten)]
    connect: ConnectArgs,
}

fn print_table(recipes: &[&Recipe], lang: Lang) {
    println!("{:<30} {:>3} {:<11} {:<7} {:<20} {}", "indicator", "ver", "kind", "unit", "source", if lang == Lang::Sv { "titel" } else { "title" });
    for r in recipes {
        let title = if lang == Lang::Sv { &r.title.sv } else { &r.title.en };
        println!("{:<30} {:>3} {:<11} {:<7} {:<20} {}", r.id, r.version, r.kind.name(), r.unit.name(), r.source.name(), title);
    }
}

pub fn run(args: IndicatorsArgs) -> anyhow::Result<()> {
    let remote = args.connect.coordinator.is_some() || std::env::var("NORRSKEN_COORDINATOR").is_ok_and(|v| !v.is_empty());
    if remote {
        let connection = args.connect.resolve()?;
        let body = tokio::runtime::Runtime::new()?.block_on(connection.action("catalog"))?;
        let value: serde_json::Value = serde_json::from_slice(&body)?;
        if args.format == "json" {
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        println!("{:<30} {:>3} {:<11} {}", "indicator", "ver", "kind", "title");
        for r in value["recipes"].as_array().into_iter().flatten() {
            let lang = if Lang::or_locale(args.lang) == Lang::Sv { "sv" } else { "en" };
            println!("{:<30} {:>3} {:<11} {}", r["id"].as_str().unwrap_or(""), r["version"], r["kind"].as_str().unwrap_or(""), r["title"][lang].as_str().unwrap_or(""));
        }
        println!("\ncatalog hash {} (from {})", value["catalog_hash"].as_str().unwrap_or(""), connection.url);
        return Ok(());
    }
    let catalog = Catalog::load(args.catalog.as_deref())?;
    match args.format.as_str() {
        "json" => {
            let all: Vec<_> = catalog.all().map(|r| r.as_ref()).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        "markdown" => print!("{}", catalog.to_markdown()),
        "table" => {
            let latest = catalog.latest();
            print_table(&latest.iter().map(|r| r.as_ref()).collect::<Vec<_>>(), Lang::or_locale(args.lang));
            println!("\ncatalog hash {}", catalog.hash());
        }
        other => anyhow::bail!("--format '{other}' must be table, json or markdown"),
    }
    Ok(())
}
