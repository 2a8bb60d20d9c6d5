//! The request pipeline. [`handle`] is the only place that knows the order of the stages:
//!
//! 1. framing checks (no request smuggling forms reach anything else),
//!    then CORS preflights (`OPTIONS`), answered from the bucket's rules (the config's, or
//!    read from the bucket and cached) without authentication and never forwarded,
//! 2. `auth::verify` → [`Verified`] (signature, scope, time; the body verifies itself as it
//!    streams and holds back its last bytes until every proof holds; a request without any
//!    authentication is anonymous); a browser form upload (`PostObject`) is verified from
//!    its fields instead (`form`: signature and POST policy) and goes on as the PutObject that
//!    stores its streamed file, answered at the end as S3 answers a form,
//! 3. `s3::route` → [`Routed`] (bucket, key, operation) and bucket authorisation (an
//!    anonymous request only where the bucket's `anonymous` setting opens its operation),
//! 4. `sse::Stage::prepare`: the bucket's SSE rule rewrites the SSE headers (or refuses),
//! 5. body preparation (XML bodies are buffered, size-limited and checked for DTDs),
//! 6. `upstream.sign` (re-signed with the upstream's credentials) and `upstream.send`; a
//!    copy under an SSE rule that the backend cannot make is made by the proxy (`copy`),
//! 7. `sse::Stage::settle`: old SSE-C keys on refused reads, the write's encryption checked
//!    (fail closed), key fingerprints removed, the refusal of a request that carried a key
//!    answered without the backend's document,
//! 8. the response, streamed back without hop-by-hop headers.
//!
//! Every answer but a preflight's, errors included, then gets the bucket's CORS headers
//! (and loses the upstream's), so that browser code can read it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::auth::checksum::ChecksumAlgorithm;
use crate::auth::{self, AuthContext, ClientKeys, Principal, Verified, VerifiedBody};
use crate::authz::{self, AnonymousAccess};
use crate::body::{Body, BoxError};
use crate::bucket_cors::{self, Fetched};
use crate::cors::{self, Applied, BucketRules};
use crate::cse::{self, CseError, EncryptionRules};
use crate::error::{ProxyError, S3Code, S3Error};
use crate::forwarded::{self, ViaTrustedProxy};
use crate::logging::{AccessLogged, AccessRecord};
use crate::metrics::Metrics;
use crate::policy::{RuleKind, SsePolicies};
use crate::s3::headers;
use crate::s3::route::{self, BodyKind, BucketResource, Operation, RouteError, Routed, Verb};
use crate::s3::xml::{self, XmlError};
use crate::sse;
use crate::upstream::{self, Dispatch, Outgoing, Payload, Sender, UpstreamClient};

mod copy;
#[cfg(test)]
mod deny_model;
mod form;
mod linger;
mod listing;
mod uploads;

use form::RequestBody;
use linger::ClientBody;

/// Everything a request needs, frozen for the lifetime of the config.
pub struct State {
    pub region: String,
    pub domain: Option<String>,
    /// Accept legacy bucket names (`[server] legacy_bucket_names`).
    pub legacy_bucket_names: bool,
    /// Accept Signature Version 2 (`[server] sigv2`).
    pub sigv2: bool,
    pub clients: ClientKeys,
    pub upstreams: HashMap<String, UpstreamClient>,
    pub buckets: BucketRules,
    /// Rules read from the buckets that take them from the backend (`cors_from_bucket`).
    pub bucket_cors: bucket_cors::Cache,
    /// Buckets open to requests without authentication (`[[bucket]] anonymous`).
    pub anonymous: AnonymousAccess,
    pub sse: SsePolicies,
    pub encryption: EncryptionRules,
    pub metrics: Arc<Metrics>,
    /// `[server] body_timeout_secs`: the longest a request body may stall while it is read.
    pub body_timeout: Duration,
}

/// The response header that carries the proxy's own request id (also in error bodies).
pub const X_S3SEAL_REQUEST_ID: http::HeaderName =
    http::HeaderName::from_static("x-s3seal-request-id");

