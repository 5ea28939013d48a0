//! Datalager backends: where the CDM tables come from.
//!
//! A backend registers the six CDM tables (see `norrsken_model::cdm`) in a DataFusion
//! session and says which data version it holds. Two backends implement the one trait:
//! Parquet or CSV folders (the embedded default), and a PostgreSQL warehouse whose
//! aggregates are pushed down (see [`postgres`]). With either, region IT can map their own
//! table and column names onto the CDM ([`Mapping`]), so no warehouse needs reshaping.

pub mod config;
pub mod postgres;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::context::SessionConfig;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use norrsken_model::cdm::{CdmTable, Manifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DatalagerError {
    #[error("datalager {path}: {reason}")]
    Missing { path: String, reason: String },
    #[error("datalager table {table} ({path}): column '{column}' {problem}")]
    Schema { table: String, path: String, column: String, problem: String },
    #[error("datalager mapping for {table}: {reason}")]
    Mapping { table: String, reason: String },
    #[error("datalager {0}")]
    Other(String),
}

/// A source of the CDM tables.
pub trait Datalager: Send + Sync {
    /// The DataFusion session state this backend needs (a federating planner for
    /// warehouses that take the aggregate).
    fn session_state(&self, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
        SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build()
    }
    /// Registers every CDM table in the session under its CDM name.
    fn register<'a>(&'a self, ctx: &'a SessionContext) -> BoxFuture<'a, Result<(), DatalagerError>>;
    /// A short description for logs and `check-config` (no secrets).
    fn describe(&self) -> String;
    /// Changes whenever the data could differ.
    fn data_version(&self) -> String;
    /// The years the data covers, when the backend knows them without a query.
    fn years(&self) -> Option<(i32, i32)>;
    /// Whether the rows are read into the agent's process (files), so that the agent may
    /// aggregate them itself; false for warehouses that must receive the aggregate so that
    /// rows never cross the connection.
    fn rows_are_local(&self) -> bool {
        true
    }
}

/// How one CDM table is read from a region's own schema.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// The source table or view (in a warehouse) or sub-folder (in a folder datalager).
    pub source: String,
    /// CDM column → SQL expression over the source's columns (a column name, a cast, a
    /// CASE). Unlisted CDM columns are read from a source column of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
    /// CDM column → (source code → CDM code): translations of code lists, applied to the
    /// column's expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub codes: BTreeMap<String, BTreeMap<String, String>>,
}

/// Mapping of a region's tables onto the CDM, per CDM table name.
pub type Mapping = BTreeMap<String, TableMapping>;

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks a mapping: known CDM tables and columns only.
pub fn validate_mapping(mapping: &Mapping) -> Result<(), DatalagerError> {
    for (name, m) in mapping {
        let table = CdmTable::from_name(name).ok_or_else(|| DatalagerError::Mapping {
            table: name.clone(),
            reason: format!("'{name}' is not a CDM table; the tables are {}", CdmTable::ALL.map(|t| t.name()).join(", ")),
        })?;
        let schema = table.schema();
        for col in m.columns.keys().chain(m.codes.keys()) {
            if schema.field_with_name(col).is_err() {
                return Err(DatalagerError::Mapping { table: name.clone(), reason: format!("'{col}' is not a column of the CDM table {name}") });
            }
        }
        if m.source.trim().is_empty() {
            return Err(DatalagerError::Mapping { table: name.clone(), reason: "source is empty".into() });
        }
    }
    Ok(())
}

/// The SQL that presents a registered source table as a CDM table.
pub fn view_sql(table: CdmTable, source: &str, mapping: Option<&TableMapping>) -> String {
    let schema = table.schema();
    let mut cols = Vec::new();
    for f in schema.fields() {
        let name = f.name();
        let mut expr = mapping.and_then(|m| m.columns.get(name)).cloned().unwrap_or_else(|| quote_ident(name));
        if let Some(codes) = mapping.and_then(|m| m.codes.get(name)) {
            let mut case = format!("CASE CAST({expr} AS VARCHAR)");
            for (from, to) in codes {
                let _ = write!(case, " WHEN {} THEN {}", quote_literal(from), quote_literal(to));
            }
            case.push_str(" END");
            expr = case;
        }
        cols.push(format!("{expr} AS {}", quote_ident(name)));
    }
    format!("SELECT {} FROM {}", cols.join(", "), quote_ident(source))
}

