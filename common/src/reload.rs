//! Reloading certificates, CA bundles, revocation lists and policies without a restart: on
//! SIGHUP (in the server binaries) and when the files change on disk (polled).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

fn stamp(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// Polls the files' modification times and sizes every `every` and calls `on_change` when
/// any of them changed. Runs until the runtime stops.
pub fn watch_files(files: Vec<PathBuf>, every: Duration, on_change: impl Fn() + Send + Sync + 'static) {
    tokio::spawn(async move {
        let mut last = stamp(&files);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = stamp(&files);
            if now != last {
                // Let a writer finish replacing several files (certificate and key) first.
                tokio::time::sleep(Duration::from_millis(100)).await;
                last = stamp(&files);
                on_change();
            }
        }
    });
}
