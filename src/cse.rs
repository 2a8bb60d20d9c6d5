//! Client-side encryption in the pipeline: the stage that applies `docs/format.md` to the
//! requests and answers of buckets whose `[[bucket]]` table has `encryption`.
//!
//! [`plan`] looks at a routed request before it is signed: it refuses what cannot be served
//! over ciphertext, writes the object metadata of a `PutObject` or `CreateMultipartUpload`,
//! takes an upload's keys from its upload id (`multipart`), and turns a plaintext `Range` into
//! the covering ciphertext chunks (with a HEAD first, for the object's size and, for a multipart
//! object, its seal; `read`). The [`Transform`] it returns then encrypts the request body
//! ([`Transform::seal_body`]), writes a completion's seal ([`Transform::document`]) and rewrites
//! the answer ([`Transform::reply`]): plaintext sizes, ranges and bodies, listing sizes, marked
//! `ETag`s, no ciphertext checksums. What each operation does is documented in
//! `docs/config.md` ("Client-side encryption").
//!
//! The stage's own upstream requests (HEADs, seals, `ListParts`) are signed like the client's
//! but are not counted in the metrics.

mod attributes;
mod bucket;
pub(crate) mod convert;
mod copy;
pub(crate) mod in_place;
mod listing;
mod multipart;
mod read;
pub(crate) mod record;
mod s3ec;

pub use read::RangeSpec;
pub use s3ec::{Large as S3ecLarge, Settings as S3ecSettings};

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::body::{self, Body, BoxError};
use crate::crypto::format::{
    plaintext_len, Binding, DataKey, FormatError, Kek, KeyId, Layout, ObjectKey, ObjectMetadata,
    PartKey, PartNumber, Place, Salt, Seal, Version, LOCAL_WRAPPED_DEK_LEN, META_PREFIX,
};
use crate::crypto::EncryptBody;
use crate::error::{ProxyError, S3Code, S3Error};
use crate::kms::{Kms, KmsError};
use crate::logging::{self, KeyOperation};
use crate::metrics::Metrics;
use crate::rules::ByBucket;
use crate::s3::headers;
use crate::s3::route::{BodyKind, CopySource, Operation, Routed, Target};
use crate::upstream::{Outgoing, Payload, Sender};

/// S3's limit on user metadata: names (without `x-amz-meta-`) plus values.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html>
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

/// The largest listing the proxy buffers to rewrite its sizes. A page holds at most 1000 keys of
/// at most 1024 bytes, plus owners and `ETag`s: about 1.5 MB.
pub const MAX_LISTING_BYTES: usize = 8 * 1024 * 1024;

const USER_META_PREFIX: &str = "x-amz-meta-";
const CHECKSUM_PREFIX: &str = "x-amz-checksum-";
/// Appended to the backend's `ETag` of every object in an encrypted bucket: the one `ETag` of an
/// object version, on every answer (docs/format.md §6.1).
const ETAG_SUFFIX: &str = "-s3seal";
/// Sent instead of a condition's `ETag` that no object of an encrypted bucket can have (one
/// without the suffix): not hex, so no backend's `ETag` equals it either.
const NO_ETAG: &str = "\"s3seal-no-such-etag\"";
/// Conditions on the addressed object's `ETag`.
const ETAG_CONDITIONS: [&str; 2] = ["if-match", "if-none-match"];
/// Conditions on a copy source's `ETag`.
const SOURCE_ETAG_CONDITIONS: [&str; 2] = [
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
];

// === Config ===

/// What happens to an object without s3seal metadata in an encrypted bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unencrypted {
    /// Served as stored: a bucket can be migrated gradually (`docs/format.md` §6).
    #[default]
    PassThrough,
    /// Refused with `InvalidObjectState`: once migration is complete, a stripped object cannot
    /// pass as plaintext (`docs/format.md` §8).
    Refuse,
}

/// The key-encryption keys of a bucket: one source for writes (a local key or a KMS key),
/// older local keys still readable.
#[derive(Debug)]
pub struct Keyring {
    active: Active,
    old: Vec<Kek>,
}

#[derive(Debug)]
enum Active {
    Local(Kek),
    Kms(Arc<Kms>),
}

impl Keyring {
    /// Refuses two keys with one id: an object names its key by id only.
    pub fn new(active: Kek, old: Vec<Kek>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for kek in std::iter::once(&active).chain(&old) {
            if !seen.insert(kek.id().as_str()) {
                return Err(format!("key id '{}' is used twice", kek.id().as_str()));
            }
        }
        Ok(Keyring {
            active: Active::Local(active),
            old,
        })
    }

    /// New data keys come from `kms`; the local `old` keys stay readable (a bucket moving
    /// from a local key to KMS).
    pub fn with_kms(kms: Kms, old: Vec<Kek>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for kek in &old {
            if !seen.insert(kek.id().as_str()) {
                return Err(format!("key id '{}' is used twice", kek.id().as_str()));
            }
        }
        Ok(Keyring {
            active: Active::Kms(Arc::new(kms)),
            old,
        })
    }

    /// Whether objects wrapped under `id` can be opened with this keyring.
    pub fn holds(&self, id: &KeyId) -> bool {
        match &self.active {
            Active::Kms(kms) if kms.key_for(id.as_str()).is_some() => true,
            Active::Local(_) | Active::Kms(_) => self.local().any(|k| k.id() == id),
        }
    }

    /// A data key for a new object at `place`, with the id and wrapped form to store.
    async fn data_key(&self, place: Place<'_>) -> Result<(KeyId, Arc<DataKey>, Vec<u8>), CseError> {
        match &self.active {
            Active::Local(kek) => {
                let dek = DataKey::generate();
                let wrapped = kek.wrap(&dek, Binding::V2(place));
                Ok((kek.id().clone(), Arc::new(dek), wrapped))
            }
            Active::Kms(kms) => {
                let (dek, wrapped) = kms.data_key(place.bucket).await?;
                let id = KeyId::new(kms.object_key_id()).map_err(CseError::Stored)?;
                Ok((id, dek, wrapped.to_vec()))
            }
        }
    }

    /// The data key wrapped under the key named `id`, bound as `binding` says.
    async fn unwrap(
        &self,
        id: &KeyId,
        wrapped: &[u8],
        binding: Binding<'_>,
    ) -> Result<Arc<DataKey>, CseError> {
        if let Active::Kms(kms) = &self.active {
            if let Some(key_id) = kms.key_for(id.as_str()) {
                return Ok(kms.open(key_id, binding.bucket(), wrapped).await?);
            }
        }
        let kek = self
            .local()
            .find(|k| k.id() == id)
            .ok_or_else(|| CseError::UnknownKey(id.as_str().to_owned()))?;
        Ok(Arc::new(kek.unwrap(wrapped, binding)?))
    }

