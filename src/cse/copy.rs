//! Copies that cannot be done by the backend: `UploadPartCopy` when the source or the
//! destination bucket is encrypted, and `CopyObject` between an encrypted and an unencrypted
//! bucket. The stored bytes cannot be copied as they are (ciphertext under the source's keys,
//! or plaintext), so the proxy reads the source's plaintext itself, streaming (decrypted as a
//! GET would be, every chunk authenticated before it is used), and uploads it: encrypted under
//! the destination's part key (`docs/format.md` §1), or as plaintext into an unencrypted
//! bucket. The client's request becomes an `UploadPart` of the same upload, or a `PutObject`;
//! its answer becomes the `CopyPartResult` or `CopyObjectResult` the client expects.
//!
//! The same path, with no client-side rule on either side, makes the copies of SSE-C and
//! SSE-KMS buckets that a backend cannot make itself ([`super::copy_through_proxy`]).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};
use crate::crypto::format::{Layout, PartKey, PartNumber};
use crate::error::ProxyError;
use crate::policy;
use crate::s3::headers;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, Sender};

use super::read::RangeSpec;
use super::{
    content_length, marked, multipart, part_mark, read, strip_checksums, write_metadata, CseError,
    Rule, Transform, ETAG_SUFFIX, USER_META_PREFIX,
};

/// `x-amz-copy-source-if-*` → the source read's own conditions.
pub(super) const SOURCE_CONDITIONS: [(&str, HeaderName); 4] = [
    ("x-amz-copy-source-if-match", header::IF_MATCH),
    ("x-amz-copy-source-if-none-match", header::IF_NONE_MATCH),
    (
        "x-amz-copy-source-if-modified-since",
        header::IF_MODIFIED_SINCE,
    ),
    (
        "x-amz-copy-source-if-unmodified-since",
        header::IF_UNMODIFIED_SINCE,
    ),
];

/// The copy source's SSE-C triple → the source read's own.
const SOURCE_CUSTOMER_KEY: [(HeaderName, HeaderName); 3] = [
    (policy::COPY_SOURCE_SSE_C_ALGORITHM, policy::SSE_C_ALGORITHM),
    (policy::COPY_SOURCE_SSE_C_KEY, policy::SSE_C_KEY),
    (policy::COPY_SOURCE_SSE_C_KEY_MD5, policy::SSE_C_KEY_MD5),
];

/// An object or part copied through the proxy: the source's plaintext, and the key it is
/// sealed with (`None` for an unencrypted destination).
pub struct CopyPart {
    pub(super) source: Option<Body>,
    pub(super) key: Option<PartKey>,
    /// The answer's root element: `CopyPartResult` or `CopyObjectResult`.
    result: &'static str,
    /// The destination is encrypted: what its `ETag` is shown with (an object's, or the
    /// part's: docs/format.md §6.1).
    mark: Option<String>,
}

/// Source headers a `CopyObject` copies with `x-amz-metadata-directive: COPY` (the default).
const COPIED_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LANGUAGE,
    header::CACHE_CONTROL,
    header::EXPIRES,
];

/// The copy source as `CopyObject` names it.
pub(super) struct Source {
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
}

/// `UploadPartCopy`: an `UploadPart` of the source's (range's) plaintext.
pub(super) async fn plan_part(
    src_rule: Option<&Arc<Rule>>,
    dest_rule: Option<&Arc<Rule>>,
    source: Source,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let dest = match dest_rule {
        Some(rule) => {
            let (object, _) = multipart::take_token(rule, out).await?;
            Some((object, multipart::part_number(out)?))
        }
        None => None,
    };
    // S3 takes one closed range here, nothing else (not even what a GET would ignore).
    // Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html>
    let range = match out.headers.get(headers::X_AMZ_COPY_SOURCE_RANGE) {
        None => None,
        Some(v) => match RangeSpec::parse(v.as_bytes()) {
            Some(RangeSpec::From {
                first,
                last: Some(last),
            }) => Some(first..=last),
            Some(RangeSpec::From { last: None, .. } | RangeSpec::Suffix(_)) | None => {
                return Err(CseError::CopyRange.into())
            }
        },
    };
    let header = range.as_ref().map(|r| {
        HeaderValue::try_from(format!("bytes={}-{}", r.start(), r.end())).expect("digits and '-'")
    });
    let (body, len, source_headers) = read_source(src_rule, source, header, upstream, out)
        .await
        .map_err(|e| match (beyond_source(&e), &range) {
            (Some(refused), Some(_)) => refused.into(),
            (Some(_) | None, None) | (None, Some(_)) => e,
        })?;
    if let Some(range) = &range {
        // A range ending past the source's end is refused, not shortened.
        if range.end() - range.start() + 1 != len {
            let size = read::content_range_total(&source_headers);
            return Err(CseError::CopyRangeSize(size).into());
        }
    }
    out.content_length = Some(len);
    Ok(Transform::CopyPart(CopyPart {
        source: Some(body),
        mark: dest.as_ref().map(|(object, n)| part_mark(object, *n, len)),
        key: dest.map(|(object, n)| object.part_key(n)),
        result: "CopyPartResult",
    }))
}

