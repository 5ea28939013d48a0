//! `norrsken`: the command-line tool for analysts, region IT and auditors.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
