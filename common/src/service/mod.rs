//! The query service a node offers, in plain domain types, and the one request envelope
//! every front door wraps around it.
//!
//! A node (agent or coordinator) implements [`Node`]: it takes typed requests (a decoded
//! query ticket, a typed action, what to describe) and returns domain values (Arrow data,
//! schemas, JSON bodies). It knows nothing of gRPC, Flight or OpenTelemetry. A front door
//! (Arrow Flight today, [`crate::flight`]) decodes its wire format into these requests and
//! calls the [`envelope`], which opens the trace span, fills and writes the audit record (no
//! record, no answer), records metrics and maps the outcome; then the front door encodes
//! the answer. A new front door is a decoder and an encoder over the same envelope.

pub mod envelope;
pub mod federation;

use std::net::SocketAddr;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use opentelemetry::KeyValue;

use crate::audit::{AuditEvent, AuditLog, CellCounts, Who};
use norrsken_model::catalog::Catalog;
use crate::cache::AgentVersions;
use crate::error::NodeError;
use crate::pki::CertIdentity;
use norrsken_model::query::{IndicatorQuery, QueryError, Relay};
use norrsken_model::text::quote;

/// The largest action body a node reads (real ones are a few hundred bytes).
pub const MAX_ACTION_BODY_BYTES: usize = 64 * 1024;

/// Who is calling, as established by mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub identity: Option<CertIdentity>,
    pub addr: Option<SocketAddr>,
    /// W3C `traceparent` the caller sent, when it sent one.
    pub traceparent: Option<String>,
    /// How long the caller waits for the answer (gRPC's `grpc-timeout`), when it said.
    pub deadline: Option<std::time::Duration>,
}

impl Caller {
    /// The caller's verified identity, or an error when there is none.
    pub fn require(&self) -> Result<&CertIdentity, NodeError> {
        self.identity
            .as_ref()
            .ok_or_else(|| NodeError::Unauthenticated("no verified client certificate on this connection".into()))
    }
}

/// A finished answer: schema (with metadata) and batches.
#[derive(Debug, Clone)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A query ticket, decoded once: the question and, towards agents, who it is relayed for.
#[derive(Debug, Clone)]
pub struct QueryTicket {
    pub query: IndicatorQuery,
    pub relay: Option<Relay>,
}

impl QueryTicket {
    /// Decodes a ticket (JSON or protobuf, see docs/protocol.md).
    pub fn decode(bytes: &[u8]) -> Result<QueryTicket, QueryError> {
        let (query, relay) = IndicatorQuery::decode_ticket(bytes)?;
        Ok(QueryTicket { query, relay })
    }
}


/// A recipe a node answers, for listing.
#[derive(Debug, Clone)]
pub struct RecipeInfo {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub schema: Schema,
}

/// The description of an answer.
#[derive(Debug, Clone)]
pub struct Description {
    pub schema: Schema,
    /// The ticket that fetches the answer, when there is one.
    pub ticket: Option<Vec<u8>>,
    /// The recipe (id, version) described, for a recipe.
    pub recipe: Option<(String, u32)>,
    pub title: String,
}

/// An action, decoded with its typed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The node's status.
    Health,
    /// The recipes this node answers.
    Catalog,
    /// The configured regions (coordinator).
    Regions,
    /// The data and policy versions (agent), after a change from `known` or `wait_ms`.
    Versions { known: Option<AgentVersions>, wait_ms: u64 },
    /// An audit log: at the coordinator the `node` (`coordinator` or `agent`) and `region`;
    /// at an agent, the relay of the requester a coordinator passes on.
    AuditLog { node: Option<String>, region: Option<String>, relay: Option<Relay> },
    /// An agent's masked vector for a secure sum (docs/secure-aggregation.md): the relayed
    /// query ticket and the run's participants (county codes).
    SecureSum { ticket: Vec<u8>, participants: Vec<String> },
}

impl Action {
    /// Decodes an action by name and body. `offered` names the actions of the node.
    pub fn decode(name: &str, body: &[u8], offered: &[&str]) -> Result<Action, NodeError> {
        let invalid = |field: &'static str, message: String| NodeError::Query(QueryError::Invalid { field, message });
        if !offered.contains(&name) {
            return Err(invalid("action type", format!("{} is not an action of this node; offered: {}", quote(name), offered.join(", "))));
        }
        if body.len() > MAX_ACTION_BODY_BYTES {
            return Err(NodeError::Query(QueryError::TooLarge { field: "action body", size: body.len(), max: MAX_ACTION_BODY_BYTES }));
        }
        let json = |what: &str| -> Result<serde_json::Value, NodeError> {
            if body.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_slice(body).map_err(|e| invalid("action body", format!("{what} request: {e}")))
        };
        match name {
            "health" => Ok(Action::Health),
            "catalog" => Ok(Action::Catalog),
            "regions" => Ok(Action::Regions),
            "versions" => {
                let v = json("versions")?;
                let known: Option<AgentVersions> = serde_json::from_value(v["known"].clone()).ok();
                Ok(Action::Versions { known, wait_ms: v["wait_ms"].as_u64().unwrap_or(0) })
            }
            "audit-log" => {
                let v = json("audit-log")?;
                let relay = serde_json::from_value::<Relay>(v.clone()).ok().filter(|r| !r.requester_subject.is_empty());
                Ok(Action::AuditLog { node: v["node"].as_str().map(str::to_string), region: v["region"].as_str().map(str::to_string), relay })
            }
            "secure-sum" => {
                use base64::Engine as _;
                let v = json("secure-sum")?;
                let ticket = v["ticket"]
                    .as_str()
                    .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                    .ok_or_else(|| invalid("action body", "a secure-sum request needs \"ticket\": the relayed query ticket in base64".into()))?;
                let participants: Vec<String> = serde_json::from_value(v["participants"].clone())
                    .map_err(|_| invalid("action body", "a secure-sum request needs \"participants\": a list of county codes".into()))?;
                Ok(Action::SecureSum { ticket, participants })
            }
            other => Err(invalid("action type", format!("{} is not an action of this node", quote(other)))),
        }
    }

