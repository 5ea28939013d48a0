//! The HTTPS front door (first step of the web app): a JSON API over the coordinator's
//! query service, on its own port (`web_listen`), with the same mutual TLS acceptor, roles
//! and audit as the Flight API. A thin layer: it decodes requests into the service's typed
//! requests through the envelope and encodes the answers; errors map to HTTP codes in one
//! exhaustive match ([`http_status`]).
//!
//! - `GET /api/catalog`: the catalog (the `catalog` action);
//! - `GET /api/regions`: the configured regions;
//! - `POST /api/query`: a JSON ticket (docs/protocol.md) → `{"metadata": {...}, "rows": [...]}`
//!   (a comparison, or an analysis table when the ticket asks one).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use norrsken_common::error::{ErrorKind, NodeError};
use norrsken_common::service::envelope;
use norrsken_common::service::Caller;
use norrsken_common::tls::{incoming, HandshakeFailure, PeerInfo, ReloadableTls};
use serde_json::json;
use tonic::transport::server::Connected;

use crate::node::CoordinatorNode;

/// The HTTP status of an error kind.
pub fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::PolicyRefused => StatusCode::FORBIDDEN,
        ErrorKind::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::DisclosureFailed => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

fn error(e: NodeError) -> Response {
    let kind = e.kind();
    (http_status(kind), axum::Json(json!({"error": e.to_string(), "kind": kind.name()}))).into_response()
}

fn caller(info: &PeerInfo) -> Caller {
    Caller { identity: info.identity.clone(), addr: info.addr, traceparent: None, deadline: None }
}

type Web = Arc<CoordinatorNode>;

async fn action(node: &CoordinatorNode, info: &PeerInfo, name: &str) -> Response {
    match envelope::action(node, &caller(info), name, b"").await {
        Ok(reply) => ([(header::CONTENT_TYPE, "application/json")], reply.chunks.concat()).into_response(),
        Err(e) => error(e),
    }
}

async fn catalog(State(node): State<Web>, Extension(info): Extension<PeerInfo>) -> Response {
    action(&node, &info, "catalog").await
}

async fn regions(State(node): State<Web>, Extension(info): Extension<PeerInfo>) -> Response {
    action(&node, &info, "regions").await
}

async fn query(State(node): State<Web>, Extension(info): Extension<PeerInfo>, body: Bytes) -> Response {
    let answer = match envelope::query(&*node, &caller(&info), &body).await {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    // The body is written once: the metadata as JSON, then the rows as Arrow's JSON writer
    // writes them.
    let metadata: serde_json::Map<String, serde_json::Value> = answer.schema.metadata().iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut body = format!("{{\"metadata\":{},\"rows\":", serde_json::Value::Object(metadata)).into_bytes();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut body);
        for b in &answer.batches {
            if let Err(e) = writer.write(b) {
                return error(NodeError::Internal(e.to_string()));
            }
        }
        if let Err(e) = writer.finish() {
            return error(NodeError::Internal(e.to_string()));
        }
    }
    if body.ends_with(b":") {
        // No batch at all: no rows.
        body.extend_from_slice(b"[]");
    }
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The API's routes.
pub fn router(node: Web) -> Router {
    Router::new().route("/api/catalog", get(catalog)).route("/api/regions", get(regions)).route("/api/query", post(query)).with_state(node)
}

/// A running HTTPS front door.
pub struct WebHandle {
    pub addr: std::net::SocketAddr,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl WebHandle {
    /// Stops accepting connections (open ones finish their requests).
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

/// Serves the API on `listener` over mutual TLS.
pub fn serve(node: Web, listener: tokio::net::TcpListener, tls: ReloadableTls, on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>) -> std::io::Result<WebHandle> {
    let addr = listener.local_addr()?;
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let router = router(node);
    let mut conns = incoming(listener, tls, on_failure);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = &mut rx => break,
                c = conns.next() => c,
            };
            match next {
                Some(Ok(conn)) => {
                    let info = conn.connect_info();
                    let service = TowerToHyperService::new(router.clone().layer(Extension(info)));
                    tokio::spawn(async move {
                        if let Err(e) = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(conn), service).await {
                            tracing::debug!(error = %e, "https connection ended");
                        }
                    });
                }
                Some(Err(_)) => continue,
                None => break,
            }
        }
    });
    Ok(WebHandle { addr, stop: std::sync::Mutex::new(Some(tx)) })
}