    /// The data key of a wrap whose key is not named (an upload token's): local keys first,
    /// then KMS for anything that is not a local wrap.
    async fn unwrap_any(
        &self,
        wrapped: &[u8],
        binding: Binding<'_>,
    ) -> Result<Arc<DataKey>, CseError> {
        if let Some(dek) = self
            .local()
            .find_map(|kek| kek.unwrap(wrapped, binding).ok())
        {
            return Ok(Arc::new(dek));
        }
        match &self.active {
            // A blob KMS refuses came with the request, not from the backend: the client's.
            Active::Kms(kms) if wrapped.len() != LOCAL_WRAPPED_DEK_LEN => kms
                .open(kms.current(), binding.bucket(), wrapped)
                .await
                .map_err(|e| match e {
                    KmsError::Refused { .. } => CseError::UploadId,
                    other => CseError::Kms(other),
                }),
            Active::Local(_) | Active::Kms(_) => Err(CseError::UploadId),
        }
    }

    /// The id and wrap of `dek` under the active key, for a version 2 record at `place` (a
    /// copy, a rewrap or an upgrade, `docs/format.md` §5.4).
    async fn wrap(&self, dek: &DataKey, place: Place<'_>) -> Result<(KeyId, Vec<u8>), CseError> {
        match &self.active {
            Active::Local(kek) => Ok((kek.id().clone(), kek.wrap(dek, Binding::V2(place)))),
            Active::Kms(kms) => {
                let id = KeyId::new(kms.object_key_id()).map_err(CseError::Stored)?;
                Ok((id, kms.wrap(dek, place.bucket).await?))
            }
        }
    }

    fn is_active(&self, id: &KeyId) -> bool {
        match &self.active {
            Active::Local(kek) => kek.id() == id,
            Active::Kms(kms) => kms.object_key_id() == id.as_str(),
        }
    }

    fn local(&self) -> impl Iterator<Item = &Kek> {
        let active = match &self.active {
            Active::Local(kek) => Some(kek),
            Active::Kms(_) => None,
        };
        active.into_iter().chain(&self.old)
    }

    fn kms(&self) -> Option<&Kms> {
        match &self.active {
            Active::Kms(kms) => Some(kms),
            Active::Local(_) => None,
        }
    }
}

/// A bucket's client-side encryption rule.
pub struct Rule {
    keyring: Keyring,
    unencrypted: Unencrypted,
    /// Reading (and perhaps writing) the AWS S3 Encryption Client's objects.
    s3ec: Option<S3ecSettings>,
    metrics: OnceLock<Arc<Metrics>>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("keyring", &self.keyring)
            .field("unencrypted", &self.unencrypted)
            .field("s3ec", &self.s3ec)
            .finish_non_exhaustive()
    }
}

impl Rule {
    pub fn new(keyring: Keyring, unencrypted: Unencrypted) -> Self {
        Rule {
            keyring,
            unencrypted,
            s3ec: None,
            metrics: OnceLock::new(),
        }
    }

    /// The rule, also reading S3 Encryption Client objects (and writing them, if `settings`
    /// say so) with its keyring.
    #[must_use]
    pub fn with_s3ec(mut self, settings: S3ecSettings) -> Self {
        self.s3ec = Some(settings);
        self
    }

    /// Whether the rule reads S3 Encryption Client objects (`encryption.s3ec`).
    pub(crate) fn reads_s3ec(&self) -> bool {
        self.s3ec.is_some()
    }

    fn writes_s3ec(&self) -> bool {
        self.s3ec.as_ref().is_some_and(|s| s.write)
    }

    /// Unwraps the data key of the object read at `bucket`/`object` and checks its commitment
    /// (`docs/format.md` §5).
    async fn open(
        &self,
        meta: &ObjectMetadata,
        bucket: &str,
        object: &str,
    ) -> Result<ObjectKey, CseError> {
        let place = Place {
            bucket,
            key: object,
        };
        Ok(self.open_dek(meta, place).await?.1)
    }

    /// [`Rule::open`], with the data key itself (to wrap it again).
    async fn open_dek(
        &self,
        meta: &ObjectMetadata,
        place: Place<'_>,
    ) -> Result<(Arc<DataKey>, ObjectKey), CseError> {
        let opened = async {
            let binding = meta.binding(place);
            let dek = self
                .keyring
                .unwrap(&meta.key_id, &meta.wrapped_dek, binding)
                .await?;
            let key = meta.open(&dek, place)?;
            Ok((dek, key))
        }
        .await;
        self.count_failure("decrypt", opened.is_err());
        if opened.is_ok() {
            logging::key_use(
                KeyOperation::Decrypt,
                place.bucket,
                Some(place.key),
                meta.key_id.as_str(),
            );
        }
        opened
    }

    /// A data key for a new object at `place`.
    async fn data_key(&self, place: Place<'_>) -> Result<(KeyId, Arc<DataKey>, Vec<u8>), CseError> {
        let made = self.keyring.data_key(place).await;
        self.count_failure("encrypt", made.is_err());
        made
    }

    /// The version 2 record, under this rule's active key, of the object whose record `meta`,
    /// read at `from`, opened to `dek` and `key`, once it lives at `to`: a copy's, a rewrap's
    /// or an upgrade's (`docs/format.md` §5.4). Only the record changes: the salt, and so the
    /// data, stay. A KMS blob already bound to `to`'s bucket under the active key is kept.
    pub(crate) async fn record_at(
        &self,
        meta: &ObjectMetadata,
        (dek, key): (&DataKey, &ObjectKey),
        from: Place<'_>,
        to: Place<'_>,
        seal: Option<&Seal>,
    ) -> Result<ObjectMetadata, CseError> {
        let reusable = match &self.keyring.active {
            Active::Kms(kms) => {
                kms.object_key_id() == meta.key_id.as_str()
                    && meta.version == Version::V2
                    && from.bucket == to.bucket
            }
            Active::Local(_) => false,
        };
        let (key_id, wrapped) = if reusable {
            (meta.key_id.clone(), meta.wrapped_dek.clone())
        } else {
            self.keyring.wrap(dek, to).await?
        };
        logging::key_use(
            KeyOperation::Encrypt,
            to.bucket,
            Some(to.key),
            key_id.as_str(),
        );
        Ok(meta.moved(key, key_id, wrapped, to, seal))
    }

    fn count_failure(&self, op: &'static str, failed: bool) {
        if let (true, Some(m)) = (failed, self.metrics.get()) {
            m.crypto_failure(op);
        }
    }
}

/// Bucket glob → encryption rule. The first `[[bucket]]` whose pattern matches decides, as for
/// CORS; a table without `encryption` exempts its buckets from later patterns.
#[derive(Debug, Default)]
pub struct EncryptionRules(ByBucket<Option<Arc<Rule>>>);

