//! Client-side encryption (`docs/format.md`, `docs/config.md`) through the proxy, against real
//! backends: round trips and ranges are byte-exact, the backend holds only ciphertext, and a
//! tampered object never yields wrong bytes.

use std::process::Command;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use s3seal::crypto::format::{ciphertext_len, Kek, KeyId};
use s3seal::cse::{EncryptionRules, Keyring, Rule, Unencrypted};

use crate::support::{self, backends, payload, raw, Harness, CLIENT_AK, CLIENT_SK, REGION};

/// `cse-*` buckets are encrypted (active key `k2`, old key `k1` still readable); `strict-*`
/// ones refuse unencrypted objects; every other bucket is plain.
pub(crate) fn rules() -> EncryptionRules {
    EncryptionRules::new([
        ("cse-*".to_owned(), Some(rules_ring())),
        (
            "strict-*".to_owned(),
            Some(Rule::new(keyring(), Unencrypted::Refuse)),
        ),
    ])
    .unwrap()
}

/// The rule of `cse-*` buckets: the test keyring, unencrypted objects passed through.
pub(crate) fn rules_ring() -> Rule {
    Rule::new(keyring(), Unencrypted::PassThrough)
}

/// Active key `k2`, old key `k1`.
fn keyring() -> Keyring {
    Keyring::new(
        Kek::new(KeyId::new("k2").unwrap(), &[2; 32]),
        vec![Kek::new(KeyId::new("k1").unwrap(), &[1; 32])],
    )
    .unwrap()
}

const SIZES: [usize; 7] = [0, 1, 65535, 65536, 65537, 3 * 65536, 3 * 1024 * 1024 + 5];

pub(crate) fn md5_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    Md5::digest(data).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Round trips of every size, what the backend holds, HEAD and listing sizes, the PUT's `ETag`.
async fn round_trips(h: &Harness) {
    let s3 = h.sdk();
    let direct = h.direct();
    let b = support::bucket("cse-rt");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    for (i, size) in SIZES.into_iter().enumerate() {
        let key = format!("obj-{size}");
        let data = payload(size, i as u64 + 1);
        let put = s3
            .put_object()
            .bucket(&b)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {size}: {e:?}"));
        // docs/format.md §6.1: the ETag HEAD and GET show too, not an MD5.
        assert!(put.e_tag().unwrap().ends_with("-s3seal\""), "{put:?}");

        let got = s3.get_object().bucket(&b).key(&key).send().await.unwrap();
        assert_eq!(got.e_tag(), put.e_tag(), "{size}");
        assert_eq!(
            got.content_length(),
            Some(i64::try_from(size).unwrap()),
            "{size}"
        );
        assert!(got
            .metadata()
            .is_none_or(|m| m.keys().all(|k| !k.starts_with("s3seal"))));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(
            bytes.as_ref() == data.as_slice(),
            "GET of {size} bytes differs"
        );

        let head = s3.head_object().bucket(&b).key(&key).send().await.unwrap();
        assert_eq!(
            head.content_length(),
            Some(i64::try_from(size).unwrap()),
            "HEAD {size}"
        );

        // docs/format.md §4 and §6: the backend holds ciphertext of the exact length, with
        // the metadata record, and no plaintext.
        let stored = direct
            .get_object()
            .bucket(&b)
            .key(&key)
            .send()
            .await
            .unwrap();
        let meta = stored.metadata().cloned().unwrap_or_default();
        assert_eq!(meta.get("s3seal-v").map(String::as_str), Some("2"));
        assert_eq!(meta.get("s3seal-kid").map(String::as_str), Some("k2"));
        assert_eq!(
            meta.get("s3seal-layout").map(String::as_str),
            Some("single")
        );
        let cipher = stored.body.collect().await.unwrap().into_bytes();
        assert_eq!(cipher.len() as u64, ciphertext_len(size as u64).unwrap());
        if size >= 32 {
            for at in [0, size / 2, size - 32] {
                assert!(
                    !contains(&cipher, &data[at..at + 32]),
                    "plaintext at {at} stored"
                );
            }
        }
    }

    let want: Vec<(String, i64)> = {
        let mut v: Vec<_> = SIZES
            .iter()
            .map(|s| (format!("obj-{s}"), i64::try_from(*s).unwrap()))
            .collect();
        v.sort();
        v
    };
    let v2 = s3.list_objects_v2().bucket(&b).send().await.unwrap();
    let got: Vec<_> = v2
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
        .collect();
    assert_eq!(got, want, "ListObjectsV2 sizes");
    let v1 = s3.list_objects().bucket(&b).send().await.unwrap();
    let got: Vec<_> = v1
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
        .collect();
    assert_eq!(got, want, "ListObjects sizes");
}

