//! [`Stream`]: one bidirectional, flow-controlled byte stream to a peer.

use crate::connection::{ConnectionId, Direction};
use crate::multistream::{Negotiated, NegotiationError};
use crate::swarm::metrics::StreamMeters;
use crate::swarm::StreamRegistration;
use crate::yamux;
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

/// A stream over a connection: tokio `AsyncRead` and `AsyncWrite`, plus
/// half-close, reset and deadlines.
///
/// * [`close_write`](Self::close_write) (also `AsyncWriteExt::shutdown`)
///   sends FIN: the remote reads EOF and may keep writing to us.
/// * [`close_read`](Self::close_read) stops reading: later reads fail.
/// * [`close`](Self::close) does both and releases the stream.
/// * [`reset`](Self::reset) aborts both directions: the remote's reads and
///   writes fail with `ConnectionReset`; buffered data is discarded.
/// * Dropping a stream that was not closed resets it (or FINs it, if the
///   remote had already finished; see [`yamux::Stream`]).
///
/// Reads and writes are cancel safe: a cancelled read consumes nothing; a
/// cancelled write has either queued its bytes or not.
///
/// For bulk data, [`read_chunk`](Self::read_chunk) hands over the received
/// buffers instead of copying them into yours as `AsyncRead` must (about
/// 4 % less CPU per byte on a loopback upload; see `BENCHMARKS.md`).
///
/// Read bulk data from a spawned task where you can: the connection's
/// driver runs on a runtime worker, and a reader outside the workers (a
/// `#[tokio::main]` body, `block_on`) is woken across threads for every
/// frame it receives (about 6 % more CPU per byte on a loopback download;
/// see `docs/ARCHITECTURE.md`).
pub struct Stream {
    io: Negotiated<yamux::Stream>,
    protocol: Option<Arc<str>>,
    direction: Direction,
    opened: Instant,
    conn: ConnectionId,
    read_closed: bool,
    read_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    meters: Option<StreamMeters>,
    /// The swarm's bookkeeping; dropping it unregisters the stream.
    registration: Option<StreamRegistration>,
}

/// A stream taken apart for renegotiation.
struct Parts {
    direction: Direction,
    opened: Instant,
    conn: ConnectionId,
    read_closed: bool,
    read_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    meters: Option<StreamMeters>,
    registration: Option<StreamRegistration>,
}

impl Parts {
    fn rebuild(self, io: Negotiated<yamux::Stream>, protocol: String) -> Stream {
        let Parts {
            direction,
            opened,
            conn,
            read_closed,
            read_deadline,
            write_deadline,
            meters,
            registration,
        } = self;
        let mut stream = Stream {
            io,
            protocol: None,
            direction,
            opened,
            conn,
            read_closed,
            read_deadline,
            write_deadline,
            meters,
            registration,
        };
        stream.set_protocol(protocol);
        stream
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id())
            .field("conn", &self.conn)
            .field("protocol", &self.protocol)
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

/// What a stream records about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStat {
    /// Who opened it.
    pub direction: Direction,
    /// When it was opened or accepted.
    pub opened: Instant,
}

impl Stream {
    pub(crate) fn new(
        io: Negotiated<yamux::Stream>,
        protocol: Option<Arc<str>>,
        direction: Direction,
        conn: ConnectionId,
    ) -> Self {
        Self {
            io,
            protocol,
            direction,
            opened: Instant::now(),
            conn,
            read_closed: false,
            read_deadline: None,
            write_deadline: None,
            meters: None,
            registration: None,
        }
    }

    /// Attaches bandwidth meters and the swarm's registration (released when
    /// the stream is closed, reset or dropped).
    pub(crate) fn attach(&mut self, meters: Option<StreamMeters>, registration: StreamRegistration) {
        self.meters = meters;
        self.registration = Some(registration);
    }

    /// Negotiates this (raw) stream's protocol as the listener, accepting the
    /// first proposal `supported` approves.
    pub(crate) async fn negotiate_inbound(
        self,
        supported: impl Fn(&str) -> bool,
    ) -> Result<Stream, NegotiationError> {
        let (raw, rest) = self.into_raw()?;
        let (protocol, io) = crate::multistream::listener_select(raw, supported).await?;
        Ok(rest.rebuild(io, protocol))
    }

    /// Negotiates this (raw) stream's protocol as the dialer; optimistic when
    /// a single protocol is proposed.
    pub(crate) async fn negotiate_outbound<P: AsRef<str>>(
        self,
        protocols: &[P],
    ) -> Result<Stream, NegotiationError> {
        let (raw, rest) = self.into_raw()?;
        let lazy = protocols.len() == 1;
        let (protocol, io) =
            crate::multistream::dialer_select(raw, protocols.iter().map(AsRef::as_ref), lazy).await?;
        Ok(rest.rebuild(io, protocol))
    }

    /// Splits a stream into its muxer stream and everything else. Fails if
    /// negotiation state is buffered (a stream that was negotiated already).
    fn into_raw(self) -> Result<(yamux::Stream, Parts), NegotiationError> {
        let Stream {
            io,
            protocol: _,
            direction,
            opened,
            conn,
            read_closed,
            read_deadline,
            write_deadline,
            meters,
            registration,
        } = self;
        let raw = io.into_inner().map_err(|_| {
            NegotiationError::Io(io::Error::new(io::ErrorKind::InvalidInput, "stream was already negotiated"))
        })?;
        Ok((
            raw,
            Parts {
                direction,
                opened,
                conn,
                read_closed,
                read_deadline,
                write_deadline,
                meters,
                registration,
            },
        ))
    }

