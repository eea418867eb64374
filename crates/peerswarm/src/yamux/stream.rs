//! The stream handle.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use peerswarm_proto::yamux::{Session, StreamError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::{take_waker, Inner};

/// A write that leaves at least this much queued is sent inline, in the
/// writer's task (see `Inner::drive_inline`); below it the driver is woken
/// to send. Small writes so coalesce in the driver (a reply, then FIN), and
/// a bulk writer sends about three Noise frames per `writev` (64 KiB writes
/// queue up while the driver wakes) instead of one: a third of the sends
/// and of the reader's wake-ups. Against 32 KiB, on 1 GiB loopback
/// transfers: 4–29 % more throughput and 1–17 % less CPU per byte in five
/// interleaved sets (BENCHMARKS.md, "Session 10").
const INLINE_WRITE_MIN: usize = 160 * 1024;

/// Most received chunks one read takes (a chunk is usually a whole Noise
/// frame's payload, so a 64 KiB read needs two or three).
const READ_CHUNKS: usize = 4;

/// One yamux stream: `AsyncRead + AsyncWrite`.
///
/// * Reads return data, then `Ok(0)` after the peer's FIN; after the peer's
///   RST (or our [`Stream::reset`], or a reset for idleness or the receive
///   buffer limit, whose inner error is the typed
///   [`StreamError`](peerswarm_proto::yamux::StreamError)) they fail with
///   [`io::ErrorKind::ConnectionReset`]; if the connection ends without FIN,
///   with [`io::ErrorKind::ConnectionAborted`] once buffered data is read.
/// * Writes complete as soon as the bytes are queued in the session, bounded
///   by the peer's window and the connection's send buffer: a peer that
///   stops reading blocks the writer. `poll_flush` is a no-op (the driver
///   sends as soon as it can); `poll_shutdown` sends FIN.
///
/// # Drop
///
/// Dropping a stream releases it: if the peer has already finished sending
/// (FIN or RST received), our side is closed with FIN after everything
/// written — so a reply written and dropped is delivered; otherwise the peer
/// may still be sending data nobody will read, and the stream is reset.
/// Call [`Stream::close_write`] and read to EOF for a fully graceful close.
pub struct Stream {
    id: u32,
    inner: Arc<Inner>,
    locally_reset: bool,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish_non_exhaustive()
    }
}

