//! The one envelope around every request, for every node and every front door: the trace
//! span, the audit record (no record, no answer), the metrics and the outcome.

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::{Action, Answer, Asked, Caller, Description, Node, QueryScope, QueryTicket, RecipeInfo, Reply};
use norrsken_model::query::QueryError;
use crate::audit::{result_hash, trace_id_of, AuditEvent, Who};
use crate::error::{ErrorKind, NodeError};
use crate::telemetry;

/// Answers a query ticket from the wire: decodes it, lets the node answer, records the
/// audit record before anything is returned, and observes the request. The answer carries
/// the anchor of that record (`norrsken.audit_seq`, `norrsken.audit_hash`), which the
/// receiving node keeps. A ticket that does not decode is refused and recorded like any
/// other refusal.
pub async fn query<N: Node + ?Sized>(node: &N, caller: &Caller, ticket: &[u8]) -> Result<Answer, NodeError> {
    run(node, caller, QueryTicket::decode(ticket)).await.map(|a| a.answer)
}

/// Answers a typed question (a door inside the node's process: Flight SQL, HTTPS, the
/// report): the same span, audit record and metrics as [`query`], without encoding the
/// question to bytes and decoding it again; returns the node's domain answer beside the
/// Arrow answer whose hash the record holds.
pub async fn ask<N: Node + ?Sized>(node: &N, caller: &Caller, ticket: QueryTicket) -> Result<Asked<N::Domain>, NodeError> {
    run(node, caller, Ok(ticket)).await
}

async fn run<N: Node + ?Sized>(node: &N, caller: &Caller, ticket: Result<QueryTicket, QueryError>) -> Result<Asked<N::Domain>, NodeError> {
    let started = std::time::Instant::now();
    // Continue the caller's trace.
    let parent = telemetry::context_from_traceparent(caller.traceparent.as_deref());
    // The node's labels (an agent's region) as span attributes: `norrsken.region`.
    let attributes = node.base().metric_labels.clone().into_iter().map(|kv| KeyValue::new(format!("norrsken.{}", kv.key.as_str()), kv.value)).collect();
    let cx = telemetry::start_span(node.base().query_span, SpanKind::Server, &parent, attributes);
    let traceparent = telemetry::traceparent_of(&cx);
    let mut scope = QueryScope {
        event: AuditEvent {
            kind: "query".into(),
            requester: caller.identity.as_ref().map(Who::from),
            trace_id: traceparent.as_deref().and_then(trace_id_of),
            ..Default::default()
        },
        cx,
    };
    let result = match ticket {
        Ok(t) => node.query(caller, t, &mut scope).await,
        Err(e) => Err(NodeError::Query(e)),
    };
    let mut event = scope.event;
    event.duration_ms = Some(started.elapsed().as_millis() as u64);
    match &result {
        Ok(served) => {
            event.outcome = served.outcome.into();
            event.result_hash = Some(result_hash(&served.answer.schema, &served.answer.batches));
            event.cells = Some(served.cells);
        }
        Err(e) => refused(&mut event, e, caller),
    }
    observe(node, &scope.cx, &event, started.elapsed().as_secs_f64());
    // No record, no answer. The refusals of callers without a role, and of those past
    // their rate limit, are themselves rate-limited (a flood cannot fill the disk).
    let log = &node.base().audit;
    let limited = matches!(result.as_ref().err().map(NodeError::kind), Some(ErrorKind::Unauthenticated | ErrorKind::PermissionDenied | ErrorKind::RateLimited));
    let anchor = if limited {
        log.refusal(event).await.map(|_| None)
    } else {
        log.append(event).await.map(Some)
    }
    .map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
    crate::failpoint::hit("after-audit");
    let served = result?;
    let mut answer = served.answer;
    if let Some(anchor) = anchor {
        let mut md = answer.schema.metadata().clone();
        anchor.to_metadata(&mut md);
        answer.schema = std::sync::Arc::new(answer.schema.as_ref().clone().with_metadata(md));
    }
    Ok(Asked { answer, domain: served.domain })
}

