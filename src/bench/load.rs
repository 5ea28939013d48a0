//! Throughput: many analysts' scripts asking at once, each on its own mutual-TLS
//! connection, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats::{ms, Latency};
use crate::client::{fetch_with, Connection};

/// What one load level measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub clients: usize,
    /// `cached` or `uncached`.
    pub mode: String,
    pub seconds: f64,
    pub queries: usize,
    pub errors: usize,
    pub per_second: f64,
    pub latency: Option<Latency>,
    /// The first error's message, if any.
    pub first_error: Option<String>,
}

/// Runs `clients` concurrent clients for `duration`; each asks the tickets in turn
/// (starting at a different one), waiting for each answer before the next question.
/// Connecting counts as part of the run; a failed connection counts as one error.
pub async fn run(connection: &Connection, tickets: Arc<Vec<Vec<u8>>>, clients: usize, duration: Duration, mode: &str) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for worker in 0..clients {
        let connection = connection.clone();
        let tickets = tickets.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            let mut client = match connection.client().await {
                Ok(c) => c,
                Err(e) => return (latencies, vec![format!("{e:#}")]),
            };
            let mut i = worker;
            while Instant::now() < deadline {
                let ticket = tickets[i % tickets.len()].clone();
                i += 1;
                let t = Instant::now();
                match fetch_with(&mut client, ticket).await {
                    Ok(_) => latencies.push(ms(t.elapsed())),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors.extend(e);
            }
            Err(e) => errors.push(format!("client task failed: {e}")),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    LoadResult {
        clients,
        mode: mode.to_string(),
        seconds,
        queries: latencies.len(),
        errors: errors.len(),
        per_second: latencies.len() as f64 / seconds,
        latency: Latency::of(&latencies),
        first_error: errors.into_iter().next(),
    }
}