/// Every range form, across chunk boundaries, against the plaintext.
async fn ranges(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-range");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let size = 3 * 65536 + 1000;
    let data = payload(size, 9);
    s3.put_object()
        .bucket(&b)
        .key("r")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let n = size as u64;
    let cases: [(String, std::ops::Range<usize>); 9] = [
        ("bytes=0-0".into(), 0..1),
        (format!("bytes={}-", n - 1), size - 1..size),
        ("bytes=-100".into(), size - 100..size),
        ("bytes=65530-65545".into(), 65530..65546),
        ("bytes=65536-131071".into(), 65536..131_072),
        ("bytes=100-".into(), 100..size),
        ("bytes=131000-200000000".into(), 131_000..size),
        (format!("bytes=-{}", n + 10), 0..size),
        ("bytes=1-196607".into(), 1..196_608),
    ];
    for (spec, want) in cases {
        let got = s3
            .get_object()
            .bucket(&b)
            .key("r")
            .range(&spec)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        assert_eq!(
            got.content_length(),
            Some(i64::try_from(want.len()).unwrap()),
            "{spec}"
        );
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {}-{}/{n}", want.start, want.end - 1).as_str()),
            "{spec}"
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == &data[want.clone()], "{spec}: wrong bytes");
    }
    let err = s3
        .get_object()
        .bucket(&b)
        .key("r")
        .range(format!("bytes={n}-"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRange"), "{err:?}");
}

/// Copies between encrypted buckets keep the ciphertext and its record; REPLACE keeps the
/// record too.
async fn copies(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-copy");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(70_000, 3);
    s3.put_object()
        .bucket(&b)
        .key("src")
        .metadata("colour", "blue")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    s3.copy_object()
        .bucket(&b)
        .key("same")
        .copy_source(format!("{b}/src"))
        .send()
        .await
        .unwrap();
    s3.copy_object()
        .bucket(&b)
        .key("replaced")
        .copy_source(format!("{b}/src"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("colour", "red")
        .send()
        .await
        .unwrap();
    for (key, colour) in [("same", "blue"), ("replaced", "red")] {
        let got = s3.get_object().bucket(&b).key(key).send().await.unwrap();
        assert_eq!(
            got.metadata()
                .and_then(|m| m.get("colour"))
                .map(String::as_str),
            Some(colour)
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == data.as_slice(), "copy {key} differs");
    }
    let plain = support::bucket("plain-copy");
    s3.create_bucket().bucket(&plain).send().await.unwrap();
    // Into an unencrypted bucket the copy is decrypted (see `part_copies`).
    s3.copy_object()
        .bucket(&plain)
        .key("out")
        .copy_source(format!("{b}/src"))
        .send()
        .await
        .unwrap();
    let stored = h
        .direct()
        .get_object()
        .bucket(&plain)
        .key("out")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored
            .metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
    assert!(stored.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
}

/// Presigned PUT and GET go through the same stage.
async fn presigned(h: &Harness) {
    use aws_sdk_s3::presigning::PresigningConfig;
    let s3 = h.sdk();
    let b = support::bucket("cse-presign");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let conf = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap();
    let headers = |r: &aws_sdk_s3::presigning::PresignedRequest| -> Vec<(String, String)> {
        r.headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let data = "presigned secret text \u{2713}\n".repeat(5000);
    let put = s3
        .put_object()
        .bucket(&b)
        .key("p")
        .presigned(conf.clone())
        .await
        .unwrap();
    let (status, _, _) = raw::send(
        put.method(),
        put.uri(),
        &headers(&put),
        data.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let get = s3
        .get_object()
        .bucket(&b)
        .key("p")
        .presigned(conf)
        .await
        .unwrap();
    let (status, _, body) = raw::send(get.method(), get.uri(), &headers(&get), Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(body, data);
    let stored = h
        .direct()
        .get_object()
        .bucket(&b)
        .key("p")
        .send()
        .await
        .unwrap();
    let cipher = stored.body.collect().await.unwrap().into_bytes();
    assert!(!contains(&cipher, b"presigned secret text"));
}

/// docs/format.md §8: tampering with the stored object (data or record) makes the GET fail;
/// no wrong byte reaches the client. Unencrypted objects pass or are refused by rule.
async fn tampering_and_unencrypted(h: &Harness) {
    let s3 = h.sdk();
    let direct = h.direct();
    let b = support::bucket("cse-tamper");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(200_000, 5);
    // Each object is written through the proxy at its own key (a record opens only there,
    // docs/format.md §5.1), then its stored form is tampered with where it lies.
    let tamper =
        |key: &'static str,
         edit: fn(&mut std::collections::HashMap<String, String>, &mut Vec<u8>)| {
            let (s3, direct, b, data) = (s3.clone(), direct.clone(), b.clone(), data.clone());
            async move {
                s3.put_object()
                    .bucket(&b)
                    .key(key)
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .unwrap();
                let stored = direct
                    .get_object()
                    .bucket(&b)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let mut meta = stored.metadata().cloned().unwrap_or_default();
                let mut cipher = stored.body.collect().await.unwrap().into_bytes().to_vec();
                edit(&mut meta, &mut cipher);
                direct
                    .put_object()
                    .bucket(&b)
                    .key(key)
                    .set_metadata(Some(meta))
                    .body(ByteStream::from(cipher))
                    .send()
                    .await
                    .unwrap();
            }
        };
    tamper("flipped", |_, c| c[100_000] ^= 1).await;
    tamper("truncated", |_, c| c.truncate(2 * 65559)).await;
    tamper("reordered", |_, c| {
        let (first, rest) = c.split_at_mut(65559);
        first.swap_with_slice(&mut rest[..65559]);
    })
    .await;
    tamper("salt", |m, _| {
        m.insert("s3seal-salt".into(), STANDARD.encode([7u8; 32]));
    })
    .await;
    tamper("kid", |m, _| {
        m.insert("s3seal-kid".into(), "k9".into());
    })
    .await;
    for key in ["flipped", "truncated", "reordered", "salt", "kid"] {
        match s3.get_object().bucket(&b).key(key).send().await {
            // Refused before the head, or (when the first chunk fails) the stream is reset
            // before the head reaches the client.
            Err(e) => assert!(
                e.code() == Some("InternalError") || e.raw_response().is_none(),
                "{key}: {e:?}"
            ),
            Ok(got) => {
                // The head went out before the bad chunk was found: the body must abort, and
                // what arrived before is a prefix of the plaintext.
                let mut body = got.body;
                let mut received = Vec::new();
                let failed = loop {
                    match body.try_next().await {
                        Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                        Ok(None) => break false,
                        Err(_) => break true,
                    }
                };
                assert!(failed, "{key}: the body ended without error");
                assert!(data.starts_with(&received), "{key}: wrong bytes released");
            }
        }
    }
    // A range that only covers intact chunks of the flipped object still reads.
    let got = s3
        .get_object()
        .bucket(&b)
        .key("flipped")
        .range("bytes=0-99")
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes.as_ref() == &data[..100]);

    // An object written straight to the backend, before encryption: passes through here...
    direct
        .put_object()
        .bucket(&b)
        .key("legacy")
        .body(ByteStream::from_static(b"legacy plaintext"))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&b)
        .key("legacy")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"legacy plaintext"
    );
    // ...and is refused where the rule says so.
    let strict = support::bucket("strict");
    s3.create_bucket().bucket(&strict).send().await.unwrap();
    direct
        .put_object()
        .bucket(&strict)
        .key("legacy")
        .body(ByteStream::from_static(b"legacy plaintext"))
        .send()
        .await
        .unwrap();
    let err = s3
        .get_object()
        .bucket(&strict)
        .key("legacy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidObjectState"), "{err:?}");
}

/// Content-MD5 is checked against the plaintext; reserved metadata and multipart are refused.
async fn refusals(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-refuse");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(100_000, 11);
    let md5 = STANDARD.encode(Md5::digest(&data));
    s3.put_object()
        .bucket(&b)
        .key("md5")
        .content_md5(&md5)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let wrong = STANDARD.encode(Md5::digest(b"other"));
    let err = s3
        .put_object()
        .bucket(&b)
        .key("bad-md5")
        .content_md5(wrong)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("BadDigest"), "{err:?}");
    let err = s3
        .put_object()
        .bucket(&b)
        .key("reserved")
        .metadata("s3seal-v", "1")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidArgument"), "{err:?}");
    let err = s3
        .get_object()
        .bucket(&b)
        .key(".s3seal/seal/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
}

pub(crate) const MIB: usize = 1024 * 1024;

/// Uploads `sizes` as parts of one object, the last part first and the others in parallel.
pub(crate) async fn upload(
    s3: &aws_sdk_s3::Client,
    b: &str,
    key: &str,
    sizes: &[usize],
    seed: u64,
) -> Vec<u8> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let created = s3
        .create_multipart_upload()
        .bucket(b)
        .key(key)
        .metadata("colour", "green")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap().to_owned();
    assert!(id.contains("~s3seal~"), "{id}");
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, len)| payload(*len, seed + i as u64))
        .collect();
    let put = |n: usize| {
        let body = parts[n].clone();
        let (s3, id) = (s3.clone(), id.clone());
        let (b, key) = (b.to_owned(), key.to_owned());
        async move {
            let part = i32::try_from(n + 1).unwrap();
            let r = s3
                .upload_part()
                .bucket(b)
                .key(key)
                .upload_id(id)
                .part_number(part)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap_or_else(|e| panic!("part {part}: {e:?}"));
            CompletedPart::builder()
                .part_number(part)
                .e_tag(r.e_tag().unwrap())
                .build()
        }
    };
    let last = put(sizes.len() - 1).await;
    let tasks: Vec<_> = (0..sizes.len() - 1).map(|n| tokio::spawn(put(n))).collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    done.push(last);
    s3.complete_multipart_upload()
        .bucket(b)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    parts.concat()
}

