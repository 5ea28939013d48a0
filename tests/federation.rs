//! Federation end to end: real agents and a coordinator on loopback ports with mutual TLS.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, Schema};
use arrow_flight::{FlightDescriptor, FlightInfo};
use bytes::Bytes;
use norrsken::local::{coordinator_config, tls_files};
use norrsken_model::catalog::Catalog;
use norrsken_common::error::NodeError;
use norrsken_common::flight::serve;
use norrsken_common::service::{Action, Caller, Description, Node, NodeBase, QueryScope, QueryTicket, Reply, Served};
use norrsken_model::geography::NORRA;
use norrsken::pki_dev::{CertSpec, CertificateAuthority};
use norrsken_common::pki::{agent_dns_name, COORDINATOR_DNS_NAME};
use norrsken_model::query::{IndicatorQuery, Perspective, QueryOptions};
use norrsken_common::tls::{server_config, ReloadableTls};

use crate::fixtures::{client_as, data, federation, fetch, off_runtime, raw_client, TempDir};
use crate::reference;

/// One row of a coordinator answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: String,
    pub region: String,
    pub labels: Vec<Option<String>>,
    pub category: Option<String>,
    pub numerator: Option<i64>,
    pub denominator: Option<i64>,
    pub value_sum: Option<f64>,
    pub value: Option<f64>,
    pub ci: (Option<f64>, Option<f64>),
    pub status: String,
    #[allow(dead_code)]
    pub reason: Option<String>,
    #[allow(dead_code)]
    pub suggestion: Option<String>,
    pub partial: bool,
}

pub fn rows(schema: &Schema, batches: &[RecordBatch], breakdowns: &[&str]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let s = |n: &str| b.column_by_name(n).map(|c| c.as_string::<i32>().clone());
        let i = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Int64Type>().clone();
        let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>().clone();
        let (kind, region, status, reason, suggestion) = (s("row_kind").unwrap(), s("region").unwrap(), s("status").unwrap(), s("reason").unwrap(), s("suggestion").unwrap());
        let labels: Vec<_> = breakdowns.iter().map(|n| s(n).expect("breakdown column")).collect();
        let category = s("category");
        let (num, den, sum, value, lo, hi) = (i("numerator"), i("denominator"), f("value_sum"), f("value"), f("ci_lower"), f("ci_upper"));
        let partial = b.column_by_name("partial").unwrap().as_boolean().clone();
        for r in 0..b.num_rows() {
            let os = |a: &arrow::array::StringArray| (!a.is_null(r)).then(|| a.value(r).to_string());
            let oi = |a: &arrow::array::Int64Array| (!a.is_null(r)).then(|| a.value(r));
            let of = |a: &arrow::array::Float64Array| (!a.is_null(r)).then(|| a.value(r));
            out.push(Row {
                kind: kind.value(r).to_string(),
                region: region.value(r).to_string(),
                labels: labels.iter().map(os).collect(),
                category: category.as_ref().and_then(os),
                numerator: oi(&num),
                denominator: oi(&den),
                value_sum: of(&sum),
                value: of(&value),
                ci: (of(&lo), of(&hi)),
                status: status.value(r).to_string(),
                reason: os(&reason),
                suggestion: os(&suggestion),
                partial: partial.value(r),
            });
        }
    }
    let _ = schema;
    out
}

pub fn query(indicator: &str, by: &[&str], period: &str) -> IndicatorQuery {
    IndicatorQuery {
        indicator: indicator.into(),
        breakdowns: by.iter().map(|s| s.to_string()).collect(),
        period: period.into(),
        ..Default::default()
    }
}

pub async fn analyst() -> arrow_flight::FlightClient {
    let f = federation();
    client_as(&f.federation.coordinator_url(), &f.certs, "analyst", COORDINATOR_DNS_NAME).await
}

