//! A PostgreSQL datalager: the warehouse computes the aggregate.
//!
//! Tables are registered through `datafusion-table-providers` as federated providers, and
//! the session uses `datafusion-federation`'s planner, so the indicator's whole aggregate
//! query (joins, GROUPING SETS, counts and sums) is unparsed to PostgreSQL SQL and run
//! there: only aggregate rows cross the connection. The record keys' mixed id sums are part
//! of that aggregate, so the cell key method needs no rows either.
//!
//! Also here: loading a generated datalager into PostgreSQL (`norrsken synth --postgres`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use datafusion::common::TableReference;
use datafusion::execution::context::SessionConfig;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionContext;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use futures::future::BoxFuture;
use norrsken_model::cdm::{CdmTable, Manifest};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{register_views, validate_mapping, Datalager, DatalagerError, Mapping};

/// How to reach the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// libpq key=value connection string without the password, e.g.
    /// `host=dw.region.se port=5432 user=norrsken dbname=dw sslmode=verify-full`.
    pub url: String,
    /// File holding the password (kept out of the config file); or set
    /// NORRSKEN_AGENT_DATALAGER__PASSWORD.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Schema holding the tables.
    #[serde(default = "default_schema")]
    pub schema: String,
}

fn default_schema() -> String {
    "public".into()
}

impl PostgresSettings {
    /// The connection parameters, password included, for the connection pool.
    fn params(&self) -> Result<HashMap<String, SecretString>, DatalagerError> {
        let mut params: HashMap<String, SecretString> = HashMap::new();
        for part in self.url.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(|| DatalagerError::Other(format!("connection string part '{part}' is not key=value")))?;
            if k == "password" {
                return Err(DatalagerError::Other("put the password in password_file (or NORRSKEN_AGENT_DATALAGER__PASSWORD), not in the url".into()));
            }
            let key = match k {
                "dbname" => "db",
                "user" => "user",
                "host" => "host",
                "port" => "port",
                "sslmode" => "sslmode",
                "sslrootcert" => "sslrootcert",
                other => return Err(DatalagerError::Other(format!("unsupported connection parameter '{other}'"))),
            };
            params.insert(key.to_string(), SecretString::from(v.to_string()));
        }
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| DatalagerError::Other(format!("password_file {}: {e}", f.display())))?
                    .trim_end()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(p) = password {
            params.insert("pass".into(), SecretString::from(p));
        }
        params.entry("sslmode".into()).or_insert_with(|| SecretString::from("disable".to_string()));
        Ok(params)
    }
}

/// The PostgreSQL backend.
pub struct PostgresDatalager {
    settings: PostgresSettings,
    mapping: Mapping,
    factory: PostgresTableFactory,
    version: String,
    years: Option<(i32, i32)>,
}

impl std::fmt::Debug for PostgresDatalager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresDatalager({})", self.describe())
    }
}

fn other(e: impl std::fmt::Display) -> DatalagerError {
    DatalagerError::Other(e.to_string())
}

