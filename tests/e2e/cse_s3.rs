//! Client-side encryption that clients cannot tell from plain S3 (issue 15): one `ETag` per
//! object version on every answer, conditions on that `ETag` (docs/format.md §6.1), multipart
//! completion as S3 answers it, `x-amz-copy-source-range` as S3 checks it, and sync clients
//! that transfer nothing the second time.

use std::process::Command;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::http::Response as RawResponse;

use crate::cse::{client, rules, MIB};
use crate::support::{self, backends, payload, Harness, CLIENT_AK, CLIENT_SK, REGION};

fn status<E>(e: &SdkError<E, RawResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// What a backend does not implement, beyond the core.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// Ignores `If-Match`/`If-None-Match` (s3s-fs).
    Conditions,
    /// Ignores `If-Match` on DELETE (RGW 16).
    DeleteConditions,
    /// Answers `CompleteMultipartUpload` with a root the SDK refuses (moto 5.2).
    MultipartAnswer,
    /// Has no `ListObjectVersions` (s3s-fs).
    Versions,
    /// Lists no `ETag`s (s3s-fs 0.14).
    ListedEtags,
}

type Backend = &'static [Gap];

const S3S_FS: Backend = &[
    Gap::Conditions,
    Gap::DeleteConditions,
    Gap::Versions,
    Gap::ListedEtags,
];
const MOTO: Backend = &[Gap::MultipartAnswer];
const RGW: Backend = &[Gap::DeleteConditions];

/// Creates an upload of `key` and uploads `parts` in order; the parts as the completion
/// names them, and the upload id.
async fn start_upload(
    s3: &aws_sdk_s3::Client,
    b: &str,
    key: &str,
    parts: &[&[u8]],
) -> (String, Vec<CompletedPart>) {
    let id = s3
        .create_multipart_upload()
        .bucket(b)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let r = s3
            .upload_part()
            .bucket(b)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(part.to_vec()))
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
    (id, done)
}

fn completion(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

/// docs/format.md §6.1: the `ETag` a PUT answers is the one HEAD, GET, every listing and a
/// copy's HEAD show, and conditions with it hold as on S3. Old code: the PUT answered the
/// plaintext's MD5, which matched nothing.
async fn one_etag(h: &Harness, backend: Backend) {
    let s3 = h.sdk();
    let b = support::bucket("cse-etag");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(150_000, 1500);
    let put = s3
        .put_object()
        .bucket(&b)
        .key("o")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    assert!(etag.ends_with("-s3seal\""), "{etag}");
    let head = s3.head_object().bucket(&b).key("o").send().await.unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()), "HEAD");
    let get = s3.get_object().bucket(&b).key("o").send().await.unwrap();
    assert_eq!(get.e_tag(), Some(etag.as_str()), "GET");
    let ranged = s3
        .get_object()
        .bucket(&b)
        .key("o")
        .range("bytes=70000-70099")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.e_tag(), Some(etag.as_str()), "ranged GET");
    let part = s3
        .get_object()
        .bucket(&b)
        .key("o")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(part.e_tag(), Some(etag.as_str()), "partNumber GET");

    // An object written around the proxy (legacy plaintext) shows one ETag as well.
    h.direct()
        .put_object()
        .bucket(&b)
        .key("legacy")
        .body(ByteStream::from_static(b"written before encryption was on"))
        .send()
        .await
        .unwrap();
    let legacy = s3
        .head_object()
        .bucket(&b)
        .key("legacy")
        .send()
        .await
        .unwrap();
    let legacy = legacy.e_tag().unwrap().to_owned();

    let copied = s3
        .copy_object()
        .bucket(&b)
        .key("copy")
        .copy_source(format!("{b}/o"))
        .send()
        .await
        .unwrap();
    let copy = copied
        .copy_object_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let head = s3
        .head_object()
        .bucket(&b)
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(copy.as_str()), "CopyObject");

    let mut want = vec![
        ("copy".to_owned(), copy.clone()),
        ("legacy".to_owned(), legacy.clone()),
        ("o".to_owned(), etag.clone()),
    ];
    if !backend.contains(&Gap::MultipartAnswer) {
        let (first, last) = (payload(5 * MIB + 3, 1501), payload(100, 1502));
        let (id, parts) = start_upload(&s3, &b, "mp", &[&first[..], &last[..]]).await;
        let done = s3
            .complete_multipart_upload()
            .bucket(&b)
            .key("mp")
            .upload_id(&id)
            .multipart_upload(completion(parts))
            .send()
            .await
            .unwrap();
        let mp = done.e_tag().unwrap().to_owned();
        let head = s3.head_object().bucket(&b).key("mp").send().await.unwrap();
        assert_eq!(head.e_tag(), Some(mp.as_str()), "CompleteMultipartUpload");
        want.push(("mp".to_owned(), mp));
    }
    want.sort();
    let want: Vec<_> = want
        .into_iter()
        .map(|(k, e)| (k, (!backend.contains(&Gap::ListedEtags)).then_some(e)))
        .collect();
    let v2 = s3.list_objects_v2().bucket(&b).send().await.unwrap();
    let got: Vec<_> = v2
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.e_tag().map(str::to_owned)))
        .collect();
    assert_eq!(got, want, "ListObjectsV2");
    let v1 = s3.list_objects().bucket(&b).send().await.unwrap();
    let got: Vec<_> = v1
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.e_tag().map(str::to_owned)))
        .collect();
    assert_eq!(got, want, "ListObjects");
    if !backend.contains(&Gap::Versions) {
        let versions = s3.list_object_versions().bucket(&b).send().await.unwrap();
        let got: Vec<_> = versions
            .versions()
            .iter()
            .map(|o| (o.key().unwrap().to_owned(), o.e_tag().map(str::to_owned)))
            .collect();
        assert_eq!(got, want, "ListObjectVersions");
    }
    if !backend.contains(&Gap::Conditions) {
        conditions(&s3, &b, &etag, &legacy, &data, backend).await;
    }
}

