//! The connection handle, its shared state and the spawned driver task.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use peerswarm_proto::yamux::{
    Config, Error as SessionError, Event, GoAwayCode, OpenError, ProtocolError, Role, Session,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::stream::Stream;

/// Reads start small (into the stack, so idle connections hold no read
/// buffer) and switch to heap reads of this size while data flows. It also bounds how much memory a zero-copy payload slice
/// can pin (see the session's docs).
const READ_BIG: usize = 64 * 1024;
const READ_SMALL: usize = 4 * 1024;
/// Stop reading while this much unconsumed input is buffered (the session is
/// back-pressuring, see `Session::handle_input`).
const MAX_PENDING_INPUT: usize = 256 * 1024;
/// Batch up to this many bytes of frames per `write` call.
const WRITE_BATCH: usize = 512 * 1024;
/// Rounds of read/process/write per task poll before yielding.
const POLL_BUDGET: usize = 32;
/// Rounds a stream's task runs inline before leaving the rest to the driver.
const INLINE_ROUNDS: usize = 4;
/// The driver hands collected wake-ups out (by yielding) at least every
/// this many rounds, each of which reads at most one chunk, so a reader
/// waits for a few frames at most.
const WAKE_ROUNDS: usize = 4;
/// Turns a stream's task takes for a driver that found the I/O busy (see
/// `Inner::drive_inline`) before it wakes the driver instead.
const TAKEN_TURNS: usize = 2;
/// How long a closing connection may take to flush its go-away.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended (or an operation on it failed).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The underlying I/O failed.
    #[error("i/o error: {0}")]
    Io(Arc<io::Error>),
    /// The peer violated the yamux protocol; we sent go-away(protocol error).
    #[error("yamux protocol error: {0}")]
    Protocol(ProtocolError),
    /// The connection was closed: by [`Connection::close`], by dropping every
    /// handle, or by the peer (end of file).
    #[error("connection closed")]
    Closed,
    /// The peer sent go-away: with an error code the connection is over;
    /// with [`GoAwayCode::Normal`] existing streams carry on but
    /// [`Connection::open_stream`] fails.
    #[error("peer sent go-away: {0}")]
    GoAway(GoAwayCode),
    /// The keep-alive ping went unanswered.
    #[error("keep-alive timeout")]
    KeepAliveTimeout,
    /// All stream ids of our parity have been used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
}

impl From<&SessionError> for ConnectionError {
    fn from(e: &SessionError) -> ConnectionError {
        match e {
            SessionError::Protocol(p) => ConnectionError::Protocol(p.clone()),
            SessionError::GoAway(code) => ConnectionError::GoAway(*code),
            SessionError::KeepAliveTimeout => ConnectionError::KeepAliveTimeout,
            _ => ConnectionError::Closed,
        }
    }
}

pub(super) struct Shared {
    pub(super) session: Session,
    accept_queue: VecDeque<u32>,
    pub(super) read_wakers: HashMap<u32, Waker>,
    pub(super) write_wakers: HashMap<u32, Waker>,
    driver_waker: Option<Waker>,
    driver_notified: bool,
    close_requested: bool,
    /// Set once the driver has finished.
    ended: Option<ConnectionError>,
    handles: usize,
}

impl Shared {
    /// Wakes the driver (once until it runs again).
    pub(super) fn wake_driver(&mut self) {
        if !self.driver_notified {
            self.driver_notified = true;
            if let Some(waker) = &self.driver_waker {
                waker.wake_by_ref();
            }
        }
    }

    /// Wakes the driver even if a wake-up is already pending (it may have
    /// been spent on an I/O lock held by a stream's task).
    fn wake_driver_now(&mut self) {
        self.driver_notified = true;
        if let Some(waker) = &self.driver_waker {
            waker.wake_by_ref();
        }
    }

    fn error(&self) -> Option<ConnectionError> {
        if let Some(e) = &self.ended {
            return Some(e.clone());
        }
        self.session.close_reason().map(ConnectionError::from)
    }
}

