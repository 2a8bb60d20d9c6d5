//! Server-side encryption policy: which SSE headers go upstream, which response headers the
//! client sees, and what the backend must answer to prove it applied the bucket's rule.
//!
//! Pure: no I/O, no tokio. [`plan`] decides for one request, [`verify_response`] checks the
//! backend's answer. The header matrix they implement is documented in `docs/policy.md`.
//!
//! References:
//! - SSE-C: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html>
//! - SSE-KMS: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html>
//! - SSE-S3: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html>

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use md5::{Digest, Md5};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{S3Code, S3Error};
use crate::rules::ByBucket;
use crate::s3::route::Operation;

// === Header names ===

pub const SSE: HeaderName = HeaderName::from_static("x-amz-server-side-encryption");
pub const SSE_KMS_KEY_ID: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption-aws-kms-key-id");
pub const SSE_CONTEXT: HeaderName = HeaderName::from_static("x-amz-server-side-encryption-context");
pub const SSE_BUCKET_KEY: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption-bucket-key-enabled");
pub const SSE_C_ALGORITHM: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption-customer-algorithm");
pub const SSE_C_KEY: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption-customer-key");
pub const SSE_C_KEY_MD5: HeaderName =
    HeaderName::from_static("x-amz-server-side-encryption-customer-key-md5");
pub const COPY_SOURCE_SSE_C_ALGORITHM: HeaderName =
    HeaderName::from_static("x-amz-copy-source-server-side-encryption-customer-algorithm");
pub const COPY_SOURCE_SSE_C_KEY: HeaderName =
    HeaderName::from_static("x-amz-copy-source-server-side-encryption-customer-key");
pub const COPY_SOURCE_SSE_C_KEY_MD5: HeaderName =
    HeaderName::from_static("x-amz-copy-source-server-side-encryption-customer-key-md5");

/// Headers that choose the encryption of a new object (SSE-S3 or SSE-KMS).
static DEST_HEADERS: [HeaderName; 4] = [SSE, SSE_KMS_KEY_ID, SSE_CONTEXT, SSE_BUCKET_KEY];
/// The SSE-C triple for the addressed object.
static CUSTOMER_HEADERS: [HeaderName; 3] = [SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5];
/// The SSE-C triple for a copy's source object.
static COPY_SOURCE_HEADERS: [HeaderName; 3] = [
    COPY_SOURCE_SSE_C_ALGORITHM,
    COPY_SOURCE_SSE_C_KEY,
    COPY_SOURCE_SSE_C_KEY_MD5,
];

/// SSE-C's only algorithm.
const AES256: &str = "AES256";
/// SSE-C keys are 256-bit.
pub const SSE_C_KEY_BYTES: usize = 32;

// === Config: raw ===

/// `sse = { ... }` in a `[[bucket]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSseRule {
    pub rule: RuleKind,
    /// What happens to SSE headers the client sends itself.
    #[serde(default)]
    pub client_headers: ClientHeaders,
    /// What a write whose response does not prove the encryption leads to.
    #[serde(default)]
    pub on_unverified: Verify,
    /// `sse-kms`: the KMS key id or ARN (aliases cannot be verified, see docs/policy.md).
    pub key_id: Option<String>,
    /// `sse-kms`: the encryption context, sent as base64 JSON.
    pub context: Option<BTreeMap<String, String>>,
    /// `sse-kms`: `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key: Option<bool>,
    /// `sse-c`: the current key.
    pub key: Option<RawCustomerKey>,
    /// `sse-c`: keys objects may still be encrypted with (rotation).
    #[serde(default)]
    pub old_keys: Vec<RawCustomerKey>,
}

/// The rules, declared weakest first: "stronger" is this order. none < sse-s3 < sse-kms <
/// sse-c: each step takes the key further from the storage service's sole control (no key; a
/// key S3 holds; a KMS key with its own access policy and audit trail; a key S3 never stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    None,
    SseS3,
    SseKms,
    SseC,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::None => "none",
            RuleKind::SseS3 => "sse-s3",
            RuleKind::SseKms => "sse-kms",
            RuleKind::SseC => "sse-c",
        }
    }
}

/// The client-header mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientHeaders {
    /// Strip the client's SSE headers and apply the rule.
    #[default]
    Override,
    /// Refuse a request whose SSE headers differ from the rule (403).
    Reject,
    /// Let a client's equal-or-stronger choice stand; apply the rule otherwise.
    Allow,
}

