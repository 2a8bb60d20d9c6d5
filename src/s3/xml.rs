//! Checks on XML request bodies before they are forwarded.
//!
//! Some backends expand DTD entities (a DeleteObjects body deleted an object through an entity
//! on Ceph RGW), so the proxy refuses any document type declaration and any entity reference
//! other than the five predefined ones and character references (XML 1.0 §4.1, §4.6).

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::{S3Code, S3Error};

/// The largest XML or JSON request body the proxy buffers. DeleteObjects with 1000 keys of
/// 1024 bytes each is the largest legitimate body S3 accepts in XML (about 1.1 MB).
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("The XML you provided was not well-formed or did not validate against our published schema: {0}")]
    Malformed(String),
    #[error("The XML you provided contains a document type declaration, which is not allowed.")]
    Doctype,
    #[error("The XML you provided refers to the entity '&{0};', which is not allowed.")]
    Entity(String),
    #[error("Your request body is larger than the {MAX_DOCUMENT_BYTES} bytes allowed for this operation.")]
    TooLarge,
}

impl S3Error for XmlError {
    fn code(&self) -> S3Code {
        match self {
            XmlError::Malformed(_) | XmlError::Doctype | XmlError::Entity(_) => {
                S3Code::MalformedXML
            }
            XmlError::TooLarge => S3Code::MaxMessageLengthExceeded,
        }
    }
}

/// Accepts a well-formed document with no DTD and no custom entities. An empty body is
/// accepted (many operations have none); the backend decides whether it needed one.
pub fn check_document(body: &[u8]) -> Result<(), XmlError> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(XmlError::TooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut reader = Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::DocType(_)) => return Err(XmlError::Doctype),
            Ok(Event::GeneralRef(r)) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let predefined = matches!(name.as_str(), "lt" | "gt" | "amp" | "apos" | "quot");
                if !predefined && !name.starts_with('#') {
                    return Err(XmlError::Entity(name));
                }
            }
            Ok(Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Empty(_)) if depth == 0 => roots += 1,
            Ok(Event::Text(t)) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(XmlError::Malformed("text outside the root element".into()));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(XmlError::Malformed(e.to_string())),
        }
    }
    match (roots, depth) {
        (1, 0) => Ok(()),
        (0, _) => Err(XmlError::Malformed("no root element".into())),
        (_, 0) => Err(XmlError::Malformed("more than one root element".into())),
        _ => Err(XmlError::Malformed("unclosed element".into())),
    }
}

/// S3 deletes at most 1000 keys per DeleteObjects request.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html>
pub const MAX_DELETE_KEYS: usize = 1000;

