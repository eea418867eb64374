//! Churn (issue 6): after 10 000 connect/disconnect cycles and 100 000
//! stream open/close cycles, open file descriptors, live tokio tasks and RSS
//! are back to where they were after a warm-up.
//!
//! Both nodes are full hosts (Noise, yamux, identify on every connection,
//! ping, echo) in this process, so the figures are the sum of both sides.
//! The baseline is taken after a warm-up of a few hundred cycles, so that
//! allocator pools, lazily created runtime resources and caches are not
//! counted as leaks. File descriptors and tasks must come back exactly; RSS
//! within 5 % (or 4 MiB, whichever is larger: the allocator keeps freed
//! pages).
//!
//! Each test prints its figures as a `[figures]` line on stderr. The two
//! tests take a lock: descriptors and RSS are per process.

mod common;

use common::{eventually, loopback, open_fds};
use peerswarm::host::{Host, HostConfig, ECHO_PROTOCOL};
use peerswarm::identity::Keypair;
use peerswarm::swarm::{Conn, ConnectionLimits, Notifiee, Swarm, SwarmConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTION_CYCLES: usize = 10_000;
const STREAM_CYCLES: usize = 100_000;
/// Concurrent stream workers (each runs `STREAM_CYCLES / STREAM_WORKERS`).
const STREAM_WORKERS: usize = 4;
const MIB: f64 = (1 << 20) as f64;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).expect("VmRSS value") * 1024
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Open descriptors, live tasks and RSS at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    fds: usize,
    tasks: usize,
    rss: u64,
}

impl Snapshot {
    fn now() -> Snapshot {
        Snapshot { fds: open_fds(), tasks: alive_tasks(), rss: rss() }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} fds, {} tasks, RSS {:.1} MiB", self.fds, self.tasks, self.rss as f64 / MIB)
    }
}

/// The RSS allowed after the churn: 5 % over the baseline, or 4 MiB.
fn rss_bound(baseline: u64) -> u64 {
    baseline + (baseline / 20).max(4 << 20)
}

/// Waits (up to 30 s) until descriptors and tasks are back to `baseline`
/// and RSS within [`rss_bound`]; returns the snapshot, which the caller
/// asserts on.
async fn settle(baseline: Snapshot) -> Snapshot {
    eventually(Duration::from_secs(30), || {
        let now = Snapshot::now();
        now.fds <= baseline.fds && now.tasks <= baseline.tasks && now.rss <= rss_bound(baseline.rss)
    })
    .await;
    Snapshot::now()
}

fn assert_back_to(test: &str, baseline: Snapshot, after: Snapshot) {
    assert_eq!(after.fds, baseline.fds, "{test}: open fds {baseline} -> {after}");
    assert_eq!(after.tasks, baseline.tasks, "{test}: live tasks {baseline} -> {after}");
    assert!(after.rss <= rss_bound(baseline.rss), "{test}: RSS {baseline} -> {after}");
}

/// Counts the connections a node accepted.
struct CountConnected(Arc<AtomicUsize>);

impl Notifiee for CountConnected {
    fn connected(&self, _: &Conn) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two hosts: `server` listens (and echoes), `client` knows its address.
/// The server has no connection limits: a close it has not processed yet
/// must not turn the next cycle's connection away (limits are tested in
/// `limits.rs`).
async fn pair() -> (Host, Host) {
    let config = SwarmConfig::default().with_connection_limits(ConnectionLimits::unlimited());
    let server =
        Host::new(Swarm::builder(Keypair::generate_ed25519()).config(config).build(), HostConfig::default());
    let addr = server.swarm().add_listen_addr(&loopback()).await.expect("listen");
    let client = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default());
    client
        .swarm()
        .peerstore()
        .add_addrs_now(server.local_peer(), vec![addr], peerswarm::peerstore::PERMANENT_ADDR_TTL)
        .unwrap();
    (server, client)
}

/// Dials, pings (so the server holds the connection too), then closes the
/// connection (both sides must forget it).
async fn connect_disconnect(client: &Host, server: &Host) {
    let peer = server.local_peer();
    let conn = client.swarm().dial_peer(&peer).await.expect("dial");
    assert!(!conn.is_closed(), "dial_peer returned a closed connection");
    client.ping(&peer).await.expect("ping over the new connection");
    client.swarm().close_peer(&peer).await;
}

async fn until_no_connections(client: &Host, server: &Host) {
    let idle = || client.swarm().conns().is_empty() && server.swarm().conns().is_empty();
    assert!(eventually(Duration::from_secs(30), idle).await, "connections left behind");
}

