//! The agent as a Flight node: authorises the caller, validates the query against the
//! catalog, evaluates it and releases only what passes the region's disclosure control.

use std::sync::{Arc, RwLock};

use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use bytes::Bytes;
use norrsken_common::answer::{agent_answer_schema, AnswerMeta, RegionAnswer};
use norrsken_common::catalog::Catalog;
use norrsken_common::error::NodeError;
use norrsken_common::flight::{schema_bytes, Answer, Caller, FlightNode};
use norrsken_common::geography::{self, Region};
use norrsken_common::pki::CertIdentity;
use norrsken_common::query::{IndicatorQuery, Relay, ValidatedQuery};
use serde_json::json;

use norrsken_common::audit::{audit_chunks, result_hash, trace_id_of, AuditEvent, AuditLog, CellCounts, Who};
use norrsken_common::answer::CellStatus;
use norrsken_common::telemetry;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use crate::config::AgentConfig;

fn counts(answer: &RegionAnswer) -> CellCounts {
    let mut c = CellCounts::default();
    for cell in &answer.cells {
        match cell.status {
            CellStatus::Suppressed => c.withheld += 1,
            CellStatus::Perturbed => {
                c.released += 1;
                c.perturbed += 1
            }
            CellStatus::Released => c.released += 1,
        }
    }
    c
}
use crate::disclosure::canonical::Canonical;
use crate::disclosure::ledger::{Entry, Ledger, Release};
use crate::disclosure::{protect, LedgerView, Protected, Settings};
use norrsken_common::cache::{key as cache_key, query_key, AgentVersions, AnswerCache, Weighed};
use crate::engine::{Engine, EngineError};
use crate::disclosure::protection::Protection;

pub struct AgentNode {
    pub region: &'static Region,
    pub config: AgentConfig,
    pub catalog: Arc<Catalog>,
    engine: RwLock<Arc<Engine>>,
    protection: RwLock<Arc<Protection>>,
    /// Answers to repeated questions (in canonical form, with what the ledger records of
    /// them), keyed by query, data version, policy version and k.
    cache: AnswerCache<CachedAnswer>,
    /// What this agent released to whom (see docs/disclosure-control.md).
    ledger: Ledger,
    /// The data and policy versions in force; a coordinator waits on changes (`versions`).
    versions: tokio::sync::watch::Sender<AgentVersions>,
    /// Set when the agent stops: long polls return at once so that shutdown is not held up.
    stopping: tokio::sync::watch::Sender<bool>,
    pub audit: AuditLog,
    pub started: std::time::Instant,
}

/// A protected answer kept for repeated questions.
#[derive(Clone)]
struct CachedAnswer {
    answer: RegionAnswer,
    release: Release,
}

impl Weighed for CachedAnswer {
    fn weight(&self) -> u32 {
        self.answer.weight().saturating_add((self.release.cells.len() as u32).saturating_mul(100))
    }
}

/// The name the ledger and its budget know a relayed requester by.
fn requester_of(relay: &Relay) -> String {
    if relay.requester_fingerprint.is_empty() {
        relay.requester_subject.clone()
    } else {
        format!("{} ({})", relay.requester_subject, relay.requester_fingerprint)
    }
}

/// The longest a `versions` request waits for a change.
const VERSIONS_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// How a failed request is recorded.
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

/// The requester a coordinator relayed.
fn relayed_requester(relay: &Relay) -> Who {
    Who {
        cn: crate::disclosure::policy::common_name(&relay.requester_subject).to_string(),
        subject: relay.requester_subject.clone(),
        fingerprint: relay.requester_fingerprint.clone(),
    }
}

impl From<EngineError> for NodeError {
    fn from(e: EngineError) -> NodeError {
        match e {
            EngineError::ResourcesExhausted { .. } => NodeError::ResourceExhausted(e.to_string()),
            EngineError::Datalager(_) => NodeError::NotReady(e.to_string()),
            EngineError::Busy { .. } => NodeError::ResourceExhausted(e.to_string()),
            EngineError::Evaluation { .. } | EngineError::RecipeOutput { .. } => NodeError::Internal(e.to_string()),
        }
    }
}