/// The expected (numerator, denominator, value_sum) of a kind from a reference cell.
fn expected(kind: norrsken_model::catalog::Kind, c: &reference::RefCell) -> (Option<i64>, Option<i64>, Option<f64>) {
    use norrsken_model::catalog::Kind::*;
    match kind {
        Proportion => (Some(c.numerator), Some(c.units), None),
        Rate => (Some(c.units), Some(c.population), None),
        Count => (Some(c.units), None, None),
        Mean => (None, Some(c.units), Some(c.value_sum)),
        CostSum => (Some(c.units), Some(c.persons), Some(c.value_sum)),
    }
}

/// Regional and pooled rows equal the ground truth computed independently from the rows of
/// every region's datalager (disclosure control releases exact values here; withheld cells
/// are checked to hold no values).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_regional_and_pooled_numbers_equal_the_ground_truth() {
    let catalog = Catalog::embedded();
    let cases: Vec<(IndicatorQuery, Vec<&str>)> = vec![
        (query("stroke_reperfusion", &["sex"], "2021..2025"), vec!["sex"]),
        (query("kpp_cost", &["care_type", "year"], "2023..2024"), vec!["care_type", "year"]),
        (query("hf_hospitalisation_rate", &["age_band"], "2022..2024"), vec!["age_band"]),
        (query("diabetes_bp_bands", &["year"], "2024..2025"), vec!["year"]),
        (query("diabetes_hba1c_mean", &["sex"], "2025"), vec!["sex"]),
        (query("stroke_admissions", &[], "2021..2025"), vec![]),
        (
            IndicatorQuery { options: QueryOptions { perspective: Perspective::Population, ..Default::default() }, ..query("kpp_cost", &["sex"], "2024") },
            vec!["sex"],
        ),
    ];
    let mut client = analyst().await;
    for (q, by) in cases {
        // Ask for the margins too, so every cell the engine computes is compared.
        let q = IndicatorQuery { options: QueryOptions { totals: true, ..q.options.clone() }, ..q };
        let v = q.validate(&catalog, None).unwrap();
        let (schema, batches) = fetch(&mut client, q.encode_ticket(None)).await.unwrap_or_else(|e| panic!("{}: {e}", q.indicator));
        assert_eq!(schema.metadata()["norrsken.partial"], "false");
        assert_eq!(schema.metadata()["norrsken.catalog_hash"], catalog.hash());
        let got = rows(&schema, &batches, &by);
        // Ground truth: every region's reference cells, summed per home region and pooled.
        let mut truth: BTreeMap<(String, Vec<String>, Option<String>), reference::RefCell> = BTreeMap::new();
        for region in NORRA {
            let d = data(region.slug, region.code);
            for ((cell_region, labels, cat), c) in reference::cells(&d, &v) {
                for key in [(cell_region.clone(), labels.clone(), cat.clone()), ("Norra".to_string(), labels.clone(), cat.clone())] {
                    let e = truth.entry(key).or_default();
                    e.units += c.units;
                    e.persons += c.persons;
                    e.numerator += c.numerator;
                    e.value_sum += c.value_sum;
                    e.population += c.population;
                }
            }
        }
        let mut compared = 0;
        for row in got.iter().filter(|r| r.kind != "missing") {
            let key = (row.region.clone(), row.labels.iter().map(|l| l.clone().unwrap()).collect::<Vec<_>>(), row.category.clone());
            let t = truth.get(&key).unwrap_or_else(|| panic!("{}: unexpected row {key:?}", q.indicator));
            let (n, d, s) = expected(v.recipe.kind, t);
            if row.status == "suppressed" {
                assert!(row.numerator.is_none() && row.denominator.is_none() && row.value.is_none(), "{row:?}");
                compared += 1;
                continue;
            }
            assert_eq!((row.numerator, row.denominator), (n, d), "{} {key:?}", q.indicator);
            match (row.value_sum, s) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{} {key:?}: {a} vs {b}", q.indicator),
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{} {key:?}", q.indicator),
            }
            if let (Some(value), (Some(lo), Some(hi))) = (row.value, row.ci) {
                assert!(lo <= value && value <= hi, "{row:?}");
            }
            compared += 1;
        }
        assert_eq!(compared, truth.len(), "{}: every expected cell is in the answer", q.indicator);
    }
}

