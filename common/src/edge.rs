//! The transport edge: requests the gRPC layer refuses before a node sees them (a message
//! over the transport's size limit, a body that is not the method's protobuf, a method or
//! service that does not exist) are recorded too, rate-limited per identity, so that no
//! refusal goes unrecorded. An oversize message is answered `InvalidArgument` naming its
//! size, like every other malformed input.
//!
//! A tower layer around the whole gRPC router: it reads the caller's verified identity from
//! the connection, lets the request through, and looks at the answer: an error status that
//! does not carry a node's `norrsken-error-kind` came from the transport, not from the node.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::audit::{AuditEvent, AuditLog, Who};
use crate::error::{ErrorKind, ERROR_KIND_HEADER};
use crate::tls::PeerInfo;

/// Wraps a node's gRPC router.
#[derive(Clone)]
pub struct EdgeAuditLayer {
    pub audit: AuditLog,
}

impl<S> tower_layer::Layer<S> for EdgeAuditLayer {
    type Service = EdgeAudit<S>;
    fn layer(&self, inner: S) -> EdgeAudit<S> {
        EdgeAudit { inner, audit: self.audit.clone() }
    }
}

#[derive(Clone)]
pub struct EdgeAudit<S> {
    inner: S,
    audit: AuditLog,
}

/// The size tonic names when it refuses an oversize message.
fn oversize(message: &str) -> Option<(u64, u64)> {
    let found = message.split("found ").nth(1)?.split(' ').next()?.parse().ok()?;
    let limit = message.split("limit is: ").nth(1)?.split(' ').next()?.parse().ok()?;
    Some((found, limit))
}

/// What the edge records of a response, and the status to answer instead (when the
/// transport's own status should be replaced).
fn refusal(path: &str, info: Option<&PeerInfo>, headers: &http::HeaderMap) -> Option<(AuditEvent, Option<tonic::Status>)> {
    if headers.contains_key(ERROR_KIND_HEADER) {
        return None;
    }
    let status = tonic::Status::from_header_map(headers)?;
    if status.code() == tonic::Code::Ok {
        return None;
    }
    let mut event = AuditEvent {
        kind: "refused".into(),
        outcome: "invalid".into(),
        requester: info.and_then(|i| i.identity.as_ref()).map(Who::from),
        peer: info.and_then(|i| i.addr).map(|a| a.to_string()),
        operation: Some(norrsken_model::text::bound(&path.chars().take(200).collect::<String>())),
        reason: Some(norrsken_model::text::bound(status.message())),
        ..Default::default()
    };
    let mut replace = None;
    if let Some((size, limit)) = oversize(status.message()) {
        event.request_bytes = Some(size);
        let message = format!("request: a message of {size} bytes is larger than the {limit}-byte limit");
        event.reason = Some(message.clone());
        let mut s = tonic::Status::invalid_argument(message);
        if let Ok(v) = ErrorKind::Invalid.name().parse() {
            s.metadata_mut().insert(ERROR_KIND_HEADER, v);
        }
        replace = Some(s);
    } else if status.code() == tonic::Code::Internal && status.message().starts_with("failed to decode Protobuf message") {
        // A body that is not the method's protobuf is malformed input, not a server fault.
        let message = format!("request: the message is not the method's protobuf message ({})", norrsken_model::text::bound(status.message()));
        event.reason = Some(message.clone());
        let mut s = tonic::Status::invalid_argument(message);
        if let Ok(v) = ErrorKind::Invalid.name().parse() {
            s.metadata_mut().insert(ERROR_KIND_HEADER, v);
        }
        replace = Some(s);
    } else if matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded) {
        // The caller gave up; the node records what it did with the request itself.
        return None;
    } else if status.code() == tonic::Code::Unimplemented {
        event.outcome = "invalid".into();
    } else {
        event.outcome = "error".into();
    }
    Some((event, replace))
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for EdgeAudit<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let info = req.extensions().get::<PeerInfo>().cloned();
        let path = req.uri().path().to_string();
        let audit = self.audit.clone();
        Box::pin(async move {
            let response = inner.call(req).await?;
            let Some((event, replace)) = refusal(&path, info.as_ref(), response.headers()) else {
                return Ok(response);
            };
            if let Err(e) = audit.refusal(event).await {
                tracing::error!(error = %e, "could not audit a request refused at the transport");
                let mut s = tonic::Status::unavailable(format!("audit log unavailable, nothing answered: {e}"));
                if let Ok(v) = ErrorKind::AuditUnavailable.name().parse() {
                    s.metadata_mut().insert(ERROR_KIND_HEADER, v);
                }
                return Ok(s.into_http());
            }
            Ok(match replace {
                Some(status) => status.into_http(),
                None => response,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_transport_refused() {
        let mut h = http::HeaderMap::new();
        tonic::Status::out_of_range("Error, decoded message length too large: found 2097157 bytes, the limit is: 1048576 bytes").add_header(&mut h).unwrap();
        let (event, replace) = refusal("/arrow.flight.protocol.FlightService/DoGet", None, &h).unwrap();
        assert_eq!((event.outcome.as_str(), event.request_bytes), ("invalid", Some(2_097_157)));
        let replaced = replace.unwrap();
        assert_eq!(replaced.code(), tonic::Code::InvalidArgument);
        assert!(replaced.message().contains("2097157 bytes"));
        // A node's own refusal carries its kind: the node recorded it.
        let mut own = http::HeaderMap::new();
        crate::error::NodeError::PermissionDenied("no".into()).to_status().add_header(&mut own).unwrap();
        own.insert(ERROR_KIND_HEADER, "permission_denied".parse().unwrap());
        assert!(refusal("/x", None, &own).is_none());
        // A body that is not the method's protobuf: InvalidArgument, not Internal.
        let mut garbage = http::HeaderMap::new();
        tonic::Status::internal("failed to decode Protobuf message: buffer underflow").add_header(&mut garbage).unwrap();
        let (event, replace) = refusal("/arrow.flight.protocol.FlightService/GetFlightInfo", None, &garbage).unwrap();
        assert_eq!((event.outcome.as_str(), replace.unwrap().code()), ("invalid", tonic::Code::InvalidArgument));
        let mut unknown = http::HeaderMap::new();
        tonic::Status::unimplemented("").add_header(&mut unknown).unwrap();
        assert_eq!(refusal("/no.Such/Method", None, &unknown).unwrap().0.operation.as_deref(), Some("/no.Such/Method"));
    }
}
