//! Objects of the AWS S3 Encryption Client (`docs/format.md`, "S3 Encryption Client objects")
//! through the proxy: written by the real Python client and read through s3seal, written by
//! s3seal and read by the real client (moto and Ceph RGW, KMS from moto), and, in process,
//! objects built from the specification with a local key: tampering, size limits, ranges,
//! instruction files.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use s3seal::auth::SecretKey;
use s3seal::crypto::format::{DataKey, Kek, KeyId};
use s3seal::crypto::s3ec::{self, Record, Wrap};
use s3seal::cse::{EncryptionRules, Keyring, Rule, S3ecLarge, S3ecSettings, Unencrypted};
use s3seal::kms::{Kms, KmsSettings};

use crate::cse::md5_hex;
use crate::support::{self, backends, payload, Harness, UpstreamInfo};

const LOCAL_KEY: [u8; 32] = [7; 32];

fn settings(f: impl FnOnce(&mut S3ecSettings)) -> S3ecSettings {
    let mut s = S3ecSettings::default();
    f(&mut s);
    s
}

// === The real client (amazon-s3-encryption-client-python 4.0.0) ===

/// `s3ec-*` buckets read S3EC objects with the KMS key `key_id`; `s3ecw-*` ones also write them.
fn kms_rules(moto: &backends::Backend, key_id: &str) -> EncryptionRules {
    s3seal::tls::install_crypto_provider();
    let ring = || {
        let kms = Kms::new(
            KmsSettings {
                endpoint: moto.endpoint.parse().unwrap(),
                region: moto.region.clone(),
                key_id: key_id.to_owned(),
                old_key_ids: Vec::new(),
                access_key_id: moto.access_key.clone(),
                secret_access_key: SecretKey::new(moto.secret_key.clone()),
                cache_ttl: Duration::from_secs(300),
                cache_max_uses: 1000,
                required_for_readiness: true,
            },
            s3seal::tls::client_config(None).unwrap(),
        );
        Keyring::with_kms(kms, Vec::new()).unwrap()
    };
    let read = Rule::new(ring(), Unencrypted::PassThrough).with_s3ec(S3ecSettings::default());
    let write = Rule::new(ring(), Unencrypted::PassThrough).with_s3ec(settings(|s| s.write = true));
    EncryptionRules::new([
        ("s3ec-*".to_owned(), Some(read)),
        ("s3ecw-*".to_owned(), Some(write)),
    ])
    .unwrap()
}

/// Runs `tests/e2e/clients/s3ec_client.py` against `backend` directly; its output lines.
pub(crate) async fn python_client(
    backend: &backends::Backend,
    moto: &backends::Backend,
    key_id: &str,
    args: &[String],
) -> Vec<String> {
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/s3ec_client.py"))
        .args(args);
    backends::client_env(&mut cmd, None);
    cmd.env("DIRECT_ENDPOINT", &backend.endpoint)
        .env("DIRECT_ACCESS_KEY_ID", &backend.access_key)
        .env("DIRECT_SECRET_ACCESS_KEY", &backend.secret_key)
        .env("KMS_ENDPOINT", &moto.endpoint)
        .env("KMS_ACCESS_KEY_ID", &moto.access_key)
        .env("KMS_SECRET_ACCESS_KEY", &moto.secret_key)
        .env("KMS_KEY_ID", key_id);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("s3ec client done"),
        "stdout:\n{stdout}\nstderr:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        backend.check_alive().err().unwrap_or_default()
    );
    stdout.lines().map(str::to_owned).collect()
}

