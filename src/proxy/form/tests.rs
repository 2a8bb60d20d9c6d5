use http_body::Body as _;
use http_body_util::StreamBody;

use super::*;
use crate::s3::route::{Addressing, Operation};

const CLOSING: &[u8] = b"\r\n--b--\r\n";

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

/// The client's body after the form's fields, cut into `chunks`.
fn client(chunks: &[&[u8]]) -> Chunks {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

/// The framing of a `len`-byte file in a form with boundary `b` and no other field.
fn framing(len: u64) -> FileFraming {
    let mut reader = FormReader::new("b");
    let head = reader
        .feed(b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
        .unwrap()
        .unwrap();
    let total = head.file_offset + len + CLOSING.len() as u64;
    head.file(&reader, total).unwrap()
}

/// Reads the file body to its end: the bytes passed on before the end or the error, and how
/// it ended.
async fn read(start: &[u8], chunks: &[&[u8]], len: u64) -> (Vec<u8>, Result<(), String>) {
    let mut body = FileBody::new(Bytes::copy_from_slice(start), client(chunks), framing(len));
    let mut out = Vec::new();
    loop {
        match body.frame().await {
            None => return (out, Ok(())),
            Some(Ok(f)) => out.extend_from_slice(&f.into_data().unwrap()),
            Some(Err(e)) => return (out, Err(e.to_string())),
        }
    }
}

#[tokio::test]
async fn the_file_ends_at_the_closing_delimiter_however_it_is_cut() {
    let whole = [b"hello world".as_slice(), CLOSING].concat();
    for cut in 0..whole.len() {
        for start in [0, cut.min(3)] {
            let (out, end) = read(&whole[..start], &[&whole[start..cut], &whole[cut..]], 11).await;
            assert_eq!(end, Ok(()), "cut {cut} start {start}");
            assert_eq!(out, b"hello world");
        }
    }
    let (out, end) = read(CLOSING, &[], 0).await;
    assert_eq!((out, end), (Vec::new(), Ok(())));
}

#[tokio::test]
async fn the_last_file_bytes_wait_for_the_closing_delimiter() {
    // Fields after the file, garbage, a truncated delimiter, a missing one: the file's last
    // chunk is never passed on, so the upstream PUT never completes.
    for tail in [
        b"\r\n--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--\r\n".as_slice(),
        b"\r\n--b--\r\nextra",
        b"\r\n--b--",
        b"",
        b"\r\n--c--\r\n",
    ] {
        let (out, end) = read(b"", &[b"0123", b"4567", tail], 8).await;
        assert_eq!(out, b"0123", "{tail:?}");
        assert_eq!(
            end,
            Err(PostError::Malformed.to_string()),
            "{}",
            String::from_utf8_lossy(tail)
        );
    }
}

#[tokio::test]
async fn the_failure_is_the_forms_own() {
    let mut body = FileBody::new(Bytes::new(), client(&[b"x\r\n--z"]), framing(1));
    let err = loop {
        if let Err(e) = body.frame().await.unwrap() {
            break e;
        }
    };
    assert_eq!(
        err.downcast_ref::<AuthError>(),
        Some(&AuthError::Post(PostError::Malformed))
    );
    assert!(body.is_end_stream());
}

fn routed(virtual_host: bool) -> Routed {
    let uri: http::Uri = if virtual_host {
        "/".parse().unwrap()
    } else {
        "/bkt".parse().unwrap()
    };
    let host = if virtual_host {
        "bkt.s3.test"
    } else {
        "s3.test"
    };
    let mut h = http::HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static(host));
    let head = crate::s3::route::route(
        &http::Method::POST,
        &uri,
        &h,
        Addressing {
            domain: Some("s3.test"),
            legacy_bucket_names: false,
        },
    )
    .unwrap();
    assert_eq!(head.op, Operation::PostObject);
    head.form_upload("dir/a b.txt", &http::HeaderMap::new())
        .unwrap()
}

fn stored() -> Response<Body> {
    Response::builder()
        .header(ETAG, "\"abc\"")
        .header(CONTENT_LENGTH, "0")
        .header("x-amz-server-side-encryption", "AES256")
        .body(body::empty())
        .unwrap()
}

fn reply(fields: &[(&str, &str)], virtual_host: bool) -> Reply {
    Reply::new(
        &post::Form::new(fields.iter().copied(), None).unwrap(),
        &routed(virtual_host),
    )
}

#[tokio::test]
async fn answers_as_s3_answers_a_form() {
    let r = reply(&[], false).respond(stored()).unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()[ETAG], "\"abc\"");
    assert_eq!(r.headers()["x-amz-server-side-encryption"], "AES256");
    for status in ["204", "202", "nonsense"] {
        let r = reply(&[("success_action_status", status)], false).respond(stored());
        assert_eq!(r.unwrap().status(), StatusCode::NO_CONTENT);
    }
    let r = reply(&[("success_action_status", "200")], false)
        .respond(stored())
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = reply(&[("success_action_status", "201")], false)
        .respond(stored())
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()[LOCATION], "https://s3.test/bkt/dir/a%20b.txt");
    let doc = r.into_body().collect().await.unwrap().to_bytes();
    let doc = String::from_utf8(doc.to_vec()).unwrap();
    assert!(doc.contains("<PostResponse><Location>https://s3.test/bkt/dir/a%20b.txt</Location><Bucket>bkt</Bucket><Key>dir/a b.txt</Key><ETag>&quot;abc&quot;</ETag></PostResponse>"), "{doc}");

    let r = reply(&[("success_action_status", "201")], true)
        .respond(stored())
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "https://bkt.s3.test/dir/a%20b.txt");
}

#[test]
fn a_redirect_gets_bucket_key_and_etag() {
    let r = reply(
        &[
            ("success_action_redirect", "https://app.test/done?x=1"),
            ("success_action_status", "201"),
        ],
        false,
    )
    .respond(stored())
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        "https://app.test/done?x=1&bucket=bkt&key=dir%2Fa%20b.txt&etag=%22abc%22"
    );
    // A URL S3 cannot read is as if absent.
    let r = reply(&[("redirect", "not a url")], false)
        .respond(stored())
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[test]
fn a_refusal_is_passed_on() {
    let refused = Response::builder()
        .status(StatusCode::FORBIDDEN)
        .body(body::empty())
        .unwrap();
    let r = reply(&[("success_action_status", "201")], false)
        .respond(refused)
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
