//! The embedded demo setup: s3seal in front of a local s3s-fs store, dev certificates, and
//! client credentials kept in the data folder so they survive restarts. Every bucket has a
//! client-side encryption rule under a key generated on first start, so the first thing a
//! newcomer stores is already ciphertext in the store's folder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use s3seal::auth::{BucketPatterns, ClientIdentity, ClientKeys, Grants, SecretKey};
use s3seal::config::{AddressingStyle, Config, Server, TrailerMode, Upstream};
use s3seal::crypto::format::{Kek, KeyId};
use s3seal::cse::{EncryptionRules, Keyring, Rule, Unencrypted};
use s3seal::embedded;
use s3seal::s3::operation::Access;

use super::ServeArgs;

const REGION: &str = "us-east-1";
/// The id the demo's key is recorded under in each object's metadata.
const DEMO_KEY_ID: &str = "demo";

/// What the demo prints once it listens: the settings to paste into a shell, with the
/// address really bound (`--listen 127.0.0.1:0` lets the OS choose the port).
pub struct Banner {
    data: PathBuf,
    access_key_id: String,
    secret: String,
    ca: PathBuf,
    key: PathBuf,
}

/// Prints `banner` with the address the proxy bound.
pub fn print_banner(banner: &Banner, listen: SocketAddr) {
    println!(
        "s3seal demo: https://{listen} in front of a local demo store in {data} (not for production)\n\
         Paste into a shell:\n\n  \
         export AWS_ENDPOINT_URL=https://{listen}\n  \
         export AWS_ACCESS_KEY_ID={access_key_id}\n  \
         export AWS_SECRET_ACCESS_KEY={secret}\n  \
         export AWS_CA_BUNDLE={ca}\n  \
         export AWS_DEFAULT_REGION={REGION}\n\n\
         Then try:\n\n  \
         aws s3 mb s3://demo && echo hello > hello.txt && aws s3 cp hello.txt s3://demo/ && aws s3 cp s3://demo/hello.txt -\n\n\
         Every object is encrypted by s3seal (AES-256-GCM, client-side) before it reaches the store.\n\
         See what the store holds (ciphertext, not 'hello'):\n\n  \
         od -c {store}/demo/hello.txt | head\n\n\
         The encryption key is {key} (created on first start, mode 0600).\n\
         Losing it loses the data: every object in the store is unreadable without it.\n\n\
         Ctrl-C stops it.",
        data = banner.data.display(),
        access_key_id = banner.access_key_id,
        secret = banner.secret,
        ca = banner.ca.display(),
        store = banner.data.join("store").display(),
        key = banner.key.display(),
    );
}

pub async fn config(args: &ServeArgs) -> anyhow::Result<(Config, Banner)> {
    let data = absolute(&args.data_dir)?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let store = embedded::start_store(&data.join("store")).await?;
    let (access_key_id, secret) = client_credentials(&data.join("client-credentials"))?;
    let certs = dev_certs(&data)?;
    let key_file = data.join("demo-encryption.key");
    let kek = demo_key(&key_file)?;
    let keyring = Keyring::new(kek, Vec::new()).map_err(anyhow::Error::msg)?;
    let encryption = EncryptionRules::new([(
        "*".to_owned(),
        Some(Rule::new(keyring, Unencrypted::PassThrough)),
    )])?;

    let upstream = Upstream {
        name: "embedded".into(),
        endpoint: format!("http://{}", store.addr).parse()?,
        region: REGION.into(),
        access_key_id: store.access_key_id,
        secret_access_key: SecretKey::new(store.secret_access_key),
        addressing_style: AddressingStyle::Path,
        ca_bundle: None,
        forward_checksum_trailers: TrailerMode::Forward,
        required_for_readiness: true,
    };
    let client = ClientIdentity {
        access_key_id: access_key_id.clone(),
        secret: SecretKey::new(secret.clone()),
        upstream: "embedded".into(),
        buckets: BucketPatterns::any(),
        // The demo's one key owns the demo store: `aws s3 mb` must work.
        operations: Grants::new(Access::ALL),
    };
    let banner = Banner {
        data: data.clone(),
        access_key_id,
        secret,
        ca: certs.join("ca.pem"),
        key: key_file,
    };
    let config = Config {
        server: Server {
            listen: args.listen,
            tls_cert: certs.join("server.pem"),
            tls_key: certs.join("server-key.pem"),
            plaintext_listen: None,
            admin_listen: None,
            region: REGION.into(),
            domain: Some("s3.localhost".into()),
            legacy_bucket_names: false,
            sigv2: true,
            handshake_timeout: std::time::Duration::from_secs(10),
            header_read_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(120),
            body_timeout: std::time::Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_peer: 1024,
            max_header_bytes: 64 * 1024,
            max_connection_buffer_bytes: 4 * s3seal::auth::chunked::MAX_SIGNED_CHUNK_SIZE,
            log_format: s3seal::logging::LogFormat::Text,
            drain_timeout: std::time::Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            watch_interval: None,
        },
        upstreams: HashMap::from([("embedded".to_owned(), upstream)]),
        clients: ClientKeys::new([client]),
        buckets: s3seal::cors::BucketRules::none(),
        anonymous: s3seal::authz::AnonymousAccess::none(),
        sse: s3seal::policy::SsePolicies::default(),
        encryption,
    };
    Ok((config, banner))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_dir()?.join(p))
}

/// Reads `AKID:SECRET` from `path`, creating it (mode 0600) on first start.
fn client_credentials(path: &Path) -> anyhow::Result<(String, String)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some((ak, sk)) = text.trim().split_once(':') {
            return Ok((ak.to_owned(), sk.to_owned()));
        }
        anyhow::bail!("{} is not of the form ACCESS_KEY_ID:SECRET", path.display());
    }
    let ak = format!("S3SEAL{}", embedded::random_token(14).to_ascii_uppercase());
    let sk = embedded::random_token(40);
    write_private(path, format!("{ak}:{sk}\n").as_bytes())?;
    Ok((ak, sk))
}

/// The demo's key-encryption key from `path` (base64, as `s3seal keygen` prints it), created
/// (mode 0600) on first start.
fn demo_key(path: &Path) -> anyhow::Result<Kek> {
    if !path.exists() {
        let text = Kek::generate_base64();
        write_private(path, format!("{}\n", *text).as_bytes())?;
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Kek::from_base64(KeyId::new(DEMO_KEY_ID)?, &text)
        .with_context(|| format!("the demo key in {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// The repository's dev certificates when run from a checkout, else a set generated once
/// into the data folder.
fn dev_certs(data: &Path) -> anyhow::Result<PathBuf> {
    let repo = absolute(Path::new("certs"))?;
    if ["ca.pem", "server.pem", "server-key.pem"]
        .iter()
        .all(|f| repo.join(f).is_file())
    {
        return Ok(repo);
    }
    let dir = data.join("certs");
    if !dir.join("server.pem").is_file() {
        s3seal::certs::generate(&dir, false).context("generating development certificates")?;
    }
    Ok(dir)
}