/// docs/format.md §7: parts in any order and of any size, read back byte-exact across part
/// boundaries; the seal is verified before any byte is released.
async fn multipart(h: &Harness) {
    let s3 = h.sdk();
    let direct = h.direct();
    let b = support::bucket("cse-mp");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let sizes = [5 * MIB + 1000, 5 * MIB + 7, 12_345];
    let data = upload(&s3, &b, "odd", &sizes, 100).await;
    let n = data.len();

    let got = s3.get_object().bucket(&b).key("odd").send().await.unwrap();
    assert_eq!(got.content_length(), Some(i64::try_from(n).unwrap()));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("green")
    );
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
    let head = s3.head_object().bucket(&b).key("odd").send().await.unwrap();
    assert_eq!(head.content_length(), Some(i64::try_from(n).unwrap()));
    let boundary = sizes[0];
    for (spec, want) in [
        (
            format!("bytes={}-{}", boundary - 10, boundary + 10),
            boundary - 10..boundary + 11,
        ),
        ("bytes=0-0".to_owned(), 0..1),
        ("bytes=-100".to_owned(), n - 100..n),
        (
            format!("bytes={}-{}", boundary + 70_000, boundary + 140_000),
            boundary + 70_000..boundary + 140_001,
        ),
        (format!("bytes={}-", boundary - 1), boundary - 1..n),
    ] {
        let got = s3
            .get_object()
            .bucket(&b)
            .key("odd")
            .range(&spec)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {}-{}/{n}", want.start, want.end - 1).as_str())
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == &data[want], "{spec}: wrong bytes");
    }

    // Parts of a multiple of 64 KiB (as every common client uploads): exact listing sizes.
    let aligned = upload(&s3, &b, "aligned", &[5 * MIB, 5 * MIB, 3], 200).await;
    let list = s3.list_objects_v2().bucket(&b).send().await.unwrap();
    let listed: Vec<_> = list
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
        .collect();
    assert_eq!(listed.len(), 2, "the seals are hidden: {listed:?}");
    assert_eq!(
        listed[0],
        ("aligned".to_owned(), i64::try_from(aligned.len()).unwrap())
    );
    let got = s3
        .get_object()
        .bucket(&b)
        .key("aligned")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == aligned.as_slice());

    // A copy in another bucket carries the seal in its own record.
    let other = support::bucket("cse-mp2");
    s3.create_bucket().bucket(&other).send().await.unwrap();
    s3.copy_object()
        .bucket(&other)
        .key("copy")
        .copy_source(format!("{b}/odd"))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&other)
        .key("copy")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());

    // At the backend: ciphertext, each object's seal in its own record, nothing else.
    let stored = direct
        .get_object()
        .bucket(&b)
        .key("odd")
        .send()
        .await
        .unwrap();
    let cipher = stored.body.collect().await.unwrap().into_bytes();
    assert!(!contains(&cipher, &data[boundary..boundary + 32]));
    let all = direct.list_objects_v2().bucket(&b).send().await.unwrap();
    let keys: Vec<_> = all.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["aligned", "odd"], "no hidden objects");
    let mut seals = Vec::new();
    for key in ["odd", "aligned"] {
        let head = direct
            .head_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        let meta = head.metadata().unwrap();
        assert_eq!(meta.get("s3seal-v").map(String::as_str), Some("2"), "{key}");
        seals.push(meta.get("s3seal-seal").unwrap().clone());
    }

    // Swapping the two objects' seals, or removing one, makes the object unreadable.
    for (key, seal) in [("odd", &seals[1]), ("aligned", &seals[0])] {
        let head = direct
            .head_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        let mut meta = head.metadata().unwrap().clone();
        meta.insert("s3seal-seal".to_owned(), seal.clone());
        direct
            .copy_object()
            .bucket(&b)
            .key(key)
            .copy_source(format!("{b}/{key}"))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_metadata(Some(meta))
            .send()
            .await
            .unwrap();
        let err = s3
            .get_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InternalError"), "{key}: {err:?}");
    }
    let head = direct
        .head_object()
        .bucket(&b)
        .key("odd")
        .send()
        .await
        .unwrap();
    let mut meta = head.metadata().unwrap().clone();
    meta.remove("s3seal-seal");
    direct
        .copy_object()
        .bucket(&b)
        .key("odd")
        .copy_source(format!("{b}/odd"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .set_metadata(Some(meta))
        .send()
        .await
        .unwrap();
    let err = s3
        .get_object()
        .bucket(&b)
        .key("odd")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SlowDown"), "{err:?}");

    // Everything the client wrote deleted, the buckets go too.
    for (bucket, key) in [(&b, "odd"), (&b, "aligned"), (&other, "copy")] {
        s3.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    for bucket in [&b, &other] {
        s3.delete_bucket().bucket(bucket).send().await.unwrap();
    }
}

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                $scenario(&Harness::s3s_rules(rules()).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                $scenario(&Harness::with_backend_rules(backends::shared_moto(), rules()).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                $scenario(&Harness::with_backend_rules(backends::shared_rgw(), rules()).await)
                    .await;
            }
        }
    };
}

pub(crate) use per_backend;

per_backend!(round_trips);
per_backend!(ranges);
per_backend!(copies);
per_backend!(presigned);
per_backend!(tampering_and_unencrypted);
per_backend!(refusals);

/// moto 5.2 answers CompleteMultipartUpload with a `CompleteMultipartUploadResponse` root that
/// the SDK rejects (directly as through the proxy), so multipart runs against s3s-fs and RGW.
mod multipart {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        let h = Harness::s3s_rules(rules()).await;
        Box::pin(multipart(&h)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(multipart(&h)).await;
    }
}

/// `partNumber` reads (docs/config.md, "What each operation does"): part `n` of a multipart
/// object is its `n`th sealed part (docs/format.md §7), with plaintext `Content-Length`,
/// `Content-Range` and `x-amz-mp-parts-count`; a single-part object has part 1 only.
async fn part_reads(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-part");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let sizes = [5 * MIB + 1000, 5 * MIB + 7, 12_345];
    let data = upload(&s3, &b, "mp", &sizes, 300).await;
    let n = data.len();
    let mut start = 0;
    for (i, len) in sizes.into_iter().enumerate() {
        let part = i32::try_from(i + 1).unwrap();
        let want = start..start + len;
        let range = format!("bytes {}-{}/{n}", want.start, want.end - 1);
        let got = s3
            .get_object()
            .bucket(&b)
            .key("mp")
            .part_number(part)
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {part}: {e:?}"));
        assert_eq!(got.content_length(), Some(i64::try_from(len).unwrap()));
        assert_eq!(got.content_range(), Some(range.as_str()));
        assert_eq!(got.parts_count(), Some(3));
        assert!(got.e_tag().unwrap().ends_with("-s3seal\""));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == &data[want], "part {part}: wrong bytes");
        let head = s3
            .head_object()
            .bucket(&b)
            .key("mp")
            .part_number(part)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(i64::try_from(len).unwrap()));
        assert_eq!(head.parts_count(), Some(3));
        start += len;
    }
    let err = s3
        .get_object()
        .bucket(&b)
        .key("mp")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidPartNumber"), "{err:?}");

    let single = payload(100_000, 301);
    s3.put_object()
        .bucket(&b)
        .key("single")
        .body(ByteStream::from(single.clone()))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&b)
        .key("single")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(100_000));
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == single.as_slice());
    let err = s3
        .get_object()
        .bucket(&b)
        .key("single")
        .part_number(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidPartNumber"), "{err:?}");
}

/// ListParts shows each part's plaintext size (docs/format.md §4: a part is one segment).
async fn list_parts(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-lp");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let created = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("lp")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap();
    let sizes = [5 * MIB + 3, 70_000];
    for (i, len) in sizes.iter().enumerate() {
        s3.upload_part()
            .bucket(&b)
            .key("lp")
            .upload_id(id)
            .part_number(i32::try_from(i + 1).unwrap())
            .body(ByteStream::from(payload(*len, 7)))
            .send()
            .await
            .unwrap();
    }
    let listed = s3
        .list_parts()
        .bucket(&b)
        .key("lp")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.upload_id(), Some(id));
    let mut got: Vec<_> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    // s3s-fs lists parts in directory order, not by part number as S3 does; the proxy
    // passes the backend's order through, so compare as sets.
    got.sort_unstable();
    assert_eq!(
        got,
        vec![(1, i64::try_from(sizes[0]).unwrap()), (2, 70_000)]
    );
    s3.abort_multipart_upload()
        .bucket(&b)
        .key("lp")
        .upload_id(id)
        .send()
        .await
        .unwrap();
}

