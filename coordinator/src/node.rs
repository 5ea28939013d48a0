//! The coordinator's node: authenticates analysts by certificate, hands their questions to
//! the [`QueryService`], and offers health, catalog, regions and audit-log actions. Every
//! front door reaches it through [`Node`] and the shared request envelope.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use norrsken_common::audit::{AuditLog, CellCounts};
use norrsken_model::catalog::Catalog;
use norrsken_model::comparison::comparison_schema;
use norrsken_model::federated::Federated;
use norrsken_common::error::NodeError;
use norrsken_model::query::{QueryError, Relay};
use norrsken_common::service::{Action, Answer, Caller, Description, Node, NodeBase, QueryScope, QueryTicket, Reply, Served};
use serde_json::json;

use crate::agents::AgentClient;
use crate::config::{ClientRule, CoordinatorConfig, Role};
use crate::service::{AgentPort, QueryService, Requester, ServiceSettings};

pub struct CoordinatorNode {
    pub config: CoordinatorConfig,
    agents: std::sync::RwLock<Arc<Vec<AgentClient>>>,
    pub service: QueryService,
    stopping: tokio::sync::watch::Sender<bool>,
    /// Role, catalog, audit log and actions (see `Node`).
    pub base: NodeBase,
    pub started: std::time::Instant,
}

