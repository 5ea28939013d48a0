//! The local indicator engine: evaluates a recipe over one region's datalager with
//! DataFusion and returns the additive components of every cell.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionContext;
use norrsken_common::breakdown::Breakdown;
use norrsken_common::catalog::{Kind, Recipe};
use norrsken_common::geography;
use norrsken_common::query::ValidatedQuery;

use crate::datalager::{Datalager, DatalagerError};
use crate::margins::{MarginAggregator, MarginError};
use crate::sql::{self, literal, SqlContext};

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

/// The additive components of one cell, before disclosure control. Counts are exact and
/// never leave the agent in this form.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCell {
    /// County code the cell belongs to (the agent's region, or the patient's home region in
    /// the population perspective).
    pub region: String,
    /// One label per breakdown of the query, in query order.
    pub labels: Vec<String>,
    /// Outcome category for distribution recipes.
    pub category: Option<String>,
    /// Units in the cell (the denominator of a proportion, the events of a rate or count,
    /// the n of a mean or cost sum).
    pub units: i64,
    /// Distinct persons among the units.
    pub persons: i64,
    /// Units meeting the numerator (proportions).
    pub numerator: i64,
    pub numerator_persons: i64,
    pub value_sum: f64,
    pub value_sum_sq: f64,
    /// Largest and second-largest per-person contribution to `value_sum` (cost sums).
    pub top1: f64,
    pub top2: f64,
    /// Inhabitants (rates): residents alive on 1 July, summed over the period's years.
    pub population: i64,
    /// Sums of the mixed unit ids of the units, the numerator's units and the population
    /// (see `record_key`): with the counts they give the cell keys.
    pub units_mix: i64,
    pub numerator_mix: i64,
    pub population_mix: i64,
}

/// The cells of one evaluated query.
#[derive(Debug, Clone)]
pub struct CellTable {
    pub recipe: Arc<Recipe>,
    pub breakdowns: Vec<Breakdown>,
    pub cells: Vec<RawCell>,
}

