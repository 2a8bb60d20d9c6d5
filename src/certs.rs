//! Development certificates: a private CA and a server certificate it signs.
//!
//! Two certificates rather than one self-signed: webpki (rustls, and so the Rust SDK) rejects a
//! CA certificate presented as an end-entity (`CaUsedAsEndEntity`), and a separate CA is what a
//! client trusts through `AWS_CA_BUNDLE` or boto3's `verify=`.
//!
//! The CA carries name constraints (RFC 5280 §4.2.1.10) limiting it to `localhost`, its
//! subdomains and the loopback addresses. Its key is committed under `certs/` for convenience,
//! so anyone can sign with it; the constraints make a leaked or misused dev CA unable to vouch
//! for any real host.

use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use time::{Duration, OffsetDateTime};

pub const CA_COMMON_NAME: &str = "s3seal development CA";

/// Names the server certificate is valid for: path-style on loopback, and virtual-hosted
/// style (`BUCKET.s3.localhost`) which resolves to loopback without /etc/hosts entries
/// (RFC 6761 §6.3).
pub const SERVER_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "s3.localhost",
    "*.s3.localhost",
];

/// About ten years, so the committed certificates do not expire under a developer. Browsers'
/// 398-day limit applies to publicly trusted certificates, not to a private CA.
const VALIDITY: Duration = Duration::days(3650);

/// Backdating absorbs clock skew between the machine that generates and the one that verifies.
const BACKDATE: Duration = Duration::days(1);

pub const CA_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const SERVER_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate the development certificates")]
    Generate(#[source] rcgen::Error),
    #[error("{} already exists; pass --force to replace the development certificates", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The four PEM documents, before they touch the disk.
pub struct DevCertsPem {
    pub ca: String,
    pub ca_key: String,
    /// The server certificate followed by the CA, as a listener presents it.
    pub server_chain: String,
    pub server_key: String,
}

/// Where [`generate`] wrote each file.
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub server: PathBuf,
    pub server_key: PathBuf,
}

/// Generates a fresh CA and server certificate into `dir` (created if missing). Refuses to
/// replace any of the four files unless `force`, so a typo cannot destroy a CA that clients
/// already trust. Keys are written with mode 0600.
pub fn generate(dir: &Path, force: bool) -> Result<GeneratedCerts, CertError> {
    let paths = GeneratedCerts {
        ca: dir.join(CA_FILE),
        ca_key: dir.join(CA_KEY_FILE),
        server: dir.join(SERVER_FILE),
        server_key: dir.join(SERVER_KEY_FILE),
    };
    let files = [
        (&paths.ca, false),
        (&paths.ca_key, true),
        (&paths.server, false),
        (&paths.server_key, true),
    ];
    // Checked for all four before writing any, so a refusal leaves no mixed set behind.
    if !force {
        if let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
            return Err(CertError::Exists((*existing).clone()));
        }
    }
    let pem = generate_pem()?;
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let contents = [&pem.ca, &pem.ca_key, &pem.server_chain, &pem.server_key];
    for ((path, secret), content) in files.into_iter().zip(contents) {
        write_file(path, content, secret, force).map_err(|source| CertError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(paths)
}

/// Generates the CA and the server certificate in memory (ECDSA P-256 keys, PKCS#8).
pub fn generate_pem() -> Result<DevCertsPem, CertError> {
    let now = OffsetDateTime::now_utc();
    let (not_before, not_after) = (now - BACKDATE, now + VALIDITY);

    let ca = ca_params(not_before, not_after);
    let ca_key = KeyPair::generate().map_err(CertError::Generate)?;
    let ca_pem = ca.self_signed(&ca_key).map_err(CertError::Generate)?.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let server = server_params(SERVER_NAMES, not_before, not_after)?;
    let server_key = KeyPair::generate().map_err(CertError::Generate)?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(CertError::Generate)?;

    Ok(DevCertsPem {
        server_chain: format!("{}{}", server_cert.pem(), ca_pem),
        server_key: server_key.serialize_pem(),
        ca: ca_pem,
        ca_key: ca_key_pem,
    })
}

fn ca_params(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca.distinguished_name
        .push(DnType::OrganizationName, "s3seal");
    // Path length 0: this CA signs server certificates only, never another CA.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.name_constraints = Some(NameConstraints {
        // A dNSName constraint also permits every subdomain (RFC 5280 §4.2.1.10).
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                8,
            )),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                128,
            )),
        ],
        excluded_subtrees: Vec::new(),
    });
    ca.not_before = not_before;
    ca.not_after = not_after;
    ca
}

fn server_params(
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CertError> {
    let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    let mut server = CertificateParams::new(names).map_err(CertError::Generate)?;
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "s3seal development server");
    server.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys sign; keyEncipherment is for RSA key transport only (RFC 5480 §3).
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = not_before;
    server.not_after = not_after;
    Ok(server)
}

fn write_file(path: &Path, content: &str, secret: bool, force: bool) -> io::Result<()> {
    if force {
        // Removed rather than truncated, so the new file is created with the mode below even
        // if the old one was world-readable.
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
