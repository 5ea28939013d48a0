//! Running as a service: layered configuration with clear errors, check-config, certificate
//! rotation and revocation without a restart, start-up errors, graceful shutdown.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use norrsken::local::{agent_config, audit_config};
use norrsken_agent::config::AgentConfig;
use norrsken::pki_dev::{certificate_request, CertSpec, CertificateAuthority};
use norrsken_common::pki::{agent_dns_name, fingerprint, identity_of, COORDINATOR_DNS_NAME};
use norrsken_common::tls::TlsFiles;
use rustls::pki_types::ServerName;

use crate::audit::{free_port, spawn_agent_with};
use crate::federation::query;
use crate::fixtures::{client_as, federation, fetch, off_runtime, raw_client, region_dir, TempDir};

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn base_config(run: &Path) -> String {
    let f = federation();
    let mut c = agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    c.audit = audit_config(run, "agent-23");
    toml::to_string(&c).unwrap()
}

/// Each class of bad configuration gives its own error naming the key (or file) and the
/// problem; environment variables override the file.
#[test]
fn bad_configuration_is_named() {
    let tmp = TempDir::new("config");
    let good = base_config(tmp.path());
    let cases = [
        (good.replace("region = \"23\"", "region = \"23\"\ncolour = \"blue\""), "unknown field `colour`"),
        (good.replace("reload_poll_s = 0", "reload_poll_s = \"soon\""), "invalid type"),
        (good.replace("listen = \"127.0.0.1:0\"", "listen = 5"), "key 'listen'"),
        (good.replace("region = \"23\"", "region = \"Atlantis\""), "key 'region': 'Atlantis' is not a region"),
        (good.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""), "key 'listen'"),
        (good.replace("kind = \"parquet\"", "kind = \"oracle\""), "oracle for key `datalager.kind`"),
        (good.replace("allowed_clients = [\"coordinator\"]", "allowed_clients = []"), "key 'allowed_clients'"),
    ];
    for (text, fragment) in cases {
        let path = write_config(tmp.path(), &text);
        let e = AgentConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(e.contains(fragment), "expected '{fragment}' in: {e}");
        assert!(e.contains("agent.toml"), "the file is named: {e}");
    }
    let e = AgentConfig::load(Some(&tmp.path().join("missing.toml"))).unwrap_err().to_string();
    assert!(e.contains("missing.toml") && e.contains("not found"), "{e}");

    // Environment overrides (NORRSKEN_AGENT_*, __ between nested keys).
    let path = write_config(tmp.path(), &good);
    std::env::set_var("NORRSKEN_AGENT_ENGINE__TARGET_PARTITIONS", "3");
    let c = AgentConfig::load(Some(&path));
    std::env::remove_var("NORRSKEN_AGENT_ENGINE__TARGET_PARTITIONS");
    assert_eq!(c.unwrap().engine.target_partitions, 3);
}

fn expired_cert(certs: &Path, name: &str, cn: &str, dns: &str, out: &Path) -> TlsFiles {
    let ca = CertificateAuthority::load(&certs.join("ca.pem"), &certs.join("ca.key")).unwrap();
    let mut spec = CertSpec::new(name, cn, true, true, 30).with_sans(&[dns.to_string(), "127.0.0.1".into()]);
    spec.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(60);
    spec.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let c = ca.issue(&spec).unwrap();
    let (cert, key) = norrsken::pki_dev::write_pair(out, name, &c).unwrap();
    TlsFiles { cert, key, ca: certs.join("ca.pem"), crls: vec![] }
}

