//! The Rust `aws-sdk-s3` through the proxy, against each real backend.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::support::{self, backends, payload, raw, Harness};

/// Object life cycle: create bucket, put (zero bytes, small, awkward keys), head, get, range,
/// list v1/v2 with prefix/delimiter/pagination, copy, delete, delete bucket.
async fn object_lifecycle(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("life");
    s3.create_bucket().bucket(&b).send().await.unwrap();

    let keys = [
        "empty",
        "dir/a b+c.txt",
        "dir/sub/\u{2713} unicode",
        "dir/percent%2F and ?query#hash",
        "z",
    ];
    for (i, k) in keys.iter().enumerate() {
        let data = if *k == "empty" {
            Vec::new()
        } else {
            payload(1000 + i, i as u64)
        };
        s3.put_object()
            .bucket(&b)
            .key(*k)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e:?}"));
        let got = s3.get_object().bucket(&b).key(*k).send().await.unwrap();
        assert_eq!(
            got.content_length(),
            Some(i64::try_from(data.len()).unwrap()),
            "{k}"
        );
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(bytes.as_ref(), data.as_slice(), "{k}");
    }

    let head = s3.head_object().bucket(&b).key("z").send().await.unwrap();
    assert_eq!(head.content_length(), Some(1004));

    let range = s3
        .get_object()
        .bucket(&b)
        .key("z")
        .range("bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(range.content_range(), Some("bytes 10-19/1004"));
    let bytes = range.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), &payload(1004, 4)[10..20]);

    let list = s3
        .list_objects_v2()
        .bucket(&b)
        .prefix("dir/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = list.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["dir/a b+c.txt", "dir/percent%2F and ?query#hash"]);
    let prefixes: Vec<_> = list
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/sub/"]);

    // Pagination, two keys per page.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&b)
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut want: Vec<_> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    assert_eq!(seen, want);

    let v1 = s3
        .list_objects()
        .bucket(&b)
        .prefix("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.contents().len(), 3);

    s3.copy_object()
        .bucket(&b)
        .key("copy of z")
        .copy_source(format!("{b}/z"))
        .send()
        .await
        .unwrap();
    let copied = s3
        .get_object()
        .bucket(&b)
        .key("copy of z")
        .send()
        .await
        .unwrap();
    let bytes = copied.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), payload(1004, 4).as_slice());

    for k in keys.iter().copied().chain(["copy of z"]) {
        s3.delete_object().bucket(&b).key(k).send().await.unwrap();
    }
    let err = s3
        .head_object()
        .bucket(&b)
        .key("z")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    s3.delete_bucket().bucket(&b).send().await.unwrap();
}

/// Multipart: three parts of 5 MiB+ uploaded out of order, list parts, complete, read back;
/// and an aborted upload leaves nothing behind.
async fn multipart(h: &Harness) {
    let s3 = h.sdk();
    let b = support::bucket("mpu");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let part_len = 5 * 1024 * 1024 + 7;
    let parts: Vec<Vec<u8>> = (0..3).map(|i| payload(part_len, 100 + i)).collect();

    let up = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("big")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for n in [2_usize, 0, 1] {
        let number = i32::try_from(n + 1).unwrap();
        let r = s3
            .upload_part()
            .bucket(&b)
            .key("big")
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(parts[n].clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(r.e_tag().unwrap())
                .set_checksum_crc32(r.checksum_crc32().map(str::to_owned))
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket(&b)
        .key("big")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    done.sort_by_key(CompletedPart::part_number);
    s3.complete_multipart_upload()
        .bucket(&b)
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket(&b).key("big").send().await.unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), 3 * part_len);
    assert!(
        bytes.as_ref() == parts.concat().as_slice(),
        "multipart content differs"
    );

    let up = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("aborted")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    s3.upload_part()
        .bucket(&b)
        .key("aborted")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(payload(1024, 9)))
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload()
        .bucket(&b)
        .key("aborted")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert!(h
        .direct()
        .head_object()
        .bucket(&b)
        .key("aborted")
        .send()
        .await
        .is_err());
}

