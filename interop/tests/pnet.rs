//! Private networks against rust-libp2p's `libp2p-pnet` 0.27: the same key
//! file means the same key (and fingerprint) to both; with it, peerswarm and
//! rust-libp2p (pnet, then Noise and yamux) connect and ping each other in
//! both dial directions, and echo a few MiB; with different keys, neither
//! gets in.

use std::time::{Duration, Instant};

use peerswarm::identity::Keypair;
use peerswarm::upgrade::UpgradeError;
use peerswarm::{Connection, Endpoint, EndpointConfig, Multiaddr, PreSharedKey, TransportError};
use peerswarm_interop::exercise::{self, assert_same_bytes};
use peerswarm_interop::{within, NodeEvent, RustNode, RustNodeConfig, ECHO_PROTOCOL, PING_PROTOCOL};
use tokio::task::JoinSet;

/// Bound on one step (a dial, a transfer, ...).
const STEP: Duration = Duration::from_secs(30);
/// Bound on a whole test.
const TEST: Duration = Duration::from_secs(55);

/// A key file as go-libp2p and rust-libp2p write it (the key of
/// rust-libp2p's fingerprint test, whose fingerprint was checked against
/// go-ipfs).
const KEY_FILE: &str =
    "/key/swarm/psk/1.0.0/\n/base16/\n6189c5cf0b87fb800c1a9feeda73c6ab5e998db48fb9e6a978575c770ceef683\n";

fn keys() -> (PreSharedKey, libp2p_pnet::PreSharedKey) {
    (KEY_FILE.parse().expect("peerswarm parses"), KEY_FILE.parse().expect("rust-libp2p parses"))
}

#[derive(Debug, Clone, Copy)]
enum Dialer {
    Peerswarm,
    RustLibp2p,
}

#[test]
fn both_read_and_write_the_same_key_files() {
    let (ours, theirs) = keys();
    assert_eq!(ours.fingerprint().to_string(), theirs.fingerprint().to_string());
    assert_eq!(ours.fingerprint().to_string(), "45fc986bbc9388a11d939df26f730f0c");
    assert_eq!(ours.to_key_file(), theirs.to_string(), "the same canonical file");
    for _ in 0..16 {
        let fresh = PreSharedKey::generate();
        let theirs: libp2p_pnet::PreSharedKey = fresh.to_key_file().parse().expect("rust-libp2p reads ours");
        assert_eq!(theirs, libp2p_pnet::PreSharedKey::new(*fresh.as_bytes()));
        let back: PreSharedKey = theirs.to_string().parse().expect("we read rust-libp2p's");
        assert_eq!(back, fresh);
    }
}

/// A peerswarm connection to `rust`, dialed by `dialer`.
async fn connect(
    rust: &RustNode,
    endpoint: &Endpoint,
    dialer: Dialer,
) -> (Connection, Option<peerswarm::Listener>) {
    match dialer {
        Dialer::Peerswarm => {
            let conn = within(
                STEP,
                "peerswarm dials rust-libp2p",
                endpoint.dial(rust.listen_addr(), Some(rust.peer_id())),
            )
            .await
            .expect("peerswarm connects to rust-libp2p in the private network");
            (conn, None)
        }
        Dialer::RustLibp2p => {
            let any_port: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr");
            let mut listener = endpoint.listen(&any_port).await.expect("peerswarm listens");
            let addr = listener.local_addr().clone();
            let (dialed, accepted) = within(STEP, "rust-libp2p dials peerswarm", async {
                tokio::join!(rust.dial(addr, Some(endpoint.local_peer_id())), listener.accept())
            })
            .await;
            assert_eq!(dialed.expect("rust-libp2p connects to peerswarm"), endpoint.local_peer_id());
            (accepted.expect("listener is open"), Some(listener))
        }
    }
}

