//! Authentication of browser form uploads (`PostObject`): the signature of the POST policy,
//! then the policy itself, exactly as S3 checks them, before anything is sent upstream.
//!
//! A verified form becomes the head of the `PutObject` that the proxy sends in its place: the
//! fields that set object properties become the headers a PUT carries, so the SSE and
//! client-side encryption stages treat a form upload like any other PUT.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html>

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body::Body;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use subtle::ConstantTimeEq;

use crate::s3::headers::X_AMZ_TAGGING;
use crate::s3::post::{Form, Policy, PostError};
use crate::s3::xml;

use super::budget::BufferBudget;
use super::sigv4::{self, Credential, SigningKey, ALGORITHM};
use super::VerifiedBody;
use super::{body_plan, AuthContext, AuthError, ClientKeys, Payload, Principal, Verified};

/// Fields the proxy reads itself; they never become headers.
const CONTROL_FIELDS: &[&str] = &[
    "key",
    "policy",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
    "success_action_status",
    "success_action_redirect",
    "redirect",
];

/// Fields that set object properties, and the `PutObject` header each becomes. The list is
/// closed: any other field is refused (a `x-amz-meta-*` field keeps its name; `tagging`, a
/// `Tagging` document, becomes `x-amz-tagging`).
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>
const HEADER_FIELDS: &[(&str, &str)] = &[
    ("content-type", "content-type"),
    ("cache-control", "cache-control"),
    ("content-disposition", "content-disposition"),
    ("content-encoding", "content-encoding"),
    ("expires", "expires"),
    ("acl", "x-amz-acl"),
    ("x-amz-storage-class", "x-amz-storage-class"),
    (
        "x-amz-website-redirect-location",
        "x-amz-website-redirect-location",
    ),
    (
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption",
    ),
    (
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ),
    (
        "x-amz-server-side-encryption-context",
        "x-amz-server-side-encryption-context",
    ),
    (
        "x-amz-server-side-encryption-bucket-key-enabled",
        "x-amz-server-side-encryption-bucket-key-enabled",
    ),
    (
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-algorithm",
    ),
    (
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key",
    ),
    (
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-server-side-encryption-customer-key-md5",
    ),
    ("x-amz-checksum-algorithm", "x-amz-checksum-algorithm"),
    ("x-amz-checksum-crc32", "x-amz-checksum-crc32"),
    ("x-amz-checksum-crc32c", "x-amz-checksum-crc32c"),
    ("x-amz-checksum-crc64nvme", "x-amz-checksum-crc64nvme"),
    ("x-amz-checksum-sha1", "x-amz-checksum-sha1"),
    ("x-amz-checksum-sha256", "x-amz-checksum-sha256"),
];

/// A form's field, required once the form is signed at all.
fn required<'f>(form: &'f Form, name: &'static str) -> Result<&'f str, AuthError> {
    form.get(name)
        .ok_or(AuthError::Post(PostError::MissingField(name)))
}

/// Verifies a form upload to `bucket` whose file (`file`, `file_len` bytes) follows the
/// fields of `form`: the policy's signature by a client key, its expiration and conditions,
/// and the file's size. Returns the `PutObject` head that replaces the form, with the file as
/// its body, verified as it streams like any PUT's (checksum fields included).
pub fn verify_form<B: Body>(
    parts: Parts,
    form: &Form,
    bucket: &str,
    file: B,
    file_len: u64,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
) -> Result<Verified<B>, AuthError> {
    let principal = authenticate(form, keys, cx)?;
    let policy = Policy::parse(required(form, "policy")?)?;
    policy.check(form, bucket, cx.now)?;
    policy.check_length(file_len)?;

    let headers = put_headers(form, parts.headers.get(HOST), file_len)?;
    let plan = body_plan(&headers, Payload::Unsigned, None)?;
    let charge = parts
        .extensions
        .get::<BufferBudget>()
        .map(BufferBudget::charge)
        .unwrap_or_default();
    let (mut head, ()) = http::Request::new(()).into_parts();
    head.method = Method::PUT;
    head.uri = parts.uri;
    head.version = parts.version;
    head.headers = headers;
    head.extensions = parts.extensions;
    Ok(Verified {
        body: VerifiedBody::new(file, plan, charge)?,
        parts: head,
        principal,
        content_length: Some(file_len),
        presigned: false,
    })
}

