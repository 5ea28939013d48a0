//! The coordinator's query path as a plain service: plan a question once (validate it,
//! resolve the agents it asks, write the relayed ticket), answer it from the cache or fan
//! it out to the agents concurrently, merge their answers (pooled cells protected) and
//! cache the comparison. No network type appears here: agents are reached through
//! [`AgentPort`], which the Flight client implements and a unit test fakes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use norrsken_common::cache::{key as cache_key, query_key, AgentVersions, AnswerCache, CacheSettings};
use norrsken_model::catalog::Catalog;
use norrsken_common::error::{ErrorKind, NodeError};
use norrsken_model::geography;
use norrsken_model::query::{IndicatorQuery, QueryError, Relay, ValidatedQuery};
use norrsken_model::secure::SecureError;
use norrsken_common::audit::Anchor;
use norrsken_common::service::QueryScope;
use std::time::Instant;

use crate::circuit::{CircuitSettings, Circuits};
use crate::config::Role;
use crate::limits::{LimitSettings, RequesterLimits};
use crate::merge::{merge, Comparison, MergeInput, RegionOutcome, RegionState};

/// One region's agent, as the service asks it.
#[tonic::async_trait]
pub trait AgentPort: Send + Sync {
    /// County code.
    fn region(&self) -> &str;
    fn name(&self) -> &str;
    /// Asks the agent a (relayed) query ticket within `deadline`, retrying transient
    /// failures up to `retries` times.
    async fn ask(&self, ticket: Bytes, deadline: Duration, retries: u32, traceparent: Option<&str>) -> RegionOutcome;
    /// Asks the agent for its health within `deadline`.
    async fn probe(&self, deadline: Duration) -> Result<(), String>;
    /// Asks the agent for its masked vector of a secure sum (the `secure-sum` action body).
    async fn secure_sum(&self, _body: Bytes, _deadline: Duration) -> Result<Vec<u8>, String> {
        Err(format!("region {} takes part in no secure sums", self.region()))
    }
}

/// Who asks, as the coordinator authenticated them.
#[derive(Debug, Clone)]
pub struct Requester {
    pub cn: String,
    pub subject: String,
    pub fingerprint: String,
    pub role: Role,
}

/// A question, planned once: what every later step reads.
pub struct Plan {
    pub query: ValidatedQuery,
    /// The agents asked, in configured order.
    pub agents: Vec<Arc<dyn AgentPort>>,
    pub requester: Requester,
    /// How long each agent is waited for: the configured `agent_timeout_ms`, shortened by
    /// the query's `deadline_ms` and the caller's own deadline.
    pub deadline: Duration,
    /// The deadline is the requester's (shorter than the coordinator's own bound): a region
    /// that misses it is reported to this requester as timed out, but its circuit stays
    /// closed (see [`crate::circuit`]).
    pub requester_deadline: bool,
    /// The coordinator's audit chain head, relayed to the agents (who record it).
    pub relayer_head: Option<Anchor>,
    /// Every configured region is asked (a secure sum runs only then).
    pub every_region: bool,
}

impl Plan {
    pub fn regions(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.region().to_string()).collect()
    }
}

/// Settings of the query path.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub pooled_label: String,
    pub agent_timeout: Duration,
    pub retries: u32,
    pub cache: CacheSettings,
    pub circuit: CircuitSettings,
    pub limits: LimitSettings,
    /// The federation's policy for pooled totals by secure sum, when secure sums are on.
    pub secure: Option<Arc<crate::secure::Federation>>,
}

/// The coordinator's query service.
pub struct QueryService {
    pub catalog: Arc<Catalog>,
    settings: ServiceSettings,
    cache: AnswerCache<Comparison>,
    /// Each agent's data and policy versions as last reported (absent while unknown: then
    /// nothing involving it is served from the cache).
    versions: RwLock<HashMap<String, AgentVersions>>,
    /// Which regions are not asked until they answer a health probe.
    pub circuits: Arc<Circuits>,
    /// How many uncached questions each requester may ask.
    pub limits: RequesterLimits,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(v) => v.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

impl QueryService {
    pub fn new(catalog: Arc<Catalog>, settings: ServiceSettings) -> QueryService {
        let cache = AnswerCache::new(&settings.cache);
        let circuits = Arc::new(Circuits::new(settings.circuit.clone()));
        let limits = RequesterLimits::new(settings.limits.clone());
        QueryService { catalog, settings, cache, versions: RwLock::new(HashMap::new()), circuits, limits }
    }