impl CoordinatorNode {
    pub fn new(config: CoordinatorConfig, catalog: Arc<Catalog>, audit: AuditLog) -> Result<CoordinatorNode, NodeError> {
        let agents = config
            .agents
            .iter()
            .map(|a| AgentClient::new(a, &config.tls))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NodeError::NotReady(e.to_string()))?;
        let settings = ServiceSettings {
            pooled_label: config.pooled_label.clone(),
            agent_timeout: Duration::from_millis(config.agent_timeout_ms),
            retries: config.retries,
            cache: config.cache.clone(),
            circuit: config.circuit.clone(),
            limits: config.limits.clone(),
            secure: if config.secure_sum.enabled {
                Some(Arc::new(crate::secure::Federation::load(&config.secure_sum).map_err(|e| NodeError::NotReady(format!("[secure_sum] policy: {e}")))?))
            } else {
                None
            },
        };
        Ok(CoordinatorNode {
            service: QueryService::new(catalog.clone(), settings),
            config,
            agents: std::sync::RwLock::new(Arc::new(agents)),
            stopping: tokio::sync::watch::Sender::new(false),
            base: NodeBase {
                role: "coordinator",
                query_span: "norrsken.coordinator.query",
                metric_labels: Vec::new(),
                actions: &[
                    ("health", "Coordinator status and every agent's health"),
                    ("catalog", "The indicator catalog (latest version of every recipe) as JSON"),
                    ("regions", "The configured regions"),
                    ("audit-log", "An audit log: {\"node\": \"coordinator\"} for auditors, {\"node\": \"agent\", \"region\": \"25\"} for that region's admins"),
                ],
                answer_schema: comparison_schema,
                catalog,
                audit,
            },
            started: std::time::Instant::now(),
        })
    }

    /// The agents (a snapshot: a certificate reload swaps in new connections).
    pub fn agents(&self) -> Arc<Vec<AgentClient>> {
        match self.agents.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn ports(&self) -> Vec<Arc<dyn AgentPort>> {
        self.agents().iter().map(|a| Arc::new(a.clone()) as Arc<dyn AgentPort>).collect()
    }

    /// (code, name) of every configured region, in display order.
    fn order(&self) -> Vec<(String, String)> {
        self.agents().iter().map(|a| (a.endpoint.region.clone(), a.endpoint.name.clone())).collect()
    }

    /// Reconnects to the agents with the certificate files as they are now on disk.
    pub fn reload_agent_connections(&self) -> Result<(), NodeError> {
        let fresh = self
            .config
            .agents
            .iter()
            .map(|a| AgentClient::new(a, &self.config.tls))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NodeError::NotReady(e.to_string()))?;
        match self.agents.write() {
            Ok(mut a) => *a = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        Ok(())
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        self.service.clear_cache();
    }

    /// The versions an agent last reported, while it is watched.
    pub fn agent_versions(&self, region: &str) -> Option<norrsken_common::cache::AgentVersions> {
        self.service.agent_versions(region)
    }

    /// Watches every agent's data and policy versions (see [`crate::watch`]).
    pub fn watch_agent_versions(self: &Arc<Self>) {
        if !self.service.cache_enabled() {
            return;
        }
        for endpoint in &self.config.agents {
            let me = self.clone();
            crate::watch::spawn(endpoint.region.clone(), self.stopping.subscribe(), move |region| me.agents().iter().find(|a| a.endpoint.region == region).cloned(), {
                let me = self.clone();
                move |region, v| me.service.set_versions(region, v)
            });
        }
    }

    /// Probes the regions whose circuit is open, every `circuit.probe_interval_ms`, until
    /// the coordinator stops.
    pub fn probe_open_circuits(self: &Arc<Self>) {
        if !self.config.circuit.enabled {
            return;
        }
        let me = self.clone();
        let mut stopping = self.stopping.subscribe();
        let every = Duration::from_millis(self.config.circuit.probe_interval_ms.max(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.changed() => break,
                }
                let ports = me.ports();
                tokio::select! {
                    _ = me.service.probe_open(&ports) => {}
                    _ = stopping.changed() => break,
                }
            }
        });
    }

    /// Ends the version watchers and the prober.
    pub fn stop_watching(&self) {
        self.stopping.send_replace(true);
    }

    /// The caller's role, from their certificate and the configured client rules.
    pub fn authenticate<'a>(&'a self, caller: &Caller) -> Result<&'a ClientRule, NodeError> {
        let id = caller.require()?;
        self.config.client_rule(&id.common_name, &id.fingerprint).ok_or_else(|| {
            tracing::warn!(client = %id.common_name, fingerprint = %id.fingerprint, addr = ?caller.addr, "refused: unknown client certificate");
            NodeError::PermissionDenied(format!("client '{}' has no role at this coordinator", id.common_name))
        })
    }

    /// The requester behind a caller whose role asks questions (analyst, region admin).
    pub fn requester(&self, caller: &Caller) -> Result<Requester, NodeError> {
        let rule = self.authenticate(caller)?;
        match rule.role {
            Role::Analyst | Role::RegionAdmin => {
                let id = caller.require()?;
                Ok(Requester { cn: rule.cn.clone(), subject: id.subject.clone(), fingerprint: id.fingerprint.clone(), role: rule.role })
            }
            Role::Auditor => Err(NodeError::PermissionDenied(format!(
                "client '{}' has the auditor role, which reads audit logs but does not query",
                rule.cn
            ))),
        }
    }

    /// The audit log an identity may read: the coordinator's (auditors) or their own
    /// region's agent's (region admins, relayed to the agent, which checks again).
    async fn fetch_audit_log(&self, caller: &Caller, node: Option<&str>, region: Option<&str>) -> Result<Vec<Bytes>, NodeError> {
        let rule = self.authenticate(caller)?.clone();
        let node = node.unwrap_or("coordinator");
        match (rule.role, node) {
            (Role::Auditor, "coordinator") => norrsken_common::audit::audit_chunks(&self.base.audit),
            (Role::RegionAdmin, "agent") => {
                let region = region.unwrap_or("").to_string();
                if rule.region.as_deref() != Some(region.as_str()) {
                    return Err(NodeError::PermissionDenied(format!(
                        "'{}' administers region {} and may not read the audit log of region '{region}'",
                        rule.cn,
                        rule.region.as_deref().unwrap_or("?")
                    )));
                }
                let agents = self.agents();
                let agent = agents
                    .iter()
                    .find(|a| a.endpoint.region == region)
                    .ok_or_else(|| NodeError::Query(QueryError::UnknownRegion { region: region.clone(), known: String::new() }))?;
                let id = caller.require()?;
                let relay = Relay {
                    requester_subject: id.subject.clone(),
                    requester_fingerprint: id.fingerprint.clone(),
                    requester_role: rule.role.name().to_string(),
                    catalog_hash: self.base.catalog.hash().to_string(),
                    traceparent: String::new(),
                    relayer_head: self.base.audit.head(),
                };
                let body = Bytes::from(serde_json::to_vec(&relay).unwrap_or_default());
                agent
                    .action_all("audit-log", body, Duration::from_millis(self.config.agent_timeout_ms))
                    .await
                    .map_err(|e| NodeError::PermissionDenied(format!("region {region}'s agent refused: {e}")))
            }
            (role, node) => Err(NodeError::PermissionDenied(format!(
                "'{}' has the {} role and may not read the {node} audit log",
                rule.cn,
                role.name()
            ))),
        }
    }

    async fn health(&self) -> serde_json::Value {
        let deadline = Duration::from_millis(self.config.agent_timeout_ms.min(5_000));
        let agents = self.agents();
        let checks = join_all(agents.iter().map(|a| async move {
            let r = a.action("health", deadline).await;
            // A health check feeds the region's circuit like a query does.
            match &r {
                Ok(_) => {
                    self.service.circuits.close(&a.endpoint.region);
                }
                Err(e) => self.service.circuits.trip(&a.endpoint.region, &format!("health check failed ({e})"), std::time::Instant::now()),
            }
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
            "catalog_hash": self.base.catalog.hash(),
            "uptime_s": self.started.elapsed().as_secs(),
            "agents": checks,
        })
    }
}