/// Connects and disconnects 10 000 times (after 300 warm-up cycles).
/// Expected: fds and tasks exactly back to baseline, RSS within bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connect_disconnect_cycles_return_to_baseline() {
    let _serial = SERIAL.lock().await;
    let (server, client) = pair().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    server.swarm().notify(CountConnected(accepted.clone()));
    for _ in 0..300 {
        connect_disconnect(&client, &server).await;
    }
    until_no_connections(&client, &server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = Snapshot::now();

    let started = Instant::now();
    let mut peak = baseline;
    for i in 0..CONNECTION_CYCLES {
        connect_disconnect(&client, &server).await;
        if i % 1000 == 999 {
            let now = Snapshot::now();
            peak = Snapshot {
                fds: peak.fds.max(now.fds),
                tasks: peak.tasks.max(now.tasks),
                rss: peak.rss.max(now.rss),
            };
        }
    }
    let elapsed = started.elapsed();
    until_no_connections(&client, &server).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 300 + CONNECTION_CYCLES, "one connection per cycle");
    let after = settle(baseline).await;
    eprintln!(
        "[figures] {CONNECTION_CYCLES} connect/disconnect cycles (Noise) in {elapsed:.1?} ({:.2} ms each): \
         baseline {baseline}; highest sample {peak}; after {after}",
        elapsed.as_secs_f64() * 1000.0 / CONNECTION_CYCLES as f64
    );
    assert_back_to("connection churn", baseline, after);
}

/// Opens, uses and closes one echo stream: SYN, 16 bytes each way, FIN both
/// ways.
async fn stream_cycle(client: &Host, server: &peerswarm::identity::PeerId, i: usize) {
    let mut stream = client.new_stream(server, &[ECHO_PROTOCOL]).await.expect("new stream");
    let msg = (i as u128).to_be_bytes();
    stream.write_all(&msg).await.expect("write");
    stream.close_write().await.expect("close write");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("read");
    assert_eq!(back, msg);
    stream.close().await.expect("close");
}

/// Runs `cycles` stream cycles on `workers` concurrent tasks.
async fn stream_churn(client: &Host, server: &Host, cycles: usize, workers: usize) {
    let peer = server.local_peer();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in (w..cycles).step_by(workers) {
                    stream_cycle(&client, &peer, i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("stream worker");
    }
}

/// Opens and closes 100 000 echo streams over one connection, four at a
/// time (after 2 000 warm-up cycles).
/// Expected: no stream left on either side; fds and tasks exactly back to
/// baseline, RSS within bound; the connection is still the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_stream_cycles_return_to_baseline() {
    let _serial = SERIAL.lock().await;
    let (server, client) = pair().await;
    let conn = client.swarm().dial_peer(&server.local_peer()).await.expect("dial");
    stream_churn(&client, &server, 2000, STREAM_WORKERS).await;
    let no_streams =
        || conn.streams().is_empty() && server.swarm().conns().iter().all(|c| c.streams().is_empty());
    assert!(eventually(Duration::from_secs(30), no_streams).await, "streams left after warm-up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = Snapshot::now();

    let started = Instant::now();
    stream_churn(&client, &server, STREAM_CYCLES, STREAM_WORKERS).await;
    let elapsed = started.elapsed();
    assert!(eventually(Duration::from_secs(30), no_streams).await, "streams left after the churn");
    let after = settle(baseline).await;
    eprintln!(
        "[figures] {STREAM_CYCLES} stream open/echo/close cycles ({STREAM_WORKERS} at a time) in {elapsed:.1?} \
         ({:.0} µs each): baseline {baseline}; after {after}; yamux streams left {}",
        elapsed.as_secs_f64() * 1e6 / STREAM_CYCLES as f64,
        conn.connection().num_streams()
    );
    assert_back_to("stream churn", baseline, after);
    assert_eq!(client.swarm().conns(), vec![conn.clone()], "one connection throughout");
    assert_eq!(conn.connection().num_streams(), 0);
}

/// Regression for two bugs fast reconnects hit: identify, started by a
/// connection, dialed the peer again if that connection was already closed
/// (leaving a connection nobody asked for); and a `dial_peer` that joined
/// the peer's dial worker just before its last caller left (such as that
/// identify dial) was answered with the connection the worker had made
/// earlier, although it had been closed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_reconnects_never_get_a_closed_connection() {
    let _serial = SERIAL.lock().await;
    let (server, client) = pair().await;
    let peer = server.local_peer();
    let mut ids = std::collections::HashSet::new();
    for i in 0..1000 {
        let conn = client.swarm().dial_peer(&peer).await.expect("dial");
        assert!(!conn.is_closed(), "cycle {i}: dial_peer returned a closed connection");
        assert!(ids.insert(conn.id()), "cycle {i}: dial_peer returned an earlier connection");
        client.swarm().close_peer(&peer).await;
    }
    // Nothing dials again behind the caller's back (identify on a closed
    // connection used to).
    until_no_connections(&client, &server).await;
}

/// Regression: a dial that joins the peer's dial worker after that worker
/// answered (another caller has not collected its answer yet, so the worker
/// lives on) gets a new connection, not the worker's earlier one, which has
/// been closed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_joining_an_answered_worker_gets_a_live_connection() {
    let _serial = SERIAL.lock().await;
    let (server, client) = pair().await;
    let peer = server.local_peer();
    // A caller that joins the dial and then is not polled again: the
    // worker keeps running for it.
    let mut lingering = Box::pin(client.swarm().dial_peer(&peer));
    assert!(futures::poll!(&mut lingering).is_pending());
    let first = client.swarm().dial_peer(&peer).await.expect("dial");
    client.swarm().close_peer(&peer).await;
    assert!(first.is_closed());
    let second = client.swarm().dial_peer(&peer).await.expect("dial again");
    assert!(!second.is_closed(), "dial_peer returned the closed connection");
    assert_ne!(second.id(), first.id());
    drop(lingering);
}
