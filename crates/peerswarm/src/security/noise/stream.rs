//! The encrypted stream: frames out, frames in, plaintext to the user.

use peerswarm_proto::noise::{
    decode_frame_header, CipherError, RecvCipher, SendCipher, FRAME_HEADER_LEN, MAX_FRAME_LEN,
    MAX_PLAINTEXT_LEN, TAG_LEN,
};
use std::fmt;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A whole frame: header and the largest Noise message.
const MAX_WIRE_FRAME: usize = FRAME_HEADER_LEN + MAX_FRAME_LEN;

/// Size of the ciphertext read buffer: two maximal frames, so that one
/// socket read can bring in a frame and the start of the next.
pub(super) const READ_BUFFER_LEN: usize = 2 * MAX_WIRE_FRAME;

/// Below this much free space at the tail, the buffer is compacted before a
/// read, so that reads stay large.
const MIN_READ: usize = 16 * 1024;

/// How many bytes an idle read probes with, on the stack, before a heap
/// buffer is committed. Most idle-connection traffic (pings, small
/// requests) fits.
const PROBE_LEN: usize = 4 * 1024;

/// A fill smaller than this is "light traffic": once the buffer drains, it
/// is released rather than kept for the next burst.
const LIGHT_FILL: usize = 16 * 1024;

/// Ciphertext read from the socket; `buf[start..end]` is not yet consumed.
///
/// At most [`READ_BUFFER_LEN`] bytes: nothing a remote sends can grow it.
/// The buffer exists only while data flows: an idle connection waits on a
/// small stack probe and holds no heap buffer, so thousands of idle
/// connections cost little memory (and no per-connection `mmap`).
pub(super) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last fill was small: release the buffer once it drains.
    light: bool,
}

impl ReadBuffer {
    pub(super) fn new() -> Self {
        Self { buf: Vec::new(), start: 0, end: 0, light: true }
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    /// Bytes of heap held.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Releases the buffer if nothing is pending in it.
    pub(super) fn release_if_empty(&mut self) {
        if self.start == self.end {
            *self = Self::new();
        }
    }

    /// Makes room for `needed` bytes from `start` (and at least
    /// [`MIN_READ`] free at the tail), moving the unconsumed bytes to the
    /// front. A small buffer (from a light probe) grows to the full
    /// [`READ_BUFFER_LEN`].
    fn make_room(&mut self, needed: usize) {
        if self.buf.len() - self.start >= needed && self.buf.len() - self.end >= MIN_READ {
            return;
        }
        if self.buf.len() < READ_BUFFER_LEN {
            let mut buf = vec![0; READ_BUFFER_LEN];
            buf[..self.end - self.start].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = buf;
        } else {
            self.buf.copy_within(self.start..self.end, 0);
        }
        self.end -= self.start;
        self.start = 0;
    }

    /// Reads once from `io`, after making room for a frame of `needed`
    /// bytes (at most [`MAX_WIRE_FRAME`]) starting at `start`. Moves the
    /// unconsumed bytes to the front when needed, which invalidates ranges
    /// into the buffer. `Ok(0)` is EOF.
    pub(super) fn poll_fill<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        needed: usize,
    ) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.light && !self.buf.is_empty() {
                self.buf = Vec::new();
            }
            if self.buf.is_empty() {
                return self.poll_probe(io, cx);
            }
        } else {
            self.make_room(needed);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(io).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        self.end += n;
        self.light = n < LIGHT_FILL;
        Poll::Ready(Ok(n))
    }

    /// The idle path: read into a stack probe, and commit a heap buffer only
    /// if bytes arrived.
    fn poll_probe<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut probe = [0u8; PROBE_LEN];
        let mut read_buf = ReadBuf::new(&mut probe);
        ready!(Pin::new(io).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        if n > 0 {
            // A full probe means more is waiting: treat it as a burst, with
            // the full buffer. Otherwise keep just the bytes (the usual
            // handshake message or small frame): zeroing a full buffer for
            // them would cost more than the read, and it is released as
            // soon as they are consumed. A frame that turns out longer grows
            // the buffer in `make_room`.
            self.light = n < PROBE_LEN;
            if self.light {
                self.buf = probe[..n].to_vec();
            } else {
                self.buf = vec![0; READ_BUFFER_LEN];
                self.buf[..n].copy_from_slice(&probe[..n]);
            }
            self.end = n;
        }
        Poll::Ready(Ok(n))
    }
}

/// An established Noise channel over `S`: `AsyncRead + AsyncWrite` of
/// plaintext when `S` is.
///
/// # Reading
///
/// Ciphertext is read in large chunks into a buffer of about 128 KiB;
/// frames are decrypted in place there, one at a time as the reader drains
/// them, and copied once into the caller's buffer. The buffer is allocated
/// when data arrives and released when it drains under light traffic, so
/// an idle connection holds no read buffer. A frame that fails to
/// authenticate is an [`io::ErrorKind::InvalidData`] error wrapping
/// [`CipherError::Decrypt`], and every later read fails the same way. EOF
/// inside a frame is [`io::ErrorKind::UnexpectedEof`].
///
/// # Writing
///
/// Plaintext is copied once into a frame buffer and sealed in place when
/// the frame is full ([`MAX_PLAINTEXT_LEN`] bytes), so bulk data goes out
/// in maximal 65 535-byte frames and small writes are coalesced. Call
/// `flush` to send a partial frame; `shutdown` flushes, then shuts down
/// `S`'s write side. At most one frame is buffered: while it cannot be
/// written, `poll_write` returns `Pending` (back-pressure). The frame
/// buffer is allocated on the first write and released after a small frame
/// drains, so an idle connection holds no write buffer either.
// `pub` because it may appear in public types once the upgrader is wired in.
#[allow(unreachable_pub)]
pub struct NoiseStream<S> {
    io: S,
    send: SendCipher,
    recv: RecvCipher,
    rbuf: ReadBuffer,
    /// Decrypted plaintext not yet returned, inside `rbuf.buf`.
    plain: Range<usize>,
    /// `S` reported EOF.
    eof: bool,
    /// A frame failed to decrypt; the read side is dead.
    read_error: Option<CipherError>,
    /// `[header][plaintext]` while filling, `[header][ciphertext][tag]`
    /// once sealed. Capacity [`MAX_WIRE_FRAME`], never more; empty (no
    /// allocation) when idle.
    wbuf: Vec<u8>,
    /// `wbuf` holds a sealed frame, written up to `wpos`.
    sealed: bool,
    wpos: usize,
    /// Sealing failed (nonce exhausted); the write side is dead.
    write_error: Option<CipherError>,
}

