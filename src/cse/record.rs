//! Rewriting an object's record where it lies: a copy of the object onto itself with the new
//! record as its metadata (`x-amz-metadata-directive: REPLACE`). The backend copies the bytes
//! itself; none pass through the proxy.
//! A completion adds its seal this way (`docs/format.md` §7), and `s3seal rewrap` gives old
//! records the active key and version 2 (§5.4).
//!
//! What the copy keeps: the content headers, the client's user metadata, the storage class,
//! the website redirect, server-side encryption settings and object-lock settings, all read
//! from the HEAD of the version rewritten; tags follow by S3's default (`x-amz-tagging-directive:
//! COPY`). An ACL is not kept: S3 gives a copy the bucket's default ACL.
//!
//! The copy names the version it rewrites and is pinned to its `ETag`
//! (`x-amz-copy-source-if-match`), so a write that lands in between is never overwritten with
//! an older body. Objects larger than a single `CopyObject` may copy (5 GiB on S3) are rewritten
//! with a multipart copy of the same bytes.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html>

use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use quick_xml::escape::escape;

use crate::crypto::format::{ObjectMetadata, META_PREFIX};
use crate::s3::headers;
use crate::s3::route::{encode_path, Target};
use crate::upstream::{Outgoing, Sender};

use super::{exchange, CseError, USER_META_PREFIX};

/// The largest object one `CopyObject` copies on S3.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/copy-object.html>
pub const MAX_COPY_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// An answer of the backend's to a copy or an upload: a small XML document.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const X_AMZ_VERSION_ID: HeaderName = HeaderName::from_static("x-amz-version-id");
const COPY_SOURCE_IF_MATCH: HeaderName = HeaderName::from_static("x-amz-copy-source-if-match");
const COPY_SOURCE_RANGE: HeaderName = HeaderName::from_static("x-amz-copy-source-range");

/// Headers of a HEAD answer that `CopyObject` with `REPLACE` takes again as they were.
const KEPT: [&str; 8] = [
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
];

/// The object version a rewrite made.
#[derive(Debug)]
pub(crate) struct Rewritten {
    /// The backend's `ETag`, quoted.
    pub etag: String,
    pub version: Option<HeaderValue>,
}

/// Rewrites the record of the version `version` (the current one if `None`) of `target`, whose
/// HEAD answered `head`, to `record`.
pub(crate) async fn rewrite(
    upstream: &Sender<'_>,
    target: &Target,
    version: Option<&str>,
    head: &HeaderMap,
    record: &ObjectMetadata,
    max_copy: u64,
) -> Result<Rewritten, CseError> {
    let (Target::Object { bucket, key }, Some(etag)) = (target, head.get(header::ETAG)) else {
        return Err(CseError::Inconsistent(
            "a record rewrite needs an object with an ETag".to_owned(),
        ));
    };
    let mut h = HeaderMap::new();
    for (name, value) in head {
        let user =
            name.as_str().starts_with(USER_META_PREFIX) && !name.as_str().starts_with(META_PREFIX);
        if user || headers::OBJECT_DESCRIPTION.contains(name) || KEPT.contains(&name.as_str()) {
            h.append(name.clone(), value.clone());
        }
    }
    record.write_headers(&mut h);
    let mut source = format!("/{bucket}/{}", encode_path(key));
    if let Some(v) = version {
        let _ = write!(source, "?versionId={}", encode_path(v));
    }
    let source = HeaderValue::try_from(source).map_err(|e| CseError::Answer(e.to_string()))?;
    let size = head
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or_else(|| CseError::Answer("the HEAD gave no size".to_owned()))?;
    if size <= max_copy {
        h.insert(headers::X_AMZ_COPY_SOURCE, source);
        h.insert(
            headers::X_AMZ_METADATA_DIRECTIVE,
            HeaderValue::from_static("REPLACE"),
        );
        h.insert(COPY_SOURCE_IF_MATCH, etag.clone());
        let put = request(Method::PUT, target, Vec::new(), h);
        let (status, answer_headers, doc) = call(upstream, put, Bytes::new()).await?;
        let etag = result_etag(status, &doc, "CopyObjectResult")?;
        return Ok(Rewritten {
            etag,
            version: answer_headers.get(X_AMZ_VERSION_ID).cloned(),
        });
    }
    multipart_copy(upstream, target, h, (source, etag.clone()), size, max_copy).await
}

