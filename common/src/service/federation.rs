//! The one typed way to ask a federation: a question in, the coordinator's domain answer
//! ([`Federated`]) or a [`NodeError`] of its proper kind out. The coordinator's doors
//! inside its process (Flight SQL, HTTPS, the report) ask through its envelope's typed
//! entry; the CLI asks over Flight and decodes the answer once. Whatever asks, a refusal
//! stays a refusal, a timeout a timeout.

use norrsken_model::federated::Federated;
use norrsken_model::query::IndicatorQuery;

use crate::error::NodeError;

#[tonic::async_trait]
pub trait Federation: Send + Sync + std::fmt::Debug {
    /// Answers one indicator question.
    async fn ask(&self, q: IndicatorQuery) -> Result<Federated, NodeError>;
    /// The catalog, as the `catalog` action returns it.
    async fn catalog(&self) -> Result<serde_json::Value, NodeError>;
    /// The years every region's data covers, when known (to complete an open period).
    fn data_years(&self) -> Option<(i32, i32)> {
        None
    }
}
