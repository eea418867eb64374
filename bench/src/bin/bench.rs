//! The benchmark driver: spawns `bench-node` listeners and clients for
//! peerswarm, rust-libp2p and raw TCP, interleaves rounds, and writes the
//! results. Run through `scripts/bench.sh`; see BENCHMARKS.md.

use clap::{Parser, ValueEnum};
use peerswarm_bench::crypto;
use peerswarm_bench::proc_stat::{clock_ticks_per_second, cpu_ticks, open_fds, rss_bytes};
use peerswarm_bench::report::{self, num, Check, Metric, Report};
use peerswarm_bench::scenario::{Impl, Scenario};
use peerswarm_bench::stats::{percentile, Summary};
use peerswarm_bench::BenchError;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Benchmarks peerswarm against rust-libp2p (see BENCHMARKS.md)")]
struct Cli {
    /// Small sizes and one round: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Rounds per measurement (default 5; 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Bytes per throughput run (default 1 GiB; 64 MiB with --quick).
    #[arg(long)]
    bytes: Option<u64>,
    /// Connection setups per round (default 300).
    #[arg(long)]
    setups: Option<u32>,
    /// Stream opens per round (default 3000).
    #[arg(long)]
    stream_opens: Option<u32>,
    /// Pings per round (default 2000).
    #[arg(long)]
    pings: Option<u32>,
    /// Idle connections in the comparison (default 1000).
    #[arg(long)]
    idle_conns: Option<u32>,
    /// Idle connections in the peerswarm-only run (default 10000).
    #[arg(long)]
    idle_conns_large: Option<u32>,
    /// Bytes per run through the high-BDP relay (default 1 GiB, like the
    /// loopback throughput runs; 64 MiB with --quick).
    #[arg(long)]
    bdp_bytes: Option<u64>,
    /// Run only these sections (comma-separated), e.g. `--only perf,setups`.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Print only; leave BENCHMARKS.md, the JSON record and the chart alone.
    #[arg(long)]
    no_write: bool,
    /// Redraw docs/bench-ratios.svg from bench/results/latest.json; run
    /// nothing.
    #[arg(long)]
    redraw: bool,
    /// The repository root (where BENCHMARKS.md lives).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

/// Parts of the issue's list, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    /// a, b, c: throughput (1 and 4 streams) and CPU per byte.
    Perf,
    /// h: raw TCP (from `perf`) and ChaCha20-Poly1305, the CPU-cost ceiling.
    Cipher,
    /// d: sequential connection setups per second.
    Setups,
    /// f: stream opens per second.
    StreamOpens,
    /// g: ping round trip.
    Ping,
    /// e: idle memory per connection.
    Idle,
    /// i: high bandwidth-delay-product links through the relay.
    Bdp,
}

/// Sizes of one run.
struct Sizes {
    rounds: usize,
    bytes: u64,
    setups: u32,
    stream_opens: u32,
    pings: u32,
    idle_conns: u32,
    idle_conns_large: u32,
    cipher_bytes: u64,
    bdp_bytes: u64,
}

impl Sizes {
    fn from(cli: &Cli) -> Sizes {
        let q = cli.quick;
        Sizes {
            rounds: cli.rounds.unwrap_or(if q { 1 } else { 5 }).max(1),
            bytes: cli.bytes.unwrap_or(if q { 64 << 20 } else { 1 << 30 }),
            setups: cli.setups.unwrap_or(if q { 50 } else { 300 }),
            stream_opens: cli.stream_opens.unwrap_or(if q { 300 } else { 3000 }),
            pings: cli.pings.unwrap_or(if q { 200 } else { 2000 }),
            idle_conns: cli.idle_conns.unwrap_or(if q { 200 } else { 1000 }),
            idle_conns_large: cli.idle_conns_large.unwrap_or(if q { 1000 } else { 10_000 }),
            cipher_bytes: if q { 64 << 20 } else { 1 << 30 },
            bdp_bytes: cli.bdp_bytes.unwrap_or(if q { 64 << 20 } else { 1 << 30 }),
        }
    }
}

const STACKS: [Impl; 2] = [Impl::Peerswarm, Impl::RustLibp2p];
const WITH_TCP: [Impl; 3] = [Impl::Peerswarm, Impl::RustLibp2p, Impl::Tcp];

