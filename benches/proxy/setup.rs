//! The two servers under test: the s3s-fs store (in this process) and the real `s3seal`
//! binary (a child process, so its memory can be read from `/proc`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// Where the bench keeps the store's objects: tmpfs when there is one, so the disk does not
/// dominate what is measured.
pub fn data_dir() -> anyhow::Result<tempfile::TempDir> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("s3seal-bench-");
        b
    };
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.context("creating the bench data folder")
}

/// The backend: s3s-fs over `root`, served on a loopback port in this process, SigV4 checked
/// by s3s.
///
/// This is `s3seal::embedded::start_store` with one change: accepted sockets get
/// `TCP_NODELAY`. Without it every small GET waits ~40 ms for a delayed ACK (Nagle holds the
/// body segment back until the client acknowledges the header segment), on both legs alike,
/// which hides everything the proxy costs. The demo store's key guard is left out: the bench
/// uses plain keys.
pub async fn start_store(root: &Path) -> anyhow::Result<(SocketAddr, Keys)> {
    std::fs::create_dir_all(root).context("creating the store folder")?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
    let keys = Keys {
        access_key_id: s3seal::embedded::random_token(20),
        secret_access_key: s3seal::embedded::random_token(40),
    };
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
    ));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let http = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let service = service.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    Ok((addr, keys))
}

/// The `s3seal` binary cargo built for this bench (`CARGO_BIN_EXE_*`, release profile under
/// `cargo bench`), unless `S3SEAL_BENCH_BIN` names another one.
pub fn proxy_binary() -> PathBuf {
    std::env::var_os("S3SEAL_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_s3seal")),
        PathBuf::from,
    )
}

/// Credentials a client uses towards one endpoint.
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The proxy process. Killed (by its own pid) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub keys: Keys,
    pub log: PathBuf,
    child: Child,
}

