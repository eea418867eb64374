//! The hostile-peer toolkit shared by `hostile.rs` and `hostile_more.rs`:
//! a raw-socket attacker that speaks multistream-select and a real Noise
//! handshake by hand (the sans-IO [`Handshake`]), then writes hand-made
//! yamux frames through the transport ciphers; plus the panic counter and
//! the log capture those tests assert on.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use peerswarm::identity::{Keypair, PeerId};
use peerswarm_proto::multistream::Message;
use peerswarm_proto::noise::{decode_frame_header, Handshake, RecvCipher, SendCipher, MAX_PLAINTEXT_LEN};
use peerswarm_proto::yamux::{Flags, FrameType, GoAwayCode, Header, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ECHO: &str = "/echo/1.0.0";
pub const NOISE: &str = "/noise";
pub const YAMUX: &str = "/yamux/1.0.0";
/// The bound on every single wait. The node's handshake and negotiation
/// timeouts stay at their 10 s defaults, so a close seen within this bound
/// is the node reacting to the attack, not a timeout.
pub const WAIT: Duration = Duration::from_secs(5);

/// The node an attacker connects to.
pub trait Target {
    /// Its TCP listen address.
    fn socket(&self) -> SocketAddr;
    /// Its peer ID, checked in the handshake.
    fn peer_id(&self) -> PeerId;
}

// ---------------------------------------------------------------------------
// Panics and logs

/// Panics raised outside the test files: in peerswarm, its dependencies or std on
/// their behalf. Tokio catches panics in spawned tasks, so without this hook
/// a panicking connection driver would go unnoticed.
static LIBRARY_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Everything peerswarm logs at debug level, for the handshake errors the
/// listener only reports in its log.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogCapture;

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a panic location is in this crate's tests (an assertion), not
/// in the library.
fn is_test_file(file: &str) -> bool {
    file.starts_with("tests/") || file.contains("peerswarm/tests/")
}

/// Installs the panic counter and the debug log capture (once per process).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| !is_test_file(l.file())) {
                LIBRARY_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("peerswarm=debug"))
            .with_ansi(false)
            .with_writer(|| LogCapture)
            .try_init();
    });
}

/// Forgets the logs captured so far (they are kept in memory).
pub fn clear_logs() {
    LOGS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

pub fn assert_no_library_panic() {
    assert_eq!(LIBRARY_PANICS.load(Ordering::SeqCst), 0, "peerswarm panicked (see stderr)");
}

/// Waits for the listener's `inbound upgrade failed` line for the connection
/// from `port`, and returns its error text.
pub async fn upgrade_failure_logged(port: u16) -> String {
    let needle = format!("remote_addr=/ip4/127.0.0.1/tcp/{port} ");
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let line = {
                let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
                String::from_utf8_lossy(&logs)
                    .lines()
                    .find(|l| l.contains("inbound upgrade failed") && l.contains(&needle))
                    .map(str::to_owned)
            };
            if let Some(line) = line {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `inbound upgrade failed` log line for port {port}"));
    let error = found.split(" error=").nth(1).expect("the line has an error field");
    error.to_owned()
}

pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.unwrap_or_else(|_| panic!("{what}: timed out after {WAIT:?}"))
}

// ---------------------------------------------------------------------------
// Raw TCP

pub async fn read_some<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut Vec<u8>,
    what: &str,
) -> std::io::Result<usize> {
    within(what, io.read_buf(buf)).await
}

/// Reads (and drops) until the node closes the socket: EOF or reset.
pub async fn expect_closed(tcp: &mut TcpStream) {
    let mut sink = Vec::new();
    loop {
        match read_some(tcp, &mut sink, "node closes the connection").await {
            Ok(0) | Err(_) => return,
            Ok(_) => sink.clear(),
        }
    }
}

/// Reads one multistream message, keeping what follows in `buf`.
pub async fn read_ms_message(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Message {
    loop {
        if let Some((message, used)) = Message::decode(buf).expect("node sends valid multistream") {
            buf.drain(..used);
            return message;
        }
        let n = read_some(tcp, buf, "multistream message").await.expect("read");
        assert_ne!(n, 0, "EOF during multistream negotiation");
    }
}

pub fn ms(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        m.encode(&mut out);
    }
    out
}

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Connects, proposes `/noise` with message 1 pipelined behind it, and
/// checks the node's answer. Returns the socket and what was read past it.
pub async fn open_noise(node: &impl Target, msg1: &[u8]) -> (TcpStream, Vec<u8>) {
    let tcp = within("connect", TcpStream::connect(node.socket())).await.expect("connect");
    open_noise_on(tcp, msg1).await
}

