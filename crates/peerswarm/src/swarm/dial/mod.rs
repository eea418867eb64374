//! Dial scheduling: which addresses of a peer to dial, when, how many at once,
//! and what to tell the callers. Everything here is sans-IO: it takes `now`
//! and events, and returns actions and the next deadline; the async swarm
//! owns the sockets, the clock and the tasks.
//!
//! The pieces, in the order a dial uses them (reference §2):
//!
//! * [`AddrFilter`] drops addresses we must not or cannot dial, with
//!   reasons (§2.5); [`is_private`], [`is_relay`], [`is_fd_consuming`]
//!   classify addresses.
//! * A [`DialRanker`] ([`DefaultDialRanker`], [`NoDelayDialRanker`]) gives
//!   each address a delay relative to the start of the dial (§2.6).
//! * A [`DialWorker`] per peer merges concurrent dial requests, dials each
//!   address at most once, in delay-ordered batches, and answers every
//!   request (§2.3).
//! * [`DialBackoff`] keeps recently failed addresses quiet (§2.9).
//! * [`DialLimiter`] bounds concurrent dials overall (file descriptors) and
//!   per peer (§2.7).
//! * [`DialError`] says why a dial failed, per address (§2.11).

mod addrs;
mod backoff;
mod error;
mod limiter;
mod queue;
mod ranker;
mod worker;

pub use addrs::{
    is_fd_consuming, is_private, is_relay, strip_peer_id, AddrFilter, FilterReason, FilteredAddrs,
};
pub use backoff::{BackoffConfig, DialBackoff};
pub use error::{AddrError, DialCause, DialError, MAX_DIAL_ERRORS};
pub use limiter::{DialLimiter, JobId, LimiterConfig, LimiterError, ReadyDial};
pub use queue::DialQueue;
pub use ranker::{
    AddrDelay, DefaultDialRanker, DialRanker, NoDelayDialRanker, PRIVATE_OTHER_DELAY, PRIVATE_QUIC_DELAY,
    PRIVATE_TCP_DELAY, PUBLIC_OTHER_DELAY, PUBLIC_QUIC_DELAY, PUBLIC_TCP_DELAY, RELAY_DELAY,
};
pub use worker::{DialAction, DialRequest, DialWorker, DialWorkerConfig, HolePunchRole, RequestId};

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The named setting must not be zero.
    #[error("{0} must not be zero")]
    Zero(&'static str),
}
