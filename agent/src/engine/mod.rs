//! The local indicator engine: evaluates a recipe over one region's datalager with
//! DataFusion and returns the additive components of every cell.

use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionContext;
use norrsken_model::catalog::Kind;
use norrsken_model::query::ValidatedQuery;

use crate::datalager::{Datalager, DatalagerError};

pub mod cells;
pub mod margins;
pub mod prepared;
pub mod sql;

pub use cells::{CellTable, RawCell};
use cells::read_cells;
use margins::{MarginAggregator, MarginError};
use prepared::{PrepareProgress, PreparedCache, PreparedStats, PreparedUnits};
use sql::{literal, SqlContext};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Datalager(#[from] DatalagerError),
    #[error("evaluating {recipe}: {message}")]
    Evaluation { recipe: String, message: String },
    #[error("evaluating {recipe}: the query needs more memory than the agent's limit allows ({message})")]
    ResourcesExhausted { recipe: String, message: String },
    #[error("recipe {recipe} returned {problem}")]
    RecipeOutput { recipe: String, problem: String },
    #[error("the agent is busy: {running} queries are running and this one waited {waited_ms} ms for its turn; try again later")]
    Busy { running: usize, waited_ms: u64 },
}


/// `[engine]` settings: parallelism and the resources one agent may use.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineOptions {
    /// Parallel partitions per query; 0 = one per core.
    #[serde(default)]
    pub target_partitions: usize,
    /// Memory the engine's operators (joins, aggregations, sorts) may hold at once, over all
    /// queries, in MiB; a query that would need more fails with ResourceExhausted.
    /// 0 = unbounded.
    #[serde(default = "default_memory_limit_mb")]
    pub memory_limit_mb: u64,
    /// Queries evaluated at once; more wait their turn. 0 = one per core.
    #[serde(default)]
    pub max_concurrent_queries: usize,
    /// How long a query may wait for its turn before it is refused as busy (milliseconds).
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
    /// Folder where large sorts and aggregations may spill instead of failing; none = no
    /// spilling (the memory limit is hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_dir: Option<std::path::PathBuf>,
    /// Answers kept for repeated questions, keyed by query, data and policy version.
    #[serde(default)]
    pub cache: norrsken_common::cache::CacheSettings,
    /// Memory for prepared unit tables (each recipe's units with every label, built once
    /// per data version and perspective; [`prepared`]), in MiB, within the memory limit;
    /// least recently used tables are dropped beyond it. 0 = no prepared tables (every
    /// question evaluates the recipe's SQL).
    #[serde(default = "default_prepared_mb")]
    pub prepared_mb: u64,
    /// Build every recipe's prepared tables when a data version loads, in the background at
    /// start and before a reloaded version takes over (the previous version answers until
    /// the new one is ready), so that no analyst waits for the first build.
    #[serde(default = "default_true")]
    pub prepare_at_load: bool,
}

fn default_true() -> bool {
    true
}

fn default_prepared_mb() -> u64 {
    768
}

fn default_memory_limit_mb() -> u64 {
    2048
}
fn default_queue_timeout_ms() -> u64 {
    30_000
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            target_partitions: 0,
            memory_limit_mb: default_memory_limit_mb(),
            max_concurrent_queries: 0,
            queue_timeout_ms: default_queue_timeout_ms(),
            spill_dir: None,
            cache: Default::default(),
            prepared_mb: default_prepared_mb(),
            prepare_at_load: true,
        }
    }
}

impl EngineOptions {
    fn cores() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// Queries evaluated at once.
    pub fn concurrency(&self) -> usize {
        if self.max_concurrent_queries == 0 {
            Self::cores()
        } else {
            self.max_concurrent_queries
        }
    }

    /// The DataFusion runtime: a memory pool of the configured size (reporting the largest
    /// consumers when it refuses) and spilling only where configured.
    fn runtime(&self) -> Result<Arc<RuntimeEnv>, EngineError> {
        use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
        use datafusion::execution::memory_pool::{FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool};
        let top = std::num::NonZeroUsize::new(3).expect("3 is not zero");
        let bytes = usize::try_from(self.memory_limit_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let pool: Arc<dyn MemoryPool> = match (self.memory_limit_mb, &self.spill_dir) {
            (0, _) => Arc::new(UnboundedMemoryPool::default()),
            (_, Some(_)) => Arc::new(TrackConsumersPool::new(FairSpillPool::new(bytes), top)),
            (_, None) => Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(bytes), top)),
        };
        let mode = match &self.spill_dir {
            Some(dir) => DiskManagerMode::Directories(vec![dir.clone()]),
            None => DiskManagerMode::Disabled,
        };
        RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
            .build_arc()
            .map_err(|e| EngineError::Datalager(DatalagerError::Other(format!("engine runtime: {e}"))))
    }
}