/// `If-Match`/`If-None-Match` with the `ETag`s the proxy showed, on GET, HEAD, PUT, DELETE and a
/// copy source, hold exactly as S3 would evaluate them.
async fn conditions(
    s3: &aws_sdk_s3::Client,
    b: &str,
    etag: &str,
    legacy: &str,
    data: &[u8],
    backend: Backend,
) {
    let got = s3
        .get_object()
        .bucket(b)
        .key("o")
        .if_match(etag)
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == data);
    let err = s3
        .get_object()
        .bucket(b)
        .key("o")
        .if_none_match(etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(304), "{err:?}");
    if let Some(shown) = err.raw_response().and_then(|r| r.headers().get("etag")) {
        assert_eq!(shown, etag, "a 304's ETag");
    }
    let err = s3
        .head_object()
        .bucket(b)
        .key("o")
        .if_none_match(etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(304), "{err:?}");
    s3.head_object()
        .bucket(b)
        .key("o")
        .if_match(etag)
        .send()
        .await
        .unwrap();
    // The plaintext's MD5 is no ETag here (the old PUT answer), and neither is the backend's
    // ETag of a legacy object, which the client never sees.
    let md5 = format!("\"{}\"", crate::cse::md5_hex(data));
    let err = s3
        .get_object()
        .bucket(b)
        .key("o")
        .if_match(&md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(412), "{err:?}");
    let backend_legacy = legacy.replace("-s3seal", "");
    let err = s3
        .head_object()
        .bucket(b)
        .key("legacy")
        .if_match(&backend_legacy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(412), "{err:?}");
    s3.head_object()
        .bucket(b)
        .key("legacy")
        .if_match(legacy)
        .send()
        .await
        .unwrap();

    // Conditional writes.
    let put = || {
        s3.put_object()
            .bucket(b)
            .key("o")
            .body(ByteStream::from_static(b"second version"))
    };
    let err = put().if_none_match("*").send().await.unwrap_err();
    assert_eq!(status(&err), Some(412), "{err:?}");
    let second = put().if_match(etag).send().await.unwrap();
    let second = second.e_tag().unwrap().to_owned();
    let err = put().if_match(etag).send().await.unwrap_err();
    assert_eq!(status(&err), Some(412), "a stale ETag: {err:?}");
    assert_ne!(second, etag);
    s3.put_object()
        .bucket(b)
        .key("fresh")
        .if_none_match("*")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();

    // Copy-source conditions.
    let copy = || {
        s3.copy_object()
            .bucket(b)
            .key("copy2")
            .copy_source(format!("{b}/o"))
    };
    // The proxy evaluates them as well: RGW 16 ignores them on CopyObject.
    copy().copy_source_if_match(&second).send().await.unwrap();
    let err = copy()
        .copy_source_if_none_match(&second)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("PreconditionFailed"), "{err:?}");
    let err = copy().copy_source_if_match(etag).send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("PreconditionFailed"),
        "a stale ETag: {err:?}"
    );

    if !backend.contains(&Gap::DeleteConditions) {
        let err = s3
            .delete_object()
            .bucket(b)
            .key("o")
            .if_match(etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(412), "{err:?}");
        s3.delete_object()
            .bucket(b)
            .key("o")
            .if_match(&second)
            .send()
            .await
            .unwrap();
    }
}

