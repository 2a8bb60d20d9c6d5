//! Request routing: one parse of the verified head into the value every stage reads.
//!
//! [`route`] finds the authority (the `Host` header and the request target's authority must
//! agree), the bucket (validated by S3's naming rules), the key, the operation from the closed
//! list of [`Operation`]s, the query parameters that go upstream, and the decoded copy source.
//! Nothing else in the proxy parses these again: two parsers of one fact disagree, and each
//! disagreement was a hole (a presigned URL replayed against another bucket through the
//! absolute-form authority, a copy source authorised before it was decoded).
//!
//! Path-style (`/bucket/key`) and virtual-hosted-style (`bucket.<domain>/key`) addressing.
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>

use http::{header, HeaderMap, Method, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{S3Code, S3Error};
use crate::s3::headers;
use crate::s3::operation::{classify, Shape, Unknown};

pub use crate::s3::operation::{Access, BucketResource, Needs, ObjectResource, Operation, Verb};

/// S3 object keys are at most 1024 bytes of UTF-8.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>
pub const MAX_KEY_BYTES: usize = 1024;

/// The proxy's own namespace in every bucket (seals of multipart objects, `docs/format.md`).
/// Clients can neither read, write, copy, delete nor list it.
pub const RESERVED_PREFIX: &str = ".s3seal/";

/// The most parts a multipart upload has.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>
pub const MAX_PART_NUMBER: u32 = 10_000;

/// The most one PutObject or UploadPart may carry: 5 GiB.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>
pub const MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The most user-defined metadata (`x-amz-meta-*`) an object may have: the bytes of each
/// name (without the prefix) and value, summed.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html#UserMetadata>
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

/// The largest value S3 takes for `max-keys`, `max-parts` and `max-uploads` (a signed 32-bit
/// integer), as its error messages say.
const MAX_LIST_LIMIT: u32 = 2_147_483_647;

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
    #[error("The request query is not valid percent-encoded UTF-8.")]
    BadQuery,
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    #[error("Your key is too long: it has {0} bytes, the maximum is 1024.")]
    KeyTooLong(usize),
    #[error("The request has no Host header.")]
    MissingHost,
    #[error("The request has more than one Host header.")]
    DuplicateHost,
    #[error("The Host header '{host}' does not match the request's authority '{authority}'.")]
    AuthorityMismatch { host: String, authority: String },
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    #[error("s3seal does not accept the query parameter '{0}' on this request.")]
    UnknownParameter(String),
    #[error("The query parameter '{0}' appears more than once.")]
    DuplicateParameter(String),
    #[error("This operation needs the query parameter '{0}'.")]
    MissingParameter(&'static str),
    #[error("Part number must be an integer between 1 and 10000, inclusive")]
    InvalidPartNumber,
    /// A listing limit out of range; S3 names `max-keys` `maxKeys` in its message.
    #[error("Argument {} must be an integer between 0 and 2147483647", if *.0 == "max-keys" { "maxKeys" } else { .0 })]
    InvalidInteger(&'static str),
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    EntityTooLarge,
    #[error("Your metadata headers exceed the maximum allowed metadata size.")]
    MetadataTooLarge,
    #[error("The request names more than one x-amz-copy-source.")]
    DuplicateCopySource,
    #[error("The x-amz-copy-source header is not of the form bucket/key[?versionId=id].")]
    BadCopySource,
    #[error("Keys under '.s3seal/' belong to the proxy.")]
    ReservedKey,
}

impl S3Error for RouteError {
    fn code(&self) -> S3Code {
        match self {
            RouteError::BadPath | RouteError::BadQuery => S3Code::InvalidURI,
            RouteError::InvalidBucketName => S3Code::InvalidBucketName,
            RouteError::KeyTooLong(_) => S3Code::KeyTooLongError,
            RouteError::MissingHost
            | RouteError::DuplicateHost
            | RouteError::AuthorityMismatch { .. } => S3Code::InvalidRequest,
            RouteError::MethodNotAllowed => S3Code::MethodNotAllowed,
            RouteError::UnknownParameter(_)
            | RouteError::DuplicateParameter(_)
            | RouteError::MissingParameter(_)
            | RouteError::InvalidPartNumber
            | RouteError::InvalidInteger(_)
            | RouteError::DuplicateCopySource
            | RouteError::BadCopySource => S3Code::InvalidArgument,
            RouteError::ReservedKey => S3Code::AccessDenied,
            RouteError::EntityTooLarge => S3Code::EntityTooLarge,
            RouteError::MetadataTooLarge => S3Code::MetadataTooLarge,
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

/// `x-amz-copy-source`, decoded once: S3 percent-decodes the whole value before it splits the
/// bucket from the key, so `a%2Fb/c` is bucket `a`, key `b/c`.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl CopySource {
    /// The header value the upstream receives: exactly what was authorised, encoded once.
    pub fn header_value(&self) -> String {
        let mut v = format!("{}/{}", self.bucket, encode_path(&self.key));
        if let Some(id) = &self.version_id {
            v.push_str("?versionId=");
            v.extend(utf8_percent_encode(id, NON_ALPHANUMERIC));
        }
        v
    }
}

/// How bucket names are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Addressing<'a> {
    /// The base domain for virtual-hosted-style requests (`bucket.<domain>`).
    pub domain: Option<&'a str>,
    /// Accept legacy bucket names (upper case, `_`, up to 255 bytes; `[server]
    /// legacy_bucket_names`). Off: S3's current rules.
    pub legacy_bucket_names: bool,
}

/// A routed request: the one value every later stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The authority the client addressed (and signed as `host`).
    pub authority: String,
    pub target: Target,
    pub op: Operation,
    pub body: BodyKind,
    /// The client addressed the bucket through the Host header.
    pub virtual_host: bool,
    /// The query parameters that go upstream, decoded, in client order: the operation's
    /// keyword and parameters, never authentication parameters.
    pub query: Vec<(String, String)>,
    pub copy_source: Option<CopySource>,
}

/// Parameters no operation forwards: SigV4 query authentication (checked by `auth`, and
/// headers an SDK hoisted into a presigned URL's query, which it signed), SigV2 query
/// authentication (checked by `auth` too), and the SDKs' `x-id=<Operation>` marker, which S3
/// ignores.
fn is_dropped_param(name: &str) -> bool {
    matches!(name, "x-id" | "AWSAccessKeyId" | "Signature" | "Expires")
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
}

/// Query parameter names and values, decoded.
fn parse_query(q: Option<&str>) -> Result<Vec<(String, String)>, RouteError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode_query(k)?;
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(RouteError::DuplicateParameter(k));
        }
        out.push((k, decode_query(v)?));
    }
    Ok(out)
}

