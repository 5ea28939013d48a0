//! Shared test fixtures: a generated datalager, made once per test run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use norrsken_synth::{generate, SynthOptions};

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("norrsken-test-{}-{name}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Scale of the shared test datalager: about 45,000 persons in four regions.
pub const TEST_SCALE: f64 = 0.05;
pub const TEST_SEED: u64 = 20_251_123;

/// The four-region datalager every test reads (generated on first use, kept for the run
/// under the system temp folder and removed at the next run's start).
pub fn datalager() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("norrsken-test-datalager-{}", std::process::id()));
        // Remove leftovers of earlier runs.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 3 * 3600);
                if name.starts_with("norrsken-test-") && old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        generate(&SynthOptions { out: dir.clone(), scale: TEST_SCALE, seed: TEST_SEED, ..Default::default() })
            .expect("generate the test datalager");
        dir
    })
}

/// The folder of one region in the shared datalager.
pub fn region_dir(slug: &str) -> PathBuf {
    datalager().join(slug)
}