mod one_etag {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        let h = Harness::s3s_rules(rules()).await;
        Box::pin(one_etag(&h, S3S_FS)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        let h = Harness::with_backend_rules(backends::shared_moto(), rules()).await;
        Box::pin(one_etag(&h, MOTO)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(one_etag(&h, RGW)).await;
    }
}

/// The keys the backend holds in `b`, the proxy's own included.
async fn stored_keys(h: &Harness, b: &str) -> Vec<String> {
    let listed = h.direct().list_objects_v2().bucket(b).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// CompleteMultipartUpload answers as S3 does (`docs/config.md`, "What each operation
/// does"): refusals write nothing; a completed upload completes again with the same object;
/// an aborted one is `NoSuchUpload`; a part uploaded twice with the same bytes completes with
/// either answer's `ETag`. Old code: every refusal was `InvalidPart` (`EntityTooSmall` after
/// writing a seal), a second completion and an empty list were `InvalidPart`, and the older
/// `ETag` of a part uploaded twice was `InvalidPart`.
async fn completion_semantics(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-done");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let (big, small) = (payload(5 * MIB + 1, 1600), payload(1000, 1601));
    let (id, parts) = start_upload(&s3, &b, "k", &[&big[..], &small[..]]).await;
    // ListParts shows the ETags UploadPart answered (s3s-fs lists none).
    let listed = s3
        .list_parts()
        .bucket(&b)
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    for (part, uploaded) in listed.parts().iter().zip(&parts) {
        if let Some(etag) = part.e_tag() {
            assert_eq!(Some(etag), uploaded.e_tag(), "UploadPart and ListParts");
        }
    }
    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket(&b)
            .key("k")
            .upload_id(&id)
            .multipart_upload(completion(parts))
    };
    let refused = [
        (Vec::new(), "MalformedXML", 400),
        (
            vec![parts[1].clone(), parts[0].clone()],
            "InvalidPartOrder",
            400,
        ),
        (
            vec![
                parts[0].clone(),
                CompletedPart::builder()
                    .part_number(3)
                    .e_tag(parts[1].e_tag().unwrap())
                    .build(),
            ],
            "InvalidPart",
            400,
        ),
        (
            vec![
                parts[0].clone(),
                CompletedPart::builder()
                    .part_number(2)
                    .e_tag(parts[0].e_tag().unwrap())
                    .build(),
            ],
            "InvalidPart",
            400,
        ),
        (
            vec![
                parts[0].clone(),
                CompletedPart::builder()
                    .part_number(2)
                    .e_tag("\"0123456789abcdef0123456789abcdef\"")
                    .build(),
            ],
            "InvalidPart",
            400,
        ),
    ];
    for (list, code, want) in refused {
        let err = complete(list.clone()).send().await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{list:?}: {err:?}");
        assert_eq!(status(&err), Some(want), "{list:?}");
    }
    // A part under 5 MiB that is not the last: the ciphertext is over 5 MiB, the plaintext not.
    let (small_id, small_parts) = start_upload(
        &s3,
        &b,
        "small",
        &[&payload(5 * MIB - 100, 1602)[..], &small[..]],
    )
    .await;
    let err = s3
        .complete_multipart_upload()
        .bucket(&b)
        .key("small")
        .upload_id(&small_id)
        .multipart_upload(completion(small_parts))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("EntityTooSmall"), "{err:?}");
    assert_eq!(
        stored_keys(h, &b).await,
        Vec::<String>::new(),
        "refusals wrote"
    );

