//! The front door: plain HTTP refused with an S3 error, request smuggling forms refused,
//! virtual-hosted-style addressing, upstream errors passed through, timeouts and limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{self, error_code};
use crate::support::{self, Harness};

/// Reads until EOF (bounded), returning what the server sent.
async fn read_all<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn tls(h: &Harness) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = support::client_tls();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_an_s3_error_and_a_close() {
    let h = Harness::s3s_with(|s| s.plaintext_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    for addr in [h.proxy.addr, h.proxy.plaintext_addr.unwrap()] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /bucket/key HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
            addr.port()
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let started = Instant::now();
        let resp = read_all(&mut tcp).await;
        assert!(started.elapsed() < Duration::from_secs(5), "no hang");
        assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
        assert!(resp.contains("<Code>TlsRequired</Code>"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("connection: close"),
            "{resp}"
        );
        assert!(
            resp.contains(&format!("https://localhost:{}", h.proxy.addr.port())),
            "{resp}"
        );
    }
}

/// A real client pointed at `http://` sees the error too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_pointed_at_plain_http_gets_the_s3_error() {
    let h = Harness::s3s().await;
    let mut cmd = std::process::Command::new("aws");
    crate::support::backends::client_env(&mut cmd, None);
    cmd.args(["s3", "ls", "--endpoint-url"])
        .arg(format!("http://127.0.0.1:{}", h.proxy.addr.port()))
        .env("AWS_ACCESS_KEY_ID", support::CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", support::CLIENT_SK)
        .env("AWS_DEFAULT_REGION", support::REGION)
        .env("AWS_MAX_ATTEMPTS", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TlsRequired"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_forms_are_refused() {
    let h = Harness::s3s().await;
    // Framings that are refused outright: a transfer coding other than a final `chunked`
    // (hyper's parser), `chunked` after another coding (the proxy), conflicting lengths.
    for framing in [
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
    ] {
        let mut s = tls(&h).await;
        let req = format!("PUT /b/k HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n0\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let resp = read_all(&mut s).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{framing:?}: {resp}");
    }
    // Both framings at once: Transfer-Encoding wins, as RFC 9112 §6.3 requires, and the
    // connection is closed after the answer, so bytes that a Content-Length reader would take
    // for a second request are never served as one.
    let mut s = tls(&h).await;
    let smuggled = "GET /b/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let req = format!(
        "PUT /b/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let resp = read_all(&mut s).await;
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 1, "{resp}");
    assert!(!resp.contains("/b/smuggled"), "{resp}");
}

type GetErr = aws_sdk_s3::error::SdkError<
    aws_sdk_s3::operation::get_object::GetObjectError,
    aws_sdk_s3::config::http::HttpResponse,
>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_and_upstream_errors() {
    let h = Harness::s3s().await;
    let b = support::bucket("vhost");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    h.sdk()
        .put_object()
        .bucket(&b)
        .key("dir/k")
        .body(ByteStream::from_static(b"vhost"))
        .send()
        .await
        .unwrap();

    // Virtual-hosted style: the bucket is in the Host header (`<bucket>.s3.localhost`).
    let uri = format!("{}/dir/k", h.endpoint());
    let host = format!("{b}.s3.localhost:{}", h.proxy.addr.port());
    let s = raw::sign_request(
        "GET",
        &format!("https://{host}/dir/k"),
        &[("host", &host)],
        aws_sigv4::http_request::SignableBody::Bytes(b""),
        support::CLIENT_AK,
        support::CLIENT_SK,
        std::time::SystemTime::now(),
    );
    let (status, _, body) = raw::send("GET", &uri, &s.headers, Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "vhost"));

    // The upstream's own errors reach the client unchanged: same status, same code.
    let direct = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let proxied = h
        .sdk()
        .get_object()
        .bucket(&b)
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let code = |e: &GetErr| {
        (
            e.raw_response().map(|r| r.status().as_u16()),
            aws_sdk_s3::error::ProvideErrorMetadata::code(e).map(str::to_owned),
        )
    };
    assert_eq!(code(&direct), (Some(404), Some("NoSuchKey".into())));
    assert_eq!(code(&proxied), code(&direct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_time_out_and_connections_are_limited() {
    let h = Harness::s3s_with(|s| {
        s.header_read_timeout = Duration::from_secs(1);
        s.idle_timeout = Duration::from_secs(1);
        s.max_connections = 2;
    })
    .await;

    // A client that never finishes its request head is cut off.
    let mut slow = tls(&h).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let resp = read_all(&mut slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow head not cut off: {resp}"
    );

    // An idle connection (no request at all after the handshake) is closed as well.
    let mut idle = tls(&h).await;
    let started = Instant::now();
    let resp = read_all(&mut idle).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle connection kept open: {resp}"
    );

    // With two connections held open, a third is closed at once.
    let _a = tls(&h).await;
    let _b = tls(&h).await;
    let mut third = TcpStream::connect(h.proxy.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the extra connection was not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// Whether a TLS handshake with the proxy completes; the connection is then dropped.
async fn handshakes(h: &Harness) -> bool {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(support::client_tls()));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let handshake = connector.connect("localhost".try_into().unwrap(), tcp);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), handshake).await,
        Ok(Ok(_))
    )
}

