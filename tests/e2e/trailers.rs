//! Trailing checksums with the default `forward_checksum_trailers` ("auto"): s3seal learns per
//! upstream whether it takes aws-chunked trailers, keeps verifying them itself, and says what
//! it chose on `/metrics`. Ceph RGW 16 refuses trailers (`400 XAmzContentSHA256Mismatch`);
//! s3s-fs verifies them.

use std::time::SystemTime;

use aws_sigv4::http_request::SignableBody;
use base64::Engine as _;

use crate::admin::{get, sample};
use crate::clients::boto3;
use crate::support::raw::{self, error_code, sign_request};
use crate::support::{
    self, backends, payload, with_admin, Harness, UpstreamInfo, CLIENT_AK, CLIENT_SK,
};

/// The upstream's row of `s3seal_upstream_checksum_trailers` that is 1.
async fn trailer_mode(h: &Harness) -> &'static str {
    let (status, metrics) = get(h.proxy.admin_addr.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let modes: Vec<&'static str> = ["forward", "strip", "unknown"]
        .into_iter()
        .filter(|mode| {
            let series =
                format!("s3seal_upstream_checksum_trailers{{upstream=\"test\",mode=\"{mode}\"}}");
            sample(&metrics, &series) == 1
        })
        .collect();
    assert_eq!(modes.len(), 1, "{metrics}");
    modes[0]
}

/// A PUT of `key` whose CRC32 trailer does not match its body is refused by s3seal with
/// `BadDigest`, and the upstream holds no such object.
async fn wrong_trailer_is_refused(h: &Harness, bucket: &str, key: &str) {
    let data = payload(200_000, 7);
    let crc = u32::try_from(crc_fast::checksum(
        crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        b"another body",
    ))
    .unwrap();
    let trailer = format!(
        "x-amz-checksum-crc32:{}",
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    );
    let body = raw::unsigned_trailer_body(&data, 65536, &trailer);
    let (enc_len, dec_len) = (body.len().to_string(), data.len().to_string());
    let uri = format!("{}/{bucket}/{key}", h.endpoint());
    let s = sign_request(
        "PUT",
        &uri,
        &[
            ("content-length", &enc_len),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", &dec_len),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ],
        SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
        CLIENT_AK,
        CLIENT_SK,
        SystemTime::now(),
    );
    let (status, _, resp) = raw::send("PUT", &uri, &s.headers, body).await;
    assert_eq!((status, error_code(&resp)), (400, "BadDigest"), "{resp}");
    let stored = h
        .direct()
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await;
    let status = stored
        .unwrap_err()
        .raw_response()
        .map(|r| r.status().as_u16());
    assert_eq!(status, Some(404), "{key} reached the upstream");
}

/// With no setting, boto3's default uploads (PutObject and a concurrent multipart upload,
/// each body with a CRC32 trailer) work through s3seal in front of Ceph RGW 16, which refuses
/// trailers; s3seal strips them from then on, says so on `/metrics`, and still refuses a body
/// whose trailer does not match, before and after it learnt what RGW does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rgw_default_config_strips_trailers_and_still_verifies_them() {
    let rgw = backends::shared_rgw();
    let h = Harness::start_with(UpstreamInfo::of(rgw), with_admin).await;
    assert_eq!(trailer_mode(&h).await, "unknown");
    let b = support::bucket("trailers-rgw");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();

    // The first trailer-bearing body is the one s3seal learns from: a wrong one teaches
    // nothing and goes nowhere.
    wrong_trailer_is_refused(&h, &b, "wrong-first").await;
    assert_eq!(trailer_mode(&h).await, "unknown");

    // boto3 runs with retries off: its first PUT is answered without a retry of its own.
    boto3(&h, "default").await;
    assert_eq!(trailer_mode(&h).await, "strip");

    wrong_trailer_is_refused(&h, &b, "wrong-after").await;
    assert!(rgw.is_alive(), "Ceph RGW died: see its log");
}

/// The same with s3s-fs, which verifies trailers: they are forwarded, and s3seal verifies
/// them as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_default_config_forwards_boto3_trailers() {
    let h = Harness::s3s_with(with_admin).await;
    assert_eq!(trailer_mode(&h).await, "unknown");
    boto3(&h, "default").await;
    assert_eq!(trailer_mode(&h).await, "forward");
    let b = support::bucket("trailers-s3s");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    wrong_trailer_is_refused(&h, &b, "wrong").await;
}