    let done = complete(parts.clone()).send().await.unwrap();
    let etag = done.e_tag().unwrap().to_owned();
    assert_eq!(done.key(), Some("k"));
    // Completing again is S3's (and RGW's) 200 with the same object.
    let again = complete(parts.clone()).send().await.unwrap();
    assert_eq!(again.e_tag(), Some(etag.as_str()));
    assert_eq!(again.key(), Some("k"));
    let got = s3.get_object().bucket(&b).key("k").send().await.unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes.as_ref() == [&big[..], &small[..]].concat().as_slice());

    // Abort, then complete: NoSuchUpload.
    let (aborted, parts) = start_upload(&s3, &b, "k", &[&small[..]]).await;
    s3.abort_multipart_upload()
        .bucket(&b)
        .key("k")
        .upload_id(&aborted)
        .send()
        .await
        .unwrap();
    let err = s3
        .complete_multipart_upload()
        .bucket(&b)
        .key("k")
        .upload_id(&aborted)
        .multipart_upload(completion(parts))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"), "{err:?}");
    assert_eq!(status(&err), Some(404));
    // The completed object is untouched.
    let head = s3.head_object().bucket(&b).key("k").send().await.unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()));

    // A part number uploaded three times: the last upload to finish wins. As on S3, an ETag
    // of an upload with other bytes (here: another length) is InvalidPart, and one of an
    // upload with the same bytes (on S3 the same ETag; a retry whose first attempt finished
    // last) names the stored part.
    let (id, _) = start_upload(&s3, &b, "twice", &[]).await;
    let mut etags = Vec::new();
    let bodies = [
        payload(2000, 1603),
        payload(3000, 1604),
        payload(3000, 1604),
    ];
    for body in &bodies {
        let r = s3
            .upload_part()
            .bucket(&b)
            .key("twice")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        etags.push(r.e_tag().unwrap().to_owned());
    }
    let part = |etag: &str| {
        completion(vec![CompletedPart::builder()
            .part_number(1)
            .e_tag(etag)
            .build()])
    };
    let err = s3
        .complete_multipart_upload()
        .bucket(&b)
        .key("twice")
        .upload_id(&id)
        .multipart_upload(part(&etags[0]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidPart"), "a replaced part: {err:?}");
    assert_ne!(etags[1], etags[2]);
    s3.complete_multipart_upload()
        .bucket(&b)
        .key("twice")
        .upload_id(&id)
        .multipart_upload(part(&etags[1]))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&b)
        .key("twice")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == bodies[1].as_slice());
}

mod completion_semantics {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        let h = Harness::s3s_rules(rules()).await;
        Box::pin(completion_semantics(&h)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(completion_semantics(&h)).await;
    }
}

