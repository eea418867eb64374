//! The sans-IO yamux session state machine.

use std::cmp::{max, min};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::budget::BufferBudget;
use super::config::{Config, Role};
use super::frame::{Flags, FrameError, FrameType, GoAwayCode, Header, HEADER_LEN};
use super::{ACK_BACKLOG, INITIAL_WINDOW};

/// Payload chunks at least this long are handed to streams as slices of the
/// caller's input buffer (no copy); shorter ones are copied so that a small
/// chunk cannot pin a large read buffer. With a 64 KiB read buffer, retained
/// memory is at most 4× the buffered bytes and ~1× for bulk transfers.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// Input processing pauses while this many control frames (ping replies,
/// window updates, refusals) wait for [`Session::poll_transmit`]: a peer that
/// floods pings without reading our replies cannot grow our memory.
const CTRL_LIMIT: usize = 4096;

/// How long an RTT sample is trusted before window tuning asks for another.
const RTT_REFRESH: Duration = Duration::from_secs(10);

/// How long the smallest RTT sample stands for the path's round trip (see
/// `Session::tuning_rtt`) before a larger, newer sample replaces it.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(30);

/// How long a stream the application released after its FIN waits, silent,
/// for the peer's FIN before it is reset and forgotten.
const LINGER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer violated the protocol; we sent go-away(protocol error).
    #[error("yamux protocol violation by the peer: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer terminated the session with a go-away error code.
    #[error("peer sent go-away: {0}")]
    GoAway(GoAwayCode),
    /// Keep-alive ping went unanswered (nothing received within the timeout).
    #[error("keep-alive timeout")]
    KeepAliveTimeout,
    /// [`Session::close`] was called.
    #[error("session closed locally")]
    LocallyClosed,
    /// The underlying connection reached end of file
    /// ([`Session::handle_eof`]).
    #[error("connection closed by the peer")]
    RemoteClosed,
}

/// A protocol violation by the peer. Each closes the session with
/// go-away(protocol error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The 12-byte header did not decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A Data frame carried more bytes than the stream's receive window.
    #[error("stream {stream_id}: {len} data bytes exceed the window of {window}")]
    WindowExceeded {
        /// Stream.
        stream_id: u32,
        /// Payload length of the frame.
        len: u32,
        /// Remaining window when it arrived.
        window: u32,
    },
    /// A Window Update would push the send window past `u32::MAX`.
    #[error("stream {stream_id}: window update of {delta} overflows window {window}")]
    WindowOverflow {
        /// Stream.
        stream_id: u32,
        /// Send window before the update.
        window: u32,
        /// The delta received.
        delta: u32,
    },
    /// A SYN for stream id 0 or for an id of our parity.
    #[error("stream {stream_id}: invalid id for an inbound stream (zero or wrong parity)")]
    InvalidStreamId {
        /// The offending id.
        stream_id: u32,
    },
    /// A SYN for a stream that is still open.
    #[error("stream {stream_id}: SYN on an existing stream")]
    SynOnExistingStream {
        /// The offending id.
        stream_id: u32,
    },
}

/// Failure of a per-stream operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such stream (never opened, reset locally or released).
    #[error("unknown stream {0}")]
    UnknownStream(u32),
    /// The stream was reset (by the peer, or by us on a stream-level
    /// violation such as data after FIN).
    #[error("stream reset")]
    Reset,
    /// Write after [`Session::close_write`].
    #[error("stream write side closed")]
    WriteClosed,
    /// The session has ended (see [`Session::close_reason`]).
    #[error("connection closed")]
    ConnectionClosed,
    /// We reset the stream: a data frame did not fit the connection's or
    /// the node's budget for received-but-unread bytes
    /// ([`Config::set_connection_window_budget`], [`BufferBudget`]).
    #[error("stream reset: receive buffer limit reached")]
    BufferLimit,
    /// We reset the stream after [`Config::set_stream_idle_timeout`] passed
    /// without any activity on it.
    #[error("stream reset: idle timeout")]
    IdleTimeout,
}

/// Failure of [`Session::open_stream`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// 256 of our streams are not yet acknowledged; retry after input.
    #[error("ack backlog full")]
    AckBacklogFull,
    /// All stream ids of our parity are used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    /// The peer sent go-away: no new streams.
    #[error("peer sent go-away")]
    GoAway,
    /// The session has ended.
    #[error("connection closed")]
    Closed,
}

/// Something the application (or driver) should know; see
/// [`Session::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer opened a stream (already counted against the inbound limit).
    InboundStream(u32),
    /// Data or FIN arrived on a stream whose reader had been told "nothing
    /// yet" (or never read).
    StreamReadable(u32),
    /// A writer that was refused (send window or transmit queue full) may
    /// write again.
    StreamWritable(u32),
    /// The stream was reset; reads and writes now fail with
    /// [`StreamError::Reset`].
    StreamReset(u32),
    /// The peer sent go-away. With [`GoAwayCode::Normal`] existing streams
    /// carry on but no new ones may be opened; other codes are followed by
    /// [`Event::Closed`].
    GoAway(GoAwayCode),
    /// The session has ended. Last event.
    Closed(Error),
}

/// Where the decoder is in the input.
#[derive(Clone, Copy, Debug)]
enum Rx {
    Header,
    Payload { stream_id: u32, remaining: u32, deliver: bool, fin: bool },
}

#[derive(Debug)]
struct StreamState {
    outbound: bool,
    // --- send half ---
    /// Bytes the peer lets us send.
    send_window: u32,
    send_closed: bool,
    need_syn: bool,
    need_ack: bool,
    /// Outbound, not yet ACKed nor reset: counts towards the ACK backlog.
    in_backlog: bool,
    write_blocked: bool,
    tx_waiting: bool,
    // --- receive half ---
    remote_fin: bool,
    reset: bool,
    recv_buf: VecDeque<Bytes>,
    buffered: u32,
    /// Bytes the peer may still send (granted and unused).
    recv_window: u32,
    /// Target window: `recv_window + buffered + uncredited == window_max`.
    window_max: u32,
    /// Whether `window_max` is counted in `Session::window_sum`.
    window_counted: bool,
    last_update: Option<Instant>,
    /// The current burst of arrivals (frames no more than half an RTT
    /// apart): when its first bytes came, how many came after them, and
    /// when the last came; and the rate of the burst before it, in bytes
    /// and nanoseconds. Window tuning takes the rate as the rate data can
    /// arrive at (see `Session::maybe_update_window`).
    burst_start: Instant,
    burst_bytes: u64,
    last_arrival: Option<Instant>,
    previous_burst: Option<(u64, u128)>,
    readable_notified: bool,
    /// The application let go after sending FIN; the stream lingers until
    /// the remote finishes (then it is forgotten) or sends more data (then
    /// it is reset, as TCP answers data for a closed socket).
    released: bool,
    /// Why we reset the stream, when it was not the peer's RST.
    reset_cause: Option<StreamError>,
    /// Last frame received or read on the stream.
    last_active: Instant,
    /// Written to since the last idle check (writes take no clock).
    written: bool,
    idle_timeout: Option<Duration>,
}

