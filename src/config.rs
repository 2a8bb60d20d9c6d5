//! Configuration: TOML text → [`RawConfig`] (serde, unknown keys refused) → [`Config`]
//! (validated, secrets resolved, frozen). Nothing binds a port before this succeeds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::auth::chunked::MAX_SIGNED_CHUNK_SIZE;
use crate::auth::{BucketPatterns, ClientIdentity, ClientKeys, Grants, SecretKey};
use crate::authz::{Anonymous, AnonymousAccess};
use crate::cors::{self, BucketRules};
use crate::crypto::format::{Kek, KeyId};
use crate::cse::{self, EncryptionRules};
use crate::kms::{self, Kms, KmsSettings};
use crate::logging::LogFormat;
// The upstream's settings belong to `upstream`, which must not depend on `config`.
use crate::policy::{KeySource, RawSseRule, SsePolicies};
use crate::s3::operation::Access;
pub use crate::upstream::trailers::TrailerMode;
pub use crate::upstream::{AddressingStyle, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid config: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    /// Adds the line of `[[bucket]]` table `i`'s `sse` rule to an error about it.
    fn at_sse_line(self, lines: &[Option<usize>]) -> Self {
        let ConfigError::Invalid { key, reason } = self else {
            return self;
        };
        let line = key
            .strip_prefix("bucket[")
            .and_then(|rest| rest.split_once("].sse"))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| lines.get(i).copied().flatten());
        let key = match line {
            Some(n) => format!("{key} (line {n})"),
            None => key,
        };
        ConfigError::Invalid { key, reason }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).lines().count().max(1)
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

// === Raw (as written) ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<RawUpstream>,
    #[serde(default, rename = "client")]
    pub clients: Vec<RawClient>,
    /// Per-bucket settings matched by bucket glob: CORS rules (first match wins) and the SSE
    /// rule (most specific match wins).
    #[serde(default, rename = "bucket")]
    pub buckets: Vec<RawBucket>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// An optional plain-HTTP listener that answers every request with `TlsRequired`.
    pub plaintext_listen: Option<SocketAddr>,
    /// An optional plain-HTTP admin listener: `/healthz`, `/readyz`, `/metrics`. Keep it on
    /// loopback or a private interface: it is unauthenticated.
    pub admin_listen: Option<SocketAddr>,
    /// The region clients sign their requests for.
    #[serde(default = "default_region")]
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`bucket.<domain>`).
    pub domain: Option<String>,
    /// Accept legacy bucket names (upper case, `_`, up to 255 bytes). Off: S3's current
    /// naming rules, and anything else is refused with `InvalidBucketName`.
    #[serde(default)]
    pub legacy_bucket_names: bool,
    /// Accept Signature Version 2 (`Authorization: AWS ...`, and presigned URLs with
    /// `AWSAccessKeyId`/`Signature`/`Expires`), which aws cli v1 and boto3 still produce for
    /// presigned URLs. Off: refused with `400 InvalidRequest`, as S3 refuses it in regions
    /// that only take SigV4.
    #[serde(default = "default_sigv2")]
    pub sigv2: bool,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_secs: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// The longest gap between two reads of a request body.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold open; see `server::peers`.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Signed aws-chunked bytes one connection's requests may hold while their chunk
    /// signatures are pending; see `auth::BufferBudget`.
    #[serde(default = "default_max_connection_buffer_bytes")]
    pub max_connection_buffer_bytes: u64,
    /// `text` or `json`; `S3SEAL_LOG_FORMAT` overrides it. Read at start only.
    #[serde(default)]
    pub log_format: LogFormat,
    /// On SIGTERM, how long in-flight requests may take to finish before the process exits.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_secs: u64,
    /// Addresses (CIDRs) of TLS terminators allowed to send plain HTTP to the TLS port, with
    /// `X-Forwarded-Proto: https` or `Forwarded: proto=https` on every request.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// When set, the config file and the TLS certificate and key are checked this often and
    /// reloaded when their content changes, as on SIGHUP.
    pub watch_interval_secs: Option<u64>,
}

