//! Anonymous reads (`[[bucket]] anonymous`, docs/config.md): requests without any
//! authentication read the buckets opened to them, under the upstream's credentials,
//! decrypted where the proxy encrypts and with the proxy's SSE-C key where it holds one.
//! Nothing else is opened: writes, deletes and other reads keep S3's `AccessDenied`, other
//! buckets keep today's answer, and a request that tries to authenticate is verified in full.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use s3seal::authz::{Anonymous, AnonymousAccess};
use s3seal::cors::BucketRules;
use s3seal::cse::EncryptionRules;
use s3seal::policy::SsePolicies;

use crate::admin::{self, sample};
use crate::cors::{https, pairs, sign, tamper};
use crate::support::{self, backends, payload, with_admin, Harness, UpstreamInfo};

/// `pub-*` buckets may be read and listed anonymously, `pubenc-*` and `pubc-*` ones read.
fn access() -> AnonymousAccess {
    let open = |read, list| Anonymous {
        read,
        list,
        upstream: "test".into(),
    };
    AnonymousAccess::new([
        ("pub-*".to_owned(), open(true, true)),
        ("pubenc-*".to_owned(), open(true, false)),
        ("pubc-*".to_owned(), open(true, false)),
    ])
    .unwrap()
}

/// What the backend can show (s3s-fs ignores conditional requests).
struct Checks {
    listing: bool,
    conditions: bool,
}

/// Anonymous GET, HEAD, ranges (and conditions, listings) of an object the test client
/// wrote into `b`, and every refusal around them. Returns the object's bytes.
async fn reads_and_refusals(h: &Harness, b: &str, checks: &Checks) -> Vec<u8> {
    let s3 = h.sdk();
    let ep = h.endpoint();
    s3.create_bucket().bucket(b).send().await.unwrap();
    // Over one 64 KiB chunk, so that an encrypted range spans two.
    let data = payload(70_000, 12);
    s3.put_object()
        .bucket(b)
        .key("dir/obj.bin")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let url = format!("{ep}/{b}/dir/obj.bin");

    let r = https("GET", &url, &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{b}: {}", r.text());
    assert!(r.body == data, "{b}: anonymous GET returned other bytes");
    let etag = r.header("etag").unwrap().to_owned();
    let r = https("HEAD", &url, &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("70000"));
    let r = https("GET", &url, &[("range", "bytes=100-65636")], Vec::new()).await;
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.header("content-range"), Some("bytes 100-65636/70000"));
    assert!(r.body == data[100..=65636], "{b}: anonymous range differs");
    if checks.conditions {
        let r = https("GET", &url, &[("if-none-match", &etag)], Vec::new()).await;
        assert_eq!(r.status, 304, "{}", r.text());
        let r = https("HEAD", &url, &[("if-match", "\"0000\"")], Vec::new()).await;
        assert_eq!(r.status, 412);
    }
    for list in [
        format!("{ep}/{b}?list-type=2&prefix=dir%2F"),
        format!("{ep}/{b}"),
    ] {
        let r = https("GET", &list, &[], Vec::new()).await;
        if checks.listing {
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(r.text().contains("<Key>dir/obj.bin</Key>"), "{}", r.text());
        } else {
            assert_eq!(r.status, 403, "{list}: listing is its own switch");
        }
    }

    // Never a write, a delete or another read: S3's AccessDenied, nothing reaches the store.
    for (method, target, body) in [
        ("PUT", format!("{b}/new.txt"), b"anonymous write".to_vec()),
        ("DELETE", format!("{b}/dir/obj.bin"), Vec::new()),
        ("POST", format!("{b}/dir/obj.bin?uploads"), Vec::new()),
        ("GET", format!("{b}/dir/obj.bin?tagging"), Vec::new()),
        ("GET", format!("{b}/dir/obj.bin?attributes"), Vec::new()),
        ("GET", format!("{b}?cors"), Vec::new()),
        ("GET", format!("{b}?uploads"), Vec::new()),
        ("GET", String::new(), Vec::new()),
    ] {
        let r = https(method, &format!("{ep}/{target}"), &[], body).await;
        assert_eq!(r.status, 403, "{method} {target}: {}", r.text());
        assert!(
            r.text().contains("<Code>AccessDenied</Code>"),
            "{}",
            r.text()
        );
    }
    let written = s3.head_object().bucket(b).key("new.txt").send().await;
    assert!(written.is_err(), "an anonymous PUT was stored");
    s3.head_object()
        .bucket(b)
        .key("dir/obj.bin")
        .send()
        .await
        .expect("an anonymous DELETE removed the object");

    // Any attempt at authentication is verified in full, never served as anonymous.
    let mut forged = sign("GET", &url, b"", &[]);
    tamper(&mut forged);
    let r = https("GET", &url, &pairs(&forged), Vec::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("SignatureDoesNotMatch"), "{}", r.text());
    let conf = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let presigned = s3
        .get_object()
        .bucket(b)
        .key("dir/obj.bin")
        .presigned(conf)
        .await
        .unwrap();
    let good = presigned.uri().to_owned();
    let last = if good.ends_with('0') { "1" } else { "0" };
    let bad = format!("{}{last}", &good[..good.len() - 1]);
    let r = https("GET", &bad, &[], Vec::new()).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("SignatureDoesNotMatch"), "{}", r.text());
    let r = https(
        "GET",
        &url,
        &[("x-amz-date", "20260101T000000Z")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 403, "a part of a signature without the signature");
    assert!(r.text().contains("not signed"), "{}", r.text());
    data
}

