//! Request routing: which bucket, which key, which operation.
//!
//! Path-style (`/bucket/key`) and virtual-hosted-style (`bucket.<domain>/key`) addressing.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>

use http::{Method, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{S3Code, S3Error};

/// S3 object keys are at most 1024 bytes of UTF-8.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>
pub const MAX_KEY_BYTES: usize = 1024;

/// Bytes that S3's SigV4 canonical URI leaves unencoded: RFC 3986 unreserved, plus `/`.
const S3_PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a decoded key or path the way S3 canonicalises it (each byte once, `/` kept).
pub fn encode_path(decoded: &str) -> String {
    utf8_percent_encode(decoded, S3_PATH_ENCODE).to_string()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("The request path is not valid percent-encoded UTF-8.")]
    BadPath,
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    #[error("Your key is too long: it has {0} bytes, the maximum is 1024.")]
    KeyTooLong(usize),
    #[error("The request has no Host header.")]
    MissingHost,
    #[error("Access Denied: this access key may not use bucket '{0}'.")]
    BucketNotAllowed(String),
}

impl S3Error for RouteError {
    fn code(&self) -> S3Code {
        match self {
            RouteError::BadPath => S3Code::InvalidURI,
            RouteError::InvalidBucketName => S3Code::InvalidBucketName,
            RouteError::KeyTooLong(_) => S3Code::KeyTooLongError,
            RouteError::MissingHost => S3Code::InvalidRequest,
            RouteError::BucketNotAllowed(_) => S3Code::AccessDenied,
        }
    }
}

/// What the request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET /`: ListBuckets.
    Service,
    Bucket(String),
    Object {
        bucket: String,
        key: String,
    },
}

impl Target {
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Target::Service => None,
            Target::Bucket(b) | Target::Object { bucket: b, .. } => Some(b),
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            Target::Object { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The S3 operations whose body or semantics the proxy must know. Everything else is
/// [`Operation::Other`] and passes through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// `GET /bucket/key?attributes`: takes the SSE-C key like GetObject.
    GetObjectAttributes,
    /// `POST /bucket/key?select&select-type=2`: takes the SSE-C key like GetObject.
    SelectObjectContent,
    /// `POST /bucket/key?restore`.
    RestoreObject,
    /// A browser POST form upload (`POST /bucket` with multipart/form-data).
    PostObject,
    /// A bucket or object sub-resource (`?tagging`, `?acl`, `?cors`, ...), or anything else.
    Other,
}

impl Operation {
    /// The S3 API name of the operation (`Other` for everything the proxy passes through
    /// without knowing it).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::CreateBucket => "CreateBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::ListObjects => "ListObjects",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::ListObjectVersions => "ListObjectVersions",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::PutObject => "PutObject",
            Operation::CopyObject => "CopyObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::PostObject => "PostObject",
            Operation::GetObjectAttributes => "GetObjectAttributes",
            Operation::SelectObjectContent => "SelectObjectContent",
            Operation::RestoreObject => "RestoreObject",
            Operation::Other => "Other",
        }
    }
}

/// How the request body must be treated before it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Object data: streamed, never buffered.
    Data,
    /// An XML document: buffered (size-limited) and checked for DTDs before forwarding.
    Xml,
    /// A JSON document (bucket policy): buffered, size-limited.
    Json,
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub target: Target,
    pub op: Operation,
    pub body: BodyKind,
    /// The client addressed the bucket through the Host header.
    pub virtual_host: bool,
}

/// Query parameters that select or filter, as opposed to sub-resources (`?acl`, `?tagging`, ...)
/// which make a request a different operation.
const PLAIN_PARAMS: &[&str] = &[
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "list-type",
    "marker",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "partNumber",
    "prefix",
    "start-after",
    "upload-id-marker",
    "version-id-marker",
    "versionId",
    "x-id",
];