fn default_sigv2() -> bool {
    true
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_header_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    120
}
/// nginx's `client_body_timeout` default.
fn default_body_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    4096
}
/// An eighth of `max_connections`: a client address cannot hold all the slots, while a busy
/// parallel client (s5cmd runs 256 workers by default) behind one NAT address still fits.
fn default_max_connections_per_peer() -> usize {
    512
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
/// Four of the largest chunks a signed aws-chunked body may have: four uploads with the
/// largest chunks at once, or hundreds with the 64 or 128 KiB chunks SDKs send.
fn default_max_connection_buffer_bytes() -> u64 {
    4 * MAX_SIGNED_CHUNK_SIZE
}
/// Two of the largest chunks: one upload's largest chunk, and the client frame that completes
/// it, always fit.
const MIN_CONNECTION_BUFFER_BYTES: u64 = 2 * MAX_SIGNED_CHUNK_SIZE;
/// Below Kubernetes' default 30 s grace period, so the drain finishes before SIGKILL.
fn default_drain_timeout() -> u64 {
    25
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    #[serde(default)]
    pub addressing_style: AddressingStyle,
    pub ca_bundle: Option<PathBuf>,
    /// Plain `http://` endpoints are refused unless this is set: request heads (and later
    /// SSE-C keys) would cross the network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Whether the client's trailing checksum goes on to the upstream as an aws-chunked
    /// trailer: `"auto"` (learnt from the upstream's answers), `true` or `false`.
    #[serde(default)]
    pub forward_checksum_trailers: TrailerMode,
    /// Whether `/readyz` fails while this upstream is unreachable.
    #[serde(default)]
    pub readiness: Readiness,
}

/// `readiness = "required" | "ignored"` of an upstream or KMS endpoint: whether `/readyz`
/// fails while it is unreachable. An egress gateway in front of many tenants' backends
/// should not leave service because one of them is down; its state is still on `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    #[default]
    Required,
    Ignored,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub upstream: String,
    #[serde(default = "any_bucket")]
    pub buckets: Vec<String>,
    /// The classes of operations the key may use (docs/config.md, "Operation grants"); by
    /// default everything but `bucket-admin` and `create-delete-bucket`. `"all"` grants all.
    pub operations: Option<Vec<String>>,
}

fn any_bucket() -> Vec<String> {
    vec!["*".into()]
}

/// `[[bucket]]`: settings for the buckets whose name matches `pattern`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub pattern: String,
    /// S3 `CORSRule`s, first match wins (see docs/cors.md). `cors = []` turns CORS off for
    /// the pattern's buckets.
    pub cors: Option<Vec<cors::RawRule>>,
    /// The server-side encryption rule (see docs/policy.md); its place in the text names the
    /// line in errors.
    pub sse: Option<toml::Spanned<RawSseRule>>,
    /// Client-side encryption of object bodies (see docs/config.md and docs/format.md).
    pub encryption: Option<RawEncryption>,
    /// Take the CORS rules from the bucket on the backend instead of `cors` (docs/cors.md).
    pub cors_from_bucket: Option<RawCorsFromBucket>,
    /// Reads without authentication (docs/config.md, "Anonymous reads").
    pub anonymous: Option<RawAnonymous>,
}

/// `cors_from_bucket = { upstream = "...", cache_seconds = 60 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorsFromBucket {
    /// The upstream whose credentials read the rules; may be left out when there is one.
    pub upstream: Option<String>,
    /// How long rules read from the bucket are used before they are read again.
    #[serde(default = "default_cors_cache_seconds")]
    pub cache_seconds: u64,
}

fn default_cors_cache_seconds() -> u64 {
    60
}

/// The longest `cors_from_bucket.cache_seconds`: a change made on the backend directly (or
/// through another proxy) must show within a bounded time.
const MAX_CORS_CACHE_SECONDS: u64 = 3600;

/// `anonymous = { read = true, list = false, upstream = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnonymous {
    /// GetObject and HeadObject without authentication.
    #[serde(default)]
    pub read: bool,
    /// `ListObjects` and `ListObjectsV2` without authentication.
    #[serde(default)]
    pub list: bool,
    /// The upstream whose credentials serve them; may be left out when there is one.
    pub upstream: Option<String>,
}