/// UploadPartCopy (docs/config.md, "What each operation does"): a copied range is read as
/// plaintext by the proxy and uploaded as the part, encrypted under the destination's part key,
/// from encrypted and unencrypted sources, and into unencrypted buckets too.
async fn part_copies(h: &Harness) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let s3 = h.sdk();
    let direct = h.direct();
    let enc = support::bucket("cse-pc");
    let plain = support::bucket("plain-pc");
    for b in [&enc, &plain] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let src = payload(6 * MIB + 100, 400);
    s3.put_object()
        .bucket(&enc)
        .key("src")
        .metadata("colour", "blue")
        .content_type("text/x-test")
        .body(ByteStream::from(src.clone()))
        .send()
        .await
        .unwrap();
    let legacy = payload(70_000, 401);
    s3.put_object()
        .bucket(&plain)
        .key("legacy")
        .body(ByteStream::from(legacy.clone()))
        .send()
        .await
        .unwrap();
    let middle = payload(5 * MIB + 1, 402);

    // Into an encrypted upload: a range of an encrypted object, an uploaded part, and a whole
    // object of an unencrypted bucket.
    let id = s3
        .create_multipart_upload()
        .bucket(&enc)
        .key("dest")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let copy_part = |bucket: String, part: i32, source: String, range: Option<String>| {
        let (s3, id) = (s3.clone(), id.clone());
        async move {
            s3.upload_part_copy()
                .bucket(bucket)
                .key("dest")
                .upload_id(id)
                .part_number(part)
                .copy_source(source)
                .set_copy_source_range(range)
                .send()
                .await
        }
    };
    let first = copy_part(
        enc.clone(),
        1,
        format!("{enc}/src"),
        Some(format!("bytes=1000-{}", 1000 + 5 * MIB - 1)),
    )
    .await
    .unwrap();
    let etag1 = first
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let second = s3
        .upload_part()
        .bucket(&enc)
        .key("dest")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from(middle.clone()))
        .send()
        .await
        .unwrap();
    let third = copy_part(enc.clone(), 3, format!("{plain}/legacy"), None)
        .await
        .unwrap();
    let etag3 = third
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    // A missing source is the source's error (conditions: `conditions`).
    let err = copy_part(enc.clone(), 4, format!("{enc}/missing"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"), "{err:?}");
    let parts = vec![
        CompletedPart::builder().part_number(1).e_tag(etag1).build(),
        CompletedPart::builder()
            .part_number(2)
            .e_tag(second.e_tag().unwrap())
            .build(),
        CompletedPart::builder().part_number(3).e_tag(etag3).build(),
    ];
    s3.complete_multipart_upload()
        .bucket(&enc)
        .key("dest")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let want = [&src[1000..1000 + 5 * MIB], &middle[..], &legacy[..]].concat();
    let got = s3
        .get_object()
        .bucket(&enc)
        .key("dest")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.content_length(),
        Some(i64::try_from(want.len()).unwrap())
    );
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == want.as_slice());
    let stored = direct
        .get_object()
        .bucket(&enc)
        .key("dest")
        .send()
        .await
        .unwrap();
    let cipher = stored.body.collect().await.unwrap().into_bytes();
    assert!(!contains(&cipher, &src[2000..2032]));
    assert!(!contains(&cipher, &legacy[1000..1032]));

    // Out of an encrypted bucket into an unencrypted upload: the part is the plaintext.
    let id = s3
        .create_multipart_upload()
        .bucket(&plain)
        .key("out")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let copied = s3
        .upload_part_copy()
        .bucket(&plain)
        .key("out")
        .upload_id(&id)
        .part_number(1)
        .copy_source(format!("{enc}/src"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket(&plain)
        .key("out")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(copied.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stored = direct
        .get_object()
        .bucket(&plain)
        .key("out")
        .send()
        .await
        .unwrap();
    assert!(stored.body.collect().await.unwrap().into_bytes().as_ref() == src.as_slice());

    // CopyObject across rules: a PutObject of the source's plaintext, with its metadata.
    s3.copy_object()
        .bucket(&plain)
        .key("decrypted")
        .copy_source(format!("{enc}/src"))
        .send()
        .await
        .unwrap();
    let stored = direct
        .get_object()
        .bucket(&plain)
        .key("decrypted")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored
            .metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(stored.content_type(), Some("text/x-test"));
    assert!(stored.body.collect().await.unwrap().into_bytes().as_ref() == src.as_slice());
    let copied = s3
        .copy_object()
        .bucket(&enc)
        .key("encrypted")
        .copy_source(format!("{plain}/legacy"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("colour", "red")
        .send()
        .await
        .unwrap();
    let shown = copied
        .copy_object_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let got = s3
        .get_object()
        .bucket(&enc)
        .key("encrypted")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(shown.as_str()));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("red")
    );
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == legacy.as_slice());
    let stored = direct
        .get_object()
        .bucket(&enc)
        .key("encrypted")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored
            .metadata()
            .and_then(|m| m.get("s3seal-v"))
            .map(String::as_str),
        Some("2")
    );
    let cipher = stored.body.collect().await.unwrap().into_bytes();
    assert!(!contains(&cipher, &legacy[1000..1032]));
}

/// `GetObjectAttributes` (docs/config.md): written by the proxy from a HEAD and the seal, so it
/// works on backends without it (s3s-fs, RGW 16): plaintext size, HEAD's `ETag`, plaintext part
/// sizes, and never a checksum of the ciphertext.
async fn attributes(h: &Harness) {
    use aws_sdk_s3::types::ObjectAttributes as A;
    let s3 = h.sdk();
    let b = support::bucket("cse-attr");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(200_001, 500);
    s3.put_object()
        .bucket(&b)
        .key("single")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap();
    let sizes = [5 * MIB + 1000, 5 * MIB + 7, 12_345];
    let mp = upload(&s3, &b, "mp", &sizes, 501).await;
    for (key, size) in [("single", 200_001), ("mp", mp.len())] {
        let head = s3.head_object().bucket(&b).key(key).send().await.unwrap();
        let got = s3
            .get_object_attributes()
            .bucket(&b)
            .key(key)
            .object_attributes(A::ObjectSize)
            .object_attributes(A::Etag)
            .object_attributes(A::Checksum)
            .object_attributes(A::ObjectParts)
            .object_attributes(A::StorageClass)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(
            got.object_size(),
            Some(i64::try_from(size).unwrap()),
            "{key}"
        );
        assert_eq!(
            got.e_tag(),
            Some(head.e_tag().unwrap().trim_matches('"')),
            "{key}"
        );
        assert!(got.checksum().is_none(), "{key}: {:?}", got.checksum());
        assert!(got.last_modified().is_some());
        if key == "mp" {
            let parts = got.object_parts().unwrap();
            assert_eq!(parts.total_parts_count(), Some(3));
            let listed: Vec<_> = parts
                .parts()
                .iter()
                .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
                .collect();
            let want: Vec<_> = (1..)
                .zip(sizes.iter().map(|s| i64::try_from(*s).unwrap()))
                .collect();
            assert_eq!(listed, want);
        } else {
            assert!(got.object_parts().is_none());
        }
    }
    let page = s3
        .get_object_attributes()
        .bucket(&b)
        .key("mp")
        .object_attributes(A::ObjectParts)
        .max_parts(1)
        .part_number_marker("1")
        .send()
        .await
        .unwrap();
    let parts = page.object_parts().unwrap();
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(parts.parts()[0].part_number(), Some(2));
    let err = s3
        .get_object_attributes()
        .bucket(&b)
        .key("missing")
        .object_attributes(A::ObjectSize)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"), "{err:?}");
}

/// `DeleteObject` and `DeleteObjects` pass through; the objects are gone through the proxy and at
/// the backend. Seals stay (docs/format.md §7 says why).
async fn deletes(h: &Harness) {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let s3 = h.sdk();
    let b = support::bucket("cse-del");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    for key in ["a", "b", "c"] {
        s3.put_object()
            .bucket(&b)
            .key(key)
            .body(ByteStream::from(payload(70_000, 600)))
            .send()
            .await
            .unwrap();
    }
    upload(&s3, &b, "mp", &[5 * MIB, 100], 601).await;
    s3.delete_object().bucket(&b).key("a").send().await.unwrap();
    let ids = ["b", "c", "mp"]
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .to_vec();
    let deleted = s3
        .delete_objects()
        .bucket(&b)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut keys: Vec<_> = deleted.deleted().iter().filter_map(|d| d.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["b", "c", "mp"]);
    assert!(deleted.errors().is_empty(), "{:?}", deleted.errors());
    for key in ["a", "b", "mp"] {
        let err = s3
            .get_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NoSuchKey"), "{key}: {err:?}");
    }
    let listed = s3.list_objects_v2().bucket(&b).send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    assert_eq!(listed.key_count(), Some(0));
    // Nothing is left at the backend either: the seal went with its object (issue 15: the
    // Node SDK saw KeyCount 1), and the bucket deletes.
    let stored = h
        .direct()
        .list_objects_v2()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.key_count(), Some(0), "{:?}", stored.contents());
    s3.delete_bucket().bucket(&b).send().await.unwrap();
}

