//! `DeleteBucket` on an encrypted bucket. Version 1 multipart objects kept their seals in
//! `.s3seal/seal/` objects (`docs/format.md` §7), which the proxy hides and which outlive the
//! objects they sealed. A client that deleted every object it can see must still be able to
//! delete the bucket: when the backend answers `BucketNotEmpty` and everything left (every
//! version and delete marker) lies under `.s3seal/`, the proxy deletes those and asks again.
//! Anything else left keeps the backend's answer.

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::s3::route::Target;
use crate::upstream::{Outgoing, Sender};

use super::multipart::{for_each_element, SEAL_PREFIX};
use super::{call, collect_bounded, CseError, MAX_LISTING_BYTES};

/// An entry left in the bucket: its key and, in a versioned listing, its version.
struct Left {
    key: String,
    version: Option<String>,
}

/// The answer to a `DeleteBucket`, after removing the proxy's leftovers if they alone kept
/// the bucket from being deleted.
pub(super) async fn reply(
    upstream: &Sender<'_>,
    target: &Target,
    resp: Response<Body>,
) -> Result<Response<Body>, ProxyError> {
    if resp.status() != StatusCode::CONFLICT {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let doc = collect_bounded(body, MAX_LISTING_BYTES).await?;
    let not_empty = std::str::from_utf8(&doc).is_ok_and(|d| d.contains("BucketNotEmpty"));
    let Some(bucket) = target.bucket().filter(|_| not_empty) else {
        return Ok(Response::from_parts(parts, body::full(doc)));
    };
    let left = leftovers(upstream, bucket).await?;
    if left.is_empty() || left.iter().any(|l| !l.key.starts_with(SEAL_PREFIX)) {
        return Ok(Response::from_parts(parts, body::full(doc)));
    }
    for l in &left {
        let object = Target::Object {
            bucket: bucket.to_owned(),
            key: l.key.clone(),
        };
        let query = l
            .version
            .iter()
            .map(|v| ("versionId".to_owned(), v.clone()))
            .collect();
        let (status, _) = call(
            upstream,
            request(Method::DELETE, &object, query),
            Bytes::new(),
            MAX_LISTING_BYTES,
        )
        .await?;
        if !status.is_success() {
            let why = format!("deleting the leftover {} answered {status}", l.key);
            return Err(CseError::Inconsistent(why).into());
        }
    }
    let again = request(Method::DELETE, target, Vec::new());
    let (status, doc) = call(upstream, again, Bytes::new(), MAX_LISTING_BYTES).await?;
    let mut resp = Response::new(body::full(doc));
    *resp.status_mut() = status;
    Ok(resp)
}

fn request(method: Method, target: &Target, query: Vec<(String, String)>) -> Outgoing<'_> {
    Outgoing {
        method,
        target,
        query,
        headers: HeaderMap::new(),
        content_length: None,
    }
}

/// Everything left in the bucket: every version and delete marker where the backend keeps
/// versions, else every object.
async fn leftovers(upstream: &Sender<'_>, bucket: &str) -> Result<Vec<Left>, ProxyError> {
    let target = Target::Bucket(bucket.to_owned());
    let mut left = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut query = vec![("versions".to_owned(), String::new())];
        if let Some((key, version)) = markers.take() {
            query.push(("key-marker".to_owned(), key));
            query.push(("version-id-marker".to_owned(), version));
        }
        let (status, doc) = call(
            upstream,
            request(Method::GET, &target, query),
            Bytes::new(),
            MAX_LISTING_BYTES,
        )
        .await?;
        if status == StatusCode::NOT_IMPLEMENTED && left.is_empty() {
            return objects(upstream, &target).await;
        }
        if status != StatusCode::OK {
            let why = format!("listing the bucket's versions answered {status}");
            return Err(CseError::Inconsistent(why).into());
        }
        let page = Page::parse(&doc, &[b"Version", b"DeleteMarker"])?;
        left.extend(page.entries);
        match (page.truncated, page.next_key, page.next_version) {
            (true, Some(key), Some(version)) => markers = Some((key, version)),
            _ => return Ok(left),
        }
    }
}

/// Every object, for a backend without versions.
async fn objects(upstream: &Sender<'_>, target: &Target) -> Result<Vec<Left>, ProxyError> {
    let mut left = Vec::new();
    let mut token = None;
    loop {
        let mut query = vec![("list-type".to_owned(), "2".to_owned())];
        if let Some(t) = token.take() {
            query.push(("continuation-token".to_owned(), t));
        }
        let (status, doc) = call(
            upstream,
            request(Method::GET, target, query),
            Bytes::new(),
            MAX_LISTING_BYTES,
        )
        .await?;
        if status != StatusCode::OK {
            let why = format!("listing the bucket answered {status}");
            return Err(CseError::Inconsistent(why).into());
        }
        let page = Page::parse(&doc, &[b"Contents"])?;
        left.extend(page.entries);
        match (page.truncated, page.next_token) {
            (true, Some(t)) => token = Some(t),
            _ => return Ok(left),
        }
    }
}

#[derive(Default)]
struct Page {
    entries: Vec<Left>,
    truncated: bool,
    next_key: Option<String>,
    next_version: Option<String>,
    next_token: Option<String>,
}

impl Page {
    fn parse(doc: &[u8], entries: &[&[u8]]) -> Result<Self, CseError> {
        let mut page = Page::default();
        let (mut key, mut version) = (None, None);
        for_each_element(doc, |path, text| {
            match (path, text) {
                ([_, e, n], Some(t)) if entries.contains(&e.as_slice()) && n == b"Key" => {
                    key = Some(t.to_owned());
                }
                ([_, e, n], Some(t)) if entries.contains(&e.as_slice()) && n == b"VersionId" => {
                    // S3 names the versions of an unversioned object "null".
                    version = Some(t.trim().to_owned());
                }
                ([_, e], None) if entries.contains(&e.as_slice()) => {
                    let key = key
                        .take()
                        .ok_or_else(|| CseError::Answer("an entry without a key".to_owned()))?;
                    page.entries.push(Left {
                        key,
                        version: version.take(),
                    });
                }
                ([_, n], Some(t)) if n == b"IsTruncated" => page.truncated = t.trim() == "true",
                ([_, n], Some(t)) if n == b"NextKeyMarker" => page.next_key = Some(t.to_owned()),
                ([_, n], Some(t)) if n == b"NextVersionIdMarker" => {
                    page.next_version = Some(t.trim().to_owned());
                }
                ([_, n], Some(t)) if n == b"NextContinuationToken" => {
                    page.next_token = Some(t.trim().to_owned());
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(page)
    }
}
