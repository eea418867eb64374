//! The encrypted stream: frames out, frames in, plaintext to the user.

use bytes::{Buf, BytesMut};
use peerswarm_proto::noise::{
    decode_frame_header, CipherError, RecvCipher, SendCipher, FRAME_HEADER_LEN, MAX_FRAME_LEN,
    MAX_PLAINTEXT_LEN, TAG_LEN,
};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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

/// Allocation size of the owned-frame read buffer (see
/// [`NoiseStream::poll_read_owned`]).
pub(super) const BULK_LEN: usize = 4 * MAX_WIRE_FRAME;

/// Most used-up read buffers the process keeps for reuse (4 MiB).
///
/// A fresh allocation of [`BULK_LEN`] comes from the kernel as zeroed pages,
/// and faulting them in cost about a tenth of a receiver's CPU. Buffers are
/// kept process-wide rather than per connection, so a connection that goes
/// quiet holds none, yet its next burst (or another connection's) reuses
/// them instead of faulting in new ones.
pub(super) const BULK_CACHE_LEN: usize = 16;

/// Used-up read buffers, process-wide (see [`BULK_CACHE_LEN`]).
static BULK_CACHE: BulkCache = BulkCache::new();

/// A bounded set of empty read-buffer handles. An allocation is reused once
/// every frame split off it has been dropped (the handle is then unique).
pub(super) struct BulkCache(Mutex<Vec<BytesMut>>);

impl BulkCache {
    pub(super) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn slots(&self) -> MutexGuard<'_, Vec<BytesMut>> {
        // The cache holds no invariant a panicking holder could break.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer with room for `want` bytes: a cached one whose frames are
    /// all gone, or a new one.
    pub(super) fn take(&self, want: usize) -> BytesMut {
        let mut slots = self.slots();
        match slots.iter_mut().position(|b| b.try_reclaim(want)) {
            Some(i) => slots.swap_remove(i),
            None => {
                drop(slots);
                BytesMut::with_capacity(want)
            }
        }
    }

    /// Keeps a used-up full-size buffer (frames cut from it may still be
    /// alive), or frees it if the cache is full.
    pub(super) fn recycle(&self, mut used: BytesMut) {
        used.clear();
        let mut slots = self.slots();
        if slots.len() < BULK_CACHE_LEN {
            slots.push(used);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots().len()
    }
}

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
/// A muxer can skip that copy: [`NoiseStream::poll_read_owned`] hands out
/// each decrypted frame as an owned slice of a larger read buffer.
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
/// drains, so an idle connection holds no write buffer either. A muxer
/// with its own batch buffer skips the copy with
/// [`NoiseStream::poll_write_in_place`].
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
    /// Ciphertext for [`NoiseStream::poll_read_owned`], whose frames are
    /// split off and decrypted in place. Empty (no allocation) when idle.
    bulk: BytesMut,
    /// `bulk` is a [`BULK_LEN`] allocation (not a light read's few bytes),
    /// worth recycling.
    bulk_full_size: bool,
    /// The last read into `bulk` was small: release it once it drains.
    bulk_light: bool,
    /// The owned-frame path is in use: `rbuf` and `plain` are drained.
    owned: bool,
    /// Frames sealed in the caller's buffer by
    /// [`NoiseStream::poll_write_in_place`], not yet all written.
    batch: InPlaceBatch,
}

/// Most frames sealed and written by one vectored write.
pub(super) const MAX_BATCH_FRAMES: usize = 8;

/// See [`NoiseStream::poll_write_in_place`].
#[derive(Default)]
struct InPlaceBatch {
    frames: Vec<InPlaceFrame>,
    /// Wire bytes of the batch already written.
    sent: usize,
}