impl PostgresDatalager {
    /// Connects and reads the data version: from a `norrsken_manifest` table when the
    /// warehouse has one, else from the tables' row counts and largest ids.
    pub async fn open(settings: &PostgresSettings, mapping: Mapping) -> Result<PostgresDatalager, DatalagerError> {
        validate_mapping(&mapping)?;
        let pool = PostgresConnectionPool::new(settings.params()?)
            .await
            .map_err(|e| DatalagerError::Missing { path: settings.url.clone(), reason: format!("cannot connect: {e}") })?;
        // The warehouse's tables in the schema (views are not listed): to look for the optional
        // manifest without a failed lookup, and to list what is there when a source is missing.
        let tables = {
            use datafusion_table_providers::sql::db_connection_pool::dbconnection::AsyncDbConnection;
            let conn = pool.connect_direct().await.map_err(|e| DatalagerError::Missing { path: settings.url.clone(), reason: format!("cannot connect: {e}") })?;
            conn.tables(&settings.schema).await.map_err(|e| DatalagerError::Missing {
                path: format!("{} schema {}", settings.url, settings.schema),
                reason: format!("cannot list tables: {e}"),
            })?
        };
        let factory = PostgresTableFactory::new(Arc::new(pool));
        let mut dl = PostgresDatalager { settings: settings.clone(), mapping, factory, version: String::new(), years: None };
        // Read the manifest (optional) and the fingerprint through a federating session.
        let ctx = SessionContext::new_with_state(dl.session_state(SessionConfig::new(), Arc::new(RuntimeEnv::default())));
        let manifest = match tables.iter().any(|t| t == "norrsken_manifest") {
            true => dl.factory.table_provider(TableReference::partial(dl.settings.schema.as_str(), "norrsken_manifest")).await.ok(),
            false => None,
        };
        if let Some(p) = manifest {
            ctx.register_table("manifest", p).map_err(other)?;
            let batches = ctx.sql("SELECT key, value FROM manifest").await.map_err(other)?.collect().await.map_err(other)?;
            let mut kv = HashMap::new();
            for b in &batches {
                let (k, v) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
                for i in 0..b.num_rows() {
                    if !k.is_null(i) && !v.is_null(i) {
                        kv.insert(k.value(i).to_string(), v.value(i).to_string());
                    }
                }
            }
            if let (Some(v), Some(a), Some(b)) = (kv.get("data_version"), kv.get("first_year"), kv.get("last_year")) {
                dl.version = v.clone();
                dl.years = a.parse().ok().zip(b.parse().ok());
            }
        }
        if dl.version.is_empty() {
            let mut h = Sha256::new();
            for table in CdmTable::ALL {
                let source = dl.source(table);
                let p = dl.factory.table_provider(TableReference::partial(dl.settings.schema.as_str(), source.as_str())).await.map_err(|e| {
                    let listed = if tables.is_empty() { "none visible to this user".to_string() } else { tables.join(", ") };
                    DatalagerError::Missing {
                        path: format!("{}.{source}", dl.settings.schema),
                        reason: format!("{e} (CDM table '{}'; tables in schema {}: {listed}; map it under [datalager.tables.{}])", table.name(), dl.settings.schema, table.name()),
                    }
                })?;
                ctx.register_table(format!("fp_{}", table.name()), p).map_err(other)?;
                let n = ctx.sql(&format!("SELECT COUNT(*) FROM fp_{}", table.name())).await.map_err(other)?.collect().await.map_err(other)?;
                h.update(format!("{}:{:?}\n", table.name(), n.first().map(|b| b.column(0).clone())));
            }
            dl.version = format!("pg-{}", hex::encode(&h.finalize()[..8]));
        }
        Ok(dl)
    }

    fn source(&self, table: CdmTable) -> String {
        self.mapping.get(table.name()).map_or_else(|| table.name().to_string(), |m| m.source.clone())
    }
}

impl Datalager for PostgresDatalager {
    fn session_state(&self, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
        SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_optimizer_rules(datafusion_federation::default_optimizer_rules())
            .with_query_planner(Arc::new(datafusion_federation::FederatedQueryPlanner::new()))
            .with_default_features()
            .build()
    }

    fn register<'a>(&'a self, ctx: &'a SessionContext) -> BoxFuture<'a, Result<(), DatalagerError>> {
        Box::pin(async move {
            for table in CdmTable::ALL {
                let source = self.source(table);
                let provider = self
                    .factory
                    .table_provider(TableReference::partial(self.settings.schema.as_str(), source.as_str()))
                    .await
                    .map_err(|e| DatalagerError::Missing { path: format!("{}.{source}", self.settings.schema), reason: e.to_string() })?;
                ctx.register_table(format!("src_{}", table.name()), provider).map_err(other)?;
            }
            register_views(ctx, &self.mapping).await
        })
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {} schema {}", self.settings.url, self.settings.schema)
    }

    fn data_version(&self) -> String {
        self.version.clone()
    }

    fn years(&self) -> Option<(i32, i32)> {
        self.years
    }
    fn rows_are_local(&self) -> bool {
        false
    }
}

