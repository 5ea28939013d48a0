//! `norrsken synth`: writes the synthetic datalager.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use norrsken_synth::{generate, parse_years, InterventionSettings, SynthOptions};

#[derive(Args)]
pub struct SynthArgs {
    /// Output folder; one sub-folder per region.
    #[arg(long)]
    out: PathBuf,
    /// Population scale: 1.0 = the real populations (~905,000 persons).
    #[arg(long, default_value_t = 0.01)]
    scale: f64,
    /// Random seed; the same seed, scale and options give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Regions to write (county code, ISO code or name), comma-separated; default all four.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Years to generate, inclusive.
    #[arg(long, default_value = "2021..2025")]
    years: String,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Do not show a progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also load each region into this PostgreSQL database (libpq key=value string, e.g.
    /// "host=127.0.0.1 user=postgres dbname=test"), one schema per region.
    #[arg(long)]
    postgres: Option<String>,
    /// Schema name prefix for --postgres: region 25 goes to <prefix>25.
    #[arg(long, default_value = "norrsken_")]
    pg_schema_prefix: String,
    /// Create b-tree indexes (keys, main diagnosis, start time) after loading.
    #[arg(long)]
    pg_indexes: bool,
    /// Keep the files in generation order instead of laying them out for the recipes
    /// (`norrsken layout`).
    #[arg(long)]
    no_layout: bool,
    /// Leave out the simulated mobile team (the intervention with a known effect that the
    /// cohort recipes evaluate).
    #[arg(long)]
    no_intervention: bool,
    /// The intervention's effect per region: the share of frailty admissions after joining
    /// that the team avoids, e.g. "25=0.45,24=0.40,23=0.10,22=0.35" (the default).
    #[arg(long, value_delimiter = ',')]
    intervention_effects: Vec<String>,
    /// Share of residents aged 70 or more with recurring frailty admissions (default 0.05).
    #[arg(long)]
    frail_share: Option<f64>,
    /// A known defect to inject (repeatable; docs/data-quality.md): duplicate-month:23:2024-03,
    /// missing-education:2480, stop-coding:22:I63:2024, implausible-hba1c:25,
    /// unknown-kommun:2309>2399.
    #[arg(long = "defect")]
    defects: Vec<String>,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let (first_year, last_year) = parse_years(&args.years)?;
    let options = SynthOptions {
        out: args.out.clone(),
        scale: args.scale,
        seed: args.seed,
        regions: args.regions,
        first_year,
        last_year,
        threads: args.threads,
        progress: !args.quiet,
        intervention: intervention(args.no_intervention, &args.intervention_effects, args.frail_share)?,
        defects: args.defects.iter().map(|d| norrsken_synth::defects::Defect::parse(d)).collect::<Result<_, _>>()?,
    };
    let manifests = generate(&options).with_context(|| format!("generating into {}", args.out.display()))?;
    println!("{:<22} {:>10} {:>11} {:>10} {:>11} {:>10} {:>12}", "region", "persons", "contacts", "diagnoses", "procedures", "drugs", "measurements");
    for m in &manifests {
        let n = |t: &str| m.rows.get(t).copied().unwrap_or(0);
        println!(
            "{:<22} {:>10} {:>11} {:>10} {:>11} {:>10} {:>12}",
            format!("{} {}", m.region, m.region_name),
            n("persons"),
            n("contacts"),
            n("diagnoses"),
            n("procedures"),
            n("drugs"),
            n("measurements")
        );
    }
    println!("written to {}", args.out.display());
    let runtime = tokio::runtime::Runtime::new()?;
    if !args.no_layout {
        let started = std::time::Instant::now();
        let folders: Vec<PathBuf> = manifests
            .iter()
            .map(|m| norrsken_model::geography::find_region(&m.region).map(|r| norrsken_synth::region_dir(&args.out, r)).context("unknown region in manifest"))
            .collect::<anyhow::Result<_>>()?;
        runtime.block_on(super::layout::lay_out_all(&folders, &Default::default()))?;
        println!("laid out for the recipes (sorted by diagnosis, code and kind) in {:.1} s", started.elapsed().as_secs_f64());
    }
    if let Some(url) = &args.postgres {
        for m in &manifests {
            let region = norrsken_model::geography::find_region(&m.region).context("unknown region in manifest")?;
            let schema = format!("{}{}", args.pg_schema_prefix, m.region);
            let started = std::time::Instant::now();
            let folder = norrsken_synth::region_dir(&args.out, region);
            let counts = runtime
                .block_on(norrsken_agent::datalager::postgres::load_folder(url, &schema, &folder, args.pg_indexes))
                .with_context(|| format!("loading region {} into PostgreSQL", m.region))?;
            let rows: u64 = counts.iter().map(|(_, n)| n).sum();
            println!("loaded region {} into schema {schema}: {rows} rows in {:.1} s", m.region, started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// The intervention's settings from the options; errors name the option and the value.
fn intervention(off: bool, effects: &[String], frail_share: Option<f64>) -> anyhow::Result<Option<InterventionSettings>> {
    if off {
        return Ok(None);
    }
    let mut settings = InterventionSettings::default();
    if let Some(f) = frail_share {
        settings.frail_share = f;
    }
    if !effects.is_empty() {
        settings.effects = effects
            .iter()
            .map(|e| {
                let (code, v) = e.split_once('=').with_context(|| format!("--intervention-effects: '{e}' is not CODE=SHARE (e.g. 25=0.45)"))?;
                let v: f64 = v.trim().parse().with_context(|| format!("--intervention-effects: '{v}' in '{e}' is not a number"))?;
                Ok((code.trim().to_string(), v))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(Some(settings))
}