/// A missing or expired certificate stops the start with the file named; check-config
/// reports the same and succeeds on a good configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_and_check_config() {
    let f = federation();
    let tmp = TempDir::new("startup");
    let mut c = agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    c.audit = audit_config(tmp.path(), "agent-23");
    let mut missing = c.clone();
    missing.tls.cert = tmp.path().join("nope.pem");
    let e = norrsken_agent::server::start(missing).await.err().unwrap().to_string();
    assert!(e.contains("nope.pem") && e.contains("No such file"), "{e}");
    let mut expired = c.clone();
    expired.tls = expired_cert(&f.certs, "old-agent", "agent-23", &agent_dns_name("23"), tmp.path());
    let e = norrsken_agent::server::start(expired).await.err().unwrap().to_string();
    assert!(e.contains("old-agent.pem") && e.contains("expired on"), "{e}");

    let run = |cfg: &AgentConfig| {
        let path = tmp.path().join("check.toml");
        std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_norrsken-agent")).arg("--config").arg(&path).arg("check-config").env("NORRSKEN_LOG", "error").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, out) = off_runtime(|| run(&c));
    assert!(ok, "{out}");
    for expected in ["expires in", "policy", "datalager", "region 23, years 2021..2025", "All checks passed."] {
        assert!(out.contains(expected), "expected '{expected}' in:\n{out}");
    }
    let mut bad = c.clone();
    bad.tls = expired_cert(&f.certs, "old-agent2", "agent-23", &agent_dns_name("23"), tmp.path());
    let (ok, out) = off_runtime(|| run(&bad));
    assert!(!ok && out.contains("expired on"), "{out}");
}

/// The server certificate an agent presents to a new connection.
async fn presented_cert(addr: std::net::SocketAddr, certs: &Path, client: &str) -> Result<String, String> {
    let load = |name: &str| norrsken_common::tls::load_certs(&certs.join(name), "certificate").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in load("ca.pem") {
        roots.add(c).unwrap();
    }
    let key = norrsken_common::tls::load_key(&certs.join(format!("{client}.key"))).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(load(&format!("{client}.pem")), key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(agent_dns_name("23")).unwrap();
    let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let der = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).ok_or("no certificate")?;
    Ok(fingerprint(&der))
}

/// A certificate replaced on disk is used for new connections (picked up by the file
/// watcher), and a client certificate added to the CRL is refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_and_revocations_apply_without_restart() {
    let f = federation();
    let tmp = TempDir::new("rotation");
    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    for n in ["agent-23.pem", "agent-23.key", "ca.pem"] {
        std::fs::copy(f.certs.join(n), tls_dir.join(n)).unwrap();
    }
    let ca = CertificateAuthority::load(&f.certs.join("ca.pem"), &f.certs.join("ca.key")).unwrap();
    let crl = tls_dir.join("revoked.pem");
    std::fs::write(&crl, ca.crl(&[], 1).unwrap()).unwrap();
    let mut c = agent_config("23", &region_dir("jamtland"), &f.federation.dir, "127.0.0.1:0");
    c.audit = audit_config(tmp.path(), "agent-23");
    c.tls = TlsFiles { cert: tls_dir.join("agent-23.pem"), key: tls_dir.join("agent-23.key"), ca: tls_dir.join("ca.pem"), crls: vec![crl.clone()] };
    c.allowed_clients = vec!["coordinator".into(), "script-23".into()];
    let running = Arc::new(norrsken_agent::server::start(c).await.unwrap());
    running.watch(Duration::from_millis(200));
    let addr = running.server.addr;

    let before = presented_cert(addr, &f.certs, "coordinator").await.unwrap();
    // Rotate: a new certificate for the same names, written over the old files.
    let spec = CertSpec::new("agent-23", "agent-23", true, true, 90).with_sans(&[agent_dns_name("23"), "127.0.0.1".into(), "localhost".into()]);
    let fresh = ca.issue(&spec).unwrap();
    norrsken::pki_dev::write_pair(&tls_dir, "agent-23", &fresh).unwrap();
    let mut after = before.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = presented_cert(addr, &f.certs, "coordinator").await.unwrap();
        if after != before {
            break;
        }
    }
    assert_eq!(after, fingerprint(&fresh.der), "new connections get the rotated certificate");

    // Revoke a client certificate.
    let script = ca.issue(&CertSpec::new("script-23", "script-23", false, true, 30)).unwrap();
    let ca_pem = std::fs::read(f.certs.join("ca.pem")).unwrap();
    let url = format!("https://{addr}");
    let mut c1 = raw_client(&url, &ca_pem, Some((script.cert_pem.as_bytes(), script.key_pem.as_bytes())), &agent_dns_name("23")).await.unwrap();
    let ticket = query("stroke_admissions", &[], "2024").encode_ticket(Some(&crate::attacks::relay()));
    assert!(fetch(&mut c1, ticket.clone()).await.is_ok(), "not yet revoked");
    std::fs::write(&crl, ca.crl(&[&script.der], 2).unwrap()).unwrap();
    assert_eq!(running.reload().map(|_| ()), Ok(()));
    let refused = match raw_client(&url, &ca_pem, Some((script.cert_pem.as_bytes(), script.key_pem.as_bytes())), &agent_dns_name("23")).await {
        Err(_) => true,
        Ok(mut c) => fetch(&mut c, ticket.clone()).await.is_err(),
    };
    assert!(refused, "a revoked certificate is refused on new connections");
    let mut coordinator = client_as(&url, &f.certs, "coordinator", &agent_dns_name("23")).await;
    assert!(fetch(&mut coordinator, ticket).await.is_ok(), "other certificates still work");

    // A broken replacement is refused and the working certificate stays.
    std::fs::write(tls_dir.join("agent-23.pem"), "not a certificate").unwrap();
    assert!(running.reload().is_err());
    assert_eq!(presented_cert(addr, &f.certs, "coordinator").await.unwrap(), fingerprint(&fresh.der));
    running.stop(Duration::from_secs(5)).await.unwrap();
    let _ = COORDINATOR_DNS_NAME;
}

