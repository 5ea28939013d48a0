//! The one envelope around every request, for every node and every front door: the trace
//! span, the audit record (no record, no answer), the metrics and the outcome.

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::{Action, Answer, Caller, Description, Node, QueryScope, QueryTicket, RecipeInfo, Reply};
use crate::query::QueryError;
use crate::audit::{result_hash, trace_id_of, AuditEvent, Who};
use crate::error::NodeError;
use crate::telemetry;

/// Answers a query ticket: decodes it, lets the node answer, records the audit record
/// before anything is returned, and observes the request.
pub async fn query<N: Node + ?Sized>(node: &N, caller: &Caller, ticket: &[u8]) -> Result<Answer, NodeError> {
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
    let result = match QueryTicket::decode(ticket) {
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
            event.region_outcomes = served.region_outcomes.clone();
        }
        Err(e) => {
            event.kind = "refused".into();
            event.outcome = e.kind().outcome().into();
            event.reason = Some(e.to_string());
        }
    }
    observe(node, &scope.cx, &event, started.elapsed().as_secs_f64());
    // No record, no answer.
    node.base().audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
    crate::failpoint::hit("after-audit");
    result.map(|s| s.answer)
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

/// Runs an action; access to an audit log is audited itself, granted or refused.
pub async fn action<N: Node + ?Sized>(node: &N, caller: &Caller, name: &str, body: &[u8]) -> Result<Reply, NodeError> {
    let offered: Vec<&str> = node.base().actions.iter().map(|(n, _)| *n).collect();
    let action = Action::decode(name, body, &offered)?;
    let audited = matches!(action, Action::AuditLog { .. });
    let request = String::from_utf8_lossy(body).chars().take(200).collect::<String>();
    let result = node.action(caller, action).await;
    if audited {
        let event = AuditEvent {
            kind: "audit_access".into(),
            outcome: if result.is_ok() { "ok".into() } else { "refused".into() },
            requester: result
                .as_ref()
                .ok()
                .and_then(|r| r.on_behalf_of.clone())
                .or_else(|| caller.identity.as_ref().map(Who::from)),
            role: result.as_ref().ok().and_then(|r| r.role.clone()),
            relayed_by: result.as_ref().ok().and_then(|r| r.on_behalf_of.as_ref()).and(caller.identity.as_ref().map(Who::from)),
            reason: Some(result.as_ref().err().map(|e| e.to_string()).unwrap_or(request)),
            ..Default::default()
        };
        node.base().audit.append(event).await.map_err(|e| NodeError::AuditUnavailable(e.to_string()))?;
    }
    result
}

/// The recipes a node answers (the latest version of each).
pub async fn recipes<N: Node + ?Sized>(node: &N, caller: &Caller) -> Result<Vec<RecipeInfo>, NodeError> {
    node.may_browse(caller)?;
    Ok(node
        .base()
        .catalog
        .latest()
        .iter()
        .map(|r| RecipeInfo { id: r.id.clone(), version: r.version, title: r.title.en.clone(), schema: (node.base().answer_schema)(&[], r.is_distribution()) })
        .collect())
}

/// Describes a recipe (`path` = [id]) or the answer of a query ticket (`cmd`).
pub async fn describe<N: Node + ?Sized>(node: &N, caller: &Caller, path: &[String], cmd: &[u8]) -> Result<Description, NodeError> {
    if !cmd.is_empty() {
        return node.describe_query(caller, QueryTicket::decode(cmd)?, cmd.to_vec()).await;
    }
    node.may_browse(caller)?;
    let id = path.first().cloned().unwrap_or_default();
    let catalog = node.base().catalog.as_ref();
    let recipe = catalog
        .get(&id, None)
        .ok_or_else(|| NodeError::Query(QueryError::UnknownIndicator { id: id.chars().take(60).collect(), known: catalog.ids().join(", ") }))?;
    Ok(Description {
        schema: (node.base().answer_schema)(&[], recipe.is_distribution()),
        ticket: None,
        recipe: Some((recipe.id.clone(), recipe.version)),
        title: recipe.title.en.clone(),
    })
}
