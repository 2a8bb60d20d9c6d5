//! Per-bucket server-side encryption rules (docs/policy.md), proven against what the backend
//! really stored: Ceph RGW encrypts with SSE-C and SSE-KMS and ignores SSE-S3; moto echoes
//! SSE-S3/SSE-KMS and has the bucket default encryption API; s3s-fs ignores every SSE header.
//! Every object written through the proxy is read back directly from the backend.

use std::sync::{Mutex, OnceLock};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest, Md5};
use s3seal::policy::{KeySource, RawSseRule, SsePolicies, SseRule};
use zeroize::Zeroizing;

use crate::support::backends::{self, RGW_KMS_KEY_IDS};
use crate::support::tap::Tap;
use crate::support::{self, payload, raw, Harness};

/// The proxy's current SSE-C key, its previous one, and a key only a client knows.
const KEY_NEW: [u8; 32] = [0x42; 32];
const KEY_OLD: [u8; 32] = [0x17; 32];
const KEY_CLIENT: [u8; 32] = [0x99; 32];

fn b64(key: &[u8; 32]) -> String {
    B64.encode(key)
}

fn md5_b64(key: &[u8; 32]) -> String {
    B64.encode(Md5::digest(key))
}

/// A rule from its TOML text; `env = "NEW"` / `"OLD"` name the keys above.
fn rule(text: &str) -> SseRule {
    let raw: RawSseRule = toml::from_str(text).unwrap();
    raw.validate(|src| match src {
        KeySource::Env { env } if env == "NEW" => Ok(Zeroizing::new(b64(&KEY_NEW))),
        KeySource::Env { env } if env == "OLD" => Ok(Zeroizing::new(b64(&KEY_OLD))),
        other => Err(format!("no key {other:?}")),
    })
    .unwrap()
}

pub(crate) fn policies(rules: &[(&str, &str)]) -> SsePolicies {
    SsePolicies::new(rules.iter().map(|(p, r)| ((*p).to_owned(), rule(r)))).unwrap()
}

fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

/// The S3 error code and message of a failed call.
fn code_and_message<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> (String, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

async fn get_bytes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    sse_c: Option<&[u8; 32]>,
) -> Result<Vec<u8>, u16> {
    let mut req = s3.get_object().bucket(bucket).key(key);
    if let Some(k) = sse_c {
        req = req
            .sse_customer_algorithm("AES256")
            .sse_customer_key(b64(k))
            .sse_customer_key_md5(md5_b64(k));
    }
    match req.send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(status(&e)),
    }
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap();
}

