//! The Arrow Flight SQL front door of the coordinator (docs/sql.md): a thin layer that
//! decodes Flight SQL commands, plans statements in DataFusion over one table per indicator
//! ([`table`]) and reference tables, and encodes the answers. Every indicator question a
//! statement becomes goes through the coordinator's query path like a Flight ticket (same
//! roles, same protection, its own audit record); the statement itself gets an `sql` audit
//! record naming them. Read-only: updates, ingest, transactions and Substrait are refused.
//!
//! Every statement runs in a task of its own within `[sql] statement_timeout_s` and
//! `statement_memory_mb`, and stops when the client goes away; its record says how it
//! ended. Every refusal (an identity without a role, a malformed command, a write) is
//! recorded by this door and answered with its error kind ([`checked`] decodes every command
//! before arrow-flight's dispatcher, so malformed input is `InvalidArgument`).

pub mod checked;
pub mod functions;
pub mod table;

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest, ActionBeginTransactionResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest, ActionEndSavepointRequest,
    ActionEndTransactionRequest, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, CommandStatementSubstraitPlan,
    Nullable, ProstMessageExt, Searchable, SqlInfo, TicketStatementQuery, XdbcDataType,
};
use arrow_flight::{Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::Stream;
use norrsken_common::audit::{AuditEvent, Who};
use norrsken_common::error::{ErrorKind, NodeError};
use norrsken_common::flight::caller_of;
use norrsken_model::query::{AnalysisKind, QueryError};
use norrsken_model::vocabulary;
use norrsken_common::service::{Caller, Node};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::config::SqlSettings;
use crate::node::CoordinatorNode;
use table::IndicatorTable;
use crate::ask::InProcess;

/// The catalog name SQL tools show.
pub const CATALOG: &str = "norrsken";
/// The schema holding every indicator (unqualified names resolve here).
pub const ALL: &str = "indicators";
/// The schema of the reference tables.
pub const REFERENCE: &str = "reference";

/// The Flight SQL service.
#[derive(Clone)]
pub struct SqlFrontDoor {
    node: Arc<CoordinatorNode>,
    limits: SqlSettings,
}

type Stream_ = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

fn read_only(what: &str) -> NodeError {
    NodeError::PermissionDenied(format!("{what} refused: the Norrsken federation is read-only (queries over released cells only)"))
}

fn not_offered(type_url: &str) -> NodeError {
    NodeError::Unsupported(format!("{} is a Flight SQL request Norrsken does not offer here", norrsken_model::text::quote(type_url)))
}

fn invalid(field: &'static str, message: String) -> NodeError {
    NodeError::Query(QueryError::Invalid { field, message: norrsken_model::text::bound(&message) })
}

/// Refusals recorded through the audit log's rate limiter (per identity and address), as
/// the envelope records them: those of identities without a role and beyond their limits.
fn rate_limited_record(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::RateLimited)
}

/// How a statement's task ended.
enum Ended {
    Done(Result<(SchemaRef, Vec<RecordBatch>), NodeError>),
    /// The client went away (its request was dropped) before the statement ended.
    Gone,
}

impl SqlFrontDoor {
    pub fn new(node: Arc<CoordinatorNode>) -> SqlFrontDoor {
        let limits = node.config.sql.clone();
        SqlFrontDoor { node, limits }
    }