/// Only the regions a query names are asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_can_name_its_regions() {
    let mut client = analyst().await;
    let q = IndicatorQuery { regions: vec!["25".into(), "Västerbotten".into()], ..query("stroke_admissions", &["year"], "2023..2024") };
    let (schema, batches) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    let got = rows(&schema, &batches, &["year"]);
    let regions: std::collections::BTreeSet<&str> = got.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(regions, ["24", "25", "Norra"].into_iter().collect());
    let bad = IndicatorQuery { regions: vec!["Skåne".into()], ..query("stroke_admissions", &[], "2023") };
    let e = fetch(&mut client, bad.encode_ticket(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("unknown region 'Skåne'"), "{e}");
}

/// A JSON ticket (what a script writes) gives the same answer as a protobuf ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_tickets_work_like_protobuf_tickets() {
    let mut client = analyst().await;
    let q = query("hip_fracture_surgery_24h", &["sex"], "2023..2025");
    let (s1, b1) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    let (s2, b2) = fetch(&mut client, q.to_json().into_bytes()).await.unwrap();
    let (r1, r2) = (rows(&s1, &b1, &["sex"]), rows(&s2, &b2, &["sex"]));
    assert_eq!(r1.len(), r2.len());
    for (a, b) in r1.iter().zip(&r2) {
        assert_eq!((&a.region, &a.labels, a.numerator, a.denominator), (&b.region, &b.labels, b.numerator, b.denominator));
    }
    // GetFlightInfo describes the result and hands back the ticket.
    let info: FlightInfo = client.get_flight_info(FlightDescriptor::new_cmd(q.to_json())).await.unwrap();
    let schema: Schema = info.clone().try_decode_schema().unwrap();
    assert!(schema.field_with_name("ci_lower").is_ok() && schema.field_with_name("sex").is_ok());
    assert_eq!(info.endpoint[0].ticket.as_ref().unwrap().ticket, Bytes::from(q.to_json()));
}

/// Malformed or impossible questions get InvalidArgument or NotFound naming the problem,
/// at the coordinator and directly at an agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_problem_named() {
    let mut client = analyst().await;
    let good = query("stroke_reperfusion", &["sex"], "2023");
    let proto = good.encode_ticket(None);
    let cases: Vec<(Vec<u8>, tonic::Code, &str)> = vec![
        (vec![0xff, 0xff, 0xff, 0xff], tonic::Code::InvalidArgument, "malformed ticket"),
        (proto[..proto.len() - 3].to_vec(), tonic::Code::InvalidArgument, "malformed ticket"),
        (b"{\"indicator\": \"stroke_reperfusion\", \"period\":".to_vec(), tonic::Code::InvalidArgument, "JSON ticket"),
        (b"{\"indicator\": \"x\", \"period\": \"2023\", \"sql\": \"DROP TABLE\"}".to_vec(), tonic::Code::InvalidArgument, "unknown field `sql`"),
        (query("no_such_indicator", &[], "2023").encode_ticket(None), tonic::Code::NotFound, "unknown indicator 'no_such_indicator'"),
        (query("stroke_reperfusion", &["shoe_size"], "2023").encode_ticket(None), tonic::Code::InvalidArgument, "unknown breakdown 'shoe_size'"),
        (query("stroke_reperfusion", &["care_type"], "2023").encode_ticket(None), tonic::Code::InvalidArgument, "'care_type' is not allowed"),
        (query("stroke_reperfusion", &[], "2010..2012").encode_ticket(None), tonic::Code::InvalidArgument, "outside the data held"),
        (query("stroke_reperfusion", &[], "2024..2023").encode_ticket(None), tonic::Code::InvalidArgument, "before the start"),
        (vec![b'{'; 20_000], tonic::Code::InvalidArgument, "larger than the 16384-byte limit"),
    ];
    for (ticket, code, fragment) in cases {
        let e = fetch(&mut client, ticket).await.unwrap_err();
        assert_eq!(e.code(), code, "{fragment}: {e}");
        assert!(e.message().contains(fragment), "expected '{fragment}' in: {}", e.message());
    }
    // The same checks run at an agent.
    let f = federation();
    let agent = &f.federation.agents[3];
    let mut direct = client_as(&format!("https://{}", agent.server.addr), &f.certs, "coordinator", &agent_dns_name("25")).await;
    let e = fetch(&mut direct, vec![1, 2, 3]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let e = fetch(&mut direct, query("stroke_reperfusion", &["sex"], "1999").encode_ticket(None)).await.unwrap_err();
    assert!(e.message().contains("outside the data held (2021..2025)"), "{e}");
    // Nothing panicked: the federation still answers.
    assert!(fetch(&mut client, good.encode_ticket(None)).await.is_ok());
}

