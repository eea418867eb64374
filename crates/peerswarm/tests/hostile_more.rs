//! More hostile peers (issue 6), against a full node: a [`Host`] serving
//! ping, identify, echo (and perf where a test needs it) on loopback.
//!
//! Each test runs one attack from a raw socket: before the handshake with
//! bare TCP, past it with a real Noise handshake done by hand and hand-made
//! yamux frames (`attacker/mod.rs`). Meanwhile a well-behaved peerswarm host
//! keeps pinging the node over `/ipfs/ping/1.0.0`. Each test asserts:
//!
//! * the attack ends what it touches — the connection closed or the stream
//!   reset — with the typed error where the node exposes one
//!   ([`ConnectionError`] from `Connection::closed`, or the listener's
//!   `inbound upgrade failed` log line before the connection exists);
//! * every ping of the good peer was answered, it can still echo, and a
//!   fresh peer can connect and ping afterwards; nothing in the library
//!   panicked;
//! * the process's memory stays bounded: RSS (and its peak, when the kernel
//!   lets us reset it) grows by less than [`MEMORY_BOUND`] during the attack.
//!   The node runs in this process, so this is the node's memory (plus the
//!   attacker's, which is small).
//!
//! Tests take a process-wide lock so that one test's allocations do not
//! show up in another's figures. Each prints its figures as a `[figures]`
//! line on stderr (`--nocapture` shows them; RELIABILITY.md records them).
//! Waits are bounded generously; the only timing assertions are lower
//! bounds that a timer cannot violate (a deadline never fires early).

