//! More of go-libp2p's swarm tests, ported: `dial_sync_test.go` (at the
//! swarm level), the rest of `dial_test.go`, `swarm_test.go`,
//! `swarm_event_test.go`, `swarm_notif_test.go`, `swarm_addr_test.go`,
//! `swarm_dial_test.go`, `simul_test.go`, and the upgrader's listener tests
//! (`p2p/net/upgrader/listener_test.go`) against [`Endpoint`]/`Listener`.
//! `tests/README.md` maps each Go test to its Rust test.

mod common;

use common::*;
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::multiaddr::Protocol;
use peerswarm::multistream::{self, NegotiationError};
use peerswarm::peerstore::PERMANENT_ADDR_TTL;
use peerswarm::swarm::dial::{AddrError, BackoffConfig};
use peerswarm::swarm::{Conn, ConnAddrs, ConnectionGater, DialCause, Notifiee, Swarm};
use peerswarm::{Connection, Direction, Endpoint, EndpointConfig, Multiaddr};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

// ----- helpers -----

fn socket_addr(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::from(v4)),
            Protocol::Tcp(port) => return SocketAddr::new(ip.expect("ip before tcp"), port),
            _ => {}
        }
    }
    panic!("not a tcp address: {addr}")
}

fn tcp_multiaddr(addr: SocketAddr) -> Multiaddr {
    format!("/ip4/{}/tcp/{}", addr.ip(), addr.port()).parse().unwrap()
}

/// A TCP relay in front of a listener that forwards nothing from the client
/// until [`open`](Self::open) is called (go's blocking dial functions and
/// muxers): it holds dials in flight for as long as a test needs. It can
/// also refuse (close at once) the first connections.
struct GateProxy {
    addr: Multiaddr,
    gate: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    hung_up: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl GateProxy {
    async fn start(target: &Multiaddr) -> Self {
        Self::refusing_first(target, 0).await
    }

    async fn refusing_first(target: &Multiaddr, refuse: usize) -> Self {
        let target = socket_addr(target);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp_multiaddr(listener.local_addr().unwrap());
        let (gate, _) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let hung_up = Arc::new(AtomicUsize::new(0));
        let refuse = Arc::new(AtomicUsize::new(refuse));
        let task = tokio::spawn({
            let (gate, accepted, hung_up) = (gate.subscribe(), accepted.clone(), hung_up.clone());
            async move {
                let mut relays = JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if refuse.load(Ordering::SeqCst) > 0 {
                        refuse.fetch_sub(1, Ordering::SeqCst);
                        drop(client);
                        continue;
                    }
                    relays.spawn(relay(client, target, gate.clone(), hung_up.clone()));
                }
            }
        });
        Self { addr, gate, accepted, hung_up, task }
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    /// TCP connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Clients that hung up while the gate was shut.
    fn hung_up(&self) -> usize {
        self.hung_up.load(Ordering::SeqCst)
    }
}

impl Drop for GateProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    mut gate: watch::Receiver<bool>,
    hung_up: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let mut held = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            _ = gate.wait_for(|open| *open) => break,
            read = cr.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    hung_up.fetch_add(1, Ordering::SeqCst);
                    down.abort();
                    return;
                }
                Ok(n) => held.extend_from_slice(&buf[..n]),
            },
        }
    }
    if sw.write_all(&held).await.is_ok() {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
}

/// A TCP listener that accepts, counts and then says nothing.
async fn silent_listener() -> (JoinHandle<()>, u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (task, port, accepted)
}

fn loopback_tcp(port: u16) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

/// Loopback dials get 5 s, so a gate can hold them without a timeout.
async fn patient_swarm() -> Swarm {
    gen_swarm_with(test_config().with_dial_timeout_local(Duration::from_secs(5))).await
}

/// Teaches `a` to reach `b` only through a fresh gate proxy.
async fn via_gate(a: &Swarm, b: &Swarm) -> GateProxy {
    let proxy = GateProxy::start(&b.listen_addresses()[0]).await;
    a.peerstore().add_addrs_now(b.local_peer(), vec![proxy.addr.clone()], PERMANENT_ADDR_TTL).unwrap();
    proxy
}

fn spawn_dial(swarm: &Swarm, peer: PeerId) -> JoinHandle<Result<Conn, peerswarm::swarm::DialError>> {
    let swarm = swarm.clone();
    tokio::spawn(async move { swarm.dial_peer(&peer).await })
}

