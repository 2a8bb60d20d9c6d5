//! The bench's markdown report: throughput, ratios to nginx and to direct access, latency,
//! CPU per request, memory, and whether each target of docs/benchmarks.md was met.

use std::path::Path;
use std::time::Duration;

use crate::load::Round;
use crate::setup::{self, Memory};
use crate::{Case, Phase, Plan, DIRECT, LANE_NAMES, MIB, NGINX, S3SEAL, S3SEAL_CSE, S3SEAL_SSE};

pub struct Report<'a> {
    pub plan: &'a Plan,
    pub binary: &'a Path,
    pub nginx: &'a str,
    pub data: &'a Path,
    pub cases: &'a [Case],
    /// nginx's and s3seal's memory after start-up and seeding.
    pub idle: (Memory, Memory),
    pub phases: &'a [Phase],
    pub peaks_per_phase: bool,
    pub elapsed: Duration,
    pub proxy_log: &'a str,
}

/// s3seal/nginx throughput must reach this without encryption and with SSE injection.
const TARGET_PLAIN: f64 = 1.0;
/// ... and this with client-side encryption.
const TARGET_CSE: f64 = 0.9;
/// Peak RSS of s3seal, MiB.
pub const TARGET_RSS_MIB: f64 = 48.0;

pub fn size_label(size: u64) -> String {
    if size >= 1024 * MIB && size % (1024 * MIB) == 0 {
        format!("{} GiB", size / (1024 * MIB))
    } else if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / 1024)
    }
}

#[allow(clippy::cast_precision_loss)]
pub fn mib_per_s(r: &Round) -> f64 {
    r.bytes as f64 / MIB as f64 / r.elapsed.as_secs_f64()
}

#[allow(clippy::cast_precision_loss)]
pub fn req_per_s(r: &Round) -> f64 {
    r.latencies.len() as f64 / r.elapsed.as_secs_f64()
}

/// Median over rounds of `f`.
pub fn median_of(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    median(rounds.iter().map(f))
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

/// The median over rounds of each round's `p`-th latency percentile, ms.
pub fn latency(rounds: &[Round], p: f64) -> f64 {
    median(rounds.iter().map(|r| percentile_ms(&r.latencies, p)))
}

/// The case's throughput measure: requests per second for small objects (where requests are
/// the cost), MiB/s otherwise.
fn rate(case: &Case) -> (fn(&Round) -> f64, &'static str) {
    if case.workload.size < MIB {
        (req_per_s, "req/s")
    } else {
        (mib_per_s, "MiB/s")
    }
}

/// Median throughput of lane `a` over lane `b`, and the min–max of the per-round ratios
/// (round i of `a` against round i of `b`, which ran in the same rotation).
fn ratio(case: &Case, a: usize, b: usize) -> (f64, f64, f64) {
    let (f, _) = rate(case);
    let (ra, rb) = (&case.lanes[a].rounds, &case.lanes[b].rounds);
    let (lo, hi) = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| f(x) / f(y))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r), hi.max(r))
        });
    (median_of(ra, f) / median_of(rb, f), lo, hi)
}

fn case_name(c: &Case) -> String {
    format!("{}, c={}", c.label, c.workload.concurrency)
}

pub fn print(r: &Report<'_>) {
    println!("## s3seal proxy bench\n");
    println!(
        "- mode: {}; {} rounds per lane ({} for 256 MiB), lanes rotating; total {:.0} s",
        if r.plan.quick {
            "QUICK (smoke only)"
        } else {
            "full"
        },
        r.plan.rounds,
        r.plan.big_rounds,
        r.elapsed.as_secs_f64()
    );
    println!("- machine: {}", setup::machine());
    println!("- s3seal: `{}` (HTTPS, HTTP/1.1)", r.binary.display());
    println!(
        "- nginx: {} (HTTPS, HTTP/1.1, benches/proxy/nginx.conf)",
        r.nginx
    );
    println!(
        "- store: s3s-fs in the bench process, data in {} (plain HTTP)",
        r.data.display()
    );
    println!(
        "- lanes: {} (s3seal-sse: SSE-S3 rule; s3seal-cse: client-side encryption)",
        LANE_NAMES.join(", ")
    );
    println!();
    print_ratios(r.cases);
    print_throughput(r.cases);
    print_latency(r.cases);
    print_cpu(r.cases);
    print_memory(r);
    print_targets(r);
}

fn print_ratios(cases: &[Case]) {
    println!("### Ratios (median throughput of one lane over another; paired-round min–max)\n");
    println!("| case | s3seal/nginx | s3seal/direct | sse/nginx | sse/direct | cse/nginx | cse/direct | nginx/direct |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in cases {
        let cell = |a, b| {
            let (m, lo, hi) = ratio(c, a, b);
            format!("**{m:.2}** ({lo:.2}–{hi:.2})")
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            case_name(c),
            cell(S3SEAL, NGINX),
            cell(S3SEAL, DIRECT),
            cell(S3SEAL_SSE, NGINX),
            cell(S3SEAL_SSE, DIRECT),
            cell(S3SEAL_CSE, NGINX),
            cell(S3SEAL_CSE, DIRECT),
            cell(NGINX, DIRECT),
        );
    }
}

fn header(first: &str) {
    println!("| {first} | {} |", LANE_NAMES.join(" | "));
    println!("|---|{}", "---:|".repeat(LANE_NAMES.len()));
}