/// Fills a refusal's record: its kind, outcome, reason (bounded) and, for an oversize
/// request, its size.
fn refused(event: &mut AuditEvent, e: &NodeError, caller: &Caller) {
    event.kind = "refused".into();
    event.outcome = e.kind().outcome().into();
    event.reason = Some(norrsken_model::text::bound(&e.to_string()));
    if let NodeError::Query(QueryError::TooLarge { size, .. }) = e {
        event.request_bytes = Some(*size as u64);
    }
    // The address too, so that refusals are limited per source address as well.
    event.peer = caller.addr.map(|a| a.to_string());
}

/// Records the refusal of a request that is not a query (listing, describing, an action),
/// rate-limited per identity.
async fn record_refusal<N: Node + ?Sized>(node: &N, caller: &Caller, operation: &str, e: &NodeError) -> Result<(), NodeError> {
    let mut event = AuditEvent { requester: caller.identity.as_ref().map(Who::from), operation: Some(operation.to_string()), ..Default::default() };
    refused(&mut event, e, caller);
    node.base().audit.refusal(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))
}

/// Ends the query's span and records its metrics (no personal data: counts and labels).
fn observe<N: Node + ?Sized>(node: &N, cx: &opentelemetry::Context, event: &AuditEvent, seconds: f64) {
    let indicator = event.indicator.clone().unwrap_or_default();
    let cells = event.cells.unwrap_or_default();
    telemetry::end_span(
        cx,
        vec![
            KeyValue::new("norrsken.query_id", event.query_id.clone().unwrap_or_default()),
            KeyValue::new("norrsken.indicator", indicator.clone()),
            KeyValue::new("norrsken.role", event.role.clone().unwrap_or_default()),
            KeyValue::new("norrsken.regions", event.regions.join(",")),
            KeyValue::new("norrsken.outcome", event.outcome.clone()),
            KeyValue::new("norrsken.cells_released", cells.released as i64),
            KeyValue::new("norrsken.cells_withheld", cells.withheld as i64),
        ],
    );
    let m = telemetry::metrics();
    let with = |mut labels: Vec<KeyValue>| {
        labels.push(KeyValue::new("node", node.base().role));
        labels.extend(node.base().metric_labels.clone());
        labels
    };
    m.queries.add(1, &with(vec![KeyValue::new("indicator", indicator.clone()), KeyValue::new("outcome", event.outcome.clone())]));
    m.duration.record(seconds, &with(vec![KeyValue::new("indicator", indicator.clone())]));
    if cells.withheld > 0 {
        let mut labels = node.base().metric_labels.clone();
        labels.push(KeyValue::new("indicator", indicator));
        m.cells_withheld.add(cells.withheld, &labels);
    }
    if event.cached_from.is_some() {
        m.cache_hits.add(1, &with(Vec::new()));
    }
    for r in event.region_outcomes.iter().filter(|r| r.status != "ok") {
        m.region_failures.add(1, &[KeyValue::new("region", r.region.clone()), KeyValue::new("status", r.status.clone())]);
    }
}

