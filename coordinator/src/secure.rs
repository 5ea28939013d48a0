//! Pooled totals by a secure sum between the agents (docs/secure-aggregation.md): every
//! agent sends its masked vector over the question's canonical cell list; the masks cancel
//! in the sum, so the coordinator learns each pooled total (and the union's cell keys) and
//! never a region's part. The federation's policy then decides and perturbs each total as a
//! central agent holding every unit would ([`norrsken_agent::disclosure::pooled`]).

use std::collections::HashMap;
use std::path::PathBuf;

use norrsken_agent::disclosure::canonical::Canonical;
use norrsken_agent::disclosure::derived::question_labels;
use norrsken_agent::disclosure::lattice::{self, Decision, Key, Lattice, Plan, Rules};
use norrsken_agent::disclosure::policy::{Policy, PolicyError};
use norrsken_agent::disclosure::pooled::{release_pooled, withheld_parts_protected, PooledRelease, PooledTotal};
use norrsken_agent::disclosure::ptable::PTable;
use norrsken_agent::engine::cells::RawCell;
use norrsken_model::answer::Reason;
use norrsken_model::breakdown::TOTAL;
use norrsken_model::catalog::{Kind, Unit};
use norrsken_model::query::{Perspective, ValidatedQuery};
use norrsken_model::secure::{add_into, from_bytes, signed, SecureError, SumCell, Word, SUM_SCALE, WORDS};
use serde::{Deserialize, Serialize};

/// `[secure_sum]` of the coordinator's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecureSumSettings {
    /// Pooled cells (and home regions' cells in the population perspective) by secure sums
    /// between the agents; every agent needs its own `[secure_sum]`.
    #[serde(default)]
    pub enabled: bool,
    /// The federation's disclosure policy for pooled totals (the agent policy format:
    /// `min_cell_size`, `[perturbation]` D, V, js, magnitude, dominance); default k = 5 and
    /// the cell key method with D = 2, V = 1.
    #[serde(default)]
    pub policy: Option<PathBuf>,
}

/// What the coordinator applies to pooled totals.
#[derive(Debug)]
pub struct Federation {
    pub policy: Policy,
    pub ptable: Option<PTable>,
}

impl Federation {
    pub fn load(s: &SecureSumSettings) -> Result<Federation, PolicyError> {
        let policy = match &s.policy {
            Some(p) => Policy::load(p)?,
            None => {
                // k = 5 and the cell key method (the union's keys need no secret).
                let mut p = Policy::development(None);
                p.version = "federation-default".into();
                p.perturbation.enabled = true;
                p
            }
        };
        let p = &policy.perturbation;
        let ptable = p.enabled.then(|| PTable::new(p.max_deviation, p.variance, policy.js()));
        Ok(Federation { policy, ptable })
    }
}

/// The decisions on a question's pooled cells: by cell (home region included in the
/// population perspective; `region: None` is the pooled row).
pub type Decisions = HashMap<SumCell, PooledRelease>;

/// The sum of the agents' masked vectors, checked for length.
pub fn unmask(vectors: &[Vec<u8>], cells: usize) -> Result<Vec<u64>, SecureError> {
    let mut total = vec![0u64; cells * WORDS];
    for bytes in vectors {
        let v = from_bytes(bytes)?;
        if v.len() != total.len() {
            return Err(SecureError::WrongLength { got: v.len(), cells, expected: total.len() });
        }
        add_into(&mut total, &v);
    }
    Ok(total)
}

/// The pooled total of one cell from its summed words.
fn total_of(w: &[u64], region: &str, cell: &SumCell) -> PooledTotal {
    let i = |x: Word| signed(w[x as usize]);
    let f = |x: Word, scale: f64| signed(w[x as usize]) as f64 / scale;
    let key = |x: Word| (w[x as usize] % (1 << 32)) as u32;
    PooledTotal {
        raw: RawCell {
            units: i(Word::Units),
            persons: i(Word::Persons),
            numerator: i(Word::Numerator),
            numerator_persons: i(Word::NumeratorPersons),
            population: i(Word::Population),
            value_sum: f(Word::ValueSum, SUM_SCALE),
            value_sum_sq: f(Word::ValueSumSq, 1.0),
            person_sum_sq: f(Word::PersonSumSq, 1.0),
            top1: f(Word::Top12, SUM_SCALE),
            ..RawCell::empty(region, cell.labels.clone(), cell.category.clone())
        },
        keys: [Word::KeyUnits, Word::KeyNumerator, Word::KeyPopulation, Word::KeyPersons, Word::KeySum, Word::KeySpread].map(key),
        withheld: i(Word::Withheld) as u32,
        withheld_num: (i(Word::WithheldNum), i(Word::WithheldNumSq)),
        withheld_den: (i(Word::WithheldDen), i(Word::WithheldDenSq)),
    }
}