impl AgentNode {
    pub fn new(config: AgentConfig, catalog: Arc<Catalog>, engine: Engine, protection: Protection, audit: AuditLog) -> Result<AgentNode, NodeError> {
        let region = geography::find_region(&config.region)
            .ok_or_else(|| NodeError::NotReady(format!("unknown region '{}'", config.region)))?;
        let versions = AgentVersions {
            data_version: engine.data_version().to_string(),
            policy_version: protection.policy.version.clone(),
            requesters_by_name: !protection.policy.requesters.names.iter().any(|n| n == "*"),
        };
        let cache = AnswerCache::new(&config.engine.cache);
        let ledger = Ledger::open(&config.ledger_path(), &catalog, config.audit.fsync).map_err(|e| NodeError::NotReady(e.to_string()))?;
        Ok(AgentNode {
            region,
            config,
            catalog,
            engine: RwLock::new(Arc::new(engine)),
            protection: RwLock::new(Arc::new(protection)),
            cache,
            ledger,
            versions: tokio::sync::watch::Sender::new(versions),
            stopping: tokio::sync::watch::Sender::new(false),
            audit,
            started: std::time::Instant::now(),
        })
    }

    /// The engine over the data in force (a data reload swaps in a new one).
    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The data and policy versions in force.
    pub fn versions(&self) -> AgentVersions {
        self.versions.borrow().clone()
    }

    fn publish_versions(&self) {
        let protection = self.protection();
        let fresh = AgentVersions {
            data_version: self.engine().data_version().to_string(),
            policy_version: protection.policy.version.clone(),
            requesters_by_name: !protection.policy.requesters.names.iter().any(|n| n == "*"),
        };
        self.versions.send_if_modified(|v| {
            let changed = *v != fresh;
            *v = fresh;
            changed
        });
    }

    /// Re-opens the datalager; when its data version changed, later queries use the new
    /// data (queries running finish on the old). Returns the new version, if any.
    pub async fn reload_data(&self) -> Result<Option<String>, String> {
        let datalager = crate::datalager::open(&self.config.datalager, &self.config.region).await.map_err(|e| e.to_string())?;
        if datalager.data_version() == self.engine().data_version() {
            return Ok(None);
        }
        let engine = Engine::open(datalager.as_ref(), &self.config.region, &self.config.engine).await.map_err(|e| e.to_string())?;
        let version = engine.data_version().to_string();
        match self.engine.write() {
            Ok(mut e) => *e = Arc::new(engine),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(engine),
        }
        self.cache.clear();
        self.publish_versions();
        tracing::info!(region = self.region.code, data_version = %version, "data reloaded");
        Ok(Some(version))
    }

