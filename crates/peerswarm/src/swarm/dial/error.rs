//! Dial errors: why a dial to a peer failed, with the per-address reasons.
//!
//! Go: `DialError` / `TransportError` (reference §2.11, §1.12).

use std::fmt;

use multiaddr::Multiaddr;
use peerswarm_proto::identity::PeerId;
use thiserror::Error;

/// At most this many per-address errors are kept in a [`DialError`]; the
/// rest are only counted in [`DialError::skipped`].
///
/// Go keeps 16 too (the cap was added after error accumulation leaked memory).
pub const MAX_DIAL_ERRORS: usize = 16;

/// Why a dial to a peer failed, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum DialCause {
    /// Every address was in backoff after recent failures.
    #[error("dial backoff")]
    DialBackoff,
    /// The peer is ourselves.
    #[error("dial to self attempted")]
    DialToSelf,
    /// No transport can dial any of the peer's addresses.
    #[error("no transport for protocol")]
    NoTransport,
    /// Every address was dialed and every dial failed.
    #[error("all dials failed")]
    AllDialsFailed,
    /// The peerstore has no address for the peer.
    #[error("no addresses")]
    NoAddresses,
    /// The peer has addresses but all of them were filtered out.
    #[error("no good addresses")]
    NoGoodAddresses,
    /// The connection gater refused the peer, an address or the connection.
    #[error("gater disallows connection to peer")]
    GaterDisallowed,
    /// The address was filtered. Kept for parity with go (which exports but
    /// never raises it); this crate does not raise it either.
    #[error("address filtered")]
    AddressFiltered,
    /// The connection closed before it could be used.
    #[error("connection closed")]
    ConnectionClosed,
    /// The dial did not complete in time.
    #[error("dial timed out")]
    Timeout,
    /// The swarm was closed.
    #[error("swarm closed")]
    SwarmClosed,
    /// The peer's dial worker already has as many pending requests as it
    /// accepts (see `DialWorkerConfig::set_max_pending_requests`). Not in go,
    /// which does not bound them.
    #[error("too many pending dial requests")]
    TooManyPendingRequests,
    /// A connection limit refused the dial or the connection (see
    /// `ConnectionLimits`). Not in go, where the resource manager does this.
    #[error("{0}")]
    LimitExceeded(crate::swarm::LimitExceeded),
}

/// Why one address of a peer was not dialed, or why its dial failed.
///
/// `E` is the transport's error type (the async swarm uses its
/// `TransportError`, usually behind an `Arc` so that one failure can be
/// reported to several waiting requests).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AddrError<E> {
    /// The address is in backoff after recent failures (§2.9).
    #[error("dial backoff")]
    Backoff,
    /// The address is one of our own listen addresses.
    #[error("dial to self attempted")]
    DialToSelf,
    /// No transport can dial the address.
    #[error("no transport for protocol")]
    NoTransport,
    /// The connection gater refused the address.
    #[error("gater disallows connection to peer")]
    GaterDisallowed,
    /// The transport tried and failed.
    #[error(transparent)]
    Transport(E),
}

/// A failed dial to a peer: the overall cause and what happened to each
/// address (at most [`MAX_DIAL_ERRORS`] kept, the rest counted).
///
/// Display (go-compatible layout):
///
/// ```text
/// failed to dial PEER: all dials failed
///   * [/ip4/1.2.3.4/tcp/1] connection refused
///     ... skipping 3 errors ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialError<E> {
    /// The peer we tried to reach.
    pub peer: PeerId,
    /// Why the dial failed as a whole.
    pub cause: DialCause,
    /// Per-address errors, in the order they happened; at most
    /// [`MAX_DIAL_ERRORS`].
    pub errors: Vec<(Multiaddr, AddrError<E>)>,
    /// How many further per-address errors were dropped.
    pub skipped: usize,
}

impl<E> DialError<E> {
    /// An error with no per-address errors yet.
    pub fn new(peer: PeerId, cause: DialCause) -> Self {
        DialError { peer, cause, errors: Vec::new(), skipped: 0 }
    }

    /// Records the error for one address, or counts it in
    /// [`skipped`](Self::skipped) once [`MAX_DIAL_ERRORS`] are held.
    pub fn record(&mut self, addr: Multiaddr, err: AddrError<E>) {
        if self.errors.len() >= MAX_DIAL_ERRORS {
            self.skipped += 1;
        } else {
            self.errors.push((addr, err));
        }
    }

    /// Whether the dial failed because it ran out of time.
    pub fn is_timeout(&self) -> bool {
        self.cause == DialCause::Timeout
    }

    /// Whether the cause, or any recorded per-address error, satisfies `f`.
    /// The Rust counterpart of go's `errors.Is` through a `DialError`.
    pub fn any_addr_error(&self, mut f: impl FnMut(&AddrError<E>) -> bool) -> bool {
        self.errors.iter().any(|(_, e)| f(e))
    }
}

impl<E: fmt::Display> fmt::Display for DialError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to dial {}: {}", self.peer, self.cause)?;
        for (addr, err) in &self.errors {
            write!(f, "\n  * [{addr}] {err}")?;
        }
        if self.skipped > 0 {
            write!(f, "\n    ... skipping {} errors ...", self.skipped)?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for DialError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn caps_errors_at_sixteen_and_counts_the_rest() {
        let mut err: DialError<String> = DialError::new(peer(), DialCause::AllDialsFailed);
        for port in 0..20u16 {
            let addr: Multiaddr = format!("/ip4/1.2.3.4/tcp/{port}").parse().unwrap();
            err.record(addr, AddrError::Transport("refused".to_string()));
        }
        assert_eq!(err.errors.len(), MAX_DIAL_ERRORS);
        assert_eq!(err.skipped, 4);
    }

    #[test]
    fn display_lists_addresses_and_skipped() {
        let p = peer();
        let mut err: DialError<String> = DialError::new(p, DialCause::AllDialsFailed);
        err.record("/ip4/1.2.3.4/tcp/1".parse().unwrap(), AddrError::Transport("refused".into()));
        err.record("/ip4/1.2.3.4/tcp/2".parse().unwrap(), AddrError::Backoff);
        err.skipped = 3;
        assert_eq!(
            err.to_string(),
            format!(
                "failed to dial {p}: all dials failed\n  * [/ip4/1.2.3.4/tcp/1] refused\n  \
                 * [/ip4/1.2.3.4/tcp/2] dial backoff\n    ... skipping 3 errors ..."
            )
        );
    }

    // go: dial_error_test.go TestDialError — the causes are reachable
    // through the error.
    #[test]
    fn causes_are_reachable() {
        let mut err: DialError<String> = DialError::new(peer(), DialCause::Timeout);
        err.record("/ip4/1.2.3.4/tcp/1".parse().unwrap(), AddrError::Backoff);
        assert!(err.is_timeout());
        assert!(err.any_addr_error(|e| matches!(e, AddrError::Backoff)));
        assert!(!err.any_addr_error(|e| matches!(e, AddrError::DialToSelf)));
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.downcast_ref::<DialCause>(), Some(&DialCause::Timeout));
    }
}
