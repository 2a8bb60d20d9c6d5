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
}