fn decode_query(s: &str) -> Result<String, RouteError> {
    // In query strings `+` is a space (application/x-www-form-urlencoded), which is how
    // AWS reads them too.
    let s = s.replace('+', " ");
    percent_decode_str(&s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| RouteError::BadQuery)
}

/// The one authority of the request: the `Host` header, and (HTTP/1.1 absolute-form, or
/// HTTP/2 `:authority`) the request target's, which must agree when both are present
/// (RFC 9112 §3.2.2 lets a server ignore `Host` for absolute-form; a proxy that routed by one
/// and verified the signature by the other served one bucket with a URL signed for another).
pub fn authority(uri: &Uri, h: &HeaderMap) -> Result<String, RouteError> {
    let mut hosts = h.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(RouteError::DuplicateHost);
    }
    let host = host
        .map(|v| v.to_str().map_err(|_| RouteError::MissingHost))
        .transpose()?;
    match (host, uri.authority().map(http::uri::Authority::as_str)) {
        (Some(host), Some(authority)) if !host.eq_ignore_ascii_case(authority) => {
            Err(RouteError::AuthorityMismatch {
                host: host.to_owned(),
                authority: authority.to_owned(),
            })
        }
        (Some(one), _) | (None, Some(one)) if !one.is_empty() => Ok(one.to_owned()),
        _ => Err(RouteError::MissingHost),
    }
}

