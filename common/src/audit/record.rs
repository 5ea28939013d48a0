//! What an audit record holds, and the hashes that chain records and answers.

use super::*;

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

pub use norrsken_model::anchor::{Anchor, ANCHOR_HASH_KEY, ANCHOR_SEQ_KEY};

/// One region's part, as the coordinator records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPart {
    pub region: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// How often the query was sent to the agent (retries included; 0 when it was not sent,
    /// as with an open circuit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The agent's audit record of its answer, as the answer named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Anchor>,
}

/// What happened: one request, a refusal, a TLS failure, an audit-log access, a start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `genesis`, `query`, `refused`, `tls_refused`, `audit_access`, `suppressed`,
    /// `node_start`, `recovery`, `seal`.
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
    /// Network peer, for TLS failures and refusals before a request reached the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The operation refused, for refusals of anything but a query (`recipes`, `describe`,
    /// `action`, or the gRPC path of a request refused before it reached the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The size of an oversize request, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<u64>,
    /// At an agent: the relaying coordinator's audit chain head when it relayed the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayer_head: Option<Anchor>,
    /// `suppressed` records: how many refusals of this identity were not recorded one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    /// `sql` records: the statement's text (bounded), as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// `sql` records: the ids of the indicator queries the statement became (each has its own
    /// `query` record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<String>,
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
    /// Seal and genesis records: the signing key (base64 of the 32-byte Ed25519 public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Seal and genesis records: base64 Ed25519 signature of [`seal_message`] or
    /// [`genesis_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub prev_hash: String,
}

/// The bytes a seal signs.
pub fn seal_message(node: &str, seq: u64, time: &str, prev_hash: &str, is_final: bool, next_file: Option<&str>) -> Vec<u8> {
    format!("norrsken-audit-seal\n{node}\n{seq}\n{time}\n{prev_hash}\n{is_final}\n{}", next_file.unwrap_or("")).into_bytes()
}

/// The bytes a genesis record signs: the node, the time the chain was created and the key.
pub fn genesis_message(node: &str, time: &str, public_key: &str) -> Vec<u8> {
    format!("norrsken-audit-genesis\n{node}\n{time}\n{public_key}").into_bytes()
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