/// The Python client writes format 2 and 3 objects (one with an instruction file) straight to
/// the backend; s3seal reads them. s3seal writes format 3; the Python client reads them.
async fn real_client_both_ways(backend: &backends::Backend) {
    let moto = backends::shared_moto();
    let key_id = crate::kms::create_key(moto).await;
    let h = Harness::start_full(
        UpstreamInfo::of(backend),
        s3seal::cors::BucketRules::none(),
        s3seal::policy::SsePolicies::default(),
        kms_rules(moto, &key_id),
        |_| {},
    )
    .await;
    let s3 = h.sdk();

    // Written by the client, read through s3seal.
    let b = support::bucket("s3ec-py");
    let lines = python_client(backend, moto, &key_id, &["write".into(), b.clone()]).await;
    let written: Vec<(&str, i64, &str)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("wrote "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0], f[1].parse().unwrap(), f[2])
        })
        .collect();
    assert_eq!(written.len(), 5, "{lines:?}");
    for (key, size, md5) in &written {
        let got = s3.get_object().bucket(&b).key(*key).send().await;
        let got = got.unwrap_or_else(|e| panic!("{key}: {:?}", e.into_service_error()));
        assert_eq!(got.content_length(), Some(*size), "{key}");
        assert!(
            got.metadata().is_none_or(|m| !m.contains_key("x-amz-c")),
            "{key}: the S3EC record is shown"
        );
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&md5_hex(&body), md5, "{key}: wrong plaintext");
        let head = s3.head_object().bucket(&b).key(*key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(*size), "{key}: HEAD");
    }
    // Ranges are unauthenticated: refused unless the bucket opts in.
    let err = s3
        .get_object()
        .bucket(&b)
        .key("v3-small")
        .range("bytes=10-20")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidRequest"), "{err:?}");

    // Written by s3seal, read by the client.
    let w = support::bucket("s3ecw-py");
    s3.create_bucket().bucket(&w).send().await.unwrap();
    let mut expect = vec!["read".to_owned(), w.clone()];
    for (i, size) in [0usize, 1, 1000, 3 * 1024 * 1024 + 5]
        .into_iter()
        .enumerate()
    {
        let data = payload(size, i as u64 + 40);
        let key = format!("by-s3seal-{size}");
        s3.put_object()
            .bucket(&w)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        expect.push(format!("{key}={}", md5_hex(&data)));
        // And s3seal reads its own.
        let back = s3.get_object().bucket(&w).key(&key).send().await.unwrap();
        let back = back.body.collect().await.unwrap().into_bytes();
        assert!(back.as_ref() == data.as_slice(), "{key} read back differs");
    }
    let lines = python_client(backend, moto, &key_id, &expect).await;
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("read ")).count(),
        4,
        "{lines:?}"
    );
    // Multipart uploads cannot be one GCM message.
    let err = s3
        .create_multipart_upload()
        .bucket(&w)
        .key("mp")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("NotImplemented"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3ec_python_client_moto() {
    real_client_both_ways(backends::shared_moto()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3ec_python_client_rgw_with_moto_kms() {
    real_client_both_ways(backends::shared_rgw()).await;
}

// === In process, with a local key ===

fn local_rules() -> EncryptionRules {
    let ring = || {
        Keyring::new(
            Kek::new(KeyId::new("s3ec-local").unwrap(), &LOCAL_KEY),
            Vec::new(),
        )
        .unwrap()
    };
    let rule = |s: S3ecSettings| Some(Rule::new(ring(), Unencrypted::PassThrough).with_s3ec(s));
    EncryptionRules::new([
        (
            "ec-*".to_owned(),
            rule(settings(|s| s.max_verified_bytes = 4096)),
        ),
        (
            "ecstream-*".to_owned(),
            rule(settings(|s| {
                s.max_verified_bytes = 4096;
                s.large_objects = S3ecLarge::StreamWithAbort;
            })),
        ),
        (
            "ecrange-*".to_owned(),
            rule(settings(|s| s.ranged_reads = true)),
        ),
        ("ecwrite-*".to_owned(), rule(settings(|s| s.write = true))),
    ])
    .unwrap()
}

/// An S3EC version 3 object of `plain` under the local key, as the client stores it: its
/// metadata (without `x-amz-meta-`) and its stored bytes.
pub(crate) fn v3_object(plain: &[u8]) -> (HashMap<String, String>, Vec<u8>) {
    let kek = Kek::new(KeyId::new("any").unwrap(), &LOCAL_KEY);
    let dek = DataKey::generate();
    let blob = kek.wrap_with_aad(&dek, s3ec::SUITE_V3_TEXT.as_bytes());
    let (record, cipher) = Record::new_v3(
        &dek,
        Wrap::AesGcm,
        blob,
        BTreeMap::new(),
        s3ec::message_id(),
    );
    let mut h = http::HeaderMap::new();
    record.write_headers(&mut h).unwrap();
    let meta = h
        .iter()
        .map(|(k, v)| {
            let k = k.as_str().strip_prefix("x-amz-meta-").unwrap();
            (k.to_owned(), v.to_str().unwrap().to_owned())
        })
        .collect();
    let mut gcm = cipher.stream();
    let mut stored = plain.to_vec();
    gcm.encrypt(&mut stored);
    stored.extend_from_slice(&gcm.tag());
    (meta, stored)
}

/// An S3EC format 2 object of `plain` under the local key (`AES/GCM` wrap), as the Go and Java
/// clients store it with an instruction file: the file's JSON map (every mapkey; the
/// specification's "V1/V2 Instruction Files") and the stored bytes, whose own metadata holds
/// no mapkey.
pub(crate) fn v2_instruction_file_object(plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let kek = Kek::new(KeyId::new("any").unwrap(), &LOCAL_KEY);
    let dek = DataKey::generate();
    let iv = [9u8; 12];
    let record = Record {
        content: s3ec::Content::V2 { iv },
        wrap: Wrap::AesGcm,
        encrypted_data_key: kek.wrap_with_aad(&dek, s3ec::CEK_ALG_V2.as_bytes()),
        context: BTreeMap::new(),
    };
    let file = BTreeMap::from([
        ("x-amz-key-v2", STANDARD.encode(&record.encrypted_data_key)),
        ("x-amz-iv", STANDARD.encode(iv)),
        ("x-amz-matdesc", "{}".to_owned()),
        ("x-amz-wrap-alg", "AES/GCM".to_owned()),
        ("x-amz-cek-alg", s3ec::CEK_ALG_V2.to_owned()),
        ("x-amz-tag-len", "128".to_owned()),
        ("x-amz-unencrypted-content-length", plain.len().to_string()),
    ]);
    let mut gcm = record.content_cipher(&dek).unwrap().stream();
    let mut stored = plain.to_vec();
    gcm.encrypt(&mut stored);
    stored.extend_from_slice(&gcm.tag());
    (serde_json::to_vec(&file).unwrap(), stored)
}

/// The instruction file object's own metadata, as the Java and Ruby clients write it.
pub(crate) fn instruction_marker() -> HashMap<String, String> {
    HashMap::from([("x-amz-crypto-instr-file".to_owned(), String::new())])
}

pub(crate) async fn put_direct(
    h: &Harness,
    b: &str,
    key: &str,
    meta: &HashMap<String, String>,
    body: Vec<u8>,
) {
    h.direct()
        .put_object()
        .bucket(b)
        .key(key)
        .set_metadata(Some(meta.clone()))
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

async fn get_error(h: &Harness, b: &str, key: &str) -> (Option<String>, String) {
    let err = h
        .sdk()
        .get_object()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    (
        err.code().map(str::to_owned),
        err.message().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn s3ec_objects_are_verified_before_release() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("ec");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let plain = payload(3000, 1);
    let (meta, stored) = v3_object(&plain);
    put_direct(&h, &b, "good", &meta, stored.clone()).await;
    let got = s3.get_object().bucket(&b).key("good").send().await.unwrap();
    assert_eq!(got.content_length(), Some(3000));
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == plain.as_slice());

    // A flipped bit of the text or the tag: an S3 error, no plaintext.
    for at in [0, 1500, stored.len() - 1] {
        let mut bad = stored.clone();
        bad[at] ^= 1;
        put_direct(&h, &b, "bad", &meta, bad).await;
        let (code, message) = get_error(&h, &b, "bad").await;
        assert_eq!(code.as_deref(), Some("InternalError"));
        assert!(message.contains("does not authenticate"), "{message}");
    }
    // Tampered metadata: another commitment, another suite, a missing field.
    let mut other_commitment = meta.clone();
    other_commitment.insert("x-amz-d".into(), STANDARD.encode([0u8; 28]));
    let mut other_suite = meta.clone();
    other_suite.insert("x-amz-c".into(), "AES/CBC/PKCS5Padding".into());
    let mut no_wrap = meta.clone();
    no_wrap.remove("x-amz-w");
    for (tampered, needle) in [
        (other_commitment, "commitment"),
        (other_suite, "not supported"),
        (no_wrap, "x-amz-w"),
    ] {
        put_direct(&h, &b, "meta", &tampered, stored.clone()).await;
        let (code, message) = get_error(&h, &b, "meta").await;
        assert_eq!(code.as_deref(), Some("InternalError"), "{message}");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // Above the bucket's verified size: refused, naming the setting.
    let (meta_big, big) = v3_object(&payload(5000, 2));
    put_direct(&h, &b, "big", &meta_big, big.clone()).await;
    let (code, message) = get_error(&h, &b, "big").await;
    assert_eq!(code.as_deref(), Some("InvalidObjectState"));
    assert!(message.contains("max_verified_bytes"), "{message}");

    // A bucket that streams large objects: served, and a bad tag cuts the answer short.
    let sb = support::bucket("ecstream");
    s3.create_bucket().bucket(&sb).send().await.unwrap();
    put_direct(&h, &sb, "big", &meta_big, big.clone()).await;
    let got = s3.get_object().bucket(&sb).key("big").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == payload(5000, 2));
    let mut bad = big;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    put_direct(&h, &sb, "bad", &meta_big, bad).await;
    // The answer fails: mid-body, or before the client saw its headers (HTTP/2 resets the
    // stream), but never ends cleanly.
    let failed = match s3.get_object().bucket(&sb).key("bad").send().await {
        Ok(got) => got.body.collect().await.is_err(),
        Err(_) => true,
    };
    assert!(failed, "a bad tag ended cleanly");
}

#[tokio::test]
async fn s3ec_instruction_files_and_ranges() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("ecrange");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let plain = payload(1000, 3);
    let (meta, stored) = v3_object(&plain);
    // The specification's instruction-file layout.
    let (object, file): (HashMap<_, _>, HashMap<_, _>) = meta
        .clone()
        .into_iter()
        .partition(|(k, _)| ["x-amz-c", "x-amz-d", "x-amz-i"].contains(&k.as_str()));
    put_direct(&h, &b, "obj", &object, stored.clone()).await;
    let file_json = serde_json::to_vec(&file).unwrap();
    put_direct(&h, &b, "obj.instruction", &HashMap::new(), file_json).await;
    let got = s3.get_object().bucket(&b).key("obj").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == plain.as_slice());
    // An instruction file may not override the object's commitment.
    let mut spoofed = file.clone();
    spoofed.insert("x-amz-d".into(), STANDARD.encode([0u8; 28]));
    put_direct(
        &h,
        &b,
        "obj.instruction",
        &HashMap::new(),
        serde_json::to_vec(&spoofed).unwrap(),
    )
    .await;
    let (code, message) = get_error(&h, &b, "obj").await;
    assert_eq!(code.as_deref(), Some("InternalError"));
    assert!(message.contains("instruction file"), "{message}");

    // Ranges, on a bucket that allows them.
    put_direct(&h, &b, "ranged", &meta, stored).await;
    for (range, want) in [
        ("bytes=0-0", 0..1),
        ("bytes=17-530", 17..531),
        ("bytes=-33", 967..1000),
        ("bytes=990-", 990..1000),
    ] {
        let got = s3
            .get_object()
            .bucket(&b)
            .key("ranged")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {}-{}/1000", want.start, want.end - 1).as_str())
        );
        let body = got.body.collect().await.unwrap().into_bytes();
        assert!(body.as_ref() == &plain[want.clone()], "{range}");
    }
    let err = s3
        .get_object()
        .bucket(&b)
        .key("ranged")
        .range("bytes=1000-")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidRange"));
}

#[tokio::test]
async fn s3ec_writes_read_back() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("ecwrite");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(70_000, 9);
    s3.put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let stored = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    let meta = stored.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("x-amz-c").map(String::as_str), Some("115"));
    assert_eq!(meta.get("x-amz-w").map(String::as_str), Some("02"));
    let stored = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.len(), data.len() + 16);
    assert!(stored[..data.len()] != data[..]);
    let back = s3.get_object().bucket(&b).key("k").send().await.unwrap();
    assert!(back.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
    let err = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("mp")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("NotImplemented"));
}

