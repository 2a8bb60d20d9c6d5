//! s3seal against its reference peer, measured side by side: one load generator drives the
//! same s3s-fs store directly (plain HTTP), through nginx as a TLS reverse proxy
//! (`nginx.conf` beside this file), and through the real `s3seal` binary on three buckets
//! (no rule, an SSE-S3 rule, client-side encryption), taking turns round by round. It prints
//! medians, s3seal/nginx and s3seal/direct ratios, p50/p99 latency, CPU per request and the
//! peak RSS of both proxies as markdown.
//!
//! ```sh
//! scripts/bench                               # installs nginx if missing, then runs this
//! S3SEAL_BENCH_QUICK=1 cargo bench --bench proxy   # a short smoke run
//! ```
//!
//! See `docs/benchmarks.md` for what each number means and the latest results.

mod load;
mod report;
mod scaling;
mod setup;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use load::{Endpoint, Op, Round, Workload, CSE_BUCKET, SSE_BUCKET};
use setup::{Memory, Nginx, Processes, Proxy, Usage};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// How many rounds and requests each workload gets.
struct Plan {
    quick: bool,
    /// Rounds per lane for the 4 KiB and 1 MiB workloads.
    rounds: usize,
    /// Rounds per lane for 256 MiB.
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

/// Which server process carries a lane's requests, for its CPU and memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Straight to the store (which runs inside the bench process).
    None,
    Nginx,
    S3seal,
}

/// One way to reach the store.
struct Lane {
    endpoint: Arc<Endpoint>,
    server: Server,
}

/// The lanes, in report order. Indexes into `Case::lanes`.
const DIRECT: usize = 0;
const NGINX: usize = 1;
const S3SEAL: usize = 2;
const S3SEAL_SSE: usize = 3;
const S3SEAL_CSE: usize = 4;
const LANE_NAMES: [&str; 5] = ["direct", "nginx", "s3seal", "s3seal-sse", "s3seal-cse"];

/// A workload's results on every lane.
struct Case {
    label: String,
    workload: Workload,
    lanes: Vec<LaneResult>,
}

/// One lane's rounds of a workload and the CPU they cost.
#[derive(Default)]
struct LaneResult {
    rounds: Vec<Round>,
    /// This process (load generator and store) during the lane's rounds.
    bench_cpu: Duration,
    /// The lane's server process(es) during its rounds (zero for `direct`).
    server: Usage,
}

/// Peak memory of both proxies during one object size.
struct Phase {
    label: String,
    nginx: Memory,
    s3seal: Memory,
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

/// The lanes and the two proxy processes behind them.
struct Bench {
    lanes: Vec<Lane>,
    proxy: Proxy,
    nginx: Nginx,
}

async fn run(plan: &Plan) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let data = setup::data_dir()?;
    let (store_addr, store_keys) = setup::start_store(&data.path().join("store"))
        .await
        .context("starting the s3s-fs store")?;
    let binary = setup::proxy_binary();
    if std::env::var_os("S3SEAL_BENCH_SCALING").is_some() {
        return scaling::run(plan, &binary, data.path(), store_addr, &store_keys).await;
    }
    let proxy = Proxy::start(
        &binary,
        &data.path().join("s3seal"),
        store_addr,
        &store_keys,
        0,
        &setup::random_kek(),
    )?;
    let nginx = Nginx::start(data.path(), store_addr)?;
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem"))?;
    let s3seal_url = format!("https://{}", proxy.addr);
    let lane = |name: &'static str, url: &str, keys, bucket, server| -> anyhow::Result<Lane> {
        Ok(Lane {
            endpoint: Arc::new(Endpoint::for_bucket(name, url, keys, &ca, bucket)?),
            server,
        })
    };
    let lanes = vec![
        lane(
            LANE_NAMES[DIRECT],
            &format!("http://{store_addr}"),
            &store_keys,
            load::BUCKET,
            Server::None,
        )?,
        lane(
            LANE_NAMES[NGINX],
            &format!("https://{}", nginx.addr),
            &store_keys,
            load::BUCKET,
            Server::Nginx,
        )?,
        lane(
            LANE_NAMES[S3SEAL],
            &s3seal_url,
            &proxy.keys,
            load::BUCKET,
            Server::S3seal,
        )?,
        lane(
            LANE_NAMES[S3SEAL_SSE],
            &s3seal_url,
            &proxy.keys,
            SSE_BUCKET,
            Server::S3seal,
        )?,
        lane(
            LANE_NAMES[S3SEAL_CSE],
            &s3seal_url,
            &proxy.keys,
            CSE_BUCKET,
            Server::S3seal,
        )?,
    ];
    let bench = Bench {
        lanes,
        proxy,
        nginx,
    };
    bench.seed().await?;
    let idle = (
        bench.nginx.process().memory()?,
        bench.proxy.process().memory()?,
    );
    let can_reset = bench.nginx.process().reset_peak() & bench.proxy.process().reset_peak();
    let (cases, phases) = bench.measure(plan).await?;
    let log = bench.proxy.log_text();
    drop(bench);
    let streams = if streams::label(plan).contains(&case_filter()) {
        Some(streams::run(plan, &binary).await?)
    } else {
        None
    };
    report::print(&report::Report {
        plan,
        binary: &binary,
        nginx: &Nginx::version(),
        data: data.path(),
        cases: &cases,
        idle,
        phases: &phases,
        peaks_per_phase: can_reset,
        elapsed: started.elapsed(),
        proxy_log: &log,
    });
    if let Some(streams) = &streams {
        streams::print(streams);
    }
    Ok(())
}

