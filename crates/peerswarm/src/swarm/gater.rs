//! Connection gating: five hooks where an application may refuse a
//! connection, each called where go-libp2p calls it.
//!
//! | hook | called | refusal |
//! |---|---|---|
//! | [`intercept_peer_dial`](ConnectionGater::intercept_peer_dial) | `dial_peer`, after the existing-connection check | `DialCause::GaterDisallowed`, nothing dialed |
//! | [`intercept_addr_dial`](ConnectionGater::intercept_addr_dial) | per address, while filtering | that address is skipped with a gater reason |
//! | [`intercept_accept`](ConnectionGater::intercept_accept) | right after TCP accept, before any handshake work | the socket is closed |
//! | [`intercept_secured`](ConnectionGater::intercept_secured) | after the security handshake, before the muxer (both directions) | the connection is closed |
//! | [`intercept_upgraded`](ConnectionGater::intercept_upgraded) | after the muxer, before the connection joins the swarm | the connection is closed |
//!
//! Hooks are synchronous and run on the connection's task: they must be
//! cheap and must not block.

use crate::connection::Direction;
use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;

/// The two ends of a connection, as a gater sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAddrs {
    /// Our end.
    pub local: Multiaddr,
    /// The remote end.
    pub remote: Multiaddr,
}

/// Decides which connections may be made. Every hook allows by default.
pub trait ConnectionGater: Send + Sync + 'static {
    /// May we dial `peer` at all?
    fn intercept_peer_dial(&self, _peer: &PeerId) -> bool {
        true
    }

    /// May we dial `peer` at `addr`?
    fn intercept_addr_dial(&self, _peer: &PeerId, _addr: &Multiaddr) -> bool {
        true
    }

    /// May this freshly accepted (not yet authenticated) connection proceed?
    fn intercept_accept(&self, _addrs: &ConnAddrs) -> bool {
        true
    }

    /// May this connection, now authenticated as `peer`, proceed?
    fn intercept_secured(&self, _direction: Direction, _peer: &PeerId, _addrs: &ConnAddrs) -> bool {
        true
    }

    /// May this fully upgraded connection join the swarm?
    fn intercept_upgraded(&self, _conn: &super::Conn) -> bool {
        true
    }
}