fn print_throughput(cases: &[Case]) {
    println!("\n### Throughput (median of rounds)\n");
    header("case");
    for c in cases {
        let (f, unit) = rate(c);
        let cells: Vec<String> = c
            .lanes
            .iter()
            .map(|l| format!("{:.1} {unit}", median_of(&l.rounds, f)))
            .collect();
        println!("| {} | {} |", case_name(c), cells.join(" | "));
    }
}

fn print_latency(cases: &[Case]) {
    println!(
        "\n### Latency per request, p50 / p99 ms (median over rounds of each round's percentile)\n"
    );
    header("case");
    for c in cases {
        let cells: Vec<String> = c
            .lanes
            .iter()
            .map(|l| {
                format!(
                    "{:.2} / {:.2}",
                    latency(&l.rounds, 50.0),
                    latency(&l.rounds, 99.0)
                )
            })
            .collect();
        println!("| {} | {} |", case_name(c), cells.join(" | "));
    }
}

#[allow(clippy::cast_precision_loss)]
fn print_cpu(cases: &[Case]) {
    println!("\n### CPU per request (µs; proxy = the nginx or s3seal processes, total = proxy + load generator + store)\n");
    println!("| case | nginx proxy | s3seal proxy | sse proxy | cse proxy | total direct | total nginx | total s3seal | total cse |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in cases {
        let per_req = |lane: usize, d: Duration| {
            let n: usize = c.lanes[lane].rounds.iter().map(|r| r.latencies.len()).sum();
            format!("{:.0}", d.as_secs_f64() * 1e6 / n as f64)
        };
        let proxy = |lane: usize| per_req(lane, c.lanes[lane].server.cpu);
        let total = |lane: usize| {
            let l = &c.lanes[lane];
            per_req(lane, l.bench_cpu + l.server.cpu)
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            case_name(c),
            proxy(NGINX),
            proxy(S3SEAL),
            proxy(S3SEAL_SSE),
            proxy(S3SEAL_CSE),
            total(DIRECT),
            total(NGINX),
            total(S3SEAL),
            total(S3SEAL_CSE),
        );
    }
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_memory(r: &Report<'_>) {
    println!("\n### Memory: peak RSS (VmHWM) MiB; nginx = master + workers summed\n");
    println!("| phase | nginx | s3seal (all three s3seal lanes) |");
    println!("|---|---:|---:|");
    println!(
        "| started, objects seeded | {:.1} | {:.1} |",
        mib(r.idle.0.hwm_kib),
        mib(r.idle.1.hwm_kib)
    );
    for p in r.phases {
        println!(
            "| {} | {:.1} | {:.1} |",
            p.label,
            mib(p.nginx.hwm_kib),
            mib(p.s3seal.hwm_kib)
        );
    }
    println!(
        "\n{}",
        if r.peaks_per_phase {
            "The peak marks were reset (clear_refs) before each phase, so each row is that phase's own peak."
        } else {
            "The kernel refused to reset the peak marks, so each row is the peak since start."
        }
    );
    let lines = r.proxy_log.lines().filter(|l| !l.trim().is_empty()).count();
    if lines > 0 {
        println!(
            "\ns3seal logged {lines} error lines; first: `{}`",
            r.proxy_log.lines().next().unwrap_or("")
        );
    }
}

/// Each target of docs/benchmarks.md, checked against this run's numbers.
fn print_targets(r: &Report<'_>) {
    println!("\n### Targets (this run)\n");
    let mut misses = Vec::new();
    for c in r.cases {
        for (lane, target) in [
            (S3SEAL, TARGET_PLAIN),
            (S3SEAL_SSE, TARGET_PLAIN),
            (S3SEAL_CSE, TARGET_CSE),
        ] {
            let (m, ..) = ratio(c, lane, NGINX);
            if m < target {
                misses.push(format!(
                    "{} {}: {}/nginx {m:.2} < {target:.1}",
                    LANE_NAMES[lane],
                    case_name(c),
                    LANE_NAMES[lane]
                ));
            }
            let (p99, nginx_p99) = (
                latency(&c.lanes[lane].rounds, 99.0),
                latency(&c.lanes[NGINX].rounds, 99.0),
            );
            if p99 > nginx_p99 {
                misses.push(format!(
                    "{} {}: p99 {p99:.2} ms > nginx {nginx_p99:.2} ms",
                    LANE_NAMES[lane],
                    case_name(c)
                ));
            }
        }
    }
    let peak = r
        .phases
        .iter()
        .map(|p| p.s3seal.hwm_kib)
        .chain([r.idle.1.hwm_kib])
        .max()
        .unwrap_or(0);
    if mib(peak) > TARGET_RSS_MIB {
        misses.push(format!(
            "s3seal peak RSS {:.1} MiB > {TARGET_RSS_MIB} MiB",
            mib(peak)
        ));
    }
    println!(
        "s3seal/nginx ≥ {TARGET_PLAIN} (plain, SSE) and ≥ {TARGET_CSE} (CSE) on every case, p99 ≤ nginx's, peak RSS ≤ {TARGET_RSS_MIB} MiB (this run: {:.1} MiB).\n",
        mib(peak)
    );
    if misses.is_empty() {
        println!("All met.");
    } else {
        println!("Missed ({}):\n", misses.len());
        for m in misses {
            println!("- {m}");
        }
    }
}
