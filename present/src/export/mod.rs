//! Answers and reports as files: CSV and xlsx of any answer (a comparison or an analysis),
//! a regional report as xlsx and PDF. Pure functions of the answer's batches or the
//! [`Report`](crate::report::Report); the CLI and the HTTPS front door both call them.

pub mod pdf;
pub mod report_pdf;
pub mod xlsx;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use norrsken_model::analysis::AnalysisTable;
use norrsken_model::comparison::Comparison;

/// Why an answer could not be written as a file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the answer cannot be read: {0}")]
    Answer(String),
    #[error("writing xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("writing csv: {0}")]
    Csv(#[from] arrow::error::ArrowError),
}

/// True when the answer is an analysis table (not a comparison).
pub fn is_analysis(schema: &Schema) -> bool {
    schema.metadata().contains_key("norrsken.analysis")
}

/// An answer as xlsx in `lang`: a comparison with its provenance, or an analysis table.
pub fn answer_xlsx(schema: &Schema, batches: &[RecordBatch], lang: norrsken_model::vocabulary::Lang) -> Result<Vec<u8>, ExportError> {
    if is_analysis(schema) {
        let t = AnalysisTable::from_batches(schema, batches).map_err(|e| ExportError::Answer(e.to_string()))?;
        Ok(xlsx::analysis(&t, lang)?)
    } else {
        let c = Comparison::from_batches(schema, batches).map_err(|e| ExportError::Answer(e.to_string()))?;
        Ok(xlsx::comparison(&c, lang)?)
    }
}

/// An answer as CSV: its columns as they are on the wire, a header line first.
pub fn answer_csv(batches: &[RecordBatch]) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
        for b in batches {
            w.write(b)?;
        }
    }
    Ok(out)
}