impl EncryptionRules {
    pub fn none() -> Self {
        EncryptionRules(ByBucket::default())
    }

    /// From `(bucket glob, rule)` pairs in config order; `None` exempts the glob's buckets.
    /// The most specific matching glob decides (`crate::rules`), as for SSE rules.
    pub fn new(
        sets: impl IntoIterator<Item = (String, Option<Rule>)>,
    ) -> Result<Self, globset::Error> {
        Ok(EncryptionRules(ByBucket::new(
            sets.into_iter().map(|(p, r)| (p, r.map(Arc::new))),
        )?))
    }

    /// Where the rules count KMS calls and key failures: the proxy's metrics, set when a
    /// configuration generation is built.
    pub fn observe(&self, metrics: &Arc<Metrics>) {
        for rule in self.0.values().flatten() {
            let _ = rule.metrics.set(metrics.clone());
            if let Some(kms) = rule.keyring.kms() {
                kms.observe(metrics);
            }
        }
    }

    /// The distinct KMS endpoints the rules wrap keys with (for readiness probes).
    /// Each KMS endpoint once, and whether readiness requires it (when any rule using it
    /// does).
    pub fn kms_endpoints(&self) -> Vec<(&http::Uri, bool)> {
        let mut out: Vec<(&http::Uri, bool)> = Vec::new();
        for kms in self.0.values().flatten().filter_map(|r| r.keyring.kms()) {
            let required = kms.required_for_readiness();
            match out.iter_mut().find(|(e, _)| *e == kms.endpoint()) {
                Some((_, r)) => *r |= required,
                None => out.push((kms.endpoint(), required)),
            }
        }
        out
    }

    pub fn for_bucket(&self, bucket: &str) -> Option<&Arc<Rule>> {
        self.0.get(bucket).and_then(Option::as_ref)
    }
}

// === Errors ===

