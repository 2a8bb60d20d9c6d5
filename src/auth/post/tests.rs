use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};

use super::*;
use crate::auth::{BucketPatterns, ClientIdentity, Grants, SecretKey};
use crate::error::S3Error as _;
use crate::s3::post::tests::{aws_example_form, AWS_EXAMPLE_POLICY};

/// The signature of the AWS SigV4 POST example (sigv4-post-example).
const AWS_EXAMPLE_SIGNATURE: &str =
    "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

fn keys() -> ClientKeys {
    ClientKeys::new([ClientIdentity {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        upstream: "primary".into(),
        buckets: BucketPatterns::any(),
        operations: Grants::default(),
    }])
}

fn cx(now: SystemTime) -> AuthContext<'static> {
    AuthContext {
        region: "us-east-1",
        now,
        sigv2: false,
        virtual_host_bucket: None,
    }
}

fn example_time() -> SystemTime {
    sigv4::parse_amz_date("20151229T000000Z").unwrap()
}

fn head() -> Parts {
    http::Request::post("/sigv4examplebucket")
        .header(HOST, "proxy.test")
        .header("content-type", "multipart/form-data; boundary=x")
        .header("origin", "https://app.test")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn verify(
    form: &Form,
    file: &'static [u8],
    now: SystemTime,
) -> Result<Verified<Full<Bytes>>, AuthError> {
    verify_form(
        head(),
        form,
        "sigv4examplebucket",
        Full::new(Bytes::from_static(file)),
        file.len() as u64,
        &keys(),
        &cx(now),
    )
}

use bytes::Bytes;

#[tokio::test]
async fn the_aws_example_form_verifies_and_becomes_a_put() {
    let form = aws_example_form(AWS_EXAMPLE_SIGNATURE);
    let v = verify(&form, b"cat picture", example_time()).unwrap();
    assert!(
        matches!(&v.principal, Principal::Client(id) if id.access_key_id == "AKIAIOSFODNN7EXAMPLE")
    );
    assert_eq!(v.parts.method, Method::PUT);
    assert_eq!(v.content_length, Some(11));
    let h = &v.parts.headers;
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap());
    assert_eq!(get("host"), Some("proxy.test"));
    assert_eq!(get("content-length"), Some("11"));
    assert_eq!(get("content-type"), Some("image/jpeg"));
    assert_eq!(get("x-amz-acl"), Some("public-read"));
    assert_eq!(get("x-amz-meta-uuid"), Some("14365123651274"));
    assert_eq!(get("x-amz-meta-tag"), Some(""));
    assert_eq!(get("x-amz-server-side-encryption"), Some("AES256"));
    // Neither the form's own framing, the browser's headers, nor the proof go upstream.
    for absent in [
        "origin",
        "policy",
        "x-amz-signature",
        "x-amz-credential",
        "key",
    ] {
        assert_eq!(get(absent), None, "{absent}");
    }
    let body = v.body.collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"cat picture");
}