/// Whether the proxy closes a new TCP connection without waiting for a byte from it.
async fn closed_at_once(h: &Harness) -> bool {
    let mut tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let mut buf = [0u8; 1];
    // Well below the harness's 5 s handshake timeout, which would close it too.
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// One client address cannot take every connection slot: past `max_connections_per_peer` its
/// new connections are closed at once and counted, and a slot it frees is its own again. A
/// trusted TLS terminator, which carries many clients' connections, is exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_peer_are_limited() {
    let h = Harness::s3s_with(|s| {
        support::with_admin(s);
        s.max_connections_per_peer = 2;
    })
    .await;
    let first = tls(&h).await;
    let _second = tls(&h).await;
    assert!(closed_at_once(&h).await, "a third connection was kept open");
    let (_, m) = crate::admin::get(h.proxy.admin_addr.unwrap(), "/metrics").await;
    let refused = "s3seal_connections_refused_total{limit=\"max_connections_per_peer\"}";
    assert_eq!(crate::admin::sample(&m, refused), 1, "{m}");

    drop(first);
    let what = || "the freed slot to be given back".to_owned();
    support::wait_until(Duration::from_secs(5), what, || handshakes(&h)).await;

    let behind_terminator = Harness::s3s_with(|s| {
        s.max_connections_per_peer = 1;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let _held = [tls(&behind_terminator).await, tls(&behind_terminator).await];
    assert!(handshakes(&behind_terminator).await);
}

/// With `[server] sigv2 = false`, SigV2 gets S3's answer where it takes SigV4 only (accepted
/// SigV2 is `sigv2.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_is_refused_clearly_when_switched_off() {
    let h = Harness::s3s_with(|s| s.sigv2 = false).await;
    let uri = format!(
        "{}/b/k?AWSAccessKeyId={}&Signature=abc%3D&Expires=9999999999",
        h.endpoint(),
        support::CLIENT_AK
    );
    let (status, _, body) = raw::send("GET", &uri, &[], Vec::new()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "InvalidRequest", "{body}");
    assert!(body.contains("AWS4-HMAC-SHA256"), "{body}");
}

/// The real SDK with a session token is refused (s3seal issues none), and so are SDK-presigned
/// URLs with a token or SigV2 parameters added, before their signature is even checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_and_mixed_signature_schemes_are_refused() {
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_sdk_s3::presigning::PresigningConfig;
    let h = Harness::s3s().await;
    let b = support::bucket("deny");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();

    let conf = h
        .sdk()
        .config()
        .to_builder()
        .credentials_provider(Credentials::new(
            support::CLIENT_AK,
            support::CLIENT_SK,
            Some("FQoGZXIvYXdzEXAMPLETOKEN".to_owned()),
            None,
            "test",
        ))
        .region(Region::new(support::REGION))
        .build();
    let err = aws_sdk_s3::Client::from_conf(conf)
        .head_bucket()
        .bucket(&b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(400),
        "{err:?}"
    );

    let url = h
        .sdk()
        .get_object()
        .bucket(&b)
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned();
    for (extra, code) in [
        (
            "X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN",
            "InvalidToken",
        ),
        ("AWSAccessKeyId=S3SEALTESTCLIENT", "InvalidArgument"),
        ("Signature=abc%3D", "InvalidArgument"),
        ("Expires=9999999999", "InvalidArgument"),
    ] {
        let (status, _, body) = raw::send("GET", &format!("{url}&{extra}"), &[], Vec::new()).await;
        assert_eq!((status, error_code(&body)), (400, code), "{extra}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_and_oversized_heads() {
    let h = Harness::s3s().await;
    let b = support::bucket("expect");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();

    // `Expect: 100-continue`: the proxy answers 100 before the client sends its body.
    let body = b"sent after 100 Continue".to_vec();
    let uri = format!("{}/{b}/k", h.endpoint());
    let len = body.len().to_string();
    let s = raw::sign_request(
        "PUT",
        &uri,
        &[
            ("content-length", &len),
            ("expect", "100-continue"),
            ("host", &format!("127.0.0.1:{}", h.proxy.addr.port())),
        ],
        aws_sigv4::http_request::SignableBody::Bytes(&body),
        support::CLIENT_AK,
        support::CLIENT_SK,
        std::time::SystemTime::now(),
    );
    let mut conn = tls(&h).await;
    let head: String = std::iter::once(format!("PUT /{b}/k HTTP/1.1\r\n"))
        .chain(s.headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")))
        .chain(std::iter::once("\r\n".to_owned()))
        .collect();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut interim))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&interim)
    );
    conn.write_all(&body).await.unwrap();
    let mut status = [0u8; 12];
    conn.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    let got = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );

    // A request head larger than `max_header_bytes` is refused, not buffered.
    let mut conn = tls(&h).await;
    let big = "x".repeat(100 * 1024);
    let req = format!("GET /{b}/k HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let _ = conn.write_all(req.as_bytes()).await;
    let resp = read_all(&mut conn).await;
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
        "oversized head answered: {}",
        &resp[..resp.len().min(200)]
    );
}

