//! A federation of real processes for the benchmark: one `norrsken-agent` per region and a
//! `norrsken-coordinator`, each started from its own configuration file on a loopback port
//! with mutual TLS, so that each one's memory can be read and nothing is shared but the
//! network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::client::Connection;
use crate::local::{agent_config, coordinator_config, ensure_dev_pki, tls_files, write_dev_policy, LocalOptions};

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Folder holding `norrsken-agent` and `norrsken-coordinator`.
    pub bin_dir: PathBuf,
    /// Working folder: `certs/`, `policies/`, `config/`, `logs/`, `audit/`, `keys/`.
    pub dir: PathBuf,
    /// One agent per (county code, datalager folder); folders may repeat.
    pub agents: Vec<(String, PathBuf)>,
    /// The regions' disclosure policy.
    pub policy: LocalOptions,
    /// The coordinator's answer cache.
    pub coordinator_cache: bool,
    /// The agents' answer caches.
    pub agent_cache: bool,
    /// Each agent's engine memory pool (MiB).
    pub memory_limit_mb: u64,
}

/// One server process.
pub struct NodeProcess {
    pub name: String,
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl NodeProcess {
    fn spawn(bin: &Path, config: &Path, log: &Path, name: &str) -> anyhow::Result<(Child, PathBuf)> {
        let err = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .env("NORRSKEN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} for {name} (build it with `cargo build --release`)", bin.display()))?;
        Ok((child, log.to_path_buf()))
    }

    /// Waits for the process's "listening on ADDR" line.
    fn wait_listening(name: &str, mut child: Child, log: PathBuf, timeout: Duration) -> anyhow::Result<NodeProcess> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let addr: SocketAddr = addr.parse().with_context(|| format!("{name} printed an unreadable address '{addr}'"))?;
                return Ok(NodeProcess { name: name.to_string(), child, addr, log });
            }
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}) before listening; its log {}:\n{}", log.display(), tail(&text, 20));
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                bail!("{name} did not listen within {:?}; its log {}:\n{}", timeout, log.display(), tail(&text, 20));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The most memory the process has held (VmHWM, bytes), from /proc.
    pub fn peak_rss(&self) -> Option<u64> {
        peak_rss_of(self.child.id())
    }

    fn terminate(mut self, grace: Duration) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} did not stop within {grace:?} of SIGTERM and was killed", self.name)
    }
}

/// VmHWM of a process in bytes (Linux).
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running federation of processes.
pub struct Cluster {
    pub agents: Vec<NodeProcess>,
    pub coordinator: NodeProcess,
    /// The analyst's connection to the coordinator.
    pub connection: Connection,
    /// Each agent's region and the coordinator's connection to it (health).
    agent_connections: Vec<(String, Connection)>,
    /// When the processes were started.
    started: Instant,
}