/// `encryption = { mode = "client-side", key_id = "...", key = <secret>, ... }`, or with
/// `kms = { ... }` instead of `key_id` and `key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    pub mode: EncryptionMode,
    /// The name of the key that wraps the data keys of new objects; stored with each object.
    pub key_id: Option<String>,
    /// The 256-bit key-encryption key, base64 (a secret, see above).
    pub key: Option<Secret>,
    /// A KMS key wraps the data keys of new objects instead of a local key.
    pub kms: Option<RawKms>,
    /// Keys that objects may still be wrapped with: readable, never used for writes.
    #[serde(default)]
    pub old_keys: Vec<RawOldKey>,
    /// What happens to objects without s3seal metadata (written before encryption was on).
    #[serde(default)]
    pub unencrypted_objects: cse::Unencrypted,
    /// Objects of the AWS S3 Encryption Client: read with this keyring, perhaps written.
    pub s3ec: Option<cse::S3ecSettings>,
}

/// `kms = { endpoint, key_id, region, access_key_id, secret_access_key, ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKms {
    pub endpoint: String,
    /// The KMS key id, ARN or alias (`alias/name`) that `GenerateDataKey` uses.
    pub key_id: String,
    /// KMS keys that objects may still be wrapped with (rotation to another KMS key).
    #[serde(default)]
    pub old_key_ids: Vec<String>,
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub ca_bundle: Option<PathBuf>,
    /// Plain `http://` endpoints are refused unless this is set: data keys would cross the
    /// network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// How long one data key serves new objects of a bucket, and an opened one stays cached.
    #[serde(default = "default_kms_cache_seconds")]
    pub cache_seconds: u64,
    /// How many new objects one data key may serve.
    #[serde(default = "default_kms_cache_uses")]
    pub cache_max_uses: u64,
    /// Whether `/readyz` fails while this KMS endpoint is unreachable.
    #[serde(default)]
    pub readiness: Readiness,
}

fn default_kms_cache_seconds() -> u64 {
    300
}

fn default_kms_cache_uses() -> u64 {
    100_000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionMode {
    /// The proxy encrypts bodies itself (docs/format.md); the backend only stores ciphertext.
    ClientSide,
    /// No client-side encryption: exempts the pattern's buckets from a broader rule.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOldKey {
    pub key_id: String,
    pub key: Secret,
}

/// Where a secret comes from: `"inline"`, `{ env = "NAME" }` or `{ file = "path" }`.
#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Secret {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<redacted>)"),
            Secret::Env { env } => write!(f, "Env({env})"),
            Secret::File { file } => write!(f, "File({})", file.display()),
        }
    }
}

// === Frozen ===

#[derive(Debug)]
pub struct Config {
    pub server: Server,
    pub upstreams: HashMap<String, Upstream>,
    pub clients: ClientKeys,
    pub buckets: BucketRules,
    pub anonymous: AnonymousAccess,
    pub sse: SsePolicies,
    pub encryption: EncryptionRules,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub plaintext_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub region: String,
    pub domain: Option<String>,
    pub legacy_bucket_names: bool,
    pub sigv2: bool,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub max_header_bytes: usize,
    pub max_connection_buffer_bytes: u64,
    pub log_format: LogFormat,
    pub drain_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub watch_interval: Option<Duration>,
}

/// Reads environment variables for `{ env = ... }` secrets. A trait so tests pass a map
/// instead of touching the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths in it are relative to the
    /// file's directory.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, env)
    }

    /// Parses and validates config text without touching the disk, except to read
    /// `{ file = ... }` secrets.
    pub fn from_toml(text: &str, base: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        // Validation runs on parsed values; the SSE rules' lines are taken from the text first
        // so their errors (key files, key lengths) can name them.
        let sse_lines: Vec<Option<usize>> = raw
            .buckets
            .iter()
            .map(|b| b.sse.as_ref().map(|s| line_of(text, s.span().start)))
            .collect();
        raw.validate(base, env)
            .map_err(|e| e.at_sse_line(&sse_lines))
    }
}

impl RawConfig {
    pub fn validate(self, base: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let server = self.server.validate(base)?;
        let upstreams = validate_upstreams(self.upstreams, base, env)?;
        let clients = validate_clients(self.clients, &upstreams, base, env)?;
        let mut raw_buckets = self.buckets;
        let patterns: Vec<String> = raw_buckets.iter().map(|b| b.pattern.clone()).collect();
        let sse = validate_sse(&mut raw_buckets, base, env)?;
        let encryption = validate_encryption(&mut raw_buckets, base, env)?;
        refuse_unsupported_combinations(&patterns, &sse, &encryption)?;
        let anonymous = validate_anonymous(&mut raw_buckets, &upstreams)?;
        let buckets = validate_buckets(raw_buckets, &upstreams)?;
        Ok(Config {
            server,
            upstreams,
            clients,
            buckets,
            anonymous,
            sse,
            encryption,
        })
    }
}

