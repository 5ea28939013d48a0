//! The Flight SQL door as the network sees it: every command is decoded and checked here
//! before arrow-flight's dispatcher sees it, so that malformed input (bytes that are not a
//! protobuf `Any`, an `Any` of an unknown type, a command whose fields do not decode, text
//! that is not UTF-8) is refused as `InvalidArgument` naming what is wrong, and recorded,
//! instead of the dispatcher's `Internal`. `DoPut` is answered here whole (Norrsken takes no
//! data: only a prepared statement's empty parameters).

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginTransactionRequest, ActionCancelQueryRequest, ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedSubstraitPlanRequest, ActionEndSavepointRequest, ActionEndTransactionRequest, Any, Command, DoPutPreparedStatementResult, ProstMessageExt,
};
use arrow_flight::{Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo, PutResult, SchemaResult, Ticket};
use futures::StreamExt;
use norrsken_common::error::NodeError;
use norrsken_common::flight::caller_of;
use norrsken_common::service::Caller;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::{invalid, read_only, SqlFrontDoor};

/// The Flight SQL service served on `sql_listen`.
#[derive(Clone)]
pub struct CheckedSql(pub SqlFrontDoor);

type Door = SqlFrontDoor;

/// Decodes a Flight SQL command (a protobuf `Any` of a known type) or names what is wrong.
pub fn command(bytes: &[u8], what: &'static str) -> Result<Command, NodeError> {
    let any = Any::decode(bytes).map_err(|e| invalid(what, format!("is not a Flight SQL command (a protobuf Any): {e}")))?;
    match Command::try_from(any) {
        Ok(Command::Unknown(any)) => Err(invalid(what, format!("names the type {}, which is not a Flight SQL command", norrsken_model::text::quote(&any.type_url)))),
        Ok(c) => Ok(c),
        Err(e) => Err(invalid(what, format!("does not decode as the Flight SQL command it names: {e}"))),
    }
}

/// Checks that an action's body is the Flight SQL message its type names.
fn action_body<M: ProstMessageExt>(body: &[u8]) -> Result<(), NodeError> {
    let what = "action body";
    let any = Any::decode(body).map_err(|e| invalid(what, format!("is not a Flight SQL message (a protobuf Any): {e}")))?;
    match any.unpack::<M>() {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(invalid(what, format!("holds {}, not {}", norrsken_model::text::quote(&any.type_url), M::type_url()))),
        Err(e) => Err(invalid(what, format!("does not decode as {}: {e}", M::type_url()))),
    }
}

/// Refuses a parameter message that carries parameters: a schema with columns or a batch
/// with rows (an empty schema or batch is what clients send for a statement without any).
fn no_parameters(fd: &FlightData) -> Result<(), NodeError> {
    let refuse = |what: String| {
        invalid("parameters", format!("{what}; Norrsken's prepared statements take no parameters (the statement's parameter schema is empty): write the values into the SQL text"))
    };
    if fd.data_header.is_empty() {
        return Ok(());
    }
    let message = arrow::ipc::root_as_message(&fd.data_header).map_err(|e| invalid("parameters", format!("the message is not an Arrow IPC message: {e}")))?;
    if let Some(schema) = message.header_as_schema() {
        let n = schema.fields().map_or(0, |f| f.len());
        if n > 0 {
            return Err(refuse(format!("the parameters have a schema of {n} column(s)")));
        }
    }
    if let Some(batch) = message.header_as_record_batch() {
        if batch.length() > 0 || !fd.data_body.is_empty() {
            return Err(refuse(format!("{} row(s) of parameters were sent", batch.length())));
        }
    }
    Ok(())
}

impl CheckedSql {
    async fn refuse<T>(&self, request: &Request<T>, operation: &str, e: NodeError) -> Status {
        let caller: Caller = caller_of(request);
        self.0.refuse(&caller, operation, e).await
    }
}

