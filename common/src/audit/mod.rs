//! Tamper-evident audit logs, written by the coordinator and every agent.
//!
//! A log is a chain of JSON Lines records across files `audit-NNNNNN-YYYYMMDD.jsonl`. Every
//! record carries `seq` (one more than the previous) and `prev_hash`, the SHA-256 of the
//! previous record's exact line, so editing, deleting, inserting or reordering a record
//! breaks the chain. The node signs the chain head with its own Ed25519 key in `seal`
//! records: when a file is rotated, at a configurable interval, and at shutdown, so a log
//! cut short ends in unsealed records. Writes are durable (fsync) before the node answers:
//! no record, no answer. See docs/audit.md.

pub mod review;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pki::CertIdentity;

/// `prev_hash` of the first record of a chain.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("audit log {path} line {line} is corrupt ({reason}); check it with `norrsken audit verify` and move it aside")]
    Corrupt { path: String, line: usize, reason: String },
    #[error("audit signing key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// Where and how a node writes its audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Folder of the log files (the only folder the node writes besides its cache).
    pub dir: PathBuf,
    /// The node's Ed25519 signing key (PKCS#8 PEM). Created with its public key
    /// (`<file>.pub`) when it does not exist.
    pub signing_key: PathBuf,
    /// Rotate to a new file above this size.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Rotate to a new file when the (UTC) day changes.
    #[serde(default = "yes")]
    pub rotate_daily: bool,
    /// Seal (sign the chain head) at least this often while records are written.
    #[serde(default = "default_seal_interval")]
    pub seal_interval_s: u64,
    /// fsync every record before the answer leaves (turn off only to measure).
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_seal_interval() -> u64 {
    60
}
fn yes() -> bool {
    true
}

impl AuditConfig {
    pub fn in_dir(dir: &Path, signing_key: &Path) -> AuditConfig {
        AuditConfig {
            dir: dir.to_path_buf(),
            signing_key: signing_key.to_path_buf(),
            rotate_bytes: default_rotate_bytes(),
            rotate_daily: true,
            seal_interval_s: default_seal_interval(),
            fsync: true,
        }
    }
}

/// An identity as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    pub cn: String,
    pub subject: String,
    pub fingerprint: String,
}

impl From<&CertIdentity> for Who {
    fn from(id: &CertIdentity) -> Who {
        Who { cn: id.common_name.clone(), subject: id.subject.clone(), fingerprint: id.fingerprint.clone() }
    }
}

/// Released, withheld and perturbed cells of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CellCounts {
    pub released: u64,
    pub withheld: u64,
    pub perturbed: u64,
}

/// One region's part, as the coordinator records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPart {
    pub region: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What happened: one request, a refusal, a TLS failure, an audit-log access, a start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `query`, `refused`, `tls_refused`, `audit_access`, `node_start`, `recovery`.
    pub kind: String,
    /// `ok`, `partial`, `refused`, `invalid`, `error`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Who>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// At an agent: the coordinator that relayed the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed_by: Option<Who>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_hash: Option<String>,
    /// The full query parameters (normalised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
    /// Regions asked (coordinator) or the answering region (agent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region_outcomes: Vec<RegionPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<CellCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version: Option<String>,
    /// SHA-256 of the released result (Arrow IPC stream bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The answer came from the node's cache; it was computed for this earlier query id
    /// (a coordinator answering from its cache asked no agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Network peer, for TLS failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// A record as stored: the event plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: String,
    pub node: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Seal records only: records since the previous seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_records: Option<u64>,
    /// Seal records only: a clean shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#final: Option<bool>,
    /// Seal records only, at a rotation: the file the chain continues in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_file: Option<String>,
    /// Seal records only: the signing key (base64 of the 32-byte Ed25519 public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Seal records only: base64 Ed25519 signature of [`seal_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub prev_hash: String,
}