/// Counts `connected` and `disconnected` notifications.
#[derive(Default)]
struct Counts {
    connected: AtomicUsize,
    disconnected: AtomicUsize,
}

struct Counting(Arc<Counts>);

impl Notifiee for Counting {
    fn connected(&self, _: &Conn) {
        self.0.connected.fetch_add(1, Ordering::SeqCst);
    }
    fn disconnected(&self, _: &Conn) {
        self.0.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

fn count_conns(swarm: &Swarm) -> Arc<Counts> {
    let counts = Arc::<Counts>::default();
    swarm.notify(Counting(counts.clone()));
    counts
}

/// go's connectedness events: one per peer per change. Every test using it
/// keeps one connection per peer, where per-connection notifications and
/// per-peer connectedness changes coincide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Connected(PeerId),
    NotConnected(PeerId),
}

/// Forwards notifications into a channel, like go's event-bus subscription.
struct Events(mpsc::UnboundedSender<Event>);

impl Notifiee for Events {
    fn connected(&self, conn: &Conn) {
        let _ = self.0.send(Event::Connected(conn.remote_peer()));
    }
    fn disconnected(&self, conn: &Conn) {
        let _ = self.0.send(Event::NotConnected(conn.remote_peer()));
    }
}

fn subscribe(swarm: &Swarm) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    swarm.notify(Events(tx));
    rx
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event in time")
        .expect("subscribed")
}

// ----- dial_sync_test.go, at the swarm level -----

#[tokio::test]
async fn basic_dial_sync() {
    let (a, b) = (patient_swarm().await, gen_swarm().await);
    let proxy = via_gate(&a, &b).await;
    let peer = b.local_peer();
    let (d1, d2) = (spawn_dial(&a, peer), spawn_dial(&a, peer));
    assert!(eventually(Duration::from_secs(2), || proxy.accepted() == 1).await);
    proxy.open();
    let (c1, c2) = (d1.await.unwrap().unwrap(), d2.await.unwrap().unwrap());
    assert_eq!(c1, c2, "both callers get the one connection");
    assert_eq!(proxy.accepted(), 1, "the dial ran once for both callers");
    assert_eq!(a.conns_to_peer(&peer).len(), 1);
}

#[tokio::test]
async fn dial_sync_cancel_leaves_the_other_waiter() {
    let (a, b) = (patient_swarm().await, gen_swarm().await);
    let proxy = via_gate(&a, &b).await;
    let peer = b.local_peer();
    let waiting = spawn_dial(&a, peer);
    // The first caller gives up (its future is dropped): it gets its own
    // "context" error, the timeout.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), a.dial_peer(&peer)).await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    assert_eq!(proxy.accepted(), 1);
    proxy.open();
    let conn = waiting.await.unwrap().expect("the other waiter still gets the connection");
    assert_eq!(conn.remote_peer(), peer);
    assert_eq!(proxy.hung_up(), 0, "the shared dial was not cancelled");
    assert_eq!(proxy.accepted(), 1, "nor restarted");
}