/// A refusal decided before the body is read reaches a client that is still sending it. The
/// proxy reads the rest (bounded) before answering: closing on unread bytes would reset the
/// connection, and the client would see "broken pipe" instead of the S3 error. A client that
/// waits for `100 Continue` is answered at once and not invited to send its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_clients_still_sending() {
    let h = Harness::s3s().await;
    let b = support::bucket("linger");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let body = support::payload(512 * 1024, 4);
    let uri = format!("{}/{b}/k", h.endpoint());
    let len = body.len().to_string();
    let host = format!("127.0.0.1:{}", h.proxy.addr.port());
    let head = |extra: &[(&str, &str)]| {
        let mut headers = vec![("content-length", len.as_str()), ("host", host.as_str())];
        headers.extend_from_slice(extra);
        let s = raw::sign_request(
            "PUT",
            &uri,
            &headers,
            aws_sigv4::http_request::SignableBody::Bytes(&body),
            support::CLIENT_AK,
            "wrong secret",
            std::time::SystemTime::now(),
        );
        std::iter::once(format!("PUT /{b}/k HTTP/1.1\r\nconnection: close\r\n"))
            .chain(s.headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")))
            .chain(std::iter::once("\r\n".to_owned()))
            .collect::<String>()
    };

    // Half the body, a pause long enough for the refusal to be decided, then the other half.
    // The pause is the client under test, one still sending after the decision; nothing
    // marks the decision on the wire, since the answer comes only after the body.
    let mut conn = tls(&h).await;
    conn.write_all(head(&[]).as_bytes()).await.unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    conn.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(second)
        .await
        .expect("connection cut while sending");
    conn.flush().await.unwrap();
    let resp = read_all(&mut conn).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    assert_eq!(error_code(&resp), "SignatureDoesNotMatch", "{resp}");

    // With `Expect: 100-continue` the refusal comes without a 100 and without waiting.
    let mut conn = tls(&h).await;
    conn.write_all(head(&[("expect", "100-continue")]).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let resp = read_all(&mut conn).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for a body"
    );
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");

    assert!(h
        .direct()
        .head_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    use http_body_util::{BodyExt, Full};
    let h = Harness::s3s().await;
    let b = support::bucket("h2");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    h.sdk()
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from_static(b"over h2"))
        .send()
        .await
        .unwrap();

    let tls = support::client_tls();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, Full<bytes::Bytes>>(https);
    let uri = format!("{}/{b}/k", h.endpoint());
    let s = raw::sign_request(
        "GET",
        &uri,
        &[],
        aws_sigv4::http_request::SignableBody::Bytes(b""),
        support::CLIENT_AK,
        support::CLIENT_SK,
        std::time::SystemTime::now(),
    );
    let mut req = http::Request::get(&uri);
    for (k, v) in &s.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.as_ref(), b"over h2");
}

type H2Connection =
    h2::client::Connection<tokio_rustls::client::TlsStream<TcpStream>, bytes::Bytes>;