/// Today's answer to an anonymous request, for a bucket without `anonymous`.
async fn closed_bucket_keeps_todays_answer(h: &Harness) {
    let b = support::bucket("private");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    h.sdk()
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();
    for url in [
        format!("{}/{b}/k", h.endpoint()),
        format!("{}/{b}?list-type=2", h.endpoint()),
        format!("{}/{b}/k?unknown=1", h.endpoint()),
    ] {
        let r = https("GET", &url, &[], Vec::new()).await;
        assert_eq!(r.status, 403, "{url}");
        assert!(
            r.text()
                .contains("Access Denied: the request is not signed (no Authorization header"),
            "{}",
            r.text()
        );
    }
}

/// s3s-fs: a plain bucket read and listed, an encrypted one read (decrypted, ranges too),
/// the metrics that mark anonymous requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_on_s3s_fs() {
    let encryption =
        EncryptionRules::new([("pubenc-*".to_owned(), Some(crate::cse::rules_ring()))]).unwrap();
    let h = Harness::s3s_public(
        BucketRules::none(),
        access(),
        SsePolicies::default(),
        encryption,
        with_admin,
    )
    .await;
    let all = Checks {
        listing: true,
        conditions: false,
    };
    reads_and_refusals(&h, &support::bucket("pub"), &all).await;
    let enc = support::bucket("pubenc");
    let read_only = Checks {
        listing: false,
        conditions: false,
    };
    let data = reads_and_refusals(&h, &enc, &read_only).await;
    let stored = h
        .direct()
        .get_object()
        .bucket(&enc)
        .key("dir/obj.bin")
        .send()
        .await
        .unwrap();
    let stored = stored.body.collect().await.unwrap().into_bytes();
    assert!(
        stored.len() > data.len() && !stored.windows(64).any(|w| w == &data[..64]),
        "the encrypted bucket holds ciphertext, which anonymous reads decrypt"
    );
    closed_bucket_keeps_todays_answer(&h).await;

    let (status, metrics) = admin::get(h.proxy.admin_addr.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "s3seal_anonymous_requests_total{operation=\"GetObject\",status=\"200\"}",
        "s3seal_anonymous_requests_total{operation=\"GetObject\",status=\"206\"}",
        "s3seal_anonymous_requests_total{operation=\"HeadObject\",status=\"200\"}",
        "s3seal_anonymous_requests_total{operation=\"ListObjectsV2\",status=\"200\"}",
        "s3seal_anonymous_requests_total{operation=\"PutObject\",status=\"403\"}",
    ] {
        assert!(
            sample(&metrics, series) >= 1,
            "{series} missing:\n{metrics}"
        );
    }
    // Signed requests are not counted as anonymous.
    assert_eq!(
        sample(
            &metrics,
            "s3seal_anonymous_requests_total{operation=\"CreateBucket\",status=\"200\"}"
        ),
        0
    );
}

/// Ceph RGW with real SSE-C: the proxy holds the bucket's key, so an anonymous read works
/// only because the proxy sends it (RGW refuses a read of an SSE-C object without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_on_rgw_with_sse_c() {
    let rgw = backends::shared_rgw();
    let sse = crate::sse::policies(&[(
        "pubc-*",
        "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
    )]);
    let h = Harness::start_public(
        UpstreamInfo::of(rgw),
        BucketRules::none(),
        access(),
        sse,
        EncryptionRules::none(),
        |_| {},
    )
    .await;
    let b = support::bucket("pubc");
    let checks = Checks {
        listing: false,
        conditions: true,
    };
    reads_and_refusals(&h, &b, &checks).await;
    let direct = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("dir/obj.bin")
        .send()
        .await;
    assert!(
        direct.is_err(),
        "RGW served an SSE-C object without its key"
    );
    let listed = support::bucket("pub");
    let checks = Checks {
        listing: true,
        conditions: true,
    };
    reads_and_refusals(&h, &listed, &checks).await;
    closed_bucket_keeps_todays_answer(&h).await;
    rgw.check_alive().unwrap();
}
