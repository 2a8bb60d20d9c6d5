//! The test harness: a proxy in front of a backend, and clients pointed at either.

#![allow(dead_code)] // Each test module uses a different part of the harness.

pub mod backends;
pub mod raw;
pub mod serve;
pub mod tap;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use s3seal::auth::{BucketPatterns, ClientIdentity, ClientKeys, Grants, SecretKey};
use s3seal::authz::AnonymousAccess;
use s3seal::config::{AddressingStyle, Config, Server, TrailerMode, Upstream};
use s3seal::cors::BucketRules;
use s3seal::cse::EncryptionRules;
use s3seal::policy::SsePolicies;
use s3seal::s3::operation::Access;
use s3seal::server::Running;

pub const REGION: &str = "us-east-1";
pub const CLIENT_AK: &str = "S3SEALTESTCLIENT";
pub const CLIENT_SK: &str = "test-client-secret-0123456789abcdefghij";
/// A second client key that may only use buckets named `limited-*`.
pub const LIMITED_AK: &str = "S3SEALLIMITED";
pub const LIMITED_SK: &str = "limited-secret-0123456789abcdefghijklmn";
/// A third client key that may only use buckets whose name ends in `-public`.
pub const PUBLIC_AK: &str = "S3SEALPUBLIC";
pub const PUBLIC_SK: &str = "public-secret-0123456789abcdefghijklmno";

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn ca_pem() -> PathBuf {
    repo_path("certs/ca.pem")
}

/// A rustls client configuration that trusts only the development CA.
pub fn client_tls() -> rustls::ClientConfig {
    client_tls_trusting(&std::fs::read(ca_pem()).unwrap())
}

