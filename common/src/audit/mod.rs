//! Tamper-evident audit logs, written by the coordinator and every agent.
//!
//! A log is a chain of JSON Lines records across files `audit-NNNNNN-YYYYMMDD.jsonl`. Every
//! record carries `seq` (one more than the previous) and `prev_hash`, the SHA-256 of the
//! previous record's exact line, so editing, deleting, inserting or reordering a record
//! breaks the chain. The node signs the chain head with its own Ed25519 key in `seal`
//! records: when a file is rotated, at a configurable interval, and at shutdown, so a log
//! cut short ends in unsealed records. Writes are durable (fsync) before the node answers:
//! no record, no answer. See docs/audit.md.

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
    /// Refusals recorded one by one per identity and minute; beyond, they are counted in
    /// one `suppressed` record, so a flood cannot fill the disk. Queries that were answered
    /// are always recorded.
    #[serde(default = "default_refusals_per_minute")]
    pub refusals_per_minute: u32,
    /// Refusals recorded one by one per source address and minute, whatever certificates
    /// they came with (a flood under a fresh certificate per connection); beyond, counted
    /// in one `suppressed` record for the address.
    #[serde(default = "default_refusals_per_address_per_minute")]
    pub refusals_per_address_per_minute: u32,
}

fn default_refusals_per_address_per_minute() -> u32 {
    60
}

fn default_refusals_per_minute() -> u32 {
    30
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
            refusals_per_minute: default_refusals_per_minute(),
            refusals_per_address_per_minute: default_refusals_per_address_per_minute(),
        }
    }
}

mod keys;
mod limit;
mod log;
mod record;

pub use keys::*;
pub use limit::*;
pub use log::*;
pub use record::*;

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
        assert_eq!(parsed[0].event.kind, "genesis", "a chain starts with its genesis record");
        assert_eq!(parsed.iter().filter(|r| r.event.kind == "genesis").count(), 1, "a reopened log continues its chain");
        for w in records.windows(2) {
            let next: AuditRecord = serde_json::from_slice(&w[1].2).unwrap();
            assert_eq!(next.prev_hash, line_hash(&w[0].2));
        }
        assert!(public_path(&config.signing_key).is_file());
        let _ = std::fs::remove_dir_all(&d);
    }
}