impl StreamState {
    fn new(outbound: bool, window_max: u32, now: Instant, idle_timeout: Option<Duration>) -> StreamState {
        StreamState {
            outbound,
            send_window: INITIAL_WINDOW,
            send_closed: false,
            need_syn: outbound,
            need_ack: !outbound,
            in_backlog: outbound,
            write_blocked: false,
            tx_waiting: false,
            remote_fin: false,
            reset: false,
            recv_buf: VecDeque::new(),
            buffered: 0,
            recv_window: INITIAL_WINDOW,
            window_max,
            window_counted: true,
            last_update: None,
            burst_start: now,
            burst_bytes: 0,
            last_arrival: None,
            previous_burst: None,
            readable_notified: false,
            released: false,
            reset_cause: None,
            last_active: now,
            written: false,
            idle_timeout,
        }
    }

    /// Counts `len` bytes arriving at `now`; a silence of more than `gap`
    /// starts a new burst.
    fn note_arrival(&mut self, len: usize, now: Instant, gap: Duration) {
        match self.last_arrival {
            Some(last) if now.saturating_duration_since(last) <= gap => {
                self.burst_bytes = self.burst_bytes.saturating_add(len as u64);
            }
            last => {
                let span = last.map_or(0, |last| last.saturating_duration_since(self.burst_start).as_nanos());
                if span > 0 {
                    self.previous_burst = Some((self.burst_bytes, span));
                }
                // The first bytes of a burst took no measurable time to
                // arrive: only what follows them counts towards its rate.
                self.burst_start = now;
                self.burst_bytes = 0;
            }
        }
        self.last_arrival = Some(now);
    }

    /// The bandwidth-delay product the arrival rate implies: the current
    /// burst's, or, if it has only just begun, the one before it's. `None`
    /// while no burst has lasted long enough to have a rate.
    fn arrival_bdp(&self, rtt: Duration) -> Option<u128> {
        let span = self.last_arrival?.saturating_duration_since(self.burst_start).as_nanos();
        let (bytes, span) = if span > 0 { (self.burst_bytes, span) } else { self.previous_burst? };
        u128::from(bytes).saturating_mul(rtt.as_nanos()).checked_div(span)
    }

    /// The error reads and writes report once the stream is reset.
    fn reset_error(&self) -> StreamError {
        self.reset_cause.clone().unwrap_or(StreamError::Reset)
    }

    /// How long the stream may stay silent before we reset (or, released,
    /// forget) it.
    fn effective_idle_timeout(&self) -> Option<Duration> {
        if self.released {
            Some(self.idle_timeout.map_or(LINGER_TIMEOUT, |t| t.min(LINGER_TIMEOUT)))
        } else {
            self.idle_timeout
        }
    }

    /// SYN/ACK to attach to the first frame we send on this stream.
    fn take_open_flags(&mut self) -> Flags {
        let mut flags = Flags::NONE;
        if self.need_syn {
            flags = flags | Flags::SYN;
            self.need_syn = false;
        }
        if self.need_ack {
            flags = flags | Flags::ACK;
            self.need_ack = false;
        }
        flags
    }
}

