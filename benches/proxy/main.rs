//! Proxy overhead, measured side by side: the same load generator drives an s3s-fs store
//! directly (plain HTTP) and through the real `s3seal` binary (HTTPS, SigV4 verified and
//! re-signed), in alternating rounds, and reports medians and proxy/direct ratios as a
//! markdown table, plus the proxy's peak RSS per object size.
//!
//! ```sh
//! cargo build --release && cargo bench --bench proxy      # about 3 minutes
//! S3SEAL_BENCH_QUICK=1 cargo bench --bench proxy          # a ~20 s smoke run
//! ```
//!
//! See `docs/benchmarks.md` for what each number means and the latest results.

mod load;
mod setup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use load::{Endpoint, Op, Round, Workload, CSE_BUCKET};
use setup::{Memory, Proxy, Usage};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// How many rounds and requests each workload gets.
struct Plan {
    quick: bool,
    /// Rounds per endpoint for the 4 KiB and 1 MiB workloads.
    rounds: usize,
    /// Rounds per endpoint for 256 MiB (one object per round).
    big_rounds: usize,
    /// Request counts are multiplied by this (1 in full mode).
    scale: f64,
}

impl Plan {
    fn from_env() -> Self {
        let quick = std::env::var("S3SEAL_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Plan {
                quick,
                rounds: 2,
                big_rounds: 1,
                scale: 0.2,
            }
        } else {
            Plan {
                quick,
                rounds: 5,
                big_rounds: 3,
                scale: 1.0,
            }
        }
    }

    fn requests(&self, full: usize) -> usize {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let n = (full as f64 * self.scale).ceil() as usize;
        n.max(1)
    }
}

/// A workload's results on both endpoints, one entry per round.
struct Compared {
    label: String,
    workload: Workload,
    direct: Vec<Round>,
    proxy: Vec<Round>,
    direct_cost: Cost,
    proxy_cost: Cost,
}

fn main() -> anyhow::Result<()> {
    // Under `cargo test --all-targets` a harness-less bench is run without `--bench`: do
    // nothing there, so tests stay fast and never time anything.
    if !std::env::args().any(|a| a == "--bench") {
        println!("proxy bench: skipped (run it with `cargo bench --bench proxy`)");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&Plan::from_env()))
}

/// The endpoints and the proxy process behind two of them.
struct Bench {
    direct: Arc<Endpoint>,
    proxied: Arc<Endpoint>,
    /// Through the proxy, to a bucket with client-side encryption.
    encrypted: Arc<Endpoint>,
    proxy: Proxy,
}

async fn run(plan: &Plan) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let data = setup::data_dir()?;
    let (store_addr, store_keys) = setup::start_store(&data.path().join("store"))
        .await
        .context("starting the s3s-fs store")?;
    let binary = setup::proxy_binary();
    let proxy = Proxy::start(&binary, data.path(), store_addr, &store_keys)?;
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem"))?;
    let bench = Bench {
        direct: Arc::new(Endpoint::new(
            "direct",
            &format!("http://{store_addr}"),
            &store_keys,
            &ca,
        )?),
        proxied: Arc::new(Endpoint::new(
            "proxy",
            &format!("https://{}", proxy.addr),
            &proxy.keys,
            &ca,
        )?),
        encrypted: Arc::new(Endpoint::for_bucket(
            "proxy+cse",
            &format!("https://{}", proxy.addr),
            &proxy.keys,
            &ca,
            CSE_BUCKET,
        )?),
        proxy,
    };

    bench.direct.create_bucket().await?;
    for size in [4 * KIB, MIB, 256 * MIB] {
        bench.direct.put(&Workload::source_key(size), size).await?;
    }
    bench.encrypted.create_bucket().await?;
    for size in [MIB, 256 * MIB] {
        bench
            .encrypted
            .put(&Workload::source_key(size), size)
            .await?;
    }
    let idle = bench.proxy.memory()?;
    let can_reset = bench.proxy.reset_peak();
    let measured = bench.measure(plan).await?;
    let log = bench.proxy.log_text();
    drop(bench);
    print_report(&Report {
        plan,
        binary: &binary,
        data: data.path(),
        results: &measured.results,
        encrypted: &measured.encrypted,
        latency: &measured.latency,
        idle,
        peaks: &measured.peaks,
        peaks_per_phase: can_reset,
        elapsed: started.elapsed(),
        proxy_log: &log,
    });
    Ok(())
}