#[test]
fn a_wrong_signature_key_or_scope_is_refused() {
    let now = example_time();
    let wrong = "0".repeat(64);
    assert_eq!(
        verify(&aws_example_form(&wrong), b"", now).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    assert_eq!(
        verify(&aws_example_form("zz"), b"", now).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    let with = |name: &str, value: &str| {
        let fields = aws_example_form(AWS_EXAMPLE_SIGNATURE);
        let fields: Vec<(String, String)> = fields
            .fields()
            .map(|(n, v)| {
                (
                    n.to_owned(),
                    if n == name {
                        value.to_owned()
                    } else {
                        v.to_owned()
                    },
                )
            })
            .collect();
        Form::new(fields, Some("cat.jpg".into())).unwrap()
    };
    assert_eq!(
        verify(
            &with(
                "x-amz-credential",
                "NOBODY/20151229/us-east-1/s3/aws4_request"
            ),
            b"",
            now
        )
        .unwrap_err(),
        AuthError::InvalidAccessKeyId
    );
    for (field, value) in [
        (
            "x-amz-credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/eu-west-1/s3/aws4_request",
        ),
        (
            "x-amz-credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3",
        ),
        ("x-amz-date", "20151230T000000Z"),
        ("x-amz-date", "yesterday"),
    ] {
        assert_eq!(
            verify(&with(field, value), b"", now).unwrap_err().code(),
            crate::error::S3Code::InvalidArgument,
            "{field}={value}"
        );
    }
    assert_eq!(
        verify(&with("x-amz-algorithm", "AWS4-ECDSA-P256-SHA256"), b"", now).unwrap_err(),
        AuthError::UnsupportedAlgorithm
    );
    // The policy itself is signed: another policy does not verify.
    let other = with("policy", &AWS_EXAMPLE_POLICY.replace('e', "f"));
    assert_eq!(
        verify(&other, b"", now).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn unsigned_partly_signed_and_token_forms_are_refused() {
    let now = example_time();
    let unsigned = Form::new([("key", "k")], None).unwrap();
    assert_eq!(
        verify(&unsigned, b"", now).unwrap_err(),
        AuthError::MissingAuthentication
    );
    let v2 = Form::new(
        [("key", "k"), ("AWSAccessKeyId", "a"), ("signature", "s")],
        None,
    )
    .unwrap();
    assert_eq!(
        verify(&v2, b"", now).unwrap_err(),
        AuthError::UnsupportedAlgorithm
    );
    let partial = Form::new([("key", "k"), ("policy", AWS_EXAMPLE_POLICY)], None).unwrap();
    assert_eq!(
        verify(&partial, b"", now).unwrap_err(),
        AuthError::Post(PostError::MissingField("x-amz-algorithm"))
    );
    let mut fields: Vec<(String, String)> = aws_example_form(AWS_EXAMPLE_SIGNATURE)
        .fields()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    fields.push(("x-amz-security-token".into(), "t".into()));
    assert_eq!(
        verify(&Form::new(fields, None).unwrap(), b"", now).unwrap_err(),
        AuthError::InvalidToken
    );
}

#[test]
fn the_policy_is_checked_after_the_signature() {
    let form = aws_example_form(AWS_EXAMPLE_SIGNATURE);
    let later = example_time() + Duration::from_secs(2 * 86_400);
    assert_eq!(
        verify(&form, b"", later).unwrap_err(),
        AuthError::Post(PostError::Expired)
    );
    let wrong_bucket = verify_form(
        head(),
        &form,
        "elsewhere",
        Full::new(Bytes::new()),
        0,
        &keys(),
        &cx(example_time()),
    );
    assert!(matches!(
        wrong_bucket.unwrap_err(),
        AuthError::Post(PostError::ConditionFailed(_))
    ));
}

#[test]
fn fields_that_are_no_object_property_are_refused() {
    let fields = [("key", "k"), ("x-amz-grant-full-control", "id=x")];
    let form = Form::new(fields, None).unwrap();
    assert_eq!(
        put_headers(&form, None, 0).unwrap_err(),
        AuthError::Post(PostError::UnsupportedField(
            "x-amz-grant-full-control".into()
        ))
    );
    let bad_value = Form::new([("content-type", "a\u{7f}b")], None).unwrap();
    assert!(put_headers(&bad_value, None, 0).is_err());
    let ignored = Form::new(
        [("x-ignore-me", "x"), ("success_action_status", "201")],
        None,
    )
    .unwrap();
    let h = put_headers(&ignored, None, 5).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h.get(CONTENT_LENGTH).unwrap(), "5");
}

#[tokio::test]
async fn a_checksum_field_is_verified_as_the_file_streams() {
    // crc32 of "hello" is 0x3610a686.
    let crc = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [0x36, 0x10, 0xa6, 0x86],
    );
    let put = |value: &str| {
        let form = Form::new([("x-amz-checksum-crc32", value.to_owned())], None).unwrap();
        let headers = put_headers(&form, None, 5).unwrap();
        body_plan(&headers, Payload::Unsigned, None).unwrap()
    };
    let ok = VerifiedBody::new(
        Full::new(Bytes::from_static(b"hello")),
        put(&crc),
        super::super::budget::Charge::default(),
    )
    .unwrap();
    assert_eq!(&ok.collect().await.unwrap().to_bytes()[..], b"hello");
    let bad = VerifiedBody::new(
        Full::new(Bytes::from_static(b"hellO")),
        put(&crc),
        super::super::budget::Charge::default(),
    )
    .unwrap();
    assert!(bad.collect().await.is_err());
}

#[test]
fn the_tagging_field_becomes_x_amz_tagging() {
    let doc = "<Tagging><TagSet><Tag><Key>team</Key><Value>a&amp;b</Value></Tag>\
               <Tag><Key>x y</Key><Value>1</Value></Tag></TagSet></Tagging>";
    let form = Form::new([("tagging", doc)], None).unwrap();
    let h = put_headers(&form, None, 0).unwrap();
    assert_eq!(h.get("x-amz-tagging").unwrap(), "team=a%26b&x%20y=1");
    let bad = Form::new([("tagging", "team=a")], None).unwrap();
    assert_eq!(
        put_headers(&bad, None, 0).unwrap_err(),
        AuthError::Post(PostError::BadField(
            "tagging",
            "expecting a Tagging document"
        ))
    );
}
