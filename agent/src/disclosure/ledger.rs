//! The release ledger: the agent's own, persistent record of what it released to whom.
//!
//! Every answer appends one record before it leaves the agent: requester, recipe and data
//! version, the question in canonical form and, for every cell, whether it was released,
//! withheld at the region's floor, or withheld only for this request's stricter minimum
//! cell size. Records are JSON Lines chained by SHA-256 (`prev` is the hash of the record
//! before), so an edited, reordered or truncated ledger no longer verifies and the agent
//! refuses to start on it. The ledger holds no counts or values.
//!
//! The ledger never decides what a cell shows (an answer depends on the question, the data
//! and the policy only). It serves the audit, and the **per-requester budget**: how many
//! distinct cells of one recipe and data version one requester has received. A question
//! that would take a requester past the region's budget is refused whole, openly, with the
//! numbers; the budget starts afresh with the next data version. Checking it is a lookup
//! per cell under a lock held only while one record is appended.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use norrsken_model::catalog::Catalog;
use norrsken_model::query::{IndicatorQuery, ValidatedQuery};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::boxes::{BoxError, CellBox, CellId, Space};

/// The `prev` of the first record.
pub const GENESIS: &str = "genesis";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("release ledger {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("release ledger {path} line {line} does not verify ({reason}); the agent will not answer on a ledger that was changed. Restore it from backup")]
    Broken { path: String, line: usize, reason: String },
    #[error("release ledger: {0}")]
    Cell(#[from] BoxError),
}

/// How a cell of an answer is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    /// Released (with values, or its status in a dry run).
    #[serde(rename = "r")]
    Released,
    /// Withheld at the region's floor: must never become derivable.
    #[serde(rename = "t")]
    Target,
    /// Withheld only for this request's larger minimum cell size.
    #[serde(rename = "w")]
    Withheld,
}

/// One cell of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerCell {
    pub region: String,
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub m: Mark,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub prev: String,
    pub time: String,
    pub requester: String,
    pub query_id: String,
    pub recipe: String,
    pub recipe_hash: String,
    pub data_version: String,
    pub perspective: String,
    /// The question in canonical form.
    pub question: IndicatorQuery,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub cells: Vec<LedgerCell>,
    #[serde(default)]
    pub hash: String,
}

impl Record {
    fn digest(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let text = serde_json::to_string(&unhashed).unwrap_or_default();
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }
}

/// Whose budget a cell counts against: requester, recipe (`id@version`), data version.
type BudgetKey = (String, String, String);

/// One released cell as the budget counts it: region, perspective and the cell's box.
type Counted = (String, String, CellBox);

/// An answer's cells as recorded, with the boxes of the released ones.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Per region: the boxes of the released cells.
    pub released: Vec<(String, CellBox)>,
    /// The cells as recorded.
    pub cells: Vec<LedgerCell>,
}

/// Builds the boxes of an answer's released cells (used when recording and when loading).
pub fn release_of(space: &Space, q: &ValidatedQuery, cells: Vec<LedgerCell>) -> Result<Release, BoxError> {
    let mut out = Release::default();
    for c in &cells {
        if c.m == Mark::Released {
            let id = CellId { labels: c.labels.clone(), category: c.category.clone() };
            out.released.push((c.region.clone(), space.cell_box(q, &id)?));
        }
    }
    out.cells = cells;
    Ok(out)
}

struct State {
    file: Option<File>,
    seq: u64,
    head: String,
    /// Distinct cells each requester received, per recipe and data version.
    received: HashMap<BudgetKey, HashSet<Counted>>,
}

/// The ledger of one agent.
pub struct Ledger {
    path: PathBuf,
    fsync: bool,
    state: Mutex<State>,
}