    pub fn cache_enabled(&self) -> bool {
        self.cache.enabled()
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Records (or forgets) the versions an agent reported.
    pub fn set_versions(&self, region: &str, v: Option<AgentVersions>) {
        let mut map = match self.versions.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match v {
            Some(v) => map.insert(region.to_string(), v),
            None => map.remove(region),
        };
    }

    /// The versions an agent last reported, while known.
    pub fn agent_versions(&self, region: &str) -> Option<AgentVersions> {
        read(&self.versions).get(region).cloned()
    }

    /// The years every region's data covers, as the agents last reported them (the latest
    /// first year and the earliest last year); none while no agent's years are known.
    pub fn data_years(&self) -> Option<(i32, i32)> {
        read(&self.versions).values().filter_map(|v| v.data_years).reduce(|(f1, l1), (f2, l2)| (f1.max(f2), l1.min(l2)))
    }

    /// Validates a question and resolves the agents it asks and how long it waits for them,
    /// once. `caller_deadline` is how long the caller waits (gRPC's deadline), if it said.
    pub fn plan(&self, query: IndicatorQuery, requester: Requester, all: &[Arc<dyn AgentPort>], caller_deadline: Option<Duration>) -> Result<Plan, NodeError> {
        let mut v = query.validate(&self.catalog, None)?;
        if v.query_id.is_empty() {
            v.query_id = uuid::Uuid::new_v4().to_string();
        }
        let agents = select_agents(all, &v.regions)?;
        let deadline = self.deadline(v.options.deadline_ms, caller_deadline);
        let requester_deadline = deadline < self.settings.agent_timeout;
        let every_region = agents.len() == all.len();
        Ok(Plan { query: v, agents, requester, deadline, requester_deadline, relayer_head: None, every_region })
    }

    /// The agent deadline of a query: the configured bound, shortened by the query's
    /// `deadline_ms` and by the caller's deadline less a margin for merging and sending.
    pub fn deadline(&self, asked_ms: Option<u32>, caller: Option<Duration>) -> Duration {
        let mut d = self.settings.agent_timeout;
        if let Some(ms) = asked_ms {
            d = d.min(Duration::from_millis(u64::from(ms)));
        }
        if let Some(c) = caller {
            let margin = (c / 10).clamp(Duration::from_millis(20), Duration::from_millis(500));
            d = d.min(c.saturating_sub(margin));
        }
        d.max(Duration::from_millis(1))
    }

    /// Probes the regions whose circuit is open, concurrently; closes those that answer.
    pub async fn probe_open(&self, agents: &[Arc<dyn AgentPort>]) {
        let regions = self.circuits.to_probe(Instant::now());
        let deadline = self.circuits.probe_timeout();
        join_all(regions.iter().map(|region| async move {
            let Some(agent) = agents.iter().find(|a| a.region() == region) else {
                self.circuits.close(region);
                return;
            };
            match agent.probe(deadline).await {
                Ok(()) => {
                    self.circuits.close(region);
                }
                Err(e) => {
                    tracing::debug!(region = %region, error = %e, "probe unanswered");
                    self.circuits.probe_failed(region);
                }
            }
        }))
        .await;
    }

    /// Probes a region that missed a requester's own deadline, in the background: its
    /// circuit opens only if it does not answer the coordinator's probe (twice) within
    /// `probe_timeout_ms` (at most one such check per region and probe interval).
    fn check_region(&self, agent: Arc<dyn AgentPort>) {
        let circuits = self.circuits.clone();
        if !circuits.begin_check(agent.region(), Instant::now()) {
            return;
        }
        tokio::spawn(async move {
            let timeout = circuits.probe_timeout();
            let mut result = agent.probe(timeout).await;
            if result.is_err() {
                // Once more, on a fresh connection if the last one was just closed.
                tokio::time::sleep(Duration::from_millis(100)).await;
                result = agent.probe(timeout).await;
            }
            circuits.end_check(agent.region());
            if let Err(e) = result {
                let reason = format!("it missed a question's deadline and did not answer a health probe within {} ms ({e})", timeout.as_millis());
                circuits.trip(agent.region(), &reason, Instant::now());
            }
        });
    }

    /// The cache key of a plan under the versions `of` gives, or none when an agent's
    /// versions are unknown.
    fn cache_key(&self, plan: &Plan, of: impl Fn(&str) -> Option<AgentVersions>) -> Option<String> {
        // An analysis is computed from the comparison: analyses of one question share it.
        let mut question = plan.query.clone();
        question.options.analysis = None;
        // A requester is served only what they themselves were answered: the agents count
        // every requester's questions (their budgets and ledgers), which one requester's
        // cache hit on another's answer would pass by.
        let mut parts = vec![query_key(&question), plan.requester.role.name().to_string(), format!("requester={}", plan.requester.fingerprint)];
        for a in &plan.agents {
            let ver = of(a.region())?;
            parts.push(format!("{}={}/{}", a.region(), ver.data_version, ver.policy_version));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Some(cache_key(&refs))
    }

    /// The comparison for a plan: from the cache when every agent's versions are known and
    /// unchanged (then with the query id it was first computed for), else asked of the
    /// agents. `order` is every configured region (code, name) in display order; `scope`
    /// traces the agent calls.
    pub async fn run(&self, plan: &Plan, order: &[(String, String)], scope: Option<&mut QueryScope>) -> Result<(Comparison, Option<String>), NodeError> {
        let v = &plan.query;
        if !v.options.no_cache {
            if let Some(hit) = self.cache_key(plan, |r| self.agent_versions(r)).and_then(|k| self.cache.get(&k)) {
                let mut c = (*hit).clone();
                c.meta.cached = true;
                let first = std::mem::replace(&mut c.meta.query_id, v.query_id.clone());
                return Ok((c, Some(first)));
            }
        }
        // Only questions that reach the agents count against the requester's limit.
        self.limits.admit(&plan.requester.fingerprint, Instant::now())?;
        let c = self.fan_out(plan, order, scope).await?;
        if !c.meta.partial {
            // Keyed by the versions the agents answered with.
            let answered = |region: &str| {
                let r = c.regions.iter().find(|r| r.region == region)?;
                let known = self.agent_versions(region);
                Some(AgentVersions {
                    data_version: r.data_version.clone()?,
                    policy_version: r.policy_version.clone()?,
                    requesters_by_name: known.as_ref().map_or(true, |k| k.requesters_by_name),
                    data_years: known.and_then(|k| k.data_years),
                })
            };
            if let Some(key) = self.cache_key(plan, answered) {
                self.cache.insert(key, Arc::new(c.clone()));
            }
        }
        Ok((c, None))
    }

    /// Asks every planned agent concurrently (but not those whose circuit is open) and
    /// merges the answers; what was relayed to each region goes into `scope`'s record.
    async fn fan_out(&self, plan: &Plan, order: &[(String, String)], mut scope: Option<&mut QueryScope>) -> Result<Comparison, NodeError> {
        let v = &plan.query;
        let r = &plan.requester;
        let spans: Option<&QueryScope> = scope.as_deref();
        let relay = Relay {
            requester_subject: r.subject.clone(),
            requester_fingerprint: r.fingerprint.clone(),
            requester_role: r.role.name().to_string(),
            catalog_hash: self.catalog.hash().to_string(),
            traceparent: spans.and_then(QueryScope::traceparent).unwrap_or_default(),
            relayer_head: plan.relayer_head.clone(),
        };
        let mut outgoing = v.normalized();
        outgoing.query_id = v.query_id.clone();
        outgoing.regions = Vec::new();
        outgoing.options.no_cache = v.options.no_cache;
        // Agents answer the question; the analysis of the answers is the coordinator's.
        outgoing.options.analysis = None;
        let ticket = Bytes::from(outgoing.encode_ticket(Some(&relay)));
        let (deadline, retries, own) = (plan.deadline, self.settings.retries, self.settings.agent_timeout);
        let outcomes = join_all(plan.agents.iter().map(|a| {
            let ticket = ticket.clone();
            async move {
                if let Some(why) = self.circuits.refuses(a.region(), Instant::now()) {
                    return RegionOutcome::not_asked(a.region(), a.name(), why);
                }
                // One child span per agent call; its context travels to the agent.
                let span = spans.map(|s| s.child("norrsken.coordinator.agent_call", &[("norrsken.region", a.region().to_string())]));
                let tp = span.as_ref().and_then(|s| s.traceparent());
                let outcome = if plan.requester_deadline {
                    // The call runs within the coordinator's own deadline whatever the
                    // requester's: cancelling calls at the requester's whim would reset
                    // streams on the connection every requester shares (an agent's HTTP/2
                    // server closes a connection that resets streams rapidly), and only the
                    // call's own end may judge the region. The requester stops waiting at
                    // its deadline; the call finishes on its own.
                    let (agent, circuits, tp) = (a.clone(), self.circuits.clone(), tp.clone());
                    let mut call = tokio::spawn(async move {
                        let outcome = agent.ask(ticket, own, retries, tp.as_deref()).await;
                        judge(&circuits, agent.region(), &outcome);
                        outcome
                    });
                    match tokio::time::timeout(deadline, &mut call).await {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(e)) => RegionOutcome::failed(a.region(), a.name(), format!("the call to the agent failed: {e}")),
                        Err(_) => {
                            // This requester's timeout only; the coordinator also checks
                            // the region itself.
                            self.check_region(a.clone());
                            RegionOutcome::waited_out(
                                a.region(),
                                a.name(),
                                deadline,
                                format!("no answer within {} ms, the deadline this question asked for (the coordinator waits up to {} ms)", deadline.as_millis(), own.as_millis()),
                            )
                        }
                    }
                } else {
                    let outcome = a.ask(ticket, deadline, retries, tp.as_deref()).await;
                    judge(&self.circuits, a.region(), &outcome);
                    outcome
                };
                if let Some(span) = span {
                    let cells = outcome.answer.as_ref().map_or(0, |r| r.cells.len());
                    span.end(&[
                        ("norrsken.outcome", outcome.state.name().to_string()),
                        ("norrsken.cells", cells.to_string()),
                        ("norrsken.attempts", outcome.attempts.to_string()),
                    ]);
                }
                outcome
            }
        }))
        .await;
        // The secure sum after the ordinary answers: each agent then reads what it withholds
        // of its own part from its answer cache instead of deciding the question twice.
        let secure = if outcomes.iter().all(|o| o.state == RegionState::Ok) { self.secure_round(plan, &relay).await } else { None };
        if let Some(scope) = scope.as_deref_mut() {
            scope.event.region_outcomes = outcomes.iter().map(RegionOutcome::part).collect();
        }
        // A question every region rejected as malformed is the requester's error.
        if !outcomes.iter().any(|o| o.state == RegionState::Ok) {
            if let Some(first) = outcomes.first() {
                if outcomes.iter().all(|o| matches!(o.error, Some(ErrorKind::Invalid | ErrorKind::NotFound))) {
                    return Err(NodeError::Query(QueryError::MalformedTicket(format!(
                        "every region rejected the query; region {} said: {}",
                        first.region, first.message
                    ))));
                }
            }
        }
        let input = MergeInput {
            recipe: &v.recipe,
            breakdowns: &v.breakdowns,
            order,
            pooled_label: &self.settings.pooled_label,
            query_id: &v.query_id,
            catalog_hash: self.catalog.hash(),
            perspective: v.options.perspective,
            period: v.period,
            dry_run: v.options.dry_run,
            standard: v.options.standardise.as_deref(),
            secure: secure.as_ref(),
        };
        Ok(merge(&input, &outcomes))
    }

    /// The secure sums of a question's pooled cells, run after the ordinary questions when
    /// secure sums are on and every region answered: one per lattice query of the question
    /// (with its margins), decided as a central agent decides its lattice
    /// ([`crate::secure::decide`]). None when they do not apply, or the reason they could not
    /// be completed (a region that does not take part: the pooled cells then follow the
    /// rule of released parts, as without secure sums).
    async fn secure_round(&self, plan: &Plan, relay: &Relay) -> Option<crate::merge::Secure> {
        use base64::Engine as _;
        let fed = self.settings.secure.as_ref()?;
        let v = &plan.query;
        let years = self.data_years()?;
        if !plan.every_region || plan.agents.len() < 2 || v.options.standardise.is_some() || v.options.dry_run {
            return None;
        }
        let data_end = chrono::NaiveDate::from_ymd_opt(years.1, 12, 31)?;
        // Cells whose follow-up window runs past the data keep the agents' own rule (they
        // withhold or mark them per their policy).
        if v.recipe.followup_complete_through(data_end).is_some_and(|through| through < v.period.last_day()) {
            return None;
        }
        let sp = crate::secure::secure_plan(v, years)?;
        let participants = plan.regions();
        let mut lists = Vec::new();
        for q in &sp.queries {
            match norrsken_model::secure::cell_list(q, &participants) {
                Ok(c) => lists.push(c),
                Err(e) => return Some(crate::merge::Secure::Failed(e)),
            }
        }
        // The lattice queries' secure sums at once, each agent's calls side by side.
        let sums = join_all(sp.queries.iter().zip(&lists).map(|(q, list)| {
            let mut outgoing = q.normalized();
            outgoing.query_id = q.query_id.clone();
            let ticket = outgoing.encode_ticket(Some(relay));
            let body = Bytes::from(
                serde_json::json!({"ticket": base64::engine::general_purpose::STANDARD.encode(&ticket), "participants": participants}).to_string(),
            );
            async move {
                let vectors = join_all(plan.agents.iter().map(|a| {
                    let body = body.clone();
                    async move { a.secure_sum(body, self.settings.agent_timeout).await.map_err(|e| SecureError::Region(format!("region {}: {e}", a.region()))) }
                }))
                .await;
                vectors.into_iter().collect::<Result<Vec<Vec<u8>>, SecureError>>().and_then(|vs| crate::secure::unmask(&vs, list.len()))
            }
        }))
        .await;
        let totals: Vec<Vec<u64>> = match sums.into_iter().collect() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(query_id = %v.query_id, error = %e, "secure sum not completed; pooled cells from released parts");
                return Some(crate::merge::Secure::Failed(e));
            }
        };
        let cells = lists;
        match crate::secure::decide(v, &sp, &cells, &totals, fed) {
            Ok(d) => Some(crate::merge::Secure::Decided(d)),
            Err(e) => {
                tracing::warn!(query_id = %v.query_id, error = %e, "secure totals could not be decided; pooled cells from released parts");
                Some(crate::merge::Secure::Failed(e))
            }
        }
    }
}

