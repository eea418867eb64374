//! The `peerswarm` command-line node.
//!
//! `peerswarm` alone runs a demo of two nodes in one process. The
//! subcommands run a real node (`listen`) or act as a client against one
//! (`ping`, `identify`, `echo`, `perf`). Output is human-readable; `--json`
//! prints one JSON object per result line. Failures print one line on
//! stderr and exit non-zero, never a panic.

mod args;
mod demo;
mod metrics;
mod output;

use args::{Cli, Command, KeyType};
use clap::Parser;
use output::Output;
use peerswarm::host::{Host, HostConfig, PerfProgress};
use peerswarm::identity::{self, Keypair, PeerId};
use peerswarm::swarm::{Swarm, SwarmConfig};
use peerswarm::{Multiaddr, PreSharedKey};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A failure reported to the user: one line, and the exit status.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub(crate) fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(msg.into()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if cli.verbose { "info" } else { "warn" }));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peerswarm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = Output::new(cli.json);
    match runtime.block_on(run(cli.command, cli.psk, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            out.error(&msg);
            ExitCode::FAILURE
        }
    }
}

/// Prints `--help` and `--version` as clap does; any other argument error as
/// one line, `peerswarm: ...`, like every other failure (clap's own report
/// spans several lines and starts with `error:`). Exit status 2, clap's.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let mut msg = String::new();
    let noise = |l: &&str| l.is_empty() || l.starts_with("For more information") || l.starts_with("Usage:");
    for line in text.lines().map(str::trim).filter(|l| !noise(l)) {
        if !msg.is_empty() {
            msg.push_str(if msg.ends_with(':') { " " } else { "; " });
        }
        msg.push_str(line);
    }
    eprintln!("peerswarm: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
    ExitCode::from(2)
}

async fn run(command: Option<Command>, psk: Option<std::path::PathBuf>, out: &Output) -> Result<(), Failure> {
    let psk = match (&command, psk) {
        (_, None) => None,
        (None | Some(Command::Id { .. }), Some(_)) => {
            return fail("--psk applies to listen, ping, identify, echo and perf");
        }
        (_, Some(path)) => Some(read_psk_file(&path)?),
    };
    let psk = psk.as_ref();
    match command {
        None => demo::run(out).await,
        Some(Command::Id { key, key_type }) => id(key, key_type, out),
        Some(Command::Listen { listen, key, seed, perf, metrics }) => {
            let keypair = load_identity(key.as_deref(), seed)?;
            listen_node(keypair, listen, perf, metrics, psk, out).await
        }
        Some(Command::Ping { addr, count }) => ping(addr, count, psk, out).await,
        Some(Command::Identify { addr }) => identify_cmd(addr, psk, out).await,
        Some(Command::Echo { addr, text, timeout }) => {
            echo(addr, text, Duration::from_secs(timeout), psk, out).await
        }
        Some(Command::Perf { addr, upload, download, streams }) => {
            perf(addr, upload.0, download.0, streams, psk, out).await
        }
    }
}

fn read_psk_file(path: &std::path::Path) -> Result<PreSharedKey, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read pre-shared key file {}: {e}", path.display()))?;
    PreSharedKey::from_key_file(&bytes)
        .map_err(|e| Failure(format!("invalid pre-shared key file {}: {e}", path.display())))
}

fn id(key: Option<std::path::PathBuf>, key_type: KeyType, out: &Output) -> Result<(), Failure> {
    let (keypair, created) = match &key {
        Some(path) if path.exists() => (read_key_file(path)?, false),
        Some(path) => {
            let (keypair, bytes) = identity::generate_key_file(key_type.into())?;
            std::fs::write(path, bytes)
                .map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
            (keypair, true)
        }
        None => (generate(key_type)?, true),
    };
    let peer = keypair.public().to_peer_id();
    let key_type = format!("{:?}", keypair.key_type()).to_lowercase();
    let file = key.as_ref().map(|p| p.display().to_string());
    out.id(&peer, &key_type, file.as_deref(), created);
    Ok(())
}

