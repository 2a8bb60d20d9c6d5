//! Issue 14, item 2: Signature Version 2, header and query authentication, from boto3 and aws
//! cli v1 as they sign by default, re-signed upstream with SigV4; and `[server] sigv2 = false`
//! refusing it before anything reaches the backend.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};

use crate::support::raw::{self, error_code};
use crate::support::{self, backends, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK, REGION};

/// Runs a client with the proxy's CA and the test key only (see `clients.rs`).
async fn run(mut cmd: Command) -> String {
    backends::client_env(&mut cmd, Some(&support::ca_pem()));
    cmd.env("AWS_ACCESS_KEY_ID", CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
        .env("AWS_DEFAULT_REGION", REGION);
    let desc = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{desc} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// boto3 signing every call with SigV2, its default (SigV2) presigned URLs, and aws cli v1's
/// `aws s3 presign`.
async fn boto3_and_aws_cli_sign_with_sigv2(h: &Harness) {
    let b = support::bucket("sigv2");
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/sigv2.py"))
        .arg(h.endpoint())
        .arg(&b);
    let out = run(cmd).await;
    assert!(out.contains("sigv2 suite passed"), "{out}");

    let mut cmd = Command::new("aws");
    cmd.args(["--endpoint-url", &h.endpoint(), "s3", "presign"])
        .arg(format!("s3://{b}/pre.txt"));
    let url = run(cmd).await.trim().to_owned();
    assert!(url.contains("AWSAccessKeyId="), "{url}");
    let (status, _, body) = raw::send("GET", &url, &[], Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "presigned v2 put"), "{url}");

    // What the backend holds was written through SigV4 re-signing, byte for byte.
    let got = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("a b/v2.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"signed with v2"
    );
}

fn sign_v2(string_to_sign: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(CLIENT_SK.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A SigV2 header-signed PUT and a SigV2 presigned GET, built by hand from AWS's reference.
async fn hand_signed(h: &Harness, b: &str, key: &str) -> [(u16, String); 2] {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let resource = format!("/{b}/{key}");
    let signature = sign_v2(&format!("PUT\n\ntext/plain\n{date}\n{resource}"));
    let headers = vec![
        ("date".to_owned(), date),
        ("content-type".to_owned(), "text/plain".to_owned()),
        (
            "authorization".to_owned(),
            format!("AWS {CLIENT_AK}:{signature}"),
        ),
    ];
    let url = format!("{}{resource}", h.endpoint());
    let (put, _, put_body) = raw::send("PUT", &url, &headers, b"v2 body".to_vec()).await;

    let url = format!("{url}?{}", v2_query(&resource));
    let (get, _, get_body) = raw::send("GET", &url, &[], Vec::new()).await;
    [(put, put_body), (get, get_body)]
}

/// The query of a SigV2 presigned GET of `resource`, valid for five minutes.
fn v2_query(resource: &str) -> String {
    let expires = (SystemTime::now() + Duration::from_secs(300))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature = sign_v2(&format!("GET\n\n\n{expires}\n{resource}"));
    let signature =
        percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC);
    format!("AWSAccessKeyId={CLIENT_AK}&Expires={expires}&Signature={signature}")
}

/// With `sigv2 = false`, both forms are refused as S3 refuses them where it takes SigV4 only,
/// and nothing is written; with the default, the same requests work.
async fn the_switch_refuses_sigv2(upstream: UpstreamInfo) {
    let b = support::bucket("sigv2-off");
    let on = Harness::start_with(upstream.clone(), |_| {}).await;
    on.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let [(put, put_body), (get, get_body)] = hand_signed(&on, &b, "on").await;
    assert_eq!(put, 200, "{put_body}");
    assert_eq!((get, get_body.as_str()), (200, "v2 body"));
    // Virtual-hosted style: the bucket, only in the Host header, is the resource's first
    // segment.
    let host = format!("{b}.s3.localhost:{}", on.proxy.addr.port());
    let url = format!("{}/on?{}", on.endpoint(), v2_query(&format!("/{b}/on")));
    let (status, _, body) = raw::send("GET", &url, &[("host".into(), host)], Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "v2 body"));

    let off = Harness::start_with(upstream, |s| s.sigv2 = false).await;
    for (status, body) in hand_signed(&off, &b, "off").await {
        assert_eq!(
            (status, error_code(&body)),
            (400, "InvalidRequest"),
            "{body}"
        );
        assert!(body.contains("Please use AWS4-HMAC-SHA256."), "{body}");
    }
    let stored = off
        .direct()
        .head_object()
        .bucket(&b)
        .key("off")
        .send()
        .await;
    assert!(stored.is_err(), "a refused SigV2 PUT was stored");
}

mod boto3_and_aws_cli_sign_with_sigv2 {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        boto3_and_aws_cli_sign_with_sigv2(&Harness::s3s().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        boto3_and_aws_cli_sign_with_sigv2(&Harness::with_backend(backends::shared_rgw()).await)
            .await;
    }
}

mod the_switch_refuses_sigv2 {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        the_switch_refuses_sigv2(UpstreamInfo::of(backends::shared_moto())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        the_switch_refuses_sigv2(UpstreamInfo::of(backends::shared_rgw())).await;
    }
}
