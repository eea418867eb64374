//! yamux: a session fed arbitrary frame sequences, split anywhere,
//! interleaved with arbitrary local operations.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use peerswarm_proto::yamux::{Config, Event, Flags, FrameType, Header, Role, Session, HEADER_LEN};

/// The session's cap on queued control frames (`CTRL_LIMIT`, private):
/// input processing pauses at this many.
const CTRL_LIMIT: usize = 4096;

/// Configuration knobs, mapped onto their valid ranges.
#[derive(Arbitrary, Debug)]
pub struct Knobs {
    max_streams: Option<u8>,
    /// Extra initial window above 256 KiB, in KiB.
    initial_extra_kib: Option<u8>,
    /// Extra per-stream window cap above the initial window, in KiB.
    max_window_extra_kib: Option<u16>,
    /// Extra connection budget above the initial window, in KiB.
    budget_extra_kib: Option<u16>,
    split_send_size: Option<u16>,
    send_buffer_size: Option<u16>,
    /// Keep-alive interval and timeout, in ms (each at least 1).
    keepalive: Option<(u16, u16)>,
    rtt_probe: bool,
}

impl Knobs {
    fn config(&self) -> Config {
        let mut c = Config::default();
        if let Some(n) = self.max_streams {
            c.set_max_streams(usize::from(n).max(1)).expect("in range");
        }
        if let Some(kib) = self.max_window_extra_kib {
            c.set_max_stream_window(256 * 1024 + u32::from(kib) * 1024).expect("in range");
        }
        if let Some(kib) = self.initial_extra_kib {
            let want = 256 * 1024 + u32::from(kib) * 1024;
            let _ = c.set_initial_window(want.min(c.max_stream_window()));
        }
        if let Some(kib) = self.budget_extra_kib {
            c.set_connection_window_budget(u64::from(c.initial_window()) + u64::from(kib) * 1024)
                .expect("in range");
        }
        if let Some(n) = self.split_send_size {
            c.set_split_send_size(usize::from(n).max(1)).expect("in range");
        }
        if let Some(n) = self.send_buffer_size {
            c.set_send_buffer_size(usize::from(n).max(HEADER_LEN + 1)).expect("in range");
        }
        if let Some((interval, timeout)) = self.keepalive {
            let ms = |v: u16| Duration::from_millis(u64::from(v.max(1)));
            c.set_keepalive(Some((ms(interval), ms(timeout)))).expect("non-zero");
        }
        c.set_rtt_probe(self.rtt_probe);
        c
    }
}

/// A stream id: one the session knows about (by index), or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Id {
    /// The `n % known`-th stream opened by either side (0 if none).
    Known(u8),
    /// A small id, likely to collide with real ones.
    Small(u8),
    /// Any id.
    Any(u32),
}

/// One step.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// Raw bytes from the peer.
    Bytes(Vec<u8>),
    /// A well-formed frame from the peer (`ty % 4`, payload of
    /// `payload_len` zero bytes for data frames; otherwise `length`).
    Frame {
        /// Frame type, mod 4.
        ty: u8,
        /// Flags; unknown bits included.
        flags: u16,
        /// Stream.
        id: Id,
        /// Length field (non-data frames).
        length: u32,
        /// Payload length (data frames).
        payload_len: u16,
    },
    /// Hand `n` of the bytes received so far to the session (arbitrary
    /// split points).
    Feed(u16),
    /// `open_stream`.
    Open,
    /// `write` of `len` bytes.
    Write(Id, u16),
    /// `read` into a `len`-byte buffer.
    Read(Id, u16),
    /// `read_chunk` of at most `max` bytes.
    ReadChunk(Id, u16),
    /// `close_write`.
    CloseWrite(Id),
    /// `reset`.
    Reset(Id),
    /// `release`.
    Release(Id),
    /// `close` (go-away).
    Close,
    /// End of file.
    Eof,
    /// Advance the clock by `ms` and call `handle_timeout`.
    Advance(u16),
    /// Call `handle_timeout` at `poll_timeout`.
    Timeout,
    /// Drain `poll_transmit`.
    Transmit,
    /// Drain `poll_event`.
    Events,
    /// `seed_rtt` with `ms` (a handshake's round trip; any value, however
    /// wrong, must only change how boldly windows grow).
    SeedRtt(u16),
}

