//! Driver tests over `tokio::io::duplex` and TCP loopback, plus interop with
//! the crates.io `yamux` 0.14 crate.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::*;

const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn pair_duplex(buf: usize) -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(buf);
    (Connection::new(a, Role::Client, Config::default()), Connection::new(b, Role::Server, Config::default()))
}

async fn pair_tcp() -> (Connection, Connection) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (a, b) = (a.unwrap(), b.unwrap().0);
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (Connection::new(a, Role::Client, Config::default()), Connection::new(b, Role::Server, Config::default()))
}

/// Server side: echo every inbound stream until EOF, then close.
fn spawn_echo_server(server: Connection) {
    tokio::spawn(async move {
        while let Ok(mut stream) = server.accept_stream().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
                stream.close_write().await.unwrap();
            });
        }
    });
}

async fn echo_round_trip(client: &Connection, data: Vec<u8>) {
    let stream = client.open_stream().await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let mut got = Vec::with_capacity(expected.len());
    rd.read_to_end(&mut got).await.unwrap();
    let _wr = writer.await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "echo differs");
}

/// A read takes bytes from several received chunks and never more than the
/// buffer holds; buffered data comes before EOF, and EOF repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_any_size_see_every_byte_then_eof() {
    let (client, server) = pair_tcp().await;
    let data = pattern(700_000, 3);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let mut s = client.open_stream().await.unwrap();
        // Writes of odd sizes: received chunks do not line up with reads.
        for (i, piece) in sent.chunks(33_333).enumerate() {
            s.write_all(piece).await.unwrap();
            if i % 5 == 0 {
                tokio::task::yield_now().await;
            }
        }
        s.close_write().await.unwrap();
        (client, s)
    });
    let mut s = server.accept_stream().await.unwrap();
    // Let several chunks pile up before the first read.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sizes = [1, 7, 4096, 70_000, 131_072, 3];
    let mut got = Vec::new();
    let mut buf = vec![0u8; 131_072];
    for i in 0.. {
        let want = sizes[i % sizes.len()];
        let n = s.read(&mut buf[..want]).await.unwrap();
        assert!(n <= want);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    assert_eq!(s.read(&mut buf).await.unwrap(), 0, "EOF repeats");
    let _keep = writer.await.unwrap();
}

