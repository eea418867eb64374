//! peerswarm's yamux against rust-yamux 0.14 (the muxer inside rust-libp2p
//! 0.57) over bare TCP: no Noise, no multistream-select. When a
//! `peerswarm_vs_rust_libp2p` test fails and its twin here passes, look
//! above yamux.
//!
//! Each test runs with peerswarm as the yamux client (the TCP dialer) and as
//! the server, and within each, streams opened by either side.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use peerswarm::yamux::{Config, Connection, Role};
use peerswarm_interop::exercise::{self, assert_same_bytes};
use peerswarm_interop::{within, RustYamux, RustYamuxStream, YamuxMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const STEP: Duration = Duration::from_secs(30);
const TEST: Duration = Duration::from_secs(55);

struct Pair {
    peerswarm: Connection,
    rust: Arc<RustYamux>,
}

async fn pair(peerswarm_role: Role) -> Pair {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound address");
    let (dialed, accepted) =
        within(STEP, "tcp connect", async { tokio::join!(TcpStream::connect(addr), listener.accept()) })
            .await;
    let dialed = dialed.expect("connect");
    let (accepted, _) = accepted.expect("accept");
    let (peerswarm_io, rust_io, rust_mode) = match peerswarm_role {
        Role::Client => (dialed, accepted, YamuxMode::Server),
        Role::Server => (accepted, dialed, YamuxMode::Client),
    };
    Pair {
        peerswarm: Connection::new(peerswarm_io, peerswarm_role, Config::default()),
        rust: Arc::new(RustYamux::new(rust_io, rust_mode)),
    }
}

/// Opens a stream from rust-yamux, writes `first` (rust-yamux sends the SYN
/// with the first frame) and accepts it on peerswarm.
async fn rust_opens(pair: &Pair, first: &[u8]) -> (RustYamuxStream, peerswarm::yamux::Stream) {
    let mut rust = within(STEP, "rust-yamux opens", pair.rust.open_stream()).await.expect("open");
    rust.write_all(first).await.expect("rust-yamux writes");
    rust.flush().await.expect("rust-yamux flushes");
    let stream = within(STEP, "peerswarm accepts", pair.peerswarm.accept_stream()).await.expect("accept");
    (rust, stream)
}

/// Opens a stream from peerswarm, writes `first` and accepts it on
/// rust-yamux.
async fn peerswarm_opens(pair: &Pair, first: &[u8]) -> (peerswarm::yamux::Stream, RustYamuxStream) {
    let mut stream = within(STEP, "peerswarm opens", pair.peerswarm.open_stream()).await.expect("open");
    stream.write_all(first).await.expect("peerswarm writes");
    let rust = within(STEP, "rust-yamux accepts", pair.rust.accept_stream()).await.expect("accept");
    (stream, rust)
}

fn echo_on_rust(pair: &Pair) -> tokio::task::JoinHandle<()> {
    let rust = pair.rust.clone();
    tokio::spawn(async move {
        let mut echoes = JoinSet::new();
        while let Some(stream) = rust.accept_stream().await {
            echoes.spawn(exercise::echo(stream));
        }
    })
}

fn echo_on_peerswarm(pair: &Pair) -> tokio::task::JoinHandle<()> {
    let conn = pair.peerswarm.clone();
    tokio::spawn(async move {
        let mut echoes = JoinSet::new();
        while let Ok(stream) = conn.accept_stream().await {
            echoes.spawn(exercise::echo(stream));
        }
    })
}

async fn echo_64_mib(role: Role) {
    let pair = pair(role).await;
    let payload = exercise::payload(64, 64 << 20);

    let rust_echo = echo_on_rust(&pair);
    let stream = pair.peerswarm.open_stream().await.expect("peerswarm opens");
    let echoed =
        within(STEP, "64 MiB through rust-yamux's echo", exercise::send_and_read_to_end(stream, &payload))
            .await
            .expect("transfer");
    assert_same_bytes("64 MiB echoed by rust-yamux", &payload, &echoed);
    rust_echo.abort();

    let peerswarm_echo = echo_on_peerswarm(&pair);
    let stream = pair.rust.open_stream().await.expect("rust-yamux opens");
    let echoed =
        within(STEP, "64 MiB through peerswarm's echo", exercise::send_and_read_to_end(stream, &payload))
            .await
            .expect("transfer");
    assert_same_bytes("64 MiB echoed by peerswarm", &payload, &echoed);
    peerswarm_echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_peerswarm_client() {
    within(TEST, "test", echo_64_mib(Role::Client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_peerswarm_server() {
    within(TEST, "test", echo_64_mib(Role::Server)).await;
}

fn stream_payload(i: u64) -> Vec<u8> {
    exercise::payload(1000 + i, 1024 + i as usize * 1021)
}

async fn hundred_streams(role: Role) {
    let pair = pair(role).await;

    let rust_echo = echo_on_rust(&pair);
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let conn = pair.peerswarm.clone();
        tasks.spawn(async move {
            let stream = conn.open_stream().await.expect("peerswarm opens");
            let payload = stream_payload(i);
            let echoed = exercise::send_and_read_to_end(stream, &payload).await.expect("echo");
            assert_same_bytes(&format!("peerswarm stream {i}"), &payload, &echoed);
        });
    }
    within(STEP, "100 peerswarm streams", async {
        while let Some(done) = tasks.join_next().await {
            done.expect("stream task");
        }
    })
    .await;
    rust_echo.abort();

    let peerswarm_echo = echo_on_peerswarm(&pair);
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let rust = pair.rust.clone();
        tasks.spawn(async move {
            let stream = rust.open_stream().await.expect("rust-yamux opens");
            let payload = stream_payload(i);
            let echoed = exercise::send_and_read_to_end(stream, &payload).await.expect("echo");
            assert_same_bytes(&format!("rust-yamux stream {i}"), &payload, &echoed);
        });
    }
    within(STEP, "100 rust-yamux streams", async {
        while let Some(done) = tasks.join_next().await {
            done.expect("stream task");
        }
    })
    .await;
    peerswarm_echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_streams_peerswarm_client() {
    within(TEST, "test", hundred_streams(Role::Client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_streams_peerswarm_server() {
    within(TEST, "test", hundred_streams(Role::Server)).await;
}

async fn half_close(role: Role) {
    let pair = pair(role).await;
    let response = exercise::payload(7, 1 << 20);

    // peerswarm closes first, rust-yamux answers more than a window.
    let (mut stream, mut rust) = peerswarm_opens(&pair, b"request").await;
    stream.close_write().await.expect("peerswarm FIN");
    let mut request = Vec::new();
    within(STEP, "rust-yamux reads to EOF", rust.read_to_end(&mut request)).await.expect("read");
    assert_eq!(request, b"request");
    let mut received = Vec::new();
    let (written, read) = within(STEP, "rust-yamux answers", async {
        tokio::join!(
            async {
                rust.write_all(&response).await?;
                rust.shutdown().await
            },
            stream.read_to_end(&mut received)
        )
    })
    .await;
    written.expect("rust-yamux writes after peerswarm's FIN");
    read.expect("peerswarm reads after its FIN");
    assert_same_bytes("answer after peerswarm's FIN", &response, &received);

    // rust-yamux closes first, peerswarm answers.
    let (mut rust, mut stream) = rust_opens(&pair, b"request").await;
    rust.shutdown().await.expect("rust-yamux FIN");
    let mut request = Vec::new();
    within(STEP, "peerswarm reads to EOF", stream.read_to_end(&mut request)).await.expect("read");
    assert_eq!(request, b"request");
    let mut received = Vec::new();
    let (written, read) = within(STEP, "peerswarm answers", async {
        tokio::join!(
            async {
                stream.write_all(&response).await?;
                stream.close_write().await
            },
            rust.read_to_end(&mut received)
        )
    })
    .await;
    written.expect("peerswarm writes after rust-yamux's FIN");
    read.expect("rust-yamux reads after its FIN");
    assert_same_bytes("answer after rust-yamux's FIN", &response, &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_peerswarm_client() {
    within(TEST, "test", half_close(Role::Client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_peerswarm_server() {
    within(TEST, "test", half_close(Role::Server)).await;
}

async fn rust_write_until_error(stream: &mut RustYamuxStream) -> io::Error {
    within(STEP, "rust-yamux notices the reset", async {
        loop {
            if let Err(error) = stream.write_all(&[0; 1024]).await {
                break error;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

async fn reset(role: Role) {
    let pair = pair(role).await;

    // peerswarm resets a stream it opened, then one it accepted.
    let (mut stream, mut rust) = peerswarm_opens(&pair, b"x").await;
    let mut byte = [0; 1];
    within(STEP, "rust-yamux reads", rust.read_exact(&mut byte)).await.expect("one byte");
    stream.reset();
    let error = rust_write_until_error(&mut rust).await;
    assert_eq!(error.kind(), io::ErrorKind::WriteZero, "{error}");

    let (mut rust, mut stream) = rust_opens(&pair, b"x").await;
    within(STEP, "peerswarm reads", stream.read_exact(&mut byte)).await.expect("one byte");
    stream.reset();
    let error = rust_write_until_error(&mut rust).await;
    assert_eq!(error.kind(), io::ErrorKind::WriteZero, "{error}");

    // rust-yamux resets (drops an open stream) one it opened, then one it
    // accepted; peerswarm's read and write fail with ConnectionReset.
    for rust_opened in [true, false] {
        let (rust, mut stream) = if rust_opened {
            rust_opens(&pair, b"x").await
        } else {
            let (stream, rust) = peerswarm_opens(&pair, b"x").await;
            (rust, stream)
        };
        let mut rust = rust;
        if !rust_opened {
            within(STEP, "rust-yamux reads", rust.read_exact(&mut byte)).await.expect("one byte");
        } else {
            within(STEP, "peerswarm reads", stream.read_exact(&mut byte)).await.expect("one byte");
        }
        drop(rust);
        let error = within(STEP, "peerswarm reads after reset", stream.read(&mut byte))
            .await
            .expect_err("peerswarm's read fails after the reset");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "read: {error}");
        let error = within(STEP, "peerswarm writes after reset", stream.write_all(b"more"))
            .await
            .expect_err("peerswarm's write fails after the reset");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "write: {error}");
    }

    // The connection carries on.
    let (mut rust, mut stream) = rust_opens(&pair, b"still up").await;
    rust.shutdown().await.expect("FIN");
    let mut received = Vec::new();
    within(STEP, "peerswarm reads", stream.read_to_end(&mut received)).await.expect("read");
    assert_eq!(received, b"still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peerswarm_client() {
    within(TEST, "test", reset(Role::Client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peerswarm_server() {
    within(TEST, "test", reset(Role::Server)).await;
}