mod attacker;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attacker::*;
use peerswarm::host::{Host, HostConfig, AGENT_VERSION_KEY};
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::multiaddr::Protocol;
use peerswarm::swarm::{Conn, Notifiee, StreamInfo, Swarm, SwarmConfig};
use peerswarm::{yamux, ConnectionError, Direction, Multiaddr, StreamError};
use peerswarm_proto::multistream::Message;
use peerswarm_proto::noise::CipherError;
use peerswarm_proto::yamux::{Flags, FrameType, GoAwayCode, Header, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The most the process's RSS may grow during one attack.
const MEMORY_BOUND: u64 = 64 << 20;
/// The bound on waits that include a node-side timeout or a lot of work.
const LONG: Duration = Duration::from_secs(30);
/// The bound on one ping of the good peer.
const PING_WAIT: Duration = Duration::from_secs(10);
const MIB: f64 = (1 << 20) as f64;

const UPLOAD: &str = "/upload/1.0.0";

/// One test at a time (memory is measured for the whole process).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// Memory, tasks, waiting

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn rss() -> u64 {
    proc_status("VmRSS:").expect("VmRSS in /proc/self/status")
}

/// The process's memory before an attack; [`Memory::check`] compares.
struct Memory {
    test: &'static str,
    before: u64,
    /// Whether the peak (`VmHWM`) was reset to the current RSS.
    peak_reset: bool,
}

impl Memory {
    fn start(test: &'static str) -> Memory {
        // Writing 5 to clear_refs resets VmHWM (Linux ≥ 4.0).
        let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Memory { test, before: rss(), peak_reset }
    }

    /// Prints the figures and asserts the growth (of the peak when known)
    /// is below [`MEMORY_BOUND`]. Returns the growth in bytes.
    fn check(&self, detail: &str) -> u64 {
        let after = rss();
        let peak = if self.peak_reset { proc_status("VmHWM:") } else { None };
        let top = peak.unwrap_or(after).max(after);
        let growth = top.saturating_sub(self.before);
        eprintln!(
            "[figures] {}: RSS before {:.1} MiB, after {:.1} MiB, peak {}, growth {:.1} MiB; {detail}",
            self.test,
            self.before as f64 / MIB,
            after as f64 / MIB,
            peak.map_or("n/a".to_owned(), |p| format!("{:.1} MiB", p as f64 / MIB)),
            growth as f64 / MIB,
        );
        assert!(
            growth < MEMORY_BOUND,
            "{}: memory grew by {:.1} MiB (bound {} MiB)",
            self.test,
            growth as f64 / MIB,
            MEMORY_BOUND >> 20
        );
        growth
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Polls `f` until it holds; panics with `what` after [`LONG`].
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {LONG:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn within_long<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(LONG, future).await.unwrap_or_else(|_| panic!("{what}: timed out after {LONG:?}"))
}

/// Reads and drops until the node closes the socket (EOF or reset),
/// within [`LONG`]. Returns the bytes read.
async fn closed_within_long(tcp: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    within_long("node closes the connection", async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    total
}

// ---------------------------------------------------------------------------
// The node under test

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

struct Options {
    handshake_timeout: Duration,
    max_pending_inbound: usize,
    keepalive: Option<(Duration, Duration)>,
    perf: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            handshake_timeout: Duration::from_secs(10),
            max_pending_inbound: 64,
            keepalive: None,
            perf: false,
        }
    }
}

/// Streams opened and closed on the node (swarm notifications).
#[derive(Default)]
struct Counts {
    opened: AtomicUsize,
    closed: AtomicUsize,
}

/// Records the node's connections by remote port, and counts streams.
struct Watch {
    conns: Arc<Mutex<HashMap<u16, Conn>>>,
    streams: Arc<Counts>,
}

impl Notifiee for Watch {
    fn connected(&self, conn: &Conn) {
        if let Some(port) = tcp_port(conn.remote_multiaddr()) {
            self.conns.lock().unwrap().insert(port, conn.clone());
        }
    }

    fn opened_stream(&self, _: &StreamInfo) {
        self.streams.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn closed_stream(&self, _: &StreamInfo) {
        self.streams.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A host listening on loopback: ping, identify, echo (perf if asked).
struct Node {
    host: Host,
    peer_id: PeerId,
    addr: Multiaddr,
    socket: SocketAddr,
    conns: Arc<Mutex<HashMap<u16, Conn>>>,
    streams: Arc<Counts>,
}

impl Target for Node {
    fn socket(&self) -> SocketAddr {
        self.socket
    }

    fn peer_id(&self) -> PeerId {
        self.peer_id
    }
}

impl Node {
    async fn start(options: Options) -> Node {
        init();
        clear_logs();
        let mut yamux = yamux::Config::default();
        yamux.set_keepalive(options.keepalive).unwrap();
        let config = SwarmConfig::default()
            .with_handshake_timeout(options.handshake_timeout)
            .with_max_pending_inbound(options.max_pending_inbound)
            .with_yamux_config(yamux);
        let swarm = Swarm::builder(Keypair::generate_ed25519()).config(config).build();
        let (conns, streams) = (Arc::default(), Arc::<Counts>::default());
        swarm.notify(Watch { conns: Arc::clone(&conns), streams: Arc::clone(&streams) });
        let host = Host::new(swarm, HostConfig::default().with_perf(options.perf));
        let addr = host.swarm().add_listen_addr(&loopback()).await.expect("listen");
        let socket = SocketAddr::from(([127, 0, 0, 1], tcp_port(&addr).unwrap()));
        Node { peer_id: host.local_peer(), host, addr, socket, conns, streams }
    }

    /// The node's side of the connection from `port`.
    async fn conn_from(&self, port: u16) -> Conn {
        within_long("node registers the connection", async {
            loop {
                if let Some(conn) = self.conns.lock().unwrap().get(&port).cloned() {
                    return conn;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// How the node's connection from `port` ended.
    async fn close_reason(&self, port: u16) -> ConnectionError {
        let conn = self.conn_from(port).await;
        within_long("node closes the attacked connection", conn.connection().closed()).await
    }

    /// Streams the swarm counts as open.
    fn live_streams(&self) -> usize {
        self.streams.opened.load(Ordering::SeqCst) - self.streams.closed.load(Ordering::SeqCst)
    }

    /// Waits until only `peers` connections are left, the stream count is
    /// back to `streams` and the runtime's task count back to `tasks`: the
    /// attack left nothing behind.
    async fn settles(&self, peers: usize, streams: usize, tasks: usize) {
        let deadline = Instant::now() + LONG;
        loop {
            let last = (self.host.swarm().conns().len(), self.live_streams(), alive_tasks());
            if last == (peers, streams, tasks) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node did not settle: (connections, streams, tasks) = {last:?}, expected {:?}",
                (peers, streams, tasks)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The acceptance check after an attack: the good peer's pings were all
    /// answered, it still echoes, a new peer can connect and ping, nothing
    /// panicked. Returns the number of pings answered during the attack.
    async fn assert_still_serving(&self, good: &GoodPeer, pinging: Pinging, test: &str) -> usize {
        let pings = pinging.finish().await;
        assert!(pings >= 1);
        eprintln!("[figures] {test}: the good peer's {pings} pings during the attack were all answered");
        good.echo(self, 4096).await;
        let fresh = GoodPeer::connect(self).await;
        within_long("fresh peer pings", fresh.host.ping(&self.peer_id)).await.expect("fresh peer ping");
        assert!(!good.host.swarm().conns().is_empty(), "the good peer lost its connection");
        assert!(good.host.swarm().conns().iter().all(|c| !c.is_closed()));
        assert_no_library_panic();
        fresh.host.close().await;
        pings
    }
}

// ---------------------------------------------------------------------------
// The good peer

struct GoodPeer {
    host: Host,
}

impl GoodPeer {
    async fn connect(node: &Node) -> GoodPeer {
        let host = Host::new(Swarm::new(Keypair::generate_ed25519()), HostConfig::default());
        within_long("good peer connects", host.connect(&node.peer_id, vec![node.addr.clone()]))
            .await
            .expect("good peer connects");
        GoodPeer { host }
    }

    /// One echo round trip of `len` bytes over `/echo/1.0.0`.
    async fn echo(&self, node: &Node, len: usize) {
        let round = async {
            let mut stream = self.host.new_stream(&node.peer_id, &[ECHO]).await.expect("open echo");
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            stream.write_all(&msg).await.expect("write");
            stream.close_write().await.expect("close write");
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.expect("read");
            assert_eq!(back, msg, "echo");
        };
        within_long("good peer echo", round).await;
    }

    /// Pings the node over one ping stream in a loop until [`Pinging::finish`].
    fn keep_pinging(&self, node: &Node) -> Pinging {
        let stop = Arc::new(AtomicBool::new(false));
        let (host, peer, flag) = (self.host.clone(), node.peer_id, stop.clone());
        let task = tokio::spawn(async move {
            let mut pinger = host.pinger(&peer).await.map_err(|e| format!("open ping stream: {e}"))?;
            let mut answered = 0usize;
            loop {
                match tokio::time::timeout(PING_WAIT, pinger.ping()).await {
                    Ok(Ok(_rtt)) => answered += 1,
                    Ok(Err(e)) => return Err(format!("ping {answered}: {e}")),
                    Err(_) => return Err(format!("ping {answered}: no answer within {PING_WAIT:?}")),
                }
                if flag.load(Ordering::SeqCst) {
                    pinger.close().await;
                    return Ok(answered);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Pinging { stop, task }
    }
}

/// The good peer's ping loop during an attack.
struct Pinging {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<usize, String>>,
}

impl Pinging {
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let result = within_long("ping loop stops", self.task).await.expect("ping loop task");
        result.unwrap_or_else(|e| panic!("the good peer's pings failed during the attack: {e}"))
    }
}

/// A node with `options`, a good peer pinging it, and the task count with
/// both in place (the baseline the node must settle back to).
async fn setup(options: Options) -> (Node, GoodPeer, Pinging, usize) {
    let node = Node::start(options).await;
    let good = GoodPeer::connect(&node).await;
    let pinging = good.keep_pinging(&node);
    // The ping stream is open and identify (both ways) is done.
    wait_until("ping stream open", || node.live_streams() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_until("ping stream open", || node.live_streams() == 1).await;
    let tasks = alive_tasks();
    (node, good, pinging, tasks)
}

// ---------------------------------------------------------------------------
// Frame helpers

fn ms_proposal(protocol: &str) -> Vec<u8> {
    ms(&[Message::Header, Message::Protocol(protocol.into())])
}

/// Inbound streams the node's yamux session still holds on `conn` (queued
/// for the accept loop, or handed out): all of its streams but the node's
/// own, which the swarm registers.
fn inbound_streams(conn: &Conn) -> usize {
    let outbound = conn.streams().iter().filter(|s| s.direction == Direction::Outbound).count();
    conn.connection().num_streams().saturating_sub(outbound)
}

/// A stream opened with a SYN data frame proposing `protocol`, followed by
/// `payload`.
fn open_with(id: u32, protocol: &str, payload: &[u8], flags: Flags) -> Vec<u8> {
    let mut data = ms_proposal(protocol);
    data.extend_from_slice(payload);
    let mut out = Header::data(id, Flags::SYN | flags, data.len() as u32).encode().to_vec();
    out.extend_from_slice(&data);
    out
}

fn frame(header: Header) -> [u8; 12] {
    header.encode()
}

// ---------------------------------------------------------------------------
// 1. Connect and send nothing

/// Attack: 16 TCP connections that never send a byte.
/// Expected: each is closed at the handshake timeout (2 s here), with
/// `handshake timed out` logged; the pending-handshake slots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_dropped_at_the_handshake_timeout() {
    let _serial = SERIAL.lock().await;
    let timeout = Duration::from_secs(2);
    let (node, good, pinging, _) = setup(Options { handshake_timeout: timeout, ..Options::default() }).await;
    let memory = Memory::start("silent_connections_are_dropped_at_the_handshake_timeout");

    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..16 {
        silent.push(TcpStream::connect(node.socket).await.expect("connect"));
    }
    for tcp in &mut silent {
        let port = tcp.local_addr().unwrap().port();
        closed_within_long(tcp).await;
        assert_eq!(upgrade_failure_logged(port).await, "handshake timed out");
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "closed before the handshake timeout: {elapsed:?}");

    memory.check(&format!("16 silent connections closed after {elapsed:.1?} (timeout {timeout:?})"));
    node.assert_still_serving(&good, pinging, "silent_connections_are_dropped_at_the_handshake_timeout")
        .await;
}

/// Attack: 16 silent TCP connections against a node that allows 8 pending
/// handshakes (and a 20 s handshake timeout).
/// Expected: the 8 beyond the cap are closed at once, without a handshake;
/// the 8 pending ones stay open until they time out or leave, and then the
/// slots serve new peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_beyond_the_cap_are_closed_at_once() {
    let _serial = SERIAL.lock().await;
    let options =
        Options { handshake_timeout: Duration::from_secs(20), max_pending_inbound: 8, ..Options::default() };
    let (node, good, pinging, _) = setup(options).await;
    let memory = Memory::start("pending_handshakes_beyond_the_cap_are_closed_at_once");

    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let mut open = Vec::new();
    for i in 0..16 {
        let mut tcp = TcpStream::connect(node.socket).await.expect("connect");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let tx = tx.clone();
        open.push((
            stop,
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        read = tcp.read(&mut buf) => match read {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(i);
                                return;
                            }
                            Ok(_) => {}
                        },
                        _ = &mut stopped => return,
                    }
                }
            }),
        ));
    }
    let mut refused = Vec::new();
    while refused.len() < 8 {
        refused.push(within_long("the excess connections are closed", closed.recv()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(closed.try_recv().is_err(), "a pending handshake was closed before its timeout");
    // The pending ones leave; their slots come back (the fresh peer in
    // `assert_still_serving` needs one).
    for (stop, task) in open {
        let _ = stop.send(());
        task.await.unwrap();
    }
    memory.check(&format!("16 silent connections, 8 pending slots: closed at once {refused:?}"));
    node.assert_still_serving(&good, pinging, "pending_handshakes_beyond_the_cap_are_closed_at_once").await;
}

// ---------------------------------------------------------------------------
// 2. Slowloris during the handshake

/// Sends `bytes` one at a time every `period` until the node closes the
/// connection; returns when it was closed (since connect) and how many
/// bytes went out.
async fn trickle(node: &Node, prefix: &[u8], bytes: &[u8], period: Duration) -> (u16, Duration, usize) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(node.socket).await.expect("connect");
    let port = tcp.local_addr().unwrap().port();
    tcp.write_all(prefix).await.expect("prefix");
    let mut sent = 0;
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(period);
    within_long("node drops the slow connection", async {
        loop {
            tokio::select! {
                read = tcp.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // the node's multistream answer
                },
                _ = tick.tick() => {
                    let Some(&byte) = bytes.get(sent) else { panic!("the node let the trickle finish") };
                    if tcp.write_all(&[byte]).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        }
    })
    .await;
    (port, started.elapsed(), sent)
}

/// Attack: slowloris during the handshake — a valid multistream header,
/// `/noise` proposal and Noise message 1, one byte per second; and a Noise
/// frame that announces 65 535 bytes, sends 100, then trickles one byte per
/// second.
/// Expected: both are closed at the handshake deadline (2 s after accept),
/// which the trickling bytes do not push back: `handshake timed out`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshake_is_dropped_at_the_deadline() {
    let _serial = SERIAL.lock().await;
    let timeout = Duration::from_secs(2);
    let (node, good, pinging, _) = setup(Options { handshake_timeout: timeout, ..Options::default() }).await;
    let memory = Memory::start("slowloris_handshake_is_dropped_at_the_deadline");
    let second = Duration::from_secs(1);

    // Valid bytes, too slowly.
    let identity = Keypair::generate_ed25519();
    let mut hs = peerswarm_proto::noise::Handshake::initiator(&identity, None, &[YAMUX.to_owned()]).unwrap();
    let mut valid = ms_proposal(NOISE);
    valid.extend_from_slice(&hs.poll_transmit().unwrap());
    let (port, elapsed, sent) = trickle(&node, &[], &valid, second).await;
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(sent < valid.len());
    assert_eq!(upgrade_failure_logged(port).await, "handshake timed out");
    eprintln!("[figures] slowloris: valid handshake at 1 B/s closed after {elapsed:.1?}, {sent} bytes sent");

    // A maximal Noise frame that never completes.
    let mut prefix = ms_proposal(NOISE);
    prefix.extend_from_slice(&[0xff, 0xff]);
    prefix.extend_from_slice(&[7u8; 100]);
    let (port, elapsed, sent) = trickle(&node, &prefix, &[7u8; 65_435], second).await;
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert_eq!(upgrade_failure_logged(port).await, "handshake timed out");
    eprintln!(
        "[figures] slowloris: partial 65535-byte Noise frame closed after {elapsed:.1?}, {sent} bytes trickled"
    );

    memory.check("two slowloris handshakes");
    node.assert_still_serving(&good, pinging, "slowloris_handshake_is_dropped_at_the_deadline").await;
}

// ---------------------------------------------------------------------------
// 4. Oversized frames

/// Attack: oversized or undersized Noise frames — handshake message 3 as a
/// 65 535-byte frame of garbage, or as a 5-byte frame (shorter than the
/// 16-byte tag); and, past the handshake, a 65 535-byte transport frame of
/// garbage.
/// Expected: the handshake ones fail the upgrade (`handshake message failed
/// to decrypt` / `malformed handshake message`); the transport one closes the
/// connection with `ConnectionError::Io(CipherError::Decrypt)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_undersized_noise_frames() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, _) = setup(Options::default()).await;
    let memory = Memory::start("oversized_and_undersized_noise_frames");

    let mut garbage = vec![0xff, 0xff];
    garbage.extend((0..65_535u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    for (msg3, expected) in [
        (garbage.clone(), "noise handshake failed: handshake message failed to decrypt"),
        (vec![0, 5, 1, 2, 3, 4, 5], "noise handshake failed: malformed handshake message"),
    ] {
        let (mut tcp, _hs, _) = handshake_until_msg3(&node).await;
        let port = tcp.local_addr().unwrap().port();
        tcp.write_all(&msg3).await.unwrap();
        closed_within_long(&mut tcp).await;
        assert_eq!(upgrade_failure_logged(port).await, expected);
    }

    let mut attacker = Attacker::connect(&node).await;
    attacker.tcp.write_all(&garbage).await.unwrap();
    closed_within_long(&mut attacker.tcp).await;
    match node.close_reason(attacker.port()).await {
        ConnectionError::Io(e) => {
            let cipher = e.get_ref().and_then(|e| e.downcast_ref::<CipherError>());
            assert_eq!(cipher, Some(&CipherError::Decrypt), "{e}");
        }
        other => panic!("expected a decrypt error, got {other:?}"),
    }

    memory.check("three bad Noise frames");
    node.assert_still_serving(&good, pinging, "oversized_and_undersized_noise_frames").await;
}

/// Reads to the end and returns the node's reason, which must be a yamux
/// protocol error announced with go-away.
async fn protocol_error(node: &Node, attacker: &mut Attacker) -> ProtocolError {
    attacker.expect_go_away_and_close().await;
    match node.close_reason(attacker.port()).await {
        ConnectionError::Protocol(e) => e,
        other => panic!("expected a yamux protocol error, got {other:?}"),
    }
}

/// Attack: yamux data headers announcing huge lengths — 4 GiB − 1 on a new
/// stream, 2 GiB on a stream that already carried data — with no payload.
/// Expected: go-away(protocol error) at once (the node does not wait for, or
/// buffer, the announced body): `ProtocolError::WindowExceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yamux_frames_with_huge_lengths() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, _) = setup(Options::default()).await;
    let memory = Memory::start("yamux_frames_with_huge_lengths");

    let mut attacker = Attacker::connect(&node).await;
    attacker.send_plain(&frame(Header::data(1, Flags::SYN, u32::MAX))).await;
    assert_eq!(
        protocol_error(&node, &mut attacker).await,
        ProtocolError::WindowExceeded { stream_id: 1, len: u32::MAX, window: 256 * 1024 }
    );

    let mut attacker = Attacker::connect(&node).await;
    let mut plain = open_with(3, ECHO, b"some data", Flags::NONE);
    plain.extend_from_slice(&frame(Header::data(3, Flags::NONE, 1 << 31)));
    attacker.send_plain(&plain).await;
    match protocol_error(&node, &mut attacker).await {
        ProtocolError::WindowExceeded { stream_id: 3, len, .. } => assert_eq!(len, 1 << 31),
        other => panic!("expected WindowExceeded on stream 3, got {other:?}"),
    }

    memory.check("two huge yamux length headers");
    node.assert_still_serving(&good, pinging, "yamux_frames_with_huge_lengths").await;
}

// ---------------------------------------------------------------------------
// 6. Stream-open flood

/// Attack: 10 000 streams opened and reset at once (SYN + RST pairs, 24
/// KiB per write, as fast as the socket takes them).
/// Expected: no go-away; SYNs past the inbound-stream cap are refused with
/// RST; the connection keeps answering; every stream is released (stream
/// count and task count back to baseline once the attacker leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_rst_flood_of_ten_thousand_streams() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, tasks) = setup(Options::default()).await;
    let memory = Memory::start("syn_rst_flood_of_ten_thousand_streams");
    let mut attacker = Attacker::connect(&node).await;
    let started = Instant::now();

    const STREAMS: u32 = 10_000;
    for batch in (0..STREAMS).collect::<Vec<_>>().chunks(1000) {
        let mut plain = Vec::new();
        for &i in batch {
            let id = 2 * i + 1;
            plain.extend_from_slice(&frame(Header::window_update(id, Flags::SYN, 0)));
            plain.extend_from_slice(&frame(Header::window_update(id, Flags::RST, 0)));
        }
        attacker.send_plain(&plain).await;
    }
    let seen = attacker.ping(1).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "go-away during the flood");
    let refused = seen.iter().filter(|h| h.flags.contains(Flags::RST)).count();
    let conn = node.conn_from(attacker.port()).await;
    wait_until("inbound streams released", || inbound_streams(&conn) == 0).await;
    attacker.echo(2 * STREAMS + 1, b"after the flood").await;
    assert!(!conn.is_closed());
    let elapsed = started.elapsed();

    drop(attacker);
    node.settles(1, 1, tasks).await;
    memory.check(&format!("{STREAMS} SYN+RST pairs in {elapsed:.1?}, {refused} refused by RST"));
    node.assert_still_serving(&good, pinging, "syn_rst_flood_of_ten_thousand_streams").await;
}

// ---------------------------------------------------------------------------
// 7. Yamux ping flood, never reading

/// The most pings a flood sends: 96 MiB of frames.
const MAX_PINGS: u32 = 8_000_000;

/// Where a ping flood stopped.
struct Flood {
    /// The next sequence number that would have been encoded.
    next: u32,
    /// Pings fully written (sequence numbers `0..complete`).
    complete: u32,
    /// The sealed batch being written, and how much of it went out.
    out: Vec<u8>,
    off: usize,
    /// The node closed the connection (a write failed).
    closed: bool,
    elapsed: Duration,
}

/// Writes yamux pings (opaque = sequence number) as fast as the socket
/// takes them, never reading, until [`MAX_PINGS`], a failed write, or no
/// progress for 3 s (the node stopped reading).
async fn flood(attacker: &mut Attacker) -> Flood {
    const BATCH: u32 = 5_000; // 60 000 bytes: one Noise frame
    const STALL: Duration = Duration::from_secs(3);
    let started = Instant::now();
    let mut f =
        Flood { next: 0, complete: 0, out: Vec::new(), off: 0, closed: false, elapsed: Duration::ZERO };
    loop {
        if f.off == f.out.len() {
            f.complete = f.next;
            if f.next == MAX_PINGS {
                break;
            }
            let plain: Vec<u8> =
                (f.next..f.next + BATCH).flat_map(|n| frame(Header::ping(false, n))).collect();
            f.out = attacker.seal(&plain);
            f.off = 0;
            f.next += BATCH;
        }
        match tokio::time::timeout(STALL, attacker.tcp.writable()).await {
            Err(_) => break, // stalled: the node stopped reading
            Ok(ready) => ready.expect("writable"),
        }
        match attacker.tcp.try_write(&f.out[f.off..]) {
            Ok(n) => f.off += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                f.closed = true;
                break;
            }
        }
    }
    f.elapsed = started.elapsed();
    f
}

/// Attack: yamux pings as fast as the socket takes them (up to 8 million,
/// 96 MiB), never reading the replies, from a socket with small buffers.
/// Expected: the node stops reading once its queue of replies is full (it
/// pauses input at 4 096 queued control frames), so the flood stalls and
/// memory stays flat; when the attacker finally reads, every ping is
/// answered, in order, and the connection is still usable. (If the node
/// chose to close the connection instead, that is accepted too, as long as
/// memory stayed bounded and the reason is typed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_without_reading_is_back_pressured() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, tasks) = setup(Options::default()).await;
    let memory = Memory::start("ping_flood_without_reading_is_back_pressured");
    let mut attacker = Attacker::connect_with_buffers(&node, 64 * 1024).await;
    let port = attacker.port();

    let Flood { next, mut complete, out, mut off, closed, elapsed: flood_time } = flood(&mut attacker).await;
    assert!(complete < MAX_PINGS, "the node read {MAX_PINGS} pings without back-pressure");
    let growth = memory.check(&format!(
        "node stopped reading after {complete} pings ({:.1} MiB) in {flood_time:.1?}",
        f64::from(complete) * 12.0 / MIB
    ));

    if closed {
        let reason = node.close_reason(port).await;
        eprintln!("[figures] ping flood: the node closed the connection: {reason}");
        assert!(!matches!(reason, ConnectionError::Io(_)), "untyped close: {reason:?}");
    } else {
        // Read the replies while finishing the partly written batch: every
        // ping is answered once, in order.
        let mut expected = 0u32;
        let mut others = 0usize;
        within_long("all pongs", async {
            while expected < complete || off < out.len() {
                if off < out.len() {
                    match attacker.tcp.try_write(&out[off..]) {
                        Ok(n) => off += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => panic!("write: {e}"),
                    }
                    if off == out.len() {
                        complete = next;
                    }
                }
                let (h, _) = attacker.next_frame().await.expect("connection closed during the drain");
                if h.ty == FrameType::Ping && h.flags.contains(Flags::ACK) {
                    assert_eq!(h.length, expected, "pong out of order");
                    expected += 1;
                } else {
                    assert_ne!(h.ty, FrameType::GoAway, "go-away during the drain");
                    others += 1;
                }
            }
        })
        .await;
        attacker.ping(0xdead_beef).await;
        assert!(!node.conn_from(port).await.is_closed());
        eprintln!(
            "[figures] ping flood: {complete} pings answered in order after the drain \
             ({others} other frames); growth {:.1} MiB",
            growth as f64 / MIB
        );
    }

    drop(attacker);
    node.settles(1, 1, tasks).await;
    node.assert_still_serving(&good, pinging, "ping_flood_without_reading_is_back_pressured").await;
}

/// Attack: the same ping flood, never reading, then silence — on a node with
/// yamux keep-alive (ping every 1 s, 2 s to answer).
/// Expected: the node's keep-alive ping cannot get through (the attacker
/// reads nothing), so the node closes the connection with
/// `ConnectionError::KeepAliveTimeout`, as it does for a silent peer.
///
/// Regression: `Session::handle_input` used to count input it was handed
/// but left unconsumed (4 096 control frames queued) as a sign of life, so
/// the stalled read buffer, handed over on every wake-up, kept moving the
/// deadline and the connection was held forever. The connection may now be
/// closed while the flood is still being written (the node stops reading,
/// so its keep-alive ping is unanswered either way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_then_silence_is_closed_by_keepalive() {
    let _serial = SERIAL.lock().await;
    let keepalive = Some((Duration::from_secs(1), Duration::from_secs(2)));
    let (node, good, pinging, tasks) = setup(Options { keepalive, ..Options::default() }).await;
    let memory = Memory::start("ping_flood_then_silence_is_closed_by_keepalive");
    let mut attacker = Attacker::connect_with_buffers(&node, 64 * 1024).await;
    let port = attacker.port();
    let flooded = flood(&mut attacker).await;
    let started = Instant::now();
    let reason = node.close_reason(port).await;
    assert!(matches!(reason, ConnectionError::KeepAliveTimeout), "{reason:?}");
    memory.check(&format!(
        "flood stalled after {} pings; closed by keep-alive {:.1?} later",
        flooded.complete,
        started.elapsed()
    ));
    drop(attacker);
    node.settles(1, 1, tasks).await;
    node.assert_still_serving(&good, pinging, "ping_flood_then_silence_is_closed_by_keepalive").await;
}

// ---------------------------------------------------------------------------
// 8. Oversized identify messages

/// Waits for the node's identify request (a SYN on an even stream carrying
/// the multistream header and `/ipfs/id/1.0.0`); returns its stream id.
async fn identify_request(attacker: &mut Attacker) -> u32 {
    let mut id = None;
    let mut data = Vec::new();
    loop {
        let (h, body) = within_long("identify request", attacker.next_frame())
            .await
            .expect("connection closed before identify");
        if h.ty == FrameType::Data && h.stream_id % 2 == 0 && h.stream_id != 0 {
            if h.flags.contains(Flags::SYN) {
                id = Some(h.stream_id);
            }
            if id == Some(h.stream_id) {
                data.extend_from_slice(&body);
            }
        }
        let expected = ms_proposal(peerswarm_proto::identify::PROTOCOL);
        if let Some(id) = id.filter(|_| data.len() >= expected.len()) {
            assert_eq!(data[..expected.len()], expected[..], "identify proposal");
            return id;
        }
    }
}

/// Sends `body` as the answer on the node's stream `id` (after the
/// multistream echo of the identify proposal), then FIN.
async fn answer(attacker: &mut Attacker, id: u32, body: &[u8]) {
    let mut data = ms_proposal(peerswarm_proto::identify::PROTOCOL);
    data.extend_from_slice(body);
    let mut plain = frame(Header::data(id, Flags::ACK, data.len() as u32)).to_vec();
    plain.extend_from_slice(&data);
    plain.extend_from_slice(&frame(Header::data(id, Flags::FIN, 0)));
    attacker.send_plain(&plain).await;
}

/// Attack: identify messages beyond the 82 KiB stream cap — 200 KiB pushed
/// on `/ipfs/id/push/1.0.0`, and 200 KiB sent as the answer to the node's
/// own identify request — and an answer whose length prefix announces 1 MiB
/// (past the 8 KiB message cap).
/// Expected: the two oversized streams are reset by the node (RST), the
/// third is rejected without being recorded (no agent version stored); the
/// connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_identify_messages_reset_the_stream() {
    use peerswarm_proto::identify::{MAX_STREAM_BYTES, PUSH_PROTOCOL};
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, _) = setup(Options::default()).await;
    let memory = Memory::start("oversized_identify_messages_reset_the_stream");
    let huge = vec![0x0a; 200 * 1024];
    assert!(huge.len() > MAX_STREAM_BYTES);

    // A push.
    let mut attacker = Attacker::connect(&node).await;
    let mut plain = open_with(1, PUSH_PROTOCOL, &[], Flags::NONE);
    for chunk in huge.chunks(64 * 1024) {
        plain.extend_from_slice(&frame(Header::data(1, Flags::NONE, chunk.len() as u32)));
        plain.extend_from_slice(chunk);
    }
    attacker.send_plain(&plain).await;
    let seen = attacker.until("RST of the push stream", |h| is_rst(h, 1)).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    attacker.ping(1).await;
    attacker.echo(3, b"still connected").await;
    assert!(!node.conn_from(attacker.port()).await.is_closed());

    // The answer to the node's request.
    let mut attacker = Attacker::handshake(&node).await;
    let id = identify_request(&mut attacker).await;
    answer(&mut attacker, id, &huge).await;
    let seen = attacker.until("RST of the identify stream", |h| is_rst(h, id)).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    attacker.ping(2).await;
    attacker.echo(1, b"still connected").await;
    let conn = node.conn_from(attacker.port()).await;
    assert!(!conn.is_closed());
    assert_eq!(node.host.swarm().peerstore().get(&conn.remote_peer(), AGENT_VERSION_KEY), None);

    // An answer announcing one message of 1 MiB.
    let mut attacker = Attacker::handshake(&node).await;
    let id = identify_request(&mut attacker).await;
    let mut body = varint(1 << 20);
    body.extend_from_slice(&[0x0a; 20 * 1024]);
    answer(&mut attacker, id, &body).await;
    attacker
        .until("the identify stream ends", |h| {
            h.stream_id == id && (h.flags.contains(Flags::RST) || h.flags.contains(Flags::FIN))
        })
        .await;
    attacker.ping(3).await;
    let conn = node.conn_from(attacker.port()).await;
    assert!(!conn.is_closed());
    assert_eq!(node.host.swarm().peerstore().get(&conn.remote_peer(), AGENT_VERSION_KEY), None);

    memory.check("two 200 KiB identify messages and one announcing 1 MiB");
    node.assert_still_serving(&good, pinging, "oversized_identify_messages_reset_the_stream").await;
}

// ---------------------------------------------------------------------------
// 9. Data after go-away

/// Attack: (a) the attacker sends go-away(normal) in the middle of an echo
/// stream, then finishes that stream and opens another; (b) the node closes
/// the attacker's connection (go-away), and the attacker keeps sending data
/// and SYNs regardless.
/// Expected: (a) the stream in flight completes, the node can no longer
/// open streams to the attacker (`ConnectionError::GoAway(Normal)`), no
/// protocol error; (b) the node discards what follows its go-away and
/// closes the socket (`ConnectionError::Closed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_go_away() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, tasks) = setup(Options::default()).await;
    let memory = Memory::start("data_after_go_away");

    // (a) The attacker's go-away.
    let mut attacker = Attacker::connect(&node).await;
    let mut plain = open_with(1, ECHO, b"before go-away, ", Flags::NONE);
    plain.extend_from_slice(&frame(Header::go_away(GoAwayCode::Normal)));
    let tail = b"after go-away";
    plain.extend_from_slice(&frame(Header::data(1, Flags::FIN, tail.len() as u32)));
    plain.extend_from_slice(tail);
    attacker.send_plain(&plain).await;
    let mut back = Vec::new();
    loop {
        let (h, body) = within_long("echo after go-away", attacker.next_frame()).await.expect("closed");
        assert_ne!(h.ty, FrameType::GoAway, "the node answered go-away with go-away");
        if h.stream_id == 1 {
            assert!(!h.flags.contains(Flags::RST), "stream 1 reset");
            back.extend_from_slice(&body);
            if h.flags.contains(Flags::FIN) {
                break;
            }
        }
    }
    let echoed = ms_proposal(ECHO);
    assert_eq!(&back[..echoed.len()], &echoed[..]);
    assert_eq!(&back[echoed.len()..], b"before go-away, after go-away");
    let conn = node.conn_from(attacker.port()).await;
    match conn.new_stream().await {
        Err(StreamError::Connection(ConnectionError::GoAway(GoAwayCode::Normal))) => {}
        other => panic!("expected GoAway(Normal) opening a stream, got {other:?}"),
    }
    // A stream the attacker opens after its own go-away is served (as by
    // go-yamux: go-away only stops the receiver from opening).
    attacker.echo(3, b"a stream opened after go-away").await;
    assert!(!conn.is_closed());
    drop(attacker);

    // (b) The node's go-away, then more data.
    let mut attacker = Attacker::connect(&node).await;
    let port = attacker.port();
    let conn = node.conn_from(port).await;
    let closing = tokio::spawn(async move { conn.close().await });
    attacker.until("the node's go-away", |h| h.ty == FrameType::GoAway).await;
    let mut sent_after = 0usize;
    let mut id = 1;
    let ended = within_long("node closes after its go-away", async {
        loop {
            let plain = open_with(id, ECHO, &[0x55; 4096], Flags::NONE);
            let sealed = attacker.seal(&plain);
            if attacker.tcp.write_all(&sealed).await.is_err() {
                return "write failed";
            }
            sent_after += sealed.len();
            id += 2;
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(Duration::from_millis(5), attacker.tcp.read(&mut buf)).await {
                Ok(Ok(0)) => return "EOF",
                Ok(Err(_)) => return "reset",
                _ => {}
            }
        }
    })
    .await;
    within_long("close returns", closing).await.unwrap();
    assert!(matches!(node.close_reason(port).await, ConnectionError::Closed));
    eprintln!("[figures] data after go-away: {sent_after} bytes sent after the node's go-away, then {ended}");

    drop(attacker);
    node.settles(1, 1, tasks).await;
    memory.check("go-away both ways, data after each");
    node.assert_still_serving(&good, pinging, "data_after_go_away").await;
}

// ---------------------------------------------------------------------------
// 10. RST storm

/// Attack: 5 000 echo streams in batches of 100, each opened with its
/// protocol proposal and 512 bytes (so the node negotiates it and starts its
/// handler), then reset before the attacker reads anything.
/// Expected: each reset ends its handler; no go-away; the connection keeps
/// working; afterwards no inbound stream is left and, once the attacker
/// leaves, streams and tasks are back to baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rst_storm_on_negotiated_streams() {
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, tasks) = setup(Options::default()).await;
    let memory = Memory::start("rst_storm_on_negotiated_streams");
    let mut attacker = Attacker::connect(&node).await;
    let started = Instant::now();

    const BATCHES: u32 = 50;
    const PER_BATCH: u32 = 100;
    let mut next_id = 1;
    let mut node_resets = 0;
    for batch in 0..BATCHES {
        let ids: Vec<u32> = (0..PER_BATCH).map(|i| next_id + 2 * i).collect();
        next_id += 2 * PER_BATCH;
        let opens: Vec<u8> =
            ids.iter().flat_map(|&id| open_with(id, ECHO, &[0x42; 512], Flags::NONE)).collect();
        attacker.send_plain(&opens).await;
        let seen = attacker.ping(batch).await;
        node_resets += seen.iter().filter(|h| h.flags.contains(Flags::RST)).count();
        let resets: Vec<u8> =
            ids.iter().flat_map(|&id| frame(Header::window_update(id, Flags::RST, 0))).collect();
        attacker.send_plain(&resets).await;
    }
    let seen = attacker.ping(BATCHES).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway));
    let conn = node.conn_from(attacker.port()).await;
    wait_until("inbound streams released", || inbound_streams(&conn) == 0).await;
    attacker.echo(next_id, b"after the storm").await;
    let elapsed = started.elapsed();

    drop(attacker);
    node.settles(1, 1, tasks).await;
    memory.check(&format!(
        "{} negotiated streams reset in {elapsed:.1?} ({node_resets} refused or reset by the node first)",
        BATCHES * PER_BATCH
    ));
    node.assert_still_serving(&good, pinging, "rst_storm_on_negotiated_streams").await;
}

