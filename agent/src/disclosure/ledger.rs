//! The release ledger: the agent's own, persistent record of what it released to whom.
//!
//! Every answer appends one record before it leaves the agent: requester, recipe and data
//! version, the question in canonical form and, for every cell, whether it was released,
//! withheld at the region's floor (a *target*: it must never become derivable), or withheld
//! only for this request's stricter minimum cell size. Records are JSON Lines chained by
//! SHA-256 (`prev` is the hash of the record before), so an edited, reordered or truncated
//! ledger no longer verifies and the agent refuses to start on it.
//!
//! From the records the ledger keeps, per recipe version, data version, perspective and
//! region (a *space*), the cells released to anyone, the targets, the cells shown empty and
//! how many distinct cells each requester received. Disclosure control reads this history
//! before deciding (see [`crate::disclosure`]): requesters are assumed to pool what they
//! got, so the history is shared, and the per-requester budget bounds how many independent
//! noisy statistics one requester collects.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use norrsken_common::catalog::Catalog;
use norrsken_common::query::{IndicatorQuery, ValidatedQuery};
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

/// Which history a question is decided against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceKey {
    /// `id@version`.
    pub recipe: String,
    pub data_version: String,
    pub perspective: String,
    /// County code of the cells.
    pub region: String,
}

/// What was released and withheld in one space.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub released: BTreeSet<CellBox>,
    pub targets: BTreeSet<CellBox>,
    pub zeros: BTreeSet<CellBox>,
    /// Other cells asked: withheld only for a larger requested minimum cell size.
    pub asked: BTreeSet<CellBox>,
    /// Distinct cells released per requester.
    pub per_requester: HashMap<String, HashSet<CellBox>>,
}

impl History {
    /// Cells released to `requester` so far.
    pub fn released_to(&self, requester: &str) -> usize {
        self.per_requester.get(requester).map_or(0, |s| s.len())
    }
}

/// An answer's cells as boxes, ready to record.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Per region: released, target and zero boxes.
    pub released: Vec<(String, CellBox)>,
    pub targets: Vec<(String, CellBox)>,
    pub zeros: Vec<(String, CellBox)>,
    /// Withheld only for a larger requested minimum cell size.
    pub withheld: Vec<(String, CellBox)>,
    /// The cells as recorded.
    pub cells: Vec<LedgerCell>,
}

/// Builds the boxes of an answer's cells (used when deciding and when loading).
pub fn release_of(space: &Space, q: &ValidatedQuery, cells: Vec<LedgerCell>) -> Result<Release, BoxError> {
    let mut out = Release::default();
    let mut present: HashMap<&str, Vec<CellId>> = HashMap::new();
    for c in &cells {
        let id = CellId { labels: c.labels.clone(), category: c.category.clone() };
        let b = space.cell_box(q, &id)?;
        match c.m {
            Mark::Released => out.released.push((c.region.clone(), b)),
            Mark::Target => out.targets.push((c.region.clone(), b)),
            Mark::Withheld => out.withheld.push((c.region.clone(), b)),
        }
        present.entry(c.region.as_str()).or_default().push(id);
    }
    for (region, ids) in present {
        for z in space.zero_boxes(q, &ids)? {
            out.zeros.push((region.to_string(), z));
        }
    }
    out.cells = cells;
    Ok(out)
}

struct State {
    file: Option<File>,
    seq: u64,
    head: String,
    spaces: HashMap<SpaceKey, History>,
}

/// The ledger of one agent.
pub struct Ledger {
    path: PathBuf,
    fsync: bool,
    state: Mutex<State>,
}

