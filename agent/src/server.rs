//! Starting an agent: open the datalager and catalog, then serve Flight over mutual TLS.

use std::sync::Arc;

use norrsken_model::catalog::Catalog;
use norrsken_common::flight::{serve, ServerHandle};
use norrsken_common::audit::AuditLog;
use norrsken_common::flight::{audit_handshake_failures, audit_rejections};
use norrsken_common::tls::{server_config_reporting, ReloadableTls};

use crate::config::AgentConfig;
use crate::engine::Engine;
use crate::node::AgentNode;
use crate::disclosure::protection::Protection;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] norrsken_common::tls::TlsError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Datalager(#[from] crate::datalager::DatalagerError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}

/// A running agent.
pub struct RunningAgent {
    pub node: Arc<AgentNode>,
    pub server: ServerHandle,
    pub tls: ReloadableTls,
    reject_hook: norrsken_common::tls::RejectHook,
}

impl RunningAgent {
    /// Re-reads the certificate, key, CA bundle, revocation lists and policy. What does not
    /// load is reported and the old version stays in force.
    pub fn reload(&self) -> Result<String, String> {
        let mut problems = Vec::new();
        let mut done = Vec::new();
        match server_config_reporting(&self.node.config.tls, Some(self.reject_hook.clone())) {
            Ok(c) => {
                self.tls.replace(c);
                done.push("certificates".to_string());
            }
            Err(e) => problems.push(e.to_string()),
        }
        match self.node.reload_policy() {
            Ok(v) => done.push(format!("policy {v}")),
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            tracing::info!(region = self.node.region.code, reloaded = %done.join(", "), "reloaded");
            Ok(done.join(", "))
        } else {
            tracing::error!(region = self.node.region.code, problems = %problems.join("; "), "reload incomplete; the previous versions stay in force");
            Err(problems.join("; "))
        }
    }

    /// Everything `reload` does, then the data: a datalager whose data version changed
    /// (new files, a new manifest, changed warehouse tables) is opened anew.
    pub async fn reload_all(&self) -> Result<String, String> {
        let mut done = self.reload();
        match self.node.reload_data().await {
            Ok(Some(version)) => {
                if let Ok(d) = &mut done {
                    d.push_str(&format!(", data {version}"));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(region = self.node.region.code, error = %e, "data reload failed; the previous data stays in force");
                done = Err(match done {
                    Ok(_) => format!("data: {e}"),
                    Err(other) => format!("{other}; data: {e}"),
                });
            }
        }
        done
    }

    /// Reloads whenever a certificate, CA, CRL or policy file changes, or (for a folder
    /// datalager) its manifest.json.
    pub fn watch(self: &Arc<Self>, every: std::time::Duration) {
        let tls = &self.node.config.tls;
        let mut files = vec![tls.cert.clone(), tls.key.clone(), tls.ca.clone(), self.node.config.policy.clone()];
        files.extend(tls.crls.iter().cloned());
        if let Some(dir) = &self.node.config.datalager.path {
            files.push(dir.join("manifest.json"));
        }
        let me = self.clone();
        norrsken_common::reload::watch_files(files, every, move || {
            let me = me.clone();
            tokio::spawn(async move {
                let _ = me.reload_all().await;
            });
        });
    }

    /// Stops serving (in-flight queries finish within `grace`) and seals the audit log.
    pub async fn stop(&self, grace: std::time::Duration) -> Result<(), String> {
        self.node.begin_stop();
        let served = self.server.stop(grace).await;
        self.node.base.audit.seal(true).map_err(|e| e.to_string())?;
        served
    }
}

/// Opens everything the agent needs; fails with a clear error before serving anything.
pub async fn build_node(config: AgentConfig) -> Result<AgentNode, StartError> {
    let catalog = Arc::new(Catalog::load(config.catalog_dir.as_deref()).map_err(|e| StartError::Config(e.to_string()))?);
    let datalager = crate::datalager::open(&config.datalager, &config.region).await?;
    let protection = Protection::load(&config.policy).map_err(|e| StartError::Config(e.to_string()))?;
    let engine = Engine::open(datalager.as_ref(), &config.region, &config.engine).await?;
    let audit = AuditLog::open(&config.audit, &format!("agent-{}", config.region)).map_err(|e| StartError::Config(e.to_string()))?;
    AgentNode::new(config, catalog, engine, protection, audit).map_err(|e| StartError::Config(e.to_string()))
}

/// Starts an agent on its configured address (port 0 picks a free port).
pub async fn start(config: AgentConfig) -> Result<RunningAgent, StartError> {
    let listen = config.listen.clone();
    let tls_files = config.tls.clone();
    let seal_every = std::time::Duration::from_secs(config.audit.seal_interval_s.max(1));
    let node = Arc::new(build_node(config).await?);
    let log = node.base.audit.clone();
    let reject_hook = audit_rejections(log.clone());
    let tls = ReloadableTls::new(server_config_reporting(&tls_files, Some(reject_hook.clone()))?);
    log.spawn_sealer(seal_every);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| StartError::Listen { addr: listen.clone(), reason: e.to_string() })?;
    let region = node.region.code;
    let on_failure = audit_handshake_failures(log, region);
    let server = serve(node.clone(), listener, tls.clone(), on_failure).map_err(|reason| StartError::Listen { addr: listen, reason })?;
    tracing::info!(region, addr = %server.addr, "agent serving");
    // Every recipe's prepared tables, built in the background while the agent serves.
    let preparing = node.clone();
    tokio::spawn(async move { preparing.prepare_in_force().await });
    Ok(RunningAgent { node, server, tls, reject_hook })
}