/// [`open_noise`] on a socket already connected to the node.
pub async fn open_noise_on(mut tcp: TcpStream, msg1: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut out = ms(&[Message::Header, Message::Protocol(NOISE.into())]);
    out.extend_from_slice(msg1);
    tcp.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_ms_message(&mut tcp, &mut buf).await, Message::Header);
    assert_eq!(read_ms_message(&mut tcp, &mut buf).await, Message::Protocol(NOISE.into()));
    (tcp, buf)
}

/// Reads one length-prefixed Noise frame (header included) from `buf`/`tcp`.
pub async fn read_noise_frame(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(len) = decode_frame_header(buf) {
            if buf.len() >= 2 + len {
                return buf.drain(..2 + len).collect();
            }
        }
        let n = read_some(tcp, buf, "noise frame").await.expect("read");
        assert_ne!(n, 0, "EOF during the noise handshake");
    }
}

/// Runs the handshake up to (not including) sending message 3. The node's
/// message 2 has been checked; message 3 is queued in the returned state.
pub async fn handshake_until_msg3(node: &impl Target) -> (TcpStream, Handshake, Vec<u8>) {
    let tcp = within("connect", TcpStream::connect(node.socket())).await.expect("connect");
    handshake_until_msg3_on(node, tcp).await
}

/// [`handshake_until_msg3`] on a socket already connected to the node.
pub async fn handshake_until_msg3_on(node: &impl Target, tcp: TcpStream) -> (TcpStream, Handshake, Vec<u8>) {
    let identity = Keypair::generate_ed25519();
    let mut hs = Handshake::initiator(&identity, Some(node.peer_id()), &[YAMUX.to_owned()]).unwrap();
    let msg1 = hs.poll_transmit().unwrap();
    let (mut tcp, mut buf) = open_noise_on(tcp, &msg1).await;
    let msg2 = read_noise_frame(&mut tcp, &mut buf).await;
    assert_eq!(hs.handle_input(&msg2), Ok(msg2.len()));
    (tcp, hs, buf)
}

// ---------------------------------------------------------------------------
// The attacker past the handshake

/// A hand-driven Noise channel carrying hand-made yamux frames.
pub struct Attacker {
    pub tcp: TcpStream,
    pub send: SendCipher,
    pub recv: RecvCipher,
    /// Ciphertext read; decrypted up to `cipher_pos`.
    cipher_in: Vec<u8>,
    cipher_pos: usize,
    /// Plaintext (yamux bytes) decrypted; parsed up to `plain_pos`. (Cursors
    /// rather than draining, so that reading a flood of small frames stays
    /// linear.)
    plain_in: Vec<u8>,
    plain_pos: usize,
}

impl Attacker {
    /// A real handshake with yamux agreed inside it; the node has answered
    /// a ping, so it holds the connection.
    pub async fn connect(node: &impl Target) -> Attacker {
        let mut attacker = Attacker::handshake(node).await;
        attacker.ping(0x5eed).await;
        attacker
    }

    /// The handshake only: message 3 sent, nothing read after it (frames the
    /// node sends first, such as its own streams' SYNs, are still unread).
    pub async fn handshake(node: &impl Target) -> Attacker {
        let tcp = within("connect", TcpStream::connect(node.socket())).await.expect("connect");
        Attacker::handshake_on(node, tcp).await
    }

    /// [`connect`](Self::connect) from a socket whose kernel send and
    /// receive buffers are fixed at `bytes` (no auto-tuning), so that a
    /// flood the attacker does not read back-pressures the node quickly.
    pub async fn connect_with_buffers(node: &impl Target, bytes: u32) -> Attacker {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.set_send_buffer_size(bytes).unwrap();
        let tcp = within("connect", socket.connect(node.socket())).await.expect("connect");
        let mut attacker = Attacker::handshake_on(node, tcp).await;
        attacker.ping(0x5eed).await;
        attacker
    }

    /// [`handshake`](Self::handshake) on a socket already connected to the node.
    pub async fn handshake_on(node: &impl Target, tcp: TcpStream) -> Attacker {
        let (mut tcp, mut hs, cipher_in) = handshake_until_msg3_on(node, tcp).await;
        let msg3 = hs.poll_transmit().unwrap();
        tcp.write_all(&msg3).await.unwrap();
        assert!(hs.is_finished());
        let established = hs.into_established().unwrap();
        assert_eq!(established.muxer.as_deref(), Some(YAMUX), "muxer agreed in the handshake");
        assert_eq!(established.remote_peer_id, node.peer_id());
        Attacker {
            tcp,
            send: established.send,
            recv: established.recv,
            cipher_in,
            cipher_pos: 0,
            plain_in: Vec::new(),
            plain_pos: 0,
        }
    }