pub(super) struct Inner {
    shared: Mutex<Shared>,
    /// The I/O side, run by the driver task or inline by a stream's task
    /// (never both at once: whoever finds it locked leaves the round to the
    /// holder). Lock order: `io`, then `shared`.
    io: Mutex<IoState>,
    /// The driver found `io` locked; the holder wakes it on release.
    driver_waiting: AtomicBool,
    accept_notify: Notify,
    open_notify: Notify,
    closed_notify: Notify,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock is a bug in this module; the state
        // is still consistent enough to shut down, so ignore poisoning.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_lock_io(&self) -> Option<MutexGuard<'_, IoState>> {
        match self.io.try_lock() {
            Ok(io) => Some(io),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs the driver's rounds in the calling task (a stream that wrote,
    /// or found nothing to read), so that bytes move without a hand-off to
    /// the driver task and back. The I/O is polled with the driver's waker:
    /// readiness always wakes the driver, whichever task polled last.
    /// Timers and the shutdown stay with the driver.
    ///
    /// Returns `false` if this could not run (the I/O is busy in another
    /// task, which then does the work, or the driver has not started).
    pub(super) fn drive_inline(&self) -> bool {
        let Some(mut io) = self.try_lock_io() else { return false };
        let mut ran = false;
        let mut turns_taken = 0;
        loop {
            let started = io.run_inline(self);
            ran |= started;
            let wakes = std::mem::take(&mut io.wakes);
            drop(io);
            wakes.into_iter().for_each(Waker::wake);
            if !self.driver_waiting.swap(false, Ordering::SeqCst) {
                return ran;
            }
            // The driver was woken while we held the I/O (most often by
            // readiness for bytes our next round handles anyway) and now
            // waits for us. Taking its turn here saves a context switch;
            // woken, it would mostly find the I/O busy again.
            let next = if started && turns_taken < TAKEN_TURNS { self.try_lock_io() } else { None };
            let Some(next) = next else {
                self.lock().wake_driver_now();
                return ran;
            };
            io = next;
            turns_taken += 1;
            // The wake-up spent on the busy lock is ours now: let the next
            // `wake_driver` through (what came before, this turn sees).
            self.lock().driver_notified = false;
        }
    }

    /// [`Inner::drive_inline`], or else wakes the driver.
    pub(super) fn drive(&self) {
        if !self.drive_inline() {
            self.lock().wake_driver();
        }
    }
}

/// A yamux connection: a cheap, clonable handle to a spawned driver task.
///
/// Dropping every `Connection` handle closes the connection (go-away, flush,
/// shut down the I/O) even if [`Stream`]s are still alive; they then fail
/// with `ConnectionAborted`/`BrokenPipe`.
pub struct Connection {
    inner: Arc<Inner>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sh = self.inner.lock();
        f.debug_struct("Connection")
            .field("role", &sh.session.role())
            .field("streams", &sh.session.num_streams())
            .field("closed", &sh.error())
            .finish()
    }
}

impl Clone for Connection {
    fn clone(&self) -> Connection {
        self.inner.lock().handles += 1;
        Connection { inner: self.inner.clone() }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut sh = self.inner.lock();
        sh.handles -= 1;
        if sh.handles == 0 {
            sh.close_requested = true;
            sh.wake_driver();
        }
    }
}