    /// The stream's ID within its connection (yamux's stream ID).
    pub fn id(&self) -> u32 {
        self.io.get_ref().id()
    }

    /// The connection this stream belongs to.
    pub fn connection_id(&self) -> ConnectionId {
        self.conn
    }

    /// The protocol negotiated for this stream, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Records the protocol spoken on this stream (bookkeeping and metrics;
    /// nothing is sent).
    pub fn set_protocol(&mut self, protocol: impl Into<Arc<str>>) {
        let protocol = protocol.into();
        if let Some(meters) = &mut self.meters {
            meters.set_protocol(&protocol);
        }
        if let Some(registration) = &mut self.registration {
            registration.set_protocol(&protocol);
        }
        self.protocol = Some(protocol);
    }

    /// Who opened the stream and when.
    pub fn stat(&self) -> StreamStat {
        StreamStat { direction: self.direction, opened: self.opened }
    }

    /// Whether we or the remote opened it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Makes reads fail with `TimedOut` once `deadline` passes (`None`
    /// removes the deadline). A read that times out consumes nothing.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
    }

    /// Makes writes fail with `TimedOut` once `deadline` passes.
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.write_deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
    }

    /// Sets both deadlines.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.set_read_deadline(deadline);
        self.set_write_deadline(deadline);
    }

    /// Overrides the idle-stream timeout (default 5 minutes without any
    /// traffic or read/write call, after which the stream is reset) for this
    /// stream. `None` suits long-lived protocols that may stay quiet for long.
    pub fn set_idle_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.io.get_mut().set_idle_timeout(timeout);
    }

    /// Waits until the peer has accepted this stream's protocol.
    ///
    /// A stream opened with a single protocol proposes it optimistically:
    /// writes go out at once, behind the proposal, and the peer's answer is
    /// checked by the first read. This checks it now (bytes the peer sent
    /// behind its answer stay readable). Use it to learn of a refusal before
    /// sending much, or before half-closing a request sent in full: some
    /// peers (js-libp2p 3) can lose a request whose FIN reaches them before
    /// they have answered the proposal. Returns at once for a stream that is
    /// not waiting for an answer (inbound, or negotiated in full).
    ///
    /// # Errors
    ///
    /// As the first read would fail: [`io::ErrorKind::ConnectionRefused`] if
    /// the peer refused the protocol ([`NegotiationError`] inside),
    /// [`io::ErrorKind::TimedOut`] past the read deadline, and the stream's
    /// own errors.
    pub async fn confirm_protocol(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| match self.io.poll_confirmed(cx) {
            Poll::Pending => {
                poll_deadline(&mut self.read_deadline, cx)?;
                Poll::Pending
            }
            ready => ready,
        })
        .await
    }

    /// Reads the next received bytes without copying them: at most `max`
    /// (0 counts as 1), usually one Noise frame's payload (up to 65 519
    /// bytes). `None` at the end of the stream (the remote's FIN). The same
    /// errors, deadline and cancel safety as a read.
    ///
    /// This is the cheap way to consume bulk data: `AsyncRead` copies every
    /// byte from the connection's buffers into yours, this hands you those
    /// buffers. A chunk shares its allocation with the frames received
    /// around it, so drop it once used; a chunk held for long holds that
    /// memory too (it is no longer counted against the stream's window).
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_read_chunk(cx, max)).await
    }

    /// The poll form of [`read_chunk`](Self::read_chunk).
    pub fn poll_read_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        self.check_readable()?;
        match self.io.poll_read_chunk(cx, max) {
            Poll::Ready(result) => {
                if let (Some(meters), Ok(Some(chunk))) = (&self.meters, &result) {
                    meters.record_in(chunk.len());
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                poll_deadline(&mut self.read_deadline, cx)?;
                Poll::Pending
            }
        }
    }

    fn check_readable(&self) -> io::Result<()> {
        if self.read_closed {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "stream closed for reading"));
        }
        Ok(())
    }

    /// Half-closes the stream: flushes what was written, then sends FIN.
    /// Reading stays possible.
    pub async fn close_write(&mut self) -> io::Result<()> {
        self.shutdown().await
    }

    /// Stops reading: later reads fail; data still arriving is dropped.
    /// Writing stays possible.
    pub fn close_read(&mut self) {
        self.read_closed = true;
    }

    /// Closes both directions (FIN after pending data) and releases the
    /// stream. Does not wait for the remote.
    pub async fn close(&mut self) -> io::Result<()> {
        self.close_read();
        let result = self.close_write().await;
        self.finish();
        result
    }

    /// Aborts the stream in both directions (yamux RST) and releases it.
    pub fn reset(&mut self) {
        self.io.get_mut().reset();
        self.finish();
    }

    fn finish(&mut self) {
        // Dropping the registration unregisters the stream and announces it.
        self.registration = None;
    }
}

fn poll_deadline(deadline: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> io::Result<()> {
    let expired = deadline.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
    if expired {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "stream deadline exceeded"));
    }
    Ok(())
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_readable()?;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if let Some(meters) = &this.meters {
                    meters.record_in(buf.filled().len() - before);
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                poll_deadline(&mut this.read_deadline, cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if let Some(meters) = &this.meters {
                    meters.record_out(n);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                poll_deadline(&mut this.write_deadline, cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => {
                poll_deadline(&mut this.write_deadline, cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}
