//! The test backends themselves work: boto3, talking to each server directly (no proxy),
//! creates a bucket and gets back the bytes it put. When these fail, every proxy test
//! against the same backend fails for a reason that is not the proxy's.

use std::path::Path;
use std::process::Command;

use crate::support::backends::{
    client_env, shared_moto, shared_rgw, Backend, BackendKind, RGW_KMS_KEY_IDS,
};

/// Creates `bucket`, puts the file `src` as `key` (with `sse_kms_key`, if any, as its
/// SSE-KMS key), gets it back into the file `dst`, and prints the encryption RGW reports.
const BOTO3_ROUND_TRIP: &str = r#"
import os, sys, boto3
from botocore.config import Config
endpoint, bucket, key, src, dst, kms_key = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint,
                  config=Config(retries={"max_attempts": 1}, read_timeout=20))
s3.create_bucket(Bucket=bucket)
extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
with open(src, "rb") as f:
    s3.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
got = s3.get_object(Bucket=bucket, Key=key)
with open(dst, "wb") as f:
    f.write(got["Body"].read())
print(got.get("ServerSideEncryption", ""), got.get("SSEKMSKeyId", ""))
"#;

/// Runs [`BOTO3_ROUND_TRIP`] against `backend` with a 1 MiB payload and checks the bytes;
/// returns what the script printed.
fn boto3_round_trip(backend: &Backend, bucket: &str, sse_kms_key: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("put.bin");
    let dst = dir.path().join("got.bin");
    // Not a repeating pattern shorter than a chunk, so a shifted or reordered body shows.
    let payload: Vec<u8> = (0u32..1 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(&src, &payload).expect("write payload");

    let mut cmd = Command::new("python3");
    client_env(&mut cmd, None);
    backend.credentials_env(&mut cmd);
    if backend.kind == BackendKind::Rgw {
        // RGW 16.2 rejects the aws-chunked trailer that boto3 sends by default.
        cmd.env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required");
    }
    cmd.arg("-c")
        .arg(BOTO3_ROUND_TRIP)
        .args([&backend.endpoint, bucket, "smoke/object.bin"])
        .args([&src, &dst])
        .arg(sse_kms_key.unwrap_or(""));
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "boto3 against {:?} failed: {}\n{}\n{}",
        backend.kind,
        String::from_utf8_lossy(&out.stderr),
        backend.check_alive().err().unwrap_or_default(),
        backend.log_tail(),
    );
    assert_same_file(&dst, &payload);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn assert_same_file(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).expect("read downloaded object");
    assert_eq!(got.len(), expected.len(), "downloaded length");
    assert!(got == expected, "downloaded bytes differ from the upload");
}

#[test]
fn moto_round_trip() {
    let moto = Backend::moto();
    boto3_round_trip(&moto, "smoke-moto", None);
    moto.check_alive().unwrap();
}

#[test]
fn rgw_round_trip_plain_and_sse_kms() {
    let rgw = Backend::rgw();
    boto3_round_trip(&rgw, "smoke-rgw", None);
    // The `testing` KMS backend is configured: RGW encrypts with a known key id.
    let reported = boto3_round_trip(&rgw, "smoke-rgw-kms", Some(RGW_KMS_KEY_IDS[0]));
    assert_eq!(reported, format!("aws:kms {}", RGW_KMS_KEY_IDS[0]));
    rgw.check_alive().unwrap();
}

#[test]
fn shared_moto_and_rgw_are_started_once() {
    let (rgw, moto) = (shared_rgw(), shared_moto());
    assert!(std::ptr::eq(rgw, shared_rgw()));
    assert!(std::ptr::eq(moto, shared_moto()));
    boto3_round_trip(rgw, "smoke-shared", None);
    boto3_round_trip(moto, "smoke-shared", None);
    assert!(rgw.is_alive() && moto.is_alive());
}
