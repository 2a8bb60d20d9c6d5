//! Rewritten XML answers: plaintext sizes in listings, the proxy's seals hidden, and upload ids
//! that carry an upload's keys.
//!
//! In `ListObjects`, `ListObjectsV2` and `ListObjectVersions`, the `<Size>` of every
//! `<Contents>` and `<Version>` becomes `plaintext_len(Size)`, and entries under `.s3seal/` are
//! dropped. A listing does not say which objects are encrypted. A size that is no ciphertext
//! length (`docs/format.md` §4) cannot belong to an encrypted object and is left alone; an
//! unencrypted object whose size happens to be one is shown shrunk. `docs/config.md` states
//! this limit.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use crate::body::{self, Body};
use crate::crypto::format::plaintext_len;

use super::multipart::{client_upload_id, SEAL_PREFIX};
use super::{collect_bounded, CseError, MAX_LISTING_BYTES};

/// Which answer is rewritten.
pub(super) enum Kind<'a> {
    /// An object listing.
    Objects,
    /// `ListParts`: part sizes, and the upload id with its keys.
    Parts { token: &'a str },
    /// `CreateMultipartUpload`: the upload id with its keys.
    Created { token: &'a str },
}

/// Rewrites a successful answer; anything else passes.
pub(super) async fn rewrite(
    resp: Response<Body>,
    kind: Kind<'_>,
) -> Result<Response<Body>, CseError> {
    let (mut parts, body) = resp.into_parts();
    if parts.status != StatusCode::OK {
        return Ok(Response::from_parts(parts, body));
    }
    let doc = collect_bounded(body, MAX_LISTING_BYTES).await?;
    let doc = Bytes::from(rewrite_doc(&doc, &kind)?);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(crate::s3::headers::CONTENT_MD5);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(doc.len()));
    Ok(Response::from_parts(parts, body::full(doc)))
}

/// The rewritten document; everything else is copied as read, escapes included.
pub(super) fn rewrite_doc(doc: &[u8], kind: &Kind<'_>) -> Result<Vec<u8>, CseError> {
    let mut reader = Reader::from_reader(doc);
    let mut writer = Writer::new(Vec::with_capacity(doc.len()));
    let mut path: Vec<Vec<u8>> = Vec::new();
    // An entry of an object listing is held until its end: its key decides whether it shows.
    let mut held: Option<Held> = None;
    let xml_error = |e: quick_xml::Error| CseError::Answer(e.to_string());
    loop {
        let event = reader.read_event().map_err(xml_error)?;
        let event = match event {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                let entry = matches!(
                    e.local_name().as_ref(),
                    b"Contents" | b"Version" | b"DeleteMarker" | b"CommonPrefixes"
                );
                if held.is_none() && entry && matches!(kind, Kind::Objects) {
                    held = Some(Held {
                        depth: path.len(),
                        events: Vec::new(),
                        hide: false,
                    });
                }
                Event::Start(e)
            }
            Event::End(e) => {
                path.pop();
                Event::End(e)
            }
            Event::Text(t) => {
                let raw = std::str::from_utf8(&t)
                    .map_err(|e| CseError::Answer(e.to_string()))?
                    .to_owned();
                match (kind, path.as_slice()) {
                    (Kind::Objects, [.., entry, size])
                        if size == b"Size" && (entry == b"Contents" || entry == b"Version") =>
                    {
                        Event::Text(BytesText::from_escaped(plain_size(&raw)?))
                    }
                    (Kind::Objects, [.., entry, name])
                        if (name == b"Key" || name == b"Prefix")
                            && (entry == b"Contents"
                                || entry == b"Version"
                                || entry == b"DeleteMarker"
                                || entry == b"CommonPrefixes") =>
                    {
                        // Keys may be URL-encoded (`encoding-type=url`).
                        let reserved = raw.starts_with(SEAL_PREFIX)
                            || raw.to_ascii_lowercase().starts_with(".s3seal%2f");
                        if let (true, Some(h)) = (reserved, held.as_mut()) {
                            h.hide = true;
                        }
                        Event::Text(t)
                    }
                    (Kind::Parts { .. }, [.., part, size])
                        if part == b"Part" && size == b"Size" =>
                    {
                        Event::Text(BytesText::from_escaped(plain_size(&raw)?))
                    }
                    (Kind::Parts { token } | Kind::Created { token }, [_, id])
                        if id == b"UploadId" =>
                    {
                        Event::Text(BytesText::from_escaped(client_upload_id(&raw, token)))
                    }
                    _ => Event::Text(t),
                }
            }
            other => other,
        };
        if let Some(h) = held.as_mut() {
            h.events.push(event.into_owned());
            if path.len() < h.depth {
                let h = held.take().expect("held above");
                if !h.hide {
                    for e in h.events {
                        writer
                            .write_event(e)
                            .map_err(|e| CseError::Answer(e.to_string()))?;
                    }
                }
            }
            continue;
        }
        writer
            .write_event(event)
            .map_err(|e| CseError::Answer(e.to_string()))?;
    }
    Ok(writer.into_inner())
}

struct Held {
    depth: usize,
    events: Vec<Event<'static>>,
    hide: bool,
}

/// A stored size as the client's: unchanged when it is no ciphertext length.
fn plain_size(raw: &str) -> Result<String, CseError> {
    let stored = raw
        .trim()
        .parse::<u64>()
        .map_err(|_| CseError::Answer("a <Size> that is not a number".into()))?;
    Ok(plaintext_len(stored).unwrap_or(stored).to_string())
}
