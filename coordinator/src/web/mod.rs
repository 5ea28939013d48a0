//! The HTTPS front door: the web app and the JSON API behind it, over the coordinator's
//! query service, on its own port (`web_listen`), with the same mutual TLS acceptor, roles
//! and audit as the Flight API. A thin layer: it decodes requests into the service's typed
//! requests through the envelope and encodes the answers; errors map to HTTP codes in one
//! exhaustive match ([`http_status`]). docs/web.md describes the pages, docs/protocol.md the API.
//!
//! - `GET /` and `GET /assets/…`: the web app (embedded in the binary, [`assets`]);
//! - `GET /api/whoami`: the caller's certificate name, fingerprint and role;
//! - `GET /api/catalog`: the catalog (the `catalog` action);
//! - `GET /api/quality?indicator=&period=`: a recipe's data-quality profile
//!   (docs/data-quality.md);
//! - `GET /api/regions`: the configured regions;
//! - `POST /api/query[?format=csv|xlsx]`: a JSON ticket (docs/protocol.md) →
//!   `{"metadata": {...}, "rows": [...]}` (a comparison, or an analysis table when the
//!   ticket asks one), or the same answer as a CSV or xlsx download;
//! - `POST /api/report[?format=pdf|xlsx]`: a regional report ([`norrsken_present::report`]) as JSON,
//!   PDF or xlsx.
//!
//! Every refusal is on record: those of the envelope (a question, an action) there, this
//! door's own (a bad format or body, a report for a role that does not query) by
//! [`refuse`], and whatever else answers 4xx or 5xx (an unknown path, a body that does not
//! arrive) by the [`record_unrecorded`] layer. A request's headers must arrive within
//! `[web] header_timeout_s` and its body within `body_timeout_s`, or the connection is
//! closed (a body answered 408 first).

pub mod assets;

use std::sync::Arc;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use norrsken_common::audit::{AuditEvent, Who};
use norrsken_common::error::{ErrorKind, NodeError};
use norrsken_model::query::QueryError;
use norrsken_common::service::envelope;
use norrsken_common::service::Caller;
use norrsken_common::tls::{incoming, HandshakeFailure, PeerInfo, ReloadableTls};
use serde_json::json;
use tonic::transport::server::Connected;

use norrsken_present::export;
use crate::node::CoordinatorNode;
use norrsken_present::report::{self, ReportError, ReportRequest};

/// The largest request body read (a report request with the analyst's own table is a few
/// kilobytes).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

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

/// Marks a response whose refusal is on record (by the envelope or by [`refuse`]).
#[derive(Debug, Clone, Copy)]
struct Recorded;

/// The answer to an error that is on record already (the envelope recorded it).
fn error(e: NodeError) -> Response {
    let kind = e.kind();
    let mut response = (http_status(kind), axum::Json(json!({"error": e.to_string(), "kind": kind.name()}))).into_response();
    if let Some(s) = e.retry_after_s() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    response.extensions_mut().insert(Recorded);
    response
}

/// The record of a refusal at this door (rate-limited per identity and address).
fn refusal_event(info: &PeerInfo, operation: &str, outcome: &str, reason: &str) -> AuditEvent {
    AuditEvent {
        kind: "refused".into(),
        outcome: outcome.into(),
        requester: info.identity.as_ref().map(Who::from),
        peer: info.addr.map(|a| a.to_string()),
        operation: Some(norrsken_model::text::bound(&format!("https {}", operation.chars().take(200).collect::<String>()))),
        reason: Some(norrsken_model::text::bound(reason)),
        ..Default::default()
    }
}

/// Records a refusal of this door's own and answers it.
async fn refuse(node: &CoordinatorNode, info: &PeerInfo, operation: &str, e: NodeError) -> Response {
    let event = refusal_event(info, operation, e.kind().outcome(), &e.to_string());
    match node.base.audit.refusal(event).await {
        Ok(()) => error(e),
        Err(a) => error(NodeError::AuditUnavailable(a.to_string())),
    }
}

/// The caller of a request without a trace or deadline of its own (actions, whoami).
fn caller(info: &PeerInfo) -> Caller {
    Caller { identity: info.identity.clone(), addr: info.addr, traceparent: None, deadline: None }
}

