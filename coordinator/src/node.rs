//! The coordinator as a Flight node: authenticates analysts by certificate, fans a query out
//! to the agents and merges their answers.

use std::collections::HashMap;
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

use norrsken_common::cache::{key as cache_key, query_key, AgentVersions, AnswerCache};
use norrsken_common::audit::{result_hash, trace_id_of, AuditEvent, AuditLog, CellCounts, RegionPart, Who};
use norrsken_common::telemetry;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use crate::config::{ClientRule, CoordinatorConfig, Role};
use crate::fanout::AgentClient;
use crate::merge::{comparison_schema, merge, Comparison, RegionState};

pub struct CoordinatorNode {
    pub config: CoordinatorConfig,
    pub catalog: Arc<Catalog>,
    agents: std::sync::RwLock<Arc<Vec<AgentClient>>>,
    /// Each agent's data and policy versions, as its `versions` long poll last reported;
    /// absent while the agent is not being watched (then nothing is served from the cache
    /// for it).
    versions: std::sync::RwLock<HashMap<String, AgentVersions>>,
    cache: AnswerCache<Comparison>,
    stopping: tokio::sync::watch::Sender<bool>,
    pub audit: AuditLog,
    pub started: std::time::Instant,
}

/// How long one `versions` long poll waits at the agent.
const VERSIONS_WAIT: Duration = Duration::from_secs(25);

fn outcome_of(e: &NodeError) -> &'static str {
    match e {
        NodeError::Query(_) => "invalid",
        NodeError::Unauthenticated(_) | NodeError::PermissionDenied(_) | NodeError::PolicyRefused(_) => "refused",
        NodeError::ResourceExhausted(_)
        | NodeError::AuditUnavailable(_)
        | NodeError::DisclosureFailed(_)
        | NodeError::NotReady(_)
        | NodeError::Unsupported(_)
        | NodeError::Internal(_)
        | NodeError::Timeout(_) => "error",
    }
}

/// A new W3C traceparent (version 00, sampled).
fn new_traceparent() -> String {
    let mut bytes = [0u8; 24];
    if rustls::crypto::ring::default_provider().secure_random.fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&t.to_be_bytes());
    }
    format!("00-{}-{}-01", hex::encode(&bytes[..16]), hex::encode(&bytes[16..]))
}

