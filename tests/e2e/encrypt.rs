//! `s3seal encrypt` (issue 10): plaintext objects of an encrypted bucket, written at the backend
//! around the proxy, encrypted in place; a dry run changes nothing, a second run finds nothing
//! to do, objects the proxy encrypted are left alone, and one that cannot be encrypted is
//! reported and left as it was.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use s3seal::bulk::Options;
use s3seal::crypto::format::{ciphertext_len, ObjectMetadata, Version};

use crate::cse::{multipart_backends, rules};
use crate::cse_v2::config_for;
use crate::support::{self, backends, payload, Harness};

/// The backend's view of an object: its stored bytes and headers as the record is read from.
async fn stored(direct: &aws_sdk_s3::Client, b: &str, key: &str) -> (Vec<u8>, http::HeaderMap) {
    let got = direct.get_object().bucket(b).key(key).send().await.unwrap();
    let mut h = http::HeaderMap::new();
    for (name, value) in got.metadata().cloned().unwrap_or_default() {
        h.insert(
            http::HeaderName::try_from(format!("x-amz-meta-{name}")).unwrap(),
            http::HeaderValue::try_from(value).unwrap(),
        );
    }
    let data = got.body.collect().await.unwrap().into_bytes().to_vec();
    (data, h)
}

async fn encrypt_in_place(h: &Harness) {
    let (s3, direct) = (h.sdk(), h.direct());
    let b = support::bucket("cse-adopt");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let big = payload(200_000, 21);
    let plain: [(&str, Vec<u8>); 3] = [
        ("doc", b"hello, plaintext".to_vec()),
        ("empty", Vec::new()),
        ("dir/big", big.clone()),
    ];
    for (key, data) in &plain {
        let put = direct
            .put_object()
            .bucket(&b)
            .key(*key)
            .body(ByteStream::from(data.clone()));
        let put = if *key == "doc" {
            put.content_type("text/x-test")
                .content_disposition("inline")
                .metadata("colour", "green")
        } else {
            put
        };
        put.send().await.unwrap();
    }
    // User metadata that leaves no room for the record: it cannot be encrypted, and says why.
    direct
        .put_object()
        .bucket(&b)
        .key("crowded")
        .metadata("filler", "x".repeat(1900))
        .body(ByteStream::from(b"crowded".to_vec()))
        .send()
        .await
        .unwrap();
    // Written through the proxy: encrypted already.
    let sealed = payload(70_000, 22);
    s3.put_object()
        .bucket(&b)
        .key("sealed")
        .body(ByteStream::from(sealed.clone()))
        .send()
        .await
        .unwrap();
    let sealed_before = stored(&direct, &b, "sealed").await;

    // What keeps a write that lands between the command's HEAD and its PUT: the backend
    // refuses a PUT whose `If-Match` (sent unquoted, as the command sends it) is stale.
    let stale = direct
        .put_object()
        .bucket(&b)
        .key("doc")
        .if_match("0123456789abcdef0123456789abcdef")
        .body(ByteStream::from(b"overwritten".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&stale),
        Some("PreconditionFailed")
    );

    let dry = s3seal::encrypt::run(
        config_for(h),
        &b,
        None,
        &Options {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut would: Vec<(&str, u64)> = dry
        .encrypted
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    would.sort_unstable();
    assert_eq!(
        would,
        [
            ("crowded", 7),
            ("dir/big", 200_000),
            ("doc", 16),
            ("empty", 0)
        ],
        "{dry:?}"
    );
    assert_eq!(dry.already, ["sealed"]);
    assert!(dry.failed.is_empty(), "{dry:?}");
    for (key, data) in &plain {
        assert_eq!(
            &stored(&direct, &b, key).await.0,
            data,
            "{key} after the dry run"
        );
    }

    let report = s3seal::encrypt::run(
        config_for(h),
        &b,
        None,
        &Options {
            concurrency: 2,
            // The progress lines (on stderr), with their counting listing alongside.
            progress: s3seal::bulk::Progress::Lines,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let failed: Vec<&str> = report.failed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(failed, ["crowded"], "{report:?}");
    assert!(report.failed[0].1.contains("metadata"), "{report:?}");
    assert_eq!(
        stored(&direct, &b, "crowded").await.0,
        b"crowded",
        "left as it was"
    );
    assert_eq!(report.encrypted.len(), 3, "{report:?}");
    assert_eq!(report.already, ["sealed"]);

    for (key, data) in &plain {
        // The backend holds a version 2 record and ciphertext of the exact size...
        let (bytes, meta) = stored(&direct, &b, key).await;
        let record = ObjectMetadata::from_headers(&meta)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} has no record"));
        assert_eq!(record.version, Version::V2, "{key}");
        assert_eq!(record.key_id.as_str(), "k2", "{key}");
        assert_eq!(
            bytes.len() as u64,
            ciphertext_len(data.len() as u64).unwrap()
        );
        if !data.is_empty() {
            assert!(
                !bytes
                    .windows(data.len().min(16))
                    .any(|w| w == &data[..w.len()]),
                "{key} is still readable at the backend"
            );
        }
        // ...and the proxy reads the original bytes.
        let got = s3.get_object().bucket(&b).key(*key).send().await.unwrap();
        let meta = got.metadata().cloned().unwrap_or_default();
        let (ctype, disposition) = (
            got.content_type().map(str::to_owned),
            got.content_disposition().map(str::to_owned),
        );
        assert_eq!(
            &got.body.collect().await.unwrap().into_bytes().to_vec(),
            data
        );
        if *key == "doc" {
            assert_eq!(ctype.as_deref(), Some("text/x-test"));
            assert_eq!(disposition.as_deref(), Some("inline"));
            let user: HashMap<_, _> = meta
                .iter()
                .filter(|(k, _)| !k.starts_with("s3seal-"))
                .collect();
            assert_eq!(user.len(), 1, "{meta:?}");
            assert_eq!(meta.get("colour").map(String::as_str), Some("green"));
        }
    }
    // A range through the decrypting path.
    let part = s3
        .get_object()
        .bucket(&b)
        .key("dir/big")
        .range("bytes=100000-100099")
        .send()
        .await
        .unwrap();
    assert_eq!(
        part.body.collect().await.unwrap().into_bytes().as_ref(),
        &big[100_000..100_100]
    );
    // The object the proxy wrote was not touched.
    assert_eq!(stored(&direct, &b, "sealed").await.0, sealed_before.0);

    let again = s3seal::encrypt::run(config_for(h), &b, None, &Options::default())
        .await
        .unwrap();
    assert!(again.encrypted.is_empty(), "{again:?}");
    assert_eq!(
        again.failed.len(),
        1,
        "only the crowded object, again: {again:?}"
    );
    assert_eq!(again.already.len(), 4, "{again:?}");
}

multipart_backends!(encrypt_in_place);

/// On a terminal (the command run under `script`, which gives it one), the bulk commands draw
/// one status line in place: `\r`, clear to the end of the line, never as wide as `COLUMNS`,
/// a failure on its own line above it, and a newline before the summary. Not on a terminal,
/// the same run writes plain lines without a control character.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bar_on_a_terminal() {
    let h = Harness::s3s_rules(rules()).await;
    let direct = h.direct();
    let b = support::bucket("cse-bar");
    h.sdk().create_bucket().bucket(&b).send().await.unwrap();
    for i in 0..5 {
        direct
            .put_object()
            .bucket(&b)
            .key(format!("plain-{i}"))
            .body(ByteStream::from(payload(100_000, i)))
            .send()
            .await
            .unwrap();
    }
    direct
        .put_object()
        .bucket(&b)
        .key("crowded")
        .metadata("filler", "x".repeat(1900))
        .body(ByteStream::from(b"crowded".to_vec()))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3seal.toml");
    std::fs::write(&config, crate::cse_v2::config_text(&h)).unwrap();
    let command = format!(
        "'{}' encrypt --bucket {b} --config '{}'",
        env!("CARGO_BIN_EXE_s3seal"),
        config.display()
    );

    // Room for a bar beside the numbers, not for the resume key after them.
    let width = 110;
    let out = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .env("COLUMNS", width.to_string())
        .env_remove("S3SEAL_CONFIG")
        .output()
        .unwrap();
    let screen = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{screen:?}");
    let draws: Vec<&str> = screen.split("\r\x1b[K").skip(1).collect();
    assert!(draws.len() >= 2, "{screen:?}");
    // Status lines, that is: a failure is printed whole, and scrolls up like any line.
    for draw in draws.iter().filter(|d| !d.starts_with("failed ")) {
        let line = draw.split(['\r', '\n']).next().unwrap();
        assert!(line.chars().count() < width, "wider than {width}: {line:?}");
    }
    // The failure, on a line of its own, and the bar drawn again under it.
    let failure = draws
        .iter()
        .position(|d| d.starts_with("failed crowded: "))
        .unwrap_or_else(|| panic!("{screen:?}"));
    assert!(draws[failure].ends_with("\r\n"), "{screen:?}");
    assert!(draws[failure + 1].starts_with("encrypt "), "{screen:?}");
    // The last state, ended by a newline, then the summary on stdout.
    let last = draws.last().unwrap();
    assert!(
        last.starts_with("encrypt [") && last.contains("] 100% 6/6 objects"),
        "{last:?}"
    );
    // Cut to the width, not to a default.
    let status = last.split('\r').next().unwrap();
    assert_eq!(status.chars().count(), width - 1, "{status:?}");
    let (_, after) = last.split_once("\r\n").unwrap();
    assert!(
        after.contains("\r\n0 already_encrypted, 5 encrypted, 1 failed\r\n"),
        "{after:?}"
    );

    // Not a terminal: plain lines.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .args(["encrypt", "--bucket", &b, "--config"])
        .arg(&config)
        .env("COLUMNS", width.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(['\r', '\x1b']), "{stderr:?}");
    assert!(
        stderr.starts_with("encrypt: 6 objects, ") && stderr.contains(" 1 failed, "),
        "{stderr}"
    );
}
