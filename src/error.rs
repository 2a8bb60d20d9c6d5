//! The one place where errors become S3 XML responses.
//!
//! Every stage has its own `thiserror` enum and maps each variant to an [`S3Code`] with an
//! exhaustive `match`, so a new variant does not compile until it has an S3 code and a status.
//! [`ProxyError::into_response`] is the only renderer.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

/// The header that carries the request id of an S3 answer, errors included.
pub const X_AMZ_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-amz-request-id");

/// The S3 error codes the proxy itself produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Code {
    AccessDenied,
    /// A CORS preflight that no rule allows (S3's code for it; 403).
    AccessForbidden,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadDigest,
    /// S3's code for a CORS preflight without `Origin` or `Access-Control-Request-Method`.
    BadRequest,
    EntityTooLarge,
    EntityTooSmall,
    ExpiredToken,
    IncompleteBody,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidDigest,
    /// The object cannot serve the request as it is stored (403).
    InvalidObjectState,
    InvalidPart,
    /// Parts of a CompleteMultipartUpload not in ascending order (400).
    InvalidPartOrder,
    /// A `partNumber` the object does not have (416).
    InvalidPartNumber,
    /// A POST form's policy that is no base64 JSON policy document (400).
    InvalidPolicyDocument,
    /// A `Range` that starts at or beyond the end of the object (416).
    InvalidRange,
    InvalidRequest,
    /// A session token, which s3seal never issues (400).
    InvalidToken,
    InvalidURI,
    KeyTooLongError,
    /// A POST form body that is not well-formed `multipart/form-data` (400).
    MalformedPOSTRequest,
    MalformedXML,
    MaxMessageLengthExceeded,
    /// The fields of a POST form before its file exceed S3's 20 KiB (400).
    MaxPostPreDataLengthExceeded,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    MissingSecurityHeader,
    NoSuchCORSConfiguration,
    /// A copy source that does not exist (404).
    NoSuchKey,
    /// An upload id the upstream does not know (404).
    NoSuchUpload,
    NotImplemented,
    /// A copy source's condition does not hold (412).
    PreconditionFailed,
    RequestTimeTooSkewed,
    RequestTimeout,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    XAmzContentSHA256Mismatch,
    /// Not an AWS code: the upstream could not be reached or answered garbage (502).
    BadGateway,
    /// Not an AWS code: a plain-HTTP request reached a TLS-only listener.
    TlsRequired,
}

