//! Browser form uploads (`PostObject`): a form with a POST policy signed by a client key
//! becomes a `PutObject` under the upstream's credentials (docs/config.md, "Browser form
//! uploads"). `requests` with boto3's `generate_presigned_post` policies covers successes and
//! each refusal on two backends; the form in the fast tier is signed here.

use std::process::Command;
use std::time::SystemTime;

use base64::Engine as _;
use s3seal::auth::sigv4::{format_amz_date, SigningKey};

use crate::clients::run;
use crate::cse::rules;
use crate::sse::policies;
use crate::support::raw::{error_code, send};
use crate::support::{self, backends, payload, Harness, CLIENT_AK, CLIENT_SK, REGION};

const BOUNDARY: &str = "s3sealFormBoundary";

/// The fields of a form signed with the test client's key: the signature's, then `fields`
/// (the key among them); the policy names the bucket, the signature's fields and `conditions`
/// (JSON, each after a comma).
pub(crate) fn signed_fields(
    bucket: &str,
    fields: &[(&str, &str)],
    conditions: &str,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(SystemTime::now());
    let date = &amz_date[..8];
    let credential = format!("{CLIENT_AK}/{date}/{REGION}/s3/aws4_request");
    let policy = format!(
        r#"{{"expiration": "2099-01-01T00:00:00Z", "conditions": [{{"bucket": "{bucket}"}}, {{"x-amz-algorithm": "AWS4-HMAC-SHA256"}}, {{"x-amz-credential": "{credential}"}}, {{"x-amz-date": "{amz_date}"}}{conditions}]}}"#
    );
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let signature = SigningKey::derive(CLIENT_SK, date, REGION).sign(policy.as_bytes());
    let mut all = vec![
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date.clone()),
        ("policy".to_owned(), policy),
        ("x-amz-signature".to_owned(), hex::encode(signature)),
    ];
    all.extend(
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    all
}

