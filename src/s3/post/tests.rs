use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const BOUNDARY: &str = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

/// A form body as browsers send it: fields, then the file, then the closing delimiter.
fn body(fields: &[(&str, &str)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        b.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
    );
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// Feeds `data` in chunks of `step` bytes until the head is found.
fn read(data: &[u8], step: usize) -> Result<FormHead, PostError> {
    let mut r = FormReader::new(BOUNDARY);
    let mut fed = 0;
    for chunk in data.chunks(step) {
        fed += chunk.len();
        if let Some(mut head) = r.feed(chunk)? {
            head.file_start.extend_from_slice(&data[fed..]);
            return Ok(head);
        }
    }
    Err(PostError::Malformed)
}

#[test]
fn content_type_gives_the_boundary() {
    assert_eq!(
        boundary(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        BOUNDARY
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").unwrap(),
        "a b"
    );
    assert_eq!(
        boundary("application/x-www-form-urlencoded"),
        Err(PostError::NotMultipart)
    );
    assert_eq!(boundary(""), Err(PostError::NotMultipart));
    assert_eq!(boundary("multipart/form-data"), Err(PostError::Malformed));
    assert_eq!(
        boundary("multipart/form-data; boundary="),
        Err(PostError::Malformed)
    );
    assert_eq!(
        boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
        Err(PostError::Malformed)
    );
    assert_eq!(PostError::NotMultipart.code(), S3Code::PreconditionFailed);
}

#[test]
fn the_reader_stops_where_the_file_begins_however_the_body_is_cut() {
    let fields = [("key", "user/${filename}"), ("Content-Type", "image/png")];
    let data = body(&fields, "cat.png", b"\x89PNG file bytes");
    let closing = FormReader::new(BOUNDARY).closing();
    for step in [1, 2, 7, 64, data.len()] {
        let head = read(&data, step).unwrap();
        assert_eq!(head.form.get("key"), Some("user/${filename}"));
        assert_eq!(head.form.get("content-type"), Some("image/png"));
        assert_eq!(head.form.filename.as_deref(), Some("cat.png"));
        assert_eq!(head.form.key().unwrap(), "user/cat.png");
        let file_len = data.len() as u64 - head.file_offset - closing.len() as u64;
        assert_eq!(file_len, 15, "step {step}");
        assert_eq!(
            &head.file_start[..],
            &data[usize::try_from(head.file_offset).unwrap()..]
        );
        assert!(head.file_start.ends_with(&closing));
    }
}

#[test]
fn an_empty_file_and_empty_values_are_read() {
    let data = body(&[("key", ""), ("x-amz-meta-a", "")], "", b"");
    let head = read(&data, 3).unwrap();
    assert_eq!(head.form.get("key"), Some(""));
    assert_eq!(head.form.filename.as_deref(), Some(""));
    assert_eq!(
        data.len() as u64 - head.file_offset,
        FormReader::new(BOUNDARY).closing().len() as u64
    );
}

#[test]
fn malformed_forms_are_refused() {
    let good = body(&[("key", "k")], "f", b"x");
    // No opening delimiter, a preamble, another boundary.
    for bad in [
        b"garbage".to_vec(),
        [b"preamble\r\n".as_slice(), &good].concat(),
        good.iter()
            .map(|b| if *b == b'7' { b'8' } else { *b })
            .collect(),
    ] {
        assert_eq!(read(&bad, 5).unwrap_err(), PostError::Malformed);
    }
    let part = |headers: &str| {
        format!("--{BOUNDARY}\r\n{headers}\r\n\r\nv\r\n--{BOUNDARY}\r\n").into_bytes()
    };
    for headers in [
        "Content-Type: text/plain",
        "Content-Disposition: attachment; name=\"key\"",
        "Content-Disposition: form-data",
        "Content-Disposition: form-data; name=\"\"",
        "Content-Disposition: form-data; name=\"unterminated",
        "Content-Disposition: form-data; name=\"a\"; name=\"b\"",
        "Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"",
        "no colon here",
    ] {
        assert_eq!(
            read(&part(headers), 4).unwrap_err(),
            PostError::Malformed,
            "{headers}"
        );
    }
    // Not UTF-8.
    let mut bin = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n")
        .into_bytes();
    bin.extend_from_slice(b"\xff\xfe\r\n");
    bin.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
    assert_eq!(read(&bin, 4).unwrap_err(), PostError::Malformed);
    assert_eq!(PostError::Malformed.code(), S3Code::MalformedPOSTRequest);
}

#[test]
fn quoted_names_and_escapes_are_read() {
    let data = format!(
        "--{BOUNDARY}\r\ncontent-disposition: form-data; filename=\"a\\\"b.txt\"; NAME=\"FILE\"\r\n\r\nxyz\r\n--{BOUNDARY}--\r\n"
    );
    let head = read(data.as_bytes(), 9).unwrap();
    assert_eq!(head.form.filename.as_deref(), Some("a\"b.txt"));
}

#[test]
fn a_form_without_file_or_with_a_repeated_field_is_refused() {
    let no_file = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{BOUNDARY}--\r\n"
    );
    assert_eq!(read(no_file.as_bytes(), 8).unwrap_err(), PostError::NoFile);
    let twice = body(&[("key", "a"), ("KEY", "b")], "f", b"");
    assert_eq!(
        read(&twice, 8).unwrap_err(),
        PostError::DuplicateField("key".into())
    );
}

#[test]
fn fields_past_twenty_kib_are_refused() {
    let big = "v".repeat(MAX_PRE_DATA_BYTES);
    let data = body(&[("x-amz-meta-big", &big)], "f", b"");
    assert_eq!(read(&data, 4096).unwrap_err(), PostError::PreDataTooLarge);
    assert_eq!(
        PostError::PreDataTooLarge.code(),
        S3Code::MaxPostPreDataLengthExceeded
    );
    // Just under the limit, everything included, is read.
    let fits = "v".repeat(MAX_PRE_DATA_BYTES - 400);
    assert!(read(&body(&[("x-amz-meta-big", &fits)], "f", b""), 4096).is_ok());
    // Byte by byte too, without searching the buffer again for each byte.
    let mut r = FormReader::new(BOUNDARY);
    let data = body(&[("x-amz-meta-big", &fits)], "f", b"");
    let mut head = None;
    for b in &data {
        if let Some(h) = r.feed(std::slice::from_ref(b)).unwrap() {
            head = Some(h);
            break;
        }
    }
    assert_eq!(
        head.unwrap().form.get("x-amz-meta-big"),
        Some(fits.as_str())
    );
}

/// The file's framing in a form of boundary BOUNDARY whose file has `len` bytes.
fn framing(len: u64) -> FileFraming {
    let data = body(&[("key", "k")], "f", b"");
    let mut r = FormReader::new(BOUNDARY);
    let head = r.feed(&data).unwrap().unwrap();
    head.file(&r, data.len() as u64 + len).unwrap()
}

/// Feeds `data` cut at `cut`; the file bytes passed on, and how the body ended.
fn frame(len: u64, data: &[u8], cut: usize) -> (Vec<u8>, Result<(), PostError>) {
    let mut f = framing(len);
    let mut out = Vec::new();
    for part in [&data[..cut], &data[cut..]] {
        match f.ingest(Bytes::copy_from_slice(part)) {
            Ok(Some(b)) => out.extend_from_slice(&b),
            Ok(None) => {}
            Err(e) => return (out, Err(e)),
        }
    }
    match f.finish() {
        Ok(last) => {
            out.extend_from_slice(&last);
            (out, Ok(()))
        }
        Err(e) => (out, Err(e)),
    }
}

#[test]
fn the_file_is_framed_by_the_closing_delimiter() {
    let closing = FormReader::new(BOUNDARY).closing();
    let file = b"some file\r\n--not the boundary\r\n";
    let whole = [file.as_slice(), &closing].concat();
    for cut in 0..=whole.len() {
        let (out, end) = frame(file.len() as u64, &whole, cut);
        assert_eq!(end, Ok(()), "cut {cut}");
        assert_eq!(out, file);
    }
    assert_eq!(framing(5).len(), 5);
    assert!(framing(0).is_empty());
    // The body is shorter than its fields and closing delimiter.
    let data = body(&[("key", "k")], "f", b"");
    let mut r = FormReader::new(BOUNDARY);
    let head = r.feed(&data).unwrap().unwrap();
    assert_eq!(
        head.file(&r, head.file_offset).unwrap_err(),
        PostError::Malformed
    );
}

#[test]
fn a_part_after_the_file_is_found_wherever_it_is_cut() {
    // A field after the file looks like file content followed by the closing delimiter; the
    // delimiter inside is what gives it away, also when cut across chunks.
    let closing = FormReader::new(BOUNDARY).closing();
    let late =
        format!("data\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv");
    let whole = [late.as_bytes(), &closing].concat();
    for cut in 0..=whole.len() {
        let (out, end) = frame(late.len() as u64, &whole, cut);
        assert_eq!(end, Err(PostError::Malformed), "cut {cut}");
        assert!(
            out.len() < late.len(),
            "cut {cut}: the whole file was passed on"
        );
    }
    // Garbage after the delimiter, a cut-off or a missing delimiter: the end is held back.
    for tail in [
        [closing.as_slice(), b"x"].concat(),
        closing[..5].to_vec(),
        Vec::new(),
    ] {
        let whole = [b"0123".as_slice(), &tail].concat();
        let (out, end) = frame(4, &whole, 2);
        assert_eq!(end, Err(PostError::Malformed));
        assert_eq!(out, b"01");
    }
}

// === The policy ===

fn b64(json: &str) -> String {
    STANDARD.encode(json)
}

fn at(s: &str) -> SystemTime {
    parse_expiration(s).unwrap()
}

/// The policy of the AWS SigV4 POST example (sigv4-post-example), as its base64 form.
pub(crate) const AWS_EXAMPLE_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";

/// The fields of the AWS example's form, with a file named `cat.jpg`.
pub(crate) fn aws_example_form(signature: &str) -> Form {
    Form::new(
        [
            ("key", "user/user1/${filename}"),
            ("acl", "public-read"),
            (
                "success_action_redirect",
                "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
            ),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-uuid", "14365123651274"),
            ("x-amz-server-side-encryption", "AES256"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            ),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Date", "20151229T000000Z"),
            ("x-amz-meta-tag", ""),
            ("Policy", AWS_EXAMPLE_POLICY),
            ("X-Amz-Signature", signature),
        ],
        Some("cat.jpg".into()),
    )
    .unwrap()
}

#[test]
fn the_aws_example_policy_is_read_and_its_form_holds() {
    let p = Policy::parse(AWS_EXAMPLE_POLICY).unwrap();
    assert_eq!(p.expiration, at("2015-12-30T12:00:00Z"));
    assert_eq!(p.conditions.len(), 11);
    assert_eq!(
        p.conditions[1],
        Condition::StartsWith {
            field: "key".into(),
            prefix: "user/user1/".into()
        }
    );
    let form = aws_example_form("sig");
    let now = at("2015-12-29T00:00:00Z");
    assert_eq!(p.check(&form, "sigv4examplebucket", now), Ok(()));
    assert_eq!(form.key().unwrap(), "user/user1/cat.jpg");
    // Another bucket fails the `bucket` condition; a later time, the expiration.
    assert_eq!(
        p.check(&form, "other", now),
        Err(PostError::ConditionFailed(
            "[\"eq\", \"$bucket\", \"sigv4examplebucket\"]".into()
        ))
    );
    assert_eq!(
        p.check(&form, "sigv4examplebucket", at("2015-12-30T12:00:01Z")),
        Err(PostError::Expired)
    );
    assert_eq!(PostError::Expired.code(), S3Code::AccessDenied);
}

fn policy(conditions: &str) -> Policy {
    Policy::parse(&b64(&format!(
        "{{\"expiration\": \"2030-01-01T00:00:00.000Z\", \"conditions\": [{conditions}]}}"
    )))
    .unwrap()
}

fn form(fields: &[(&str, &str)]) -> Form {
    Form::new(fields.iter().copied(), None).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn eq_and_starts_with_conditions() {
    let p = policy(
        r#"["eq", "$key", "a/b"], ["starts-with", "$x-amz-meta-note", "hi"], {"acl": "private"}"#,
    );
    let ok = form(&[
        ("key", "a/b"),
        ("x-amz-meta-note", "hi there"),
        ("acl", "private"),
    ]);
    assert_eq!(p.check(&ok, "b", now()), Ok(()));
    for (bad, failed) in [
        (
            form(&[
                ("key", "a/c"),
                ("x-amz-meta-note", "hi"),
                ("acl", "private"),
            ]),
            r#"["eq", "$key", "a/b"]"#,
        ),
        (
            form(&[
                ("key", "a/b"),
                ("x-amz-meta-note", "oh hi"),
                ("acl", "private"),
            ]),
            r#"["starts-with", "$x-amz-meta-note", "hi"]"#,
        ),
        // A field the form lacks is empty: the exact match fails.
        (
            form(&[("key", "a/b"), ("x-amz-meta-note", "hi")]),
            r#"["eq", "$acl", "private"]"#,
        ),
    ] {
        assert_eq!(
            p.check(&bad, "b", now()),
            Err(PostError::ConditionFailed(failed.into()))
        );
    }
    // Condition names are case-insensitive; values are not.
    let p = policy(r#"["eq", "$Content-Type", "text/plain"]"#);
    assert!(p
        .check(&form(&[("content-type", "text/plain")]), "b", now())
        .is_ok());
    assert!(p
        .check(&form(&[("content-type", "Text/Plain")]), "b", now())
        .is_err());
}

#[test]
fn a_failed_condition_on_a_secret_field_does_not_quote_the_secret() {
    // The refusal is logged as well as answered: a key written in the policy must not reach
    // the log.
    let key = "c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLXh4eHh4eHg=";
    for field in [
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key-MD5",
        "x-amz-security-token",
        "x-amz-signature",
        "policy",
    ] {
        for cond in [
            format!(r#"["eq", "${field}", "{key}"]"#),
            format!(r#"["starts-with", "${field}", "{key}"]"#),
            format!(r#"{{"{field}": "{key}"}}"#),
        ] {
            let err = policy(&cond)
                .check(&form(&[(field, "other")]), "b", now())
                .unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, PostError::ConditionFailed(_)), "{shown}");
            assert!(!shown.contains(key), "{shown}");
            assert!(shown.contains(&field.to_ascii_lowercase()), "{shown}");
        }
    }
}

#[test]
fn an_empty_prefix_admits_anything_and_content_type_lists_are_checked_each() {
    let p = policy(r#"["starts-with", "$success_action_redirect", ""]"#);
    assert!(p
        .check(
            &form(&[("success_action_redirect", "https://x/")]),
            "b",
            now()
        )
        .is_ok());
    assert!(p.check(&form(&[]), "b", now()).is_ok());
    let p = policy(r#"["starts-with", "$Content-Type", "image/"]"#);
    assert!(p
        .check(
            &form(&[("content-type", "image/png, image/gif")]),
            "b",
            now()
        )
        .is_ok());
    assert!(p
        .check(
            &form(&[("content-type", "image/png,text/html")]),
            "b",
            now()
        )
        .is_err());
}

#[test]
fn every_field_but_the_exempt_ones_needs_a_condition() {
    let p = policy(r#"["starts-with", "$key", ""]"#);
    let exempt = form(&[
        ("key", "k"),
        ("policy", "p"),
        ("x-amz-signature", "s"),
        ("x-ignore-anything", "x"),
    ]);
    assert_eq!(p.check(&exempt, "b", now()), Ok(()));
    let extra = form(&[("key", "k"), ("x-amz-meta-a", "1")]);
    assert_eq!(
        p.check(&extra, "b", now()),
        Err(PostError::ExtraField("x-amz-meta-a".into()))
    );
    assert_eq!(
        PostError::ExtraField(String::new()).to_string(),
        "Invalid according to Policy: Extra input fields: "
    );
}

#[test]
fn content_length_range_bounds_the_file() {
    let p = policy(r#"["content-length-range", 2, "10"]"#);
    assert_eq!(p.check_length(2), Ok(()));
    assert_eq!(p.check_length(10), Ok(()));
    assert_eq!(p.check_length(11), Err(PostError::TooLarge));
    assert_eq!(p.check_length(1), Err(PostError::TooSmall));
    assert_eq!(PostError::TooLarge.code(), S3Code::EntityTooLarge);
    assert_eq!(PostError::TooSmall.code(), S3Code::EntityTooSmall);
    // Checked apart from the form's fields, and named by no field.
    assert!(p.check(&form(&[]), "b", now()).is_ok());
    assert_eq!(policy("").check_length(u64::MAX), Ok(()));
}

#[test]
fn malformed_policies_are_refused() {
    let invalid = |doc: &str| Policy::parse(&b64(doc)).unwrap_err();
    assert_eq!(
        Policy::parse("not base64!").unwrap_err().code(),
        S3Code::InvalidPolicyDocument
    );
    assert_eq!(invalid("{"), PostError::InvalidPolicy("Invalid JSON."));
    assert_eq!(invalid("[]"), PostError::InvalidPolicy("Invalid JSON."));
    assert_eq!(
        invalid(r#"{"conditions": []}"#),
        PostError::InvalidPolicy("Policy missing expiration.")
    );
    assert_eq!(
        invalid(r#"{"expiration": "2030-01-01T00:00:00Z"}"#),
        PostError::InvalidPolicy("Policy missing conditions.")
    );
    for expiration in ["tomorrow", "2030-01-01T00:00:00+01:00", "2030-01-01"] {
        assert_eq!(
            invalid(&format!(
                r#"{{"expiration": "{expiration}", "conditions": []}}"#
            )),
            PostError::InvalidPolicy("Invalid 'expiration' value."),
            "{expiration}"
        );
    }
    // Only the two elements, each once, and no key repeated in a condition.
    assert_eq!(
        invalid(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [], "x": 1}"#),
        PostError::InvalidPolicy("Policy may hold only expiration and conditions.")
    );
    for repeated in [
        r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [], "conditions": []}"#,
        r#"{"expiration": "2000-01-01T00:00:00Z", "expiration": "2030-01-01T00:00:00Z", "conditions": []}"#,
        r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{"key": "a", "key": "b"}]}"#,
    ] {
        assert_eq!(
            invalid(repeated),
            PostError::InvalidPolicy("Policy has a repeated key."),
            "{repeated}"
        );
    }
    // These fields are matched exactly only; eq is fine.
    for field in [
        "bucket",
        "x-amz-algorithm",
        "X-Amz-Credential",
        "x-amz-date",
    ] {
        let doc = format!(
            r#"{{"expiration": "2030-01-01T00:00:00Z", "conditions": [["starts-with", "${field}", ""]]}}"#
        );
        let err = Policy::parse(&b64(&doc)).unwrap_err();
        assert_eq!(err.code(), S3Code::InvalidPolicyDocument, "{field}");
        assert!(
            err.to_string().contains(&field.to_ascii_lowercase()),
            "{err}"
        );
        policy(&format!(r#"["eq", "${field}", "x"]"#));
    }
    for condition in [
        r#"["eq", "key", "x"]"#,
        r#"["eq", "$key"]"#,
        r#"["between", "$key", "a"]"#,
        r#"["content-length-range", 10, 2]"#,
        r#"["content-length-range", -1, 2]"#,
        r#"{"key": 1}"#,
        "{}",
        r#""key""#,
    ] {
        let doc =
            format!(r#"{{"expiration": "2030-01-01T00:00:00Z", "conditions": [{condition}]}}"#);
        assert_eq!(
            Policy::parse(&b64(&doc)).unwrap_err().code(),
            S3Code::InvalidPolicyDocument,
            "{condition}"
        );
    }
}
