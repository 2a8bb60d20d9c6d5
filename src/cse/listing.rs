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
use super::{backend_etag, client_etag, collect_bounded, CseError, MAX_LISTING_BYTES};

/// Which answer is rewritten.
pub(super) enum Kind<'a> {
    /// An object listing.
    Objects,
    /// `ListParts`: part sizes, and the upload id with its keys.
    Parts { token: &'a str },
    /// `CreateMultipartUpload`: the upload id with its keys.
    Created { token: &'a str },
    /// `CopyObject` and `CompleteMultipartUpload`: the new object's `ETag`.
    Result,
    /// A `CompleteMultipartUpload` request: the parts' `ETag`s as the backend knows them.
    Completion,
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
                        etag: None,
                        encrypted: false,
                    });
                }
                Event::Start(e)
            }
            Event::End(e) => {
                path.pop();
                Event::End(e)
            }
            Event::Text(t) => text(kind, &path, held.as_mut(), t)?,
            other => other,
        };
        if let Some(h) = held.as_mut() {
            h.events.push(event.into_owned());
            if path.len() < h.depth {
                held.take().expect("held above").flush(&mut writer)?;
            }
            continue;
        }
        writer
            .write_event(event)
            .map_err(|e| CseError::Answer(e.to_string()))?;
    }
    Ok(writer.into_inner())
}

/// A text node, rewritten as `kind` needs; notes in `held` what decides its entry.
fn text<'e>(
    kind: &Kind<'_>,
    path: &[Vec<u8>],
    held: Option<&mut Held>,
    t: BytesText<'e>,
) -> Result<Event<'e>, CseError> {
    let raw = std::str::from_utf8(&t)
        .map_err(|e| CseError::Answer(e.to_string()))?
        .to_owned();
    let object_entry = |entry: &[u8]| entry == b"Contents" || entry == b"Version";
    Ok(match (kind, path) {
        (Kind::Objects, [.., entry, size]) if size == b"Size" && object_entry(entry) => {
            let (shown, encrypted) = plain_size(&raw)?;
            if let (true, Some(h)) = (encrypted, held) {
                h.encrypted = true;
            }
            Event::Text(BytesText::from_escaped(shown))
        }
        (Kind::Objects, [.., entry, etag]) if etag == b"ETag" && object_entry(entry) => {
            // Decided once the entry's size is known.
            if let Some(h) = held {
                h.etag = Some(h.events.len());
            }
            Event::Text(t)
        }
        (Kind::Objects, [.., entry, name])
            if (name == b"Key" || name == b"Prefix")
                && (object_entry(entry)
                    || entry == b"DeleteMarker"
                    || entry == b"CommonPrefixes") =>
        {
            // Keys may be URL-encoded (`encoding-type=url`).
            let reserved =
                raw.starts_with(SEAL_PREFIX) || raw.to_ascii_lowercase().starts_with(".s3seal%2f");
            if let (true, Some(h)) = (reserved, held) {
                h.hide = true;
            }
            Event::Text(t)
        }
        (Kind::Result, [_, etag]) if etag == b"ETag" => {
            Event::Text(BytesText::from_escaped(client_etag(&raw)))
        }
        (Kind::Parts { .. }, [.., part, etag]) if part == b"Part" && etag == b"ETag" => {
            Event::Text(BytesText::from_escaped(client_etag(&raw)))
        }
        (Kind::Completion, [.., part, etag]) if part == b"Part" && etag == b"ETag" => {
            Event::Text(BytesText::from_escaped(backend_etag(&raw)))
        }
        (Kind::Parts { .. }, [.., part, size]) if part == b"Part" && size == b"Size" => {
            Event::Text(BytesText::from_escaped(plain_size(&raw)?.0))
        }
        (Kind::Parts { token } | Kind::Created { token }, [_, id]) if id == b"UploadId" => {
            Event::Text(BytesText::from_escaped(client_upload_id(&raw, token)))
        }
        _ => Event::Text(t),
    })
}

impl Held {
    /// Writes the entry unless it is hidden, with an encrypted object's `ETag` marked.
    fn flush(mut self, writer: &mut Writer<Vec<u8>>) -> Result<(), CseError> {
        if let (true, Some(i)) = (self.encrypted, self.etag) {
            if let Event::Text(t) = &self.events[i] {
                let raw = String::from_utf8_lossy(t).into_owned();
                self.events[i] = Event::Text(BytesText::from_escaped(client_etag(&raw)));
            }
        }
        if self.hide {
            return Ok(());
        }
        for e in self.events {
            writer
                .write_event(e)
                .map_err(|e| CseError::Answer(e.to_string()))?;
        }
        Ok(())
    }
}

struct Held {
    depth: usize,
    events: Vec<Event<'static>>,
    hide: bool,
    /// Where the entry's `ETag` text is among `events`.
    etag: Option<usize>,
    /// The entry's size is a ciphertext length: its `ETag` is shown as an encrypted object's.
    encrypted: bool,
}

/// A stored size as the client's (unchanged when it is no ciphertext length), and whether it
/// was a ciphertext length.
fn plain_size(raw: &str) -> Result<(String, bool), CseError> {
    let stored = raw
        .trim()
        .parse::<u64>()
        .map_err(|_| CseError::Answer("a <Size> that is not a number".into()))?;
    Ok(match plaintext_len(stored) {
        Some(plain) => (plain.to_string(), true),
        None => (stored.to_string(), false),
    })
}
