//! The agent's configuration (`agent.toml`, see deploy/ and docs/deploy.md).

use std::path::PathBuf;

use norrsken_common::audit::AuditConfig;
use norrsken_common::telemetry::TelemetryConfig;

pub use crate::datalager::config::{DatalagerConfig, DatalagerKind};
use norrsken_model::geography;
use norrsken_common::settings::{self, SettingsError};
use norrsken_common::tls::TlsFiles;
use serde::{Deserialize, Serialize};

/// Environment variables overriding the file start with this prefix.
pub const ENV_PREFIX: &str = "NORRSKEN_AGENT";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The region this agent answers for: county code (e.g. "25"), ISO code or name.
    pub region: String,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    pub tls: TlsFiles,
    /// Certificate common names allowed to query (normally the coordinator's).
    #[serde(default = "default_allowed_clients")]
    pub allowed_clients: Vec<String>,
    pub datalager: DatalagerConfig,
    /// The region's disclosure policy file (see docs/disclosure-control.md).
    pub policy: PathBuf,
    /// The agent's own audit log (see docs/audit.md).
    pub audit: AuditConfig,
    /// The release ledger file (see docs/disclosure-control.md); default
    /// `release-ledger.jsonl` in the audit log's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<PathBuf>,
    /// Common names of the region admins who may read this agent's audit log, directly or
    /// through the coordinator.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Folder of recipe files; the built-in catalog when absent.
    #[serde(default)]
    pub catalog_dir: Option<PathBuf>,
    #[serde(default)]
    pub engine: EngineConfig,
    /// Traces and metrics (both exporters off by default).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Check the certificate, CA, CRL and policy files for changes this often (seconds;
    /// 0 = only on SIGHUP).
    #[serde(default = "default_reload_poll")]
    pub reload_poll_s: u64,
    /// Secure sums with the other regions' agents (docs/secure-aggregation.md); off when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_sum: Option<crate::secure::SecureSumConfig>,
}

fn default_reload_poll() -> u64 {
    10
}

/// `[engine]`: see [`EngineOptions`].
pub type EngineConfig = crate::engine::EngineOptions;

fn default_listen() -> String {
    "0.0.0.0:50051".into()
}

fn default_allowed_clients() -> Vec<String> {
    vec!["coordinator".into()]
}

impl AgentConfig {
    /// Where the release ledger lives.
    pub fn ledger_path(&self) -> PathBuf {
        self.ledger.clone().unwrap_or_else(|| self.audit.dir.join("release-ledger.jsonl"))
    }

    /// Where the secure-sum run ledger lives by default: beside the release ledger.
    pub fn runs_path(&self) -> PathBuf {
        self.ledger_path().with_file_name("secure-sum-runs.jsonl")
    }

    /// Defaults, then the file, then `NORRSKEN_AGENT_*` variables, then validation.
    pub fn load(file: Option<&std::path::Path>) -> Result<AgentConfig, SettingsError> {
        let mut c: AgentConfig = settings::load(file, ENV_PREFIX)?;
        c.validate().map_err(|e| e.in_file(file))?;
        Ok(c)
    }

    /// Checks values and normalises the region to its county code.
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        let region = geography::find_region(&self.region).ok_or_else(|| {
            SettingsError::key("region", format!("'{}' is not a region; use a county code such as 25", self.region))
        })?;
        self.region = region.code.to_string();
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| SettingsError::key("listen", format!("'{}': {e}", self.listen)))?;
        if self.allowed_clients.is_empty() {
            return Err(SettingsError::key("allowed_clients", "lists nobody: the agent would refuse every query"));
        }
        match self.datalager.kind {
            DatalagerKind::Parquet | DatalagerKind::Csv => {
                if self.datalager.path.is_none() {
                    return Err(SettingsError::key("datalager.path", "a parquet or csv datalager needs the folder"));
                }
            }
            DatalagerKind::Postgres => {
                if self.datalager.url.is_none() {
                    return Err(SettingsError::key("datalager.url", "a postgres datalager needs a connection string"));
                }
            }
        }
        crate::datalager::validate_mapping(&self.datalager.tables).map_err(|e| SettingsError::key("datalager.tables", e))?;
        Ok(())
    }
}
