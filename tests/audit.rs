//! Audit logs: tamper evidence, durability across a crash, refusing without a log,
//! reconciliation, and who may read which log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use norrsken::local::{audit_config, LocalFederation, LocalOptions};
use norrsken::audit_review::{self as review, reconcile};
use norrsken_common::audit::{read_public_key, AuditConfig, AuditEvent, AuditLog, AuditRecord, Who};
use norrsken_common::error::NodeError;
use norrsken_common::service::{envelope, Caller};
use norrsken::pki_dev::{CertSpec, CertificateAuthority};
use norrsken_common::pki::{identity_of, pem_to_der, COORDINATOR_DNS_NAME};

use crate::federation::query;
use crate::fixtures::{client_as, datalager, federation, fetch, off_runtime, raw_client, region_dir, TempDir};

fn write_log(dir: &Path, name: &str, records: usize, rotate_bytes: u64) -> (PathBuf, PathBuf) {
    let config = AuditConfig { rotate_bytes, ..AuditConfig::in_dir(&dir.join(name), &dir.join(format!("{name}.key"))) };
    let log = AuditLog::open(&config, "agent-25").unwrap();
    for i in 0..records {
        log.append_blocking(AuditEvent {
            kind: "query".into(),
            outcome: "ok".into(),
            query_id: Some(format!("q-{i:03}")),
            requester: Some(Who { cn: "analyst".into(), subject: "CN=analyst".into(), fingerprint: "sha256:ab".into() }),
            indicator: Some("stroke_reperfusion".into()),
            duration_ms: Some(10 + i as u64),
            ..Default::default()
        })
        .unwrap();
        if i == records / 2 {
            log.seal(false).unwrap();
        }
    }
    log.seal(true).unwrap();
    (dir.join(name), norrsken_common::audit::public_path(&config.signing_key))
}

fn lines_of(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    review::expand(&[dir.to_path_buf()])
        .unwrap()
        .into_iter()
        .map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap().lines().map(str::to_string).collect()))
        .collect()
}