    /// Waits until the versions differ from `known` or `wait` passes, then returns them.
    pub async fn versions_after(&self, known: Option<&AgentVersions>, wait: std::time::Duration) -> AgentVersions {
        let mut rx = self.versions.subscribe();
        let mut stopping = self.stopping.subscribe();
        let differs = |v: &AgentVersions| known != Some(v);
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(differs)) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
        let current = rx.borrow().clone();
        current
    }

    /// Ends waiting long polls (the agent is stopping).
    pub fn begin_stop(&self) {
        self.stopping.send_replace(true);
    }

    /// The policy in force.
    pub fn protection(&self) -> Arc<Protection> {
        match self.protection.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the policy file. A policy that does not load leaves the old one in force.
    pub fn reload_policy(&self) -> Result<String, String> {
        let fresh = Protection::load(&self.config.policy).map_err(|e| e.to_string())?;
        let version = fresh.policy.version.clone();
        match self.protection.write() {
            Ok(mut p) => *p = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        self.publish_versions();
        tracing::info!(region = self.region.code, policy_version = %version, "policy reloaded");
        Ok(version)
    }

    /// Only the identities in `allowed_clients` may ask.
    fn authorize<'a>(&self, caller: &'a Caller) -> Result<&'a CertIdentity, NodeError> {
        let id = caller.require()?;
        if self.config.allowed_clients.iter().any(|c| c == &id.common_name) {
            Ok(id)
        } else {
            tracing::warn!(
                client = %id.common_name,
                fingerprint = %id.fingerprint,
                addr = ?caller.addr,
                "refused: client certificate not in allowed_clients"
            );
            Err(NodeError::PermissionDenied(format!(
                "client '{}' is not allowed to query the agent of region {}",
                id.common_name, self.region.code
            )))
        }
    }

    fn meta(&self, v: &ValidatedQuery, engine: &Engine, policy_version: &str, k: u32) -> AnswerMeta {
        AnswerMeta {
            query_id: v.query_id.clone(),
            region: self.region.code.to_string(),
            data_version: engine.data_version().to_string(),
            policy_version: policy_version.to_string(),
            recipe: v.recipe.key(),
            recipe_hash: v.recipe.hash.clone(),
            catalog_hash: self.catalog.hash().to_string(),
            kind: v.recipe.kind.name().to_string(),
            perspective: v.options.perspective.name().to_string(),
            period: v.period.to_string(),
            min_cell_size: k,
            dry_run: v.options.dry_run,
        }
    }

    /// The release ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Answers one query (the domain operation behind DoGet): only a question relayed by a
    /// coordinator naming its requester is answered; it is brought to its canonical form, the
    /// region's policy admits it, the engine evaluates it, disclosure control decides what is
    /// released, reading and then extending the release ledger. A question asked before
    /// under the same data and policy is answered from the cache (the answer would be the
    /// same: even the noise is deterministic), and recorded in the ledger again for this
    /// requester; then the query id it was first computed for comes along.
    pub async fn answer(&self, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<(RegionAnswer, Option<String>), NodeError> {
        let relay = relay.ok_or_else(|| {
            NodeError::PermissionDenied(format!(
                "region {} answers only questions relayed by a coordinator that name their requester (a protobuf ticket with a relay block)",
                self.region.code
            ))
        })?;
        let canonical = Canonical::of(v);
        let cq = &canonical.query;
        // One snapshot of policy and data for the whole request.
        let protection = self.protection();
        let policy = &protection.policy;
        let admission = policy.admit(cq, Some(relay)).map_err(NodeError::PolicyRefused)?;
        let engine = self.engine();
        let data_version = engine.data_version().to_string();
        let requester = requester_of(relay);
        let key = cache_key(&[&data_version, &policy.version, &admission.k.to_string(), &query_key(cq)]);
        if !v.options.no_cache {
            if let Some(hit) = self.cache.get(&key) {
                if policy.ledger.enabled {
                    let mut guard = self.ledger.lock();
                    self.record(&mut guard, policy, &requester, v, cq, &data_version, &hit.release)?;
                }
                let mut answer = hit.answer.clone();
                answer.cells = canonical.restore(answer.cells);
                answer.breakdowns = canonical.asked_breakdowns();
                let first = std::mem::replace(&mut answer.meta.query_id, v.query_id.clone());
                return Ok((answer, Some(first)));
            }
        }
        let table = engine.evaluate(cq).await?;
        let settings = Settings { policy, admission, ptable: protection.ptable.as_ref(), keyer: protection.keyer.as_deref() };
        let failed = |e: crate::disclosure::DisclosureError| NodeError::DisclosureFailed(e.to_string());
        let protected: Protected = if policy.ledger.enabled {
            let mut guard = self.ledger.lock();
            let protected = {
                let view = LedgerView { guard: &guard, data_version: &data_version };
                protect(&table, cq, &settings, engine.data_years(), Some(&view)).map_err(failed)?
            };
            self.record(&mut guard, policy, &requester, v, cq, &data_version, &protected.release)?;
            protected
        } else {
            protect(&table, cq, &settings, engine.data_years(), None).map_err(failed)?
        };
        if protected.already_derivable > 0 {
            tracing::warn!(
                query_id = %v.query_id,
                indicator = %cq.recipe.key(),
                cells = protected.already_derivable,
                "withheld cells were already derivable from earlier releases"
            );
        }
        let answer = RegionAnswer {
            meta: self.meta(cq, &engine, &policy.version, admission.k),
            breakdowns: table.breakdowns.clone(),
            distribution: cq.recipe.is_distribution(),
            cells: protected.cells,
        };
        self.cache.insert(key, Arc::new(CachedAnswer { answer: answer.clone(), release: protected.release }));
        let mut answer = answer;
        answer.cells = canonical.restore(answer.cells);
        answer.breakdowns = canonical.asked_breakdowns();
        Ok((answer, None))
    }

    /// Checks the requester's budget and appends the release to the ledger (before the
    /// answer leaves; a ledger that cannot be written refuses the answer).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        guard: &mut crate::disclosure::ledger::LedgerGuard<'_>,
        policy: &crate::disclosure::policy::Policy,
        requester: &str,
        asked: &ValidatedQuery,
        canonical: &ValidatedQuery,
        data_version: &str,
        release: &Release,
    ) -> Result<(), NodeError> {
        let entry = Entry { requester, query_id: &asked.query_id, question: canonical, data_version, dry_run: asked.options.dry_run };
        if !asked.options.dry_run {
            let new = guard.new_for(&entry, release) as u64;
            let received = guard.released_to(requester, &canonical.recipe.key(), data_version) as u64;
            let budget = policy.ledger.budget_cells;
            if new > 0 && received + new > budget {
                return Err(NodeError::PolicyRefused(format!(
                    "this question would release {new} more cells of {} to you; you have received {received} of this data version, and the region's budget is {budget} cells per recipe and data version",
                    canonical.recipe.key()
                )));
            }
        }
        guard.append(&entry, release).map_err(|e| NodeError::DisclosureFailed(e.to_string()))?;
        Ok(())
    }

    /// Ends the query's span and records its metrics (no personal data: counts and labels).
    fn observe(&self, cx: &opentelemetry::Context, event: &AuditEvent, seconds: f64) {
        let indicator = event.indicator.clone().unwrap_or_default();
        let cells = event.cells.unwrap_or_default();
        telemetry::end_span(
            cx,
            vec![
                KeyValue::new("norrsken.query_id", event.query_id.clone().unwrap_or_default()),
                KeyValue::new("norrsken.indicator", indicator.clone()),
                KeyValue::new("norrsken.outcome", event.outcome.clone()),
                KeyValue::new("norrsken.cells_released", cells.released as i64),
                KeyValue::new("norrsken.cells_withheld", cells.withheld as i64),
            ],
        );
        let m = telemetry::metrics();
        let region = KeyValue::new("region", self.region.code);
        m.queries.add(1, &[KeyValue::new("node", "agent"), KeyValue::new("indicator", indicator.clone()), region.clone(), KeyValue::new("outcome", event.outcome.clone())]);
        m.duration.record(seconds, &[KeyValue::new("node", "agent"), KeyValue::new("indicator", indicator.clone()), region.clone()]);
        if cells.withheld > 0 {
            m.cells_withheld.add(cells.withheld, &[KeyValue::new("indicator", indicator), region]);
        }
    }

    /// Authorises, decodes, answers; fills in the audit event as it learns things.
    async fn serve_query(&self, caller: &Caller, ticket: &[u8], event: &mut AuditEvent) -> Result<(RegionAnswer, Answer), NodeError> {
        let client = self.authorize(caller)?.common_name.clone();
        let (query, relay) = IndicatorQuery::decode_ticket(ticket)?;
        event.query_id = (!query.query_id.is_empty()).then(|| query.query_id.clone());
        event.indicator = Some(query.indicator.clone());
        if let Some(r) = &relay {
            event.requester = Some(relayed_requester(r));
            event.role = Some(r.requester_role.clone());
            if event.trace_id.is_none() {
                event.trace_id = trace_id_of(&r.traceparent);
            }
        }
        let v = query.validate(&self.catalog, Some(self.engine().data_years()))?;
        event.indicator_version = Some(v.recipe.version);
        event.catalog_hash = Some(self.catalog.hash().to_string());
        event.query = serde_json::to_value(v.normalized()).ok();
        let (answer, cached_from) = self.answer(&v, relay.as_ref()).await?;
        // The versions that were applied, from the answer itself.
        event.policy_version = Some(answer.meta.policy_version.clone());
        event.data_version = Some(answer.meta.data_version.clone());
        let cached = cached_from.is_some();
        event.cached_from = cached_from;
        if cached {
            telemetry::metrics().cache_hits.add(1, &[KeyValue::new("node", "agent"), KeyValue::new("region", self.region.code)]);
        }
        tracing::info!(
            query_id = %v.query_id,
            trace_id = %event.trace_id.clone().unwrap_or_default(),
            indicator = %v.recipe.key(),
            relayed_by = %client,
            requester = %relay.as_ref().map(|r| r.requester_subject.as_str()).unwrap_or(""),
            cells = answer.cells.len(),
            cached,
            "answered"
        );
        let batch = answer.to_record_batch().map_err(|e| NodeError::Internal(e.to_string()))?;
        let released = Answer { schema: batch.schema(), batches: vec![batch] };
        Ok((answer, released))
    }

    /// Who may read this agent's audit log: a region admin of this region named in `admins`,
    /// directly or relayed by an allowed coordinator.
    fn authorize_audit_access(&self, caller: &Caller, body: &[u8]) -> Result<Who, NodeError> {
        let id = caller.require()?;
        if self.config.admins.iter().any(|a| a == &id.common_name) {
            return Ok(Who::from(id));
        }
        if self.config.allowed_clients.iter().any(|c| c == &id.common_name) {
            let relay: Relay = serde_json::from_slice(body)
                .map_err(|e| NodeError::PermissionDenied(format!("a relayed audit-log request must name its requester: {e}")))?;
            let who = relayed_requester(&relay);
            if relay.requester_role == "region_admin" && self.config.admins.iter().any(|a| *a == who.cn) {
                return Ok(who);
            }
            return Err(NodeError::PermissionDenied(format!(
                "'{}' ({}) may not read the audit log of region {}",
                who.cn, relay.requester_role, self.region.code
            )));
        }
        Err(NodeError::PermissionDenied(format!("'{}' may not read the audit log of region {}", id.common_name, self.region.code)))
    }

    fn recipe_info(&self, recipe: &norrsken_common::catalog::Recipe) -> Result<FlightInfo, NodeError> {
        let schema = agent_answer_schema(&[], recipe.is_distribution());
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
}