/// Serves one request. Never fails: every error becomes an S3 XML response.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = new_request_id();
    let method = req.method().clone();
    let resource = req.uri().path().to_owned();
    // Routed once, from the head as received: CORS, metrics and (after authentication) the
    // pipeline all use this one result.
    let head = route_head(&state, &req);
    let operation = head.as_ref().map_or("unknown", |r| r.op.as_str());
    let rule = rule_label(&state, head.as_ref().ok());
    let mut record = access_record(&req, head.as_ref().ok(), &request_id, started);
    record.operation = operation;
    let from_bucket = rules_from_bucket(&state, head.as_ref().ok(), false).await;
    let cors = cors_scope(&state, head.as_ref().ok(), from_bucket.as_ref(), &req);
    let (req, remainder) = linger::split(req, state.body_timeout);
    // Lines logged while the request is served (refusals, key use) carry its id.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut principal = None;
    let result = pipeline(&state, &cors, head, req, &mut principal)
        .instrument(span)
        .await;
    record.anonymous = matches!(principal, Some(Principal::Anonymous));
    record.client = principal
        .as_ref()
        .and_then(Principal::client)
        .map(|c| c.access_key_id.clone());
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            tracing::info!(%request_id, %method, %resource, code = err.code().as_str(), error = %err, "request refused");
            count_refusal(&state.metrics, &err);
            record.error_code = Some(err.code().as_str());
            remainder.drain().await;
            err.into_response(&resource, &request_id)
        }
    };
    // Counted as received, not as declared: an aws-chunked or `Transfer-Encoding: chunked`
    // body declares no length, and a refused one may stop early.
    record.bytes_in = remainder.received();
    cors.decorate(resp.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(X_S3SEAL_REQUEST_ID, v);
    }
    if record.anonymous {
        state.metrics.anonymous(operation, resp.status().as_u16());
    }
    state.metrics.answered(
        operation,
        rule,
        resp.status().as_u16(),
        started.elapsed(),
        record.bytes_in,
        resp.body().size_hint().exact(),
    );
    record.status = resp.status().as_u16();
    resp.map(|body| AccessLogged::new(body, record).boxed_unsync())
}

/// The `rule` label of `s3seal_requests_total`: the encryption rules of the addressed
/// bucket, so that dashboards can follow each rule's traffic and errors.
fn rule_label(state: &State, head: Option<&Routed>) -> &'static str {
    match head.map_or((false, None), |r| bucket_rules(state, r)) {
        (false, None) => "-",
        (false, Some(kind)) => kind.as_str(),
        (true, None | Some(RuleKind::None)) => "client-side",
        (true, Some(RuleKind::SseS3)) => "client-side+sse-s3",
        (true, Some(RuleKind::SseKms)) => "client-side+sse-kms",
        (true, Some(RuleKind::SseC)) => "client-side+sse-c",
    }
}

/// Whether the addressed bucket has client-side encryption, and its SSE rule.
fn bucket_rules(state: &State, routed: &Routed) -> (bool, Option<RuleKind>) {
    routed.target.bucket().map_or((false, None), |bucket| {
        (
            state.encryption.for_bucket(bucket).is_some(),
            state.sse.for_bucket(bucket).map(|r| r.kind.kind()),
        )
    })
}

fn upstream_of<'s>(state: &'s State, name: &str) -> Result<&'s UpstreamClient, ProxyError> {
    state
        .upstreams
        .get(name)
        .ok_or_else(|| ProxyError::Internal(format!("no upstream '{name}'")))
}

/// The access-log fields known from the request head; the rest is filled in as it is served.
fn access_record(
    req: &Request<Incoming>,
    head: Option<&Routed>,
    request_id: &str,
    started: Instant,
) -> AccessRecord {
    AccessRecord {
        request_id: request_id.to_owned(),
        peer: req.extensions().get::<Peer>().map(|p| p.0),
        forwarded_for: req
            .extensions()
            .get::<ViaTrustedProxy>()
            .and_then(|_| forwarded::client(req.headers())),
        client: None,
        anonymous: false,
        method: req.method().to_string(),
        bucket: head.and_then(|r| r.target.bucket().map(str::to_owned)),
        key: head.and_then(|r| r.target.key().map(str::to_owned)),
        operation: "unknown",
        status: 0,
        error_code: None,
        bytes_in: 0,
        started,
    }
}

