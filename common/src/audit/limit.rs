//! Rate limiting of refusal records, per identity and per source address: a flood of
//! refused requests cannot fill the audit disk, whether it comes under one certificate or
//! under a fresh certificate for every connection. Within a window each identity (certificate
//! fingerprint) and each source address (without port) get a number of records one by one;
//! a refusal is recorded when both of its buckets have room, otherwise it is counted in the
//! bucket that is full, and one `suppressed` record with the count is written when that
//! bucket's window ends (at the next refusal or seal after it, and at shutdown).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{AuditEvent, Who};

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Record,
    Suppress,
}

/// The most distinct identities a source address's summary counts one by one.
const MAX_IDENTITIES_COUNTED: usize = 10_000;

struct Bucket {
    start: Instant,
    recorded: u32,
    suppressed: u64,
    first_time: String,
    last_time: String,
    last_reason: String,
    requester: Option<Who>,
    peer: Option<String>,
    /// For a source address: the identities whose refusals were suppressed under it.
    identities: HashSet<String>,
}

/// The per-identity and per-address windows.
pub struct RefusalLimiter {
    per_identity: u32,
    per_address: u32,
    window: Duration,
    buckets: HashMap<String, Bucket>,
}

/// The key a refusal is counted under by its identity: the certificate fingerprint.
fn identity_key(event: &AuditEvent) -> Option<String> {
    event.requester.as_ref().map(|w| format!("cert {}", w.fingerprint))
}

/// The key a refusal is counted under by its source: the peer's address without port.
fn address_key(event: &AuditEvent) -> Option<String> {
    let p = event.peer.as_ref()?;
    let host = match p.rsplit_once(':') {
        // `[::1]:5000` and `127.0.0.1:5000`; a bare IPv6 address has colons but no port.
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && (h.starts_with('[') || !h.contains(':')) => h,
        _ => p.as_str(),
    };
    Some(format!("peer {}", host.trim_start_matches('[').trim_end_matches(']')))
}

/// The keys a refusal is counted under: its identity and its source address (either may be
/// unknown), or `anonymous` when neither is known.
pub fn refusal_keys(event: &AuditEvent) -> Vec<String> {
    let keys: Vec<String> = identity_key(event).into_iter().chain(address_key(event)).collect();
    if keys.is_empty() {
        vec!["anonymous".into()]
    } else {
        keys
    }
}

impl RefusalLimiter {
    /// `per_identity` records per certificate and `per_address` per source address, each
    /// per `window`.
    pub fn new(per_identity: u32, per_address: u32, window: Duration) -> RefusalLimiter {
        RefusalLimiter { per_identity, per_address, window, buckets: HashMap::new() }
    }

    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("cert ") {
            self.per_identity
        } else {
            self.per_address
        }
    }

    /// Decides about one refusal at `now` (wall time `time` for the summary). Returns the
    /// summaries of the windows of its keys that ended with suppressions.
    pub fn admit(&mut self, event: &AuditEvent, now: Instant, time: &str) -> (Decision, Vec<AuditEvent>) {
        let keys = refusal_keys(event);
        let mut summaries = Vec::new();
        for key in &keys {
            if self.buckets.get(key).is_some_and(|b| now.duration_since(b.start) >= self.window) {
                if let Some(b) = self.buckets.remove(key) {
                    summaries.extend(summary_of(key, b, self.window));
                }
            }
        }
        for key in &keys {
            self.buckets.entry(key.clone()).or_insert_with(|| Bucket {
                start: now,
                recorded: 0,
                suppressed: 0,
                first_time: String::new(),
                last_time: String::new(),
                last_reason: String::new(),
                requester: event.requester.clone(),
                peer: event.peer.clone(),
                identities: HashSet::new(),
            });
        }
        // The source address's bucket is the one a full one is counted in first: it is the
        // one a flood under fresh certificates fills.
        let full = keys.iter().rev().find(|k| self.buckets.get(*k).is_some_and(|b| b.recorded >= self.limit_of(k))).cloned();
        let Some(full) = full else {
            for key in &keys {
                if let Some(b) = self.buckets.get_mut(key) {
                    b.recorded += 1;
                }
            }
            return (Decision::Record, summaries);
        };
        if let Some(b) = self.buckets.get_mut(&full) {
            if b.suppressed == 0 {
                b.first_time = time.to_string();
            }
            b.suppressed += 1;
            b.last_time = time.to_string();
            b.last_reason = format!("{}: {}", event.operation.clone().unwrap_or_else(|| event.kind.clone()), event.reason.clone().unwrap_or_default());
            if let Some(w) = &event.requester {
                if b.identities.len() < MAX_IDENTITIES_COUNTED {
                    b.identities.insert(w.fingerprint.clone());
                }
            }
        }
        (Decision::Suppress, summaries)
    }

    /// Summaries of the windows that have ended by `now` (all windows when `all`).
    pub fn drain(&mut self, now: Instant, all: bool) -> Vec<AuditEvent> {
        let window = self.window;
        let ended: Vec<String> = self.buckets.iter().filter(|(_, b)| all || now.duration_since(b.start) >= window).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        for k in ended {
            if let Some(b) = self.buckets.remove(&k) {
                out.extend(summary_of(&k, b, window));
            }
        }
        out
    }
}

