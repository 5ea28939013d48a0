//! The agents over Arrow Flight: one client per region, each call with a deadline and
//! bounded retries for transient failures. A failure is classified by the error kind the
//! agent names in its status (`norrsken-error-kind`), never by message text.

use std::time::{Duration, Instant};

use arrow_flight::{FlightClient, Ticket};
use bytes::Bytes;
use futures::TryStreamExt;
use norrsken_model::answer::RegionAnswer;
use norrsken_common::audit::Anchor;
use norrsken_common::error::ErrorKind;
use norrsken_common::tls::{client_tls, TlsFiles, TlsError};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::config::AgentEndpoint;
use crate::merge::{RegionOutcome, RegionState};
use crate::service::AgentPort;

/// A connection (lazily established) to one agent.
#[derive(Clone)]
pub struct AgentClient {
    pub endpoint: AgentEndpoint,
    channel: Channel,
}

impl AgentClient {
    pub fn new(endpoint: &AgentEndpoint, tls: &TlsFiles) -> Result<AgentClient, TlsError> {
        let tls_config = client_tls(tls, &endpoint.domain)?;
        let channel = Endpoint::from_shared(endpoint.url.clone())
            .map_err(|e| TlsError::Config(format!("agent url '{}': {e}", endpoint.url)))?
            .tls_config(tls_config)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(AgentClient { endpoint: endpoint.clone(), channel })
    }

    fn client(&self, traceparent: Option<&str>) -> FlightClient {
        let mut c = FlightClient::new(self.channel.clone());
        if let Some(tp) = traceparent {
            let _ = c.add_header("traceparent", tp);
        }
        c
    }

    async fn get_once(&self, ticket: Bytes, traceparent: Option<&str>) -> Result<(RegionAnswer, Option<Anchor>), Failure> {
        let mut client = self.client(traceparent);
        let stream = client.do_get(Ticket::new(ticket)).await.map_err(classify)?;
        let mut stream = stream;
        let mut batches = Vec::new();
        while let Some(b) = stream.try_next().await.map_err(classify)? {
            batches.push(b);
        }
        let schema = stream
            .schema()
            .cloned()
            .ok_or_else(|| Failure::new(RegionState::Error, "the agent sent no schema".to_string()))?;
        let record = Anchor::from_metadata(schema.metadata());
        let answer = RegionAnswer::from_batches(&schema, &batches).map_err(|e| Failure::new(RegionState::Error, format!("unreadable answer: {e}")))?;
        Ok((answer, record))
    }

    /// Asks the agent, retrying transient failures, within `deadline`.
    pub async fn ask_flight(&self, ticket: Bytes, deadline: Duration, retries: u32, traceparent: Option<&str>) -> RegionOutcome {
        let started = Instant::now();
        let mut attempts = 0;
        let run = async {
            loop {
                attempts += 1;
                match self.get_once(ticket.clone(), traceparent).await {
                    Ok(a) => return Ok(a),
                    Err(f) => {
                        if f.transient && attempts <= retries {
                            tokio::time::sleep(Duration::from_millis(100 * 3u64.pow(attempts - 1))).await;
                            continue;
                        }
                        return Err(f);
                    }
                }
            }
        };
        let result = tokio::time::timeout(deadline, run).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let waited_out = result.is_err();
        let (state, message, answer, error, record) = match result {
            Ok(Ok((a, record))) => (RegionState::Ok, String::new(), Some(a), None, record),
            Ok(Err(f)) => (f.state, f.message, None, f.kind, None),
            // The coordinator stopped waiting: no kind, the agent named none.
            Err(_) => (RegionState::Timeout, format!("no answer within {} ms", deadline.as_millis()), None, None, None),
        };
        RegionOutcome {
            region: self.endpoint.region.clone(),
            name: self.endpoint.name.clone(),
            state,
            message,
            answer,
            duration_ms,
            attempts,
            error,
            record,
            waited_out,
        }
    }

