//! A place in a node's audit chain, as answers carry it (wire contract).

use serde::{Deserialize, Serialize};

/// A place in a node's chain: a record's sequence number and the hash of its line. A node
/// hands its anchors to the other nodes, which record them: a log cut back, rewritten or
/// missing records no longer holds what another node was told (see `audit reconcile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

/// Schema metadata keys of the anchor an answer carries: the answering node's audit record
/// of that answer.
pub const ANCHOR_SEQ_KEY: &str = "norrsken.audit_seq";
pub const ANCHOR_HASH_KEY: &str = "norrsken.audit_hash";

impl Anchor {
    /// The anchor in an answer's schema metadata, when it carries one.
    pub fn from_metadata(md: &std::collections::HashMap<String, String>) -> Option<Anchor> {
        let seq = md.get(ANCHOR_SEQ_KEY)?.parse().ok()?;
        let hash = md.get(ANCHOR_HASH_KEY)?;
        (hash.starts_with("sha256:") && hash.len() == 71).then(|| Anchor { seq, hash: hash.clone() })
    }

    /// Adds the anchor to schema metadata.
    pub fn to_metadata(&self, md: &mut std::collections::HashMap<String, String>) {
        md.insert(ANCHOR_SEQ_KEY.into(), self.seq.to_string());
        md.insert(ANCHOR_HASH_KEY.into(), self.hash.clone());
    }
}

