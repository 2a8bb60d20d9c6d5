//! A one-machine Ceph cluster with RGW: one mon, one memstore OSD, radosgw (beast) on plain
//! HTTP, no cephx, no mgr. Why each setting is there is said where it is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    free_port, log_tail, require_programs, temp_dir, wait_http, Backend, BackendKind, ProcessGroup,
    HTTP_READY_TIMEOUT, RGW_KMS_KEY_IDS,
};

/// Key material for [`RGW_KMS_KEY_IDS`], 32 bytes each in base64 as the `testing` KMS backend
/// wants them. Fixed because nothing depends on their value; they guard nothing real.
const KMS_KEYS: [&str; 2] = [
    "9UzqGrpm9CI5cHb4qKxrZ1rHd0VoPnwYi1Dz8uZ3h1E=",
    "HnP3tq6cO0VdyF4Ar2sUuQ8lJ9bXwKmE5gTzRiY7cNo=",
];

const ACCESS_KEY: &str = "S3SEALTESTACCESSKEY0";
const SECRET_KEY: &str = "s3seal-test-secret-key-for-ceph-rgw-0000";

/// The mon elects itself and the OSD boots in about 4 s; radosgw then creates its pools.
const OSD_UP_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a new mon may take to answer its first command.
const MON_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Passed to every `ceph` call, which otherwise retries a dead mon forever.
const CEPH_CONNECT_TIMEOUT_SECS: &str = "20";

/// The Ceph daemon names, which also name their log files (`log file = …/$name.log`).
const MON: &str = "mon.a";
const RGW: &str = "client.rgw.a";

/// Starts a cluster, and once more in a fresh directory if the first one fails: a cluster
/// that does not come up on a loaded machine usually does on the second try, and every RGW
/// test in the process depends on this one start.
pub(super) fn start() -> Result<Backend, String> {
    super::needs_installed("Ceph RGW");
    start_once().or_else(|first| {
        eprintln!("backends: Ceph RGW did not start, trying once more:\n{first}");
        start_once().map_err(|second| format!("{first}\n--- second attempt ---\n{second}"))
    })
}

fn start_once() -> Result<Backend, String> {
    let started = Instant::now();
    require_programs(&[
        "bash",
        "setsid",
        "monmaptool",
        "ceph-mon",
        "ceph-osd",
        "ceph",
        "radosgw",
        "radosgw-admin",
    ])?;
    let dir = temp_dir("s3seal-rgw-")?;
    let processes =
        ProcessGroup::new(dir.path()).map_err(|e| format!("cannot start a watchdog: {e}"))?;
    let cluster = Cluster {
        dir: dir.path().to_owned(),
        processes: &processes,
    };
    let port = cluster.start().map_err(|e| {
        format!(
            "Ceph RGW did not start: {e}\n{}",
            cluster.log_tails(LOG_LINES_ON_FAILURE)
        )
    })?;
    let backend = Backend {
        kind: BackendKind::Rgw,
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
        // RGW does not check the signing scope's region; us-east-1 keeps clients from sending
        // a LocationConstraint on CreateBucket.
        region: "us-east-1".to_owned(),
        startup: started.elapsed(),
        log: cluster.log(RGW),
        processes,
        _dir: dir,
    };
    eprintln!(
        "backends: Ceph RGW at {} started in {:.1?}",
        backend.endpoint, backend.startup
    );
    Ok(backend)
}

/// Lines of each daemon log quoted when the cluster fails to start.
const LOG_LINES_ON_FAILURE: usize = 15;

struct Cluster<'a> {
    dir: PathBuf,
    processes: &'a ProcessGroup,
}

