//! Connection limits, on by default: total, inbound, outbound, per peer, and
//! inbound per remote IP.
//!
//! Checked where refusing is cheapest: inbound per-IP and inbound totals
//! right after TCP accept (before any handshake work), every cap again when
//! an upgraded connection joins the swarm, and outbound totals before a dial
//! starts. A refusal is a typed [`LimitExceeded`]; the refused connection is
//! closed, the rest of the node carries on.

use super::{Conn, State};
use crate::connection::Direction;
use multiaddr::{Multiaddr, Protocol};
use peerswarm_proto::identity::PeerId;
use std::net::IpAddr;
use thiserror::Error;

/// Caps on a swarm's connections. Every cap counts established
/// connections; handshakes in progress are bounded separately (see
/// `SwarmConfig::with_max_pending_inbound`).
///
/// The defaults protect a node on a small machine (each idle connection
/// costs a socket and a few KiB); raise them for a busy server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    max_connections: usize,
    max_inbound: usize,
    max_outbound: usize,
    max_per_peer: usize,
    max_inbound_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_inbound: 768,
            max_outbound: 512,
            max_per_peer: 8,
            max_inbound_per_ip: 32,
        }
    }
}

impl ConnectionLimits {
    /// No limit at all (tests and benchmarks).
    pub fn unlimited() -> Self {
        Self {
            max_connections: usize::MAX,
            max_inbound: usize::MAX,
            max_outbound: usize::MAX,
            max_per_peer: usize::MAX,
            max_inbound_per_ip: usize::MAX,
        }
    }

    /// All connections. Default 1024.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Connections the remotes opened. Default 768.
    pub fn with_max_inbound(mut self, max: usize) -> Self {
        self.max_inbound = max;
        self
    }

    /// Connections we opened. Default 512.
    pub fn with_max_outbound(mut self, max: usize) -> Self {
        self.max_outbound = max;
        self
    }

    /// Connections to one peer. Default 8 (simultaneous dials make at most
    /// 2 per pair; more is waste or abuse).
    pub fn with_max_per_peer(mut self, max: usize) -> Self {
        self.max_per_peer = max;
        self
    }

    /// Inbound connections from one IP address. Default 32 (several nodes
    /// may share an address behind a NAT).
    pub fn with_max_inbound_per_ip(mut self, max: usize) -> Self {
        self.max_inbound_per_ip = max;
        self
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// All connections.
    #[error("connection limit reached ({max})")]
    Connections {
        /// The cap.
        max: usize,
    },
    /// Inbound connections.
    #[error("inbound connection limit reached ({max})")]
    Inbound {
        /// The cap.
        max: usize,
    },
    /// Outbound connections.
    #[error("outbound connection limit reached ({max})")]
    Outbound {
        /// The cap.
        max: usize,
    },
    /// Connections to one peer.
    #[error("per-peer connection limit reached ({max})")]
    PerPeer {
        /// The cap.
        max: usize,
    },
    /// Inbound connections from one IP.
    #[error("per-IP inbound connection limit reached ({max})")]
    PerIp {
        /// The cap.
        max: usize,
    },
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

fn count(state: &State, mut f: impl FnMut(&Conn) -> bool) -> usize {
    state.conns.values().flatten().filter(|c| f(c)).count()
}

impl ConnectionLimits {
    /// May a connection just accepted from `remote` start its handshake?
    pub(crate) fn check_accept(&self, state: &State, remote: &Multiaddr) -> Result<(), LimitExceeded> {
        let total = count(state, |_| true);
        if total >= self.max_connections {
            return Err(LimitExceeded::Connections { max: self.max_connections });
        }
        if count(state, |c| c.stat().direction == Direction::Inbound) >= self.max_inbound {
            return Err(LimitExceeded::Inbound { max: self.max_inbound });
        }
        if let Some(ip) = ip_of(remote) {
            let same_ip = |c: &Conn| {
                c.stat().direction == Direction::Inbound && ip_of(c.remote_multiaddr()) == Some(ip)
            };
            if count(state, same_ip) >= self.max_inbound_per_ip {
                return Err(LimitExceeded::PerIp { max: self.max_inbound_per_ip });
            }
        }
        Ok(())
    }

    /// May we start dialing?
    pub(crate) fn check_dial(&self, state: &State) -> Result<(), LimitExceeded> {
        if count(state, |_| true) >= self.max_connections {
            return Err(LimitExceeded::Connections { max: self.max_connections });
        }
        if count(state, |c| c.stat().direction == Direction::Outbound) >= self.max_outbound {
            return Err(LimitExceeded::Outbound { max: self.max_outbound });
        }
        Ok(())
    }

    /// May this upgraded connection join the swarm?
    pub(crate) fn check_established(&self, state: &State, conn: &Conn) -> Result<(), LimitExceeded> {
        let peer: PeerId = conn.remote_peer();
        if state.conns.get(&peer).map_or(0, Vec::len) >= self.max_per_peer {
            return Err(LimitExceeded::PerPeer { max: self.max_per_peer });
        }
        match conn.stat().direction {
            Direction::Inbound => self.check_accept(state, conn.remote_multiaddr()),
            Direction::Outbound => self.check_dial(state),
        }
    }
}
