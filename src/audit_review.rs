//! Reviewing audit logs (a tool for auditors, not part of the nodes): verification of the chain and its seals, filtering and summaries,
//! and reconciliation of the coordinator's log against the agents'.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;

use norrsken_common::audit::{genesis_message, line_hash, read_records, seal_message, Anchor, AuditError, AuditRecord, GENESIS};

/// Expands folders to their log files; keeps files as given. Sorted in chain order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(norrsken_common::audit::log_files(p)?);
        } else {
            out.push(p.clone());
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// The result of verifying a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub records: usize,
    pub seals: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub node: Option<String>,
    /// The last seal was written at a clean shutdown.
    pub ends_final: bool,
    /// The signatures were checked against a key given from outside the log.
    pub key_checked: bool,
    /// Notes that do not make the log invalid.
    pub notes: Vec<String>,
    /// The first problem found: where, and what.
    pub problem: Option<Problem>,
    /// When the chain was created (its genesis record), when the log begins with it.
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub seq: Option<u64>,
    pub message: String,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies a chain of log files. With `key`, the genesis record and every seal must be
/// signed by it; without, they are checked against the key they name (which proves
/// integrity, not origin). `allow_unsealed_tail` accepts records after the last seal (a live
/// log). The log must begin with its genesis record (see [`verify_from`]).
pub fn verify(files: &[PathBuf], key: Option<&VerifyingKey>, allow_unsealed_tail: bool) -> Result<Verification, AuditError> {
    verify_from(files, key, allow_unsealed_tail, false)
}

/// [`verify`], where `allow_missing_start` accepts a log whose oldest files were archived
/// (it then starts after its genesis record, and the verification says so).
pub fn verify_from(files: &[PathBuf], key: Option<&VerifyingKey>, allow_unsealed_tail: bool, allow_missing_start: bool) -> Result<Verification, AuditError> {
    let lines = read_records(files)?;
    let mut v = Verification {
        records: 0,
        seals: 0,
        first_seq: None,
        last_seq: None,
        node: None,
        ends_final: false,
        key_checked: key.is_some(),
        notes: Vec::new(),
        problem: None,
        created: None,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut prev: Option<(u64, String)> = None;
    let mut unsealed_since: Option<(PathBuf, usize, u64)> = None;
    let mut embedded_key: Option<String> = None;
    let mut pending_next: Option<(PathBuf, usize, u64, String)> = None;
    for (file, line, bytes) in &lines {
        let fail = |seq: Option<u64>, message: String| Problem { file: file.display().to_string(), line: *line, seq, message };
        let record: AuditRecord = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                v.problem = Some(fail(None, format!("not a valid record: {e}")));
                return Ok(v);
            }
        };
        v.records += 1;
        match &v.node {
            None => v.node = Some(record.node.clone()),
            Some(n) if *n != record.node => {
                v.problem = Some(fail(Some(record.seq), format!("record of node '{}' in the log of '{n}'", record.node)));
                return Ok(v);
            }
            _ => {}
        }
        match &prev {
            None => {
                v.first_seq = Some(record.seq);
                if record.seq != 0 {
                    let message = format!(
                        "the log does not begin with its genesis record: its first record is seq {}, so records 0 to {} are missing (deleted, or their files not given)",
                        record.seq,
                        record.seq - 1
                    );
                    if !allow_missing_start {
                        v.problem = Some(fail(Some(record.seq), format!("{message}; if the oldest files were archived, verify with --allow-missing-start")));
                        return Ok(v);
                    }
                    v.notes.push(format!("{message}: accepted (--allow-missing-start); verify the archived files too"));
                } else {
                    if record.prev_hash != GENESIS {
                        v.problem = Some(fail(Some(0), "the first record does not start a chain (its prev_hash is not the genesis value)".into()));
                        return Ok(v);
                    }
                    match check_genesis(&record, key) {
                        Ok(pk) => {
                            embedded_key = Some(pk);
                            v.created = Some(record.time.clone());
                        }
                        Err(message) => {
                            v.problem = Some(fail(Some(0), message));
                            return Ok(v);
                        }
                    }
                }
            }
            Some((seq, hash)) => {
                if record.seq != seq + 1 {
                    let what = if record.seq > seq + 1 {
                        "a record is missing or the records were reordered"
                    } else {
                        "a record is repeated or out of order"
                    };
                    v.problem = Some(fail(Some(record.seq), format!("seq {} follows seq {seq}: {what}", record.seq)));
                    return Ok(v);
                }
                if record.prev_hash != *hash {
                    v.problem = Some(fail(
                        Some(record.seq),
                        format!("prev_hash does not match the previous record (seq {seq}): the previous record was edited, or this one was inserted"),
                    ));
                    return Ok(v);
                }
            }
        }
        if record.event.kind == "seal" {
            v.seals += 1;
            let (Some(pk), Some(sig)) = (&record.public_key, &record.signature) else {
                v.problem = Some(fail(Some(record.seq), "a seal without key or signature".into()));
                return Ok(v);
            };
            let verifying = match key {
                Some(k) => {
                    if b64.encode(k.as_bytes()) != *pk {
                        v.problem = Some(fail(Some(record.seq), "the seal is signed by another key than the node's (--key)".into()));
                        return Ok(v);
                    }
                    *k
                }
                None => {
                    if let Some(prev_key) = &embedded_key {
                        if prev_key != pk {
                            v.problem = Some(fail(Some(record.seq), "the signing key changes within the log".into()));
                            return Ok(v);
                        }
                    }
                    embedded_key = Some(pk.clone());
                    let bytes: Vec<u8> = b64.decode(pk).unwrap_or_default();
                    match <[u8; 32]>::try_from(bytes.as_slice()).ok().and_then(|b| VerifyingKey::from_bytes(&b).ok()) {
                        Some(k) => k,
                        None => {
                            v.problem = Some(fail(Some(record.seq), "the seal names an unreadable key".into()));
                            return Ok(v);
                        }
                    }
                }
            };
            let signature = b64.decode(sig).ok().and_then(|b| Signature::from_slice(&b).ok());
            let message =
                seal_message(&record.node, record.seq, &record.time, &record.prev_hash, record.r#final.unwrap_or(false), record.next_file.as_deref());
            if signature.map_or(true, |s| verifying.verify(&message, &s).is_err()) {
                v.problem = Some(fail(Some(record.seq), "the seal's signature does not verify: the sealed records were changed".into()));
                return Ok(v);
            }
            v.ends_final = record.r#final.unwrap_or(false);
            unsealed_since = None;
            pending_next = record.next_file.clone().map(|n| (file.clone(), *line, record.seq, n));
        } else {
            v.ends_final = false;
            if let Some((_, _, _, next)) = pending_next.take() {
                let here = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if here != next {
                    v.problem = Some(fail(Some(record.seq), format!("the chain should continue in {next}, not in {here}")));
                    return Ok(v);
                }
            }
            if unsealed_since.is_none() {
                unsealed_since = Some((file.clone(), *line, record.seq));
            }
        }
        v.last_seq = Some(record.seq);
        prev = Some((record.seq, line_hash(bytes)));
    }
    if v.records == 0 {
        v.problem = Some(Problem { file: files.first().map(|f| f.display().to_string()).unwrap_or_default(), line: 0, seq: None, message: "no records".into() });
        return Ok(v);
    }
    if v.seals == 0 {
        v.problem = Some(Problem {
            file: files.last().map(|f| f.display().to_string()).unwrap_or_default(),
            line: 0,
            seq: None,
            message: "the log carries no seal: it was not signed by the node".into(),
        });
        return Ok(v);
    }
    if let Some((file, line, seq, next)) = pending_next {
        v.problem = Some(Problem {
            file: file.display().to_string(),
            line,
            seq: Some(seq),
            message: format!("the log ends at a rotation seal, but the chain continues in {next}, which is missing: the log was cut short"),
        });
        return Ok(v);
    }
    if let Some((file, line, seq)) = unsealed_since {
        let message = format!("records from seq {seq} on are not sealed: the log was cut after its last seal, or the node is still running");
        if allow_unsealed_tail {
            v.notes.push(message);
        } else {
            v.problem = Some(Problem { file: file.display().to_string(), line, seq: Some(seq), message });
        }
    }
    if key.is_none() {
        v.notes.push("signatures were checked against the key named in the log; pass --key with the node's public key to check origin".into());
    }
    if v.problem.is_none() && !v.ends_final {
        v.notes.push("the last seal is periodic (the node had not shut down cleanly when the log was taken)".into());
    }
    Ok(v)
}

/// Checks a genesis record: its kind, and its signature by the key it names (which must be
/// `key`, when given). Returns the key it names.
fn check_genesis(record: &AuditRecord, key: Option<&VerifyingKey>) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if record.event.kind != "genesis" {
        return Err(format!(
            "the log does not begin with a genesis record (its seq 0 is a '{}' record): it was not started by a Norrsken node, or its start was replaced",
            record.event.kind
        ));
    }
    let (Some(pk), Some(sig)) = (&record.public_key, &record.signature) else {
        return Err("the genesis record carries no key or signature".into());
    };
    if let Some(k) = key {
        if b64.encode(k.as_bytes()) != *pk {
            return Err("the genesis record names another key than the node's (--key): the log was started by someone else".into());
        }
    }
    let verifying = b64
        .decode(pk)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or("the genesis record names an unreadable key")?;
    let signature = b64.decode(sig).ok().and_then(|b| Signature::from_slice(&b).ok());
    if signature.map_or(true, |s| verifying.verify(&genesis_message(&record.node, &record.time, pk), &s).is_err()) {
        return Err("the genesis record's signature does not verify: its node, time or key were changed".into());
    }
    Ok(pk.clone())
}

