//! Hand-built requests for negative tests: signed with `aws-sigv4` (an implementation
//! independent of the proxy's), then tampered with on purpose.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};

use super::REGION;

pub struct Signed {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The seed signature (for aws-chunked bodies).
    pub signature: String,
    pub time: SystemTime,
}

/// Signs a request with header auth. `body` is what goes into x-amz-content-sha256.
pub fn sign_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: SignableBody<'_>,
    ak: &str,
    sk: &str,
    time: SystemTime,
) -> Signed {
    let identity = Credentials::new(ak, sk, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(method, uri, headers.iter().copied(), body).unwrap();
    let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    Signed {
        method: method.into(),
        uri: uri.into(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        signature,
        time,
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Encodes `chunks` as a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body, chaining signatures
/// from `seed`, as in AWS's "Signature Calculations for the Authorization Header:
/// Transferring Payload in Multiple Chunks".
pub fn signed_chunks(chunks: &[&[u8]], seed: &str, sk: &str, time: SystemTime) -> Vec<u8> {
    let dt = time::OffsetDateTime::from(time);
    let date = format!("{:04}{:02}{:02}", dt.year(), u8::from(dt.month()), dt.day());
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let mut key = hmac(format!("AWS4{sk}").as_bytes(), date.as_bytes());
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let empty = hex::encode(Sha256::digest(b""));
    let mut prev = seed.to_owned();
    let mut out = Vec::new();
    for data in chunks.iter().copied().chain([&b""[..]]) {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev}\n{empty}\n{}",
            hex::encode(Sha256::digest(data))
        );
        let sig = hex::encode(hmac(&key, sts.as_bytes()));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        prev = sig;
    }
    out
}

/// Encodes `data` as a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` body with one trailer line.
pub fn unsigned_trailer_body(data: &[u8], chunk: usize, trailer: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailer}\r\n\r\n").as_bytes());
    out
}

/// Sends a request over HTTPS (trusting the dev CA) and returns status, headers and body.
pub async fn send(
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, String) {
    let tls = super::client_tls();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<bytes::Bytes>>(https);
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The `<Code>` of an S3 error document.
pub fn error_code(xml: &str) -> &str {
    xml.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code)
}
