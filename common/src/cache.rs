//! The answer caches of the agent and the coordinator.
//!
//! An answer is a pure function of the query, the policy in force and the data: the cell
//! key method makes even the noise deterministic. So a cache key names the normalized query
//! and every version the answer depends on (data, policy, minimum cell size; at the
//! coordinator each asked agent's versions and the requester's role), and a changed
//! version is a miss by construction: nothing is invalidated by hand. Entries are bounded
//! by an estimate of their size and expire after `max_age_s`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use norrsken_model::query::ValidatedQuery;

/// `[cache]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Serve repeated questions from memory.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Upper bound of the cached answers' estimated size, in MiB.
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
    /// An entry is dropped this long after it was stored, whatever its versions.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
}

fn yes() -> bool {
    true
}
fn default_max_mb() -> u64 {
    128
}
fn default_max_age_s() -> u64 {
    24 * 3600
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { enabled: true, max_mb: default_max_mb(), max_age_s: default_max_age_s() }
    }
}

/// What an agent's answers depend on besides the question; an agent reports them (action
/// `versions`) and a coordinator keys its cache by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentVersions {
    pub data_version: String,
    pub policy_version: String,
    /// The policy answers some requesters by name (not `*`): answers may differ by requester.
    pub requesters_by_name: bool,
    /// The first and last year of the agent's data (absent from an agent that does not say):
    /// lets a door complete an open period such as SQL's `year >= 2023`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_years: Option<(i32, i32)>,
}

/// Something cached, with an estimate of its size in bytes.
pub trait Weighed {
    fn weight(&self) -> u32;
}

impl Weighed for norrsken_model::answer::RegionAnswer {
    fn weight(&self) -> u32 {
        // Labels, numbers and reasons of a cell: about 200 bytes.
        512u32.saturating_add((self.cells.len() as u32).saturating_mul(200))
    }
}

impl Weighed for norrsken_model::comparison::Comparison {
    fn weight(&self) -> u32 {
        1024u32.saturating_add((self.rows.len() as u32).saturating_mul(300))
    }
}

/// A bounded, concurrent cache of answers by key.
pub struct AnswerCache<V: Weighed + Send + Sync + 'static> {
    inner: Option<moka::sync::Cache<String, Arc<V>>>,
}

impl<V: Weighed + Send + Sync + 'static> AnswerCache<V> {
    pub fn new(settings: &CacheSettings) -> AnswerCache<V> {
        let inner = settings.enabled.then(|| {
            moka::sync::Cache::builder()
                .max_capacity(settings.max_mb.saturating_mul(1024 * 1024))
                .weigher(|k: &String, v: &Arc<V>| (k.len() as u32).saturating_add(v.weight()))
                .time_to_live(Duration::from_secs(settings.max_age_s.max(1)))
                .build()
        });
        AnswerCache { inner }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.inner.as_ref()?.get(key)
    }

    pub fn insert(&self, key: String, value: Arc<V>) {
        if let Some(c) = &self.inner {
            c.insert(key, value);
        }
    }

    /// Drops every entry (after a reload that changes what answers mean).
    pub fn clear(&self) {
        if let Some(c) = &self.inner {
            c.invalidate_all();
        }
    }

    /// Entries held (approximate: pending maintenance is run first).
    pub fn len(&self) -> u64 {
        match &self.inner {
            Some(c) => {
                c.run_pending_tasks();
                c.entry_count()
            }
            None => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The part of a cache key that names the question: the normalized query (the query id,
/// the cache option and the spelling of names and periods do not matter).
pub fn query_key(v: &ValidatedQuery) -> String {
    serde_json::to_string(&v.normalized()).unwrap_or_else(|_| format!("{:?}", v.normalized()))
}

/// Joins key parts with a separator that cannot occur in them.
pub fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    struct Blob(u32);
    impl Weighed for Blob {
        fn weight(&self) -> u32 {
            self.0
        }
    }

    fn validated(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    #[test]
    fn the_same_question_spelled_differently_has_one_key() {
        let a = validated(r#"{"query_id":"a","indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2023..2025","options":{"no_cache":true}}"#);
        let b = validated(r#"{"query_id":"b","indicator":"stroke_reperfusion","version":1,"breakdowns":["sex"],"period":"2023..2025"}"#);
        assert_eq!(query_key(&a), query_key(&b));
        let c = validated(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2024..2025"}"#);
        assert_ne!(query_key(&a), query_key(&c));
        let d = validated(r#"{"indicator":"stroke_reperfusion","breakdowns":["sex"],"period":"2023..2025","options":{"min_cell_size":10}}"#);
        assert_ne!(query_key(&a), query_key(&d));
    }

    #[test]
    fn entries_are_bounded_by_size_and_can_be_disabled() {
        let cache: AnswerCache<Blob> = AnswerCache::new(&CacheSettings { enabled: true, max_mb: 1, max_age_s: 60 });
        cache.insert("a".into(), Arc::new(Blob(10)));
        assert_eq!(cache.get("a").map(|b| b.0), Some(10));
        for i in 0..100 {
            cache.insert(format!("big{i}"), Arc::new(Blob(100_000)));
        }
        assert!(cache.len() <= 11, "{} entries of 100 kB in 1 MiB", cache.len());
        let off: AnswerCache<Blob> = AnswerCache::new(&CacheSettings { enabled: false, ..Default::default() });
        off.insert("a".into(), Arc::new(Blob(1)));
        assert!(off.get("a").is_none() && !off.enabled());
    }
}
