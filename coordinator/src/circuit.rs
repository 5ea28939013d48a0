//! One circuit per region: a region that missed the coordinator's own deadline
//! (`agent_timeout_ms`) or could not be reached is not asked again until it answers a health
//! probe, so that while a region is silent every later query answers at once, partially,
//! instead of waiting out its deadline again.
//!
//! Only the coordinator's own judgement opens a circuit: its configured deadline, a
//! connection that fails, a health probe that is not answered. A question that asked for a
//! shorter deadline (`options.deadline_ms`, or the caller's gRPC deadline) and did not get
//! its answer in time is told so (that region `timeout`), but it does not trip the circuit,
//! so no requester's deadline takes other requesters' answers away (design invariant 12).
//! The call itself runs on within the coordinator's deadline and its own end judges the
//! region. Such a miss also makes the coordinator probe the region itself (at most one such
//! check per region at a time and per probe interval); the circuit opens if that probe
//! fails.
//!
//! Closed: the region is asked. Open: it is not asked (`unavailable`, "not asked") and is
//! probed every `probe_interval_ms`; half-open while a probe is out; a probe answered closes
//! the circuit, so full answers return within about one probe interval of the region's
//! return. A region that answers probes but keeps missing query deadlines (alive but slow)
//! trips again at once, and waits twice as long before its next probe each time (up to
//! `max_probe_delay_ms`), until it answers a query. Plain state, no network: the query
//! service and the prober drive it.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `[circuit]` in coordinator.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSettings {
    /// Stop asking a region that missed its deadline or was unreachable until it answers a
    /// health probe.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often an open circuit's region is probed (`health` action).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_ms: u64,
    /// How long a probe waits.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout_ms: u64,
    /// The longest wait before probing a region that keeps missing query deadlines.
    #[serde(default = "default_max_probe_delay")]
    pub max_probe_delay_ms: u64,
}

fn default_max_probe_delay() -> u64 {
    60_000
}

fn yes() -> bool {
    true
}
fn default_probe_interval() -> u64 {
    1_000
}
fn default_probe_timeout() -> u64 {
    1_000
}

impl Default for CircuitSettings {
    fn default() -> CircuitSettings {
        CircuitSettings {
            enabled: true,
            probe_interval_ms: default_probe_interval(),
            probe_timeout_ms: default_probe_timeout(),
            max_probe_delay_ms: default_max_probe_delay(),
        }
    }
}

/// A region's circuit state.
#[derive(Debug, Clone, PartialEq)]
pub enum CircuitState {
    Closed,
    /// Not asked since `since`, for `reason`; probed from `probe_at` on; `probing` while a
    /// probe is out (half-open).
    Open { since: Instant, reason: String, probe_at: Instant, probing: bool },
}

struct Circuit {
    state: CircuitState,
    /// Trips since the region last answered a query.
    trips: u32,
    /// When the last check after a missed requester deadline started, and whether it is
    /// still out.
    checked_at: Option<Instant>,
    checking: bool,
}

/// The circuits of every region.
pub struct Circuits {
    settings: CircuitSettings,
    states: RwLock<HashMap<String, Mutex<Circuit>>>,
}

impl Circuits {
    pub fn new(settings: CircuitSettings) -> Circuits {
        Circuits { settings, states: RwLock::new(HashMap::new()) }
    }

    pub fn settings(&self) -> &CircuitSettings {
        &self.settings
    }

