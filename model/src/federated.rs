//! The coordinator's answer to one question as domain values: the comparison of the
//! regions, or the analysis the question asked for. Doors inside the coordinator's process
//! receive it as it is; a client over the network decodes the same value from the Arrow
//! answer once ([`Federated::from_batches`]), so every reader works on typed values.

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::analysis::{AnalysisTable, AnalysisTableError};
use crate::comparison::{Comparison, ComparisonError};

/// What the federation answered.
#[derive(Debug, Clone)]
pub enum Federated {
    /// The comparison of the regions (and the pooled row), cell by cell.
    Comparison(Comparison),
    /// An analysis of the comparison (compare, trend, equity, funnel).
    Analysis(AnalysisTable),
}

/// An Arrow answer that is neither a comparison nor an analysis table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FederatedError {
    #[error(transparent)]
    Comparison(#[from] ComparisonError),
    #[error(transparent)]
    Analysis(#[from] AnalysisTableError),
    #[error("the answer could not be encoded: {0}")]
    Encode(String),
}

impl Federated {
    /// Reads a coordinator's Arrow answer: an analysis when its metadata names one
    /// (`norrsken.analysis`), else a comparison.
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Federated, FederatedError> {
        if schema.metadata().contains_key("norrsken.analysis") {
            Ok(Federated::Analysis(AnalysisTable::from_batches(schema, batches)?))
        } else {
            Ok(Federated::Comparison(Comparison::from_batches(schema, batches)?))
        }
    }

    /// The Arrow answer (schema with `norrsken.*` metadata and one batch).
    pub fn to_record_batch(&self) -> Result<RecordBatch, FederatedError> {
        match self {
            Federated::Comparison(c) => c.to_record_batch().map_err(|e| FederatedError::Encode(e.to_string())),
            Federated::Analysis(t) => Ok(t.to_record_batch()?),
        }
    }

    /// The question's id.
    pub fn query_id(&self) -> Option<&str> {
        match self {
            Federated::Comparison(c) => Some(c.meta.query_id.as_str()),
            Federated::Analysis(t) => t.meta("query_id"),
        }
        .filter(|s| !s.is_empty())
    }

    /// The comparison, when the answer is one.
    pub fn comparison(self) -> Option<Comparison> {
        match self {
            Federated::Comparison(c) => Some(c),
            Federated::Analysis(_) => None,
        }
    }

    /// The analysis table, when the answer is one.
    pub fn analysis(self) -> Option<AnalysisTable> {
        match self {
            Federated::Analysis(t) => Some(t),
            Federated::Comparison(_) => None,
        }
    }
}
