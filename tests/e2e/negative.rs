//! Requests that must be refused with the right S3 error, leaving the backend unchanged.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::SignableBody;
use base64::Engine as _;

use crate::support::raw::{self, error_code, sign_request};
use crate::support::{
    self, backends, payload, Harness, CLIENT_AK, CLIENT_SK, LIMITED_AK, LIMITED_SK,
};

const ORIGINAL: &[u8] = b"original content";

/// A bucket with one object `existing` holding [`ORIGINAL`].
async fn setup(h: &Harness) -> String {
    let b = support::bucket("neg");
    let s3 = h.sdk();
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_object()
        .bucket(&b)
        .key("existing")
        .body(ByteStream::from_static(ORIGINAL))
        .send()
        .await
        .unwrap();
    b
}

/// The backend has no `fresh` object and `existing` still holds [`ORIGINAL`].
async fn assert_unchanged(h: &Harness, b: &str) {
    let direct = h.direct();
    assert!(
        direct
            .head_object()
            .bucket(b)
            .key("fresh")
            .send()
            .await
            .is_err(),
        "a refused request created an object"
    );
    let got = direct
        .get_object()
        .bucket(b)
        .key("existing")
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        bytes.as_ref(),
        ORIGINAL,
        "a refused request changed an object"
    );
}

fn url(h: &Harness, b: &str, key: &str) -> String {
    format!("{}/{b}/{key}", h.endpoint())
}

/// What a hand-signed PUT signs and what it then sends.
struct Put<'a> {
    key: &'a str,
    extra: &'a [(&'a str, &'a str)],
    signed_body: &'a [u8],
    sent_body: Vec<u8>,
    creds: (&'a str, &'a str),
    time: SystemTime,
}

async fn put_signed(h: &Harness, b: &str, p: Put<'_>) -> (u16, String) {
    let Put {
        key,
        extra,
        signed_body,
        sent_body,
        creds: (ak, sk),
        time,
    } = p;
    let uri = url(h, b, key);
    let len = sent_body.len().to_string();
    let mut headers = vec![("content-length", len.as_str())];
    headers.extend_from_slice(extra);
    let s = sign_request(
        "PUT",
        &uri,
        &headers,
        SignableBody::Bytes(signed_body),
        ak,
        sk,
        time,
    );
    let (status, _, body) = raw::send("PUT", &uri, &s.headers, sent_body).await;
    (status, body)
}

async fn header_auth(h: &Harness) {
    let b = setup(h).await;
    let now = SystemTime::now();
    let data = payload(1000, 1);

    // Sanity: the hand-signed request is accepted when nothing is wrong with it, so the
    // refusals below are about the one thing each case breaks.
    let (status, body) = put_signed(
        h,
        &b,
        Put {
            key: "ok",
            extra: &[],
            signed_body: &data,
            sent_body: data.clone(),
            creds: (CLIENT_AK, CLIENT_SK),
            time: now,
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
    h.sdk()
        .delete_object()
        .bucket(&b)
        .key("ok")
        .send()
        .await
        .unwrap();

    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "wrong secret",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[],
                    signed_body: &data,
                    sent_body: data.clone(),
                    creds: (CLIENT_AK, "wrong"),
                    time: now,
                },
            )
            .await,
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "unknown key",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[],
                    signed_body: &data,
                    sent_body: data.clone(),
                    creds: ("NOSUCHKEY", CLIENT_SK),
                    time: now,
                },
            )
            .await,
            403,
            "InvalidAccessKeyId",
        ),
        (
            "tampered body",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[],
                    signed_body: &data,
                    sent_body: payload(1000, 2),
                    creds: (CLIENT_AK, CLIENT_SK),
                    time: now,
                },
            )
            .await,
            400,
            "XAmzContentSHA256Mismatch",
        ),
        (
            "tampered body over an existing object",
            put_signed(
                h,
                &b,
                Put {
                    key: "existing",
                    extra: &[],
                    signed_body: &data,
                    sent_body: payload(1000, 2),
                    creds: (CLIENT_AK, CLIENT_SK),
                    time: now,
                },
            )
            .await,
            400,
            "XAmzContentSHA256Mismatch",
        ),
        (
            "clock 20 minutes slow",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[],
                    signed_body: &data,
                    sent_body: data.clone(),
                    creds: (CLIENT_AK, CLIENT_SK),
                    time: now - Duration::from_secs(20 * 60),
                },
            )
            .await,
            403,
            "RequestTimeTooSkewed",
        ),
        (
            "bad Content-MD5",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
                    signed_body: &data,
                    sent_body: data.clone(),
                    creds: (CLIENT_AK, CLIENT_SK),
                    time: now,
                },
            )
            .await,
            400,
            "BadDigest",
        ),
        (
            "bucket outside the key's patterns",
            put_signed(
                h,
                &b,
                Put {
                    key: "fresh",
                    extra: &[],
                    signed_body: &data,
                    sent_body: data.clone(),
                    creds: (LIMITED_AK, LIMITED_SK),
                    time: now,
                },
            )
            .await,
            403,
            "AccessDenied",
        ),
    ];
    for (name, (status, body), want_status, want_code) in cases {
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(error_code(&body), want_code, "{name}: {body}");
        assert!(body.contains("<RequestId>"), "{name}: {body}");
    }

    // An x-amz-* header added after signing.
    let uri = url(h, &b, "fresh");
    let len = data.len().to_string();
    let mut s = sign_request(
        "PUT",
        &uri,
        &[("content-length", &len)],
        SignableBody::Bytes(&data),
        CLIENT_AK,
        CLIENT_SK,
        now,
    );
    s.headers.push(("x-amz-meta-injected".into(), "1".into()));
    let (status, _, body) = raw::send("PUT", &uri, &s.headers, data.clone()).await;
    assert_eq!(status, 403, "unsigned x-amz header: {body}");

    // No authentication at all.
    let (status, _, body) = raw::send("GET", &url(h, &b, "existing"), &[], Vec::new()).await;
    assert_eq!((status, error_code(&body)), (403, "AccessDenied"), "{body}");

    assert_unchanged(h, &b).await;
}

