//! The load generator: one pooled HTTP/1.1 client type for both endpoints (plain HTTP to the
//! store, HTTPS to the proxy), SigV4-signed requests, and generated bodies that never hold an
//! object in memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::setup::Keys;

/// The bucket of the direct and plain-proxy workloads.
pub const BUCKET: &str = "bench";
/// The bucket with an SSE-S3 rule (the proxy injects `x-amz-server-side-encryption: AES256`).
pub const SSE_BUCKET: &str = "bench-sse";
/// The bucket with client-side encryption (the proxy's config has an `encryption` rule for it).
pub const CSE_BUCKET: &str = "bench-cse";

/// Size of the chunks a generated body is sent in.
const CHUNK: usize = 64 * 1024;

/// A request body of `remaining` bytes, produced from one shared chunk: a 256 MiB upload
/// costs 64 KiB of memory in the client.
pub struct Generated {
    chunk: Bytes,
    remaining: u64,
}

impl Generated {
    pub fn new(len: u64) -> Self {
        static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let chunk = PATTERN
            .get_or_init(|| {
                // Not all zeros, so nothing along the way can shortcut it.
                (0..CHUNK)
                    .map(|i| u8::try_from(i % 251).expect("below 251"))
                    .collect::<Vec<u8>>()
                    .into()
            })
            .clone();
        Generated {
            chunk,
            remaining: len,
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Generated>;

/// One endpoint under test, with its own connection pool.
pub struct Endpoint {
    pub name: &'static str,
    bucket: &'static str,
    base: String,
    authority: String,
    identity: Identity,
    client: HttpClient,
}

impl Endpoint {
    /// An endpoint whose workloads use `bucket`. `base` is `http://HOST:PORT` or
    /// `https://HOST:PORT`; HTTPS trusts only `ca` (PEM).
    pub fn for_bucket(
        name: &'static str,
        base: &str,
        keys: &Keys,
        ca: &[u8],
        bucket: &'static str,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca[..]) {
            roots.add(cert.context("reading the CA certificate")?)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(300))
            .build(https);
        let authority = base.split_once("://").map_or(base, |(_, a)| a).to_owned();
        Ok(Endpoint {
            name,
            bucket,
            base: base.to_owned(),
            authority,
            identity: Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                None,
                None,
                "bench",
            )
            .into(),
            client,
        })
    }

    /// A SigV4-signed request (`UNSIGNED-PAYLOAD` for bodies, as SDKs send over TLS).
    fn signed(
        &self,
        method: Method,
        path: &str,
        body_len: Option<u64>,
    ) -> anyhow::Result<Request<Generated>> {
        let uri = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, &self.authority);
        if let Some(len) = body_len {
            req = req.header(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let mut req = req.body(Generated::new(body_len.unwrap_or(0)))?;
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let body = if body_len.is_some() {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(&[])
        };
        let signable =
            SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), body)?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Sends one request and reads the whole response; returns the response body's length.
    async fn call(&self, method: Method, path: &str, body_len: Option<u64>) -> anyhow::Result<u64> {
        let req = self.signed(method.clone(), path, body_len)?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("{} {method} {path}", self.name))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut received = 0u64;
        let mut error_text = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                received += data.len() as u64;
                if status != StatusCode::OK && error_text.len() < 4096 {
                    error_text.extend_from_slice(&data);
                }
            }
        }
        if status != StatusCode::OK {
            bail!(
                "{} {method} {path}: {status}: {}",
                self.name,
                String::from_utf8_lossy(&error_text)
            );
        }
        Ok(received)
    }

    /// Creates `bucket` (any bucket, not only this endpoint's own).
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.call(Method::PUT, &format!("/{bucket}"), Some(0))
            .await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, len: u64) -> anyhow::Result<()> {
        self.call(Method::PUT, &format!("/{}/{key}", self.bucket), Some(len))
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &str, len: u64) -> anyhow::Result<()> {
        let got = self
            .call(Method::GET, &format!("/{}/{key}", self.bucket), None)
            .await?;
        if got != len {
            bail!("{} GET {key}: {got} bytes, expected {len}", self.name);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
}

/// One workload: `requests` requests of `op` on `size`-byte objects, `concurrency` at a time.
#[derive(Clone, Copy)]
pub struct Workload {
    pub op: Op,
    pub size: u64,
    pub concurrency: usize,
    pub requests: usize,
}

impl Workload {
    /// The object every GET of this size reads (written once, before the rounds).
    pub fn source_key(size: u64) -> String {
        format!("source/{size}")
    }
}

/// What one round measured.
pub struct Round {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Per-request time to the last response byte, sorted.
    pub latencies: Vec<Duration>,
}

/// Runs one round of `w` against `ep`.
pub async fn round(ep: &Arc<Endpoint>, w: Workload) -> anyhow::Result<Round> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(w.concurrency);
    for worker in 0..w.concurrency {
        let ep = ep.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let put_key = format!("put/{}/{}/{worker}", ep.name, w.size);
            let get_key = Workload::source_key(w.size);
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < w.requests {
                let t = Instant::now();
                match w.op {
                    Op::Put => ep.put(&put_key, w.size).await?,
                    Op::Get => ep.get(&get_key, w.size).await?,
                }
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(w.requests);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(Round {
        bytes: w.size * w.requests as u64,
        elapsed,
        latencies,
    })
}