#[tokio::test]
async fn s3ec_format_2_objects_with_instruction_files_are_decrypted() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("ec");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let plain = payload(3000, 11);
    let (file, stored) = v2_instruction_file_object(&plain);
    put_direct(&h, &b, "obj", &HashMap::new(), stored.clone()).await;
    put_direct(
        &h,
        &b,
        "obj.instruction",
        &instruction_marker(),
        file.clone(),
    )
    .await;
    let got = s3.get_object().bucket(&b).key("obj").send().await.unwrap();
    assert_eq!(got.content_length(), Some(3000));
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(
        body.as_ref() != stored.as_slice(),
        "the ciphertext was served"
    );
    assert!(body.as_ref() == plain.as_slice(), "wrong plaintext");
    let head = s3.head_object().bucket(&b).key("obj").send().await.unwrap();
    assert_eq!(head.content_length(), Some(3000));

    // The Go client writes the file without the marker: read all the same.
    put_direct(&h, &b, "go", &HashMap::new(), stored.clone()).await;
    put_direct(&h, &b, "go.instruction", &HashMap::new(), file.clone()).await;
    let got = s3.get_object().bucket(&b).key("go").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == plain.as_slice());

    // Ruby writes the plaintext length on the object: still no record there.
    let length = HashMap::from([(
        "x-amz-unencrypted-content-length".to_owned(),
        "3000".to_owned(),
    )]);
    put_direct(&h, &b, "rb", &length, stored.clone()).await;
    put_direct(
        &h,
        &b,
        "rb.instruction",
        &instruction_marker(),
        file.clone(),
    )
    .await;
    let got = s3.get_object().bucket(&b).key("rb").send().await.unwrap();
    assert!(got.metadata().is_none_or(HashMap::is_empty), "{got:?}");
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == plain.as_slice());

    // A file that is no S3EC record, or a tampered one: refused, never the stored bytes.
    let mut wrong_iv: BTreeMap<String, String> = serde_json::from_slice(&file).unwrap();
    wrong_iv.insert("x-amz-iv".into(), STANDARD.encode([1u8; 12]));
    let v3_rest = br#"{"x-amz-3":"AAAA","x-amz-w":"02"}"#.to_vec();
    for (bad, needle) in [
        (b"not json".to_vec(), "instruction file"),
        (vec![b' '; 20_000], "instruction file"),
        (v3_rest, "x-amz-c"),
        (
            serde_json::to_vec(&wrong_iv).unwrap(),
            "does not authenticate",
        ),
    ] {
        put_direct(&h, &b, "obj.instruction", &instruction_marker(), bad).await;
        let (code, message) = get_error(&h, &b, "obj").await;
        assert_eq!(code.as_deref(), Some("InternalError"), "{message}");
        assert!(message.contains(needle), "{needle}: {message}");
    }

    // Objects without a record or an instruction file are served as stored.
    put_direct(&h, &b, "plain", &HashMap::new(), plain.clone()).await;
    let got = s3
        .get_object()
        .bucket(&b)
        .key("plain")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == plain.as_slice());

    // Ranges, on a bucket that allows them, find the record in the file too.
    let rb = support::bucket("ecrange");
    s3.create_bucket().bucket(&rb).send().await.unwrap();
    put_direct(&h, &rb, "obj", &HashMap::new(), stored).await;
    put_direct(&h, &rb, "obj.instruction", &instruction_marker(), file).await;
    let got = s3
        .get_object()
        .bucket(&rb)
        .key("obj")
        .range("bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_range(), Some("bytes 100-199/3000"));
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == &plain[100..200]);
    put_direct(&h, &rb, "plain", &HashMap::new(), plain.clone()).await;
    let got = s3
        .get_object()
        .bucket(&rb)
        .key("plain")
        .range("bytes=100-199")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == &plain[100..200]);
}

