//! A node's Ed25519 signing key and its public key files.

use super::*;

/// Loads the node's signing key, creating it (and `<file>.pub`) when missing.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, AuditError> {
    let err = |reason: String| AuditError::Key { path: path.display().to_string(), reason };
    if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        return SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(format!("not an Ed25519 PKCS#8 PEM key: {e}")));
    }
    let mut secret = [0u8; 32];
    rustls::crypto::ring::default_provider().secure_random.fill(&mut secret).map_err(|_| err("no random source".into()))?;
    let key = SigningKey::from_bytes(&secret);
    write_key_pair(&key, path)?;
    Ok(key)
}

/// Writes a signing key (mode 0600) and its public key to `<path>.pub`.
pub fn write_key_pair(key: &SigningKey, path: &Path) -> Result<(), AuditError> {
    let err = |reason: String| AuditError::Key { path: path.display().to_string(), reason };
    let pem = key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).map_err(|e| err(e.to_string()))?;
    crate::pki::write_file(path, pem.as_bytes(), true).map_err(|e| err(e.to_string()))?;
    let public = public_key_pem(&key.verifying_key());
    crate::pki::write_file(&public_path(path), public.as_bytes(), false).map_err(|e| err(e.to_string()))?;
    Ok(())
}

pub fn public_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap_or_default()
}

/// Reads a public key file (SPKI PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let pem = std::fs::read_to_string(path).map_err(|e| AuditError::Key { path: path.display().to_string(), reason: e.to_string() })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| AuditError::Key { path: path.display().to_string(), reason: format!("not an Ed25519 public key: {e}") })
}
