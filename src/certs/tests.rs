use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::tls;

/// Serves `config` on 127.0.0.1:0, echoing one byte per connection, until dropped.
async fn serve(config: Arc<rustls::ServerConfig>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut byte = [0u8; 1];
                    if tls.read_exact(&mut byte).await.is_ok() {
                        let _ = tls.write_all(&byte).await;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// Connects to `addr` as `name`, trusting only the CA in `ca_pem`, and round-trips a byte.
async fn connect_as(addr: SocketAddr, ca_pem: &[u8], name: &str) -> std::io::Result<()> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(tls::PROTOCOL_VERSIONS)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    stream.write_all(b"!").await?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    assert_eq!(&byte, b"!");
    Ok(())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn generated_certificates_serve_every_development_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let files = generate(&out, false).unwrap();

    let config = tls::server_config(&files.server, &files.server_key).unwrap();
    let (addr, server) = serve(config).await;
    let ca = fs::read(&files.ca).unwrap();
    // Each name is checked by the client against the certificate; the TCP connection always
    // goes to 127.0.0.1, so no resolver is involved.
    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "s3.localhost",
        "my-bucket.s3.localhost",
    ] {
        connect_as(addr, &ca, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["example.com", "a.b.s3.localhost", "127.0.0.2"] {
        assert!(connect_as(addr, &ca, name).await.is_err(), "{name}");
    }
    server.abort();
}

#[tokio::test]
async fn the_ca_cannot_vouch_for_names_outside_localhost() {
    let pem = generate_pem().unwrap();
    // Sign a certificate for a real-looking name with the CA's own key, as someone holding
    // the committed ca-key.pem could.
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::from_pem(&pem.ca_key).unwrap();
    let issuer = Issuer::new(ca_params(now, now + VALIDITY), ca_key);
    let rogue_key = KeyPair::generate().unwrap();
    let rogue = server_params(&["s3.amazonaws.com"], now - BACKDATE, now + VALIDITY)
        .unwrap()
        .signed_by(&rogue_key, &issuer)
        .unwrap();
    let config = tls::server_config_from_pem(
        format!("{}{}", rogue.pem(), pem.ca).as_bytes(),
        rogue_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let (addr, server) = serve(config).await;
    let err = connect_as(addr, pem.ca.as_bytes(), "s3.amazonaws.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NameConstraintViolation"), "{err}");
    server.abort();
}

#[test]
fn files_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), false).unwrap();
    let chain = fs::read(&files.server).unwrap();
    assert_eq!(CertificateDer::pem_slice_iter(&chain).count(), 2);
    let ca = fs::read_to_string(&files.ca).unwrap();
    assert!(String::from_utf8(chain).unwrap().ends_with(&ca));
    #[cfg(unix)]
    {
        assert_eq!(mode(&files.ca_key), 0o600);
        assert_eq!(mode(&files.server_key), 0o600);
    }
}

#[test]
fn refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate(dir.path(), false).unwrap();
    let ca = fs::read(&first.ca).unwrap();

    // One existing file is enough to refuse, and nothing is written.
    fs::remove_file(&first.ca).unwrap();
    fs::write(&first.ca, &ca).unwrap();
    fs::remove_file(&first.server).unwrap();
    let err = generate(dir.path(), false).unwrap_err();
    assert!(
        matches!(&err, CertError::Exists(p) if *p == first.ca),
        "{err:?}"
    );
    assert!(!first.server.exists());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&first.ca_key, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let second = generate(dir.path(), true).unwrap();
    assert_ne!(fs::read(&second.ca).unwrap(), ca);
    #[cfg(unix)]
    assert_eq!(mode(&second.ca_key), 0o600);
}

/// The files under `certs/` that the repository ships: they still load, and still verify
/// (which fails once they expire; regenerate them as `certs/README.md` says).
#[tokio::test]
async fn committed_development_certificates_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let config = tls::server_config(&dir.join(SERVER_FILE), &dir.join(SERVER_KEY_FILE)).unwrap();
    let (addr, server) = serve(config).await;
    let ca = fs::read(dir.join(CA_FILE)).unwrap();
    connect_as(addr, &ca, "localhost").await.unwrap();
    server.abort();
}
