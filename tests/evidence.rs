//! Audit logs as evidence against a hostile operator and a determined caller: anchored
//! chains (a log cut back, missing its start or its end is named by verify or reconcile),
//! reconcile that reports nothing on an honest day and every replay, refusals that are all on
//! record (rate-limited), bounded errors, and fast partial answers while a region is silent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use norrsken::audit_review::{self as review, reconcile, NodeLog};
use norrsken::local::{LocalFederation, LocalOptions};
use norrsken_common::audit::{read_public_key, AuditRecord};
use norrsken_common::pki::{agent_dns_name, COORDINATOR_DNS_NAME};
use norrsken_model::query::IndicatorQuery;
use norrsken::pki_dev::{CertSpec, CertificateAuthority};

use crate::federation::query;
use crate::fixtures::{client_as, datalager, federation, fetch, off_runtime, raw_client, TempDir};

fn with_id(q: IndicatorQuery, id: &str) -> IndicatorQuery {
    IndicatorQuery { query_id: id.into(), ..q }
}

fn regions(q: IndicatorQuery, r: &[&str]) -> IndicatorQuery {
    IndicatorQuery { regions: r.iter().map(|s| s.to_string()).collect(), ..q }
}

fn log_dir(fed_dir: &Path, node: &str) -> PathBuf {
    fed_dir.join("audit").join(node)
}

fn node_log(dir: &Path) -> NodeLog {
    NodeLog::read(&review::expand(&[dir.to_path_buf()]).unwrap()).unwrap()
}

fn records(dir: &Path) -> Vec<AuditRecord> {
    node_log(dir).records
}

fn copy_logs(from: &Path, to: &Path) {
    for node in ["coordinator", "agent-22", "agent-23", "agent-24", "agent-25"] {
        crate::audit::copy_dir(&log_dir(from, node), &log_dir(to, node));
    }
}

fn reconcile_dir(dir: &Path) -> Vec<review::Difference> {
    let agents: Vec<(String, NodeLog)> = ["22", "23", "24", "25"].iter().map(|r| (r.to_string(), node_log(&log_dir(dir, &format!("agent-{r}"))))).collect();
    reconcile(&node_log(&log_dir(dir, "coordinator")), &agents)
}

/// The lines of a log (all files, in chain order), with the file each came from.
fn lines(dir: &Path) -> Vec<(PathBuf, String)> {
    review::expand(&[dir.to_path_buf()])
        .unwrap()
        .into_iter()
        .flat_map(|f| std::fs::read_to_string(&f).unwrap().lines().map(|l| (f.clone(), l.to_string())).collect::<Vec<_>>())
        .collect()
}

/// Rewrites a log's files with only the lines `keep` says.
fn keep_lines(dir: &Path, keep: impl Fn(usize, &str) -> bool) {
    let all = lines(dir);
    for f in review::expand(&[dir.to_path_buf()]).unwrap() {
        let text: String = all.iter().enumerate().filter(|(i, (file, l))| *file == f && keep(*i, l)).map(|(_, (_, l))| format!("{l}\n")).collect();
        if text.is_empty() {
            std::fs::remove_file(&f).unwrap();
        } else {
            std::fs::write(&f, text).unwrap();
        }
    }
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<AuditRecord>(line).unwrap().seq
}