/// A yamux session: one multiplexed connection, without any I/O.
///
/// # Call protocol
///
/// * Feed every byte read from the connection to [`handle_input`] (any
///   split is fine; unconsumed bytes — a partial header, or input held back
///   while control frames are queued — stay in the buffer for the next call),
///   and end of file to [`handle_eof`].
/// * After any call, drain [`poll_transmit`] until it appends nothing, write
///   the bytes in order, and drain [`poll_event`].
/// * Call [`handle_timeout`] when [`poll_timeout`] passes.
/// * Application commands: [`open_stream`], [`write`], [`read`],
///   [`close_write`], [`reset`], [`release`], [`close`]. Every stream must
///   eventually be [`release`]d (or [`reset`]); until then the session keeps
///   its (small, buffer-free once finished) state so reads keep reporting EOF
///   or reset.
///
/// Time only enters through `now` arguments (reads take one because credit is
/// returned, and windows tuned, when the application reads).
///
/// # Flow control
///
/// Each stream's receive window starts at 256 KiB. Credit is returned on
/// [`read`] (so a slow reader back-pressures the sender), with a window update
/// once a quarter of the window has been consumed. The rate at which that
/// quarter was consumed, capped by the rate the stream's data has been
/// arriving at, times the RTT, estimates the bandwidth-delay product; when
/// it exceeds a quarter of the window, the window — not the link — may be
/// what limits throughput, and the window grows to twice the estimate (at
/// least double), up to [`Config::set_max_stream_window`] and
/// within [`Config::set_connection_window_budget`] across all streams. A
/// transfer thus opens its window within about one round trip of the first
/// data, and a window settles between 4/3× and 4× the bandwidth-delay
/// product. Windows do not grow while the reader holds more than an eighth
/// of the window unread: then the reader, not the window, is the limit, and
/// on a fast local link a larger window would only let tens of MiB pile up
/// out of the CPU caches. Growth pauses while the node's [`BufferBudget`] is more than half
/// used. The RTT comes from yamux pings: our side queues ping replies
/// ahead of data, so the sample is the path RTT rather than the time the
/// peer's application takes to write (which the alternative — timing a window
/// update until the data it unlocks — would mix in, and which only exists
/// while the window is already the bottleneck). Tuning takes the smallest
/// sample of the last 30 s, since a reply still waits behind what the
/// peer's socket buffers hold. The arrival-rate cap and the smallest sample
/// keep a fast local link's windows near its small bandwidth-delay product
/// (a few MiB on loopback, where a reader catching up on buffered frames
/// and replies queued behind MiBs would otherwise grow them to the cap).
///
/// [`handle_input`]: Session::handle_input
/// [`handle_eof`]: Session::handle_eof
/// [`poll_transmit`]: Session::poll_transmit
/// [`poll_event`]: Session::poll_event
/// [`handle_timeout`]: Session::handle_timeout
/// [`poll_timeout`]: Session::poll_timeout
/// [`open_stream`]: Session::open_stream
/// [`write`]: Session::write
/// [`read`]: Session::read
/// [`close_write`]: Session::close_write
/// [`reset`]: Session::reset
/// [`release`]: Session::release
/// [`close`]: Session::close
pub struct Session {
    role: Role,
    config: Config,
    closed: Option<Error>,
    streams: HashMap<u32, StreamState>,
    next_outbound_id: u64,
    inbound_count: usize,
    unacked_outbound: usize,
    remote_goaway: Option<GoAwayCode>,
    rx: Rx,
    /// Payload-free frames sent ahead of data.
    ctrl: VecDeque<Header>,
    /// Encoded data frames, FIN, local RST and normal go-away, in order.
    tx: Vec<u8>,
    tx_waiters: Vec<u32>,
    pending_syn: Vec<u32>,
    events: VecDeque<Event>,
    window_sum: u64,
    now: Instant,
    last_input: Instant,
    rtt: Option<Duration>,
    rtt_measured_at: Option<Instant>,
    /// The smallest RTT sample (seed or ping) of the last `MIN_RTT_WINDOW`,
    /// and when it was taken.
    min_rtt: Option<(Duration, Instant)>,
    want_rtt_ping: bool,
    ping_out: Option<(u32, Instant)>,
    next_ping_nonce: u32,
    next_keepalive: Option<Instant>,
    /// Received data bytes not yet read, plus the rest of the data frame
    /// being received: what this session holds of the connection budget and
    /// of the node's [`BufferBudget`].
    buffered_total: u64,
    next_idle_check: Option<Instant>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("closed", &self.closed)
            .field("streams", &self.streams.len())
            .field("unacked_outbound", &self.unacked_outbound)
            .field("queued_tx", &self.tx.len())
            .field("rtt", &self.rtt)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session. `now` starts the keep-alive clock; an RTT probe ping
    /// is queued if [`Config::set_rtt_probe`] is on.
    pub fn new(role: Role, config: Config, now: Instant) -> Session {
        let next_keepalive = config.keepalive.map(|(interval, _)| now + interval);
        Session {
            role,
            want_rtt_ping: config.rtt_probe,
            config,
            closed: None,
            streams: HashMap::new(),
            next_outbound_id: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            inbound_count: 0,
            unacked_outbound: 0,
            remote_goaway: None,
            rx: Rx::Header,
            ctrl: VecDeque::new(),
            tx: Vec::new(),
            tx_waiters: Vec::new(),
            pending_syn: Vec::new(),
            events: VecDeque::new(),
            window_sum: 0,
            now,
            last_input: now,
            rtt: None,
            rtt_measured_at: None,
            min_rtt: None,
            ping_out: None,
            next_ping_nonce: 0,
            next_keepalive,
            buffered_total: 0,
            next_idle_check: None,
        }
    }