    /// Runs a Flight action on the agent and returns all results.
    pub async fn action_all(&self, name: &str, body: Bytes, deadline: Duration) -> Result<Vec<Bytes>, String> {
        let mut client = self.client(None);
        let run = async {
            let stream = client.do_action(arrow_flight::Action::new(name, body)).await.map_err(|e| message(e))?;
            stream.try_collect::<Vec<Bytes>>().await.map_err(message)
        };
        tokio::time::timeout(deadline, run).await.map_err(|_| format!("no answer within {} ms", deadline.as_millis()))?
    }

    /// Runs a Flight action on the agent (health, catalog) and returns the first result.
    pub async fn action(&self, name: &str, deadline: Duration) -> Result<Bytes, String> {
        let mut client = self.client(None);
        let run = async {
            let mut stream = client
                .do_action(arrow_flight::Action::new(name, Bytes::new()))
                .await
                .map_err(|e| e.to_string())?;
            stream.try_next().await.map_err(|e| e.to_string())?.ok_or_else(|| "empty answer".to_string())
        };
        tokio::time::timeout(deadline, run).await.map_err(|_| format!("no answer within {} ms", deadline.as_millis()))?
    }
}

fn message(e: arrow_flight::error::FlightError) -> String {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

/// Why one attempt failed.
struct Failure {
    state: RegionState,
    message: String,
    transient: bool,
    kind: Option<ErrorKind>,
}

impl Failure {
    fn new(state: RegionState, message: String) -> Failure {
        Failure { state, message, transient: false, kind: Some(ErrorKind::Internal) }
    }
}

/// The region state of an error kind an agent named, and whether a retry may help.
pub fn state_of(kind: ErrorKind) -> (RegionState, bool) {
    match kind {
        ErrorKind::PolicyRefused => (RegionState::PolicyRefused, false),
        ErrorKind::PermissionDenied | ErrorKind::Unauthenticated | ErrorKind::RateLimited => (RegionState::Refused, false),
        ErrorKind::Timeout => (RegionState::Timeout, false),
        ErrorKind::AuditUnavailable => (RegionState::Unavailable, true),
        ErrorKind::NotReady => (RegionState::Unavailable, false),
        ErrorKind::Invalid
        | ErrorKind::NotFound
        | ErrorKind::ResourceExhausted
        | ErrorKind::DisclosureFailed
        | ErrorKind::Unsupported
        | ErrorKind::Internal => (RegionState::Error, false),
    }
}

/// Maps a Flight error to a region state, and whether a retry may help: by the error kind
/// the agent named; a status without one did not come from the agent (the connection).
fn classify(e: arrow_flight::error::FlightError) -> Failure {
    match e {
        arrow_flight::error::FlightError::Tonic(status) => {
            let message = status.message().to_string();
            match ErrorKind::of_status(&status) {
                Some(kind) => {
                    let (state, transient) = state_of(kind);
                    Failure { state, message, transient, kind: Some(kind) }
                }
                None => {
                    let (state, transient) = match status.code() {
                        Code::DeadlineExceeded => (RegionState::Timeout, false),
                        Code::PermissionDenied | Code::Unauthenticated => (RegionState::Refused, false),
                        // No kind: the transport failed (connection refused or reset, TLS).
                        _ => (RegionState::Unavailable, true),
                    };
                    Failure { state, message, transient, kind: None }
                }
            }
        }
        other => Failure::new(RegionState::Error, other.to_string()),
    }
}

#[tonic::async_trait]
impl AgentPort for AgentClient {
    fn region(&self) -> &str {
        &self.endpoint.region
    }
    fn name(&self) -> &str {
        &self.endpoint.name
    }
    async fn ask(&self, ticket: Bytes, deadline: Duration, retries: u32, traceparent: Option<&str>) -> RegionOutcome {
        self.ask_flight(ticket, deadline, retries, traceparent).await
    }
    async fn probe(&self, deadline: Duration) -> Result<(), String> {
        self.action("health", deadline).await.map(|_| ())
    }
    async fn secure_sum(&self, body: Bytes, deadline: Duration) -> Result<Vec<u8>, String> {
        Ok(self.action_all("secure-sum", body, deadline).await?.concat())
    }
}
