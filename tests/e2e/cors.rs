//! CORS answered by the proxy: preflights and decorated responses checked on the wire, then
//! the real thing in headless Chromium.
//!
//! The proxy runs in front of s3s-fs, which has no CORS support at all: every CORS header a
//! browser sees must have come from the proxy. A preflight that went through authentication
//! would be refused (it carries no credentials), and one forwarded to s3s-fs would get its
//! error answer without CORS headers; either way the browser flow below would fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::SignableBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3seal::cors::{BucketRules, FromBucket, RawRule, Rule, Source};
use s3seal::cse::EncryptionRules;
use s3seal::policy::SsePolicies;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::support::tap::Tap;
use crate::support::{self, backends, raw, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK};

/// The whole browser scenario must finish well within the one-minute bound.
const BROWSER_DEADLINE: Duration = Duration::from_secs(45);

/// `cors-*` buckets: one rule for `origin`, with a wildcard header pattern and the headers
/// browser code needs to read. `nocors-*` buckets have no rules.
fn rules_for(origin: &str) -> BucketRules {
    BucketRules::new([("cors-*".to_owned(), vec![rule_for(origin)])]).unwrap()
}

/// The rule of `cors-*` buckets.
fn rule_for(origin: &str) -> Rule {
    let rule = RawRule {
        id: Some("browser-uploads".into()),
        allowed_origins: vec![origin.into()],
        allowed_methods: vec!["GET".into(), "PUT".into(), "HEAD".into()],
        allowed_headers: vec![
            "authorization".into(),
            "x-amz-*".into(),
            "content-type".into(),
        ],
        expose_headers: vec![
            "ETag".into(),
            "x-amz-version-id".into(),
            "x-amz-request-id".into(),
        ],
        max_age_seconds: Some(600),
        allow_credentials: false,
    };
    Rule::try_from(rule).unwrap()
}

/// The proxy in front of a fresh in-process s3s-fs store, with `buckets` rules.
async fn s3s_with_rules(buckets: BucketRules) -> Harness {
    let (sse, encryption) = (SsePolicies::default(), EncryptionRules::none());
    Harness::s3s_full(buckets, sse, encryption, |_| {}).await
}

// === On the wire ===

