use super::*;
use crate::auth::SecretKey;

fn upstream(style: AddressingStyle) -> UpstreamClient {
    crate::tls::install_crypto_provider();
    let cfg = Upstream {
        name: "u".into(),
        endpoint: "https://s3.example.test:9443".parse().unwrap(),
        region: "eu-west-1".into(),
        access_key_id: "AKUP".into(),
        secret_access_key: SecretKey::new("up-secret"),
        addressing_style: style,
        ca_bundle: None,
        forward_checksum_trailers: crate::upstream::trailers::TrailerMode::Forward,
        required_for_readiness: true,
    };
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    UpstreamClient::new(cfg, tls)
}

fn outgoing<'a>(target: &'a Target, query: &[(&str, &str)]) -> Outgoing<'a> {
    Outgoing {
        method: Method::PUT,
        target,
        query: query
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        headers: HeaderMap::new(),
        content_length: Some(3),
    }
}

#[test]
fn path_style_request_is_encoded_and_signed_with_upstream_credentials() {
    let up = upstream(AddressingStyle::Path);
    let t = Target::Object {
        bucket: "bkt".into(),
        key: "a b/../c+d".into(),
    };
    let req = up
        .operator()
        .sign(
            outgoing(&t, &[("partNumber", "1"), ("uploadId", "x/y=")]),
            &Payload::Streamed,
            crate::body::empty(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
    assert_eq!(
        req.uri().to_string(),
        "https://s3.example.test:9443/bkt/a%20b/../c%2Bd?partNumber=1&uploadId=x%2Fy%3D"
    );
    assert_eq!(req.headers()["host"], "s3.example.test:9443");
    assert_eq!(req.headers()["content-length"], "3");
    assert_eq!(req.headers()["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    assert_eq!(req.headers()["x-amz-date"], "20231114T221320Z");
    let auth = req.headers()["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKUP/20231114/eu-west-1/s3/aws4_request"),
        "{auth}"
    );
}

#[test]
fn virtual_style_moves_the_bucket_into_the_host() {
    let up = upstream(AddressingStyle::Virtual);
    let t = Target::Object {
        bucket: "bkt".into(),
        key: "k".into(),
    };
    let req = up
        .operator()
        .sign(
            outgoing(&t, &[("uploads", "")]),
            &Payload::Known(b""),
            crate::body::empty(),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        req.uri().to_string(),
        "https://bkt.s3.example.test:9443/k?uploads"
    );
    assert_eq!(req.headers()["host"], "bkt.s3.example.test:9443");
    assert_eq!(
        req.headers()["x-amz-content-sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn client_auth_and_hop_by_hop_headers_are_not_forwarded() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "AWS4-HMAC-SHA256 Credential=client"),
        ("x-amz-date", "20230101T000000Z"),
        ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        ("x-amz-decoded-content-length", "5"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("content-encoding", "aws-chunked, gzip"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "1"),
        ("transfer-encoding", "chunked"),
        ("expect", "100-continue"),
        ("x-amz-meta-color", "blue"),
        ("content-md5", "abc"),
        ("content-type", "text/plain"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let out = forwardable_request_headers(&h);
    let mut names: Vec<_> = out.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "content-encoding",
            "content-md5",
            "content-type",
            "x-amz-meta-color"
        ]
    );
    assert_eq!(out["content-encoding"], "gzip");

    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("aws-chunked"),
    );
    assert!(forwardable_request_headers(&h).is_empty());
}