/// A rustls client configuration that trusts only the CA certificates in `pem`.
pub fn client_tls_trusting(pem: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Where the proxy sends requests.
#[derive(Clone)]
pub struct UpstreamInfo {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// `forward_checksum_trailers`; the backends run with the default, `auto`.
    pub checksum_trailers: TrailerMode,
    /// Extra CA certificates for an `https://` upstream.
    pub ca_bundle: Option<PathBuf>,
}

impl UpstreamInfo {
    /// One of the backends started by the tests (moto, Ceph RGW).
    pub fn of(b: &backends::Backend) -> UpstreamInfo {
        UpstreamInfo {
            endpoint: b.endpoint.clone(),
            access_key: b.access_key.clone(),
            secret_key: b.secret_key.clone(),
            region: b.region.clone(),
            checksum_trailers: TrailerMode::default(),
            ca_bundle: None,
        }
    }

    /// An in-process s3s-fs store.
    pub fn of_store(store: s3seal::embedded::Store) -> UpstreamInfo {
        UpstreamInfo {
            endpoint: format!("http://{}", store.addr),
            access_key: store.access_key_id,
            secret_key: store.secret_access_key,
            region: REGION.into(),
            checksum_trailers: TrailerMode::default(),
            ca_bundle: None,
        }
    }
}

/// A running proxy in front of one upstream.
pub struct Harness {
    pub proxy: Running,
    pub upstream: UpstreamInfo,
    /// Keeps the embedded store's folder alive as long as the proxy.
    store_dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// The proxy in front of an in-process s3s-fs store (the embedded default's store).
    pub async fn s3s() -> Harness {
        Harness::s3s_with(|_| {}).await
    }

    /// [`Harness::s3s`] with adjusted server settings.
    pub async fn s3s_with(tweak: impl FnOnce(&mut Server)) -> Harness {
        let (cors, sse) = (BucketRules::none(), SsePolicies::default());
        Harness::s3s_full(cors, sse, EncryptionRules::none(), tweak).await
    }

    /// The proxy in front of a fresh in-process s3s-fs store, with every kind of rule.
    pub async fn s3s_full(
        buckets: BucketRules,
        sse: SsePolicies,
        encryption: EncryptionRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        let anonymous = AnonymousAccess::none();
        Harness::s3s_public(buckets, anonymous, sse, encryption, tweak).await
    }

    /// [`Harness::s3s_full`] with buckets open to anonymous reads.
    pub async fn s3s_public(
        buckets: BucketRules,
        anonymous: AnonymousAccess,
        sse: SsePolicies,
        encryption: EncryptionRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = s3seal::embedded::start_store(dir.path()).await.unwrap();
        let upstream = UpstreamInfo::of_store(store);
        let mut h =
            Harness::start_public(upstream, buckets, anonymous, sse, encryption, tweak).await;
        h.store_dir = Some(dir);
        h
    }

    pub async fn with_backend(b: &backends::Backend) -> Harness {
        Harness::with_backend_policies(b, SsePolicies::default()).await
    }

    /// The proxy in front of an in-process s3s-fs store, with server-side encryption rules.
    pub async fn s3s_with_policies(sse: SsePolicies) -> Harness {
        Harness::s3s_full(BucketRules::none(), sse, EncryptionRules::none(), |_| {}).await
    }

    /// [`Harness::with_backend`] with server-side encryption rules.
    pub async fn with_backend_policies(b: &backends::Backend, sse: SsePolicies) -> Harness {
        Harness::start_with_policies(UpstreamInfo::of(b), BucketRules::none(), sse, |_| {}).await
    }

    /// The proxy with server settings adjusted by `tweak` (timeouts, limits, listeners).
    pub async fn start_with(upstream: UpstreamInfo, tweak: impl FnOnce(&mut Server)) -> Harness {
        Harness::start_with_buckets(upstream, BucketRules::none(), tweak).await
    }

    /// [`Harness::start_with`] with per-bucket rules (`[[bucket]]`: CORS).
    pub async fn start_with_buckets(
        upstream: UpstreamInfo,
        buckets: BucketRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        Harness::start_with_policies(upstream, buckets, SsePolicies::default(), tweak).await
    }

    /// [`Harness::start_with_buckets`] with server-side encryption rules (`sse = { ... }`).
    pub async fn start_with_policies(
        upstream: UpstreamInfo,
        buckets: BucketRules,
        sse: SsePolicies,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        Harness::start_full(upstream, buckets, sse, EncryptionRules::none(), tweak).await
    }

    /// [`Harness::s3s`] with client-side encryption rules.
    pub async fn s3s_rules(encryption: EncryptionRules) -> Harness {
        Harness::s3s_rules_with(encryption, |_| {}).await
    }

    /// [`Harness::s3s_rules`] with the server settings changed by `tweak`.
    pub async fn s3s_rules_with(
        encryption: EncryptionRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        let (cors, sse) = (BucketRules::none(), SsePolicies::default());
        Harness::s3s_full(cors, sse, encryption, tweak).await
    }

    /// [`Harness::with_backend`] with client-side encryption rules.
    pub async fn with_backend_rules(b: &backends::Backend, encryption: EncryptionRules) -> Harness {
        Harness::start_with_rules(UpstreamInfo::of(b), encryption).await
    }

    /// The proxy with client-side encryption rules (`encryption = { ... }`).
    pub async fn start_with_rules(upstream: UpstreamInfo, encryption: EncryptionRules) -> Harness {
        let (cors, sse) = (BucketRules::none(), SsePolicies::default());
        Harness::start_full(upstream, cors, sse, encryption, |_| {}).await
    }

    /// The proxy with every kind of per-bucket rule but anonymous access.
    pub async fn start_full(
        upstream: UpstreamInfo,
        buckets: BucketRules,
        sse: SsePolicies,
        encryption: EncryptionRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        let anonymous = AnonymousAccess::none();
        Harness::start_public(upstream, buckets, anonymous, sse, encryption, tweak).await
    }

    /// The proxy with every kind of per-bucket rule (the upstream is named `test`).
    pub async fn start_public(
        upstream: UpstreamInfo,
        buckets: BucketRules,
        anonymous: AnonymousAccess,
        sse: SsePolicies,
        encryption: EncryptionRules,
        tweak: impl FnOnce(&mut Server),
    ) -> Harness {
        s3seal::tls::install_crypto_provider();
        let up = Upstream {
            name: "test".into(),
            endpoint: upstream.endpoint.parse().unwrap(),
            region: upstream.region.clone(),
            access_key_id: upstream.access_key.clone(),
            secret_access_key: SecretKey::new(upstream.secret_key.clone()),
            addressing_style: AddressingStyle::Path,
            ca_bundle: upstream.ca_bundle.clone(),
            forward_checksum_trailers: upstream.checksum_trailers,
            required_for_readiness: true,
        };
        let clients = ClientKeys::new([
            ClientIdentity {
                access_key_id: CLIENT_AK.into(),
                secret: SecretKey::new(CLIENT_SK),
                upstream: "test".into(),
                buckets: BucketPatterns::any(),
                // The tests' main key creates and deletes their buckets.
                operations: Grants::new(Access::ALL),
            },
            ClientIdentity {
                access_key_id: LIMITED_AK.into(),
                secret: SecretKey::new(LIMITED_SK),
                upstream: "test".into(),
                buckets: BucketPatterns::new(&["limited-*".into()]).unwrap(),
                operations: Grants::default(),
            },
            ClientIdentity {
                access_key_id: PUBLIC_AK.into(),
                secret: SecretKey::new(PUBLIC_SK),
                upstream: "test".into(),
                buckets: BucketPatterns::new(&["*-public".into()]).unwrap(),
                operations: Grants::default(),
            },
        ]);
        let config = Config {
            server: Server {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls_cert: repo_path("certs/server.pem"),
                tls_key: repo_path("certs/server-key.pem"),
                plaintext_listen: None,
                admin_listen: None,
                region: REGION.into(),
                domain: Some("s3.localhost".into()),
                legacy_bucket_names: false,
                sigv2: true,
                handshake_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                body_timeout: Duration::from_secs(60),
                max_connections: 256,
                max_connections_per_peer: 256,
                max_header_bytes: 64 * 1024,
                max_connection_buffer_bytes: 4 * s3seal::auth::chunked::MAX_SIGNED_CHUNK_SIZE,
                log_format: s3seal::logging::LogFormat::Text,
                drain_timeout: Duration::from_secs(10),
                trusted_proxies: Vec::new(),
                watch_interval: None,
            },
            upstreams: HashMap::from([("test".to_owned(), up)]),
            clients,
            buckets,
            anonymous,
            sse,
            encryption,
        };
        let mut config = config;
        tweak(&mut config.server);
        let proxy = s3seal::server::start(config).await.unwrap();
        Harness {
            proxy,
            upstream,
            store_dir: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.proxy.addr.port())
    }

    /// The Rust SDK, through the proxy, with the test client's key.
    pub fn sdk(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), CLIENT_AK, CLIENT_SK, REGION)
    }

    /// The Rust SDK through the proxy with any key.
    pub fn sdk_as(&self, ak: &str, sk: &str) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), ak, sk, REGION)
    }

    /// The Rust SDK straight to the backend, to see what the proxy really stored.
    pub fn direct(&self) -> aws_sdk_s3::Client {
        sdk_client(
            &self.upstream.endpoint,
            &self.upstream.access_key,
            &self.upstream.secret_key,
            &self.upstream.region,
        )
    }
}