    // ------------------------------------------------------------------
    // getters

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Streams currently known (open, half-closed, or finished but not yet
    /// released).
    pub fn num_streams(&self) -> usize {
        self.streams.len()
    }

    /// Our streams not yet acknowledged by the peer (at most 256).
    pub fn ack_backlog(&self) -> usize {
        self.unacked_outbound
    }

    /// Whether [`Session::open_stream`] would succeed now.
    pub fn can_open(&self) -> bool {
        self.closed.is_none()
            && self.remote_goaway.is_none()
            && self.unacked_outbound < ACK_BACKLOG
            && self.next_outbound_id <= u64::from(u32::MAX)
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Why the session ended, if it has.
    pub fn close_reason(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    /// The latest RTT sample from a yamux ping, or the estimate given to
    /// [`Session::seed_rtt`] until a ping has measured one.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Takes `rtt`, measured outside the session (the security handshake's
    /// last round trip), as the round-trip estimate for window tuning, and
    /// drops the probe ping of the session start if it has not gone out:
    /// a connection that is set up, used for a request or two and closed
    /// then sends no probe of its own (a ping out, an answer back). The first window
    /// update still sends a ping, so a transfer soon tunes on a measured
    /// sample. Ignored once a ping has measured the RTT, and when the probe
    /// is off ([`Config::set_rtt_probe`]: no tuning at all).
    pub fn seed_rtt(&mut self, rtt: Duration) {
        if self.rtt_measured_at.is_some() || !self.config.rtt_probe {
            return;
        }
        self.rtt = Some(rtt);
        self.note_rtt_sample(rtt);
        self.want_rtt_ping = false;
    }

    /// The round trip window tuning works with: the smallest sample of the
    /// last 30 s. A ping's answer waits behind whatever the peer already
    /// queued in its socket buffers, so while a transfer fills them (MiBs on
    /// a fast local link) samples measure that queue, not the path; taken
    /// as the RTT, they would grow windows, which lets more queue up, which
    /// inflates the next sample (BBR keeps its minimum RTT for the same
    /// reason). A path that really slowed down is believed within 30 s.
    fn tuning_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|(rtt, _)| rtt)
    }

    fn note_rtt_sample(&mut self, rtt: Duration) {
        let now = self.now;
        let replace = match self.min_rtt {
            None => true,
            Some((min, at)) => rtt <= min || now.saturating_duration_since(at) > MIN_RTT_WINDOW,
        };
        if replace {
            self.min_rtt = Some((rtt, now));
        }
    }

    /// The peer's go-away code, if it sent one.
    pub fn remote_go_away(&self) -> Option<GoAwayCode> {
        self.remote_goaway
    }

    /// Bytes we may still send on `id`.
    pub fn send_window(&self, id: u32) -> Option<u32> {
        self.streams.get(&id).map(|s| s.send_window)
    }

    /// The current target receive window of `id` (grown by auto-tuning).
    pub fn receive_window(&self, id: u32) -> Option<u32> {
        self.streams.get(&id).map(|s| s.window_max)
    }

    /// Bytes received on `id` and not yet read.
    pub fn buffered(&self, id: u32) -> Option<u32> {
        self.streams.get(&id).map(|s| s.buffered)
    }

    /// Sum of all streams' receive windows (bounded by the budget, except
    /// for the initial 256 KiB each).
    pub fn connection_window(&self) -> u64 {
        self.window_sum
    }

    /// Bytes received on all streams and not yet read (plus the rest of a
    /// data frame being received).
    pub fn buffered_total(&self) -> u64 {
        self.buffered_total
    }

    /// Whether [`Session::poll_transmit`] has something to append.
    pub fn has_transmit(&self) -> bool {
        !self.ctrl.is_empty()
            || !self.tx.is_empty()
            || !self.pending_syn.is_empty()
            || (self.want_rtt_ping && self.ping_out.is_none() && self.closed.is_none())
    }

    /// Bytes queued in the transmit buffer.
    pub fn queued_transmit(&self) -> usize {
        self.tx.len() + self.ctrl.len() * HEADER_LEN
    }

    // ------------------------------------------------------------------
    // application commands

    /// Opens a stream and returns its id. Nothing waits for the peer: data
    /// may be written at once (the SYN goes out with the first frame, or as
    /// a window update at the next [`Session::poll_transmit`]).
    ///
    /// # Errors
    ///
    /// [`OpenError::AckBacklogFull`] while 256 of our streams are
    /// unacknowledged (the spec's ACK backlog); retry after more input.
    pub fn open_stream(&mut self) -> Result<u32, OpenError> {
        if self.closed.is_some() {
            return Err(OpenError::Closed);
        }
        if self.remote_goaway.is_some() {
            return Err(OpenError::GoAway);
        }
        if self.unacked_outbound >= ACK_BACKLOG {
            return Err(OpenError::AckBacklogFull);
        }
        let Ok(id) = u32::try_from(self.next_outbound_id) else {
            return Err(OpenError::StreamIdsExhausted);
        };
        self.next_outbound_id += 2;
        self.unacked_outbound += 1;
        self.window_sum += u64::from(self.config.initial_window);
        let idle = self.config.stream_idle_timeout;
        self.streams.insert(id, StreamState::new(true, self.config.initial_window, self.now, idle));
        if let Some(t) = idle {
            self.schedule_idle_check(t);
        }
        self.pending_syn.push(id);
        Ok(id)
    }

    /// Queues up to `data.len()` bytes on stream `id` and returns how many
    /// were accepted: bounded by the peer's window for the stream and by the
    /// transmit queue ([`Config::set_send_buffer_size`]). `Ok(0)` for a
    /// non-empty `data` means "blocked": an [`Event::StreamWritable`] follows
    /// once the stream may write again.
    ///
    /// # Errors
    ///
    /// Unknown or reset stream, write side closed, session closed.
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize, StreamError> {
        if self.closed.is_some() {
            return Err(StreamError::ConnectionClosed);
        }
        let s = self.streams.get_mut(&id).ok_or(StreamError::UnknownStream(id))?;
        if s.reset {
            return Err(s.reset_error());
        }
        if s.send_closed {
            return Err(StreamError::WriteClosed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        s.written = true;
        let space = self.config.send_buffer_size.saturating_sub(self.tx.len());
        let n = min(min(data.len(), s.send_window as usize), space);
        if n == 0 {
            s.write_blocked = true;
            if space == 0 && !s.tx_waiting {
                s.tx_waiting = true;
                self.tx_waiters.push(id);
            }
            return Ok(0);
        }
        let frames = n.div_ceil(self.config.split_send_size);
        self.tx.reserve(n + frames * HEADER_LEN);
        for chunk in data[..n].chunks(self.config.split_send_size) {
            let flags = s.take_open_flags();
            // chunk.len() <= split_send_size <= 16 MiB fits in u32
            let header = Header::data(id, flags, chunk.len() as u32);
            self.tx.extend_from_slice(&header.encode());
            self.tx.extend_from_slice(chunk);
        }
        // n <= send_window, a u32
        s.send_window -= n as u32;
        Ok(n)
    }

    /// Copies received bytes of stream `id` into `buf`.
    ///
    /// Returns `Ok(Some(n))` with `n > 0` for data, `Ok(Some(0))` at end of
    /// stream (the peer's FIN, all data read) or for an empty `buf`, and
    /// `Ok(None)` when nothing is available yet — an
    /// [`Event::StreamReadable`] follows when that changes.
    ///
    /// Reading returns window credit to the peer (see the type docs).
    ///
    /// # Errors
    ///
    /// Unknown or reset stream; [`StreamError::ConnectionClosed`] once the
    /// buffered data is exhausted on an ended session without FIN.
    pub fn read(&mut self, id: u32, buf: &mut [u8], now: Instant) -> Result<Option<usize>, StreamError> {
        let closed = self.closed.is_some();
        let s = self.streams.get_mut(&id).ok_or(StreamError::UnknownStream(id))?;
        if s.reset {
            return Err(s.reset_error());
        }
        if buf.is_empty() {
            return Ok(Some(0));
        }
        s.last_active = now;
        if s.recv_buf.is_empty() {
            if s.remote_fin {
                return Ok(Some(0));
            }
            if closed {
                return Err(StreamError::ConnectionClosed);
            }
            s.readable_notified = false;
            return Ok(None);
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(front) = s.recv_buf.front_mut() else {
                break;
            };
            let k = min(front.len(), buf.len() - n);
            buf[n..n + k].copy_from_slice(&front[..k]);
            front.advance(k);
            if front.is_empty() {
                s.recv_buf.pop_front();
            }
            n += k;
        }
        if s.recv_buf.is_empty() && s.recv_buf.capacity() > 32 {
            s.recv_buf = VecDeque::new();
        }
        // n <= buffered, a u32
        s.buffered -= n as u32;
        self.unaccount(n as u64);
        self.maybe_update_window(id, now);
        Ok(Some(n))
    }

    /// Like [`Session::read`] but hands out up to `max` bytes as a [`Bytes`]
    /// without copying (when the chunk arrived in one piece). An empty
    /// `Bytes` means end of stream.
    ///
    /// # Errors
    ///
    /// As [`Session::read`].
    pub fn read_chunk(&mut self, id: u32, max: usize, now: Instant) -> Result<Option<Bytes>, StreamError> {
        let closed = self.closed.is_some();
        let s = self.streams.get_mut(&id).ok_or(StreamError::UnknownStream(id))?;
        if s.reset {
            return Err(s.reset_error());
        }
        s.last_active = now;
        let Some(front) = s.recv_buf.front_mut() else {
            if s.remote_fin || max == 0 {
                return Ok(Some(Bytes::new()));
            }
            if closed {
                return Err(StreamError::ConnectionClosed);
            }
            s.readable_notified = false;
            return Ok(None);
        };
        let chunk =
            if front.len() <= max { s.recv_buf.pop_front().unwrap_or_default() } else { front.split_to(max) };
        s.buffered -= chunk.len() as u32;
        self.unaccount(chunk.len() as u64);
        self.maybe_update_window(id, now);
        Ok(Some(chunk))
    }

    /// Half-closes stream `id`: a FIN follows the data already written.
    /// Idempotent.
    ///
    /// # Errors
    ///
    /// Unknown or reset stream, session closed.
    pub fn close_write(&mut self, id: u32) -> Result<(), StreamError> {
        if self.closed.is_some() {
            return Err(StreamError::ConnectionClosed);
        }
        let s = self.streams.get_mut(&id).ok_or(StreamError::UnknownStream(id))?;
        if s.reset {
            return Err(s.reset_error());
        }
        if s.send_closed {
            return Ok(());
        }
        s.send_closed = true;
        s.written = true;
        let flags = s.take_open_flags() | Flags::FIN;
        self.tx.extend_from_slice(&Header::data(id, flags, 0).encode());
        Ok(())
    }

    /// Resets stream `id` (RST after the data already queued) and forgets it;
    /// unread data is dropped.
    ///
    /// # Errors
    ///
    /// [`StreamError::UnknownStream`].
    pub fn reset(&mut self, id: u32) -> Result<(), StreamError> {
        let s = self.streams.remove(&id).ok_or(StreamError::UnknownStream(id))?;
        // A stream whose SYN never left is unknown to the peer; a stream the
        // peer reset needs no answer.
        if !s.need_syn && !s.reset && self.closed.is_none() {
            self.tx.extend_from_slice(&Header::window_update(id, Flags::RST, 0).encode());
        }
        self.on_removed(&s);
        Ok(())
    }

    /// The application is done with stream `id` (its handle was dropped).
    ///
    /// * finished (both sides closed, or reset): forgotten silently;
    /// * the peer has half-closed but we have not: FIN, then forgotten
    ///   (everything written is delivered);
    /// * the peer may still send: RST, since nobody would read it.
    ///
    /// Unknown ids are ignored.
    pub fn release(&mut self, id: u32) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if self.closed.is_some() || s.reset || (s.send_closed && s.remote_fin) {
            if let Some(s) = self.streams.remove(&id) {
                self.on_removed(&s);
            }
        } else if s.remote_fin {
            let _ = self.close_write(id);
            if let Some(s) = self.streams.remove(&id) {
                self.on_removed(&s);
            }
        } else if s.send_closed {
            // We finished and the remote has not: resetting now could destroy
            // data we sent that the remote has not read yet. Linger instead.
            if let Some(s) = self.streams.get_mut(&id) {
                s.released = true;
                s.recv_buf = VecDeque::new();
                s.last_active = self.now;
                let dropped = std::mem::take(&mut s.buffered);
                self.unaccount(u64::from(dropped));
                self.schedule_idle_check(LINGER_TIMEOUT);
            }
        } else {
            let _ = self.reset(id);
        }
    }

    /// Forgets a released stream once the remote has finished with it.
    fn forget(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.on_removed(&s);
        }
    }

    /// Ends the session gracefully: go-away(normal) after all queued data.
    /// Further stream operations fail with
    /// [`StreamError::ConnectionClosed`]; input is ignored. Idempotent.
    pub fn close(&mut self) {
        if self.closed.is_some() {
            return;
        }
        self.tx.extend_from_slice(&Header::go_away(GoAwayCode::Normal).encode());
        self.set_closed(Error::LocallyClosed);
    }

    // ------------------------------------------------------------------
    // input

    /// Consumes frames from `input` (bytes read from the connection, split
    /// anywhere). Returns with a partial header left in `input`, or early
    /// (input left in place) while 4096 control frames wait for
    /// [`Session::poll_transmit`]. Data payloads of 16 KiB or more are split
    /// off `input` without copying.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        self.now = now;
        let before = input.len();
        self.consume_input(input);
        // Only bytes taken count as life: input held back behind a full
        // control queue (a peer flooding pings without reading) must not
        // keep postponing the keep-alive deadline.
        if input.len() < before {
            self.last_input = now;
        }
    }

