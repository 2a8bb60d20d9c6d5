//! CORS answered by the proxy from its own per-bucket rules.
//!
//! Browsers send a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! before any request that is not "simple", and a preflight carries no credentials. So the
//! proxy answers every `OPTIONS` request itself, from the head alone, before authentication,
//! and never forwards one (as Garage does, and as S3 does from the bucket's `cors`
//! sub-resource). Every other response, including errors from the proxy and the upstream, is
//! decorated with the matching rule's headers so that page code can read status, body and the
//! exposed headers. Upstream `Access-Control-*` headers are always removed: the proxy's rules
//! are the single source of truth.
//!
//! The rules come from the config, or, for buckets set to take them from the bucket
//! ([`Source::Bucket`]), from the backend's `GetBucketCors` document ([`parse_configuration`]),
//! which the pipeline fetches and caches; either way the proxy evaluates them.
//!
//! The vocabulary and evaluation are S3's `CORSConfiguration`: rules are tried in order and the
//! first rule whose origin, method (and, for a preflight, every requested header) match wins.
//! Responses follow the Fetch standard (CORS protocol).
//!
//! Pure: no I/O, no clock.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html>,
//! <https://fetch.spec.whatwg.org/#http-cors-protocol>

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use serde::Deserialize;

use crate::rules::ByBucket;

use crate::body::{self, Body};
use crate::error::{S3Code, S3Error};
use crate::s3::route::{BucketResource, Operation, Verb};
use crate::s3::xml::{self, XmlError};

/// The methods S3 accepts in `AllowedMethod`.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CORSRule.html>
pub const S3_METHODS: [Method; 5] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
];

/// How many rules one bucket pattern may have (S3 allows 100 per bucket).
pub const MAX_RULES: usize = 100;

// === Errors ===

/// Why a preflight (or a bucket `?cors` request) is refused. The messages are S3's own, typo
/// ("evalution") included, so that clients matching on them behave as against S3.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorsError {
    #[error("Insufficient information. Origin request header needed.")]
    MissingOrigin,
    #[error("Invalid Access-Control-Request-Method: {}", .0.as_deref().unwrap_or("null"))]
    InvalidMethod(Option<String>),
    #[error("CORSResponse: CORS is not enabled for this bucket.")]
    NotEnabled,
    #[error("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")]
    NotAllowed,
    /// The bucket takes its rules from the backend, which could not be read (or holds rules
    /// the proxy cannot apply): the preflight fails closed, as for a bucket without rules.
    #[error(
        "CORSResponse: The CORS configuration of this bucket could not be read from its backend."
    )]
    Unavailable,
    #[error("The CORS configuration does not exist")]
    NoConfiguration,
    /// `PutBucketCors` or `DeleteBucketCors` on a bucket whose rules are the config's.
    #[error("{0} is refused: the CORS rules of this bucket are set in the s3seal configuration ([[bucket]] cors), and s3seal answers every preflight from them, so a CORS configuration stored on the bucket would have no effect. Change them in the configuration, or set cors_from_bucket in the bucket's [[bucket]] table to manage them through the S3 API.")]
    ReadOnly(&'static str),
}

impl S3Error for CorsError {
    fn code(&self) -> S3Code {
        match self {
            CorsError::MissingOrigin | CorsError::InvalidMethod(_) => S3Code::BadRequest,
            CorsError::NotEnabled | CorsError::NotAllowed | CorsError::Unavailable => {
                S3Code::AccessForbidden
            }
            CorsError::NoConfiguration => S3Code::NoSuchCORSConfiguration,
            CorsError::ReadOnly(_) => S3Code::MethodNotAllowed,
        }
    }
}

/// A rule that cannot be built. `field` names the offending key (`allowed_origins[2]`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: String,
    pub reason: String,
}

fn rule_error(field: impl Into<String>, reason: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        reason: reason.into(),
    }
}

// === Rules ===

/// One `CORSRule` as written in the config (`[[bucket.cors]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u32>,
    /// Not part of S3's vocabulary (S3 always allows credentials for a non-`*` origin): off
    /// unless asked for, because a credentialed cross-origin read is a privilege.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// A pattern with at most one `*`, matched ASCII-case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wildcard {
    source: String,
    prefix: String,
    /// `None`: exact match. `Some(s)`: `prefix`, anything (possibly empty), then `s`.
    suffix: Option<String>,
}

