//! The coordinator as a Flight node: authenticates analysts by certificate, fans a query out
//! to the agents and merges their answers.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use bytes::Bytes;
use futures::future::join_all;
use norrsken_common::catalog::{Catalog, Recipe};
use norrsken_common::error::NodeError;
use norrsken_common::flight::{schema_bytes, Answer, Caller, FlightNode};
use norrsken_common::geography;
use norrsken_common::query::{IndicatorQuery, QueryError, Relay, ValidatedQuery};
use serde_json::json;

use crate::config::{ClientRule, CoordinatorConfig, Role};
use crate::fanout::AgentClient;
use crate::merge::{comparison_schema, merge, Comparison, RegionState};

pub struct CoordinatorNode {
    pub config: CoordinatorConfig,
    pub catalog: Arc<Catalog>,
    pub agents: Vec<AgentClient>,
    pub started: std::time::Instant,
}

impl CoordinatorNode {
    pub fn new(config: CoordinatorConfig, catalog: Arc<Catalog>) -> Result<CoordinatorNode, NodeError> {
        let agents = config
            .agents
            .iter()
            .map(|a| AgentClient::new(a, &config.tls))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NodeError::NotReady(e.to_string()))?;
        Ok(CoordinatorNode { config, catalog, agents, started: std::time::Instant::now() })
    }

    /// The caller's role, from their certificate and the configured client rules.
    pub fn authenticate<'a>(&'a self, caller: &Caller) -> Result<&'a ClientRule, NodeError> {
        let id = caller.require()?;
        self.config.client_rule(&id.common_name, &id.fingerprint).ok_or_else(|| {
            tracing::warn!(client = %id.common_name, fingerprint = %id.fingerprint, addr = ?caller.addr, "refused: unknown client certificate");
            NodeError::PermissionDenied(format!("client '{}' has no role at this coordinator", id.common_name))
        })
    }

    fn require_query_role(&self, caller: &Caller) -> Result<&ClientRule, NodeError> {
        let rule = self.authenticate(caller)?;
        match rule.role {
            Role::Analyst | Role::RegionAdmin => Ok(rule),
            Role::Auditor => Err(NodeError::PermissionDenied(format!(
                "client '{}' has the auditor role, which reads audit logs but does not query",
                rule.cn
            ))),
        }
    }

    /// Which configured agents a query asks: all, or those named.
    fn select_agents(&self, names: &[String]) -> Result<Vec<&AgentClient>, QueryError> {
        if names.is_empty() {
            return Ok(self.agents.iter().collect());
        }
        let mut out: Vec<&AgentClient> = Vec::new();
        for name in names {
            let code = geography::find_region(name).map(|r| r.code.to_string()).unwrap_or_else(|| name.clone());
            let agent = self
                .agents
                .iter()
                .find(|a| a.endpoint.region == code || a.endpoint.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| QueryError::UnknownRegion {
                    region: name.chars().take(40).collect(),
                    known: self.agents.iter().map(|a| format!("{} ({})", a.endpoint.region, a.endpoint.name)).collect::<Vec<_>>().join(", "),
                })?;
            if !out.iter().any(|a| a.endpoint.region == agent.endpoint.region) {
                out.push(agent);
            }
        }
        Ok(out)
    }

    fn validate(&self, ticket: &[u8]) -> Result<ValidatedQuery, NodeError> {
        let (query, _ignored_relay) = IndicatorQuery::decode_ticket(ticket)?;
        let mut v = query.validate(&self.catalog, None)?;
        if v.query_id.is_empty() {
            v.query_id = uuid::Uuid::new_v4().to_string();
        }
        self.select_agents(&v.regions)?;
        Ok(v)
    }

    /// Runs a validated query across the agents (the domain operation behind DoGet).
    pub async fn run(&self, v: &ValidatedQuery, rule: &ClientRule, caller: &Caller) -> Result<Comparison, NodeError> {
        let agents = self.select_agents(&v.regions)?;
        let id = caller.require()?;
        let relay = Relay {
            requester_subject: id.subject.clone(),
            requester_fingerprint: id.fingerprint.clone(),
            requester_role: rule.role.name().to_string(),
            catalog_hash: self.catalog.hash().to_string(),
            traceparent: caller.traceparent.clone().unwrap_or_default(),
        };
        let mut outgoing = v.normalized();
        outgoing.query_id = v.query_id.clone();
        outgoing.regions = Vec::new();
        let ticket = Bytes::from(outgoing.encode_ticket(Some(&relay)));
        let deadline = Duration::from_millis(self.config.agent_timeout_ms);
        let outcomes = join_all(agents.iter().map(|a| a.ask(ticket.clone(), deadline, self.config.retries, caller.traceparent.as_deref()))).await;

        // A question every region rejected as malformed is the requester's error.
        let answered = outcomes.iter().any(|o| o.state == RegionState::Ok);
        if !answered {
            let invalid = tonic::Code::InvalidArgument as i32;
            let not_found = tonic::Code::NotFound as i32;
            if let Some(first) = outcomes.first() {
                if outcomes.iter().all(|o| o.grpc_code == Some(invalid) || o.grpc_code == Some(not_found)) {
                    return Err(NodeError::Query(QueryError::MalformedTicket(format!(
                        "every region rejected the query; region {} said: {}",
                        first.region, first.message
                    ))));
                }
            }
        }
        let order: Vec<(String, String)> = self.agents.iter().map(|a| (a.endpoint.region.clone(), a.endpoint.name.clone())).collect();
        Ok(merge(
            v.recipe.clone(),
            v.breakdowns.clone(),
            &outcomes,
            &order,
            &self.config.pooled_label,
            &v.query_id,
            self.catalog.hash(),
            v.options.perspective.name(),
            &v.period.to_string(),
            v.options.dry_run,
        ))
    }

    fn recipe_info(&self, recipe: &Recipe) -> Result<FlightInfo, NodeError> {
        let schema = comparison_schema(&[], recipe.is_distribution());
        Ok(FlightInfo {
            schema: schema_bytes(&schema)?,
            flight_descriptor: Some(FlightDescriptor::new_path(vec![recipe.id.clone(), recipe.version.to_string()])),
            endpoint: vec![],
            total_records: -1,
            total_bytes: -1,
            ordered: false,
            app_metadata: Bytes::from(recipe.title.en.clone()),
        })
    }

    async fn health(&self) -> serde_json::Value {
        let deadline = Duration::from_millis(self.config.agent_timeout_ms.min(5_000));
        let checks = join_all(self.agents.iter().map(|a| async move {
            let r = a.action("health", deadline).await;
            match r {
                Ok(body) => {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    json!({"region": a.endpoint.region, "name": a.endpoint.name, "status": "ok", "agent": v})
                }
                Err(e) => json!({"region": a.endpoint.region, "name": a.endpoint.name, "status": "unavailable", "message": e}),
            }
        }))
        .await;
        json!({
            "status": "serving",
            "role": "coordinator",
            "catalog_hash": self.catalog.hash(),
            "uptime_s": self.started.elapsed().as_secs(),
            "agents": checks,
        })
    }
}