/// Preflights are answered without credentials, by path and by virtual host; S3's errors for
/// the refusals; actual responses (success, proxy error) carry the rule's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_decorated_responses_on_the_wire() {
    let page = "http://app.example.test";
    let h = s3s_with_rules(rules_for(page)).await;
    let s3 = h.sdk();
    let b = support::bucket("cors");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let ep = h.endpoint();
    let port = h.proxy.addr.port();

    let preflight = |origin: &'static str, method: &'static str, hdrs: &'static str| {
        let mut v = vec![
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        if !hdrs.is_empty() {
            v.push(("access-control-request-headers", hdrs));
        }
        v
    };

    // Path style: allowed, with the requested headers echoed (matched by `x-amz-*`).
    let r = https(
        "OPTIONS",
        &format!("{ep}/{b}/some/key"),
        &preflight(
            "http://app.example.test",
            "PUT",
            "Authorization, X-Amz-Date, x-amz-content-sha256",
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, PUT, HEAD")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, x-amz-date, x-amz-content-sha256")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(
        r.header("vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // Virtual-hosted style: the bucket comes from the Host header.
    let host = format!("{b}.s3.localhost:{port}");
    let hdrs = [
        ("origin", page),
        ("access-control-request-method", "GET"),
        ("host", host.as_str()),
    ];
    let r = https("OPTIONS", &format!("{ep}/some/key"), &hdrs, Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(page));

    // Refusals, with S3's codes and messages, and no CORS headers.
    let cases = [
        (
            preflight("https://evil.test", "PUT", ""),
            403,
            "AccessForbidden",
            format!("{ep}/{b}/k"),
        ),
        (
            preflight("http://app.example.test", "DELETE", ""),
            403,
            "AccessForbidden",
            format!("{ep}/{b}/k"),
        ),
        (
            preflight("http://app.example.test", "PUT", "x-custom"),
            403,
            "AccessForbidden",
            format!("{ep}/{b}/k"),
        ),
        (
            vec![("access-control-request-method", "GET")],
            400,
            "BadRequest",
            format!("{ep}/{b}/k"),
        ),
        (
            preflight("http://app.example.test", "GET", ""),
            403,
            "AccessForbidden",
            format!("{ep}/nocors-bucket/k"),
        ),
    ];
    for (hdrs, status, code, url) in cases {
        let r = https("OPTIONS", &url, &hdrs, Vec::new()).await;
        assert_eq!(r.status, status, "{hdrs:?}: {}", r.text());
        assert!(
            r.text().contains(&format!("<Code>{code}</Code>")),
            "{}",
            r.text()
        );
        assert!(r.header("access-control-allow-origin").is_none());
    }
    let r = https(
        "OPTIONS",
        &format!("{ep}/{b}/k"),
        &preflight("https://evil.test", "PUT", ""),
        Vec::new(),
    )
    .await;
    assert!(r
        .text()
        .contains("CORSResponse: This CORS request is not allowed."));

    // Actual requests: a signed PUT and a GET carry the allowed origin and the expose list; a
    // request with a bad signature is refused by the proxy, and the page may read why.
    let url = format!("{ep}/{b}/obj");
    let body = b"hello cors".to_vec();
    let signed = sign("PUT", &url, &body, &[("origin", page)]);
    let r = https("PUT", &url, &pairs(&signed), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("etag, x-amz-version-id, x-amz-request-id")
    );
    assert!(r.header("etag").is_some());
    assert_eq!(r.header("vary"), Some("Origin"));

    let mut forged = sign("GET", &url, b"", &[("origin", page)]);
    tamper(&mut forged);
    let r = https("GET", &url, &pairs(&forged), Vec::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("SignatureDoesNotMatch"));
    assert_eq!(r.header("access-control-allow-origin"), Some(page));

    // A method the rule does not allow, or another origin: no CORS headers, Vary kept.
    let signed = sign("GET", &url, b"", &[("origin", "https://evil.test")]);
    let r = https("GET", &url, &pairs(&signed), Vec::new()).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(r.header("vary"), Some("Origin"));
    let signed = sign("DELETE", &url, b"", &[("origin", page)]);
    let r = https("DELETE", &url, &pairs(&signed), Vec::new()).await;
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());

    // GetBucketCors is answered from the config; PutBucketCors is refused.
    let cors = s3.get_bucket_cors().bucket(&b).send().await.unwrap();
    let rule = &cors.cors_rules()[0];
    assert_eq!(rule.id(), Some("browser-uploads"));
    assert_eq!(rule.allowed_origins(), [page]);
    assert_eq!(rule.allowed_methods(), ["GET", "PUT", "HEAD"]);
    assert_eq!(rule.max_age_seconds(), Some(600));
    let err = s3
        .put_bucket_cors()
        .bucket(&b)
        .cors_configuration(cors_configuration())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(405));
    let nb = support::bucket("nocors");
    s3.create_bucket().bucket(&nb).send().await.unwrap();
    let err = s3.get_bucket_cors().bucket(&nb).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

fn cors_configuration() -> aws_sdk_s3::types::CorsConfiguration {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("GET")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// moto adds `Access-Control-Allow-Origin: *` to every response; the proxy's rules replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cors_headers_are_replaced_moto() {
    let page = "http://app.example.test";
    let b = backends::shared_moto();
    let upstream = UpstreamInfo::of(b);
    let h = Harness::start_with_buckets(upstream, rules_for(page), |_| {}).await;
    let s3 = h.sdk();
    let ep = h.endpoint();
    for (bucket, origin, want) in [
        (support::bucket("cors"), page, Some(page)),
        (support::bucket("cors"), "https://evil.test", None),
        (support::bucket("nocors"), page, None),
    ] {
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let url = format!("{ep}/{bucket}?list-type=2");
        let signed = sign("GET", &url, b"", &[("origin", origin)]);
        let r = https("GET", &url, &pairs(&signed), Vec::new()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("access-control-allow-origin"),
            want,
            "{bucket} {origin}"
        );
    }
}

// === Rules taken from the bucket ===

/// `site-*` buckets take their CORS rules from the bucket (read again after 60 s); `cors-*`
/// ones from the config (`rule_for`).
fn sourced_rules(origin: &str) -> BucketRules {
    let from = FromBucket {
        upstream: "test".into(),
        ttl: Duration::from_secs(60),
    };
    BucketRules::from_sources([
        ("site-*".to_owned(), Source::Bucket(from)),
        ("cors-*".to_owned(), Source::Config(vec![rule_for(origin)])),
    ])
    .unwrap()
}

/// The proxy in front of `backend` through a tap (`tap.request_lines()` shows what reached
/// the backend), with [`sourced_rules`]; `h.direct()` goes to the backend itself.
async fn tapped(backend: &backends::Backend, origin: &str) -> (Harness, Tap) {
    let upstream = UpstreamInfo::of(backend);
    let tap = Tap::start(&upstream.endpoint).await;
    let mut via_tap = upstream.clone();
    via_tap.endpoint.clone_from(&tap.endpoint);
    let mut h = Harness::start_with_buckets(via_tap, sourced_rules(origin), |_| {}).await;
    h.upstream = upstream;
    (h, tap)
}

/// `aws s3api put-bucket-cors` through the proxy: `origin` may GET and PUT with any header.
async fn put_bucket_cors_cli(h: &Harness, bucket: &str, origin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("cors.json");
    std::fs::write(
        &doc,
        format!(
            r#"{{"CORSRules":[{{"ID":"from-cli","AllowedOrigins":["{origin}"],"AllowedMethods":["GET","PUT"],"AllowedHeaders":["*"],"ExposeHeaders":["ETag"],"MaxAgeSeconds":30}}]}}"#
        ),
    )
    .unwrap();
    let mut aws = Command::new("aws");
    aws.arg("--endpoint-url")
        .arg(h.endpoint())
        .args(["s3api", "put-bucket-cors", "--bucket", bucket])
        .arg("--cors-configuration")
        .arg(format!("file://{}", doc.display()));
    crate::clients::run(aws).await;
}

fn preflight_for(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type, x-amz-date"),
    ]
}

