//! The AWS KMS key source of client-side encryption (`docs/format.md` §5.3): data keys come
//! from `GenerateDataKey` and are opened with `Decrypt`, over the JSON 1.1 protocol, SigV4-signed
//! for the service `kms`. Any KMS-compatible endpoint will do.
//!
//! KMS answers a few thousand requests per second per region, so both directions are cached
//! (bounded, with a TTL): a writer reuses one (data key, wrapped blob) pair per bucket for many
//! objects (each object still derives its own keys from its random salt, §5.1), and a reader
//! keeps blob → data key. Concurrent misses for one entry wait for a single KMS call.
//!
//! A blob KMS refuses to open is remembered too, briefly: a blob can come from a client (the
//! upload id of a multipart upload, `docs/format.md` §7), and without this a client repeating a
//! forged upload id would cost a KMS call per request, and spend the account's KMS quota.
//!
//! Reference: <https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateDataKey.html>,
//! <https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html>.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::SignableBody;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::auth::SecretKey;
use crate::body::{self, Body};
use crate::crypto::format::{DataKey, KEY_LEN, MAX_WRAPPED_DEK_LEN};
use crate::error::{S3Code, S3Error};
use crate::metrics::Metrics;
use crate::outbound::{self, HttpsClient, Service, Signer};

/// Object key ids of KMS-wrapped data keys start with this (`docs/format.md` §5.3).
pub const KEY_ID_PREFIX: &str = "kms:";
/// The encryption context's names (`docs/format.md` §5.3): `{"s3seal": "v1"}` for version 1
/// records, `{"s3seal": "v2", "bucket": <bucket>}` for version 2.
const CONTEXT_VERSION: &str = "s3seal";
const CONTEXT_BUCKET: &str = "bucket";
/// A KMS call that takes longer fails the request rather than holding it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A KMS answer is a few hundred bytes; anything much longer is not one.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Read cache entries; beyond this, expired entries are dropped, then the oldest.
const MAX_CACHED_BLOBS: usize = 4096;
/// Buckets with a cached writer entry; a rule may match many buckets by pattern.
const MAX_CACHED_BUCKETS: usize = 1024;
/// Refused blobs remembered; beyond this, expired entries are dropped, then the oldest. Kept
/// apart from the read cache, so refused blobs never push out ones that opened.
const MAX_REFUSED_BLOBS: usize = 1024;
/// How long a refusal is remembered: a forged blob repeated costs one call per minute, and a
/// key re-enabled or a grant added is seen within a minute.
const REFUSAL_TTL: Duration = Duration::from_secs(60);
/// Refusals that say nothing about the blob: KMS is busy or failing, and the same call may
/// succeed at once. Never remembered.
///
/// Reference: <https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html#API_Decrypt_Errors>,
/// <https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html>
const TRANSIENT_REFUSALS: [&str; 5] = [
    "ThrottlingException",
    "LimitExceededException",
    "KMSInternalException",
    "KeyUnavailableException",
    "DependencyTimeoutException",
];

