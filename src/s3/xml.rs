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
    /// S3's words; what was wrong is for the log (`Debug`).
    #[error("The XML you provided was not well-formed or did not validate against our published schema.")]
    Malformed(String),
    #[error("The XML you provided contains a document type declaration, which is not allowed.")]
    Doctype,
    #[error("The XML you provided refers to the entity '&{0};', which is not allowed.")]
    Entity(String),
    #[error("Your request body is larger than the {MAX_DOCUMENT_BYTES} bytes allowed for this operation.")]
    TooLarge,
    #[error("The list of parts was not in ascending order. The parts list must be specified in order by part number.")]
    PartOrder,
}

impl S3Error for XmlError {
    fn code(&self) -> S3Code {
        match self {
            XmlError::Malformed(_) | XmlError::Doctype | XmlError::Entity(_) => {
                S3Code::MalformedXML
            }
            XmlError::TooLarge => S3Code::MaxMessageLengthExceeded,
            XmlError::PartOrder => S3Code::InvalidPartOrder,
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

/// The elements of a DeleteObjects body, by depth: `Delete`, then `Object` or `Quiet`, then
/// an object's fields (which contain text only).
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html>
fn is_delete_schema(path: &[Vec<u8>]) -> bool {
    const FIELDS: [&[u8]; 5] = [b"Key", b"VersionId", b"ETag", b"LastModifiedTime", b"Size"];
    match path {
        [d] => d == b"Delete",
        [_, c] => c == b"Object" || c == b"Quiet",
        [_, o, f] => o == b"Object" && FIELDS.contains(&f.as_slice()),
        _ => false,
    }
}

/// The keys of a DeleteObjects body (`<Delete><Object><Key>`), unescaped. The body must
/// follow S3's schema (no other elements, no deeper nesting, one key per object) and name
/// between one and [`MAX_DELETE_KEYS`] keys: S3 refuses anything else as `MalformedXML`,
/// and backends that do not would read such a body their own way.
pub fn delete_keys(body: &[u8]) -> Result<Vec<String>, XmlError> {
    check_document(body)?;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let outside_schema = || XmlError::Malformed("an element outside the Delete schema".into());
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut keys = Vec::new();
    let mut objects = 0usize;
    // The key being read: quick-xml hands text and entity references as separate events.
    let mut key: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if !is_delete_schema(&path) {
                    return Err(outside_schema());
                }
                if path.len() == 2 && path[1] == b"Object" {
                    objects += 1;
                }
                if is_delete_key(&path) {
                    key = Some(String::new());
                }
            }
            Ok(Event::Empty(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if !is_delete_schema(&path) {
                    return Err(outside_schema());
                }
                if path.len() == 2 && path[1] == b"Object" {
                    objects += 1;
                }
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
    if keys.len() != objects {
        return Err(XmlError::Malformed(
            "each Object must name exactly one Key".into(),
        ));
    }
    Ok(keys)
}

/// The tags of a `Tagging` document (`Tagging` > `TagSet` > `Tag` > `Key`, `Value`), in order:
/// the form of a browser form upload's `tagging` field.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>
pub fn tag_set(body: &[u8]) -> Result<Vec<(String, String)>, XmlError> {
    check_document(body)?;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let outside = || XmlError::Malformed("an element outside the Tagging schema".into());
    let schema = |path: &[Vec<u8>]| {
        let names: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        matches!(
            names.as_slice(),
            [b"Tagging"]
                | [b"Tagging", b"TagSet"]
                | [b"Tagging", b"TagSet", b"Tag"]
                | [b"Tagging", b"TagSet", b"Tag", b"Key" | b"Value"]
        )
    };
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut tags = Vec::new();
    let (mut key, mut value): (Option<String>, Option<String>) = (None, None);
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if !schema(&path) {
                    return Err(outside());
                }
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                match (schema(&path), path.len()) {
                    (false, _) | (true, 3) => return Err(outside()),
                    (true, 4) if path[3] == b"Key" => key = Some(String::new()),
                    (true, 4) => value = Some(String::new()),
                    (true, _) => {}
                }
                path.pop();
            }
            Ok(Event::End(_)) => {
                match path.len() {
                    4 if path[3] == b"Key" => key = Some(std::mem::take(&mut text)),
                    4 => value = Some(std::mem::take(&mut text)),
                    3 => match (key.take(), value.take()) {
                        (Some(k), Some(v)) => tags.push((k, v)),
                        _ => {
                            return Err(XmlError::Malformed(
                                "a Tag needs one Key and one Value".into(),
                            ))
                        }
                    },
                    _ => {}
                }
                path.pop();
            }
            Ok(Event::Text(t)) if path.len() == 4 => {
                text.push_str(&t.decode().map_err(|e| malformed(&e))?);
            }
            Ok(Event::CData(t)) if path.len() == 4 => {
                text.push_str(&t.decode().map_err(|e| malformed(&e))?);
            }
            Ok(Event::GeneralRef(r)) if path.len() == 4 => {
                // `check_document` admitted only predefined and character references.
                let reference = format!("&{};", String::from_utf8_lossy(&r));
                text.push_str(&quick_xml::escape::unescape(&reference).map_err(|e| malformed(&e))?);
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(malformed(&e)),
        }
    }
    Ok(tags)
}

/// A CompleteMultipartUpload body lists at least one part, in strictly ascending order of
/// part number: S3 refuses any other order with `InvalidPartOrder` (and duplicates with it),
/// where some backends (Ceph RGW) complete the upload in the order given.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>
pub fn check_part_order(body: &[u8]) -> Result<(), XmlError> {
    check_document(body)?;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut number: Option<String> = None;
    let mut previous: Option<u32> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if is_part_number(&path) {
                    number = Some(String::new());
                }
            }
            Ok(Event::Empty(e)) => {
                path.push(e.local_name().as_ref().to_vec());
                if is_part_number(&path) {
                    return Err(XmlError::Malformed("an empty PartNumber".into()));
                }
                path.pop();
            }
            Ok(Event::Text(t)) => {
                if let Some(n) = number.as_mut() {
                    n.push_str(&t.decode().map_err(|e| malformed(&e))?);
                }
            }
            Ok(Event::End(_)) => {
                if let Some(n) = number.take() {
                    let n: u32 = n
                        .trim()
                        .parse()
                        .map_err(|_| XmlError::Malformed(format!("PartNumber '{n}'")))?;
                    if previous.is_some_and(|p| n <= p) {
                        return Err(XmlError::PartOrder);
                    }
                    previous = Some(n);
                }
                path.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(malformed(&e)),
        }
    }
    if previous.is_none() {
        return Err(XmlError::Malformed("no Part is listed".into()));
    }
    Ok(())
}