/// The session and the script.
#[derive(Arbitrary, Debug)]
pub struct YamuxInput {
    /// Client (odd ids) or server (even ids).
    pub client: bool,
    /// Configuration.
    pub knobs: Knobs,
    /// The script.
    pub ops: Vec<Op>,
}

struct Harness {
    session: Session,
    config: Config,
    now: Instant,
    /// Received from the peer, not yet handed to the session.
    wire: Vec<u8>,
    /// Handed to the session, not yet consumed.
    rx: BytesMut,
    known: Vec<u32>,
    closed_event: bool,
    /// Local operations since the last transmit drain (each may queue a
    /// frame outside the send buffer's accounting).
    local_ops: usize,
}

impl Harness {
    fn id(&self, id: Id) -> u32 {
        match id {
            Id::Known(n) => self.known.get(usize::from(n) % self.known.len().max(1)).copied().unwrap_or(0),
            Id::Small(n) => u32::from(n),
            Id::Any(n) => n,
        }
    }

    fn feed(&mut self, n: usize) {
        let n = n.min(self.wire.len());
        self.rx.extend_from_slice(&self.wire[..n]);
        self.wire.drain(..n);
        let before = self.rx.len();
        self.session.handle_input(&mut self.rx, self.now);
        assert!(self.rx.len() <= before);
        if !self.session.is_closed() && self.session.queued_transmit() < CTRL_LIMIT * HEADER_LEN {
            // Not held back by queued control frames: only a partial
            // header may remain.
            assert!(self.rx.len() < HEADER_LEN, "{} bytes left unconsumed", self.rx.len());
        }
    }

    fn transmit(&mut self) {
        let mut out = Vec::new();
        loop {
            let before = out.len();
            self.session.poll_transmit(&mut out);
            if out.len() == before {
                break;
            }
        }
        check_frames(&out);
        assert_eq!(self.session.queued_transmit(), 0);
        self.local_ops = 0;
    }

    fn events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed_event, "event {event:?} after Closed");
            match event {
                // The stream may already be gone (reset before this drain).
                Event::InboundStream(id) => self.known.push(id),
                Event::Closed(_) => {
                    assert!(self.session.is_closed());
                    self.closed_event = true;
                }
                _ => {}
            }
        }
    }

    /// Bounds that hold after every step.
    fn check(&self) {
        let s = &self.session;
        let c = &self.config;
        assert!(s.ack_backlog() <= 256);
        for &id in &self.known {
            if let (Some(buffered), Some(window)) = (s.buffered(id), s.receive_window(id)) {
                assert!(buffered <= window, "stream {id}: {buffered} bytes buffered, window {window}");
                assert!(window <= c.max_stream_window().max(c.initial_window()));
            }
        }
        // Growth stays within the budget; initial windows are unconditional.
        let streams = s.num_streams() as u64;
        assert!(
            s.connection_window() <= c.connection_window_budget() + streams * u64::from(c.initial_window()),
            "connection window {} with {streams} streams",
            s.connection_window()
        );
        // The send buffer may be overshot only by the headers of one write
        // and by frames queued by local operations and control frames.
        let write_headers = (c.send_buffer_size().div_ceil(c.split_send_size()) + 1) * HEADER_LEN;
        let limit = c.send_buffer_size() + write_headers + (CTRL_LIMIT + 4 + 3 * self.local_ops) * HEADER_LEN;
        assert!(s.queued_transmit() <= limit, "{} bytes queued, limit {limit}", s.queued_transmit());
        if s.is_closed() {
            assert!(!s.can_open());
            assert_eq!(s.poll_timeout(), None);
        }
    }
}

/// Everything we send parses as yamux frames.
fn check_frames(mut out: &[u8]) {
    while !out.is_empty() {
        let raw: &[u8; HEADER_LEN] = out[..HEADER_LEN].try_into().expect("whole header");
        let header = Header::decode(raw).expect("we send valid headers");
        out = &out[HEADER_LEN..];
        if header.ty == FrameType::Data {
            let len = header.length as usize;
            assert!(len <= out.len(), "data frame cut");
            out = &out[len..];
        }
    }
}