#[tokio::test]
async fn dial_sync_all_cancel_stops_the_dial_and_a_new_one_succeeds() {
    let (a, b) = (patient_swarm().await, gen_swarm().await);
    let proxy = via_gate(&a, &b).await;
    let peer = b.local_peer();
    let (d1, d2) = (spawn_dial(&a, peer), spawn_dial(&a, peer));
    assert!(eventually(Duration::from_secs(2), || proxy.accepted() == 1).await);
    d1.abort();
    d2.abort();
    assert!(d1.await.unwrap_err().is_cancelled());
    assert!(d2.await.unwrap_err().is_cancelled());
    // With no caller left, the dial itself is abandoned.
    assert!(eventually(Duration::from_secs(2), || proxy.hung_up() == 1).await, "in-flight dial aborted");
    assert!(!a.backoff_contains(&peer, &proxy.addr), "a cancelled dial is not a failure");
    proxy.open();
    let conn = a.dial_peer(&peer).await.expect("a later dial starts afresh");
    assert_eq!(conn.remote_peer(), peer);
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn fail_first_is_not_cached() {
    let mut backoff = BackoffConfig::default();
    backoff.set_base(Duration::ZERO).set_coef(Duration::ZERO);
    let a = gen_swarm_with(test_config().with_backoff(backoff)).await;
    let b = gen_swarm().await;
    let proxy = GateProxy::refusing_first(&b.listen_addresses()[0], 1).await;
    proxy.open();
    let peer = b.local_peer();
    a.peerstore().add_addrs_now(peer, vec![proxy.addr.clone()], PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&peer).await.expect_err("the first connection is refused");
    assert!(matches!(err.cause, DialCause::AllDialsFailed), "{err}");
    let conn = a.dial_peer(&peer).await.expect("the error is not cached");
    assert_eq!(conn.remote_peer(), peer);
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_active_dial() {
    const ROUNDS: usize = 20;
    const CALLERS: usize = 50;
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let inbound = count_conns(&b);
    divulge(&b, &a);
    let peer = b.local_peer();
    for round in 0..ROUNDS {
        let dials: Vec<_> = (0..CALLERS).map(|_| spawn_dial(&a, peer)).collect();
        let mut conns = Vec::new();
        for d in dials {
            let conn = tokio::time::timeout(Duration::from_secs(10), d).await.expect("no deadlock");
            conns.push(conn.unwrap().expect("dial"));
        }
        assert!(conns.iter().all(|c| *c == conns[0]), "round {round}: one connection for all callers");
        assert_eq!(a.conns_to_peer(&peer).len(), 1, "round {round}");
        a.close_peer(&peer).await;
    }
    let connected = || inbound.connected.load(Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || connected() >= ROUNDS).await);
    assert_eq!(connected(), ROUNDS, "one connection per round");
}

// ----- dial_test.go -----

#[tokio::test]
async fn basic_dial_peer_with_resolver() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    echo_handler(&b);
    let port = socket_addr(&b.listen_addresses()[0]).port();
    let dns: Multiaddr = format!("/dns4/localhost/tcp/{port}").parse().unwrap();
    a.peerstore().add_addrs_now(b.local_peer(), vec![dns], PERMANENT_ADDR_TTL).unwrap();
    let conn = a.dial_peer(&b.local_peer()).await.expect("dial via the resolved address");
    assert_eq!(conn.remote_multiaddr(), &loopback_tcp(port));
    assert_eq!(echo(&a, &b.local_peer(), b"resolved").await, b"resolved");
}

