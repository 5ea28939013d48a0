//! The coordinator's doors inside its process ask through here: a typed question goes
//! through the envelope's typed entry as the door's caller (the same span, audit record,
//! limits and trace context as a question from the wire) and comes back as the domain
//! answer, with the error's own kind.

use std::sync::{Arc, Mutex};

use norrsken_common::error::NodeError;
use norrsken_common::service::envelope;
use norrsken_common::service::federation::Federation;
use norrsken_common::service::{Caller, QueryTicket};
use norrsken_model::federated::Federated;
use norrsken_model::query::IndicatorQuery;

use crate::node::CoordinatorNode;

/// Asks the coordinator's query path as `caller`, remembering the query ids asked (a Flight
/// SQL statement's audit record names them).
pub struct InProcess {
    node: Arc<CoordinatorNode>,
    caller: Caller,
    ids: Mutex<Vec<String>>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("caller", &self.caller.identity.as_ref().map(|i| &i.common_name)).finish()
    }
}

impl InProcess {
    pub fn new(node: Arc<CoordinatorNode>, caller: Caller) -> InProcess {
        InProcess { node, caller, ids: Mutex::new(Vec::new()) }
    }

    /// The ids of the questions asked so far.
    pub fn query_ids(&self) -> Vec<String> {
        self.ids.lock().map(|ids| ids.clone()).unwrap_or_default()
    }
}

#[tonic::async_trait]
impl Federation for InProcess {
    async fn ask(&self, q: IndicatorQuery) -> Result<Federated, NodeError> {
        // Runs to its end, record included, even when the asking door stops meanwhile:
        // what was asked of the agents on the caller's behalf is on record.
        let (node, caller) = (self.node.clone(), self.caller.clone());
        let asked = tokio::spawn(async move { envelope::ask(&*node, &caller, QueryTicket { query: q, relay: None }).await })
            .await
            .map_err(|e| NodeError::Internal(format!("the indicator question's task failed: {e}")))??;
        if let Some(id) = asked.domain.query_id() {
            if let Ok(mut ids) = self.ids.lock() {
                ids.push(id.to_string());
            }
        }
        Ok(asked.domain)
    }

    fn data_years(&self) -> Option<(i32, i32)> {
        self.node.service.data_years()
    }

    async fn catalog(&self) -> Result<serde_json::Value, NodeError> {
        let reply = envelope::action(&*self.node, &self.caller, "catalog", b"").await?;
        serde_json::from_slice(&reply.chunks.concat()).map_err(|e| NodeError::Internal(format!("the catalog: {e}")))
    }
}
