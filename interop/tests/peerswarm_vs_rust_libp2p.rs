//! peerswarm against rust-libp2p 0.57 (TCP, Noise, yamux, multistream-select).
//!
//! Every exercise runs on a connection dialed by peerswarm and on one
//! dialed by rust-libp2p, and within each, where it makes sense, with
//! peerswarm and then rust-libp2p opening the stream.
//!
//! rust-libp2p's yamux (0.14) reports a reset stream as EOF on read and
//! `WriteZero` on write; peerswarm reports `ConnectionReset` on both.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use peerswarm::identity::Keypair;
use peerswarm::{Connection, Endpoint, EndpointConfig, Listener, Multiaddr};
use peerswarm_interop::exercise::{self, assert_same_bytes};
use peerswarm_interop::{
    within, NodeEvent, RustNode, RustNodeConfig, RustStream, ECHO_PROTOCOL, PING_PROTOCOL,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Bound on one step (a dial, a transfer, ...).
const STEP: Duration = Duration::from_secs(30);
/// Bound on a whole test.
const TEST: Duration = Duration::from_secs(55);

const HALF_CLOSE_PROTOCOL: &str = "/interop/half-close/1.0.0";
const RESET_PROTOCOL: &str = "/interop/reset/1.0.0";

/// Who dials the connection under test.
#[derive(Debug, Clone, Copy)]
enum Dialer {
    Peerswarm,
    RustLibp2p,
}

/// A peerswarm endpoint connected to a rust-libp2p node.
struct Link {
    rust: RustNode,
    conn: Connection,
    endpoint: Endpoint,
    _listener: Option<Listener>,
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn link(rust: RustNode, dialer: Dialer) -> Link {
    link_with(rust, dialer, EndpointConfig::new(Keypair::generate_ed25519())).await
}

async fn link_with(rust: RustNode, dialer: Dialer, config: EndpointConfig) -> Link {
    init_tracing();
    let endpoint = Endpoint::new(config);
    match dialer {
        Dialer::Peerswarm => {
            let conn = within(STEP, "peerswarm dials rust-libp2p", async {
                endpoint.dial(rust.listen_addr(), Some(rust.peer_id())).await
            })
            .await
            .expect("peerswarm connects to rust-libp2p");
            assert_eq!(conn.remote_peer_id(), rust.peer_id());
            assert_eq!(conn.remote_addr(), rust.listen_addr());
            Link { rust, conn, endpoint, _listener: None }
        }
        Dialer::RustLibp2p => {
            let any_port: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr");
            let mut listener = endpoint.listen(&any_port).await.expect("peerswarm listens");
            let addr = listener.local_addr().clone();
            let (dialed, accepted) = within(STEP, "rust-libp2p dials peerswarm", async {
                tokio::join!(rust.dial(addr.clone(), Some(endpoint.local_peer_id())), listener.accept())
            })
            .await;
            let peer = dialed.expect("rust-libp2p connects to peerswarm");
            assert_eq!(peer, endpoint.local_peer_id());
            let conn = accepted.expect("listener is open");
            assert_eq!(conn.remote_peer_id(), rust.peer_id());
            assert_eq!(conn.local_addr(), &addr);
            Link { rust, conn, endpoint, _listener: Some(listener) }
        }
    }
}

/// Opens a stream from rust-libp2p while peerswarm accepts it.
async fn rust_opens(link: &Link, protocol: &'static str) -> (RustStream, peerswarm::Stream) {
    let supported = [protocol];
    let (opened, accepted) = within(STEP, "rust-libp2p opens, peerswarm accepts", async {
        tokio::join!(
            link.rust.open_stream(link.endpoint.local_peer_id(), protocol),
            link.conn.accept_stream(&supported)
        )
    })
    .await;
    let accepted = accepted.expect("peerswarm accepts the stream");
    assert_eq!(accepted.protocol(), Some(protocol));
    (opened.expect("rust-libp2p opens the stream"), accepted)
}

// ---------------------------------------------------------------------------
// 1. /ipfs/ping/1.0.0, both ways on one connection.

async fn ping(dialer: Dialer) {
    let rust = RustNode::spawn(RustNodeConfig::default().with_ping(Duration::from_millis(50))).await.unwrap();
    let mut rust_events = rust.events();
    let link = link(rust, dialer).await;

    // peerswarm answers rust-libp2p's pings.
    let responder_conn = link.conn.clone();
    let responder = tokio::spawn(async move {
        let mut streams = JoinSet::new();
        while let Ok(stream) = responder_conn.accept_stream(&[PING_PROTOCOL]).await {
            assert_eq!(stream.protocol(), Some(PING_PROTOCOL));
            streams.spawn(exercise::ping_responder(stream));
        }
    });

    // peerswarm pings rust-libp2p: 32 random bytes, echoed, several times.
    let stream = within(STEP, "peerswarm opens ping", link.conn.open_stream(&[PING_PROTOCOL]))
        .await
        .expect("peerswarm opens a ping stream");
    assert_eq!(stream.protocol(), Some(PING_PROTOCOL));
    within(STEP, "peerswarm pings", exercise::ping_rounds(stream, 5))
        .await
        .expect("rust-libp2p echoes every ping");

    // rust-libp2p reports successful pings of peerswarm.
    let peerswarm_id = link.endpoint.local_peer_id();
    within(STEP, "rust-libp2p pings", async {
        let mut successes = 0;
        while successes < 3 {
            match rust_events.recv().await.expect("rust node runs") {
                NodeEvent::Ping { peer, result } => {
                    assert_eq!(peer, peerswarm_id);
                    let rtt = result.expect("rust-libp2p's ping of peerswarm succeeds");
                    tracing::debug!(?rtt, "rust-libp2p pinged peerswarm");
                    successes += 1;
                }
                NodeEvent::ConnectionClosed { cause, .. } => panic!("connection closed: {cause:?}"),
                _ => {}
            }
        }
    })
    .await;
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_peerswarm_dials() {
    within(TEST, "test", ping(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_rust_libp2p_dials() {
    within(TEST, "test", ping(Dialer::RustLibp2p)).await;
}

// ---------------------------------------------------------------------------
// 2. 64 MiB echoed on one stream, written and read concurrently.

const BIG: usize = 64 << 20;

async fn echo_64_mib(dialer: Dialer) {
    let link = link(RustNode::spawn(RustNodeConfig::default().with_echo()).await.unwrap(), dialer).await;
    let payload = Arc::new(exercise::payload(64, BIG));

    // peerswarm writes, rust-libp2p echoes.
    let stream = within(STEP, "peerswarm opens echo", link.conn.open_stream(&[ECHO_PROTOCOL]))
        .await
        .expect("peerswarm opens an echo stream");
    let echoed = within(STEP, "64 MiB through rust-libp2p's echo", async {
        exercise::send_and_read_to_end(stream, &payload).await
    })
    .await
    .expect("peerswarm's 64 MiB transfer completes");
    assert_same_bytes("64 MiB echoed by rust-libp2p", &payload, &echoed);

    // rust-libp2p writes, peerswarm echoes.
    let (rust_stream, peerswarm_stream) = rust_opens(&link, ECHO_PROTOCOL).await;
    let echo = tokio::spawn(exercise::echo(peerswarm_stream));
    let echoed = within(STEP, "64 MiB through peerswarm's echo", async {
        exercise::send_and_read_to_end(rust_stream, &payload).await
    })
    .await
    .expect("rust-libp2p's 64 MiB transfer completes");
    assert_same_bytes("64 MiB echoed by peerswarm", &payload, &echoed);
    let echoed_len = echo.await.expect("echo task").expect("peerswarm echo succeeds");
    assert_eq!(echoed_len, BIG as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_peerswarm_dials() {
    within(TEST, "test", echo_64_mib(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_rust_libp2p_dials() {
    within(TEST, "test", echo_64_mib(Dialer::RustLibp2p)).await;
}

// ---------------------------------------------------------------------------
// 3. 100 concurrent streams on one connection, each with its own payload.

const STREAMS: u64 = 100;

fn stream_payload(i: u64) -> Vec<u8> {
    // Distinct contents and lengths, from 1 KiB to about 100 KiB.
    exercise::payload(1000 + i, 1024 + i as usize * 1021)
}

async fn hundred_streams(dialer: Dialer) {
    let link = link(RustNode::spawn(RustNodeConfig::default().with_echo()).await.unwrap(), dialer).await;

    // peerswarm opens them, rust-libp2p echoes.
    let mut tasks = JoinSet::new();
    for i in 0..STREAMS {
        let conn = link.conn.clone();
        tasks.spawn(async move {
            let stream = conn.open_stream(&[ECHO_PROTOCOL]).await.expect("peerswarm opens an echo stream");
            let payload = stream_payload(i);
            let echoed = exercise::send_and_read_to_end(stream, &payload).await.expect("echo completes");
            assert_same_bytes(&format!("peerswarm stream {i}"), &payload, &echoed);
        });
    }
    within(STEP, "100 peerswarm streams", async {
        while let Some(done) = tasks.join_next().await {
            done.expect("stream task");
        }
    })
    .await;

    // rust-libp2p opens them, peerswarm echoes.
    let acceptor_conn = link.conn.clone();
    let acceptor = tokio::spawn(async move {
        let mut echoes = JoinSet::new();
        while let Ok(stream) = acceptor_conn.accept_stream(&[ECHO_PROTOCOL]).await {
            echoes.spawn(exercise::echo(stream));
        }
    });
    let mut tasks = JoinSet::new();
    for i in 0..STREAMS {
        let mut control = link.rust.control();
        let peerswarm_id = link.endpoint.local_peer_id();
        tasks.spawn(async move {
            let stream = control
                .open_stream(peerswarm_id, libp2p::StreamProtocol::new(ECHO_PROTOCOL))
                .await
                .expect("rust-libp2p opens an echo stream");
            let payload = stream_payload(i);
            let echoed =
                exercise::send_and_read_to_end(stream.compat(), &payload).await.expect("echo completes");
            assert_same_bytes(&format!("rust-libp2p stream {i}"), &payload, &echoed);
        });
    }
    within(STEP, "100 rust-libp2p streams", async {
        while let Some(done) = tasks.join_next().await {
            done.expect("stream task");
        }
    })
    .await;
    acceptor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_streams_peerswarm_dials() {
    within(TEST, "test", hundred_streams(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_streams_rust_libp2p_dials() {
    within(TEST, "test", hundred_streams(Dialer::RustLibp2p)).await;
}

// ---------------------------------------------------------------------------
// 4a. Half-close: after one side's FIN the other reads EOF and can still
// send (more than a flow-control window), and the first side reads it.

async fn half_close(dialer: Dialer) {
    let rust = RustNode::spawn(RustNodeConfig::default()).await.unwrap();
    let mut rust_incoming = rust.accept(HALF_CLOSE_PROTOCOL);
    let link = link(rust, dialer).await;
    let response = exercise::payload(7, 1 << 20);

    // peerswarm opens and closes first.
    let mut stream = within(STEP, "peerswarm opens", link.conn.open_stream(&[HALF_CLOSE_PROTOCOL]))
        .await
        .expect("peerswarm opens a stream");
    stream.write_all(b"request from peerswarm").await.expect("peerswarm writes");
    within(STEP, "peerswarm closes its write half", stream.close_write()).await.expect("FIN sent");
    let (_, rust_stream) =
        within(STEP, "rust-libp2p accepts", rust_incoming.next()).await.expect("accepting");
    let mut rust_stream = rust_stream.compat();
    let mut request = Vec::new();
    within(STEP, "rust-libp2p reads to EOF", rust_stream.read_to_end(&mut request))
        .await
        .expect("rust-libp2p reads the request and EOF");
    assert_eq!(request, b"request from peerswarm");
    let mut received = Vec::new();
    let (written, read) = within(STEP, "rust-libp2p answers on the half-closed stream", async {
        tokio::join!(
            async {
                rust_stream.write_all(&response).await?;
                rust_stream.shutdown().await
            },
            stream.read_to_end(&mut received)
        )
    })
    .await;
    written.expect("rust-libp2p writes after peerswarm's FIN");
    read.expect("peerswarm reads after its own FIN");
    assert_same_bytes("answer after peerswarm's FIN", &response, &received);

    // rust-libp2p opens and closes first.
    let (mut rust_stream, mut stream) = rust_opens(&link, HALF_CLOSE_PROTOCOL).await;
    rust_stream.write_all(b"request from rust-libp2p").await.expect("rust-libp2p writes");
    within(STEP, "rust-libp2p closes its write half", rust_stream.shutdown()).await.expect("FIN sent");
    let mut request = Vec::new();
    within(STEP, "peerswarm reads to EOF", stream.read_to_end(&mut request))
        .await
        .expect("peerswarm reads the request and EOF");
    assert_eq!(request, b"request from rust-libp2p");
    let mut received = Vec::new();
    let (written, read) = within(STEP, "peerswarm answers on the half-closed stream", async {
        tokio::join!(
            async {
                stream.write_all(&response).await?;
                stream.close_write().await
            },
            rust_stream.read_to_end(&mut received)
        )
    })
    .await;
    written.expect("peerswarm writes after rust-libp2p's FIN");
    read.expect("rust-libp2p reads after its own FIN");
    assert_same_bytes("answer after rust-libp2p's FIN", &response, &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_peerswarm_dials() {
    within(TEST, "test", half_close(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_rust_libp2p_dials() {
    within(TEST, "test", half_close(Dialer::RustLibp2p)).await;
}

// ---------------------------------------------------------------------------
// 4b. Reset: the other side's reads and writes fail.

/// Writes until rust-libp2p notices the reset; returns the error.
async fn rust_write_until_error(stream: &mut RustStream) -> io::Error {
    within(STEP, "rust-libp2p notices the reset", async {
        loop {
            if let Err(error) = stream.write_all(&[0; 1024]).await {
                break error;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// Reads, expecting the reset, then writes, expecting it again.
async fn peerswarm_sees_reset(stream: &mut peerswarm::Stream) {
    let mut buf = [0; 64];
    let read = within(STEP, "peerswarm reads after the reset", stream.read(&mut buf)).await;
    let error = read.expect_err("peerswarm's read fails after a reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "read error: {error}");
    let write = within(STEP, "peerswarm writes after the reset", stream.write_all(b"more")).await;
    let error = write.expect_err("peerswarm's write fails after a reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "write error: {error}");
}

async fn reset(dialer: Dialer) {
    let rust = RustNode::spawn(RustNodeConfig::default()).await.unwrap();
    let mut rust_incoming = rust.accept(RESET_PROTOCOL);
    let link = link(rust, dialer).await;

    // peerswarm opens, then resets. The first bytes carry the (optimistic)
    // protocol proposal, so the stream reaches rust-libp2p's accept.
    let mut stream = within(STEP, "peerswarm opens", link.conn.open_stream(&[RESET_PROTOCOL]))
        .await
        .expect("peerswarm opens a stream");
    stream.write_all(b"x").await.expect("peerswarm writes");
    stream.flush().await.expect("peerswarm flushes");
    let (_, rust_stream) =
        within(STEP, "rust-libp2p accepts", rust_incoming.next()).await.expect("accepting");
    let mut rust_stream = rust_stream.compat();
    let mut byte = [0; 1];
    within(STEP, "rust-libp2p reads", rust_stream.read_exact(&mut byte)).await.expect("one byte");
    stream.reset();
    let error = rust_write_until_error(&mut rust_stream).await;
    assert_eq!(error.kind(), io::ErrorKind::WriteZero, "rust-libp2p's write error: {error}");

    // peerswarm accepts, then resets.
    let (mut rust_stream, mut stream) = rust_opens(&link, RESET_PROTOCOL).await;
    stream.reset();
    let error = rust_write_until_error(&mut rust_stream).await;
    assert_eq!(error.kind(), io::ErrorKind::WriteZero, "rust-libp2p's write error: {error}");

    // rust-libp2p opens, then resets (by dropping the open stream).
    let (rust_stream, mut stream) = rust_opens(&link, RESET_PROTOCOL).await;
    drop(rust_stream);
    peerswarm_sees_reset(&mut stream).await;

    // rust-libp2p accepts, then resets.
    let mut stream = within(STEP, "peerswarm opens", link.conn.open_stream(&[RESET_PROTOCOL]))
        .await
        .expect("peerswarm opens a stream");
    stream.write_all(b"x").await.expect("peerswarm writes");
    stream.flush().await.expect("peerswarm flushes");
    let (_, rust_stream) =
        within(STEP, "rust-libp2p accepts", rust_incoming.next()).await.expect("accepting");
    let mut rust_stream = rust_stream.compat();
    within(STEP, "rust-libp2p reads", rust_stream.read_exact(&mut byte)).await.expect("one byte");
    drop(rust_stream);
    peerswarm_sees_reset(&mut stream).await;

    // The connection outlives its reset streams.
    let (mut rust_stream, mut stream) = rust_opens(&link, RESET_PROTOCOL).await;
    rust_stream.write_all(b"still up").await.expect("rust-libp2p writes");
    rust_stream.shutdown().await.expect("rust-libp2p closes");
    let mut received = Vec::new();
    within(STEP, "peerswarm reads", stream.read_to_end(&mut received)).await.expect("peerswarm reads");
    assert_eq!(received, b"still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peerswarm_dials() {
    within(TEST, "test", reset(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_rust_libp2p_dials() {
    within(TEST, "test", reset(Dialer::RustLibp2p)).await;
}

// ---------------------------------------------------------------------------
// 5. The same stack with /plaintext/2.0.0 instead of Noise: when a test above
// fails and these pass, look at Noise.

async fn plaintext(dialer: Dialer) {
    let rust =
        RustNode::spawn(RustNodeConfig::default().with_echo().with_insecure_plaintext()).await.unwrap();
    let config = EndpointConfig::new(Keypair::generate_ed25519()).with_insecure_plaintext();
    let link = link_with(rust, dialer, config).await;
    let payload = exercise::payload(5, 1 << 20);

    let stream = within(STEP, "peerswarm opens echo", link.conn.open_stream(&[ECHO_PROTOCOL]))
        .await
        .expect("peerswarm opens an echo stream");
    let echoed =
        within(STEP, "1 MiB through rust-libp2p's echo", exercise::send_and_read_to_end(stream, &payload))
            .await
            .expect("transfer completes");
    assert_same_bytes("1 MiB echoed by rust-libp2p", &payload, &echoed);

    let (rust_stream, peerswarm_stream) = rust_opens(&link, ECHO_PROTOCOL).await;
    let echo = tokio::spawn(exercise::echo(peerswarm_stream));
    let echoed =
        within(STEP, "1 MiB through peerswarm's echo", exercise::send_and_read_to_end(rust_stream, &payload))
            .await
            .expect("transfer completes");
    assert_same_bytes("1 MiB echoed by peerswarm", &payload, &echoed);
    echo.await.expect("echo task").expect("peerswarm echo succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_peerswarm_dials() {
    within(TEST, "test", plaintext(Dialer::Peerswarm)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_rust_libp2p_dials() {
    within(TEST, "test", plaintext(Dialer::RustLibp2p)).await;
}