fn to_io(e: StreamError) -> io::Error {
    let kind = match e {
        StreamError::Reset
        | StreamError::UnknownStream(_)
        | StreamError::BufferLimit
        | StreamError::IdleTimeout => io::ErrorKind::ConnectionReset,
        StreamError::WriteClosed => io::ErrorKind::BrokenPipe,
        StreamError::ConnectionClosed => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Stream {
    pub(super) fn new(id: u32, inner: Arc<Inner>) -> Stream {
        Stream { id, inner, locally_reset: false }
    }

    /// The yamux stream id (odd if opened by the client, even if by the
    /// server).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Half-closes the stream: FIN after the data already written. Reading
    /// continues until the peer's FIN. Idempotent.
    ///
    /// # Errors
    ///
    /// The stream was reset or the connection ended.
    pub async fn close_write(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_shutdown(cx)).await
    }

    /// Overrides the connection's idle-stream timeout
    /// ([`Config::set_stream_idle_timeout`](super::Config::set_stream_idle_timeout))
    /// for this stream; `None` keeps it open however long it stays silent.
    pub fn set_idle_timeout(&mut self, timeout: Option<std::time::Duration>) {
        let mut sh = self.inner.lock();
        if sh.session.set_stream_idle_timeout(self.id, timeout).is_ok() {
            // The idle check may now be due sooner.
            sh.wake_driver();
        }
    }

    /// Resets the stream (RST): buffered data in both directions is
    /// discarded; further reads and writes fail with `ConnectionReset`.
    pub fn reset(&mut self) {
        if self.locally_reset {
            return;
        }
        self.locally_reset = true;
        let mut sh = self.inner.lock();
        let _ = sh.session.reset(self.id);
        take_waker(&mut sh.read_wakers, self.id);
        take_waker(&mut sh.write_wakers, self.id);
        sh.wake_driver();
    }

    fn reset_error() -> io::Error {
        to_io(StreamError::Reset)
    }

    /// Takes the next received bytes without copying them: at most `max`
    /// (0 counts as 1), usually a whole Noise frame's payload. `None` after
    /// the peer's FIN. Errors as [`AsyncRead`]'s.
    ///
    /// The chunk shares its allocation with the frames received around it:
    /// drop it once read, or the connection's read buffer cannot be reused.
    pub fn poll_read_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        let (id, max) = (self.id, max.max(1));
        self.poll_take(
            cx,
            |session, now| match session.read_chunk(id, max, now) {
                Ok(Some(chunk)) => Some(Ok((!chunk.is_empty()).then_some(chunk))),
                Ok(None) => None,
                Err(e) => Some(Err(to_io(e))),
            },
            |taken| taken,
        )
    }

    /// The loop both reads share. `take` looks into the session under the
    /// lock; `Some` ends the read, and `deliver` hands it over after the
    /// lock is released (a reader's memcpy never keeps the driver waiting),
    /// before any window credit the take returned is sent. With nothing to
    /// take, input is pulled in this task once (see `Inner::drive_inline`;
    /// if the I/O is busy, its holder delivers and wakes us), then the task
    /// waits to be woken.
    fn poll_take<T, R>(
        &mut self,
        cx: &mut Context<'_>,
        mut take: impl FnMut(&mut Session, Instant) -> Option<io::Result<T>>,
        deliver: impl FnOnce(T) -> R,
    ) -> Poll<io::Result<R>> {
        if self.locally_reset {
            return Poll::Ready(Err(Self::reset_error()));
        }
        let mut pulled = false;
        loop {
            let mut sh = self.inner.lock();
            if let Some(taken) = take(&mut sh.session, Instant::now()) {
                let credit = sh.session.has_transmit();
                drop(sh);
                let delivered = taken.map(deliver);
                if credit {
                    self.inner.drive();
                }
                return Poll::Ready(delivered);
            }
            if pulled {
                sh.read_wakers.insert(self.id, cx.waker().clone());
                return Poll::Pending;
            }
            drop(sh);
            pulled = true;
            self.inner.drive_inline();
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let (id, room) = (self.id, buf.remaining());
        let take = |session: &mut Session, now| {
            let mut chunks: [Bytes; READ_CHUNKS] = Default::default();
            let mut taken = 0;
            for slot in chunks.iter_mut() {
                if taken == room && room > 0 {
                    break;
                }
                match session.read_chunk(id, room - taken, now) {
                    // The end: after the data already taken, if any.
                    Ok(Some(chunk)) if chunk.is_empty() => return Some(Ok(chunks)),
                    Ok(Some(chunk)) => {
                        taken += chunk.len();
                        *slot = chunk;
                    }
                    Ok(None) => break,
                    // The error repeats: the next read reports it if data
                    // was taken.
                    Err(_) if taken > 0 => break,
                    Err(e) => return Some(Err(to_io(e))),
                }
            }
            (taken > 0).then_some(Ok(chunks))
        };
        let deliver = |chunks: [Bytes; READ_CHUNKS]| {
            for chunk in chunks.iter().take_while(|c| !c.is_empty()) {
                buf.put_slice(chunk);
            }
        };
        self.get_mut().poll_take(cx, take, deliver)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.locally_reset {
            return Poll::Ready(Err(Self::reset_error()));
        }
        // Blocked: push out what is queued and take in window updates in
        // this task first, then try again.
        let mut pushed = false;
        loop {
            let mut sh = self.inner.lock();
            match sh.session.write(self.id, data) {
                Ok(0) if !data.is_empty() && !pushed => {
                    drop(sh);
                    pushed = true;
                    self.inner.drive_inline();
                }
                Ok(0) if !data.is_empty() => {
                    sh.write_wakers.insert(self.id, cx.waker().clone());
                    return Poll::Pending;
                }
                Ok(n) => {
                    if sh.session.queued_transmit() >= INLINE_WRITE_MIN {
                        drop(sh);
                        self.inner.drive();
                    } else {
                        // Small writes go to the driver, which sends the
                        // writes of one burst (a reply, then FIN) together.
                        sh.wake_driver();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.locally_reset {
            return Poll::Ready(Err(Self::reset_error()));
        }
        let mut sh = self.inner.lock();
        let res = sh.session.close_write(self.id).map_err(to_io);
        sh.wake_driver();
        Poll::Ready(res)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.locally_reset {
            return;
        }
        let mut sh = self.inner.lock();
        sh.session.release(self.id);
        take_waker(&mut sh.read_wakers, self.id);
        take_waker(&mut sh.write_wakers, self.id);
        sh.wake_driver();
    }
}