/// The connection's remote address, put in each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Auth failures by S3 code, stalled bodies and upstream failures; every other refusal is
/// visible in `s3seal_requests_total` by its status alone.
fn count_refusal(metrics: &Metrics, err: &ProxyError) {
    match err {
        ProxyError::Downstream(e) if e.code().is_auth_failure() => {
            metrics.auth_failure(e.code().as_str());
        }
        ProxyError::Downstream(e) if e.code() == S3Code::RequestTimeout => {
            metrics.client_timeout("body");
        }
        ProxyError::Upstream(_) => metrics.upstream_error(),
        ProxyError::Downstream(_) | ProxyError::Internal(_) => {}
    }
}

async fn pipeline(
    state: &State,
    cors: &cors::Scope<'_>,
    head: Result<Routed, RouteError>,
    req: Request<ClientBody>,
    principal: &mut Option<Principal>,
) -> Result<Response<Body>, ProxyError> {
    admit(&req)?;
    if req.method() == Method::OPTIONS {
        return cors
            .preflight(req.headers())
            .map_err(ProxyError::downstream);
    }
    let (verified, head, form_answer) = verify(state, head, req).await?;
    *principal = Some(verified.principal.clone());
    // Route errors are answered only after authentication, as S3 does; an anonymous request
    // gets the answer it always got, whatever its route.
    let routed = match head {
        Err(_) if matches!(verified.principal, Principal::Anonymous) => {
            return Err(ProxyError::downstream(authz::AuthzError::NotAnonymous))
        }
        head => head.map_err(ProxyError::downstream)?,
    };
    let authorized = authz::authorize(routed, verified.principal.clone(), &state.anonymous)
        .map_err(ProxyError::downstream)?;
    let routed = authorized.routed();
    routed
        .check_declared_length(verified.content_length)
        .map_err(ProxyError::downstream)?;
    if let Some(answer) = cors.bucket_api(routed.op) {
        return answer.map_err(ProxyError::downstream);
    }
    if routed.op == Operation::BucketConfig(BucketResource::Cors, Verb::Get) {
        return bucket_cors_answer(state, routed).await;
    }
    refuse_unsupported_rules(state, routed)?;
    let upstream = upstream_of(state, authorized.upstream())?.authorized(&authorized);
    let Verified {
        parts,
        body,
        content_length,
        ..
    } = verified;
    let failure = body.failure();

    let out = outgoing(routed, &parts, content_length)?;
    let (out, sse) = sse::Stage::prepare(&state.sse, routed, &parts.headers, out)?;
    let (out, transform) = cse::plan(&state.encryption, routed, &upstream, out).await?;
    let (out, mut transform, fallback) =
        copy::plan(routed, &sse, &upstream, out, transform).await?;
    let mut upload_listed = true;
    let (signed, replay) = match transform.body_kind(routed.body) {
        BodyKind::Data => {
            let trailer = trailer_checksum(&parts.headers);
            let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
            let signed = sign_data(&upstream, &mut transform, out, body, trailer)?;
            (signed, None)
        }
        BodyKind::Xml | BodyKind::Json => {
            let doc = read_document(routed, body).await?;
            if routed.op == Operation::CompleteMultipartUpload
                && matches!(transform, cse::Transform::Pass)
            {
                upload_listed = uploads::listed(&upstream, &out).await?;
            }
            let doc = transform.document(&upstream, &out, doc).await?;
            sign_document(&upstream, out, &doc, sse.wants_replay())?
        }
    };

    let resp = send_verified(&upstream, signed, &failure).await?;
    let (resp, transform, replay) = match fallback {
        Some(copy) => {
            copy.settle(routed, &sse, &upstream, resp, transform, replay)
                .await?
        }
        None => (resp, transform, replay),
    };
    let resp = if upload_listed {
        resp
    } else {
        uploads::judge(resp)?
    };
    let resp = sse.settle(&upstream, resp, replay).await?;
    let mut resp = transform.reply(&upstream, resp).await?;
    upstream::forwardable_response_headers(resp.headers_mut());
    if let Some(answer) = form_answer {
        resp = answer.respond(resp)?;
    }
    if let (Operation::ListBuckets, Some(id)) = (routed.op, authorized.principal().client()) {
        resp = listing::visible_buckets(resp, id.clone()).await?;
    }
    if matches!(routed.op, Operation::BucketConfig(BucketResource::Cors, _)) {
        // Changed (or not) through the proxy: the next request reads the bucket's rules again.
        if let Some(b) = routed.target.bucket() {
            state.bucket_cors.invalidate(b);
        }
    }
    Ok(resp)
}

