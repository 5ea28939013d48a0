//! The coordinator's configuration (`coordinator.toml`): its agents, its clients and roles.

use std::path::PathBuf;

use norrsken_common::audit::AuditConfig;
use norrsken_common::telemetry::TelemetryConfig;
use norrsken_common::settings::{self, SettingsError};
use norrsken_common::tls::TlsFiles;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "NORRSKEN_COORDINATOR";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of the Arrow Flight SQL front door (same mutual TLS, roles and audit as the
    /// Flight API; docs/sql.md); off when absent.
    #[serde(default)]
    pub sql_listen: Option<String>,
    /// Address of the HTTPS front door (JSON API for the web app; same mutual TLS, roles and
    /// audit); off when absent.
    #[serde(default)]
    pub web_listen: Option<String>,
    pub tls: TlsFiles,
    /// Label of the pooled rows.
    #[serde(default = "default_pooled_label")]
    pub pooled_label: String,
    /// Folder of recipe files; the built-in catalog when absent.
    #[serde(default)]
    pub catalog_dir: Option<PathBuf>,
    /// How long to wait for one agent, retries included: the longest a query waits. A query
    /// can ask for less (`options.deadline_ms`, or the client's gRPC deadline).
    #[serde(default = "default_agent_timeout_ms")]
    pub agent_timeout_ms: u64,
    /// Retries after a transient failure (agent unreachable).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The regions' agents; their number is configuration (4 in Norra, 21 nationally).
    pub agents: Vec<AgentEndpoint>,
    /// Who may connect, and in which role.
    pub clients: Vec<ClientRule>,
    /// The coordinator's own audit log (see docs/audit.md).
    pub audit: AuditConfig,
    /// Traces and metrics (both exporters off by default).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Check the certificate, CA and CRL files for changes this often (seconds; 0 = only on
    /// SIGHUP).
    #[serde(default = "default_reload_poll")]
    pub reload_poll_s: u64,
    /// Answers to repeated questions, keyed by the query, the requester's role and every
    /// asked agent's data and policy versions.
    #[serde(default)]
    pub cache: norrsken_common::cache::CacheSettings,
    /// A region that misses the coordinator's deadline is not asked again until it answers
    /// a probe.
    #[serde(default)]
    pub circuit: crate::circuit::CircuitSettings,
    /// How many questions past the cache each requester may ask.
    #[serde(default)]
    pub limits: crate::limits::LimitSettings,
    /// The Flight SQL front door's limits per statement.
    #[serde(default)]
    pub sql: SqlSettings,
    /// The HTTPS front door's limits per request.
    #[serde(default)]
    pub web: WebSettings,
    /// Pooled cells by secure sums between the agents (docs/secure-aggregation.md).
    #[serde(default)]
    pub secure_sum: crate::secure::SecureSumSettings,
}

/// `[sql]` in coordinator.toml: what one Flight SQL statement may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSettings {
    /// A statement (planning, the indicator questions it asks, and running it) is stopped
    /// after this many seconds.
    #[serde(default = "default_statement_timeout_s")]
    pub statement_timeout_s: u64,
    /// The memory one statement's sorts, joins and aggregations may hold, in MiB (nothing
    /// spills to disk: a statement that needs more is refused).
    #[serde(default = "default_statement_memory_mb")]
    pub statement_memory_mb: u64,
}

fn default_statement_timeout_s() -> u64 {
    120
}
fn default_statement_memory_mb() -> u64 {
    256
}

impl Default for SqlSettings {
    fn default() -> SqlSettings {
        SqlSettings { statement_timeout_s: default_statement_timeout_s(), statement_memory_mb: default_statement_memory_mb() }
    }
}