/// What a call's own end says of a region: one that missed the coordinator's deadline or
/// could not be reached is not asked again until it answers a probe; one that answered
/// anything is up.
fn judge(circuits: &Circuits, region: &str, outcome: &RegionOutcome) {
    if outcome.waited_out || (outcome.state == RegionState::Unavailable && outcome.error.is_none()) {
        circuits.trip(region, &outcome.message, Instant::now());
    } else {
        circuits.answered(region);
    }
}

/// Which agents a query asks: all, or those named (by code, ISO code or name).
fn select_agents(all: &[Arc<dyn AgentPort>], names: &[String]) -> Result<Vec<Arc<dyn AgentPort>>, QueryError> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    let mut out: Vec<Arc<dyn AgentPort>> = Vec::new();
    for name in names {
        let code = geography::find_region(name).map(|r| r.code.to_string()).unwrap_or_else(|| name.clone());
        let agent = all.iter().find(|a| a.region() == code || a.name().eq_ignore_ascii_case(name)).ok_or_else(|| QueryError::UnknownRegion {
            region: name.chars().take(40).collect(),
            known: all.iter().map(|a| format!("{} ({})", a.region(), a.name())).collect::<Vec<_>>().join(", "),
        })?;
        if !out.iter().any(|a| a.region() == agent.region()) {
            out.push(agent.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::answer::{AnswerMeta, CellStatus, Reason, RegionAnswer, ReleasedCell};
    use norrsken_model::breakdown::Breakdown;
    use norrsken_model::comparison::RowKind;
    use norrsken_model::query::Perspective;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An agent that answers from a table of cells, counts its calls, or fails.
    struct FakeAgent {
        region: String,
        cells: Vec<(&'static str, i64, i64, bool)>,
        fail: Option<ErrorKind>,
        calls: AtomicUsize,
    }

    #[tonic::async_trait]
    impl AgentPort for FakeAgent {
        fn region(&self) -> &str {
            &self.region
        }
        fn name(&self) -> &str {
            &self.region
        }
        async fn ask(&self, ticket: Bytes, _deadline: Duration, _retries: u32, _tp: Option<&str>) -> RegionOutcome {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let (q, relay) = IndicatorQuery::decode_ticket(&ticket).unwrap();
            assert!(relay.unwrap().requester_subject.starts_with("CN="), "the ticket names the requester");
            let base = RegionOutcome {
                region: self.region.clone(),
                name: self.region.clone(),
                state: RegionState::Ok,
                message: String::new(),
                answer: None,
                duration_ms: 1,
                attempts: 1,
                error: None,
                record: None,
                waited_out: false,
            };
            if let Some(kind) = self.fail {
                let state = if kind == ErrorKind::PolicyRefused { RegionState::PolicyRefused } else { RegionState::Error };
                return RegionOutcome { state, message: "no".into(), error: Some(kind), ..base };
            }
            let cells = self
                .cells
                .iter()
                .map(|(sex, n, d, withheld)| ReleasedCell {
                    region: self.region.clone(),
                    labels: vec![sex.to_string()],
                    category: None,
                    numerator: (!withheld).then_some(*n),
                    denominator: (!withheld).then_some(*d),
                    value_sum: None,
                    value_sd: None,
                    status: if *withheld { CellStatus::Suppressed } else { CellStatus::Perturbed },
                    reasons: if *withheld { vec![Reason::BelowMinCell] } else { vec![Reason::Perturbed] },
                    suggestion: withheld.then(|| "merge".into()),
                    standardised: None,
                    released_without: Vec::new(),
                })
                .collect();
            let meta = AnswerMeta { query_id: q.query_id, region: self.region.clone(), data_version: "d1".into(), policy_version: "p1".into(), ..Default::default() };
            RegionOutcome { answer: Some(RegionAnswer { meta, breakdowns: vec![Breakdown::Sex], distribution: false, cells }), ..base }
        }
        async fn probe(&self, _deadline: Duration) -> Result<(), String> {
            Ok(())
        }
    }

    /// An agent that answers after `delay` (or is waited out) and answers probes or not.
    struct SlowAgent {
        inner: Arc<FakeAgent>,
        delay: Duration,
        probes_answered: bool,
        probes: AtomicUsize,
    }

    #[tonic::async_trait]
    impl AgentPort for SlowAgent {
        fn region(&self) -> &str {
            self.inner.region()
        }
        fn name(&self) -> &str {
            self.inner.name()
        }
        async fn ask(&self, ticket: Bytes, deadline: Duration, retries: u32, tp: Option<&str>) -> RegionOutcome {
            if self.delay > deadline {
                tokio::time::sleep(deadline).await;
                let base = self.inner.ask(ticket, deadline, retries, tp).await;
                return RegionOutcome { state: RegionState::Timeout, message: "no answer".into(), answer: None, waited_out: true, ..base };
            }
            tokio::time::sleep(self.delay).await;
            self.inner.ask(ticket, deadline, retries, tp).await
        }
        async fn probe(&self, _deadline: Duration) -> Result<(), String> {
            self.probes.fetch_add(1, Ordering::Relaxed);
            if self.probes_answered { Ok(()) } else { Err("no answer".into()) }
        }
    }

    fn slow(region: &str, delay_ms: u64, probes_answered: bool) -> Arc<SlowAgent> {
        Arc::new(SlowAgent { inner: agent(region, vec![("female", 10, 50, false)], None), delay: Duration::from_millis(delay_ms), probes_answered, probes: AtomicUsize::new(0) })
    }

    /// A question's own short deadline is that requester's timeout; it opens no circuit for
    /// others (only a failed probe of the coordinator's own, or its own deadline, does).
    #[tokio::test]
    async fn a_requesters_short_deadline_does_not_open_the_circuit_for_others() {
        let s = service();
        let a = slow("24", 50, true);
        let agents: Vec<Arc<dyn AgentPort>> = vec![a.clone()];
        let mut hurried = question(&[]);
        hurried.options.deadline_ms = Some(1);
        for _ in 0..20 {
            let plan = s.plan(hurried.clone(), requester(), &agents, None).unwrap();
            assert!(plan.requester_deadline);
            let (c, _) = s.run(&plan, &order(), None).await.unwrap();
            let r = c.regions.iter().find(|r| r.region == "24").unwrap();
            assert_eq!(r.status, RegionState::Timeout, "the hurried requester is told the region timed out");
            assert!(r.message.contains("the deadline this question asked for"), "{}", r.message);
        }
        // The same through the caller's gRPC deadline.
        let plan = s.plan(question(&[]), requester(), &agents, Some(Duration::from_millis(30))).unwrap();
        assert!(plan.requester_deadline);
        s.run(&plan, &order(), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(s.circuits.refuses("24", Instant::now()).is_none(), "the circuit stays closed");
        assert_eq!(a.probes.load(Ordering::Relaxed), 1, "twenty-one misses, one probe of the coordinator's own");
        let (c, _) = s.run(&s.plan(question(&[]), requester(), &agents, None).unwrap(), &order(), None).await.unwrap();
        assert!(!c.meta.partial, "another question gets the region");

        // A region that misses a requester's deadline and then the coordinator's probe is down.
        let s = service();
        let down: Vec<Arc<dyn AgentPort>> = vec![slow("24", 5_000, false)];
        s.run(&s.plan(hurried.clone(), requester(), &down, None).unwrap(), &order(), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let why = s.circuits.refuses("24", Instant::now()).expect("opened by the failed probe");
        assert!(why.contains("did not answer a health probe"), "{why}");

        // The coordinator's own deadline opens it at once.
        let settings = ServiceSettings { agent_timeout: Duration::from_millis(10), ..service().settings.clone() };
        let s = QueryService::new(Arc::new(Catalog::embedded()), settings);
        let plan = s.plan(question(&[]), requester(), &agents, None).unwrap();
        assert!(!plan.requester_deadline);
        s.run(&plan, &order(), None).await.unwrap();
        assert!(s.circuits.refuses("24", Instant::now()).is_some());
    }

    fn agent(region: &str, cells: Vec<(&'static str, i64, i64, bool)>, fail: Option<ErrorKind>) -> Arc<FakeAgent> {
        Arc::new(FakeAgent { region: region.into(), cells, fail, calls: AtomicUsize::new(0) })
    }

    fn service() -> QueryService {
        let settings = ServiceSettings {
            pooled_label: "Norra".into(),
            agent_timeout: Duration::from_secs(1),
            retries: 0,
            cache: CacheSettings::default(),
            circuit: CircuitSettings::default(),
            limits: LimitSettings::default(),
            secure: None,
        };
        QueryService::new(Arc::new(Catalog::embedded()), settings)
    }

    fn requester() -> Requester {
        Requester { cn: "analyst".into(), subject: "CN=analyst".into(), fingerprint: "f".into(), role: Role::Analyst }
    }

    fn question(regions: &[&str]) -> IndicatorQuery {
        IndicatorQuery {
            indicator: "stroke_reperfusion".into(),
            breakdowns: vec!["sex".into()],
            period: "2024".into(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            options: norrsken_model::query::QueryOptions { perspective: Perspective::Provider, ..Default::default() },
            ..Default::default()
        }
    }

    fn order() -> Vec<(String, String)> {
        ["24", "25", "23"].iter().map(|c| (c.to_string(), c.to_string())).collect()
    }

    #[tokio::test]
    async fn plans_once_fans_out_merges_and_protects_the_pooled_cell() {
        let a = agent("24", vec![("female", 10, 50, false), ("male", 0, 0, true)], None);
        let b = agent("25", vec![("female", 5, 40, false), ("male", 8, 45, false)], None);
        let agents: Vec<Arc<dyn AgentPort>> = vec![a.clone(), b.clone()];
        let s = service();
        let plan = s.plan(question(&[]), requester(), &agents, None).unwrap();
        assert_eq!(plan.regions(), ["24", "25"]);
        let (c, _) = s.run(&plan, &order(), None).await.unwrap();
        let pooled = |sex: &str| c.rows.iter().find(|r| r.kind == RowKind::Pooled && r.labels[0].as_deref() == Some(sex)).unwrap().clone();
        assert_eq!((pooled("female").numerator, pooled("female").denominator), (Some(15), Some(90)));
        assert_eq!(pooled("male").status, "suppressed", "a region withheld male: the pooled cell is withheld");
        assert!(pooled("male").reasons.contains(&"pooled_protection".to_string()));
        assert!(!c.meta.partial);
        // The versions are unknown (no watcher): nothing is served from the cache.
        s.run(&plan, &order(), None).await.unwrap();
        assert_eq!(a.calls.load(Ordering::Relaxed), 2);
        // Known and unchanged versions: the question comes from the cache (stored under the
        // versions the agents answered with).
        for r in ["24", "25"] {
            s.set_versions(r, Some(AgentVersions { data_version: "d1".into(), policy_version: "p1".into(), requesters_by_name: false, data_years: None }));
        }
        let (cached, first) = s.run(&plan, &order(), None).await.unwrap();
        assert!(cached.meta.cached && first.is_some());
        assert_eq!(a.calls.load(Ordering::Relaxed), 2);
        // Other versions: a miss.
        s.set_versions("25", Some(AgentVersions { data_version: "d2".into(), policy_version: "p1".into(), requesters_by_name: false, data_years: None }));
        let (fresh, _) = s.run(&plan, &order(), None).await.unwrap();
        assert!(!fresh.meta.cached);
        assert_eq!(a.calls.load(Ordering::Relaxed), 3);
    }

    /// The cache serves a requester only what they were answered themselves; questions past
    /// the cache count against the requester's limit, refused openly beyond it.
    #[tokio::test]
    async fn the_cache_is_per_requester_and_uncached_questions_are_limited() {
        let a = agent("24", vec![("female", 10, 50, false)], None);
        let agents: Vec<Arc<dyn AgentPort>> = vec![a.clone()];
        let settings = ServiceSettings { limits: LimitSettings { uncached_per_minute: 60, uncached_burst: 3 }, ..service().settings.clone() };
        let s = QueryService::new(Arc::new(Catalog::embedded()), settings);
        s.set_versions("24", Some(AgentVersions { data_version: "d1".into(), policy_version: "p1".into(), requesters_by_name: false, data_years: None }));
        let bob = Requester { cn: "bob".into(), subject: "CN=bob".into(), fingerprint: "sha256:bob".into(), role: Role::Analyst };
        let s = &s;
        let ask = |who: Requester, q: IndicatorQuery| {
            let plan = s.plan(q, who, &agents, None).unwrap();
            async move { s.run(&plan, &order(), None).await.map(|(c, _)| c.meta.cached) }
        };
        assert_eq!(ask(requester(), question(&[])).await.unwrap(), false);
        assert_eq!(ask(requester(), question(&[])).await.unwrap(), true, "a requester's repeat is cached");
        assert_eq!(ask(bob.clone(), question(&[])).await.unwrap(), false, "another requester's answer is not served to bob");
        assert_eq!(ask(bob.clone(), question(&[])).await.unwrap(), true);
        assert_eq!(a.calls.load(Ordering::Relaxed), 2);
        // The analyst has used one of three; two more uncached questions, then a refusal.
        let mut fresh = question(&[]);
        fresh.options.no_cache = true;
        ask(requester(), fresh.clone()).await.unwrap();
        ask(requester(), fresh.clone()).await.unwrap();
        let e = ask(requester(), fresh.clone()).await.unwrap_err();
        assert!(matches!(e, NodeError::RateLimited { retry_after_s: 1, .. }), "{e}");
        assert_eq!(e.to_status().code(), tonic::Code::ResourceExhausted);
        assert!(e.to_string().contains("3") && e.to_string().contains("ask again in 1 s"), "{e}");
        assert_eq!(a.calls.load(Ordering::Relaxed), 4, "the refused question asked no agent");
        // Cached answers are still served, and bob has his own bucket.
        assert_eq!(ask(requester(), question(&[])).await.unwrap(), true);
        ask(bob, fresh).await.unwrap();
    }

    #[tokio::test]
    async fn a_policy_refusal_is_its_own_region_state_and_named_regions_are_resolved_once() {
        let a = agent("24", vec![("female", 10, 50, false)], None);
        let b = agent("25", vec![], Some(ErrorKind::PolicyRefused));
        let agents: Vec<Arc<dyn AgentPort>> = vec![a.clone(), b.clone()];
        let s = service();
        let (c, _) = s.run(&s.plan(question(&[]), requester(), &agents, None).unwrap(), &order(), None).await.unwrap();
        assert!(c.meta.partial);
        assert_eq!(c.regions.iter().find(|r| r.region == "25").unwrap().status, RegionState::PolicyRefused);
        let only = s.plan(question(&["Norrbotten"]), requester(), &agents, None).unwrap();
        assert_eq!(only.regions(), ["25"]);
        assert!(matches!(s.plan(question(&["Atlantis"]), requester(), &agents, None), Err(NodeError::Query(QueryError::UnknownRegion { .. }))));
        // Every region calling the question malformed makes it the requester's error.
        let bad: Vec<Arc<dyn AgentPort>> = vec![agent("24", vec![], Some(ErrorKind::Invalid)), agent("25", vec![], Some(ErrorKind::NotFound))];
        let e = s.run(&s.plan(question(&[]), requester(), &bad, None).unwrap(), &order(), None).await.unwrap_err();
        assert!(e.to_string().contains("every region rejected"), "{e}");
    }
}