/// Source codes of a code-translated column that the mapping does not list (they read as
/// null, i.e. unknown), with their row counts.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmappedCodes {
    pub table: String,
    pub column: String,
    /// Up to ten codes, most frequent first, with their row counts.
    pub codes: Vec<(String, i64)>,
}

/// Looks for codes the mapping does not translate, in every code-translated column of the
/// registered `src_<table>` sources (one aggregate query per column, pushed down to a
/// warehouse like any other).
pub async fn unmapped_codes(ctx: &SessionContext, mapping: &Mapping) -> Result<Vec<UnmappedCodes>, DatalagerError> {
    use arrow::array::AsArray;
    let mut found = Vec::new();
    for (table, m) in mapping {
        for (column, codes) in &m.codes {
            if codes.is_empty() {
                continue;
            }
            let expr = m.columns.get(column).cloned().unwrap_or_else(|| quote_ident(column));
            let listed = codes.keys().map(|c| quote_literal(c)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT CAST({expr} AS VARCHAR) AS code, COUNT(*) AS n FROM {} WHERE {expr} IS NOT NULL AND CAST({expr} AS VARCHAR) NOT IN ({listed}) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
                quote_ident(&format!("src_{table}"))
            );
            let fail = |e: datafusion::error::DataFusionError| DatalagerError::Mapping { table: table.clone(), reason: format!("checking codes of {column}: {e}") };
            let batches = ctx.sql(&sql).await.map_err(fail)?.collect().await.map_err(fail)?;
            let mut list = Vec::new();
            for b in &batches {
                let cast = |i: usize| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8);
                let (code, n) = match (cast(0), arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Int64)) {
                    (Ok(c), Ok(n)) => (c, n),
                    _ => continue,
                };
                let (code, n) = (code.as_string::<i32>().clone(), n.as_primitive::<arrow::datatypes::Int64Type>().clone());
                for i in 0..b.num_rows() {
                    list.push((code.value(i).to_string(), n.value(i)));
                }
            }
            if !list.is_empty() {
                found.push(UnmappedCodes { table: table.clone(), column: column.clone(), codes: list });
            }
        }
    }
    Ok(found)
}

/// Registers each CDM table as a view over the registered `src_<table>` sources.
pub async fn register_views(ctx: &SessionContext, mapping: &Mapping) -> Result<(), DatalagerError> {
    for table in CdmTable::ALL {
        let sql = format!("CREATE VIEW {} AS {}", table.name(), view_sql(table, &format!("src_{}", table.name()), mapping.get(table.name())));
        ctx.sql(&sql).await.map_err(|e| DatalagerError::Mapping { table: table.name().into(), reason: e.to_string() })?;
    }
    Ok(())
}

/// File format of a folder datalager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderFormat {
    Parquet,
    Csv,
}

/// A folder with one sub-folder (or file) per CDM table: `persons/…parquet`, `contacts/…`.
#[derive(Debug, Clone)]
pub struct FolderDatalager {
    pub dir: PathBuf,
    pub format: FolderFormat,
    pub mapping: Mapping,
    manifest: Option<Manifest>,
    version: String,
}

impl FolderDatalager {
    pub fn open(dir: &Path, format: FolderFormat) -> Result<FolderDatalager, DatalagerError> {
        FolderDatalager::open_mapped(dir, format, Mapping::new())
    }