/// CreateMultipartUpload, one UploadPart per element of `parts`, CompleteMultipartUpload.
async fn multipart_put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let up = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i32::try_from(i + 1).unwrap();
        let uploaded = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(uploaded.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

// === Log capture (warn mode and incidents are logged) ===

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends this process's log into [`LOG`] (once).
pub(crate) fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

pub(crate) fn log_lines_with(needle: &str) -> Vec<String> {
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

// === Ceph RGW: SSE-C and SSE-KMS are real ===

/// SSE-C with the proxy's key: unreadable directly without the key, readable with it, and
/// byte-exact through the proxy for single, range, HEAD, presigned and multipart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_sse_c_is_real_and_round_trips() {
    let rgw = backends::shared_rgw();
    let h = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "ssec-*",
            r#"rule = "sse-c"
key = { id = "2026", env = "NEW" }"#,
        )]),
    )
    .await;
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("ssec");
    s3.create_bucket().bucket(&b).send().await.unwrap();

    // Single PUT: the client sent no SSE header; the backend says SSE-C, the proxy hides the
    // fingerprint of its key.
    let data = payload(1024 * 1024 + 3, 1);
    let out = s3
        .put_object()
        .bucket(&b)
        .key("single")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(out.sse_customer_key_md5(), None);

    // Directly: no key → refused; a wrong key → refused; the proxy's key → the bytes.
    assert_eq!(get_bytes(&direct, &b, "single", None).await, Err(400));
    assert!(get_bytes(&direct, &b, "single", Some(&KEY_CLIENT))
        .await
        .is_err());
    assert!(
        get_bytes(&direct, &b, "single", Some(&KEY_NEW))
            .await
            .unwrap()
            == data
    );

    // Through the proxy: whole, range, HEAD.
    assert!(get_bytes(&s3, &b, "single", None).await.unwrap() == data);
    let range = s3
        .get_object()
        .bucket(&b)
        .key("single")
        .range("bytes=1000-70999")
        .send()
        .await
        .unwrap();
    assert_eq!(range.sse_customer_key_md5(), None);
    let got = range.body.collect().await.unwrap().into_bytes();
    assert!(got.as_ref() == &data[1000..71000], "range differs");
    let head = s3
        .head_object()
        .bucket(&b)
        .key("single")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(1024 * 1024 + 3));
    assert_eq!(head.sse_customer_algorithm(), Some("AES256"));

    // Presigned PUT and GET: the URL carries no key; the proxy adds it.
    let conf = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap();
    let text = "presigned and sealed \u{2713}\n".repeat(300);
    let headers = |r: &aws_sdk_s3::presigning::PresignedRequest| -> Vec<(String, String)> {
        r.headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let put_url = s3
        .put_object()
        .bucket(&b)
        .key("presigned")
        .presigned(conf.clone())
        .await
        .unwrap();
    let (code, _, _) = raw::send(
        put_url.method(),
        put_url.uri(),
        &headers(&put_url),
        text.clone().into_bytes(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(get_bytes(&direct, &b, "presigned", None).await, Err(400));
    let get_url = s3
        .get_object()
        .bucket(&b)
        .key("presigned")
        .presigned(conf)
        .await
        .unwrap();
    let (code, _, body) = raw::send(
        get_url.method(),
        get_url.uri(),
        &headers(&get_url),
        Vec::new(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body, text);

    // Multipart: every part and the completion carry the key; the object is SSE-C.
    let parts = [payload(5 * 1024 * 1024 + 7, 2), payload(1000, 3)];
    multipart_put(&s3, &b, "multi", &parts).await;
    assert!(get_bytes(&s3, &b, "multi", None).await.unwrap() == parts.concat());
    assert_eq!(get_bytes(&direct, &b, "multi", None).await, Err(400));
    assert!(
        get_bytes(&direct, &b, "multi", Some(&KEY_NEW))
            .await
            .unwrap()
            == parts.concat()
    );
    rgw.check_alive().unwrap();
}

/// SSE-KMS with RGW's testing key backend, and the three client-header modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_sse_kms_and_client_header_modes() {
    let rgw = backends::shared_rgw();
    let kms = |mode: &str| {
        format!(
            "rule = \"sse-kms\"\nkey_id = \"{}\"\nclient_headers = \"{mode}\"",
            RGW_KMS_KEY_IDS[0]
        )
    };
    let h = Harness::with_backend_policies(
        rgw,
        policies(&[
            ("kmsrej-*", &kms("reject")),
            ("kmsallow-*", &kms("allow")),
            ("kms-*", &kms("override")),
            (
                "sscrej-*",
                "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }\nclient_headers = \"reject\"",
            ),
        ]),
    )
    .await;
    let (s3, direct) = (h.sdk(), h.direct());

    // override: plain PUT → SSE-KMS with the rule's key; a client's own SSE-C key is
    // stripped, so the object is readable without it.
    let b = support::bucket("kms");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(300_000, 4);
    put(&s3, &b, "plain", &data).await;
    let head = direct
        .head_object()
        .bucket(&b)
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(RGW_KMS_KEY_IDS[0]));
    assert!(get_bytes(&s3, &b, "plain", None).await.unwrap() == data);
    s3.put_object()
        .bucket(&b)
        .key("client-c")
        .body(ByteStream::from(data.clone()))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&KEY_CLIENT))
        .sse_customer_key_md5(md5_b64(&KEY_CLIENT))
        .send()
        .await
        .unwrap();
    let head = direct
        .head_object()
        .bucket(&b)
        .key("client-c")
        .send()
        .await
        .unwrap();
    assert_eq!(head.ssekms_key_id(), Some(RGW_KMS_KEY_IDS[0]));
    assert!(get_bytes(&direct, &b, "client-c", None).await.unwrap() == data);
    let parts = [payload(5 * 1024 * 1024, 12), payload(10, 13)];
    multipart_put(&s3, &b, "multi", &parts).await;
    let head = direct
        .head_object()
        .bucket(&b)
        .key("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(head.ssekms_key_id(), Some(RGW_KMS_KEY_IDS[0]));
    assert!(get_bytes(&s3, &b, "multi", None).await.unwrap() == parts.concat());

    // reject: a different choice is refused with a 403 naming the rule; the rule's own
    // choice and no choice pass.
    let b = support::bucket("kmsrej");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let err = s3
        .put_object()
        .bucket(&b)
        .key("aes")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    let (code, message) = code_and_message(&err);
    assert_eq!(code, "AccessDenied");
    assert!(message.contains("sse-kms"), "{message}");
    assert!(
        message.contains("x-amz-server-side-encryption"),
        "{message}"
    );
    assert!(direct
        .head_object()
        .bucket(&b)
        .key("aes")
        .send()
        .await
        .is_err());
    s3.put_object()
        .bucket(&b)
        .key("same")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(RGW_KMS_KEY_IDS[0])
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    put(&s3, &b, "none", b"y").await;

    // allow: a stronger choice (the client's SSE-C key) and an equal one (another KMS key)
    // stand; a weaker one (SSE-S3) is corrected to the rule.
    let b = support::bucket("kmsallow");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let out = s3
        .put_object()
        .bucket(&b)
        .key("client-c")
        .body(ByteStream::from(data.clone()))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&KEY_CLIENT))
        .sse_customer_key_md5(md5_b64(&KEY_CLIENT))
        .send()
        .await
        .unwrap();
    // The client's own key: its fingerprint is echoed, as SDKs expect.
    assert_eq!(
        out.sse_customer_key_md5(),
        Some(md5_b64(&KEY_CLIENT).as_str())
    );
    assert_eq!(get_bytes(&direct, &b, "client-c", None).await, Err(400));
    assert!(
        get_bytes(&direct, &b, "client-c", Some(&KEY_CLIENT))
            .await
            .unwrap()
            == data
    );
    assert!(
        get_bytes(&s3, &b, "client-c", Some(&KEY_CLIENT))
            .await
            .unwrap()
            == data
    );
    s3.put_object()
        .bucket(&b)
        .key("kms2")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(RGW_KMS_KEY_IDS[1])
        .body(ByteStream::from_static(b"z"))
        .send()
        .await
        .unwrap();
    let head = direct
        .head_object()
        .bucket(&b)
        .key("kms2")
        .send()
        .await
        .unwrap();
    assert_eq!(head.ssekms_key_id(), Some(RGW_KMS_KEY_IDS[1]));
    s3.put_object()
        .bucket(&b)
        .key("weak")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"w"))
        .send()
        .await
        .unwrap();
    let head = direct
        .head_object()
        .bucket(&b)
        .key("weak")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(RGW_KMS_KEY_IDS[0]));

    // reject under sse-c: a client's own key is refused (on writes and reads alike), the
    // proxy's key stays the only one in use.
    let b = support::bucket("sscrej");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let err = s3
        .put_object()
        .bucket(&b)
        .key("own")
        .body(ByteStream::from_static(b"o"))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&KEY_CLIENT))
        .sse_customer_key_md5(md5_b64(&KEY_CLIENT))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    let (_, message) = code_and_message(&err);
    assert!(message.contains("sse-c"), "{message}");
    assert!(
        message.contains("x-amz-server-side-encryption-customer-algorithm"),
        "{message}"
    );
    put(&s3, &b, "proxy-key", &data).await;
    assert_eq!(
        get_bytes(&s3, &b, "proxy-key", Some(&KEY_CLIENT)).await,
        Err(403)
    );
    assert!(
        get_bytes(&direct, &b, "proxy-key", Some(&KEY_NEW))
            .await
            .unwrap()
            == data
    );
    rgw.check_alive().unwrap();
}

