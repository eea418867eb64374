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

/// Ciphertext read from the socket; `buf[start..end]` is not yet consumed.
/// Fixed size ([`READ_BUFFER_LEN`]): nothing a remote sends can grow it.
pub(super) struct ReadBuffer {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    pub(super) fn new() -> Self {
        Self { buf: vec![0; READ_BUFFER_LEN].into_boxed_slice(), start: 0, end: 0 }
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
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
        } else if self.buf.len() - self.start < needed || self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(io).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }
}

/// An established Noise channel over `S`: `AsyncRead + AsyncWrite` of
/// plaintext when `S` is.
///
/// # Reading
///
/// Ciphertext is read in large chunks into a fixed buffer of about 128 KiB;
/// frames are decrypted in place there, one at a time as the reader drains
/// them, and copied once into the caller's buffer. A frame that fails to
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
/// written, `poll_write` returns `Pending` (back-pressure).
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
    /// once sealed. Capacity [`MAX_WIRE_FRAME`], never more.
    wbuf: Vec<u8>,
    /// `wbuf` holds a sealed frame, written up to `wpos`.
    sealed: bool,
    wpos: usize,
    /// Sealing failed (nonce exhausted); the write side is dead.
    write_error: Option<CipherError>,
}

impl<S> NoiseStream<S> {
    pub(super) fn new(io: S, send: SendCipher, recv: RecvCipher, rbuf: ReadBuffer) -> Self {
        let mut wbuf = Vec::with_capacity(MAX_WIRE_FRAME);
        wbuf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        Self {
            io,
            send,
            recv,
            rbuf,
            plain: 0..0,
            eof: false,
            read_error: None,
            wbuf,
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
            self.wbuf.len() - FRAME_HEADER_LEN
        }
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
        let plaintext_len = self.recv.open_in_place(&mut rbuf.buf[start..start + len])?.len();
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
                self.wbuf.truncate(FRAME_HEADER_LEN);
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
