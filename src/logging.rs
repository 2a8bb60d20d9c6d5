//! Logs: the subscriber (text or JSON), one access-log line per request, and the audit log of
//! key use. Operators filter by target: [`ACCESS_TARGET`] and [`AUDIT_TARGET`] are stable
//! names (`S3SEAL_LOG=s3seal::access=info,warn` keeps only the access log and warnings).
//!
//! The access line is written when the response body has been sent (or abandoned), as nginx
//! and Envoy do, so that it carries the bytes really sent and the whole duration. Its fields
//! are listed in `docs/operations.md`; changing a name breaks the operators' queries.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde::Deserialize;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::body::BoxError;

/// The target of the one-line-per-request access log.
pub const ACCESS_TARGET: &str = "s3seal::access";

/// The target of the audit log of key use ([`key_use`]).
pub const AUDIT_TARGET: &str = "s3seal::audit";

/// How log lines are written: `text` for people, `json` (one object per line) for collectors.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown log format '{0}': expected 'text' or 'json'")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

/// The default filter when neither `S3SEAL_LOG` nor `RUST_LOG` is set: everything at `info`,
/// which includes the access log and the audit log.
pub const DEFAULT_FILTER: &str = "info";

/// Lines waiting for stderr at most. When stderr does not keep up (a full pipe to a stalled
/// log collector), further lines are dropped and counted
/// (`s3seal_log_lines_dropped_total`) rather than blocking the workers that serve requests.
/// About 300 bytes a line: at most ~1.2 MiB held.
const LOG_BUFFER_LINES: usize = 4096;

/// Keeps the log writer's thread; dropping it writes out the lines still queued (waiting at
/// most about a second), so `main` holds it until its last line is logged.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Installs the process-wide subscriber, writing to stderr through a thread of its own (the
/// access log must never block a worker on a slow stderr). `filter` is an `EnvFilter`
/// directive string (`info`, `s3seal::access=info,warn`, ...); an invalid one falls back to
/// [`DEFAULT_FILTER`] with a warning, since a typo in a log setting should not stop a proxy.
/// The format is fixed for the life of the process: a reload does not change it.
pub fn init(format: LogFormat, filter: Option<&str>) -> LogGuard {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, bad) = match filter.map(EnvFilter::try_new) {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some(Ok(f)) => (f, None),
        Some(Err(e)) => (EnvFilter::new(DEFAULT_FILTER), Some(e)),
    };
    // Colours only for a person at a terminal, not in files, journald or container logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .thread_name("s3seal-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    crate::metrics::count_dropped_log_lines(move || dropped.dropped_lines() as u64);
    subscriber(format, filter, ansi, writer).init();
    if let Some(e) = bad {
        tracing::warn!(error = %e, "invalid log filter; using '{DEFAULT_FILTER}'");
    }
    LogGuard { _writer: guard }
}

/// Dependencies that describe requests below `info`, pinned at [`PINNED_LEVEL`] whatever
/// `S3SEAL_LOG` says (targets are prefixes: `aws_smithy` is every `aws_smithy_*` crate,
/// `hyper` also `hyper_util` and `hyper_rustls`).
///
/// - `aws_sigv4` writes the whole request it signs at `trace` (`request = ?request`), headers
///   in clear, and so the SSE-C key that an `sse-c` rule adds to the upstream request.
/// - `aws_smithy_*` write event-stream messages and client phases at `trace`/`debug`.
/// - `h2` writes every frame at `debug`/`trace` (header values left out, as of h2 0.4);
///   `hyper_util` writes URIs and connection errors; `hyper` itself logs only when built
///   with `--cfg hyper_unstable_tracing`.
///
/// Not pinned: `rustls` and `tokio_rustls`, whose lines come through the `log` crate. rustls
/// keeps key material out of them by design (secrets reach only a `KeyLog`, and s3seal
/// installs none), and their `debug` lines are what a TLS problem needs.
const PINNED_DEPENDENCIES: [&str; 4] = ["aws_sigv4", "aws_smithy", "hyper", "h2"];

/// The most [`PINNED_DEPENDENCIES`] may log: at `info` and above they report failures, not
/// requests.
const PINNED_LEVEL: LevelFilter = LevelFilter::INFO;

/// The filter that holds [`PINNED_DEPENDENCIES`] at [`PINNED_LEVEL`] and passes the rest.
///
/// It is a second filter, and an event is written only when both it and the operator's
/// `EnvFilter` enable it. Directives appended to the operator's string would not do: for a
/// given event `EnvFilter` uses the most specific matching directive (the longer target, then
/// one with a span name, then the one with more fields; of two identical directives, the
/// later), so `aws_sigv4::http_request=trace` beats an appended `aws_sigv4=info`
/// (`logging::tests::env_filter_lets_the_most_specific_directive_win`).
fn pinned_dependencies() -> Targets {
    PINNED_DEPENDENCIES.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, PINNED_LEVEL),
    )
}

/// The subscriber [`init`] installs, writing to `writer`: the operator's `filter` and the
/// pin of [`PINNED_DEPENDENCIES`] in front of the text or JSON formatter.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        // The current span's fields (the request id) go into every line, flattened events
        // keep the fields at the top level where log collectors look for them.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry().with(layer.with_filter(filter.and(pinned_dependencies())))
}