    /// A session for one caller: the `norrsken` catalog with a schema per indicator source,
    /// `indicators` with all of them, and `reference`; its sorts, joins and aggregations
    /// hold at most `statement_memory_mb` and never spill to disk.
    fn session(&self, caller: &Caller) -> Result<(SessionContext, Arc<InProcess>), NodeError> {
        let asker = Arc::new(InProcess::new(self.node.clone(), caller.clone()));
        let config = SessionConfig::new().with_default_catalog_and_schema(CATALOG, ALL).with_information_schema(false);
        let bytes = usize::try_from(self.limits.statement_memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(bytes, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .map_err(|e| NodeError::Internal(format!("the statement's runtime: {e}")))?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let all = Arc::new(MemorySchemaProvider::new());
        let mut by_source: std::collections::BTreeMap<String, Arc<MemorySchemaProvider>> = Default::default();
        let latest = self.node.base.catalog.latest();
        for r in self.node.base.catalog.all() {
            let source = by_source.entry(r.source.name().to_string()).or_insert_with(|| Arc::new(MemorySchemaProvider::new())).clone();
            let table = Arc::new(IndicatorTable::new(r.clone(), asker.clone()));
            let versioned = format!("{}_v{}", r.id, r.version);
            let _ = all.register_table(versioned.clone(), table.clone());
            let _ = source.register_table(versioned, table.clone());
            if latest.iter().any(|l| l.id == r.id && l.version == r.version) {
                let _ = all.register_table(r.id.clone(), table.clone());
                let _ = source.register_table(r.id.clone(), table);
            }
        }
        use datafusion::catalog::{CatalogProvider, SchemaProvider};
        let _ = catalog.register_schema(ALL, all);
        for (name, schema) in by_source {
            let _ = catalog.register_schema(&name, schema);
        }
        let reference = Arc::new(MemorySchemaProvider::new());
        for (name, batch) in self.reference_tables() {
            if let Ok(t) = MemTable::try_new(batch.schema(), vec![vec![batch]]) {
                let _ = reference.register_table(name.to_string(), Arc::new(t));
            }
        }
        let _ = catalog.register_schema(REFERENCE, reference);
        ctx.register_catalog(CATALOG, catalog);
        for kind in AnalysisKind::ALL {
            let f = functions::AnalysisFunction { kind, catalog: self.node.base.catalog.clone(), asker: asker.clone() };
            ctx.register_udtf(kind.name(), Arc::new(f));
        }
        Ok((ctx, asker))
    }

    /// `indicators`, `regions`, `kommuner`, `codes`, `standard_populations`.
    fn reference_tables(&self) -> Vec<(&'static str, RecordBatch)> {
        let text = |v: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        // A table of text columns, each named with its values.
        let texts = |columns: Vec<(&str, Vec<String>)>| {
            let fields: Vec<Field> = columns.iter().map(|(name, _)| Field::new(*name, DataType::Utf8, false)).collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, values)| text(values)).collect())
        };
        let latest = self.node.base.catalog.latest();
        let indicators = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("version", DataType::UInt32, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("title", DataType::Utf8, false),
                Field::new("title_sv", DataType::Utf8, false),
                Field::new("breakdowns", DataType::Utf8, false),
            ])),
            vec![
                text(latest.iter().map(|r| r.id.clone()).collect()),
                Arc::new(UInt32Array::from(latest.iter().map(|r| r.version).collect::<Vec<_>>())),
                text(latest.iter().map(|r| r.source.name().to_string()).collect()),
                text(latest.iter().map(|r| r.kind.name().to_string()).collect()),
                text(latest.iter().map(|r| r.title.en.clone()).collect()),
                text(latest.iter().map(|r| r.title.sv.clone()).collect()),
                text(latest.iter().map(|r| r.breakdowns.iter().map(|b| b.name()).collect::<Vec<_>>().join(",")).collect()),
            ],
        );
        let agents = self.node.agents();
        let regions = texts(vec![("region", agents.iter().map(|a| a.endpoint.region.clone()).collect()), ("name", agents.iter().map(|a| a.endpoint.name.clone()).collect())]);
        // Every kommun in Sweden (SCB's list): its code (as the indicator tables' `kommun`
        // column holds it), its name and its region, to join on for names.
        let all = vocabulary::names::kommuner();
        let kommuner = texts(vec![
            ("kommun", all.iter().map(|k| k.code.to_string()).collect()),
            ("name", all.iter().map(|k| k.name.to_string()).collect()),
            ("region", all.iter().map(|k| k.county.to_string()).collect()),
            ("region_name", all.iter().map(|k| norrsken_model::geography::find_region(k.county).map_or("", |r| r.name).to_string()).collect()),
        ]);
        // Every named code of every breakdown (sex, education, …, kommun) in both languages.
        let named = vocabulary::names::named_values();
        let values = texts(vec![
            ("breakdown", named.iter().map(|(b, _)| b.name().to_string()).collect()),
            ("code", named.iter().map(|(_, c)| c.clone()).collect()),
            ("name_sv", named.iter().map(|(b, c)| vocabulary::value_text(*b, c, vocabulary::Lang::Sv)).collect()),
            ("name_en", named.iter().map(|(b, c)| vocabulary::value_text(*b, c, vocabulary::Lang::En)).collect()),
        ]);
        let mut ids = Vec::new();
        let mut from = Vec::new();
        let mut to = Vec::new();
        let mut weight = Vec::new();
        for s in norrsken_model::standard::standards() {
            for b in &s.bands {
                ids.push(s.id.clone());
                from.push(b.from);
                to.push(b.to);
                weight.push(b.weight);
            }
        }
        let standards = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("standard", DataType::Utf8, false),
                Field::new("age_from", DataType::UInt32, false),
                Field::new("age_to", DataType::UInt32, true),
                Field::new("weight", DataType::Float64, false),
            ])),
            vec![text(ids), Arc::new(UInt32Array::from(from)), Arc::new(UInt32Array::from(to)), Arc::new(arrow::array::Float64Array::from(weight))],
        );
        [("indicators", indicators), ("regions", regions), ("kommuner", kommuner), ("codes", values), ("standard_populations", standards)]
            .into_iter()
            .filter_map(|(n, b)| b.ok().map(|b| (n, b)))
            .collect()
    }

    /// Records a refusal of this door and answers it with its kind (so the transport edge
    /// knows it is on record): rate-limited per identity and address, like the envelope's
    /// records of refused listings and actions.
    pub(crate) async fn refuse(&self, caller: &Caller, operation: &str, e: NodeError) -> Status {
        let event = AuditEvent {
            kind: "refused".into(),
            outcome: e.kind().outcome().into(),
            requester: caller.identity.as_ref().map(Who::from),
            peer: caller.addr.map(|a| a.to_string()),
            operation: Some(format!("sql {operation}")),
            reason: Some(norrsken_model::text::bound(&e.to_string())),
            ..Default::default()
        };
        match self.node.base.audit.refusal(event).await {
            Ok(()) => e.to_status(),
            Err(a) => NodeError::AuditUnavailable(a.to_string()).to_status(),
        }
    }

    /// Who may use SQL at all: any identity with a role; a refusal is recorded.
    pub(crate) async fn admit<T>(&self, req: &Request<T>, operation: &str) -> Result<Caller, Status> {
        let caller = caller_of(req);
        match self.node.may_browse(&caller) {
            Ok(()) => Ok(caller),
            Err(e) => Err(self.refuse(&caller, operation, e).await),
        }
    }

    /// Plans (and with `run`, runs) a statement as `caller` in a task of its own, within
    /// the statement's time limit; the task stops the statement when this future is dropped
    /// (the client went away) and records it: every run, and a plan that is refused.
    async fn statement(&self, caller: &Caller, sql: &str, run: bool) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        // Dropped with this future: tells the task that nobody waits for the answer.
        let (waiting, gone) = tokio::sync::oneshot::channel::<()>();
        let (me, caller, sql) = (self.clone(), caller.clone(), sql.to_string());
        let task = tokio::spawn(async move { me.statement_task(caller, sql, run, gone).await });
        let result = task.await.map_err(|e| NodeError::Internal(format!("the statement's task failed: {e}")).to_status())?;
        drop(waiting);
        result
    }

    async fn statement_task(self, caller: Caller, sql: String, run: bool, gone: tokio::sync::oneshot::Receiver<()>) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let started = std::time::Instant::now();
        let limit = std::time::Duration::from_secs(self.limits.statement_timeout_s);
        let (ctx, asker) = self.session(&caller).map_err(|e| e.to_status())?;
        let memory_mb = self.limits.statement_memory_mb;
        let work = async {
            let df = dataframe(&ctx, &sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            if !run {
                return Ok((schema, Vec::new()));
            }
            let batches = df.collect().await.map_err(|e| statement_error(&e, memory_mb))?;
            Ok((schema, batches))
        };
        let ended = tokio::select! {
            biased;
            r = work => Ended::Done(r),
            _ = gone => Ended::Gone,
            _ = tokio::time::sleep(limit) => Ended::Done(Err(NodeError::Timeout(format!(
                "the statement was stopped after {} s, the longest a statement may run ([sql] statement_timeout_s); \
                 narrow it, or check it ends (a recursive query needs a condition that stops it)",
                limit.as_secs()
            )))),
        };
        let elapsed = started.elapsed();
        let (outcome, reason, result) = match ended {
            Ended::Done(Ok(answer)) if !run => return Ok(answer),
            Ended::Done(Ok(answer)) => ("ok".to_string(), None, Ok(answer)),
            Ended::Done(Err(e)) => (e.kind().outcome().to_string(), Some(norrsken_model::text::bound(&e.to_string())), Err(e)),
            Ended::Gone => (
                "cancelled".to_string(),
                Some(format!("the client went away after {} ms; the statement was stopped", elapsed.as_millis())),
                Err(NodeError::Internal("the client went away".into())),
            ),
        };
        let event = AuditEvent {
            kind: "sql".into(),
            outcome,
            requester: caller.identity.as_ref().map(Who::from),
            peer: caller.addr.map(|a| a.to_string()),
            operation: Some(if run { "statement" } else { "plan" }.into()),
            sql: Some(norrsken_model::text::bound(&sql)),
            queries: asker.query_ids(),
            reason,
            duration_ms: Some(elapsed.as_millis() as u64),
            ..Default::default()
        };
        // No record, no answer; refusals of identities and of limits through the limiter.
        let log = &self.node.base.audit;
        let written = match &result {
            Err(e) if rate_limited_record(e.kind()) => log.refusal(event).await,
            _ => log.append(event).await.map(|_| ()),
        };
        written.map_err(|e| NodeError::AuditUnavailable(e.to_string()).to_status())?;
        result.map_err(|e| e.to_status())
    }

    /// Runs a statement and encodes its answer.
    async fn run(&self, caller: &Caller, sql: &str) -> Result<Response<Stream_>, Status> {
        let (schema, batches) = self.statement(caller, sql, true).await?;
        let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err_status();
        Ok(Response::new(Box::pin(stream)))
    }

    /// The schema a statement answers with.
    async fn plan(&self, caller: &Caller, sql: &str) -> Result<Schema, Status> {
        let (schema, _) = self.statement(caller, sql, false).await?;
        Ok(schema.as_ref().clone())
    }

    /// The SQL text of a statement ticket or prepared statement handle (this server makes
    /// both from the SQL itself).
    async fn handle_text(&self, caller: &Caller, handle: &[u8], what: &'static str) -> Result<String, Status> {
        match String::from_utf8(handle.to_vec()) {
            Ok(sql) => Ok(sql),
            Err(_) => Err(self.refuse(caller, what, invalid(what, "is not one this server made (it is not UTF-8 SQL text)".into())).await),
        }
    }
}