/// RGW ignores SSE-S3 and stores plaintext: under `enforce` the write is refused and nothing
/// remains (single and multipart); under `warn` the object stays and the proxy logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_ignoring_sse_s3_fails_closed() {
    capture_logs();
    let rgw = backends::shared_rgw();
    let h = Harness::with_backend_policies(
        rgw,
        policies(&[
            ("s3warn-*", "rule = \"sse-s3\"\non_unverified = \"warn\""),
            ("s3enf-*", "rule = \"sse-s3\""),
        ]),
    )
    .await;
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("s3enf");
    s3.create_bucket().bucket(&b).send().await.unwrap();

    let err = s3
        .put_object()
        .bucket(&b)
        .key("plain")
        .body(ByteStream::from(payload(10_000, 5)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 501);
    let (code, message) = code_and_message(&err);
    assert_eq!(code, "NotImplemented");
    assert!(message.contains("did not apply"), "{message}");
    assert!(message.contains("has been removed"), "{message}");
    let gone = direct
        .head_object()
        .bucket(&b)
        .key("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&gone), 404);
    assert!(!log_lines_with(&b).is_empty(), "the incident is logged");

    let err = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("multi")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 501);
    let (_, message) = code_and_message(&err);
    assert!(message.contains("has been removed"), "{message}");
    let uploads = direct
        .list_multipart_uploads()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    let listed = direct.list_objects_v2().bucket(&b).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));

    let b = support::bucket("s3warn");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(10_000, 6);
    put(&s3, &b, "kept", &data).await;
    assert!(get_bytes(&direct, &b, "kept", None).await.unwrap() == data);
    let logged = log_lines_with(&b);
    assert!(
        logged
            .iter()
            .any(|l| l.contains("WARN") && l.contains("on_unverified = warn")),
        "{logged:?}"
    );
    rgw.check_alive().unwrap();
}

