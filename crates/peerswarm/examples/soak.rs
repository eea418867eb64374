//! Soak test (issue 6): connection churn, stream churn, pinging and echo
//! against one node for a given time, then a check that open file
//! descriptors, live tokio tasks and RSS came back to their baseline.
//!
//! ```text
//! cargo run --release -p peerswarm --example soak -- [--duration SECS] [--report SECS]
//!                                                    [--warmup SECS] [--tolerance PERCENT]
//!                                                    [--rss-slack MIB]
//! ```
//!
//! (`scripts/soak.sh [SECS]` does this; 600 s by default.)
//!
//! Four hosts in this process, all over TCP + Noise + yamux on loopback:
//! the server (ping, identify, echo), and three clients running at once:
//!
//! * churn: dial, ping, close, in a loop (a new connection each time);
//! * streams: four workers opening an echo stream, sending 16 bytes,
//!   reading them back and closing, in a loop, over one connection;
//! * steady: one ping stream pinging every 10 ms, and 64 KiB echoes in a
//!   loop, over one connection.
//!
//! The same workload runs first as a warm-up (allocator pools, caches and
//! lazily created runtime resources are not leaks); then every client
//! disconnects and the baseline is taken. After the soak proper, every
//! client disconnects again and, once things settle (at most 30 s), the
//! figures must be within `--tolerance` (5 %) above the baseline (for the
//! small fd and task counts that means exactly back; RSS may also exceed
//! it by `--rss-slack`, 2 MiB, since the whole process holds under 10 MiB and
//! the allocator keeps some freed pages). It prints
//! `fds/tasks/RSS` at the start, every `--report` seconds and at the end,
//! and exits with status 1 if a figure did not come back or any operation
//! failed.

use peerswarm::host::{Host, HostConfig, ECHO_PROTOCOL};
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::multiaddr::Multiaddr;
use peerswarm::swarm::Swarm;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const MIB: f64 = (1 << 20) as f64;

struct Args {
    duration: Duration,
    report: Duration,
    warmup: Duration,
    tolerance: f64,
    rss_slack: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: soak [--duration SECS] [--report SECS] [--warmup SECS] [--tolerance PERCENT] [--rss-slack MIB]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        duration: Duration::from_secs(600),
        report: Duration::ZERO,
        warmup: Duration::ZERO,
        tolerance: 5.0,
        rss_slack: 2 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> f64 { it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
        match flag.as_str() {
            "--duration" => args.duration = Duration::from_secs_f64(value()),
            "--report" => args.report = Duration::from_secs_f64(value()),
            "--warmup" => args.warmup = Duration::from_secs_f64(value()),
            "--tolerance" => args.tolerance = value(),
            "--rss-slack" => args.rss_slack = (value() * MIB) as u64,
            _ => usage(),
        }
    }
    if args.report.is_zero() {
        args.report = (args.duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
    }
    if args.warmup.is_zero() {
        args.warmup = (args.duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(30));
    }
    args
}

/// Open descriptors, live tasks and RSS.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    fds: usize,
    tasks: usize,
    rss: u64,
}

impl Snapshot {
    fn now() -> Snapshot {
        let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
        let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        Snapshot { fds, tasks, rss }
    }

    /// Whether every figure is at most `tolerance` percent above `baseline`
    /// (RSS: plus `rss_slack` bytes).
    fn within(&self, baseline: &Snapshot, tolerance: f64, rss_slack: u64) -> bool {
        let ok = |now: f64, base: f64, slack: f64| now <= base * (1.0 + tolerance / 100.0) + slack;
        ok(self.fds as f64, baseline.fds as f64, 0.0)
            && ok(self.tasks as f64, baseline.tasks as f64, 0.0)
            && ok(self.rss as f64, baseline.rss as f64, rss_slack as f64)
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fds={} tasks={} rss={:.1}MiB", self.fds, self.tasks, self.rss as f64 / MIB)
    }
}

