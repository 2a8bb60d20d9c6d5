//! The README's first command: `s3seal` with no arguments serves real S3 requests in front of
//! its embedded store, encrypts what it stores, prints settings a shell can paste, and stops
//! cleanly on Ctrl-C. The test adds `serve --listen 127.0.0.1:0` so that a demo already
//! running on 8443 does not get in the way: the banner shows the port the OS chose.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, backends};

#[test]
fn the_embedded_demo_serves_the_aws_cli() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("S3SEAL_CONFIG")
        .current_dir(cwd.path())
        .env("S3SEAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut exports = Vec::new();
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while Instant::now() < deadline && !line.contains("Ctrl-C") {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("export ") {
            let (k, v) = rest.split_once('=').unwrap();
            exports.push((k.to_owned(), v.to_owned()));
        }
    }
    let names: Vec<_> = exports.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_CA_BUNDLE",
            "AWS_DEFAULT_REGION"
        ]
    );
    let port = exports[0].1.strip_prefix("https://127.0.0.1:").unwrap();
    assert_ne!(
        port.parse::<u16>().unwrap(),
        0,
        "the banner shows the bound port"
    );

    // The printed settings, and nothing else, are enough for the aws cli.
    let aws = |args: &[&str]| {
        let mut c = Command::new("aws");
        backends::client_env(&mut c, None);
        c.envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c.args(args).current_dir(cwd.path());
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let data = support::payload(3 * 1024 * 1024, 1);
    std::fs::write(cwd.path().join("up.bin"), &data).unwrap();
    aws(&["s3", "mb", "s3://demo"]);
    aws(&["s3", "cp", "up.bin", "s3://demo/up.bin"]);
    aws(&["s3", "cp", "s3://demo/up.bin", "down.bin"]);
    assert!(std::fs::read(cwd.path().join("down.bin")).unwrap() == data);
    // The object really is in the local store folder, and what is there is ciphertext.
    let stored = std::fs::read(cwd.path().join("s3seal-data/store/demo/up.bin")).unwrap();
    assert_eq!(
        stored.len() as u64,
        s3seal::crypto::format::ciphertext_len(data.len() as u64).unwrap()
    );
    assert!(
        !stored.windows(64).any(|w| data.starts_with(w)),
        "plaintext found in the store"
    );
    // The banner names the key file, warns about losing it, and shows how to look at the
    // stored bytes; the key file is private.
    let key_file = cwd.path().join("s3seal-data/demo-encryption.key");
    assert!(banner.contains(&key_file.display().to_string()), "{banner}");
    assert!(banner.contains("Losing it loses the data"), "{banner}");
    assert!(banner.contains("od -c "), "{banner}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Ctrl-C stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let what = || "s3seal to stop after SIGINT".to_owned();
    let status =
        support::wait_for_blocking(Duration::from_secs(15), what, || child.try_wait().unwrap());
    assert!(status.success(), "exit status after Ctrl-C: {status}");
}

/// `s3seal keygen` prints a fresh key in the form a config's `key = { file = ... }` reads.
#[test]
fn keygen_prints_a_new_key_each_time() {
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .arg("keygen")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    let id = s3seal::crypto::format::KeyId::new("k").unwrap();
    s3seal::crypto::format::Kek::from_base64(id, &a).unwrap();
    assert_eq!(a.trim().len(), 44, "{a}");
}
