//! The agent's query service: authorises the caller, validates the query against the
//! catalog, evaluates it and releases only what passes the region's disclosure control.
//! Every front door reaches it through [`Node`] and the shared request envelope.

use std::sync::{Arc, RwLock};

use norrsken_model::answer::{agent_answer_schema, AnswerMeta, CellStatus, RegionAnswer};
use norrsken_common::audit::{audit_chunks, trace_id_of, AuditLog, CellCounts, Who};
use norrsken_common::cache::AgentVersions;
use norrsken_model::catalog::Catalog;
use norrsken_common::error::NodeError;
use norrsken_model::geography::{self, Region};
use norrsken_common::pki::CertIdentity;
use norrsken_model::query::{QueryError, Relay, ValidatedQuery};
use norrsken_common::service::{Action, Answer, Caller, Description, Node, NodeBase, QueryScope, QueryTicket, Reply, Served};
use opentelemetry::KeyValue;
use serde_json::json;

use crate::config::AgentConfig;
use crate::disclosure::canonical::Canonical;
use crate::disclosure::ledger::Ledger;
use crate::disclosure::protection::Protection;
use crate::engine::{Engine, EngineError};
pub use crate::service::Snapshot;
use crate::service::QueryService;

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

/// Why a reload left the old data or policy in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Policy(#[from] crate::disclosure::protection::ProtectionError),
    #[error(transparent)]
    Datalager(#[from] crate::datalager::DatalagerError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub struct AgentNode {
    pub region: &'static Region,
    pub config: AgentConfig,
    engine: RwLock<Arc<Engine>>,
    protection: RwLock<Arc<Protection>>,
    /// The query path: cache, disclosure control, release ledger (see [`crate::service`]).
    service: QueryService,
    /// The data and policy versions in force; a coordinator waits on changes (`versions`).
    versions: tokio::sync::watch::Sender<AgentVersions>,
    /// Set when the agent stops: long polls return at once so that shutdown is not held up.
    stopping: tokio::sync::watch::Sender<bool>,
    /// A reloaded data version whose prepared tables are being built.
    loading: std::sync::Mutex<Option<Arc<Engine>>>,
    /// The last reload's comparison with the version before it (release over release).
    release_check: std::sync::Mutex<Option<crate::release_check::ReleaseReport>>,
    /// The yearly volumes of the version in force, for the next version to be compared with.
    volumes: tokio::sync::Mutex<Option<crate::release_check::Volumes>>,
    /// Secure sums with the other regions' agents, when configured.
    pub secure: Option<crate::secure::SecureSum>,
    /// Role, catalog, audit log and actions (see `Node`).
    pub base: NodeBase,
    pub started: std::time::Instant,
}