/// Authenticates the request: a form upload from its fields (it becomes the PutObject that
/// stores its file, routed, with the answer the form asked for), any other from its head.
async fn verify(
    state: &State,
    head: Result<Routed, RouteError>,
    req: Request<ClientBody>,
) -> Result<
    (
        Verified<RequestBody>,
        Result<Routed, RouteError>,
        Option<form::Reply>,
    ),
    ProxyError,
> {
    let virtual_host_bucket = head
        .as_ref()
        .ok()
        .filter(|r| r.virtual_host)
        .and_then(|r| r.target.bucket())
        .map(str::to_owned);
    let cx = AuthContext {
        region: &state.region,
        now: SystemTime::now(),
        sigv2: state.sigv2,
        virtual_host_bucket: virtual_host_bucket.as_deref(),
    };
    Ok(match head {
        Ok(routed) if routed.op == Operation::PostObject => {
            let (verified, routed, answer) = form::verify(req, routed, &state.clients, &cx).await?;
            (verified, Ok(routed), Some(answer))
        }
        head => {
            let req = req.map(http_body_util::Either::Left);
            let verified =
                auth::verify(req, &state.clients, &cx).map_err(ProxyError::downstream)?;
            (verified, head, None)
        }
    })
}

/// `GetBucketCors` of a bucket that takes its rules from the backend (config-sourced ones are
/// answered by `cors::Scope::bucket_api`): the rules the proxy applies, read afresh, in S3's
/// document form, so that the answer is what preflights are answered from. A bucket with no
/// CORS source at all has no configuration.
async fn bucket_cors_answer(state: &State, routed: &Routed) -> Result<Response<Body>, ProxyError> {
    match rules_from_bucket(state, Some(routed), true).await {
        Some(Fetched::Failed(e)) => Err(ProxyError::upstream(e)),
        Some(Fetched::Rules(rules)) => {
            cors::configuration_response(Some(&rules)).map_err(ProxyError::downstream)
        }
        Some(Fetched::NoRules) | None => {
            cors::configuration_response(None).map_err(ProxyError::downstream)
        }
    }
}

/// The proxy's own requests for client-side encryption (HEAD, seal, ListParts) carry no SSE-C
/// key, so a bucket with both rules would fail in confusing ways: it is refused plainly.
fn refuse_unsupported_rules(state: &State, routed: &Routed) -> Result<(), ProxyError> {
    if bucket_rules(state, routed) == (true, Some(RuleKind::SseC)) {
        return Err(CseError::Unsupported("An sse-c rule").into());
    }
    Ok(())
}

/// What is refused before anything else looks at the request: plain HTTP from a trusted
/// terminator that does not vouch for HTTPS, and request-smuggling framing.
fn admit(req: &Request<ClientBody>) -> Result<(), ProxyError> {
    if req
        .extensions()
        .get::<ViaTrustedProxy>()
        .is_some_and(|v| v.plaintext)
    {
        forwarded::check_https(req.headers()).map_err(ProxyError::downstream)?;
    }
    check_framing(req.headers()).map_err(ProxyError::downstream)
}

/// The upstream request as the client asked for it, before the encryption stages: the
/// routed target and query, forwardable headers, and the copy source exactly as authorised.
fn outgoing<'r>(
    routed: &'r Routed,
    parts: &http::request::Parts,
    content_length: Option<u64>,
) -> Result<Outgoing<'r>, ProxyError> {
    let mut out = Outgoing {
        method: parts.method.clone(),
        target: &routed.target,
        query: routed.query.clone(),
        headers: upstream::forwardable_request_headers(&parts.headers),
        content_length,
    };
    if let Some(src) = &routed.copy_source {
        let v = HeaderValue::from_str(&src.header_value())
            .map_err(|_| ProxyError::downstream(RouteError::BadCopySource))?;
        out.headers.insert(headers::X_AMZ_COPY_SOURCE, v);
    }
    Ok(out)
}