impl S3Code {
    pub fn as_str(self) -> &'static str {
        match self {
            S3Code::AccessDenied => "AccessDenied",
            S3Code::AccessForbidden => "AccessForbidden",
            S3Code::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            S3Code::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            S3Code::BadDigest => "BadDigest",
            S3Code::BadRequest => "BadRequest",
            S3Code::EntityTooLarge => "EntityTooLarge",
            S3Code::EntityTooSmall => "EntityTooSmall",
            S3Code::ExpiredToken => "ExpiredToken",
            S3Code::IncompleteBody => "IncompleteBody",
            S3Code::InternalError => "InternalError",
            S3Code::InvalidAccessKeyId => "InvalidAccessKeyId",
            S3Code::InvalidArgument => "InvalidArgument",
            S3Code::InvalidBucketName => "InvalidBucketName",
            S3Code::InvalidDigest => "InvalidDigest",
            S3Code::InvalidObjectState => "InvalidObjectState",
            S3Code::InvalidPart => "InvalidPart",
            S3Code::InvalidPartOrder => "InvalidPartOrder",
            S3Code::InvalidPartNumber => "InvalidPartNumber",
            S3Code::InvalidPolicyDocument => "InvalidPolicyDocument",
            S3Code::InvalidRange => "InvalidRange",
            S3Code::InvalidRequest => "InvalidRequest",
            S3Code::InvalidToken => "InvalidToken",
            S3Code::InvalidURI => "InvalidURI",
            S3Code::KeyTooLongError => "KeyTooLongError",
            S3Code::MalformedPOSTRequest => "MalformedPOSTRequest",
            S3Code::MalformedXML => "MalformedXML",
            S3Code::MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            S3Code::MaxPostPreDataLengthExceeded => "MaxPostPreDataLengthExceeded",
            S3Code::MetadataTooLarge => "MetadataTooLarge",
            S3Code::MethodNotAllowed => "MethodNotAllowed",
            S3Code::MissingContentLength => "MissingContentLength",
            S3Code::MissingSecurityHeader => "MissingSecurityHeader",
            S3Code::NoSuchCORSConfiguration => "NoSuchCORSConfiguration",
            S3Code::NoSuchKey => "NoSuchKey",
            S3Code::NoSuchUpload => "NoSuchUpload",
            S3Code::NotImplemented => "NotImplemented",
            S3Code::PreconditionFailed => "PreconditionFailed",
            S3Code::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            S3Code::RequestTimeout => "RequestTimeout",
            S3Code::ServiceUnavailable => "ServiceUnavailable",
            S3Code::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            S3Code::SlowDown => "SlowDown",
            S3Code::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            S3Code::BadGateway => "BadGateway",
            S3Code::TlsRequired => "TlsRequired",
        }
    }

    /// Whether the code refuses the client's credentials, signature or bucket rights (as
    /// opposed to a malformed request or a failure of the proxy or the upstream). Counted in
    /// `s3seal_auth_failures_total`.
    pub fn is_auth_failure(self) -> bool {
        match self {
            S3Code::AccessDenied
            | S3Code::AuthorizationHeaderMalformed
            | S3Code::AuthorizationQueryParametersError
            | S3Code::ExpiredToken
            | S3Code::InvalidAccessKeyId
            | S3Code::InvalidToken
            | S3Code::RequestTimeTooSkewed
            | S3Code::SignatureDoesNotMatch => true,
            S3Code::AccessForbidden
            | S3Code::BadDigest
            | S3Code::BadRequest
            | S3Code::EntityTooLarge
            | S3Code::EntityTooSmall
            | S3Code::IncompleteBody
            | S3Code::InternalError
            | S3Code::InvalidArgument
            | S3Code::InvalidBucketName
            | S3Code::InvalidDigest
            | S3Code::InvalidObjectState
            | S3Code::InvalidPart
            | S3Code::InvalidPartNumber
            | S3Code::InvalidPartOrder
            | S3Code::InvalidPolicyDocument
            | S3Code::InvalidRange
            | S3Code::InvalidRequest
            | S3Code::InvalidURI
            | S3Code::KeyTooLongError
            | S3Code::MalformedPOSTRequest
            | S3Code::MalformedXML
            | S3Code::MaxMessageLengthExceeded
            | S3Code::MaxPostPreDataLengthExceeded
            | S3Code::MetadataTooLarge
            | S3Code::MethodNotAllowed
            | S3Code::MissingContentLength
            | S3Code::MissingSecurityHeader
            | S3Code::NoSuchCORSConfiguration
            | S3Code::NoSuchKey
            | S3Code::NoSuchUpload
            | S3Code::NotImplemented
            | S3Code::PreconditionFailed
            | S3Code::RequestTimeout
            | S3Code::ServiceUnavailable
            | S3Code::SlowDown
            | S3Code::XAmzContentSHA256Mismatch
            | S3Code::BadGateway
            | S3Code::TlsRequired => false,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            S3Code::AccessDenied
            | S3Code::AccessForbidden
            | S3Code::InvalidObjectState
            | S3Code::InvalidAccessKeyId
            | S3Code::RequestTimeTooSkewed
            | S3Code::SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            S3Code::AuthorizationHeaderMalformed
            | S3Code::AuthorizationQueryParametersError
            | S3Code::BadDigest
            | S3Code::BadRequest
            | S3Code::EntityTooLarge
            | S3Code::EntityTooSmall
            | S3Code::ExpiredToken
            | S3Code::IncompleteBody
            | S3Code::InvalidArgument
            | S3Code::InvalidBucketName
            | S3Code::InvalidDigest
            | S3Code::InvalidPart
            | S3Code::InvalidPartOrder
            | S3Code::InvalidPolicyDocument
            | S3Code::InvalidRequest
            | S3Code::InvalidToken
            | S3Code::InvalidURI
            | S3Code::KeyTooLongError
            | S3Code::MalformedPOSTRequest
            | S3Code::MalformedXML
            | S3Code::MaxMessageLengthExceeded
            | S3Code::MaxPostPreDataLengthExceeded
            | S3Code::MetadataTooLarge
            | S3Code::MissingSecurityHeader
            | S3Code::RequestTimeout
            | S3Code::XAmzContentSHA256Mismatch
            | S3Code::TlsRequired => StatusCode::BAD_REQUEST,
            S3Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            S3Code::InvalidRange | S3Code::InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            S3Code::NoSuchCORSConfiguration | S3Code::NoSuchKey | S3Code::NoSuchUpload => {
                StatusCode::NOT_FOUND
            }
            S3Code::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            S3Code::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            S3Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            S3Code::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            S3Code::BadGateway => StatusCode::BAD_GATEWAY,
            S3Code::ServiceUnavailable | S3Code::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error of one stage, as the client will see it.
pub trait S3Error: std::error::Error + Send + Sync + 'static {
    fn code(&self) -> S3Code;
}

/// Any error the proxy answers with, tagged by where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's request is malformed or not authorised (4xx).
    #[error("{0}")]
    Downstream(Box<dyn S3Error>),
    /// The upstream failed in a way that is not an S3 answer (502/504).
    #[error("{0}")]
    Upstream(Box<dyn S3Error>),
    /// A bug or a local resource failure (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn downstream(e: impl S3Error) -> Self {
        ProxyError::Downstream(Box::new(e))
    }

    pub fn upstream(e: impl S3Error) -> Self {
        ProxyError::Upstream(Box::new(e))
    }

    pub fn code(&self) -> S3Code {
        match self {
            ProxyError::Downstream(e) | ProxyError::Upstream(e) => e.code(),
            ProxyError::Internal(_) => S3Code::InternalError,
        }
    }

    /// The message shown to the client. Internal details stay in the log.
    fn client_message(&self) -> String {
        match self {
            ProxyError::Downstream(e) | ProxyError::Upstream(e) => e.to_string(),
            ProxyError::Internal(_) => "We encountered an internal error. Please try again.".into(),
        }
    }

    /// Renders the S3 error document. `resource` is the request path; `request_id` is also
    /// sent as `x-amz-request-id` so a user can find the matching log line.
    pub fn into_response(self, resource: &str, request_id: &str) -> Response<Body> {
        let code = self.code();
        error_response(code, &self.client_message(), resource, request_id)
    }
}

