//! The central-warehouse alternatives the federation is measured against: DuckDB over the
//! same Parquet files, and one PostgreSQL database holding every region's rows. Both run
//! the same statement: per region, the recipe compiled by `sql::compile_central` over that
//! region's tables (schema `norrsken_<code>`), joined by UNION ALL. The numbers they return
//! are checked against the federation's released cells before anything is timed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use norrsken_model::comparison::RowKind;
use anyhow::{anyhow, bail, Context};
use arrow::array::RecordBatch;
use norrsken_model::catalog::Kind;
use norrsken_model::cdm::{CdmTable, Manifest};
use norrsken_model::query::ValidatedQuery;
use serde::{Deserialize, Serialize};

/// The schema holding a region's tables in a central warehouse.
pub fn schema_of(region: &str) -> String {
    format!("norrsken_{region}")
}

/// One statement answering `v` for every region, as a central warehouse would.
pub fn central_sql(v: &ValidatedQuery, regions: &[String]) -> anyhow::Result<String> {
    let parts = regions
        .iter()
        .map(|r| {
            norrsken_agent::engine::sql::compile_central(v, r, &schema_of(r))
                .map(|sql| format!("SELECT * FROM (\n{sql}\n) AS region_{r}"))
                .map_err(|e| anyhow!(e))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(parts.join("\nUNION ALL\n"))
}

/// One cell as a central warehouse computes it (exact, unprotected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralCell {
    pub region: String,
    pub labels: Vec<String>,
    pub category: Option<String>,
    pub units: i64,
    pub numerator: i64,
    pub value_sum: f64,
    pub population: i64,
}

/// One region row of a federation answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerCell {
    pub region: String,
    pub labels: Vec<String>,
    pub category: Option<String>,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value_sum: Option<f64>,
    pub status: String,
}

type CellKey = (String, Vec<String>, Option<String>);

/// The region rows of a coordinator's comparison, read with the shared wire contract.
pub fn answer_cells(batches: &[RecordBatch], v: &ValidatedQuery) -> anyhow::Result<Vec<AnswerCell>> {
    let Some(first) = batches.first() else { return Ok(Vec::new()) };
    let c = norrsken_model::comparison::Comparison::from_batches(first.schema().as_ref(), batches)?;
    let mut out = Vec::new();
    for r in &c.rows {
        match r.kind {
            RowKind::Region => {}
            RowKind::Missing => bail!("region {} did not answer {} ({}): {}", r.region, v.recipe.key(), r.status, r.suggestion.as_deref().unwrap_or("")),
            RowKind::Pooled => continue,
        }
        out.push(AnswerCell {
            region: r.region.clone(),
            labels: r.labels.iter().map(|l| l.clone().unwrap_or_default()).collect(),
            category: r.category.clone(),
            numerator: r.numerator,
            denominator: r.denominator,
            value_sum: r.value_sum,
            status: r.status.clone(),
        });
    }
    Ok(out)
}

/// How a federation answer compares with a central computation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Cells in either answer.
    pub cells: usize,
    /// Cells the federation released (and so compared value by value).
    pub released: usize,
    /// Cells the federation withheld.
    pub withheld: usize,
    /// What did not agree (at most ten, then a count).
    pub mismatches: Vec<String>,
    pub mismatch_count: usize,
}

impl Agreement {
    pub fn agrees(&self) -> bool {
        self.mismatch_count == 0
    }

    fn mismatch(&mut self, what: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < 10 {
            self.mismatches.push(what);
        }
    }
}

