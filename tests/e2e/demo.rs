//! The README's first command: `s3seal` with no arguments serves real S3 requests in front of
//! its embedded store, prints settings a shell can paste, and stops cleanly on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, backends};

#[test]
fn no_arguments_serves_the_embedded_demo() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .current_dir(cwd.path())
        .env("S3SEAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut exports = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while Instant::now() < deadline && !line.contains("Ctrl-C") {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
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
    assert_eq!(exports[0].1, "https://127.0.0.1:8443");

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
    // The object really is in the local store folder.
    assert!(cwd.path().join("s3seal-data/store/demo/up.bin").is_file());

    // Ctrl-C stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after Ctrl-C: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "s3seal did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
