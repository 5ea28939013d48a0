//! The agent's query service: the one path from a relayed question to a protected answer,
//! in the order of the disclosure pipeline (docs/disclosure-control.md):
//!
//! 1. the question must be relayed by a coordinator and name its requester;
//! 2. its canonical form ([`crate::disclosure::canonical`]) is admitted by the region's
//!    policy, which sets the minimum cell sizes;
//! 3. it is placed in the lattice ([`crate::disclosure::lattice::Plan`]) and the lattice
//!    cells it needs are evaluated by the engine;
//! 4. disclosure control decides every cell and releases the question's
//!    ([`crate::disclosure::protect`]);
//! 5. the release is recorded in the ledger, which refuses the whole question when the
//!    requester's budget would be exceeded; then the answer leaves.
//!
//! The answer depends on the canonical question, the data version and the policy only: a
//! repeated question is answered from the cache (the same answer, noise included) and
//! recorded again for its requester.

use std::sync::Arc;

use norrsken_model::answer::{AnswerMeta, RegionAnswer};
use norrsken_common::cache::{key as cache_key, query_key, AnswerCache, CacheSettings, Weighed};
use norrsken_model::breakdown::Breakdown;
use norrsken_model::catalog::Unit;
use norrsken_common::error::NodeError;
use norrsken_model::geography::Region;
use norrsken_model::query::{QueryError, Relay, ValidatedQuery};

use crate::disclosure::boxes::Space;
use crate::disclosure::canonical::Canonical;
use crate::disclosure::lattice::Plan;
use crate::disclosure::ledger::{release_of, Entry, Ledger, RecordError, Release};
use crate::disclosure::protection::Protection;
use crate::disclosure::{decide_lattice, protect, DecidedLattice, Evaluations, Settings};
use crate::engine::{Engine, RawCell};

/// What one request reads, taken once: the engine over the data in force and the policy
/// in force. Validation, admission, evaluation, protection and the audit record all use
/// the same snapshot, so a reload during a request cannot split it.
#[derive(Clone)]
pub struct Snapshot {
    pub engine: Arc<Engine>,
    pub protection: Arc<Protection>,
}

/// A protected answer kept for repeated questions, with what the ledger records of it.
#[derive(Clone)]
pub struct CachedAnswer {
    pub answer: RegionAnswer,
    pub release: Release,
}

impl Weighed for CachedAnswer {
    fn weight(&self) -> u32 {
        self.answer.weight().saturating_add((self.release.cells.len() as u32).saturating_mul(100))
    }
}

/// The name the ledger and its budget know a relayed requester by.
pub fn requester_of(relay: &Relay) -> String {
    if relay.requester_fingerprint.is_empty() {
        relay.requester_subject.clone()
    } else {
        format!("{} ({})", relay.requester_subject, relay.requester_fingerprint)
    }
}

/// Evaluates what a plan needs besides its lattice.
pub async fn evaluate(engine: &Engine, plan: &Plan) -> Result<Evaluations, NodeError> {
    let mut ev = Evaluations::default();
    if plan.derived() {
        ev.derived = Some(engine.evaluate(&plan.derived_query()).await?.cells);
        if plan.question.recipe.unit == Unit::Person {
            for q in plan.partner_queries() {
                ev.partners.push(engine.evaluate(&q).await?.cells);
            }
        }
    }
    Ok(ev)
}

/// Evaluates a plan's lattice.
pub async fn evaluate_lattice(engine: &Engine, plan: &Plan) -> Result<Vec<Vec<RawCell>>, NodeError> {
    let mut out = Vec::new();
    for q in plan.lattice_queries() {
        out.push(engine.evaluate(&q).await?.cells);
    }
    Ok(out)
}

