//! Starting a coordinator.

use std::sync::Arc;

use norrsken_model::catalog::Catalog;
use norrsken_common::flight::{serve, ServerHandle};
use norrsken_common::audit::AuditLog;
use norrsken_common::flight::{audit_handshake_failures, audit_rejections};
use norrsken_common::tls::{server_config_reporting, ReloadableTls};

use crate::config::CoordinatorConfig;
use crate::node::CoordinatorNode;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] norrsken_common::tls::TlsError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}

pub struct RunningCoordinator {
    pub node: Arc<CoordinatorNode>,
    pub server: ServerHandle,
    /// The Flight SQL front door, when `sql_listen` is set.
    pub sql: Option<ServerHandle>,
    /// The HTTPS front door, when `web_listen` is set.
    pub web: Option<crate::web::WebHandle>,
    pub tls: ReloadableTls,
    reject_hook: norrsken_common::tls::RejectHook,
}

impl RunningCoordinator {
    /// Re-reads the certificate, key, CA bundle and revocation lists: for new client
    /// connections and for new connections to the agents.
    pub fn reload(&self) -> Result<String, String> {
        let config = server_config_reporting(&self.node.config.tls, Some(self.reject_hook.clone())).map_err(|e| e.to_string())?;
        self.node.reload_agent_connections().map_err(|e| e.to_string())?;
        self.tls.replace(config);
        // The CA or revocations may have changed who answers: start the cache afresh.
        self.node.clear_cache();
        tracing::info!("certificates reloaded");
        Ok("certificates".into())
    }

    /// Reloads whenever a certificate, CA or CRL file changes.
    pub fn watch(self: &Arc<Self>, every: std::time::Duration) {
        let tls = &self.node.config.tls;
        let mut files = vec![tls.cert.clone(), tls.key.clone(), tls.ca.clone()];
        files.extend(tls.crls.iter().cloned());
        let me = self.clone();
        norrsken_common::reload::watch_files(files, every, move || {
            if let Err(e) = me.reload() {
                tracing::error!(error = %e, "reload failed; the previous certificates stay in force");
            }
        });
    }

    /// Stops serving (in-flight queries finish within `grace`) and seals the audit log.
    pub async fn stop(&self, grace: std::time::Duration) -> Result<(), String> {
        self.node.stop_watching();
        if let Some(web) = &self.web {
            web.stop();
        }
        if let Some(sql) = &self.sql {
            sql.stop(grace).await?;
        }
        let served = self.server.stop(grace).await;
        self.node.base.audit.seal(true).map_err(|e| e.to_string())?;
        served
    }
}

pub async fn start(config: CoordinatorConfig) -> Result<RunningCoordinator, StartError> {
    let catalog = Arc::new(Catalog::load(config.catalog_dir.as_deref()).map_err(|e| StartError::Config(e.to_string()))?);
    let listen = config.listen.clone();
    let audit = AuditLog::open(&config.audit, "coordinator").map_err(|e| StartError::Config(e.to_string()))?;
    let reject_hook = audit_rejections(audit.clone());
    let tls = ReloadableTls::new(server_config_reporting(&config.tls, Some(reject_hook.clone()))?);
    audit.spawn_sealer(std::time::Duration::from_secs(config.audit.seal_interval_s.max(1)));
    let node = Arc::new(CoordinatorNode::new(config, catalog, audit.clone()).map_err(|e| StartError::Config(e.to_string()))?);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| StartError::Listen { addr: listen.clone(), reason: e.to_string() })?;
    let on_failure = audit_handshake_failures(audit.clone(), "coordinator");
    let server = serve(node.clone(), listener, tls.clone(), on_failure.clone()).map_err(|reason| StartError::Listen { addr: listen, reason })?;
    let sql = match node.config.sql_listen.clone() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| StartError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            let front = crate::sql::checked::CheckedSql(crate::sql::SqlFrontDoor::new(node.clone()));
            let handle = norrsken_common::flight::serve_flight_service(front, audit, listener, tls.clone(), on_failure.clone())
                .map_err(|reason| StartError::Listen { addr, reason })?;
            tracing::info!(addr = %handle.addr, "Flight SQL serving");
            Some(handle)
        }
        None => None,
    };
    let web = match node.config.web_listen.clone() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| StartError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            let handle = crate::web::serve(node.clone(), listener, tls.clone(), on_failure).map_err(|e| StartError::Listen { addr, reason: e.to_string() })?;
            tracing::info!(addr = %handle.addr, "HTTPS serving");
            Some(handle)
        }
        None => None,
    };
    node.watch_agent_versions();
    node.probe_open_circuits();
    tracing::info!(addr = %server.addr, agents = node.agents().len(), "coordinator serving");
    Ok(RunningCoordinator { node, server, sql, web, tls, reject_hook })
}