impl Connection {
    /// Runs yamux over `io` as `role` (client = the side that initiated the
    /// underlying connection). Spawns the driver with `tokio::spawn`, so it
    /// must be called within a tokio runtime.
    pub fn new<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
        io: T,
        role: Role,
        config: Config,
    ) -> Connection {
        Connection::with_io(plain_io(io), role, config, None)
    }

    /// [`Connection::new`] over a stream that may hand out owned chunks,
    /// with the security handshake's round trip, if known, as the first RTT
    /// estimate (see [`Session::seed_rtt`]).
    pub(crate) fn with_io(
        io: Box<dyn ConnIo>,
        role: Role,
        config: Config,
        handshake_rtt: Option<Duration>,
    ) -> Connection {
        let mut session = Session::new(role, config, Instant::now());
        if let Some(rtt) = handshake_rtt {
            session.seed_rtt(rtt);
        }
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                session,
                accept_queue: VecDeque::new(),
                read_wakers: HashMap::new(),
                write_wakers: HashMap::new(),
                driver_waker: None,
                driver_notified: false,
                close_requested: false,
                ended: None,
                handles: 1,
            }),
            io: Mutex::new(IoState {
                io: Some(io),
                driver_waker: None,
                read_buf: BytesMut::new(),
                read_big: false,
                read_closed: false,
                write_buf: Vec::new(),
                written: 0,
                needs_flush: false,
                wakes: Vec::new(),
                timer: None,
                close_deadline: None,
            }),
            driver_waiting: AtomicBool::new(false),
            accept_notify: Notify::new(),
            open_notify: Notify::new(),
            closed_notify: Notify::new(),
        });
        tokio::spawn(Driver { inner: inner.clone() });
        Connection { inner }
    }

    /// Opens a stream. Never waits for the peer's ACK; waits only while 256
    /// of our streams are unacknowledged (the spec's ACK backlog).
    ///
    /// Cancel safe: a cancelled call opens nothing.
    ///
    /// # Errors
    ///
    /// The connection has ended, or the peer sent go-away.
    pub async fn open_stream(&self) -> Result<Stream, ConnectionError> {
        loop {
            let notified = self.inner.open_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut sh = self.inner.lock();
                if let Some(e) = sh.error() {
                    return Err(e);
                }
                match sh.session.open_stream() {
                    Ok(id) => {
                        sh.wake_driver();
                        return Ok(Stream::new(id, self.inner.clone()));
                    }
                    Err(OpenError::AckBacklogFull) => {}
                    Err(OpenError::GoAway) => {
                        let code = sh.session.remote_go_away().unwrap_or(GoAwayCode::Normal);
                        return Err(ConnectionError::GoAway(code));
                    }
                    Err(OpenError::StreamIdsExhausted) => return Err(ConnectionError::StreamIdsExhausted),
                    Err(_) => return Err(sh.error().unwrap_or(ConnectionError::Closed)),
                }
            }
            notified.await;
        }
    }

    /// Waits for the next stream opened by the peer.
    ///
    /// Cancel safe. Streams not accepted count against
    /// [`Config::set_max_streams`]; beyond it the peer's SYNs are refused.
    ///
    /// # Errors
    ///
    /// Once the connection has ended.
    pub async fn accept_stream(&self) -> Result<Stream, ConnectionError> {
        loop {
            let notified = self.inner.accept_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut sh = self.inner.lock();
                if let Some(id) = sh.accept_queue.pop_front() {
                    return Ok(Stream::new(id, self.inner.clone()));
                }
                if let Some(e) = sh.error() {
                    return Err(e);
                }
                if sh.accept_queue.is_empty() && sh.accept_queue.capacity() > 16 {
                    sh.accept_queue = VecDeque::new();
                }
            }
            notified.await;
        }
    }

    /// Closes the connection: go-away(normal) after the data already
    /// written, flush, shut down the I/O. Returns when the driver is done.
    /// Idempotent.
    pub async fn close(&self) {
        {
            let mut sh = self.inner.lock();
            sh.close_requested = true;
            sh.wake_driver();
        }
        self.closed().await;
    }

    /// Whether the connection has ended or is closing.
    pub fn is_closed(&self) -> bool {
        let sh = self.inner.lock();
        sh.ended.is_some() || sh.session.is_closed()
    }

    /// Resolves when the connection has ended, with the reason.
    pub async fn closed(&self) -> ConnectionError {
        loop {
            let notified = self.inner.closed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.inner.lock().ended.clone() {
                return e;
            }
            notified.await;
        }
    }

    /// Streams currently open (including ones not yet accepted).
    pub fn num_streams(&self) -> usize {
        self.inner.lock().session.num_streams()
    }
}

/// A connection's byte stream, type-erased so that stream handles can run
/// the driver's rounds.
pub(crate) trait ConnIo: AsyncRead + AsyncWrite + Send + Unpin {
    /// Reads the next chunk as an owned buffer, if this stream can do that
    /// without copying (a Noise channel hands out its decrypted frames);
    /// `None`: use `poll_read`. An empty chunk is EOF.
    fn poll_read_owned(&mut self, _cx: &mut Context<'_>) -> Option<Poll<io::Result<BytesMut>>> {
        None
    }

    /// Writes (a prefix of) `buf`, which it may overwrite, if this stream
    /// can do so without copying (a Noise channel seals in place); `None`:
    /// use `poll_write`. After `Pending`, the next write must pass the same
    /// bytes again.
    fn poll_write_in_place(
        &mut self,
        _cx: &mut Context<'_>,
        _buf: &mut [u8],
    ) -> Option<Poll<io::Result<usize>>> {
        None
    }
}

/// Any byte stream, read through `poll_read`.
struct Plain<T>(T);

