//! Notifications: listeners opening and closing, peers connecting and
//! disconnecting, streams opening and closing.
//!
//! # Delivery contract
//!
//! * Callbacks run synchronously on the task that caused the event, one
//!   subscriber after another, **with no swarm lock held**: a callback may
//!   call any synchronous query (`peers`, `conns_to_peer`, `connectedness`)
//!   and may spawn async work (`dial_peer`, `close_peer`, even `close`)
//!   without deadlocking the swarm.
//! * [`connected`](Notifiee::connected) for a connection returns before any
//!   of its inbound streams reaches the stream handler, and (outbound) before
//!   `dial_peer` returns it.
//! * [`disconnected`](Notifiee::disconnected) fires exactly once per
//!   connection, after its `connected`.
//! * Callbacks must be quick and must not block: a slow subscriber slows the
//!   connection it is being told about (back-pressure), and never makes the
//!   swarm queue events in memory.

use super::{Conn, StreamInfo};
use multiaddr::Multiaddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Receives swarm events. Every method defaults to doing nothing.
pub trait Notifiee: Send + Sync + 'static {
    /// The swarm started listening on `addr`.
    fn listen(&self, _addr: &Multiaddr) {}
    /// The swarm stopped listening on `addr`.
    fn listen_close(&self, _addr: &Multiaddr) {}
    /// A connection joined the swarm.
    fn connected(&self, _conn: &Conn) {}
    /// A connection left the swarm.
    fn disconnected(&self, _conn: &Conn) {}
    /// A stream was opened (outbound) or accepted (inbound).
    fn opened_stream(&self, _stream: &StreamInfo) {}
    /// A stream was closed or reset.
    fn closed_stream(&self, _stream: &StreamInfo) {}
}

/// Identifies a subscription, for [`Swarm::stop_notify`](super::Swarm::stop_notify).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyId(u64);

/// A snapshot of the subscribers, shared by emitters.
type Subscribers = Arc<[(NotifyId, Arc<dyn Notifiee>)]>;

/// The set of subscribers. Emission clones the list (an `Arc` per
/// subscriber) and releases the lock before calling anyone.
#[derive(Default)]
pub(crate) struct Notifiees {
    next: AtomicU64,
    list: RwLock<Subscribers>,
}

impl std::fmt::Debug for Notifiees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifiees").field("count", &self.snapshot().len()).finish()
    }
}

impl Notifiees {
    pub(crate) fn add(&self, notifiee: Arc<dyn Notifiee>) -> NotifyId {
        let id = NotifyId(self.next.fetch_add(1, Ordering::Relaxed));
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<_> = list.iter().cloned().collect();
        next.push((id, notifiee));
        *list = next.into();
        id
    }

    pub(crate) fn remove(&self, id: NotifyId) -> bool {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let before = list.len();
        let next: Vec<_> = list.iter().filter(|(i, _)| *i != id).cloned().collect();
        let removed = next.len() != before;
        *list = next.into();
        removed
    }

    fn snapshot(&self) -> Subscribers {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls `f` on every subscriber, with no lock held.
    pub(crate) fn emit(&self, f: impl Fn(&dyn Notifiee)) {
        for (_, notifiee) in self.snapshot().iter() {
            f(notifiee.as_ref());
        }
    }
}