fn generate(key_type: KeyType) -> Result<Keypair, Failure> {
    Ok(identity::generate(key_type.into())?)
}

fn read_key_file(path: &std::path::Path) -> Result<Keypair, Failure> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    identity::read_keypair(&bytes).map_err(|e| Failure(format!("invalid key file {}: {e}", path.display())))
}

fn load_identity(key: Option<&std::path::Path>, seed: Option<u8>) -> Result<Keypair, Failure> {
    match (key, seed) {
        (Some(path), _) => read_key_file(path),
        (None, Some(seed)) => Ok(identity::ed25519_from_seed([seed; 32])),
        (None, None) => Ok(Keypair::generate_ed25519()),
    }
}

fn new_host(keypair: Keypair, perf: bool, psk: Option<&PreSharedKey>) -> Host {
    let mut config = SwarmConfig::default();
    if let Some(psk) = psk {
        config = config.with_private_network(psk.clone());
    }
    let swarm =
        Swarm::builder(keypair).config(config).bandwidth(peerswarm::swarm::BandwidthCounter::new()).build();
    Host::new(swarm, HostConfig::default().with_perf(perf))
}

async fn listen_node(
    keypair: Keypair,
    listen: Vec<Multiaddr>,
    perf: bool,
    metrics: Option<std::net::SocketAddr>,
    psk: Option<&PreSharedKey>,
    out: &Output,
) -> Result<(), Failure> {
    // Install the SIGINT handler before printing anything: `ctrl_c()`
    // registers it on first poll, and until then SIGINT's default action
    // kills the process, so a script that interrupts the node as soon as it
    // reads `LISTEN` would see death by signal instead of a clean exit 0.
    let mut interrupted = Box::pin(tokio::signal::ctrl_c());
    let early = futures::poll!(&mut interrupted);
    let host = new_host(keypair, perf, psk);
    // Before listening: a peer that dials as soon as it reads `LISTEN` is
    // logged too.
    host.swarm().notify(output::ConnLogger);
    let listen = if listen.is_empty() { vec!["/ip4/127.0.0.1/tcp/0".parse()?] } else { listen };
    let mut bound = Vec::new();
    for addr in &listen {
        match host.swarm().add_listen_addr(addr).await {
            Ok(addr) => bound.push(addr),
            Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
        }
    }
    let peer = host.local_peer();
    for addr in host.swarm().interface_listen_addresses() {
        out.listen(&addr, &peer);
    }
    if let Some(psk) = psk {
        out.info(&format!("private network: pre-shared key fingerprint {}", psk.fingerprint()));
    }
    if let Some(metrics_addr) = metrics {
        let served = metrics::serve(metrics_addr, host.clone()).await?;
        out.info(&format!("metrics at http://{served}/metrics"));
    }
    let interrupted = match early {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => interrupted.await,
    };
    interrupted.map_err(|e| format!("cannot wait for interrupt: {e}"))?;
    out.info("interrupted; closing");
    host.close().await;
    Ok(())
}

/// Splits `/.../p2p/ID` into the address and the peer.
fn split_p2p(full: &Multiaddr) -> Result<(Multiaddr, PeerId), Failure> {
    let mut addr = full.clone();
    match addr.pop() {
        Some(peerswarm::multiaddr::Protocol::P2p(peer)) => Ok((addr, peer)),
        _ => fail(format!("address {full} has no /p2p/<peer id> part")),
    }
}

async fn client(
    target: &Multiaddr,
    perf: bool,
    psk: Option<&PreSharedKey>,
) -> Result<(Host, PeerId), Failure> {
    let (addr, peer) = split_p2p(target)?;
    let host = new_host(Keypair::generate_ed25519(), perf, psk);
    host.connect(&peer, vec![addr.clone()])
        .await
        .map_err(|e| Failure(format!("cannot connect to {addr}: {e}")))?;
    Ok((host, peer))
}

