//! Format version 2 (`docs/format.md` §5, §7) against real backends: records bound to their
//! place, upload tokens bound to their upload, seals inside the record, and version 1 objects
//! (written here around the proxy, as releases before version 2 wrote them) read, upgraded by
//! `s3seal rewrap`, and no obstacle to deleting their bucket.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use s3seal::crypto::format::{
    Binding, DataKey, Kek, KeyId, Layout, ObjectKey, ObjectMetadata, PartNumber, Salt, Seal,
    SegmentPrefix, Version, CHUNK_SIZE,
};

use crate::cse::{multipart_backends, per_backend, rules};
use crate::support::{self, backends, payload, Harness};

const MIB: usize = 1024 * 1024;

async fn get(s3: &aws_sdk_s3::Client, b: &str, key: &str) -> Result<Vec<u8>, String> {
    match s3.get_object().bucket(b).key(key).send().await {
        Ok(got) => Ok(got.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(e.code().unwrap_or("no code").to_owned()),
    }
}

/// A record and its data copied, at the backend, to another key or bucket do not open there;
/// nor do two records swapped. The original still reads.
async fn records_are_bound_to_their_place(h: &Harness) {
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-place");
    let other = support::bucket("cse-place2");
    for bucket in [&b, &other] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let (one, two) = (payload(70_000, 1), payload(70_000, 2));
    for (key, data) in [("one", &one), ("two", &two)] {
        s3.put_object()
            .bucket(&b)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    // Data and record, as the backend copies them (metadata directive COPY).
    for (bucket, key) in [(&b, "moved"), (&other, "one")] {
        direct
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(format!("{b}/one"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            get(&s3, bucket, key).await,
            Err("InternalError".to_owned()),
            "{bucket}/{key}"
        );
    }
    // Swapped records.
    let head = direct
        .head_object()
        .bucket(&b)
        .key("two")
        .send()
        .await
        .unwrap();
    let two_record = head.metadata().unwrap().clone();
    direct
        .copy_object()
        .bucket(&b)
        .key("one")
        .copy_source(format!("{b}/one"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .set_metadata(Some(two_record))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&s3, &b, "one").await, Err("InternalError".to_owned()));
    assert_eq!(get(&s3, &b, "two").await, Ok(two.clone()));
    // A copy through the proxy is given its own record, and reads.
    s3.copy_object()
        .bucket(&other)
        .key("copied")
        .copy_source(format!("{b}/two"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&s3, &other, "copied").await, Ok(two));
}

per_backend!(records_are_bound_to_their_place);

/// An upload id is good for its own upload of its own object only: another object's token on
/// this upload, this token on another upload or key, and a forged token are `NoSuchUpload`,
/// and nothing is written.
async fn upload_tokens_are_bound_to_their_upload(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-token");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let mut ids = Vec::new();
    for key in ["x", "y"] {
        let up = s3
            .create_multipart_upload()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        ids.push(up.upload_id().unwrap().to_owned());
    }
    let split = |id: &str| {
        let (backend, token) = id.rsplit_once("~s3seal~").unwrap();
        (backend.to_owned(), token.to_owned())
    };
    let ((x_backend, x_token), (y_backend, y_token)) = (split(&ids[0]), split(&ids[1]));
    let mut forged = URL_SAFE_NO_PAD.decode(&y_token).unwrap();
    forged[40] ^= 1;
    let forged = URL_SAFE_NO_PAD.encode(forged);
    let attempts = [
        ("y", format!("{y_backend}~s3seal~{x_token}")),
        ("x", format!("{y_backend}~s3seal~{x_token}")),
        ("x", format!("{x_backend}~s3seal~{y_token}")),
        ("y", ids[0].clone()),
        ("y", format!("{y_backend}~s3seal~{forged}")),
        ("y", format!("{y_backend}~s3seal~AAAA")),
    ];
    for (key, id) in attempts {
        let err = s3
            .upload_part()
            .bucket(&b)
            .key(key)
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(payload(1000, 3)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NoSuchUpload"), "{key} {id}: {err:?}");
    }
    // The genuine ids still work, and the object reads.
    let data = payload(1000, 4);
    let part = s3
        .upload_part()
        .bucket(&b)
        .key("y")
        .upload_id(&ids[1])
        .part_number(1)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    s3.complete_multipart_upload()
        .bucket(&b)
        .key("y")
        .upload_id(&ids[1])
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&s3, &b, "y").await, Ok(data));
    s3.abort_multipart_upload()
        .bucket(&b)
        .key("x")
        .upload_id(&ids[0])
        .send()
        .await
        .unwrap();
}

per_backend!(upload_tokens_are_bound_to_their_upload);

/// The stored form of `plain` as one segment under `key` (`docs/format.md` §3).
fn segment(key: &ObjectKey, part: PartNumber, plain: &[u8]) -> Vec<u8> {
    let part_key = key.part_key(part);
    let prefix = SegmentPrefix::generate();
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![plain]
    } else {
        plain.chunks(CHUNK_SIZE).collect()
    };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        out.extend_from_slice(&part_key.seal_chunk(prefix, index, i + 1 == chunks.len(), chunk));
    }
    out
}