impl RawServer {
    fn validate(self, base: &Path) -> Result<Server, ConfigError> {
        let s = self;
        if s.region.is_empty() {
            return Err(invalid("server.region", "must not be empty"));
        }
        if s.handshake_timeout_secs == 0
            || s.header_read_timeout_secs == 0
            || s.idle_timeout_secs == 0
            || s.body_timeout_secs == 0
        {
            return Err(invalid(
                "server.*_timeout_secs",
                "timeouts must be at least 1 second",
            ));
        }
        if s.watch_interval_secs == Some(0) {
            return Err(invalid(
                "server.watch_interval_secs",
                "must be at least 1 (leave it out to not watch)",
            ));
        }
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if s.max_connections_per_peer == 0 {
            return Err(invalid(
                "server.max_connections_per_peer",
                "must be at least 1",
            ));
        }
        if s.max_header_bytes < 8 * 1024 {
            return Err(invalid("server.max_header_bytes", "must be at least 8192"));
        }
        if s.max_connection_buffer_bytes < MIN_CONNECTION_BUFFER_BYTES {
            return Err(invalid(
                "server.max_connection_buffer_bytes",
                format!("must be at least {MIN_CONNECTION_BUFFER_BYTES} (two 16 MiB chunks)"),
            ));
        }
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, cidr)| {
                parse_cidr(cidr).map_err(|e| invalid(format!("server.trusted_proxies[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Server {
            listen: s.listen,
            tls_cert: base.join(s.tls_cert),
            tls_key: base.join(s.tls_key),
            plaintext_listen: s.plaintext_listen,
            admin_listen: s.admin_listen,
            region: s.region,
            domain: s.domain.map(|d| d.to_ascii_lowercase()),
            legacy_bucket_names: s.legacy_bucket_names,
            sigv2: s.sigv2,
            handshake_timeout: Duration::from_secs(s.handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            body_timeout: Duration::from_secs(s.body_timeout_secs),
            max_connections: s.max_connections,
            max_connections_per_peer: s.max_connections_per_peer,
            max_header_bytes: s.max_header_bytes,
            max_connection_buffer_bytes: s.max_connection_buffer_bytes,
            log_format: s.log_format,
            drain_timeout: Duration::from_secs(s.drain_timeout_secs),
            trusted_proxies,
            watch_interval: s.watch_interval_secs.map(Duration::from_secs),
        })
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or a bare address (one host).
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{s}' is not an address or CIDR (e.g. 10.0.0.0/8)"))
}

fn validate_upstreams(
    raw: Vec<RawUpstream>,
    base: &Path,
    env: &dyn Env,
) -> Result<HashMap<String, Upstream>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid("upstream", "at least one [[upstream]] is required"));
    }
    let mut upstreams = HashMap::new();
    for (i, u) in raw.into_iter().enumerate() {
        let key = format!("upstream[{i}]");
        let endpoint: http::Uri = u
            .endpoint
            .parse()
            .map_err(|e| invalid(format!("{key}.endpoint"), format!("not a URL: {e}")))?;
        match endpoint.scheme_str() {
            Some("https") => {}
            Some("http") if u.allow_plaintext => {}
            Some("http") => {
                return Err(invalid(
                    format!("{key}.endpoint"),
                    "plain http:// upstream refused; set allow_plaintext = true to accept it",
                ))
            }
            _ => {
                return Err(invalid(
                    format!("{key}.endpoint"),
                    "must start with https://",
                ))
            }
        }
        if endpoint.host().is_none() || endpoint.path() != "/" || endpoint.query().is_some() {
            return Err(invalid(
                format!("{key}.endpoint"),
                "must be scheme://host[:port] with no path",
            ));
        }
        let upstream = Upstream {
            access_key_id: u
                .access_key_id
                .resolve(&format!("{key}.access_key_id"), base, env)?,
            secret_access_key: SecretKey::new(u.secret_access_key.resolve(
                &format!("{key}.secret_access_key"),
                base,
                env,
            )?),
            name: u.name.clone(),
            endpoint,
            region: u.region,
            addressing_style: u.addressing_style,
            ca_bundle: u.ca_bundle.map(|p| base.join(p)),
            forward_checksum_trailers: u.forward_checksum_trailers,
            required_for_readiness: u.readiness == Readiness::Required,
        };
        if upstreams.insert(u.name.clone(), upstream).is_some() {
            return Err(invalid(
                format!("{key}.name"),
                format!("duplicate upstream '{}'", u.name),
            ));
        }
    }
    Ok(upstreams)
}

