//! The upstream leg: a pooled HTTPS client, and SigV4 re-signing with the upstream's own
//! credentials. `upstream` never sees client credentials.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::SignableBody;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use http_body_util::{BodyExt, Full};

use crate::auth::checksum::ChecksumAlgorithm;
use crate::auth::SecretKey;
use crate::authz::Authorized;
use crate::body::Body;
use crate::error::{S3Code, S3Error};
use crate::outbound::{self, HttpsClient, Service, SignError, Signer};
use crate::s3::headers;
use crate::s3::route::{encode_path, Target};

pub mod chunked;
pub mod trailers;

use trailers::{Decision, ProbeGuard, TrailerMode, TrailerSupport};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unused pooled connection to the upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("The upstream could not be reached or did not answer: {0}")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("The request could not be signed for the upstream: {0}")]
    Signing(#[from] SignError),
    #[error("The request could not be built for the upstream: {0}")]
    Build(#[from] http::Error),
    #[error("The upstream TLS configuration is invalid: {0}")]
    Tls(String),
    #[error("The upstream's answer could not be read: {0}")]
    Answer(String),
    #[error("The request body could not be read: {0}")]
    Body(#[source] crate::body::BoxError),
}

impl S3Error for UpstreamError {
    fn code(&self) -> S3Code {
        match self {
            UpstreamError::Unreachable(_) | UpstreamError::Answer(_) => S3Code::BadGateway,
            UpstreamError::Body(_) => S3Code::IncompleteBody,
            UpstreamError::Signing(_) | UpstreamError::Build(_) | UpstreamError::Tls(_) => {
                S3Code::InternalError
            }
        }
    }
}

/// Which URL form the upstream expects.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressingStyle {
    #[default]
    Path,
    Virtual,
}

/// One `[[upstream]]`, validated.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub endpoint: http::Uri,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretKey,
    pub addressing_style: AddressingStyle,
    pub ca_bundle: Option<std::path::PathBuf>,
    /// `forward_checksum_trailers`: whether clients' trailing checksums go on to it.
    pub forward_checksum_trailers: TrailerMode,
    /// Whether `/readyz` fails while this upstream is unreachable (`readiness`).
    pub required_for_readiness: bool,
}

/// How the body of an outgoing request is described in its signature.
pub enum Payload<'a> {
    /// Fully known (empty, or a buffered XML document): signed by its SHA-256.
    Known(&'a [u8]),
    /// Streamed and already verified by the proxy: `UNSIGNED-PAYLOAD` (the upstream leg is
    /// TLS-protected; Content-MD5 and `x-amz-checksum-*` headers are forwarded when present).
    Streamed,
    /// Streamed as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, ending with the client's checksum.
    StreamedWithTrailer,
}

/// A request ready to send: signed, or the body of a trailer probe (see [`trailers`]), signed
/// when it is sent because it is sent once or twice.
pub enum Dispatch<'o> {
    Signed(Request<Body>),
    Probe(Probe<'o>),
}

/// A trailer-bearing body kept whole, to learn whether the upstream takes its trailer.
pub struct Probe<'o> {
    out: Outgoing<'o>,
    body: Body,
    algorithm: ChecksumAlgorithm,
    guard: ProbeGuard,
}

/// What to send upstream, before signing.
#[derive(Clone)]
pub struct Outgoing<'a> {
    pub method: Method,
    pub target: &'a Target,
    /// Query parameters (decoded), in client order, without presigned-URL auth parameters.
    pub query: Vec<(String, String)>,
    /// Headers to forward (already filtered of hop-by-hop and client auth headers).
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
}

impl Outgoing<'_> {
    /// The `uploadId` the request names (routing guarantees one for the multipart operations).
    pub fn upload_id(&self) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == "uploadId")
            .map(|(_, v)| v.as_str())
    }
}

/// Which upstream a command-line tool works on.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("the config has {0} upstreams: name one with --upstream")]
    Which(usize),
    #[error("the config has no upstream named {0}")]
    Missing(String),
    #[error("upstream TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// The client for the upstream `name`, or for the only one when `name` is `None`.
pub fn client_for<S: std::hash::BuildHasher>(
    mut upstreams: HashMap<String, Upstream, S>,
    name: Option<&str>,
) -> Result<UpstreamClient, ChooseError> {
    let cfg = match name {
        Some(name) => upstreams
            .remove(name)
            .ok_or_else(|| ChooseError::Missing(name.to_owned()))?,
        None if upstreams.len() == 1 => upstreams
            .into_values()
            .next()
            .ok_or(ChooseError::Which(0))?,
        None => return Err(ChooseError::Which(upstreams.len())),
    };
    let tls = crate::tls::client_config(cfg.ca_bundle.as_deref())?;
    Ok(UpstreamClient::new(cfg, tls))
}