/// Routes a request head.
pub fn route(
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    addressing: Addressing<'_>,
) -> Result<Routed, RouteError> {
    let authority = authority(uri, h)?;
    let path = percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| RouteError::BadPath)?;
    let path = path.strip_prefix('/').ok_or(RouteError::BadPath)?;

    let vhost_bucket = addressing
        .domain
        .and_then(|d| virtual_host_bucket(&authority, d))
        .or_else(|| aws_virtual_host_bucket(&authority));
    let virtual_host = vhost_bucket.is_some();
    let target = match vhost_bucket {
        // Host names are case-insensitive (RFC 9110 §4.2.3): `VAULT.s3...` is `vault`.
        Some(bucket) => object_or_bucket(&bucket.to_ascii_lowercase(), path, addressing)?,
        None => match path.split_once('/') {
            None if path.is_empty() => Target::Service,
            None => object_or_bucket(path, "", addressing)?,
            Some((bucket, key)) => object_or_bucket(bucket, key, addressing)?,
        },
    };

    let copy_source = copy_source(h, addressing)?;
    let query: Vec<(String, String)> = parse_query(uri.query())?
        .into_iter()
        .filter(|(k, _)| !is_dropped_param(k))
        .collect();
    let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let shape = Shape {
        method: method.as_str(),
        object: match target {
            Target::Service => None,
            Target::Bucket(_) => Some(false),
            Target::Object { .. } => Some(true),
        },
        copy: copy_source.is_some(),
    };
    let op = classify(shape, &names, value("list-type")).map_err(|e| match e {
        Unknown::Method => RouteError::MethodNotAllowed,
        Unknown::Parameter(p) => RouteError::UnknownParameter(p),
        Unknown::Missing(p) => RouteError::MissingParameter(p),
    })?;
    if op != Operation::CorsPreflight {
        check_values(&value)?;
    }
    if sets_user_metadata(op, h) && user_metadata_bytes(h) > MAX_USER_METADATA_BYTES {
        return Err(RouteError::MetadataTooLarge);
    }
    if copy_source.is_some() && !matches!(op, Operation::CopyObject | Operation::UploadPartCopy) {
        return Err(RouteError::UnknownParameter("x-amz-copy-source".into()));
    }
    let body = match op {
        Operation::PutObject | Operation::UploadPart | Operation::PostObject => BodyKind::Data,
        Operation::BucketConfig(BucketResource::Policy, _) => BodyKind::Json,
        _ => BodyKind::Xml,
    };
    Ok(Routed {
        authority,
        target,
        op,
        body,
        virtual_host,
        query,
        copy_source,
    })
}

/// Values the backend would otherwise read its own way: part numbers S3 refuses, and
/// negative or non-numeric limits.
fn check_values<'q>(value: &dyn Fn(&str) -> Option<&'q str>) -> Result<(), RouteError> {
    if let Some(n) = value("partNumber") {
        match n.parse::<u32>() {
            Ok(n) if (1..=MAX_PART_NUMBER).contains(&n) => {}
            _ => return Err(RouteError::InvalidPartNumber),
        }
    }
    for name in [
        "max-keys",
        "max-parts",
        "max-uploads",
        "max-buckets",
        "part-number-marker",
    ] {
        if value(name).is_some_and(|v| v.parse::<u32>().map_or(true, |n| n > MAX_LIST_LIMIT)) {
            return Err(RouteError::InvalidInteger(name));
        }
    }
    if value("prefix").is_some_and(|p| p.starts_with(RESERVED_PREFIX)) {
        return Err(RouteError::ReservedKey);
    }
    Ok(())
}

/// Whether the request gives the object the user metadata it carries: a CopyObject keeps the
/// source's unless told to replace it.
fn sets_user_metadata(op: Operation, h: &HeaderMap) -> bool {
    match op {
        Operation::PutObject | Operation::CreateMultipartUpload => true,
        Operation::CopyObject => h
            .get(headers::X_AMZ_METADATA_DIRECTIVE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE")),
        _ => false,
    }
}

/// The size S3 gives user metadata: the bytes of each name after `x-amz-meta-`, and of each
/// value, summed.
fn user_metadata_bytes(h: &HeaderMap) -> usize {
    h.iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix("x-amz-meta-")?;
            Some(name.len() + value.as_bytes().len())
        })
        .sum()
}