#[tonic::async_trait]
impl FlightNode for CoordinatorNode {
    async fn list_flights(&self, caller: &Caller) -> Result<Vec<FlightInfo>, NodeError> {
        self.authenticate(caller)?;
        self.catalog.latest().iter().map(|r| self.recipe_info(r)).collect()
    }

    async fn flight_info(&self, caller: &Caller, descriptor: FlightDescriptor) -> Result<FlightInfo, NodeError> {
        self.require_query_role(caller)?;
        if !descriptor.cmd.is_empty() {
            let v = self.validate(&descriptor.cmd)?;
            let schema = comparison_schema(&v.breakdowns, v.recipe.is_distribution());
            return Ok(FlightInfo {
                schema: schema_bytes(&schema)?,
                flight_descriptor: Some(descriptor.clone()),
                endpoint: vec![FlightEndpoint::new().with_ticket(Ticket::new(descriptor.cmd.clone()))],
                total_records: -1,
                total_bytes: -1,
                ordered: false,
                app_metadata: Bytes::new(),
            });
        }
        let id = descriptor.path.first().cloned().unwrap_or_default();
        let recipe = self
            .catalog
            .get(&id, None)
            .ok_or_else(|| NodeError::Query(QueryError::UnknownIndicator { id: id.clone(), known: self.catalog.ids().join(", ") }))?;
        self.recipe_info(recipe)
    }

    async fn do_get(&self, caller: &Caller, ticket: &[u8]) -> Result<Answer, NodeError> {
        let rule = self.require_query_role(caller)?.clone();
        let v = self.validate(ticket)?;
        let started = std::time::Instant::now();
        let comparison = self.run(&v, &rule, caller).await?;
        tracing::info!(
            query_id = %v.query_id,
            indicator = %v.recipe.key(),
            requester = %rule.cn,
            role = rule.role.name(),
            partial = comparison.partial,
            rows = comparison.rows.len(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        let batch = comparison.to_record_batch().map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(Answer { schema: batch.schema(), batches: vec![batch] })
    }

    async fn do_action(&self, caller: &Caller, action: &str, _body: &[u8]) -> Result<Vec<Bytes>, NodeError> {
        self.authenticate(caller)?;
        let body = match action {
            "health" => self.health().await,
            "catalog" => json!({
                "catalog_hash": self.catalog.hash(),
                "recipes": self.catalog.latest().iter().map(|r| serde_json::to_value(r.as_ref()).unwrap_or_default()).collect::<Vec<_>>(),
            }),
            "regions" => json!(self.agents.iter().map(|a| json!({"region": a.endpoint.region, "name": a.endpoint.name})).collect::<Vec<_>>()),
            other => return Err(NodeError::Unsupported(format!("action '{other}'; offered: health, catalog, regions"))),
        };
        Ok(vec![Bytes::from(body.to_string())])
    }

    fn actions(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("health", "Coordinator status and every agent's health"),
            ("catalog", "The indicator catalog (latest version of every recipe) as JSON"),
            ("regions", "The configured regions"),
        ]
    }
}