/// A KMS key source as configured (`docs/config.md`, "KMS").
#[derive(Debug)]
pub struct KmsSettings {
    pub endpoint: http::Uri,
    pub region: String,
    pub key_id: String,
    /// Keys that objects may still be wrapped with: opened, never used for new data keys.
    pub old_key_ids: Vec<String>,
    pub access_key_id: String,
    pub secret_access_key: SecretKey,
    /// How long one data key serves new objects, and how long an opened one stays cached.
    pub cache_ttl: Duration,
    /// How many objects one data key may serve before a new one is generated.
    pub cache_max_uses: u64,
    /// Whether `/readyz` fails while this endpoint is unreachable (`readiness`).
    pub required_for_readiness: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum KmsError {
    #[error("The KMS endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("The KMS endpoint did not answer within {} seconds.", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("KMS refused {op}: {kind}: {message}")]
    Refused {
        op: &'static str,
        kind: String,
        message: String,
    },
    #[error("The KMS answer to {0} could not be understood: {1}")]
    Answer(&'static str, String),
    #[error("The KMS request could not be signed: {0}")]
    Signing(String),
}

impl S3Error for KmsError {
    fn code(&self) -> S3Code {
        match self {
            KmsError::Unreachable(_) | KmsError::Timeout => S3Code::ServiceUnavailable,
            KmsError::Refused { .. } | KmsError::Answer(..) | KmsError::Signing(_) => {
                S3Code::InternalError
            }
        }
    }
}

impl KmsError {
    /// Whether this is KMS's verdict on the blob: a named refusal that is not about KMS's own
    /// state. An answer with no KMS error type (`HTTP 502` from something in front of it) is
    /// not one.
    fn is_verdict(&self) -> bool {
        match self {
            KmsError::Refused { kind, .. } => {
                !kind.starts_with("HTTP ") && !TRANSIENT_REFUSALS.contains(&kind.as_str())
            }
            KmsError::Unreachable(_)
            | KmsError::Timeout
            | KmsError::Answer(..)
            | KmsError::Signing(_) => false,
        }
    }
}

/// A KMS operation, as named in metrics.
#[derive(Debug, Clone, Copy)]
enum Op {
    GenerateDataKey,
    Decrypt,
    Encrypt,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GenerateDataKey => "GenerateDataKey",
            Op::Decrypt => "Decrypt",
            Op::Encrypt => "Encrypt",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateRequest<'a> {
    key_id: &'a str,
    key_spec: &'static str,
    encryption_context: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest<'a> {
    key_id: &'a str,
    ciphertext_blob: String,
    encryption_context: BTreeMap<&'a str, &'a str>,
}

/// `Encrypt` of an existing data key: a rewrap (`docs/format.md` §5.4).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptRequest<'a> {
    key_id: &'a str,
    plaintext: &'a str,
    encryption_context: BTreeMap<&'a str, &'a str>,
}

/// The answers: `GenerateDataKey` has both fields, `Decrypt` only the plaintext, `Encrypt`
/// only the blob.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyAnswer {
    #[serde(default)]
    plaintext: String,
    ciphertext_blob: Option<String>,
}

impl Drop for KeyAnswer {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The encryption context of a data key: a version 1 record's (`bucket` is `None`) or a
/// version 2 record's in `bucket`. Version 2 names the bucket and not the key, so one data
/// key can serve a bucket's new objects (the write cache); the object key is bound by the
/// commitment (`docs/format.md` §5.1, §5.3).
fn context(bucket: Option<&str>) -> BTreeMap<&str, &str> {
    match bucket {
        None => BTreeMap::from([(CONTEXT_VERSION, "v1")]),
        Some(bucket) => BTreeMap::from([(CONTEXT_VERSION, "v2"), (CONTEXT_BUCKET, bucket)]),
    }
}

/// A data key for new objects, shared until it expires or has served its uses.
struct WriteSlot {
    created: Instant,
    uses: std::sync::atomic::AtomicU64,
    key: tokio::sync::OnceCell<(Arc<DataKey>, Arc<[u8]>)>,
}

/// An opened wrapped blob.
struct ReadSlot {
    created: Instant,
    key: tokio::sync::OnceCell<Arc<DataKey>>,
}

/// A blob KMS would not open, and what it said.
struct Refusal {
    created: Instant,
    error: KmsError,
}

/// One KMS key with its connection pool and caches.
pub struct Kms {
    settings: KmsSettings,
    signer: Signer,
    client: HttpsClient,
    metrics: OnceLock<Arc<Metrics>>,
    writers: Mutex<HashMap<String, Arc<WriteSlot>>>,
    readers: Mutex<HashMap<[u8; 32], Arc<ReadSlot>>>,
    refused: Mutex<HashMap<[u8; 32], Refusal>>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("endpoint", &self.settings.endpoint)
            .field("key_id", &self.settings.key_id)
            .finish_non_exhaustive()
    }
}

