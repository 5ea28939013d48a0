//! Certificates: reading identities out of X.509 certificates (the development PKI that
//! issues them is a tool: `norrsken::pki_dev`).
//!
//! Every connection in Norrsken is mutual TLS and an identity is a certificate: its subject
//! common name (CN) and the SHA-256 fingerprint of its DER encoding.

use std::path::Path;

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("certificate generation: {0}")]
    Generate(String),
    #[error("{path}: not a valid certificate: {reason}")]
    Parse { path: String, reason: String },
}

/// Who a certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CertIdentity {
    /// Subject common name, e.g. `analyst`.
    pub common_name: String,
    /// Full subject, e.g. `CN=analyst, O=Norrsken dev`.
    pub subject: String,
    /// `sha256:` and the hex SHA-256 of the certificate's DER bytes.
    pub fingerprint: String,
    /// Expiry as seconds since the epoch.
    pub not_after: i64,
    /// Issuer subject.
    pub issuer: String,
}

/// Reads the identity out of a DER certificate.
pub fn identity_of(der: &[u8]) -> Result<CertIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(CertIdentity {
        common_name,
        subject: cert.subject().to_string(),
        fingerprint: fingerprint(der),
        not_after: cert.validity().not_after.timestamp(),
        issuer: cert.issuer().to_string(),
    })
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The first certificate in a PEM text, as DER.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let first = rustls_pemfile::certs(&mut reader).next()?;
    first.ok().map(|c| c.to_vec())
}

pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), PkiError> {
    let err = |e: std::io::Error| PkiError::Write { path: path.display().to_string(), reason: e.to_string() };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, bytes).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    let _ = private;
    Ok(())
}

/// DNS name of an agent in the development PKI.
pub fn agent_dns_name(region: &str) -> String {
    format!("agent-{region}.norrsken.local")
}

pub const COORDINATOR_DNS_NAME: &str = "coordinator.norrsken.local";
