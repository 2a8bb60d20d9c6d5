//! Multipart uploads on encrypted buckets (`docs/format.md` §7), without state in the proxy.
//!
//! - CreateMultipartUpload writes the object's record (layout `multipart`) like a PutObject,
//!   and hands the upload's keys to the client inside the upload id it answers with:
//!   `<backend id>~s3seal~<base64url(salt || wrapped DEK)>`. The wrapped DEK opens only under
//!   the bucket's keys, so any replica can encrypt any part, in any order.
//! - UploadPart encrypts part `n` under part key `n`, as one segment.
//! - CompleteMultipartUpload lists the parts at the backend and writes the seal (which parts,
//!   in which order, of which plaintext lengths; HMAC under the object's seal key) to
//!   `.s3seal/seal/<base64url(salt)>` in the same bucket, before the completion goes on.
//! - A read loads and verifies the seal before it releases any plaintext.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::crypto::format::{
    plaintext_len, Layout, ObjectKey, PartNumber, Salt, Seal, MAX_SEAL_LEN, SALT_LEN,
};
use crate::error::ProxyError;
use crate::s3::headers;
use crate::s3::route::{encode_path, Target};
use crate::upstream::{Outgoing, Sender};

use super::{call, strip_checksums, write_metadata, CseError, Rule, Transform, MAX_LISTING_BYTES};

/// Object keys the proxy keeps for itself in an encrypted bucket.
pub const SEAL_PREFIX: &str = ".s3seal/";
/// Between the backend's upload id and the upload's keys in the client's upload id.
const TOKEN_MARK: &str = "~s3seal~";
/// Parts per ListParts page.
const PARTS_PER_PAGE: &str = "1000";

fn seal_name(salt: &Salt) -> String {
    format!("{SEAL_PREFIX}seal/{}", URL_SAFE_NO_PAD.encode(salt.0))
}

pub(super) async fn plan_create(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (key, meta) = write_metadata(rule, Layout::Multipart, out).await?;
    let mut raw = key.salt().0.to_vec();
    raw.extend_from_slice(&meta.wrapped_dek);
    Ok(Transform::Created {
        token: URL_SAFE_NO_PAD.encode(raw),
    })
}

pub(super) async fn plan_part(rule: &Rule, out: &mut Outgoing<'_>) -> Result<Transform, CseError> {
    let (key, _) = take_token(rule, out).await?;
    let number = part_number(out)?;
    // As for a PutObject: the checksums describe the plaintext and were checked by the proxy.
    strip_checksums(&mut out.headers);
    out.headers.remove(headers::CONTENT_MD5);
    Ok(Transform::Seal {
        key: Some(key.part_key(number)),
        md5: None,
    })
}

pub(super) async fn plan_complete(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (key, _) = take_token(rule, out).await?;
    Ok(Transform::Complete(Complete { key }))
}

pub(super) async fn plan_list_parts(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<Transform, CseError> {
    let (_, token) = take_token(rule, out).await?;
    Ok(Transform::ListParts { token })
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
        .ok_or_else(|| CseError::Parts("partNumber must be 1 to 10000".into()))
}

/// The upload's keys from the client's upload id, which becomes the backend's again.
pub(super) async fn take_token(
    rule: &Rule,
    out: &mut Outgoing<'_>,
) -> Result<(ObjectKey, String), CseError> {
    let id = out
        .query
        .iter_mut()
        .find(|(k, _)| k == "uploadId")
        .map(|(_, v)| v)
        .ok_or(CseError::UploadId)?;
    let (backend, token) = id.rsplit_once(TOKEN_MARK).ok_or(CseError::UploadId)?;
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| CseError::UploadId)?;
    if raw.len() <= SALT_LEN {
        return Err(CseError::UploadId);
    }
    let (salt, wrapped) = raw.split_at(SALT_LEN);
    // A local wrap's associated data names its key, so only the right key opens it.
    let dek = rule.keyring.unwrap_any(wrapped).await?;
    let salt = Salt(salt.try_into().expect("SALT_LEN bytes"));
    let key = ObjectKey::derive(&dek, salt);
    let (backend, token) = (backend.to_owned(), token.to_owned());
    *id = backend;
    Ok((key, token))
}

/// The client's upload id for the backend's.
pub(super) fn client_upload_id(backend: &str, token: &str) -> String {
    format!("{backend}{TOKEN_MARK}{token}")
}

/// A completion: the keys of its object.
pub struct Complete {
    key: ObjectKey,
}