#[tonic::async_trait]
impl FlightNode for AgentNode {
    async fn list_flights(&self, caller: &Caller) -> Result<Vec<FlightInfo>, NodeError> {
        self.authorize(caller)?;
        self.catalog.latest().iter().map(|r| self.recipe_info(r)).collect()
    }

    async fn flight_info(&self, caller: &Caller, descriptor: FlightDescriptor) -> Result<FlightInfo, NodeError> {
        self.authorize(caller)?;
        if !descriptor.cmd.is_empty() {
            let (q, relay) = IndicatorQuery::decode_ticket(&descriptor.cmd)?;
            let relay = relay.ok_or_else(|| NodeError::PermissionDenied(format!("region {} describes only questions relayed by a coordinator that name their requester", self.region.code)))?;
            let engine = self.engine();
            let v = q.validate(&self.catalog, Some(engine.data_years()))?;
            let protection = self.protection();
            let admission = protection.policy.admit(&Canonical::of(&v).query, Some(&relay)).map_err(NodeError::PolicyRefused)?;
            let schema = agent_answer_schema(&v.breakdowns, v.recipe.is_distribution())
                .with_metadata(self.meta(&v, &engine, &protection.policy.version, admission.k).to_metadata());
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
        let recipe = self.catalog.get(&id, None).ok_or_else(|| {
            NodeError::Query(norrsken_common::query::QueryError::UnknownIndicator { id: id.clone(), known: self.catalog.ids().join(", ") })
        })?;
        self.recipe_info(recipe)
    }

    async fn do_get(&self, caller: &Caller, ticket: &[u8]) -> Result<Answer, NodeError> {
        let started = std::time::Instant::now();
        // Continue the coordinator's trace.
        let parent = telemetry::context_from_traceparent(caller.traceparent.as_deref());
        let cx = telemetry::start_span(
            "norrsken.agent.query",
            SpanKind::Server,
            &parent,
            vec![KeyValue::new("norrsken.region", self.region.code)],
        );
        let mut event = AuditEvent {
            kind: "query".into(),
            relayed_by: caller.identity.as_ref().map(Who::from),
            trace_id: telemetry::traceparent_of(&cx).as_deref().and_then(trace_id_of),
            regions: vec![self.region.code.to_string()],
            data_version: Some(self.engine().data_version().to_string()),
            ..Default::default()
        };
        let result = self.serve_query(caller, ticket, &mut event).await;
        event.duration_ms = Some(started.elapsed().as_millis() as u64);
        match &result {
            Ok((answer, released)) => {
                event.outcome = "ok".into();
                event.result_hash = Some(result_hash(&released.schema, &released.batches));
                event.cells = Some(counts(answer));
            }
            Err(e) => {
                event.kind = "refused".into();
                event.outcome = outcome_of(e).into();
                event.reason = Some(e.to_string());
            }
        }
        self.observe(&cx, &event, started.elapsed().as_secs_f64());
        // No record, no answer.
        self.audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
        norrsken_common::failpoint::hit("after-audit");
        result.map(|(_, released)| released)
    }

    async fn do_action(&self, caller: &Caller, action: &str, body: &[u8]) -> Result<Vec<Bytes>, NodeError> {
        if action == "audit-log" {
            let access = self.authorize_audit_access(caller, body);
            let event = AuditEvent {
                kind: "audit_access".into(),
                outcome: if access.is_ok() { "ok".into() } else { "refused".into() },
                requester: access.as_ref().ok().cloned().or_else(|| caller.identity.as_ref().map(Who::from)),
                relayed_by: caller.identity.as_ref().map(Who::from),
                reason: access.as_ref().err().map(|e| e.to_string()),
                regions: vec![self.region.code.to_string()],
                ..Default::default()
            };
            self.audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
            access?;
            return audit_chunks(&self.audit);
        }
        self.authorize(caller)?;
        let engine = self.engine();
        let body = match action {
            "versions" => {
                // Long poll: answer when the versions differ from the ones the caller knows.
                let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let known: Option<AgentVersions> = serde_json::from_value(request["known"].clone()).ok();
                let wait = request["wait_ms"].as_u64().map_or(std::time::Duration::ZERO, std::time::Duration::from_millis).min(VERSIONS_WAIT_MAX);
                json!(self.versions_after(known.as_ref(), wait).await)
            }
            "health" => json!({
                "status": "serving",
                "role": "agent",
                "region": self.region.code,
                "region_name": self.region.name,
                "data_version": engine.data_version(),
                "data_years": [engine.data_years().0, engine.data_years().1],
                "cache_entries": self.cache.len(),
                "catalog_hash": self.catalog.hash(),
                "policy_version": self.protection().policy.version,
                "uptime_s": self.started.elapsed().as_secs(),
            }),
            "catalog" => json!({
                "catalog_hash": self.catalog.hash(),
                "recipes": self.catalog.all().map(|r| json!({
                    "id": r.id, "version": r.version, "hash": r.hash, "kind": r.kind.name(), "title": r.title.en,
                })).collect::<Vec<_>>(),
            }),
            other => return Err(NodeError::Unsupported(format!("action '{other}'; offered: health, versions, catalog, audit-log"))),
        };
        Ok(vec![Bytes::from(body.to_string())])
    }

    fn actions(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("health", "Agent status: region, data version and years, catalog hash, policy version"),
            ("versions", "Data and policy versions; {\"known\": …, \"wait_ms\": n} waits up to n ms (30 s at most) for a change"),
            ("catalog", "The recipes (id, version, hash) this agent answers"),
            ("audit-log", "This agent's audit log (region admins of this region only)"),
        ]
    }
}