#[tokio::test]
async fn dial_backoff() {
    let timeout = Duration::from_secs(1);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let b = gen_swarm().await;
    echo_handler(&b);
    divulge(&b, &a);
    let (_task, port, _) = silent_listener().await;
    let silent = PeerId::random();
    let silent_addr = loopback_tcp(port);
    a.peerstore().add_addrs_now(silent, vec![silent_addr.clone()], PERMANENT_ADDR_TTL).unwrap();
    let dial_all = |peer: PeerId| {
        let dials: Vec<_> = (0..10).map(|_| spawn_dial(&a, peer)).collect();
        async move {
            let mut results = Vec::new();
            for d in dials {
                results.push(d.await.unwrap());
            }
            results
        }
    };

    let started = Instant::now();
    assert!(dial_all(b.local_peer()).await.iter().all(Result::is_ok), "live peer");
    assert!(started.elapsed() < timeout, "live dials are fast: {:?}", started.elapsed());
    let started = Instant::now();
    let results = dial_all(silent).await;
    assert!(results.iter().all(Result::is_err), "silent peer");
    assert!(started.elapsed() < 2 * timeout + Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(a.backoff_contains(&silent, &silent_addr));
    assert!(!a.backoff_contains(&b.local_peer(), &b.listen_addresses()[0]));

    a.close_peer(&b.local_peer()).await;
    assert!(dial_all(b.local_peer()).await.iter().all(Result::is_ok), "live peer again");
    let started = Instant::now();
    for result in dial_all(silent).await {
        let err = result.unwrap_err();
        assert!(matches!(err.cause, DialCause::DialBackoff), "{err}");
    }
    assert!(started.elapsed() < timeout, "backed-off dials fail at once");
}

#[tokio::test]
async fn dial_simultaneous_join() {
    let timeout = Duration::from_millis(500);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let b = gen_swarm().await;
    let (_task, port, _) = silent_listener().await;
    let peer = b.local_peer();
    // Dial 1 goes through the silent address only.
    a.peerstore().add_addrs_now(peer, vec![loopback_tcp(port)], PERMANENT_ADDR_TTL).unwrap();
    let started = Instant::now();
    let d1 = spawn_dial(&a, peer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Dial 2 joins it with the real address, and connects.
    divulge(&b, &a);
    let c2 = a.dial_peer(&peer).await.expect("second dial");
    // Dial 3 gets the existing connection.
    let c3 = a.dial_peer(&peer).await.expect("third dial");
    assert_eq!(c2, c3);
    // Dial 1 ends with that connection, not with its address's error.
    let c1 = tokio::time::timeout(2 * timeout, d1).await.expect("first dial returns").unwrap();
    assert_eq!(c1.expect("the first dial gets the connection"), c2);
    assert!(started.elapsed() < 2 * timeout + Duration::from_secs(2));
}

#[tokio::test]
async fn dial_address_selection() {
    let a = gen_swarm().await;
    // Only TCP is implemented: QUIC (both drafts), WebTransport, WebSocket,
    // relay and transport-less addresses have no transport.
    for text in [
        "/ip4/127.0.0.1/udp/1234/quic",
        "/ip4/127.0.0.1/udp/1234/quic-v1",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport",
        "/ip4/127.0.0.1/tcp/1234/ws",
        "/ip4/127.0.0.1",
        "/ip4/127.0.0.1/tcp/1234/p2p-circuit",
    ] {
        let peer = PeerId::random();
        let addr: Multiaddr = text.parse().unwrap();
        a.peerstore().add_addrs_now(peer, vec![addr.clone()], PERMANENT_ADDR_TTL).unwrap();
        let err = a.dial_peer(&peer).await.unwrap_err();
        assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{text}: {err}");
        assert!(
            err.errors.iter().all(|(a, e)| *a == addr && matches!(e, AddrError::NoTransport)),
            "{text}: {err}"
        );
    }
}

// ----- simul_test.go -----

#[tokio::test]
async fn simult_open() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    divulge(&a, &b);
    divulge(&b, &a);
    let (ab, ba) = (spawn_dial(&a, b.local_peer()), spawn_dial(&b, a.local_peer()));
    assert_eq!(ab.await.unwrap().expect("a dials b").remote_peer(), b.local_peer());
    assert_eq!(ba.await.unwrap().expect("b dials a").remote_peer(), a.local_peer());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simult_open_few_stress() {
    for _ in 0..10 {
        ping_pong_swarms(2, 40).await;
    }
}

// ----- swarm_test.go -----

/// Answers each 4-byte "ping" with "pong" (go's `EchoStreamHandler`).
fn ping_pong_handler(swarm: &Swarm) {
    swarm.set_stream_handler(|mut stream| async move {
        let mut msg = [0u8; 4];
        while stream.read_exact(&mut msg).await.is_ok() {
            if &msg != b"ping" || stream.write_all(b"pong").await.is_err() {
                return;
            }
        }
        let _ = stream.close().await;
    });
}

/// go's `subtestSwarm`: `n` connected swarms; each sends `msgs` pings to
/// every other over one stream and counts the pongs.
async fn ping_pong_swarms(n: usize, msgs: usize) {
    let swarms: Vec<Swarm> = futures::future::join_all((0..n).map(|_| gen_swarm())).await;
    for s in &swarms {
        ping_pong_handler(s);
    }
    connect_all(&swarms).await;
    for s1 in &swarms {
        let mut tasks = JoinSet::new();
        for s2 in swarms.iter().filter(|s2| s2.local_peer() != s1.local_peer()) {
            let (s1, peer) = (s1.clone(), s2.local_peer());
            tasks.spawn(async move {
                let mut stream = s1.new_stream(&peer).await.expect("new stream");
                for _ in 0..msgs {
                    stream.write_all(b"ping").await.expect("ping");
                }
                let mut got = 0;
                let mut msg = [0u8; 4];
                for _ in 0..msgs {
                    stream.read_exact(&mut msg).await.expect("pong");
                    assert_eq!(&msg, b"pong");
                    got += 1;
                }
                stream.close().await.expect("close");
                (peer, got)
            });
        }
        let mut got = std::collections::HashMap::new();
        while let Some(result) = tasks.join_next().await {
            let (peer, count) = result.unwrap();
            got.insert(peer, count);
        }
        assert_eq!(got.len(), n - 1, "every peer answered");
        assert!(got.values().all(|&count| count == msgs), "{got:?}");
    }
    for s in &swarms {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_five_by_hundred_ping_pong() {
    ping_pong_swarms(5, 100).await;
}

#[tokio::test]
async fn basic_swarm() {
    ping_pong_swarms(2, 1).await;
}

#[tokio::test]
async fn conn_handler_runs_once_per_new_connection() {
    let swarms: Vec<Swarm> = futures::future::join_all((0..5).map(|_| gen_swarm())).await;
    let (tx, mut rx) = mpsc::channel(10);
    swarms[0].set_conn_handler(move |_conn| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(()).await;
        }
    });
    connect_all(&swarms).await;
    swarms[0].remove_conn_handler();
    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(1), rx.recv()).await.expect("a call per connection");
    }
    // Connections made after the handler was removed do not call it.
    let late = gen_swarm().await;
    divulge(&swarms[0], &late);
    late.dial_peer(&swarms[0].local_peer()).await.unwrap();
    let peer = late.local_peer();
    assert!(eventually(Duration::from_secs(2), || !swarms[0].conns_to_peer(&peer).is_empty()).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err(), "expected exactly 4 calls");
}

