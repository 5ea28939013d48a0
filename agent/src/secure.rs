//! The agent's part in a secure sum (docs/secure-aggregation.md): its masked vector over the
//! question's canonical cell list, and the run ledger that refuses a second run of the same
//! question with other participants (the drop attack: the sums over S and over S without i
//! would give i's part).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use norrsken_common::secure_sum::{peer_key, SecureSumError, SumKey};
use norrsken_model::answer::{CellStatus, ReleasedCell};
use norrsken_model::catalog::Kind;
use norrsken_model::query::Perspective;
use norrsken_model::secure::{fixed, word, SumCell, Word, SUM_SCALE, WORDS};
use serde::{Deserialize, Serialize};
use x25519_dalek::PublicKey;

use crate::disclosure::components;
use crate::disclosure::perturb::{key_part, KeyOf};
use crate::disclosure::record_key::RecordKeyer;
use crate::engine::cells::RawCell;

/// `[secure_sum]` of the agent's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecureSumConfig {
    /// This agent's X25519 secret (64 hex digits; `norrsken certs` writes one per region).
    pub key: PathBuf,
    /// The public keys of the other regions' agents (county code → 64 hex digits), as
    /// region IT exchanged them beside the mTLS trust bundle.
    pub peers: BTreeMap<String, String>,
    /// The fewest participants (this region included) a run may have; default every
    /// configured region, so a run without one of them is refused.
    #[serde(default)]
    pub min_participants: Option<usize>,
    /// The run ledger; default `secure-sum-runs.jsonl` beside the release ledger.
    #[serde(default)]
    pub runs: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Key(#[from] SecureSumError),
    #[error("the secure-sum run ledger {path}: {reason}")]
    Ledger { path: String, reason: String },
    #[error("participant {0} is not among the regions this agent has keys for")]
    Unknown(String),
    #[error("a secure sum needs at least {min} participants (this region's [secure_sum] min_participants); {got} were named")]
    TooFew { min: usize, got: usize },
    #[error("this question was summed with participants {before} on data version {data_version}; a run with {now} is refused (the difference would reveal a region's part)")]
    OtherParticipants { before: String, now: String, data_version: String },
}

/// One run as the ledger keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    question: String,
    data_version: String,
    participants: Vec<String>,
    query_id: String,
    at: String,
}

/// The agent's secure-sum key, peers and run ledger.
pub struct SecureSum {
    region: String,
    pub key: SumKey,
    pub peers: BTreeMap<String, PublicKey>,
    min: usize,
    path: PathBuf,
    runs: Mutex<HashMap<(String, String), Vec<String>>>,
}

impl SecureSum {
    pub fn open(region: &str, c: &SecureSumConfig, default_runs: &Path) -> Result<SecureSum, RunError> {
        let key = SumKey::from_file(&c.key)?;
        let mut peers = BTreeMap::new();
        for (r, v) in &c.peers {
            peers.insert(r.clone(), peer_key(r, v)?);
        }
        peers.insert(region.to_string(), peer_key(region, &key.public_hex())?);
        let path = c.runs.clone().unwrap_or_else(|| default_runs.to_path_buf());
        let ledger_err = |reason: String| RunError::Ledger { path: path.display().to_string(), reason };
        let mut runs = HashMap::new();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| ledger_err(e.to_string()))?;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let r: Run = serde_json::from_str(line).map_err(|e| ledger_err(format!("line {}: {e}", i + 1)))?;
                runs.insert((r.question, r.data_version), r.participants);
            }
        }
        let min = c.min_participants.unwrap_or(peers.len()).max(2);
        Ok(SecureSum { region: region.to_string(), key, peers, min, path, runs: Mutex::new(runs) })
    }

    /// Checks the participants of a run of `question` on `data_version` and records it: the
    /// same question on the same data is only ever summed with one participant set.
    pub fn admit(&self, question: &str, data_version: &str, participants: &[String], query_id: &str) -> Result<(), RunError> {
        if let Some(p) = participants.iter().find(|p| !self.peers.contains_key(*p)) {
            return Err(RunError::Unknown(p.clone()));
        }
        if participants.len() < self.min {
            return Err(RunError::TooFew { min: self.min, got: participants.len() });
        }
        let mut runs = self.runs.lock().map_err(|_| RunError::Ledger { path: self.path.display().to_string(), reason: "poisoned".into() })?;
        let key = (question.to_string(), data_version.to_string());
        match runs.get(&key) {
            Some(before) if before != participants => {
                return Err(RunError::OtherParticipants { before: before.join(","), now: participants.join(","), data_version: data_version.to_string() })
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let run = Run {
            question: question.to_string(),
            data_version: data_version.to_string(),
            participants: participants.to_vec(),
            query_id: query_id.to_string(),
            at: chrono::Utc::now().to_rfc3339(),
        };
        let line = serde_json::to_string(&run).map_err(|e| RunError::Ledger { path: self.path.display().to_string(), reason: e.to_string() })?;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}").and_then(|_| f.sync_data()))
            .map_err(|e| RunError::Ledger { path: self.path.display().to_string(), reason: e.to_string() })?;
        runs.insert(key, participants.to_vec());
        Ok(())
    }

    pub fn region(&self) -> &str {
        &self.region
    }
}

