//! Header names used by S3 and SigV4.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTCommonRequestHeaders.html>

use http::HeaderName;

pub const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
pub const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
pub const X_AMZ_DECODED_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("x-amz-decoded-content-length");
pub const X_AMZ_TRAILER: HeaderName = HeaderName::from_static("x-amz-trailer");
pub const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
pub use crate::error::X_AMZ_REQUEST_ID;
pub const X_AMZ_ID_2: HeaderName = HeaderName::from_static("x-amz-id-2");
pub const X_AMZ_COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");
pub const X_AMZ_COPY_SOURCE_RANGE: HeaderName = HeaderName::from_static("x-amz-copy-source-range");
pub const X_AMZ_TAGGING: HeaderName = HeaderName::from_static("x-amz-tagging");
pub const X_AMZ_METADATA_DIRECTIVE: HeaderName =
    HeaderName::from_static("x-amz-metadata-directive");
pub const X_AMZ_SDK_CHECKSUM_ALGORITHM: HeaderName =
    HeaderName::from_static("x-amz-sdk-checksum-algorithm");
pub const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

/// The standard headers that describe a stored object (besides `x-amz-meta-*`), which a
/// rewrite of the object must carry over.
pub const OBJECT_DESCRIPTION: [HeaderName; 6] = [
    http::header::CONTENT_TYPE,
    http::header::CACHE_CONTROL,
    http::header::CONTENT_DISPOSITION,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_LANGUAGE,
    http::header::EXPIRES,
];

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];