    fn with<T>(&self, region: &str, f: impl FnOnce(&mut Circuit) -> T) -> T {
        {
            let map = match self.states.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(m) = map.get(region) {
                let mut s = match m.lock() {
                    Ok(s) => s,
                    Err(p) => p.into_inner(),
                };
                return f(&mut s);
            }
        }
        let mut map = match self.states.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let m = map.entry(region.to_string()).or_insert_with(|| Mutex::new(Circuit { state: CircuitState::Closed, trips: 0, checked_at: None, checking: false }));
        let mut s = match m.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&mut s)
    }

    /// Why a region is not to be asked now, when its circuit is open.
    pub fn refuses(&self, region: &str, now: Instant) -> Option<String> {
        if !self.settings.enabled {
            return None;
        }
        self.with(region, |c| match &c.state {
            CircuitState::Closed => None,
            CircuitState::Open { since, reason, .. } => Some(format!(
                "not asked: {reason} {} s ago, and it has not answered a health probe since",
                now.duration_since(*since).as_secs(),
            )),
        })
    }

    /// Opens a region's circuit (it missed its deadline, was unreachable or failed a
    /// health check).
    pub fn trip(&self, region: &str, reason: &str, now: Instant) {
        if !self.settings.enabled {
            return;
        }
        let interval = self.settings.probe_interval_ms;
        let max = self.settings.max_probe_delay_ms.max(interval);
        self.with(region, |c| {
            if c.state == CircuitState::Closed {
                c.trips = c.trips.saturating_add(1);
                tracing::warn!(region, reason, trips = c.trips, "region circuit opened: not asked until it answers a health probe");
            }
            let delay = interval.saturating_mul(1u64 << c.trips.saturating_sub(1).min(20)).min(max);
            c.state = CircuitState::Open { since: now, reason: reason.to_string(), probe_at: now + Duration::from_millis(delay), probing: false };
        });
    }

    /// The region answered a query: its circuit closes and its trips are forgotten.
    pub fn answered(&self, region: &str) {
        self.with(region, |c| {
            if c.state != CircuitState::Closed {
                tracing::info!(region, "region circuit closed: it answers again");
            }
            c.state = CircuitState::Closed;
            c.trips = 0;
        });
    }

    /// Closes a region's circuit (it answered a probe); returns whether it was open.
    pub fn close(&self, region: &str) -> bool {
        self.with(region, |c| {
            let was_open = matches!(c.state, CircuitState::Open { .. });
            if was_open {
                tracing::info!(region, "region circuit closed: it answers health probes again");
            }
            c.state = CircuitState::Closed;
            was_open
        })
    }

    /// The regions to probe at `now`: open, due, and no probe out (they turn half-open).
    pub fn to_probe(&self, now: Instant) -> Vec<String> {
        let map = match self.states.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut out = Vec::new();
        for (region, m) in map.iter() {
            let mut s = match m.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if let CircuitState::Open { probing, probe_at, .. } = &mut s.state {
                if !*probing && *probe_at <= now {
                    *probing = true;
                    out.push(region.clone());
                }
            }
        }
        out.sort();
        out
    }

    /// A probe failed: the circuit stays open (and may be probed again).
    pub fn probe_failed(&self, region: &str) {
        self.with(region, |c| {
            if let CircuitState::Open { probing, .. } = &mut c.state {
                *probing = false;
            }
        });
    }

    /// Whether to probe a closed region now because it missed a requester's own (shorter)
    /// deadline: not while such a check is out, nor within a probe interval of the last,
    /// nor when the circuit is already open (the prober probes it).
    pub fn begin_check(&self, region: &str, now: Instant) -> bool {
        if !self.settings.enabled {
            return false;
        }
        let interval = Duration::from_millis(self.settings.probe_interval_ms);
        self.with(region, |c| {
            let due = c.checked_at.is_none_or(|t| now.duration_since(t) >= interval);
            if c.state != CircuitState::Closed || c.checking || !due {
                return false;
            }
            c.checking = true;
            c.checked_at = Some(now);
            true
        })
    }

    /// The check started by [`Circuits::begin_check`] is over (whatever it found).
    pub fn end_check(&self, region: &str) {
        self.with(region, |c| c.checking = false);
    }

    /// The state of a region's circuit.
    pub fn state(&self, region: &str) -> CircuitState {
        self.with(region, |c| c.state.clone())
    }

    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.probe_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_a_miss_half_opens_for_a_probe_and_closes_when_answered() {
        let c = Circuits::new(CircuitSettings::default());
        let t = Instant::now();
        let s = |ms: u64| t + Duration::from_millis(ms);
        assert!(c.refuses("25", t).is_none());
        c.trip("25", "no answer within 3000 ms", t);
        let why = c.refuses("25", s(2_000)).unwrap();
        assert!(why.contains("no answer within 3000 ms 2 s ago"), "{why}");
        assert!(c.refuses("24", t).is_none(), "other regions are asked");
        assert!(c.to_probe(s(500)).is_empty(), "probed after one interval");
        assert_eq!(c.to_probe(s(1_000)), ["25"]);
        assert!(c.to_probe(s(1_000)).is_empty(), "one probe at a time (half-open)");
        c.probe_failed("25");
        assert!(c.refuses("25", t).is_some());
        assert_eq!(c.to_probe(s(1_100)), ["25"]);
        assert!(c.close("25"));
        assert!(c.refuses("25", t).is_none());
        assert!(!c.close("25"));
        // Alive but slow: it answers probes but misses the next deadline too; the next probe
        // waits twice as long, until it answers a query.
        c.trip("25", "no answer within 3000 ms", s(5_000));
        assert!(c.to_probe(s(6_500)).is_empty());
        assert_eq!(c.to_probe(s(7_000)), ["25"]);
        c.answered("25");
        c.trip("25", "no answer", s(10_000));
        assert_eq!(c.to_probe(s(11_000)), ["25"], "an answered query resets the delay");
        // A miss of a requester's own deadline starts at most one check per region and
        // interval, and none while the circuit is open.
        let c = Circuits::new(CircuitSettings::default());
        assert!(c.begin_check("24", t));
        assert!(!c.begin_check("24", s(2_000)), "one check at a time");
        c.end_check("24");
        assert!(!c.begin_check("24", s(500)), "not again within a probe interval");
        assert!(c.begin_check("24", s(1_000)));
        c.end_check("24");
        c.trip("24", "health probe unanswered", s(1_100));
        assert!(!c.begin_check("24", s(5_000)), "an open circuit is the prober's");
        let off = Circuits::new(CircuitSettings { enabled: false, ..CircuitSettings::default() });
        off.trip("25", "x", t);
        assert!(off.refuses("25", t).is_none(), "disabled circuits never refuse");
    }
}