/// An instruction file is another object's record, hidden like s3seal's own: GET, HEAD and
/// ranged GET answer `403 AccessDenied` naming the object it belongs to.
#[tokio::test]
async fn s3ec_instruction_files_are_not_served() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let (file, stored) = v2_instruction_file_object(&payload(100, 12));
    let ruby = HashMap::from([
        ("x-amz-crypto-instr-file".to_owned(), String::new()),
        (
            "x-amz-unencrypted-content-length".to_owned(),
            "100".to_owned(),
        ),
    ]);
    for prefix in ["ec", "ecrange"] {
        let b = support::bucket(prefix);
        s3.create_bucket().bucket(&b).send().await.unwrap();
        put_direct(&h, &b, "dir/obj", &HashMap::new(), stored.clone()).await;
        for marker in [instruction_marker(), ruby.clone()] {
            put_direct(&h, &b, "dir/obj.instruction", &marker, file.clone()).await;
            let (code, message) = get_error(&h, &b, "dir/obj.instruction").await;
            assert_eq!(code.as_deref(), Some("AccessDenied"), "{message}");
            assert!(message.contains("'dir/obj'"), "{message}");
            let err = s3
                .get_object()
                .bucket(&b)
                .key("dir/obj.instruction")
                .range("bytes=0-9")
                .send()
                .await
                .unwrap_err()
                .into_service_error();
            assert_eq!(err.code(), Some("AccessDenied"), "{prefix}: {err:?}");
            let err = s3
                .head_object()
                .bucket(&b)
                .key("dir/obj.instruction")
                .send()
                .await
                .unwrap_err();
            let status = err.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(403), "{prefix}: {err:?}");
        }
    }
}