// ---------------------------------------------------------------------------
// 11. Half-open connections

/// Attack: connections that go silent forever, on a node with yamux
/// keep-alive (ping every 1 s, 2 s to answer): (a) a completed handshake,
/// then nothing read or written; (b) a perf download of 1 GiB requested,
/// never read; (c) half of a maximal Noise frame, then nothing.
/// Expected: the node closes each with `ConnectionError::KeepAliveTimeout`;
/// the good peer (whose yamux answers pings) is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_by_keepalive() {
    let _serial = SERIAL.lock().await;
    let options = Options {
        keepalive: Some((Duration::from_secs(1), Duration::from_secs(2))),
        perf: true,
        ..Options::default()
    };
    let (node, good, pinging, tasks) = setup(options).await;
    let memory = Memory::start("half_open_connections_are_closed_by_keepalive");
    let started = Instant::now();

    let silent = Attacker::connect(&node).await;
    let mut reader = Attacker::connect(&node).await;
    let request = peerswarm_proto::perf::encode_request(1 << 30);
    reader.send_plain(&open_with(1, peerswarm_proto::perf::PROTOCOL, &request, Flags::FIN)).await;
    let mut partial = Attacker::connect(&node).await;
    partial.tcp.write_all(&[0xff, 0xff]).await.unwrap();
    partial.tcp.write_all(&[1u8; 32 * 1024]).await.unwrap();

    let mut attackers = [silent, reader, partial];
    for attacker in &attackers {
        let reason = node.close_reason(attacker.port()).await;
        assert!(matches!(reason, ConnectionError::KeepAliveTimeout), "{reason:?}");
    }
    let elapsed = started.elapsed();
    for attacker in &mut attackers {
        closed_within_long(&mut attacker.tcp).await;
    }
    drop(attackers);
    node.settles(1, 1, tasks).await;
    memory.check(&format!("3 half-open connections closed by keep-alive within {elapsed:.1?}"));
    node.assert_still_serving(&good, pinging, "half_open_connections_are_closed_by_keepalive").await;
}