async fn chunked_bodies(h: &Harness) {
    let b = setup(h).await;
    let now = SystemTime::now();
    let data = payload(200_000, 3);
    let chunks: Vec<&[u8]> = data.chunks(65536).collect();
    let uri = url(h, &b, "fresh");

    let signed = |body: &Vec<u8>| {
        let enc_len = body.len().to_string();
        let dec_len = data.len().to_string();
        sign_request(
            "PUT",
            &uri,
            &[
                ("content-length", &enc_len),
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", &dec_len),
            ],
            SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
            CLIENT_AK,
            CLIENT_SK,
            now,
        )
    };
    // Build a correct body first to learn its length, then sign for that length.
    let probe = raw::signed_chunks(&chunks, &"0".repeat(64), CLIENT_SK, now);
    let s = signed(&probe);
    let good = raw::signed_chunks(&chunks, &s.signature, CLIENT_SK, now);

    // Tampered chunk signature: flip one hex digit of the second chunk's signature.
    let mut bad_sig = good.clone();
    let second = find(&bad_sig, b"chunk-signature=", 1) + "chunk-signature=".len();
    bad_sig[second] = if bad_sig[second] == b'0' { b'1' } else { b'0' };
    let (status, _, body) = raw::send("PUT", &uri, &s.headers, bad_sig).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );

    // Tampered data in the last chunk.
    let mut bad_data = good.clone();
    let n = bad_data.len() - 100;
    bad_data[n] ^= 1;
    let (status, _, body) = raw::send("PUT", &uri, &s.headers, bad_data).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "SignatureDoesNotMatch"),
        "{body}"
    );

    // Unsigned payload with a CRC32 trailer that does not match.
    let crc = u32::try_from(crc_fast::checksum(
        crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        b"something else",
    ))
    .unwrap();
    let trailer = format!(
        "x-amz-checksum-crc32:{}",
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    );
    let body = raw::unsigned_trailer_body(&data, 65536, &trailer);
    let (enc_len, dec_len) = (body.len().to_string(), data.len().to_string());
    let s = sign_request(
        "PUT",
        &uri,
        &[
            ("content-length", &enc_len),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", &dec_len),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ],
        SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
        CLIENT_AK,
        CLIENT_SK,
        now,
    );
    let (status, _, resp) = raw::send("PUT", &uri, &s.headers, body).await;
    assert_eq!((status, error_code(&resp)), (400, "BadDigest"), "{resp}");

    assert_unchanged(h, &b).await;

    // The correct signed-chunk body is accepted and stored exactly.
    let s = signed(&good);
    let (status, _, resp) = raw::send("PUT", &uri, &s.headers, good).await;
    assert_eq!(status, 200, "{resp}");
    let got = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("fresh")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
}

async fn presign_expiry(h: &Harness) {
    use aws_sdk_s3::presigning::PresigningConfig;
    let b = setup(h).await;
    let conf = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let put = h
        .sdk()
        .put_object()
        .bucket(&b)
        .key("fresh")
        .presigned(conf)
        .await
        .unwrap();
    let headers: Vec<(String, String)> = put.headers().map(|(k, v)| (k.into(), v.into())).collect();
    let (status, _, body) = raw::send("PUT", put.uri(), &headers, b"late".to_vec()).await;
    assert_eq!((status, error_code(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains("expired"), "{body}");
    assert_unchanged(h, &b).await;
}

async fn xml_entities(h: &Harness) {
    let b = setup(h).await;
    let doc = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY k "existing">]><Delete><Object><Key>&k;</Key></Object></Delete>"#.to_owned();
    let uri = format!("{}/{b}?delete", h.endpoint());
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(doc.as_bytes()));
    let len = doc.len().to_string();
    let s = sign_request(
        "POST",
        &uri,
        &[("content-length", &len), ("content-md5", &md5)],
        SignableBody::Bytes(doc.as_bytes()),
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    let (status, _, body) = raw::send("POST", &uri, &s.headers, doc.into_bytes()).await;
    assert_eq!((status, error_code(&body)), (400, "MalformedXML"), "{body}");
    assert_unchanged(h, &b).await;
}

/// The embedded demo store maps keys to files; keys that could leave their bucket's folder are
/// refused there (the proxy itself forwards keys exactly as signed, as S3 allows `../`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_store_keys_cannot_escape_their_bucket() {
    let h = Harness::s3s().await;
    let b = setup(&h).await;
    let other = support::bucket("victim");
    h.sdk().create_bucket().bucket(&other).send().await.unwrap();
    for key in [
        format!("../{other}/existing"),
        "a/../../x".to_owned(),
        "a//b".to_owned(),
    ] {
        let err = h
            .sdk()
            .put_object()
            .bucket(&b)
            .key(&key)
            .body(ByteStream::from_static(b"escape"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(400),
            "{key}"
        );
    }
    assert!(h
        .direct()
        .head_object()
        .bucket(&other)
        .key("existing")
        .send()
        .await
        .is_err());
    assert_unchanged(&h, &b).await;
}

fn find(hay: &[u8], needle: &[u8], nth: usize) -> usize {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap()
}

use md5::Digest as _;

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                $scenario(&Harness::s3s().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                $scenario(&Harness::with_backend(backends::shared_rgw()).await).await;
            }
        }
    };
}

per_backend!(header_auth);
per_backend!(chunked_bodies);
per_backend!(presign_expiry);
per_backend!(xml_entities);