struct InPlaceFrame {
    header: [u8; FRAME_HEADER_LEN],
    len: usize,
    tag: [u8; TAG_LEN],
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
            bulk: BytesMut::new(),
            bulk_full_size: false,
            bulk_light: true,
            owned: false,
            batch: InPlaceBatch::default(),
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
        self.rbuf.capacity() + self.wbuf.capacity() + self.bulk.capacity()
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

impl<S> NoiseStream<S> {
    /// Gives `bulk` room for a read of at least [`MIN_READ`] and for a
    /// frame of `needed` bytes, keeping its unconsumed bytes: in the current
    /// allocation if every frame cut from it is gone, otherwise in a cached
    /// or new one; the used-up allocation goes to the cache.
    fn refill_bulk(&mut self, needed: usize) {
        let want = BULK_LEN.max(needed);
        if self.bulk.try_reclaim(want) {
            return;
        }
        let mut next = BULK_CACHE.take(want);
        next.extend_from_slice(&self.bulk);
        let used = std::mem::replace(&mut self.bulk, next);
        // Only full-size allocations are worth keeping (not a light read's).
        if std::mem::replace(&mut self.bulk_full_size, true) {
            BULK_CACHE.recycle(used);
        }
    }

    /// Light traffic: holds no read buffer until bytes arrive again.
    fn release_bulk(&mut self) {
        let used = std::mem::take(&mut self.bulk);
        if std::mem::replace(&mut self.bulk_full_size, false) {
            BULK_CACHE.recycle(used);
        }
    }
}

impl<S: AsyncRead + Unpin> NoiseStream<S> {
    /// Reads the plaintext of the next frame as an owned buffer: the frame
    /// is split off the read buffer and decrypted in place, so the bytes are
    /// never copied here (a muxer can hand slices of it to its streams).
    /// An empty buffer is EOF. Errors as for `poll_read`.
    ///
    /// Once called, use it for all further reads: `poll_read` then fails.
    pub(crate) fn poll_read_owned(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BytesMut>> {
        if !self.owned {
            // Bytes from the handshake or earlier copying reads go first.
            if !self.plain.is_empty() {
                let plain = BytesMut::from(&self.rbuf.buf[self.plain.clone()]);
                self.plain = 0..0;
                return Poll::Ready(Ok(plain));
            }
            self.owned = true;
            self.bulk.extend_from_slice(self.rbuf.filled());
            self.rbuf = ReadBuffer::new();
        }
        loop {
            if let Some(err) = &self.read_error {
                return Poll::Ready(Err(err.clone().into()));
            }
            let needed = match decode_frame_header(&self.bulk) {
                Some(len) if self.bulk.len() >= FRAME_HEADER_LEN + len => {
                    let mut frame = self.bulk.split_to(FRAME_HEADER_LEN + len);
                    match self.recv.open_in_place(&mut frame[FRAME_HEADER_LEN..]) {
                        Ok(plaintext) => {
                            let n = plaintext.len();
                            frame.advance(FRAME_HEADER_LEN);
                            frame.truncate(n);
                            if self.bulk.is_empty() && self.bulk_light {
                                self.release_bulk();
                            }
                            if n > 0 {
                                return Poll::Ready(Ok(frame));
                            }
                        }
                        Err(err) => {
                            tracing::debug!(%err, "noise: dropping connection");
                            self.read_error = Some(err);
                        }
                    }
                    continue;
                }
                Some(len) => FRAME_HEADER_LEN + len,
                None => FRAME_HEADER_LEN,
            };
            if self.eof {
                return Poll::Ready(if self.bulk.is_empty() {
                    Ok(BytesMut::new())
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside a noise frame"))
                });
            }
            let n = if self.bulk.capacity() == 0 {
                // Idle: wait on a stack probe, allocate once bytes arrive.
                let mut probe = [0u8; PROBE_LEN];
                let mut read_buf = ReadBuf::new(&mut probe);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut read_buf))?;
                let n = read_buf.filled().len();
                self.bulk_light = n < PROBE_LEN;
                if !self.bulk_light {
                    self.bulk = BULK_CACHE.take(BULK_LEN);
                }
                self.bulk_full_size = !self.bulk_light;
                self.bulk.extend_from_slice(read_buf.filled());
                n
            } else {
                let spare = self.bulk.capacity() - self.bulk.len();
                if spare < MIN_READ || self.bulk.len() + spare < needed {
                    self.refill_bulk(needed);
                }
                // `read_buf` is stateless between polls, so a fresh future
                // per poll reads into the spare capacity without zeroing it.
                let read = self.io.read_buf(&mut self.bulk);
                tokio::pin!(read);
                let n = ready!(read.poll(cx))?;
                self.bulk_light = n < LIGHT_FILL;
                n
            };
            if n == 0 {
                self.eof = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes `buf` as frames sealed in place (the caller's buffer ends up
    /// holding ciphertext), header, ciphertext and tag of up to
    /// [`MAX_BATCH_FRAMES`] frames in one vectored write: no copy of the
    /// plaintext. Returns how many bytes of `buf` went out, once all the
    /// frames sealed from it are written.
    ///
    /// After `Pending`, call again with the same buffer, unchanged, before
    /// any other write: the sealed frames live in it.
    pub(crate) fn poll_write_in_place(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = &self.write_error {
            return Poll::Ready(Err(err.clone().into()));
        }
        if self.batch.frames.is_empty() {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            // Bytes written the copying way go first.
            ready!(self.poll_drain(cx))?;
            if self.pending_plaintext() > 0 {
                self.seal()?;
                ready!(self.poll_drain(cx))?;
            }
            let mut frames = Vec::with_capacity(MAX_BATCH_FRAMES.min(buf.len().div_ceil(MAX_PLAINTEXT_LEN)));
            for chunk in buf.chunks_mut(MAX_PLAINTEXT_LEN).take(MAX_BATCH_FRAMES) {
                match self.send.seal_detached(chunk) {
                    Ok((header, tag)) => frames.push(InPlaceFrame { header, len: chunk.len(), tag }),
                    Err(err) => {
                        self.write_error = Some(err.clone());
                        return Poll::Ready(Err(err.into()));
                    }
                }
            }
            self.batch = InPlaceBatch { frames, sent: 0 };
        }
        let wire_len: usize = self.batch.frames.iter().map(|f| FRAME_HEADER_LEN + f.len + TAG_LEN).sum();
        while self.batch.sent < wire_len {
            let mut slices = [io::IoSlice::new(&[]); 3 * MAX_BATCH_FRAMES];
            let mut count = 0;
            let mut skip = self.batch.sent;
            let mut offset = 0;
            for frame in &self.batch.frames {
                let body = &buf[offset..offset + frame.len];
                offset += frame.len;
                for piece in [&frame.header[..], body, &frame.tag[..]] {
                    if skip >= piece.len() {
                        skip -= piece.len();
                    } else {
                        slices[count] = io::IoSlice::new(&piece[skip..]);
                        count += 1;
                        skip = 0;
                    }
                }
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.batch.sent += n;
        }
        let plaintext = self.batch.frames.iter().map(|f| f.len).sum();
        self.batch = InPlaceBatch::default();
        Poll::Ready(Ok(plaintext))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.owned {
            return Poll::Ready(Err(io::Error::other("noise: poll_read after poll_read_owned")));
        }
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

impl<S> Drop for NoiseStream<S> {
    fn drop(&mut self) {
        // A connection closed mid-transfer leaves its buffer to the next.
        if self.bulk_full_size {
            BULK_CACHE.recycle(std::mem::take(&mut self.bulk));
        }
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

impl<S: AsyncRead + AsyncWrite + Send + Unpin> crate::yamux::ConnIo for NoiseStream<S> {
    fn poll_read_owned(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<BytesMut>>> {
        Some(NoiseStream::poll_read_owned(self, cx))
    }

    fn poll_write_in_place(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Option<Poll<io::Result<usize>>> {
        // Without vectored writes, three pieces per frame would mean three
        // writes: copying is cheaper then.
        self.io.is_write_vectored().then(|| NoiseStream::poll_write_in_place(self, cx, buf))
    }
}
