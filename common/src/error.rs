//! The errors a Norrsken node returns to a caller, and their gRPC codes.
//!
//! Every error a request can end in becomes one of these variants at the service edge;
//! [`NodeError::kind`] names its kind in one exhaustive match, and the kind decides the gRPC
//! code, the audit outcome and the machine-readable `norrsken-error-kind` header that a
//! coordinator reads instead of the message text. A new kind of error cannot silently
//! become `Internal`.

use norrsken_model::query::QueryError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The requester asked more than their share; they may ask again after `retry_after_s`.
    #[error("rate limited: {message}")]
    RateLimited { message: String, retry_after_s: u64 },
}

/// The gRPC metadata key carrying how many seconds a rate-limited caller should wait.
pub const RETRY_AFTER_HEADER: &str = "norrsken-retry-after-s";

/// The gRPC metadata key carrying an error's [`ErrorKind`].
pub const ERROR_KIND_HEADER: &str = "norrsken-error-kind";

/// What kind of error a request ended in: what callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Unauthenticated,
    PermissionDenied,
    PolicyRefused,
    ResourceExhausted,
    AuditUnavailable,
    DisclosureFailed,
    NotReady,
    Unsupported,
    Internal,
    Timeout,
    RateLimited,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Invalid,
        ErrorKind::NotFound,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::PolicyRefused,
        ErrorKind::ResourceExhausted,
        ErrorKind::AuditUnavailable,
        ErrorKind::DisclosureFailed,
        ErrorKind::NotReady,
        ErrorKind::Unsupported,
        ErrorKind::Internal,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::PolicyRefused => "policy_refused",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::AuditUnavailable => "audit_unavailable",
            ErrorKind::DisclosureFailed => "disclosure_failed",
            ErrorKind::NotReady => "not_ready",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The gRPC code of this kind.
    pub fn code(self) -> tonic::Code {
        match self {
            ErrorKind::Invalid => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied | ErrorKind::PolicyRefused => tonic::Code::PermissionDenied,
            ErrorKind::ResourceExhausted | ErrorKind::RateLimited => tonic::Code::ResourceExhausted,
            ErrorKind::AuditUnavailable => tonic::Code::Unavailable,
            ErrorKind::DisclosureFailed | ErrorKind::Internal => tonic::Code::Internal,
            ErrorKind::NotReady => tonic::Code::FailedPrecondition,
            ErrorKind::Unsupported => tonic::Code::Unimplemented,
            ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
        }
    }

    /// How a request that ended so is recorded in the audit log.
    pub fn outcome(self) -> &'static str {
        match self {
            ErrorKind::Invalid | ErrorKind::NotFound => "invalid",
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::PolicyRefused | ErrorKind::RateLimited => "refused",
            ErrorKind::ResourceExhausted
            | ErrorKind::AuditUnavailable
            | ErrorKind::DisclosureFailed
            | ErrorKind::NotReady
            | ErrorKind::Unsupported
            | ErrorKind::Internal
            | ErrorKind::Timeout => "error",
        }
    }

    /// The kind a status names in its metadata (none for a status that did not come from a
    /// Norrsken node, such as a broken connection).
    pub fn of_status(status: &tonic::Status) -> Option<ErrorKind> {
        status.metadata().get(ERROR_KIND_HEADER).and_then(|v| v.to_str().ok()).and_then(ErrorKind::parse)
    }
}

