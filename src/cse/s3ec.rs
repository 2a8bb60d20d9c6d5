//! Objects of the AWS S3 Encryption Client (S3EC, `crate::crypto::s3ec`) in buckets whose
//! rule has `s3ec`: read with the bucket's keyring (its local keys open `AES/GCM` wraps, its
//! KMS key `kms+context` ones), and, when the rule says so, written by single `PutObject`s in
//! format version 3 (`docs/config.md`, "S3 Encryption Client objects").
//!
//! An S3EC object is one GCM message with one tag, so by default nothing is released before
//! the tag verified: objects up to `max_verified_bytes` are held whole, larger ones refused.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::body::{Body, BoxError};
use crate::crypto::format::DataKey;
use crate::crypto::s3ec::{
    self, ContentCipher, Found, Metadata, Record, Release, S3ecBody, S3ecError, Wrap,
};
use crate::error::ProxyError;
use crate::logging::{self, KeyOperation};
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

use super::{Active, CseError, Rule};

/// The default of `max_verified_bytes`: objects up to this size are held whole until their
/// tag verifies.
pub const DEFAULT_MAX_VERIFIED_BYTES: u64 = 16 * 1024 * 1024;

/// A bucket's S3EC settings (`encryption.s3ec` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Objects up to this many plaintext bytes are decrypted whole and released only once
    /// their tag verified.
    #[serde(default = "default_max_verified")]
    pub max_verified_bytes: u64,
    /// Larger objects: refused, or streamed with the connection aborted if the tag fails.
    #[serde(default)]
    pub large_objects: Large,
    /// Whether `Range` reads are served, unauthenticated, in counter mode (`partNumber` reads
    /// never are: the client's part boundaries are not recorded).
    #[serde(default)]
    pub ranged_reads: bool,
    /// Whether new objects are written as S3EC version 3 (single `PutObject` only).
    #[serde(default)]
    pub write: bool,
}

fn default_max_verified() -> u64 {
    DEFAULT_MAX_VERIFIED_BYTES
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_verified_bytes: DEFAULT_MAX_VERIFIED_BYTES,
            large_objects: Large::default(),
            ranged_reads: false,
            write: false,
        }
    }
}

/// What happens to an S3EC object above `max_verified_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Large {
    /// `403 InvalidObjectState`, naming the limit.
    #[default]
    Refuse,
    /// Plaintext is released as it is decrypted; a tag that fails aborts the answer, so the
    /// client sees a truncated body (its `Content-Length` is the plaintext's).
    StreamWithAbort,
}

/// The object's record: from its metadata, completed by its instruction file (format 3), or,
/// when the metadata holds no S3EC mapkey, wholly in its instruction file (formats 1 and 2).
/// The specification: "If the object matches none of the V1/V2/V3 formats, the S3EC MUST
/// attempt to get the instruction file" (`data-format/content-metadata.md`, "Determining S3EC
/// Object Status"). `None`: no record anywhere, the object is not the S3EC's.
pub(super) async fn record(
    upstream: &Sender<'_>,
    bucket: &str,
    key: &str,
    h: &HeaderMap,
) -> Result<Option<Record>, ProxyError> {
    let meta = Metadata::from_headers(h);
    match s3ec::detect(&meta).map_err(CseError::S3ec)? {
        Found::Record(r) => Ok(Some(r)),
        Found::IsInstructionFile => {
            let owner = key.strip_suffix(s3ec::INSTRUCTION_SUFFIX).unwrap_or(key);
            Err(CseError::S3ecInstructionFile(owner.to_owned()).into())
        }
        Found::InstructionFile => {
            let file = instruction_file(upstream, bucket, key)
                .await?
                .ok_or(CseError::InstructionFile(StatusCode::NOT_FOUND))?;
            Ok(Some(
                s3ec::with_instruction_file(&meta, &file).map_err(CseError::S3ec)?,
            ))
        }
        Found::None => match instruction_file(upstream, bucket, key).await? {
            Some(file) => Ok(Some(
                s3ec::record_in_instruction_file(&meta, &file).map_err(CseError::S3ec)?,
            )),
            None => Ok(None),
        },
    }
}