impl Wildcard {
    fn new(source: &str) -> Result<Self, &'static str> {
        let lower = source.to_ascii_lowercase();
        let mut parts = lower.splitn(3, '*');
        let prefix = parts.next().unwrap_or_default().to_owned();
        let suffix = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err("at most one '*' wildcard is allowed");
        }
        Ok(Wildcard {
            source: source.to_owned(),
            prefix,
            suffix,
        })
    }

    fn is_any(&self) -> bool {
        self.prefix.is_empty() && self.suffix.as_deref() == Some("")
    }

    fn matches(&self, s: &str) -> bool {
        let s = s.to_ascii_lowercase();
        match &self.suffix {
            None => s == self.prefix,
            Some(suffix) => {
                s.len() >= self.prefix.len() + suffix.len()
                    && s.starts_with(&self.prefix)
                    && s.ends_with(suffix.as_str())
            }
        }
    }
}

/// A validated `CORSRule`.
#[derive(Debug, Clone)]
pub struct Rule {
    id: Option<String>,
    origins: Vec<Wildcard>,
    methods: Vec<Method>,
    headers: Vec<Wildcard>,
    expose: Vec<HeaderName>,
    max_age: Option<u32>,
    credentials: bool,
}

impl TryFrom<RawRule> for Rule {
    type Error = RuleError;

    fn try_from(raw: RawRule) -> Result<Self, RuleError> {
        if raw.allowed_origins.is_empty() {
            return Err(rule_error(
                "allowed_origins",
                "at least one origin is required",
            ));
        }
        let mut origins = Vec::new();
        for (i, o) in raw.allowed_origins.iter().enumerate() {
            let field = format!("allowed_origins[{i}]");
            if o.is_empty() || !o.bytes().all(|b| b.is_ascii_graphic()) || o.contains(',') {
                return Err(rule_error(
                    field,
                    "must be an origin like https://app.example.com, without spaces or commas",
                ));
            }
            origins.push(Wildcard::new(o).map_err(|e| rule_error(field, e))?);
        }
        if raw.allowed_methods.is_empty() {
            return Err(rule_error(
                "allowed_methods",
                "at least one method is required",
            ));
        }
        let mut methods = Vec::new();
        for (i, m) in raw.allowed_methods.iter().enumerate() {
            let method = S3_METHODS.iter().find(|s| s.as_str() == m).ok_or_else(|| {
                rule_error(
                    format!("allowed_methods[{i}]"),
                    format!("'{m}' is not one of GET, PUT, POST, DELETE, HEAD"),
                )
            })?;
            if !methods.contains(method) {
                methods.push(method.clone());
            }
        }
        let mut headers = Vec::new();
        for (i, h) in raw.allowed_headers.iter().enumerate() {
            let field = format!("allowed_headers[{i}]");
            if h.is_empty() || !h.bytes().all(|b| b == b'*' || is_token_byte(b)) {
                return Err(rule_error(
                    field,
                    "must be a header name, optionally with one '*'",
                ));
            }
            headers.push(Wildcard::new(h).map_err(|e| rule_error(field, e))?);
        }
        let mut expose = Vec::new();
        for (i, h) in raw.expose_headers.iter().enumerate() {
            let name = HeaderName::from_bytes(h.as_bytes())
                .ok()
                .filter(|_| !h.contains('*'))
                .ok_or_else(|| {
                    rule_error(
                        format!("expose_headers[{i}]"),
                        "must be a header name (no wildcards)",
                    )
                })?;
            expose.push(name);
        }
        Ok(Rule {
            id: raw.id,
            origins,
            methods,
            headers,
            expose,
            max_age: raw.max_age_seconds,
            credentials: raw.allow_credentials,
        })
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b)
}

impl Rule {
    /// The origin this rule allows, if it does: `Some(true)` when it allows it through `*`.
    fn origin_match(&self, origin: &str) -> Option<bool> {
        self.origins
            .iter()
            .find(|o| o.matches(origin))
            .map(Wildcard::is_any)
    }