impl Routed {
    /// Refuses an upload that declares more than S3 takes in one request, before any of its
    /// body is read or forwarded (a backend would otherwise receive it, or part of it, first).
    pub fn check_declared_length(&self, declared: Option<u64>) -> Result<(), RouteError> {
        let one_upload = matches!(self.op, Operation::PutObject | Operation::UploadPart);
        if one_upload && declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
            return Err(RouteError::EntityTooLarge);
        }
        Ok(())
    }

    /// The `PutObject` that a verified form upload (`PostObject` on this bucket) becomes: its
    /// key (from the form, checked as a path's key is) and the metadata its fields set
    /// (`headers`, the PUT's), checked against S3's limit.
    pub fn form_upload(self, key: &str, headers: &HeaderMap) -> Result<Routed, RouteError> {
        let bucket = match (self.op, &self.target) {
            (Operation::PostObject, Target::Bucket(b)) => b.clone(),
            _ => return Err(RouteError::MethodNotAllowed),
        };
        if key.is_empty() {
            return Err(RouteError::MissingParameter("key"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(RouteError::KeyTooLong(key.len()));
        }
        if key.starts_with(RESERVED_PREFIX) {
            return Err(RouteError::ReservedKey);
        }
        if user_metadata_bytes(headers) > MAX_USER_METADATA_BYTES {
            return Err(RouteError::MetadataTooLarge);
        }
        Ok(Routed {
            target: Target::Object {
                bucket,
                key: key.to_owned(),
            },
            op: Operation::PutObject,
            body: BodyKind::Data,
            ..self
        })
    }
}

/// The one copy-source parser (see [`CopySource`]). More than one header is refused: which
/// one a backend reads is its own business.
fn copy_source(
    request_headers: &HeaderMap,
    addressing: Addressing<'_>,
) -> Result<Option<CopySource>, RouteError> {
    let mut values = request_headers.get_all(headers::X_AMZ_COPY_SOURCE).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RouteError::DuplicateCopySource);
    }
    let value = value.to_str().map_err(|_| RouteError::BadCopySource)?;
    let (path, query) = match value.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (value, None),
    };
    let path = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RouteError::BadCopySource)?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').ok_or(RouteError::BadCopySource)?;
    let Target::Object { bucket, key } = object_or_bucket(bucket, key, addressing)? else {
        return Err(RouteError::BadCopySource);
    };
    let version_id = match query.map(|q| q.split_once('=').unwrap_or((q, ""))) {
        None => None,
        Some(("versionId", id)) if !id.is_empty() && !id.contains('&') => {
            Some(decode_query(id).map_err(|_| RouteError::BadCopySource)?)
        }
        Some(_) => return Err(RouteError::BadCopySource),
    };
    Ok(Some(CopySource {
        bucket,
        key,
        version_id,
    }))
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

fn object_or_bucket(
    bucket: &str,
    key: &str,
    addressing: Addressing<'_>,
) -> Result<Target, RouteError> {
    validate_bucket(bucket, addressing.legacy_bucket_names)?;
    if key.is_empty() {
        return Ok(Target::Bucket(bucket.to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(RouteError::KeyTooLong(key.len()));
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(RouteError::ReservedKey);
    }
    Ok(Target::Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// S3's bucket naming rules: 3 to 63 bytes of lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`, not an IPv4 address, and none of the
/// prefixes and suffixes S3 reserves. Upper case would dodge exact-name rules on backends
/// that resolve buckets case-insensitively, so it is refused unless `legacy` (then names
/// of up to 255 bytes with upper case and `_` are read as they are, and rules match them
/// case-insensitively).
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
pub fn validate_bucket(b: &str, legacy: bool) -> Result<(), RouteError> {
    let edge = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = if legacy {
        (1..=255).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
            && edge(b.bytes().next())
    } else {
        (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
            && edge(b.bytes().next())
            && edge(b.bytes().last())
            && !b.contains("..")
            && b.parse::<std::net::Ipv4Addr>().is_err()
            && !["xn--", "sthree-", "amzn-s3-demo-"]
                .iter()
                .any(|p| b.starts_with(p))
            && !["-s3alias", "--ol-s3", ".mrap", "--x-s3"]
                .iter()
                .any(|s| b.ends_with(s))
    };
    if ok {
        Ok(())
    } else {
        Err(RouteError::InvalidBucketName)
    }
}

#[cfg(test)]
mod tests;