#[derive(Debug, thiserror::Error)]
pub enum CseError {
    #[error("{0} is not supported on a bucket with client-side encryption.")]
    Unsupported(&'static str),
    #[error("Metadata names starting with 's3seal-' are reserved for the proxy.")]
    ReservedMetadata,
    #[error("Keys starting with '.s3seal/' are reserved for the proxy in this bucket.")]
    ReservedKey,
    #[error("The upload id does not carry the keys of an upload started through this proxy.")]
    UploadId,
    /// S3's words.
    #[error("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag (part {0}).")]
    InvalidPart(u32),
    #[error("The list of parts was not in ascending order. The parts list must be specified in order by part number.")]
    PartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed size (part {0}).")]
    PartTooSmall(u32),
    #[error("The XML you provided was not well-formed or did not validate against our published schema.")]
    CompletionXml,
    #[error("The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")]
    NoSuchUpload,
    #[error("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")]
    CopyRange,
    #[error("Range specified is not valid for source object{}", .0.map(|n| format!(" of size: {n}")).unwrap_or_default())]
    CopyRangeSize(Option<u64>),
    #[error("Your metadata headers exceed the maximum allowed metadata size ({MAX_USER_METADATA_BYTES} bytes, including the proxy's {0} bytes).")]
    MetadataTooLarge(usize),
    #[error("Part number must be an integer between 1 and 10000, inclusive.")]
    PartNumber,
    #[error("The requested partnumber is not satisfiable (the object has no part {0}).")]
    NoSuchPart(u32),
    #[error("Cannot specify both Range header and partNumber query parameter.")]
    PartAndRange,
    #[error("The requested range is not satisfiable (the object has {0} bytes).")]
    InvalidRange(u64),
    #[error("The object has no client-side encryption metadata, and this bucket refuses unencrypted objects.")]
    Unencrypted,
    #[error("The x-amz-copy-source header is not of the form bucket/key.")]
    BadCopySource,
    /// The object (or copy source) a request needs: the backend's status for it.
    #[error("The object could not be read ({0}).")]
    Read(StatusCode),
    #[error("Your object is too large to encrypt: {0}")]
    TooLarge(#[source] FormatError),
    /// `s3seal encrypt` writes an object back with one `PutObject`.
    #[error("The object ({0} bytes) is too large to encrypt in place: its ciphertext would exceed the 5 GiB of a single PutObject.")]
    TooLargeInPlace(u64),
    /// `s3seal encrypt` met ciphertext of the AWS S3 Encryption Client (or one of its
    /// instruction files): encrypting it again would serve that ciphertext as the plaintext.
    #[error("The object is encrypted by the AWS S3 Encryption Client already; `s3seal convert --to s3seal` converts it.")]
    S3ecInPlace,
    #[error(
        "The stored object is wrapped with key '{0}', which this bucket's keyring does not hold."
    )]
    UnknownKey(String),
    #[error("The stored object cannot be decrypted: {0}")]
    Stored(#[from] FormatError),
    /// The backend's answers do not fit together (sizes, seal, HEAD against GET).
    #[error("The stored object cannot be served: {0}")]
    Inconsistent(String),
    #[error("The upstream's answer could not be read: {0}")]
    Answer(String),
    #[error("The object's data key could not be made or opened: {0}")]
    Kms(#[from] KmsError),
    /// A version 2 multipart object the backend completed, whose record has no seal yet.
    #[error("The object's upload is still being completed; retry the request.")]
    SealPending,
    #[error("The stored S3 Encryption Client object cannot be decrypted: {0}")]
    S3ec(#[from] crate::crypto::s3ec::S3ecError),
    #[error("The stored S3 Encryption Client object does not authenticate: {0}")]
    S3ecBody(#[source] BoxError),
    /// The instruction file an object needs: the backend's status for it.
    #[error("The S3 Encryption Client object's instruction file could not be read ({0}).")]
    InstructionFile(StatusCode),
    /// A read of an instruction file itself: the record of the object named, which the proxy
    /// hides as it hides its own (`docs/format.md` §11.2).
    #[error("This object is the S3 Encryption Client's instruction file of the object '{0}', which s3seal does not serve: read '{0}' instead.")]
    S3ecInstructionFile(String),
    #[error("The object was written by the S3 Encryption Client as one authenticated message of {size} bytes; this bucket releases such objects only after verifying them whole, up to {limit} bytes (encryption.s3ec.max_verified_bytes, or large_objects = \"stream-with-abort\").")]
    S3ecTooLarge { size: u64, limit: u64 },
    #[error("The object was written by the S3 Encryption Client: a part of it cannot be authenticated, and this bucket does not serve unauthenticated ranged reads (encryption.s3ec.ranged_reads).")]
    S3ecRange,
    #[error("This bucket writes S3 Encryption Client objects, which are one message each: multipart uploads are not supported; use a single PutObject.")]
    S3ecMultipart,
    #[error("Your object ({0} bytes) is too large for one S3 Encryption Client message.")]
    S3ecTooLargeToWrite(u64),
    /// More runs of equal part sizes than the record has room for (`docs/format.md` §7).
    #[error("The parts of this upload vary in size too often to be sealed: at most {0} runs of consecutive parts of one size (all parts of one size but the last is one or two runs).")]
    IrregularParts(usize),
}

impl S3Error for CseError {
    fn code(&self) -> S3Code {
        match self {
            CseError::Unsupported(_) | CseError::S3ecMultipart => S3Code::NotImplemented,
            CseError::ReservedMetadata
            | CseError::BadCopySource
            | CseError::UploadId
            | CseError::PartNumber
            | CseError::CopyRange
            | CseError::CopyRangeSize(_) => S3Code::InvalidArgument,
            CseError::NoSuchPart(_) => S3Code::InvalidPartNumber,
            CseError::ReservedKey | CseError::S3ecInstructionFile(_) => S3Code::AccessDenied,
            CseError::InvalidPart(_) => S3Code::InvalidPart,
            CseError::PartOrder => S3Code::InvalidPartOrder,
            CseError::PartTooSmall(_) => S3Code::EntityTooSmall,
            CseError::CompletionXml => S3Code::MalformedXML,
            CseError::NoSuchUpload => S3Code::NoSuchUpload,
            CseError::MetadataTooLarge(_) => S3Code::MetadataTooLarge,
            CseError::InvalidRange(_) => S3Code::InvalidRange,
            CseError::Unencrypted | CseError::S3ecTooLarge { .. } | CseError::S3ecInPlace => {
                S3Code::InvalidObjectState
            }
            CseError::PartAndRange | CseError::IrregularParts(_) | CseError::S3ecRange => {
                S3Code::InvalidRequest
            }
            CseError::TooLarge(_)
            | CseError::TooLargeInPlace(_)
            | CseError::S3ecTooLargeToWrite(_) => S3Code::EntityTooLarge,
            CseError::Read(status) => match *status {
                StatusCode::NOT_FOUND => S3Code::NoSuchKey,
                StatusCode::PRECONDITION_FAILED | StatusCode::NOT_MODIFIED => {
                    S3Code::PreconditionFailed
                }
                StatusCode::RANGE_NOT_SATISFIABLE => S3Code::InvalidRange,
                StatusCode::FORBIDDEN => S3Code::AccessDenied,
                _ => S3Code::InternalError,
            },
            CseError::UnknownKey(_)
            | CseError::Stored(_)
            | CseError::Inconsistent(_)
            | CseError::Answer(_) => S3Code::InternalError,
            CseError::Kms(e) => e.code(),
            CseError::SealPending => S3Code::SlowDown,
            CseError::S3ec(_) | CseError::S3ecBody(_) | CseError::InstructionFile(_) => {
                S3Code::InternalError
            }
        }
    }
}

/// Errors about what the backend stores are the upstream's side; the client's own mistakes are
/// downstream.
impl From<CseError> for ProxyError {
    fn from(e: CseError) -> Self {
        match e {
            CseError::UnknownKey(_)
            | CseError::Stored(_)
            | CseError::Inconsistent(_)
            | CseError::Answer(_)
            | CseError::Kms(_)
            | CseError::SealPending
            | CseError::S3ec(_)
            | CseError::S3ecBody(_)
            | CseError::InstructionFile(_) => ProxyError::upstream(e),
            CseError::Unsupported(_)
            | CseError::ReservedMetadata
            | CseError::ReservedKey
            | CseError::S3ecInstructionFile(_)
            | CseError::UploadId
            | CseError::InvalidPart(_)
            | CseError::PartOrder
            | CseError::PartTooSmall(_)
            | CseError::CompletionXml
            | CseError::NoSuchUpload
            | CseError::CopyRange
            | CseError::CopyRangeSize(_)
            | CseError::MetadataTooLarge(_)
            | CseError::PartNumber
            | CseError::NoSuchPart(_)
            | CseError::PartAndRange
            | CseError::InvalidRange(_)
            | CseError::Unencrypted
            | CseError::BadCopySource
            | CseError::Read(_)
            | CseError::IrregularParts(_)
            | CseError::TooLarge(_)
            | CseError::TooLargeInPlace(_)
            | CseError::S3ecInPlace
            | CseError::S3ecTooLarge { .. }
            | CseError::S3ecRange
            | CseError::S3ecMultipart
            | CseError::S3ecTooLargeToWrite(_) => ProxyError::downstream(e),
        }
    }
}

// === Plan ===

/// What the stage does to one request's body and answer.
pub enum Transform {
    /// Not an encrypted bucket, or an operation the stage leaves alone.
    Pass,
    /// `PutObject` or `UploadPart`: the body is encrypted under `key`; the answer's `ETag`
    /// gets `mark` (an object's, or the part's).
    Seal { key: Option<PartKey>, mark: String },
    /// `PutObject` in a bucket that writes S3 Encryption Client objects: the body becomes one
    /// GCM message under this cipher.
    SealS3ec(Option<crate::crypto::s3ec::ContentCipher>),
    /// `GetObject` or `HeadObject`: plaintext sizes, and a decrypted body.
    Open(read::Open),
    /// A listing: plaintext sizes, the proxy's seals hidden.
    List,
    /// `ListParts`: plaintext part sizes, part `ETag`s as UploadPart showed them, and the
    /// upload id as the client knows it.
    ListParts { token: String, key: ObjectKey },
    /// `CreateMultipartUpload`: the answer's upload id carries the upload's keys.
    Created(multipart::Created),
    /// `CompleteMultipartUpload`: the seal is written once the client's part list is known.
    Complete(multipart::Complete),
    /// `CopyObject` into an encrypted bucket, and `AbortMultipartUpload`: the answer's
    /// checksums are hidden.
    Copy,
    /// `UploadPartCopy` with an encrypted source or destination: an `UploadPart` of the
    /// source's plaintext.
    CopyPart(copy::CopyPart),
    /// `GetObjectAttributes`: sent as a HEAD, answered by the proxy.
    Attributes(attributes::Attributes),
    /// `DeleteBucket`: the proxy's own leftovers must not keep an emptied bucket alive.
    DeleteBucket(Target),
}

/// Decides what the request needs, and returns the upstream request rewritten for it with the
/// [`Transform`] of its body and answer. May ask the upstream first: a HEAD for a ranged GET
/// (the object's size and keys), the seal of a multipart object, or a copy source's keys.
pub async fn plan<'o>(
    rules: &EncryptionRules,
    routed: &Routed,
    upstream: &Sender<'_>,
    mut out: Outgoing<'o>,
) -> Result<(Outgoing<'o>, Transform), ProxyError> {
    let transform = plan_for(rules, routed, upstream, &mut out).await?;
    Ok((out, transform))
}

/// [`plan`] on the upstream request it owns.
async fn plan_for(
    rules: &EncryptionRules,
    routed: &Routed,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let rule = routed.target.bucket().and_then(|b| rules.for_bucket(b));
    let copy = matches!(routed.op, Operation::CopyObject | Operation::UploadPartCopy);
    if rule.is_some() {
        // RGW 16 compares the conditions of writes with its `ETag` unquoted; reads unquote
        // them, and moto compares a HEAD's with the quoted one. S3 takes both.
        let quoted = matches!(out.method, Method::GET | Method::HEAD);
        backend_conditions(&mut out.headers, ETAG_CONDITIONS, quoted);
    }
    let encrypted_source = routed
        .copy_source
        .as_ref()
        .is_some_and(|s| rules.for_bucket(&s.bucket).is_some());
    if copy && encrypted_source {
        backend_conditions(&mut out.headers, SOURCE_ETAG_CONDITIONS, true);
    }
    let Some(rule) = rule else {
        // A copy out of an encrypted bucket matters even when the destination has no rule.
        return if copy {
            plan_copy(rules, routed, None, upstream, out).await
        } else {
            Ok(Transform::Pass)
        };
    };
    if routed
        .target
        .key()
        .is_some_and(|k| k.starts_with(multipart::SEAL_PREFIX))
    {
        return Err(CseError::ReservedKey.into());
    }
    match routed.op {
        Operation::PutObject if rule.writes_s3ec() => Ok(s3ec::plan_put(rule, out).await?),
        Operation::PutObject => Ok(plan_put(rule, out).await?),
        Operation::CreateMultipartUpload if rule.writes_s3ec() => {
            Err(CseError::S3ecMultipart.into())
        }
        Operation::GetObject => read::plan_get(rule, upstream, out).await,
        Operation::HeadObject => read::plan_head(rule, upstream, out).await,
        Operation::ListObjects | Operation::ListObjectsV2 | Operation::ListObjectVersions => {
            Ok(Transform::List)
        }
        Operation::CreateMultipartUpload => Ok(multipart::plan_create(rule, out).await?),
        Operation::UploadPart => Ok(multipart::plan_part(rule, out).await?),
        Operation::CompleteMultipartUpload => Ok(multipart::plan_complete(rule, out).await?),
        Operation::ListParts => Ok(multipart::plan_list_parts(rule, out).await?),
        Operation::AbortMultipartUpload => {
            multipart::plan_abort(out);
            Ok(Transform::Copy)
        }
        // A form body would store plaintext: the pipeline turns every verified form upload
        // into the PutObject that stores it before this stage, and this keeps it so.
        Operation::PostObject => Err(CseError::Unsupported("PostObject").into()),
        Operation::SelectObjectContent => Err(CseError::Unsupported("SelectObjectContent").into()),
        Operation::GetObjectAttributes => Ok(attributes::plan(rule, out)),
        Operation::DeleteBucket => Ok(Transform::DeleteBucket(out.target.clone())),
        Operation::CopyObject | Operation::UploadPartCopy => {
            plan_copy(rules, routed, Some(rule), upstream, out).await
        }
        Operation::ListBuckets
        | Operation::CreateBucket
        | Operation::HeadBucket
        | Operation::ListMultipartUploads
        | Operation::DeleteObjects
        | Operation::DeleteObject
        | Operation::RestoreObject
        | Operation::GetBucketLocation
        | Operation::BucketConfig(..)
        | Operation::ObjectConfig(..)
        | Operation::CorsPreflight => Ok(Transform::Pass),
    }
}

async fn plan_put(rule: &Rule, out: &mut Outgoing<'_>) -> Result<Transform, CseError> {
    let (key, _) = write_metadata(rule, Layout::Single, out).await?;
    Ok(Transform::Seal {
        key: Some(key.part_key(PartNumber::SINGLE)),
        mark: ETAG_SUFFIX.to_owned(),
    })
}

/// Creates the keys of a new object and puts their record into the request's metadata. The
/// client's checksums describe the plaintext: `VerifiedBody` checks them, and the backend must
/// not check them against the ciphertext (nor store them). A multipart object's record keeps
/// room for the seal its completion adds (`docs/format.md` §7).
async fn write_metadata(
    rule: &Rule,
    layout: Layout,
    out: &mut Outgoing<'_>,
) -> Result<(ObjectKey, ObjectMetadata), CseError> {
    check_client_metadata(&out.headers)?;
    strip_checksums(&mut out.headers);
    out.headers.remove(headers::CONTENT_MD5);
    let place = place(out.target);
    let (key_id, dek, wrapped) = rule.data_key(place).await?;
    let key = ObjectKey::derive(&dek, Salt::generate());
    let meta = ObjectMetadata::new(layout, key_id, wrapped, &key, place);
    let reserved = match layout {
        Layout::Single => 0,
        Layout::Multipart => ObjectMetadata::seal_field_len(multipart::MAX_SEAL_BYTES),
    };
    let ours = meta.encoded_len() + reserved;
    if user_metadata_len(&out.headers) + ours > MAX_USER_METADATA_BYTES {
        return Err(CseError::MetadataTooLarge(ours));
    }
    meta.write_headers(&mut out.headers);
    logging::key_use(
        KeyOperation::Encrypt,
        place.bucket,
        Some(place.key),
        meta.key_id.as_str(),
    );
    Ok((key, meta))
}

/// The place of a request's object (of its bucket alone, with an empty key, for a bucket's).
fn place(target: &Target) -> Place<'_> {
    Place {
        bucket: target.bucket().unwrap_or_default(),
        key: target.key().unwrap_or_default(),
    }
}

async fn plan_copy(
    rules: &EncryptionRules,
    routed: &Routed,
    dest: Option<&Arc<Rule>>,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let CopySource {
        bucket: src_bucket,
        key: src_key,
        version_id: version,
    } = routed.copy_source.clone().ok_or(CseError::BadCopySource)?;
    let src = rules.for_bucket(&src_bucket);
    if src.is_none() && dest.is_none() {
        return Ok(Transform::Pass);
    }
    if src_key.starts_with(multipart::SEAL_PREFIX) && src.is_some() {
        return Err(CseError::ReservedKey.into());
    }
    if out.query.iter().any(|(k, _)| k == "uploadId") {
        let source = copy::Source {
            bucket: src_bucket,
            key: src_key,
            version,
        };
        return copy::plan_part(src, dest, source, upstream, out).await;
    }
    let (Some(src), Some(dest)) = (src, dest) else {
        let source = copy::Source {
            bucket: src_bucket,
            key: src_key,
            version,
        };
        return copy::plan_object(src, dest, source, upstream, out).await;
    };
    if src_key.starts_with(multipart::SEAL_PREFIX)
        || out
            .target
            .key()
            .is_some_and(|k| k.starts_with(multipart::SEAL_PREFIX))
    {
        return Err(CseError::ReservedKey.into());
    }
    check_client_metadata(&out.headers)?;
    let source = Target::Object {
        bucket: src_bucket.clone(),
        key: src_key,
    };
    let query = version
        .map(|v| vec![("versionId".to_owned(), v)])
        .unwrap_or_default();
    // The source's conditions are evaluated here too: RGW 16 ignores them on CopyObject.
    let mut conditions = HeaderMap::new();
    for (from, to) in copy::SOURCE_CONDITIONS {
        for v in out.headers.get_all(from) {
            conditions.append(to.clone(), v.clone());
        }
    }
    let head = head(upstream, &source, query, conditions).await?;
    match head.status() {
        StatusCode::OK => {}
        // S3 answers any failed copy-source condition with 412.
        // Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>
        StatusCode::PRECONDITION_FAILED | StatusCode::NOT_MODIFIED => {
            return Err(CseError::Read(StatusCode::PRECONDITION_FAILED).into());
        }
        // The copy itself answers with the backend's error.
        _ => return Ok(Transform::Copy),
    }
    copy_between(src, dest, &source, head.headers(), upstream, out).await
}

/// A CopyObject between two encrypted buckets, once the source's HEAD answered `head`: the
/// backend copies the ciphertext, with the destination's own record.
async fn copy_between(
    src: &Rule,
    dest: &Rule,
    source: &Target,
    head: &HeaderMap,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let Some(meta) = ObjectMetadata::from_headers(head).map_err(CseError::Stored)? else {
        if dest.unencrypted == Unencrypted::Refuse {
            return Err(CseError::Unencrypted.into());
        }
        return Ok(Transform::Copy);
    };
    // The copy's record is the source's, bound to the destination and wrapped under its
    // bucket's active key (`docs/format.md` §5.4); the backend copies the bytes.
    let from = place(source);
    let to = place(out.target);
    let (dek, key) = src.open_dek(&meta, from).await?;
    let seal = match (meta.layout, meta.version) {
        (Layout::Single, _) => None,
        (Layout::Multipart, Version::V1) => {
            Some(multipart::load_seal(upstream, from.bucket, &key).await?)
        }
        (Layout::Multipart, Version::V2) => Some(
            meta.seal(&key)
                .map_err(CseError::Stored)?
                .ok_or(CseError::SealPending)?,
        ),
    };
    let record = dest
        .record_at(&meta, (&dek, &key), from, to, seal.as_ref())
        .await?;
    let replace = out
        .headers
        .get(headers::X_AMZ_METADATA_DIRECTIVE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
    if !replace {
        // S3's `COPY`: the source's metadata and content headers, not the request's. The
        // record differs, so the backend is asked to `REPLACE` with the source's own.
        let requested: Vec<HeaderName> = (out.headers.keys())
            .filter(|name| {
                name.as_str().starts_with(USER_META_PREFIX)
                    || headers::OBJECT_DESCRIPTION.contains(name)
            })
            .cloned()
            .collect();
        for name in requested {
            out.headers.remove(name);
        }
        for (name, value) in head {
            let user = name.as_str().starts_with(USER_META_PREFIX)
                && !name.as_str().starts_with(META_PREFIX);
            if user || headers::OBJECT_DESCRIPTION.contains(name) {
                out.headers.append(name.clone(), value.clone());
            }
        }
        out.headers.insert(
            headers::X_AMZ_METADATA_DIRECTIVE,
            HeaderValue::from_static("REPLACE"),
        );
    }
    if user_metadata_len(&out.headers) + record.encoded_len() > MAX_USER_METADATA_BYTES {
        return Err(CseError::MetadataTooLarge(record.encoded_len()).into());
    }
    record.write_headers(&mut out.headers);
    // The backend copies the very version whose record was read.
    if let Some(etag) = head.get(header::ETAG) {
        out.headers.insert(
            HeaderName::from_static("x-amz-copy-source-if-match"),
            etag.clone(),
        );
    }
    Ok(Transform::Copy)
}

/// `CopyObject` or `UploadPartCopy` made by the proxy whatever the buckets' client-side
/// rules: the backend cannot copy what the SSE rules ask for (`docs/policy.md`, "Copies the
/// backend cannot make"). The source is read with the copy's conditions, version, range and
/// SSE-C key, and written with the request's remaining headers (the destination's SSE headers
/// among them) as a `PutObject` or `UploadPart`, streaming.
pub async fn copy_through_proxy<'o>(
    routed: &Routed,
    upstream: &Sender<'_>,
    mut out: Outgoing<'o>,
) -> Result<(Outgoing<'o>, Transform), ProxyError> {
    let CopySource {
        bucket,
        key,
        version_id: version,
    } = routed.copy_source.clone().ok_or(CseError::BadCopySource)?;
    let source = copy::Source {
        bucket,
        key,
        version,
    };
    // As in `plan_copy`: the upload id is what makes a copy a part's.
    let transform = if out.upload_id().is_some() {
        copy::plan_part(None, None, source, upstream, &mut out).await
    } else {
        copy::plan_object(None, None, source, upstream, &mut out).await
    }?;
    Ok((out, transform))
}

/// What `s3seal rewrap` did to one object.
pub(crate) enum Rewrap {
    /// A version 2 record under the active key already.
    Current,
    /// No record: written before encryption was on.
    Unencrypted,
    /// Rewritten (or, in a dry run, to be), with the id of the old key.
    Rewrapped(String),
}

/// Gives the object at `target`, whose HEAD answered `head`, a version 2 record under the
/// rule's active key, with its seal inside if it is a multipart object (`docs/format.md`
/// §5.4). The data stays where it is.
pub(crate) async fn rewrap_object(
    rule: &Rule,
    upstream: &Sender<'_>,
    target: &Target,
    head: &HeaderMap,
    dry_run: bool,
) -> Result<Rewrap, ProxyError> {
    let Some(meta) = ObjectMetadata::from_headers(head).map_err(CseError::Stored)? else {
        return Ok(Rewrap::Unencrypted);
    };
    if meta.version == Version::V2 && rule.keyring.is_active(&meta.key_id) {
        return Ok(Rewrap::Current);
    }
    let done = Rewrap::Rewrapped(meta.key_id.as_str().to_owned());
    if dry_run {
        return Ok(done);
    }
    let place = place(target);
    let (dek, key) = rule.open_dek(&meta, place).await?;
    let seal = match (meta.layout, meta.version) {
        (Layout::Single, _) => None,
        (Layout::Multipart, Version::V1) => {
            Some(multipart::load_seal(upstream, place.bucket, &key).await?)
        }
        (Layout::Multipart, Version::V2) => Some(
            meta.seal(&key)
                .map_err(CseError::Stored)?
                .ok_or(CseError::SealPending)?,
        ),
    };
    let record = rule
        .record_at(&meta, (&dek, &key), place, place, seal.as_ref())
        .await?;
    record::rewrite(
        upstream,
        target,
        None,
        head,
        &record,
        record::MAX_COPY_OBJECT_SIZE,
    )
    .await?;
    Ok(done)
}

/// Only `versionId` selects what a GET reads; `response-*` overrides mean nothing to a HEAD.
fn version_query(query: &[(String, String)]) -> Vec<(String, String)> {
    query
        .iter()
        .filter(|(k, _)| k == "versionId")
        .cloned()
        .collect()
}

async fn head(
    upstream: &Sender<'_>,
    target: &Target,
    query: Vec<(String, String)>,
    headers: HeaderMap,
) -> Result<Response<()>, ProxyError> {
    let out = Outgoing {
        method: Method::HEAD,
        target,
        query,
        headers,
        content_length: None,
    };
    let req = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(req).await.map_err(ProxyError::upstream)?;
    Ok(resp.map(|_| ()))
}

/// A small request of the proxy's own (seals, part lists), answered with a bounded body.
async fn call(
    upstream: &Sender<'_>,
    out: Outgoing<'_>,
    body: Bytes,
    limit: usize,
) -> Result<(StatusCode, Bytes), ProxyError> {
    let (status, _, body) = exchange(upstream, out, body, limit).await?;
    Ok((status, body))
}

/// [`call`], with the answer's headers.
async fn exchange(
    upstream: &Sender<'_>,
    mut out: Outgoing<'_>,
    body: Bytes,
    limit: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), ProxyError> {
    out.content_length =
        (!body.is_empty() || out.method == Method::PUT).then_some(body.len() as u64);
    let req = upstream
        .sign(
            out,
            &Payload::Known(&body),
            body::full(body.clone()),
            SystemTime::now(),
        )
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(req).await.map_err(ProxyError::upstream)?;
    let (parts, body) = resp.into_parts();
    let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
    Ok((
        parts.status,
        parts.headers,
        collect_bounded(body, limit).await?,
    ))
}

fn check_client_metadata(h: &HeaderMap) -> Result<(), CseError> {
    if h.keys().any(|n| n.as_str().starts_with(META_PREFIX)) {
        return Err(CseError::ReservedMetadata);
    }
    Ok(())
}

/// User metadata as S3 counts it: names without `x-amz-meta-`, plus values.
fn user_metadata_len(h: &HeaderMap) -> usize {
    h.iter()
        .filter_map(|(n, v)| {
            n.as_str()
                .strip_prefix(USER_META_PREFIX)
                .map(|n| n.len() + v.len())
        })
        .sum()
}

fn strip_checksums(h: &mut HeaderMap) {
    let names: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().starts_with(CHECKSUM_PREFIX))
        .cloned()
        .collect();
    for n in names {
        h.remove(n);
    }
}

/// An encrypted bucket's object `ETag` as the client sees it, from the backend's (quoted or
/// not, as RGW writes some).
fn client_etag(backend: &str) -> String {
    marked(backend, ETAG_SUFFIX)
}

/// What the `ETag`s of part `n` of `len` plaintext bytes carry in an upload:
/// `-<hex tag>-s3seal` (docs/format.md §6.1).
fn part_mark(key: &ObjectKey, n: PartNumber, len: u64) -> String {
    format!("-{}{ETAG_SUFFIX}", hex(&key.part_etag_tag(n, len)))
}

/// `etag` with `mark` appended, quoted as S3 quotes every `ETag`.
fn marked(etag: &str, mark: &str) -> String {
    format!("\"{}{mark}\"", unquoted(etag))
}

fn unquoted(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(etag)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The backend's `ETag` for an object `ETag` the proxy showed, quoted; others are returned
/// as they are.
fn backend_etag(shown: &str) -> String {
    match unquoted(shown).strip_suffix(ETAG_SUFFIX) {
        Some(inner) => format!("\"{inner}\""),
        None => shown.to_owned(),
    }
}

/// Shows the backend's `ETag` header with `mark` (an object's, or a part's).
fn mark_etag(h: &mut HeaderMap, mark: &str) -> Result<(), CseError> {
    if let Some(etag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        let shown = HeaderValue::try_from(marked(etag, mark))
            .map_err(|e| CseError::Inconsistent(format!("the upstream's ETag: {e}")))?;
        h.insert(header::ETAG, shown);
    }
    Ok(())
}

/// Conditions on the `ETag`s of an encrypted bucket's objects go to the backend with the
/// backend's `ETag`s, so they hold exactly when they would on S3 given the `ETag`s the proxy
/// shows: a marked `ETag` becomes the backend's; any other (not `*`) is no object's `ETag` here.
/// Reference: <https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1> (lists, weak tags).
fn backend_conditions(h: &mut HeaderMap, names: [&'static str; 2], quoted: bool) {
    for name in names {
        let values: Vec<HeaderValue> = h
            .get_all(name)
            .iter()
            .map(|v| {
                let Ok(text) = v.to_str() else {
                    // Not ASCII: no backend's ETag either.
                    return HeaderValue::from_static(NO_ETAG);
                };
                let tags: Vec<String> = text
                    .split(',')
                    .map(|t| condition_tag(t.trim(), quoted))
                    .collect();
                HeaderValue::try_from(tags.join(", ")).unwrap_or(HeaderValue::from_static(NO_ETAG))
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        h.remove(name);
        for v in values {
            h.append(name, v);
        }
    }
}

/// One entity tag of a condition, as the backend knows it.
fn condition_tag(tag: &str, quoted: bool) -> String {
    if tag == "*" {
        return tag.to_owned();
    }
    let (weak, opaque) = match tag.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", tag),
    };
    match unquoted(opaque).strip_suffix(ETAG_SUFFIX) {
        Some(backend) if !backend.is_empty() && (quoted || !weak.is_empty()) => {
            format!("{weak}\"{backend}\"")
        }
        Some(backend) if !backend.is_empty() => backend.to_owned(),
        _ => NO_ETAG.to_owned(),
    }
}

/// The proxy's record is no business of the client's (`docs/format.md` §6), and ciphertext
/// checksums must never reach it (a GET with `x-amz-checksum-mode` would check them against
/// the plaintext).
fn strip_stored_headers(h: &mut HeaderMap) {
    strip_checksums(h);
    let names: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().starts_with(META_PREFIX))
        .cloned()
        .collect();
    for n in names {
        h.remove(n);
    }
}

fn content_length(h: &HeaderMap) -> Result<u64, CseError> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CseError::Inconsistent("the upstream sent no Content-Length".into()))
}

fn object_plaintext_len(stored: u64) -> Result<u64, CseError> {
    plaintext_len(stored)
        .ok_or_else(|| CseError::Inconsistent(format!("{stored} bytes is no ciphertext length")))
}

// === Bodies and answers ===

impl Transform {
    /// Whether the stage leaves the request and its answer alone.
    pub fn is_pass(&self) -> bool {
        matches!(self, Transform::Pass)
    }