    fn allows_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.matches(name))
    }

    /// The `Access-Control-Allow-Origin` value: `*` only for a `*` rule without credentials
    /// (the Fetch standard forbids `*` with credentials), otherwise the origin echoed.
    fn allow_origin(&self, origin: &HeaderValue, via_any: bool) -> HeaderValue {
        if via_any && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }
}

/// Where a bucket's CORS rules come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `[[bucket.cors]]` in the config; `cors = []` (no rules) exempts the pattern's buckets.
    Config(Vec<Rule>),
    /// `cors_from_bucket`: the bucket's own CORS configuration on the backend.
    Bucket(FromBucket),
}

/// `cors_from_bucket = { upstream, cache_seconds }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromBucket {
    /// The `[[upstream]]` whose credentials read the rules.
    pub upstream: String,
    /// How long rules read from the backend are used before they are read again.
    pub ttl: std::time::Duration,
}

/// Bucket glob → where its CORS rules come from. The most specific pattern that matches a
/// bucket decides (`crate::rules`), and within its rules the first rule that matches a
/// request wins, as in S3.
#[derive(Debug, Default)]
pub struct BucketRules(ByBucket<Source>);

impl BucketRules {
    /// No CORS anywhere: every preflight is refused and no response carries CORS headers.
    pub fn none() -> Self {
        BucketRules(ByBucket::default())
    }

    /// From `(bucket glob, rules)` pairs in config order, every bucket's rules the config's.
    pub fn new(
        sets: impl IntoIterator<Item = (String, Vec<Rule>)>,
    ) -> Result<Self, globset::Error> {
        BucketRules::from_sources(sets.into_iter().map(|(p, r)| (p, Source::Config(r))))
    }

    /// From `(bucket glob, source)` pairs in config order; the most specific glob decides
    /// (`crate::rules`), as for SSE rules.
    pub fn from_sources(
        sets: impl IntoIterator<Item = (String, Source)>,
    ) -> Result<Self, globset::Error> {
        Ok(BucketRules(ByBucket::new(sets)?))
    }

    /// Where the rules of `bucket` come from; `None` if nowhere (CORS not enabled). An empty
    /// rule list counts as none, so `cors = []` can exempt buckets from a broader pattern.
    pub fn source(&self, bucket: &str) -> Option<&Source> {
        self.0
            .get(bucket)
            .filter(|s| !matches!(s, Source::Config(r) if r.is_empty()))
    }

    /// The rules the config gives `bucket`, or `None` if it gives none (no CORS, or rules
    /// taken from the bucket).
    pub fn for_bucket(&self, bucket: &str) -> Option<&[Rule]> {
        match self.source(bucket)? {
            Source::Config(rules) => Some(rules),
            Source::Bucket(_) => None,
        }
    }
}

/// The rules that apply to one request, as its bucket's [`Source`] gave them.
#[derive(Debug, Clone, Copy)]
pub enum Applied<'a> {
    /// The config's rules (`None`: no bucket, or no rules).
    Config(Option<&'a [Rule]>),
    /// Rules read from the bucket (`None`: the bucket has no CORS configuration).
    Bucket(Option<&'a [Rule]>),
    /// Rules that should have been read from the bucket and could not be.
    Unavailable,
}

// === Rules stored on the bucket ===

/// The largest CORS configuration S3 stores is 64 KB; a backend's document beyond it is not
/// read, and a client's is refused before it is forwarded.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>
pub const MAX_CONFIGURATION_BYTES: usize = 64 * 1024;

/// Why a `CORSConfiguration` document (a `PutBucketCors` body, or the backend's
/// `GetBucketCors` answer) is not one the proxy can apply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(
        "The CORS configuration is larger than the {MAX_CONFIGURATION_BYTES} bytes S3 allows."
    )]
    TooLarge,
    #[error("The CORS configuration has more than {MAX_RULES} rules.")]
    TooManyRules,
    #[error("CORSRule {0}: {1}")]
    Rule(usize, RuleError),
}

impl S3Error for DocumentError {
    fn code(&self) -> S3Code {
        match self {
            DocumentError::Xml(e) => e.code(),
            DocumentError::TooLarge => S3Code::MaxMessageLengthExceeded,
            DocumentError::TooManyRules | DocumentError::Rule(..) => S3Code::InvalidRequest,
        }
    }
}