#[tokio::test]
async fn listen_close_count() {
    let s = gen_dial_only();
    s.listen(&[loopback(), loopback()]).await.unwrap();
    let listened = s.listen_addresses();
    assert_eq!(listened.len(), 2);
    // A copy, so that the comparison is by value.
    let to_close: Multiaddr = listened[1].to_string().parse().unwrap();
    s.listen_close(std::slice::from_ref(&to_close));
    assert_eq!(s.listen_addresses(), vec![listened[0].clone()]);
    assert!(TcpStream::connect(socket_addr(&to_close)).await.is_err(), "closed listener refuses");
    assert!(TcpStream::connect(socket_addr(&listened[0])).await.is_ok(), "the other still accepts");
}

// ----- swarm_addr_test.go -----

#[tokio::test]
async fn addr_race() {
    let s = gen_swarm_with(test_config()).await;
    s.add_listen_addr(&"/ip4/0.0.0.0/tcp/0".parse().unwrap()).await.unwrap();
    let mut first = s.interface_listen_addresses();
    let second = s.interface_listen_addresses();
    assert!(!first.is_empty());
    assert_ne!(first.as_ptr(), second.as_ptr(), "distinct vectors");
    first[0].push(Protocol::Tcp(1));
    first.clear();
    assert_eq!(s.interface_listen_addresses(), second, "callers get copies, not the cache");
}

#[tokio::test]
async fn addresses_without_listening() {
    let s = gen_dial_only();
    assert!(s.interface_listen_addresses().is_empty());
    assert!(s.listen_addresses().is_empty());
}

// ----- swarm_dial_test.go -----

#[tokio::test]
async fn dedup_addrs_for_dial() {
    let timeout = Duration::from_millis(300);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let (_task, port, accepted) = silent_listener().await;
    let peer = PeerId::random();
    let addrs: Vec<Multiaddr> =
        vec![format!("/dns4/localhost/tcp/{port}").parse().unwrap(), loopback_tcp(port)];
    a.peerstore().add_addrs_now(peer, addrs, PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&peer).await.unwrap_err();
    assert_eq!(err.errors.len(), 1, "the two addresses collapse to one: {err}");
    assert_eq!(err.errors[0].0, loopback_tcp(port));
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "dialed once");
}

// ----- swarm_event_test.go (connectedness events via notifications) -----

