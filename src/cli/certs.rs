//! `norrsken certs dev`: the development PKI.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use anyhow::Context;
use norrsken::pki_dev::{certificate_request, create_dev_pki, CertificateAuthority, DevPkiOptions};
use norrsken_common::pki::write_file;

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
    /// Create a private key and a certificate signing request (CSR) to send to your
    /// organisation's CA: for an agent, the coordinator or a client.
    Request {
        /// Common name: agent-<county code>, coordinator, or a person's or script's name.
        #[arg(long)]
        cn: String,
        /// Your organisation, e.g. "Region Norrbotten".
        #[arg(long, default_value = "Norrsken")]
        organisation: String,
        /// DNS names and IP addresses of a server, comma-separated.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Output folder: <cn>.csr and <cn>.key (the key never leaves your machine).
        #[arg(long)]
        out: PathBuf,
    },
    /// An agent's X25519 key for secure sums between agents (docs/secure-aggregation.md):
    /// creates the key file (mode 0600) when it does not exist and prints its public key,
    /// which the other regions configure under `[secure_sum.peers]`.
    SecureSumKey {
        /// The key file (64 hex digits).
        path: PathBuf,
    },
    /// Sign a CSR with a CA (the development CA, or a small federation CA).
    Sign {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        ca_key: PathBuf,
        #[arg(long)]
        csr: PathBuf,
        /// server, client or both.
        #[arg(long, default_value = "both")]
        usage: String,
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// The certificate file to write (PEM).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::SecureSumKey { path } => {
            use norrsken_common::secure_sum::SumKey;
            let key = if path.exists() {
                SumKey::from_file(&path)?
            } else {
                let k = SumKey::generate()?;
                write_file(&path, k.to_hex().as_bytes(), true)?;
                eprintln!("Created {}", path.display());
                k
            };
            println!("{}", key.public_hex());
            Ok(())
        }
        CertsCommand::Dev { out, regions, coordinator_names, days } => {
            let written = create_dev_pki(&DevPkiOptions { out: out.clone(), regions, coordinator_names, days })?;
            println!("Development PKI in {} (for development only, never for real data):", out.display());
            for name in written {
                println!("  {name}.pem  {name}.key");
            }
            Ok(())
        }
        CertsCommand::Request { cn, organisation, names, out } => {
            let (csr, key) = certificate_request(&cn, &organisation, &names)?;
            write_file(&out.join(format!("{cn}.key")), key.as_bytes(), true)?;
            write_file(&out.join(format!("{cn}.csr")), csr.as_bytes(), false)?;
            println!("wrote {0}/{cn}.key (keep it here) and {0}/{cn}.csr (send it to your CA)", out.display());
            Ok(())
        }
        CertsCommand::Sign { ca, ca_key, csr, usage, days, out } => {
            let (server, client) = match usage.as_str() {
                "server" => (true, false),
                "client" => (false, true),
                "both" => (true, true),
                other => anyhow::bail!("--usage '{other}' must be server, client or both"),
            };
            let authority = CertificateAuthority::load(&ca, &ca_key)?;
            let request = std::fs::read_to_string(&csr).with_context(|| format!("reading {}", csr.display()))?;
            let cert = authority.sign_request(&request, days, server, client)?;
            write_file(&out, cert.cert_pem.as_bytes(), false)?;
            let id = norrsken_common::pki::identity_of(&cert.der).map_err(anyhow::Error::msg)?;
            println!("wrote {} for {} ({}), valid {days} days", out.display(), id.subject, id.fingerprint);
            Ok(())
        }
    }
}
