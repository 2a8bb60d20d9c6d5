//! Golden strings from "Signature Version 4 for Amazon S3", step by step.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn example_get_object_step_by_step() {
    let h = headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
    ]);
    let signed = parse_signed_headers("host;range;x-amz-content-sha256;x-amz-date").unwrap();
    let canonical = canonical_request(
        "GET",
        &canonical_uri("/test.txt").unwrap(),
        &canonical_query("", None).unwrap(),
        &canonical_headers(&h, None, &signed).unwrap(),
        "host;range;x-amz-content-sha256;x-amz-date",
        EMPTY_SHA256,
    );
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        concat!(
            "GET\n",
            "/test.txt\n",
            "\n",
            "host:examplebucket.s3.amazonaws.com\n",
            "range:bytes=0-9\n",
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
            "x-amz-date:20130524T000000Z\n",
            "\n",
            "host;range;x-amz-content-sha256;x-amz-date\n",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
    );
    let sts = string_to_sign("20130524T000000Z", SCOPE, &canonical);
    assert_eq!(
        sts,
        concat!(
            "AWS4-HMAC-SHA256\n",
            "20130524T000000Z\n",
            "20130524/us-east-1/s3/aws4_request\n",
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        )
    );
    let signature = SigningKey::derive(SECRET, "20130524", "us-east-1").sign(sts.as_bytes());
    assert_eq!(
        hex::encode(signature),
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

#[test]
fn example_put_object_canonical_request() {
    let h = headers(&[
        ("date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("host", "examplebucket.s3.amazonaws.com"),
        (
            "x-amz-content-sha256",
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        ),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    ]);
    let names = "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class";
    let canonical = canonical_request(
        "PUT",
        &canonical_uri("/test$file.text").unwrap(),
        "",
        &canonical_headers(&h, None, &parse_signed_headers(names).unwrap()).unwrap(),
        names,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
    );
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        concat!(
            "PUT\n",
            "/test%24file.text\n",
            "\n",
            "date:Fri, 24 May 2013 00:00:00 GMT\n",
            "host:examplebucket.s3.amazonaws.com\n",
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n",
            "x-amz-date:20130524T000000Z\n",
            "x-amz-storage-class:REDUCED_REDUNDANCY\n",
            "\n",
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n",
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        )
    );
    let sts = string_to_sign("20130524T000000Z", SCOPE, &canonical);
    assert_eq!(
        sts.lines().last().unwrap(),
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
    );
}

#[test]
fn example_chunk_and_trailer_strings_to_sign() {
    let key = SigningKey::derive(SECRET, "20130524", "us-east-1");
    let seed = parse_signature("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        .unwrap();
    let sts = chunk_string_to_sign(
        "20130524T000000Z",
        SCOPE,
        &seed,
        &sha256(&vec![b'a'; 65536]),
    );
    assert_eq!(
        sts,
        concat!(
            "AWS4-HMAC-SHA256-PAYLOAD\n",
            "20130524T000000Z\n",
            "20130524/us-east-1/s3/aws4_request\n",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
            "bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a",
        )
    );
    assert_eq!(
        hex::encode(key.sign(sts.as_bytes())),
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );

    // sigv4-streaming-trailers: the trailer signature chains from the final chunk's.
    let last = parse_signature("2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")
        .unwrap();
    let trailers = canonical_trailers([("x-amz-checksum-crc32c", "sOO8/Q==")]);
    assert_eq!(trailers, b"x-amz-checksum-crc32c:sOO8/Q==\n");
    let sts = trailer_string_to_sign("20130524T000000Z", SCOPE, &last, &sha256(&trailers));
    assert_eq!(
        hex::encode(key.sign(sts.as_bytes())),
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    );
}

#[test]
fn canonical_uri_decodes_then_encodes_like_s3() {
    // Clients disagree on which characters to escape; all must sign the same canonical URI.
    for path in ["/a!b c+d", "/a%21b%20c%2Bd", "/a%21b c%2bd"] {
        assert_eq!(canonical_uri(path).unwrap(), "/a%21b%20c%2Bd", "{path}");
    }
    // No normalisation: these are legal S3 keys.
    assert_eq!(canonical_uri("/b/../k//x/./y").unwrap(), "/b/../k//x/./y");
    assert_eq!(canonical_uri("/%E2%82%AC~-_.").unwrap(), "/%E2%82%AC~-_.");
    assert_eq!(canonical_uri("").unwrap(), "/");
    assert_eq!(canonical_uri("/a%2").unwrap_err(), InvalidPercentEncoding);
    assert_eq!(canonical_uri("/a%zz").unwrap_err(), InvalidPercentEncoding);
}

#[test]
fn canonical_query_sorts_and_encodes_strictly() {
    assert_eq!(canonical_query("lifecycle", None).unwrap(), "lifecycle=");
    assert_eq!(
        canonical_query("prefix=J&max-keys=2", None).unwrap(),
        "max-keys=2&prefix=J"
    );
    assert_eq!(
        canonical_query("b=2&a=2&a=1&&c", None).unwrap(),
        "a=1&a=2&b=2&c="
    );
    assert_eq!(
        canonical_query("k=a b/c*d%7E", None).unwrap(),
        "k=a%20b%2Fc%2Ad~"
    );
    assert_eq!(
        canonical_query("X-Amz-Signature=ff&x=1", Some("X-Amz-Signature")).unwrap(),
        "x=1"
    );
    assert!(canonical_query("a=%g0", None).is_err());
}

#[test]
fn header_values_are_trimmed_and_joined() {
    let h = headers(&[
        ("host", "h"),
        ("x-amz-meta-a", "  one   two\t three "),
        ("x-amz-meta-a", "b"),
    ]);
    let block = canonical_headers(&h, None, &["host", "x-amz-meta-a"]).unwrap();
    assert_eq!(block, b"host:h\nx-amz-meta-a:one two three,b\n");
    // HTTP/2: no Host header, the authority stands in.
    let h2 = headers(&[("x-amz-date", "d")]);
    assert_eq!(
        canonical_headers(&h2, Some("bucket.example"), &["host"]).unwrap(),
        b"host:bucket.example\n"
    );
    assert_eq!(
        canonical_headers(&h2, None, &["host"]).unwrap_err(),
        MissingSignedHeader("host".into())
    );
}

#[test]
fn authorization_header_variants() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let cred = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
    for value in [
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;x-amz-date, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred},SignedHeaders=host;x-amz-date,Signature={sig}"),
        format!("AWS4-HMAC-SHA256   Credential={cred} ,  SignedHeaders=host;x-amz-date ,Signature={sig} "),
        format!("AWS4-HMAC-SHA256 Signature={sig}, Credential={cred}, SignedHeaders=host;x-amz-date"),
    ] {
        let parsed = parse_authorization(&value).unwrap_or_else(|e| panic!("{value}: {e:?}"));
        assert_eq!(parsed.credential.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(parsed.credential.region, "us-east-1");
        assert_eq!(parsed.signed_headers, "host;x-amz-date");
        assert_eq!(hex::encode(parsed.signature), sig);
    }
    let malformed = [
        String::new(),
        "AWS4-HMAC-SHA256".into(),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host"),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={sig}, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={}", &sig[1..]),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={}", sig.to_uppercase()),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=x-amz-date;host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=Host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;;x, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential=AKID/2013052/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential=AKID//us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred}/x, SignedHeaders=host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature={sig}, Extra=1"),
        format!("aws4-hmac-sha256 Credential={cred}, SignedHeaders=host, Signature={sig}"),
    ];
    for value in malformed {
        assert!(
            matches!(
                parse_authorization(&value),
                Err(AuthorizationParseError::Malformed(_))
            ),
            "{value}"
        );
    }
    assert_eq!(
        parse_authorization("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=").unwrap_err(),
        AuthorizationParseError::UnsupportedScheme
    );
    assert_eq!(
        parse_authorization(&format!(
            "AWS4-ECDSA-P256-SHA256 Credential={cred}, SignedHeaders=host, Signature=00"
        ))
        .unwrap_err(),
        AuthorizationParseError::UnsupportedScheme
    );
}

