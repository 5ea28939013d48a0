//! A per-requester limit on the questions the coordinator sends on to the agents.
//!
//! Every question the coordinator cannot answer from its cache costs every region work, so
//! one requester (a script, a flood) could take the regions' capacity from everyone else
//! (design invariant 12). Each requester (by certificate fingerprint) has a token bucket:
//! `uncached_burst` questions at once, refilled at `uncached_per_minute`. A question
//! answered from the coordinator's cache costs nothing. A question beyond the limit is
//! refused openly, naming the limit, how many the requester asked and when they may ask
//! again; it never changes what anyone's answers contain (invariant 11).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use norrsken_common::error::NodeError;
use serde::{Deserialize, Serialize};

/// `[limits]` in coordinator.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Uncached questions a requester may ask per minute, on average (0: no limit).
    #[serde(default = "default_per_minute")]
    pub uncached_per_minute: u32,
    /// Uncached questions a requester may ask at once (a regional report asks up to 80).
    #[serde(default = "default_burst")]
    pub uncached_burst: u32,
}

fn default_per_minute() -> u32 {
    60
}
fn default_burst() -> u32 {
    120
}

impl Default for LimitSettings {
    fn default() -> LimitSettings {
        LimitSettings { uncached_per_minute: default_per_minute(), uncached_burst: default_burst() }
    }
}

/// How far back "how many were asked" counts.
const WINDOW: Duration = Duration::from_secs(60);
/// The most attempts remembered per requester (the count says "at least" beyond).
const MAX_REMEMBERED: usize = 4096;
/// Requesters idle this long are forgotten (their bucket is full again by then).
const IDLE: Duration = Duration::from_secs(600);

struct Bucket {
    tokens: f64,
    last: Instant,
    /// When the requester asked uncached questions in the last minute (answered or not).
    asked: VecDeque<Instant>,
}

/// The buckets of every requester.
pub struct RequesterLimits {
    settings: LimitSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RequesterLimits {
    pub fn new(settings: LimitSettings) -> RequesterLimits {
        RequesterLimits { settings, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Admits one uncached question of `requester` (a certificate fingerprint) at `now`, or
    /// refuses it naming the limit, how many were asked and when to ask again.
    pub fn admit(&self, requester: &str, now: Instant) -> Result<(), NodeError> {
        let (rate, burst) = (self.settings.uncached_per_minute, self.settings.uncached_burst.max(1));
        if rate == 0 {
            return Ok(());
        }
        let per_second = f64::from(rate) / 60.0;
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() > 1024 {
            map.retain(|_, b| now.duration_since(b.last) < IDLE);
        }
        let b = map.entry(requester.to_string()).or_insert_with(|| Bucket { tokens: f64::from(burst), last: now, asked: VecDeque::new() });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * per_second).min(f64::from(burst));
        b.last = now;
        while b.asked.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            b.asked.pop_front();
        }
        if b.asked.len() >= MAX_REMEMBERED {
            b.asked.pop_front();
        }
        b.asked.push_back(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / per_second);
        let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let at = chrono::Utc::now() + chrono::Duration::seconds(retry_after_s as i64);
        Err(NodeError::RateLimited {
            message: format!(
                "this requester may ask {rate} questions a minute that are not answered from the coordinator's cache (bursts of up to {burst}), \
                 and asked {} in the last minute; ask again in {retry_after_s} s (at {} UTC). \
                 Questions already answered for you are served from the cache and not counted",
                b.asked.len(),
                at.format("%H:%M:%S"),
            ),
            retry_after_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_requester_and_the_refusal_names_it() {
        let l = RequesterLimits::new(LimitSettings { uncached_per_minute: 60, uncached_burst: 5 });
        let t = Instant::now();
        for _ in 0..5 {
            l.admit("sha256:mallory", t).unwrap();
        }
        let e = l.admit("sha256:mallory", t).unwrap_err();
        let NodeError::RateLimited { message, retry_after_s } = &e else { panic!("{e}") };
        assert_eq!(*retry_after_s, 1, "one a second refills");
        assert!(message.contains("60 questions a minute") && message.contains("bursts of up to 5"), "{message}");
        assert!(message.contains("asked 6 in the last minute") && message.contains("ask again in 1 s"), "{message}");
        assert_eq!(e.kind(), norrsken_common::error::ErrorKind::RateLimited);
        // Another requester has a bucket of its own.
        l.admit("sha256:alice", t).unwrap();
        // A second later one more question may go.
        l.admit("sha256:mallory", t + Duration::from_millis(1_000)).unwrap();
        assert!(l.admit("sha256:mallory", t + Duration::from_millis(1_100)).is_err());
        // No limit when the rate is 0.
        let off = RequesterLimits::new(LimitSettings { uncached_per_minute: 0, uncached_burst: 1 });
        for _ in 0..1000 {
            off.admit("x", t).unwrap();
        }
    }
}