    fn consume_input(&mut self, input: &mut BytesMut) {
        loop {
            if self.closed.is_some() {
                input.clear();
                return;
            }
            if self.ctrl.len() >= CTRL_LIMIT {
                return;
            }
            match self.rx {
                Rx::Header => {
                    let Some(bytes) = input.get(..HEADER_LEN) else {
                        return;
                    };
                    let mut raw = [0u8; HEADER_LEN];
                    raw.copy_from_slice(bytes);
                    input.advance(HEADER_LEN);
                    match Header::decode(&raw) {
                        Ok(header) => self.on_frame(header),
                        Err(e) => self.fail(e.into()),
                    }
                }
                Rx::Payload { stream_id, remaining, deliver, fin } => {
                    if input.is_empty() {
                        return;
                    }
                    let n = min(remaining as usize, input.len());
                    if deliver {
                        let chunk = if n >= ZERO_COPY_MIN {
                            input.split_to(n).freeze()
                        } else {
                            let chunk = Bytes::copy_from_slice(&input[..n]);
                            input.advance(n);
                            chunk
                        };
                        self.deliver(stream_id, chunk);
                    } else {
                        input.advance(n);
                    }
                    // n <= remaining, a u32
                    let remaining = remaining - n as u32;
                    if remaining == 0 {
                        self.rx = Rx::Header;
                        if fin {
                            self.on_remote_fin(stream_id);
                        }
                    } else {
                        self.rx = Rx::Payload { stream_id, remaining, deliver, fin };
                    }
                }
            }
        }
    }