#[test]
fn amz_dates() {
    let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    assert_eq!(parse_amz_date("20130524T000000Z"), Some(t));
    assert_eq!(format_amz_date(t), "20130524T000000Z");
    for bad in [
        "20130524T000000",
        "2013-05-24T00:00:00Z",
        "20130524T000000Z ",
        "20131324T000000Z",
        "",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

/// The hand-written date reader and writer agree with `time`'s own ISO 8601 basic format, for
/// any second from 1970 to 9999 and any 16 bytes.
mod amz_date_against_time {
    use proptest::prelude::*;

    use super::*;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

    fn by_time(s: &str) -> Option<SystemTime> {
        let t = time::PrimitiveDateTime::parse(s, FORMAT).ok()?;
        Some(t.assume_utc().into())
    }

    proptest! {
        #[test]
        fn format_and_parse(secs in 0u64..253_402_300_800) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let text = format_amz_date(t);
            prop_assert_eq!(&text, &time::OffsetDateTime::from(t).format(FORMAT).unwrap());
            prop_assert_eq!(parse_amz_date(&text), Some(t));
        }

        #[test]
        fn parse_any(s in "[0-9]{8}T[0-9]{6}Z|[0-9TZ+ -]{14,18}") {
            prop_assert_eq!(parse_amz_date(&s), by_time(&s));
        }
    }
}