/// `CopyObject` between an encrypted and an unencrypted bucket: a `PutObject` of the source's
/// plaintext, with the source's metadata unless the client replaces it.
pub(super) async fn plan_object(
    src_rule: Option<&Arc<Rule>>,
    dest_rule: Option<&Arc<Rule>>,
    source: Source,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let replace = out
        .headers
        .get(headers::X_AMZ_METADATA_DIRECTIVE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
    let (body, len, source_headers) = read_source(src_rule, source, None, upstream, out).await?;
    out.headers.remove(headers::X_AMZ_METADATA_DIRECTIVE);
    // A PutObject takes tags from `x-amz-tagging` only; the source's are not copied.
    out.headers.remove("x-amz-tagging-directive");
    if !replace {
        for name in COPIED_HEADERS {
            out.headers.remove(&name);
            if let Some(v) = source_headers.get(&name) {
                out.headers.insert(name, v.clone());
            }
        }
        let meta: Vec<HeaderName> = out
            .headers
            .keys()
            .filter(|n| n.as_str().starts_with(USER_META_PREFIX))
            .cloned()
            .collect();
        for n in meta {
            out.headers.remove(n);
        }
        for (name, v) in &source_headers {
            if name.as_str().starts_with(USER_META_PREFIX) {
                out.headers.append(name.clone(), v.clone());
            }
        }
    }
    out.content_length = Some(len);
    let key = match dest_rule {
        Some(rule) => {
            let (key, _) = write_metadata(rule, Layout::Single, out).await?;
            Some(key.part_key(PartNumber::SINGLE))
        }
        None => None,
    };
    Ok(Transform::CopyPart(CopyPart {
        source: Some(body),
        mark: key.is_some().then(|| ETAG_SUFFIX.to_owned()),
        key,
        result: "CopyObjectResult",
    }))
}

/// S3's refusal of a copy range when the source read failed for a range that starts past its
/// end: the proxy's own refusal (with an encrypted source's plaintext size), or the backend's
/// `416`.
fn beyond_source(e: &ProxyError) -> Option<CseError> {
    let ProxyError::Downstream(inner) = e else {
        return None;
    };
    let inner: &(dyn std::error::Error + 'static) = inner.as_ref();
    match inner.downcast_ref::<CseError>()? {
        CseError::InvalidRange(size) => Some(CseError::CopyRangeSize(Some(*size))),
        CseError::Read(StatusCode::RANGE_NOT_SATISFIABLE) => Some(CseError::CopyRangeSize(None)),
        _ => None,
    }
}

/// Reads the source's plaintext (`range` of it, if given) with the copy's source conditions;
/// turns the request into an upload of it: its length, and the source's answer headers.
async fn read_source(
    src_rule: Option<&Arc<Rule>>,
    source: Source,
    range: Option<HeaderValue>,
    upstream: &Sender<'_>,
    out: &mut Outgoing<'_>,
) -> Result<(Body, u64, HeaderMap), ProxyError> {
    let target = Target::Object {
        bucket: source.bucket,
        key: source.key,
    };
    let mut read = Outgoing {
        method: Method::GET,
        target: &target,
        query: source
            .version
            .map(|v| vec![("versionId".to_owned(), v)])
            .unwrap_or_default(),
        headers: HeaderMap::new(),
        content_length: None,
    };
    for (from, to) in SOURCE_CONDITIONS {
        for v in out.headers.get_all(from) {
            read.headers.append(to.clone(), v.clone());
        }
    }
    if let Some(range) = range {
        read.headers.insert(header::RANGE, range);
    }
    // An SSE-C source is read with the key the copy names for it: S3 takes the same key in
    // the GET's own triple.
    // Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html>
    for (from, to) in SOURCE_CUSTOMER_KEY {
        if let Some(v) = out.headers.get(&from) {
            read.headers.insert(to, v.clone());
        }
    }
    let resp = match src_rule {
        Some(rule) => {
            let transform = read::plan_get(rule, upstream, &mut read).await?;
            let resp = send(upstream, read).await?;
            transform.reply(upstream, resp).await?
        }
        None => send(upstream, read).await?,
    };
    let status = resp.status();
    if !matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        return Err(CseError::Read(status).into());
    }
    let len = content_length(resp.headers())?;
    // The request is now an UploadPart of the source's plaintext.
    let names: Vec<HeaderName> = out
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-amz-copy-source"))
        .cloned()
        .collect();
    for n in names {
        out.headers.remove(n);
    }
    strip_checksums(&mut out.headers);
    out.headers.remove(headers::CONTENT_MD5);
    let (parts, body) = resp.into_parts();
    Ok((body, len, parts.headers))
}

async fn send(upstream: &Sender<'_>, out: Outgoing<'_>) -> Result<Response<Body>, ProxyError> {
    let req = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(req).await.map_err(ProxyError::upstream)?;
    Ok(resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
}

impl CopyPart {
    /// The backend's `UploadPart` (`PutObject`) answer as the `CopyPartResult`
    /// (`CopyObjectResult`) of the copy.
    /// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html>
    pub(super) fn reply(&self, resp: Response<Body>) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        if parts.status != StatusCode::OK {
            return Response::from_parts(parts, body);
        }
        // An encrypted destination's `ETag` is marked as an UploadPart's or an encrypted
        // object's.
        let etag = parts
            .headers
            .remove(header::ETAG)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .map(|e| match &self.mark {
                Some(mark) => marked(&e, mark),
                None => e,
            })
            .unwrap_or_default();
        strip_checksums(&mut parts.headers);
        let modified = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{modified}</LastModified><ETag>{}</ETag></{root}>",
        quick_xml::escape::escape(&etag),
        root = self.result,
    );
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
        Response::from_parts(parts, body::full(Bytes::from(doc)))
    }
}