/// One configured upstream with its connection pool.
pub struct UpstreamClient {
    cfg: Upstream,
    signer: Signer,
    client: HttpsClient,
    /// Learned from an answer: this backend cannot make the copies an SSE rule asks for
    /// (Ceph RGW 16 answers 501 for any encrypted source and drops a copy's SSE headers), so
    /// they go through the proxy without asking it first. Kept for the config's lifetime.
    copies_through_proxy: AtomicBool,
    trailers: Arc<TrailerSupport>,
}

impl UpstreamClient {
    pub fn new(cfg: Upstream, tls: rustls::ClientConfig) -> Self {
        let trailers = Arc::new(TrailerSupport::new(
            &cfg.name,
            cfg.forward_checksum_trailers,
        ));
        UpstreamClient::with_trailer_support(cfg, tls, trailers)
    }

    /// [`UpstreamClient::new`] keeping what an earlier generation learnt about the upstream's
    /// trailer support (a reload), when `known` is for the same endpoint and setting.
    pub fn carried_over(cfg: Upstream, tls: rustls::ClientConfig, known: &UpstreamClient) -> Self {
        let same = known.cfg.endpoint == cfg.endpoint
            && known.trailers.mode() == cfg.forward_checksum_trailers;
        if same {
            let trailers = Arc::clone(&known.trailers);
            UpstreamClient::with_trailer_support(cfg, tls, trailers)
        } else {
            UpstreamClient::new(cfg, tls)
        }
    }

    fn with_trailer_support(
        cfg: Upstream,
        tls: rustls::ClientConfig,
        trailers: Arc<TrailerSupport>,
    ) -> Self {
        let client = outbound::https_client(tls, CONNECT_TIMEOUT, Some(POOL_IDLE));
        let signer = Signer::new(
            &cfg.access_key_id,
            cfg.secret_access_key.expose(),
            &cfg.region,
            Service::S3,
        );
        UpstreamClient {
            cfg,
            signer,
            client,
            copies_through_proxy: AtomicBool::new(false),
            trailers,
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// What this upstream does with trailing checksums, for `/metrics`.
    pub fn trailer_support(&self) -> Arc<TrailerSupport> {
        Arc::clone(&self.trailers)
    }

    /// The upstream for one authorized request: the client's own, and the requests the
    /// proxy sends on its behalf (HEADs, seals, part lists).
    pub fn authorized(&self, _proof: &Authorized) -> Sender<'_> {
        Sender { client: self }
    }

    /// Reads `bucket`'s CORS configuration (`GetBucketCors`) for the proxy itself, to answer
    /// preflights on buckets that take their rules from the bucket (`docs/cors.md`). Not a
    /// [`Sender`]: this one fixed read of configuration is all the proxy sends upstream
    /// without an [`Authorized`] request (preflights carry no credentials). The answer's body
    /// is read up to `limit` bytes; a longer one is an error.
    pub async fn bucket_cors(
        &self,
        bucket: &str,
        limit: usize,
    ) -> Result<(http::StatusCode, bytes::Bytes), UpstreamError> {
        let target = Target::Bucket(bucket.to_owned());
        let out = Outgoing {
            method: Method::GET,
            target: &target,
            query: vec![("cors".to_owned(), String::new())],
            headers: HeaderMap::new(),
            content_length: None,
        };
        let sender = Sender { client: self };
        let req = sender.sign(
            out,
            &Payload::Known(b""),
            crate::body::empty(),
            SystemTime::now(),
        )?;
        let resp = sender.send(req).await?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| UpstreamError::Answer(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    /// The upstream for `s3seal rewrap` and `s3seal reencrypt`: the operator's own commands,
    /// which act with the upstream's credentials by design and serve no client.
    pub fn operator(&self) -> Sender<'_> {
        Sender { client: self }
    }
}

/// The only way to sign and send a request upstream. It is made from an [`Authorized`]
/// request (or by an operator's command), so nothing reaches the upstream that was not
/// verified and authorized first.
pub struct Sender<'a> {
    client: &'a UpstreamClient,
}

impl Sender<'_> {
    pub fn name(&self) -> &str {
        self.client.name()
    }