fn validate_clients(
    raw: Vec<RawClient>,
    upstreams: &HashMap<String, Upstream>,
    base: &Path,
    env: &dyn Env,
) -> Result<ClientKeys, ConfigError> {
    if raw.is_empty() {
        return Err(invalid("client", "at least one [[client]] is required"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let key = format!("client[{i}]");
        if !upstreams.contains_key(&c.upstream) {
            return Err(invalid(
                format!("{key}.upstream"),
                format!("no [[upstream]] is named '{}'", c.upstream),
            ));
        }
        if c.access_key_id.is_empty() || !c.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                format!("{key}.access_key_id"),
                "must be non-empty ASCII letters and digits",
            ));
        }
        if !seen.insert(c.access_key_id.clone()) {
            return Err(invalid(
                format!("{key}.access_key_id"),
                format!("duplicate access key '{}'", c.access_key_id),
            ));
        }
        let buckets = BucketPatterns::new(&c.buckets)
            .map_err(|e| invalid(format!("{key}.buckets"), e.to_string()))?;
        let operations = match &c.operations {
            None => Grants::default(),
            Some(names) => grants(names).map_err(|e| invalid(format!("{key}.operations"), e))?,
        };
        let secret = c
            .secret_access_key
            .resolve(&format!("{key}.secret_access_key"), base, env)?;
        ids.push(ClientIdentity {
            access_key_id: c.access_key_id,
            secret: SecretKey::new(secret),
            upstream: c.upstream,
            buckets,
            operations,
        });
    }
    Ok(ClientKeys::new(ids))
}

/// `operations = [...]`: class names, or `"all"`.
fn grants(names: &[String]) -> Result<Grants, String> {
    let mut out = Vec::new();
    for n in names {
        if n == "all" {
            out.extend(Access::ALL);
            continue;
        }
        out.push(Access::parse(n).ok_or_else(|| {
            let known: Vec<&str> = Access::ALL.iter().map(|a| a.as_str()).collect();
            format!(
                "unknown operation class '{n}' (one of {}, or all)",
                known.join(", ")
            )
        })?);
    }
    Ok(Grants::new(out))
}

/// The upstream a `[[bucket]]` setting names (`key`), or the only one when it names none.
fn bucket_upstream(
    named: Option<String>,
    upstreams: &HashMap<String, Upstream>,
    key: &str,
) -> Result<String, ConfigError> {
    match named {
        Some(name) if upstreams.contains_key(&name) => Ok(name),
        Some(name) => Err(invalid(key, format!("no [[upstream]] is named '{name}'"))),
        None if upstreams.len() == 1 => Ok(upstreams.keys().next().cloned().unwrap_or_default()),
        None => Err(invalid(
            key,
            format!(
                "the config has {} upstreams: name the one that holds these buckets",
                upstreams.len()
            ),
        )),
    }
}

/// The `anonymous` settings of the `[[bucket]]` tables that have one; of those, the most
/// specific matching pattern decides (`AnonymousAccess`).
fn validate_anonymous(
    raw: &mut [RawBucket],
    upstreams: &HashMap<String, Upstream>,
) -> Result<AnonymousAccess, ConfigError> {
    let mut sets: Vec<(String, Anonymous)> = Vec::new();
    for (i, b) in raw.iter_mut().enumerate() {
        let Some(a) = b.anonymous.take() else {
            continue;
        };
        let key = format!("bucket[{i}].anonymous");
        if sets.iter().any(|(p, _)| *p == b.pattern) {
            return Err(invalid(
                key,
                format!("pattern \"{}\" already has an anonymous setting", b.pattern),
            ));
        }
        let upstream = bucket_upstream(a.upstream, upstreams, &format!("{key}.upstream"))?;
        sets.push((
            b.pattern.clone(),
            Anonymous {
                read: a.read,
                list: a.list,
                upstream,
            },
        ));
    }
    AnonymousAccess::new(sets).map_err(|e| invalid("bucket.pattern", e.to_string()))
}

