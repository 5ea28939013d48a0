//! Watching an agent's data and policy versions with a long poll (`versions` action), so
//! that a reload at the agent turns the coordinator's cached answers involving it into
//! misses at once.

use std::time::Duration;

use bytes::Bytes;
use norrsken_common::cache::AgentVersions;
use serde_json::json;

use crate::agents::AgentClient;

/// How long one `versions` long poll waits at the agent.
const VERSIONS_WAIT: Duration = Duration::from_secs(25);

/// Watches one region's agent until `stopping` turns true: `agent` finds its current
/// connection, `set` records what it reports (none while unknown).
pub fn spawn(
    region: String,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    agent: impl Fn(&str) -> Option<AgentClient> + Send + Sync + 'static,
    set: impl Fn(&str, Option<AgentVersions>) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        let mut known: Option<AgentVersions> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            if *stopping.borrow() {
                break;
            }
            let client = agent(&region);
            let poll = async {
                let client = client.ok_or_else(|| format!("region {region} is no longer configured"))?;
                let wait = if known.is_some() { VERSIONS_WAIT } else { Duration::ZERO };
                let body = Bytes::from(json!({"known": known, "wait_ms": wait.as_millis() as u64}).to_string());
                let chunks = client.action_all("versions", body, wait + Duration::from_secs(5)).await?;
                let first = chunks.first().ok_or("an empty versions answer")?;
                serde_json::from_slice::<AgentVersions>(first).map_err(|e| format!("versions answer: {e}"))
            };
            let result = tokio::select! {
                r = poll => r,
                _ = stopping.changed() => break,
            };
            match result {
                Ok(v) => {
                    if known.as_ref() != Some(&v) {
                        tracing::debug!(region = %region, data_version = %v.data_version, policy_version = %v.policy_version, "agent versions");
                    }
                    set(&region, Some(v.clone()));
                    known = Some(v);
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    // Unknown versions: answers involving this agent are not served from the cache.
                    set(&region, None);
                    known = None;
                    tracing::debug!(region = %region, error = %e, "agent versions unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopping.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
}