    /// How the pipeline reads the request body: an `UploadPartCopy` planned as a copied part
    /// sends a data body (the source's), whatever the operation's own body is.
    pub fn body_kind(&self, routed: BodyKind) -> BodyKind {
        match self {
            Transform::CopyPart(_) => BodyKind::Data,
            Transform::Pass
            | Transform::Seal { .. }
            | Transform::SealS3ec(_)
            | Transform::Open(_)
            | Transform::List
            | Transform::ListParts { .. }
            | Transform::Created(_)
            | Transform::Complete(_)
            | Transform::Copy
            | Transform::Attributes(_)
            | Transform::DeleteBucket(_) => routed,
        }
    }

    /// The body to send upstream with the request that declares its length, and whether the
    /// client's trailing checksum goes with it (never over ciphertext: it describes the
    /// plaintext).
    pub fn seal_body<'o, T>(
        &mut self,
        mut out: Outgoing<'o>,
        body: Body,
        trailer: Option<T>,
    ) -> Result<(Outgoing<'o>, Body, Option<T>), ProxyError> {
        let twice = || ProxyError::Internal("the request body was sealed twice".to_owned());
        match self {
            Transform::Seal { key, .. } => {
                let key = key.take().ok_or_else(twice)?;
                let body = encrypt(&mut out, body, key)?;
                Ok((out, body, None))
            }
            Transform::SealS3ec(cipher) => {
                let cipher = cipher.take().ok_or_else(twice)?;
                let body = s3ec::seal(&mut out, body, &cipher)?;
                Ok((out, body, None))
            }
            // The client's body is empty: the part is the source's plaintext.
            Transform::CopyPart(part) => {
                let source = part.source.take().ok_or_else(twice)?;
                let body = match part.key.take() {
                    Some(key) => encrypt(&mut out, source, key)?,
                    None => source,
                };
                Ok((out, body, None))
            }
            Transform::Pass
            | Transform::Open(_)
            | Transform::List
            | Transform::ListParts { .. }
            | Transform::Created(_)
            | Transform::Complete(_)
            | Transform::Copy
            | Transform::Attributes(_)
            | Transform::DeleteBucket(_) => Ok((out, body, trailer)),
        }
    }

