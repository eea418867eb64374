//! The connection handle, its shared state and the spawned driver task.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
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

    fn error(&self) -> Option<ConnectionError> {
        if let Some(e) = &self.ended {
            return Some(e.clone());
        }
        self.session.close_reason().map(ConnectionError::from)
    }
}

pub(super) struct Inner {
    shared: Mutex<Shared>,
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
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                session: Session::new(role, config, Instant::now()),
                accept_queue: VecDeque::new(),
                read_wakers: HashMap::new(),
                write_wakers: HashMap::new(),
                driver_waker: None,
                driver_notified: false,
                close_requested: false,
                ended: None,
                handles: 1,
            }),
            accept_notify: Notify::new(),
            open_notify: Notify::new(),
            closed_notify: Notify::new(),
        });
        tokio::spawn(Driver {
            io,
            inner: inner.clone(),
            read_buf: BytesMut::new(),
            read_big: false,
            read_closed: false,
            write_buf: Vec::new(),
            written: 0,
            needs_flush: false,
            timer: None,
            close_deadline: None,
        });
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

/// The spawned task: moves bytes between `io` and the session.
struct Driver<T> {
    io: T,
    inner: Arc<Inner>,
    read_buf: BytesMut,
    read_big: bool,
    read_closed: bool,
    write_buf: Vec<u8>,
    written: usize,
    needs_flush: bool,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
    close_deadline: Option<Instant>,
}

impl<T> Unpin for Driver<T> {}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..POLL_BUDGET {
            match this.round(cx) {
                Ok(true) => continue,
                Ok(false) => return Poll::Pending,
                Err(e) => {
                    this.finish(e);
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    /// One round; `Ok(true)` if progress was made.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnectionError> {
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
            let mut sh = self.inner.lock();
            sh.driver_notified = false;
            if !sh.driver_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                sh.driver_waker = Some(cx.waker().clone());
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
            self.dispatch_events(&mut sh);
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
                self.inner.open_notify.notify_waiters();
            }
            closed = sh.session.close_reason().map(ConnectionError::from);
            deadline = sh.session.poll_timeout();
        }
        if self.read_buf.is_empty() && !self.read_big && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }

        // 3. write
        while self.written < self.write_buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf[self.written..]) {
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
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(ConnectionError::Io(Arc::new(e))),
                Poll::Pending => {}
            }
        }

        // 4. shutdown once the session has ended and everything is out
        if let Some(reason) = closed {
            let deadline = *self.close_deadline.get_or_insert(now + CLOSE_TIMEOUT);
            let has_more = self.inner.lock().session.has_transmit();
            if (all_written && !self.needs_flush && !has_more) || now >= deadline {
                if Pin::new(&mut self.io).poll_shutdown(cx).is_pending() && now < deadline {
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
        if !self.read_big {
            // Quiet connection: read into the stack so that an idle
            // connection (a pending read) holds no heap buffer.
            let mut stack = [0u8; READ_SMALL];
            let mut buf = ReadBuf::new(&mut stack);
            return match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
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
        let read = self.io.read_buf(&mut self.read_buf);
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

    fn dispatch_events(&self, sh: &mut Shared) {
        while let Some(event) = sh.session.poll_event() {
            match event {
                Event::InboundStream(id) => {
                    sh.accept_queue.push_back(id);
                    self.inner.accept_notify.notify_waiters();
                }
                Event::StreamReadable(id) => {
                    if let Some(w) = take_waker(&mut sh.read_wakers, id) {
                        w.wake();
                    }
                }
                Event::StreamWritable(id) => {
                    if let Some(w) = take_waker(&mut sh.write_wakers, id) {
                        w.wake();
                    }
                }
                Event::StreamReset(id) => {
                    if let Some(w) = take_waker(&mut sh.read_wakers, id) {
                        w.wake();
                    }
                    if let Some(w) = take_waker(&mut sh.write_wakers, id) {
                        w.wake();
                    }
                }
                Event::GoAway(_) => self.inner.open_notify.notify_waiters(),
                Event::Closed(_) => Self::wake_everyone(&self.inner, sh),
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

    fn finish(&mut self, reason: ConnectionError) {
        tracing::debug!(%reason, "yamux connection ended");
        let mut sh = self.inner.lock();
        if !sh.session.is_closed() {
            sh.session.handle_eof(Instant::now());
        }
        sh.ended = Some(reason);
        sh.driver_waker = None;
        Self::wake_everyone(&self.inner, &mut sh);
        drop(sh);
        self.inner.closed_notify.notify_waiters();
        self.read_buf = BytesMut::new();
        self.write_buf = Vec::new();
    }
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