/// The `x-amz-meta-` fields of a version 1 record under `kek` (without the prefix).
fn v1_record(
    kek: &Kek,
    dek: &DataKey,
    key: &ObjectKey,
    layout: Layout,
) -> std::collections::HashMap<String, String> {
    let meta = ObjectMetadata {
        version: Version::V1,
        layout,
        key_id: kek.id().clone(),
        wrapped_dek: kek.wrap(dek, Binding::V1),
        salt: key.salt(),
        commitment: key.commitment(Binding::V1),
        seal: None,
    };
    let mut headers = http::HeaderMap::new();
    meta.write_headers(&mut headers);
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-amz-meta-").unwrap();
            (name.to_owned(), v.to_str().unwrap().to_owned())
        })
        .collect()
}

/// A version 1 multipart object of `parts` under `kek`, written around the proxy as releases
/// before version 2 wrote them: the record without a seal, and the seal in its own object,
/// whose name this returns.
async fn put_v1_multipart(
    direct: &aws_sdk_s3::Client,
    b: &str,
    name: &str,
    kek: &Kek,
    parts: &[Vec<u8>],
) -> String {
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    let up = direct
        .create_multipart_upload()
        .bucket(b)
        .key(name)
        .set_metadata(Some(v1_record(kek, &dek, &key, Layout::Multipart)))
        .send()
        .await
        .unwrap();
    let mut completed = CompletedMultipartUpload::builder();
    let mut sealed = Vec::new();
    for (i, plain) in parts.iter().enumerate() {
        let n = u32::try_from(i + 1).unwrap();
        let number = PartNumber::multipart(n).unwrap();
        let part = direct
            .upload_part()
            .bucket(b)
            .key(name)
            .upload_id(up.upload_id().unwrap())
            .part_number(i32::try_from(n).unwrap())
            .body(ByteStream::from(segment(&key, number, plain)))
            .send()
            .await
            .unwrap();
        completed = completed.parts(
            CompletedPart::builder()
                .part_number(i32::try_from(n).unwrap())
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
        sealed.push((number, plain.len() as u64));
    }
    direct
        .complete_multipart_upload()
        .bucket(b)
        .key(name)
        .upload_id(up.upload_id().unwrap())
        .multipart_upload(completed.build())
        .send()
        .await
        .unwrap();
    // Named here from the spec (`docs/format.md` §7.2), not by the code under test.
    let seal_name = format!(".s3seal/seal/{}", URL_SAFE_NO_PAD.encode(key.salt().0));
    direct
        .put_object()
        .bucket(b)
        .key(&seal_name)
        .body(ByteStream::from(Seal::new(sealed).unwrap().encode(&key)))
        .send()
        .await
        .unwrap();
    seal_name
}

/// Version 1 objects, a single-part one and a multipart one with its seal object, as earlier
/// releases wrote them: read through the proxy, upgraded in place by `s3seal rewrap` (same
/// data, version 2 record with the seal inside), and once the client deleted them, the bucket
/// deletes although the old seal object is still there.
async fn version_1_objects_upgrade(h: &Harness) {
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-v1");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let k1 = Kek::new(KeyId::new("k1").unwrap(), &[1; 32]);

    let single = payload(100_000, 5);
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    direct
        .put_object()
        .bucket(&b)
        .key("single")
        .set_metadata(Some(v1_record(&k1, &dek, &key, Layout::Single)))
        .metadata("colour", "red")
        .body(ByteStream::from(segment(&key, PartNumber::SINGLE, &single)))
        .send()
        .await
        .unwrap();

    let parts = [payload(5 * MIB, 6), payload(1000, 7)];
    let seal_name = put_v1_multipart(&direct, &b, "multi", &k1, &parts).await;
    let multi = parts.concat();

    assert_eq!(get(&s3, &b, "single").await, Ok(single.clone()));
    assert_eq!(get(&s3, &b, "multi").await, Ok(multi.clone()));

    let config = config_for(h);
    let report = s3seal::rewrap::run(config, &b, None, &s3seal::bulk::Options::default())
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let mut rewrapped: Vec<_> = report.rewrapped.iter().map(|(k, _)| k.as_str()).collect();
    rewrapped.sort_unstable();
    assert_eq!(rewrapped, ["multi", "single"]);
    for key in ["single", "multi"] {
        let head = direct
            .head_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        let meta = head.metadata().unwrap();
        assert_eq!(meta.get("s3seal-v").map(String::as_str), Some("2"), "{key}");
        assert_eq!(
            meta.get("s3seal-kid").map(String::as_str),
            Some("k2"),
            "{key}"
        );
        assert_eq!(meta.contains_key("s3seal-seal"), key == "multi", "{key}");
    }
    let head = direct
        .head_object()
        .bucket(&b)
        .key("single")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata().unwrap().get("colour").map(String::as_str),
        Some("red")
    );
    assert_eq!(get(&s3, &b, "single").await, Ok(single));
    assert_eq!(get(&s3, &b, "multi").await, Ok(multi));
    // The upgraded multipart object reads without its old seal object.
    direct
        .delete_object()
        .bucket(&b)
        .key(&seal_name)
        .send()
        .await
        .unwrap();
    assert!(get(&s3, &b, "multi").await.is_ok());
    // Rewritten once: a second run finds nothing to do.
    let again = s3seal::rewrap::run(config_for(h), &b, None, &s3seal::bulk::Options::default())
        .await
        .unwrap();
    assert!(again.rewrapped.is_empty(), "{again:?}");
    assert_eq!(again.current.len(), 2, "{again:?}");

    // A version 1 seal object left behind does not keep the emptied bucket alive.
    direct
        .put_object()
        .bucket(&b)
        .key(&seal_name)
        .body(ByteStream::from(b"an old seal".to_vec()))
        .send()
        .await
        .unwrap();
    for key in ["single", "multi"] {
        s3.delete_object().bucket(&b).key(key).send().await.unwrap();
    }
    s3.delete_bucket().bucket(&b).send().await.unwrap();
    let err = direct.head_bucket().bucket(&b).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

/// A client's own object left in the bucket still keeps it: the proxy deletes nothing of the
/// client's. (s3s-fs deletes a bucket with everything in it, so moto and RGW.)
async fn delete_bucket_keeps_client_objects(h: &Harness) {
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-keep");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    direct
        .put_object()
        .bucket(&b)
        .key(".s3seal/seal/old")
        .body(ByteStream::from(b"an old seal".to_vec()))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&b)
        .key("kept")
        .body(ByteStream::from(b"mine".to_vec()))
        .send()
        .await
        .unwrap();
    let err = s3.delete_bucket().bucket(&b).send().await.unwrap_err();
    assert_eq!(err.code(), Some("BucketNotEmpty"), "{err:?}");
    let left = direct.list_objects_v2().bucket(&b).send().await.unwrap();
    assert_eq!(left.key_count(), Some(2));
}