/// The question's lattice, as the coordinator decides it over secure totals: the plan (the
/// agents' own [`Plan`]) and each lattice query with its margins.
pub struct SecurePlan {
    pub plan: Plan,
    pub queries: Vec<ValidatedQuery>,
}

/// The plan of a question's secure sums: its lattice queries (with every margin), or None
/// for a question whose cells are not lattice cells (spans of years that are not the whole
/// data period, groups of filter values: those keep the rule of released parts).
pub fn secure_plan(v: &ValidatedQuery, data_years: (i32, i32)) -> Option<SecurePlan> {
    // A cohort's measures are answered slice by slice by each agent (see the agent's
    // service); their secure sum is not built: they keep the rule of released parts.
    if v.recipe.cohort.is_some() {
        return None;
    }
    let canonical = Canonical::of(v);
    let plan = Plan::of(&canonical.query, data_years).ok()?;
    // Quarters and months need a lattice query by year and quarter (or month) together,
    // which no question can ask of an agent yet: those keep the rule of released parts.
    if plan.derived() || plan.depth >= 2 {
        return None;
    }
    let queries = plan
        .lattice_queries()
        .into_iter()
        .enumerate()
        .map(|(i, mut q)| {
            q.options.totals = true;
            q.query_id = format!("{}-lattice-{i}", v.query_id);
            q
        })
        .collect();
    Some(SecurePlan { plan, queries })
}

/// Decides every pooled cell of a question as a central agent would decide its own lattice,
/// over the secure totals of the lattice queries (`totals[i]` summed over
/// `cells[i]`): primary rules (R1), the regions' withheld parts (R2, as cells withheld
/// from the start), then implied cells and secondary suppression along every line of the
/// lattice, so that no withheld total can be computed from released ones; then the cell key
/// method with the union's keys.
///
/// Provider perspective: one lattice of pooled totals (R2 against the regions' released
/// parts). Population perspective: each home region's lattice on its totals alone (its parts
/// are never released), then the pooled row's lattice over the home regions, R2 against
/// the home regions' decisions.
pub fn decide(v: &ValidatedQuery, sp: &SecurePlan, cells: &[Vec<SumCell>], totals: &[Vec<u64>], fed: &Federation) -> Result<Decisions, SecureError> {
    let kind = v.recipe.kind;
    let k = fed.policy.min_cell_size.max(v.options.min_cell_size.unwrap_or(0));
    let population = v.options.perspective == Perspective::Population;
    let mut policy = fed.policy.clone();
    policy.perturbation.enabled = false;
    let rules = Rules { kind, distribution: v.recipe.is_distribution(), policy: &policy, k, persons: v.recipe.unit == Unit::Person };
    // The totals of every lattice cell, by (region, question labels of the lattice query, category).
    let mut tables: Vec<Vec<RawCell>> = Vec::new();
    let mut by_key: HashMap<Key, PooledTotal> = HashMap::new();
    for (i, (cells, total)) in cells.iter().zip(totals).enumerate() {
        let time = if i == 0 { sp.plan.depth.min(1) } else { sp.plan.depth };
        let mut table = Vec::new();
        for (j, cell) in cells.iter().enumerate() {
            let t = total_of(&total[j * WORDS..(j + 1) * WORDS], cell.region.as_deref().unwrap_or(""), cell);
            let c = &t.raw;
            if c.units == 0 && c.persons == 0 && c.population == 0 && c.numerator == 0 {
                continue;
            }
            let mut labels: Vec<String> = c.labels[..time].to_vec();
            labels.resize(3, TOTAL.to_string());
            labels.extend(c.labels[time..].iter().cloned());
            by_key.insert((c.region.clone(), labels, c.category.clone()), t.clone());
            table.push(t.raw.clone());
        }
        tables.push(table);
    }
    let failed = |e: norrsken_agent::disclosure::DisclosureError| SecureError::Decision(e.to_string());
    let lattice = Lattice::from_evaluations(&sp.plan, &tables).with_empty_siblings(&rules);
    // R2 where the parts are released: a withheld part the total would give away.
    let forced = |lattice: &Lattice, totals: &HashMap<Key, PooledTotal>| -> HashMap<Key, Decision> {
        lattice
            .cells
            .keys()
            .filter_map(|key| {
                let t = totals.get(key)?;
                (t.withheld > 0 && !withheld_parts_protected(kind, t, k))
                    .then(|| (key.clone(), Decision { withheld: true, reasons: [Reason::PooledProtection].into_iter().collect() }))
            })
            .collect()
    };
    let mut decided = if population {
        lattice::decide(&lattice, &rules, &HashMap::new()).map_err(failed)?
    } else {
        lattice::decide(&lattice, &rules, &forced(&lattice, &by_key)).map_err(failed)?
    };
    if population {
        // The pooled row over the home regions: their totals added, each home region's
        // decision as a part (withheld parts and their squares).
        let mut pooled: HashMap<Key, PooledTotal> = HashMap::new();
        for (key, t) in &by_key {
            let p = pooled.entry((String::new(), key.1.clone(), key.2.clone())).or_insert_with(|| PooledTotal {
                raw: RawCell::empty("", key.1.clone(), key.2.clone()),
                keys: [0; 6],
                withheld: 0,
                withheld_num: (0, 0),
                withheld_den: (0, 0),
            });
            add_part(p, t, kind, decided.get(key).is_some_and(|d| d.withheld));
        }
        let pooled_lattice = Lattice { cells: pooled.iter().map(|(key, t)| (key.clone(), t.raw.clone())).collect() }.with_empty_siblings(&rules);
        let d = lattice::decide(&pooled_lattice, &rules, &forced(&pooled_lattice, &pooled)).map_err(failed)?;
        decided.extend(d);
        by_key.extend(pooled);
    }
    // Every question cell from its lattice cell.
    let canonical = Canonical::of(v);
    let order: Vec<usize> = v.breakdowns.iter().map(|b| canonical.query.breakdowns.iter().position(|c| c == b).unwrap_or(0)).collect();
    let mut out = Decisions::new();
    for (key, decision) in &decided {
        let Some(t) = by_key.get(key) else { continue };
        for labels in question_labels(&sp.plan, key) {
            let asked: Vec<String> = order.iter().map(|&i| labels.get(i).cloned().unwrap_or_default()).collect();
            let region = if key.0.is_empty() { None } else { Some(key.0.clone()) };
            let cell = SumCell { region, labels: asked, category: key.2.clone() };
            let release = if decision.withheld {
                PooledRelease::Withheld(decision.reasons.iter().copied().collect())
            } else {
                // Decided released: perturbed with the union's keys (R1 and R2 hold).
                release_pooled(kind, t, &fed.policy, k, fed.ptable.as_ref(), false)
            };
            out.insert(cell, release);
        }
    }
    Ok(out)
}

