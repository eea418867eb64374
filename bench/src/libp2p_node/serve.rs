//! A behaviour that serves `/perf/1.0.0`, `/echo/1.0.0` and
//! `/ipfs/ping/1.0.0` on every connection, one spawned task per inbound
//! stream.
//!
//! Not `libp2p-stream`'s `Control::accept`: it hands inbound streams over a
//! one-slot channel and resets those that arrive while the slot is taken,
//! which parallel perf streams would hit.

use crate::scenario::{ECHO, PERF, PING};
use crate::wire;
use futures::future::{ready, Ready};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Serves the benchmark protocols on every connection.
#[derive(Debug, Default)]
pub(super) struct Behaviour;

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

/// Accepts any of the three protocols and reports which was chosen.
#[derive(Debug, Clone, Copy)]
pub(super) struct Protocols;

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 3];

    fn protocol_info(&self) -> Self::InfoIter {
        [StreamProtocol::new(PERF), StreamProtocol::new(ECHO), StreamProtocol::new(PING)]
    }
}

impl<S> InboundUpgrade<S> for Protocols {
    type Output = (S, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: S, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

/// Per-connection half of [`Behaviour`]: inbound only.
#[derive(Debug)]
pub(super) struct Handler;

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Protocols;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(Protocols, ())
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
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            let stream = stream.compat();
            // The swarm runs connection tasks on its tokio executor, so a
            // runtime is current here.
            tokio::spawn(async move {
                let _ = match protocol.as_ref() {
                    PERF => wire::serve_perf(stream).await,
                    ECHO => wire::serve_echo(stream).await,
                    _ => wire::serve_ping(stream).await,
                };
            });
        }
    }
}
