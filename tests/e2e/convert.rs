//! `s3seal convert` (issue 13). With the real client on moto (KMS from moto): objects s3seal
//! wrote, converted, are read by `amazon-s3-encryption-client-python`, and the objects it wrote
//! (formats 2 and 3, one with an instruction file), converted, are read through s3seal as
//! s3seal objects. In process against s3s-fs, a bucket's objects moved from s3seal's format to
//! the S3 Encryption Client's format 3 and back: contents equal
//! after the round trip, the stored metadata carries the target format's record only, user
//! metadata and content headers survive, a multipart s3seal object becomes one S3EC message,
//! objects above the bucket's `max_verified_bytes` convert (streamed, their tag checked
//! before the new object can complete), a dry run writes nothing, a second run finds nothing to
//! do, plaintext objects are left alone, and an S3EC object whose tag fails is reported and
//! left as it was.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use s3seal::bulk::Options;
use s3seal::convert::{self, Format, Report};
use s3seal::crypto::format::{Kek, KeyId};
use s3seal::cse::{EncryptionRules, Keyring, Rule, S3ecSettings, Unencrypted};

use crate::cse::md5_hex;
use crate::s3ec::{
    instruction_marker, put_direct, python_client, v2_instruction_file_object, v3_object,
};
use crate::support::{self, backends, payload, Harness, UpstreamInfo};

/// The key `s3ec::v3_object` wraps with.
const LOCAL_KEY: [u8; 32] = [7; 32];
const MAX_VERIFIED: u64 = 4096;

/// The proxy's rules: `conv-*` buckets with the local key, reading S3EC objects up to
/// [`MAX_VERIFIED`] bytes (larger ones refused), writing s3seal's format.
fn rules() -> EncryptionRules {
    let ring = Keyring::new(
        Kek::new(KeyId::new("conv").unwrap(), &LOCAL_KEY),
        Vec::new(),
    )
    .unwrap();
    let settings = S3ecSettings {
        max_verified_bytes: MAX_VERIFIED,
        ..S3ecSettings::default()
    };
    let rule = Rule::new(ring, Unencrypted::PassThrough).with_s3ec(settings);
    EncryptionRules::new([("conv-*".to_owned(), Some(rule))]).unwrap()
}

/// The same rules as the command's config, which also has `noec-*` buckets, encrypted without
/// `s3ec`.
fn config(h: &Harness) -> s3seal::config::Config {
    let up = &h.upstream;
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server-key.pem"
[[upstream]]
name = "backend"
endpoint = "{endpoint}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
region = "{region}"
allow_plaintext = true
[[client]]
access_key_id = "UNUSED"
secret_access_key = "unused"
upstream = "backend"
[[bucket]]
pattern = "conv-*"
encryption = {{ mode = "client-side", key_id = "conv", key = "{key}", s3ec = {{ max_verified_bytes = {MAX_VERIFIED} }} }}
[[bucket]]
pattern = "noec-*"
encryption = {{ mode = "client-side", key_id = "conv", key = "{key}" }}
"#,
        endpoint = up.endpoint,
        ak = up.access_key,
        sk = up.secret_key,
        region = up.region,
        key = STANDARD.encode(LOCAL_KEY),
    );
    let env = HashMap::<String, String>::new();
    s3seal::config::Config::from_toml(&text, std::path::Path::new("."), &env).unwrap()
}

/// The backend's view of an object: its stored bytes and user metadata (without
/// `x-amz-meta-`), and its content type.
async fn stored(
    h: &Harness,
    b: &str,
    key: &str,
) -> (Vec<u8>, HashMap<String, String>, Option<String>) {
    let got = h
        .direct()
        .get_object()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap();
    let meta = got.metadata().cloned().unwrap_or_default();
    let ctype = got.content_type().map(str::to_owned);
    let data = got.body.collect().await.unwrap().into_bytes().to_vec();
    (data, meta, ctype)
}

