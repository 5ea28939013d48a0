//! Permanent record keys for the cell key method.
//!
//! Every counted unit (a person, or an event for event-based recipes) gets a record key
//! derived with HMAC-SHA256 from the region's secret and the unit's id: a 32-bit integer,
//! read as a fraction of 2^32. A cell's key is the sum of its units' record keys modulo
//! 2^32, so the same set of units always gives the same cell key, whichever query asks.
//! The secret never leaves the agent.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the SQL function the engine calls.
pub const RECORD_KEY_FUNCTION: &str = "norrsken_record_key";

/// Smallest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Derives record keys from the region's secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RecordKeyer {
    secret: Vec<u8>,
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
    pub fn new(secret: Vec<u8>) -> Result<RecordKeyer, RecordKeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(RecordKeyError::TooShort { path: "(in memory)".into(), len: secret.len(), min: MIN_SECRET_BYTES });
        }
        Ok(RecordKeyer { secret })
    }

    /// Reads the secret from a key file (raw bytes; surrounding whitespace of a text key is
    /// kept, so generate it with e.g. `head -c 64 /dev/urandom > region.key`).
    pub fn from_file(path: &Path) -> Result<RecordKeyer, RecordKeyError> {
        let secret = std::fs::read(path)
            .map_err(|e| RecordKeyError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(RecordKeyError::TooShort { path: path.display().to_string(), len: secret.len(), min: MIN_SECRET_BYTES });
        }
        Ok(RecordKeyer { secret })
    }

    /// The record key of one unit, in [0, 2^32).
    pub fn key(&self, unit_id: i64) -> u32 {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            // HMAC accepts keys of any length.
            Err(_) => return 0,
        };
        mac.update(&unit_id.to_le_bytes());
        let out = mac.finalize().into_bytes();
        u32::from_le_bytes([out[0], out[1], out[2], out[3]])
    }

    /// The SQL function `norrsken_record_key(BIGINT) -> BIGINT`.
    pub fn udf(self: &Arc<Self>) -> ScalarUDF {
        ScalarUDF::new_from_impl(RecordKeyUdf {
            keyer: Some(self.clone()),
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        })
    }

    /// The same function returning 0 for every unit, used when perturbation is off.
    pub fn disabled_udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(RecordKeyUdf {
            keyer: None,
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        })
    }
}

/// Cell key as a fraction in [0, 1) from a sum of record keys.
pub fn cell_key_fraction(key_sum: i64) -> f64 {
    (key_sum.rem_euclid(1 << 32)) as f64 / (1u64 << 32) as f64
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RecordKeyUdf {
    keyer: Option<Arc<RecordKeyer>>,
    signature: Signature,
}

impl ScalarUDFImpl for RecordKeyUdf {
    fn name(&self) -> &str {
        RECORD_KEY_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return exec_err!("{RECORD_KEY_FUNCTION} takes one argument");
        };
        let array = arg.to_array(args.number_rows)?;
        let Some(ids) = array.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("{RECORD_KEY_FUNCTION} takes a BIGINT unit id");
        };
        let out: Int64Array = match &self.keyer {
            Some(k) => ids.iter().map(|id| id.map(|id| k.key(id) as i64)).collect(),
            None => ids.iter().map(|id| id.map(|_| 0)).collect(),
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_keyed_and_spread() {
        let a = RecordKeyer::new(vec![7; 32]).unwrap();
        let b = RecordKeyer::new(vec![8; 32]).unwrap();
        assert_eq!(a.key(42), a.key(42));
        assert_ne!(a.key(42), b.key(42));
        let mean = (0..10_000).map(|i| a.key(i) as f64 / 4_294_967_296.0).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!(RecordKeyer::new(vec![1; 8]).is_err());
    }

    #[test]
    fn cell_key_is_the_sum_modulo_one() {
        assert_eq!(cell_key_fraction(0), 0.0);
        assert_eq!(cell_key_fraction(1 << 31), 0.5);
        assert_eq!(cell_key_fraction((1 << 32) + (1 << 30)), 0.25);
    }
}
