//! Deployment front doors: clients that keep AWS host names (endpoint override through DNS
//! and a corporate CA), and a TLS terminator in front of the proxy that forwards plain HTTP.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::SignableBody;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{error_code, sign_request};
use crate::support::{self, Harness, CLIENT_AK, CLIENT_SK, REGION};

/// Names the test certificate covers: what clients of the AWS endpoints connect to.
const AWS_NAMES: &[&str] = &[
    "s3.amazonaws.com",
    "*.s3.amazonaws.com",
    "s3.us-east-1.amazonaws.com",
    "*.s3.us-east-1.amazonaws.com",
    "s3.dualstack.us-east-1.amazonaws.com",
    "*.s3.dualstack.us-east-1.amazonaws.com",
    "s3-us-east-1.amazonaws.com",
    "*.s3-us-east-1.amazonaws.com",
];

/// A test-only CA (the development CA is name-constrained to localhost, as it should be) and
/// a server certificate for [`AWS_NAMES`], as a corporate CA would issue for the override.
/// Returns the CA PEM; the chain and key are written to `dir`.
fn corporate_ca(dir: &std::path::Path) -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let names: Vec<String> = AWS_NAMES.iter().map(|&n| n.to_owned()).collect();
    let server = CertificateParams::new(names).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server.pem"), format!("{}{ca_pem}", cert.pem())).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
    ca_pem.into_bytes()
}

/// The hosts-file entry of the endpoint override: AWS names resolve to loopback, where the
/// proxy listens; nothing else resolves.
#[derive(Debug, Clone)]
struct AwsToLoopback;

impl ResolveDns for AwsToLoopback {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        if name.ends_with(".amazonaws.com") {
            DnsFuture::ready(Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
        } else {
            DnsFuture::ready(Err(ResolveDnsError::new(format!(
                "{name} is not an AWS name"
            ))))
        }
    }
}

/// The SDK as an application configures it for AWS, with the proxy's port in the endpoint
/// (the test cannot bind 443) and the corporate CA trusted.
fn aws_client(endpoint: &str, path_style: bool, ca: &[u8]) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca.to_vec()))
                .build()
                .unwrap(),
        )
        .build_with_resolver(AwsToLoopback);
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(CLIENT_AK, CLIENT_SK, None, None, "test"))
        .force_path_style(path_style)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_host_names_route_to_the_upstream() {
    let certs = tempfile::tempdir().unwrap();
    let ca = corporate_ca(certs.path());
    // No `domain`: the AWS names are recognised without one.
    let h = Harness::s3s_with(|s| {
        s.tls_cert = certs.path().join("server.pem");
        s.tls_key = certs.path().join("server-key.pem");
        s.domain = None;
    })
    .await;
    let port = h.proxy.addr.port();
    let forms = [
        // (endpoint, path style): the SDK puts the bucket into the host name unless path style.
        (format!("https://s3.us-east-1.amazonaws.com:{port}"), false),
        (format!("https://s3.us-east-1.amazonaws.com:{port}"), true),
        (format!("https://s3.amazonaws.com:{port}"), false),
        (format!("https://s3.amazonaws.com:{port}"), true),
        (
            format!("https://s3.dualstack.us-east-1.amazonaws.com:{port}"),
            false,
        ),
        (format!("https://s3-us-east-1.amazonaws.com:{port}"), false),
    ];
    let direct = h.direct();
    for (i, (endpoint, path_style)) in forms.iter().enumerate() {
        let s3 = aws_client(endpoint, *path_style, &ca);
        let b = support::bucket("aws-names");
        s3.create_bucket().bucket(&b).send().await.unwrap();
        let body = format!("via {endpoint} path_style={path_style}");
        s3.put_object()
            .bucket(&b)
            .key("dir/obj")
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("form {i} ({endpoint}, {path_style}): {e:?}"));
        // The object landed in that bucket under that key upstream...
        let stored = direct
            .get_object()
            .bucket(&b)
            .key("dir/obj")
            .send()
            .await
            .unwrap();
        assert_eq!(
            stored.body.collect().await.unwrap().into_bytes(),
            body.as_bytes()
        );
        // ...and reads and lists back through the same name.
        let listed = s3.list_objects_v2().bucket(&b).send().await.unwrap();
        assert_eq!(listed.contents().len(), 1, "{endpoint}");
        assert_eq!(listed.contents()[0].key(), Some("dir/obj"));
    }
}

/// A plain-HTTP request, signed for `uri`, with `extra` headers (as a TLS terminator adds
/// them) and `Connection: close`. Returns the whole answer.
async fn plain_request(addr: std::net::SocketAddr, extra: &[(&str, &str)]) -> String {
    let uri = format!("http://127.0.0.1:{}/", addr.port());
    let signed = sign_request(
        "GET",
        &uri,
        &[],
        SignableBody::Bytes(b""),
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        addr.port()
    );
    for (k, v) in signed
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
    {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_https_is_trusted_only_from_configured_proxies() {
    // Loopback is the trusted TLS terminator.
    let h = Harness::s3s_with(|s| s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let addr = h.proxy.addr;
    for header in [
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=192.0.2.60;proto=https"),
    ] {
        let resp = plain_request(addr, &[header]).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{header:?}: {resp}");
        assert!(resp.contains("ListAllMyBucketsResult"), "{resp}");
    }
    // Without the header, or saying http, the request is refused as S3 does for plain HTTP.
    for extra in [
        &[][..],
        &[("X-Forwarded-Proto", "http")][..],
        &[("Forwarded", "proto=https"), ("X-Forwarded-Proto", "http")][..],
    ] {
        let resp = plain_request(addr, extra).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{extra:?}: {resp}");
        assert_eq!(error_code(body_of(&resp)), "TlsRequired", "{resp}");
    }
    // TLS from the trusted address is still served.
    h.sdk().list_buckets().send().await.unwrap();

    // From an address that is not trusted, plain HTTP is refused before any request is read,
    // whatever it claims.
    let h = Harness::s3s_with(|s| s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let resp = plain_request(h.proxy.addr, &[("X-Forwarded-Proto", "https")]).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(error_code(body_of(&resp)), "TlsRequired", "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    h.sdk().list_buckets().send().await.unwrap();
}