    /// Encrypts `plain` (yamux bytes) into Noise frames, without sending.
    pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in plain.chunks(MAX_PLAINTEXT_LEN) {
            self.send.encrypt_frame(chunk, &mut out).unwrap();
        }
        out
    }

    pub fn port(&self) -> u16 {
        self.tcp.local_addr().unwrap().port()
    }

    /// Encrypts and sends `plain` (yamux bytes), in as few frames as fit.
    pub async fn send_plain(&mut self, plain: &[u8]) {
        let out = self.seal(plain);
        self.tcp.write_all(&out).await.expect("attacker write");
    }

    pub async fn send_frames(&mut self, frames: &[(Header, &[u8])]) {
        self.send_plain(&encode(frames)).await;
    }

    /// The next yamux frame from the node, or `None` once it closed the
    /// connection (EOF or reset).
    pub async fn next_frame(&mut self) -> Option<(Header, Vec<u8>)> {
        loop {
            let plain = &self.plain_in[self.plain_pos..];
            if plain.len() >= HEADER_LEN {
                let raw: [u8; HEADER_LEN] = plain[..HEADER_LEN].try_into().unwrap();
                let header = Header::decode(&raw).expect("the node sends valid yamux headers");
                let body = if header.ty == FrameType::Data { header.length as usize } else { 0 };
                if plain.len() >= HEADER_LEN + body {
                    let frame = plain[HEADER_LEN..HEADER_LEN + body].to_vec();
                    self.plain_pos += HEADER_LEN + body;
                    return Some((header, frame));
                }
            }
            let cipher = &self.cipher_in[self.cipher_pos..];
            if let Some(len) = decode_frame_header(cipher) {
                if cipher.len() >= 2 + len {
                    self.plain_in.drain(..self.plain_pos);
                    self.plain_pos = 0;
                    let frame = &self.cipher_in[self.cipher_pos + 2..self.cipher_pos + 2 + len];
                    self.recv.decrypt_frame(frame, &mut self.plain_in).expect("the node's frames decrypt");
                    self.cipher_pos += 2 + len;
                    continue;
                }
            }
            self.cipher_in.drain(..self.cipher_pos);
            self.cipher_pos = 0;
            match read_some(&mut self.tcp, &mut self.cipher_in, "frame from the node").await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads frames until `pred` matches one; panics if the node closes
    /// first. Returns the frames skipped.
    pub async fn until(&mut self, what: &str, mut pred: impl FnMut(&Header) -> bool) -> Vec<Header> {
        let mut skipped = Vec::new();
        loop {
            match self.next_frame().await {
                Some((h, _)) if pred(&h) => return skipped,
                Some((h, _)) => skipped.push(h),
                None => panic!("connection closed while waiting for {what}; frames seen: {skipped:?}"),
            }
        }
    }

    /// A yamux ping round-trip: the connection is alive.
    pub async fn ping(&mut self, opaque: u32) -> Vec<Header> {
        self.send_frames(&[(Header::ping(false, opaque), &[])]).await;
        self.until("ping reply", |h| {
            h.ty == FrameType::Ping && h.flags.contains(Flags::ACK) && h.length == opaque
        })
        .await
    }

    /// Reads to the end; asserts the node sent go-away(protocol error) and
    /// closed the connection.
    pub async fn expect_go_away_and_close(&mut self) {
        let mut seen = Vec::new();
        while let Some((h, _)) = self.next_frame().await {
            seen.push(h);
        }
        assert!(
            seen.iter().any(|h| h.ty == FrameType::GoAway && h.length == GoAwayCode::ProtocolError.to_u32()),
            "no go-away(protocol error) before close; frames: {seen:?}"
        );
    }

    /// Opens stream `id`, negotiates `/echo/1.0.0` and echoes `payload`,
    /// all by hand.
    pub async fn echo(&mut self, id: u32, payload: &[u8]) {
        let mut data = ms(&[Message::Header, Message::Protocol(ECHO.into())]);
        data.extend_from_slice(payload);
        self.send_frames(&[
            (Header::data(id, Flags::SYN, data.len() as u32), &data),
            (Header::data(id, Flags::FIN, 0), &[]),
        ])
        .await;
        let mut back = Vec::new();
        loop {
            let (h, body) = self.next_frame().await.expect("connection closed during the echo");
            if h.stream_id != id {
                continue;
            }
            assert!(!h.flags.contains(Flags::RST), "echo stream {id} was reset");
            back.extend_from_slice(&body);
            if h.flags.contains(Flags::FIN) {
                break;
            }
        }
        let (header, used) = Message::decode(&back).unwrap().unwrap();
        assert_eq!(header, Message::Header);
        back.drain(..used);
        let (echoed, used) = Message::decode(&back).unwrap().unwrap();
        assert_eq!(echoed, Message::Protocol(ECHO.into()));
        back.drain(..used);
        assert_eq!(back, payload);
    }
}

pub fn encode(frames: &[(Header, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, body) in frames {
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(body);
    }
    out
}

pub fn is_rst(h: &Header, id: u32) -> bool {
    h.stream_id == id && h.flags.contains(Flags::RST)
}
