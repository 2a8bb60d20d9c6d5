//! `s3seal encrypt`: an object stored in plaintext before its bucket had encryption, encrypted
//! where it lies exactly as a `PutObject` through the proxy would store it (a new data key, a
//! version 2 single-part record bound to its bucket and key, one segment under part key 0).
//!
//! The plaintext streams from a GET into the PUT that replaces it, so memory stays bounded
//! whatever the object's size. Both are pinned to the `ETag` of the HEAD that found the object
//! plaintext: an object written in between is neither read half-old nor overwritten, and is
//! reported instead. The result is checked before it counts: its record opens, its size is
//! exact, and its final chunk decrypts. The content headers, user metadata, storage class and
//! SSE-S3/SSE-KMS settings are carried over; tags, ACLs and object-lock settings are not.

use std::time::SystemTime;

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};
use crate::crypto::format::{
    ciphertext_len, ciphertext_range_for, plaintext_len, CipherRange, Layout, ObjectMetadata,
    PartKey, PartNumber, Version,
};
use crate::crypto::DecryptBody;
use crate::error::ProxyError;
use crate::s3::headers;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

use super::{
    collect_bounded, content_length, encrypt, head, place, record, unquoted, write_metadata,
    CseError, Rule, USER_META_PREFIX,
};

/// The largest object one `PutObject` stores on S3 (the ciphertext, here).
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html>
pub(super) const MAX_PUT_OBJECT_SIZE: u64 = record::MAX_COPY_OBJECT_SIZE;
/// Headers of the HEAD answer a PUT takes again as they were: the object keeps its storage
/// class and its server-side encryption (the command's PUT does not pass the `sse` stage).
pub(super) const KEPT: [&str; 4] = [
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-bucket-key-enabled",
];
/// The backend's answer to a PUT: empty, or a small error document.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What `s3seal encrypt` did to one object.
pub(crate) enum Encrypt {
    /// It has an s3seal record already.
    Already,
    /// Encrypted (or, in a dry run, to be), with its plaintext size.
    Encrypted(u64),
}

/// Encrypts the plaintext object at `target`, whose HEAD answered `found`, in place under
/// `rule`, and checks what the backend then holds.
pub(crate) async fn encrypt_object(
    rule: &Rule,
    upstream: &Sender<'_>,
    target: &Target,
    found: &HeaderMap,
    dry_run: bool,
) -> Result<Encrypt, ProxyError> {
    if ObjectMetadata::from_headers(found)
        .map_err(CseError::Stored)?
        .is_some()
    {
        return Ok(Encrypt::Already);
    }
    if is_s3ec(rule, upstream, target, found).await? {
        return Err(CseError::S3ecInPlace.into());
    }
    let size = content_length(found)?;
    let stored = ciphertext_len(size)
        .filter(|&n| n <= MAX_PUT_OBJECT_SIZE)
        .ok_or(CseError::TooLargeInPlace(size))?;
    let etag = found
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CseError::Answer("the HEAD gave no ETag".to_owned()))?;
    if dry_run {
        return Ok(Encrypt::Encrypted(size));
    }
    let mut put_headers = HeaderMap::new();
    for (name, value) in found {
        if headers::OBJECT_DESCRIPTION.contains(name)
            || name.as_str().starts_with(USER_META_PREFIX)
            || KEPT.contains(&name.as_str())
        {
            put_headers.append(name.clone(), value.clone());
        }
    }
    // RGW 16 compares a write's condition with its `ETag` unquoted, a read's quoted (see
    // `plan_for`); S3 takes both.
    let plain_etag = unquoted(etag);
    put_headers.insert(header::IF_MATCH, header_value(plain_etag)?);
    let mut put = Outgoing {
        method: Method::PUT,
        target,
        query: Vec::new(),
        headers: put_headers,
        content_length: Some(size),
    };
    let (key, _) = write_metadata(rule, Layout::Single, &mut put).await?;
    let plaintext = read(upstream, target, &format!("\"{plain_etag}\""), size).await?;
    let sealed = encrypt(&mut put, plaintext, key.part_key(PartNumber::SINGLE))?;
    let signed = upstream
        .sign(put, &Payload::Streamed, sealed, SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let written = upstream.send(signed).await.map_err(ProxyError::upstream)?;
    let (parts, answer) = written.into_parts();
    if !parts.status.is_success() {
        let answer = answer
            .map_err(|e| -> BoxError { Box::new(e) })
            .boxed_unsync();
        let doc = collect_bounded(answer, MAX_ANSWER_BYTES).await?;
        return Err(CseError::Answer(format!(
            "the PUT answered {}: {}",
            parts.status,
            String::from_utf8_lossy(&doc)
        ))
        .into());
    }
    verify(rule, upstream, target, &parts.headers, stored).await?;
    Ok(Encrypt::Encrypted(size))
}

