//! `norrsken-agent`: the regional agent server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use norrsken_agent::config::AgentConfig;

#[derive(Parser)]
#[command(name = "norrsken-agent", version, about = "Norrsken regional agent: answers disclosure-controlled indicator queries over Arrow Flight (mutual TLS)")]
struct Cli {
    /// Configuration file (TOML); NORRSKEN_AGENT_* environment variables override it.
    #[arg(long, short, env = "NORRSKEN_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Print the effective configuration and check certificates and the datalager.
    CheckConfig,
}

fn main() -> ExitCode {
    norrsken_common::tls::install_crypto_provider();
    norrsken::server_main::init_logging();
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        let config = AgentConfig::load(cli.config.as_deref())?;
        let runtime = tokio::runtime::Runtime::new()?;
        match cli.command.unwrap_or(Command::Run) {
            Command::CheckConfig => runtime.block_on(norrsken::server_main::check_agent(config)),
            Command::Run => runtime.block_on(async {
                let _telemetry = norrsken_common::telemetry::init(&config.telemetry, &format!("norrsken-agent-{}", config.region))?;
                let poll = config.reload_poll_s;
                let running = std::sync::Arc::new(norrsken_agent::server::start(config).await?);
                eprintln!("norrsken-agent for region {} listening on {}", running.node.region.code, running.server.addr);
                let r = running.clone();
                norrsken::server_main::reload_on_hangup(move || {
                    let r = r.clone();
                    async move { r.reload_all().await }
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
            eprintln!("norrsken-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
