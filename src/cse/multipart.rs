//! Multipart uploads on encrypted buckets (`docs/format.md` §7), without state in the proxy.
//!
//! - CreateMultipartUpload writes the object's record (layout `multipart`) like a PutObject,
//!   and hands the upload's keys to the client inside the upload id it answers with:
//!   `<backend id>~s3seal~<token>`, the token authenticated for this upload of this object
//!   (`docs/format.md` §7.3). The wrapped DEK opens only under the bucket's keys, so any
//!   replica can encrypt any part, in any order.
//! - UploadPart encrypts part `n` under part key `n`, as one segment.
//! - CompleteMultipartUpload checks the client's part list against the backend's, computes the
//!   seal (which parts, in which order, of which plaintext lengths; HMAC under the object's
//!   seal key), forwards the completion, and then rewrites the new object's record with the
//!   seal in it (`record`): the seal travels with the object. A refused completion writes
//!   nothing.
//! - A read verifies the seal before it releases any plaintext. Version 1 objects keep theirs
//!   in `.s3seal/seal/<base64url(salt)>`.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::body::{self, Body};
use crate::crypto::format::{
    plaintext_len, Binding, Layout, ObjectKey, ObjectMetadata, PartNumber, Seal, UploadToken,
    MAX_SEAL_LEN, PART_ETAG_TAG_LEN,
};
use crate::error::ProxyError;
use crate::s3::headers;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Sender};

use super::{
    backend_etag, call, client_etag, collect_bounded, head, part_mark, place, record,
    strip_checksums, write_metadata, CseError, Rule, Transform, ETAG_SUFFIX, MAX_LISTING_BYTES,
};

/// The version a write made, in a versioned bucket.
const X_AMZ_VERSION_ID: HeaderName = HeaderName::from_static("x-amz-version-id");

/// Object keys the proxy keeps for itself in an encrypted bucket.
pub const SEAL_PREFIX: &str = ".s3seal/";
/// Between the backend's upload id and the upload's keys in the client's upload id.
const TOKEN_MARK: &str = "~s3seal~";
/// Parts per ListParts page.
const PARTS_PER_PAGE: &str = "1000";
/// Runs of equal part sizes a record keeps room for (`docs/format.md` §7): a client's parts
/// are of one size but the last, two runs.
pub(super) const MAX_SEAL_RUNS: usize = 4;
/// Stored bytes of the longest seal a record keeps room for.
pub(super) const MAX_SEAL_BYTES: usize = Seal::encoded_v2_len_for(MAX_SEAL_RUNS);

pub(super) async fn plan_create(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (key, meta) = write_metadata(rule, Layout::Multipart, out).await?;
    Ok(Transform::Created(Created {
        key,
        wrapped_dek: meta.wrapped_dek,
        target: out.target.clone(),
    }))
}

/// A new upload's keys, for the token of the upload id the backend answers with.
pub struct Created {
    key: ObjectKey,
    wrapped_dek: Vec<u8>,
    target: Target,
}

impl Created {
    /// The client's upload id for the backend's `backend_id` (`docs/format.md` §7.3).
    pub(super) fn upload_id(&self, backend_id: &str) -> String {
        let token = UploadToken::new(
            &self.key,
            self.wrapped_dek.clone(),
            backend_id,
            place(&self.target),
        );
        client_upload_id(backend_id, &token.encode())
    }
}

pub(super) async fn plan_part(rule: &Rule, out: &mut Outgoing<'_>) -> Result<Transform, CseError> {
    let (key, _) = take_token(rule, out).await?;
    let number = part_number(out)?;
    // As for a PutObject: the checksums describe the plaintext and were checked by the proxy.
    strip_checksums(&mut out.headers);
    out.headers.remove(headers::CONTENT_MD5);
    // A part without a length is refused before it is sent (`MissingContentLength`).
    let len = out.content_length.unwrap_or_default();
    Ok(Transform::Seal {
        key: Some(key.part_key(number)),
        mark: part_mark(&key, number, len),
    })
}

pub(super) async fn plan_complete(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (key, _) = take_token(rule, out).await?;
    Ok(Transform::Complete(Complete {
        key,
        target: out.target.clone(),
        seal: None,
        done: None,
        max_copy: record::MAX_COPY_OBJECT_SIZE,
    }))
}