pub fn sdk_client(endpoint: &str, ak: &str, sk: &str, region: &str) -> aws_sdk_s3::Client {
    sdk_client_trusting(endpoint, ak, sk, region, std::fs::read(ca_pem()).unwrap())
}

/// [`sdk_client`] trusting only the CA certificates in `pem`.
pub fn sdk_client_trusting(
    endpoint: &str,
    ak: &str,
    sk: &str,
    region: &str,
    pem: Vec<u8>,
) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem))
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A [`Harness::start_with`] tweak that turns on the admin listener on an ephemeral loopback
/// port; its address is `h.proxy.admin_addr`.
pub fn with_admin(s: &mut Server) {
    s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
}

/// A unique bucket name for one test.
pub fn bucket(prefix: &str) -> String {
    format!("{prefix}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{n}", t & 0xffff_ffff)
}

/// Deterministic pseudo-random bytes (xorshift), so large payloads need no RNG crate.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

// === waiting for a condition ===

/// How often [`wait_for`] looks again: short next to anything a test waits for.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some`, at most for `within`; then panics with `what()`,
/// which says what never happened (and may quote a log read at that moment).
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    within: Duration,
    what: impl FnOnce() -> String,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {}",
            what()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] with a yes/no condition.
pub async fn wait_until<F: Future<Output = bool>>(
    within: Duration,
    what: impl FnOnce() -> String,
    mut cond: impl FnMut() -> F,
) {
    wait_for(within, what, || {
        let holds = cond();
        async { holds.await.then_some(()) }
    })
    .await;
}

/// [`wait_for`] for tests without a runtime.
pub fn wait_for_blocking<T>(
    within: Duration,
    what: impl FnOnce() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {within:?} for {}",
            what()
        );
        std::thread::sleep(POLL);
    }
}