impl ClientHeaders {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientHeaders::Override => "override",
            ClientHeaders::Reject => "reject",
            ClientHeaders::Allow => "allow",
        }
    }
}

/// The fail-closed mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// A write without proof is an error; the object or upload is removed.
    #[default]
    Enforce,
    /// A write without proof is logged and kept (backends known not to echo SSE headers).
    Warn,
}

/// An SSE-C key: `{ id = "2026", env = "NAME" }` or `{ id = "2026", file = "path" }`, holding
/// 32 bytes in base64. Keys are never written inline in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomerKey {
    pub id: String,
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

/// Where an SSE-C key is read from: exactly one of `env` and `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env { env: String },
    File { file: PathBuf },
}

// === Config: frozen ===

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseRule {
    pub kind: Encryption,
    pub client_headers: ClientHeaders,
    pub verify: Verify,
}

/// What the rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    None,
    SseS3,
    SseKms(KmsParams),
    SseC {
        key: CustomerKey,
        old_keys: Vec<CustomerKey>,
    },
}

impl Encryption {
    pub fn kind(&self) -> RuleKind {
        match self {
            Encryption::None => RuleKind::None,
            Encryption::SseS3 => RuleKind::SseS3,
            Encryption::SseKms(_) => RuleKind::SseKms,
            Encryption::SseC { .. } => RuleKind::SseC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsParams {
    /// `None` only for a client's choice without a key id (the bucket's default key applies).
    pub key_id: Option<String>,
    /// Already in wire form: base64 of the JSON object.
    pub context: Option<String>,
    pub bucket_key: Option<bool>,
}

/// A 256-bit SSE-C key with its id. Zeroized on drop, redacted in `Debug`, compared in
/// constant time. The base64 forms are computed once, at config load.
#[derive(Clone)]
pub struct CustomerKey {
    id: String,
    key_b64: Zeroizing<String>,
    md5_b64: String,
}

impl CustomerKey {
    /// From the key's base64 text (as read from the env var or file).
    pub fn from_base64(id: impl Into<String>, b64: &str) -> Result<Self, String> {
        let raw = Zeroizing::new(
            B64.decode(b64.trim())
                .map_err(|e| format!("not base64: {e}"))?,
        );
        if raw.len() != SSE_C_KEY_BYTES {
            return Err(format!(
                "decodes to {} bytes, SSE-C keys are {SSE_C_KEY_BYTES}",
                raw.len()
            ));
        }
        Ok(CustomerKey {
            id: id.into(),
            key_b64: Zeroizing::new(B64.encode(&*raw)),
            md5_b64: B64.encode(Md5::digest(&*raw)),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The base64 MD5 of the key, as S3 wants it in `...-customer-key-MD5`.
    pub fn md5_b64(&self) -> &str {
        &self.md5_b64
    }
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerKey({}, <redacted>)", self.id)
    }
}

impl PartialEq for CustomerKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && bool::from(self.key_b64.as_bytes().ct_eq(other.key_b64.as_bytes()))
    }
}

impl Eq for CustomerKey {}

/// A rule that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct SseConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn config_err(field: &'static str, reason: impl Into<String>) -> SseConfigError {
    SseConfigError {
        field,
        reason: reason.into(),
    }
}

impl RawSseRule {
    /// Validates the rule. `load` reads a key source (env var or file) and is the only I/O,
    /// so config code supplies it and tests pass a closure.
    pub fn validate(
        self,
        mut load: impl FnMut(&KeySource) -> Result<Zeroizing<String>, String>,
    ) -> Result<SseRule, SseConfigError> {
        let kms_fields =
            self.key_id.is_some() || self.context.is_some() || self.bucket_key.is_some();
        let c_fields = self.key.is_some() || !self.old_keys.is_empty();
        let name = self.rule.as_str();
        if kms_fields && self.rule != RuleKind::SseKms {
            return Err(config_err(
                "key_id",
                format!("only for sse-kms, not {name}"),
            ));
        }
        if c_fields && self.rule != RuleKind::SseC {
            return Err(config_err("key", format!("only for sse-c, not {name}")));
        }
        let kind = match self.rule {
            RuleKind::None => Encryption::None,
            RuleKind::SseS3 => Encryption::SseS3,
            RuleKind::SseKms => {
                let key_id = self
                    .key_id
                    .filter(|k| !k.trim().is_empty())
                    .ok_or_else(|| config_err("key_id", "sse-kms needs a key id"))?;
                // It is sent as a header value, so it must be one (checked here, not per request).
                if HeaderValue::from_str(&key_id).is_err() {
                    return Err(config_err("key_id", "not a valid header value"));
                }
                // RGW answers 400 without a key id, and a rule that names its key can be
                // verified (docs/policy.md).
                Encryption::SseKms(KmsParams {
                    key_id: Some(key_id),
                    context: self.context.as_ref().map(|c| B64.encode(context_json(c))),
                    bucket_key: self.bucket_key,
                })
            }
            RuleKind::SseC => {
                let raw = self
                    .key
                    .ok_or_else(|| config_err("key", "sse-c needs a key"))?;
                let mut read = |k: &RawCustomerKey, field| {
                    if k.id.is_empty() {
                        return Err(config_err(field, "key id is empty"));
                    }
                    let source = match (&k.env, &k.file) {
                        (Some(env), None) => KeySource::Env { env: env.clone() },
                        (None, Some(file)) => KeySource::File { file: file.clone() },
                        _ => return Err(config_err(field, "exactly one of env and file")),
                    };
                    let text = load(&source).map_err(|e| config_err(field, e))?;
                    CustomerKey::from_base64(&k.id, &text).map_err(|e| config_err(field, e))
                };
                let key = read(&raw, "key")?;
                let old_keys = self
                    .old_keys
                    .iter()
                    .map(|k| read(k, "old_keys"))
                    .collect::<Result<Vec<_>, _>>()?;
                for (i, k) in old_keys.iter().enumerate() {
                    let dup_id = k.id == key.id || old_keys[..i].iter().any(|o| o.id == k.id);
                    if dup_id {
                        return Err(config_err("old_keys", format!("key id {} twice", k.id)));
                    }
                    if k.md5_b64 == key.md5_b64 {
                        return Err(config_err(
                            "old_keys",
                            format!("{} is the current key", k.id),
                        ));
                    }
                }
                Encryption::SseC { key, old_keys }
            }
        };
        Ok(SseRule {
            kind,
            client_headers: self.client_headers,
            verify: self.on_unverified,
        })
    }
}

/// The encryption context as the JSON object AWS expects (`UsingKMSEncryption`: "a base64-encoded
/// UTF-8 string holding JSON with the encryption context key-value pairs").
fn context_json(ctx: &BTreeMap<String, String>) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    use fmt::Write as _;
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::from("{");
    for (i, (k, v)) in ctx.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, k);
        out.push(':');
        string(&mut out, v);
    }
    out.push('}');
    out
}

