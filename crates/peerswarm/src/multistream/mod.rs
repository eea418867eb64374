//! multistream-select 1.0 over any `AsyncRead + AsyncWrite`.
//!
//! [`dialer_select`] proposes protocols, [`listener_select`] answers; both
//! return the agreed protocol and a [`Negotiated`] stream to speak it on. The
//! protocol logic lives in the sans-IO [`peerswarm_proto::multistream`]; this
//! module only moves bytes.
//!
//! # Optimistic negotiation
//!
//! With `lazy` and a single protocol, [`dialer_select`] does no I/O at all:
//! the header and proposal are written together with the first payload, and
//! the listener's answer is checked on the first read. A refusal then
//! surfaces as an [`io::Error`] from that read (see [`Negotiated`]). This
//! saves a round trip per stream and per connection upgrade.
//!
//! # Limits
//!
//! Messages are at most [`MAX_MESSAGE_LEN`](peerswarm_proto::multistream::MAX_MESSAGE_LEN)
//! bytes and at most [`MAX_PROPOSALS`](peerswarm_proto::multistream::MAX_PROPOSALS)
//! proposals are made or refused. Reads go through a buffer of
//! [`READ_BUFFER_LEN`] bytes; bytes read past the end of the negotiation (a
//! pipelining dialer's first payload) are kept in the [`Negotiated`] stream,
//! so it never holds more than that.
//!
//! # Cancel safety
//!
//! The selection futures are not cancel safe: dropping one mid-way leaves the
//! stream at an unknown point of the negotiation; close it. There is no
//! timeout here; callers bound the negotiation (the upgrader and
//! `Connection` do).

mod negotiated;
#[cfg(test)]
mod tests;

pub use negotiated::Negotiated;
pub use peerswarm_proto::multistream::{ProposalError, ProtocolError};

use peerswarm_proto::multistream::{Dialer, Listener, Status};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Size of the buffer negotiation reads into, in bytes; also the most
/// pipelined payload a [`Negotiated`] stream holds back for replay.
///
/// Larger than a maximal message plus its length prefix, so a message
/// always fits.
pub const READ_BUFFER_LEN: usize = 4096;

/// Why a negotiation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The stream failed or closed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// The remote broke multistream-select.
    #[error("multistream protocol error: {0}")]
    Protocol(#[source] ProtocolError),
    /// The listener refused every protocol we proposed.
    #[error("no protocol in common")]
    Failed,
    /// The local list of protocols cannot be proposed.
    #[error("invalid proposal: {0}")]
    InvalidProposal(#[source] ProposalError),
}

impl From<io::Error> for NegotiationError {
    fn from(error: io::Error) -> Self {
        NegotiationError::Io(error)
    }
}

impl From<ProtocolError> for NegotiationError {
    fn from(error: ProtocolError) -> Self {
        NegotiationError::Protocol(error)
    }
}

/// The mapping used when a lazy negotiation fails inside `poll_read` or
/// `poll_write`: `Io` is passed through; `Protocol` becomes
/// [`io::ErrorKind::InvalidData`], `Failed` [`io::ErrorKind::ConnectionRefused`]
/// and `InvalidProposal` [`io::ErrorKind::InvalidInput`], each wrapping the
/// `NegotiationError` (recover it with `io::Error::get_ref` and
/// `downcast_ref`).
impl From<NegotiationError> for io::Error {
    fn from(error: NegotiationError) -> Self {
        if let NegotiationError::Io(e) = error {
            return e;
        }
        let kind = match &error {
            NegotiationError::Io(_) | NegotiationError::Protocol(_) => io::ErrorKind::InvalidData,
            NegotiationError::Failed => io::ErrorKind::ConnectionRefused,
            NegotiationError::InvalidProposal(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, error)
    }
}

/// Proposes `protocols` (most preferred first) and returns the one the
/// listener accepted.
///
/// With `lazy` and exactly one protocol this returns at once without any
/// I/O; the negotiation completes inside the returned [`Negotiated`] (see
/// its docs). Otherwise it writes the header and the first proposal in one
/// write, tries the next proposal after each `na`, and returns once a
/// proposal is echoed; any bytes the listener sent after the echo are
/// replayed by the returned stream.
///
/// # Errors
///
/// [`NegotiationError::Failed`] if every proposal was refused;
/// [`NegotiationError::Protocol`] if the listener misbehaved;
/// [`NegotiationError::Io`] if the stream failed or closed (EOF is
/// [`io::ErrorKind::UnexpectedEof`]); [`NegotiationError::InvalidProposal`]
/// if `protocols` is empty, too long, or holds an unsendable name.
pub async fn dialer_select<S, P>(
    mut io: S,
    protocols: impl IntoIterator<Item = P>,
    lazy: bool,
) -> Result<(String, Negotiated<S>), NegotiationError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: AsRef<str>,
{
    let mut dialer = Dialer::new(protocols, lazy).map_err(NegotiationError::InvalidProposal)?;
    if let Status::Optimistic(protocol) = dialer.status() {
        let protocol = protocol.to_owned();
        tracing::trace!(%protocol, "multistream: optimistic proposal");
        return Ok((protocol, Negotiated::optimistic(io, dialer)));
    }
    let mut buf = ReadBuffer::new();
    loop {
        if let Some(bytes) = dialer.poll_transmit() {
            io.write_all(&bytes).await?;
            io.flush().await?;
        }
        match dialer.status() {
            Status::Selected(protocol) => {
                let protocol = protocol.to_owned();
                return Ok((protocol, Negotiated::completed(io, buf.into_leftover())));
            }
            Status::Failed => return Err(NegotiationError::Failed),
            Status::Negotiating | Status::Optimistic(_) => {}
        }
        buf.read_from(&mut io).await?;
        let used = dialer.handle_input(buf.data())?;
        buf.consume(used);
    }
}

/// Answers a dialer's proposals, accepting the first one for which
/// `supported` returns `true`, and returns it.
///
/// The header is written before anything is read. Reads go through a buffer
/// of [`READ_BUFFER_LEN`] bytes; whatever the dialer pipelined behind its
/// accepted proposal is kept and replayed by the returned stream. `ls` is
/// answered with `na`.
///
/// # Errors
///
/// [`NegotiationError::Protocol`] if the dialer misbehaved (garbage instead
/// of the header, an oversized or malformed message, more than
/// [`MAX_PROPOSALS`](peerswarm_proto::multistream::MAX_PROPOSALS) refused
/// proposals); [`NegotiationError::Io`] if the stream failed or closed (EOF,
/// including a dialer giving up after `na`, is
/// [`io::ErrorKind::UnexpectedEof`]).
pub async fn listener_select<S>(
    io: S,
    supported: impl Fn(&str) -> bool,
) -> Result<(String, Negotiated<S>), NegotiationError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    listener_select_with(io, supported, false).await
}

/// [`listener_select`] for a protocol whose first move is a write once the
/// dialer's first message is in (a security handshake's responder): saves
/// the separate writes of the header and the echo.
///
/// Nothing is written before the dialer's first bytes arrive (as
/// rust-libp2p's listener does: dialers send their header and proposal
/// without waiting for ours). The header and the answer then go out
/// together; and if the dialer pipelined payload behind its accepted
/// proposal (it did not wait for the echo), they are held by the returned
/// [`Negotiated`] and sent in the same write as the first payload written,
/// or before any read that has to wait for the socket, or on flush or
/// shutdown, whichever comes first.
pub(crate) async fn listener_select_coalesced<S>(
    io: S,
    supported: impl Fn(&str) -> bool,
) -> Result<(String, Negotiated<S>), NegotiationError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    listener_select_with(io, supported, true).await
}

