//! go-libp2p's swarm tests (`dial_test.go`, `swarm_test.go`,
//! `swarm_notif_test.go`, `swarm_net_test.go`, `simul_test.go`,
//! `peers_test.go`, `swarm_addr_test.go`), ported. `tests/README.md` maps
//! each Go test to its Rust test.

mod common;

use common::*;
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::peerstore::PERMANENT_ADDR_TTL;
use peerswarm::swarm::{
    Conn, ConnAddrs, Connectedness, ConnectionGater, DialCause, Notifiee, Swarm, SwarmError,
};
use peerswarm::{Direction, Multiaddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP listener that accepts and then says nothing.
async fn silent_listener() -> (tokio::task::JoinHandle<()>, Multiaddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (task, format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap())
}

#[tokio::test]
async fn basic_dial_peer() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    echo_handler(&b);
    divulge(&b, &a);
    let conn = a.dial_peer(&b.local_peer()).await.unwrap();
    assert_eq!(conn.remote_peer(), b.local_peer());
    assert_eq!(echo(&a, &b.local_peer(), b"ping").await, b"ping");
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_swarm() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    divulge(&b, &a);
    a.dial_peer(&b.local_peer()).await.unwrap();
    let peer = a.local_peer();
    let port = match a.listen_addresses()[0].iter().nth(1) {
        Some(peerswarm::multiaddr::Protocol::Tcp(port)) => port,
        other => panic!("not a TCP listen address: {other:?}"),
    };
    // A clone keeps the node running.
    let clone = a.clone();
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.conns_to_peer(&peer).len(), 1);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok());
    // The last one closes it: connections and listener.
    drop(clone);
    assert!(eventually(Duration::from_secs(5), || b.conns_to_peer(&peer).is_empty()).await);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the dropped swarm still accepts connections");
}

#[tokio::test]
async fn dial_with_no_listeners() {
    let a = gen_dial_only();
    let b = gen_swarm().await;
    echo_handler(&b);
    assert!(a.listen_addresses().is_empty());
    assert!(a.interface_listen_addresses().is_empty());
    divulge(&b, &a);
    assert_eq!(echo(&a, &b.local_peer(), b"hello").await, b"hello");
}

#[tokio::test]
async fn dial_self_is_an_error() {
    let a = gen_swarm().await;
    for _ in 0..2 {
        let err = a.dial_peer(&a.local_peer()).await.unwrap_err();
        assert!(matches!(err.cause, DialCause::DialToSelf), "{err}");
    }
}

#[tokio::test]
async fn prevent_dial_listen_addr() {
    let a = gen_swarm().await;
    let other = PeerId::random();
    a.peerstore().add_addrs_now(other, a.listen_addresses(), PERMANENT_ADDR_TTL).unwrap();
    let err = a.dial_peer(&other).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{err}");
}

#[tokio::test]
async fn dial_peer_with_no_addresses() {
    let a = gen_swarm().await;
    let err = a.dial_peer(&PeerId::random()).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::NoAddresses), "{err}");
}

#[tokio::test]
async fn dial_bad_addrs() {
    let a = gen_swarm().await;
    for text in [
        "/ip6/fe80::1/tcp/1234",
        "/ip6/fe80::100/tcp/1234",
        "/ip4/127.0.0.1/udp/1234/utp",
        "/ip4/0.0.0.0/tcp/1",
    ] {
        let peer = PeerId::random();
        a.peerstore().add_addrs_now(peer, vec![text.parse().unwrap()], PERMANENT_ADDR_TTL).unwrap();
        let err = a.dial_peer(&peer).await.unwrap_err();
        assert!(matches!(err.cause, DialCause::NoGoodAddresses), "{text}: {err}");
    }
}

#[tokio::test]
async fn dial_existing_connection() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    divulge(&b, &a);
    let c1 = a.dial_peer(&b.local_peer()).await.unwrap();
    let c2 = a.dial_peer(&b.local_peer()).await.unwrap();
    assert_eq!(c1, c2);
}

#[tokio::test]
async fn dial_wait_times_out_then_backs_off() {
    let timeout = Duration::from_millis(500);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let (_task, addr) = silent_listener().await;
    let peer = PeerId::random();
    a.peerstore().add_addrs_now(peer, vec![addr.clone()], PERMANENT_ADDR_TTL).unwrap();
    let started = Instant::now();
    let err = a.dial_peer(&peer).await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= timeout && took < 2 * timeout + Duration::from_secs(2), "took {took:?}: {err}");
    assert!(a.backoff_contains(&peer, &addr), "silent address should be backed off");
    // The next dial fails at once, with the backoff reason.
    let started = Instant::now();
    let err = a.dial_peer(&peer).await.unwrap_err();
    assert!(started.elapsed() < timeout, "{err}");
    assert!(format!("{err}").contains("backoff"), "{err}");
}

