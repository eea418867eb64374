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