// === access log ===

/// What the access line says about one request. Built by `proxy::handle` as the request
/// goes, written once by [`AccessLogged`].
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub request_id: String,
    /// The TCP peer: the client, or the trusted TLS terminator in front of it.
    pub peer: Option<SocketAddr>,
    /// The client as a trusted proxy reports it (`Forwarded: for=`, `X-Forwarded-For`).
    pub forwarded_for: Option<String>,
    /// The access key id that signed the request, once authenticated.
    pub client: Option<String>,
    /// The request carried no authentication at all and was taken as anonymous (logged as
    /// `principal = "anonymous"`, else `"key"` when a key signed it, `"-"` before that).
    pub anonymous: bool,
    pub method: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub operation: &'static str,
    pub status: u16,
    /// The S3 error code when the proxy refused the request itself.
    pub error_code: Option<&'static str>,
    /// The request body length as declared (`Content-Length`; aws-chunked framing included).
    /// Body bytes received from the client (as sent: aws-chunked framing included).
    pub bytes_in: u64,
    pub started: Instant,
}

impl AccessRecord {
    fn principal(&self) -> &'static str {
        match (self.anonymous, &self.client) {
            (true, _) => "anonymous",
            (false, Some(_)) => "key",
            (false, None) => "-",
        }
    }

    fn write(&self, bytes_out: u64, complete: bool) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = %self.request_id,
            peer = self.peer.map(tracing::field::display),
            forwarded_for = self.forwarded_for.as_deref(),
            client = self.client.as_deref().unwrap_or("-"),
            principal = self.principal(),
            method = %self.method,
            bucket = self.bucket.as_deref().unwrap_or("-"),
            key = self.key.as_deref().unwrap_or("-"),
            operation = self.operation,
            status = self.status,
            error_code = self.error_code.unwrap_or("-"),
            bytes_in = self.bytes_in,
            bytes_out,
            duration_ms = round3(duration_ms),
            complete,
            "request"
        );
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes it yields and writes the access line when it
    /// ends or is dropped. `complete` is false when the client went away first.
    pub struct AccessLogged<B> {
        #[pin]
        inner: B,
        record: Option<AccessRecord>,
        bytes_out: u64,
        // The body's declared length, when it has one.
        declared: Option<u64>,
        ended: bool,
    }

    impl<B> PinnedDrop for AccessLogged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(record) = this.record.take() {
                record.write(*this.bytes_out, *this.ended);
            }
        }
    }
}

impl<B: HttpBody> AccessLogged<B> {
    pub fn new(inner: B, record: AccessRecord) -> Self {
        // A body that is already at its end (HEAD, 204, an empty object) is complete even if
        // hyper never polls it.
        let ended = inner.is_end_stream();
        let declared = inner.size_hint().exact();
        AccessLogged {
            inner,
            record: Some(record),
            bytes_out: 0,
            declared,
            ended,
        }
    }
}

impl<B> HttpBody for AccessLogged<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes_out += data.len() as u64;
                }
                // hyper stops polling a body of known length once its last byte is out, so
                // the end is seen here, not as a `None`; and not every body knows it is at
                // its end after its last frame, so the declared length decides too.
                if this.inner.is_end_stream() || Some(*this.bytes_out) == *this.declared {
                    *this.ended = true;
                    if let Some(record) = this.record.take() {
                        record.write(*this.bytes_out, true);
                    }
                }
            }
            Poll::Ready(None) => {
                *this.ended = true;
                if let Some(record) = this.record.take() {
                    record.write(*this.bytes_out, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === audit log ===

/// What was done with a key. The names are stable: they are what an auditor searches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOperation {
    /// Object data was encrypted under the key (client-side encryption, on upload).
    Encrypt,
    /// Object data was decrypted under the key (client-side encryption, on download).
    Decrypt,
    /// A data key was wrapped (encrypted) under a key-encryption key.
    WrapKey,
    /// A data key was unwrapped under a key-encryption key.
    UnwrapKey,
    /// The upstream was asked to encrypt with this key (SSE-KMS key id, SSE-C key MD5).
    ServerSideEncrypt,
    /// The upstream was asked to decrypt with this key (SSE-C on a read).
    ServerSideDecrypt,
}

impl KeyOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOperation::Encrypt => "encrypt",
            KeyOperation::Decrypt => "decrypt",
            KeyOperation::WrapKey => "wrap_key",
            KeyOperation::UnwrapKey => "unwrap_key",
            KeyOperation::ServerSideEncrypt => "sse_encrypt",
            KeyOperation::ServerSideDecrypt => "sse_decrypt",
        }
    }
}

impl fmt::Display for KeyOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes one audit line: `key_id` was used for `operation` on `bucket`/`object`.
///
/// `key_id` names the key and never contains it: a config key name, a KMS key id or ARN, or
/// the base64 MD5 of an SSE-C key, as S3 itself reports it. Called inside a request, the line
/// carries the request id from the enclosing `request` span.
pub fn key_use(operation: KeyOperation, bucket: &str, object: Option<&str>, key_id: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        operation = operation.as_str(),
        bucket,
        object = object.unwrap_or("-"),
        key_id,
        "key use"
    );
}

#[cfg(test)]
mod tests;