// ---------------------------------------------------------------------------
// 12. Vanishing mid-stream

/// What the node's upload handler saw: the bytes read, or the error kind.
type Upload = Result<usize, ErrorKind>;

/// Counts live upload handlers.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Attack: 10 streams each carrying half of a 20 KiB upload, then the
/// attacker vanishes — once closing its socket (FIN), once aborting it
/// (RST, zero linger).
/// Expected: every handler sees an error (`ConnectionAborted` or
/// `ConnectionReset`), never a clean end of stream on truncated data; the
/// handlers finish, and streams, connections and tasks return to baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_vanishing_mid_stream_leaks_nothing() {
    let _serial = SERIAL.lock().await;
    let node = Node::start(Options::default()).await;
    let live = Arc::new(AtomicUsize::new(0));
    let (tx, mut results) = tokio::sync::mpsc::unbounded_channel::<Upload>();
    {
        let live = live.clone();
        node.host.set_stream_handler(UPLOAD, move |mut stream| {
            live.fetch_add(1, Ordering::SeqCst);
            let guard = Live(live.clone());
            let tx = tx.clone();
            async move {
                let mut buf = Vec::new();
                let result = stream.read_to_end(&mut buf).await.map_err(|e| e.kind());
                let _ = tx.send(result);
                drop(guard);
            }
        });
    }
    let good = GoodPeer::connect(&node).await;
    let pinging = good.keep_pinging(&node);
    wait_until("ping stream open", || node.live_streams() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks = alive_tasks();
    let memory = Memory::start("peer_vanishing_mid_stream_leaks_nothing");

    const STREAMS: u32 = 10;
    let mut seen = Vec::new();
    for abort in [false, true] {
        let mut attacker = Attacker::connect(&node).await;
        let plain: Vec<u8> = (0..STREAMS)
            .flat_map(|i| open_with(2 * i + 1, UPLOAD, &[0x33; 10 * 1024], Flags::NONE))
            .collect();
        attacker.send_plain(&plain).await;
        attacker.ping(1).await;
        wait_until("every upload handler runs", || live.load(Ordering::SeqCst) == STREAMS as usize).await;
        if abort {
            attacker.tcp.set_zero_linger().unwrap();
        }
        drop(attacker);
        for _ in 0..STREAMS {
            let result = within_long("upload handler ends", results.recv()).await.unwrap();
            assert!(
                matches!(result, Err(ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)),
                "a truncated upload read as {result:?} (abort: {abort})"
            );
            seen.push(result);
        }
        wait_until("upload handlers finished", || live.load(Ordering::SeqCst) == 0).await;
    }
    node.settles(1, 1, tasks).await;
    let aborted = seen.iter().filter(|r| **r == Err(ErrorKind::ConnectionAborted)).count();
    memory.check(&format!(
        "{} truncated uploads: {aborted} ended with ConnectionAborted, {} with ConnectionReset",
        seen.len(),
        seen.len() - aborted
    ));
    node.assert_still_serving(&good, pinging, "peer_vanishing_mid_stream_leaks_nothing").await;
}