/// The S3EC mapkeys of `<key>.instruction`, at most [`s3ec::MAX_INSTRUCTION_FILE_BYTES`];
/// `None` if the backend has no such object. Its metadata is not read: the Go client writes
/// the file without the `x-amz-crypto-instr-file` marker, and whatever exists under that name
/// must be a valid file, or the object is refused (never served as ciphertext). Any other
/// answer (a `403` included) refuses the object too.
async fn instruction_file(
    upstream: &Sender<'_>,
    bucket: &str,
    key: &str,
) -> Result<Option<Metadata>, ProxyError> {
    let target = Target::Object {
        bucket: bucket.to_owned(),
        key: format!("{key}{}", s3ec::INSTRUCTION_SUFFIX),
    };
    let out = Outgoing {
        method: Method::GET,
        target: &target,
        query: Vec::new(),
        headers: HeaderMap::new(),
        content_length: None,
    };
    let req = upstream
        .sign(
            out,
            &Payload::Known(&[]),
            crate::body::empty(),
            SystemTime::now(),
        )
        .map_err(ProxyError::upstream)?;
    let (parts, body) = upstream
        .send(req)
        .await
        .map_err(ProxyError::upstream)?
        .into_parts();
    match parts.status {
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::OK => {
            let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
            // Longer than any instruction file: not one.
            let body = super::collect_bounded(body, s3ec::MAX_INSTRUCTION_FILE_BYTES)
                .await
                .map_err(|_| CseError::S3ec(S3ecError::InstructionFile))?;
            let file = Metadata::from_instruction_file(&body).map_err(CseError::S3ec)?;
            Ok(Some(file))
        }
        status => Err(CseError::InstructionFile(status).into()),
    }
}

impl Rule {
    /// The content cipher of an S3EC object at `bucket`/`key`: its data key opened with this
    /// bucket's keyring, its commitment checked.
    async fn open_s3ec(
        &self,
        record: &Record,
        bucket: &str,
        key: &str,
    ) -> Result<ContentCipher, CseError> {
        let opened = async {
            let (id, dek) = match record.wrap {
                Wrap::AesGcm => {
                    let (dek, kek) = record.unwrap_local(self.keyring.local())?;
                    (kek.id().as_str().to_owned(), Arc::new(dek))
                }
                Wrap::KmsContext => {
                    let kms = self.keyring.kms().ok_or(S3ecError::Unwrap)?;
                    let context = record.kms_context()?;
                    kms.open_any_with_context(context, &record.encrypted_data_key)
                        .await?
                }
            };
            let cipher = record.content_cipher(&dek)?;
            Ok::<_, CseError>((id, cipher))
        }
        .await;
        self.count_failure("decrypt", opened.is_err());
        let (id, cipher) = opened?;
        logging::key_use(KeyOperation::Decrypt, bucket, Some(key), &id);
        Ok(cipher)
    }

    /// A new version 3 record for an object at `bucket`/`key`, its data key from the active
    /// key (KMS `GenerateDataKey`, or a random key wrapped under the local key).
    async fn new_s3ec(&self, bucket: &str, key: &str) -> Result<(Record, ContentCipher), CseError> {
        let made = async {
            let cek_alg = BTreeMap::from([(
                s3ec::KMS_CONTEXT_CEK_ALG.to_owned(),
                s3ec::SUITE_V3_TEXT.to_owned(),
            )]);
            let (id, wrap, dek, blob, context) = match &self.keyring.active {
                Active::Kms(kms) => {
                    let (dek, blob) = kms.data_key_with_context(&cek_alg).await?;
                    (kms.object_key_id(), Wrap::KmsContext, dek, blob, cek_alg)
                }
                Active::Local(kek) => {
                    let dek = DataKey::generate();
                    let blob = kek.wrap_with_aad(&dek, s3ec::SUITE_V3_TEXT.as_bytes());
                    let id = kek.id().as_str().to_owned();
                    (id, Wrap::AesGcm, dek, blob, BTreeMap::new())
                }
            };
            let made = Record::new_v3(&dek, wrap, blob, context, s3ec::message_id());
            Ok::<_, CseError>((id, made))
        }
        .await;
        self.count_failure("encrypt", made.is_err());
        let (id, made) = made?;
        logging::key_use(KeyOperation::Encrypt, bucket, Some(key), &id);
        Ok(made)
    }
}