    /// Opens a folder whose sub-folders are named by `mapping` (`source`) instead of the CDM.
    pub fn open_mapped(dir: &Path, format: FolderFormat, mapping: Mapping) -> Result<FolderDatalager, DatalagerError> {
        validate_mapping(&mapping)?;
        if !dir.is_dir() {
            return Err(DatalagerError::Missing {
                path: dir.display().to_string(),
                reason: "is not a folder (run `norrsken synth` or check datalager.path)".into(),
            });
        }
        let ext = match format {
            FolderFormat::Parquet => "parquet",
            FolderFormat::Csv => "csv",
        };
        let mut fingerprint = Sha256::new();
        for table in CdmTable::ALL {
            let source = mapping.get(table.name()).map_or(table.name(), |m| m.source.as_str());
            let tdir = dir.join(source);
            let files = list_files(&tdir, ext).map_err(|reason| DatalagerError::Missing { path: tdir.display().to_string(), reason })?;
            if files.is_empty() {
                return Err(DatalagerError::Missing {
                    path: tdir.display().to_string(),
                    reason: format!("holds no .{ext} files for the {table} table"),
                });
            }
            for f in files {
                let meta = std::fs::metadata(&f).map_err(|e| DatalagerError::Other(e.to_string()))?;
                let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
                fingerprint.update(format!("{}|{}|{}\n", f.display(), meta.len(), mtime));
            }
        }
        let manifest = Manifest::read(dir).ok();
        let version = match &manifest {
            Some(m) => m.data_version.clone(),
            None => hex::encode(&fingerprint.finalize()[..8]),
        };
        Ok(FolderDatalager { dir: dir.to_path_buf(), format, mapping, manifest, version })
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }
}

fn list_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the folder: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Whether a file's column type can stand for the CDM type.
fn compatible(found: &arrow::datatypes::DataType, cdm: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType::*;
    found == cdm || matches!((found, cdm), (Utf8View | LargeUtf8, Utf8))
}

impl Datalager for FolderDatalager {
    fn register<'a>(&'a self, ctx: &'a SessionContext) -> BoxFuture<'a, Result<(), DatalagerError>> {
        Box::pin(async move {
            for table in CdmTable::ALL {
                let mapped = self.mapping.get(table.name());
                let source = mapped.map_or(table.name(), |m| m.source.as_str());
                let tdir = self.dir.join(source);
                let (format, ext): (Arc<dyn FileFormat>, &str) = match self.format {
                    FolderFormat::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
                    FolderFormat::Csv => (Arc::new(CsvFormat::default().with_has_header(true)), ".csv"),
                };
                let path = format!("{}/", tdir.display());
                let url = ListingTableUrl::parse(&path).map_err(|e| DatalagerError::Other(e.to_string()))?;
                let options = ListingOptions::new(format).with_file_extension(ext);
                let found = options.infer_schema(&ctx.state(), &url).await.map_err(|e| DatalagerError::Other(format!("{path}: {e}")))?;
                let mut schema = found.clone();
                if mapped.is_none() {
                    let expected = table.schema();
                    for field in expected.fields() {
                        match found.field_with_name(field.name()) {
                            Err(_) => {
                                return Err(DatalagerError::Schema {
                                    table: table.name().into(),
                                    path: path.clone(),
                                    column: field.name().clone(),
                                    problem: "is missing".into(),
                                })
                            }
                            Ok(f) if self.format == FolderFormat::Parquet && !compatible(f.data_type(), field.data_type()) => {
                                return Err(DatalagerError::Schema {
                                    table: table.name().into(),
                                    path: path.clone(),
                                    column: field.name().clone(),
                                    problem: format!("has type {} but the CDM needs {}", f.data_type(), field.data_type()),
                                })
                            }
                            Ok(_) => {}
                        }
                    }
                    if self.format == FolderFormat::Csv {
                        // CSV carries no types: read with the CDM's.
                        schema = expected;
                    }
                }
                let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
                let provider = ListingTable::try_new(config).map_err(|e| DatalagerError::Other(e.to_string()))?;
                ctx.register_table(format!("src_{}", table.name()), Arc::new(provider)).map_err(|e| DatalagerError::Other(e.to_string()))?;
            }
            register_views(ctx, &self.mapping).await
        })
    }

    fn describe(&self) -> String {
        format!("{:?} folder {}", self.format, self.dir.display())
    }

