//! Datalager backends: where the CDM tables come from.
//!
//! A backend registers the six CDM tables (see `norrsken_common::cdm`) in a DataFusion
//! session and says which data version it holds. The embedded default reads Parquet or CSV
//! folders, one sub-folder per table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use norrsken_common::cdm::{CdmTable, Manifest};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DatalagerError {
    #[error("datalager {path}: {reason}")]
    Missing { path: String, reason: String },
    #[error("datalager table {table} ({path}): column '{column}' {problem}")]
    Schema { table: String, path: String, column: String, problem: String },
    #[error("datalager {0}")]
    Other(String),
}

/// A source of the CDM tables.
pub trait Datalager: Send + Sync {
    /// Registers every CDM table in the session under its CDM name.
    fn register<'a>(&'a self, ctx: &'a SessionContext) -> BoxFuture<'a, Result<(), DatalagerError>>;
    /// A short description for logs and `check-config`.
    fn describe(&self) -> String;
    /// Changes whenever the data could differ.
    fn data_version(&self) -> String;
    /// The years the data covers, when the backend knows them without a query.
    fn years(&self) -> Option<(i32, i32)>;
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
    manifest: Option<Manifest>,
    version: String,
}

impl FolderDatalager {
    pub fn open(dir: &Path, format: FolderFormat) -> Result<FolderDatalager, DatalagerError> {
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
            let tdir = dir.join(table.name());
            let files = list_files(&tdir, ext).map_err(|reason| DatalagerError::Missing {
                path: tdir.display().to_string(),
                reason,
            })?;
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
        Ok(FolderDatalager { dir: dir.to_path_buf(), format, manifest, version })
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
                let tdir = self.dir.join(table.name());
                let (format, ext): (Arc<dyn FileFormat>, &str) = match self.format {
                    FolderFormat::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
                    FolderFormat::Csv => (Arc::new(CsvFormat::default().with_has_header(true)), ".csv"),
                };
                let path = format!("{}/", tdir.display());
                let url = ListingTableUrl::parse(&path).map_err(|e| DatalagerError::Other(e.to_string()))?;
                let options = ListingOptions::new(format).with_file_extension(ext);
                let mut schema = table.schema();
                if self.format == FolderFormat::Parquet {
                    let expected = table.schema();
                    // Check the files' own schema so a mismatch names the column.
                    let found = options
                        .infer_schema(&ctx.state(), &url)
                        .await
                        .map_err(|e| DatalagerError::Other(format!("{path}: {e}")))?;
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
                            Ok(f) if !compatible(f.data_type(), field.data_type()) => {
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
                    // Keep the files' own (compatible) types, e.g. Utf8View, which scan faster.
                    schema = found;
                }
                let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
                let provider = ListingTable::try_new(config).map_err(|e| DatalagerError::Other(e.to_string()))?;
                ctx.register_table(table.name(), Arc::new(provider)).map_err(|e| DatalagerError::Other(e.to_string()))?;
            }
            Ok(())
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
