//! Performance machinery that must not change answers: the coordinator's and the agents'
//! answer caches (keyed by versions, audited, invalidated by a policy or data reload or an
//! agent going away), the engine's memory limit and its concurrency limit.

use std::path::Path;
use std::time::Duration;

use arrow::datatypes::Schema;
use norrsken_agent::engine::EngineOptions;
use norrsken::audit_review as review;
use norrsken_common::audit::AuditRecord;
use norrsken_common::error::NodeError;
use norrsken_model::query::IndicatorQuery;
use norrsken::local::{agent_config, audit_config};

use crate::attacks::{exact_policy, node_with_engine, relay, validate, with};
use crate::federation::{coordinator_with, query, rows};
use crate::fixtures::{client_as, federation, fetch, region_dir, TempDir};

fn meta<'a>(schema: &'a Schema, key: &str) -> &'a str {
    schema.metadata().get(&format!("norrsken.{key}")).map(String::as_str).unwrap_or("")
}

fn region_meta(schema: &Schema, region: &str, field: &str) -> String {
    let regions: serde_json::Value = serde_json::from_str(meta(schema, "regions")).unwrap();
    regions.as_array().unwrap().iter().find(|r| r["region"] == region).map(|r| r[field].as_str().unwrap_or("").to_string()).unwrap_or_default()
}

fn records(dir: &Path) -> Vec<AuditRecord> {
    review::records(&review::expand(&[dir.to_path_buf()]).unwrap()).unwrap()
}

fn for_query<'a>(records: &'a [AuditRecord], id: &str) -> Vec<&'a AuditRecord> {
    records.iter().filter(|r| r.event.query_id.as_deref() == Some(id)).collect()
}

fn with_id(q: &IndicatorQuery, id: &str) -> IndicatorQuery {
    IndicatorQuery { query_id: id.into(), ..q.clone() }
}

/// A copy of a region's datalager in `dir`, for a test that changes its manifest.
fn copy_datalager(slug: &str, dir: &Path) -> std::path::PathBuf {
    let data = dir.join(slug);
    for table in ["persons", "contacts", "diagnoses", "procedures", "drugs", "measurements"] {
        crate::audit::copy_dir(&region_dir(slug).join(table), &data.join(table));
    }
    std::fs::copy(region_dir(slug).join("manifest.json"), data.join("manifest.json")).unwrap();
    data
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A repeated question is answered from the coordinator's cache: same rows, its own query
/// id, an audit record naming the query it was first computed for, and no agent asked.
/// `no_cache` goes past both caches. A policy reload, a data reload and an agent going
/// away each turn the next repeat into a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_cache_is_keyed_by_versions_and_audited() {
    let f = federation();
    let tmp = TempDir::new("cache");
    // Region 22's agent of its own, over a copy of its datalager and policy that the test changes.
    let data = copy_datalager("vasternorrland", tmp.path());
    let policy = tmp.path().join("policy-22.toml");
    std::fs::copy(f.federation.dir.join("policies").join("policy-22.toml"), &policy).unwrap();
    let mut config = agent_config("22", &data, &f.federation.dir, "127.0.0.1:0");
    config.policy = policy.clone();
    config.audit = audit_config(tmp.path(), "agent-22");
    let agent = norrsken_agent::server::start(config).await.unwrap();
    let coordinator = coordinator_with(agent.server.addr, 10_000).await;
    let node = coordinator.node.clone();
    eventually("the coordinator knows the agent's versions", || node.agent_versions("22").is_some()).await;
    let mut client = client_as(&format!("https://{}", coordinator.server.addr), &f.certs, "analyst", norrsken_common::pki::COORDINATOR_DNS_NAME).await;
    let q = query("stroke_admissions", &["sex"], "2021..2025");
    let ask = |id: &str| with_id(&q, id).encode_ticket(None);

    let (s1, b1) = fetch(&mut client, ask("cache-1")).await.unwrap();
    assert_eq!(meta(&s1, "cached"), "false");
    let (s2, b2) = fetch(&mut client, ask("cache-2")).await.unwrap();
    assert_eq!((meta(&s2, "cached"), meta(&s2, "query_id")), ("true", "cache-2"));
    assert_eq!(rows(&s1, &b1, &["sex"]), rows(&s2, &b2, &["sex"]), "the cached answer is the answer");
    let (s3, _) = fetch(&mut client, with(with_id(&q, "cache-3"), |o| o.no_cache = true).encode_ticket(None)).await.unwrap();
    assert_eq!(meta(&s3, "cached"), "false");

    let at_agent = records(&tmp.path().join("audit").join("agent-22"));
    assert_eq!(for_query(&at_agent, "cache-1").len(), 1);
    assert!(for_query(&at_agent, "cache-2").is_empty(), "a coordinator cache hit asks no agent");
    let third = for_query(&at_agent, "cache-3");
    assert_eq!((third.len(), third[0].event.cached_from.as_deref()), (1, None), "no_cache goes past the agent's cache too");
    let at_coordinator = records(&coordinator.node.config.audit.dir);
    let second = for_query(&at_coordinator, "cache-2");
    assert_eq!(second.len(), 1, "cached answers are audited");
    assert_eq!(second[0].event.cached_from.as_deref(), Some("cache-1"));
    let log = |dir: &Path| review::NodeLog::read(&review::expand(&[dir.to_path_buf()]).unwrap()).unwrap();
    let diffs = review::reconcile(&log(&coordinator.node.config.audit.dir), &[("22".into(), log(&tmp.path().join("audit").join("agent-22")))]);
    assert!(diffs.is_empty(), "reconcile expects no agent record for a cache hit: {diffs:?}");

    // A policy change at the agent: the next repeat is computed under the new policy.
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("version = \"dev-22", "version = \"changed-dev-22")).unwrap();
    agent.reload().unwrap();
    eventually("the coordinator sees the new policy version", || node.agent_versions("22").is_some_and(|v| v.policy_version.starts_with("changed-"))).await;
    let (s4, _) = fetch(&mut client, ask("cache-4")).await.unwrap();
    assert_eq!(meta(&s4, "cached"), "false");
    assert!(region_meta(&s4, "22", "policy_version").starts_with("changed-"));
    let (s5, _) = fetch(&mut client, ask("cache-5")).await.unwrap();
    assert_eq!(meta(&s5, "cached"), "true");

    // New data at the agent (a new manifest): the next repeat reads it.
    let manifest = data.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["data_version"] = serde_json::json!("reloaded-data-1");
    std::fs::write(&manifest, m.to_string()).unwrap();
    let reloaded = agent.reload_all().await.unwrap();
    assert!(reloaded.contains("data reloaded-data-1"), "{reloaded}");
    eventually("the coordinator sees the new data version", || node.agent_versions("22").is_some_and(|v| v.data_version == "reloaded-data-1")).await;
    let (s6, _) = fetch(&mut client, ask("cache-6")).await.unwrap();
    assert_eq!((meta(&s6, "cached"), region_meta(&s6, "22", "data_version").as_str()), ("false", "reloaded-data-1"));

    // The agent goes away: nothing involving it is served from the cache.
    agent.stop(Duration::from_secs(5)).await.unwrap();
    eventually("the coordinator forgets the stopped agent's versions", || node.agent_versions("22").is_none()).await;
    let (s7, _) = fetch(&mut client, ask("cache-7")).await.unwrap();
    assert_eq!((meta(&s7, "cached"), meta(&s7, "partial")), ("false", "true"));
    coordinator.stop(Duration::from_secs(5)).await.unwrap();
}

