//! Signature Version 2: `Authorization: AWS <AccessKeyId>:<Signature>`, or the query's
//! `AWSAccessKeyId`, `Signature` and `Expires`; the signature is the Base64 HMAC-SHA1 of
//!
//! ```text
//! Verb \n Content-MD5 \n Content-Type \n Date (or Expires) \n CanonicalizedAmzHeaders CanonicalizedResource
//! ```
//!
//! aws cli v1 (`aws s3 presign`) and boto3's `generate_presigned_url` still produce it. Pure:
//! the caller finds the key and checks the time.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html>

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, DATE};
use http::HeaderMap;
use percent_encoding::percent_decode;
use sha1::Sha1;

use crate::s3::headers::{CONTENT_MD5, X_AMZ_DATE};

/// The scheme of the `Authorization` header.
pub const SCHEME: &str = "AWS";
pub const ACCESS_KEY_ID: &str = "AWSAccessKeyId";
pub const SIGNATURE: &str = "Signature";
pub const EXPIRES: &str = "Expires";

/// The query parameters that belong to the `CanonicalizedResource` (with their values), in
/// the order S3 sorts them: the sub-resources and the response header overrides of the
/// reference, and the sub-resources S3 added since, as botocore signs them.
const SIGNED_PARAMETERS: [&str; 36] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// An HMAC-SHA1 signature.
pub type Signature = [u8; 20];

/// `AWS AKID:Base64(signature)`: the key id and the signature as sent (see
/// [`decode_signature`]).
pub fn parse_authorization(value: &str) -> Option<(&str, &str)> {
    let credentials = value.strip_prefix(SCHEME)?.strip_prefix(' ')?.trim();
    let (key_id, signature) = credentials.split_once(':')?;
    (!key_id.is_empty()).then_some((key_id, signature))
}

/// The Base64 `Signature` of the header or the query.
pub fn decode_signature(value: &str) -> Option<Signature> {
    STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|raw| Signature::try_from(raw).ok())
}

/// The string to sign. `date` is the `Date` header (empty when `x-amz-date` is sent, which
/// then signs as one of the amz headers), or the query's `Expires`.
pub fn string_to_sign(method: &str, headers: &HeaderMap, date: &str, resource: &str) -> String {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map_or("", str::trim)
    };
    let mut out = format!(
        "{method}\n{}\n{}\n{date}\n",
        header(CONTENT_MD5),
        header(CONTENT_TYPE)
    );
    out.push_str(&canonical_amz_headers(headers));
    out.push_str(resource);
    out
}

/// The `Date` line of a header-signed request: `Date` unless `x-amz-date` is sent.
pub fn date_line(headers: &HeaderMap) -> &str {
    if headers.contains_key(X_AMZ_DATE) {
        return "";
    }
    headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .map_or("", str::trim)
}

/// `x-amz-*` headers: lower-case names, sorted, values trimmed and joined by `,`, one per
/// line. Every `x-amz-*` header is signed, by construction.
fn canonical_amz_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().map_or("", str::trim))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// The `CanonicalizedResource`: `/bucket` when the bucket is in the host name, the path as
/// sent, then the signed query parameters, sorted by name, with their decoded values.
pub fn canonical_resource(
    virtual_host_bucket: Option<&str>,
    raw_path: &str,
    raw_query: &str,
) -> Result<String, std::str::Utf8Error> {
    let mut out = String::new();
    if let Some(bucket) = virtual_host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(raw_path);
    let mut signed: Vec<(&str, Option<String>)> = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        if SIGNED_PARAMETERS.contains(&name) {
            let value = value
                .map(|v| {
                    percent_decode(v.as_bytes())
                        .decode_utf8()
                        .map(std::borrow::Cow::into_owned)
                })
                .transpose()?;
            signed.push((name, value));
        }
    }
    signed.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in signed.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    Ok(out)
}

/// `HMAC-SHA1(secret, string_to_sign)`.
pub fn sign(secret: &str, string_to_sign: &str) -> Signature {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