/// CPU spent while one endpoint's rounds ran, summed over the rounds.
#[derive(Default)]
struct Cost {
    /// This process: the load generator and the store.
    bench_cpu: Duration,
    /// The proxy process (idle during direct rounds).
    proxy: Usage,
}

/// Every workload's results, and the proxy's memory after each object size.
struct Measured {
    results: Vec<Compared>,
    /// Plain proxy (as "direct") against the proxy with client-side encryption.
    encrypted: Vec<Compared>,
    latency: Compared,
    peaks: Vec<(&'static str, Memory)>,
}

impl Bench {
    /// All workloads, smallest objects first; the proxy's peak-RSS mark is reset between
    /// object sizes.
    async fn measure(&self, plan: &Plan) -> anyhow::Result<Measured> {
        let mut results = Vec::new();
        let mut peaks = Vec::new();

        // Small objects: throughput at concurrency 16, then latency at concurrency 8.
        let small = |op, requests, concurrency| Workload {
            op,
            size: 4 * KIB,
            concurrency,
            requests: plan.requests(requests),
        };
        results.push(
            self.compare(plan, "PUT 4 KiB", small(Op::Put, 2000, 16))
                .await?,
        );
        results.push(
            self.compare(plan, "GET 4 KiB", small(Op::Get, 3000, 16))
                .await?,
        );
        let latency = self
            .compare(plan, "GET 4 KiB", small(Op::Get, 2000, 8))
            .await?;
        peaks.push(("4 KiB", self.proxy.memory()?));
        self.proxy.reset_peak();

        let medium = |op, requests| Workload {
            op,
            size: MIB,
            concurrency: 4,
            requests: plan.requests(requests),
        };
        results.push(
            self.compare(plan, "PUT 1 MiB", medium(Op::Put, 200))
                .await?,
        );
        results.push(
            self.compare(plan, "GET 1 MiB", medium(Op::Get, 400))
                .await?,
        );
        peaks.push(("1 MiB", self.proxy.memory()?));
        self.proxy.reset_peak();

        let big = |op| Workload {
            op,
            size: 256 * MIB,
            concurrency: 1,
            requests: 1,
        };
        let big_plan = Plan {
            rounds: plan.big_rounds,
            ..*plan
        };
        results.push(self.compare(&big_plan, "PUT 256 MiB", big(Op::Put)).await?);
        results.push(self.compare(&big_plan, "GET 256 MiB", big(Op::Get)).await?);
        peaks.push(("256 MiB", self.proxy.memory()?));
        self.proxy.reset_peak();

        // Client-side encryption: the plain proxy against the proxy encrypting, same run.
        let (passthrough, cse) = (&self.proxied, &self.encrypted);
        let encrypted = vec![
            self.compare_on(plan, "PUT 1 MiB", medium(Op::Put, 200), passthrough, cse)
                .await?,
            self.compare_on(plan, "GET 1 MiB", medium(Op::Get, 400), passthrough, cse)
                .await?,
            self.compare_on(&big_plan, "PUT 256 MiB", big(Op::Put), passthrough, cse)
                .await?,
            self.compare_on(&big_plan, "GET 256 MiB", big(Op::Get), passthrough, cse)
                .await?,
        ];
        peaks.push(("CSE 1 MiB + 256 MiB", self.proxy.memory()?));
        Ok(Measured {
            results,
            encrypted,
            latency,
            peaks,
        })
    }

    /// Runs `w` on both endpoints in alternating rounds (direct first in even rounds, the
    /// proxy first in odd ones) after one unrecorded warm-up round each.
    async fn compare(&self, plan: &Plan, label: &str, w: Workload) -> anyhow::Result<Compared> {
        self.compare_on(plan, label, w, &self.direct, &self.proxied)
            .await
    }