#[tokio::test]
async fn connectedness_events_single_conn() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let (mut ea, mut eb) = (subscribe(&a), subscribe(&b));
    divulge(&b, &a);
    a.dial_peer(&b.local_peer()).await.unwrap();
    assert_eq!(next_event(&mut ea).await, Event::Connected(b.local_peer()));
    assert_eq!(next_event(&mut eb).await, Event::Connected(a.local_peer()));
    a.close_peer(&b.local_peer()).await;
    assert_eq!(next_event(&mut ea).await, Event::NotConnected(b.local_peer()));
    assert_eq!(next_event(&mut eb).await, Event::NotConnected(a.local_peer()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ea.try_recv().is_err() && eb.try_recv().is_err(), "nothing more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectedness_events() {
    const N: usize = 100;
    let s1 = gen_swarm().await;
    let mut events = subscribe(&s1);
    let peers: Vec<Swarm> = futures::future::join_all((0..N).map(|_| gen_swarm())).await;
    for p in &peers {
        divulge(p, &s1);
        s1.dial_peer(&p.local_peer()).await.expect("dial");
    }
    let mut connected = std::collections::HashSet::new();
    for _ in 0..N {
        match next_event(&mut events).await {
            Event::Connected(p) => assert!(connected.insert(p)),
            other => panic!("expected a connected event, got {other:?}"),
        }
    }
    assert_eq!(connected.len(), N);
    for p in &peers[..N / 2] {
        s1.close_peer(&p.local_peer()).await;
    }
    for _ in 0..N / 2 {
        match next_event(&mut events).await {
            Event::NotConnected(p) => assert!(peers[..N / 2].iter().any(|s| s.local_peer() == p)),
            other => panic!("expected a disconnected event, got {other:?}"),
        }
    }
    s1.close().await;
    for _ in N / 2..N {
        match next_event(&mut events).await {
            Event::NotConnected(p) => assert!(peers[N / 2..].iter().any(|s| s.local_peer() == p)),
            other => panic!("expected a disconnected event, got {other:?}"),
        }
    }
    assert!(events.try_recv().is_err(), "exactly one event per change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_deadlock_when_consuming_connectedness_events() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let mut events = subscribe(&a);
    divulge(&b, &a);
    let consumer = tokio::spawn({
        let a = a.clone();
        async move {
            for _ in 0..20 {
                let (Event::Connected(p) | Event::NotConnected(p)) = next_event(&mut events).await;
                // A slow consumer that calls back into the swarm.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = a.conns_to_peer(&p);
            }
        }
    });
    for _ in 0..10 {
        a.dial_peer(&b.local_peer()).await.unwrap();
        a.close_peer(&b.local_peer()).await;
    }
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("no deadlock").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectedness_event_deadlock() {
    const N: usize = 100;
    let s1 = gen_swarm().await;
    let mut events = subscribe(&s1);
    let peers: Vec<Swarm> = futures::future::join_all((0..N).map(|_| gen_swarm())).await;
    let consumer = tokio::spawn({
        let s1 = s1.clone();
        async move {
            let mut count = 0;
            while count < N {
                let event = next_event(&mut events).await;
                tokio::time::sleep(Duration::from_millis(1)).await; // a slow consumer
                if let Event::Connected(p) = event {
                    count += 1;
                    s1.close_peer(&p).await;
                }
            }
        }
    });
    let mut dials = Vec::new();
    for p in &peers {
        divulge(p, &s1);
        dials.push(spawn_dial(&s1, p.local_peer()));
    }
    for d in dials {
        d.await.unwrap().expect("dial");
    }
    tokio::time::timeout(Duration::from_secs(30), consumer).await.expect("all events consumed").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectedness_event_deadlock_with_dial() {
    const N: usize = 50;
    let s1 = gen_swarm().await;
    let mut events = subscribe(&s1);
    let peers: Vec<Swarm> = futures::future::join_all((0..N).map(|_| gen_swarm())).await;
    let peers2: Vec<Swarm> = futures::future::join_all((0..N).map(|_| gen_swarm())).await;
    let (done_tx, mut done) = watch::channel(false);
    let consumer = tokio::spawn({
        let (s1, peers2) = (s1.clone(), peers2.clone());
        async move {
            let mut count = 0;
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    _ = done.wait_for(|d| *d) => return,
                };
                let Some(event) = event else { return };
                tokio::time::sleep(Duration::from_millis(1)).await;
                if matches!(event, Event::Connected(_)) && count < N {
                    // Dial from the event consumer while other dials run.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    divulge(&peers2[count], &s1);
                    let peer = peers2[count].local_peer();
                    let _ = tokio::time::timeout(Duration::from_millis(100), s1.dial_peer(&peer)).await;
                    count += 1;
                }
            }
        }
    });
    let mut dials = Vec::new();
    for p in &peers {
        divulge(p, &s1);
        let (s1, peer) = (s1.clone(), p.local_peer());
        dials.push(tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(100), s1.dial_peer(&peer)).await;
        }));
    }
    for d in dials {
        d.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), s1.close()).await.expect("close completes");
    done_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), consumer).await.expect("consumer finishes").unwrap();
}

// ----- swarm_notif_test.go -----

/// Calls `close` from inside `disconnected` (spawned: callbacks are
/// synchronous and must not block).
struct CloseOnDisconnected {
    swarm: Swarm,
    disconnected: Arc<AtomicUsize>,
    closes_done: Arc<AtomicUsize>,
}