impl Kms {
    pub fn new(settings: KmsSettings, tls: rustls::ClientConfig) -> Self {
        let client = outbound::https_client(tls, CALL_TIMEOUT, None);
        let signer = Signer::new(
            &settings.access_key_id,
            settings.secret_access_key.expose(),
            &settings.region,
            Service::Kms,
        );
        Kms {
            settings,
            signer,
            client,
            metrics: OnceLock::new(),
            writers: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Where KMS calls and cache hits are counted; set once per configuration generation.
    pub fn observe(&self, metrics: &Arc<Metrics>) {
        let _ = self.metrics.set(metrics.clone());
    }

    pub fn required_for_readiness(&self) -> bool {
        self.settings.required_for_readiness
    }

    pub fn endpoint(&self) -> &http::Uri {
        &self.settings.endpoint
    }

    /// The id objects name this key by: `kms:` and the configured key id.
    pub fn object_key_id(&self) -> String {
        format!("{KEY_ID_PREFIX}{}", self.settings.key_id)
    }

    /// The KMS key id that opens objects named `object_key_id`, if it is this key or one of
    /// its old keys.
    pub fn key_for(&self, object_key_id: &str) -> Option<&str> {
        let id = object_key_id.strip_prefix(KEY_ID_PREFIX)?;
        std::iter::once(&self.settings.key_id)
            .chain(&self.settings.old_key_ids)
            .find(|k| *k == id)
            .map(String::as_str)
    }

    /// The KMS key id of new data keys.
    pub fn current(&self) -> &str {
        &self.settings.key_id
    }

    /// A data key for a new object in `bucket` and its wrapped form, from the cache when the
    /// bucket's current one is still fresh.
    pub async fn data_key(&self, bucket: &str) -> Result<(Arc<DataKey>, Arc<[u8]>), KmsError> {
        let slot = {
            let mut writers = self.writers.lock().expect("not poisoned");
            let fresh = writers.get(bucket).filter(|s| {
                s.created.elapsed() < self.settings.cache_ttl
                    && s.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        < self.settings.cache_max_uses
            });
            if let Some(slot) = fresh {
                slot.clone()
            } else {
                if writers.len() >= MAX_CACHED_BUCKETS {
                    writers.retain(|_, s| s.created.elapsed() < self.settings.cache_ttl);
                }
                let slot = Arc::new(WriteSlot {
                    created: Instant::now(),
                    uses: 1.into(),
                    key: tokio::sync::OnceCell::new(),
                });
                if writers.len() < MAX_CACHED_BUCKETS {
                    writers.insert(bucket.to_owned(), slot.clone());
                }
                slot
            }
        };
        let mut called = false;
        let pair = slot
            .key
            .get_or_try_init(|| {
                called = true;
                self.generate(bucket)
            })
            .await?;
        if called {
            // This proxy's own reads of the new objects need no Decrypt.
            let id = cache_id(&self.settings.key_id, &context(Some(bucket)), &pair.1);
            self.remember(id, pair.0.clone());
        } else {
            self.cache_hit(Op::GenerateDataKey);
        }
        Ok(pair.clone())
    }

    fn remember(&self, id: [u8; 32], key: Arc<DataKey>) {
        let mut readers = self.readers.lock().expect("not poisoned");
        if readers.len() >= MAX_CACHED_BLOBS {
            evict(
                &mut readers,
                |s| s.created,
                self.settings.cache_ttl,
                MAX_CACHED_BLOBS,
            );
        }
        readers.insert(
            id,
            Arc::new(ReadSlot {
                created: Instant::now(),
                key: tokio::sync::OnceCell::new_with(Some(key)),
            }),
        );
    }

    /// The data key inside a blob wrapped under `key_id` with the context of `bucket` (see
    /// [`context`]), from the cache when it was opened recently with that context. A blob KMS refused within
    /// [`REFUSAL_TTL`] is refused again without a call.
    pub async fn open(
        &self,
        key_id: &str,
        bucket: Option<&str>,
        wrapped: &[u8],
    ) -> Result<Arc<DataKey>, KmsError> {
        self.open_in(key_id, &context(bucket), wrapped).await
    }

    /// The data key inside a blob another client wrapped under `key_id` with its own
    /// encryption context (an S3 Encryption Client object's `kms+context`), cached and
    /// remembered when refused as [`Kms::open`] does.
    pub async fn open_with_context(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
        wrapped: &[u8],
    ) -> Result<Arc<DataKey>, KmsError> {
        let context = context
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.open_in(key_id, &context, wrapped).await
    }

    /// [`Kms::open_with_context`] under this key's ids in turn, the current one first, then
    /// `old_key_ids`, until one opens the blob: its id as objects name it (`kms:` and the key
    /// id), and the data key. KMS's verdict on the blob under one key moves on to the next;
    /// any other failure (unreachable, throttled) is returned at once.
    pub async fn open_any_with_context(
        &self,
        context: &BTreeMap<String, String>,
        wrapped: &[u8],
    ) -> Result<(String, Arc<DataKey>), KmsError> {
        let mut refused = None;
        for key_id in std::iter::once(&self.settings.key_id).chain(&self.settings.old_key_ids) {
            match self.open_with_context(key_id, context, wrapped).await {
                Ok(dek) => return Ok((format!("{KEY_ID_PREFIX}{key_id}"), dek)),
                Err(e) if e.is_verdict() => refused = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(refused.expect("the current key was tried"))
    }

    /// A new data key wrapped under the current key with `context` (an S3 Encryption Client
    /// object's), not cached: each such object gets its own.
    pub async fn data_key_with_context(
        &self,
        context: &BTreeMap<String, String>,
    ) -> Result<(DataKey, Vec<u8>), KmsError> {
        let op = Op::GenerateDataKey;
        let request = GenerateRequest {
            key_id: &self.settings.key_id,
            key_spec: "AES_256",
            encryption_context: context
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let mut answer = self.call(op, &request).await?;
        let blob = blob(op, &mut answer)?;
        Ok((plaintext_key(op, &answer.plaintext)?, blob))
    }

    async fn open_in(
        &self,
        key_id: &str,
        context: &BTreeMap<&str, &str>,
        wrapped: &[u8],
    ) -> Result<Arc<DataKey>, KmsError> {
        let id = cache_id(key_id, context, wrapped);
        if let Some(refusal) = self.refusal(&id) {
            return Err(refusal);
        }
        let slot = {
            let mut readers = self.readers.lock().expect("not poisoned");
            match readers.get(&id) {
                Some(s) if s.created.elapsed() < self.settings.cache_ttl => s.clone(),
                _ => {
                    if readers.len() >= MAX_CACHED_BLOBS {
                        let ttl = self.settings.cache_ttl;
                        evict(&mut readers, |s| s.created, ttl, MAX_CACHED_BLOBS);
                    }
                    let slot = Arc::new(ReadSlot {
                        created: Instant::now(),
                        key: tokio::sync::OnceCell::new(),
                    });
                    readers.insert(id, slot.clone());
                    slot
                }
            }
        };
        let mut called = false;
        let asked = &mut called;
        let key = match slot
            .key
            // Callers that waited on a call KMS refused try again in turn: they find the
            // refusal here instead of calling KMS one after another.
            .get_or_try_init(|| async move {
                if let Some(refusal) = self.refusal(&id) {
                    return Err(refusal);
                }
                *asked = true;
                let opened = self.decrypt(key_id, context, wrapped).await;
                // Remembered before the waiters are let in.
                match &opened {
                    Err(e) if e.is_verdict() => self.remember_refusal(id, e),
                    _ => {}
                }
                opened
            })
            .await
        {
            Ok(key) => key,
            Err(e) => {
                // A blob KMS would not open (a forged upload id, say) must not take a place
                // in the cache from the ones it did.
                let mut readers = self.readers.lock().expect("not poisoned");
                if readers
                    .get(&id)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot) && s.key.get().is_none())
                {
                    readers.remove(&id);
                }
                return Err(e);
            }
        };
        if !called {
            self.cache_hit(Op::Decrypt);
        }
        Ok(key.clone())
    }

    /// The refusal remembered for the blob `id`, if recent; counted as a call saved.
    fn refusal(&self, id: &[u8; 32]) -> Option<KmsError> {
        let refused = self.refused.lock().expect("not poisoned");
        let error = refused
            .get(id)
            .filter(|r| r.created.elapsed() < REFUSAL_TTL)
            .map(|r| r.error.clone())?;
        if let Some(m) = self.metrics.get() {
            m.kms_refusal_remembered(Op::Decrypt.name());
        }
        Some(error)
    }

    fn remember_refusal(&self, id: [u8; 32], error: &KmsError) {
        let mut refused = self.refused.lock().expect("not poisoned");
        if refused.len() >= MAX_REFUSED_BLOBS {
            evict(&mut refused, |r| r.created, REFUSAL_TTL, MAX_REFUSED_BLOBS);
        }
        refused.insert(
            id,
            Refusal {
                created: Instant::now(),
                error: error.clone(),
            },
        );
    }

    async fn generate(&self, bucket: &str) -> Result<(Arc<DataKey>, Arc<[u8]>), KmsError> {
        let op = Op::GenerateDataKey;
        let request = GenerateRequest {
            key_id: &self.settings.key_id,
            key_spec: "AES_256",
            encryption_context: context(Some(bucket)),
        };
        let mut answer = self.call(op, &request).await?;
        let blob = blob(op, &mut answer)?;
        let key = plaintext_key(op, &answer.plaintext)?;
        Ok((Arc::new(key), blob.into()))
    }

    /// Wraps an existing data key under this KMS key with the context of a version 2 record in
    /// `bucket` (a copy, a rewrap or an upgrade, `docs/format.md` §5.4). Not cached: each
    /// record is written once.
    pub async fn wrap(&self, key: &DataKey, bucket: &str) -> Result<Vec<u8>, KmsError> {
        let op = Op::Encrypt;
        let plaintext = Zeroizing::new(STANDARD.encode(key.expose()));
        let request = EncryptRequest {
            key_id: &self.settings.key_id,
            plaintext: &plaintext,
            encryption_context: context(Some(bucket)),
        };
        let mut answer = self.call(op, &request).await?;
        blob(op, &mut answer)
    }

    async fn decrypt(
        &self,
        key_id: &str,
        context: &BTreeMap<&str, &str>,
        wrapped: &[u8],
    ) -> Result<Arc<DataKey>, KmsError> {
        let op = Op::Decrypt;
        let request = DecryptRequest {
            key_id,
            ciphertext_blob: STANDARD.encode(wrapped),
            encryption_context: context.clone(),
        };
        let answer = self.call(op, &request).await?;
        Ok(Arc::new(plaintext_key(op, &answer.plaintext)?))
    }

    async fn call(&self, op: Op, request: &impl Serialize) -> Result<KeyAnswer, KmsError> {
        if let Some(m) = self.metrics.get() {
            m.kms_request(op.name());
        }
        let body = serde_json::to_vec(request).expect("plain structs serialize");
        let req = self.sign(op, body, SystemTime::now())?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| KmsError::Unreachable(error_chain(&e)))?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| KmsError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, KmsError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| KmsError::Timeout)??;
        parse_answer(op, status, &body)
    }

    /// A signed JSON 1.1 request for `op`.
    fn sign(&self, op: Op, body: Vec<u8>, now: SystemTime) -> Result<Request<Body>, KmsError> {
        let endpoint = &self.settings.endpoint;
        let authority = endpoint
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        let uri = format!(
            "{}://{authority}/",
            endpoint.scheme_str().unwrap_or("https")
        );
        let target = format!("TrentService.{}", op.name());
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, &authority)
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", &target)
            .header(header::CONTENT_LENGTH, body.len())
            .body(())
            .map_err(|e| KmsError::Signing(e.to_string()))?;
        self.signer
            .sign(&mut req, SignableBody::Bytes(&body), now)
            .map_err(|e| KmsError::Signing(e.to_string()))?;
        let (parts, ()) = req.into_parts();
        Ok(Request::from_parts(parts, body::full(Bytes::from(body))))
    }

