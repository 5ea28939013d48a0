//! `norrsken certs dev`: the development PKI.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use norrsken_common::pki::{create_dev_pki, DevPkiOptions};

#[derive(Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development CA and certificates for a coordinator, agents, an analyst, region
    /// admins and an auditor. For development only.
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs-dev")]
        out: PathBuf,
        /// County codes of the agents, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "22,23,24,25")]
        regions: Vec<String>,
        /// Extra DNS names or IP addresses for the coordinator's certificate.
        #[arg(long, value_delimiter = ',')]
        coordinator_names: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Dev { out, regions, coordinator_names, days } => {
            let written = create_dev_pki(&DevPkiOptions { out: out.clone(), regions, coordinator_names, days })?;
            println!("Development PKI in {} (for development only, never for real data):", out.display());
            for name in written {
                println!("  {name}.pem  {name}.key");
            }
            Ok(())
        }
    }
}