// ---------------------------------------------------------------------------
// 13. A peer that never reads

/// Attack: a peer that makes the node write and never reads — 32 perf
/// downloads of 1 GiB each, and 32 echo streams each sent a full 256 KiB
/// window — from a socket with small buffers.
/// Expected: the yamux send windows (256 KiB per stream) and the send buffer
/// stop the node's writers; what the node buffered is bounded by the
/// receive windows; memory stays flat, the good peer is served. Once the
/// attacker resets its streams, the handlers end and the node settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_never_reads_is_bounded_by_windows() {
    use peerswarm_proto::perf::{encode_request, PROTOCOL as PERF};
    let _serial = SERIAL.lock().await;
    let (node, good, pinging, tasks) = setup(Options { perf: true, ..Options::default() }).await;
    let memory = Memory::start("peer_that_never_reads_is_bounded_by_windows");
    let mut attacker = Attacker::connect_with_buffers(&node, 64 * 1024).await;

    const EACH: u32 = 32;
    let window = vec![0x77u8; 256 * 1024 - 64];
    let mut ids = Vec::new();
    for i in 0..EACH {
        let id = 2 * i + 1;
        ids.push(id);
        let plain = open_with(id, PERF, &encode_request(1 << 30), Flags::FIN);
        attacker.send_plain(&plain).await;
    }
    // The echo streams: the node's writers stall, so their input piles up
    // to the window. Write without reading (one stream at a time, so that
    // the attacker's own buffers stay small); the node keeps reading.
    let mut sent = 0;
    for i in 0..EACH {
        let id = 2 * (EACH + i) + 1;
        ids.push(id);
        let mut plain = open_with(id, ECHO, &[], Flags::NONE);
        for chunk in window.chunks(60 * 1024) {
            plain.extend_from_slice(&frame(Header::data(id, Flags::NONE, chunk.len() as u32)));
            plain.extend_from_slice(chunk);
        }
        let sealed = attacker.seal(&plain);
        within_long("the node takes the echo data", attacker.tcp.write_all(&sealed)).await.unwrap();
        sent += sealed.len();
    }
    // Let the node's writers fill every window they can.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let conn = node.conn_from(attacker.port()).await;
    let inbound = conn.streams().iter().filter(|s| s.direction == Direction::Inbound).count();
    assert_eq!(inbound, 2 * EACH as usize, "every stream is open, stalled");
    let growth = memory.check(&format!(
        "{EACH} stalled perf downloads + {EACH} stalled echoes ({:.1} MiB sent by the attacker)",
        sent as f64 / MIB
    ));
    assert!(!conn.is_closed());

    // The attacker gives up: RST everything; the handlers end.
    let resets: Vec<u8> =
        ids.iter().flat_map(|&id| frame(Header::window_update(id, Flags::RST, 0))).collect();
    attacker.send_plain(&resets).await;
    wait_until("inbound streams released", || inbound_streams(&conn) == 0).await;
    drop(attacker);
    node.settles(1, 1, tasks).await;
    eprintln!("[figures] never-reading peer: growth {:.1} MiB while stalled", growth as f64 / MIB);
    node.assert_still_serving(&good, pinging, "peer_that_never_reads_is_bounded_by_windows").await;
}