fn summary_of(key: &str, b: Bucket, window: Duration) -> Option<AuditEvent> {
    if b.suppressed == 0 {
        return None;
    }
    let by_address = !key.starts_with("cert ");
    let whose = if by_address {
        let n = b.identities.len();
        let more = if n >= MAX_IDENTITIES_COUNTED { "at least " } else { "" };
        format!("from the source address {} ({more}{n} distinct certificate(s) among them)", key.trim_start_matches("peer "))
    } else {
        "of this identity".to_string()
    };
    Some(AuditEvent {
        kind: "suppressed".into(),
        outcome: "refused".into(),
        // A summary of an address names the address, not the first of its identities.
        requester: if by_address { None } else { b.requester },
        peer: b.peer,
        suppressed: Some(b.suppressed),
        reason: Some(format!(
            "{} more refusals {whose} from {} to {} were not recorded one by one ({} are recorded per {} s); the last: {}",
            b.suppressed,
            b.first_time,
            b.last_time,
            b.recorded,
            window.as_secs(),
            norrsken_model::text::bound(&b.last_reason).chars().take(300).collect::<String>()
        )),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(cn: &str, peer: Option<&str>) -> AuditEvent {
        AuditEvent {
            kind: "refused".into(),
            outcome: "refused".into(),
            requester: Some(Who { cn: cn.into(), subject: format!("CN={cn}"), fingerprint: format!("sha256:{cn}") }),
            peer: peer.map(str::to_string),
            operation: Some("recipes".into()),
            reason: Some("no role".into()),
            ..Default::default()
        }
    }

    #[test]
    fn records_a_few_per_identity_and_counts_the_rest() {
        let mut l = RefusalLimiter::new(3, 100, Duration::from_secs(60));
        let t0 = Instant::now();
        let decisions: Vec<Decision> = (0..10).map(|_| l.admit(&refusal("mallory", None), t0, "t").0).collect();
        assert_eq!(decisions.iter().filter(|d| **d == Decision::Record).count(), 3);
        // Another identity has its own window.
        assert_eq!(l.admit(&refusal("eve", None), t0, "t").0, Decision::Record);
        assert!(l.drain(t0 + Duration::from_secs(1), false).is_empty(), "the window has not ended");
        // After the window: the next refusal is recorded, with the summary of the last window.
        let (d, summaries) = l.admit(&refusal("mallory", None), t0 + Duration::from_secs(61), "t2");
        assert_eq!(d, Decision::Record);
        let s = &summaries[0];
        assert_eq!((s.kind.as_str(), s.suppressed), ("suppressed", Some(7)));
        assert_eq!(s.requester.as_ref().unwrap().cn, "mallory");
        // At shutdown every window is summarised (eve had nothing suppressed).
        for _ in 0..5 {
            l.admit(&refusal("eve", None), t0 + Duration::from_secs(2), "t");
        }
        let all = l.drain(t0 + Duration::from_secs(3), true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].suppressed, Some(3));
    }

    #[test]
    fn a_fresh_certificate_per_refusal_is_limited_by_its_source_address() {
        let mut l = RefusalLimiter::new(3, 10, Duration::from_secs(60));
        let t0 = Instant::now();
        let recorded = (0..90).filter(|i| l.admit(&refusal(&format!("fresh-{i}"), Some("127.0.0.1:40000")), t0, "t").0 == Decision::Record).count();
        assert_eq!(recorded, 10, "ten per address, whatever the certificates");
        // Another address has its own window; the port does not make another address.
        assert_eq!(l.admit(&refusal("fresh-x", Some("10.0.0.7:1")), t0, "t").0, Decision::Record);
        assert_eq!(l.admit(&refusal("fresh-y", Some("127.0.0.1:40001")), t0, "t").0, Decision::Suppress);
        let all = l.drain(t0, true);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].suppressed, Some(81));
        let reason = all[0].reason.as_deref().unwrap();
        assert!(reason.contains("from the source address 127.0.0.1 (81 distinct certificate(s)"), "{reason}");
        assert!(all[0].requester.is_none() && all[0].peer.is_some());
        // IPv6 addresses lose their port, not their colons.
        assert_eq!(refusal_keys(&refusal("a", Some("[::1]:5000"))), ["cert sha256:a", "peer ::1"]);
        assert_eq!(refusal_keys(&AuditEvent::default()), ["anonymous"]);
    }
}