// === Rules by bucket ===

/// Bucket glob → SSE rule. The most specific matching pattern decides: an exact bucket name
/// beats any glob, and among globs the one with more literal characters wins (`vault-prod` >
/// `vault-*` > `*`), so a `"*"` pattern is the default rule wherever it is written. Equally
/// specific patterns that both match are tried in config order. A bucket no pattern matches
/// has no rule: its requests pass through untouched.
///
/// Most-specific rather than first-match (as CORS does) because an encryption rule written
/// below a broader one would otherwise be silently weakened.
#[derive(Debug, Default, Clone)]
pub struct SsePolicies(ByBucket<Arc<SseRule>>);

impl SsePolicies {
    /// From `(bucket glob, rule)` pairs in config order.
    pub fn new(rules: impl IntoIterator<Item = (String, SseRule)>) -> Result<Self, globset::Error> {
        Ok(SsePolicies(ByBucket::new(
            rules.into_iter().map(|(p, r)| (p, Arc::new(r))),
        )?))
    }

    pub fn for_bucket(&self, bucket: &str) -> Option<&Arc<SseRule>> {
        self.0.get(bucket)
    }
}

// === Errors ===

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// `client_headers = "reject"` and the client chose differently.
    #[error("Access Denied: this bucket's encryption rule is {rule} and refuses client encryption headers that differ from it ({header}).")]
    Rejected {
        rule: &'static str,
        header: HeaderName,
    },
    /// A form body under a rule: the pipeline turns every verified form upload into the
    /// PutObject that stores it before this stage, so no form body goes upstream, and this
    /// refusal keeps it so.
    #[error("Access Denied: this bucket's encryption rule is {rule}; browser POST uploads cannot be encrypted by the proxy.")]
    PostObject { rule: &'static str },
    #[error("The {header} header is invalid: {reason}.")]
    Malformed {
        header: HeaderName,
        reason: &'static str,
    },
    /// The backend's answer does not prove the encryption (fail closed).
    #[error("The storage backend did not apply the bucket's encryption ({expected}); it answered {header}: {found}. The write is refused.")]
    NotApplied {
        expected: &'static str,
        header: HeaderName,
        found: String,
    },
}