/// The bytes a seal signs.
pub fn seal_message(node: &str, seq: u64, time: &str, prev_hash: &str, is_final: bool, next_file: Option<&str>) -> Vec<u8> {
    format!("norrsken-audit-seal\n{node}\n{seq}\n{time}\n{prev_hash}\n{is_final}\n{}", next_file.unwrap_or("")).into_bytes()
}

/// `sha256:<hex>` of a record line (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(line)))
}

/// SHA-256 of an answer as released: its Arrow IPC stream bytes.
pub fn result_hash(schema: &arrow::datatypes::Schema, batches: &[arrow::record_batch::RecordBatch]) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut w) = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, schema) {
        for b in batches {
            let _ = w.write(b);
        }
        let _ = w.finish();
    }
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

/// The W3C trace id in a `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    (parts.len() == 4 && parts[1].len() == 32).then(|| parts[1].to_string())
}

/// Loads the node's signing key, creating it (and `<file>.pub`) when missing.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, AuditError> {
    let err = |reason: String| AuditError::Key { path: path.display().to_string(), reason };
    if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        return SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(format!("not an Ed25519 PKCS#8 PEM key: {e}")));
    }
    let mut secret = [0u8; 32];
    rustls::crypto::ring::default_provider().secure_random.fill(&mut secret).map_err(|_| err("no random source".into()))?;
    let key = SigningKey::from_bytes(&secret);
    write_key_pair(&key, path)?;
    Ok(key)
}

/// Writes a signing key (mode 0600) and its public key to `<path>.pub`.
pub fn write_key_pair(key: &SigningKey, path: &Path) -> Result<(), AuditError> {
    let err = |reason: String| AuditError::Key { path: path.display().to_string(), reason };
    let pem = key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).map_err(|e| err(e.to_string()))?;
    crate::pki::write_file(path, pem.as_bytes(), true).map_err(|e| err(e.to_string()))?;
    let public = public_key_pem(&key.verifying_key());
    crate::pki::write_file(&public_path(path), public.as_bytes(), false).map_err(|e| err(e.to_string()))?;
    Ok(())
}

pub fn public_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap_or_default()
}

/// Reads a public key file (SPKI PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let pem = std::fs::read_to_string(path).map_err(|e| AuditError::Key { path: path.display().to_string(), reason: e.to_string() })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| AuditError::Key { path: path.display().to_string(), reason: format!("not an Ed25519 public key: {e}") })
}

/// The log files of a folder, in chain order.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuditError::Io { path: dir.display().to_string(), reason: e.to_string() })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("audit-") && n.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    Ok(files)
}

struct Writer {
    dir: PathBuf,
    node: String,
    key: SigningKey,
    config: AuditConfig,
    file: Option<File>,
    path: PathBuf,
    len: u64,
    day: String,
    index: u64,
    next_seq: u64,
    head: String,
    unsealed: u64,
    /// Set after a failed write that could not be undone; the next append reopens the file.
    broken: bool,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn today() -> String {
    Utc::now().format("%Y%m%d").to_string()
}

fn io(path: &Path, e: std::io::Error) -> AuditError {
    AuditError::Io { path: path.display().to_string(), reason: e.to_string() }
}

impl Writer {
    fn file_name(index: u64, day: &str) -> String {
        format!("audit-{index:06}-{day}.jsonl")
    }

