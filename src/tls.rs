//! PEM files → rustls configurations, for the client-facing listener and for the upstream leg.
//!
//! Both configurations name the aws-lc-rs provider explicitly instead of relying on the process
//! default, so the result does not depend on which other crate (or test) installed a provider
//! first. [`install_crypto_provider`] still exists for libraries that only use the default.
//!
//! Errors name the file and say what is wrong with it: a TLS misconfiguration is found at
//! startup by a person reading one line, not by a client seeing a handshake failure.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// TLS 1.3 (RFC 8446) and TLS 1.2 (RFC 5246) only. Older versions lack AEAD-only cipher suites
/// and are prohibited by RFC 8996; rustls does not implement them anyway, so this list is also
/// what a test can assert.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN ids the listener offers (RFC 7301), in order of preference: hyper-util's auto server
/// serves both, and h2 multiplexes an SDK's parallel part uploads over one connection.
pub const SERVER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Where the system's trusted roots are looked for when `SSL_CERT_FILE` is not set: the
/// OpenSSL default bundle locations of Debian/Ubuntu/Arch, Fedora/RHEL, openSUSE, and
/// Alpine/macOS, in that order.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where some PEM came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemOrigin {
    File(PathBuf),
    /// PEM handed over in memory; the label says which ("certificate PEM", "key PEM").
    Memory(&'static str),
}

impl fmt::Display for PemOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemOrigin::File(path) => write!(f, "{}", path.display()),
            PemOrigin::Memory(label) => f.write_str(label),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{origin}: malformed PEM")]
    Pem {
        origin: PemOrigin,
        #[source]
        source: pem::Error,
    },
    #[error("{origin}: no CERTIFICATE block found")]
    NoCertificate { origin: PemOrigin },
    #[error(
        "{origin}: holds a private key but no certificate; are the certificate and key swapped?"
    )]
    KeyInCertificateFile { origin: PemOrigin },
    #[error(
        "{origin}: no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoPrivateKey { origin: PemOrigin },
    #[error(
        "the private key in {key} does not belong to the first certificate in {cert} \
         (the server's own certificate must come first, followed by its chain)"
    )]
    KeyMismatch {
        cert: PemOrigin,
        key: PemOrigin,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot use the certificate in {cert} with the private key in {key}")]
    Unusable {
        cert: PemOrigin,
        key: PemOrigin,
        #[source]
        source: rustls::Error,
    },
    #[error("{origin}: none of its certificates is a usable trust anchor")]
    NoUsableCa { origin: PemOrigin },
    #[error(
        "no trusted root certificates: none of {} exists; set SSL_CERT_FILE or configure a CA \
         bundle for the upstream",
        SYSTEM_CA_BUNDLES.join(", ")
    )]
    NoRoots,
}

/// Installs aws-lc-rs as the process-wide rustls provider, for code that builds rustls configs
/// through the default (`ClientConfig::builder()`). Idempotent: if a provider is already
/// installed (by an earlier call or another library) it is kept, since replacing it is not
/// possible and both are safe to use.
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race with a concurrent installer leaves a provider installed, which is
        // all this function promises.
        let _ = aws_lc_rs::default_provider().install_default();
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

// === server ===

/// The listener's configuration from a PEM certificate chain (the server's certificate first)
/// and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = read(cert_pem)?;
    let key = read(key_pem)?;
    build_server_config(
        &cert,
        &key,
        PemOrigin::File(cert_pem.to_owned()),
        PemOrigin::File(key_pem.to_owned()),
    )
}

/// When the leaf (first) certificate in `cert_pem` stops being valid, for the expiry metric
/// and readiness. `None` when the file cannot be read or parsed; [`server_config`] reports
/// why, so this does not repeat it.
pub fn leaf_not_after(cert_pem: &Path) -> Option<std::time::SystemTime> {
    let pem = std::fs::read(cert_pem).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// [`server_config`] without the disk.
pub fn server_config_from_pem(cert: &[u8], key: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    build_server_config(
        cert,
        key,
        PemOrigin::Memory("certificate PEM"),
        PemOrigin::Memory("key PEM"),
    )
}

fn build_server_config(
    cert: &[u8],
    key: &[u8],
    cert_origin: PemOrigin,
    key_origin: PemOrigin,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert, &cert_origin)?;
    if chain.is_empty() {
        return Err(if PrivateKeyDer::from_pem_slice(cert).is_ok() {
            TlsError::KeyInCertificateFile {
                origin: cert_origin,
            }
        } else {
            TlsError::NoCertificate {
                origin: cert_origin,
            }
        });
    }
    let key_der = match PrivateKeyDer::from_pem_slice(key) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => return Err(TlsError::NoPrivateKey { origin: key_origin }),
        Err(source) => {
            return Err(TlsError::Pem {
                origin: key_origin,
                source,
            })
        }
    };

    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("aws-lc-rs supports TLS 1.2 and 1.3");
    // `with_single_cert` compares the key's public half with the first certificate's SPKI
    // (rustls `CertifiedKey::from_der`), which is what catches a swapped or stale key file.
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert_origin,
                    key: key_origin,
                    source,
                }
            }
            // `rustls::Error` is non-exhaustive; every other failure (undecodable key or
            // certificate, unsupported algorithm) is reported with both files named.
            source => TlsError::Unusable {
                cert: cert_origin,
                key: key_origin,
                source,
            },
        })?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

// === client ===

/// The upstream leg's configuration: the system's trusted roots plus, optionally, a CA bundle
/// for a private S3 endpoint (`MinIO`, Ceph RGW, a test server).
///
/// The system roots come from the file named by `SSL_CERT_FILE`, as OpenSSL does, or else from
/// the first bundle of [`SYSTEM_CA_BUNDLES`] that exists. A missing system bundle is not an
/// error when `extra_ca` is given: a private endpoint needs only its own CA.
///
/// ALPN is left empty on purpose. hyper-rustls' `HttpsConnectorBuilder::with_tls_config`
/// panics if it is set and fills it in itself from `enable_http1()`/`enable_http2()`; with
/// HTTP/1.1 only it sends no ALPN, which servers take as HTTP/1.1 (RFC 7301 §3.2).
pub fn client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let system = match std::env::var_os("SSL_CERT_FILE") {
        Some(path) => Some(PathBuf::from(path)),
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file()),
    };
    client_config_with(system.as_deref(), extra_ca)
}

/// [`client_config`] with the system bundle chosen by the caller, so tests need no environment.
fn client_config_with(
    system: Option<&Path>,
    extra_ca: Option<&Path>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in system.into_iter().chain(extra_ca) {
        let origin = PemOrigin::File(path.to_owned());
        let certs = certificates(&read(path)?, &origin)?;
        // A distribution bundle may hold a certificate webpki cannot parse; skipping it is
        // what every TLS stack does. A bundle with nothing usable is a configuration error.
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::NoUsableCa { origin });
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// === PEM ===

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every CERTIFICATE block, in file order; other blocks (a key bundled in the same file) are
/// skipped, as OpenSSL does.
fn certificates(pem: &[u8], origin: &PemOrigin) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem {
            origin: origin.clone(),
            source,
        })
}

#[cfg(test)]
mod tests;