    /// Whether copies under an SSE rule are made by the proxy (GET, then PUT or UploadPart)
    /// because this backend was seen failing them.
    pub fn copies_through_proxy(&self) -> bool {
        // A hint only: a stale read costs one more try at a server-side copy.
        self.client.copies_through_proxy.load(Ordering::Relaxed)
    }

    /// Remembers that this backend cannot make the copies an SSE rule asks for.
    pub fn learn_copies_through_proxy(&self) {
        self.client
            .copies_through_proxy
            .store(true, Ordering::Relaxed);
    }

    /// Builds and signs the upstream request for `out`, with `body` as its body.
    pub fn sign(
        &self,
        out: Outgoing<'_>,
        payload: &Payload<'_>,
        body: Body,
        now: SystemTime,
    ) -> Result<Request<Body>, UpstreamError> {
        let (authority, path) = self.locate(out.target);
        let scheme = self.client.cfg.endpoint.scheme_str().unwrap_or("https");
        let query = encode_query(&out.query);
        let uri = if query.is_empty() {
            format!("{scheme}://{authority}{path}")
        } else {
            format!("{scheme}://{authority}{path}?{query}")
        };
        let mut req = Request::builder().method(out.method).uri(&uri).body(body)?;
        let h = req.headers_mut();
        *h = out.headers;
        h.insert(
            header::HOST,
            HeaderValue::from_str(&authority).map_err(http::Error::from)?,
        );
        if let Some(len) = out.content_length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }

        let signable_body = match payload {
            Payload::Known(bytes) => SignableBody::Bytes(bytes),
            Payload::Streamed => SignableBody::UnsignedPayload,
            Payload::StreamedWithTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
        };
        self.client.signer.sign(&mut req, signable_body, now)?;
        Ok(req)
    }

    /// Prepares a streamed, verified body. When the client protected it with a trailing
    /// checksum and this upstream takes aws-chunked trailers, the body is re-encoded so the
    /// checksum travels on and the upstream verifies it too; when it does not, or is not
    /// known to, the decoded body goes as is (s3seal has verified the checksum either way).
    /// The first such body of an upstream whose support is unknown becomes a [`Probe`].
    pub fn sign_stream<'o>(
        &self,
        out: Outgoing<'o>,
        body: Body,
        trailer: Option<ChecksumAlgorithm>,
        now: SystemTime,
    ) -> Result<Dispatch<'o>, UpstreamError> {
        let (Some(algorithm), Some(decoded)) = (trailer, out.content_length) else {
            return Ok(Dispatch::Signed(self.sign(
                out,
                &Payload::Streamed,
                body,
                now,
            )?));
        };
        let signed = match self.client.trailers.decide(decoded) {
            Decision::Forward => self.sign_with_trailer(out, body, algorithm, now)?,
            Decision::Strip => self.sign(out, &Payload::Streamed, body, now)?,
            Decision::Probe(guard) => {
                return Ok(Dispatch::Probe(Probe {
                    out,
                    body,
                    algorithm,
                    guard,
                }))
            }
        };
        Ok(Dispatch::Signed(signed))
    }

    /// Re-encodes `body` as aws-chunked ending with the checksum trailer, and signs it.
    fn sign_with_trailer(
        &self,
        mut out: Outgoing<'_>,
        body: Body,
        algorithm: ChecksumAlgorithm,
        now: SystemTime,
    ) -> Result<Request<Body>, UpstreamError> {
        let decoded = out.content_length.unwrap_or_default();
        let h = &mut out.headers;
        let encoding = match h
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
        {
            Some(other) => format!("aws-chunked, {other}"),
            None => "aws-chunked".to_owned(),
        };
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(&encoding).map_err(http::Error::from)?,
        );
        h.insert(
            headers::X_AMZ_DECODED_CONTENT_LENGTH,
            HeaderValue::from(decoded),
        );
        h.insert(
            headers::X_AMZ_TRAILER,
            HeaderValue::from_static(algorithm.header_name()),
        );
        h.insert(
            headers::X_AMZ_SDK_CHECKSUM_ALGORITHM,
            HeaderValue::from_static(algorithm.display_name()),
        );
        out.content_length = Some(chunked::encoded_len(decoded, algorithm));
        let body = chunked::AwsChunked::new(body, algorithm, decoded).boxed_unsync();
        self.sign(out, &Payload::StreamedWithTrailer, body, now)
    }

    /// Sends a prepared request.
    pub async fn dispatch(&self, d: Dispatch<'_>) -> Result<Response<Incoming>, UpstreamError> {
        match d {
            Dispatch::Signed(req) => self.send(req).await,
            Dispatch::Probe(p) => self.probe(p).await,
        }
    }

    /// Reads the body whole (a verification failure ends it here, before anything is sent),
    /// sends it with its trailer and, when that may have been refused for the trailer, again
    /// without; the upstream's answers teach its trailer support (see [`trailers`]).
    async fn probe(&self, p: Probe<'_>) -> Result<Response<Incoming>, UpstreamError> {
        let Probe {
            out,
            body,
            algorithm,
            guard,
        } = p;
        let collected = body.collect().await.map_err(UpstreamError::Body)?;
        let checksum = collected.trailers().cloned();
        let data = collected.to_bytes();
        let with_trailer = Full::new(data.clone())
            .map_err(|never| match never {})
            .with_trailers(std::future::ready(checksum.map(Ok)))
            .boxed_unsync();
        let req =
            self.sign_with_trailer(out.clone(), with_trailer, algorithm, SystemTime::now())?;
        let first = self.send(req).await?;
        let status = first.status();
        if !trailers::may_refuse_trailer(status) {
            guard.learn(trailers::judge(status, None));
            return Ok(first);
        }
        drop(first);
        let plain = crate::body::full(data);
        let req = self.sign(out, &Payload::Streamed, plain, SystemTime::now())?;
        let second = self.send(req).await?;
        guard.learn(trailers::judge(status, Some(second.status())));
        Ok(second)
    }

    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        self.client
            .client
            .request(req)
            .await
            .map_err(UpstreamError::Unreachable)
    }

    /// The authority and encoded path for a target under this upstream's addressing style.
    fn locate(&self, target: &Target) -> (String, String) {
        let authority = self
            .client
            .cfg
            .endpoint
            .authority()
            .map_or_else(String::new, ToString::to_string);
        match (self.client.cfg.addressing_style, target) {
            (_, Target::Service) => (authority, "/".into()),
            (AddressingStyle::Path, Target::Bucket(b)) => (authority, format!("/{b}")),
            (AddressingStyle::Path, Target::Object { bucket, key }) => {
                (authority, format!("/{bucket}/{}", encode_path(key)))
            }
            (AddressingStyle::Virtual, Target::Bucket(b)) => {
                (format!("{b}.{authority}"), "/".into())
            }
            (AddressingStyle::Virtual, Target::Object { bucket, key }) => (
                format!("{bucket}.{authority}"),
                format!("/{}", encode_path(key)),
            ),
        }
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, as SigV4 wants.
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(k, QUERY_ENCODE));
        if !v.is_empty() {
            out.push('=');
            out.extend(utf8_percent_encode(v, QUERY_ENCODE));
        }
    }
    out
}