/// The element a `CORSRule` child sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleField {
    Id,
    AllowedHeader,
    AllowedMethod,
    AllowedOrigin,
    ExposeHeader,
    MaxAgeSeconds,
}

impl RuleField {
    fn from_name(name: &[u8]) -> Option<RuleField> {
        Some(match name {
            b"ID" => RuleField::Id,
            b"AllowedHeader" => RuleField::AllowedHeader,
            b"AllowedMethod" => RuleField::AllowedMethod,
            b"AllowedOrigin" => RuleField::AllowedOrigin,
            b"ExposeHeader" => RuleField::ExposeHeader,
            b"MaxAgeSeconds" => RuleField::MaxAgeSeconds,
            _ => return None,
        })
    }

    /// Puts one element's text into `rule`.
    fn set(self, rule: &mut RawRule, text: String) -> Result<(), XmlError> {
        let once = |slot: bool, name: &str| {
            if slot {
                Err(XmlError::Malformed(format!("more than one {name}")))
            } else {
                Ok(())
            }
        };
        match self {
            RuleField::Id => {
                once(rule.id.is_some(), "ID")?;
                rule.id = Some(text);
            }
            RuleField::AllowedHeader => rule.allowed_headers.push(text),
            RuleField::AllowedMethod => rule.allowed_methods.push(text),
            RuleField::AllowedOrigin => rule.allowed_origins.push(text),
            RuleField::ExposeHeader => rule.expose_headers.push(text),
            RuleField::MaxAgeSeconds => {
                once(rule.max_age_seconds.is_some(), "MaxAgeSeconds")?;
                let age = text.trim().parse().map_err(|_| {
                    XmlError::Malformed(format!("MaxAgeSeconds '{text}' is not a number"))
                })?;
                rule.max_age_seconds = Some(age);
            }
        }
        Ok(())
    }
}

/// Reads a `CORSConfiguration` document strictly: S3's schema and nothing else (a
/// `CORSConfiguration` root holding 1 to [`MAX_RULES`] `CORSRule`s of `ID`, `AllowedHeader`,
/// `AllowedMethod`, `AllowedOrigin`, `ExposeHeader` and `MaxAgeSeconds`, text only), no DTD,
/// at most [`MAX_CONFIGURATION_BYTES`]; every rule validated as a config rule is. A document the
/// proxy cannot apply exactly is refused whole: it answers preflights from what it reads.
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html>
pub fn parse_configuration(doc: &[u8]) -> Result<Vec<Rule>, DocumentError> {
    if doc.len() > MAX_CONFIGURATION_BYTES {
        return Err(DocumentError::TooLarge);
    }
    let raw = configuration_rules(doc)?;
    if raw.len() > MAX_RULES {
        return Err(DocumentError::TooManyRules);
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| Rule::try_from(r).map_err(|e| DocumentError::Rule(i, e)))
        .collect()
}