/// Plans a statement; anything but a query (DDL, DML, SET, transactions) is refused.
async fn dataframe(ctx: &SessionContext, sql: &str) -> Result<datafusion::dataframe::DataFrame, NodeError> {
    let plan = ctx.state().create_logical_plan(sql).await.map_err(|e| statement_error(&e, 0))?;
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|_| read_only("a statement that changes data, tables or settings"))?;
    ctx.execute_logical_plan(plan).await.map_err(|e| statement_error(&e, 0))
}

/// What a statement's DataFusion error means for its caller: the error of an indicator
/// question it asked (a refusal keeps its kind), the memory limit, an internal failure,
/// or else a statement the caller must change (the message bounded, without the
/// planner's prefixes twice).
fn statement_error(e: &DataFusionError, memory_mb: u64) -> NodeError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(n) = c.downcast_ref::<NodeError>() {
            return n.clone();
        }
        if let Some(DataFusionError::ResourcesExhausted(m)) = c.downcast_ref::<DataFusionError>() {
            return NodeError::ResourceExhausted(format!(
                "the statement needs more memory than the {memory_mb} MiB one statement may use ([sql] statement_memory_mb); \
                 narrow it (fewer rows, smaller sorts, joins and aggregations): {}",
                bounded(m)
            ));
        }
        cause = c.source();
    }
    match e.find_root() {
        DataFusionError::Internal(m) => NodeError::Internal(bounded(m)),
        // A table that does not exist is not found (NOT_FOUND), like an unknown indicator.
        DataFusionError::Plan(m) if m.starts_with("table '") && m.ends_with("' not found") => NodeError::Query(QueryError::UnknownIndicator {
            id: bounded(&m["table '".len()..m.len() - "' not found".len()]),
            known: "the tables SELECT table_schema, table_name FROM information_schema.tables lists".into(),
        }),
        other => invalid("statement", bounded(&other.to_string())),
    }
}

