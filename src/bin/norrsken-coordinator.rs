//! `norrsken-coordinator`: the coordinator server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use norrsken_coordinator::config::CoordinatorConfig;

#[derive(Parser)]
#[command(name = "norrsken-coordinator", version, about = "Norrsken coordinator: fans indicator queries out to the regional agents and merges their answers")]
struct Cli {
    /// Configuration file (TOML); NORRSKEN_COORDINATOR_* environment variables override it.
    #[arg(long, short, env = "NORRSKEN_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Print the effective configuration and check certificates and agents.
    CheckConfig,
}

fn main() -> ExitCode {
    norrsken_common::tls::install_crypto_provider();
    norrsken::server_main::init_logging();
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        let config = CoordinatorConfig::load(cli.config.as_deref())?;
        let runtime = tokio::runtime::Runtime::new()?;
        match cli.command.unwrap_or(Command::Run) {
            Command::CheckConfig => runtime.block_on(norrsken::server_main::check_coordinator(config)),
            Command::Run => runtime.block_on(async {
                let _telemetry = norrsken_common::telemetry::init(&config.telemetry, "norrsken-coordinator")?;
                let poll = config.reload_poll_s;
                let running = std::sync::Arc::new(norrsken_coordinator::server::start(config).await?);
                eprintln!("norrsken-coordinator listening on {} with {} agent(s)", running.server.addr, running.node.agents().len());
                let r = running.clone();
                norrsken::server_main::reload_on_hangup(move || {
                    let r = r.clone();
                    async move { r.reload() }
                });
                if poll > 0 {
                    running.watch(std::time::Duration::from_secs(poll));
                }
                norrsken::server_main::wait_for_shutdown().await;
                running.stop(std::time::Duration::from_secs(30)).await.map_err(anyhow::Error::msg)
            }),
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("norrsken-coordinator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
