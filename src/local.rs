//! A whole federation on one machine: one agent per region and a coordinator, each a real
//! Flight server on a loopback port with mutual TLS. Used by `norrsken demo`, the benchmark
//! and the tests.

use std::path::{Path, PathBuf};

use norrsken_agent::config::{AgentConfig, DatalagerConfig, DatalagerKind, EngineConfig};
use norrsken_agent::server::RunningAgent;
use norrsken_common::geography::{self, NORRA};
use norrsken_common::pki::{agent_dns_name, create_dev_pki, DevPkiOptions};
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

/// Agent configuration for `region` reading `datalager`, listening on `listen`.
pub fn agent_config(region: &str, datalager: &Path, certs: &Path, listen: &str) -> AgentConfig {
    AgentConfig {
        region: region.to_string(),
        listen: listen.to_string(),
        tls: tls_files(certs, &format!("agent-{region}")),
        allowed_clients: vec!["coordinator".into()],
        datalager: DatalagerConfig { kind: DatalagerKind::Parquet, path: datalager.to_path_buf() },
        catalog_dir: None,
        engine: EngineConfig::default(),
    }
}

/// Coordinator configuration for agents at the given (region, address) pairs.
pub fn coordinator_config(agents: &[(String, std::net::SocketAddr)], certs: &Path, listen: &str) -> CoordinatorConfig {
    let mut clients = vec![
        ClientRule { cn: "analyst".into(), role: Role::Analyst, region: None, fingerprint: None },
        ClientRule { cn: "auditor".into(), role: Role::Auditor, region: None, fingerprint: None },
    ];
    for (region, _) in agents {
        clients.push(ClientRule { cn: format!("region-admin-{region}"), role: Role::RegionAdmin, region: Some(region.clone()), fingerprint: None });
    }
    CoordinatorConfig {
        listen: listen.to_string(),
        tls: tls_files(certs, "coordinator"),
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
    }
}

/// A running local federation.
pub struct LocalFederation {
    pub agents: Vec<RunningAgent>,
    pub coordinator: RunningCoordinator,
    pub certs: PathBuf,
}

impl LocalFederation {
    /// Starts one agent per Norra region found under `datalager` and a coordinator.
    pub async fn start(datalager: &Path, certs: &Path, coordinator_listen: &str) -> anyhow::Result<LocalFederation> {
        let regions: Vec<String> = NORRA.iter().map(|r| r.code.to_string()).collect();
        ensure_dev_pki(certs, &regions)?;
        let mut agents = Vec::new();
        let mut endpoints = Vec::new();
        for region in NORRA {
            let config = agent_config(region.code, &datalager.join(region.slug), certs, "127.0.0.1:0");
            let running = norrsken_agent::server::start(config).await?;
            endpoints.push((region.code.to_string(), running.server.addr));
            agents.push(running);
        }
        let coordinator = norrsken_coordinator::server::start(coordinator_config(&endpoints, certs, coordinator_listen)).await?;
        Ok(LocalFederation { agents, coordinator, certs: certs.to_path_buf() })
    }

    pub fn coordinator_url(&self) -> String {
        format!("https://{}", self.coordinator.server.addr)
    }

    /// Stops the coordinator, then the agents, letting in-flight queries finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let grace = std::time::Duration::from_secs(10);
        self.coordinator.server.stop(grace).await.map_err(anyhow::Error::msg)?;
        for a in self.agents {
            a.server.stop(grace).await.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}