    /// Finds the chain head in the existing files; drops a torn last line (a write cut by a
    /// crash: that record's answer never left, because the answer waits for the write).
    fn recover(&mut self) -> Result<Option<String>, AuditError> {
        let files = log_files(&self.dir)?;
        let mut note = None;
        for path in files.iter().rev() {
            let mut f = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io(path, e))?;
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut text).map_err(|e| io(path, e))?;
            let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete < text.len() {
                f.set_len(complete as u64).map_err(|e| io(path, e))?;
                note = Some(format!("removed a torn record of {} bytes at the end of {}", text.len() - complete, path.display()));
            }
            let body = &text[..complete];
            let Some(last) = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).last() else { continue };
            let line_no = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
            let record: AuditRecord = serde_json::from_slice(last).map_err(|e| AuditError::Corrupt {
                path: path.display().to_string(),
                line: line_no,
                reason: e.to_string(),
            })?;
            self.next_seq = record.seq + 1;
            self.head = line_hash(last);
            self.unsealed = u64::from(record.event.kind != "seal");
            break;
        }
        self.index = files
            .last()
            .and_then(|p| p.file_name()?.to_str()?.get(6..12)?.parse::<u64>().ok())
            .map_or(0, |i| i);
        if let Some(last) = files.last() {
            self.open_file(last.clone())?;
            self.day = last.file_name().and_then(|n| n.to_str()).and_then(|n| n.get(13..21)).unwrap_or("").to_string();
        }
        Ok(note)
    }

    fn open_file(&mut self, path: PathBuf) -> Result<(), AuditError> {
        let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        self.len = f.metadata().map_err(|e| io(&path, e))?.len();
        self.file = Some(f);
        self.path = path;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        let day = today();
        if self.file.is_some() && self.len > 0 {
            let next = Writer::file_name(self.index + 1, &day);
            self.seal_with(false, Some(next))?;
            self.index += 1;
        }
        self.day = day;
        let path = self.dir.join(Writer::file_name(self.index, &self.day));
        self.open_file(path)
    }

    fn write_line(&mut self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Io { path: self.path.display().to_string(), reason: e.to_string() })?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let before = self.len;
        let path = self.path.clone();
        let fsync = self.config.fsync;
        let file = self.file.as_mut().ok_or_else(|| AuditError::Io { path: path.display().to_string(), reason: "not open".into() })?;
        let result = file.write_all(&line).and_then(|_| if fsync { file.sync_data() } else { file.flush() });
        if let Err(e) = result {
            // Undo a partial write so the chain stays whole; if that fails too, reopen later.
            if file.set_len(before).is_err() || file.seek(SeekFrom::End(0)).is_err() {
                self.broken = true;
            }
            return Err(io(&path, e));
        }
        self.len += line.len() as u64;
        self.head = hash;
        self.next_seq += 1;
        Ok(())
    }

    fn append(&mut self, event: AuditEvent) -> Result<u64, AuditError> {
        if self.broken {
            self.broken = false;
            self.file = None;
            self.recover()?;
        }
        if self.file.is_none() || self.len >= self.config.rotate_bytes || (self.config.rotate_daily && self.day != today()) {
            self.rotate()?;
        }
        let record = AuditRecord {
            seq: self.next_seq,
            time: now(),
            node: self.node.clone(),
            event,
            sealed_records: None,
            r#final: None,
            next_file: None,
            public_key: None,
            signature: None,
            prev_hash: self.head.clone(),
        };
        self.write_line(&record)?;
        self.unsealed += 1;
        Ok(record.seq)
    }

    fn seal(&mut self, is_final: bool) -> Result<(), AuditError> {
        if self.file.is_none() {
            self.rotate()?;
        }
        self.seal_with(is_final, None)
    }

    fn seal_with(&mut self, is_final: bool, next_file: Option<String>) -> Result<(), AuditError> {
        let time = now();
        let signature = self.key.sign(&seal_message(&self.node, self.next_seq, &time, &self.head, is_final, next_file.as_deref()));
        let b64 = base64::engine::general_purpose::STANDARD;
        let record = AuditRecord {
            seq: self.next_seq,
            time,
            node: self.node.clone(),
            event: AuditEvent { kind: "seal".into(), outcome: "ok".into(), ..Default::default() },
            sealed_records: Some(self.unsealed),
            r#final: Some(is_final),
            next_file,
            public_key: Some(b64.encode(self.key.verifying_key().as_bytes())),
            signature: Some(b64.encode(signature.to_bytes())),
            prev_hash: self.head.clone(),
        };
        self.write_line(&record)?;
        self.unsealed = 0;
        Ok(())
    }
}