impl CellTable {
    /// The cells as an Arrow batch (for `norrsken eval` and tests).
    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut fields = vec![Field::new("region", DataType::Utf8, false)];
        fields.extend(self.breakdowns.iter().map(|b| Field::new(b.name(), DataType::Utf8, false)));
        let distribution = self.recipe.is_distribution();
        if distribution {
            fields.push(Field::new("category", DataType::Utf8, false));
        }
        let ints = ["units", "persons", "numerator", "numerator_persons", "population"];
        let floats = ["value_sum", "value_sum_sq"];
        fields.extend(ints.iter().map(|n| Field::new(*n, DataType::Int64, false)));
        fields.extend(floats.iter().map(|n| Field::new(*n, DataType::Float64, false)));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.region.as_str())))];
        for i in 0..self.breakdowns.len() {
            columns.push(Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.labels[i].as_str()))));
        }
        if distribution {
            columns.push(Arc::new(StringArray::from_iter_values(self.cells.iter().map(|c| c.category.as_deref().unwrap_or("")))));
        }
        let int_of = |name: &str, c: &RawCell| match name {
            "units" => c.units,
            "persons" => c.persons,
            "numerator" => c.numerator,
            "numerator_persons" => c.numerator_persons,
            _ => c.population,
        };
        for n in ints {
            columns.push(Arc::new(Int64Array::from_iter_values(self.cells.iter().map(|c| int_of(n, c)))));
        }
        columns.push(Arc::new(Float64Array::from_iter_values(self.cells.iter().map(|c| c.value_sum))));
        columns.push(Arc::new(Float64Array::from_iter_values(self.cells.iter().map(|c| c.value_sum_sq))));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }
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
    /// ([`crate::margins`]) rather than by GROUPING SETS in SQL.
    rows_are_local: bool,
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
        })
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
        self.evaluate_by(q, self.rows_are_local).await
    }

    /// Evaluates a validated query with the whole aggregation in SQL (GROUPING SETS), as a
    /// warehouse that takes the aggregate does, even where the agent would aggregate the
    /// rows itself. The two must agree; the tests compare them.
    pub async fn evaluate_in_sql(&self, q: &ValidatedQuery) -> Result<CellTable, EngineError> {
        self.evaluate_by(q, false).await
    }

    async fn evaluate_by(&self, q: &ValidatedQuery, aggregate_rows: bool) -> Result<CellTable, EngineError> {
        let recipe = q.recipe.key();
        let waiting = std::time::Instant::now();
        let _turn = match tokio::time::timeout(self.queue_timeout, self.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(EngineError::Busy { running: self.concurrency, waited_ms: waiting.elapsed().as_millis() as u64 }),
        };
        let cx = SqlContext { region: &self.region };
        let fail = |e: DataFusionError| classify(&recipe, e);
        let mut cells = if aggregate_rows {
            let df = self.ctx.sql(&sql::compile_rows(q, &cx)).await.map_err(fail)?;
            self.aggregate_rows(q, df).await?
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

    /// Streams the labelled rows into a [`MarginAggregator`] whose memory counts against
    /// the engine's pool, then computes the cells off the async runtime.
    async fn aggregate_rows(&self, q: &ValidatedQuery, df: datafusion::dataframe::DataFrame) -> Result<Vec<RawCell>, EngineError> {
        use datafusion::execution::memory_pool::MemoryConsumer;
        use futures::StreamExt;
        let recipe = q.recipe.key();
        let margin_error = |e: MarginError| match e {
            MarginError::Rows(problem) => EngineError::RecipeOutput { recipe: recipe.clone(), problem },
            MarginError::Memory(e) => classify(&recipe, e),
        };
        let reservation = MemoryConsumer::new(format!("norrsken cells of {recipe}")).register(&self.ctx.runtime_env().memory_pool);
        let mut aggregator = MarginAggregator::new(q, reservation);
        let mut stream = df.execute_stream().await.map_err(|e| classify(&recipe, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| classify(&recipe, e))?;
            aggregator.push(&batch).map_err(margin_error)?;
        }
        drop(stream);
        if q.recipe.kind == Kind::Rate {
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

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch.column_by_name(name).ok_or_else(|| format!("no column '{name}'"))
}

fn ints(batch: &RecordBatch, name: &str) -> Result<Int64Array, String> {
    let a = cast(column(batch, name)?, &DataType::Int64).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| format!("column '{name}' is not an integer"))
}

fn floats(batch: &RecordBatch, name: &str) -> Result<Float64Array, String> {
    let a = cast(column(batch, name)?, &DataType::Float64).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<Float64Array>().cloned().ok_or_else(|| format!("column '{name}' is not a number"))
}

fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, String> {
    let a = cast(column(batch, name)?, &DataType::Utf8).map_err(|e| format!("column '{name}': {e}"))?;
    a.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| format!("column '{name}' is not text"))
}

fn read_cells(batch: &RecordBatch, q: &ValidatedQuery, out: &mut Vec<RawCell>) -> Result<(), String> {
    let region = strings(batch, "region")?;
    let labels: Vec<StringArray> = q.breakdowns.iter().map(|b| strings(batch, &format!("b_{}", b.name()))).collect::<Result<_, _>>()?;
    let category = if q.recipe.is_distribution() { Some(strings(batch, "category")?) } else { None };
    let (units, persons, numerator, numerator_persons) =
        (ints(batch, "units")?, ints(batch, "persons")?, ints(batch, "numerator")?, ints(batch, "numerator_persons")?);
    let (population, units_mix, numerator_mix, population_mix) =
        (ints(batch, "population")?, ints(batch, "units_mix")?, ints(batch, "numerator_mix")?, ints(batch, "population_mix")?);
    let (value_sum, value_sum_sq, top1, top2) =
        (floats(batch, "value_sum")?, floats(batch, "value_sum_sq")?, floats(batch, "top1")?, floats(batch, "top2")?);
    let int = |a: &Int64Array, i: usize| if a.is_null(i) { 0 } else { a.value(i) };
    let float = |a: &Float64Array, i: usize| if a.is_null(i) { 0.0 } else { a.value(i) };
    for i in 0..batch.num_rows() {
        if region.is_null(i) {
            return Err("a cell without a region (a person with no kommun?)".into());
        }
        let code = region.value(i);
        if geography::find_region(code).is_none() && code.len() != 2 {
            return Err(format!("a cell with region '{code}'"));
        }
        let mut ls = Vec::with_capacity(labels.len());
        for (b, l) in q.breakdowns.iter().zip(&labels) {
            if l.is_null(i) {
                return Err(format!("a cell without a value for '{}'", b.name()));
            }
            ls.push(l.value(i).to_string());
        }
        out.push(RawCell {
            region: code.to_string(),
            labels: ls,
            category: category.as_ref().map(|c| c.value(i).to_string()),
            units: int(&units, i),
            persons: int(&persons, i),
            numerator: int(&numerator, i),
            numerator_persons: int(&numerator_persons, i),
            value_sum: float(&value_sum, i),
            value_sum_sq: float(&value_sum_sq, i),
            top1: float(&top1, i),
            top2: float(&top2, i),
            population: int(&population, i),
            units_mix: int(&units_mix, i),
            numerator_mix: int(&numerator_mix, i),
            population_mix: int(&population_mix, i),
        });
    }
    Ok(())
}
