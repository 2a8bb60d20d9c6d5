//! Authentication of client requests (`SigV4`, and `SigV2` unless switched off), and the body
//! that proves itself as it streams.
//!
//! `verify` turns a raw request into a [`Verified`] one. It checks everything that can be checked
//! from the head (signature, scope, time, signed headers); the body's own proofs (payload hash,
//! chunk signatures, trailing checksums, Content-MD5) are checked by [`VerifiedBody`] as it
//! streams, and the last bytes are held back until they hold, so the upstream never receives a
//! complete body that was not verified.
//!
//! Pure: no I/O, no clock (the caller passes `now`), no logging of secrets.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html> (`SigV2`)

mod budget;
pub mod checksum;
pub mod chunked;
pub mod credentials;
mod error;
pub mod post;
pub mod presigned;
pub mod sigv2;
pub mod sigv4;
mod verified_body;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, DATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use http_body::Body;
use subtle::ConstantTimeEq;

use crate::s3::headers::{
    CONTENT_MD5, X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_DECODED_CONTENT_LENGTH,
    X_AMZ_SECURITY_TOKEN, X_AMZ_TRAILER,
};

use checksum::ChecksumAlgorithm;
use sigv4::{Credential, Signature};
use verified_body::{BodyPlan, ChunkSigning, Encoding, ExpectedChecksum};

pub use budget::BufferBudget;
pub use credentials::{BucketPatterns, ClientIdentity, ClientKeys, Grants, SecretKey};
pub use error::{AuthError, BodyError};
pub use verified_body::VerifiedBody;

/// How far a request's date may be from our clock: 15 minutes, as S3.
///
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html#RESTAuthenticationTimeStamp>
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// What `verify` needs to know about the listener.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// The region clients must sign for.
    pub region: &'a str,
    pub now: SystemTime,
    /// Accept Signature Version 2 (`[server] sigv2`).
    pub sigv2: bool,
    /// The bucket named by the host (virtual-hosted style), which SigV2 signs as the first
    /// segment of its resource.
    pub virtual_host_bucket: Option<&'a str>,
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A client key, whose signature verified.
    Client(Arc<ClientIdentity>),
    /// Nobody: the request carries no authentication at all ([`is_anonymous`]). Only buckets
    /// open to anonymous reads serve it (`authz`); everywhere else it is refused as before.
    Anonymous,
}

impl Principal {
    /// The client key, unless the request is anonymous.
    pub fn client(&self) -> Option<&Arc<ClientIdentity>> {
        match self {
            Principal::Client(id) => Some(id),
            Principal::Anonymous => None,
        }
    }
}

/// A request whose head is authenticated (or carries no authentication at all), and whose
/// body verifies itself as it is read.
pub struct Verified<B> {
    /// The head exactly as received.
    pub parts: Parts,
    pub principal: Principal,
    pub body: VerifiedBody<B>,
    /// Decoded payload length (`Content-Length`, or `x-amz-decoded-content-length` for
    /// aws-chunked), `None` if the client did not declare it.
    pub content_length: Option<u64>,
    pub presigned: bool,
}

impl<B> std::fmt::Debug for Verified<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("parts", &self.parts)
            .field(
                "principal",
                &self.principal.client().map(|id| id.access_key_id.as_str()),
            )
            .field("body", &self.body)
            .field("content_length", &self.content_length)
            .field("presigned", &self.presigned)
            .finish()
    }
}

/// Authenticates a request with `SigV4` or `SigV2` (header or presigned URL) and wraps its
/// body. The body's buffered bytes are charged to the [`BufferBudget`] in the request's
/// extensions, if any (the server puts its connection's there).
pub fn verify<B: Body>(
    req: http::Request<B>,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
) -> Result<Verified<B>, AuthError> {
    let (parts, body) = req.into_parts();
    let auth = authenticate(&parts, keys, cx)?;
    let plan = body_plan(&parts.headers, auth.payload, auth.signing)?;
    let content_length = plan.expected_len;
    let charge = parts
        .extensions
        .get::<BufferBudget>()
        .map(BufferBudget::charge)
        .unwrap_or_default();
    Ok(Verified {
        body: VerifiedBody::new(body, plan, charge)?,
        parts,
        principal: auth.principal,
        content_length,
        presigned: auth.presigned,
    })
}

// === The head ===