mod delete_bucket_keeps_client_objects {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        let h = Harness::with_backend_rules(backends::shared_moto(), rules()).await;
        delete_bucket_keeps_client_objects(&h).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        delete_bucket_keeps_client_objects(&h).await;
    }
}

/// The config of the harness's proxy, for `s3seal rewrap`: `cse-*` buckets with the test
/// keyring (`k2` active, `k1` old).
pub(crate) fn config_for(h: &Harness) -> s3seal::config::Config {
    let env = std::collections::HashMap::<String, String>::new();
    s3seal::config::Config::from_toml(&config_text(h), std::path::Path::new("."), &env).unwrap()
}

/// [`config_for`]'s text, for the commands run as the binary.
pub(crate) fn config_text(h: &Harness) -> String {
    let up = &h.upstream;
    let ca = up
        .ca_bundle
        .as_ref()
        .map(|p| format!("ca_bundle = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
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
{ca}
[[client]]
access_key_id = "UNUSED"
secret_access_key = "unused"
upstream = "backend"
[[bucket]]
pattern = "cse-*"
encryption = {{ mode = "client-side", key_id = "k2", key = "{k2}", old_keys = [{{ key_id = "k1", key = "{k1}" }}] }}
"#,
        endpoint = up.endpoint,
        ak = up.access_key,
        sk = up.secret_key,
        region = up.region,
        k1 = STANDARD.encode([1u8; 32]),
        k2 = STANDARD.encode([2u8; 32]),
    )
}

// moto 5.2 answers CompleteMultipartUpload in a form the SDK refuses (see `cse::multipart`),
// and the version 1 objects are written directly: s3s-fs and RGW.
multipart_backends!(version_1_objects_upgrade);

/// A versioned bucket: a multipart upload leaves one version (its sealed one), which reads;
/// an older version keeps reading after the key is overwritten; once every version is
/// deleted, the bucket deletes. (Versions: moto and RGW; s3s-fs has none.)
async fn versioned_multipart(h: &Harness) {
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-versioned");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&b)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = [payload(5 * MIB, 11), payload(1000, 12)];
    let up = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("doc")
        .send()
        .await
        .unwrap();
    let mut parts = CompletedMultipartUpload::builder();
    for (i, data) in first.iter().enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let part = s3
            .upload_part()
            .bucket(&b)
            .key("doc")
            .upload_id(up.upload_id().unwrap())
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        parts = parts.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(&b)
        .key("doc")
        .upload_id(up.upload_id().unwrap())
        .multipart_upload(parts.build())
        .send()
        .await
        .unwrap();
    let version = done.version_id().unwrap().to_owned();
    let versions = direct
        .list_object_versions()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids, [version.as_str()], "one version, the sealed one");
    let head = s3.head_object().bucket(&b).key("doc").send().await.unwrap();
    assert_eq!(head.e_tag(), done.e_tag());
    assert_eq!(head.version_id(), Some(version.as_str()));

    s3.put_object()
        .bucket(&b)
        .key("doc")
        .body(ByteStream::from(b"newer".to_vec()))
        .send()
        .await
        .unwrap();
    let old = s3
        .get_object()
        .bucket(&b)
        .key("doc")
        .version_id(&version)
        .send()
        .await
        .unwrap();
    assert!(old.body.collect().await.unwrap().into_bytes().as_ref() == first.concat().as_slice());

    s3.delete_object()
        .bucket(&b)
        .key("doc")
        .send()
        .await
        .unwrap();
    let versions = s3.list_object_versions().bucket(&b).send().await.unwrap();
    for v in versions.versions() {
        s3.delete_object()
            .bucket(&b)
            .key(v.key().unwrap())
            .version_id(v.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    for m in versions.delete_markers() {
        s3.delete_object()
            .bucket(&b)
            .key(m.key().unwrap())
            .version_id(m.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    s3.delete_bucket().bucket(&b).send().await.unwrap();
}

mod versioned_multipart {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        let h = Harness::with_backend_rules(backends::shared_moto(), rules()).await;
        Box::pin(versioned_multipart(&h)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(versioned_multipart(&h)).await;
    }
}

/// `s3seal decrypt` finds a version 1 multipart object's seal itself: named from the record's
/// salt and fetched from the object's bucket through the config's upstream. Without a config
/// it names the object to fetch; `--seal` overrides the fetch; a missing seal is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_fetches_a_version_1_seal() {
    let h = Harness::s3s_rules(rules()).await;
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-v1-decrypt");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let k1 = Kek::new(KeyId::new("k1").unwrap(), &[1; 32]);
    let parts = [payload(5 * MIB, 8), payload(3000, 9)];
    let seal_name = put_v1_multipart(&direct, &b, "old/multi", &k1, &parts).await;

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("k1"), STANDARD.encode([1u8; 32])).unwrap();
    std::fs::write(path("s3seal.toml"), crate::cse_v2::config_text(&h)).unwrap();
    let stored = direct
        .get_object()
        .bucket(&b)
        .key("old/multi")
        .send()
        .await
        .unwrap();
    let meta = stored.metadata().cloned().unwrap_or_default();
    let lines = meta.iter().fold(String::new(), |mut s, (k, v)| {
        use std::fmt::Write as _;
        let _ = writeln!(s, "x-amz-meta-{k}: {v}");
        s
    });
    std::fs::write(path("meta"), lines).unwrap();
    let cipher = stored.body.collect().await.unwrap().into_bytes();
    std::fs::write(path("bin"), cipher).unwrap();

    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .arg("decrypt")
            .arg("--in")
            .arg(path("bin"))
            .arg("--metadata")
            .arg(path("meta"))
            .arg("--out")
            .arg(path("out"))
            .args(["--bucket", &b, "--object", "old/multi"])
            .arg("--key")
            .arg(format!("k1={}", path("k1").display()))
            .args(extra)
            .env_remove("S3SEAL_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let config = path("s3seal.toml").display().to_string();

    // No config: nothing to fetch with, and the message names the seal's object.
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&seal_name), "{stderr}");
    assert!(!path("out").exists());

    // With the config: fetched, verified, decrypted.
    let (code, stderr) = run(&["--config", &config]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&seal_name), "{stderr}");
    assert!(std::fs::read(path("out")).unwrap() == parts.concat());
    std::fs::remove_file(path("out")).unwrap();

    // `--seal` wins over the fetch: another object's seal does not verify.
    std::fs::write(path("wrong-seal"), b"s3seal-seal-1 not this one").unwrap();
    let wrong = path("wrong-seal").display().to_string();
    let (code, stderr) = run(&["--config", &config, "--seal", &wrong]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!path("out").exists());

    // The seal object gone: the answer names it and the status.
    direct
        .delete_object()
        .bucket(&b)
        .key(&seal_name)
        .send()
        .await
        .unwrap();
    let (code, stderr) = run(&["--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&seal_name) && stderr.contains("404"),
        "{stderr}"
    );
    assert!(!path("out").exists());
}