/// Compares the federation's region cells with a central computation: every central cell
/// must be in the federation's answer, every released cell must exist centrally and carry
/// exactly the central values (costs and measurement sums to a relative 1e-9); the
/// federation may list empty cells withheld beside small ones.
pub fn compare(kind: Kind, federation: &[AnswerCell], central: &[CentralCell]) -> Agreement {
    let mut a = Agreement::default();
    let key = |r: &str, l: &[String], c: &Option<String>| -> CellKey { (r.to_string(), l.to_vec(), c.clone()) };
    let central_by: BTreeMap<CellKey, &CentralCell> = central.iter().map(|c| (key(&c.region, &c.labels, &c.category), c)).collect();
    let federation_by: BTreeMap<CellKey, &AnswerCell> = federation.iter().map(|c| (key(&c.region, &c.labels, &c.category), c)).collect();
    if central_by.len() != central.len() {
        a.mismatch(format!("the central answer repeats cells ({} rows, {} cells)", central.len(), central_by.len()));
    }
    a.cells = central_by.len().max(federation_by.len());
    for (k, c) in &central_by {
        if !federation_by.contains_key(k) {
            a.mismatch(format!("cell {k:?} ({} units) is missing from the federation's answer", c.units));
        }
    }
    for (k, f) in &federation_by {
        let Some(c) = central_by.get(k) else {
            // An empty cell is listed, withheld, beside a small one (presence hiding,
            // docs/disclosure-control.md); a released one must exist centrally.
            if f.status == "suppressed" {
                a.withheld += 1;
            } else {
                a.mismatch(format!("cell {k:?} is not in the central answer"));
            }
            continue;
        };
        if f.status == "suppressed" {
            a.withheld += 1;
            continue;
        }
        a.released += 1;
        let (num, den) = match kind {
            Kind::Proportion => (Some(c.numerator), Some(c.units)),
            Kind::Rate => (Some(c.units), Some(c.population)),
            Kind::Count => (Some(c.units), None),
            Kind::Mean => (None, Some(c.units)),
            // Cost per patient: contacts and, in the central `numerator` column, patients.
            Kind::CostSum => (Some(c.units), Some(c.numerator)),
        };
        if num.is_some() && f.numerator != num {
            a.mismatch(format!("cell {k:?}: numerator {:?} in the federation, {:?} central", f.numerator, num));
        }
        if den.is_some() && f.denominator != den {
            a.mismatch(format!("cell {k:?}: denominator {:?} in the federation, {:?} central", f.denominator, den));
        }
        if matches!(kind, Kind::Mean | Kind::CostSum) {
            let fv = f.value_sum.unwrap_or(f64::NAN);
            if (fv - c.value_sum).abs() > 1e-9 * c.value_sum.abs().max(1.0) {
                a.mismatch(format!("cell {k:?}: value sum {fv} in the federation, {} central", c.value_sum));
            }
        }
    }
    a
}

/// Turns rows with named columns into central cells.
fn cells_from_columns(
    columns: &[String],
    rows: impl Iterator<Item = Vec<serde_json::Value>>,
    v: &ValidatedQuery,
) -> anyhow::Result<Vec<CentralCell>> {
    let pos = |name: &str| columns.iter().position(|c| c == name).ok_or_else(|| anyhow!("the central answer has no column '{name}'"));
    let region = pos("region")?;
    let labels: Vec<usize> = v.breakdowns.iter().map(|b| pos(&format!("b_{}", b.name()))).collect::<anyhow::Result<_>>()?;
    let category = if v.recipe.is_distribution() { Some(pos("category")?) } else { None };
    let (units, numerator, value_sum, population) = (pos("units")?, pos("numerator")?, pos("value_sum")?, pos("population")?);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let int = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    rows.map(|row| {
        if row.len() != columns.len() {
            bail!("a central row has {} values for {} columns", row.len(), columns.len());
        }
        Ok(CentralCell {
            region: text(&row[region]),
            labels: labels.iter().map(|&i| text(&row[i])).collect(),
            category: category.map(|i| text(&row[i])),
            units: int(&row[units]),
            numerator: int(&row[numerator]),
            value_sum: row[value_sum].as_f64().unwrap_or(0.0),
            population: int(&row[population]),
        })
    })
    .collect()
}

/// PostgreSQL as the central warehouse: one database, one schema per region with its CDM
/// tables and a `residents` view, loaded from the same Parquet files.
pub struct CentralPostgres {
    client: tokio_postgres::Client,
    regions: Vec<String>,
    pub version: String,
}

fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl CentralPostgres {
    /// Connects as `admin` (libpq key=value string without dbname), creates `database` (C
    /// collation, so that one b-tree serves both LIKE prefixes and ranges) unless it
    /// exists, and loads every region whose data version differs from the one loaded.
    pub async fn prepare(admin: &str, database: &str, regions: &[(String, PathBuf)], progress: &dyn Fn(&str)) -> anyhow::Result<CentralPostgres> {
        let connect = |db: &str| {
            let url = format!("{admin} dbname={db}");
            async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.with_context(|| format!("connecting to PostgreSQL ({url})"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                anyhow::Ok(client)
            }
        };
        let root = connect("postgres").await?;
        if root.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database]).await?.is_none() {
            root.batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'", pg_ident(database)))
                .await
                .with_context(|| format!("creating database {database}"))?;
        }
        let client = connect(database).await?;
        for (region, folder) in regions {
            let schema = schema_of(region);
            let wanted = Manifest::read(folder).map_err(|e| anyhow!("{}: {e}", folder.display()))?.data_version;
            let loaded = client
                .query_opt(&format!("SELECT value FROM {}.norrsken_manifest WHERE key = 'data_version'", pg_ident(&schema)), &[])
                .await
                .ok()
                .flatten()
                .map(|r| r.get::<_, String>(0));
            if loaded.as_deref() != Some(wanted.as_str()) {
                progress(&format!("loading region {region} into PostgreSQL {database}.{schema} ..."));
                norrsken_agent::datalager::postgres::load_folder(&format!("{admin} dbname={database}"), &schema, folder, false)
                    .await
                    .with_context(|| format!("loading {} into PostgreSQL", folder.display()))?;
            }
            client
                .batch_execute(&format!(
                    "CREATE OR REPLACE VIEW {s}.residents AS SELECT * FROM {s}.persons WHERE substr(kommun, 1, 2) = '{region}'; ANALYZE",
                    s = pg_ident(&schema)
                ))
                .await?;
        }
        let version = client.query_one("SHOW server_version", &[]).await?.get::<_, String>(0);
        // What a central warehouse's analysts would be given for aggregations.
        client.batch_execute("SET work_mem = '256MB'").await?;
        Ok(CentralPostgres { client, regions: regions.iter().map(|(r, _)| r.clone()).collect(), version })
    }

    /// Creates (and analyses) or drops a b-tree index on `contacts.main_diagnosis` in every
    /// region's schema.
    pub async fn main_diagnosis_index(&self, on: bool) -> anyhow::Result<()> {
        for r in &self.regions {
            let s = pg_ident(&schema_of(r));
            let sql = if on {
                format!("CREATE INDEX IF NOT EXISTS contacts_main_diagnosis ON {s}.contacts (main_diagnosis); ANALYZE {s}.contacts")
            } else {
                format!("DROP INDEX IF EXISTS {s}.contacts_main_diagnosis")
            };
            self.client.batch_execute(&sql).await.with_context(|| format!("index on {s}.contacts"))?;
        }
        Ok(())
    }

    /// Runs a central statement and returns its cells.
    pub async fn run(&self, sql: &str, v: &ValidatedQuery) -> anyhow::Result<Vec<CentralCell>> {
        let rows = self.client.query(sql, &[]).await.map_err(|e| match e.as_db_error() {
            Some(db) => anyhow!("PostgreSQL: {}{}", db.message(), db.hint().map(|h| format!(" ({h})")).unwrap_or_default()),
            None => anyhow!("PostgreSQL: {e}"),
        })?;
        let Some(first) = rows.first() else { return Ok(Vec::new()) };
        let columns: Vec<String> = first.columns().iter().map(|c| c.name().to_string()).collect();
        let values = rows.iter().map(|row| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, c)| match *c.type_() {
                    tokio_postgres::types::Type::INT8 => row.get::<_, Option<i64>>(i).map_or(serde_json::Value::Null, serde_json::Value::from),
                    tokio_postgres::types::Type::FLOAT8 => row.get::<_, Option<f64>>(i).map_or(serde_json::Value::Null, serde_json::Value::from),
                    _ => row.try_get::<_, Option<String>>(i).ok().flatten().map_or(serde_json::Value::Null, serde_json::Value::from),
                })
                .collect::<Vec<_>>()
        });
        cells_from_columns(&columns, values, v)
    }
}

/// The DuckDB runner's job: the statements to check and time.
#[derive(Debug, Serialize)]
pub struct DuckJob {
    /// County code → the region's datalager folder.
    pub regions: BTreeMap<String, PathBuf>,
    pub tables: Vec<String>,
    pub threads: usize,
    pub runs: usize,
    pub min_runs: usize,
    pub budget_s: f64,
    pub queries: Vec<DuckQuery>,
}

#[derive(Debug, Serialize)]
pub struct DuckQuery {
    pub id: String,
    pub sql: String,
}

#[derive(Debug, Deserialize)]
pub struct DuckOutput {
    pub engine: String,
    pub results: BTreeMap<String, DuckResult>,
}

#[derive(Debug, Deserialize)]
pub struct DuckResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// The first execution after the views were created.
    pub first_ms: f64,
    pub times_ms: Vec<f64>,
}

impl DuckResult {
    pub fn cells(&self, v: &ValidatedQuery) -> anyhow::Result<Vec<CentralCell>> {
        cells_from_columns(&self.columns, self.rows.iter().cloned(), v)
    }
}

/// The DuckDB runner (Python), written next to the job when the benchmark runs.
pub const DUCKDB_RUNNER: &str = include_str!("duckdb_central.py");

/// Runs the DuckDB job with `python` (which must have the `duckdb` package).
pub fn run_duckdb(python: &str, dir: &Path, job: &DuckJob) -> anyhow::Result<DuckOutput> {
    let script = dir.join("duckdb_central.py");
    std::fs::write(&script, DUCKDB_RUNNER)?;
    let job_file = dir.join("duckdb-job.json");
    let out_file = dir.join("duckdb-results.json");
    std::fs::write(&job_file, serde_json::to_vec_pretty(job)?)?;
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg(&job_file)
        .arg(&out_file)
        .status()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !status.success() {
        bail!("the DuckDB runner failed ({status}); is the duckdb package installed? (pip install duckdb)");
    }
    let text = std::fs::read(&out_file).with_context(|| format!("reading {}", out_file.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("reading {}", out_file.display()))
}

/// The CDM table names, for the runner's views.
pub fn cdm_tables() -> Vec<String> {
    CdmTable::ALL.iter().map(|t| t.name().to_string()).collect()
}