/// What the client claims, from the `Authorization` header or the presigned query.
struct Claim {
    credential: Credential,
    amz_date: String,
    signed_headers: String,
    signature: Signature,
    presigned: bool,
}

impl Claim {
    /// A malformed-credentials error of the kind matching how they were sent.
    fn malformed(&self, reason: String) -> AuthError {
        if self.presigned {
            AuthError::MalformedQueryAuthentication(reason)
        } else {
            AuthError::MalformedAuthorization(reason)
        }
    }

    /// A wrong credential scope, worded as S3 words it for each mechanism.
    fn malformed_credential(&self, reason: String) -> AuthError {
        if self.presigned {
            AuthError::MalformedQueryAuthentication(format!(
                "Error parsing the X-Amz-Credential parameter; {reason}"
            ))
        } else {
            AuthError::MalformedAuthorization(reason)
        }
    }
}

struct Authenticated {
    principal: Principal,
    presigned: bool,
    payload: Payload,
    /// For signed aws-chunked bodies: what chunk signatures chain from.
    signing: Option<ChunkSigning>,
}

fn authenticate(
    parts: &Parts,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
) -> Result<Authenticated, AuthError> {
    let query = parts.uri.query().unwrap_or("");
    let pairs = sigv4::decode_query(query).map_err(|_| AuthError::InvalidUri)?;
    let mut authorization = parts.headers.get_all(AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(AuthError::MalformedAuthorization(
            "more than one Authorization header".into(),
        ));
    }
    let claim = match (
        header,
        presigned::is_present(&pairs),
        is_sigv2_query(&pairs),
    ) {
        // Two mechanisms at once, SigV2 query parameters beside SigV4 (header or presigned)
        // included: S3 answers 400 InvalidArgument, "Only one auth mechanism allowed; only
        // the X-Amz-Algorithm query parameter, Signature query string parameter or the
        // Authorization header should be specified", and so does the proxy. Letting the
        // unverified scheme through would forward it to a backend that might honour it.
        (Some(_), true, _) | (Some(_), _, true) | (None, true, true) => {
            return Err(AuthError::ConflictingAuthentication)
        }
        // Signature Version 2 query authentication (botocore's default for presigned URLs).
        (None, false, true) => return authenticate_v2(parts, &pairs, keys, cx, None),
        (None, false, false) if is_anonymous(&parts.headers, &pairs) => {
            return Ok(Authenticated {
                principal: Principal::Anonymous,
                presigned: false,
                payload: Payload::Unsigned,
                signing: None,
            })
        }
        (None, false, false) => return Err(AuthError::MissingAuthentication),
        (Some(value), false, false) if is_sigv2_header(value) => {
            return authenticate_v2(parts, &pairs, keys, cx, Some(value));
        }
        (Some(value), false, false) => header_claim(value, &parts.headers, cx.now)?,
        (None, true, false) => query_claim(&pairs, cx.now)?,
    };
    // s3seal issues no temporary credentials, so no session token is valid here, however
    // well signed: a token must not reach a backend that could resolve it to other rights.
    if carries_security_token(&parts.headers, &pairs) {
        return Err(AuthError::InvalidToken);
    }

    let identity = keys
        .get(&claim.credential.access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    check_scope(&claim, cx.region)?;
    let signed = sigv4::parse_signed_headers(&claim.signed_headers)
        .map_err(|e| claim.malformed(e.into()))?;
    check_signed_headers(&parts.headers, &signed, claim.presigned)?;

    let payload_hash = match parts.headers.get(X_AMZ_CONTENT_SHA256) {
        Some(v) => v.to_str().map_err(|_| AuthError::InvalidContentSha256)?,
        // Presigned URLs cannot know the payload: S3 treats it as unsigned.
        None if claim.presigned => UNSIGNED_PAYLOAD,
        None => return Err(AuthError::MissingRequiredHeader("x-amz-content-sha256")),
    };
    let payload = Payload::parse(payload_hash)?;

    let canonical_uri =
        sigv4::canonical_uri(parts.uri.path()).map_err(|_| AuthError::InvalidUri)?;
    let skip = claim.presigned.then_some(presigned::X_AMZ_SIGNATURE);
    let canonical_query = sigv4::canonical_query(query, skip).map_err(|_| AuthError::InvalidUri)?;
    let authority = parts.uri.authority().map(http::uri::Authority::as_str);
    let canonical_headers = sigv4::canonical_headers(&parts.headers, authority, &signed)
        .map_err(|missing| AuthError::SignedHeaderAbsent(missing.0))?;
    let scope = sigv4::scope(&claim.credential.date, cx.region);
    let key = identity
        .secret
        .signing_key(&claim.credential.date, cx.region);
    let sign_with_uri = |uri: &str| {
        let canonical_request = sigv4::canonical_request(
            parts.method.as_str(),
            uri,
            &canonical_query,
            &canonical_headers,
            &claim.signed_headers,
            payload_hash,
        );
        let string_to_sign = sigv4::string_to_sign(&claim.amz_date, &scope, &canonical_request);
        key.sign(string_to_sign.as_bytes())
    };
    let mut computed = sign_with_uri(&canonical_uri);
    // S3 canonicalises the path by encoding each byte once, which is what the SDKs sign. A
    // client that encodes more than needed (`%2F` for a slash inside a key, as browsers'
    // `encodeURIComponent` does) signs the path exactly as sent; accept that form too.
    let raw_path = parts.uri.path();
    if !bool::from(computed.ct_eq(&claim.signature)) && raw_path != canonical_uri {
        computed = sign_with_uri(raw_path);
    }
    if !bool::from(computed.ct_eq(&claim.signature)) {
        return Err(AuthError::SignatureDoesNotMatch);
    }

    let signing =
        matches!(payload, Payload::Streaming { signed: true, .. }).then(|| ChunkSigning {
            key,
            amz_date: claim.amz_date.clone(),
            scope,
            seed: computed,
        });
    Ok(Authenticated {
        principal: Principal::Client(Arc::clone(identity)),
        presigned: claim.presigned,
        payload,
        signing,
    })
}

// === Signature Version 2 ===

/// `Authorization: AWS ...`.
fn is_sigv2_header(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .strip_prefix(sigv2::SCHEME.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b' '))
}