/// The `CORSRule`s of a document, as written.
fn configuration_rules(doc: &[u8]) -> Result<Vec<RawRule>, XmlError> {
    use quick_xml::events::Event;
    xml::check_document(doc)?;
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let outside = |name: &[u8]| {
        XmlError::Malformed(format!(
            "<{}> is not part of a CORSConfiguration",
            String::from_utf8_lossy(name)
        ))
    };
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut depth = 0usize;
    let mut rules: Vec<RawRule> = Vec::new();
    // The field being read, and its text so far (text and references come as separate events).
    let mut field: Option<(RuleField, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match event {
            Event::Start(e) | Event::Empty(e) if field.is_some() => {
                return Err(outside(e.local_name().as_ref()));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = e.local_name();
                let empty = matches!(event, Event::Empty(_));
                match (depth, name.as_ref()) {
                    (0, b"CORSConfiguration") => {}
                    (1, b"CORSRule") => rules.push(RawRule::default()),
                    (2, n) => {
                        let f = RuleField::from_name(n).ok_or_else(|| outside(n))?;
                        if empty {
                            let rule = rules.last_mut().ok_or_else(|| outside(n))?;
                            f.set(rule, String::new())?;
                        } else {
                            field = Some((f, String::new()));
                        }
                    }
                    (_, n) => return Err(outside(n)),
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some((f, text)) = field.take() {
                    let rule = rules
                        .last_mut()
                        .ok_or_else(|| XmlError::Malformed("a field outside CORSRule".into()))?;
                    f.set(rule, text)?;
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| malformed(&e))?;
                match field.as_mut() {
                    Some((_, value)) => value.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(XmlError::Malformed("text outside a rule field".into())),
                }
            }
            Event::GeneralRef(r) => {
                let Some((_, value)) = field.as_mut() else {
                    return Err(XmlError::Malformed("text outside a rule field".into()));
                };
                // `check_document` admitted only predefined and character references.
                let reference = format!("&{};", String::from_utf8_lossy(&r));
                value
                    .push_str(&quick_xml::escape::unescape(&reference).map_err(|e| malformed(&e))?);
            }
            Event::CData(_) => {
                return Err(XmlError::Malformed("CDATA in CORSConfiguration".into()))
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        if rules.len() > MAX_RULES {
            break;
        }
    }
    if rules.is_empty() {
        return Err(XmlError::Malformed("no CORSRule".into()));
    }
    Ok(rules)
}

// === Per request ===

/// What CORS knows about one request, taken from its head before authentication.
#[derive(Debug)]
pub struct Scope<'a> {
    applied: Applied<'a>,
    method: Method,
    origin: Option<HeaderValue>,
}

impl<'a> Scope<'a> {
    /// `rules` are the addressed bucket's rules from the config (`None` for no bucket or no
    /// CORS).
    pub fn new(rules: Option<&'a [Rule]>, method: &Method, headers: &HeaderMap) -> Self {
        Scope::applying(Applied::Config(rules), method, headers)
    }

    /// A scope with the rules from wherever the bucket's [`Source`] says.
    pub fn applying(applied: Applied<'a>, method: &Method, headers: &HeaderMap) -> Self {
        Scope {
            applied,
            method: method.clone(),
            origin: headers.get(ORIGIN).cloned(),
        }
    }

    /// The rules in force, `None` when there are none (or they could not be read).
    fn rules(&self) -> Option<&'a [Rule]> {
        match self.applied {
            Applied::Config(rules) | Applied::Bucket(rules) => rules,
            Applied::Unavailable => None,
        }
    }

    /// Answers a preflight (any `OPTIONS` request). Checks in S3's order: the two required
    /// headers, then whether the bucket has CORS at all, then the rules.
    pub fn preflight(&self, headers: &HeaderMap) -> Result<Response<Body>, CorsError> {
        let origin = self
            .origin
            .as_ref()
            .filter(|o| !o.is_empty())
            .ok_or(CorsError::MissingOrigin)?;
        let requested = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .ok_or(CorsError::InvalidMethod(None))?;
        let method = S3_METHODS
            .iter()
            .find(|m| m.as_str().as_bytes() == requested.as_bytes())
            .ok_or_else(|| {
                CorsError::InvalidMethod(Some(
                    String::from_utf8_lossy(requested.as_bytes()).into_owned(),
                ))
            })?;
        let rules = match self.applied {
            Applied::Unavailable => return Err(CorsError::Unavailable),
            _ => self.rules().ok_or(CorsError::NotEnabled)?,
        };
        let origin_str = origin.to_str().map_err(|_| CorsError::NotAllowed)?;
        let wanted = requested_headers(headers).ok_or(CorsError::NotAllowed)?;
        let (rule, via_any) = rules
            .iter()
            .find_map(|r| {
                let via_any = r.origin_match(origin_str)?;
                let ok = r.methods.contains(method) && wanted.iter().all(|h| r.allows_header(h));
                ok.then_some((r, via_any))
            })
            .ok_or(CorsError::NotAllowed)?;

        let mut resp = Response::new(body::empty());
        let h = resp.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            rule.allow_origin(origin, via_any),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            join(rule.methods.iter().map(Method::as_str)),
        );
        if !wanted.is_empty() {
            h.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                join(wanted.iter().map(String::as_str)),
            );
        }
        if let Some(age) = rule.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        if rule.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.insert(
            VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Ok(resp)
    }

    /// Replaces whatever CORS headers a response has with this scope's. Preflight answers are
    /// left alone: the proxy built them (or refused the preflight, which S3 answers without
    /// CORS headers too).
    pub fn decorate(&self, headers: &mut HeaderMap) {
        if self.method == Method::OPTIONS {
            return;
        }
        strip_cors_headers(headers);
        let Some(rules) = self.rules() else {
            return;
        };
        // The answer depends on Origin for this bucket, matched or not: a shared cache must
        // not serve a response made for one origin (or none) to another.
        add_vary_origin(headers);
        let Some(origin) = self.origin.as_ref() else {
            return;
        };
        let Ok(origin_str) = origin.to_str() else {
            return;
        };
        let Some((rule, via_any)) = rules.iter().find_map(|r| {
            let via_any = r.origin_match(origin_str)?;
            r.methods.contains(&self.method).then_some((r, via_any))
        }) else {
            return;
        };
        headers.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            rule.allow_origin(origin, via_any),
        );
        if !rule.expose.is_empty() {
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                join(rule.expose.iter().map(HeaderName::as_str)),
            );
        }
        if rule.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// `GetBucketCors`, `PutBucketCors` and `DeleteBucketCors` (`?cors` on a bucket) of a bucket
    /// whose rules are the config's, answered from the config: the upstream's own CORS
    /// configuration is not used for it, so reading it would mislead and writing it would do
    /// nothing. `None` for every other request, and for buckets that take their rules from the
    /// bucket (the pipeline forwards their writes and answers their reads from what it read).
    pub fn bucket_api(&self, op: Operation) -> Option<Result<Response<Body>, CorsError>> {
        let Operation::BucketConfig(BucketResource::Cors, verb) = op else {
            return None;
        };
        let Applied::Config(rules) = self.applied else {
            return None;
        };
        if verb != Verb::Get {
            return Some(Err(CorsError::ReadOnly(op.as_str())));
        }
        Some(configuration_response(rules))
    }
}