/// Where the CORS rules of the `[[bucket]]` tables that have `cors` or `cors_from_bucket`
/// come from; of those, the most specific matching pattern decides (`BucketRules`), as for
/// `sse` and `encryption`.
fn validate_buckets(
    raw: Vec<RawBucket>,
    upstreams: &HashMap<String, Upstream>,
) -> Result<BucketRules, ConfigError> {
    let mut sets: Vec<(String, cors::Source)> = Vec::new();
    for (i, b) in raw.into_iter().enumerate() {
        let key = format!("bucket[{i}]");
        if b.pattern.is_empty() {
            return Err(invalid(format!("{key}.pattern"), "must not be empty"));
        }
        crate::rules::glob(&b.pattern)
            .map_err(|e| invalid(format!("{key}.pattern"), e.to_string()))?;
        let source = match (b.cors, b.cors_from_bucket) {
            (None, None) => continue,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{key}.cors_from_bucket"),
                    "a table takes its CORS rules either from the config (cors) or from the bucket (cors_from_bucket), not both",
                ))
            }
            (Some(rules), None) => cors::Source::Config(config_rules(&key, rules)?),
            (None, Some(from)) => {
                let at = format!("{key}.cors_from_bucket");
                if !(1..=MAX_CORS_CACHE_SECONDS).contains(&from.cache_seconds) {
                    return Err(invalid(
                        format!("{at}.cache_seconds"),
                        format!("must be between 1 and {MAX_CORS_CACHE_SECONDS}"),
                    ));
                }
                cors::Source::Bucket(cors::FromBucket {
                    upstream: bucket_upstream(from.upstream, upstreams, &format!("{at}.upstream"))?,
                    ttl: Duration::from_secs(from.cache_seconds),
                })
            }
        };
        if sets.iter().any(|(p, _)| *p == b.pattern) {
            return Err(invalid(
                format!("{key}.cors"),
                format!("pattern \"{}\" already has CORS rules", b.pattern),
            ));
        }
        sets.push((b.pattern, source));
    }
    BucketRules::from_sources(sets).map_err(|e| invalid("bucket.pattern", e.to_string()))
}

