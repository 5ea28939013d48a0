//! A whole federation on one machine: one agent per region and a coordinator, each a real
//! Flight server on a loopback port with mutual TLS. Used by `norrsken demo`, the benchmark
//! and the tests.

use std::path::{Path, PathBuf};

use norrsken_agent::config::{AgentConfig, DatalagerConfig, DatalagerKind, EngineConfig};
use norrsken_agent::server::RunningAgent;
use norrsken_common::audit::AuditConfig;
use norrsken_model::geography::{self, NORRA};
use crate::pki_dev::{create_dev_pki, DevPkiOptions};
use norrsken_common::pki::agent_dns_name;
use norrsken_common::tls::TlsFiles;
use norrsken_coordinator::config::{AgentEndpoint, ClientRule, CoordinatorConfig, Role};
use norrsken_coordinator::server::RunningCoordinator;

/// TLS files of a development certificate `name` in `certs`.
pub fn tls_files(certs: &Path, name: &str) -> TlsFiles {
    TlsFiles { cert: certs.join(format!("{name}.pem")), key: certs.join(format!("{name}.key")), ca: certs.join("ca.pem"), crls: vec![] }
}

/// Creates the development PKI in `dir` unless a usable one is there.
pub fn ensure_dev_pki(dir: &Path, regions: &[String]) -> anyhow::Result<()> {
    let usable = norrsken_common::tls::load_certs(&dir.join("ca.pem"), "CA").is_ok()
        && norrsken_common::tls::load_certs(&dir.join("coordinator.pem"), "certificate").is_ok()
        && norrsken_common::tls::load_certs(&dir.join("analyst.pem"), "certificate").is_ok()
        && regions.iter().all(|r| norrsken_common::tls::load_certs(&dir.join(format!("agent-{r}.pem")), "certificate").is_ok());
    if !usable {
        create_dev_pki(&DevPkiOptions { out: dir.to_path_buf(), regions: regions.to_vec(), coordinator_names: vec![], days: 90 })?;
    }
    Ok(())
}

/// How the local agents protect their answers.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Coordinator address (port 0 picks a free one).
    pub coordinator_listen: String,
    /// Cell key perturbation on (the default policy) or off (exact counts above k).
    pub perturbation: bool,
    /// The regions' minimum cell size.
    pub min_cell_size: u32,
    /// The release ledger (its record and per-requester budget) on (the default policy) or
    /// off. Answers do not depend on it either way.
    pub ledger: bool,
    /// Pooled cells by secure sums between the agents (docs/secure-aggregation.md): every
    /// agent gets an X25519 key and its peers' public keys.
    pub secure_sum: bool,
    /// The fewest participants an agent accepts in a secure sum (default every region).
    pub secure_sum_min: Option<usize>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions { coordinator_listen: "127.0.0.1:0".into(), perturbation: true, min_cell_size: 5, ledger: true, secure_sum: false, secure_sum_min: None }
    }
}