    fn data_version(&self) -> String {
        self.version.clone()
    }

    fn years(&self) -> Option<(i32, i32)> {
        self.manifest.as_ref().map(|m| (m.first_year, m.last_year))
    }
}

/// Opens the configured backend for the agent of `region` (a county code): a folder
/// datalager must hold that region.
pub async fn open(d: &config::DatalagerConfig, region: &str) -> Result<Box<dyn Datalager>, DatalagerError> {
    use config::DatalagerKind;
    match d.kind {
        DatalagerKind::Parquet | DatalagerKind::Csv => {
            let format = if d.kind == DatalagerKind::Parquet { FolderFormat::Parquet } else { FolderFormat::Csv };
            let path = d.path.clone().ok_or_else(|| DatalagerError::Other("datalager.path is required".into()))?;
            let folder = FolderDatalager::open_mapped(&path, format, d.tables.clone())?;
            if let Some(m) = folder.manifest() {
                if m.region != region {
                    return Err(DatalagerError::Other(format!(
                        "{} holds region {} ({}), but this agent is configured for region {region}",
                        path.display(),
                        m.region,
                        m.region_name
                    )));
                }
            }
            Ok(Box::new(folder))
        }
        DatalagerKind::Postgres => {
            let settings = d.postgres_settings().ok_or_else(|| DatalagerError::Other("datalager.url is required".into()))?;
            Ok(Box::new(postgres::PostgresDatalager::open(&settings, d.tables.clone()).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn codes_the_mapping_does_not_list_are_reported_with_their_counts() {
        use arrow::array::{Int64Array, RecordBatch};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("kon", DataType::Int64, true)]));
        let values = Int64Array::from(vec![Some(1), Some(2), Some(2), Some(3), Some(9), Some(9), Some(9), None]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("src_persons", batch).unwrap();
        let mut m = TableMapping { source: "patient".into(), ..Default::default() };
        m.columns.insert("sex".into(), "kon".into());
        m.codes.insert("sex".into(), [("1".to_string(), "male".to_string()), ("2".to_string(), "female".to_string())].into());
        let mapping: Mapping = [("persons".to_string(), m.clone())].into();
        let found = unmapped_codes(&ctx, &mapping).await.unwrap();
        assert_eq!(
            found,
            vec![UnmappedCodes { table: "persons".into(), column: "sex".into(), codes: vec![("9".into(), 3), ("3".into(), 1)] }]
        );
        m.codes.get_mut("sex").unwrap().extend([("3".to_string(), "female".to_string()), ("9".to_string(), "male".to_string())]);
        let complete: Mapping = [("persons".to_string(), m)].into();
        assert!(unmapped_codes(&ctx, &complete).await.unwrap().is_empty());
    }

    #[test]
    fn mapped_columns_and_codes_become_a_view() {
        let mut m = TableMapping { source: "patient".into(), ..Default::default() };
        m.columns.insert("person_id".into(), "lopnr".into());
        m.columns.insert("sex".into(), "kon".into());
        m.codes.insert("sex".into(), [("1".to_string(), "male".to_string()), ("2".to_string(), "female".to_string())].into());
        let sql = view_sql(CdmTable::Persons, "src_persons", Some(&m));
        assert!(sql.contains("lopnr AS \"person_id\""), "{sql}");
        assert!(sql.contains("CASE CAST(kon AS VARCHAR) WHEN '1' THEN 'male' WHEN '2' THEN 'female' END AS \"sex\""), "{sql}");
        assert!(sql.contains("\"kommun\" AS \"kommun\""), "{sql}");
        let bad: Mapping = [("patients".to_string(), m.clone())].into();
        assert!(validate_mapping(&bad).unwrap_err().to_string().contains("not a CDM table"));
        let mut wrong_col = m;
        wrong_col.columns.insert("shoe".into(), "x".into());
        let bad: Mapping = [("persons".to_string(), wrong_col)].into();
        assert!(validate_mapping(&bad).unwrap_err().to_string().contains("'shoe' is not a column"));
    }
}