    /// [`Bench::compare`] with `base` in the direct role and `other` in the proxy's.
    async fn compare_on(
        &self,
        plan: &Plan,
        label: &str,
        w: Workload,
        base: &Arc<Endpoint>,
        other: &Arc<Endpoint>,
    ) -> anyhow::Result<Compared> {
        if w.size < 256 * MIB {
            let warm = Workload {
                requests: (w.requests / 4).max(w.concurrency),
                ..w
            };
            load::round(base, warm).await?;
            load::round(other, warm).await?;
        }
        let mut out = Compared {
            label: label.to_owned(),
            workload: w,
            direct: Vec::new(),
            proxy: Vec::new(),
            direct_cost: Cost::default(),
            proxy_cost: Cost::default(),
        };
        for r in 0..plan.rounds {
            let direct_first = r % 2 == 0;
            for via_proxy in [!direct_first, direct_first] {
                let ep = if via_proxy { other } else { base };
                let (own, theirs) = (own_cpu()?, self.proxy.usage()?);
                let round = load::round(ep, w).await?;
                let (own, theirs) = (own_cpu()?.saturating_sub(own), self.proxy.usage()? - theirs);
                let (rounds, cost) = if via_proxy {
                    (&mut out.proxy, &mut out.proxy_cost)
                } else {
                    (&mut out.direct, &mut out.direct_cost)
                };
                rounds.push(round);
                cost.bench_cpu += own;
                cost.proxy += theirs;
            }
        }
        eprintln!(
            "  {label:<12} c={:<2} {} {:>9.1} MiB/s  {} {:>9.1} MiB/s",
            w.concurrency,
            base.name,
            median(out.direct.iter().map(mib_per_s)),
            other.name,
            median(out.proxy.iter().map(mib_per_s)),
        );
        Ok(out)
    }
}

fn own_cpu() -> anyhow::Result<Duration> {
    setup::cpu_time("/proc/self/stat")
}

#[allow(clippy::cast_precision_loss)]
fn mib_per_s(r: &Round) -> f64 {
    r.bytes as f64 / MIB as f64 / r.elapsed.as_secs_f64()
}

#[allow(clippy::cast_precision_loss)]
fn req_per_s(r: &Round) -> f64 {
    r.latencies.len() as f64 / r.elapsed.as_secs_f64()
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Min and max of the per-round proxy/direct ratios of `f` (round i of one endpoint against
/// round i of the other, which ran next to it).
fn paired_range(c: &Compared, f: impl Fn(&Round) -> f64) -> (f64, f64) {
    c.direct
        .iter()
        .zip(&c.proxy)
        .map(|(d, p)| f(p) / f(d))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        })
}

struct Report<'a> {
    plan: &'a Plan,
    binary: &'a std::path::Path,
    data: &'a std::path::Path,
    results: &'a [Compared],
    encrypted: &'a [Compared],
    latency: &'a Compared,
    idle: Memory,
    peaks: &'a [(&'static str, Memory)],
    peaks_per_phase: bool,
    elapsed: Duration,
    proxy_log: &'a str,
}

fn print_report(r: &Report<'_>) {
    println!("## s3seal proxy bench\n");
    println!(
        "- mode: {}; {} rounds per endpoint ({} for 256 MiB), alternating direct/proxy; total {:.0} s",
        if r.plan.quick { "QUICK (smoke only)" } else { "full" },
        r.plan.rounds,
        r.plan.big_rounds,
        r.elapsed.as_secs_f64()
    );
    println!("- machine: {}", setup::machine());
    println!("- proxy: `{}` (HTTPS, HTTP/1.1)", r.binary.display());
    println!(
        "- store: s3s-fs in the bench process, data in {} (plain HTTP)",
        r.data.display()
    );
    println!();
    print_throughput(r.results);
    print_cost(r.results.iter().chain([r.latency]));
    print_latency(r.latency);
    print_encrypted(r.encrypted);
    print_memory(r);
}

/// Client-side encryption against the plain proxy: throughput and the proxy's CPU per MiB.
#[allow(clippy::cast_precision_loss)]
fn print_encrypted(results: &[Compared]) {
    println!("\n### Client-side encryption: the proxy encrypting vs. passing through (same run, median of rounds)\n");
    println!("| workload | concurrency | requests/round | plain proxy MiB/s | CSE proxy MiB/s | CSE/plain | paired ratios min–max | plain proxy CPU ms/MiB | CSE proxy CPU ms/MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in results {
        let plain = median(c.direct.iter().map(mib_per_s));
        let cse = median(c.proxy.iter().map(mib_per_s));
        let (lo, hi) = paired_range(c, mib_per_s);
        let mib =
            |rounds: &[Round]| rounds.iter().map(|x| x.bytes).sum::<u64>() as f64 / MIB as f64;
        let per_mib =
            |cost: &Cost, rounds: &[Round]| cost.proxy.cpu.as_secs_f64() * 1e3 / mib(rounds);
        println!(
            "| {} | {} | {} | {plain:.1} | {cse:.1} | **{:.2}** | {lo:.2}–{hi:.2} | {:.2} | {:.2} |",
            c.label,
            c.workload.concurrency,
            c.workload.requests,
            cse / plain,
            per_mib(&c.direct_cost, &c.direct),
            per_mib(&c.proxy_cost, &c.proxy),
        );
    }
}