/// A running `bench-node`. Dropping it closes its stdin (its signal to
/// stop), then kills it if it has not exited within a second.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    fn spawn(bin: &Path, stack: Impl, args: &[String]) -> Result<Node, BenchError> {
        let mut child = Command::new(bin)
            .arg(format!("--impl={stack}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        Ok(Node { child, stdin, stdout })
    }

    fn listener(bin: &Path, stack: Impl) -> Result<(Node, String), BenchError> {
        let mut node = Node::spawn(bin, stack, &["listen".into()])?;
        let addr = node.line()?;
        Ok((node, addr))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Why `/proc/<pid>` is unreadable: the exit status, if it exited.
    fn gone(&mut self) -> BenchError {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("listener exited: {status}").into(),
            _ => "listener's /proc entry unreadable".into(),
        }
    }

    fn line(&mut self) -> Result<String, BenchError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            return Err(format!("bench-node exited ({status}) without output").into());
        }
        Ok(line.trim().to_string())
    }

    /// Waits for a client to exit; an error unless it succeeded.
    fn finish(mut self) -> Result<(), BenchError> {
        self.stdin.take();
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("bench-node failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stdin.take();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one client to completion and parses its result line.
fn client(bin: &Path, stack: Impl, addr: &str, scenario: &Scenario) -> Result<Value, BenchError> {
    let mut args = vec!["client".to_string(), addr.to_string()];
    args.extend(scenario.args());
    let mut node = Node::spawn(bin, stack, &args)?;
    let line = node.line()?;
    node.finish()?;
    Ok(serde_json::from_str(&line)?)
}

fn field(value: &Value, name: &str) -> Result<f64, BenchError> {
    value.get(name).and_then(Value::as_f64).ok_or_else(|| format!("result lacks {name}: {value}").into())
}

/// Reports a failed run and goes on: one stack's failure must not hide
/// the other's figures.
fn warn(what: &str, stack: Impl, error: BenchError) {
    eprintln!("  ! {what} ({stack}) failed: {error}");
}

fn print_metric(m: &Metric) {
    let ratio = m.ratio().map(|r| format!("  ratio {}×", num(r))).unwrap_or_default();
    println!(
        "  {:<44} {:>8}  peerswarm {}  rust-libp2p {}{}{ratio}",
        m.label,
        m.unit,
        report::cell(m.summary("peerswarm")),
        report::cell(m.summary("rust-libp2p")),
        m.summary("tcp").map(|s| format!("  tcp {}", report::cell(Some(s)))).unwrap_or_default(),
    );
}

struct Driver {
    bin: PathBuf,
    sizes: Sizes,
    hz: f64,
}

impl Driver {
    /// a, b, c: perf throughput with 1 and 4 streams, CPU per byte.
    fn perf(&self) -> Result<Vec<Metric>, BenchError> {
        let gib = num(self.sizes.bytes as f64 / (1u64 << 30) as f64);
        let mut metrics = vec![
            Metric::new(format!("Single-stream upload ({gib} GiB)"), "Gbit/s", true).with_target(1.45),
            Metric::new(format!("Single-stream download ({gib} GiB)"), "Gbit/s", true).with_target(1.45),
            Metric::new("4 streams, one connection, upload", "Gbit/s", true).with_target(1.25),
            Metric::new("4 streams, one connection, download", "Gbit/s", true).with_target(1.25),
            Metric::new("CPU per byte, single stream, both processes", "ns/B", false),
        ];
        let listeners = WITH_TCP
            .iter()
            .map(|&stack| Node::listener(&self.bin, stack).map(|(node, addr)| (stack, node, addr)))
            .collect::<Result<Vec<_>, _>>()?;
        let n = self.sizes.bytes;
        let runs = [
            Scenario::Perf { upload: n, download: 0, streams: 1 },
            Scenario::Perf { upload: 0, download: n, streams: 1 },
            Scenario::Perf { upload: n, download: 0, streams: 4 },
            Scenario::Perf { upload: 0, download: n, streams: 4 },
        ];
        for round in 0..self.sizes.rounds {
            println!("  perf round {}/{}", round + 1, self.sizes.rounds);
            for (i, scenario) in runs.iter().enumerate() {
                for (stack, listener, addr) in &listeners {
                    let before = cpu_ticks(listener.pid()).unwrap_or(0);
                    let result = client(&self.bin, *stack, addr, scenario);
                    let after = cpu_ticks(listener.pid()).unwrap_or(0);
                    let out = match result {
                        Ok(out) => out,
                        Err(e) => {
                            warn("perf", *stack, e);
                            continue;
                        }
                    };
                    let (secs, bytes) = (field(&out, "secs")?, field(&out, "bytes")?);
                    metrics[i].push(stack.name(), bytes * 8.0 / secs / 1e9);
                    if i < 2 {
                        let ticks = field(&out, "cpu_ticks")? + (after - before) as f64;
                        metrics[4].push(stack.name(), ticks / self.hz * 1e9 / bytes);
                    }
                }
            }
        }
        metrics.iter().for_each(print_metric);
        Ok(metrics)
    }

    /// d: sequential setups (dial, handshake, one ping, close) per second.
    fn setups(&self) -> Result<Metric, BenchError> {
        let mut metric = Metric::new(
            format!("Connection setups/s (dial, handshake, ping, close; {} in a row)", self.sizes.setups),
            "1/s",
            true,
        )
        .with_target(2.0);
        self.rate(&mut metric, &Scenario::Setups { count: self.sizes.setups })?;
        Ok(metric)
    }

    /// f: stream opens (open, negotiate, 1-byte echo, close) per second.
    fn stream_opens(&self) -> Result<Metric, BenchError> {
        let count = self.sizes.stream_opens;
        let mut metric = Metric::new(
            format!("Stream opens/s (open, negotiate, 1-byte echo, close; {count} in a row)"),
            "1/s",
            true,
        )
        .with_target(2.0);
        self.rate(&mut metric, &Scenario::StreamOpens { count })?;
        Ok(metric)
    }

    fn rate(&self, metric: &mut Metric, scenario: &Scenario) -> Result<(), BenchError> {
        let listeners = self.listeners()?;
        for _ in 0..self.sizes.rounds {
            for (stack, _listener, addr) in &listeners {
                match client(&self.bin, *stack, addr, scenario) {
                    Ok(out) => metric.push(stack.name(), field(&out, "count")? / field(&out, "secs")?),
                    Err(e) => warn(&metric.label, *stack, e),
                }
            }
        }
        print_metric(metric);
        Ok(())
    }

    fn listeners(&self) -> Result<Vec<(Impl, Node, String)>, BenchError> {
        STACKS
            .iter()
            .map(|&stack| Node::listener(&self.bin, stack).map(|(node, addr)| (stack, node, addr)))
            .collect()
    }

    /// g: ping round trips on one stream, median and p99 per round.
    fn ping(&self) -> Result<Vec<Metric>, BenchError> {
        let mut median = Metric::new("Ping round trip, median", "µs", false);
        let mut p99 = Metric::new("Ping round trip, p99", "µs", false);
        let listeners = self.listeners()?;
        for _ in 0..self.sizes.rounds {
            for (stack, _listener, addr) in &listeners {
                match client(&self.bin, *stack, addr, &Scenario::Ping { count: self.sizes.pings }) {
                    Ok(out) => {
                        let rtts: Vec<f64> = out
                            .get("rtts_us")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_f64).collect())
                            .unwrap_or_default();
                        if let (Some(m), Some(p)) = (Summary::of(&rtts), percentile(&rtts, 99.0)) {
                            median.push(stack.name(), m.median);
                            p99.push(stack.name(), p);
                        }
                    }
                    Err(e) => warn("ping", *stack, e),
                }
            }
        }
        print_metric(&median);
        print_metric(&p99);
        Ok(vec![median, p99])
    }

    /// Listener RSS growth per connection with `conns` idle connections.
    fn idle_once(&self, stack: Impl, conns: u32) -> Result<f64, BenchError> {
        let (mut listener, addr) = Node::listener(&self.bin, stack)?;
        std::thread::sleep(Duration::from_millis(300));
        let before = rss_bytes(listener.pid()).ok_or_else(|| listener.gone())?;
        let fds_before = open_fds(listener.pid()).ok_or_else(|| listener.gone())?;
        let mut args = vec!["client".to_string(), addr];
        args.extend(Scenario::Idle { conns }.args());
        let mut client = Node::spawn(&self.bin, stack, &args)?;
        let out: Value = serde_json::from_str(&client.line()?)?;
        if field(&out, "conns")? as u32 != conns {
            return Err(format!("only {out} connections came up").into());
        }
        // Let handshake buffers drain and both sides settle.
        std::thread::sleep(Duration::from_secs(2));
        let after = rss_bytes(listener.pid()).ok_or_else(|| listener.gone())?;
        // The client's word is not enough: a listener may have closed some.
        let held = open_fds(listener.pid()).ok_or_else(|| listener.gone())?.saturating_sub(fds_before);
        client.finish()?;
        if held < conns as usize {
            return Err(format!("the listener holds only {held} of {conns} connections").into());
        }
        Ok((after.saturating_sub(before)) as f64 / f64::from(conns) / 1024.0)
    }

    /// e: idle memory per connection, and peerswarm alone at a larger N.
    fn idle(&self) -> Result<(Vec<Metric>, Check), BenchError> {
        let n = self.sizes.idle_conns;
        let mut metric =
            Metric::new(format!("Idle memory per connection (listener RSS growth / {n})"), "KiB", false)
                .with_target(1.0 / 3.0);
        for _ in 0..self.sizes.rounds.min(3) {
            for stack in STACKS {
                match self.idle_once(stack, n) {
                    Ok(kib) => metric.push(stack.name(), kib),
                    Err(e) => warn("idle", stack, e),
                }
            }
        }
        print_metric(&metric);
        let large = self.sizes.idle_conns_large;
        let mut alone = Metric::new(format!("Idle memory per connection, {large} connections"), "KiB", false);
        let check = match self.idle_once(Impl::Peerswarm, large) {
            Ok(kib) => {
                alone.push("peerswarm", kib);
                Check {
                    goal: "10 000 idle connections".into(),
                    measured: format!("{large} held by one peerswarm listener, {} KiB each", num(kib)),
                    // Below 10 000 (--quick) the target is not measured.
                    met: (large >= 10_000).then_some(true),
                }
            }
            Err(e) => {
                warn("idle (large)", Impl::Peerswarm, e.to_string().into());
                Check {
                    goal: "10 000 idle connections".into(),
                    measured: format!("failed at {large}: {e}"),
                    met: Some(false),
                }
            }
        };
        print_metric(&alone);
        Ok((vec![metric, alone], check))
    }
}