/// Authenticates a SigV2 request: by its `Authorization` header when `header` is given, else
/// by its query. SigV2 signs no payload: the body is taken as unsigned (a Content-MD5, or an
/// `x-amz-content-sha256` digest, is still verified as it streams), and the request goes
/// upstream re-signed with SigV4 like every other.
fn authenticate_v2(
    parts: &Parts,
    pairs: &sigv4::QueryPairs,
    keys: &ClientKeys,
    cx: &AuthContext<'_>,
    header: Option<&HeaderValue>,
) -> Result<Authenticated, AuthError> {
    if !cx.sigv2 {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    if carries_security_token(&parts.headers, pairs) {
        return Err(AuthError::InvalidToken);
    }
    let (key_id, signature, date_line) = if let Some(value) = header {
        let (key_id, signature) = value
            .to_str()
            .ok()
            .and_then(sigv2::parse_authorization)
            .ok_or_else(|| {
                AuthError::MalformedAuthorization(
                    "expecting \"AWS <AccessKeyId>:<Signature>\"".into(),
                )
            })?;
        // A signature that is no HMAC-SHA1 in Base64 matches nothing.
        let signature =
            sigv2::decode_signature(signature).ok_or(AuthError::SignatureDoesNotMatch)?;
        let date = sigv2_request_time(&parts.headers)?;
        if date > cx.now + MAX_CLOCK_SKEW || cx.now > date + MAX_CLOCK_SKEW {
            return Err(AuthError::RequestTimeTooSkewed);
        }
        let date_line = sigv2::date_line(&parts.headers).to_owned();
        (key_id.to_owned(), signature, date_line)
    } else {
        let get = |name: &str| -> Result<String, AuthError> {
            let mut values = pairs.iter().filter(|(n, _)| n == name.as_bytes());
            match (values.next(), values.next()) {
                (Some((_, v)), None) => String::from_utf8(v.clone())
                    .map_err(|_| AuthError::SigV2Query(SIGV2_QUERY_PARAMETERS_MISSING.into())),
                _ => Err(AuthError::SigV2Query(SIGV2_QUERY_PARAMETERS_MISSING.into())),
            }
        };
        let key_id = get(sigv2::ACCESS_KEY_ID)?;
        let expires = get(sigv2::EXPIRES)?;
        let signature = get(sigv2::SIGNATURE)?;
        let at = expires.parse::<u64>().map_err(|_| {
            AuthError::SigV2Query(format!(
                "Invalid date (should be seconds since epoch): {expires}"
            ))
        })?;
        // A time past what the clock can hold is in the future (no panic on overflow).
        let deadline = std::time::UNIX_EPOCH.checked_add(Duration::from_secs(at));
        if deadline.is_some_and(|t| cx.now > t) {
            return Err(AuthError::RequestExpired);
        }
        let signature =
            sigv2::decode_signature(&signature).ok_or(AuthError::SignatureDoesNotMatch)?;
        (key_id, signature, expires)
    };
    let identity = keys.get(&key_id).ok_or(AuthError::InvalidAccessKeyId)?;
    let path = parts.uri.path();
    let mut paths = vec![path.to_owned()];
    // A path-style request for a bucket (`/bucket`) is signed as the reference writes a
    // bucket's resource, `/bucket/` (botocore does so).
    if cx.virtual_host_bucket.is_none() && path.len() > 1 && !path[1..].contains('/') {
        paths.push(format!("{path}/"));
    }
    let matches = |path: &str| -> Result<bool, AuthError> {
        let resource = sigv2::canonical_resource(
            cx.virtual_host_bucket,
            path,
            parts.uri.query().unwrap_or(""),
        )
        .map_err(|_| AuthError::InvalidUri)?;
        let string_to_sign =
            sigv2::string_to_sign(parts.method.as_str(), &parts.headers, &date_line, &resource);
        let computed = sigv2::sign(identity.secret.expose(), &string_to_sign);
        Ok(bool::from(computed.ct_eq(&signature)))
    };
    let mut verified = false;
    for path in &paths {
        verified |= matches(path)?;
    }
    if !verified {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    let payload = match parts.headers.get(X_AMZ_CONTENT_SHA256) {
        None => Payload::Unsigned,
        Some(v) => {
            match Payload::parse(v.to_str().map_err(|_| AuthError::InvalidContentSha256)?)? {
                // Signed chunks chain from a SigV4 seed signature, which SigV2 has not.
                Payload::Streaming { signed: true, .. } => {
                    return Err(AuthError::InvalidContentSha256)
                }
                other => other,
            }
        }
    };
    Ok(Authenticated {
        principal: Principal::Client(Arc::clone(identity)),
        presigned: header.is_none(),
        payload,
        signing: None,
    })
}

/// S3's answer to SigV2 query authentication without one of its parameters.
const SIGV2_QUERY_PARAMETERS_MISSING: &str =
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters";

/// The time of a SigV2 header-signed request: `x-amz-date`, else `Date`, both in the HTTP
/// date format (RFC 7231 §7.1.1.1); AWS's examples write the zone `+0000`, as RFC 1123 allows.
fn sigv2_request_time(headers: &HeaderMap) -> Result<SystemTime, AuthError> {
    let value = headers
        .get(X_AMZ_DATE)
        .or_else(|| headers.get(DATE))
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingDate)?
        .trim();
    let gmt = value
        .strip_suffix(" +0000")
        .map_or_else(|| value.to_owned(), |v| format!("{v} GMT"));
    httpdate::parse_http_date(&gmt).map_err(|_| AuthError::MissingDate)
}

/// The query parameters of Signature Version 2 query-string authentication.
///
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html#RESTAuthenticationQueryStringAuth>
const SIGV2_QUERY_PARAMETERS: [&str; 3] = ["AWSAccessKeyId", "Signature", "Expires"];

/// The query parameter that carries a session token in a presigned URL.
///
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>
const X_AMZ_SECURITY_TOKEN_PARAMETER: &str = "X-Amz-Security-Token";

/// Whether the query carries any SigV2 authentication parameter. S3 matches parameter names
/// exactly; this ignores case, so that a lenient backend is never handed one.
fn is_sigv2_query(pairs: &sigv4::QueryPairs) -> bool {
    pairs.iter().any(|(name, _)| {
        SIGV2_QUERY_PARAMETERS
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// Whether a request carries no authentication at all, nor anything that looks like an
/// attempt at it: no `Authorization` header (checked by the caller), no `x-amz-*` header
/// (`x-amz-date`, `x-amz-content-sha256` and a session token are parts of a signature; any
/// other would go upstream under the proxy's signature unsigned by anyone), and no query
/// parameter of either query mechanism in any case (`X-Amz-*`, `AWSAccessKeyId`, `Signature`,
/// `Expires`). Anything else is verified in full, so a broken signature is refused and never
/// served as anonymous.
///
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html#example-bucket-policies-anonymous-user>
/// (anonymous requests are the unsigned ones).
fn is_anonymous(headers: &HeaderMap, pairs: &sigv4::QueryPairs) -> bool {
    let amz = |name: &[u8]| {
        name.get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-amz-"))
    };
    !headers.keys().any(|n| amz(n.as_str().as_bytes()))
        && !is_sigv2_query(pairs)
        && !pairs.iter().any(|(name, _)| amz(name))
}

/// Whether the request carries a session token, as a header or (case ignored, as above) a
/// query parameter.
fn carries_security_token(headers: &HeaderMap, pairs: &sigv4::QueryPairs) -> bool {
    headers.contains_key(X_AMZ_SECURITY_TOKEN)
        || pairs
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(X_AMZ_SECURITY_TOKEN_PARAMETER.as_bytes()))
}

fn header_claim(
    value: &HeaderValue,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Claim, AuthError> {
    use sigv4::AuthorizationParseError as E;
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedAuthorization("the header is not ASCII".into()))?;
    let parsed = sigv4::parse_authorization(value).map_err(|e| match e {
        E::UnsupportedScheme => AuthError::UnsupportedAlgorithm,
        E::Malformed(reason) => AuthError::MalformedAuthorization(reason.into()),
    })?;
    let (amz_date, date) = request_date(headers)?;
    if date > now + MAX_CLOCK_SKEW || now > date + MAX_CLOCK_SKEW {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    Ok(Claim {
        credential: parsed.credential,
        amz_date,
        signed_headers: parsed.signed_headers.to_owned(),
        signature: parsed.signature,
        presigned: false,
    })
}

/// `x-amz-date`, or else `Date`: as the string to sign wants it, and as a time.
fn request_date(headers: &HeaderMap) -> Result<(String, SystemTime), AuthError> {
    if let Some(v) = headers.get(X_AMZ_DATE) {
        let s = v.to_str().map_err(|_| AuthError::MissingDate)?;
        let t = sigv4::parse_amz_date(s).ok_or(AuthError::MissingDate)?;
        return Ok((s.to_owned(), t));
    }
    let v = headers.get(DATE).ok_or(AuthError::MissingDate)?;
    let t = v
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .ok_or(AuthError::MissingDate)?;
    Ok((sigv4::format_amz_date(t), t))
}

fn query_claim(pairs: &[(Vec<u8>, Vec<u8>)], now: SystemTime) -> Result<Claim, AuthError> {
    let auth = presigned::parse(pairs)?;
    presigned::check_validity(&auth, now, MAX_CLOCK_SKEW)?;
    Ok(Claim {
        credential: auth.credential,
        amz_date: auth.amz_date,
        signed_headers: auth.signed_headers,
        signature: auth.signature,
        presigned: true,
    })
}

/// The credential scope must be this date, this region, `s3`, `aws4_request`.
fn check_scope(claim: &Claim, region: &str) -> Result<(), AuthError> {
    let c = &claim.credential;
    let day = &claim.amz_date[..8];
    if c.date != day {
        return Err(claim.malformed_credential(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{day}\".",
            c.date
        )));
    }
    if c.region != region {
        return Err(claim.malformed_credential(format!(
            "the region '{}' is wrong; expecting '{region}'",
            c.region
        )));
    }
    if c.service != sigv4::SERVICE {
        return Err(claim.malformed_credential(format!(
            "incorrect service \"{}\". This endpoint belongs to \"{}\".",
            c.service,
            sigv4::SERVICE
        )));
    }
    if c.terminator != sigv4::TERMINATOR {
        return Err(claim.malformed_credential(format!(
            "incorrect terminal \"{}\". This endpoint uses \"{}\".",
            c.terminator,
            sigv4::TERMINATOR
        )));
    }
    Ok(())
}

/// `host` is always signed, `x-amz-content-sha256` too with header auth, and so is every
/// `x-amz-*` header the request carries: an unsigned one could change what the backend does
/// (storage class, ACL, SSE, checksum) without breaking the signature.
fn check_signed_headers(
    headers: &HeaderMap,
    signed: &[&str],
    presigned: bool,
) -> Result<(), AuthError> {
    if !signed.contains(&"host") {
        return Err(AuthError::RequiredHeaderNotSigned("host"));
    }
    if !presigned && !signed.contains(&"x-amz-content-sha256") {
        return Err(AuthError::RequiredHeaderNotSigned("x-amz-content-sha256"));
    }
    let unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && !signed.contains(name))
        .collect();
    if !unsigned.is_empty() {
        return Err(AuthError::HeadersNotSigned(unsigned.join(", ")));
    }
    Ok(())
}

// === The body ===

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The `x-amz-content-sha256` modes.
///
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html>
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Sha256([u8; 32]),
    Unsigned,
    Streaming { signed: bool, trailer: bool },
}

impl Payload {
    fn parse(value: &str) -> Result<Self, AuthError> {
        Ok(match value {
            UNSIGNED_PAYLOAD => Payload::Unsigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::Streaming {
                signed: true,
                trailer: false,
            },
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::Streaming {
                signed: true,
                trailer: true,
            },
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::Streaming {
                signed: false,
                trailer: true,
            },
            // Chunks signed with SigV4a: a mechanism S3 takes only at multi-region access
            // points, refused as the SigV4a header is.
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
            | "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER" => {
                return Err(AuthError::UnsupportedAlgorithm)
            }
            _ => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(value, &mut digest)
                    .map_err(|_| AuthError::InvalidContentSha256)?;
                Payload::Sha256(digest)
            }
        })
    }
}