/// The keys of a DeleteObjects body (`<Delete><Object><Key>`), unescaped. The body must
/// name between one and [`MAX_DELETE_KEYS`] keys.
pub fn delete_keys(body: &[u8]) -> Result<Vec<String>, XmlError> {
    check_document(body)?;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut keys = Vec::new();
    // The key being read: quick-xml hands text and entity references as separate events.
    let mut key: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if is_delete_key(&path) {
                    key = Some(String::new());
                }
            }
            Ok(Event::Empty(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if is_delete_key(&path) {
                    keys.push(String::new());
                }
                path.pop();
            }
            Ok(Event::End(_)) => {
                if let Some(k) = key.take() {
                    keys.push(k);
                    if keys.len() > MAX_DELETE_KEYS {
                        return Err(XmlError::Malformed(format!(
                            "more than {MAX_DELETE_KEYS} keys"
                        )));
                    }
                }
                path.pop();
            }
            Ok(Event::Text(t)) => {
                if let Some(k) = key.as_mut() {
                    k.push_str(&t.decode().map_err(|e| malformed(&e))?);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(k) = key.as_mut() {
                    k.push_str(&t.decode().map_err(|e| malformed(&e))?);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(k) = key.as_mut() {
                    // `check_document` admitted only predefined and character references.
                    let name = String::from_utf8_lossy(&r);
                    let reference = format!("&{name};");
                    let resolved =
                        quick_xml::escape::unescape(&reference).map_err(|e| malformed(&e))?;
                    k.push_str(&resolved);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(malformed(&e)),
        }
    }
    if keys.is_empty() {
        return Err(XmlError::Malformed(
            "the Delete element names no key".into(),
        ));
    }
    Ok(keys)
}

fn is_listed_bucket(path: &[Vec<u8>]) -> bool {
    matches!(path, [_, bs, b] if bs == b"Buckets" && b == b"Bucket")
}

fn is_delete_key(path: &[Vec<u8>]) -> bool {
    matches!(path, [d, o, k] if d == b"Delete" && o == b"Object" && k == b"Key")
}

/// `ListAllMyBucketsResult` without the `<Bucket>` entries whose `<Name>` `keep` refuses;
/// everything else is copied as read.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html>
pub fn filter_buckets(doc: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<Vec<u8>, XmlError> {
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_reader(doc);
    let mut writer = quick_xml::Writer::new(Vec::with_capacity(doc.len()));
    let mut path: Vec<Vec<u8>> = Vec::new();
    // A `<Bucket>` entry is held until its end: its name decides whether it shows.
    let mut held: Option<(Vec<Event<'static>>, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match &event {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                if is_listed_bucket(&path) {
                    held = Some((Vec::new(), String::new()));
                }
            }
            Event::Text(t) => {
                if let (Some((_, name)), [.., n]) = (held.as_mut(), path.as_slice()) {
                    if n == b"Name" && path.len() == 4 {
                        name.push_str(&t.decode().map_err(|e| malformed(&e))?);
                    }
                }
            }
            _ => {}
        }
        let closes_entry = matches!(event, Event::End(_)) && is_listed_bucket(&path);
        if matches!(event, Event::End(_)) {
            path.pop();
        }
        if let Some((events, name)) = held.as_mut() {
            events.push(event.into_owned());
            if closes_entry {
                let shown = keep(name);
                let events = std::mem::take(events);
                held = None;
                if shown {
                    for e in events {
                        writer.write_event(e).map_err(|e| malformed(&e))?;
                    }
                }
            }
            continue;
        }
        writer.write_event(event).map_err(|e| malformed(&e))?;
    }
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_documents() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b&#x41;</Key></Object><Quiet>true</Quiet></Delete>"#;
        assert_eq!(check_document(doc), Ok(()));
        assert_eq!(check_document(b""), Ok(()));
        assert_eq!(check_document(b"<Tagging/>"), Ok(()));
    }

    #[test]
    fn refuses_dtds_and_entities() {
        let doc = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY k "victim">]><Delete><Object><Key>&k;</Key></Object></Delete>"#;
        assert_eq!(check_document(doc), Err(XmlError::Doctype));
        let doc = br"<Delete><Object><Key>&k;</Key></Object></Delete>";
        assert_eq!(check_document(doc), Err(XmlError::Entity("k".into())));
    }

    #[test]
    fn refuses_malformed_documents() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"<a/><b/>",
            b"junk",
            b"<a></a>trailing",
        ] {
            let err = check_document(doc).unwrap_err();
            assert!(matches!(err, XmlError::Malformed(_)), "{doc:?}: {err:?}");
            assert_eq!(err.code(), S3Code::MalformedXML);
        }
    }

    #[test]
    fn refuses_oversized_documents() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert_eq!(check_document(&big), Err(XmlError::TooLarge));
    }

    #[test]
    fn delete_keys_are_read_unescaped() {
        let doc = br"<Delete><Object><Key>a&amp;b&#x41;</Key><VersionId>1</VersionId></Object><Object><Key>.s3seal/x</Key></Object><Quiet>true</Quiet></Delete>";
        assert_eq!(delete_keys(doc).unwrap(), vec!["a&bA", ".s3seal/x"]);
        assert!(matches!(delete_keys(b""), Err(XmlError::Malformed(_))));
        assert!(matches!(
            delete_keys(b"<Delete><Quiet>true</Quiet></Delete>"),
            Err(XmlError::Malformed(_))
        ));
        let many = "<Object><Key>k</Key></Object>".repeat(MAX_DELETE_KEYS + 1);
        let doc = format!("<Delete>{many}</Delete>");
        assert!(matches!(
            delete_keys(doc.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn bucket_listings_show_only_kept_buckets() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>o</ID></Owner><Buckets><Bucket><Name>a-public</Name><CreationDate>d1</CreationDate></Bucket><Bucket><Name>vault</Name><CreationDate>d2</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"#;
        let out = filter_buckets(doc, &|n| n.ends_with("-public")).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("<Name>a-public</Name><CreationDate>d1</CreationDate>"));
        assert!(!out.contains("vault"), "{out}");
        assert!(out.contains("<Owner><ID>o</ID></Owner>"));
    }
}