/// The object sizes, each with its GET and PUT workload (concurrency, requests per round).
const SIZES: [(u64, usize, usize, usize); 3] = [
    (4 * KIB, 64, 3000, 2000),
    (MIB, 8, 400, 200),
    // Two 256 MiB objects at a time, one each: 512 MiB per round.
    (256 * MIB, 2, 2, 2),
];

impl Bench {
    /// Creates the buckets at the store (s3seal's client key may not create buckets), and
    /// writes the objects every GET reads: plain ones directly (the direct, nginx and s3seal
    /// lanes share that bucket), the others through s3seal so they are stored as each rule
    /// stores them.
    async fn seed(&self) -> anyhow::Result<()> {
        let direct = &self.lanes[DIRECT].endpoint;
        for bucket in [load::BUCKET, SSE_BUCKET, CSE_BUCKET] {
            direct.create_bucket(bucket).await?;
        }
        for lane in [DIRECT, S3SEAL_SSE, S3SEAL_CSE] {
            let ep = &self.lanes[lane].endpoint;
            for (size, ..) in SIZES {
                ep.put(&Workload::source_key(size), size).await?;
            }
        }
        Ok(())
    }

    /// Every workload, smallest objects first (only those whose label, e.g. `GET 4 KiB`,
    /// contains `S3SEAL_BENCH_CASE` when it is set: for profiling one case); both proxies'
    /// peak-RSS marks are reset between object sizes.
    async fn measure(&self, plan: &Plan) -> anyhow::Result<(Vec<Case>, Vec<Phase>)> {
        let only = case_filter();
        let mut cases = Vec::new();
        let mut phases = Vec::new();
        for (size, concurrency, gets, puts) in SIZES {
            let plan = Plan {
                rounds: if size >= 256 * MIB {
                    plan.big_rounds
                } else {
                    plan.rounds
                },
                ..*plan
            };
            let requests = |n| {
                if size >= 256 * MIB {
                    n
                } else {
                    plan.requests(n)
                }
            };
            let before = cases.len();
            for (op, n) in [(Op::Get, gets), (Op::Put, puts)] {
                let w = Workload {
                    op,
                    size,
                    concurrency,
                    requests: requests(n),
                };
                if case_label(&w).contains(&only) {
                    cases.push(self.run_case(&plan, w).await?);
                }
            }
            if cases.len() == before {
                continue;
            }
            phases.push(Phase {
                label: format!("{}, c={concurrency}", report::size_label(size)),
                nginx: self.nginx.process().memory()?,
                s3seal: self.proxy.process().memory()?,
            });
            self.nginx.process().reset_peak();
            self.proxy.process().reset_peak();
        }
        Ok((cases, phases))
    }

    /// Runs `w` on every lane, round by round; round `r` starts with lane `r` (mod the lane
    /// count), so slow moments of this shared machine fall on every lane. One unrecorded
    /// warm-up round per lane first (not for 256 MiB, where a round is a whole transfer).
    async fn run_case(&self, plan: &Plan, w: Workload) -> anyhow::Result<Case> {
        let label = case_label(&w);
        if w.size < 256 * MIB {
            let warm = Workload {
                requests: (w.requests / 4).max(w.concurrency),
                ..w
            };
            for lane in &self.lanes {
                load::round(&lane.endpoint, warm).await?;
            }
        }
        let mut results: Vec<LaneResult> =
            self.lanes.iter().map(|_| LaneResult::default()).collect();
        let n = self.lanes.len();
        for r in 0..plan.rounds {
            for i in (0..n).map(|k| (k + r) % n) {
                let lane = &self.lanes[i];
                let process = self.process(lane.server);
                let usage = |p: Option<Processes>| p.map_or(Ok(Usage::default()), Processes::usage);
                let (own, theirs) = (own_cpu()?, usage(process)?);
                let round = load::round(&lane.endpoint, w).await?;
                let result = &mut results[i];
                result.bench_cpu += own_cpu()?.saturating_sub(own);
                result.server += usage(process)? - theirs;
                result.rounds.push(round);
            }
        }
        eprintln!(
            "  {label:<12} c={:<2} {}",
            w.concurrency,
            results
                .iter()
                .zip(LANE_NAMES)
                .map(|(r, name)| format!(
                    "{name} {:.1} MiB/s",
                    report::median_of(&r.rounds, report::mib_per_s)
                ))
                .collect::<Vec<_>>()
                .join("  ")
        );
        Ok(Case {
            label,
            workload: w,
            lanes: results,
        })
    }

    fn process(&self, server: Server) -> Option<Processes> {
        match server {
            Server::None => None,
            Server::Nginx => Some(self.nginx.process()),
            Server::S3seal => Some(self.proxy.process()),
        }
    }
}

/// `S3SEAL_BENCH_CASE`: only the cases whose label contains it run (all when unset).
fn case_filter() -> String {
    std::env::var("S3SEAL_BENCH_CASE").unwrap_or_default()
}

/// `GET 4 KiB`, `PUT 256 MiB`, ...
fn case_label(w: &Workload) -> String {
    format!(
        "{} {}",
        if w.op == Op::Get { "GET" } else { "PUT" },
        report::size_label(w.size)
    )
}

fn own_cpu() -> anyhow::Result<Duration> {
    setup::cpu_time("/proc/self/stat")
}