/// The S3 error message and status of a failed SDK call.
fn refusal<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (u16, String) {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    (
        e.raw_response().map_or(0, |r| r.status().as_u16()),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// Rules set with `aws s3api put-bucket-cors` through the proxy are stored on the bucket, read
/// back by the proxy and applied at once; kept for their period; refused when the proxy could
/// not apply them; removed with `DeleteBucketCors`. Config-sourced buckets refuse the writes
/// and answer `GetBucketCors` from the config. No preflight ever reaches the backend.
async fn rules_from_the_bucket(backend: &backends::Backend) {
    let page = "http://app.example.test";
    let (h, tap) = tapped(backend, page).await;
    let s3 = h.sdk();
    let ep = h.endpoint();
    let b = support::bucket("site");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let url = format!("{ep}/{b}/k");

    // No configuration on the bucket: CORS is not enabled, as S3 answers.
    let r = https("OPTIONS", &url, &preflight_for(page), Vec::new()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("CORS is not enabled"), "{}", r.text());
    let err = s3.get_bucket_cors().bucket(&b).send().await.unwrap_err();
    assert_eq!(refusal(&err).0, 404);

    put_bucket_cors_cli(&h, &b, page).await;
    // In force at once: the proxy dropped what it had read when the change went through it.
    let r = https("OPTIONS", &url, &preflight_for(page), Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("30"));
    let r = https(
        "OPTIONS",
        &url,
        &preflight_for("https://evil.test"),
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    // Actual responses carry the bucket's rule, and only the proxy's CORS headers.
    let body = b"from the bucket's rules".to_vec();
    let signed = sign("PUT", &url, &body, &[("origin", page)]);
    let r = https("PUT", &url, &pairs(&signed), body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert_eq!(r.header("access-control-expose-headers"), Some("etag"));
    // GetBucketCors answers the rules that apply, read from the bucket.
    let cors = s3.get_bucket_cors().bucket(&b).send().await.unwrap();
    let rule = &cors.cors_rules()[0];
    assert_eq!(rule.id(), Some("from-cli"));
    assert_eq!(rule.allowed_origins(), [page]);
    assert_eq!(rule.allowed_methods(), ["GET", "PUT"]);
    assert_eq!(rule.max_age_seconds(), Some(30));

    // Kept for the period: a change made on the backend directly is not seen yet.
    h.direct()
        .put_bucket_cors()
        .bucket(&b)
        .cors_configuration(cors_configuration())
        .send()
        .await
        .unwrap();
    let r = https("OPTIONS", &url, &preflight_for(page), Vec::new()).await;
    assert_eq!(r.status, 200, "the rules read moments ago are still used");

    // A configuration the proxy could not apply is refused, and never reaches the bucket.
    let unusable = aws_sdk_s3::types::CorsConfiguration::builder()
        .cors_rules(
            aws_sdk_s3::types::CorsRule::builder()
                .allowed_origins(page)
                .allowed_methods("PATCH")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = s3
        .put_bucket_cors()
        .bucket(&b)
        .cors_configuration(unusable)
        .send()
        .await
        .unwrap_err();
    let (status, message) = refusal(&err);
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("PATCH"), "{message}");

    // DeleteBucketCors through the proxy: no rules, at once.
    s3.delete_bucket_cors().bucket(&b).send().await.unwrap();
    let r = https("OPTIONS", &url, &preflight_for(page), Vec::new()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("CORS is not enabled"), "{}", r.text());

    // Config-sourced buckets: the writes are refused saying why, reads answer the config.
    let c = support::bucket("cors");
    s3.create_bucket().bucket(&c).send().await.unwrap();
    let err = s3
        .put_bucket_cors()
        .bucket(&c)
        .cors_configuration(cors_configuration())
        .send()
        .await
        .unwrap_err();
    let (status, message) = refusal(&err);
    assert_eq!(status, 405);
    assert!(message.starts_with("PutBucketCors is refused"), "{message}");
    assert!(message.contains("cors_from_bucket"), "{message}");
    let err = s3.delete_bucket_cors().bucket(&c).send().await.unwrap_err();
    let (status, message) = refusal(&err);
    assert_eq!(status, 405);
    assert!(
        message.starts_with("DeleteBucketCors is refused"),
        "{message}"
    );
    let cors = s3.get_bucket_cors().bucket(&c).send().await.unwrap();
    assert_eq!(cors.cors_rules()[0].id(), Some("browser-uploads"));

    // Every preflight was answered by the proxy; the rules were read from the bucket; the
    // configuration the proxy refused was never sent.
    let lines = tap.request_lines().await;
    assert!(!lines.iter().any(|l| l.contains("OPTIONS ")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains(&format!("GET /{b}?cors"))),
        "{lines:#?}"
    );
    let puts = lines
        .iter()
        .filter(|l| l.contains(&format!("PUT /{b}?cors")))
        .count();
    assert_eq!(puts, 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains(&format!("/{c}?cors"))),
        "{lines:#?}"
    );
}

/// Ceph RGW has S3's CORS: stored, answered and evaluated by the backend too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_from_the_bucket_rgw() {
    let rgw = backends::shared_rgw();
    rules_from_the_bucket(rgw).await;
    rgw.check_alive().unwrap();
}

/// moto stores CORS configurations and adds `Access-Control-Allow-Origin: *` to every answer:
/// the tap shows that no preflight reached it, and the headers that the proxy's answers carry
/// are the bucket's rule's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_from_the_bucket_moto() {
    rules_from_the_bucket(backends::shared_moto()).await;
}

/// A bucket whose rules cannot be read fails closed: its preflights are refused without CORS
/// headers, its answers carry none, and `GetBucketCors` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_from_an_unreadable_bucket_fail_closed() {
    // Nothing listens on the upstream's port.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let upstream = UpstreamInfo {
        endpoint,
        access_key: "unused".into(),
        secret_key: "unused".into(),
        region: support::REGION.into(),
        checksum_trailers: s3seal::config::TrailerMode::default(),
        ca_bundle: None,
    };
    let page = "http://app.example.test";
    let h = Harness::start_with_buckets(upstream, sourced_rules(page), |_| {}).await;
    let url = format!("{}/site-down/k", h.endpoint());
    let r = https("OPTIONS", &url, &preflight_for(page), Vec::new()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("<Code>AccessForbidden</Code>"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("could not be read"), "{}", r.text());
    assert!(r.header("access-control-allow-origin").is_none());
    let r = https("GET", &url, &[("origin", page)], Vec::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    let err = h
        .sdk()
        .get_bucket_cors()
        .bucket("site-down")
        .send()
        .await
        .unwrap_err();
    let (status, message) = refusal(&err);
    assert_eq!(status, 502, "{message}");
    assert!(message.contains("could not be read"), "{message}");
}

// === In a real browser ===

/// A page on an allowed origin uploads with a presigned PUT and with a signed `fetch`, reads
/// both back, reads the exposed `ETag` and the bodies of a proxy error and an upstream error; a
/// page on another origin is blocked by the browser, and its PUT never happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_uploads_and_reads_across_origins() {
    use aws_sdk_s3::presigning::PresigningConfig;

    let Some(chromium) = find_chromium() else {
        panic!("chromium is not installed: run scripts/install-test-deps.sh (Debian package `chromium`)");
    };
    let pages = PageServer::start().await;
    let allowed = format!("http://127.0.0.1:{}", pages.addr.port());
    // The same server under another name is another origin, which no rule allows.
    let blocked = format!("http://localhost:{}", pages.addr.port());
    let h = s3s_with_rules(rules_for(&allowed)).await;
    let s3 = h.sdk();
    let b = support::bucket("cors");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let ep = h.endpoint();

    let conf = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let presigned_put = s3
        .put_object()
        .bucket(&b)
        .key("presigned.txt")
        .presigned(conf.clone())
        .await
        .unwrap();
    let presigned_get = s3
        .get_object()
        .bucket(&b)
        .key("presigned.txt")
        .presigned(conf.clone())
        .await
        .unwrap();
    let missing = s3
        .get_object()
        .bucket(&b)
        .key("missing.txt")
        .presigned(conf)
        .await
        .unwrap();
    let presigned_body = "uploaded with a presigned URL";
    let signed_body = "uploaded with a signed fetch";
    let signed_url = format!("{ep}/{b}/signed.txt");
    let signed_put = sign("PUT", &signed_url, signed_body.as_bytes(), &[]);
    let signed_get = sign("GET", &signed_url, b"", &[]);
    let mut bad = sign("GET", &signed_url, b"", &[]);
    tamper(&mut bad);
    let blocked_body = "must never be stored";
    let blocked_put = sign(
        "PUT",
        &format!("{ep}/{b}/blocked.txt"),
        blocked_body.as_bytes(),
        &[],
    );

    let config = format!(
        "{{\"presignedPut\":{},\"signedPut\":{},\"presignedGet\":{},\"signedGet\":{},\
         \"badSignature\":{},\"missingKey\":{},\"blockedPut\":{},\"blockedPage\":{}}}",
        request_json(
            "PUT",
            presigned_put.uri(),
            presigned_put.headers(),
            Some(presigned_body)
        ),
        signed_json(&signed_put, Some(signed_body)),
        request_json("GET", presigned_get.uri(), presigned_get.headers(), None),
        signed_json(&signed_get, None),
        signed_json(&bad, None),
        request_json("GET", missing.uri(), missing.headers(), None),
        signed_json(&blocked_put, Some(blocked_body)),
        json_str(&format!("{blocked}/blocked.html")),
    );
    pages.set_config(config);

    let browser = Browser::launch(&chromium, &format!("{allowed}/allowed.html"));
    let results = pages
        .results(&["allowed", "blocked"], BROWSER_DEADLINE)
        .await;
    let results = match results {
        Ok(r) => r,
        Err(got) => panic!(
            "the pages did not report within {BROWSER_DEADLINE:?}; got {got:?}\nchromium log:\n{}",
            browser.log()
        ),
    };
    drop(browser);

    let ok = &results["allowed"];
    let field = |k: &str| ok.get(k).map(String::as_str);
    assert_eq!(field("error"), None, "{ok:?}");
    assert_eq!(field("presignedPut.status"), Some("200"), "{ok:?}");
    assert_eq!(field("signedPut.status"), Some("200"), "{ok:?}");
    assert_eq!(field("presignedGet.status"), Some("200"), "{ok:?}");
    assert_eq!(field("presignedGet.body"), Some(presigned_body));
    assert_eq!(field("signedGet.status"), Some("200"), "{ok:?}");
    assert_eq!(field("signedGet.body"), Some(signed_body));
    // ETag is not a CORS-safelisted response header: the page reads it only if exposed.
    let put_etag = field("presignedPut.etag").expect("ETag exposed on the PUT");
    assert!(put_etag.starts_with('"'), "{put_etag}");
    assert_eq!(field("presignedGet.etag"), Some(put_etag));
    assert_eq!(field("signedGet.etag"), field("signedPut.etag"));
    assert!(field("signedGet.etag").is_some());
    // Errors are readable too: the proxy's own refusal, and the upstream's 404.
    assert_eq!(field("badSignature.status"), Some("403"), "{ok:?}");
    assert!(field("badSignature.body")
        .unwrap()
        .contains("SignatureDoesNotMatch"));
    assert_eq!(field("missingKey.status"), Some("404"), "{ok:?}");
    assert!(field("missingKey.body").unwrap().contains("NoSuchKey"));

    // The other origin: the browser refuses to hand over the response, and refuses to send
    // the PUT at all after the preflight is denied.
    let no = &results["blocked"];
    let field = |k: &str| no.get(k).map(String::as_str);
    assert_eq!(field("error"), None, "{no:?}");
    assert!(
        field("presignedGet.error").is_some_and(|e| e.contains("TypeError")),
        "{no:?}"
    );
    assert_eq!(field("presignedGet.status"), None, "{no:?}");
    assert!(
        field("signedPut.error").is_some_and(|e| e.contains("TypeError")),
        "{no:?}"
    );
    let stored = s3.head_object().bucket(&b).key("blocked.txt").send().await;
    assert!(stored.is_err(), "the blocked page's PUT reached the store");
    let direct = s3
        .get_object()
        .bucket(&b)
        .key("signed.txt")
        .send()
        .await
        .unwrap();
    let bytes = direct.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), signed_body.as_bytes());
}

