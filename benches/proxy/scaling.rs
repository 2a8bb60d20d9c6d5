//! How cost grows (`S3SEAL_BENCH_SCALING=1`): GET 4 KiB at 1, 64 and 512 connections through
//! nginx, through s3seal with the bench's 3 `[[bucket]]` patterns, and through a second s3seal
//! with 1,000 more patterns (other tenants' buckets, never matched), lanes rotating round by
//! round as in the main bench. Reports throughput, p50/p99 and CPU per request.
//!
//! `S3SEAL_BENCH_VERSUS=/path/to/other/s3seal` runs the same steps with that build as the
//! second s3seal (same config as the first), on the plain and the client-side-encryption
//! bucket: a change's before and after, side by side in one run.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::load::{self, Endpoint, Op, Round, Workload, BUCKET, CSE_BUCKET};
use crate::report::{latency, median_of, req_per_s};
use crate::setup::{Keys, Nginx, Processes, Proxy, Usage};
use crate::{Plan, KIB};

/// Patterns of the second s3seal, beyond the bench's own.
const MANY_PATTERNS: usize = 1000;
/// Concurrency → requests per round.
const STEPS: [(usize, usize); 3] = [(1, 600), (64, 3000), (512, 6000)];

struct Lane {
    name: &'static str,
    endpoint: Arc<Endpoint>,
    process: Processes,
}

pub async fn run(
    plan: &Plan,
    binary: &Path,
    dir: &Path,
    store: SocketAddr,
    store_keys: &Keys,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let versus = std::env::var_os("S3SEAL_BENCH_VERSUS").map(std::path::PathBuf::from);
    let nginx = Nginx::start(dir, store)?;
    let kek = crate::setup::random_kek();
    let first = Proxy::start(binary, &dir.join("s3seal-3"), store, store_keys, 0, &kek)?;
    let second = match &versus {
        Some(other) => Proxy::start(other, &dir.join("s3seal-other"), store, store_keys, 0, &kek)?,
        None => Proxy::start(
            binary,
            &dir.join("s3seal-1003"),
            store,
            store_keys,
            MANY_PATTERNS,
            &kek,
        )?,
    };
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem"))?;
    let lanes = lanes(&ca, (&nginx, store_keys), &first, &second, versus.is_some())?;
    let direct = Endpoint::for_bucket(
        "direct",
        &format!("http://{store}"),
        store_keys,
        &ca,
        BUCKET,
    )?;
    for bucket in [BUCKET, CSE_BUCKET] {
        direct.create_bucket(bucket).await?;
    }
    direct.put(&Workload::source_key(4 * KIB), 4 * KIB).await?;
    // The client-side-encryption object, written by the first s3seal; both share its key.
    if let Some(l) = lanes.iter().find(|l| l.name.starts_with("s3seal-cse")) {
        l.endpoint
            .put(&Workload::source_key(4 * KIB), 4 * KIB)
            .await?;
    }

    let mut rows = Vec::new();
    for (concurrency, requests) in STEPS {
        let w = Workload {
            op: Op::Get,
            size: 4 * KIB,
            concurrency,
            requests: plan.requests(requests).max(concurrency),
        };
        let warm = Workload {
            requests: (w.requests / 4).max(concurrency),
            ..w
        };
        for l in &lanes {
            load::round(&l.endpoint, warm).await?;
        }
        let mut results: Vec<(Vec<Round>, Usage)> = lanes
            .iter()
            .map(|_| (Vec::new(), Usage::default()))
            .collect();
        for r in 0..plan.rounds {
            for i in (0..lanes.len()).map(|k| (k + r) % lanes.len()) {
                let before = lanes[i].process.usage()?;
                let round = load::round(&lanes[i].endpoint, w).await?;
                results[i].1 += lanes[i].process.usage()? - before;
                results[i].0.push(round);
            }
        }
        eprintln!("  GET 4 KiB c={concurrency} done");
        rows.push((w, results));
    }

    match &versus {
        Some(other) => println!(
            "## s3seal proxy bench: {} against {}\n",
            binary.display(),
            other.display()
        ),
        None => println!("## s3seal proxy bench: how cost grows\n"),
    }
    println!(
        "- {} rounds per lane, lanes rotating; total {:.0} s; machine: {}\n",
        plan.rounds,
        started.elapsed().as_secs_f64(),
        crate::setup::machine()
    );
    println!("| connections | lane | req/s | vs nginx | p50 ms | p99 ms | proxy CPU µs/req |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for (w, results) in &rows {
        let nginx_rate = median_of(&results[0].0, req_per_s);
        for (l, (rounds, usage)) in lanes.iter().zip(results) {
            let rate = median_of(rounds, req_per_s);
            let n: usize = rounds.iter().map(|r| r.latencies.len()).sum();
            #[allow(clippy::cast_precision_loss)]
            let cpu = usage.cpu.as_secs_f64() * 1e6 / n as f64;
            println!(
                "| {} | {} | {rate:.0} | {:.2} | {:.2} | {:.2} | {cpu:.0} |",
                w.concurrency,
                l.name,
                rate / nginx_rate,
                latency(rounds, 50.0),
                latency(rounds, 99.0),
            );
        }
    }
    Ok(())
}

/// nginx first, then the two s3seal processes: on the plain bucket (3 against 1,003
/// patterns), or on the plain and the encrypted bucket (this build against another).
fn lanes(
    ca: &[u8],
    (nginx, store_keys): (&Nginx, &Keys),
    first: &Proxy,
    second: &Proxy,
    versus: bool,
) -> anyhow::Result<Vec<Lane>> {
    let lane = |name: &'static str,
                addr: SocketAddr,
                keys: &Keys,
                bucket: &'static str,
                process|
     -> anyhow::Result<Lane> {
        let url = format!("https://{addr}");
        Ok(Lane {
            name,
            endpoint: Arc::new(Endpoint::for_bucket(name, &url, keys, ca, bucket)?),
            process,
        })
    };
    let mut lanes = vec![lane(
        "nginx",
        nginx.addr,
        store_keys,
        BUCKET,
        nginx.process(),
    )?];
    if versus {
        for (name, proxy, bucket) in [
            ("s3seal, this build", first, BUCKET),
            ("s3seal, other build", second, BUCKET),
            ("s3seal-cse, this build", first, CSE_BUCKET),
            ("s3seal-cse, other build", second, CSE_BUCKET),
        ] {
            lanes.push(lane(
                name,
                proxy.addr,
                &proxy.keys,
                bucket,
                proxy.process(),
            )?);
        }
    } else {
        lanes.push(lane(
            "s3seal, 3 patterns",
            first.addr,
            &first.keys,
            BUCKET,
            first.process(),
        )?);
        lanes.push(lane(
            "s3seal, 1003 patterns",
            second.addr,
            &second.keys,
            BUCKET,
            second.process(),
        )?);
    }
    Ok(lanes)
}
