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
use crate::crypto::format::{plaintext_len, ObjectKey, PartNumber};

use super::multipart::{client_upload_id, Created, SEAL_PREFIX};
use super::{client_etag, collect_bounded, marked, part_mark, CseError, MAX_LISTING_BYTES};

/// Which answer is rewritten.
pub(super) enum Kind<'a> {
    /// An object listing.
    Objects,
    /// `ListParts`: part sizes, part `ETag`s as UploadPart showed them (tagged under `key`),
    /// and the upload id with its keys.
    Parts { token: &'a str, key: &'a ObjectKey },
    /// `CreateMultipartUpload`: the upload id with its keys.
    Created(&'a Created),
    /// `CopyObject` and `CompleteMultipartUpload`: the new object's `ETag` (`fallback` when
    /// the backend's is empty, as RGW 16's completions are).
    Result { fallback: Option<&'a str> },
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
    // So is a part of a part listing: its number and size decide its `ETag`.
    let mut held: Option<Held> = None;
    // The text of an `ETag`, `Key` or `Prefix`, unescaped: entities split it into several
    // events, and only the whole value says what it is.
    let mut leaf: Option<String> = None;
    let xml_error = |e: &dyn std::fmt::Display| CseError::Answer(e.to_string());
    loop {
        let mut events = Vec::with_capacity(2);
        match reader.read_event().map_err(|e| xml_error(&e))? {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                if matches!(e.local_name().as_ref(), b"ETag" | b"Key" | b"Prefix") {
                    leaf = Some(String::new());
                }
                let entry = match kind {
                    Kind::Objects => matches!(
                        e.local_name().as_ref(),
                        b"Contents" | b"Version" | b"DeleteMarker" | b"CommonPrefixes"
                    ),
                    Kind::Parts { .. } => e.local_name().as_ref() == b"Part",
                    Kind::Created(_) | Kind::Result { .. } => false,
                };
                if held.is_none() && entry {
                    held = Some(Held {
                        depth: path.len(),
                        events: Vec::new(),
                        hide: false,
                        part: None,
                    });
                }
                events.push(Event::Start(e));
            }
            Event::Text(t) if leaf.is_some() => {
                let t = t.decode().map_err(|e| xml_error(&e))?;
                leaf.get_or_insert_default().push_str(&t);
            }
            Event::GeneralRef(r) if leaf.is_some() => {
                let reference = format!("&{};", String::from_utf8_lossy(&r));
                let resolved =
                    quick_xml::escape::unescape(&reference).map_err(|e| xml_error(&e))?;
                leaf.get_or_insert_default().push_str(&resolved);
            }
            Event::End(e) => {
                if let Some(value) = leaf.take() {
                    let text = if e.local_name().as_ref() == b"ETag" {
                        let shown = shown_etag(kind, &path, held.as_mut(), value);
                        Event::Text(BytesText::new(&shown).into_owned())
                    } else {
                        text(kind, &path, held.as_mut(), BytesText::new(&value))?.into_owned()
                    };
                    events.push(text);
                }
                path.pop();
                events.push(Event::End(e));
            }
            Event::Text(t) if matches!((kind, path.as_slice()), (Kind::Objects, [_, n]) if n == b"KeyCount") =>
            {
                // ListObjectsV2 counts the entries it lists, the proxy's hidden ones included.
                let listed: u64 = std::str::from_utf8(&t)
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| CseError::Answer("a <KeyCount> that is not a number".into()))?;
                let shown = listed.saturating_sub(hidden_entries(doc)?).to_string();
                events.push(Event::Text(BytesText::new(&shown).into_owned()));
            }
            Event::Text(t) => events.push(text(kind, &path, held.as_mut(), t)?),
            other => events.push(other),
        }
        for event in events {
            if let Some(h) = held.as_mut() {
                h.events.push(event.into_owned());
                if path.len() < h.depth {
                    held.take().expect("held above").flush(kind, &mut writer)?;
                }
                continue;
            }
            writer.write_event(event).map_err(|e| xml_error(&e))?;
        }
    }
    Ok(writer.into_inner())
}