/// What planning a ranged read found.
pub(super) enum RangePlan {
    /// No S3EC record, in the metadata or an instruction file: the range goes upstream as
    /// asked.
    NoRecord,
    /// An S3EC object, read in counter mode.
    Range(PlannedRange),
}

/// How a ranged read of an S3EC object was planned.
pub(super) struct PlannedRange {
    /// The plaintext bytes asked for, and the object's plaintext size.
    pub plain: Range<u64>,
    pub total: u64,
    /// The stored span sent for, and the stored object's size.
    pub span: Range<u64>,
    pub stored: u64,
}

/// Plans a ranged read of the object at `out`'s target, whose HEAD answered `head`: refused
/// for an S3EC object unless the bucket allows unauthenticated ranges; otherwise the stored
/// span of whole AES blocks.
pub(super) async fn plan_range(
    settings: &Settings,
    upstream: &Sender<'_>,
    head: &HeaderMap,
    spec: super::RangeSpec,
    out: &mut Outgoing<'_>,
) -> Result<RangePlan, ProxyError> {
    let place = super::place(out.target);
    if record(upstream, place.bucket, place.key, head)
        .await?
        .is_none()
    {
        return Ok(RangePlan::NoRecord);
    }
    if !settings.ranged_reads {
        return Err(CseError::S3ecRange.into());
    }
    let stored = super::content_length(head)?;
    let total = s3ec::plaintext_len(stored)
        .ok_or_else(|| CseError::Inconsistent(format!("{stored} bytes is no S3EC object")))?;
    let plain = spec.resolve(total).ok_or(CseError::InvalidRange(total))?;
    let (from, to) = s3ec::cipher_span(plain.start, plain.end);
    out.headers.insert(
        header::RANGE,
        HeaderValue::try_from(format!("bytes={from}-{}", to - 1)).expect("digits and '-'"),
    );
    Ok(RangePlan::Range(PlannedRange {
        plain,
        total,
        span: from..to,
        stored,
    }))
}

/// What a read of an encrypted bucket's object without an s3seal record became.
pub(super) enum Read {
    /// An S3EC object: the body decrypted (or, for a HEAD, the empty body).
    Decrypted(Body),
    /// No S3EC object either: the backend's body, untouched.
    Other(Body),
}

