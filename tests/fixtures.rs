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
    // Telemetry first, so every node of the run records into the test exporters.
    telemetry();
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

use std::collections::HashMap;
use std::sync::Mutex;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use norrsken::local::{LocalFederation, LocalOptions};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::reference::Data;

/// A federation over the shared datalager, running on its own runtime for the whole test run.
pub struct SharedFederation {
    /// Hosts the servers; kept alive for the whole run.
    #[allow(dead_code)]
    pub runtime: tokio::runtime::Runtime,
    pub federation: LocalFederation,
    pub certs: PathBuf,
}

pub fn federation() -> &'static SharedFederation {
    static FED: OnceLock<SharedFederation> = OnceLock::new();
    FED.get_or_init(|| {
        norrsken_common::tls::install_crypto_provider();
        let dl = datalager().to_path_buf();
        off_runtime(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            let dir = std::env::temp_dir().join(format!("norrsken-test-federation-{}", std::process::id()));
            // The most permissive setting: no perturbation, the floor k = 5.
            // The release ledger is off so that the numbers tests do not depend on the order in
            // which tests ask (the ledger has tests of its own).
            let options = LocalOptions { perturbation: false, ledger: false, ..LocalOptions::default() };
            let federation = runtime.block_on(LocalFederation::start(&dl, &dir, &options)).expect("start the local federation");
            let certs = federation.certs.clone();
            SharedFederation { runtime, federation, certs }
        })
    })
}

/// Runs `f` on a fresh thread (outside any async runtime), e.g. to build and block on a
/// runtime of its own from inside an async test.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("thread"))
}

/// The command-line tool run as the development analyst against the coordinator at `url`
/// (certificates in `certs`), off any async runtime.
pub fn norrsken_as_analyst(url: &str, certs: &Path, args: &[&str]) -> std::process::Output {
    off_runtime(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_norrsken"))
            .args(args)
            .env("NORRSKEN_COORDINATOR", url)
            .env("NORRSKEN_CERT", certs.join("analyst.pem"))
            .env("NORRSKEN_KEY", certs.join("analyst.key"))
            .env("NORRSKEN_CA", certs.join("ca.pem"))
            .output()
            .expect("run the norrsken command")
    })
}

/// The plain-Rust view of one region's datalager, loaded once.
pub fn data(slug: &str, code: &str) -> std::sync::Arc<Data> {
    static CACHE: OnceLock<Mutex<HashMap<String, std::sync::Arc<Data>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(d) = cache.lock().unwrap().get(slug) {
        return d.clone();
    }
    let d = std::sync::Arc::new(Data::load(&region_dir(slug), code));
    cache.lock().unwrap().insert(slug.to_string(), d.clone());
    d
}

/// A Flight client presenting `cert`/`key` (PEM bytes; none for no client certificate) and
/// trusting `ca`, to `url` expecting the server name `domain`. Built with tonic directly, so
/// tests can present certificates the CLI would refuse to send.
pub async fn raw_client(url: &str, ca: &[u8], identity: Option<(&[u8], &[u8])>, domain: &str) -> Result<FlightClient, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name(domain);
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel: Channel = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    Ok(FlightClient::new(channel))
}

/// A client with one of the development certificates.
pub async fn client_as(url: &str, certs: &Path, name: &str, domain: &str) -> FlightClient {
    let read = |f: String| std::fs::read(certs.join(f)).expect("read cert");
    raw_client(url, &read("ca.pem".into()), Some((&read(format!("{name}.pem")), &read(format!("{name}.key")))), domain)
        .await
        .expect("connect")
}

/// Runs a ticket; the error is the gRPC status (or a transport error as text).
pub async fn fetch(client: &mut FlightClient, ticket: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), tonic::Status> {
    let to_status = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => tonic::Status::unknown(other.to_string()),
    };
    let mut stream = client.do_get(Ticket::new(ticket)).await.map_err(to_status)?;
    let mut batches = Vec::new();
    while let Some(b) = stream.try_next().await.map_err(to_status)? {
        batches.push(b);
    }
    let schema = stream.schema().cloned().ok_or_else(|| tonic::Status::unknown("no schema"))?;
    Ok((schema, batches))
}

/// Spans of the whole test run (in memory) and a Prometheus endpoint for its metrics.
pub struct Telemetry {
    pub spans: opentelemetry_sdk::trace::InMemorySpanExporter,
    pub metrics_addr: String,
    #[allow(dead_code)]
    runtime: tokio::runtime::Runtime,
}

pub fn telemetry() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(|| {
        off_runtime(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let metrics_addr = format!("127.0.0.1:{port}");
            let installed = runtime.block_on(async { norrsken_common::telemetry::init_for_tests(spans.clone(), &metrics_addr) }).expect("telemetry");
            assert!(installed, "the test telemetry must be installed before any node starts");
            Telemetry { spans, metrics_addr, runtime }
        })
    })
}