impl S3Error for PolicyError {
    fn code(&self) -> S3Code {
        match self {
            PolicyError::Rejected { .. } | PolicyError::PostObject { .. } => S3Code::AccessDenied,
            PolicyError::Malformed { .. } => S3Code::InvalidArgument,
            // 501, not 502: SDKs retry 502 (transient), and a retry would only write and
            // remove the object again. The backend lacks the feature the rule needs.
            PolicyError::NotApplied { .. } => S3Code::NotImplemented,
        }
    }
}

fn malformed(header: &HeaderName, reason: &'static str) -> PolicyError {
    PolicyError::Malformed {
        header: header.clone(),
        reason,
    }
}

// === Client choice ===

/// What the client's SSE headers ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    None,
    SseS3,
    SseKms(KmsParams),
    /// The client's own SSE-C key, validated.
    SseC(ClientKey),
}

impl Choice {
    fn kind(&self) -> RuleKind {
        match self {
            Choice::None => RuleKind::None,
            Choice::SseS3 => RuleKind::SseS3,
            Choice::SseKms(_) => RuleKind::SseKms,
            Choice::SseC(_) => RuleKind::SseC,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct ClientKey {
    key_b64: Zeroizing<String>,
    md5_b64: String,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

fn text<'h>(h: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, PolicyError> {
    h.get(name)
        .map(|v| v.to_str().map_err(|_| malformed(name, "not ASCII")))
        .transpose()
}

/// Parses an SSE-C triple (algorithm, key, key-MD5): all three or none, AES256, a 32-byte
/// key and the MD5 that matches it (`ServerSideEncryptionCustomerKeys`).
fn parse_customer(
    h: &HeaderMap,
    names: &[HeaderName; 3],
) -> Result<Option<ClientKey>, PolicyError> {
    let [alg_h, key_h, md5_h] = names;
    let (alg, key, md5) = (text(h, alg_h)?, text(h, key_h)?, text(h, md5_h)?);
    match (alg, key, md5) {
        (None, None, None) => Ok(None),
        (Some(alg), Some(key), Some(md5)) => {
            if alg != AES256 {
                return Err(malformed(alg_h, "the only SSE-C algorithm is AES256"));
            }
            let raw = Zeroizing::new(
                B64.decode(key)
                    .map_err(|_| malformed(key_h, "not base64"))?,
            );
            if raw.len() != SSE_C_KEY_BYTES {
                return Err(malformed(key_h, "an SSE-C key is 256 bits"));
            }
            if B64.encode(Md5::digest(&*raw)) != md5 {
                return Err(malformed(md5_h, "it is not the MD5 of the key"));
            }
            Ok(Some(ClientKey {
                key_b64: Zeroizing::new(key.to_owned()),
                md5_b64: md5.to_owned(),
            }))
        }
        _ => {
            let missing = [alg, key, md5]
                .iter()
                .position(Option::is_none)
                .map_or(alg_h, |i| &names[i]);
            Err(malformed(
                missing,
                "SSE-C needs algorithm, key and key-MD5 together",
            ))
        }
    }
}

/// The client's choice for the addressed object.
fn parse_choice(h: &HeaderMap) -> Result<Choice, PolicyError> {
    let customer = parse_customer(h, &CUSTOMER_HEADERS)?;
    let sse = text(h, &SSE)?;
    let kms_extra = DEST_HEADERS[1..].iter().find(|n| h.contains_key(*n));
    let choice = match sse {
        None => {
            if let Some(n) = kms_extra {
                return Err(malformed(
                    n,
                    "it needs x-amz-server-side-encryption: aws:kms",
                ));
            }
            customer.map_or(Choice::None, Choice::SseC)
        }
        Some(_) if customer.is_some() => {
            return Err(malformed(
                &SSE,
                "SSE-C and SSE-S3/SSE-KMS cannot be combined",
            ))
        }
        Some("AES256") => {
            if let Some(n) = kms_extra {
                return Err(malformed(
                    n,
                    "it needs x-amz-server-side-encryption: aws:kms",
                ));
            }
            Choice::SseS3
        }
        // aws:kms:dsse (dual-layer) is SSE-KMS for the purpose of strength.
        Some("aws:kms" | "aws:kms:dsse") => {
            let bucket_key = match text(h, &SSE_BUCKET_KEY)? {
                None => None,
                Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
                Some(_) => return Err(malformed(&SSE_BUCKET_KEY, "true or false")),
            };
            Choice::SseKms(KmsParams {
                key_id: text(h, &SSE_KMS_KEY_ID)?.map(str::to_owned),
                context: text(h, &SSE_CONTEXT)?.map(str::to_owned),
                bucket_key,
            })
        }
        Some(_) => return Err(malformed(&SSE, "AES256, aws:kms or aws:kms:dsse")),
    };
    Ok(choice)
}

// === Plan ===

/// Which SSE headers an operation takes (AWS API reference of each operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accepts {
    /// `x-amz-server-side-encryption` and the KMS headers: only on object creation.
    dest: bool,
    /// The SSE-C triple: wherever the object's data is read or written.
    customer: bool,
    /// The copy-source SSE-C triple: copies.
    copy_source: bool,
    /// Whether the response must prove the encryption, and with which headers.
    verify: VerifyOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VerifyOn {
    Nothing,
    /// Object creation: every scheme is echoed.
    All,
    /// Parts: SSE-C is echoed; SSE-S3/SSE-KMS only when the rule (not the client) chose them.
    Part,
    /// CompleteMultipartUpload echoes SSE-S3/SSE-KMS but not the SSE-C headers.
    NotCustomer,
}

fn accepts(op: Operation) -> Accepts {
    let a = |dest, customer, copy_source, verify| Accepts {
        dest,
        customer,
        copy_source,
        verify,
    };
    match op {
        Operation::PutObject | Operation::CreateMultipartUpload => {
            a(true, true, false, VerifyOn::All)
        }
        Operation::CopyObject => a(true, true, true, VerifyOn::All),
        Operation::UploadPart => a(false, true, false, VerifyOn::Part),
        Operation::UploadPartCopy => a(false, true, true, VerifyOn::Part),
        // CompleteMultipartUpload and ListParts take the SSE-C triple when the upload was
        // created with a checksum or a bucket policy requires SSE-C (AWS API reference).
        Operation::CompleteMultipartUpload => a(false, true, false, VerifyOn::NotCustomer),
        Operation::GetObject
        | Operation::HeadObject
        | Operation::GetObjectAttributes
        | Operation::SelectObjectContent
        | Operation::ListParts => a(false, true, false, VerifyOn::Nothing),
        // RestoreObject takes no SSE request headers: the archived ciphertext is restored as is.
        Operation::RestoreObject
        | Operation::PostObject
        | Operation::ListBuckets
        | Operation::CreateBucket
        | Operation::DeleteBucket
        | Operation::HeadBucket
        | Operation::ListObjects
        | Operation::ListObjectsV2
        | Operation::ListObjectVersions
        | Operation::ListMultipartUploads
        | Operation::DeleteObjects
        | Operation::DeleteObject
        | Operation::AbortMultipartUpload
        | Operation::GetBucketLocation
        | Operation::BucketConfig(..)
        | Operation::ObjectConfig(..)
        | Operation::CorsPreflight => a(false, false, false, VerifyOn::Nothing),
    }
}

/// What the response must show for the write to count as encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `x-amz-server-side-encryption: AES256`.
    SseS3,
    /// `x-amz-server-side-encryption: aws:kms` (or `aws:kms:dsse`), and the key id when known.
    SseKms { key_id: Option<String> },
    /// `...-customer-algorithm: AES256` and `...-customer-key-MD5` of the key sent.
    SseC { key_md5: String },
}

impl Expectation {
    fn name(&self) -> &'static str {
        match self {
            Expectation::SseS3 => "sse-s3",
            Expectation::SseKms { .. } => "sse-kms",
            Expectation::SseC { .. } => "sse-c",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsePlan {
    /// Client headers to remove before forwarding (every SSE header the client sent).
    pub strip_request: Vec<HeaderName>,
    /// Headers to set on the upstream request. Key values are marked sensitive, so `Debug`
    /// does not print them.
    pub set_request: HeaderMap,
    /// What the backend's response must show ([`verify_response`]); `None`: nothing to check.
    pub expect: Option<Expectation>,
    /// What a failed check leads to.
    pub verify: Verify,
    /// Response headers the client must not see.
    pub strip_response: Vec<HeaderName>,
}

/// The key that an SSE-C triple carries upstream.
enum KeyRef<'a> {
    Proxy(&'a CustomerKey),
    Client(&'a ClientKey),
}

impl KeyRef<'_> {
    fn parts(&self) -> (&str, &str) {
        match self {
            KeyRef::Proxy(k) => (&k.key_b64, &k.md5_b64),
            KeyRef::Client(k) => (&k.key_b64, &k.md5_b64),
        }
    }
}

fn set(h: &mut HeaderMap, name: &HeaderName, value: &str) {
    // Values come from validated config or validated client headers, so they are header-safe.
    let mut v = HeaderValue::from_str(value).expect("validated header value");
    if *name == SSE_C_KEY || *name == COPY_SOURCE_SSE_C_KEY {
        v.set_sensitive(true);
    }
    h.insert(name.clone(), v);
}

fn set_customer(h: &mut HeaderMap, names: &[HeaderName; 3], key: &KeyRef<'_>) {
    let (k, md5) = key.parts();
    set(h, &names[0], AES256);
    set(h, &names[1], k);
    set(h, &names[2], md5);
}

fn set_kms(h: &mut HeaderMap, p: &KmsParams, alg: &str) {
    set(h, &SSE, alg);
    if let Some(k) = &p.key_id {
        set(h, &SSE_KMS_KEY_ID, k);
    }
    if let Some(c) = &p.context {
        set(h, &SSE_CONTEXT, c);
    }
    if let Some(b) = p.bucket_key {
        set(h, &SSE_BUCKET_KEY, if b { "true" } else { "false" });
    }
}

/// Whether a client's choice is what the rule would do anyway (accepted in `reject` mode).
fn matches_rule(choice: &Choice, rule: &Encryption) -> bool {
    match (choice, rule) {
        (Choice::None, _) | (Choice::SseS3, Encryption::SseS3) => true,
        (Choice::SseKms(c), Encryption::SseKms(r)) => c.key_id.is_none() || c.key_id == r.key_id,
        (Choice::SseC(c), Encryption::SseC { key, .. }) => c.md5_b64 == key.md5_b64,
        _ => false,
    }
}

/// The first SSE header present, to name in a rejection.
fn first_present(h: &HeaderMap, names: &[HeaderName]) -> HeaderName {
    names
        .iter()
        .find(|n| h.contains_key(*n))
        .cloned()
        .unwrap_or(SSE)
}

/// Decides the SSE headers of one request under `rule`. `copy_source_rule` is the rule of a
/// copy's source bucket (`None`: the source bucket has no rule, the client's copy-source
/// headers pass through).
pub fn plan(
    rule: &SseRule,
    op: Operation,
    client_headers: &HeaderMap,
    copy_source_rule: Option<&SseRule>,
) -> Result<SsePlan, PolicyError> {
    let name = rule.kind.kind().as_str();
    if op == Operation::PostObject && rule.kind != Encryption::None {
        return Err(PolicyError::PostObject { rule: name });
    }
    let acc = accepts(op);
    let choice = parse_choice(client_headers)?;
    let source_choice = parse_customer(client_headers, &COPY_SOURCE_HEADERS)?;
    let strip_request: Vec<HeaderName> = DEST_HEADERS
        .iter()
        .chain(&CUSTOMER_HEADERS)
        .chain(&COPY_SOURCE_HEADERS)
        .filter(|n| client_headers.contains_key(*n))
        .cloned()
        .collect();
    let mut out = SsePlan {
        strip_request,
        set_request: HeaderMap::new(),
        expect: None,
        verify: rule.verify,
        strip_response: Vec::new(),
    };

    if acc.dest || acc.customer {
        plan_object(rule, acc, &choice, client_headers, &mut out)?;
    }
    // The copy source's SSE-C key.
    if acc.copy_source {
        let source = match copy_source_rule {
            Some(src) => match (&src.kind, src.client_headers, &source_choice) {
                (_, ClientHeaders::Reject, Some(c)) if !matches!(&src.kind, Encryption::SseC { key, .. } if key.md5_b64 == c.md5_b64) =>
                {
                    return Err(PolicyError::Rejected {
                        rule: src.kind.kind().as_str(),
                        header: first_present(client_headers, &COPY_SOURCE_HEADERS),
                    });
                }
                (_, ClientHeaders::Allow, Some(c)) => Some(KeyRef::Client(c)),
                (Encryption::SseC { key, .. }, _, _) => Some(KeyRef::Proxy(key)),
                _ => None,
            },
            None => source_choice.as_ref().map(KeyRef::Client),
        };
        if let Some(key) = source {
            set_customer(&mut out.set_request, &COPY_SOURCE_HEADERS, &key);
        }
    }
    Ok(out)
}

/// The addressed object's encryption: `dest` operations choose it, the others only repeat an
/// SSE-C key.
fn plan_object(
    rule: &SseRule,
    acc: Accepts,
    choice: &Choice,
    client_headers: &HeaderMap,
    out: &mut SsePlan,
) -> Result<(), PolicyError> {
    let name = rule.kind.kind().as_str();
    // The object's own encryption: `dest` ops choose it, `customer` ops only repeat an SSE-C key.
    let relevant = if acc.dest {
        choice.clone()
    } else {
        match choice {
            Choice::SseC(_) => choice.clone(),
            _ => Choice::None,
        }
    };
    let client_stands = match rule.client_headers {
        ClientHeaders::Override => false,
        ClientHeaders::Reject => {
            if !matches_rule(&relevant, &rule.kind) {
                let names: Vec<HeaderName> = DEST_HEADERS
                    .iter()
                    .chain(&CUSTOMER_HEADERS)
                    .cloned()
                    .collect();
                return Err(PolicyError::Rejected {
                    rule: name,
                    header: first_present(client_headers, &names),
                });
            }
            false
        }
        ClientHeaders::Allow => relevant != Choice::None && relevant.kind() >= rule.kind.kind(),
    };
    let effective: Effective<'_> = match (&relevant, client_stands) {
        (Choice::SseS3, true) => Effective::SseS3,
        (Choice::SseKms(p), true) => Effective::SseKms(p.clone()),
        (Choice::SseC(k), true) => Effective::SseC(KeyRef::Client(k)),
        _ => match &rule.kind {
            Encryption::None => Effective::None,
            Encryption::SseS3 => Effective::SseS3,
            Encryption::SseKms(p) => Effective::SseKms(p.clone()),
            Encryption::SseC { key, .. } => Effective::SseC(KeyRef::Proxy(key)),
        },
    };
    // In `allow` mode, a part or completion cannot tell which scheme the client chose when it
    // created the upload, so only `override` and `reject` uploads are checked there.
    let rule_chose = !client_stands && rule.client_headers != ClientHeaders::Allow;
    match effective {
        Effective::None => {}
        Effective::SseS3 if acc.dest => {
            set(&mut out.set_request, &SSE, AES256);
            out.expect = expectation(acc.verify, rule_chose, Expectation::SseS3);
        }
        Effective::SseKms(p) if acc.dest => {
            let alg = match text(client_headers, &SSE)? {
                Some(a) if client_stands => a,
                _ => "aws:kms",
            };
            set_kms(&mut out.set_request, &p, alg);
            let e = Expectation::SseKms {
                key_id: p.key_id.clone(),
            };
            out.expect = expectation(acc.verify, rule_chose, e);
        }
        // On parts and reads, SSE-S3/SSE-KMS are the upload's or object's: nothing to send.
        Effective::SseS3 => {
            out.expect = expectation(acc.verify, rule_chose, Expectation::SseS3);
        }
        Effective::SseKms(p) => {
            let e = Expectation::SseKms { key_id: p.key_id };
            out.expect = expectation(acc.verify, rule_chose, e);
        }
        Effective::SseC(key) => {
            set_customer(&mut out.set_request, &CUSTOMER_HEADERS, &key);
            let e = Expectation::SseC {
                key_md5: key.parts().1.to_owned(),
            };
            out.expect = expectation(acc.verify, true, e);
            // The MD5 fingerprints the proxy's key; the client never sent one to compare.
            if let KeyRef::Proxy(_) = key {
                out.strip_response.push(SSE_C_KEY_MD5);
            }
        }
    }
    Ok(())
}

enum Effective<'a> {
    None,
    SseS3,
    SseKms(KmsParams),
    SseC(KeyRef<'a>),
}

fn expectation(on: VerifyOn, rule_chose: bool, e: Expectation) -> Option<Expectation> {
    let customer = matches!(e, Expectation::SseC { .. });
    let check = match on {
        VerifyOn::Nothing => false,
        VerifyOn::All => true,
        // A client's own SSE-S3/SSE-KMS choice was verified at CreateMultipartUpload.
        VerifyOn::Part => customer || rule_chose,
        VerifyOn::NotCustomer => !customer && rule_chose,
    };
    check.then_some(e)
}

// === Key rotation ===

/// The same request with an old SSE-C key in place of the proxy's current one.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The old key's id, for the log.
    pub key_id: String,
    pub plan: SsePlan,
}

/// The plans to try, in config order, when the backend refuses `plan`'s SSE-C key: on reads,
/// each old key of the bucket's rule; on copies, each old key of the source bucket's rule
/// (the destination keeps the current key, so such a copy re-encrypts). Empty when the
/// proxy's current key was not used (a client's own key, or another rule).
pub fn rotation_retries(
    plan: &SsePlan,
    op: Operation,
    rule: &SseRule,
    copy_source_rule: Option<&SseRule>,
) -> Vec<Retry> {
    let (names, rule) = match op {
        Operation::GetObject
        | Operation::HeadObject
        | Operation::GetObjectAttributes
        | Operation::SelectObjectContent => (&CUSTOMER_HEADERS, rule),
        Operation::CopyObject | Operation::UploadPartCopy => match copy_source_rule {
            Some(src) => (&COPY_SOURCE_HEADERS, src),
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let Encryption::SseC { key, old_keys } = &rule.kind else {
        return Vec::new();
    };
    let sent = plan.set_request.get(&names[2]).map(HeaderValue::as_bytes);
    if sent != Some(key.md5_b64.as_bytes()) {
        return Vec::new();
    }
    old_keys
        .iter()
        .map(|old| {
            let mut plan = plan.clone();
            set_customer(&mut plan.set_request, names, &KeyRef::Proxy(old));
            Retry {
                key_id: old.id.clone(),
                plan,
            }
        })
        .collect()
}

// === Verify ===

/// Checks that a successful write's response proves the planned encryption (fail closed).
/// The caller decides by [`SsePlan::verify`] whether an error refuses the write or is logged.
pub fn verify_response(plan: &SsePlan, response_headers: &HeaderMap) -> Result<(), PolicyError> {
    let Some(e) = &plan.expect else {
        return Ok(());
    };
    let found = |name: &HeaderName| {
        response_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let fail = |name: &HeaderName, v: Option<String>| PolicyError::NotApplied {
        expected: e.name(),
        header: name.clone(),
        found: v.unwrap_or_else(|| "(missing)".into()),
    };
    match e {
        Expectation::SseS3 => match found(&SSE) {
            Some(v) if v == AES256 => Ok(()),
            v => Err(fail(&SSE, v)),
        },
        Expectation::SseKms { key_id } => {
            match found(&SSE) {
                Some(v) if v == "aws:kms" || v == "aws:kms:dsse" => {}
                v => return Err(fail(&SSE, v)),
            }
            let Some(want) = key_id else { return Ok(()) };
            match found(&SSE_KMS_KEY_ID) {
                Some(got) if kms_key_matches(want, &got) => Ok(()),
                v => Err(fail(&SSE_KMS_KEY_ID, v)),
            }
        }
        Expectation::SseC { key_md5 } => {
            match found(&SSE_C_ALGORITHM) {
                Some(v) if v == AES256 => {}
                v => return Err(fail(&SSE_C_ALGORITHM, v)),
            }
            match found(&SSE_C_KEY_MD5) {
                Some(v) if v == *key_md5 => Ok(()),
                v => Err(fail(&SSE_C_KEY_MD5, v)),
            }
        }
    }
}

/// AWS answers with the key's ARN even when the request named the bare key id, so
/// `1234abcd-...` matches `arn:aws:kms:region:account:key/1234abcd-...`. An alias cannot be
/// matched against the ARN AWS returns; then any key id is accepted (docs/policy.md).
fn kms_key_matches(configured: &str, returned: &str) -> bool {
    if configured.starts_with("alias/") || configured.contains(":alias/") {
        return !returned.is_empty();
    }
    returned == configured
        || returned
            .strip_suffix(configured)
            .is_some_and(|head| head.ends_with(":key/"))
}

#[cfg(test)]
mod tests;