async fn get(h: &Harness, b: &str, key: &str) -> Vec<u8> {
    let got = h
        .sdk()
        .get_object()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn run(h: &Harness, b: &str, to: Format, opts: Options) -> Report {
    convert::run(config(h), b, None, to, &opts).await.unwrap()
}

fn keys<T>(list: &[(String, T)]) -> Vec<&str> {
    let mut keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys
}

/// A two-part s3seal object (5 MiB and `tail` bytes) written through the proxy.
async fn put_multipart(h: &Harness, b: &str, key: &str, data: &[u8]) {
    let s3 = h.sdk();
    let up = s3
        .create_multipart_upload()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = CompletedMultipartUpload::builder();
    for (n, part) in data.chunks(5 * 1024 * 1024).enumerate() {
        let n = i32::try_from(n).unwrap() + 1;
        let sent = s3
            .upload_part()
            .bucket(b)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(part.to_vec()))
            .send()
            .await
            .unwrap();
        done = done.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(sent.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(b)
        .key(key)
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_round_trip() {
    let h = Harness::s3s_rules(rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("conv");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let originals: HashMap<&str, Vec<u8>> = [
        ("doc", payload(3000, 1)),
        ("empty", Vec::new()),
        ("dir/big", payload(200_000, 2)),
        ("multi", payload(5 * 1024 * 1024 + 3000, 3)),
        ("ec", payload(2000, 4)),
    ]
    .into_iter()
    .collect();
    for key in ["doc", "empty", "dir/big"] {
        let put = s3
            .put_object()
            .bucket(&b)
            .key(key)
            .body(ByteStream::from(originals[key].clone()));
        let put = if key == "doc" {
            put.content_type("text/x-test").metadata("colour", "green")
        } else {
            put
        };
        put.send().await.unwrap();
    }
    put_multipart(&h, &b, "multi", &originals["multi"]).await;
    // Written by the S3 Encryption Client (format 3, local key): in the target format already.
    let (ec_meta, ec_stored) = v3_object(&originals["ec"]);
    put_direct(&h, &b, "ec", &ec_meta, ec_stored.clone()).await;
    // Plaintext, written around the proxy: left alone.
    h.direct()
        .put_object()
        .bucket(&b)
        .key("plain")
        .body(ByteStream::from(b"plain".to_vec()))
        .send()
        .await
        .unwrap();
    let doc_before = stored(&h, &b, "doc").await;

    let dry = run(
        &h,
        &b,
        Format::S3ec,
        Options {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    let mut would = dry.converted.clone();
    would.sort_unstable();
    let sizes: Vec<(&str, u64)> = would.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        sizes,
        [
            ("dir/big", 200_000),
            ("doc", 3000),
            ("empty", 0),
            ("multi", 5 * 1024 * 1024 + 3000)
        ],
        "{dry:?}"
    );
    assert_eq!(dry.already, ["ec"]);
    assert_eq!(dry.unencrypted, ["plain"]);
    assert!(dry.failed.is_empty(), "{dry:?}");
    assert_eq!(stored(&h, &b, "doc").await, doc_before, "after the dry run");

    // To the S3 Encryption Client's format.
    let report = run(
        &h,
        &b,
        Format::S3ec,
        Options {
            concurrency: 2,
            progress: s3seal::bulk::Progress::Lines,
            ..Default::default()
        },
    )
    .await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        keys(&report.converted),
        ["dir/big", "doc", "empty", "multi"]
    );
    for key in ["doc", "empty", "dir/big", "multi"] {
        let (bytes, meta, _) = stored(&h, &b, key).await;
        assert_eq!(
            meta.get("x-amz-c").map(String::as_str),
            Some("115"),
            "{key}"
        );
        assert_eq!(meta.get("x-amz-w").map(String::as_str), Some("02"), "{key}");
        for field in ["x-amz-3", "x-amz-d", "x-amz-i", "x-amz-m"] {
            assert!(meta.contains_key(field), "{key} lacks {field}: {meta:?}");
        }
        assert!(
            !meta.keys().any(|k| k.starts_with("s3seal-")),
            "{key} keeps an s3seal record: {meta:?}"
        );
        assert_eq!(bytes.len(), originals[key].len() + 16, "{key}");
    }
    let (_, doc_meta, doc_type) = stored(&h, &b, "doc").await;
    assert_eq!(doc_meta.get("colour").map(String::as_str), Some("green"));
    assert_eq!(doc_type.as_deref(), Some("text/x-test"));
    // The proxy reads the small ones as S3EC objects; the large ones are above this bucket's
    // verified size, which applies to clients, not to the command.
    assert_eq!(get(&h, &b, "doc").await, originals["doc"]);
    assert_eq!(get(&h, &b, "empty").await, originals["empty"]);
    let err = s3
        .get_object()
        .bucket(&b)
        .key("dir/big")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("InvalidObjectState")
    );
    // The client's own object was not touched.
    assert_eq!(stored(&h, &b, "ec").await.0, ec_stored);

    let again = run(&h, &b, Format::S3ec, Options::default()).await;
    assert!(
        again.converted.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.already.len(), 5, "{again:?}");

    // An S3EC object whose tag fails, larger than the verified size: it streams into the new
    // object, which cannot complete, so it fails and stays as it was.
    let (bad_meta, mut bad) = v3_object(&payload(50_000, 5));
    let last = bad.len() - 1;
    bad[last] ^= 1;
    put_direct(&h, &b, "bad", &bad_meta, bad.clone()).await;

    // Back to s3seal's format: every encrypted object, the client's own too.
    let back = run(
        &h,
        &b,
        Format::S3seal,
        Options {
            concurrency: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(keys(&back.failed), ["bad"], "{back:?}");
    assert!(
        back.failed[0].1.contains("authenticat"),
        "{:?}",
        back.failed[0]
    );
    assert_eq!(
        keys(&back.converted),
        ["dir/big", "doc", "ec", "empty", "multi"]
    );
    assert_eq!(back.unencrypted, ["plain"]);
    let (bad_now, bad_now_meta, _) = stored(&h, &b, "bad").await;
    assert!(bad_now == bad, "the failed object was changed");
    assert_eq!(bad_now_meta, bad_meta);
    for (key, data) in &originals {
        let (_, meta, _) = stored(&h, &b, key).await;
        assert!(
            meta.keys().any(|k| k.starts_with("s3seal-")),
            "{key} has no s3seal record: {meta:?}"
        );
        assert!(
            !meta.keys().any(|k| k.starts_with("x-amz-")),
            "{key} keeps an S3EC record: {meta:?}"
        );
        assert!(
            get(&h, &b, key).await == *data,
            "{key} reads back different"
        );
    }
    let (_, doc_meta, doc_type) = stored(&h, &b, "doc").await;
    assert_eq!(doc_meta.get("colour").map(String::as_str), Some("green"));
    assert_eq!(doc_type.as_deref(), Some("text/x-test"));
}

/// A format 2 object whose record is wholly in its instruction file is the client's, not
/// plaintext: converted, and its instruction file counted.
#[tokio::test]
async fn convert_format_2_instruction_file_objects() {
    let h = Harness::s3s_rules(rules()).await;
    let b = support::bucket("conv");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let plain = payload(3000, 6);
    let (file, ciphertext) = v2_instruction_file_object(&plain);
    put_direct(&h, &b, "obj", &HashMap::new(), ciphertext).await;
    put_direct(&h, &b, "obj.instruction", &instruction_marker(), file).await;
    let report = run(&h, &b, Format::S3seal, Options::default()).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(keys(&report.converted), ["obj"], "{report:?}");
    assert_eq!(report.instruction_files, ["obj.instruction"]);
    let (_, meta, _) = stored(&h, &b, "obj").await;
    assert!(meta.keys().any(|k| k.starts_with("s3seal-")), "{meta:?}");
    assert!(get(&h, &b, "obj").await == plain, "reads back different");
}

/// `s3seal encrypt` never encrypts the client's ciphertext again (it would then serve that
/// ciphertext as the plaintext): format 3 objects, format 2 objects whose record is wholly in
/// the instruction file, and instruction files themselves fail, unchanged, and point at
/// `convert`; a plaintext object beside them is encrypted.
#[tokio::test]
async fn encrypt_leaves_s3ec_objects_alone() {
    let h = Harness::s3s_rules(rules()).await;
    let b = support::bucket("conv");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    let (meta, v3) = v3_object(&payload(2000, 8));
    put_direct(&h, &b, "v3", &meta, v3.clone()).await;
    let (file, v2) = v2_instruction_file_object(&payload(3000, 9));
    put_direct(&h, &b, "v2", &HashMap::new(), v2.clone()).await;
    put_direct(&h, &b, "v2.instruction", &instruction_marker(), file).await;
    put_direct(&h, &b, "plain", &HashMap::new(), b"plain text".to_vec()).await;
    let report = s3seal::encrypt::run(config(&h), &b, None, &Options::default())
        .await
        .unwrap();
    assert_eq!(keys(&report.encrypted), ["plain"], "{report:?}");
    assert_eq!(
        keys(&report.failed),
        ["v2", "v2.instruction", "v3"],
        "{report:?}"
    );
    for (_, why) in &report.failed {
        assert!(why.contains("s3seal convert --to s3seal"), "{why}");
    }
    assert!(stored(&h, &b, "v3").await.0 == v3, "v3 rewritten");
    assert!(stored(&h, &b, "v2").await.0 == v2, "v2 rewritten");
    assert!(get(&h, &b, "plain").await == b"plain text", "plain");
}

/// A bucket whose rule does not read S3EC objects, or has no client-side encryption, cannot be
/// converted: the command stops before it lists anything (neither bucket exists).
#[tokio::test]
async fn convert_needs_s3ec_settings() {
    let h = Harness::s3s_rules(rules()).await;
    for (bucket, needle) in [
        ("noec-x", "no encryption.s3ec"),
        ("other", "no client-side encryption"),
    ] {
        let err = convert::run(config(&h), bucket, None, Format::S3ec, &Options::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{bucket}: {err}");
    }
}

/// s3seal's objects, converted to format 3 under the bucket's KMS key, read by the real client;
/// the client's own objects, converted to s3seal's format, read through the proxy.
#[tokio::test(flavor = "multi_thread")]
async fn convert_python_client_moto() {
    let moto = backends::shared_moto();
    let key_id = crate::kms::create_key(moto).await;
    let config = || crate::kms::rotated_config(moto, &key_id, "", ", s3ec = {}");
    let h = Harness::start_full(
        UpstreamInfo::of(moto),
        s3seal::cors::BucketRules::none(),
        s3seal::policy::SsePolicies::default(),
        config().encryption,
        |_| {},
    )
    .await;
    let s3 = h.sdk();

    let b = support::bucket("kms-conv");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let mut expect = vec!["read".to_owned(), b.clone()];
    for (i, size) in [0usize, 1000, 70_001].into_iter().enumerate() {
        let data = payload(size, i as u64 + 60);
        let key = format!("by-s3seal-{size}");
        s3.put_object()
            .bucket(&b)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        expect.push(format!("{key}={}", md5_hex(&data)));
    }
    let report = convert::run(config(), &b, None, Format::S3ec, &Options::default())
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.converted.len(), 3, "{report:?}");
    let lines = python_client(moto, moto, &key_id, &expect).await;
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("read ")).count(),
        3,
        "{lines:?}"
    );

    let c = support::bucket("kms-py");
    let lines = python_client(moto, moto, &key_id, &["write".into(), c.clone()]).await;
    let written: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("wrote "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(written.len(), 5, "{lines:?}");
    let report = convert::run(config(), &c, None, Format::S3seal, &Options::default())
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.converted.len(), 5, "{report:?}");
    assert_eq!(report.instruction_files, ["v3-instruction.instruction"]);
    assert!(report.unencrypted.is_empty(), "{report:?}");
    for (key, md5) in &written {
        let (_, meta, _) = stored(&h, &c, key).await;
        assert!(
            meta.keys().any(|k| k.starts_with("s3seal-")),
            "{key}: {meta:?}"
        );
        let got = s3.get_object().bucket(&c).key(key).send().await.unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&md5_hex(&body), md5, "{key}");
    }
}
