//! What a secure sum between agents adds up: the canonical cell list of a question and the
//! layout of each cell's words (docs/secure-aggregation.md).
//!
//! Every agent of a run derives the same cell list from the question alone (the cross
//! product of each breakdown's values, the period's time blocks, the recipe's categories
//! and, in the population perspective, the participants' home regions), so no agent has to
//! say which cells it holds. Each cell is a fixed number of 64-bit words added modulo 2^64:
//! the counts, the sums in fixed point, the parts of the cell key, and the parts an agent
//! withholds in its own answer (for the release rules of the pooled total).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::breakdown::{Breakdown, TOTAL};
use crate::period::MonthIndex;
use crate::query::{Perspective, ValidatedQuery};

/// The largest cell list a secure sum runs over; a larger question is answered without it
/// (pooled cells then follow the rule of released parts).
pub const MAX_CELLS: usize = 100_000;

/// Fixed-point scale of sums (value sums and the two largest contributions): thousandths.
pub const SUM_SCALE: f64 = 1000.0;

/// Why a secure sum cannot be run or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    #[error("the question has {size} cells with its margins; a secure sum runs over at most {max}")]
    TooManyCells { size: usize, max: usize },
    #[error("a masked vector of {0} bytes is not a whole number of 64-bit words")]
    NotWords(usize),
    #[error("a masked vector has {got} words; the question's {cells} cells need {expected}")]
    WrongLength { got: usize, cells: usize, expected: usize },
    #[error("a region's masked vector: {0}")]
    Region(String),
    #[error("the secure totals could not be decided: {0}")]
    Decision(String),
}

/// One cell of a secure sum.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SumCell {
    /// The home region (population perspective); None when the cell adds every region.
    pub region: Option<String>,
    pub labels: Vec<String>,
    pub category: Option<String>,
}

/// The words of one cell, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Units = 0,
    Persons,
    Numerator,
    NumeratorPersons,
    Population,
    /// Value sum × [`SUM_SCALE`], rounded.
    ValueSum,
    /// Sum of squared values, rounded.
    ValueSumSq,
    /// Sum over persons of the squared person sums, rounded.
    PersonSumSq,
    /// The agent's largest plus second-largest contribution × [`SUM_SCALE`] (an upper bound
    /// of the union's two largest).
    Top12,
    /// Cell key parts (integers in [0, 2^32)): of the units, the numerator's units, the
    /// population, the persons; the sum's and the spread's streams.
    KeyUnits,
    KeyNumerator,
    KeyPopulation,
    KeyPersons,
    KeySum,
    KeySpread,
    /// 1 when the agent withholds its own part of the cell.
    Withheld,
    /// The agent's released-count components (numerator, denominator) when it withholds
    /// them, and their squares: the pooled total minus the released parts, and its
    /// largest single part, are bounded from these.
    WithheldNum,
    WithheldNumSq,
    WithheldDen,
    WithheldDenSq,
}

/// Words per cell.
pub const WORDS: usize = 20;

/// The canonical cell list of a question with the given participants (county codes): every
/// cell and every margin (`total` in any breakdown). Leading time breakdowns of a lattice
/// question (year, quarter, month) are nested: a quarter only within its year.
pub fn cell_list(q: &ValidatedQuery, participants: &[String]) -> Result<Vec<SumCell>, SecureError> {
    let time: Vec<Breakdown> = q.breakdowns.iter().copied().take_while(|b| b.time_grain().is_some()).collect();
    let nested = time.len() >= 2;
    // The leading time axes' label combinations.
    let mut labels: Vec<Vec<String>> = if nested {
        let mut prefixes = vec![vec![TOTAL.to_string(); time.len()]];
        for depth in 1..=time.len() {
            let mut seen = BTreeSet::new();
            for m in (q.period.first.0..=q.period.last.0).map(MonthIndex) {
                let mut p: Vec<String> = m.labels()[..depth].to_vec();
                p.resize(time.len(), TOTAL.to_string());
                if seen.insert(p.clone()) {
                    prefixes.push(p);
                }
            }
        }
        prefixes
    } else {
        vec![Vec::new()]
    };
    let rest = if nested { &q.breakdowns[time.len()..] } else { &q.breakdowns[..] };
    let mut axes: Vec<Vec<String>> = Vec::new();
    for b in rest {
        let mut values: Vec<String> = match b.time_grain() {
            Some(_) => time_labels(q, *b),
            None => match q.filters.get(b) {
                Some(f) => f.iter().cloned().collect(),
                None => b.allowed_values(&q.recipe.age_bands),
            },
        };
        values.push(TOTAL.to_string());
        axes.push(values);
    }
    let categories: Vec<Option<String>> =
        if q.recipe.is_distribution() { q.recipe.categories.iter().map(|c| Some(c.code.clone())).collect() } else { vec![None] };
    let regions: Vec<Option<String>> = match q.options.perspective {
        Perspective::Population => participants.iter().collect::<BTreeSet<_>>().into_iter().map(|r| Some(r.clone())).collect(),
        Perspective::Provider => vec![None],
    };
    let size = axes.iter().map(Vec::len).try_fold(labels.len() * regions.len() * categories.len(), |n, m| n.checked_mul(m)).unwrap_or(usize::MAX);
    if size > MAX_CELLS {
        return Err(SecureError::TooManyCells { size, max: MAX_CELLS });
    }
    for axis in &axes {
        labels = labels.into_iter().flat_map(|l| axis.iter().map(move |v| [l.clone(), vec![v.clone()]].concat())).collect();
    }
    let mut out = Vec::with_capacity(size);
    for region in &regions {
        for l in &labels {
            for c in &categories {
                out.push(SumCell { region: region.clone(), labels: l.clone(), category: c.clone() });
            }
        }
    }
    Ok(out)
}