fn cli(args: &[&str], paths: &[PathBuf]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_norrsken")).args(args).args(paths).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

/// A federation of its own (so that its logs hold only this test's queries) whose
/// coordinator knows every agent's versions (so repeated questions come from its cache),
/// and an analyst's client.
async fn federation_with_cache(tmp: &TempDir) -> (LocalFederation, arrow_flight::FlightClient) {
    let fed = LocalFederation::start(datalager(), tmp.path(), &LocalOptions { perturbation: false, ..LocalOptions::default() }).await.unwrap();
    let node = fed.coordinator.node.clone();
    eventually("the coordinator knows every agent's versions", Duration::from_secs(10), || {
        ["22", "23", "24", "25"].iter().all(|r| node.agent_versions(r).is_some())
    })
    .await;
    let analyst = client_as(&fed.coordinator_url(), &fed.certs, "analyst", COORDINATOR_DNS_NAME).await;
    (fed, analyst)
}

fn status(e: Result<(arrow::datatypes::SchemaRef, Vec<arrow::record_batch::RecordBatch>), tonic::Status>) -> tonic::Status {
    e.err().expect("refused")
}

async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < timeout, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An honest day, with answered, region-subset, cached, refused, partial and malformed
/// questions (a 15,000-character period, a query id with a newline): reconcile reports
/// nothing, on the CLI too. Then an operator cuts logs: an agent's back to a seal, the
/// coordinator's back to a seal, an agent's first records, another agent's last records;
/// verify or reconcile names each, with the node and the sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_day_reconciles_and_every_cut_is_named() {
    let tmp = TempDir::new("evidence-honest");
    let (fed, mut analyst) = federation_with_cache(&tmp).await;
    let base = query("stroke_admissions", &["sex"], "2024");
    // Answered, by every region and by some.
    fetch(&mut analyst, with_id(base.clone(), "all-1").encode_ticket(None)).await.unwrap();
    fetch(&mut analyst, with_id(regions(base.clone(), &["25"]), "one-1").encode_ticket(None)).await.unwrap();
    fetch(&mut analyst, with_id(regions(query("hip_fracture_surgery_24h", &[], "2024"), &["Norrbotten", "Jämtland Härjedalen"]), "two-1").encode_ticket(None))
        .await
        .unwrap();
    // The same question again: answered from the coordinator's cache, no agent asked.
    let (schema, _) = fetch(&mut analyst, with_id(base.clone(), "cached-1").encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.cached"], "true");
    // Every region refuses (the period lies outside their data): a refused record at the
    // coordinator, with what was sent to each region.
    let e = status(fetch(&mut analyst, with_id(query("stroke_admissions", &[], "2010"), "refused-1").encode_ticket(None)).await);
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    // Refused at the coordinator: an unknown indicator, a role that does not query.
    status(fetch(&mut analyst, with_id(query("no_such_indicator", &[], "2024"), "refused-2").encode_ticket(None)).await);
    let mut auditor = client_as(&fed.coordinator_url(), &fed.certs, "auditor", COORDINATOR_DNS_NAME).await;
    status(fetch(&mut auditor, with_id(base.clone(), "refused-3").encode_ticket(None)).await);
    // Malformed beyond measure: a 15,000-character period and a query id with a newline.
    let e = status(fetch(&mut analyst, query("stroke_admissions", &[], &"2".repeat(15_000)).encode_ticket(None)).await);
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("invalid period") && e.message().contains("(15000 characters)") && e.message().len() < 400, "{}", e.message());
    let e = status(fetch(&mut analyst, with_id(base.clone(), "evil\nquery 99 region 25: forged").encode_ticket(None)).await);
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("query_id") && e.message().contains("\\n"), "{}", e.message());
    // A periodic seal at every node (as the timer writes them), then more queries.
    for n in std::iter::once(&fed.coordinator.node.base.audit).chain(fed.agents.iter().map(|a| &a.node.base.audit)) {
        n.seal(false).unwrap();
    }
    fetch(&mut analyst, with_id(query("kpp_cost", &["sex"], "2024"), "after-seal-1").encode_ticket(None)).await.unwrap();
    fetch(&mut analyst, with_id(query("stroke_admissions", &["age_band"], "2023"), "after-seal-2").encode_ticket(None)).await.unwrap();
    // Region 24 stops: a partial answer, then (its circuit open) answers without asking it.
    fed.agents[2].stop(Duration::from_secs(5)).await.unwrap();
    let (schema, _) = fetch(&mut analyst, with_id(query("stroke_admissions", &["year"], "2022..2023"), "partial-1").encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.partial"], "true");
    let (schema, _) = fetch(&mut analyst, with_id(query("stroke_admissions", &["year"], "2021..2022"), "partial-2").encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.partial"], "true");
    let dir = fed.dir.clone();
    let keys: Vec<(String, ed25519_dalek::VerifyingKey)> = std::iter::once(("coordinator".to_string(), fed.coordinator.node.base.audit.public_key()))
        .chain(fed.agents.iter().map(|a| (format!("agent-{}", a.node.region.code), a.node.base.audit.public_key())))
        .collect();
    fed.stop().await.unwrap();

    // The honest logs: every one verifies and reconcile reports nothing.
    for (n, key) in &keys {
        let v = review::verify(&review::expand(&[log_dir(&dir, n)]).unwrap(), Some(key), false).unwrap();
        assert!(v.ok() && v.created.is_some(), "{n}: {:?}", v.problem);
    }
    let diffs = reconcile_dir(&dir);
    assert!(diffs.is_empty(), "an honest day reconciles: {diffs:#?}");
    let logs: Vec<PathBuf> = ["coordinator", "agent-22", "agent-23", "agent-24", "agent-25"].iter().map(|n| log_dir(&dir, n)).collect();
    let (ok, out) = cli(&["audit", "reconcile"], &logs);
    assert!(ok && out.starts_with("OK: "), "{out}");
    // What was recorded: the refused questions with their reasons, the malformed ones without
    // the id they carried, the cached one naming its first computation, the regions sent to.
    let coordinator = records(&log_dir(&dir, "coordinator"));
    let by_id = |id: &str| coordinator.iter().find(|r| r.event.query_id.as_deref() == Some(id)).unwrap_or_else(|| panic!("no record of {id}")).clone();
    assert_eq!(by_id("cached-1").event.cached_from.as_deref(), Some("all-1"));
    assert!(by_id("cached-1").event.region_outcomes.is_empty(), "a cached answer sent nothing to any region");
    let refused = by_id("refused-1");
    assert_eq!((refused.event.kind.as_str(), refused.event.region_outcomes.len()), ("refused", 4));
    assert!(refused.event.region_outcomes.iter().all(|p| p.attempts == Some(1) && p.status == "error"), "{:?}", refused.event.region_outcomes);
    let answered = by_id("all-1");
    assert!(answered.event.region_outcomes.iter().all(|p| p.record.is_some()), "every answer's record is anchored: {:?}", answered.event.region_outcomes);
    let partial = by_id("partial-2");
    let p24 = partial.event.region_outcomes.iter().find(|p| p.region == "24").unwrap();
    assert_eq!((p24.status.as_str(), p24.attempts), ("unavailable", Some(0)), "region 24 was not asked again: {p24:?}");
    assert!(coordinator.iter().all(|r| !r.event.query_id.as_deref().unwrap_or("").contains('\n')), "an invalid id is never recorded");
    assert!(coordinator.iter().any(|r| r.event.kind == "refused" && r.event.reason.as_deref().is_some_and(|x| x.contains("query_id") && x.len() < 400)));
    let agent25 = records(&log_dir(&dir, "agent-25"));
    assert!(agent25.iter().filter(|r| r.event.kind == "query").all(|r| r.event.relayer_head.is_some()), "agents record the coordinator's head");

    // 1. Agent 25's log cut back to its periodic seal: verify passes (it ends at a seal),
    //    reconcile names agent-25 and the first missing sequence number.
    let cut = tmp.path().join("cut-agent");
    copy_logs(&dir, &cut);
    let a25 = log_dir(&cut, "agent-25");
    let all = lines(&a25);
    let periodic = all.iter().position(|(_, l)| l.contains("\"kind\":\"seal\"") && l.contains("\"final\":false")).expect("a periodic seal");
    let first_missing = seq_of(&all[periodic].1) + 1;
    keep_lines(&a25, |i, _| i <= periodic);
    let v = review::verify(&review::expand(&[a25.clone()]).unwrap(), Some(&keys[4].1), false).unwrap();
    assert!(v.ok(), "a log cut back to a seal verifies on its own: {:?}", v.problem);
    let diffs = reconcile_dir(&cut);
    let d = diffs.iter().find(|d| d.node.as_deref() == Some("agent-25")).unwrap_or_else(|| panic!("{diffs:#?}"));
    assert_eq!(d.seq, Some(first_missing), "{d:?}");
    assert!(d.problem.contains(&format!("records from seq {first_missing} on are missing")), "{}", d.problem);
    let (ok, out) = cli(&["audit", "reconcile"], &["coordinator", "agent-22", "agent-23", "agent-24", "agent-25"].map(|n| log_dir(&cut, n)));
    assert!(!ok && out.contains(&format!("agent-25 seq {first_missing}")), "{out}");

    // 2. The coordinator's log cut back to its periodic seal: the heads the agents recorded
    //    name it.
    let cut = tmp.path().join("cut-coordinator");
    copy_logs(&dir, &cut);
    let c = log_dir(&cut, "coordinator");
    let all = lines(&c);
    let periodic = all.iter().position(|(_, l)| l.contains("\"kind\":\"seal\"") && l.contains("\"final\":false")).expect("a periodic seal");
    let first_missing = seq_of(&all[periodic].1) + 1;
    keep_lines(&c, |i, _| i <= periodic);
    let diffs = reconcile_dir(&cut);
    let d = diffs.iter().find(|d| d.node.as_deref() == Some("coordinator")).unwrap_or_else(|| panic!("{diffs:#?}"));
    assert_eq!(d.seq, Some(first_missing), "{d:?}");

    // 3. Agent 23's first records dropped: verify names the missing genesis and sequence
    //    numbers, on the CLI too.
    let cut = tmp.path().join("cut-start");
    copy_logs(&dir, &cut);
    let a23 = log_dir(&cut, "agent-23");
    keep_lines(&a23, |i, _| i >= 3);
    let v = review::verify(&review::expand(&[a23.clone()]).unwrap(), Some(&keys[2].1), false).unwrap();
    let p = v.problem.expect("detected");
    assert_eq!(p.seq, Some(3));
    assert!(p.message.contains("genesis") && p.message.contains("records 0 to 2 are missing"), "{}", p.message);
    let key_file = tmp.path().join("agent-23.pub");
    std::fs::write(&key_file, norrsken_common::audit::public_key_pem(&keys[2].1)).unwrap();
    let (ok, out) = cli(&["audit", "verify", "--key", key_file.to_str().unwrap()], &[a23.clone()]);
    assert!(!ok && out.contains("(seq 3)") && out.contains("genesis"), "{out}");
    let (ok, out) = cli(&["audit", "verify", "--allow-missing-start", "--key", key_file.to_str().unwrap()], &[a23]);
    assert!(ok && out.contains("records 0 to 2 are missing"), "archived starts are accepted when said: {out}");

    // 4. Agent 22's last records removed (its final seal too): reconcile names agent-22.
    let cut = tmp.path().join("cut-end");
    copy_logs(&dir, &cut);
    let a22 = log_dir(&cut, "agent-22");
    let all = lines(&a22);
    let last_query = all.iter().rposition(|(_, l)| l.contains("\"kind\":\"query\"")).unwrap();
    let first_missing = seq_of(&all[last_query].1);
    keep_lines(&a22, |i, _| i < last_query);
    let diffs = reconcile_dir(&cut);
    let d = diffs.iter().find(|d| d.node.as_deref() == Some("agent-22")).unwrap_or_else(|| panic!("{diffs:#?}"));
    assert_eq!(d.seq, Some(first_missing), "{d:?}");
    assert_eq!(diffs.iter().filter(|d| d.region.as_deref() == Some("22")).count(), 1, "one difference per cut, not one per query: {diffs:#?}");
}

/// A query sent straight to an agent with the coordinator's own certificate, reusing the id
/// and parameters of a relayed query, and of one the coordinator answered from its cache:
/// reconcile reports both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_queries_are_reported() {
    let tmp = TempDir::new("evidence-replay");
    let (fed, mut analyst) = federation_with_cache(&tmp).await;
    let q = query("stroke_admissions", &["sex"], "2024");
    fetch(&mut analyst, with_id(q.clone(), "relayed-1").encode_ticket(None)).await.unwrap();
    let (schema, _) = fetch(&mut analyst, with_id(q.clone(), "cached-1").encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.cached"], "true");
    // The analyst's answer carries the coordinator's record of it.
    assert!(schema.metadata().contains_key("norrsken.audit_seq") && schema.metadata()["norrsken.audit_hash"].starts_with("sha256:"));
    let dir = fed.dir.clone();
    // Straight to agent 25, as the coordinator, with the relay block the coordinator wrote.
    let relay = norrsken_model::query::Relay {
        requester_subject: "CN=analyst, O=Norrsken development PKI".into(),
        requester_role: "analyst".into(),
        ..Default::default()
    };
    let agent25 = format!("https://{}", fed.agents[3].server.addr);
    let mut as_coordinator = client_as(&agent25, &fed.certs, "coordinator", &agent_dns_name("25")).await;
    for id in ["relayed-1", "cached-1"] {
        let mut normalized = q.clone();
        normalized.version = Some(1);
        fetch(&mut as_coordinator, with_id(normalized, id).encode_ticket(Some(&relay))).await.unwrap();
    }
    fed.stop().await.unwrap();
    let diffs = reconcile_dir(&dir);
    let relayed: Vec<_> = diffs.iter().filter(|d| d.query_id == "relayed-1").collect();
    assert!(relayed.len() == 1 && relayed[0].region.as_deref() == Some("25") && relayed[0].problem.contains("recorded this query 2 times; the coordinator sent it 1 time"), "{diffs:#?}");
    let cached: Vec<_> = diffs.iter().filter(|d| d.query_id == "cached-1").collect();
    assert!(cached.len() == 1 && cached[0].problem.contains("from its cache"), "{diffs:#?}");
    assert_eq!(diffs.len(), 2, "nothing else: {diffs:#?}");
}

fn stranger(certs: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ca = CertificateAuthority::load(&certs.join("ca.pem"), &certs.join("ca.key")).unwrap();
    let issued = ca.issue(&CertSpec::new("stranger", "stranger", false, true, 30)).unwrap();
    (std::fs::read(certs.join("ca.pem")).unwrap(), issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())
}

/// No refusal goes unrecorded: oversize tickets (over the node's limit and over the
/// transport's), listing, describing and actions by an identity without a role, a
/// 10,000-character action name and schema path; each is answered InvalidArgument or
/// PermissionDenied with a short message. A flood is recorded a few at a time and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_recorded_and_floods_are_counted() {
    let f = federation();
    let run = TempDir::new("evidence-refusals");
    let endpoints: Vec<(String, std::net::SocketAddr)> = f.federation.agents.iter().map(|a| (a.node.region.code.to_string(), a.server.addr)).collect();
    let mut config = norrsken::local::coordinator_config(&endpoints, &f.federation.dir, "127.0.0.1:0");
    config.audit = norrsken::local::audit_config(run.path(), "coordinator");
    config.audit.refusals_per_minute = 5;
    let coordinator = norrsken_coordinator::server::start(config.clone()).await.unwrap();
    let url = format!("https://{}", coordinator.server.addr);
    let mut analyst = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;

    // Oversize tickets: over the node's 16 KiB limit, and over the transport's 4 MiB.
    for size in [100_000usize, 5_000_000] {
        let e = status(fetch(&mut analyst, vec![b' '; size]).await);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{size}: {e}");
        // The size named is the ticket's, or the whole message's (with its few bytes of framing).
        assert!(e.message().contains("bytes is larger than the") && e.message().len() < 300, "{}", e.message());
        assert!(e.message().contains(&format!("{size} bytes")) || e.message().contains(&format!("{} bytes", size + 5)), "{}", e.message());
    }
    // A 10,000-character action name and schema path.
    let e = analyst.do_action(arrow_flight::Action::new("x".repeat(10_000), Bytes::new())).await.err().unwrap();
    let arrow_flight::error::FlightError::Tonic(e) = e else { panic!("{e}") };
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("action type") && e.message().len() < 400, "{}", e.message());
    let e = analyst.get_schema(arrow_flight::FlightDescriptor::new_path(vec!["y".repeat(10_000)])).await.err().unwrap();
    let arrow_flight::error::FlightError::Tonic(e) = e else { panic!("{e}") };
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("descriptor path"), "{}", e.message());

    // An identity the CA signed but the coordinator gives no role.
    let (ca, cert, key) = stranger(&f.certs);
    let mut s = raw_client(&url, &ca, Some((&cert, &key)), COORDINATOR_DNS_NAME).await.unwrap();
    assert_eq!(s.list_flights(Bytes::new()).await.err().map(|e| e.to_string()).is_some(), true);
    let e = s.get_flight_info(arrow_flight::FlightDescriptor::new_path(vec!["stroke_reperfusion".into()])).await.err().unwrap();
    assert!(e.to_string().contains("no role"), "{e}");
    assert!(s.do_action(arrow_flight::Action::new("catalog", Bytes::new())).await.is_err());
    // A flood: 40 more refused listings.
    for _ in 0..40 {
        let _ = s.list_flights(Bytes::new()).await;
    }
    // Directly at an agent: an analyst may not list its recipes.
    let agent25 = format!("https://{}", f.federation.agents[3].server.addr);
    let mut direct = client_as(&agent25, &f.certs, "analyst", &agent_dns_name("25")).await;
    assert!(direct.list_flights(Bytes::new()).await.is_err());
    coordinator.stop(Duration::from_secs(5)).await.unwrap();

    let recs = records(&config.audit.dir);
    let refused: Vec<&AuditRecord> = recs.iter().filter(|r| r.event.kind == "refused").collect();
    for size in [100_000u64, 5_000_000] {
        assert!(
            refused.iter().any(|r| r.event.request_bytes.is_some_and(|b| (size..size + 16).contains(&b)) && r.event.outcome == "invalid"),
            "the {size}-byte ticket is on record"
        );
    }
    assert!(refused.iter().any(|r| r.event.operation.as_deref() == Some("action") && r.event.reason.as_deref().is_some_and(|x| x.contains("10000 characters"))));
    assert!(refused.iter().any(|r| r.event.operation.as_deref() == Some("describe") && r.event.reason.as_deref().is_some_and(|x| x.contains("descriptor path"))));
    let by_stranger: Vec<&&AuditRecord> = refused.iter().filter(|r| r.event.requester.as_ref().is_some_and(|w| w.cn == "stranger")).collect();
    assert_eq!(by_stranger.len(), 5, "five refusals of one identity are recorded one by one per minute");
    assert!(by_stranger.iter().any(|r| r.event.operation.as_deref() == Some("recipes")));
    assert!(by_stranger.iter().any(|r| r.event.operation.as_deref() == Some("describe")));
    assert!(by_stranger.iter().any(|r| r.event.operation.as_deref() == Some("action catalog")));
    let suppressed: Vec<&AuditRecord> = recs.iter().filter(|r| r.event.kind == "suppressed").collect();
    assert_eq!(suppressed.len(), 1, "the rest are counted in one record at shutdown");
    assert_eq!(suppressed[0].event.suppressed, Some(43 - 5));
    assert_eq!(suppressed[0].event.requester.as_ref().map(|w| w.cn.as_str()), Some("stranger"));
    let v = review::verify(&review::expand(&[config.audit.dir.clone()]).unwrap(), Some(&read_public_key(&norrsken_common::audit::public_path(&config.audit.signing_key)).unwrap()), false).unwrap();
    assert!(v.ok(), "{:?}", v.problem);
    // The agent recorded the analyst's refused listing.
    let at_agent = records(&log_dir(&f.federation.dir, "agent-25"));
    assert!(at_agent.iter().any(|r| r.event.kind == "refused" && r.event.operation.as_deref() == Some("recipes") && r.event.requester.as_ref().is_some_and(|w| w.cn == "analyst")));
}