    /// The connection reached end of file: the session ends with
    /// [`Error::RemoteClosed`]. Buffered data stays readable; reads then fail
    /// with [`StreamError::ConnectionClosed`] unless the stream saw FIN.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.closed.is_none() {
            self.set_closed(Error::RemoteClosed);
        }
    }

    /// Advances timers to `now`: resets idle streams, sends keep-alive pings
    /// and closes the session with [`Error::KeepAliveTimeout`] when one goes
    /// unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.closed.is_some() {
            return;
        }
        if self.next_idle_check.is_some_and(|t| now >= t) {
            self.check_idle_streams(now);
        }
        let Some((interval, timeout)) = self.config.keepalive else {
            return;
        };
        if let Some((_, sent)) = self.ping_out {
            if now >= max(sent, self.last_input) + timeout {
                self.set_closed(Error::KeepAliveTimeout);
            }
        } else if self.next_keepalive.is_some_and(|t| now >= t) {
            self.send_ping(now);
            self.next_keepalive = Some(now + interval);
        }
    }

    /// The next instant at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let keepalive = self.config.keepalive.and_then(|(_, timeout)| match self.ping_out {
            Some((_, sent)) => Some(max(sent, self.last_input) + timeout),
            None => self.next_keepalive,
        });
        match (keepalive, self.next_idle_check) {
            (Some(a), Some(b)) => Some(min(a, b)),
            (a, b) => a.or(b),
        }
    }

    /// Overrides [`Config::set_stream_idle_timeout`] for stream `id`
    /// (`None`: never reset it for idleness; long-lived, mostly quiet
    /// protocols want this).
    ///
    /// # Errors
    ///
    /// [`StreamError::UnknownStream`].
    pub fn set_stream_idle_timeout(&mut self, id: u32, timeout: Option<Duration>) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::UnknownStream(id))?;
        s.idle_timeout = timeout;
        if let Some(t) = timeout {
            self.schedule_idle_check(t);
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // output

    /// Appends frames ready to send to `out`. Control frames (window
    /// updates, pings, SYNs without data) come first; data follows, moved
    /// without copying when `out` is empty. Call until nothing is appended.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        for id in std::mem::take(&mut self.pending_syn) {
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            if !s.need_syn {
                continue;
            }
            s.need_syn = false;
            let delta = s.window_max - s.recv_window;
            s.recv_window += delta;
            self.ctrl.push_back(Header::window_update(id, Flags::SYN, delta));
        }
        if self.want_rtt_ping && self.ping_out.is_none() && self.closed.is_none() {
            self.send_ping(self.now);
        }
        if !self.ctrl.is_empty() {
            out.reserve(self.ctrl.len() * HEADER_LEN);
            for header in self.ctrl.drain(..) {
                out.extend_from_slice(&header.encode());
            }
            if self.ctrl.capacity() > 0 {
                self.ctrl = VecDeque::new();
            }
            if self.tx.len() > ZERO_COPY_MIN {
                return;
            }
        }
        if self.tx.is_empty() {
            return;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
        let waiters = std::mem::take(&mut self.tx_waiters);
        if self.closed.is_some() {
            // `Event::Closed` was the last event: writers stay blocked.
            return;
        }
        for id in waiters {
            if let Some(s) = self.streams.get_mut(&id) {
                s.tx_waiting = false;
                if s.write_blocked && s.send_window > 0 {
                    s.write_blocked = false;
                    self.events.push_back(Event::StreamWritable(id));
                }
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        event
    }

    // ------------------------------------------------------------------
    // internals

    fn on_frame(&mut self, h: Header) {
        match h.ty {
            FrameType::Data => self.on_data(h),
            FrameType::WindowUpdate => self.on_window_update(h),
            FrameType::Ping => self.on_ping(h),
            FrameType::GoAway => self.on_go_away(h),
        }
    }

    fn discard(&mut self, h: Header) {
        if h.ty == FrameType::Data && h.length > 0 {
            self.rx = Rx::Payload { stream_id: h.stream_id, remaining: h.length, deliver: false, fin: false };
        }
    }

    fn is_remote_id(&self, id: u32) -> bool {
        id != 0
            && match self.role {
                Role::Client => id % 2 == 0,
                Role::Server => id % 2 == 1,
            }
    }

    /// Handles a SYN: `Ok(true)` if the stream now exists, `Ok(false)` if it
    /// was refused with RST.
    fn on_syn(&mut self, id: u32) -> Result<bool, ProtocolError> {
        if !self.is_remote_id(id) {
            return Err(ProtocolError::InvalidStreamId { stream_id: id });
        }
        if self.streams.contains_key(&id) {
            return Err(ProtocolError::SynOnExistingStream { stream_id: id });
        }
        if self.inbound_count >= self.config.max_inbound_streams {
            tracing::debug!(stream = id, "refusing inbound stream: limit reached");
            self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
            return Ok(false);
        }
        if self.config.buffer_budget.as_ref().is_some_and(BufferBudget::is_full) {
            tracing::debug!(stream = id, "refusing inbound stream: node buffer budget exhausted");
            self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
            return Ok(false);
        }
        self.inbound_count += 1;
        self.window_sum += u64::from(self.config.initial_window);
        let idle = self.config.stream_idle_timeout;
        self.streams.insert(id, StreamState::new(false, self.config.initial_window, self.now, idle));
        if let Some(t) = idle {
            self.schedule_idle_check(t);
        }
        self.events.push_back(Event::InboundStream(id));
        Ok(true)
    }

    fn on_data(&mut self, h: Header) {
        let id = h.stream_id;
        if h.flags.contains(Flags::SYN) {
            match self.on_syn(id) {
                Ok(true) => {}
                Ok(false) => return self.discard(h),
                Err(e) => return self.fail(e),
            }
        } else if id == 0 {
            // Data on the session id: nothing to deliver it to.
            return self.discard(h);
        }
        let Some(s) = self.streams.get_mut(&id) else {
            // Unknown or already forgotten stream: frames still in flight
            // after a local reset are normal, so ignore (the spec asks to
            // handle this gracefully).
            return self.discard(h);
        };
        if h.flags.contains(Flags::ACK) {
            Self::on_ack(s, &mut self.unacked_outbound);
        }
        s.last_active = self.now;
        if s.released {
            let data = h.length > 0 && !h.flags.contains(Flags::RST);
            if data {
                self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
            }
            if data || h.flags.contains(Flags::FIN) || h.flags.contains(Flags::RST) {
                self.forget(id);
            }
            return self.discard(h);
        }
        if h.flags.contains(Flags::RST) {
            self.on_remote_reset(id);
            return self.discard(h);
        }
        if s.reset {
            return self.discard(h);
        }
        if s.remote_fin {
            if h.length > 0 {
                // Data after FIN: a stream-level violation; reset the stream
                // and keep the connection.
                tracing::debug!(stream = id, "data after FIN: resetting stream");
                self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
                self.on_remote_reset(id);
            }
            return self.discard(h);
        }
        if h.length > s.recv_window {
            let window = s.recv_window;
            return self.fail(ProtocolError::WindowExceeded { stream_id: id, len: h.length, window });
        }
        s.recv_window -= h.length;
        let fin = h.flags.contains(Flags::FIN);
        if h.length == 0 {
            if fin {
                self.on_remote_fin(id);
            }
            return;
        }
        if !self.account(u64::from(h.length)) {
            tracing::debug!(stream = id, len = h.length, "receive buffer budget exceeded: resetting stream");
            self.reset_locally(id, StreamError::BufferLimit);
            return self.discard(h);
        }
        self.rx = Rx::Payload { stream_id: id, remaining: h.length, deliver: true, fin };
    }

    fn on_window_update(&mut self, h: Header) {
        let id = h.stream_id;
        if h.flags.contains(Flags::SYN) {
            match self.on_syn(id) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(e),
            }
        } else if id == 0 {
            return;
        }
        let space = self.tx.len() < self.config.send_buffer_size;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if h.flags.contains(Flags::ACK) {
            Self::on_ack(s, &mut self.unacked_outbound);
        }
        s.last_active = self.now;
        if s.released {
            if h.flags.contains(Flags::FIN) || h.flags.contains(Flags::RST) {
                self.forget(id);
            }
            return;
        }
        if h.flags.contains(Flags::RST) {
            return self.on_remote_reset(id);
        }
        if s.reset {
            return;
        }
        let Some(window) = s.send_window.checked_add(h.length) else {
            let window = s.send_window;
            return self.fail(ProtocolError::WindowOverflow { stream_id: id, window, delta: h.length });
        };
        s.send_window = window;
        if h.length > 0 && s.write_blocked {
            if space {
                s.write_blocked = false;
                self.events.push_back(Event::StreamWritable(id));
            } else if !s.tx_waiting {
                // window open but the transmit queue full: wake on drain
                s.tx_waiting = true;
                self.tx_waiters.push(id);
            }
        }
        if h.flags.contains(Flags::FIN) {
            self.on_remote_fin(id);
        }
    }

    fn on_ping(&mut self, h: Header) {
        if h.flags.contains(Flags::SYN) {
            self.ctrl.push_back(Header::ping(true, h.length));
        } else if h.flags.contains(Flags::ACK) {
            if let Some((nonce, sent)) = self.ping_out {
                if nonce == h.length {
                    self.ping_out = None;
                    let rtt = self.now.saturating_duration_since(sent);
                    self.rtt = Some(rtt);
                    self.rtt_measured_at = Some(self.now);
                    self.note_rtt_sample(rtt);
                    if let Some((interval, _)) = self.config.keepalive {
                        self.next_keepalive = Some(self.now + interval);
                    }
                }
            }
        }
    }

    fn on_go_away(&mut self, h: Header) {
        if self.remote_goaway.is_some() {
            return;
        }
        let code = GoAwayCode::from_u32(h.length);
        self.remote_goaway = Some(code);
        self.events.push_back(Event::GoAway(code));
        if code != GoAwayCode::Normal {
            self.set_closed(Error::GoAway(code));
        }
    }

    fn on_ack(s: &mut StreamState, unacked: &mut usize) {
        if s.in_backlog {
            s.in_backlog = false;
            *unacked -= 1;
        }
    }

    fn on_remote_reset(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset {
            return;
        }
        s.reset = true;
        s.recv_buf = VecDeque::new();
        let dropped = std::mem::take(&mut s.buffered);
        s.need_syn = false;
        if s.in_backlog {
            s.in_backlog = false;
            self.unacked_outbound -= 1;
        }
        if s.window_counted {
            s.window_counted = false;
            self.window_sum -= u64::from(s.window_max);
        }
        self.unaccount(u64::from(dropped));
        self.events.push_back(Event::StreamReset(id));
    }

    /// Resets stream `id` on our initiative, keeping it (as a peer's reset
    /// would) so that the application learns `cause` on its next call.
    fn reset_locally(&mut self, id: u32, cause: StreamError) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset {
            return;
        }
        s.reset_cause = Some(cause);
        if !s.need_syn {
            self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
        }
        self.on_remote_reset(id);
    }

    fn on_remote_fin(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.remote_fin || s.reset {
            return;
        }
        s.remote_fin = true;
        if !s.readable_notified {
            s.readable_notified = true;
            self.events.push_back(Event::StreamReadable(id));
        }
    }

    /// Buffers a payload chunk already counted by [`Session::account`].
    fn deliver(&mut self, id: u32, chunk: Bytes) {
        let (now, gap) = (self.now, self.tuning_rtt().map(|rtt| rtt / 2));
        let Some(s) = self.streams.get_mut(&id).filter(|s| !s.reset) else {
            // Reset or forgotten mid-frame: the chunk is dropped.
            self.unaccount(chunk.len() as u64);
            return;
        };
        // chunk.len() <= the frame length, checked against the window
        s.buffered += chunk.len() as u32;
        if let Some(gap) = gap {
            s.note_arrival(chunk.len(), now, gap);
        }
        s.recv_buf.push_back(chunk);
        if !s.readable_notified {
            s.readable_notified = true;
            self.events.push_back(Event::StreamReadable(id));
        }
    }

    /// Credit-on-read: once a quarter of the window has been read, grant it
    /// back, growing the window first if the reader consumed it at more than
    /// a quarter of `window / RTT`, the most the window lets through: then the
    /// window, not the link, may be the limit. It grows to twice the
    /// bandwidth-delay product that rate implies (at least double). A reader
    /// that has drained the stream grants as little as an eighth, if the
    /// window grows with it.
    fn maybe_update_window(&mut self, id: u32, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        let rtt = self.tuning_rtt();
        let pressure = self.config.buffer_budget.as_ref().is_some_and(BufferBudget::under_pressure);
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset || s.remote_fin {
            return;
        }
        let mut credit = s.window_max.saturating_sub(s.recv_window).saturating_sub(s.buffered);
        // Credit normally goes back in quarters of the window. A reader that
        // has drained the stream may return as little as an eighth, but only
        // with growth: a burst that fills the window arrives at once, the
        // updates sent while it is read see it still buffered and do not
        // grow, and its last quarter can fall a few bytes short (frame
        // headers), which would leave growth to the next round trip.
        let quarter = credit >= s.window_max / 4;
        let drained = s.buffered == 0 && credit >= s.window_max / 8;
        if credit == 0 || !(quarter || drained) {
            return;
        }
        let mut grow = 0;
        if let (Some(last), Some(rtt)) = (s.last_update, rtt) {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            // Bytes the reader would consume in one RTT at the rate it just
            // showed: a bandwidth-delay product estimate. A reader catching
            // up on frames that are already here consumes at memory speed,
            // though, which on a fast local link would grow the window to
            // its cap (and let tens of MiB queue up and go cold in the
            // socket buffers): the rate is capped by the rate the current
            // burst arrives at, when it has lasted long enough to have one.
            // A burst that lands at once has none, and the reader's rate
            // stands, which is what opens the window within one round trip
            // when the link delivers a whole window faster than it is read.
            let consumed = (u128::from(credit) * rtt.as_nanos()).checked_div(elapsed).unwrap_or(u128::MAX);
            let bdp = s.arrival_bdp(rtt).map_or(consumed, |arrived| min(consumed, arrived));
            // A reader still holding received data is the bottleneck, not
            // the window: growing would only let more pile up (on a fast
            // local link, tens of MiB that fall out of the CPU caches).
            let caught_up = s.buffered <= s.window_max / 8;
            if !pressure
                && caught_up
                && bdp.saturating_mul(4) > u128::from(s.window_max)
                && s.window_max < self.config.max_stream_window
            {
                // Jump straight to twice the estimate rather than doubling
                // once per update: the window then covers the path after one
                // round trip instead of after log2(BDP / 256 KiB) of them.
                let wanted = max(2 * u128::from(s.window_max), bdp.saturating_mul(2));
                // min() keeps it within max_stream_window, a u32
                let target = min(wanted, u128::from(self.config.max_stream_window)) as u64;
                let room = self.config.connection_window_budget.saturating_sub(self.window_sum);
                // target <= max_stream_window, a u32
                grow = min(target - u64::from(s.window_max), room) as u32;
            }
        }
        if !quarter && grow == 0 {
            return;
        }
        if grow > 0 {
            tracing::trace!(stream = id, window = s.window_max + grow, "window grows");
            s.window_max += grow;
            self.window_sum += u64::from(grow);
            credit += grow;
        }
        s.last_update = Some(now);
        s.recv_window += credit;
        let flags = s.take_open_flags();
        self.ctrl.push_back(Header::window_update(id, flags, credit));
        // Refresh the RTT sample now, with the caller's clock (the session's
        // own `now` may be stale while the sender is blocked on this window).
        if self.config.rtt_probe
            && self.ping_out.is_none()
            && self.rtt_measured_at.is_none_or(|t| now.saturating_duration_since(t) > RTT_REFRESH)
        {
            self.send_ping(now);
        }
    }

    fn send_ping(&mut self, now: Instant) {
        let nonce = self.next_ping_nonce;
        self.next_ping_nonce = self.next_ping_nonce.wrapping_add(1);
        self.ping_out = Some((nonce, now));
        self.want_rtt_ping = false;
        self.ctrl.push_back(Header::ping(false, nonce));
    }

    fn on_removed(&mut self, s: &StreamState) {
        self.unaccount(u64::from(s.buffered));
        if !s.outbound {
            self.inbound_count -= 1;
        }
        if s.in_backlog {
            self.unacked_outbound -= 1;
        }
        if s.window_counted {
            self.window_sum -= u64::from(s.window_max);
        }
        if self.streams.is_empty() && self.streams.capacity() > 0 {
            self.streams = HashMap::new();
        }
    }

    fn fail(&mut self, error: ProtocolError) {
        if self.closed.is_some() {
            return;
        }
        tracing::debug!(%error, "yamux protocol error");
        self.tx.clear();
        self.ctrl.clear();
        self.pending_syn.clear();
        self.ctrl.push_back(Header::go_away(GoAwayCode::ProtocolError));
        self.set_closed(Error::Protocol(error));
    }

    fn set_closed(&mut self, error: Error) {
        if let Rx::Payload { remaining, deliver: true, .. } = self.rx {
            // Input is ignored from now on: the rest never arrives.
            self.unaccount(u64::from(remaining));
            self.rx = Rx::Header;
        }
        self.next_idle_check = None;
        self.closed = Some(error.clone());
        self.ping_out = None;
        self.want_rtt_ping = false;
        self.events.push_back(Event::Closed(error));
    }

    /// Counts `n` incoming data bytes against the connection budget and the
    /// node's; `false` (nothing counted) if either would be exceeded.
    fn account(&mut self, n: u64) -> bool {
        if self.buffered_total + n > self.config.connection_window_budget {
            return false;
        }
        if let Some(budget) = &self.config.buffer_budget {
            if !budget.try_reserve(n) {
                return false;
            }
        }
        self.buffered_total += n;
        true
    }

    /// Returns `n` bytes counted by [`Session::account`].
    fn unaccount(&mut self, n: u64) {
        debug_assert!(n <= self.buffered_total);
        let n = n.min(self.buffered_total);
        self.buffered_total -= n;
        if let Some(budget) = &self.config.buffer_budget {
            budget.release(n);
        }
    }

    /// Makes sure an idle check runs soon enough for a stream with
    /// `timeout`: a quarter of it, so a stream is reset at most 25% late.
    fn schedule_idle_check(&mut self, timeout: Duration) {
        let at = self.now + (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
        self.next_idle_check = Some(self.next_idle_check.map_or(at, |t| t.min(at)));
    }

    /// Resets streams silent for longer than their idle timeout, forgets
    /// released ones, and schedules the next check.
    fn check_idle_streams(&mut self, now: Instant) {
        self.next_idle_check = None;
        let mut expired = Vec::new();
        let mut shortest: Option<Duration> = None;
        for (&id, s) in &mut self.streams {
            if s.reset {
                continue;
            }
            if std::mem::take(&mut s.written) {
                s.last_active = now;
            }
            let Some(timeout) = s.effective_idle_timeout() else {
                continue;
            };
            if now.saturating_duration_since(s.last_active) >= timeout {
                expired.push((id, s.released));
            } else {
                shortest = Some(shortest.map_or(timeout, |t| t.min(timeout)));
            }
        }
        for (id, released) in expired {
            tracing::debug!(stream = id, released, "stream idle timeout: resetting");
            if released {
                self.ctrl.push_back(Header::window_update(id, Flags::RST, 0));
                self.forget(id);
            } else {
                self.reset_locally(id, StreamError::IdleTimeout);
            }
        }
        if let Some(t) = shortest {
            self.schedule_idle_check(t);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(budget) = &self.config.buffer_budget {
            budget.release(self.buffered_total);
        }
    }
}