/// The header in which an HTTPS client says how long it waits for a question's answer, in
/// milliseconds (the web door's counterpart of gRPC's `grpc-timeout`).
pub const DEADLINE_HEADER: &str = "norrsken-deadline-ms";

/// The caller of a question: its W3C `traceparent` continues the client's trace (the
/// agents record the same trace id), and its deadline (`norrsken-deadline-ms`) shortens
/// how long the regions are waited for, as a Flight caller's gRPC deadline does.
fn caller_of(info: &PeerInfo, headers: &HeaderMap) -> Caller {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty() && v.len() <= 128);
    Caller {
        traceparent: text("traceparent").map(str::to_string),
        deadline: text(DEADLINE_HEADER).and_then(|v| v.parse::<u64>().ok()).filter(|ms| *ms > 0).map(std::time::Duration::from_millis),
        ..caller(info)
    }
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
    query_param(uri, "format").map(|f| f.to_ascii_lowercase())
}

/// A parameter of a request's query string, decoded (`%C3%A5`, `+`).
fn query_param(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// The `lang` parameter of a request's query string (Swedish unless `en`).
fn lang_of(uri: &Uri) -> norrsken_model::vocabulary::Lang {
    query_param(uri, "lang").as_deref().and_then(norrsken_model::vocabulary::Lang::parse).unwrap_or_default()
}

/// A file download.
fn download(bytes: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).unwrap_or(HeaderValue::from_static("attachment"));
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn unknown_format(f: &str, known: &str) -> NodeError {
    NodeError::Query(QueryError::Invalid { field: "format", message: format!("{} is not one of {known}", norrsken_model::text::quote(f)) })
}

async fn query(State(node): State<Web>, Extension(info): Extension<PeerInfo>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let format = format_of(&uri);
    if let Some(f) = format.as_deref().filter(|f| !["json", "csv", "xlsx"].contains(f)) {
        return refuse(&node, &info, "POST /api/query", unknown_format(f, "json, csv, xlsx")).await;
    }
    let answer = match envelope::query(&*node, &caller_of(&info, &headers), &body).await {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    let md = answer.schema.metadata();
    let name = format!("{}-{}", md.get("norrsken.recipe").map(|r| r.replace('@', "-v")).unwrap_or_else(|| "answer".into()), md.get("norrsken.analysis").map(String::as_str).unwrap_or("comparison"));
    match format.as_deref() {
        Some("csv") => {
            return match export::answer_csv(&answer.batches) {
                Ok(b) => download(b, "text/csv; charset=utf-8", &format!("{name}.csv")),
                Err(e) => refuse(&node, &info, "POST /api/query", NodeError::Internal(e.to_string())).await,
            };
        }
        Some("xlsx") => {
            return match export::answer_xlsx(&answer.schema, &answer.batches, lang_of(&uri)) {
                Ok(b) => download(b, XLSX, &format!("{name}.xlsx")),
                Err(e) => refuse(&node, &info, "POST /api/query", NodeError::Internal(e.to_string())).await,
            };
        }
        _ => {}
    }
    // The body is written once: the metadata as JSON, then the rows as Arrow's JSON writer
    // writes them.
    let metadata: serde_json::Map<String, serde_json::Value> = answer.schema.metadata().iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut body = format!("{{\"metadata\":{},\"rows\":", serde_json::Value::Object(metadata)).into_bytes();
    let written = {
        let mut writer = arrow::json::ArrayWriter::new(&mut body);
        answer.batches.iter().try_for_each(|b| writer.write(b)).and_then(|_| writer.finish())
    };
    if let Err(e) = written {
        return refuse(&node, &info, "POST /api/query", NodeError::Internal(e.to_string())).await;
    }
    if body.ends_with(b":") {
        // No batch at all: no rows.
        body.extend_from_slice(b"[]");
    }
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn report_handler(State(node): State<Web>, Extension(info): Extension<PeerInfo>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    const OP: &str = "POST /api/report";
    let format = format_of(&uri).unwrap_or_else(|| "json".into());
    if !["json", "pdf", "xlsx"].contains(&format.as_str()) {
        return refuse(&node, &info, OP, unknown_format(&format, "json, pdf, xlsx")).await;
    }
    let request: ReportRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(&node, &info, OP, NodeError::Query(QueryError::Invalid { field: "report request", message: e.to_string() })).await,
    };
    let caller = caller_of(&info, &headers);
    // Only callers whose role asks questions get a report (the questions check again).
    if let Err(e) = node.requester(&caller) {
        return refuse(&node, &info, OP, e).await;
    }
    let asker = crate::ask::InProcess::new(node.clone(), caller);
    let rep = match report::build(&asker, &request).await {
        Ok(r) => r,
        // A question the requester may not ask: the envelope recorded its refusal.
        Err(ReportError::Refused(e)) => return error(e),
        Err(e) => return refuse(&node, &info, OP, e.into()).await,
    };
    let name = format!("rapport-{}-{}", rep.region, rep.period.replace("..", "-"));
    match format.as_str() {
        "pdf" => match export::report_pdf::render(&rep) {
            Ok(b) => download(b, "application/pdf", &format!("{name}.pdf")),
            Err(e) => refuse(&node, &info, OP, NodeError::Internal(e.to_string())).await,
        },
        "xlsx" => match export::xlsx::report(&rep) {
            Ok(b) => download(b, XLSX, &format!("{name}.xlsx")),
            Err(e) => refuse(&node, &info, OP, NodeError::Internal(e.to_string())).await,
        },
        _ => axum::Json(rep).into_response(),
    }
}

/// A recipe's data-quality profile (`?indicator=&period=`, docs/data-quality.md): the
/// profile's questions are asked as the caller, each through the envelope (recorded and
/// protected like any question).
async fn quality_handler(State(node): State<Web>, Extension(info): Extension<PeerInfo>, headers: HeaderMap, uri: Uri) -> Response {
    const OP: &str = "GET /api/quality";
    let caller = caller_of(&info, &headers);
    if let Err(e) = node.requester(&caller) {
        return refuse(&node, &info, OP, e).await;
    }
    let (Some(indicator), Some(period)) = (query_param(&uri, "indicator"), query_param(&uri, "period")) else {
        return refuse(&node, &info, OP, NodeError::Query(QueryError::Invalid { field: "quality", message: "name ?indicator= and ?period=".into() })).await;
    };
    let asker = crate::ask::InProcess::new(node.clone(), caller);
    match norrsken_present::quality::profile(&asker, &indicator, &period).await {
        Ok(p) => axum::Json(p).into_response(),
        // A question refused or failed: the envelope recorded it.
        Err(e) => error(e),
    }
}

/// A comparator file (published values: Riket, other regions) read into JSON by the one
/// parser the report uses; nothing is stored or asked. `?name=` names the file in errors.
async fn national_handler(State(node): State<Web>, Extension(info): Extension<PeerInfo>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    const OP: &str = "POST /api/national";
    if let Err(e) = node.requester(&caller_of(&info, &headers)) {
        return refuse(&node, &info, OP, e).await;
    }
    let name = query_param(&uri, "name").unwrap_or_else(|| "comparator file".into());
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(e) => return refuse(&node, &info, OP, NodeError::Query(QueryError::Invalid { field: "national", message: format!("{name} is not UTF-8 text: {e}") })).await,
    };
    match report::national::from_csv(&name, text) {
        Ok(values) => axum::Json(json!({ "values": values })).into_response(),
        Err(e) => refuse(&node, &info, OP, e.into()).await,
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

/// The words for a cell's status and reasons, Swedish and English (the one vocabulary,
/// `norrsken_model::vocabulary`).
async fn vocabulary() -> Response {
    axum::Json(norrsken_model::vocabulary::to_json()).into_response()
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

/// Reads a request's whole body within `[web] body_timeout_s` (and at most
/// [`MAX_BODY_BYTES`]) before any handler sees it: a body shorter than its Content-Length,
/// or trickled, is answered 408 and its connection closed, instead of holding a task and a
/// connection for as long as the client likes.
async fn read_body(State(node): State<Web>, request: Request, next: Next) -> Response {
    let info = request.extensions().get::<PeerInfo>().cloned().unwrap_or(PeerInfo { addr: None, identity: None });
    let operation = format!("{} {}", request.method(), request.uri().path());
    let timeout = Duration::from_secs(node.config.web.body_timeout_s);
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let (status, message) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than the {MAX_BODY_BYTES}-byte limit"))
            } else {
                (StatusCode::BAD_REQUEST, format!("the request body could not be read: {e}"))
            };
            transport_refusal(&node, &info, &operation, status, "invalid", &message).await
        }
        Err(_) => {
            let message = format!("the request body did not arrive within {} s ([web] body_timeout_s); the connection is closed", timeout.as_secs());
            transport_refusal(&node, &info, &operation, StatusCode::REQUEST_TIMEOUT, "timeout", &message).await
        }
    }
}

/// Records and answers a request refused before any handler saw it; the connection is
/// closed after the answer.
async fn transport_refusal(node: &CoordinatorNode, info: &PeerInfo, operation: &str, status: StatusCode, kind: &str, message: &str) -> Response {
    if let Err(a) = node.base.audit.refusal(refusal_event(info, operation, "invalid", message)).await {
        return error(NodeError::AuditUnavailable(a.to_string()));
    }
    let mut response = (status, axum::Json(json!({"error": message, "kind": kind}))).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response.extensions_mut().insert(Recorded);
    response
}

/// Records every answer of 400 or more that nobody recorded (an unknown path or method, a
/// rejection by the framework), so that no refusal at this door goes unrecorded.
async fn record_unrecorded(State(node): State<Web>, request: Request, next: Next) -> Response {
    let info = request.extensions().get::<PeerInfo>().cloned().unwrap_or(PeerInfo { addr: None, identity: None });
    let operation = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if status.as_u16() < 400 || response.extensions().get::<Recorded>().is_some() {
        return response;
    }
    let outcome = if status.is_client_error() { "invalid" } else { "error" };
    let reason = format!("HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    match node.base.audit.refusal(refusal_event(&info, &operation, outcome, &reason)).await {
        Ok(()) => response,
        Err(a) => error(NodeError::AuditUnavailable(a.to_string())),
    }
}

/// The web app's and the API's routes.
pub fn router(node: Web) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{*path}", get(asset))
        .route("/api/whoami", get(whoami))
        .route("/api/vocabulary", get(vocabulary))
        .route("/api/catalog", get(catalog))
        .route("/api/regions", get(regions))
        .route("/api/query", post(query))
        .route("/api/report", post(report_handler))
        .route("/api/national", post(national_handler))
        .route("/api/quality", get(quality_handler))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(node.clone(), read_body))
        .layer(axum::middleware::from_fn_with_state(node.clone(), record_unrecorded))
        .with_state(node)
        .layer(axum::middleware::map_response(security_headers))
}