/// A real HTML `<form>` (its file set through `DataTransfer`, then `form.submit()`) uploads
/// with a POST policy; Chromium follows the `303` to `success_action_redirect` with the
/// bucket, key and `ETag`, and the object holds the file (docs/cors.md, "With an HTML form").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_submits_a_form_upload() {
    let Some(chromium) = find_chromium() else {
        panic!("chromium is not installed: run scripts/install-test-deps.sh (Debian package `chromium`)");
    };
    let pages = PageServer::start().await;
    let origin = format!("http://127.0.0.1:{}", pages.addr.port());
    let h = s3s_with_rules(rules_for(&origin)).await;
    let s3 = h.sdk();
    let b = support::bucket("form");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let done = format!("{origin}/done");
    let conditions = format!(
        r#", ["starts-with", "$key", "uploads/"], {{"success_action_redirect": "{done}"}}"#
    );
    let fields = crate::post::signed_fields(
        &b,
        &[
            ("key", "uploads/${filename}"),
            ("success_action_redirect", &done),
        ],
        &conditions,
    );
    let inputs = fields.iter().fold(String::new(), |mut out, (n, v)| {
        use std::fmt::Write as _;
        let _ = writeln!(out, "<input type=\"hidden\" name=\"{n}\" value=\"{v}\">");
        out
    });
    let content = "hello from a browser form";
    pages.set_config(format!(
        r#"<!doctype html><html><body>
<form id="f" action="{}/{b}" method="post" enctype="multipart/form-data">
{inputs}<input type="file" name="file" id="file">
</form>
<script>
const files = new DataTransfer();
files.items.add(new File(["{content}"], "hello.txt", {{ type: "text/plain" }}));
document.getElementById("file").files = files.files;
document.getElementById("f").submit();
</script></body></html>"#,
        h.endpoint()
    ));

    let browser = Browser::launch(&chromium, &format!("{origin}/form.html"));
    let results = match pages.results(&["done"], BROWSER_DEADLINE).await {
        Ok(r) => r,
        Err(got) => panic!(
            "the form's redirect did not arrive within {BROWSER_DEADLINE:?}; got {got:?}\nchromium log:\n{}",
            browser.log()
        ),
    };
    drop(browser);
    let done = &results["done"];
    assert_eq!(done.get("bucket"), Some(&b), "{done:?}");
    assert_eq!(
        done.get("key").map(String::as_str),
        Some("uploads/hello.txt")
    );
    let got = s3
        .get_object()
        .bucket(&b)
        .key("uploads/hello.txt")
        .send()
        .await
        .unwrap();
    let etag = got.e_tag().unwrap().to_owned();
    assert_eq!(done.get("etag"), Some(&etag), "{done:?}");
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), content.as_bytes());
}