/// An HTTP/2 connection to the proxy from the h2 crate, to drive frames one by one.
async fn h2_connect(h: &Harness) -> (h2::client::SendRequest<bytes::Bytes>, H2Connection) {
    let mut config = support::client_tls();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let stream = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    h2::client::handshake(stream).await.unwrap()
}

/// A signed aws-chunked body is held a chunk at a time until the chunk's signature is checked,
/// and the streams of one connection share `max_connection_buffer_bytes` for it. Three HTTP/2
/// streams that each send 12 MiB of a 16 MiB chunk do not fit in 32 MiB: one is refused with
/// `503 SlowDown` instead of the proxy holding 16 MiB for each of up to 200 streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_chunks_are_bounded_per_connection() {
    const CHUNK: usize = 16 * 1024 * 1024;
    const SENT: usize = 12 * 1024 * 1024;
    let h = Harness::s3s_with(|s| s.max_connection_buffer_bytes = 2 * CHUNK as u64).await;
    let b = support::bucket("budget");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let (mut client, connection) = h2_connect(&h).await;
    tokio::spawn(connection);

    let signature = "0".repeat(64);
    let head = format!("{CHUNK:x};chunk-signature={signature}\r\n");
    let last = format!("\r\n0;chunk-signature={signature}\r\n\r\n");
    let framed = (head.len() + CHUNK + last.len()).to_string();
    let mut responses = tokio::task::JoinSet::new();
    let mut senders = Vec::new();
    for i in 0..3 {
        let uri = format!("{}/{b}/k{i}", h.endpoint());
        let signed = raw::sign_request(
            "PUT",
            &uri,
            &[
                ("content-length", &framed),
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", &CHUNK.to_string()),
            ],
            aws_sigv4::http_request::SignableBody::Precomputed(
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
            ),
            support::CLIENT_AK,
            support::CLIENT_SK,
            std::time::SystemTime::now(),
        );
        let mut req = http::Request::put(&uri);
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        client = client.ready().await.unwrap();
        let (resp, mut body) = client.send_request(req.body(()).unwrap(), false).unwrap();
        body.send_data(head.clone().into(), false).unwrap();
        body.send_data(vec![0u8; SENT].into(), false).unwrap();
        // Kept open: the chunk never ends, so its bytes stay buffered.
        senders.push(body);
        responses.spawn(async move {
            let resp = resp.await.unwrap();
            let status = resp.status();
            let mut body = resp.into_body();
            let mut xml = Vec::new();
            while let Some(chunk) = body.data().await {
                xml.extend_from_slice(&chunk.unwrap());
            }
            (status, String::from_utf8_lossy(&xml).into_owned())
        });
    }
    let (status, xml) = tokio::time::timeout(Duration::from_secs(20), responses.join_next())
        .await
        .expect("no stream was refused: the connection buffered all three")
        .unwrap()
        .unwrap();
    assert_eq!(
        (status.as_u16(), error_code(&xml)),
        (503, "SlowDown"),
        "{xml}"
    );
    drop(senders);
}