async fn ping_and_echo(dialer: Dialer) {
    let (ours, theirs) = keys();
    let config = RustNodeConfig::default()
        .with_ping(Duration::from_millis(50))
        .with_echo()
        .with_private_network(theirs);
    let rust = RustNode::spawn(config).await.expect("rust-libp2p node starts");
    let mut rust_events = rust.events();
    let endpoint = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()).with_private_network(ours));
    let (conn, _listener) = connect(&rust, &endpoint, dialer).await;
    assert_eq!(conn.remote_peer_id(), rust.peer_id());

    // peerswarm answers rust-libp2p's pings.
    let responder_conn = conn.clone();
    let responder = tokio::spawn(async move {
        let mut streams = JoinSet::new();
        while let Ok(stream) = responder_conn.accept_stream(&[PING_PROTOCOL]).await {
            streams.spawn(exercise::ping_responder(stream));
        }
    });

    // peerswarm pings rust-libp2p.
    let stream = within(STEP, "peerswarm opens ping", conn.open_stream(&[PING_PROTOCOL]))
        .await
        .expect("peerswarm opens a ping stream");
    within(STEP, "peerswarm pings", exercise::ping_rounds(stream, 5))
        .await
        .expect("rust-libp2p echoes every ping");

    // rust-libp2p pings peerswarm.
    let peerswarm_id = endpoint.local_peer_id();
    within(STEP, "rust-libp2p pings", async {
        let mut successes = 0;
        while successes < 3 {
            match rust_events.recv().await.expect("rust node runs") {
                NodeEvent::Ping { peer, result } if peer == peerswarm_id => {
                    result.expect("rust-libp2p's ping of peerswarm succeeds");
                    successes += 1;
                }
                NodeEvent::ConnectionClosed { cause, .. } => panic!("connection closed: {cause:?}"),
                _ => {}
            }
        }
    })
    .await;

    // Bulk data through both stacks' pnet layers.
    let payload = exercise::payload(7, 4 << 20);
    let stream = within(STEP, "peerswarm opens echo", conn.open_stream(&[ECHO_PROTOCOL]))
        .await
        .expect("peerswarm opens an echo stream");
    let echoed = within(STEP, "4 MiB echo", exercise::send_and_read_to_end(stream, &payload))
        .await
        .expect("rust-libp2p echoes");
    assert_same_bytes("echo through pnet", &payload, &echoed);
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_peerswarm_dials() {
    within(TEST, "test", ping_and_echo(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_rust_libp2p_dials() {
    within(TEST, "test", ping_and_echo(Dialer::RustLibp2p)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_do_not_connect_either_way() {
    within(TEST, "test", async {
        let (ours, _) = keys();
        let other = libp2p_pnet::PreSharedKey::new([7; 32]);
        let rust = RustNode::spawn(RustNodeConfig::default().with_private_network(other)).await.unwrap();
        // rust-libp2p's multistream listener says nothing until it has read
        // a whole first message, and the garbage it reads may announce a
        // long one: then only a timeout (ours, or its own 10 s) ends the
        // dial. A short handshake timeout keeps the test quick.
        let timeout = Duration::from_secs(3);
        let endpoint = Endpoint::new(
            EndpointConfig::new(Keypair::generate_ed25519())
                .with_private_network(ours)
                .with_handshake_timeout(timeout),
        );

        // peerswarm dials: a typed error naming the likely cause.
        for _ in 0..3 {
            let start = Instant::now();
            let err = endpoint
                .dial(rust.listen_addr(), Some(rust.peer_id()))
                .await
                .expect_err("a different key must not connect");
            let elapsed = start.elapsed();
            assert!(elapsed < timeout + Duration::from_secs(1), "took {elapsed:?}: {err}");
            assert!(
                matches!(err, TransportError::Upgrade { source: UpgradeError::PrivateNetwork { .. }, .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("pre-shared key"), "{err}");
        }

        // rust-libp2p dials: refused too.
        let mut listener = endpoint.listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().clone();
        let dialed =
            within(STEP, "rust-libp2p dial fails", rust.dial(addr, Some(endpoint.local_peer_id()))).await;
        assert!(dialed.is_err(), "rust-libp2p must not connect with another key");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "peerswarm accepted nothing");
    })
    .await;
}
