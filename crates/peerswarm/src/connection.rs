//! An upgraded connection to one remote peer, and the streams over it.

use crate::multistream::{self, Negotiated, NegotiationError};
use crate::stream::Stream;
use crate::upgrade::Upgraded;
use crate::yamux;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::{PeerId, PublicKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinSet;

pub use crate::yamux::ConnectionError;

/// Which side opened a connection or a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The remote opened it.
    Inbound,
    /// We opened it.
    Outbound,
}

/// A process-unique connection identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Why a stream could not be opened or accepted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The connection is gone (or the muxer refused the stream).
    #[error("connection error: {0}")]
    Connection(#[from] ConnectionError),
    /// The peers share none of the protocols asked for.
    #[error("protocol negotiation failed: {0}")]
    Negotiation(#[source] NegotiationError),
    /// Negotiation did not finish within the negotiation timeout.
    #[error("protocol negotiation timed out")]
    Timeout,
}

/// A secured, multiplexed connection to a remote peer. Cheap to clone; the
/// connection closes when [`close`](Self::close) is called or the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

#[derive(Debug)]
struct ConnectionInner {
    id: ConnectionId,
    muxer: yamux::Connection,
    remote_peer_id: PeerId,
    remote_public_key: PublicKey,
    local_addr: Multiaddr,
    remote_addr: Multiaddr,
    direction: Direction,
    negotiation_timeout: Duration,
    /// Inbound streams in negotiation for [`Connection::accept_stream`]. They
    /// outlive a call (and its cancellation), so a stream that stalls in
    /// negotiation holds up no other, and none is lost between calls.
    negotiating: tokio::sync::Mutex<JoinSet<Negotiation>>,
}

/// Inbound streams [`Connection::accept_stream`] negotiates at once (half
/// the muxer's default stream limit, so a peer must stall that many to
/// hold up the rest until the negotiation timeout); more wait in the
/// muxer's accept backlog.
const MAX_NEGOTIATING: usize = 128;

/// A finished inbound negotiation: the stream id and the outcome.
type Negotiation = (u32, NegotiationOutcome);
type NegotiationOutcome =
    Result<Result<(String, Negotiated<yamux::Stream>), NegotiationError>, tokio::time::error::Elapsed>;

impl Connection {
    pub(crate) fn new(
        upgraded: Upgraded,
        local_addr: Multiaddr,
        remote_addr: Multiaddr,
        direction: Direction,
        negotiation_timeout: Duration,
    ) -> Self {
        let Upgraded { muxer, info } = upgraded;
        Self {
            inner: Arc::new(ConnectionInner {
                id: ConnectionId::next(),
                muxer,
                remote_peer_id: info.remote_peer_id,
                remote_public_key: info.remote_public_key,
                local_addr,
                remote_addr,
                direction,
                negotiation_timeout,
                negotiating: tokio::sync::Mutex::new(JoinSet::new()),
            }),
        }
    }

    /// This connection's identifier.
    pub fn id(&self) -> ConnectionId {
        self.inner.id
    }

    /// The authenticated identity of the remote.
    pub fn remote_peer_id(&self) -> PeerId {
        self.inner.remote_peer_id
    }

    /// The remote's identity key, as proven in the handshake.
    pub fn remote_public_key(&self) -> &PublicKey {
        &self.inner.remote_public_key
    }

    /// Our end's address.
    pub fn local_addr(&self) -> &Multiaddr {
        &self.inner.local_addr
    }

    /// The remote end's address.
    pub fn remote_addr(&self) -> &Multiaddr {
        &self.inner.remote_addr
    }

    /// Whether we dialed or accepted this connection.
    pub fn direction(&self) -> Direction {
        self.inner.direction
    }

    /// How many streams are open on this connection.
    pub fn num_streams(&self) -> usize {
        self.inner.muxer.num_streams()
    }

    /// Opens a raw stream, without protocol negotiation.
    pub async fn open_raw_stream(&self) -> Result<yamux::Stream, ConnectionError> {
        self.inner.muxer.open_stream().await
    }

    /// Accepts the next raw inbound stream, without protocol negotiation.
    pub async fn accept_raw_stream(&self) -> Result<yamux::Stream, ConnectionError> {
        self.inner.muxer.accept_stream().await
    }

    /// Opens a stream and proposes `protocols` in order of preference.
    ///
    /// With a single protocol the negotiation is optimistic: this returns at
    /// once, the proposal travels with the first bytes written, and a refusal
    /// surfaces as an error on the stream's first read. With several, it
    /// waits for the remote's choice.
    pub async fn open_stream<P: AsRef<str>>(&self, protocols: &[P]) -> Result<Stream, StreamError> {
        let raw = self.open_raw_stream().await?;
        let lazy = protocols.len() == 1;
        let negotiate = multistream::dialer_select(raw, protocols.iter().map(AsRef::as_ref), lazy);
        let (protocol, io) = tokio::time::timeout(self.inner.negotiation_timeout, negotiate)
            .await
            .map_err(|_| StreamError::Timeout)?
            .map_err(StreamError::Negotiation)?;
        Ok(Stream::new(io, Some(protocol.into()), Direction::Outbound, self.id()))
    }

    /// Accepts the next inbound stream whose protocol is in `supported`.
    ///
    /// Up to 128 inbound streams negotiate at once, each within the
    /// negotiation timeout, and the first to agree on a protocol is
    /// returned: a stream that stalls holds up no other. Streams that
    /// propose nothing supported, or stall, are dropped (reset). A stream
    /// is negotiated against the `supported` of the call that took it in;
    /// one still negotiating when a call returns or is cancelled is kept for
    /// the next call (cancel safe). Errors only when the connection is gone.
    pub async fn accept_stream<P: AsRef<str>>(&self, supported: &[P]) -> Result<Stream, ConnectionError> {
        let supported: Arc<[String]> = supported.iter().map(|p| p.as_ref().to_owned()).collect();
        let mut negotiating = self.inner.negotiating.lock().await;
        loop {
            tokio::select! {
                biased;
                Some(done) = negotiating.join_next() => {
                    match done {
                        Ok((_, Ok(Ok((protocol, io))))) => {
                            return Ok(Stream::new(io, Some(protocol.into()), Direction::Inbound, self.id()));
                        }
                        Ok((id, Ok(Err(error)))) => {
                            tracing::debug!(stream = id, %error, "inbound stream negotiation failed");
                        }
                        Ok((id, Err(_))) => tracing::debug!(stream = id, "inbound stream negotiation timed out"),
                        Err(error) => tracing::warn!(%error, "inbound stream negotiation task failed"),
                    }
                }
                raw = self.accept_raw_stream(), if negotiating.len() < MAX_NEGOTIATING => {
                    let raw = raw?;
                    let id = raw.id();
                    let supported = supported.clone();
                    let timeout = self.inner.negotiation_timeout;
                    negotiating.spawn(async move {
                        let negotiate = multistream::listener_select(raw, |p| supported.iter().any(|s| s == p));
                        (id, tokio::time::timeout(timeout, negotiate).await)
                    });
                }
            }
        }
    }

    /// Wraps a raw stream whose protocol is known without negotiation.
    pub fn raw_stream(stream: yamux::Stream, direction: Direction, conn: ConnectionId) -> Stream {
        Stream::new(Negotiated::passthrough(stream), None, direction, conn)
    }

    /// Closes the connection: tells the remote (yamux go-away), ends every
    /// stream, closes the socket. Idempotent.
    pub async fn close(&self) {
        self.inner.muxer.close().await;
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.muxer.is_closed()
    }

    /// Resolves when the connection closes, with the reason.
    pub async fn closed(&self) -> ConnectionError {
        self.inner.muxer.closed().await
    }
}
