//! `/perf/1.0.0` for a [`RustNode`](crate::RustNode): the server as a
//! rust-libp2p behaviour (a task per inbound stream, like the echo
//! service), and the client half as a function over any stream.
//!
//! The exchange (libp2p/specs `perf/perf.md`, paraphrased): the client
//! sends the number of bytes it wants back as a big-endian `u64`, then the
//! bytes it uploads, and closes its write side; the server reads to EOF,
//! sends the requested bytes and closes.

use std::convert::Infallible;
use std::io;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// The perf protocol ID.
pub const PERF_PROTOCOL: &str = "/perf/1.0.0";

/// Chunk size for sending and discarding perf bytes.
const CHUNK: usize = 64 * 1024;

/// Writes `count` zero bytes.
async fn send_zeros<W: AsyncWrite + Unpin>(writer: &mut W, mut count: u64) -> io::Result<()> {
    let chunk = [0u8; CHUNK];
    while count > 0 {
        let n = count.min(CHUNK as u64) as usize;
        writer.write_all(&chunk[..n]).await?;
        count -= n as u64;
    }
    Ok(())
}

/// Reads to EOF, discarding; returns the number of bytes read.
async fn drain<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<u64> {
    tokio::io::copy(reader, &mut tokio::io::sink()).await
}

/// The server side of one perf stream: reads the requested size and the
/// upload (to EOF), sends the requested bytes and closes. Returns
/// `(uploaded, downloaded)` as seen by the client.
pub async fn perf_server<S>(mut stream: S) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let requested = stream.read_u64().await?;
    let uploaded = drain(&mut stream).await?;
    send_zeros(&mut stream, requested).await?;
    stream.shutdown().await?;
    Ok((uploaded, requested))
}

/// The client side of one perf stream: asks for `download` bytes, uploads
/// `upload` bytes and closes its write side, then reads the answer to EOF.
/// Returns the number of bytes received.
pub async fn perf_client<S>(mut stream: S, upload: u64, download: u64) -> io::Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_u64(download).await?;
    send_zeros(&mut stream, upload).await?;
    stream.shutdown().await?;
    drain(&mut stream).await
}

/// Serves `/perf/1.0.0` on every connection.
#[derive(Debug, Default)]
pub(crate) struct Behaviour;

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Per-connection half of [`Behaviour`]: inbound only, never opens streams.
#[derive(Debug)]
pub(crate) struct Handler;

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(StreamProtocol::new(PERF_PROTOCOL)), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) =
            event
        {
            // The swarm runs connection handlers on its tokio executor, so a
            // runtime is current here.
            tokio::spawn(async move {
                if let Err(error) = perf_server(stream.compat()).await {
                    tracing::debug!(%error, "rust-libp2p perf stream failed");
                }
            });
        }
    }
}