impl Notifiee for CloseOnDisconnected {
    fn disconnected(&self, _: &Conn) {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
        let (swarm, done) = (self.swarm.clone(), self.closes_done.clone());
        tokio::spawn(async move {
            swarm.close().await;
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
}

#[tokio::test]
async fn notifications_close_from_disconnected() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let (disconnected, closes_done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    a.notify(CloseOnDisconnected {
        swarm: a.clone(),
        disconnected: disconnected.clone(),
        closes_done: closes_done.clone(),
    });
    divulge(&b, &a);
    a.dial_peer(&b.local_peer()).await.unwrap();
    // The swarm closes; the nested close is a harmless no-op.
    tokio::time::timeout(Duration::from_secs(5), a.close()).await.expect("close returns");
    assert!(eventually(Duration::from_secs(5), || closes_done.load(Ordering::SeqCst) == 1).await);
    assert_eq!(disconnected.load(Ordering::SeqCst), 1);
    assert!(a.is_closed());
}

// ----- upgrader: listener_test.go, against Endpoint and Listener -----

fn endpoint() -> Endpoint {
    Endpoint::new(
        EndpointConfig::new(Keypair::generate_ed25519()).with_handshake_timeout(Duration::from_secs(5)),
    )
}

/// go's `testConn`: a stream from the dialer reaches the listener.
async fn test_conn(client: &Connection, server: &Connection) {
    let mut out = client.open_stream(&["/test/1.0.0"]).await.expect("open stream");
    out.write_all(b"foobar").await.unwrap();
    out.close_write().await.unwrap();
    let mut inbound = server.accept_stream(&["/test/1.0.0"]).await.expect("accept stream");
    let mut buf = Vec::new();
    inbound.read_to_end(&mut buf).await.unwrap();
    assert_eq!(buf, b"foobar");
}

#[tokio::test]
async fn accept_multiple_conns() {
    let (server, client) = (endpoint(), endpoint());
    let mut listener = server.listen(&loopback()).await.unwrap();
    let addr = listener.local_addr().clone();
    for _ in 0..10 {
        let cconn = client.dial(&addr, Some(server.local_peer_id())).await.expect("dial");
        let sconn = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        assert_eq!(cconn.remote_peer_id(), server.local_peer_id());
        assert_eq!(sconn.remote_peer_id(), client.local_peer_id());
        test_conn(&cconn, &sconn).await;
    }
}

#[tokio::test]
async fn failed_upgrade_on_listen() {
    let server = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()).with_insecure_plaintext());
    let mut listener = server.listen(&loopback()).await.unwrap();
    let addr = listener.local_addr().clone();
    // A dialer that secures the connection, then offers only a muxer the
    // listener lacks: the upgrade fails on both sides.
    let tcp = TcpStream::connect(socket_addr(&addr)).await.unwrap();
    let (_, mut io) = multistream::dialer_select(tcp, [peerswarm::upgrade::PLAINTEXT_PROTOCOL], false)
        .await
        .expect("security agreed");
    let key = Keypair::generate_ed25519();
    io.write_all(&peerswarm_proto::plaintext::Exchange::new(key.public()).encode_framed()).await.unwrap();
    io.flush().await.unwrap();
    let mut prefix = Vec::new();
    let len = loop {
        prefix.push(io.read_u8().await.unwrap());
        if let Some((len, _)) = peerswarm_proto::plaintext::decode_length_prefix(&prefix).unwrap() {
            break len;
        }
    };
    let mut body = vec![0; len];
    io.read_exact(&mut body).await.unwrap();
    let muxer = multistream::dialer_select(io, ["/mplex/6.7.0"], false).await;
    assert!(matches!(muxer, Err(NegotiationError::Failed)), "{muxer:?}");
    // The listener keeps working...
    let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()).with_insecure_plaintext());
    let cconn = client.dial(&addr, Some(server.local_peer_id())).await.expect("good dial");
    let sconn = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
    assert_eq!(sconn.remote_peer_id(), client.local_peer_id(), "the failed upgrade was skipped");
    test_conn(&cconn, &sconn).await;
    // ...until closed.
    drop(listener);
    assert!(client.dial(&addr, Some(server.local_peer_id())).await.is_err());
}