fn is_part_number(path: &[Vec<u8>]) -> bool {
    matches!(path, [c, p, n] if c == b"CompleteMultipartUpload" && p == b"Part" && n == b"PartNumber")
}

/// The `<Code>` of an S3 error document (`<Error><Code>`), if it has one.
pub fn error_code(doc: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(doc);
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => path.push(e.local_name().as_ref().to_vec()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) if matches!(path.as_slice(), [e, c] if e == b"Error" && c == b"Code") => {
                return t.decode().ok().map(|c| c.trim().to_owned());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
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
    fn tag_sets_are_read_in_order() {
        let doc = b"<Tagging><TagSet><Tag><Key>a b</Key><Value>1&amp;2</Value></Tag>\
                    <Tag><Key>c</Key><Value/></Tag></TagSet></Tagging>";
        assert_eq!(
            tag_set(doc).unwrap(),
            [("a b".into(), "1&2".into()), ("c".into(), String::new())]
        );
        assert_eq!(tag_set(b"<Tagging><TagSet/></Tagging>").unwrap(), []);
        for bad in [
            b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>".as_slice(),
            b"<Tagging><TagSet><Tag/></TagSet></Tagging>",
            b"<Tagging><Other/></Tagging>",
            b"<Delete/>",
            b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value>",
            b"<!DOCTYPE x><Tagging/>",
        ] {
            assert!(tag_set(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
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
    fn delete_bodies_follow_the_schema() {
        let ok = b"<Delete><Object><Key>a</Key><VersionId>v</VersionId><ETag>e</ETag></Object><Quiet>true</Quiet></Delete>";
        assert_eq!(delete_keys(ok).unwrap(), vec!["a"]);
        for bad in [
            &b"<Delete><Object><Key>a</Key><Object><Key>b</Key></Object></Object></Delete>"[..],
            b"<Delete><Object><Key>a</Key></Object><Extra/></Delete>",
            b"<Other><Object><Key>a</Key></Object></Other>",
            b"<Delete><Object><Key>a<b/></Key></Object></Delete>",
            b"<Delete><Object><Key>a</Key></Object><Object><VersionId>v</VersionId></Object></Delete>",
            b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        ] {
            let err = delete_keys(bad).unwrap_err();
            assert!(matches!(err, XmlError::Malformed(_)), "{bad:?}: {err:?}");
        }
        // S3's message, whatever was wrong.
        assert_eq!(
            XmlError::Malformed("detail".into()).to_string(),
            "The XML you provided was not well-formed or did not validate against our published schema."
        );
    }

    #[test]
    fn completed_parts_must_ascend() {
        let doc = |numbers: &[&str]| {
            let mut parts = String::new();
            for n in numbers {
                parts.push_str("<Part><ETag>\"e\"</ETag><PartNumber>");
                parts.push_str(n);
                parts.push_str("</PartNumber></Part>");
            }
            format!("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{parts}</CompleteMultipartUpload>")
        };
        assert_eq!(check_part_order(doc(&["1", "2", "7"]).as_bytes()), Ok(()));
        assert_eq!(
            check_part_order(doc(&["2", "1"]).as_bytes()),
            Err(XmlError::PartOrder)
        );
        assert_eq!(
            check_part_order(doc(&["1", "1"]).as_bytes()),
            Err(XmlError::PartOrder)
        );
        assert_eq!(XmlError::PartOrder.code(), S3Code::InvalidPartOrder);
        for bad in [doc(&[]), doc(&["one"]), doc(&["-1"]), String::new()] {
            assert!(
                matches!(
                    check_part_order(bad.as_bytes()),
                    Err(XmlError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_codes_are_read_from_error_documents() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>m</Message></Error>"#;
        assert_eq!(error_code(doc).as_deref(), Some("NoSuchUpload"));
        assert_eq!(
            error_code(b"<ListPartsResult><Code>x</Code></ListPartsResult>"),
            None
        );
        assert_eq!(error_code(b"not xml <"), None);
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