/// A DataFusion error as a client reads it: bounded, without the planner's prefixes twice.
fn bounded(m: &str) -> String {
    norrsken_model::text::bound(m.trim_start_matches("Error during planning: "))
}

trait MapErrStatus: Stream<Item = Result<arrow_flight::FlightData, arrow_flight::error::FlightError>> + Sized + Send + 'static {
    fn map_err_status(self) -> futures::stream::MapErr<Self, fn(arrow_flight::error::FlightError) -> Status> {
        futures::TryStreamExt::map_err(self, Status::from as fn(arrow_flight::error::FlightError) -> Status)
    }
}
impl<S: Stream<Item = Result<arrow_flight::FlightData, arrow_flight::error::FlightError>> + Sized + Send + 'static> MapErrStatus for S {}

fn batch_stream<E: std::fmt::Display>(schema: SchemaRef, batch: Result<RecordBatch, E>) -> Result<Response<Stream_>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(futures::stream::iter([Ok(batch)])).map_err_status();
    Ok(Response::new(Box::pin(stream)))
}

fn info_for(cmd: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(cmd.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

static SQL_INFO: std::sync::LazyLock<SqlInfoData> = std::sync::LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Norrsken");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    // SQL_SUPPORTED_TRANSACTION_NONE
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("static SQL info")
});