pub(super) async fn plan_list_parts(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (key, token) = take_token(rule, out).await?;
    Ok(Transform::ListParts { token, key })
}

/// An abort needs no keys: an upload the proxy did not start can be aborted too.
pub(super) fn plan_abort(out: &mut Outgoing<'_>) {
    for (k, v) in &mut out.query {
        if k == "uploadId" {
            if let Some((backend, _)) = v.rsplit_once(TOKEN_MARK) {
                *v = backend.to_owned();
            }
        }
    }
}

/// The part number of an `UploadPart` or `UploadPartCopy`.
pub(super) fn part_number(out: &Outgoing<'_>) -> Result<PartNumber, CseError> {
    out.query
        .iter()
        .find(|(k, _)| k == "partNumber")
        .and_then(|(_, v)| v.parse().ok())
        .and_then(PartNumber::multipart)
        .ok_or(CseError::PartNumber)
}

/// The upload's keys from the client's upload id, which becomes the backend's again. The
/// token must have been made for this backend upload of this object (`docs/format.md` §7.3):
/// anything else is `NoSuchUpload`, as S3 answers an upload id it never gave.
pub(super) async fn take_token(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<(ObjectKey, String), CseError> {
    let target = out.target.clone();
    let place = place(&target);
    let id = out
        .query
        .iter_mut()
        .find(|(k, _)| k == "uploadId")
        .map(|(_, v)| v)
        .ok_or(CseError::UploadId)?;
    let (backend, token) = id.rsplit_once(TOKEN_MARK).ok_or(CseError::UploadId)?;
    let parsed = UploadToken::parse(token).map_err(|_| CseError::NoSuchUpload)?;
    // A local wrap's associated data names its key and the object's place, so only the right
    // key opens it, and only for this object.
    let dek = rule
        .keyring
        .unwrap_any(&parsed.wrapped_dek, Binding::V2(place))
        .await
        .map_err(|e| match e {
            CseError::UploadId => CseError::NoSuchUpload,
            other => other,
        })?;
    let key = ObjectKey::derive(&dek, parsed.salt);
    parsed
        .verify(&key, backend, place)
        .map_err(|_| CseError::NoSuchUpload)?;
    let (backend, token) = (backend.to_owned(), token.to_owned());
    *id = backend;
    Ok((key, token))
}

/// The client's upload id for the backend's.
pub(super) fn client_upload_id(backend: &str, token: &str) -> String {
    format!("{backend}{TOKEN_MARK}{token}")
}

/// S3's smallest part, the last excepted. Checked on the plaintext the client sent: the
/// ciphertext the backend checks is larger.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// A completion: the keys of its object, and what the backend's part list showed.
pub struct Complete {
    key: ObjectKey,
    target: Target,
    /// The seal of the listed parts, for the new object's record.
    seal: Option<Seal>,
    /// The upload was completed before: the answer is the object's, as S3 gives it again.
    done: Option<Completed>,
    /// The largest object one `CopyObject` copies at the backend.
    max_copy: u64,
}

/// The object an earlier completion of the same upload made.
struct Completed {
    bucket: String,
    key: String,
    etag: String,
    version: Option<HeaderValue>,
}

/// A part the backend holds.
struct StoredPart {
    size: u64,
    /// Not every backend lists it (s3s-fs does not).
    etag: Option<String>,
}

impl Complete {
    /// Checks the client's part list as S3 does, against the backend's, and keeps the seal of
    /// the listed parts for [`Complete::finish`]: a completion the proxy refuses writes
    /// nothing. Returns
    /// the completion to forward: the listed parts with the `ETag`s the backend holds. An
    /// upload the backend no longer has was completed into the object (it carries the upload's
    /// salt: the answer is that object's) or aborted (`NoSuchUpload`).
    /// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>
    /// ("Special errors").
    pub(super) async fn prepare(
        &mut self,
        upstream: &Sender<'_>,
        out: &Outgoing<'_>,
        doc: &[u8],
    ) -> Result<Bytes, ProxyError> {
        let listed = completed_parts(doc)?;
        if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(CseError::PartOrder.into());
        }
        let stored = list_parts(upstream, out).await?;
        let Some(stored) = stored.filter(|parts| !parts.is_empty()) else {
            // No such upload (any more), or (s3s-fs) one without parts: S3 answers a second
            // completion with the object; a part list naming parts that were never uploaded
            // is then `NoSuchUpload` too, not `InvalidPart`.
            let done = self.completed(upstream).await?;
            self.done = Some(done.ok_or(CseError::NoSuchUpload)?);
            return Ok(Bytes::copy_from_slice(doc));
        };
        let mut parts = Vec::with_capacity(listed.len());
        let mut forwarded = String::from(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for (i, (number, etag)) in listed.iter().enumerate() {
            let n = PartNumber::multipart(*number).ok_or(CseError::InvalidPart(*number))?;
            let part = stored.get(number).ok_or(CseError::InvalidPart(*number))?;
            let len = plaintext_len(part.size).ok_or_else(|| {
                CseError::Inconsistent(format!(
                    "part {number} holds {} bytes, which is no ciphertext length",
                    part.size
                ))
            })?;
            if !self.names(etag, n, len, part) {
                return Err(CseError::InvalidPart(*number).into());
            }
            if i + 1 < listed.len() && len < MIN_PART_SIZE {
                return Err(CseError::PartTooSmall(*number).into());
            }
            parts.push((n, len));
            let stored_etag = part.etag.clone().unwrap_or_else(|| backend_part_etag(etag));
            let _ = write!(
                forwarded,
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                escape(&stored_etag)
            );
        }
        forwarded.push_str("</CompleteMultipartUpload>");
        let seal = Seal::new(parts).map_err(|_| CseError::PartOrder)?;
        if seal.run_count() > MAX_SEAL_RUNS {
            return Err(CseError::IrregularParts(MAX_SEAL_RUNS).into());
        }
        self.seal = Some(seal);
        Ok(Bytes::from(forwarded))
    }

    /// Whether the client's `etag` names the stored part `n` of `len` plaintext bytes: it is
    /// the stored part's own, or one the proxy showed for an upload of part `n` with as many
    /// bytes (docs/format.md §6.1). On S3 a part sent twice with the same bytes has one
    /// `ETag`, so a completion naming either upload gets the last to finish; here every
    /// upload is encrypted under fresh nonces, and the tag stands in for the content.
    /// A backend that does not list part `ETag`s gets what the client named.
    fn names(&self, etag: &str, n: PartNumber, len: u64, stored: &StoredPart) -> bool {
        let inner = etag.trim().trim_matches('"');
        inner.ends_with(&part_mark(&self.key, n, len))
            || stored
                .etag
                .as_deref()
                .is_some_and(|s| same_etag(&backend_etag(etag), s))
    }

    /// The object an earlier completion of this upload made, found by the salt in its record.
    async fn completed(&self, upstream: &Sender<'_>) -> Result<Option<Completed>, ProxyError> {
        let head = head(upstream, &self.target, Vec::new(), HeaderMap::new()).await?;
        let ours = head.status() == StatusCode::OK
            && ObjectMetadata::from_headers(head.headers())
                .ok()
                .flatten()
                .is_some_and(|m| m.layout == Layout::Multipart && m.salt == self.key.salt());
        let etag = head
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok());
        Ok(match (ours, etag, &self.target) {
            (true, Some(etag), Target::Object { bucket, key }) => Some(Completed {
                bucket: bucket.clone(),
                key: key.clone(),
                etag: client_etag(etag),
                version: head.headers().get(X_AMZ_VERSION_ID).cloned(),
            }),
            _ => None,
        })
    }

    /// The backend's answer to the completion. The new object then gets its seal: its record
    /// is rewritten with the seal in it (`record`), and the answer names that version.
    pub(super) async fn finish(
        &self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = resp.into_parts();
        strip_checksums(&mut parts.headers);
        if parts.status != StatusCode::OK {
            return Ok(Response::from_parts(parts, body));
        }
        let doc = collect_bounded(body, MAX_LISTING_BYTES).await?;
        let mut completed = None;
        for_each_element(&doc, |path, text| {
            match (path, text) {
                ([root], None) if root == b"CompleteMultipartUploadResult" => {
                    completed.get_or_insert(String::new());
                }
                ([_, name], Some(t)) if name == b"ETag" => completed = Some(t.trim().to_owned()),
                _ => {}
            }
            Ok(())
        })?;
        let Some(backend_etag) = completed else {
            // S3 may fail a completion after its 200: the body is then an `<Error>`.
            return Ok(Response::from_parts(parts, body::full(doc)));
        };
        let version = parts.headers.get(X_AMZ_VERSION_ID).cloned();
        let sealed = self.seal_object(upstream, version).await?;
        let (Target::Object { bucket, key }, Some(sealed)) = (&self.target, sealed) else {
            // Replaced before it could be sealed: another write of the key won, as it may on S3.
            let done = self.answer_with(client_etag(&backend_etag), None);
            return Ok(done.unwrap_or_else(|| Response::from_parts(parts, body::empty())));
        };
        let done = Completed {
            bucket: bucket.clone(),
            key: key.clone(),
            etag: client_etag(&sealed.etag),
            version: sealed.version,
        };
        Ok(result(&done))
    }

    /// Gives the object the completion made (version `version`) the record with its seal.
    /// `None`: the key holds another object by now.
    async fn seal_object(
        &self,
        upstream: &Sender<'_>,
        version: Option<HeaderValue>,
    ) -> Result<Option<record::Rewritten>, ProxyError> {
        let seal = self.seal.as_ref().ok_or_else(|| {
            ProxyError::Internal("a completion without the seal of its parts".to_owned())
        })?;
        let named = version_of(version.as_ref());
        let query = named
            .iter()
            .map(|v| ("versionId".to_owned(), v.clone()))
            .collect();
        let head = head(upstream, &self.target, query, HeaderMap::new()).await?;
        let meta = match head.status() {
            StatusCode::OK => ObjectMetadata::from_headers(head.headers())
                .map_err(CseError::Stored)?
                .filter(|m| m.layout == Layout::Multipart && m.salt == self.key.salt()),
            StatusCode::NOT_FOUND => None,
            status => {
                let why = format!("the completed object could not be read ({status})");
                return Err(CseError::Inconsistent(why).into());
            }
        };
        let Some(mut meta) = meta else {
            return Ok(None);
        };
        // RGW 16 names no version in its completion's answer; the HEAD of the object, which
        // carries this upload's salt, does.
        let version_id = named.or_else(|| version_of(head.headers().get(X_AMZ_VERSION_ID)));
        if meta.seal.is_some() {
            // Another completion of this upload sealed it already.
            let etag = head
                .headers()
                .get(header::ETAG)
                .and_then(|e| e.to_str().ok());
            return Ok(etag.map(|etag| record::Rewritten {
                etag: etag.to_owned(),
                version: head.headers().get(X_AMZ_VERSION_ID).cloned(),
            }));
        }
        meta.seal = Some(seal.encode_v2(&self.key));
        let mut rewritten = record::rewrite(
            upstream,
            &self.target,
            version_id.as_deref(),
            head.headers(),
            &meta,
            self.max_copy,
        )
        .await?;
        if let Some(old) = version_id {
            if rewritten.version.is_none() {
                // Nor in its copy's answer: the sealed version is the current one.
                let now = self::head(upstream, &self.target, Vec::new(), HeaderMap::new()).await?;
                let etag = now
                    .headers()
                    .get(header::ETAG)
                    .and_then(|e| e.to_str().ok());
                if etag.is_some_and(|e| same_etag(e, &rewritten.etag)) {
                    rewritten.version = now.headers().get(X_AMZ_VERSION_ID).cloned();
                }
            }
            let new = version_of(rewritten.version.as_ref());
            if new.is_some_and(|new| new != old) {
                // The unsealed version is no version the client made: only its sealed copy is.
                self.delete_version(upstream, &old).await?;
            }
        }
        Ok(Some(rewritten))
    }

    async fn delete_version(&self, upstream: &Sender<'_>, version: &str) -> Result<(), ProxyError> {
        let delete = Outgoing {
            method: Method::DELETE,
            target: &self.target,
            query: vec![("versionId".to_owned(), version.to_owned())],
            headers: HeaderMap::new(),
            content_length: None,
        };
        let (status, _) = call(upstream, delete, Bytes::new(), MAX_LISTING_BYTES).await?;
        if status.is_success() {
            Ok(())
        } else {
            let why = format!("the unsealed version could not be deleted ({status})");
            Err(CseError::Inconsistent(why).into())
        }
    }

    /// The answer when the upload was completed before: that completion's object, whatever
    /// the backend answered this time.
    pub(super) fn answer(&self) -> Option<Response<Body>> {
        self.done.as_ref().map(result)
    }

    /// The answer naming the object by `etag`, without a version.
    fn answer_with(&self, etag: String, version: Option<HeaderValue>) -> Option<Response<Body>> {
        let Target::Object { bucket, key } = &self.target else {
            return None;
        };
        Some(result(&Completed {
            bucket: bucket.clone(),
            key: key.clone(),
            etag,
            version,
        }))
    }
}