fn issue(ca: &CertificateAuthority, dir: &Path, name: &str, cn: &str, expired: bool) -> (Vec<u8>, Vec<u8>) {
    let mut spec = CertSpec::new(name, cn, false, true, 30);
    if expired {
        spec.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        spec.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    }
    let c = ca.issue(&spec).unwrap();
    let _ = dir;
    (c.cert_pem.into_bytes(), c.key_pem.into_bytes())
}

/// Mutual TLS refuses strangers: no certificate, another CA, an unknown identity (at the
/// coordinator and directly at an agent), an expired certificate, and a role that may not query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let f = federation();
    let url = f.federation.coordinator_url();
    let ca_pem = std::fs::read(f.certs.join("ca.pem")).unwrap();
    let dev_ca = CertificateAuthority::load(&f.certs.join("ca.pem"), &f.certs.join("ca.key")).unwrap();
    let tmp = TempDir::new("refusals");
    let ticket = query("stroke_admissions", &[], "2023").encode_ticket(None);

    // No client certificate: the TLS handshake is refused (the code varies; it is refused).
    let refused = match raw_client(&url, &ca_pem, None, COORDINATOR_DNS_NAME).await {
        Err(_) => true,
        Ok(mut c) => fetch(&mut c, ticket.clone()).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");

    // A certificate from another CA.
    let other_ca = CertificateAuthority::generate("Some other CA", 2).unwrap();
    let (cert, key) = issue(&other_ca, tmp.path(), "analyst", "analyst", false);
    let refused = match raw_client(&url, &ca_pem, Some((&cert, &key)), COORDINATOR_DNS_NAME).await {
        Err(_) => true,
        Ok(mut c) => fetch(&mut c, ticket.clone()).await.is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");

    // An expired certificate from the right CA.
    let (cert, key) = issue(&dev_ca, tmp.path(), "old-analyst", "analyst", true);
    let refused = match raw_client(&url, &ca_pem, Some((&cert, &key)), COORDINATOR_DNS_NAME).await {
        Err(_) => true,
        Ok(mut c) => fetch(&mut c, ticket.clone()).await.is_err(),
    };
    assert!(refused, "an expired certificate must be refused");

    // A valid certificate whose identity has no role.
    let (cert, key) = issue(&dev_ca, tmp.path(), "stranger", "stranger", false);
    let mut c = raw_client(&url, &ca_pem, Some((&cert, &key)), COORDINATOR_DNS_NAME).await.unwrap();
    let e = fetch(&mut c, ticket.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("'stranger'"), "{e}");

    // The auditor role reads logs but does not query.
    let mut auditor = client_as(&url, &f.certs, "auditor", COORDINATOR_DNS_NAME).await;
    let e = fetch(&mut auditor, ticket.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // An analyst going straight to an agent, past the coordinator.
    let agent = &f.federation.agents[0];
    let mut direct = client_as(&format!("https://{}", agent.server.addr), &f.certs, "analyst", &agent_dns_name("22")).await;
    let e = fetch(&mut direct, ticket.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("not allowed to query the agent of region 22"), "{e}");
}

/// An agent that hangs (answers nothing) until the test lets it go.
struct HangingAgent {
    started: tokio::sync::Notify,
    base: NodeBase,
}

#[tonic::async_trait]
impl Node for HangingAgent {
    type Domain = ();

    fn base(&self) -> &NodeBase {
        &self.base
    }
    fn may_browse(&self, _: &Caller) -> Result<(), NodeError> {
        Ok(())
    }
    async fn describe_query(&self, _: &Caller, _: QueryTicket, _: Vec<u8>) -> Result<Description, NodeError> {
        Err(NodeError::Unsupported("test agent".into()))
    }
    async fn query(&self, _: &Caller, _: QueryTicket, _: &mut QueryScope) -> Result<Served, NodeError> {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Err(NodeError::Internal("unreachable".into()))
    }
    async fn action(&self, _: &Caller, _: Action) -> Result<Reply, NodeError> {
        Ok(Reply::default())
    }
}

/// Starts a hanging agent for region 22 on its own runtime (so the test can kill it).
fn hanging_agent(certs: &Path) -> (tokio::runtime::Runtime, Arc<HangingAgent>, std::net::SocketAddr) {
    let dir = std::env::temp_dir().join(format!("norrsken-test-hanging-{}-{}", std::process::id(), certs.display().to_string().len()));
    let audit = norrsken_common::audit::AuditLog::open(&norrsken::local::audit_config(&dir, "hanging-22"), "hanging-22").unwrap();
    let base = NodeBase {
        role: "agent",
        query_span: "test.hanging",
        metric_labels: Vec::new(),
        actions: &[],
        catalog: Arc::new(norrsken_model::catalog::Catalog::embedded()),
        answer_schema: norrsken_model::answer::agent_answer_schema,
        audit,
    };
    let node = Arc::new(HangingAgent { started: tokio::sync::Notify::new(), base });
    let tls = ReloadableTls::new(server_config(&tls_files(certs, "agent-22")).unwrap());
    let n = node.clone();
    let (rt, addr) = off_runtime(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let addr = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let handle = serve(n, listener, tls, Arc::new(|_| {})).unwrap();
            let addr = handle.addr;
            // The server lives as long as its runtime; the test kills the runtime.
            std::mem::forget(handle);
            addr
        });
        (rt, addr)
    });
    (rt, node, addr)
}

