//! Disclosure control: what an agent may release of the engine's raw cells.
//!
//! An answer is a function of the question's canonical form, the data version and the
//! region's policy only, never of what anyone asked before (docs/disclosure-control.md).
//! The pipeline, one stage per file:
//!
//! 1. [`canonical`]: one spelling for every way of asking the same table;
//! 2. [`primary`]: cells with 1..k-1 persons, small complements, dominated sums, zeros;
//! 3. [`implied`]: the difference between a cell and every larger cell it lies in is a cell
//!    too, under the same primary rules;
//! 4. [`secondary`]: no withheld cell may be computed from released ones along the lines of
//!    a table — applied over the [`lattice`] of every cell any question can name, coarsest
//!    first, so that each cell is decided once and the same in every question that shows it;
//!    periods of several years and filters naming several values are decided from the
//!    lattice cells they are made of ([`derived`]);
//! 5. [`perturb`]: the cell key method on every released count, unit count and sum;
//! 6. [`release`]: reasons, checked suggestions, follow-up windows, dry runs; age
//!    standardisation from released bands only ([`standardise`]);
//! 7. [`ledger`]: the record of what was released to whom, and the per-requester budget that
//!    refuses a whole question openly.
//!
//! Any inconsistency fails closed: the caller refuses to answer.

pub mod boxes;
pub mod canonical;
pub mod derived;
pub mod implied;
pub mod lattice;
pub mod ledger;
pub mod magnitude;
pub mod perturb;
pub mod policy;
pub mod pooled;
pub mod primary;
pub mod protection;
pub mod ptable;
pub mod record_key;
pub mod release;
pub mod secondary;
pub mod standardise;

use std::collections::HashMap;

use crate::engine::cells::RawCell;
use lattice::{Decision, Lattice, Plan, Rules};
pub use perturb::{components, released_components};
pub use policy::Admission;
use policy::Policy;
use ptable::PTable;
use record_key::RecordKeyer;
pub use release::{QuestionCell, Released};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DisclosureError(pub String);

/// What disclosure control needs besides the cells.
pub struct Settings<'a> {
    pub policy: &'a Policy,
    /// The minimum cell sizes: the region's floor and the one applied.
    pub admission: Admission,
    /// The perturbation table and record keyer when the cell key method is on.
    pub ptable: Option<&'a PTable>,
    pub keyer: Option<&'a RecordKeyer>,
    /// The last day the data covers (outcome windows past it are incomplete).
    pub data_end: chrono::NaiveDate,
}

/// The evaluations a [`Plan`] needs besides its lattice, done.
#[derive(Debug, Clone, Default)]
pub struct Evaluations {
    /// [`Plan::derived_query`], when the plan has spans or groups.
    pub derived: Option<Vec<RawCell>>,
    /// [`Plan::partner_queries`], in order (person-based recipes with spans or groups).
    pub partners: Vec<Vec<RawCell>>,
}

/// A lattice with every cell decided, at the region's floor and at the size applied. It
/// depends only on the recipe, the perspective, the lattice's dimensions, the data version,
/// the policy and the sizes, so the agent keeps it for every question of the same lattice
/// ([`Plan::lattice_key`]).
#[derive(Debug, Clone)]
pub struct DecidedLattice {
    pub lattice: Lattice,
    pub at_floor: HashMap<lattice::Key, Decision>,
    pub applied: HashMap<lattice::Key, Decision>,
}

impl norrsken_common::cache::Weighed for DecidedLattice {
    fn weight(&self) -> u32 {
        // About 400 bytes a cell with its two decisions.
        u32::try_from(self.lattice.cells.len().saturating_mul(400)).unwrap_or(u32::MAX)
    }
}

fn rules_for<'a>(plan: &Plan, s: &Settings<'a>, k: u32) -> Rules<'a> {
    let recipe = &plan.question.recipe;
    Rules { kind: recipe.kind, distribution: recipe.is_distribution(), policy: s.policy, k, persons: recipe.unit == norrsken_model::catalog::Unit::Person }
}