/// An `ETag` as the client sees it (unescaped); notes in `held` a part's, which its number
/// and size decide.
fn shown_etag(kind: &Kind<'_>, path: &[Vec<u8>], held: Option<&mut Held>, value: String) -> String {
    match (kind, path) {
        // Every object of an encrypted bucket shows its `ETag` marked (docs/format.md §6.1),
        // whatever its size says.
        (Kind::Objects, [.., entry, _]) if entry == b"Contents" || entry == b"Version" => {
            client_etag(&value)
        }
        (Kind::Result { fallback }, [_, _]) => match fallback {
            Some(etag) if value.trim().is_empty() => client_etag(etag),
            Some(_) | None => client_etag(&value),
        },
        (Kind::Parts { .. }, [.., part, _]) if part == b"Part" => {
            if let Some(h) = held {
                let at = h.events.len();
                h.part.get_or_insert_with(HeldPart::default).etag = Some((at, value.clone()));
            }
            value
        }
        _ => value,
    }
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
            Event::Text(BytesText::from_escaped(plain_size(&raw)?))
        }
        (Kind::Objects, [.., entry, name])
            if (name == b"Key" || name == b"Prefix")
                && (object_entry(entry)
                    || entry == b"DeleteMarker"
                    || entry == b"CommonPrefixes") =>
        {
            if let (true, Some(h)) = (reserved(&raw), held) {
                h.hide = true;
            }
            Event::Text(t)
        }
        (Kind::Parts { .. }, [.., part, number]) if part == b"Part" && number == b"PartNumber" => {
            if let Some(h) = held {
                h.part.get_or_insert_with(HeldPart::default).number = raw.trim().parse().ok();
            }
            Event::Text(t)
        }
        (Kind::Parts { .. }, [.., part, size]) if part == b"Part" && size == b"Size" => {
            let plain = plain_size(&raw)?;
            if let Some(h) = held {
                h.part.get_or_insert_with(HeldPart::default).len = plain.parse().ok();
            }
            Event::Text(BytesText::from_escaped(plain))
        }
        (Kind::Parts { token, .. }, [_, id]) if id == b"UploadId" => {
            Event::Text(BytesText::from_escaped(client_upload_id(&raw, token)))
        }
        (Kind::Created(created), [_, id]) if id == b"UploadId" => {
            // The token authenticates the id as the client will send it back: unescaped.
            let backend =
                quick_xml::escape::unescape(&raw).map_err(|e| CseError::Answer(e.to_string()))?;
            let client = created.upload_id(&backend);
            Event::Text(BytesText::new(&client).into_owned())
        }
        _ => Event::Text(t),
    })
}

impl Held {
    /// Writes the entry unless it is hidden, with a part's `ETag` marked as UploadPart marked
    /// it (docs/format.md §6.1).
    fn flush(mut self, kind: &Kind<'_>, writer: &mut Writer<Vec<u8>>) -> Result<(), CseError> {
        if let (Kind::Parts { key, .. }, Some(part)) = (kind, &self.part) {
            let number = part.number.and_then(PartNumber::multipart);
            if let (Some((i, etag)), Some(n), Some(len)) = (&part.etag, number, part.len) {
                let shown = marked(etag, &part_mark(key, n, len));
                self.events[*i] = Event::Text(BytesText::new(&shown).into_owned());
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
    part: Option<HeldPart>,
}

/// What a held part's `ETag` depends on.
#[derive(Default)]
struct HeldPart {
    /// Where the `ETag` text is among the entry's events, and the backend's `ETag`.
    etag: Option<(usize, String)>,
    number: Option<u32>,
    /// Plaintext bytes.
    len: Option<u64>,
}

/// A key (or common prefix) of the proxy's own: hidden from listings.
fn reserved(key: &str) -> bool {
    // Keys may be URL-encoded (`encoding-type=url`).
    key.starts_with(SEAL_PREFIX) || key.to_ascii_lowercase().starts_with(".s3seal%2f")
}

/// How many entries of an object listing are hidden: its `KeyCount` must not count them.
fn hidden_entries(doc: &[u8]) -> Result<u64, CseError> {
    let mut reader = Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut hidden = 0;
    // The element's text as written (escaped): only its start matters.
    let mut text = String::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| CseError::Answer(e.to_string()))?
        {
            Event::Eof => return Ok(hidden),
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                text.push('&');
                text.push_str(&String::from_utf8_lossy(&r));
                text.push(';');
            }
            Event::End(_) => {
                if let [_, entry, name] = path.as_slice() {
                    let counted = matches!(entry.as_slice(), b"Contents" | b"CommonPrefixes");
                    let key = matches!(name.as_slice(), b"Key" | b"Prefix");
                    if counted && key && reserved(&text) {
                        hidden += 1;
                    }
                }
                path.pop();
            }
            _ => {}
        }
    }
}

/// A stored size as the client's (unchanged when it is no ciphertext length).
fn plain_size(raw: &str) -> Result<String, CseError> {
    let stored = raw
        .trim()
        .parse::<u64>()
        .map_err(|_| CseError::Answer("a <Size> that is not a number".into()))?;
    Ok(plaintext_len(stored).unwrap_or(stored).to_string())
}
