//! Subcommands of the `norrsken` tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod eval;
mod indicators;
mod synth;

#[derive(Parser)]
#[command(name = "norrsken", version, about = "Federated, disclosure-controlled indicator queries across Swedish healthcare regions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic datalager (Parquet) for the four Norra regions.
    Synth(synth::SynthArgs),
    /// Evaluate one recipe on a local datalager and print the raw cells (region IT only).
    Eval(eval::EvalArgs),
    /// List the indicator catalog.
    Indicators(indicators::IndicatorsArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => synth::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Indicators(args) => indicators::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