/// The longest a `versions` request waits for a change.
const VERSIONS_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

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
            data_years: Some(engine.data_years()),
        };
        let ledger = Ledger::open(&config.ledger_path(), &catalog, config.audit.fsync).map_err(|e| NodeError::NotReady(e.to_string()))?;
        let service = QueryService::new(region, &config.engine.cache, ledger, catalog.hash().to_string());
        let secure = match &config.secure_sum {
            Some(c) => Some(crate::secure::SecureSum::open(region.code, c, &config.runs_path()).map_err(|e| NodeError::NotReady(format!("[secure_sum]: {e}")))?),
            None => None,
        };
        Ok(AgentNode {
            region,
            config,
            engine: RwLock::new(Arc::new(engine)),
            protection: RwLock::new(Arc::new(protection)),
            service,
            versions: tokio::sync::watch::Sender::new(versions),
            stopping: tokio::sync::watch::Sender::new(false),
            loading: std::sync::Mutex::new(None),
            release_check: std::sync::Mutex::new(None),
            volumes: tokio::sync::Mutex::new(None),
            secure,
            base: NodeBase {
                role: "agent",
                query_span: "norrsken.agent.query",
                metric_labels: vec![KeyValue::new("region", region.code)],
                actions: &[
                    ("health", "Agent status: region, data version and years, catalog hash, policy version"),
                    ("versions", "Data and policy versions; {\"known\": …, \"wait_ms\": n} waits up to n ms (30 s at most) for a change"),
                    ("catalog", "The recipes (id, version, hash) this agent answers"),
                    ("audit-log", "This agent's audit log (region admins of this region only)"),
                    ("secure-sum", "This agent's masked vector of a relayed question for a secure sum: {\"ticket\": base64, \"participants\": [county codes]}"),
                ],
                catalog,
                answer_schema: agent_answer_schema,
                audit,
            },
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
        let engine = self.engine();
        let fresh = AgentVersions {
            data_version: engine.data_version().to_string(),
            policy_version: protection.policy.version.clone(),
            requesters_by_name: !protection.policy.requesters.names.iter().any(|n| n == "*"),
            data_years: Some(engine.data_years()),
        };
        self.versions.send_if_modified(|v| {
            let changed = *v != fresh;
            *v = fresh;
            changed
        });
    }

    /// Re-opens the datalager; when its data version changed, later queries use the new
    /// data (queries running finish on the old). Returns the new version, if any.
    pub async fn reload_data(&self) -> Result<Option<String>, ReloadError> {
        let datalager = crate::datalager::open(&self.config.datalager, &self.config.region).await?;
        if datalager.data_version() == self.engine().data_version() {
            return Ok(None);
        }
        let engine = Arc::new(Engine::open(datalager.as_ref(), &self.config.region, &self.config.engine).await?);
        let version = engine.data_version().to_string();
        // The previous version answers until the new one's tables are built.
        self.set_loading(Some(engine.clone()));
        self.prepare(&engine).await;
        // Release over release: each recipe's yearly volumes against the version in force
        // (profiled while it was in force: its files may already be gone).
        let fresh = crate::release_check::volumes(&engine, &self.base.catalog).await;
        let mut kept = self.volumes.lock().await;
        if let Some(old) = kept.as_ref() {
            let report = crate::release_check::compare(old, &fresh);
            if !report.changes.is_empty() {
                tracing::warn!(region = self.region.code, changes = report.changes.len(), "the new data version changes recipes' yearly volumes");
            }
            match self.release_check.lock() {
                Ok(mut r) => *r = Some(report),
                Err(poisoned) => *poisoned.into_inner() = Some(report),
            }
        }
        *kept = Some(fresh);
        drop(kept);
        self.set_loading(None);
        match self.engine.write() {
            Ok(mut e) => *e = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
        self.service.clear_cache();
        self.publish_versions();
        tracing::info!(region = self.region.code, data_version = %version, "data reloaded");
        Ok(Some(version))
    }

    /// The engine of a data version being prepared before it takes over, if any.
    fn set_loading(&self, engine: Option<Arc<Engine>>) {
        match self.loading.lock() {
            Ok(mut l) => *l = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
    }

    fn loading(&self) -> Option<Arc<Engine>> {
        match self.loading.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds every recipe's prepared tables for the data in force (at start, in the
    /// background: questions meanwhile wait for the table they need or take the SQL path).
    pub async fn prepare_in_force(&self) {
        let engine = self.engine();
        self.prepare(&engine).await;
        // The volumes the next data version is compared with (from the prepared tables: a
        // few milliseconds a recipe; not profiled when the agent prepares nothing at load).
        if !self.config.engine.prepare_at_load {
            return;
        }
        let profiled = crate::release_check::volumes(&engine, &self.base.catalog).await;
        let mut kept = self.volumes.lock().await;
        if kept.is_none() {
            *kept = Some(profiled);
        }
    }

    /// Builds `engine`'s prepared tables when the agent prepares at load, until it stops.
    async fn prepare(&self, engine: &Engine) {
        if self.config.engine.prepare_at_load {
            engine.prepare_all(&self.base.catalog, &|| *self.stopping.borrow()).await;
        }
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

    /// The engine and policy in force, for one request.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { engine: self.engine(), protection: self.protection() }
    }

    /// The policy in force.
    pub fn protection(&self) -> Arc<Protection> {
        match self.protection.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the policy file. A policy that does not load leaves the old one in force.
    pub fn reload_policy(&self) -> Result<String, ReloadError> {
        let fresh = Protection::load(&self.config.policy)?;
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
        self.service.meta(v, engine, policy_version, k)
    }

    /// The release ledger.
    pub fn ledger(&self) -> &Ledger {
        self.service.ledger()
    }

    /// Answers one query (the domain operation behind DoGet) through the agent's query
    /// service ([`crate::service`]).
    pub async fn answer(&self, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<(RegionAnswer, Option<String>), NodeError> {
        self.answer_with(&self.snapshot(), v, relay).await
    }

    /// [`AgentNode::answer`] on a given snapshot.
    pub async fn answer_with(&self, snapshot: &Snapshot, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<(RegionAnswer, Option<String>), NodeError> {
        self.service.answer(snapshot, v, relay).await
    }

    /// Who may read this agent's audit log: a region admin of this region named in `admins`,
    /// directly or relayed by an allowed coordinator.
    fn authorize_audit_access(&self, caller: &Caller, relay: Option<&Relay>) -> Result<Who, NodeError> {
        let id = caller.require()?;
        if self.config.admins.iter().any(|a| a == &id.common_name) {
            return Ok(Who::from(id));
        }
        if self.config.allowed_clients.iter().any(|c| c == &id.common_name) {
            let relay = relay.ok_or_else(|| NodeError::PermissionDenied("a relayed audit-log request must name its requester".into()))?;
            let who = relayed_requester(relay);
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

    /// This agent's masked vector of a relayed question for a secure sum between the
    /// participants (docs/secure-aggregation.md); the run is checked against the run
    /// ledger and audited, granted or refused.
    async fn secure_sum(&self, ticket: &[u8], mut participants: Vec<String>) -> Result<Reply, NodeError> {
        use norrsken_model::secure::{cell_list, to_bytes, Binding};
        let region = self.region.code;
        let secure = self
            .secure
            .as_ref()
            .ok_or_else(|| NodeError::Unsupported(format!("region {region} takes part in no secure sums (no [secure_sum] in its configuration)")))?;
        let ticket = QueryTicket::decode(ticket)?;
        let relay = self.relayed(&ticket)?.clone();
        let who = relayed_requester(&relay);
        let snapshot = self.snapshot();
        let v = ticket.query.validate(&self.base.catalog, Some(snapshot.engine.data_years()))?;
        if v.options.standardise.is_some() || v.options.dry_run {
            return Err(NodeError::Query(QueryError::Invalid { field: "options", message: "a secure sum is not run for standardised questions or dry runs".into() }));
        }
        participants.sort();
        participants.dedup();
        let cells = cell_list(&v, &participants).map_err(|e| NodeError::Query(QueryError::Invalid { field: "breakdowns", message: e.to_string() }))?;
        let question = serde_json::to_string(&Canonical::of(&v).query.normalized()).map_err(|e| NodeError::Internal(e.to_string()))?;
        let binding = Binding::new(&question, &participants, &cells);
        let data_version = snapshot.engine.data_version().to_string();
        let refused = |e: crate::secure::RunError| NodeError::PolicyRefused(format!("secure sum of query {}: {e}", v.query_id));
        secure.admit(binding.run_key(), &data_version, &participants, &v.query_id).map_err(refused)?;
        // Every margin's part too: the cell list holds the margins.
        let mut with_margins = v.clone();
        with_margins.options.totals = true;
        let answer = self.service.statuses(&snapshot, &with_margins, Some(&relay)).await?;
        let raw = snapshot.engine.evaluate(&with_margins).await?.cells;
        let keyer = snapshot.protection.keyer.clone();
        let mut words = crate::secure::vector(v.recipe.kind, v.options.perspective, &cells, &raw, &answer.cells, keyer.as_deref());
        norrsken_common::secure_sum::mask(region, &secure.key, &secure.peers, &binding, &mut words).map_err(|e| NodeError::PolicyRefused(e.to_string()))?;
        let bytes = to_bytes(&words);
        let chunks = bytes.chunks(1 << 20).map(bytes::Bytes::copy_from_slice).collect();
        let audit = format!(
            "secure sum of query {} ({} {}), participants {}, {} cells, data version {data_version}, question {}",
            v.query_id,
            v.recipe.key(),
            v.period,
            participants.join(","),
            cells.len(),
            &binding.question[..16]
        );
        let audit = norrsken_common::service::ActionAudit { what: audit, query_id: Some(v.query_id.clone()), indicator: Some(v.recipe.id.clone()), regions: participants };
        Ok(Reply { chunks, on_behalf_of: Some(who), role: Some(relay.requester_role.clone()), audit: Some(audit) })
    }

    /// A relayed query ticket, or the refusal of one without a relay block.
    fn relayed<'a>(&self, ticket: &'a QueryTicket) -> Result<&'a Relay, NodeError> {
        ticket.relay.as_ref().ok_or_else(|| {
            NodeError::PermissionDenied(format!(
                "region {} answers only questions relayed by a coordinator that name their requester (a protobuf ticket with a relay block)",
                self.region.code
            ))
        })
    }
}

#[tonic::async_trait]
impl Node for AgentNode {
    type Domain = ();

    fn base(&self) -> &NodeBase {
        &self.base
    }

    fn may_browse(&self, caller: &Caller) -> Result<(), NodeError> {
        self.authorize(caller).map(|_| ())
    }

    async fn describe_query(&self, caller: &Caller, ticket: QueryTicket, bytes: Vec<u8>) -> Result<Description, NodeError> {
        self.authorize(caller)?;
        let relay = self.relayed(&ticket)?;
        let snapshot = self.snapshot();
        let v = ticket.query.validate(&self.base.catalog, Some(snapshot.engine.data_years()))?;
        let admission = snapshot.protection.policy.admit(&Canonical::of(&v).query, Some(relay)).map_err(|r| NodeError::PolicyRefused(r.to_string()))?;
        let schema = agent_answer_schema(&v.breakdowns, v.recipe.is_distribution())
            .with_metadata(self.meta(&v, &snapshot.engine, &snapshot.protection.policy.version, admission.k).to_metadata());
        Ok(Description { schema, ticket: Some(bytes), recipe: None, title: String::new() })
    }

    async fn query(&self, caller: &Caller, ticket: QueryTicket, scope: &mut QueryScope) -> Result<Served, NodeError> {
        // The caller is the coordinator relaying; the requester is who it relays for.
        let event = &mut scope.event;
        event.relayed_by = event.requester.take();
        event.regions = vec![self.region.code.to_string()];
        let snapshot = self.snapshot();
        event.data_version = Some(snapshot.engine.data_version().to_string());
        let client = self.authorize(caller)?.common_name.clone();
        let QueryTicket { query, relay } = ticket;
        event.query_id = (!query.query_id.is_empty()).then(|| query.query_id.clone());
        event.indicator = Some(query.indicator.clone());
        if let Some(r) = &relay {
            event.requester = Some(relayed_requester(r));
            event.role = Some(r.requester_role.clone());
            event.relayer_head = r.relayer_head.clone();
            if event.trace_id.is_none() {
                event.trace_id = trace_id_of(&r.traceparent);
            }
        }
        let v = query.validate(&self.base.catalog, Some(snapshot.engine.data_years()))?;
        event.indicator_version = Some(v.recipe.version);
        event.catalog_hash = Some(self.base.catalog.hash().to_string());
        event.query = serde_json::to_value(v.normalized()).ok();
        let (answer, cached_from) = self.answer_with(&snapshot, &v, relay.as_ref()).await?;
        // The versions that were applied, from the answer itself.
        event.policy_version = Some(answer.meta.policy_version.clone());
        event.data_version = Some(answer.meta.data_version.clone());
        let cached = cached_from.is_some();
        event.cached_from = cached_from;
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
        Ok(Served {
            answer: Answer { schema: batch.schema(), batches: vec![batch] },
            outcome: "ok",
            cells: counts(&answer),
            domain: (),
        })
    }

    async fn action(&self, caller: &Caller, action: Action) -> Result<Reply, NodeError> {
        if let Action::AuditLog { relay, .. } = &action {
            let who = self.authorize_audit_access(caller, relay.as_ref())?;
            let chunks = audit_chunks(&self.base.audit)?;
            return Ok(Reply { chunks, on_behalf_of: Some(who), role: relay.as_ref().map(|r| r.requester_role.clone()), audit: None });
        }
        self.authorize(caller)?;
        if let Action::SecureSum { ticket, participants } = action {
            return self.secure_sum(&ticket, participants).await;
        }
        let engine = self.engine();
        let body = match action {
            Action::Versions { known, wait_ms } => {
                // Long poll: answer when the versions differ from the ones the caller knows.
                let wait = std::time::Duration::from_millis(wait_ms).min(VERSIONS_WAIT_MAX);
                json!(self.versions_after(known.as_ref(), wait).await)
            }
            Action::Health => {
                let prepared = engine.prepared_stats();
                json!({
                    "status": "serving",
                    "role": "agent",
                    "region": self.region.code,
                    "region_name": self.region.name,
                    "data_version": engine.data_version(),
                    "data_years": [engine.data_years().0, engine.data_years().1],
                    "cache_entries": self.service.cache_len(),
                    "catalog_hash": self.base.catalog.hash(),
                    "policy_version": self.protection().policy.version,
                    "ledger_records": self.service.ledger().len(),
                    "prepared_tables": prepared.tables,
                    "prepared_rows": prepared.rows,
                    "prepared_mib": prepared.bytes >> 20,
                    // Building every recipe's tables at load: the version in force, and a
                    // reloaded version being prepared before it takes over.
                    "prepare": engine.progress().to_json(),
                    "loading": self.loading().map(|e| json!({"data_version": e.data_version(), "prepare": e.progress().to_json()})),
                    // The last reload against the version before it (docs/data-quality.md).
                    "release_check": self.release_check.lock().ok().and_then(|r| r.clone()),
                    "release_baseline": self.volumes.try_lock().ok().and_then(|v| v.as_ref().map(|v| v.version.clone())),
                    "uptime_s": self.started.elapsed().as_secs(),
                })
            }
            Action::Catalog => json!({
                "catalog_hash": self.base.catalog.hash(),
                "recipes": self.base.catalog.all().map(|r| json!({
                    "id": r.id, "version": r.version, "hash": r.hash, "kind": r.kind.name(), "title": r.title.en,
                })).collect::<Vec<_>>(),
            }),
            other => return Err(NodeError::Unsupported(format!("action '{}' at an agent", other.name()))),
        };
        Ok(Reply::json(body))
    }
}
