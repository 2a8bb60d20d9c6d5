//! ListBuckets shows a key only the buckets it may use: the backend lists every bucket of the
//! upstream's account, which is not the client's business.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use std::sync::Arc;

use crate::auth::{BucketPatterns, ClientIdentity};
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::s3::xml;
use crate::upstream::UpstreamError;

/// The largest ListBuckets answer the proxy reads: S3 accounts hold at most 10,000 general
/// purpose buckets by default, about 1.5 MB of XML.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/BucketRestrictions.html>
const MAX_BUCKET_LISTING_BYTES: usize = 8 * 1024 * 1024;

/// The answer without the buckets `patterns` do not allow.
pub(super) async fn visible_buckets(
    resp: Response<Body>,
    id: Arc<ClientIdentity>,
) -> Result<Response<Body>, ProxyError> {
    let patterns = &id.buckets;
    if patterns.is_any() || resp.status() != StatusCode::OK {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let doc = collect(body).await.map_err(ProxyError::upstream)?;
    let doc = filtered(&doc, patterns)
        .map_err(|e| ProxyError::upstream(UpstreamError::Answer(e.to_string())))?;
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(crate::s3::headers::CONTENT_MD5);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
    Ok(Response::from_parts(parts, body::full(Bytes::from(doc))))
}

/// Outside the `async fn`: a `&dyn Fn(&str)` held in its state would make it `!Send`.
fn filtered(doc: &[u8], patterns: &BucketPatterns) -> Result<Vec<u8>, xml::XmlError> {
    xml::filter_buckets(doc, &|name| patterns.allows(name))
}

/// The body, up to [`MAX_BUCKET_LISTING_BYTES`].
async fn collect(mut body: Body) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UpstreamError::Answer(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_BUCKET_LISTING_BYTES {
                return Err(UpstreamError::Answer(format!(
                    "a bucket listing longer than {MAX_BUCKET_LISTING_BYTES} bytes"
                )));
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}