    fn cache_hit(&self, op: Op) {
        if let Some(m) = self.metrics.get() {
            m.kms_cache_hit(op.name());
        }
    }
}

/// The read cache's key: the blob and the key it is opened with (an object relabelled to another
/// configured key must be opened by KMS under that key, not found in the cache).
/// What a cached key is found by: the KMS key, the context it was opened with (a blob opened
/// for one bucket must not be served for another without asking KMS) and the blob.
fn cache_id(key_id: &str, context: &BTreeMap<&str, &str>, wrapped: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    let pairs = context.iter().flat_map(|(k, v)| [*k, *v]);
    for field in std::iter::once(key_id).chain(pairs) {
        h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update(
        u32::try_from(context.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    h.update(wrapped);
    h.finalize().into()
}

/// Drops expired entries; if that leaves `max` or more, the oldest half, so a burst of
/// distinct blobs cannot grow a cache without bound.
fn evict<V>(
    cache: &mut HashMap<[u8; 32], V>,
    created: impl Fn(&V) -> Instant,
    ttl: Duration,
    max: usize,
) {
    cache.retain(|_, v| created(v).elapsed() < ttl);
    if cache.len() >= max {
        let mut ages: Vec<Instant> = cache.values().map(&created).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        cache.retain(|_, v| created(v) > cut);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A KMS answer: the key fields on 200, the error's `__type` and message otherwise.
fn parse_answer(op: Op, status: StatusCode, body: &[u8]) -> Result<KeyAnswer, KmsError> {
    if status.is_success() {
        return serde_json::from_slice(body)
            .map_err(|e| KmsError::Answer(op.name(), e.to_string()));
    }
    let err: ErrorAnswer = serde_json::from_slice(body).unwrap_or(ErrorAnswer {
        kind: None,
        message: None,
    });
    // `__type` may carry a namespace: `com.amazonaws.kms#NotFoundException`.
    let kind = err.kind.as_deref().map_or_else(
        || format!("HTTP {}", status.as_u16()),
        |k| k.rsplit('#').next().unwrap_or(k).to_owned(),
    );
    Err(KmsError::Refused {
        op: op.name(),
        kind,
        message: err.message.unwrap_or_default(),
    })
}

/// The answer's `CiphertextBlob`: base64, and as long as a wrapped data key may be.
fn blob(op: Op, answer: &mut KeyAnswer) -> Result<Vec<u8>, KmsError> {
    let blob = answer
        .ciphertext_blob
        .take()
        .ok_or_else(|| KmsError::Answer(op.name(), "no CiphertextBlob".into()))?;
    let blob = STANDARD
        .decode(blob)
        .map_err(|_| KmsError::Answer(op.name(), "CiphertextBlob is not base64".into()))?;
    if blob.is_empty() || blob.len() > MAX_WRAPPED_DEK_LEN {
        return Err(KmsError::Answer(
            op.name(),
            format!("a CiphertextBlob of {} bytes", blob.len()),
        ));
    }
    Ok(blob)
}

fn plaintext_key(op: Op, plaintext: &str) -> Result<DataKey, KmsError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(plaintext)
            .map_err(|_| KmsError::Answer(op.name(), "Plaintext is not base64".into()))?,
    );
    let raw: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        KmsError::Answer(op.name(), format!("a Plaintext of {} bytes", bytes.len()))
    })?;
    Ok(DataKey::from_bytes(raw))
}

#[cfg(test)]
mod tests;
