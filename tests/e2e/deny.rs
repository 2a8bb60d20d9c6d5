//! Deny by default (issue 9): what the proxy does not recognise, or the key may not do, is
//! refused with an S3 error before anything reaches the backend. Each scenario is one of the
//! issue's findings, reproduced the way an attacker would send it, then checked at the
//! backend directly.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::SignableBody;
use base64::Engine as _;
use md5::Digest as _;
use s3seal::cors::BucketRules;
use s3seal::crypto::format::{Kek, KeyId};
use s3seal::cse::{EncryptionRules, Keyring, Rule, Unencrypted};
use s3seal::policy::SsePolicies;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{self, error_code, sign_request};
use crate::support::{
    self, backends, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK, LIMITED_AK, LIMITED_SK, PUBLIC_AK,
    PUBLIC_SK,
};

/// `enc-*` buckets are encrypted client-side and refuse unencrypted objects.
fn rules() -> EncryptionRules {
    let ring = Keyring::new(Kek::new(KeyId::new("k1").unwrap(), &[7; 32]), Vec::new()).unwrap();
    EncryptionRules::new([(
        "enc-*".to_owned(),
        Some(Rule::new(ring, Unencrypted::Refuse)),
    )])
    .unwrap()
}

async fn harness(upstream: Option<&backends::Backend>) -> Harness {
    let (cors, sse) = (BucketRules::none(), SsePolicies::default());
    match upstream {
        None => Harness::s3s_full(cors, sse, rules(), |_| {}).await,
        Some(b) => Harness::start_full(UpstreamInfo::of(b), cors, sse, rules(), |_| {}).await,
    }
}

/// A hand-signed request through the proxy: (status, body).
async fn signed(
    h: &Harness,
    creds: (&str, &str),
    method: &str,
    path_and_query: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let uri = format!("{}{path_and_query}", h.endpoint());
    let len = body.len().to_string();
    let mut headers = vec![("content-length", len.as_str())];
    headers.extend_from_slice(extra);
    let s = sign_request(
        method,
        &uri,
        &headers,
        SignableBody::Bytes(body),
        creds.0,
        creds.1,
        SystemTime::now(),
    );
    let (status, _, text) = raw::send(method, &uri, &s.headers, body.to_vec()).await;
    (status, text)
}

async fn create(h: &Harness, b: &str) {
    h.sdk().create_bucket().bucket(b).send().await.unwrap();
}

async fn put(h: &Harness, b: &str, key: &str, data: &'static [u8]) {
    h.sdk()
        .put_object()
        .bucket(b)
        .key(key)
        .body(ByteStream::from_static(data))
        .send()
        .await
        .unwrap();
}

async fn exists_at_backend(h: &Harness, b: &str, key: &str) -> bool {
    h.direct()
        .head_object()
        .bucket(b)
        .key(key)
        .send()
        .await
        .is_ok()
}