/// Only requests count as activity. An HTTP/2 client that keeps sending requests keeps its
/// connection past `idle_timeout`; one that only sends PINGs (RFC 9113 §6.7), which cost the
/// client nothing and would hold a connection slot forever, is closed after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pings_do_not_keep_a_connection_open() {
    let idle_timeout = Duration::from_secs(1);
    let h = Harness::s3s_with(|s| s.idle_timeout = idle_timeout).await;
    let (client, mut connection) = h2_connect(&h).await;
    let mut pings = connection.ping_pong().unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();

    // ListBuckets every 300 ms for over twice the idle timeout, on the one connection.
    let uri = format!("{}/", h.endpoint());
    let started = Instant::now();
    let mut answered = started;
    while started.elapsed() < idle_timeout * 2 + Duration::from_millis(500) {
        let signed = raw::sign_request(
            "GET",
            &uri,
            &[],
            aws_sigv4::http_request::SignableBody::Bytes(b""),
            support::CLIENT_AK,
            support::CLIENT_SK,
            std::time::SystemTime::now(),
        );
        let mut req = http::Request::get(&uri);
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
        let resp = resp.await.expect("a connection with requests was closed");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        answered = Instant::now();
        // The client's pace is the scenario: requests spread over longer than the idle timeout.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client = client.ready().await.unwrap();
    }

    // Then only PINGs, every 200 ms: answered until the idle timeout, counted from the last
    // response, closes the connection.
    while pings.ping(h2::Ping::opaque()).await.is_ok() {
        assert!(
            answered.elapsed() < idle_timeout * 4,
            "a client sending only PINGs was kept open"
        );
        // The PING pace under test, not a wait for the proxy.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed_after = answered.elapsed();
    assert!(
        closed_after + Duration::from_millis(100) >= idle_timeout,
        "closed {closed_after:?} after the last response"
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
}

/// An `https://` upstream verified with a configured CA bundle: a second s3seal (in front of
/// s3s-fs) serves as the upstream of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstream_with_a_ca_bundle() {
    let inner = Harness::s3s().await;
    let outer = Harness::start_with(
        support::UpstreamInfo {
            endpoint: format!("https://localhost:{}", inner.proxy.addr.port()),
            access_key: support::CLIENT_AK.into(),
            secret_key: support::CLIENT_SK.into(),
            region: support::REGION.into(),
            checksum_trailers: s3seal::config::TrailerMode::Forward,
            ca_bundle: Some(support::ca_pem()),
        },
        |_| {},
    )
    .await;
    let b = support::bucket("chain");
    outer.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let data = support::payload(200_000, 5);
    outer
        .sdk()
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let got = inner
        .direct()
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());

    // Without the CA bundle the upstream's certificate is not trusted: 502, nothing sent.
    let untrusting = Harness::start_with(
        support::UpstreamInfo {
            ca_bundle: None,
            ..outer.upstream.clone()
        },
        |_| {},
    )
    .await;
    let err = untrusting
        .sdk()
        .head_bucket()
        .bucket(&b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(502));
}

/// `s3seal check` validates a config file: 0 when valid, 64 with the offending key when not.
#[test]
fn check_command_validates_configs() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"

[[upstream]]
name = "u"
endpoint = "https://s3.example.test"
access_key_id = "AK"
secret_access_key = {{ env = "S3SEAL_TEST_UPSTREAM_SECRET" }}

[[client]]
access_key_id = "APP"
secret_access_key = "app-secret"
upstream = "u"
"#,
        cert = support::repo_path("certs/server.pem").display(),
        key = support::repo_path("certs/server-key.pem").display(),
    );
    let run = |text: &str, secret: Option<&str>| {
        let path = dir.path().join("s3seal.toml");
        std::fs::write(&path, text).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"));
        cmd.args(["check", "--config"]).arg(&path);
        match secret {
            Some(s) => cmd.env("S3SEAL_TEST_UPSTREAM_SECRET", s),
            None => cmd.env_remove("S3SEAL_TEST_UPSTREAM_SECRET"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&good, Some("s"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("valid"), "{out}");
    let (code, out) = run(&good, None);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("S3SEAL_TEST_UPSTREAM_SECRET"), "{out}");
    let (code, out) = run(&good.replace("tls_key", "tls_kee"), Some("s"));
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("tls_kee"), "{out}");

    // What `serve` would refuse, `check` refuses: a missing certificate file (named once,
    // with its OS error once), and a file that is not PEM.
    let cert = support::repo_path("certs/server.pem").display().to_string();
    let missing = dir.path().join("missing.pem").display().to_string();
    let (code, out) = run(&good.replace(&cert, &missing), Some("s"));
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("missing.pem"), "{out}");
    assert_eq!(out.matches("No such file").count(), 1, "{out}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let (code, out) = run(
        &good.replace(&cert, &garbage.display().to_string()),
        Some("s"),
    );
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("garbage.pem"), "{out}");
}

/// `serve` exits 64 (not 1, which a supervisor retries) when the config names TLS files it
/// cannot use, and prints the reason once.
#[test]
fn serve_exits_64_on_unusable_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "{missing}"
tls_key = "{key}"

[[upstream]]
name = "u"
endpoint = "https://s3.example.test"
access_key_id = "AK"
secret_access_key = "SK"

[[client]]
access_key_id = "APP"
secret_access_key = "app-secret"
upstream = "u"
"#,
        missing = dir.path().join("missing.pem").display(),
        key = support::repo_path("certs/server-key.pem").display(),
    );
    let path = dir.path().join("s3seal.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("S3SEAL_LOG", "error")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");

    // Under --log-format json the fatal error is a JSON line too, after logging started (a
    // TLS file) and before (a config file that cannot be read).
    for config in [path.clone(), dir.path().join("absent.toml")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .env("S3SEAL_LOG", "error")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<serde_json::Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "ERROR" && l["exit_code"] == 64),
            "{err}"
        );
    }
}