/// One region paused (SIGSTOP, not dead): the first query answers at its deadline, the next
/// ten each answer partially in under a second, and after SIGCONT full answers are back
/// within five seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_region_costs_one_deadline_not_every_query() {
    let f = federation();
    let run = TempDir::new("evidence-sigstop");
    let port = crate::audit::free_port();
    let mut child = off_runtime(|| crate::audit::spawn_agent(run.path(), port, None));
    // The coordinator's own deadline is 2 s: a region that misses it is not asked again
    // until it answers a probe. (A question's own shorter deadline would not open the
    // circuit: tests/dos.rs.)
    let coordinator = crate::federation::coordinator_with(format!("127.0.0.1:{port}").parse().unwrap(), 2_000).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut client = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let mut q = query("stroke_admissions", &["sex"], "2024");
    q.options.no_cache = true;
    let ask = |i: usize| with_id(q.clone(), &format!("silent-{i}")).encode_ticket(None);
    let partial = |s: &arrow::datatypes::SchemaRef| s.metadata()["norrsken.partial"] == "true";
    let (schema, _) = fetch(&mut client, ask(0)).await.unwrap();
    assert!(!partial(&schema), "all regions answer before the pause");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    let (schema, _) = fetch(&mut client, ask(1)).await.unwrap();
    let first = t0.elapsed();
    assert!(partial(&schema));
    assert!(first >= Duration::from_millis(1_900) && first < Duration::from_millis(4_000), "the first query waits out its deadline: {first:?}");
    for i in 2..12 {
        let t = Instant::now();
        let (schema, _) = fetch(&mut client, ask(i)).await.unwrap();
        let took = t.elapsed();
        assert!(partial(&schema), "query {i}");
        assert!(took < Duration::from_secs(1), "query {i} answered in {took:?}");
        let regions: serde_json::Value = serde_json::from_str(&schema.metadata()["norrsken.regions"]).unwrap();
        let r22 = regions.as_array().unwrap().iter().find(|r| r["region"] == "22").unwrap();
        assert_eq!(r22["status"], "unavailable");
        assert!(r22["message"].as_str().unwrap().contains("not asked"), "{r22}");
    }

    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    let mut i = 100;
    loop {
        let (schema, _) = fetch(&mut client, ask(i)).await.unwrap();
        if !partial(&schema) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "full answers again within 5 s of the region's return");
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("paused region: first query {first:?}; full answers {:?} after SIGCONT", t0.elapsed());
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}