async fn backend_bytes(h: &Harness, b: &str, key: &str) -> Vec<u8> {
    let got = h
        .direct()
        .get_object()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Sends `head` (a whole HTTP/1.1 request head) over TLS to the proxy and reads the answer.
async fn raw_tls(h: &Harness, head: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(support::client_tls()));
    let tcp = TcpStream::connect(h.proxy.addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Finding 1: a URL presigned for one bucket, sent in absolute form naming another, with the
/// signed `Host`. The proxy used to verify the signature against `Host` and route by the
/// request target, and answered from the other bucket.
async fn presigned_replay_across_buckets(h: &Harness) {
    use aws_sdk_s3::presigning::PresigningConfig;
    let public = support::bucket("public");
    let private = support::bucket("private");
    create(h, &public).await;
    create(h, &private).await;
    put(h, &public, "report.pdf", b"public report").await;
    put(h, &private, "report.pdf", b"private report").await;

    // Virtual-hosted style under the proxy's domain: the bucket is only in the host name.
    let port = h.proxy.addr.port();
    let vhost = aws_sdk_s3::Client::from_conf(
        h.sdk()
            .config()
            .to_builder()
            .endpoint_url(format!("https://s3.localhost:{port}"))
            .force_path_style(false)
            .build(),
    );
    let conf = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    for method in ["GET", "PUT"] {
        let req = if method == "GET" {
            vhost
                .get_object()
                .bucket(&public)
                .key("report.pdf")
                .presigned(conf.clone())
                .await
                .unwrap()
        } else {
            vhost
                .put_object()
                .bucket(&public)
                .key("report.pdf")
                .presigned(conf.clone())
                .await
                .unwrap()
        };
        let url: http::Uri = req.uri().parse().unwrap();
        let signed_host = url.authority().unwrap().as_str().to_owned();
        assert!(signed_host.starts_with(&public), "{signed_host}");
        let target = format!(
            "https://{private}.s3.localhost:{port}{}",
            url.path_and_query().unwrap()
        );
        let body = if method == "PUT" { "overwritten" } else { "" };
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {signed_host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let resp = raw_tls(h, &head).await;
        assert!(resp.starts_with("HTTP/1.1 400 "), "{method}: {resp}");
        assert!(
            resp.contains("<Code>InvalidRequest</Code>"),
            "{method}: {resp}"
        );
        assert!(!resp.contains("private report"), "{method}: {resp}");
    }
    assert_eq!(
        backend_bytes(h, &private, "report.pdf").await,
        b"private report"
    );
    assert_eq!(
        backend_bytes(h, &public, "report.pdf").await,
        b"public report"
    );
}

/// Finding 2: an unknown query parameter used to make the request an unknown operation that
/// passed every stage: plaintext stored in an encrypted bucket, ciphertext and the proxy's
/// record handed out.
async fn unknown_parameters_do_not_switch_encryption_off(h: &Harness) {
    let b = support::bucket("enc-q");
    create(h, &b).await;
    put(h, &b, "k", b"secret data").await;

    let (status, body) = signed(
        h,
        (CLIENT_AK, CLIENT_SK),
        "PUT",
        &format!("/{b}/doc.xml?foo=1"),
        &[],
        b"<plaintext/>",
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "InvalidArgument"),
        "{body}"
    );
    assert!(body.contains("foo"), "{body}");
    assert!(!exists_at_backend(h, &b, "doc.xml").await);

    for q in ["foo", "foo=1", "Tagging", "AWSAccessKeyId=x"] {
        let (status, body) = signed(
            h,
            (CLIENT_AK, CLIENT_SK),
            "GET",
            &format!("/{b}/k?{q}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "InvalidArgument"),
            "?{q}: {body}"
        );
        assert!(!body.contains("s3seal-"), "?{q}: {body}");
    }
    // The object itself still reads back through the proxy.
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
        b"secret data"
    );
}

/// Finding 3: upper-case bucket names are not S3 bucket names; they dodged exact-name rules.
async fn upper_case_buckets_are_refused(h: &Harness) {
    let b = support::bucket("enc-case");
    create(h, &b).await;
    let upper = b.to_ascii_uppercase();
    let (status, body) = signed(
        h,
        (CLIENT_AK, CLIENT_SK),
        "PUT",
        &format!("/{upper}/doc"),
        &[],
        b"plaintext",
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "InvalidBucketName"),
        "{body}"
    );
    assert!(!exists_at_backend(h, &b, "doc").await);
}

/// Finding 4: a key limited to some buckets saw every bucket and could administer them.
async fn operations_are_authorised_per_class(h: &Harness) {
    let mine = support::bucket("limited");
    let other = support::bucket("vault");
    create(h, &mine).await;
    create(h, &other).await;
    let limited = h.sdk_as(LIMITED_AK, LIMITED_SK);

    // ListBuckets shows only the key's buckets.
    let names: Vec<String> = limited
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert!(names.contains(&mine), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("limited-")), "{names:?}");
    let all = h.sdk().list_buckets().send().await.unwrap();
    assert!(all
        .buckets()
        .iter()
        .any(|b| b.name() == Some(other.as_str())));

    // Everyday work on its own bucket still goes through.
    limited
        .put_object()
        .bucket(&mine)
        .key("k")
        .body(ByteStream::from_static(b"ok"))
        .send()
        .await
        .unwrap();

    // Bucket administration and bucket creation/deletion are not granted by default.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{mine}/*"}}]}}"#
    );
    let denied = [
        ("PUT", format!("/{mine}?policy"), policy.clone()),
        ("GET", format!("/{mine}?acl"), String::new()),
        (
            "PUT",
            format!("/{mine}?versioning"),
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
                .to_owned(),
        ),
        ("DELETE", format!("/{mine}"), String::new()),
        (
            "PUT",
            format!("/{}", support::bucket("limited-new")),
            String::new(),
        ),
        ("PUT", format!("/{mine}/k?acl"), String::new()),
    ];
    for (method, path, body) in &denied {
        let (status, text) = signed(
            h,
            (LIMITED_AK, LIMITED_SK),
            method,
            path,
            &[],
            body.as_bytes(),
        )
        .await;
        assert_eq!(
            (status, error_code(&text)),
            (403, "AccessDenied"),
            "{method} {path}: {text}"
        );
    }
    // The bucket is still there, without a policy.
    h.direct().head_bucket().bucket(&mine).send().await.unwrap();

    // `?c%6Frs` is `?cors`: the proxy's own, never the backend's PutBucketCors.
    let cors = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
    let (status, text) = signed(
        h,
        (CLIENT_AK, CLIENT_SK),
        "PUT",
        &format!("/{mine}?c%6Frs"),
        &[],
        cors.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, error_code(&text)),
        (405, "MethodNotAllowed"),
        "{text}"
    );
    assert!(h
        .direct()
        .get_bucket_cors()
        .bucket(&mine)
        .send()
        .await
        .is_err());
}