/// The answer to a read of an S3EC object, once the backend answered with `parts` (headers
/// already stripped of the stored record) and `body`. `stored_headers` are the backend's own.
#[allow(clippy::too_many_arguments)]
pub(super) async fn reply(
    rule: &Rule,
    settings: &Settings,
    upstream: &Sender<'_>,
    (bucket, key): (&str, &str),
    stored_headers: &HeaderMap,
    parts: &mut http::response::Parts,
    body: Body,
    head: bool,
    range: Option<RangePlan>,
) -> Result<Read, ProxyError> {
    let range = match range {
        Some(RangePlan::Range(planned)) => Some(planned),
        Some(RangePlan::NoRecord) => {
            // The HEAD found no record; the GET must not either (a backend that ignores the
            // `If-Match` pin could answer with another object).
            if s3ec::detect(&Metadata::from_headers(stored_headers)).map_err(CseError::S3ec)?
                != Found::None
            {
                return Err(CseError::Inconsistent(
                    "the object changed between HEAD and GET".into(),
                )
                .into());
            }
            return Ok(Read::Other(body));
        }
        None => None,
    };
    let Some(record) = record(upstream, bucket, key, stored_headers).await? else {
        if range.is_some() {
            return Err(
                CseError::Inconsistent("the object changed between HEAD and GET".into()).into(),
            );
        }
        return Ok(Read::Other(body));
    };
    for name in Metadata::header_names() {
        parts.headers.remove(name);
    }
    let h = &mut parts.headers;
    h.remove(header::TRANSFER_ENCODING);
    h.remove(crate::s3::headers::CONTENT_MD5);
    let (release, shown, stored) = match (parts.status, range) {
        (StatusCode::PARTIAL_CONTENT, Some(planned)) if !head => {
            if super::read::content_range_total(stored_headers) != Some(planned.stored) {
                return Err(CseError::Inconsistent(
                    "the object changed between HEAD and GET".into(),
                )
                .into());
            }
            let content_range = format!(
                "bytes {}-{}/{}",
                planned.plain.start,
                planned.plain.end - 1,
                planned.total
            );
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::try_from(content_range).expect("digits"),
            );
            let release = Release::Range {
                offset: planned.span.start,
                skip: planned.plain.start - planned.span.start,
                len: planned.plain.end - planned.plain.start,
            };
            let span = planned.span.end - planned.span.start;
            (release, planned.plain.end - planned.plain.start, span)
        }
        // The whole object: no range was asked, or the backend ignored it. Released as any
        // whole object is, verified or refused by size.
        (StatusCode::OK, _) => {
            let stored = super::content_length(stored_headers)?;
            let plain = s3ec::plaintext_len(stored).ok_or_else(|| {
                CseError::Inconsistent(format!("{stored} bytes is no S3EC object"))
            })?;
            let release = if head || plain <= settings.max_verified_bytes {
                Release::Verified
            } else if settings.large_objects == Large::StreamWithAbort {
                Release::Streaming
            } else {
                return Err(CseError::S3ecTooLarge {
                    size: plain,
                    limit: settings.max_verified_bytes,
                }
                .into());
            };
            h.remove(header::CONTENT_RANGE);
            (release, plain, stored)
        }
        // A range or part the backend served without the proxy planning it.
        _ => return Err(CseError::S3ecRange.into()),
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(shown));
    if head {
        return Ok(Read::Decrypted(body));
    }
    let cipher = rule.open_s3ec(&record, bucket, key).await?;
    let verified = matches!(release, Release::Verified);
    let body = S3ecBody::new(body, &cipher, stored, release);
    if !verified {
        return Ok(Read::Decrypted(
            body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
        ));
    }
    // Verified before the answer starts, so a failure is an S3 error, not a cut connection.
    let verified = verify_whole(body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()).await;
    rule.count_failure("decrypt", verified.is_err());
    Ok(Read::Decrypted(crate::body::full(verified?)))
}

/// The whole plaintext of a verified read, once its tag verified. The body yields it as one
/// frame, which `to_bytes` hands over as it is: a copy would hold the object twice, against
/// the one `max_verified_bytes` per read that `docs/config.md` states.
pub(super) async fn verify_whole(body: Body) -> Result<Bytes, CseError> {
    Ok(body.collect().await.map_err(CseError::S3ecBody)?.to_bytes())
}

/// A `PutObject` in a bucket that writes S3EC: the record goes into the request's metadata,
/// and the body is sealed as one GCM message with its tag appended.
pub(super) async fn plan_put(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<super::Transform, CseError> {
    super::check_client_metadata(&out.headers)?;
    if Metadata::from_headers(&out.headers).is_empty() {
        super::strip_checksums(&mut out.headers);
        out.headers.remove(crate::s3::headers::CONTENT_MD5);
    } else {
        return Err(CseError::ReservedMetadata);
    }
    let place = super::place(out.target);
    let (record, cipher) = rule.new_s3ec(place.bucket, place.key).await?;
    record.write_headers(&mut out.headers)?;
    if super::user_metadata_len(&out.headers) > super::MAX_USER_METADATA_BYTES {
        return Err(CseError::MetadataTooLarge(0));
    }
    Ok(super::Transform::SealS3ec(Some(cipher)))
}

/// `body` sealed under `cipher`, with the upstream's `Content-Length` set to the stored size.
pub(super) fn seal(
    out: &mut Outgoing<'_>,
    body: Body,
    cipher: &ContentCipher,
) -> Result<Body, ProxyError> {
    let declared = out
        .content_length
        .ok_or_else(|| ProxyError::Internal("a data body without a declared length".to_owned()))?;
    if declared > s3ec::MAX_PLAINTEXT_LEN {
        return Err(CseError::S3ecTooLargeToWrite(declared).into());
    }
    let sealed = s3ec::SealBody::new(body, cipher, declared);
    out.content_length = Some(sealed.size_hint().exact().unwrap_or_default());
    Ok(sealed
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed_unsync())
}