/// Boxes `io` to be read through `poll_read`.
pub(crate) fn plain_io<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(io: T) -> Box<dyn ConnIo> {
    Box::new(Plain(io))
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> ConnIo for Plain<T> {}

impl<T: AsyncRead + Unpin> AsyncRead for Plain<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Plain<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The I/O side of a connection: the byte stream and its buffers.
struct IoState {
    /// `None` once the connection has ended (the socket is closed then,
    /// even while stream handles live on).
    io: Option<Box<dyn ConnIo>>,
    /// The driver task's waker, for polls made by other tasks.
    driver_waker: Option<Waker>,
    read_buf: BytesMut,
    read_big: bool,
    read_closed: bool,
    write_buf: Vec<u8>,
    written: usize,
    needs_flush: bool,
    /// Stream tasks to wake (new data, window, reset), collected by rounds
    /// and woken once the I/O lock is released: a task woken earlier would
    /// run, on the other core, into the locks its waker still holds (and
    /// often preempt it), and a woken reader finding the I/O free can pull
    /// the next frames in itself.
    wakes: Vec<Waker>,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
    close_deadline: Option<Instant>,
}

/// The spawned task: runs rounds whenever the I/O, a timer or a handle
/// wakes it.
struct Driver {
    inner: Arc<Inner>,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &*self.inner;
        let mut io = match inner.try_lock_io() {
            Some(io) => io,
            None => {
                // A stream's task is running a round; it wakes us when done
                // (it checks the flag after unlocking, so it cannot miss it).
                {
                    let mut sh = inner.lock();
                    if !sh.driver_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        sh.driver_waker = Some(cx.waker().clone());
                    }
                }
                inner.driver_waiting.store(true, Ordering::SeqCst);
                match inner.try_lock_io() {
                    Some(io) => io,
                    None => return Poll::Pending,
                }
            }
        };
        if io.io.is_none() {
            // Ended in a stream's round.
            return Poll::Ready(());
        }
        if !io.driver_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            io.driver_waker = Some(cx.waker().clone());
        }
        let mut poll = Poll::Pending;
        for round in 1..=POLL_BUDGET {
            match io.round(inner, cx, true) {
                // Streams with new data or window are woken every few
                // rounds, by yielding: see `IoState::wakes`.
                Ok(true) if round % WAKE_ROUNDS == 0 && !io.wakes.is_empty() => {
                    cx.waker().wake_by_ref();
                    break;
                }
                Ok(true) if round == POLL_BUDGET => cx.waker().wake_by_ref(),
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    io.finish(inner, e);
                    poll = Poll::Ready(());
                    break;
                }
            }
        }
        let wakes = std::mem::take(&mut io.wakes);
        drop(io);
        wakes.into_iter().for_each(Waker::wake);
        poll
    }
}

impl IoState {
    /// Up to [`INLINE_ROUNDS`] rounds in a stream's task, polling the I/O
    /// with the driver's waker; `false` if the driver has not started or
    /// the connection has ended.
    fn run_inline(&mut self, inner: &Inner) -> bool {
        let Some(waker) = self.driver_waker.clone().filter(|_| self.io.is_some()) else {
            return false;
        };
        let mut cx = Context::from_waker(&waker);
        for round in 1.. {
            match self.round(inner, &mut cx, false) {
                Ok(false) => break,
                Ok(true) if round < INLINE_ROUNDS => {}
                Ok(true) => {
                    // More to do: the driver carries on.
                    waker.wake_by_ref();
                    break;
                }
                Err(e) => {
                    self.finish(inner, e);
                    waker.wake_by_ref();
                    break;
                }
            }
        }
        true
    }