/// Chunk reads hand out what was received, never more than asked, in order
/// with plain reads; the stream's window keeps opening (the transfer is
/// larger than it); the end is `None`, repeatedly; a reset fails them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_reads_see_every_byte_then_none() {
    let (client, server) = pair_tcp().await;
    let data = pattern(900_000, 5);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let mut s = client.open_stream().await.unwrap();
        for piece in sent.chunks(50_000) {
            s.write_all(piece).await.unwrap();
        }
        s.close_write().await.unwrap();
        (client, s)
    });
    let mut s = server.accept_stream().await.unwrap();
    let maxes = [1, 65_536, 10, usize::MAX, 0, 4096];
    let mut got = Vec::new();
    for i in 0.. {
        if i % 7 == 3 {
            // A plain read in between takes the next bytes.
            let mut buf = [0u8; 1000];
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            continue;
        }
        let max = maxes[i % maxes.len()];
        let Some(chunk) = std::future::poll_fn(|cx| s.poll_read_chunk(cx, max)).await.unwrap() else {
            break;
        };
        assert!(!chunk.is_empty() && chunk.len() <= max.max(1), "chunk of {} for max {max}", chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert!(got == data, "bytes differ");
    let again = std::future::poll_fn(|cx| s.poll_read_chunk(cx, 100)).await.unwrap();
    assert!(again.is_none(), "the end repeats");
    let _keep = writer.await.unwrap();

    let (client, server) = pair_tcp().await;
    let mut c = client.open_stream().await.unwrap();
    c.write_all(b"before").await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    c.reset();
    let err = loop {
        match std::future::poll_fn(|cx| s.poll_read_chunk(cx, 100)).await {
            Ok(chunk) => assert!(chunk.is_some(), "end instead of a reset"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

/// A peer's reset arriving behind data ends reading with `ConnectionReset`,
/// never with a clean EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_data_fails_the_read() {
    let (client, server) = pair_tcp().await;
    let mut c = client.open_stream().await.unwrap();
    c.write_all(&pattern(200_000, 4)).await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    let mut first = [0u8; 10];
    s.read_exact(&mut first).await.unwrap();
    c.reset();
    let err = loop {
        match s.read(&mut [0u8; 4096]).await {
            Ok(n) => assert!(n > 0, "EOF instead of a reset"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_over_duplex() {
    let (client, server) = pair_duplex(64 * 1024);
    spawn_echo_server(server);
    echo_round_trip(&client, pattern(64 * MIB, 1)).await;
    client.close().await;
    assert!(matches!(client.closed().await, ConnectionError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_64_mib_over_tcp() {
    let (client, server) = pair_tcp().await;
    spawn_echo_server(server);
    echo_round_trip(&client, pattern(64 * MIB, 2)).await;
}

/// A bulk writer keeps the I/O busy in its own task, so the driver often
/// finds it locked and the writer takes the driver's turn (see
/// `Inner::drive_inline`): small writes on another stream, which only wake
/// the driver, must still go out, in both directions, until the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_echoes_flow_while_a_bulk_writer_holds_the_io() {
    let (client, server) = pair_tcp().await;
    spawn_echo_server(server);
    let bulk_client = client.clone();
    let bulk = tokio::spawn(async move {
        let mut s = bulk_client.open_stream().await.unwrap();
        let (mut rd, mut wr) = tokio::io::split(&mut s);
        let data = pattern(64 * MIB, 3);
        let echoed = async {
            let mut back = Vec::with_capacity(data.len());
            rd.read_to_end(&mut back).await.unwrap();
            back
        };
        let send = async {
            for chunk in data.chunks(64 * 1024) {
                wr.write_all(chunk).await.unwrap();
            }
            wr.shutdown().await.unwrap();
        };
        let ((), back) = tokio::join!(send, echoed);
        assert!(back == data, "the bulk stream's echo differs");
    });
    let mut small = client.open_stream().await.unwrap();
    let mut reply = [0u8; 8];
    for i in 0u64..300 {
        small.write_all(&i.to_be_bytes()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(30), small.read_exact(&mut reply)).await;
        assert!(got.is_ok(), "echo {i} never came back");
        assert_eq!(u64::from_be_bytes(reply), i);
    }
    tokio::time::timeout(Duration::from_secs(60), bulk).await.expect("bulk echo finished").unwrap();
    // And on the quiet connection afterwards.
    for i in 300u64..310 {
        small.write_all(&i.to_be_bytes()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(30), small.read_exact(&mut reply)).await;
        assert!(got.is_ok(), "echo {i} never came back");
        assert_eq!(u64::from_be_bytes(reply), i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_streams() {
    let (client, server) = pair_duplex(64 * 1024);
    spawn_echo_server(server.clone());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = client.clone();
        tasks.push(tokio::spawn(
            async move { echo_round_trip(&client, pattern(100 * 1024 + i, i as u32)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // all streams released on both sides
    tokio::time::timeout(Duration::from_secs(5), async {
        while client.num_streams() + server.num_streams() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn half_close_is_eof_and_reply_still_flows() {
    let (client, server) = pair_duplex(4096);
    let mut s = client.open_stream().await.unwrap();
    s.write_all(b"request").await.unwrap();
    s.close_write().await.unwrap();
    let mut r = server.accept_stream().await.unwrap();
    assert_eq!(r.id(), 1);
    let mut req = Vec::new();
    r.read_to_end(&mut req).await.unwrap();
    assert_eq!(req, b"request");
    r.write_all(b"response").await.unwrap();
    drop(r); // peer finished: drop = FIN, the reply is delivered
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    assert_eq!(resp, b"response");
    assert!(s.write_all(b"x").await.is_err(), "write after close_write");
}

#[tokio::test]
async fn reset_is_connection_reset() {
    let (client, server) = pair_duplex(4096);
    let mut s = client.open_stream().await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut r = server.accept_stream().await.unwrap();
    let mut buf = [0u8; 2];
    r.read_exact(&mut buf).await.unwrap();
    r.reset();
    let err = s.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(r.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // dropping a stream the peer may still write to resets it
    let mut s2 = client.open_stream().await.unwrap();
    s2.write_all(b"x").await.unwrap();
    let r2 = server.accept_stream().await.unwrap();
    drop(r2);
    assert_eq!(s2.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // the connection survives
    let mut s3 = client.open_stream().await.unwrap();
    s3.write_all(b"ok").await.unwrap();
    let mut r3 = server.accept_stream().await.unwrap();
    r3.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
}

/// Writes until blocked for 200 ms; returns the bytes accepted.
async fn write_until_blocked(s: &mut Stream) -> usize {
    let chunk = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(200), s.write(&chunk)).await {
            Ok(n) => total += n.unwrap(),
            Err(_) => return total,
        }
        assert!(total < 64 * MIB, "writer never blocked");
    }
}

#[tokio::test]
async fn peer_app_never_reads_blocks_writer() {
    let (client, server) = pair_duplex(64 * 1024);
    let mut s = client.open_stream().await.unwrap();
    let _r = server.accept_stream();
    let total = write_until_blocked(&mut s).await;
    // one 256 KiB window: nothing more is buffered anywhere
    assert_eq!(total, 256 * 1024);
    assert!(!client.is_closed());
}

#[tokio::test]
async fn peer_never_reads_socket_blocks_writer() {
    let (a, _b) = tokio::io::duplex(16 * 1024);
    let client = Connection::new(a, Role::Client, Config::default());
    let mut s = client.open_stream().await.unwrap();
    let total = write_until_blocked(&mut s).await;
    assert!(total <= 256 * 1024, "accepted {total}");
    let mut s2 = client.open_stream().await.unwrap();
    // the send buffer is full: a second stream is blocked too
    let total2 = write_until_blocked(&mut s2).await;
    assert!(total + total2 <= 2 * 256 * 1024 + 64 * 1024, "accepted {total} + {total2}");
}

#[tokio::test]
async fn close_and_drop_semantics() {
    let (client, server) = pair_duplex(4096);
    let mut s = client.open_stream().await.unwrap();
    s.write_all(b"x").await.unwrap();
    let _r = server.accept_stream().await.unwrap();
    let c2 = client.clone();
    drop(client);
    assert!(!c2.is_closed());
    drop(c2); // last handle: closes
    assert!(matches!(server.closed().await, ConnectionError::Closed));
    assert!(server.accept_stream().await.is_err());
    assert!(server.open_stream().await.is_err());
    let mut buf = [0u8; 1];
    let e = s.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
}

#[tokio::test(start_paused = true)]
async fn keepalive_closes_dead_connection() {
    let (a, _b) = tokio::io::duplex(4096);
    let mut cfg = Config::default();
    cfg.set_keepalive(Some((Duration::from_secs(10), Duration::from_secs(5)))).unwrap();
    cfg.set_rtt_probe(false);
    let client = Connection::new(a, Role::Client, cfg);
    let e = tokio::time::timeout(Duration::from_secs(60), client.closed()).await.unwrap();
    assert!(matches!(e, ConnectionError::KeepAliveTimeout), "{e:?}");
}

// Real time: the driver reads the std clock, which a paused tokio clock
// would leave behind.
#[tokio::test]
async fn idle_stream_is_reset_with_a_typed_error() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut patient = Config::default();
    patient.set_stream_idle_timeout(Some(Duration::from_secs(1000))).unwrap();
    let mut strict = Config::default();
    strict.set_stream_idle_timeout(Some(Duration::from_secs(1))).unwrap();
    let client = Connection::new(a, Role::Client, patient);
    let server = Connection::new(b, Role::Server, strict);
    let mut idle = client.open_stream().await.unwrap();
    idle.write_all(b"hi").await.unwrap();
    let mut kept = client.open_stream().await.unwrap();
    kept.set_idle_timeout(None);
    kept.write_all(b"hi").await.unwrap();
    let mut idle_in = server.accept_stream().await.unwrap();
    let mut kept_in = server.accept_stream().await.unwrap();
    // Each end times its streams out on its own.
    kept_in.set_idle_timeout(None);
    let mut buf = [0u8; 2];
    idle_in.read_exact(&mut buf).await.unwrap();
    kept_in.read_exact(&mut buf).await.unwrap();
    // The server times the idle stream out; its read says why.
    let e = tokio::time::timeout(Duration::from_secs(60), idle_in.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<peerswarm_proto::yamux::StreamError>());
    assert_eq!(inner, Some(&peerswarm_proto::yamux::StreamError::IdleTimeout), "{e}");
    // The exempt stream (and the connection) outlive it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    kept.write_all(b"ok").await.unwrap();
    kept_in.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
}

#[tokio::test]
async fn protocol_error_ends_connection() {
    let (a, mut b) = tokio::io::duplex(4096);
    let server = Connection::new(a, Role::Server, Config::default());
    b.write_all(&[1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]).await.unwrap();
    let e = server.closed().await;
    assert!(matches!(e, ConnectionError::Protocol(_)), "{e:?}");
    let mut out = Vec::new();
    b.read_to_end(&mut out).await.unwrap();
    assert!(out.ends_with(&hex::decode("000300000000000000000001").unwrap()));
}

// ----------------------------------------------------------------------
// interop with rust-yamux (crates.io `yamux` 0.14)

/// tokio -> futures I/O adapter for the `yamux` crate.
struct Compat<T>(T);

impl<T: AsyncRead + Unpin> futures::io::AsyncRead for Compat<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> futures::io::AsyncWrite for Compat<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// rust-yamux echo server: drives its connection and echoes every stream.
fn spawn_rust_yamux_echo<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(io: T) {
    tokio::spawn(async move {
        let mut conn = yamux::Connection::new(Compat(io), yamux::Config::default(), yamux::Mode::Server);
        while let Some(Ok(stream)) = std::future::poll_fn(|cx| conn.poll_next_inbound(cx)).await {
            tokio::spawn(async move {
                use futures::{AsyncReadExt as _, AsyncWriteExt as _};
                let (mut rd, mut wr) = stream.split();
                futures::io::copy(&mut rd, &mut wr).await.unwrap();
                wr.close().await.unwrap();
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_we_are_client() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    spawn_rust_yamux_echo(b);
    let client = Connection::new(a, Role::Client, Config::default());
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = client.clone();
        tasks.push(tokio::spawn(
            async move { echo_round_trip(&client, pattern(2 * MIB + i, i as u32)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_we_are_server() {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = Connection::new(b, Role::Server, Config::default());
    spawn_echo_server(server.clone());
    let mut conn = yamux::Connection::new(Compat(a), yamux::Config::default(), yamux::Mode::Client);
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(std::future::poll_fn(|cx| conn.poll_new_outbound(cx)).await.unwrap());
    }
    tokio::spawn(async move {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| conn.poll_next_inbound(cx)).await {}
    });
    let mut tasks = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let data = pattern(3 * MIB + i, 100 + i as u32);
            let (mut rd, mut wr) = stream.split();
            let expected = data.clone();
            let w = tokio::spawn(async move {
                wr.write_all(&data).await.unwrap();
                wr.close().await.unwrap();
            });
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            w.await.unwrap();
            assert!(got == expected);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.num_streams(), 0);
}

// ----------------------------------------------------------------------
// throughput (run with: cargo test --release -p peerswarm --lib yamux::tests::throughput -- --ignored --nocapture)

const BULK: usize = 1024 * MIB;

async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    (a.unwrap(), b.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_peerswarm() {
    let (a, b) = tcp_pair().await;
    let client = Connection::new(a, Role::Client, Config::default());
    let server = Connection::new(b, Role::Server, Config::default());
    let start = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut s = server.accept_stream().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    let mut s = client.open_stream().await.unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    for _ in 0..BULK / chunk.len() {
        s.write_all(&chunk).await.unwrap();
    }
    s.close_write().await.unwrap();
    assert_eq!(reader.await.unwrap(), BULK);
    let secs = start.elapsed().as_secs_f64();
    println!("peerswarm yamux: 1 GiB in {secs:.2} s = {:.0} MiB/s", BULK as f64 / MIB as f64 / secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_rust_yamux() {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    let (a, b) = tcp_pair().await;
    let start = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut conn = yamux::Connection::new(Compat(b), yamux::Config::default(), yamux::Mode::Server);
        let mut s = std::future::poll_fn(|cx| conn.poll_next_inbound(cx)).await.unwrap().unwrap();
        tokio::spawn(async move {
            while let Some(Ok(_)) = std::future::poll_fn(|cx| conn.poll_next_inbound(cx)).await {}
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    let mut conn = yamux::Connection::new(Compat(a), yamux::Config::default(), yamux::Mode::Client);
    let mut s = std::future::poll_fn(|cx| conn.poll_new_outbound(cx)).await.unwrap();
    tokio::spawn(async move {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| conn.poll_next_inbound(cx)).await {}
    });
    let chunk = vec![0x5au8; 256 * 1024];
    for _ in 0..BULK / chunk.len() {
        s.write_all(&chunk).await.unwrap();
    }
    s.close().await.unwrap();
    assert_eq!(reader.await.unwrap(), BULK);
    let secs = start.elapsed().as_secs_f64();
    println!("rust-yamux 0.14: 1 GiB in {secs:.2} s = {:.0} MiB/s", BULK as f64 / MIB as f64 / secs);
}
