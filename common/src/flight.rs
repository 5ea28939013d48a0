//! The Arrow Flight front door, shared by agent and coordinator.
//!
//! [`FlightAdapter`] turns any [`Node`] into tonic's `FlightService`: it reads the caller's
//! verified certificate identity from the connection, decodes tickets, descriptors and
//! actions into the node's typed requests, runs them through the
//! [`envelope`](crate::service::envelope), and encodes the answers as Flight messages.
//! Errors become gRPC statuses by `NodeError::to_status` (one exhaustive mapping).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::error::NodeError;
use crate::pki::CertIdentity;
use crate::service::{envelope, Answer, Caller, Description, Node, RecipeInfo};
use crate::tls::{incoming, HandshakeFailure, PeerInfo, ReloadableTls};

/// The largest request message the transport reads. The node's own limits are far lower
/// (a ticket 16 KiB, an action body 64 KiB) and refuse, audited, anything between; a message
/// above this one is refused by the transport and audited at the edge ([`crate::edge`]).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The caller of a Flight request, from the connection's verified certificate.
pub fn caller_of<T>(req: &Request<T>) -> Caller {
    let info = req.extensions().get::<PeerInfo>().cloned();
    Caller {
        identity: info.as_ref().and_then(|i| i.identity.clone()),
        addr: info.and_then(|i| i.addr),
        traceparent: req.metadata().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string),
        deadline: req.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(grpc_timeout),
    }
}

/// Parses gRPC's `grpc-timeout` header: digits and a unit (H, M, S, m, u, n).
pub fn grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn recipe_info(r: RecipeInfo) -> Result<FlightInfo, NodeError> {
    Ok(FlightInfo {
        schema: schema_bytes(&r.schema)?,
        flight_descriptor: Some(FlightDescriptor::new_path(vec![r.id, r.version.to_string()])),
        endpoint: vec![],
        total_records: -1,
        total_bytes: -1,
        ordered: false,
        app_metadata: Bytes::from(r.title),
    })
}

fn flight_info(d: Description, asked: FlightDescriptor) -> Result<FlightInfo, NodeError> {
    let descriptor = match &d.recipe {
        Some((id, version)) => FlightDescriptor::new_path(vec![id.clone(), version.to_string()]),
        None => asked,
    };
    Ok(FlightInfo {
        schema: schema_bytes(&d.schema)?,
        flight_descriptor: Some(descriptor),
        endpoint: d.ticket.map(|t| vec![FlightEndpoint::new().with_ticket(Ticket::new(t))]).unwrap_or_default(),
        total_records: -1,
        total_bytes: -1,
        ordered: false,
        app_metadata: Bytes::from(d.title),
    })
}

/// Adapts a [`Node`] to tonic's `FlightService`.
pub struct FlightAdapter<N> {
    node: Arc<N>,
}

impl<N: Node> FlightAdapter<N> {
    pub fn new(node: Arc<N>) -> FlightAdapter<N> {
        FlightAdapter { node }
    }
}

fn unsupported(what: &str) -> Status {
    NodeError::Unsupported(format!("{what} is not offered by Norrsken")).to_status()
}

type Boxed<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Encodes an answer as a Flight data stream (the schema first, even with no rows).
pub fn encode(answer: Answer) -> BoxStream<'static, Result<FlightData, Status>> {
    let batches = stream::iter(answer.batches.into_iter().map(Ok));
    FlightDataEncoderBuilder::new()
        .with_schema(answer.schema)
        .build(batches)
        .map_err(|e| Status::internal(format!("encoding the answer: {e}")))
        .boxed()
}

/// The schema of an answer as a `SchemaResult`/`FlightInfo` payload.
pub fn schema_bytes(schema: &arrow::datatypes::Schema) -> Result<Bytes, NodeError> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let result: Result<SchemaResult, _> = SchemaAsIpc::new(schema, &options).try_into();
    result.map(|r| r.schema).map_err(|e: arrow::error::ArrowError| NodeError::Internal(e.to_string()))
}