    /// Sees a buffered request document before it is sent: a completion's part list. (`&mut`:
    /// a copied part's source body is `Send` but not `Sync`.)
    /// Returns the document to send: a completion names the backend's part `ETag`s.
    pub async fn document(
        &mut self,
        upstream: &Sender<'_>,
        out: &Outgoing<'_>,
        doc: Bytes,
    ) -> Result<Bytes, ProxyError> {
        match self {
            Transform::Complete(complete) => complete.prepare(upstream, out, &doc).await,
            Transform::Pass
            | Transform::Seal { .. }
            | Transform::SealS3ec(_)
            | Transform::Open(_)
            | Transform::List
            | Transform::ListParts { .. }
            | Transform::Created(_)
            | Transform::Copy
            | Transform::CopyPart(_)
            | Transform::Attributes(_)
            | Transform::DeleteBucket(_) => Ok(doc),
        }
    }

    /// Rewrites the upstream's answer for the client.
    pub async fn reply(
        self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        match self {
            Transform::Pass => Ok(resp),
            Transform::Seal { mark, .. } => {
                let (mut parts, body) = resp.into_parts();
                if parts.status.is_success() {
                    strip_checksums(&mut parts.headers);
                }
                mark_etag(&mut parts.headers, &mark)?;
                Ok(Response::from_parts(parts, body))
            }
            Transform::SealS3ec(_) => {
                let (mut parts, body) = resp.into_parts();
                if parts.status.is_success() {
                    strip_checksums(&mut parts.headers);
                }
                mark_etag(&mut parts.headers, ETAG_SUFFIX)?;
                Ok(Response::from_parts(parts, body))
            }
            Transform::Open(open) => open.reply(upstream, resp).await,
            Transform::List => Ok(listing::rewrite(resp, listing::Kind::Objects).await?),
            Transform::ListParts { token, key } => {
                let kind = listing::Kind::Parts {
                    token: &token,
                    key: &key,
                };
                Ok(listing::rewrite(resp, kind).await?)
            }
            Transform::Created(created) => {
                Ok(listing::rewrite(resp, listing::Kind::Created(&created)).await?)
            }
            Transform::CopyPart(part) => Ok(part.reply(resp)),
            Transform::Attributes(attributes) => attributes.reply(upstream, resp).await,
            Transform::Complete(complete) => match complete.answer() {
                Some(done) => Ok(done),
                None => complete.finish(upstream, resp).await,
            },
            Transform::Copy => Ok(new_object(resp).await?),
            Transform::DeleteBucket(target) => bucket::reply(upstream, &target, resp).await,
        }
    }
}

/// The answer of a copy the backend made: the new object's `ETag` marked, no ciphertext
/// checksums.
async fn new_object(resp: Response<Body>) -> Result<Response<Body>, CseError> {
    let (mut parts, body) = resp.into_parts();
    strip_checksums(&mut parts.headers);
    let resp = Response::from_parts(parts, body);
    listing::rewrite(resp, listing::Kind::Result { fallback: None }).await
}

/// `body` encrypted under `key`, with the upstream's `Content-Length` set to the ciphertext's.
fn encrypt(out: &mut Outgoing<'_>, body: Body, key: PartKey) -> Result<Body, ProxyError> {
    let declared = out
        .content_length
        .ok_or_else(|| ProxyError::Internal("a data body without a declared length".to_owned()))?;
    let sealed = EncryptBody::new(body, key, declared).map_err(CseError::TooLarge)?;
    out.content_length = Some(sealed.size_hint().exact().unwrap_or_default());
    Ok(sealed
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed_unsync())
}

/// Collects a bounded upstream body (listings).
async fn collect_bounded(mut body: Body, limit: usize) -> Result<Bytes, CseError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CseError::Answer(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                return Err(CseError::Answer(format!("longer than {limit} bytes")));
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
