//! Private networks (libp2p pnet, a pre-shared key under the security
//! protocol) between peerswarm nodes: the same key connects, a different key
//! or a key on one side only fails fast with a typed error, and the listener
//! carries on. Interop with rust-libp2p's `libp2p-pnet` is in
//! `interop/tests/pnet.rs`.

mod common;

use common::*;
use peerswarm::identity::Keypair;
use peerswarm::upgrade::UpgradeError;
use peerswarm::{Endpoint, EndpointConfig, Multiaddr, PreSharedKey, TransportError};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Well under the 5 s handshake timeout of `test_config`: a mismatch must
/// be noticed from the garbage, not by waiting.
const FAST: Duration = Duration::from_secs(2);

fn key(byte: u8) -> PreSharedKey {
    PreSharedKey::new([byte; 32])
}

/// A swarm in the private network of `psk` (or the public one), listening,
/// serving echo.
async fn node(psk: Option<&PreSharedKey>) -> peerswarm::swarm::Swarm {
    let mut config = test_config();
    if let Some(psk) = psk {
        config = config.with_private_network(psk.clone());
    }
    let swarm = gen_swarm_with(config).await;
    echo_handler(&swarm);
    swarm
}

/// Dials `addr` from a fresh endpoint with `psk`, expecting `server`.
async fn dial(
    psk: Option<&PreSharedKey>,
    addr: &Multiaddr,
    server: &peerswarm::swarm::Swarm,
) -> (Result<peerswarm::Connection, TransportError>, Duration) {
    let mut config = EndpointConfig::new(Keypair::generate_ed25519());
    if let Some(psk) = psk {
        config = config.with_private_network(psk.clone());
    }
    let start = Instant::now();
    let result = Endpoint::new(config).dial(addr, Some(server.local_peer())).await;
    (result, start.elapsed())
}

/// The listener still serves a peer with the right key.
async fn still_serves(server: &peerswarm::swarm::Swarm, psk: Option<&PreSharedKey>) {
    let client = node(psk).await;
    divulge(server, &client);
    client.dial_peer(&server.local_peer()).await.expect("a peer with the right key gets in");
    assert_eq!(echo(&client, &server.local_peer(), b"still here").await, b"still here");
    client.close().await;
}

#[tokio::test]
async fn same_key_connects_and_echoes() {
    let psk = PreSharedKey::generate();
    let (a, b) = (node(Some(&psk)).await, node(Some(&psk)).await);
    divulge(&b, &a);
    let conn = a.dial_peer(&b.local_peer()).await.unwrap();
    assert_eq!(conn.remote_peer(), b.local_peer());
    assert_eq!(echo(&a, &b.local_peer(), b"hello private network").await, b"hello private network");
    // Bulk data in both directions, through the bounded write buffer.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    assert!(echo(&a, &b.local_peer(), &big).await == big, "3 MiB echo");
    // And the other way, on a connection b dials.
    divulge(&a, &b);
    b.close_peer(&a.local_peer()).await;
    b.dial_peer(&a.local_peer()).await.unwrap();
    assert_eq!(echo(&b, &a.local_peer(), b"back").await, b"back");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn mismatched_key_fails_fast_with_a_typed_error() {
    let server = node(Some(&key(1))).await;
    let addr = server.listen_addresses()[0].clone();
    // A few rounds: the garbage differs with every nonce.
    for _ in 0..8 {
        let (result, elapsed) = dial(Some(&key(2)), &addr, &server).await;
        let err = result.expect_err("a different key must not connect");
        assert!(elapsed < FAST, "took {elapsed:?}: {err}");
        let TransportError::Upgrade { source: UpgradeError::PrivateNetwork { source }, .. } = &err else {
            panic!("expected a private-network upgrade error, got {err:?}");
        };
        assert!(!matches!(**source, UpgradeError::Timeout), "{err}");
        let text = err.to_string();
        assert!(text.contains("pre-shared key"), "the message names the likely cause: {text}");
    }
    still_serves(&server, Some(&key(1))).await;
    // Through the swarm: the per-address error carries the same variant.
    let client = node(Some(&key(3))).await;
    divulge(&server, &client);
    let err = client.dial_peer(&server.local_peer()).await.expect_err("different key");
    assert!(
        err.any_addr_error(|e| matches!(
            e,
            peerswarm::swarm::dial::AddrError::Transport(t)
                if matches!(**t, TransportError::Upgrade { source: UpgradeError::PrivateNetwork { .. }, .. })
        )),
        "{err}"
    );
    client.close().await;
    server.close().await;
}

#[tokio::test]
async fn key_on_one_side_only_fails_cleanly() {
    // Private listener, public dialer: the dialer reads the listener's nonce
    // as multistream and gives up; it has no key, so no hint.
    let private = node(Some(&key(1))).await;
    let addr = private.listen_addresses()[0].clone();
    for _ in 0..4 {
        let (result, elapsed) = dial(None, &addr, &private).await;
        let err = result.expect_err("a public peer must not get in");
        assert!(elapsed < FAST, "took {elapsed:?}: {err}");
        assert!(matches!(err, TransportError::Upgrade { .. }), "{err:?}");
    }
    still_serves(&private, Some(&key(1))).await;

    // Public listener, private dialer: the dialer's error says why.
    let public = node(None).await;
    let addr = public.listen_addresses()[0].clone();
    for _ in 0..4 {
        let (result, elapsed) = dial(Some(&key(1)), &addr, &public).await;
        let err = result.expect_err("a private peer must not get in");
        assert!(elapsed < FAST, "took {elapsed:?}: {err}");
        assert!(
            matches!(err, TransportError::Upgrade { source: UpgradeError::PrivateNetwork { .. }, .. }),
            "{err:?}"
        );
    }
    still_serves(&public, None).await;
    private.close().await;
    public.close().await;
}

#[tokio::test]
async fn truncated_nonce_does_not_hurt_the_listener() {
    let server = node(Some(&key(1))).await;
    let addr = server.listen_addresses()[0].clone();
    let port = match addr.iter().nth(1) {
        Some(peerswarm::multiaddr::Protocol::Tcp(port)) => port,
        _ => unreachable!("a TCP listen address"),
    };
    for sent in [0usize, 1, 23] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(&vec![0xAA; sent]).await.unwrap();
        drop(tcp);
    }
    still_serves(&server, Some(&key(1))).await;
    server.close().await;
}

#[test]
fn debug_output_hides_the_key() {
    let psk = key(0xAB);
    let config = peerswarm::swarm::SwarmConfig::default().with_private_network(psk.clone());
    let endpoint = EndpointConfig::new(Keypair::generate_ed25519()).with_private_network(psk.clone());
    for text in [format!("{config:?}"), format!("{endpoint:?}")] {
        assert!(!text.to_lowercase().contains("abababab"), "{text}");
        assert!(text.contains(&psk.fingerprint().to_string()), "{text}");
    }
}