/// What the workload did.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    streams: AtomicU64,
    pings: AtomicU64,
    max_rtt_us: AtomicU64,
    echo_bytes: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn error(&self, what: &str, error: impl std::fmt::Display) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            eprintln!("[soak] error: {what}: {error}");
        }
    }

    fn line(&self) -> String {
        format!(
            "connections={} streams={} pings={} (max rtt {:.1}ms) echo={:.0}MiB errors={}",
            self.connections.load(Ordering::Relaxed),
            self.streams.load(Ordering::Relaxed),
            self.pings.load(Ordering::Relaxed),
            self.max_rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
            self.echo_bytes.load(Ordering::Relaxed) as f64 / MIB,
            self.errors.load(Ordering::Relaxed),
        )
    }
}

fn host() -> Host {
    Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default())
}

/// The server, and three clients that know its address.
struct Nodes {
    server: Host,
    churn: Host,
    streams: Host,
    steady: Host,
}

impl Nodes {
    async fn start() -> Nodes {
        let server = host();
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("address");
        let addr = server.swarm().add_listen_addr(&listen).await.expect("listen");
        let nodes = Nodes { server, churn: host(), streams: host(), steady: host() };
        for client in nodes.clients() {
            client
                .swarm()
                .peerstore()
                .add_addrs_now(
                    nodes.server.local_peer(),
                    vec![addr.clone()],
                    peerswarm::peerstore::PERMANENT_ADDR_TTL,
                )
                .expect("peerstore");
        }
        nodes
    }

    fn clients(&self) -> [&Host; 3] {
        [&self.churn, &self.streams, &self.steady]
    }