/// Conditional reads (If-Modified-Since, If-Unmodified-Since, If-Match) on encrypted objects,
/// whole and ranged (the range's planning HEAD carries them too), and on copy sources. Run
/// against backends that evaluate conditions (moto, RGW).
async fn conditions(h: &Harness) {
    use aws_smithy_types::DateTime;
    let s3 = h.sdk();
    let b = support::bucket("cse-cond");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(150_000, 700);
    s3.put_object()
        .bucket(&b)
        .key("c")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now();
    let past = DateTime::from(now - std::time::Duration::from_secs(3600));
    let future = DateTime::from(now + std::time::Duration::from_secs(3600));
    let status = |e: &aws_sdk_s3::error::SdkError<_, _>| {
        e.raw_response()
            .map(|r: &aws_smithy_runtime_api::http::Response| r.status().as_u16())
    };
    for range in [None, Some("bytes=70000-70099")] {
        let want = range.map_or(&data[..], |_| &data[70_000..70_100]);
        let get = || {
            s3.get_object()
                .bucket(&b)
                .key("c")
                .set_range(range.map(str::to_owned))
        };
        let got = get().if_modified_since(past).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == want);
        let got = get().if_unmodified_since(future).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == want);
        let err = get().if_modified_since(future).send().await.unwrap_err();
        assert_eq!(status(&err), Some(304), "{range:?}: {err:?}");
        let err = get().if_unmodified_since(past).send().await.unwrap_err();
        assert_eq!(status(&err), Some(412), "{range:?}: {err:?}");
        let etag = s3.head_object().bucket(&b).key("c").send().await.unwrap();
        let got = get().if_match(etag.e_tag().unwrap()).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == want);
        let err = get()
            .if_none_match(etag.e_tag().unwrap())
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(304), "{range:?}: {err:?}");
    }
    let err = s3
        .head_object()
        .bucket(&b)
        .key("c")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(304),
        "{err:?}"
    );

    // A copied part's source conditions.
    let id = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("dest")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let copy = || {
        s3.upload_part_copy()
            .bucket(&b)
            .key("dest")
            .upload_id(&id)
            .part_number(1)
            .copy_source(format!("{b}/c"))
    };
    let err = copy()
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef-s3seal\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("PreconditionFailed"), "{err:?}");
    let err = copy()
        .copy_source_if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("PreconditionFailed"), "{err:?}");
    copy()
        .copy_source_if_modified_since(past)
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload()
        .bucket(&b)
        .key("dest")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
}

mod conditions {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        let h = Harness::with_backend_rules(backends::shared_moto(), rules()).await;
        Box::pin(conditions(&h)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(conditions(&h)).await;
    }
}

/// Reads `key` through the proxy and checks that it is refused: an error before the body, or a
/// body that aborts. What arrived before the abort must be a prefix of `legit` (the plaintext
/// of the object whose record the key carries): no unauthenticated byte reaches the client
/// (docs/format.md §8, "Integrity of every byte the proxy releases").
async fn assert_refused(s3: &aws_sdk_s3::Client, b: &str, key: &str, legit: &[u8]) {
    match s3.get_object().bucket(b).key(key).send().await {
        Err(e) => assert!(
            e.code() == Some("InternalError") || e.raw_response().is_none(),
            "{key}: {e:?}"
        ),
        Ok(got) => {
            let mut body = got.body;
            let mut received = Vec::new();
            let failed = loop {
                match body.try_next().await {
                    Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            assert!(failed, "{key}: the body ended without error");
            assert!(legit.starts_with(&received), "{key}: wrong bytes released");
        }
    }
}

/// Tampering by someone with write access to the backend, each case written straight to it:
/// a chunk spliced from another object (docs/format.md §3, "splicing"), another object's
/// record on this object's data (§5.1, §8 "Metadata integrity"), whole parts reordered,
/// swapped in from another multipart object or dropped (§7, §8 "Whole-part drop, reorder and
/// substitution"), a bit flipped in a later part and a multipart object cut short (§3). Each
/// is refused and releases no unauthenticated plaintext.
async fn tampering_parts(h: &Harness) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use std::collections::HashMap;
    let s3 = h.sdk();
    let direct = h.direct();
    let b = support::bucket("cse-forge");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let stored = |key: &'static str| {
        let (direct, b) = (direct.clone(), b.clone());
        async move {
            let got = direct
                .get_object()
                .bucket(&b)
                .key(key)
                .send()
                .await
                .unwrap();
            let meta = got.metadata().cloned().unwrap_or_default();
            (
                got.body.collect().await.unwrap().into_bytes().to_vec(),
                meta,
            )
        }
    };
    let put_direct = |key: &'static str, body: Vec<u8>, meta: HashMap<String, String>| {
        let (direct, b) = (direct.clone(), b.clone());
        async move {
            direct
                .put_object()
                .bucket(&b)
                .key(key)
                .set_metadata(Some(meta))
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        }
    };
    // A multipart object assembled at the backend from ciphertext parts, under `meta`.
    let assemble = |key: &'static str, parts: Vec<Vec<u8>>, meta: HashMap<String, String>| {
        let (direct, b) = (direct.clone(), b.clone());
        async move {
            let id = direct
                .create_multipart_upload()
                .bucket(&b)
                .key(key)
                .set_metadata(Some(meta))
                .send()
                .await
                .unwrap()
                .upload_id()
                .unwrap()
                .to_owned();
            let mut done = Vec::new();
            for (i, body) in parts.into_iter().enumerate() {
                let n = i32::try_from(i + 1).unwrap();
                let r = direct
                    .upload_part()
                    .bucket(&b)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
                done.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .e_tag(r.e_tag().unwrap())
                        .build(),
                );
            }
            direct
                .complete_multipart_upload()
                .bucket(&b)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(done))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    };

    // Single-part objects: a chunk of y spliced into x at the same position; y's record on
    // x's data.
    let plain_x = payload(300_000, 800);
    let plain_y = payload(300_000, 801);
    for (key, data) in [("x", &plain_x), ("y", &plain_y)] {
        s3.put_object()
            .bucket(&b)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    let (x_cipher, x_meta) = stored("x").await;
    let (y_cipher, y_meta) = stored("y").await;
    let chunk = 65_559;
    let mut spliced = x_cipher.clone();
    spliced[chunk..2 * chunk].copy_from_slice(&y_cipher[chunk..2 * chunk]);
    // Each forgery lies where its record was written: a record opens only at its own key.
    put_direct("x", spliced, x_meta.clone()).await;
    assert_refused(&s3, &b, "x", &plain_x).await;
    put_direct("y", x_cipher.clone(), y_meta.clone()).await;
    assert_refused(&s3, &b, "y", &plain_y).await;

    // Two multipart objects of two equal parts each.
    let sizes = [5 * MIB, 5 * MIB];
    let plain_a = upload(&s3, &b, "a", &sizes, 810).await;
    upload(&s3, &b, "b", &sizes, 820).await;
    let (a_cipher, a_meta) = stored("a").await;
    let (b_cipher, _) = stored("b").await;
    let part = usize::try_from(ciphertext_len(5 * MIB as u64).unwrap()).unwrap();
    let (a1, a2) = (a_cipher[..part].to_vec(), a_cipher[part..].to_vec());
    let b1 = b_cipher[..part].to_vec();
    let mut flipped = a2.clone();
    flipped[3 * chunk + 5] ^= 0x80;
    let cut = a2[..a2.len() - chunk].to_vec();
    // The last one, b's first part in place of a's, stays for the ranges below.
    for parts in [
        vec![a2.clone(), a1.clone()],
        vec![a1.clone()],
        vec![a1.clone(), flipped],
        vec![a1.clone(), cut],
        vec![b1.clone(), a2.clone()],
    ] {
        assemble("a", parts, a_meta.clone()).await;
        assert_refused(&s3, &b, "a", &plain_a).await;
    }
    // A range inside a substituted part fails too; one inside the intact part reads.
    let err = s3
        .get_object()
        .bucket(&b)
        .key("a")
        .range("bytes=100-199")
        .send()
        .await;
    match err {
        Err(e) => assert!(
            e.code() == Some("InternalError") || e.raw_response().is_none(),
            "{e:?}"
        ),
        Ok(got) => assert!(got.body.collect().await.is_err()),
    }
    let got = s3
        .get_object()
        .bucket(&b)
        .key("a")
        .range(format!("bytes={}-{}", 5 * MIB + 10, 5 * MIB + 109))
        .send()
        .await
        .unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes.as_ref() == &plain_a[5 * MIB + 10..5 * MIB + 110]);
}

