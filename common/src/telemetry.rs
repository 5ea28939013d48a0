//! Traces and metrics with OpenTelemetry.
//!
//! - A coordinator query is one span (`norrsken.coordinator.query`) with one child per agent
//!   call (`norrsken.coordinator.agent_call`); the child's context travels to the agent as a
//!   W3C `traceparent` gRPC header and the agent continues the trace
//!   (`norrsken.agent.query`). Attributes: query id, indicator, region, role, cells,
//!   outcome; never personal data.
//! - Metrics: queries and their latency by indicator and region, per-region failures,
//!   withheld cells, cache hits. Exported over OTLP and/or on a Prometheus `/metrics`
//!   endpoint.
//! - Both exporters are off by default (`[telemetry]` in the node's config). Without them
//!   spans are still created (ids for logs and audit records) but go nowhere.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::{Deserialize, Serialize};

/// `[telemetry]` in an agent's or the coordinator's config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector for traces and metrics, e.g. `http://otel-collector:4317`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Address of a Prometheus `/metrics` endpoint, e.g. `127.0.0.1:9464`.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(pub String);

/// Keeps exporters alive; flushes them when dropped.
pub struct TelemetryGuard {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    meter: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the process's tracer and meter providers (once per process; later calls only
/// start a metrics endpoint). `service` names the node (`norrsken-agent-25`).
pub fn init(config: &TelemetryConfig, service: &str) -> Result<TelemetryGuard, TelemetryError> {
    let mut guard = TelemetryGuard { tracer: None, meter: None };
    let registry = prometheus::Registry::new();
    if INSTALLED.set(()).is_ok() {
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build();
        let mut traces = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource.clone());
        let mut metrics = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_resource(resource);
        if let Some(endpoint) = &config.otlp_endpoint {
            use opentelemetry_otlp::WithExportConfig;
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError(format!("OTLP span exporter for {endpoint}: {e}")))?;
            traces = traces.with_batch_exporter(spans);
            let m = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError(format!("OTLP metric exporter for {endpoint}: {e}")))?;
            metrics = metrics.with_periodic_exporter(m);
        }
        if config.metrics_listen.is_some() {
            let reader = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
                .map_err(|e| TelemetryError(e.to_string()))?;
            metrics = metrics.with_reader(reader);
        }
        let traces = traces.build();
        let metrics = metrics.build();
        global::set_tracer_provider(traces.clone());
        global::set_meter_provider(metrics.clone());
        guard.tracer = Some(traces);
        guard.meter = Some(metrics);
    }
    if let Some(addr) = &config.metrics_listen {
        serve_metrics(addr, registry)?;
    }
    Ok(guard)
}

/// Installs providers for tests: spans to `exporter`, metrics to a Prometheus registry
/// served on `metrics_listen`. Returns false when providers were already installed.
pub fn init_for_tests(exporter: opentelemetry_sdk::trace::InMemorySpanExporter, metrics_listen: &str) -> Result<bool, TelemetryError> {
    if INSTALLED.set(()).is_err() {
        return Ok(false);
    }
    let registry = prometheus::Registry::new();
    let traces = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_simple_exporter(exporter).build();
    let reader = opentelemetry_prometheus::exporter().with_registry(registry.clone()).build().map_err(|e| TelemetryError(e.to_string()))?;
    let metrics = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    global::set_tracer_provider(traces);
    global::set_meter_provider(metrics);
    serve_metrics(metrics_listen, registry)?;
    Ok(true)
}

/// Serves `GET /metrics` in the Prometheus text format.
fn serve_metrics(addr: &str, registry: prometheus::Registry) -> Result<(), TelemetryError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| TelemetryError(format!("metrics endpoint {addr}: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| TelemetryError(e.to_string()))?;
    let handle = tokio::runtime::Handle::try_current().map_err(|e| TelemetryError(format!("metrics endpoint needs a runtime: {e}")))?;
    handle.spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                let (status, body) = if line.starts_with("GET /metrics") {
                    let mut out = Vec::new();
                    let _ = prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut out);
                    ("200 OK", out)
                } else {
                    ("404 Not Found", b"only /metrics is served here\n".to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    Ok(())
}

/// The instruments every node records into.
pub struct Metrics {
    pub queries: Counter<u64>,
    pub duration: Histogram<f64>,
    pub region_failures: Counter<u64>,
    pub cells_withheld: Counter<u64>,
    pub cache_hits: Counter<u64>,
}

/// The process's instruments (created on first use from the installed meter provider).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = global::meter("norrsken");
        Metrics {
            queries: meter.u64_counter("norrsken_queries").with_description("Queries answered or refused, by node, indicator, region and outcome").build(),
            duration: meter
                .f64_histogram("norrsken_query_duration")
                .with_description("Query latency by node, indicator and region")
                .with_unit("s")
                .with_boundaries(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                .build(),
            region_failures: meter.u64_counter("norrsken_region_failures").with_description("Regions that did not answer a query, by region and status").build(),
            cells_withheld: meter.u64_counter("norrsken_cells_withheld").with_description("Cells withheld by disclosure control, by indicator and region").build(),
            cache_hits: meter.u64_counter("norrsken_cache_hits").with_description("Answers served from the coordinator's result cache").build(),
        }
    })
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// The context a `traceparent` header describes (an empty context without one).
pub fn context_from_traceparent(traceparent: Option<&str>) -> Context {
    let mut carrier = HashMap::new();
    if let Some(tp) = traceparent {
        carrier.insert("traceparent".to_string(), tp.to_string());
    }
    propagator().extract(&carrier)
}

/// The `traceparent` header of a context's span.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Starts a span as a child of `parent` and returns the context holding it.
pub fn start_span(name: &'static str, kind: SpanKind, parent: &Context, attributes: Vec<KeyValue>) -> Context {
    let tracer = global::tracer("norrsken");
    let span = tracer.span_builder(name).with_kind(kind).with_attributes(attributes).start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Adds attributes to the context's span and ends it.
pub fn end_span(cx: &Context, attributes: Vec<KeyValue>) {
    let span = cx.span();
    span.set_attributes(attributes);
    span.end();
}

/// The hex trace id of a context's span.
pub fn trace_id(cx: &Context) -> String {
    cx.span().span_context().trace_id().to_string()
}
