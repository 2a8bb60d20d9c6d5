use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::{client, TlsConnector};

use super::*;
use crate::{certs, tls};

const TIMEOUT: Duration = Duration::from_secs(5);

/// TLS record content type `handshake(22)` (RFC 8446 §5.1, RFC 5246 §6.2.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

struct Server {
    addr: SocketAddr,
    result: JoinHandle<Result<TlsStream<TcpStream>, AcceptError>>,
    roots: RootCertStore,
}

/// A listener on 127.0.0.1:0 that runs [`accept`] on its first connection, with freshly
/// generated development certificates.
async fn serve_once(handshake_timeout: Duration) -> Server {
    let pem = certs::generate_pem().unwrap();
    let config =
        tls::server_config_from_pem(pem.server_chain.as_bytes(), pem.server_key.as_bytes())
            .unwrap();
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let result = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accept(stream, &acceptor, Instant::now() + handshake_timeout).await
    });
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.ca.as_bytes()).unwrap())
        .unwrap();
    Server {
        addr,
        result,
        roots,
    }
}

async fn tls_connect(
    server: &Server,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> io::Result<client::TlsStream<TcpStream>> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(server.roots.clone())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(server.addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Splits a response into its head and body at the first empty line.
fn split_response(raw: &[u8]) -> (String, String) {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

// === plain HTTP ===

#[tokio::test]
async fn plaintext_request_gets_400_tls_required_then_a_clean_close() {
    let server = serve_once(TIMEOUT).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /bucket/key?x=1 HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    client.write_all(request.as_bytes()).await.unwrap();

    // `read_to_end` fails with ECONNRESET if the server reset instead of closing.
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.unwrap();
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Plaintext)
    ));

    let (head, body) = split_response(&raw);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/xml"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert_eq!(
        header(&head, "content-length"),
        Some(&*body.len().to_string())
    );
    let request_id = header(&head, "x-amz-request-id").unwrap();
    assert_eq!(request_id.len(), 16);
    assert!(body.contains("<Code>TlsRequired</Code>"), "{body}");
    assert!(
        body.contains(&format!("use https://{}/", server.addr)),
        "{body}"
    );
    assert!(body.contains("<Resource>/bucket/key</Resource>"), "{body}");
    assert!(body.contains(&format!("<RequestId>{request_id}</RequestId>")));
}

/// A client that sends its body without `Expect: 100-continue` is still writing when the 400
/// arrives. Were the socket closed at once, the bytes it sends next would draw a RST, and its
/// write would fail before it ever read the answer.
#[tokio::test]
async fn client_still_sending_a_body_can_finish_and_read_the_answer() {
    let server = serve_once(TIMEOUT).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"PUT /b/k HTTP/1.1\r\nHost: localhost:1\r\nContent-Length: 65536\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    client.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 400");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        client.write_all(&[b'x'; 8192]).await.unwrap();
    }
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(String::from_utf8(rest).unwrap().ends_with("</Error>"));
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Plaintext)
    ));
}

#[tokio::test]
async fn plaintext_listener_points_at_the_https_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        reject_plaintext(stream, 8443, TIMEOUT).await;
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: s3.localhost:8080\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.unwrap();
    task.await.unwrap();
    let (_, body) = split_response(&raw);
    assert!(body.contains("use https://s3.localhost:8443/"), "{body}");
}

#[tokio::test]
async fn plaintext_client_that_stalls_mid_head_is_still_answered() {
    let server = serve_once(Duration::from_millis(200)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.unwrap();
    let (_, body) = split_response(&raw);
    assert!(body.contains("use https:// instead of http://"), "{body}");
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Plaintext)
    ));
}

// === deadlines and early closes ===

#[tokio::test]
async fn silent_client_times_out() {
    let server = serve_once(Duration::from_millis(200)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Timeout)
    ));
    assert!(started.elapsed() >= Duration::from_millis(150));
    // The server dropped the socket: the client sees EOF.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn handshake_that_stalls_after_the_first_byte_times_out() {
    let server = serve_once(Duration::from_millis(200)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(&[TLS_HANDSHAKE_RECORD, 3, 1])
        .await
        .unwrap();
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Timeout)
    ));
}

#[tokio::test]
async fn client_that_closes_at_once_is_reported_as_closed() {
    let server = serve_once(TIMEOUT).await;
    drop(TcpStream::connect(server.addr).await.unwrap());
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Closed)
    ));
}

// === TLS ===