/// Key rotation: objects written under the old key stay readable through the proxy (it
/// retries with the old key); new writes use the new key; reading and writing back through
/// the proxy re-encrypts an object under the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_rotated_sse_c_keys() {
    capture_logs();
    let rgw = backends::shared_rgw();
    let before = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "rot-*",
            "rule = \"sse-c\"\nkey = { id = \"2025\", env = \"OLD\" }",
        )]),
    )
    .await;
    let after = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "rot-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }\nold_keys = [{ id = \"2025\", env = \"OLD\" }]",
        )]),
    )
    .await;
    let without_old = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "rot-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
        )]),
    )
    .await;
    let direct = after.direct();
    let b = support::bucket("rot");
    before
        .sdk()
        .create_bucket()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    let old_data = payload(200_000, 7);
    put(&before.sdk(), &b, "old", &old_data).await;

    let s3 = after.sdk();
    assert!(get_bytes(&s3, &b, "old", None).await.unwrap() == old_data);
    let head = s3.head_object().bucket(&b).key("old").send().await.unwrap();
    assert_eq!(head.content_length(), Some(200_000));
    assert_eq!(head.sse_customer_key_md5(), None);
    let range = s3
        .get_object()
        .bucket(&b)
        .key("old")
        .range("bytes=5-9")
        .send()
        .await
        .unwrap();
    let got = range.body.collect().await.unwrap().into_bytes();
    assert!(got.as_ref() == &old_data[5..10]);
    assert!(log_lines_with(&b)
        .iter()
        .any(|l| l.contains("old SSE-C key") && l.contains("2025")));
    // Without the old key configured the object is unreadable; a missing key is still 404.
    assert_eq!(
        get_bytes(&without_old.sdk(), &b, "old", None).await,
        Err(400)
    );
    assert_eq!(get_bytes(&s3, &b, "missing", None).await, Err(404));

    let new_data = payload(1000, 8);
    put(&s3, &b, "new", &new_data).await;
    assert!(get_bytes(&direct, &b, "new", Some(&KEY_NEW)).await.unwrap() == new_data);
    assert!(get_bytes(&direct, &b, "new", Some(&KEY_OLD)).await.is_err());

    // Re-encryption, the way that works on every backend: read and write back through the
    // proxy (docs/policy.md, "Key rotation").
    let data = get_bytes(&s3, &b, "old", None).await.unwrap();
    put(&s3, &b, "old", &data).await;
    assert!(get_bytes(&direct, &b, "old", Some(&KEY_NEW)).await.unwrap() == old_data);
    assert!(get_bytes(&direct, &b, "old", Some(&KEY_OLD)).await.is_err());
    assert!(
        get_bytes(&without_old.sdk(), &b, "old", None)
            .await
            .unwrap()
            == old_data
    );
    // The audit log names each key the backend used by its MD5, as S3 reports it: the old
    // key decrypted `old`, the new key encrypted `new`.
    let audited = |op: &str, object: &str, key: &[u8; 32]| {
        log_lines_with(&md5_b64(key)).iter().any(|l| {
            l.contains("key use")
                && l.contains(&format!("operation=\"{op}\""))
                && l.contains(&format!("bucket=\"{b}\""))
                && l.contains(&format!("object=\"{object}\""))
        })
    };
    assert!(
        audited("sse_decrypt", "old", &KEY_OLD),
        "{:?}",
        log_lines_with("key use")
    );
    assert!(
        audited("sse_encrypt", "new", &KEY_NEW),
        "{:?}",
        log_lines_with("key use")
    );
    // The log names key ids, never key material.
    for key in [&KEY_NEW, &KEY_OLD] {
        assert!(log_lines_with(&b64(key)).is_empty());
    }
    rgw.check_alive().unwrap();
}

// === s3s-fs: ignores every SSE header ===

/// Both an SSE-S3 and an SSE-C rule fail closed in front of a backend that ignores SSE:
/// the client gets 501 and the backend keeps nothing (objects and uploads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_ignoring_sse_fails_closed() {
    let h = Harness::s3s_with_policies(policies(&[
        ("enf-*", "rule = \"sse-s3\""),
        (
            "cenf-*",
            "rule = \"sse-c\"\nkey = { id = \"k\", env = \"NEW\" }",
        ),
    ]))
    .await;
    let (s3, direct) = (h.sdk(), h.direct());
    for prefix in ["enf", "cenf"] {
        let b = support::bucket(prefix);
        s3.create_bucket().bucket(&b).send().await.unwrap();
        let err = s3
            .put_object()
            .bucket(&b)
            .key("obj")
            .body(ByteStream::from(payload(5000, 9)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 501, "{prefix}");
        let (_, message) = code_and_message(&err);
        assert!(message.contains("has been removed"), "{prefix}: {message}");
        let gone = direct
            .head_object()
            .bucket(&b)
            .key("obj")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&gone), 404, "{prefix}");

        let err = s3
            .create_multipart_upload()
            .bucket(&b)
            .key("multi")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), 501, "{prefix}");
        let (_, message) = code_and_message(&err);
        assert!(message.contains("has been removed"), "{prefix}: {message}");
        let listed = direct.list_objects_v2().bucket(&b).send().await.unwrap();
        assert_eq!(listed.key_count(), Some(0), "{prefix}");
    }
}

// === moto: echoes SSE-S3, has the bucket default encryption API ===