/// The plaintext body of the version whose `ETag` is `etag`, which must be `size` bytes.
async fn read(
    upstream: &Sender<'_>,
    target: &Target,
    etag: &str,
    size: u64,
) -> Result<Body, ProxyError> {
    let mut h = HeaderMap::new();
    h.insert(header::IF_MATCH, header_value(etag)?);
    let out = Outgoing {
        method: Method::GET,
        target,
        query: Vec::new(),
        headers: h,
        content_length: None,
    };
    let signed = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(signed).await.map_err(ProxyError::upstream)?;
    if resp.status() != StatusCode::OK {
        return Err(CseError::Read(resp.status()).into());
    }
    if content_length(resp.headers())? != size {
        return Err(
            CseError::Inconsistent("the GET and the HEAD differ in size".to_owned()).into(),
        );
    }
    Ok(resp
        .into_body()
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed_unsync())
}

/// What the backend holds at `target` after the PUT that answered `written`: the same version
/// (its `ETag`), a version 2 record that opens at this place under the rule's keyring,
/// `stored` bytes of ciphertext, and a final chunk that decrypts under the record's key.
async fn verify(
    rule: &Rule,
    upstream: &Sender<'_>,
    target: &Target,
    written: &HeaderMap,
    stored: u64,
) -> Result<(), ProxyError> {
    let resp = head(upstream, target, Vec::new(), HeaderMap::new()).await?;
    if resp.status() != StatusCode::OK {
        return Err(CseError::Read(resp.status()).into());
    }
    let now = resp.headers();
    if etag(written).is_some() && etag(now) != etag(written) {
        return Err(CseError::Inconsistent(
            "the object was rewritten again right after it was encrypted".to_owned(),
        )
        .into());
    }
    let meta = ObjectMetadata::from_headers(now)
        .map_err(CseError::Stored)?
        .filter(|m| m.version == Version::V2 && m.layout == Layout::Single)
        .ok_or_else(|| {
            CseError::Inconsistent("the backend did not keep the new record".to_owned())
        })?;
    let place = place(target);
    let key = rule.open(&meta, place.bucket, place.key).await?;
    let found = content_length(now)?;
    if found != stored {
        return Err(CseError::Inconsistent(format!(
            "the backend holds {found} bytes, not the {stored} bytes of ciphertext sent"
        ))
        .into());
    }
    let size = plaintext_len(stored).unwrap_or_default();
    let last = if size == 0 {
        CipherRange::whole(0)
    } else {
        ciphertext_range_for(size - 1..size, size)
    }
    .ok_or_else(|| CseError::Inconsistent(format!("{size} bytes is no segment's size")))?;
    read_final_chunk(
        upstream,
        target,
        now,
        key.part_key(PartNumber::SINGLE),
        last,
    )
    .await
}

/// Reads the object's final chunk through the decrypting path: it opens only under the new
/// record's key, at its index and marked final, so the stored ciphertext is whole and belongs
/// to the record.
async fn read_final_chunk(
    upstream: &Sender<'_>,
    target: &Target,
    now: &HeaderMap,
    key: PartKey,
    last: CipherRange,
) -> Result<(), ProxyError> {
    let mut h = HeaderMap::new();
    h.insert(header::RANGE, header_value(&last.http_range())?);
    if let Some(tag) = etag(now) {
        h.insert(header::IF_MATCH, header_value(&format!("\"{tag}\""))?);
    }
    let out = Outgoing {
        method: Method::GET,
        target,
        query: Vec::new(),
        headers: h,
        content_length: None,
    };
    let signed = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(signed).await.map_err(ProxyError::upstream)?;
    if resp.status() != StatusCode::PARTIAL_CONTENT && resp.status() != StatusCode::OK {
        return Err(CseError::Read(resp.status()).into());
    }
    let want = last.plain_len();
    let plain = DecryptBody::new(resp.into_body(), key, last)
        .collect()
        .await
        .map_err(|e| CseError::Inconsistent(format!("the final chunk does not open: {e}")))?
        .to_bytes();
    if plain.len() as u64 != want {
        return Err(CseError::Inconsistent("the final chunk has the wrong size".to_owned()).into());
    }
    Ok(())
}

pub(super) fn etag(h: &HeaderMap) -> Option<&str> {
    h.get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(unquoted)
}

pub(super) fn header_value(text: &str) -> Result<HeaderValue, CseError> {
    HeaderValue::try_from(text).map_err(|e| CseError::Answer(e.to_string()))
}

/// Whether the object at `target` is the S3 Encryption Client's: its metadata says so
/// (an object or an instruction file), or, on a bucket that reads such objects, its record
/// is wholly in `<key>.instruction` (formats 1 and 2 leave nothing on the object).
async fn is_s3ec(
    rule: &Rule,
    upstream: &Sender<'_>,
    target: &Target,
    found: &HeaderMap,
) -> Result<bool, ProxyError> {
    let meta = crate::crypto::s3ec::Metadata::from_headers(found);
    if !matches!(
        crate::crypto::s3ec::detect(&meta),
        Ok(crate::crypto::s3ec::Found::None)
    ) {
        return Ok(true);
    }
    if rule.s3ec.is_none() {
        return Ok(false);
    }
    // Only objects are encrypted in place; without a key there is no record to look for, so
    // the target is not taken for plaintext (closed, not open).
    let (Some(bucket), Some(key)) = (target.bucket(), target.key()) else {
        return Ok(true);
    };
    Ok(super::s3ec::record(upstream, bucket, key, found)
        .await?
        .is_some())
}