/// The agent's query service: its answer cache and release ledger.
pub struct QueryService {
    region: &'static Region,
    /// Answers to repeated questions (in canonical form, with what the ledger records of
    /// them), keyed by query, data version, policy version and k.
    cache: AnswerCache<CachedAnswer>,
    /// What this agent released to whom (see docs/disclosure-control.md).
    ledger: Ledger,
    catalog_hash: String,
    /// Decided lattices, by data version, policy version, sizes and lattice: a question with
    /// the same breakdowns (over another period, or broken down by year) needs no
    /// evaluation or decision again.
    lattices: AnswerCache<DecidedLattice>,
}

impl QueryService {
    pub fn new(region: &'static Region, settings: &CacheSettings, ledger: Ledger, catalog_hash: String) -> QueryService {
        QueryService { region, cache: AnswerCache::new(settings), ledger, catalog_hash, lattices: AnswerCache::new(settings) }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn cache_len(&self) -> u64 {
        self.cache.len()
    }

    pub fn clear_cache(&self) {
        self.cache.clear();
        self.lattices.clear();
    }

    /// An answer's metadata: where it came from.
    pub fn meta(&self, v: &ValidatedQuery, engine: &Engine, policy_version: &str, k: u32) -> AnswerMeta {
        AnswerMeta {
            query_id: v.query_id.clone(),
            region: self.region.code.to_string(),
            data_version: engine.data_version().to_string(),
            policy_version: policy_version.to_string(),
            recipe: v.recipe.key(),
            recipe_hash: v.recipe.hash.clone(),
            catalog_hash: self.catalog_hash.clone(),
            kind: v.recipe.kind.name().to_string(),
            perspective: v.options.perspective.name().to_string(),
            period: v.period.to_string(),
            min_cell_size: k,
            dry_run: v.options.dry_run,
            followup_through: v.censored_through().map(|d| d.to_string()),
        }
    }

    /// Answers one relayed question (see the module documentation). Returns the answer
    /// and, when it came from the cache, the query id it was first computed for.
    pub async fn answer(&self, snapshot: &Snapshot, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<(RegionAnswer, Option<String>), NodeError> {
        self.answer_recording(snapshot, v, relay, true).await
    }

    /// The answer a question gets, without recording a release: what the agent withholds of
    /// its own part, for a secure sum (which releases no part).
    pub async fn statuses(&self, snapshot: &Snapshot, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<RegionAnswer, NodeError> {
        Ok(self.answer_recording(snapshot, v, relay, false).await?.0)
    }

    async fn answer_recording(&self, snapshot: &Snapshot, v: &ValidatedQuery, relay: Option<&Relay>, recording: bool) -> Result<(RegionAnswer, Option<String>), NodeError> {
        let region = self.region.code;
        let relay = relay.ok_or_else(|| {
            NodeError::PermissionDenied(format!(
                "region {region} answers only questions relayed by a coordinator that name their requester (a protobuf ticket with a relay block)"
            ))
        })?;
        if let Some(at) = v.breakdowns.iter().position(|b| *b == Breakdown::Measure) {
            return Box::pin(self.answer_by_measure(snapshot, v, relay, recording, at)).await;
        }
        let canonical = Canonical::of(v);
        let cq = &canonical.query;
        let protection = &snapshot.protection;
        let policy = &protection.policy;
        let admission = policy.admit(cq, Some(relay)).map_err(|r| NodeError::PolicyRefused(r.to_string()))?;
        let engine = &snapshot.engine;
        let data_version = engine.data_version().to_string();
        let requester = requester_of(relay);
        let record = |release: &Release| -> Result<(), NodeError> {
            if !policy.ledger.enabled || !recording {
                return Ok(());
            }
            let entry = Entry { requester: &requester, query_id: &v.query_id, question: cq, data_version: &data_version, dry_run: v.options.dry_run };
            match self.ledger.record(&entry, release, Some(policy.ledger.budget_cells)) {
                Ok(_) => Ok(()),
                Err(e @ RecordError::Budget { .. }) => Err(NodeError::PolicyRefused(e.to_string())),
                Err(RecordError::Ledger(e)) => Err(NodeError::DisclosureFailed(e.to_string())),
            }
        };
        let key = cache_key(&[&data_version, &policy.version, &admission.k.to_string(), &query_key(cq)]);
        if !v.options.no_cache {
            if let Some(hit) = self.cache.get(&key) {
                record(&hit.release)?;
                let mut answer = hit.answer.clone();
                answer.cells = canonical.restore(answer.cells);
                answer.breakdowns = canonical.asked_breakdowns();
                let first = std::mem::replace(&mut answer.meta.query_id, v.query_id.clone());
                return Ok((answer, Some(first)));
            }
        }
        let plan = Plan::of(cq, engine.data_years()).map_err(|e| NodeError::Query(QueryError::Invalid { field: "period", message: e.to_string() }))?;
        let settings = Settings { policy, admission, ptable: protection.ptable.as_ref(), keyer: protection.keyer.as_deref(), data_end: engine.data_end() };
        let failed = |e: crate::disclosure::DisclosureError| NodeError::DisclosureFailed(e.to_string());
        let lattice_key = cache_key(&[&data_version, &policy.version, &admission.floor.to_string(), &admission.k.to_string(), &plan.lattice_key()]);
        let decided = match self.lattices.get(&lattice_key).filter(|_| !v.options.no_cache) {
            Some(d) => d,
            None => {
                let evaluations = evaluate_lattice(engine, &plan).await?;
                let d = Arc::new(decide_lattice(&plan, &evaluations, &settings).map_err(failed)?);
                self.lattices.insert(lattice_key, d.clone());
                d
            }
        };
        let ev = evaluate(engine, &plan).await?;
        let released = protect(&plan, &decided, &ev, &settings).map_err(failed)?;
        let release = release_of(&Space::of(&cq.recipe), cq, released.ledger).map_err(|e| NodeError::DisclosureFailed(e.to_string()))?;
        record(&release)?;
        let answer = RegionAnswer {
            meta: self.meta(cq, engine, &policy.version, admission.k),
            breakdowns: cq.breakdowns.clone(),
            distribution: cq.recipe.is_distribution(),
            cells: released.cells,
        };
        self.cache.insert(key, Arc::new(CachedAnswer { answer: answer.clone(), release }));
        let mut answer = answer;
        answer.cells = canonical.restore(answer.cells);
        answer.breakdowns = canonical.asked_breakdowns();
        Ok((answer, None))
    }

    /// A cohort question by measure (before, after, change) is three questions, one per
    /// measure, each decided on its own: the measures are the same persons seen in three
    /// windows, so their cells have the same counts and record keys and get the same
    /// decisions, and no margin adds them up (a sum over measures would only show the same
    /// persons three times). The answer stacks the three, labelled, in the asked order.
    async fn answer_by_measure(&self, snapshot: &Snapshot, v: &ValidatedQuery, relay: &Relay, recording: bool, at: usize) -> Result<(RegionAnswer, Option<String>), NodeError> {
        let mut answer: Option<RegionAnswer> = None;
        let mut first_cached = None;
        for measure in norrsken_model::cdm::MEASURES {
            let mut slice = v.clone();
            slice.breakdowns.remove(at);
            slice.filters.insert(Breakdown::Measure, [measure.to_string()].into_iter().collect());
            let (part, cached) = Box::pin(self.answer_recording(snapshot, &slice, Some(relay), recording)).await?;
            first_cached = first_cached.or(cached);
            let cells = part.cells.into_iter().map(|mut c| {
                c.labels.insert(at.min(c.labels.len()), measure.to_string());
                c
            });
            match answer.as_mut() {
                Some(a) => a.cells.extend(cells),
                None => {
                    let mut a = RegionAnswer { cells: cells.collect(), ..part };
                    a.breakdowns = v.breakdowns.clone();
                    answer = Some(a);
                }
            }
        }
        let answer = answer.ok_or_else(|| NodeError::Internal("a cohort question without measures".into()))?;
        Ok((answer, first_cached))
    }
}