/// Writes a development policy for `region` (every recipe approved) and, with perturbation,
/// a fresh 64-byte secret; returns the policy path.
pub fn write_dev_policy(dir: &Path, region: &str, options: &LocalOptions) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let secret_name = format!("region-{region}.key");
    let secret = dir.join(&secret_name);
    if options.perturbation && !secret.is_file() {
        let mut bytes = [0u8; 64];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("no random source for the region secret"))?;
        norrsken_common::pki::write_file(&secret, &bytes, true)?;
    }
    let text = format!(
        "# Development policy for region {region}: approves every recipe. Not for production.\n\
         version = \"dev-{region}-k{k}{p}\"\n\
         min_cell_size = {k}\n\
         max_dimensions = 3\n\
         \n\
         [[indicators]]\n\
         id = \"*\"\n\
         \n\
         [ledger]\n\
         enabled = {ledger}\n\
         \n\
         [perturbation]\n\
         enabled = {enabled}\n\
         {secret_line}",
        k = options.min_cell_size,
        p = format!("{}{}", if options.perturbation { "-ckm" } else { "" }, if options.ledger { "" } else { "-noledger" }),
        ledger = options.ledger,
        enabled = options.perturbation,
        secret_line = if options.perturbation { format!("secret_file = \"{secret_name}\"\n") } else { String::new() },
    );
    let path = dir.join(format!("policy-{region}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Secure-sum keys for `regions` under `dir/keys` (created when absent) and each agent's
/// `[secure_sum]`: its own key and the others' public keys.
pub fn secure_sum_configs(dir: &Path, regions: &[String]) -> anyhow::Result<Vec<norrsken_agent::secure::SecureSumConfig>> {
    use norrsken_common::secure_sum::SumKey;
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut public = Vec::new();
    for r in regions {
        let path = keys.join(format!("secure-sum-{r}.key"));
        let key = match SumKey::from_file(&path) {
            Ok(k) => k,
            Err(_) => {
                let k = SumKey::generate()?;
                norrsken_common::pki::write_file(&path, k.to_hex().as_bytes(), true)?;
                k
            }
        };
        public.push((r.clone(), key.public_hex(), path));
    }
    Ok(public
        .iter()
        .map(|(r, _, path)| norrsken_agent::secure::SecureSumConfig {
            key: path.clone(),
            peers: public.iter().filter(|(o, _, _)| o != r).map(|(o, p, _)| (o.clone(), p.clone())).collect(),
            min_participants: None,
            runs: None,
        })
        .collect())
}

/// Where a node of a local federation in `dir` keeps its audit log and signing key.
pub fn audit_config(dir: &Path, node: &str) -> AuditConfig {
    AuditConfig::in_dir(&dir.join("audit").join(node), &dir.join("keys").join(format!("{node}.ed25519.pem")))
}

/// Agent configuration for `region` reading `datalager`, listening on `listen`, with its
/// certificates, policy, audit log and key under `dir` (`certs/`, `policies/`, `audit/`,
/// `keys/`).
pub fn agent_config(region: &str, datalager: &Path, dir: &Path, listen: &str) -> AgentConfig {
    AgentConfig {
        region: region.to_string(),
        listen: listen.to_string(),
        tls: tls_files(&dir.join("certs"), &format!("agent-{region}")),
        allowed_clients: vec!["coordinator".into()],
        datalager: DatalagerConfig::folder(DatalagerKind::Parquet, datalager),
        policy: dir.join("policies").join(format!("policy-{region}.toml")),
        audit: audit_config(dir, &format!("agent-{region}")),
        ledger: None,
        admins: vec![format!("region-admin-{region}")],
        catalog_dir: None,
        engine: EngineConfig::default(),
        telemetry: Default::default(),
        reload_poll_s: 0,
        secure_sum: None,
    }
}

/// Coordinator configuration for agents at the given (region, address) pairs, with its
/// certificates, audit log and key under `dir`.
pub fn coordinator_config(agents: &[(String, std::net::SocketAddr)], dir: &Path, listen: &str) -> CoordinatorConfig {
    let certs = dir.join("certs");
    let mut clients = vec![
        ClientRule { cn: "analyst".into(), role: Role::Analyst, region: None, fingerprint: None },
        ClientRule { cn: "auditor".into(), role: Role::Auditor, region: None, fingerprint: None },
    ];
    for (region, _) in agents {
        clients.push(ClientRule { cn: format!("region-admin-{region}"), role: Role::RegionAdmin, region: Some(region.clone()), fingerprint: None });
    }
    // Flight SQL beside the Flight API: a free port, or the next one after a fixed one.
    let beside = |offset: u16| match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => std::net::SocketAddr::new(a.ip(), a.port() + offset).to_string(),
        Ok(a) => std::net::SocketAddr::new(a.ip(), 0).to_string(),
        Err(_) => "127.0.0.1:0".to_string(),
    };
    let sql_listen = beside(1);
    CoordinatorConfig {
        listen: listen.to_string(),
        sql_listen: Some(sql_listen),
        // HTTPS (the web app's API) two ports after the Flight port.
        web_listen: Some(beside(2)),
        tls: tls_files(&certs, "coordinator"),
        pooled_label: "Norra".into(),
        catalog_dir: None,
        agent_timeout_ms: 30_000,
        retries: 2,
        agents: agents
            .iter()
            .map(|(region, addr)| AgentEndpoint {
                region: region.clone(),
                name: geography::find_region(region).map_or_else(|| region.clone(), |r| r.name.to_string()),
                url: format!("https://{addr}"),
                domain: agent_dns_name(region),
            })
            .collect(),
        clients,
        audit: audit_config(dir, "coordinator"),
        telemetry: Default::default(),
        reload_poll_s: 0,
        cache: Default::default(),
        circuit: Default::default(),
        limits: Default::default(),
        sql: Default::default(),
        web: Default::default(),
        secure_sum: Default::default(),
    }
}

/// A running local federation.
pub struct LocalFederation {
    /// Flushes telemetry when the federation is dropped (when this process installed it).
    _telemetry: norrsken_common::telemetry::TelemetryGuard,
    pub agents: Vec<RunningAgent>,
    pub coordinator: RunningCoordinator,
    pub certs: PathBuf,
    /// Holds `certs/`, `policies/`, `audit/` and `keys/`.
    pub dir: PathBuf,
}

impl LocalFederation {
    /// Starts one agent per Norra region found under `datalager` and a coordinator; `dir`
    /// holds their certificates (`dir/certs`) and policies (`dir/policies`).
    pub async fn start(datalager: &Path, dir: &Path, options: &LocalOptions) -> anyhow::Result<LocalFederation> {
        let telemetry = norrsken_common::telemetry::init(&Default::default(), "norrsken-local")?;
        let regions: Vec<String> = NORRA.iter().map(|r| r.code.to_string()).collect();
        let certs = dir.join("certs");
        ensure_dev_pki(&certs, &regions)?;
        let mut agents = Vec::new();
        let mut endpoints = Vec::new();
        let mut secure: Vec<_> = if options.secure_sum {
            secure_sum_configs(dir, &regions)?.into_iter().map(|c| Some(norrsken_agent::secure::SecureSumConfig { min_participants: options.secure_sum_min, ..c })).collect()
        } else {
            vec![None; regions.len()]
        };
        for (i, region) in NORRA.iter().enumerate() {
            write_dev_policy(&dir.join("policies"), region.code, options)?;
            let mut config = agent_config(region.code, &datalager.join(region.slug), dir, "127.0.0.1:0");
            config.secure_sum = secure[i].take();
            let running = norrsken_agent::server::start(config).await?;
            endpoints.push((region.code.to_string(), running.server.addr));
            agents.push(running);
        }
        let mut config = coordinator_config(&endpoints, dir, &options.coordinator_listen);
        if options.secure_sum {
            // The federation's policy for pooled totals: the regions' development policy.
            config.secure_sum = norrsken_coordinator::secure::SecureSumSettings { enabled: true, policy: Some(write_dev_policy(&dir.join("policies"), "federation", options)?) };
        }
        let coordinator = norrsken_coordinator::server::start(config).await?;
        Ok(LocalFederation { _telemetry: telemetry, agents, coordinator, certs, dir: dir.to_path_buf() })
    }

    pub fn coordinator_url(&self) -> String {
        format!("https://{}", self.coordinator.server.addr)
    }

    /// The coordinator's HTTPS address (the web app's API).
    pub fn web_url(&self) -> Option<String> {
        self.coordinator.web.as_ref().map(|w| format!("https://{}", w.addr))
    }

    /// The coordinator's Flight SQL address (`grpc+tls://host:port`, as ADBC and JDBC take it).
    pub fn sql_url(&self) -> Option<String> {
        self.coordinator.sql.as_ref().map(|s| format!("grpc+tls://{}", s.addr))
    }

    /// Stops the coordinator, then the agents, letting in-flight queries finish and sealing
    /// every audit log.
    pub async fn stop(self) -> anyhow::Result<()> {
        let grace = std::time::Duration::from_secs(10);
        self.coordinator.stop(grace).await.map_err(anyhow::Error::msg)?;
        for a in self.agents {
            a.stop(grace).await.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}
