//! Lays a Parquet datalager out for the recipes: every CDM table sorted by the columns the
//! recipes select on (contacts by main diagnosis, procedures and diagnoses by code, drugs by
//! ATC code, measurements by kind) and written in row groups of a bounded size, so that the
//! Parquet statistics of a row group (and of each page) let a reader skip everything but the
//! rows of the diagnosis, procedure or drug a recipe asks for. The answers do not change;
//! only how much of each file a question reads.
//!
//! `norrsken synth` lays out what it generates; region IT run `norrsken layout` on their own
//! Parquet exports (docs/data-model.md, "Laying the files out for the recipes").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::context::SessionConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use norrsken_model::cdm::CdmTable;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use norrsken_agent::datalager::DatalagerError;

/// The sort order of each table: the columns recipes filter on first.
pub fn sort_keys(table: CdmTable) -> &'static [&'static str] {
    match table {
        CdmTable::Persons => &["person_id"],
        CdmTable::Contacts => &["main_diagnosis", "start_time"],
        CdmTable::Diagnoses => &["code", "contact_id"],
        CdmTable::Procedures => &["code", "performed_at"],
        CdmTable::Drugs => &["atc", "dispensed_date"],
        CdmTable::Measurements => &["kind", "measured_at"],
    }
}

/// How to lay out.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// Rows per row group: the unit a reader skips by its statistics.
    pub row_group_rows: usize,
    /// Memory the sort may hold; beyond it, it spills to `spill_dir` (or the system's
    /// temporary folder).
    pub memory_limit_mb: u64,
    pub spill_dir: Option<PathBuf>,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        LayoutOptions { row_group_rows: 64 * 1024, memory_limit_mb: 768, spill_dir: None }
    }
}

/// What was laid out: rows and row groups per table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLayout {
    pub table: CdmTable,
    pub rows: u64,
    pub row_groups: usize,
}

fn io(path: &Path, e: impl std::fmt::Display) -> DatalagerError {
    DatalagerError::Missing { path: path.display().to_string(), reason: e.to_string() }
}

/// Rewrites every table of the Parquet datalager in `dir` sorted by [`sort_keys`], in one
/// file per table (`<table>/part-0.parquet`). The old files are replaced only once the new
/// one is complete.
pub async fn lay_out(dir: &Path, options: &LayoutOptions) -> Result<Vec<TableLayout>, DatalagerError> {
    let pool = Arc::new(FairSpillPool::new(usize::try_from(options.memory_limit_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)));
    let disk = match &options.spill_dir {
        Some(d) => DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![d.clone()])),
        None => DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .with_disk_manager_builder(disk)
        .build_arc()
        .map_err(|e| DatalagerError::Other(format!("layout runtime: {e}")))?;
    // Read text as plain strings, so that the files keep the CDM's types.
    let config = SessionConfig::new().set_bool("datafusion.execution.parquet.schema_force_view_types", false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let mut out = Vec::new();
    for table in CdmTable::ALL {
        let tdir = dir.join(table.name());
        let old: Vec<PathBuf> = std::fs::read_dir(&tdir)
            .map_err(|e| io(&tdir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("parquet"))
            .collect();
        if old.is_empty() {
            return Err(io(&tdir, format!("holds no .parquet files for the {table} table")));
        }
        let fail = |e: datafusion::error::DataFusionError| DatalagerError::Other(format!("laying out {}: {e}", tdir.display()));
        let df = ctx.read_parquet(format!("{}/", tdir.display()), ParquetReadOptions::default()).await.map_err(fail)?;
        let order = sort_keys(table).iter().map(|k| col(*k).sort(true, false)).collect();
        let df = df.sort(order).map_err(fail)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(fail)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| DatalagerError::Other(e.to_string()))?))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("norrsken layout (sorted by {})", sort_keys(table).join(", ")))
            .build();
        let tmp = tdir.join(".part-0.parquet.sorting");
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| io(&tmp, e))?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(fail)?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(|e| io(&tmp, e))?;
        }
        let meta = writer.close().map_err(|e| io(&tmp, e))?;
        for f in &old {
            std::fs::remove_file(f).map_err(|e| io(f, e))?;
        }
        let target = tdir.join("part-0.parquet");
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        out.push(TableLayout { table, rows, row_groups: meta.num_row_groups() });
    }
    Ok(out)
}
