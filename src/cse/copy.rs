//! `UploadPartCopy` when the source or the destination bucket is encrypted: the copied range
//! cannot be copied as stored (it is ciphertext under the source's keys, or plaintext), so the
//! proxy reads the source's plaintext range itself, streaming (decrypted as a GET would be,
//! every chunk authenticated before it is used), and uploads it as the part: encrypted under
//! the destination's part key (`docs/format.md` §1), or as plaintext into an unencrypted
//! bucket. The client's request becomes an `UploadPart` of the same upload; its answer becomes
//! the `CopyPartResult` the client expects.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};
use crate::crypto::format::PartKey;
use crate::error::ProxyError;
use crate::s3::headers;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Payload, UpstreamClient};

use super::{
    client_etag, content_length, multipart, read, strip_checksums, CseError, Rule, Transform,
};

/// `x-amz-copy-source-if-*` → the source read's own conditions.
const SOURCE_CONDITIONS: [(&str, HeaderName); 4] = [
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

/// A part copied through the proxy: the source's plaintext, and the key it is sealed with
/// (`None` for an unencrypted destination).
pub struct CopyPart {
    pub(super) source: Option<Body>,
    pub(super) key: Option<PartKey>,
}

/// The copy source as `CopyObject` names it.
pub(super) struct Source {
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
}

pub(super) async fn plan(
    src_rule: Option<&Arc<Rule>>,
    dest_rule: Option<&Arc<Rule>>,
    source: Source,
    upstream: &UpstreamClient,
    out: &mut Outgoing<'_>,
) -> Result<Transform, ProxyError> {
    let key = match dest_rule {
        Some(rule) => {
            let (object, _) = multipart::take_token(rule, out)?;
            Some(object.part_key(multipart::part_number(out)?))
        }
        None => None,
    };
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
    if let Some(range) = out.headers.get(headers::X_AMZ_COPY_SOURCE_RANGE) {
        read.headers.insert(header::RANGE, range.clone());
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
    out.content_length = Some(len);
    Ok(Transform::CopyPart(CopyPart {
        source: Some(resp.into_body()),
        key,
    }))
}

async fn send(upstream: &UpstreamClient, out: Outgoing<'_>) -> Result<Response<Body>, ProxyError> {
    let req = upstream
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(ProxyError::upstream)?;
    let resp = upstream.send(req).await.map_err(ProxyError::upstream)?;
    Ok(resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
}

/// The backend's `UploadPart` answer as the `CopyPartResult` of an `UploadPartCopy`.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html>
pub(super) fn reply(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    if parts.status != StatusCode::OK {
        return Response::from_parts(parts, body);
    }
    // Marked as an UploadPart's is: the completion removes the mark.
    let etag = parts
        .headers
        .remove(header::ETAG)
        .and_then(|v| v.to_str().ok().map(client_etag))
        .unwrap_or_default();
    strip_checksums(&mut parts.headers);
    let modified = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{modified}</LastModified><ETag>{}</ETag></CopyPartResult>",
        quick_xml::escape::escape(&etag)
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
