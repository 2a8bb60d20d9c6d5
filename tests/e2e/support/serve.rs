//! `s3seal serve` as a process of its own, on ports the OS chooses: its config says port 0 and
//! the test reads the addresses the proxy reports having bound, from its log (the
//! `listener`/`addr` lines of docs/operations.md, "Logs"), in text or JSON. No port is picked
//! by the test, so none can be taken by someone else between the pick and the bind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::wait_for;

/// How long a start may take on a loaded machine before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `s3seal serve`, killed when dropped (a test that stops it itself waits for it
/// through [`Serve::child`]).
pub struct Serve {
    pub child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    listeners: Vec<(String, SocketAddr)>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `s3seal serve --config conf` with `env` (`S3SEAL_LOG` is `info` unless `env`
    /// says otherwise), its output in `conf` with the extension `log`, and waits until it has
    /// reported every listener in `listeners` (`https`, `plaintext`, `admin`). Fails at once,
    /// quoting the log, if the process exits meanwhile.
    pub async fn start(conf: &Path, env: &[(&str, &str)], listeners: &[&str]) -> Serve {
        let log = conf.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_s3seal"))
            .args(["serve", "--config"])
            .arg(conf)
            .env("S3SEAL_LOG", "info")
            .env_remove("S3SEAL_LOG_FORMAT")
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut serve = Serve {
            child,
            log,
            listeners: Vec::new(),
        };
        // `serve` exists before the wait, so that a failed start kills the process.
        let what = || format!("s3seal reporting its {listeners:?} listeners");
        let found = wait_for(START_TIMEOUT, what, || {
            let text = std::fs::read_to_string(&serve.log).unwrap_or_default();
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!("s3seal exited during start ({status}):\n{text}");
            }
            let found = reported_listeners(&text);
            let all = listeners
                .iter()
                .all(|name| found.iter().any(|(n, _)| n == name));
            std::future::ready(all.then_some(found))
        })
        .await;
        serve.listeners = found;
        serve
    }

    /// The address the proxy reported for `listener` (`https`, `plaintext`, `admin`).
    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find_map(|(name, addr)| (name == listener).then_some(*addr))
            .unwrap_or_else(|| panic!("no {listener} listener in {:?}", self.listeners))
    }

    /// `https://127.0.0.1:PORT` of the S3 listener.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr("https").port())
    }

    /// Everything the process has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// The `(listener, addr)` pairs reported in `log`, text or JSON lines.
pub fn reported_listeners(log: &str) -> Vec<(String, SocketAddr)> {
    log.lines().filter_map(reported_listener).collect()
}

fn reported_listener(line: &str) -> Option<(String, SocketAddr)> {
    let (listener, addr) = if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (
            v.get("listener")?.as_str()?.to_owned(),
            v.get("addr")?.as_str()?.parse().ok()?,
        )
    } else {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim_matches('"'))
        };
        (field("listener")?.to_owned(), field("addr")?.parse().ok()?)
    };
    Some((listener, addr))
}

#[test]
fn both_log_formats_are_read() {
    let text = "2025-01-01T00:00:00Z  INFO s3seal::server: s3seal listening (HTTPS) \
                listener=\"https\" addr=127.0.0.1:4431\n\
                2025-01-01T00:00:00Z  INFO s3seal::server: admin listener: /healthz /readyz \
                /metrics listener=\"admin\" addr=127.0.0.1:9091";
    let json = r#"{"timestamp":"t","level":"INFO","message":"s3seal listening (HTTPS)","listener":"https","addr":"127.0.0.1:4431","target":"s3seal::server"}"#;
    let https = ("https".to_owned(), "127.0.0.1:4431".parse().unwrap());
    let admin = ("admin".to_owned(), "127.0.0.1:9091".parse().unwrap());
    assert_eq!(reported_listeners(text), [https.clone(), admin]);
    assert_eq!(reported_listeners(json), [https]);
}