/// Decides every cell of a plan's lattice from its evaluations ([`Plan::lattice_queries`],
/// in order).
pub fn decide_lattice(plan: &Plan, evaluations: &[Vec<RawCell>], s: &Settings<'_>) -> Result<DecidedLattice, DisclosureError> {
    if s.policy.perturbation.enabled && (s.ptable.is_none() || s.keyer.is_none()) {
        return Err(DisclosureError("perturbation is on but its table or record keys are not available".into()));
    }
    let (floor, k) = (s.admission.floor, s.admission.k);
    let floor_lattice = Lattice::from_evaluations(plan, evaluations).with_empty_siblings(&rules_for(plan, s, floor));
    let at_floor = lattice::decide(&floor_lattice, &rules_for(plan, s, floor), &HashMap::new())?;
    let lattice = if k > floor { floor_lattice.with_empty_siblings(&rules_for(plan, s, k)) } else { floor_lattice };
    let applied = if k > floor { lattice::decide(&lattice, &rules_for(plan, s, k), &at_floor)? } else { at_floor.clone() };
    Ok(DecidedLattice { lattice, at_floor, applied })
}

/// Decides every cell of the question: at the region's floor and at the size applied.
pub fn decide(plan: &Plan, decided: &DecidedLattice, ev: &Evaluations, s: &Settings<'_>) -> Result<Vec<QuestionCell>, DisclosureError> {
    let recipe = &plan.question.recipe;
    if s.policy.perturbation.enabled && (s.ptable.is_none() || s.keyer.is_none()) {
        return Err(DisclosureError("perturbation is on but its table or record keys are not available".into()));
    }
    let (floor, k) = (s.admission.floor, s.admission.k);
    let rules = |k: u32| rules_for(plan, s, k);
    let DecidedLattice { lattice, at_floor, applied } = decided;
    let mut out = Vec::new();
    if plan.derived() {
        let evaluated = ev.derived.as_deref().ok_or_else(|| DisclosureError("a question with spans or groups was not evaluated".into()))?;
        let inputs = derived::Inputs { plan, lattice, decided: at_floor, cells: evaluated, partners: &ev.partners, unit: recipe.unit };
        let cells = &derived::question_cells(&inputs, &rules(k));
        let inputs = derived::Inputs { cells, ..inputs };
        let d_floor = derived::decide(&inputs, &rules(floor), &HashMap::new())?;
        let d_applied = if k > floor {
            derived::decide(&derived::Inputs { decided: applied, ..inputs }, &rules(k), &d_floor)?
        } else {
            d_floor.clone()
        };
        for c in cells {
            let key = (c.region.clone(), c.labels.clone(), c.category.clone());
            let get = |m: &HashMap<derived::QKey, Decision>| m.get(&key).cloned().ok_or_else(|| DisclosureError(format!("cell {:?} was not decided", c.labels)));
            out.push(QuestionCell { raw: c.clone(), floor: get(&d_floor)?, applied: get(&d_applied)? });
        }
    } else {
        for (key, raw) in &lattice.cells {
            for labels in derived::question_labels(plan, key) {
                let applied = applied.get(key).cloned().ok_or_else(|| DisclosureError(format!("cell {:?} was not decided", key.1)))?;
                // An empty cell added at a larger requested size is not the floor's.
                let floor = at_floor.get(key).cloned().unwrap_or_default();
                out.push(QuestionCell { raw: RawCell { labels, ..raw.clone() }, floor, applied });
            }
        }
    }
    Ok(out)
}

/// Decides and releases the question's cells: what the agent sends, and what its ledger
/// records.
pub fn protect(plan: &Plan, decided: &DecidedLattice, ev: &Evaluations, s: &Settings<'_>) -> Result<Released, DisclosureError> {
    let cells = decide(plan, decided, ev, s)?;
    let mut released = release::release(&plan.question, &cells, s)?;
    standardise::attach(&plan.question, s, &mut released.cells)?;
    Ok(released)
}