    /// One round; `Ok(true)` if progress was made. `by_driver` is false for
    /// a round run inline by a stream's task: `cx` then holds the driver's
    /// waker, and timers and the shutdown are left to the driver.
    fn round(
        &mut self,
        inner: &Inner,
        cx: &mut Context<'_>,
        by_driver: bool,
    ) -> Result<bool, ConnectionError> {
        if self.io.is_none() {
            return Err(ConnectionError::Closed);
        }
        let mut progress = false;

        // 1. read
        let mut eof = false;
        let mut io_error = None;
        match self.read_into_buf(cx) {
            Ok(Some(0)) => {
                eof = true;
                progress = true;
            }
            Ok(Some(n)) => {
                // a full small read means data is flowing: switch to big reads
                self.read_big = n >= if self.read_big { READ_SMALL } else { READ_SMALL / 2 };
                progress = true;
            }
            Ok(None) => {}
            Err(e) => io_error = Some(e),
        }

        // 2. the session
        let now = Instant::now();
        let closed;
        let deadline;
        {
            let mut sh = inner.lock();
            if by_driver {
                sh.driver_notified = false;
                if !sh.driver_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    sh.driver_waker = Some(cx.waker().clone());
                }
            }
            if sh.close_requested && !sh.session.is_closed() {
                sh.session.close();
            }
            if !self.read_buf.is_empty() {
                sh.session.handle_input(&mut self.read_buf, now);
            }
            if eof {
                sh.session.handle_eof(now);
            }
            if let Some(e) = io_error {
                sh.session.handle_eof(now);
                drop(sh);
                return Err(ConnectionError::Io(Arc::new(e)));
            }
            if sh.session.poll_timeout().is_some_and(|t| t <= now) {
                sh.session.handle_timeout(now);
            }
            dispatch_events(inner, &mut sh, &mut self.wakes);
            if self.written == self.write_buf.len() {
                self.write_buf.clear();
                self.written = 0;
                while self.write_buf.len() < WRITE_BATCH {
                    let before = self.write_buf.len();
                    sh.session.poll_transmit(&mut self.write_buf);
                    if self.write_buf.len() == before {
                        break;
                    }
                }
                if self.write_buf.is_empty() && self.write_buf.capacity() > 0 {
                    // idle: give the memory back
                    self.write_buf = Vec::new();
                }
            }
            if sh.session.can_open() {
                inner.open_notify.notify_waiters();
            }
            closed = sh.session.close_reason().map(ConnectionError::from);
            deadline = sh.session.poll_timeout();
        }
        if self.read_buf.is_empty() && !self.read_big && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }

        // 3. write
        while self.written < self.write_buf.len() {
            let io = pinned(&mut self.io)?.get_mut();
            let unsent = &mut self.write_buf[self.written..];
            // The batch is not refilled until written, so the bytes passed
            // again after `Pending` are the same.
            let poll = match io.poll_write_in_place(cx, unsent) {
                Some(poll) => poll,
                None => Pin::new(io).poll_write(cx, unsent),
            };
            match poll {
                Poll::Ready(Ok(0)) => {
                    return Err(ConnectionError::Io(Arc::new(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.needs_flush = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Err(ConnectionError::Io(Arc::new(e))),
                Poll::Pending => break,
            }
        }
        let all_written = self.written == self.write_buf.len();
        if all_written && self.needs_flush {
            match pinned(&mut self.io)?.poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(ConnectionError::Io(Arc::new(e))),
                Poll::Pending => {}
            }
        }

        if !by_driver {
            // Timers and the shutdown are the driver's.
            let armed = self.timer.as_ref().map(|(at, _)| *at);
            if closed.is_some() || (deadline.is_some() && deadline != armed) {
                cx.waker().wake_by_ref();
                return Ok(false);
            }
            return Ok(progress);
        }

        // 4. shutdown once the session has ended and everything is out
        if let Some(reason) = closed {
            let deadline = *self.close_deadline.get_or_insert(now + CLOSE_TIMEOUT);
            let has_more = inner.lock().session.has_transmit();
            if (all_written && !self.needs_flush && !has_more) || now >= deadline {
                if pinned(&mut self.io)?.poll_shutdown(cx).is_pending() && now < deadline {
                    self.arm_timer(cx, Some(deadline));
                    return Ok(progress);
                }
                return Err(reason);
            }
            if progress {
                return Ok(true);
            }
            self.arm_timer(cx, Some(deadline));
            return Ok(false);
        }

        // 5. timers
        if self.arm_timer(cx, deadline) {
            progress = true;
        }
        Ok(progress)
    }

    /// Reads into `read_buf`: `Some(n)` bytes read (0 = EOF), `None` if
    /// nothing (pending, or input held back).
    fn read_into_buf(&mut self, cx: &mut Context<'_>) -> io::Result<Option<usize>> {
        if self.read_closed || self.read_buf.len() >= MAX_PENDING_INPUT {
            return Ok(None);
        }
        if let Some(poll) = self.io.as_deref_mut().and_then(|io| io.poll_read_owned(cx)) {
            return match poll {
                Poll::Ready(Ok(chunk)) => {
                    let n = chunk.len();
                    if n == 0 {
                        self.read_closed = true;
                    } else if self.read_buf.is_empty() {
                        // The usual case: the session splits payloads off
                        // the chunk without copying them.
                        self.read_buf = chunk;
                    } else {
                        self.read_buf.extend_from_slice(&chunk);
                    }
                    Ok(Some(n))
                }
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => Ok(None),
            };
        }
        if !self.read_big {
            // Quiet connection: read into the stack so that an idle
            // connection (a pending read) holds no heap buffer.
            let mut stack = [0u8; READ_SMALL];
            let mut buf = ReadBuf::new(&mut stack);
            return match pinned_io(&mut self.io)?.poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        self.read_closed = true;
                    }
                    self.read_buf.extend_from_slice(buf.filled());
                    Ok(Some(n))
                }
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => Ok(None),
            };
        }
        if self.read_buf.capacity() - self.read_buf.len() < READ_BIG / 2 {
            self.read_buf.reserve(READ_BIG);
        }
        // `read_buf` is stateless between polls (cancel safe), so a fresh
        // future per poll reads into the spare capacity without zeroing it.
        let mut io = pinned_io(&mut self.io)?;
        let read = io.read_buf(&mut self.read_buf);
        tokio::pin!(read);
        match read.poll(cx) {
            Poll::Ready(Ok(n)) => {
                if n == 0 {
                    self.read_closed = true;
                }
                Ok(Some(n))
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }

    /// Points the timer at `deadline`; `true` if it has already fired.
    fn arm_timer(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            self.timer = None;
            return false;
        };
        let tokio_deadline = tokio::time::Instant::from_std(deadline);
        match &mut self.timer {
            Some((at, sleep)) if *at == deadline => sleep.as_mut().poll(cx).is_ready(),
            slot => {
                let mut sleep = Box::pin(tokio::time::sleep_until(tokio_deadline));
                let fired = sleep.as_mut().poll(cx).is_ready();
                *slot = Some((deadline, sleep));
                fired
            }
        }
    }

    /// Ends the connection: records `reason`, closes the I/O and wakes
    /// every waiting handle.
    fn finish(&mut self, inner: &Inner, reason: ConnectionError) {
        tracing::debug!(%reason, "yamux connection ended");
        let mut sh = inner.lock();
        if !sh.session.is_closed() {
            sh.session.handle_eof(Instant::now());
        }
        sh.ended = Some(reason);
        sh.driver_waker = None;
        wake_everyone(inner, &mut sh);
        drop(sh);
        inner.closed_notify.notify_waiters();
        self.io = None;
        self.timer = None;
        self.read_buf = BytesMut::new();
        self.write_buf = Vec::new();
    }
}