/// `[[bucket.cors]]` rules, validated.
fn config_rules(key: &str, raw: Vec<cors::RawRule>) -> Result<Vec<cors::Rule>, ConfigError> {
    if raw.len() > cors::MAX_RULES {
        return Err(invalid(
            format!("{key}.cors"),
            format!("at most {} rules", cors::MAX_RULES),
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(j, r)| {
            cors::Rule::try_from(r)
                .map_err(|e| invalid(format!("{key}.cors[{j}].{}", e.field), e.reason))
        })
        .collect()
}

/// The `encryption` rules of the `[[bucket]]` tables that have one; of those, the most
/// specific matching pattern decides (`EncryptionRules`), so a table written for another
/// setting (CORS, say) never exempts buckets from encryption: only `mode = "none"` does.
/// Key-encryption keys are read here and held zeroized.
fn validate_encryption(
    raw: &mut [RawBucket],
    base: &Path,
    env: &dyn Env,
) -> Result<EncryptionRules, ConfigError> {
    let mut rules: Vec<(String, Option<cse::Rule>)> = Vec::new();
    for (i, b) in raw.iter_mut().enumerate() {
        crate::rules::glob(&b.pattern)
            .map_err(|e| invalid(format!("bucket[{i}].pattern"), e.to_string()))?;
        let Some(encryption) = b.encryption.take() else {
            continue;
        };
        let key = format!("bucket[{i}].encryption");
        if rules.iter().any(|(p, _)| *p == b.pattern) {
            return Err(invalid(
                key,
                format!("pattern \"{}\" already has an encryption rule", b.pattern),
            ));
        }
        rules.push((b.pattern.clone(), encryption.validate(&key, base, env)?));
    }
    EncryptionRules::new(rules).map_err(|e| invalid("bucket.pattern", e.to_string()))
}

/// The largest `s3ec.max_verified_bytes`: an S3EC object that size is held in memory whole,
/// per concurrent read.
const MAX_S3EC_VERIFIED_BYTES: u64 = 1024 * 1024 * 1024;

impl RawEncryption {
    fn validate(
        self,
        key: &str,
        base: &Path,
        env: &dyn Env,
    ) -> Result<Option<cse::Rule>, ConfigError> {
        if self.mode == EncryptionMode::None {
            let extra = self.key_id.is_some()
                || self.key.is_some()
                || self.kms.is_some()
                || !self.old_keys.is_empty()
                || self.unencrypted_objects != cse::Unencrypted::default()
                || self.s3ec.is_some();
            return if extra {
                Err(invalid(key, "mode = \"none\" takes no other keys"))
            } else {
                Ok(None)
            };
        }
        let mut old = Vec::new();
        for (i, k) in self.old_keys.iter().enumerate() {
            let at = format!("{key}.old_keys[{i}]");
            old.push(kek(&k.key_id, &k.key, &format!("{at}.key"), base, env)?);
        }
        let keyring = match (self.key_id, self.key, self.kms) {
            (Some(id), Some(secret), None) => {
                let active = kek(&id, &secret, &format!("{key}.key"), base, env)?;
                cse::Keyring::new(active, old)
            }
            (None, None, Some(kms)) => {
                let kms = kms.validate(&format!("{key}.kms"), base, env)?;
                cse::Keyring::with_kms(kms, old)
            }
            _ => {
                return Err(invalid(
                    key,
                    "needs either key_id and key (a local key) or kms, not both",
                ))
            }
        };
        let keyring = keyring.map_err(|e| invalid(key, e))?;
        let rule = cse::Rule::new(keyring, self.unencrypted_objects);
        let Some(s3ec) = self.s3ec else {
            return Ok(Some(rule));
        };
        if s3ec.max_verified_bytes > MAX_S3EC_VERIFIED_BYTES {
            return Err(invalid(
                format!("{key}.s3ec.max_verified_bytes"),
                format!(
                    "at most {MAX_S3EC_VERIFIED_BYTES} bytes: the proxy holds that much per read"
                ),
            ));
        }
        Ok(Some(rule.with_s3ec(s3ec)))
    }
}

impl RawKms {
    fn validate(self, key: &str, base: &Path, env: &dyn Env) -> Result<Kms, ConfigError> {
        let endpoint: http::Uri = self
            .endpoint
            .parse()
            .map_err(|e| invalid(format!("{key}.endpoint"), format!("{e}")))?;
        match endpoint.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_plaintext => {}
            Some("http") => {
                return Err(invalid(
                    format!("{key}.endpoint"),
                    "is plain http: data keys would cross the network in clear (set allow_plaintext = true to accept this)",
                ))
            }
            _ => {
                return Err(invalid(
                    format!("{key}.endpoint"),
                    "must be an http:// or https:// URL",
                ))
            }
        }
        if endpoint.authority().is_none() {
            return Err(invalid(format!("{key}.endpoint"), "has no host"));
        }
        KeyId::new(format!("{}{}", kms::KEY_ID_PREFIX, self.key_id))
            .map_err(|e| invalid(format!("{key}.key_id"), e.to_string()))?;
        for (i, id) in self.old_key_ids.iter().enumerate() {
            KeyId::new(format!("{}{id}", kms::KEY_ID_PREFIX))
                .map_err(|e| invalid(format!("{key}.old_key_ids[{i}]"), e.to_string()))?;
        }
        if self.cache_max_uses == 0 {
            return Err(invalid(
                format!("{key}.cache_max_uses"),
                "must be at least 1",
            ));
        }
        let tls = crate::tls::client_config(self.ca_bundle.as_deref())
            .map_err(|e| invalid(format!("{key}.ca_bundle"), e.to_string()))?;
        let settings = KmsSettings {
            endpoint,
            region: self.region,
            key_id: self.key_id,
            old_key_ids: self.old_key_ids,
            access_key_id: self.access_key_id.resolve(
                &format!("{key}.access_key_id"),
                base,
                env,
            )?,
            secret_access_key: SecretKey::new(self.secret_access_key.resolve(
                &format!("{key}.secret_access_key"),
                base,
                env,
            )?),
            cache_ttl: Duration::from_secs(self.cache_seconds),
            cache_max_uses: self.cache_max_uses,
            required_for_readiness: self.readiness == Readiness::Required,
        };
        Ok(Kms::new(settings, tls))
    }
}

/// Client-side encryption and an `sse-c` rule on one bucket cannot work: the proxy's own
/// requests for client-side encryption (HEADs of the object's size and keys, seals, part
/// lists) carry no SSE-C key. Such a config is refused at load (so `s3seal check` says so)
/// rather than answering every request to those buckets with an error.
fn refuse_unsupported_combinations(
    patterns: &[String],
    sse: &SsePolicies,
    encryption: &EncryptionRules,
) -> Result<(), ConfigError> {
    for (i, pattern) in patterns.iter().enumerate() {
        for bucket in crate::rules::examples(pattern) {
            let sse_c = sse
                .for_bucket(&bucket)
                .is_some_and(|r| r.kind.kind() == crate::policy::RuleKind::SseC);
            if sse_c && encryption.for_bucket(&bucket).is_some() {
                return Err(invalid(
                    format!("bucket[{i}]"),
                    format!(
                        "bucket \"{bucket}\" (pattern \"{pattern}\") would get both client-side \
                         encryption and an sse-c rule, which cannot be combined; give it \
                         encryption = {{ mode = \"none\" }} or another sse rule"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A key-encryption key from its id and its secret (32 bytes, base64).
fn kek(
    id: &str,
    secret: &Secret,
    key: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<Kek, ConfigError> {
    let id = KeyId::new(id).map_err(|e| invalid(format!("{key}_id"), e.to_string()))?;
    if id.as_str().starts_with("kms:") {
        return Err(invalid(
            format!("{key}_id"),
            "local key ids must not start with 'kms:' (reserved for KMS keys)",
        ));
    }
    let text = Zeroizing::new(secret.resolve(key, base, env)?);
    Kek::from_base64(id, &text).map_err(|e| invalid(key, e.to_string()))
}

/// The `sse` rules of the `[[bucket]]` tables, in order. SSE-C keys are read here, from the
/// environment or a file, and held zeroized from then on.
///
/// SSE-C keys travel to the upstream in request headers. An `http://` upstream is already
/// refused unless it sets `allow_plaintext`, which is the explicit consent for them too.
fn validate_sse(
    raw: &mut [RawBucket],
    base: &Path,
    env: &dyn Env,
) -> Result<SsePolicies, ConfigError> {
    let load = |src: &KeySource| {
        let secret = match src {
            KeySource::Env { env } => Secret::Env { env: env.clone() },
            KeySource::File { file } => Secret::File { file: file.clone() },
        };
        secret.read(base, env).map(Zeroizing::new)
    };
    let mut rules: Vec<(String, crate::policy::SseRule)> = Vec::new();
    for (i, b) in raw.iter_mut().enumerate() {
        let Some(sse) = b.sse.take().map(toml::Spanned::into_inner) else {
            continue;
        };
        let key = format!("bucket[{i}].sse");
        crate::rules::glob(&b.pattern)
            .map_err(|e| invalid(format!("bucket[{i}].pattern"), e.to_string()))?;
        if rules.iter().any(|(p, _)| *p == b.pattern) {
            return Err(invalid(
                key,
                format!("pattern \"{}\" already has an sse rule", b.pattern),
            ));
        }
        let rule = sse
            .validate(load)
            .map_err(|e| invalid(format!("{key}.{}", e.field), e.reason))?;
        rules.push((b.pattern.clone(), rule));
    }
    SsePolicies::new(rules).map_err(|e| invalid("bucket.pattern", e.to_string()))
}

impl Secret {
    /// The secret for config key `key` (named in the error).
    fn resolve(&self, key: &str, base: &Path, env: &dyn Env) -> Result<String, ConfigError> {
        self.read(base, env).map_err(|e| invalid(key, e))
    }

    /// The one place a secret of the config is read, whatever it is for (credentials,
    /// key-encryption keys, SSE-C keys): a file's trailing line break is not part of it, and
    /// an empty secret is refused rather than used.
    fn read(&self, base: &Path, env: &dyn Env) -> Result<String, String> {
        let value = match self {
            Secret::Inline(v) => v.clone(),
            Secret::Env { env: name } => env
                .var(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?,
            Secret::File { file } => {
                let path = base.join(file);
                let mut text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let kept = text.trim_end_matches(['\n', '\r']).len();
                text.truncate(kept);
                text
            }
        };
        if value.is_empty() {
            return Err("is empty".to_owned());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