#[tonic::async_trait]
impl Node for CoordinatorNode {
    type Domain = Federated;

    /// Any identity with a role may list and describe the recipes.
    fn may_browse(&self, caller: &Caller) -> Result<(), NodeError> {
        self.authenticate(caller).map(|_| ())
    }

    fn base(&self) -> &NodeBase {
        &self.base
    }

    async fn describe_query(&self, caller: &Caller, ticket: QueryTicket, bytes: Vec<u8>) -> Result<Description, NodeError> {
        let plan = self.service.plan(ticket.query, self.requester(caller)?, &self.ports(), caller.deadline)?;
        let q = &plan.query;
        let schema = match &q.options.analysis {
            Some(spec) => norrsken_model::analysis::schema_for(spec, &q.breakdowns, q.options.standardise.is_some()),
            None => comparison_schema(&q.breakdowns, q.recipe.is_distribution()),
        };
        Ok(Description { schema, ticket: Some(bytes), recipe: None, title: String::new() })
    }

    async fn query(&self, caller: &Caller, ticket: QueryTicket, scope: &mut QueryScope) -> Result<Served<Federated>, NodeError> {
        let requester = self.requester(caller)?;
        scope.event.role = Some(requester.role.name().to_string());
        // A relay block from a client is ignored: only the coordinator relays.
        let mut plan = self.service.plan(ticket.query, requester.clone(), &self.ports(), caller.deadline)?;
        plan.relayer_head = self.base.audit.head();
        let v = &plan.query;
        let event = &mut scope.event;
        event.query_id = Some(v.query_id.clone());
        event.indicator = Some(v.recipe.id.clone());
        event.indicator_version = Some(v.recipe.version);
        event.catalog_hash = Some(self.base.catalog.hash().to_string());
        event.query = serde_json::to_value(v.normalized()).ok();
        event.regions = plan.regions();
        let (comparison, cached_from) = self.service.run(&plan, &self.order(), Some(&mut *scope)).await?;
        scope.event.cached_from = cached_from;
        tracing::info!(
            query_id = %v.query_id,
            trace_id = %scope.event.trace_id.clone().unwrap_or_default(),
            indicator = %v.recipe.key(),
            requester = %requester.cn,
            role = requester.role.name(),
            partial = comparison.meta.partial,
            cached = comparison.meta.cached,
            rows = comparison.rows.len(),
            "answered"
        );
        let mut cells = CellCounts::default();
        for r in &comparison.regions {
            cells.withheld += r.cells_withheld as u64;
            cells.perturbed += r.cells_perturbed as u64;
            cells.released += (r.cells - r.cells_withheld) as u64;
        }
        let outcome = if comparison.meta.partial { "partial" } else { "ok" };
        let domain = match &v.options.analysis {
            Some(spec) => Federated::Analysis(
                crate::analysis::analyse(spec, &comparison, &v.recipe).map_err(|e| NodeError::Query(QueryError::Invalid { field: "options.analysis", message: e.to_string() }))?,
            ),
            None => Federated::Comparison(comparison),
        };
        let batch = domain.to_record_batch().map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(Served { answer: Answer { schema: batch.schema(), batches: vec![batch] }, outcome, cells, domain })
    }

    async fn action(&self, caller: &Caller, action: Action) -> Result<Reply, NodeError> {
        if let Action::AuditLog { node, region, .. } = &action {
            let chunks = self.fetch_audit_log(caller, node.as_deref(), region.as_deref()).await?;
            let role = self.authenticate(caller).ok().map(|r| r.role.name().to_string());
            return Ok(Reply { chunks, on_behalf_of: None, role, audit: None });
        }
        self.authenticate(caller)?;
        let body = match action {
            Action::Health => self.health().await,
            Action::Catalog => json!({
                "catalog_hash": self.base.catalog.hash(),
                "recipes": self.base.catalog.latest().iter().map(|r| serde_json::to_value(r.as_ref()).unwrap_or_default()).collect::<Vec<_>>(),
            }),
            Action::Regions => json!(self.agents().iter().map(|a| json!({"region": a.endpoint.region, "name": a.endpoint.name})).collect::<Vec<_>>()),
            other => return Err(NodeError::Unsupported(format!("action '{}' at the coordinator", other.name()))),
        };
        Ok(Reply::json(body))
    }
}