/// A node's audit log.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Writer>>,
    pub node: String,
    pub dir: PathBuf,
    public_key: VerifyingKey,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({}, {})", self.node, self.dir.display())
    }
}

impl AuditLog {
    /// Opens (or starts) the log in `config.dir`, continuing an existing chain.
    pub fn open(config: &AuditConfig, node: &str) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| io(&config.dir, e))?;
        let key = load_or_create_key(&config.signing_key)?;
        let public_key = key.verifying_key();
        let mut w = Writer {
            dir: config.dir.clone(),
            node: node.to_string(),
            key,
            config: config.clone(),
            file: None,
            path: PathBuf::new(),
            len: 0,
            day: String::new(),
            index: 0,
            next_seq: 0,
            head: GENESIS.to_string(),
            unsealed: 0,
            broken: false,
        };
        let note = w.recover()?;
        let log = AuditLog { inner: Arc::new(Mutex::new(w)), node: node.to_string(), dir: config.dir.clone(), public_key };
        if let Some(reason) = note {
            log.append_blocking(AuditEvent { kind: "recovery".into(), outcome: "ok".into(), reason: Some(reason), ..Default::default() })?;
        }
        log.append_blocking(AuditEvent { kind: "node_start".into(), outcome: "ok".into(), ..Default::default() })?;
        Ok(log)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T, AuditError>) -> Result<T, AuditError> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Appends a record durably; returns its sequence number.
    pub fn append_blocking(&self, event: AuditEvent) -> Result<u64, AuditError> {
        self.with(|w| w.append(event))
    }

    /// Appends a record durably without blocking the async runtime.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.append_blocking(event))
            .await
            .map_err(|e| AuditError::Io { path: self.dir.display().to_string(), reason: e.to_string() })?
    }

    /// Signs the chain head (if records were written since the last seal, or `is_final`).
    pub fn seal(&self, is_final: bool) -> Result<(), AuditError> {
        self.with(|w| if w.unsealed > 0 || is_final { w.seal(is_final) } else { Ok(()) })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    /// The log's files, in chain order.
    pub fn files(&self) -> Result<Vec<PathBuf>, AuditError> {
        log_files(&self.dir)
    }

    /// Seals every `interval` while records are being written. The task ends with the runtime.
    pub fn spawn_sealer(&self, interval: std::time::Duration) {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let l = log.clone();
                let r = tokio::task::spawn_blocking(move || l.seal(false)).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "audit seal failed");
                }
            }
        });
    }
}

/// A log as Flight action results: one JSON object per chunk of at most 512 KiB,
/// `{"file": name, "content": text}`, chunks split at line ends.
pub fn audit_chunks(log: &AuditLog) -> Result<Vec<bytes::Bytes>, crate::error::NodeError> {
    let io = |e: AuditError| crate::error::NodeError::Internal(e.to_string());
    // Seal first, so the copy handed out is signed up to its last record.
    log.seal(false).map_err(|e| crate::error::NodeError::AuditUnavailable(e.to_string()))?;
    let mut out = Vec::new();
    for path in log.files().map_err(io)? {
        let text = std::fs::read_to_string(&path).map_err(|e| crate::error::NodeError::Internal(format!("{}: {e}", path.display())))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let mut chunk = String::new();
        for line in text.split_inclusive('\n') {
            if chunk.len() + line.len() > 512 * 1024 && !chunk.is_empty() {
                out.push(bytes::Bytes::from(serde_json::json!({"file": name, "content": chunk}).to_string()));
                chunk = String::new();
            }
            chunk.push_str(line);
        }
        out.push(bytes::Bytes::from(serde_json::json!({"file": name, "content": chunk}).to_string()));
    }
    Ok(out)
}

