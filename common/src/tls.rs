//! Mutual TLS for the Flight servers and clients.
//!
//! Servers accept connections themselves (rustls via tokio-rustls) instead of using tonic's
//! built-in TLS, so that they can require and verify client certificates against a CA bundle
//! and certificate revocation lists, reload them without a restart, and hand the verified
//! client identity to the request handlers (`PeerInfo` in the request extensions).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use crate::pki::{identity_of, CertIdentity};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {reason}")]
    File { what: &'static str, path: String, reason: String },
    #[error("{what} {path} expired on {when} (UTC)")]
    Expired { what: &'static str, path: String, when: String },
    #[error("{what} {path} is not valid before {when} (UTC)")]
    NotYetValid { what: &'static str, path: String, when: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Installs the one crypto provider (ring). Call first thing in every `main` and test
/// binary; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn file_err(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { what, path: path.display().to_string(), reason: reason.to_string() }
}

/// Reads every certificate in a PEM file, checking that each is currently valid.
pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(what, path, e))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(what, path, e))?;
    if certs.is_empty() {
        return Err(file_err(what, path, "holds no PEM certificate"));
    }
    for c in &certs {
        check_validity(c, path, what)?;
    }
    Ok(certs)
}

/// Errors when a certificate is expired or not yet valid.
pub fn check_validity(der: &[u8], path: &Path, what: &'static str) -> Result<(), TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| file_err(what, path, e))?;
    let now = x509_parser::time::ASN1Time::now();
    let v = x509.validity();
    if now > v.not_after {
        return Err(TlsError::Expired { what, path: path.display().to_string(), when: v.not_after.to_string() });
    }
    if now < v.not_before {
        return Err(TlsError::NotYetValid { what, path: path.display().to_string(), when: v.not_before.to_string() });
    }
    Ok(())
}

/// Reads the private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err("private key", path, e))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| file_err("private key", path, e))?
        .ok_or_else(|| file_err("private key", path, "holds no PEM private key"))
}

/// Reads CRLs from PEM files.
pub fn load_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| file_err("revocation list", path, e))?;
        for crl in rustls_pemfile::crls(&mut bytes.as_slice()) {
            out.push(crl.map_err(|e| file_err("revocation list", path, e))?);
        }
    }
    Ok(out)
}

/// The files a TLS endpoint uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// CA bundle that peers' certificates must chain to (PEM).
    pub ca: PathBuf,
    /// Certificate revocation lists (PEM).
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// Called when a client certificate is presented but refused (expired, revoked, unknown
/// CA): the identity it names and the reason. Within [`incoming`] the refusal is reported
/// with the failed handshake instead (one record naming the certificate and the source
/// address).
pub type RejectHook = Arc<dyn Fn(CertIdentity, String) + Send + Sync>;

tokio::task_local! {
    /// The certificate refused during the handshake this task runs, for its failure report.
    static REFUSED: std::cell::RefCell<Option<(CertIdentity, String)>>;
}

/// Wraps the client certificate verifier to report refused certificates.
struct ReportingVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    on_reject: RejectHook,
}

impl std::fmt::Debug for ReportingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReportingVerifier")
    }
}

impl rustls::server::danger::ClientCertVerifier for ReportingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let result = self.inner.verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result {
            if let Ok(id) = identity_of(end_entity) {
                let reason = e.to_string();
                // Inside `incoming` the failed handshake reports it, with the peer's address.
                let kept = REFUSED.try_with(|r| *r.borrow_mut() = Some((id.clone(), reason.clone()))).is_ok();
                if !kept {
                    (self.on_reject)(id, reason);
                }
            }
        }
        result
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server configuration requiring client certificates from `files.ca`, checked against
/// `files.crls`; refused certificates are reported to `on_reject`.
pub fn server_config_reporting(files: &TlsFiles, on_reject: Option<RejectHook>) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert, "certificate")?;
    let key = load_key(&files.key)?;
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.ca, "CA bundle")? {
        roots.add(ca).map_err(|e| file_err("CA bundle", &files.ca, e))?;
    }
    let crls = load_crls(&files.crls)?;
    let mut verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    if let Some(on_reject) = on_reject {
        verifier = Arc::new(ReportingVerifier { inner: verifier, on_reject });
    }
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("{}: {e}", files.key.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration requiring client certificates from `files.ca`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_reporting(files, None)
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: Option<SocketAddr>,
    /// The verified client certificate's identity.
    pub identity: Option<CertIdentity>,
}

/// A server-side TLS connection that tells tonic who the peer is.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A TLS configuration that can be swapped while the server runs (certificate rotation,
/// new CRLs); new connections use the newest configuration.
#[derive(Clone)]
pub struct ReloadableTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadableTls {
    pub fn new(config: Arc<ServerConfig>) -> ReloadableTls {
        ReloadableTls { current: Arc::new(RwLock::new(config)) }
    }
    pub fn replace(&self, config: Arc<ServerConfig>) {
        if let Ok(mut guard) = self.current.write() {
            *guard = config;
        }
    }
    pub fn get(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// What a failed handshake tells the server, for its log (and audit).
#[derive(Debug, Clone)]
pub struct HandshakeFailure {
    pub addr: SocketAddr,
    pub reason: String,
    /// The client certificate presented and refused, when there was one.
    pub identity: Option<CertIdentity>,
}

/// Accepts TCP connections and completes TLS handshakes concurrently, yielding verified
/// connections. Failed handshakes go to `on_failure` and never reach the service.
pub fn incoming(
    listener: TcpListener,
    tls: ReloadableTls,
    on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConnection, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = tx.closed() => break,
            };
            let (tcp, addr) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.get());
            let tx = tx.clone();
            let on_failure = on_failure.clone();
            tokio::spawn(async move {
                let (handshake, refused) = REFUSED
                    .scope(std::cell::RefCell::new(None), async move {
                        let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await;
                        (handshake, REFUSED.with(|r| r.borrow_mut().take()))
                    })
                    .await;
                let (identity, why) = refused.map_or((None, None), |(id, why)| (Some(id), Some(why)));
                match handshake {
                    Ok(Ok(stream)) => {
                        let identity = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| identity_of(c).ok());
                        let conn = TlsConnection { stream, info: PeerInfo { addr: Some(addr), identity } };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => on_failure(HandshakeFailure { addr, reason: why.unwrap_or_else(|| e.to_string()), identity }),
                    Err(_) => on_failure(HandshakeFailure { addr, reason: "TLS handshake timed out".into(), identity }),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A tonic client TLS configuration presenting `files.cert` and trusting `files.ca`.
pub fn client_tls(files: &TlsFiles, domain: &str) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    // Check validity first so an expired client certificate gives a clear message.
    load_certs(&files.cert, "certificate")?;
    load_certs(&files.ca, "CA bundle")?;
    let read = |p: &Path, what: &'static str| std::fs::read(p).map_err(|e| file_err(what, p, e));
    let cert = read(&files.cert, "certificate")?;
    let key = read(&files.key, "private key")?;
    let ca = read(&files.ca, "CA bundle")?;
    Ok(tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(cert, key))
        .domain_name(domain.to_string()))
}