/// A streamed data body, sealed by the transform when the bucket encrypts, signed.
fn sign_data<'o>(
    upstream: &Sender<'_>,
    transform: &mut cse::Transform,
    out: Outgoing<'o>,
    body: Body,
    trailer: Option<ChecksumAlgorithm>,
) -> Result<Dispatch<'o>, ProxyError> {
    if out.content_length.is_none() {
        return Err(ProxyError::downstream(FramingError::MissingLength));
    }
    let (out, body, trailer) = transform.seal_body(out, body, trailer)?;
    upstream
        .sign_stream(out, body, trailer, SystemTime::now())
        .map_err(ProxyError::upstream)
}

/// A buffered document, signed by its hash; kept for a replay when the SSE stage may need
/// to send it again with an old key.
fn sign_document<'o>(
    upstream: &Sender<'_>,
    mut out: Outgoing<'o>,
    doc: &Bytes,
    keep: bool,
) -> Result<(Dispatch<'o>, Option<sse::Replay<'o>>), ProxyError> {
    out.content_length = Some(doc.len() as u64);
    let replay = keep.then(|| sse::Replay {
        out: out.clone(),
        body: doc.clone(),
    });
    let signed = upstream
        .sign(
            out,
            &Payload::Known(doc),
            crate::body::full(doc.clone()),
            SystemTime::now(),
        )
        .map_err(ProxyError::upstream)?;
    Ok((Dispatch::Signed(signed), replay))
}

/// Sends the re-signed request. A body that failed verification on the way aborts the
/// upstream request; the client then gets the verification error, not a gateway error.
async fn send_verified(
    upstream: &Sender<'_>,
    signed: Dispatch<'_>,
    failure: &OnceLock<auth::AuthError>,
) -> Result<Response<Body>, ProxyError> {
    let sent = upstream.dispatch(signed).await;
    if let Some(auth_err) = failure.get() {
        return Err(rejected(auth_err));
    }
    let resp = sent.map_err(ProxyError::upstream)?;
    Ok(resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
}

/// The request routed from its unauthenticated head, for what must be known before (or
/// whether or not) it is verified: its CORS rules and its operation's metrics label.
fn route_head(state: &State, req: &Request<Incoming>) -> Result<Routed, RouteError> {
    let addressing = route::Addressing {
        domain: state.domain.as_deref(),
        legacy_bucket_names: state.legacy_bucket_names,
    };
    route::route(req.method(), req.uri(), req.headers(), addressing)
}

/// The CORS rules of the addressed bucket, found from the unauthenticated head: preflights
/// carry no credentials, and refusals must be readable by the page that caused them.
/// `from_bucket` holds the rules read for a bucket that takes them from the backend.
fn cors_scope<'s>(
    state: &'s State,
    head: Option<&Routed>,
    from_bucket: Option<&'s Fetched>,
    req: &Request<Incoming>,
) -> cors::Scope<'s> {
    let applied = match from_bucket {
        Some(fetched) => fetched.applied(),
        None => Applied::Config(
            head.and_then(|r| r.target.bucket().and_then(|b| state.buckets.for_bucket(b))),
        ),
    };
    cors::Scope::applying(applied, req.method(), req.headers())
}

/// The rules of the addressed bucket when it takes them from the backend (`None` otherwise):
/// cached, or read now when stale or when `fresh`.
async fn rules_from_bucket(state: &State, head: Option<&Routed>, fresh: bool) -> Option<Fetched> {
    let bucket = head?.target.bucket()?;
    let Some(cors::Source::Bucket(source)) = state.buckets.source(bucket) else {
        return None;
    };
    let upstream = state.upstreams.get(&source.upstream);
    Some(
        state
            .bucket_cors
            .rules(bucket, source, upstream, fresh)
            .await,
    )
}

/// The checksum algorithm the client announced in `x-amz-trailer`, if any.
fn trailer_checksum(h: &HeaderMap) -> Option<ChecksumAlgorithm> {
    let name = h.get(headers::X_AMZ_TRAILER)?.to_str().ok()?;
    ChecksumAlgorithm::from_header_name(name.trim())
}

/// DeleteObjects names its keys in the body: the proxy's own objects are refused there as
/// everywhere else a key can appear.
fn check_delete_keys(doc: &[u8]) -> Result<(), ProxyError> {
    let keys = xml::delete_keys(doc).map_err(ProxyError::downstream)?;
    if keys.iter().any(|k| k.starts_with(route::RESERVED_PREFIX)) {
        return Err(ProxyError::downstream(RouteError::ReservedKey));
    }
    Ok(())
}