/// Rules set through the S3 API take effect in the browser: before `aws s3api
/// put-bucket-cors`, a page's presigned GET and signed PUT are blocked by Chromium (and the
/// PUT never happens); after it, both work and the page reads the exposed `ETag`. In front
/// of RGW, which has CORS of its own, through a tap that shows no preflight reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_follows_rules_set_through_the_s3_api_chromium_rgw() {
    use aws_sdk_s3::presigning::PresigningConfig;

    let Some(chromium) = find_chromium() else {
        panic!("chromium is not installed: run scripts/install-test-deps.sh (Debian package `chromium`)");
    };
    let pages = PageServer::start().await;
    let origin = format!("http://127.0.0.1:{}", pages.addr.port());
    let rgw = backends::shared_rgw();
    let (h, tap) = tapped(rgw, &origin).await;
    let s3 = h.sdk();
    let b = support::bucket("site");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let public = "read by the page";
    s3.put_object()
        .bucket(&b)
        .key("hello.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            public.as_bytes(),
        ))
        .send()
        .await
        .unwrap();
    let conf = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let get = s3
        .get_object()
        .bucket(&b)
        .key("hello.txt")
        .presigned(conf)
        .await
        .unwrap();
    let put_body = "uploaded by the page";
    let put = sign(
        "PUT",
        &format!("{}/{b}/browser.txt", h.endpoint()),
        put_body.as_bytes(),
        &[],
    );
    pages.set_config(format!(
        "{{\"put\":{},\"get\":{}}}",
        signed_json(&put, Some(put_body)),
        request_json("GET", get.uri(), get.headers(), None),
    ));

    let mut seen = HashMap::new();
    for phase in ["before", "after"] {
        if phase == "after" {
            put_bucket_cors_cli(&h, &b, &origin).await;
        }
        let browser = Browser::launch(&chromium, &format!("{origin}/bucket.html?phase={phase}"));
        let results = match pages.results(&[phase], BROWSER_DEADLINE).await {
            Ok(r) => r,
            Err(got) => panic!(
                "the page did not report within {BROWSER_DEADLINE:?}; got {got:?}\nchromium log:\n{}",
                browser.log()
            ),
        };
        drop(browser);
        seen.extend(results);
        if phase == "before" {
            let stored = s3.head_object().bucket(&b).key("browser.txt").send().await;
            assert!(
                stored.is_err(),
                "the PUT was sent without a rule allowing it"
            );
        }
    }
    let before = &seen["before"];
    let field = |k: &str| before.get(k).map(String::as_str);
    assert!(
        field("put.error").is_some_and(|e| e.contains("TypeError")),
        "{before:?}"
    );
    assert!(
        field("get.error").is_some_and(|e| e.contains("TypeError")),
        "{before:?}"
    );
    let after = &seen["after"];
    let field = |k: &str| after.get(k).map(String::as_str);
    assert_eq!(field("error"), None, "{after:?}");
    assert_eq!(field("put.status"), Some("200"), "{after:?}");
    assert!(
        field("put.etag").is_some(),
        "ETag exposed by the bucket's rule: {after:?}"
    );
    assert_eq!(field("get.status"), Some("200"), "{after:?}");
    assert_eq!(field("get.body"), Some(public));
    let stored = s3
        .get_object()
        .bucket(&b)
        .key("browser.txt")
        .send()
        .await
        .unwrap();
    let bytes = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), put_body.as_bytes());
    let lines = tap.request_lines().await;
    assert!(!lines.iter().any(|l| l.contains("OPTIONS ")), "{lines:#?}");
    rgw.check_alive().unwrap();
}