/// Parses all records of a set of files (no verification).
pub fn records(files: &[PathBuf]) -> Result<Vec<AuditRecord>, AuditError> {
    read_records(files)?
        .into_iter()
        .map(|(file, line, bytes)| {
            serde_json::from_slice(&bytes).map_err(|e| AuditError::Corrupt { path: file.display().to_string(), line, reason: e.to_string() })
        })
        .collect()
}

/// Filters for `norrsken audit show`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// RFC 3339 bounds (compared as text, which orders UTC timestamps).
    pub from: Option<String>,
    pub to: Option<String>,
    pub requester: Option<String>,
    pub role: Option<String>,
    pub indicator: Option<String>,
    pub region: Option<String>,
    pub outcome: Option<String>,
    /// Include seals, starts and other bookkeeping records.
    pub all_kinds: bool,
}

impl Filter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let e = &r.event;
        if !self.all_kinds && matches!(e.kind.as_str(), "seal" | "genesis" | "node_start" | "recovery") {
            return false;
        }
        if self.from.as_ref().is_some_and(|f| r.time.as_str() < f.as_str()) {
            return false;
        }
        if self.to.as_ref().is_some_and(|t| r.time.as_str() > t.as_str()) {
            return false;
        }
        if let Some(q) = &self.requester {
            if !e.requester.as_ref().is_some_and(|w| w.cn == *q || w.subject.contains(q.as_str()) || w.fingerprint == *q) {
                return false;
            }
        }
        if self.role.as_ref().is_some_and(|x| e.role.as_deref() != Some(x.as_str())) {
            return false;
        }
        if self.indicator.as_ref().is_some_and(|x| e.indicator.as_deref() != Some(x.as_str())) {
            return false;
        }
        if self.region.as_ref().is_some_and(|x| !e.regions.iter().any(|g| g == x)) {
            return false;
        }
        if self.outcome.as_ref().is_some_and(|x| e.outcome != *x) {
            return false;
        }
        true
    }
}

