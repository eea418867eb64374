//! The `/echo/1.0.0` service of a [`RustNode`](crate::RustNode), as a
//! rust-libp2p behaviour.
//!
//! Why not `libp2p-stream`'s `Control::accept`: it hands inbound streams over
//! a channel with a single slot and *drops* (resets) any stream that arrives
//! while the slot is taken. A peer that opens 100 streams at once loses most
//! of them. This handler instead starts an echo task for every negotiated
//! inbound stream, so nothing is dropped.

use std::convert::Infallible;
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
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::exercise;

/// The protocol ID the echo service answers to.
pub const ECHO_PROTOCOL: &str = "/echo/1.0.0";

/// Accepts `/echo/1.0.0` streams on every connection and echoes them.
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
        SubstreamProtocol::new(ReadyUpgrade::new(StreamProtocol::new(ECHO_PROTOCOL)), ())
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
                if let Err(error) = exercise::echo(stream.compat()).await {
                    tracing::debug!(%error, "rust-libp2p echo stream failed");
                }
            });
        }
    }
}