impl Cluster<'_> {
    /// Brings the cluster up (mon, then OSD, then radosgw); returns radosgw's HTTP port.
    fn start(&self) -> Result<u16, String> {
        for sub in ["run", "log", "mon", "osd"] {
            std::fs::create_dir(self.dir.join(sub))
                .map_err(|e| format!("cannot create {sub}/: {e}"))?;
        }
        let fsid = new_uuid()?;
        let mon_port = free_port()?;
        let mut http_port = free_port()?;
        while http_port == mon_port {
            http_port = free_port()?;
        }
        std::fs::write(
            self.conf(),
            ceph_conf(&self.dir, &fsid, mon_port, http_port),
        )
        .map_err(|e| format!("cannot write ceph.conf: {e}"))?;

        let monmap = self.dir.join("monmap");
        self.processes.run(
            Command::new("monmaptool")
                .args(["--create", "--fsid", &fsid, "--add", "a"])
                .arg(format!("127.0.0.1:{mon_port}"))
                .arg(&monmap),
        )?;
        self.processes.run(
            self.daemon("ceph-mon")
                .args(["--mkfs", "-i", "a", "--monmap"])
                .arg(&monmap),
        )?;
        self.spawn(
            "ceph-mon",
            MON,
            self.daemon("ceph-mon").args(["-f", "-i", "a"]),
        )?;

        let osd_uuid = new_uuid()?;
        // The first call also waits for the mon to elect itself. `osd new` with the same
        // UUID is idempotent, so a call that timed out can be repeated.
        let osd_id = self
            .ceph_until_connected(&["osd", "new", &osd_uuid])?
            .trim()
            .to_owned();
        let osd = format!("osd.{osd_id}");
        std::fs::create_dir(self.dir.join("osd").join(format!("ceph-{osd_id}")))
            .map_err(|e| format!("cannot create the OSD directory: {e}"))?;
        self.processes.run(self.daemon("ceph-osd").args([
            "-i",
            &osd_id,
            "--mkfs",
            "--osd-uuid",
            &osd_uuid,
        ]))?;
        self.spawn(
            "ceph-osd",
            &osd,
            self.daemon("ceph-osd").args(["-f", "-i", &osd_id]),
        )?;
        self.wait_osd_up(&osd)?;

        self.spawn(
            "radosgw",
            RGW,
            self.daemon("radosgw").args(["-f", "-n", RGW]),
        )?;
        wait_http(http_port, self.processes, HTTP_READY_TIMEOUT)?;

        self.processes.run(self.daemon("radosgw-admin").args([
            "-n",
            "client.admin",
            "user",
            "create",
            "--uid=test",
            "--display-name=test",
            &format!("--access-key={ACCESS_KEY}"),
            &format!("--secret={SECRET_KEY}"),
        ]))?;
        Ok(http_port)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    fn log(&self, daemon: &str) -> PathBuf {
        self.dir.join("log").join(format!("{daemon}.log"))
    }

    /// A Ceph program with this cluster's configuration.
    fn daemon(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-c").arg(self.conf());
        cmd
    }

    /// Spawns a daemon in the foreground (`-f`: a daemonized one would leave our process
    /// group), with its stdout and stderr next to its Ceph log.
    fn spawn(&self, program: &str, daemon: &str, cmd: &mut Command) -> Result<(), String> {
        let out = self.dir.join("log").join(format!("{daemon}.out"));
        self.processes.spawn(program, cmd, &out)
    }

    fn ceph(&self, args: &[&str]) -> Result<String, String> {
        self.processes.run(
            self.daemon("ceph")
                .args(["--connect-timeout", CEPH_CONNECT_TIMEOUT_SECS])
                .args(args),
        )
    }

    /// [`Self::ceph`], repeated while it cannot reach the mon, until [`MON_UP_TIMEOUT`]:
    /// on a loaded machine (CI running builds next to the tests) a new mon can take longer
    /// than one connect timeout to answer.
    fn ceph_until_connected(&self, args: &[&str]) -> Result<String, String> {
        let deadline = Instant::now() + MON_UP_TIMEOUT;
        loop {
            match self.ceph(args) {
                Err(e) if e.contains("timed out") && Instant::now() < deadline => {
                    let exited = self.processes.exited();
                    if !exited.is_empty() {
                        return Err(exited.join(", "));
                    }
                }
                other => return other,
            }
        }
    }

    fn wait_osd_up(&self, osd: &str) -> Result<(), String> {
        let deadline = Instant::now() + OSD_UP_TIMEOUT;
        let up = format!("{osd} up");
        loop {
            let dump = self.ceph(&["osd", "dump"])?;
            if dump.lines().any(|line| line.starts_with(&up)) {
                return Ok(());
            }
            let exited = self.processes.exited();
            if !exited.is_empty() {
                return Err(exited.join(", "));
            }
            if Instant::now() > deadline {
                return Err(format!("{osd} not up after {OSD_UP_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The tails of every daemon's log and captured output, for a start-up failure.
    fn log_tails(&self, lines: usize) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log"))
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let mut tails = String::new();
        // The CLI tools' logs and most captured outputs stay empty.
        for file in files
            .iter()
            .filter(|f| f.metadata().is_ok_and(|m| m.len() > 0))
        {
            let _ = writeln!(tails, "{}", log_tail(file, lines));
        }
        tails
    }
}

/// A random UUID from the kernel, which saves a dependency.
fn new_uuid() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read a UUID from the kernel: {e}"))
}

fn ceph_conf(dir: &Path, fsid: &str, mon_port: u16, http_port: u16) -> String {
    let dir = dir.display();
    let [key1, key2] = KMS_KEYS;
    let [id1, id2] = RGW_KMS_KEY_IDS;
    // `$name`, `$cluster`, `$id` and `$pid` are Ceph's metavariables, expanded per daemon.
    format!(
        "\
[global]
fsid = {fsid}
mon host = 127.0.0.1:{mon_port}
public addr = 127.0.0.1
# No cephx: nothing to provision, and nothing here is reachable from outside.
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
# radosgw defaults to `secure`, which needs cephx: it would retry
# `get_initial_auth_request returned -13` forever.
ms mon client mode = crc
ms client mode = crc
run dir = {dir}/run
admin socket = {dir}/run/$name.$pid.asok
log file = {dir}/log/$name.log
pid file = {dir}/run/$name.pid
mon data = {dir}/mon/$cluster-$id
osd data = {dir}/osd/$cluster-$id
# One OSD: pools of size 1, few placement groups, no autoscaler (there is no mgr).
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# The temp dir's disk may be nearly full (on a big shared disk, 1% free is still GiBs); the
# cluster stores almost nothing on it. 0 turns the mon's refusal to start off.
mon data avail crit = 0
mon data avail warn = 1
# Two cores are shared with the proxy, the clients and cargo.
osd op num shards = 1
osd op num threads per shard = 2
ms async op threads = 1

[osd]
# Objects in RAM: fast, and nothing to clean up.
osd objectstore = memstore
memstore device bytes = 2147483648

[{RGW}]
rgw frontends = beast endpoint=127.0.0.1:{http_port}
# SSE-C and SSE-KMS over plain HTTP, which RGW refuses by default.
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = {id1}={key1} {id2}={key2}
"
    )
}