static XDBC_INFO: std::sync::LazyLock<XdbcTypeInfoData> = std::sync::LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let ty = |name: &str, t: XdbcDataType, size: Option<i32>| XdbcTypeInfo {
        type_name: name.into(),
        data_type: t,
        column_size: size,
        literal_prefix: (t == XdbcDataType::XdbcVarchar).then(|| "'".into()),
        literal_suffix: (t == XdbcDataType::XdbcVarchar).then(|| "'".into()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: t == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: (t != XdbcDataType::XdbcVarchar).then_some(false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: t,
        datetime_subcode: None,
        num_prec_radix: (t != XdbcDataType::XdbcVarchar).then_some(10),
        interval_precision: None,
    };
    b.append(ty("BOOLEAN", XdbcDataType::XdbcBit, Some(1)));
    b.append(ty("INTEGER", XdbcDataType::XdbcInteger, Some(32)));
    b.append(ty("BIGINT", XdbcDataType::XdbcBigint, Some(64)));
    b.append(ty("DOUBLE", XdbcDataType::XdbcDouble, Some(53)));
    b.append(ty("VARCHAR", XdbcDataType::XdbcVarchar, None));
    b.build().expect("static XDBC info")
});

#[tonic::async_trait]
impl FlightSqlService for SqlFrontDoor {
    type FlightService = SqlFrontDoor;

