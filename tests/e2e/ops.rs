//! Production operation through the real `s3seal` binary and real signals: SIGHUP reloads the
//! config (keys, certificates) while a transfer is in flight and refuses a broken config;
//! SIGTERM drains an in-flight transfer, refuses new connections and exits 0; the access log
//! is JSON when asked for.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::SignableBody;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::sign_request;
use crate::support::serve::Serve;
use crate::support::{self, backends, CLIENT_AK, CLIENT_SK, REGION};

/// The key added by the reload; the reload also removes [`CLIENT_AK`].
const NEW_AK: &str = "S3SEALRELOADED";
const NEW_SK: &str = "reloaded-secret-0123456789abcdefghijk";

/// The `s3seal serve` process (killed if a test fails before stopping it), with the
/// addresses it reported.
struct Proxy {
    serve: Serve,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Proxy {
    /// Starts `s3seal serve --config conf` and waits until it reports its listeners.
    async fn start(conf: &Path) -> Proxy {
        Proxy::start_with(conf, &[]).await
    }

    /// [`Proxy::start`] with environment variables set (`S3SEAL_LOG` is `info` unless `env`
    /// says otherwise). Its stdout and stderr both go to the log.
    async fn start_with(conf: &Path, env: &[(&str, &str)]) -> Proxy {
        let serve = Serve::start(conf, env, &["https", "admin"]).await;
        let (addr, admin) = (serve.addr("https"), serve.addr("admin"));
        Proxy { serve, addr, admin }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.serve.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    fn log(&self) -> String {
        self.serve.log_text()
    }

    fn endpoint(&self) -> String {
        self.serve.endpoint()
    }

    /// The value of one series on `/metrics` (0 when absent).
    async fn metric(&self, series: &str) -> u64 {
        let body = admin_get(self.admin, "/metrics").await.unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |v| v.parse().unwrap())
    }

    /// Waits until `series` reaches `value`.
    async fn await_metric(&self, series: &str, value: u64) {
        let what = || format!("{series} to reach {value}; log:\n{}", self.log());
        let within = Duration::from_secs(15);
        support::wait_until(within, what, || async {
            self.metric(series).await == value
        })
        .await;
    }

    /// Waits, at most `within`, for the process to exit.
    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let Serve { child, log, .. } = &mut self.serve;
        let what = || {
            format!(
                "s3seal to exit; log:\n{}",
                std::fs::read_to_string(log).unwrap()
            )
        };
        support::wait_for(within, what, || {
            std::future::ready(child.try_wait().unwrap())
        })
        .await
    }
}

/// `GET path` on the admin listener: the body of a 200, `None` otherwise.
async fn admin_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(out).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// A config for the proxy in front of `store`, with one client key and JSON logs.
fn config(store: &s3seal::embedded::Store, client: (&str, &str), drain_secs: u64) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server-key.pem"
log_format = "json"
drain_timeout_secs = {drain_secs}

[[upstream]]
name = "store"
endpoint = "http://{store}"
allow_plaintext = true
access_key_id = "{sak}"
secret_access_key = "{ssk}"

[[client]]
access_key_id = "{ak}"
secret_access_key = "{sk}"
upstream = "store"
operations = ["all"]
"#,
        store = store.addr,
        sak = store.access_key_id,
        ssk = store.secret_access_key,
        ak = client.0,
        sk = client.1,
    )
}

/// An `UNSIGNED-PAYLOAD` PUT of `len` bytes whose body the test sends at its own pace, on a
/// connection that trusts `ca`; [`SlowPut::begin`] returns once the proxy is serving it.
struct SlowPut {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
}