#[tokio::test]
async fn dial_peer_failed_reports_every_address() {
    let timeout = Duration::from_millis(300);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let peer = PeerId::random();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (task, addr) = silent_listener().await;
        tasks.push(task);
        a.peerstore().add_addrs_now(peer, vec![addr], PERMANENT_ADDR_TTL).unwrap();
    }
    let err = a.dial_peer(&peer).await.unwrap_err();
    assert!(matches!(err.cause, DialCause::AllDialsFailed), "{err}");
    assert_eq!(err.errors.len(), 5, "{err}");
}

#[tokio::test]
async fn dial_backoff_clears_on_success() {
    let timeout = Duration::from_millis(300);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let b = gen_swarm().await;
    let (_task, bad) = silent_listener().await;
    a.peerstore().add_addrs_now(b.local_peer(), vec![bad.clone()], PERMANENT_ADDR_TTL).unwrap();
    assert!(a.dial_peer(&b.local_peer()).await.is_err());
    assert!(a.backoff_contains(&b.local_peer(), &bad));
    divulge(&b, &a);
    a.dial_peer(&b.local_peer()).await.expect("dial via the good address");
    assert!(!a.backoff_contains(&b.local_peer(), &bad), "success clears the peer's backoffs");
}

#[tokio::test]
async fn simultaneous_dials_leave_at_most_two_connections() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    divulge(&a, &b);
    divulge(&b, &a);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (a2, b2) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move { a2.dial_peer(&b2.local_peer()).await.map(|_| ()) }));
        let (a2, b2) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move { b2.dial_peer(&a2.local_peer()).await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(a.conns_to_peer(&b.local_peer()).len() <= 2);
    assert!(b.conns_to_peer(&a.local_peer()).len() <= 2);
}