/// `x-amz-copy-source-range` is one closed range inside the source, as S3 requires:
/// anything else is `400 InvalidArgument`, from an encrypted or a plain source. Old code: a
/// malformed range copied the whole source, one past the end copied less.
async fn copy_source_ranges(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("cse-cr");
    let plain = support::bucket("plain-cr");
    for bucket in [&b, &plain] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
        s3.put_object()
            .bucket(bucket)
            .key("src")
            .body(ByteStream::from(payload(100_000, 1700)))
            .send()
            .await
            .unwrap();
    }
    let (id, _) = start_upload(&s3, &b, "dest", &[]).await;
    for source in [format!("{b}/src"), format!("{plain}/src")] {
        let copy = |range: &str| {
            s3.upload_part_copy()
                .bucket(&b)
                .key("dest")
                .upload_id(&id)
                .part_number(1)
                .copy_source(&source)
                .copy_source_range(range)
        };
        for range in [
            "bytes=10-",
            "bytes=-10",
            "bytes=20-10",
            "0-10",
            "bytes=0-1,5-9",
            "bytes=a-b",
        ] {
            let err = copy(range).send().await.unwrap_err();
            assert_eq!(
                err.code(),
                Some("InvalidArgument"),
                "{source} {range}: {err:?}"
            );
            assert!(
                err.message()
                    .unwrap_or_default()
                    .contains("bytes=first-last"),
                "{err:?}"
            );
        }
        for range in ["bytes=99990-100000", "bytes=100000-100010"] {
            let err = copy(range).send().await.unwrap_err();
            assert_eq!(
                err.code(),
                Some("InvalidArgument"),
                "{source} {range}: {err:?}"
            );
            assert_eq!(status(&err), Some(400), "{source} {range}");
        }
        let ok = copy("bytes=99990-99999").send().await.unwrap();
        let copied = ok.copy_part_result().unwrap().e_tag().unwrap();
        // The part's ETag is the same in ListParts (s3s-fs lists none).
        let listed = s3
            .list_parts()
            .bucket(&b)
            .key("dest")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        if let Some(etag) = listed.parts()[0].e_tag() {
            assert_eq!(etag, copied, "UploadPartCopy and ListParts");
        }
    }
}

mod copy_source_ranges {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        let h = Harness::s3s_rules(rules()).await;
        Box::pin(copy_source_ranges(&h)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        let h = Harness::with_backend_rules(backends::shared_rgw(), rules()).await;
        Box::pin(copy_source_ranges(&h)).await;
    }
}

/// `aws s3 sync` and `rclone sync` of an unchanged tree transfer nothing the second time, and
/// `rclone check` passes; then every object is deleted and the bucket with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_and_rclone_sync_twice_transfer_nothing() {
    let h = Harness::s3s_rules(rules()).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("tree");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("a.txt"), b"hello sync").unwrap();
    std::fs::write(local.join("sub/b.bin"), payload(70_000, 1800)).unwrap();
    std::fs::write(local.join("sub/big.bin"), payload(9 * MIB + 3, 1801)).unwrap();
    let src = local.display().to_string();

    let b = support::bucket("cse-awssync");
    let aws = |args: &[&str]| {
        let mut c = Command::new("aws");
        c.arg("--endpoint-url").arg(h.endpoint()).args(args);
        c
    };
    client(aws(&["s3", "mb", &format!("s3://{b}")]), true).await;
    let first = client(aws(&["s3", "sync", &src, &format!("s3://{b}")]), true).await;
    assert_eq!(first.matches("upload:").count(), 3, "{first}");
    let second = client(aws(&["s3", "sync", &src, &format!("s3://{b}")]), true).await;
    assert!(!second.contains("upload:"), "{second}");
    client(
        aws(&["s3", "rm", "--recursive", &format!("s3://{b}")]),
        true,
    )
    .await;
    client(aws(&["s3", "rb", &format!("s3://{b}")]), true).await;

    let b = support::bucket("cse-rcsync");
    let remote = format!("proxy:{b}");
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
    let first = client(rclone(&["sync", "-v", &src, &remote]), false).await;
    assert_eq!(first.matches("Copied (new)").count(), 3, "{first}");
    let second = client(rclone(&["sync", "-v", &src, &remote]), false).await;
    assert!(!second.contains("Copied"), "{second}");
    let check = client(rclone(&["check", &src, &remote]), false).await;
    assert!(check.contains("0 differences found"), "{check}");
    // rclone lists with `delimiter=` (empty), which s3s-fs 0.14 takes as a delimiter.
    client(
        aws(&["s3", "rm", "--recursive", &format!("s3://{b}")]),
        true,
    )
    .await;
    assert_eq!(
        stored_keys(&h, &b).await,
        Vec::<String>::new(),
        "left behind"
    );
    client(rclone(&["rmdir", &remote]), false).await;
}