/// The labels of a time breakdown over the question's period (`2024`, `2024Q2`, `2024-05`).
fn time_labels(q: &ValidatedQuery, b: Breakdown) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in (q.period.first.0..=q.period.last.0).map(MonthIndex) {
        let [year, quarter, month] = m.labels();
        let label = match b {
            Breakdown::Year => year,
            Breakdown::Quarter => quarter,
            _ => month,
        };
        if out.last() != Some(&label) {
            out.push(label);
        }
    }
    out
}

/// What binds a run's masks: the canonical question, the participants and the cell list.
/// Two runs with the same binding use the same masks; any difference gives unrelated ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Hash of the canonical question (hex).
    pub question: String,
    /// The participants' county codes, sorted.
    pub participants: Vec<String>,
    /// Hash of the cell list (hex).
    pub cells: String,
    pub words: usize,
}

impl Binding {
    pub fn new(question_json: &str, participants: &[String], cells: &[SumCell]) -> Binding {
        let mut p: Vec<String> = participants.to_vec();
        p.sort();
        p.dedup();
        let mut h = Sha256::new();
        for c in cells {
            h.update(format!("{:?}|{:?}|{:?}\n", c.region, c.labels, c.category).as_bytes());
        }
        Binding { question: hex::encode(Sha256::digest(question_json.as_bytes())), participants: p, cells: hex::encode(h.finalize()), words: cells.len() * WORDS }
    }

    /// The bytes a key derivation binds to.
    pub fn context(&self) -> Vec<u8> {
        format!("norrsken secure sum v1\nquestion {}\nparticipants {}\ncells {}\nwords {}", self.question, self.participants.join(","), self.cells, self.words).into_bytes()
    }

    /// The run's identity as an agent's run ledger keeps it: the question only (a second run
    /// of the same question with other participants is what the ledger refuses).
    pub fn run_key(&self) -> &str {
        &self.question
    }
}

/// Encodes a signed value as a word (two's complement).
pub fn word(x: i64) -> u64 {
    x as u64
}

/// Decodes a word that holds a sum of signed values.
pub fn signed(w: u64) -> i64 {
    w as i64
}

/// A fixed-point word of a sum.
pub fn fixed(x: f64, scale: f64) -> u64 {
    word((x * scale).round() as i64)
}

/// Adds vectors word by word modulo 2^64.
pub fn add_into(total: &mut [u64], v: &[u64]) {
    for (t, x) in total.iter_mut().zip(v) {
        *t = t.wrapping_add(*x);
    }
}

/// Words to bytes (little-endian) and back.
pub fn to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

pub fn from_bytes(bytes: &[u8]) -> Result<Vec<u64>, SecureError> {
    if bytes.len() % 8 != 0 {
        return Err(SecureError::NotWords(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::query::IndicatorQuery;

    fn q(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    #[test]
    fn the_cell_list_is_the_cross_product_of_the_questions_values() {
        let v = q(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex","year"],"period":"2023..2024"}"#);
        let cells = cell_list(&v, &["25".into(), "22".into()]).unwrap();
        // Two sexes and the total, two years and the total.
        assert_eq!(cells.len(), 3 * 3);
        assert!(cells.iter().all(|c| c.region.is_none()));
        assert_eq!(cells[0].labels, vec!["female".to_string(), "2023".to_string()]);
        assert_eq!(cells[2].labels, vec!["female".to_string(), TOTAL.to_string()]);
        // A lattice question's year and quarter are nested: the whole period, 1 year, 4 quarters.
        let mut v = q(r#"{"indicator":"stroke_reperfusion","breakdowns":["year"],"period":"2024"}"#);
        v.breakdowns = vec![Breakdown::Year, Breakdown::Quarter];
        let cells = cell_list(&v, &["22".into()]).unwrap();
        assert_eq!(cells.len(), 1 + 1 + 4);
        assert!(cells.iter().any(|c| c.labels == vec!["2024".to_string(), "2024Q3".to_string()]));
        let v = q(r#"{"indicator":"stroke_reperfusion","breakdowns":["quarter"],"period":"2024","options":{"perspective":"population","totals":true}}"#);
        let cells = cell_list(&v, &["25".into(), "22".into()]).unwrap();
        // Two home regions × four quarters and the total.
        assert_eq!(cells.len(), 2 * 5);
        assert_eq!(cells[0].region.as_deref(), Some("22"));
        assert_eq!(cells[3].labels, vec!["2024Q4".to_string()]);
        assert_eq!(cells[4].labels, vec![TOTAL.to_string()]);
        // The binding changes with the participants and the cells.
        let a = Binding::new("q", &["22".into(), "25".into()], &cells);
        let b = Binding::new("q", &["25".into(), "22".into()], &cells);
        assert_eq!(a, b);
        assert_ne!(a, Binding::new("q", &["22".into()], &cells));
        assert_ne!(a.cells, Binding::new("q", &["22".into(), "25".into()], &cells[1..]).cells);
    }

    #[test]
    fn words_add_signed_and_fixed_point_values_modulo_2_64() {
        let mut t = vec![0u64; 2];
        add_into(&mut t, &[word(-5), fixed(12.3456, SUM_SCALE)]);
        add_into(&mut t, &[word(8), fixed(-0.3456, SUM_SCALE)]);
        assert_eq!(signed(t[0]), 3);
        assert_eq!(signed(t[1]), 12_000);
        assert_eq!(from_bytes(&to_bytes(&t)).unwrap(), t);
        assert!(from_bytes(&[1, 2, 3]).is_err());
    }
}
