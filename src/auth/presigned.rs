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
        let (_, value) = values
            .next()
            .ok_or_else(|| malformed(&format!("{name} is missing")))?;
        if values.next().is_some() {
            return Err(malformed(&format!("{name} appears more than once")));
        }
        std::str::from_utf8(value).map_err(|_| malformed(&format!("{name} is not UTF-8")))
    };
    match get(X_AMZ_ALGORITHM)? {
        sigv4::ALGORITHM => {}
        sigv4::ALGORITHM_SIGV4A => {
            return Err(AuthError::AlgorithmNotImplemented(sigv4::ALGORITHM_SIGV4A))
        }
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
    let expires = get(X_AMZ_EXPIRES)?;
    let expires = (!expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()))
        .then(|| expires.parse::<u64>().ok())
        .flatten()
        .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
        .ok_or_else(|| {
            malformed("X-Amz-Expires must be a number of seconds from 1 to 604800 (seven days)")
        })?;
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

/// A presigned URL is valid from `date` (with `skew` of tolerance for the signer's clock)
/// to `date + expires`.
pub fn check_validity(auth: &QueryAuth, now: SystemTime, skew: Duration) -> Result<(), AuthError> {
    if auth.date > now + skew {
        return Err(AuthError::RequestNotYetValid);
    }
    if now > auth.date + auth.expires {
        return Err(AuthError::RequestExpired);
    }
    Ok(())
}
