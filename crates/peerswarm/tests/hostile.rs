//! Hostile input against a real listening node, end to end.
//!
//! The node under test is an [`Endpoint`] listening on loopback that echoes
//! `/echo/1.0.0` streams. The attacker speaks raw TCP; for attacks past the
//! handshake it runs a real Noise handshake by hand (the sans-IO
//! [`Handshake`], or raw `snow` to forge a bad signature) and then writes
//! hand-made yamux frames through the transport ciphers (`attacker/mod.rs`,
//! shared with `hostile_more.rs`).
//!
//! Each test asserts that the attack ends that stream or that connection
//! (read EOF/reset, or a yamux RST, within a timeout), with the typed error
//! where the node exposes one (`Connection::closed`, or the listener's
//! `inbound upgrade failed` log line for handshake failures); that nothing in
//! the library panicked (a panic hook counts panics raised outside the
//! test files); and that a well-behaved peerswarm client, echoing in a loop during
//! the attack, keeps succeeding, as does a fresh connection afterwards.
//!
//! Every wait is under a timeout; nothing asserts on timing.

mod attacker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attacker::*;
use peerswarm::identity::{Keypair, PeerId};
use peerswarm::multiaddr::Protocol;
use peerswarm::{Connection, ConnectionError, Endpoint, EndpointConfig, Multiaddr, Stream};
use peerswarm_proto::multistream::Message;
use peerswarm_proto::noise::{
    static_key_message, CipherError, Handshake, HandshakePayload, NoiseExtensions, PROTOCOL_NAME,
};
use peerswarm_proto::yamux::{Flags, FrameError, FrameType, Header, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// The node under test and the good client

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Reads a stream to its end (at most 1 MiB) and writes it all back.
async fn serve_echo(mut stream: Stream) {
    let mut buf = Vec::new();
    if (&mut stream).take(1 << 20).read_to_end(&mut buf).await.is_ok() {
        let _ = stream.write_all(&buf).await;
        let _ = stream.close().await;
    }
}

/// An endpoint listening on loopback, echoing `/echo/1.0.0` on every
/// connection, with every accepted connection kept by remote port.
struct Node {
    peer_id: PeerId,
    addr: Multiaddr,
    socket: SocketAddr,
    conns: Arc<Mutex<HashMap<u16, Connection>>>,
    accept: JoinHandle<()>,
}

impl Node {
    async fn start() -> Node {
        init();
        let endpoint = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
        let mut listener = endpoint.listen(&loopback()).await.expect("listen");
        let addr = listener.local_addr().clone();
        let socket = SocketAddr::from(([127, 0, 0, 1], tcp_port(&addr).unwrap()));
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let registry = conns.clone();
        let accept = tokio::spawn(async move {
            while let Some(conn) = listener.accept().await {
                if let Some(port) = tcp_port(conn.remote_addr()) {
                    registry.lock().unwrap().insert(port, conn.clone());
                }
                tokio::spawn(async move {
                    while let Ok(stream) = conn.accept_stream(&[ECHO]).await {
                        tokio::spawn(serve_echo(stream));
                    }
                });
            }
        });
        Node { peer_id: endpoint.local_peer_id(), addr, socket, conns, accept }
    }

    /// The node's side of the connection from `port`.
    async fn conn_from(&self, port: u16) -> Connection {
        within("node accepts the connection", async {
            loop {
                if let Some(conn) = self.conns.lock().unwrap().get(&port).cloned() {
                    return conn;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// How the node's connection from `port` ended.
    async fn close_reason(&self, port: u16) -> ConnectionError {
        let conn = self.conn_from(port).await;
        within("node closes the attacked connection", conn.closed()).await
    }

    /// The acceptance check after an attack: the good client's loop never
    /// failed, it still echoes on its connection, a new peer can connect and
    /// echo, and nothing panicked.
    async fn assert_still_serving(&self, client: &GoodClient, busy: Busy) {
        let rounds = busy.finish().await;
        assert!(rounds >= 1);
        client.echo(4096, 7).await.expect("good client echo after the attack");
        let fresh = GoodClient::connect(self).await;
        fresh.echo(100_000, 9).await.expect("new peer echo after the attack");
        assert!(!client.conn.is_closed());
        assert!(!self.accept.is_finished(), "the listener stopped");
        assert_no_library_panic();
    }
}

impl Target for Node {
    fn socket(&self) -> SocketAddr {
        self.socket
    }

    fn peer_id(&self) -> PeerId {
        self.peer_id
    }
}

/// A well-behaved peerswarm peer of the node.
struct GoodClient {
    endpoint: Endpoint,
    conn: Connection,
}

impl GoodClient {
    async fn connect(node: &Node) -> GoodClient {
        let endpoint = Endpoint::new(EndpointConfig::new(Keypair::generate_ed25519()));
        let conn = within("good client dials", endpoint.dial(&node.addr, Some(node.peer_id)))
            .await
            .expect("good client dial");
        GoodClient { endpoint, conn }
    }

    /// One echo round-trip of `len` bytes on a new stream.
    async fn echo(&self, len: usize, seed: u8) -> Result<(), String> {
        let conn = self.conn.clone();
        let round = async move {
            let mut stream = conn.open_stream(&[ECHO]).await.map_err(|e| format!("open: {e}"))?;
            let msg = pattern(len, seed);
            stream.write_all(&msg).await.map_err(|e| format!("write: {e}"))?;
            stream.close_write().await.map_err(|e| format!("close write: {e}"))?;
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.map_err(|e| format!("read: {e}"))?;
            if back != msg {
                return Err(format!("echo mismatch: sent {} bytes, got {}", msg.len(), back.len()));
            }
            Ok(())
        };
        tokio::time::timeout(WAIT, round).await.map_err(|_| "echo timed out".to_owned())?
    }

    /// Echoes in a loop (at least once) until [`Busy::finish`].
    fn keep_busy(&self) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let client = GoodClient { endpoint: self.endpoint.clone(), conn: self.conn.clone() };
        let task = tokio::spawn(async move {
            let mut rounds = 0usize;
            loop {
                client
                    .echo(8192 + rounds % 1000, rounds as u8)
                    .await
                    .map_err(|e| format!("round {rounds}: {e}"))?;
                rounds += 1;
                if flag.load(Ordering::SeqCst) {
                    return Ok(rounds);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Busy { stop, task }
    }
}

/// The good client's echo loop running during an attack.
struct Busy {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<usize, String>>,
}

impl Busy {
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let result = within("good client loop stops", self.task).await.expect("echo loop task");
        result.unwrap_or_else(|e| panic!("the good client failed during the attack: {e}"))
    }
}

async fn setup() -> (Node, GoodClient, Busy) {
    let node = Node::start().await;
    let client = GoodClient::connect(&node).await;
    let busy = client.keep_busy();
    (node, client, busy)
}

// ---------------------------------------------------------------------------
// Before Noise: multistream-select on the raw socket

/// Sends `bytes` on a fresh TCP connection, expects the node to close it,
/// and returns the error the listener logged.
async fn raw_attack(node: &Node, bytes: &[u8]) -> String {
    let mut tcp = within("connect", TcpStream::connect(node.socket)).await.expect("connect");
    let port = tcp.local_addr().unwrap().port();
    tcp.write_all(bytes).await.unwrap();
    expect_closed(&mut tcp).await;
    upgrade_failure_logged(port).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_multistream_header() {
    let (node, client, busy) = setup().await;

    // Not a varint at all.
    let error = raw_attack(&node, &[0xff; 16]).await;
    assert_eq!(
        error,
        "security protocol negotiation failed: multistream protocol error: invalid message length prefix"
    );
    // A well-framed message that is not the header.
    let error = raw_attack(&node, &ms(&[Message::Protocol("/multistream/2.0.0".into())])).await;
    assert_eq!(
        error,
        "security protocol negotiation failed: multistream protocol error: expected the multistream header"
    );
    // Another protocol: 'G' reads as a length of 71, whose 71st byte is not '\n'.
    let http = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {}\r\n\r\n", "x".repeat(100));
    let error = raw_attack(&node, http.as_bytes()).await;
    assert_eq!(error, "security protocol negotiation failed: multistream protocol error: message does not end with a newline");
    // Noise straight away, skipping multistream.
    let identity = Keypair::generate_ed25519();
    let mut hs = Handshake::initiator(&identity, None, &[]).unwrap();
    let error = raw_attack(&node, &hs.poll_transmit().unwrap()).await;
    assert!(error.starts_with("security protocol negotiation failed: multistream protocol error"), "{error}");

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_multistream_line() {
    let (node, client, busy) = setup().await;

    // As the header, announced by its length prefix.
    let mut bytes = varint(2000);
    bytes.extend_from_slice(&[b'a'; 100]);
    let error = raw_attack(&node, &bytes).await;
    assert_eq!(
        error,
        "security protocol negotiation failed: multistream protocol error: message of 2000 bytes exceeds the limit of 1024"
    );
    // As the proposal after a valid header, sent in full (1025 bytes with '\n').
    let mut bytes = ms(&[Message::Header]);
    bytes.extend_from_slice(&varint(1025));
    bytes.extend_from_slice(&[b'/'; 1024]);
    bytes.push(b'\n');
    let error = raw_attack(&node, &bytes).await;
    assert_eq!(
        error,
        "security protocol negotiation failed: multistream protocol error: message of 1025 bytes exceeds the limit of 1024"
    );
    // An absurd length (2^62): refused before any body is buffered.
    let error = raw_attack(&node, &varint(1 << 62)).await;
    assert!(error.contains("exceeds the limit of 1024"), "{error}");

    node.assert_still_serving(&client, busy).await;
}

/// Inside a connection, a bad multistream line on one stream resets that
/// stream only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_multistream_line_on_a_stream_resets_only_that_stream() {
    let (node, client, busy) = setup().await;
    let mut attacker = Attacker::connect(&node).await;

    let mut data = ms(&[Message::Header]);
    data.extend_from_slice(&varint(5000));
    data.extend_from_slice(&[b'a'; 64]);
    attacker.send_frames(&[(Header::data(1, Flags::SYN, data.len() as u32), &data)]).await;
    let seen = attacker.until("RST of stream 1", |h| is_rst(h, 1)).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    // The connection carries on: a ping, and an echo on a new stream.
    attacker.ping(1).await;
    attacker.echo(3, b"still here").await;
    assert!(!node.conn_from(attacker.port()).await.is_closed());

    node.assert_still_serving(&client, busy).await;
}

// ---------------------------------------------------------------------------
// The Noise handshake

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_handshake_message_with_bad_tag() {
    let (node, client, busy) = setup().await;

    let (mut tcp, mut hs, _) = handshake_until_msg3(&node).await;
    let port = tcp.local_addr().unwrap().port();
    let mut msg3 = hs.poll_transmit().unwrap();
    *msg3.last_mut().unwrap() ^= 0x01;
    tcp.write_all(&msg3).await.unwrap();
    expect_closed(&mut tcp).await;
    assert_eq!(
        upgrade_failure_logged(port).await,
        "noise handshake failed: handshake message failed to decrypt"
    );

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_transport_frame_with_bad_tag() {
    let (node, client, busy) = setup().await;

    let mut attacker = Attacker::connect(&node).await;
    let mut frame = Vec::new();
    attacker.send.encrypt_frame(&Header::ping(false, 7).encode(), &mut frame).unwrap();
    *frame.last_mut().unwrap() ^= 0x80;
    attacker.tcp.write_all(&frame).await.unwrap();
    expect_closed(&mut attacker.tcp).await;
    match node.close_reason(attacker.port()).await {
        ConnectionError::Io(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            let cipher = e.get_ref().and_then(|e| e.downcast_ref::<CipherError>());
            assert_eq!(cipher, Some(&CipherError::Decrypt), "{e}");
        }
        other => panic!("expected a decrypt error, got {other:?}"),
    }

    // A frame too short to hold a tag.
    let mut attacker = Attacker::connect(&node).await;
    attacker.tcp.write_all(&[0, 5, 1, 2, 3, 4, 5]).await.unwrap();
    expect_closed(&mut attacker.tcp).await;
    match node.close_reason(attacker.port()).await {
        ConnectionError::Io(e) => {
            let cipher = e.get_ref().and_then(|e| e.downcast_ref::<CipherError>());
            assert_eq!(cipher, Some(&CipherError::FrameTooShort { len: 5 }), "{e}");
        }
        other => panic!("expected a short-frame error, got {other:?}"),
    }

    node.assert_still_serving(&client, busy).await;
}

/// A raw `snow` initiator that sends `payload(own static key)` in message 3.
async fn forged_handshake(node: &Node, payload: impl FnOnce(&[u8]) -> HandshakePayload) -> u16 {
    let builder = snow::Builder::new(PROTOCOL_NAME.parse().unwrap());
    let keys = builder.generate_keypair().unwrap();
    let mut noise = builder.local_private_key(&keys.private).unwrap().build_initiator().unwrap();
    let mut msg1 = vec![0u8; 2 + 65535];
    let n = noise.write_message(&[], &mut msg1[2..]).unwrap();
    msg1[..2].copy_from_slice(&(n as u16).to_be_bytes());
    msg1.truncate(2 + n);

    let (mut tcp, mut buf) = open_noise(node, &msg1).await;
    let port = tcp.local_addr().unwrap().port();
    let msg2 = read_noise_frame(&mut tcp, &mut buf).await;
    let mut scratch = vec![0u8; 65535];
    noise.read_message(&msg2[2..], &mut scratch).expect("the node's message 2");

    let mut msg3 = vec![0u8; 2 + 65535];
    let n = noise.write_message(&payload(&keys.public).encode(), &mut msg3[2..]).unwrap();
    msg3[..2].copy_from_slice(&(n as u16).to_be_bytes());
    msg3.truncate(2 + n);
    tcp.write_all(&msg3).await.unwrap();
    expect_closed(&mut tcp).await;
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_signature_does_not_verify() {
    let (node, client, busy) = setup().await;
    let identity = Keypair::generate_ed25519();
    let peer = identity.public().to_peer_id();
    let extensions =
        Some(NoiseExtensions { webtransport_certhashes: vec![], stream_muxers: vec![YAMUX.into()] });
    let expected = format!("noise handshake failed: static key signature from {peer} does not verify");

    // A valid signature over another static key.
    let port = forged_handshake(&node, |_| HandshakePayload {
        identity_key: identity.public().encode_protobuf(),
        identity_sig: identity.sign(&static_key_message(&[7; 32])).unwrap(),
        extensions: extensions.clone(),
    })
    .await;
    assert_eq!(upgrade_failure_logged(port).await, expected);

    // The right message, one bit of the signature flipped.
    let port = forged_handshake(&node, |static_key| {
        let mut sig = identity.sign(&static_key_message(static_key)).unwrap();
        sig[10] ^= 0x04;
        HandshakePayload {
            identity_key: identity.public().encode_protobuf(),
            identity_sig: sig,
            extensions: extensions.clone(),
        }
    })
    .await;
    assert_eq!(upgrade_failure_logged(port).await, expected);

    // Another identity's signature.
    let port = forged_handshake(&node, |static_key| HandshakePayload {
        identity_key: identity.public().encode_protobuf(),
        identity_sig: Keypair::generate_ed25519().sign(&static_key_message(static_key)).unwrap(),
        extensions: extensions.clone(),
    })
    .await;
    assert_eq!(upgrade_failure_logged(port).await, expected);

    // The control: the same forging code with an honest payload is accepted.
    let honest = forged_handshake_accepted(&node, &identity).await;
    assert_eq!(node.conn_from(honest).await.remote_peer_id(), peer);

    node.assert_still_serving(&client, busy).await;
}

/// [`forged_handshake`]'s path with a correct payload: the node accepts it
/// (so the rejections above are the signature's doing). Returns the port.
async fn forged_handshake_accepted(node: &Node, identity: &Keypair) -> u16 {
    let builder = snow::Builder::new(PROTOCOL_NAME.parse().unwrap());
    let keys = builder.generate_keypair().unwrap();
    let mut noise = builder.local_private_key(&keys.private).unwrap().build_initiator().unwrap();
    let mut msg1 = vec![0u8; 2 + 65535];
    let n = noise.write_message(&[], &mut msg1[2..]).unwrap();
    msg1[..2].copy_from_slice(&(n as u16).to_be_bytes());
    msg1.truncate(2 + n);
    let (mut tcp, mut buf) = open_noise(node, &msg1).await;
    let port = tcp.local_addr().unwrap().port();
    let msg2 = read_noise_frame(&mut tcp, &mut buf).await;
    noise.read_message(&msg2[2..], &mut vec![0u8; 65535]).unwrap();
    let payload = HandshakePayload {
        identity_key: identity.public().encode_protobuf(),
        identity_sig: identity.sign(&static_key_message(&keys.public)).unwrap(),
        extensions: Some(NoiseExtensions {
            webtransport_certhashes: vec![],
            stream_muxers: vec![YAMUX.into()],
        }),
    };
    let mut msg3 = vec![0u8; 2 + 65535];
    let n = noise.write_message(&payload.encode(), &mut msg3[2..]).unwrap();
    msg3[..2].copy_from_slice(&(n as u16).to_be_bytes());
    msg3.truncate(2 + n);
    tcp.write_all(&msg3).await.unwrap();
    // Keep the socket open until the node has registered the connection.
    node.conn_from(port).await;
    drop(tcp);
    port
}

// ---------------------------------------------------------------------------
// Yamux

async fn expect_protocol_error(node: &Node, attacker: &mut Attacker) -> ProtocolError {
    attacker.expect_go_away_and_close().await;
    match node.close_reason(attacker.port()).await {
        ConnectionError::Protocol(e) => e,
        other => panic!("expected a yamux protocol error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yamux_frame_with_bad_version_or_type() {
    let (node, client, busy) = setup().await;

    let mut attacker = Attacker::connect(&node).await;
    let mut raw = Header::ping(false, 1).encode();
    raw[0] = 1;
    attacker.send_plain(&raw).await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::Frame(FrameError::UnsupportedVersion(1))
    );

    let mut attacker = Attacker::connect(&node).await;
    let mut raw = Header::window_update(1, Flags::SYN, 0).encode();
    raw[1] = 4;
    attacker.send_plain(&raw).await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::Frame(FrameError::UnknownType(4))
    );

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_beyond_the_window() {
    let (node, client, busy) = setup().await;

    // One frame announcing a byte more than the 256 KiB initial window.
    let mut attacker = Attacker::connect(&node).await;
    let len = 256 * 1024 + 1;
    attacker.send_frames(&[(Header::data(1, Flags::SYN, len), &[0u8; 1024])]).await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::WindowExceeded { stream_id: 1, len, window: 256 * 1024 }
    );

    // Two frames that together exceed it, on a stream nobody reads: 200
    // streams say nothing, filling the node's negotiation slots (128), so
    // stream 401 stays queued in the muxer, unread, its window never
    // credited back.
    let mut attacker = Attacker::connect(&node).await;
    let silent: Vec<(Header, &[u8])> =
        (0..200u32).map(|i| (Header::window_update(2 * i + 1, Flags::SYN, 0), &[][..])).collect();
    attacker.send_frames(&silent).await;
    let first = vec![0u8; 200 * 1024];
    attacker.send_frames(&[(Header::data(401, Flags::SYN, first.len() as u32), &first)]).await;
    attacker.ping(8).await;
    attacker.send_frames(&[(Header::data(401, Flags::NONE, 100 * 1024), &[1u8; 512])]).await;
    match expect_protocol_error(&node, &mut attacker).await {
        ProtocolError::WindowExceeded { stream_id: 401, len, window } => {
            assert_eq!(len, 100 * 1024);
            assert_eq!(window, 56 * 1024);
        }
        other => panic!("expected WindowExceeded, got {other:?}"),
    }

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_on_an_unknown_stream_is_ignored() {
    let (node, client, busy) = setup().await;
    let mut attacker = Attacker::connect(&node).await;

    // Never opened: an odd id without SYN, and an id of the node's parity.
    attacker
        .send_frames(&[
            (Header::data(1001, Flags::NONE, 5), b"hello"),
            (Header::data(2000, Flags::NONE, 3), b"abc"),
            (Header::window_update(1003, Flags::NONE, 1 << 20), &[]),
            (Header::data(1005, Flags::FIN, 0), &[]),
        ])
        .await;
    let seen = attacker.ping(2).await;
    assert!(seen.iter().all(|h| ![1001, 2000, 1003, 1005].contains(&h.stream_id)), "{seen:?}");
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    // Closed: echoed and finished on both sides, then more data.
    attacker.echo(1, b"first").await;
    attacker.send_frames(&[(Header::data(1, Flags::NONE, 4), b"more")]).await;
    let seen = attacker.ping(3).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    attacker.echo(3, b"second").await;
    assert!(!node.conn_from(attacker.port()).await.is_closed());

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_fin_resets_that_stream() {
    let (node, client, busy) = setup().await;
    let mut attacker = Attacker::connect(&node).await;

    // Open, half-close, then keep sending: all in one write, so the node
    // sees the data while the stream is still open on its side.
    attacker
        .send_frames(&[
            (Header::window_update(1, Flags::SYN, 0), &[]),
            (Header::data(1, Flags::FIN, 0), &[]),
            (Header::data(1, Flags::NONE, 5), b"after"),
        ])
        .await;
    let seen = attacker.until("RST of stream 1", |h| is_rst(h, 1)).await;
    assert!(!seen.iter().any(|h| h.ty == FrameType::GoAway), "{seen:?}");
    attacker.ping(4).await;
    attacker.echo(3, b"the connection survives").await;
    assert!(!node.conn_from(attacker.port()).await.is_closed());

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_with_a_bad_stream_id() {
    let (node, client, busy) = setup().await;

    // The node's parity (it is the server: even ids are its own).
    let mut attacker = Attacker::connect(&node).await;
    attacker.send_frames(&[(Header::window_update(2, Flags::SYN, 0), &[])]).await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::InvalidStreamId { stream_id: 2 }
    );

    // The session id.
    let mut attacker = Attacker::connect(&node).await;
    attacker.send_frames(&[(Header::data(0, Flags::SYN, 0), &[])]).await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::InvalidStreamId { stream_id: 0 }
    );

    // A stream that is still open.
    let mut attacker = Attacker::connect(&node).await;
    attacker
        .send_frames(&[
            (Header::window_update(5, Flags::SYN, 0), &[]),
            (Header::window_update(5, Flags::SYN, 0), &[]),
        ])
        .await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::SynOnExistingStream { stream_id: 5 }
    );

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_inbound_streams_than_the_limit() {
    let (node, client, busy) = setup().await;
    let mut attacker = Attacker::connect(&node).await;
    let limit = 256; // yamux::Config::default().max_streams()
    let total = 300u32;
    let ids: Vec<u32> = (0..total).map(|i| 2 * i + 1).collect();

    // 300 SYNs in one write; nothing negotiated on any of them, so the
    // node's accept loop holds the first and the rest wait in its queue.
    let syns: Vec<(Header, &[u8])> =
        ids.iter().map(|&id| (Header::window_update(id, Flags::SYN, 0), &[][..])).collect();
    attacker.send_frames(&syns).await;
    let excess: Vec<u32> = ids[limit..].to_vec();
    let mut refused = Vec::new();
    let mut seen = Vec::new();
    while refused.len() < excess.len() {
        let (h, _) = attacker.next_frame().await.expect("connection closed during the stream flood");
        assert_ne!(h.ty, FrameType::GoAway, "go-away during the stream flood");
        if h.flags.contains(Flags::RST) {
            refused.push(h.stream_id);
        }
        seen.push(h);
    }
    assert_eq!(refused, excess, "exactly the streams past the limit are refused");
    let conn = node.conn_from(attacker.port()).await;
    assert_eq!(conn.num_streams(), limit);

    // The connection survives; once the attacker resets its streams, their
    // slots come back and a new stream works.
    attacker.ping(5).await;
    let rsts: Vec<(Header, &[u8])> =
        ids[..limit].iter().map(|&id| (Header::window_update(id, Flags::RST, 0), &[][..])).collect();
    attacker.send_frames(&rsts).await;
    within("node releases the reset streams", async {
        while conn.num_streams() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    attacker.echo(2 * total + 1, b"a slot is free again").await;
    assert!(!conn.is_closed());

    node.assert_still_serving(&client, busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_update_that_overflows() {
    let (node, client, busy) = setup().await;

    let mut attacker = Attacker::connect(&node).await;
    attacker
        .send_frames(&[
            (Header::window_update(1, Flags::SYN, 0), &[]),
            (Header::window_update(1, Flags::NONE, u32::MAX), &[]),
        ])
        .await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::WindowOverflow { stream_id: 1, window: 256 * 1024, delta: u32::MAX }
    );

    // Two updates that overflow only together.
    let mut attacker = Attacker::connect(&node).await;
    let delta = u32::MAX / 2;
    attacker
        .send_frames(&[
            (Header::window_update(3, Flags::SYN, delta), &[]),
            (Header::window_update(3, Flags::NONE, delta), &[]),
        ])
        .await;
    assert_eq!(
        expect_protocol_error(&node, &mut attacker).await,
        ProtocolError::WindowOverflow { stream_id: 3, window: 256 * 1024 + delta, delta }
    );

    node.assert_still_serving(&client, busy).await;
}