/// A connection that must send its first bytes within a time: hyper's header timeout
/// starts only once a request has begun, and a connection that sends nothing at all would
/// otherwise be held open for as long as the client likes.
struct FirstBytesWithin<IO> {
    io: IO,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> FirstBytesWithin<IO> {
    fn new(io: IO, within: Duration) -> FirstBytesWithin<IO> {
        FirstBytesWithin { io, deadline: Some(Box::pin(tokio::time::sleep(within))) }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesWithin<IO> {
    fn poll_read(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        match &polled {
            std::task::Poll::Ready(Ok(())) if buf.filled().len() > before => self.deadline = None,
            std::task::Poll::Pending => {
                if let Some(deadline) = self.deadline.as_mut() {
                    if std::future::Future::poll(deadline.as_mut(), cx).is_ready() {
                        return std::task::Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no request within the header timeout")));
                    }
                }
            }
            _ => {}
        }
        polled
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstBytesWithin<IO> {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, data: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
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
    let header_timeout = Duration::from_secs(node.config.web.header_timeout_s);
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
                        let mut builder = Builder::new(TokioExecutor::new());
                        // A request's headers within the timeout, or the connection closes.
                        builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
                        let io = TokioIo::new(FirstBytesWithin::new(conn, header_timeout));
                        if let Err(e) = builder.serve_connection(io, service).await {
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