#[tokio::test]
async fn tls_client_negotiates_alpn() {
    for (offered, expected) in [
        (&[&b"h2"[..], b"http/1.1"][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[&b"http/1.1"[..], b"h2"][..], Some(&b"h2"[..])),
        (&[][..], None),
    ] {
        let server = serve_once(TIMEOUT).await;
        let mut client = tls_connect(&server, tls::PROTOCOL_VERSIONS, offered)
            .await
            .unwrap();
        let mut accepted = server.result.await.unwrap().unwrap();
        assert_eq!(accepted.get_ref().1.alpn_protocol(), expected);
        assert_eq!(client.get_ref().1.alpn_protocol(), expected);

        // The stream carries data both ways.
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }
}

#[tokio::test]
async fn tls12_and_tls13_clients_are_served() {
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let server = serve_once(TIMEOUT).await;
        let client = tls_connect(&server, &[version], &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(client.get_ref().1.protocol_version(), Some(expected));
        server.result.await.unwrap().unwrap();
    }
}

/// A TLS 1.1 `ClientHello` (RFC 4346 §7.4.1.2), written out by hand since rustls cannot send
/// one: `client_version` 3.2, two suites, no `supported_versions`, and the given extensions.
fn tls11_client_hello(extensions: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 2];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // session_id
    body.extend_from_slice(&[0, 4, 0xc0, 0x2b, 0xc0, 0x13]); // cipher_suites
    body.extend_from_slice(&[1, 0]); // compression_methods: null
    if !extensions.is_empty() {
        body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
        body.extend_from_slice(extensions);
    }
    let mut handshake = vec![1, 0, 0, u8::try_from(body.len()).unwrap()]; // client_hello
    handshake.extend_from_slice(&body);
    let mut record = vec![TLS_HANDSHAKE_RECORD, 3, 1, 0];
    record.push(u8::try_from(handshake.len()).unwrap());
    record.extend_from_slice(&handshake);
    record
}

/// Sends `hello` and returns the alert description the server answers with.
async fn alert_for(hello: &[u8]) -> u8 {
    let server = serve_once(TIMEOUT).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all(hello).await.unwrap();
    let mut alert = [0u8; 7];
    client.read_exact(&mut alert).await.unwrap();
    // Record type alert(21), length 2, level fatal(2) (RFC 5246 §7.2).
    assert_eq!(alert[0], 21);
    assert_eq!(&alert[3..6], &[0, 2, 2]);
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Handshake(_))
    ));
    alert[6]
}

#[tokio::test]
async fn tls11_clients_are_refused() {
    // With `signature_algorithms` the version check is what refuses: protocol_version(70).
    let signature_algorithms = [0, 13, 0, 4, 0, 2, 4, 3];
    assert_eq!(
        alert_for(&tls11_client_hello(&signature_algorithms)).await,
        70
    );
    // A real TLS 1.1 stack sends no `signature_algorithms` (it is TLS 1.2's, RFC 5246 §7.4.1.4.1),
    // and rustls refuses that even earlier, with handshake_failure(40).
    assert_eq!(alert_for(&tls11_client_hello(&[])).await, 40);
}