    /// Closes every client's connections and waits (≤ 30 s) until no side
    /// holds one.
    async fn disconnect(&self) -> bool {
        let server = self.server.local_peer();
        for client in self.clients() {
            client.swarm().close_peer(&server).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.server.swarm().conns().is_empty()
                && self.clients().iter().all(|c| c.swarm().conns().is_empty())
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

async fn churn_loop(client: Host, server: PeerId, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    while !stop.load(Ordering::Relaxed) {
        let cycle = async {
            client.swarm().dial_peer(&server).await.map_err(|e| format!("dial: {e}"))?;
            client.ping(&server).await.map_err(|e| format!("ping: {e}"))?;
            client.swarm().close_peer(&server).await;
            Ok::<_, String>(())
        };
        match tokio::time::timeout(Duration::from_secs(30), cycle).await {
            Ok(Ok(())) => {
                counters.connections.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => counters.error("connection cycle", e),
            Err(_) => counters.error("connection cycle", "timed out"),
        }
    }
}

async fn stream_loop(client: Host, server: PeerId, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let mut i = 0u128;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let cycle = async {
            let mut stream =
                client.new_stream(&server, &[ECHO_PROTOCOL]).await.map_err(|e| format!("open: {e}"))?;
            let msg = i.to_be_bytes();
            stream.write_all(&msg).await.map_err(|e| format!("write: {e}"))?;
            stream.close_write().await.map_err(|e| format!("close write: {e}"))?;
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.map_err(|e| format!("read: {e}"))?;
            if back != msg {
                return Err("echo mismatch".to_owned());
            }
            stream.close().await.map_err(|e| format!("close: {e}"))?;
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(30), cycle).await {
            Ok(Ok(())) => {
                counters.streams.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => counters.error("stream cycle", e),
            Err(_) => counters.error("stream cycle", "timed out"),
        }
    }
}

async fn ping_loop(client: Host, server: PeerId, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    while !stop.load(Ordering::Relaxed) {
        let mut pinger = match client.pinger(&server).await {
            Ok(p) => p,
            Err(e) => {
                counters.error("open ping stream", e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_secs(30), pinger.ping()).await {
                Ok(Ok(rtt)) => {
                    counters.pings.fetch_add(1, Ordering::Relaxed);
                    counters.max_rtt_us.fetch_max(rtt.as_micros() as u64, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    counters.error("ping", e);
                    break;
                }
                Err(_) => {
                    counters.error("ping", "timed out");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pinger.close().await;
    }
}

async fn echo_loop(client: Host, server: PeerId, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let msg: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    while !stop.load(Ordering::Relaxed) {
        let round = async {
            let mut stream =
                client.new_stream(&server, &[ECHO_PROTOCOL]).await.map_err(|e| format!("open: {e}"))?;
            let (mut rd, mut wr) = tokio::io::split(&mut stream);
            let write = async {
                wr.write_all(&msg).await?;
                wr.shutdown().await
            };
            let mut back = Vec::new();
            let (w, r) = tokio::join!(write, rd.read_to_end(&mut back));
            w.map_err(|e| format!("write: {e}"))?;
            r.map_err(|e| format!("read: {e}"))?;
            if back != msg {
                return Err("echo mismatch".to_owned());
            }
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(30), round).await {
            Ok(Ok(())) => {
                counters.echo_bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => counters.error("echo", e),
            Err(_) => counters.error("echo", "timed out"),
        }
    }
}

/// Runs the workload for `duration`, reporting every `report` (if any).
async fn run(
    nodes: &Nodes,
    duration: Duration,
    report: Option<Duration>,
    counters: &Arc<Counters>,
    label: &str,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let server = nodes.server.local_peer();
    let mut workers = JoinSet::new();
    workers.spawn(churn_loop(nodes.churn.clone(), server, stop.clone(), counters.clone()));
    for _ in 0..4 {
        workers.spawn(stream_loop(nodes.streams.clone(), server, stop.clone(), counters.clone()));
    }
    workers.spawn(ping_loop(nodes.steady.clone(), server, stop.clone(), counters.clone()));
    workers.spawn(echo_loop(nodes.steady.clone(), server, stop.clone(), counters.clone()));

    let started = Instant::now();
    let end = started + duration;
    let mut next_report = report.map(|r| started + r);
    while Instant::now() < end {
        let wake = next_report.map_or(end, |r| r.min(end));
        tokio::time::sleep_until(wake.into()).await;
        if let (Some(at), Some(every)) = (next_report, report) {
            if Instant::now() >= at && Instant::now() < end {
                println!(
                    "[soak {label} t={:>4.0}s] {} | {}",
                    started.elapsed().as_secs_f64(),
                    Snapshot::now(),
                    counters.line()
                );
                next_report = Some(at + every);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            counters.error("worker task", e);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    println!(
        "[soak] duration {:?}, warm-up {:?}, report every {:?}, tolerance {}% (RSS + {:.1} MiB)",
        args.duration,
        args.warmup,
        args.report,
        args.tolerance,
        args.rss_slack as f64 / MIB
    );
    let nodes = Nodes::start().await;
    println!("[soak] start (before warm-up): {}", Snapshot::now());

    let warmup = Arc::new(Counters::default());
    run(&nodes, args.warmup, None, &warmup, "warm-up").await;
    if !nodes.disconnect().await {
        eprintln!("[soak] connections left after the warm-up");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = Snapshot::now();
    println!("[soak] warm-up: {}", warmup.line());
    println!("[soak] baseline: {baseline}");

    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    run(&nodes, args.duration, Some(args.report), &counters, "run").await;
    let elapsed = started.elapsed();
    println!(
        "[soak] workload done after {:.0}s: {} | {}",
        elapsed.as_secs_f64(),
        Snapshot::now(),
        counters.line()
    );

    let disconnected = nodes.disconnect().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut end = Snapshot::now();
    while !end.within(&baseline, args.tolerance, args.rss_slack) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        end = Snapshot::now();
    }
    let errors = counters.errors.load(Ordering::Relaxed) + warmup.errors.load(Ordering::Relaxed);
    let back = end.within(&baseline, args.tolerance, args.rss_slack);
    println!("[soak] end: {end} (baseline {baseline})");
    let delta = |now: f64, base: f64| if base > 0.0 { (now - base) / base * 100.0 } else { 0.0 };
    println!(
        "[soak] change: fds {:+.1}%, tasks {:+.1}%, rss {:+.1}%",
        delta(end.fds as f64, baseline.fds as f64),
        delta(end.tasks as f64, baseline.tasks as f64),
        delta(end.rss as f64, baseline.rss as f64)
    );
    if back && errors == 0 && disconnected {
        println!("[soak] OK: back to baseline within {}%, no errors", args.tolerance);
    } else {
        println!(
            "[soak] FAIL: back to baseline: {back}; errors: {errors}; all connections closed: {disconnected}"
        );
        std::process::exit(1);
    }
}