fn print_throughput(results: &[Compared]) {
    println!("### Throughput (median of rounds)\n");
    println!("| workload | concurrency | requests/round | direct MiB/s | proxy MiB/s | proxy/direct | paired ratios min–max | direct req/s | proxy req/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in results {
        let d = median(c.direct.iter().map(mib_per_s));
        let p = median(c.proxy.iter().map(mib_per_s));
        let (lo, hi) = paired_range(c, mib_per_s);
        println!(
            "| {} | {} | {} | {d:.1} | {p:.1} | **{:.2}** | {lo:.2}–{hi:.2} | {:.0} | {:.0} |",
            c.label,
            c.workload.concurrency,
            c.workload.requests,
            p / d,
            median(c.direct.iter().map(req_per_s)),
            median(c.proxy.iter().map(req_per_s)),
        );
    }
}

#[allow(clippy::cast_precision_loss)]
fn print_cost<'a>(results: impl Iterator<Item = &'a Compared>) {
    println!("\n### CPU cost (sums over the measured rounds)\n");
    println!("| workload | direct: bench CPU µs/req | via proxy: bench CPU µs/req | proxy CPU µs/req | proxy CPU ms/MiB | total CPU proxied/direct | proxy bytes per write() |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in results {
        let requests: usize = c.proxy.iter().map(|x| x.latencies.len()).sum();
        let bytes: u64 = c.proxy.iter().map(|x| x.bytes).sum();
        let per_req = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        let (dc, pc) = (&c.direct_cost, &c.proxy_cost);
        let total_ratio = (pc.bench_cpu + pc.proxy.cpu).as_secs_f64() / dc.bench_cpu.as_secs_f64();
        let per_write = pc.proxy.write_bytes.checked_div(pc.proxy.write_calls);
        println!(
            "| {} c={} | {:.0} | {:.0} | {:.0} | {:.2} | **{total_ratio:.2}** | {} |",
            c.label,
            c.workload.concurrency,
            per_req(dc.bench_cpu),
            per_req(pc.bench_cpu),
            per_req(pc.proxy.cpu),
            pc.proxy.cpu.as_secs_f64() * 1e3 / (bytes as f64 / MIB as f64),
            per_write.map_or_else(|| "–".to_owned(), |b| b.to_string()),
        );
    }
}

fn print_latency(l: &Compared) {
    let lat =
        |rounds: &[Round], p: f64| median(rounds.iter().map(|x| percentile_ms(&x.latencies, p)));
    println!(
        "\n### Small-object latency: {} at concurrency {}, {} requests/round (median of rounds' percentiles, ms)\n",
        l.label, l.workload.concurrency, l.workload.requests
    );
    println!("| percentile | direct ms | proxy ms | proxy/direct | proxy − direct ms |");
    println!("|---|---:|---:|---:|---:|");
    for p in [50.0, 99.0] {
        let d = lat(&l.direct, p);
        let x = lat(&l.proxy, p);
        println!(
            "| p{p:.0} | {d:.3} | {x:.3} | **{:.2}** | {:.3} |",
            x / d,
            x - d
        );
    }
}

#[allow(clippy::cast_precision_loss)]
fn print_memory(r: &Report<'_>) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n### Proxy memory (`/proc/PID/status` of the s3seal process)\n");
    println!("| phase | peak RSS (VmHWM) MiB | RSS after MiB |");
    println!("|---|---:|---:|");
    println!(
        "| started, idle | {:.1} | {:.1} |",
        mib(r.idle.hwm_kib),
        mib(r.idle.rss_kib)
    );
    for (phase, m) in r.peaks {
        println!(
            "| {phase} objects | {:.1} | {:.1} |",
            mib(m.hwm_kib),
            mib(m.rss_kib)
        );
    }
    let overall = r
        .peaks
        .iter()
        .map(|(_, m)| m.hwm_kib)
        .chain([r.idle.hwm_kib])
        .max()
        .unwrap_or(0);
    println!(
        "\nPeak RSS of the proxy over the whole run: **{:.1} MiB**. {}",
        mib(overall),
        if r.peaks_per_phase {
            "The peak mark was reset (clear_refs) before each phase, so each row is that phase's own peak."
        } else {
            "The kernel refused to reset the peak mark, so each row is the peak since start."
        }
    );
    let warnings = r.proxy_log.lines().filter(|l| !l.trim().is_empty()).count();
    if warnings > 0 {
        println!(
            "\nThe proxy logged {warnings} warning/error lines; first: `{}`",
            r.proxy_log.lines().next().unwrap_or("")
        );
    }
}