/// An SSLv2-compatible `ClientHello` (RFC 5246 Appendix E.2, "Compatibility with SSL 2.0"):
/// a two-byte record header with the high bit set, then `msg_type` 1, version 3.1, one
/// cipher spec and a 16-byte challenge. Old scanners and stacks still send it.
fn sslv2_client_hello() -> Vec<u8> {
    let mut body = vec![1, 3, 1, 0, 3, 0, 0, 0, 16]; // type, version, spec/session/challenge lengths
    body.extend_from_slice(&[0, 0, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    body.extend_from_slice(&[0x5a; 16]);
    let mut record = vec![0x80, u8::try_from(body.len()).unwrap()];
    record.extend_from_slice(&body);
    record
}

/// Neither TLS nor HTTP is answered by the TLS stack at once, with a fatal alert, not left
/// waiting for a request head until the deadline.
#[tokio::test]
async fn sslv2_hello_and_noise_get_an_alert_at_once() {
    for hello in [sslv2_client_hello(), vec![0; 16], vec![0xff; 3]] {
        let started = Instant::now();
        let alert = tokio::time::timeout(Duration::from_secs(2), alert_for(&hello))
            .await
            .expect("no prompt answer");
        // decode_error(50) (RFC 8446 §6.2): not a TLS record.
        assert_eq!(alert, 50, "{hello:02x?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn first_byte_tells_http_from_tls() {
    for request in [
        "GET / HTTP/1.1",
        "PUT /b/k HTTP/1.1",
        "PRI * HTTP/2.0",
        "\r\nGET /",
    ] {
        assert!(opens_http_request(request.as_bytes()[0]), "{request:?}");
    }
    for first in [TLS_HANDSHAKE_RECORD, 0x80, 0x00, 0xff, b' ', b'/'] {
        assert!(!opens_http_request(first), "{first:#x}");
    }
}

#[tokio::test]
async fn client_that_distrusts_the_certificate_fails_the_handshake() {
    let mut server = serve_once(TIMEOUT).await;
    server.roots = RootCertStore::empty();
    let stranger = certs::generate_pem().unwrap();
    server
        .roots
        .add(CertificateDer::from_pem_slice(stranger.ca.as_bytes()).unwrap())
        .unwrap();
    assert!(tls_connect(&server, tls::PROTOCOL_VERSIONS, &[])
        .await
        .is_err());
    assert!(matches!(
        server.result.await.unwrap(),
        Err(AcceptError::Handshake(_))
    ));
}

// === parsing the plain-HTTP head ===

#[test]
fn host_values() {
    let ok = |v, host, port| {
        assert_eq!(Authority::parse(v), Some(Authority { host, port }), "{v:?}");
    };
    ok("localhost", "localhost", None);
    ok(
        "bucket.s3.localhost:9000",
        "bucket.s3.localhost",
        Some(9000),
    );
    ok("127.0.0.1:1", "127.0.0.1", Some(1));
    ok("[::1]", "[::1]", None);
    ok("[::1]:8443", "[::1]", Some(8443));

    for bad in [
        "",
        ":80",
        "a b",
        "evil.com/<script>",
        "host:",
        "host:99999",
        "host:123456",
        "host:-1",
        "host:1:2",
        "[::1",
        "[zz::1]",
        "[::1]x",
        "[::1]:",
        "h\u{e9}llo",
        &"a".repeat(300),
    ] {
        assert_eq!(Authority::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn request_head_parsing() {
    let req = PlainRequest::parse(
        b"PUT /b/k?uploads&X-Amz-Signature=s HTTP/1.1\r\nhOsT:  a.localhost:9 \r\n\r\nbody",
    );
    assert_eq!(req.method, Some("PUT"));
    assert_eq!(req.path, Some("/b/k"));
    assert_eq!(
        req.host,
        Some(Authority {
            host: "a.localhost",
            port: Some(9)
        })
    );

    // Bare LF line endings are accepted.
    let req = PlainRequest::parse(b"GET / HTTP/1.1\nHost: x\n\n");
    assert_eq!(req.host.unwrap().host, "x");

    // Two Host headers: neither is used (RFC 9112 §3.2).
    let req = PlainRequest::parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(req.host, None);

    // A header after the head's end is body, not a header.
    let req = PlainRequest::parse(b"GET / HTTP/1.1\r\n\r\nHost: a\r\n");
    assert_eq!(req.host, None);

    // Not HTTP at all.
    assert_eq!(
        PlainRequest::parse(b"\x00\xff\xfe garbage"),
        PlainRequest::default()
    );
    let req = PlainRequest::parse(b"get <x> HTTP/1.1\r\n\r\n");
    assert_eq!((req.method, req.path), (None, None));
}

#[test]
fn reply_to_head_has_no_body_but_the_length_of_one() {
    let reply = plaintext_reply(b"HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n", None, "ID");
    let text = String::from_utf8(reply).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(body.is_empty());
    let length: usize = header(head, "content-length").unwrap().parse().unwrap();
    assert!(length > 0);
}

#[test]
fn suggested_urls() {
    let host = |host, port| Authority { host, port };
    let msg = tls_required_message;
    assert!(msg(Some(&host("h", Some(9000))), None).ends_with("use https://h:9000/"));
    assert!(msg(Some(&host("h", None)), None).ends_with("use https://h:80/"));
    assert!(msg(Some(&host("h", Some(80))), Some(443)).ends_with("use https://h/"));
    assert!(msg(Some(&host("[::1]", Some(80))), Some(8443)).ends_with("use https://[::1]:8443/"));
    assert!(msg(None, Some(8443)).ends_with("use https:// on port 8443"));
    assert!(msg(None, None).ends_with("use https:// instead of http://"));
}

#[test]
fn client_controlled_text_is_escaped_in_the_reply() {
    let reply = plaintext_reply(b"GET /<a>&\"b\" HTTP/1.1\r\n\r\n", None, "ID");
    let text = String::from_utf8(reply).unwrap();
    assert!(
        text.contains("<Resource>/&lt;a&gt;&amp;&quot;b&quot;</Resource>"),
        "{text}"
    );
}