/// The same bytes copied in parts of at most `max_copy` bytes into a new upload of the key,
/// created with the new record. An upload that fails is aborted.
async fn multipart_copy(
    upstream: &Sender<'_>,
    target: &Target,
    create_headers: HeaderMap,
    (source, etag): (HeaderValue, HeaderValue),
    size: u64,
    max_copy: u64,
) -> Result<Rewritten, CseError> {
    let create = request(
        Method::POST,
        target,
        vec![("uploads".to_owned(), String::new())],
        create_headers,
    );
    let (status, _, doc) = call(upstream, create, Bytes::new()).await?;
    if status != StatusCode::OK {
        return Err(refused("CreateMultipartUpload", status, &doc));
    }
    let upload = element(&doc, "UploadId")
        .ok_or_else(|| CseError::Answer("CreateMultipartUpload gave no UploadId".to_owned()))?;
    let copied = copy_parts(upstream, target, &upload, (&source, &etag), size, max_copy).await;
    let done = match copied {
        Ok(completion) => {
            let query = vec![("uploadId".to_owned(), upload.clone())];
            let complete = request(Method::POST, target, query, HeaderMap::new());
            match call(upstream, complete, Bytes::from(completion)).await {
                Ok((status, h, doc)) => result_etag(status, &doc, "CompleteMultipartUploadResult")
                    .map(|etag| Rewritten {
                        etag,
                        version: h.get(X_AMZ_VERSION_ID).cloned(),
                    }),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    if done.is_err() {
        let query = vec![("uploadId".to_owned(), upload)];
        let abort = request(Method::DELETE, target, query, HeaderMap::new());
        // The rewrite has failed either way; an upload left behind is the backend's to expire.
        let _ = call(upstream, abort, Bytes::new()).await;
    }
    done
}

/// `UploadPartCopy` of each range; the completion document of the parts.
async fn copy_parts(
    upstream: &Sender<'_>,
    target: &Target,
    upload: &str,
    (source, etag): (&HeaderValue, &HeaderValue),
    size: u64,
    max_copy: u64,
) -> Result<String, CseError> {
    let mut completion =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    let mut start = 0;
    let mut number = 1u32;
    while start < size {
        let end = (start + max_copy).min(size);
        let mut h = HeaderMap::new();
        h.insert(headers::X_AMZ_COPY_SOURCE, source.clone());
        h.insert(COPY_SOURCE_IF_MATCH, etag.clone());
        let range = format!("bytes={start}-{}", end - 1);
        h.insert(
            COPY_SOURCE_RANGE,
            HeaderValue::try_from(range).map_err(|e| CseError::Answer(e.to_string()))?,
        );
        let query = vec![
            ("partNumber".to_owned(), number.to_string()),
            ("uploadId".to_owned(), upload.to_owned()),
        ];
        let part = request(Method::PUT, target, query, h);
        let (status, _, doc) = call(upstream, part, Bytes::new()).await?;
        let part_etag = result_etag(status, &doc, "CopyPartResult")?;
        let _ = write!(
            completion,
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(&part_etag)
        );
        start = end;
        number += 1;
    }
    completion.push_str("</CompleteMultipartUpload>");
    Ok(completion)
}

fn request(
    method: Method,
    target: &Target,
    query: Vec<(String, String)>,
    headers: HeaderMap,
) -> Outgoing<'_> {
    Outgoing {
        method,
        target,
        query,
        headers,
        content_length: None,
    }
}

/// One request of the rewrite: status, headers and the bounded answer.
async fn call(
    upstream: &Sender<'_>,
    out: Outgoing<'_>,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), CseError> {
    exchange(upstream, out, body, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| CseError::Answer(e.to_string()))
}

/// The `ETag` of a copy's or completion's answer, which may be an `<Error>` after a 200.
fn result_etag(status: StatusCode, doc: &[u8], root: &str) -> Result<String, CseError> {
    let is_result = std::str::from_utf8(doc).is_ok_and(|d| d.contains(&format!("<{root}")));
    if status != StatusCode::OK || !is_result {
        return Err(refused(root, status, doc));
    }
    element(doc, "ETag")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| CseError::Answer(format!("{root} without an ETag")))
}

fn refused(what: &str, status: StatusCode, doc: &[u8]) -> CseError {
    let code = element(doc, "Code").unwrap_or_default();
    CseError::Inconsistent(format!(
        "rewriting the record: {what} answered {status} {code}"
    ))
}

/// The unescaped text of the first element named `name`.
fn element(doc: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(doc).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    quick_xml::escape::unescape(text[start..end].trim())
        .ok()
        .map(std::borrow::Cow::into_owned)
}