/// Queries per requester, indicator and month.
pub fn summary(records: &[AuditRecord]) -> BTreeMap<(String, String, String), (u64, u64)> {
    let mut out: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.event.kind == "query" || r.event.kind == "refused") {
        let who = r.event.requester.as_ref().map_or_else(|| "(unknown)".to_string(), |w| w.cn.clone());
        let what = r.event.indicator.clone().unwrap_or_else(|| "(none)".into());
        let month = r.time.get(..7).unwrap_or("").to_string();
        let e = out.entry((who, what, month)).or_default();
        e.0 += 1;
        if r.event.outcome != "ok" && r.event.outcome != "partial" {
            e.1 += 1;
        }
    }
    out
}

/// A node's log as reconcile reads it: its records and the hash of each record's line.
#[derive(Debug, Clone, Default)]
pub struct NodeLog {
    pub records: Vec<AuditRecord>,
    pub hashes: Vec<String>,
}

impl NodeLog {
    /// Reads a log's files (no verification: run `verify` for that).
    pub fn read(files: &[PathBuf]) -> Result<NodeLog, AuditError> {
        let mut log = NodeLog::default();
        for (file, line, bytes) in read_records(files)? {
            let record = serde_json::from_slice(&bytes).map_err(|e| AuditError::Corrupt { path: file.display().to_string(), line, reason: e.to_string() })?;
            log.records.push(record);
            log.hashes.push(line_hash(&bytes));
        }
        Ok(log)
    }

