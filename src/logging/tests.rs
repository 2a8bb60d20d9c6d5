use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::BodyExt;

use super::*;

/// Collects what a JSON subscriber writes, one line per event.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn capture<R>(f: impl FnOnce() -> R) -> (R, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, lines.text())
}

fn record() -> AccessRecord {
    AccessRecord {
        request_id: "REQ1".into(),
        peer: Some("127.0.0.1:5000".parse().unwrap()),
        forwarded_for: None,
        client: Some("APPKEY1".into()),
        anonymous: false,
        method: "GET".into(),
        bucket: Some("b".into()),
        key: Some("dir/k".into()),
        operation: "GetObject",
        status: 200,
        error_code: None,
        bytes_in: 0,
        started: Instant::now(),
    }
}

fn body(data: &'static [u8]) -> crate::body::Body {
    crate::body::full(data)
}

#[test]
fn log_format_parses() {
    assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
    assert_eq!(" TEXT ".parse::<LogFormat>().unwrap(), LogFormat::Text);
    assert!("yaml".parse::<LogFormat>().is_err());
}

#[test]
fn access_line_is_written_once_when_the_body_ends() {
    let ((), out) = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let logged = AccessLogged::new(body(b"hello"), record());
        let bytes = rt.block_on(logged.collect()).unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = lines[0];
    for field in [
        r#""target":"s3seal::access""#,
        r#""request_id":"REQ1""#,
        r#""client":"APPKEY1""#,
        r#""principal":"key""#,
        r#""method":"GET""#,
        r#""bucket":"b""#,
        r#""key":"dir/k""#,
        r#""operation":"GetObject""#,
        r#""status":200"#,
        r#""error_code":"-""#,
        r#""bytes_in":0"#,
        r#""bytes_out":5"#,
        r#""complete":true"#,
        r#""peer":"127.0.0.1:5000""#,
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(line.contains(r#""duration_ms":"#), "{line}");
}

#[test]
fn anonymous_requests_are_marked_in_the_access_line() {
    let mut anonymous = record();
    anonymous.client = None;
    anonymous.anonymous = true;
    let mut refused = record();
    refused.client = None;
    let ((), out) = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for r in [anonymous, refused] {
            rt.block_on(AccessLogged::new(body(b""), r).collect())
                .unwrap();
        }
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(r#""principal":"anonymous""#), "{out}");
    assert!(lines[0].contains(r#""client":"-""#), "{out}");
    assert!(lines[1].contains(r#""principal":"-""#), "{out}");
}

/// Yields one data frame, then never finishes: a download the client abandons.
struct Stalled(bool);

impl HttpBody for Stalled {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.0 {
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"abc")))))
    }
}

#[test]
fn an_abandoned_body_is_logged_incomplete() {
    let ((), out) = capture(|| {
        let mut logged = Box::pin(AccessLogged::new(Stalled(false), record()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            logged.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(logged.as_mut().poll_frame(&mut cx).is_pending());
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(r#""bytes_out":3"#), "{out}");
    assert!(out.contains(r#""complete":false"#), "{out}");
}

/// hyper's way: a body of known length is polled until `is_end_stream`, never to `None`.
#[test]
fn a_body_of_known_length_is_complete_when_its_last_byte_is_out() {
    let ((), out) = capture(|| {
        let mut logged = Box::pin(AccessLogged::new(body(b"error document"), record()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            logged.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(logged.is_end_stream());
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(r#""bytes_out":14"#), "{out}");
    assert!(out.contains(r#""complete":true"#), "{out}");
}

#[test]
fn an_empty_body_is_complete_without_being_polled() {
    let ((), out) = capture(|| drop(AccessLogged::new(crate::body::empty(), record())));
    assert!(out.contains(r#""complete":true"#), "{out}");
    assert!(out.contains(r#""bytes_out":0"#), "{out}");
}

#[test]
fn audit_line_names_the_key_and_carries_the_request_span() {
    let ((), out) = capture(|| {
        let span = tracing::info_span!("request", request_id = "REQ2");
        let _in = span.enter();
        key_use(KeyOperation::Encrypt, "b", Some("k"), "tenant-a/2024");
    });
    for field in [
        r#""target":"s3seal::audit""#,
        r#""operation":"encrypt""#,
        r#""bucket":"b""#,
        r#""object":"k""#,
        r#""key_id":"tenant-a/2024""#,
        r#""request_id":"REQ2""#,
    ] {
        assert!(out.contains(field), "{field} missing in {out}");
    }
}

// === secrets never logged ===

/// What the subscriber of [`init`] writes, in JSON, with the operator's filter `user`.
fn capture_as<R>(user: &str, f: impl FnOnce() -> R) -> (R, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let filter = tracing_subscriber::EnvFilter::try_new(user).unwrap();
    let subscriber = subscriber(LogFormat::Json, filter, false, move || writer.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, lines.text())
}

/// An SSE-C key, as the SSE stage puts it on the upstream request.
const SSE_C_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// Signs an upstream PUT that carries [`SSE_C_KEY`], as `upstream` does for an `sse-c` rule.
fn sign_with_customer_key() {
    use crate::config::{AddressingStyle, Upstream};
    use crate::s3::route::Target;
    use crate::upstream::{Outgoing, Payload, UpstreamClient};
    crate::tls::install_crypto_provider();
    let cfg = Upstream {
        name: "u".into(),
        endpoint: "https://s3.example.test".parse().unwrap(),
        region: "us-east-1".into(),
        access_key_id: "AKUP".into(),
        secret_access_key: crate::auth::SecretKey::new("up-secret"),
        addressing_style: AddressingStyle::Path,
        ca_bundle: None,
        forward_checksum_trailers: crate::upstream::trailers::TrailerMode::Forward,
        required_for_readiness: true,
    };
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let upstream = UpstreamClient::new(cfg, tls);
    let target = Target::Object {
        bucket: "b".into(),
        key: "k".into(),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-server-side-encryption-customer-key",
        http::HeaderValue::from_static(SSE_C_KEY),
    );
    let out = Outgoing {
        method: http::Method::PUT,
        target: &target,
        query: Vec::new(),
        headers,
        content_length: Some(0),
    };
    upstream
        .operator()
        .sign(
            out,
            &Payload::Known(b""),
            crate::body::empty(),
            std::time::SystemTime::now(),
        )
        .unwrap();
}

/// `aws-sigv4` logs the whole request it signs at `trace` (`request = ?request`), SSE-C key
/// included. No filter an operator can write may let that line out.
#[test]
fn no_filter_lets_the_signer_print_the_request() {
    for user in [
        "trace",
        "aws_sigv4=trace",
        "info,aws_sigv4=trace",
        "aws_sigv4::http_request=trace",
        "aws_sigv4::http_request::sign=trace",
        "[{request}]=trace",
        "aws_sigv4[{request}]=trace",
    ] {
        let ((), out) = capture_as(user, sign_with_customer_key);
        assert!(!out.contains(SSE_C_KEY), "{user}: {out}");
        assert!(!out.contains("signing request"), "{user}: {out}");
    }
}

/// The other pinned dependencies, and what the pin leaves alone: their `info` and above, and
/// every level of s3seal's own lines.
#[test]
fn pinned_dependencies_stay_at_info_and_the_rest_follows_the_filter() {
    for user in [
        "trace",
        "h2=trace,hyper_util=trace,aws_smithy_runtime=trace",
    ] {
        let ((), out) = capture_as(user, || {
            tracing::debug!(target: "h2::codec::framed_write", "h2 frame");
            tracing::trace!(target: "hyper_util::client::legacy::pool", "pool key");
            tracing::trace!(target: "aws_smithy_runtime::client", "smithy request");
            tracing::warn!(target: "hyper_util::client::legacy::client", "dependency warning");
            tracing::trace!(target: "s3seal::proxy", "own trace");
        });
        for hidden in ["h2 frame", "pool key", "smithy request"] {
            assert!(!out.contains(hidden), "{user}: {out}");
        }
        assert!(out.contains("dependency warning"), "{user}: {out}");
        assert_eq!(out.contains("own trace"), user == "trace", "{user}: {out}");
    }
}

/// Why the pin is a filter of its own: within one `EnvFilter` the most specific directive
/// wins, and of two identical ones the later, so the operator could outrank any directive
/// s3seal appended.
#[test]
fn env_filter_lets_the_most_specific_directive_win() {
    let enabled = |directives: &str| {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_sigv4::http_request::sign", "signing request");
        });
        lines.text().contains("signing request")
    };
    assert!(enabled("aws_sigv4=info,aws_sigv4::http_request=trace"));
    assert!(enabled("aws_sigv4::http_request=trace,aws_sigv4=info"));
    assert!(enabled("aws_sigv4=info,aws_sigv4=trace"));
    assert!(!enabled("aws_sigv4=trace,aws_sigv4=info"));
}