impl Complete {
    /// Writes the seal of the parts the client completes with. A completion that then fails
    /// leaves a seal nobody reads; a retried one overwrites it with the same parts.
    pub(super) async fn write_seal(
        &self,
        upstream: &Sender<'_>,
        out: &Outgoing<'_>,
        doc: &[u8],
    ) -> Result<(), ProxyError> {
        let numbers = completed_parts(doc)?;
        let sizes = list_parts(upstream, out).await?;
        let mut parts = Vec::with_capacity(numbers.len());
        for number in numbers {
            let stored = sizes
                .get(&number)
                .ok_or_else(|| CseError::Parts(format!("part {number} was not uploaded")))?;
            let len = plaintext_len(*stored).ok_or_else(|| {
                CseError::Parts(format!(
                    "part {number} holds {stored} bytes, which is no ciphertext length"
                ))
            })?;
            let number = PartNumber::multipart(number)
                .ok_or_else(|| CseError::Parts(format!("part number {number}")))?;
            parts.push((number, len));
        }
        let seal = Seal::new(parts)
            .map_err(|_| CseError::Parts("part numbers must be increasing".into()))?
            .encode(&self.key);
        let bucket = out.target.bucket().unwrap_or_default().to_owned();
        let target = Target::Object {
            bucket,
            key: seal_name(&self.key.salt()),
        };
        let put = Outgoing {
            method: Method::PUT,
            target: &target,
            query: Vec::new(),
            headers: HeaderMap::new(),
            content_length: None,
        };
        let (status, _) = call(upstream, put, Bytes::from(seal), MAX_LISTING_BYTES).await?;
        if !status.is_success() {
            return Err(CseError::Parts(format!("the seal was refused with {status}")).into());
        }
        Ok(())
    }
}

/// The part numbers of a `CompleteMultipartUpload` document, in order.
fn completed_parts(doc: &[u8]) -> Result<Vec<u32>, CseError> {
    let mut numbers = Vec::new();
    for_each_text(doc, |path, text| {
        if matches!(path, [.., p, n] if p == b"Part" && n == b"PartNumber") {
            let n = text
                .trim()
                .parse()
                .map_err(|_| CseError::Parts(format!("part number {text:?}")))?;
            numbers.push(n);
        }
        Ok(())
    })?;
    Ok(numbers)
}

/// Every part the backend holds for the upload: number → stored size.
async fn list_parts(
    upstream: &Sender<'_>,
    out: &Outgoing<'_>,
) -> Result<HashMap<u32, u64>, ProxyError> {
    let upload_id = out
        .query
        .iter()
        .find(|(k, _)| k == "uploadId")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
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
        if status != StatusCode::OK {
            return Err(CseError::Parts(format!("ListParts answered {status}")).into());
        }
        let page = PartsPage::parse(&doc)?;
        sizes.extend(page.parts);
        match page.next {
            Some(next) if page.truncated => marker = Some(next),
            _ => return Ok(sizes),
        }
    }
}

#[derive(Default)]
struct PartsPage {
    parts: Vec<(u32, u64)>,
    truncated: bool,
    next: Option<String>,
}

impl PartsPage {
    fn parse(doc: &[u8]) -> Result<Self, CseError> {
        let mut page = PartsPage::default();
        let mut number = None;
        let bad = |what: &str| CseError::Parts(format!("ListParts: bad {what}"));
        for_each_text(doc, |path, text| {
            match path {
                [.., p, n] if p == b"Part" && n == b"PartNumber" => {
                    number = Some(text.trim().parse::<u32>().map_err(|_| bad("PartNumber"))?);
                }
                [.., p, n] if p == b"Part" && n == b"Size" => {
                    let size = text.trim().parse::<u64>().map_err(|_| bad("Size"))?;
                    page.parts
                        .push((number.take().ok_or_else(|| bad("Part"))?, size));
                }
                [_, n] if n == b"IsTruncated" => page.truncated = text.trim() == "true",
                [_, n] if n == b"NextPartNumberMarker" => page.next = Some(text.trim().to_owned()),
                _ => {}
            }
            Ok(())
        })?;
        Ok(page)
    }
}

/// Calls `f(element path, unescaped text)` for every text node of a document.
fn for_each_text(
    doc: &[u8],
    mut f: impl FnMut(&[Vec<u8>], &str) -> Result<(), CseError>,
) -> Result<(), CseError> {
    let mut reader = Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| CseError::Answer(e.to_string()))?
        {
            Event::Eof => return Ok(()),
            Event::Start(e) => path.push(e.local_name().as_ref().to_vec()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| CseError::Answer(e.to_string()))?;
                f(&path, &text)?;
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
        key: seal_name(&key.salt()),
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

/// Copies a multipart object's seal to another bucket, for a copy of the object there.
pub(super) async fn copy_seal(
    upstream: &Sender<'_>,
    from: &str,
    to: &str,
    salt: &Salt,
) -> Result<(), ProxyError> {
    let name = seal_name(salt);
    let target = Target::Object {
        bucket: to.to_owned(),
        key: name.clone(),
    };
    let mut headers = HeaderMap::new();
    let source = format!("/{from}/{}", encode_path(&name));
    headers.insert(
        headers::X_AMZ_COPY_SOURCE,
        HeaderValue::try_from(source).map_err(|e| ProxyError::Internal(e.to_string()))?,
    );
    let copy = Outgoing {
        method: Method::PUT,
        target: &target,
        query: Vec::new(),
        headers,
        content_length: None,
    };
    let (status, _) = call(upstream, copy, Bytes::new(), MAX_LISTING_BYTES).await?;
    if !status.is_success() {
        return Err(CseError::Parts(format!("the seal could not be copied ({status})")).into());
    }
    Ok(())
}