async fn ping(
    target: Multiaddr,
    count: u32,
    psk: Option<&PreSharedKey>,
    out: &Output,
) -> Result<(), Failure> {
    let (host, peer) = client(&target, false, psk).await?;
    let mut pinger = host.pinger(&peer).await.map_err(|e| format!("ping to {peer} failed: {e}"))?;
    let mut rtts = Vec::new();
    for seq in 1..=count {
        let rtt = pinger.ping().await.map_err(|e| format!("ping to {peer} failed: {e}"))?;
        out.ping(&peer, seq, rtt);
        rtts.push(rtt);
        if seq < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    pinger.close().await;
    out.ping_summary(&peer, &rtts);
    host.close().await;
    Ok(())
}

async fn identify_cmd(target: Multiaddr, psk: Option<&PreSharedKey>, out: &Output) -> Result<(), Failure> {
    let (host, peer) = client(&target, false, psk).await?;
    let info = host.identify(&peer).await.map_err(|e| format!("identify of {peer} failed: {e}"))?;
    out.identify(&info);
    host.close().await;
    Ok(())
}

async fn echo(
    target: Multiaddr,
    text: String,
    timeout: Duration,
    psk: Option<&PreSharedKey>,
    out: &Output,
) -> Result<(), Failure> {
    let (host, peer) = client(&target, false, psk).await?;
    let mut stream =
        host.new_stream(&peer, &["/echo/1.0.0"]).await.map_err(|e| format!("echo to {peer} failed: {e}"))?;
    // A peer that accepts and then stays silent must not hang the command.
    stream.set_deadline(Some(Instant::now() + timeout));
    // FIN only once the peer has accepted the protocol: js-libp2p 3 can lose
    // a request whose FIN reaches it first. (A command-line argument is at
    // most 128 KiB on Linux, within the stream window, so writing it all
    // before reading cannot stall.)
    let exchange = async {
        stream.write_all(text.as_bytes()).await?;
        stream.confirm_protocol().await?;
        stream.close_write().await?;
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await?;
        Ok::<_, std::io::Error>(back)
    };
    let back = exchange.await.map_err(|e| format!("echo to {peer} failed: {e}"))?;
    let back = String::from_utf8_lossy(&back).into_owned();
    if back != text {
        return fail(format!("echo from {peer} differs: sent {} bytes, got {}", text.len(), back.len()));
    }
    out.echo(&peer, &back);
    host.close().await;
    Ok(())
}

async fn perf(
    target: Multiaddr,
    upload: u64,
    download: u64,
    streams: u32,
    psk: Option<&PreSharedKey>,
    out: &Output,
) -> Result<(), Failure> {
    let (host, peer) = client(&target, true, psk).await?;
    let progress = Arc::new(PerfProgress::default());
    let started = Instant::now();
    let bar = out.progress(progress.clone(), (upload + download) * u64::from(streams));
    // Each run in a task of its own: read on a runtime worker, the bytes
    // are not handed from the connection's driver to this thread frame by
    // frame (see `Stream`).
    let runs = (0..streams.max(1)).map(|_| {
        let (host, progress) = (host.clone(), progress.clone());
        tokio::spawn(async move { host.perf(&peer, upload, download, Some(&progress)).await })
    });
    let results = futures::future::join_all(runs).await;
    bar.finish();
    let elapsed = started.elapsed();
    let mut results_ok = Vec::new();
    for r in results {
        let r = r.map_err(|e| Failure(format!("perf against {peer} failed: {e}")))?;
        results_ok.push(r.map_err(|e| match e {
            peerswarm::host::HostError::Negotiation(peerswarm::multistream::NegotiationError::Failed) => {
                format!("perf against {peer} failed: the peer does not serve /perf/1.0.0 (start it with `listen --perf`)")
            }
            e => format!("perf against {peer} failed: {e}"),
        })?);
    }
    out.perf(&peer, &results_ok, elapsed);
    host.close().await;
    Ok(())
}
