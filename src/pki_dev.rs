//! The development PKI (`norrsken certs dev`, `certs request`, `certs sign`): a CA and the
//! certificates a local federation needs. A tool, not part of the nodes: production
//! certificates come from the region's own CA (see certs-dev/README.md).

use std::path::{Path, PathBuf};

use norrsken_common::pki::{agent_dns_name, write_file, PkiError, COORDINATOR_DNS_NAME};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// What a certificate is for.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// File stem: `<name>.pem` and `<name>.key`.
    pub name: String,
    pub common_name: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    pub server: bool,
    pub client: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertSpec {
    /// A certificate valid from yesterday for `days` days.
    pub fn new(name: &str, common_name: &str, server: bool, client: bool, days: i64) -> CertSpec {
        let now = OffsetDateTime::now_utc();
        CertSpec {
            name: name.into(),
            common_name: common_name.into(),
            sans: Vec::new(),
            server,
            client,
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
        }
    }

    pub fn with_sans(mut self, sans: &[String]) -> CertSpec {
        self.sans = sans.to_vec();
        self
    }
}

/// A certificate authority that can issue certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl CertificateAuthority {
    /// A new self-signed CA valid for `days` days.
    pub fn generate(common_name: &str, days: i64) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Norrsken development PKI");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(days);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(CertificateAuthority { issuer: Issuer::new(params, key), cert_pem: cert.pem(), key_pem })
    }

    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name.as_str());
        dn.push(DnType::OrganizationName, "Norrsken development PKI");
        params.distinguished_name = dn;
        for san in &spec.sans {
            params.subject_alt_names.push(match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.clone().try_into().map_err(gen_err)?),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        if spec.server {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.use_authority_key_identifier_extension = true;
        // A random serial, so a CRL can name exactly this certificate.
        let serial: [u8; 16] = rand_bytes();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() })
    }

    /// Reads a CA back from its certificate and key files.
    pub fn load(cert: &Path, key: &Path) -> Result<CertificateAuthority, PkiError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| PkiError::Read { path: p.display().to_string(), reason: e.to_string() })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let keypair = KeyPair::from_pem(&key_pem).map_err(gen_err)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, keypair)
            .map_err(|e| PkiError::Parse { path: cert.display().to_string(), reason: e.to_string() })?;
        Ok(CertificateAuthority { issuer, cert_pem, key_pem })
    }

    /// Signs a certificate signing request (PEM) for `days` days, as a server and/or client
    /// certificate, keeping the request's subject and names.
    pub fn sign_request(&self, csr_pem: &str, days: i64, server: bool, client: bool) -> Result<IssuedCert, PkiError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(gen_err)?;
        let now = OffsetDateTime::now_utc();
        csr.params.not_before = now - Duration::days(1);
        csr.params.not_after = now + Duration::days(days);
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        csr.params.extended_key_usages.clear();
        if server {
            csr.params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if client {
            csr.params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        csr.params.use_authority_key_identifier_extension = true;
        csr.params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand_bytes()));
        let cert = csr.signed_by(&self.issuer).map_err(gen_err)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: String::new(), der: cert.der().to_vec() })
    }

    /// A certificate revocation list revoking the given DER certificates.
    pub fn crl(&self, revoked: &[&[u8]], number: u64) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut entries = Vec::new();
        for der in revoked {
            let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Generate(e.to_string()))?;
            entries.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(x509.raw_serial()),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(30),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: entries,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).map_err(gen_err)?.pem().map_err(gen_err)
    }
}

fn rand_bytes() -> [u8; 16] {
    let mut out = [0u8; 16];
    if rustls::crypto::ring::default_provider().secure_random.fill(&mut out).is_err() {
        // Fall back to the time; serials need uniqueness, not secrecy.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        out.copy_from_slice(&t.to_be_bytes());
    }
    out[0] &= 0x7f; // positive
    out[0] |= 0x01; // no leading zero byte
    out
}


/// Writes `<dir>/<name>.pem` and `<dir>/<name>.key` (the key readable by the owner only).
pub fn write_pair(dir: &Path, name: &str, cert: &IssuedCert) -> Result<(PathBuf, PathBuf), PkiError> {
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    write_file(&cert_path, cert.cert_pem.as_bytes(), false)?;
    write_file(&key_path, cert.key_pem.as_bytes(), true)?;
    Ok((cert_path, key_path))
}


/// Creates a private key and a certificate signing request for `common_name` with the
/// given DNS names / IP addresses, to send to the organisation's CA. Returns (csr, key) PEM.
pub fn certificate_request(common_name: &str, organisation: &str, sans: &[String]) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organisation);
    params.distinguished_name = dn;
    for san in sans {
        params.subject_alt_names.push(match san.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.clone().try_into().map_err(gen_err)?),
        });
    }
    let csr = params.serialize_request(&key).map_err(gen_err)?;
    Ok((csr.pem().map_err(gen_err)?, key.serialize_pem()))
}

/// What `norrsken certs dev` creates.
#[derive(Debug, Clone)]
pub struct DevPkiOptions {
    pub out: PathBuf,
    /// County codes of the agents.
    pub regions: Vec<String>,
    /// Extra DNS names for the coordinator's server certificate.
    pub coordinator_names: Vec<String>,
    pub days: i64,
}


/// Creates the development CA and every certificate a four-region demo needs. Returns the
/// file stems written.
pub fn create_dev_pki(o: &DevPkiOptions) -> Result<Vec<String>, PkiError> {
    let ca = CertificateAuthority::generate("Norrsken development CA", o.days + 1)?;
    write_file(&o.out.join("ca.pem"), ca.cert_pem().as_bytes(), false)?;
    write_file(&o.out.join("ca.key"), ca.key_pem().as_bytes(), true)?;
    let mut written = vec!["ca".to_string()];
    let local = |name: String| vec![name, "localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let mut coordinator_sans = local(COORDINATOR_DNS_NAME.to_string());
    coordinator_sans.extend(o.coordinator_names.iter().cloned());
    let mut specs = vec![
        // The coordinator's certificate is its server certificate towards analysts and its
        // client certificate towards the agents.
        CertSpec::new("coordinator", "coordinator", true, true, o.days).with_sans(&coordinator_sans),
        CertSpec::new("analyst", "analyst", false, true, o.days),
        CertSpec::new("auditor", "auditor", false, true, o.days),
    ];
    for r in &o.regions {
        specs.push(CertSpec::new(&format!("agent-{r}"), &format!("agent-{r}"), true, true, o.days).with_sans(&local(agent_dns_name(r))));
        specs.push(CertSpec::new(&format!("region-admin-{r}"), &format!("region-admin-{r}"), false, true, o.days));
    }
    for spec in specs {
        let cert = ca.issue(&spec)?;
        write_pair(&o.out, &spec.name, &cert)?;
        written.push(spec.name.clone());
    }
    Ok(written)
}
