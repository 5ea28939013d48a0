//! The HTTPS front door: the web app and the JSON API behind it, over the coordinator's
//! query service, on its own port (`web_listen`), with the same mutual TLS acceptor, roles
//! and audit as the Flight API. A thin layer: it decodes requests into the service's typed
//! requests through the envelope and encodes the answers; errors map to HTTP codes in one
//! exhaustive match ([`http_status`]). docs/web.md describes the pages, docs/protocol.md the API.
//!
//! - `GET /` and `GET /assets/…`: the web app (embedded in the binary, [`assets`]);
//! - `GET /api/whoami`: the caller's certificate name, fingerprint and role;
//! - `GET /api/catalog`: the catalog (the `catalog` action);
//! - `GET /api/regions`: the configured regions;
//! - `POST /api/query[?format=csv|xlsx]`: a JSON ticket (docs/protocol.md) →
//!   `{"metadata": {...}, "rows": [...]}` (a comparison, or an analysis table when the
//!   ticket asks one), or the same answer as a CSV or xlsx download;
//! - `POST /api/report[?format=pdf|xlsx]`: a regional report ([`crate::report`]) as JSON,
//!   PDF or xlsx.

pub mod assets;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use norrsken_common::error::{ErrorKind, NodeError};
use norrsken_common::query::QueryError;
use norrsken_common::service::envelope;
use norrsken_common::service::Caller;
use norrsken_common::tls::{incoming, HandshakeFailure, PeerInfo, ReloadableTls};
use serde_json::json;
use tonic::transport::server::Connected;

use crate::export;
use crate::node::CoordinatorNode;
use crate::report::{self, Ask, ReportError, ReportRequest};

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
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl From<ReportError> for NodeError {
    fn from(e: ReportError) -> NodeError {
        let invalid = |field: &'static str, e: &ReportError| NodeError::Query(QueryError::Invalid { field, message: e.to_string() });
        match e {
            ReportError::UnknownRegion { region, known } => NodeError::Query(QueryError::UnknownRegion { region, known }),
            ReportError::UnknownIndicator(id) => NodeError::Query(QueryError::UnknownIndicator { id, known: "see GET /api/catalog".into() }),
            ReportError::UnknownArea { .. } => invalid("area", &e),
            ReportError::NoIndicators | ReportError::TooManyIndicators(_) => invalid("indicators", &e),
            ReportError::OwnTable(_) => invalid("own", &e),
            ReportError::Catalog(_) => NodeError::Internal(e.to_string()),
        }
    }
}

fn error(e: NodeError) -> Response {
    let kind = e.kind();
    let mut response = (http_status(kind), axum::Json(json!({"error": e.to_string(), "kind": kind.name()}))).into_response();
    if let Some(s) = e.retry_after_s() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    response
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

/// The `format` parameter of a request's query string.
fn format_of(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("format=")).map(|f| f.to_ascii_lowercase())
}

/// A file download.
fn download(bytes: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).unwrap_or(HeaderValue::from_static("attachment"));
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn unknown_format(f: &str, known: &str) -> Response {
    error(NodeError::Query(QueryError::Invalid { field: "format", message: format!("{} is not one of {known}", norrsken_common::text::quote(f)) }))
}