/// What the head says the body must be: framing, length, checksums.
fn body_plan(
    headers: &HeaderMap,
    payload: Payload,
    signing: Option<ChunkSigning>,
) -> Result<BodyPlan, AuthError> {
    let (encoding, expected_len, trailer) = match payload {
        Payload::Sha256(digest) => (
            Encoding::Plain {
                sha256: Some(digest),
            },
            content_length(headers)?,
            false,
        ),
        Payload::Unsigned => (
            Encoding::Plain { sha256: None },
            content_length(headers)?,
            false,
        ),
        Payload::Streaming { trailer, .. } => {
            let decoded = headers
                .get(X_AMZ_DECODED_CONTENT_LENGTH)
                .ok_or(AuthError::MissingDecodedContentLength)?;
            let decoded = parse_length(decoded).ok_or(AuthError::InvalidHeader {
                name: "x-amz-decoded-content-length",
                reason: "must be a decimal number of bytes",
            })?;
            (
                Encoding::Chunked { signing, trailer },
                Some(decoded),
                trailer,
            )
        }
    };

    let mut checksum = None;
    for algorithm in ChecksumAlgorithm::ALL {
        for value in headers.get_all(algorithm.header_name()) {
            let digest = value
                .to_str()
                .ok()
                .and_then(|v| algorithm.decode(v))
                .ok_or(AuthError::InvalidChecksum(algorithm))?;
            if checksum
                .replace(ExpectedChecksum::Header(algorithm, digest))
                .is_some()
            {
                return Err(AuthError::MultipleChecksums);
            }
        }
    }
    let mut declared = headers.get_all(X_AMZ_TRAILER).iter();
    if let Some(value) = declared.next() {
        let algorithm = value
            .to_str()
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
            .and_then(|v| ChecksumAlgorithm::from_header_name(&v))
            .filter(|_| trailer && declared.next().is_none())
            .ok_or(AuthError::InvalidTrailerDeclaration)?;
        if checksum
            .replace(ExpectedChecksum::Trailer(algorithm))
            .is_some()
        {
            return Err(AuthError::MultipleChecksums);
        }
    }

    let content_md5 = headers
        .get(CONTENT_MD5)
        .map(|v| {
            STANDARD
                .decode(v.as_bytes())
                .ok()
                .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
                .ok_or(AuthError::InvalidContentMd5)
        })
        .transpose()?;

    Ok(BodyPlan {
        encoding,
        expected_len,
        checksum,
        content_md5,
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, AuthError> {
    headers
        .get(CONTENT_LENGTH)
        .map(|v| {
            parse_length(v).ok_or(AuthError::InvalidHeader {
                name: "content-length",
                reason: "must be a decimal number of bytes",
            })
        })
        .transpose()
}

/// Digits only: no sign, no spaces, no overflow.
fn parse_length(value: &HeaderValue) -> Option<u64> {
    let s = value.to_str().ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