/// Evaluates recipes over one region's datalager.
pub struct Engine {
    ctx: SessionContext,
    /// Turns to evaluate a query (`max_concurrent_queries`).
    turns: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    queue_timeout: std::time::Duration,
    region: String,
    data_version: String,
    data_years: (i32, i32),
    /// The datalager's rows are read into this process, so cells may be aggregated here
    /// ([`super::margins`]) rather than by GROUPING SETS in SQL.
    rows_are_local: bool,
    /// Prepared unit tables (local rows only; none when `prepared_mb` is 0).
    prepared: Option<PreparedCache>,
    /// How far building every recipe's prepared tables has come (health shows it).
    progress: Arc<PrepareProgress>,
}

impl Engine {
    /// Opens the datalager for `region` (a county code).
    pub async fn open(datalager: &dyn Datalager, region: &str, options: &EngineOptions) -> Result<Engine, EngineError> {
        let mut config = SessionConfig::new().with_information_schema(false);
        if options.target_partitions > 0 {
            config = config.with_target_partitions(options.target_partitions);
        }
        let ctx = SessionContext::new_with_state(datalager.session_state(config, options.runtime()?));
        datalager.register(&ctx).await?;
        // Residents: persons registered in a kommun of this region.
        let residents = format!("CREATE VIEW residents AS SELECT * FROM persons WHERE substr(kommun, 1, 2) = {}", literal(region));
        ctx.sql(&residents).await.map_err(|e| DatalagerError::Other(format!("creating the residents view: {e}")))?;
        let data_years = match datalager.years() {
            Some(y) => y,
            None => contact_years(&ctx).await?,
        };
        let concurrency = options.concurrency();
        Ok(Engine {
            ctx,
            turns: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            concurrency,
            queue_timeout: std::time::Duration::from_millis(options.queue_timeout_ms),
            region: region.to_string(),
            data_version: datalager.data_version(),
            data_years,
            rows_are_local: datalager.rows_are_local(),
            prepared: (datalager.rows_are_local() && options.prepared_mb > 0).then(|| PreparedCache::new(options.prepared_mb)),
            progress: Arc::new(PrepareProgress::default()),
        })
    }

    /// Builds the prepared tables of every recipe of `catalog` (its latest versions) in each
    /// perspective the recipe answers, one after another, for the data in this engine; a
    /// table that does not fit the budget is skipped (its questions take the SQL path), a
    /// recipe that fails is logged and counted. Progress is in [`Engine::progress`]. Stops
    /// between tables when `stopping` says so (the agent is shutting down).
    pub async fn prepare_all(&self, catalog: &norrsken_model::catalog::Catalog, stopping: &(dyn Fn() -> bool + Sync)) {
        use norrsken_model::query::{IndicatorQuery, Perspective, QueryOptions};
        let progress = &self.progress;
        if self.prepared.is_none() {
            progress.finish(0);
            return;
        }
        let (first, last) = self.data_years;
        let mut questions = Vec::new();
        for recipe in catalog.latest() {
            for perspective in [Perspective::Provider, Perspective::Population] {
                let q = IndicatorQuery {
                    indicator: recipe.id.clone(),
                    period: format!("{first}..{last}"),
                    options: QueryOptions { perspective, ..QueryOptions::default() },
                    ..IndicatorQuery::default()
                };
                // A perspective the recipe does not answer is not prepared.
                if let Ok(v) = q.validate_for_engine(catalog, Some(self.data_years)) {
                    questions.push(v);
                }
            }
        }
        progress.start(questions.len());
        let started = std::time::Instant::now();
        for v in &questions {
            if stopping() {
                tracing::debug!(region = %self.region, "stopping: the remaining prepared tables are not built");
                return;
            }
            match self.prepare(v).await {
                Ok(Some(_)) => progress.built.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                Ok(None) => progress.skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                Err(_) if stopping() => return,
                Err(e) => {
                    tracing::warn!(recipe = %v.recipe.key(), error = %e, "preparing the recipe's units failed: its questions take the SQL path");
                    progress.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                }
            };
        }
        let ms = started.elapsed().as_millis() as u64;
        progress.finish(ms);
        tracing::info!(region = %self.region, data_version = %self.data_version, tables = questions.len(), ms, "prepared every recipe's units");
    }

