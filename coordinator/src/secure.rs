//! Pooled totals by a secure sum between the agents (docs/secure-aggregation.md): every
//! agent sends its masked vector over the question's canonical cell list; the masks cancel
//! in the sum, so the coordinator learns each pooled total (and the union's cell keys) and
//! never a region's part. The federation's policy then decides and perturbs each total as a
//! central agent holding every unit would ([`norrsken_agent::disclosure::pooled`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use norrsken_agent::disclosure::policy::Policy;
use norrsken_agent::disclosure::pooled::{release_pooled, PooledRelease, PooledTotal};
use norrsken_agent::disclosure::ptable::PTable;
use norrsken_agent::engine::cells::RawCell;
use norrsken_model::answer::Reason;
use norrsken_model::catalog::Kind;
use norrsken_model::query::{Perspective, ValidatedQuery};
use norrsken_model::secure::{add_into, from_bytes, signed, SumCell, Word, SUM_SCALE, WORDS};
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
    pub fn load(s: &SecureSumSettings) -> Result<Federation, String> {
        let policy = match &s.policy {
            Some(p) => Policy::load(p).map_err(|e| format!("[secure_sum] policy: {e}"))?,
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
pub fn unmask(vectors: &[Vec<u8>], cells: usize) -> Result<Vec<u64>, String> {
    let mut total = vec![0u64; cells * WORDS];
    for bytes in vectors {
        let v = from_bytes(bytes)?;
        if v.len() != total.len() {
            return Err(format!("a masked vector has {} words; the question's {cells} cells need {}", v.len(), total.len()));
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

/// Decides every pooled cell of a question from the summed words.
///
/// Provider perspective: each cell is a pooled row whose parts (the regions' cells) are
/// released beside it. Population perspective: each home region's cell is released on its
/// total alone (its parts at the agents are never released), and the pooled row over the
/// home regions treats them as its parts.
pub fn decide(v: &ValidatedQuery, cells: &[SumCell], total: &[u64], fed: &Federation) -> Decisions {
    let kind = v.recipe.kind;
    let k = fed.policy.min_cell_size.max(v.options.min_cell_size.unwrap_or(0));
    let decide = |t: &PooledTotal, parts_released: bool| release_pooled(kind, t, &fed.policy, k, fed.ptable.as_ref(), parts_released);
    let mut out = Decisions::new();
    let mut pooled: BTreeMap<(Vec<String>, Option<String>), PooledTotal> = BTreeMap::new();
    for (i, cell) in cells.iter().enumerate() {
        let w = &total[i * WORDS..(i + 1) * WORDS];
        match v.options.perspective {
            Perspective::Provider => {
                out.insert(cell.clone(), decide(&total_of(w, "", cell), true));
            }
            Perspective::Population => {
                let home = total_of(w, cell.region.as_deref().unwrap_or(""), cell);
                let release = decide(&home, false);
                let p = pooled.entry((cell.labels.clone(), cell.category.clone())).or_insert_with(|| PooledTotal {
                    raw: RawCell::empty("", cell.labels.clone(), cell.category.clone()),
                    keys: [0; 6],
                    withheld: 0,
                    withheld_num: (0, 0),
                    withheld_den: (0, 0),
                });
                add_part(p, &home, kind, matches!(release, PooledRelease::Withheld(_)));
                out.insert(cell.clone(), release);
            }
        }
    }
    for ((labels, category), t) in pooled {
        out.insert(SumCell { region: None, labels, category }, decide(&t, true));
    }
    out
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

/// Why a pooled cell is withheld, in the vocabulary's reason codes.
pub fn reason_names(reasons: &[Reason]) -> Vec<String> {
    reasons.iter().map(|r| r.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;
    use norrsken_model::secure::{cell_list, word};

    #[test]
    fn home_totals_are_released_on_their_own_and_the_pooled_row_protects_them() {
        let (q, _) = IndicatorQuery::decode_ticket(br#"{"indicator":"stroke_reperfusion","period":"2024","options":{"perspective":"population"}}"#).unwrap();
        let v = q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap();
        let participants: Vec<String> = vec!["22".into(), "23".into()];
        let cells = cell_list(&v, &participants).unwrap();
        assert_eq!(cells.len(), 2);
        // Home 22: 200 patients, 80 treated; home 23: 3 patients, 1 treated.
        let mut total = vec![0u64; 2 * WORDS];
        for (i, (units, num)) in [(200, 80), (3, 1)].into_iter().enumerate() {
            total[i * WORDS + Word::Units as usize] = word(units);
            total[i * WORDS + Word::Persons as usize] = word(units);
            total[i * WORDS + Word::Numerator as usize] = word(num);
            total[i * WORDS + Word::NumeratorPersons as usize] = word(num);
        }
        let mut policy = Policy::development(None);
        policy.perturbation.enabled = false;
        let fed = Federation { policy, ptable: None };
        let d = decide(&v, &cells, &total, &fed);
        assert!(matches!(d[&cells[0]], PooledRelease::Released { numerator: Some(80), denominator: Some(200), .. }));
        assert!(matches!(&d[&cells[1]], PooledRelease::Withheld(r) if r.contains(&Reason::BelowMinCell)));
        // The pooled row would give home 23 away as pooled minus home 22.
        let pooled = SumCell { region: None, labels: vec![], category: None };
        assert_eq!(d[&pooled], PooledRelease::Withheld(vec![Reason::PooledProtection]));
        assert!(unmask(&[vec![0u8; 8]], 2).is_err());
    }
}
