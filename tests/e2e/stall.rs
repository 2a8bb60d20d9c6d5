//! Clients that stall: silent after the handshake, an SSLv2-style hello, a body that stops
//! before its end, in every form. Each is cut off by its deadline (short ones here), answered
//! `400 RequestTimeout` where an answer can still be sent, and nothing reaches the backend.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::SignableBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::backends;
use crate::support::raw::{self, error_code};
use crate::support::{self, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK};

/// The deadlines under test, and the most a cut-off may take beyond them.
const HANDSHAKE: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(3);

fn short_deadlines(s: &mut s3seal::config::Server) {
    s.handshake_timeout = HANDSHAKE;
    s.body_timeout = BODY;
    support::with_admin(s);
}

async fn tls(h: &Harness) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(support::client_tls()));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the proxy closes, for at most `within`; returns what it sent and how long the
/// close took. Panics if it does not close in time.
async fn until_closed<S: AsyncReadExt + Unpin>(s: &mut S, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        // A reset after the answer counts as closed too.
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(read.is_ok(), "still open after {within:?}; got {text:?}");
    (text, started.elapsed())
}

async fn metric(h: &Harness, name: &str) -> u64 {
    let (_, m) = crate::admin::get(h.proxy.admin_addr.unwrap(), "/metrics").await;
    crate::admin::sample(&m, name)
}

/// A connection that finishes the handshake and never asks for anything is closed at the
/// handshake deadline, not kept until the idle timeout (60 s in the harness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_after_the_handshake_is_closed_at_the_handshake_deadline() {
    let h = Harness::s3s_with(short_deadlines).await;
    let mut conn = tls(&h).await;
    let (sent, took) = until_closed(&mut conn, HANDSHAKE + SLACK).await;
    assert!(sent.is_empty(), "{sent}");
    assert!(took <= HANDSHAKE + SLACK, "{took:?}");
    let first_request = "s3seal_client_timeouts_total{kind=\"first_request\"}";
    assert_eq!(metric(&h, first_request).await, 1);

    // A request sent in time is served, and its connection kept past the deadline.
    let mut conn = tls(&h).await;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The time under test: past the handshake deadline, the connection must still be there.
    tokio::time::sleep(HANDSHAKE + Duration::from_millis(500)).await;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 403");
    assert_eq!(metric(&h, first_request).await, 1);
}

/// An SSLv2-compatible `ClientHello` (RFC 5246 Appendix E.2) is not plain HTTP: the proxy
/// answers at once with a TLS alert and closes, instead of waiting for a request head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslv2_hello_is_answered_at_once() {
    let h = Harness::s3s_with(short_deadlines).await;
    let mut hello = vec![0x80, 0x2e, 1, 3, 1, 0, 3, 0, 0, 0, 16, 0, 0, 0x2f];
    hello.extend_from_slice(&[0x5a; 16]);
    hello[1] = u8::try_from(hello.len() - 2).unwrap();
    let mut tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut answer))
        .await
        .expect("no prompt answer")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    // A fatal alert record (RFC 8446 §6): type 21, level 2, decode_error(50).
    assert_eq!(answer.first(), Some(&21), "{answer:02x?}");
    assert_eq!(answer.get(5..7), Some(&[2, 50][..]), "{answer:02x?}");
}

