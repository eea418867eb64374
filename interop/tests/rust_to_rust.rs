//! The harness against itself: two rust-libp2p nodes. If these fail, the
//! harness is broken, not peerswarm.

use std::time::Duration;

use futures::StreamExt;
use peerswarm_interop::exercise::{self, assert_same_bytes};
use peerswarm_interop::{within, NodeEvent, RustNode, RustNodeConfig, ECHO_PROTOCOL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::FuturesAsyncReadCompatExt;

const LIMIT: Duration = Duration::from_secs(30);

async fn connected_pair(a: RustNodeConfig, b: RustNodeConfig) -> (RustNode, RustNode) {
    let a = RustNode::spawn(a).await.expect("spawn a");
    let b = RustNode::spawn(b).await.expect("spawn b");
    let peer = within(LIMIT, "a dials b", a.dial(b.listen_addr().clone(), Some(b.peer_id())))
        .await
        .expect("a connects to b");
    assert_eq!(peer, b.peer_id());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping() {
    let a = RustNode::spawn(RustNodeConfig::default().with_ping(Duration::from_millis(50))).await.unwrap();
    let b = RustNode::spawn(RustNodeConfig::default().with_ping(Duration::from_millis(50))).await.unwrap();
    let mut events = a.events();
    within(LIMIT, "a dials b", a.dial(b.listen_addr().clone(), Some(b.peer_id()))).await.unwrap();

    let mut successes = 0;
    within(LIMIT, "three pings", async {
        while successes < 3 {
            if let NodeEvent::Ping { peer, result } = events.recv().await.expect("node runs") {
                assert_eq!(peer, b.peer_id());
                result.expect("ping succeeds");
                successes += 1;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_one_mebibyte() {
    let (a, b) = connected_pair(RustNodeConfig::default(), RustNodeConfig::default().with_echo()).await;
    let stream = within(LIMIT, "open echo", a.open_stream(b.peer_id(), ECHO_PROTOCOL)).await.unwrap();
    let payload = exercise::payload(1, 1 << 20);
    let echoed = within(LIMIT, "echo 1 MiB", exercise::send_and_read_to_end(stream, &payload)).await.unwrap();
    assert_same_bytes("1 MiB echo", &payload, &echoed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_echo_streams() {
    let (a, b) = connected_pair(RustNodeConfig::default(), RustNodeConfig::default().with_echo()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u64 {
        let mut control = a.control();
        let peer = b.peer_id();
        tasks.spawn(async move {
            let stream = control
                .open_stream(peer, libp2p::StreamProtocol::new(ECHO_PROTOCOL))
                .await
                .expect("open echo stream");
            let payload = exercise::payload(i, 1000 + i as usize * 97);
            let echoed = exercise::send_and_read_to_end(stream.compat(), &payload).await.expect("echo");
            assert_same_bytes("stream echo", &payload, &echoed);
        });
    }
    within(LIMIT, "100 streams", async {
        while let Some(done) = tasks.join_next().await {
            done.expect("stream task");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_and_reset() {
    const PROTOCOL: &str = "/interop/half-close/1.0.0";
    let (a, b) = connected_pair(RustNodeConfig::default(), RustNodeConfig::default()).await;
    let mut incoming = b.accept(PROTOCOL);

    // Half-close: a closes its write half; b reads EOF, then answers.
    let mut out = within(LIMIT, "open", a.open_stream(b.peer_id(), PROTOCOL)).await.unwrap();
    out.write_all(b"request").await.unwrap();
    out.shutdown().await.unwrap();
    let (_, inbound) = within(LIMIT, "accept", incoming.next()).await.expect("incoming open");
    let mut inbound = inbound.compat();
    let mut request = Vec::new();
    within(LIMIT, "read to eof", inbound.read_to_end(&mut request)).await.unwrap();
    assert_eq!(request, b"request");
    inbound.write_all(b"response").await.unwrap();
    inbound.shutdown().await.unwrap();
    let mut response = Vec::new();
    within(LIMIT, "read response", out.read_to_end(&mut response)).await.unwrap();
    assert_eq!(response, b"response");

    // Reset (rust-libp2p resets by dropping an open stream): yamux 0.14
    // reports EOF on read and an error on write.
    let out = within(LIMIT, "open", a.open_stream(b.peer_id(), PROTOCOL)).await.unwrap();
    let (_, inbound) = within(LIMIT, "accept", incoming.next()).await.expect("incoming open");
    let mut inbound = inbound.compat();
    drop(out);
    let error = within(LIMIT, "write after reset", async {
        loop {
            if let Err(error) = inbound.write_all(&[0; 1024]).await {
                break error;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(error.kind(), std::io::ErrorKind::WriteZero, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_echo() {
    let (a, b) = connected_pair(
        RustNodeConfig::default().with_insecure_plaintext(),
        RustNodeConfig::default().with_echo().with_insecure_plaintext(),
    )
    .await;
    let stream = within(LIMIT, "open echo", a.open_stream(b.peer_id(), ECHO_PROTOCOL)).await.unwrap();
    let payload = exercise::payload(2, 64 << 10);
    let echoed =
        within(LIMIT, "echo 64 KiB", exercise::send_and_read_to_end(stream, &payload)).await.unwrap();
    assert_same_bytes("plaintext echo", &payload, &echoed);
}
