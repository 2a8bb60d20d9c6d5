//! A few hundred MiB through the real `s3seal` binary: bytes are exact, and the proxy's peak
//! memory stays far below the object size (bodies stream; nothing is buffered whole).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use crate::support::{self, CLIENT_AK, CLIENT_SK};

const OBJECT: usize = 320 * 1024 * 1024;

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_stream_in_bounded_memory() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("s3seal.toml");
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        r#"
[server]
listen = "127.0.0.1:{port}"
tls_cert = "{cert}"
tls_key = "{key}"

[[upstream]]
name = "store"
endpoint = "http://{store}"
allow_plaintext = true
access_key_id = "{sak}"
secret_access_key = "{ssk}"

[[client]]
access_key_id = "{CLIENT_AK}"
secret_access_key = "{CLIENT_SK}"
upstream = "store"
"#,
        cert = support::repo_path("certs/server.pem").display(),
        key = support::repo_path("certs/server-key.pem").display(),
        store = store.addr,
        sak = store.access_key_id,
        ssk = store.secret_access_key,
    )
    .unwrap();
    let proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .args(["serve", "--config"])
            .arg(&conf)
            .env("S3SEAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3seal did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let baseline = peak_rss_kib(proxy.0.id());

    let s3 = support::sdk_client(
        &format!("https://127.0.0.1:{port}"),
        CLIENT_AK,
        CLIENT_SK,
        support::REGION,
    );
    s3.create_bucket().bucket("big").send().await.unwrap();
    let src = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w = std::io::BufWriter::new(src.as_file());
        let block = support::payload(1024 * 1024, 99);
        for i in 0..OBJECT / block.len() {
            let mut b = block.clone();
            b[0] = u8::try_from(i % 256).unwrap();
            w.write_all(&b).unwrap();
        }
    }
    let want = Sha256::digest(std::fs::read(src.path()).unwrap());
    s3.put_object()
        .bucket("big")
        .key("object")
        .body(ByteStream::from_path(src.path()).await.unwrap())
        .send()
        .await
        .unwrap();
    let mut got = s3
        .get_object()
        .bucket("big")
        .key("object")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(i64::try_from(OBJECT).unwrap()));
    let mut hasher = Sha256::new();
    let mut n = 0;
    while let Some(chunk) = got.body.try_next().await.unwrap() {
        n += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(n, OBJECT);
    assert_eq!(hasher.finalize(), want);

    let peak = peak_rss_kib(proxy.0.id());
    // Generous bound: a tenth of the object. A proxy that buffered a body would need more
    // than the whole object (320 MiB).
    assert!(
        peak < 32 * 1024 + baseline,
        "peak RSS {peak} KiB (baseline {baseline} KiB) for a {OBJECT}-byte object"
    );
}