/// A document body, read whole (bounded) and checked: XML without DTDs, and the keys of a
/// DeleteObjects outside the proxy's namespace.
async fn read_document(
    routed: &Routed,
    body: VerifiedBody<RequestBody>,
) -> Result<Bytes, ProxyError> {
    let doc = read_bounded(body).await?;
    if routed.body == BodyKind::Xml {
        xml::check_document(&doc).map_err(ProxyError::downstream)?;
    }
    if routed.op == Operation::DeleteObjects {
        check_delete_keys(&doc)?;
    }
    if routed.op == Operation::CompleteMultipartUpload {
        xml::check_part_order(&doc).map_err(ProxyError::downstream)?;
    }
    if routed.op == Operation::BucketConfig(BucketResource::Cors, Verb::Put) {
        // Stored only if the proxy can apply it exactly: it answers preflights from it.
        cors::parse_configuration(&doc).map_err(ProxyError::downstream)?;
    }
    Ok(doc)
}

async fn read_bounded(body: VerifiedBody<RequestBody>) -> Result<Bytes, ProxyError> {
    let failure = body.failure();
    match Limited::new(body, xml::MAX_DOCUMENT_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            if let Some(auth_err) = failure.get() {
                return Err(rejected(auth_err));
            }
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(ProxyError::downstream(XmlError::TooLarge));
            }
            Err(ProxyError::downstream(FramingError::Incomplete(
                e.to_string(),
            )))
        }
    }
}

/// A body verification failure, as recorded by [`VerifiedBody`] while the upstream was
/// reading it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct BodyRejected {
    code: S3Code,
    message: String,
}

impl S3Error for BodyRejected {
    fn code(&self) -> S3Code {
        self.code
    }
}

fn rejected(e: &auth::AuthError) -> ProxyError {
    ProxyError::downstream(BodyRejected {
        code: e.code(),
        message: e.to_string(),
    })
}

/// Request framing the proxy refuses before anything else looks at the request.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("A request may not carry both Content-Length and Transfer-Encoding.")]
    Ambiguous,
    #[error("Transfer-Encoding '{0}' is not supported; only 'chunked' is.")]
    TransferEncoding(String),
    #[error("You must provide the Content-Length HTTP header.")]
    MissingLength,
    #[error("The request body could not be read: {0}")]
    Incomplete(String),
}

impl S3Error for FramingError {
    fn code(&self) -> S3Code {
        match self {
            FramingError::Ambiguous | FramingError::TransferEncoding(_) => S3Code::InvalidRequest,
            FramingError::MissingLength => S3Code::MissingContentLength,
            FramingError::Incomplete(_) => S3Code::IncompleteBody,
        }
    }
}

/// Refuses the request-smuggling forms of RFC 9112 §6.3: both framings at once, or any
/// transfer coding other than a single `chunked`.
fn check_framing(h: &HeaderMap) -> Result<(), FramingError> {
    let te: Vec<_> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
    if te.is_empty() {
        return Ok(());
    }
    if h.contains_key(header::CONTENT_LENGTH) {
        return Err(FramingError::Ambiguous);
    }
    match te.as_slice() {
        [v] if v.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(FramingError::TransferEncoding(
            te.iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// 16 uppercase hex digits, the shape of S3's `x-amz-request-id`. From the thread's RNG: an
/// id needs to be unique, not secret, and a fresh OS random number per request cost a
/// `getrandom` system call on every request.
fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn smuggling_forms_are_refused() {
        assert!(check_framing(&hm(&[("content-length", "3")])).is_ok());
        assert!(check_framing(&hm(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(matches!(
            check_framing(&hm(&[
                ("transfer-encoding", "chunked"),
                ("content-length", "3")
            ])),
            Err(FramingError::Ambiguous)
        ));
        for te in ["chunked, identity", "xchunked", "gzip"] {
            assert!(matches!(
                check_framing(&hm(&[("transfer-encoding", te)])),
                Err(FramingError::TransferEncoding(_))
            ));
        }
        assert!(check_framing(&hm(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]))
        .is_err());
    }

    #[test]
    fn request_ids_are_distinct() {
        let a = new_request_id();
        assert_eq!(a.len(), 16);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{a}: not S3's uppercase hex"
        );
        assert_ne!(a, new_request_id());
    }
}
