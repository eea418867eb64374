//! Transports: how raw byte streams to and from a multiaddr are made.
//!
//! A transport knows nothing of peers or security; it connects, listens and
//! accepts. The [`upgrade`](crate::upgrade) layer turns what it yields into an
//! authenticated, multiplexed connection.

pub(crate) mod tcp;

use multiaddr::Multiaddr;
use std::io;
use thiserror::Error;

/// Why a transport could not dial or listen on an address.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No transport handles this multiaddr (wrong protocols, or malformed).
    #[error("unsupported multiaddr {0}")]
    UnsupportedAddress(Multiaddr),
    /// The TCP connection could not be made.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address dialed.
        addr: Multiaddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The listening socket could not be opened.
    #[error("listen on {addr} failed: {source}")]
    Listen {
        /// The address asked for.
        addr: Multiaddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The connection was made but its security or muxer upgrade failed.
    #[error("upgrade of connection to {addr} failed: {source}")]
    Upgrade {
        /// The remote address.
        addr: Multiaddr,
        /// What went wrong.
        #[source]
        source: crate::upgrade::UpgradeError,
    },
    /// The connection was made but refused locally (gater, or the swarm is
    /// closing).
    #[error("connection to {addr} refused: {cause}")]
    Refused {
        /// The remote address.
        addr: Multiaddr,
        /// Why.
        cause: String,
    },
    /// The dial did not complete within its timeout.
    #[error("dial to {addr} timed out")]
    Timeout {
        /// The address dialed.
        addr: Multiaddr,
    },
}