impl<S> NoiseStream<S> {
    pub(super) fn new(io: S, send: SendCipher, recv: RecvCipher, mut rbuf: ReadBuffer) -> Self {
        // The handshake's buffer is not kept for an idle connection.
        rbuf.release_if_empty();
        Self {
            io,
            send,
            recv,
            rbuf,
            plain: 0..0,
            eof: false,
            read_error: None,
            wbuf: Vec::new(),
            sealed: false,
            wpos: 0,
            write_error: None,
        }
    }

    /// Plaintext accepted by `poll_write` but not yet sealed into a frame.
    fn pending_plaintext(&self) -> usize {
        if self.sealed {
            0
        } else {
            self.wbuf.len().saturating_sub(FRAME_HEADER_LEN)
        }
    }

    /// Heap bytes held by the read and write buffers.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.rbuf.capacity() + self.wbuf.capacity()
    }

    /// Decrypts the next complete frame in the read buffer, if there is
    /// one, making its plaintext the current `plain` range.
    fn open_next_frame(&mut self) -> Result<bool, CipherError> {
        let rbuf = &mut self.rbuf;
        let Some(len) = decode_frame_header(rbuf.filled()) else { return Ok(false) };
        if rbuf.filled().len() < FRAME_HEADER_LEN + len {
            return Ok(false);
        }
        let start = rbuf.start + FRAME_HEADER_LEN;
        let frame = &mut rbuf.filled_mut()[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        let plaintext_len = self.recv.open_in_place(frame)?.len();
        self.plain = start..start + plaintext_len;
        rbuf.consume(FRAME_HEADER_LEN + len);
        Ok(true)
    }

    /// Seals the plaintext in `wbuf` into a frame, if there is any.
    fn seal(&mut self) -> io::Result<()> {
        if self.sealed || self.pending_plaintext() == 0 {
            return Ok(());
        }
        self.wbuf.extend_from_slice(&[0; TAG_LEN]);
        if let Err(err) = self.send.seal_frame(&mut self.wbuf) {
            self.write_error = Some(err.clone());
            return Err(err.into());
        }
        self.sealed = true;
        self.wpos = 0;
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes the sealed frame out, if any.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sealed {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
            if self.wpos == self.wbuf.len() {
                // Keep the buffer through a burst of full frames; release it
                // after a small one (the connection is likely going idle).
                if self.wbuf.len() < MAX_WIRE_FRAME / 4 {
                    self.wbuf = Vec::new();
                } else {
                    self.wbuf.truncate(FRAME_HEADER_LEN);
                }
                self.sealed = false;
                self.wpos = 0;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut copied = false;
        loop {
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !this.plain.is_empty() {
                let n = out.remaining().min(this.plain.len());
                out.put_slice(&this.rbuf.buf[this.plain.start..this.plain.start + n]);
                this.plain.start += n;
                copied = true;
                continue;
            }
            if let Some(err) = &this.read_error {
                return Poll::Ready(if copied { Ok(()) } else { Err(err.clone().into()) });
            }
            match this.open_next_frame() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    tracing::debug!(%err, "noise: dropping connection");
                    this.read_error = Some(err);
                    continue;
                }
            }
            // No whole frame buffered: return what we have, or read more.
            if copied {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(if this.rbuf.filled().is_empty() {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside a noise frame"))
                });
            }
            let needed =
                decode_frame_header(this.rbuf.filled()).map_or(FRAME_HEADER_LEN, |l| FRAME_HEADER_LEN + l);
            if ready!(this.rbuf.poll_fill(&mut this.io, cx, needed))? == 0 {
                this.eof = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoiseStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(err) = &this.write_error {
            return Poll::Ready(Err(err.clone().into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_drain(cx))?;
        if this.wbuf.is_empty() {
            this.wbuf.reserve_exact(MAX_WIRE_FRAME);
            this.wbuf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        }
        let n = data.len().min(MAX_PLAINTEXT_LEN - this.pending_plaintext());
        this.wbuf.extend_from_slice(&data[..n]);
        if this.pending_plaintext() == MAX_PLAINTEXT_LEN {
            this.seal()?;
            // Start sending now; what does not fit waits for the next call.
            if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
                return Poll::Ready(Err(err));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(err) = &this.write_error {
            return Poll::Ready(Err(err.clone().into()));
        }
        ready!(this.poll_drain(cx))?;
        this.seal()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<S> fmt::Debug for NoiseStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoiseStream")
            .field("frames_sent", &self.send.nonce())
            .field("frames_received", &self.recv.nonce())
            .field("buffered_ciphertext", &self.rbuf.filled().len())
            .field("buffered_plaintext", &self.plain.len())
            .field(
                "unsent",
                &if self.sealed { self.wbuf.len() - self.wpos } else { self.pending_plaintext() },
            )
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}
