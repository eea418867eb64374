//! Shared helpers for the swarm integration tests (go-libp2p's
//! `swarm/testing` package, in Rust).
#![allow(dead_code, unreachable_pub)]

use peerswarm::identity::{Keypair, PeerId};
use peerswarm::swarm::{Swarm, SwarmConfig};
use peerswarm::Multiaddr;
use std::time::Duration;

/// Loopback TCP, any port.
pub fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

/// Short timeouts so failure paths finish quickly in tests.
pub fn test_config() -> SwarmConfig {
    SwarmConfig::default()
        .with_dial_timeout(Duration::from_secs(5))
        .with_dial_timeout_local(Duration::from_secs(2))
        .with_handshake_timeout(Duration::from_secs(5))
}

/// A swarm listening on loopback (go's `GenSwarm`).
pub async fn gen_swarm() -> Swarm {
    gen_swarm_with(test_config()).await
}

pub async fn gen_swarm_with(config: SwarmConfig) -> Swarm {
    let swarm = Swarm::builder(Keypair::generate_ed25519()).config(config).build();
    swarm.listen(&[loopback()]).await.expect("listen on loopback");
    swarm
}

/// A swarm that does not listen (go's `OptDialOnly`).
pub fn gen_dial_only() -> Swarm {
    Swarm::builder(Keypair::generate_ed25519()).config(test_config()).build()
}

/// Teaches `to` the listen addresses of `from` (go's `DivulgeAddresses`).
pub fn divulge(from: &Swarm, to: &Swarm) {
    to.peerstore()
        .add_addrs_now(from.local_peer(), from.listen_addresses(), peerswarm::peerstore::PERMANENT_ADDR_TTL)
        .unwrap();
}

/// Connects every pair (i < j) by dialing from i to j.
pub async fn connect_all(swarms: &[Swarm]) {
    for (i, a) in swarms.iter().enumerate() {
        for b in &swarms[i + 1..] {
            divulge(b, a);
            a.dial_peer(&b.local_peer()).await.expect("dial");
        }
    }
}

/// Installs an echo stream handler: reads to EOF, writes it all back, closes.
pub fn echo_handler(swarm: &Swarm) {
    swarm.set_stream_handler(|mut stream| async move {
        let mut buf = Vec::new();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if stream.read_to_end(&mut buf).await.is_ok() {
            let _ = stream.write_all(&buf).await;
            let _ = stream.close().await;
        }
    });
}

/// Sends `msg` to `peer` over a new stream and returns what came back.
pub async fn echo(swarm: &Swarm, peer: &PeerId, msg: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = swarm.new_stream(peer).await.expect("new stream");
    stream.write_all(msg).await.expect("write");
    stream.close_write().await.expect("close write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    out
}

/// Polls `f` until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// This process's open file descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
