//! Permanent record keys for the cell key method.
//!
//! Every counted unit (a person, or an event for event-based recipes) has a record key in
//! [0, 2^32), read as a fraction of 2^32, derived with a keyed hash from the region's
//! secret: `key(u) = (a · mix(u) + b) mod 2^32`, where `mix` is a public mixing of the unit
//! id (multiplication modulo the Mersenne prime 2^31 - 1) and `a` (odd) and `b` come from
//! HMAC-SHA256 of the secret. A cell's key is the sum of its units' record keys modulo 1.
//!
//! Because the keyed part is affine, the sum over a cell needs only two aggregates the
//! warehouse can compute without the secret: the sum of `mix(u)` and the count. So the
//! cell key is computed where the data lives (Parquet or a PostgreSQL warehouse with the
//! aggregate pushed down), and the secret never leaves the agent.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Smallest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

pub use crate::engine::cells::{mix, mix_sql};

/// Which of a unit's independent record keys a cell key is built from: counts use one,
/// the perturbation of sums another and the released spread a third, so that the noise on
/// a cell's count says nothing about the noise on its sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStream {
    Count = 0,
    Sum = 1,
    Spread = 2,
}

/// Derives record and cell keys from the region's secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RecordKeyer {
    /// (a, b) per [`KeyStream`].
    streams: [(u64, u64); 3],
}

impl std::fmt::Debug for RecordKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKeyer(<secret>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordKeyError {
    #[error("cannot read the perturbation secret {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the perturbation secret {path} holds {len} bytes; at least {min} are required")]
    TooShort { path: String, len: usize, min: usize },
}

impl RecordKeyer {
    pub fn new(secret: &[u8]) -> Result<RecordKeyer, RecordKeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(RecordKeyError::TooShort { path: "(in memory)".into(), len: secret.len(), min: MIN_SECRET_BYTES });
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|e| RecordKeyError::Unreadable { path: "(in memory)".into(), reason: e.to_string() })?;
        mac.update(b"norrsken record key v1");
        let out = mac.finalize().into_bytes();
        let word = |i: usize| u32::from_le_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]) as u64;
        // The first pair is the one every earlier release used for counts.
        let streams = [(word(0) | 1, word(4)), (word(8) | 1, word(12)), (word(16) | 1, word(20))];
        Ok(RecordKeyer { streams })
    }

    /// Reads the secret from a key file (raw bytes; generate it with e.g.
    /// `head -c 64 /dev/urandom > region.key`).
    pub fn from_file(path: &Path) -> Result<RecordKeyer, RecordKeyError> {
        let secret = std::fs::read(path)
            .map_err(|e| RecordKeyError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(RecordKeyError::TooShort { path: path.display().to_string(), len: secret.len(), min: MIN_SECRET_BYTES });
        }
        RecordKeyer::new(&secret)
    }

    /// The record key of one unit, in [0, 2^32).
    pub fn record_key(&self, unit_id: i64) -> u32 {
        self.record_key_in(KeyStream::Count, unit_id)
    }

    /// The record key of one unit in one stream.
    pub fn record_key_in(&self, stream: KeyStream, unit_id: i64) -> u32 {
        let (a, b) = self.streams[stream as usize];
        ((a * mix(unit_id) as u64 + b) % (1 << 32)) as u32
    }

    /// The cell key in [0, 1) of a cell with `count` units whose mixed ids sum to `mix_sum`:
    /// the sum of the units' record keys modulo 1.
    pub fn cell_key(&self, mix_sum: i64, count: i64) -> f64 {
        self.cell_key_in(KeyStream::Count, mix_sum, count)
    }

    /// The same in another key stream.
    pub fn cell_key_in(&self, stream: KeyStream, mix_sum: i64, count: i64) -> f64 {
        self.cell_key_int_in(stream, mix_sum, count) as f64 / (1u64 << 32) as f64
    }

    /// The cell key as an integer in [0, 2^32): the sum of the units' record keys modulo
    /// 2^32 (what a secure sum adds across agents).
    pub fn cell_key_int_in(&self, stream: KeyStream, mix_sum: i64, count: i64) -> u32 {
        let (a, b) = self.streams[stream as usize];
        let m = 1u128 << 32;
        let s = (mix_sum.max(0) as u128) % m;
        let n = (count.max(0) as u128) % m;
        ((a as u128 * s + b as u128 * n) % m) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_key_is_the_sum_of_record_keys_modulo_one() {
        let k = RecordKeyer::new(&[7; 32]).unwrap();
        let units: Vec<i64> = (0..500).map(|i| 2_500_000_000 + i * 7_919).collect();
        let sum_keys: u64 = units.iter().map(|&u| k.record_key(u) as u64).sum();
        let expected = (sum_keys % (1 << 32)) as f64 / (1u64 << 32) as f64;
        let mix_sum: i64 = units.iter().map(|&u| mix(u)).sum();
        assert_eq!(k.cell_key(mix_sum, units.len() as i64), expected);
    }

    #[test]
    fn keys_depend_on_the_secret_and_spread_evenly() {
        let a = RecordKeyer::new(&[7; 32]).unwrap();
        let b = RecordKeyer::new(&[8; 32]).unwrap();
        assert_ne!(a.record_key(42), b.record_key(42));
        let mean = (0..10_000).map(|i| a.record_key(i) as f64 / 4_294_967_296.0).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        // Cells that differ by one person get unrelated keys.
        let base: Vec<i64> = (1..=20).collect();
        let s: i64 = base.iter().map(|&u| mix(u)).sum();
        let with_one_more = a.cell_key(s + mix(21), 21);
        assert_ne!(a.cell_key(s, 20), with_one_more);
        assert!(RecordKeyer::new(&[1; 8]).is_err());
    }

    #[test]
    fn streams_are_independent_sums_of_record_keys() {
        let k = RecordKeyer::new(&[9; 32]).unwrap();
        let units: Vec<i64> = (0..50).map(|i| 1_000 + i * 13).collect();
        let mix_sum: i64 = units.iter().map(|&u| mix(u)).sum();
        for stream in [KeyStream::Count, KeyStream::Sum, KeyStream::Spread] {
            let sum: u64 = units.iter().map(|&u| k.record_key_in(stream, u) as u64).sum();
            assert_eq!(k.cell_key_in(stream, mix_sum, 50), (sum % (1 << 32)) as f64 / (1u64 << 32) as f64);
        }
        assert_ne!(k.cell_key_in(KeyStream::Count, mix_sum, 50), k.cell_key_in(KeyStream::Sum, mix_sum, 50));
    }

}
