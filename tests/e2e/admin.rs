//! The admin listener: `/healthz`, `/readyz` against a live and a dead upstream, and
//! `/metrics` counters moving as requests flow through the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use s3seal::crypto::format::{Kek, KeyId};
use s3seal::cse::{EncryptionRules, Keyring, Rule, Unencrypted};

use crate::support::{self, with_admin, Harness, UpstreamInfo};

/// `GET path` on the admin listener: (status, body).
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("admin answer")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, body.to_owned())
}

/// The value of one counter series (name with labels, exactly as rendered); 0 when absent.
pub(crate) fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().unwrap())
}

async fn scrape(h: &Harness) -> String {
    let (status, body) = get(h.proxy.admin_addr.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// Scrapes until `series` is above `was` (a connection is counted when it is over, after the
/// client has seen its end), and returns that scrape.
async fn scrape_until_above(h: &Harness, series: &str, was: u64) -> String {
    let what = || format!("{series} to move from {was}");
    support::wait_for(Duration::from_secs(5), what, || async {
        let now = scrape(h).await;
        (sample(&now, series) > was).then_some(now)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_metrics_move_as_requests_flow() {
    // `sealed-*` buckets are encrypted by the proxy: their requests carry that rule's label.
    let kek = Kek::new(KeyId::new("k").unwrap(), &[7; 32]);
    let sealed = EncryptionRules::new([(
        "sealed-*".to_owned(),
        Some(Rule::new(
            Keyring::new(kek, Vec::new()).unwrap(),
            Unencrypted::PassThrough,
        )),
    )])
    .unwrap();
    let h = Harness::s3s_rules_with(sealed, with_admin).await;
    let sealed_bucket = support::bucket("sealed");
    h.sdk()
        .create_bucket()
        .bucket(&sealed_bucket)
        .send()
        .await
        .unwrap();
    let b = support::bucket("metrics");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let before = scrape(&h).await;

    let data = b"counted bytes";
    for bucket in [&b, &sealed_bucket] {
        h.sdk()
            .put_object()
            .bucket(bucket)
            .key("k")
            .body(ByteStream::from_static(data))
            .send()
            .await
            .unwrap();
    }
    let got = h
        .sdk()
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        data
    );
    let err = h
        .sdk_as(support::CLIENT_AK, "not-the-secret")
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("SignatureDoesNotMatch")
    );
    // Plain HTTP on the TLS port: answered, and counted once the connection is over.
    let mut tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400"));
    drop(tcp);

    let plaintext = "s3seal_plaintext_rejected_total";
    let after = scrape_until_above(&h, plaintext, sample(&before, plaintext)).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved(plaintext), 1, "{after}");
    assert_eq!(
        moved(r#"s3seal_requests_total{operation="PutObject",rule="-",status="200"}"#),
        1,
        "{after}"
    );
    assert_eq!(
        moved(r#"s3seal_requests_total{operation="GetObject",rule="-",status="200"}"#),
        1
    );
    assert_eq!(
        moved(r#"s3seal_requests_total{operation="GetObject",rule="-",status="403"}"#),
        1
    );
    assert_eq!(
        moved(r#"s3seal_requests_total{operation="PutObject",rule="client-side",status="200"}"#),
        1,
        "{after}"
    );
    assert_eq!(
        moved(r#"s3seal_auth_failures_total{reason="SignatureDoesNotMatch"}"#),
        1
    );
    assert_eq!(moved("s3seal_request_duration_seconds_count"), 4);
    assert_eq!(
        moved(r#"s3seal_request_duration_seconds_bucket{le="+Inf"}"#),
        4
    );
    assert_eq!(moved("s3seal_upstream_errors_total"), 0);
    assert_eq!(moved("s3seal_tls_handshake_failures_total"), 0);
    // At least the object, each way (the upload may be aws-chunked framed).
    assert!(moved("s3seal_request_bytes_total") >= 13, "{after}");
    assert!(moved("s3seal_response_bytes_total") >= 13, "{after}");

    // Bytes that start a TLS record but are no handshake: a handshake failure.
    let mut tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01\x00\x04junk").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut Vec::new())).await;
    drop(tcp);
    let failures = "s3seal_tls_handshake_failures_total";
    let last = scrape_until_above(&h, failures, sample(&after, failures)).await;
    assert_eq!(sample(&last, failures) - sample(&after, failures), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_and_readiness() {
    let h = Harness::s3s_with(with_admin).await;
    let admin = h.proxy.admin_addr.unwrap();
    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(admin, "/readyz").await.0, 200);
    assert_eq!(get(admin, "/nothing-here").await.0, 404);

    // An upstream on a port nobody listens on: alive, but not ready, and it says why. The
    // port is bound and released on purpose: the point is that nothing listens there, and
    // no process reports such a port; one taken meanwhile fails the test, it cannot pass it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dead = Harness::start_with(
        UpstreamInfo {
            endpoint: format!("http://{closed}"),
            access_key: "unused".into(),
            secret_key: "unused-secret".into(),
            region: support::REGION.into(),
            checksum_trailers: s3seal::config::TrailerMode::Forward,
            ca_bundle: None,
        },
        with_admin,
    )
    .await;
    let admin = dead.proxy.admin_addr.unwrap();
    assert_eq!(get(admin, "/healthz").await.0, 200);
    let (status, reason) = get(admin, "/readyz").await;
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("upstream 'test'"), "{reason}");
    assert!(reason.contains(&closed.to_string()), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_follow_the_certificate_expiry() {
    let h = Harness::s3s_with(with_admin).await;
    let metrics = scrape(&h).await;
    let expiry = sample(&metrics, "s3seal_tls_certificate_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expiry > now + 300 * 86400, "{metrics}");

    // A certificate that has expired still loads (clients will refuse it), but the proxy
    // is not ready, and says why.
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = time::macros::datetime!(2020-01-01 0:00 UTC);
    params.not_after = time::macros::datetime!(2021-01-01 0:00 UTC);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("old.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("old-key.pem"), key.serialize_pem()).unwrap();
    let expired = Harness::s3s_with(|s| {
        with_admin(s);
        s.tls_cert = dir.path().join("old.pem");
        s.tls_key = dir.path().join("old-key.pem");
    })
    .await;
    let admin = expired.proxy.admin_addr.unwrap();
    assert_eq!(get(admin, "/healthz").await.0, 200);
    let (status, reason) = get(admin, "/readyz").await;
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("the server certificate expired on Fri, 01 Jan 2021"),
        "{reason}"
    );
    assert_eq!(
        sample(
            &scrape(&expired).await,
            "s3seal_tls_certificate_expiry_timestamp_seconds"
        ),
        1_609_459_200
    );
}

/// boto3's default upload over HTTPS is aws-chunked with a trailing checksum and
/// `Transfer-Encoding: chunked`: it declares no length, and its bytes must still be counted
/// in `s3seal_request_bytes_total` (and the access log's `bytes_in`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_of_undeclared_length_boto3_bodies_are_counted() {
    const LEN: usize = 300_000;
    let h = Harness::s3s_rules_with(EncryptionRules::none(), with_admin).await;
    let bucket = support::bucket("counted");
    h.sdk()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let before = scrape(&h).await;
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='{endpoint}')\n\
         s3.put_object(Bucket='{bucket}', Key='k', Body=b'x' * {LEN})\n",
        endpoint = h.endpoint(),
    );
    let mut cmd = std::process::Command::new("python3");
    support::backends::client_env(&mut cmd, Some(&support::ca_pem()));
    cmd.env("AWS_ACCESS_KEY_ID", support::CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", support::CLIENT_SK)
        .env("AWS_DEFAULT_REGION", support::REGION)
        .args(["-c", &script]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = scrape(&h).await;
    let moved = sample(&after, "s3seal_request_bytes_total")
        - sample(&before, "s3seal_request_bytes_total");
    // The body and its aws-chunked framing (chunk sizes, the trailer), not more than a few
    // hundred bytes of it.
    assert!(
        (LEN as u64..LEN as u64 + 1024).contains(&moved),
        "counted {moved} bytes for a {LEN}-byte upload"
    );
}
