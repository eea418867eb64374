//! Connection limits: refused connections get a typed error, the rest of
//! the node carries on.

mod common;

use common::{divulge, echo, echo_handler, eventually, gen_dial_only, gen_swarm, loopback, test_config};
use peerswarm::identity::Keypair;
use peerswarm::swarm::{ConnectionLimits, DialCause, LimitExceeded, Swarm};
use peerswarm::{Endpoint, EndpointConfig};
use std::time::Duration;

async fn limited(limits: ConnectionLimits) -> Swarm {
    let swarm = Swarm::builder(Keypair::generate_ed25519())
        .config(test_config().with_connection_limits(limits))
        .build();
    swarm.listen(&[loopback()]).await.unwrap();
    echo_handler(&swarm);
    swarm
}

#[tokio::test]
async fn outbound_cap_refuses_the_next_dial() {
    let a = limited(ConnectionLimits::default().with_max_outbound(1)).await;
    let (b, c) = (gen_swarm().await, gen_swarm().await);
    divulge(&b, &a);
    divulge(&c, &a);
    a.dial_peer(&b.local_peer()).await.unwrap();
    let err = a.dial_peer(&c.local_peer()).await.unwrap_err();
    assert_eq!(err.cause, DialCause::LimitExceeded(LimitExceeded::Outbound { max: 1 }), "{err}");
    // The existing connection is unaffected.
    echo_handler(&b);
    assert_eq!(echo(&a, &b.local_peer(), b"ok").await, b"ok");
}

#[tokio::test]
async fn inbound_per_ip_cap_refuses_at_accept_and_keeps_serving() {
    let server = limited(ConnectionLimits::default().with_max_inbound_per_ip(2)).await;
    let clients: Vec<Swarm> = (0..3).map(|_| gen_dial_only()).collect();
    for c in &clients[..2] {
        divulge(&server, c);
        c.dial_peer(&server.local_peer()).await.unwrap();
    }
    let server_sees = |n: usize| server.conns().len() == n;
    assert!(eventually(Duration::from_secs(2), || server_sees(2)).await);
    divulge(&server, &clients[2]);
    assert!(
        clients[2].dial_peer(&server.local_peer()).await.is_err(),
        "third connection from one IP refused"
    );
    assert!(server_sees(2));
    assert_eq!(echo(&clients[0], &server.local_peer(), b"still").await, b"still");
}

#[tokio::test]
async fn per_peer_cap_refuses_extra_connections_from_one_peer() {
    let server = limited(ConnectionLimits::default().with_max_per_peer(1)).await;
    let key = Keypair::generate_ed25519();
    let addr = server.listen_addresses()[0].clone();
    // Two raw endpoints with the same identity: the second is one too many.
    let first =
        Endpoint::new(EndpointConfig::new(key.clone())).dial(&addr, Some(server.local_peer())).await.unwrap();
    let peer = first.remote_peer_id();
    assert_eq!(peer, server.local_peer());
    let me = key.public().to_peer_id();
    assert!(eventually(Duration::from_secs(2), || server.conns_to_peer(&me).len() == 1).await);
    let second =
        Endpoint::new(EndpointConfig::new(key)).dial(&addr, Some(server.local_peer())).await.unwrap();
    // The server closes the second one after the handshake.
    tokio::time::timeout(Duration::from_secs(5), second.closed()).await.expect("second connection closed");
    assert_eq!(server.conns_to_peer(&me).len(), 1);
    assert!(!first.is_closed());
}

#[tokio::test]
async fn total_cap_counts_both_directions() {
    let a = limited(ConnectionLimits::default().with_max_connections(1)).await;
    let (b, c) = (gen_swarm().await, gen_dial_only());
    divulge(&a, &c);
    c.dial_peer(&a.local_peer()).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || a.conns().len() == 1).await);
    divulge(&b, &a);
    let err = a.dial_peer(&b.local_peer()).await.unwrap_err();
    assert_eq!(err.cause, DialCause::LimitExceeded(LimitExceeded::Connections { max: 1 }), "{err}");
}

/// The node-wide cap on received-but-unread bytes, over real connections:
/// two peers fill it with streams nobody reads; the stream whose data does
/// not fit is reset with `BufferLimit`, new streams are refused while it is
/// full, and everything comes back once the application reads.
#[tokio::test]
async fn node_buffer_budget_resets_the_stream_that_overflows_and_recovers() {
    use peerswarm::yamux::{BufferBudget, Config};
    use peerswarm_proto::yamux::StreamError as YamuxError;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const KIB: usize = 1024;
    let budget = BufferBudget::new(1000 * KIB as u64);
    let mut yamux = Config::default();
    yamux.set_buffer_budget(Some(budget.clone()));
    let server = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()).with_yamux_config(yamux));
    let mut listener = server.listen(&loopback()).await.unwrap();
    let addr = listener.local_addr().clone();
    let client = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
    let one = client.dial(&addr, Some(server.local_peer_id())).await.unwrap();
    let one_in = listener.accept().await.unwrap();
    let two = client.dial(&addr, Some(server.local_peer_id())).await.unwrap();
    let two_in = listener.accept().await.unwrap();
    // Three full windows (768 KiB) from two connections, nobody reading.
    let mut held = Vec::new();
    for (conn, inbound) in [(&one, &one_in), (&two, &two_in), (&two, &two_in)] {
        let mut s = conn.open_raw_stream().await.unwrap();
        s.write_all(&vec![7u8; 256 * KIB]).await.unwrap();
        held.push((s, inbound.accept_raw_stream().await.unwrap()));
    }
    assert!(eventually(Duration::from_secs(5), || budget.used() == 768 * KIB as u64).await);
    // A fourth window's worth does not fit in 1000 KiB: that stream is reset
    // (its data dropped), the others are untouched.
    let mut over = one.open_raw_stream().await.unwrap();
    over.write_all(&vec![9u8; 256 * KIB]).await.unwrap();
    let mut over_in = one_in.accept_raw_stream().await.unwrap();
    let mut buf = vec![0u8; 256 * KIB];
    let err = loop {
        match over_in.read(&mut buf).await {
            Ok(0) => panic!("clean EOF on a stream that overflowed"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<YamuxError>());
    assert_eq!(cause, Some(&YamuxError::BufferLimit), "{err}");
    assert!(eventually(Duration::from_secs(5), || budget.used() == 768 * KIB as u64).await);
    // Fill the rest exactly: a new stream is then refused at once.
    let mut rest = two.open_raw_stream().await.unwrap();
    rest.write_all(&vec![1u8; 232 * KIB]).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || budget.used() == 1000 * KIB as u64).await);
    let mut refused = one.open_raw_stream().await.unwrap();
    refused.write_all(b"x").await.unwrap();
    let e = refused.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    // Reading gives the budget back; the connections were never harmed.
    for (_, inbound) in &mut held {
        inbound.read_exact(&mut buf).await.unwrap();
        assert!(buf.iter().all(|&b| b == 7));
    }
    let mut rest_in = two_in.accept_raw_stream().await.unwrap();
    let mut got = vec![0u8; 232 * KIB];
    rest_in.read_exact(&mut got).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || budget.used() == 0).await, "used {}", budget.used());
    let mut fresh = one.open_raw_stream().await.unwrap();
    fresh.write_all(b"fine").await.unwrap();
    let mut fresh_in = one_in.accept_raw_stream().await.unwrap();
    let mut four = [0u8; 4];
    fresh_in.read_exact(&mut four).await.unwrap();
    assert_eq!(&four, b"fine");
    assert!(!one.is_closed() && !two.is_closed());
}