#[tokio::test]
async fn repeated_dials_leave_one_peer_and_one_connection() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    divulge(&b, &a);
    divulge(&a, &b);
    a.dial_peer(&b.local_peer()).await.unwrap();
    // Let b register the inbound connection before it dials back.
    let a_peer = a.local_peer();
    assert!(
        eventually(Duration::from_secs(2), || b.connectedness(&a_peer) == Connectedness::Connected).await
    );
    for _ in 0..100 {
        a.dial_peer(&b.local_peer()).await.unwrap();
        b.dial_peer(&a.local_peer()).await.unwrap();
    }
    assert_eq!(a.peers(), vec![b.local_peer()]);
    assert_eq!(a.conns().len(), 1);
    assert!(eventually(Duration::from_secs(2), || b.conns().len() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swarms_fully_meshed_by_simultaneous_dials() {
    const N: usize = 20;
    let mut swarms = Vec::new();
    for _ in 0..N {
        let s = gen_swarm().await;
        echo_handler(&s);
        swarms.push(s);
    }
    for a in &swarms {
        for b in &swarms {
            if a.local_peer() != b.local_peer() {
                divulge(b, a);
            }
        }
    }
    // Every swarm dials every other at once.
    let mut tasks = Vec::new();
    for a in &swarms {
        for b in &swarms {
            if a.local_peer() != b.local_peer() {
                let (a, peer) = (a.clone(), b.local_peer());
                tasks.push(tokio::spawn(async move {
                    a.dial_peer(&peer).await.expect("dial");
                    for round in 0..10u8 {
                        let msg = [round; 32];
                        assert_eq!(echo(&a, &peer, &msg).await, msg);
                    }
                }));
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for a in &swarms {
        for b in &swarms {
            if a.local_peer() != b.local_peer() {
                assert!(a.conns_to_peer(&b.local_peer()).len() <= 2);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tasks_of_a_thousand_dials_share_one_connection() {
    let (a, b) = (gen_swarm().await, gen_dial_only());
    divulge(&a, &b);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (b, peer) = (b.clone(), a.local_peer());
        tasks.push(tokio::spawn(async move {
            for _ in 0..1000 {
                b.dial_peer(&peer).await.expect("dial");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("no deadlock").unwrap();
    }
    assert_eq!(b.conns_to_peer(&a.local_peer()).len(), 1);
}

#[tokio::test]
async fn connectedness_is_correct() {
    let s: Vec<Swarm> = futures::future::join_all((0..4).map(|_| gen_swarm())).await;
    for (i, j) in [(0, 1), (0, 3), (1, 2), (3, 2)] {
        divulge(&s[j], &s[i]);
        s[i].dial_peer(&s[j].local_peer()).await.unwrap();
    }
    let connected = |i: usize, j: usize| s[i].connectedness(&s[j].local_peer()) == Connectedness::Connected;
    for (i, j) in [(0, 1), (0, 3), (1, 2), (3, 2)] {
        assert!(connected(i, j));
        assert!(eventually(Duration::from_secs(2), || connected(j, i)).await);
    }
    assert!(!connected(0, 2) && !connected(1, 3));
    assert_eq!(s[0].peers().len(), 2);
    s[0].close_peer(&s[1].local_peer()).await;
    assert!(!connected(0, 1));
    assert!(eventually(Duration::from_secs(2), || !connected(1, 0)).await);
}

#[tokio::test]
async fn network_open_stream_delivers_data_to_handler() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    b.set_stream_handler(move |mut stream| {
        let tx = tx.clone();
        async move {
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).await.unwrap();
            tx.send(buf).await.unwrap();
        }
    });
    divulge(&b, &a);
    let mut stream = a.new_stream(&b.local_peer()).await.unwrap();
    stream.write_all(b"beep").await.unwrap();
    stream.close_write().await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), b"beep");
    assert_eq!(a.conns_to_peer(&b.local_peer())[0].stat().num_streams, 1);
    let err = a.new_stream(&PeerId::random()).await.unwrap_err();
    assert!(matches!(err, SwarmError::Dial(_)));
}

#[tokio::test]
async fn stream_count_tracks_open_streams() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let held = Arc::new(Mutex::new(Vec::new()));
    let sink = held.clone();
    b.set_stream_handler(move |stream| {
        let sink = sink.clone();
        async move { sink.lock().unwrap().push(stream) }
    });
    divulge(&b, &a);
    let mut outbound = Vec::new();
    for _ in 0..10 {
        let mut s = a.new_stream(&b.local_peer()).await.unwrap();
        s.write_all(b"x").await.unwrap();
        s.flush().await.unwrap();
        outbound.push(s);
    }
    assert!(eventually(Duration::from_secs(2), || held.lock().unwrap().len() == 10).await);
    let conn = b.conns_to_peer(&a.local_peer())[0].clone();
    assert_eq!(conn.stat().num_streams, 10);
    assert_eq!(conn.streams().len(), 10);
    {
        let mut streams = held.lock().unwrap();
        streams[0].reset();
        let mut s = streams.remove(1);
        drop(streams);
        let _ = futures::FutureExt::now_or_never(s.close());
    }
    assert!(eventually(Duration::from_secs(2), || conn.stat().num_streams == 8).await);
    let s = conn.new_stream().await.unwrap();
    assert_eq!(conn.stat().num_streams, 9);
    assert_eq!(conn.streams().len(), 9);
    drop(s);
    assert_eq!(conn.stat().num_streams, 8);
}

#[tokio::test]
async fn close_with_open_streams_returns() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    echo_handler(&b);
    divulge(&b, &a);
    let _stream = a.new_stream(&b.local_peer()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), a.close()).await.expect("close returns");
    tokio::time::timeout(Duration::from_secs(5), a.close()).await.expect("close is idempotent");
    assert!(matches!(a.dial_peer(&b.local_peer()).await.unwrap_err().cause, DialCause::SwarmClosed));
    assert!(matches!(a.listen(&[loopback()]).await, Err(SwarmError::Closed)));
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    connected: Mutex<Vec<Conn>>,
    disconnected: Mutex<Vec<Conn>>,
}

struct Recording(Arc<Recorder>);

impl Notifiee for Recording {
    fn listen(&self, addr: &Multiaddr) {
        self.0.events.lock().unwrap().push(format!("listen {addr}"));
    }
    fn listen_close(&self, addr: &Multiaddr) {
        self.0.events.lock().unwrap().push(format!("listen_close {addr}"));
    }
    fn connected(&self, conn: &Conn) {
        self.0.connected.lock().unwrap().push(conn.clone());
    }
    fn disconnected(&self, conn: &Conn) {
        self.0.disconnected.lock().unwrap().push(conn.clone());
    }
}

#[tokio::test]
async fn notifications() {
    let swarms: Vec<Swarm> = futures::future::join_all((0..3).map(|_| gen_swarm())).await;
    let recorders: Vec<Arc<Recorder>> = swarms.iter().map(|_| Arc::default()).collect();
    for (s, r) in swarms.iter().zip(&recorders) {
        s.notify(Recording(r.clone()));
    }
    connect_all(&swarms).await;
    for (s, r) in swarms.iter().zip(&recorders) {
        assert!(eventually(Duration::from_secs(2), || r.connected.lock().unwrap().len() == 2).await);
        for conn in r.connected.lock().unwrap().iter() {
            assert!(s.conns_to_peer(&conn.remote_peer()).contains(conn));
        }
        assert!(!r.events.lock().unwrap().iter().any(|e| e.starts_with("listen_close")));
    }
    for s in &swarms {
        s.close().await;
    }
    for r in &recorders {
        assert!(eventually(Duration::from_secs(2), || r.disconnected.lock().unwrap().len() == 2).await);
        let connected = r.connected.lock().unwrap().clone();
        for conn in r.disconnected.lock().unwrap().iter() {
            assert!(connected.contains(conn), "disconnected only after connected, same conn");
        }
        assert_eq!(r.events.lock().unwrap().iter().filter(|e| e.starts_with("listen_close")).count(), 1);
    }
}

struct CloseOnConnected(Swarm, Arc<AtomicUsize>);

impl Notifiee for CloseOnConnected {
    fn connected(&self, _conn: &Conn) {
        let swarm = self.0.clone();
        tokio::spawn(async move { swarm.close().await });
    }
    fn disconnected(&self, _conn: &Conn) {
        self.1.fetch_add(1, Ordering::SeqCst);
        // Calling back into the swarm from a notification must not deadlock.
        let _ = self.0.conns();
        let _ = self.0.peers();
    }
}

#[tokio::test]
async fn close_from_connected_does_not_deadlock() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    let disconnected = Arc::new(AtomicUsize::new(0));
    a.notify(CloseOnConnected(a.clone(), disconnected.clone()));
    divulge(&b, &a);
    let _ = a.dial_peer(&b.local_peer()).await;
    assert!(eventually(Duration::from_secs(5), || a.is_closed()).await);
    assert!(eventually(Duration::from_secs(5), || disconnected.load(Ordering::SeqCst) == 1).await);
}

struct ClosePeerOnConnected(Swarm);

impl Notifiee for ClosePeerOnConnected {
    fn connected(&self, conn: &Conn) {
        let (swarm, peer) = (self.0.clone(), conn.remote_peer());
        let _ = swarm.connectedness(&peer);
        tokio::spawn(async move { swarm.close_peer(&peer).await });
    }
}

#[tokio::test]
async fn close_peer_from_connected_does_not_deadlock() {
    let a = gen_swarm().await;
    a.notify(ClosePeerOnConnected(a.clone()));
    let others: Vec<Swarm> = futures::future::join_all((0..10).map(|_| gen_swarm())).await;
    for b in &others {
        divulge(b, &a);
        let _ = a.dial_peer(&b.local_peer()).await;
    }
    assert!(eventually(Duration::from_secs(5), || a.conns().is_empty()).await);
    tokio::time::timeout(Duration::from_secs(5), a.close()).await.expect("close completes");
}

/// A gater refusing at one hook (go's `TestConnectionGating` table).
#[derive(Clone, Copy, Default)]
struct Refuse {
    peer_dial: bool,
    addr_dial: bool,
    accept: bool,
    secured: bool,
    upgraded: bool,
}

impl ConnectionGater for Refuse {
    fn intercept_peer_dial(&self, _: &PeerId) -> bool {
        !self.peer_dial
    }
    fn intercept_addr_dial(&self, _: &PeerId, _: &Multiaddr) -> bool {
        !self.addr_dial
    }
    fn intercept_accept(&self, _: &ConnAddrs) -> bool {
        !self.accept
    }
    fn intercept_secured(&self, _: Direction, _: &PeerId, _: &ConnAddrs) -> bool {
        !self.secured
    }
    fn intercept_upgraded(&self, _: &Conn) -> bool {
        !self.upgraded
    }
}

#[tokio::test]
async fn connection_gating() {
    let none = Refuse::default();
    // (name, p1's gater, p2's gater, dial fails)
    let cases = [
        ("no gating", none, none, false),
        ("p1 refuses peer dial", Refuse { peer_dial: true, ..none }, none, true),
        ("p1 refuses addr dial", Refuse { addr_dial: true, ..none }, none, true),
        ("p2 refuses addr dial", none, Refuse { addr_dial: true, ..none }, false),
        ("p2 refuses accept", none, Refuse { accept: true, ..none }, true),
        ("p1 refuses secured", Refuse { secured: true, ..none }, none, true),
        ("p1 refuses upgraded", Refuse { upgraded: true, ..none }, none, true),
        ("p2 refuses peer dial", none, Refuse { peer_dial: true, ..none }, false),
    ];
    for (name, g1, g2, fails) in cases {
        let p1 = Swarm::builder(Keypair::generate_ed25519()).config(test_config()).gater(g1).build();
        p1.listen(&[loopback()]).await.unwrap();
        let p2 = Swarm::builder(Keypair::generate_ed25519()).config(test_config()).gater(g2).build();
        p2.listen(&[loopback()]).await.unwrap();
        divulge(&p2, &p1);
        let result = p1.dial_peer(&p2.local_peer()).await;
        assert_eq!(result.is_err(), fails, "{name}: {result:?}");
        let expected = if fails { Connectedness::NotConnected } else { Connectedness::Connected };
        assert_eq!(p1.connectedness(&p2.local_peer()), expected, "{name}");
        let peer = p1.local_peer();
        assert!(
            eventually(Duration::from_secs(2), || p2.connectedness(&peer) == expected).await,
            "{name}: p2 side"
        );
        if name == "p1 refuses peer dial" {
            assert!(matches!(result.unwrap_err().cause, DialCause::GaterDisallowed));
        }
    }
}

/// Refuses upgraded connections from one peer only.
struct RefuseUpgradedFrom(PeerId);

impl ConnectionGater for RefuseUpgradedFrom {
    fn intercept_upgraded(&self, conn: &Conn) -> bool {
        conn.remote_peer() != self.0
    }
}

#[tokio::test]
async fn gated_inbound_connection_does_not_stop_the_listener() {
    let refused = gen_dial_only();
    let server = Swarm::builder(Keypair::generate_ed25519())
        .config(test_config())
        .gater(RefuseUpgradedFrom(refused.local_peer()))
        .build();
    server.listen(&[loopback()]).await.unwrap();
    echo_handler(&server);
    divulge(&server, &refused);
    // The refused peer's handshake succeeds, then the server drops it.
    let _ = refused.dial_peer(&server.local_peer()).await;
    let peer = refused.local_peer();
    assert!(
        eventually(Duration::from_secs(2), || server.connectedness(&peer) == Connectedness::NotConnected)
            .await
    );
    // Others are still served.
    let good = gen_dial_only();
    divulge(&server, &good);
    assert_eq!(echo(&good, &server.local_peer(), b"still listening").await, b"still listening");
}

#[tokio::test]
async fn silent_peer_times_out_and_swarm_keeps_working() {
    let timeout = Duration::from_millis(400);
    let a = gen_swarm_with(test_config().with_dial_timeout(timeout).with_dial_timeout_local(timeout)).await;
    let b = gen_swarm().await;
    echo_handler(&b);
    let (_task, addr) = silent_listener().await;
    let silent = PeerId::random();
    a.peerstore().add_addrs_now(silent, vec![addr], PERMANENT_ADDR_TTL).unwrap();
    let started = Instant::now();
    let err = a.dial_peer(&silent).await.unwrap_err();
    assert!(started.elapsed() < timeout * 3 + Duration::from_secs(2), "{err}");
    divulge(&b, &a);
    assert_eq!(echo(&a, &b.local_peer(), b"still alive").await, b"still alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_disconnect_cycles_release_fds_and_tasks() {
    let (a, b) = (gen_swarm().await, gen_swarm().await);
    echo_handler(&b);
    divulge(&b, &a);
    // Warm up: lazily created runtime resources are not leaks.
    a.dial_peer(&b.local_peer()).await.unwrap();
    a.close_peer(&b.local_peer()).await;
    let settled = |a: &Swarm, b: &Swarm| a.conns().is_empty() && b.conns().is_empty();
    assert!(eventually(Duration::from_secs(5), || settled(&a, &b)).await);
    let metrics = tokio::runtime::Handle::current().metrics();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (fds, tasks) = (open_fds(), metrics.num_alive_tasks());
    for _ in 0..1000 {
        a.dial_peer(&b.local_peer()).await.unwrap();
        a.close_peer(&b.local_peer()).await;
    }
    assert!(eventually(Duration::from_secs(10), || settled(&a, &b)).await);
    let ok =
        eventually(Duration::from_secs(10), || open_fds() <= fds && metrics.num_alive_tasks() <= tasks).await;
    assert!(ok, "fds {fds} -> {}, tasks {tasks} -> {}", open_fds(), metrics.num_alive_tasks());
}
