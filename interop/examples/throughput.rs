//! Single-stream throughput over loopback: peerswarm ↔ peerswarm against
//! rust-libp2p ↔ rust-libp2p, in the same process and the same script.
//!
//! ```sh
//! cargo run --release -p peerswarm-interop --example throughput            # 3 rounds each, 1 GiB
//! cargo run --release -p peerswarm-interop --example throughput -- 5 256    # 5 rounds each, 256 MiB
//! ```
//!
//! Both stacks run TCP + Noise + yamux with their default settings on one
//! tokio multi-threaded runtime (one worker per core), sender and receiver
//! in this one process. Each stack gets one connection, set up before any
//! timing; each round opens a new stream on it, writes the payload in
//! 64 KiB writes, half-closes, and waits for the receiver to report how
//! many bytes it read. The round's time runs from opening the stream to
//! that report. Rounds alternate between the stacks (peerswarm first), so a
//! change in machine load hits both alike.
//!
//! Printed per round: Gbit/s (10⁹ bit/s) and the CPU time the whole process
//! (both ends of the transfer) spent per GiB, from `/proc/self/stat`
//! (`utime + stime`, in USER_HZ = 100 ticks per second). Then the median
//! and min–max per stack, and the ratio of the medians. Also the load
//! average before and after: on a shared machine, quote it with the result.

use std::error::Error;
use std::time::{Duration, Instant};

use futures::StreamExt;
use peerswarm::identity::Keypair;
use peerswarm::{Endpoint, EndpointConfig};
use peerswarm_interop::{RustNode, RustNodeConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::compat::FuturesAsyncReadCompatExt;

const PROTOCOL: &str = "/throughput/1.0.0";
const WRITE_SIZE: usize = 64 * 1024;
const MIB: u64 = 1024 * 1024;
const GIB: f64 = (1u64 << 30) as f64;
/// Bounds one round, so a stuck transfer fails instead of hanging.
const ROUND_LIMIT: Duration = Duration::from_secs(120);

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Writes `total` bytes in 64 KiB writes, half-closes, and waits for the
/// receiver's 8-byte count.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, total: u64) -> Result<()> {
    let chunk = vec![0x5a; WRITE_SIZE];
    let mut left = total;
    while left > 0 {
        let n = left.min(WRITE_SIZE as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.shutdown().await?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await?;
    let received = u64::from_be_bytes(count);
    if received != total {
        return Err(format!("receiver got {received} bytes of {total}").into());
    }
    Ok(())
}

/// Reads to EOF, then reports the byte count and closes.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    stream.write_all(&total.to_be_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, i.e. the 12th and 13th after it.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[derive(Clone, Copy)]
enum Stack {
    Peerswarm,
    RustLibp2p,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Peerswarm => "peerswarm",
            Stack::RustLibp2p => "rust-libp2p",
        }
    }
}

/// A connected pair of one stack, ready to open streams.
enum Pair {
    Peerswarm { conn: peerswarm::Connection, _client: Endpoint, _server: Endpoint },
    RustLibp2p { client: Box<RustNode>, server: Box<RustNode> },
}

impl Pair {
    async fn peerswarm() -> Result<Pair> {
        let server = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
        let mut listener = server.listen(&"/ip4/127.0.0.1/tcp/0".parse()?).await?;
        let addr = listener.local_addr().clone();
        tokio::spawn(async move {
            while let Some(conn) = listener.accept().await {
                tokio::spawn(async move {
                    while let Ok(stream) = conn.accept_stream(&[PROTOCOL]).await {
                        tokio::spawn(async move {
                            if let Err(e) = receive(stream).await {
                                eprintln!("peerswarm receiver: {e}");
                            }
                        });
                    }
                });
            }
        });
        let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
        let conn = client.dial(&addr, Some(server.local_peer_id())).await?;
        Ok(Pair::Peerswarm { conn, _client: client, _server: server })
    }

    async fn rust_libp2p() -> Result<Pair> {
        let server = RustNode::spawn(RustNodeConfig::default()).await?;
        let client = RustNode::spawn(RustNodeConfig::default()).await?;
        let mut incoming = server.accept(PROTOCOL);
        tokio::spawn(async move {
            while let Some((_, stream)) = incoming.next().await {
                tokio::spawn(async move {
                    if let Err(e) = receive(stream.compat()).await {
                        eprintln!("rust-libp2p receiver: {e}");
                    }
                });
            }
        });
        client.dial(server.listen_addr().clone(), Some(server.peer_id())).await?;
        Ok(Pair::RustLibp2p { client: Box::new(client), server: Box::new(server) })
    }

    /// One transfer of `total` bytes on a new stream; returns its duration.
    async fn transfer(&self, total: u64) -> Result<Duration> {
        let started = Instant::now();
        match self {
            Pair::Peerswarm { conn, .. } => {
                let mut stream = conn.open_stream(&[PROTOCOL]).await?;
                send(&mut stream, total).await?;
            }
            Pair::RustLibp2p { client, server } => {
                let mut stream = client.open_stream(server.peer_id(), PROTOCOL).await?;
                send(&mut stream, total).await?;
            }
        }
        Ok(started.elapsed())
    }
}

struct Round {
    gbit_s: f64,
    cpu_s_per_gib: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(name: &str, rounds: &[Round]) -> f64 {
    let rates: Vec<f64> = rounds.iter().map(|r| r.gbit_s).collect();
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    let med = median(rates);
    let cpu = median(rounds.iter().map(|r| r.cpu_s_per_gib).collect());
    println!(
        "{name:<12} median {med:6.2} Gbit/s  (min–max {min:.2}–{max:.2}, {} rounds); CPU {cpu:.2} s/GiB",
        rounds.len()
    );
    med
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let total = mib * MIB;
    println!(
        "single stream, {mib} MiB per round, {rounds} rounds per stack, {}-byte writes, loopback TCP + Noise + yamux",
        WRITE_SIZE
    );
    println!("cores: {}; load average before: {}", std::thread::available_parallelism()?, loadavg());

    let pairs =
        [(Stack::Peerswarm, Pair::peerswarm().await?), (Stack::RustLibp2p, Pair::rust_libp2p().await?)];
    // Warm-up: connections, windows and allocators reach a steady state.
    for (stack, pair) in &pairs {
        tokio::time::timeout(ROUND_LIMIT, pair.transfer(64 * MIB))
            .await
            .map_err(|_| format!("{} warm-up timed out", stack.name()))??;
    }

    let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        for (i, (stack, pair)) in pairs.iter().enumerate() {
            let cpu_before = cpu_time();
            let elapsed = tokio::time::timeout(ROUND_LIMIT, pair.transfer(total))
                .await
                .map_err(|_| format!("{} round {round} timed out", stack.name()))??;
            let cpu = cpu_time().saturating_sub(cpu_before);
            let r = Round {
                gbit_s: total as f64 * 8.0 / elapsed.as_secs_f64() / 1e9,
                cpu_s_per_gib: cpu.as_secs_f64() / (total as f64 / GIB),
            };
            println!(
                "round {round} {:<12} {:7.3} s  {:6.2} Gbit/s  CPU {:.2} s/GiB",
                stack.name(),
                elapsed.as_secs_f64(),
                r.gbit_s,
                r.cpu_s_per_gib
            );
            results[i].push(r);
        }
    }

    println!("load average after: {}", loadavg());
    let ours = summary(Stack::Peerswarm.name(), &results[0]);
    let theirs = summary(Stack::RustLibp2p.name(), &results[1]);
    println!("ratio peerswarm / rust-libp2p (medians): {:.2}", ours / theirs);
    Ok(())
}