    /// The identity is the client certificate's; a handshake only confirms it has a role.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.admit(&request, "do_handshake").await?;
        let out = futures::stream::iter([Ok(HandshakeResponse { protocol_version: 0, payload: Default::default() })]);
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_flight_info_statement(&self, query: CommandStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let caller = self.admit(&request, "get_flight_info_statement").await?;
        let schema = self.plan(&caller, &query.query).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.clone().into_bytes().into() };
        info_for(ticket, &schema, request.into_inner())
    }

    async fn get_flight_info_prepared_statement(&self, cmd: CommandPreparedStatementQuery, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let caller = self.admit(&request, "get_flight_info_prepared_statement").await?;
        let sql = self.handle_text(&caller, &cmd.prepared_statement_handle, "prepared statement handle").await?;
        let schema = self.plan(&caller, &sql).await?;
        info_for(cmd, &schema, request.into_inner())
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_catalogs").await?;
        let schema = query.clone().into_builder().schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_schemas").await?;
        let schema = query.clone().into_builder().schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_tables").await?;
        let schema = query.clone().into_builder().schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn get_flight_info_table_types(&self, query: CommandGetTableTypes, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_table_types").await?;
        let schema = query.clone().into_builder().schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_sql_info").await?;
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn get_flight_info_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.admit(&request, "get_flight_info_xdbc_type_info").await?;
        let schema = query.clone().into_builder(&XDBC_INFO).schema();
        info_for(query, &schema, request.into_inner())
    }

    async fn do_get_statement(&self, ticket: TicketStatementQuery, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.admit(&request, "do_get_statement").await?;
        let sql = self.handle_text(&caller, &ticket.statement_handle, "statement ticket").await?;
        self.run(&caller, &sql).await
    }

    async fn do_get_prepared_statement(&self, query: CommandPreparedStatementQuery, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.admit(&request, "do_get_prepared_statement").await?;
        let sql = self.handle_text(&caller, &query.prepared_statement_handle, "prepared statement handle").await?;
        self.run(&caller, &sql).await
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.admit(&request, "do_get_catalogs").await?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.admit(&request, "do_get_schemas").await?;
        let (ctx, _) = match self.session(&caller) {
            Ok(s) => s,
            Err(e) => return Err(self.refuse(&caller, "do_get_schemas", e).await),
        };
        let mut b = query.into_builder();
        if let Some(catalog) = ctx.catalog(CATALOG) {
            for s in catalog.schema_names() {
                b.append(CATALOG, s);
            }
        }
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.admit(&request, "do_get_tables").await?;
        let (ctx, _) = match self.session(&caller) {
            Ok(s) => s,
            Err(e) => return Err(self.refuse(&caller, "do_get_tables", e).await),
        };
        let mut b = query.into_builder();
        if let Some(catalog) = ctx.catalog(CATALOG) {
            for s in catalog.schema_names() {
                let Some(schema) = catalog.schema(&s) else { continue };
                let mut names = schema.table_names();
                names.sort();
                for t in names {
                    if let Ok(Some(table)) = schema.table(&t).await {
                        let kind = if s == REFERENCE { "TABLE" } else { "VIEW" };
                        b.append(CATALOG, &s, &t, kind, table.schema().as_ref()).map_err(|e| Status::internal(e.to_string()))?;
                    }
                }
            }
        }
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn do_get_table_types(&self, query: CommandGetTableTypes, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.admit(&request, "do_get_table_types").await?;
        let mut b = query.into_builder();
        b.append("TABLE");
        b.append("VIEW");
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.admit(&request, "do_get_sql_info").await?;
        let b = query.into_builder(&SQL_INFO);
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn do_get_xdbc_type_info(&self, query: CommandGetXdbcTypeInfo, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.admit(&request, "do_get_xdbc_type_info").await?;
        let b = query.into_builder(&XDBC_INFO);
        let schema = b.schema();
        batch_stream(schema, b.build())
    }

    async fn get_flight_info_substrait_plan(&self, _: CommandStatementSubstraitPlan, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let caller = self.admit(&request, "get_flight_info_substrait_plan").await?;
        Err(self.refuse(&caller, "get_flight_info_substrait_plan", NodeError::Unsupported("Substrait plans are not accepted: send SQL".into())).await)
    }

    // DoPut (prepared statement parameters, and the writes refused) is answered in
    // `checked`, before arrow-flight's dispatcher.

    /// A prepared statement's handle is its SQL text: nothing to keep on the server.
    async fn do_action_create_prepared_statement(&self, query: ActionCreatePreparedStatementRequest, request: Request<Action>) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.admit(&request, "do_action_create_prepared_statement").await?;
        let schema = self.plan(&caller, &query.query).await?;
        let IpcMessage(schema_bytes) = SchemaAsIpc::new(&schema, &arrow::ipc::writer::IpcWriteOptions::default()).try_into().map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult { prepared_statement_handle: query.query.into_bytes().into(), dataset_schema: schema_bytes, parameter_schema: Default::default() })
    }

    async fn do_action_close_prepared_statement(&self, _: ActionClosePreparedStatementRequest, request: Request<Action>) -> Result<(), Status> {
        self.admit(&request, "do_action_close_prepared_statement").await?;
        Ok(())
    }

    async fn do_action_create_prepared_substrait_plan(&self, _: ActionCreatePreparedSubstraitPlanRequest, request: Request<Action>) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.admit(&request, "do_action_create_prepared_substrait_plan").await?;
        Err(self.refuse(&caller, "do_action_create_prepared_substrait_plan", NodeError::Unsupported("Substrait plans are not accepted: send SQL".into())).await)
    }

    async fn do_action_begin_transaction(&self, _: ActionBeginTransactionRequest, request: Request<Action>) -> Result<ActionBeginTransactionResult, Status> {
        let caller = self.admit(&request, "do_action_begin_transaction").await?;
        Err(self.refuse(&caller, "do_action_begin_transaction", read_only("a transaction")).await)
    }

    async fn do_action_end_transaction(&self, _: ActionEndTransactionRequest, request: Request<Action>) -> Result<(), Status> {
        let caller = self.admit(&request, "do_action_end_transaction").await?;
        Err(self.refuse(&caller, "do_action_end_transaction", read_only("a transaction")).await)
    }

    async fn do_action_begin_savepoint(&self, _: ActionBeginSavepointRequest, request: Request<Action>) -> Result<ActionBeginSavepointResult, Status> {
        let caller = self.admit(&request, "do_action_begin_savepoint").await?;
        Err(self.refuse(&caller, "do_action_begin_savepoint", read_only("a savepoint")).await)
    }

    async fn do_action_end_savepoint(&self, _: ActionEndSavepointRequest, request: Request<Action>) -> Result<(), Status> {
        let caller = self.admit(&request, "do_action_end_savepoint").await?;
        Err(self.refuse(&caller, "do_action_end_savepoint", read_only("a savepoint")).await)
    }

    async fn get_flight_info_fallback(&self, cmd: arrow_flight::sql::Command, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let caller = self.admit(&request, "get_flight_info").await?;
        Err(self.refuse(&caller, "get_flight_info", not_offered(cmd.type_url())).await)
    }

    async fn do_get_fallback(&self, request: Request<Ticket>, message: arrow_flight::sql::Any) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.admit(&request, "do_get").await?;
        Err(self.refuse(&caller, "do_get", not_offered(&message.type_url)).await)
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let caller = self.admit(&request, "do_action").await?;
        let name = norrsken_model::text::quote(&request.get_ref().r#type);
        Err(self.refuse(&caller, "do_action", invalid("action type", format!("{name} is not a Flight SQL action this server offers"))).await)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