/// `If-Range` (RFC 9110 §13.1.5) is evaluated by the proxy against the `ETag` it shows: the
/// range when it holds, the whole object (verified, as any whole S3EC object) when it does not,
/// for S3EC and s3seal objects alike.
#[tokio::test]
async fn s3ec_if_range_gives_the_range_or_the_whole_object() {
    let h = Harness::s3s_rules(local_rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("ecrange");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let plain = payload(1000, 13);
    let (meta, stored) = v3_object(&plain);
    put_direct(&h, &b, "s3ec", &meta, stored).await;
    s3.put_object()
        .bucket(&b)
        .key("s3seal")
        .body(ByteStream::from(plain.clone()))
        .send()
        .await
        .unwrap();
    for key in ["s3ec", "s3seal"] {
        let shown = s3.head_object().bucket(&b).key(key).send().await.unwrap();
        let shown = shown.e_tag().unwrap().to_owned();
        let weak = format!("W/{shown}");
        for (if_range, whole) in [
            (shown.as_str(), false),
            ("\"a-different-one-s3seal\"", true),
            (weak.as_str(), true),
        ] {
            let value = http::HeaderValue::from_str(if_range).unwrap();
            let got = s3
                .get_object()
                .bucket(&b)
                .key(key)
                .range("bytes=10-19")
                .customize()
                .mutate_request(move |req| {
                    req.headers_mut().insert("if-range", value.clone());
                })
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} {if_range}: {:?}", e.into_service_error()));
            let body = got.body.collect().await.unwrap().into_bytes();
            if whole {
                assert_eq!(got.content_range, None, "{key} {if_range}");
                assert!(body.as_ref() == plain.as_slice(), "{key} {if_range}");
            } else {
                assert_eq!(
                    got.content_range.as_deref(),
                    Some("bytes 10-19/1000"),
                    "{key} {if_range}"
                );
                assert!(body.as_ref() == &plain[10..20], "{key} {if_range}");
            }
        }
    }
}
