//! Plaintext sizes in listings: `<Size>` of every `<Contents>` (`ListObjects`, `ListObjectsV2`)
//! and `<Version>` (`ListObjectVersions`) becomes `plaintext_len(Size)`.
//!
//! A listing does not say which objects are encrypted. A size that is no ciphertext length
//! (`docs/format.md` §4) cannot belong to an encrypted object and is left alone; an unencrypted
//! object whose size happens to be one is shown shrunk. `docs/config.md` states this limit.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use crate::body::{self, Body};
use crate::crypto::format::plaintext_len;

use super::{collect_bounded, CseError, MAX_LISTING_BYTES};

/// Rewrites a successful listing; anything else passes.
pub(super) async fn rewrite(resp: Response<Body>) -> Result<Response<Body>, CseError> {
    let (mut parts, body) = resp.into_parts();
    if parts.status != StatusCode::OK {
        return Ok(Response::from_parts(parts, body));
    }
    let doc = collect_bounded(body, MAX_LISTING_BYTES).await?;
    let doc = Bytes::from(rewrite_sizes(&doc)?);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(crate::s3::headers::CONTENT_MD5);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
    Ok(Response::from_parts(parts, body::full(doc)))
}

/// The document with every object's size in plaintext bytes; everything else is copied as
/// read, escapes included.
pub(super) fn rewrite_sizes(doc: &[u8]) -> Result<Vec<u8>, CseError> {
    let mut reader = Reader::from_reader(doc);
    let mut writer = Writer::new(Vec::with_capacity(doc.len()));
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| CseError::Listing(e.to_string()))?;
        let event = match event {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                Event::Start(e)
            }
            Event::End(e) => {
                path.pop();
                Event::End(e)
            }
            Event::Text(t) if in_object_size(&path) => {
                let stored = std::str::from_utf8(&t)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| CseError::Listing("a <Size> that is not a number".into()))?;
                match plaintext_len(stored) {
                    Some(plain) => Event::Text(BytesText::from_escaped(plain.to_string())),
                    None => Event::Text(t),
                }
            }
            other => other,
        };
        writer
            .write_event(event)
            .map_err(|e| CseError::Listing(e.to_string()))?;
    }
    Ok(writer.into_inner())
}

fn in_object_size(path: &[Vec<u8>]) -> bool {
    matches!(
        path,
        [.., parent, size] if size == b"Size" && (parent == b"Contents" || parent == b"Version")
    )
}