impl SlowPut {
    async fn begin(addr: SocketAddr, ca: &[u8], path: &str, len: usize) -> SlowPut {
        let uri = format!("https://127.0.0.1:{}{path}", addr.port());
        let len = len.to_string();
        let signed = sign_request(
            "PUT",
            &uri,
            &[("content-length", &len)],
            SignableBody::UnsignedPayload,
            CLIENT_AK,
            CLIENT_SK,
            SystemTime::now(),
        );
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(support::client_tls_trusting(ca)));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let mut head = format!("PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", addr.port());
        for (k, v) in &signed.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        // The proxy answers `100 Continue` when it starts reading the body, which is after it
        // has verified the request: from then on the request is in flight, whatever the test
        // does to the process.
        head.push_str("Expect: 100-continue\r\n\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(20), tls.read(&mut byte))
                .await
                .expect("100 Continue in time")
                .unwrap();
            assert_eq!(n, 1, "closed before 100 Continue: {interim:?}");
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        SlowPut { tls }
    }

    async fn send(&mut self, data: &[u8]) {
        self.tls.write_all(data).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// The response's status line and body.
    async fn finish(mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        // Read the head and the (small) body; the connection may stay open.
        while !response_complete(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.tls.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= len
}

async fn get_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

/// A server certificate for `localhost` from a fresh CA, written where the config points.
fn write_fresh_certs(dir: &Path) -> Vec<u8> {
    let pem = s3seal::certs::generate_pem().unwrap();
    std::fs::write(dir.join("server.pem"), &pem.server_chain).unwrap();
    std::fs::write(dir.join("server-key.pem"), &pem.server_key).unwrap();
    pem.ca.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_keys_and_certificates_without_breaking_a_transfer() {
    const LEN: usize = 4 * 1024 * 1024;
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old_ca = write_fresh_certs(dir.path());
    let conf = dir.path().join("s3seal.toml");
    std::fs::write(&conf, config(&store, (CLIENT_AK, CLIENT_SK), 10)).unwrap();
    let proxy = Proxy::start(&conf).await;

    let old = support::sdk_client_trusting(
        &proxy.endpoint(),
        CLIENT_AK,
        CLIENT_SK,
        REGION,
        old_ca.clone(),
    );
    old.create_bucket().bucket("reload").send().await.unwrap();

    // A PUT in flight under the old config: head and a first part of the body sent.
    let data = support::payload(LEN, 7);
    let mut put = SlowPut::begin(proxy.addr, &old_ca, "/reload/slow", LEN).await;
    put.send(&data[..LEN / 4]).await;
    assert!(proxy.metric("s3seal_open_connections").await >= 1);

    // The new config drops the key the transfer was signed with, adds another, and comes
    // with a certificate from another CA.
    let new_ca = write_fresh_certs(dir.path());
    std::fs::write(&conf, config(&store, (NEW_AK, NEW_SK), 10)).unwrap();
    proxy.signal("HUP");
    proxy
        .await_metric(r#"s3seal_config_reloads_total{result="success"}"#, 1)
        .await;

    // The transfer finishes with the config it started with, and its bytes are intact. The
    // pauses are the slow client under test, not a wait for the proxy.
    for part in data[LEN / 4..].chunks(256 * 1024) {
        put.send(part).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = put.finish().await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // The next requests see the new config: the new key works (through the new CA), the
    // removed key is unknown, the old certificate is gone.
    let new =
        support::sdk_client_trusting(&proxy.endpoint(), NEW_AK, NEW_SK, REGION, new_ca.clone());
    let got = get_bytes(&new, "reload", "slow").await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    let removed =
        support::sdk_client_trusting(&proxy.endpoint(), CLIENT_AK, CLIENT_SK, REGION, new_ca);
    let err = removed
        .head_bucket()
        .bucket("reload")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{err:?}"
    );
    // (`old` itself may still hold a pooled connection from before the reload: connections
    // are not dropped, so only a new handshake shows the new certificate.)
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(support::client_tls_trusting(&old_ca)));
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let err = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    // A broken config is refused with a clear log line; the running config keeps serving.
    std::fs::write(&conf, "[server]\nlisten = \"not an address\"\n").unwrap();
    proxy.signal("HUP");
    proxy
        .await_metric(r#"s3seal_config_reloads_total{result="failure"}"#, 1)
        .await;
    assert_eq!(
        proxy.metric("s3seal_config_last_reload_successful").await,
        0
    );
    let log = proxy.log();
    assert!(
        log.contains("config reload refused; still serving the previous config")
            && log.contains("not an address"),
        "{log}"
    );
    assert_eq!(get_bytes(&new, "reload", "slow").await.len(), LEN);

    // A config whose certificate file is missing is refused too (TLS is built before the swap).
    std::fs::write(
        &conf,
        config(&store, (NEW_AK, NEW_SK), 10).replace("server.pem", "missing.pem"),
    )
    .unwrap();
    proxy.signal("HUP");
    proxy
        .await_metric(r#"s3seal_config_reloads_total{result="failure"}"#, 2)
        .await;
    assert_eq!(get_bytes(&new, "reload", "slow").await.len(), LEN);

    // The access log: one JSON line per request, with the key that signed it.
    let log = proxy.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(r#""target":"s3seal::access""#))
        .collect();
    let put_line = access
        .iter()
        .find(|l| l.contains(r#""operation":"PutObject""#))
        .unwrap_or_else(|| panic!("no PutObject access line in {log}"));
    for field in [
        format!(r#""client":"{CLIENT_AK}""#),
        r#""status":200"#.into(),
        r#""bucket":"reload""#.into(),
        r#""key":"slow""#.into(),
        format!(r#""bytes_in":{LEN}"#),
        r#""complete":true"#.into(),
    ] {
        assert!(put_line.contains(&field), "{field} not in {put_line}");
    }
    assert!(
        access
            .iter()
            .any(|l| l.contains(r#""client":"S3SEALRELOADED""#)
                && l.contains(r#""operation":"GetObject""#)
                && l.contains(&format!(r#""bytes_out":{LEN}"#))
                && l.contains(r#""complete":true"#)),
        "{log}"
    );
    assert!(
        access.iter().any(|l| l.contains(r#""status":403"#)
            && l.contains(r#""error_code":"InvalidAccessKeyId""#)
            && l.contains(r#""complete":true"#)),
        "{log}"
    );
    assert!(
        !log.contains(NEW_SK) && !log.contains(CLIENT_SK),
        "secrets in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_transfers_and_exits_zero() {
    const LEN: usize = 2 * 1024 * 1024;
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_fresh_certs(dir.path());
    let conf = dir.path().join("s3seal.toml");
    std::fs::write(&conf, config(&store, (CLIENT_AK, CLIENT_SK), 20)).unwrap();
    let mut proxy = Proxy::start(&conf).await;
    let s3 =
        support::sdk_client_trusting(&proxy.endpoint(), CLIENT_AK, CLIENT_SK, REGION, ca.clone());
    s3.create_bucket().bucket("drain").send().await.unwrap();

    let data = support::payload(LEN, 9);
    let mut put = SlowPut::begin(proxy.addr, &ca, "/drain/in-flight", LEN).await;
    put.send(&data[..LEN / 2]).await;

    let asked = Instant::now();
    proxy.signal("TERM");
    // New connections are refused once the listener is closed.
    let addr = proxy.addr;
    let what = || "the listener to close after SIGTERM".to_owned();
    let refused = || async move { TcpStream::connect(addr).await.is_err() };
    support::wait_until(Duration::from_secs(5), what, refused).await;
    // The transfer in flight still completes; the pauses are the slow client under test.
    for part in data[LEN / 2..].chunks(128 * 1024) {
        put.send(part).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = put.finish().await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let status = proxy.exit_status(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    // It exited as soon as the transfer was done, not at the drain deadline.
    assert!(asked.elapsed() < Duration::from_secs(15));

    // What the client sent is what the store holds.
    let direct = support::sdk_client(
        &format!("http://{}", store.addr),
        &store.access_key_id,
        &store.secret_access_key,
        REGION,
    );
    assert_eq!(
        Sha256::digest(get_bytes(&direct, "drain", "in-flight").await),
        Sha256::digest(&data)
    );
    let log = proxy.log();
    assert!(
        log.contains("shutting down: draining in-flight requests"),
        "{log}"
    );
}

/// SIGTERM during slow downloads, over HTTP/2 and HTTP/1.1: each client receives every byte
/// (an HTTP/2 client used to lose the tail to a reset when the process closed the socket with
/// its `WINDOW_UPDATE`s unread), the access log says `complete` for each, and the process
/// exits 0 once they are done, before the drain deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_slow_curl_downloads_finish_over_both_protocols() {
    use aws_sdk_s3::presigning::PresigningConfig;
    const LEN: usize = 20_000_000;
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_fresh_certs(dir.path());
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    let conf = dir.path().join("s3seal.toml");
    // Encrypted, as the demo is: the answer is the proxy's own stream, not the upstream's.
    let key = s3seal::crypto::format::Kek::generate_base64();
    let mut text = config(&store, (CLIENT_AK, CLIENT_SK), 20);
    write!(
        text,
        "\n[[bucket]]\npattern = \"*\"\nencryption = {{ mode = \"client-side\", key_id = \"k\", key = \"{}\" }}\n",
        *key
    )
    .unwrap();
    std::fs::write(&conf, text).unwrap();
    let mut proxy = Proxy::start(&conf).await;
    let s3 =
        support::sdk_client_trusting(&proxy.endpoint(), CLIENT_AK, CLIENT_SK, REGION, ca.clone());
    s3.create_bucket().bucket("slow").send().await.unwrap();
    let data = support::payload(LEN, 3);
    s3.put_object()
        .bucket("slow")
        .key("big")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let url = s3
        .get_object()
        .bucket("slow")
        .key("big")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned();

    // Two readers at 4 MB/s each: about 5 s per download.
    backends::needs_installed("curl");
    let readers: Vec<_> = ["--http2", "--http1.1"]
        .into_iter()
        .map(|proto| {
            let out = dir.path().join(format!("out{proto}"));
            let child = Command::new("curl")
                .args(["-sS", proto, "--limit-rate", "4M", "--max-time", "60"])
                .arg("--cacert")
                .arg(dir.path().join("ca.pem"))
                .arg("-o")
                .arg(&out)
                .args(["-w", "%{http_version} %{http_code}"])
                .arg(&url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("curl (installed by scripts/install-test-deps.sh)");
            (proto, out, child)
        })
        .collect();
    // SIGTERM once both downloads are under way, with most of their bytes still to come.
    let outs: Vec<PathBuf> = readers.iter().map(|(_, out, _)| out.clone()).collect();
    let what = || "both curl downloads to be under way".to_owned();
    let under_way = || {
        let started = outs
            .iter()
            .all(|out| std::fs::metadata(out).is_ok_and(|m| m.len() >= 1024 * 1024));
        std::future::ready(started)
    };
    support::wait_until(Duration::from_secs(30), what, under_way).await;
    let asked = Instant::now();
    proxy.signal("TERM");

    for (proto, out, child) in readers {
        let done = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let said = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "curl {proto}: {said} {}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(said.ends_with(" 200"), "curl {proto}: {said}");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), LEN, "curl {proto} got {} bytes", got.len());
        assert!(got == data, "curl {proto}: other bytes");
    }
    let status = proxy.exit_status(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    assert!(asked.elapsed() < Duration::from_secs(15));
    let log = proxy.log();
    let complete = log
        .lines()
        .filter(|l| {
            l.contains(r#""target":"s3seal::access""#)
                && l.contains(r#""operation":"GetObject""#)
                && l.contains(&format!(r#""bytes_out":{LEN}"#))
                && l.contains(r#""complete":true"#)
        })
        .count();
    assert_eq!(complete, 2, "{log}");
}

/// Replaces `path` in one step, as editors and config-management tools do, so that the
/// watcher never reads a half-written file.
fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Writes fresh certificates into `dir/<generation>` and points the `dir/tls` symlink at it in
/// one step, as Kubernetes updates a mounted Secret.
fn swap_certs(dir: &Path, generation: &str) -> Vec<u8> {
    let target = dir.join(generation);
    std::fs::create_dir(&target).unwrap();
    let ca = write_fresh_certs(&target);
    let link = dir.join("tls.new");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::rename(link, dir.join("tls")).unwrap();
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_are_reloaded_when_they_change() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = swap_certs(dir.path(), "gen1");
    let conf = dir.path().join("s3seal.toml");
    let watched = |client| {
        config(&store, client, 10)
            .replace(
                "drain_timeout_secs = 10",
                "drain_timeout_secs = 10\nwatch_interval_secs = 1",
            )
            .replace("\"server", "\"tls/server")
    };
    write_atomic(&conf, &watched((CLIENT_AK, CLIENT_SK)));
    let proxy = Proxy::start(&conf).await;
    let sdk = |ak, sk, ca: &[u8]| {
        support::sdk_client_trusting(&proxy.endpoint(), ak, sk, REGION, ca.to_vec())
    };
    sdk(CLIENT_AK, CLIENT_SK, &ca)
        .create_bucket()
        .bucket("watched")
        .send()
        .await
        .unwrap();

    // A changed config file is picked up without a signal.
    write_atomic(&conf, &watched((NEW_AK, NEW_SK)));
    let success = r#"s3seal_config_reloads_total{result="success"}"#;
    let failure = r#"s3seal_config_reloads_total{result="failure"}"#;
    proxy.await_metric(success, 1).await;
    sdk(NEW_AK, NEW_SK, &ca)
        .head_bucket()
        .bucket("watched")
        .send()
        .await
        .unwrap();

    // So is a renewed certificate (the config file unchanged): new connections get it.
    let renewed_ca = swap_certs(dir.path(), "gen2");
    proxy.await_metric(success, 2).await;
    sdk(NEW_AK, NEW_SK, &renewed_ca)
        .head_bucket()
        .bucket("watched")
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.metric(failure).await, 0, "{}", proxy.log());

    // A broken file is refused once (not at every check), and its fix is applied.
    write_atomic(&conf, "[server\n");
    proxy.await_metric(failure, 1).await;
    // A deliberate wait, not for an event: the watcher checks every second, and the point is
    // that two more checks of the same broken file count no second failure.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(proxy.metric(failure).await, 1);
    write_atomic(&conf, &watched((CLIENT_AK, CLIENT_SK)));
    proxy.await_metric(success, 3).await;
    sdk(CLIENT_AK, CLIENT_SK, &renewed_ca)
        .head_bucket()
        .bucket("watched")
        .send()
        .await
        .unwrap();
    assert!(
        proxy.log().contains(r#""reason":"files changed""#),
        "{}",
        proxy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_up_on_stuck_transfers_at_the_drain_deadline() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_fresh_certs(dir.path());
    let conf = dir.path().join("s3seal.toml");
    std::fs::write(&conf, config(&store, (CLIENT_AK, CLIENT_SK), 2)).unwrap();
    let mut proxy = Proxy::start(&conf).await;
    support::sdk_client_trusting(&proxy.endpoint(), CLIENT_AK, CLIENT_SK, REGION, ca.clone())
        .create_bucket()
        .bucket("stuck")
        .send()
        .await
        .unwrap();
    // A client that stops sending half way and never finishes.
    let mut put = SlowPut::begin(proxy.addr, &ca, "/stuck/never", 1024 * 1024).await;
    put.send(&[0u8; 4096]).await;

    let asked = Instant::now();
    proxy.signal("TERM");
    let status = proxy.exit_status(Duration::from_secs(15)).await;
    let waited = asked.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    // It waited for the deadline (2 s), not for the client.
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    let log = proxy.log();
    assert!(log.contains("drain deadline passed"), "{log}");
    // The upload never completed, so nothing was stored.
    let direct = support::sdk_client(
        &format!("http://{}", store.addr),
        &store.access_key_id,
        &store.secret_access_key,
        REGION,
    );
    assert!(direct
        .head_object()
        .bucket("stuck")
        .key("never")
        .send()
        .await
        .is_err());
}

/// With every log filter raised to `trace`, an `sse-c` bucket and a client-side encrypted
/// bucket are written and read (and a missing object asked for, so errors are logged too)
/// through the real binary in front of Ceph RGW, the backend with real SSE-C: neither key
/// appears in anything the process wrote, in base64 or in hex, nor do the client's or the
/// upstream's secret keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_logged_at_trace_rgw() {
    let rgw = backends::shared_rgw();
    let sse_c_key = support::payload(32, 0x55ec);
    let kek = support::payload(32, 0xc5e);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_fresh_certs(dir.path());
    let conf = dir.path().join("s3seal.toml");
    std::fs::write(
        &conf,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server-key.pem"

[[upstream]]
name = "rgw"
endpoint = "{endpoint}"
allow_plaintext = true
forward_checksum_trailers = false
access_key_id = "{rgw_ak}"
secret_access_key = "{rgw_sk}"

[[client]]
access_key_id = "{CLIENT_AK}"
secret_access_key = "{CLIENT_SK}"
upstream = "rgw"
operations = ["all"]

[[bucket]]
pattern = "logged-ssec-*"
sse = {{ rule = "sse-c", key = {{ id = "k1", env = "S3SEAL_TEST_SSE_C_KEY" }} }}

[[bucket]]
pattern = "logged-cse-*"
encryption = {{ mode = "client-side", key_id = "kek1", key = {{ env = "S3SEAL_TEST_KEK" }} }}
"#,
            endpoint = rgw.endpoint,
            rgw_ak = rgw.access_key,
            rgw_sk = rgw.secret_key,
        ),
    )
    .unwrap();
    let proxy = Proxy::start_with(
        &conf,
        &[
            ("S3SEAL_LOG", "trace"),
            ("S3SEAL_TEST_SSE_C_KEY", &B64.encode(&sse_c_key)),
            ("S3SEAL_TEST_KEK", &B64.encode(&kek)),
        ],
    )
    .await;
    let s3 = support::sdk_client_trusting(&proxy.endpoint(), CLIENT_AK, CLIENT_SK, REGION, ca);
    let data = support::payload(100_000, 3);
    let (ssec, cse) = (
        support::bucket("logged-ssec"),
        support::bucket("logged-cse"),
    );
    for bucket in [&ssec, &cse] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
        s3.put_object()
            .bucket(bucket)
            .key("k")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {bucket}: {e:?}\n{}", proxy.log()));
        assert_eq!(get_bytes(&s3, bucket, "k").await, data, "{bucket}");
        let missing = s3.get_object().bucket(bucket).key("missing").send().await;
        let status = missing
            .unwrap_err()
            .raw_response()
            .map(|r| r.status().as_u16());
        assert_eq!(status, Some(404), "{bucket}");
    }
    // Both rules were in force: RGW serves the SSE-C object only with the key, and stores
    // the other one encrypted.
    let direct = support::sdk_client(&rgw.endpoint, &rgw.access_key, &rgw.secret_key, REGION);
    assert!(direct
        .get_object()
        .bucket(&ssec)
        .key("k")
        .send()
        .await
        .is_err());
    assert_ne!(get_bytes(&direct, &cse, "k").await, data);
    drop(proxy);

    let log = std::fs::read_to_string(conf.with_extension("log")).unwrap();
    // The filter really was raised (dependencies' debug lines, s3seal's own lines).
    assert!(
        log.contains(" DEBUG ") || log.contains(" TRACE "),
        "no debug line in:\n{log}"
    );
    for (name, secret) in [
        ("SSE-C key (base64)", B64.encode(&sse_c_key)),
        ("SSE-C key (hex)", hex::encode(&sse_c_key)),
        ("SSE-C key (HEX)", hex::encode_upper(&sse_c_key)),
        ("KEK (base64)", B64.encode(&kek)),
        ("KEK (hex)", hex::encode(&kek)),
        ("KEK (HEX)", hex::encode_upper(&kek)),
        ("client secret", CLIENT_SK.to_owned()),
        ("upstream secret", rgw.secret_key.clone()),
    ] {
        if let Some(at) = log.find(&secret) {
            let line = log[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = log[at..].find('\n').map_or(log.len(), |n| at + n);
            panic!("the {name} is in the log:\n{}", &log[line..end]);
        }
    }
}

/// `s3seal serve` killed when dropped, for a test that holds its stderr itself.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A log collector that stops reading must not stop the proxy. stderr is a pipe the test reads
/// only until the listeners are reported, then never again, as a stalled collector would. A
/// worker that wrote its access-log line to stderr itself would block in `write(2)` once the
/// pipe (64 KiB) is full, and every request after that would hang; the log writer's own
/// thread blocks instead, the lines beyond its buffer are dropped and counted, and requests go
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stderr_never_blocks_requests() {
    use std::io::BufRead as _;
    // More access-log lines than the writer buffers (4096) plus what the pipe holds.
    const REQUESTS: usize = 6000;
    const TASKS: usize = 8;
    let store_dir = tempfile::tempdir().unwrap();
    let store = s3seal::embedded::start_store(store_dir.path())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_fresh_certs(dir.path());
    let conf = dir.path().join("s3seal.toml");
    std::fs::write(&conf, config(&store, (CLIENT_AK, CLIENT_SK), 5)).unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .args(["serve", "--config"])
            .arg(&conf)
            .env("S3SEAL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let read_listeners = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut text = String::new();
        loop {
            assert!(
                reader.read_line(&mut text).unwrap() > 0,
                "s3seal closed stderr during start:\n{text}"
            );
            let found = crate::support::serve::reported_listeners(&text);
            let addr = |name: &str| found.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
            if let (Some(https), Some(admin)) = (addr("https"), addr("admin")) {
                // The reader is handed back and kept, unread: the pipe stays open and fills.
                return (reader, https, admin);
            }
        }
    });
    let (_unread, https, admin) = tokio::time::timeout(Duration::from_secs(60), read_listeners)
        .await
        .expect("listeners reported within 60 s")
        .unwrap();

    let s3 = support::sdk_client_trusting(
        &format!("https://localhost:{}", https.port()),
        CLIENT_AK,
        CLIENT_SK,
        REGION,
        ca,
    );
    s3.create_bucket().bucket("stalled").send().await.unwrap();
    s3.put_object()
        .bucket("stalled")
        .key("k")
        .body(ByteStream::from_static(b"small"))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let s3 = s3.clone();
            tokio::spawn(async move {
                for _ in 0..REQUESTS / TASKS {
                    s3.head_object()
                        .bucket("stalled")
                        .key("k")
                        .send()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(180), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{REQUESTS} requests did not finish in 180 s with stderr unread ({:?} so far)",
            started.elapsed()
        )
    });
    let metrics = admin_get(admin, "/metrics").await.unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3seal_log_lines_dropped_total "))
        .expect("s3seal_log_lines_dropped_total on /metrics")
        .parse()
        .unwrap();
    assert!(dropped > 0, "no log line was dropped:\n{metrics}");
}
