//! Connecting to a coordinator as an analyst or script: mutual TLS with a client certificate.
//!
//! Connection settings come from flags, else environment variables, else a client config
//! file (`--client-config`, default `~/.config/norrsken/client.toml`):
//!
//! ```toml
//! coordinator = "https://coordinator.example.se:50050"
//! cert = "/home/me/.norrsken/analyst.pem"
//! key = "/home/me/.norrsken/analyst.key"
//! ca = "/home/me/.norrsken/ca.pem"
//! server_name = "coordinator.example.se"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Args;
pub use norrsken::client::Connection;
use norrsken_common::pki::COORDINATOR_DNS_NAME;
use norrsken_common::tls::TlsFiles;
use serde::Deserialize;

#[derive(Args, Clone, Debug, Default)]
pub struct ConnectArgs {
    /// Coordinator address, e.g. https://127.0.0.1:50050 [env: NORRSKEN_COORDINATOR]
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Client certificate (PEM) [env: NORRSKEN_CERT]
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) [env: NORRSKEN_KEY]
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// CA bundle the coordinator's certificate chains to (PEM) [env: NORRSKEN_CA]
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Name in the coordinator's certificate [env: NORRSKEN_SERVER_NAME]
    #[arg(long)]
    pub server_name: Option<String>,
    /// Client config file (TOML with the keys above)
    #[arg(long)]
    pub client_config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    coordinator: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    server_name: Option<String>,
}

impl ConnectArgs {
    pub fn resolve(&self) -> anyhow::Result<Connection> {
        let file_path = self.client_config.clone().or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/norrsken/client.toml")).filter(|p| p.is_file())
        });
        let file: ClientFile = match &file_path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("client config {}", p.display()))?
            }
            None => ClientFile::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let pick = |flag: &Option<String>, var: &str, from_file: &Option<String>, what: &str| -> anyhow::Result<String> {
            flag.clone()
                .or_else(|| env(var))
                .or_else(|| from_file.clone())
                .ok_or_else(|| anyhow!("no {what}: give --{}, set {var} or a client config file", what.replace(' ', "-")))
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let url = pick(&self.coordinator, "NORRSKEN_COORDINATOR", &file.coordinator, "coordinator")?;
        let cert = pick(&path(&self.cert), "NORRSKEN_CERT", &path(&file.cert), "cert")?;
        let key = pick(&path(&self.key), "NORRSKEN_KEY", &path(&file.key), "key")?;
        let ca = pick(&path(&self.ca), "NORRSKEN_CA", &path(&file.ca), "ca")?;
        let server_name = self
            .server_name
            .clone()
            .or_else(|| env("NORRSKEN_SERVER_NAME"))
            .or(file.server_name)
            .unwrap_or_else(|| COORDINATOR_DNS_NAME.to_string());
        Ok(Connection { url, tls: TlsFiles { cert: cert.into(), key: key.into(), ca: ca.into(), crls: vec![] }, server_name })
    }
}