/// Multipart scenarios run against s3s-fs and RGW (see `mod multipart`).
macro_rules! multipart_backends {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                let h = Harness::s3s_rules(rules()).await;
                Box::pin($scenario(&h)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
                Box::pin($scenario(&h)).await;
            }
        }
    };
}

pub(crate) use multipart_backends;

multipart_backends!(part_reads);
multipart_backends!(list_parts);
multipart_backends!(part_copies);
multipart_backends!(attributes);
multipart_backends!(deletes);
multipart_backends!(tampering_parts);

/// The aws cli and boto3, unchanged, against an encrypted bucket.
/// The aws cli and boto3 on every backend, ending as a user's cleanup does: every object
/// deleted, then the bucket, which nothing of the proxy's keeps alive (docs/format.md §7).
async fn aws_cli_and_boto3(h: &Harness) {
    let dir = tempfile::tempdir().unwrap();
    let b = support::bucket("cse-cli");
    // Above the cli's 8 MiB multipart threshold: three parts, uploaded in parallel.
    let data = payload(20 * MIB + 11, 77);
    let src = dir.path().join("in.bin");
    std::fs::write(&src, &data).unwrap();
    let run = |args: Vec<String>| {
        let mut cmd = Command::new("aws");
        backends::client_env(&mut cmd, Some(&support::ca_pem()));
        cmd.env("AWS_ACCESS_KEY_ID", CLIENT_AK)
            .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
            .env("AWS_DEFAULT_REGION", REGION)
            .arg("--endpoint-url")
            .arg(h.endpoint())
            .args(args);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
                .unwrap();
            assert!(
                out.status.success(),
                "aws failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    run(vec!["s3".into(), "mb".into(), format!("s3://{b}")]).await;
    run(vec![
        "s3".into(),
        "cp".into(),
        src.display().to_string(),
        format!("s3://{b}/in.bin"),
    ])
    .await;
    let back = dir.path().join("back.bin");
    run(vec![
        "s3".into(),
        "cp".into(),
        format!("s3://{b}/in.bin"),
        back.display().to_string(),
    ])
    .await;
    assert!(
        std::fs::read(&back).unwrap() == data,
        "aws s3 cp round trip differs"
    );
    let ls = run(vec!["s3".into(), "ls".into(), format!("s3://{b}/")]).await;
    assert!(ls.contains(&format!("{} in.bin", data.len())), "{ls}");

    let script = r#"
import sys, boto3, hashlib
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
b = sys.argv[2]
data = bytes(range(256)) * 1000
r = s3.put_object(Bucket=b, Key="boto", Body=data)
assert r["ETag"] == s3.head_object(Bucket=b, Key="boto")["ETag"], r["ETag"]
assert r["ETag"] != '"%s"' % hashlib.md5(data).hexdigest(), r["ETag"]
assert s3.get_object(Bucket=b, Key="boto")["Body"].read() == data
part = s3.get_object(Bucket=b, Key="boto", Range="bytes=65530-65600", ChecksumMode="ENABLED")
assert part["Body"].read() == data[65530:65601]
assert s3.head_object(Bucket=b, Key="boto")["ContentLength"] == len(data)
print("boto3 cse ok")
"#;
    let mut cmd = Command::new("python3");
    backends::client_env(&mut cmd, Some(&support::ca_pem()));
    cmd.env("AWS_ACCESS_KEY_ID", CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
        .env("AWS_DEFAULT_REGION", REGION)
        .arg("-c")
        .arg(script)
        .arg(h.endpoint())
        .arg(&b);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("boto3 cse ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(vec![
        "s3".into(),
        "rm".into(),
        "--recursive".into(),
        format!("s3://{b}"),
    ])
    .await;
    run(vec!["s3".into(), "rb".into(), format!("s3://{b}")]).await;
    let err = h.sdk().head_bucket().bucket(&b).send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{err:?}"
    );
}

per_backend!(aws_cli_and_boto3);

/// `s3seal decrypt` recovers objects downloaded straight from the backend, with only the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_decrypt() {
    let h = Harness::s3s_rules(rules()).await;
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-offline");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let single = payload(200_000, 31);
    s3.put_object()
        .bucket(&b)
        .key("single")
        .body(ByteStream::from(single.clone()))
        .send()
        .await
        .unwrap();
    let multi = upload(&s3, &b, "multi", &[5 * MIB + 3, 70_000], 40).await;

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("k1"), STANDARD.encode([1u8; 32])).unwrap();
    std::fs::write(path("k2"), STANDARD.encode([2u8; 32])).unwrap();
    for (key, json) in [("single", false), ("multi", true)] {
        let stored = direct
            .get_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        let meta = stored.metadata().cloned().unwrap_or_default();
        // Header lines for one, `head-object`-style JSON for the other.
        let text = if json {
            let fields: Vec<String> = meta
                .iter()
                .map(|(k, v)| format!("\"{k}\": \"{v}\""))
                .collect();
            format!(
                "{{\"ContentLength\": 1, \"Metadata\": {{{}}}}}",
                fields.join(", ")
            )
        } else {
            meta.iter().fold(String::new(), |mut s, (k, v)| {
                use std::fmt::Write as _;
                let _ = writeln!(s, "x-amz-meta-{k}: {v}");
                s
            })
        };
        std::fs::write(path(&format!("{key}.meta")), text).unwrap();
        let cipher = stored.body.collect().await.unwrap().into_bytes();
        std::fs::write(path(&format!("{key}.bin")), cipher).unwrap();
    }
    // The multipart object's seal is in its metadata: no other file is needed.
    let run_at = |key: &str, keys: &[&str], place: Option<(&str, &str)>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3seal"));
        cmd.arg("decrypt")
            .arg("--in")
            .arg(path(&format!("{key}.bin")))
            .arg("--metadata")
            .arg(path(&format!("{key}.meta")))
            .arg("--out")
            .arg(path(&format!("{key}.out")));
        if let Some((bucket, object)) = place {
            cmd.arg("--bucket").arg(bucket).arg("--object").arg(object);
        }
        for k in keys {
            cmd.arg("--key").arg(format!("{k}={}", path(k).display()));
        }
        cmd.output().unwrap()
    };
    let run = |key: &str, keys: &[&str]| run_at(key, keys, Some((b.as_str(), key)));
    // The record is bound to where it was stored: without the place, or at another, nothing.
    for place in [None, Some((b.as_str(), "elsewhere"))] {
        let out = run_at("single", &["k2"], place);
        assert!(!out.status.success(), "{place:?}");
        assert!(!path("single.out").exists());
    }
    // Only the old key: the objects were written with k2, so nothing is written.
    let out = run("single", &["k1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("k2"));
    assert!(!path("single.out").exists());
    for (key, data) in [("single", &single), ("multi", &multi)] {
        let out = run(key, &["k1", "k2"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::read(path(&format!("{key}.out"))).unwrap() == *data,
            "{key}"
        );
    }
    assert!(direct
        .list_objects_v2()
        .bucket(&b)
        .prefix(".s3seal/")
        .send()
        .await
        .unwrap()
        .contents()
        .is_empty());
    // A flipped byte: refused, and no output file.
    let mut bad = std::fs::read(path("single.bin")).unwrap();
    bad[150_000] ^= 1;
    std::fs::write(path("single.bin"), bad).unwrap();
    std::fs::remove_file(path("single.out")).unwrap();
    let out = run("single", &["k2"]);
    assert!(!out.status.success());
    assert!(!path("single.out").exists());
}

/// rclone, unchanged: its upload check compares the PUT's `ETag` with the MD5 of what it sent
/// (the proxy answers with the plaintext's MD5); downloads and `check` find no MD5 in the
/// marked `ETag`s of HEAD and listings, so they compare sizes, which are the plaintext's
/// (see the `ETag` paragraph of docs/config.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_round_trip() {
    let h = Harness::s3s_rules(rules()).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("src");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("a.txt"), b"hello rclone").unwrap();
    std::fs::write(local.join("empty"), b"").unwrap();
    std::fs::write(local.join("sub/b.bin"), payload(3 * MIB + 17, 5)).unwrap();
    let b = support::bucket("cse-rclone");
    let remote = format!("proxy:{b}");
    let rclone = |args: Vec<String>| {
        let mut c = Command::new("rclone");
        backends::client_env(&mut c, Some(&support::ca_pem()));
        // rclone 1.60 reads the CA from SSL_CERT_FILE only (see clients.rs).
        c.env_remove("AWS_CA_BUNDLE")
            .args(args)
            .arg("--config")
            .arg(dir.path().join("none.conf"))
            .env("RCLONE_CONFIG_PROXY_TYPE", "s3")
            .env("RCLONE_CONFIG_PROXY_PROVIDER", "Other")
            .env("RCLONE_CONFIG_PROXY_ENDPOINT", h.endpoint())
            .env("RCLONE_CONFIG_PROXY_ACCESS_KEY_ID", CLIENT_AK)
            .env("RCLONE_CONFIG_PROXY_SECRET_ACCESS_KEY", CLIENT_SK)
            .env("RCLONE_CONFIG_PROXY_REGION", REGION)
            .env("RCLONE_CONFIG_PROXY_FORCE_PATH_STYLE", "true");
        async move {
            let out = tokio::task::spawn_blocking(move || c.output())
                .await
                .unwrap()
                .unwrap();
            assert!(
                out.status.success(),
                "rclone failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let src = local.display().to_string();
    rclone(vec!["mkdir".into(), remote.clone()]).await;
    rclone(vec!["copy".into(), src.clone(), remote.clone()]).await;
    rclone(vec![
        "check".into(),
        "--size-only".into(),
        src.clone(),
        remote.clone(),
    ])
    .await;
    let back = dir.path().join("back");
    rclone(vec![
        "copy".into(),
        remote.clone(),
        back.display().to_string(),
    ])
    .await;
    for name in ["a.txt", "empty", "sub/b.bin"] {
        assert!(
            std::fs::read(local.join(name)).unwrap() == std::fs::read(back.join(name)).unwrap(),
            "{name} differs"
        );
    }
}

/// Rotation: objects wrapped with a key that became an old key stay readable; without it they
/// are refused, never served as ciphertext. Two proxies share one moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_moto() {
    let only = |active: (&str, u8), old: Option<(&str, u8)>| {
        let kek = |(id, byte): (&str, u8)| Kek::new(KeyId::new(id).unwrap(), &[byte; 32]);
        let ring = Keyring::new(kek(active), old.into_iter().map(kek).collect()).unwrap();
        EncryptionRules::new([(
            "cse-*".to_owned(),
            Some(Rule::new(ring, Unencrypted::PassThrough)),
        )])
        .unwrap()
    };
    let moto = backends::shared_moto();
    let before = Harness::with_backend_rules(moto, only(("k1", 1), None)).await;
    let b = support::bucket("cse-rotate");
    let s3 = before.sdk();
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(100_000, 8);
    s3.put_object()
        .bucket(&b)
        .key("old")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();

    let after = Harness::with_backend_rules(moto, only(("k2", 2), Some(("k1", 1)))).await;
    let s3 = after.sdk();
    s3.put_object()
        .bucket(&b)
        .key("new")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    for key in ["old", "new"] {
        let got = s3.get_object().bucket(&b).key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
    }
    let kid = |key: &'static str| {
        let direct = after.direct();
        let b = b.clone();
        async move {
            let head = direct
                .head_object()
                .bucket(&b)
                .key(key)
                .send()
                .await
                .unwrap();
            head.metadata().and_then(|m| m.get("s3seal-kid")).cloned()
        }
    };
    assert_eq!(kid("old").await.as_deref(), Some("k1"));
    assert_eq!(kid("new").await.as_deref(), Some("k2"));

    let forgotten = Harness::with_backend_rules(moto, only(("k2", 2), None)).await;
    let err = forgotten
        .sdk()
        .get_object()
        .bucket(&b)
        .key("old")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"), "{err:?}");
}

/// `encryption` and an `sse-s3` rule on one bucket: the proxy encrypts, then the backend does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sse_s3_moto() {
    use s3seal::policy::{RawSseRule, SsePolicies};
    let raw: RawSseRule = toml::from_str("rule = \"sse-s3\"").unwrap();
    let sse = SsePolicies::new([(
        "cse-*".to_owned(),
        raw.validate(|_| Err("no keys".to_owned())).unwrap(),
    )])
    .unwrap();
    let moto = backends::shared_moto();
    let upstream = support::UpstreamInfo::of(moto);
    let h = Harness::start_full(
        upstream,
        s3seal::cors::BucketRules::none(),
        sse,
        rules(),
        |_| {},
    )
    .await;
    let s3 = h.sdk();
    let b = support::bucket("cse-sse");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(150_000, 21);
    s3.put_object()
        .bucket(&b)
        .key("both")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket(&b).key("both").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data.as_slice());
    let got = s3
        .get_object()
        .bucket(&b)
        .key("both")
        .range("bytes=65000-70000")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == &data[65_000..70_001]);
    let head = h
        .direct()
        .head_object()
        .bucket(&b)
        .key("both")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption()
            .map(aws_sdk_s3::types::ServerSideEncryption::as_str),
        Some("AES256")
    );
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("s3seal-v"))
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        head.content_length(),
        i64::try_from(ciphertext_len(150_000).unwrap()).ok()
    );
}

