//! Traces, metrics and structured logs.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use norrsken_common::pki::COORDINATOR_DNS_NAME;
use norrsken_model::query::IndicatorQuery;
use opentelemetry::trace::SpanKind;

use crate::audit::{free_port, spawn_agent_with};
use crate::federation::{analyst, query};
use crate::fixtures::{client_as, federation, fetch, off_runtime, telemetry, TempDir};

fn attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// One trace spans the coordinator's query, its call to every agent and each agent's work:
/// the context travels in the W3C traceparent header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_the_coordinator_and_all_agents() {
    let mut client = analyst().await;
    let id = format!("trace-{}", std::process::id());
    let q = IndicatorQuery { query_id: id.clone(), ..query("stroke_admissions", &["sex"], "2024") };
    fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let spans = telemetry().spans.get_finished_spans().unwrap();
    let root = spans
        .iter()
        .find(|s| s.name == "norrsken.coordinator.query" && attr(s, "norrsken.query_id").as_deref() == Some(id.as_str()))
        .expect("the coordinator's query span");
    assert_eq!(root.span_kind, SpanKind::Server);
    let trace = root.span_context.trace_id();
    let in_trace: Vec<_> = spans.iter().filter(|s| s.span_context.trace_id() == trace).collect();
    let calls: Vec<_> = in_trace.iter().filter(|s| s.name == "norrsken.coordinator.agent_call").collect();
    let agents: Vec<_> = in_trace.iter().filter(|s| s.name == "norrsken.agent.query").collect();
    assert_eq!(calls.len(), 4, "one call per region");
    assert_eq!(agents.len(), 4, "every agent continued the trace");
    assert!(calls.iter().all(|c| c.parent_span_id == root.span_context.span_id()));
    let call_ids: Vec<_> = calls.iter().map(|c| c.span_context.span_id()).collect();
    assert!(agents.iter().all(|a| call_ids.contains(&a.parent_span_id) && a.parent_span_is_remote));
    let regions: BTreeSet<String> = agents.iter().filter_map(|a| attr(a, "norrsken.region")).collect();
    assert_eq!(regions.into_iter().collect::<Vec<_>>(), ["22", "23", "24", "25"]);
    for a in &agents {
        assert_eq!(attr(a, "norrsken.outcome").as_deref(), Some("ok"));
        assert_eq!(attr(a, "norrsken.indicator").as_deref(), Some("stroke_admissions"));
    }
    // Attributes are labels and counts: no person ids, no rows.
    for s in &in_trace {
        for kv in &s.attributes {
            assert!(kv.key.as_str().starts_with("norrsken."), "unexpected attribute {}", kv.key);
        }
    }
}

/// Query counts and latencies by indicator and region, region failures and withheld cells
/// are exposed for Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_readable_by_prometheus() {
    let mut client = analyst().await;
    fetch(&mut client, query("hip_fracture_surgery_24h", &["kommun"], "2024").encode_ticket(None)).await.unwrap();
    let addr = telemetry().metrics_addr.clone();
    let body = off_runtime(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let has = |needle: &str| body.lines().any(|l| l.contains(needle));
    assert!(has("norrsken_queries_total{"), "{body}");
    assert!(body.lines().any(|l| l.starts_with("norrsken_queries_total{") && l.contains("indicator=\"hip_fracture_surgery_24h\"") && l.contains("region=\"25\"")), "{body}");
    assert!(has("norrsken_query_duration_seconds_bucket{"), "{body}");
    assert!(body.lines().any(|l| l.starts_with("norrsken_cells_withheld_total{") && l.contains("indicator=\"hip_fracture_surgery_24h\"")), "{body}");
}

/// Logs can be JSON lines carrying the query id and the trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_query_and_trace_ids() {
    let f = federation();
    let run = TempDir::new("json-logs");
    let port = free_port();
    let log = run.path().join("agent.log");
    let (log2, run2) = (log.clone(), run.path().to_path_buf());
    let mut child = off_runtime(move || spawn_agent_with(&run2, port, None, &[("NORRSKEN_LOG_FORMAT", "json"), ("NORRSKEN_LOG", "info")], Some(&log2)));
    let coordinator = crate::federation::coordinator_with(format!("127.0.0.1:{port}").parse().unwrap(), 10_000).await;
    let mut client = client_as(&format!("https://{}", coordinator.server.addr), &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let q = IndicatorQuery { query_id: "json-log-1".into(), ..query("stroke_admissions", &[], "2024") };
    fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let answered = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "answered")
        .unwrap_or_else(|| panic!("no JSON 'answered' line in:\n{text}"));
    assert_eq!(answered["fields"]["query_id"], "json-log-1");
    assert_eq!(answered["fields"]["trace_id"].as_str().map(str::len), Some(32), "{answered}");
}