#[tonic::async_trait]
impl FlightService for CheckedSql {
    type HandshakeStream = <Door as FlightService>::HandshakeStream;
    type ListFlightsStream = <Door as FlightService>::ListFlightsStream;
    type DoGetStream = <Door as FlightService>::DoGetStream;
    type DoPutStream = <Door as FlightService>::DoPutStream;
    type DoActionStream = <Door as FlightService>::DoActionStream;
    type ListActionsStream = <Door as FlightService>::ListActionsStream;
    type DoExchangeStream = <Door as FlightService>::DoExchangeStream;

    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&self.0, request).await
    }

    async fn list_flights(&self, request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&self.0, request).await
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        if let Err(e) = command(&request.get_ref().cmd, "descriptor command") {
            return Err(self.refuse(&request, "get_flight_info", e).await);
        }
        FlightService::get_flight_info(&self.0, request).await
    }

    async fn poll_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(&self.0, request).await
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        FlightService::get_schema(&self.0, request).await
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        if let Err(e) = command(&request.get_ref().ticket, "ticket") {
            return Err(self.refuse(&request, "do_get", e).await);
        }
        FlightService::do_get(&self.0, request).await
    }

    /// Norrsken takes no data: the only `DoPut` it answers binds a prepared statement's
    /// (empty) parameters, keeping the handle; updates and ingest are refused read-only.
    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let caller = self.0.admit(&request, "do_put").await?;
        let mut stream = request.into_inner();
        let first = match stream.next().await {
            Some(Ok(first)) => first,
            Some(Err(status)) => return Err(status),
            None => return Err(self.0.refuse(&caller, "do_put", invalid("do_put", "the request has no message".into())).await),
        };
        let Some(descriptor) = first.flight_descriptor.clone() else {
            return Err(self.0.refuse(&caller, "do_put", invalid("do_put", "the first message names no Flight SQL command (no flight descriptor)".into())).await);
        };
        let handle = match command(&descriptor.cmd, "descriptor command") {
            Ok(Command::CommandPreparedStatementQuery(q)) => {
                // Parameters are not supported: only an empty parameter set keeps the handle,
                // so that a value is never silently left out of a statement.
                let mut message = Some(first.clone());
                let mut seen = 0usize;
                while let Some(fd) = message.take() {
                    if let Err(e) = no_parameters(&fd) {
                        return Err(self.0.refuse(&caller, "do_put", e).await);
                    }
                    seen += 1;
                    if seen > 64 {
                        return Err(self.0.refuse(&caller, "do_put", invalid("parameters", "more than 64 messages of parameters".into())).await);
                    }
                    message = match stream.next().await {
                        Some(Ok(fd)) => Some(fd),
                        Some(Err(status)) => return Err(status),
                        None => None,
                    };
                }
                q.prepared_statement_handle
            }
            Ok(Command::CommandStatementSubstraitPlan(_)) => {
                return Err(self.0.refuse(&caller, "do_put", NodeError::Unsupported("Substrait plans are not accepted: send SQL".into())).await);
            }
            Ok(Command::CommandStatementUpdate(_) | Command::CommandPreparedStatementUpdate(_) | Command::CommandStatementIngest(_)) => {
                return Err(self.0.refuse(&caller, "do_put", read_only("writing data")).await);
            }
            Ok(other) => return Err(self.0.refuse(&caller, "do_put", super::not_offered(other.type_url())).await),
            Err(e) => return Err(self.0.refuse(&caller, "do_put", e).await),
        };
        let result = DoPutPreparedStatementResult { prepared_statement_handle: Some(handle) };
        let out = futures::stream::iter([Ok(PutResult { app_metadata: result.encode_to_vec().into() })]);
        Ok(Response::new(Box::pin(out)))
    }

    async fn do_exchange(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&self.0, request).await
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let body = &request.get_ref().body;
        let checked = match request.get_ref().r#type.as_str() {
            "CreatePreparedStatement" => action_body::<ActionCreatePreparedStatementRequest>(body),
            "ClosePreparedStatement" => action_body::<ActionClosePreparedStatementRequest>(body),
            "CreatePreparedSubstraitPlan" => action_body::<ActionCreatePreparedSubstraitPlanRequest>(body),
            "BeginTransaction" => action_body::<ActionBeginTransactionRequest>(body),
            "EndTransaction" => action_body::<ActionEndTransactionRequest>(body),
            "BeginSavepoint" => action_body::<ActionBeginSavepointRequest>(body),
            "EndSavepoint" => action_body::<ActionEndSavepointRequest>(body),
            "CancelQuery" => action_body::<ActionCancelQueryRequest>(body),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            return Err(self.refuse(&request, "do_action", e).await);
        }
        FlightService::do_action(&self.0, request).await
    }

    async fn list_actions(&self, request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&self.0, request).await
    }
}
