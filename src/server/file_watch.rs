//! Reload on file change: polls the config file and the TLS certificate and key, and reports
//! when their content changes. Polling rather than inotify: Kubernetes replaces mounted
//! config maps and secrets by swapping a symlink, which file-event watchers on the file itself
//! miss, and a digest every few seconds of three small files costs nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::{Interval, MissedTickBehavior};

use super::Running;

/// Watches the files a config generation was built from.
pub struct FileWatch {
    config: PathBuf,
    interval: Interval,
    last: [u8; 32],
}

impl FileWatch {
    /// A watch on `config` and the TLS files of `running`'s current config, or `None` when
    /// `[server] watch_interval_secs` is not set.
    pub fn new(config: &Path, running: &Running) -> Option<FileWatch> {
        let period = running.settings().watch_interval?;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(FileWatch {
            config: config.to_owned(),
            last: digest(&files(config, running)),
            interval,
        })
    }

    /// Returns at the first check that finds the files changed since the last time it
    /// returned (or since the watch began). The TLS paths are read from the generation
    /// running at each check, so a reload that moves them is followed.
    pub async fn changed(&mut self, running: &Running) {
        loop {
            self.interval.tick().await;
            let now = digest(&files(&self.config, running));
            if now != self.last {
                self.last = now;
                return;
            }
        }
    }

    pub fn period(&self) -> Duration {
        self.interval.period()
    }
}

fn files(config: &Path, running: &Running) -> [PathBuf; 3] {
    let settings = running.settings();
    [
        config.to_owned(),
        settings.tls_cert.clone(),
        settings.tls_key.clone(),
    ]
}

/// One digest over the files' contents (a missing file counts as its own state). A digest,
/// rather than a copy, so that the key file's bytes are not kept in memory.
fn digest(paths: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in paths {
        match std::fs::read(p) {
            Ok(bytes) => {
                h.update([1]);
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => h.update([0]),
        }
    }
    h.finalize().into()
}
