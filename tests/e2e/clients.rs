//! Real command-line clients and SDKs through the proxy: boto3 (default and
//! `when_required` checksums), aws cli, s3cmd, rclone.

use std::process::{Command, Output};

use crate::support::{self, backends, payload, Harness, CLIENT_AK, CLIENT_SK, REGION};

/// Runs a client with the proxy's settings and only those (a machine may export CA-bundle
/// variables such as `AWS_CA_BUNDLE` that would override them), off the async runtime that
/// serves the proxy.
pub(crate) async fn run(cmd: Command) -> Output {
    run_with(cmd, |_| {}).await
}

async fn run_with(mut cmd: Command, adjust: impl FnOnce(&mut Command)) -> Output {
    backends::client_env(&mut cmd, Some(&support::ca_pem()));
    adjust(&mut cmd);
    cmd.env("AWS_ACCESS_KEY_ID", CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
        .env("AWS_DEFAULT_REGION", REGION);
    let desc = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{desc} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) async fn boto3(h: &Harness, mode: &str) {
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_path("tests/e2e/clients/boto3_suite.py"))
        .arg(h.endpoint())
        .arg(support::bucket("boto3"))
        .arg(mode);
    let out = run(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("boto3 suite passed"), "{stdout}");
}

async fn aws_cli(h: &Harness) {
    let dir = tempfile::tempdir().unwrap();
    let b = support::bucket("awscli");
    let src = dir.path().join("big.bin");
    // 20 MiB: above the CLI's 8 MiB multipart threshold.
    let data = payload(20 * 1024 * 1024 + 11, 42);
    std::fs::write(&src, &data).unwrap();
    let aws = |args: &[&str]| {
        let mut c = Command::new("aws");
        c.arg("--endpoint-url").arg(h.endpoint()).args(args);
        c
    };
    run(aws(&["s3", "mb", &format!("s3://{b}")])).await;
    run(aws(&[
        "s3",
        "cp",
        src.to_str().unwrap(),
        &format!("s3://{b}/big.bin"),
    ]))
    .await;
    let back = dir.path().join("back.bin");
    run(aws(&[
        "s3",
        "cp",
        &format!("s3://{b}/big.bin"),
        back.to_str().unwrap(),
    ]))
    .await;
    assert!(
        std::fs::read(&back).unwrap() == data,
        "aws s3 cp round trip differs"
    );
    let ls = run(aws(&["s3", "ls", &format!("s3://{b}/")])).await;
    assert!(String::from_utf8_lossy(&ls.stdout).contains("20971531 big.bin"));
    run(aws(&["s3", "rm", &format!("s3://{b}/big.bin")])).await;
    run(aws(&["s3", "rb", &format!("s3://{b}")])).await;
}

async fn s3cmd(h: &Harness) {
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
    let b = support::bucket("s3cmd");
    let src = dir.path().join("f.bin");
    let data = payload(12 * 1024 * 1024 + 5, 7);
    std::fs::write(&src, &data).unwrap();
    let s3cmd = |args: &[&str]| {
        let mut c = Command::new("s3cmd");
        c.arg("-c").arg(&cfg).args(args);
        c
    };
    run(s3cmd(&["mb", &format!("s3://{b}")])).await;
    run(s3cmd(&[
        "put",
        src.to_str().unwrap(),
        &format!("s3://{b}/f.bin"),
    ]))
    .await;
    let back = dir.path().join("back.bin");
    run(s3cmd(&[
        "get",
        &format!("s3://{b}/f.bin"),
        back.to_str().unwrap(),
    ]))
    .await;
    assert!(
        std::fs::read(&back).unwrap() == data,
        "s3cmd round trip differs"
    );
    let ls = run(s3cmd(&["ls", &format!("s3://{b}/")])).await;
    assert!(String::from_utf8_lossy(&ls.stdout).contains("f.bin"));
    run(s3cmd(&["del", &format!("s3://{b}/f.bin")])).await;
    run(s3cmd(&["rb", &format!("s3://{b}")])).await;
}

async fn rclone(h: &Harness) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("src");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("a.txt"), b"hello rclone").unwrap();
    std::fs::write(local.join("sub/b.bin"), payload(3 * 1024 * 1024, 5)).unwrap();
    let b = support::bucket("rclone");
    let remote = format!("proxy:{b}");
    let rclone = |args: &[&str]| {
        let mut c = Command::new("rclone");
        // rclone 1.60 cannot load a CA bundle through --ca-cert or AWS_CA_BUNDLE for S3
        // ("HTTPClient's transport unsupported type"); Go reads SSL_CERT_FILE instead.
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
    let no_bundle = |c: &mut Command| {
        c.env_remove("AWS_CA_BUNDLE");
    };
    run_with(rclone(&["mkdir", &remote]), no_bundle).await;
    run_with(
        rclone(&["copy", local.to_str().unwrap(), &remote]),
        no_bundle,
    )
    .await;
    // `check` compares sizes and MD5 hashes (from ETags) of both sides.
    run_with(
        rclone(&["check", local.to_str().unwrap(), &remote]),
        no_bundle,
    )
    .await;
    let back = dir.path().join("back");
    run_with(
        rclone(&["copy", &remote, back.to_str().unwrap()]),
        no_bundle,
    )
    .await;
    assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), b"hello rclone");
    assert!(std::fs::read(back.join("sub/b.bin")).unwrap() == payload(3 * 1024 * 1024, 5));
    run_with(rclone(&["purge", &remote]), no_bundle).await;
}

mod s3s_fs {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn boto3_default() {
        boto3(&Harness::s3s().await, "default").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn boto3_when_required() {
        boto3(&Harness::s3s().await, "when_required").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aws_cli() {
        super::aws_cli(&Harness::s3s().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3cmd() {
        super::s3cmd(&Harness::s3s().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rclone() {
        super::rclone(&Harness::s3s().await).await;
    }
}

mod rgw {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn boto3_default() {
        boto3(
            &Harness::with_backend(backends::shared_rgw()).await,
            "default",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aws_cli() {
        super::aws_cli(&Harness::with_backend(backends::shared_rgw()).await).await;
    }
}

mod moto {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn boto3_default() {
        boto3(
            &Harness::with_backend(backends::shared_moto()).await,
            "default",
        )
        .await;
    }
}
