//! The stream a negotiation hands back.

use super::{eof, NegotiationError, READ_BUFFER_LEN};
use bytes::Bytes;
use peerswarm_proto::multistream::{Dialer, ProtocolError, Status};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose protocol has been negotiated, or is being negotiated
/// optimistically.
///
/// Reads and writes go to the underlying stream, except:
///
/// * Bytes the remote sent right behind the negotiation, and that were read
///   along with it, are returned first (at most
///   [`READ_BUFFER_LEN`] bytes).
/// * After a lazy [`dialer_select`](super::dialer_select) the stream is
///   *pending* ([`Negotiated::is_pending`]): the header and proposal have
///   not been sent yet. The first `poll_write` sends them in the same write
///   as its payload; `poll_flush` and `poll_shutdown` send them if nothing
///   was written. The first `poll_read` sends them if need be, then reads
///   and checks the listener's header and echo before returning payload. A
///   refusal (`na`) fails that read with [`io::ErrorKind::ConnectionRefused`],
///   a protocol violation with [`io::ErrorKind::InvalidData`]; the
///   [`NegotiationError`] is inside the `io::Error` (`get_ref` then
///   `downcast_ref`). Once failed, every later read and write fails the same
///   way.
///
/// * After `listener_select_coalesced` (the upgrader's inbound negotiation)
///   with payload pipelined behind the proposal, the listener's header and
///   echo are held back, like a lazy dialer's proposal, and go out with the
///   first write (or before a read that has to wait for the socket, or on
///   flush or shutdown).
///
/// # Drop behaviour
///
/// Dropping a pending stream drops the unsent proposal: the remote sees a
/// stream with nothing on it. Likewise for a held-back answer.
#[derive(Debug)]
pub struct Negotiated<S> {
    io: S,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Negotiation over. `replay[pos..]` was read past it and is served
    /// before the stream.
    Done { replay: Vec<u8>, pos: usize },
    /// Lazy dialer, listener's answer not read yet.
    Pending(Box<Pending>),
    /// Listener whose header and echo wait for the first write; `replay`
    /// as in `Done`.
    Answering(Box<Answering>),
    /// The lazy negotiation failed: `None` when the proposal was refused.
    Failed(Option<ProtocolError>),
}

#[derive(Debug)]
struct Pending {
    dialer: Dialer,
    /// Header and proposal, until written.
    unsent: Vec<u8>,
    /// Written but not yet flushed.
    needs_flush: bool,
    /// Read from the listener, not yet consumed by `dialer`.
    received: Vec<u8>,
}

#[derive(Debug)]
struct Answering {
    /// Header and echo, until written.
    unsent: Vec<u8>,
    replay: Vec<u8>,
    pos: usize,
}

/// The most payload bytes copied behind the unsent header and proposal in
/// one write.
const MAX_COALESCE: usize = 16 * 1024;

/// `bytes` in an allocation of exactly its size (none if empty): every
/// connection and stream keeps its replay buffer, so it must not keep the
/// capacity of the buffer negotiation read into.
pub(super) fn compact(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.is_empty() {
        Vec::new()
    } else {
        bytes.shrink_to_fit();
        bytes
    }
}

impl<S> Negotiated<S> {
    /// Wraps a stream that needs no negotiation (its protocol is known
    /// out of band). Reads and writes go straight through.
    pub fn passthrough(io: S) -> Self {
        Self::completed(io, Vec::new())
    }

    pub(super) fn completed(io: S, replay: Vec<u8>) -> Self {
        Self { io, state: State::Done { replay, pos: 0 } }
    }

    pub(super) fn answering(io: S, replay: Vec<u8>, unsent: Vec<u8>) -> Self {
        Self { io, state: State::Answering(Box::new(Answering { unsent, replay, pos: 0 })) }
    }

