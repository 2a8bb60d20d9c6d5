//! Requests that a trusted TLS terminator forwarded in plain HTTP: they are served only when
//! the terminator says the client used https.
//!
//! Only peers in `[server] trusted_proxies` get this far (see `accept::accept_trusted`); from
//! anyone else, plain HTTP is refused before a request is read. The headers are read as the
//! nearest proxy wrote them: the last `Forwarded` element (RFC 7239 §4: each proxy appends
//! one) and the last `X-Forwarded-Proto` value. When both are present, both must say https,
//! so a client cannot smuggle `proto=https` past a terminator that only sets the other one.

use http::HeaderMap;

use crate::error::{S3Code, S3Error};

/// Marks a request that came from a peer in `trusted_proxies` (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ViaTrustedProxy {
    /// The proxy sent plain HTTP: the request must say it arrived over https.
    pub plaintext: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardedError {
    #[error("This endpoint accepts HTTPS only: the request was forwarded without 'X-Forwarded-Proto: https' or 'Forwarded: proto=https'.")]
    NotHttps,
}

impl S3Error for ForwardedError {
    fn code(&self) -> S3Code {
        match self {
            ForwardedError::NotHttps => S3Code::TlsRequired,
        }
    }
}

/// Accepts a forwarded request only when every forwarding header present says `https`, and
/// at least one is present.
pub fn check_https(headers: &HeaderMap) -> Result<(), ForwardedError> {
    let forwarded =
        last_value(headers, "forwarded").map(|element| forwarded_param(&element, "proto"));
    let x_forwarded = last_value(headers, "x-forwarded-proto");
    let says_https = |v: Option<&str>| v.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let ok = match (&forwarded, &x_forwarded) {
        (None, None) => false,
        (Some(f), None) => says_https(f.as_deref()),
        (None, Some(x)) => says_https(Some(x)),
        (Some(f), Some(x)) => says_https(f.as_deref()) && says_https(Some(x)),
    };
    if ok {
        Ok(())
    } else {
        Err(ForwardedError::NotHttps)
    }
}

/// Longest client address taken from a forwarding header: an IPv6 literal with brackets and
/// a port, or an RFC 7239 §6.3 obfuscated identifier.
const MAX_CLIENT_LEN: usize = 64;

/// The client address the nearest proxy reports (for the access log): the `for` of the last
/// `Forwarded` element, else the last `X-Forwarded-For` value. `None` when absent or not
/// made of address characters, so that nothing a client wrote is logged verbatim.
pub fn client(headers: &HeaderMap) -> Option<String> {
    let value = match last_value(headers, "forwarded") {
        Some(element) => forwarded_param(&element, "for")?,
        None => last_value(headers, "x-forwarded-for")?,
    };
    let ok = !value.is_empty()
        && value.len() <= MAX_CLIENT_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:[]_-".contains(&b));
    ok.then_some(value)
}

/// The last comma-separated value of the last `name` header line.
fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let line = headers.get_all(name).iter().next_back()?;
    let text = line.to_str().ok()?;
    Some(text.rsplit(',').next().unwrap_or(text).trim().to_owned())
}

/// One parameter of a `Forwarded` element: `for=192.0.2.1;proto=https;by=...`. Values may
/// be quoted (RFC 7239 §4).
fn forwarded_param(element: &str, param: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(param)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests;