impl Cluster {
    pub fn start(spec: &ClusterSpec) -> anyhow::Result<Cluster> {
        let begun = Instant::now();
        let dir = &spec.dir;
        let mut regions: Vec<String> = spec.agents.iter().map(|(r, _)| r.clone()).collect();
        regions.sort();
        regions.dedup();
        if regions.len() != spec.agents.len() {
            bail!("two agents for one region in the cluster spec");
        }
        ensure_dev_pki(&dir.join("certs"), &regions)?;
        for sub in ["audit", "config", "logs"] {
            let d = dir.join(sub);
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("clearing {}", d.display()))?;
            }
            std::fs::create_dir_all(&d)?;
        }
        let agent_bin = spec.bin_dir.join("norrsken-agent");
        let mut started = Vec::new();
        for (region, data) in &spec.agents {
            write_dev_policy(&dir.join("policies"), region, &spec.policy)?;
            let mut config = agent_config(region, data, dir, "127.0.0.1:0");
            config.engine.cache.enabled = spec.agent_cache;
            config.engine.memory_limit_mb = spec.memory_limit_mb;
            let path = dir.join("config").join(format!("agent-{region}.toml"));
            std::fs::write(&path, toml::to_string(&config)?)?;
            let name = format!("agent-{region}");
            let (child, log) = NodeProcess::spawn(&agent_bin, &path, &dir.join("logs").join(format!("{name}.log")), &name)?;
            started.push((name, child, log));
        }
        let mut agents = Vec::new();
        let mut failure = None;
        for (name, child, log) in started {
            if failure.is_some() {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            match NodeProcess::wait_listening(&name, child, log, Duration::from_secs(300)) {
                Ok(p) => agents.push(p),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            stop_all(agents);
            return Err(e);
        }
        let endpoints: Vec<(String, SocketAddr)> = spec.agents.iter().zip(&agents).map(|((r, _), p)| (r.clone(), p.addr)).collect();
        let mut config = coordinator_config(&endpoints, dir, "127.0.0.1:0");
        config.cache.enabled = spec.coordinator_cache;
        // Generous: the slowest benchmark queries and the 64-client runs wait in the agents' queues.
        config.agent_timeout_ms = 600_000;
        // The benchmark is one requester asking thousands of uncached questions on purpose,
        // on a coordinator of its own: no per-requester limit.
        config.limits.uncached_per_minute = 0;
        let path = dir.join("config").join("coordinator.toml");
        std::fs::write(&path, toml::to_string(&config)?)?;
        let spawned = NodeProcess::spawn(&spec.bin_dir.join("norrsken-coordinator"), &path, &dir.join("logs").join("coordinator.log"), "coordinator")
            .and_then(|(child, log)| NodeProcess::wait_listening("coordinator", child, log, Duration::from_secs(60)));
        let coordinator = match spawned {
            Ok(c) => c,
            Err(e) => {
                stop_all(agents);
                return Err(e);
            }
        };
        let connection = Connection {
            url: format!("https://{}", coordinator.addr),
            tls: tls_files(&dir.join("certs"), "analyst"),
            server_name: norrsken_common::pki::COORDINATOR_DNS_NAME.to_string(),
        };
        let agent_connections = endpoints
            .iter()
            .map(|(region, addr)| {
                (region.clone(), Connection { url: format!("https://{addr}"), tls: tls_files(&dir.join("certs"), "coordinator"), server_name: norrsken_common::pki::agent_dns_name(region) })
            })
            .collect();
        Ok(Cluster { agents, coordinator, connection, agent_connections, started: begun })
    }

    /// Waits until every agent reports its prepared tables built (`health` → `prepare.state`
    /// = `ready`, [`norrsken_agent::engine::EngineOptions::prepare_at_load`]); returns the
    /// time from the processes' start, and each agent's own build time (ms).
    pub async fn wait_prepared(&self, timeout: Duration) -> anyhow::Result<(Duration, Vec<(String, u64)>)> {
        let deadline = Instant::now() + timeout;
        let mut builds = Vec::new();
        for (region, connection) in &self.agent_connections {
            loop {
                let body = connection.action("health").await.with_context(|| format!("health of agent {region}"))?;
                let health: serde_json::Value = serde_json::from_slice(&body).with_context(|| format!("health of agent {region}"))?;
                if health["prepare"]["state"] == "ready" {
                    builds.push((region.clone(), health["prepare"]["ms"].as_u64().unwrap_or(0)));
                    break;
                }
                if Instant::now() > deadline {
                    bail!("agent {region} has not built its prepared tables after {} s: {}", timeout.as_secs(), health["prepare"]);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok((self.started.elapsed(), builds))
    }

    /// Peak resident memory of every process: the coordinator first, then the agents.
    pub fn peak_rss(&self) -> Vec<(String, Option<u64>)> {
        std::iter::once(&self.coordinator).chain(&self.agents).map(|p| (p.name.clone(), p.peak_rss())).collect()
    }

    /// Stops the coordinator, then the agents (SIGTERM: in-flight queries finish, audit
    /// logs are sealed).
    pub fn stop(self) -> anyhow::Result<()> {
        let grace = Duration::from_secs(30);
        let mut problems = Vec::new();
        if let Err(e) = self.coordinator.terminate(grace) {
            problems.push(e.to_string());
        }
        for a in self.agents {
            if let Err(e) = a.terminate(grace) {
                problems.push(e.to_string());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(problems.join("; ")))
        }
    }
}

fn stop_all(nodes: Vec<NodeProcess>) {
    for n in nodes {
        let _ = n.terminate(Duration::from_secs(10));
    }
}