/// The agent's own cache: a repeat under the same data and policy is the same answer, says
/// which query it was computed for, and `no_cache` computes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_cache_returns_the_same_answer() {
    let node = node_with_engine(&region_dir("jamtland"), "23", exact_policy(), EngineOptions::default()).await;
    let q = query("hip_fracture_surgery_24h", &["sex", "age_band"], "2021..2025");
    let (first, from) = node.answer(&validate(&with_id(&q, "a-1")), Some(&relay())).await.unwrap();
    assert_eq!(from, None);
    let (second, from) = node.answer(&validate(&with_id(&q, "a-2")), Some(&relay())).await.unwrap();
    assert_eq!(from.as_deref(), Some("a-1"));
    assert_eq!((second.meta.query_id.as_str(), &second.cells), ("a-2", &first.cells));
    let (_, from) = node.answer(&validate(&with(with_id(&q, "a-3"), |o| o.no_cache = true)), Some(&relay())).await.unwrap();
    assert_eq!(from, None);
    let off = EngineOptions { cache: norrsken_common::cache::CacheSettings { enabled: false, ..Default::default() }, ..Default::default() };
    let uncached = node_with_engine(&region_dir("jamtland"), "23", exact_policy(), off).await;
    uncached.answer(&validate(&q), Some(&relay())).await.unwrap();
    let (again, from) = uncached.answer(&validate(&q), Some(&relay())).await.unwrap();
    assert_eq!((from, &again.cells), (None, &first.cells));
}

/// A query needing more memory than the engine's pool fails with ResourceExhausted naming
/// the limit, and the agent keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_memory_limit_is_refused_and_the_agent_keeps_serving() {
    let f = federation();
    let tmp = TempDir::new("memory");
    let mut config = agent_config("24", &region_dir("vasterbotten"), &f.federation.dir, "127.0.0.1:0");
    config.audit = audit_config(tmp.path(), "agent-24");
    config.engine.memory_limit_mb = 1;
    let agent = norrsken_agent::server::start(config).await.unwrap();
    let url = format!("https://{}", agent.server.addr);
    let mut client = client_as(&url, &f.certs, "coordinator", &norrsken_common::pki::agent_dns_name("24")).await;
    let big = query("kpp_cost", &["kommun", "care_type"], "2021..2025").encode_ticket(Some(&relay()));
    let status = fetch(&mut client, big.clone()).await.err().expect("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("more memory than the agent's limit"), "{}", status.message());
    // Still serving: health, and the same refusal again rather than a crash.
    let health = client.do_action(arrow_flight::Action::new("health", "")).await;
    assert!(health.is_ok(), "health after the refusal");
    let body: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(health.unwrap()).await.unwrap();
    let health: serde_json::Value = serde_json::from_slice(&body.concat()).unwrap();
    assert_eq!(health["prepared_tables"], 0, "no prepared table fits a 1 MiB pool: {health}");
    assert_eq!(fetch(&mut client, big).await.err().map(|s| s.code()), Some(tonic::Code::ResourceExhausted));
    let records = records(&tmp.path().join("audit").join("agent-24"));
    assert!(records.iter().any(|r| r.event.outcome == "error" && r.event.reason.as_deref().is_some_and(|m| m.contains("memory"))), "the refusal is audited");
    agent.stop(Duration::from_secs(5)).await.unwrap();
}