    /// How far [`Engine::prepare_all`] has come.
    pub fn progress(&self) -> &PrepareProgress {
        &self.progress
    }

    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn data_version(&self) -> &str {
        &self.data_version
    }
    /// First and last year the datalager holds.
    pub fn data_years(&self) -> (i32, i32) {
        self.data_years
    }
    /// The last day the datalager covers: the end of its last year.
    pub fn data_end(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.data_years.1, 12, 31).unwrap_or(chrono::NaiveDate::MAX)
    }
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The SQL the engine runs for a query: the labelled rows when the agent aggregates
    /// them itself, otherwise the whole aggregation.
    pub fn sql(&self, q: &ValidatedQuery) -> String {
        let cx = SqlContext { region: &self.region };
        if self.rows_are_local && q.recipe.kind == Kind::Rate {
            format!("{};\n\n{}", sql::compile_rows(q, &cx), sql::compile_population_cells(q, &cx))
        } else if self.rows_are_local {
            sql::compile_rows(q, &cx)
        } else {
            sql::compile(q, &cx)
        }
    }

    /// Evaluates a validated query into cells, sorted by region and labels.
    pub async fn evaluate(&self, q: &ValidatedQuery) -> Result<CellTable, EngineError> {
        self.evaluate_by(q, self.rows_are_local, true).await
    }

    /// Evaluates a validated query from the recipe's SQL even where a prepared table could
    /// answer it. The two must agree; the tests compare them.
    pub async fn evaluate_unprepared(&self, q: &ValidatedQuery) -> Result<CellTable, EngineError> {
        self.evaluate_by(q, self.rows_are_local, false).await
    }

    /// Builds (or finds) the prepared table of `q`'s recipe and perspective now, e.g. after
    /// a reload; None when the agent keeps no prepared tables or this one does not fit.
    pub async fn prepare(&self, q: &ValidatedQuery) -> Result<Option<Arc<PreparedUnits>>, EngineError> {
        match &self.prepared {
            Some(cache) => cache.get(&self.ctx, q, &self.region, self.data_years).await,
            None => Ok(None),
        }
    }

    /// The prepared tables held.
    pub fn prepared_stats(&self) -> PreparedStats {
        self.prepared.as_ref().map(PreparedCache::stats).unwrap_or_default()
    }

    /// Evaluates a validated query with the whole aggregation in SQL (GROUPING SETS), as a
    /// warehouse that takes the aggregate does, even where the agent would aggregate the
    /// rows itself. The two must agree; the tests compare them.
    pub async fn evaluate_in_sql(&self, q: &ValidatedQuery) -> Result<CellTable, EngineError> {
        self.evaluate_by(q, false, false).await
    }

    async fn evaluate_by(&self, q: &ValidatedQuery, aggregate_rows: bool, use_prepared: bool) -> Result<CellTable, EngineError> {
        let recipe = q.recipe.key();
        let waiting = std::time::Instant::now();
        let _turn = match tokio::time::timeout(self.queue_timeout, self.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(EngineError::Busy { running: self.concurrency, waited_ms: waiting.elapsed().as_millis() as u64 }),
        };
        let cx = SqlContext { region: &self.region };
        let fail = |e: DataFusionError| classify(&recipe, e);
        let prepared = match (aggregate_rows && use_prepared, &self.prepared) {
            (true, Some(cache)) => cache.get(&self.ctx, q, &self.region, self.data_years).await?.filter(|t| t.answers(q)),
            _ => None,
        };
        let mut cells = if let Some(table) = prepared {
            self.aggregate(q, Rows::Prepared(table)).await?
        } else if aggregate_rows {
            let df = self.ctx.sql(&sql::compile_rows(q, &cx)).await.map_err(fail)?;
            self.aggregate(q, Rows::Sql(df)).await?
        } else {
            let df = self.ctx.sql(&sql::compile(q, &cx)).await.map_err(fail)?;
            let batches = df.collect().await.map_err(fail)?;
            let mut cells = Vec::new();
            for batch in &batches {
                read_cells(batch, q, &mut cells).map_err(|problem| EngineError::RecipeOutput { recipe: recipe.clone(), problem })?;
            }
            cells
        };
        cells.sort_by(|a, b| (&a.region, &a.labels, &a.category).cmp(&(&b.region, &b.labels, &b.category)));
        Ok(CellTable { recipe: q.recipe.clone(), breakdowns: q.breakdowns.clone(), cells })
    }

    /// Puts the labelled rows (streamed from SQL, or selected from a prepared table) into a
    /// [`MarginAggregator`] whose memory counts against the engine's pool, then computes
    /// the cells off the async runtime.
    async fn aggregate(&self, q: &ValidatedQuery, rows: Rows) -> Result<Vec<RawCell>, EngineError> {
        use datafusion::execution::memory_pool::MemoryConsumer;
        use futures::StreamExt;
        let recipe = q.recipe.key();
        let margin_error = |e: MarginError| match e {
            MarginError::Rows(problem) => EngineError::RecipeOutput { recipe: recipe.clone(), problem },
            MarginError::Memory(e) => classify(&recipe, e),
        };
        let reservation = MemoryConsumer::new(format!("norrsken cells of {recipe}")).register(&self.ctx.runtime_env().memory_pool);
        let mut aggregator = MarginAggregator::new(q, reservation);
        let population_prepared = matches!(&rows, Rows::Prepared(t) if t.has_population());
        match rows {
            Rows::Sql(df) => {
                let mut stream = df.execute_stream().await.map_err(|e| classify(&recipe, e))?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| classify(&recipe, e))?;
                    aggregator.push(&batch).map_err(margin_error)?;
                }
            }
            Rows::Prepared(table) => {
                let question = q.clone();
                aggregator = tokio::task::spawn_blocking(move || table.select(&question, &mut aggregator).map(|()| aggregator))
                    .await
                    .map_err(|e| EngineError::Evaluation { recipe: recipe.clone(), message: format!("selecting the prepared rows: {e}") })?
                    .map_err(margin_error)?;
            }
        }
        if q.recipe.kind == Kind::Rate && !population_prepared {
            let population = sql::compile_population_cells(q, &SqlContext { region: &self.region });
            let df = self.ctx.sql(&population).await.map_err(|e| classify(&recipe, e))?;
            for batch in df.collect().await.map_err(|e| classify(&recipe, e))? {
                aggregator.push_population(&batch).map_err(margin_error)?;
            }
        }
        let finished = tokio::task::spawn_blocking(move || aggregator.finish())
            .await
            .map_err(|e| EngineError::Evaluation { recipe: recipe.clone(), message: format!("aggregating the rows: {e}") })?;
        finished.map_err(margin_error)
    }
}