impl Proxy {
    /// Writes a config in `dir` (an SSE-S3 rule for `SSE_BUCKET`, client-side encryption for
    /// `CSE_BUCKET`, and `other_patterns` more `[[bucket]]` tables for buckets the bench never
    /// uses, as a gateway serving many tenants has), starts `s3seal serve` in front of the
    /// store, and waits until its port accepts connections. `kek`: the client-side
    /// encryption key (base64), shared by proxies that read each other's objects.
    pub fn start(
        binary: &Path,
        dir: &Path,
        store: SocketAddr,
        store_keys: &Keys,
        other_patterns: usize,
        kek: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).context("creating the proxy folder")?;
        let addr = free_port()?;
        let keys = Keys {
            access_key_id: s3seal::embedded::random_token(20),
            secret_access_key: s3seal::embedded::random_token(40),
        };
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
        // `max_connections_per_peer`: the scaling bench holds 512 connections from one
        // address, the default limit, plus the pool's spares.
        let mut config = format!(
            "[server]\n\
             listen = \"{addr}\"\n\
             max_connections_per_peer = 2048\n\
             tls_cert = {cert:?}\n\
             tls_key = {key:?}\n\
             \n\
             [[upstream]]\n\
             name = \"store\"\n\
             endpoint = \"http://{store}\"\n\
             allow_plaintext = true\n\
             access_key_id = \"{store_ak}\"\n\
             secret_access_key = \"{store_sk}\"\n\
             \n\
             [[client]]\n\
             access_key_id = \"{ak}\"\n\
             secret_access_key = \"{sk}\"\n\
             upstream = \"store\"\n\
             \n\
             [[bucket]]\n\
             pattern = \"{sse_bucket}\"\n\
             sse = {{ rule = \"sse-s3\", on_unverified = \"warn\" }}\n\
             \n\
             [[bucket]]\n\
             pattern = \"{cse_bucket}\"\n\
             encryption = {{ mode = \"client-side\", key_id = \"bench\", key = \"{kek}\" }}\n",
            cert = certs.join("server.pem").display().to_string(),
            key = certs.join("server-key.pem").display().to_string(),
            store_ak = store_keys.access_key_id,
            store_sk = store_keys.secret_access_key,
            ak = keys.access_key_id,
            sk = keys.secret_access_key,
            sse_bucket = crate::load::SSE_BUCKET,
            cse_bucket = crate::load::CSE_BUCKET,
        );
        for i in 0..other_patterns {
            let _ = write!(
                config,
                "\n[[bucket]]\npattern = \"tenant-{i}-*\"\nsse = {{ rule = \"sse-s3\" }}\n"
            );
        }
        let config_path = dir.join("s3seal.toml");
        File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .context("writing the proxy config")?;
        let log = dir.join("s3seal.log");
        let child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config_path)
            // `error`, not `warn`: the SSE bucket's store never echoes the SSE header, so
            // every PUT there would log an `on_unverified = "warn"` line (s3s-fs ignores
            // SSE; AWS echoes it), which is not a cost s3seal has in front of AWS.
            .env("S3SEAL_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).context("creating the proxy log")?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut proxy = Proxy {
            addr,
            keys,
            log,
            child,
        };
        wait_ready(&mut proxy.child, proxy.addr, "s3seal", &proxy.log)?;
        Ok(proxy)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The s3seal process, for memory and CPU readings.
    pub fn process(&self) -> Processes {
        Processes::of(self.child.id())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process and the children it forked (nginx's workers), read from `/proc`.
#[derive(Clone, Copy)]
pub struct Processes {
    root: u32,
}

impl Processes {
    pub fn of(root: u32) -> Self {
        Processes { root }
    }

    /// The root and its direct children (`/proc/PID/task/*/children`, Linux 3.5+).
    fn pids(self) -> Vec<u32> {
        let mut pids = vec![self.root];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.root)) {
            for task in tasks.flatten() {
                let children = std::fs::read_to_string(task.path().join("children"));
                pids.extend(
                    children
                        .iter()
                        .flat_map(|c| c.split_whitespace())
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        pids
    }

    /// Memory now, summed over the processes (`/proc/PID/status`). For several processes the
    /// summed peaks are an upper bound of the peak of the sum.
    pub fn memory(self) -> anyhow::Result<Memory> {
        let mut total = Memory {
            rss_kib: 0,
            hwm_kib: 0,
        };
        for pid in self.pids() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .with_context(|| format!("reading /proc/{pid}/status"))?;
            let field = |name: &str| -> anyhow::Result<u64> {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|rest| rest.trim().strip_suffix("kB"))
                    .and_then(|n| n.trim().parse().ok())
                    .with_context(|| format!("no {name} in /proc/{pid}/status"))
            };
            total.rss_kib += field("VmRSS:")?;
            total.hwm_kib += field("VmHWM:")?;
        }
        Ok(total)
    }

    /// CPU time and write syscalls so far, summed over the processes (`/proc/PID/{stat,io}`).
    pub fn usage(self) -> anyhow::Result<Usage> {
        let mut total = Usage::default();
        for pid in self.pids() {
            let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
                .with_context(|| format!("reading /proc/{pid}/io"))?;
            let field = |name: &str| -> u64 {
                io.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            total += Usage {
                cpu: cpu_time(&format!("/proc/{pid}/stat"))?,
                write_calls: field("syscw:"),
                write_bytes: field("wchar:"),
            };
        }
        Ok(total)
    }

    /// Resets the peak-RSS mark (`VmHWM`) so the next phase's peak can be read on its own
    /// (Linux `clear_refs`, value 5). Returns false where the kernel refuses it.
    pub fn reset_peak(self) -> bool {
        // Every process is reset even when one refuses (counted, not short-circuited).
        let refused = self
            .pids()
            .into_iter()
            .filter(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_err())
            .count();
        refused == 0
    }
}

/// nginx as a TLS reverse proxy in front of the store (`benches/proxy/nginx.conf`), the
/// reference peer every figure is compared with. Stopped when dropped.
pub struct Nginx {
    pub addr: SocketAddr,
    prefix: PathBuf,
    child: Child,
}

impl Nginx {
    /// The nginx binary: `S3SEAL_BENCH_NGINX`, else `nginx` on `PATH` or in `/usr/sbin`.
    fn binary() -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os("S3SEAL_BENCH_NGINX") {
            return Ok(PathBuf::from(path));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("nginx"))
            .find(|p| p.is_file())
            .context(
                "nginx is not installed: `scripts/bench` installs it (Debian package nginx), \
                 or set S3SEAL_BENCH_NGINX to its path",
            )
    }

    /// Writes the config under `dir/nginx`, starts nginx in front of `store` and waits until
    /// its port accepts connections.
    pub fn start(dir: &Path, store: SocketAddr) -> anyhow::Result<Self> {
        let binary = Self::binary()?;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix).context("creating the nginx folder")?;
        let addr = free_port()?;
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
        let config = include_str!("nginx.conf")
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@STORE@", &store.to_string())
            .replace("@LISTEN@", &addr.to_string())
            .replace("@CERT@", &certs.join("server.pem").display().to_string())
            .replace("@KEY@", &certs.join("server-key.pem").display().to_string());
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config).context("writing the nginx config")?;
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config_path)
            // Start-up errors go here before error_log is read.
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut nginx = Nginx {
            addr,
            prefix,
            child,
        };
        let log = nginx.prefix.join("error.log");
        wait_ready(&mut nginx.child, addr, "nginx", &log)?;
        Ok(nginx)
    }

    /// The master process and its workers.
    pub fn process(&self) -> Processes {
        Processes::of(self.child.id())
    }

    /// nginx's version line (`nginx -v` prints it on stderr).
    pub fn version() -> String {
        Self::binary()
            .ok()
            .and_then(|b| Command::new(b).arg("-v").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL to the master leaves the workers running: ask for a quick shutdown (TERM).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Polls until `addr` accepts connections, failing if `child` exits first or 15 s pass.
fn wait_ready(child: &mut Child, addr: SocketAddr, name: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited with {status} before accepting connections:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not accept connections on {addr} in 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a server, KiB.
#[derive(Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// CPU time and write syscalls of a process.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub write_calls: u64,
    pub write_bytes: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            write_calls: self.write_calls.saturating_sub(earlier.write_calls),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.cpu += other.cpu;
        self.write_calls += other.write_calls;
        self.write_bytes += other.write_bytes;
    }
}

/// User + system CPU time of all threads of the process whose `stat` file is `path`.
/// `/proc` counts in clock ticks, which Linux exposes at a fixed 100 Hz (`USER_HZ`).
pub fn cpu_time(path: &str) -> anyhow::Result<Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`;
    // `utime` and `stime` are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no field {} in {path}", i + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / USER_HZ))
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// The machine, for the report: CPU model and count, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib.div_ceil(1024 * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
    format!("{cpus} CPUs ({model}), {mem_gib} GiB RAM, Linux {kernel}")
}

/// A fresh key-encryption key for the bench's encrypted bucket, in base64.
pub fn random_kek() -> String {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("the system random generator");
    base64::engine::general_purpose::STANDARD.encode(key)
}