    pub(super) fn optimistic(io: S, mut dialer: Dialer) -> Self {
        let unsent = dialer.poll_transmit().unwrap_or_default();
        let pending = Pending { dialer, unsent, needs_flush: false, received: Vec::new() };
        Self { io, state: State::Pending(Box::new(pending)) }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably. Reading or writing it directly
    /// bypasses the replay buffer and, while pending, the unsent proposal.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The underlying stream, if nothing is held for it (no replay bytes, no
    /// pending proposal); otherwise `self` back, unchanged.
    pub fn into_inner(self) -> Result<S, Self> {
        match &self.state {
            State::Done { replay, pos } if *pos >= replay.len() => Ok(self.io),
            _ => Err(self),
        }
    }

    /// Heap bytes held for replay.
    #[cfg(test)]
    pub(super) fn replay_capacity(&self) -> usize {
        match &self.state {
            State::Done { replay, .. } => replay.capacity(),
            _ => 0,
        }
    }

    /// Whether a lazy negotiation still awaits the listener's answer: `true`
    /// until the first read has checked the echo.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Pending(_))
    }

    fn failure(error: &Option<ProtocolError>) -> io::Error {
        match error {
            Some(e) => NegotiationError::Protocol(e.clone()).into(),
            None => NegotiationError::Failed.into(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Negotiated<S> {
    /// Writes the unsent header and proposal (or the held-back answer), with
    /// up to `MAX_COALESCE` bytes of `payload` behind them, and returns how
    /// many payload bytes went out with them, or `None` if there was nothing
    /// unsent. A held-back answer, once written, leaves the stream `Done`.
    fn poll_write_unsent(&mut self, cx: &mut Context<'_>, payload: &[u8]) -> Poll<io::Result<Option<usize>>> {
        let (unsent, mut needs_flush) = match &mut self.state {
            State::Pending(pending) => (&mut pending.unsent, Some(&mut pending.needs_flush)),
            State::Answering(answering) => (&mut answering.unsent, None),
            State::Done { .. } | State::Failed(_) => return Poll::Ready(Ok(None)),
        };
        let result = loop {
            let header_len = unsent.len();
            if header_len == 0 {
                break None;
            }
            let take = payload.len().min(MAX_COALESCE);
            unsent.extend_from_slice(&payload[..take]);
            let written = Pin::new(&mut self.io).poll_write(cx, unsent);
            unsent.truncate(header_len);
            let n = ready!(written)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some(needs_flush) = needs_flush.as_deref_mut() {
                *needs_flush = true;
            }
            if n >= header_len {
                *unsent = Vec::new();
                break (n > header_len).then(|| n - header_len);
            }
            unsent.drain(..n);
        };
        if let State::Answering(answering) = &mut self.state {
            let Answering { replay, pos, .. } = &mut **answering;
            let (replay, pos) = (std::mem::take(replay), *pos);
            self.state = State::Done { replay, pos };
        }
        Poll::Ready(Ok(result))
    }

    /// Sends a held-back answer, flushing it.
    fn poll_send_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Answering(_) = self.state {
            ready!(self.poll_write_unsent(cx, &[]))?;
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends the unsent header and proposal (or held-back answer), flushing
    /// them.
    fn poll_send_proposal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_answer(cx))?;
        ready!(self.poll_write_unsent(cx, &[]))?;
        if let State::Pending(pending) = &mut self.state {
            if pending.needs_flush {
                ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                pending.needs_flush = false;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Negotiated<S> {
    /// Reads and checks the listener's answer to a lazy proposal, moving to
    /// `Done` or `Failed`.
    fn poll_confirm(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_proposal(cx))?;
        loop {
            let State::Pending(pending) = &mut self.state else {
                return Poll::Ready(Ok(()));
            };
            match pending.dialer.handle_input(&pending.received) {
                Ok(used) => {
                    pending.received.drain(..used);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "multistream: lazy negotiation failed");
                    self.state = State::Failed(Some(e));
                    continue;
                }
            }
            match pending.dialer.status() {
                Status::Selected(_) => {
                    let replay = compact(std::mem::take(&mut pending.received));
                    self.state = State::Done { replay, pos: 0 };
                    continue;
                }
                Status::Failed => {
                    tracing::debug!("multistream: lazy proposal refused");
                    self.state = State::Failed(None);
                    continue;
                }
                Status::Negotiating | Status::Optimistic(_) => {}
            }
            // Invariant as in `ReadBuffer::read_from`: unconsumed input is
            // shorter than one maximal message, far below READ_BUFFER_LEN.
            let start = pending.received.len();
            pending.received.resize(READ_BUFFER_LEN, 0);
            let mut buf = ReadBuf::new(&mut pending.received[start..]);
            let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
            let n = buf.filled().len();
            pending.received.truncate(start + n);
            ready!(read)?;
            if n == 0 {
                return Poll::Ready(Err(eof()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Negotiated<S> {
    /// Completes once the listener has accepted a lazy proposal, reading
    /// (and checking) its answer now instead of on the first read; bytes it
    /// sent behind the answer stay readable. Sends the proposal first if
    /// nothing was written. Ready at once for a stream not pending (eager
    /// or inbound). Fails as that first read would: a refusal with
    /// [`io::ErrorKind::ConnectionRefused`], and so on.
    pub fn poll_confirmed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Pending(_) = self.state {
            ready!(self.poll_confirm(cx))?;
        }
        match &self.state {
            State::Failed(e) => Poll::Ready(Err(Self::failure(e))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Negotiated<S> {
    /// What a read serves before the inner stream's data: settles a lazy
    /// negotiation, then returns the replay's unread bytes (`Some`; the
    /// caller consumes what it takes with [`Self::consume_replay`]), or
    /// `None` once reads go to the inner stream. A held-back answer is sent
    /// first when nothing is left to replay, as the next bytes may depend
    /// on it.
    fn poll_before_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<&[u8]>>> {
        if let State::Pending(_) = self.state {
            ready!(self.poll_confirm(cx))?;
        }
        if let State::Answering(answering) = &self.state {
            if answering.pos == answering.replay.len() {
                ready!(self.poll_send_answer(cx))?;
            }
        }
        match &self.state {
            State::Failed(e) => Poll::Ready(Err(Self::failure(e))),
            State::Answering(answering) if answering.pos < answering.replay.len() => {
                Poll::Ready(Ok(Some(&answering.replay[answering.pos..])))
            }
            State::Done { replay, pos } if *pos < replay.len() => Poll::Ready(Ok(Some(&replay[*pos..]))),
            State::Done { .. } | State::Pending(_) | State::Answering(_) => Poll::Ready(Ok(None)),
        }
    }

    fn consume_replay(&mut self, n: usize) {
        match &mut self.state {
            State::Answering(answering) => answering.pos += n,
            State::Done { replay, pos } => {
                *pos += n;
                if *pos == replay.len() {
                    *replay = Vec::new();
                    *pos = 0;
                }
            }
            State::Pending(_) | State::Failed(_) => {}
        }
    }
}

impl Negotiated<crate::yamux::Stream> {
    /// [`yamux::Stream::poll_read_chunk`](crate::yamux::Stream::poll_read_chunk)
    /// through the negotiation: replayed bytes come first (copied, at most
    /// [`READ_BUFFER_LEN`]), then the stream's own chunks, uncopied.
    pub(crate) fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        if let Some(replay) = ready!(self.poll_before_inner(cx))? {
            let chunk = Bytes::copy_from_slice(&replay[..replay.len().min(max.max(1))]);
            self.consume_replay(chunk.len());
            return Poll::Ready(Ok(Some(chunk)));
        }
        self.io.poll_read_chunk(cx, max)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Negotiated<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(replay) = ready!(this.poll_before_inner(cx))? {
            let n = buf.remaining().min(replay.len());
            buf.put_slice(&replay[..n]);
            this.consume_replay(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Negotiated<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let State::Failed(e) = &this.state {
            return Poll::Ready(Err(Self::failure(e)));
        }
        if let Some(n) = ready!(this.poll_write_unsent(cx, buf))? {
            return Poll::Ready(Ok(n));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let State::Failed(e) = &this.state {
            return Poll::Ready(Err(Self::failure(e)));
        }
        ready!(this.poll_send_proposal(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !matches!(this.state, State::Failed(_)) {
            ready!(this.poll_send_proposal(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let State::Done { .. } = this.state {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
