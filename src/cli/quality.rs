//! `norrsken quality <recipe>`: the recipe's data-quality profile per region, from ordinary
//! protected questions (docs/data-quality.md), as a table in words or as JSON.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use clap::Args;
use norrsken_model::vocabulary::{self, quality_word};
use norrsken_present::quality::{self, Band, Check, QualityProfile};

use super::client::ConnectArgs;
use super::render::{grid, Lang};
use super::report::FlightAsk;

#[derive(Args)]
pub struct QualityArgs {
    /// Indicator id (see `norrsken indicators`).
    indicator: String,
    /// The period, e.g. 2021..2025 (the monthly check needs half a year of history).
    #[arg(long)]
    period: String,
    /// table (default) or json.
    #[arg(long, default_value = "table")]
    format: String,
    #[arg(long, value_enum)]
    lang: Option<Lang>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(args: QualityArgs) -> anyhow::Result<()> {
    if !["table", "json"].contains(&args.format.as_str()) {
        bail!("--format '{}' must be table or json", args.format);
    }
    let connection = args.connect.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let p = runtime.block_on(quality::profile(&FlightAsk(&connection), &args.indicator, &args.period)).with_context(|| format!("the quality profile of {}", args.indicator))?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&p)?),
        _ => print!("{}", text(&p, Lang::or_locale(args.lang))),
    }
    Ok(())
}

/// The profile in words: one line per check with each region's band, then the findings.
pub fn text(p: &QualityProfile, lang: Lang) -> String {
    let l = lang.words();
    let w = |key: &str| quality_word(key, l).to_string();
    let mut out = String::new();
    let title = if lang == Lang::Sv { &p.title_sv } else { &p.title };
    let _ = writeln!(out, "{title} ({}), {}", p.recipe, vocabulary::period_text(&p.period));
    let mut regions: Vec<(String, String)> = p.outcomes.iter().map(|o| (o.region.clone(), o.region_name.clone())).collect();
    regions.sort();
    regions.dedup();
    let mut header = vec![w("check")];
    header.extend(regions.iter().map(|r| r.1.clone()));
    let mut rows = Vec::new();
    for check in Check::ALL {
        if !p.outcomes.iter().any(|o| o.check == check) {
            continue;
        }
        let mut line = vec![w(&format!("check.{}", check.name()))];
        for (region, _) in &regions {
            let band = p.outcomes.iter().find(|o| o.check == check && &o.region == region).map(|o| o.band).unwrap_or(Band::NotAssessed);
            line.push(w(&format!("band.{}", band.name())));
        }
        rows.push(line);
    }
    out.push_str(&grid(&header, &rows, |_| false));
    if p.findings.is_empty() {
        let _ = writeln!(out, "{}", w("no_findings"));
    } else {
        let _ = writeln!(out, "{}:", w("findings"));
        let header: Vec<String> = ["band", "check", "subject", "value", "expected"].iter().map(|k| w(k)).chain(std::iter::once(String::new())).collect();
        let number = |v: Option<f64>, check: Check| match (v, check) {
            (Some(v), Check::EducationMissing | Check::UnknownKommun) => format!("{} %", vocabulary::format_number(100.0 * v, 1, l)),
            (Some(v), _) => vocabulary::format_number(v, if v.abs() < 100.0 { 1 } else { 0 }, l),
            (None, _) => String::new(),
        };
        let rows: Vec<Vec<String>> = p
            .findings
            .iter()
            .map(|f| {
                let subject = match (&f.subject, f.check) {
                    (Some(k), Check::EducationMissing | Check::UnknownKommun) => vocabulary::names::value_text(norrsken_model::breakdown::Breakdown::Kommun, k, l),
                    (Some(s), _) => s.clone(),
                    (None, _) => String::new(),
                };
                vec![w(&format!("band.{}", f.band.name())), w(&format!("check.{}", f.check.name())), format!("{}: {subject}", f.region_name), number(f.value, f.check), number(f.expected, f.check), String::new()]
            })
            .collect();
        out.push_str(&grid(&header, &rows, |i| i == 3 || i == 4));
    }
    out
}