/// `encryption` and an `sse-c` rule on one bucket are refused plainly (501 naming the
/// combination), before anything reaches the backend: the proxy's own requests for
/// client-side encryption would carry no SSE-C key (docs/config.md, "With `sse` on the same
/// bucket").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sse_c_is_refused() {
    use s3seal::policy::{RawSseRule, SsePolicies};
    let raw: RawSseRule =
        toml::from_str("rule = \"sse-c\"\nkey = { id = \"k\", env = \"UNUSED\" }").unwrap();
    let rule = raw
        .validate(|_| Ok(STANDARD.encode([9u8; 32]).into()))
        .unwrap();
    let sse = SsePolicies::new([("cse-*".to_owned(), rule)]).unwrap();
    let h = Harness::s3s_full(s3seal::cors::BucketRules::none(), sse, rules(), |_| {}).await;
    let b = support::bucket("cse-ssec");
    h.direct().create_bucket().bucket(&b).send().await.unwrap();
    let err = h
        .sdk()
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NotImplemented"), "{err:?}");
    assert!(
        err.message().is_some_and(|m| m.contains("sse-c")),
        "{err:?}"
    );
    let listed = h
        .direct()
        .list_objects_v2()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

/// Runs a client with the proxy's CA and the test client's keys; panics with its output if it
/// fails.
pub(crate) async fn client(mut cmd: Command, ca_bundle: bool) -> String {
    backends::client_env(&mut cmd, Some(&support::ca_pem()));
    if !ca_bundle {
        // rclone 1.60 reads the CA from SSL_CERT_FILE only (see clients.rs).
        cmd.env_remove("AWS_CA_BUNDLE");
    }
    cmd.env("AWS_ACCESS_KEY_ID", CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
        .env("AWS_DEFAULT_REGION", REGION);
    let desc = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{desc} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout + &stderr
}

/// s3cmd, unchanged: put (single-part, and multipart in 5 MiB parts), get, ls with plaintext
/// sizes, del. s3cmd compares a PUT's `ETag` with its MD5 unless the `ETag` contains a `-`
/// (docs/format.md §6.1), and skips the check on download for `ETag`s that are not MD5s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd_client() {
    let h = Harness::s3s_rules(rules()).await;
    let dir = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", h.proxy.addr.port());
    let cfg = dir.path().join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {CLIENT_AK}\nsecret_key = {CLIENT_SK}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = True\nca_certs_file = {}\ncheck_ssl_certificate = True\n\
             bucket_location = {REGION}\nsignature_v2 = False\nmultipart_chunk_size_mb = 5\n",
            support::ca_pem().display()
        ),
    )
    .unwrap();
    let b = support::bucket("cse-s3cmd");
    let s3cmd = |args: &[&str]| {
        let mut c = Command::new("s3cmd");
        c.arg("-c").arg(&cfg).args(args);
        c
    };
    client(s3cmd(&["mb", &format!("s3://{b}")]), true).await;
    let files = [("small.bin", 100_003), ("big.bin", 12 * MIB + 5)];
    for (i, (name, size)) in files.into_iter().enumerate() {
        let data = payload(size, 900 + i as u64);
        let src = dir.path().join(name);
        std::fs::write(&src, &data).unwrap();
        client(
            s3cmd(&["put", src.to_str().unwrap(), &format!("s3://{b}/{name}")]),
            true,
        )
        .await;
        let back = dir.path().join(format!("{name}.back"));
        client(
            s3cmd(&["get", &format!("s3://{b}/{name}"), back.to_str().unwrap()]),
            true,
        )
        .await;
        assert!(std::fs::read(&back).unwrap() == data, "{name} differs");
        let stored = h
            .direct()
            .get_object()
            .bucket(&b)
            .key(name)
            .send()
            .await
            .unwrap();
        let cipher = stored.body.collect().await.unwrap().into_bytes();
        assert!(!contains(&cipher, &data[1000..1032]), "{name} stored plain");
    }
    let ls = client(s3cmd(&["ls", &format!("s3://{b}/")]), true).await;
    for (name, size) in files {
        assert!(
            ls.lines()
                .any(|l| l.contains(name) && l.split_whitespace().any(|w| w == size.to_string())),
            "{ls}"
        );
    }
    client(s3cmd(&["del", &format!("s3://{b}/small.bin")]), true).await;
    let ls = client(s3cmd(&["ls", &format!("s3://{b}/")]), true).await;
    assert!(!ls.contains("small.bin") && ls.contains("big.bin"), "{ls}");
}