/// The emulated links of item i: (RTT in ms, rate cap in Mbit/s).
const LINKS: [(u64, u64); 2] = [(60, 2500), (200, 1000)];

impl Driver {
    /// i: perf downloads and connection + first byte through the relay.
    fn bdp(&self) -> Result<(Vec<Metric>, Vec<Check>), BenchError> {
        let mut metrics = Vec::new();
        let mut checks = Vec::new();
        let mib = self.sizes.bdp_bytes >> 20;
        for (rtt_ms, rate_mbit) in LINKS {
            let link = format!("{rtt_ms} ms RTT, {} Gbit/s", num(rate_mbit as f64 / 1000.0));
            let mut throughput = Metric::new(
                format!("High-BDP download ({link}; {mib} MiB; fixed round trips excluded)"),
                "Gbit/s",
                true,
            );
            let mut first = Metric::new(format!("Connection + first byte ({link})"), "RTT", false);
            let mut nodes = Vec::new();
            for stack in WITH_TCP {
                let (listener, addr) = Node::listener(&self.bin, stack)?;
                let args = vec![
                    "relay".to_string(),
                    addr,
                    format!("--rtt-ms={rtt_ms}"),
                    format!("--rate-mbit={rate_mbit}"),
                ];
                let mut relay = Node::spawn(&self.bin, Impl::Tcp, &args)?;
                let relayed = relay.line()?;
                nodes.push((stack, listener, relay, relayed));
            }
            let rtt = rtt_ms as f64 / 1000.0;
            for _ in 0..self.sizes.rounds {
                for (stack, _, _, addr) in &nodes {
                    match client(&self.bin, *stack, addr, &Scenario::FirstByte) {
                        Ok(out) => first.push(stack.name(), field(&out, "secs")? / rtt),
                        Err(e) => warn("first byte", *stack, e),
                    }
                }
            }
            print_metric(&first);
            let download = Scenario::Perf { upload: 0, download: self.sizes.bdp_bytes, streams: 1 };
            for _ in 0..self.sizes.rounds.min(3) {
                for (stack, _, _, addr) in &nodes {
                    match client(&self.bin, *stack, addr, &download) {
                        Ok(out) => {
                            // The target leaves out the round trips every
                            // transfer pays before data can flow: the timed
                            // part of a raw TCP run includes connect and
                            // request (2), of a libp2p run only the request
                            // (its connection is set up before the clock
                            // starts).
                            let fixed = if *stack == Impl::Tcp { 2.0 } else { 1.0 } * rtt;
                            let secs = field(&out, "secs")? - fixed;
                            throughput.push(stack.name(), field(&out, "bytes")? * 8.0 / secs / 1e9)
                        }
                        Err(e) => warn("high-BDP download", *stack, e),
                    }
                }
            }
            print_metric(&throughput);
            let versus_tcp = throughput
                .summary("peerswarm")
                .zip(throughput.summary("tcp"))
                .map(|(ours, tcp)| ours.median / tcp.median);
            checks.push(Check {
                goal: format!("High-BDP ({link}) ≥ 0.95× raw TCP"),
                measured: versus_tcp
                    .map(|r| format!("{}× raw TCP", num(r)))
                    .unwrap_or_else(|| "failed".into()),
                met: versus_tcp.map(|r| r >= 0.95),
            });
            // Round trips counted: the remainder is processing time, the
            // same few milliseconds at every RTT.
            let rtts = first.summary("peerswarm").map(|s| s.median);
            checks.push(Check {
                goal: format!("Connection + first byte ≤ 3 RTT ({link})"),
                measured: rtts
                    .map(|r| {
                        let extra_ms = (r - r.round()) * rtt * 1e3;
                        format!("{} RTT: {} round trips {:+.1} ms", num(r), r.round(), extra_ms)
                    })
                    .unwrap_or_else(|| "failed".into()),
                met: rtts.map(|r| r.round() <= 3.0),
            });
            metrics.push(throughput);
            metrics.push(first);
        }
        Ok((metrics, checks))
    }
}

