//! Real S3 servers for the end-to-end tests, started by the tests themselves.
//!
//! - [`Backend::moto`]: moto's standalone server (Python). Lenient, but has the default
//!   bucket encryption API and serves KMS on the same port.
//! - [`Backend::rgw`]: Ceph RGW (one mon, one in-memory OSD, radosgw), with real SSE-C and
//!   SSE-KMS (the `testing` KMS backend, keys [`RGW_KMS_KEY_IDS`]) and strict `SigV4`.
//!
//! Both listen on plain HTTP on a free `127.0.0.1` port and keep everything under a temporary
//! directory. Neither implements every AWS rule (moto accepts SSE headers
//! without encrypting, RGW 16 stores SSE-S3 objects in clear; docs/policy.md); never take a
//! 200 from either as proof that something was encrypted.
//!
//! Starting RGW takes about 13 s, so tests normally share one per test process through
//! [`shared_rgw`] and [`shared_moto`]; how the servers die with the test process is explained
//! in `backends/process.rs`. Install the servers with `scripts/install-test-deps.sh`.

mod process;
mod rgw;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use process::ProcessGroup;

/// Key ids that RGW's `testing` KMS backend knows; any other id gets 403.
pub const RGW_KMS_KEY_IDS: [&str; 2] = ["testkey-1", "testkey-2"];

/// How long a server may take to answer HTTP after its process started.
const HTTP_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Lines of a server log quoted in failure messages.
const LOG_TAIL_LINES: usize = 40;

/// Lines quoted from a crash report (signal and backtrace) in a dead server's log.
const CRASH_EXCERPT_LINES: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Moto,
    Rgw,
}

impl BackendKind {
    fn label(self) -> &'static str {
        match self {
            BackendKind::Moto => "moto server",
            BackendKind::Rgw => "Ceph RGW",
        }
    }
}

/// A running S3 server; it stops when dropped (or when the test process exits).
pub struct Backend {
    pub kind: BackendKind,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// How long the start took, for test logs.
    pub startup: Duration,
    /// The server log that [`Backend::log_tail`] reads: radosgw's or moto's.
    log: PathBuf,
    // Field order is drop order: kill the processes before removing their directory.
    processes: ProcessGroup,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// Starts a moto server of its own. Panics, quoting its log, if it cannot start.
    pub fn moto() -> Backend {
        start_moto().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a Ceph cluster and RGW of its own (~13 s). Panics, quoting the Ceph logs, if
    /// it cannot start.
    pub fn rgw() -> Backend {
        rgw::start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether every process of this backend is still running. A dead RGW is a known
    /// hazard (16.2.15 aborts on an `UploadPartCopy` whose source key is percent-encoded); a test should
    /// check this before blaming the proxy for a failed connection.
    pub fn is_alive(&self) -> bool {
        self.processes.exited().is_empty()
    }

    /// `Ok` while the backend runs; otherwise a message that says which process died, how,
    /// any `Caught signal` line of its log, and the log's last lines. Meant for
    /// `backend.check_alive().expect(..)` or for a test's own failure message.
    pub fn check_alive(&self) -> Result<(), String> {
        let exited = self.processes.exited();
        if exited.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "{} at {} died: {}",
            self.kind.label(),
            self.endpoint,
            exited.join(", ")
        );
        // Ceph's fatal-signal handler writes the signal and a backtrace, then dumps recent
        // events, so the tail alone would miss the cause.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        if let Some(at) = lines.iter().position(|l| l.contains("Caught signal")) {
            let excerpt = &lines[at..lines.len().min(at + CRASH_EXCERPT_LINES)];
            let _ = write!(msg, "\nits log says:\n{}", excerpt.join("\n"));
        }
        let _ = write!(msg, "\n{}", self.log_tail());
        Err(msg)
    }

    /// The last lines of the server's log (radosgw's for RGW), headed by its path.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_TAIL_LINES)
    }

    /// Sets this backend's credentials and region on a client command, in the variables
    /// every AWS SDK and the aws cli read. Call it after [`client_env`], which clears them.
    pub fn credentials_env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_REGION", &self.region);
    }
}

// === shared backends ===

/// The RGW shared by all tests of this process, started by the first caller. If it cannot
/// start, every caller panics with the same message instead of waiting for its own timeout.
pub fn shared_rgw() -> &'static Backend {
    static RGW: OnceLock<Result<Backend, String>> = OnceLock::new();
    match RGW.get_or_init(rgw::start) {
        Ok(backend) => backend,
        Err(e) => panic!("{e}"),
    }
}

/// The moto server shared by all tests of this process; see [`shared_rgw`].
pub fn shared_moto() -> &'static Backend {
    static MOTO: OnceLock<Result<Backend, String>> = OnceLock::new();
    match MOTO.get_or_init(start_moto) {
        Ok(backend) => backend,
        Err(e) => panic!("{e}"),
    }
}

// === client environment ===

