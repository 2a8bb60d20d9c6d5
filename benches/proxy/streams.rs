//! Memory while streaming many large objects at once: sixteen 1 GiB uploads through s3seal's
//! client-side-encryption bucket at the same time, then sixteen 1 GiB downloads (decrypted
//! and verified) at the same time, with s3seal's resident memory sampled every 250 ms. Its
//! own s3seal and its own s3s-fs store, on disk under `target/`: 17 GiB of objects would not
//! fit beside everything else in a tmpfs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::load::{self, Endpoint, Op, Workload, CSE_BUCKET};
use crate::setup::{self, Processes, Proxy};
use crate::{Plan, MIB};

/// Objects streamed at once.
pub const STREAMS: usize = 16;
/// How often s3seal's memory is read while the objects stream.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Resident memory may not grow by more than this between the first and the last tenth of a
/// transfer: "flat".
const FLAT_SLACK_MIB: f64 = 4.0;

/// The label `S3SEAL_BENCH_CASE` selects this phase by.
pub fn label(plan: &Plan) -> String {
    format!(
        "{STREAMS} × {}",
        crate::report::size_label(object_size(plan))
    )
}

fn object_size(plan: &Plan) -> u64 {
    if plan.quick {
        64 * MIB
    } else {
        1024 * MIB
    }
}

/// One direction's transfer and s3seal's memory during it.
pub struct Transfer {
    op: Op,
    elapsed: Duration,
    /// (time since the transfer started, `VmRSS` KiB), every `SAMPLE_EVERY`.
    samples: Vec<(Duration, u64)>,
    /// `VmHWM` at the end (the mark is reset before each direction).
    peak_kib: u64,
}

pub struct Streams {
    label: String,
    size: u64,
    /// s3seal's `VmRSS` after start-up, before anything streamed.
    idle_kib: u64,
    transfers: Vec<Transfer>,
}

pub async fn run(plan: &Plan, binary: &Path) -> anyhow::Result<Streams> {
    let size = object_size(plan);
    let disk = tempfile::Builder::new()
        .prefix("s3seal-bench-streams-")
        .tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
        .context("creating the on-disk store folder")?;
    let (store, store_keys) = setup::start_store(&disk.path().join("store")).await?;
    let proxy = Proxy::start(
        binary,
        &disk.path().join("s3seal"),
        store,
        &store_keys,
        0,
        &setup::random_kek(),
    )?;
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem"))?;
    let direct = Endpoint::for_bucket(
        "direct",
        &format!("http://{store}"),
        &store_keys,
        &ca,
        CSE_BUCKET,
    )?;
    direct.create_bucket(CSE_BUCKET).await?;
    let cse = Arc::new(Endpoint::for_bucket(
        "s3seal-cse",
        &format!("https://{}", proxy.addr),
        &proxy.keys,
        &ca,
        CSE_BUCKET,
    )?);
    // The object the downloads read, written through s3seal so it is stored encrypted.
    cse.put(&Workload::source_key(size), size).await?;
    let idle_kib = proxy.process().memory()?.rss_kib;
    let mut transfers = Vec::new();
    for op in [Op::Put, Op::Get] {
        proxy.process().reset_peak();
        let w = Workload {
            op,
            size,
            concurrency: STREAMS,
            requests: STREAMS,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(sample(proxy.process(), stopped));
        let started = Instant::now();
        let round = load::round(&cse, w).await;
        let _ = stop.send(());
        let samples = watcher.await.context("the memory sampler")?;
        round?;
        transfers.push(Transfer {
            op,
            elapsed: started.elapsed(),
            samples,
            peak_kib: proxy.process().memory()?.hwm_kib,
        });
        eprintln!("  {} {} done", crate::case_label(&w), label(plan));
    }
    Ok(Streams {
        label: label(plan),
        size,
        idle_kib,
        transfers,
    })
}

/// Reads the process's `VmRSS` every `SAMPLE_EVERY` until told to stop.
async fn sample(
    process: Processes,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<(Duration, u64)> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => return samples,
            _ = tick.tick() => {
                if let Ok(m) = process.memory() {
                    samples.push((started.elapsed(), m.rss_kib));
                }
            }
        }
    }
}

/// The section of the report: s3seal's memory before, early in, late in and at the peak of
/// each direction, and whether it stayed within the targets.
#[allow(clippy::cast_precision_loss)]
pub fn print(s: &Streams) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "\n### Memory while streaming {} at once (client-side encryption)\n",
        s.label
    );
    println!(
        "s3seal's VmRSS after start-up: {:.1} MiB. Each direction moves {STREAMS} objects of {} \
         at the same time (uploads: {STREAMS} objects; downloads: one object read {STREAMS} \
         times); \"early\" is the highest sample between 10 % and 30 % of the transfer's time, \
         \"late\" the highest from 70 % to the end.\n",
        mib(s.idle_kib),
        crate::report::size_label(s.size)
    );
    println!("| direction | time s | MiB/s | early MiB | late MiB | peak (VmHWM) MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut missed = Vec::new();
    for t in &s.transfers {
        let window = |from: f64, to: f64| {
            t.samples
                .iter()
                .filter(|(at, _)| {
                    let f = at.as_secs_f64() / t.elapsed.as_secs_f64();
                    (from..=to).contains(&f)
                })
                .map(|&(_, kib)| kib)
                .max()
                .unwrap_or(0)
        };
        let (early, late) = (mib(window(0.1, 0.3)), mib(window(0.7, 1.0)));
        let peak = mib(t.peak_kib);
        let direction = if t.op == Op::Put {
            "upload"
        } else {
            "download"
        };
        let total = (s.size * STREAMS as u64) as f64 / MIB as f64;
        println!(
            "| {direction} | {:.1} | {:.1} | {early:.1} | {late:.1} | {peak:.1} |",
            t.elapsed.as_secs_f64(),
            total / t.elapsed.as_secs_f64(),
        );
        if late > early + FLAT_SLACK_MIB {
            missed.push(format!(
                "{direction}: memory grew from {early:.1} to {late:.1} MiB while streaming"
            ));
        }
        if peak > crate::report::TARGET_RSS_MIB {
            missed.push(format!(
                "{direction}: peak RSS {peak:.1} MiB > {} MiB",
                crate::report::TARGET_RSS_MIB
            ));
        }
    }
    println!();
    if missed.is_empty() {
        println!(
            "Targets: flat (late ≤ early + {FLAT_SLACK_MIB} MiB) and peak ≤ {} MiB: met.\n",
            crate::report::TARGET_RSS_MIB
        );
    } else {
        println!("Targets missed:\n");
        for m in missed {
            println!("- {m}");
        }
        println!();
    }
}