/// Holds the ledger while one answer is decided and recorded: decisions and records are
/// taken one answer at a time, so two concurrent questions cannot together release what
/// each alone would not.
pub struct LedgerGuard<'a> {
    ledger: &'a Ledger,
    state: MutexGuard<'a, State>,
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
        let mut state = State { file: None, seq: 0, head: GENESIS.to_string(), spaces: HashMap::new() };
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
                apply(&mut state.spaces, catalog, &record)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        state.file = Some(file);
        Ok(Ledger { path: path.to_path_buf(), fsync, state: Mutex::new(state) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the ledger for one decision.
    pub fn lock(&self) -> LedgerGuard<'_> {
        let state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        LedgerGuard { ledger: self, state }
    }

    /// Records written so far.
    pub fn len(&self) -> u64 {
        self.lock().state.seq
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Adds a record's boxes to the spaces. Records of recipes the catalog no longer holds are
/// kept in the chain but cannot be asked again, so they add no history.
fn apply(spaces: &mut HashMap<SpaceKey, History>, catalog: &Catalog, record: &Record) -> Result<(), LedgerError> {
    let Ok(v) = record.question.validate(catalog, None) else {
        return Ok(());
    };
    if v.recipe.key() != record.recipe {
        return Ok(());
    }
    let space = Space::of(&v.recipe);
    let release = release_of(&space, &v, record.cells.clone())?;
    add(spaces, &record.recipe, &record.data_version, &record.perspective, &record.requester, &release, record.dry_run);
    Ok(())
}

fn add(spaces: &mut HashMap<SpaceKey, History>, recipe: &str, data_version: &str, perspective: &str, requester: &str, release: &Release, dry_run: bool) {
    let key = |region: &str| SpaceKey { recipe: recipe.to_string(), data_version: data_version.to_string(), perspective: perspective.to_string(), region: region.to_string() };
    for (region, b) in &release.targets {
        spaces.entry(key(region)).or_default().targets.insert(b.clone());
    }
    for (region, b) in &release.zeros {
        spaces.entry(key(region)).or_default().zeros.insert(b.clone());
    }
    for (region, b) in &release.withheld {
        spaces.entry(key(region)).or_default().asked.insert(b.clone());
    }
    if dry_run {
        return;
    }
    for (region, b) in &release.released {
        let h = spaces.entry(key(region)).or_default();
        h.released.insert(b.clone());
        h.per_requester.entry(requester.to_string()).or_default().insert(b.clone());
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

impl LedgerGuard<'_> {
    /// The history of one space (empty when nothing was asked there yet).
    pub fn history(&self, key: &SpaceKey) -> Option<&History> {
        self.state.spaces.get(key)
    }

    /// Cells of `release` that `requester` has not received before, per region space.
    pub fn new_for(&self, entry: &Entry<'_>, release: &Release) -> usize {
        let perspective = entry.question.options.perspective.name();
        let recipe = entry.question.recipe.key();
        release
            .released
            .iter()
            .filter(|(region, b)| {
                let key = SpaceKey { recipe: recipe.clone(), data_version: entry.data_version.to_string(), perspective: perspective.to_string(), region: region.clone() };
                !self.state.spaces.get(&key).and_then(|h| h.per_requester.get(entry.requester)).is_some_and(|s| s.contains(b))
            })
            .collect::<HashSet<_>>()
            .len()
    }

    /// Cells released to `requester` so far for this recipe and data version (all regions
    /// and perspectives).
    pub fn released_to(&self, requester: &str, recipe: &str, data_version: &str) -> usize {
        self.state
            .spaces
            .iter()
            .filter(|(k, _)| k.recipe == recipe && k.data_version == data_version)
            .map(|(_, h)| h.released_to(requester))
            .sum()
    }

    /// Appends the record of an answer (durably) and adds it to the history. Fails when
    /// the record cannot be written: then the answer must not leave.
    pub fn append(&mut self, entry: &Entry<'_>, release: &Release) -> Result<u64, LedgerError> {
        let q = entry.question;
        let mut record = Record {
            seq: self.state.seq + 1,
            prev: self.state.head.clone(),
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
        let path = self.ledger.path.display().to_string();
        let io = |e: std::io::Error| LedgerError::Io { path: path.clone(), reason: e.to_string() };
        let mut line = serde_json::to_string(&record).map_err(|e| LedgerError::Io { path: path.clone(), reason: e.to_string() })?;
        line.push('\n');
        let file = self.state.file.as_mut().ok_or_else(|| LedgerError::Io { path: path.clone(), reason: "not open".into() })?;
        file.write_all(line.as_bytes()).map_err(io)?;
        if self.ledger.fsync {
            file.sync_data().map_err(io)?;
        }
        norrsken_common::failpoint::hit("after-ledger");
        self.state.seq = record.seq;
        self.state.head = record.hash.clone();
        add(&mut self.state.spaces, &record.recipe, &record.data_version, &record.perspective, &record.requester, release, record.dry_run);
        Ok(record.seq)
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
    fn the_ledger_survives_a_restart_and_refuses_an_edited_file() {
        let dir = std::env::temp_dir().join(format!("norrsken-ledger-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ledger.jsonl");
        let catalog = Catalog::embedded();
        let q = v(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2023"}"#);
        let space = Space::of(&q.recipe);
        let release = release_of(&space, &q, vec![cell(&["female"], Mark::Released), cell(&["male"], Mark::Target), cell(&["total"], Mark::Released)]).unwrap();
        let key = SpaceKey { recipe: q.recipe.key(), data_version: "d1".into(), perspective: "provider".into(), region: "25".into() };
        {
            let ledger = Ledger::open(&path, &catalog, true).unwrap();
            let mut g = ledger.lock();
            let entry = Entry { requester: "CN=a", query_id: "q1", question: &q, data_version: "d1", dry_run: false };
            assert_eq!(g.new_for(&entry, &release), 2);
            g.append(&entry, &release).unwrap();
            assert_eq!(g.new_for(&entry, &release), 0, "nothing new the second time");
        }
        let ledger = Ledger::open(&path, &catalog, true).unwrap();
        assert_eq!(ledger.len(), 1);
        {
            let g = ledger.lock();
            let h = g.history(&key).unwrap();
            assert_eq!((h.released.len(), h.targets.len(), h.released_to("CN=a")), (2, 1, 2));
            assert!(h.targets.contains(&space.cell_box(&q, &CellId { labels: vec!["male".into()], category: None }).unwrap()));
        }
        drop(ledger);
        // An edit breaks the chain.
        let text = std::fs::read_to_string(&path).unwrap().replace("\"m\":\"t\"", "\"m\":\"r\"");
        std::fs::write(&path, text).unwrap();
        let e = Ledger::open(&path, &catalog, true).err().unwrap();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