fn pinned_io(io: &mut Option<Box<dyn ConnIo>>) -> io::Result<Pin<&mut (dyn ConnIo + 'static)>> {
    match io {
        Some(io) => Ok(Pin::new(&mut **io)),
        None => Err(io::ErrorKind::NotConnected.into()),
    }
}

fn pinned(io: &mut Option<Box<dyn ConnIo>>) -> Result<Pin<&mut (dyn ConnIo + 'static)>, ConnectionError> {
    pinned_io(io).map_err(|_| ConnectionError::Closed)
}

/// Hands the session's events out; the stream wakers go to `wakes` (see
/// `IoState::wakes`).
fn dispatch_events(inner: &Inner, sh: &mut Shared, wakes: &mut Vec<Waker>) {
    while let Some(event) = sh.session.poll_event() {
        match event {
            Event::InboundStream(id) => {
                sh.accept_queue.push_back(id);
                inner.accept_notify.notify_waiters();
            }
            Event::StreamReadable(id) => wakes.extend(take_waker(&mut sh.read_wakers, id)),
            Event::StreamWritable(id) => wakes.extend(take_waker(&mut sh.write_wakers, id)),
            Event::StreamReset(id) => {
                wakes.extend(take_waker(&mut sh.read_wakers, id));
                wakes.extend(take_waker(&mut sh.write_wakers, id));
            }
            Event::GoAway(_) => inner.open_notify.notify_waiters(),
            Event::Closed(_) => wake_everyone(inner, sh),
            _ => {}
        }
    }
}

fn wake_everyone(inner: &Inner, sh: &mut Shared) {
    for (_, w) in sh.read_wakers.drain() {
        w.wake();
    }
    for (_, w) in sh.write_wakers.drain() {
        w.wake();
    }
    inner.accept_notify.notify_waiters();
    inner.open_notify.notify_waiters();
}

/// Removes `id`'s waker; an emptied map gives its memory back, since an idle
/// connection would otherwise keep a table per direction.
pub(super) fn take_waker(wakers: &mut HashMap<u32, Waker>, id: u32) -> Option<Waker> {
    let waker = wakers.remove(&id);
    if wakers.is_empty() && wakers.capacity() > 0 {
        *wakers = HashMap::new();
    }
    waker
}