/// SSE-S3 through the proxy, copies (the destination gets the rule too), presigned PUT, and
/// the bucket default encryption calls passing through untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sse_s3_copy_and_bucket_encryption() {
    let moto = backends::shared_moto();
    let h = Harness::with_backend_policies(moto, policies(&[("mo-*", "rule = \"sse-s3\"")])).await;
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("mo");
    s3.create_bucket().bucket(&b).send().await.unwrap();

    let data = payload(70_000, 10);
    let out = s3
        .put_object()
        .bucket(&b)
        .key("src")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    let head = direct
        .head_object()
        .bucket(&b)
        .key("src")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );

    let copied = s3
        .copy_object()
        .bucket(&b)
        .key("dst")
        .copy_source(format!("{b}/src"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        copied.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    let head = direct
        .head_object()
        .bucket(&b)
        .key("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert!(get_bytes(&s3, &b, "dst", None).await.unwrap() == data);

    let conf = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap();
    let put_url = s3
        .put_object()
        .bucket(&b)
        .key("presigned")
        .presigned(conf)
        .await
        .unwrap();
    let hdrs: Vec<(String, String)> = put_url
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (code, _, _) = raw::send(
        put_url.method(),
        put_url.uri(),
        &hdrs,
        b"presigned".to_vec(),
    )
    .await;
    assert_eq!(code, 200);
    let head = direct
        .head_object()
        .bucket(&b)
        .key("presigned")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );

    // PutBucketEncryption / GetBucketEncryption pass through; an explicit header (the
    // proxy's rule) wins over the bucket default for new objects, as in S3.
    let default_kms = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::AwsKms)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
        .unwrap();
    s3.put_bucket_encryption()
        .bucket(&b)
        .server_side_encryption_configuration(default_kms)
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_encryption().bucket(&b).send().await.unwrap();
    let algo = got
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().clone());
    assert_eq!(algo, Some(ServerSideEncryption::AwsKms));
    put(&s3, &b, "after-default", b"d").await;
    let head = direct
        .head_object()
        .bucket(&b)
        .key("after-default")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    moto.check_alive().unwrap();
}

/// Copies on RGW between an `sse-c` bucket and one without a rule. RGW drops the SSE headers
/// of a copy's destination and stores it plaintext: the proxy removes that copy and makes it
/// itself, encrypted. Out of an SSE-C object RGW 16 answers 501 to any copy: the proxy reads
/// it with the key and writes the plaintext into the bucket without a rule, as S3 would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_copies_into_and_out_of_sse_c() {
    let rgw = backends::shared_rgw();
    let h = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "cpc-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
        )]),
    )
    .await;
    let (s3, direct) = (h.sdk(), h.direct());
    let plain = support::bucket("cpplain");
    let sealed = support::bucket("cpc");
    for b in [&plain, &sealed] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let data = payload(20_000, 11);
    put(&s3, &plain, "src", &data).await;

    let out = s3
        .copy_object()
        .bucket(&sealed)
        .key("dst")
        .copy_source(format!("{plain}/src"))
        .send()
        .await
        .unwrap();
    assert!(out.copy_object_result().and_then(|r| r.e_tag()).is_some());
    assert_eq!(get_bytes(&direct, &sealed, "dst", None).await, Err(400));
    assert!(get_bytes(&s3, &sealed, "dst", None).await.unwrap() == data);

    // Out of an SSE-C object: RGW 16 refuses to copy any encrypted source (docs/policy.md).
    put(&s3, &sealed, "enc", &data).await;
    s3.copy_object()
        .bucket(&plain)
        .key("out")
        .copy_source(format!("{sealed}/enc"))
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&direct, &plain, "out", None).await.unwrap() == data);
    rgw.check_alive().unwrap();
}

/// The three client-header modes under an `sse-s3` rule, read back from moto's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sse_s3_client_header_modes() {
    let moto = backends::shared_moto();
    let h = Harness::with_backend_policies(
        moto,
        policies(&[
            ("mover-*", "rule = \"sse-s3\""),
            ("moallow-*", "rule = \"sse-s3\"\nclient_headers = \"allow\""),
            ("morej-*", "rule = \"sse-s3\"\nclient_headers = \"reject\""),
        ]),
    )
    .await;
    let (s3, direct) = (h.sdk(), h.direct());
    let kms_put = |bucket: &str| {
        s3.put_object()
            .bucket(bucket)
            .key("kms")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id("client-key")
            .body(ByteStream::from_static(b"k"))
    };

    // override: the client's aws:kms is replaced by AES256.
    let b = support::bucket("mover");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    kms_put(&b).send().await.unwrap();
    let head = direct
        .head_object()
        .bucket(&b)
        .key("kms")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(head.ssekms_key_id(), None);

    // allow: aws:kms is stronger than sse-s3, so it stands.
    let b = support::bucket("moallow");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    kms_put(&b).send().await.unwrap();
    let head = direct
        .head_object()
        .bucket(&b)
        .key("kms")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );

    // reject: refused with the rule named; AES256 or nothing pass.
    let b = support::bucket("morej");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let err = kms_put(&b).send().await.unwrap_err();
    assert_eq!(status(&err), 403);
    let (code, message) = code_and_message(&err);
    assert_eq!(code, "AccessDenied");
    assert!(message.contains("sse-s3"), "{message}");
    assert!(direct
        .head_object()
        .bucket(&b)
        .key("kms")
        .send()
        .await
        .is_err());
    s3.put_object()
        .bucket(&b)
        .key("aes")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"a"))
        .send()
        .await
        .unwrap();
    put(&s3, &b, "plain", b"p").await;
    let head = direct
        .head_object()
        .bucket(&b)
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    moto.check_alive().unwrap();
}

