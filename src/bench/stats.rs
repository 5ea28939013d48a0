//! Latency samples and their summary.

use std::time::{Duration, Instant};

use serde::Serialize;

/// A summary of latency samples in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub runs: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarises samples (nearest-rank percentiles); none for no samples.
    pub fn of(samples_ms: &[f64]) -> Option<Latency> {
        if samples_ms.is_empty() {
            return None;
        }
        let mut s = samples_ms.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(Latency { runs: s.len(), p50_ms: rank(0.50), p95_ms: rank(0.95), min_ms: s[0], max_ms: s[s.len() - 1] })
    }
}

/// How many times to repeat a measurement: `runs`, but stop early (after at least
/// `min_runs`) once `budget` has passed, so that a slow system is still measured in
/// bounded time.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    pub runs: usize,
    pub min_runs: usize,
    pub budget: Duration,
}

impl Repeat {
    /// Starts a series of measurements.
    pub fn series(&self) -> Series {
        Series { repeat: *self, start: Instant::now(), samples: Vec::with_capacity(self.runs) }
    }
}

/// Measurements being taken:
///
/// ```text
/// let mut series = repeat.series();
/// while series.wants_more() {
///     let t = Instant::now();
///     work().await?;
///     series.record(t);
/// }
/// ```
pub struct Series {
    repeat: Repeat,
    start: Instant,
    samples: Vec<f64>,
}

impl Series {
    pub fn wants_more(&self) -> bool {
        let n = self.samples.len();
        n < self.repeat.runs && (n < self.repeat.min_runs || self.start.elapsed() < self.repeat.budget)
    }

    /// Records the time since `began` as one sample.
    pub fn record(&mut self, began: Instant) {
        self.samples.push(ms(began.elapsed()));
    }

    /// The samples in milliseconds.
    pub fn samples(&self) -> &[f64] {
        &self.samples
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A duration in milliseconds for a table: three significant digits, at least 0.1 ms.
pub fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
