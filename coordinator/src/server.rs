//! Starting a coordinator.

use std::sync::Arc;

use norrsken_common::catalog::Catalog;
use norrsken_common::flight::{serve, ServerHandle};
use norrsken_common::tls::{server_config, HandshakeFailure, ReloadableTls};

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
    pub tls: ReloadableTls,
}

pub async fn start(config: CoordinatorConfig) -> Result<RunningCoordinator, StartError> {
    let tls = ReloadableTls::new(server_config(&config.tls)?);
    let catalog = Arc::new(Catalog::load(config.catalog_dir.as_deref()).map_err(|e| StartError::Config(e.to_string()))?);
    let listen = config.listen.clone();
    let node = Arc::new(CoordinatorNode::new(config, catalog).map_err(|e| StartError::Config(e.to_string()))?);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| StartError::Listen { addr: listen.clone(), reason: e.to_string() })?;
    let on_failure = Arc::new(|f: HandshakeFailure| {
        tracing::warn!(peer = %f.addr, reason = %f.reason, "TLS handshake refused");
    });
    let server = serve(node.clone(), listener, tls.clone(), on_failure).map_err(|reason| StartError::Listen { addr: listen, reason })?;
    tracing::info!(addr = %server.addr, agents = node.agents.len(), "coordinator serving");
    Ok(RunningCoordinator { node, server, tls })
}