/// A coordinator whose region 22 agent is at `addr22` and the others are the shared agents.
pub async fn coordinator_with(addr22: std::net::SocketAddr, timeout_ms: u64) -> norrsken_coordinator::server::RunningCoordinator {
    coordinator_with_federation(&federation().federation, addr22, timeout_ms).await
}

/// A coordinator over `federation`'s agents, region 22's at `addr22`.
pub async fn coordinator_with_federation(federation: &norrsken::local::LocalFederation, addr22: std::net::SocketAddr, timeout_ms: u64) -> norrsken_coordinator::server::RunningCoordinator {
    let mut endpoints: Vec<(String, std::net::SocketAddr)> =
        federation.agents.iter().map(|a| (a.node.region.code.to_string(), a.server.addr)).collect();
    endpoints[0].1 = addr22;
    let run = TempDir::new("coordinator-with");
    let mut config = coordinator_config(&endpoints, &federation.dir, "127.0.0.1:0");
    config.agent_timeout_ms = timeout_ms;
    // Its own audit log; the folder lives until the process ends.
    config.audit = norrsken::local::audit_config(run.path(), "coordinator");
    std::mem::forget(run);
    norrsken_coordinator::server::start(config).await.unwrap()
}

fn status_of(schema: &Schema, region: &str) -> String {
    let regions: serde_json::Value = serde_json::from_str(&schema.metadata()["norrsken.regions"]).unwrap();
    regions.as_array().unwrap().iter().find(|r| r["region"] == region).unwrap()["status"].as_str().unwrap().to_string()
}