/// `[web]` in coordinator.toml: how long the HTTPS front door waits for a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// A request's headers must arrive within this many seconds of the connection's start
    /// (or of the previous request on it); otherwise the connection is closed.
    #[serde(default = "default_header_timeout_s")]
    pub header_timeout_s: u64,
    /// A request's body must arrive within this many seconds after its headers; otherwise
    /// it is answered 408 and the connection closed.
    #[serde(default = "default_body_timeout_s")]
    pub body_timeout_s: u64,
}

fn default_header_timeout_s() -> u64 {
    5
}
fn default_body_timeout_s() -> u64 {
    10
}

impl Default for WebSettings {
    fn default() -> WebSettings {
        WebSettings { header_timeout_s: default_header_timeout_s(), body_timeout_s: default_body_timeout_s() }
    }
}

fn default_reload_poll() -> u64 {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentEndpoint {
    /// County code of the agent's region.
    pub region: String,
    /// Display name.
    pub name: String,
    /// e.g. `https://agent-25.example.se:50051`
    pub url: String,
    /// Name the agent's server certificate carries (TLS server name).
    pub domain: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs queries.
    Analyst,
    /// Runs queries and reads their own region's audit log.
    RegionAdmin,
    /// Reads the coordinator's audit log.
    Auditor,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::RegionAdmin => "region_admin",
            Role::Auditor => "auditor",
        }
    }
}

/// Maps a client certificate to a role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientRule {
    /// Certificate subject common name.
    pub cn: String,
    pub role: Role,
    /// For a region admin: the county code of their region.
    #[serde(default)]
    pub region: Option<String>,
    /// Optional pin: the certificate's `sha256:` fingerprint must match too.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

fn default_listen() -> String {
    "0.0.0.0:50050".into()
}
fn default_pooled_label() -> String {
    "Norra".into()
}
fn default_agent_timeout_ms() -> u64 {
    30_000
}
fn default_retries() -> u32 {
    2
}

impl CoordinatorConfig {
    pub fn load(file: Option<&std::path::Path>) -> Result<CoordinatorConfig, SettingsError> {
        let c: CoordinatorConfig = settings::load(file, ENV_PREFIX)?;
        c.validate().map_err(|e| e.in_file(file))?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.listen.parse::<std::net::SocketAddr>().map_err(|e| SettingsError::key("listen", format!("'{}': {e}", self.listen)))?;
        if self.agents.is_empty() {
            return Err(SettingsError::key("agents", "no agents configured"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            if !seen.insert(a.region.clone()) {
                return Err(SettingsError::key(&format!("agents[{i}].region"), format!("region {} is listed twice", a.region)));
            }
            if !(a.url.starts_with("https://")) {
                return Err(SettingsError::key(&format!("agents[{i}].url"), format!("'{}' must start with https:// (agents serve only TLS)", a.url)));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.role == Role::RegionAdmin && c.region.is_none() {
                return Err(SettingsError::key(&format!("clients[{i}].region"), "a region_admin needs the region they administer"));
            }
        }
        if self.agent_timeout_ms == 0 {
            return Err(SettingsError::key("agent_timeout_ms", "must be above 0"));
        }
        let positive = [
            ("sql.statement_timeout_s", self.sql.statement_timeout_s),
            ("sql.statement_memory_mb", self.sql.statement_memory_mb),
            ("web.header_timeout_s", self.web.header_timeout_s),
            ("web.body_timeout_s", self.web.body_timeout_s),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(SettingsError::key(key, "must be above 0"));
            }
        }
        if self.limits.uncached_per_minute > 0 && self.limits.uncached_burst == 0 {
            return Err(SettingsError::key("limits.uncached_burst", "must be above 0 while limits.uncached_per_minute is set (0 there turns the limit off)"));
        }
        Ok(())
    }

    /// The rule for a client certificate, if any.
    pub fn client_rule(&self, cn: &str, fingerprint: &str) -> Option<&ClientRule> {
        self.clients
            .iter()
            .find(|c| c.cn == cn && c.fingerprint.as_deref().map_or(true, |f| f.eq_ignore_ascii_case(fingerprint)))
    }
}