fn save(files: &[(PathBuf, Vec<String>)]) {
    for (f, lines) in files {
        std::fs::write(f, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

fn cli_verify(dir: &Path, key: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_norrsken")).args(["audit", "verify"]).arg(dir).arg("--key").arg(key).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

/// Every tampering case is detected by `norrsken audit verify`, which names the first bad
/// record and exits non-zero; an untouched log verifies.
#[test]
fn verify_detects_every_kind_of_tampering() {
    norrsken_common::tls::install_crypto_provider();
    let tmp = TempDir::new("tamper");
    let (original, key) = write_log(tmp.path(), "log", 40, 2_000);
    let files = lines_of(&original);
    assert!(files.len() >= 3, "small rotation makes several files ({})", files.len());
    let (ok, out) = cli_verify(&original, &key);
    assert!(ok, "an untouched log verifies: {out}");
    assert!(out.starts_with("OK: "), "{out}");

    type Tamper = Box<dyn Fn(&mut Vec<(PathBuf, Vec<String>)>)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "an edited byte",
            Box::new(|f| {
                let l = &mut f[1].1[2];
                *l = l.replacen("\"duration_ms\":", "\"duration_ms\":9", 1);
            }),
            "prev_hash does not match",
        ),
        ("a deleted record", Box::new(|f| {
            f[1].1.remove(1);
        }), "a record is missing"),
        (
            "an inserted record",
            Box::new(|f| {
                let copy = f[1].1[1].clone();
                f[1].1.insert(2, copy);
            }),
            "repeated or out of order",
        ),
        ("reordered records", Box::new(|f| f[1].1.swap(1, 2)), "reordered"),
        (
            "a truncated tail",
            Box::new(|f| {
                let last = f.len() - 1;
                let n = f[last].1.len();
                f[last].1.truncate(n.saturating_sub(2));
            }),
            "cut",
        ),
        (
            "a deleted last file",
            Box::new(|f| {
                let (path, _) = f.pop().unwrap();
                std::fs::remove_file(path).unwrap();
            }),
            "cut short",
        ),
        (
            "an edited record just before a seal",
            Box::new(|f| {
                let last = f.len() - 1;
                let n = f[last].1.len();
                let l = &mut f[last].1[n - 2];
                *l = l.replacen("analyst", "analysT", 1);
            }),
            "prev_hash does not match",
        ),
        (
            "a forged signature",
            Box::new(|f| {
                let last = f.len() - 1;
                let n = f[last].1.len();
                let l = &mut f[last].1[n - 1];
                let at = l.find("\"signature\":\"").unwrap() + 14;
                let c = if &l[at..at + 1] == "A" { "B" } else { "A" };
                l.replace_range(at..at + 1, c);
            }),
            "signature does not verify",
        ),
    ];
    for (name, tamper, expected) in cases {
        let dir = tmp.path().join(name.replace(' ', "-"));
        copy_dir(&original, &dir);
        let mut f = lines_of(&dir);
        tamper(&mut f);
        save(&f);
        let v = review::verify(&review::expand(&[dir.clone()]).unwrap(), Some(&read_public_key(&key).unwrap()), false).unwrap();
        let p = v.problem.unwrap_or_else(|| panic!("{name}: not detected"));
        assert!(p.message.contains(expected), "{name}: {}", p.message);
        let (ok, out) = cli_verify(&dir, &key);
        assert!(!ok, "{name}: the CLI must exit non-zero");
        assert!(out.contains("INVALID: ") && out.contains(".jsonl:"), "{name}: {out}");
    }

    // A replaced log: a whole new chain, valid in itself, signed with another key.
    let (forged, _other_key) = write_log(tmp.path(), "forged", 40, 2_000);
    let (ok, out) = cli_verify(&forged, &key);
    assert!(!ok && out.contains("another key"), "{out}");
    // A replaced log with a valid chain and no seals at all.
    let unsigned = tmp.path().join("unsigned");
    std::fs::create_dir_all(&unsigned).unwrap();
    let mut prev = norrsken_common::audit::GENESIS.to_string();
    let mut text = String::new();
    for seq in 0..5u64 {
        let r = AuditRecord {
            seq,
            time: "2026-11-23T10:00:00.000Z".into(),
            node: "agent-25".into(),
            event: AuditEvent { kind: "query".into(), outcome: "ok".into(), ..Default::default() },
            sealed_records: None,
            r#final: None,
            next_file: None,
            public_key: None,
            signature: None,
            prev_hash: prev.clone(),
        };
        let line = serde_json::to_string(&r).unwrap();
        prev = norrsken_common::audit::line_hash(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(unsigned.join("audit-000000-20261123.jsonl"), text).unwrap();
    let (ok, out) = cli_verify(&unsigned, &key);
    assert!(!ok && out.contains("does not begin with a genesis record"), "{out}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the real `norrsken-agent` binary for region 22 with its config in `run`.
pub fn spawn_agent(run: &Path, port: u16, failpoint: Option<&str>) -> std::process::Child {
    spawn_agent_with(run, port, failpoint, &[], None)
}

/// The same, with extra environment and standard error to a file.
pub fn spawn_agent_with(run: &Path, port: u16, failpoint: Option<&str>, env: &[(&str, &str)], stderr: Option<&Path>) -> std::process::Child {
    let f = federation();
    let mut config = norrsken::local::agent_config("22", &region_dir("vasternorrland"), &f.federation.dir, &format!("127.0.0.1:{port}"));
    config.audit = audit_config(run, "agent-22");
    let path = run.join("agent.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_norrsken-agent"));
    cmd.arg("--config").arg(&path).env("NORRSKEN_LOG", "warn").stdout(Stdio::null());
    match stderr {
        Some(f) => cmd.stderr(std::fs::File::create(f).unwrap()),
        None => cmd.stderr(Stdio::null()),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(fp) = failpoint {
        cmd.env("NORRSKEN_FAILPOINT", fp);
    }
    let child = cmd.spawn().expect("spawn norrsken-agent");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("norrsken-agent did not start");
}

fn agent_records(run: &Path) -> Vec<AuditRecord> {
    review::records(&review::expand(&[run.join("audit").join("agent-22")]).unwrap()).unwrap()
}

/// A node killed right after it logged and before it answered loses no record, and the
/// restarted node continues the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_after_logging_loses_no_record() {
    let f = federation();
    let run = TempDir::new("crash");
    let port = free_port();
    let mut child = off_runtime(|| spawn_agent(run.path(), port, Some("after-audit")));
    let coordinator = crate::federation::coordinator_with(format!("127.0.0.1:{port}").parse().unwrap(), 5_000).await;
    let url = format!("https://{}", coordinator.server.addr);
    let mut client = client_as(&url, &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let q1 = norrsken_model::query::IndicatorQuery { query_id: "crash-1".into(), ..query("stroke_admissions", &["sex"], "2024") };
    let (schema, _) = fetch(&mut client, q1.encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.partial"], "true", "the killed agent did not answer");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the agent died at the failpoint");
    let records = agent_records(run.path());
    let last = records.last().unwrap();
    assert_eq!((last.event.kind.as_str(), last.event.query_id.as_deref()), ("query", Some("crash-1")), "the record was written before the crash");
    assert_eq!(last.event.outcome, "ok");

    // Restart: the chain continues and the next query is answered and logged (once the
    // coordinator's probe found the region back).
    let mut child = off_runtime(|| spawn_agent(run.path(), port, None));
    let t0 = std::time::Instant::now();
    while coordinator.node.service.circuits.refuses("22", t0).is_some() {
        assert!(t0.elapsed() < Duration::from_secs(5), "the region's circuit closes within seconds of its return");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q2 = norrsken_model::query::IndicatorQuery { query_id: "crash-2".into(), ..q1.clone() };
    let (schema, _) = fetch(&mut client, q2.encode_ticket(None)).await.unwrap();
    assert_eq!(schema.metadata()["norrsken.partial"], "false");
    // A clean stop seals the log.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    let files = review::expand(&[run.path().join("audit").join("agent-22")]).unwrap();
    let key = read_public_key(&norrsken_common::audit::public_path(&audit_config(run.path(), "agent-22").signing_key)).unwrap();
    let v = review::verify(&files, Some(&key), false).unwrap();
    assert!(v.ok(), "{:?}", v.problem);
    assert!(v.ends_final);
    let ids: Vec<String> = agent_records(run.path()).iter().filter_map(|r| r.event.query_id.clone()).collect();
    assert_eq!(ids, ["crash-1", "crash-2"]);
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
}

/// Unmounts a scratch filesystem when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "this test mounts a small tmpfs to make the audit folder full and read-only; it needs root (CAP_SYS_ADMIN), as in CI"
        );
        Mount(path.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Makes a folder immutable (chattr +i) until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let st = Command::new("chattr").arg("+i").arg(path).status();
        assert!(st.is_ok_and(|s| s.success()), "this test makes the audit folder immutable with chattr; it needs root on ext4, as in CI");
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A full or read-only audit folder: the agent refuses with a clear error and answers
/// nothing unaudited; with space again it answers and its log still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_refuses_queries() {
    let f = federation();
    let tmp = TempDir::new("full-audit");
    let mnt = Mount::tmpfs(&tmp.path().join("mnt"), "256k");
    let mut config = norrsken::local::agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    // A new file for every record, so each write needs fresh space on the small filesystem.
    config.audit = AuditConfig { rotate_bytes: 1, ..AuditConfig::in_dir(&mnt.0.join("audit"), &tmp.path().join("agent.key")) };
    let node = norrsken_agent::server::build_node(config.clone()).await.unwrap();
    let coordinator_pem = std::fs::read_to_string(f.certs.join("coordinator.pem")).unwrap();
    let caller = Caller { identity: Some(identity_of(&pem_to_der(&coordinator_pem).unwrap()).unwrap()), addr: None, traceparent: None, deadline: None };
    let ticket = query("stroke_admissions", &["sex"], "2024").encode_ticket(Some(&crate::attacks::relay()));
    assert!(envelope::query(&node, &caller, &ticket).await.is_ok());

    // Full.
    let filler = mnt.0.join("filler");
    let mut blob = std::fs::File::create(&filler).unwrap();
    while std::io::Write::write_all(&mut blob, &[0u8; 4096]).is_ok() {}
    drop(blob);
    match envelope::query(&node, &caller, &ticket).await {
        Err(NodeError::AuditUnavailable(m)) => assert!(m.contains("No space left"), "{m}"),
        Err(e) => panic!("expected an audit error, got {e}"),
        Ok(_) => panic!("answered without an audit record"),
    }
    let status = envelope::query(&node, &caller, &ticket).await.err().unwrap().to_status();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("audit log unavailable, nothing answered"), "{}", status.message());
    std::fs::remove_file(&filler).unwrap();
    assert!(envelope::query(&node, &caller, &ticket).await.is_ok(), "answers again once there is space");

    node.base.audit.seal(true).unwrap();
    let files = review::expand(&[config.audit.dir.clone()]).unwrap();
    let v = review::verify(&files, Some(&node.base.audit.public_key()), false).unwrap();
    assert!(v.ok(), "failed writes left the chain whole: {:?}", v.problem);
    let answered = review::records(&files).unwrap().iter().filter(|r| r.event.kind == "query").count();
    assert_eq!(answered, 2, "exactly the two answered queries are on record");
    drop(node);
    // Read-only: an immutable folder (even root cannot create files in it).
    drop(mnt);
    let ro_dir = tmp.path().join("readonly-audit");
    let mut ro_config = config.clone();
    ro_config.audit = AuditConfig { rotate_bytes: 1, ..AuditConfig::in_dir(&ro_dir, &tmp.path().join("agent.key")) };
    let ro_node = norrsken_agent::server::build_node(ro_config.clone()).await.unwrap();
    assert!(envelope::query(&ro_node, &caller, &ticket).await.is_ok());
    let immutable = Immutable::set(&ro_dir);
    match envelope::query(&ro_node, &caller, &ticket).await {
        Err(NodeError::AuditUnavailable(m)) => assert!(m.contains("Operation not permitted"), "{m}"),
        other => panic!("expected an audit error, got {:?}", other.map(|_| ())),
    }
    drop(immutable);
    assert!(envelope::query(&ro_node, &caller, &ticket).await.is_ok(), "answers again once the folder is writable");
}

async fn own_federation(tmp: &TempDir) -> LocalFederation {
    let dl = datalager().to_path_buf();
    let dir = tmp.path().to_path_buf();
    LocalFederation::start(&dl, &dir, &LocalOptions { perturbation: false, ..LocalOptions::default() }).await.unwrap()
}

/// Reconcile agrees on a real run, and finds an agent-only record and a coordinator record
/// whose parameters were altered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_agent_only_and_altered_records() {
    let tmp = TempDir::new("reconcile");
    let fed = own_federation(&tmp).await;
    let mut client = client_as(&fed.coordinator_url(), &fed.certs, "analyst", COORDINATOR_DNS_NAME).await;
    for (i, ind) in ["stroke_admissions", "hip_fracture_surgery_24h", "kpp_cost"].iter().enumerate() {
        let q = norrsken_model::query::IndicatorQuery { query_id: format!("rec-{i}"), ..query(ind, &["sex"], "2024") };
        fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    }
    let dir = fed.dir.clone();
    fed.stop().await.unwrap();
    let read = |node: &str| review::NodeLog::read(&review::expand(&[dir.join("audit").join(node)]).unwrap()).unwrap();
    let coordinator = read("coordinator");
    let agents: Vec<(String, review::NodeLog)> = ["22", "23", "24", "25"].iter().map(|r| (r.to_string(), read(&format!("agent-{r}")))).collect();
    assert!(reconcile(&coordinator, &agents).is_empty(), "{:?}", reconcile(&coordinator, &agents));

    // An agent-only record: a query that reached agent 24 without passing the coordinator.
    let mut tampered_agents = agents.clone();
    let mut sneaky = tampered_agents[2].1.records.iter().find(|r| r.event.kind == "query").unwrap().clone();
    sneaky.event.query_id = Some("side-door".into());
    sneaky.seq = tampered_agents[2].1.records.last().unwrap().seq + 1;
    tampered_agents[2].1.records.push(sneaky);
    tampered_agents[2].1.hashes.push("sha256:not-checked".into());
    // A coordinator record whose parameters were altered.
    let mut tampered_coordinator = coordinator.clone();
    let rec = tampered_coordinator.records.iter_mut().find(|r| r.event.query_id.as_deref() == Some("rec-1")).unwrap();
    rec.event.query.as_mut().unwrap()["period"] = serde_json::json!("2021..2025");
    let diffs = reconcile(&tampered_coordinator, &tampered_agents);
    assert!(diffs.iter().any(|d| d.query_id == "side-door" && d.region.as_deref() == Some("24") && d.problem.contains("did not pass the coordinator")), "{diffs:?}");
    let altered: Vec<_> = diffs.iter().filter(|d| d.query_id == "rec-1" && d.problem.contains("parameters differ")).collect();
    assert_eq!(altered.len(), 4, "every agent's record of rec-1 disagrees with the altered one: {diffs:?}");

    // The CLI agrees on the untouched logs.
    let out = Command::new(env!("CARGO_BIN_EXE_norrsken"))
        .args(["audit", "reconcile"])
        .arg(dir.join("audit/coordinator"))
        .args(["22", "23", "24", "25"].map(|r| dir.join(format!("audit/agent-{r}"))))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

async fn fetch_log(client: &mut arrow_flight::FlightClient, body: serde_json::Value) -> Result<Vec<Bytes>, tonic::Status> {
    use futures::TryStreamExt;
    let to_status = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => tonic::Status::unknown(other.to_string()),
    };
    let stream = client.do_action(arrow_flight::Action::new("audit-log", Bytes::from(body.to_string()))).await.map_err(to_status)?;
    stream.try_collect().await.map_err(to_status)
}

/// A region admin reads their own agent's log (through the coordinator or directly), never
/// another region's; an auditor reads the coordinator's; an analyst reads none. Refusals,
/// including a refused certificate, are themselves on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_logs_are_read_only_by_the_right_roles() {
    let tmp = TempDir::new("audit-access");
    let fed = own_federation(&tmp).await;
    let url = fed.coordinator_url();
    let certs = fed.certs.clone();
    let mut analyst = client_as(&url, &certs, "analyst", COORDINATOR_DNS_NAME).await;
    fetch(&mut analyst, query("stroke_admissions", &[], "2024").encode_ticket(None)).await.unwrap();

    let mut admin25 = client_as(&url, &certs, "region-admin-25", COORDINATOR_DNS_NAME).await;
    let chunks = fetch_log(&mut admin25, serde_json::json!({"node": "agent", "region": "25"})).await.unwrap();
    let out = tmp.path().join("fetched-25");
    let files = norrsken_common::audit::write_chunks(&out, &chunks).unwrap();
    let v = review::verify(&files, Some(&fed.agents[3].node.base.audit.public_key()), true).unwrap();
    assert!(v.ok() && v.records >= 2, "{v:?}");

    let e = fetch_log(&mut admin25, serde_json::json!({"node": "agent", "region": "24"})).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("may not read the audit log of region '24'"), "{e}");
    let e = fetch_log(&mut admin25, serde_json::json!({"node": "coordinator"})).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    for body in [serde_json::json!({"node": "coordinator"}), serde_json::json!({"node": "agent", "region": "25"})] {
        let e = fetch_log(&mut analyst, body).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    }
    let mut auditor = client_as(&url, &certs, "auditor", COORDINATOR_DNS_NAME).await;
    let chunks = fetch_log(&mut auditor, serde_json::json!({"node": "coordinator"})).await.unwrap();
    assert!(!chunks.is_empty());

    // Directly at the agents.
    let agent25 = format!("https://{}", fed.agents[3].server.addr);
    let mut direct = client_as(&agent25, &certs, "region-admin-25", &norrsken_common::pki::agent_dns_name("25")).await;
    assert!(fetch_log(&mut direct, serde_json::json!({})).await.is_ok());
    let mut other = client_as(&agent25, &certs, "region-admin-24", &norrsken_common::pki::agent_dns_name("25")).await;
    let e = fetch_log(&mut other, serde_json::json!({})).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    // A refused (expired) certificate is on record with the identity it named.
    let ca = CertificateAuthority::load(&certs.join("ca.pem"), &certs.join("ca.key")).unwrap();
    let mut spec = CertSpec::new("old", "old-analyst", false, true, 30);
    spec.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    spec.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let old = ca.issue(&spec).unwrap();
    let ca_pem = std::fs::read(certs.join("ca.pem")).unwrap();
    if let Ok(mut c) = raw_client(&url, &ca_pem, Some((old.cert_pem.as_bytes(), old.key_pem.as_bytes())), COORDINATOR_DNS_NAME).await {
        assert!(fetch(&mut c, query("stroke_admissions", &[], "2024").encode_ticket(None)).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let dir = fed.dir.clone();
    let keys = (fed.coordinator.node.base.audit.public_key(), fed.agents[3].node.base.audit.public_key());
    fed.stop().await.unwrap();
    let coordinator = review::records(&review::expand(&[dir.join("audit/coordinator")]).unwrap()).unwrap();
    let refused_access: Vec<&AuditRecord> = coordinator.iter().filter(|r| r.event.kind == "audit_access" && r.event.outcome == "refused").collect();
    assert_eq!(refused_access.len(), 4, "every refused log request is on record");
    assert!(refused_access.iter().any(|r| r.event.requester.as_ref().is_some_and(|w| w.cn == "analyst")));
    assert!(coordinator.iter().any(|r| r.event.kind == "audit_access" && r.event.outcome == "ok" && r.event.role.as_deref() == Some("auditor")));
    let tls = coordinator.iter().find(|r| r.event.kind == "tls_refused" && r.event.requester.as_ref().is_some_and(|w| w.cn == "old-analyst"));
    assert!(tls.is_some_and(|r| r.event.reason.as_deref().unwrap_or("").to_lowercase().contains("expired")), "{tls:?}");
    let agent = review::records(&review::expand(&[dir.join("audit/agent-25")]).unwrap()).unwrap();
    assert!(agent.iter().any(|r| r.event.kind == "audit_access" && r.event.outcome == "refused" && r.event.requester.as_ref().is_some_and(|w| w.cn == "region-admin-24")));
    // The coordinator and the agent records of the query share one query id and trace id.
    let q = coordinator.iter().find(|r| r.event.kind == "query").unwrap();
    let a = agent.iter().find(|r| r.event.kind == "query").unwrap();
    assert_eq!((&q.event.query_id, &q.event.trace_id), (&a.event.query_id, &a.event.trace_id));
    assert!(q.event.trace_id.is_some());
    assert_eq!(a.event.relayed_by.as_ref().map(|w| w.cn.as_str()), Some("coordinator"));
    assert_eq!(a.event.requester.as_ref().map(|w| w.cn.as_str()), Some("analyst"));
    for (node, key) in [("coordinator", keys.0), ("agent-25", keys.1)] {
        let v = review::verify(&review::expand(&[dir.join("audit").join(node)]).unwrap(), Some(&key), false).unwrap();
        assert!(v.ok() && v.ends_final, "{node}: {:?}", v.problem);
    }
}

/// Durable (fsync) and buffered appends both make a verifiable chain; the per-record cost
/// is printed (`--nocapture`) and recorded in BENCHMARKS.md.
#[test]
fn durable_and_buffered_appends_both_chain() {
    norrsken_common::tls::install_crypto_provider();
    for fsync in [true, false] {
        let d = std::env::temp_dir().join(format!("norrsken-audit-cost-{}-{fsync}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let config = AuditConfig { fsync, ..AuditConfig::in_dir(&d.join("log"), &d.join("k.pem")) };
        let log = norrsken_common::audit::AuditLog::open(&config, "coordinator").unwrap();
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            log.append_blocking(norrsken_common::audit::AuditEvent { kind: "query".into(), outcome: "ok".into(), ..Default::default() }).unwrap();
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        eprintln!("audit append with fsync={fsync}: {per:.0} µs per record");
        log.seal(true).unwrap();
        let v = review::verify(&log.files().unwrap(), Some(&log.public_key()), false).unwrap();
        assert!(v.ok(), "{:?}", v.problem);
        let _ = std::fs::remove_dir_all(&d);
    }
}