/// The signature over the base64 policy, by the key and scope of `x-amz-credential`.
fn authenticate(
    form: &Form,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
) -> Result<Principal, AuthError> {
    let signs = [
        "policy",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-algorithm",
    ];
    if signs.iter().all(|f| form.get(f).is_none()) {
        // SigV2 forms (`AWSAccessKeyId`, `signature`) are not taken; a form without any
        // signature is anonymous, which no bucket opens to writes.
        return Err(
            if form.get("awsaccesskeyid").is_some() || form.get("signature").is_some() {
                AuthError::UnsupportedAlgorithm
            } else {
                AuthError::MissingAuthentication
            },
        );
    }
    if form.get("x-amz-security-token").is_some() {
        return Err(AuthError::InvalidToken);
    }
    if required(form, "x-amz-algorithm")? != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    let bad = |field, why| AuthError::Post(PostError::BadField(field, why));
    let credential = Credential::parse(required(form, "x-amz-credential")?).ok_or(bad(
        "x-amz-credential",
        "expecting <AccessKeyId>/<YYYYMMDD>/<region>/s3/aws4_request",
    ))?;
    let amz_date = required(form, "x-amz-date")?;
    let policy = required(form, "policy")?;
    let signature = required(form, "x-amz-signature")?;
    let identity = keys
        .get(&credential.access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if credential.region != cx.region {
        return Err(bad("x-amz-credential", "the region is wrong"));
    }
    if credential.service != "s3" || credential.terminator != "aws4_request" {
        return Err(bad(
            "x-amz-credential",
            "the scope must end in s3/aws4_request",
        ));
    }
    if sigv4::parse_amz_date(amz_date).is_none() || !amz_date.starts_with(&credential.date) {
        return Err(bad(
            "x-amz-date",
            "expecting YYYYMMDDTHHMMSSZ on the credential's date",
        ));
    }
    let claimed = sigv4::parse_signature(signature).ok_or(AuthError::SignatureDoesNotMatch)?;
    let key = SigningKey::derive(identity.secret.expose(), &credential.date, cx.region);
    let computed = key.sign(policy.as_bytes());
    if !bool::from(computed.ct_eq(&claimed)) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(Principal::Client(Arc::clone(identity)))
}

/// The headers of the `PutObject` that stores the form's file: the authority, the file's
/// length, and each field that sets an object property.
fn put_headers(
    form: &Form,
    host: Option<&HeaderValue>,
    file_len: u64,
) -> Result<HeaderMap, AuthError> {
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert(HOST, host.clone());
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(file_len));
    for (name, value) in form.fields() {
        if CONTROL_FIELDS.contains(&name) || name.starts_with("x-ignore-") {
            continue;
        }
        if name == "tagging" {
            headers.insert(X_AMZ_TAGGING, tagging_header(value)?);
            continue;
        }
        let header = if name.starts_with("x-amz-meta-") {
            HeaderName::from_bytes(name.as_bytes()).ok()
        } else {
            HEADER_FIELDS
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, header)| HeaderName::from_static(header))
        }
        .ok_or_else(|| PostError::UnsupportedField(name.to_owned()))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| PostError::UnsupportedField(name.to_owned()))?;
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The `tagging` field (a `Tagging` XML document) as PutObject's `x-amz-tagging` header.
fn tagging_header(doc: &str) -> Result<HeaderValue, AuthError> {
    let bad = || PostError::BadField("tagging", "expecting a Tagging document");
    let tags = xml::tag_set(doc.as_bytes()).map_err(|_| bad())?;
    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let query = tags
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Ok(HeaderValue::from_str(&query).map_err(|_| bad())?)
}

#[cfg(test)]
mod tests;
