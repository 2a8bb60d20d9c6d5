//! The S3 signer is checked against the `aws-sigv4` library, an independent implementation:
//! for any request the upstream leg can produce, both must compute the same `Authorization`.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::SignableBody;
use http::Request;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

use super::{Service, Signer};

/// How the upstream leg encodes an object key in the path (`upstream::encode_path`): every
/// byte but the unreserved set and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
const QUERY: &AsciiSet = &PATH.add(b'/');

fn request(
    method: &str,
    key: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
) -> Request<()> {
    let mut uri = format!(
        "https://store.example:9000/bucket/{}",
        utf8_percent_encode(key, PATH)
    );
    for (i, (k, v)) in query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        uri.extend(utf8_percent_encode(k, QUERY));
        if !v.is_empty() {
            uri.push('=');
            uri.extend(utf8_percent_encode(v, QUERY));
        }
    }
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "store.example:9000")
        .header("user-agent", "changes  on the way")
        .header("transfer-encoding", "chunked");
    for (name, value) in headers {
        b = b.header(name.as_str(), value.as_str());
    }
    b.body(()).unwrap()
}

/// Signs `req` twice, with s3seal's S3 signer and with `aws-sigv4` under S3's settings.
fn both(
    signer: &Signer,
    req: &Request<()>,
    payload: &SignableBody<'_>,
    now: SystemTime,
) -> (String, String) {
    let mut ours = req.clone();
    let mut theirs = req.clone();
    signer.sign_s3(&mut ours, payload, now).unwrap();
    signer
        .sign_generic(&mut theirs, payload.clone(), now)
        .unwrap();
    let auth = |r: &Request<()>| r.headers()["authorization"].to_str().unwrap().to_owned();
    assert_eq!(ours.headers()["x-amz-date"], theirs.headers()["x-amz-date"]);
    assert_eq!(
        ours.headers()["x-amz-content-sha256"],
        theirs.headers()["x-amz-content-sha256"]
    );
    (auth(&ours), auth(&theirs))
}

fn signer() -> Signer {
    Signer::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "eu-central-1",
        Service::S3,
    )
}

proptest! {
    #[test]
    fn s3_signatures_match_aws_sigv4(
        method in prop::sample::select(vec!["GET", "PUT", "HEAD", "POST", "DELETE"]),
        key in "[a-zA-Z0-9 !$&'()*+,;=:@/%~._é\u{1F600}-]{1,40}",
        query in prop::collection::vec(("[a-zA-Z0-9_-]{1,10}", "[a-zA-Z0-9 /+=%._~-]{0,12}"), 0..4),
        headers in prop::collection::vec(
            ("x-amz-meta-[a-z0-9-]{1,12}", "[ -~]{0,30}".prop_filter("no leading/trailing-only", |v| !v.is_empty())),
            0..4,
        ),
        body in prop::collection::vec(any::<u8>(), 0..64),
        form in 0..3u8,
        secs in 1_600_000_000u64..1_900_000_000,
    ) {
        let req = request(method, &key, &query, &headers);
        let payload = match form {
            0 => SignableBody::Bytes(&body),
            1 => SignableBody::UnsignedPayload,
            _ => SignableBody::StreamingUnsignedPayloadTrailer,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let (ours, theirs) = both(&signer(), &req, &payload, now);
        prop_assert_eq!(ours, theirs);
    }
}

/// The signing key is kept for the day it was derived for: a signer used across midnight
/// must derive a new one, not sign the next day's requests with yesterday's key.
#[test]
fn the_cached_signing_key_follows_the_date() {
    let signer = signer();
    let req = request("GET", "k", &[], &[]);
    let day = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    for now in [day, day + Duration::from_secs(86_400), day] {
        let (ours, theirs) = both(&signer, &req, &SignableBody::Bytes(b""), now);
        assert_eq!(ours, theirs);
    }
}
