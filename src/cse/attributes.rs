//! `GetObjectAttributes` on encrypted buckets. Backends answer it from what they store (the
//! ciphertext's size and checksums, and many do not implement it at all), so the proxy asks
//! for a HEAD instead and writes the answer itself from the object's record and, for a
//! multipart object, its seal (`docs/format.md` §7): the plaintext size, the `ETag` that HEAD
//! shows, the parts with their plaintext sizes, and never a checksum (the stored ones describe
//! the ciphertext).
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html>

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use quick_xml::escape::escape;

use crate::body::{self, Body};
use crate::crypto::format::{Layout, ObjectMetadata};
use crate::error::ProxyError;
use crate::upstream::{Outgoing, Sender};

use super::{client_etag, content_length, read, CseError, Rule, Transform, Unencrypted};

const X_AMZ_OBJECT_ATTRIBUTES: &str = "x-amz-object-attributes";
const X_AMZ_MAX_PARTS: &str = "x-amz-max-parts";
const X_AMZ_PART_NUMBER_MARKER: &str = "x-amz-part-number-marker";
/// S3's default and largest page of parts.
const MAX_PARTS: usize = 1000;
/// The HEAD's headers that describe the object version the answer is about.
const KEPT: [&str; 4] = [
    "last-modified",
    "x-amz-version-id",
    "x-amz-delete-marker",
    "x-amz-request-id",
];

/// What the client asked for.
pub struct Attributes {
    rule: Arc<Rule>,
    bucket: String,
    /// The object's key, for the audit log.
    object: String,
    /// `x-amz-object-attributes`, lower case.
    wanted: Vec<String>,
    max_parts: usize,
    marker: u32,
}

pub(super) fn plan(rule: &Arc<Rule>, out: &mut Outgoing<'_>) -> Transform {
    let wanted: Vec<String> = out
        .headers
        .get_all(X_AMZ_OBJECT_ATTRIBUTES)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    let number = |name: &str| {
        out.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let attributes = Attributes {
        rule: Arc::clone(rule),
        bucket: out.target.bucket().unwrap_or_default().to_owned(),
        object: out.target.key().unwrap_or_default().to_owned(),
        wanted,
        max_parts: number(X_AMZ_MAX_PARTS).map_or(MAX_PARTS, |n| (n as usize).min(MAX_PARTS)),
        marker: number(X_AMZ_PART_NUMBER_MARKER).unwrap_or(0),
    };
    out.method = Method::HEAD;
    out.query.retain(|(k, _)| k == "versionId");
    let names: Vec<HeaderName> = out
        .headers
        .keys()
        .filter(|n| {
            [
                X_AMZ_OBJECT_ATTRIBUTES,
                X_AMZ_MAX_PARTS,
                X_AMZ_PART_NUMBER_MARKER,
            ]
            .contains(&n.as_str())
        })
        .cloned()
        .collect();
    for n in names {
        out.headers.remove(n);
    }
    Transform::Attributes(attributes)
}

impl Attributes {
    fn wants(&self, name: &str) -> bool {
        self.wanted.iter().any(|a| a == name)
    }

    /// The answer, written from the HEAD's.
    pub(super) async fn reply(
        self,
        upstream: &Sender<'_>,
        resp: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (head, _) = resp.into_parts();
        if head.status != StatusCode::OK {
            // A HEAD's error has no body: the client gets S3's error document.
            if head.status == StatusCode::NOT_MODIFIED {
                return Ok(Response::from_parts(head, body::empty()));
            }
            return Err(CseError::Read(head.status).into());
        }
        let h = &head.headers;
        let stored = content_length(h)?;
        // Every object of an encrypted bucket shows its `ETag` marked (docs/format.md §6.1).
        let etag = h
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|e| client_etag(e).trim_matches('"').to_owned())
            .unwrap_or_default();
        let (size, etag, parts) = match ObjectMetadata::from_headers(h).map_err(CseError::Stored)? {
            None if self.rule.unencrypted == Unencrypted::Refuse => {
                return Err(CseError::Unencrypted.into())
            }
            None => (stored, etag, None),
            Some(meta) => {
                let key = self.rule.open(&meta, &self.bucket, &self.object).await?;
                let parts = read::object_parts(upstream, &self.bucket, &meta, &key, stored).await?;
                let size = parts.iter().map(|(_, len)| len).sum();
                let parts = (meta.layout == Layout::Multipart).then_some(parts);
                (size, etag, parts)
            }
        };
        let mut doc = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetObjectAttributesResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        if self.wants("etag") {
            let _ = write!(doc, "<ETag>{}</ETag>", escape(&etag));
        }
        if let (true, Some(parts)) = (self.wants("objectparts"), parts) {
            let after: Vec<_> = parts
                .iter()
                .filter(|(n, _)| n.get() > self.marker)
                .collect();
            let page = &after[..after.len().min(self.max_parts)];
            let next = page.last().map_or(self.marker, |(n, _)| n.get());
            let _ = write!(
                doc,
                "<ObjectParts><PartsCount>{}</PartsCount><PartNumberMarker>{}</PartNumberMarker><NextPartNumberMarker>{next}</NextPartNumberMarker><MaxParts>{}</MaxParts><IsTruncated>{}</IsTruncated>",
                parts.len(),
                self.marker,
                self.max_parts,
                page.len() < after.len()
            );
            for (n, len) in page {
                let _ = write!(
                    doc,
                    "<Part><PartNumber>{}</PartNumber><Size>{len}</Size></Part>",
                    n.get()
                );
            }
            doc.push_str("</ObjectParts>");
        }
        if self.wants("storageclass") {
            let class = h
                .get("x-amz-storage-class")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("STANDARD");
            let _ = write!(doc, "<StorageClass>{}</StorageClass>", escape(class));
        }
        if self.wants("objectsize") {
            let _ = write!(doc, "<ObjectSize>{size}</ObjectSize>");
        }
        doc.push_str("</GetObjectAttributesResponse>");
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(v) = h.get(name) {
                headers.insert(HeaderName::from_static(name), v.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
        let mut resp = Response::new(body::full(Bytes::from(doc)));
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}