/// The agent's unmasked vector over `cells`: each raw cell's words where its labels are in
/// the list (the home region too in the population perspective), and the parts the agent
/// withholds in its own answer (`answer`).
pub fn vector(kind: Kind, perspective: Perspective, cells: &[SumCell], raw: &[RawCell], answer: &[ReleasedCell], keyer: Option<&RecordKeyer>) -> Vec<u64> {
    let index: HashMap<&SumCell, usize> = cells.iter().enumerate().map(|(i, c)| (c, i)).collect();
    let key_of = |region: &str, labels: &[String], category: &Option<String>| SumCell {
        region: (perspective == Perspective::Population).then(|| region.to_string()),
        labels: labels.to_vec(),
        category: category.clone(),
    };
    let mut v = vec![0u64; cells.len() * WORDS];
    for c in raw {
        let Some(&i) = index.get(&key_of(&c.region, &c.labels, &c.category)) else { continue };
        let w = &mut v[i * WORDS..(i + 1) * WORDS];
        w[Word::Units as usize] = word(c.units);
        w[Word::Persons as usize] = word(c.persons);
        w[Word::Numerator as usize] = word(c.numerator);
        w[Word::NumeratorPersons as usize] = word(c.numerator_persons);
        w[Word::Population as usize] = word(c.population);
        w[Word::ValueSum as usize] = fixed(c.value_sum, SUM_SCALE);
        w[Word::ValueSumSq as usize] = fixed(c.value_sum_sq, 1.0);
        w[Word::PersonSumSq as usize] = fixed(c.person_sum_sq, 1.0);
        w[Word::Top12 as usize] = fixed(c.top1 + c.top2, SUM_SCALE);
        if let Some(keyer) = keyer {
            let parts = [KeyOf::Units, KeyOf::Numerator, KeyOf::Population, KeyOf::Persons, KeyOf::Sum, KeyOf::Spread];
            for (j, of) in parts.into_iter().enumerate() {
                w[Word::KeyUnits as usize + j] = key_part(c, keyer, of) as u64;
            }
        }
    }
    let raw_of: HashMap<SumCell, &RawCell> = raw.iter().map(|c| (key_of(&c.region, &c.labels, &c.category), c)).collect();
    for a in answer.iter().filter(|a| a.status == CellStatus::Suppressed) {
        let key = key_of(&a.region, &a.labels, &a.category);
        let (Some(&i), Some(c)) = (index.get(&key), raw_of.get(&key)) else { continue };
        let (num, den, _, _) = components(kind, c);
        let w = &mut v[i * WORDS..(i + 1) * WORDS];
        w[Word::Withheld as usize] = 1;
        let (n, d) = (num.unwrap_or(0), den.unwrap_or(0));
        w[Word::WithheldNum as usize] = word(n);
        w[Word::WithheldNumSq as usize] = word(n.saturating_mul(n));
        w[Word::WithheldDen as usize] = word(d);
        w[Word::WithheldDenSq as usize] = word(d.saturating_mul(d));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::secure::signed;

    #[test]
    fn the_vector_carries_a_cells_components_key_parts_and_withheld_part() {
        let cells = vec![
            SumCell { region: None, labels: vec!["female".into()], category: None },
            SumCell { region: None, labels: vec!["male".into()], category: None },
        ];
        let raw = vec![
            RawCell { units: 40, persons: 40, numerator: 10, numerator_persons: 10, units_mix: 999, ..RawCell::empty("22", vec!["male".into()], None) },
            RawCell { units: 3, persons: 3, numerator: 1, ..RawCell::empty("22", vec!["female".into()], None) },
            // Not in the list: left out.
            RawCell { units: 7, ..RawCell::empty("22", vec!["unknown".into()], None) },
        ];
        let withheld = ReleasedCell {
            region: "22".into(),
            labels: vec!["female".into()],
            category: None,
            numerator: None,
            denominator: None,
            value_sum: None,
            value_sd: None,
            status: CellStatus::Suppressed,
            reasons: vec![],
            suggestion: None,
            standardised: None,
            released_without: vec![],
        };
        let keyer = RecordKeyer::new(&[5; 32]).unwrap();
        let v = vector(Kind::Proportion, Perspective::Provider, &cells, &raw, &[withheld], Some(&keyer));
        assert_eq!(v.len(), 2 * WORDS);
        let male = &v[WORDS..];
        assert_eq!((signed(male[Word::Units as usize]), signed(male[Word::Numerator as usize])), (40, 10));
        assert_eq!(male[Word::KeyUnits as usize], keyer.cell_key_int_in(crate::disclosure::record_key::KeyStream::Count, 999, 40) as u64);
        assert_eq!(male[Word::Withheld as usize], 0);
        let female = &v[..WORDS];
        assert_eq!(female[Word::Withheld as usize], 1);
        assert_eq!((signed(female[Word::WithheldNum as usize]), signed(female[Word::WithheldDen as usize]), signed(female[Word::WithheldDenSq as usize])), (1, 3, 9));
    }

    #[test]
    fn the_run_ledger_refuses_a_second_participant_set_and_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("norrsken-runs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys: Vec<SumKey> = (0..3).map(|i| SumKey::from_bytes([i + 1; 32])).collect();
        std::fs::write(dir.join("22.key"), keys[0].to_hex()).unwrap();
        let config = SecureSumConfig {
            key: dir.join("22.key"),
            peers: [("23".to_string(), keys[1].public_hex()), ("24".to_string(), keys[2].public_hex())].into_iter().collect(),
            min_participants: Some(2),
            runs: None,
        };
        let all: Vec<String> = vec!["22".into(), "23".into(), "24".into()];
        let s = SecureSum::open("22", &config, &dir.join("runs.jsonl")).unwrap();
        s.admit("q", "v1", &all, "id1").unwrap();
        s.admit("q", "v1", &all, "id2").unwrap();
        let fewer = &all[..2];
        assert!(matches!(s.admit("q", "v1", fewer, "id3"), Err(RunError::OtherParticipants { .. })));
        // Another data version, or another question, is a new run.
        s.admit("q", "v2", fewer, "id4").unwrap();
        assert!(matches!(s.admit("q", "v1", &["22".into(), "99".into()], "x"), Err(RunError::Unknown(_))));
        let reopened = SecureSum::open("22", &config, &dir.join("runs.jsonl")).unwrap();
        assert!(matches!(reopened.admit("q", "v1", fewer, "id5"), Err(RunError::OtherParticipants { .. })));
        // By default every configured region must take part.
        let strict = SecureSum::open("22", &SecureSumConfig { min_participants: None, ..config }, &dir.join("runs.jsonl")).unwrap();
        assert!(matches!(strict.admit("r", "v1", fewer, "id6"), Err(RunError::TooFew { min: 3, got: 2 })));
    }
}