async fn listener_select_with<S>(
    mut io: S,
    supported: impl Fn(&str) -> bool,
    coalesce: bool,
) -> Result<(String, Negotiated<S>), NegotiationError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut listener = Listener::new();
    let mut buf = ReadBuffer::new();
    let mut heard = false;
    loop {
        if let Status::Selected(protocol) = listener.status() {
            let protocol = protocol.to_owned();
            let answer = listener.poll_transmit().unwrap_or_default();
            if coalesce && !answer.is_empty() && !buf.data().is_empty() {
                return Ok((protocol, Negotiated::answering(io, buf.into_leftover(), answer)));
            }
            if !answer.is_empty() {
                io.write_all(&answer).await?;
                io.flush().await?;
            }
            return Ok((protocol, Negotiated::completed(io, buf.into_leftover())));
        }
        if heard || !coalesce {
            if let Some(bytes) = listener.poll_transmit() {
                io.write_all(&bytes).await?;
                io.flush().await?;
            }
        }
        buf.read_from(&mut io).await?;
        heard = true;
        let used = match listener.handle_input(buf.data(), &supported) {
            Ok(used) => used,
            Err(error) => {
                // A lazy dialer's payload follows its proposal, so a refused
                // proposal is often followed by bytes that are no message.
                // The refusal queued before them still goes out (best
                // effort), so the dialer learns why.
                if let Some(bytes) = listener.poll_transmit() {
                    if io.write_all(&bytes).await.is_ok() {
                        let _ = io.flush().await;
                    }
                }
                return Err(error.into());
            }
        };
        buf.consume(used);
    }
}

/// A fixed-capacity read buffer: bytes read but not yet consumed.
#[derive(Debug)]
struct ReadBuffer {
    bytes: Vec<u8>,
}

impl ReadBuffer {
    fn new() -> Self {
        Self { bytes: Vec::with_capacity(READ_BUFFER_LEN) }
    }

    fn data(&self) -> &[u8] {
        &self.bytes
    }

    fn consume(&mut self, n: usize) {
        self.bytes.drain(..n);
    }

    /// Reads once into the free space; EOF is an error.
    async fn read_from<S: AsyncRead + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        let start = self.bytes.len();
        // The state machines consume every complete message and reject
        // lengths above MAX_MESSAGE_LEN, so fewer than READ_BUFFER_LEN bytes
        // are ever left unconsumed and there is always room.
        debug_assert!(start < READ_BUFFER_LEN);
        self.bytes.resize(READ_BUFFER_LEN, 0);
        let read = io.read(&mut self.bytes[start..]).await;
        let n = *read.as_ref().unwrap_or(&0);
        self.bytes.truncate(start + n);
        match read {
            Ok(0) => Err(eof()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The bytes read past the negotiation, in an allocation of their own
    /// size: the negotiation buffer is not kept for the stream's lifetime.
    fn into_leftover(self) -> Vec<u8> {
        negotiated::compact(self.bytes)
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "stream closed during protocol negotiation")
}