/// With one query at a time and no waiting, concurrent questions beyond the first are
/// refused as busy (ResourceExhausted), and the ones that run are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_the_concurrency_limit_are_refused_as_busy() {
    let options = EngineOptions { max_concurrent_queries: 1, queue_timeout_ms: 0, ..Default::default() };
    let node = std::sync::Arc::new(node_with_engine(&region_dir("norrbotten"), "25", exact_policy(), options).await);
    let q = with(query("kpp_cost", &["care_type", "sex"], "2021..2025"), |o| o.no_cache = true);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let node = node.clone();
            let v = validate(&q);
            tokio::spawn(async move { node.answer(&v, Some(&relay())).await.map(|_| ()) })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(NodeError::ResourceExhausted(m)) => {
                assert!(m.contains("busy"), "{m}");
                busy += 1
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} answered, {busy} busy");
}

/// Every recipe's prepared tables are built when a data version loads: in the background at
/// start, with the progress in the agent's health, and, on a reload, before the new version
/// takes over (the old one answers meanwhile). Answers are those of the recipe's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_tables_are_built_when_a_data_version_loads() {
    let f = federation();
    let tmp = TempDir::new("prepare-at-load");
    let data = copy_datalager("jamtland", tmp.path());
    let mut config = agent_config("23", &data, &f.federation.dir, "127.0.0.1:0");
    config.audit = audit_config(tmp.path(), "agent-23");
    let agent = norrsken_agent::server::start(config).await.unwrap();
    let url = format!("https://{}", agent.server.addr);
    let mut client = client_as(&url, &f.certs, "coordinator", &norrsken_common::pki::agent_dns_name("23")).await;
    async fn health(client: &mut arrow_flight::FlightClient) -> serde_json::Value {
        let body: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(client.do_action(arrow_flight::Action::new("health", "")).await.unwrap()).await.unwrap();
        serde_json::from_slice(&body.concat()).unwrap()
    }
    let mut ready = serde_json::Value::Null;
    for _ in 0..600 {
        let h = health(&mut client).await;
        if h["prepare"]["state"] == "ready" {
            ready = h;
            break;
        }
        assert!(["not_started", "building"].contains(&h["prepare"]["state"].as_str().unwrap()), "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prepare = &ready["prepare"];
    let catalog = norrsken_model::catalog::Catalog::load(None).unwrap();
    let total = prepare["total"].as_u64().unwrap();
    assert!(total as usize >= catalog.latest().len(), "every recipe in at least one perspective: {ready}");
    assert_eq!(prepare["done"], prepare["total"], "{ready}");
    assert_eq!(prepare["failed"], 0, "{ready}");
    assert_eq!(ready["prepared_tables"], prepare["built"], "the tables built are held: {ready}");
    assert!(prepare["built"].as_u64().unwrap() > 0, "{ready}");

    // Answers from the prepared tables are those of the recipe's SQL.
    let engine = agent.node.engine();
    for id in ["kpp_cost", "stroke_admissions", "diabetes_statin"] {
        let v = validate(&query(id, &["sex", "year"], "2021..2025"));
        let prepared = engine.evaluate(&v).await.unwrap();
        let sql = engine.evaluate_unprepared(&v).await.unwrap();
        assert!(crate::engine::same_cells(id, &prepared.cells, &sql.cells) > 0, "{id}");
    }

    // A reload: the new version's tables are built before it takes over.
    let manifest = data.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["data_version"] = serde_json::json!("prepared-reload-1");
    std::fs::write(&manifest, m.to_string()).unwrap();
    let reloaded = agent.reload_all().await.unwrap();
    assert!(reloaded.contains("data prepared-reload-1"), "{reloaded}");
    let after = health(&mut client).await;
    assert_eq!(after["data_version"], "prepared-reload-1");
    assert_eq!(after["prepare"]["state"], "ready", "the new version took over with its tables built: {after}");
    assert_eq!(after["prepare"]["built"], prepare["built"], "{after}");
    assert!(after["loading"].is_null(), "{after}");
    agent.stop(Duration::from_secs(5)).await.unwrap();
}