/// Runs an action; access to an audit log is audited itself, granted or refused; other
/// actions are audited when refused (rate-limited per identity).
pub async fn action<N: Node + ?Sized>(node: &N, caller: &Caller, name: &str, body: &[u8]) -> Result<Reply, NodeError> {
    let offered: Vec<&str> = node.base().actions.iter().map(|(n, _)| *n).collect();
    let action = match Action::decode(name, body, &offered) {
        Ok(a) => a,
        Err(e) => {
            record_refusal(node, caller, "action", &e).await?;
            return Err(e);
        }
    };
    let audited = matches!(action, Action::AuditLog { .. } | Action::SecureSum { .. });
    let kind = if matches!(action, Action::SecureSum { .. }) { "secure_sum" } else { "audit_access" };
    let request = norrsken_model::text::bound(&String::from_utf8_lossy(body).chars().take(200).collect::<String>());
    let operation = format!("action {}", action.name());
    let result = node.action(caller, action).await;
    if audited {
        let event = AuditEvent {
            kind: kind.into(),
            outcome: if result.is_ok() { "ok".into() } else { "refused".into() },
            requester: result
                .as_ref()
                .ok()
                .and_then(|r| r.on_behalf_of.clone())
                .or_else(|| caller.identity.as_ref().map(Who::from)),
            role: result.as_ref().ok().and_then(|r| r.role.clone()),
            relayed_by: result.as_ref().ok().and_then(|r| r.on_behalf_of.as_ref()).and(caller.identity.as_ref().map(Who::from)),
            reason: Some(match &result {
                Err(e) => norrsken_model::text::bound(&e.to_string()),
                Ok(r) => r.audit.as_ref().map_or(request, |a| norrsken_model::text::bound(&a.what)),
            }),
            query_id: result.as_ref().ok().and_then(|r| r.audit.as_ref()?.query_id.clone()),
            indicator: result.as_ref().ok().and_then(|r| r.audit.as_ref()?.indicator.clone()),
            regions: result.as_ref().ok().and_then(|r| r.audit.as_ref().map(|a| a.regions.clone())).unwrap_or_default(),
            ..Default::default()
        };
        node.base().audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
    } else if let Err(e) = &result {
        record_refusal(node, caller, &operation, e).await?;
    }
    result
}

/// The recipes a node answers (the latest version of each).
pub async fn recipes<N: Node + ?Sized>(node: &N, caller: &Caller) -> Result<Vec<RecipeInfo>, NodeError> {
    if let Err(e) = node.may_browse(caller) {
        record_refusal(node, caller, "recipes", &e).await?;
        return Err(e);
    }
    Ok(node
        .base()
        .catalog
        .latest()
        .iter()
        .map(|r| RecipeInfo { id: r.id.clone(), version: r.version, title: r.title.en.clone(), schema: (node.base().answer_schema)(&[], r.is_distribution()) })
        .collect())
}

/// The longest descriptor path element a node reads (recipe ids are far shorter).
const MAX_PATH_CHARS: usize = 128;

/// Describes a recipe (`path` = [id]) or the answer of a query ticket (`cmd`); a refusal is
/// recorded (rate-limited per identity).
pub async fn describe<N: Node + ?Sized>(node: &N, caller: &Caller, path: &[String], cmd: &[u8]) -> Result<Description, NodeError> {
    let result = describe_inner(node, caller, path, cmd).await;
    if let Err(e) = &result {
        record_refusal(node, caller, "describe", e).await?;
    }
    result
}

async fn describe_inner<N: Node + ?Sized>(node: &N, caller: &Caller, path: &[String], cmd: &[u8]) -> Result<Description, NodeError> {
    if !cmd.is_empty() {
        return node.describe_query(caller, QueryTicket::decode(cmd)?, cmd.to_vec()).await;
    }
    node.may_browse(caller)?;
    if let Some(long) = path.iter().find(|p| p.chars().count() > MAX_PATH_CHARS) {
        return Err(NodeError::Query(QueryError::Invalid {
            field: "descriptor path",
            message: format!("{} is longer than {MAX_PATH_CHARS} characters; name a recipe id", norrsken_model::text::quote(long)),
        }));
    }
    let id = path.first().cloned().unwrap_or_default();
    let catalog = node.base().catalog.as_ref();
    let recipe = catalog.get(&id, None).ok_or_else(|| NodeError::Query(QueryError::UnknownIndicator { id, known: catalog.ids().join(", ") }))?;
    Ok(Description {
        schema: (node.base().answer_schema)(&[], recipe.is_distribution()),
        ticket: None,
        recipe: Some((recipe.id.clone(), recipe.version)),
        title: recipe.title.en.clone(),
    })
}