/// A session fed `input.ops`: never panics, and the bounds in
/// `Harness::check` hold after every step.
pub fn yamux_session(input: YamuxInput) {
    let config = input.knobs.config();
    let role = if input.client { Role::Client } else { Role::Server };
    let now = Instant::now();
    let mut h = Harness {
        session: Session::new(role, config.clone(), now),
        config,
        now,
        wire: Vec::new(),
        rx: BytesMut::new(),
        known: Vec::new(),
        closed_event: false,
        local_ops: 0,
    };
    let mut buf = vec![0u8; 1 << 16];
    for op in input.ops {
        match op {
            Op::Bytes(bytes) => {
                h.wire.extend_from_slice(&bytes);
                h.feed(usize::MAX);
            }
            Op::Frame { ty, flags, id, length, payload_len } => {
                let ty = FrameType::from_u8(ty % 4).expect("0..4 are types");
                let length = if ty == FrameType::Data { u32::from(payload_len) } else { length };
                let header = Header { ty, flags: Flags::from_bits(flags), stream_id: h.id(id), length };
                h.wire.extend_from_slice(&header.encode());
                if ty == FrameType::Data {
                    h.wire.resize(h.wire.len() + usize::from(payload_len), 0xab);
                }
                h.feed(usize::MAX);
            }
            Op::Feed(n) => h.feed(usize::from(n)),
            Op::Open => {
                if let Ok(id) = h.session.open_stream() {
                    assert_eq!(h.session.buffered(id), Some(0));
                    assert_eq!(id % 2 == 1, input.client, "stream id parity");
                    h.known.push(id);
                }
            }
            Op::Write(id, len) => {
                let id = h.id(id);
                let window = h.session.send_window(id);
                let data = &buf[..usize::from(len)];
                if let Ok(n) = h.session.write(id, data) {
                    assert!(n <= data.len());
                    assert!(n as u64 <= u64::from(window.expect("write to a known stream")));
                }
                h.local_ops += 1;
            }
            Op::Read(id, len) => {
                let id = h.id(id);
                let before = h.session.buffered(id);
                let len = usize::from(len);
                if let Ok(Some(n)) = h.session.read(id, &mut buf[..len], h.now) {
                    assert!(n <= len);
                    assert!(n as u64 <= u64::from(before.expect("read from a known stream")));
                }
                h.local_ops += 1;
            }
            Op::ReadChunk(id, max) => {
                let id = h.id(id);
                if let Ok(Some(chunk)) = h.session.read_chunk(id, usize::from(max), h.now) {
                    assert!(chunk.len() <= usize::from(max));
                }
                h.local_ops += 1;
            }
            Op::CloseWrite(id) => {
                let _ = h.session.close_write(h.id(id));
                h.local_ops += 1;
            }
            Op::Reset(id) => {
                let id = h.id(id);
                if h.session.reset(id).is_ok() {
                    assert_eq!(h.session.buffered(id), None);
                }
                h.local_ops += 1;
            }
            Op::Release(id) => {
                h.session.release(h.id(id));
                h.local_ops += 1;
            }
            Op::Close => {
                h.session.close();
                assert!(h.session.is_closed());
                h.local_ops += 1;
            }
            Op::Eof => {
                h.session.handle_eof(h.now);
                assert!(h.session.is_closed());
            }
            Op::Advance(ms) => {
                h.now += Duration::from_millis(u64::from(ms));
                h.session.handle_timeout(h.now);
            }
            Op::Timeout => {
                if let Some(at) = h.session.poll_timeout() {
                    h.now = h.now.max(at);
                    h.session.handle_timeout(h.now);
                }
            }
            Op::Transmit => h.transmit(),
            Op::Events => h.events(),
            Op::SeedRtt(ms) => h.session.seed_rtt(Duration::from_millis(u64::from(ms))),
        }
        h.check();
    }
    h.feed(usize::MAX);
    h.check();
    h.transmit();
    h.events();
}
