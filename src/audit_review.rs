//! Reviewing audit logs (a tool for auditors, not part of the nodes): verification of the chain and its seals, filtering and summaries,
//! and reconciliation of the coordinator's log against the agents'.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;

use norrsken_common::audit::{line_hash, read_records, seal_message, AuditError, AuditRecord, GENESIS};

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

/// Verifies a chain of log files. With `key`, every seal must be signed by it; without,
/// seals are checked against the key they name (which proves integrity, not origin).
/// `allow_unsealed_tail` accepts records after the last seal (a live log).
pub fn verify(files: &[PathBuf], key: Option<&VerifyingKey>, allow_unsealed_tail: bool) -> Result<Verification, AuditError> {
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
                if record.seq == 0 && record.prev_hash != GENESIS {
                    v.problem = Some(fail(Some(0), "the first record does not start a chain".into()));
                    return Ok(v);
                }
                if record.seq != 0 {
                    v.notes.push(format!("the chain starts at seq {} (earlier files were not given or were removed by retention)", record.seq));
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
        if !self.all_kinds && matches!(e.kind.as_str(), "seal" | "node_start" | "recovery") {
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

/// One difference between the coordinator's and the agents' logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub query_id: String,
    pub region: Option<String>,
    pub problem: String,
}

/// Reconciles: every agent query record has a coordinator record with the same query id and
/// parameters that asked that region, and every region the coordinator says answered has
/// the agent's record. `agent_logs` are (region, records).
pub fn reconcile(coordinator: &[AuditRecord], agent_logs: &[(String, Vec<AuditRecord>)]) -> Vec<Difference> {
    let mut out = Vec::new();
    let coord: BTreeMap<&str, &AuditRecord> = coordinator
        .iter()
        .filter(|r| r.event.kind == "query")
        .filter_map(|r| r.event.query_id.as_deref().map(|q| (q, r)))
        .collect();
    let regions_with_logs: BTreeSet<&str> = agent_logs.iter().map(|(r, _)| r.as_str()).collect();
    let mut seen_at_agents: BTreeSet<(String, String)> = BTreeSet::new();
    for (region, records) in agent_logs {
        for r in records.iter().filter(|r| r.event.kind == "query" || (r.event.kind == "refused" && r.event.query_id.is_some())) {
            let Some(qid) = r.event.query_id.clone() else { continue };
            seen_at_agents.insert((qid.clone(), region.clone()));
            match coord.get(qid.as_str()) {
                None => out.push(Difference {
                    query_id: qid,
                    region: Some(region.clone()),
                    problem: "reached the agent but has no coordinator record (did not pass the coordinator)".into(),
                }),
                Some(c) => {
                    if !c.event.regions.iter().any(|g| g == region) {
                        out.push(Difference { query_id: qid.clone(), region: Some(region.clone()), problem: "the coordinator did not ask this region".into() });
                    }
                    if c.event.query != r.event.query {
                        out.push(Difference {
                            query_id: qid,
                            region: Some(region.clone()),
                            problem: format!(
                                "parameters differ: coordinator {} / agent {}",
                                c.event.query.as_ref().map(|q| q.to_string()).unwrap_or_default(),
                                r.event.query.as_ref().map(|q| q.to_string()).unwrap_or_default()
                            ),
                        });
                    }
                }
            }
        }
    }
    for (qid, c) in coord.iter().filter(|(_, c)| c.event.cached_from.is_none()) {
        for part in &c.event.region_outcomes {
            if part.status == "ok" && regions_with_logs.contains(part.region.as_str()) && !seen_at_agents.contains(&(qid.to_string(), part.region.clone())) {
                out.push(Difference {
                    query_id: qid.to_string(),
                    region: Some(part.region.clone()),
                    problem: "the coordinator recorded an answer from this region, but the agent has no record".into(),
                });
            }
        }
    }
    out
}

/// The region of an agent log: from its records' node names (`agent-25`).
pub fn region_of(records: &[AuditRecord]) -> Option<String> {
    records.first().and_then(|r| r.node.strip_prefix("agent-").map(str::to_string))
}

/// Convenience: the display path of a file.
pub fn display(p: &Path) -> String {
    p.display().to_string()
}