// === Helpers: signing ===

/// Header-signed request for the test client (payload hash of `body`), plus `extra` headers
/// that are sent but not signed (as a browser adds `Origin`).
pub(crate) fn sign(method: &str, url: &str, body: &[u8], extra: &[(&str, &str)]) -> raw::Signed {
    let mut s = raw::sign_request(
        method,
        url,
        &[],
        SignableBody::Bytes(body),
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    s.headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    s
}

/// Changes the last signature hex digit.
pub(crate) fn tamper(s: &mut raw::Signed) {
    for (k, v) in &mut s.headers {
        if k.eq_ignore_ascii_case("authorization") {
            let last = if v.ends_with('0') { '1' } else { '0' };
            v.pop();
            v.push(last);
        }
    }
}

pub(crate) fn pairs(s: &raw::Signed) -> Vec<(&str, &str)> {
    s.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// === Helpers: JSON for the page (no JSON crate needed for this little) ===

fn json_str(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A request the page makes: `{method, url, headers, body?}`. `host` is left out: the browser
/// sets it from the URL (and refuses to let a page set it).
fn request_json<'a>(
    method: &str,
    url: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: Option<&str>,
) -> String {
    let headers: Vec<String> = headers
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    let body = body.map_or(String::new(), |b| format!(",\"body\":{}", json_str(b)));
    format!(
        "{{\"method\":{},\"url\":{},\"headers\":{{{}}}{body}}}",
        json_str(method),
        json_str(url),
        headers.join(",")
    )
}

fn signed_json(s: &raw::Signed, body: Option<&str>) -> String {
    request_json(&s.method, &s.uri, pairs(s).into_iter(), body)
}

// === Helpers: an HTTPS client that shows response headers ===

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) async fn https(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let tls = support::client_tls();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

// === Helpers: the page server (the second origin) ===

/// Serves the test page and `/config.json` over plain HTTP on 127.0.0.1, and collects what
/// the pages post to `/result/<role>`.
struct PageServer {
    addr: SocketAddr,
    config: std::sync::Arc<std::sync::OnceLock<String>>,
    results: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    async fn start() -> PageServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let cfg = cfg.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let cfg = cfg.clone();
                        let tx = tx.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(serve_page(req, &cfg, &tx).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        PageServer {
            addr,
            config,
            results: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    fn set_config(&self, json: String) {
        self.config.set(json).unwrap();
    }

    /// Waits for one report from each role. `Err` holds what arrived before the deadline.
    async fn results(
        &self,
        roles: &[&str],
        deadline: Duration,
    ) -> Result<HashMap<String, HashMap<String, String>>, HashMap<String, HashMap<String, String>>>
    {
        let mut got = HashMap::new();
        let mut rx = self.results.lock().await;
        let until = tokio::time::Instant::now() + deadline;
        while !roles.iter().all(|r| got.contains_key(*r)) {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some((role, form))) => {
                    got.insert(role, parse_form(&form));
                }
                _ => return Err(got),
            }
        }
        Ok(got)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_page(
    req: http::Request<hyper::body::Incoming>,
    config: &std::sync::OnceLock<String>,
    results: &mpsc::UnboundedSender<(String, String)>,
) -> http::Response<Full<Bytes>> {
    let reply = |ctype: &str, body: String| {
        http::Response::builder()
            .header("content-type", ctype)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let path = req.uri().path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/allowed.html" | "/blocked.html" | "/bucket.html") => reply(
            "text/html; charset=utf-8",
            include_str!("cors/page.html").into(),
        ),
        ("GET", "/page.js") => reply(
            "text/javascript; charset=utf-8",
            include_str!("cors/page.js").into(),
        ),
        ("GET", "/config.json") => reply(
            "application/json",
            config.get().cloned().unwrap_or_default(),
        ),
        // A page the test wrote whole (a form upload's), and where its redirect lands.
        ("GET", "/form.html") => reply(
            "text/html; charset=utf-8",
            config.get().cloned().unwrap_or_default(),
        ),
        ("GET", "/done") => {
            let query = req.uri().query().unwrap_or_default().to_owned();
            let _ = results.send(("done".to_owned(), query));
            reply("text/plain", "stored".into())
        }
        ("POST", p) if p.starts_with("/result/") => {
            let role = p.trim_start_matches("/result/").to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = results.send((role, String::from_utf8_lossy(&body).into_owned()));
            reply("text/plain", String::new())
        }
        _ => {
            let mut r = reply("text/plain", "not found".into());
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    }
}

fn parse_form(s: &str) -> HashMap<String, String> {
    let decode = |x: &str| {
        percent_encoding::percent_decode_str(x)
            .decode_utf8_lossy()
            .into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

// === Helpers: headless Chromium ===

fn find_chromium() -> Option<String> {
    backends::needs_installed("chromium");
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

/// A headless Chromium with a throwaway profile, killed (with its children) on drop.
struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    fn launch(binary: &str, url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            // Trust exactly the proxy's certificate, by its public key, instead of turning
            // certificate checks off.
            .arg(format!(
                "--ignore-certificate-errors-spki-list={}",
                server_spki_hash()
            ))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        Browser { child, profile }
    }

    fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium forks helpers (zygote, renderers, GPU): end the whole process group we
        // created for it, by its id, then reap the main process.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of `certs/server.pem`, the form Chromium's
/// `--ignore-certificate-errors-spki-list` takes.
fn server_spki_hash() -> String {
    use base64::Engine as _;
    let pem = std::fs::read(support::repo_path("certs/server.pem")).unwrap();
    let cert = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    let spki = subject_public_key_info(cert.as_ref());
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki))
}

/// The DER of `tbsCertificate.subjectPublicKeyInfo` (RFC 5280 §4.1): the 7th field of the
/// TBS sequence when the explicit `[0]` version is present, else the 6th.
fn subject_public_key_info(der: &[u8]) -> &[u8] {
    let (cert, _) = der_element(der);
    let (tbs, _) = der_element(der_content(cert));
    let mut rest = der_content(tbs);
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (field, next) = der_element(rest);
        fields.push(field);
        rest = next;
    }
    let index = if fields[0][0] == 0xA0 { 6 } else { 5 };
    fields[index]
}

/// Splits one DER element (tag, length, content) off the front of `b`.
fn der_element(b: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = der_header(b);
    b.split_at(header + len)
}

fn der_content(element: &[u8]) -> &[u8] {
    let (header, len) = der_header(element);
    &element[header..header + len]
}

fn der_header(b: &[u8]) -> (usize, usize) {
    let first = b[1];
    if first < 0x80 {
        return (2, usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
    (2 + n, len)
}