fn is_plain_param(name: &str) -> bool {
    PLAIN_PARAMS.contains(&name)
        || name.starts_with("response-")
        || name.starts_with("X-Amz-")
        || name.starts_with("x-amz-")
}

/// Query parameter names and values, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Result<Self, RouteError> {
        let mut out = Vec::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((decode_query(k)?, decode_query(v)?));
        }
        Ok(Query(out))
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn subresource(&self) -> Option<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).find(|k| {
            !is_plain_param(k) && !matches!(*k, "uploads" | "uploadId" | "delete" | "versions")
        })
    }
}

fn decode_query(s: &str) -> Result<String, RouteError> {
    // In query strings `+` is a space (application/x-www-form-urlencoded), which is how
    // AWS reads them too.
    let s = s.replace('+', " ");
    percent_decode_str(&s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| RouteError::BadPath)
}

/// Routes a request head. `domain` is the configured base domain for virtual-hosted-style
/// addressing (`bucket.<domain>`); `has_copy_source` tells copies from uploads.
pub fn route(
    method: &Method,
    uri: &Uri,
    host: Option<&str>,
    domain: Option<&str>,
    has_copy_source: bool,
) -> Result<Routed, RouteError> {
    let host = host.ok_or(RouteError::MissingHost)?;
    let path = percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| RouteError::BadPath)?;
    let path = path.strip_prefix('/').ok_or(RouteError::BadPath)?;

    let vhost_bucket = domain
        .and_then(|d| virtual_host_bucket(host, d))
        .or_else(|| aws_virtual_host_bucket(host));
    let virtual_host = vhost_bucket.is_some();
    let target = match vhost_bucket {
        Some(bucket) => object_or_bucket(bucket, path)?,
        None => match path.split_once('/') {
            None if path.is_empty() => Target::Service,
            None => object_or_bucket(path, "")?,
            Some((bucket, key)) => object_or_bucket(bucket, key)?,
        },
    };

    let query = Query::parse(uri.query())?;
    let op = operation(method, &target, &query, has_copy_source);
    let body = match op {
        Operation::PutObject | Operation::UploadPart | Operation::PostObject => BodyKind::Data,
        Operation::Other if query.subresource() == Some("policy") => BodyKind::Json,
        _ => BodyKind::Xml,
    };
    Ok(Routed {
        target,
        op,
        body,
        virtual_host,
    })
}

fn virtual_host_bucket<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let name = strip_port(host);
    let bucket = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then_some(bucket)
}

/// The bucket of an AWS S3 virtual-hosted-style name, so that clients that keep their default
/// endpoint and resolve AWS names to the proxy (hosts file, corporate DNS) work unchanged:
///
/// - `<bucket>.s3.amazonaws.com`, `<bucket>.s3.<region>.amazonaws.com`
/// - `<bucket>.s3.dualstack.<region>.amazonaws.com`
/// - `<bucket>.s3-fips[.dualstack].<region>.amazonaws.com`
/// - the legacy `<bucket>.s3-<region>.amazonaws.com` and `<bucket>.s3-external-1.amazonaws.com`
/// - each of them under `amazonaws.com.cn` (China regions)
///
/// The service names without a bucket label (`s3.amazonaws.com`, `s3.<region>.amazonaws.com`,
/// ...) are path style, like any host the proxy does not know. Access points, website and
/// Object Lambda endpoints are not S3 API endpoints the proxy can serve, and are not matched.
/// Reference: <https://docs.aws.amazon.com/general/latest/gr/s3.html>,
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html#s3-legacy-endpoints>
pub fn aws_virtual_host_bucket(host: &str) -> Option<&str> {
    let name = strip_port(host);
    let lower = name.to_ascii_lowercase();
    let labels_len = ["amazonaws.com", "amazonaws.com.cn"]
        .iter()
        .find_map(|suffix| Some(lower.strip_suffix(suffix)?.strip_suffix('.')?.len()))?;
    let labels: Vec<&str> = lower[..labels_len].split('.').collect();
    // The service label is one of the last three; the rightmost reading wins, so a bucket
    // whose name contains `s3` labels is still read whole.
    for tail in 0..=2 {
        if labels.len() < tail + 2 {
            break;
        }
        let service = labels.len() - 1 - tail;
        if is_s3_service(labels[service], &labels[service + 1..]) {
            // ASCII lower-casing keeps byte offsets, so the bucket is sliced from the original.
            let bucket_len = labels[..service].join(".").len();
            return (bucket_len > 0).then(|| &name[..bucket_len]);
        }
    }
    None
}