/// Why an answer was not recorded (and so does not leave).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "this question would give you {new} cells of {recipe} you have not received before; you have received {received} of this data version ({data_version}) and the region's budget is {budget} cells per requester, recipe and data version. The budget starts afresh when the region loads new data"
    )]
    Budget { new: u64, received: u64, budget: u64, recipe: String, data_version: String },
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Opens (or creates) the ledger at `path`, verifying its chain and rebuilding the
    /// history of every space from the catalog's recipes.
    pub fn open(path: &Path, catalog: &Catalog, fsync: bool) -> Result<Ledger, LedgerError> {
        let io = |e: std::io::Error| LedgerError::Io { path: path.display().to_string(), reason: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut state = State { file: None, seq: 0, head: GENESIS.to_string(), received: HashMap::new() };
        if path.exists() {
            let reader = BufReader::new(File::open(path).map_err(io)?);
            for (i, line) in reader.lines().enumerate() {
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                let broken = |reason: String| LedgerError::Broken { path: path.display().to_string(), line: i + 1, reason };
                let record: Record = serde_json::from_str(&line).map_err(|e| broken(e.to_string()))?;
                if record.seq != state.seq + 1 {
                    return Err(broken(format!("sequence {} follows {}", record.seq, state.seq)));
                }
                if record.prev != state.head {
                    return Err(broken("its 'prev' is not the hash of the record before".into()));
                }
                if record.digest() != record.hash {
                    return Err(broken("its hash does not match its content".into()));
                }
                state.seq = record.seq;
                state.head = record.hash.clone();
                apply(&mut state.received, catalog, &record)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        state.file = Some(file);
        Ok(Ledger { path: path.to_path_buf(), fsync, state: Mutex::new(state) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records written so far.
    pub fn len(&self) -> u64 {
        self.state().seq
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts a record's released cells for its requester. Records of recipes the catalog no
/// longer holds are kept in the chain but cannot be asked again, so they count nothing.
fn apply(received: &mut HashMap<BudgetKey, HashSet<Counted>>, catalog: &Catalog, record: &Record) -> Result<(), LedgerError> {
    if record.dry_run {
        return Ok(());
    }
    let Ok(v) = record.question.validate(catalog, None) else {
        return Ok(());
    };
    if v.recipe.key() != record.recipe {
        return Ok(());
    }
    let release = release_of(&Space::of(&v.recipe), &v, record.cells.clone())?;
    add(received, &record.requester, &record.recipe, &record.data_version, &record.perspective, &release);
    Ok(())
}

fn add(received: &mut HashMap<BudgetKey, HashSet<Counted>>, requester: &str, recipe: &str, data_version: &str, perspective: &str, release: &Release) {
    let set = received.entry((requester.to_string(), recipe.to_string(), data_version.to_string())).or_default();
    for (region, b) in &release.released {
        set.insert((region.clone(), perspective.to_string(), b.clone()));
    }
}

/// What an answer records besides its cells.
pub struct Entry<'a> {
    pub requester: &'a str,
    pub query_id: &'a str,
    pub question: &'a ValidatedQuery,
    pub data_version: &'a str,
    pub dry_run: bool,
}

impl Ledger {
    /// Cells of `release` that the entry's requester has not received before.
    fn new_for(state: &State, entry: &Entry<'_>, release: &Release) -> u64 {
        let key = (entry.requester.to_string(), entry.question.recipe.key(), entry.data_version.to_string());
        let perspective = entry.question.options.perspective.name();
        let had = state.received.get(&key);
        release
            .released
            .iter()
            .filter(|(region, b)| !had.is_some_and(|s| s.contains(&(region.clone(), perspective.to_string(), b.clone()))))
            .collect::<HashSet<_>>()
            .len() as u64
    }

    /// Checks the requester's budget (`None`: no budget; dry runs cost nothing) and appends
    /// the record of an answer, durably. Fails when the budget would be exceeded or the
    /// record cannot be written: then the answer must not leave.
    pub fn record(&self, entry: &Entry<'_>, release: &Release, budget: Option<u64>) -> Result<u64, RecordError> {
        let mut state = self.state();
        if let (Some(budget), false) = (budget, entry.dry_run) {
            let new = Self::new_for(&state, entry, release);
            let key = (entry.requester.to_string(), entry.question.recipe.key(), entry.data_version.to_string());
            let received = state.received.get(&key).map_or(0, |s| s.len() as u64);
            if new > 0 && received + new > budget {
                return Err(RecordError::Budget { new, received, budget, recipe: entry.question.recipe.key(), data_version: entry.data_version.to_string() });
            }
        }
        let q = entry.question;
        let mut record = Record {
            seq: state.seq + 1,
            prev: state.head.clone(),
            time: now(),
            requester: entry.requester.to_string(),
            query_id: entry.query_id.to_string(),
            recipe: q.recipe.key(),
            recipe_hash: q.recipe.hash.clone(),
            data_version: entry.data_version.to_string(),
            perspective: q.options.perspective.name().to_string(),
            question: IndicatorQuery { query_id: String::new(), ..q.normalized() },
            dry_run: entry.dry_run,
            cells: release.cells.clone(),
            hash: String::new(),
        };
        record.hash = record.digest();
        let path = self.path.display().to_string();
        let io = |e: std::io::Error| LedgerError::Io { path: path.clone(), reason: e.to_string() };
        let mut line = serde_json::to_string(&record).map_err(|e| LedgerError::Io { path: path.clone(), reason: e.to_string() })?;
        line.push('\n');
        let file = state.file.as_mut().ok_or_else(|| LedgerError::Io { path: path.clone(), reason: "not open".into() })?;
        file.write_all(line.as_bytes()).map_err(io)?;
        if self.fsync {
            file.sync_data().map_err(io)?;
        }
        norrsken_common::failpoint::hit("after-ledger");
        state.seq = record.seq;
        state.head = record.hash.clone();
        if !entry.dry_run {
            add(&mut state.received, &record.requester, &record.recipe, &record.data_version, &record.perspective, release);
        }
        Ok(record.seq)
    }

    /// Distinct cells of a recipe and data version `requester` has received.
    pub fn received(&self, requester: &str, recipe: &str, data_version: &str) -> u64 {
        self.state().received.get(&(requester.to_string(), recipe.to_string(), data_version.to_string())).map_or(0, |s| s.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    fn cell(labels: &[&str], m: Mark) -> LedgerCell {
        LedgerCell { region: "25".into(), labels: labels.iter().map(|s| s.to_string()).collect(), category: None, m }
    }

    #[test]
    fn the_ledger_survives_a_restart_counts_budgets_and_refuses_an_edited_file() {
        let dir = std::env::temp_dir().join(format!("norrsken-ledger-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ledger.jsonl");
        let catalog = Catalog::embedded();
        let q = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2023"}"#);
        let space = Space::of(&q.recipe);
        let release = release_of(&space, &q, vec![cell(&["female"], Mark::Released), cell(&["male"], Mark::Target), cell(&["total"], Mark::Released)]).unwrap();
        let entry = Entry { requester: "CN=a", query_id: "q1", question: &q, data_version: "d1", dry_run: false };
        {
            let ledger = Ledger::open(&path, &catalog, true).unwrap();
            // A budget of one cell refuses two new ones, openly.
            match ledger.record(&entry, &release, Some(1)) {
                Err(RecordError::Budget { new: 2, received: 0, budget: 1, .. }) => {}
                other => panic!("the budget must refuse: {other:?}"),
            }
            assert_eq!(ledger.len(), 0, "a refused answer is not recorded");
            ledger.record(&entry, &release, Some(2)).unwrap();
            assert_eq!(ledger.received("CN=a", &q.recipe.key(), "d1"), 2);
            // The same cells again cost nothing; a dry run neither.
            ledger.record(&entry, &release, Some(2)).unwrap();
            ledger.record(&Entry { dry_run: true, ..entry }, &release, Some(0)).unwrap();
        }
        let ledger = Ledger::open(&path, &catalog, true).unwrap();
        assert_eq!(ledger.len(), 3);
        assert_eq!(ledger.received("CN=a", &q.recipe.key(), "d1"), 2, "rebuilt from the file");
        assert_eq!(ledger.received("CN=a", &q.recipe.key(), "d2"), 0, "a new data version starts afresh");
        drop(ledger);
        // An edit breaks the chain.
        let text = std::fs::read_to_string(&path).unwrap().replace("\"m\":\"t\"", "\"m\":\"r\"");
        std::fs::write(&path, text).unwrap();
        let e = Ledger::open(&path, &catalog, true).err().unwrap();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