/// A stopped agent, one that hangs, and one that dies mid-query: the coordinator answers
/// within its deadline, names the region's state, and marks the pooled rows partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_do_not_answer_make_the_answer_partial() {
    let f = federation();
    let ticket = query("stroke_admissions", &["year"], "2023..2024").encode_ticket(None);

    // 1. Stopped before the query: nothing listens on its port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let coordinator = coordinator_with(closed, 3_000).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut client = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let t0 = Instant::now();
    let (schema, batches) = fetch(&mut client, ticket.clone()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(3_500), "{:?}", t0.elapsed());
    assert_eq!(status_of(&schema, "22"), "unavailable");
    assert_eq!(schema.metadata()["norrsken.partial"], "true");
    let got = rows(&schema, &batches, &["year"]);
    assert!(got.iter().filter(|r| r.kind == "pooled").all(|r| r.partial));
    assert!(got.iter().any(|r| r.kind == "missing" && r.region == "22" && r.status == "unavailable"));
    assert!(got.iter().filter(|r| r.kind == "region").all(|r| r.region != "22"));
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();

    // 2. Hangs: the deadline passes.
    let (rt, _node, addr) = hanging_agent(&f.certs);
    let coordinator = coordinator_with(addr, 1_500).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut client = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let t0 = Instant::now();
    let (schema, _) = fetch(&mut client, ticket.clone()).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(1_500) && t0.elapsed() < Duration::from_millis(3_000), "{:?}", t0.elapsed());
    assert_eq!(status_of(&schema, "22"), "timeout");
    assert_eq!(schema.metadata()["norrsken.partial"], "true");
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
    rt.shutdown_background();

    // 3. Dies while answering: its process (runtime) goes away mid-query.
    let (rt, node, addr) = hanging_agent(&f.certs);
    let coordinator = coordinator_with(addr, 10_000).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut client = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let query_task = tokio::spawn(async move {
        let t0 = Instant::now();
        let r = fetch(&mut client, ticket).await;
        (r, t0.elapsed())
    });
    node.started.notified().await;
    rt.shutdown_background();
    let (result, elapsed) = query_task.await.unwrap();
    let (schema, _) = result.unwrap();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(status_of(&schema, "22"), "unavailable");
    assert_eq!(schema.metadata()["norrsken.partial"], "true");
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
}

/// The Python example (pyarrow.flight with the analyst's certificate) lists the indicators
/// and fetches a comparison: a standard Arrow Flight client works with mutual TLS.
#[test]
fn the_python_pyarrow_example_runs() {
    let f = federation();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/norrsken_query.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("hip_fracture_surgery_24h")
        .env("NORRSKEN_COORDINATOR", f.federation.coordinator_url())
        .env("NORRSKEN_CERT", f.certs.join("analyst.pem"))
        .env("NORRSKEN_KEY", f.certs.join("analyst.key"))
        .env("NORRSKEN_CA", f.certs.join("ca.pem"))
        .output()
        .expect("python3 runs (install pyarrow and pandas: .ci/run does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("stroke_reperfusion") && stdout.contains("tonsillectomy_cold"), "{stdout}");
    assert!(stdout.contains("Hip fracture: surgery within 24 hours"), "{stdout}");
    assert!(stdout.contains("Norra") && stdout.contains("pooled rows: 2"), "{stdout}");
    for region in NORRA {
        assert!(stdout.contains(region.name), "{stdout}");
    }
}
