//! The errors a Norrsken node returns to a caller, and their gRPC codes.
//!
//! Every error a request can end in becomes one of these variants at the service edge, and
//! `to_status` maps each variant to a gRPC code in one exhaustive match: a new kind of
//! error cannot silently become `Internal`.

use crate::query::QueryError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The request is malformed or names something that does not exist or is not allowed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No or an unusable client identity.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The identity is known but may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The region's policy does not allow this question.
    #[error("refused by the region's policy: {0}")]
    PolicyRefused(String),
    /// The query needs more resources than the node allows.
    #[error("resources exhausted: {0}")]
    ResourceExhausted(String),
    /// The audit record could not be written, so nothing is answered.
    #[error("audit log unavailable, nothing answered: {0}")]
    AuditUnavailable(String),
    /// A disclosure check failed; the node refuses rather than answer unprotected.
    #[error("disclosure control failed, nothing answered: {0}")]
    DisclosureFailed(String),
    /// The node's own configuration or data is not usable.
    #[error("not ready: {0}")]
    NotReady(String),
    /// An operation that is not offered.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Evaluation or an internal step failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// Timed out.
    #[error("deadline exceeded: {0}")]
    Timeout(String),
}

impl NodeError {
    /// The gRPC status for this error.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            NodeError::Query(q) if q.is_not_found() => tonic::Status::not_found(message),
            NodeError::Query(_) => tonic::Status::invalid_argument(message),
            NodeError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            NodeError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            NodeError::PolicyRefused(_) => tonic::Status::permission_denied(message),
            NodeError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            NodeError::AuditUnavailable(_) => tonic::Status::unavailable(message),
            NodeError::DisclosureFailed(_) => tonic::Status::internal(message),
            NodeError::NotReady(_) => tonic::Status::failed_precondition(message),
            NodeError::Unsupported(_) => tonic::Status::unimplemented(message),
            NodeError::Internal(_) => tonic::Status::internal(message),
            NodeError::Timeout(_) => tonic::Status::deadline_exceeded(message),
        }
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> tonic::Status {
        e.to_status()
    }
}
