//! `norrsken synth`: writes the synthetic datalager.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use norrsken_synth::{generate, parse_years, SynthOptions};

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
    Ok(())
}