#[tonic::async_trait]
impl<N: Node> FlightService for FlightAdapter<N> {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn handshake(&self, _r: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unsupported("Handshake (authentication is mutual TLS)"))
    }

    async fn list_flights(&self, r: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let caller = caller_of(&r);
        let infos = envelope::recipes(self.node.as_ref(), &caller).await?.into_iter().map(recipe_info).collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(stream::iter(infos.into_iter().map(Ok)).boxed()))
    }

    async fn get_flight_info(&self, r: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let caller = caller_of(&r);
        let asked = r.into_inner();
        let d = envelope::describe(self.node.as_ref(), &caller, &asked.path, &asked.cmd).await?;
        Ok(Response::new(flight_info(d, asked)?))
    }

    async fn poll_flight_info(&self, _r: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(unsupported("PollFlightInfo"))
    }

    async fn get_schema(&self, r: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let caller = caller_of(&r);
        let asked = r.into_inner();
        let d = envelope::describe(self.node.as_ref(), &caller, &asked.path, &asked.cmd).await?;
        Ok(Response::new(SchemaResult { schema: schema_bytes(&d.schema)? }))
    }

    async fn do_get(&self, r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let caller = caller_of(&r);
        let ticket = r.into_inner().ticket;
        // Runs to its end, record included, even when the caller hangs up meanwhile: what
        // was asked of the agents on its behalf is on record.
        let node = self.node.clone();
        let answer = tokio::spawn(async move { envelope::query(node.as_ref(), &caller, &ticket).await })
            .await
            .map_err(|e| NodeError::Internal(format!("the query task failed: {e}")))??;
        Ok(Response::new(encode(answer)))
    }

    async fn do_put(&self, _r: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(unsupported("DoPut (Norrsken never receives data)"))
    }

    async fn do_exchange(&self, _r: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unsupported("DoExchange"))
    }

    async fn do_action(&self, r: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let caller = caller_of(&r);
        let action = r.into_inner();
        let reply = envelope::action(self.node.as_ref(), &caller, &action.r#type, &action.body).await?;
        Ok(Response::new(stream::iter(reply.chunks.into_iter().map(|body| Ok(arrow_flight::Result { body }))).boxed()))
    }

    async fn list_actions(&self, _r: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions: Vec<Result<ActionType, Status>> = self
            .node
            .base()
            .actions
            .iter()
            .map(|(t, d)| Ok(ActionType { r#type: t.to_string(), description: d.to_string() }))
            .collect();
        Ok(Response::new(stream::iter(actions).boxed()))
    }
}

/// Records refused client certificates (the identity is known: it was presented).
pub fn audit_rejections(log: crate::audit::AuditLog) -> crate::tls::RejectHook {
    Arc::new(move |id: CertIdentity, reason: String| {
        tracing::warn!(client = %id.common_name, fingerprint = %id.fingerprint, %reason, "client certificate refused");
        let event = crate::audit::AuditEvent {
            kind: "tls_refused".into(),
            outcome: "refused".into(),
            requester: Some(crate::audit::Who::from(&id)),
            reason: Some(reason),
            ..Default::default()
        };
        let log = log.clone();
        // The verifier runs inside the handshake task; write off the async threads.
        let _ = std::thread::spawn(move || {
            if let Err(e) = log.refusal_blocking(event) {
                tracing::error!(error = %e, "could not audit a refused certificate");
            }
        });
    })
}

/// Records failed TLS handshakes (no certificate, a refused certificate, wrong CA, protocol
/// errors) with the peer's address and the certificate presented, rate-limited per
/// identity and per address.
pub fn audit_handshake_failures(log: crate::audit::AuditLog, node: &'static str) -> Arc<dyn Fn(HandshakeFailure) + Send + Sync> {
    Arc::new(move |f: HandshakeFailure| {
        let client = f.identity.as_ref().map(|i| i.common_name.as_str()).unwrap_or("");
        tracing::warn!(node, peer = %f.addr, client, reason = %f.reason, "TLS handshake refused");
        let event = crate::audit::AuditEvent {
            kind: "tls_refused".into(),
            outcome: "refused".into(),
            requester: f.identity.as_ref().map(crate::audit::Who::from),
            peer: Some(f.addr.to_string()),
            reason: Some(f.reason),
            ..Default::default()
        };
        let log = log.clone();
        let _ = std::thread::spawn(move || {
            if let Err(e) = log.refusal_blocking(event) {
                tracing::error!(error = %e, "could not audit a failed handshake");
            }
        });
    })
}

/// A running server: its address and a handle to stop it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    shutdown: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), String>>>>,
}

impl ServerHandle {
    /// Stops accepting requests, lets in-flight ones finish (up to `grace`) and waits.
    pub async fn stop(&self, grace: Duration) -> Result<(), String> {
        if let Some(tx) = self.shutdown.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        match task {
            Some(task) => match tokio::time::timeout(grace, task).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("server did not stop within {grace:?}")),
            },
            None => Ok(()),
        }
    }

    /// Stops at once, without waiting (as if the process died).
    pub fn abort(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

/// Serves a node over mutual TLS on an already bound listener.
pub fn serve<N: Node>(
    node: Arc<N>,
    listener: tokio::net::TcpListener,
    tls: ReloadableTls,
    on_handshake_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> Result<ServerHandle, String> {
    let audit = node.base().audit.clone();
    serve_flight_service(FlightAdapter::new(node), audit, listener, tls, on_handshake_failure)
}

/// Serves any Flight service (the Flight API, Flight SQL) over mutual TLS with the edge
/// audit layer and health service.
pub fn serve_flight_service<S: arrow_flight::flight_service_server::FlightService>(
    flight: S,
    audit: crate::audit::AuditLog,
    listener: tokio::net::TcpListener,
    tls: ReloadableTls,
    on_handshake_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> Result<ServerHandle, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let edge = crate::edge::EdgeAuditLayer { audit };
    let service = FlightServiceServer::new(flight).max_decoding_message_size(MAX_REQUEST_BYTES);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let conns = incoming(listener, tls, on_handshake_failure);
    let task = tokio::spawn(async move {
        health_reporter.set_serving::<FlightServiceServer<S>>().await;
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(edge)
            .add_service(health_service)
            .add_service(service)
            .serve_with_incoming_shutdown(conns, async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| e.to_string())
    });
    Ok(ServerHandle { addr, shutdown: std::sync::Mutex::new(Some(tx)), task: std::sync::Mutex::new(Some(task)) })
}
