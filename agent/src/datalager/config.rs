//! `[datalager]`: which backend holds the region's CDM tables and how its own tables map
//! onto the CDM (see docs/deploy.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::postgres::PostgresSettings;
use super::Mapping;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DatalagerKind {
    Parquet,
    Csv,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatalagerConfig {
    pub kind: DatalagerKind,
    /// parquet, csv: folder with one sub-folder per table.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// postgres: libpq key=value connection string without the password.
    #[serde(default)]
    pub url: Option<String>,
    /// postgres: file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// postgres: the password (from NORRSKEN_AGENT_DATALAGER__PASSWORD; never printed).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// postgres: schema holding the tables.
    #[serde(default)]
    pub schema: Option<String>,
    /// How the region's own tables map onto the CDM (see docs/deploy.md).
    #[serde(default)]
    pub tables: Mapping,
}

impl DatalagerConfig {
    /// A folder datalager with CDM-named tables.
    pub fn folder(kind: DatalagerKind, path: &std::path::Path) -> DatalagerConfig {
        DatalagerConfig {
            kind,
            path: Some(path.to_path_buf()),
            url: None,
            password_file: None,
            password: None,
            schema: None,
            tables: Mapping::new(),
        }
    }

    /// A PostgreSQL datalager.
    pub fn postgres(url: &str, schema: &str) -> DatalagerConfig {
        DatalagerConfig {
            kind: DatalagerKind::Postgres,
            path: None,
            url: Some(url.to_string()),
            password_file: None,
            password: None,
            schema: Some(schema.to_string()),
            tables: Mapping::new(),
        }
    }

    pub fn postgres_settings(&self) -> Option<PostgresSettings> {
        Some(PostgresSettings {
            url: self.url.clone()?,
            password_file: self.password_file.clone(),
            password: self.password.clone(),
            schema: self.schema.clone().unwrap_or_else(|| "public".into()),
        })
    }
}