/// Variables naming a CA bundle, read by (in order) botocore/aws cli, OpenSSL and Go (rclone),
/// Python `requests`, curl and s3cmd, and Node.
const CA_BUNDLE_VARS: [&str; 5] = [
    "AWS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Gives a client process (boto3, aws cli, rclone, s3cmd, node) an environment that depends
/// only on the test: no `AWS_*` variable, config file or instance metadata from the machine,
/// and `ca_bundle` (or, with `None`, the system default) as the only CA bundle.
///
/// This machine exports the CA variables pointing at the system bundle, so a client would
/// otherwise distrust the proxy's dev CA, and rclone breaks when `AWS_CA_BUNDLE` names a
/// bundle other than its own. Call this before setting the test's own `AWS_*` variables.
pub fn client_env(cmd: &mut Command, ca_bundle: Option<&Path>) {
    needs_installed(&cmd.get_program().to_string_lossy());
    scrub_aws_env(cmd);
    for var in CA_BUNDLE_VARS {
        match ca_bundle {
            Some(path) => cmd.env(var, path),
            None => cmd.env_remove(var),
        };
    }
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

// === test tiers ===

/// Set to `fast` by `scripts/test --fast`, which leaves out by name every test that needs a
/// server or program installed by `scripts/install-test-deps.sh`.
const TIER_VAR: &str = "S3SEAL_TEST_TIER";

/// Fails a test of the fast tier that reaches for `what` (moto, RGW, a client or tool that the
/// fast tier does not provide). The fast tier selects tests by name, so this is what turns a
/// name that does not say what its test needs into a failure instead of a dependency on
/// whatever this machine happens to have installed.
pub fn needs_installed(what: &str) {
    let fast = std::env::var_os(TIER_VAR).is_some_and(|tier| tier == "fast");
    assert!(
        !fast,
        "this test needs {what}, which `scripts/test --fast` does not provide: put the word \
         for it (FAST_SKIPS in scripts/test) in the test's name"
    );
}

// === moto ===

/// How many ports moto is given before its start counts as failed.
const MOTO_PORT_ATTEMPTS: usize = 3;

/// `moto_server` cannot listen on port 0 and report the port, so it gets one that was free a
/// moment ago ([`free_port`]); when another process took it meanwhile, moto exits with
/// "Address already in use" and is started again on another port.
fn start_moto() -> Result<Backend, String> {
    needs_installed("moto");
    require_programs(&["bash", "setsid", "moto_server"])?;
    let mut attempts = 1;
    loop {
        match start_moto_once() {
            Err(e) if e.contains("Address already in use") && attempts < MOTO_PORT_ATTEMPTS => {
                eprintln!("backends: moto's port was taken, trying another:\n{e}");
                attempts += 1;
            }
            started => return started,
        }
    }
}

fn start_moto_once() -> Result<Backend, String> {
    let started = Instant::now();
    let dir = temp_dir("s3seal-moto-")?;
    let log = dir.path().join("moto.log");
    let processes =
        ProcessGroup::new(dir.path()).map_err(|e| format!("cannot start a watchdog: {e}"))?;
    let port = free_port()?;
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    // moto needs no credentials, and should not pick up the machine's.
    scrub_aws_env(&mut cmd);
    processes.spawn("moto_server", &mut cmd, &log)?;
    let fail = |what: String| {
        format!(
            "moto server did not start: {what}\n{}",
            log_tail(&log, LOG_TAIL_LINES)
        )
    };
    wait_http(port, &processes, HTTP_READY_TIMEOUT).map_err(fail)?;
    let backend = Backend {
        kind: BackendKind::Moto,
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "testing".to_owned(),
        secret_key: "testing".to_owned(),
        region: "us-east-1".to_owned(),
        startup: started.elapsed(),
        log,
        processes,
        _dir: dir,
    };
    eprintln!(
        "backends: moto server at {} started in {:.1?}",
        backend.endpoint, backend.startup
    );
    Ok(backend)
}

// === helpers for the servers ===

fn temp_dir(prefix: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))
}

/// Fails, before anything is started, if a program is not on `PATH`.
fn require_programs(programs: &[&str]) -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| !std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not installed: {} (run scripts/install-test-deps.sh as root)",
            missing.join(", ")
        ))
    }
}

/// A port that was free a moment ago, for servers that cannot listen on port 0 and report the
/// port they got (moto, Ceph's mon and radosgw). Another process could take it before the
/// server binds it; the kernel hands out ephemeral ports in a spread-out order, which makes
/// that rare, and both starts retry with fresh ports: moto when its log says the address is
/// in use, RGW once on any failure (`rgw::start`).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn scrub_aws_env(cmd: &mut Command) {
    let names: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with("AWS_"))
        .collect();
    for name in names {
        cmd.env_remove(name);
    }
}

/// Waits until something on `port` answers a plain HTTP request, failing early if a server
/// of the group has exited meanwhile.
fn wait_http(port: u16, processes: &ProcessGroup, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if answers_http(port) {
            return Ok(());
        }
        let exited = processes.exited();
        if !exited.is_empty() {
            return Err(exited.join(", "));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nothing answered HTTP on port {port} in {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let mut head = [0u8; 5];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
        .and_then(|()| stream.read_exact(&mut head))
        .is_ok_and(|()| &head == b"HTTP/")
}

/// The last `lines` lines of a log file, headed by its path.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            format!(
                "--- last {} lines of {} ---\n{}",
                tail.len(),
                path.display(),
                tail.join("\n")
            )
        }
        Err(e) => format!("--- {} cannot be read: {e} ---", path.display()),
    }
}