/// Reassembles fetched chunks into files under `dir`; returns the files written.
pub fn write_chunks(dir: &Path, chunks: &[bytes::Bytes]) -> Result<Vec<PathBuf>, AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut contents: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for c in chunks {
        let v: serde_json::Value = serde_json::from_slice(c).map_err(|e| AuditError::Io { path: dir.display().to_string(), reason: format!("bad chunk: {e}") })?;
        let name = v["file"].as_str().unwrap_or("").to_string();
        if !(name.starts_with("audit-") && name.ends_with(".jsonl") && !name.contains('/')) {
            return Err(AuditError::Io { path: dir.display().to_string(), reason: format!("unexpected file name '{name}'") });
        }
        contents.entry(name).or_default().push_str(v["content"].as_str().unwrap_or(""));
    }
    for (name, text) in contents {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        files.push(path);
    }
    Ok(files)
}

/// Reads every record of a set of files, with its file, line and raw bytes.
pub fn read_records(files: &[PathBuf]) -> Result<Vec<(PathBuf, usize, Vec<u8>)>, AuditError> {
    let mut out = Vec::new();
    for path in files {
        let f = File::open(path).map_err(|e| io(path, e))?;
        let mut reader = BufReader::new(f);
        let mut line_no = 0;
        loop {
            let mut buf = Vec::new();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| io(path, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if !buf.is_empty() {
                out.push((path.clone(), line_no, buf));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("norrsken-audit-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_chain_and_a_reopened_log_continues() {
        crate::tls::install_crypto_provider();
        let d = temp("chain");
        let config = AuditConfig::in_dir(&d.join("log"), &d.join("node.key"));
        let log = AuditLog::open(&config, "agent-25").unwrap();
        for i in 0..3 {
            log.append_blocking(AuditEvent { kind: "query".into(), outcome: "ok".into(), query_id: Some(format!("q{i}")), ..Default::default() }).unwrap();
        }
        log.seal(true).unwrap();
        drop(log);
        let log = AuditLog::open(&config, "agent-25").unwrap();
        log.append_blocking(AuditEvent { kind: "query".into(), outcome: "ok".into(), ..Default::default() }).unwrap();
        log.seal(true).unwrap();
        let records = read_records(&log.files().unwrap()).unwrap();
        let parsed: Vec<AuditRecord> = records.iter().map(|(_, _, l)| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(parsed.iter().map(|r| r.seq).collect::<Vec<_>>(), (0..parsed.len() as u64).collect::<Vec<_>>());
        assert_eq!(parsed[0].prev_hash, GENESIS);
        for w in records.windows(2) {
            let next: AuditRecord = serde_json::from_slice(&w[1].2).unwrap();
            assert_eq!(next.prev_hash, line_hash(&w[0].2));
        }
        assert!(public_path(&config.signing_key).is_file());
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// Durable (fsync) and buffered appends both make a verifiable chain; the per-record
    /// cost is printed (`--nocapture`) and recorded in BENCHMARKS.md.
    #[test]
    fn durable_and_buffered_appends_both_chain() {
        crate::tls::install_crypto_provider();
        for fsync in [true, false] {
            let d = std::env::temp_dir().join(format!("norrsken-audit-cost-{}-{fsync}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            let config = AuditConfig { fsync, ..AuditConfig::in_dir(&d.join("log"), &d.join("k.pem")) };
            let log = AuditLog::open(&config, "coordinator").unwrap();
            let n = 200;
            let t = std::time::Instant::now();
            for _ in 0..n {
                log.append_blocking(AuditEvent { kind: "query".into(), outcome: "ok".into(), ..Default::default() }).unwrap();
            }
            let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            eprintln!("audit append with fsync={fsync}: {per:.0} µs per record");
            log.seal(true).unwrap();
            let v = review::verify(&log.files().unwrap(), Some(&log.public_key()), false).unwrap();
            assert!(v.ok(), "{:?}", v.problem);
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}