impl CoordinatorNode {
    pub fn new(config: CoordinatorConfig, catalog: Arc<Catalog>, audit: AuditLog) -> Result<CoordinatorNode, NodeError> {
        let agents = config
            .agents
            .iter()
            .map(|a| AgentClient::new(a, &config.tls))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NodeError::NotReady(e.to_string()))?;
        let cache = AnswerCache::new(&config.cache);
        Ok(CoordinatorNode {
            config,
            catalog,
            agents: std::sync::RwLock::new(Arc::new(agents)),
            versions: Default::default(),
            cache,
            stopping: tokio::sync::watch::Sender::new(false),
            audit,
            started: std::time::Instant::now(),
        })
    }

    fn set_versions(&self, region: &str, v: Option<AgentVersions>) {
        let mut map = match self.versions.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match v {
            Some(v) => map.insert(region.to_string(), v),
            None => map.remove(region),
        };
    }

    /// The versions an agent last reported, while it is watched.
    pub fn agent_versions(&self, region: &str) -> Option<AgentVersions> {
        match self.versions.read() {
            Ok(m) => m.get(region).cloned(),
            Err(poisoned) => poisoned.into_inner().get(region).cloned(),
        }
    }

    /// Watches every agent's data and policy versions with a long poll, so that a reload at
    /// an agent turns the coordinator's cached answers involving it into misses at once.
    /// Runs until `stop_watching`.
    pub fn watch_agent_versions(self: &Arc<Self>) {
        if !self.cache.enabled() {
            return;
        }
        for endpoint in &self.config.agents {
            let me = self.clone();
            let region = endpoint.region.clone();
            let mut stopping = self.stopping.subscribe();
            tokio::spawn(async move {
                let mut known: Option<AgentVersions> = None;
                let mut backoff = Duration::from_millis(200);
                loop {
                    if *stopping.borrow() {
                        break;
                    }
                    let agent = me.agents().iter().find(|a| a.endpoint.region == region).cloned();
                    let poll = async {
                        let agent = agent.ok_or_else(|| format!("region {region} is no longer configured"))?;
                        let wait = if known.is_some() { VERSIONS_WAIT } else { Duration::ZERO };
                        let body = Bytes::from(json!({"known": known, "wait_ms": wait.as_millis() as u64}).to_string());
                        let chunks = agent.action_all("versions", body, wait + Duration::from_secs(5)).await?;
                        let first = chunks.first().ok_or("an empty versions answer")?;
                        serde_json::from_slice::<AgentVersions>(first).map_err(|e| format!("versions answer: {e}"))
                    };
                    let result = tokio::select! {
                        r = poll => r,
                        _ = stopping.changed() => break,
                    };
                    match result {
                        Ok(v) => {
                            if known.as_ref() != Some(&v) {
                                tracing::debug!(region = %region, data_version = %v.data_version, policy_version = %v.policy_version, "agent versions");
                            }
                            me.set_versions(&region, Some(v.clone()));
                            known = Some(v);
                            backoff = Duration::from_millis(200);
                        }
                        Err(e) => {
                            // Unknown versions: answers involving this agent are not served from the cache.
                            me.set_versions(&region, None);
                            known = None;
                            tracing::debug!(region = %region, error = %e, "agent versions unavailable");
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = stopping.changed() => break,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                }
            });
        }
    }

    /// Ends the version watchers.
    pub fn stop_watching(&self) {
        self.stopping.send_replace(true);
    }

    /// The cache key of a question from `rule` to `agents` under the versions `of` gives, or
    /// none when an agent's versions are unknown.
    fn cache_key(&self, v: &ValidatedQuery, rule: &ClientRule, agents: &[AgentClient], of: impl Fn(&str) -> Option<AgentVersions>) -> Option<String> {
        let mut parts = vec![query_key(v), rule.role.name().to_string()];
        let mut by_name = false;
        for a in agents {
            let ver = of(&a.endpoint.region)?;
            by_name |= ver.requesters_by_name;
            parts.push(format!("{}={}/{}", a.endpoint.region, ver.data_version, ver.policy_version));
        }
        if by_name {
            parts.push(format!("cn={}", rule.cn));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Some(cache_key(&refs))
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The agents (a snapshot: a certificate reload swaps in new connections).
    pub fn agents(&self) -> Arc<Vec<AgentClient>> {
        match self.agents.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
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
    fn select_agents(&self, names: &[String]) -> Result<Vec<AgentClient>, QueryError> {
        let all = self.agents();
        if names.is_empty() {
            return Ok(all.iter().cloned().collect());
        }
        let mut out: Vec<AgentClient> = Vec::new();
        for name in names {
            let code = geography::find_region(name).map(|r| r.code.to_string()).unwrap_or_else(|| name.clone());
            let agent = all
                .iter()
                .find(|a| a.endpoint.region == code || a.endpoint.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| QueryError::UnknownRegion {
                    region: name.chars().take(40).collect(),
                    known: all.iter().map(|a| format!("{} ({})", a.endpoint.region, a.endpoint.name)).collect::<Vec<_>>().join(", "),
                })?;
            if !out.iter().any(|a| a.endpoint.region == agent.endpoint.region) {
                out.push(agent.clone());
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
    pub async fn run(&self, v: &ValidatedQuery, rule: &ClientRule, caller: &Caller, cx: &opentelemetry::Context) -> Result<Comparison, NodeError> {
        let traceparent = telemetry::traceparent_of(cx).unwrap_or_else(new_traceparent);
        let agents = self.select_agents(&v.regions)?;
        let id = caller.require()?;
        let relay = Relay {
            requester_subject: id.subject.clone(),
            requester_fingerprint: id.fingerprint.clone(),
            requester_role: rule.role.name().to_string(),
            catalog_hash: self.catalog.hash().to_string(),
            traceparent: traceparent.clone(),
        };
        let mut outgoing = v.normalized();
        outgoing.query_id = v.query_id.clone();
        outgoing.regions = Vec::new();
        outgoing.options.no_cache = v.options.no_cache;
        let ticket = Bytes::from(outgoing.encode_ticket(Some(&relay)));
        let deadline = Duration::from_millis(self.config.agent_timeout_ms);
        let outcomes = join_all(agents.iter().map(|a| {
            let ticket = ticket.clone();
            async move {
                // One child span per agent call; its context travels to the agent.
                let call = telemetry::start_span(
                    "norrsken.coordinator.agent_call",
                    SpanKind::Client,
                    cx,
                    vec![KeyValue::new("norrsken.region", a.endpoint.region.clone())],
                );
                let tp = telemetry::traceparent_of(&call);
                let outcome = a.ask(ticket, deadline, self.config.retries, tp.as_deref()).await;
                let cells = outcome.answer.as_ref().map_or(0, |r| r.cells.len() as i64);
                telemetry::end_span(
                    &call,
                    vec![
                        KeyValue::new("norrsken.outcome", outcome.state.name()),
                        KeyValue::new("norrsken.cells", cells),
                        KeyValue::new("norrsken.attempts", outcome.attempts as i64),
                    ],
                );
                outcome
            }
        }))
        .await;

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
        let order: Vec<(String, String)> = self.agents().iter().map(|a| (a.endpoint.region.clone(), a.endpoint.name.clone())).collect();
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

    /// Ends the query's span and records its metrics.
    fn observe(&self, cx: &opentelemetry::Context, event: &AuditEvent, seconds: f64, comparison: Option<&Comparison>) {
        let outcome = match comparison {
            Some(c) if c.partial => "partial",
            Some(_) => "ok",
            None => "refused",
        };
        let indicator = event.indicator.clone().unwrap_or_default();
        telemetry::end_span(
            cx,
            vec![
                KeyValue::new("norrsken.query_id", event.query_id.clone().unwrap_or_default()),
                KeyValue::new("norrsken.indicator", indicator.clone()),
                KeyValue::new("norrsken.role", event.role.clone().unwrap_or_default()),
                KeyValue::new("norrsken.regions", event.regions.join(",")),
                KeyValue::new("norrsken.outcome", outcome),
            ],
        );
        let m = telemetry::metrics();
        let labels = [KeyValue::new("node", "coordinator"), KeyValue::new("indicator", indicator.clone()), KeyValue::new("outcome", outcome)];
        m.queries.add(1, &labels);
        m.duration.record(seconds, &[KeyValue::new("node", "coordinator"), KeyValue::new("indicator", indicator)]);
        for r in comparison.map(|c| c.regions.as_slice()).unwrap_or_default() {
            if r.status != RegionState::Ok {
                m.region_failures.add(1, &[KeyValue::new("region", r.region.clone()), KeyValue::new("status", r.status.name())]);
            }
        }
    }

    async fn serve_query(&self, caller: &Caller, ticket: &[u8], cx: &opentelemetry::Context, event: &mut AuditEvent) -> Result<(Comparison, Answer), NodeError> {
        let rule = self.require_query_role(caller)?.clone();
        event.role = Some(rule.role.name().to_string());
        let v = self.validate(ticket)?;
        event.query_id = Some(v.query_id.clone());
        event.indicator = Some(v.recipe.id.clone());
        event.indicator_version = Some(v.recipe.version);
        event.catalog_hash = Some(self.catalog.hash().to_string());
        event.query = serde_json::to_value(v.normalized()).ok();
        let agents = self.select_agents(&v.regions)?;
        event.regions = agents.iter().map(|a| a.endpoint.region.clone()).collect();
        let lookup = if v.options.no_cache { None } else { self.cache_key(&v, &rule, &agents, |r| self.agent_versions(r)) };
        let hit = lookup.as_ref().and_then(|k| self.cache.get(k));
        let comparison = match hit {
            Some(hit) => {
                let mut c = (*hit).clone();
                event.cached_from = Some(std::mem::replace(&mut c.query_id, v.query_id.clone()));
                c.cached = true;
                telemetry::metrics().cache_hits.add(1, &[KeyValue::new("node", "coordinator"), KeyValue::new("indicator", v.recipe.id.clone())]);
                c
            }
            None => {
                let c = self.run(&v, &rule, caller, cx).await?;
                if !c.partial {
                    // Keyed by the versions the agents answered with.
                    let answered = |region: &str| {
                        let r = c.regions.iter().find(|r| r.region == region)?;
                        let known = self.agent_versions(region);
                        Some(AgentVersions {
                            data_version: r.data_version.clone()?,
                            policy_version: r.policy_version.clone()?,
                            requesters_by_name: known.map_or(true, |k| k.requesters_by_name),
                        })
                    };
                    if let Some(key) = self.cache_key(&v, &rule, &agents, answered) {
                        self.cache.insert(key, Arc::new(c.clone()));
                    }
                }
                c
            }
        };
        tracing::info!(
            query_id = %v.query_id,
            trace_id = %telemetry::trace_id(cx),
            indicator = %v.recipe.key(),
            requester = %rule.cn,
            role = rule.role.name(),
            partial = comparison.partial,
            cached = comparison.cached,
            rows = comparison.rows.len(),
            "answered"
        );
        let batch = comparison.to_record_batch().map_err(|e| NodeError::Internal(e.to_string()))?;
        let answer = Answer { schema: batch.schema(), batches: vec![batch] };
        Ok((comparison, answer))
    }

    /// The audit log an identity may read: the coordinator's (auditors) or their own
    /// region's agent's (region admins, relayed to the agent, which checks again).
    async fn fetch_audit_log(&self, caller: &Caller, body: &[u8]) -> Result<Vec<Bytes>, NodeError> {
        let rule = self.authenticate(caller)?.clone();
        let request: serde_json::Value = if body.is_empty() { json!({}) } else {
            serde_json::from_slice(body).map_err(|e| NodeError::Query(QueryError::MalformedTicket(format!("audit-log request: {e}"))))?
        };
        let node = request["node"].as_str().unwrap_or("coordinator");
        match (rule.role, node) {
            (Role::Auditor, "coordinator") => norrsken_common::audit::audit_chunks(&self.audit),
            (Role::RegionAdmin, "agent") => {
                let region = request["region"].as_str().unwrap_or("").to_string();
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
                    catalog_hash: self.catalog.hash().to_string(),
                    traceparent: String::new(),
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
        let agents = self.agents();
        let checks = join_all(agents.iter().map(|a| async move {
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
        let started = std::time::Instant::now();
        let parent = telemetry::context_from_traceparent(caller.traceparent.as_deref());
        let cx = telemetry::start_span("norrsken.coordinator.query", SpanKind::Server, &parent, vec![]);
        let traceparent = telemetry::traceparent_of(&cx).unwrap_or_else(new_traceparent);
        let mut event = AuditEvent {
            kind: "query".into(),
            requester: caller.identity.as_ref().map(Who::from),
            trace_id: trace_id_of(&traceparent),
            ..Default::default()
        };
        let result = self.serve_query(caller, ticket, &cx, &mut event).await;
        event.duration_ms = Some(started.elapsed().as_millis() as u64);
        self.observe(&cx, &event, started.elapsed().as_secs_f64(), result.as_ref().ok().map(|(c, _)| c));
        match &result {
            Ok((comparison, answer)) => {
                event.outcome = if comparison.partial { "partial".into() } else { "ok".into() };
                event.result_hash = Some(result_hash(&answer.schema, &answer.batches));
                event.region_outcomes = comparison
                    .regions
                    .iter()
                    .map(|r| RegionPart { region: r.region.clone(), status: r.status.name().to_string(), message: r.message.clone() })
                    .collect();
                let mut cells = CellCounts::default();
                for r in &comparison.regions {
                    cells.withheld += r.cells_withheld as u64;
                    cells.perturbed += r.cells_perturbed as u64;
                    cells.released += (r.cells - r.cells_withheld) as u64;
                }
                event.cells = Some(cells);
            }
            Err(e) => {
                event.kind = "refused".into();
                event.outcome = outcome_of(e).into();
                event.reason = Some(e.to_string());
            }
        }
        // No record, no answer.
        self.audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
        result.map(|(_, answer)| answer)
    }

    async fn do_action(&self, caller: &Caller, action: &str, body: &[u8]) -> Result<Vec<Bytes>, NodeError> {
        if action == "audit-log" {
            let result = self.fetch_audit_log(caller, body).await;
            let event = AuditEvent {
                kind: "audit_access".into(),
                outcome: if result.is_ok() { "ok".into() } else { "refused".into() },
                requester: caller.identity.as_ref().map(Who::from),
                role: self.authenticate(caller).ok().map(|r| r.role.name().to_string()),
                reason: result.as_ref().err().map(|e| e.to_string()).or_else(|| Some(String::from_utf8_lossy(body).to_string())),
                ..Default::default()
            };
            self.audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
            return result;
        }
        self.authenticate(caller)?;
        let body = match action {
            "health" => self.health().await,
            "catalog" => json!({
                "catalog_hash": self.catalog.hash(),
                "recipes": self.catalog.latest().iter().map(|r| serde_json::to_value(r.as_ref()).unwrap_or_default()).collect::<Vec<_>>(),
            }),
            "regions" => json!(self.agents().iter().map(|a| json!({"region": a.endpoint.region, "name": a.endpoint.name})).collect::<Vec<_>>()),
            other => return Err(NodeError::Unsupported(format!("action '{other}'; offered: health, catalog, regions, audit-log"))),
        };
        Ok(vec![Bytes::from(body.to_string())])
    }

    fn actions(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("health", "Coordinator status and every agent's health"),
            ("catalog", "The indicator catalog (latest version of every recipe) as JSON"),
            ("regions", "The configured regions"),
            ("audit-log", "An audit log: {\"node\": \"coordinator\"} for auditors, {\"node\": \"agent\", \"region\": \"25\"} for that region's admins"),
        ]
    }
}
