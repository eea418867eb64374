//! [`Stream`]: one bidirectional, flow-controlled byte stream to a peer.

use crate::connection::{ConnectionId, Direction};
use crate::multistream::Negotiated;
use crate::yamux;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A stream over a [`Connection`](crate::Connection): tokio `AsyncRead` and
/// `AsyncWrite`, plus half-close and reset.
///
/// * [`close_write`](Self::close_write) (also `AsyncWriteExt::shutdown`)
///   sends FIN: the remote reads EOF, and may keep writing to us.
/// * [`reset`](Self::reset) aborts both directions: the remote's reads and
///   writes fail with `ConnectionReset`, buffered data is discarded.
/// * Dropping a stream that was not closed resets it.
///
/// Reads and writes are cancel safe: a cancelled read consumes nothing, a
/// cancelled write has either queued its bytes or not.
#[derive(Debug)]
pub struct Stream {
    io: Negotiated<yamux::Stream>,
    protocol: Option<Arc<str>>,
    direction: Direction,
    opened: Instant,
    conn: ConnectionId,
}

impl Stream {
    pub(crate) fn new(
        io: Negotiated<yamux::Stream>,
        protocol: Option<Arc<str>>,
        direction: Direction,
        conn: ConnectionId,
    ) -> Self {
        Self { io, protocol, direction, opened: Instant::now(), conn }
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

    /// Records the protocol spoken on this stream (for streams whose
    /// protocol was agreed out of band).
    pub fn set_protocol(&mut self, protocol: impl Into<Arc<str>>) {
        self.protocol = Some(protocol.into());
    }

    /// Whether we or the remote opened it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// When the stream was opened (or accepted).
    pub fn opened_at(&self) -> Instant {
        self.opened
    }

    /// Half-closes the stream: flushes what was written, then sends FIN.
    /// Reading stays possible.
    pub async fn close_write(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }

    /// Aborts the stream in both directions (yamux RST).
    pub fn reset(&mut self) {
        self.io.get_mut().reset();
    }
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