/// `service` followed by `tail` names the S3 API endpoint of some region.
fn is_s3_service(service: &str, tail: &[&str]) -> bool {
    match (service, tail) {
        ("s3" | "s3-external-1", []) => true,
        ("s3" | "s3-fips", [region] | ["dualstack", region]) => is_region(region),
        (legacy, []) => legacy.strip_prefix("s3-").is_some_and(is_region),
        _ => false,
    }
}

/// An AWS region name: `us-east-1`, `us-gov-west-1`, `ap-southeast-2`, `cn-north-1`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: never a virtual host.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn object_or_bucket(bucket: &str, key: &str) -> Result<Target, RouteError> {
    validate_bucket(bucket)?;
    if key.is_empty() {
        return Ok(Target::Bucket(bucket.to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(RouteError::KeyTooLong(key.len()));
    }
    Ok(Target::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// Accepts current and legacy bucket names (legacy ones may have upper case and `_`, up to
/// 255 bytes) and refuses anything that could be read as a path.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn validate_bucket(b: &str) -> Result<(), RouteError> {
    let ok = (1..=255).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(RouteError::InvalidBucketName)
    }
}

fn operation(method: &Method, target: &Target, q: &Query, copy: bool) -> Operation {
    let sub = q.subresource();
    let upload_id = q.has("uploadId");
    match (target, method.as_str()) {
        (Target::Service, "GET") => Operation::ListBuckets,
        (Target::Bucket(_), m) => match (m, sub) {
            ("PUT", None) => Operation::CreateBucket,
            ("DELETE", None) => Operation::DeleteBucket,
            ("HEAD", None) => Operation::HeadBucket,
            ("GET", None) if q.get("list-type") == Some("2") => Operation::ListObjectsV2,
            ("GET", None) if q.has("versions") => Operation::ListObjectVersions,
            ("GET", None) if q.has("uploads") => Operation::ListMultipartUploads,
            ("GET", None) => Operation::ListObjects,
            ("POST", None) if q.has("delete") => Operation::DeleteObjects,
            ("POST", None) => Operation::PostObject,
            _ => Operation::Other,
        },
        (Target::Object { .. }, m) => match (m, sub) {
            ("GET", Some("attributes")) => Operation::GetObjectAttributes,
            ("POST", _) if q.has("select") => Operation::SelectObjectContent,
            ("POST", Some("restore")) => Operation::RestoreObject,
            ("GET", None) if upload_id => Operation::ListParts,
            ("GET", None) => Operation::GetObject,
            ("HEAD", None) => Operation::HeadObject,
            ("PUT", None) if upload_id && copy => Operation::UploadPartCopy,
            ("PUT", None) if upload_id => Operation::UploadPart,
            ("PUT", None) if copy => Operation::CopyObject,
            ("PUT", None) => Operation::PutObject,
            ("DELETE", None) if upload_id => Operation::AbortMultipartUpload,
            ("DELETE", None) => Operation::DeleteObject,
            ("POST", None) if q.has("uploads") => Operation::CreateMultipartUpload,
            ("POST", None) if upload_id => Operation::CompleteMultipartUpload,
            _ => Operation::Other,
        },
        (Target::Service, _) => Operation::Other,
    }
}

#[cfg(test)]
mod tests;
