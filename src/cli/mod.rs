//! Subcommands of the `norrsken` tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use norrsken_model::query::AnalysisKind;

mod analyse;
mod audit;
mod bench;
mod certs;
mod client;
mod demo;
mod eval;
mod indicators;
mod layout;
mod quality;
mod query;
mod render;
mod report;
mod synth;

#[derive(Parser)]
#[command(name = "norrsken", version, about = "Federated, disclosure-controlled indicator queries across Swedish healthcare regions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run four regional agents and a coordinator on this machine and compare a few indicators.
    Demo(demo::DemoArgs),
    /// Ask the coordinator for a cross-region comparison.
    Query(query::QueryArgs),
    /// Each region against the pooled value, the other regions or the target, with significance.
    Compare(analyse::AnalysisArgs),
    /// Yearly values and the change per year, per region and pooled.
    Trend(analyse::AnalysisArgs),
    /// Gaps between the groups of a breakdown (education, income, sex...), SII and RII.
    Equity(analyse::AnalysisArgs),
    /// A funnel plot's control limits and the units outside them.
    Funnel(analyse::AnalysisArgs),
    /// A cohort recipe's effect per region (before/after and against its comparison group)
    /// and a meta-analysis across regions: is the result general?
    Evaluate(analyse::AnalysisArgs),
    /// A recipe's data-quality profile per region: temporal breaks, coverage, completeness,
    /// conformance and plausibility, from ordinary protected questions.
    Quality(quality::QualityArgs),
    /// A regional report (PDF, xlsx or JSON): the region against the others and the target,
    /// trends, and a summary of strengths and weaknesses.
    Report(report::ReportArgs),
    /// Development certificates.
    Certs(certs::CertsArgs),
    /// Verify, review, reconcile and fetch audit logs.
    Audit(audit::AuditArgs),
    /// Generate a synthetic datalager (Parquet) for the four Norra regions.
    Synth(synth::SynthArgs),
    /// Evaluate one recipe on a local datalager and print the raw cells (region IT only).
    Eval(eval::EvalArgs),
    /// List the indicator catalog.
    Indicators(indicators::IndicatorsArgs),
    /// Sort a Parquet datalager's files for the recipes (synth does it for what it generates).
    Layout(layout::LayoutArgs),
    /// Measure the federation against DuckDB and a central PostgreSQL (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Measure what protection costs analysts: the share of cells of at least k persons
    /// released over simulated analyst sessions (docs/disclosure-control.md).
    Availability(bench::AvailabilityArgs),
}

pub fn main() -> ExitCode {
    norrsken_common::tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("NORRSKEN_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let ok = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Demo(args) => ok(demo::run(args)),
        Command::Query(args) => ok(query::run(args)),
        Command::Compare(args) => ok(analyse::run(AnalysisKind::Compare, args)),
        Command::Trend(args) => ok(analyse::run(AnalysisKind::Trend, args)),
        Command::Equity(args) => ok(analyse::run(AnalysisKind::Equity, args)),
        Command::Funnel(args) => ok(analyse::run(AnalysisKind::Funnel, args)),
        Command::Evaluate(args) => ok(analyse::run(AnalysisKind::Evaluate, args)),
        Command::Quality(args) => ok(quality::run(args)),
        Command::Report(args) => ok(report::run(args)),
        Command::Certs(args) => ok(certs::run(args)),
        Command::Audit(args) => audit::run(args),
        Command::Synth(args) => ok(synth::run(args)),
        Command::Eval(args) => ok(eval::run(args)),
        Command::Indicators(args) => ok(indicators::run(args)),
        Command::Bench(args) => ok(bench::run_cli(args)),
        Command::Availability(args) => ok(bench::run_availability_cli(args)),
        Command::Layout(args) => ok(layout::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