/// SIGTERM lets an in-flight query finish, then the agent seals its audit log and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_queries() {
    let f = federation();
    let run = TempDir::new("sigterm");
    let port = free_port();
    let run_dir = run.path().to_path_buf();
    let mut child = off_runtime(move || spawn_agent_with(&run_dir, port, None, &[], None));
    let coordinator = crate::federation::coordinator_with(format!("127.0.0.1:{port}").parse().unwrap(), 60_000).await;
    let mut client = client_as(&format!("https://{}", coordinator.server.addr), &f.certs, "analyst", COORDINATOR_DNS_NAME).await;
    let q = query("kpp_cost", &["kommun", "care_type", "age_band"], "2021..2025");
    let task = tokio::spawn(async move { fetch(&mut client, q.encode_ticket(None)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let (schema, _) = task.await.unwrap().unwrap();
    assert_eq!(schema.metadata()["norrsken.partial"], "false", "the in-flight query was answered");
    assert!(child.wait().unwrap().success());
    let files = norrsken::audit_review::expand(&[run.path().join("audit").join("agent-22")]).unwrap();
    let v = norrsken::audit_review::verify(&files, None, false).unwrap();
    assert!(v.ok() && v.ends_final, "{v:?}");
    coordinator.server.stop(Duration::from_secs(5)).await.unwrap();
}

/// One snapshot per request: with the policy reloaded again and again while queries run,
/// every answer and its audit record name the same policy version, and it is the version
/// whose minimum cell size was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_during_queries_never_splits_an_answer_from_its_record() {
    let f = federation();
    let tmp = TempDir::new("reload-snapshot");
    let mut config = agent_config("24", &region_dir("vasterbotten"), tmp.path(), "127.0.0.1:0");
    config.audit = audit_config(tmp.path(), "agent-24");
    config.engine.cache.enabled = false;
    let policy = |version: &str, k: u32| {
        format!("version = \"{version}\"\nmin_cell_size = {k}\n[[indicators]]\nid = \"*\"\n[perturbation]\nenabled = false\n[ledger]\nenabled = false\n")
    };
    std::fs::create_dir_all(config.policy.parent().unwrap()).unwrap();
    std::fs::write(&config.policy, policy("k5", 5)).unwrap();
    let node = Arc::new(norrsken_agent::server::build_node(config.clone()).await.unwrap());
    let coordinator = std::fs::read_to_string(f.certs.join("coordinator.pem")).unwrap();
    let caller = norrsken_common::service::Caller {
        identity: Some(norrsken_common::pki::identity_of(&norrsken_common::pki::pem_to_der(&coordinator).unwrap()).unwrap()),
        addr: None,
        traceparent: None,
        deadline: None,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (node, stop, path) = (node.clone(), stop.clone(), config.policy.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let (v, k) = if i % 2 == 0 { ("k5", 5) } else { ("k10", 10) };
                std::fs::write(&path, policy(v, k)).unwrap();
                node.reload_policy().unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            i
        })
    };
    let mut answers = Vec::new();
    for i in 0..40 {
        let mut q = query("stroke_admissions", &["kommun", "sex"], "2021..2025");
        q.query_id = format!("snap-{i}");
        q.options.no_cache = true;
        let ticket = q.encode_ticket(Some(&crate::attacks::relay()));
        let answer = norrsken_common::service::envelope::query(node.as_ref(), &caller, &ticket).await.unwrap();
        let a = norrsken_model::answer::RegionAnswer::from_batches(&answer.schema, &answer.batches).unwrap();
        answers.push(a.meta);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.await.unwrap();
    assert!(flips > 10, "the policy must have been reloaded during the queries ({flips})");
    let records = norrsken::audit_review::records(&norrsken_common::audit::log_files(&config.audit.dir).unwrap()).unwrap();
    let mut versions = std::collections::BTreeSet::new();
    for meta in &answers {
        let expected_k = if meta.policy_version == "k5" { 5 } else { 10 };
        assert_eq!(meta.min_cell_size, expected_k, "{}: answered under {} with k {}", meta.query_id, meta.policy_version, meta.min_cell_size);
        let record = records.iter().find(|r| r.event.query_id.as_deref() == Some(meta.query_id.as_str()) && r.event.kind == "query").unwrap();
        assert_eq!(record.event.policy_version.as_deref(), Some(meta.policy_version.as_str()), "{}: the audit record names another policy", meta.query_id);
        versions.insert(meta.policy_version.clone());
    }
    assert_eq!(versions.len(), 2, "answers under both policies: {versions:?}");
}

// The development PKI.

#[test]
fn issued_certificates_carry_their_identity() {
    let ca = CertificateAuthority::generate("test CA", 2).unwrap();
    let cert = ca.issue(&CertSpec::new("analyst", "analyst", false, true, 1)).unwrap();
    let id = identity_of(&cert.der).unwrap();
    assert_eq!(id.common_name, "analyst");
    assert!(id.subject.contains("CN=analyst"), "{}", id.subject);
    assert!(id.issuer.contains("test CA"));
    assert!(id.fingerprint.starts_with("sha256:") && id.fingerprint.len() == 71);
    let other = ca.issue(&CertSpec::new("analyst", "analyst", false, true, 1)).unwrap();
    assert_ne!(identity_of(&other.der).unwrap().fingerprint, id.fingerprint);
    assert!(ca.crl(&[&cert.der], 1).unwrap().contains("BEGIN X509 CRL"));
}

#[test]
fn a_request_signed_by_the_ca_keeps_its_names() {
    let ca = CertificateAuthority::generate("test CA", 2).unwrap();
    let (csr, key) = certificate_request("agent-25", "Region Norrbotten", &["agent.nll.example".into(), "10.0.0.5".into()]).unwrap();
    assert!(key.contains("PRIVATE KEY") && csr.contains("CERTIFICATE REQUEST"));
    let cert = ca.sign_request(&csr, 365, true, true).unwrap();
    let id = identity_of(&cert.der).unwrap();
    assert_eq!(id.common_name, "agent-25");
    let (_, x509) = x509_parser::parse_x509_certificate(&cert.der).unwrap();
    let sans = format!("{:?}", x509.subject_alternative_name().unwrap().unwrap().value.general_names);
    assert!(sans.contains("agent.nll.example") && sans.contains("10.0.0.5") || sans.contains("[10, 0, 0, 5]"), "{sans}");
}