fn shell(command: &str, args: &[&str]) -> String {
    Command::new(command)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn context(sizes: &Sizes, quick: bool) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    vec![
        ("Date".into(), shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("Commit".into(), shell("git", &["rev-parse", "--short", "HEAD"])),
        ("Machine".into(), format!("{cpu}, {cores} cores (`nproc`), Linux {}", shell("uname", &["-r"]))),
        ("Load average at start".into(), load.join(" ")),
        (
            "Run".into(),
            format!(
                "{}{} round(s), interleaved (peerswarm, rust-libp2p, raw TCP, ...); {} MiB per throughput run; loopback",
                if quick { "`--quick` smoke run, not a measurement: " } else { "" },
                sizes.rounds,
                sizes.bytes >> 20
            ),
        ),
    ]
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("bench: {error}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), BenchError> {
    if cli.redraw {
        let record = std::fs::read_to_string(cli.root.join("bench/results/latest.json"))?;
        let metrics = Report::metrics_from_json(&serde_json::from_str(&record)?);
        let report = Report { metrics, ..Report::default() };
        return report.draw_chart(&cli.root.join("docs/bench-ratios.svg"), CHART_TITLE);
    }
    let sizes = Sizes::from(&cli);
    let bin = std::env::current_exe()?.with_file_name("bench-node");
    if !bin.exists() {
        return Err(format!(
            "{} not found; build with `cargo build --release -p peerswarm-bench`",
            bin.display()
        )
        .into());
    }
    let wants = |s: Section| cli.only.is_empty() || cli.only.contains(&s);
    let mut report = Report { context: context(&sizes, cli.quick), ..Report::default() };
    let driver = Driver { bin, hz: clock_ticks_per_second() as f64, sizes };

    if wants(Section::Perf) || wants(Section::Cipher) {
        println!("a, b, c: throughput and CPU per byte");
        report.metrics.extend(driver.perf()?);
    }
    if wants(Section::Cipher) {
        println!("h: physical references");
        cipher(&driver, &mut report);
    }
    if wants(Section::Setups) {
        println!("d: connection setups");
        report.metrics.push(driver.setups()?);
    }
    if wants(Section::StreamOpens) {
        println!("f: stream opens");
        report.metrics.push(driver.stream_opens()?);
    }
    if wants(Section::Ping) {
        println!("g: ping");
        report.metrics.extend(driver.ping()?);
    }
    let mut idle_check = None;
    if wants(Section::Idle) {
        println!("e: idle memory");
        let (metrics, check) = driver.idle()?;
        report.metrics.extend(metrics);
        idle_check = Some(check);
    }
    let mut bdp_checks = Vec::new();
    if wants(Section::Bdp) {
        println!("i: high bandwidth-delay-product links (relay)");
        let (metrics, checks) = driver.bdp()?;
        report.metrics.extend(metrics);
        bdp_checks = checks;
    }
    checks(&mut report, idle_check, bdp_checks);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    report.context.insert(4, ("Load average at end".into(), load.join(" ")));

    println!();
    println!("{}", report.markdown());
    if !cli.no_write {
        write(&cli.root, &report)?;
    }
    Ok(())
}

/// h: raw TCP and cipher rates, and the CPU-cost ceiling of an encrypted
/// transfer: raw TCP's CPU per byte (both processes) + seal + open.
fn cipher(driver: &Driver, report: &mut Report) {
    // A physical bound: the least disturbed of a few runs.
    let runs: Vec<_> =
        (0..driver.sizes.rounds.max(3)).map(|_| crypto::measure(driver.sizes.cipher_bytes / 2)).collect();
    let rates = crypto::CipherRates {
        seal_bytes_per_sec: runs.iter().map(|r| r.seal_bytes_per_sec).fold(0.0, f64::max),
        open_bytes_per_sec: runs.iter().map(|r| r.open_bytes_per_sec).fold(0.0, f64::max),
    };
    let seal_ns = 1e9 / rates.seal_bytes_per_sec;
    let open_ns = 1e9 / rates.open_bytes_per_sec;
    let find = |prefix: &str| report.metrics.iter().find(|m| m.label.starts_with(prefix));
    let cpu = find("CPU per byte, single stream");
    let tcp_ns = cpu.and_then(|m| m.summary("tcp")).map(|s| s.median);
    let refs = &mut report.references;
    for (label, direction) in [("upload", "Single-stream upload"), ("download", "Single-stream download")] {
        if let Some(s) = find(direction).and_then(|m| m.summary("tcp")) {
            refs.push((
                format!("Raw TCP loopback, single stream, {label}"),
                format!("{} Gbit/s", report::cell(Some(s))),
            ));
        }
    }
    if let Some(tcp) = tcp_ns {
        refs.push(("Raw TCP CPU per byte, both processes".into(), format!("{} ns/B", num(tcp))));
    }
    refs.push((
        "ChaCha20-Poly1305 seal, one core (ring, 65 519-byte frames, best run)".into(),
        format!("{} GB/s ({} ns/B)", num(rates.seal_bytes_per_sec / 1e9), num(seal_ns)),
    ));
    refs.push((
        "ChaCha20-Poly1305 open, one core".into(),
        format!("{} GB/s ({} ns/B)", num(rates.open_bytes_per_sec / 1e9), num(open_ns)),
    ));
    if let Some(tcp) = tcp_ns {
        let ceiling = tcp + seal_ns + open_ns;
        refs.push((
            "CPU-cost ceiling of an encrypted transfer (TCP + seal + open)".into(),
            format!("{} ns/B", num(ceiling)),
        ));
        for stack in ["peerswarm", "rust-libp2p"] {
            if let Some(s) = cpu.and_then(|m| m.summary(stack)) {
                refs.push((
                    format!("{stack}: ceiling / measured CPU per byte"),
                    format!("{}× ({} ns/B measured)", num(ceiling / s.median), num(s.median)),
                ));
            }
        }
    }

    // For reading the ceiling, not a target: the cipher as a transfer runs
    // it, sealing on one core while the other opens, on data out of L1.
    let both: Vec<_> = (0..driver.sizes.rounds.max(3))
        .map(|_| crypto::measure_concurrent(driver.sizes.cipher_bytes / 2))
        .collect();
    let seal_both = 1e9 / both.iter().map(|r| r.seal_bytes_per_sec).fold(0.0, f64::max);
    let open_both = 1e9 / both.iter().map(|r| r.open_bytes_per_sec).fold(0.0, f64::max);
    refs.push((
        "ChaCha20-Poly1305 seal and open at once on both cores, 16-frame spans (best run)".into(),
        format!("seal {} ns/B, open {} ns/B", num(seal_both), num(open_both)),
    ));
    if let Some(tcp) = tcp_ns {
        let busy_ceiling = tcp + seal_both + open_both;
        let measured = cpu.and_then(|m| m.summary("peerswarm")).map(|s| s.median);
        refs.push((
            "Same ceiling with the both-cores cipher rates (informational)".into(),
            match measured {
                Some(m) => format!("{} ns/B; peerswarm at {}×", num(busy_ceiling), num(busy_ceiling / m)),
                None => format!("{} ns/B", num(busy_ceiling)),
            },
        ));
    }
}

/// The issue's targets, from the metrics.
fn checks(report: &mut Report, idle: Option<Check>, bdp: Vec<Check>) {
    let ratio_check = |goal: &str, prefix: &str, report: &Report| -> Check {
        let found: Vec<&Metric> = report.metrics.iter().filter(|m| m.label.starts_with(prefix)).collect();
        let ratios: Vec<String> =
            found.iter().filter_map(|m| m.ratio().map(|r| format!("{} {}×", m.label, num(r)))).collect();
        let met = if found.is_empty() || found.iter().any(|m| m.met().is_none()) {
            None
        } else {
            Some(found.iter().all(|m| m.met() == Some(true)))
        };
        let measured = if ratios.is_empty() { "not run".into() } else { ratios.join("; ") };
        Check { goal: goal.into(), measured, met }
    };
    let mut checks = vec![ratio_check("Single-stream ≥ 1.45× rust-libp2p", "Single-stream", report)];
    let ceiling =
        report.references.iter().find(|(l, _)| l.starts_with("peerswarm: ceiling")).map(|(_, v)| v.clone());
    let efficiency = ceiling.as_deref().and_then(|v| v.split('×').next()).and_then(|v| v.parse::<f64>().ok());
    checks.push(Check {
        goal: "Single-stream ≥ 0.9× the CPU-cost ceiling (bytes per CPU-second)".into(),
        measured: ceiling.unwrap_or_else(|| "not run".into()),
        met: efficiency.map(|e| e >= 0.9),
    });
    checks.push(ratio_check("4 streams ≥ 1.25×", "4 streams", report));
    checks.push(ratio_check("Connection setups/s ≥ 2×", "Connection setups", report));
    checks.push(ratio_check("Idle memory per connection ≤ ⅓", "Idle memory per connection (", report));
    checks.push(idle.unwrap_or(Check {
        goal: "10 000 idle connections".into(),
        measured: "not run".into(),
        met: None,
    }));
    checks.push(ratio_check("Stream opens/s ≥ 2×", "Stream opens", report));
    if bdp.is_empty() {
        for goal in ["High-BDP link ≥ 0.95× raw TCP", "Connection + first byte ≤ 3 RTT"] {
            checks.push(Check { goal: goal.into(), measured: "not run".into(), met: None });
        }
    }
    checks.extend(bdp);
    report.checks = checks;
}

const CHART_TITLE: &str = "peerswarm vs rust-libp2p (loopback; see BENCHMARKS.md)";

fn write(root: &Path, report: &Report) -> Result<(), BenchError> {
    let results = root.join("bench/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("latest.json"), serde_json::to_string_pretty(&report.to_json())? + "\n")?;
    let doc_path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&doc_path, report::splice(&doc, &report.markdown()))?;
    std::fs::create_dir_all(root.join("docs"))?;
    let chart = root.join("docs/bench-ratios.svg");
    report.draw_chart(&chart, CHART_TITLE)?;
    println!("wrote BENCHMARKS.md, {}, bench/results/latest.json", chart.display());
    Ok(())
}