/// A `GetBucketCors` answer: the rules as S3's `CORSConfiguration` document, or S3's 404 when
/// there are none.
pub fn configuration_response(rules: Option<&[Rule]>) -> Result<Response<Body>, CorsError> {
    let rules = rules.ok_or(CorsError::NoConfiguration)?;
    let mut resp = Response::new(body::full(Bytes::from(configuration_xml(rules))));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    Ok(resp)
}

/// The header names of `Access-Control-Request-Headers`, lowercased, empty ones dropped;
/// `None` if one is not a header name (it could not be echoed back).
fn requested_headers(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
        for name in v.to_str().ok()?.split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if !name.bytes().all(is_token_byte) {
                return None;
            }
            out.push(name);
        }
    }
    Some(out)
}

fn join<'s>(items: impl Iterator<Item = &'s str>) -> HeaderValue {
    let s = items.collect::<Vec<_>>().join(", ");
    // Every item is a method, a header name or a token checked above: always a valid value.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Removes `Access-Control-*` response headers (moto, for one, adds `*` to everything).
fn strip_cors_headers(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

fn add_vary_origin(headers: &mut HeaderMap) {
    let present = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case("origin")
        });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The rules as S3's `CORSConfiguration` document (`allow_credentials` has no S3 element).
/// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketCors.html>
fn configuration_xml(rules: &[Rule]) -> String {
    use quick_xml::escape::escape;
    use std::fmt::Write as _;
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for r in rules {
        out.push_str("<CORSRule>");
        if let Some(id) = &r.id {
            let _ = write!(out, "<ID>{}</ID>", escape(id.as_str()));
        }
        for h in &r.headers {
            let _ = write!(
                out,
                "<AllowedHeader>{}</AllowedHeader>",
                escape(h.source.as_str())
            );
        }
        for m in &r.methods {
            let _ = write!(out, "<AllowedMethod>{m}</AllowedMethod>");
        }
        for o in &r.origins {
            let _ = write!(
                out,
                "<AllowedOrigin>{}</AllowedOrigin>",
                escape(o.source.as_str())
            );
        }
        for e in &r.expose {
            let _ = write!(out, "<ExposeHeader>{e}</ExposeHeader>");
        }
        if let Some(age) = r.max_age {
            let _ = write!(out, "<MaxAgeSeconds>{age}</MaxAgeSeconds>");
        }
        out.push_str("</CORSRule>");
    }
    out.push_str("</CORSConfiguration>");
    out
}

#[cfg(test)]
mod tests;
