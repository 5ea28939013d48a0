//! Rate limiting of refusal records, per identity: a flood of refused requests cannot fill
//! the audit disk. Within a window each identity gets a number of records one by one; the
//! refusals beyond are counted, and one `suppressed` record with the count is written when
//! the window ends (at the next refusal or seal after it, and at shutdown).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{AuditEvent, Who};

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Record,
    Suppress,
}

struct Bucket {
    start: Instant,
    recorded: u32,
    suppressed: u64,
    first_time: String,
    last_time: String,
    last_reason: String,
    requester: Option<Who>,
    peer: Option<String>,
}

/// The per-identity windows.
pub struct RefusalLimiter {
    per_window: u32,
    window: Duration,
    buckets: HashMap<String, Bucket>,
}

/// The key a refusal is counted under: the certificate fingerprint, else the peer's address
/// without port, else `anonymous`.
pub fn refusal_key(event: &AuditEvent) -> String {
    if let Some(w) = &event.requester {
        return format!("cert {}", w.fingerprint);
    }
    if let Some(p) = &event.peer {
        let host = p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h);
        return format!("peer {host}");
    }
    "anonymous".into()
}

impl RefusalLimiter {
    pub fn new(per_window: u32, window: Duration) -> RefusalLimiter {
        RefusalLimiter { per_window, window, buckets: HashMap::new() }
    }

    /// Decides about one refusal at `now` (wall time `time` for the summary). Returns the
    /// summary of this identity's previous window when that window ended with suppressions.
    pub fn admit(&mut self, event: &AuditEvent, now: Instant, time: &str) -> (Decision, Option<AuditEvent>) {
        let key = refusal_key(event);
        let mut summary = None;
        if let Some(b) = self.buckets.get(&key) {
            if now.duration_since(b.start) >= self.window {
                if let Some(b) = self.buckets.remove(&key) {
                    summary = summary_of(b, self.window);
                }
            }
        }
        let b = self.buckets.entry(key).or_insert_with(|| Bucket {
            start: now,
            recorded: 0,
            suppressed: 0,
            first_time: String::new(),
            last_time: String::new(),
            last_reason: String::new(),
            requester: event.requester.clone(),
            peer: event.peer.clone(),
        });
        if b.recorded < self.per_window {
            b.recorded += 1;
            return (Decision::Record, summary);
        }
        if b.suppressed == 0 {
            b.first_time = time.to_string();
        }
        b.suppressed += 1;
        b.last_time = time.to_string();
        b.last_reason = format!("{}: {}", event.operation.clone().unwrap_or_else(|| event.kind.clone()), event.reason.clone().unwrap_or_default());
        (Decision::Suppress, summary)
    }

    /// Summaries of the windows that have ended by `now` (all windows when `all`).
    pub fn drain(&mut self, now: Instant, all: bool) -> Vec<AuditEvent> {
        let window = self.window;
        let ended: Vec<String> = self.buckets.iter().filter(|(_, b)| all || now.duration_since(b.start) >= window).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        for k in ended {
            if let Some(b) = self.buckets.remove(&k) {
                out.extend(summary_of(b, window));
            }
        }
        out
    }
}

fn summary_of(b: Bucket, window: Duration) -> Option<AuditEvent> {
    (b.suppressed > 0).then(|| AuditEvent {
        kind: "suppressed".into(),
        outcome: "refused".into(),
        requester: b.requester,
        peer: b.peer,
        suppressed: Some(b.suppressed),
        reason: Some(format!(
            "{} more refusals of this identity from {} to {} were not recorded one by one ({} are recorded per {} s); the last: {}",
            b.suppressed,
            b.first_time,
            b.last_time,
            b.recorded,
            window.as_secs(),
            crate::text::bound(&b.last_reason).chars().take(300).collect::<String>()
        )),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(cn: &str) -> AuditEvent {
        AuditEvent {
            kind: "refused".into(),
            outcome: "refused".into(),
            requester: Some(Who { cn: cn.into(), subject: format!("CN={cn}"), fingerprint: format!("sha256:{cn}") }),
            operation: Some("recipes".into()),
            reason: Some("no role".into()),
            ..Default::default()
        }
    }

    #[test]
    fn records_a_few_per_identity_and_counts_the_rest() {
        let mut l = RefusalLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let decisions: Vec<Decision> = (0..10).map(|_| l.admit(&refusal("mallory"), t0, "t").0).collect();
        assert_eq!(decisions.iter().filter(|d| **d == Decision::Record).count(), 3);
        // Another identity has its own window.
        assert_eq!(l.admit(&refusal("eve"), t0, "t").0, Decision::Record);
        assert!(l.drain(t0 + Duration::from_secs(1), false).is_empty(), "the window has not ended");
        // After the window: the next refusal is recorded, with the summary of the last window.
        let (d, summary) = l.admit(&refusal("mallory"), t0 + Duration::from_secs(61), "t2");
        assert_eq!(d, Decision::Record);
        let s = summary.unwrap();
        assert_eq!((s.kind.as_str(), s.suppressed), ("suppressed", Some(7)));
        assert_eq!(s.requester.unwrap().cn, "mallory");
        // At shutdown every window is summarised (eve had nothing suppressed).
        for _ in 0..5 {
            l.admit(&refusal("eve"), t0 + Duration::from_secs(2), "t");
        }
        let all = l.drain(t0 + Duration::from_secs(3), true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].suppressed, Some(3));
    }
}
