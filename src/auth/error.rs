//! Why a request was not authenticated, worded as AWS words it where AWS has a message.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>

use crate::body::BoxError;
use crate::error::{S3Code, S3Error};
use crate::s3::post::PostError;

use super::checksum::ChecksumAlgorithm;
use super::chunked::ChunkedError;

/// Everything `verify` and [`super::VerifiedBody`] can refuse. Clone, so that the failure seen by
/// the body stream can also be kept for the proxy to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    // --- which mechanism ---
    #[error("Access Denied: the request is not signed (no Authorization header and no X-Amz-Signature query parameter).")]
    MissingAuthentication,
    #[error("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified.")]
    ConflictingAuthentication,
    /// SigV4a (header, presigned or chunk signatures), or a scheme S3 never took.
    #[error("The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")]
    UnsupportedAlgorithm,

    // --- parsing the credentials ---
    #[error("The authorization header is malformed; {0}")]
    MalformedAuthorization(String),
    /// SigV2 query authentication that S3 refuses with `AccessDenied` (a missing parameter,
    /// an `Expires` that is no time), in S3's words.
    #[error("{0}")]
    SigV2Query(String),
    /// Worded as S3 words each case (`X-Amz-Expires must be non-negative`, ...).
    #[error("{0}")]
    MalformedQueryAuthentication(String),
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// A session token (`x-amz-security-token`, header or query): s3seal issues none.
    #[error("The provided token is malformed or otherwise invalid.")]
    InvalidToken,

    // --- time ---
    #[error("AWS authentication requires a valid Date or x-amz-date header.")]
    MissingDate,
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    #[error("Request has expired")]
    RequestExpired,
    #[error("Request is not valid yet")]
    RequestNotYetValid,

    // --- signed headers ---
    #[error("There were headers present in the request which were not signed: {0}")]
    HeadersNotSigned(String),
    #[error("The header '{0}' must be included in SignedHeaders.")]
    RequiredHeaderNotSigned(&'static str),
    #[error("The header '{0}' is listed in SignedHeaders but is not present in the request.")]
    SignedHeaderAbsent(String),
    #[error("Missing required header for this request: {0}")]
    MissingRequiredHeader(&'static str),
    #[error("Couldn't parse the specified URI: invalid percent-encoding.")]
    InvalidUri,

    // --- the signature ---
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatch,
    #[error("The request signature we calculated does not match the signature you provided for chunk {0} of the aws-chunked body. Check your key and signing method.")]
    ChunkSignatureDoesNotMatch(u64),
    #[error("The request signature we calculated does not match the x-amz-trailer-signature you provided. Check your key and signing method.")]
    TrailerSignatureDoesNotMatch,

    // --- the payload ---
    #[error("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a hex SHA-256 digest.")]
    InvalidContentSha256,
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
    #[error("Invalid value for header {name}: {reason}")]
    InvalidHeader {
        name: &'static str,
        reason: &'static str,
    },
    #[error("aws-chunked uploads require the x-amz-decoded-content-length header.")]
    MissingDecodedContentLength,
    /// S3's words; the counts are for the log (`Debug`).
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header."
    )]
    IncompleteBody { expected: u64, received: u64 },
    /// The client stopped sending its body (`[server] body_timeout_secs`); S3's words.
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
    #[error("The request body is longer than the {expected} bytes declared.")]
    BodyTooLong { expected: u64 },
    #[error("Please reduce your request rate: this connection's requests already hold {limit} bytes of aws-chunked data awaiting chunk signatures. Send fewer uploads at once on one connection, or smaller chunks.")]
    BufferBudgetExhausted { limit: u64 },
    #[error(transparent)]
    Chunked(#[from] ChunkedError),

    // --- checksums ---
    #[error("The Content-MD5 you specified was invalid.")]
    InvalidContentMd5,
    #[error("The Content-MD5 you specified did not match what we received.")]
    ContentMd5Mismatch,
    #[error("Value for {} header is invalid.", .0.header_name())]
    InvalidChecksum(ChecksumAlgorithm),
    #[error("The {} you specified did not match the calculated checksum.", .0.display_name())]
    ChecksumMismatch(ChecksumAlgorithm),
    #[error("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")]
    MultipleChecksums,
    #[error("The value of x-amz-trailer is not supported: expecting one of x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or -sha256, with a STREAMING-*-TRAILER x-amz-content-sha256.")]
    InvalidTrailerDeclaration,
    #[error("The trailer '{0}' was not declared in x-amz-trailer, or was sent twice.")]
    UndeclaredTrailer(String),
    #[error("The trailer '{0}' declared in x-amz-trailer was not sent.")]
    MissingTrailer(&'static str),

    // --- browser form uploads ---
    /// A form upload's form or policy, refused as S3 refuses it.
    #[error("{0}")]
    Post(#[from] PostError),
}

impl S3Error for AuthError {
    fn code(&self) -> S3Code {
        match self {
            AuthError::MissingAuthentication
            | AuthError::SigV2Query(_)
            | AuthError::RequestExpired
            | AuthError::RequestNotYetValid
            | AuthError::MissingDate
            | AuthError::HeadersNotSigned(_)
            | AuthError::RequiredHeaderNotSigned(_) => S3Code::AccessDenied,
            AuthError::ConflictingAuthentication
            | AuthError::InvalidContentSha256
            | AuthError::InvalidHeader { .. } => S3Code::InvalidArgument,
            AuthError::UnsupportedAlgorithm
            | AuthError::MissingRequiredHeader(_)
            | AuthError::InvalidChecksum(_)
            | AuthError::MultipleChecksums
            | AuthError::InvalidTrailerDeclaration
            | AuthError::UndeclaredTrailer(_) => S3Code::InvalidRequest,
            AuthError::MalformedAuthorization(_) => S3Code::AuthorizationHeaderMalformed,
            AuthError::MalformedQueryAuthentication(_) => S3Code::AuthorizationQueryParametersError,
            AuthError::InvalidAccessKeyId => S3Code::InvalidAccessKeyId,
            AuthError::InvalidToken => S3Code::InvalidToken,
            AuthError::RequestTimeTooSkewed => S3Code::RequestTimeTooSkewed,
            AuthError::SignedHeaderAbsent(_)
            | AuthError::SignatureDoesNotMatch
            | AuthError::ChunkSignatureDoesNotMatch(_)
            | AuthError::TrailerSignatureDoesNotMatch => S3Code::SignatureDoesNotMatch,
            AuthError::InvalidUri => S3Code::InvalidURI,
            AuthError::ContentSha256Mismatch => S3Code::XAmzContentSHA256Mismatch,
            AuthError::MissingDecodedContentLength => S3Code::MissingContentLength,
            AuthError::IncompleteBody { .. }
            | AuthError::BodyTooLong { .. }
            | AuthError::MissingTrailer(_) => S3Code::IncompleteBody,
            AuthError::Chunked(e) => match e {
                ChunkedError::Truncated => S3Code::IncompleteBody,
                ChunkedError::MetaTooLong
                | ChunkedError::InvalidChunkMeta(_)
                | ChunkedError::ChunkTooLarge { .. }
                | ChunkedError::MissingCrlf
                | ChunkedError::TrailersTooLong
                | ChunkedError::InvalidTrailer(_)
                | ChunkedError::TrailingData => S3Code::InvalidRequest,
            },
            AuthError::BufferBudgetExhausted { .. } => S3Code::SlowDown,
            AuthError::RequestTimeout => S3Code::RequestTimeout,
            AuthError::InvalidContentMd5 => S3Code::InvalidDigest,
            AuthError::ContentMd5Mismatch | AuthError::ChecksumMismatch(_) => S3Code::BadDigest,
            AuthError::Post(e) => e.code(),
        }
    }
}

/// The error a [`super::VerifiedBody`] stream ends with.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A proof failed; the same error is in [`super::VerifiedBody::failure`].
    #[error(transparent)]
    Verification(AuthError),
    /// Reading the client's body failed (disconnect, protocol error, a stall).
    #[error("reading the request body from the client failed")]
    Client(#[source] BoxError),
}

impl S3Error for BodyError {
    fn code(&self) -> S3Code {
        match self {
            BodyError::Verification(e) => e.code(),
            BodyError::Client(e) if crate::body::is_stalled(e.as_ref()) => S3Code::RequestTimeout,
            // The client stopped sending: what S3 answers to a body cut short.
            BodyError::Client(_) => S3Code::IncompleteBody,
        }
    }
}