#[tokio::test]
async fn listener_close() {
    let (server, client) = (endpoint(), endpoint());
    let listener = server.listen(&loopback()).await.unwrap();
    let addr = listener.local_addr().clone();
    // Closing is dropping; a task blocked in accept is ended with it.
    let acceptor = tokio::spawn(async move {
        let mut listener = listener;
        while listener.accept().await.is_some() {}
    });
    acceptor.abort();
    assert!(acceptor.await.unwrap_err().is_cancelled());
    let err = client.dial(&addr, Some(server.local_peer_id())).await.expect_err("dial after close");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accept() {
    const NUM: usize = 48; // go: 3 × the accept queue length
    let (server, client) = (endpoint(), endpoint());
    let mut listener = server.listen(&loopback()).await.unwrap();
    let proxy = GateProxy::start(listener.local_addr()).await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut conns = JoinSet::new();
            while let Some(conn) = listener.accept().await {
                let accepted = accepted.clone();
                conns.spawn(async move {
                    // Counted once the dialer's stream arrives.
                    if conn.accept_stream(&["/test/1.0.0"]).await.is_ok() {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    conn.close().await;
                });
            }
        }
    });
    let mut dials = JoinSet::new();
    for _ in 0..NUM {
        let (client, addr, peer) = (client.clone(), proxy.addr.clone(), server.local_peer_id());
        dials.spawn(async move {
            let conn = client.dial(&addr, Some(peer)).await.map_err(|e| e.to_string())?;
            let mut stream = conn.open_stream(&["/test/1.0.0"]).await.map_err(|e| e.to_string())?;
            stream.write_all(b"x").await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, stream))
        });
    }
    // Every handshake is in progress on the listener, none can finish.
    assert!(eventually(Duration::from_secs(5), || proxy.accepted() == NUM).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    proxy.open();
    assert!(
        eventually(Duration::from_secs(10), || accepted.load(Ordering::SeqCst) == NUM).await,
        "accepted {} of {NUM}",
        accepted.load(Ordering::SeqCst)
    );
    while let Some(dial) = dials.join_next().await {
        dial.unwrap().expect("dial");
    }
    acceptor.abort();
}

#[tokio::test]
async fn no_common_security_proto() {
    let server = endpoint();
    let mut listener = server.listen(&loopback()).await.unwrap();
    let addr = listener.local_addr().clone();
    let tcp = TcpStream::connect(socket_addr(&addr)).await.unwrap();
    let result = multistream::dialer_select(tcp, ["/unknown-security/1.0.0"], false).await;
    assert!(matches!(result, Err(NegotiationError::Failed)), "{:?}", result.map(|(p, _)| p));
    // A dialer that speaks only plaintext does not get in either.
    let plain = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()).with_insecure_plaintext());
    assert!(plain.dial(&addr, Some(server.local_peer_id())).await.is_err());
    // The listener keeps working.
    let client = endpoint();
    let cconn = client.dial(&addr, Some(server.local_peer_id())).await.expect("good dial");
    let sconn = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
    assert_eq!(sconn.remote_peer_id(), client.local_peer_id(), "nothing else was accepted");
    test_conn(&cconn, &sconn).await;
}

/// A gater whose accept and secured hooks can be switched at run time.
#[derive(Default)]
struct Toggles {
    block_accept: AtomicBool,
    block_secured: AtomicBool,
}

struct ToggleGater(Arc<Toggles>);

impl ConnectionGater for ToggleGater {
    fn intercept_accept(&self, _: &ConnAddrs) -> bool {
        !self.0.block_accept.load(Ordering::SeqCst)
    }
    fn intercept_secured(&self, _: Direction, _: &PeerId, _: &ConnAddrs) -> bool {
        !self.0.block_secured.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn listener_connection_gater() {
    let toggles = Arc::<Toggles>::default();
    let server = Swarm::builder(Keypair::generate_ed25519())
        .config(test_config())
        .gater(ToggleGater(toggles.clone()))
        .build();
    server.listen(&[loopback()]).await.unwrap();
    let addr = server.listen_addresses()[0].clone();
    // (block secured, block accept, allowed)
    for (secured, accept, allowed) in [
        (false, false, true),
        (true, false, false),
        (true, true, false),
        (false, true, false),
        (false, false, true),
    ] {
        toggles.block_secured.store(secured, Ordering::SeqCst);
        toggles.block_accept.store(accept, Ordering::SeqCst);
        let client = endpoint();
        let peer = client.local_peer_id();
        let result = client.dial(&addr, Some(server.local_peer()));
        let result = tokio::time::timeout(Duration::from_secs(5), result).await.expect("dial ends");
        let case = format!("secured {secured}, accept {accept}: {result:?}");
        if allowed {
            let conn = result.expect(&case);
            assert!(!conn.is_closed(), "{case}");
            assert!(eventually(Duration::from_secs(2), || !server.conns_to_peer(&peer).is_empty()).await);
        } else {
            // Refused at accept: the dial fails. Refused once secured: the
            // dialer may finish its side of the handshake first (Noise's last
            // message is the dialer's, and the muxer is agreed inside it), so
            // the connection is closed by the listener at once instead.
            if let Ok(conn) = result {
                assert!(!accept, "{case}");
                let closed = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                assert!(closed.is_ok(), "{case}: the listener closes it");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(server.conns_to_peer(&peer).is_empty(), "{case}");
        }
    }
}