    /// The name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Health => "health",
            Action::Catalog => "catalog",
            Action::Regions => "regions",
            Action::Versions { .. } => "versions",
            Action::AuditLog { .. } => "audit-log",
            Action::SecureSum { .. } => "secure-sum",
        }
    }
}

/// The result of an action.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub chunks: Vec<Bytes>,
    /// For audit-log access: who the access was for (a relayed requester), when not the caller.
    pub on_behalf_of: Option<Who>,
    pub role: Option<String>,
    /// What the audit record of an action audited when it succeeds too (a secure-sum run)
    /// says.
    pub audit: Option<ActionAudit>,
}

/// The audit record of a successful audited action: what it says, and the query, indicator
/// and regions it concerns (for review by query id).
#[derive(Debug, Clone, Default)]
pub struct ActionAudit {
    pub what: String,
    pub query_id: Option<String>,
    pub indicator: Option<String>,
    pub regions: Vec<String>,
}

impl Reply {
    pub fn json(value: serde_json::Value) -> Reply {
        Reply { chunks: vec![Bytes::from(value.to_string())], ..Default::default() }
    }
}

/// What a query produced, for the envelope to record: the Arrow answer (what the audit
/// record's hash covers and the wire carries) and the node's domain value of the same
/// answer (for the doors inside its process).
#[derive(Debug, Clone)]
pub struct Served<D = ()> {
    pub answer: Answer,
    /// `ok` or `partial`.
    pub outcome: &'static str,
    pub cells: CellCounts,
    pub domain: D,
}

/// An answer through the envelope's typed entry: the Arrow answer (with the anchor of its
/// audit record in the metadata) and the same answer as the node's domain value.
#[derive(Debug, Clone)]
pub struct Asked<D> {
    pub answer: Answer,
    pub domain: D,
}

/// One query in progress: the audit record it fills and its trace.
pub struct QueryScope {
    pub event: AuditEvent,
    cx: opentelemetry::Context,
}

impl QueryScope {
    /// The W3C traceparent of this query's span (for the calls it makes).
    pub fn traceparent(&self) -> Option<String> {
        crate::telemetry::traceparent_of(&self.cx)
    }

    /// Starts a child span for a call this query makes (a region asked).
    pub fn child(&self, name: &'static str, attributes: &[(&'static str, String)]) -> ChildSpan {
        let attrs = attributes.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect();
        ChildSpan { cx: crate::telemetry::start_span(name, opentelemetry::trace::SpanKind::Client, &self.cx, attrs) }
    }
}

/// A span of a call made while answering.
pub struct ChildSpan {
    cx: opentelemetry::Context,
}

impl ChildSpan {
    pub fn traceparent(&self) -> Option<String> {
        crate::telemetry::traceparent_of(&self.cx)
    }

    pub fn end(self, attributes: &[(&'static str, String)]) {
        crate::telemetry::end_span(&self.cx, attributes.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect());
    }
}

/// What every node has: its role, its catalog, its audit log, its actions.
pub struct NodeBase {
    /// `agent` or `coordinator`: names spans, metrics and audit records.
    pub role: &'static str,
    /// The name of a query's span.
    pub query_span: &'static str,
    /// Labels every metric of the node carries besides `node` (an agent's region).
    pub metric_labels: Vec<KeyValue>,
    /// The actions offered: (name, description).
    pub actions: &'static [(&'static str, &'static str)],
    /// The catalog the node answers from.
    pub catalog: std::sync::Arc<Catalog>,
    /// The schema (without metadata) of the node's answers for breakdowns, and whether the
    /// recipe is a distribution.
    pub answer_schema: fn(&[norrsken_model::breakdown::Breakdown], bool) -> Schema,
    /// The node's audit log.
    pub audit: AuditLog,
}

/// A Norrsken node: the operations every front door reaches, in domain types.
#[tonic::async_trait]
pub trait Node: Send + Sync + 'static {
    /// The node's answer to a query as a domain value (the coordinator's `Federated`;
    /// `()` where only the Arrow answer is used).
    type Domain: Send + 'static;
    /// Role, catalog, audit log and actions.
    fn base(&self) -> &NodeBase;
    /// Checks that the caller may list and describe the recipes.
    fn may_browse(&self, caller: &Caller) -> Result<(), NodeError>;

    /// Describes the answer a query ticket would give.
    async fn describe_query(&self, caller: &Caller, ticket: QueryTicket, bytes: Vec<u8>) -> Result<Description, NodeError>;
    /// Answers a query, filling in the audit record as it learns things.
    async fn query(&self, caller: &Caller, ticket: QueryTicket, scope: &mut QueryScope) -> Result<Served<Self::Domain>, NodeError>;
    async fn action(&self, caller: &Caller, action: Action) -> Result<Reply, NodeError>;
}