/// A version id that names one: "null" is the version of a bucket without versioning (moto
/// answers completions with it), which a copy replaces in place.
fn version_of(value: Option<&HeaderValue>) -> Option<String> {
    value
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != "null")
        .map(str::to_owned)
}

/// A `CompleteMultipartUploadResult` naming `done`.
fn result(done: &Completed) -> Response<Body> {
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
        escape(&done.bucket),
        escape(&done.key),
        escape(&done.etag),
    );
    let len = doc.len();
    let mut resp = Response::new(body::full(Bytes::from(doc)));
    let h = resp.headers_mut();
    if let Some(version) = &done.version {
        h.insert(X_AMZ_VERSION_ID, version.clone());
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// The backend's `ETag` in a part `ETag` the proxy showed (docs/format.md §6.1), quoted.
fn backend_part_etag(shown: &str) -> String {
    let inner = shown.trim().trim_matches('"');
    let inner = inner.strip_suffix(ETAG_SUFFIX).unwrap_or(inner);
    let inner = match inner.rsplit_once('-') {
        Some((backend, tag))
            if tag.len() == 2 * PART_ETAG_TAG_LEN && tag.bytes().all(|c| c.is_ascii_hexdigit()) =>
        {
            backend
        }
        Some(_) | None => inner,
    };
    format!("\"{inner}\"")
}

/// Part `ETag`s compare without their quotes, as S3 compares them.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

/// The parts of a `CompleteMultipartUpload` document, in order: number and `ETag`. Anything
/// but a `CompleteMultipartUpload` of at least one `Part`, each with one `PartNumber` and one
/// `ETag`, is `MalformedXML`, as on S3.
pub(super) fn completed_parts(doc: &[u8]) -> Result<Vec<(u32, String)>, CseError> {
    let mut parts = Vec::new();
    let mut number: Option<u32> = None;
    let mut etag: Option<String> = None;
    let mut root = None;
    for_each_element(doc, |path, text| {
        match (path, text) {
            ([r], None) => root = Some(r.clone()),
            ([_, p], None) if p == b"Part" => {
                let part = number.take().zip(etag.take());
                parts.push(part.ok_or(CseError::CompletionXml)?);
            }
            ([_, p, n], Some(t)) if p == b"Part" && n == b"PartNumber" => {
                let n = t.trim().parse().map_err(|_| CseError::CompletionXml)?;
                if number.replace(n).is_some() {
                    return Err(CseError::CompletionXml);
                }
            }
            ([_, p, e], Some(t)) if p == b"Part" && e == b"ETag" => {
                // One `ETag` per part.
                etag.replace(t.trim().to_owned())
                    .map_or(Ok(()), |_| Err(CseError::CompletionXml))?;
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(|_| CseError::CompletionXml)?;
    if root.as_deref() != Some(b"CompleteMultipartUpload".as_slice()) || parts.is_empty() {
        return Err(CseError::CompletionXml);
    }
    Ok(parts)
}

/// Every part the backend holds for the upload, by number; `None` when the backend has no
/// such upload (any more).
async fn list_parts(
    upstream: &Sender<'_>,
    out: &Outgoing<'_>,
) -> Result<Option<HashMap<u32, StoredPart>>, ProxyError> {
    let upload_id = out
        .upload_id()
        .ok_or_else(|| ProxyError::Internal("a completion without an uploadId".to_owned()))?
        .to_owned();
    let mut sizes = HashMap::new();
    let mut marker = None;
    loop {
        let mut query = vec![
            ("uploadId".to_owned(), upload_id.clone()),
            ("max-parts".to_owned(), PARTS_PER_PAGE.to_owned()),
        ];
        if let Some(m) = marker.take() {
            query.push(("part-number-marker".to_owned(), m));
        }
        let list = Outgoing {
            method: Method::GET,
            target: out.target,
            query,
            headers: HeaderMap::new(),
            content_length: None,
        };
        let (status, doc) = call(upstream, list, Bytes::new(), MAX_LISTING_BYTES).await?;
        if status == StatusCode::NOT_FOUND && sizes.is_empty() {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(CseError::Inconsistent(format!("ListParts answered {status}")).into());
        }
        let page = PartsPage::parse(&doc)?;
        sizes.extend(page.parts);
        match page.next {
            Some(next) if page.truncated => marker = Some(next),
            _ => return Ok(Some(sizes)),
        }
    }
}

#[derive(Default)]
struct PartsPage {
    parts: Vec<(u32, StoredPart)>,
    truncated: bool,
    next: Option<String>,
}

impl PartsPage {
    fn parse(doc: &[u8]) -> Result<Self, CseError> {
        let mut page = PartsPage::default();
        let (mut number, mut size, mut etag) = (None, None, None);
        let bad = |what: &str| CseError::Answer(format!("ListParts: bad {what}"));
        for_each_element(doc, |path, text| {
            match (path, text) {
                ([.., p, n], Some(t)) if p == b"Part" && n == b"PartNumber" => {
                    number = Some(t.trim().parse::<u32>().map_err(|_| bad("PartNumber"))?);
                }
                ([.., p, n], Some(t)) if p == b"Part" && n == b"Size" => {
                    size = Some(t.trim().parse::<u64>().map_err(|_| bad("Size"))?);
                }
                ([.., p, n], Some(t)) if p == b"Part" && n == b"ETag" => {
                    etag = Some(t.trim().to_owned());
                }
                ([.., p], None) if p == b"Part" => {
                    let part = number.take().zip(size.take()).ok_or_else(|| bad("Part"))?;
                    let (number, size) = part;
                    let etag = etag.take();
                    page.parts.push((number, StoredPart { size, etag }));
                }
                ([_, n], Some(t)) if n == b"IsTruncated" => page.truncated = t.trim() == "true",
                ([_, n], Some(t)) if n == b"NextPartNumberMarker" => {
                    page.next = Some(t.trim().to_owned());
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(page)
    }
}

/// Calls `f(element path, Some(text))` with the unescaped text of every element that has some,
/// then `f(element path, None)`, at the end of every element (still on the path).
pub(super) fn for_each_element(
    doc: &[u8],
    mut f: impl FnMut(&[Vec<u8>], Option<&str>) -> Result<(), CseError>,
) -> Result<(), CseError> {
    let mut reader = Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let bad = |e: &dyn std::fmt::Display| CseError::Answer(e.to_string());
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Eof => return Ok(()),
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Empty(e) => {
                path.push(e.local_name().as_ref().to_vec());
                f(&path, None)?;
                path.pop();
            }
            Event::End(_) => {
                if !text.is_empty() {
                    f(&path, Some(&text))?;
                    text.clear();
                }
                f(&path, None)?;
                path.pop();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            // Entities are split off the text around them (predefined and character
            // references only: `s3::xml::check_document` refuses DTDs).
            Event::GeneralRef(r) => {
                let reference = format!("&{};", String::from_utf8_lossy(&r));
                text.push_str(&quick_xml::escape::unescape(&reference).map_err(|e| bad(&e))?);
            }
            _ => {}
        }
    }
}

/// The verified seal of a multipart object.
pub(super) async fn load_seal(
    upstream: &Sender<'_>,
    bucket: &str,
    key: &ObjectKey,
) -> Result<Seal, ProxyError> {
    let target = Target::Object {
        bucket: bucket.to_owned(),
        key: key.salt().v1_seal_name(),
    };
    let get = Outgoing {
        method: Method::GET,
        target: &target,
        query: Vec::new(),
        headers: HeaderMap::new(),
        content_length: None,
    };
    let (status, body) = call(upstream, get, Bytes::new(), MAX_SEAL_LEN).await?;
    if status != StatusCode::OK {
        return Err(CseError::Inconsistent(format!(
            "the multipart object's seal could not be read ({status})"
        ))
        .into());
    }
    Ok(Seal::decode(&body, key).map_err(CseError::Stored)?)
}