    /// A log of records held in memory (their hashes are those of their serialisation).
    pub fn from_records(records: Vec<AuditRecord>) -> NodeLog {
        let hashes = records.iter().map(|r| line_hash(&serde_json::to_vec(r).unwrap_or_default())).collect();
        NodeLog { records, hashes }
    }

    /// The node's name (`coordinator`, `agent-25`).
    pub fn node(&self) -> String {
        self.records.first().map(|r| r.node.clone()).unwrap_or_default()
    }
}

/// One difference between the coordinator's and the agents' logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The query concerned (for a break in a chain: the first query whose anchor it breaks).
    pub query_id: String,
    pub region: Option<String>,
    /// For a break in a chain: the node whose log is broken, and the first sequence number
    /// missing or changed.
    pub node: Option<String>,
    pub seq: Option<u64>,
    pub problem: String,
}

/// An anchor one node holds of another's chain, and the query it came with.
struct Held<'a> {
    anchor: &'a Anchor,
    query_id: &'a str,
}

/// Checks a node's chain against the anchors another node holds of it. Returns the
/// differences (at most one per kind of break) and the anchors that failed.
fn check_chain(log: &NodeLog, holder: &str, held: &[Held<'_>]) -> (Vec<Difference>, BTreeSet<u64>) {
    let node = log.node();
    let mut out = Vec::new();
    let mut failed = BTreeSet::new();
    let by_seq: BTreeMap<u64, &str> = log.records.iter().zip(&log.hashes).map(|(r, h)| (r.seq, h.as_str())).collect();
    let (Some(&first), Some(&last)) = (by_seq.keys().next(), by_seq.keys().next_back()) else {
        return (out, failed);
    };
    let mut sorted: Vec<&Held<'_>> = held.iter().collect();
    sorted.sort_by_key(|h| h.anchor.seq);
    let beyond: Vec<&&Held<'_>> = sorted.iter().filter(|h| h.anchor.seq > last).collect();
    let before: Vec<&&Held<'_>> = sorted.iter().filter(|h| h.anchor.seq < first).collect();
    let changed: Vec<&&Held<'_>> = sorted.iter().filter(|h| by_seq.get(&h.anchor.seq).is_some_and(|x| *x != h.anchor.hash)).collect();
    let more = |n: usize| if n > 1 { format!(" and {} later one(s)", n - 1) } else { String::new() };
    let broken = |h: &Held<'_>, seq: u64, problem: String| Difference { query_id: h.query_id.to_string(), region: None, node: Some(node.clone()), seq: Some(seq), problem };
    if let Some(h) = beyond.first() {
        out.push(broken(
            h,
            last + 1,
            format!(
                "the log of {node} ends at seq {last}, but {holder} holds the hash of its record seq {} (query {}){}: records from seq {} on are missing (the log was cut back)",
                h.anchor.seq,
                show_id(h.query_id),
                more(beyond.len()),
                last + 1
            ),
        ));
    }
    if let Some(h) = before.first() {
        out.push(broken(
            h,
            h.anchor.seq,
            format!(
                "the log of {node} begins at seq {first}, but {holder} holds the hash of its record seq {} (query {}): records before seq {first} are missing",
                h.anchor.seq,
                show_id(h.query_id)
            ),
        ));
    }
    if let Some(h) = changed.first() {
        let agreed = sorted.iter().filter(|x| x.anchor.seq < h.anchor.seq && by_seq.get(&x.anchor.seq) == Some(&x.anchor.hash.as_str())).map(|x| x.anchor.seq).last();
        out.push(broken(
            h,
            h.anchor.seq,
            format!(
                "record seq {} of {node} is not the record {holder} was given (query {}){}: the log was rewritten {}",
                h.anchor.seq,
                show_id(h.query_id),
                more(changed.len()),
                match agreed {
                    Some(a) => format!("between seq {} and {}", a + 1, h.anchor.seq),
                    None => format!("at or before seq {}", h.anchor.seq),
                }
            ),
        ));
    }
    failed.extend(beyond.iter().chain(&before).chain(&changed).map(|h| h.anchor.seq));
    (out, failed)
}

/// A query id as printed: control characters escaped.
pub fn show_id(id: &str) -> String {
    id.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// The query parameters an agent answers (the regions asked are the coordinator's).
fn parameters(q: &Option<serde_json::Value>) -> Option<serde_json::Value> {
    let mut q = q.clone()?;
    if let Some(o) = q.as_object_mut() {
        o.remove("regions");
        o.remove("query_id");
        // The analysis is computed by the coordinator and never relayed.
        if let Some(options) = o.get_mut("options").and_then(|v| v.as_object_mut()) {
            options.remove("analysis");
        }
    }
    Some(q)
}

/// Reconciles the coordinator's log with the agents' (`agents` are (region, log)):
///
/// - each chain against the anchors the other nodes hold of it: the agents' records the
///   coordinator was told of (every answer carries its record's seq and hash) and the
///   coordinator's chain heads the agents recorded with every relayed query; a log cut back,
///   missing its start or rewritten is named with the first sequence number concerned;
/// - every agent record of a query against the coordinator's records of it: a query no
///   coordinator record relayed, a region the coordinator did not send it to, more records
///   at an agent than the coordinator sent it (a replay; a query the coordinator answered
///   from its cache was sent to no region), parameters that differ. A query id may be
///   reused (a script giving several questions one id): the records of one id are matched
///   pairwise, first by the anchor the coordinator holds of the agent's record, then by
///   their parameters; an agent record no coordinator record of its id sent is reported;
/// - every region the coordinator recorded an answer from, against that agent's records.
pub fn reconcile(coordinator: &NodeLog, agents: &[(String, NodeLog)]) -> Vec<Difference> {
    let mut out = Vec::new();
    let is_query = |r: &&AuditRecord| (r.event.kind == "query" || r.event.kind == "refused") && r.event.query_id.is_some();
    // The coordinator's records of queries, by id (several when a script reused an id), and
    // what it sent to each region.
    let mut coord: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    let mut sent: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for r in coordinator.records.iter().filter(is_query) {
        let qid = r.event.query_id.as_deref().unwrap_or("");
        coord.entry(qid).or_default().push(r);
        if r.event.cached_from.is_none() {
            for p in &r.event.region_outcomes {
                *sent.entry((qid, p.region.as_str())).or_default() += p.attempts.unwrap_or(1);
            }
        }
    }
    // The coordinator's chain, against the heads the agents recorded.
    let heads: Vec<Held<'_>> = agents
        .iter()
        .flat_map(|(_, log)| log.records.iter().filter(is_query))
        .filter_map(|r| Some(Held { anchor: r.event.relayer_head.as_ref()?, query_id: r.event.query_id.as_deref()? }))
        .collect();
    let (diffs, _) = check_chain(coordinator, "an agent", &heads);
    out.extend(diffs);

    for (region, log) in agents {
        // This agent's chain, against the records the coordinator was told of.
        let held: Vec<Held<'_>> = coordinator
            .records
            .iter()
            .filter(is_query)
            .flat_map(|r| r.event.region_outcomes.iter().filter(|p| p.region == *region).map(move |p| (r, p)))
            .filter_map(|(r, p)| Some(Held { anchor: p.record.as_ref()?, query_id: r.event.query_id.as_deref()? }))
            .collect();
        let (diffs, broken) = check_chain(log, "the coordinator", &held);
        out.extend(diffs.into_iter().map(|d| Difference { region: Some(region.clone()), ..d }));

        let mut at_agent: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
        for r in log.records.iter().filter(is_query) {
            at_agent.entry(r.event.query_id.as_deref().unwrap_or("")).or_default().push(r);
        }
        for (qid, records) in &at_agent {
            let diff = |problem: String| Difference { query_id: qid.to_string(), region: Some(region.clone()), node: None, seq: None, problem };
            let n = records.len();
            let Some(cs) = coord.get(qid) else {
                out.push(diff(format!("reached the agent ({n} record(s)) but no coordinator record relayed it: it did not pass the coordinator")));
                continue;
            };
            let times = sent.get(&(*qid, region.as_str())).copied().unwrap_or(0);
            if n as u32 > times {
                out.push(diff(if cs.iter().all(|c| c.event.cached_from.is_some()) {
                    format!("the coordinator answered this query from its cache and sent it to no region, yet the agent recorded it {n} time(s): a replay")
                } else if !cs.iter().any(|c| c.event.regions.iter().any(|g| g == region)) {
                    format!("the coordinator did not ask this region, yet the agent recorded the query {n} time(s)")
                } else if times == 0 {
                    format!("the coordinator did not send this query to the region (it was not asked), yet the agent recorded it {n} time(s)")
                } else {
                    format!("the agent recorded this query {n} times; the coordinator sent it {times} time(s): a replay")
                }));
            }
            out.extend(unmatched_parameters(cs, records, region, n as u32 > times).into_iter().map(diff));
        }
        // Every answer the coordinator recorded from this region is on the agent's record
        // (unless its anchor already showed the records missing).
        for (qid, c) in coord.iter().flat_map(|(qid, cs)| cs.iter().map(move |c| (qid, c))).filter(|(_, c)| c.event.cached_from.is_none()) {
            for p in c.event.region_outcomes.iter().filter(|p| p.region == *region && p.status == "ok") {
                if at_agent.contains_key(qid) || p.record.as_ref().is_some_and(|a| broken.contains(&a.seq)) {
                    continue;
                }
                out.push(Difference {
                    query_id: qid.to_string(),
                    region: Some(region.clone()),
                    node: None,
                    seq: p.record.as_ref().map(|a| a.seq),
                    problem: "the coordinator recorded an answer from this region, but the agent has no record of the query".into(),
                });
            }
        }
    }
    out
}

/// The agent records of one query id (at one region) whose parameters no coordinator
/// record of that id sent there, matched pairwise: a coordinator record sent its question
/// `attempts` times, so it accounts for that many agent records. First the pairs the
/// coordinator's anchors name (its record holds the seq of the agent's record of the
/// answer): a pair whose parameters differ is reported as such. Then each other agent
/// record takes a coordinator record with the same parameters that still has sendings
/// left; one that finds none is reported with what the coordinator did send, unless the
/// agent recorded the id more often than the coordinator sent it (`replayed`, reported on
/// its own) and some coordinator record of the id has its parameters: then it is the replay.
fn unmatched_parameters(cs: &[&AuditRecord], records: &[&AuditRecord], region: &str, replayed: bool) -> Vec<String> {
    let show = |q: &Option<serde_json::Value>| q.as_ref().map(|q| norrsken_model::text::bound(&q.to_string())).unwrap_or_else(|| "(none)".into());
    // (coordinator record, its parameters, sendings left) of those that sent to the region.
    let mut senders: Vec<(&AuditRecord, Option<serde_json::Value>, u32)> = cs
        .iter()
        .filter(|c| c.event.cached_from.is_none())
        .filter_map(|c| {
            let p = c.event.region_outcomes.iter().find(|p| p.region == region)?;
            Some((*c, parameters(&c.event.query), p.attempts.unwrap_or(1)))
        })
        .collect();
    let mut out = Vec::new();
    let mut pending: Vec<&AuditRecord> = Vec::new();
    for r in records.iter().filter(|r| r.event.query.is_some()) {
        let anchored = senders.iter_mut().find(|(c, _, left)| {
            *left > 0 && c.event.region_outcomes.iter().any(|p| p.region == region && p.record.as_ref().is_some_and(|a| a.seq == r.seq))
        });
        match anchored {
            Some((c, params, left)) => {
                *left -= 1;
                if *params != parameters(&r.event.query) {
                    out.push(format!(
                        "parameters differ: the coordinator's record seq {} sent {}, the agent's record seq {} of that answer says {}",
                        c.seq,
                        show(&c.event.query),
                        r.seq,
                        show(&r.event.query)
                    ));
                }
            }
            None => pending.push(r),
        }
    }
    for r in pending {
        let mine = parameters(&r.event.query);
        match senders.iter_mut().find(|(_, params, left)| *left > 0 && *params == mine) {
            Some((_, _, left)) => *left -= 1,
            None if replayed && cs.iter().any(|c| parameters(&c.event.query) == mine) => {}
            None => out.push(format!(
                "parameters differ: the agent's record seq {} says {}, but no coordinator record of this query id sent that (it sent: {})",
                r.seq,
                show(&r.event.query),
                cs.iter().filter(|c| c.event.cached_from.is_none()).map(|c| show(&c.event.query)).collect::<Vec<_>>().join("; ")
            )),
        }
    }
    out
}

/// The region of an agent log: from its records' node names (`agent-25`).
pub fn region_of(log: &NodeLog) -> Option<String> {
    log.records.first().and_then(|r| r.node.strip_prefix("agent-").map(str::to_string))
}

/// Convenience: the display path of a file.
pub fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_common::audit::{AuditEvent, RegionPart};

    fn record(node: &str, seq: u64, event: AuditEvent) -> AuditRecord {
        AuditRecord {
            seq,
            time: "2026-12-01T10:00:00.000Z".into(),
            node: node.into(),
            event,
            sealed_records: None,
            r#final: None,
            next_file: None,
            public_key: None,
            signature: None,
            prev_hash: GENESIS.into(),
        }
    }

    fn query(id: &str) -> AuditEvent {
        AuditEvent { kind: "query".into(), outcome: "ok".into(), query_id: Some(id.into()), ..Default::default() }
    }

    #[test]
    fn a_rewritten_agent_log_is_named_between_the_anchors_that_still_agree() {
        let agent = NodeLog::from_records((0..6).map(|i| record("agent-25", i, query(&format!("q{i}")))).collect());
        let part = |seq: u64, hash: &str| RegionPart { region: "25".into(), status: "ok".into(), message: String::new(), attempts: Some(1), record: Some(Anchor { seq, hash: hash.into() }) };
        let relayed = |id: &str, p: RegionPart| AuditEvent { regions: vec!["25".into()], region_outcomes: vec![p], ..query(id) };
        // The coordinator holds the true hashes of records 1 and 4 (records 0..5 are q0..q5).
        let coordinator = NodeLog::from_records(vec![
            record("coordinator", 0, relayed("q1", part(1, &agent.hashes[1]))),
            record("coordinator", 1, relayed("q4", part(4, &agent.hashes[4]))),
        ]);
        let honest = reconcile(&coordinator, &[("25".into(), agent.clone())]);
        let relayed_ids: Vec<&str> = honest.iter().map(|d| d.query_id.as_str()).collect();
        assert_eq!(relayed_ids, ["q0", "q2", "q3", "q5"], "only the queries the coordinator did not relay: {honest:?}");
        // Record 3 on is rewritten by the operator (same seqs, other contents).
        let mut records = agent.records.clone();
        for r in records.iter_mut().skip(3) {
            r.event.indicator = Some("rewritten".into());
        }
        let rewritten = NodeLog::from_records(records);
        let diffs = reconcile(&coordinator, &[("25".into(), rewritten)]);
        let chain = diffs.iter().find(|d| d.node.as_deref() == Some("agent-25")).unwrap();
        assert_eq!(chain.seq, Some(4));
        assert!(chain.problem.contains("rewritten between seq 2 and 4"), "{}", chain.problem);
    }
}