/// The PostgreSQL type of a CDM column.
fn pg_type(dt: &arrow::datatypes::DataType) -> &'static str {
    use arrow::datatypes::DataType::*;
    match dt {
        Int64 => "bigint",
        Int32 => "integer",
        Float64 => "double precision",
        Boolean => "boolean",
        Date32 => "date",
        Timestamp(_, _) => "timestamp",
        _ => "text",
    }
}

/// Loads one region's generated datalager (Parquet folder) into `schema`, replacing the
/// tables, with a `norrsken_manifest` table. `indexes` adds b-tree indexes on the keys and
/// the main diagnosis. Returns rows per table.
pub async fn load_folder(
    connection: &str,
    schema: &str,
    folder: &Path,
    indexes: bool,
) -> Result<Vec<(CdmTable, u64)>, DatalagerError> {
    use futures::SinkExt;
    let (client, conn) = tokio_postgres::connect(connection, tokio_postgres::NoTls)
        .await
        .map_err(|e| DatalagerError::Missing { path: connection.to_string(), reason: format!("cannot connect: {e}") })?;
    let driver = tokio::spawn(conn);
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", q(schema))).await.map_err(other)?;
    let ctx = SessionContext::new();
    let mut counts = Vec::new();
    for table in CdmTable::ALL {
        let cdm = table.schema();
        let cols: Vec<String> = cdm.fields().iter().map(|f| format!("{} {}", q(f.name()), pg_type(f.data_type()))).collect();
        let full = format!("{}.{}", q(schema), q(table.name()));
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {full}; CREATE TABLE {full} ({})", cols.join(", ")))
            .await
            .map_err(other)?;
        let path = folder.join(table.name());
        let df = ctx
            .read_parquet(path.display().to_string(), datafusion::prelude::ParquetReadOptions::default())
            .await
            .map_err(|e| DatalagerError::Missing { path: path.display().to_string(), reason: e.to_string() })?;
        let mut stream = df.execute_stream().await.map_err(other)?;
        let sink = client.copy_in(&format!("COPY {full} FROM STDIN (FORMAT csv)")).await.map_err(other)?;
        futures::pin_mut!(sink);
        let mut rows = 0u64;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            let batch = batch.map_err(other)?;
            // Text columns may arrive as views; the CSV writer takes them as they are.
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(false).with_timestamp_format("%Y-%m-%d %H:%M:%S%.6f".into()).build(&mut buf);
                w.write(&batch).map_err(other)?;
            }
            rows += batch.num_rows() as u64;
            sink.send(bytes::Bytes::from(buf)).await.map_err(other)?;
        }
        sink.finish().await.map_err(other)?;
        counts.push((table, rows));
    }
    if indexes {
        for (table, cols) in [
            ("persons", vec!["person_id"]),
            ("contacts", vec!["contact_id", "person_id", "main_diagnosis", "start_time"]),
            ("diagnoses", vec!["contact_id", "code"]),
            ("procedures", vec!["contact_id", "code"]),
            ("drugs", vec!["person_id", "atc"]),
            ("measurements", vec!["person_id", "kind"]),
        ] {
            for c in cols {
                client
                    .batch_execute(&format!("CREATE INDEX ON {}.{} ({})", q(schema), q(table), q(c)))
                    .await
                    .map_err(other)?;
            }
        }
    }
    let manifest = Manifest::read(folder).ok();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {s}.norrsken_manifest; CREATE TABLE {s}.norrsken_manifest (key text primary key, value text)",
            s = q(schema)
        ))
        .await
        .map_err(other)?;
    if let Some(m) = manifest {
        for (k, v) in [
            ("region", m.region.clone()),
            ("data_version", m.data_version.clone()),
            ("first_year", m.first_year.to_string()),
            ("last_year", m.last_year.to_string()),
            ("generator", m.generator.clone()),
        ] {
            client
                .execute(&format!("INSERT INTO {}.norrsken_manifest VALUES ($1, $2)", q(schema)), &[&k, &v])
                .await
                .map_err(other)?;
        }
    }
    client.batch_execute(&format!("ANALYZE")).await.map_err(other)?;
    drop(client);
    let _ = driver.await;
    Ok(counts)
}