/// Adds a home region's total to the pooled row over home regions.
fn add_part(p: &mut PooledTotal, part: &PooledTotal, kind: Kind, withheld: bool) {
    let (a, b) = (&mut p.raw, &part.raw);
    a.units += b.units;
    a.persons += b.persons;
    a.numerator += b.numerator;
    a.numerator_persons += b.numerator_persons;
    a.population += b.population;
    a.value_sum += b.value_sum;
    a.value_sum_sq += b.value_sum_sq;
    a.person_sum_sq += b.person_sum_sq;
    a.top1 += b.top1;
    for (k, x) in p.keys.iter_mut().zip(part.keys) {
        *k = k.wrapping_add(x);
    }
    if withheld {
        let (num, den, _, _) = norrsken_agent::disclosure::components(kind, &part.raw);
        let (n, d) = (num.unwrap_or(0), den.unwrap_or(0));
        p.withheld += 1;
        p.withheld_num = (p.withheld_num.0 + n, p.withheld_num.1 + n * n);
        p.withheld_den = (p.withheld_den.0 + d, p.withheld_den.1 + d * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    fn v(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    #[test]
    fn lattice_questions_are_secure_summed_with_their_margins_and_spans_are_not() {
        let sp = secure_plan(&v(r#"{"query_id":"q","indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2024"}"#), (2021, 2025)).unwrap();
        assert_eq!(sp.queries.len(), 1);
        assert!(sp.queries[0].options.totals && sp.queries[0].query_id == "q-lattice-0");
        // By year over the whole data period, and sex: 6 time prefixes × 3 sex values.
        let cells = norrsken_model::secure::cell_list(&sp.queries[0], &["22".into()]).unwrap();
        assert_eq!(cells.len(), 6 * 3);
        assert!(secure_plan(&v(r#"{"indicator":"stroke_reperfusion","period":"2022..2023"}"#), (2021, 2025)).is_none());
        assert!(secure_plan(&v(r#"{"indicator":"hip_fracture_surgery_24h","breakdowns":["quarter"],"period":"2023"}"#), (2021, 2025)).is_none());
        assert!(unmask(&[vec![0u8; 8]], 2).is_err());
    }
}
