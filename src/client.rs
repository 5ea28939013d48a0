//! A Flight client of the coordinator with mutual TLS: what the command-line tool, the
//! demo and the benchmark use to ask questions.

use std::time::Duration;

use anyhow::{anyhow, Context};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::{Action, FlightClient, Ticket};
use bytes::Bytes;
use futures::TryStreamExt;
use norrsken_common::error::NodeError;
use norrsken_common::tls::{client_tls, TlsFiles};
use tonic::transport::Endpoint;

/// Resolved connection settings.
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: String,
    pub tls: TlsFiles,
    pub server_name: String,
}

impl Connection {
    pub async fn client(&self) -> anyhow::Result<FlightClient> {
        let tls = client_tls(&self.tls, &self.server_name)?;
        let channel = Endpoint::from_shared(self.url.clone())
            .with_context(|| format!("coordinator address '{}'", self.url))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        Ok(FlightClient::new(channel))
    }

    /// Runs a ticket on a new connection and returns the schema (with metadata) and batches.
    pub async fn fetch(&self, ticket: Vec<u8>) -> anyhow::Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut client = self.client().await?;
        fetch_with(&mut client, ticket).await
    }

    /// Runs an action and returns all its results.
    pub async fn action_all(&self, name: &str, body: Vec<u8>) -> anyhow::Result<Vec<Bytes>> {
        let mut client = self.client().await?;
        let stream = client.do_action(Action::new(name, Bytes::from(body))).await.map_err(flight_error)?;
        stream.try_collect().await.map_err(flight_error)
    }

    /// [`Connection::fetch`] with the error as a node error of its proper kind (a
    /// refusal, a timeout, a connection that could not be made).
    pub async fn fetch_typed(&self, ticket: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), NodeError> {
        let mut client = self.client().await.map_err(|e| NodeError::NotReady(format!("{e:#}")))?;
        let (schema, batches) = do_get_all(&mut client, ticket).await.map_err(node_error)?;
        Ok((schema.ok_or_else(|| NodeError::Internal(NO_SCHEMA.into()))?, batches))
    }

    /// [`Connection::action`] with the error as a node error of its proper kind.
    pub async fn action_typed(&self, name: &str) -> Result<Bytes, NodeError> {
        let mut client = self.client().await.map_err(|e| NodeError::NotReady(format!("{e:#}")))?;
        first_result(&mut client, name).await.map_err(node_error)?.ok_or_else(|| NodeError::Internal(format!("empty answer to action {name}")))
    }

    pub async fn action(&self, name: &str) -> anyhow::Result<Bytes> {
        let mut client = self.client().await?;
        first_result(&mut client, name).await.map_err(flight_error)?.ok_or_else(|| anyhow!("empty answer to action {name}"))
    }
}

const NO_SCHEMA: &str = "the coordinator sent no schema";

/// Runs a ticket on an open connection: the schema (with metadata), when one came, and the
/// batches; the Flight error for the caller to read as it needs.
async fn do_get_all(client: &mut FlightClient, ticket: Vec<u8>) -> Result<(Option<SchemaRef>, Vec<RecordBatch>), arrow_flight::error::FlightError> {
    let mut stream = client.do_get(Ticket::new(ticket)).await?;
    let mut batches = Vec::new();
    while let Some(b) = stream.try_next().await? {
        batches.push(b);
    }
    Ok((stream.schema().cloned(), batches))
}

/// The first result of an action without a body.
async fn first_result(client: &mut FlightClient, name: &str) -> Result<Option<Bytes>, arrow_flight::error::FlightError> {
    client.do_action(Action::new(name, Bytes::new())).await?.try_next().await
}

/// Runs a ticket on an open connection and returns the schema (with metadata) and batches.
pub async fn fetch_with(client: &mut FlightClient, ticket: Vec<u8>) -> anyhow::Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, batches) = do_get_all(client, ticket).await.map_err(flight_error)?;
    Ok((schema.ok_or_else(|| anyhow!(NO_SCHEMA))?, batches))
}

/// A Flight error as the node error it carries (kind from the `norrsken-error-kind` header).
pub fn node_error(e: arrow_flight::error::FlightError) -> NodeError {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => NodeError::from_status(&s),
        other => NodeError::Internal(other.to_string()),
    }
}

/// A Flight error as a readable message: the gRPC code and the server's text.
pub fn flight_error(e: arrow_flight::error::FlightError) -> anyhow::Error {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => anyhow!("{:?}: {}", s.code(), s.message()),
        other => anyhow!(other.to_string()),
    }
}