async fn query(State(node): State<Web>, Extension(info): Extension<PeerInfo>, uri: Uri, body: Bytes) -> Response {
    let format = format_of(&uri);
    if let Some(f) = format.as_deref().filter(|f| !["json", "csv", "xlsx"].contains(f)) {
        return unknown_format(f, "json, csv, xlsx");
    }
    let answer = match envelope::query(&*node, &caller(&info), &body).await {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    let md = answer.schema.metadata();
    let name = format!("{}-{}", md.get("norrsken.recipe").map(|r| r.replace('@', "-v")).unwrap_or_else(|| "answer".into()), md.get("norrsken.analysis").map(String::as_str).unwrap_or("comparison"));
    match format.as_deref() {
        Some("csv") => {
            return match export::answer_csv(&answer.batches) {
                Ok(b) => download(b, "text/csv; charset=utf-8", &format!("{name}.csv")),
                Err(e) => error(NodeError::Internal(e.to_string())),
            };
        }
        Some("xlsx") => {
            return match export::answer_xlsx(&answer.schema, &answer.batches) {
                Ok(b) => download(b, XLSX, &format!("{name}.xlsx")),
                Err(e) => error(NodeError::Internal(e.to_string())),
            };
        }
        _ => {}
    }
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

/// The report's questions, asked through the envelope as the caller.
struct WebAsk<'a> {
    node: &'a CoordinatorNode,
    caller: Caller,
}

impl Ask for WebAsk<'_> {
    async fn ask(&self, q: &norrsken_common::query::IndicatorQuery) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::record_batch::RecordBatch>), String> {
        envelope::query(self.node, &self.caller, &q.encode_ticket(None)).await.map(|a| (a.schema, a.batches)).map_err(|e| e.to_string())
    }
    async fn catalog(&self) -> Result<serde_json::Value, String> {
        let reply = envelope::action(self.node, &self.caller, "catalog", b"").await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&reply.chunks.concat()).map_err(|e| e.to_string())
    }
}

async fn report_handler(State(node): State<Web>, Extension(info): Extension<PeerInfo>, uri: Uri, body: Bytes) -> Response {
    let format = format_of(&uri).unwrap_or_else(|| "json".into());
    if !["json", "pdf", "xlsx"].contains(&format.as_str()) {
        return unknown_format(&format, "json, pdf, xlsx");
    }
    let request: ReportRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(NodeError::Query(QueryError::Invalid { field: "report request", message: e.to_string() })),
    };
    let caller = caller(&info);
    // Only callers who may query get a report (the questions check again).
    if let Err(e) = node.authenticate(&caller) {
        return error(e);
    }
    let asker = WebAsk { node: &node, caller };
    let rep = match report::build(&asker, &request).await {
        Ok(r) => r,
        Err(e) => return error(e.into()),
    };
    let name = format!("rapport-{}-{}", rep.region, rep.period.replace("..", "-"));
    match format.as_str() {
        "pdf" => download(export::report_pdf::render(&rep), "application/pdf", &format!("{name}.pdf")),
        "xlsx" => match export::xlsx::report(&rep) {
            Ok(b) => download(b, XLSX, &format!("{name}.xlsx")),
            Err(e) => error(NodeError::Internal(e.to_string())),
        },
        _ => axum::Json(rep).into_response(),
    }
}

/// Who the certificate says the caller is and the role it has here (none: `role` is null
/// and `refusal` says why), so that an operator can map a new certificate by its fingerprint.
async fn whoami(State(node): State<Web>, Extension(info): Extension<PeerInfo>) -> Response {
    let caller = caller(&info);
    let id = info.identity.as_ref();
    let (role, region, refusal) = match node.authenticate(&caller) {
        Ok(rule) => (Some(rule.role), rule.region.clone(), None),
        Err(e) => (None, None, Some(e.to_string())),
    };
    axum::Json(json!({
        "cn": id.map(|i| i.common_name.clone()),
        "subject": id.map(|i| i.subject.clone()),
        "fingerprint": id.map(|i| i.fingerprint.clone()),
        "role": role,
        "region": region,
        "refusal": refusal,
    }))
    .into_response()
}

async fn page() -> Response {
    assets::respond("index.html")
}

async fn asset(Path(path): Path<String>) -> Response {
    assets::respond(&path)
}

/// Headers on every answer: no framing, no sniffing, no referrer, and scripts and data only
/// from this server (the chart library is embedded, never fetched from a CDN).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    response
}

/// The web app's and the API's routes.
pub fn router(node: Web) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{*path}", get(asset))
        .route("/api/whoami", get(whoami))
        .route("/api/catalog", get(catalog))
        .route("/api/regions", get(regions))
        .route("/api/query", post(query))
        .route("/api/report", post(report_handler))
        .with_state(node)
        .layer(axum::middleware::map_response(security_headers))
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