/// The config `s3seal reencrypt` runs with: `backend` as the one upstream, `rule` as the
/// `[bucket.sse]` of `reenc-*` buckets, keys from [`reencrypt_env`].
fn reencrypt_config(backend: &backends::Backend, rule: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server-key.pem"
[[upstream]]
name = "backend"
endpoint = "{}"
access_key_id = "{}"
secret_access_key = "{}"
allow_plaintext = true
[[client]]
access_key_id = "UNUSED"
secret_access_key = "unused"
upstream = "backend"
[[bucket]]
pattern = "reenc-*"
[bucket.sse]
{rule}
"#,
        backend.endpoint, backend.access_key, backend.secret_key
    )
}

/// The SSE-C keys [`reencrypt_config`] names: `NEW` (the current one) and `OLD`.
fn reencrypt_env() -> std::collections::HashMap<String, String> {
    [
        ("NEW".to_owned(), b64(&KEY_NEW)),
        ("OLD".to_owned(), b64(&KEY_OLD)),
    ]
    .into()
}

/// `s3seal reencrypt` (its library entry point): finds the objects still under an old key,
/// rewrites them under the current key with their metadata, and leaves the others alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_reencrypt_command() {
    let rgw = backends::shared_rgw();
    let old_rule = "rule = \"sse-c\"\nkey = { id = \"2025\", env = \"OLD\" }";
    let new_rule = "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }\nold_keys = [{ id = \"2025\", env = \"OLD\" }]";
    let before = Harness::with_backend_policies(rgw, policies(&[("reenc-*", old_rule)])).await;
    let after = Harness::with_backend_policies(rgw, policies(&[("reenc-*", new_rule)])).await;
    let b = support::bucket("reenc");
    before
        .sdk()
        .create_bucket()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    let data = payload(300_000, 16);
    before
        .sdk()
        .put_object()
        .bucket(&b)
        .key("a & b")
        .content_type("application/x-test")
        .metadata("color", "blue")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    put(&before.sdk(), &b, "dir/old", b"old").await;
    put(&after.sdk(), &b, "dir/new", b"new").await;

    let config = || {
        let text = reencrypt_config(rgw, new_rule);
        s3seal::config::Config::from_toml(&text, std::path::Path::new("."), &reencrypt_env())
            .unwrap()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let dry = s3seal::reencrypt::run(
        config(),
        &b,
        None,
        &s3seal::bulk::Options {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dry_keys = sorted(dry.reencrypted.iter().map(|(k, _)| k.clone()).collect());
    assert_eq!(dry_keys, ["a & b", "dir/old"]);
    assert!(dry.reencrypted.iter().all(|(_, id)| id == "2025"));
    assert_eq!(dry.current, ["dir/new"]);
    assert!(get_bytes(&after.direct(), &b, "dir/old", Some(&KEY_OLD))
        .await
        .is_ok());

    let done = s3seal::reencrypt::run(
        config(),
        &b,
        None,
        &s3seal::bulk::Options {
            dry_run: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(done.reencrypted.len(), 2, "{done:?}");
    assert!(done.failed.is_empty(), "{done:?}");
    let direct = after.direct();
    assert!(
        get_bytes(&direct, &b, "a & b", Some(&KEY_NEW))
            .await
            .unwrap()
            == data
    );
    assert!(get_bytes(&direct, &b, "a & b", Some(&KEY_OLD))
        .await
        .is_err());
    assert_eq!(
        get_bytes(&direct, &b, "dir/old", Some(&KEY_NEW))
            .await
            .unwrap(),
        b"old"
    );
    let head = after
        .sdk()
        .head_object()
        .bucket(&b)
        .key("a & b")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );

    let again = s3seal::reencrypt::run(
        config(),
        &b,
        None,
        &s3seal::bulk::Options {
            prefix: "dir/".into(),
            dry_run: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        again.reencrypted.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(sorted(again.current), ["dir/new", "dir/old"]);
    rgw.check_alive().unwrap();
}

/// On a backend that ignores SSE-C (moto), an object stored without encryption answers a
/// HEAD carrying the current key: `reencrypt` must count it as a failure, not as "already
/// under the current key".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_reencrypt_does_not_take_an_unencrypted_object_for_a_current_one() {
    let moto = backends::shared_moto();
    let rule = "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }\nold_keys = [{ id = \"2025\", env = \"OLD\" }]";
    let h = Harness::with_backend_policies(moto, policies(&[("reenc-*", rule)])).await;
    let b = support::bucket("reenc");
    let direct = h.direct();
    direct.create_bucket().bucket(&b).send().await.unwrap();
    put(&direct, &b, "plain", b"stored without SSE-C").await;
    let text = reencrypt_config(moto, rule);
    let env = reencrypt_env();
    let config = s3seal::config::Config::from_toml(&text, std::path::Path::new("."), &env).unwrap();
    let report = s3seal::reencrypt::run(
        config,
        &b,
        None,
        &s3seal::bulk::Options {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(report.current.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("does not confirm"),
        "{report:?}"
    );

    // The command: a JSON summary naming the failure, a progress line on stderr, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3seal.toml");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .args([
            "reencrypt",
            "--json",
            "--concurrency",
            "4",
            "--bucket",
            &b,
            "--config",
        ])
        .arg(&path)
        .envs(&env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["command"], "reencrypt");
    assert_eq!(summary["current"], 0);
    assert_eq!(summary["failed"][0]["key"], "plain", "{summary}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reencrypt: 1 objects, ") && stderr.contains(" 1 failed, "),
        "{stderr}"
    );
    assert!(stderr.contains("1 objects failed: plain"), "{stderr}");
}

// === Upstream refusals of requests that carried a key ===

/// A backend that refuses every request the way AWS refuses a signature it cannot verify:
/// 403 `SignatureDoesNotMatch` with the canonical request in the document, every signed
/// header value included (what AWS writes for S3).
/// Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html>
async fn echoing_backend() -> std::net::SocketAddr {
    use std::fmt::Write as _;

    use http_body_util::BodyExt as _;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let _ = body.collect().await;
                    let mut canonical = format!("{}\n{}\n\n", parts.method, parts.uri.path());
                    for (name, value) in &parts.headers {
                        let _ = writeln!(
                            canonical,
                            "{name}:{}",
                            String::from_utf8_lossy(value.as_bytes())
                        );
                    }
                    let doc = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><CanonicalRequest>{canonical}</CanonicalRequest><CanonicalRequestBytes>{}</CanonicalRequestBytes><RequestId>ECHO1</RequestId></Error>",
                        hex::encode(canonical.as_bytes())
                    );
                    let resp = http::Response::builder()
                        .status(403)
                        .header("content-type", "application/xml")
                        .header("x-amz-request-id", "ECHO1")
                        .body(http_body_util::Full::new(bytes::Bytes::from(doc)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// The status, S3 code and raw document of a refused call.
fn refusal<E, T>(
    result: Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (u16, String, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    T: std::fmt::Debug,
{
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    let e = result.expect_err("the backend refuses everything");
    let doc = e
        .raw_response()
        .and_then(|r| r.body().bytes())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    (status(&e), e.code().unwrap_or_default().to_owned(), doc)
}

/// The proxy's SSE-C key (an `sse-c` rule), or a client's own (a bucket without a rule), must
/// not come back in a backend's error document: the client gets the backend's status and
/// code in the proxy's own document instead. A request that carried no key gets the
/// backend's document as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusal_does_not_echo_an_sse_c_key() {
    let backend = echoing_backend().await;
    let upstream = support::UpstreamInfo {
        endpoint: format!("http://{backend}"),
        access_key: "echo".into(),
        secret_key: "echo-secret".into(),
        region: support::REGION.into(),
        checksum_trailers: s3seal::config::TrailerMode::Forward,
        ca_bundle: None,
    };
    let sse = policies(&[(
        "sealed-*",
        "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
    )]);
    let h = Harness::start_with_policies(upstream, s3seal::cors::BucketRules::none(), sse, |_| {})
        .await;
    let s3 = h.sdk();
    let proxy_key = [b64(&KEY_NEW), hex::encode(KEY_NEW)];
    let client_key = [b64(&KEY_CLIENT), hex::encode(KEY_CLIENT)];

    // The rule's key, on a write and on a read.
    let put = s3
        .put_object()
        .bucket("sealed-1")
        .key("k")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await;
    let get = s3.get_object().bucket("sealed-1").key("k").send().await;
    for (status, code, doc) in [refusal(put), refusal(get)] {
        assert_eq!(
            (status, code.as_str()),
            (403, "SignatureDoesNotMatch"),
            "{doc}"
        );
        for secret in &proxy_key {
            assert!(!doc.contains(secret.as_str()), "the proxy's key in {doc}");
        }
        assert!(!doc.contains("CanonicalRequest"), "{doc}");
    }

    // A client's own key, through a bucket without a rule.
    let put = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64(&KEY_CLIENT))
        .sse_customer_key_md5(md5_b64(&KEY_CLIENT))
        .body(ByteStream::from_static(b"data"))
        .send()
        .await;
    let (status, code, doc) = refusal(put);
    assert_eq!(
        (status, code.as_str()),
        (403, "SignatureDoesNotMatch"),
        "{doc}"
    );
    for secret in &client_key {
        assert!(!doc.contains(secret.as_str()), "the client's key in {doc}");
    }

    // No key on the request: the backend's document passes as it is.
    let get = s3.get_object().bucket("plain").key("k").send().await;
    let (status, code, doc) = refusal(get);
    assert_eq!(
        (status, code.as_str()),
        (403, "SignatureDoesNotMatch"),
        "{doc}"
    );
    assert!(doc.contains("<CanonicalRequest>"), "{doc}");
}

// === Copies the backend cannot make (docs/policy.md, "Copies") ===

/// Runs `tests/e2e/clients/sse_copy.py` (boto3) through `h` on two fresh buckets named from
/// `prefix`, with `backend` as the direct view of what is stored.
async fn boto3_copy_suite(
    h: &Harness,
    backend: &backends::Backend,
    prefix: &str,
    rule: &str,
    order: &str,
) {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/sse_copy.py"))
        .arg(h.endpoint())
        .arg(support::bucket(prefix))
        .arg(support::bucket(prefix))
        .arg(rule)
        .arg(order);
    backends::client_env(&mut cmd, Some(&support::ca_pem()));
    cmd.env("AWS_ACCESS_KEY_ID", support::CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", support::CLIENT_SK)
        .env("AWS_DEFAULT_REGION", support::REGION)
        .env("DIRECT_ENDPOINT", &backend.endpoint)
        .env("DIRECT_ACCESS_KEY_ID", &backend.access_key)
        .env("DIRECT_SECRET_ACCESS_KEY", &backend.secret_key)
        .env("KMS_KEY_ID", RGW_KMS_KEY_IDS[0]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sse copy suite passed"),
        "stdout:\n{stdout}\nstderr:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        backend.check_alive().err().unwrap_or_default()
    );
}

/// RGW 16 answers 501 to a CopyObject of an SSE-C object: the proxy copies through itself
/// (the first CopyObject finds out, the rest go straight through), and an UploadPartCopy,
/// which RGW answers without echoing the SSE-C headers, is an UploadPart of the source.
/// Every copy is unreadable at RGW without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_sse_c_copies_through_the_proxy() {
    let rgw = backends::shared_rgw();
    let h = Harness::with_backend_policies(
        rgw,
        policies(&[(
            "cpyc-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
        )]),
    )
    .await;
    boto3_copy_suite(&h, rgw, "cpyc", "sse-c", "objects-first").await;
    rgw.check_alive().unwrap();
}

/// SSE-KMS on RGW: its UploadPartCopy answer does not prove the KMS key, so the first part
/// is made again by the proxy (same part number), and CopyObject of an SSE-KMS object (501
/// at RGW) goes through the proxy from then on. RGW reports every copy as aws:kms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_sse_kms_copies_through_the_proxy() {
    let rgw = backends::shared_rgw();
    let rule = format!("rule = \"sse-kms\"\nkey_id = \"{}\"", RGW_KMS_KEY_IDS[0]);
    let h = Harness::with_backend_policies(rgw, policies(&[("cpyk-*", &rule)])).await;
    boto3_copy_suite(&h, rgw, "cpyk", "sse-kms", "parts-first").await;
    rgw.check_alive().unwrap();
}

/// moto makes these copies itself and echoes SSE-KMS: the same client scenarios pass with
/// the backend's own copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sse_kms_copies() {
    let moto = backends::shared_moto();
    let rule = format!("rule = \"sse-kms\"\nkey_id = \"{}\"", RGW_KMS_KEY_IDS[0]);
    let h = Harness::with_backend_policies(moto, policies(&[("mcpk-*", &rule)])).await;
    boto3_copy_suite(&h, moto, "mcpk", "sse-kms", "objects-first").await;
    moto.check_alive().unwrap();
}

/// moto ignores SSE-C (it echoes nothing and enforces nothing), so the rule runs with
/// `on_unverified = "warn"`: the copies are moto's own and the bytes must still be right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sse_c_copies() {
    let moto = backends::shared_moto();
    let h = Harness::with_backend_policies(
        moto,
        policies(&[(
            "mcpc-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }\non_unverified = \"warn\"",
        )]),
    )
    .await;
    boto3_copy_suite(&h, moto, "mcpc", "none", "parts-first").await;
    moto.check_alive().unwrap();
}

/// The first copy finds out that RGW cannot make it (501) and the proxy makes it; the upstream
/// remembers, so the next copy is not offered to RGW at all: one request with
/// `x-amz-copy-source` reaches it, for two copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_remembers_that_it_cannot_copy() {
    let rgw = backends::shared_rgw();
    let upstream = support::UpstreamInfo::of(rgw);
    let tap = Tap::start(&upstream.endpoint).await;
    let mut via_tap = upstream.clone();
    via_tap.endpoint.clone_from(&tap.endpoint);
    let h = Harness::start_with_policies(
        via_tap,
        s3seal::cors::BucketRules::none(),
        policies(&[(
            "cpym-*",
            "rule = \"sse-c\"\nkey = { id = \"2026\", env = \"NEW\" }",
        )]),
        |_| {},
    )
    .await;
    let s3 = h.sdk();
    let b = support::bucket("cpym");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(100_000, 12);
    put(&s3, &b, "src", &data).await;
    for key in ["one", "two"] {
        s3.copy_object()
            .bucket(&b)
            .key(key)
            .copy_source(format!("{b}/src"))
            .send()
            .await
            .unwrap();
        assert!(get_bytes(&s3, &b, key, None).await.unwrap() == data);
    }
    assert_eq!(tap.requests_with("x-amz-copy-source").await, 1);
    rgw.check_alive().unwrap();
}