/// A signed PUT head for `body_len` bytes of `data` (plain) or of an aws-chunked encoding.
fn put_head(
    h: &Harness,
    b: &str,
    key: &str,
    extra: &[(&str, &str)],
    body: SignableBody<'_>,
) -> String {
    let uri = format!("{}/{b}/{key}", h.endpoint());
    let host = format!("127.0.0.1:{}", h.proxy.addr.port());
    let mut headers = vec![("host", host.as_str())];
    headers.extend_from_slice(extra);
    let s = raw::sign_request(
        "PUT",
        &uri,
        &headers,
        body,
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    std::iter::once(format!("PUT /{b}/{key} HTTP/1.1\r\n"))
        .chain(s.headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")))
        .chain(std::iter::once("\r\n".to_owned()))
        .collect()
}

/// The seed signature of a signed head (for aws-chunked bodies).
fn seed_of(head: &str) -> String {
    let (_, rest) = head.split_once("Signature=").unwrap();
    rest[..64].to_owned()
}

/// Asserts the answer to a stalled body: `400 RequestTimeout` in S3 XML, then a close, within
/// the body deadline (plus slack) of the stall.
async fn assert_timed_out<S: AsyncReadExt + Unpin>(conn: &mut S, what: &str) {
    let (resp, took) = until_closed(conn, BODY + SLACK * 2).await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{what}: {resp}");
    assert_eq!(error_code(&resp), "RequestTimeout", "{what}: {resp}");
    assert!(
        resp.contains("<Message>Your socket connection to the server was not read from or written to within the timeout period.</Message>"),
        "{what}: {resp}"
    );
    // Not before the deadline: the gap is measured from the last bytes the proxy read.
    let early = Duration::from_millis(100);
    assert!(took + early >= BODY, "{what}: answered after {took:?}");
    assert!(took <= BODY + SLACK, "{what}: answered after {took:?}");
}

/// A body that stops before its declared length, an aws-chunked body without its final
/// chunk, and `Expect: 100-continue` followed by nothing: each is answered
/// `400 RequestTimeout` and closed, and the backend stores nothing.
async fn stalled_bodies(h: &Harness) {
    let b = support::bucket("stall");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let data = support::payload(100_000, 9);

    // Half of a plain body.
    let len = data.len().to_string();
    let head = put_head(
        h,
        &b,
        "short",
        &[("content-length", &len)],
        SignableBody::Bytes(&data),
    );
    let mut conn = tls(h).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&data[..data.len() / 2]).await.unwrap();
    assert_timed_out(&mut conn, "short body").await;

    // A signed aws-chunked body whose final (empty) chunk never comes.
    let chunks: Vec<&[u8]> = data.chunks(65536).collect();
    let now = SystemTime::now();
    let enc_len = raw::signed_chunks(&chunks, &"0".repeat(64), CLIENT_SK, now)
        .len()
        .to_string();
    let head = put_head(
        h,
        &b,
        "chunked",
        &[
            ("content-length", &enc_len),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", &len),
        ],
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
    );
    let body = raw::signed_chunks(&chunks, &seed_of(&head), CLIENT_SK, now);
    let final_chunk = b"0;chunk-signature=".len() + 64 + 4;
    let mut conn = tls(h).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() - final_chunk])
        .await
        .unwrap();
    assert_timed_out(&mut conn, "aws-chunked without its final chunk").await;

    // `Expect: 100-continue`, the 100 received, then no body at all.
    let head = put_head(
        h,
        &b,
        "expect",
        &[("content-length", &len), ("expect", "100-continue")],
        SignableBody::Bytes(&data),
    );
    let mut conn = tls(h).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    conn.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_timed_out(&mut conn, "Expect: 100-continue, then nothing").await;

    assert_eq!(
        metric(h, "s3seal_client_timeouts_total{kind=\"body\"}").await,
        3
    );
    // Give an aborted upstream request time to be (wrongly) completed before looking. A grace
    // period, not a poll: what is checked is that something does not happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in ["short", "chunked", "expect"] {
        let head = h.direct().head_object().bucket(&b).key(key).send().await;
        let status = head
            .as_ref()
            .err()
            .and_then(|e| e.raw_response())
            .map(|r| r.status().as_u16());
        assert_eq!(status, Some(404), "{key} reached the backend: {head:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_s3s_fs() {
    stalled_bodies(&Harness::s3s_with(short_deadlines).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_moto() {
    let upstream = UpstreamInfo::of(backends::shared_moto());
    stalled_bodies(&Harness::start_with(upstream, short_deadlines).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_rgw() {
    let upstream = UpstreamInfo::of(backends::shared_rgw());
    stalled_bodies(&Harness::start_with(upstream, short_deadlines).await).await;
}

/// An empty `Content-Length` is refused with a 400. Over HTTP/1 hyper's parser refuses it
/// before the request reaches the proxy (RFC 9110 §8.6: `1*DIGIT`): a bare
/// `400 Bad Request` with no body, then a close. Over HTTP/2 the h2 layer lets it through
/// (as 0) and the proxy answers it in S3 XML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_content_length_is_refused() {
    let h = Harness::s3s().await;
    let b = support::bucket("emptycl");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let head = put_head(
        &h,
        &b,
        "k",
        &[("content-length", "")],
        SignableBody::Bytes(b""),
    );
    assert!(head.contains("content-length: \r\n"), "{head}");

    let mut conn = tls(&h).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    let (resp, _) = until_closed(&mut conn, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");

    let mut config = support::client_tls();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let stream = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (send, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let mut req = http::Request::put(format!("{}/{b}/k", h.endpoint()));
    for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        if name != "host" {
            req = req.header(name, value);
        }
    }
    let (resp, _) = send.send_request(req.body(()).unwrap(), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 400);
    let mut body = resp.into_body();
    let mut xml = Vec::new();
    while let Some(chunk) = body.data().await {
        xml.extend_from_slice(&chunk.unwrap());
    }
    let xml = String::from_utf8(xml).unwrap();
    assert_eq!(error_code(&xml), "InvalidArgument", "{xml}");

    let head = h.direct().head_object().bucket(&b).key("k").send().await;
    assert!(head.is_err(), "stored: {head:?}");
}