impl NodeError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Query(q) if q.is_not_found() => ErrorKind::NotFound,
            NodeError::Query(_) => ErrorKind::Invalid,
            NodeError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            NodeError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            NodeError::PolicyRefused(_) => ErrorKind::PolicyRefused,
            NodeError::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            NodeError::AuditUnavailable(_) => ErrorKind::AuditUnavailable,
            NodeError::DisclosureFailed(_) => ErrorKind::DisclosureFailed,
            NodeError::NotReady(_) => ErrorKind::NotReady,
            NodeError::Unsupported(_) => ErrorKind::Unsupported,
            NodeError::Internal(_) => ErrorKind::Internal,
            NodeError::Timeout(_) => ErrorKind::Timeout,
            NodeError::RateLimited { .. } => ErrorKind::RateLimited,
        }
    }

    /// The gRPC status for this error, with its kind in the `norrsken-error-kind` header.
    pub fn to_status(&self) -> tonic::Status {
        let kind = self.kind();
        // Bounded, so that no input repeated in a message can exceed gRPC's header limit.
        let mut status = tonic::Status::new(kind.code(), norrsken_model::text::bound(&self.to_string()));
        if let Ok(v) = kind.name().parse() {
            status.metadata_mut().insert(ERROR_KIND_HEADER, v);
        }
        if let Some(s) = self.retry_after_s() {
            if let Ok(v) = s.to_string().parse() {
                status.metadata_mut().insert(RETRY_AFTER_HEADER, v);
            }
        }
        status
    }

    /// The error a remote node answered with, read back from its status: the kind from the
    /// `norrsken-error-kind` header (else from the gRPC code), the message as the node
    /// wrote it. A client (the CLI) so branches on kinds as the coordinator's own doors do.
    pub fn from_status(status: &tonic::Status) -> NodeError {
        use tonic::Code;
        let kind = ErrorKind::of_status(status).unwrap_or(match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => ErrorKind::Invalid,
            Code::NotFound => ErrorKind::NotFound,
            Code::Unauthenticated => ErrorKind::Unauthenticated,
            Code::PermissionDenied => ErrorKind::PermissionDenied,
            Code::ResourceExhausted => ErrorKind::ResourceExhausted,
            Code::DeadlineExceeded | Code::Cancelled => ErrorKind::Timeout,
            Code::FailedPrecondition | Code::Unavailable | Code::Aborted => ErrorKind::NotReady,
            Code::Unimplemented => ErrorKind::Unsupported,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorKind::Internal,
        });
        let retry_after_s = status.metadata().get(RETRY_AFTER_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(1);
        let make = |m: String| match kind {
            // The remote message names what was wrong; it reads as the question's error.
            ErrorKind::Invalid | ErrorKind::NotFound => NodeError::Query(QueryError::Invalid { field: "question", message: m }),
            ErrorKind::Unauthenticated => NodeError::Unauthenticated(m),
            ErrorKind::PermissionDenied => NodeError::PermissionDenied(m),
            ErrorKind::PolicyRefused => NodeError::PolicyRefused(m),
            ErrorKind::ResourceExhausted => NodeError::ResourceExhausted(m),
            ErrorKind::AuditUnavailable => NodeError::AuditUnavailable(m),
            ErrorKind::DisclosureFailed => NodeError::DisclosureFailed(m),
            ErrorKind::NotReady => NodeError::NotReady(m),
            ErrorKind::Unsupported => NodeError::Unsupported(m),
            ErrorKind::Internal => NodeError::Internal(m),
            ErrorKind::Timeout => NodeError::Timeout(m),
            ErrorKind::RateLimited => NodeError::RateLimited { message: m, retry_after_s },
        };
        // The node's message already starts with its kind's words: not twice.
        let prefix = make(String::new()).to_string();
        let message = status.message();
        let message = if prefix.is_empty() { message } else { message.strip_prefix(prefix.as_str()).unwrap_or(message) };
        make(message.to_string())
    }

    /// For a rate-limited request: how many seconds until the caller may ask again.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            NodeError::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_heading_in_both_languages() {
        use norrsken_model::vocabulary::{error_kind, Lang};
        for kind in ErrorKind::ALL {
            let (sv, en) = (error_kind(kind.name(), Lang::Sv), error_kind(kind.name(), Lang::En));
            assert!(sv.is_some() && en.is_some() && sv != en, "{kind:?}");
        }
    }

    #[test]
    fn every_kind_travels_in_the_status_and_back() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.name()), Some(kind));
        }
        let e = NodeError::PolicyRefused("no".into());
        let status = e.to_status();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(ErrorKind::of_status(&status), Some(ErrorKind::PolicyRefused));
        assert_eq!(ErrorKind::of_status(&tonic::Status::unknown("transport error")), None);
        // Read back on the client's side: the same kind, the message once.
        for e in [NodeError::PolicyRefused("recipe x is not approved".into()), NodeError::Timeout("no answer".into()), NodeError::RateLimited { message: "slow down".into(), retry_after_s: 7 }] {
            let back = NodeError::from_status(&e.to_status());
            assert_eq!(back.kind(), e.kind());
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.retry_after_s(), e.retry_after_s());
        }
        assert_eq!(NodeError::from_status(&tonic::Status::deadline_exceeded("slow")).kind(), ErrorKind::Timeout);
        assert_eq!(e.kind().outcome(), "refused");
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> tonic::Status {
        e.to_status()
    }
}