/// Presigned GET and PUT through the proxy, with a plain HTTP client.
async fn presigned(h: &Harness) {
    use aws_sdk_s3::presigning::PresigningConfig;
    let s3 = h.sdk();
    let b = support::bucket("presign");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let conf = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap();

    let put = s3
        .put_object()
        .bucket(&b)
        .key("p k")
        .presigned(conf.clone())
        .await
        .unwrap();
    // Text, because `raw::send` returns the body as a string.
    let data = "presigned body \u{2713}\n".repeat(200);
    let headers = |r: &aws_sdk_s3::presigning::PresignedRequest| -> Vec<(String, String)> {
        r.headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let status = raw::send(
        put.method(),
        put.uri(),
        &headers(&put),
        data.clone().into_bytes(),
    )
    .await
    .0;
    assert_eq!(status, 200);

    let get = s3
        .get_object()
        .bucket(&b)
        .key("p k")
        .presigned(conf)
        .await
        .unwrap();
    let (status, _, body) = raw::send(get.method(), get.uri(), &headers(&get), Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(body, data);
}

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                $scenario(&Harness::s3s().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                $scenario(&Harness::with_backend(backends::shared_moto()).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rgw() {
                $scenario(&Harness::with_backend(backends::shared_rgw()).await).await;
            }
        }
    };
}

per_backend!(object_lifecycle);
per_backend!(presigned);

/// moto 5.2 answers ListParts with a `ListPartsResponse` root that the SDK rejects (directly
/// as through the proxy), so multipart runs against the two other servers.
mod multipart {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        multipart(&Harness::s3s().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        multipart(&Harness::with_backend(backends::shared_rgw()).await).await;
    }
}

/// The SDK's trailing CRC32 (its default over HTTPS) is verified by the proxy and re-sent to
/// the upstream, which stores it: the backend reports the same checksum directly.
async fn checksum_reaches_backend(h: &Harness) {
    use aws_sdk_s3::types::ChecksumMode;
    use base64::Engine as _;
    let s3 = h.sdk();
    let b = support::bucket("crc");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let data = payload(300_000, 11);
    let put = s3
        .put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let sent = put
        .checksum_crc32()
        .expect("the SDK sends CRC32 by default")
        .to_owned();
    let crc = u32::try_from(crc_fast::checksum(
        crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        &data,
    ))
    .unwrap();
    assert_eq!(
        sent,
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    );
    let head = h
        .direct()
        .head_object()
        .bucket(&b)
        .key("k")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), Some(sent.as_str()));
}

/// s3s-fs verifies and stores trailing checksums; moto neither echoes nor stores them, and
/// Ceph RGW Pacific refuses aws-chunked trailers (the proxy sends it a plain body instead).
mod checksum_reaches_backend {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3s_fs() {
        checksum_reaches_backend(&Harness::s3s().await).await;
    }
}

/// Operations the proxy does not interpret pass through unchanged: object tagging (an XML
/// body on a sub-resource), bucket versioning and version listings.
async fn subresources(h: &Harness) {
    use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};
    let s3 = h.sdk();
    let b = support::bucket("sub");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(&b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for body in [&b"one"[..], b"two"] {
        s3.put_object()
            .bucket(&b)
            .key("k")
            .body(ByteStream::from_static(body))
            .send()
            .await
            .unwrap();
    }
    let versions = s3.list_object_versions().bucket(&b).send().await.unwrap();
    assert_eq!(versions.versions().len(), 2);
    let oldest = versions
        .versions()
        .iter()
        .find(|v| v.is_latest() == Some(false))
        .and_then(|v| v.version_id())
        .unwrap()
        .to_owned();
    let old = s3
        .get_object()
        .bucket(&b)
        .key("k")
        .version_id(&oldest)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.body.collect().await.unwrap().into_bytes().as_ref(),
        b"one"
    );

    let tag = Tag::builder()
        .key("team")
        .value("storage + co")
        .build()
        .unwrap();
    s3.put_object_tagging()
        .bucket(&b)
        .key("k")
        .tagging(Tagging::builder().tag_set(tag).build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = h
        .direct()
        .get_object_tagging()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    assert_eq!(tags.tag_set()[0].value(), "storage + co");
    let via_proxy = s3
        .get_object_tagging()
        .bucket(&b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(via_proxy.tag_set(), tags.tag_set());
}

/// s3s-fs implements neither versioning nor tagging (501), so this runs on moto and RGW.
mod subresources {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moto() {
        subresources(&Harness::with_backend(backends::shared_moto()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rgw() {
        subresources(&Harness::with_backend(backends::shared_rgw()).await).await;
    }
}