/// Finding 5: the copy source was authorised before it was decoded (`private%2Fq3-public`
/// was read as one bucket name, which `*-public` allows; S3 decodes first and copies from
/// `private`), and only the first of several copy-source headers was checked.
async fn copy_sources_are_authorised_as_s3_reads_them(h: &Harness) {
    let private = support::bucket("private");
    let dest = format!("{}-public", support::bucket("dst"));
    create(h, &private).await;
    create(h, &dest).await;
    put(h, &private, "q3-public/data.csv", b"private numbers").await;
    put(h, &dest, "mine", b"mine").await;

    let source = format!("{private}%2Fq3-public/data.csv");
    let (status, body) = signed(
        h,
        (PUBLIC_AK, PUBLIC_SK),
        "PUT",
        &format!("/{dest}/stolen"),
        &[("x-amz-copy-source", &source)],
        b"",
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "AccessDenied"), "{body}");
    assert!(body.contains(&private), "{body}");

    // Two copy sources: refused whatever their order.
    let uri = format!("{}/{dest}/stolen", h.endpoint());
    let s = sign_request(
        "PUT",
        &uri,
        &[
            ("content-length", "0"),
            ("x-amz-copy-source", &format!("{dest}/mine")),
        ],
        SignableBody::Bytes(b""),
        PUBLIC_AK,
        PUBLIC_SK,
        SystemTime::now(),
    );
    let mut headers = s.headers.clone();
    headers.push((
        "x-amz-copy-source".into(),
        format!("{private}/q3-public/data.csv"),
    ));
    let (status, _, body) = raw::send("PUT", &uri, &headers, Vec::new()).await;
    assert!(status == 400 || status == 403, "{status}: {body}");
    assert!(!exists_at_backend(h, &dest, "stolen").await);
}

/// Finding 8: DeleteObjects could delete the proxy's own objects (a single DELETE could not).
async fn delete_objects_spares_the_proxys_objects(h: &Harness) {
    let b = support::bucket("plain-del");
    create(h, &b).await;
    let seal = ".s3seal/seal/0123";
    h.direct()
        .put_object()
        .bucket(&b)
        .key(seal)
        .body(ByteStream::from_static(b"seal"))
        .send()
        .await
        .unwrap();
    put(h, &b, "victim", b"keep me").await;
    let doc = format!(
        "<Delete><Object><Key>victim</Key></Object><Object><Key>{seal}</Key></Object></Delete>"
    );
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(doc.as_bytes()));
    let (status, body) = signed(
        h,
        (CLIENT_AK, CLIENT_SK),
        "POST",
        &format!("/{b}?delete"),
        &[("content-md5", &md5)],
        doc.as_bytes(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "AccessDenied"), "{body}");
    assert!(exists_at_backend(h, &b, seal).await);
    assert!(exists_at_backend(h, &b, "victim").await);
    // The single forms and listings of the namespace are refused as well.
    for (method, path) in [
        ("DELETE", format!("/{b}/{seal}")),
        ("GET", format!("/{b}/{seal}")),
        ("GET", format!("/{b}?list-type=2&prefix=.s3seal/")),
    ] {
        let (status, body) = signed(h, (CLIENT_AK, CLIENT_SK), method, &path, &[], b"").await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "AccessDenied"),
            "{path}: {body}"
        );
    }
    // An empty or key-less body is not a DeleteObjects request.
    let (status, body) = signed(
        h,
        (CLIENT_AK, CLIENT_SK),
        "POST",
        &format!("/{b}?delete"),
        &[],
        b"<Delete><Quiet>true</Quiet></Delete>",
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "MalformedXML"), "{body}");
}

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                $scenario(&harness(None).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                $scenario(&harness(Some(backends::shared_moto())).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                $scenario(&harness(Some(backends::shared_rgw())).await).await;
            }
        }
    };
}

per_backend!(presigned_replay_across_buckets);
per_backend!(unknown_parameters_do_not_switch_encryption_off);
per_backend!(upper_case_buckets_are_refused);
per_backend!(operations_are_authorised_per_class);
per_backend!(copy_sources_are_authorised_as_s3_reads_them);
per_backend!(delete_objects_spares_the_proxys_objects);