/// A signed form's body (see [`signed_fields`]) with `file` last.
fn form(bucket: &str, fields: &[(&str, &str)], conditions: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in signed_fields(bucket, fields, conditions) {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post(h: &Harness, bucket: &str, body: Vec<u8>) -> (u16, http::HeaderMap, String) {
    let headers = [
        (
            "content-type".to_owned(),
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ),
        ("origin".to_owned(), "https://app.test".to_owned()),
    ];
    send(
        "POST",
        &format!("{}/{bucket}", h.endpoint()),
        &headers,
        body,
    )
    .await
}

async fn object(h: &Harness, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let got = h
        .sdk()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(got.body.collect().await.unwrap().into_bytes().to_vec())
}

/// A signed form stores its file (large enough to stream in many frames) as the object; a
/// file outside `content-length-range` and a tampered form store nothing. In-process only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_upload_streams_the_file_and_refusals_store_nothing() {
    let h = Harness::s3s().await;
    let b = support::bucket("post");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(9 * 1024 * 1024 + 7, 3);
    let body = form(
        &b,
        &[("key", "big/${filename}")],
        r#", ["starts-with", "$key", "big/"]"#,
        &data,
    );
    let (status, headers, text) = post(&h, &b, body).await;
    assert_eq!(status, 204, "{text}");
    assert!(headers.contains_key("etag"));
    assert!(object(&h, &b, "big/a.bin").await == Some(data));

    let ranged = r#", ["starts-with", "$key", ""], ["content-length-range", 1, 1000]"#;
    let (status, _, text) = post(&h, &b, form(&b, &[("key", "r")], ranged, &[7; 1001])).await;
    assert_eq!(
        (status, error_code(&text)),
        (400, "EntityTooLarge"),
        "{text}"
    );
    let (status, _, text) = post(&h, &b, form(&b, &[("key", "r")], ranged, b"")).await;
    assert_eq!(
        (status, error_code(&text)),
        (400, "EntityTooSmall"),
        "{text}"
    );
    assert_eq!(object(&h, &b, "r").await, None);

    // Bytes after the closing delimiter: the held-back end of the file never goes upstream.
    let mut trailing = form(
        &b,
        &[("key", "t")],
        r#", ["starts-with", "$key", ""]"#,
        &vec![1; 100_000],
    );
    trailing.extend_from_slice(b"junk");
    let (status, _, text) = post(&h, &b, trailing).await;
    assert_eq!(
        (status, error_code(&text)),
        (400, "MalformedPOSTRequest"),
        "{text}"
    );
    assert_eq!(object(&h, &b, "t").await, None);

    // The proxy's namespace is refused here as in a path.
    let (status, _, text) = post(
        &h,
        &b,
        form(
            &b,
            &[("key", ".s3seal/x")],
            r#", ["starts-with", "$key", ""]"#,
            b"x",
        ),
    )
    .await;
    assert_eq!((status, error_code(&text)), (403, "AccessDenied"), "{text}");
}

/// On a bucket with client-side encryption, a form's file is stored sealed like any PUT's and
/// read back as the plaintext.
async fn encrypted(h: &Harness) {
    let b = format!("cse-{}", support::bucket("post"));
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(300_000, 9);
    let body = form(
        &b,
        &[("key", "sealed.bin")],
        r#", {"key": "sealed.bin"}"#,
        &data,
    );
    let (status, _, text) = post(h, &b, body).await;
    assert_eq!(status, 204, "{text}");
    assert!(object(h, &b, "sealed.bin").await == Some(data.clone()));
    let stored = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("sealed.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_ne!(stored.len(), data.len(), "stored as sent");
    assert!(
        !stored.windows(64).any(|w| w == &data[1000..1064]),
        "plaintext at rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_form_upload_s3s_fs() {
    encrypted(&Harness::s3s_rules(rules()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_form_upload_rgw() {
    encrypted(&Harness::with_backend_rules(backends::shared_rgw(), rules()).await).await;
}

/// The `requests` suite (`tests/e2e/clients/post_form.py`).
async fn requests_suite(h: &Harness) {
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/post_form.py"))
        .arg(h.endpoint())
        .arg(support::bucket("form"))
        .arg("suite");
    let out = run(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("post suite passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_uploads_boto3_s3s_fs() {
    requests_suite(&Harness::s3s().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_uploads_boto3_rgw() {
    requests_suite(&Harness::with_backend(backends::shared_rgw()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_uploads_boto3_moto() {
    requests_suite(&Harness::with_backend(backends::shared_moto()).await).await;
}

/// A form's file reaches an encrypted bucket through `requests` too (a real client's framing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_form_upload_boto3_s3s_fs() {
    let h = Harness::s3s_rules(rules()).await;
    let b = format!("cse-{}", support::bucket("form"));
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = payload(1024 * 1024 + 3, 5);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/post_form.py"))
        .arg(h.endpoint())
        .arg(&b)
        .arg("store")
        .arg("k.bin")
        .arg(dir.path().join("f"));
    run(cmd).await;
    assert!(object(&h, &b, "k.bin").await == Some(data));
}

/// A bucket's SSE rule applies to a form's PutObject as to any PUT: injected (moto reports
/// SSE-S3 on the stored object) ...
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_rule_applies_to_form_uploads_moto() {
    let rules = policies(&[("mo-*", "rule = \"sse-s3\"")]);
    let h = Harness::with_backend_policies(backends::shared_moto(), rules).await;
    let b = format!("mo-{}", support::bucket("post"));
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let body = form(&b, &[("key", "k")], r#", {"key": "k"}"#, b"under a rule");
    let (status, _, text) = post(&h, &b, body).await;
    assert_eq!(status, 204, "{text}");
    let head = h.direct().head_object().bucket(&b).key("k").send().await;
    assert_eq!(
        head.unwrap().server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
}

/// ... and under an SSE-C rule, RGW stores the form's file encrypted with the proxy's key:
/// unreadable without it, read back in plaintext through the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_rule_applies_to_form_uploads_rgw() {
    let rules = policies(&[(
        "ssec-*",
        "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
    )]);
    let h = Harness::with_backend_policies(backends::shared_rgw(), rules).await;
    let b = format!("ssec-{}", support::bucket("post"));
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(100_000, 4);
    let (status, _, text) = post(
        &h,
        &b,
        form(&b, &[("key", "k")], r#", {"key": "k"}"#, &data),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    assert!(h
        .direct()
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .is_err());
    assert!(object(&h, &b, "k").await == Some(data));
}
