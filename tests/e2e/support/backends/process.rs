//! Server processes that cannot outlive the test process.
//!
//! Shared backends live in `static`s, which Rust never drops, and a test binary can also be
//! killed outright, so a `Drop` impl alone would leave Ceph daemons and moto servers running
//! after `cargo test` ends. `PR_SET_PDEATHSIG` would need `unsafe` (forbidden in this crate),
//! so the kernel's own bookkeeping does the job instead:
//!
//! - Every backend gets a watchdog: a small `bash` that leads a fresh process group and whose
//!   stdin is a pipe. Only the test process holds the pipe's write end (std opens pipes with
//!   `O_CLOEXEC`, so no other child inherits it).
//! - Every server of that backend is spawned into the watchdog's process group.
//! - When the write end closes — on `Drop`, or because the kernel closes every descriptor of
//!   the test process when it exits, however it exits — the watchdog's `read` sees EOF and it
//!   `kill -KILL 0`s its group: the servers, anything they forked, and itself.
//! - Before that, at start-up, the watchdog forks a cleaner into a session of its own
//!   (`setsid`), so the group kill spares it. It waits for the same EOF, gives the kill a
//!   second, and removes the backend's temporary directory, which `TempDir`'s `Drop` cannot do
//!   for a `static`.
//!
//! There is no polling and no PID to be reused: the pipe is the lifeline.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, PoisonError};

/// `$0` is the directory to remove once the group is dead. The cleaner reads the lifeline
/// through fd 3 because bash gives a background job `/dev/null` as its stdin.
const WATCHDOG_SCRIPT: &str = r#"
exec 3<&0
setsid sh -c 'read -r _ <&3; sleep 1; rm -rf -- "$0"' "$0" </dev/null >/dev/null 2>&1 &
read -r _
kill -KILL 0
"#;

/// A process group that dies with the test process, or earlier when dropped.
pub(super) struct ProcessGroup {
    watchdog: Child,
    /// Write end of the watchdog's stdin. Dropping it kills the group.
    lifeline: Option<ChildStdin>,
    /// Long-running servers, by the name used in error messages. Behind a `Mutex` because
    /// `Child::try_wait` needs `&mut` while backends are shared between test threads.
    servers: Mutex<Vec<(String, Child)>>,
}

impl ProcessGroup {
    /// Starts the watchdog. `dir` is removed after the group has been killed.
    pub(super) fn new(dir: &Path) -> io::Result<Self> {
        let mut watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let lifeline = watchdog.stdin.take();
        Ok(Self {
            watchdog,
            lifeline,
            servers: Mutex::new(Vec::new()),
        })
    }

    fn pgid(&self) -> i32 {
        // The watchdog leads the group, so its pid is the group id; pids fit in an i32.
        i32::try_from(self.watchdog.id()).expect("pid fits in pid_t")
    }

    /// Spawns a long-running server into the group, its stdout and stderr appended to `log`.
    pub(super) fn spawn(&self, name: &str, cmd: &mut Command, log: &Path) -> Result<(), String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot dup log file: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(self.pgid())
            .spawn()
            .map_err(|e| spawn_error(cmd, &e))?;
        self.lock().push((name.to_owned(), child));
        Ok(())
    }

    /// Runs a command to completion inside the group (so it dies too if the test process is
    /// killed meanwhile) and returns its stdout, or an error with its stderr.
    pub(super) fn run(&self, cmd: &mut Command) -> Result<String, String> {
        let Output {
            status,
            stdout,
            stderr,
        } = cmd
            .stdin(Stdio::null())
            .process_group(self.pgid())
            .output()
            .map_err(|e| spawn_error(cmd, &e))?;
        if status.success() {
            Ok(String::from_utf8_lossy(&stdout).into_owned())
        } else {
            Err(format!(
                "{cmd:?} failed ({}):\n{}{}",
                describe(status),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ))
        }
    }

    /// Servers that have exited, with how they exited. Empty while all of them run.
    pub(super) fn exited(&self) -> Vec<String> {
        let mut dead = Vec::new();
        for (name, child) in self.lock().iter_mut() {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => dead.push(format!("{name} {}", describe(status))),
                Err(e) => dead.push(format!("{name} cannot be waited for: {e}")),
            }
        }
        dead
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Child)>> {
        // A panic while holding the lock leaves the list itself intact.
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Closing the lifeline makes the watchdog kill the whole group; then reap everyone so
        // no zombie stays behind while the test process goes on.
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
        for (_, child) in self.lock().iter_mut() {
            let _ = child.wait();
        }
    }
}

fn spawn_error(cmd: &Command, e: &io::Error) -> String {
    let program = cmd.get_program().to_string_lossy();
    let mut msg = format!("cannot run {program}: {e}");
    if e.kind() == io::ErrorKind::NotFound {
        msg.push_str(" (run scripts/install-test-deps.sh as root)");
    }
    msg
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}{}", signal_name(signal)),
        (None, None) => format!("ended ({status})"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}
