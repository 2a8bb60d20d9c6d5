//! Query-string authentication (presigned URLs): the `X-Amz-*` parameters, expiry and clock.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>

use std::time::{Duration, SystemTime};

use super::error::AuthError;
use super::sigv4::{self, Credential, Signature};

pub const X_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
pub const X_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
pub const X_AMZ_DATE: &str = "X-Amz-Date";
pub const X_AMZ_EXPIRES: &str = "X-Amz-Expires";
pub const X_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";
/// Longest validity S3 accepts for a presigned URL: 7 days.
pub const MAX_EXPIRES_SECS: u64 = 604_800;

/// The authentication parameters of a presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAuth {
    pub credential: Credential,
    /// `X-Amz-Date` as sent, for the string to sign.
    pub amz_date: String,
    pub date: SystemTime,
    pub expires: Duration,
    /// `X-Amz-SignedHeaders` as sent; parsed by the caller like the header form.
    pub signed_headers: String,
    pub signature: Signature,
}

/// Whether the query carries query-string authentication at all.
pub fn is_present(pairs: &[(Vec<u8>, Vec<u8>)]) -> bool {
    pairs.iter().any(|(name, _)| {
        [X_AMZ_ALGORITHM, X_AMZ_CREDENTIAL, X_AMZ_SIGNATURE]
            .iter()
            .any(|p| name == p.as_bytes())
    })
}

/// Reads the `X-Amz-*` parameters from the decoded query pairs. Each must appear once.
pub fn parse(pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<QueryAuth, AuthError> {
    let malformed = |what: &str| AuthError::MalformedQueryAuthentication(what.to_owned());
    let get = |name: &str| -> Result<&str, AuthError> {
        let mut values = pairs.iter().filter(|(n, _)| n == name.as_bytes());
        let (_, value) = values.next().ok_or_else(|| malformed(MISSING_PARAMETERS))?;
        if values.next().is_some() {
            return Err(malformed(&format!("{name} appears more than once")));
        }
        std::str::from_utf8(value).map_err(|_| malformed(&format!("{name} is not UTF-8")))
    };
    match get(X_AMZ_ALGORITHM)? {
        sigv4::ALGORITHM => {}
        // SigV4a: S3 takes it only at multi-region access points.
        sigv4::ALGORITHM_SIGV4A => return Err(AuthError::UnsupportedAlgorithm),
        _ => {
            return Err(malformed(
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
            ))
        }
    }
    let credential = Credential::parse(get(X_AMZ_CREDENTIAL)?).ok_or_else(|| {
        malformed("error parsing the X-Amz-Credential parameter; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"")
    })?;
    let amz_date = get(X_AMZ_DATE)?;
    let date = sigv4::parse_amz_date(amz_date).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    let expires = parse_expires(get(X_AMZ_EXPIRES)?)?;
    let signature = sigv4::parse_signature(get(X_AMZ_SIGNATURE)?)
        .ok_or_else(|| malformed("X-Amz-Signature must be 64 lowercase hexadecimal characters"))?;
    Ok(QueryAuth {
        credential,
        amz_date: amz_date.to_owned(),
        date,
        expires: Duration::from_secs(expires),
        signed_headers: get(X_AMZ_SIGNED_HEADERS)?.to_owned(),
        signature,
    })
}

/// S3's answer to a presigned URL without one of its parameters.
const MISSING_PARAMETERS: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";

/// `X-Amz-Expires`, refused with S3's code and words: a number (a sign allowed), not negative,
/// at most [`MAX_EXPIRES_SECS`]. Zero is a valid number, of a URL that has already expired.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>
fn parse_expires(value: &str) -> Result<u64, AuthError> {
    let malformed = |what: &str| AuthError::MalformedQueryAuthentication(what.to_owned());
    let (negative, digits) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("X-Amz-Expires should be a number"));
    }
    if negative && digits.bytes().any(|b| b != b'0') {
        return Err(malformed("X-Amz-Expires must be non-negative"));
    }
    // Digits beyond u64 are over a week too.
    match digits.parse::<u64>() {
        Ok(secs) if secs <= MAX_EXPIRES_SECS => Ok(secs),
        _ => Err(malformed("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds")),
    }
}

/// A presigned URL is valid from `date` (with `skew` of tolerance for the signer's clock)
/// to `date + expires`; one that expires after zero seconds never is.
pub fn check_validity(auth: &QueryAuth, now: SystemTime, skew: Duration) -> Result<(), AuthError> {
    if auth.date > now + skew {
        return Err(AuthError::RequestNotYetValid);
    }
    if auth.expires.is_zero() || now > auth.date + auth.expires {
        return Err(AuthError::RequestExpired);
    }
    Ok(())
}