/// Headers of a client request that are never forwarded: hop-by-hop (RFC 9110 §7.6.1),
/// the client's own authentication, and framing that the proxy re-creates.
pub fn forwardable_request_headers(src: &HeaderMap) -> HeaderMap {
    let connection_named = connection_tokens(src);
    let mut out = HeaderMap::with_capacity(src.len());
    for (name, value) in src {
        let n = name.as_str();
        let drop = headers::HOP_BY_HOP.contains(&n)
            || connection_named.iter().any(|c| c == n)
            || *name == header::HOST
            || *name == header::AUTHORIZATION
            || *name == header::CONTENT_LENGTH
            || *name == header::TRANSFER_ENCODING
            || *name == header::EXPECT
            || *name == headers::X_AMZ_DATE
            || *name == headers::X_AMZ_CONTENT_SHA256
            || *name == headers::X_AMZ_SECURITY_TOKEN
            || *name == headers::X_AMZ_DECODED_CONTENT_LENGTH
            || *name == headers::X_AMZ_TRAILER
            || *name == headers::X_AMZ_SDK_CHECKSUM_ALGORITHM;
        if drop {
            continue;
        }
        if *name == header::CONTENT_ENCODING {
            // `aws-chunked` describes the client's framing, which the proxy has decoded.
            if let Some(v) = strip_aws_chunked(value) {
                out.append(name.clone(), v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Response headers from upstream, without hop-by-hop ones.
pub fn forwardable_response_headers(src: &mut HeaderMap) {
    let named = connection_tokens(src);
    for n in headers::HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
            src.remove(name);
        }
    }
}

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn strip_aws_chunked(v: &HeaderValue) -> Option<HeaderValue> {
    let s = v.to_str().ok()?;
    let kept: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    if kept.is_empty() {
        None
    } else {
        HeaderValue::from_str(&kept.join(", ")).ok()
    }
}

#[cfg(test)]
mod tests;