/// Where a question's labelled rows come from.
enum Rows {
    Sql(datafusion::dataframe::DataFrame),
    Prepared(Arc<PreparedUnits>),
}

fn classify(recipe: &str, e: DataFusionError) -> EngineError {
    let root = e.find_root();
    match root {
        DataFusionError::ResourcesExhausted(m) => EngineError::ResourcesExhausted { recipe: recipe.into(), message: m.clone() },
        other => EngineError::Evaluation { recipe: recipe.into(), message: other.to_string() },
    }
}

async fn contact_years(ctx: &SessionContext) -> Result<(i32, i32), EngineError> {
    let fail = |e: DataFusionError| EngineError::Evaluation { recipe: "data years".into(), message: e.to_string() };
    let df = ctx
        .sql("SELECT CAST(MIN(date_part('year', start_time)) AS BIGINT) AS a, CAST(MAX(date_part('year', start_time)) AS BIGINT) AS b FROM contacts")
        .await
        .map_err(fail)?;
    let batches = df.collect().await.map_err(fail)?;
    let get = |i: usize| -> Option<i64> {
        let b = batches.first()?;
        let a = b.column(i).as_any().downcast_ref::<Int64Array>()?;
        (!a.is_null(0)).then(|| a.value(0))
    };
    match (get(0), get(1)) {
        (Some(a), Some(b)) => Ok((a as i32, b as i32)),
        _ => Err(EngineError::Datalager(DatalagerError::Other("the contacts table is empty".into()))),
    }
}

