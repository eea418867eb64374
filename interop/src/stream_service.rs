//! A rust-libp2p behaviour that serves one protocol: every negotiated
//! inbound stream gets its own task running a `serve` function.
//!
//! Why not `libp2p-stream`'s `Control::accept`: it hands inbound streams over
//! a channel with a single slot and *drops* (resets) any stream that arrives
//! while the slot is taken. A peer that opens 100 streams at once loses most
//! of them. This handler starts a task for every negotiated inbound stream,
//! so nothing is dropped.

use std::convert::Infallible;
use std::io;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// What a service does with one inbound stream.
pub(crate) type Serve = fn(Compat<libp2p::Stream>) -> BoxFuture<'static, io::Result<()>>;

/// Serves `protocol` on every connection, one `serve` task per stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    protocol: &'static str,
    serve: Serve,
}

impl Behaviour {
    pub(crate) fn new(protocol: &'static str, serve: Serve) -> Self {
        Self { protocol, serve }
    }
}

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
        Ok(Handler(*self))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler(*self))
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
pub(crate) struct Handler(Behaviour);

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(StreamProtocol::new(self.0.protocol)), ())
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
            let Behaviour { protocol, serve } = self.0;
            tokio::spawn(async move {
                if let Err(error) = serve(stream.compat()).await {
                    tracing::debug!(%error, protocol, "rust-libp2p service stream failed");
                }
            });
        }
    }
}