/// An S3 error response built from its parts. Used by [`ProxyError::into_response`] and by the
/// accept stage, which answers plain HTTP before any request is parsed.
pub fn error_response(
    code: S3Code,
    message: &str,
    resource: &str,
    request_id: &str,
) -> Response<Body> {
    let xml = error_xml(code, message, resource, request_id);
    let mut resp = Response::new(body::full(Bytes::from(xml)));
    *resp.status_mut() = code.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(X_AMZ_REQUEST_ID, v);
    }
    resp
}

/// The XML body of an S3 error.
pub fn error_xml(code: S3Code, message: &str, resource: &str, request_id: &str) -> String {
    document(code.as_str(), message, Some(resource), request_id)
}

fn document(code: &str, message: &str, resource: Option<&str>, request_id: &str) -> String {
    use quick_xml::escape::escape;
    let resource = resource.map_or_else(String::new, |r| {
        format!("<Resource>{}</Resource>", escape(r))
    });
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{resource}<RequestId>{}</RequestId></Error>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

// === Upstream refusals relayed without their document ===

/// The longest S3 error code relayed from an upstream. AWS's longest are under 50 characters.
const MAX_UPSTREAM_CODE_LEN: usize = 64;

/// An S3 error code as an upstream wrote it: 1 to [`MAX_UPSTREAM_CODE_LEN`] ASCII letters
/// and digits, as every S3 code is, so that it carries nothing else of the document it was
/// read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCode(String);

impl UpstreamCode {
    pub fn new(code: &str) -> Option<Self> {
        let valid = (1..=MAX_UPSTREAM_CODE_LEN).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| UpstreamCode(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An upstream's refusal with the proxy's document in place of the upstream's: the same
/// status, headers and code, a message of the proxy's, and the upstream's request id (the one
/// its `x-amz-request-id` header carries). Used for requests that carried key material: AWS's
/// `SignatureDoesNotMatch` document holds the canonical request, every signed header value
/// (an SSE-C key) included.
/// Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html>
pub fn withheld_error_response(
    mut parts: http::response::Parts,
    code: &UpstreamCode,
) -> Response<Body> {
    let request_id = parts
        .headers
        .get(X_AMZ_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let message = format!(
        "The storage backend refused the request ({} {}). Its error document is withheld because the request carried an encryption key.",
        parts.status.as_u16(),
        code.as_str()
    );
    let xml = document(code.as_str(), &message, None, request_id);
    // The headers that described the upstream's document; hyper sets the new length.
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        http::HeaderName::from_static("content-md5"),
    ] {
        parts.headers.remove(name);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Response::from_parts(parts, body::full(Bytes::from(xml)))
}

#[cfg(test)]
mod tests;