/// `rclone sync` then `rclone check` (sizes; rclone finds no common hash in the marked
/// `ETag`s) and `rclone check --download` (contents) report no differences, also after local
/// changes are synced (a new, a changed and a deleted file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_sync_check() {
    let h = Harness::s3s_rules(rules()).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("src");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("a.txt"), b"hello sync").unwrap();
    std::fs::write(local.join("empty"), b"").unwrap();
    std::fs::write(local.join("sub/b.bin"), payload(70_000, 1)).unwrap();
    std::fs::write(local.join("sub/big.bin"), payload(6 * MIB + 3, 2)).unwrap();
    let b = support::bucket("cse-sync");
    let remote = format!("proxy:{b}");
    let src = local.display().to_string();
    let rclone = |args: &[&str]| {
        let mut c = Command::new("rclone");
        c.args(args)
            .arg("--config")
            .arg(dir.path().join("none.conf"))
            .env("RCLONE_CONFIG_PROXY_TYPE", "s3")
            .env("RCLONE_CONFIG_PROXY_PROVIDER", "Other")
            .env("RCLONE_CONFIG_PROXY_ENDPOINT", h.endpoint())
            .env("RCLONE_CONFIG_PROXY_ACCESS_KEY_ID", CLIENT_AK)
            .env("RCLONE_CONFIG_PROXY_SECRET_ACCESS_KEY", CLIENT_SK)
            .env("RCLONE_CONFIG_PROXY_REGION", REGION)
            .env("RCLONE_CONFIG_PROXY_FORCE_PATH_STYLE", "true");
        c
    };
    client(rclone(&["mkdir", &remote]), false).await;
    for round in 0..2 {
        client(rclone(&["sync", &src, &remote]), false).await;
        let out = client(rclone(&["check", &src, &remote]), false).await;
        assert!(out.contains("0 differences found"), "round {round}: {out}");
        let out = client(rclone(&["check", "--download", &src, &remote]), false).await;
        assert!(out.contains("0 differences found"), "round {round}: {out}");
        if round == 0 {
            // Round two syncs a new file, a changed one (same size) and a deletion.
            std::fs::write(local.join("new.txt"), b"new").unwrap();
            std::fs::write(local.join("a.txt"), b"HELLO SYNC").unwrap();
            std::fs::remove_file(local.join("sub/b.bin")).unwrap();
        }
    }
    let listed = h.sdk().list_objects_v2().bucket(&b).send().await.unwrap();
    let mut keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a.txt", "empty", "new.txt", "sub/big.bin"]);
}

/// Round trips over seeded random sizes and random ranges of every form (docs/format.md §4),
/// single-part and multipart with odd and 64 KiB-aligned parts: byte-exact, with exact
/// `Content-Length` and `Content-Range`. Bounded: 24 objects, 8 ranges each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_round_trips() {
    use rand::{Rng, SeedableRng};
    let h = Harness::s3s_rules(rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("cse-prop");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let seed = 0x5EA1_2026;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let chunk = 65_536;
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..22u64 {
        let size = match i {
            0 => 0,
            1 => 1,
            2 => chunk - 1,
            3 => chunk,
            4 => chunk + 1,
            5 => 3 * MIB,
            _ => rng.random_range(0..4 * chunk * 3),
        };
        let key = format!("single-{i}");
        let data = payload(size, seed + i);
        s3.put_object()
            .bucket(&b)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        objects.push((key, data));
    }
    let odd = [
        5 * MIB + rng.random_range(1..chunk),
        rng.random_range(1..3 * chunk),
    ];
    objects.push((
        "mp-odd".into(),
        upload(&s3, &b, "mp-odd", &odd, seed + 100).await,
    ));
    let aligned = [5 * MIB, 5 * MIB, rng.random_range(1..2 * chunk)];
    objects.push((
        "mp-aligned".into(),
        upload(&s3, &b, "mp-aligned", &aligned, seed + 200).await,
    ));
    for (key, data) in &objects {
        let n = data.len();
        let got = s3.get_object().bucket(&b).key(key).send().await.unwrap();
        assert_eq!(
            got.content_length(),
            Some(i64::try_from(n).unwrap()),
            "{key}"
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == data.as_slice(), "{key}: GET differs");
        if n == 0 {
            continue;
        }
        for _ in 0..8 {
            let first = rng.random_range(0..n);
            let (spec, want) = match rng.random_range(0..3) {
                0 => {
                    let last = rng.random_range(first..n + 2 * chunk);
                    (format!("bytes={first}-{last}"), first..(last + 1).min(n))
                }
                1 => (format!("bytes={first}-"), first..n),
                _ => {
                    let suffix = rng.random_range(1..n + chunk);
                    (format!("bytes=-{suffix}"), n - suffix.min(n)..n)
                }
            };
            let got = s3
                .get_object()
                .bucket(&b)
                .key(key)
                .range(&spec)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} {spec}: {e:?}"));
            assert_eq!(
                got.content_range(),
                Some(format!("bytes {}-{}/{n}", want.start, want.end - 1).as_str()),
                "{key} {spec}"
            );
            assert_eq!(
                got.content_length(),
                Some(i64::try_from(want.len()).unwrap()),
                "{key} {spec}"
            );
            let bytes = got.body.collect().await.unwrap().into_bytes();
            assert!(bytes.as_ref() == &data[want], "{key} {spec}: wrong bytes");
        }
        let err = s3
            .get_object()
            .bucket(&b)
            .key(key)
            .range(format!("bytes={n}-"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidRange"), "{key}: {err:?}");
    }
}

/// The audit log names each use of a bucket's key (docs/operations.md, "Audit log of key
/// use"): the key id, the bucket and the object, on encryption and on decryption, and never
/// the key itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_use_is_audited() {
    crate::sse::capture_logs();
    let h = Harness::s3s_rules(rules()).await;
    let s3 = h.sdk();
    let b = support::bucket("cse-audit");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_object()
        .bucket(&b)
        .key("audited")
        .body(ByteStream::from(payload(1000, 5)))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&b)
        .key("audited")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 1000);
    let audited = |op: &str| {
        crate::sse::log_lines_with(&format!("bucket=\"{b}\""))
            .iter()
            .any(|l| {
                l.contains("key use")
                    && l.contains(&format!("operation=\"{op}\""))
                    && l.contains("object=\"audited\"")
                    && l.contains("key_id=\"k2\"")
            })
    };
    assert!(
        audited("encrypt"),
        "{:?}",
        crate::sse::log_lines_with("key use")
    );
    assert!(
        audited("decrypt"),
        "{:?}",
        crate::sse::log_lines_with("key use")
    );
    assert!(crate::sse::log_lines_with(&STANDARD.encode([2u8; 32])).is_empty());
}
